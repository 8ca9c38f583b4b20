//! Reconciliation: prove that PostgreSQL holds what Snowflake holds.
//!
//! For every table of a run, one query per engine computes, inside the
//! database, per **key-hash range** (the first 7 hex digits of the MD5 of
//! the row's key, split into [`ReconcileOptions::factor`] ranges): the row
//! count and two sums over a 48-bit slice of the MD5 of the row's canonical
//! text (see [`canonical`]). Summing the ranges gives the table's row count
//! and checksum (levels 1 and 2, docs/reconcile.md §2). Mismatching ranges
//! are bisected (split again, hashing only the rows inside) until they hold
//! at most [`ReconcileOptions::leaf_rows`] rows (docs/reconcile.md §4); then
//! only those rows are fetched — key text and every column's canonical text
//! — and diffed into missing, extra, changed (with the differing columns and
//! both values) and duplicate keys (level 3).
//!
//! Every table gets its own outcome ([`TableStatus`]): one table's failure
//! is recorded on that table and never stops the others; results are also
//! stored per run and table ([`store_results`], migration V8).
//!
//! On real Snowflake float and JSON columns are canonicalised by two
//! session-temporary JavaScript functions; on the emulator (DuckDB, which
//! runs no JavaScript) the Snowflake side of a table with such columns is
//! streamed in bounded batches and finished in Rust ([`SourceEngine`],
//! docs/reconcile.md §7.1). PostgreSQL's queries are their own dialect
//! (docs/reconcile.md §4.1): hashes computed once per row in a
//! parallel-safe plan, hex digits read by `bit(n)` casts.
//!
//! Tables with `propagate_deletes` delete their extra target rows (keys that
//! no longer exist in Snowflake) and are checked again.

pub mod canonical;
pub mod coverage;
pub mod dual_read;
pub mod row_hash;
pub mod side_table;

use std::collections::{BTreeMap, BTreeSet};

use arrow_array::{Array, Float64Array, RecordBatch, StringArray};
use arrow_schema::DataType;
use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

use crate::sync::status_postgres::PgStatusStore;
use crate::sync::status_store::StatusStore;
use crate::config::Config;
use crate::contract::{ReconcileResponse, RunRequest, TableReconcile};
use crate::error::{from_postgres, Error, ErrorKind, Result};
use crate::sink;
use crate::source::{self, SnowflakeSource};
use crate::sync::table_plan::{ColumnPair, TablePlan};
use crate::sync::status::TableKey;
use canonical::EmulatorPart;

/// Most differing keys listed per kind in a report.
const MAX_LISTED_KEYS: usize = 20;
/// Hex digits of `MD5(key text)` that place a row in the key-hash space.
const HASH_DIGITS: usize = 7;
/// Size of the key-hash space: `16^HASH_DIGITS` (2^28; fits PostgreSQL `int4`).
pub const HASH_SPACE: u64 = 1 << 28;

/// How reconcile narrows differences down (docs/reconcile.md §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconcileOptions {
    /// Ranges a mismatching range is split into (at least 2; default 32).
    pub factor: u64,
    /// A mismatching range with at most this many rows on both sides is
    /// diffed row by row instead of split again (default 16 384).
    pub leaf_rows: u64,
    /// Most ranges diffed row by row per table (default 64); further
    /// mismatching ranges are counted, not diffed.
    pub max_leaves: usize,
    /// Verify every row of every table (`thaw reconcile --full`, `thaw run
    /// --full-reconcile`); otherwise a table of an incremental run gets the
    /// rows the run touched plus a rolling slice (docs/reconcile.md §5).
    pub full: bool,
    /// Every row is verified at least once per this many days (default 7):
    /// a nightly slice is `1 / period_days` of the key-hash space.
    pub period_days: u32,
}

impl Default for ReconcileOptions {
    fn default() -> Self {
        ReconcileOptions { factor: 32, leaf_rows: 16_384, max_leaves: 64, full: false, period_days: 7 }
    }
}

/// A half-open range `[lo, hi)` of the key-hash space: the rows whose
/// `MD5(key text)` starts with 7 hex digits whose value lies in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct KeyRange {
    /// First hash value in the range.
    pub lo: u64,
    /// First hash value after the range.
    pub hi: u64,
}

impl KeyRange {
    /// The whole key-hash space.
    pub const ALL: KeyRange = KeyRange { lo: 0, hi: HASH_SPACE };

    /// Width of each of the `factor` sub-ranges (the last may be narrower).
    pub fn child_width(self, factor: u64) -> u64 {
        (self.hi - self.lo).div_ceil(factor.max(2)).max(1)
    }

    /// Sub-range number `i` of a split into `factor`.
    pub fn child(self, i: u64, factor: u64) -> KeyRange {
        let w = self.child_width(factor);
        KeyRange { lo: (self.lo + i * w).min(self.hi), hi: (self.lo + (i + 1) * w).min(self.hi) }
    }

    fn contains(self, h: u64) -> bool {
        h >= self.lo && h < self.hi
    }
}

/// Count and checksum of one segment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentSum {
    /// Rows.
    pub rows: u64,
    /// Sum of the high 24 bits of each row hash's first 48 bits.
    pub high: u64,
    /// Sum of the low 24 bits.
    pub low: u64,
}

/// Outcome of one table, as `TableReconcile::status` spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TableStatus {
    /// Counts and checksums agree.
    Ok,
    /// The table differs (see the row diff).
    Mismatch,
    /// The table could not be reconciled (see `error`).
    Error,
}

impl TableStatus {
    /// `ok`, `mismatch` or `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            TableStatus::Ok => "ok",
            TableStatus::Mismatch => "mismatch",
            TableStatus::Error => "error",
        }
    }
}

/// One differing column of a changed row: canonical texts, `None` for NULL.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ColumnDiff {
    /// Target column name.
    pub column: String,
    /// Canonical text of the Snowflake value.
    pub source: Option<String>,
    /// Canonical text of the PostgreSQL value.
    pub target: Option<String>,
}

/// A key present on both sides whose rows differ.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ChangedRow {
    /// Canonical key text.
    pub key: String,
    /// The columns that differ, in target column order.
    pub columns: Vec<ColumnDiff>,
}

/// Row-level differences found in mismatching segments.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RowDiff {
    /// Keys in Snowflake but not in PostgreSQL (canonical key text).
    pub missing: Vec<String>,
    /// Keys in PostgreSQL but not in Snowflake.
    pub extra: Vec<String>,
    /// Keys in both whose rows differ.
    pub changed: Vec<String>,
    /// The changed rows with their differing columns and both values.
    #[serde(default)]
    pub changed_rows: Vec<ChangedRow>,
    /// Keys held by more than one row in Snowflake.
    #[serde(default)]
    pub duplicate_source: Vec<String>,
    /// Keys held by more than one row in PostgreSQL.
    #[serde(default)]
    pub duplicate_target: Vec<String>,
    /// Totals (the lists are capped at 20 each).
    pub missing_count: u64,
    /// Total extra keys.
    pub extra_count: u64,
    /// Total changed keys.
    pub changed_count: u64,
    /// Total keys duplicated in Snowflake.
    #[serde(default)]
    pub duplicate_source_count: u64,
    /// Total keys duplicated in PostgreSQL.
    #[serde(default)]
    pub duplicate_target_count: u64,
    /// Mismatching key-hash ranges found by bisection, small enough to diff.
    #[serde(default)]
    pub segments_mismatching: u64,
    /// Ranges diffed row by row (at most `max_leaves`; the counts above cover only these).
    #[serde(default)]
    pub segments_diffed: u64,
    /// Bisection levels used (1: the first split was fine enough).
    #[serde(default)]
    pub levels: u32,
    /// Extra rows deleted from the target (`propagate_deletes`).
    pub deleted: u64,
}

/// Full per-table report (what the JSON report file holds).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TableReport {
    /// Summary line.
    pub summary: TableReconcile,
    /// Row-level differences, when any.
    pub diff: Option<RowDiff>,
    /// What was verified and what it cost (absent when the table could not
    /// be reconciled).
    #[serde(default)]
    pub coverage: Option<TableCoverage>,
}

/// How the Snowflake side computes the canonical forms of float and JSON
/// columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SourceEngine {
    /// Real Snowflake: everything in SQL, floats and JSON through the
    /// session-temporary JavaScript functions of [`canonical::snowflake_functions`].
    Snowflake,
    /// The emulator (DuckDB runs no JavaScript): tables with float or JSON
    /// columns are streamed and their canonical forms finished in Rust.
    Emulator,
}

impl SourceEngine {
    /// Tell the emulator from Snowflake: DuckDB answers `SELECT VERSION()`,
    /// Snowflake has no such function (it has `CURRENT_VERSION()`).
    pub async fn detect(sf: &SnowflakeSource) -> SourceEngine {
        match sf.execute("SELECT VERSION()").await {
            Ok(_) => SourceEngine::Emulator,
            Err(_) => SourceEngine::Snowflake,
        }
    }
}

/// A reconcile session on one Snowflake schema.
struct Session {
    sf: SnowflakeSource,
    engine: SourceEngine,
    /// Why the JavaScript functions could not be created (real Snowflake only).
    functions_error: Option<Error>,
    /// Why PostgreSQL cannot compute the canonical JSON and float forms
    /// (their functions are missing: [`canonical::postgres_functions_missing`]);
    /// set per run.
    postgres_functions_error: Option<Error>,
}

async fn open_session(config: &Config, database: &str, schema: &str) -> Result<Session> {
    let sf = source::connect(&config.snowflake, Some(database), Some(schema)).await?;
    let engine = SourceEngine::detect(&sf).await;
    let mut functions_error = None;
    if engine == SourceEngine::Snowflake {
        for statement in canonical::snowflake_functions() {
            if let Err(e) = sf.execute(&statement).await {
                functions_error = Some(e.context(format!(
                    "creating the temporary functions {} in {database}.{schema} (the reconcile role needs CREATE FUNCTION there)",
                    canonical::SNOWFLAKE_FUNCTIONS.join(", ")
                )));
                break;
            }
        }
    }
    Ok(Session { sf, engine, functions_error, postgres_functions_error: None })
}

/// Reconcile every table of a run (the `reconcile` step). Each table gets its
/// own outcome: a table that cannot be reconciled is reported with status
/// `error` and its message, and the other tables are still reconciled. The
/// summary is stored on the run (`metadata.reconcile`).
///
/// Errors: only when the run's tables cannot be listed or the summary cannot
/// be stored.
pub async fn reconcile_run(config: &Config, request: &RunRequest) -> Result<(ReconcileResponse, Vec<TableReport>)> {
    reconcile_run_with(config, request, ReconcileOptions::default()).await
}

