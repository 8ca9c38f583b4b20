//! The cutover gate: may the application switch from Snowflake to
//! PostgreSQL now? (docs/reconcile.md §9, `ops/cutover.md`.)
//!
//! [`check`] reads only PostgreSQL (the `migration_status` schema and the
//! conflict schema's `settings`) and evaluates each [`Gate`]; the answer is
//! "go" only when every gate passes. Gates:
//!
//! 1. `last-run-completed`: the newest sync run of this configuration
//!    (of its sources, whatever credentials it ran with; superseded runs
//!    aside) is `completed` and finished within the window.
//! 2. `no-failed-runs`: no run of this configuration started within the
//!    window ended `failed`, `partial`, `mismatch` or `interrupted`.
//! 3. `tables-reconciled`: every enabled table of the configuration has a
//!    reconcile result `ok` within the window, in the newest run that
//!    reconciled it.
//! 4. `conflicts-ran`: the nightly conflict job finished within the window
//!    (`settings."LastLoadDate"`) and is not running (`"InProgressFlag"` 2);
//!    a conflict database without the settings table has never run it.
//!
//! A status database without the `migration_status` tables, or absent from
//! the server (nothing has run against it), fails every gate for that reason.
//! 5. `freshness`: hours since the last verified sync (a `completed` run)
//!    are at most the freshness threshold, and every enabled table's
//!    least recently verified slice is at most `coverage_hours` old
//!    (docs/reconcile.md §5).
//! 6. `dual-read`: the dual-read job (Snowflake CONFLICTREPORT against the
//!    PostgreSQL `conflict` schema, [`crate::reconcile::dual_read`]) has a
//!    result within the window, compared clean on each of the last
//!    [`GateOptions::dual_read_days`] UTC calendar days (ending on the
//!    newest result's day), and none of its results of those days differs
//!    or failed. The operator's
//!    sign-off ([`GateOptions::dual_read_signed_off`]) is an explicit
//!    override, recorded in the report.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::Client;

use crate::config::Config;
use crate::error::{from_postgres, Result};

/// Thresholds of the gate.
#[derive(Debug, Clone)]
pub struct GateOptions {
    /// Window in hours within which runs, reconciles and the conflict job
    /// must have succeeded (default 26: one nightly cycle plus slack).
    pub max_age_hours: u32,
    /// Largest accepted age in hours of the last verified sync.
    pub freshness_hours: u32,
    /// Largest accepted reconcile freshness in hours of every enabled table:
    /// the age of its least recently verified slice (docs/reconcile.md §5;
    /// default 192 = the 7-day period plus a day).
    pub coverage_hours: u32,
    /// The operator's sign-off of the dual-read window (who and what was
    /// compared, `ops/cutover.md` §1): an explicit override of the recorded
    /// dual-read results, kept in the report.
    pub dual_read_signed_off: Option<String>,
    /// Days of dual-read results the `dual-read` gate looks back on (default 7).
    pub dual_read_days: u32,
}

impl Default for GateOptions {
    fn default() -> Self {
        GateOptions { max_age_hours: 26, freshness_hours: 26, coverage_hours: 192, dual_read_signed_off: None, dual_read_days: 7 }
    }
}

/// One gate's verdict.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Gate {
    /// Stable name (`last-run-completed`, `no-failed-runs`, …).
    pub name: &'static str,
    /// True when the gate passes.
    pub passed: bool,
    /// Why, in one sentence (what was found, and what to do when it fails).
    pub reason: String,
}

/// The whole answer of [`check`].
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CutoverReport {
    /// True only when every gate passed.
    pub go: bool,
    /// When the gate was evaluated.
    pub checked_at: DateTime<Utc>,
    /// Every gate, in the order of the module documentation.
    pub gates: Vec<Gate>,
}

