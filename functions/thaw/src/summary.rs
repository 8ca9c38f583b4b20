//! The final summary table of `thaw run`.

use thaw_engine::contract::{ReconcileResponse, TableReconcile};
use thaw_engine::reconcile::TableReport;
use thaw_engine::runner::RunReport;

/// The reconcile column of a table: `ok (N rows)`, `MISMATCH (…)` or `ERROR`.
fn reconcile_cell(x: &TableReconcile) -> String {
    match x.status.as_str() {
        "error" => "ERROR (see below)".to_string(),
        _ if x.matched => format!("ok ({} rows)", x.target_rows),
        _ => format!("MISMATCH ({} vs {} rows)", x.source_rows, x.target_rows),
    }
}

/// Print per-table rows, seconds, rows/s and reconcile result, the conflict
/// counts and the total wall time.
pub fn print(report: &RunReport) {
    println!();
    println!("run {}{}: {}", report.plan.run_id, if report.plan.resumed { " (resumed)" } else { "" }, report.status);
    let names = report.tables.iter().map(|t| t.target.as_str()).chain(report.reconcile.iter().flat_map(|r| r.tables.iter().map(|t| t.target.as_str())));
    let w = crate::status::name_width(names, 42);
    println!("{:<w$} {:>10} {:>10} {:>9} {:>11}  reconcile", "table", "rows read", "written", "seconds", "rows/s");
    println!("{}", "-".repeat(100));
    for t in &report.tables {
        let target = t.target.clone();
        let rec = report
            .reconcile
            .as_ref()
            .and_then(|r| r.tables.iter().find(|x| x.target == target))
            .map(reconcile_cell)
            .unwrap_or_else(|| if t.failed_chunks > 0 { format!("{} chunk(s) failed", t.failed_chunks) } else { "-".into() });
        let rate = if t.seconds > 0.0 { t.rows_read as f64 / t.seconds } else { 0.0 };
        println!("{:<w$} {:>10} {:>10} {:>9.2} {:>11.0}  {}", target, t.rows_read, t.rows_written, t.seconds, rate, rec);
    }
    if let Some(r) = &report.reconcile {
        for t in r.tables.iter().filter(|t| !report.tables.iter().any(|c| c.target == t.target)) {
            println!("{:<w$} {:>10} {:>10} {:>9} {:>11}  {}", t.target, 0, 0, "-", "-", reconcile_cell(t));
        }
        print_details(r, &report.reconcile_details);
    }
    if let Some(c) = &report.conflicts {
        println!(
            "conflicts: {} visit pairs flagged among {} candidate visits, {} in-service/PTO pairs; {} new pair rows, {} new conflicts, {} refreshed, {} resolved ({:.2} s)",
            c.pairs_detected, c.visits_considered, c.event_pairs_detected, c.inserted, c.conflicts_created, c.updated, c.resolved, c.seconds
        );
        println!("conflict statuses changed: {}", status_changes(&c.status_changes));
    }
    if let Some(e) = &report.error {
        println!("step {} failed: {}: {}", e.step, e.kind, e.message);
    }
    if let Some(signal) = &report.interrupted {
        println!("interrupted by {signal}: unfinished chunks were rolled back and stay pending");
    }
    let steps: Vec<String> = report.steps.iter().map(|(name, secs)| format!("{name} {secs:.2} s")).collect();
    println!("total wall time: {:.2} s ({})", report.wall_seconds, steps.join(", "));
}

/// The night's status changes in one line (docs/conflicts.md §8.2.2):
/// `pairs 2 D, 1 R, 0 U, 0 N; conflicts 1 D, 1 R, 0 U, 0 N; status writes outside the window 0`.
pub fn status_changes(s: &thaw_engine::contract::StatusChanges) -> String {
    format!(
        "pairs {} D, {} R, {} U (reopened), {} N; conflicts {} D, {} R, {} U (reopened), {} N; status writes outside the window {}",
        s.pairs_deleted,
        s.pairs_resolved,
        s.pairs_reopened,
        s.pairs_no_response,
        s.conflicts_deleted,
        s.conflicts_resolved,
        s.conflicts_reopened,
        s.conflicts_no_response,
        s.outside_window_status_writes
    )
}

/// Print the result of `thaw reconcile`: one line per table, then the details.
pub fn print_reconcile(response: &ReconcileResponse, details: &[TableReport]) {
    println!("reconcile of run {}", response.run_id);
    let w = crate::status::name_width(response.tables.iter().map(|t| t.target.as_str()), 42);
    println!("{:<w$} {:>12} {:>12}  result", "table", "snowflake", "postgres");
    println!("{}", "-".repeat(90));
    for t in &response.tables {
        println!("{:<w$} {:>12} {:>12}  {}", t.target, t.source_rows, t.target_rows, reconcile_cell(t));
    }
    print_details(response, details);
}

/// A key-hash value as a percentage of the key-hash space.
fn pct(h: u64) -> f64 {
    h as f64 * 100.0 / thaw_engine::reconcile::HASH_SPACE as f64
}

