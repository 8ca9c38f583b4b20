//! Key checks for first loads (docs/sync.md §4.1).
//!
//! A first load (empty target, or a replaced one) is written with plain
//! COPY. When the target has no unique index on `uniqueness_columns`,
//! duplicate or NULL keys would go in silently and break the next run
//! (no upsert can match them; creating the index fails). So before anything
//! is written, one aggregate query in Snowflake looks for keys that occur
//! more than once or are NULL over the rows the run will copy, and the plan
//! fails with the count and a few examples, leaving the target as it was.

use crate::error::{Error, ErrorKind, Result};
use crate::source::{sql, SnowflakeSource};
use crate::sync::table_plan::TablePlan;

/// How many offending keys an error message shows.
pub const EXAMPLES: usize = 5;

/// Check that the source columns `key_columns` (Snowflake names) are unique
/// and never NULL over the rows `plan` will copy (its filter and watermark).
///
/// Errors: [`ErrorKind::ChunkFailed`] naming the table, the key columns, how
/// many keys are duplicated or NULL (and how many rows carry them) and up to
/// [`EXAMPLES`] of them with their counts; Snowflake errors with their kind.
pub async fn check_source_keys(sf: &SnowflakeSource, plan: &TablePlan, key_columns: &[String]) -> Result<()> {
    if key_columns.is_empty() {
        return Ok(());
    }
    let keys: Vec<String> = key_columns.iter().map(|k| sql::ident(k)).collect();
    let any_null: Vec<String> = keys.iter().map(|k| format!("{k} IS NULL")).collect();
    let bad = format!(
        "SELECT {k}, COUNT(*) AS n FROM {fqn} WHERE {base} GROUP BY {k} HAVING COUNT(*) > 1 OR {nulls}",
        k = keys.join(", "),
        fqn = plan.source_fqn(),
        base = plan.base_predicate(),
        nulls = any_null.join(" OR ")
    );
    let totals = sf.execute(&format!("SELECT COUNT(*), COALESCE(SUM(n), 0) FROM ({bad}) AS bad_keys")).await?;
    let parse = |v: Option<&Option<String>>| v.cloned().flatten().and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0) as u64;
    let row = totals.first();
    let (bad_keys, bad_rows) = (parse(row.and_then(|r| r.first())), parse(row.and_then(|r| r.get(1))));
    if bad_keys == 0 {
        return Ok(());
    }
    let examples = sf.execute(&format!("{bad} ORDER BY n DESC LIMIT {EXAMPLES}")).await?;
    let shown: Vec<String> = examples
        .iter()
        .map(|r| {
            let values: Vec<String> = r[..keys.len().min(r.len())]
                .iter()
                .map(|v| match v {
                    Some(s) => format!("'{}'", s.chars().take(60).collect::<String>()),
                    None => "NULL".into(),
                })
                .collect();
            let n = r.get(keys.len()).cloned().flatten().unwrap_or_default();
            format!("({}) ×{n}", values.join(", "))
        })
        .collect();
    Err(Error::new(
        ErrorKind::ChunkFailed,
        format!(
            "first load of {} from {}: {bad_keys} value(s) of the key ({}) are duplicated or NULL in Snowflake ({bad_rows} rows), e.g. {}. \
             Loaded as is they would break the next run (upserts need unique, non-NULL keys). Fix the source rows, exclude them with \
             source_filter, or correct uniqueness_columns; nothing was written to the target.",
            plan.target_fqn(),
            plan.source_fqn(),
            key_columns.join(", "),
            shown.join(", ")
        ),
    ))
}
