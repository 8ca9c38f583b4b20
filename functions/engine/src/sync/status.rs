//! The `migration_status` state store: runs, tables and chunks.
//!
//! Everything that must survive a crash lives here (never only in memory or
//! in state-machine history). Table and chunk rows are keyed like the legacy
//! tool's: `(run_id, source_database, source_schema, source_table[, chunk_id])`.
//! A chunk's `completed` row is written by [`complete_chunk`] inside the same
//! transaction as its data (see [`crate::sync::copy`]).

use serde::{Deserialize, Serialize};
use tokio_postgres::{Client, GenericClient};
use uuid::Uuid;

use crate::error::{from_postgres, Error, ErrorKind, Result};
use crate::contract::ChunkItem;

/// Default age limit for resuming a run: 168 hours (7 days), the same for the
/// CLI and the Lambdas (the legacy tool had 12 h in one and 168 h in the other).
pub const DEFAULT_RESUME_MAX_AGE_HOURS: u32 = 168;

/// A run older than this without a heartbeat is considered stuck: 30 minutes.
pub const STUCK_AFTER_MINUTES: i32 = 30;

/// How a table's chunks are written, decided once per table before any worker starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadMode {
    /// Target empty (or truncated): binary COPY straight into it.
    Copy,
    /// COPY into a staging table, then `INSERT ... ON CONFLICT DO UPDATE`.
    Upsert,
    /// COPY into staging, then `INSERT ... ON CONFLICT DO NOTHING`.
    InsertOnly,
}

impl LoadMode {
    /// Name stored in `migration_table_status.load_mode`.
    pub fn as_str(self) -> &'static str {
        match self {
            LoadMode::Copy => "copy",
            LoadMode::Upsert => "upsert",
            LoadMode::InsertOnly => "insert_only",
        }
    }
    /// Parse a stored name.
    pub fn parse(s: &str) -> Option<LoadMode> {
        match s {
            "copy" => Some(LoadMode::Copy),
            "upsert" => Some(LoadMode::Upsert),
            "insert_only" => Some(LoadMode::InsertOnly),
            _ => None,
        }
    }
}

/// Identity of a table within a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableKey {
    /// Run id.
    pub run_id: Uuid,
    /// Snowflake database.
    pub source_database: String,
    /// Snowflake schema.
    pub source_schema: String,
    /// Snowflake table.
    pub source_table: String,
}

/// Record a new run and return its id.
pub async fn create_run(client: &Client, config_hash: &str, execution_hash: &str, mode: &str, metadata: serde_json::Value) -> Result<Uuid> {
    let row = client
        .query_one(
            "INSERT INTO migration_status.migration_runs (config_hash, execution_hash, mode, metadata) \
             VALUES ($1, $2, $3, $4) RETURNING run_id",
            &[&config_hash, &execution_hash, &mode, &metadata],
        )
        .await
        .map_err(|e| from_postgres(e, "recording a new run in migration_status.migration_runs"))?;
    Ok(row.get(0))
}

/// Find the newest unfinished run with the same `execution_hash` started
/// within `max_age_hours`.
pub async fn find_resumable(client: &Client, execution_hash: &str, max_age_hours: u32) -> Result<Option<Uuid>> {
    let hours = max_age_hours as f64;
    let row = client
        .query_opt(
            "SELECT run_id FROM migration_status.migration_runs \
             WHERE execution_hash = $1 AND status <> 'completed' \
               AND started_at > now() - make_interval(hours => $2::float8::int) \
             ORDER BY started_at DESC LIMIT 1",
            &[&execution_hash, &hours],
        )
        .await
        .map_err(|e| from_postgres(e, "looking for a resumable run"))?;
    Ok(row.map(|r| r.get(0)))
}

/// Check that `run_id` exists and is not completed (for `--resume-run-id`).
pub async fn check_resumable(client: &Client, run_id: Uuid) -> Result<()> {
    let row = client
        .query_opt("SELECT status FROM migration_status.migration_runs WHERE run_id = $1", &[&run_id])
        .await
        .map_err(|e| from_postgres(e, "reading the run to resume"))?;
    match row.map(|r| r.get::<_, String>(0)) {
        None => Err(Error::config(format!("run {run_id} does not exist in migration_status.migration_runs; omit --resume-run-id to start a new run"))),
        Some(s) if s == "completed" => Err(Error::config(format!("run {run_id} is already completed; nothing to resume"))),
        Some(_) => Ok(()),
    }
}

/// Mark a run as running again and refresh its heartbeat.
pub async fn heartbeat(client: &Client, run_id: Uuid) -> Result<()> {
    client
        .execute(
            "UPDATE migration_status.migration_runs SET heartbeat_at = now(), status = CASE WHEN status = 'completed' THEN status ELSE 'running' END WHERE run_id = $1",
            &[&run_id],
        )
        .await
        .map_err(|e| from_postgres(e, "updating the run heartbeat"))?;
    Ok(())
}