/// A canonical key text for the terminal: columns joined by ` | `, NULL as
/// `NULL`; a column that is empty, has leading or trailing white space or
/// could be read as NULL or a boundary is quoted (`1 | "x "`), so keys that
/// differ only in blanks do not print alike.
fn key(k: &str) -> String {
    k.split('\u{1f}')
        .map(|part| {
            if part == "\u{1e}" {
                "NULL".to_string()
            } else if part.is_empty() || part.trim() != part || part == "NULL" || part.contains(" | ") || part.starts_with('"') {
                format!("{part:?}")
            } else {
                part.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" | ")
}


fn value(v: &Option<String>) -> String {
    v.as_deref().map(|s| format!("{s:?}")).unwrap_or_else(|| "NULL".into())
}

/// "; not verified whole yet: …; not checked (error below): …; found
/// different now: …" for the freshness line.
fn not_verified(never_whole: &[&str], unchecked: &[&str], differing: &[&str]) -> String {
    let mut out = String::new();
    if !never_whole.is_empty() {
        out.push_str(&format!("; not verified whole yet: {}", never_whole.join(", ")));
    }
    if !unchecked.is_empty() {
        out.push_str(&format!("; not checked (error below): {}", unchecked.join(", ")));
    }
    if !differing.is_empty() {
        out.push_str(&format!("; found different now: {}", differing.join(", ")));
    }
    out
}

/// Per-table errors and row-level differences (first 5 keys per kind).
fn print_details(r: &ReconcileResponse, details: &[TableReport]) {
    println!("reconcile: {} table(s), {} mismatch(es), {} error(s)", r.tables.len(), r.mismatches, r.errors);
    // Claim "every row" only when every table was checked and has been verified whole.
    let never_whole: Vec<&str> = details.iter().filter(|d| d.coverage.as_ref().is_some_and(|c| c.freshness_hours.is_none())).map(|d| d.summary.target.as_str()).collect();
    let unchecked: Vec<&str> = details.iter().filter(|d| d.coverage.is_none()).map(|d| d.summary.target.as_str()).collect();
    let differing: Vec<&str> = details.iter().filter(|d| d.summary.status == "mismatch").map(|d| d.summary.target.as_str()).collect();
    let rest = not_verified(&never_whole, &unchecked, &differing);
    match r.freshness_hours {
        Some(h) if rest.is_empty() => println!("reconcile freshness: every row verified within the last {h:.1} h"),
        Some(h) => println!("reconcile freshness: the tables verified whole were last verified clean within the last {h:.1} h{rest}"),
        None if !details.is_empty() => println!("reconcile freshness: no table verified whole yet{rest}"),
        None => {}
    }
    for detail in details {
        if let Some(c) = &detail.coverage {
            let slice = c.slice.map(|s| format!(", slice {:.2}–{:.2} % of the key-hash space", pct(s.lo), pct(s.hi))).unwrap_or_default();
            let census = if c.key_census { ", counts differed: keys compared" } else { "" };
            let fresh = c.freshness_hours.map(|h| format!(", oldest slice verified {h:.1} h ago")).unwrap_or_else(|| ", never verified whole".into());
            println!(
                "  {}: {} ({}{slice}{census}): {} rows verified, {} segments, {} rows transferred, {:.2} s{fresh}",
                detail.summary.target, c.scope, c.reason, c.rows_verified, c.segments_checked, c.rows_transferred, c.seconds
            );
        }
        if let Some(e) = &detail.summary.error {
            println!("  {}: ERROR {e}", detail.summary.target);
        }
        let Some(d) = &detail.diff else { continue };
        if d.deleted > 0 {
            println!("  {}: deleted {} row(s) no longer in Snowflake (propagate_deletes)", detail.summary.target, d.deleted);
        }
        if detail.summary.matched {
            continue;
        }
        println!(
            "  {}: {} missing, {} extra, {} changed, {} duplicate key(s) in Snowflake, {} in PostgreSQL ({} of {} differing segments diffed)",
            detail.summary.target, d.missing_count, d.extra_count, d.changed_count, d.duplicate_source_count, d.duplicate_target_count, d.segments_diffed, d.segments_mismatching
        );
        for (kind, keys) in [("missing", &d.missing), ("extra", &d.extra), ("duplicate in Snowflake", &d.duplicate_source), ("duplicate in PostgreSQL", &d.duplicate_target)] {
            for k in keys.iter().take(5) {
                println!("    {kind}: {}", key(k));
            }
        }
        for c in d.changed_rows.iter().take(5) {
            let cols: Vec<String> = c.columns.iter().map(|x| format!("{}: {} → {}", x.column, value(&x.source), value(&x.target))).collect();
            println!("    changed: {} — {}", key(&c.key), cols.join(", "));
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_that_differ_in_blanks_print_differently() {
        assert_eq!(super::key("1\u{1f}x"), "1 | x");
        assert_eq!(super::key("1\u{1f}x "), "1 | \"x \"");
        assert_eq!(super::key("1\u{1f} x"), "1 | \" x\"");
        assert_eq!(super::key("3\u{1f}"), "3 | \"\"");
        assert_eq!(super::key("\u{1e}\u{1f}NULL"), "NULL | \"NULL\"");
    }
}
