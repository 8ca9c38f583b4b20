//! A staged table's chunk (docs/sync.md §13): Snowflake unloads the chunk to
//! Parquet files in S3, thaw records the file list and loads one file at a
//! time, exactly once per file.
//!
//! * [`ensure_unloaded`]: one `COPY INTO @stage/<chunk prefix> FROM (SELECT
//!   <unload forms> … WHERE <chunk predicate>)` per chunk (or, with
//!   `--reuse-unload`, the files an earlier run unloaded for the same
//!   predicate), then `LIST` and the Parquet footers: the files' rows must add
//!   up to `rows_unloaded`. The list is recorded in
//!   `migration_status.migration_file_status` (one row per file: key, bytes,
//!   rows, status) together with the chunk's `unloaded_at`, in one
//!   transaction; a chunk whose unload is recorded is never unloaded again by
//!   the same run.
//! * [`load_file`]: the file's status row is locked (`FOR UPDATE`) inside the
//!   data transaction; a completed file is skipped; its rows (streamed a row
//!   group at a time into the binary COPY encoder) and its `completed` status
//!   commit together, so a crash or a retry resumes at the next unfinished
//!   file.
//! * [`copy_staged_chunk`]: unload if needed, load every unfinished file, and
//!   complete the chunk in the transaction of its last file.
//!
//! **Write path** per file: COPY straight into the destination when the plan
//! saw it empty (or truncated it): a file not `completed` left nothing behind
//! and the files of all chunks partition the table's rows, so its rows are
//! not there yet (docs/sync.md §4.1's argument, per file). Should a row have
//! moved between two chunks' unloads, the unique index refuses the COPY and
//! the file is loaded again through the upsert. Otherwise the path is chosen
//! from the destination's state as the direct path does
//! ([`crate::sync::copy::choose_write_path`]). The rows are written by the
//! direct path's writer (`copy::write_batches`), with their
//! row hashes when the table keeps them (docs/reconcile.md §4.2).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_postgres::{Client, Transaction};
use uuid::Uuid;

use crate::sync::status_postgres::PgStatusStore;
use crate::sync::status_store::StatusStore;
use crate::config::{Config, StagingSettings};
use crate::contract::{ChunkItem, CopyChunkResponse, StagedStep};
use crate::error::{from_postgres, Error, ErrorKind, Result};
use crate::failpoints;
use crate::reconcile::side_table;
use crate::sink;
use crate::source::staged::{parse_s3_url, s3_store, StagedFile, UnloadForm};
use crate::sync::copy::{self, choose_write_path, WritePath};
use crate::sync::table_plan::{ChunkRange, TablePlan};
use crate::sync::status::{ChunkCounts, EarlierUnload, FileRecord, LoadMode, TableKey};
use crate::sync::{indexes, replace};

/// The staging section, or a clear error.
pub fn staging(config: &Config) -> Result<&StagingSettings> {
    config.staging.as_ref().ok_or_else(|| {
        Error::config(
            "a staged table needs the 'staging' section (stage, bucket; docs/sync.md §13)",
        )
    })
}

/// The unload forms of the plan's columns, in COPY order.
///
/// Errors: [`ErrorKind::TypeUnsupported`] for a column whose type cannot be
/// unloaded.
pub fn unload_forms(plan: &TablePlan) -> Result<Vec<(String, UnloadForm)>> {
    plan.columns
        .iter()
        .map(|c| Ok((c.source.name.clone(), UnloadForm::of(&c.source)?)))
        .collect()
}

/// The chunk's path below the stage, checked to be safe to write unquoted
/// after `@stage/`.
///
/// Errors: [`ErrorKind::ConfigInvalid`] when the path holds a character a
/// stage path cannot carry (only from `staging.prefix_pattern`'s own text,
/// which `thaw validate` checks: names are escaped by
/// [`crate::config::stage_path_part`]).
pub fn chunk_path(
    staging: &StagingSettings,
    plan: &TablePlan,
    run_id: Uuid,
    chunk_id: i32,
) -> Result<String> {
    let path = staging.chunk_prefix(
        &plan.source_database,
        &plan.source_schema,
        &plan.source_table,
        run_id,
        chunk_id,
    );
    if let Some(c) = path
        .chars()
        .find(|c| !crate::config::is_stage_path_character(*c))
    {
        return Err(Error::config(format!(
            "the staged path '{path}' of {} holds '{c}', which a stage path cannot carry unquoted; remove it from staging.prefix_pattern",
            plan.source_fqn()
        )));
    }
    Ok(path)
}

