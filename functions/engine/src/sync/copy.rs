//! Copying one chunk: Snowflake query → Arrow batches → binary COPY into
//! PostgreSQL, exactly once.
//!
//! The chunk's status row is locked (`FOR UPDATE`) inside the data
//! transaction; a completed chunk is skipped, and the chunk's rows and its
//! `completed` status commit together, so a retried, duplicated or crashed
//! invocation can neither lose nor duplicate rows.
//!
//! **Destination**: the target, or — for a table replaced under
//! `truncate_onstart` — its shadow table, swapped in at merge
//! ([`crate::sync::replace`]).
//!
//! **Write path**, decided when the chunk starts, inside its transaction,
//! from the destination's state at that moment ([`WritePath`]; the planner's
//! stored [`LoadMode`] is only what it saw at planning time):
//! * destination empty → `COPY` straight into it;
//! * destination has rows and a unique index on the key columns → COPY into a
//!   per-chunk UNLOGGED staging table in `thaw_staging` (not TEMP, which pins
//!   RDS Proxy sessions), then one `INSERT ... ON CONFLICT (keys) DO UPDATE
//!   ... WHERE` the incoming row is newer (watermark), or different (same
//!   watermark, or no watermark), deduplicated by key; `insert_only_mode` uses `DO NOTHING`,
//!   counting skipped rows — never skipping a whole chunk because one key
//!   exists (a legacy defect);
//! * destination has rows but no keys or no such index → `COPY` (append).
//!
//! Why this is exact (docs/sync.md §4.1): the chunks of a table partition
//! its rows, and a chunk that is not `completed` left nothing behind, so an
//! unfinished chunk's rows are never already in the destination — except
//! rows that were there before the run, or that moved between chunks in the
//! source since planning, and those are exactly what the upsert absorbs. A
//! resumed run after a partial load therefore upserts instead of failing on
//! duplicate keys. Two parallel chunks that both see an empty destination
//! both COPY: their rows are disjoint; should the source have moved one key
//! into both, the unique index makes the second commit fail
//! (`ChunkFailed`), and its retry on resume finds rows and upserts.
//!
//! `write_batches` is the one writer of both copy paths: the staged path
//! ([`crate::sync::staged`]) streams each Parquet file's batches through it
//! as this module streams a Snowflake result.

use std::time::Instant;

use futures::TryStreamExt;
use tokio_postgres::Client;

use crate::sync::status_postgres::PgStatusStore;
use crate::sync::status_store::StatusStore;
use crate::config::{Config, TableConfig};
use crate::error::{from_postgres, Error, Result};
use crate::failpoints;
use crate::contract::{ChunkItem, CopyChunkResponse};
use crate::sync::table_plan::{ChunkRange, TablePlan};
use crate::sink::{self, encode::CopyEncoder, writer::CopyWriter};
use crate::source::table::{BatchStream, ChunkRequest};
use crate::source::{self, SnowflakeSource, TableSource};
use crate::sync::status::{ChunkCounts, LoadMode, TableKey};
use crate::sync::{indexes, replace};
use crate::reconcile::{row_hash::RowHasher, side_table};

/// How one chunk's rows are written, decided when the chunk starts from the
/// destination's state (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WritePath {
    /// Binary COPY straight into the destination (empty, or no usable key).
    Copy,
    /// COPY into staging, then `INSERT ... ON CONFLICT DO UPDATE`.
    Upsert,
    /// COPY into staging, then `INSERT ... ON CONFLICT DO NOTHING`.
    InsertOnly,
}

/// Choose the write path from the destination's state at chunk start:
/// `empty` destination → COPY; rows and a unique index on the keys → upsert
/// (insert-only when `insert_only`); rows without one → COPY (append; exact
/// because chunks partition the rows and unfinished chunks left nothing).
pub fn choose_write_path(empty: bool, has_unique_key_index: bool, insert_only: bool) -> WritePath {
    match (empty, has_unique_key_index, insert_only) {
        (true, _, _) | (false, false, _) => WritePath::Copy,
        (false, true, true) => WritePath::InsertOnly,
        (false, true, false) => WritePath::Upsert,
    }
}

