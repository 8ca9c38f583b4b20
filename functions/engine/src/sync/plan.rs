//! Chunk planning: split every table into chunks whose predicates partition
//! its rows exactly, with one aggregate query per table (two for skewed
//! numeric keys), and record the plan in `migration_status`.
//!
//! Strategies ([`ChunkingStrategy`]), chosen from the first chunking column's type
//! and overridable per table with `chunking_strategy`:
//! * **single**: one chunk (no chunking column, or fewer rows than the batch);
//! * **numeric range**: `count/min/max`, then a histogram of equal-width
//!   buckets (`FLOOR((k - min) / width)`) packed greedily into chunks of at
//!   most `batch` rows; predicates are half-open `[lo, hi)`, the first chunk
//!   is open below and the last open above;
//! * **date range**: counts per `CAST(k AS DATE)` packed greedily; a day with
//!   more rows than the batch is split by key ranges of the first uniqueness
//!   column (boundaries from `QUALIFY MOD(ROW_NUMBER() ...)`), never by OFFSET;
//! * **keyset**: text/uuid keys, half-open ranges between sampled boundaries.
//!
//! NULL keys get their own chunk (`k IS NULL`). The effective batch is
//! `min(batch_size, chunk_byte_budget / estimated row bytes)` rows, so a
//! worker's memory is bounded by the budget whatever the table's size.
//!
//! Incremental tables read `MAX(target_watermark)` from PostgreSQL and plan
//! only source rows with `source_watermark >= max`: `>=` because watermarks
//! can tie (and PostgreSQL keeps microseconds where Snowflake keeps
//! nanoseconds); the boundary rows are re-read and the upsert's
//! `WHERE target.watermark < excluded.watermark` makes them no-ops.

use std::collections::BTreeMap;

use chrono::NaiveDate;

use tokio_postgres::Client;
use uuid::Uuid;

use crate::sync::status_postgres::PgStatusStore;
use crate::sync::status_store::StatusStore;
use crate::config::{ChunkKeyType, ChunkingStrategy, Config, SchemaEvolution, SourceConfig, TableConfig};
use crate::error::{from_postgres, Error, ErrorKind, Result};
use crate::contract::{PlanRequest, PlanResponse, SyncMode};
use crate::sink::{self, TargetColumn};
use crate::source::arrow::{LogicalType, SourceType};
use crate::source::predicate::{self, Dialect};
use crate::source::{sql, SnowflakeSource};
use crate::sync::chunk::{self, ChunkSpec, DayChunk, KeyColumn, KeyKind, KeyValue, NumericPlanner, PlannedChunk};
use crate::failpoints;
use crate::sync::lock;
use crate::sync::status::{self, Holder, LoadMode, PlannedTable, TableKey, TableMapping};
use crate::sync::table_plan::{ChunkRange, ColumnPair, SourceColumn, TablePlan};


/// Plan a run (the `plan` step): resume an unfinished run or plan a new one,
/// record it in `migration_status`, and write the manifest of chunks to copy.
/// For callers that hold no run lock (the Lambda); see [`plan_run_with`].
///
/// Tables missing in the target are created (`create_tables`) and new
/// source columns added (`schema_evolution: "add_columns"`), each table's
/// DDL in its own transaction just before the table's plan (docs/sync.md
/// §3.6).
///
/// Errors: [`ErrorKind::ConfigInvalid`] for unknown sources/tables or a
/// refused truncate, [`ErrorKind::SchemaMismatch`] for missing tables or
/// columns and for schema drift (new, dropped or retyped source columns) —
/// all raised before any target table is touched;
/// [`ErrorKind::Locked`] when a live run of the same selection exists.
pub async fn plan_run(config: &Config, request: &PlanRequest) -> Result<PlanResponse> {
    plan_run_with(config, request, None).await
}

/// [`plan_run`] for a caller that drives the run as `holder` (the local
/// runner, holding the run lock of [`crate::sync::lock::RunLock`]); the
/// holder is recorded on the run row.
///
/// A run is `planning` until every selected table is planned (a table's row
/// and its chunk rows commit together), then `running`. Resuming a run that
/// was stopped while planning plans the selected tables it has no row for,
/// so a resumed run always covers the whole selection. A resumable run that
/// is still alive ([`status::RunRecord::is_alive`]) is never resumed by
/// another process: that is [`ErrorKind::Locked`]; a dead one is taken over.
/// `no_resume` starts a new run and marks older unfinished runs of the same
/// selection `superseded`, so they are never resumed later.
pub async fn plan_run_with(config: &Config, request: &PlanRequest, holder: Option<&Holder>) -> Result<PlanResponse> {
    let selected = select_tables(config, request)?;
    let status_db = config.status_database().to_string();
    for (s, _) in &selected {
        if s.target_pg_database != status_db {
            return Err(Error::config(format!(
                "source '{}' targets database '{}' but run status lives in '{}'; a chunk's rows and its status must commit in one transaction, so every target_pg_database must equal postgres.status_database",
                s.source_name, s.target_pg_database, status_db
            )));
        }
    }
    // Migrations are not applied here: in the cloud the schema-migrate
    // function applies them on deploy (the plan role cannot create tables),
    // locally the runner does ([`crate::migrations::migrate_databases`]).
    let mut pg = sink::connect_status(config).await?;
    let execution_hash = execution_hash(config, &selected, request.mode, request.where_predicate.as_deref());
    if !lock::plan_lock(&pg, &execution_hash).await? {
        return Err(Error::new(
            ErrorKind::Locked,
            "another thaw process is planning the same configuration and table selection right now; wait for it to finish and rerun",
        ));
    }
    let default_holder = Holder::default();
    let result = plan_locked(config, request, holder.unwrap_or(&default_holder), &mut pg, &selected, &execution_hash).await;
    lock::plan_unlock(&pg, &execution_hash).await;
    result
}

type Selection<'a> = Vec<(&'a SourceConfig, Vec<&'a TableConfig>)>;

async fn plan_locked(
    config: &Config,
    request: &PlanRequest,
    holder: &Holder,
    pg: &mut Client,
    selected: &Selection<'_>,
    execution_hash: &str,
) -> Result<PlanResponse> {
    let candidate = if let Some(id) = request.resume_run_id {
        let r = PgStatusStore::new(pg).check_resumable(id).await?;
        if r.execution_hash != execution_hash {
            return Err(Error::config(format!(
                "run {id} was planned for a different configuration, table selection or mode than this command; rerun it with the same config, --source/--table and --full options, or omit --resume-run-id"
            )));
        }
        Some(r)
    } else {
        let max_age = request.resume_max_age_hours.unwrap_or(status::DEFAULT_RESUME_MAX_AGE_HOURS);
        PgStatusStore::new(pg).find_resumable(execution_hash, max_age).await?
    };
    if let Some(r) = &candidate {
        if r.is_alive(holder.lock_backend_pid) {
            return Err(Error::new(
                ErrorKind::Locked,
                format!(
                    "{} of the same configuration and selection is still running; wait for it to finish or stop it. A run without a heartbeat for {} minutes is considered dead and is taken over by the next run.",
                    r.describe(),
                    status::STUCK_AFTER_MINUTES
                ),
            ));
        }
    }
    match candidate {
        Some(r) if !request.no_resume || request.resume_run_id.is_some() => resume_run(config, request, holder, pg, selected, r).await,
        _ => new_run(config, request, holder, pg, selected, execution_hash).await,
    }
}

async fn new_run(
    config: &Config,
    request: &PlanRequest,
    holder: &Holder,
    pg: &mut Client,
    selected: &Selection<'_>,
    execution_hash: &str,
) -> Result<PlanResponse> {
    // Validate every table against both catalogs before anything is written.
    let prepared = prepare_tables(config, selected, pg, request).await?;
    let metadata = serde_json::json!({
        "sources": selected.iter().map(|(s, _)| s.source_name.clone()).collect::<Vec<_>>(),
        "planned": false,
        "where": request.where_predicate,
        "thaw_version": env!("CARGO_PKG_VERSION"),
    });
    let mode = match request.mode { SyncMode::Full => "full", SyncMode::Incremental => "incremental" };
    let run_id = PgStatusStore::new(pg).create_run(&config.config_hash(), execution_hash, mode, metadata, holder).await?;
    if request.no_resume {
        let superseded = PgStatusStore::new(pg).supersede(execution_hash, run_id).await?;
        if !superseded.is_empty() {
            tracing::warn!(%run_id, ?superseded, "--no-resume: older unfinished runs of the same selection are superseded and will not be resumed");
        }
    }
    finish_planning(config, request, pg, run_id, prepared, false).await
}

async fn resume_run(
    config: &Config,
    request: &PlanRequest,
    holder: &Holder,
    pg: &mut Client,
    selected: &Selection<'_>,
    run: status::RunRecord,
) -> Result<PlanResponse> {
    let run_id = run.run_id;
    if matches!(run.status.as_str(), status::run_status::PLANNING | status::run_status::RUNNING) {
        tracing::warn!(%run_id, previous = %run.describe(), "taking over a run whose process is gone");
        let previous = serde_json::json!({ "host": run.host, "pid": run.pid, "heartbeat_age_seconds": run.heartbeat_age_seconds });
        PgStatusStore::new(pg).set_run_metadata(run_id, "taken_over_from", previous).await?;
    }
    PgStatusStore::new(pg).claim(run_id, holder).await?;
    if let Err(e) = refresh_target_columns(pg, run_id).await {
        let _ = PgStatusStore::new(pg).finish_run(run_id, status::run_status::FAILED, Some(&e.to_string())).await;
        return Err(e);
    }
    let planned = PgStatusStore::new(pg).planned_tables(run_id).await?;
    let missing: Selection<'_> = selected
        .iter()
        .map(|(s, ts)| {
            let left: Vec<&TableConfig> = ts
                .iter()
                .copied()
                .filter(|t| !planned.iter().any(|(db, sc, tb)| db == &s.source_sf_database && sc == &s.source_sf_schema && tb == &t.source))
                .collect();
            (*s, left)
        })
        .filter(|(_, ts)| !ts.is_empty())
        .collect();
    let prepared = if missing.is_empty() {
        Vec::new()
    } else {
        let names: Vec<&str> = missing.iter().flat_map(|(_, ts)| ts.iter().map(|t| t.source.as_str())).collect();
        tracing::info!(%run_id, tables = ?names, "the resumed run was not fully planned: planning the remaining tables");
        PgStatusStore::new(pg).set_status(run_id, status::run_status::PLANNING, None).await?;
        match prepare_tables(config, &missing, pg, request).await {
            Ok(p) => p,
            Err(e) => {
                let _ = PgStatusStore::new(pg).finish_run(run_id, status::run_status::FAILED, Some(&e.to_string())).await;
                return Err(e);
            }
        }
    };
    finish_planning(config, request, pg, run_id, prepared, true).await
}

