//! Versioned SQL migrations from `schema/` (refinery), applied by the engine,
//! never by hand.
//!
//! * `V1__migration_status.sql`: the state store and the staging schema.
//! * `V2__analytics.sql`: the analytics mirror (sync targets).
//! * `V3__conflict.sql`: the conflict schema the web application reads.
//! * `V4__roles.sql`: the database roles and their least-privilege grants.
//! * `V5__run_state.sql`: run statuses, planning state and the run holder.
//! * `V6__index_management.sql`: index definitions dropped by `disable_index`.
//! * `V8__reconcile_state.sql`: per-run, per-table reconcile results.
//! * `V9__conflict_app_indexes.sql`: indexes of the application's reads.
//! * `V10__conflict_watermark.sql`: the incremental conflict run's watermark.
//! * `V12__conflict_events.sql`: indexes of the in-service and PTO lookups.
//! * `V13__conflict_side_tables.sql`: notifications, log history, payer/provider
//!   reminders, agency contacts and the payer-provider dimension.
//! * `V14__reconcile_coverage.sql`: per-table reconcile coverage (rolling slice, freshness).
//! * `V16__staged_files.sql`: the staged path's files and per-chunk unloads.
//! * `V19__conflict_pending_indexes.sql`: partial indexes of the conflict rows
//!   still waiting for `CONFLICTID`, `ReverseUUID` or `CRDATEUNIQUE`.
//! * `V20__conflict_group_closure.sql`: the indexes the `GroupID` closure walks
//!   (rows waiting for a group id, `ConVisitID`).
//! * `V21__row_hashes.sql`: the row-hash side tables' schema and registry
//!   (docs/reconcile.md §4.2).
//! * `V22__canonical_json.sql`: `thaw_reconcile.canonical_json` and
//!   `canonical_float`, PostgreSQL's canonical JSON and float forms for reconcile (docs/reconcile.md §3.3).
//! * `V23__conflict_lifecycle_indexes.sql`: partial indexes of the conflict
//!   rows the nightly lifecycle statements look for (docs/conflicts.md §14).
//! * `V25__migration_history_grants.sql`: the least-privilege roles may read
//!   the migration history ([`migrate_if_permitted`]).
//! * `V26__conflict_deleted_pairs_index.sql`: the deleted (`D`) conflict
//!   pairs by conflicting visit, for the restored visits of an incremental night.
//! * `V27__conflict_closed_pairs.sql`: the closed conflict pairs as the last
//!   night left them, and the partial index of the closed pairs' IDs, for the
//!   application's pair-status edits of an incremental night.
//!
//! (V7 was reserved and never used; refinery applies the files in version order.)
//!
//! [`migrate`] serialises concurrent callers with an advisory lock, so two
//! Lambdas starting at once cannot race.

use tokio_postgres::Client;

use crate::error::{from_postgres, Error, ErrorKind, Result};

mod embedded {
    refinery::embed_migrations!("../../schema");
}

/// Advisory lock key for migrations ("thaw" in ASCII).
const MIGRATION_LOCK: i64 = 0x7468_6177_0001;

/// Apply every pending migration to the database `client` is connected to.
/// Returns the names of the migrations applied by this call.
///
/// Errors: [`ErrorKind::Internal`] naming the failing migration; the failed
/// migration's transaction is rolled back and a rerun continues from there.
pub async fn migrate(client: &mut Client) -> Result<Vec<String>> {
    refuse_read_only(client).await?;
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(|e| from_postgres(e, "taking the schema migration lock"))?;
    let report = embedded::migrations::runner().set_grouped(false).run_async(client).await;
    let _ = client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]).await;
    let report = report.map_err(|e| {
        // refinery's own text ("error asserting migrations table", "db error")
        // hides PostgreSQL's message: append every cause.
        Error::new(
            ErrorKind::Internal,
            format!("applying schema migrations failed: {}. The failing migration was rolled back; fix it and rerun.", crate::error::chain_text(&e)),
        )
    })?;
    Ok(report.applied_migrations().iter().map(|m| m.to_string()).collect())
}

