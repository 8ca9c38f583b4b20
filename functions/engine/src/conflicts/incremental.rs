//! Incremental, key-scoped runs and the watermark that makes them complete
//! (docs/conflicts.md §D1).
//!
//! A run is **full** (every candidate of the window) or **incremental** (only
//! the `(trimmed SSN, VisitDate)` keys touched since the last successful run).
//! The watermark is one row of `conflict.conflict_watermark`
//! (`schema/V10__conflict_watermark.sql`), written in the run's transaction,
//! so only a successful run moves it and a skipped night is caught up by the
//! next run:
//!
//! * `SourceChangedUpTo`: the largest source change timestamp the run saw
//!   ([`source_high_water`]). It is read *before* the touched keys, so a row
//!   committed while the run reads is revisited next time, never lost.
//! * `SettingsFingerprint`: [`fingerprint`] of everything besides the visits
//!   that changes results. A different value forces a full run.
//! * `WindowStart`/`WindowEnd`: the candidate window. Keys whose date entered
//!   the window since the last run are touched; a window that moved backwards
//!   (an earlier `--today`) forces a full run.
//!
//! Touched keys ([`collect_keys`], all set-based, into the temporary table
//! [`KEYS`], ANALYZEd): the new key of every visit and deleted visit changed
//! after the watermark (a visit also counts as changed when its caregiver
//! row, its provider or payer patient, or that patient's address changed),
//! the *old* key of those visits (the `SSN`/`VisitDate`
//! of their stored pairs, by `VisitID`: both orientations of a pair are
//! stored), every key of a caregiver's changed in-service or absence period
//! (the dates it covers), and every key dated in the part of the window that
//! is new since the last run. [`decide`] is the pure choice of the mode.

use chrono::{DateTime, NaiveDate, Utc};
use tokio_postgres::Transaction;

use super::columns::{ColumnTypes, Want};
use super::in_service::{synthetic_id, EventKind};
use super::store::{written_columns, Schemas, Table};
use crate::error::{from_postgres, Result};
use crate::sink::qualified;

/// The temporary table of touched keys (`ssn text`, `visit_date date`), dropped at commit.
pub const KEYS: &str = "pg_temp.thaw_conflict_keys";
/// The temporary table of the caregivers of the touched keys' SSNs
/// (`caregiver_id uuid`, one row each, analysed), dropped at commit: the
/// incremental in-service/PTO events statement reads their events through
/// the events' caregiver index (docs/conflicts.md §14).
pub const TOUCHED_CAREGIVERS: &str = "pg_temp.thaw_conflict_touched_caregivers";
/// The changed visits: `visit_id`, and `caregiver_id`/`visit_date` as read
/// with it from the visits (NULL for a visit known only from the deleted table).
const CHANGED: &str = "pg_temp.thaw_conflict_changed";

/// Name of the watermark table in the conflict schema.
pub const WATERMARK_TABLE: &str = "conflict_watermark";

/// The stored watermark of the last successful run (docs/conflicts.md §D1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watermark {
    /// Largest source change timestamp seen (`None`: no source row had one).
    pub source_changed_up_to: Option<DateTime<Utc>>,
    /// md5 hex of the result-changing settings ([`fingerprint`]).
    pub settings_fingerprint: String,
    /// The inclusive candidate window of that run.
    pub window: (NaiveDate, NaiveDate),
}

/// Why a run recomputes the whole window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FullReason {
    /// `--full` / `ConflictCreateRequest.full`.
    Requested,
    /// `conflict.conflict_watermark` does not exist (migration V10 not applied).
    NoWatermarkTable,
    /// No successful run recorded yet (first night).
    NoWatermark,
    /// The settings fingerprint differs from the stored one.
    SettingsChanged,
    /// The window starts earlier than the stored one (an earlier "today").
    WindowMovedBack,
}

impl FullReason {
    /// The text reported in the run summary (`mode_reason`).
    pub fn text(self) -> &'static str {
        match self {
            FullReason::Requested => "full run requested (--full)",
            FullReason::NoWatermarkTable => {
                "no watermark table conflict_watermark (apply schema/V10__conflict_watermark.sql); every run is a full run"
            }
            FullReason::NoWatermark => "no watermark of a previous successful run (first run)",
            FullReason::SettingsChanged => "settings changed since the last run (SETTINGS, MPH, exclusions, providers, zone or GPS priority)",
            FullReason::WindowMovedBack => "the candidate window starts earlier than in the last run",
        }
    }
}

/// What a run covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// The whole window.
    Full(FullReason),
    /// The keys touched since `since` (exclusive) plus the dates after `old_window_end`.
    Incremental {
        /// The stored `SourceChangedUpTo`.
        since: Option<DateTime<Utc>>,
        /// The stored `WindowEnd`.
        old_window_end: NaiveDate,
    },
}

