//! The typed request and response of every step of a sync run.
//!
//! These structs are the contract between the steps: the Lambda binaries
//! deserialise them from their events, the local runner ([`crate::runner`])
//! passes them in-process, and `statemachines/sync.asl.json` builds them with
//! `Parameters`/`ItemSelector`. Only ids and small summaries travel (Step
//! Functions' 256 KiB payload limit); chunk definitions live in PostgreSQL.
//!
//! Field names are `snake_case` in JSON. Every field added later must be
//! optional so old payloads keep deserialising.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Full reload or incremental (watermark) run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum SyncMode {
    /// Incremental where a table has a watermark; full otherwise (default).
    #[default]
    Incremental,
    /// Ignore watermarks: plan every row again (upserts keep it idempotent).
    Full,
}

/// Input of the `plan` step (the state machine's execution input).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, Default, PartialEq)]
#[serde(default)]
pub struct PlanRequest {
    /// Source names to run (default: every enabled source).
    pub sources: Option<Vec<String>>,
    /// Target table names to run (default: every enabled table).
    pub tables: Option<Vec<String>>,
    /// Full or incremental.
    pub mode: SyncMode,
    /// Resume this run id instead of detecting a resumable run.
    pub resume_run_id: Option<Uuid>,
    /// Never resume; always start a new run.
    pub no_resume: bool,
    /// Resume only runs started within this many hours (default 168).
    pub resume_max_age_hours: Option<u32>,
    /// Allow `truncate_onstart` to truncate non-empty targets.
    pub allow_truncate: bool,
    /// Where to write the chunk manifest (`s3://bucket/key` or a local path;
    /// default: chosen by the caller's environment).
    pub manifest_uri: Option<String>,
    /// `thaw run --where`: one Snowflake boolean expression restricting the
    /// one selected table's rows (re-processing a date range, say); absent =
    /// every row (docs/sync.md §2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub where_predicate: Option<String>,
    /// Staged tables: load the Parquet files this earlier run unloaded
    /// instead of unloading again, for every chunk whose predicate is the
    /// same (`thaw run --reuse-unload RUN_ID`; docs/sync.md §13.6).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reuse_unload: Option<Uuid>,
}

/// Output of `plan`: the run and where its chunk manifest is.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct PlanResponse {
    /// The run every later step works on.
    pub run_id: Uuid,
    /// True when an unfinished run was resumed.
    pub resumed: bool,
    /// Location of the manifest: a JSON array of [`ChunkItem`].
    pub manifest_uri: String,
    /// Tables in the run.
    pub tables: u32,
    /// Chunks still to copy (completed chunks of a resumed run excluded).
    pub chunks: u64,
    /// Rows the plan expects to copy (estimate from the planning aggregates).
    pub estimated_rows: u64,
}

/// One element of the manifest and the input of `copy-chunk`
/// (the Distributed Map's item).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq, Eq, Hash)]
pub struct ChunkItem {
    /// Run the chunk belongs to.
    pub run_id: Uuid,
    /// Source name (config `source_name`).
    pub source_name: String,
    /// Snowflake table.
    pub source_table: String,
    /// Chunk number within the table, from 0 (-1 on the staged path's
    /// file-manifest request, which names no chunk).
    #[serde(deserialize_with = "integral_i32")]
    #[schemars(with = "i32")]
    pub chunk_id: i32,
    /// Staged tables only: load just this S3 object key of the chunk's
    /// recorded files (the per-file Map item; docs/sync.md §13.7). Absent:
    /// the whole chunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_key: Option<String>,
    /// Staged tables only: a step of the state machine's staged flow instead
    /// of the whole chunk (docs/sync.md §13.7). Absent: the whole chunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staged: Option<StagedStep>,
}

/// The state machine's steps of the staged path (docs/sync.md §13.7), as
/// `ChunkItem.staged`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum StagedStep {
    /// Unload the chunk and record its files; load nothing (a direct
    /// table's chunk ignores it and is copied as usual).
    Unload,
    /// Write the run's unfinished staged files as a JSON array of
    /// [`ChunkItem`]s with `file_key` (the per-file Map's manifest) to `uri`
    /// (`s3://bucket/key` or a local path); `source_name`, `source_table`
    /// and `chunk_id` of the item are ignored.
    FileManifest {
        /// Where to write the manifest.
        uri: String,
    },
}

/// Output of `copy-chunk`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq, Default)]
pub struct CopyChunkResponse {
    /// Run id.
    pub run_id: Uuid,
    /// Snowflake table.
    pub source_table: String,
    /// Chunk number.
    pub chunk_id: i32,
    /// Rows read from Snowflake.
    pub rows_read: u64,
    /// Rows inserted in the target.
    pub rows_inserted: u64,
    /// Rows updated in the target (upserts whose watermark was newer).
    pub rows_updated: u64,
    /// Rows left unchanged (insert-only conflicts, older watermarks).
    pub rows_unchanged: u64,
    /// True when the chunk was already completed and nothing was done.
    pub already_completed: bool,
    /// Wall time in seconds.
    pub seconds: f64,
}