/// [`reconcile_run`] with explicit bisection options.
pub async fn reconcile_run_with(config: &Config, request: &RunRequest, options: ReconcileOptions) -> Result<(ReconcileResponse, Vec<TableReport>)> {
    let pg = sink::connect_status(config).await?;
    // A run id that names no run is bad input, not "0 tables, all clean".
    if run_state(&pg, request.run_id).await?.is_none() {
        return Err(unknown_run(request.run_id));
    }
    // Shortest round-trip float8 text (PostgreSQL's default; pinned here).
    // No JIT: the canonical-form expressions are large, so PostgreSQL's cost
    // estimate triggers a JIT compile that takes longer than the query itself
    // (about 1.2 s per bisection query on a 20 000-row table).
    pg.batch_execute("SET extra_float_digits = 1; SET jit = off").await.map_err(|e| from_postgres(e, "setting extra_float_digits and jit"))?;
    // JSON and FLOAT columns need migration V22's functions in this database (docs/reconcile.md §3).
    let postgres_functions_error = match pg.query_one(canonical::POSTGRES_FUNCTIONS_MISSING_SQL, &[]).await {
        Ok(row) if row.get::<_, bool>(0) => Some(canonical::postgres_functions_missing(config.status_database())),
        Ok(_) => None,
        Err(e) => Some(from_postgres(e, format!("looking up the functions {} and {}", canonical::POSTGRES_JSON_FUNCTION, canonical::POSTGRES_FLOAT_FUNCTION))),
    };
    let mut reports = Vec::new();
    let mut sessions: BTreeMap<(String, String), std::result::Result<Session, Error>> = BTreeMap::new();
    for t in PgStatusStore::new(&pg).tables(request.run_id).await? {
        let plan: TablePlan = match serde_json::from_value(t.plan.clone()) {
            Ok(p) => p,
            Err(e) => {
                let target = format!("{}.{}", t.target_schema, t.target_table);
                reports.push(error_report(target, 0, &Error::internal(format!("stored plan of {} unreadable: {e}", t.key.source_table))));
                continue;
            }
        };
        let key = (plan.source_database.clone(), plan.source_schema.clone());
        if !sessions.contains_key(&key) {
            let session = open_session(config, &key.0, &key.1).await.map(|s| Session { postgres_functions_error: postgres_functions_error.clone(), ..s });
            sessions.insert(key.clone(), session);
        }
        let table_config = config.source(&plan.source_name).ok().and_then(|s| s.tables.iter().find(|x| x.source == plan.source_table));
        let settings = TableSettings::of(table_config);
        let result = match &sessions[&key] {
            Ok(session) => reconcile_covered(session, &pg, &t.key, &plan, settings, options).await,
            Err(e) => Err(e.clone()),
        };
        match result {
            Ok(report) => reports.push(report),
            Err(e) => {
                let e = e.context(format!("reconciling {}", plan.source_table));
                tracing::error!(table = %plan.target_fqn(), error = %e, "reconcile failed for this table; continuing with the others");
                reports.push(error_report(format!("{}.{}", plan.target_schema, plan.target_table), plan.columns.len() as u32, &e));
            }
        }
    }
    // Freshness over every table: a table that could not be checked counts
    // with its stored coverage, which ages until it is checked again.
    let mut freshness = Vec::new();
    for r in &reports {
        match &r.coverage {
            Some(c) => freshness.extend(c.freshness_hours),
            None => freshness.extend(coverage::load(&pg, &r.summary.target).await.ok().and_then(|c| c.freshness_hours(chrono::Utc::now()))),
        }
    }
    let response = ReconcileResponse {
        run_id: request.run_id,
        mismatches: reports.iter().filter(|r| r.summary.status == TableStatus::Mismatch.as_str()).count() as u32,
        errors: reports.iter().filter(|r| r.summary.status == TableStatus::Error.as_str()).count() as u32,
        tables: reports.iter().map(|r| r.summary.clone()).collect(),
        freshness_hours: freshness.into_iter().fold(None, |a: Option<f64>, h| Some(a.map_or(h, |a| a.max(h)))),
    };
    let value = serde_json::to_value(&response).map_err(|e| Error::internal(format!("reconcile summary does not serialise: {e}")))?;
    PgStatusStore::new(&pg).set_run_metadata(request.run_id, "reconcile", value).await?;
    store_results(&pg, request.run_id, &reports).await?;
    Ok((response, reports))
}

/// The error for a run id that `migration_status.migration_runs` does not hold.
fn unknown_run(run_id: uuid::Uuid) -> Error {
    Error::config(format!("run {run_id} does not exist in migration_status.migration_runs of this configuration's status database; `thaw status` lists the runs"))
}

/// A run's `(status, error_message)`; `None` when the run does not exist.
async fn run_state(pg: &Client, run_id: uuid::Uuid) -> Result<Option<(String, String)>> {
    let row = pg
        .query_opt("SELECT status, coalesce(error_message, '') FROM migration_status.migration_runs WHERE run_id = $1", &[&run_id])
        .await
        .map_err(|e| from_postgres(e, format!("reading run {run_id}")))?;
    Ok(row.map(|r| (r.get(0), r.get(1))))
}

/// The start of the error message [`StatusStore::record_reconcile`] and
/// [`reconcile_on_demand`] record on a run whose reconcile could not check
/// some tables (status `failed`; `mismatch` from 2026-12-06 to session 12).
const RECONCILE_ERRORS_MESSAGE: &str = crate::sync::status::run_status::RECONCILE_UNCHECKED;

/// `thaw reconcile`: reconcile a run on demand ([`reconcile_run_with`]) and
/// record the outcome on the run, as the nightly reconcile step does, so
/// that `migration_runs.status` (and `thaw status`, the cutover gate) tells
/// what the newest reconcile found (docs/reconcile.md §6.1).
///
/// Recorded for a run whose copy finished: `completed` or `mismatch`, or
/// `failed` by a reconcile that could not check a table; the run
/// becomes `completed` when nothing differs, `mismatch` when a table
/// differs ([`StatusStore::record_reconcile`]) and `failed` when a table
/// could not be checked (the message says which: `reconciliation could not
/// check …`; a dependency error — a Snowflake login refused, a database
/// unreachable — is never the data verdict `mismatch`). Such a `failed` run
/// is not resumed automatically ([`resumable_sql`](crate::sync::status::run_status::resumable_sql)):
/// the next `thaw run` starts the night's new run instead of resuming this
/// finished one (its chunks all done, so copying nothing new). A run still `planning` or `running`
/// (it may be copying right now), `partial`, `interrupted`, `superseded`,
/// or `failed` for another reason keeps its status: a clean reconcile cannot
/// make unfinished chunks good; resume it with `thaw run`.
///
/// It holds the run lock of the run's target tables meanwhile
/// ([`crate::sync::lock::RunLock`]), as `thaw run` does.
///
/// Returns the response, the per-table reports and the run's status
/// afterwards. Errors: [`ErrorKind::ConfigInvalid`] when the run does not
/// exist; [`ErrorKind::Locked`] naming the holder when a run is writing one
/// of the tables; otherwise those of [`reconcile_run_with`].
pub async fn reconcile_on_demand(config: &Config, request: &RunRequest, options: ReconcileOptions) -> Result<(ReconcileResponse, Vec<TableReport>, String)> {
    use crate::sync::status::run_status;
    let pg = sink::connect_status(config).await?;
    let (before, error) = run_state(&pg, request.run_id).await?.ok_or_else(|| unknown_run(request.run_id))?;
    let failed_by_reconcile = before == run_status::FAILED && error.starts_with(RECONCILE_ERRORS_MESSAGE);
    let recordable = before == run_status::COMPLETED || before == run_status::MISMATCH || failed_by_reconcile;
    // The run lock of the run's tables (docs/sync.md §6.5): no local run writes them while they are
    // checked (and, with propagate_deletes, written), and none starts meanwhile.
    let targets: Vec<(String, String)> = PgStatusStore::new(&pg).tables(request.run_id).await?.into_iter().map(|t| (t.target_schema, t.target_table)).collect();
    let lock = crate::sync::lock::RunLock::acquire(config, &targets).await?;
    let outcome = reconcile_run_with(config, request, options).await;
    lock.release().await;
    let (response, reports) = outcome?;
    if !recordable {
        return Ok((response, reports, before));
    }
    if response.errors > 0 {
        let names: Vec<String> = response.tables.iter().filter(|t| t.status == "error").map(|t| format!("{}: {}", t.target, t.error.as_deref().unwrap_or("unknown error"))).collect();
        let message = format!("{RECONCILE_ERRORS_MESSAGE} {} table(s) (thaw reconcile): {}", response.errors, names.join("; "));
        PgStatusStore::new(&pg).finish_run(request.run_id, run_status::FAILED, Some(&message)).await?;
        return Ok((response, reports, run_status::FAILED.to_string()));
    }
    let after = record_outcome(&pg, request.run_id, &response).await?;
    Ok((response, reports, after))
}

/// Record a reconcile's outcome on its run in the status database
/// ([`StatusStore::record_reconcile`]: `completed`, `mismatch`, or `failed`
/// when a table could not be checked; a run an earlier reconcile recorded
/// `failed` because it could not check a table is decided again). Returns
/// the run's status afterwards.
///
/// Errors: [`ErrorKind`] by SQLSTATE when the run cannot be read or written.
pub async fn record_outcome(pg: &Client, run_id: uuid::Uuid, response: &ReconcileResponse) -> Result<String> {
    PgStatusStore::new(pg).record_reconcile(run_id, response).await
}

/// Reconcile one table in the scope its coverage calls for (full, or the
/// touched rows and the next rolling slice), then record what was verified
/// clean (`migration_status.reconcile_coverage`, V14; nothing is recorded for
/// a table that differs) and the table's freshness.
///
/// A table whose compared columns gained columns since its previous run
/// (`schema_evolution: "add_columns"`, or a target column added by hand
/// after plan's drift error) loses its standing verification first: the
/// rows loaded before hold no verified values in the new columns (they stay
/// NULL until their watermark moves, docs/sync.md §3.6), so the table is
/// verified whole until a full check is clean (docs/reconcile.md §5.1).
async fn reconcile_covered(session: &Session, pg: &Client, key: &TableKey, plan: &TablePlan, settings: TableSettings<'_>, options: ReconcileOptions) -> Result<TableReport> {
    require_target_table(pg, plan).await?;
    let target = format!("{}.{}", plan.target_schema, plan.target_table);
    let now = chrono::Utc::now();
    let mut cov = coverage::load(pg, &target).await?;
    let added = columns_added_since_previous_run(pg, key, plan).await?;
    let invalidated = !added.is_empty() && cov.verified_since().is_some();
    if invalidated {
        cov.invalidate();
        coverage::store(pg, &cov).await?;
    }
    let (scope, mut reason) = Scope::choose(plan, &cov, options, now);
    if invalidated && !options.full {
        reason = format!("column(s) {} added since the previous run: the rows loaded before were never verified in them", added.iter().map(|c| sink::ident(c)).collect::<Vec<_>>().join(", "));
    }
    let mut report = reconcile_table_in(session, pg, plan, settings, options, &scope).await?;
    if report.summary.matched {
        match &scope {
            Scope::Full => cov.record_full(now),
            Scope::Nightly { slice, .. } => cov.record_slice(*slice, now),
        }
        coverage::store(pg, &cov).await?;
    }
    if settings.keys_only(plan) {
        reason.push_str("; insert_only_mode: keys compared, values kept from their first copy, no touched-rows part (docs/reconcile.md §1)");
    }
    if let Some(c) = report.coverage.as_mut() {
        c.reason = reason;
        c.freshness_hours = cov.freshness_hours(chrono::Utc::now());
    }
    Ok(report)
}

/// Target columns `plan` compares that the table's previous run (the latest
/// run that planned the same source table into the same target before the
/// run of `key`) did not copy; empty when there is no previous run.
///
/// Errors: [`ErrorKind`] by SQLSTATE.
async fn columns_added_since_previous_run(pg: &Client, key: &TableKey, plan: &TablePlan) -> Result<Vec<String>> {
    let row = pg
        .query_opt(
            "SELECT jsonb_path_query_array(p.plan, '$.columns[*].target.name') \
             FROM migration_status.migration_table_status c \
             JOIN migration_status.migration_table_status p \
               ON p.source_database = c.source_database AND p.source_schema = c.source_schema AND p.source_table = c.source_table \
              AND p.target_schema = c.target_schema AND p.target_table = c.target_table \
              AND p.run_id <> c.run_id AND p.started_at < c.started_at AND p.plan ? 'columns' \
             WHERE c.run_id = $1 AND c.source_database = $2 AND c.source_schema = $3 AND c.source_table = $4 \
             ORDER BY p.started_at DESC LIMIT 1",
            &[&key.run_id, &key.source_database, &key.source_schema, &key.source_table],
        )
        .await
        .map_err(|e| from_postgres(e, format!("reading the previous plan of {}", plan.target_fqn())))?;
    let Some(row) = row else { return Ok(Vec::new()) };
    let before: Vec<String> = serde_json::from_value(row.get(0)).unwrap_or_default();
    Ok(plan.columns.iter().map(|c| c.target.name.clone()).filter(|c| !before.contains(c)).collect())
}

/// Fail a table whose PostgreSQL target table no longer exists (dropped or
/// renamed since the run copied it) with what to do, instead of the first
/// query's "relation does not exist".
///
/// Errors: [`ErrorKind::SchemaMismatch`] (exit 2) naming the table and the
/// database; [`ErrorKind`] by SQLSTATE when the catalog cannot be read.
async fn require_target_table(pg: &Client, plan: &TablePlan) -> Result<()> {
    let fqn = sink::qualified(&plan.target_schema, &plan.target_table);
    let row = pg.query_one("SELECT to_regclass($1) IS NOT NULL", &[&fqn]).await.map_err(|e| from_postgres(e, format!("looking up {fqn}")))?;
    if row.get::<_, bool>(0) {
        return Ok(());
    }
    Err(Error::new(
        ErrorKind::SchemaMismatch,
        format!(
            "the target table {fqn} does not exist in PostgreSQL database '{}' (dropped or renamed since the run copied it): restore it, or run `thaw run` again (with \"create_tables\": true it recreates the table), then reconcile again",
            plan.target_database
        ),
    ))
}