/// On resume, give every unfinished table's stored plan its target columns'
/// current definitions (type, length, precision, scale, nullability): a
/// chunk that failed because a value did not fit says "widen the column",
/// and once the user has, the resumed run must write with the wider column
/// instead of failing the same way until `--no-resume` (found probing:
/// docs/sync.md §6.2). Changes are logged and recorded in the plan; a
/// replace load's shadow table gets the same definitions
/// ([`super::replace::align_shadow_columns`]).
///
/// Errors: [`ErrorKind::SchemaMismatch`] naming the column when a target
/// column the plan writes no longer exists; catalog and status-store
/// errors with their kinds; `Internal` for an unreadable stored plan.
async fn refresh_target_columns(pg: &Client, run_id: Uuid) -> Result<()> {
    for table in PgStatusStore::new(pg).tables(run_id).await? {
        if matches!(table.status.as_str(), "completed" | "skipped") {
            continue;
        }
        let mut plan: TablePlan = serde_json::from_value(table.plan.clone())
            .map_err(|e| Error::internal(format!("stored plan of {} is unreadable: {e}", table.key.source_table)))?;
        let catalog = sink::table_columns(pg, &plan.target_schema, &plan.target_table).await?;
        let target_fqn = plan.target_fqn();
        let mut changed = Vec::new();
        let mut changed_names = Vec::new();
        for pair in plan.columns.iter_mut() {
            let Some(now) = catalog.iter().find(|c| c.name == pair.target.name) else {
                return Err(Error::new(
                    ErrorKind::SchemaMismatch,
                    format!(
                        "run {run_id}: target column \"{}\" of {} was planned but no longer exists; restore it, or rerun with --no-resume to plan a new run",
                        pair.target.name, target_fqn
                    ),
                ));
            };
            if *now != pair.target {
                changed.push(format!("\"{}\" {} → {}", now.name, sink::ddl::sql_type(&pair.target), sink::ddl::sql_type(now)));
                changed_names.push(now.name.clone());
                pair.target = now.clone();
            }
        }
        if plan.truncated {
            // The replace load's shadow was created LIKE the target as it was.
            super::replace::align_shadow_columns(pg, &plan, &table.key, &changed_names).await?;
        }
        if !changed.is_empty() {
            tracing::info!(%run_id, table = %target_fqn, columns = ?changed, "resume: the target's columns changed since planning; writing with their current definitions");
            PgStatusStore::new(pg).set_table_plan(&table.key, serde_json::to_value(&plan).expect("plan serialises")).await?;
        }
    }
    Ok(())
}

/// Plan the `prepared` tables of `run_id`, mark the run `running` and write
/// the manifest of every unfinished chunk; a failure marks the run `failed`.
async fn finish_planning(
    config: &Config,
    request: &PlanRequest,
    pg: &mut Client,
    run_id: Uuid,
    prepared: Vec<(TablePlan, TableConfig, String)>,
    resumed: bool,
) -> Result<PlanResponse> {
    let fresh = prepared.len();
    if let Err(e) = plan_tables(config, pg, run_id, prepared, request).await {
        let _ = PgStatusStore::new(pg).finish_run(run_id, status::run_status::FAILED, Some(&e.to_string())).await;
        return Err(e);
    }
    PgStatusStore::new(pg).set_status(run_id, status::run_status::RUNNING, None).await?;
    PgStatusStore::new(pg).set_run_metadata(run_id, "planned", serde_json::Value::Bool(true)).await?;
    if let Some(earlier) = request.reuse_unload {
        // Staged tables load the files this earlier run unloaded (docs/sync.md §13.6).
        PgStatusStore::new(pg).set_run_metadata(run_id, crate::sync::status::REUSE_UNLOAD_KEY, serde_json::json!(earlier)).await?;
    }
    let items = PgStatusStore::new(pg).unfinished_chunks(run_id).await?;
    let tables = PgStatusStore::new(pg).tables(run_id).await?.len() as u32;
    let estimated_rows = PgStatusStore::new(pg).estimated_rows(run_id).await?;
    let manifest_uri = crate::sync::manifest::write(request.manifest_uri.as_deref(), run_id, &items).await?;
    if resumed {
        tracing::info!(%run_id, chunks = items.len(), tables_planned_now = fresh, "resuming run");
    }
    Ok(PlanResponse { run_id, resumed, manifest_uri, tables, chunks: items.len() as u64, estimated_rows })
}

async fn prepare_tables(config: &Config, selected: &Selection<'_>, pg: &Client, request: &PlanRequest) -> Result<Vec<(TablePlan, TableConfig, String)>> {
    let mut prepared = Vec::new();
    for (source_cfg, tables) in selected {
        let sf = crate::source::connect_for_planning(&config.snowflake, &source_cfg.source_sf_database, &source_cfg.source_sf_schema, super::retry::RetryPolicy::from_config(config)).await?;
        let catalog = source_catalog(&sf, source_cfg).await?;
        for t in tables {
            let plan = prepare_table(config, source_cfg, t, &catalog, pg, request).await?;
            check_user_predicates(&sf, &plan).await?;
            prepared.push((plan, (*t).clone(), source_cfg.source_name.clone()));
        }
    }
    Ok(prepared)
}

/// Have Snowflake compile the table's user-written predicates — its
/// `source_filter` and the run's `--where` — against the source table
/// (`SELECT 1 … WHERE … LIMIT 0`, which reads no row), before the run is
/// recorded: a predicate naming a column the table does not have, or
/// otherwise invalid there, is bad input and must not leave a failed run
/// behind (docs/sync.md §2, `--where`). Nothing is sent when the table has neither.
///
/// Errors: [`ErrorKind::ConfigInvalid`] when Snowflake refuses the predicate
/// (its message names the column), naming the table and the predicate; a
/// Snowflake that cannot be reached keeps its kind (`Transient`,
/// `Unreachable`, ...).
async fn check_user_predicates(sf: &SnowflakeSource, plan: &TablePlan) -> Result<()> {
    let checks = [("its source_filter", plan.source_filter.as_deref()), ("--where", plan.run_filter.as_deref())];
    for (what, predicate) in checks {
        let Some(predicate) = predicate else { continue };
        let sql = format!(
            "SELECT 1 FROM {} WHERE ({predicate}) LIMIT 0",
            crate::source::sql::table(&plan.source_database, &plan.source_schema, &plan.source_table)
        );
        if let Err(e) = sf.query_arrow(&sql).await {
            if matches!(e.kind, ErrorKind::SchemaMismatch | ErrorKind::ChunkFailed) {
                return Err(Error::config(format!(
                    "table {}.{}.{}: Snowflake refused {what} {predicate:?}: {}. Fix the predicate (column names are case-sensitive when quoted); nothing was recorded or written.",
                    plan.source_database, plan.source_schema, plan.source_table, e.message
                )));
            }
            return Err(e.context(format!("checking {what} of {}", plan.source_table)));
        }
    }
    Ok(())
}

async fn plan_tables(
    config: &Config,
    pg: &mut Client,
    run_id: Uuid,
    prepared: Vec<(TablePlan, TableConfig, String)>,
    request: &PlanRequest,
) -> Result<()> {
    let mut sessions: BTreeMap<(String, String), SnowflakeSource> = BTreeMap::new();
    for (mut plan, table_cfg, source_name) in prepared {
        let session_key = (plan.source_database.clone(), plan.source_schema.clone());
        if !sessions.contains_key(&session_key) {
            let sf = crate::source::connect_for_planning(&config.snowflake, &plan.source_database, &plan.source_schema, super::retry::RetryPolicy::from_config(config)).await?;
            sessions.insert(session_key.clone(), sf);
        }
        let sf = &sessions[&session_key];
        if !plan.ddl.is_empty() {
            // create_tables / schema_evolution: the target's DDL in its own
            // transaction, before the table's plan (docs/sync.md §3.6).
            let tx = pg.transaction().await.map_err(|e| from_postgres(e, "starting the DDL transaction"))?;
            for statement in &plan.ddl {
                tx.batch_execute(statement).await.map_err(|e| from_postgres(e, format!("running {statement}")))?;
            }
            tx.commit().await.map_err(|e| from_postgres(e, format!("committing the DDL of {}", plan.target_fqn())))?;
            for statement in &plan.ddl {
                tracing::info!(table = %plan.source_table, ddl = %statement, "changed the target table's definition");
            }
            let catalog = sink::table_columns(pg, &plan.target_schema, &plan.target_table).await?;
            for pair in plan.columns.iter_mut() {
                if let Some(c) = catalog.iter().find(|c| c.name == pair.target.name) {
                    pair.target = c.clone();
                }
            }
        }
        let tx = pg.transaction().await.map_err(|e| from_postgres(e, "starting the planning transaction"))?;
        // Truncate decision (logged), inside the same transaction as the table's status rows.
        if table_cfg.truncate_onstart {
            let has_rows = target_has_rows(&tx, &plan).await?;
            if has_rows && !request.allow_truncate {
                return Err(Error::config(format!(
                    "table {} has truncate_onstart and the target {} is not empty; rerun with --allow-truncate (run-level consent) to truncate it",
                    plan.source_table,
                    plan.target_fqn()
                )));
            }
            if has_rows {
                // Not truncated here: chunks load a shadow table that merge swaps
                // in atomically, so a failed run keeps the old rows (sync::replace).
                tracing::warn!(target = %plan.target_fqn(), "target will be replaced when every chunk has loaded (truncate_onstart + --allow-truncate)");
                plan.truncated = true;
            }
        }
        if plan.load_mode == LoadMode::Copy && !table_cfg.uniqueness_columns.is_empty() {
            // First load: duplicate or NULL keys would go in unnoticed (docs/sync.md §3.5).
            crate::sync::keys::check_source_keys(sf, &plan, &table_cfg.uniqueness_columns).await?;
        }
        let chunks = plan_chunks(sf, &plan, &table_cfg).await.map_err(|e| e.context(format!("planning {}", plan.source_table)))?;
        let planned = PlannedTable {
            key: TableKey { run_id, source_database: plan.source_database.clone(), source_schema: plan.source_schema.clone(), source_table: plan.source_table.clone() },
            source_name: source_name.clone(),
            target_database: plan.target_database.clone(),
            target_schema: plan.target_schema.clone(),
            target_table: plan.target_table.clone(),
            load_mode: plan.load_mode,
            strategy: serde_json::to_value(plan.strategy).unwrap().as_str().unwrap_or("single").to_string(),
            watermark_from: plan.watermark_predicate.clone(),
            truncated: plan.truncated,
            plan: serde_json::to_value(&plan).expect("plan serialises"),
        };
        let ranges: Vec<serde_json::Value> = chunks.iter().map(|c| serde_json::to_value(c).expect("chunk serialises")).collect();
        if let Some(change) = &plan.columns_changed {
            // The kept row hashes hash the previous run's columns (docs/reconcile.md §4.2): the rows
            // this run does not rewrite keep them, so reconcile must hash the rows themselves again.
            let reason = format!("the copied columns changed since the previous run ({change}): the kept hashes are of the old columns; a full reconcile refills them");
            crate::reconcile::side_table::invalidate(&tx, &plan.target_fqn(), &reason).await?;
        }
        PgStatusStore::record_table_plan(&tx, &planned, &ranges).await?;
        tx.commit().await.map_err(|e| from_postgres(e, "committing the table plan"))?;
        tracing::info!(table = %plan.source_table, strategy = ?plan.strategy, mode = ?plan.load_mode, chunks = chunks.len(), "planned");
        PgStatusStore::new(pg).touch(run_id).await?;
        failpoints::check(failpoints::PLAN_AFTER_TABLE)?;
    }
    Ok(())
}

/// Resolve the request's source and table selection against the config.
///
/// Errors ([`ErrorKind::ConfigInvalid`]): unknown sources or tables, nothing
/// selected, and a `where_predicate` that is not one boolean expression
/// ([`predicate::check_where`]), not for exactly one table, or for a
/// `truncate_onstart` table (a filtered load would replace the target by a
/// subset).
pub fn select_tables<'a>(config: &'a Config, request: &PlanRequest) -> Result<Vec<(&'a SourceConfig, Vec<&'a TableConfig>)>> {
    let out = select(config, request)?;
    if let Some(w) = &request.where_predicate {
        predicate::check_where(w).map_err(|e| Error::config(format!("--where {w:?} {e}")))?;
        let tables: Vec<&TableConfig> = out.iter().flat_map(|(_, ts)| ts.iter().copied()).collect();
        if tables.len() != 1 || request.tables.is_none() {
            return Err(Error::config(format!(
                "--where re-processes one table; name it with --table (this selection has {} tables)",
                tables.len()
            )));
        }
        if tables[0].truncate_onstart {
            return Err(Error::config(format!(
                "--where cannot be used for table {}: it has truncate_onstart, and a filtered load would replace the whole target by the filtered rows",
                tables[0].source
            )));
        }
    }
    Ok(out)
}

