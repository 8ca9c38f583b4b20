//! The dual-read validation job (docs/reconcile.md §10): during the
//! validation window both systems compute conflicts, the legacy Snowflake
//! procedures into `CONFLICTREPORT.PUBLIC` and thaw into PostgreSQL's
//! `conflict` schema; this job proves they agree.
//!
//! What is compared: the conflict pairs (`CONFLICTVISITMAPS` /
//! `conflict.conflictvisitmaps`) keyed by their ordered visit pair
//! (`VisitID`, `ConVisitID`) — the identifiers `CONFLICTID` and `ID` are
//! generated independently on each side and are not compared — over the
//! columns both sides maintain ([`COMPARED_COLUMNS`], those present in both
//! tables) plus the status of the pair's conflict (`CONFLICTS.StatusFlag`,
//! joined as `ConflictStatusFlag`); and the number of conflicts. The pair
//! comparison is reconcile's: canonical forms, segment sums, bisection and
//! row diff (§2–§4), so a difference is named by its pair and column.
//!
//! Every run is recorded in `migration_status.dual_read_results`
//! (migration V14), which the cutover gate's `dual-read` check reads.

use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

use super::{Found, KeyRange, ReconcileOptions, RowDiff, SourceEngine, TableQueries};
use crate::config::Config;
use crate::conflicts::RuleFlags;
use crate::error::{from_postgres, Error, Result};
use crate::sink;
use crate::source::{self, sql};
use crate::sync::table_plan::{ColumnPair, SourceColumn};

/// Key of a conflict pair: the primary and the conflicting visit.
pub const PAIR_KEY: [&str; 2] = ["VisitID", "ConVisitID"];

/// Who and when of a conflict pair: SSN, date, providers, caregivers.
pub const PAIR_IDENTITY_COLUMNS: [&str; 6] = ["SSN", "VisitDate", "ProviderID", "ConProviderID", "CaregiverID", "ConCaregiverID"];

/// Columns of a conflict pair compared when both sides have them: who and
/// when ([`PAIR_IDENTITY_COLUMNS`]) and the nine flags, the seven rule flags
/// and the two event flags as the conflicts module names them
/// ([`RuleFlags::COLUMNS`], [`RuleFlags::EVENT_COLUMNS`]: one list).
pub const COMPARED_COLUMNS: [&str; 15] = {
    let mut columns = [""; 15];
    let mut i = 0;
    while i < PAIR_IDENTITY_COLUMNS.len() {
        columns[i] = PAIR_IDENTITY_COLUMNS[i];
        i += 1;
    }
    let mut j = 0;
    while j < RuleFlags::COLUMNS.len() {
        columns[i + j] = RuleFlags::COLUMNS[j];
        j += 1;
    }
    let mut k = 0;
    while k < RuleFlags::EVENT_COLUMNS.len() {
        columns[i + j + k] = RuleFlags::EVENT_COLUMNS[k];
        k += 1;
    }
    columns
};

/// The conflict's status as each pair sees it (joined from the conflicts table).
const STATUS_COLUMN: &str = "ConflictStatusFlag";

/// Where the legacy conflict tables are in Snowflake (default
/// `CONFLICTREPORT.PUBLIC`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DualReadOptions {
    /// Snowflake database of `CONFLICTS` and `CONFLICTVISITMAPS`.
    pub sf_database: String,
    /// Their Snowflake schema.
    pub sf_schema: String,
}

impl Default for DualReadOptions {
    fn default() -> Self {
        DualReadOptions { sf_database: "CONFLICTREPORT".into(), sf_schema: "PUBLIC".into() }
    }
}

/// The outcome of one dual-read comparison.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct DualReadReport {
    /// `ok`, `mismatch` or `error`.
    pub status: String,
    /// Conflicts in Snowflake (`CONFLICTS`).
    pub source_conflicts: u64,
    /// Conflicts in PostgreSQL (`conflict.conflicts`).
    pub target_conflicts: u64,
    /// Conflict pairs in Snowflake (`CONFLICTVISITMAPS`).
    pub source_pairs: u64,
    /// Conflict pairs in PostgreSQL.
    pub target_pairs: u64,
    /// Checksums of the pairs (24+24 bits as 12 + 12 hex digits, §2.2).
    pub source_checksum: String,
    /// Same, PostgreSQL.
    pub target_checksum: String,
    /// The compared pair columns (key first).
    pub columns: Vec<String>,
    /// The differing pairs (keys are `VisitID | ConVisitID`).
    pub diff: Option<RowDiff>,
    /// Why the comparison could not be made (status `error`).
    pub error: Option<String>,
    /// The kind of that error (bad input such as a missing table is
    /// [`crate::ErrorKind::SchemaMismatch`]; `thaw dual-read` exits with its code).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_kind: Option<crate::ErrorKind>,
    /// Wall-clock seconds.
    pub seconds: f64,
}

