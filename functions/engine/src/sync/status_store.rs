//! The `StatusStore` seam: every read and write of the `migration_status`
//! schema the sync path makes: runs, tables, chunks, the heartbeat, the
//! index rows of `disable_index`, the staged file rows and `thaw status`'s
//! overview (docs/sync.md §6.9).
//!
//! Two implementations: [`PgStatusStore`](crate::sync::status_postgres::PgStatusStore)
//! (the SQL, in [`crate::sync::status_postgres`]; the records both speak in
//! are in [`crate::sync::status`]) and [`MemoryStatusStore`] (a map behind a mutex,
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
use crate::sync::status::{
    run_status, ChunkCounts, ChunkRecord, ChunkTally, EarlierUnload, FailedChunk, FileRecord, Holder, IndexRecord, LoadMode, PlannedTable, RunOverview, RunRecord, TableKey, TableMapping,
    TableOverview, TableRecord, HEARTBEAT_MIN_INTERVAL_SECONDS, interrupted_table_error, unfinished_table_error,
};

/// Reads and writes of `migration_status` for runs, tables, chunks, the
/// heartbeat, dropped indexes and staged files. Run statuses are [`run_status`] values; chunk statuses are
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
    /// Record every `planning`/`running` run of the lock session `backend_pid`
    /// `interrupted` with `message` (their tables already planned go back to
    /// `pending` with [`interrupted_table_error`]); returns their ids.
    fn interrupt_lock_session_runs(&self, backend_pid: i32, message: &str) -> impl Future<Output = Result<Vec<Uuid>>> + Send;
    /// Set a run's status and error (`None` clears it) while it goes on;
    /// `running` also puts its `pending` and `failed` tables (left by an
    /// interrupted or failed attempt, copied again now) back `in_progress`.
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
    /// A run finished `failed` (planning or a step failed) leaves no table
    /// `in_progress`: those are recorded `failed` with [`unfinished_table_error`]
    /// of `error`, so `thaw status` does not show them as still copying; a
    /// run finished `interrupted` puts them back to `pending` with
    /// [`interrupted_table_error`].
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
    /// Replace the plan JSON recorded for a table of a run (a resume refreshing its target columns).
    fn set_table_plan(&self, key: &TableKey, plan: serde_json::Value) -> impl Future<Output = Result<()>> + Send;
    /// The plan JSON recorded for a table of a run; `None` when the table is not part of the run.
    fn table_plan(&self, key: &TableKey) -> impl Future<Output = Result<Option<serde_json::Value>>> + Send;
    /// Lock a chunk row inside the caller's data transaction and return it; `None` when the chunk does not exist.
    fn lock_chunk<'t>(tx: &Self::Transaction<'t>, key: &TableKey, chunk_id: i32) -> impl Future<Output = Result<Option<ChunkRecord>>> + Send;
    /// Mark a chunk `completed` with its counts inside the caller's data
    /// transaction: it commits with the chunk's rows or not at all.
    /// Errors: [`ErrorKind::Internal`] when the chunk row is gone.
    fn complete_chunk<'t>(tx: &Self::Transaction<'t>, key: &TableKey, chunk_id: i32, counts: ChunkCounts) -> impl Future<Output = Result<()>> + Send;

    // Plan (docs/sync.md §3.5, §3.6).

    /// Record a planned table (status `in_progress`) and its chunk rows
    /// (`chunk_range` JSON by position, chunk ids from 0, all `pending`)
    /// inside the planning transaction: a table row exists only with all its
    /// chunks, which is what "planned" means on resume (docs/sync.md §6.2).
    fn record_table_plan<'t>(tx: &Self::Transaction<'t>, table: &PlannedTable, chunks: &[serde_json::Value]) -> impl Future<Output = Result<()>> + Send;
    /// The plan JSON the latest run (any outcome) recorded for the same source
    /// table into the same target; `None` when there is none.
    fn latest_plan(&self, table: &TableMapping) -> impl Future<Output = Result<Option<serde_json::Value>>> + Send;
    /// The plan JSON and table status (`in_progress`, `completed`, `failed`)
    /// of the latest run without `--where` that planned the same source table
    /// into the same target; `None` when there is none.
    fn latest_unfiltered_table(&self, table: &TableMapping) -> impl Future<Output = Result<Option<(serde_json::Value, String)>>> + Send;
    /// The `watermark_floor` of the oldest `--where` run of the table since its
    /// last completed run without a filter: `Some(floor)` when there is one
    /// (`floor` `None` = read every row), `None` when there is none.
    fn earlier_watermark_floor(&self, table: &TableMapping) -> impl Future<Output = Result<Option<Option<String>>>> + Send;

    // Merge (docs/sync.md §6.4).

    /// Sum a table's chunk rows in the merge transaction: chunks planned,
    /// completed, failed, rows inserted plus updated by completed chunks, and
    /// the lowest-numbered failed chunk's error.
    fn chunk_tally<'t>(tx: &Self::Transaction<'t>, key: &TableKey) -> impl Future<Output = Result<ChunkTally>> + Send;
    /// Record a table's outcome (`completed` or `failed`), its counters and
    /// error in the merge transaction (it commits with a replaced table's swap).
    fn record_table_outcome<'t>(tx: &Self::Transaction<'t>, key: &TableKey, status: &str, tally: &ChunkTally, error: Option<&str>) -> impl Future<Output = Result<()>> + Send;
    /// Set a table's error message (status unchanged).
    fn set_table_error(&self, key: &TableKey, error: &str) -> impl Future<Output = Result<()>> + Send;

    // Indexes (docs/sync.md §7).

    /// Lock the table row in the index transaction and return its
    /// `indexes_disabled`; `None` when the table row does not exist.
    fn lock_indexes_disabled<'t>(tx: &Self::Transaction<'t>, key: &TableKey) -> impl Future<Output = Result<Option<bool>>> + Send;
    /// Record a secondary index before it is dropped, in the transaction that drops it (`pending` restore).
    fn record_dropped_index<'t>(tx: &Self::Transaction<'t>, key: &TableKey, index: &IndexRecord) -> impl Future<Output = Result<()>> + Send;
    /// Set the table's `indexes_disabled` (and clear `indexes_restored`) in the index transaction.
    fn mark_indexes_disabled<'t>(tx: &Self::Transaction<'t>, key: &TableKey) -> impl Future<Output = Result<()>> + Send;
    /// The table's recorded indexes not yet restored, by schema and name.
    fn indexes_to_restore(&self, key: &TableKey) -> impl Future<Output = Result<Vec<IndexRecord>>> + Send;
    /// Mark an index `restored` in the transaction that recreated it.
    fn mark_index_restored<'t>(tx: &Self::Transaction<'t>, key: &TableKey, index: &IndexRecord) -> impl Future<Output = Result<()>> + Send;
    /// Record a failed restore (`failed`, the error, one more attempt); it is retried on resume.
    fn record_index_restore_failure(&self, key: &TableKey, index: &IndexRecord, error: &str) -> impl Future<Output = Result<()>> + Send;
    /// Set the table's `indexes_restored` when its indexes were disabled.
    fn mark_indexes_restored(&self, key: &TableKey) -> impl Future<Output = Result<()>> + Send;
    /// How many recorded indexes of the table are not restored yet.
    fn pending_indexes<'t>(tx: &Self::Transaction<'t>, key: &TableKey) -> impl Future<Output = Result<i64>> + Send;

    // Staged files (docs/sync.md §13).

    /// A chunk's recorded files, by key.
    fn chunk_files(&self, key: &TableKey, chunk_id: i32) -> impl Future<Output = Result<Vec<FileRecord>>> + Send;
    /// Whether a chunk's unload is recorded.
    fn chunk_unloaded(&self, key: &TableKey, chunk_id: i32) -> impl Future<Output = Result<bool>> + Send;
    /// Record a chunk's unload in the caller's transaction: its file list
    /// (replacing any earlier one, all `pending`) and the chunk's
    /// `rows_unloaded`, `unloaded_at` and prefix.
    fn record_unload<'t>(tx: &Self::Transaction<'t>, key: &TableKey, chunk_id: i32, unload: &EarlierUnload) -> impl Future<Output = Result<()>> + Send;
    /// Run `earlier`'s unload of the same table and chunk predicate
    /// (`filter_sql`), its files as `pending`; `None` when it has none.
    fn earlier_unload(&self, earlier: Uuid, key: &TableKey, filter_sql: &str) -> impl Future<Output = Result<Option<EarlierUnload>>> + Send;
    /// `metadata->>key` of a run; `None` when unset.
    fn run_metadata_text(&self, run_id: Uuid, key: &str) -> impl Future<Output = Result<Option<String>>> + Send;
    /// Record a file's failure (`failed`, the error, one more attempt) unless it is completed.
    fn record_file_failure(&self, key: &TableKey, chunk_id: i32, file_key: &str, error: &str) -> impl Future<Output = Result<()>> + Send;
    /// Lock a file row in the file's data transaction and return its status; `None` when it is not recorded.
    fn lock_file<'t>(tx: &Self::Transaction<'t>, key: &TableKey, chunk_id: i32, file_key: &str) -> impl Future<Output = Result<Option<String>>> + Send;
    /// Mark a file `completed` with its counts in its data transaction.
    fn complete_file<'t>(tx: &Self::Transaction<'t>, key: &TableKey, chunk_id: i32, file_key: &str, counts: ChunkCounts) -> impl Future<Output = Result<()>> + Send;
    /// In the file's transaction: the chunk's files not completed, and the sums of all its files' counts.
    fn file_tally<'t>(tx: &Self::Transaction<'t>, key: &TableKey, chunk_id: i32) -> impl Future<Output = Result<(u64, ChunkCounts)>> + Send;
    /// The run's staged files not yet completed as per-file items, by source name, table, chunk and key.
    fn unfinished_files(&self, run_id: Uuid) -> impl Future<Output = Result<Vec<ChunkItem>>> + Send;

    // `thaw status` (docs/sync.md §6.7).

    /// The newest `limit` runs (or just `run_id`), newest first, with tables,
    /// chunk counts, rows, rows/s and failed chunks (at most 50 per run).
    fn overview(&self, run_id: Option<Uuid>, limit: i64) -> impl Future<Output = Result<Vec<RunOverview>>> + Send;

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
    /// `completed` when nothing differs, `failed` when a table could not be
    /// checked (a dependency error is never a data verdict; the error starts
    /// with [`run_status::RECONCILE_UNCHECKED`], so the finished run is not
    /// resumed automatically, docs/sync.md §6.4), and `mismatch` when a table
    /// differs, with the tables in `error_message` (`reconciliation found …`
    /// / `reconciliation could not check …`). A run an earlier reconcile
    /// recorded `failed` because it could not check a table (its copy
    /// finished; the state machine's retry of a reconcile whose Snowflake was
    /// unreachable a moment ago, or a later `thaw reconcile`) is decided
    /// again the same way, in this one write. A `partial`, `interrupted` or
    /// `superseded` run, or one `failed` otherwise, keeps its status (a clean
    /// reconcile cannot make missing chunks good). Returns the run's status
    /// afterwards.
    fn record_reconcile(&self, run_id: Uuid, response: &ReconcileResponse) -> impl Future<Output = Result<String>> + Send {
        async move {
        let run = self.run_record(run_id)
            .await?
            .ok_or_else(|| Error::config(format!("run {run_id} does not exist in migration_status.migration_runs")))?;
        let unchecked_before = run.status == run_status::FAILED && run.error.as_deref().is_some_and(|e| e.starts_with(run_status::RECONCILE_UNCHECKED));
        let current = run.status;
        if !unchecked_before && !matches!(current.as_str(), run_status::RUNNING | run_status::COMPLETED | run_status::MISMATCH) {
            return Ok(current);
        }
        if response.errors > 0 {
            let names: Vec<String> = response
                .tables
                .iter()
                .filter(|t| t.status == "error")
                .map(|t| format!("{}: {}", t.target, t.error.as_deref().unwrap_or("unknown error")))
                .collect();
            let message = format!("{} {} table(s): {}", run_status::RECONCILE_UNCHECKED, response.errors, names.join("; "));
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
    mode: String,
    metadata: serde_json::Value,
    error: Option<String>,
    /// The store clock (seconds) at the last heartbeat.
    heartbeat_at: f64,
    /// The store clock (seconds) at the start.
    started_at: f64,
    /// The store clock (seconds) when it finished.
    completed_at: Option<f64>,
}

/// A chunk row of [`MemoryStatusStore`].
#[derive(Debug, Clone)]
struct MemoryChunk {
    chunk_range: serde_json::Value,
    status: String,
    error: Option<String>,
    attempts: i32,
    counts: ChunkCounts,
    /// Store clock (seconds) of the last start and of the completion.
    started_at: Option<f64>,
    completed_at: Option<f64>,
    /// The recorded unload: prefix and rows unloaded.
    unload: Option<(String, u64)>,
    /// Staged files, by key.
    files: Vec<MemoryFile>,
}

/// A staged file row of [`MemoryStatusStore`].
#[derive(Debug, Clone)]
struct MemoryFile {
    record: FileRecord,
    unloaded_by: Uuid,
    counts: ChunkCounts,
    error: Option<String>,
    attempts: i32,
}

/// An index row of [`MemoryStatusStore`].
#[derive(Debug, Clone)]
struct MemoryIndex {
    record: IndexRecord,
    status: String,
    error: Option<String>,
    attempts: i32,
}

/// A table row of [`MemoryStatusStore`] with its chunks by id.
#[derive(Debug, Clone)]
struct MemoryTable {
    record: TableRecord,
    error: Option<String>,
    chunks: BTreeMap<i32, MemoryChunk>,
    /// Counters recorded by merge.
    tally: ChunkTally,
    indexes_disabled: bool,
    indexes_restored: bool,
    indexes: Vec<MemoryIndex>,
}

#[derive(Debug, Default, Clone)]
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
    fn table_ref(&self, key: &TableKey) -> Option<&MemoryTable> {
        self.tables.iter().find(|t| &t.record.key == key)
    }
    fn chunk(&mut self, key: &TableKey, chunk_id: i32) -> Option<&mut MemoryChunk> {
        self.table(key).and_then(|t| t.chunks.get_mut(&chunk_id))
    }
    /// [`run_status::resumable_sql`] over the memory store.
    fn resumable(&self, run: &MemoryRun) -> bool {
        let copy_finished = run.metadata.get("reconcile").is_some()
            && self.tables.iter().filter(|t| t.record.key.run_id == run.record.run_id).all(|t| matches!(t.record.status.as_str(), "completed" | "skipped"));
        run_status::RESUMABLE.contains(&run.record.status.as_str()) && !copy_finished
    }
    fn snapshot(&self, run: &MemoryRun) -> RunRecord {
        RunRecord {
            heartbeat_age_seconds: self.clock - run.heartbeat_at,
            lock_session_alive: run.record.lock_backend_pid.is_some(),
            error: run.error.clone(),
            ..run.record.clone()
        }
    }
    /// Tables of `mapping` in planning order (oldest first), with their run's start.
    fn mapped(&self, m: &TableMapping) -> Vec<&MemoryTable> {
        self.tables
            .iter()
            .filter(|t| {
                let (k, r) = (&t.record.key, &t.record);
                k.source_database == m.source_database
                    && k.source_schema == m.source_schema
                    && k.source_table == m.source_table
                    && r.target_schema == m.target_schema
                    && r.target_table == m.target_table
                    && !r.plan.is_null()
            })
            .collect()
    }
}

/// An index row as [`MemoryStatusStore::index_status`] shows it: `schema.name`, status, restore attempts.
pub type IndexRow = (String, String, i32);

/// A write buffered in a [`MemoryTransaction`], applied to the state on
/// commit (and to a copy of it for reads inside the transaction).
type MemoryWrite = Box<dyn Fn(&mut MemoryState) + Send>;

/// An in-memory [`StatusStore`] for unit tests of the step logic: the same
/// rules as the PostgreSQL store (resumable statuses, heartbeat interval,
/// chunk transitions), a clock the test moves ([`MemoryStatusStore::advance`])
/// instead of wall time, and transactions ([`MemoryTransaction`]) whose
/// writes apply only on commit. A lock session counts as alive
/// while the run records one.
#[derive(Debug, Clone, Default)]
pub struct MemoryStatusStore {
    state: Arc<Mutex<MemoryState>>,
}

/// The data transaction of a [`MemoryStatusStore`]: its writes (chunk and
/// file completions, plan rows, index rows, unloads) are buffered and applied
/// by [`MemoryTransaction::commit`]; reads inside it see them; dropping it
/// rolls them back. Row locks are not modelled.
pub struct MemoryTransaction {
    state: Arc<Mutex<MemoryState>>,
    writes: Mutex<Vec<MemoryWrite>>,
}

impl std::fmt::Debug for MemoryTransaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryTransaction").field("writes", &self.writes.lock().map(|w| w.len()).unwrap_or(0)).finish()
    }
}

