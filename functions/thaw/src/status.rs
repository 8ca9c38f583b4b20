//! `thaw status`: the runs in `migration_status` as a table (or JSON with
//! `--json`): per run its status, holder, whether a running run is dead
//! (its process gone), and error; per table chunks done,
//! failed and in progress, rows, rows/s, and the error of each table not
//! completed; the failed chunks with their errors.
//! Then per enabled table its reconcile freshness (docs/reconcile.md §5.4):
//! the last full verification, the rolling position and the age of the least
//! recently verified slice, `STALE` when over `--coverage-hours` or never
//! verified whole.

use thaw_engine::reconcile::coverage::TableFreshness;
use thaw_engine::sync::status::RunOverview;

/// The width of a table-name column: the longest name (in characters;
/// names are printed whole, never cut, so every column after it stays
/// aligned however long a schema-qualified name is), at least `min`.
pub fn name_width<'a>(names: impl Iterator<Item = &'a str>, min: usize) -> usize {
    names.map(|n| n.chars().count()).max().unwrap_or(0).max(min)
}

/// Print `runs` as text tables.
pub fn print(runs: &[RunOverview]) {
    if runs.is_empty() {
        println!("no runs recorded in migration_status.migration_runs");
        return;
    }
    for r in runs {
        let holder = match (&r.host, r.pid) {
            (Some(h), Some(p)) => format!(", {h} pid {p}"),
            _ => String::new(),
        };
        let ended = r.completed_at.map(|t| format!(", ended {}", t.format("%Y-%m-%d %H:%M:%S"))).unwrap_or_default();
        println!(
            "run {}  {}  ({} mode, started {}{ended}, heartbeat {}{holder}), {} rows",
            r.run_id,
            r.status,
            r.mode,
            r.started_at.format("%Y-%m-%d %H:%M:%S"),
            r.heartbeat_at.format("%H:%M:%S"),
            r.rows
        );
        if r.alive == Some(false) {
            println!(
                "  DEAD: no thaw process drives this run any more (killed, or no heartbeat for {} minutes); its chunks shown active are abandoned. \
                 The next `thaw run` of its configuration and table selection resumes it.",
                thaw_engine::sync::status::STUCK_AFTER_MINUTES
            );
        }
        if let Some(e) = &r.error {
            println!("  error: {e}");
        }
        let w = name_width(r.tables.iter().map(|t| t.target.as_str()), 36);
        println!("  {:<w$} {:<11} {:>7} {:>7} {:>6} {:>6} {:>11} {:>9} {:>10}", "table", "status", "chunks", "done", "failed", "active", "rows", "seconds", "rows/s");
        for t in &r.tables {
            println!(
                "  {:<w$} {:<11} {:>7} {:>7} {:>6} {:>6} {:>11} {:>9.1} {:>10.0}",
                t.target, t.status, t.chunks, t.chunks_completed, t.chunks_failed, t.chunks_in_progress, t.rows, t.seconds, t.rows_per_second
            );
        }
        for t in r.tables.iter().filter(|t| t.status != "completed") {
            if let Some(e) = &t.error {
                println!("  {} {}: {e}", t.status, t.target);
            }
        }
        for c in &r.failed_chunks {
            println!("  failed: chunk {} of {} (attempts {}): {}", c.chunk_id, c.source_table, c.retry_count, c.error.as_deref().unwrap_or("-"));
        }
        println!();
    }
}

/// Print the reconcile freshness of `tables` (see the module comment);
/// `threshold_hours` is the age above which a table is flagged.
pub fn print_freshness(tables: &[TableFreshness], threshold_hours: f64) {
    println!("reconcile freshness (STALE: least recently verified slice older than {threshold_hours} h, or never verified whole; last reconcile MISMATCH/ERROR: the table differs or could not be checked now)");
    let w = name_width(tables.iter().map(|t| t.target.as_str()), 36);
    println!("  {:<w$} {:<19} {:>8} {:<19} {:>13}  last reconcile", "table", "last full verify", "rolling", "verified since", "freshness (h)");
    let time = |t: Option<chrono::DateTime<chrono::Utc>>| t.map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string()).unwrap_or_else(|| "never".into());
    for t in tables {
        let age = t.freshness_hours.map(|h| format!("{h:.1}")).unwrap_or_else(|| "-".into());
        let last = match (&t.last_reconcile, t.last_reconciled_at) {
            (Some(status), at) => format!("{} {}", if status == "ok" { "ok".to_string() } else { status.to_uppercase() }, time(at)),
            (None, _) => "never".into(),
        };
        println!(
            "  {:<w$} {:<19} {:>7.1}% {:<19} {:>13}  {last}{}",
            t.target,
            time(t.last_full_verified_at),
            t.rolling_percent,
            time(t.verified_since),
            age,
            if t.stale { "  STALE" } else { "" }
        );
    }
}
