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
//! streamed and finished in Rust ([`SourceEngine`]).
//!
//! Tables with `propagate_deletes` delete their extra target rows (keys that
//! no longer exist in Snowflake) and are checked again.

pub mod canonical;

use std::collections::BTreeMap;

use arrow_array::{Array, Float64Array, RecordBatch, StringArray};
use arrow_schema::DataType;
use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

use crate::config::Config;
use crate::contract::{ReconcileResponse, RunRequest, TableReconcile};
use crate::error::{from_postgres, Error, ErrorKind, Result};
use crate::sink;
use crate::source::{self, SnowflakeSource};
use crate::sync::plan::{ColumnPair, TablePlan};
use crate::sync::status;
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
}

impl Default for ReconcileOptions {
    fn default() -> Self {
        ReconcileOptions { factor: 32, leaf_rows: 16_384, max_leaves: 64 }
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
    Ok(Session { sf, engine, functions_error })
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
    let pg = sink::connect(&config.postgres, config.status_database()).await?;
    // Shortest round-trip float8 text (PostgreSQL's default; pinned here).
    // No JIT: the canonical-form expressions are large, so PostgreSQL's cost
    // estimate triggers a JIT compile that takes longer than the query itself
    // (about 1.2 s per bisection query on a 20 000-row table).
    pg.batch_execute("SET extra_float_digits = 1; SET jit = off").await.map_err(|e| from_postgres(e, "setting extra_float_digits and jit"))?;
    let mut reports = Vec::new();
    let mut sessions: BTreeMap<(String, String), std::result::Result<Session, Error>> = BTreeMap::new();
    for t in status::tables(&pg, request.run_id).await? {
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
            sessions.insert(key.clone(), open_session(config, &key.0, &key.1).await);
        }
        let table_config = config.source(&plan.source_name).ok().and_then(|s| s.tables.iter().find(|x| x.source == plan.source_table));
        let propagate = table_config.is_some_and(|x| x.propagate_deletes);
        let date_only: &[String] = table_config.map_or(&[], |x| &x.truncate_to_date[..]);
        let result = match &sessions[&key] {
            Ok(session) => reconcile_table_in(session, &pg, &plan, propagate, date_only, options).await,
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
    let response = ReconcileResponse {
        run_id: request.run_id,
        mismatches: reports.iter().filter(|r| r.summary.status == TableStatus::Mismatch.as_str()).count() as u32,
        errors: reports.iter().filter(|r| r.summary.status == TableStatus::Error.as_str()).count() as u32,
        tables: reports.iter().map(|r| r.summary.clone()).collect(),
    };
    let value = serde_json::to_value(&response).map_err(|e| Error::internal(format!("reconcile summary does not serialise: {e}")))?;
    status::set_run_metadata(&pg, request.run_id, "reconcile", value).await?;
    store_results(&pg, request.run_id, &reports).await?;
    Ok((response, reports))
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
    }
}

/// Reconcile one table on a session opened on its source schema.
///
/// Errors: whatever either database answers (the caller records it on the
/// table); on real Snowflake, a table with float or JSON columns fails when
/// the JavaScript functions could not be created.
pub async fn reconcile_table(sf: &SnowflakeSource, pg: &Client, plan: &TablePlan, propagate_deletes: bool) -> Result<TableReport> {
    let engine = SourceEngine::detect(sf).await;
    if engine == SourceEngine::Snowflake {
        for statement in canonical::snowflake_functions() {
            sf.execute(&statement).await?;
        }
    }
    reconcile_queries(sf, pg, &TableQueries::new(plan, engine, &[]), plan, propagate_deletes, ReconcileOptions::default()).await
}

async fn reconcile_table_in(
    session: &Session,
    pg: &Client,
    plan: &TablePlan,
    propagate_deletes: bool,
    date_only: &[String],
    options: ReconcileOptions,
) -> Result<TableReport> {
    let q = TableQueries::new(plan, session.engine, date_only);
    if let (true, Some(e)) = (q.needs_functions(), &session.functions_error) {
        return Err(e.clone());
    }
    reconcile_queries(&session.sf, pg, &q, plan, propagate_deletes, options).await
}

async fn reconcile_queries(sf: &SnowflakeSource, pg: &Client, q: &TableQueries, plan: &TablePlan, propagate_deletes: bool, options: ReconcileOptions) -> Result<TableReport> {
    let started = std::time::Instant::now();
    let mut source = SourceSide { sf, q, streamed: None };
    let mut src = source.segments(KeyRange::ALL, options.factor).await?;
    let source_seconds = started.elapsed().as_secs_f64();
    let mut dst = pg_segments(pg, q, KeyRange::ALL, options.factor).await?;
    tracing::info!(table = %plan.target_fqn(), source_seconds, target_seconds = started.elapsed().as_secs_f64() - source_seconds, "checksummed");
    let mut diff = None;
    if src != dst {
        let (leaves, levels) = bisect(&mut source, pg, q, &src, &dst, options).await?;
        let mut d = drill(&mut source, pg, q, &leaves, options).await?;
        d.levels = levels;
        if propagate_deletes && d.extra_count > 0 {
            d.deleted = delete_extra(&mut source, pg, q, &leaves, options).await?;
            source.streamed = None;
            dst = pg_segments(pg, q, KeyRange::ALL, options.factor).await?;
            src = source.segments(KeyRange::ALL, options.factor).await?;
        }
        diff = Some(d);
    }
    let total = |m: &BTreeMap<KeyRange, SegmentSum>| {
        m.values().fold(SegmentSum::default(), |a, s| SegmentSum { rows: a.rows + s.rows, high: a.high + s.high, low: a.low + s.low })
    };
    let (s, d) = (total(&src), total(&dst));
    let checksum = |x: SegmentSum| format!("{:012x}{:012x}", x.high, x.low);
    let matched = src == dst;
    Ok(TableReport {
        summary: TableReconcile {
            target: format!("{}.{}", plan.target_schema, plan.target_table),
            source_rows: s.rows,
            target_rows: d.rows,
            source_checksum: checksum(s),
            target_checksum: checksum(d),
            columns: plan.columns.len() as u32,
            matched,
            status: if matched { TableStatus::Ok } else { TableStatus::Mismatch }.as_str().into(),
            error: None,
            error_kind: None,
        },
        diff,
    })
}

/// One compared column: its canonical text in each engine.
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
        TableQueries { columns, keys, engine, sf_from, pg_from }
    }

    /// Whether the Snowflake SQL calls the JavaScript functions.
    fn needs_functions(&self) -> bool {
        self.engine == SourceEngine::Snowflake && self.columns.iter().any(|c| !matches!(c.emulator, EmulatorPart::Sql(_)))
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
    /// canonical texts are computed only for rows in range. `fence` adds
    /// `OFFSET 0`: PostgreSQL would otherwise inline the subquery and hash the
    /// key once per hex digit.
    fn in_ranges(&self, exprs: &[String], from: &str, fence: bool, ranges: &[KeyRange]) -> String {
        let within: Vec<String> = ranges.iter().map(|r| format!("(thaw_kh >= {} AND thaw_kh < {})", r.lo, r.hi)).collect();
        format!(
            "(SELECT * FROM (SELECT t1.*, {kh} AS thaw_kh FROM (SELECT *, MD5({key}) AS thaw_kx FROM {from}{fence}) t1) t2 WHERE {within}) t3",
            kh = canonical::hex_to_int("thaw_kx", 1, HASH_DIGITS),
            key = self.key_of(exprs),
            fence = if fence { " OFFSET 0" } else { "" },
            within = if within.is_empty() { "1 = 0".to_string() } else { within.join(" OR ") },
        )
    }

    /// Per sub-range of `range` split into `factor`: `(index, COUNT, SUM of
    /// hash bits 47..24, SUM of bits 23..0)`. With `fence` (PostgreSQL) the
    /// row hash is computed once per row, not once per hex digit.
    fn segments_sql(&self, exprs: &[String], from: &str, fence: bool, range: KeyRange, factor: u64) -> String {
        let (h1, h2) = (canonical::hex_to_int("rh", 1, 6), canonical::hex_to_int("rh", 7, 6));
        format!(
            "SELECT FLOOR((thaw_kh - {lo}) / {w}) AS seg, COUNT(*), SUM(h1), SUM(h2) FROM (SELECT thaw_kh, {h1} AS h1, {h2} AS h2 FROM \
             (SELECT thaw_kh, MD5({row}) AS rh FROM {rows}{fence}) x) y GROUP BY FLOOR((thaw_kh - {lo}) / {w})",
            row = canonical::row_text(exprs),
            rows = self.in_ranges(exprs, from, fence, &[range]),
            lo = range.lo,
            w = range.child_width(factor),
            fence = if fence { " OFFSET 0" } else { "" }
        )
    }

    /// Key text and every column's canonical text of the rows in `ranges`.
    fn rows_sql(&self, exprs: &[String], from: &str, fence: bool, ranges: &[KeyRange]) -> String {
        let cols: Vec<String> = exprs.iter().enumerate().map(|(i, e)| format!(", {e} AS c{i}")).collect();
        format!("SELECT {key} AS kt{} FROM {}", cols.join(""), self.in_ranges(exprs, from, fence, ranges), key = self.key_of(exprs))
    }
}