fn select<'a>(config: &'a Config, request: &PlanRequest) -> Result<Vec<(&'a SourceConfig, Vec<&'a TableConfig>)>> {
    let mut out = Vec::new();
    if let Some(names) = &request.sources {
        for n in names {
            config.source(n)?;
        }
    }
    for s in &config.sources {
        let wanted = match &request.sources {
            Some(names) => names.contains(&s.source_name),
            None => s.enabled,
        };
        if !wanted {
            continue;
        }
        let tables: Vec<&TableConfig> = s
            .tables
            .iter()
            .filter(|t| match &request.tables {
                Some(names) => names.iter().any(|n| n.eq_ignore_ascii_case(&t.target) || n.eq_ignore_ascii_case(&t.source)),
                None => t.enabled,
            })
            .collect();
        if !tables.is_empty() {
            out.push((s, tables));
        }
    }
    if let Some(names) = &request.tables {
        for n in names {
            let found = out.iter().any(|(_, ts)| ts.iter().any(|t| n.eq_ignore_ascii_case(&t.target) || n.eq_ignore_ascii_case(&t.source)));
            if !found {
                return Err(Error::config(unknown_table_message(config, request, n)));
            }
        }
    }
    if out.is_empty() {
        return Err(Error::config("no enabled tables selected: nothing to do"));
    }
    Ok(out)
}

/// The error for `--table name` matching no table of the selected sources:
/// the source that has it when that source is disabled or not selected by
/// `--source` (and how to select it), else the tables there are.
fn unknown_table_message(config: &Config, request: &PlanRequest, name: &str) -> String {
    let matches = |t: &TableConfig| name.eq_ignore_ascii_case(&t.target) || name.eq_ignore_ascii_case(&t.source);
    if let Some(s) = config.sources.iter().find(|s| s.tables.iter().any(matches)) {
        let why = match &request.sources {
            Some(names) => format!("--source selects only {}", names.join(", ")),
            None => "that source is disabled (\"enabled\": false)".to_string(),
        };
        return format!("table '{name}' is in source '{}', which this run does not select: {why}; add --source {}", s.source_name, s.source_name);
    }
    let mut known: Vec<String> =
        config.sources.iter().flat_map(|s| s.tables.iter().map(move |t| format!("{}.{} ({})", s.source_name, t.target, t.source))).collect();
    known.sort();
    let more = known.len().saturating_sub(30);
    known.truncate(30);
    if more > 0 {
        known.push(format!("and {more} more"));
    }
    format!(
        "table '{name}' is not in the configuration; --table takes a table's target or source name (any case); the tables are: {}",
        known.join(", ")
    )
}

fn execution_hash(config: &Config, selected: &[(&SourceConfig, Vec<&TableConfig>)], mode: SyncMode, where_predicate: Option<&str>) -> String {
    use md5::{Digest, Md5};
    let mut names: Vec<String> = selected
        .iter()
        .flat_map(|(s, ts)| ts.iter().map(move |t| format!("{}.{}", s.source_name, t.source)))
        .collect();
    names.sort();
    let mut text = format!("{}|{}|{:?}", config.config_hash(), names.join(","), mode);
    if let Some(w) = where_predicate {
        // A filtered run never resumes an unfiltered one, nor one with another filter.
        text.push_str(&format!("|where {w}"));
    }
    hex::encode(Md5::digest(text.as_bytes()))
}

/// The columns of every table of a Snowflake schema, in ordinal order.
#[derive(Debug, Clone, Default)]
pub struct SourceCatalog {
    /// Table name (exact) → its columns.
    pub tables: BTreeMap<String, Vec<SourceColumn>>,
    /// (table, column) → `NUMERIC_PRECISION` (digits) of NUMBER columns, for
    /// the natural target type ([`sink::ddl::natural_column`]).
    pub precision: BTreeMap<(String, String), i64>,
}

impl SourceCatalog {
    /// The natural target column for `column` of `table`, renamed to `name`;
    /// `None` for a type thaw cannot copy. The Snowflake declaration
    /// (`DATA_TYPE`, `NUMERIC_PRECISION`, `NUMERIC_SCALE`) becomes the
    /// standard Arrow field the source decodes the column into
    /// ([`SourceType::standard_field`], docs/sync.md §5.5), and the sink maps
    /// that field ([`sink::ddl::natural_column`], docs/sync.md §5.4).
    pub fn natural_column(&self, table: &str, column: &SourceColumn, name: &str) -> Option<TargetColumn> {
        let precision = self.precision.get(&(table.to_string(), column.name.clone())).copied();
        let logical = LogicalType::from_data_type(&column.data_type)?;
        let precision = precision.filter(|p| (1..=38).contains(p)).unwrap_or(38) as u32;
        let scale = column.scale.filter(|s| (0..=precision as i64).contains(s)).unwrap_or(0) as u32;
        let source = SourceType { name: column.name.clone(), logical, scale, precision: Some(precision), byte_length: None, char_length: None };
        let field = source.standard_field(&Default::default()).ok()?;
        sink::ddl::natural_column(name, &field, column.char_length)
    }
}

/// Read the columns of every table of a source in one query.
pub async fn source_catalog(sf: &SnowflakeSource, s: &SourceConfig) -> Result<SourceCatalog> {
    let q = format!(
        "SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE, NUMERIC_SCALE, CHARACTER_MAXIMUM_LENGTH, NUMERIC_PRECISION FROM {}.INFORMATION_SCHEMA.COLUMNS \
         WHERE TABLE_SCHEMA = {} ORDER BY TABLE_NAME, ORDINAL_POSITION",
        sql::ident(&s.source_sf_database),
        sql::literal(&s.source_sf_schema)
    );
    let rows = sf.execute(&q).await.map_err(|e| e.context(format!("reading the Snowflake catalog of {}.{}", s.source_sf_database, s.source_sf_schema)))?;
    let mut out = SourceCatalog::default();
    for r in rows {
        let get = |i: usize| r.get(i).cloned().flatten();
        let (Some(t), Some(c), Some(ty)) = (get(0), get(1), get(2)) else { continue };
        if let Some(p) = get(5).and_then(|v| v.parse::<f64>().ok()) {
            out.precision.insert((t.clone(), c.clone()), p as i64);
        }
        out.tables.entry(t).or_default().push(SourceColumn {
            name: c,
            data_type: ty.to_ascii_uppercase(),
            scale: get(3).and_then(|v| v.parse::<f64>().ok()).map(|v| v as i64),
            char_length: get(4).and_then(|v| v.parse::<f64>().ok()).map(|v| v as i64),
        });
    }
    Ok(out)
}

async fn target_has_rows<C: tokio_postgres::GenericClient>(pg: &C, plan: &TablePlan) -> Result<bool> {
    let row = pg
        .query_one(&format!("SELECT EXISTS (SELECT 1 FROM {})", plan.target_fqn()), &[])
        .await
        .map_err(|e| from_postgres(e, format!("checking whether {} is empty", plan.target_fqn())))?;
    Ok(row.get(0))
}

/// The plan recorded by the latest run of the same source table into the same
/// target (any run, any outcome), or `None` when there is none or it cannot
/// be read (a plan written by an older thaw). It is what schema drift is
/// measured against (docs/sync.md §3.6).
async fn previous_plan(pg: &Client, s: &SourceConfig, t: &TableConfig) -> Result<Option<TablePlan>> {
    let row = PgStatusStore::new(pg).latest_plan(&table_mapping(s, t)).await?;
    Ok(row.and_then(|plan| serde_json::from_value::<TablePlan>(plan).ok()))
}

/// The watermark floor of the oldest `--where` run of the table since its
/// last completed run without a filter: `Some(floor)` when there is one
/// (`floor` `None` = read every row), `None` when there is none.
async fn earlier_watermark_floor(pg: &Client, s: &SourceConfig, t: &TableConfig) -> Result<Option<Option<String>>> {
    PgStatusStore::new(pg).earlier_watermark_floor(&table_mapping(s, t)).await
}

/// The watermark predicate an incremental run of `t` reads from, given the
/// table's latest earlier run without `--where` (`previous`: its plan JSON
/// and table status) and `current`, the predicate of the target's maximum
/// now (docs/sync.md §3.2):
/// * previous run completed the table → its `watermark_at_plan`: every row
///   the source changed after that run planned has a newer watermark, even
///   when the run copied rows with later watermarks before the change reached
///   a chunk it had already copied;
/// * previous run did not complete the table (failed, interrupted,
///   superseded) → the predicate it read from itself (`None` when it read
///   every row), so the rows of its unfinished chunks are read again;
/// * no previous plan, a plan from before `watermark_at_plan` was recorded,
///   a previous first load (nothing recorded), or another watermark column
///   → `current`.
pub fn previous_run_floor(previous: Option<(serde_json::Value, String)>, t: &TableConfig, current: String) -> Option<String> {
    let Some((plan, status)) = previous else { return Some(current) };
    let text = |k: &str| plan.get(k).and_then(|v| v.as_str()).map(str::to_string);
    if text("target_watermark") != t.target_watermark {
        return Some(current);
    }
    if status == "completed" {
        return Some(text("watermark_at_plan").unwrap_or(current));
    }
    if plan.get("watermark_at_plan").is_none() && plan.get("watermark_predicate").is_none_or(|p| p.is_null()) {
        // A plan recorded before watermark_at_plan existed: as before.
        return Some(current);
    }
    text("watermark_predicate")
}

/// Source columns that have no target column of the same name but exactly
/// one whose name differs only in ASCII case (Snowflake folds unquoted names
/// to upper case, PostgreSQL to lower case), mapped to that target name.
/// Not folded: a target column another source column has exactly, or that
/// `column_mapping` or the watermark rename already writes, or that two
/// source columns fold to (ambiguous: `column_mapping` decides). Without this
/// a `NOTE` source column was silently not copied into `note` (legacy defect
/// L18, docs/sync.md §4.6).
fn case_folded_names(source_cols: &[SourceColumn], target_cols: &[TargetColumn], t: &TableConfig) -> BTreeMap<String, String> {
    let claimed = |name: &str| {
        source_cols.iter().any(|sc| sc.name == name)
            || t.column_mapping.values().any(|m| m == name)
            || t.target_watermark.as_deref() == Some(name)
    };
    let mut out = BTreeMap::new();
    for sc in source_cols {
        if target_cols.iter().any(|tc| tc.name == sc.name) || t.column_mapping.contains_key(&sc.name) || t.source_watermark.as_deref() == Some(&sc.name) {
            continue;
        }
        let candidates: Vec<&TargetColumn> = target_cols.iter().filter(|tc| tc.name.eq_ignore_ascii_case(&sc.name)).collect();
        let [tc] = candidates.as_slice() else { continue };
        let folding = source_cols.iter().filter(|other| other.name.eq_ignore_ascii_case(&tc.name)).count();
        if folding == 1 && !claimed(&tc.name) {
            out.insert(sc.name.clone(), tc.name.clone());
        }
    }
    out
}