/// Input of `merge`, `reconcile` (run scope).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct RunRequest {
    /// Run id from [`PlanResponse::run_id`].
    pub run_id: Uuid,
}

/// Per-table result of `merge`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq, Default)]
pub struct TableMerge {
    /// `schema.table` in PostgreSQL.
    pub target: String,
    /// Rows copied by this run.
    pub rows_copied: u64,
    /// Final table status (`completed` / `failed`).
    pub status: String,
    /// Secondary indexes (`schema.index`) recreated by this merge (`disable_index`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub indexes_restored: Vec<String>,
    /// Secondary indexes whose restore failed (`schema.index: error`); retried when the run is resumed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub indexes_failed: Vec<String>,
}

/// Output of `merge`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq, Default)]
pub struct MergeResponse {
    /// Run id.
    pub run_id: Uuid,
    /// Tables finalised.
    pub tables: Vec<TableMerge>,
}

/// Per-table outcome of `reconcile`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq, Default)]
pub struct TableReconcile {
    /// `schema.table` in PostgreSQL.
    pub target: String,
    /// Rows in Snowflake (with the table's source_filter).
    pub source_rows: u64,
    /// Rows in PostgreSQL.
    pub target_rows: u64,
    /// Checksum over the canonical form of every compared column, Snowflake side (hex).
    pub source_checksum: String,
    /// Same, PostgreSQL side.
    pub target_checksum: String,
    /// Columns compared.
    pub columns: u32,
    /// True when counts and checksums agree.
    pub matched: bool,
    /// `ok`, `mismatch`, or `error` when the table could not be reconciled
    /// (the other tables still are).
    #[serde(default)]
    pub status: String,
    /// Why the table could not be reconciled (status `error`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The error's kind name (`Transient`, `SchemaMismatch`, ...), status `error` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_kind: Option<String>,
}

/// Output of `reconcile`. A mismatch is an error of kind `ReconcileMismatch`
/// for the state machine; this summary is what the report shows.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq, Default)]
pub struct ReconcileResponse {
    /// Run id.
    pub run_id: Uuid,
    /// Tables checked.
    pub tables: Vec<TableReconcile>,
    /// Tables whose counts or checksums differ.
    pub mismatches: u32,
    /// Tables that could not be reconciled (status `error`).
    #[serde(default)]
    pub errors: u32,
    /// Freshness: hours since the least recently verified slice of any
    /// table was verified clean (docs/reconcile.md §5); absent when no table
    /// has been verified whole yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freshness_hours: Option<f64>,
}

/// Input of `conflict-create`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq, Default)]
#[serde(default)]
pub struct ConflictCreateRequest {
    /// The sync run that preceded detection (for the report), if any.
    pub run_id: Option<Uuid>,
    /// Recompute the whole window instead of the keys touched since the last run.
    pub full: bool,
}

/// Output of `conflict-create`: counts of one [`crate::conflicts::run`]; small enough for a Step Functions payload.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ConflictCreateResponse {
    /// Candidate visits read from the source (before exclusions).
    pub visits_considered: u64,
    /// Ordered pairs flagged by at least one rule.
    pub pairs_detected: u64,
    /// In-service and PTO pairs (an event against a completed visit at
    /// another agency, both orientations; docs/conflicts.md §5), not part of
    /// `pairs_detected`; `inserted`, `updated` and `resolved` count both kinds.
    #[serde(default)]
    pub event_pairs_detected: u64,
    /// New `conflictvisitmaps` rows.
    pub inserted: u64,
    /// Existing rows whose content changed (snapshot, flag N→Y, or reopened).
    pub updated: u64,
    /// Stored pairs no longer detected, now `StatusFlag` 'R'.
    pub resolved: u64,
    /// New `conflicts` rows (new CONFLICTIDs).
    pub conflicts_created: u64,
    /// Wall time of the run in seconds.
    pub seconds: f64,
    /// Problems in the reference data worth a look (MPH gaps/overlaps).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Which mode ran: `full` or `incremental` (docs/conflicts.md §D1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Why: e.g. `full run requested (--full)`, `no watermark of a previous
    /// successful run (first run)`, `settings changed since the last run ...`,
    /// or for incremental runs the watermark the keys were taken from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode_reason: Option<String>,
    /// Incremental runs: the number of `(SSN, VisitDate)` keys recomputed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys_touched: Option<u64>,
    /// Stored rows whose status the night changed (docs/conflicts.md §8.2.2).
    #[serde(default)]
    pub status_changes: StatusChanges,
}