/// The table's configuration entry for a chunk item, if it is still in the config.
pub(crate) fn table_config<'a>(config: &'a Config, item: &ChunkItem) -> Option<&'a TableConfig> {
    config.source(&item.source_name).ok()?.tables.iter().find(|t| t.source == item.source_table)
}

/// Connections a copy worker owns: one PostgreSQL connection and one
/// Snowflake session (sessions are never shared between concurrent workers).
pub struct Worker {
    /// Target (and status) database connection.
    pub pg: Client,
    /// Snowflake session.
    pub sf: SnowflakeSource,
}

impl Worker {
    /// Open the connections for a worker copying chunks of `source_name`.
    pub async fn connect(config: &Config, source_name: &str) -> Result<Worker> {
        let s = config.source(source_name)?;
        let pg = sink::connect(&config.postgres, &s.target_pg_database).await?;
        let sf = source::connect(&config.snowflake, Some(&s.source_sf_database), Some(&s.source_sf_schema)).await?;
        Ok(Worker { pg, sf })
    }
}

/// The status key of the table a chunk item belongs to.
pub(crate) fn chunk_key(source: &crate::config::SourceConfig, item: &ChunkItem) -> TableKey {
    TableKey {
        run_id: item.run_id,
        source_database: source.source_sf_database.clone(),
        source_schema: source.source_sf_schema.clone(),
        source_table: item.source_table.clone(),
    }
}

/// Copy one chunk of a direct (query-source) table. Staged tables never get
/// here: [`crate::steps::copy_chunk_on`] dispatches by source mode.
///
/// Errors keep their kind (`Transient` for retryable failures, `ChunkFailed`
/// for bad data, `TypeUnsupported` for unmappable types); on any error the
/// data transaction is rolled back and the chunk is recorded `failed` with
/// its message, so a retry starts clean.
pub async fn copy_chunk(config: &Config, worker: &mut Worker, item: &ChunkItem) -> Result<CopyChunkResponse> {
    let started = Instant::now();
    let s = config.source(&item.source_name)?;
    let key = chunk_key(s, item);
    let plan = load_plan(&worker.pg, &key).await?;
    if !PgStatusStore::new(&worker.pg).start_chunk(&key, item.chunk_id).await? {
        return Ok(done_response(item, started, true, ChunkCounts::default()));
    }
    let table_cfg = table_config(config, item);
    let insert_only = table_cfg.is_some_and(|t| t.insert_only_mode) || plan.load_mode == LoadMode::InsertOnly;
    let hashed = table_cfg.is_some_and(|t| config.row_hashes(t)) && !plan.key_columns.is_empty();
    let prepared = async {
        if plan.truncated {
            replace::ensure_shadow(&mut worker.pg, &plan, &key).await?;
        } else if table_cfg.is_some_and(|t| t.disable_index) {
            indexes::disable(&mut worker.pg, &plan, &key).await?;
        }
        // Row hashes (docs/reconcile.md §4.2): the destination's side table.
        let dest = Destination::of(&plan, &key).fqn;
        Ok::<_, Error>(if hashed { Some(side_table::ensure(&mut worker.pg, &dest).await?) } else { None })
    }
    .await;
    let result = match prepared {
        Ok(side) => copy_in_transaction(worker, &plan, &key, item, insert_only, table_cfg.map_or(&[][..], |t| &t.truncate_to_date[..]), side).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(Some(counts)) => Ok(done_response(item, started, false, counts)),
        Ok(None) => Ok(done_response(item, started, true, ChunkCounts::default())),
        Err(e) => {
            let e = e.context(format!("chunk {} of {} (run {})", item.chunk_id, item.source_table, item.run_id));
            if let Err(se) = PgStatusStore::new(&worker.pg).fail_chunk(&key, item.chunk_id, &e).await {
                tracing::warn!(error = %se, "could not record the chunk failure");
            }
            Err(e)
        }
    }
}

