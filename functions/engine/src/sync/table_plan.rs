//! What a run knows about one table once it is planned: its columns
//! ([`SourceColumn`] paired with the target's as [`ColumnPair`]), keys,
//! watermark and load mode ([`TablePlan`], stored as JSON in
//! `migration_table_status.plan`) and each chunk's stored definition
//! ([`ChunkRange`]). The data every later step reads; the planning itself is
//! `sync::plan`.

use serde::{Deserialize, Serialize};

use crate::config::ChunkingStrategy;
use crate::sink::{self, TargetColumn};
use crate::source::arrow::LogicalType;
use crate::source::predicate::{self, Dialect};
use crate::source::sql;
use crate::sync::chunk::{ChunkSpec, PlannedChunk};
use crate::sync::status::LoadMode;

/// A column of a Snowflake table, from `INFORMATION_SCHEMA.COLUMNS`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceColumn {
    /// Exact name.
    pub name: String,
    /// Snowflake `DATA_TYPE` (`TEXT`, `NUMBER`, `TIMESTAMP_TZ`, ...).
    pub data_type: String,
    /// `NUMERIC_SCALE` for NUMBER.
    pub scale: Option<i64>,
    /// `CHARACTER_MAXIMUM_LENGTH` for TEXT.
    pub char_length: Option<i64>,
}

/// One copied column: source name → target column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnPair {
    /// Snowflake column.
    pub source: SourceColumn,
    /// PostgreSQL column.
    pub target: TargetColumn,
}

/// Everything later steps need to know about one table of a run; stored as
/// JSON in `migration_table_status.plan`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TablePlan {
    /// Config source name.
    pub source_name: String,
    /// Snowflake database.
    pub source_database: String,
    /// Snowflake schema.
    pub source_schema: String,
    /// Snowflake table.
    pub source_table: String,
    /// PostgreSQL database.
    pub target_database: String,
    /// PostgreSQL schema.
    pub target_schema: String,
    /// PostgreSQL table.
    pub target_table: String,
    /// Copied columns, in target order.
    pub columns: Vec<ColumnPair>,
    /// Source columns with no target column (logged, not copied).
    pub dropped_columns: Vec<String>,
    /// Key columns in the target (upsert conflict target, reconcile key).
    pub key_columns: Vec<String>,
    /// Target watermark column, when the table is incremental.
    pub target_watermark: Option<String>,
    /// How chunks are written.
    pub load_mode: LoadMode,
    /// Chunking strategy used.
    pub strategy: ChunkingStrategy,
    /// The table's `source_filter` (raw Snowflake SQL).
    pub source_filter: Option<String>,
    /// Watermark predicate for this run (Snowflake SQL), if incremental.
    pub watermark_predicate: Option<String>,
    /// The `thaw run --where` predicate (Snowflake SQL, checked by
    /// [`predicate::check_where`]) restricting this run of the table; it is
    /// part of every query of the table, planning aggregates included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_filter: Option<String>,
    /// For a run with `run_filter`: the watermark predicate the table would
    /// have had (`None`: read every row). The next run without a filter uses
    /// the oldest such floor since the table's last complete unfiltered run
    /// instead of the target's maximum, because the filtered run raised that
    /// maximum without reading the rows outside its filter (docs/sync.md §3.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watermark_floor: Option<String>,
    /// The watermark predicate of the target's maximum as this run planned
    /// the table (`source_watermark >= <MAX(target_watermark)>`), whatever
    /// predicate the run used. The next run of the table reads from here when
    /// this run completed the table: rows the source changed while this run
    /// was copying (or between a failed night and the night that resumed it)
    /// have a newer watermark than this, but perhaps not than the maximum the
    /// run left behind (docs/sync.md §3.2). `None`: not incremental (stored
    /// as `null`; plans recorded before this field have no key).
    #[serde(default)]
    pub watermark_at_plan: Option<String>,
    /// Effective rows per chunk.
    pub batch_rows: u64,
    /// Estimated bytes per row used for the budget.
    pub row_bytes: u64,
    /// Concurrent chunks for this table.
    pub parallel_threads: usize,
    /// Whether the target was truncated by this run.
    pub truncated: bool,
    /// DDL plan runs on the target before recording the table (one
    /// transaction, before the table's own): the `CREATE TABLE` of
    /// `create_tables`, the `ALTER TABLE … ADD COLUMN`s of
    /// `schema_evolution: "add_columns"`; empty for most tables.
    #[serde(default)]
    pub ddl: Vec<String>,
    /// How the copied columns differ from those of the previous run's plan of
    /// the same source table into the same target (columns added, no longer
    /// copied, or of another type: [`columns_changed`](crate::sync::plan::columns_changed)); `None` when they do
    /// not or there is no previous plan. The row hashes kept for the target
    /// (docs/reconcile.md §4.2) hash the old columns, so planning the table
    /// marks them incomplete (docs/sync.md §3.6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns_changed: Option<String>,
}

