//! The local runner: the exact steps the Lambdas run, in one process.
//!
//! `plan` → `copy-chunk` for every manifest item with bounded parallelism
//! (per table `parallel_threads`, overall `max_workers`) → `merge` →
//! `reconcile` → `conflict-create`, passing the same typed requests and
//! responses ([`crate::contract`]) that the state machine passes. Transient
//! chunk errors are retried with exponential backoff and jitter (as the
//! state machine's `Retry` does); deterministic ones fail the chunk at once.
//!
//! Around the steps the runner owns the run's lifecycle (docs/sync.md §6):
//! it takes the run lock of every selected target table before planning
//! ([`RunLock`]), refreshes the run's heartbeat every
//! [`HEARTBEAT_INTERVAL`] while it works, stops at a chunk boundary when
//! [`Cancel`] fires (SIGINT/SIGTERM in the CLI) and records the run
//! `interrupted`, and records the truth when a step fails: `failed`,
//! `partial`, `mismatch` or `completed` ([`RunReport::status`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, Semaphore};

use crate::cancel::Cancel;
use crate::sync::status_postgres::PgStatusStore;
use crate::sync::status_store::StatusStore;
use crate::config::Config;
use crate::sync::copy::Worker;
use crate::error::{Error, ErrorKind, Result};
use crate::contract::{ChunkItem, ConflictCreateRequest, ConflictCreateResponse, CopyChunkResponse, MergeResponse, PlanRequest, PlanResponse, ReconcileResponse, RunRequest};
use crate::reconcile::TableReport;
use crate::sync::lock::RunLock;
use crate::sync::status::{run_status, RunRecord};

/// How often the runner refreshes the heartbeat of the run it drives: 15 s.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(15);

/// Receives progress events (the CLI draws bars; tests ignore them).
pub trait Observer: Send + Sync {
    /// A step starts (`plan`, `copy`, `merge`, `reconcile`, `conflict-create`).
    fn step(&self, _name: &str) {}
    /// The plan is ready: per table (source table, chunks, estimated rows).
    fn planned(&self, _plan: &PlanResponse, _tables: &[(String, u64, u64)]) {}
    /// A chunk finished.
    fn chunk_done(&self, _response: &CopyChunkResponse) {}
    /// A chunk failed for good.
    fn chunk_failed(&self, _item: &ChunkItem, _error: &Error) {}
}

/// An observer that ignores everything.
pub struct Quiet;
impl Observer for Quiet {}

/// Options of a local run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// The plan request (sources, tables, mode, resume, truncate consent).
    pub request: PlanRequest,
    /// Run conflict detection after a clean sync (needs `conflicts` in the config).
    pub conflicts: bool,
    /// Force a full-window conflict recomputation.
    pub conflicts_full: bool,
    /// Reconcile every row instead of the touched rows and the rolling
    /// slice (docs/reconcile.md §5).
    pub reconcile_full: bool,
    /// Upper bound of concurrent copy workers (default: 2 × parallel tables × threads, at most 16).
    pub max_workers: Option<usize>,
    /// Stop request (signals); `None` = never stopped from outside.
    pub cancel: Option<Cancel>,
}

/// Per-table outcome of the copy step, measured by the runner.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TableCopySummary {
    /// Snowflake table.
    pub source_table: String,
    /// PostgreSQL `schema.table`.
    pub target: String,
    /// Chunks copied by this invocation.
    pub chunks: u64,
    /// Chunks that failed.
    pub failed_chunks: u64,
    /// Rows read from Snowflake.
    pub rows_read: u64,
    /// Rows inserted + updated in PostgreSQL.
    pub rows_written: u64,
    /// Seconds from the table's first chunk start to its last chunk end.
    pub seconds: f64,
}

/// A step that failed after the run was planned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepError {
    /// Step name (`merge`, `reconcile`, `conflict-create`, ...).
    pub step: String,
    /// The error's kind (decides the exit code).
    pub kind: ErrorKind,
    /// The error's message.
    pub message: String,
}