/// The source table and target of `t` in source `s`, as earlier runs recorded them.
fn table_mapping(s: &SourceConfig, t: &TableConfig) -> TableMapping {
    TableMapping {
        source_database: s.source_sf_database.clone(),
        source_schema: s.source_sf_schema.clone(),
        source_table: t.source.clone(),
        target_schema: s.target_pg_schema.clone(),
        target_table: t.target.clone(),
    }
}

/// Check one table against both catalogs and decide columns, keys, load mode
/// and watermark. Nothing is written: DDL that `create_tables` or
/// `schema_evolution: "add_columns"` call for is returned in
/// [`TablePlan::ddl`] and run by [`plan_tables`].
///
/// Errors ([`ErrorKind::SchemaMismatch`] unless noted): missing Snowflake
/// table; missing target table without `create_tables` (the message gives
/// the `CREATE TABLE` to run); a configured column missing; schema drift
/// (docs/sync.md §3.6): a new source column without a target column (the
/// message gives the `ALTER TABLE` to run), a paired source column that
/// disappeared, a source column retyped to a type its target column cannot
/// take; [`ErrorKind::ConfigInvalid`] for contradictory options.
async fn prepare_table(
    config: &Config,
    s: &SourceConfig,
    t: &TableConfig,
    catalog: &SourceCatalog,
    pg: &Client,
    request: &PlanRequest,
) -> Result<TablePlan> {
    let at = format!("table {}.{}.{} (source '{}')", s.source_sf_database, s.source_sf_schema, t.source, s.source_name);
    let target_fqn = sink::qualified(&s.target_pg_schema, &t.target);
    let Some(source_cols) = catalog.tables.get(&t.source) else {
        let close: Vec<&String> = catalog.tables.keys().filter(|k| k.eq_ignore_ascii_case(&t.source)).collect();
        let hint = if close.is_empty() { String::new() } else { format!(" (did you mean {:?}? names are case-sensitive)", close[0]) };
        return Err(Error::new(ErrorKind::SchemaMismatch, format!("{at} does not exist in Snowflake{hint}. Fix 'source' in the config or create the table.")));
    };
    let excluded = |name: &str| t.exclude_columns.iter().any(|e| e == name);
    let target_exists = sink::table_exists(pg, &s.target_pg_schema, &t.target).await.map_err(|e| e.context(&at))?;
    let existing_target_cols =
        if target_exists { Some(sink::table_columns(pg, &s.target_pg_schema, &t.target).await.map_err(|e| e.context(&at))?) } else { None };
    let folded = existing_target_cols.as_deref().map(|cols| case_folded_names(source_cols, cols, t)).unwrap_or_default();
    // Map source → target names.
    let target_name = |src: &str| -> String {
        if let Some(m) = t.column_mapping.get(src) {
            return m.clone();
        }
        if let (Some(sw), Some(tw)) = (&t.source_watermark, &t.target_watermark) {
            if sw == src {
                return tw.clone();
            }
        }
        if let Some(name) = folded.get(src) {
            return name.clone();
        }
        src.to_string()
    };
    let key_columns: Vec<String> = t.uniqueness_columns.iter().map(|u| target_name(u)).collect();
    let mut ddl = Vec::new();
    let mut target_cols = if let Some(cols) = existing_target_cols {
        cols
    } else {
        // The table create_tables would build: every copied source column
        // with its natural type, keys NOT NULL via the primary key.
        let mut cols = Vec::new();
        let mut unmappable = Vec::new();
        for sc in source_cols.iter().filter(|c| !excluded(&c.name)) {
            let name = target_name(&sc.name);
            match catalog.natural_column(&t.source, sc, &name) {
                Some(mut c) => {
                    c.nullable = !key_columns.contains(&name);
                    cols.push(c);
                }
                None => unmappable.push(format!("\"{}\" ({})", sc.name, sc.data_type)),
            }
        }
        let statement = sink::ddl::create_table(&s.target_pg_schema, &t.target, &cols, &key_columns);
        if !config.create_tables(t) {
            return Err(Error::new(
                ErrorKind::SchemaMismatch,
                format!(
                    "{at}: target table {}.{} does not exist in PostgreSQL. Create it (schema/ migrations create the standard tables), fix 'target' / 'target_pg_schema' in the config, or set \"create_tables\": true to let plan create it with: {statement}",
                    s.target_pg_schema, t.target
                ),
            ));
        }
        // CREATE TABLE in a missing schema would fail only once the run is recorded.
        let schema_exists: bool = pg
            .query_one("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", &[&s.target_pg_schema])
            .await
            .map_err(|e| from_postgres(e, format!("{at}: looking up target schema {}", sink::ident(&s.target_pg_schema))))?
            .get(0);
        if !schema_exists {
            return Err(Error::new(
                ErrorKind::SchemaMismatch,
                format!(
                    "{at}: target schema {schema} does not exist in PostgreSQL database {}, so create_tables cannot create {target_fqn}. Create the schema (CREATE SCHEMA {schema}) or fix 'target_pg_schema' in the config; nothing was recorded or written",
                    s.target_pg_database,
                    schema = sink::ident(&s.target_pg_schema)
                ),
            ));
        }
        if !unmappable.is_empty() {
            return Err(drift_error(
                &at,
                &format!("create_tables cannot create {target_fqn}: source column(s) "),
                &unmappable,
                ", ",
                " have no PostgreSQL type thaw maps to. List them in exclude_columns or create the table yourself.",
            ));
        }
        ddl.push(statement);
        cols
    };
    let source_has = |name: &str| source_cols.iter().any(|c| c.name == name);
    // Snowflake folds unquoted names to upper case, PostgreSQL to lower case:
    // a name that differs only in case says which one was meant.
    let case_hint = |name: &str, names: Vec<&str>| {
        names.into_iter().find(|n| n.eq_ignore_ascii_case(name)).map(|n| format!(" (did you mean \"{n}\"? names are case-sensitive)")).unwrap_or_default()
    };
    let in_source = |name: &str| case_hint(name, source_cols.iter().map(|c| c.name.as_str()).collect());
    let in_target = |name: &str| case_hint(name, target_cols.iter().map(|c| c.name.as_str()).collect());
    let target_has = |name: &str| target_cols.iter().any(|c| c.name == name);
    let previous = if target_exists { previous_plan(pg, s, t).await? } else { None };
    let mut missing = Vec::new();
    // A column_mapping entry whose source column is gone: drift when the previous plan copied it (the
    // drift check below names it and the way out), nothing at all when it is excluded — the way out:
    // its mapping names no column thaw copies (docs/sync.md §3.6).
    let copied_before = |c: &str| previous.as_ref().is_some_and(|p| p.columns.iter().any(|pc| pc.source.name == c));
    let mapped = t.column_mapping.keys().filter(|c| !excluded(c) && !copied_before(c));
    for c in t.chunking_columns.iter().chain(t.source_watermark.iter()).chain(mapped).chain(t.truncate_to_date.iter()) {
        if !source_has(c) {
            missing.push(format!("source column \"{c}\"{}", in_source(c)));
        }
    }
    for c in &t.exclude_columns {
        // A column PostgreSQL owns may exist in the target only, under its name or the one column_mapping
        // gives it. Once the table has been planned, a source column may also be gone whatever its target
        // column is called (mapped, paired in the other case, §4.6, or none): excluding a dropped column is
        // the way out of its drift error, and dropping an excluded one is not drift (docs/sync.md §3.6).
        // Before the first plan such a name is most likely a typo.
        if !source_has(c) && !target_has(c) && !t.column_mapping.get(c).is_some_and(|m| target_has(m)) {
            if previous.is_none() {
                missing.push(format!("source column \"{c}\"{}", in_source(c)));
            } else {
                tracing::warn!(table = %t.source, column = %c, "exclude_columns names a column neither the source nor the target has (dropped from Snowflake?)");
            }
        }
    }
    for (u, k) in t.uniqueness_columns.iter().zip(&key_columns) {
        if !source_has(u) {
            missing.push(format!("uniqueness column \"{u}\" in the source{}", in_source(u)));
        } else if !target_has(k) {
            missing.push(format!("uniqueness column \"{k}\" in the target{}", in_target(k)));
        }
    }
    if let Some(tw) = &t.target_watermark {
        if !target_has(tw) {
            missing.push(format!("target watermark column \"{tw}\"{}", in_target(tw)));
        }
    }
    for (c, m) in &t.column_mapping {
        if !excluded(c) && !target_has(m) {
            missing.push(format!("mapped target column \"{m}\"{}", in_target(m)));
        }
    }
    if !missing.is_empty() {
        return Err(Error::new(
            ErrorKind::SchemaMismatch,
            format!("{at} → {}.{}: {} do(es) not exist. Fix the config or the table definitions.", s.target_pg_schema, t.target, missing.join(", ")),
        ));
    }
    if let (Some(name), Some(&declared)) = (t.chunking_columns.first(), t.chunking_column_types.first()) {
        let column = source_cols.iter().find(|c| &c.name == name).expect("checked above");
        if let Some(fits) = chunk_key_type_mismatch(declared, &column.data_type) {
            return Err(Error::config(format!(
                "{at}: chunking column \"{name}\" is declared {} (chunking_column_types[0]) but its Snowflake type is {}; declare it {fits}",
                match declared {
                    ChunkKeyType::Integer => "an integer",
                    ChunkKeyType::Temporal => "a date or timestamp",
                    ChunkKeyType::Text => "text",
                },
                column.data_type
            )));
        }
    }
    for c in t.uniqueness_columns.iter().chain(t.source_watermark.iter()) {
        if excluded(c) {
            missing.push(format!("column \"{c}\" (it is both a key/watermark and in exclude_columns)"));
        }
    }
    if !missing.is_empty() {
        return Err(Error::config(format!("{at}: cannot exclude {}", missing.join(", "))));
    }
    // Schema drift (docs/sync.md §3.6), measured against the previous plan.
    let evolution = config.schema_evolution(t);
    let mut new_columns = Vec::new();
    let mut unmappable = Vec::new();
    for sc in source_cols {
        let name = target_name(&sc.name);
        if excluded(&sc.name) || target_has(&name) {
            continue;
        }
        let seen_before = previous.as_ref().is_some_and(|p| p.dropped_columns.contains(&sc.name) || p.columns.iter().any(|c| c.source.name == sc.name));
        let drift = match evolution {
            Some(SchemaEvolution::AddColumns) | Some(SchemaEvolution::Error) => true,
            None => previous.is_some() && !seen_before,
        };
        if !drift {
            continue;
        }
        match catalog.natural_column(&t.source, sc, &name) {
            Some(c) => new_columns.push((sc.clone(), c)),
            None => unmappable.push(format!("\"{}\" ({})", sc.name, sc.data_type)),
        }
    }
    if !unmappable.is_empty() {
        return Err(drift_error(
            &at,
            "source column(s) ",
            &unmappable,
            ", ",
            &format!(" have no column in {target_fqn} and no PostgreSQL type thaw maps to. Add a column of a supported type (docs/sync.md §5.2) or list them in exclude_columns."),
        ));
    }
    if !new_columns.is_empty() {
        let statements: Vec<String> = new_columns.iter().map(|(_, c)| sink::ddl::add_column(&s.target_pg_schema, &t.target, c)).collect();
        if evolution == Some(SchemaEvolution::AddColumns) {
            for ((_, c), statement) in new_columns.into_iter().zip(statements) {
                target_cols.push(c);
                ddl.push(statement);
            }
        } else {
            let names: Vec<String> = new_columns.iter().map(|(sc, _)| format!("\"{}\" ({})", sc.name, sc.data_type)).collect();
            return Err(Error::new(
                ErrorKind::SchemaMismatch,
                format!(
                    "{at}: source column(s) {} have no column in {target_fqn}{}. Add them with: {} — or set \"schema_evolution\": \"add_columns\" to let plan add them, or list them in exclude_columns to skip them.",
                    names.join(", "),
                    if evolution.is_none() { " (new since the previous run)" } else { "" },
                    statements.join(" ")
                ),
            ));
        }
    }
    let target_has = |name: &str| target_cols.iter().any(|c| c.name == name);
    if let Some(prev) = &previous {
        let mut gone = Vec::new();
        let mut retyped = Vec::new();
        let mut target_gone = Vec::new();
        for pc in &prev.columns {
            if excluded(&pc.source.name) || excluded(&pc.target.name) {
                continue;
            }
            if !target_has(&pc.target.name) {
                // A copied column whose target column is gone (dropped or renamed in PostgreSQL) and
                // that no target column takes now would silently stop being copied and reconciled.
                if source_cols.iter().any(|sc| sc.name == pc.source.name) && !target_has(&target_name(&pc.source.name)) {
                    target_gone.push(format!("\"{}\" (filled from source column \"{}\")", pc.target.name, pc.source.name));
                }
                continue;
            }
            match source_cols.iter().find(|sc| sc.name == pc.source.name) {
                None => gone.push(format!("\"{}\" (copied into \"{}\")", pc.source.name, pc.target.name)),
                Some(sc) => {
                    let tc = target_cols.iter().find(|c| c.name == pc.target.name).expect("checked above");
                    let fits = LogicalType::from_data_type(&sc.data_type).is_some_and(|l| sink::encode::supported_targets(l).contains(&tc.pg_type));
                    if !fits {
                        retyped.push(format!(
                            "\"{}\" is now Snowflake {} (was {}) and cannot go into target column \"{}\" ({})",
                            sc.name,
                            sc.data_type,
                            pc.source.data_type,
                            tc.name,
                            sink::ddl::sql_type(tc)
                        ));
                    }
                }
            }
        }
        if !gone.is_empty() {
            return Err(drift_error(
                &at,
                "source column(s) ",
                &gone,
                ", ",
                &format!(" no longer exist in Snowflake but their target columns in {target_fqn} do. Restore the source column(s), drop the target column(s), or list them in exclude_columns if PostgreSQL now owns them."),
            ));
        }
        if !target_gone.is_empty() {
            return Err(drift_error(
                &at,
                "target column(s) ",
                &target_gone,
                ", ",
                &format!(" that the previous run copied no longer exist in {target_fqn} (dropped or renamed): their source columns would silently stop being copied and reconciled. Restore the target column(s) (ALTER TABLE … ADD COLUMN, or rename them back), or list the source column(s) in exclude_columns to stop copying them."),
            ));
        }
        if !retyped.is_empty() {
            return Err(drift_error(
                &at,
                "source column(s) changed type: ",
                &retyped,
                "; ",
                ". Change the target column(s) to a type that accepts the new source type (docs/sync.md §5.2) or restore the source type.",
            ));
        }
    }
    let mut columns = Vec::new();
    let mut dropped = Vec::new();
    for tc in &target_cols {
        if let Some(sc) = source_cols.iter().find(|sc| !excluded(&sc.name) && target_name(&sc.name) == tc.name) {
            columns.push(ColumnPair { source: sc.clone(), target: tc.clone() });
        }
    }
    for sc in source_cols {
        if !excluded(&sc.name) && !target_cols.iter().any(|tc| tc.name == target_name(&sc.name)) {
            dropped.push(sc.name.clone());
        }
    }
    // A type pair §5.2 refuses is bad input: refuse it here, before anything is
    // written (it used to record a run whose every chunk failed, exit 1).
    let refused: Vec<String> = columns
        .iter()
        .filter_map(|p| {
            let allowed = sink::encode::supported_targets(LogicalType::from_data_type(&p.source.data_type)?);
            (!allowed.contains(&p.target.pg_type)).then(|| {
                let names: Vec<&str> = allowed.iter().map(|t| sink::encode::pg_name(*t)).collect();
                format!(
                    "\"{}\" (Snowflake {}) into \"{}\" ({}; it takes {})",
                    p.source.name,
                    p.source.data_type,
                    p.target.name,
                    sink::ddl::sql_type(&p.target),
                    names.join(", ")
                )
            })
        })
        .collect();
    if !refused.is_empty() {
        return Err(Error::new(
            ErrorKind::TypeUnsupported,
            format!(
                "{at}: thaw cannot copy source column(s) {} of {target_fqn}: change the target column(s) to a type listed (docs/sync.md §5.2), or list the source column(s) in exclude_columns; nothing was written",
                refused.join(", ")
            ),
        ));
    }
    if columns.is_empty() {
        return Err(Error::new(ErrorKind::SchemaMismatch, format!("{at}: no source column matches a column of {}.{} by name; add column_mapping", s.target_pg_schema, t.target)));
    }
    if target_exists {
        let unfilled: Vec<String> = sink::required_columns(pg, &s.target_pg_schema, &t.target)
            .await
            .map_err(|e| e.context(&at))?
            .into_iter()
            .filter(|name| !columns.iter().any(|c| &c.target.name == name))
            .map(|name| format!("\"{name}\""))
            .collect();
        if !unfilled.is_empty() {
            return Err(Error::new(
                ErrorKind::SchemaMismatch,
                format!(
                    "{at}: target column(s) {} of {target_fqn} are NOT NULL without a default and no source column fills them, so every row would be refused. \
                     Map a source column to them (column_mapping), give them a DEFAULT, or make them nullable.",
                    unfilled.join(", ")
                ),
            ));
        }
    }
    if !dropped.is_empty() {
        tracing::warn!(table = %t.source, columns = ?dropped, "source columns without a target column are not copied");
    }
    let row_bytes = t.estimated_row_bytes.unwrap_or_else(|| estimate_row_bytes(&columns)).max(1);
    let empty = !target_exists || {
        let row = pg
            .query_one(&format!("SELECT NOT EXISTS (SELECT 1 FROM {})", sink::qualified(&s.target_pg_schema, &t.target)), &[])
            .await
            .map_err(|e| from_postgres(e, format!("checking whether {}.{} is empty", s.target_pg_schema, t.target)))?;
        row.get::<_, bool>(0)
    };
    if t.truncate_onstart && !empty && !request.allow_truncate {
        // Refused here, before the run is recorded (plan_tables checks again
        // inside the table's planning transaction): a refusal used to leave
        // a `failed` run behind that the next command resumed.
        return Err(Error::config(format!(
            "table {} has truncate_onstart and the target {}.{} is not empty; rerun with --allow-truncate (run-level consent) to truncate it",
            t.source, s.target_pg_schema, t.target
        )));
    }
    let will_truncate = t.truncate_onstart && (empty || request.allow_truncate);
    let load_mode = if empty || will_truncate {
        LoadMode::Copy
    } else if t.insert_only_mode {
        LoadMode::InsertOnly
    } else if !key_columns.is_empty() {
        LoadMode::Upsert
    } else if t.truncate_onstart {
        return Err(Error::config(format!(
            "{at}: truncate_onstart is set and the target is not empty; rerun with --allow-truncate to reload it"
        )));
    } else {
        return Err(Error::config(format!(
            "{at}: the target {}.{} already has rows and the table has no uniqueness_columns, so rows cannot be upserted without duplicating them. Set uniqueness_columns, or truncate_onstart with --allow-truncate.",
            s.target_pg_schema, t.target
        )));
    };
    // First full loads (COPY) may use the larger `batch_size_copy_mode`; the
    // byte budget caps both.
    let batch_size = match (load_mode, t.batch_size_copy_mode) {
        (LoadMode::Copy, Some(copy_batch)) => config.batch_size(t).max(copy_batch),
        _ => config.batch_size(t),
    };
    let budget_rows = (config.chunk_byte_budget() / row_bytes).max(1);
    let batch_rows = batch_size.min(budget_rows);
    if matches!(load_mode, LoadMode::Upsert | LoadMode::InsertOnly) {
        check_unique_index(pg, &s.target_pg_schema, &t.target, &key_columns).await.map_err(|e| e.context(&at))?;
    }
    let filtered = request.where_predicate.is_some();
    let target_watermark = match (&t.source_watermark, &t.target_watermark) {
        // A filtered run records the floor whatever the mode (docs/sync.md §3.2).
        (Some(sw), Some(tw)) if !will_truncate && !empty && (filtered || request.mode == SyncMode::Incremental) => {
            let tcol = target_cols.iter().find(|c| &c.name == tw).expect("checked above");
            let scol = source_cols.iter().find(|c| &c.name == sw).expect("checked above");
            watermark_predicate(pg, &s.target_pg_schema, &t.target, tcol, scol).await?
        }
        _ => None,
    };
    // Recorded in full mode too, so the night after a --full run reads from
    // where that run started rather than from the maximum it left behind.
    let watermark_at_plan = match (&target_watermark, &t.source_watermark, &t.target_watermark) {
        (Some(w), _, _) => Some(w.clone()),
        (None, Some(sw), Some(tw)) if !empty && !will_truncate => {
            let tcol = target_cols.iter().find(|c| &c.name == tw).expect("checked above");
            let scol = source_cols.iter().find(|c| &c.name == sw).expect("checked above");
            watermark_predicate(pg, &s.target_pg_schema, &t.target, tcol, scol).await?
        }
        _ => None,
    };
    let (watermark_predicate, watermark_floor) = if filtered {
        // A filtered run reads every row its filter selects, whatever its watermark.
        (None, target_watermark)
    } else {
        match (target_watermark, earlier_watermark_floor(pg, s, t).await?) {
            (Some(_), Some(floor)) => {
                tracing::info!(table = %t.source, floor = ?floor, "a run with --where raised the target's watermark since the last full pass; reading from the watermark before it");
                (floor, None)
            }
            (Some(current), None) => {
                let previous = PgStatusStore::new(pg).latest_unfiltered_table(&table_mapping(s, t)).await?;
                (previous_run_floor(previous, t, current), None)
            }
            (w, _) => (w, None),
        }
    };
    let strategy = choose_strategy(t)?;
    let changed = previous.as_ref().and_then(|p| columns_changed(&p.columns, &columns));
    Ok(TablePlan {
        source_name: s.source_name.clone(),
        source_database: s.source_sf_database.clone(),
        source_schema: s.source_sf_schema.clone(),
        source_table: t.source.clone(),
        target_database: s.target_pg_database.clone(),
        target_schema: s.target_pg_schema.clone(),
        target_table: t.target.clone(),
        columns,
        dropped_columns: dropped,
        key_columns,
        target_watermark: t.target_watermark.clone(),
        load_mode,
        strategy,
        source_filter: t.source_filter.clone(),
        watermark_predicate,
        run_filter: request.where_predicate.clone(),
        watermark_floor,
        watermark_at_plan,
        batch_rows,
        row_bytes,
        parallel_threads: config.parallel_threads(t),
        truncated: false,
        ddl,
        columns_changed: changed,
    })
}