pub(crate) fn done_response(item: &ChunkItem, started: Instant, already: bool, c: ChunkCounts) -> CopyChunkResponse {
    CopyChunkResponse {
        run_id: item.run_id,
        source_table: item.source_table.clone(),
        chunk_id: item.chunk_id,
        rows_read: c.read,
        rows_inserted: c.inserted,
        rows_updated: c.updated,
        rows_unchanged: c.unchanged,
        already_completed: already,
        seconds: started.elapsed().as_secs_f64(),
    }
}

/// Read a table's stored plan ([`StatusStore::table_plan`]).
///
/// Errors: [`crate::ErrorKind::ConfigInvalid`] when the table is not part of the
/// run; `Internal` when the stored plan cannot be read back.
pub async fn load_plan(pg: &Client, key: &TableKey) -> Result<TablePlan> {
    let plan = PgStatusStore::new(pg)
        .table_plan(key)
        .await?
        .ok_or_else(|| Error::config(format!("table {} is not part of run {}", key.source_table, key.run_id)))?;
    serde_json::from_value(plan).map_err(|e| Error::internal(format!("stored plan of {} is unreadable: {e}", key.source_table)))
}

async fn copy_in_transaction(
    worker: &mut Worker,
    plan: &TablePlan,
    key: &TableKey,
    item: &ChunkItem,
    insert_only: bool,
    truncate_to_date: &[String],
    side: Option<String>,
) -> Result<Option<ChunkCounts>> {
    let tx = worker.pg.transaction().await.map_err(|e| from_postgres(e, "starting the chunk transaction"))?;
    let Some(chunk) = PgStatusStore::lock_chunk(&tx, key, item.chunk_id).await? else {
        return Err(Error::config(format!("chunk {} of {} does not exist in run {}", item.chunk_id, item.source_table, item.run_id)));
    };
    if chunk.status == "completed" {
        return Ok(None);
    }
    let range: ChunkRange =
        serde_json::from_value(chunk.chunk_range).map_err(|e| Error::internal(format!("stored chunk definition is unreadable: {e}")))?;
    let destination = Destination::of(plan, key);
    // The write path is decided now, from the destination as this transaction sees it.
    let (empty, keyed) = destination.state(&tx, plan).await?;
    // A first load (the plan saw the destination empty, or replaces it) keeps
    // COPYing straight into it after other chunks committed: the chunks
    // partition the source, so their keys are disjoint. Should the source
    // have moved a key into this chunk since planning, the unique index
    // refuses the COPY; the chunk then rolls back to the savepoint and loads
    // through staging like any upsert (docs/sync.md §4.1).
    let optimistic = !empty && keyed && plan.load_mode == LoadMode::Copy;
    let path = if optimistic { WritePath::Copy } else { choose_write_path(empty, keyed, insert_only) };
    tracing::debug!(table = %plan.source_table, chunk = item.chunk_id, ?path, optimistic, "write path");
    let side = row_hash_side(&tx, &destination, side.as_deref(), path, empty, keyed).await?;
    let dest = destination.fqn;

    failpoints::check(failpoints::COPY_CHUNK_BEFORE_COPY)?;
    let target = ChunkTarget { plan, key, chunk_id: item.chunk_id, filter: &range.filter_sql, dest: &dest, truncate_to_date, side };
    let counts = if optimistic {
        tx.batch_execute("SAVEPOINT thaw_first_load_copy").await.map_err(|e| from_postgres(e, "setting the chunk's savepoint"))?;
        match write_chunk_rows(&tx, &mut worker.sf, &target, path).await {
            Err(e) if e.is_unique_violation() => {
                tracing::info!(table = %plan.source_table, chunk = item.chunk_id, error = %e.message,
                    "a key of this chunk is already in the destination (the source moved it since planning); loading the chunk through staging instead");
                tx.batch_execute("ROLLBACK TO SAVEPOINT thaw_first_load_copy")
                    .await
                    .map_err(|e| from_postgres(e, "rolling back to the chunk's savepoint"))?;
                write_chunk_rows(&tx, &mut worker.sf, &target, choose_write_path(false, true, insert_only)).await?
            }
            other => other?,
        }
    } else {
        write_chunk_rows(&tx, &mut worker.sf, &target, path).await?
    };
    failpoints::check(failpoints::COPY_CHUNK_BEFORE_COMMIT)?;
    let committing = Instant::now();
    PgStatusStore::complete_chunk(&tx, key, item.chunk_id, counts).await?;
    tx.commit().await.map_err(|e| from_postgres(e, "committing the chunk"))?;
    tracing::debug!(table = %plan.source_table, chunk = item.chunk_id, commit_seconds = committing.elapsed().as_secs_f64(), "chunk committed");
    Ok(Some(counts))
}