/// The chunk's unload statement (docs/sync.md §13.1).
pub fn unload_sql(
    staging: &StagingSettings,
    plan: &TablePlan,
    forms: &[(String, UnloadForm)],
    path: &str,
    chunk_filter: &str,
) -> String {
    let select: Vec<String> = forms
        .iter()
        .map(|(name, form)| form.select_expr(name))
        .collect();
    format!(
        "COPY INTO @{}/{path} FROM (SELECT {} FROM {} WHERE {} AND ({chunk_filter})) FILE_FORMAT = (TYPE = PARQUET COMPRESSION = {}) MAX_FILE_SIZE = {} HEADER = TRUE OVERWRITE = TRUE",
        staging.stage,
        select.join(", "),
        plan.source_fqn(),
        plan.base_predicate(),
        staging.compression_keyword(),
        staging.max_file_size_bytes()
    )
}

/// Record a chunk's unload: its files (all `pending`) and the chunk's
/// `rows_unloaded`, `unloaded_at` and prefix, in one transaction.
async fn record_unload(pg: &mut Client, key: &TableKey, chunk_id: i32, unload: &EarlierUnload) -> Result<()> {
    let tx = pg.transaction().await.map_err(|e| from_postgres(e, "starting the unload record"))?;
    PgStatusStore::record_unload(&tx, key, chunk_id, unload).await?;
    tx.commit().await.map_err(|e| from_postgres(e, "committing the unload record"))
}

/// The run id given to `--reuse-unload` for `run_id`, if any.
async fn reuse_unload_of(pg: &Client, run_id: Uuid) -> Result<Option<Uuid>> {
    Ok(PgStatusStore::new(pg).run_metadata_text(run_id, crate::sync::status::REUSE_UNLOAD_KEY).await?.and_then(|s| s.parse().ok()))
}