/// Bring the database `client` is connected to up to date as far as the
/// connected role may (the local `thaw run` and `thaw conflicts`): apply the
/// pending migrations when the role may create objects and write the
/// migration history; otherwise — the least-privilege roles of
/// schema/V4__roles.sql (`thaw_loader`, `thaw_conflict_writer`), whose grants
/// only read and write the tables — use the schema as `thaw migrate` or the
/// schema-migrate function left it. Returns the names of the migrations
/// applied (none when skipped).
///
/// Errors: [`ErrorKind::SchemaMismatch`] when the database was never
/// migrated, or has migrations pending, and the role cannot apply them
/// (naming the role, the pending versions and what to run); a failing
/// migration as [`migrate`] reports it.
pub async fn migrate_if_permitted(client: &mut Client) -> Result<Vec<String>> {
    refuse_read_only(client).await?;
    let row = client
        .query_one(
            "SELECT current_user::text, has_schema_privilege(current_schema(), 'CREATE') \
                 AND (to_regclass('refinery_schema_history') IS NULL \
                      OR has_table_privilege('refinery_schema_history', 'SELECT') AND has_table_privilege('refinery_schema_history', 'INSERT')), \
             to_regclass('refinery_schema_history') IS NOT NULL, \
             to_regclass('refinery_schema_history') IS NOT NULL AND has_table_privilege('refinery_schema_history', 'SELECT')",
            &[],
        )
        .await
        .map_err(|e| from_postgres(e, "reading the role's privileges"))?;
    let (role, may_create, migrated, readable): (String, bool, bool, bool) = (row.get(0), row.get(1), row.get(2), row.get(3));
    if may_create {
        return migrate(client).await;
    }
    if !migrated {
        return Err(Error::new(
            ErrorKind::SchemaMismatch,
            format!(
                "the database has no thaw schema yet and role {role} may not create it: run `thaw migrate` (or the schema-migrate \
                 function) once as the migrating role, then run this command again"
            ),
        ));
    }
    if readable {
        let runner = embedded::migrations::runner();
        let applied = runner
            .get_applied_migrations_async(client)
            .await
            .map_err(|e| Error::new(ErrorKind::Unreachable, format!("reading the migration history failed: {e}")))?;
        let pending: Vec<String> = runner
            .get_migrations()
            .iter()
            .filter(|m| !applied.iter().any(|a| a.version() == m.version()))
            .map(|m| m.to_string())
            .collect();
        if !pending.is_empty() {
            return Err(Error::new(
                ErrorKind::SchemaMismatch,
                format!(
                    "the database's thaw schema is behind this thaw ({} migration(s) pending: {}) and role {role} may not apply \
                     them: run `thaw migrate` (or deploy, which runs the schema-migrate function) as the migrating role, then run \
                     this command again",
                    pending.len(),
                    pending.join(", ")
                ),
            ));
        }
    }
    tracing::info!(role, "the role may not apply migrations: using the schema as migrated");
    Ok(Vec::new())
}