/// Persist each table's outcome in `migration_status.reconcile_results`
/// (migration V8): one row per run and table, replaced by a rerun, which
/// counts the attempt.
///
/// Errors: [`ErrorKind`] by SQLSTATE when the row cannot be written.
pub async fn store_results(pg: &Client, run_id: uuid::Uuid, reports: &[TableReport]) -> Result<()> {
    for r in reports {
        let s = &r.summary;
        let d = r.diff.clone().unwrap_or_default();
        let report = serde_json::to_value(r).map_err(|e| Error::internal(format!("reconcile report does not serialise: {e}")))?;
        let n = |x: u64| x as i64;
        pg.execute(
            "INSERT INTO migration_status.reconcile_results (run_id, target, status, source_rows, target_rows, source_checksum, target_checksum, \
               missing_keys, extra_keys, changed_keys, duplicate_keys, deleted_rows, error_message, report) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
             ON CONFLICT (run_id, target) DO UPDATE SET status = EXCLUDED.status, source_rows = EXCLUDED.source_rows, target_rows = EXCLUDED.target_rows, \
               source_checksum = EXCLUDED.source_checksum, target_checksum = EXCLUDED.target_checksum, missing_keys = EXCLUDED.missing_keys, \
               extra_keys = EXCLUDED.extra_keys, changed_keys = EXCLUDED.changed_keys, duplicate_keys = EXCLUDED.duplicate_keys, \
               deleted_rows = EXCLUDED.deleted_rows, error_message = EXCLUDED.error_message, report = EXCLUDED.report, \
               attempts = migration_status.reconcile_results.attempts + 1, reconciled_at = now()",
            &[
                &run_id,
                &s.target,
                &s.status,
                &n(s.source_rows),
                &n(s.target_rows),
                &s.source_checksum,
                &s.target_checksum,
                &n(d.missing_count),
                &n(d.extra_count),
                &n(d.changed_count),
                &n(d.duplicate_source_count + d.duplicate_target_count),
                &n(d.deleted),
                &s.error,
                &report,
            ],
        )
        .await
        .map_err(|e| from_postgres(e, format!("recording the reconcile result of {}", s.target)))?;
    }
    Ok(())
}

fn error_report(target: String, columns: u32, e: &Error) -> TableReport {
    TableReport {
        summary: TableReconcile {
            target,
            columns,
            matched: false,
            status: TableStatus::Error.as_str().into(),
            error: Some(e.to_string()),
            error_kind: Some(e.kind.name().into()),
            ..Default::default()
        },
        diff: None,
        coverage: None,
    }
}

/// What part of a table one reconcile verifies (docs/reconcile.md §5).
#[derive(Debug, Clone, PartialEq)]
enum Scope {
    /// Every row.
    Full,
    /// The rows the run touched (Snowflake and PostgreSQL predicates of its
    /// watermark) plus one rolling slice of the key-hash space.
    Nightly { touched: (String, String), slice: KeyRange },
}

/// What one reconcile of a table verified and what it cost
/// (docs/reconcile.md §5): part of [`TableReport`].
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TableCoverage {
    /// `full` (every row) or `nightly` (the rows the run touched plus a
    /// rolling slice of the key-hash space).
    pub scope: String,
    /// Why this scope (`--full`, the first verification, the run copied
    /// the whole table, or an incremental run).
    pub reason: String,
    /// Snowflake predicate of the rows the run touched (nightly only).
    #[serde(default)]
    pub touched: Option<String>,
    /// The rolling slice verified (nightly only).
    #[serde(default)]
    pub slice: Option<KeyRange>,
    /// Rows whose canonical form Snowflake hashed (touched rows plus the
    /// slice, or the whole table; the key census and bisection not counted).
    pub rows_verified: u64,
    /// Key-hash segments whose count and checksum were compared, over every
    /// part and bisection level.
    pub segments_checked: u64,
    /// The two sides' row counts differed, so the keys of the whole table
    /// were compared (count and checksum of the key text only, then the
    /// keys of the differing ranges).
    pub key_census: bool,
    /// Rows fetched to thaw from both sides (row diff, key census, the
    /// emulator's streamed tables); aggregates are not counted.
    pub rows_transferred: u64,
    /// Hours since the least recently verified slice of the table was
    /// verified clean, after this reconcile (`None`: the table was never
    /// verified whole).
    #[serde(default)]
    pub freshness_hours: Option<f64>,
    /// Seconds spent in Snowflake-side queries: every one of them (row
    /// count, segment sums of every part and bisection level, the key
    /// census, the row diff's key hashes and rows; on the emulator, the
    /// streamed queries until their last batch), measured around each
    /// query from thaw's side.
    #[serde(default)]
    pub source_seconds: f64,
    /// Seconds spent in PostgreSQL-side queries, measured the same way
    /// (row count, segment sums, key hashes and rows; not the row-hash side
    /// table's comparison and refill, nor deletes).
    #[serde(default)]
    pub target_seconds: f64,
    /// Wall-clock seconds of this table's reconcile.
    pub seconds: f64,
    /// What reconcile did with the table's row-hash side table
    /// (docs/reconcile.md §4.2): `read` (PostgreSQL's segment sums came from
    /// it), `compared` (a full reconcile found it equal to the rows),
    /// `refilled …`, `drift …` (the rolling slice found rows changed outside
    /// thaw; marked incomplete), `incomplete …`; absent without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_hashes: Option<String>,
}

impl Scope {
    /// The scope of a table's reconcile: full on `--full`, when the table
    /// was never verified whole, and when the run copied the whole table (no
    /// watermark predicate, or truncated); otherwise nightly. Returns the
    /// scope and the reason.
    fn choose(plan: &TablePlan, coverage: &coverage::Coverage, options: ReconcileOptions, now: chrono::DateTime<chrono::Utc>) -> (Scope, String) {
        if options.full {
            return (Scope::Full, "--full".into());
        }
        if coverage.verified_since().is_none() {
            return (Scope::Full, "first verification of the whole table".into());
        }
        let (Some(sf), false) = (plan.watermark_predicate.as_ref(), plan.truncated) else {
            return (Scope::Full, "the run copied the whole table".into());
        };
        let Some(pg) = touched_target_predicate(plan) else {
            return (Scope::Full, format!("the watermark predicate {sf} has no PostgreSQL equivalent"));
        };
        let slice = coverage.next_slice(now, options.period_days);
        (Scope::Nightly { touched: (plan.base_predicate(), pg), slice }, "incremental run: touched rows and a rolling slice".into())
    }
}

/// The PostgreSQL predicate selecting the target rows of an incremental run's
/// watermark predicate (`"SRC" >= literal`, docs/sync.md §3): the same
/// bound on the target watermark column. `None` when the stored predicate
/// does not have that shape or the column's type has no bound.
fn touched_target_predicate(plan: &TablePlan) -> Option<String> {
    use crate::sink::PgType;
    let predicate = plan.watermark_predicate.as_deref()?;
    let column = plan.target_watermark.as_deref()?;
    let pg_type = plan.columns.iter().find(|c| c.target.name == column)?.target.pg_type;
    let (_, literal) = predicate.split_once(" >= ")?;
    let value = match (literal.find('\''), literal.rfind('\'')) {
        (Some(a), Some(b)) if b > a => literal[a + 1..b].replace("''", "'"),
        (None, None) => literal.trim().to_string(),
        _ => return None,
    };
    let quoted = |v: &str| format!("'{}'", v.replace('\'', "''"));
    let c = sink::ident(column);
    Some(match pg_type {
        PgType::Timestamptz => format!("{c} >= ({}::timestamp AT TIME ZONE 'UTC')", quoted(value.trim_end_matches("+00:00"))),
        PgType::Timestamp => format!("{c} >= {}::timestamp", quoted(&value)),
        PgType::Date => format!("{c} >= {}::date", quoted(&value)),
        PgType::Int2 | PgType::Int4 | PgType::Int8 | PgType::Numeric | PgType::Float4 | PgType::Float8 => {
            value.parse::<f64>().ok()?;
            format!("{c} >= {value}")
        }
        // A NUMBER kept as text orders as a number (TablePlan::watermark_is_number_in_text).
        PgType::Text | PgType::Varchar | PgType::Bpchar if plan.watermark_is_number_in_text() => {
            value.parse::<f64>().ok()?;
            format!("{c}::numeric >= {value}")
        }
        PgType::Text | PgType::Varchar => format!("{c} COLLATE \"C\" >= {}", quoted(&value)),
        _ => return None,
    })
}

/// What a table's configuration changes in its reconcile.
#[derive(Clone, Copy, Default)]
struct TableSettings<'a> {
    /// `propagate_deletes`: extra target rows are deleted.
    propagate_deletes: bool,
    /// `truncate_to_date`: these source columns are compared as their day.
    date_only: &'a [String],
    /// `insert_only_mode`: existing keys are never updated.
    insert_only: bool,
}

impl<'a> TableSettings<'a> {
    /// The settings of `table` (none for a table no longer in the config).
    fn of(table: Option<&'a crate::config::TableConfig>) -> Self {
        table.map_or_else(Self::default, |t| TableSettings {
            propagate_deletes: t.propagate_deletes,
            date_only: &t.truncate_to_date,
            insert_only: t.insert_only_mode,
        })
    }

    /// Whether only the keys are compared: an `insert_only_mode` table with
    /// keys keeps each row as first copied while the source may update it,
    /// so its values differ from the source by design; its key set (missing,
    /// extra and duplicate rows) is still verified (docs/reconcile.md §1).
    fn keys_only(&self, plan: &TablePlan) -> bool {
        self.insert_only && !plan.key_columns.is_empty()
    }
}

async fn reconcile_table_in(
    session: &Session,
    pg: &Client,
    plan: &TablePlan,
    settings: TableSettings<'_>,
    options: ReconcileOptions,
    scope: &Scope,
) -> Result<TableReport> {
    let mut q = TableQueries::new(plan, session.engine, settings.date_only);
    if settings.keys_only(plan) {
        q = q.keys_only();
    }
    if let (true, Some(e)) = (q.needs_functions(), &session.functions_error) {
        return Err(e.clone());
    }
    if let (true, Some(e)) = (q.uses_postgres_functions(), &session.postgres_functions_error) {
        return Err(e.clone());
    }
    reconcile_queries(&session.sf, pg, &q, plan, settings, options, scope).await
}

/// Everything found in one table's reconcile, over its parts.
#[derive(Default)]
struct Found {
    missing: BTreeSet<String>,
    extra: BTreeSet<String>,
    changed: BTreeSet<String>,
    changed_rows: Vec<ChangedRow>,
    duplicate_source: BTreeSet<String>,
    duplicate_target: BTreeSet<String>,
    segments_mismatching: u64,
    segments_diffed: u64,
    segments_checked: u64,
    levels: u32,
    rows_transferred: u64,
    rows_verified: u64,
    source_seconds: f64,
    target_seconds: f64,
}

impl Found {
    fn any(&self) -> bool {
        self.segments_mismatching > 0
    }

    fn into_diff(self, deleted: u64) -> RowDiff {
        let listed = |s: &BTreeSet<String>| s.iter().take(MAX_LISTED_KEYS).cloned().collect::<Vec<_>>();
        RowDiff {
            missing: listed(&self.missing),
            extra: listed(&self.extra),
            changed: listed(&self.changed),
            changed_rows: self.changed_rows,
            duplicate_source: listed(&self.duplicate_source),
            duplicate_target: listed(&self.duplicate_target),
            missing_count: self.missing.len() as u64,
            extra_count: self.extra.len() as u64,
            changed_count: self.changed.len() as u64,
            duplicate_source_count: self.duplicate_source.len() as u64,
            duplicate_target_count: self.duplicate_target.len() as u64,
            segments_mismatching: self.segments_mismatching,
            segments_diffed: self.segments_diffed,
            levels: self.levels,
            deleted,
        }
    }
}

fn total(m: &BTreeMap<KeyRange, SegmentSum>) -> SegmentSum {
    m.values().fold(SegmentSum::default(), |a, s| SegmentSum { rows: a.rows + s.rows, high: a.high + s.high, low: a.low + s.low })
}

fn add(a: SegmentSum, b: SegmentSum) -> SegmentSum {
    SegmentSum { rows: a.rows + b.rows, high: a.high + b.high, low: a.low + b.low }
}