impl CutoverReport {
    /// Human-readable text: `GO` or `NO-GO`, then one line per gate.
    pub fn render(&self) -> String {
        let mut out = format!("cutover: {} ({})\n", if self.go { "GO" } else { "NO-GO" }, self.checked_at.format("%Y-%m-%d %H:%M UTC"));
        for g in &self.gates {
            out.push_str(&format!("  [{}] {:<20} {}\n", if g.passed { "ok" } else { "NO" }, g.name, g.reason));
        }
        out
    }
}

fn gate(name: &'static str, passed: bool, reason: impl Into<String>) -> Gate {
    Gate { name, passed, reason: reason.into() }
}

fn hours_since(t: DateTime<Utc>, now: DateTime<Utc>) -> f64 {
    (now - t).num_seconds() as f64 / 3600.0
}

/// Evaluate every gate for `config` (the sync configuration) against its
/// status database.
///
/// The runs of the configuration are those of any of its enabled sources
/// (`migration_runs.metadata.sources`) or with its `config_hash`: the
/// nightly job runs with its own database user and Snowflake secret (they
/// replace the config's, and `config_hash` covers them), the operator who
/// runs the gate with theirs, so the hash alone would find no run.
///
/// Errors: connection and query failures only ([`crate::ErrorKind::Unreachable`],
/// [`crate::ErrorKind::SchemaMismatch`] when `migration_status` is not
/// migrated); a failing gate is a verdict, not an error.
pub async fn check(config: &Config, options: &GateOptions) -> Result<CutoverReport> {
    let now = Utc::now();
    // A status database nothing has run against yet (absent, or without the tables): every gate
    // fails for that one reason.
    let no_status = |reason: String| {
        let gates = GATE_NAMES.iter().map(|name| gate(name, false, reason.clone())).collect();
        CutoverReport { go: false, checked_at: now, gates }
    };
    let pg = match crate::sink::connect_configured(&config.postgres, config.status_database(), "postgres.status_database").await {
        Ok(pg) => pg,
        Err(e) if e.kind == crate::ErrorKind::SchemaMismatch => {
            return Ok(no_status(format!(
                "the status database '{}' (postgres.status_database) does not exist on this server: nothing has run against it; create it and run `thaw run`, or fix postgres.status_database",
                config.status_database()
            )));
        }
        Err(e) => return Err(e),
    };
    let window = options.max_age_hours as f64;
    if !status_tables_exist(&pg).await? {
        return Ok(no_status(format!(
            "the status database '{}' holds no thaw status yet (migration_status is not migrated: nothing has run against it); run `thaw run` (it migrates first) or `thaw migrate`",
            config.status_database()
        )));
    }
    let mut gates = Vec::new();
    let hash = config.config_hash();
    let sources: Vec<String> = config.sources.iter().filter(|s| s.enabled).map(|s| s.source_name.clone()).collect();

    let latest = latest_run(&pg, &hash, &sources).await?;
    gates.push(match &latest {
        None => gate("last-run-completed", false, "no sync run of this configuration is recorded; run `thaw run`"),
        Some(r) if r.status != "completed" => {
            gate("last-run-completed", false, format!("newest run {} is '{}'; fix it and rerun (`thaw status`)", r.run_id, r.status))
        }
        Some(r) => match r.completed_at {
            Some(t) if hours_since(t, now) <= window => {
                gate("last-run-completed", true, format!("run {} completed {:.1} h ago", r.run_id, hours_since(t, now)))
            }
            _ => gate("last-run-completed", false, format!("newest run {} completed more than {window} h ago", r.run_id)),
        },
    });

    let bad = pg
        .query(
            "SELECT run_id::text, status FROM migration_status.migration_runs \
             WHERE (config_hash = $1 OR metadata->'sources' ?| $3) AND started_at > now() - make_interval(hours => $2) \
               AND status IN ('failed', 'partial', 'mismatch', 'interrupted') ORDER BY started_at DESC",
            &[&hash, &(options.max_age_hours as i32), &sources],
        )
        .await
        .map_err(|e| from_postgres(e, "reading recent runs"))?;
    gates.push(if bad.is_empty() {
        gate("no-failed-runs", true, format!("no failed, partial, mismatched or interrupted run in the last {window} h"))
    } else {
        let list: Vec<String> = bad.iter().take(5).map(|r| format!("{} ({})", r.get::<_, String>(0), r.get::<_, String>(1))).collect();
        gate("no-failed-runs", false, format!("{} run(s) in the last {window} h did not succeed: {}", bad.len(), list.join(", ")))
    });

    gates.push(tables_reconciled(&pg, config, options, now).await?);
    gates.push(conflicts_ran(config, options, now).await?);

    let verified = pg
        .query_opt(
            "SELECT max(completed_at) FROM migration_status.migration_runs WHERE (config_hash = $1 OR metadata->'sources' ?| $2) AND status = 'completed'",
            &[&hash, &sources],
        )
        .await
        .map_err(|e| from_postgres(e, "reading the last verified sync"))?
        .and_then(|r| r.get::<_, Option<DateTime<Utc>>>(0));
    let stale = stale_coverage(&pg, config, options, now).await?;
    gates.push(match (verified, stale.is_empty()) {
        (Some(t), true) if hours_since(t, now) <= options.freshness_hours as f64 => gate(
            "freshness",
            true,
            format!(
                "last verified sync {:.1} h ago (threshold {} h); every table verified whole within {} h",
                hours_since(t, now),
                options.freshness_hours,
                options.coverage_hours
            ),
        ),
        (Some(t), _) if hours_since(t, now) > options.freshness_hours as f64 => {
            gate("freshness", false, format!("last verified sync {:.1} h ago exceeds {} h", hours_since(t, now), options.freshness_hours))
        }
        (Some(_), _) => gate(
            "freshness",
            false,
            format!("not every row verified within {} h: {}; run `thaw reconcile --full` or let the nightly slices catch up", options.coverage_hours, stale.join(", ")),
        ),
        (None, _) => gate("freshness", false, "no verified (completed) sync yet"),
    });

    gates.push(match options.dual_read_signed_off.as_deref().map(str::trim) {
        Some(text) if !text.is_empty() => gate("dual-read", true, format!("overridden by the operator's sign-off: {text}")),
        _ => dual_read_gate(&pg, options, now).await?,
    });

    Ok(CutoverReport { go: gates.iter().all(|g| g.passed), checked_at: now, gates })
}

