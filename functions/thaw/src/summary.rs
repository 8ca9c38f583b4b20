//! The final summary table of `thaw run`.

use thaw_engine::run::RunReport;

/// Print per-table rows, seconds, rows/s and reconcile result, the conflict
/// counts and the total wall time.
pub fn print(report: &RunReport) {
    println!();
    println!("run {}{}", report.plan.run_id, if report.plan.resumed { " (resumed)" } else { "" });
    println!("{:<42} {:>10} {:>10} {:>9} {:>11}  {}", "table", "rows read", "written", "seconds", "rows/s", "reconcile");
    println!("{}", "-".repeat(100));
    for t in &report.tables {
        let target = report
            .merge
            .tables
            .iter()
            .find(|m| m.target.to_lowercase().ends_with(&t.source_table.to_lowercase()))
            .map(|m| m.target.clone())
            .unwrap_or_else(|| t.source_table.clone());
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
        for t in r.tables.iter().filter(|t| !report.tables.iter().any(|c| t.target.to_lowercase().ends_with(&c.source_table.to_lowercase()))) {
            println!("{:<42} {:>10} {:>10} {:>9} {:>11}  {}", t.target, 0, 0, "-", "-", if t.matched { format!("ok ({} rows)", t.target_rows) } else { "MISMATCH".into() });
        }
        println!("reconcile: {} table(s), {} mismatch(es)", r.tables.len(), r.mismatches);
    }
    if let Some(c) = &report.conflicts {
        println!("conflicts: {c}");
    }
    println!("total wall time: {:.2} s", report.wall_seconds);
}