/// Both sides' row counts (level 1), their query times added to `found`.
async fn count_rows(sf: &SnowflakeSource, pg: &Client, q: &TableQueries, pg_table: &str, found: &mut Found) -> Result<(u64, u64)> {
    let started = std::time::Instant::now();
    let s = sf.execute(&format!("SELECT COUNT(*) FROM {}", q.sf_from)).await;
    found.source_seconds += started.elapsed().as_secs_f64();
    let source = parse_sum(s?.into_iter().next().and_then(|r| r.into_iter().next()).flatten());
    // Reading the side table: its rows are the target's as thaw wrote them.
    let pg_table = q.pg_side.as_deref().unwrap_or(pg_table);
    let started = std::time::Instant::now();
    let d = pg.query_one(&format!("SELECT COUNT(*) FROM {pg_table}"), &[]).await.map_err(|e| from_postgres(e, format!("counting {pg_table}")))?;
    found.target_seconds += started.elapsed().as_secs_f64();
    Ok((source, d.get::<_, i64>(0).max(0) as u64))
}

/// Verify the rows of `range` that `q` selects: segment sums on both
/// sides, bisection and row diff of what differs (into `found`). Returns
/// whether the part matched and both sides' sums.
async fn verify_part(sf: &SnowflakeSource, pg: &Client, q: &TableQueries, range: KeyRange, options: ReconcileOptions, found: &mut Found) -> Result<(bool, SegmentSum, SegmentSum)> {
    let mut source = SourceSide::new(sf, q);
    let src = source.segments(&[range], options.factor).await;
    found.source_seconds += source.seconds;
    let src = src?;
    let started = std::time::Instant::now();
    let dst = pg_segments(pg, q, &[range], options.factor).await?;
    found.target_seconds += started.elapsed().as_secs_f64();
    source.seconds = 0.0;
    found.segments_checked += src.keys().chain(dst.keys()).collect::<BTreeSet<_>>().len() as u64;
    found.rows_verified += total(&src).rows;
    let matched = src == dst;
    if !matched {
        // Bisection and row diff: their Snowflake time is counted also when one of them fails.
        let deeper = async {
            let (leaves, levels) = bisect(&mut source, pg, q, &src, &dst, options, found).await?;
            found.levels = found.levels.max(levels);
            drill(&mut source, pg, q, &leaves, options, found).await
        }
        .await;
        found.source_seconds += source.seconds;
        deeper?;
    }
    found.rows_transferred += source.transferred;
    Ok((matched, total(&src), total(&dst)))
}

async fn reconcile_queries(
    sf: &SnowflakeSource,
    pg: &Client,
    q: &TableQueries,
    plan: &TablePlan,
    settings: TableSettings<'_>,
    options: ReconcileOptions,
    scope: &Scope,
) -> Result<TableReport> {
    let started = std::time::Instant::now();
    let pg_table = plan.target_fqn();
    let propagate_deletes = settings.propagate_deletes;
    let mut found = Found::default();
    let mut deleted = 0;
    // Row hashes (docs/reconcile.md §4.2): a complete side table answers a
    // full-scope check of the PostgreSQL side (not `--full`, which re-derives
    // every hash from the rows and refills it). Its hashes are of whole rows:
    // no use when only the keys are compared.
    let side = if settings.keys_only(plan) { None } else { side_table::registered(pg, &pg_table).await? };
    let side_name = side.as_ref().map(|s| s.name.clone());
    let read_side = matches!(scope, Scope::Full) && !options.full && side.as_ref().is_some_and(|s| s.complete);
    let side_q;
    let q = if read_side {
        side_q = q.reading_side(side_name.clone());
        &side_q
    } else {
        q
    };
    let mut row_hashes = match &side {
        None => None,
        Some(_) if read_side => Some("read".to_string()),
        Some(s) if !s.complete => Some("incomplete: hashed in SQL".to_string()),
        Some(_) => Some("kept, hashed in SQL".to_string()),
    };
    // Level 1 over the whole table: counts (Snowflake answers COUNT(*) from
    // metadata). Different counts: compare the keys of the whole table (the
    // key census), which finds missing and extra rows — source deletes among
    // them — wherever they are, then delete the extra ones (propagate_deletes).
    let (source_rows, mut target_rows) = count_rows(sf, pg, q, &pg_table, &mut found).await?;
    let mut census_clean = true;
    let mut key_census = source_rows != target_rows;
    if key_census {
        let (census_deleted, keys_clean) = census(sf, pg, q, &pg_table, side_name.as_deref(), options, propagate_deletes, &mut found).await?;
        deleted = census_deleted;
        target_rows -= deleted.min(target_rows);
        census_clean = source_rows == target_rows && keys_clean;
    }
    // The verified parts: the whole table, or the touched rows and the slice.
    let touched_q;
    let parts: Vec<(&TableQueries, KeyRange)> = match scope {
        Scope::Full => vec![(q, KeyRange::ALL)],
        // Keys only (insert_only_mode): a row the source updated is touched in
        // Snowflake but keeps its first copy's watermark in PostgreSQL, so the
        // touched rows of the two sides differ by design. The counts above (and
        // the key census when they differ) cover the keys the run inserted.
        Scope::Nightly { slice, .. } if settings.keys_only(plan) => vec![(q, *slice)],
        Scope::Nightly { touched: (sf_where, pg_where), slice } => {
            touched_q = q.restricted(sf_where, pg_where, &pg_table);
            vec![(&touched_q, KeyRange::ALL), (q, *slice)]
        }
    };
    let (mut src_sum, mut dst_sum, mut parts_clean) = (SegmentSum::default(), SegmentSum::default(), true);
    let mut differing = Vec::new();
    let mut part_sums = Vec::new();
    let deleted_before_parts = deleted;
    let touched_part = matches!(scope, Scope::Nightly { .. }) && parts.len() == 2;
    for (i, (pq, range)) in parts.iter().enumerate() {
        let one_sided_before = (found.missing.clone(), found.extra.clone());
        let (ok, s, d) = verify_part(sf, pg, pq, *range, options, &mut found).await?;
        if touched_part && i == 0 && !ok {
            // A key the touched rows hold on one side only may be on the other
            // side outside them (its watermark moved there): look it up whole.
            let one_sided = found.missing.difference(&one_sided_before.0).chain(found.extra.difference(&one_sided_before.1)).cloned().collect();
            settle_one_sided(sf, pg, q, one_sided, &mut found).await?;
        }
        (src_sum, dst_sum) = (add(src_sum, s), add(dst_sum, d));
        part_sums.push(d);
        if !ok {
            parts_clean = false;
            differing.push((*pq, *range));
        }
    }
    // The rows were hashed in SQL: compare them with the side table too, so a
    // write that bypassed thaw is seen (rolling slice, --full), and refill it
    // on --full.
    if let (Some(s), false) = (&side, read_side) {
        // Rows deleted after the parts were hashed (propagate_deletes of extra
        // rows the row diff found) leave their sums stale: no comparison then.
        let stale_sums = deleted != deleted_before_parts;
        let hashed = match scope {
            Scope::Full => Some((KeyRange::ALL, part_sums[0])),
            Scope::Nightly { slice, .. } if s.complete && !stale_sums => Some((*slice, part_sums[1])),
            Scope::Nightly { .. } => None,
        };
        if let Some((range, rows_sum)) = hashed {
            let side_sum = total(&pg_segments(pg, &q.reading_side(Some(s.name.clone())), &[range], 2).await?);
            let equal = side_sum == rows_sum && !stale_sums;
            row_hashes = Some(match (scope, equal && s.complete) {
                (_, true) => "compared: equal to the rows".to_string(),
                (Scope::Full, false) => {
                    let rows = refill_side_table(pg, q, &pg_table, &s.name).await?;
                    format!("refilled from the rows ({rows} rows; {})", if s.complete { "it differed from them" } else { "it was incomplete" })
                }
                (Scope::Nightly { .. }, false) => {
                    side_table::invalidate(pg, &pg_table, "the rolling slice found rows changed outside thaw; thaw reconcile --full refills it").await?;
                    format!("drift: {} side rows vs {} target rows in the rolling slice; marked incomplete", side_sum.rows, rows_sum.rows)
                }
            });
        }
    }
    // Extra rows the census did not see (the counts agreed): delete them and
    // verify the differing parts again.
    if propagate_deletes && !parts_clean && !found.extra.is_empty() && deleted == 0 {
        deleted = delete_keys(pg, q, &pg_table, side_name.as_deref(), &found.extra).await?;
        target_rows -= deleted.min(target_rows);
        if deleted > 0 {
            parts_clean = true;
            for (pq, range) in differing {
                let mut again = Found::default();
                let (ok, _, _) = verify_part(sf, pg, pq, range, options, &mut again).await?;
                parts_clean &= ok;
                found.rows_transferred += again.rows_transferred;
                found.source_seconds += again.source_seconds;
                found.target_seconds += again.target_seconds;
            }
        }
        // The counts agreed because rows were missing elsewhere as many as
        // the extra rows just deleted: now they differ, so compare the keys
        // of the whole table (the census the equal counts skipped).
        if source_rows != target_rows && !key_census {
            key_census = true;
            let (census_deleted, keys_clean) = census(sf, pg, q, &pg_table, side_name.as_deref(), options, propagate_deletes, &mut found).await?;
            deleted += census_deleted;
            target_rows -= census_deleted.min(target_rows);
            census_clean = source_rows == target_rows && keys_clean;
        }
    }
    let checksum = |x: SegmentSum| format!("{:012x}{:012x}", x.high, x.low);
    let matched = census_clean && parts_clean;
    let any = found.any() || key_census;
    let coverage = TableCoverage {
        scope: match scope {
            Scope::Full => "full",
            Scope::Nightly { .. } => "nightly",
        }
        .into(),
        reason: String::new(),
        touched: match scope {
            Scope::Nightly { .. } => plan.watermark_predicate.clone(),
            Scope::Full => None,
        },
        slice: match scope {
            Scope::Nightly { slice, .. } => Some(*slice),
            Scope::Full => None,
        },
        rows_verified: found.rows_verified,
        segments_checked: found.segments_checked,
        key_census,
        rows_transferred: found.rows_transferred,
        freshness_hours: None,
        source_seconds: found.source_seconds,
        target_seconds: found.target_seconds,
        seconds: started.elapsed().as_secs_f64(),
        row_hashes,
    };
    tracing::info!(table = %pg_table, scope = %coverage.scope, rows_verified = coverage.rows_verified, rows_transferred = coverage.rows_transferred, seconds = coverage.seconds, "reconciled");
    Ok(TableReport {
        summary: TableReconcile {
            target: format!("{}.{}", plan.target_schema, plan.target_table),
            source_rows,
            target_rows,
            source_checksum: checksum(src_sum),
            target_checksum: checksum(dst_sum),
            columns: plan.columns.len() as u32,
            matched,
            status: if matched { TableStatus::Ok } else { TableStatus::Mismatch }.as_str().into(),
            error: None,
            error_kind: None,
        },
        diff: any.then(|| found.into_diff(deleted)),
        coverage: Some(coverage),
    })
}

/// The key census (docs/reconcile.md §5.2): the key sets of the whole
/// table compared (segment sums over the key columns only, bisected down to
/// leaves of `leaf_rows / 64` rows, then the keys of the differing leaves),
/// into `found` (missing, extra and duplicate keys, and the costs); with
/// `propagate_deletes` the extra keys' rows are deleted. Returns the rows
/// deleted and whether no key is missing or duplicated.
#[allow(clippy::too_many_arguments)]
async fn census(
    sf: &SnowflakeSource,
    pg: &Client,
    q: &TableQueries,
    pg_table: &str,
    side: Option<&str>,
    options: ReconcileOptions,
    propagate_deletes: bool,
    found: &mut Found,
) -> Result<(u64, bool)> {
    let kq = q.keys_only();
    let mut census = Found::default();
    // Keys only, and scattered deletes make every range differ: split down
    // to small leaves (one query per side per level) rather than fetch
    // the keys of whole ranges.
    let census_options = ReconcileOptions { max_leaves: usize::MAX, leaf_rows: (options.leaf_rows / 64).max(64), ..options };
    verify_part(sf, pg, &kq, KeyRange::ALL, census_options, &mut census).await?;
    let deleted = if propagate_deletes && !census.extra.is_empty() { delete_keys(pg, q, pg_table, side, &census.extra).await? } else { 0 };
    let keys_clean = census.missing.is_empty() && census.duplicate_source.is_empty() && census.duplicate_target.is_empty();
    found.missing.extend(census.missing);
    found.extra.extend(census.extra);
    found.duplicate_source.extend(census.duplicate_source);
    found.duplicate_target.extend(census.duplicate_target);
    found.segments_checked += census.segments_checked;
    found.rows_transferred += census.rows_transferred;
    found.segments_mismatching += census.segments_mismatching;
    found.segments_diffed += census.segments_diffed;
    found.source_seconds += census.source_seconds;
    found.target_seconds += census.target_seconds;
    Ok((deleted, keys_clean))
}

