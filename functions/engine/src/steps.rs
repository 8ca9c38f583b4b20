//! Every step of the nightly job, as one function each: the doors the Lambda
//! binaries and the local runner ([`crate::runner`]) walk through.
//!
//! | step | request | response | does |
//! | --- | --- | --- | --- |
//! | [`plan`] | [`PlanRequest`] | [`PlanResponse`] | picks chunks per table, writes status rows and the manifest |
//! | [`copy_chunk`] | [`ChunkItem`] | [`CopyChunkResponse`] | one chunk: source query → binary COPY, exactly once; staged tables: unload, one file, or the file manifest (`ChunkItem.staged`, `file_key`) |
//! | [`merge`] | [`RunRequest`] | [`MergeResponse`] | per-table finalisation: counts, ANALYZE, table status |
//! | [`reconcile`] | [`RunRequest`] | [`ReconcileResponse`] | counts and checksums on both sides; a mismatch is an error |
//! | [`conflict_create`] | [`ConflictCreateRequest`] | [`ConflictCreateResponse`] | conflict detection over the synced tables |
//! | [`dual_read`] | [`DualReadRequest`] | [`DualReadResponse`] | Snowflake's legacy conflict tables against the `conflict` schema, recorded in `dual_read_results` (an operation of the reconcile Lambda) |
//! | [`fail_run`] | [`FailRunRequest`] | [`FailRunRequest`] | marks the run failed (the state machine's Catch path) |
//!
//! The request and response types live in [`crate::contract`] and are
//! published as JSON Schema in `statemachines/contract.json`
//! (docs/architecture.md §4).

use crate::sync::status_postgres::PgStatusStore;
use crate::sync::status_store::StatusStore;
use crate::sync::status::run_status;
use crate::config::Config;
use crate::contract::{
    ChunkItem, ConflictCreateRequest, ConflictCreateResponse, CopyChunkResponse, DualReadRequest, DualReadResponse, FailRunRequest, MergeResponse, PlanRequest, PlanResponse,
    ReconcileResponse, RunRequest,
};
use crate::error::{Error, Result};
use crate::reconcile::TableReport;
use crate::sync::copy::Worker;

/// The `plan` step: plan (or resume) a run. See [`crate::sync::plan::plan_run`].
pub async fn plan(config: &Config, request: &PlanRequest) -> Result<PlanResponse> {
    crate::sync::plan::plan_run(config, request).await
}

/// The `copy-chunk` step with a fresh worker (one Lambda invocation = one
/// chunk). The local runner keeps workers and calls [`copy_chunk_on`].
///
/// Also refreshes the run's heartbeat (at most every
/// [`crate::sync::status::HEARTBEAT_MIN_INTERVAL_SECONDS`]), so a run whose
/// chunks are being copied is never taken for dead.
pub async fn copy_chunk(config: &Config, item: &ChunkItem) -> Result<CopyChunkResponse> {
    if let Some(crate::contract::StagedStep::FileManifest { uri }) = &item.staged {
        // The staged path's per-file manifest (docs/sync.md §13.7): status only, no source.
        let pg = crate::sink::connect_status(config).await?;
        let files = crate::sync::staged::write_file_manifest(&pg, item.run_id, uri).await?;
        return Ok(CopyChunkResponse { run_id: item.run_id, source_table: format!("{files} staged file(s)"), chunk_id: item.chunk_id, ..Default::default() });
    }
    let mut worker = Worker::connect(config, &item.source_name).await?;
    if let Err(e) = PgStatusStore::new(&worker.pg).touch(item.run_id).await {
        tracing::warn!(run_id = %item.run_id, error = %e, "could not refresh the run heartbeat");
    }
    copy_chunk_on(config, &mut worker, item).await
}

/// Copy one chunk on `worker` by its table's source mode (docs/sync.md §13):
/// a staged table's chunk goes to [`crate::sync::staged::copy_staged_chunk`],
/// any other to [`crate::sync::copy::copy_chunk`], so the direct copy knows
/// nothing of staging. The Lambda step and the local runner share it.
///
/// Errors: [`crate::ErrorKind::ConfigInvalid`] for an unknown source;
/// otherwise those of the copy it hands the chunk to.
pub async fn copy_chunk_on(config: &Config, worker: &mut crate::sync::copy::Worker, item: &ChunkItem) -> Result<CopyChunkResponse> {
    let s = config.source(&item.source_name)?;
    let staged = s.tables.iter().find(|t| t.source == item.source_table).is_some_and(|t| config.source_mode(s, t) == crate::config::SourceMode::Staged);
    if staged {
        crate::sync::staged::copy_staged_chunk(config, worker, item).await
    } else {
        crate::sync::copy::copy_chunk(config, worker, item).await
    }
}

/// The `merge` step. See [`crate::sync::merge::merge_run`].
pub async fn merge(config: &Config, request: &RunRequest) -> Result<MergeResponse> {
    crate::sync::merge::merge_run(config, request).await
}