/// Choose full or incremental (pure). `incremental_requested` is false for
/// `--full`; `table_exists` says whether the V10 table exists; `stored` is
/// its row; `fingerprint` and `window` are this run's.
pub fn decide(
    incremental_requested: bool,
    table_exists: bool,
    stored: Option<&Watermark>,
    fingerprint: &str,
    window: (NaiveDate, NaiveDate),
) -> Plan {
    if !incremental_requested {
        return Plan::Full(FullReason::Requested);
    }
    if !table_exists {
        return Plan::Full(FullReason::NoWatermarkTable);
    }
    let Some(stored) = stored else { return Plan::Full(FullReason::NoWatermark) };
    if stored.settings_fingerprint != fingerprint {
        return Plan::Full(FullReason::SettingsChanged);
    }
    if window.0 < stored.window.0 {
        return Plan::Full(FullReason::WindowMovedBack);
    }
    Plan::Incremental { since: stored.source_changed_up_to, old_window_end: stored.window.1 }
}

/// Whether `conflict.conflict_watermark` exists.
pub async fn table_exists(tx: &Transaction<'_>, schemas: &Schemas) -> Result<bool> {
    conflict_table_exists(tx, schemas, WATERMARK_TABLE).await
}

/// Whether the table `table` of the conflict schema exists (a migration
/// that added it has run). Errors: PostgreSQL errors.
async fn conflict_table_exists(tx: &Transaction<'_>, schemas: &Schemas, table: &str) -> Result<bool> {
    let name = qualified(&schemas.conflict, table);
    let row = tx
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&name])
        .await
        .map_err(|e| from_postgres(e, format!("looking up the table {name}")))?;
    Ok(row.get(0))
}

/// The stored watermark, if a run has succeeded. Call only when [`table_exists`].
pub async fn load(tx: &Transaction<'_>, schemas: &Schemas) -> Result<Option<Watermark>> {
    let sql = format!(
        "SELECT \"SourceChangedUpTo\", \"SettingsFingerprint\", \"WindowStart\", \"WindowEnd\" FROM {} WHERE \"ID\" = 1",
        qualified(&schemas.conflict, WATERMARK_TABLE)
    );
    let row = tx.query_opt(&sql, &[]).await.map_err(|e| from_postgres(e, "reading the conflict watermark"))?;
    Ok(row.map(|r| Watermark { source_changed_up_to: r.get(0), settings_fingerprint: r.get(1), window: (r.get(2), r.get(3)) }))
}

/// Record `watermark` after a successful run (same transaction). `mode` is
/// `"full"` or `"incremental"`. `SourceChangedUpTo` never moves backwards.
pub async fn save(tx: &Transaction<'_>, schemas: &Schemas, watermark: &Watermark, mode: &str) -> Result<()> {
    let cols = written_columns(
        Table::Watermark,
        ["ID", "SourceChangedUpTo", "SettingsFingerprint", "WindowStart", "WindowEnd", "Mode", "CompletedAt"],
    )?;
    let table = qualified(&schemas.conflict, WATERMARK_TABLE);
    let sql = format!(
        "INSERT INTO {table} AS w ({cols}) VALUES (1, $1, $2, $3, $4, $5, now())\n\
         ON CONFLICT (\"ID\") DO UPDATE SET {s} = greatest(w.{s}, EXCLUDED.{s}), {f} = EXCLUDED.{f}, {ws} = EXCLUDED.{ws}, \
         {we} = EXCLUDED.{we}, {m} = EXCLUDED.{m}, {c} = EXCLUDED.{c}",
        cols = cols.join(", "),
        s = cols[1],
        f = cols[2],
        ws = cols[3],
        we = cols[4],
        m = cols[5],
        c = cols[6],
    );
    tx.execute(
        &sql,
        &[&watermark.source_changed_up_to, &watermark.settings_fingerprint, &watermark.window.0, &watermark.window.1, &mode],
    )
    .await
    .map_err(|e| from_postgres(e, "writing the conflict watermark"))?;
    Ok(())
}

/// The change-timestamp columns read for the watermark: `(table, column)`.
/// Caregivers, in-service and absence facts count only when the column exists.
const CHANGE_COLUMNS: &[(&str, &str)] = &[
    ("factvisitcallperformance_cr", "Visit Updated Timestamp"),
    ("factvisitcallperformance_deleted_cr", "Visit Updated Timestamp"),
    ("dimcaregiver", "Updated Datatimestamp"),
    ("dimpatient", "Updated Datatimestamp"),
    ("dimpatientaddress", "Updated Datatimestamp"),
    ("factcaregiverinservice", "Updated Datatimestamp"),
    ("factcaregiverabsence", "Updated Datatimestamp"),
];