/// Finish a run with `status` (`completed`, `failed` or `partial`) and totals
/// derived from its table rows.
pub async fn finish_run(client: &Client, run_id: Uuid, status: &str, error: Option<&str>) -> Result<()> {
    client
        .execute(
            "UPDATE migration_status.migration_runs r SET status = $2, error_message = $3, completed_at = now(), heartbeat_at = now(), \
               total_tables = s.total, completed_tables = s.done, failed_tables = s.failed, total_rows_copied = s.rows \
             FROM (SELECT count(*)::int AS total, count(*) FILTER (WHERE status = 'completed')::int AS done, \
                          count(*) FILTER (WHERE status = 'failed')::int AS failed, coalesce(sum(total_rows_copied), 0)::bigint AS rows \
                   FROM migration_status.migration_table_status WHERE run_id = $1) s \
             WHERE r.run_id = $1",
            &[&run_id, &status, &error],
        )
        .await
        .map_err(|e| from_postgres(e, "recording the run's outcome"))?;
    Ok(())
}

/// Record the outcome of a step on the run's metadata (`metadata[key] = value`).
pub async fn set_run_metadata(client: &Client, run_id: Uuid, key: &str, value: serde_json::Value) -> Result<()> {
    client
        .execute(
            "UPDATE migration_status.migration_runs SET metadata = jsonb_set(metadata, ARRAY[$2::text], $3::jsonb, true) WHERE run_id = $1",
            &[&run_id, &key, &value],
        )
        .await
        .map_err(|e| from_postgres(e, "recording step outcome on the run"))?;
    Ok(())
}

/// A table row of a run, as the later steps need it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TableRecord {
    /// Identity.
    pub key: TableKey,
    /// Source name.
    pub source_name: String,
    /// PostgreSQL database, schema, table.
    pub target_database: String,
    /// Target schema.
    pub target_schema: String,
    /// Target table.
    pub target_table: String,
    /// Status.
    pub status: String,
    /// Load mode.
    pub load_mode: Option<LoadMode>,
    /// The table plan (columns, keys, watermark) as JSON; see [`crate::sync::plan::TablePlan`].
    pub plan: serde_json::Value,
}

/// All table rows of a run, in source order.
pub async fn tables(client: &Client, run_id: Uuid) -> Result<Vec<TableRecord>> {
    let rows = client
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
pub async fn unfinished_chunks(client: &Client, run_id: Uuid) -> Result<Vec<ChunkItem>> {
    let rows = client
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
        .map(|r| ChunkItem { run_id, source_name: r.get(0), source_table: r.get(1), chunk_id: r.get(2) })
        .collect())
}

/// The stored definition of one chunk.
#[derive(Debug, Clone)]
pub struct ChunkRecord {
    /// The `chunk_range` JSON (strategy metadata, `filter_sql`, `estimated_rows`).
    pub chunk_range: serde_json::Value,
    /// Current status.
    pub status: String,
}

/// Mark a chunk `in_progress` (autocommit, for monitoring) unless it is completed.
/// Returns `false` when the chunk is already completed.
pub async fn start_chunk(client: &Client, key: &TableKey, chunk_id: i32) -> Result<bool> {
    let n = client
        .execute(
            "UPDATE migration_status.migration_chunk_status SET status = 'in_progress', started_at = now(), retry_count = retry_count + 1, error_message = NULL \
             WHERE run_id = $1 AND source_database = $2 AND source_schema = $3 AND source_table = $4 AND chunk_id = $5 AND status <> 'completed'",
            &[&key.run_id, &key.source_database, &key.source_schema, &key.source_table, &chunk_id],
        )
        .await
        .map_err(|e| from_postgres(e, "marking the chunk in progress"))?;
    Ok(n == 1)
}

/// Lock a chunk row inside the data transaction and return it; `None` when
/// the chunk does not exist.
pub async fn lock_chunk<C: GenericClient>(tx: &C, key: &TableKey, chunk_id: i32) -> Result<Option<ChunkRecord>> {
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

/// Row counts of one chunk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkCounts {
    /// Rows read from Snowflake.
    pub read: u64,
    /// Rows inserted.
    pub inserted: u64,
    /// Rows updated.
    pub updated: u64,
    /// Rows left unchanged.
    pub unchanged: u64,
}

/// Mark a chunk completed with its counts, inside the data transaction.
pub async fn complete_chunk<C: GenericClient>(tx: &C, key: &TableKey, chunk_id: i32, counts: ChunkCounts) -> Result<()> {
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

/// Mark a chunk failed with its error (autocommit, after the data transaction rolled back).
pub async fn fail_chunk(client: &Client, key: &TableKey, chunk_id: i32, error: &Error) -> Result<()> {
    let text: String = error.to_string().chars().take(2000).collect();
    client
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
pub async fn fail_table(client: &Client, key: &TableKey, error: &str) -> Result<()> {
    client
        .execute(
            "UPDATE migration_status.migration_table_status SET status = 'failed', error_message = $5, completed_at = now() \
             WHERE run_id = $1 AND source_database = $2 AND source_schema = $3 AND source_table = $4",
            &[&key.run_id, &key.source_database, &key.source_schema, &key.source_table, &error],
        )
        .await
        .map_err(|e| from_postgres(e, "recording the table failure"))?;
    Ok(())
}