/// Where a chunk's rows go: the table plan, the chunk, the destination
/// (target or shadow table), the columns cut to their date and the row-hash
/// side table written with them (docs/reconcile.md §4.2).
struct ChunkTarget<'a> {
    plan: &'a TablePlan,
    key: &'a TableKey,
    chunk_id: i32,
    /// The chunk's range predicate (Snowflake SQL).
    filter: &'a str,
    dest: &'a str,
    truncate_to_date: &'a [String],
    /// The destination's row-hash side table, when its hashes go with the rows.
    side: Option<&'a str>,
}

/// Stream the chunk's rows from the source into `path`'s COPY
/// ([`write_batches`]) inside `tx`; returns the chunk's counts.
///
/// Errors: the source's, and [`write_batches`]'s.
async fn write_chunk_rows(
    tx: &tokio_postgres::Transaction<'_>,
    sf: &mut SnowflakeSource,
    target: &ChunkTarget<'_>,
    path: WritePath,
) -> Result<ChunkCounts> {
    let ChunkTarget { plan, key, chunk_id, filter, dest, truncate_to_date, side } = *target;
    let source_columns: Vec<String> = plan.columns.iter().map(|c| c.source.name.clone()).collect();
    let predicate = format!("{} AND ({})", plan.base_predicate(), filter);
    let request = ChunkRequest { table: (&plan.source_database, &plan.source_schema, &plan.source_table), columns: &source_columns, predicate: &predicate };
    let batches = sf.stream_chunk(&request).await?;
    let rows = RowsDestination { plan, dest, staging: format!("thaw_staging.{}", staging_name(key, chunk_id)), truncate_to_date, side };
    write_batches(tx, &rows, path, batches).await
}

/// A destination table of a chunk or staged file: the target, or — for a
/// table replaced under `truncate_onstart` — its shadow table
/// ([`crate::sync::replace`]).
pub(crate) struct Destination {
    /// Quoted, schema-qualified name.
    pub(crate) fqn: String,
    /// The shadow table of a replace load (holds only this run's rows).
    shadow: bool,
    /// Unquoted schema.
    schema: String,
    /// Unquoted table name.
    table: String,
}

impl Destination {
    /// The destination of `plan`'s rows in the run of `key`.
    pub(crate) fn of(plan: &TablePlan, key: &TableKey) -> Destination {
        if plan.truncated {
            Destination { fqn: replace::shadow_fqn(key), shadow: true, schema: replace::SHADOW_SCHEMA.to_string(), table: replace::shadow_name(key) }
        } else {
            Destination { fqn: plan.target_fqn(), shadow: false, schema: plan.target_schema.clone(), table: plan.target_table.clone() }
        }
    }

    /// (empty, keyed) as `tx` sees the destination now: whether it holds no
    /// row, and — when it holds rows — whether it has a unique index on the
    /// plan's key columns (false when empty).
    ///
    /// Errors: PostgreSQL's, kind by SQLSTATE.
    pub(crate) async fn state(&self, tx: &tokio_postgres::Transaction<'_>, plan: &TablePlan) -> Result<(bool, bool)> {
        let dest = &self.fqn;
        let empty: bool = tx
            .query_one(&format!("SELECT NOT EXISTS (SELECT 1 FROM {dest})"), &[])
            .await
            .map_err(|e| from_postgres(e, format!("checking whether {dest} is empty")))?
            .get(0);
        let keyed = !empty && sink::has_unique_index(tx, &self.schema, &self.table, &plan.key_columns).await?;
        Ok((empty, keyed))
    }
}