/// One row: canonical key text and every column's canonical text (None = NULL).
type Row = (String, Vec<Option<String>>);

fn md5_hex(text: &str) -> String {
    use md5::{Digest, Md5};
    hex::encode(Md5::digest(text.as_bytes()))
}

/// A key text's place in the key-hash space (what the SQL computes).
fn key_hash(key: &str) -> u64 {
    u64::from_str_radix(&md5_hex(key)[..HASH_DIGITS], 16).unwrap_or(0)
}

fn sums_from_rows(rows: Vec<Vec<Option<String>>>, range: KeyRange, factor: u64) -> BTreeMap<KeyRange, SegmentSum> {
    rows.into_iter()
        .filter_map(|r| {
            let seg = r.first().cloned().flatten()?.parse::<f64>().ok()? as u64;
            let sum = SegmentSum { rows: parse_sum(r.get(1).cloned().flatten()), high: parse_sum(r.get(2).cloned().flatten()), low: parse_sum(r.get(3).cloned().flatten()) };
            Some((range.child(seg, factor), sum))
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
struct SourceSide<'a> {
    sf: &'a SnowflakeSource,
    q: &'a TableQueries,
    /// Streamed rows, with each row's text hash (cached for the drill-down).
    streamed: Option<Vec<(Row, String)>>,
}

impl SourceSide<'_> {
    async fn segments(&mut self, range: KeyRange, factor: u64) -> Result<BTreeMap<KeyRange, SegmentSum>> {
        if !self.q.streamed() {
            let rows = self.sf.execute(&self.q.segments_sql(&self.q.sf_exprs(), &self.q.sf_from, false, range, factor)).await?;
            return Ok(sums_from_rows(rows, range, factor));
        }
        let w = range.child_width(factor);
        let mut out: BTreeMap<KeyRange, SegmentSum> = BTreeMap::new();
        for ((key, _), rh) in self.stream().await? {
            let h = key_hash(key);
            if !range.contains(h) {
                continue;
            }
            let s = out.entry(range.child((h - range.lo) / w, factor)).or_default();
            s.rows += 1;
            s.high += u64::from_str_radix(&rh[0..6], 16).unwrap_or(0);
            s.low += u64::from_str_radix(&rh[6..12], 16).unwrap_or(0);
        }
        Ok(out)
    }

    async fn rows(&mut self, ranges: &[KeyRange]) -> Result<Vec<Row>> {
        if !self.q.streamed() {
            let n = self.q.columns.len();
            return Ok(self
                .sf
                .execute(&self.q.rows_sql(&self.q.sf_exprs(), &self.q.sf_from, false, ranges))
                .await?
                .into_iter()
                .filter_map(|mut r| {
                    r.resize(n + 1, None);
                    let key = r.remove(0)?;
                    Some((key, r))
                })
                .collect());
        }
        Ok(self.stream().await?.iter().filter(|((k, _), _)| ranges.iter().any(|r| r.contains(key_hash(k)))).map(|(r, _)| r.clone()).collect())
    }

    /// Every row of the table with its canonical texts, computed once.
    async fn stream(&mut self) -> Result<&Vec<(Row, String)>> {
        if self.streamed.is_none() {
            let parts: Vec<String> = self
                .q
                .columns
                .iter()
                .map(|c| match &c.emulator {
                    EmulatorPart::Sql(s) => s.clone(),
                    EmulatorPart::Float(e) => format!("CAST({e} AS DOUBLE)"),
                    EmulatorPart::Json(e) => format!("CAST({e} AS VARCHAR)"),
                })
                .collect();
            let select = if parts.is_empty() { "1".to_string() } else { parts.join(", ") };
            let batches = self.sf.query_arrow(&format!("SELECT {select} FROM {}", self.q.sf_from)).await?;
            let mut rows = Vec::new();
            for batch in &batches {
                let columns = self.decode(batch)?;
                for i in 0..batch.num_rows() {
                    let values: Vec<Option<String>> = columns.iter().map(|c| c[i].clone()).collect();
                    let key = join_texts(self.q.keys.iter().map(|k| &values[*k]));
                    let rh = md5_hex(&join_texts(values.iter()));
                    rows.push(((key, values), rh));
                }
            }
            self.streamed = Some(rows);
        }
        Ok(self.streamed.as_ref().expect("filled above"))
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
        let mut side = SourceSide { sf, q: &q, streamed: None };
        return Ok(side.stream().await?.iter().map(|((_, v), _)| v.clone()).collect());
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

async fn pg_segments(pg: &Client, q: &TableQueries, range: KeyRange, factor: u64) -> Result<BTreeMap<KeyRange, SegmentSum>> {
    let sql = format!("SELECT seg::text, c::text, h::text, l::text FROM ({}) s(seg, c, h, l)", q.segments_sql(&q.pg_exprs(), &q.pg_from, true, range, factor));
    let rows = pg.query(&sql, &[]).await.map_err(|e| from_postgres(e, format!("checksumming {}", q.pg_from)))?;
    Ok(sums_from_rows(rows.iter().map(|r| (0..4).map(|i| r.get::<_, Option<String>>(i)).collect()).collect(), range, factor))
}

async fn pg_rows(pg: &Client, q: &TableQueries, ranges: &[KeyRange]) -> Result<Vec<Row>> {
    let n = q.columns.len();
    Ok(pg
        .query(&q.rows_sql(&q.pg_exprs(), &q.pg_from, true, ranges), &[])
        .await
        .map_err(|e| from_postgres(e, format!("fetching mismatching rows of {}", q.pg_from)))?
        .into_iter()
        .map(|r| (r.get::<_, String>(0), (1..=n).map(|i| r.get::<_, Option<String>>(i)).collect()))
        .collect())
}

fn mismatching(src: &BTreeMap<KeyRange, SegmentSum>, dst: &BTreeMap<KeyRange, SegmentSum>) -> Vec<KeyRange> {
    let mut segs: Vec<KeyRange> = src.keys().chain(dst.keys()).filter(|k| src.get(*k) != dst.get(*k)).copied().collect();
    segs.sort();
    segs.dedup();
    segs
}

/// Bisect the mismatching ranges of the first split until each holds at
/// most `leaf_rows` rows on both sides (or cannot be split): returns those
/// leaf ranges and the number of levels used. Each level costs one query per
/// side per range split; splitting stops once `max_leaves` leaves are found.
async fn bisect(
    source: &mut SourceSide<'_>,
    pg: &Client,
    q: &TableQueries,
    src: &BTreeMap<KeyRange, SegmentSum>,
    dst: &BTreeMap<KeyRange, SegmentSum>,
    options: ReconcileOptions,
) -> Result<(Vec<KeyRange>, u32)> {
    let mut leaves = Vec::new();
    let mut levels = 1;
    let mut level: Vec<(KeyRange, u64)> =
        mismatching(src, dst).into_iter().map(|r| (r, src.get(&r).map_or(0, |s| s.rows).max(dst.get(&r).map_or(0, |s| s.rows)))).collect();
    while !level.is_empty() {
        let mut next = Vec::new();
        for (range, rows) in level {
            if rows <= options.leaf_rows || range.hi - range.lo <= 1 || leaves.len() >= options.max_leaves {
                leaves.push(range);
                continue;
            }
            let s = source.segments(range, options.factor).await?;
            let d = pg_segments(pg, q, range, options.factor).await?;
            next.extend(mismatching(&s, &d).into_iter().map(|r| (r, s.get(&r).map_or(0, |x| x.rows).max(d.get(&r).map_or(0, |x| x.rows)))));
        }
        if !next.is_empty() {
            levels += 1;
        }
        level = next;
    }
    leaves.sort();
    Ok((leaves, levels))
}

fn group(rows: Vec<Row>) -> BTreeMap<String, Vec<Vec<Option<String>>>> {
    let mut out: BTreeMap<String, Vec<Vec<Option<String>>>> = BTreeMap::new();
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

async fn drill(source: &mut SourceSide<'_>, pg: &Client, q: &TableQueries, leaves: &[KeyRange], options: ReconcileOptions) -> Result<RowDiff> {
    let ranges = &leaves[..leaves.len().min(options.max_leaves)];
    let s = source.rows(ranges).await?;
    let d = pg_rows(pg, q, ranges).await?;
    let names: Vec<String> = q.columns.iter().map(|c| c.name.clone()).collect();
    let mut diff = diff_rows(&names, s, d);
    diff.segments_mismatching = leaves.len() as u64;
    diff.segments_diffed = ranges.len() as u64;
    Ok(diff)
}

async fn delete_extra(source: &mut SourceSide<'_>, pg: &Client, q: &TableQueries, leaves: &[KeyRange], options: ReconcileOptions) -> Result<u64> {
    let mut deleted = 0;
    for ranges in leaves.chunks(options.max_leaves.max(1)) {
        let s = group(source.rows(ranges).await?);
        let extra: Vec<String> = group(pg_rows(pg, q, ranges).await?).keys().filter(|k| !s.contains_key(*k)).map(|k| md5_hex(k)).collect();
        if extra.is_empty() {
            continue;
        }
        let sql = format!("DELETE FROM {} WHERE MD5({}) = ANY($1::text[])", q.pg_from, q.key_of(&q.pg_exprs()));
        deleted += pg.execute(&sql, &[&extra]).await.map_err(|e| from_postgres(e, format!("deleting rows no longer in Snowflake from {}", q.pg_from)))?;
    }
    tracing::info!(table = %q.pg_from, deleted, "propagated deletes");
    Ok(deleted)
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
    fn a_failed_table_makes_the_outcome_an_error_of_its_kind_before_mismatches() {
        let ok = TableReconcile { target: "a".into(), matched: true, status: "ok".into(), ..Default::default() };
        let bad = TableReconcile { target: "b".into(), status: "mismatch".into(), ..Default::default() };
        let failed = TableReconcile { target: "c".into(), status: "error".into(), error: Some("boom".into()), error_kind: Some("Transient".into()), ..Default::default() };
        let r = |tables: Vec<TableReconcile>, mismatches, errors| ReconcileResponse { run_id: uuid::Uuid::nil(), tables, mismatches, errors };
        assert!(require_match(&r(vec![ok.clone()], 0, 0)).is_ok());
        assert_eq!(require_match(&r(vec![ok.clone(), bad.clone()], 1, 0)).unwrap_err().kind, ErrorKind::ReconcileMismatch);
        let e = require_match(&r(vec![ok, bad, failed], 1, 1)).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Transient);
        assert!(e.message.contains("c (boom)"), "{e}");
    }
}