/// Everything a run did, for the summary table and the JSON report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunReport {
    /// The plan step's response.
    pub plan: PlanResponse,
    /// The run's status in `migration_runs` when the runner returned
    /// (`completed`, `partial`, `failed`, `mismatch`, `interrupted`); when
    /// the status database could not be read at the end, `failed` or
    /// `interrupted` from what this process saw, else `unknown`.
    #[serde(default)]
    pub status: String,
    /// Per-table copy outcome, in plan order.
    pub tables: Vec<TableCopySummary>,
    /// The merge step's response.
    pub merge: MergeResponse,
    /// The reconcile step's response (absent when the copy failed).
    pub reconcile: Option<ReconcileResponse>,
    /// Row-level reconciliation details.
    pub reconcile_details: Vec<TableReport>,
    /// The conflict-create step's summary (absent when not run).
    pub conflicts: Option<ConflictCreateResponse>,
    /// Chunk failures: (item, error text).
    pub failures: Vec<(ChunkItem, String)>,
    /// The step that failed, if one did.
    #[serde(default)]
    pub error: Option<StepError>,
    /// The signal that stopped the run (`SIGINT`, `SIGTERM`), if one did.
    #[serde(default)]
    pub interrupted: Option<String>,
    /// Wall time of each step that ran, in order: (step name, seconds).
    pub steps: Vec<(String, f64)>,
    /// Wall time of the whole run in seconds.
    pub wall_seconds: f64,
}

impl RunReport {
    /// The report of a run just planned: status `running`, nothing copied
    /// yet, `steps` the (name, seconds) of the steps so far.
    pub fn started(plan: PlanResponse, steps: Vec<(String, f64)>) -> RunReport {
        RunReport {
            plan,
            status: run_status::RUNNING.into(),
            tables: Vec::new(),
            merge: MergeResponse::default(),
            reconcile: None,
            reconcile_details: Vec::new(),
            conflicts: None,
            failures: Vec::new(),
            error: None,
            interrupted: None,
            steps,
            wall_seconds: 0.0,
        }
    }
}

impl RunReport {
    /// The error a caller should exit with, if any, in this order: the run
    /// was interrupted ([`ErrorKind::Transient`]: rerunning resumes it), a
    /// step failed (its kind), chunks failed ([`ErrorKind::ChunkFailed`]),
    /// reconciliation found differences ([`ErrorKind::ReconcileMismatch`]).
    pub fn outcome(&self) -> Result<()> {
        if let (Some(signal), Some(_)) = (&self.interrupted, &self.reconcile) {
            // Stopped in conflict detection: the copy and its reconcile finished, so the
            // same command starts a new run ([`crate::sync::status::run_status::resumable_sql`]).
            return Err(Error::new(
                ErrorKind::Transient,
                format!(
                    "interrupted by {signal} during conflict detection; run {} copied and reconciled every table, so it is not resumed: \
                     the next `thaw run` starts a new run and detects conflicts then (or run `thaw conflicts`)",
                    self.plan.run_id
                ),
            ));
        }
        if let Some(signal) = &self.interrupted {
            return Err(Error::new(
                ErrorKind::Transient,
                format!(
                    "interrupted by {signal}; run {} can be resumed with the same command (or --resume-run-id {}); only unfinished chunks are copied",
                    self.plan.run_id, self.plan.run_id
                ),
            ));
        }
        if let Some(e) = &self.error {
            return Err(Error::new(e.kind, format!("step {} of run {} failed: {}", e.step, self.plan.run_id, e.message)));
        }
        if let Some((item, e)) = self.failures.first() {
            return Err(Error::new(
                ErrorKind::ChunkFailed,
                format!(
                    "{} chunk(s) failed; first: chunk {} of {}: {}. Fix the cause and rerun the same command to resume run {} (only unfinished chunks are copied).",
                    self.failures.len(),
                    item.chunk_id,
                    item.source_table,
                    e.trim_end_matches('.'),
                    self.plan.run_id
                ),
            ));
        }
        // Reconcile outcome (per-table errors, then mismatches): see reconcile::require_match.
        if let Some(r) = &self.reconcile {
            crate::reconcile::require_match(r)?;
        }
        Ok(())
    }
}

