//! [`CopyWriter`]: standard Arrow batches into one binary `COPY … FROM STDIN`
//! as they arrive (docs/sync.md §5.6). new / write(batch) / finish → rows.
//!
//! The writer holds at most [`FLUSH_BYTES`] of encoded rows (plus one
//! batch's worth when a batch is larger) before handing them to the
//! connection, so memory does not grow with the number of rows copied.

use std::pin::Pin;

use arrow_array::RecordBatch;
use bytes::{Bytes, BytesMut};
use futures::SinkExt;
use tokio_postgres::{CopyInSink, Transaction};

use super::encode::CopyEncoder;
use crate::error::{from_postgres, Result};

/// Encoded rows are sent to PostgreSQL every this many bytes (1 MiB).
pub const FLUSH_BYTES: usize = 1 << 20;

/// One running binary COPY into a table.
pub struct CopyWriter {
    sink: Pin<Box<CopyInSink<Bytes>>>,
    encoder: CopyEncoder,
    buf: BytesMut,
    /// The COPY's target, for messages.
    target: String,
}

impl CopyWriter {
    /// Start `COPY target (columns) FROM STDIN (FORMAT binary)` in
    /// `transaction` with `encoder`, whose columns are in the order of
    /// `columns` (quoted identifiers). The rows become visible when the
    /// caller commits.
    ///
    /// Errors: the server's refusal of the COPY (kind from its SQLSTATE).
    pub async fn new(transaction: &Transaction<'_>, target: &str, columns: &[String], encoder: CopyEncoder) -> Result<CopyWriter> {
        let sql = format!("COPY {target} ({}) FROM STDIN (FORMAT binary)", columns.join(", "));
        let sink = transaction.copy_in::<_, Bytes>(&sql).await.map_err(|e| from_postgres(e, format!("starting COPY into {target}")))?;
        let mut buf = BytesMut::with_capacity(FLUSH_BYTES + 64 * 1024);
        CopyEncoder::header(&mut buf);
        Ok(CopyWriter { sink: Box::pin(sink), encoder, buf, target: target.to_string() })
    }

    /// Encode `batch` and send what has accumulated once it reaches [`FLUSH_BYTES`].
    ///
    /// Errors: the encoder's (a value the target cannot hold: `ChunkFailed`
    /// naming table, column, key and value); a failed send (kind from the
    /// connection error). After an error drop the writer: the COPY is
    /// abandoned and its transaction must roll back.
    pub async fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.encoder.encode_record_batch(batch, &mut self.buf)?;
        if self.buf.len() >= FLUSH_BYTES {
            let chunk = self.buf.split().freeze();
            self.sink.send(chunk).await.map_err(|e| from_postgres(e, format!("streaming COPY into {}", self.target)))?;
        }
        Ok(())
    }

    /// Send the trailer and finish the COPY; returns the rows PostgreSQL copied.
    ///
    /// Errors: the server's (constraint violations, a broken connection).
    pub async fn finish(mut self) -> Result<u64> {
        CopyEncoder::trailer(&mut self.buf);
        let rest = self.buf.split().freeze();
        self.sink.send(rest).await.map_err(|e| from_postgres(e, format!("streaming COPY into {}", self.target)))?;
        self.sink.as_mut().finish().await.map_err(|e| from_postgres(e, format!("finishing COPY into {}", self.target)))
    }
}
