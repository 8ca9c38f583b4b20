//! Conflict detection: the nightly `conflict-create` step.
//!
//! A **conflict** is a **caregiver** (identified across agencies by the
//! trimmed SSN) whose **visits** at two different **providers** on the same
//! service date collide in time (rules 1–6) or are too far apart to travel
//! between in the time available (rule 7, "impossible travel"). The rules are
//! the legacy Snowflake procedures' (\[SF\]) as restated in docs/conflicts.md §4,
//! with the deliberate differences decided in docs/conflicts.md §11 (each one is named where it is implemented).
//!
//! ## Concepts and where they live
//! * [`Visit`]: one candidate visit with the few attributes the rules need
//!   (instants in UTC, call GPS strings, patient address point, ZIP and
//!   states, provider state).
//! * [`candidates`]: the [`candidates::VisitSource`] seam and its PostgreSQL
//!   implementation over the synced `analytics` mirror; candidate rules
//!   (window, SSN, exclusions) of docs/conflicts.md §4.1.
//! * [`rules`]: visit states S/C/P (docs/conflicts.md §4.3) and time rules 1–6 (docs/conflicts.md §4.4) on wall-clock
//!   intervals in one configured zone (docs/conflicts.md §D9).
//! * [`distance`]: rule 7 (docs/conflicts.md §R7): GPS parsing, great-circle distance, MPH bands
//!   (half-open, docs/conflicts.md §D2), ETA and Snowflake minute-boundary gaps.
//! * [`cross_state`]: the cross-state exclusion (docs/conflicts.md §4.5, docs/conflicts.md §D6): pairs whose
//!   visits are in different states are never emitted.
//! * [`sweep`]: the per-`(SSN, VisitDate)` key sweep that turns candidates
//!   into [`DetectedPair`]s without a quadratic scan or a database self-join.
//! * [`incremental`]: incremental key-scoped runs (docs/conflicts.md §D1):
//!   the watermark of the last successful run, the settings fingerprint,
//!   the touched `(SSN, VisitDate)` keys and the choice of [`DetectionMode`].
//! * [`settings`]: [`DetectionSettings`] from the config and the
//!   `conflict.settings` / `mph` / `excluded_*` tables.
//! * [`store`]: diff and write: detected pairs are COPYed into a staging
//!   table, then set-based statements insert new pairs, refresh changed ones,
//!   resolve vanished ones (`StatusFlag` 'R', never deleted) and assign stable
//!   `CONFLICTID`s. Every written column passes an explicit allow-list; the
//!   application's own columns are never written. After the refresh, the
//!   status lifecycle (docs/conflicts.md §8.2): deleted visits → `D`, missed →
//!   `R`, resolved conflicts reopened by an open pair, cascades between
//!   `conflicts` and `conflictvisitmaps`.
//! * [`lifecycle`]: the status lifecycle in \[SF\]'s nightly order
//!   (docs/conflicts.md §8.2): `D`, `R`, reopening, cascades, no response
//!   `N`, `ResolvedBy`, `UpdatedRFlag`.
//! * [`contacts`]: `AgencyContact`/`AgencyPhone` from `contact_maintenance`
//!   (docs/conflicts.md §6.6).
//! * [`notifications`], [`history`], [`reminders`]: the side tables of the
//!   night (docs/conflicts.md §9): `New Conflict`/`Resolved` notices, the
//!   field-level change history with the cross-state reason, the
//!   payer/provider reminder list.
//! * [`keys`]: one row per key in the analytics tables joined by key
//!   (docs/conflicts.md §2.5), checked before any row is read.
//! * [`columns`]: the column types of the source and settings tables as they
//!   are, cast in SQL to what detection expects (docs/conflicts.md §2.4).
//! * [`in_service`]: in-service and PTO conflicts (docs/conflicts.md §5):
//!   events with \[SF\]'s synthetic ids against completed visits at other
//!   agencies, written by the store like visit pairs.
//! * [`groups`]: `GroupID` as connected components of the conflict graph,
//!   stable once assigned (docs/conflicts.md §7.6, §D5).
//!
//! ## Entry points
//! * [`run`]: the whole step against PostgreSQL, under a run lock.
//! * [`detect`]: the pure detection (no I/O) for tests and benchmarks.
//!
//! ## Not yet here (later issues; the module is shaped for them)
//! The "From Payer" reminder notices (docs/conflicts.md §9.3).

