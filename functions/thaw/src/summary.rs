//! The final summary table of `thaw run`.

use thaw_engine::runner::RunReport;

/// Print per-table rows, seconds, rows/s and reconcile result, the conflict
/// counts and the total wall time.
pub fn print(report: &RunReport) {
    println!();
    println!("run {}{}: {}", report.plan.run_id, if report.plan.resumed { " (resumed)" } else { "" }, report.status);
    println!("{:<42} {:>10} {:>10} {:>9} {:>11}  reconcile", "table", "rows read", "written", "seconds", "rows/s");
    println!("{}", "-".repeat(100));
    for t in &report.tables {
        let target = t.target.clone();
        let rec = report
            .reconcile
            .as_ref()
            .and_then(|r| r.tables.iter().find(|x| x.target == target))
            .map(|x| if x.matched { format!("ok ({} rows)", x.target_rows) } else { format!("MISMATCH ({} vs {} rows)", x.source_rows, x.target_rows) })
            .unwrap_or_else(|| if t.failed_chunks > 0 { format!("{} chunk(s) failed", t.failed_chunks) } else { "-".into() });
        let rate = if t.seconds > 0.0 { t.rows_read as f64 / t.seconds } else { 0.0 };
        println!("{:<42} {:>10} {:>10} {:>9.2} {:>11.0}  {}", target, t.rows_read, t.rows_written, t.seconds, rate, rec);
    }
    if let Some(r) = &report.reconcile {
        for t in r.tables.iter().filter(|t| !report.tables.iter().any(|c| c.target == t.target)) {
            let rec = if t.matched { format!("ok ({} rows)", t.target_rows) } else { format!("MISMATCH ({} vs {} rows)", t.source_rows, t.target_rows) };
            println!("{:<42} {:>10} {:>10} {:>9} {:>11}  {rec}", t.target, 0, 0, "-", "-");
        }
        println!("reconcile: {} table(s), {} mismatch(es)", r.tables.len(), r.mismatches);
        for detail in &report.reconcile_details {
            let Some(d) = &detail.diff else { continue };
            if d.deleted > 0 {
                println!("  {}: deleted {} row(s) no longer in Snowflake (propagate_deletes)", detail.summary.target, d.deleted);
            }
            if detail.summary.matched {
                continue;
            }
            println!(
                "  {}: {} missing, {} extra, {} changed key(s) in the differing segments",
                detail.summary.target, d.missing_count, d.extra_count, d.changed_count
            );
            for (kind, keys) in [("missing", &d.missing), ("extra", &d.extra), ("changed", &d.changed)] {
                for k in keys.iter().take(5) {
                    println!("    {kind}: {}", k.replace('\u{1f}', " | ").replace('\u{1e}', "NULL"));
                }
            }
        }
    }
    if let Some(c) = &report.conflicts {
        println!(
            "conflicts: {} visit pairs flagged among {} candidate visits; {} new pair rows, {} new conflicts, {} refreshed, {} resolved ({:.2} s)",
            c.pairs_detected, c.visits_considered, c.inserted, c.conflicts_created, c.updated, c.resolved, c.seconds
        );
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
