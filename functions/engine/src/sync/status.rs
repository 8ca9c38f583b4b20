//! The `migration_status` records: what a run, a table, a chunk, an index
//! and a staged file are and which statuses they go through, as the
//! [`StatusStore`](crate::sync::status_store::StatusStore) seam reads and
//! writes them ([`PgStatusStore`](crate::sync::status_postgres::PgStatusStore)
//! in PostgreSQL).
//!
//! Everything that must survive a crash lives in those tables (never only in
//! memory or in state-machine history). Table and chunk rows are keyed like
//! the legacy tool's: `(run_id, source_database, source_schema,
//! source_table[, chunk_id])`. A chunk's `completed` row is written by
//! [`StatusStore::complete_chunk`](crate::sync::status_store::StatusStore::complete_chunk)
//! inside the same transaction as its data (see [`crate::sync::copy`]).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

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

/// Statuses of a run in `migration_runs.status` (schema/V5__run_state.sql).
pub mod run_status {
    /// Tables are being planned; a table is planned once its row exists.
    pub const PLANNING: &str = "planning";
    /// Every selected table is planned; chunks are being copied.
    pub const RUNNING: &str = "running";
    /// Every table copied and reconciliation matched.
    pub const COMPLETED: &str = "completed";
    /// Some tables failed, others completed.
    pub const PARTIAL: &str = "partial";
    /// Nothing usable, or a step failed; also a run whose copy finished but
    /// whose reconcile could not check a table (its error starts with
    /// [`RECONCILE_UNCHECKED`]; never resumed automatically: nothing is left to copy).
    pub const FAILED: &str = "failed";
    /// Every table copied and reconciliation found differences (a data
    /// verdict; not resumable: nothing is left to copy).
    pub const MISMATCH: &str = "mismatch";
    /// Stopped by a signal at a chunk boundary.
    pub const INTERRUPTED: &str = "interrupted";
    /// Replaced by a newer run started with `--no-resume`.
    pub const SUPERSEDED: &str = "superseded";
    /// Statuses a later run may resume (work may be left), unless its copy
    /// finished ([`resumable_sql`]).
    pub const RESUMABLE: [&str; 5] = [PLANNING, RUNNING, INTERRUPTED, PARTIAL, FAILED];
    /// The start of the error message of a run whose copy finished and whose
    /// reconcile could not check some tables (a dependency failed: Snowflake
    /// login, a database unreachable, a value that cannot be compared): the
    /// run is `failed` — never `mismatch`, which is a data verdict
    /// (docs/sync.md §6.4).
    pub const RECONCILE_UNCHECKED: &str = "reconciliation could not check";
    /// The SQL condition (over `migration_runs` as `r`, the statuses bound as
    /// `$statuses_param` text[]) a run must meet to be resumed automatically
    /// or superseded: a status in [`RESUMABLE`], and its copy not finished.
    /// A run's copy finished when every table of it is `completed` and a
    /// reconcile of it ran (`metadata.reconcile`): it failed or was stopped
    /// in or after reconcile (a table it could not check, conflict
    /// detection failed or interrupted). Resuming it would copy nothing,
    /// leave the night's new rows unsynced while the cause lasts, and
    /// reconcile the old run against newer source rows, reporting them
    /// missing; the next run is a new one instead (docs/sync.md §6.4).
    /// `--resume-run-id` still resumes it.
    pub fn resumable_sql(statuses_param: usize) -> String {
        format!(
            "r.status = ANY(${statuses_param}) AND NOT (r.metadata ? 'reconcile' AND NOT EXISTS \
               (SELECT 1 FROM migration_status.migration_table_status t WHERE t.run_id = r.run_id AND t.status NOT IN ('completed', 'skipped')))"
        )
    }
}

