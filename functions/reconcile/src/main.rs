//! Lambda `reconcile`: [`RunRequest`] → [`ReconcileResponse`]; a mismatch is
//! the error `ReconcileMismatch` so the state machine's Catch sees it. A clean
//! reconcile emits `Thaw/HoursSinceLastVerifiedSync` = 0 (EMF, dimension
//! `Environment`), the datapoint the data-freshness alarm waits for; every
//! reconcile emits `Thaw/ReconcileFreshnessHours`, the age of the least
//! recently verified slice.
#![recursion_limit = "256"]

use thaw_engine::contract::{ReconcileResponse, RunRequest};
use thaw_lambda::{serve, HandlerError};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    serve(|config, request: RunRequest| async move {
        let (response, _details) = thaw_engine::steps::reconcile(&config, &request).await?;
        // Age of the least recently verified slice (docs/reconcile.md §5), whatever the outcome.
        response.freshness_hours.inspect(|h| thaw_lambda::metrics::emit("ReconcileFreshnessHours", *h));
        thaw_engine::reconcile::require_match(&response)?;
        // A clean reconcile is a verified sync: the freshness alarm counts these datapoints.
        thaw_lambda::metrics::emit_verified_sync(0.0);
        Ok::<ReconcileResponse, HandlerError>(response)
    })
    .await
}