/// Make sure the chunk's files are unloaded and recorded (see the module
/// docs); returns the number of files.
///
/// Errors: Snowflake's errors for the unload (kinds as for queries);
/// [`ErrorKind::ChunkFailed`] when the files' rows do not add up to
/// `rows_unloaded` or a file cannot be read; bad staging settings as
/// [`ErrorKind::ConfigInvalid`].
pub async fn ensure_unloaded(
    config: &Config,
    worker: &mut copy::Worker,
    plan: &TablePlan,
    key: &TableKey,
    chunk_id: i32,
    range: &ChunkRange,
) -> Result<usize> {
    let store = PgStatusStore::new(&worker.pg);
    if store.chunk_unloaded(key, chunk_id).await? {
        return Ok(store.chunk_files(key, chunk_id).await?.len());
    }
    let staging = staging(config)?;
    if let Some(earlier) = reuse_unload_of(&worker.pg, key.run_id).await? {
        match PgStatusStore::new(&worker.pg).earlier_unload(earlier, key, &range.filter_sql).await? {
            Some(unload) => {
                tracing::info!(table = %plan.source_table, chunk = chunk_id, %earlier, files = unload.files.len(), "reusing an earlier unload");
                record_unload(&mut worker.pg, key, chunk_id, &unload).await?;
                return Ok(unload.files.len());
            }
            None => tracing::warn!(
                table = %plan.source_table, chunk = chunk_id, %earlier,
                "run {earlier} has no unload of this chunk's predicate (its plan differs); unloading it again"
            ),
        }
    }
    let forms = unload_forms(plan)?;
    let path = chunk_path(staging, plan, key.run_id, chunk_id)?;
    if let Some(integration) = &staging.storage_integration {
        worker
            .sf
            .execute(&format!(
                "CREATE STAGE IF NOT EXISTS {} URL = '{}' STORAGE_INTEGRATION = {integration} FILE_FORMAT = (TYPE = PARQUET)",
                staging.stage,
                staging.stage_url()
            ))
            .await
            .map_err(|e| e.context(format!("creating stage {}", staging.stage)))?;
    }
    let result = worker
        .sf
        .execute(&unload_sql(staging, plan, &forms, &path, &range.filter_sql))
        .await?;
    let rows_unloaded = result
        .first()
        .and_then(|r| r.first())
        .and_then(|v| v.as_deref())
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or_else(|| {
            Error::internal(format!(
                "the unload of chunk {chunk_id} of {} returned no rows_unloaded ({result:?})",
                plan.source_fqn()
            ))
        })?;
    let listed = worker
        .sf
        .execute(&format!("LIST @{}/{path}", staging.stage))
        .await?;
    let mut files = Vec::with_capacity(listed.len());
    let mut stores: Vec<(String, Arc<dyn object_store::ObjectStore>)> = Vec::new();
    for row in &listed {
        let cell = |i: usize| row.get(i).and_then(|v| v.clone()).unwrap_or_default();
        let (bucket, file_key) = parse_s3_url(&cell(0))?;
        let bytes = cell(1).parse::<u64>().map_err(|_| {
            Error::internal(format!(
                "LIST @{}/{path} gave size '{}' for {file_key}",
                staging.stage,
                cell(1)
            ))
        })?;
        let store = match stores.iter().find(|(b, _)| *b == bucket) {
            Some((_, s)) => s.clone(),
            None => {
                let s = s3_store(staging, &bucket)?;
                stores.push((bucket.clone(), s.clone()));
                s
            }
        };
        let file = StagedFile {
            store,
            bucket: bucket.clone(),
            key: file_key.clone(),
            bytes,
        };
        let rows = file.row_count().await?;
        files.push(FileRecord {
            bucket,
            key: file_key,
            bytes,
            rows,
            etag: cell(2).trim_matches('"').to_string(),
            status: "pending".into(),
        });
    }
    let in_files: u64 = files.iter().map(|f| f.rows).sum();
    if in_files != rows_unloaded {
        return Err(Error::new(
            ErrorKind::ChunkFailed,
            format!(
                "the unload of chunk {chunk_id} of {} reported {rows_unloaded} rows but its {} file(s) under @{}/{path} hold {in_files}; another writer may share the prefix. The chunk will be unloaded again on retry",
                plan.source_fqn(),
                files.len(),
                staging.stage
            ),
        ));
    }
    let prefix = files
        .first()
        .map(|f| {
            format!(
                "s3://{}/{}",
                f.bucket,
                f.key.rsplit_once('/').map_or("", |(p, _)| p)
            )
        })
        .unwrap_or_else(|| format!("@{}/{path}", staging.stage));
    let unload = EarlierUnload { prefix, rows_unloaded, files, unloaded_by: key.run_id };
    record_unload(&mut worker.pg, key, chunk_id, &unload).await?;
    let files = unload.files;
    tracing::info!(table = %plan.source_table, chunk = chunk_id, files = files.len(), rows = rows_unloaded, "unloaded");
    Ok(files.len())
}

/// Copy one chunk of a staged table (the `copy-chunk` step for a staged
/// table): unload it unless its unload is recorded, then load every
/// unfinished file, or only `item.file_key` when the item names one (the
/// state machine's per-file Map item); `item.staged` =
/// [`StagedStep::Unload`] stops after the unload. The chunk completes with its last file (or at once when the
/// unload wrote no file).
///
/// Errors: as [`ensure_unloaded`] and [`load_file`]; on any error the chunk
/// is recorded `failed` with the message (completed files stay completed).
pub async fn copy_staged_chunk(
    config: &Config,
    worker: &mut copy::Worker,
    item: &ChunkItem,
) -> Result<CopyChunkResponse> {
    let started = Instant::now();
    let s = config.source(&item.source_name)?;
    let key = copy::chunk_key(s, item);
    let plan = copy::load_plan(&worker.pg, &key).await?;
    if !PgStatusStore::new(&worker.pg).start_chunk(&key, item.chunk_id).await? {
        return Ok(copy::done_response(
            item,
            started,
            true,
            ChunkCounts::default(),
        ));
    }
    let result = staged_chunk(config, worker, &plan, &key, item).await;
    match result {
        Ok(counts) => Ok(copy::done_response(item, started, false, counts)),
        Err(e) => {
            let e = e.context(format!(
                "chunk {} of {} (run {}, staged)",
                item.chunk_id, item.source_table, item.run_id
            ));
            if let Err(se) = PgStatusStore::new(&worker.pg).fail_chunk(&key, item.chunk_id, &e).await {
                tracing::warn!(error = %se, "could not record the chunk failure");
            }
            Err(e)
        }
    }
}

