//! Lambda `merge`: [`RunRequest`] → [`MergeResponse`] (per-table finalisation).
#![recursion_limit = "256"]

use thaw_engine::contract::{MergeResponse, RunRequest};
use thaw_lambda::{serve, HandlerError};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    serve(|config, request: RunRequest| async move {
        Ok::<MergeResponse, HandlerError>(thaw_engine::steps::merge(&config, &request).await?)
    })
    .await
}