fn optional_table(types: &ColumnTypes, table: &str, column: &str) -> bool {
    // `found` is None for assumed types (statement tests): then only the visit tables count.
    types.found(table, column).is_some()
}

/// The largest finite source change timestamp now in the mirror (`None`
/// when every source table is empty or holds no finite one; `infinity` and
/// `-infinity` are placed by `changed_since`). Errors: [`crate::ErrorKind::SchemaMismatch`] when
/// the visit tables lack `"Visit Updated Timestamp"`.
pub async fn source_high_water(tx: &Transaction<'_>, types: &ColumnTypes) -> Result<Option<DateTime<Utc>>> {
    let mut parts = Vec::new();
    for (i, (table, column)) in CHANGE_COLUMNS.iter().enumerate() {
        if i >= 2 && !optional_table(types, table, column) {
            continue;
        }
        let expr = types.expr("t", table, column, Want::Timestamptz)?;
        // Finite stamps only: an `infinity` made the watermark infinite (and
        // panicked decoding it), after which no change was ever newer. Written
        // as a range so that the column's index answers it from its end (a
        // `max() FILTER (…)` read every row: 0.13–0.48 s a night at 2 M visits).
        parts.push(format!(
            "(SELECT {expr} FROM {} t WHERE {expr} > '-infinity'::timestamptz AND {expr} < 'infinity'::timestamptz ORDER BY 1 DESC LIMIT 1)",
            qualified(types.schema(), table)
        ));
    }
    let sql = format!("SELECT greatest({})", parts.join(", "));
    let row = tx.query_one(&sql, &[]).await.map_err(|e| from_postgres(e, "reading the source change high-water mark"))?;
    Ok(row.get(0))
}

/// SETTINGS columns that are run bookkeeping (thaw's and the legacy
/// procedures' cron flags), left out of the fingerprint: a sync of SETTINGS
/// that only moves them must not force a full run.
pub const SETTINGS_BOOKKEEPING: &[&str] =
    &["InProgressFlag", "LastLoadDate", "UpdateCronFlag", "InsertCronFlag", "ConflictIDFlag", "GroupIDFlag", "VisitHistoryFlag"];

/// md5 hex of everything besides the visits that changes detection results
/// (docs/conflicts.md §D1): the SETTINGS rows without the run bookkeeping
/// ([`SETTINGS_BOOKKEEPING`]), the MPH bands, EXCLUDED_SSN and
/// EXCLUDED_AGENCY (without their surrogate `ID`s and timestamps), every
/// provider's id, activity, demo flag and state, and `config` (the
/// configured zone and GPS priority). Row order does not matter.
pub async fn fingerprint(tx: &Transaction<'_>, schemas: &Schemas, types: &ColumnTypes, config: &str) -> Result<String> {
    let c = |t: &str| qualified(&schemas.conflict, t);
    let agg = |select: String| format!("(SELECT md5(coalesce(string_agg(x, ',' ORDER BY x), '')) FROM ({select}) t)");
    let providers = format!(
        "SELECT json_build_array({id}, {active}, {demo}, {state})::text AS x FROM {table} pr",
        id = types.expr("pr", "dimprovider", "Provider Id", Want::Text)?,
        active = types.expr("pr", "dimprovider", "Is Active", Want::Bool)?,
        demo = types.expr("pr", "dimprovider", "Is Demo", Want::Bool)?,
        state = types.expr("pr", "dimprovider", "Address State", Want::Text)?,
        table = qualified(types.schema(), "dimprovider"),
    );
    let sql = format!(
        "SELECT md5(concat_ws('|', $1::text, {settings}, {mph}, {ssn}, {agency}, {providers}))",
        settings = agg(format!(
            "SELECT (to_jsonb(s) - ARRAY[{}])::text AS x FROM {} s",
            SETTINGS_BOOKKEEPING.iter().map(|c| format!("'{c}'")).collect::<Vec<_>>().join(", "),
            c("settings")
        )),
        mph = agg(format!("SELECT (to_jsonb(m) - 'ID' - 'RECORDEDDATETIME')::text AS x FROM {} m", c("mph"))),
        ssn = agg(format!("SELECT (to_jsonb(e) - 'ID')::text AS x FROM {} e", c("excluded_ssn"))),
        agency = agg(format!("SELECT (to_jsonb(e) - 'ID')::text AS x FROM {} e", c("excluded_agency"))),
        providers = agg(providers),
    );
    let row = tx.query_one(&sql, &[&config]).await.map_err(|e| from_postgres(e, "computing the conflict settings fingerprint"))?;
    Ok(row.get(0))
}