/// What the status store knows about a run: enough to decide whether it can
/// be resumed and to name its holder in messages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Run id.
    pub run_id: Uuid,
    /// Status (see [`run_status`]).
    pub status: String,
    /// `execution_hash` of the run (config + selection + mode).
    pub execution_hash: String,
    /// Start time.
    pub started_at: chrono::DateTime<chrono::Utc>,
    /// Seconds since the last heartbeat.
    pub heartbeat_age_seconds: f64,
    /// Host of the thaw process that runs it (absent for Lambda runs).
    pub host: Option<String>,
    /// Process id of that thaw process.
    pub pid: Option<i32>,
    /// PostgreSQL backend pid of the session holding the run's advisory locks.
    pub lock_backend_pid: Option<i32>,
    /// True when that session is still connected and holds an advisory lock.
    pub lock_session_alive: bool,
    /// The run's error message (`migration_runs.error_message`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl RunRecord {
    /// `"run <id> (status s, started <time>, host <h> pid <p>, last heartbeat n s ago)"` for messages.
    pub fn describe(&self) -> String {
        let who = match (&self.host, self.pid) {
            (Some(h), Some(p)) => format!(", host {h} pid {p}"),
            (None, Some(p)) => format!(", pid {p}"),
            _ => String::new(),
        };
        format!(
            "run {} (status {}, started {}{who}, last heartbeat {:.0} s ago)",
            self.run_id,
            self.status,
            self.started_at.format("%Y-%m-%d %H:%M:%S UTC"),
            self.heartbeat_age_seconds
        )
    }

    /// Whether a live process still drives the run: it is
    /// `planning`/`running`, its heartbeat is younger than
    /// [`DEAD_AFTER_SECONDS`], and, when it has a lock session (local runs),
    /// that session still holds its advisory locks (a killed `thaw run` is
    /// dead at once; the heartbeat guards against a reused backend pid).
    /// A run that is not alive can be taken over.
    /// `own_backend_pid` is the caller's own lock session (never "another" holder).
    pub fn is_alive(&self, own_backend_pid: Option<i32>) -> bool {
        if !matches!(self.status.as_str(), run_status::PLANNING | run_status::RUNNING) {
            return false;
        }
        let fresh = self.heartbeat_age_seconds < DEAD_AFTER_SECONDS as f64;
        match self.lock_backend_pid {
            Some(pid) if Some(pid) == own_backend_pid => false,
            Some(_) => self.lock_session_alive && fresh,
            None => fresh,
        }
    }
}

/// A `planning`/`running` run without a lock session whose heartbeat is older
/// than this many seconds is considered dead and may be taken over: 30 minutes
/// (the copy-chunk step refreshes the heartbeat while chunks are copied).
pub const DEAD_AFTER_SECONDS: i64 = STUCK_AFTER_MINUTES as i64 * 60;

/// `text` as PostgreSQL `text` can store it: each NUL written `\0`. An error
/// naming a value or key that holds a NUL could otherwise not be recorded,
/// and its chunk stayed `in_progress` with no error.
pub fn storable(text: &str) -> String {
    text.replace('\0', "\\0")
}

/// The error recorded on a table a `failed` run left unfinished
/// ([`StatusStore::finish_run`](crate::sync::status_store::StatusStore::finish_run)): `not finished: the run failed: <run error>`.
pub fn unfinished_table_error(run_error: Option<&str>) -> String {
    format!("not finished: the run failed: {}", run_error.unwrap_or("no error recorded"))
}

/// The error recorded on a table an `interrupted` run left unfinished (its
/// status goes back from `in_progress` to `pending`, [`StatusStore::finish_run`](crate::sync::status_store::StatusStore::finish_run)):
/// `not finished: the run was <run error>`, e.g. `not finished: the run was
/// interrupted by SIGTERM; resume with the same command or --resume-run-id …`.
pub fn interrupted_table_error(run_error: Option<&str>) -> String {
    format!("not finished: the run was {}", run_error.unwrap_or("interrupted"))
}

/// Run metadata key holding the run id given to `--reuse-unload`.
pub const REUSE_UNLOAD_KEY: &str = "reuse_unload";

/// Heartbeats more frequent than this many seconds are skipped ([`StatusStore::touch`](crate::sync::status_store::StatusStore::touch)).
pub const HEARTBEAT_MIN_INTERVAL_SECONDS: i32 = 10;