/// The gates' names, in the order [`check`] evaluates them.
const GATE_NAMES: [&str; 6] = ["last-run-completed", "no-failed-runs", "tables-reconciled", "conflicts-ran", "freshness", "dual-read"];

/// True when the status database holds the `migration_status` tables the
/// gate and `thaw status` read (migrations V1, V8, V14); false for a
/// database nothing has run against yet.
///
/// Errors: [`crate::ErrorKind`] by SQLSTATE when the catalog cannot be read.
pub async fn status_tables_exist(pg: &Client) -> Result<bool> {
    let row = pg
        .query_one(
            "SELECT to_regclass('migration_status.migration_runs') IS NOT NULL AND to_regclass('migration_status.reconcile_results') IS NOT NULL \
               AND to_regclass('migration_status.reconcile_coverage') IS NOT NULL AND to_regclass('migration_status.dual_read_results') IS NOT NULL",
            &[],
        )
        .await
        .map_err(|e| from_postgres(e, "looking up the migration_status tables"))?;
    Ok(row.get(0))
}

struct RunRow {
    run_id: String,
    status: String,
    completed_at: Option<DateTime<Utc>>,
}

/// The newest run of the configuration (see [`check`]), superseded runs aside.
async fn latest_run(pg: &Client, config_hash: &str, sources: &[String]) -> Result<Option<RunRow>> {
    let row = pg
        .query_opt(
            "SELECT run_id::text, status, completed_at FROM migration_status.migration_runs \
             WHERE (config_hash = $1 OR metadata->'sources' ?| $2) AND status <> 'superseded' ORDER BY started_at DESC LIMIT 1",
            &[&config_hash, &sources],
        )
        .await
        .map_err(|e| from_postgres(e, "reading the newest run"))?;
    Ok(row.map(|r| RunRow { run_id: r.get(0), status: r.get(1), completed_at: r.get(2) }))
}