/// Fill [`KEYS`] with the keys touched since `since` (see the module docs),
/// restricted to `window`, and ANALYZE it. `old_window_end`: the stored
/// `WindowEnd` (dates after it up to `window.1` are new in the window).
/// `zone_literal`: the configured zone as an SQL literal (in-service and
/// absence periods are turned into dates on its wall clock). Returns the
/// number of touched keys.
///
/// Errors: [`crate::ErrorKind::SchemaMismatch`] for a missing table or column.
pub async fn collect_keys(
    tx: &Transaction<'_>,
    schemas: &Schemas,
    types: &ColumnTypes,
    since: Option<DateTime<Utc>>,
    old_window_end: NaiveDate,
    window: (NaiveDate, NaiveDate),
    zone_literal: &str,
) -> Result<u64> {
    let a = |t: &str| qualified(types.schema(), t);
    let (fa, da, ca) = ("factvisitcallperformance_cr", "factvisitcallperformance_deleted_cr", "dimcaregiver");
    let cg_ssn = format!("btrim({}, ' ')", types.expr("cg", ca, "SSN", Want::Text)?);
    let cg_id = types.expr("cg", ca, "Caregiver Id", Want::Uuid)?;
    // `$1` = since (NULL: everything is new).
    let after = "> coalesce($1::timestamptz, '-infinity'::timestamptz)";
    let setup = "CREATE TEMP TABLE thaw_conflict_changed (visit_id uuid, caregiver_id uuid, visit_date date) ON COMMIT DROP;\n\
         CREATE TEMP TABLE thaw_conflict_keys (ssn text NOT NULL, visit_date date NOT NULL, PRIMARY KEY (ssn, visit_date)) ON COMMIT DROP";
    tx.batch_execute(setup).await.map_err(|e| from_postgres(e, "creating the touched-key tables"))?;
    let f_id = types.expr("f", fa, "Visit Id", Want::Uuid)?;
    let f_cg = types.expr("f", fa, "Caregiver Id", Want::Uuid)?;
    let f_upd = types.expr("f", fa, "Visit Updated Timestamp", Want::Timestamptz)?;
    let d_upd = types.expr("d", da, "Visit Updated Timestamp", Want::Timestamptz)?;
    let f_date = types.expr("f", fa, "Visit Date", Want::Date)?;
    // Changed visits: updated or deleted after the watermark, and every visit
    // of a caregiver row changed after it (an SSN edit moves all its keys).
    // A visit read from the visits keeps its caregiver and date, so its key
    // needs no second read of the visits (at 1 % of 500 000 visits that read
    // was a hash join over a scan of all of them, docs/conflicts.md §14).
    // A visit or deleted visit without a change timestamp cannot be placed
    // before or after any watermark: it counts as changed on every run, so
    // incremental nights stay complete for it (docs/conflicts.md §D1; both
    // conditions are served by the timestamp's index, schema/V2__analytics.sql).
    let (f_changed, d_changed) = (changed_since(&f_upd, after), changed_since(&d_upd, after));
    let f_row = format!("{f_id}, {f_cg}, {f_date}");
    let mut changed_sql = format!(
        "INSERT INTO {CHANGED}\nSELECT {f_row} FROM {fact} f WHERE {f_changed}\nUNION SELECT {d_id}, NULL::uuid, NULL::date FROM {deleted} d WHERE {d_changed}",
        d_id = types.expr("d", da, "Visit Id", Want::Uuid)?,
        fact = a(fa),
        deleted = a(da),
    );
    if optional_table(types, ca, "Updated Datatimestamp") {
        changed_sql.push_str(&format!(
            "\nUNION SELECT {f_row} FROM {cgs} cg JOIN {fact} f ON {f_cg} = {cg_id} WHERE {cg_upd} {after}",
            cgs = a(ca),
            fact = a(fa),
            cg_upd = types.expr("cg", ca, "Updated Datatimestamp", Want::Timestamptz)?,
        ));
    }
    // Every visit of a patient (provider or payer side) whose row or address
    // changed: addresses move rule 7 and the cross-state rule (docs/conflicts.md §4.1.7).
    let patient_changes: Vec<String> = [("dimpatient", "p"), ("dimpatientaddress", "p")]
        .iter()
        .filter(|(t, _)| optional_table(types, t, "Updated Datatimestamp") && optional_table(types, t, "Patient Id"))
        .map(|(t, al)| -> Result<String> {
            Ok(format!(
                "SELECT {id} FROM {table} {al} WHERE {upd} {after}",
                id = types.expr(al, t, "Patient Id", Want::Uuid)?,
                table = a(t),
                upd = types.expr(al, t, "Updated Datatimestamp", Want::Timestamptz)?,
            ))
        })
        .collect::<Result<_>>()?;
    if !patient_changes.is_empty() {
        let patients = patient_changes.join(" UNION ");
        for column in ["Provider Patient Id", "Payer Patient Id"] {
            changed_sql.push_str(&format!(
                "\nUNION SELECT {f_row} FROM {fact} f WHERE {fk} IN ({patients})",
                fact = a(fa),
                fk = types.expr("f", fa, column, Want::Uuid)?,
            ));
        }
    }
    tx.execute(&changed_sql, &[&since]).await.map_err(|e| from_postgres(e, "collecting the changed visits"))?;
    tx.batch_execute(&format!("ANALYZE {CHANGED}")).await.map_err(|e| from_postgres(e, "analysing the changed visits"))?;

    let cvm = qualified(&schemas.conflict, "conflictvisitmaps");
    let mut branches = vec![
        // New keys of changed visits: as read with them, or (ids known only
        // from the deleted table) from the visits by primary key.
        format!("SELECT {cg_ssn}, ch.visit_date FROM {CHANGED} ch JOIN {cgs} cg ON {cg_id} = ch.caregiver_id", cgs = a(ca)),
        format!(
            "SELECT {cg_ssn}, {f_date} FROM {CHANGED} ch JOIN {fact} f ON {f_id} = ch.visit_id JOIN {cgs} cg ON {cg_id} = {f_cg} WHERE ch.caregiver_id IS NULL",
            fact = a(fa),
            cgs = a(ca),
        ),
        // Keys of deleted visits (their own row in the deleted table).
        format!(
            "SELECT {cg_ssn}, {d_date} FROM {deleted} d JOIN {cgs} cg ON {cg_id} = {d_cg} WHERE {d_changed}",
            d_date = types.expr("d", da, "Visit Date", Want::Date)?,
            d_cg = types.expr("d", da, "Caregiver Id", Want::Uuid)?,
            deleted = a(da),
            cgs = a(ca),
        ),
        // Old keys: the stored pairs of changed visits, by VisitID (both orientations are stored).
        format!("SELECT c.\"SSN\"::text, c.\"VisitDate\"::date FROM {CHANGED} ch JOIN {cvm} c ON c.\"VisitID\" = ch.visit_id"),
        restored_visit_keys_sql(schemas, types)?,
        // Dates that entered the window since the last run.
        format!(
            "SELECT {cg_ssn}, {f_date} FROM {fact} f JOIN {cgs} cg ON {cg_id} = {f_cg} WHERE {f_date} > $2::date AND {f_date} <= $4::date",
            fact = a(fa),
            cgs = a(ca),
        ),
    ];
    // Pairs whose status someone else changed since the last night (docs/conflicts.md §D26).
    if closed_pairs_table_exists(tx, schemas).await? {
        branches.push(status_edited_keys_sql(schemas));
    }
    // Changed in-service and absence periods: every date they cover (inside
    // the window), for the caregiver's SSN. A period without a change
    // timestamp counts as changed on every run, like a visit without one.
    // A period counts as changed when its row or its caregiver row changed
    // (an SSN edit moves all its keys, as for visits), and its **old** keys
    // are touched too: those of its stored rows, by VisitID, and of their
    // reverse rows (an event row and its reverse have different dates, the
    // event's start date and the visit's), so an event that moved to a
    // caregiver, agency or dates where it no longer qualifies has its old
    // rows resolved as a full night resolves them (before, they stayed open
    // until the next `--full`; found by tests/conflict_detection_model.py).
    let cg_changed = if optional_table(types, ca, "Updated Datatimestamp") {
        Some(format!("{} {after}", types.expr("cg", ca, "Updated Datatimestamp", Want::Timestamptz)?))
    } else {
        None
    };
    for kind in EventKind::ALL {
        let (table, (id, caregiver, start, end)) = (kind.table(), kind.columns());
        if !optional_table(types, table, "Updated Datatimestamp") || !optional_table(types, table, caregiver) {
            continue;
        }
        let e = |col: &str, want: Want| types.expr("i", table, col, want);
        let (s, en) = (e(start, Want::Timestamptz)?, e(end, Want::Timestamptz)?);
        let (t, cgs, cg_fk) = (a(table), a(ca), e(caregiver, Want::Uuid)?);
        let changed = changed_since(&e("Updated Datatimestamp", Want::Timestamptz)?, after);
        // (FROM … WHERE) of the changed events: changed rows, and the rows of changed caregivers.
        let mut sources = vec![(format!("{t} i JOIN {cgs} cg ON {cg_id} = {cg_fk}"), changed.clone())];
        if let Some(cg_changed) = &cg_changed {
            sources.push((format!("{cgs} cg JOIN {t} i ON {cg_fk} = {cg_id}"), cg_changed.clone()));
        }
        for (from, condition) in &sources {
            branches.push(format!(
                "SELECT {cg_ssn}, d::date FROM {from}\n\
                 CROSS JOIN LATERAL generate_series(greatest(({s} AT TIME ZONE {zone_literal})::date, $3::date), \
                 least(coalesce(({en} AT TIME ZONE {zone_literal})::date, ({s} AT TIME ZONE {zone_literal})::date), $4::date), interval '1 day') d\n\
                 WHERE {condition} AND {s} IS NOT NULL"
            ));
        }
        // Old keys: a changed row's own (without its caregiver, which may be gone), and those of a changed caregiver's events.
        let mut old_sources = vec![(format!("{t} i"), changed)];
        if let Some(cg_changed) = &cg_changed {
            old_sources.push((format!("{cgs} cg JOIN {t} i ON {cg_fk} = {cg_id}"), cg_changed.clone()));
        }
        let event_id = synthetic_id(kind, &e(id, Want::Int8)?);
        for (from, condition) in old_sources {
            branches.push(format!(
                "SELECT k.* FROM {from}\n\
                 JOIN {cvm} c ON c.\"VisitID\" = {event_id}\n\
                 CROSS JOIN LATERAL (SELECT c.\"SSN\"::text, c.\"VisitDate\"::date\n    \
                 UNION ALL SELECT r.\"SSN\"::text, r.\"VisitDate\"::date FROM {cvm} r WHERE r.\"VisitID\" = c.\"ConVisitID\" AND r.\"ConVisitID\" = c.\"VisitID\") k\n\
                 WHERE {condition}"
            ));
        }
    }
    let keys_sql = format!(
        "INSERT INTO {KEYS} (ssn, visit_date)\nSELECT DISTINCT ssn, visit_date FROM (\n{}\n) k(ssn, visit_date)\n\
         WHERE ssn IS NOT NULL AND ssn <> '' AND visit_date BETWEEN $3::date AND $4::date",
        branches.join("\nUNION ALL\n")
    );
    let touched = tx
        .execute(&keys_sql, &[&since, &old_window_end, &window.0, &window.1])
        .await
        .map_err(|e| from_postgres(e, "collecting the touched (SSN, VisitDate) keys"))?;
    tx.batch_execute(&format!("ANALYZE {KEYS}")).await.map_err(|e| from_postgres(e, "analysing the touched keys"))?;
    tx.batch_execute(&touched_caregivers_setup(types)?)
        .await
        .map_err(|e| from_postgres(e, "collecting the caregivers of the touched keys"))?;
    Ok(touched)
}

