//! The `StatusStore` seam: every read and write of the `migration_status`
//! schema the sync path makes for runs, tables, chunks and the heartbeat
//! (docs/sync.md §6.9).
//!
//! Two implementations: [`PgStatusStore`] (the SQL, in
//! [`crate::sync::status`]) and [`MemoryStatusStore`] (a map behind a mutex,
//! for unit tests of the step logic without a database). The methods that
//! must commit together with a chunk's rows (lock the chunk row, mark it
//! `completed`) take the caller's transaction
//! ([`StatusStore::Transaction`]) instead of using the store's connection:
//! a chunk's rows and its `completed` row commit or roll back as one, which
//! is what makes a copy exactly once (docs/sync.md §4.2).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use uuid::Uuid;

use crate::contract::{ChunkItem, ReconcileResponse};
use crate::error::{Error, ErrorKind, Result};
pub use crate::sync::status::PgStatusStore;
use crate::sync::status::{run_status, ChunkCounts, ChunkRecord, Holder, LoadMode, RunRecord, TableKey, TableRecord, HEARTBEAT_MIN_INTERVAL_SECONDS};

/// Reads and writes of `migration_status` for runs, tables, chunks and the
/// heartbeat. Run statuses are [`run_status`] values; chunk statuses are
/// `pending`, `in_progress`, `completed`, `failed`; times are seconds.
///
/// Errors: every method fails with the store's error (for PostgreSQL a
/// classified [`crate::ErrorKind`] naming what was being recorded).
pub trait StatusStore: Sync {
    /// The caller's data transaction, in which a chunk's rows are written:
    /// `tokio_postgres::Transaction` for PostgreSQL.
    type Transaction<'t>: Sync;

