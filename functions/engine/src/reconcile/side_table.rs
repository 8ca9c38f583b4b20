//! The row-hash side table of a target table (docs/reconcile.md §4.2,
//! migration `schema/V21__row_hashes.sql`): one row per target row,
//! `(key_place int4, key_md5 bytea, row_hash int8)` with `PRIMARY KEY
//! (key_place, key_md5) INCLUDE (row_hash)`, written by the copy path in the
//! same transaction as the chunk's rows, read by reconcile with index-only
//! scans ordered by the key-hash place.
//!
//! `migration_status.row_hash_tables` registers each side table and whether
//! it is **complete** (one side row per target row, as thaw wrote it): a
//! side table created while its target is empty is complete from the start
//! and stays so while every write goes through thaw's hashed paths; a write
//! path that does not keep the hashes ([`invalidate`]) or a difference found
//! by reconcile makes it incomplete until a full reconcile refills it.

use std::sync::Arc;

use arrow_array::{ArrayRef, FixedSizeBinaryArray, Int32Array, Int64Array};
use arrow_schema::{DataType, Field, FieldRef};
use bytes::{BufMut, BytesMut};
use futures::SinkExt;
use tokio_postgres::{Client, GenericClient, Transaction};

use super::row_hash::RowHash;
use crate::error::{from_postgres, Error, ErrorKind, Result};
use crate::sink::{self, PgType, TargetColumn};

/// Schema of the side tables (V21).
pub const SCHEMA: &str = "thaw_row_hashes";

/// Columns a staging table gets for the hashed upsert, in COPY order after
/// the table's own columns.
pub const STAGING_COLUMNS: [&str; 3] = ["thaw_key_place", "thaw_key_md5", "thaw_row_hash"];

/// Quoted `"thaw_row_hashes"."h_<16 hex digits of MD5(target)>"`: the side
/// table of the quoted target (or shadow) table name `target`.
pub fn side_table_of(target: &str) -> String {
    sink::qualified(SCHEMA, &side_table_name(target))
}

/// Unquoted `h_<16 hex digits of MD5(target)>` (see [`side_table_of`]).
pub fn side_table_name(target: &str) -> String {
    use md5::{Digest, Md5};
    format!("h_{}", &hex::encode(Md5::digest(target.as_bytes()))[..16])
}

/// A registered side table and its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SideTable {
    /// Quoted name.
    pub name: String,
    /// One side row per target row, as thaw wrote it.
    pub complete: bool,
}

/// The registered side table of `target` (quoted), if any.
///
/// Errors: the registry cannot be read (kind by SQLSTATE).
pub async fn registered<C: GenericClient>(pg: &C, target: &str) -> Result<Option<SideTable>> {
    let row = pg
        .query_opt("SELECT side_table, complete FROM migration_status.row_hash_tables WHERE target = $1", &[&target])
        .await
        .map_err(|e| from_postgres(e, format!("reading the row-hash registry for {target}")))?;
    Ok(row.map(|r| SideTable { name: r.get(0), complete: r.get(1) }))
}

/// Create the side table of `target` if needed (in its own short
/// transaction, serialised by an advisory lock on its name, like the shadow
/// tables) and register it: complete when `target` is empty. A side table
/// holding rows while its target is empty (the target was emptied outside
/// thaw) is emptied, under a lock that waits for chunks in flight.
/// Returns the side table's quoted name.
///
/// Errors: DDL or registry failures (e.g. the loader may not create tables
/// in `thaw_row_hashes`: apply migration V21), kind by SQLSTATE.
pub async fn ensure(pg: &mut Client, target: &str) -> Result<String> {
    let side = side_table_of(target);
    let exists: bool = pg
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&side])
        .await
        .map_err(|e| from_postgres(e, "looking for the row-hash side table"))?
        .get(0);
    if exists {
        let stale: bool = pg
            .query_one(&format!("SELECT NOT EXISTS (SELECT 1 FROM {target}) AND EXISTS (SELECT 1 FROM {side})"), &[])
            .await
            .map_err(|e| from_postgres(e, format!("comparing {target} with its row hashes")))?
            .get(0);
        if !stale {
            return Ok(side);
        }
    }
    let tx = pg.transaction().await.map_err(|e| from_postgres(e, "starting the row-hash side-table transaction"))?;
    tx.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&side]).await.map_err(|e| from_postgres(e, "locking the row-hash side table name"))?;
    tx.batch_execute(&format!(
        "CREATE TABLE IF NOT EXISTS {side} (key_place int4 NOT NULL, key_md5 bytea NOT NULL, row_hash int8 NOT NULL, \
         PRIMARY KEY (key_place, key_md5) INCLUDE (row_hash)); LOCK TABLE {side} IN SHARE ROW EXCLUSIVE MODE"
    ))
    .await
    .map_err(|e| from_postgres(e, format!("creating the row-hash side table {side} of {target}")))?;
    let (target_empty, side_empty): (bool, bool) = {
        let r = tx
            .query_one(&format!("SELECT NOT EXISTS (SELECT 1 FROM {target}), NOT EXISTS (SELECT 1 FROM {side})"), &[])
            .await
            .map_err(|e| from_postgres(e, format!("comparing {target} with its row hashes")))?;
        (r.get(0), r.get(1))
    };
    if target_empty && !side_empty {
        tx.batch_execute(&format!("TRUNCATE {side}")).await.map_err(|e| from_postgres(e, format!("emptying {side}")))?;
    }
    let (complete, reason) = if target_empty { (true, "created with its empty target") } else { (false, "created after the target held rows: a full reconcile fills it") };
    tx.execute(
        "INSERT INTO migration_status.row_hash_tables (target, side_table, complete, complete_since, reason) \
         VALUES ($1, $2, $3, CASE WHEN $3 THEN now() END, $4) \
         ON CONFLICT (target) DO UPDATE SET side_table = EXCLUDED.side_table, \
           complete = CASE WHEN $5 THEN EXCLUDED.complete ELSE migration_status.row_hash_tables.complete END, \
           complete_since = CASE WHEN $5 THEN EXCLUDED.complete_since ELSE migration_status.row_hash_tables.complete_since END, \
           reason = CASE WHEN $5 THEN EXCLUDED.reason ELSE migration_status.row_hash_tables.reason END, updated_at = now()",
        &[&target, &side, &complete, &reason, &(target_empty || !exists)],
    )
    .await
    .map_err(|e| from_postgres(e, format!("registering the row-hash side table of {target}")))?;
    tx.commit().await.map_err(|e| from_postgres(e, "committing the row-hash side table"))?;
    Ok(side)
}