impl TablePlan {
    /// Whether the target watermark column is a text column (`text`,
    /// `varchar`, `bpchar`) filled from a Snowflake NUMBER, a pair §5.2
    /// accepts: such a watermark orders as a number, never as text
    /// (`'172800124457' < '86400124456'`), in the upsert's newer-row check
    /// and in reconcile's touched rows (docs/sync.md §4.3).
    pub fn watermark_is_number_in_text(&self) -> bool {
        self.columns.iter().any(|c| {
            Some(&c.target.name) == self.target_watermark.as_ref()
                && matches!(c.target.pg_type, sink::PgType::Text | sink::PgType::Varchar | sink::PgType::Bpchar)
                && LogicalType::from_data_type(&c.source.data_type) == Some(LogicalType::Fixed)
        })
    }

    /// `"DB"."SCHEMA"."TABLE"` in Snowflake.
    pub fn source_fqn(&self) -> String {
        sql::table(&self.source_database, &self.source_schema, &self.source_table)
    }
    /// `"schema"."table"` in PostgreSQL.
    pub fn target_fqn(&self) -> String {
        sink::qualified(&self.target_schema, &self.target_table)
    }
    /// The WHERE clause common to every chunk (filter and watermark), `TRUE` if none.
    pub fn base_predicate(&self) -> String {
        let mut parts = Vec::new();
        if let Some(f) = &self.source_filter {
            parts.push(format!("({f})"));
        }
        if let Some(w) = &self.watermark_predicate {
            parts.push(format!("({w})"));
        }
        if let Some(f) = &self.run_filter {
            parts.push(format!("({f})"));
        }
        if parts.is_empty() {
            "TRUE".into()
        } else {
            parts.join(" AND ")
        }
    }
}

/// The stored definition of one chunk (`migration_chunk_status.chunk_range`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRange {
    /// ChunkingStrategy that produced it.
    pub strategy: ChunkingStrategy,
    /// The chunk predicate (Snowflake SQL), ANDed with the table's base
    /// predicate: `spec` rendered at planning time, kept for readers of the
    /// status tables and for chunks planned before typed chunks.
    pub filter_sql: String,
    /// Rows the planning aggregate counted for it.
    pub estimated_rows: u64,
    /// Which rows, as data ([`ChunkSpec`]); absent in chunks planned by a
    /// thaw without typed chunks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<ChunkSpec>,
}

impl ChunkRange {
    /// The stored form of a planned chunk.
    pub fn new(strategy: ChunkingStrategy, chunk: PlannedChunk) -> Self {
        ChunkRange {
            strategy,
            filter_sql: predicate::render(&chunk.spec, Dialect::Snowflake),
            estimated_rows: chunk.estimated_rows,
            spec: Some(chunk.spec),
        }
    }

    /// The chunk predicate in Snowflake SQL: `spec` rendered, or the stored
    /// `filter_sql` of an older chunk.
    pub fn source_predicate(&self) -> String {
        match &self.spec {
            Some(spec) => predicate::render(spec, Dialect::Snowflake),
            None => self.filter_sql.clone(),
        }
    }
}