    /// Record a new run in status `planning`, driven by `holder`, and return its id.
    fn create_run(&self, config_hash: &str, execution_hash: &str, mode: &str, metadata: serde_json::Value, holder: &Holder) -> impl Future<Output = Result<Uuid>> + Send;
    /// Read one run; `None` when it does not exist.
    fn run_record(&self, run_id: Uuid) -> impl Future<Output = Result<Option<RunRecord>>> + Send;
    /// The `planning`/`running` runs of the lock session `backend_pid` (the holder of a refused lock).
    fn runs_of_lock_session(&self, backend_pid: i32) -> impl Future<Output = Result<Vec<RunRecord>>> + Send;
    /// The newest run of `execution_hash` that may have work left (status in
    /// [`run_status::RESUMABLE`]) and started within `max_age_hours` hours.
    fn find_resumable(&self, execution_hash: &str, max_age_hours: u32) -> impl Future<Output = Result<Option<RunRecord>>> + Send;
    /// Mark every resumable run of `execution_hash` other than `keep` `superseded` (`--no-resume`); returns their ids.
    fn supersede(&self, execution_hash: &str, keep: Uuid) -> impl Future<Output = Result<Vec<Uuid>>> + Send;
    /// Record `holder` on a run and refresh its heartbeat.
    fn claim(&self, run_id: Uuid, holder: &Holder) -> impl Future<Output = Result<()>> + Send;
    /// Record every `planning`/`running` run of the lock session `backend_pid` `interrupted` with `message`; returns their ids.
    fn interrupt_lock_session_runs(&self, backend_pid: i32, message: &str) -> impl Future<Output = Result<Vec<Uuid>>> + Send;
    /// Set a run's status and error (`None` clears it) while it goes on.
    fn set_status(&self, run_id: Uuid, status: &str, error: Option<&str>) -> impl Future<Output = Result<()>> + Send;
    /// Refresh a run's heartbeat unless it was refreshed less than [`HEARTBEAT_MIN_INTERVAL_SECONDS`] ago.
    fn touch(&self, run_id: Uuid) -> impl Future<Output = Result<()>> + Send;
    /// Put chunks left `in_progress` back to `pending` with `reason`; returns how many.
    fn release_in_progress_chunks(&self, run_id: Uuid, reason: &str) -> impl Future<Output = Result<u64>> + Send;
    /// Rows the plan expects the run's unfinished chunks to copy.
    fn estimated_rows(&self, run_id: Uuid) -> impl Future<Output = Result<u64>> + Send;
    /// Source tables (database, schema, table) already planned in a run.
    fn planned_tables(&self, run_id: Uuid) -> impl Future<Output = Result<Vec<(String, String, String)>>> + Send;
    /// Refresh a run's heartbeat (status unchanged).
    fn heartbeat(&self, run_id: Uuid) -> impl Future<Output = Result<()>> + Send;
    /// Finish a run with `status` and `error`, totals derived from its tables.
    fn finish_run(&self, run_id: Uuid, status: &str, error: Option<&str>) -> impl Future<Output = Result<()>> + Send;
    /// Refresh a run's table and row totals (status unchanged).
    fn record_totals(&self, run_id: Uuid) -> impl Future<Output = Result<()>> + Send;
    /// `metadata[key] = value` on the run.
    fn set_run_metadata(&self, run_id: Uuid, key: &str, value: serde_json::Value) -> impl Future<Output = Result<()>> + Send;
    /// All table rows of a run, in planning order.
    fn tables(&self, run_id: Uuid) -> impl Future<Output = Result<Vec<TableRecord>>> + Send;
    /// Chunks of a run not yet completed (of tables not completed or skipped), as manifest items, in planning order.
    fn unfinished_chunks(&self, run_id: Uuid) -> impl Future<Output = Result<Vec<ChunkItem>>> + Send;
    /// Mark a chunk `in_progress` (autocommit) unless it is completed; `false` when it is.
    fn start_chunk(&self, key: &TableKey, chunk_id: i32) -> impl Future<Output = Result<bool>> + Send;
    /// Mark a chunk `failed` with its error (autocommit, after the data transaction rolled back).
    fn fail_chunk(&self, key: &TableKey, chunk_id: i32, error: &Error) -> impl Future<Output = Result<()>> + Send;
    /// Mark a table `failed` with its error.
    fn fail_table(&self, key: &TableKey, error: &str) -> impl Future<Output = Result<()>> + Send;
    /// Lock a chunk row inside the caller's data transaction and return it; `None` when the chunk does not exist.
    fn lock_chunk<'t>(tx: &Self::Transaction<'t>, key: &TableKey, chunk_id: i32) -> impl Future<Output = Result<Option<ChunkRecord>>> + Send;
    /// Mark a chunk `completed` with its counts inside the caller's data
    /// transaction: it commits with the chunk's rows or not at all.
    /// Errors: [`ErrorKind::Internal`] when the chunk row is gone.
    fn complete_chunk<'t>(tx: &Self::Transaction<'t>, key: &TableKey, chunk_id: i32, counts: ChunkCounts) -> impl Future<Output = Result<()>> + Send;

    /// Check that `run_id` exists and is not completed (for `--resume-run-id`)
    /// and return it.
    fn check_resumable(&self, run_id: Uuid) -> impl Future<Output = Result<RunRecord>> + Send {
        async move {
        match self.run_record(run_id).await? {
            None => Err(Error::config(format!("run {run_id} does not exist in migration_status.migration_runs; omit --resume-run-id to start a new run"))),
            Some(r) if r.status == run_status::COMPLETED => Err(Error::config(format!("run {run_id} is already completed; nothing to resume"))),
            Some(r) => Ok(r),
        }
    }
        }

    /// Record what reconciliation found: a run whose tables all copied (status
    /// `running`, or `completed`/`mismatch` from an earlier reconcile) ends
    /// `completed` when nothing differs and `mismatch` otherwise, with the
    /// differing tables in `error_message`. A `partial`, `failed`,
    /// `interrupted` or `superseded` run keeps its status (a clean reconcile
    /// cannot make missing chunks good). Returns the run's status afterwards.
    fn record_reconcile(&self, run_id: Uuid, response: &ReconcileResponse) -> impl Future<Output = Result<String>> + Send {
        async move {
        let current = self.run_record(run_id)
            .await?
            .ok_or_else(|| Error::config(format!("run {run_id} does not exist in migration_status.migration_runs")))?
            .status;
        if !matches!(current.as_str(), run_status::RUNNING | run_status::COMPLETED | run_status::MISMATCH) {
            return Ok(current);
        }
        if response.errors > 0 {
            let names: Vec<String> = response
                .tables
                .iter()
                .filter(|t| t.status == "error")
                .map(|t| format!("{}: {}", t.target, t.error.as_deref().unwrap_or("unknown error")))
                .collect();
            let message = format!("reconciliation could not check {} table(s): {}", response.errors, names.join("; "));
            self.finish_run(run_id, run_status::FAILED, Some(&message)).await?;
            return Ok(run_status::FAILED.into());
        }
        if response.mismatches == 0 {
            self.finish_run(run_id, run_status::COMPLETED, None).await?;
            return Ok(run_status::COMPLETED.into());
        }
        let names: Vec<String> = response
            .tables
            .iter()
            .filter(|t| !t.matched)
            .map(|t| format!("{} ({} rows in Snowflake, {} in PostgreSQL)", t.target, t.source_rows, t.target_rows))
            .collect();
        let message = format!("reconciliation found {} table(s) that differ: {}", response.mismatches, names.join(", "));
        self.finish_run(run_id, run_status::MISMATCH, Some(&message)).await?;
        Ok(run_status::MISMATCH.into())
    }
        }
}

