//! `thaw status`: the runs in `migration_status` as a table (or JSON with
//! `--json`): per run its status, holder and error; per table chunks done,
//! failed and in progress, rows, rows/s; the failed chunks with their errors.

use thaw_engine::sync::status::RunOverview;

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
        if let Some(e) = &r.error {
            println!("  error: {e}");
        }
        println!("  {:<36} {:<11} {:>7} {:>7} {:>6} {:>6} {:>11} {:>9} {:>10}", "table", "status", "chunks", "done", "failed", "active", "rows", "seconds", "rows/s");
        for t in &r.tables {
            println!(
                "  {:<36} {:<11} {:>7} {:>7} {:>6} {:>6} {:>11} {:>9.1} {:>10.0}",
                t.target, t.status, t.chunks, t.chunks_completed, t.chunks_failed, t.chunks_in_progress, t.rows, t.seconds, t.rows_per_second
            );
        }
        for c in &r.failed_chunks {
            println!("  failed: chunk {} of {} (attempts {}): {}", c.chunk_id, c.source_table, c.retry_count, c.error.as_deref().unwrap_or("-"));
        }
        println!();
    }
}