/// `conflict.conflict_closed_pairs` (schema/V27__conflict_closed_pairs.sql):
/// the IDs of the closed (`R`/`D`) pairs as the last night left them,
/// without the pairs its cascade closed (docs/conflicts.md §D26).
pub const CLOSED_PAIRS_TABLE: &str = "conflict_closed_pairs";

/// Whether [`CLOSED_PAIRS_TABLE`] exists (V27).
///
/// Errors: PostgreSQL errors.
pub async fn closed_pairs_table_exists(tx: &Transaction<'_>, schemas: &Schemas) -> Result<bool> {
    conflict_table_exists(tx, schemas, CLOSED_PAIRS_TABLE).await
}

/// The `(ssn, visit_date)` rows of the pairs whose status someone else
/// changed since the last night, for [`collect_keys`]: the closed (`R`/`D`)
/// pairs missing from [`CLOSED_PAIRS_TABLE`] (closed by the application, or
/// by the last night's cascade while still detected) and the listed pairs
/// that are no longer closed (reopened by the application, or deleted rows:
/// those have no key left and are skipped). \[SF\] recomputes every pair each
/// night, so its refresh reopens such a pair while it is detected and its
/// step 4 resolves it when it is not (docs/conflicts.md §D26). Both halves
/// compare the list with the partial index of the closed pairs' IDs
/// (schema/V27__conflict_closed_pairs.sql) in ID order; only the differing
/// pairs are read (by primary key: `OFFSET 0` keeps that lookup a probe per
/// pair; as a join the planner scanned every pair). 0.59 s at 600 000
/// closed of 1 000 000 stored pairs (docs/conflicts.md §D26).
pub fn status_edited_keys_sql(schemas: &Schemas) -> String {
    let cvm = qualified(&schemas.conflict, "conflictvisitmaps");
    let list = qualified(&schemas.conflict, CLOSED_PAIRS_TABLE);
    format!(
        "SELECT c.\"SSN\"::text, c.\"VisitDate\"::date FROM {cvm} c\n\
         WHERE c.\"StatusFlag\" IN ('R', 'D') AND NOT EXISTS (SELECT 1 FROM {list} l WHERE l.\"ID\" = c.\"ID\")\n\
         UNION ALL\n\
         SELECT k.* FROM (SELECT l.\"ID\" FROM {list} l WHERE NOT EXISTS (SELECT 1 FROM {cvm} x WHERE x.\"ID\" = l.\"ID\" AND x.\"StatusFlag\" IN ('R', 'D'))) g\n\
         CROSS JOIN LATERAL (SELECT c.\"SSN\"::text, c.\"VisitDate\"::date FROM {cvm} c WHERE c.\"ID\" = g.\"ID\" OFFSET 0) k"
    )
}