/// A run row of [`MemoryStatusStore`].
#[derive(Debug, Clone)]
struct MemoryRun {
    record: RunRecord,
    metadata: serde_json::Value,
    error: Option<String>,
    /// The store clock (seconds) at the last heartbeat.
    heartbeat_at: f64,
    /// The store clock (seconds) at the start.
    started_at: f64,
}

/// A chunk row of [`MemoryStatusStore`].
#[derive(Debug, Clone)]
struct MemoryChunk {
    chunk_range: serde_json::Value,
    status: String,
    error: Option<String>,
    attempts: i32,
    counts: ChunkCounts,
}

/// A table row of [`MemoryStatusStore`] with its chunks by id.
#[derive(Debug, Clone)]
struct MemoryTable {
    record: TableRecord,
    error: Option<String>,
    chunks: BTreeMap<i32, MemoryChunk>,
}

#[derive(Debug, Default)]
struct MemoryState {
    /// Seconds since the store was created (moved by [`MemoryStatusStore::advance`]).
    clock: f64,
    runs: Vec<MemoryRun>,
    /// Tables in planning order.
    tables: Vec<MemoryTable>,
}

impl MemoryState {
    fn run(&mut self, run_id: Uuid) -> Result<&mut MemoryRun> {
        self.runs.iter_mut().find(|r| r.record.run_id == run_id).ok_or_else(|| Error::new(ErrorKind::Internal, format!("run {run_id} is not in the store")))
    }
    fn table(&mut self, key: &TableKey) -> Option<&mut MemoryTable> {
        self.tables.iter_mut().find(|t| &t.record.key == key)
    }
    fn snapshot(&self, run: &MemoryRun) -> RunRecord {
        RunRecord { heartbeat_age_seconds: self.clock - run.heartbeat_at, lock_session_alive: run.record.lock_backend_pid.is_some(), ..run.record.clone() }
    }
}

/// An in-memory [`StatusStore`] for unit tests of the step logic: the same
/// rules as the PostgreSQL store (resumable statuses, heartbeat interval,
/// chunk transitions), a clock the test moves ([`MemoryStatusStore::advance`])
/// instead of wall time, and transactions ([`MemoryTransaction`]) whose
/// `completed` marks apply only on commit. A lock session counts as alive
/// while the run records one.
#[derive(Debug, Clone, Default)]
pub struct MemoryStatusStore {
    state: Arc<Mutex<MemoryState>>,
}

/// The data transaction of a [`MemoryStatusStore`]: chunk completions are
/// buffered and applied by [`MemoryTransaction::commit`]; dropping it rolls
/// them back.
#[derive(Debug)]
pub struct MemoryTransaction {
    state: Arc<Mutex<MemoryState>>,
    completed: Mutex<Vec<(TableKey, i32, ChunkCounts)>>,
}

impl MemoryTransaction {
    /// Apply the buffered chunk completions.
    pub fn commit(self) {
        let mut state = self.state.lock().expect("status store lock");
        for (key, chunk_id, counts) in self.completed.into_inner().expect("transaction lock") {
            if let Some(c) = state.table(&key).and_then(|t| t.chunks.get_mut(&chunk_id)) {
                c.status = "completed".into();
                c.error = None;
                c.counts = counts;
            }
        }
    }
}

impl MemoryStatusStore {
    /// An empty store, its clock at 0 s.
    pub fn new() -> MemoryStatusStore {
        MemoryStatusStore::default()
    }

    /// Move the store clock forward by `seconds` (heartbeat ages grow).
    pub fn advance(&self, seconds: f64) {
        self.lock().clock += seconds;
    }

    /// Begin a data transaction.
    pub fn begin(&self) -> MemoryTransaction {
        MemoryTransaction { state: self.state.clone(), completed: Mutex::new(Vec::new()) }
    }