/// How the copied columns `now` differ from `before` (a previous plan's):
/// `added "a", no longer copied "b", retyped "c"`, each part only when it
/// applies; `None` when both copy the same source columns, of the same
/// Snowflake types, into the same target columns of the same types, in the
/// same order — what a row's reconcile hash is made of (docs/reconcile.md §4.2).
pub fn columns_changed(before: &[ColumnPair], now: &[ColumnPair]) -> Option<String> {
    let signature = |c: &ColumnPair| (c.source.name.clone(), c.source.data_type.clone(), c.target.name.clone(), sink::ddl::sql_type(&c.target));
    if before.iter().map(signature).eq(now.iter().map(signature)) {
        return None;
    }
    let names = |cs: Vec<&ColumnPair>| cs.iter().map(|c| sink::ident(&c.target.name)).collect::<Vec<_>>().join(", ");
    let added: Vec<&ColumnPair> = now.iter().filter(|c| !before.iter().any(|b| b.target.name == c.target.name)).collect();
    let removed: Vec<&ColumnPair> = before.iter().filter(|b| !now.iter().any(|c| c.target.name == b.target.name)).collect();
    let retyped: Vec<&ColumnPair> =
        now.iter().filter(|c| before.iter().any(|b| b.target.name == c.target.name && signature(b) != signature(c))).collect();
    let mut parts = Vec::new();
    if !added.is_empty() {
        parts.push(format!("added {}", names(added)));
    }
    if !removed.is_empty() {
        parts.push(format!("no longer copied {}", names(removed)));
    }
    if !retyped.is_empty() {
        parts.push(format!("retyped or remapped {}", names(retyped)));
    }
    if parts.is_empty() {
        parts.push("reordered".to_string());
    }
    Some(parts.join(", "))
}