/// Record that `target`'s side table no longer holds one row per target
/// row (`reason` says why), so reconcile hashes the rows in SQL again until a
/// full reconcile refills it. Nothing happens for a target without a
/// registered side table. Run it in the transaction of the write it describes.
///
/// Errors: the registry cannot be written (kind by SQLSTATE).
pub async fn invalidate<C: GenericClient>(pg: &C, target: &str, reason: &str) -> Result<()> {
    pg.execute(
        "UPDATE migration_status.row_hash_tables SET complete = false, reason = $2, updated_at = now() WHERE target = $1 AND complete",
        &[&target, &reason],
    )
    .await
    .map_err(|e| from_postgres(e, format!("marking the row hashes of {target} incomplete")))?;
    Ok(())
}

/// Record that `target`'s side table holds one row per target row (after a
/// refill), with how.
///
/// Errors: the registry cannot be written (kind by SQLSTATE).
pub async fn mark_complete<C: GenericClient>(pg: &C, target: &str, reason: &str) -> Result<()> {
    pg.execute(
        "UPDATE migration_status.row_hash_tables SET complete = true, complete_since = now(), reason = $2, updated_at = now() WHERE target = $1",
        &[&target, &reason],
    )
    .await
    .map_err(|e| from_postgres(e, format!("marking the row hashes of {target} complete")))?;
    Ok(())
}

/// COPY `hashes` into the side table `side` inside the chunk's transaction
/// (the first-load path: the target was empty, so every key is new).
/// Returns the rows written.
///
/// Errors: a key already in the side table — the chunk holds a key twice —
/// is `ChunkFailed` naming the table; other failures by SQLSTATE.
pub async fn copy_hashes(tx: &Transaction<'_>, side: &str, target: &str, hashes: &[RowHash]) -> Result<u64> {
    if hashes.is_empty() {
        return Ok(0);
    }
    let sink = tx
        .copy_in::<_, bytes::Bytes>(&format!("COPY {side} (key_place, key_md5, row_hash) FROM STDIN (FORMAT binary)"))
        .await
        .map_err(|e| from_postgres(e, format!("starting COPY into {side}")))?;
    futures::pin_mut!(sink);
    let mut buf = BytesMut::with_capacity(crate::sink::FLUSH_BYTES + 64);
    crate::sink::encode::CopyEncoder::header(&mut buf);
    let duplicate = |e: tokio_postgres::Error| {
        if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) {
            Error::new(
                ErrorKind::ChunkFailed,
                format!("{target}: the chunk holds a key twice (its row hash is kept once per key, docs/reconcile.md §4.2); fix the duplicate keys in the source or correct uniqueness_columns: {e}"),
            )
        } else {
            from_postgres(e, format!("writing the row hashes of {target}"))
        }
    };
    for h in hashes {
        buf.put_i16(3);
        buf.put_i32(4);
        buf.put_i32(h.key_place as i32);
        buf.put_i32(16);
        buf.put_slice(&h.key_md5);
        buf.put_i32(8);
        buf.put_i64(h.row_hash as i64);
        if buf.len() >= crate::sink::FLUSH_BYTES {
            sink.send(buf.split().freeze()).await.map_err(duplicate)?;
        }
    }
    crate::sink::encode::CopyEncoder::trailer(&mut buf);
    sink.send(buf.split().freeze()).await.map_err(duplicate)?;
    sink.finish().await.map_err(duplicate)
}

