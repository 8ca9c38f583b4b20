//! The run lock: at most one run writes a target table at a time
//! (docs/sync.md §6.5).
//!
//! The local orchestrator ([`crate::runner`]) takes one PostgreSQL
//! session-level advisory lock per selected target table, in the status
//! database, on a dedicated connection it keeps for the whole run
//! ([`RunLock::acquire`]). Two runs of the same configuration therefore
//! cannot both plan and write; runs of different configurations or sources
//! that write different tables run side by side. The locks go away with the
//! connection, so every exit path releases them — a clean end, an error, a
//! signal, even `kill -9` (the server ends the session).
//!
//! The lock session's backend pid is recorded on the run row
//! (`lock_backend_pid`), which lets a later run tell a live run from a dead
//! one at once ([`crate::sync::status::RunRecord::is_alive`]). The
//! Lambda-driven path holds no session across steps; there, liveness is the
//! heartbeat, and `plan` serialises itself with [`plan_lock`].

use tokio_postgres::Client;

use crate::sync::status_postgres::PgStatusStore;
use crate::sync::status_store::StatusStore;
use crate::config::Config;
use crate::error::{from_postgres, Error, ErrorKind, Result};
use crate::sink;
use crate::sync::status::Holder;

/// Advisory-lock key of one target table: the first 8 bytes of
/// `md5("thaw-target:<database>.<schema>.<table>")` as a signed 64-bit
/// integer (advisory locks are per database, the name keeps it readable in
/// logs).
pub fn table_key(database: &str, schema: &str, table: &str) -> i64 {
    key(&format!("thaw-target:{database}.{schema}.{table}"))
}

/// Advisory-lock key serialising `plan` calls of one `execution_hash`.
pub fn plan_key(execution_hash: &str) -> i64 {
    key(&format!("thaw-plan:{execution_hash}"))
}

fn key(text: &str) -> i64 {
    use md5::{Digest, Md5};
    let d = Md5::digest(text.as_bytes());
    i64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
}

/// This process: host name (from `$HOSTNAME` or the kernel) and pid.
pub fn this_process() -> (Option<String>, i32) {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok().map(|h| h.trim().to_string()))
        .filter(|h| !h.is_empty());
    (host, std::process::id() as i32)
}

/// The advisory locks of one local run, held by a dedicated connection.
/// Dropping it closes the connection and so releases the locks.
pub struct RunLock {
    /// The lock session (also used for heartbeats).
    pub client: Client,
    /// Who holds it (recorded on the run row).
    pub holder: Holder,
    /// The locked target tables (`schema.table`), for messages.
    pub tables: Vec<String>,
}

impl RunLock {
    /// Take the lock of every target table the request selects, or fail
    /// without holding any.
    ///
    /// Errors: [`ErrorKind::Locked`] naming the run (id, status, start time,
    /// host and pid) or at least the PostgreSQL session that holds a table;
    /// connection errors as from [`sink::connect`].
    pub async fn acquire(config: &Config, targets: &[(String, String)]) -> Result<RunLock> {
        let database = config.status_database();
        let client = sink::connect_status(config).await?;
        let (host, pid) = this_process();
        let app = format!("thaw run {} pid {pid}", host.as_deref().unwrap_or("?"));
        client
            .execute("SELECT set_config('application_name', $1, false)", &[&app])
            .await
            .map_err(|e| from_postgres(e, "naming the lock session"))?;
        let backend: i32 = client
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .map_err(|e| from_postgres(e, "reading the lock session's backend pid"))?
            .get(0);
        let mut tables = Vec::new();
        for (schema, table) in targets {
            let k = table_key(database, schema, table);
            let got: bool = client
                .query_one("SELECT pg_try_advisory_lock($1)", &[&k])
                .await
                .map_err(|e| from_postgres(e, "taking the run lock"))?
                .get(0);
            if !got {
                let holder = describe_holder(&client, k).await;
                let _ = client.execute("SELECT pg_advisory_unlock_all()", &[]).await;
                return Err(Error::new(
                    ErrorKind::Locked,
                    format!(
                        "another run is writing {schema}.{table} in database {database}: {holder}. Wait for it to finish (or stop it: it records itself 'interrupted' and can be resumed), then rerun; runs writing different tables can run side by side."
                    ),
                ));
            }
            tables.push(format!("{schema}.{table}"));
        }
        Ok(RunLock { client, holder: Holder { host, pid: Some(pid), lock_backend_pid: Some(backend) }, tables })
    }

    /// Release every lock now. Dropping the lock frees it too, but only once
    /// PostgreSQL notices the closed session, which a run started right
    /// after this one (or the next run of the same process) can beat: every
    /// exit path of a run releases explicitly.
    pub async fn release(&self) {
        let _ = self.client.execute("SELECT pg_advisory_unlock_all()", &[]).await;
    }
}

/// Who holds advisory lock `k`: the run recorded with that lock session, or
/// the session's application name and backend pid.
async fn describe_holder(client: &Client, k: i64) -> String {
    let (hi, lo) = (((k as u64) >> 32) as i64, ((k as u64) & 0xffff_ffff) as i64);
    let row = client
        .query_opt(
            "SELECT l.pid, coalesce(a.application_name, ''), a.backend_start FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid \
             WHERE l.locktype = 'advisory' AND l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
               AND l.classid::bigint = $1 AND l.objid::bigint = $2 AND l.objsubid = 1 LIMIT 1",
            &[&hi, &lo],
        )
        .await
        .ok()
        .flatten();
    let Some(row) = row else { return "a session that has just released it (retry)".into() };
    let backend: i32 = row.get(0);
    let app: String = row.get(1);
    if let Ok(runs) = PgStatusStore::new(client).runs_of_lock_session(backend).await {
        if let Some(r) = runs.first() {
            return r.describe();
        }
    }
    let since: Option<chrono::DateTime<chrono::Utc>> = row.get(2);
    let since = since.map(|t| format!(", connected since {}", t.format("%Y-%m-%d %H:%M:%S UTC"))).unwrap_or_default();
    format!("a run that is still starting ('{app}', PostgreSQL backend pid {backend}{since})")
}

/// Serialise `plan` for one `execution_hash` on `client`'s session (the
/// Lambda path has no run lock): returns false when another session is
/// planning the same selection right now. Release with [`plan_unlock`].
pub async fn plan_lock(client: &Client, execution_hash: &str) -> Result<bool> {
    Ok(client
        .query_one("SELECT pg_try_advisory_lock($1)", &[&plan_key(execution_hash)])
        .await
        .map_err(|e| from_postgres(e, "taking the planning lock"))?
        .get(0))
}

/// Release [`plan_lock`].
pub async fn plan_unlock(client: &Client, execution_hash: &str) {
    let _ = client.execute("SELECT pg_advisory_unlock($1)", &[&plan_key(execution_hash)]).await;
}
