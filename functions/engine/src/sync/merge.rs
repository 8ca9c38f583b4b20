//! Per-table finalisation once every chunk of a table is done (the `merge`
//! step): derive the table's counters from its chunk rows, mark it
//! `completed` (or `failed` when chunks failed), swap in the shadow table of
//! a replaced table ([`crate::sync::replace`]) in the same transaction as its
//! `completed` status, `ANALYZE` it, restore the secondary indexes
//! `disable_index` dropped ([`crate::sync::indexes`]), and finish the run.
//! Every part is idempotent, so merging again (a resume) is safe and retries
//! whatever did not finish: a swap not yet committed, a failed index restore.

use tokio_postgres::Client;

use crate::config::Config;
use crate::error::{from_postgres, Result};
use crate::contract::{MergeResponse, RunRequest, TableMerge};
use crate::sink;
use crate::sync::plan::TablePlan;
use crate::sync::{indexes, replace, status};

/// Finalise every table of a run and the run itself.
///
/// A table with failed or unfinished chunks is marked `failed` (its chunks
/// stay retryable on resume; a replaced table keeps its previous rows, and
/// dropped indexes stay recorded for the resume); the run ends `completed`
/// when every table completed, `partial` otherwise.
pub async fn merge_run(config: &Config, request: &RunRequest) -> Result<MergeResponse> {
    let mut pg = sink::connect(&config.postgres, config.status_database()).await?;
    merge_with(&mut pg, request).await
}

/// [`merge_run`] on an existing connection.
pub async fn merge_with(pg: &mut Client, request: &RunRequest) -> Result<MergeResponse> {
    let run_id = request.run_id;
    status::heartbeat(pg, run_id).await?;
    let mut out = MergeResponse { run_id, tables: Vec::new() };
    for t in status::tables(pg, run_id).await? {
        let plan: Option<TablePlan> = serde_json::from_value(t.plan.clone()).ok();
        let tx = pg.transaction().await.map_err(|e| from_postgres(e, "starting the merge transaction"))?;
        let row = tx
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
        if new_status == "completed" {
            if let Some(plan) = plan.as_ref().filter(|p| p.truncated) {
                // The previous rows are replaced only now, atomically with `completed`.
                replace::swap_in(&tx, plan, &t.key).await.map_err(|e| e.context(format!("replacing {}", plan.target_fqn())))?;
            }
        }
        let error = if new_status == "failed" {
            let pending = indexes::pending(&tx, &t.key).await.unwrap_or(0);
            let mut m = format!("{failed} chunk(s) failed and {} did not finish; resume the run to retry them", total - done - failed);
            if plan.as_ref().is_some_and(|p| p.truncated) {
                m.push_str("; the target keeps its previous rows until every chunk has loaded");
            }
            if pending > 0 {
                m.push_str(&format!("; {pending} secondary index(es) dropped by disable_index are restored when the table completes"));
            }
            Some(m)
        } else {
            None
        };
        tx.execute(
            "UPDATE migration_status.migration_table_status SET status = $5, total_chunks = $6, completed_chunks = $7, failed_chunks = $8, \
               total_rows_copied = $9, error_message = $10, completed_at = now() \
             WHERE run_id = $1 AND source_database = $2 AND source_schema = $3 AND source_table = $4",
            &[&run_id, &t.key.source_database, &t.key.source_schema, &t.key.source_table, &new_status, &total, &done, &failed, &rows, &error],
        )
        .await
        .map_err(|e| from_postgres(e, "recording the table outcome"))?;
        tx.commit().await.map_err(|e| from_postgres(e, "committing the table outcome"))?;
        let mut merged = TableMerge {
            target: format!("{}.{}", t.target_schema, t.target_table),
            rows_copied: rows as u64,
            status: new_status.into(),
            ..Default::default()
        };
        if new_status == "completed" {
            let report = indexes::restore(pg, &t.key).await?;
            if !report.failed.is_empty() {
                let msg = format!("{} index(es) could not be restored (retried on resume): {}", report.failed.len(), report.failed.join("; "));
                pg.execute(
                    "UPDATE migration_status.migration_table_status SET error_message = $5 \
                     WHERE run_id = $1 AND source_database = $2 AND source_schema = $3 AND source_table = $4",
                    &[&run_id, &t.key.source_database, &t.key.source_schema, &t.key.source_table, &msg],
                )
                .await
                .map_err(|e| from_postgres(e, "recording the failed index restore"))?;
            }
            merged.indexes_restored = report.restored;
            merged.indexes_failed = report.failed;
            let target = sink::qualified(&t.target_schema, &t.target_table);
            pg.batch_execute(&format!("ANALYZE {target}")).await.map_err(|e| from_postgres(e, format!("ANALYZE {target}")))?;
        }
        out.tables.push(merged);
    }
    let all_done = out.tables.iter().all(|t| t.status == "completed" && t.indexes_failed.is_empty());
    status::finish_run(pg, run_id, if all_done { "completed" } else { "partial" }, None).await?;

    Ok(out)
}