/// One compared column: its canonical text in each engine.
#[derive(Clone)]
struct Column {
    name: String,
    sf: String,
    emulator: EmulatorPart,
    pg: String,
}

/// The SQL text of one table's reconciliation on both sides.
struct TableQueries {
    columns: Vec<Column>,
    /// Indexes of the key columns in `columns`.
    keys: Vec<usize>,
    engine: SourceEngine,
    sf_from: String,
    pg_from: String,
    /// The row-hash side table the PostgreSQL side's segment sums are read
    /// from instead of hashing the rows in SQL (docs/reconcile.md §4.2).
    pg_side: Option<String>,
}

impl TableQueries {
    /// `date_only` names source columns of the table's `truncate_to_date`:
    /// their copy keeps only the day by configuration, so the source side is
    /// compared as that day (docs/reconcile.md §3), not at full precision.
    fn new(plan: &TablePlan, engine: SourceEngine, date_only: &[String]) -> Self {
        let sf_from = match &plan.source_filter {
            Some(f) => format!("{} WHERE ({f})", plan.source_fqn()),
            None => plan.source_fqn(),
        };
        let mut q = Self::from_columns(&plan.columns, &plan.key_columns, engine, sf_from, plan.target_fqn());
        for (column, pair) in q.columns.iter_mut().zip(&plan.columns) {
            if date_only.contains(&pair.source.name) {
                let day = canonical::snowflake_day_expr(&pair.source);
                column.sf = day.clone();
                column.emulator = EmulatorPart::Sql(day);
            }
        }
        q
    }

    fn from_columns(pairs: &[ColumnPair], key_columns: &[String], engine: SourceEngine, sf_from: String, pg_from: String) -> Self {
        let columns: Vec<Column> = pairs
            .iter()
            .map(|c| Column {
                name: c.target.name.clone(),
                sf: canonical::snowflake_expr(&c.source, &c.target),
                emulator: canonical::emulator_part(&c.source, &c.target),
                pg: canonical::postgres_expr(&c.source, &c.target),
            })
            .collect();
        let keys: Vec<usize> = if key_columns.is_empty() {
            (0..columns.len()).collect()
        } else {
            key_columns.iter().filter_map(|k| columns.iter().position(|c| &c.name == k)).collect()
        };
        TableQueries { columns, keys, engine, sf_from, pg_from, pg_side: None }
    }

    /// Whether the Snowflake SQL calls the JavaScript functions.
    fn needs_functions(&self) -> bool {
        self.engine == SourceEngine::Snowflake && self.columns.iter().any(|c| !matches!(c.emulator, EmulatorPart::Sql(_)))
    }

    /// Whether a column is compared in the canonical JSON or float form,
    /// which PostgreSQL computes with [`canonical::POSTGRES_JSON_FUNCTION`]
    /// and [`canonical::POSTGRES_FLOAT_FUNCTION`].
    fn uses_postgres_functions(&self) -> bool {
        self.columns.iter().any(|c| matches!(c.emulator, EmulatorPart::Json(_) | EmulatorPart::Float(_)))
    }

    /// Whether the Snowflake side is streamed and finished in Rust.
    fn streamed(&self) -> bool {
        self.engine == SourceEngine::Emulator && self.columns.iter().any(|c| !matches!(c.emulator, EmulatorPart::Sql(_)))
    }

    /// The Snowflake-side SQL per column (in-engine mode).
    fn sf_exprs(&self) -> Vec<String> {
        self.columns
            .iter()
            .map(|c| match (self.engine, &c.emulator) {
                (SourceEngine::Emulator, EmulatorPart::Sql(s)) => s.clone(),
                _ => c.sf.clone(),
            })
            .collect()
    }

    fn pg_exprs(&self) -> Vec<String> {
        self.columns.iter().map(|c| c.pg.clone()).collect()
    }

    fn key_of(&self, exprs: &[String]) -> String {
        canonical::row_text(&self.keys.iter().map(|i| exprs[*i].clone()).collect::<Vec<_>>())
    }

    /// `FROM …` of the rows whose key hash (`thaw_kh`) lies in one of
    /// `ranges`, with every source column: the key is hashed first, so the
    /// canonical texts are computed only for rows in range. Membership is
    /// tested on the hex text of the key's MD5 (`thaw_kx >= '0a1b2c3'`: a
    /// fixed-length lower-case hex prefix orders like its value; PostgreSQL
    /// compares it `COLLATE "C"`), so the hex digits are turned into
    /// `thaw_kh` only for rows in range, and not at all for the whole space.
    ///
    /// `postgres` selects PostgreSQL's form (docs/reconcile.md §4.1): the key
    /// hash is computed once per row by `UNNEST(ARRAY[MD5(…)])` (a subquery
    /// with a set-returning function is never inlined into its parent, so
    /// the hash is not recomputed per use, and unlike an `OFFSET 0` fence it
    /// leaves the scan parallel-safe), and its hex digits become an integer
    /// by one `bit(28)` cast instead of seven `POSITION` terms.
    fn in_ranges(&self, exprs: &[String], from: &str, postgres: bool, ranges: &[KeyRange]) -> String {
        let key = self.key_of(exprs);
        let (hash, kh, within) = if postgres {
            (format!("UNNEST(ARRAY[MD5({key})])"), canonical::postgres_hex_to_int("thaw_kx", HASH_DIGITS), postgres_ranges(ranges))
        } else {
            (format!("MD5({key})"), canonical::hex_to_int("thaw_kx", 1, HASH_DIGITS), snowflake_ranges(ranges))
        };
        format!("(SELECT t1.*, {kh} AS thaw_kh FROM (SELECT *, {hash} AS thaw_kx FROM {from}) t1 WHERE {within}) t3")
    }

    /// Per sub-range of `ranges`, each split into `factor`: `(index, COUNT,
    /// SUM of hash bits 47..24, SUM of bits 23..0)`; index `i * factor + j`
    /// is sub-range `j` of range `i`. With `postgres` the row hash is
    /// computed once per row (set-returning `UNNEST`, see [`Self::in_ranges`])
    /// and its first 12 hex digits read by one `bit(48)` cast.
    fn segments_sql(&self, exprs: &[String], from: &str, postgres: bool, ranges: &[KeyRange], factor: u64) -> String {
        let seg = segment_of(postgres, ranges, factor);
        let (row, rows) = (canonical::row_text(exprs), self.in_ranges(exprs, from, postgres, ranges));
        if postgres {
            // Integer division: thaw_kh is an int below 2^28.
            return format!(
                "SELECT seg, COUNT(*), SUM(v >> 24), SUM(v & 16777215) FROM \
                 (SELECT {seg} AS seg, UNNEST(ARRAY[{v}]) AS v FROM {rows}) y GROUP BY seg",
                v = canonical::postgres_hex_to_int(&format!("MD5({row})"), 12),
            );
        }
        let (h1, h2) = (canonical::hex_to_int("rh", 1, 6), canonical::hex_to_int("rh", 7, 6));
        format!("SELECT seg, COUNT(*), SUM(h1), SUM(h2) FROM (SELECT {seg} AS seg, {h1} AS h1, {h2} AS h2 FROM (SELECT thaw_kh, MD5({row}) AS rh FROM {rows}) x) y GROUP BY seg")
    }

    /// Key text and row hash of each row in `ranges`.
    fn key_hashes_sql(&self, exprs: &[String], from: &str, postgres: bool, ranges: &[KeyRange]) -> String {
        format!("SELECT {key} AS kt, MD5({row}) AS rh FROM {}", self.in_ranges(exprs, from, postgres, ranges), key = self.key_of(exprs), row = canonical::row_text(exprs))
    }

    /// Key text and every column's canonical text of the rows in `ranges`
    /// whose key's MD5 is one of `key_hashes` (32 hex digits each).
    fn rows_sql(&self, exprs: &[String], from: &str, postgres: bool, ranges: &[KeyRange], key_hashes: &[String]) -> String {
        let cols: Vec<String> = exprs.iter().enumerate().map(|(i, e)| format!(", {e} AS c{i}")).collect();
        let wanted: Vec<String> = key_hashes.iter().filter(|h| h.chars().all(|c| c.is_ascii_hexdigit())).map(|h| format!("'{h}'")).collect();
        let wanted = if wanted.is_empty() { "''".to_string() } else { wanted.join(", ") };
        format!(
            "SELECT * FROM (SELECT {key} AS kt{} FROM {}) r WHERE MD5(r.kt) IN ({wanted})",
            cols.join(""),
            self.in_ranges(exprs, from, postgres, ranges),
            key = self.key_of(exprs)
        )
    }

    /// The emulator query of a streamed table ([`SourceSide::stream`]): the
    /// emulator's part of every column (SQL text, or the raw FLOAT / JSON
    /// value finished in Rust), restricted inside the emulator to the rows
    /// in `ranges` (and to the listed key hashes) when the key columns are
    /// computed in SQL; otherwise every row is read and thaw filters.
    fn streamed_sql(&self, ranges: &[KeyRange], key_hashes: Option<&[String]>) -> String {
        let parts: Vec<String> = self
            .columns
            .iter()
            .map(|c| match &c.emulator {
                EmulatorPart::Sql(s) => s.clone(),
                EmulatorPart::Float(e) => format!("CAST({e} AS DOUBLE)"),
                EmulatorPart::Json(e) => format!("CAST({e} AS VARCHAR)"),
            })
            .collect();
        let select = if parts.is_empty() { "1".to_string() } else { parts.join(", ") };
        let keys_in_sql = !self.keys.is_empty() && self.keys.iter().all(|k| matches!(self.columns[*k].emulator, EmulatorPart::Sql(_)));
        if !keys_in_sql || (ranges == [KeyRange::ALL] && key_hashes.is_none()) {
            return format!("SELECT {select} FROM {}", self.sf_from);
        }
        let listed = match key_hashes {
            Some(hashes) => {
                let wanted: Vec<String> = hashes.iter().filter(|h| h.chars().all(|c| c.is_ascii_hexdigit())).map(|h| format!("'{h}'")).collect();
                format!(" WHERE thaw_kx IN ({})", if wanted.is_empty() { "''".to_string() } else { wanted.join(", ") })
            }
            None => String::new(),
        };
        format!("SELECT {select} FROM {}{listed}", self.in_ranges(&self.sf_exprs(), &self.sf_from, false, ranges))
    }

    /// The same table with the PostgreSQL side's segment sums read from the
    /// row-hash side table `side` (None: hashed in SQL).
    fn reading_side(&self, side: Option<String>) -> TableQueries {
        TableQueries {
            columns: self.columns.clone(),
            keys: self.keys.clone(),
            engine: self.engine,
            sf_from: self.sf_from.clone(),
            pg_from: self.pg_from.clone(),
            pg_side: side,
        }
    }

    /// The same table with its key columns only: its "rows" are the keys, so
    /// the segment sums compare the key sets (the key census).
    fn keys_only(&self) -> TableQueries {
        TableQueries {
            columns: self.keys.iter().map(|i| self.columns[*i].clone()).collect(),
            keys: (0..self.keys.len()).collect(),
            engine: self.engine,
            sf_from: self.sf_from.clone(),
            pg_from: self.pg_from.clone(),
            pg_side: None,
        }
    }

    /// The same table restricted to the rows a run touched: `sf_where` on the
    /// Snowflake table (its filter and watermark predicate), `pg_where` on
    /// the PostgreSQL table.
    fn restricted(&self, sf_where: &str, pg_where: &str, pg_table: &str) -> TableQueries {
        let base = self.sf_from.split(" WHERE ").next().unwrap_or(&self.sf_from).to_string();
        TableQueries {
            columns: self.columns.clone(),
            keys: self.keys.clone(),
            engine: self.engine,
            sf_from: format!("{base} WHERE {sf_where}"),
            pg_from: format!("(SELECT * FROM {pg_table} WHERE {pg_where}) thaw_touched"),
            pg_side: None,
        }
    }
}

/// SQL of the segment index of a row whose key-hash place is `thaw_kh`:
/// `i * factor + j` for sub-range `j` of range `i` of `ranges` (see
/// [`TableQueries::segments_sql`]); integer division in PostgreSQL.
fn segment_of(postgres: bool, ranges: &[KeyRange], factor: u64) -> String {
    let floor = |e: String| if postgres { e } else { format!("FLOOR({e})") };
    match ranges {
        [r] => floor(format!("(thaw_kh - {}) / {}", r.lo, r.child_width(factor))),
        _ => {
            let arms: Vec<String> = ranges
                .iter()
                .enumerate()
                .map(|(i, r)| format!("WHEN thaw_kh >= {} AND thaw_kh < {} THEN {} + {}", r.lo, r.hi, i as u64 * factor, floor(format!("(thaw_kh - {}) / {}", r.lo, r.child_width(factor)))))
                .collect();
            format!("CASE {} END", arms.join(" "))
        }
    }
}

