//! The PostgreSQL implementation of the [`StatusStore`] seam
//! ([`PgStatusStore`]): every read and write of the `migration_status`
//! schema (runs, tables, chunks, indexes, files), through the caller's
//! connection or, where a method takes one, its data transaction
//! (docs/sync.md §6.9). The records it reads and writes are in
//! [`crate::sync::status`]; the in-memory store of the unit tests is in
//! [`crate::sync::status_store`].

use tokio_postgres::{Client, GenericClient, Transaction};
use uuid::Uuid;

use crate::contract::ChunkItem;
use crate::error::{from_postgres, Error, ErrorKind, Result};
use crate::sync::status::*;
use crate::sync::status_store::StatusStore;


const RUN_RECORD_COLUMNS: &str = "r.run_id, r.status, r.execution_hash, r.started_at, extract(epoch FROM now() - r.heartbeat_at)::float8, r.host, r.pid, \
     r.lock_backend_pid, EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted AND l.pid = r.lock_backend_pid), \
     r.error_message";

fn to_run_record(r: &tokio_postgres::Row) -> RunRecord {
    to_run_record_at(r, 0)
}

/// The [`RUN_RECORD_COLUMNS`] of `r`, starting at column `at`.
fn to_run_record_at(r: &tokio_postgres::Row, at: usize) -> RunRecord {
    RunRecord {
        run_id: r.get(at),
        status: r.get(at + 1),
        execution_hash: r.get(at + 2),
        started_at: r.get(at + 3),
        heartbeat_age_seconds: r.get(at + 4),
        host: r.get(at + 5),
        pid: r.get(at + 6),
        lock_backend_pid: r.get(at + 7),
        lock_session_alive: r.get(at + 8),
        error: r.get(at + 9),
    }
}

/// The newest `limit` runs (or just `run_id`), with tables, chunk counts,
/// rows, rows/s and failed chunks: what `thaw status` prints.
async fn overview(client: &Client, run_id: Option<Uuid>, limit: i64) -> Result<Vec<RunOverview>> {
    let runs = client
        .query(
            &format!(
                "SELECT r.mode, r.heartbeat_at, r.completed_at, r.error_message, {RUN_RECORD_COLUMNS} FROM migration_status.migration_runs r \
                 WHERE $1::uuid IS NULL OR r.run_id = $1 ORDER BY r.started_at DESC LIMIT $2"
            ),
            &[&run_id, &limit.max(1)],
        )
        .await
        .map_err(|e| from_postgres(e, "reading runs for thaw status"))?;
    let mut out = Vec::new();
    for row in runs {
        let record = to_run_record_at(&row, 4);
        let id = record.run_id;
        let tables = client
            .query(
                "SELECT t.source_table, t.target_schema || '.' || t.target_table, t.status, t.load_mode, \
                        count(c.*), count(c.*) FILTER (WHERE c.status = 'completed'), count(c.*) FILTER (WHERE c.status = 'failed'), \
                        count(c.*) FILTER (WHERE c.status = 'in_progress'), \
                        coalesce(sum(c.rows_copied) FILTER (WHERE c.status = 'completed'), 0)::int8, \
                        coalesce(extract(epoch FROM max(c.completed_at) - min(c.started_at)), 0)::float8, t.error_message \
                 FROM migration_status.migration_table_status t \
                 LEFT JOIN migration_status.migration_chunk_status c USING (run_id, source_database, source_schema, source_table) \
                 WHERE t.run_id = $1 \
                 GROUP BY t.source_table, t.target_schema, t.target_table, t.status, t.load_mode, t.error_message, t.started_at \
                 ORDER BY t.started_at, t.source_table",
                &[&id],
            )
            .await
            .map_err(|e| from_postgres(e, "reading tables for thaw status"))?;
        let tables: Vec<TableOverview> = tables
            .iter()
            .map(|t| {
                let (rows, seconds): (i64, f64) = (t.get(8), t.get::<_, f64>(9).max(0.0));
                TableOverview {
                    source_table: t.get(0),
                    target: t.get(1),
                    status: t.get(2),
                    load_mode: t.get(3),
                    chunks: t.get(4),
                    chunks_completed: t.get(5),
                    chunks_failed: t.get(6),
                    chunks_in_progress: t.get(7),
                    rows,
                    seconds,
                    rows_per_second: if seconds > 0.0 { rows as f64 / seconds } else { 0.0 },
                    error: t.get(10),
                }
            })
            .collect();
        let failed = client
            .query(
                "SELECT source_table, chunk_id, retry_count, error_message FROM migration_status.migration_chunk_status \
                 WHERE run_id = $1 AND status = 'failed' ORDER BY source_table, chunk_id LIMIT 50",
                &[&id],
            )
            .await
            .map_err(|e| from_postgres(e, "reading failed chunks for thaw status"))?;
        let alive = matches!(record.status.as_str(), run_status::PLANNING | run_status::RUNNING).then(|| record.is_alive(None));
        out.push(RunOverview {
            run_id: id,
            mode: row.get(0),
            started_at: record.started_at,
            heartbeat_at: row.get(1),
            completed_at: row.get(2),
            rows: tables.iter().map(|t| t.rows).sum(),
            error: row.get(3),
            alive,
            status: record.status,
            host: record.host,
            pid: record.pid,
            tables,
            failed_chunks: failed
                .iter()
                .map(|c| FailedChunk { source_table: c.get(0), chunk_id: c.get(1), retry_count: c.get(2), error: c.get(3) })
                .collect(),
        });
    }
    Ok(out)
}

/// The PostgreSQL [`StatusStore`]: the `migration_status` schema through
/// the caller's connection (autocommit), or, for the methods that take a
/// transaction, through the caller's data transaction (docs/sync.md §6.9).
#[derive(Clone, Copy)]
pub struct PgStatusStore<'c> {
    client: &'c Client,
}

