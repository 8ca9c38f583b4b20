//! Lambda `copy-chunk`: one manifest [`ChunkItem`] → [`CopyChunkResponse`].
//! Connections are opened per invocation; the chunk commits exactly once.
#![recursion_limit = "256"]

use thaw_engine::copy::{copy_chunk, Worker};
use thaw_engine::handlers::{ChunkItem, CopyChunkResponse};
use thaw_lambda::{serve, HandlerError};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    serve(|config, item: ChunkItem| async move {
        let mut worker = Worker::connect(&config, &item.source_name).await?;
        Ok::<CopyChunkResponse, HandlerError>(copy_chunk(&config, &mut worker, &item).await?)
    })
    .await
}
