//! Per-table finalisation once every chunk of a table is done (the `merge`
//! step): derive the table's counters from its chunk rows, mark it
//! `completed` (or `failed` when chunks failed), `ANALYZE` it, and finish the
//! run. Index restore belongs here too (a later issue).

use tokio_postgres::Client;

use crate::config::Config;
use crate::error::{from_postgres, Result};
use crate::contract::{MergeResponse, RunRequest, TableMerge};
use crate::sink;
use crate::sync::status;

/// Finalise every table of a run and the run itself.
///
/// A table with failed or unfinished chunks is marked `failed` (its chunks
/// stay retryable on resume); the run ends `completed` when every table
/// completed, `partial` otherwise.
pub async fn merge_run(config: &Config, request: &RunRequest) -> Result<MergeResponse> {
    let pg = sink::connect(&config.postgres, config.status_database()).await?;
    merge_with(&pg, request).await
}

/// [`merge_run`] on an existing connection.
pub async fn merge_with(pg: &Client, request: &RunRequest) -> Result<MergeResponse> {
    let run_id = request.run_id;
    status::heartbeat(pg, run_id).await?;
    let mut out = MergeResponse { run_id, tables: Vec::new() };
    for t in status::tables(pg, run_id).await? {
        let row = pg
            .query_one(
                "SELECT count(*)::int, count(*) FILTER (WHERE status = 'completed')::int, count(*) FILTER (WHERE status = 'failed')::int, \
                        coalesce(sum(rows_inserted + rows_updated), 0)::bigint \
                 FROM migration_status.migration_chunk_status WHERE run_id = $1 AND source_database = $2 AND source_schema = $3 AND source_table = $4",
                &[&run_id, &t.key.source_database, &t.key.source_schema, &t.key.source_table],
            )
            .await
            .map_err(|e| from_postgres(e, "summing chunk results"))?;
        let (total, done, failed, rows): (i32, i32, i32, i64) = (row.get(0), row.get(1), row.get(2), row.get(3));
        let new_status = if done == total { "completed" } else { "failed" };
        let error = (new_status == "failed").then(|| format!("{failed} chunk(s) failed and {} did not finish; resume the run to retry them", total - done - failed));
        pg.execute(
            "UPDATE migration_status.migration_table_status SET status = $5, total_chunks = $6, completed_chunks = $7, failed_chunks = $8, \
               total_rows_copied = $9, error_message = $10, completed_at = now() \
             WHERE run_id = $1 AND source_database = $2 AND source_schema = $3 AND source_table = $4",
            &[&run_id, &t.key.source_database, &t.key.source_schema, &t.key.source_table, &new_status, &total, &done, &failed, &rows, &error],
        )
        .await
        .map_err(|e| from_postgres(e, "recording the table outcome"))?;
        if new_status == "completed" {
            let target = sink::qualified(&t.target_schema, &t.target_table);
            pg.batch_execute(&format!("ANALYZE {target}")).await.map_err(|e| from_postgres(e, format!("ANALYZE {target}")))?;
        }
        out.tables.push(TableMerge { target: format!("{}.{}", t.target_schema, t.target_table), rows_copied: rows as u64, status: new_status.into() });
    }
    let all_done = out.tables.iter().all(|t| t.status == "completed");
    status::finish_run(pg, run_id, if all_done { "completed" } else { "partial" }, None).await?;
    Ok(out)
}
