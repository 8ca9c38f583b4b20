//! Per-table finalisation once every chunk of a table is done (the `merge`
//! step): derive the table's counters from its chunk rows, mark it
//! `completed` (or `failed` when chunks failed, with the first chunk error),
//! `ANALYZE` it, and record the run's outcome when tables failed. Index
//! restore belongs here too (a later issue).

use tokio_postgres::Client;

use crate::config::Config;
use crate::error::{from_postgres, Result};
use crate::contract::{MergeResponse, RunRequest, TableMerge};
use crate::sink;
use crate::sync::status::{self, run_status};

/// Finalise every table of a run.
///
/// A table with failed or unfinished chunks is marked `failed` with the
/// first chunk error in `error_message` (its chunks stay retryable on
/// resume). The run ends `failed` when no table completed and `partial` when
/// some did; when every table completed the run stays `running`, because
/// reconciliation decides between `completed` and `mismatch`
/// ([`status::record_reconcile`]).
pub async fn merge_run(config: &Config, request: &RunRequest) -> Result<MergeResponse> {
    let pg = sink::connect(&config.postgres, config.status_database()).await?;
    merge_with(&pg, request).await
}

/// [`merge_run`] on an existing connection.
pub async fn merge_with(pg: &Client, request: &RunRequest) -> Result<MergeResponse> {
    let run_id = request.run_id;
    status::heartbeat(pg, run_id).await?;
    let mut out = MergeResponse { run_id, tables: Vec::new() };
    let mut first_error: Option<String> = None;
    for t in status::tables(pg, run_id).await? {
        let row = pg
            .query_one(
                "SELECT count(*)::int, count(*) FILTER (WHERE status = 'completed')::int, count(*) FILTER (WHERE status = 'failed')::int, \
                        coalesce(sum(rows_inserted + rows_updated), 0)::bigint, \
                        (SELECT 'chunk ' || chunk_id || ': ' || error_message FROM migration_status.migration_chunk_status \
                          WHERE run_id = $1 AND source_database = $2 AND source_schema = $3 AND source_table = $4 AND status = 'failed' \
                          ORDER BY chunk_id LIMIT 1) \
                 FROM migration_status.migration_chunk_status WHERE run_id = $1 AND source_database = $2 AND source_schema = $3 AND source_table = $4",
                &[&run_id, &t.key.source_database, &t.key.source_schema, &t.key.source_table],
            )
            .await
            .map_err(|e| from_postgres(e, "summing chunk results"))?;
        let (total, done, failed, rows): (i32, i32, i32, i64) = (row.get(0), row.get(1), row.get(2), row.get(3));
        let chunk_error: Option<String> = row.get(4);
        let new_status = if done == total { "completed" } else { "failed" };
        let error = (new_status == "failed").then(|| {
            let mut e = format!("{failed} chunk(s) failed and {} did not finish", total - done - failed);
            if let Some(c) = &chunk_error {
                e.push_str(&format!("; first failure: {c}"));
            }
            e.push_str("; fix the cause and rerun the same command to resume the run (only unfinished chunks are copied)");
            e
        });
        if let (None, Some(e)) = (&first_error, &error) {
            first_error = Some(format!("{}.{}: {e}", t.target_schema, t.target_table));
        }
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
    let completed = out.tables.iter().filter(|t| t.status == "completed").count();
    if completed < out.tables.len() {
        let failed = out.tables.len() - completed;
        let outcome = if completed == 0 { run_status::FAILED } else { run_status::PARTIAL };
        let message = format!("{failed} of {} table(s) failed; first: {}", out.tables.len(), first_error.unwrap_or_default());
        status::finish_run(pg, run_id, outcome, Some(&message)).await?;
    } else {
        status::record_totals(pg, run_id).await?;
    }
    Ok(out)
}