impl DualReadReport {
    /// An `ok` comparison of empty sides: no pair and no conflict in either
    /// database. The cutover gate does not count its day (docs/reconcile.md §9).
    pub fn compared_nothing(&self) -> bool {
        self.status == "ok" && self.source_pairs + self.target_pairs + self.source_conflicts + self.target_conflicts == 0
    }

    /// One line per finding, for the terminal.
    pub fn render(&self) -> String {
        let mut out = format!(
            "dual-read: {} — conflicts {} in Snowflake, {} in PostgreSQL; pairs {} vs {}; {:.2} s\n",
            self.status.to_uppercase(),
            self.source_conflicts,
            self.target_conflicts,
            self.source_pairs,
            self.target_pairs,
            self.seconds
        );
        if let Some(e) = &self.error {
            out.push_str(&format!("  error: {e}\n"));
        }
        if self.compared_nothing() {
            out.push_str(
                "  warning: both sides are empty (no pair, no conflict): identical, but this proves nothing and the cutover gate does not count it; \
                 check --sf-database/--sf-schema and that `thaw conflicts` ran on conflicts.database\n",
            );
        }
        if let Some(d) = &self.diff {
            let key = |k: &str| k.replace('\u{1f}', " | ").replace('\u{1e}', "NULL");
            for k in &d.missing {
                out.push_str(&format!("  pair only in Snowflake: {}\n", key(k)));
            }
            for k in &d.extra {
                out.push_str(&format!("  pair only in PostgreSQL: {}\n", key(k)));
            }
            for c in &d.changed_rows {
                let cols: Vec<String> = c.columns.iter().map(|x| format!("{}: {:?} → {:?}", x.column, x.source, x.target)).collect();
                out.push_str(&format!("  pair differs: {} — {}\n", key(&c.key), cols.join(", ")));
            }
        }
        out
    }
}

impl From<&DualReadReport> for crate::contract::DualReadResponse {
    /// The counts of the report (the `dual-read` step's response): the
    /// differing pairs themselves stay in the recorded report.
    fn from(report: &DualReadReport) -> Self {
        let diff = report.diff.clone().unwrap_or_default();
        crate::contract::DualReadResponse {
            status: report.status.clone(),
            source_conflicts: report.source_conflicts,
            target_conflicts: report.target_conflicts,
            source_pairs: report.source_pairs,
            target_pairs: report.target_pairs,
            missing_pairs: diff.missing_count,
            extra_pairs: diff.extra_count,
            changed_pairs: diff.changed_count,
            error: report.error.as_ref().map(|e| e.chars().take(2000).collect()),
            seconds: report.seconds,
        }
    }
}

async fn snowflake_columns(sf: &source::SnowflakeSource, options: &DualReadOptions, table: &str) -> Result<Vec<SourceColumn>> {
    let rows = sf
        .execute(&format!(
            "SELECT COLUMN_NAME, DATA_TYPE, NUMERIC_SCALE, CHARACTER_MAXIMUM_LENGTH FROM {}.INFORMATION_SCHEMA.COLUMNS \
             WHERE TABLE_SCHEMA = {} AND TABLE_NAME = {} ORDER BY ORDINAL_POSITION",
            sql::ident(&options.sf_database),
            sql::literal(&options.sf_schema),
            sql::literal(table)
        ))
        .await?;
    let number = |v: Option<String>| v.and_then(|s| s.parse::<f64>().ok()).map(|f| f as i64);
    Ok(rows
        .into_iter()
        .filter_map(|mut r| {
            r.resize(4, None);
            Some(SourceColumn { name: r[0].take()?, data_type: r[1].take()?.to_ascii_uppercase(), scale: number(r[2].take()), char_length: number(r[3].take()) })
        })
        .collect())
}