/// Status changes of one night (docs/conflicts.md §8.2.2): for the pairs of
/// the window and the conflicts with a pair in the window, the rows whose
/// `StatusFlag` at the end of the night differs from the start, by their
/// new status (net: a row set `R` and reopened in the same night is not
/// counted); rows written tonight for the first time are not counted (they
/// are `inserted` / `conflicts_created`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct StatusChanges {
    /// Pairs now `D` (their conflicting visit was deleted).
    pub pairs_deleted: u64,
    /// Pairs now `R` (not detected again, missed, cascaded, or a restored
    /// visit's pair that is missed).
    pub pairs_resolved: u64,
    /// Pairs now `U` that were `R`, `D` or `N` (detected again, a restored
    /// visit, a withdrawn no-response).
    pub pairs_reopened: u64,
    /// Pairs now `N` (the application's `ConNoResponseFlag` is 'Yes').
    pub pairs_no_response: u64,
    /// Conflicts now `D` (their primary visit was deleted).
    pub conflicts_deleted: u64,
    /// Conflicts now `R` (missed, or all their pairs closed).
    pub conflicts_resolved: u64,
    /// Conflicts now `U` that were `R` or `N` (an open pair again).
    pub conflicts_reopened: u64,
    /// Conflicts now `N` (the application's `NoResponseFlag` is 'Yes').
    pub conflicts_no_response: u64,
    /// Status writes of the second pass, over the stored pairs outside the
    /// window and their conflicts (docs/conflicts.md §D17): the rows each of
    /// its status steps set, per statement, so not net — a conflict set `R`
    /// by a missed primary visit and reopened by its open pair in the same
    /// pass counts twice, every night, as the Snowflake procedures' literal order rewrites it.
    pub outside_window_status_writes: u64,
}

/// Input of the failure path: mark the run failed.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct FailRunRequest {
    /// Run id (absent when `plan` itself failed).
    pub run_id: Option<Uuid>,
    /// Error name (`Transient`, `ChunkFailed`, ...).
    pub error: String,
    /// Error cause text (no secrets).
    pub cause: String,
}

/// Input of `dual-read`, an operation of the reconcile Lambda (its event
/// carries `"operation": "dual-read"`; see [`ReconcileLambdaRequest`]): compare
/// Snowflake's legacy conflict tables with PostgreSQL's `conflict` schema and
/// record the outcome in `migration_status.dual_read_results`
/// (docs/reconcile.md §10).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct DualReadRequest {
    /// Selects this operation of the reconcile Lambda; always `dual-read`.
    pub operation: DualReadOperation,
    /// The sync run of the night the comparison follows (logged only), if any.
    #[serde(default)]
    pub run_id: Option<Uuid>,
    /// Snowflake database of the legacy `CONFLICTS` and `CONFLICTVISITMAPS`
    /// tables (default `CONFLICTREPORT`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snowflake_database: Option<String>,
    /// Their Snowflake schema (default `PUBLIC`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snowflake_schema: Option<String>,
}

/// The `operation` value of a [`DualReadRequest`].
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
pub enum DualReadOperation {
    /// The dual-read comparison.
    #[serde(rename = "dual-read")]
    DualRead,
}

/// Output of `dual-read`: the counts of one comparison (the differing pairs
/// themselves stay in `migration_status.dual_read_results.report`). A
/// difference or a failed comparison is a `status`, not an error, so the
/// sync run's own outcome is never touched.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq, Default)]
pub struct DualReadResponse {
    /// `ok`, `mismatch`, or `error` when the comparison could not be made.
    pub status: String,
    /// Conflicts in Snowflake (`CONFLICTS`).
    pub source_conflicts: u64,
    /// Conflicts in PostgreSQL (`conflict.conflicts`).
    pub target_conflicts: u64,
    /// Conflict pairs in Snowflake (`CONFLICTVISITMAPS`).
    pub source_pairs: u64,
    /// Conflict pairs in PostgreSQL (`conflict.conflictvisitmaps`).
    pub target_pairs: u64,
    /// Pairs only in Snowflake.
    pub missing_pairs: u64,
    /// Pairs only in PostgreSQL.
    pub extra_pairs: u64,
    /// Pairs on both sides whose compared columns differ.
    pub changed_pairs: u64,
    /// Why the comparison could not be made (status `error`); always
    /// present (`null` otherwise) so the state machine can select it.
    #[serde(default)]
    pub error: Option<String>,
    /// Wall time in seconds.
    pub seconds: f64,
}

/// The event of the reconcile Lambda: a [`RunRequest`] (the `reconcile`
/// step; no `operation`, or `"operation": "reconcile"`) or a
/// [`DualReadRequest`] (`"operation": "dual-read"`).
#[derive(Debug, Clone, PartialEq)]
pub enum ReconcileLambdaRequest {
    /// Reconcile the run's tables.
    Reconcile(RunRequest),
    /// Compare the conflict tables of both systems.
    DualRead(DualReadRequest),
}