/// The segment sums of [`TableQueries::segments_sql`] read from a row-hash
/// side table (docs/reconcile.md §4.2): an index-only scan of the
/// `(key_place, key_md5) INCLUDE (row_hash)` index over the ranges' places
/// only; nothing is hashed.
fn side_segments_sql(side: &str, ranges: &[KeyRange], factor: u64) -> String {
    let within: Vec<String> = ranges.iter().map(|r| format!("(key_place >= {} AND key_place < {})", r.lo, r.hi)).collect();
    let filter = if ranges == [KeyRange::ALL] { String::new() } else { format!(" WHERE {}", if within.is_empty() { "1 = 0".to_string() } else { within.join(" OR ") }) };
    format!(
        "SELECT seg, COUNT(*), SUM(row_hash >> 24), SUM(row_hash & 16777215) FROM (SELECT {} AS seg, row_hash FROM (SELECT key_place AS thaw_kh, row_hash FROM {side}{filter}) x) y GROUP BY seg",
        segment_of(true, ranges, factor)
    )
}

/// One row: canonical key text and every column's canonical text (None = NULL).
type Row = (String, Vec<Option<String>>);

fn md5_hex(text: &str) -> String {
    use md5::{Digest, Md5};
    hex::encode(Md5::digest(text.as_bytes()))
}


fn sums_from_rows(rows: Vec<Vec<Option<String>>>, ranges: &[KeyRange], factor: u64) -> BTreeMap<KeyRange, SegmentSum> {
    rows.into_iter()
        .filter_map(|r| {
            let seg = r.first().cloned().flatten()?.parse::<f64>().ok()? as u64;
            let range = ranges.get((seg / factor) as usize)?;
            let sum = SegmentSum { rows: parse_sum(r.get(1).cloned().flatten()), high: parse_sum(r.get(2).cloned().flatten()), low: parse_sum(r.get(3).cloned().flatten()) };
            Some((range.child(seg % factor, factor), sum))
        })
        .collect()
}

/// The same text [`canonical::row_text`] builds in SQL.
fn join_texts<'a>(parts: impl Iterator<Item = &'a Option<String>>) -> String {
    let sep = canonical::SEPARATOR.to_string();
    parts.map(|p| p.clone().unwrap_or_else(|| canonical::NULL_MARKER.to_string())).collect::<Vec<_>>().join(&sep)
}

/// The Snowflake side of one table: in SQL, or streamed (emulator tables with
/// float or JSON columns) and finished in Rust.
///
/// Streaming keeps memory bounded (docs/reconcile.md §7.1): each query reads
/// the emulator's answer batch by batch and keeps only what the step needs
/// (segment sums; key text and row hash of the rows of the leaf ranges; the
/// listed changed rows). The key-hash range filter runs inside the emulator
/// when the key columns are computed in SQL, so a bisection level or the row
/// diff streams only the rows of its ranges.
struct SourceSide<'a> {
    sf: &'a SnowflakeSource,
    q: &'a TableQueries,
    /// Rows fetched from Snowflake to thaw (row diff, streaming).
    transferred: u64,
    /// Seconds spent in this side's queries so far.
    seconds: f64,
}

impl<'a> SourceSide<'a> {
    fn new(sf: &'a SnowflakeSource, q: &'a TableQueries) -> Self {
        SourceSide { sf, q, transferred: 0, seconds: 0.0 }
    }

    /// Segment sums of `ranges`, each split in `factor` (timed into `seconds`).
    async fn segments(&mut self, ranges: &[KeyRange], factor: u64) -> Result<BTreeMap<KeyRange, SegmentSum>> {
        let started = std::time::Instant::now();
        let out = self.segments_untimed(ranges, factor).await;
        self.seconds += started.elapsed().as_secs_f64();
        out
    }

    /// Key text and row hash of each row in `ranges` (timed into `seconds`).
    async fn key_hashes(&mut self, ranges: &[KeyRange]) -> Result<Vec<(String, String)>> {
        let started = std::time::Instant::now();
        let out = self.key_hashes_untimed(ranges).await;
        self.seconds += started.elapsed().as_secs_f64();
        out
    }

    /// Every column's canonical text of the rows in `ranges` whose key's MD5
    /// is one of `key_hashes` (timed into `seconds`).
    async fn rows_of(&mut self, ranges: &[KeyRange], key_hashes: &[String]) -> Result<Vec<Row>> {
        let started = std::time::Instant::now();
        let out = self.rows_of_untimed(ranges, key_hashes).await;
        self.seconds += started.elapsed().as_secs_f64();
        out
    }

    async fn segments_untimed(&mut self, ranges: &[KeyRange], factor: u64) -> Result<BTreeMap<KeyRange, SegmentSum>> {
        if !self.q.streamed() {
            let rows = self.sf.execute(&self.q.segments_sql(&self.q.sf_exprs(), &self.q.sf_from, false, ranges, factor)).await?;
            return Ok(sums_from_rows(rows, ranges, factor));
        }
        let mut out: BTreeMap<KeyRange, SegmentSum> = BTreeMap::new();
        self.stream(ranges, None, |h, _, rh| {
            let Some(range) = ranges.iter().find(|r| r.contains(h)) else { return };
            let s = out.entry(range.child((h - range.lo) / range.child_width(factor), factor)).or_default();
            s.rows += 1;
            s.high += u64::from_str_radix(&rh[0..6], 16).unwrap_or(0);
            s.low += u64::from_str_radix(&rh[6..12], 16).unwrap_or(0);
        })
        .await?;
        Ok(out)
    }

    async fn key_hashes_untimed(&mut self, ranges: &[KeyRange]) -> Result<Vec<(String, String)>> {
        if !self.q.streamed() {
            let rows = self.sf.execute(&self.q.key_hashes_sql(&self.q.sf_exprs(), &self.q.sf_from, false, ranges)).await?;
            self.transferred += rows.len() as u64;
            return Ok(rows
                .into_iter()
                .filter_map(|mut r| {
                    r.resize(2, None);
                    Some((r[0].take()?, r[1].take()?))
                })
                .collect());
        }
        let mut out = Vec::new();
        self.stream(ranges, None, |_, (k, _), rh| out.push((k, rh))).await?;
        Ok(out)
    }

    async fn rows_of_untimed(&mut self, ranges: &[KeyRange], key_hashes: &[String]) -> Result<Vec<Row>> {
        if !self.q.streamed() {
            let n = self.q.columns.len();
            let rows = self.sf.execute(&self.q.rows_sql(&self.q.sf_exprs(), &self.q.sf_from, false, ranges, key_hashes)).await?;
            self.transferred += rows.len() as u64;
            return Ok(rows
                .into_iter()
                .filter_map(|mut r| {
                    r.resize(n + 1, None);
                    let key = r.remove(0)?;
                    Some((key, r))
                })
                .collect());
        }
        let mut out = Vec::new();
        self.stream(ranges, Some(key_hashes), |_, row, _| out.push(row)).await?;
        Ok(out)
    }

    /// Stream the rows in `ranges` (and, with `key_hashes`, only those whose
    /// key's MD5 is listed) from the emulator, batch by batch, calling `each`
    /// with the row's place in the key-hash space, the row (key text and
    /// canonical texts) and its row hash.
    async fn stream(&mut self, ranges: &[KeyRange], key_hashes: Option<&[String]>, mut each: impl FnMut(u64, Row, String)) -> Result<()> {
        use futures::StreamExt as _;
        let sql = self.q.streamed_sql(ranges, key_hashes);
        let mut batches = self.sf.stream_query(&sql).await?;
        while let Some(batch) = batches.next().await {
            let batch = batch?;
            let columns = self.decode(&batch)?;
            for i in 0..batch.num_rows() {
                let values: Vec<Option<String>> = columns.iter().map(|c| c[i].clone()).collect();
                let key = join_texts(self.q.keys.iter().map(|k| &values[*k]));
                // The row's place in the key-hash space, as the SQL computes it.
                let key_md5 = md5_hex(&key);
                let h = u64::from_str_radix(&key_md5[..HASH_DIGITS], 16).unwrap_or(0);
                if !ranges.iter().any(|r| r.contains(h)) || key_hashes.is_some_and(|k| !k.contains(&key_md5)) {
                    continue;
                }
                let rh = md5_hex(&join_texts(values.iter()));
                self.transferred += 1;
                each(h, (key, values), rh);
            }
        }
        Ok(())
    }

    /// Canonical texts per column of one streamed batch.
    fn decode(&self, batch: &RecordBatch) -> Result<Vec<Vec<Option<String>>>> {
        let mut out = Vec::new();
        for (i, c) in self.q.columns.iter().enumerate() {
            let array = batch.column(i);
            let err = |e: arrow_schema::ArrowError| Error::internal(format!("cannot read column {} of the emulator's rows: {e}", c.name));
            let values: Vec<Option<String>> = match &c.emulator {
                EmulatorPart::Float(_) => {
                    let a = arrow_cast::cast(array, &DataType::Float64).map_err(err)?;
                    let a = a.as_any().downcast_ref::<Float64Array>().ok_or_else(|| Error::internal("float column did not decode as Float64"))?;
                    (0..a.len()).map(|r| (!a.is_null(r)).then(|| canonical::canonical_float(a.value(r)))).collect()
                }
                part => {
                    let a = arrow_cast::cast(array, &DataType::Utf8).map_err(err)?;
                    let a = a.as_any().downcast_ref::<StringArray>().ok_or_else(|| Error::internal("text column did not decode as Utf8"))?;
                    let json = matches!(part, EmulatorPart::Json(_));
                    (0..a.len())
                        .map(|r| {
                            if a.is_null(r) {
                                None
                            } else if json {
                                serde_json::from_str::<serde_json::Value>(a.value(r)).ok().map(|v| canonical::canonical_json(&v))
                            } else {
                                Some(a.value(r).to_string())
                            }
                        })
                        .collect()
                }
            };
            out.push(values);
        }
        Ok(out)
    }
}

/// The Snowflake side's canonical text of every column of every row of
/// `from` (a table, optionally followed by `WHERE …`), computed the way
/// reconcile computes it on `engine` (in SQL; on the emulator float and JSON
/// columns are finished in Rust). Rows come in no particular order; NULL is
/// `None`. For tests and diagnostics: reconcile itself only hashes these.
///
/// Errors: whatever Snowflake answers; on real Snowflake the JavaScript
/// functions must exist on the session (see [`canonical::snowflake_functions`]).
pub async fn source_texts(sf: &SnowflakeSource, engine: SourceEngine, columns: &[ColumnPair], from: &str) -> Result<Vec<Vec<Option<String>>>> {
    let q = TableQueries::from_columns(columns, &[], engine, from.to_string(), String::new());
    if q.streamed() {
        let mut side = SourceSide::new(sf, &q);
        let mut rows = Vec::new();
        side.stream(&[KeyRange::ALL], None, |_, (_, v), _| rows.push(v)).await?;
        return Ok(rows);
    }
    let exprs = q.sf_exprs();
    let select = if exprs.is_empty() { "1".to_string() } else { exprs.join(", ") };
    let mut rows = sf.execute(&format!("SELECT {select} FROM {from}")).await?;
    for r in &mut rows {
        r.resize(exprs.len(), None);
    }
    Ok(rows)
}

fn parse_sum(v: Option<String>) -> u64 {
    v.and_then(|s| s.parse::<f64>().ok()).map(|f| f.round() as u64).unwrap_or(0)
}

async fn pg_segments(pg: &Client, q: &TableQueries, ranges: &[KeyRange], factor: u64) -> Result<BTreeMap<KeyRange, SegmentSum>> {
    let inner = match &q.pg_side {
        Some(side) => side_segments_sql(side, ranges, factor),
        None => q.segments_sql(&q.pg_exprs(), &q.pg_from, true, ranges, factor),
    };
    let sql = format!("SELECT seg::text, c::text, h::text, l::text FROM ({inner}) s(seg, c, h, l)");
    let rows = pg.query(&sql, &[]).await.map_err(|e| from_postgres(e, format!("checksumming {}", q.pg_from)))?;
    Ok(sums_from_rows(rows.iter().map(|r| (0..4).map(|i| r.get::<_, Option<String>>(i)).collect()).collect(), ranges, factor))
}