/// Run the whole job locally.
///
/// Errors (no report): the run lock is held by another run
/// ([`ErrorKind::Locked`], naming it), migrations or `plan` failed (the run,
/// if one was created, is recorded `failed`), or a signal arrived while
/// planning (the run is recorded `interrupted`). After planning every
/// outcome is a [`RunReport`]; [`RunReport::outcome`] turns it into the
/// caller's error.
pub async fn run(config: Arc<Config>, options: RunOptions, observer: Arc<dyn Observer>) -> Result<RunReport> {
    let started = Instant::now();
    let cancel = options.cancel.clone().unwrap_or_default();
    if options.max_workers == Some(0) {
        // No worker would ever take a chunk: the run would hang, holding its lock.
        return Err(Error::config("the number of copy workers (--workers) must be at least 1"));
    }
    // The selection (and a --where predicate) is checked before anything is written.
    let selected = crate::sync::plan::select_tables(&config, &options.request)?;
    crate::migrations::migrate_databases_if_permitted(&config).await?;
    let targets: Vec<(String, String)> =
        selected.iter().flat_map(|(s, ts)| ts.iter().map(move |t| (s.target_pg_schema.clone(), t.target.clone()))).collect();
    let lock = Arc::new(RunLock::acquire(&config, &targets).await?);

    let mut steps = Vec::new();
    let mut step_started = Instant::now();
    observer.step("plan");
    let planned = tokio::select! {
        p = crate::sync::plan::plan_run_with(&config, &options.request, Some(&lock.holder)) => p,
        _ = cancel.cancelled() => {
            // The current table's planning transaction rolled back with the dropped future.
            let reason = cancel.reason().unwrap_or_default();
            let backend = lock.holder.lock_backend_pid.unwrap_or_default();
            let runs = PgStatusStore::new(&lock.client).interrupt_lock_session_runs(backend, &format!("interrupted by {reason} while planning")).await.unwrap_or_default();
            let which = match runs.first() {
                Some(id) => format!("run {id} is recorded 'interrupted' and the same command resumes it (or --resume-run-id {id}); tables not yet planned are planned then"),
                None => "no run was recorded yet".to_string(),
            };
            Err(Error::new(ErrorKind::Transient, format!("interrupted by {reason} while planning; {which}")))
        }
    };
    let plan = match planned {
        Ok(plan) => plan,
        Err(e) => {
            // Unlock before returning: a dropped lock session frees the lock
            // only once PostgreSQL notices the closed connection, and a run
            // started right after this one (the same command, fixed) found
            // its tables still locked by this finished process.
            lock.release().await;
            return Err(e);
        }
    };
    steps.push(("plan".to_string(), step_started.elapsed().as_secs_f64()));
    step_started = Instant::now();

    let heartbeat = {
        let (lock, run_id) = (lock.clone(), plan.run_id);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(HEARTBEAT_INTERVAL).await;
                if let Err(e) = PgStatusStore::new(&lock.client).heartbeat(run_id).await {
                    tracing::warn!(%run_id, error = %e, "could not refresh the run heartbeat");
                }
            }
        })
    };
    let mut report = RunReport::started(plan, steps);
    let driven = drive(&config, &options, &observer, &lock, &cancel, targets.len(), &mut report, &mut step_started).await;
    heartbeat.abort();
    // Wait for the aborted task to be dropped (it holds a clone of the lock).
    let _ = heartbeat.await;
    let run_id = report.plan.run_id;
    if let Err(e) = driven {
        // A step failed: record the run failed with the step's error (the report is still returned).
        let step = report.error.as_ref().map(|s| s.step.clone()).unwrap_or_else(|| "run".into());
        let text = format!("step {step} failed: {e}");
        if let Err(se) = PgStatusStore::new(&lock.client).finish_run(run_id, run_status::FAILED, Some(&text)).await {
            tracing::warn!(%run_id, error = %se, "could not record the run as failed");
        }
        report.error = Some(StepError { step, kind: e.kind, message: e.message });
    }
    let recorded = PgStatusStore::new(&lock.client).run_record(run_id).await;
    report.status = reported_status(recorded, &report);
    report.wall_seconds = started.elapsed().as_secs_f64();
    lock.release().await;
    Ok(report)
}