/// Rewrite [`CLOSED_PAIRS_TABLE`] to the closed pairs the night leaves,
/// without those its cascade closed in the window ([`super::lifecycle::CASCADED`]):
/// \[SF\]'s next night reopens them while they are detected, so the next
/// incremental night must recompute their keys (docs/conflicts.md §D26).
/// Call at the end of every night, full or incremental, after the
/// lifecycle; a no-op without the table (V27). Work: two passes over the
/// closed pairs' ID index and the list, writing only the differences
/// (1.0 s at 600 000 closed of 1 000 000 stored pairs, docs/conflicts.md §D26).
///
/// Errors: PostgreSQL errors.
pub async fn record_closed_pairs(tx: &Transaction<'_>, schemas: &Schemas) -> Result<()> {
    if !closed_pairs_table_exists(tx, schemas).await? {
        return Ok(());
    }
    let cvm = qualified(&schemas.conflict, "conflictvisitmaps");
    let list = qualified(&schemas.conflict, CLOSED_PAIRS_TABLE);
    let cascaded = super::lifecycle::CASCADED;
    let sql = format!(
        "DELETE FROM {list} l WHERE NOT EXISTS (SELECT 1 FROM {cvm} c WHERE c.\"ID\" = l.\"ID\" AND c.\"StatusFlag\" IN ('R', 'D'));\n\
         DELETE FROM {list} l WHERE l.\"ID\" IN (SELECT id FROM {cascaded});\n\
         INSERT INTO {list} (\"ID\") SELECT c.\"ID\" FROM {cvm} c WHERE c.\"StatusFlag\" IN ('R', 'D')\n  \
           AND NOT EXISTS (SELECT 1 FROM {list} l WHERE l.\"ID\" = c.\"ID\") AND NOT EXISTS (SELECT 1 FROM {cascaded} x WHERE x.id = c.\"ID\")"
    );
    tx.batch_execute(&sql).await.map_err(|e| from_postgres(e, "recording the closed pairs of the night"))
}