/// The thaw process driving a run: recorded on the run row so that other
/// runs can name it and tell whether it is still alive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Holder {
    /// Host name of the thaw process.
    pub host: Option<String>,
    /// Its process id.
    pub pid: Option<i32>,
    /// Backend pid of the PostgreSQL session holding the run's advisory locks.
    pub lock_backend_pid: Option<i32>,
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
    /// The table plan (columns, keys, watermark) as JSON; see [`crate::sync::table_plan::TablePlan`].
    pub plan: serde_json::Value,
}

/// The stored definition of one chunk.
#[derive(Debug, Clone)]
pub struct ChunkRecord {
    /// The `chunk_range` JSON (strategy metadata, `filter_sql`, `estimated_rows`).
    pub chunk_range: serde_json::Value,
    /// Current status.
    pub status: String,
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

/// A table's row as plan records it in `migration_table_status` (status
/// `in_progress`), together with its chunk rows ([`StatusStore::record_table_plan`](crate::sync::status_store::StatusStore::record_table_plan)).
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedTable {
    /// Identity (run and source table).
    pub key: TableKey,
    /// Source name in the config.
    pub source_name: String,
    /// PostgreSQL database.
    pub target_database: String,
    /// Target schema.
    pub target_schema: String,
    /// Target table.
    pub target_table: String,
    /// Load mode decided for the table.
    pub load_mode: LoadMode,
    /// Chunking strategy name (`single`, `numeric_range`, `date_range`, …).
    pub strategy: String,
    /// The watermark predicate the run reads from, if any.
    pub watermark_from: Option<String>,
    /// Whether the run replaces the target's rows (`truncate_onstart`).
    pub truncated: bool,
    /// The table plan as JSON ([`crate::sync::table_plan::TablePlan`]).
    pub plan: serde_json::Value,
}

/// A source table and the target it is copied into, across runs: what the
/// plan of an earlier run is looked up by (docs/sync.md §3.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableMapping {
    /// Snowflake database.
    pub source_database: String,
    /// Snowflake schema.
    pub source_schema: String,
    /// Snowflake table.
    pub source_table: String,
    /// Target schema.
    pub target_schema: String,
    /// Target table.
    pub target_table: String,
}

/// A table's chunk rows summed by merge ([`StatusStore::chunk_tally`](crate::sync::status_store::StatusStore::chunk_tally)).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChunkTally {
    /// Chunks planned.
    pub total: i32,
    /// Chunks completed.
    pub completed: i32,
    /// Chunks failed.
    pub failed: i32,
    /// Rows inserted plus updated by the completed chunks.
    pub rows: i64,
    /// "chunk N: error" of the lowest-numbered failed chunk.
    pub first_error: Option<String>,
}

/// One secondary index `disable_index` dropped, as recorded in
/// `migration_index_status` (docs/sync.md §7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexRecord {
    /// Schema of the index.
    pub schema: String,
    /// Index name.
    pub name: String,
    /// `pg_get_indexdef()` text: the `CREATE INDEX` that restores it.
    pub definition: String,
}

/// An earlier run's unload of the same chunk predicate (`--reuse-unload`,
/// docs/sync.md §13).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EarlierUnload {
    /// Where the files are (`s3://bucket/prefix` or `@stage/path`).
    pub prefix: String,
    /// Rows the unload wrote.
    pub rows_unloaded: u64,
    /// Its files, all `pending` for the new run.
    pub files: Vec<FileRecord>,
    /// The run that unloaded them.
    pub unloaded_by: Uuid,
}

/// One table of a run as `thaw status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableOverview {
    /// Snowflake table.
    pub source_table: String,
    /// PostgreSQL `schema.table`.
    pub target: String,
    /// Table status (`in_progress`, `completed`, `failed`).
    pub status: String,
    /// Load mode (`copy`, `upsert`, `insert_only`).
    pub load_mode: Option<String>,
    /// Chunks planned.
    pub chunks: i64,
    /// Chunks completed.
    pub chunks_completed: i64,
    /// Chunks failed.
    pub chunks_failed: i64,
    /// Chunks in progress right now.
    pub chunks_in_progress: i64,
    /// Rows read from Snowflake by the completed chunks.
    pub rows: i64,
    /// Seconds from the first chunk start to the last chunk end (0 before any).
    pub seconds: f64,
    /// `rows / seconds` (0 when no time has passed).
    pub rows_per_second: f64,
    /// The table's error, when it failed.
    pub error: Option<String>,
}