    /// Record a planned table of `key.run_id` (status `in_progress`) and its
    /// chunks (`chunk_range` JSON by position, chunk ids from 0), as plan does.
    pub fn plan_table(&self, key: TableKey, source_name: &str, load_mode: LoadMode, chunks: Vec<serde_json::Value>) {
        let record = TableRecord {
            key: key.clone(),
            source_name: source_name.into(),
            target_database: "postgres".into(),
            target_schema: "public".into(),
            target_table: key.source_table.to_lowercase(),
            status: "in_progress".into(),
            load_mode: Some(load_mode),
            plan: serde_json::Value::Null,
        };
        let chunks = chunks
            .into_iter()
            .enumerate()
            .map(|(i, chunk_range)| (i as i32, MemoryChunk { chunk_range, status: "pending".into(), error: None, attempts: 0, counts: ChunkCounts::default() }))
            .collect();
        self.lock().tables.push(MemoryTable { record, error: None, chunks });
    }

    /// Set a table's status (`completed`, `failed`, `skipped`), as merge does.
    pub fn set_table_status(&self, key: &TableKey, status: &str) {
        if let Some(t) = self.lock().table(key) {
            t.record.status = status.into();
        }
    }

    /// A chunk's status, error, attempts so far and counts; `None` when it does not exist.
    pub fn chunk_status(&self, key: &TableKey, chunk_id: i32) -> Option<(String, Option<String>, i32, ChunkCounts)> {
        self.lock().table(key).and_then(|t| t.chunks.get(&chunk_id)).map(|c| (c.status.clone(), c.error.clone(), c.attempts, c.counts))
    }

    /// A table's status and error; `None` when it does not exist.
    pub fn table_status(&self, key: &TableKey) -> Option<(String, Option<String>)> {
        self.lock().table(key).map(|t| (t.record.status.clone(), t.error.clone()))
    }

    /// A run's error message.
    pub fn run_error(&self, run_id: Uuid) -> Option<String> {
        self.lock().run(run_id).ok().and_then(|r| r.error.clone())
    }

    /// A run's metadata.
    pub fn run_metadata(&self, run_id: Uuid) -> serde_json::Value {
        self.lock().run(run_id).map(|r| r.metadata.clone()).unwrap_or_default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryState> {
        self.state.lock().expect("status store lock")
    }
}

impl StatusStore for MemoryStatusStore {
    type Transaction<'t> = MemoryTransaction;

    async fn create_run(&self, config_hash: &str, execution_hash: &str, mode: &str, metadata: serde_json::Value, holder: &Holder) -> Result<Uuid> {
        let _ = (config_hash, mode);
        let mut s = self.lock();
        let run_id = Uuid::new_v4();
        let clock = s.clock;
        s.runs.push(MemoryRun {
            record: RunRecord {
                run_id,
                status: run_status::PLANNING.into(),
                execution_hash: execution_hash.into(),
                started_at: chrono::Utc::now(),
                heartbeat_age_seconds: 0.0,
                host: holder.host.clone(),
                pid: holder.pid,
                lock_backend_pid: holder.lock_backend_pid,
                lock_session_alive: holder.lock_backend_pid.is_some(),
            },
            metadata,
            error: None,
            heartbeat_at: clock,
            started_at: clock,
        });
        Ok(run_id)
    }

    async fn run_record(&self, run_id: Uuid) -> Result<Option<RunRecord>> {
        let s = self.lock();
        Ok(s.runs.iter().find(|r| r.record.run_id == run_id).map(|r| s.snapshot(r)))
    }

    async fn runs_of_lock_session(&self, backend_pid: i32) -> Result<Vec<RunRecord>> {
        let s = self.lock();
        let mut out: Vec<&MemoryRun> = s
            .runs
            .iter()
            .filter(|r| r.record.lock_backend_pid == Some(backend_pid) && matches!(r.record.status.as_str(), run_status::PLANNING | run_status::RUNNING))
            .collect();
        out.sort_by(|a, b| b.started_at.total_cmp(&a.started_at));
        Ok(out.into_iter().map(|r| s.snapshot(r)).collect())
    }

    async fn find_resumable(&self, execution_hash: &str, max_age_hours: u32) -> Result<Option<RunRecord>> {
        let s = self.lock();
        let newest = s
            .runs
            .iter()
            .filter(|r| {
                r.record.execution_hash == execution_hash
                    && run_status::RESUMABLE.contains(&r.record.status.as_str())
                    && s.clock - r.started_at < max_age_hours as f64 * 3600.0
            })
            .max_by(|a, b| a.started_at.total_cmp(&b.started_at));
        Ok(newest.map(|r| s.snapshot(r)))
    }