/// The schema-mismatch error of a drift check (unmappable, gone or retyped
/// source columns): `"{at}: {lead}{columns joined by separator}{remedy}"`,
/// kind [`ErrorKind::SchemaMismatch`] (docs/sync.md §3.6).
fn drift_error(at: &str, lead: &str, columns: &[String], separator: &str, remedy: &str) -> Error {
    Error::new(ErrorKind::SchemaMismatch, format!("{at}: {lead}{}{remedy}", columns.join(separator)))
}

fn choose_strategy(t: &TableConfig) -> Result<ChunkingStrategy> {
    if let Some(s) = t.chunking_strategy {
        return Ok(s);
    }
    Ok(match t.chunking_column_types.first().copied() {
        None => ChunkingStrategy::Single,
        Some(ChunkKeyType::Integer) => ChunkingStrategy::NumericRange,
        Some(ChunkKeyType::Temporal) => ChunkingStrategy::DateRange,
        Some(ChunkKeyType::Text) => ChunkingStrategy::Keyset,
    })
}

/// When the declared type of a chunking column (`chunking_column_types`)
/// cannot chunk a Snowflake column of type `data_type` (`DATA_TYPE` of
/// `INFORMATION_SCHEMA.COLUMNS`), the declarations that can, as advice;
/// `None` when it fits. An integer range needs a number or numeric text, a
/// date range a date, timestamp or date text (docs/sync.md §3.1); text
/// (keyset) and unknown source types are not refused.
pub fn chunk_key_type_mismatch(declared: ChunkKeyType, data_type: &str) -> Option<&'static str> {
    let t = data_type.to_ascii_uppercase();
    let temporal = t == "DATE" || t.starts_with("TIMESTAMP") || t == "DATETIME";
    let numeric = matches!(t.as_str(), "NUMBER" | "FIXED" | "DECIMAL" | "NUMERIC" | "INT" | "INTEGER" | "BIGINT" | "SMALLINT" | "TINYINT" | "BYTEINT");
    let unorderable = matches!(t.as_str(), "BOOLEAN" | "BINARY" | "VARBINARY" | "VARIANT" | "OBJECT" | "ARRAY" | "TIME" | "GEOGRAPHY" | "GEOMETRY");
    match declared {
        ChunkKeyType::Integer if temporal => Some("a date or timestamp (\"date\", \"timestamp\") for date ranges, or text (\"varchar\") for key ranges"),
        ChunkKeyType::Temporal if numeric || matches!(t.as_str(), "FLOAT" | "REAL" | "DOUBLE") => {
            Some("an integer (\"bigint\") for numeric ranges, or text (\"varchar\") for key ranges")
        }
        ChunkKeyType::Integer | ChunkKeyType::Temporal if unorderable => {
            Some("text (\"varchar\") for key ranges, or choose another chunking column")
        }
        _ => None,
    }
}

/// Estimated bytes per row from the source types (used when the config gives none).
pub fn estimate_row_bytes(columns: &[ColumnPair]) -> u64 {
    columns
        .iter()
        .map(|c| match c.source.data_type.as_str() {
            "TEXT" | "VARCHAR" => c.source.char_length.map(|l| (l as u64).min(64)).unwrap_or(32) + 8,
            "NUMBER" | "FIXED" | "DECIMAL" => 16,
            "FLOAT" | "REAL" | "DOUBLE" => 8,
            "BOOLEAN" => 1,
            "DATE" => 4,
            "TIME" => 8,
            t if t.starts_with("TIMESTAMP") => 16,
            "BINARY" => 64,
            "VARIANT" | "OBJECT" | "ARRAY" => 256,
            _ => 32,
        })
        .sum::<u64>()
        .max(8)
}

async fn check_unique_index(pg: &Client, schema: &str, table: &str, keys: &[String]) -> Result<()> {
    let rows = pg
        .query(
            "SELECT array_agg(a.attname::text ORDER BY a.attname) FROM pg_index i \
             JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY(i.indkey) \
             WHERE n.nspname = $1 AND c.relname = $2 AND i.indisunique AND i.indpred IS NULL \
             GROUP BY i.indexrelid",
            &[&schema, &table],
        )
        .await
        .map_err(|e| from_postgres(e, "reading unique indexes"))?;
    let mut wanted: Vec<String> = keys.to_vec();
    wanted.sort();
    if rows.iter().any(|r| r.get::<_, Vec<String>>(0) == wanted) {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::SchemaMismatch,
            format!(
                "upserts into {schema}.{table} need a unique index on exactly ({}); none exists. Create one with: {} — or fix uniqueness_columns.",
                keys.join(", "),
                unique_index_hint(schema, table, keys)
            ),
        ))
    }
}

/// The statement that creates the unique index upserts need, with every
/// identifier quoted (valid SQL for any schema, table or column name):
/// `CREATE UNIQUE INDEX ON "schema"."table" ("k1", "k2");`.
pub fn unique_index_hint(schema: &str, table: &str, keys: &[String]) -> String {
    format!("CREATE UNIQUE INDEX ON {} ({});", sink::qualified(schema, table), keys.iter().map(|k| sink::ident(k)).collect::<Vec<_>>().join(", "))
}

async fn watermark_predicate(pg: &Client, schema: &str, table: &str, target: &TargetColumn, source: &SourceColumn) -> Result<Option<String>> {
    use crate::sink::PgType;
    let col = sink::ident(&target.name);
    let expr = match target.pg_type {
        PgType::Timestamptz => format!("to_char(max({col}) AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')"),
        PgType::Timestamp => format!("to_char(max({col}), 'YYYY-MM-DD HH24:MI:SS.US')"),
        // Not `::text`, which follows the session's DateStyle ('SQL, DMY' gives
        // 03/01/2026, which Snowflake's AUTO input format reads as March 1).
        PgType::Date => format!("to_char(max({col}), 'YYYY-MM-DD')"),
        // Not `::text` either: it prints as many digits as the session's
        // extra_float_digits asks (≤ 0 rounds, so a night could skip or
        // re-read rows); read the binary value and print it in Rust.
        PgType::Float4 | PgType::Float8 => format!("max({col})"),
        _ => format!("max({col})::text"),
    };
    let row = pg
        .query_one(&format!("SELECT {expr} FROM {}", sink::qualified(schema, table)), &[])
        .await
        .map_err(|e| from_postgres(e, format!("reading the watermark of {schema}.{table}")))?;
    let max: Option<String> = match target.pg_type {
        PgType::Float4 => row.get::<_, Option<f32>>(0).map(float_text),
        PgType::Float8 => row.get::<_, Option<f64>>(0).map(float_text),
        _ => row.get(0),
    };
    let Some(max) = max else { return Ok(None) };
    Ok(Some(format!("{} >= {}", sql::ident(&source.name), watermark_literal(target.pg_type, &source.data_type, &max))))
}

/// A float watermark as exact text: the shortest decimal that reads back as
/// the same `f32`/`f64` (`0.1`, `1.2345678901234567`), in exponent form
/// when spelled out it would pass 30 characters (`1e300`: Snowflake's exact
/// numbers stop at 38 digits), whatever the session's `extra_float_digits`;
/// `NaN`, `inf`, `-inf` otherwise ([`watermark_literal`] quotes those).
fn float_text<F: std::fmt::Display + std::fmt::LowerExp>(value: F) -> String {
    let plain = value.to_string();
    if plain.len() > 30 { format!("{value:e}") } else { plain }
}

/// The Snowflake literal of a target's maximum watermark `max` (text as
/// `watermark_predicate` reads it: timestamps `YYYY-MM-DD HH:MM:SS.ffffff`,
/// a `timestamptz` in UTC) compared with a source column of Snowflake type
/// `source_type` (docs/sync.md §3.2). A zoned source column (TIMESTAMP_TZ /
/// LTZ) gets a literal with an explicit `+00:00`, whether the target is a
/// `timestamptz` or a `timestamp` holding the instant's UTC wall clock
/// (docs/sync.md §5.2): an offset-less literal would be read in the
/// session's `TIMEZONE` (America/Los_Angeles unless the account changed it)
/// and skip the rows of the hours in between. Likewise a `date` target of a
/// zoned source: a DATE compared with a zoned column is midnight in the
/// session's `TIMEZONE`, so the literal is the earliest instant whose wall
/// clock falls on that day as thaw wrote it (TIMESTAMP_TZ: in its own offset,
/// at most +14:00; TIMESTAMP_LTZ: in UTC).
pub fn watermark_literal(target_type: crate::sink::PgType, source_type: &str, max: &str) -> String {
    use crate::sink::PgType;
    match (target_type, source_type) {
        (PgType::Timestamptz | PgType::Timestamp, "TIMESTAMP_TZ" | "TIMESTAMP_LTZ") => {
            format!("CAST({} AS {source_type})", sql::literal(&format!("{max}+00:00")))
        }
        (PgType::Timestamptz | PgType::Timestamp, _) => format!("CAST({} AS TIMESTAMP_NTZ)", sql::literal(max)),
        (PgType::Date, "TIMESTAMP_TZ") => format!("CAST({} AS TIMESTAMP_TZ)", sql::literal(&format!("{max} 00:00:00+14:00"))),
        (PgType::Date, "TIMESTAMP_LTZ") => format!("CAST({} AS TIMESTAMP_LTZ)", sql::literal(&format!("{max} 00:00:00+00:00"))),
        (PgType::Date, _) => format!("CAST({} AS DATE)", sql::literal(max)),
        // NaN and the infinities are no numeric literals: Snowflake reads them as FLOAT strings.
        (PgType::Float4 | PgType::Float8, _) if !max.parse::<f64>().is_ok_and(f64::is_finite) => {
            format!("CAST({} AS FLOAT)", sql::literal(max))
        }
        (PgType::Int2 | PgType::Int4 | PgType::Int8 | PgType::Numeric | PgType::Float4 | PgType::Float8, _) => max.to_string(),
        _ => sql::literal(max),
    }
}

/// Run the planning aggregate(s) for one table and return its chunks: the
/// queries live here, the packing in the pure packers of
/// [`crate::sync::chunk`].
///
/// Errors: a failed Snowflake query (its kind), and
/// [`ErrorKind::ConfigInvalid`] for a `grouped_values` column with more than
/// [`chunk::MAX_GROUPED_VALUES`] distinct values or of a type it cannot list.
pub async fn plan_chunks(
    sf: &SnowflakeSource,
    plan: &TablePlan,
    t: &TableConfig,
) -> Result<Vec<ChunkRange>> {
    let planned = plan_specs(sf, plan, t).await?;
    Ok(planned
        .into_iter()
        .map(|c| ChunkRange::new(plan.strategy, c))
        .collect())
}

