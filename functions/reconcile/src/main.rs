//! Lambda `reconcile`, two operations chosen by the event
//! ([`ReconcileLambdaRequest`]):
//!
//! * **reconcile** ([`RunRequest`] → [`ReconcileResponse`]): a mismatch is
//!   the error `ReconcileMismatch` so the state machine's Catch sees it. A
//!   clean reconcile emits `Thaw/HoursSinceLastVerifiedSync` = 0 (EMF,
//!   dimension `Environment`), the datapoint the data-freshness alarm waits
//!   for; every reconcile emits `Thaw/ReconcileFreshnessHours`, the age of
//!   the least recently verified slice (the reconcile-freshness alarm).
//! * **dual-read** (`"operation": "dual-read"`, [`DualReadRequest`] →
//!   [`DualReadResponse`]; docs/reconcile.md §10): a difference or a failed
//!   comparison is the response's `status`; every invocation emits
//!   `Thaw/DualReadProblems` (0 when the comparison was clean, 1 otherwise,
//!   an error of the step included), the dual-read alarm's metric.
#![recursion_limit = "256"]

use thaw_engine::contract::{DualReadRequest, DualReadResponse, ReconcileLambdaRequest, ReconcileResponse, RunRequest};
use thaw_lambda::{serve, HandlerError};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    serve(|config, event: serde_json::Value| async move {
        let response = match ReconcileLambdaRequest::from_event(event)? {
            ReconcileLambdaRequest::Reconcile(request) => serde_json::to_value(reconcile(&config, &request).await?),
            ReconcileLambdaRequest::DualRead(request) => serde_json::to_value(dual_read(&config, &request).await?),
        };
        response.map_err(|e| HandlerError(thaw_engine::Error::internal(format!("the response does not serialise: {e}"))))
    })
    .await
}

async fn reconcile(config: &thaw_engine::config::Config, request: &RunRequest) -> Result<ReconcileResponse, HandlerError> {
    let (response, _details) = thaw_engine::steps::reconcile(config, request).await?;
    // Age of the least recently verified slice (docs/reconcile.md §5), whatever the outcome.
    response.freshness_hours.inspect(|h| thaw_lambda::metrics::emit("ReconcileFreshnessHours", *h));
    thaw_engine::reconcile::require_match(&response)?;
    // A clean reconcile is a verified sync: the freshness alarm counts these datapoints.
    thaw_lambda::metrics::emit_verified_sync(0.0);
    Ok(response)
}

async fn dual_read(config: &thaw_engine::config::Config, request: &DualReadRequest) -> Result<DualReadResponse, HandlerError> {
    let outcome = thaw_engine::steps::dual_read(config, request).await;
    let clean = matches!(&outcome, Ok(r) if r.status == "ok");
    thaw_lambda::metrics::emit("DualReadProblems", if clean { 0.0 } else { 1.0 });
    Ok(outcome?)
}