/// Compare Snowflake's legacy conflict tables with PostgreSQL's `conflict`
/// schema and record the outcome in `migration_status.dual_read_results`
/// (written whatever the outcome; a comparison that fails is recorded
/// `error`).
///
/// Errors: [`crate::ErrorKind::ConfigInvalid`] without a `conflicts`
/// section; the status database unreachable or the result not stored. A
/// failing comparison (a missing table, a query error) is the report's
/// `error`, not this function's.
pub async fn run(config: &Config, options: &DualReadOptions) -> Result<DualReadReport> {
    let Some(settings) = &config.conflicts else {
        return Err(Error::config("the dual-read job needs a 'conflicts' section in the config (database of the conflict schema)"));
    };
    let started = std::time::Instant::now();
    let schema = settings.conflict_schema.as_deref().unwrap_or("conflict");
    let mut report = match compare(config, &settings.database, schema, options).await {
        Ok(r) => r,
        Err(e) => DualReadReport { status: "error".into(), error: Some(e.to_string()), error_kind: Some(e.kind), ..Default::default() },
    };
    report.seconds = started.elapsed().as_secs_f64();
    let status_db = sink::connect_status(config).await?;
    record(&status_db, &report).await?;
    Ok(report)
}

/// Compare in `database` (`conflicts.database`)'s conflict schema `schema` (`conflicts.conflict_schema`).
async fn compare(config: &Config, database: &str, schema: &str, options: &DualReadOptions) -> Result<DualReadReport> {
    let sf = source::connect(&config.snowflake, Some(&options.sf_database), Some(&options.sf_schema)).await?;
    let engine = SourceEngine::detect(&sf).await;
    let pg = sink::connect_configured(&config.postgres, database, "conflicts.database").await?;
    pg.batch_execute("SET extra_float_digits = 1; SET jit = off").await.map_err(|e| from_postgres(e, "setting extra_float_digits and jit"))?;

    let sf_pairs = snowflake_columns(&sf, options, "CONFLICTVISITMAPS").await?;
    let sf_status = snowflake_columns(&sf, options, "CONFLICTS").await?;
    if sf_pairs.is_empty() || sf_status.is_empty() {
        return Err(Error::new(
            crate::ErrorKind::SchemaMismatch,
            format!(
                "{db}.{schema}.CONFLICTVISITMAPS or {db}.{schema}.CONFLICTS does not exist in Snowflake; pass the database and schema of the legacy conflict tables",
                db = options.sf_database,
                schema = options.sf_schema
            ),
        ));
    }
    if !sink::table_exists(&pg, schema, "conflictvisitmaps").await? || !sink::table_exists(&pg, schema, "conflicts").await? {
        return Err(Error::new(
            crate::ErrorKind::SchemaMismatch,
            format!(
                "{schema}.conflictvisitmaps or {schema}.conflicts does not exist in PostgreSQL database '{database}': run the conflict job there first (`thaw conflicts`), or set conflicts.database / conflicts.conflict_schema to where it writes"
            ),
        ));
    }
    let pg_pairs = sink::table_columns(&pg, schema, "conflictvisitmaps").await?;
    let pg_status = sink::table_columns(&pg, schema, "conflicts").await?;
    let mut pairs = Vec::new();
    for name in PAIR_KEY.iter().chain(COMPARED_COLUMNS.iter()) {
        if let (Some(s), Some(t)) = (sf_pairs.iter().find(|c| c.name == *name), pg_pairs.iter().find(|c| c.name == *name)) {
            pairs.push(ColumnPair { source: s.clone(), target: t.clone() });
        } else if PAIR_KEY.contains(name) {
            return Err(Error::new(crate::ErrorKind::SchemaMismatch, format!("the pair key column \"{name}\" is missing in CONFLICTVISITMAPS on one side")));
        }
    }
    if let (Some(s), Some(t)) = (sf_status.iter().find(|c| c.name == "StatusFlag"), pg_status.iter().find(|c| c.name == "StatusFlag")) {
        let mut s = s.clone();
        let mut t = t.clone();
        s.name = STATUS_COLUMN.into();
        t.name = STATUS_COLUMN.into();
        pairs.push(ColumnPair { source: s, target: t });
    }
    let sf_table = |t: &str| sql::table(&options.sf_database, &options.sf_schema, t);
    let select = |cols: &[ColumnPair], ident: &dyn Fn(&str) -> String| {
        cols.iter().filter(|c| c.target.name != STATUS_COLUMN).map(|c| format!("m.{}", ident(&c.target.name))).collect::<Vec<_>>().join(", ")
    };
    let status = pairs.iter().any(|c| c.target.name == STATUS_COLUMN);
    let join = |pairs_table: String, conflicts: String, ident: &dyn Fn(&str) -> String| {
        if status {
            format!(
                "(SELECT {}, c.{sf} AS {st} FROM {pairs_table} m LEFT JOIN {conflicts} c ON c.{id} = m.{id}) thaw_pairs",
                select(&pairs, ident),
                sf = ident("StatusFlag"),
                st = ident(STATUS_COLUMN),
                id = ident("CONFLICTID")
            )
        } else {
            format!("(SELECT {} FROM {pairs_table} m) thaw_pairs", select(&pairs, ident))
        }
    };
    let sf_from = join(sf_table("CONFLICTVISITMAPS"), sf_table("CONFLICTS"), &sql::ident);
    let pg_from = join(sink::qualified(schema, "conflictvisitmaps"), sink::qualified(schema, "conflicts"), &sink::ident);
    let keys: Vec<String> = PAIR_KEY.iter().map(|k| k.to_string()).collect();
    let q = TableQueries::from_columns(&pairs, &keys, engine, sf_from, pg_from);

    let count_sf = |t: String| {
        let sf = &sf;
        async move { Ok::<u64, Error>(super::parse_sum(sf.execute(&format!("SELECT COUNT(*) FROM {t}")).await?.into_iter().next().and_then(|r| r.into_iter().next()).flatten())) }
    };
    let count_pg = |t: String| {
        let pg = &pg;
        async move {
            let n: i64 = pg.query_one(&format!("SELECT COUNT(*) FROM {t}"), &[]).await.map_err(|e| from_postgres(e, format!("counting {t}")))?.get(0);
            Ok::<u64, Error>(n.max(0) as u64)
        }
    };
    let source_conflicts = count_sf(sf_table("CONFLICTS")).await?;
    let target_conflicts = count_pg(sink::qualified(schema, "conflicts")).await?;
    let mut found = Found::default();
    let (matched, s, d) = super::verify_part(&sf, &pg, &q, KeyRange::ALL, ReconcileOptions::default(), &mut found).await?;
    let clean = matched && source_conflicts == target_conflicts;
    let checksum = |x: super::SegmentSum| format!("{:012x}{:012x}", x.high, x.low);
    Ok(DualReadReport {
        status: if clean { "ok" } else { "mismatch" }.into(),
        source_conflicts,
        target_conflicts,
        source_pairs: s.rows,
        target_pairs: d.rows,
        source_checksum: checksum(s),
        target_checksum: checksum(d),
        columns: pairs.iter().map(|c| c.target.name.clone()).collect(),
        diff: found.any().then(|| found.into_diff(0)),
        error: None,
        error_kind: None,
        seconds: 0.0,
    })
}