impl ReconcileLambdaRequest {
    /// Read the Lambda event.
    ///
    /// Errors: [`crate::ErrorKind::ConfigInvalid`] naming the field when the
    /// event is not one of the two requests (an unknown `operation`, a
    /// missing `run_id`, a field of the wrong type).
    pub fn from_event(event: serde_json::Value) -> crate::error::Result<ReconcileLambdaRequest> {
        let bad = |e: serde_json::Error, what: &str| crate::error::Error::config(format!("the reconcile Lambda's event is not a valid {what}: {e}"));
        match event.get("operation") {
            None => serde_json::from_value(event).map(ReconcileLambdaRequest::Reconcile).map_err(|e| bad(e, "RunRequest")),
            Some(serde_json::Value::String(op)) if op == "reconcile" => {
                serde_json::from_value(event).map(ReconcileLambdaRequest::Reconcile).map_err(|e| bad(e, "RunRequest"))
            }
            Some(serde_json::Value::String(op)) if op == "dual-read" => {
                serde_json::from_value(event).map(ReconcileLambdaRequest::DualRead).map_err(|e| bad(e, "DualReadRequest"))
            }
            Some(other) => Err(crate::error::Error::config(format!(
                "the reconcile Lambda's event has operation {other}; use \"dual-read\", \"reconcile\" or leave it out (reconcile)"
            ))),
        }
    }
}

/// The step names of the state machine with their request and response type
/// names, in flow order.
///
/// `dual-read` is an operation of the reconcile Lambda (see
/// [`ReconcileLambdaRequest`]).
pub const STEPS: [(&str, &str, &str); 7] = [
    ("plan", "PlanRequest", "PlanResponse"),
    ("copy-chunk", "ChunkItem", "CopyChunkResponse"),
    ("merge", "RunRequest", "MergeResponse"),
    ("reconcile", "RunRequest", "ReconcileResponse"),
    ("conflict-create", "ConflictCreateRequest", "ConflictCreateResponse"),
    ("dual-read", "DualReadRequest", "DualReadResponse"),
    ("fail-run", "FailRunRequest", "FailRunRequest"),
];

/// The whole contract as the JSON committed in `statemachines/contract.json`:
/// `errors` (every [`ErrorKind`](crate::ErrorKind) name), `retryable` (the names Step Functions
/// retries), `steps` (step → request/response type names) and `types` (one
/// JSON Schema, draft 2020-12, per type). The infra tests check the ASL
/// against it; `cargo test -p thaw-engine --test integration contract::` fails when the
/// committed file is stale.
pub fn contract_json() -> serde_json::Value {
    use crate::error::ErrorKind;
    let types = serde_json::json!({
        "PlanRequest": schemars::schema_for!(PlanRequest),
        "PlanResponse": schemars::schema_for!(PlanResponse),
        "ChunkItem": schemars::schema_for!(ChunkItem),
        "CopyChunkResponse": schemars::schema_for!(CopyChunkResponse),
        "RunRequest": schemars::schema_for!(RunRequest),
        "MergeResponse": schemars::schema_for!(MergeResponse),
        "ReconcileResponse": schemars::schema_for!(ReconcileResponse),
        "ConflictCreateRequest": schemars::schema_for!(ConflictCreateRequest),
        "ConflictCreateResponse": schemars::schema_for!(ConflictCreateResponse),
        "FailRunRequest": schemars::schema_for!(FailRunRequest),
        "DualReadRequest": schemars::schema_for!(DualReadRequest),
        "DualReadResponse": schemars::schema_for!(DualReadResponse),
    });
    let steps: serde_json::Map<String, serde_json::Value> = STEPS
        .iter()
        .map(|(step, request, response)| (step.to_string(), serde_json::json!({ "request": request, "response": response })))
        .collect();
    serde_json::json!({
        "errors": ErrorKind::ALL.iter().map(|k| k.name()).collect::<Vec<_>>(),
        "retryable": ErrorKind::ALL.iter().filter(|k| k.is_retryable()).map(|k| k.name()).collect::<Vec<_>>(),
        "steps": steps,
        "types": types,
    })
}

/// An `i32` written as a JSON integer or as a number with no fractional
/// part: a state machine's literal `-1` can reach the Lambda as `-1.0`
/// (moto's local Step Functions interpreter does that).
///
/// Errors: a fractional or out-of-range number names the value.
fn integral_i32<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<i32, D::Error> {
    let value = f64::deserialize(deserializer)?;
    if value.fract() == 0.0 && value >= f64::from(i32::MIN) && value <= f64::from(i32::MAX) {
        Ok(value as i32)
    } else {
        Err(serde::de::Error::custom(format!("chunk_id {value} is not a whole 32-bit number")))
    }
}