/// The (target column, Arrow field) pairs of [`STAGING_COLUMNS`], for the
/// COPY encoder of a staging table that carries the hashes.
pub fn staging_pairs() -> Vec<(TargetColumn, FieldRef)> {
    let column = |name: &str, pg_type: PgType, type_name: &str| TargetColumn { nullable: false, ..TargetColumn::plain(name, pg_type, type_name) };
    vec![
        (column(STAGING_COLUMNS[0], PgType::Int4, "integer"), Arc::new(Field::new(STAGING_COLUMNS[0], DataType::Int32, false))),
        (column(STAGING_COLUMNS[1], PgType::Bytea, "bytea"), Arc::new(Field::new(STAGING_COLUMNS[1], DataType::FixedSizeBinary(16), false))),
        (column(STAGING_COLUMNS[2], PgType::Int8, "bigint"), Arc::new(Field::new(STAGING_COLUMNS[2], DataType::Int64, false))),
    ]
}

/// The Arrow arrays of [`STAGING_COLUMNS`] for `hashes` (one per row).
///
/// Errors: `Internal` if Arrow refuses the arrays (cannot happen for 16-byte values).
pub fn staging_arrays(hashes: &[RowHash]) -> Result<Vec<ArrayRef>> {
    let md5 = FixedSizeBinaryArray::try_from_iter(hashes.iter().map(|h| h.key_md5)).map_err(|e| Error::internal(format!("row-hash key array: {e}")))?;
    Ok(vec![
        Arc::new(Int32Array::from_iter_values(hashes.iter().map(|h| h.key_place as i32))),
        Arc::new(md5),
        Arc::new(Int64Array::from_iter_values(hashes.iter().map(|h| h.row_hash as i64))),
    ])
}

/// `ALTER TABLE … ADD COLUMN` of [`STAGING_COLUMNS`] for a staging table.
pub fn add_staging_columns_sql(staging: &str) -> String {
    format!(
        "ALTER TABLE {staging} ADD COLUMN {} int4, ADD COLUMN {} bytea, ADD COLUMN {} int8",
        STAGING_COLUMNS[0], STAGING_COLUMNS[1], STAGING_COLUMNS[2]
    )
}

/// Replace `target`'s side table by `shadow`'s inside the swap transaction
/// of a replaced table (docs/sync.md §8.1): the shadow's side table, filled
/// with the shadow's rows, becomes the target's. Without one (row hashes off
/// for this load) the target's side table, if any, is emptied and marked
/// incomplete.
///
/// Errors: DDL or registry failures, kind by SQLSTATE.
pub async fn swap_in<C: GenericClient>(tx: &C, shadow: &str, target: &str) -> Result<()> {
    let Some(from) = registered(tx, shadow).await? else {
        if let Some(old) = registered(tx, target).await? {
            tx.batch_execute(&format!("TRUNCATE {}", old.name)).await.map_err(|e| from_postgres(e, format!("emptying {}", old.name)))?;
            invalidate(tx, target, "the table was replaced by a load without row hashes").await?;
        }
        return Ok(());
    };
    let to = side_table_of(target);
    tx.batch_execute(&format!("DROP TABLE IF EXISTS {to}; ALTER TABLE {} RENAME TO {}", from.name, sink::ident(&side_table_name(target))))
        .await
        .map_err(|e| from_postgres(e, format!("moving the row hashes of {shadow} to {target}")))?;
    tx.execute("DELETE FROM migration_status.row_hash_tables WHERE target = $1", &[&shadow])
        .await
        .map_err(|e| from_postgres(e, "updating the row-hash registry"))?;
    tx.execute(
        "INSERT INTO migration_status.row_hash_tables (target, side_table, complete, complete_since, reason) VALUES ($1, $2, $3, CASE WHEN $3 THEN now() END, $4) \
         ON CONFLICT (target) DO UPDATE SET side_table = EXCLUDED.side_table, complete = EXCLUDED.complete, complete_since = EXCLUDED.complete_since, \
           reason = EXCLUDED.reason, updated_at = now()",
        &[&target, &to, &from.complete, &"replaced with the loaded rows"],
    )
    .await
    .map_err(|e| from_postgres(e, "updating the row-hash registry"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn side_tables_are_named_by_the_target_and_staging_columns_follow_the_table() {
        let side = side_table_of("\"analytics\".\"visits\"");
        assert!(side.starts_with("\"thaw_row_hashes\".\"h_") && side.len() == "\"thaw_row_hashes\".\"h_\"".len() + 16, "{side}");
        assert_ne!(side, side_table_of("\"analytics\".\"visits2\""));
        assert_eq!(add_staging_columns_sql("s"), "ALTER TABLE s ADD COLUMN thaw_key_place int4, ADD COLUMN thaw_key_md5 bytea, ADD COLUMN thaw_row_hash int8");
        let h = RowHash { key_md5: [7; 16], key_place: 5, row_hash: (1 << 47) + 3 };
        let arrays = staging_arrays(&[h]).unwrap();
        assert_eq!(arrays.len(), staging_pairs().len());
        assert_eq!(arrays[1].len(), 1);
    }
}