/// The `(ssn, visit_date)` rows of the restored visits for [`collect_keys`]:
/// for every stored `D` pair whose conflicting visit is back in the visits
/// and gone from the deleted table, the pair's key and the visit's current
/// key (docs/conflicts.md §D1). A removal from the deleted table leaves no
/// change timestamp and a restored row may keep its old one, so only this
/// finds them; the refresh then reopens the pair as a full run does (§7.2).
/// Read through the partial index of `D` pairs
/// (schema/V26__conflict_deleted_pairs_index.sql); a pair reopened tonight
/// is not `D` any more.
///
/// Errors: [`crate::ErrorKind::SchemaMismatch`] for a missing source column.
pub fn restored_visit_keys_sql(schemas: &Schemas, types: &ColumnTypes) -> Result<String> {
    let a = |t: &str| qualified(types.schema(), t);
    let (fa, da, ca) = ("factvisitcallperformance_cr", "factvisitcallperformance_deleted_cr", "dimcaregiver");
    let cg_ssn = types.expr("cg", ca, "SSN", Want::Text)?;
    Ok(format!(
        "SELECT k.* FROM {cvm} c JOIN {fact} f ON {f_id} = c.\"ConVisitID\" JOIN {cgs} cg ON {cg_id} = {f_cg}\n\
         CROSS JOIN LATERAL (VALUES (c.\"SSN\"::text, c.\"VisitDate\"::date), (btrim({cg_ssn}, ' '), {f_date})) k(ssn, visit_date)\n\
         WHERE c.\"StatusFlag\" = 'D' AND NOT EXISTS (SELECT 1 FROM {deleted} d WHERE {d_id} = c.\"ConVisitID\")",
        cvm = qualified(&schemas.conflict, "conflictvisitmaps"),
        fact = a(fa),
        cgs = a(ca),
        deleted = a(da),
        f_id = types.expr("f", fa, "Visit Id", Want::Uuid)?,
        f_cg = types.expr("f", fa, "Caregiver Id", Want::Uuid)?,
        f_date = types.expr("f", fa, "Visit Date", Want::Date)?,
        cg_id = types.expr("cg", ca, "Caregiver Id", Want::Uuid)?,
        d_id = types.expr("d", da, "Visit Id", Want::Uuid)?,
    ))
}