/// The status the report gives: the run's row in `migration_runs` when it
/// can be read; otherwise (the status database went away) what this process
/// knows: `failed` when a step failed, `interrupted` when a signal stopped
/// the run, else `unknown` — never the `running` the report started with,
/// which would say the run is still going.
fn reported_status(recorded: Result<Option<RunRecord>>, report: &RunReport) -> String {
    match recorded {
        Ok(Some(r)) => r.status,
        Ok(None) | Err(_) if report.error.is_some() => run_status::FAILED.into(),
        Ok(None) | Err(_) if report.interrupted.is_some() => run_status::INTERRUPTED.into(),
        Ok(None) | Err(_) => "unknown".into(),
    }
}

/// The steps after planning. Sets `report.error.step` before each step so a
/// failure can be attributed; returns the failing step's error.
#[allow(clippy::too_many_arguments)]
async fn drive(
    config: &Arc<Config>,
    options: &RunOptions,
    observer: &Arc<dyn Observer>,
    lock: &RunLock,
    cancel: &Cancel,
    selected_tables: usize,
    report: &mut RunReport,
    step_started: &mut Instant,
) -> Result<()> {
    let run_id = report.plan.run_id;
    let mut mark = |name: &str, report: &mut RunReport| {
        report.steps.push((name.to_string(), step_started.elapsed().as_secs_f64()));
        *step_started = Instant::now();
    };
    let attribute = |report: &mut RunReport, step: &str| {
        report.error = Some(StepError { step: step.into(), kind: ErrorKind::Internal, message: String::new() });
    };
    attribute(report, "copy");
    let items: Vec<ChunkItem> = crate::sync::manifest::read(&report.plan.manifest_uri).await?;
    let mut per_table: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for i in &items {
        per_table.entry(i.source_table.clone()).or_default().0 += 1;
    }
    let table_list: Vec<(String, u64, u64)> = per_table.iter().map(|(t, (c, r))| (t.clone(), *c, *r)).collect();
    observer.planned(&report.plan, &table_list);

    observer.step("copy");
    let (tables, failures) = copy_all(config, &items, options.max_workers, observer.clone(), cancel).await?;
    report.tables = tables;
    report.failures = failures;
    report.error = None;
    mark("copy", report);
    if interrupted(lock, cancel, report).await? {
        return Ok(());
    }

    observer.step("merge");
    attribute(report, "merge");
    report.merge = crate::sync::merge::merge_run(config, &RunRequest { run_id }).await?;
    mark("merge", report);
    report.error = None;
    if report.merge.tables.iter().any(|t| t.status != "completed") {
        return Ok(());
    }
    if report.merge.tables.len() != selected_tables {
        attribute(report, "reconcile");
        return Err(Error::internal(format!(
            "run {run_id} has {} table(s) but the configuration selects {selected_tables}; reconciliation must cover every selected table. Rerun with --no-resume to plan a fresh run.",
            report.merge.tables.len()
        )));
    }

    observer.step("reconcile");
    attribute(report, "reconcile");
    let request = RunRequest { run_id };
    let reconciled = tokio::select! {
        r = crate::steps::reconcile_with(config, &request, crate::reconcile::ReconcileOptions { full: options.reconcile_full, ..Default::default() }) => Some(r?),
        _ = cancel.cancelled() => None,
    };
    let Some((r, d)) = reconciled else {
        report.error = None;
        interrupted(lock, cancel, report).await?;
        return Ok(());
    };
    mark("reconcile", report);
    report.error = None;
    let clean = r.mismatches == 0 && r.errors == 0;
    report.reconcile = Some(r);
    report.reconcile_details = d;
    if clean && options.conflicts && config.conflicts.is_some() {
        observer.step("conflict-create");
        attribute(report, "conflict-create");
        let req = ConflictCreateRequest { run_id: Some(run_id), full: options.conflicts_full };
        let created = tokio::select! {
            c = crate::steps::conflict_create(config, &req) => Some(c?),
            _ = cancel.cancelled() => None,
        };
        report.error = None;
        match created {
            Some(c) => {
                report.conflicts = Some(c);
                mark("conflict-create", report);
            }
            None => {
                interrupted(lock, cancel, report).await?;
            }
        }
    }
    Ok(())
}