impl<'c> PgStatusStore<'c> {
    /// The store on `client` (the status database's connection).
    pub fn new(client: &'c Client) -> PgStatusStore<'c> {
        PgStatusStore { client }
    }

    /// [`StatusStore::lock_chunk`] on any client or transaction (the staged
    /// path also reads the row in autocommit); lock the chunk row and return it; `None` when
    /// the chunk does not exist.
    pub async fn lock_chunk_on<C: GenericClient>(tx: &C, key: &TableKey, chunk_id: i32) -> Result<Option<ChunkRecord>> {
        let row = tx
            .query_opt(
                "SELECT chunk_range, status FROM migration_status.migration_chunk_status \
                 WHERE run_id = $1 AND source_database = $2 AND source_schema = $3 AND source_table = $4 AND chunk_id = $5 FOR UPDATE",
                &[&key.run_id, &key.source_database, &key.source_schema, &key.source_table, &chunk_id],
            )
            .await
            .map_err(|e| from_postgres(e, "locking the chunk status row"))?;
        Ok(row.map(|r| ChunkRecord { chunk_range: r.get(0), status: r.get(1) }))
    }

    /// [`StatusStore::complete_chunk`] on any client or transaction.
    pub async fn complete_chunk_on<C: GenericClient>(tx: &C, key: &TableKey, chunk_id: i32, counts: ChunkCounts) -> Result<()> {
        let n = tx
            .execute(
                "UPDATE migration_status.migration_chunk_status SET status = 'completed', completed_at = now(), error_message = NULL, \
                   rows_copied = $6, rows_inserted = $7, rows_updated = $8, rows_unchanged = $9 \
                 WHERE run_id = $1 AND source_database = $2 AND source_schema = $3 AND source_table = $4 AND chunk_id = $5",
                &[
                    &key.run_id, &key.source_database, &key.source_schema, &key.source_table, &chunk_id,
                    &(counts.read as i64), &(counts.inserted as i64), &(counts.updated as i64), &(counts.unchanged as i64),
                ],
            )
            .await
            .map_err(|e| from_postgres(e, "marking the chunk completed"))?;
        if n != 1 {
            return Err(Error::new(ErrorKind::Internal, format!("chunk {chunk_id} of {} vanished from migration_chunk_status", key.source_table)));
        }
        Ok(())
    }
}

impl StatusStore for PgStatusStore<'_> {
    type Transaction<'t> = Transaction<'t>;

    /// Record a new run in status `planning`, driven by `holder`, and return its id.
    async fn create_run(&self, config_hash: &str, execution_hash: &str, mode: &str, metadata: serde_json::Value, holder: &Holder) -> Result<Uuid> {
        let row = self.client
            .query_one(
                "INSERT INTO migration_status.migration_runs (status, config_hash, execution_hash, mode, metadata, host, pid, lock_backend_pid) \
                 VALUES ('planning', $1, $2, $3, $4, $5, $6, $7) RETURNING run_id",
                &[&config_hash, &execution_hash, &mode, &metadata, &holder.host, &holder.pid, &holder.lock_backend_pid],
            )
            .await
            .map_err(|e| from_postgres(e, "recording a new run in migration_status.migration_runs"))?;
        Ok(row.get(0))
    }

    /// Read one run; `None` when it does not exist.
    async fn run_record(&self, run_id: Uuid) -> Result<Option<RunRecord>> {
        let row = self.client
            .query_opt(&format!("SELECT {RUN_RECORD_COLUMNS} FROM migration_status.migration_runs r WHERE r.run_id = $1"), &[&run_id])
            .await
            .map_err(|e| from_postgres(e, "reading a run from migration_status.migration_runs"))?;
        Ok(row.as_ref().map(to_run_record))
    }

    /// The runs driven by the lock session with backend pid `backend_pid` that
    /// are still `planning` or `running` (the holder of a refused lock).
    async fn runs_of_lock_session(&self, backend_pid: i32) -> Result<Vec<RunRecord>> {
        let rows = self.client
            .query(
                &format!(
                    "SELECT {RUN_RECORD_COLUMNS} FROM migration_status.migration_runs r \
                     WHERE r.lock_backend_pid = $1 AND r.status IN ('planning', 'running') ORDER BY r.started_at DESC"
                ),
                &[&backend_pid],
            )
            .await
            .map_err(|e| from_postgres(e, "looking up the run holding the lock"))?;
        Ok(rows.iter().map(to_run_record).collect())
    }

    /// Find the newest run with the same `execution_hash` that may have work
    /// left (status in [`run_status::RESUMABLE`]) and started within
    /// `max_age_hours`.
    async fn find_resumable(&self, execution_hash: &str, max_age_hours: u32) -> Result<Option<RunRecord>> {
        let hours = max_age_hours as f64;
        let statuses: Vec<String> = run_status::RESUMABLE.iter().map(|s| s.to_string()).collect();
        let row = self.client
            .query_opt(
                &format!(
                    "SELECT {RUN_RECORD_COLUMNS} FROM migration_status.migration_runs r \
                     WHERE r.execution_hash = $1 AND {} \
                       AND r.started_at > now() - make_interval(secs => $2::float8 * 3600) \
                     ORDER BY r.started_at DESC LIMIT 1",
                    run_status::resumable_sql(3)
                ),
                &[&execution_hash, &hours, &statuses],
            )
            .await
            .map_err(|e| from_postgres(e, "looking for a resumable run"))?;
        Ok(row.as_ref().map(to_run_record))
    }

    /// Mark every resumable run of `execution_hash` other than `keep` as
    /// `superseded` (what `--no-resume` means: those runs are never resumed).
    /// Returns the run ids superseded.
    async fn supersede(&self, execution_hash: &str, keep: Uuid) -> Result<Vec<Uuid>> {
        let statuses: Vec<String> = run_status::RESUMABLE.iter().map(|s| s.to_string()).collect();
        let rows = self.client
            .query(
                &format!(
                    "UPDATE migration_status.migration_runs r SET status = 'superseded', completed_at = coalesce(completed_at, now()), \
                       error_message = concat_ws('; ', error_message, 'superseded by run ' || $2::text || ' (started with --no-resume)') \
                     WHERE execution_hash = $1 AND run_id <> $2 AND {} RETURNING run_id",
                    run_status::resumable_sql(3)
                ),
                &[&execution_hash, &keep, &statuses],
            )
            .await
            .map_err(|e| from_postgres(e, "superseding older unfinished runs (--no-resume)"))?;
        Ok(rows.into_iter().map(|r| r.get(0)).collect())
    }