/// The `dual-read` gate from the recorded dual-read results
/// (`migration_status.dual_read_results`, docs/reconcile.md §10): the newest
/// is within the window, none of the last `dual_read_days` UTC days (ending
/// on the newest result's day) is `mismatch` or `error`, and each of those
/// days holds a clean result that compared something: an `ok` of zero pairs
/// and zero conflicts on both sides (the legacy schema or the conflict
/// schema empty, e.g. the wrong `--sf-schema`, or `thaw conflicts` never run
/// there) is identical but proves nothing, so its day does not count.
async fn dual_read_gate(pg: &Client, options: &GateOptions, now: DateTime<Utc>) -> Result<Gate> {
    let days = options.dual_read_days.max(1);
    // Enough history for `days` UTC days ending on the newest result's day (at most `max_age_hours` old).
    let rows = pg
        .query(
            "SELECT checked_at, status, missing_pairs, extra_pairs, changed_pairs, source_conflicts, target_conflicts, coalesce(error_message, ''), \
                    source_pairs + target_pairs + source_conflicts + target_conflicts = 0 \
             FROM migration_status.dual_read_results WHERE checked_at > now() - make_interval(days => $1) ORDER BY checked_at DESC",
            &[&(days as i32 + 2 + options.max_age_hours as i32 / 24)],
        )
        .await
        .map_err(|e| from_postgres(e, "reading dual-read results"))?;
    let Some(newest) = rows.first() else {
        return Ok(gate(
            "dual-read",
            false,
            format!("no dual-read result in the last {days} days: schedule `thaw dual-read` (ops/cutover.md §1), or override with --dual-read-signed-off \"<who, when, what matched>\""),
        ));
    };
    let at: DateTime<Utc> = newest.get(0);
    if hours_since(at, now) > options.max_age_hours as f64 {
        return Ok(gate("dual-read", false, format!("newest dual-read result is {:.1} h old (window {} h); run `thaw dual-read`", hours_since(at, now), options.max_age_hours)));
    }
    // The window: `days` UTC calendar days ending on the newest result's day (the days of
    // dualRead.firstDate..lastDate are UTC days too).
    let last_day = at.date_naive();
    let first_day = last_day - chrono::Days::new(u64::from(days) - 1);
    let in_window: Vec<&tokio_postgres::Row> = rows.iter().filter(|r| r.get::<_, DateTime<Utc>>(0).date_naive() >= first_day).collect();
    let not_clean = in_window.iter().filter(|r| r.get::<_, String>(1) != "ok").count();
    let bad: Vec<String> = in_window
        .iter()
        .filter(|r| r.get::<_, String>(1) != "ok")
        .take(3)
        .map(|r| {
            let (at, status): (DateTime<Utc>, String) = (r.get(0), r.get(1));
            let (missing, extra, changed, sc, tc): (i64, i64, i64, i64, i64) = (r.get(2), r.get(3), r.get(4), r.get(5), r.get(6));
            let detail = if status == "error" {
                r.get::<_, String>(7)
            } else {
                format!("{missing} pair(s) only in Snowflake, {extra} only in PostgreSQL, {changed} differing; conflicts {sc} vs {tc}")
            };
            format!("{} {status}: {detail}", at.format("%Y-%m-%d %H:%M"))
        })
        .collect();
    if !bad.is_empty() {
        // An `error` is a comparison that could not be made, not a difference: say both.
        let newest_first = if not_clean > bad.len() { format!(" (the newest {})", bad.len()) } else { String::new() };
        return Ok(gate(
            "dual-read",
            false,
            format!("{not_clean} dual-read result(s) of the last {days} days differed or failed{newest_first}: {}; see `thaw dual-read` and ops/cutover.md §1", bad.join("; ")),
        ));
    }
    // Clean on each of those days, with something compared.
    let day_of = |r: &&tokio_postgres::Row| r.get::<_, DateTime<Utc>>(0).date_naive();
    let clean_days: std::collections::BTreeSet<chrono::NaiveDate> = in_window.iter().filter(|r| !r.get::<_, bool>(8)).map(day_of).collect();
    let empty_days: std::collections::BTreeSet<chrono::NaiveDate> = in_window.iter().filter(|r| r.get::<_, bool>(8)).map(day_of).filter(|d| !clean_days.contains(d)).collect();
    let missing: Vec<String> = first_day
        .iter_days()
        .take_while(|d| *d <= last_day)
        .filter(|d| !clean_days.contains(d) && !empty_days.contains(d))
        .map(|d| d.to_string())
        .collect();
    if !missing.is_empty() || !empty_days.is_empty() {
        let mut reasons = Vec::new();
        if !missing.is_empty() {
            reasons.push(format!("none on {}", missing.join(", ")));
        }
        if !empty_days.is_empty() {
            let list: Vec<String> = empty_days.iter().map(|d| d.to_string()).collect();
            reasons.push(format!(
                "only empty ones on {} (no pair and no conflict on either side: identical but proving nothing; check the legacy schema `thaw dual-read` reads, --sf-database/--sf-schema, and that `thaw conflicts` ran on conflicts.database)",
                list.join(", ")
            ));
        }
        return Ok(gate(
            "dual-read",
            false,
            format!(
                "clean dual-read comparisons on {} of the {days} days {first_day}..{last_day} (UTC), {}; the window needs {days} consecutive clean days (ops/cutover.md §1), or override with --dual-read-signed-off \"<who, when, what matched>\"",
                clean_days.len(),
                reasons.join("; ")
            ),
        ));
    }
    Ok(gate(
        "dual-read",
        true,
        format!("clean dual-read comparisons on each of the {days} days {first_day}..{last_day} (UTC), {} in all, newest {:.1} h ago", in_window.len(), hours_since(at, now)),
    ))
}

