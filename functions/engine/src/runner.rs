//! The local runner: the exact steps the Lambdas run, in one process.
//!
//! `plan` → `copy-chunk` for every manifest item with bounded parallelism
//! (per table `parallel_threads`, overall `max_workers`) → `merge` →
//! `reconcile` → `conflict-create`, passing the same typed requests and
//! responses ([`crate::contract`]) that the state machine passes. Transient
//! chunk errors are retried with exponential backoff and jitter (as the
//! state machine's `Retry` does); deterministic ones fail the chunk at once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, Semaphore};

use crate::config::Config;
use crate::sync::copy::{self, Worker};
use crate::error::{Error, ErrorKind, Result};
use crate::contract::{ChunkItem, ConflictCreateRequest, ConflictCreateResponse, CopyChunkResponse, MergeResponse, PlanRequest, PlanResponse, ReconcileResponse, RunRequest};
use crate::reconcile::TableReport;

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
    /// Upper bound of concurrent copy workers (default: 2 × parallel tables × threads, at most 16).
    pub max_workers: Option<usize>,
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

/// Everything a run did, for the summary table and the JSON report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunReport {
    /// The plan step's response.
    pub plan: PlanResponse,
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
    /// Wall time of each step that ran, in order: (step name, seconds).
    pub steps: Vec<(String, f64)>,
    /// Wall time of the whole run in seconds.
    pub wall_seconds: f64,
}

impl RunReport {
    /// The error a caller should exit with, if any: failed chunks first, then
    /// tables that could not be reconciled, then mismatches ([`crate::reconcile::require_match`]).
    pub fn outcome(&self) -> Result<()> {
        if let Some((item, e)) = self.failures.first() {
            return Err(Error::new(
                ErrorKind::ChunkFailed,
                format!(
                    "{} chunk(s) failed; first: chunk {} of {}: {e}. Fix the cause and rerun the same command to resume run {} (only unfinished chunks are copied).",
                    self.failures.len(),
                    item.chunk_id,
                    item.source_table,
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
pub async fn run(config: Arc<Config>, options: RunOptions, observer: Arc<dyn Observer>) -> Result<RunReport> {
    let started = Instant::now();
    let mut steps = Vec::new();
    crate::migrations::migrate_databases(&config).await?;
    let mut step_started = Instant::now();
    let mut step = |name: &str, steps: &mut Vec<(String, f64)>| {
        steps.push((name.to_string(), step_started.elapsed().as_secs_f64()));
        step_started = Instant::now();
    };
    observer.step("plan");
    let plan = crate::sync::plan::plan_run(&config, &options.request).await?;
    let items: Vec<ChunkItem> = crate::sync::manifest::read(&plan.manifest_uri).await?;
    step("plan", &mut steps);

    let mut per_table: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for i in &items {
        per_table.entry(i.source_table.clone()).or_default().0 += 1;
    }
    let table_list: Vec<(String, u64, u64)> = per_table.iter().map(|(t, (c, r))| (t.clone(), *c, *r)).collect();
    observer.planned(&plan, &table_list);

    observer.step("copy");
    let (tables, failures) = copy_all(&config, &items, options.max_workers, observer.clone()).await?;
    step("copy", &mut steps);

    observer.step("merge");
    let merge = crate::sync::merge::merge_run(&config, &RunRequest { run_id: plan.run_id }).await?;
    step("merge", &mut steps);

    let mut reconcile = None;
    let mut details = Vec::new();
    let mut conflicts = None;
    if failures.is_empty() {
        observer.step("reconcile");
        let (r, d) = crate::reconcile::reconcile_run(&config, &RunRequest { run_id: plan.run_id }).await?;
        step("reconcile", &mut steps);
        let clean = r.mismatches == 0 && r.errors == 0;
        reconcile = Some(r);
        details = d;
        if clean && options.conflicts && config.conflicts.is_some() {
            observer.step("conflict-create");
            let req = ConflictCreateRequest { run_id: Some(plan.run_id), full: options.conflicts_full };
            conflicts = Some(crate::steps::conflict_create(&config, &req).await?);
            step("conflict-create", &mut steps);
        }
    }
    Ok(RunReport { plan, tables, merge, reconcile, reconcile_details: details, conflicts, failures, steps, wall_seconds: started.elapsed().as_secs_f64() })
}

type Pool = Arc<Mutex<BTreeMap<String, Vec<Worker>>>>;

async fn copy_all(
    config: &Arc<Config>,
    items: &[ChunkItem],
    max_workers: Option<usize>,
    observer: Arc<dyn Observer>,
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
        let (global, table_sem, pool, config, observer) =
            (global.clone(), table_sems[&item.source_table].clone(), pool.clone(), config.clone(), observer.clone());
        handles.push(tokio::spawn(async move {
            let _t = table_sem.acquire_owned().await.expect("semaphore open");
            let _g = global.acquire_owned().await.expect("semaphore open");
            let start = Instant::now();
            let result = copy_with_retries(&config, &pool, &item).await;
            match &result {
                Ok(r) => observer.chunk_done(r),
                Err(e) => observer.chunk_failed(&item, e),
            }
            (item, start, Instant::now(), result)
        }));
    }
    let mut summaries: BTreeMap<String, (TableCopySummary, Option<Instant>, Option<Instant>)> = BTreeMap::new();
    let mut failures = Vec::new();
    for h in handles {
        let (item, start, end, result) = h.await.map_err(|e| Error::internal(format!("copy worker panicked: {e}")))?;
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
    let attempts = config.max_retry_attempts.unwrap_or(3).max(1);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let worker = { pool.lock().await.get_mut(&item.source_name).and_then(|v| v.pop()) };
        let mut worker = match worker {
            Some(w) => w,
            None => match Worker::connect(config, &item.source_name).await {
                Ok(w) => w,
                Err(e) if e.kind.is_retryable() && attempt < attempts => {
                    backoff(attempt).await;
                    continue;
                }
                Err(e) => return Err(e),
            },
        };
        match copy::copy_chunk(config, &mut worker, item).await {
            Ok(r) => {
                pool.lock().await.entry(item.source_name.clone()).or_default().push(worker);
                return Ok(r);
            }
            Err(e) if e.kind.is_retryable() && attempt < attempts => {
                tracing::warn!(table = %item.source_table, chunk = item.chunk_id, attempt, error = %e, "transient chunk failure; retrying");
                // The worker's connections may be broken: drop them.
                backoff(attempt).await;
            }
            Err(e) => {
                if !worker.pg.is_closed() {
                    pool.lock().await.entry(item.source_name.clone()).or_default().push(worker);
                }
                return Err(e);
            }
        }
    }
}

/// Exponential backoff with full jitter: up to 1 s × 2^(attempt−1), capped at 30 s.
async fn backoff(attempt: u32) {
    use rand::Rng;
    let cap = Duration::from_millis((1000u64 << (attempt - 1).min(5)).min(30_000));
    let wait = rand::thread_rng().gen_range(0..=cap.as_millis() as u64);
    tokio::time::sleep(Duration::from_millis(wait)).await;
}