/// The side table the rows written on `path` into `dest` take their hashes
/// to (docs/reconcile.md §4.2), given the destination's state at the
/// write's start (`empty`, `keyed` as [`Destination::state`]). Row hashes go
/// with the rows on the first-load COPY, on the upsert and on the COPY into
/// a replace load's shadow table (it holds only this run's rows, which the
/// chunks partition; it has no index, and the side table's primary key
/// refuses a key held twice as on a first load). An append to a target
/// without a unique key index, or a write with row hashes off (`side`
/// None), leaves the side table behind, so it is marked incomplete in `tx`
/// and `None` is returned.
///
/// Errors: the registry cannot be written (kind by SQLSTATE).
pub(crate) async fn row_hash_side<'s>(
    tx: &tokio_postgres::Transaction<'_>,
    dest: &Destination,
    side: Option<&'s str>,
    path: WritePath,
    empty: bool,
    keyed: bool,
) -> Result<Option<&'s str>> {
    match side {
        Some(_) if path == WritePath::Copy && !empty && !keyed && !dest.shadow => {
            side_table::invalidate(tx, &dest.fqn, "rows appended to a table without a unique index on its key columns").await?;
            Ok(None)
        }
        None => {
            side_table::invalidate(tx, &dest.fqn, "rows written with row_hashes off").await?;
            Ok(None)
        }
        side => Ok(side),
    }
}

/// Where [`write_batches`] writes a stream of rows: the table plan, the
/// destination (quoted target or shadow table), the staging table the
/// upsert paths COPY into first (quoted, in `thaw_staging`; created and
/// dropped by [`write_batches`]), the source columns cut to their date and
/// the row-hash side table written with the rows (docs/reconcile.md §4.2).
pub(crate) struct RowsDestination<'a> {
    pub(crate) plan: &'a TablePlan,
    pub(crate) dest: &'a str,
    pub(crate) staging: String,
    pub(crate) truncate_to_date: &'a [String],
    /// The destination's row-hash side table, when its hashes go with the rows.
    pub(crate) side: Option<&'a str>,
}