/// Key text and row hash of every PostgreSQL row in `ranges`.
async fn pg_key_hashes(pg: &Client, q: &TableQueries, ranges: &[KeyRange]) -> Result<Vec<(String, String)>> {
    Ok(pg
        .query(&q.key_hashes_sql(&q.pg_exprs(), &q.pg_from, true, ranges), &[])
        .await
        .map_err(|e| from_postgres(e, format!("fetching the keys of mismatching ranges of {}", q.pg_from)))?
        .into_iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, String>(1)))
        .collect())
}

/// Every column's canonical text of the PostgreSQL rows in `ranges` whose
/// key's MD5 is one of `key_hashes`.
async fn pg_rows_of(pg: &Client, q: &TableQueries, ranges: &[KeyRange], key_hashes: &[String]) -> Result<Vec<Row>> {
    let n = q.columns.len();
    Ok(pg
        .query(&q.rows_sql(&q.pg_exprs(), &q.pg_from, true, ranges, key_hashes), &[])
        .await
        .map_err(|e| from_postgres(e, format!("fetching mismatching rows of {}", q.pg_from)))?
        .into_iter()
        .map(|r| (r.get::<_, String>(0), (1..=n).map(|i| r.get::<_, Option<String>>(i)).collect()))
        .collect())
}

/// The test that `t1.thaw_kx` lies in one of `ranges`, PostgreSQL's form
/// ([`TableQueries::in_ranges`]): an OR of range tests on the hash that
/// `UNNEST` computed once per row, compared `COLLATE "C"`.
fn postgres_ranges(ranges: &[KeyRange]) -> String {
    let within: Vec<String> = ranges
        .iter()
        .map(|r| {
            let mut bounds = Vec::new();
            if r.lo > 0 {
                bounds.push(format!("thaw_kx COLLATE \"C\" >= '{:0w$x}'", r.lo, w = HASH_DIGITS));
            }
            if r.hi < HASH_SPACE {
                bounds.push(format!("thaw_kx COLLATE \"C\" < '{:0w$x}'", r.hi, w = HASH_DIGITS));
            }
            if bounds.is_empty() {
                "1 = 1".to_string()
            } else {
                format!("({})", bounds.join(" AND "))
            }
        })
        .collect();
    if within.is_empty() {
        "1 = 0".to_string()
    } else {
        within.join(" OR ")
    }
}

/// The same test in Snowflake's form: the ranges as a VALUES list that each
/// row's hash is tested against once (a semi-join never repeats a row). An
/// OR of range tests on the computed `thaw_kx` let the emulator's engine put
/// the key's canonical text and MD5 into every test: 63 ranges took 19.24 s
/// against 0.92 s this way, the same rows (docs/reconcile.md §5.3). The ends
/// of the hash space are '' and 'g': every hex digit sorts between them.
fn snowflake_ranges(ranges: &[KeyRange]) -> String {
    if ranges.is_empty() {
        return "1 = 0".to_string();
    }
    if ranges.iter().any(|r| r.lo == 0 && r.hi >= HASH_SPACE) {
        return "1 = 1".to_string();
    }
    let bound = |v: u64, end: &str| if v == 0 || v >= HASH_SPACE { format!("'{end}'") } else { format!("'{:0w$x}'", v, w = HASH_DIGITS) };
    let values: Vec<String> = ranges.iter().map(|r| format!("({}, {})", bound(r.lo, ""), bound(r.hi, "g"))).collect();
    format!("EXISTS (SELECT 1 FROM (VALUES {}) AS thaw_r(lo, hi) WHERE t1.thaw_kx >= thaw_r.lo AND t1.thaw_kx < thaw_r.hi)", values.join(", "))
}

fn mismatching(src: &BTreeMap<KeyRange, SegmentSum>, dst: &BTreeMap<KeyRange, SegmentSum>) -> Vec<(KeyRange, u64)> {
    let mut segs: Vec<KeyRange> = src.keys().chain(dst.keys()).filter(|k| src.get(*k) != dst.get(*k)).copied().collect();
    segs.sort();
    segs.dedup();
    segs.into_iter().map(|r| (r, src.get(&r).map_or(0, |s| s.rows).max(dst.get(&r).map_or(0, |s| s.rows)))).collect()
}

/// Bisect the mismatching ranges of the first split until each holds at
/// most `leaf_rows` rows on both sides (or cannot be split): returns those
/// leaf ranges and the number of levels used. Each level costs one query
/// per side for all the ranges it splits; splitting stops once `max_leaves`
/// leaves are found.
async fn bisect(
    source: &mut SourceSide<'_>,
    pg: &Client,
    q: &TableQueries,
    src: &BTreeMap<KeyRange, SegmentSum>,
    dst: &BTreeMap<KeyRange, SegmentSum>,
    options: ReconcileOptions,
    found: &mut Found,
) -> Result<(Vec<KeyRange>, u32)> {
    let mut leaves = Vec::new();
    let mut levels = 1;
    let mut level = mismatching(src, dst);
    while !level.is_empty() {
        let mut split = Vec::new();
        for (range, rows) in level {
            if rows <= options.leaf_rows || range.hi - range.lo <= 1 || leaves.len() + split.len() >= options.max_leaves {
                leaves.push(range);
            } else {
                split.push(range);
            }
        }
        if split.is_empty() {
            break;
        }
        let s = source.segments(&split, options.factor).await?;
        let started = std::time::Instant::now();
        let d = pg_segments(pg, q, &split, options.factor).await;
        found.target_seconds += started.elapsed().as_secs_f64();
        let d = d?;
        found.segments_checked += s.keys().chain(d.keys()).collect::<BTreeSet<_>>().len() as u64;
        level = mismatching(&s, &d);
        if !level.is_empty() {
            levels += 1;
        }
    }
    leaves.sort();
    Ok((leaves, levels))
}

fn group<T>(rows: Vec<(String, T)>) -> BTreeMap<String, Vec<T>> {
    let mut out: BTreeMap<String, Vec<T>> = BTreeMap::new();
    for (k, v) in rows {
        out.entry(k).or_default().push(v);
    }
    out
}

fn listed(list: &mut Vec<String>, count: &mut u64, key: &str) {
    *count += 1;
    if list.len() < MAX_LISTED_KEYS {
        list.push(key.to_string());
    }
}

/// Diff the rows of both sides: keys missing, extra, changed (with the
/// differing columns) and duplicated on either side.
fn diff_rows(columns: &[String], src: Vec<Row>, dst: Vec<Row>) -> RowDiff {
    let (s, d) = (group(src), group(dst));
    let mut diff = RowDiff::default();
    for (k, rows) in &s {
        if rows.len() > 1 {
            listed(&mut diff.duplicate_source, &mut diff.duplicate_source_count, k);
        }
        match d.get(k) {
            None => listed(&mut diff.missing, &mut diff.missing_count, k),
            Some(targets) => {
                if targets.len() > 1 {
                    listed(&mut diff.duplicate_target, &mut diff.duplicate_target_count, k);
                }
                let (a, b) = (&rows[0], &targets[0]);
                if a != b {
                    listed(&mut diff.changed, &mut diff.changed_count, k);
                    if diff.changed_rows.len() < MAX_LISTED_KEYS {
                        let cols = columns
                            .iter()
                            .enumerate()
                            .filter(|(i, _)| a.get(*i) != b.get(*i))
                            .map(|(i, c)| ColumnDiff { column: c.clone(), source: a.get(i).cloned().flatten(), target: b.get(i).cloned().flatten() })
                            .collect();
                        diff.changed_rows.push(ChangedRow { key: k.clone(), columns: cols });
                    }
                }
            }
        }
    }
    for (k, rows) in &d {
        if !s.contains_key(k) {
            listed(&mut diff.extra, &mut diff.extra_count, k);
            if rows.len() > 1 {
                listed(&mut diff.duplicate_target, &mut diff.duplicate_target_count, k);
            }
        }
    }
    diff
}

/// Ranges per row-level query (each is one `OR` term of the query).
const RANGES_PER_QUERY: usize = 64;

/// Row diff of the leaf ranges (at most `max_leaves`), in two steps: both
/// sides return the key text and row hash of each row in the ranges, which
/// gives missing, extra, duplicate and changed keys; then only the first 20
/// changed rows are fetched with every column's canonical text, for the
/// differing columns and both values.
async fn drill(source: &mut SourceSide<'_>, pg: &Client, q: &TableQueries, leaves: &[KeyRange], options: ReconcileOptions, found: &mut Found) -> Result<()> {
    let diffed = &leaves[..leaves.len().min(options.max_leaves)];
    found.segments_mismatching += leaves.len() as u64;
    found.segments_diffed += diffed.len() as u64;
    for ranges in diffed.chunks(RANGES_PER_QUERY) {
        let s = group(source.key_hashes(ranges).await?);
        let started = std::time::Instant::now();
        let d = pg_key_hashes(pg, q, ranges).await;
        found.target_seconds += started.elapsed().as_secs_f64();
        let d = d?;
        found.rows_transferred += d.len() as u64;
        let d = group(d);
        let mut changed = Vec::new();
        for (k, hashes) in &s {
            if hashes.len() > 1 {
                found.duplicate_source.insert(k.clone());
            }
            match d.get(k) {
                None => {
                    found.missing.insert(k.clone());
                }
                Some(targets) => {
                    if targets.len() > 1 {
                        found.duplicate_target.insert(k.clone());
                    }
                    if hashes[0] != targets[0] {
                        found.changed.insert(k.clone());
                        if found.changed_rows.len() + changed.len() < MAX_LISTED_KEYS && !found.changed_rows.iter().any(|c| &c.key == k) {
                            changed.push(k.clone());
                        }
                    }
                }
            }
        }
        for (k, hashes) in &d {
            if !s.contains_key(k) {
                found.extra.insert(k.clone());
                if hashes.len() > 1 {
                    found.duplicate_target.insert(k.clone());
                }
            }
        }
        if changed.is_empty() {
            continue;
        }
        let key_hashes: Vec<String> = changed.iter().map(|k| md5_hex(k)).collect();
        let sr = source.rows_of(ranges, &key_hashes).await?;
        let started = std::time::Instant::now();
        let dr = pg_rows_of(pg, q, ranges, &key_hashes).await;
        found.target_seconds += started.elapsed().as_secs_f64();
        let dr = dr?;
        found.rows_transferred += dr.len() as u64;
        let names: Vec<String> = q.columns.iter().map(|c| c.name.clone()).collect();
        found.changed_rows.extend(diff_rows(&names, sr, dr).changed_rows);
    }
    Ok(())
}

/// Keys per lookup of [`settle_one_sided`].
const KEYS_PER_LOOKUP: usize = 1000;

/// Classify again `keys`, which the touched rows of a nightly reconcile
/// (docs/reconcile.md §5.1) held on one side only, by looking each up in the
/// whole table on both sides: a key both sides hold is a changed row (its
/// watermark is at or above the run's bound on one side only: a back-dated
/// correction in Snowflake, a source update after the run), never `missing`
/// or `extra` — which `propagate_deletes` would delete although Snowflake
/// holds it. A key one side holds stays missing or extra. Rows of at most
/// [`KEYS_PER_LOOKUP`] keys per query, by their key's MD5 (like the listed
/// changed rows of [`drill`]).
async fn settle_one_sided(sf: &SnowflakeSource, pg: &Client, q: &TableQueries, keys: Vec<String>, found: &mut Found) -> Result<()> {
    let names: Vec<String> = q.columns.iter().map(|c| c.name.clone()).collect();
    for chunk in keys.chunks(KEYS_PER_LOOKUP) {
        let key_hashes: Vec<String> = chunk.iter().map(|k| md5_hex(k)).collect();
        let mut source = SourceSide::new(sf, q);
        let sr = source.rows_of(&[KeyRange::ALL], &key_hashes).await;
        found.source_seconds += source.seconds;
        found.rows_transferred += source.transferred;
        let sr = sr?;
        let started = std::time::Instant::now();
        let dr = pg_rows_of(pg, q, &[KeyRange::ALL], &key_hashes).await;
        found.target_seconds += started.elapsed().as_secs_f64();
        let dr = dr?;
        found.rows_transferred += dr.len() as u64;
        let diff = diff_rows(&names, sr.clone(), dr.clone());
        let (s, d) = (group(sr), group(dr));
        for k in chunk {
            found.missing.remove(k);
            found.extra.remove(k);
            match (s.get(k), d.get(k)) {
                (Some(_), None) => {
                    found.missing.insert(k.clone());
                }
                (None, Some(_)) => {
                    found.extra.insert(k.clone());
                }
                (Some(a), Some(b)) => {
                    if a.len() > 1 {
                        found.duplicate_source.insert(k.clone());
                    }
                    if b.len() > 1 {
                        found.duplicate_target.insert(k.clone());
                    }
                    if a[0] != b[0] && found.changed.insert(k.clone()) && found.changed_rows.len() < MAX_LISTED_KEYS {
                        found.changed_rows.extend(diff.changed_rows.iter().filter(|r| &r.key == k).cloned());
                    }
                }
                // Gone from both sides since the touched rows were read.
                (None, None) => {}
            }
        }
    }
    Ok(())
}