async fn staged_chunk(
    config: &Config,
    worker: &mut copy::Worker,
    plan: &TablePlan,
    key: &TableKey,
    item: &ChunkItem,
) -> Result<ChunkCounts> {
    let table_cfg = copy::table_config(config, item);
    if plan.truncated {
        replace::ensure_shadow(&mut worker.pg, plan, key).await?;
    } else if table_cfg.is_some_and(|t| t.disable_index) {
        indexes::disable(&mut worker.pg, plan, key).await?;
    }
    let chunk = PgStatusStore::lock_chunk_on(&worker.pg, key, item.chunk_id)
        .await?
        .ok_or_else(|| {
            Error::config(format!(
                "chunk {} of {} does not exist in run {}",
                item.chunk_id, item.source_table, item.run_id
            ))
        })?;
    let range: ChunkRange = serde_json::from_value(chunk.chunk_range)
        .map_err(|e| Error::internal(format!("stored chunk definition is unreadable: {e}")))?;
    ensure_unloaded(config, worker, plan, key, item.chunk_id, &range).await?;
    let mut total = ChunkCounts::default();
    let cleanup_after_load = staging(config)?.cleanup_after_load;
    let files = PgStatusStore::new(&worker.pg).chunk_files(key, item.chunk_id).await?;
    let wanted: Vec<&FileRecord> = files
        .iter()
        .filter(|f| item.file_key.as_ref().is_none_or(|k| *k == f.key))
        .collect();
    if let Some(k) = &item.file_key {
        if wanted.is_empty() {
            return Err(Error::config(format!(
                "file {k} is not one of chunk {}'s staged files in run {}",
                item.chunk_id, item.run_id
            )));
        }
    }
    if files.is_empty() {
        // An empty chunk unloads no file: it is complete as it is.
        PgStatusStore::complete_chunk_on(&worker.pg, key, item.chunk_id, ChunkCounts::default()).await?;
        return Ok(total);
    }
    if item.staged == Some(StagedStep::Unload) {
        return Ok(total);
    }
    // Row hashes (docs/reconcile.md §4.2): the destination's side table,
    // as on the direct path.
    let hashed = table_cfg.is_some_and(|t| config.row_hashes(t)) && !plan.key_columns.is_empty();
    let row_hashes = if hashed { Some(side_table::ensure(&mut worker.pg, &copy::Destination::of(plan, key).fqn).await?) } else { None };
    let options = LoadOptions {
        insert_only: table_cfg.is_some_and(|t| t.insert_only_mode)
            || plan.load_mode == LoadMode::InsertOnly,
        truncate_to_date: table_cfg
            .map(|t| t.truncate_to_date.clone())
            .unwrap_or_default(),
        cleanup_after_load,
        row_hashes,
    };
    let staging_settings = staging(config)?;
    let mut queue = std::collections::VecDeque::new();
    for f in wanted {
        if f.status != "completed" {
            queue.push_back(StagedFile {
                store: s3_store(staging_settings, &f.bucket)?,
                bucket: f.bucket.clone(),
                key: f.key.clone(),
                bytes: f.bytes,
            });
        }
    }
    let loaders = FileLoaders {
        plan: Arc::new(plan.clone()),
        key: Arc::new(key.clone()),
        chunk_id: item.chunk_id,
        options: Arc::new(options),
        queue: Arc::new(std::sync::Mutex::new(queue)),
        stop: Arc::new(AtomicBool::new(false)),
    };
    let slots = FILE_LOAD_SLOTS.try_with(Clone::clone).ok();
    let target_database = &config.source(&item.source_name)?.target_pg_database;
    let mut helpers = tokio::task::JoinSet::new();
    // The chunk's own worker loads files one after another; before each, the
    // free slots of the run's pool (if any) start helpers for the rest.
    loop {
        if let Some(slots) = &slots {
            while helpers.len() + 1 < loaders.remaining() {
                let Some(permits) = slots.try_acquire() else {
                    break;
                };
                let (loaders, postgres, database) = (
                    loaders.clone(),
                    config.postgres.clone(),
                    target_database.clone(),
                );
                helpers.spawn(async move {
                    let _permits = permits;
                    match sink::connect(&postgres, &database).await {
                        Ok(mut pg) => loaders.load_queued(&mut pg).await,
                        Err(e) => {
                            // The chunk's own worker (and other helpers) carry on.
                            tracing::warn!(error = %e, "cannot open a connection for a parallel file load; leaving the files to the chunk's worker");
                            Ok(ChunkCounts::default())
                        }
                    }
                });
            }
        }
        match loaders.load_next(&mut worker.pg).await {
            // An error drops `helpers`: their unfinished file transactions roll back.
            Err(e) => return Err(e),
            Ok(None) => break,
            Ok(Some(c)) => add_counts(&mut total, c),
        }
    }
    while let Some(joined) = helpers.join_next().await {
        let counts = joined
            .map_err(|e| Error::internal(format!("a parallel file load panicked: {e}")))??;
        add_counts(&mut total, counts);
    }
    Ok(total)
}