    /// Record `holder` on a run and refresh its heartbeat.
    async fn claim(&self, run_id: Uuid, holder: &Holder) -> Result<()> {
        self.client
            .execute(
                "UPDATE migration_status.migration_runs SET host = $2, pid = $3, lock_backend_pid = $4, heartbeat_at = now() WHERE run_id = $1",
                &[&run_id, &holder.host, &holder.pid, &holder.lock_backend_pid],
            )
            .await
            .map_err(|e| from_postgres(e, "recording who runs the run"))?;
        Ok(())
    }

    /// Record every `planning`/`running` run of the lock session `backend_pid`
    /// `interrupted` with `message` (a signal arrived while planning). Returns
    /// their ids.
    async fn interrupt_lock_session_runs(&self, backend_pid: i32, message: &str) -> Result<Vec<Uuid>> {
        // The tables already planned go back to `pending` with the reason, as in finish_run.
        let rows = self.client
            .query(
                "WITH runs AS (UPDATE migration_status.migration_runs SET status = 'interrupted', error_message = $2, completed_at = now() \
                               WHERE lock_backend_pid = $1 AND status IN ('planning', 'running') RETURNING run_id), \
                      unfinished AS (UPDATE migration_status.migration_table_status t SET status = 'pending', error_message = $3 \
                                     FROM runs WHERE t.run_id = runs.run_id AND t.status = 'in_progress' RETURNING 1) \
                 SELECT run_id FROM runs",
                &[&backend_pid, &message, &interrupted_table_error(Some(message))],
            )
            .await
            .map_err(|e| from_postgres(e, "recording the run as interrupted"))?;
        Ok(rows.into_iter().map(|r| r.get(0)).collect())
    }

    /// Set a run's status and error (`None` clears it) while it goes on.
    async fn set_status(&self, run_id: Uuid, status: &str, error: Option<&str>) -> Result<()> {
        // A run going (back) to `running` copies every table not completed
        // again: those a failed or interrupted attempt left `failed` or
        // `pending` are in progress again until merge records them.
        self.client
            .execute(
                "WITH reopened AS (UPDATE migration_status.migration_table_status SET status = 'in_progress', error_message = NULL \
                                   WHERE run_id = $1 AND $2 = 'running' AND status IN ('pending', 'failed') RETURNING 1) \
                 UPDATE migration_status.migration_runs SET status = $2, error_message = $3, completed_at = NULL, heartbeat_at = now() WHERE run_id = $1",
                &[&run_id, &status, &error],
            )
            .await
            .map_err(|e| from_postgres(e, "recording the run's status"))?;
        Ok(())
    }

    /// Refresh a run's heartbeat unless it was refreshed less than
    /// [`HEARTBEAT_MIN_INTERVAL_SECONDS`] ago (cheap enough to call per chunk).
    async fn touch(&self, run_id: Uuid) -> Result<()> {
        self.client
            .execute(
                "UPDATE migration_status.migration_runs SET heartbeat_at = now() \
                 WHERE run_id = $1 AND heartbeat_at < now() - make_interval(secs => $2)",
                &[&run_id, &(HEARTBEAT_MIN_INTERVAL_SECONDS as f64)],
            )
            .await
            .map_err(|e| from_postgres(e, "refreshing the run heartbeat"))?;
        Ok(())
    }

    /// Put chunks left `in_progress` by abandoned workers back to `pending`
    /// with `reason` as their error, so a resume copies them again. Waits at
    /// most 30 s for the abandoned transactions' row locks. Returns the number
    /// of chunks released.
    async fn release_in_progress_chunks(&self, run_id: Uuid, reason: &str) -> Result<u64> {
        self.client.batch_execute("SET lock_timeout = '30s'").await.map_err(|e| from_postgres(e, "setting lock_timeout"))?;
        let n = self.client
            .execute(
                "UPDATE migration_status.migration_chunk_status SET status = 'pending', error_message = $2, completed_at = NULL \
                 WHERE run_id = $1 AND status = 'in_progress'",
                &[&run_id, &reason],
            )
            .await
            .map_err(|e| from_postgres(e, "releasing chunks left in progress"));
        let _ = self.client.batch_execute("RESET lock_timeout").await;
        n
    }

    /// Rows the plan expects the run's unfinished chunks to copy (sum of their
    /// `chunk_range.estimated_rows`).
    async fn estimated_rows(&self, run_id: Uuid) -> Result<u64> {
        let row = self.client
            .query_one(
                "SELECT coalesce(sum((chunk_range->>'estimated_rows')::numeric), 0)::int8 FROM migration_status.migration_chunk_status \
                 WHERE run_id = $1 AND status <> 'completed'",
                &[&run_id],
            )
            .await
            .map_err(|e| from_postgres(e, "summing the run's estimated rows"))?;
        Ok(row.get::<_, i64>(0).max(0) as u64)
    }

    /// Source tables (database, schema, table) already planned in a run.
    async fn planned_tables(&self, run_id: Uuid) -> Result<Vec<(String, String, String)>> {
        let rows = self.client
            .query("SELECT source_database, source_schema, source_table FROM migration_status.migration_table_status WHERE run_id = $1", &[&run_id])
            .await
            .map_err(|e| from_postgres(e, "listing the run's planned tables"))?;
        Ok(rows.into_iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect())
    }

    /// Refresh a run's heartbeat (its status is left alone).
    async fn heartbeat(&self, run_id: Uuid) -> Result<()> {
        self.client
            .execute(
                "UPDATE migration_status.migration_runs SET heartbeat_at = now() WHERE run_id = $1",
                &[&run_id],
            )
            .await
            .map_err(|e| from_postgres(e, "updating the run heartbeat"))?;
        Ok(())
    }

