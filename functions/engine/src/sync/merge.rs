//! Per-table finalisation once every chunk of a table is done (the `merge`
//! step): derive the table's counters from its chunk rows, mark it
//! `completed` (or `failed` when chunks failed, with the first chunk error),
//! swap in the shadow table of a replaced table ([`crate::sync::replace`]) in
//! the same transaction as its `completed` status, `ANALYZE` it, restore the
//! secondary indexes `disable_index` dropped ([`crate::sync::indexes`]), and
//! record the run's outcome when tables failed.
//! Every part is idempotent, so merging again (a resume) is safe and retries
//! whatever did not finish: a swap not yet committed, a failed index restore.

use tokio_postgres::Client;

use crate::sync::status_postgres::PgStatusStore;
use crate::sync::status_store::StatusStore;
use crate::config::Config;
use crate::error::{from_postgres, Result};
use crate::contract::{MergeResponse, RunRequest, TableMerge};
use crate::sink;
use crate::sync::table_plan::TablePlan;
use crate::sync::status::run_status;
use crate::sync::{indexes, replace};

/// Finalise every table of a run and the run itself.
///
/// A table with failed or unfinished chunks is marked `failed` with the
/// first chunk error in `error_message` (its chunks stay retryable on
/// resume; a replaced table keeps its previous rows, and dropped indexes stay
/// recorded for the resume). The run ends `failed` when no table completed
/// and `partial` when some did (or an index could not be restored); when
/// every table completed the run stays `running`, because reconciliation
/// decides between `completed` and `mismatch` ([`StatusStore::record_reconcile`]).
pub async fn merge_run(config: &Config, request: &RunRequest) -> Result<MergeResponse> {
    let mut pg = sink::connect_status(config).await?;
    merge_with(&mut pg, request).await
}

/// [`merge_run`] on an existing connection.
pub async fn merge_with(pg: &mut Client, request: &RunRequest) -> Result<MergeResponse> {
    let run_id = request.run_id;
    PgStatusStore::new(pg).heartbeat(run_id).await?;
    let mut out = MergeResponse { run_id, tables: Vec::new() };
    let mut first_error: Option<String> = None;
    for t in PgStatusStore::new(pg).tables(run_id).await? {
        let plan: Option<TablePlan> = serde_json::from_value(t.plan.clone()).ok();
        let tx = pg.transaction().await.map_err(|e| from_postgres(e, "starting the merge transaction"))?;
        let tally = PgStatusStore::chunk_tally(&tx, &t.key).await?;
        let (total, done, failed, rows) = (tally.total, tally.completed, tally.failed, tally.rows);
        let chunk_error = tally.first_error.clone();
        let new_status = if done == total { "completed" } else { "failed" };
        if new_status == "completed" {
            if let Some(plan) = plan.as_ref().filter(|p| p.truncated) {
                // The previous rows are replaced only now, atomically with `completed`.
                replace::swap_in(&tx, plan, &t.key).await.map_err(|e| e.context(format!("replacing {}", plan.target_fqn())))?;
            }
        }
        let error = if new_status == "failed" {
            let pending = PgStatusStore::pending_indexes(&tx, &t.key).await.unwrap_or(0);
            let mut m = format!("{failed} chunk(s) failed and {} did not finish", total - done - failed);
            if let Some(c) = &chunk_error {
                m.push_str(&format!("; first failure: {c}"));
            }
            m.push_str("; fix the cause and rerun the same command to resume the run (only unfinished chunks are copied)");
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
        if let (None, Some(e)) = (&first_error, &error) {
            first_error = Some(format!("{}.{}: {e}", t.target_schema, t.target_table));
        }
        PgStatusStore::record_table_outcome(&tx, &t.key, new_status, &tally, error.as_deref()).await?;
        tx.commit().await.map_err(|e| from_postgres(e, "committing the table outcome"))?;
        crate::failpoints::check(crate::failpoints::MERGE_AFTER_TABLE)?;
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
                PgStatusStore::new(pg).set_table_error(&t.key, &msg).await?;
            }
            merged.indexes_restored = report.restored;
            merged.indexes_failed = report.failed;
            let target = sink::qualified(&t.target_schema, &t.target_table);
            pg.batch_execute(&format!("ANALYZE {target}")).await.map_err(|e| from_postgres(e, format!("ANALYZE {target}")))?;
        }
        out.tables.push(merged);
    }
    let completed = out.tables.iter().filter(|t| t.status == "completed").count();
    let index_failures = out.tables.iter().filter(|t| !t.indexes_failed.is_empty()).count();
    if completed < out.tables.len() {
        let failed = out.tables.len() - completed;
        let outcome = if completed == 0 { run_status::FAILED } else { run_status::PARTIAL };
        let message = format!("{failed} of {} table(s) failed; first: {}", out.tables.len(), first_error.unwrap_or_default());
        PgStatusStore::new(pg).finish_run(run_id, outcome, Some(&message)).await?;
    } else if index_failures > 0 {
        let message = format!("{index_failures} table(s) loaded but could not restore every index dropped by disable_index; resume the run to retry");
        PgStatusStore::new(pg).finish_run(run_id, run_status::PARTIAL, Some(&message)).await?;
    } else {
        PgStatusStore::new(pg).record_totals(run_id).await?;
    }

    Ok(out)
}