tokio::task_local! {
    /// The run's bounded worker pool, as the CLI runner lends it to a staged
    /// chunk (set around each chunk by [`crate::runner`]): a chunk with
    /// several unfinished files loads them in parallel on slots of the same
    /// bound as chunks. Unset (a Lambda's per-file item, a step call), the
    /// files load one after another.
    pub static FILE_LOAD_SLOTS: FileLoadSlots;
}

/// The semaphores that bound a run's copy workers (docs/sync.md §13.6): a
/// parallel file load takes one permit of each, like a chunk. Permits are
/// only taken when free ([`tokio::sync::Semaphore::try_acquire_owned`]):
/// chunks waiting for a slot are served first, and a chunk never waits for a
/// second slot while holding one, so chunks and files cannot deadlock.
#[derive(Debug, Clone)]
pub struct FileLoadSlots {
    /// The run's worker bound (`--workers`), shared by all tables.
    pub run: Arc<Semaphore>,
    /// The table's bound (`parallel_threads`).
    pub table: Arc<Semaphore>,
}

impl FileLoadSlots {
    /// One permit of each bound when both are free now, else `None`.
    fn try_acquire(&self) -> Option<(OwnedSemaphorePermit, OwnedSemaphorePermit)> {
        let table = self.table.clone().try_acquire_owned().ok()?;
        let run = self.run.clone().try_acquire_owned().ok()?;
        Some((table, run))
    }
}

/// The unfinished files of one chunk and what loading them needs, shared
/// by the chunk's worker and its parallel helpers: each takes the next file
/// from `queue` and loads it in its own transaction ([`load_file`]).
#[derive(Clone)]
struct FileLoaders {
    plan: Arc<TablePlan>,
    key: Arc<TableKey>,
    chunk_id: i32,
    options: Arc<LoadOptions>,
    queue: Arc<std::sync::Mutex<std::collections::VecDeque<StagedFile>>>,
    /// Set by the first loader that fails: the others take no further file.
    stop: Arc<AtomicBool>,
}

impl FileLoaders {
    fn remaining(&self) -> usize {
        self.queue.lock().map_or(0, |q| q.len())
    }