/// The one writer of both copy paths (docs/sync.md §5.6): stream `batches`
/// — standard Arrow batches in the plan's column order (docs/sync.md §5.5),
/// from a Snowflake result or a staged Parquet file — into `path`'s COPY
/// (the destination, or the staging table followed by the upsert) inside
/// `tx`, with their row hashes when `to.side` is set: on the COPY path the
/// hashes are kept and COPYed, sorted, into the side table after the rows;
/// on the upsert paths they travel as the staging table's extra columns and
/// the upsert writes them ([`upsert_hashed_sql`]). Returns the counts (rows
/// read, inserted, updated, unchanged). Nothing holds the whole stream's
/// rows. The failpoint [`failpoints::COPY_CHUNK_AFTER_COPY`] fires after
/// the COPY, before the upsert.
///
/// Errors: the stream's and PostgreSQL's, with their kinds; a value the
/// target cannot hold is `ChunkFailed` naming the row's key; a key already
/// in the destination is `ChunkFailed` with SQLSTATE 23505
/// ([`Error::is_unique_violation`]); a NULL key on the upsert paths is
/// `ChunkFailed` ([`check_null_keys`]).
pub(crate) async fn write_batches(
    tx: &tokio_postgres::Transaction<'_>,
    to: &RowsDestination<'_>,
    path: WritePath,
    mut batches: BatchStream,
) -> Result<ChunkCounts> {
    let RowsDestination { plan, dest, ref staging, truncate_to_date, side } = *to;
    let started = Instant::now();
    let first = batches.try_next().await?;

    let staging = match path {
        WritePath::Copy => None,
        WritePath::Upsert | WritePath::InsertOnly => {
            tx.batch_execute(&format!(
                "DROP TABLE IF EXISTS {staging}; CREATE UNLOGGED TABLE {staging} (LIKE {} INCLUDING DEFAULTS)",
                plan.target_fqn()
            ))
            .await
            .map_err(|e| from_postgres(e, "creating the staging table"))?;
            if side.is_some() {
                tx.batch_execute(&side_table::add_staging_columns_sql(staging))
                    .await
                    .map_err(|e| from_postgres(e, "adding the row-hash columns to the staging table"))?;
            }
            Some(staging.clone())
        }
    };
    let copy_target = staging.clone().unwrap_or_else(|| dest.to_string());
    let mut rows_read = 0u64;
    let (copied, mut hashes) = match first {
        // An empty chunk copies nothing.
        None => (0, Vec::new()),
        Some(first) => {
            // Decoded batches share one standard schema (docs/sync.md §5.5).
            let mut pairs: Vec<_> = plan.columns.iter().map(|c| c.target.clone()).zip(first.schema().fields().iter().cloned()).collect();
            let hasher = match &side {
                Some(_) => Some(RowHasher::new(&plan.columns, first.schema().fields(), &plan.key_columns)?),
                None => None,
            };
            let hash_columns = hasher.is_some() && staging.is_some();
            if hash_columns {
                pairs.extend(side_table::staging_pairs());
            }
            let key_positions = plan.key_columns.iter().filter_map(|k| plan.columns.iter().position(|c| &c.target.name == k)).collect();
            let date_only: Vec<usize> = plan.columns.iter().enumerate().filter(|(_, c)| truncate_to_date.contains(&c.source.name)).map(|(i, _)| i).collect();
            let encoder = CopyEncoder::new(pairs)?.with_row_identity(plan.target_fqn(), key_positions).with_truncate_to_date(&date_only);
            let mut cols: Vec<String> = plan.columns.iter().map(|c| sink::ident(&c.target.name)).collect();
            if hash_columns {
                cols.extend(side_table::STAGING_COLUMNS.iter().map(|c| c.to_string()));
            }
            let mut writer = CopyWriter::new(tx, &copy_target, &cols, encoder).await?;
            writer = match hasher {
                Some(h) if hash_columns => writer.with_row_hash_columns(h),
                Some(h) => writer.keeping_row_hashes(h),
                None => writer,
            };
            rows_read += first.num_rows() as u64;
            writer.write(&first).await?;
            drop(first);
            while let Some(batch) = batches.try_next().await? {
                rows_read += batch.num_rows() as u64;
                writer.write(&batch).await?;
            }
            writer.finish_with_row_hashes().await?
        }
    };
    if copied != rows_read {
        return Err(Error::internal(format!("COPY into {copy_target} wrote {copied} rows of the {rows_read} read")));
    }
    if let (Some(side), None) = (&side, &staging) {
        // In index order: the side table's B-tree then fills leaf by leaf
        // instead of at random places (the key MD5s are random).
        hashes.sort_unstable_by_key(|h| (h.key_place, h.key_md5));
        side_table::copy_hashes(tx, side, dest, &hashes).await?;
    }
    drop(hashes);
    failpoints::check(failpoints::COPY_CHUNK_AFTER_COPY)?;
    drop(batches);
    let copy_seconds = started.elapsed().as_secs_f64();

    let counts = match &staging {
        None => ChunkCounts { read: rows_read, inserted: copied, updated: 0, unchanged: 0 },
        Some(stg) => {
            check_null_keys(tx, plan, stg).await?;
            let sql = upsert_hashed_sql(plan, stg, dest, path == WritePath::InsertOnly, side);
            let row = tx.query_one(&sql, &[]).await.map_err(|e| from_postgres(e, format!("upserting into {dest}")))?;
            let inserted = row.get::<_, i64>(0) as u64;
            let updated = row.get::<_, i64>(1) as u64;
            tx.batch_execute(&format!("DROP TABLE {stg}")).await.map_err(|e| from_postgres(e, "dropping the staging table"))?;
            ChunkCounts { read: rows_read, inserted, updated, unchanged: rows_read.saturating_sub(inserted + updated) }
        }
    };
    // Where a chunk's time goes (docs/benchmarks.md §3): the fetch and COPY
    // overlap, so they are one figure; the upsert is the statement after it.
    tracing::debug!(table = %plan.source_table, rows = rows_read, ?path, copy_seconds,
        upsert_seconds = started.elapsed().as_secs_f64() - copy_seconds, "chunk rows written");
    Ok(counts)
}