/// Store one outcome in `migration_status.dual_read_results` (V14).
///
/// Errors: [`crate::ErrorKind`] by SQLSTATE.
pub async fn record(pg: &Client, report: &DualReadReport) -> Result<()> {
    let value = serde_json::to_value(report).map_err(|e| Error::internal(format!("dual-read report does not serialise: {e}")))?;
    let n = |x: u64| x as i64;
    let d = report.diff.clone().unwrap_or_default();
    pg.execute(
        "INSERT INTO migration_status.dual_read_results (status, source_conflicts, target_conflicts, source_pairs, target_pairs, \
           missing_pairs, extra_pairs, changed_pairs, error_message, report) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        &[
            &report.status,
            &n(report.source_conflicts),
            &n(report.target_conflicts),
            &n(report.source_pairs),
            &n(report.target_pairs),
            &n(d.missing_count),
            &n(d.extra_count),
            &n(d.changed_count),
            &report.error,
            &value,
        ],
    )
    .await
    .map_err(|e| from_postgres(e, "recording the dual-read result"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compared_columns_are_the_identity_then_the_conflicts_modules_flags() {
        let expected: Vec<&str> =
            PAIR_IDENTITY_COLUMNS.iter().chain(RuleFlags::COLUMNS.iter()).chain(RuleFlags::EVENT_COLUMNS.iter()).copied().collect();
        assert_eq!(COMPARED_COLUMNS.to_vec(), expected);
        assert!(!COMPARED_COLUMNS.contains(&""), "every slot of the const is filled");
    }

    /// An empty comparison is `ok` but says it proves nothing; one with rows does not warn.
    #[test]
    fn an_empty_comparison_warns_that_it_proves_nothing() {
        let empty = DualReadReport { status: "ok".into(), ..Default::default() };
        assert!(empty.compared_nothing());
        assert!(empty.render().contains("warning: both sides are empty (no pair, no conflict)"), "{}", empty.render());
        let compared = DualReadReport { status: "ok".into(), source_pairs: 2, target_pairs: 2, source_conflicts: 1, target_conflicts: 1, ..Default::default() };
        assert!(!compared.compared_nothing() && !compared.render().contains("warning"), "{}", compared.render());
        let failed = DualReadReport { status: "error".into(), error: Some("boom".into()), ..Default::default() };
        assert!(!failed.compared_nothing(), "a failed comparison is not an empty one");
    }
}