    /// Load the next queued file: `Ok(None)` when none is left (or another
    /// loader failed); the file's counts otherwise (zero when it was already
    /// completed).
    async fn load_next(&self, pg: &mut Client) -> Result<Option<ChunkCounts>> {
        if self.stop.load(Ordering::SeqCst) {
            return Ok(None);
        }
        let Some(file) = self.queue.lock().ok().and_then(|mut q| q.pop_front()) else {
            return Ok(None);
        };
        match load_file(
            pg,
            &self.plan,
            &self.key,
            self.chunk_id,
            &file,
            &self.options,
        )
        .await
        {
            Ok(counts) => Ok(Some(counts.unwrap_or_default())),
            Err(e) => {
                self.stop.store(true, Ordering::SeqCst);
                Err(e)
            }
        }
    }

    /// Load queued files until none is left; the sum of their counts.
    async fn load_queued(&self, pg: &mut Client) -> Result<ChunkCounts> {
        let mut total = ChunkCounts::default();
        while let Some(c) = self.load_next(pg).await? {
            add_counts(&mut total, c);
        }
        Ok(total)
    }
}

fn add_counts(total: &mut ChunkCounts, c: ChunkCounts) {
    total.read += c.read;
    total.inserted += c.inserted;
    total.updated += c.updated;
    total.unchanged += c.unchanged;
}

/// Per-table choices a file load needs.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// `insert_only_mode`: existing keys are kept (`ON CONFLICT DO NOTHING`).
    pub insert_only: bool,
    /// The table's `truncate_to_date` source columns.
    pub truncate_to_date: Vec<String>,
    /// Delete the object once its rows are committed.
    pub cleanup_after_load: bool,
    /// The destination's row-hash side table (quoted) when the table keeps
    /// row hashes (docs/reconcile.md §4.2), as [`crate::reconcile::side_table::ensure`]
    /// returned it; `None`: row hashes off.
    pub row_hashes: Option<String>,
}

/// Load one staged file exactly once (see the module docs). Returns `None`
/// when the file was already completed. When it is the chunk's last
/// unfinished file, the chunk is completed in the same transaction with the
/// counts of all its files.
///
/// Errors: [`ErrorKind::ChunkFailed`] for a missing or corrupt file (naming
/// the object) or a value the target cannot hold; [`ErrorKind::Transient`]
/// for S3 or PostgreSQL connection failures. The file is recorded `failed`
/// with the message; nothing of it stays in the destination.
pub async fn load_file(
    pg: &mut Client,
    plan: &TablePlan,
    key: &TableKey,
    chunk_id: i32,
    file: &StagedFile,
    options: &LoadOptions,
) -> Result<Option<ChunkCounts>> {
    let first = load_file_once(pg, plan, key, chunk_id, file, options, false).await;
    let result = match first {
        Err(e) if e.is_unique_violation() => {
            // A row moved between two chunks' unloads: load this file through the upsert.
            tracing::info!(file = %file.url(), "unique violation on COPY; loading the file through the upsert");
            load_file_once(pg, plan, key, chunk_id, file, options, true).await
        }
        other => other,
    };
    match result {
        Ok(counts) => {
            if counts.is_some() && options.cleanup_after_load {
                if let Err(e) = file
                    .store
                    .delete(&object_store::path::Path::from(file.key.as_str()))
                    .await
                {
                    tracing::warn!(file = %file.url(), error = %e, "could not delete the loaded file (staging.cleanup_after_load)");
                }
            }
            Ok(counts)
        }
        Err(e) => {
            // Name the table once: value errors of the encoder already do.
            let table = plan.target_fqn();
            let e = if e.message.contains(&table) { e } else { e.context(format!("table {table}")) };
            let e = if e.message.contains(&file.url()) { e } else { e.context(format!("staged file {}", file.url())) };
            let text: String = e.to_string().chars().take(2000).collect();
            if let Err(se) = PgStatusStore::new(pg).record_file_failure(key, chunk_id, &file.key, &text).await
            {
                tracing::warn!(error = %se, "could not record the file failure");
            }
            Err(e)
        }
    }
}