    async fn supersede(&self, execution_hash: &str, keep: Uuid) -> Result<Vec<Uuid>> {
        let mut s = self.lock();
        let mut out = Vec::new();
        for r in s.runs.iter_mut() {
            if r.record.execution_hash == execution_hash && r.record.run_id != keep && run_status::RESUMABLE.contains(&r.record.status.as_str()) {
                r.record.status = run_status::SUPERSEDED.into();
                let note = format!("superseded by run {keep} (started with --no-resume)");
                r.error = Some(match r.error.take() {
                    Some(e) => format!("{e}; {note}"),
                    None => note,
                });
                out.push(r.record.run_id);
            }
        }
        Ok(out)
    }

    async fn claim(&self, run_id: Uuid, holder: &Holder) -> Result<()> {
        let mut s = self.lock();
        let clock = s.clock;
        let r = s.run(run_id)?;
        r.record.host = holder.host.clone();
        r.record.pid = holder.pid;
        r.record.lock_backend_pid = holder.lock_backend_pid;
        r.heartbeat_at = clock;
        Ok(())
    }

    async fn interrupt_lock_session_runs(&self, backend_pid: i32, message: &str) -> Result<Vec<Uuid>> {
        let mut s = self.lock();
        let mut out = Vec::new();
        for r in s.runs.iter_mut() {
            if r.record.lock_backend_pid == Some(backend_pid) && matches!(r.record.status.as_str(), run_status::PLANNING | run_status::RUNNING) {
                r.record.status = run_status::INTERRUPTED.into();
                r.error = Some(message.into());
                out.push(r.record.run_id);
            }
        }
        Ok(out)
    }

    async fn set_status(&self, run_id: Uuid, status: &str, error: Option<&str>) -> Result<()> {
        let mut s = self.lock();
        let clock = s.clock;
        let r = s.run(run_id)?;
        r.record.status = status.into();
        r.error = error.map(str::to_string);
        r.heartbeat_at = clock;
        Ok(())
    }

    async fn touch(&self, run_id: Uuid) -> Result<()> {
        let mut s = self.lock();
        let clock = s.clock;
        if let Ok(r) = s.run(run_id) {
            if clock - r.heartbeat_at > HEARTBEAT_MIN_INTERVAL_SECONDS as f64 {
                r.heartbeat_at = clock;
            }
        }
        Ok(())
    }

    async fn release_in_progress_chunks(&self, run_id: Uuid, reason: &str) -> Result<u64> {
        let mut s = self.lock();
        let mut n = 0;
        for t in s.tables.iter_mut().filter(|t| t.record.key.run_id == run_id) {
            for c in t.chunks.values_mut().filter(|c| c.status == "in_progress") {
                c.status = "pending".into();
                c.error = Some(reason.into());
                n += 1;
            }
        }
        Ok(n)
    }

    async fn estimated_rows(&self, run_id: Uuid) -> Result<u64> {
        let s = self.lock();
        Ok(s.tables
            .iter()
            .filter(|t| t.record.key.run_id == run_id)
            .flat_map(|t| t.chunks.values())
            .filter(|c| c.status != "completed")
            .map(|c| c.chunk_range.get("estimated_rows").and_then(|v| v.as_u64()).unwrap_or(0))
            .sum())
    }

    async fn planned_tables(&self, run_id: Uuid) -> Result<Vec<(String, String, String)>> {
        let s = self.lock();
        Ok(s.tables
            .iter()
            .filter(|t| t.record.key.run_id == run_id)
            .map(|t| (t.record.key.source_database.clone(), t.record.key.source_schema.clone(), t.record.key.source_table.clone()))
            .collect())
    }

    async fn heartbeat(&self, run_id: Uuid) -> Result<()> {
        let mut s = self.lock();
        let clock = s.clock;
        s.run(run_id)?.heartbeat_at = clock;
        Ok(())
    }

    async fn finish_run(&self, run_id: Uuid, status: &str, error: Option<&str>) -> Result<()> {
        // The memory store keeps no completion time: finishing is setting the status.
        self.set_status(run_id, status, error).await
    }

    async fn record_totals(&self, run_id: Uuid) -> Result<()> {
        self.heartbeat(run_id).await
    }

    async fn set_run_metadata(&self, run_id: Uuid, key: &str, value: serde_json::Value) -> Result<()> {
        let mut s = self.lock();
        let r = s.run(run_id)?;
        if !r.metadata.is_object() {
            r.metadata = serde_json::json!({});
        }
        r.metadata[key] = value;
        Ok(())
    }

