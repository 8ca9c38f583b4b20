//! Lambda `conflict-create`: [`ConflictCreateRequest`] → conflict summary.
#![recursion_limit = "256"]

use thaw_engine::contract::{ConflictCreateRequest, ConflictCreateResponse};
use thaw_lambda::{serve, HandlerError};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    serve(|config, request: ConflictCreateRequest| async move {
        Ok::<ConflictCreateResponse, HandlerError>(thaw_engine::steps::conflict_create(&config, &request).await?)
    })
    .await
}