/// When the run was asked to stop: put abandoned chunks back to `pending`,
/// record the run `interrupted` and return true.
async fn interrupted(lock: &RunLock, cancel: &Cancel, report: &mut RunReport) -> Result<bool> {
    let Some(reason) = cancel.reason() else { return Ok(false) };
    let run_id = report.plan.run_id;
    let message = if report.reconcile.is_some() {
        // Its copy finished: never resumed automatically (run_status::resumable_sql).
        format!("interrupted by {reason} during conflict detection, after every table was copied and reconciled; the next run is a new one")
    } else {
        format!("interrupted by {reason}; resume with the same command or --resume-run-id {run_id}")
    };
    let released = PgStatusStore::new(&lock.client).release_in_progress_chunks(run_id, &format!("interrupted by {reason}")).await?;
    PgStatusStore::new(&lock.client).finish_run(run_id, run_status::INTERRUPTED, Some(&message)).await?;
    tracing::warn!(%run_id, signal = %reason, released, "run interrupted at a chunk boundary");
    report.interrupted = Some(reason);
    Ok(true)
}

type Pool = Arc<Mutex<BTreeMap<String, Vec<Worker>>>>;

async fn copy_all(
    config: &Arc<Config>,
    items: &[ChunkItem],
    max_workers: Option<usize>,
    observer: Arc<dyn Observer>,
    cancel: &Cancel,
) -> Result<(Vec<TableCopySummary>, Vec<(ChunkItem, String)>)> {
    let tables_parallel = config.max_parallel_tables.unwrap_or(2).max(1);
    let max = max_workers.unwrap_or_else(|| (tables_parallel * config.parallel_threads.unwrap_or(crate::config::DEFAULT_PARALLEL_THREADS)).clamp(1, 16));
    let global = Arc::new(Semaphore::new(max));
    let mut table_sems: BTreeMap<String, Arc<Semaphore>> = BTreeMap::new();
    for i in items {
        table_sems.entry(i.source_table.clone()).or_insert_with(|| {
            let threads = config
                .source(&i.source_name)
                .ok()
                .and_then(|s| s.tables.iter().find(|t| t.source == i.source_table))
                .map(|t| config.parallel_threads(t))
                .unwrap_or(crate::config::DEFAULT_PARALLEL_THREADS);
            Arc::new(Semaphore::new(threads.max(1)))
        });
    }
    let pool: Pool = Arc::new(Mutex::new(BTreeMap::new()));
    let mut handles = Vec::new();
    for item in items.iter().cloned() {
        let (global, table_sem, pool, config, observer, cancel) =
            (global.clone(), table_sems[&item.source_table].clone(), pool.clone(), config.clone(), observer.clone(), cancel.clone());
        handles.push(tokio::spawn(async move {
            // A staged chunk's files load in parallel on free slots of the same bounds (docs/sync.md §13.6).
            let slots = crate::sync::staged::FileLoadSlots { run: global.clone(), table: table_sem.clone() };
            let _t = table_sem.acquire_owned().await.expect("semaphore open");
            let _g = global.acquire_owned().await.expect("semaphore open");
            let start = Instant::now();
            if cancel.is_cancelled() {
                // Stopping: no new chunk is handed out.
                return (item, start, Instant::now(), None);
            }
            // A chunk abandoned here drops its worker: the chunk transaction
            // rolls back and the runner puts the chunk back to `pending`.
            let result = tokio::select! {
                r = crate::sync::staged::FILE_LOAD_SLOTS.scope(slots, copy_with_retries(&config, &pool, &item)) => Some(r),
                _ = cancel.cancelled() => None,
            };
            match &result {
                Some(Ok(r)) => observer.chunk_done(r),
                Some(Err(e)) => observer.chunk_failed(&item, e),
                None => {}
            }
            (item, start, Instant::now(), result)
        }));
    }
    let mut summaries: BTreeMap<String, (TableCopySummary, Option<Instant>, Option<Instant>)> = BTreeMap::new();
    let mut failures = Vec::new();
    for h in handles {
        let (item, start, end, result) = h.await.map_err(|e| Error::internal(format!("copy worker panicked: {e}")))?;
        let Some(result) = result else { continue };
        let entry = summaries.entry(item.source_table.clone()).or_insert_with(|| {
            let target = config
                .source(&item.source_name)
                .ok()
                .and_then(|s| s.tables.iter().find(|t| t.source == item.source_table).map(|t| format!("{}.{}", s.target_pg_schema, t.target)))
                .unwrap_or_else(|| item.source_table.clone());
            (TableCopySummary { source_table: item.source_table.clone(), target, ..Default::default() }, None, None)
        });
        entry.1 = Some(entry.1.map_or(start, |s| s.min(start)));
        entry.2 = Some(entry.2.map_or(end, |e| e.max(end)));
        match result {
            Ok(r) => {
                entry.0.chunks += 1;
                entry.0.rows_read += r.rows_read;
                entry.0.rows_written += r.rows_inserted + r.rows_updated;
            }
            Err(e) => {
                entry.0.failed_chunks += 1;
                failures.push((item, e.to_string()));
            }
        }
    }
    let tables = summaries
        .into_values()
        .map(|(mut s, a, b)| {
            if let (Some(a), Some(b)) = (a, b) {
                s.seconds = (b - a).as_secs_f64();
            }
            s
        })
        .collect();
    Ok((tables, failures))
}