/// A NULL key never conflicts, so an upsert would insert such a row again on
/// every run: refuse the chunk instead (deterministic, names a few rows).
pub(crate) async fn check_null_keys(tx: &tokio_postgres::Transaction<'_>, plan: &TablePlan, staging: &str) -> Result<()> {
    if plan.key_columns.is_empty() {
        return Ok(());
    }
    let keys: Vec<String> = plan.key_columns.iter().map(|k| sink::ident(k)).collect();
    let null = keys.iter().map(|k| format!("{k} IS NULL")).collect::<Vec<_>>().join(" OR ");
    let row = tx
        .query_one(&format!("SELECT count(*) FROM {staging} WHERE {null}"), &[])
        .await
        .map_err(|e| from_postgres(e, "checking the chunk's keys for NULLs"))?;
    let n: i64 = row.get(0);
    if n > 0 {
        return Err(Error::new(
            crate::error::ErrorKind::ChunkFailed,
            format!(
                "table {}: {n} row(s) of the chunk have a NULL in the key ({}); an upsert cannot match them and would insert them again on every run. \
                 Fix the source rows, exclude them with source_filter, or correct uniqueness_columns.",
                plan.target_fqn(),
                plan.key_columns.join(", ")
            ),
        ));
    }
    Ok(())
}

/// Staging table name for a chunk: short, unique per run/table/chunk, a valid identifier.
fn staging_name(key: &TableKey, chunk_id: i32) -> String {
    use md5::{Digest, Md5};
    let h = hex::encode(Md5::digest(format!("{}|{}|{}|{}", key.run_id, key.source_database, key.source_schema, key.source_table)));
    format!("\"c_{}_{chunk_id}\"", &h[..16])
}

/// The target watermark column `w` of `plan` (qualified by `prefix`: `t.`,
/// `EXCLUDED.` or nothing) as the upsert orders it: in the order of its
/// source column. A NUMBER watermark kept in a text column (a pair §5.2
/// accepts) is compared as `numeric`: as text, `'172800124457' <
/// '86400124456'`, so an update whose watermark gained a digit was taken for
/// an older row and skipped without a word (found by the sync model, seed
/// 30; docs/sync.md §4.3). Every other pair compares in the target's type.
fn watermark_compared(plan: &TablePlan, prefix: &str, w: &str) -> String {
    let column = format!("{prefix}{}", sink::ident(w));
    if plan.watermark_is_number_in_text() { format!("{column}::numeric") } else { column }
}