pub mod app_queries;
pub mod candidates;
pub mod columns;
pub mod contacts;
pub mod cross_state;
pub mod distance;
pub mod groups;
pub mod history;
pub mod in_service;
pub mod incremental;
pub mod keys;
pub mod lifecycle;
pub mod notifications;
pub mod reminders;
pub mod rules;
pub mod settings;
pub mod store;
pub mod sweep;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use tokio_postgres::Client;
use uuid::Uuid;

use crate::config::ConflictSettings;
use crate::error::{from_postgres, Error, ErrorKind, Result};

pub use distance::{GeoPoint, MphBand, MphBands, TravelEstimate};
pub use rules::{RuleFlags, VisitState};
pub use crate::config::GpsPriority;
use crate::contract::ConflictCreateResponse;
pub use settings::{DetectionSettings, Exclusions};

/// One candidate visit: the attributes the seven rules read.
///
/// Built by a [`candidates::VisitSource`] from `FACTVISITCALLPERFORMANCE_CR`
/// joined to its caregiver, provider and the primary GPS addresses of the
/// provider patient and the payer patient. Times are instants; the rules convert them to the configured
/// zone's wall clock ([`DetectionSettings::time_zone`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Visit {
    /// `"Visit Id"`.
    pub visit_id: Uuid,
    /// `"Application Visit Id"`.
    pub app_visit_id: Option<i64>,
    /// `DIMCAREGIVER."SSN"` as stored; trimmed by [`detect`] (the caregiver identity).
    pub ssn: Option<String>,
    /// `"Visit Date"`: the agency-local service date; the pairing key with the SSN.
    pub visit_date: NaiveDate,
    /// `"Provider Id"` (the agency).
    pub provider_id: Uuid,
    /// `"Scheduled Start Time"`.
    pub scheduled_start: Option<DateTime<Utc>>,
    /// `"Scheduled End Time"`.
    pub scheduled_end: Option<DateTime<Utc>>,
    /// `"Visit Start Time"` (actual start; NULL = not started).
    pub visit_start: Option<DateTime<Utc>>,
    /// `"Visit End Time"` (actual end).
    pub visit_end: Option<DateTime<Utc>>,
    /// `"Call In GPS Coordinates"`: `"lat,lon"` text, possibly quoted, or `","`.
    pub call_in_gps: Option<String>,
    /// `"Call Out GPS Coordinates"`.
    pub call_out_gps: Option<String>,
    /// Latitude/longitude of the provider-patient's primary GPS address (rule 7 fallback).
    pub patient_location: Option<GeoPoint>,
    /// `"Zip Code"` of that address (`P_PZipCode`; rule 7 zip guard, docs/conflicts.md §D10).
    pub patient_zip: Option<String>,
    /// `"Address State"` of that address (`P_PAddressState`), as stored; cross-state rule (docs/conflicts.md §D6).
    pub patient_state: Option<String>,
    /// `"Address State"` of the payer-patient's (`"Payer Patient Id"`) primary GPS
    /// address (`PA_PAddressState`), as stored; cross-state rule (docs/conflicts.md §D6).
    pub payer_patient_state: Option<String>,
    /// `DIMPROVIDER."Address State"`, as stored: the cross-state fallback when
    /// both patient states are missing (docs/conflicts.md §D6).
    pub provider_state: Option<String>,
    /// `"Is Missed"`, NULL kept: only a visit whose flag is `Some(false)` may
    /// start a new pair ([SF-INS] `"Is Missed" = FALSE` is unknown for NULL,
    /// docs/conflicts.md §4.1.5, §10.1); every candidate refreshes existing pairs.
    pub is_missed: Option<bool>,
}

impl Default for Visit {
    /// An empty visit that is explicitly not missed (`Is Missed = FALSE`).
    fn default() -> Self {
        Visit {
            visit_id: Uuid::nil(),
            app_visit_id: None,
            ssn: None,
            visit_date: NaiveDate::default(),
            provider_id: Uuid::nil(),
            scheduled_start: None,
            scheduled_end: None,
            visit_start: None,
            visit_end: None,
            call_in_gps: None,
            call_out_gps: None,
            patient_location: None,
            patient_zip: None,
            patient_state: None,
            payer_patient_state: None,
            provider_state: None,
            is_missed: Some(false),
        }
    }
}