async fn copy_with_retries(config: &Config, pool: &Pool, item: &ChunkItem) -> Result<CopyChunkResponse> {
    // Retry budget, backoff and jitter: docs/sync.md §9.3 (crate::sync::retry).
    let mut policy = crate::sync::retry::RetryPolicy::from_config(config);
    let mut attempt = 0;
    loop {
        attempt += 1;
        // A pooled worker whose connection died while idle (server restart) is dropped.
        let worker = { pool.lock().await.get_mut(&item.source_name).and_then(|v| { v.retain(|w| !w.pg.is_closed()); v.pop() }) };
        let mut worker = match worker {
            Some(w) => w,
            None => match Worker::connect(config, &item.source_name).await {
                Ok(w) => w,
                Err(e) => match policy.next_delay(attempt, &e) {
                    Some(wait) => {
                        tracing::warn!(table = %item.source_table, chunk = item.chunk_id, attempt, error = %e, "cannot connect; retrying");
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    None => return Err(e),
                },
            },
        };
        match crate::steps::copy_chunk_on(config, &mut worker, item).await {
            Ok(r) => {
                pool.lock().await.entry(item.source_name.clone()).or_default().push(worker);
                return Ok(r);
            }
            Err(e) => match policy.next_delay(attempt, &e) {
                Some(wait) => {
                    tracing::warn!(table = %item.source_table, chunk = item.chunk_id, attempt, error = %e, "transient chunk failure; reconnecting and retrying");
                    // The worker's connections may be broken: drop them (the
                    // next attempt opens a new PostgreSQL client and Snowflake session).
                    drop(worker);
                    tokio::time::sleep(wait).await;
                }
                None => {
                    if !worker.pg.is_closed() {
                        pool.lock().await.entry(item.source_name.clone()).or_default().push(worker);
                    }
                    return Err(e);
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(error: bool, interrupted: bool) -> RunReport {
        let plan = PlanResponse { run_id: uuid::Uuid::nil(), resumed: false, manifest_uri: String::new(), tables: 1, chunks: 1, estimated_rows: 1 };
        RunReport {
            error: error.then(|| StepError { step: "copy".into(), kind: ErrorKind::Unreachable, message: "connection refused".into() }),
            interrupted: interrupted.then(|| "SIGTERM".to_string()),
            ..RunReport::started(plan, Vec::new())
        }
    }

    /// The status database going away at the end of a run left the report
    /// saying `running`, as if the run were still going.
    #[test]
    fn a_report_whose_status_cannot_be_read_says_what_the_process_saw_never_running() {
        let gone = || Err(Error::new(ErrorKind::Unreachable, "status database: connection refused"));
        assert_eq!(reported_status(gone(), &report(true, false)), "failed");
        assert_eq!(reported_status(gone(), &report(false, true)), "interrupted");
        assert_eq!(reported_status(gone(), &report(false, false)), "unknown");
        assert_eq!(reported_status(Ok(None), &report(true, false)), "failed");
    }
}