    /// Finish a run with `status` (a [`run_status`] value: `completed`,
    /// `partial`, `failed`, `mismatch`, `interrupted`), its error (`None`
    /// clears it) and totals derived from its table rows.
    async fn finish_run(&self, run_id: Uuid, status: &str, error: Option<&str>) -> Result<()> {
        // One statement: the tables a failed run leaves `in_progress` become
        // `failed` (counted by `marked`, which the totals' snapshot does not see
        // yet); those an interrupted run leaves go back to `pending`, with the reason.
        let error = error.map(storable);
        let error = error.as_deref();
        let table_error = if status == run_status::INTERRUPTED { interrupted_table_error(error) } else { unfinished_table_error(error) };
        self.client
            .execute(
                "WITH marked AS (UPDATE migration_status.migration_table_status \
                                 SET status = CASE WHEN $2 = 'failed' THEN 'failed' ELSE 'pending' END, error_message = $4 \
                                 WHERE run_id = $1 AND status = 'in_progress' AND $2 IN ('failed', 'interrupted') RETURNING status) \
                 UPDATE migration_status.migration_runs r SET status = $2, error_message = $3, completed_at = now(), heartbeat_at = now(), \
                   total_tables = s.total, completed_tables = s.done, \
                   failed_tables = s.failed + (SELECT count(*)::int FROM marked WHERE status = 'failed'), total_rows_copied = s.rows \
                 FROM (SELECT count(*)::int AS total, count(*) FILTER (WHERE status = 'completed')::int AS done, \
                              count(*) FILTER (WHERE status = 'failed')::int AS failed, coalesce(sum(total_rows_copied), 0)::bigint AS rows \
                       FROM migration_status.migration_table_status WHERE run_id = $1) s \
                 WHERE r.run_id = $1",
                &[&run_id, &status, &error, &table_error],
            )
            .await
            .map_err(|e| from_postgres(e, "recording the run's outcome"))?;
        Ok(())
    }

    /// Refresh a run's table and row totals from its table rows (status unchanged).
    async fn record_totals(&self, run_id: Uuid) -> Result<()> {
        self.client
            .execute(
                "UPDATE migration_status.migration_runs r SET heartbeat_at = now(), \
                   total_tables = s.total, completed_tables = s.done, failed_tables = s.failed, total_rows_copied = s.rows \
                 FROM (SELECT count(*)::int AS total, count(*) FILTER (WHERE status = 'completed')::int AS done, \
                              count(*) FILTER (WHERE status = 'failed')::int AS failed, coalesce(sum(total_rows_copied), 0)::bigint AS rows \
                       FROM migration_status.migration_table_status WHERE run_id = $1) s \
                 WHERE r.run_id = $1",
                &[&run_id],
            )
            .await
            .map_err(|e| from_postgres(e, "recording the run's totals"))?;
        Ok(())
    }

    /// Record the outcome of a step on the run's metadata (`metadata[key] = value`).
    async fn set_run_metadata(&self, run_id: Uuid, key: &str, value: serde_json::Value) -> Result<()> {
        self.client
            .execute(
                "UPDATE migration_status.migration_runs SET metadata = jsonb_set(metadata, ARRAY[$2::text], $3::jsonb, true) WHERE run_id = $1",
                &[&run_id, &key, &value],
            )
            .await
            .map_err(|e| from_postgres(e, "recording step outcome on the run"))?;
        Ok(())
    }

    /// All table rows of a run, in source order.
    async fn tables(&self, run_id: Uuid) -> Result<Vec<TableRecord>> {
        let rows = self.client
            .query(
                "SELECT source_database, source_schema, source_table, source_name, target_database, target_schema, target_table, status, load_mode, plan \
                 FROM migration_status.migration_table_status WHERE run_id = $1 ORDER BY started_at, source_name, source_table",
                &[&run_id],
            )
            .await
            .map_err(|e| from_postgres(e, "reading the run's tables"))?;
        Ok(rows
            .into_iter()
            .map(|r| TableRecord {
                key: TableKey { run_id, source_database: r.get(0), source_schema: r.get(1), source_table: r.get(2) },
                source_name: r.get(3),
                target_database: r.get(4),
                target_schema: r.get(5),
                target_table: r.get(6),
                status: r.get(7),
                load_mode: r.get::<_, Option<String>>(8).as_deref().and_then(LoadMode::parse),
                plan: r.get(9),
            })
            .collect())
    }

    /// Chunks of a run not yet completed, as manifest items.
    async fn unfinished_chunks(&self, run_id: Uuid) -> Result<Vec<ChunkItem>> {
        let rows = self.client
            .query(
                "SELECT t.source_name, c.source_table, c.chunk_id \
                 FROM migration_status.migration_chunk_status c \
                 JOIN migration_status.migration_table_status t USING (run_id, source_database, source_schema, source_table) \
                 WHERE c.run_id = $1 AND c.status <> 'completed' AND t.status NOT IN ('completed', 'skipped') \
                 ORDER BY t.started_at, t.source_name, c.source_table, c.chunk_id",
                &[&run_id],
            )
            .await
            .map_err(|e| from_postgres(e, "listing unfinished chunks"))?;
        Ok(rows
            .into_iter()
            .map(|r| ChunkItem { run_id, source_name: r.get(0), source_table: r.get(1), chunk_id: r.get(2), file_key: None, staged: None })
            .collect())
    }

    /// Mark a chunk `in_progress` (autocommit, for monitoring) unless it is completed.
    /// Returns `false` when the chunk is already completed.
    async fn start_chunk(&self, key: &TableKey, chunk_id: i32) -> Result<bool> {
        let n = self.client
            .execute(
                "UPDATE migration_status.migration_chunk_status SET status = 'in_progress', started_at = now(), retry_count = retry_count + 1, error_message = NULL \
                 WHERE run_id = $1 AND source_database = $2 AND source_schema = $3 AND source_table = $4 AND chunk_id = $5 AND status <> 'completed'",
                &[&key.run_id, &key.source_database, &key.source_schema, &key.source_table, &chunk_id],
            )
            .await
            .map_err(|e| from_postgres(e, "marking the chunk in progress"))?;
        Ok(n == 1)
    }