/// How a source column of type `data_type` compares as a chunking key.
fn key_kind(data_type: &str, strategy: ChunkingStrategy) -> KeyKind {
    let text = matches!(
        data_type,
        "TEXT" | "VARCHAR" | "STRING" | "CHAR" | "CHARACTER"
    );
    let temporal = data_type == "DATE" || data_type.starts_with("TIMESTAMP");
    match strategy {
        ChunkingStrategy::NumericRange if text => KeyKind::IntegerText,
        ChunkingStrategy::NumericRange => KeyKind::Integer,
        ChunkingStrategy::DateRange => KeyKind::Day,
        ChunkingStrategy::GroupedValues if temporal => KeyKind::Day,
        ChunkingStrategy::GroupedValues if text => KeyKind::Text,
        ChunkingStrategy::GroupedValues
            if matches!(
                data_type,
                "NUMBER" | "FIXED" | "DECIMAL" | "INT" | "INTEGER" | "BIGINT" | "SMALLINT"
            ) =>
        {
            KeyKind::Integer
        }
        _ if text => KeyKind::Text,
        _ => KeyKind::Other,
    }
}

async fn plan_specs(
    sf: &SnowflakeSource,
    plan: &TablePlan,
    t: &TableConfig,
) -> Result<Vec<PlannedChunk>> {
    let fqn = plan.source_fqn();
    let base = plan.base_predicate();
    let batch = plan.batch_rows.max(1);
    // Rows per chunk once the table's rows are counted: the batch, lowered
    // so every worker gets a chunk (chunk::spread_batch, docs/sync.md §3.3).
    let spread = |rows: u64| chunk::spread_batch(rows, batch, plan.parallel_threads, chunk::MIN_SPREAD_ROWS);
    let key = t.chunking_columns.first();
    let key_source = key.and_then(|k| {
        plan.columns
            .iter()
            .map(|c| &c.source)
            .find(|c| &c.name == k)
            .cloned()
    });
    let data_type = key_source
        .as_ref()
        .map(|c| c.data_type.clone())
        .unwrap_or_default();
    let (strategy, k) = match (plan.strategy, key) {
        (ChunkingStrategy::Single, _) | (_, None) => {
            let rows = count(sf, &format!("SELECT COUNT(*) FROM {fqn} WHERE {base}")).await?;
            return Ok(chunk::single(rows));
        }
        (s, Some(k)) => (s, k),
    };
    let column = KeyColumn::new(k.clone(), key_kind(&data_type, strategy));
    let kx = predicate_key(&column);
    match strategy {
        ChunkingStrategy::Single => unreachable!("handled above"),
        ChunkingStrategy::NumericRange => {
            let rows = sf
                .execute(&format!(
                    "SELECT COUNT(*), COUNT({kx}), MIN({kx}), MAX({kx}) FROM {fqn} WHERE {base}"
                ))
                .await?;
            let r = rows.into_iter().next().unwrap_or_default();
            let get = |i: usize| r.get(i).cloned().flatten();
            let total = parse_u64(get(0));
            let mut planner = NumericPlanner::new(
                column,
                total,
                parse_u64(get(1)),
                parse_i128(get(2)),
                parse_i128(get(3)),
                spread(total),
            );
            while let Some(req) = planner.next_request() {
                let hist = sf
                    .execute(&format!(
                        "SELECT FLOOR(({kx} - {from}) / {width}) AS b, COUNT(*) FROM {fqn} WHERE {base} AND {kx} >= {from} AND {kx} < {to} GROUP BY 1",
                        from = req.from,
                        to = req.to,
                        width = req.width
                    ))
                    .await?;
                let counts: Vec<(i128, u64)> = hist
                    .into_iter()
                    .filter_map(|r| {
                        Some((
                            parse_i128(r.first().cloned().flatten())?,
                            parse_u64(r.get(1).cloned().flatten()),
                        ))
                    })
                    .collect();
                planner.feed(req, &counts);
            }
            Ok(planner.finish())
        }
        ChunkingStrategy::DateRange => {
            let rows = sf
                .execute(&format!(
                    "SELECT {kx} AS d, COUNT(*) FROM {fqn} WHERE {base} GROUP BY 1"
                ))
                .await?;
            let mut days = Vec::new();
            let mut nulls = 0u64;
            for r in rows {
                let n = parse_u64(r.get(1).cloned().flatten());
                match r.first().cloned().flatten().and_then(|d| parse_day(&d)) {
                    Some(d) => days.push((d, n)),
                    None => nulls += n,
                }
            }
            let total: u64 = days.iter().map(|d| d.1).sum::<u64>() + nulls;
            let batch = spread(total);
            if total <= batch {
                return Ok(chunk::single(total));
            }
            let secondary = t.uniqueness_columns.first().map(|u| {
                let ty = plan
                    .columns
                    .iter()
                    .find(|c| &c.source.name == u)
                    .map(|c| c.source.data_type.clone())
                    .unwrap_or_default();
                KeyColumn::new(u.clone(), key_kind(&ty, ChunkingStrategy::Keyset))
            });
            let mut out = Vec::new();
            for d in chunk::pack_days(&column, &days, nulls, batch) {
                match (d, &secondary) {
                    (DayChunk::Chunk(c), _) => out.push(c),
                    (DayChunk::Oversized(c), Some(sk)) => {
                        // One day over the batch: split it by ranges of the first uniqueness column.
                        let scope = format!(
                            "{base} AND ({})",
                            predicate::render(&c.spec, Dialect::Snowflake)
                        );
                        let bounds =
                            keyset_boundaries(sf, &fqn, &scope, &sql::ident(&sk.name), batch)
                                .await?;
                        out.extend(chunk::keyset_specs(
                            sk,
                            &bounds,
                            c.estimated_rows,
                            Some(&c.spec),
                        ));
                    }
                    (DayChunk::Oversized(c), None) => {
                        // Over the spread size only is no memory concern: just less parallel.
                        if c.estimated_rows > plan.batch_rows {
                            tracing::warn!(chunk = ?c.spec, rows = c.estimated_rows, batch = plan.batch_rows, "a single day exceeds the batch and the table has no uniqueness column to split it");
                        }
                        out.push(c);
                    }
                }
            }
            Ok(out)
        }
        ChunkingStrategy::Keyset => {
            let rows = count(sf, &format!("SELECT COUNT(*) FROM {fqn} WHERE {base}")).await?;
            let batch = spread(rows);
            if rows <= batch {
                return Ok(chunk::single(rows));
            }
            let bounds = keyset_boundaries(sf, &fqn, &base, &sql::ident(k), batch).await?;
            Ok(chunk::keyset_specs(&column, &bounds, rows, None))
        }
        ChunkingStrategy::GroupedValues => {
            if column.kind == KeyKind::Other {
                return Err(Error::config(format!(
                    "table {}: grouped_values needs an integer, text or date chunking column; \"{k}\" is Snowflake {data_type}. Use another chunking_strategy.",
                    plan.source_table
                )));
            }
            let limit = chunk::MAX_GROUPED_VALUES + 1;
            let rows = sf.execute(&format!("SELECT {kx}, COUNT(*) FROM {fqn} WHERE {base} GROUP BY 1 ORDER BY 2 DESC LIMIT {limit}")).await?;
            if rows.len() >= limit {
                return Err(Error::config(format!(
                    "table {}: grouped_values chunking of \"{k}\" found more than {} distinct values; it is meant for low-cardinality columns (providers, payers). Use numeric_range, date_range or keyset for this column.",
                    plan.source_table,
                    chunk::MAX_GROUPED_VALUES
                )));
            }
            let mut values = Vec::new();
            let mut nulls = 0u64;
            for r in rows {
                let n = parse_u64(r.get(1).cloned().flatten());
                let Some(v) = r.first().cloned().flatten() else {
                    nulls += n;
                    continue;
                };
                let value = match column.kind {
                    KeyKind::Integer => parse_i128(Some(v.clone())).map(KeyValue::Integer),
                    KeyKind::Day => parse_day(&v).map(KeyValue::Day),
                    _ => Some(KeyValue::Text(v.clone())),
                };
                let Some(value) = value else {
                    return Err(Error::internal(format!(
                        "table {}: grouped_values could not read the value {v:?} of \"{k}\"",
                        plan.source_table
                    )));
                };
                values.push((value, n));
            }
            let total: u64 = values.iter().map(|v| v.1).sum::<u64>() + nulls;
            let batch = spread(total);
            if total <= batch {
                return Ok(chunk::single(total));
            }
            Ok(chunk::pack_values(&column, &values, nulls, batch))
        }
    }
}

/// The Snowflake key expression of `column` as the planning aggregates group it.
fn predicate_key(column: &KeyColumn) -> String {
    // Rendering a range open on both sides gives "<key> IS NOT NULL".
    let full = predicate::render(
        &ChunkSpec::NumericRange {
            column: column.clone(),
            from: None,
            to: None,
            with_nulls: false,
        },
        Dialect::Snowflake,
    );
    full.trim_end_matches(" IS NOT NULL").to_string()
}

async fn count(sf: &SnowflakeSource, q: &str) -> Result<u64> {
    let rows = sf.execute(q).await?;
    Ok(parse_u64(
        rows.first().and_then(|r| r.first()).cloned().flatten(),
    ))
}

fn parse_u64(v: Option<String>) -> u64 {
    v.and_then(|s| s.parse::<f64>().ok())
        .map(|f| f.max(0.0).round() as u64)
        .unwrap_or(0)
}

/// An integer as Snowflake prints it (`123`, `-4`, `7.000`); exact beyond 2^53.
fn parse_i128(v: Option<String>) -> Option<i128> {
    let s = v?;
    let s = s.trim();
    let whole = s
        .split_once('.')
        .map_or(s, |(w, f)| if f.chars().all(|c| c == '0') { w } else { "" });
    whole
        .parse::<i128>()
        .ok()
        .or_else(|| s.parse::<f64>().ok().map(|f| f.floor() as i128))
}

/// A day from the first 10 characters of a date or timestamp (`2024-01-31`).
fn parse_day(v: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(v.get(..10)?, "%Y-%m-%d").ok()
}