/// The `reconcile` step: reconcile every table of the run, record the run's
/// outcome (`completed` when nothing differs, `mismatch` when a table
/// differs, `failed` when one could not be checked; see
/// [`StatusStore::record_reconcile`]) and return the summary with
/// the per-table reports.
///
/// Errors: [`crate::ErrorKind::ReconcileMismatch`] only through
/// [`crate::reconcile::require_match`], which callers apply when a mismatch
/// must fail the step (the Lambda does; `thaw reconcile` maps it to exit 3).
pub async fn reconcile(config: &Config, request: &RunRequest) -> Result<(ReconcileResponse, Vec<TableReport>)> {
    reconcile_with(config, request, crate::reconcile::ReconcileOptions::default()).await
}

/// [`reconcile`] with explicit options (`thaw run --reconcile-full`).
pub async fn reconcile_with(config: &Config, request: &RunRequest, options: crate::reconcile::ReconcileOptions) -> Result<(ReconcileResponse, Vec<TableReport>)> {
    crate::failpoints::check(crate::failpoints::RECONCILE_STEP)?;
    let (response, details) = crate::reconcile::reconcile_run_with(config, request, options).await?;
    let pg = crate::sink::connect_status(config).await?;
    crate::reconcile::record_outcome(&pg, request.run_id, &response).await?;
    Ok((response, details))
}

/// The `conflict-create` step: detect conflicts over the synced analytics
/// tables and maintain the conflict schema: incremental (the keys touched
/// since the last successful run) unless `request.full`
/// (docs/conflicts.md §D1). Returns the detection summary (small: counts,
/// mode and seconds).
///
/// Errors: [`crate::ErrorKind::ConfigInvalid`] when the config has no
/// `conflicts` section.
pub async fn conflict_create(config: &Config, request: &ConflictCreateRequest) -> Result<ConflictCreateResponse> {
    conflict_create_interruptible(config, request, None).await
}

/// [`conflict_create`], stopped by `cancel` (the CLI's signals): see
/// [`crate::conflicts::run_interruptible`].
pub async fn conflict_create_interruptible(
    config: &Config,
    request: &ConflictCreateRequest,
    cancel: Option<&crate::cancel::Cancel>,
) -> Result<ConflictCreateResponse> {
    let Some(settings) = &config.conflicts else {
        return Err(Error::config("conflict detection needs a 'conflicts' section in the config (database, time_zone)"));
    };
    // docs/conflicts.md §D1: incremental by default; the run falls back to a
    // full window itself when there is no watermark or the settings changed.
    let mode = if request.full { crate::conflicts::DetectionMode::Full } else { crate::conflicts::DetectionMode::Incremental };
    let mut pg = crate::sink::connect_configured(&config.postgres, &settings.database, "conflicts.database").await?;
    crate::conflicts::run_interruptible(&mut pg, settings, mode, cancel).await
}

/// The `dual-read` step (docs/reconcile.md §10): compare Snowflake's legacy
/// conflict tables (`request.snowflake_database` / `snowflake_schema`,
/// default `CONFLICTREPORT.PUBLIC`) with PostgreSQL's `conflict` schema and
/// record the outcome in `migration_status.dual_read_results`, as
/// `thaw dual-read` does. A difference or a failed comparison is the
/// response's `status` (`mismatch`, `error`), never an error: the sync run's
/// status is not this step's to change.
///
/// Errors: [`crate::ErrorKind::ConfigInvalid`] without a `conflicts`
/// section; the status database unreachable or the result not stored.
pub async fn dual_read(config: &Config, request: &DualReadRequest) -> Result<DualReadResponse> {
    let defaults = crate::reconcile::dual_read::DualReadOptions::default();
    let options = crate::reconcile::dual_read::DualReadOptions {
        sf_database: request.snowflake_database.clone().unwrap_or(defaults.sf_database),
        sf_schema: request.snowflake_schema.clone().unwrap_or(defaults.sf_schema),
    };
    let report = crate::reconcile::dual_read::run(config, &options).await?;
    Ok(DualReadResponse::from(&report))
}

/// The `fail-run` step: mark the run failed with the state machine's error
/// (`mismatch` when the error is `ReconcileMismatch`: the reconcile step
/// already recorded which tables differ). A run the reconcile step already
/// recorded `failed` because it could not check some tables keeps that
/// record (its message names every table and starts with
/// [`run_status::RECONCILE_UNCHECKED`], which keeps the finished run from
/// being resumed automatically). A request without a run id (plan itself
/// failed) is a no-op. Returns the request.
pub async fn fail_run(config: &Config, request: FailRunRequest) -> Result<FailRunRequest> {
    if let Some(run_id) = request.run_id {
        let pg = crate::sink::connect_status(config).await?;
        let recorded = pg
            .query_opt("SELECT status, coalesce(error_message, '') FROM migration_status.migration_runs WHERE run_id = $1", &[&run_id])
            .await
            .map_err(|e| crate::error::from_postgres(e, format!("reading run {run_id}")))?;
        if let Some(row) = recorded {
            let (status, error): (String, String) = (row.get(0), row.get(1));
            if status == run_status::FAILED && error.starts_with(run_status::RECONCILE_UNCHECKED) {
                return Ok(request);
            }
        }
        let cause: String = request.cause.chars().take(2000).collect();
        let status = if request.error == crate::ErrorKind::ReconcileMismatch.name() { run_status::MISMATCH } else { run_status::FAILED };
        PgStatusStore::new(&pg).finish_run(run_id, status, Some(&format!("{}: {cause}", request.error))).await?;
    }
    Ok(request)
}
