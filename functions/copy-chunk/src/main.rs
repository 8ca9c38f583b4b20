//! Lambda `copy-chunk`: one manifest [`ChunkItem`] → [`CopyChunkResponse`].
//! Connections are opened per invocation; the chunk commits exactly once.
#![recursion_limit = "256"]

use thaw_engine::contract::{ChunkItem, CopyChunkResponse};
use thaw_lambda::{serve, HandlerError};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    serve(|config, item: ChunkItem| async move {
        Ok::<CopyChunkResponse, HandlerError>(thaw_engine::steps::copy_chunk(&config, &item).await?)
    })
    .await
}