/// A failed chunk as `thaw status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailedChunk {
    /// Snowflake table.
    pub source_table: String,
    /// Chunk number.
    pub chunk_id: i32,
    /// Attempts so far.
    pub retry_count: i32,
    /// The chunk's error.
    pub error: Option<String>,
}

/// One run as `thaw status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunOverview {
    /// Run id.
    pub run_id: Uuid,
    /// Run status (see [`run_status`]).
    pub status: String,
    /// `incremental` or `full`.
    pub mode: String,
    /// Start time.
    pub started_at: chrono::DateTime<chrono::Utc>,
    /// Last heartbeat.
    pub heartbeat_at: chrono::DateTime<chrono::Utc>,
    /// End time, when finished.
    pub completed_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Host and pid of the thaw process that ran it last (absent for Lambda runs).
    pub host: Option<String>,
    /// Process id.
    pub pid: Option<i32>,
    /// Rows read by completed chunks, all tables.
    pub rows: i64,
    /// The run's error.
    pub error: Option<String>,
    /// For a `planning`/`running` run: whether a live process still drives
    /// it ([`RunRecord::is_alive`]: a killed `thaw run` is dead at once, a
    /// run without a lock session after [`DEAD_AFTER_SECONDS`] without a
    /// heartbeat); a dead one is resumed by the next run of its
    /// configuration. `None` for a finished run.
    #[serde(default)]
    pub alive: Option<bool>,
    /// Its tables.
    pub tables: Vec<TableOverview>,
    /// Its failed chunks (at most 50), with their errors.
    pub failed_chunks: Vec<FailedChunk>,
}

/// One file of a chunk, as recorded in `migration_file_status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRecord {
    /// S3 bucket.
    pub bucket: String,
    /// S3 object key.
    pub key: String,
    /// Object size in bytes.
    pub bytes: u64,
    /// Rows in the file (Parquet footer).
    pub rows: u64,
    /// S3 ETag as LIST shows it.
    pub etag: String,
    /// `pending`, `in_progress`, `completed` or `failed`.
    pub status: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(status: &str, heartbeat_age_seconds: f64, lock_backend_pid: Option<i32>, lock_session_alive: bool) -> RunRecord {
        RunRecord {
            run_id: Uuid::nil(),
            status: status.into(),
            execution_hash: "h".into(),
            started_at: chrono::Utc::now(),
            heartbeat_age_seconds,
            host: Some("host".into()),
            pid: Some(7),
            lock_backend_pid,
            lock_session_alive,
            error: None,
        }
    }

    #[test]
    fn run_liveness_follows_lock_session_and_heartbeat() {
        // Lambda-driven runs (no lock session): the heartbeat decides.
        assert!(record("running", 10.0, None, false).is_alive(None));
        assert!(!record("running", DEAD_AFTER_SECONDS as f64 + 1.0, None, false).is_alive(None));
        // Local runs: a gone lock session is dead at once, even with a fresh heartbeat.
        assert!(record("planning", 10.0, Some(42), true).is_alive(None));
        assert!(!record("running", 10.0, Some(42), false).is_alive(None));
        assert!(!record("running", DEAD_AFTER_SECONDS as f64 + 1.0, Some(42), true).is_alive(None));
        // Our own lock session is never "another" live holder; finished runs are never alive.
        assert!(!record("running", 10.0, Some(42), true).is_alive(Some(42)));
        for s in ["interrupted", "partial", "failed", "completed", "mismatch", "superseded"] {
            assert!(!record(s, 1.0, None, false).is_alive(None), "{s}");
        }
    }

    #[test]
    fn run_description_names_id_status_host_and_pid() {
        let d = record("running", 12.4, None, false).describe();
        assert!(d.contains("00000000-0000-0000-0000-000000000000") && d.contains("status running") && d.contains("host host pid 7") && d.contains("12 s ago"), "{d}");
    }
}