/// The condition "the row's change timestamp `stamp` is newer than the
/// watermark (`after`: `> …`), or cannot be placed before or after one":
/// NULL, and `-infinity` (`infinity` is newer than every watermark, which
/// only takes finite stamps, [`source_high_water`]). Such rows count as
/// changed on every incremental run (docs/conflicts.md §D1); every branch
/// is served by the timestamp's index (equality, `IS NULL`, range).
fn changed_since(stamp: &str, after: &str) -> String {
    format!("({stamp} {after} OR {stamp} IS NULL OR {stamp} = '-infinity'::timestamptz)")
}

/// The number of visit, deleted-visit, in-service and absence rows whose
/// change timestamp (`"Visit Updated Timestamp"`, `"Updated Datatimestamp"`)
/// is NULL or not finite: [`collect_keys`] counts them as changed on every incremental run
/// (docs/conflicts.md §D1), which the run's summary reports as a warning.
/// Event tables without the column are not counted (they are not tracked).
///
/// Errors: [`crate::ErrorKind::SchemaMismatch`] for a missing table or column.
pub async fn rows_without_change_timestamp(tx: &Transaction<'_>, types: &ColumnTypes) -> Result<i64> {
    let mut parts = Vec::new();
    for (i, (table, column)) in CHANGE_COLUMNS.iter().enumerate() {
        let event = table.starts_with("factcaregiver");
        if !(i < 2 || event && optional_table(types, table, column)) {
            continue;
        }
        let upd = types.expr("t", table, column, Want::Timestamptz)?;
        // Index conditions only (`NOT isfinite(…)` read every row: 0.1–0.2 s a night at 2 M visits).
        parts.push(format!(
            "(SELECT count(*) FROM {} t WHERE {upd} IS NULL OR {upd} IN ('infinity'::timestamptz, '-infinity'::timestamptz))",
            qualified(types.schema(), table)
        ));
    }
    let sql = format!("SELECT {}", parts.join(" + "));
    let row = tx.query_one(&sql, &[]).await.map_err(|e| from_postgres(e, "counting the visits without a change timestamp"))?;
    Ok(row.get(0))
}

/// The statements that fill [`TOUCHED_CAREGIVERS`] from [`KEYS`]: one probe
/// of the trimmed-SSN index of `dimcaregiver` per touched SSN (a lateral
/// subquery kept from being flattened, so never a scan of every caregiver),
/// then `ANALYZE`.
///
/// Errors: [`crate::ErrorKind::SchemaMismatch`] for a missing column.
pub fn touched_caregivers_setup(types: &ColumnTypes) -> Result<String> {
    let ca = "dimcaregiver";
    Ok(format!(
        "CREATE TEMP TABLE thaw_conflict_touched_caregivers ON COMMIT DROP AS\n\
         SELECT DISTINCT cg.caregiver_id FROM (SELECT DISTINCT ssn FROM {KEYS}) k\n\
         CROSS JOIN LATERAL (SELECT {cg_id} AS caregiver_id FROM {cgs} cg WHERE btrim({cg_ssn}, ' ') = k.ssn OFFSET 0) cg;\n\
         ANALYZE {TOUCHED_CAREGIVERS}",
        cg_id = types.expr("cg", ca, "Caregiver Id", Want::Uuid)?,
        cg_ssn = types.expr("cg", ca, "SSN", Want::Text)?,
        cgs = qualified(types.schema(), ca),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn the_mode_is_full_when_requested_first_or_settings_changed() {
        let w = (d("2023-03-10"), d("2025-04-24"));
        let stored = Watermark { source_changed_up_to: None, settings_fingerprint: "abc".into(), window: w };
        assert_eq!(decide(false, true, Some(&stored), "abc", w), Plan::Full(FullReason::Requested));
        assert_eq!(decide(true, false, None, "abc", w), Plan::Full(FullReason::NoWatermarkTable));
        assert_eq!(decide(true, true, None, "abc", w), Plan::Full(FullReason::NoWatermark));
        assert_eq!(decide(true, true, Some(&stored), "abd", w), Plan::Full(FullReason::SettingsChanged));
        assert_eq!(decide(true, true, Some(&stored), "abc", (d("2023-03-09"), w.1)), Plan::Full(FullReason::WindowMovedBack));
        assert_eq!(
            decide(true, true, Some(&stored), "abc", (d("2023-03-11"), d("2025-04-25"))),
            Plan::Incremental { since: None, old_window_end: w.1 }
        );
    }
}