/// Enabled tables whose reconcile freshness (`migration_status.reconcile_coverage.verified_since`,
/// docs/reconcile.md §5) is older than `coverage_hours` or unknown, with the reason.
async fn stale_coverage(pg: &Client, config: &Config, options: &GateOptions, now: DateTime<Utc>) -> Result<Vec<String>> {
    let mut stale = Vec::new();
    for s in config.sources.iter().filter(|s| s.enabled) {
        for t in s.tables.iter().filter(|t| t.enabled) {
            let target = format!("{}.{}", s.target_pg_schema, t.target);
            let since: Option<DateTime<Utc>> = pg
                .query_opt("SELECT verified_since FROM migration_status.reconcile_coverage WHERE target = $1", &[&target])
                .await
                .map_err(|e| from_postgres(e, "reading reconcile coverage"))?
                .and_then(|r| r.get(0));
            match since {
                None => stale.push(format!("{target} never verified whole")),
                Some(at) if hours_since(at, now) > options.coverage_hours as f64 => {
                    stale.push(format!("{target} oldest slice verified {:.1} h ago", hours_since(at, now)))
                }
                Some(_) => {}
            }
        }
    }
    Ok(stale)
}

async fn tables_reconciled(pg: &Client, config: &Config, options: &GateOptions, now: DateTime<Utc>) -> Result<Gate> {
    let mut problems = Vec::new();
    let mut checked = 0;
    for s in config.sources.iter().filter(|s| s.enabled) {
        for t in s.tables.iter().filter(|t| t.enabled) {
            checked += 1;
            let target = format!("{}.{}", s.target_pg_schema, t.target);
            let row = pg
                .query_opt(
                    "SELECT status, reconciled_at FROM migration_status.reconcile_results WHERE target = $1 \
                     ORDER BY reconciled_at DESC LIMIT 1",
                    &[&target],
                )
                .await
                .map_err(|e| from_postgres(e, "reading reconcile results"))?;
            match row {
                None => problems.push(format!("{target}: never reconciled")),
                Some(r) => {
                    let (status, at): (String, DateTime<Utc>) = (r.get(0), r.get(1));
                    if status != "ok" {
                        problems.push(format!("{target}: last reconcile '{status}'"));
                    } else if hours_since(at, now) > options.max_age_hours as f64 {
                        problems.push(format!("{target}: last clean reconcile {:.1} h ago", hours_since(at, now)));
                    }
                }
            }
        }
    }
    Ok(if problems.is_empty() {
        gate("tables-reconciled", true, format!("all {checked} table(s) reconciled clean within {} h", options.max_age_hours))
    } else {
        let n = problems.len();
        problems.truncate(8);
        gate("tables-reconciled", false, format!("{n} of {checked} table(s) not proven: {}", problems.join("; ")))
    })
}