async fn load_file_once(
    pg: &mut Client,
    plan: &TablePlan,
    key: &TableKey,
    chunk_id: i32,
    file: &StagedFile,
    options: &LoadOptions,
    force_upsert: bool,
) -> Result<Option<ChunkCounts>> {
    let tx = pg
        .transaction()
        .await
        .map_err(|e| from_postgres(e, "starting the file transaction"))?;
    let status = PgStatusStore::lock_file(&tx, key, chunk_id, &file.key)
        .await?
        .ok_or_else(|| Error::config(format!("{} is not a recorded file of chunk {chunk_id} of {}", file.url(), plan.source_table)))?;
    if status == "completed" {
        return Ok(None);
    }
    let destination = copy::Destination::of(plan, key);
    let (empty, keyed) = destination.state(&tx, plan).await?;
    let path = if plan.load_mode == LoadMode::Copy && !force_upsert {
        WritePath::Copy
    } else {
        choose_write_path(empty && !force_upsert, keyed, options.insert_only)
    };
    let side = copy::row_hash_side(&tx, &destination, options.row_hashes.as_deref(), path, empty, keyed).await?;
    let dest = destination.fqn;
    let forms = unload_forms(plan)?;
    let (_, batches) = file.batches(&forms).await?;
    let rows = copy::RowsDestination {
        plan,
        dest: &dest,
        staging: format!("thaw_staging.{}", file_staging_name(key, chunk_id, &file.key)),
        truncate_to_date: &options.truncate_to_date,
        side,
    };
    // The same writer as the direct path (docs/sync.md §5.6).
    let counts = copy::write_batches(&tx, &rows, path, batches).await?;
    failpoints::check(failpoints::STAGED_FILE_BEFORE_COMMIT)?;
    PgStatusStore::complete_file(&tx, key, chunk_id, &file.key, counts).await?;
    complete_chunk_if_done(&tx, key, chunk_id).await?;
    tx.commit()
        .await
        .map_err(|e| from_postgres(e, "committing the file"))?;
    Ok(Some(counts))
}

/// Complete the chunk in the file's transaction when no other file of it is
/// unfinished, with the sums of its files' counts.
async fn complete_chunk_if_done(tx: &Transaction<'_>, key: &TableKey, chunk_id: i32) -> Result<()> {
    // Lock the chunk row first: two files finishing at once serialise here,
    // so the later one sees the other's completed status.
    PgStatusStore::lock_chunk_on(tx, key, chunk_id).await?;
    let (unfinished, counts) = PgStatusStore::file_tally(tx, key, chunk_id).await?;
    if unfinished > 0 {
        return Ok(());
    }
    PgStatusStore::complete_chunk_on(tx, key, chunk_id, counts).await
}

/// Staging table name for one file: short, unique per run/table/chunk/file.
fn file_staging_name(key: &TableKey, chunk_id: i32, file_key: &str) -> String {
    use md5::{Digest, Md5};
    let h = hex::encode(Md5::digest(format!(
        "{}|{}|{}|{}|{chunk_id}|{file_key}",
        key.run_id, key.source_database, key.source_schema, key.source_table
    )));
    format!("\"f_{}\"", &h[..24])
}

/// The run's staged files not yet completed, as per-file items (`file_key`
/// set), in table, chunk and key order.
pub async fn unfinished_file_items(pg: &Client, run_id: Uuid) -> Result<Vec<ChunkItem>> {
    PgStatusStore::new(pg).unfinished_files(run_id).await
}

/// The [`StagedStep::FileManifest`] step: write the run's unfinished staged
/// files to `uri` (see [`crate::sync::manifest`] for URIs) and return how
/// many items it holds.
///
/// Errors: [`ErrorKind::ConfigInvalid`] for an unusable `uri`,
/// [`ErrorKind::Transient`] for a failed S3 request.
pub async fn write_file_manifest(pg: &Client, run_id: Uuid, uri: &str) -> Result<usize> {
    let items = unfinished_file_items(pg, run_id).await?;
    crate::sync::manifest::write(Some(uri), run_id, &items)
        .await
        .map_err(|e| e.context("writing the staged file manifest"))?;
    tracing::info!(%run_id, files = items.len(), uri, "staged file manifest written");
    Ok(items.len())
}