impl MemoryTransaction {
    /// Apply the buffered writes.
    pub fn commit(self) {
        let mut state = self.state.lock().expect("status store lock");
        for write in self.writes.into_inner().expect("transaction lock") {
            write(&mut state);
        }
    }

    fn write(&self, f: impl Fn(&mut MemoryState) + Send + 'static) {
        self.writes.lock().expect("transaction lock").push(Box::new(f));
    }

    /// The state as this transaction sees it: committed rows plus its own writes.
    fn view(&self) -> MemoryState {
        let mut state = self.state.lock().expect("status store lock").clone();
        for write in self.writes.lock().expect("transaction lock").iter() {
            write(&mut state);
        }
        state
    }
}

/// The rows [`StatusStore::record_table_plan`] writes.
fn plan_write(table: &PlannedTable, chunks: &[serde_json::Value]) -> impl Fn(&mut MemoryState) + Send + 'static {
    let record = TableRecord {
        key: table.key.clone(),
        source_name: table.source_name.clone(),
        target_database: table.target_database.clone(),
        target_schema: table.target_schema.clone(),
        target_table: table.target_table.clone(),
        status: "in_progress".into(),
        load_mode: Some(table.load_mode),
        plan: table.plan.clone(),
    };
    let chunks: BTreeMap<i32, MemoryChunk> = chunks
        .iter()
        .enumerate()
        .map(|(i, chunk_range)| {
            let chunk = MemoryChunk {
                chunk_range: chunk_range.clone(),
                status: "pending".into(),
                error: None,
                attempts: 0,
                counts: ChunkCounts::default(),
                started_at: None,
                completed_at: None,
                unload: None,
                files: Vec::new(),
            };
            (i as i32, chunk)
        })
        .collect();
    move |s: &mut MemoryState| {
        let table = MemoryTable {
            record: record.clone(),
            error: None,
            chunks: chunks.clone(),
            tally: ChunkTally { total: chunks.len() as i32, ..Default::default() },
            indexes_disabled: false,
            indexes_restored: false,
            indexes: Vec::new(),
        };
        s.tables.push(table);
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
        MemoryTransaction { state: self.state.clone(), writes: Mutex::new(Vec::new()) }
    }

    /// Record a planned table of `key.run_id` (status `in_progress`, target
    /// `public.<lower-case source table>`) and its chunks (`chunk_range` JSON
    /// by position, chunk ids from 0), committed at once.
    pub fn plan_table(&self, key: TableKey, source_name: &str, load_mode: LoadMode, chunks: Vec<serde_json::Value>) {
        let table = PlannedTable {
            target_database: "postgres".into(),
            target_schema: "public".into(),
            target_table: key.source_table.to_lowercase(),
            key,
            source_name: source_name.into(),
            load_mode,
            strategy: "numeric_range".into(),
            watermark_from: None,
            truncated: false,
            plan: serde_json::Value::Null,
        };
        plan_write(&table, &chunks)(&mut self.lock());
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

    /// A table's `indexes_disabled` and `indexes_restored` flags and its index
    /// rows as (`schema.name`, status, attempts); `None` when the table does not exist.
    pub fn index_status(&self, key: &TableKey) -> Option<(bool, bool, Vec<IndexRow>)> {
        self.lock().table(key).map(|t| {
            let rows = t.indexes.iter().map(|i| (format!("{}.{}", i.record.schema, i.record.name), i.status.clone(), i.attempts)).collect();
            (t.indexes_disabled, t.indexes_restored, rows)
        })
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
        let _ = config_hash;
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
                error: None,
            },
            mode: mode.into(),
            metadata,
            error: None,
            heartbeat_at: clock,
            started_at: clock,
            completed_at: None,
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
                    && s.resumable(r)
                    && s.clock - r.started_at < max_age_hours as f64 * 3600.0
            })
            .max_by(|a, b| a.started_at.total_cmp(&b.started_at));
        Ok(newest.map(|r| s.snapshot(r)))
    }

    async fn supersede(&self, execution_hash: &str, keep: Uuid) -> Result<Vec<Uuid>> {
        let mut s = self.lock();
        let mut out = Vec::new();
        let superseded: Vec<Uuid> =
            s.runs.iter().filter(|r| r.record.execution_hash == execution_hash && r.record.run_id != keep && s.resumable(r)).map(|r| r.record.run_id).collect();
        for r in s.runs.iter_mut() {
            if superseded.contains(&r.record.run_id) {
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
        for t in s.tables.iter_mut().filter(|t| out.contains(&t.record.key.run_id) && t.record.status == "in_progress") {
            t.record.status = "pending".into();
            t.error = Some(interrupted_table_error(Some(message)));
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
        r.completed_at = None;
        if status == run_status::RUNNING {
            for t in s.tables.iter_mut().filter(|t| t.record.key.run_id == run_id && matches!(t.record.status.as_str(), "pending" | "failed")) {
                t.record.status = "in_progress".into();
                t.error = None;
            }
        }
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
        self.set_status(run_id, status, error).await?;
        let mut s = self.lock();
        let clock = s.clock;
        s.run(run_id)?.completed_at = Some(clock);
        if status == run_status::FAILED || status == run_status::INTERRUPTED {
            let (table_status, table_error) = match status {
                run_status::FAILED => ("failed", unfinished_table_error(error)),
                _ => ("pending", interrupted_table_error(error)),
            };
            for t in s.tables.iter_mut().filter(|t| t.record.key.run_id == run_id && t.record.status == "in_progress") {
                t.record.status = table_status.into();
                t.error = Some(table_error.clone());
            }
        }
        Ok(())
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
        let clock = s.clock;
        match s.chunk(key, chunk_id) {
            Some(c) if c.status != "completed" => {
                c.started_at = Some(clock);
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
        let clock = s.clock;
        if let Some(c) = s.chunk(key, chunk_id).filter(|c| c.status != "completed") {
            c.completed_at = Some(clock);
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

    async fn set_table_plan(&self, key: &TableKey, plan: serde_json::Value) -> Result<()> {
        if let Some(t) = self.lock().table(key) {
            t.record.plan = plan;
        }
        Ok(())
    }

    async fn table_plan(&self, key: &TableKey) -> Result<Option<serde_json::Value>> {
        Ok(self.lock().table_ref(key).map(|t| t.record.plan.clone()))
    }

    async fn lock_chunk<'t>(tx: &Self::Transaction<'t>, key: &TableKey, chunk_id: i32) -> Result<Option<ChunkRecord>> {
        let s = tx.view();
        Ok(s.table_ref(key).and_then(|t| t.chunks.get(&chunk_id)).map(|c| ChunkRecord { chunk_range: c.chunk_range.clone(), status: c.status.clone() }))
    }

    async fn complete_chunk<'t>(tx: &Self::Transaction<'t>, key: &TableKey, chunk_id: i32, counts: ChunkCounts) -> Result<()> {
        if !tx.view().table_ref(key).is_some_and(|t| t.chunks.contains_key(&chunk_id)) {
            return Err(Error::new(ErrorKind::Internal, format!("chunk {chunk_id} of {} vanished from migration_chunk_status", key.source_table)));
        }
        let key = key.clone();
        tx.write(move |s| {
            let clock = s.clock;
            if let Some(c) = s.chunk(&key, chunk_id) {
                c.status = "completed".into();
                c.error = None;
                c.counts = counts;
                c.completed_at = Some(clock);
            }
        });
        Ok(())
    }

    async fn record_table_plan<'t>(tx: &Self::Transaction<'t>, table: &PlannedTable, chunks: &[serde_json::Value]) -> Result<()> {
        if tx.view().table_ref(&table.key).is_some() {
            return Err(Error::new(ErrorKind::Internal, format!("table {} is already planned in run {}", table.key.source_table, table.key.run_id)));
        }
        tx.write(plan_write(table, chunks));
        Ok(())
    }

    async fn latest_plan(&self, table: &TableMapping) -> Result<Option<serde_json::Value>> {
        Ok(self.lock().mapped(table).last().map(|t| t.record.plan.clone()))
    }

    async fn latest_unfiltered_table(&self, table: &TableMapping) -> Result<Option<(serde_json::Value, String)>> {
        let s = self.lock();
        let filtered = |t: &&MemoryTable| t.record.plan.get("run_filter").is_some_and(|f| !f.is_null());
        Ok(s.mapped(table).iter().rev().find(|t| !filtered(t)).map(|t| (t.record.plan.clone(), t.record.status.clone())))
    }

    async fn earlier_watermark_floor(&self, table: &TableMapping) -> Result<Option<Option<String>>> {
        let s = self.lock();
        let mine = s.mapped(table);
        let filter = |t: &MemoryTable| t.record.plan.get("run_filter").is_some_and(|f| !f.is_null());
        let last_clean = mine.iter().rposition(|t| !filter(t) && t.record.status == "completed");
        let since = last_clean.map_or(0, |i| i + 1);
        Ok(mine[since..]
            .iter()
            .find(|t| filter(t))
            .map(|t| t.record.plan.get("watermark_floor").and_then(|f| f.as_str()).map(str::to_string)))
    }

    async fn chunk_tally<'t>(tx: &Self::Transaction<'t>, key: &TableKey) -> Result<ChunkTally> {
        let s = tx.view();
        let Some(t) = s.table_ref(key) else { return Ok(ChunkTally::default()) };
        let completed = t.chunks.values().filter(|c| c.status == "completed");
        Ok(ChunkTally {
            total: t.chunks.len() as i32,
            completed: completed.clone().count() as i32,
            failed: t.chunks.values().filter(|c| c.status == "failed").count() as i32,
            rows: completed.map(|c| (c.counts.inserted + c.counts.updated) as i64).sum(),
            first_error: t
                .chunks
                .iter()
                .find(|(_, c)| c.status == "failed")
                .and_then(|(id, c)| c.error.as_ref().map(|e| format!("chunk {id}: {e}"))),
        })
    }

    async fn record_table_outcome<'t>(tx: &Self::Transaction<'t>, key: &TableKey, status: &str, tally: &ChunkTally, error: Option<&str>) -> Result<()> {
        let (key, status, tally, error) = (key.clone(), status.to_string(), tally.clone(), error.map(str::to_string));
        tx.write(move |s| {
            if let Some(t) = s.table(&key) {
                t.record.status = status.clone();
                t.tally = tally.clone();
                t.error = error.clone();
            }
        });
        Ok(())
    }

    async fn set_table_error(&self, key: &TableKey, error: &str) -> Result<()> {
        if let Some(t) = self.lock().table(key) {
            t.error = Some(error.into());
        }
        Ok(())
    }

    async fn lock_indexes_disabled<'t>(tx: &Self::Transaction<'t>, key: &TableKey) -> Result<Option<bool>> {
        Ok(tx.view().table_ref(key).map(|t| t.indexes_disabled))
    }

    async fn record_dropped_index<'t>(tx: &Self::Transaction<'t>, key: &TableKey, index: &IndexRecord) -> Result<()> {
        let (key, index) = (key.clone(), index.clone());
        tx.write(move |s| {
            if let Some(t) = s.table(&key) {
                if !t.indexes.iter().any(|i| i.record.schema == index.schema && i.record.name == index.name) {
                    t.indexes.push(MemoryIndex { record: index.clone(), status: "pending".into(), error: None, attempts: 0 });
                }
            }
        });
        Ok(())
    }

    async fn mark_indexes_disabled<'t>(tx: &Self::Transaction<'t>, key: &TableKey) -> Result<()> {
        let key = key.clone();
        tx.write(move |s| {
            if let Some(t) = s.table(&key) {
                t.indexes_disabled = true;
                t.indexes_restored = false;
            }
        });
        Ok(())
    }

    async fn indexes_to_restore(&self, key: &TableKey) -> Result<Vec<IndexRecord>> {
        let s = self.lock();
        let mut out: Vec<IndexRecord> =
            s.table_ref(key).map(|t| t.indexes.iter().filter(|i| i.status != "restored").map(|i| i.record.clone()).collect()).unwrap_or_default();
        out.sort_by(|a, b| (&a.schema, &a.name).cmp(&(&b.schema, &b.name)));
        Ok(out)
    }

    async fn mark_index_restored<'t>(tx: &Self::Transaction<'t>, key: &TableKey, index: &IndexRecord) -> Result<()> {
        let (key, index) = (key.clone(), index.clone());
        tx.write(move |s| {
            if let Some(i) = s.table(&key).and_then(|t| t.indexes.iter_mut().find(|i| i.record.schema == index.schema && i.record.name == index.name)) {
                i.status = "restored".into();
                i.error = None;
                i.attempts += 1;
            }
        });
        Ok(())
    }

    async fn record_index_restore_failure(&self, key: &TableKey, index: &IndexRecord, error: &str) -> Result<()> {
        if let Some(i) = self.lock().table(key).and_then(|t| t.indexes.iter_mut().find(|i| i.record.schema == index.schema && i.record.name == index.name)) {
            i.status = "failed".into();
            i.error = Some(error.into());
            i.attempts += 1;
        }
        Ok(())
    }

    async fn mark_indexes_restored(&self, key: &TableKey) -> Result<()> {
        if let Some(t) = self.lock().table(key).filter(|t| t.indexes_disabled) {
            t.indexes_restored = true;
        }
        Ok(())
    }

    async fn pending_indexes<'t>(tx: &Self::Transaction<'t>, key: &TableKey) -> Result<i64> {
        Ok(tx.view().table_ref(key).map_or(0, |t| t.indexes.iter().filter(|i| i.status != "restored").count() as i64))
    }

    async fn chunk_files(&self, key: &TableKey, chunk_id: i32) -> Result<Vec<FileRecord>> {
        let s = self.lock();
        let mut files: Vec<FileRecord> =
            s.table_ref(key).and_then(|t| t.chunks.get(&chunk_id)).map(|c| c.files.iter().map(|f| f.record.clone()).collect()).unwrap_or_default();
        files.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(files)
    }

    async fn chunk_unloaded(&self, key: &TableKey, chunk_id: i32) -> Result<bool> {
        Ok(self.lock().table_ref(key).and_then(|t| t.chunks.get(&chunk_id)).is_some_and(|c| c.unload.is_some()))
    }

    async fn record_unload<'t>(tx: &Self::Transaction<'t>, key: &TableKey, chunk_id: i32, unload: &EarlierUnload) -> Result<()> {
        let (key, unload) = (key.clone(), unload.clone());
        tx.write(move |s| {
            if let Some(c) = s.chunk(&key, chunk_id) {
                c.files = unload
                    .files
                    .iter()
                    .map(|f| MemoryFile {
                        record: FileRecord { status: "pending".into(), ..f.clone() },
                        unloaded_by: unload.unloaded_by,
                        counts: ChunkCounts::default(),
                        error: None,
                        attempts: 0,
                    })
                    .collect();
                c.unload = Some((unload.prefix.clone(), unload.rows_unloaded));
            }
        });
        Ok(())
    }

    async fn earlier_unload(&self, earlier: Uuid, key: &TableKey, filter_sql: &str) -> Result<Option<EarlierUnload>> {
        let s = self.lock();
        let earlier_key = TableKey { run_id: earlier, ..key.clone() };
        let found = s.table_ref(&earlier_key).and_then(|t| {
            t.chunks.values().find(|c| c.unload.is_some() && c.chunk_range.get("filter_sql").and_then(|f| f.as_str()) == Some(filter_sql))
        });
        Ok(found.map(|c| {
            let (prefix, rows_unloaded) = c.unload.clone().expect("filtered on unload");
            let mut files: Vec<&MemoryFile> = c.files.iter().collect();
            files.sort_by(|a, b| a.record.key.cmp(&b.record.key));
            EarlierUnload {
                prefix,
                rows_unloaded,
                unloaded_by: files.first().map_or(earlier, |f| f.unloaded_by),
                files: files.into_iter().map(|f| FileRecord { status: "pending".into(), ..f.record.clone() }).collect(),
            }
        }))
    }

    async fn run_metadata_text(&self, run_id: Uuid, key: &str) -> Result<Option<String>> {
        let mut s = self.lock();
        let Ok(r) = s.run(run_id) else { return Ok(None) };
        Ok(r.metadata.get(key).and_then(|v| match v {
            serde_json::Value::Null => None,
            serde_json::Value::String(t) => Some(t.clone()),
            other => Some(other.to_string()),
        }))
    }

    async fn record_file_failure(&self, key: &TableKey, chunk_id: i32, file_key: &str, error: &str) -> Result<()> {
        let mut s = self.lock();
        if let Some(f) = s.chunk(key, chunk_id).and_then(|c| c.files.iter_mut().find(|f| f.record.key == file_key)).filter(|f| f.record.status != "completed") {
            f.record.status = "failed".into();
            f.error = Some(error.into());
            f.attempts += 1;
        }
        Ok(())
    }

    async fn lock_file<'t>(tx: &Self::Transaction<'t>, key: &TableKey, chunk_id: i32, file_key: &str) -> Result<Option<String>> {
        let s = tx.view();
        Ok(s.table_ref(key).and_then(|t| t.chunks.get(&chunk_id)).and_then(|c| c.files.iter().find(|f| f.record.key == file_key)).map(|f| f.record.status.clone()))
    }

    async fn complete_file<'t>(tx: &Self::Transaction<'t>, key: &TableKey, chunk_id: i32, file_key: &str, counts: ChunkCounts) -> Result<()> {
        let (key, file_key) = (key.clone(), file_key.to_string());
        tx.write(move |s| {
            if let Some(f) = s.chunk(&key, chunk_id).and_then(|c| c.files.iter_mut().find(|f| f.record.key == file_key)) {
                f.record.status = "completed".into();
                f.counts = counts;
                f.error = None;
                f.attempts += 1;
            }
        });
        Ok(())
    }

    async fn file_tally<'t>(tx: &Self::Transaction<'t>, key: &TableKey, chunk_id: i32) -> Result<(u64, ChunkCounts)> {
        let s = tx.view();
        let files: &[MemoryFile] = s.table_ref(key).and_then(|t| t.chunks.get(&chunk_id)).map_or(&[], |c| c.files.as_slice());
        let unfinished = files.iter().filter(|f| f.record.status != "completed").count() as u64;
        let (read, inserted, updated) = files.iter().fold((0, 0, 0), |(r, i, u), f| (r + f.counts.read, i + f.counts.inserted, u + f.counts.updated));
        Ok((unfinished, ChunkCounts { read, inserted, updated, unchanged: read.saturating_sub(inserted + updated) }))
    }

    async fn unfinished_files(&self, run_id: Uuid) -> Result<Vec<ChunkItem>> {
        let s = self.lock();
        let mut out = Vec::new();
        for t in s.tables.iter().filter(|t| t.record.key.run_id == run_id) {
            for (id, c) in &t.chunks {
                let mut files: Vec<&MemoryFile> = c.files.iter().filter(|f| f.record.status != "completed").collect();
                files.sort_by(|a, b| a.record.key.cmp(&b.record.key));
                for f in files {
                    let item = ChunkItem {
                        run_id,
                        source_name: t.record.source_name.clone(),
                        source_table: t.record.key.source_table.clone(),
                        chunk_id: *id,
                        file_key: Some(f.record.key.clone()),
                        staged: None,
                    };
                    out.push(item);
                }
            }
        }
        out.sort_by(|a, b| (&a.source_name, &a.source_table, a.chunk_id, &a.file_key).cmp(&(&b.source_name, &b.source_table, b.chunk_id, &b.file_key)));
        Ok(out)
    }

    async fn overview(&self, run_id: Option<Uuid>, limit: i64) -> Result<Vec<RunOverview>> {
        let s = self.lock();
        let mut runs: Vec<&MemoryRun> = s.runs.iter().filter(|r| run_id.is_none_or(|id| r.record.run_id == id)).collect();
        runs.sort_by(|a, b| b.started_at.total_cmp(&a.started_at));
        let at = |r: &MemoryRun, clock: f64| r.record.started_at + chrono::Duration::milliseconds(((clock - r.started_at) * 1000.0) as i64);
        let mut out = Vec::new();
        for r in runs.into_iter().take(limit.max(1) as usize) {
            let id = r.record.run_id;
            let mine: Vec<&MemoryTable> = s.tables.iter().filter(|t| t.record.key.run_id == id).collect();
            let tables: Vec<TableOverview> = mine
                .iter()
                .map(|t| {
                    let count = |status: &str| t.chunks.values().filter(|c| c.status == status).count() as i64;
                    let rows: i64 = t.chunks.values().filter(|c| c.status == "completed").map(|c| c.counts.read as i64).sum();
                    let first = t.chunks.values().filter_map(|c| c.started_at).min_by(f64::total_cmp);
                    let last = t.chunks.values().filter_map(|c| c.completed_at).max_by(f64::total_cmp);
                    let seconds = match (first, last) {
                        (Some(a), Some(b)) => (b - a).max(0.0),
                        _ => 0.0,
                    };
                    TableOverview {
                        source_table: t.record.key.source_table.clone(),
                        target: format!("{}.{}", t.record.target_schema, t.record.target_table),
                        status: t.record.status.clone(),
                        load_mode: t.record.load_mode.map(|m| m.as_str().to_string()),
                        chunks: t.chunks.len() as i64,
                        chunks_completed: count("completed"),
                        chunks_failed: count("failed"),
                        chunks_in_progress: count("in_progress"),
                        rows,
                        seconds,
                        rows_per_second: if seconds > 0.0 { rows as f64 / seconds } else { 0.0 },
                        error: t.error.clone(),
                    }
                })
                .collect();
            let mut failed_chunks: Vec<FailedChunk> = mine
                .iter()
                .flat_map(|t| {
                    t.chunks.iter().filter(|(_, c)| c.status == "failed").map(|(chunk_id, c)| FailedChunk {
                        source_table: t.record.key.source_table.clone(),
                        chunk_id: *chunk_id,
                        retry_count: c.attempts,
                        error: c.error.clone(),
                    })
                })
                .collect();
            failed_chunks.sort_by(|a, b| (&a.source_table, a.chunk_id).cmp(&(&b.source_table, b.chunk_id)));
            failed_chunks.truncate(50);
            out.push(RunOverview {
                run_id: id,
                status: r.record.status.clone(),
                mode: r.mode.clone(),
                started_at: r.record.started_at,
                heartbeat_at: at(r, r.heartbeat_at),
                completed_at: r.completed_at.map(|c| at(r, c)),
                host: r.record.host.clone(),
                pid: r.record.pid,
                rows: tables.iter().map(|t| t.rows).sum(),
                error: r.error.clone(),
                alive: matches!(r.record.status.as_str(), run_status::PLANNING | run_status::RUNNING).then(|| s.snapshot(r).is_alive(None)),
                tables,
                failed_chunks,
            });
        }
        Ok(out)
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

    /// An interrupted run shows no table as still copying: its unfinished
    /// tables go back to `pending` with the reason, a completed one keeps its
    /// status; the resume (`running` again) puts them back `in_progress`.
    #[tokio::test]
    async fn an_interrupted_run_puts_its_unfinished_tables_back_to_pending_and_its_resume_reopens_them() {
        let store = MemoryStatusStore::new();
        let run_id = running_run(&store).await;
        let (a, b) = (key(run_id, "A"), key(run_id, "B"));
        store.set_table_status(&b, "completed");
        let message = "interrupted by SIGTERM; resume with the same command";
        store.finish_run(run_id, run_status::INTERRUPTED, Some(message)).await.unwrap();
        let pending = ("pending".to_string(), Some(format!("not finished: the run was {message}")));
        assert_eq!(store.table_status(&a).unwrap(), pending);
        assert_eq!(store.table_status(&b).unwrap().0, "completed");
        store.set_status(run_id, run_status::RUNNING, None).await.unwrap();
        assert_eq!(store.table_status(&a).unwrap(), ("in_progress".into(), None));
        assert_eq!(store.table_status(&b).unwrap().0, "completed");
        // Interrupted while planning: the tables planned so far are pending too.
        let planning = store.create_run("c", "e2", "incremental", serde_json::json!({}), &Holder { lock_backend_pid: Some(7), ..Default::default() }).await.unwrap();
        store.plan_table(key(planning, "C"), "src", LoadMode::Copy, chunks(&[1]));
        assert_eq!(store.interrupt_lock_session_runs(7, "interrupted by SIGINT while planning").await.unwrap(), vec![planning]);
        assert_eq!(store.table_status(&key(planning, "C")).unwrap().1.as_deref(), Some("not finished: the run was interrupted by SIGINT while planning"));
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
    async fn reconcile_decides_completed_or_mismatch_only_for_a_fully_copied_run() {
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
        // A table reconcile could not check: `failed` with the error, never the
        // data verdict `mismatch`; and not resumed automatically (every later
        // run would resume this finished run and copy nothing while the cause lasts).
        let unchecked = TableReconcile { error: Some("1e400 is not a JSON number PostgreSQL can compare".into()), ..table(false, "error") };
        let errors = ReconcileResponse { run_id, mismatches: 0, errors: 1, tables: vec![unchecked], ..Default::default() };
        // The copy finished: every table completed (merge), and reconcile stored its summary on the run.
        for t in store.lock().tables.iter_mut() {
            t.record.status = "completed".into();
        }
        store.set_run_metadata(run_id, "reconcile", serde_json::to_value(&errors).unwrap()).await.unwrap();
        assert_eq!(store.record_reconcile(run_id, &errors).await.unwrap(), run_status::FAILED);
        assert!(store.run_error(run_id).unwrap().starts_with("reconciliation could not check 1 table(s): public.a: 1e400"), "{:?}", store.run_error(run_id));
        assert!(store.find_resumable("e", DEFAULT_RESUME_MAX_AGE_HOURS).await.unwrap().is_none(), "a run whose copy finished is not resumed");
        assert!(store.supersede("e", Uuid::new_v4()).await.unwrap().is_empty(), "nor superseded");
        // A later reconcile (the step's retry, `thaw reconcile`) decides such a
        // run again in its one write: its copy finished.
        let differs = ReconcileResponse { run_id, mismatches: 1, errors: 0, tables: vec![table(false, "mismatch")], ..Default::default() };
        assert_eq!(store.record_reconcile(run_id, &differs).await.unwrap(), run_status::MISMATCH);
        assert!(store.run_error(run_id).unwrap().contains("public.a (3 rows in Snowflake, 2 in PostgreSQL)"));
        let clean = ReconcileResponse { run_id, mismatches: 0, errors: 0, tables: vec![table(true, "ok")], ..Default::default() };
        assert_eq!(store.record_reconcile(run_id, &clean).await.unwrap(), run_status::COMPLETED);
        assert_eq!(store.run_error(run_id), None);
        assert!(store.find_resumable("e", DEFAULT_RESUME_MAX_AGE_HOURS).await.unwrap().is_none(), "a completed run is never resumed");
        let err = store.check_resumable(run_id).await.unwrap_err();
        assert!(err.to_string().contains("already completed"), "{err}");
        // A run `failed` for another reason (a step, a chunk) stays failed.
        let other = running_run(&store).await;
        store.finish_run(other, run_status::FAILED, Some("merge failed: connection refused")).await.unwrap();
        let clean = ReconcileResponse { run_id: other, ..clean };
        assert_eq!(store.record_reconcile(other, &clean).await.unwrap(), run_status::FAILED);
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

    fn planned(run_id: Uuid, table: &str, plan: serde_json::Value) -> PlannedTable {
        PlannedTable {
            key: key(run_id, table),
            source_name: "src".into(),
            target_database: "postgres".into(),
            target_schema: "public".into(),
            target_table: table.to_lowercase(),
            load_mode: LoadMode::Copy,
            strategy: "numeric_range".into(),
            watermark_from: None,
            truncated: false,
            plan,
        }
    }

    #[tokio::test]
    async fn a_table_plan_is_visible_only_with_all_its_chunks_and_resume_sees_exactly_the_planned_chunks() {
        let store = MemoryStatusStore::new();
        let run_id = store.create_run("c", "e", "incremental", serde_json::json!({}), &Holder::default()).await.unwrap();
        let tx = store.begin();
        MemoryStatusStore::record_table_plan(&tx, &planned(run_id, "A", serde_json::json!({"n": 1})), &chunks(&[4, 5, 6])).await.unwrap();
        // Inside the planning transaction the rows are there; outside, not yet.
        assert!(MemoryStatusStore::lock_chunk(&tx, &key(run_id, "A"), 2).await.unwrap().is_some());
        assert!(store.planned_tables(run_id).await.unwrap().is_empty());
        assert!(store.unfinished_chunks(run_id).await.unwrap().is_empty());
        tx.commit();
        // Killed while planning B: its rows roll back with the transaction.
        let tx = store.begin();
        MemoryStatusStore::record_table_plan(&tx, &planned(run_id, "B", serde_json::json!({})), &chunks(&[1])).await.unwrap();
        drop(tx);
        assert_eq!(store.planned_tables(run_id).await.unwrap(), vec![("DB".into(), "S".into(), "A".into())]);
        assert_eq!(ids(&store.unfinished_chunks(run_id).await.unwrap()), vec![("A".into(), 0), ("A".into(), 1), ("A".into(), 2)]);
        assert_eq!(store.estimated_rows(run_id).await.unwrap(), 15);
        assert_eq!(store.table_plan(&key(run_id, "A")).await.unwrap(), Some(serde_json::json!({"n": 1})));
        assert_eq!(store.table_plan(&key(run_id, "B")).await.unwrap(), None);
        let (status, _, attempts, _) = store.chunk_status(&key(run_id, "A"), 1).unwrap();
        assert_eq!((status.as_str(), attempts), ("pending", 0));
        // A table is planned once per run.
        let tx = store.begin();
        let err = MemoryStatusStore::record_table_plan(&tx, &planned(run_id, "A", serde_json::json!({})), &chunks(&[1])).await.unwrap_err();
        assert!(err.to_string().contains("table A is already planned"), "{err}");
    }

    #[tokio::test]
    async fn earlier_plans_are_found_by_source_and_target_and_the_watermark_floor_comes_from_the_oldest_where_run_since_a_clean_one() {
        let store = MemoryStatusStore::new();
        let mapping = TableMapping { source_database: "DB".into(), source_schema: "S".into(), source_table: "A".into(), target_schema: "public".into(), target_table: "a".into() };
        assert_eq!(store.latest_plan(&mapping).await.unwrap(), None);
        assert_eq!(store.earlier_watermark_floor(&mapping).await.unwrap(), None);
        let plan_run = |plan: serde_json::Value, status: &'static str| {
            let store = store.clone();
            async move {
                let run_id = store.create_run("c", "e", "incremental", serde_json::json!({}), &Holder::default()).await.unwrap();
                let tx = store.begin();
                MemoryStatusStore::record_table_plan(&tx, &planned(run_id, "A", plan), &chunks(&[1])).await.unwrap();
                tx.commit();
                store.set_table_status(&key(run_id, "A"), status);
            }
        };
        plan_run(serde_json::json!({"run_filter": "X > 1", "watermark_floor": "2024-01-01"}), "completed").await;
        plan_run(serde_json::json!({"run_filter": null, "watermark_floor": null}), "completed").await;
        assert_eq!(store.earlier_watermark_floor(&mapping).await.unwrap(), None, "a clean run since the --where run");
        plan_run(serde_json::json!({"run_filter": "X > 2", "watermark_floor": "2024-02-01"}), "completed").await;
        plan_run(serde_json::json!({"run_filter": null}), "failed").await;
        plan_run(serde_json::json!({"run_filter": "X > 3", "watermark_floor": null}), "completed").await;
        assert_eq!(store.earlier_watermark_floor(&mapping).await.unwrap(), Some(Some("2024-02-01".into())), "the oldest since the last clean run");
        assert_eq!(store.latest_plan(&mapping).await.unwrap(), Some(serde_json::json!({"run_filter": "X > 3", "watermark_floor": null})));
        let other = TableMapping { target_table: "b".into(), ..mapping };
        assert_eq!(store.latest_plan(&other).await.unwrap(), None, "another target is another table");
    }

    #[tokio::test]
    async fn merge_tally_sums_only_completed_chunks_and_names_the_first_failure() {
        let store = MemoryStatusStore::new();
        let run_id = running_run(&store).await;
        let a = key(run_id, "A");
        assert!(copy(&store, &a, 0, true).await);
        assert!(copy(&store, &a, 2, false).await); // rolled back: not counted
        store.start_chunk(&a, 1).await.unwrap();
        store.fail_chunk(&a, 1, &Error::new(ErrorKind::ChunkFailed, "value out of range")).await.unwrap();
        let tx = store.begin();
        let tally = MemoryStatusStore::chunk_tally(&tx, &a).await.unwrap();
        assert_eq!((tally.total, tally.completed, tally.failed, tally.rows), (3, 1, 1, 10));
        assert!(tally.first_error.as_deref().unwrap().starts_with("chunk 1: ") && tally.first_error.as_deref().unwrap().contains("value out of range"), "{tally:?}");
        // The outcome commits with the merge transaction or not at all.
        MemoryStatusStore::record_table_outcome(&tx, &a, "failed", &tally, Some("1 chunk(s) failed")).await.unwrap();
        drop(tx);
        assert_eq!(store.table_status(&a).unwrap(), ("in_progress".into(), None));
        let tx = store.begin();
        MemoryStatusStore::record_table_outcome(&tx, &a, "failed", &tally, Some("1 chunk(s) failed")).await.unwrap();
        tx.commit();
        assert_eq!(store.table_status(&a).unwrap(), ("failed".into(), Some("1 chunk(s) failed".into())));
        store.set_table_error(&a, "index restore failed").await.unwrap();
        assert_eq!(store.table_status(&a).unwrap().1.as_deref(), Some("index restore failed"));
        // Once every chunk completed, the rows are all of theirs.
        assert!(copy(&store, &a, 1, true).await);
        assert!(copy(&store, &a, 2, true).await);
        let tally = MemoryStatusStore::chunk_tally(&store.begin(), &a).await.unwrap();
        assert_eq!((tally.total, tally.completed, tally.failed, tally.rows, tally.first_error), (3, 3, 0, 60, None));
    }

    #[tokio::test]
    async fn an_index_recorded_before_its_drop_is_pending_restore_until_its_restore_commits() {
        let store = MemoryStatusStore::new();
        let run_id = running_run(&store).await;
        let a = key(run_id, "A");
        let index = |name: &str| IndexRecord { schema: "public".into(), name: name.into(), definition: format!("CREATE INDEX {name} ON public.a (x)") };
        // The drop transaction rolls back: nothing recorded, nothing disabled.
        let tx = store.begin();
        assert_eq!(MemoryStatusStore::lock_indexes_disabled(&tx, &a).await.unwrap(), Some(false));
        MemoryStatusStore::record_dropped_index(&tx, &a, &index("a_y")).await.unwrap();
        MemoryStatusStore::mark_indexes_disabled(&tx, &a).await.unwrap();
        assert_eq!(MemoryStatusStore::pending_indexes(&tx, &a).await.unwrap(), 1);
        drop(tx);
        assert_eq!(store.index_status(&a).unwrap(), (false, false, vec![]));
        assert!(store.indexes_to_restore(&a).await.unwrap().is_empty());
        // Committed: both recorded (once each), the table disabled, both pending restore.
        let tx = store.begin();
        for name in ["a_y", "a_x", "a_y"] {
            MemoryStatusStore::record_dropped_index(&tx, &a, &index(name)).await.unwrap();
        }
        MemoryStatusStore::mark_indexes_disabled(&tx, &a).await.unwrap();
        tx.commit();
        assert_eq!(MemoryStatusStore::lock_indexes_disabled(&store.begin(), &a).await.unwrap(), Some(true));
        assert_eq!(store.indexes_to_restore(&a).await.unwrap(), vec![index("a_x"), index("a_y")]);
        assert_eq!(MemoryStatusStore::pending_indexes(&store.begin(), &a).await.unwrap(), 2);
        // One restore commits, one fails: the failed one stays pending and counts its attempt.
        let tx = store.begin();
        MemoryStatusStore::mark_index_restored(&tx, &a, &index("a_x")).await.unwrap();
        tx.commit();
        store.record_index_restore_failure(&a, &index("a_y"), "could not create").await.unwrap();
        assert_eq!(store.indexes_to_restore(&a).await.unwrap(), vec![index("a_y")]);
        let (_, restored, rows) = store.index_status(&a).unwrap();
        assert!(!restored);
        assert_eq!(rows, vec![("public.a_y".into(), "failed".into(), 1), ("public.a_x".into(), "restored".into(), 1)]);
        // A restore whose transaction rolls back leaves it pending.
        let tx = store.begin();
        MemoryStatusStore::mark_index_restored(&tx, &a, &index("a_y")).await.unwrap();
        drop(tx);
        assert_eq!(MemoryStatusStore::pending_indexes(&store.begin(), &a).await.unwrap(), 1);
        let tx = store.begin();
        MemoryStatusStore::mark_index_restored(&tx, &a, &index("a_y")).await.unwrap();
        tx.commit();
        store.mark_indexes_restored(&a).await.unwrap();
        assert!(store.index_status(&a).unwrap().1, "indexes_restored");
        assert!(store.indexes_to_restore(&a).await.unwrap().is_empty());
        // A table whose indexes were never disabled is never marked restored.
        let b = key(run_id, "B");
        store.mark_indexes_restored(&b).await.unwrap();
        assert_eq!(store.index_status(&b).unwrap(), (false, false, vec![]));
    }

    fn file(name: &str, rows: u64) -> FileRecord {
        FileRecord { bucket: "b".into(), key: format!("p/{name}"), bytes: rows * 10, rows, etag: format!("e-{name}"), status: "pending".into() }
    }

    /// What `load_file` does: lock the file, complete it, complete the chunk when no file is left.
    async fn load(store: &MemoryStatusStore, key: &TableKey, chunk_id: i32, file_key: &str, read: u64, inserted: u64) {
        let tx = store.begin();
        assert_eq!(MemoryStatusStore::lock_file(&tx, key, chunk_id, file_key).await.unwrap().as_deref(), Some("pending"));
        MemoryStatusStore::complete_file(&tx, key, chunk_id, file_key, ChunkCounts { read, inserted, ..Default::default() }).await.unwrap();
        let (unfinished, counts) = MemoryStatusStore::file_tally(&tx, key, chunk_id).await.unwrap();
        if unfinished == 0 {
            MemoryStatusStore::complete_chunk(&tx, key, chunk_id, counts).await.unwrap();
        }
        tx.commit();
    }

    #[tokio::test]
    async fn staged_files_are_recorded_with_the_unload_and_the_last_file_completes_the_chunk() {
        let store = MemoryStatusStore::new();
        let run_id = running_run(&store).await;
        let a = key(run_id, "A");
        assert!(!store.chunk_unloaded(&a, 0).await.unwrap());
        let unload = EarlierUnload { prefix: "s3://b/p".into(), rows_unloaded: 10, files: vec![file("2.parquet", 4), file("1.parquet", 6)], unloaded_by: run_id };
        let tx = store.begin();
        MemoryStatusStore::record_unload(&tx, &a, 0, &unload).await.unwrap();
        drop(tx);
        assert!(!store.chunk_unloaded(&a, 0).await.unwrap(), "an unload record that rolled back is not there");
        let tx = store.begin();
        MemoryStatusStore::record_unload(&tx, &a, 0, &unload).await.unwrap();
        tx.commit();
        assert!(store.chunk_unloaded(&a, 0).await.unwrap());
        assert_eq!(store.chunk_files(&a, 0).await.unwrap(), vec![file("1.parquet", 6), file("2.parquet", 4)]);
        let items = store.unfinished_files(run_id).await.unwrap();
        assert_eq!(items.iter().map(|i| i.file_key.clone().unwrap()).collect::<Vec<_>>(), vec!["p/1.parquet", "p/2.parquet"]);
        // The first file fails, then loads; the chunk completes with the second, with both files' counts.
        store.record_file_failure(&a, 0, "p/1.parquet", "corrupt footer").await.unwrap();
        assert_eq!(store.chunk_files(&a, 0).await.unwrap()[0].status, "failed");
        store.lock().chunk(&a, 0).unwrap().files.iter_mut().for_each(|f| f.record.status = "pending".into());
        load(&store, &a, 0, "p/1.parquet", 6, 6).await;
        assert_eq!(store.chunk_status(&a, 0).unwrap().0, "pending", "one file left");
        load(&store, &a, 0, "p/2.parquet", 4, 3).await;
        let (status, _, _, counts) = store.chunk_status(&a, 0).unwrap();
        assert_eq!((status.as_str(), counts), ("completed", ChunkCounts { read: 10, inserted: 9, updated: 0, unchanged: 1 }));
        assert!(store.unfinished_files(run_id).await.unwrap().is_empty());
        // A completed file is not failed afterwards.
        store.record_file_failure(&a, 0, "p/1.parquet", "late").await.unwrap();
        assert_eq!(store.chunk_files(&a, 0).await.unwrap()[0].status, "completed");
        // --reuse-unload: a later run finds the unload by its chunk predicate, files pending again.
        let later = store.create_run("c", "e", "incremental", serde_json::json!({ "reuse_unload": run_id.to_string() }), &Holder::default()).await.unwrap();
        assert_eq!(store.run_metadata_text(later, "reuse_unload").await.unwrap(), Some(run_id.to_string()));
        assert_eq!(store.run_metadata_text(later, "absent").await.unwrap(), None);
        let again = store.earlier_unload(run_id, &key(later, "A"), "TRUE").await.unwrap().expect("same predicate");
        assert_eq!((again.prefix.as_str(), again.rows_unloaded, again.unloaded_by), ("s3://b/p", 10, run_id));
        assert!(again.files.iter().all(|f| f.status == "pending") && again.files.len() == 2);
        assert_eq!(store.earlier_unload(run_id, &key(later, "A"), "X > 1").await.unwrap(), None);
    }

    #[tokio::test]
    async fn overview_counts_chunks_rows_and_failed_chunks_per_table() {
        let store = MemoryStatusStore::new();
        let older = running_run(&store).await;
        store.advance(5.0);
        let run_id = running_run(&store).await;
        let (a, b) = (key(run_id, "A"), key(run_id, "B"));
        assert!(copy(&store, &a, 0, true).await);
        store.advance(2.0);
        assert!(copy(&store, &a, 1, true).await);
        store.start_chunk(&a, 2).await.unwrap();
        store.start_chunk(&b, 1).await.unwrap();
        store.fail_chunk(&b, 1, &Error::new(ErrorKind::ChunkFailed, "bad value")).await.unwrap();
        store.finish_run(run_id, run_status::PARTIAL, Some("1 of 2 table(s) failed")).await.unwrap();
        let runs = store.overview(None, 10).await.unwrap();
        assert_eq!(runs.iter().map(|r| r.run_id).collect::<Vec<_>>(), vec![run_id, older], "newest first");
        let r = &runs[0];
        assert_eq!((r.status.as_str(), r.mode.as_str(), r.rows, r.error.as_deref()), ("partial", "incremental", 30, Some("1 of 2 table(s) failed")));
        assert!(r.completed_at.is_some() && runs[1].completed_at.is_none());
        let t = &r.tables[0];
        assert_eq!((t.target.as_str(), t.chunks, t.chunks_completed, t.chunks_failed, t.chunks_in_progress, t.rows), ("public.a", 3, 2, 0, 1, 30));
        assert_eq!((t.seconds, t.rows_per_second), (2.0, 15.0));
        assert_eq!((r.tables[1].chunks_failed, r.tables[1].rows), (1, 0));
        assert_eq!(r.failed_chunks.len(), 1);
        let f = &r.failed_chunks[0];
        assert_eq!((f.source_table.as_str(), f.chunk_id, f.retry_count), ("B", 1, 1));
        assert!(f.error.as_deref().unwrap().contains("bad value"));
        assert_eq!(store.overview(Some(older), 10).await.unwrap().len(), 1);
        assert_eq!(store.overview(None, 1).await.unwrap()[0].run_id, run_id);
    }
}