async fn conflicts_ran(config: &Config, options: &GateOptions, now: DateTime<Utc>) -> Result<Gate> {
    let Some(c) = &config.conflicts else {
        return Ok(gate("conflicts-ran", false, "the configuration has no 'conflicts' section; the conflict job must run on PostgreSQL before cutover"));
    };
    let pg = match crate::sink::connect(&config.postgres, &c.database).await {
        Ok(pg) => pg,
        Err(e) if e.kind == crate::ErrorKind::SchemaMismatch => {
            return Ok(gate(
                "conflicts-ran",
                false,
                format!("the conflict job has never run on PostgreSQL: database '{}' (conflicts.database) does not exist on this server; create it or fix conflicts.database, then run `thaw conflicts`", c.database),
            ));
        }
        Err(e) => return Err(e),
    };
    let schema_name = c.conflict_schema.as_deref().unwrap_or("conflict");
    let schema = crate::sink::ident(schema_name);
    let settings = format!("{schema}.settings");
    let exists: bool = pg
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&settings])
        .await
        .map_err(|e| from_postgres(e, "looking up the conflict settings table"))?
        .get(0);
    if !exists {
        return Ok(gate(
            "conflicts-ran",
            false,
            format!(
                "the conflict job has never run on PostgreSQL: database '{}' has no {schema_name}.settings table; run `thaw conflicts` (or `thaw run`) with this configuration",
                c.database
            ),
        ));
    }
    // `LastLoadDate` is the wall clock of the configured zone (docs/conflicts.md §D9).
    let zone = c.time_zone.as_deref().unwrap_or(crate::conflicts::settings::DEFAULT_TIME_ZONE);
    let row = pg
        .query_opt(
            &format!("SELECT max(\"LastLoadDate\"::timestamp AT TIME ZONE $1), max(\"InProgressFlag\")::int8 FROM {schema}.settings"),
            &[&zone],
        )
        .await
        .map_err(|e| from_postgres(e, "reading the conflict settings"))?;
    let (last, flag): (Option<DateTime<Utc>>, Option<i64>) = row.map(|r| (r.get(0), r.get(1))).unwrap_or((None, None));
    Ok(match (last, flag) {
        (_, Some(1)) => gate("conflicts-ran", false, "the conflict job is running now (InProgressFlag 1); check again when it has finished"),
        (Some(t), _) if hours_since(t, now) <= options.max_age_hours as f64 => {
            gate("conflicts-ran", true, format!("conflict job finished {:.1} h ago", hours_since(t, now)))
        }
        (Some(t), _) => gate("conflicts-ran", false, format!("conflict job last finished {t}, more than {} h ago", options.max_age_hours)),
        (None, _) => gate("conflicts-ran", false, "the conflict job has never finished on PostgreSQL (settings.LastLoadDate is empty)"),
    })
}
