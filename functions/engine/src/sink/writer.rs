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
use super::FLUSH_BYTES;
use crate::error::{from_postgres, Result};
use crate::reconcile::row_hash::{RowHash, RowHasher};
use crate::reconcile::side_table;

/// One running binary COPY into a table.
pub struct CopyWriter {
    sink: Pin<Box<CopyInSink<Bytes>>>,
    encoder: CopyEncoder,
    buf: BytesMut,
    /// The COPY's target, for messages.
    target: String,
    /// Row hashes of the rows written (docs/reconcile.md §4.2).
    row_hashes: RowHashes,
}

/// What the writer does with the row hashes of the rows it writes.
enum RowHashes {
    /// None computed.
    Off,
    /// Computed and kept (for the side table's COPY after this one).
    Keep(Box<RowHasher>, Vec<RowHash>),
    /// Computed and written as the staging table's extra columns
    /// ([`side_table::STAGING_COLUMNS`]).
    Columns(Box<RowHasher>),
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
        Ok(CopyWriter { sink: Box::pin(sink), encoder, buf, target: target.to_string(), row_hashes: RowHashes::Off })
    }

    /// Also compute each written row's hash with `hasher` and keep them for
    /// [`Self::finish_with_row_hashes`] (28 bytes per row of the COPY).
    pub fn keeping_row_hashes(mut self, hasher: RowHasher) -> Self {
        self.row_hashes = RowHashes::Keep(Box::new(hasher), Vec::new());
        self
    }

    /// Also compute each written row's hash with `hasher` and write it as
    /// the row's last three columns ([`side_table::STAGING_COLUMNS`]): the
    /// encoder and the COPY's column list must end with
    /// [`side_table::staging_pairs`].
    pub fn with_row_hash_columns(mut self, hasher: RowHasher) -> Self {
        self.row_hashes = RowHashes::Columns(Box::new(hasher));
        self
    }

    /// Encode `batch` and send what has accumulated once it reaches [`FLUSH_BYTES`].
    ///
    /// Errors: the encoder's (a value the target cannot hold: `ChunkFailed`
    /// naming table, column, key and value); a failed send (kind from the
    /// connection error). After an error drop the writer: the COPY is
    /// abandoned and its transaction must roll back.
    pub async fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        match &mut self.row_hashes {
            RowHashes::Off => {
                self.encoder.encode_record_batch(batch, &mut self.buf)?;
            }
            RowHashes::Keep(hasher, kept) => {
                hasher.hash_batch(batch, kept)?;
                self.encoder.encode_record_batch(batch, &mut self.buf)?;
            }
            RowHashes::Columns(hasher) => {
                let mut hashes = Vec::with_capacity(batch.num_rows());
                hasher.hash_batch(batch, &mut hashes)?;
                let mut columns = batch.columns().to_vec();
                columns.extend(side_table::staging_arrays(&hashes)?);
                self.encoder.encode_batch(&columns, &mut self.buf)?;
            }
        }
        if self.buf.len() >= FLUSH_BYTES {
            let chunk = self.buf.split().freeze();
            self.sink.send(chunk).await.map_err(|e| from_postgres(e, format!("streaming COPY into {}", self.target)))?;
        }
        Ok(())
    }

    /// Send the trailer and finish the COPY; returns the rows PostgreSQL copied.
    ///
    /// Errors: the server's (constraint violations, a broken connection).
    pub async fn finish(self) -> Result<u64> {
        Ok(self.finish_with_row_hashes().await?.0)
    }

    /// [`Self::finish`], also returning the row hashes kept by
    /// [`Self::keeping_row_hashes`] (empty otherwise), in row order.
    ///
    /// Errors: as [`Self::finish`].
    pub async fn finish_with_row_hashes(mut self) -> Result<(u64, Vec<RowHash>)> {
        let hashes = match std::mem::replace(&mut self.row_hashes, RowHashes::Off) {
            RowHashes::Keep(_, kept) => kept,
            _ => Vec::new(),
        };
        CopyEncoder::trailer(&mut self.buf);
        let rest = self.buf.split().freeze();
        self.sink.send(rest).await.map_err(|e| from_postgres(e, format!("streaming COPY into {}", self.target)))?;
        let rows = self.sink.as_mut().finish().await.map_err(|e| from_postgres(e, format!("finishing COPY into {}", self.target)))?;
        Ok((rows, hashes))
    }
}