/// One ordered visit pair that at least one rule flags: a future row of
/// `conflictvisitmaps` (`V1` = primary visit, `V2` = conflicting visit).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectedPair {
    /// `VisitID` (primary visit).
    pub visit_id: Uuid,
    /// `AppVisitID`.
    pub app_visit_id: Option<i64>,
    /// `ConVisitID` (conflicting visit).
    pub con_visit_id: Uuid,
    /// `ConAppVisitID`.
    pub con_app_visit_id: Option<i64>,
    /// Trimmed SSN shared by both visits.
    pub ssn: String,
    /// Service date shared by both visits.
    pub visit_date: NaiveDate,
    /// The seven rule flags; at least one is set.
    pub flags: RuleFlags,
    /// `MinuteDiffBetweenSch`: [SF-UPD] smallest positive minute gap between
    /// the actual times in either direction, else 0 (docs/conflicts.md §6).
    pub minute_diff: i32,
    /// Coordinates used for the primary visit (`PLatitude`/`PLongitude`).
    pub location: Option<GeoPoint>,
    /// Coordinates used for the conflicting visit (`ConPLatitude`/`ConPLongitude`).
    pub con_location: Option<GeoPoint>,
    /// Distance, speed and ETA when both points are known (speed/ETA only when a band matches).
    pub travel: Option<TravelEstimate>,
    /// Whether a *new* row may be created for this pair ([SF-INS]): false when
    /// either visit is missed, or for schedule-vs-schedule pairs (rules 1/4)
    /// dated before today. Existing rows are refreshed regardless ([SF-UPD]).
    pub new_conflict_allowed: bool,
}

/// What a run should cover.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DetectionMode {
    /// Every candidate in the window [today − 2 years, today + 45 days]:
    /// detect all pairs, insert new ones, refresh changed ones, resolve the
    /// stored pairs of the window that are no longer detected.
    #[default]
    Full,
    /// Only the `(trimmed SSN, VisitDate)` keys touched since the stored
    /// watermark of the last successful run: all pairs among all candidates
    /// of each touched key, diffed against the stored pairs of those keys
    /// (docs/conflicts.md §D1, [`incremental`]). Falls back to a full run on
    /// the first run, when the settings fingerprint changed, or when the
    /// window moved backwards; the summary says which mode ran and why.
    Incremental,
}


/// Detect every flagged ordered pair among `visits` (pure, no I/O).
///
/// Applies the candidate rules that need no database (window around `today`,
/// non-blank trimmed SSN, SSN and agency exclusions; provider activity is the
/// [`candidates::VisitSource`]'s job), groups by `(trimmed SSN, VisitDate)`
/// and sweeps each key ([`sweep`]). Both orientations of a pair are returned
/// as two [`DetectedPair`]s. Output order: by key, then primary visit start.
pub fn detect(visits: &[Visit], settings: &DetectionSettings, today: NaiveDate) -> Vec<DetectedPair> {
    sweep::detect_pairs(visits, settings, today)
}

/// Advisory-lock key of the conflict run (ASCII "thawconf").
pub const RUN_LOCK_KEY: i64 = 0x7468_6177_636f_6e66;

/// Run conflict detection against the PostgreSQL database `client` is
/// connected to (the one holding the analytics mirror and the conflict schema).
///
/// Takes the run lock (session advisory lock [`RUN_LOCK_KEY`], docs/conflicts.md §D8),
/// sets `settings."InProgressFlag"` to 1, detects and writes everything in
/// one transaction (the whole window, or in [`DetectionMode::Incremental`]
/// the keys touched since the stored watermark, which it then advances,
/// docs/conflicts.md §D1), then sets `InProgressFlag` back to 2 (and `LastLoadDate`
/// on success) and releases the lock, on every exit path.
///
/// Errors: [`ErrorKind::Locked`] when another run holds the lock;
/// [`ErrorKind::ConfigInvalid`] for bad settings (time zone, MPH bands, a
/// missing or duplicated SETTINGS row); [`ErrorKind::SchemaMismatch`] when a
/// table or column is missing; PostgreSQL errors as classified by
/// [`crate::error::classify_postgres`].
pub async fn run(client: &mut Client, settings: &ConflictSettings, mode: DetectionMode) -> Result<ConflictCreateResponse> {
    run_interruptible(client, settings, mode, None).await
}