    async fn tables(&self, run_id: Uuid) -> Result<Vec<TableRecord>> {
        let s = self.lock();
        Ok(s.tables.iter().filter(|t| t.record.key.run_id == run_id).map(|t| t.record.clone()).collect())
    }

    async fn unfinished_chunks(&self, run_id: Uuid) -> Result<Vec<ChunkItem>> {
        let s = self.lock();
        let mut out = Vec::new();
        for t in s.tables.iter().filter(|t| t.record.key.run_id == run_id && !matches!(t.record.status.as_str(), "completed" | "skipped")) {
            for (id, _) in t.chunks.iter().filter(|(_, c)| c.status != "completed") {
                out.push(ChunkItem { run_id, source_name: t.record.source_name.clone(), source_table: t.record.key.source_table.clone(), chunk_id: *id, file_key: None, staged: None });
            }
        }
        Ok(out)
    }

    async fn start_chunk(&self, key: &TableKey, chunk_id: i32) -> Result<bool> {
        let mut s = self.lock();
        match s.table(key).and_then(|t| t.chunks.get_mut(&chunk_id)) {
            Some(c) if c.status != "completed" => {
                c.status = "in_progress".into();
                c.attempts += 1;
                c.error = None;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn fail_chunk(&self, key: &TableKey, chunk_id: i32, error: &Error) -> Result<()> {
        let mut s = self.lock();
        if let Some(c) = s.table(key).and_then(|t| t.chunks.get_mut(&chunk_id)).filter(|c| c.status != "completed") {
            c.status = "failed".into();
            c.error = Some(error.to_string().chars().take(2000).collect());
        }
        Ok(())
    }

    async fn fail_table(&self, key: &TableKey, error: &str) -> Result<()> {
        let mut s = self.lock();
        if let Some(t) = s.table(key) {
            t.record.status = "failed".into();
            t.error = Some(error.into());
        }
        Ok(())
    }

    async fn lock_chunk<'t>(tx: &Self::Transaction<'t>, key: &TableKey, chunk_id: i32) -> Result<Option<ChunkRecord>> {
        let mut s = tx.state.lock().expect("status store lock");
        Ok(s.table(key).and_then(|t| t.chunks.get(&chunk_id)).map(|c| ChunkRecord { chunk_range: c.chunk_range.clone(), status: c.status.clone() }))
    }

    async fn complete_chunk<'t>(tx: &Self::Transaction<'t>, key: &TableKey, chunk_id: i32, counts: ChunkCounts) -> Result<()> {
        let exists = tx.state.lock().expect("status store lock").table(key).is_some_and(|t| t.chunks.contains_key(&chunk_id));
        if !exists {
            return Err(Error::new(ErrorKind::Internal, format!("chunk {chunk_id} of {} vanished from migration_chunk_status", key.source_table)));
        }
        tx.completed.lock().expect("transaction lock").push((key.clone(), chunk_id, counts));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::TableReconcile;
    use crate::sync::status::{DEAD_AFTER_SECONDS, DEFAULT_RESUME_MAX_AGE_HOURS};

    fn key(run_id: Uuid, table: &str) -> TableKey {
        TableKey { run_id, source_database: "DB".into(), source_schema: "S".into(), source_table: table.into() }
    }

    fn chunks(estimated: &[u64]) -> Vec<serde_json::Value> {
        estimated.iter().map(|n| serde_json::json!({ "strategy": "numeric_range", "filter_sql": "TRUE", "estimated_rows": n })).collect()
    }

    /// A run of two planned tables (A: 3 chunks, B: 2 chunks), status `running`.
    async fn running_run(store: &MemoryStatusStore) -> Uuid {
        let run_id = store.create_run("c", "e", "incremental", serde_json::json!({}), &Holder::default()).await.unwrap();
        store.plan_table(key(run_id, "A"), "src", LoadMode::Copy, chunks(&[10, 20, 30]));
        store.plan_table(key(run_id, "B"), "src", LoadMode::Upsert, chunks(&[5, 5]));
        store.set_status(run_id, run_status::RUNNING, None).await.unwrap();
        run_id
    }

    /// What the copy step does with one chunk: start, then complete in the
    /// data transaction, committed only when `commit`.
    async fn copy(store: &MemoryStatusStore, key: &TableKey, chunk_id: i32, commit: bool) -> bool {
        if !store.start_chunk(key, chunk_id).await.unwrap() {
            return false;
        }
        let tx = store.begin();
        let chunk = MemoryStatusStore::lock_chunk(&tx, key, chunk_id).await.unwrap().expect("chunk exists");
        assert_ne!(chunk.status, "completed");
        let read = chunk.chunk_range["estimated_rows"].as_u64().unwrap();
        MemoryStatusStore::complete_chunk(&tx, key, chunk_id, ChunkCounts { read, inserted: read, ..Default::default() }).await.unwrap();
        if commit {
            tx.commit();
        }
        true
    }

    fn ids(items: &[ChunkItem]) -> Vec<(String, i32)> {
        items.iter().map(|i| (i.source_table.clone(), i.chunk_id)).collect()
    }

    #[tokio::test]
    async fn resume_picks_the_next_unfinished_chunks_and_never_repeats_a_completed_one() {
        let store = MemoryStatusStore::new();
        let run_id = running_run(&store).await;
        let a = key(run_id, "A");
        assert!(copy(&store, &a, 0, true).await);
        assert!(copy(&store, &a, 1, true).await);
        assert_eq!(ids(&store.unfinished_chunks(run_id).await.unwrap()), vec![("A".into(), 2), ("B".into(), 0), ("B".into(), 1)]);
        assert_eq!(store.estimated_rows(run_id).await.unwrap(), 40);
        // A completed chunk is not started again, and keeps its counts.
        assert!(!copy(&store, &a, 0, true).await);
        let (status, _, attempts, counts) = store.chunk_status(&a, 0).unwrap();
        assert_eq!((status.as_str(), attempts, counts.read), ("completed", 1, 10));
        // A table completed by merge is not resumed even if a chunk row says otherwise.
        store.set_table_status(&key(run_id, "B"), "completed");
        assert_eq!(ids(&store.unfinished_chunks(run_id).await.unwrap()), vec![("A".into(), 2)]);
    }

    #[tokio::test]
    async fn a_chunk_is_completed_only_when_its_transaction_commits() {
        let store = MemoryStatusStore::new();
        let run_id = running_run(&store).await;
        let a = key(run_id, "A");
        assert!(copy(&store, &a, 2, false).await); // crash before commit: rolled back
        assert_eq!(store.chunk_status(&a, 2).unwrap().0, "in_progress");
        assert_eq!(store.release_in_progress_chunks(run_id, "interrupted by SIGTERM").await.unwrap(), 1);
        let (status, error, _, _) = store.chunk_status(&a, 2).unwrap();
        assert_eq!((status.as_str(), error.as_deref()), ("pending", Some("interrupted by SIGTERM")));
        assert!(ids(&store.unfinished_chunks(run_id).await.unwrap()).contains(&("A".into(), 2)));
        let tx = store.begin();
        let err = MemoryStatusStore::complete_chunk(&tx, &a, 99, ChunkCounts::default()).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Internal);
        assert!(err.to_string().contains("chunk 99 of A vanished"), "{err}");
    }

    #[tokio::test]
    async fn a_failed_chunk_leaves_the_run_partial_or_failed_never_completed() {
        let store = MemoryStatusStore::new();
        let run_id = running_run(&store).await;
        let a = key(run_id, "A");
        store.start_chunk(&a, 0).await.unwrap();
        store.fail_chunk(&a, 0, &Error::new(ErrorKind::ChunkFailed, "value out of range")).await.unwrap();
        store.fail_table(&a, "1 chunk(s) failed").await.unwrap();
        store.finish_run(run_id, run_status::PARTIAL, Some("1 of 2 table(s) failed")).await.unwrap();
        let (status, error, _, _) = store.chunk_status(&a, 0).unwrap();
        assert_eq!(status, "failed");
        assert!(error.unwrap().contains("value out of range"));
        assert_eq!(store.table_status(&a).unwrap().0, "failed");
        // A clean reconcile cannot make missing chunks good.
        let clean = ReconcileResponse { run_id, mismatches: 0, errors: 0, tables: Vec::new(), ..Default::default() };
        assert_eq!(store.record_reconcile(run_id, &clean).await.unwrap(), run_status::PARTIAL);
        assert_eq!(store.run_record(run_id).await.unwrap().unwrap().status, run_status::PARTIAL);
        // The partial run is resumed (it has work left) with the failed chunk in it.
        assert_eq!(store.find_resumable("e", DEFAULT_RESUME_MAX_AGE_HOURS).await.unwrap().unwrap().run_id, run_id);
        assert!(ids(&store.unfinished_chunks(run_id).await.unwrap()).contains(&("A".into(), 0)));
    }

    #[tokio::test]
    async fn reconcile_decides_completed_mismatch_or_failed_only_for_a_fully_copied_run() {
        let store = MemoryStatusStore::new();
        let run_id = running_run(&store).await;
        let table = |matched: bool, status: &str| TableReconcile {
            target: "public.a".into(),
            source_rows: 3,
            target_rows: if matched { 3 } else { 2 },
            matched,
            status: status.into(),
            ..Default::default()
        };
        let differs = ReconcileResponse { run_id, mismatches: 1, errors: 0, tables: vec![table(false, "mismatch")], ..Default::default() };
        assert_eq!(store.record_reconcile(run_id, &differs).await.unwrap(), run_status::MISMATCH);
        assert!(store.run_error(run_id).unwrap().contains("public.a (3 rows in Snowflake, 2 in PostgreSQL)"));
        let clean = ReconcileResponse { run_id, mismatches: 0, errors: 0, tables: vec![table(true, "ok")], ..Default::default() };
        assert_eq!(store.record_reconcile(run_id, &clean).await.unwrap(), run_status::COMPLETED);
        assert_eq!(store.run_error(run_id), None);
        assert!(store.find_resumable("e", DEFAULT_RESUME_MAX_AGE_HOURS).await.unwrap().is_none(), "a completed run is never resumed");
        let err = store.check_resumable(run_id).await.unwrap_err();
        assert!(err.to_string().contains("already completed"), "{err}");
    }

    #[tokio::test]
    async fn a_partially_planned_run_is_resumed_with_only_its_planned_tables_recorded() {
        let store = MemoryStatusStore::new();
        let run_id = store.create_run("c", "e", "incremental", serde_json::json!({}), &Holder::default()).await.unwrap();
        store.plan_table(key(run_id, "A"), "src", LoadMode::Copy, chunks(&[1]));
        // Killed while planning B: the run is still `planning` and resumable.
        let found = store.find_resumable("e", DEFAULT_RESUME_MAX_AGE_HOURS).await.unwrap().unwrap();
        assert_eq!((found.run_id, found.status.as_str()), (run_id, run_status::PLANNING));
        let planned = store.planned_tables(run_id).await.unwrap();
        assert_eq!(planned, vec![("DB".into(), "S".into(), "A".into())]);
        let selected = ["A", "B", "C"];
        let rest: Vec<&str> = selected.iter().copied().filter(|t| !planned.iter().any(|p| p.2 == *t)).collect();
        assert_eq!(rest, vec!["B", "C"], "the rest is planned on resume");
        // --no-resume supersedes it instead.
        let fresh = store.create_run("c", "e", "incremental", serde_json::json!({}), &Holder::default()).await.unwrap();
        assert_eq!(store.supersede("e", fresh).await.unwrap(), vec![run_id]);
        assert_eq!(store.run_record(run_id).await.unwrap().unwrap().status, run_status::SUPERSEDED);
        assert!(store.run_error(run_id).unwrap().contains(&format!("superseded by run {fresh}")));
    }

    #[tokio::test]
    async fn heartbeat_age_marks_a_run_dead() {
        let store = MemoryStatusStore::new();
        let run_id = running_run(&store).await;
        assert!(store.run_record(run_id).await.unwrap().unwrap().is_alive(None));
        store.advance(HEARTBEAT_MIN_INTERVAL_SECONDS as f64 / 2.0);
        store.touch(run_id).await.unwrap(); // too soon: skipped
        store.advance(DEAD_AFTER_SECONDS as f64 - HEARTBEAT_MIN_INTERVAL_SECONDS as f64 / 2.0 + 1.0);
        let dead = store.run_record(run_id).await.unwrap().unwrap();
        assert!(dead.heartbeat_age_seconds > DEAD_AFTER_SECONDS as f64 && !dead.is_alive(None), "{}", dead.describe());
        store.touch(run_id).await.unwrap();
        assert!(store.run_record(run_id).await.unwrap().unwrap().is_alive(None), "a fresh heartbeat revives it");
        // Too old to resume at all.
        store.advance(DEFAULT_RESUME_MAX_AGE_HOURS as f64 * 3600.0);
        assert!(store.find_resumable("e", DEFAULT_RESUME_MAX_AGE_HOURS).await.unwrap().is_none());
    }
}