/// The set-based upsert from a staging table. Returns one row: (inserted,
/// updated). With `side`, the staging table also carries each row's
/// hash ([`side_table::STAGING_COLUMNS`]) and the same statement upserts the
/// hash of every row it inserted or updated into the side table `side`
/// (rows the watermark kept are left alone, as in the target).
pub(crate) fn upsert_hashed_sql(plan: &TablePlan, staging: &str, dest: &str, insert_only: bool, side: Option<&str>) -> String {
    let q = sink::ident;
    let cols: Vec<String> = plan.columns.iter().map(|c| q(&c.target.name)).collect();
    let keys: Vec<String> = plan.key_columns.iter().map(|k| q(k)).collect();
    let non_keys: Vec<String> = plan.columns.iter().filter(|c| !plan.key_columns.contains(&c.target.name)).map(|c| q(&c.target.name)).collect();
    let order = match &plan.target_watermark {
        Some(w) => format!("{}, {} DESC NULLS LAST", keys.join(", "), watermark_compared(plan, "", w)),
        None => keys.join(", "),
    };
    let action = if insert_only || non_keys.is_empty() {
        "DO NOTHING".to_string()
    } else {
        let sets: Vec<String> = non_keys.iter().map(|c| format!("{c} = EXCLUDED.{c}")).collect();
        // `json` has no equality operator: its columns compare as text.
        let compared: Vec<(String, &str)> = plan
            .columns
            .iter()
            .filter(|c| !plan.key_columns.contains(&c.target.name))
            .map(|c| (q(&c.target.name), if c.target.pg_type == sink::PgType::Json { "::text" } else { "" }))
            .collect();
        let differs = format!(
            "({}) IS DISTINCT FROM ({})",
            compared.iter().map(|(c, cast)| format!("t.{c}{cast}")).collect::<Vec<_>>().join(", "),
            compared.iter().map(|(c, cast)| format!("EXCLUDED.{c}{cast}")).collect::<Vec<_>>().join(", ")
        );
        // An equal watermark applies the row when it differs: a row updated
        // again without its watermark moving is re-read by the next night
        // (`>=`) and must not be skipped (docs/sync.md §4.3).
        let cond = match &plan.target_watermark {
            Some(w) => format!(
                "{old} < {new} OR ({old} IS NULL AND {new} IS NOT NULL) OR ({old} IS NOT DISTINCT FROM {new} AND {differs})",
                old = watermark_compared(plan, "t.", w),
                new = watermark_compared(plan, "EXCLUDED.", w)
            ),
            None => differs,
        };
        format!("DO UPDATE SET {} WHERE {cond}", sets.join(", "))
    };
    let Some(side) = side else {
        return format!(
            "WITH src AS (SELECT DISTINCT ON ({keys}) {cols} FROM {staging} ORDER BY {order}), \
             up AS (INSERT INTO {target} AS t ({cols}) SELECT {cols} FROM src ON CONFLICT ({keys}) {action} RETURNING (xmax = 0) AS inserted) \
             SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM up",
            keys = keys.join(", "),
            cols = cols.join(", "),
            target = dest,
        );
    };
    let returned: Vec<String> = keys.iter().enumerate().map(|(i, k)| format!("t.{k} AS thaw_k{i}")).collect();
    let joined: Vec<String> = keys.iter().enumerate().map(|(i, k)| format!("src.{k} = up.thaw_k{i}")).collect();
    let [place, md5, hash] = side_table::STAGING_COLUMNS;
    format!(
        "WITH src AS (SELECT DISTINCT ON ({keys}) {cols}, {place}, {md5}, {hash} FROM {staging} ORDER BY {order}), \
         up AS (INSERT INTO {target} AS t ({cols}) SELECT {cols} FROM src ON CONFLICT ({keys}) {action} RETURNING {returned}, (xmax = 0) AS inserted), \
         hashed AS (INSERT INTO {side} (key_place, key_md5, row_hash) SELECT src.{place}, src.{md5}, src.{hash} FROM up JOIN src ON {joined} \
           ORDER BY src.{place}, src.{md5} ON CONFLICT (key_place, key_md5) DO UPDATE SET row_hash = EXCLUDED.row_hash) \
         SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM up",
        keys = keys.join(", "),
        cols = cols.join(", "),
        target = dest,
        returned = returned.join(", "),
        joined = joined.join(" AND "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_path_follows_the_destination_at_chunk_start() {
        assert_eq!(choose_write_path(true, true, false), WritePath::Copy);
        assert_eq!(choose_write_path(true, false, true), WritePath::Copy);
        assert_eq!(choose_write_path(false, true, false), WritePath::Upsert);
        assert_eq!(choose_write_path(false, true, true), WritePath::InsertOnly);
        assert_eq!(choose_write_path(false, false, false), WritePath::Copy);
    }
}
