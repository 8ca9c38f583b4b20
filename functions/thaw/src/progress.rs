//! Progress reporting for `thaw run`: indicatif bars on a terminal,
//! structured log lines otherwise.

use std::collections::BTreeMap;
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use thaw_engine::contract::{ChunkItem, CopyChunkResponse, PlanResponse};
use thaw_engine::runner::Observer;
use thaw_engine::Error;

/// One bar per table (chunks done / chunks planned, rows copied).
pub struct Bars {
    multi: MultiProgress,
    /// Per source table: its bar and the rows read so far.
    bars: Mutex<BTreeMap<String, (ProgressBar, u64)>>,
}

impl Bars {
    /// Empty set of bars.
    pub fn new() -> Self {
        Bars { multi: MultiProgress::new(), bars: Mutex::new(BTreeMap::new()) }
    }
}

impl Observer for Bars {
    fn step(&self, name: &str) {
        let _ = self.multi.println(format!("==> {name}"));
    }
    fn planned(&self, plan: &PlanResponse, tables: &[(String, u64, u64)]) {
        let style = ProgressStyle::with_template("{prefix:>40} [{bar:30}] {pos}/{len} chunks {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        let _ = self.multi.println(format!("run {} ({}): {} chunks in {} tables", plan.run_id, if plan.resumed { "resumed" } else { "new" }, plan.chunks, plan.tables));
        let mut bars = self.bars.lock().unwrap();
        for (table, chunks, _) in tables {
            let bar = self.multi.add(ProgressBar::new(*chunks));
            bar.set_style(style.clone());
            bar.set_prefix(table.clone());
            bars.insert(table.clone(), (bar, 0));
        }
    }
    fn chunk_done(&self, r: &CopyChunkResponse) {
        if let Some((bar, rows)) = self.bars.lock().unwrap().get_mut(&r.source_table) {
            bar.inc(1);
            *rows += r.rows_read;
            bar.set_message(format!("{rows} rows"));
            if bar.position() == bar.length().unwrap_or(0) {
                bar.finish();
            }
        }
    }
    fn chunk_failed(&self, item: &ChunkItem, error: &Error) {
        let _ = self.multi.println(format!("chunk {} of {} failed: {error}", item.chunk_id, item.source_table));
    }
}

/// Structured log lines (JSON when not on a terminal).
pub struct Logs;

impl Observer for Logs {
    fn step(&self, name: &str) {
        tracing::info!(step = name, "step started");
    }
    fn planned(&self, plan: &PlanResponse, _tables: &[(String, u64, u64)]) {
        tracing::info!(run_id = %plan.run_id, resumed = plan.resumed, chunks = plan.chunks, tables = plan.tables, "planned");
    }
    fn chunk_done(&self, r: &CopyChunkResponse) {
        tracing::info!(table = %r.source_table, chunk = r.chunk_id, rows_read = r.rows_read, inserted = r.rows_inserted, updated = r.rows_updated, seconds = r.seconds, "chunk copied");
    }
    fn chunk_failed(&self, item: &ChunkItem, error: &Error) {
        tracing::error!(table = %item.source_table, chunk = item.chunk_id, kind = %error.kind, error = %error.message, "chunk failed");
    }
}