/// [`run`], stopped by `cancel` (the CLI's SIGINT/SIGTERM): the statement in
/// flight is cancelled, the night's transaction rolls back (nothing of it
/// stays written, docs/conflicts.md §D18), then `InProgressFlag` is reset and
/// the run lock released like on every other exit path (docs/conflicts.md
/// §D8); the error says which signal stopped the run.
pub async fn run_interruptible(
    client: &mut Client,
    settings: &ConflictSettings,
    mode: DetectionMode,
    cancel: Option<&crate::cancel::Cancel>,
) -> Result<ConflictCreateResponse> {
    use futures::FutureExt;
    let started = std::time::Instant::now();
    let schemas = store::Schemas::from_settings(settings)?;
    let locked: bool = client
        .query_one("SELECT pg_try_advisory_lock($1)", &[&RUN_LOCK_KEY])
        .await
        .map_err(|e| from_postgres(e, "taking the conflict run lock"))?
        .get(0);
    if !locked {
        return Err(Error::new(
            ErrorKind::Locked,
            "another conflict detection run holds the run lock (pg advisory lock 'thawconf'); wait for it to finish, or end the session holding it (pg_locks, locktype 'advisory')",
        ));
    }
    // From here on every exit path, a panic included, resets InProgressFlag
    // and releases the lock (docs/conflicts.md §D8): the detection runs under
    // catch_unwind and a panic becomes an Internal error.
    let cancel_token = client.cancel_token();
    let work = std::panic::AssertUnwindSafe(async {
        store::set_in_progress(client, &schemas, true).await?;
        run_locked(client, settings, &schemas, mode).await
    })
    .catch_unwind();
    let caught = match cancel {
        None => work.await,
        Some(cancel) => tokio::select! {
            caught = work => caught,
            _ = cancel.cancelled() => {
                // Stop the statement in flight; the dropped transaction's ROLLBACK runs after it.
                if let Err(e) = cancel_token.cancel_query(tokio_postgres::NoTls).await {
                    tracing::warn!(error = %e, "could not cancel the running conflict statement; waiting for it to finish");
                }
                Ok(Err(Error::new(
                    ErrorKind::Transient,
                    format!(
                        "conflict detection interrupted by {}: the night was rolled back; run the same command again",
                        cancel.reason().unwrap_or_default()
                    ),
                )))
            }
        },
    };
    let outcome = caught.unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        Err(Error::internal(format!("conflict detection panicked: {what}; this is a bug in thaw, please report it with the log")))
    });
    // A transaction dropped by the panic has queued its ROLLBACK; these statements run after it.
    let flag = store::set_in_progress(client, &schemas, false).await;
    let unlock = client.execute("SELECT pg_advisory_unlock($1)", &[&RUN_LOCK_KEY]).await;
    let mut summary = outcome?;
    flag?;
    unlock.map_err(|e| from_postgres(e, "releasing the conflict run lock"))?;
    summary.seconds = started.elapsed().as_secs_f64();
    tracing::info!(?summary, "conflict detection finished");
    Ok(summary)
}

/// Await `step` and log its duration like the store's statements (the
/// benchmark's per-step profile reads these lines, docs/benchmarks.md §5).
async fn timed<T>(name: &str, step: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    let started = std::time::Instant::now();
    let out = step.await;
    tracing::debug!(step = name, seconds = started.elapsed().as_secs_f64(), "conflict store");
    out
}