/// Delete the target rows holding the given keys (canonical key texts of
/// extra keys, `propagate_deletes`); returns the rows deleted.
async fn delete_keys(pg: &Client, q: &TableQueries, pg_table: &str, side: Option<&str>, keys: &BTreeSet<String>) -> Result<u64> {
    let hashes: Vec<String> = keys.iter().map(|k| md5_hex(k)).collect();
    let delete = format!("DELETE FROM {pg_table} WHERE MD5({}) = ANY($1::text[])", q.key_of(&q.pg_exprs()));
    // The rows' hashes go in the same statement (docs/reconcile.md §4.2).
    let sql = match side {
        Some(side) => format!(
            "WITH d AS ({delete} RETURNING 1), h AS (DELETE FROM {side} WHERE key_md5 IN (SELECT decode(x, 'hex') FROM unnest($1::text[]) x)) SELECT count(*) FROM d"
        ),
        None => format!("WITH d AS ({delete} RETURNING 1) SELECT count(*) FROM d"),
    };
    let deleted = pg.query_one(&sql, &[&hashes]).await.map_err(|e| from_postgres(e, format!("deleting rows no longer in Snowflake from {pg_table}")))?.get::<_, i64>(0) as u64;
    tracing::info!(table = %pg_table, deleted, "propagated deletes");
    Ok(deleted)
}

/// Refill the side table `side` of `pg_table` from its rows, hashed in SQL
/// by the same canonical forms (docs/reconcile.md §4.2), in one transaction,
/// and mark it complete. Returns the rows written.
///
/// Errors: a key held twice by the target (the side table keeps one hash per
/// key) fails the refill, which leaves the side table as it was; other
/// failures by SQLSTATE.
async fn refill_side_table(pg: &Client, q: &TableQueries, pg_table: &str, side: &str) -> Result<u64> {
    let exprs = q.pg_exprs();
    let sql = format!(
        "INSERT INTO {side} (key_place, key_md5, row_hash) SELECT {place}, decode(kx, 'hex'), {hash} FROM \
         (SELECT UNNEST(ARRAY[MD5({key})]) AS kx, UNNEST(ARRAY[MD5({row})]) AS rh FROM {pg_table}) t",
        place = canonical::postgres_hex_to_int("kx", HASH_DIGITS),
        hash = canonical::postgres_hex_to_int("rh", 12),
        key = q.key_of(&exprs),
        row = canonical::row_text(&exprs),
    );
    pg.batch_execute(&format!("BEGIN; TRUNCATE {side}")).await.map_err(|e| from_postgres(e, format!("emptying {side}")))?;
    let result = async {
        let rows = pg.execute(&sql, &[]).await.map_err(|e| from_postgres(e, format!("refilling the row hashes of {pg_table}")))?;
        side_table::mark_complete(pg, pg_table, "refilled from the rows by a full reconcile").await?;
        pg.batch_execute("COMMIT").await.map_err(|e| from_postgres(e, "committing the refilled row hashes"))?;
        Ok::<_, Error>(rows)
    }
    .await;
    if result.is_err() {
        let _ = pg.batch_execute("ROLLBACK").await;
    }
    pg.batch_execute(&format!("ANALYZE {side}")).await.map_err(|e| from_postgres(e, format!("ANALYZE {side}")))?;
    result
}

/// Turn a reconcile response that is not clean into an error (what the
/// Lambda returns to the state machine and the CLI's exit code):
/// tables that could not be reconciled first — the first failed table's
/// kind (exit 2 for bad input such as a missing table, 1 otherwise) — then
/// differing tables as `ReconcileMismatch` (exit 3), naming the tables.
pub fn require_match(response: &ReconcileResponse) -> Result<()> {
    let failed: Vec<&TableReconcile> = response.tables.iter().filter(|t| t.status == TableStatus::Error.as_str()).collect();
    if let Some(first) = failed.first() {
        let kind = first.error_kind.as_deref().and_then(|k| ErrorKind::ALL.into_iter().find(|x| x.name() == k)).unwrap_or(ErrorKind::Internal);
        let kind = if kind == ErrorKind::ReconcileMismatch { ErrorKind::Internal } else { kind };
        let names: Vec<String> = failed.iter().map(|t| format!("{} ({})", t.target, t.error.as_deref().unwrap_or("no message"))).collect();
        return Err(Error::new(
            kind,
            format!(
                "{} table(s) could not be reconciled ({} other table(s) differ): {}",
                failed.len(),
                response.mismatches,
                names.join("; ")
            ),
        ));
    }
    if response.mismatches == 0 {
        return Ok(());
    }
    let names: Vec<String> = response
        .tables
        .iter()
        .filter(|t| !t.matched)
        .map(|t| format!("{} ({} vs {} rows)", t.target, t.source_rows, t.target_rows))
        .collect();
    Err(Error::new(
        ErrorKind::ReconcileMismatch,
        format!("{} table(s) differ between Snowflake and PostgreSQL: {}. See the reconcile report for missing, extra, changed and duplicate keys.", response.mismatches, names.join(", ")),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(k: &str, v: &[Option<&str>]) -> Row {
        (k.to_string(), v.iter().map(|x| x.map(str::to_string)).collect())
    }

    #[test]
    fn row_diff_reports_missing_extra_changed_columns_and_duplicates() {
        let cols = vec!["id".to_string(), "note".to_string(), "f".to_string()];
        let src = vec![
            row("1", &[Some("1"), Some("a"), Some("1e0")]),
            row("2", &[Some("2"), None, Some("NaN")]),
            row("3", &[Some("3"), Some("c"), None]),
            row("4", &[Some("4"), Some("d"), None]),
            row("4", &[Some("4"), Some("d"), None]),
        ];
        let dst = vec![
            row("1", &[Some("1"), Some("a"), Some("1e0")]),
            row("2", &[Some("2"), Some(""), None]),
            row("4", &[Some("4"), Some("d"), None]),
            row("5", &[Some("5"), Some("e"), None]),
            row("5", &[Some("5"), Some("e"), None]),
        ];
        let d = diff_rows(&cols, src, dst);
        assert_eq!(d.missing, ["3"]);
        assert_eq!(d.extra, ["5"]);
        assert_eq!(d.changed, ["2"]);
        assert_eq!(d.duplicate_source, ["4"]);
        assert_eq!(d.duplicate_target, ["5"]);
        assert_eq!(
            d.changed_rows[0].columns,
            vec![
                ColumnDiff { column: "note".into(), source: None, target: Some("".into()) },
                ColumnDiff { column: "f".into(), source: Some("NaN".into()), target: None },
            ]
        );
    }

    #[test]
    fn key_hash_ranges_filter_on_the_hex_prefix_which_orders_like_the_value() {
        let q = TableQueries::from_columns(&[], &[], SourceEngine::Emulator, "T".into(), "t".into());
        let r = KeyRange { lo: 0x0a1_b2c3, hi: 0x0a1_b2d0 };
        let sql = q.in_ranges(&[], "t", true, &[r, KeyRange { lo: 0xfff_0000, hi: HASH_SPACE }, KeyRange::ALL]);
        assert!(sql.contains("(thaw_kx COLLATE \"C\" >= '0a1b2c3' AND thaw_kx COLLATE \"C\" < '0a1b2d0')"), "{sql}");
        assert!(sql.contains("OR (thaw_kx COLLATE \"C\" >= 'fff0000') OR 1 = 1"), "{sql}");
        // The string order of a 32-digit hash against a 7-digit bound is the order of its first 7 digits.
        for (hash, inside) in [("0a1b2c3000", true), ("0a1b2c2fff", false), ("0a1b2cfff0", true), ("0a1b2d0000", false)] {
            assert_eq!(("0a1b2c3".."0a1b2d0").contains(&hash), inside, "{hash}");
            assert_eq!(r.contains(u64::from_str_radix(&hash[..7], 16).unwrap()), inside, "{hash}");
        }
    }

    #[test]
    fn postgres_hashes_once_per_row_in_a_parallel_safe_plan_and_the_source_sql_is_unchanged() {
        let pair = |name: &str, data_type: &str, pg_type: crate::sink::PgType| ColumnPair {
            source: crate::sync::table_plan::SourceColumn { name: name.into(), data_type: data_type.into(), scale: Some(0), char_length: None },
            target: crate::sink::TargetColumn {
                name: name.into(),
                pg_type,
                type_name: String::new(),
                char_max_length: None,
                numeric_precision: None,
                numeric_scale: None,
                nullable: true,
            },
        };
        let pairs = [pair("ID", "NUMBER", crate::sink::PgType::Int8), pair("F", "FLOAT", crate::sink::PgType::Float8)];
        let q = TableQueries::from_columns(&pairs, &["ID".into()], SourceEngine::Emulator, "T".into(), "t".into());
        let split = [KeyRange { lo: 0, hi: 1 << 23 }, KeyRange { lo: 1 << 24, hi: 3 << 23 }];
        let pg = q.segments_sql(&q.pg_exprs(), "t", true, &split, 32);
        assert!(!pg.contains("POSITION(") && !pg.contains("OFFSET 0") && !pg.contains("FLOOR("), "{pg}");
        assert!(pg.contains("UNNEST(ARRAY[MD5(COALESCE(CAST(\"ID\" AS TEXT), CHR(30)))]) AS thaw_kx"), "{pg}");
        assert!(pg.contains("UNNEST(ARRAY[CAST(CAST('x' || LEFT(MD5("), "{pg}");
        assert!(pg.contains("SUM(v >> 24), SUM(v & 16777215)"), "{pg}");
        let sf = q.segments_sql(&q.sf_exprs(), "T", false, &split, 32);
        assert!(sf.contains("(POSITION(SUBSTR(thaw_kx, 1, 1) IN '0123456789abcdef') - 1) * 16777216") && !sf.contains("UNNEST") && sf.contains("FLOOR("), "{sf}");
        // The emulator streams FLOAT columns: the range filter runs in the emulator
        // (the key is SQL there); the whole space and a key list are read as asked.
        assert_eq!(q.streamed_sql(&[KeyRange::ALL], None), format!("SELECT {}, CAST(\"F\" AS DOUBLE) FROM T", q.sf_exprs()[0]));
        let ranged = q.streamed_sql(&split, Some(&["0123abcd".to_string(), "x'; DROP".to_string()]));
        // Each row's hash is tested once against the ranges as a VALUES list
        // ('' and 'g' bound the hash space), never through an OR of range tests.
        assert!(ranged.contains("(VALUES ('', '0800000'), ('1000000', '1800000')) AS thaw_r(lo, hi)") && !ranged.contains(" OR "), "{ranged}");
        assert!(q.streamed_sql(&[KeyRange { lo: 1 << 27, hi: HASH_SPACE }], None).contains("(VALUES ('8000000', 'g'))"));
        assert!(ranged.ends_with(" WHERE thaw_kx IN ('0123abcd')"), "only hex key hashes are spliced: {ranged}");
    }

    #[test]
    fn a_failed_table_makes_the_outcome_an_error_of_its_kind_before_mismatches() {
        let ok = TableReconcile { target: "a".into(), matched: true, status: "ok".into(), ..Default::default() };
        let bad = TableReconcile { target: "b".into(), status: "mismatch".into(), ..Default::default() };
        let failed = TableReconcile { target: "c".into(), status: "error".into(), error: Some("boom".into()), error_kind: Some("Transient".into()), ..Default::default() };
        let r = |tables: Vec<TableReconcile>, mismatches, errors| ReconcileResponse { run_id: uuid::Uuid::nil(), tables, mismatches, errors, freshness_hours: None };
        assert!(require_match(&r(vec![ok.clone()], 0, 0)).is_ok());
        assert_eq!(require_match(&r(vec![ok.clone(), bad.clone()], 1, 0)).unwrap_err().kind, ErrorKind::ReconcileMismatch);
        let e = require_match(&r(vec![ok, bad, failed], 1, 1)).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Transient);
        assert!(e.message.contains("c (boom)"), "{e}");
    }
}
