//! Lambda `fail-run`: the state machine's failure path marks the run failed
//! in `migration_status` ([`FailRunRequest`]) before notifying.
#![recursion_limit = "256"]

use thaw_engine::contract::FailRunRequest;
use thaw_lambda::{serve, HandlerError};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    serve(|config, request: FailRunRequest| async move {
        Ok::<FailRunRequest, HandlerError>(thaw_engine::steps::fail_run(&config, request).await?)
    })
    .await
}