async fn run_locked(
    client: &mut Client,
    config: &ConflictSettings,
    schemas: &store::Schemas,
    mode: DetectionMode,
) -> Result<ConflictCreateResponse> {
    let (zone, today, gps_priority) = settings::from_config(config, Utc::now())?;
    let tx = client.transaction().await.map_err(|e| from_postgres(e, "starting the conflict transaction"))?;
    let (detection, warnings) = settings::load(&tx, &schemas.conflict, zone, gps_priority).await?;
    let window = settings::candidate_window(today);
    let zone_literal = format!("'{}'", zone.name());
    let source_types = columns::ColumnTypes::load(&tx, &schemas.analytics, &zone_literal).await?;
    // docs/conflicts.md §2.5: one row per key in every table joined by key.
    timed("unique keys", keys::check_unique_keys(&tx, &source_types)).await?;

    // docs/conflicts.md §D1: the high-water mark is read before the touched
    // keys, so a change committed meanwhile is revisited by the next run.
    let has_watermark_table = incremental::table_exists(&tx, schemas).await?;
    let high_water = timed("source high-water mark", incremental::source_high_water(&tx, &source_types)).await?;
    let fingerprint = timed("settings fingerprint", incremental::fingerprint(&tx, schemas, &source_types, &format!("{}|{gps_priority:?}", zone.name()))).await?;
    let stored = if has_watermark_table { incremental::load(&tx, schemas).await? } else { None };
    let plan = incremental::decide(mode == DetectionMode::Incremental, has_watermark_table, stored.as_ref(), &fingerprint, window);
    let mut summary = ConflictCreateResponse { warnings, ..Default::default() };
    let keyed = match plan {
        incremental::Plan::Full(reason) => {
            summary.mode = Some("full".into());
            summary.mode_reason = Some(reason.text().into());
            false
        }
        incremental::Plan::Incremental { since, old_window_end } => {
            let touched = timed("touched keys", incremental::collect_keys(&tx, schemas, &source_types, since, old_window_end, window, &zone_literal)).await?;
            summary.mode = Some("incremental".into());
            summary.mode_reason = Some(match since {
                Some(t) => format!("keys touched by source changes after {}", t.to_rfc3339()),
                None => "keys touched since the last run (which saw no source change timestamp)".into(),
            });
            summary.keys_touched = Some(touched);
            true
        }
    };
    if !has_watermark_table {
        summary.warnings.push(incremental::FullReason::NoWatermarkTable.text().into());
    }
    let unstamped = timed("rows without a change timestamp", incremental::rows_without_change_timestamp(&tx, &source_types)).await?;
    if unstamped > 0 {
        summary.warnings.push(format!(
            "{unstamped} visit, deleted-visit, in-service or absence rows have a NULL or infinite change timestamp (\"Visit Updated Timestamp\", \
             \"Updated Datatimestamp\"): every incremental run recomputes their keys (docs/conflicts.md §D1); fill the column in the \
             mirror with the time of the row's last change so that a night costs what changed"
        ));
    }
    let read_started = std::time::Instant::now();
    let mut writer = store::PairWriter::create(&tx).await?;
    let mut cross_state = history::CrossStateWriter::create(&tx).await?;
    // The candidates arrive as one COPY stream that occupies the connection:
    // the pairs (far fewer than the visits) are staged once it has ended.
    let (mut pairs, mut cross_state_pairs) = (Vec::new(), Vec::new());
    let mut source = candidates::PgVisitSource::open(&tx, &source_types, window, keyed).await?;
    while let Some(batch) = candidates::VisitSource::next_batch(&mut source).await? {
        pairs.extend(detect(&batch, &detection, today));
        cross_state_pairs.extend(history::cross_state_pairs(&batch));
    }
    summary.visits_considered = candidates::VisitSource::visits_considered(&source);
    drop(source);
    if !keyed {
        candidates::end_full_read(&tx).await?;
    }
    summary.pairs_detected = pairs.len() as u64;
    writer.write(&tx, &pairs).await?;
    cross_state.write(&tx, &cross_state_pairs).await?;
    drop((pairs, cross_state_pairs));
    tracing::debug!(seconds = read_started.elapsed().as_secs_f64(), visits = summary.visits_considered, "candidates read, detected and staged");
    if crate::failpoints::check(crate::failpoints::CONFLICT_DETECT_PANIC).is_err() {
        panic!("failpoint {} triggered", crate::failpoints::CONFLICT_DETECT_PANIC);
    }
    // docs/conflicts.md §9.2: the recorded fields before and after the writes.
    let audit = timed("log history before", history::snapshot(&tx, schemas, window)).await?;
    timed("statuses before", lifecycle::snapshot_statuses(&tx, schemas, window)).await?;
    let counts = store::apply(&tx, schemas, &detection, &source_types, window, keyed).await?;
    summary.status_changes = timed("status changes", lifecycle::status_changes(&tx, schemas)).await?;
    summary.status_changes.outside_window_status_writes = counts.outside_window_status_changes;
    let logged = timed("log history after", history::record(&tx, schemas, &audit, &zone_literal, window)).await?;
    tracing::info!(entries = logged.entries, values = logged.values, "conflict log history written");
    summary.inserted = counts.inserted;
    summary.updated = counts.updated;
    summary.resolved = counts.resolved;
    summary.conflicts_created = counts.conflicts_created;
    // One staged row per (event, visit), stored in both orientations.
    summary.event_pairs_detected = 2 * counts.event_pairs;
    // docs/conflicts.md §7.6, §D5: GroupID as connected components, after every pair is written.
    let grouped = timed("GroupID fallback", groups::assign(&tx, schemas, &format!("(now() AT TIME ZONE {zone_literal})"))).await?;
    tracing::debug!(rows = grouped, "GroupID");
    // docs/conflicts.md §D26: the closed pairs this night leaves, for the next incremental night.
    timed("closed pairs", incremental::record_closed_pairs(&tx, schemas)).await?;
    if has_watermark_table {
        let mark = incremental::Watermark { source_changed_up_to: high_water, settings_fingerprint: fingerprint, window };
        incremental::save(&tx, schemas, &mark, if keyed { "incremental" } else { "full" }).await?;
    }
    tx.commit().await.map_err(|e| from_postgres(e, "committing the conflict run"))?;
    Ok(summary)
}
