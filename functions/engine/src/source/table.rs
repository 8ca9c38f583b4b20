//! [`TableSource`]: what the sync needs from wherever a table's rows come
//! from (docs/sync.md §5.6). [`super::SnowflakeSource`] implements it with
//! Snowflake queries; the staged-Parquet path (§13) is the other source.

use std::future::Future;

use arrow_array::RecordBatch;
use futures::stream::BoxStream;

use super::{sql, JsonRows, SnowflakeSource};
use crate::config::SourceConfig;
use crate::error::Result;
use crate::sync::plan::{self, SourceCatalog};

/// A stream of standard Arrow record batches (docs/sync.md §5.5), ending at
/// the first error.
pub type BatchStream = BoxStream<'static, Result<RecordBatch>>;

/// One chunk's rows: `SELECT columns FROM table WHERE predicate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkRequest<'a> {
    /// Source database, schema and table (exact names).
    pub table: (&'a str, &'a str, &'a str),
    /// Source column names (exact), in the order the batches must have.
    pub columns: &'a [String],
    /// The chunk's predicate in the source's SQL (the table's base predicate
    /// ANDed with the chunk's), as the planner rendered it.
    pub predicate: &'a str,
}

/// Where a table's rows come from. Generic (not object-safe): callers take
/// `impl TableSource` or a concrete source.
pub trait TableSource {
    /// The columns of every table of `source`'s schema, in ordinal order.
    ///
    /// Errors: the source's (unreachable, rejected credentials, no such schema).
    fn describe(&self, source: &SourceConfig) -> impl Future<Output = Result<SourceCatalog>> + Send;

    /// Run one of the planner's aggregate queries (counts, minimum and
    /// maximum, group counts) and return its rows as text (NULL → `None`).
    ///
    /// Errors: the source's, kind from its error code.
    fn aggregate(&self, sql: &str) -> impl Future<Output = Result<JsonRows>> + Send;

    /// Stream the rows of one chunk as standard Arrow batches, in the order
    /// of `request.columns`; memory stays bounded whatever the chunk's size.
    ///
    /// Errors: the query's when it is refused; later ones in the stream.
    fn stream_chunk(&self, request: &ChunkRequest<'_>) -> impl Future<Output = Result<BatchStream>> + Send;
}

impl ChunkRequest<'_> {
    /// The chunk's query in Snowflake SQL (quoted identifiers).
    pub fn snowflake_sql(&self) -> String {
        let (database, schema, table) = self.table;
        let columns: Vec<String> = self.columns.iter().map(|c| sql::ident(c)).collect();
        format!("SELECT {} FROM {} WHERE {}", columns.join(", "), sql::table(database, schema, table), self.predicate)
    }
}

impl TableSource for SnowflakeSource {
    async fn describe(&self, source: &SourceConfig) -> Result<SourceCatalog> {
        plan::source_catalog(self, source).await
    }

    async fn aggregate(&self, sql: &str) -> Result<JsonRows> {
        self.execute(sql).await
    }

    async fn stream_chunk(&self, request: &ChunkRequest<'_>) -> Result<BatchStream> {
        self.stream_query(&request.snowflake_sql()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_request_renders_quoted_columns_table_and_predicate() {
        let columns = vec!["Visit Id".to_string(), "A\"B".to_string()];
        let request = ChunkRequest { table: ("DB", "S", "T"), columns: &columns, predicate: "1 = 1 AND (\"ID\" >= 5)" };
        assert_eq!(request.snowflake_sql(), r#"SELECT "Visit Id", "A""B" FROM "DB"."S"."T" WHERE 1 = 1 AND ("ID" >= 5)"#);
    }
}