    /// Mark a chunk failed with its error (autocommit, after the data transaction rolled back).
    async fn fail_chunk(&self, key: &TableKey, chunk_id: i32, error: &Error) -> Result<()> {
        let text: String = storable(&error.to_string()).chars().take(2000).collect();
        self.client
            .execute(
                "UPDATE migration_status.migration_chunk_status SET status = 'failed', error_message = $6, completed_at = now() \
                 WHERE run_id = $1 AND source_database = $2 AND source_schema = $3 AND source_table = $4 AND chunk_id = $5 AND status <> 'completed'",
                &[&key.run_id, &key.source_database, &key.source_schema, &key.source_table, &chunk_id, &text],
            )
            .await
            .map_err(|e| from_postgres(e, "recording the chunk failure"))?;
        Ok(())
    }

    /// Mark a table failed with its error.
    async fn fail_table(&self, key: &TableKey, error: &str) -> Result<()> {
        let error = storable(error);
        self.client
            .execute(
                "UPDATE migration_status.migration_table_status SET status = 'failed', error_message = $5, completed_at = now() \
                 WHERE run_id = $1 AND source_database = $2 AND source_schema = $3 AND source_table = $4",
                &[&key.run_id, &key.source_database, &key.source_schema, &key.source_table, &error],
            )
            .await
            .map_err(|e| from_postgres(e, "recording the table failure"))?;
        Ok(())
    }