/// Boundary keys at every `batch`-th row in key order (one query; the result
/// holds `rows / batch` values).
async fn keyset_boundaries(
    sf: &SnowflakeSource,
    fqn: &str,
    base: &str,
    kx: &str,
    batch: u64,
) -> Result<Vec<String>> {
    let rows = sf
        .execute(&format!(
            "SELECT {kx} FROM {fqn} WHERE {base} AND {kx} IS NOT NULL QUALIFY MOD(ROW_NUMBER() OVER (ORDER BY {kx}), {batch}) = 0 ORDER BY 1"
        ))
        .await?;
    let mut out: Vec<String> = rows
        .into_iter()
        .filter_map(|r| r.into_iter().next().flatten())
        .collect();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn float_watermarks_print_exactly() {
        use super::{float_text, watermark_literal};
        use crate::sink::PgType;
        assert_eq!(float_text(1.2345678901234567f64), "1.2345678901234567");
        assert_eq!(float_text(0.1f32), "0.1");
        assert_eq!(float_text(1e300f64).parse::<f64>().unwrap(), 1e300);
        assert_eq!(float_text(5e-324f64).parse::<f64>().unwrap(), 5e-324);
        assert_eq!(watermark_literal(PgType::Float8, "FLOAT", &float_text(f64::NAN)), "CAST('NaN' AS FLOAT)");
        assert_eq!(watermark_literal(PgType::Float8, "FLOAT", &float_text(f64::NEG_INFINITY)), "CAST('-inf' AS FLOAT)");
        assert_eq!(watermark_literal(PgType::Float8, "FLOAT", "2.5"), "2.5");
    }

    #[test]
    fn a_zoned_watermark_compares_with_an_explicit_utc_offset_whatever_the_target_type() {
        use crate::sink::PgType;
        let max = "2024-01-01 10:00:00.000000";
        for target in [PgType::Timestamptz, PgType::Timestamp] {
            assert_eq!(watermark_literal(target, "TIMESTAMP_LTZ", max), "CAST('2024-01-01 10:00:00.000000+00:00' AS TIMESTAMP_LTZ)");
            assert_eq!(watermark_literal(target, "TIMESTAMP_TZ", max), "CAST('2024-01-01 10:00:00.000000+00:00' AS TIMESTAMP_TZ)");
            assert_eq!(watermark_literal(target, "TIMESTAMP_NTZ", max), "CAST('2024-01-01 10:00:00.000000' AS TIMESTAMP_NTZ)");
        }
        assert_eq!(watermark_literal(PgType::Date, "DATE", "2024-01-01"), "CAST('2024-01-01' AS DATE)");
        assert_eq!(watermark_literal(PgType::Int8, "NUMBER", "42"), "42");
    }

    /// A `date` target filled from a zoned timestamp (`truncate_to_date`)
    /// holds the wall-clock day (TIMESTAMP_TZ in its stored offset, LTZ in
    /// UTC). Compared with a bare DATE, Snowflake would take midnight in the
    /// session's TIMEZONE (America/Los_Angeles by default), and a row of the
    /// maximum day before 08:00 UTC arriving after the run was never read.
    /// The literal is the earliest instant of that day as thaw wrote it.
    #[test]
    fn a_zoned_watermark_into_a_date_target_starts_at_the_earliest_instant_of_the_day() {
        use crate::sink::PgType;
        assert_eq!(watermark_literal(PgType::Date, "TIMESTAMP_TZ", "2024-01-01"), "CAST('2024-01-01 00:00:00+14:00' AS TIMESTAMP_TZ)");
        assert_eq!(watermark_literal(PgType::Date, "TIMESTAMP_LTZ", "2024-01-01"), "CAST('2024-01-01 00:00:00+00:00' AS TIMESTAMP_LTZ)");
        assert_eq!(watermark_literal(PgType::Date, "TIMESTAMP_NTZ", "2024-01-01"), "CAST('2024-01-01' AS DATE)");
    }

    #[test]
    fn names_differing_only_in_case_pair_up_when_unambiguous() {
        use crate::sink::PgType;
        let source = |names: &[&str]| -> Vec<SourceColumn> {
            names.iter().map(|n| SourceColumn { name: n.to_string(), data_type: "TEXT".into(), scale: None, char_length: None }).collect()
        };
        let target = |names: &[&str]| -> Vec<TargetColumn> { names.iter().map(|n| TargetColumn::plain(n, PgType::Text, "text")).collect() };
        let t: TableConfig = serde_json::from_value(serde_json::json!({
            "source": "T", "target": "t", "source_watermark": "UPD", "target_watermark": "changed", "column_mapping": {"OTHER": "mapped"}
        }))
        .unwrap();
        let folded = case_folded_names(
            &source(&["ID", "NOTE", "Exact", "exact", "Mixed", "MIXED", "UPD", "CHANGED", "MAPPED", "OTHER"]),
            &target(&["id", "note", "exact", "mixed", "changed", "mapped"]),
            &t,
        );
        let expected: BTreeMap<String, String> = [("ID", "id"), ("NOTE", "note")].iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        // "Exact" loses to the exact "exact"; "Mixed"/"MIXED" are ambiguous; "CHANGED" and
        // "MAPPED" would take columns the watermark rename and column_mapping write.
        assert_eq!(folded, expected);
    }

    #[test]
    fn an_incremental_run_reads_from_where_the_previous_run_planned_or_started() {
        let t: TableConfig = serde_json::from_value(serde_json::json!({
            "source": "N", "target": "n", "source_watermark": "Upd", "target_watermark": "Upd"
        }))
        .unwrap();
        let current = "\"Upd\" >= 'now'".to_string();
        let plan = |at: Option<&str>, used: Option<&str>| {
            serde_json::json!({"target_watermark": "Upd", "watermark_at_plan": at, "watermark_predicate": used})
        };
        let completed = |p| Some((p, "completed".to_string()));
        let failed = |p| Some((p, "failed".to_string()));
        assert_eq!(previous_run_floor(None, &t, current.clone()), Some(current.clone()), "no previous run");
        // Completed: from the maximum as it planned.
        assert_eq!(previous_run_floor(completed(plan(Some("at"), Some("used"))), &t, current.clone()).as_deref(), Some("at"));
        // Completed first load (nothing recorded): the maximum now.
        assert_eq!(previous_run_floor(completed(plan(None, None)), &t, current.clone()), Some(current.clone()));
        // Not completed: from where it started; a failed load of every row reads every row.
        assert_eq!(previous_run_floor(failed(plan(Some("at"), Some("used"))), &t, current.clone()).as_deref(), Some("used"));
        assert_eq!(previous_run_floor(failed(plan(None, None)), &t, current.clone()), None);
        // Plans recorded before watermark_at_plan, and another watermark column: the maximum now.
        let old = serde_json::json!({"target_watermark": "Upd", "watermark_predicate": null});
        assert_eq!(previous_run_floor(failed(old), &t, current.clone()), Some(current.clone()));
        let other = serde_json::json!({"target_watermark": "Other", "watermark_at_plan": "at", "watermark_predicate": "used"});
        assert_eq!(previous_run_floor(completed(other), &t, current.clone()), Some(current));
    }

    use super::*;

    #[test]
    fn natural_types_of_snowflake_columns_follow_the_documented_table_and_are_supported_pairs() {
        /// (DATA_TYPE, NUMERIC_PRECISION, NUMERIC_SCALE, CHARACTER_MAXIMUM_LENGTH, expected type)
        type Case = (&'static str, Option<i64>, Option<i64>, Option<i64>, &'static str);
        let cases: &[Case] = &[
            ("NUMBER", Some(18), Some(0), None, "int8"),
            ("NUMBER", Some(10), Some(0), None, "int8"),
            ("NUMBER", Some(19), Some(0), None, "numeric(19,0)"),
            ("NUMBER", Some(38), Some(0), None, "numeric(38,0)"),
            ("NUMBER", Some(12), Some(2), None, "numeric(12,2)"),
            ("NUMBER", None, None, None, "numeric(38,0)"),
            ("FLOAT", None, None, None, "float8"),
            ("TEXT", None, None, Some(100), "varchar(100)"),
            ("TEXT", None, None, Some(16_777_216), "text"),
            ("VARCHAR", None, None, None, "text"),
            ("BOOLEAN", None, None, None, "bool"),
            ("DATE", None, None, None, "date"),
            ("TIME", None, None, None, "time"),
            ("TIMESTAMP_NTZ", None, None, None, "timestamp"),
            ("TIMESTAMP_LTZ", None, None, None, "timestamptz"),
            ("TIMESTAMP_TZ", None, None, None, "timestamptz"),
            ("BINARY", None, None, None, "bytea"),
            ("VARIANT", None, None, None, "jsonb"),
            ("OBJECT", None, None, None, "jsonb"),
            ("ARRAY", None, None, None, "jsonb"),
        ];
        for (ty, p, s, n, want) in cases {
            let mut catalog = SourceCatalog::default();
            if let Some(p) = p {
                catalog.precision.insert(("T".into(), "C".into()), *p);
            }
            let column = SourceColumn { name: "C".into(), data_type: ty.to_string(), scale: *s, char_length: *n };
            let c = catalog.natural_column("T", &column, "c").unwrap_or_else(|| panic!("{ty} maps"));
            assert_eq!(sink::ddl::sql_type(&c), *want, "{ty}({p:?},{s:?},{n:?})");
            let logical = LogicalType::from_data_type(ty).unwrap();
            assert!(sink::encode::supported_targets(logical).contains(&c.pg_type), "{ty} → {want} is not a supported pair");
        }
        let geography = SourceColumn { name: "G".into(), data_type: "GEOGRAPHY".into(), scale: None, char_length: None };
        assert!(SourceCatalog::default().natural_column("T", &geography, "g").is_none());
    }

    #[test]
    fn keyset_ranges_are_half_open_and_cover_nulls() {
        let column = KeyColumn::new("k", KeyKind::Text);
        let r = chunk::keyset_specs(&column, &["b".into(), "d".into()], 30, None);
        let f: Vec<String> = r
            .into_iter()
            .map(|c| ChunkRange::new(ChunkingStrategy::Keyset, c).filter_sql)
            .collect();
        assert_eq!(
            f,
            vec![
                "(\"k\" < 'b' OR \"k\" IS NULL)",
                "\"k\" >= 'b' AND \"k\" < 'd'",
                "\"k\" >= 'd'"
            ]
        );
    }

    #[test]
    fn stored_chunks_without_a_spec_stay_readable() {
        // A chunk_range written before typed chunks: the filter is used as stored.
        let old = serde_json::json!({"strategy": "numeric_range", "filter_sql": "\"Id\" < 10", "estimated_rows": 5});
        let range: ChunkRange = serde_json::from_value(old).unwrap();
        assert_eq!(range.spec, None);
        assert_eq!(range.source_predicate(), "\"Id\" < 10");
        let typed = ChunkRange::new(
            ChunkingStrategy::NumericRange,
            PlannedChunk {
                spec: ChunkSpec::NumericRange {
                    column: KeyColumn::new("Id", KeyKind::Integer),
                    from: Some(10),
                    to: None,
                    with_nulls: false,
                },
                estimated_rows: 3,
            },
        );
        let back: ChunkRange =
            serde_json::from_value(serde_json::to_value(&typed).unwrap()).unwrap();
        assert_eq!(back.source_predicate(), "\"Id\" >= 10");
        assert_eq!(back, typed);
    }

    #[test]
    fn snowflake_integers_parse_exactly() {
        assert_eq!(
            parse_i128(Some("9007199254740993".into())),
            Some(9_007_199_254_740_993)
        );
        assert_eq!(parse_i128(Some("-4.000".into())), Some(-4));
        assert_eq!(parse_i128(Some("2.5".into())), Some(2));
        assert_eq!(parse_i128(None), None);
    }

    #[test]
    fn unique_index_hint_quotes_every_identifier() {
        let hint = unique_index_hint(
            "My \"Schema\"",
            "Order-Lines",
            &["Code".into(), "line no".into()],
        );
        assert_eq!(
            hint,
            "CREATE UNIQUE INDEX ON \"My \"\"Schema\"\"\".\"Order-Lines\" (\"Code\", \"line no\");"
        );
    }

    #[test]
    fn l22_legacy_type_names_parse() {
        assert_eq!(ChunkKeyType::parse("BIGINT"), Some(ChunkKeyType::Integer));
        assert_eq!(
            ChunkKeyType::parse("timestamp_tz"),
            Some(ChunkKeyType::Temporal)
        );
        assert_eq!(ChunkKeyType::parse("uuid"), Some(ChunkKeyType::Text));
        assert_eq!(ChunkKeyType::parse("geography"), None);
    }
}
