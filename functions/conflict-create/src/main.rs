//! Lambda `conflict-create`: [`ConflictCreateRequest`] → conflict summary.
#![recursion_limit = "256"]

use thaw_engine::handlers::ConflictCreateRequest;
use thaw_lambda::{serve, HandlerError};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    serve(|config, request: ConflictCreateRequest| async move {
        Ok::<serde_json::Value, HandlerError>(thaw_engine::run::conflict_step(&config, &request).await?)
    })
    .await
}
