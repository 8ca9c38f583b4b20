//! Lambda `plan`: [`PlanRequest`] (the execution input) → [`PlanResponse`].
#![recursion_limit = "256"]

use thaw_engine::contract::{PlanRequest, PlanResponse};
use thaw_lambda::{serve, HandlerError};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    serve(|config, request: PlanRequest| async move {
        Ok::<PlanResponse, HandlerError>(thaw_engine::steps::plan(&config, &request).await?)
    })
    .await
}