    async fn record_table_plan<'t>(tx: &Self::Transaction<'t>, table: &PlannedTable, chunks: &[serde_json::Value]) -> Result<()> {
        let k = &table.key;
        tx.execute(
            "INSERT INTO migration_status.migration_table_status \
               (run_id, source_name, source_database, source_schema, source_table, target_database, target_schema, target_table, \
                status, load_mode, strategy, watermark_from, truncated, total_chunks, plan) \
             VALUES ($1,$2,$3,$4,$5,$6,$7,$8,'in_progress',$9,$10,$11,$12,$13,$14)",
            &[
                &k.run_id, &table.source_name, &k.source_database, &k.source_schema, &k.source_table,
                &table.target_database, &table.target_schema, &table.target_table, &table.load_mode.as_str(),
                &table.strategy, &table.watermark_from, &table.truncated, &(chunks.len() as i32), &table.plan,
            ],
        )
        .await
        .map_err(|e| from_postgres(e, "recording the table plan"))?;
        let stmt = tx
            .prepare(
                "INSERT INTO migration_status.migration_chunk_status (run_id, source_database, source_schema, source_table, chunk_id, chunk_range) \
                 VALUES ($1,$2,$3,$4,$5,$6)",
            )
            .await
            .map_err(|e| from_postgres(e, "preparing chunk inserts"))?;
        for (i, range) in chunks.iter().enumerate() {
            tx.execute(&stmt, &[&k.run_id, &k.source_database, &k.source_schema, &k.source_table, &(i as i32), range])
                .await
                .map_err(|e| from_postgres(e, "recording a chunk"))?;
        }
        Ok(())
    }

    async fn latest_plan(&self, table: &TableMapping) -> Result<Option<serde_json::Value>> {
        let row = self.client
            .query_opt(
                "SELECT plan FROM migration_status.migration_table_status \
                 WHERE source_database = $1 AND source_schema = $2 AND source_table = $3 AND target_schema = $4 AND target_table = $5 \
                   AND plan IS NOT NULL \
                 ORDER BY started_at DESC LIMIT 1",
                &[&table.source_database, &table.source_schema, &table.source_table, &table.target_schema, &table.target_table],
            )
            .await
            .map_err(|e| from_postgres(e, "reading the previous plan of the table"))?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn latest_unfiltered_table(&self, table: &TableMapping) -> Result<Option<(serde_json::Value, String)>> {
        let row = self.client
            .query_opt(
                "SELECT plan, status FROM migration_status.migration_table_status \
                 WHERE source_database = $1 AND source_schema = $2 AND source_table = $3 AND target_schema = $4 AND target_table = $5 \
                   AND plan IS NOT NULL AND plan->>'run_filter' IS NULL \
                 ORDER BY started_at DESC LIMIT 1",
                &[&table.source_database, &table.source_schema, &table.source_table, &table.target_schema, &table.target_table],
            )
            .await
            .map_err(|e| from_postgres(e, "reading the previous run of the table"))?;
        Ok(row.map(|r| (r.get(0), r.get(1))))
    }

    async fn earlier_watermark_floor(&self, table: &TableMapping) -> Result<Option<Option<String>>> {
        let row = self.client
            .query_opt(
                "WITH mine AS (SELECT started_at, status, plan FROM migration_status.migration_table_status \
                    WHERE source_database = $1 AND source_schema = $2 AND source_table = $3 AND target_schema = $4 AND target_table = $5 AND plan IS NOT NULL) \
                 SELECT plan->>'watermark_floor' FROM mine \
                 WHERE plan->>'run_filter' IS NOT NULL \
                   AND started_at > coalesce((SELECT max(started_at) FROM mine WHERE plan->>'run_filter' IS NULL AND status = 'completed'), '-infinity') \
                 ORDER BY started_at LIMIT 1",
                &[&table.source_database, &table.source_schema, &table.source_table, &table.target_schema, &table.target_table],
            )
            .await
            .map_err(|e| from_postgres(e, "reading the watermark floor of earlier --where runs"))?;
        Ok(row.map(|r| r.get::<_, Option<String>>(0)))
    }

    async fn chunk_tally<'t>(tx: &Self::Transaction<'t>, key: &TableKey) -> Result<ChunkTally> {
        let row = tx
            .query_one(
                "SELECT count(*)::int, count(*) FILTER (WHERE status = 'completed')::int, count(*) FILTER (WHERE status = 'failed')::int, \
                        coalesce(sum(rows_inserted + rows_updated) FILTER (WHERE status = 'completed'), 0)::bigint, \
                        (SELECT 'chunk ' || chunk_id || ': ' || error_message FROM migration_status.migration_chunk_status \
                          WHERE run_id = $1 AND source_database = $2 AND source_schema = $3 AND source_table = $4 AND status = 'failed' \
                          ORDER BY chunk_id LIMIT 1) \
                 FROM migration_status.migration_chunk_status WHERE run_id = $1 AND source_database = $2 AND source_schema = $3 AND source_table = $4",
                &[&key.run_id, &key.source_database, &key.source_schema, &key.source_table],
            )
            .await
            .map_err(|e| from_postgres(e, "summing chunk results"))?;
        Ok(ChunkTally { total: row.get(0), completed: row.get(1), failed: row.get(2), rows: row.get(3), first_error: row.get(4) })
    }

    async fn record_table_outcome<'t>(tx: &Self::Transaction<'t>, key: &TableKey, status: &str, tally: &ChunkTally, error: Option<&str>) -> Result<()> {
        tx.execute(
            "UPDATE migration_status.migration_table_status SET status = $5, total_chunks = $6, completed_chunks = $7, failed_chunks = $8, \
               total_rows_copied = $9, error_message = $10, completed_at = now() \
             WHERE run_id = $1 AND source_database = $2 AND source_schema = $3 AND source_table = $4",
            &[&key.run_id, &key.source_database, &key.source_schema, &key.source_table, &status, &tally.total, &tally.completed, &tally.failed, &tally.rows, &error],
        )
        .await
        .map_err(|e| from_postgres(e, "recording the table outcome"))?;
        Ok(())
    }

    async fn set_table_error(&self, key: &TableKey, error: &str) -> Result<()> {
        self.client
            .execute(
                "UPDATE migration_status.migration_table_status SET error_message = $5 \
                 WHERE run_id = $1 AND source_database = $2 AND source_schema = $3 AND source_table = $4",
                &[&key.run_id, &key.source_database, &key.source_schema, &key.source_table, &error],
            )
            .await
            .map_err(|e| from_postgres(e, "recording the table's error"))?;
        Ok(())
    }

    async fn lock_indexes_disabled<'t>(tx: &Self::Transaction<'t>, key: &TableKey) -> Result<Option<bool>> {
        let row = tx
            .query_opt(
                "SELECT indexes_disabled FROM migration_status.migration_table_status \
                 WHERE run_id = $1 AND source_database = $2 AND source_schema = $3 AND source_table = $4 FOR UPDATE",
                &[&key.run_id, &key.source_database, &key.source_schema, &key.source_table],
            )
            .await
            .map_err(|e| from_postgres(e, "reading indexes_disabled"))?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn record_dropped_index<'t>(tx: &Self::Transaction<'t>, key: &TableKey, index: &IndexRecord) -> Result<()> {
        tx.execute(
            "INSERT INTO migration_status.migration_index_status \
               (run_id, source_database, source_schema, source_table, index_schema, index_name, definition) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
            &[&key.run_id, &key.source_database, &key.source_schema, &key.source_table, &index.schema, &index.name, &index.definition],
        )
        .await
        .map_err(|e| from_postgres(e, format!("recording index {}.{}", index.schema, index.name)))?;
        Ok(())
    }

    async fn mark_indexes_disabled<'t>(tx: &Self::Transaction<'t>, key: &TableKey) -> Result<()> {
        tx.execute(
            "UPDATE migration_status.migration_table_status SET indexes_disabled = true, indexes_restored = false \
             WHERE run_id = $1 AND source_database = $2 AND source_schema = $3 AND source_table = $4",
            &[&key.run_id, &key.source_database, &key.source_schema, &key.source_table],
        )
        .await
        .map_err(|e| from_postgres(e, "recording indexes_disabled"))?;
        Ok(())
    }

    async fn indexes_to_restore(&self, key: &TableKey) -> Result<Vec<IndexRecord>> {
        let rows = self.client
            .query(
                "SELECT index_schema, index_name, definition FROM migration_status.migration_index_status \
                 WHERE run_id = $1 AND source_database = $2 AND source_schema = $3 AND source_table = $4 AND status <> 'restored' \
                 ORDER BY index_schema, index_name",
                &[&key.run_id, &key.source_database, &key.source_schema, &key.source_table],
            )
            .await
            .map_err(|e| from_postgres(e, "reading the indexes to restore"))?;
        Ok(rows.iter().map(|r| IndexRecord { schema: r.get(0), name: r.get(1), definition: r.get(2) }).collect())
    }

    async fn mark_index_restored<'t>(tx: &Self::Transaction<'t>, key: &TableKey, index: &IndexRecord) -> Result<()> {
        tx.execute(
            "UPDATE migration_status.migration_index_status SET status = 'restored', restored_at = now(), error_message = NULL, \
               restore_attempts = restore_attempts + 1 \
             WHERE run_id = $1 AND source_database = $2 AND source_schema = $3 AND source_table = $4 AND index_schema = $5 AND index_name = $6",
            &[&key.run_id, &key.source_database, &key.source_schema, &key.source_table, &index.schema, &index.name],
        )
        .await
        .map_err(|e| from_postgres(e, format!("recording index {}.{} restored", index.schema, index.name)))?;
        Ok(())
    }

    async fn record_index_restore_failure(&self, key: &TableKey, index: &IndexRecord, error: &str) -> Result<()> {
        self.client
            .execute(
                "UPDATE migration_status.migration_index_status SET status = 'failed', error_message = $7, restore_attempts = restore_attempts + 1 \
                 WHERE run_id = $1 AND source_database = $2 AND source_schema = $3 AND source_table = $4 AND index_schema = $5 AND index_name = $6",
                &[&key.run_id, &key.source_database, &key.source_schema, &key.source_table, &index.schema, &index.name, &error],
            )
            .await
            .map_err(|e| from_postgres(e, "recording the failed index restore"))?;
        Ok(())
    }

    async fn mark_indexes_restored(&self, key: &TableKey) -> Result<()> {
        self.client
            .execute(
                "UPDATE migration_status.migration_table_status SET indexes_restored = true \
                 WHERE run_id = $1 AND source_database = $2 AND source_schema = $3 AND source_table = $4 AND indexes_disabled",
                &[&key.run_id, &key.source_database, &key.source_schema, &key.source_table],
            )
            .await
            .map_err(|e| from_postgres(e, "recording indexes_restored"))?;
        Ok(())
    }

    async fn pending_indexes<'t>(tx: &Self::Transaction<'t>, key: &TableKey) -> Result<i64> {
        let row = tx
            .query_one(
                "SELECT count(*) FROM migration_status.migration_index_status \
                 WHERE run_id = $1 AND source_database = $2 AND source_schema = $3 AND source_table = $4 AND status <> 'restored'",
                &[&key.run_id, &key.source_database, &key.source_schema, &key.source_table],
            )
            .await
            .map_err(|e| from_postgres(e, "counting dropped indexes"))?;
        Ok(row.get(0))
    }

    async fn chunk_files(&self, key: &TableKey, chunk_id: i32) -> Result<Vec<FileRecord>> {
        let rows = self.client
            .query(
                "SELECT bucket, file_key, bytes, rows, etag, status FROM migration_status.migration_file_status \
                 WHERE run_id = $1 AND source_database = $2 AND source_schema = $3 AND source_table = $4 AND chunk_id = $5 ORDER BY file_key",
                &[&key.run_id, &key.source_database, &key.source_schema, &key.source_table, &chunk_id],
            )
            .await
            .map_err(|e| from_postgres(e, "reading the chunk's staged files"))?;
        Ok(rows
            .iter()
            .map(|r| FileRecord {
                bucket: r.get(0),
                key: r.get(1),
                bytes: r.get::<_, i64>(2) as u64,
                rows: r.get::<_, i64>(3) as u64,
                etag: r.get(4),
                status: r.get(5),
            })
            .collect())
    }

    async fn chunk_unloaded(&self, key: &TableKey, chunk_id: i32) -> Result<bool> {
        let row = self.client
            .query_opt(
                "SELECT unloaded_at IS NOT NULL FROM migration_status.migration_chunk_status \
                 WHERE run_id = $1 AND source_database = $2 AND source_schema = $3 AND source_table = $4 AND chunk_id = $5",
                &[&key.run_id, &key.source_database, &key.source_schema, &key.source_table, &chunk_id],
            )
            .await
            .map_err(|e| from_postgres(e, "reading the chunk's unload state"))?;
        Ok(row.is_some_and(|r| r.get(0)))
    }

    async fn record_unload<'t>(tx: &Self::Transaction<'t>, key: &TableKey, chunk_id: i32, unload: &EarlierUnload) -> Result<()> {
        let k = [&key.run_id as &(dyn tokio_postgres::types::ToSql + Sync), &key.source_database, &key.source_schema, &key.source_table, &chunk_id];
        tx.execute(
            "DELETE FROM migration_status.migration_file_status WHERE run_id = $1 AND source_database = $2 AND source_schema = $3 AND source_table = $4 AND chunk_id = $5",
            &k,
        )
        .await
        .map_err(|e| from_postgres(e, "clearing the chunk's file list"))?;
        for f in &unload.files {
            tx.execute(
                "INSERT INTO migration_status.migration_file_status \
                 (run_id, source_database, source_schema, source_table, chunk_id, file_key, bucket, bytes, etag, rows, unloaded_by_run) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                &[&key.run_id, &key.source_database, &key.source_schema, &key.source_table, &chunk_id, &f.key, &f.bucket, &(f.bytes as i64), &f.etag, &(f.rows as i64), &unload.unloaded_by],
            )
            .await
            .map_err(|e| from_postgres(e, format!("recording staged file s3://{}/{}", f.bucket, f.key)))?;
        }
        tx.execute(
            "UPDATE migration_status.migration_chunk_status SET rows_unloaded = $6, unloaded_at = now(), unload_prefix = $7 \
             WHERE run_id = $1 AND source_database = $2 AND source_schema = $3 AND source_table = $4 AND chunk_id = $5",
            &[&key.run_id, &key.source_database, &key.source_schema, &key.source_table, &chunk_id, &(unload.rows_unloaded as i64), &unload.prefix],
        )
        .await
        .map_err(|e| from_postgres(e, "recording the chunk's unload"))?;
        Ok(())
    }

    async fn earlier_unload(&self, earlier: Uuid, key: &TableKey, filter_sql: &str) -> Result<Option<EarlierUnload>> {
        let row = self.client
            .query_opt(
                "SELECT chunk_id, unload_prefix, rows_unloaded FROM migration_status.migration_chunk_status \
                 WHERE run_id = $1 AND source_database = $2 AND source_schema = $3 AND source_table = $4 \
                   AND chunk_range->>'filter_sql' = $5 AND unloaded_at IS NOT NULL ORDER BY chunk_id LIMIT 1",
                &[&earlier, &key.source_database, &key.source_schema, &key.source_table, &filter_sql],
            )
            .await
            .map_err(|e| from_postgres(e, "looking up the earlier run's unload"))?;
        let Some(row) = row else { return Ok(None) };
        let chunk_id: i32 = row.get(0);
        let earlier_key = TableKey { run_id: earlier, ..key.clone() };
        let files = self.chunk_files(&earlier_key, chunk_id).await?;
        let unloaded_by: Option<Uuid> = self.client
            .query_opt(
                "SELECT unloaded_by_run FROM migration_status.migration_file_status \
                 WHERE run_id = $1 AND source_database = $2 AND source_schema = $3 AND source_table = $4 AND chunk_id = $5 LIMIT 1",
                &[&earlier, &key.source_database, &key.source_schema, &key.source_table, &chunk_id],
            )
            .await
            .map_err(|e| from_postgres(e, "looking up the earlier run's unload"))?
            .and_then(|r| r.get(0));
        Ok(Some(EarlierUnload {
            prefix: row.get(1),
            rows_unloaded: row.get::<_, Option<i64>>(2).unwrap_or(0) as u64,
            files: files.into_iter().map(|f| FileRecord { status: "pending".into(), ..f }).collect(),
            unloaded_by: unloaded_by.unwrap_or(earlier),
        }))
    }

    async fn run_metadata_text(&self, run_id: Uuid, key: &str) -> Result<Option<String>> {
        let row = self.client
            .query_opt("SELECT metadata->>$2 FROM migration_status.migration_runs WHERE run_id = $1", &[&run_id, &key])
            .await
            .map_err(|e| from_postgres(e, "reading the run's metadata"))?;
        Ok(row.and_then(|r| r.get::<_, Option<String>>(0)))
    }

    async fn record_file_failure(&self, key: &TableKey, chunk_id: i32, file_key: &str, error: &str) -> Result<()> {
        self.client
            .execute(
                "UPDATE migration_status.migration_file_status SET status = 'failed', error_message = $7, attempts = attempts + 1 \
                 WHERE run_id = $1 AND source_database = $2 AND source_schema = $3 AND source_table = $4 AND chunk_id = $5 AND file_key = $6 AND status <> 'completed'",
                &[&key.run_id, &key.source_database, &key.source_schema, &key.source_table, &chunk_id, &file_key, &error],
            )
            .await
            .map_err(|e| from_postgres(e, "recording the file failure"))?;
        Ok(())
    }

    async fn lock_file<'t>(tx: &Self::Transaction<'t>, key: &TableKey, chunk_id: i32, file_key: &str) -> Result<Option<String>> {
        let row = tx
            .query_opt(
                "SELECT status FROM migration_status.migration_file_status \
                 WHERE run_id = $1 AND source_database = $2 AND source_schema = $3 AND source_table = $4 AND chunk_id = $5 AND file_key = $6 FOR UPDATE",
                &[&key.run_id, &key.source_database, &key.source_schema, &key.source_table, &chunk_id, &file_key],
            )
            .await
            .map_err(|e| from_postgres(e, "locking the file status row"))?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn complete_file<'t>(tx: &Self::Transaction<'t>, key: &TableKey, chunk_id: i32, file_key: &str, counts: ChunkCounts) -> Result<()> {
        tx.execute(
            "UPDATE migration_status.migration_file_status SET status = 'completed', rows_copied = $7, rows_inserted = $8, rows_updated = $9, \
               attempts = attempts + 1, error_message = NULL, completed_at = now() \
             WHERE run_id = $1 AND source_database = $2 AND source_schema = $3 AND source_table = $4 AND chunk_id = $5 AND file_key = $6",
            &[
                &key.run_id, &key.source_database, &key.source_schema, &key.source_table, &chunk_id, &file_key,
                &(counts.read as i64), &(counts.inserted as i64), &(counts.updated as i64),
            ],
        )
        .await
        .map_err(|e| from_postgres(e, "marking the file completed"))?;
        Ok(())
    }

    async fn file_tally<'t>(tx: &Self::Transaction<'t>, key: &TableKey, chunk_id: i32) -> Result<(u64, ChunkCounts)> {
        let row = tx
            .query_one(
                "SELECT count(*) FILTER (WHERE status <> 'completed'), COALESCE(sum(rows_copied), 0)::bigint, \
                        COALESCE(sum(rows_inserted), 0)::bigint, COALESCE(sum(rows_updated), 0)::bigint \
                 FROM migration_status.migration_file_status \
                 WHERE run_id = $1 AND source_database = $2 AND source_schema = $3 AND source_table = $4 AND chunk_id = $5",
                &[&key.run_id, &key.source_database, &key.source_schema, &key.source_table, &chunk_id],
            )
            .await
            .map_err(|e| from_postgres(e, "counting the chunk's unfinished files"))?;
        let (read, inserted, updated) = (row.get::<_, i64>(1) as u64, row.get::<_, i64>(2) as u64, row.get::<_, i64>(3) as u64);
        Ok((row.get::<_, i64>(0) as u64, ChunkCounts { read, inserted, updated, unchanged: read.saturating_sub(inserted + updated) }))
    }

    async fn unfinished_files(&self, run_id: Uuid) -> Result<Vec<ChunkItem>> {
        let rows = self.client
            .query(
                "SELECT t.source_name, f.source_table, f.chunk_id, f.file_key FROM migration_status.migration_file_status f \
                 JOIN migration_status.migration_table_status t USING (run_id, source_database, source_schema, source_table) \
                 WHERE f.run_id = $1 AND f.status <> 'completed' ORDER BY t.source_name, f.source_table, f.chunk_id, f.file_key",
                &[&run_id],
            )
            .await
            .map_err(|e| from_postgres(e, "listing the run's unfinished staged files"))?;
        Ok(rows
            .iter()
            .map(|r| ChunkItem { run_id, source_name: r.get(0), source_table: r.get(1), chunk_id: r.get(2), file_key: Some(r.get(3)), staged: None })
            .collect())
    }

    async fn overview(&self, run_id: Option<Uuid>, limit: i64) -> Result<Vec<RunOverview>> {
        overview(self.client, run_id, limit).await
    }

    async fn set_table_plan(&self, key: &TableKey, plan: serde_json::Value) -> Result<()> {
        self.client
            .execute(
                "UPDATE migration_status.migration_table_status SET plan = $5 \
                 WHERE run_id = $1 AND source_database = $2 AND source_schema = $3 AND source_table = $4",
                &[&key.run_id, &key.source_database, &key.source_schema, &key.source_table, &plan],
            )
            .await
            .map_err(|e| from_postgres(e, "recording the refreshed table plan"))?;
        Ok(())
    }

    async fn table_plan(&self, key: &TableKey) -> Result<Option<serde_json::Value>> {
        let row = self.client
            .query_opt(
                "SELECT plan FROM migration_status.migration_table_status WHERE run_id = $1 AND source_database = $2 AND source_schema = $3 AND source_table = $4",
                &[&key.run_id, &key.source_database, &key.source_schema, &key.source_table],
            )
            .await
            .map_err(|e| from_postgres(e, "reading the table plan"))?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn lock_chunk<'t>(tx: &Self::Transaction<'t>, key: &TableKey, chunk_id: i32) -> Result<Option<ChunkRecord>> {
        PgStatusStore::lock_chunk_on(tx, key, chunk_id).await
    }

    async fn complete_chunk<'t>(tx: &Self::Transaction<'t>, key: &TableKey, chunk_id: i32, counts: ChunkCounts) -> Result<()> {
        PgStatusStore::complete_chunk_on(tx, key, chunk_id, counts).await
    }
}