/// Refuse a database that cannot be written: a standby or reader instance
/// (`pg_is_in_recovery()`, e.g. an Aurora reader, or the old writer during a
/// failover) or a session that is read-only by default
/// (`default_transaction_read_only = on`). Every command that applies
/// migrations writes there next (the run, its chunks, the target rows), and
/// each of those statements would fail with SQLSTATE 25006 instead, after
/// refinery's "error asserting migrations table" (docs/sync.md §9.2).
///
/// Errors: [`ErrorKind::Transient`] (exit code 1: a reader turns writer at
/// the end of a failover, so it is a runtime condition, not bad input)
/// naming the database, the reason and what to do; nothing has been written. Reading the settings failing is reported as
/// [`from_postgres`] classifies it.
pub async fn refuse_read_only(client: &Client) -> Result<()> {
    let row = client
        .query_one(
            "SELECT current_database()::text, pg_is_in_recovery(), current_setting('transaction_read_only') = 'on', current_user::text, \
                    (SELECT source FROM pg_settings WHERE name = 'default_transaction_read_only')",
            &[],
        )
        .await
        .map_err(|e| from_postgres(e, "checking that the database accepts writes"))?;
    let (database, in_recovery, read_only, role): (String, bool, bool, String) = (row.get(0), row.get(1), row.get(2), row.get(3));
    let source: Option<String> = row.get(4);
    let (db, who) = (crate::sink::ident(&database), crate::sink::ident(&role));
    let (why, undo) = if in_recovery {
        (
            "the server is a standby in recovery (a reader instance, or a writer being failed over)".to_string(),
            "Point postgres.host at the writer (primary or cluster) endpoint, or wait for the failover to finish".to_string(),
        )
    } else if read_only {
        // Where the default comes from decides what undoes it (pg_settings.source).
        let (set_on, undo) = match source.as_deref() {
            Some("database") => (format!("database {database}"), format!("ALTER DATABASE {db} RESET default_transaction_read_only")),
            Some("user") => (format!("role {role}"), format!("ALTER ROLE {who} RESET default_transaction_read_only")),
            Some("database user") => (
                format!("role {role} in database {database}"),
                format!("ALTER ROLE {who} IN DATABASE {db} RESET default_transaction_read_only"),
            ),
            Some("configuration file") | Some("default") => (
                "the server configuration".to_string(),
                "ALTER SYSTEM SET default_transaction_read_only = off; SELECT pg_reload_conf(), or edit postgresql.conf".to_string(),
            ),
            Some(other) => (format!("{other} settings (e.g. PGOPTIONS)"), "remove the setting from the connection's options".to_string()),
            None => ("an unknown source".to_string(), format!("ALTER DATABASE {db} RESET default_transaction_read_only")),
        };
        (
            format!("its sessions are read-only (default_transaction_read_only = on, set for {set_on})"),
            format!("Point postgres.host at the writer (primary or cluster) endpoint, or make the sessions writable (`{undo}`, as a role allowed to)"),
        )
    } else {
        return Ok(());
    };
    Err(Error::new(
        ErrorKind::Transient,
        format!(
            "database {database} is read-only: {why}. thaw writes the target tables and migration_status there, so nothing was \
             written. {undo}, then run the same command again"
        ),
    ))
}

/// The configuration key that names `database`, one of [`local_databases`].
fn database_key(config: &crate::config::Config, database: &str) -> &'static str {
    if database == config.status_database() {
        crate::sink::STATUS_DATABASE_KEY
    } else {
        "conflicts.database"
    }
}

/// [`migrate_if_permitted`] on every database a local run uses (the status
/// database and, when configured, the conflicts database), as the
/// configured role: the local `thaw run`. Returns the migrations applied,
/// each prefixed with its database.
///
/// Errors: as [`migrate_if_permitted`], and connecting.
pub async fn migrate_databases_if_permitted(config: &crate::config::Config) -> Result<Vec<String>> {
    let mut applied = Vec::new();
    for db in local_databases(config) {
        let mut client = crate::sink::connect_configured(&config.postgres, &db, database_key(config, &db)).await?;
        for m in migrate_if_permitted(&mut client).await.map_err(|e| e.context(format!("database {db}")))? {
            applied.push(format!("{db}: {m}"));
        }
    }
    Ok(applied)
}

/// The databases a local run uses: the status database, then the conflicts
/// database when configured and different.
fn local_databases(config: &crate::config::Config) -> Vec<String> {
    let mut databases = vec![config.status_database().to_string()];
    if let Some(c) = &config.conflicts {
        if !databases.contains(&c.database) {
            databases.push(c.database.clone());
        }
    }
    databases
}

/// Apply pending migrations to every database a local run uses: the status
/// database and, when configured, the conflicts database: `thaw migrate`
/// (the local runner uses [`migrate_databases_if_permitted`]); the Lambdas
/// never do (their roles cannot create tables; the schema-migrate function
/// migrates on every deploy).
pub async fn migrate_databases(config: &crate::config::Config) -> Result<Vec<String>> {
    let mut applied = Vec::new();
    for db in local_databases(config) {
        let mut client = crate::sink::connect_configured(&config.postgres, &db, database_key(config, &db)).await?;
        for m in migrate(&mut client).await? {
            applied.push(format!("{db}: {m}"));
        }
    }
    Ok(applied)
}
