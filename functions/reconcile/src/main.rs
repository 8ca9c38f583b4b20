//! Lambda `reconcile`: [`RunRequest`] → [`ReconcileResponse`]; a mismatch is
//! the error `ReconcileMismatch` so the state machine's Catch sees it.
#![recursion_limit = "256"]

use thaw_engine::handlers::{ReconcileResponse, RunRequest};
use thaw_lambda::{serve, HandlerError};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    serve(|config, request: RunRequest| async move {
        let (response, _details) = thaw_engine::reconcile::reconcile_run(&config, &request).await?;
        thaw_engine::reconcile::require_match(&response)?;
        Ok::<ReconcileResponse, HandlerError>(response)
    })
    .await
}
