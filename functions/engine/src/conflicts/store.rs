//! Diff and write: detected pairs → `conflictvisitmaps` and `conflicts`.
//!
//! Flow inside the run's transaction:
//! 1. [`PairWriter`]: every detected ordered pair is binary-COPYed into the
//!    temporary staging table `thaw_conflict_pairs` (keys, the seven flags,
//!    distance metrics, coordinates), batch by batch as detection streams.
//! 2. [`apply`]: set-based statements only.
//!    * the visit snapshot (≈100 denormalised columns per side: provider,
//!      caregiver, office, patient blocks, payer/contract, billing, service
//!      code, times on the configured wall clock) is selected once per visit
//!      from the analytics mirror, cast to the target column types, and
//!      joined to the staged pairs;
//!    * **refresh**: a stored pair is updated only when something differs —
//!      a snapshot column, a flag going N→Y (flags are sticky, \[SF\] docs/conflicts.md §7.2), or
//!      its status: a resolved ('R') pair, or a deleted ('D') one whose visit was
//!      restored, detected again reopens to 'U' (\[SF\] docs/conflicts.md §7.2, §D24) —
//!      so a run with no source change updates nothing, not even `UpdatedDate`;
//!    * **insert** new pairs allowed to start a conflict ([SF-INS]), status 'U';
//!    * **CONFLICTID** (TASK_04): a row without one inherits the CONFLICTID of
//!      any row with the same `VisitID`, else gets max(CONFLICTID) + dense
//!      rank by (`VisitID`, `AppVisitID`); `ReverseUUID` and `CRDATEUNIQUE`
//!      are filled once, when NULL (\[SF\] docs/conflicts.md §7). For the
//!      night's new rows all of them and `GroupID` are computed before the
//!      insert (`pg_temp.thaw_conflict_ids`, [`super::groups::plan_new_rows`]), so each
//!      new row is written once; the statements after the insert only fill
//!      stored rows written by others (docs/conflicts.md §14). A `conflicts` row (status 'U')
//!      is created for every CONFLICTID without one (\[SF\] docs/conflicts.md §7.7);
//!    * **resolve**: open stored pairs of the window (in an incremental run:
//!      of the touched keys, docs/conflicts.md §D1) that were not detected
//!      become `StatusFlag` 'R' with `ResolveDate` (never deleted). This
//!      includes pairs that have become cross-state: the sweep no longer
//!      emits them (docs/conflicts.md §D6, [`super::cross_state`]);
//!    * **status lifecycle** in \[SF\]'s nightly order (docs/conflicts.md §8.2):
//!      deleted visits → 'D' (terminal), missed visits → 'R', resolved
//!      conflicts with an open pair reopen, cascades down (closed conflict →
//!      its last open pairs) and up (all pairs closed → conflict 'R'), and no
//!      `ResolveDate` on open rows.
//!
//! Every bulk write is followed by an `ANALYZE` of what the next statement
//! reads, and no statement has a correlated or self-referencing plan, so a
//! first run on an empty, never-analysed schema stays linear (docs/conflicts.md §14).
//!
//! Every column a statement writes goes through [`written_columns`], which
//! refuses anything outside the nightly allow-list of its table; the
//! application's columns ([`USER_OWNED_CVM_COLUMNS`],
//! [`USER_OWNED_CONFLICT_COLUMNS`]) are never written.

use std::collections::HashMap;

use chrono::NaiveDate;
use futures::pin_mut;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Transaction};

use super::columns::{ColumnTypes, Want};
use super::rules::RuleFlags;
use super::settings::DetectionSettings;
use super::{in_service, DetectedPair};
use crate::config::ConflictSettings;
use crate::error::{from_postgres, Error, ErrorKind, Result};
use crate::sink::{ident, qualified};

/// Schemas of one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schemas {
    /// The synced analytics mirror (default `analytics`).
    pub analytics: String,
    /// The conflict schema (default `conflict`).
    pub conflict: String,
}

impl Schemas {
    /// From the `conflicts` config section.
    pub fn from_settings(settings: &ConflictSettings) -> Result<Schemas> {
        let pick = |v: &Option<String>, default: &str, key: &str| -> Result<String> {
            let s = v.as_deref().unwrap_or(default).trim().to_string();
            if s.is_empty() {
                return Err(Error::config(format!("conflicts.{key} is empty; give a schema name or remove the key (default '{default}')")));
            }
            Ok(s)
        };
        Ok(Schemas {
            analytics: pick(&settings.analytics_schema, "analytics", "analytics_schema")?,
            conflict: pick(&settings.conflict_schema, "conflict", "conflict_schema")?,
        })
    }
}

/// A table the nightly job writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// `conflictvisitmaps`.
    ConflictVisitMaps,
    /// `conflicts`.
    Conflicts,
    /// `settings` (run bookkeeping only).
    Settings,
    /// `conflict_watermark` (the run's own bookkeeping, docs/conflicts.md §D1).
    Watermark,
    /// `notifications` (docs/conflicts.md §9.1; never `ReadUnreadFlag`).
    Notifications,
    /// `log_history` (docs/conflicts.md §9.2).
    LogHistory,
    /// `log_history_values` (docs/conflicts.md §9.2).
    LogHistoryValues,
    /// `payer_provider_reminders` (docs/conflicts.md §9.3; never `NumberOfDays`).
    PayerProviderReminders,
    /// `conflict_commu_inters` (docs/conflicts.md §9.3: the reminder comments it inserts).
    ConflictComments,
}

/// One per-visit snapshot column: its name on the primary side, on the
/// conflicting side, and the SQL expression computing it from the visit's
/// analytics rows (aliases: `f` fact, `cg` caregiver, `pr` provider, `o`
/// office, `pp`/`ppa` provider patient and its address, `pa`/`paa` payer
/// patient and its address, `py` payer, `ct` contract, `sc` service code,
/// `u` user; `{tz}` = the configured zone as a literal).
#[derive(Debug, Clone, Copy)]
pub struct SideColumn {
    /// Column for the primary visit (`V1`).
    pub primary: &'static str,
    /// Column for the conflicting visit (`V2`).
    pub conflicting: &'static str,
    /// SQL expression (docs/conflicts.md §4.1 attribute table, docs/conflicts.md §6).
    pub expr: &'static str,
}

const fn side(primary: &'static str, conflicting: &'static str, expr: &'static str) -> SideColumn {
    SideColumn { primary, conflicting, expr }
}

/// Scheduled minutes for the per-minute rate: Snowflake whole-minute DATEDIFF on the wall clock.
const BILL_RATE_BOTH: &str = r#"CASE WHEN f."Billed" = 'yes' THEN f."Billed Rate" ELSE f."Bill Rate Non-Billed" END"#;

/// The visit snapshot columns written for both sides of a pair.
pub const SIDE_COLUMNS: &[SideColumn] = &[
    side("AppVisitID", "ConAppVisitID", r#"f."Application Visit Id""#),
    side("ProviderID", "ConProviderID", r#"f."Provider Id""#),
    side("AppProviderID", "ConAppProviderID", r#"f."Application Provider Id""#),
    side("ProviderName", "ConProviderName", r#"pr."Provider Name""#),
    side("FederalTaxNumber", "ConFederalTaxNumber", r#"pr."Federal Tax Number""#),
    side("AgencyPhone", "ConAgencyPhone", r#"pr."Phone Number 1""#),
    side("SchStartTime", "ConSchStartTime", r#"(f."Scheduled Start Time" AT TIME ZONE {tz})"#),
    side("SchEndTime", "ConSchEndTime", r#"(f."Scheduled End Time" AT TIME ZONE {tz})"#),
    side("VisitStartTime", "ConVisitStartTime", r#"(f."Visit Start Time" AT TIME ZONE {tz})"#),
    side("VisitEndTime", "ConVisitEndTime", r#"(f."Visit End Time" AT TIME ZONE {tz})"#),
    side("EVVStartTime", "ConEVVStartTime", r#"(f."Call In Time" AT TIME ZONE {tz})"#),
    side("EVVEndTime", "ConEVVEndTime", r#"(f."Call Out Time" AT TIME ZONE {tz})"#),
    side("ShVTSTTime", "CShVTSTTime", r#"(coalesce(f."Visit Start Time", f."Scheduled Start Time") AT TIME ZONE {tz})"#),
    side("ShVTENTime", "CShVTENTime", r#"(coalesce(f."Visit End Time", f."Scheduled End Time") AT TIME ZONE {tz})"#),
    side("CaregiverID", "ConCaregiverID", r#"f."Caregiver Id""#),
    side("AppCaregiverID", "ConAppCaregiverID", r#"f."Application Caregiver Id""#),
    side("AideCode", "ConAideCode", r#"cg."Caregiver Code""#),
    side("AideName", "ConAideName", r#"cg."Caregiver Fullname""#),
    side("AideFName", "ConAideFName", r#"cg."Caregiver Firstname""#),
    side("AideLName", "ConAideLName", r#"cg."Caregiver Lastname""#),
    side("AideSSN", "ConAideSSN", r#"btrim(cg."SSN", ' ')"#),
    side("AideStatus", "ConAideStatus", r#"cg."Status""#),
    side("OfficeID", "ConOfficeID", r#"f."Office Id""#),
    side("AppOfficeID", "ConAppOfficeID", r#"f."Application Office Id""#),
    side("Office", "ConOffice", r#"CASE WHEN o."Is Active" THEN o."Office Name" END"#),
    side("PatientID", "ConPatientID", r#"f."Patient Id""#),
    side("AppPatientID", "ConAppPatientID", r#"f."Application Patient Id""#),
    side("P_PatientID", "ConP_PatientID", r#"f."Provider Patient Id""#),
    side("P_AppPatientID", "ConP_AppPatientID", r#"f."Application Provider Patient Id""#),
    side("P_PAdmissionID", "ConP_PAdmissionID", r#"pp."Admission Id""#),
    side("P_PName", "ConP_PName", r#"pp."Patient Name""#),
    side("P_PFName", "ConP_PFName", r#"pp."Patient Firstname""#),
    side("P_PLName", "ConP_PLName", r#"pp."Patient Lastname""#),
    side("P_PMedicaidNumber", "ConP_PMedicaidNumber", r#"pp."Medicaid Number""#),
    side("P_PStatus", "ConP_PStatus", r#"pp."Status""#),
    side("P_PAddressID", "ConP_PAddressID", r#"ppa."Patient Address Id""#),
    side("P_PAppAddressID", "ConP_PAppAddressID", r#"ppa."Application Patient Address Id""#),
    side("P_PAddressL1", "ConP_PAddressL1", r#"ppa."Address Line 1""#),
    side("P_PAddressL2", "ConP_PAddressL2", r#"ppa."Address Line 2""#),
    side("P_PCity", "ConP_PCity", r#"ppa."City""#),
    side("P_PAddressState", "ConP_PAddressState", r#"ppa."Address State""#),
    side("P_PZipCode", "ConP_PZipCode", r#"ppa."Zip Code""#),
    side("P_PCounty", "ConP_PCounty", r#"ppa."County""#),
    side("PA_PatientID", "ConPA_PatientID", r#"f."Payer Patient Id""#),
    side("PA_AppPatientID", "ConPA_AppPatientID", r#"f."Application Payer Patient Id""#),
    side("PA_PAdmissionID", "ConPA_PAdmissionID", r#"pa."Admission Id""#),
    side("PA_PName", "ConPA_PName", r#"pa."Patient Name""#),
    side("PA_PFName", "ConPA_PFName", r#"pa."Patient Firstname""#),
    side("PA_PLName", "ConPA_PLName", r#"pa."Patient Lastname""#),
    side("PA_PMedicaidNumber", "ConPA_PMedicaidNumber", r#"pa."Medicaid Number""#),
    side("PA_PStatus", "ConPA_PStatus", r#"pa."Status""#),
    side("PA_PAddressID", "ConPA_PAddressID", r#"paa."Patient Address Id""#),
    side("PA_PAppAddressID", "ConPA_PAppAddressID", r#"paa."Application Patient Address Id""#),
    side("PA_PAddressL1", "ConPA_PAddressL1", r#"paa."Address Line 1""#),
    side("PA_PAddressL2", "ConPA_PAddressL2", r#"paa."Address Line 2""#),
    side("PA_PCity", "ConPA_PCity", r#"paa."City""#),
    side("PA_PAddressState", "ConPA_PAddressState", r#"paa."Address State""#),
    side("PA_PZipCode", "ConPA_PZipCode", r#"paa."Zip Code""#),
    side("PA_PCounty", "ConPA_PCounty", r#"paa."County""#),
    side("PayerID", "ConPayerID", r#"f."Payer Id""#),
    side("AppPayerID", "ConAppPayerID", r#"f."Application Payer Id""#),
    side(
        "Contract",
        "ConContract",
        r#"coalesce(CASE WHEN py."Is Active" AND py."Is Demo" = false THEN py."Payer Name" END, CASE WHEN ct."Is Active" THEN ct."Contract Name" END)"#,
    ),
    side("PayerState", "ConPayerState", r#"py."Payer State""#),
    side(
        "ContractType",
        "ConContractType",
        r#"CASE WHEN f."Application Payer Id" = 0 AND f."Application Contract Id" <> 0 THEN 'Internal'
               WHEN f."Application Payer Id" <> 0 AND f."Application Contract Id" <> 0 THEN 'UPR'
               WHEN f."Application Payer Id" <> 0 AND f."Application Contract Id" = 0 THEN 'Payer' END"#,
    ),
    side("Billed", "ConBilled", r#"f."Billed""#),
    side("BilledDate", "ConBilledDate", r#"f."Invoice Date""#),
    side("BilledHours", "ConBilledHours", r#"f."Billed Hours""#),
    side("BilledRate", "ConBilledRate", r#"f."Billed Rate""#),
    side("TotalBilledAmount", "ConTotalBilledAmount", r#"f."Total Billed Amount""#),
    side("BillRateNonBilled", "ConBillRateNonBilled", r#"f."Bill Rate Non-Billed""#),
    side("BillRateBoth", "ConBillRateBoth", BILL_RATE_BOTH),
    side("RateType", "ConRateType", r#"f."Bill Type""#),
    // docs/conflicts.md §6.3 BilledRateMinute ([SF]: whole-minute scheduled length; a NULL
    // "Billed" is neither = 'yes' nor <> 'yes', so it yields 0, docs/conflicts.md §10.1).
    side(
        "BilledRateMinute",
        "ConBilledRateMinute",
        r#"CASE WHEN (CASE WHEN f."Billed" = 'yes' THEN f."Billed Rate" ELSE f."Bill Rate Non-Billed" END) > 0 THEN
             CASE WHEN f."Billed" IS NULL THEN 0
                  WHEN f."Bill Type" = 'Hourly'
                    THEN (CASE WHEN f."Billed" = 'yes' THEN f."Billed Rate" ELSE f."Bill Rate Non-Billed" END) / 60
                  WHEN f."Billed" = 'yes' AND f."Bill Type" IN ('Daily', 'Visit') AND f."Billed Hours" > 0
                    THEN f."Billed Rate" / f."Billed Hours" / 60
                  WHEN f."Billed" <> 'yes' AND f."Bill Type" IN ('Daily', 'Visit')
                       AND date_trunc('minute', f."Scheduled End Time" AT TIME ZONE {tz})
                           <> date_trunc('minute', f."Scheduled Start Time" AT TIME ZONE {tz})
                    THEN f."Bill Rate Non-Billed" / (extract(epoch FROM date_trunc('minute', f."Scheduled End Time" AT TIME ZONE {tz})
                           - date_trunc('minute', f."Scheduled Start Time" AT TIME ZONE {tz})) / 3600) / 60
                  ELSE 0 END
           ELSE 0 END"#,
    ),
    side("ServiceCodeID", "ConServiceCodeID", r#"f."Service Code Id""#),
    side("AppServiceCodeID", "ConAppServiceCodeID", r#"f."Application Service Code Id""#),
    side("ServiceCode", "ConServiceCode", r#"sc."Service Code""#),
    side("IsMissed", "ConIsMissed", r#"f."Is Missed""#),
    side("MissedVisitReason", "ConMissedVisitReason", r#"f."Missed Visit Reason""#),
    side("EVVType", "ConEVVType", r#"f."Call Out Device Type""#),
    side("LastUpdatedBy", "ConLastUpdatedBy", r#"u."User Fullname""#),
    side("LastUpdatedDate", "ConLastUpdatedDate", r#"(f."Visit Updated Timestamp" AT TIME ZONE {tz})"#),
];

/// The time columns of the visit that [`SIDE_COLUMNS`] read (as `f."…"`).
const SNAPSHOT_TIME_COLUMNS: [&str; 7] = [
    "Scheduled Start Time",
    "Scheduled End Time",
    "Visit Start Time",
    "Visit End Time",
    "Call In Time",
    "Call Out Time",
    "Visit Updated Timestamp",
];

/// The SQL of a [`SideColumn::expr`] for the mirror as it is: `{tz}` is the
/// configured zone (an SQL literal) and every visit time of
/// [`SNAPSHOT_TIME_COLUMNS`] is read as an instant through its column type
/// (docs/conflicts.md §2.4), so that a `timestamp` column (the wall clock of
/// the zone) is stored as that wall clock. Read raw, `timestamp AT TIME
/// ZONE` converted the other way and the stored times moved by the zone's
/// offset, while detection compared the right ones.
///
/// Errors: [`ErrorKind::SchemaMismatch`] when a time column is missing or
/// of a type that cannot hold an instant.
fn snapshot_expr(expr: &str, source: &ColumnTypes, zone_literal: &str) -> Result<String> {
    let mut sql = expr.replace("{tz}", zone_literal);
    for column in SNAPSHOT_TIME_COLUMNS {
        let raw = format!("f.{}", ident(column));
        if sql.contains(&raw) {
            // One pass per column: the typed expression names the column
            // again, and `replace` never rescans what it inserted.
            sql = sql.replace(&raw, &source.expr("f", "factvisitcallperformance_cr", column, Want::Timestamptz)?);
        }
    }
    Ok(sql)
}

/// Pair-level columns refreshed from the staging table (besides the keys and flags).
pub const PAIR_COLUMNS: &[&str] = &[
    "SSN",
    "VisitDate",
    "MinuteDiffBetweenSch",
    "DistanceMilesFromLatLng",
    "AverageMilesPerHour",
    "ETATravelMinutes",
    "PLatitude",
    "PLongitude",
    "ConPLatitude",
    "ConPLongitude",
];

/// Natural key of a pair.
pub const KEY_COLUMNS: [&str; 2] = ["VisitID", "ConVisitID"];

/// Lifecycle columns the nightly job writes on `conflictvisitmaps`.
pub const LIFECYCLE_CVM_COLUMNS: &[&str] = &[
    "CONFLICTID",
    "StatusFlag",
    "ResolveDate",
    "UpdatedDate",
    "CreatedDate",
    "CRDATEUNIQUE",
    "ReverseUUID",
    "InServiceFlag",
    "PTOFlag",
    // docs/conflicts.md §8.2 steps 1 and 9 (conflicts/lifecycle.rs).
    "ResolvedBy",
    // docs/conflicts.md §6.6, only when empty (conflicts/contacts.rs).
    "AgencyContact",
    "ConAgencyContact",
];

/// Group columns the nightly job writes on `conflictvisitmaps`
/// (docs/conflicts.md §7.6, §D5, [`super::groups`]).
pub const GROUP_CVM_COLUMNS: &[&str] = &["GroupID", "G_CRDATEUNIQUE"];

/// Columns of `conflictvisitmaps` the application owns: never written here.
pub const USER_OWNED_CVM_COLUMNS: &[&str] = &[
    "ConNoResponseFlag",
    "ConNoResponseReasonID",
    "ConNoResponseTitle",
    "ConNoResponseNotes",
    "ConNoResponseDate",
    "FlagForReview",
    "FlagForReviewDate",
    "AggFlagForReview",
    "AggFlagForReviewDate",
];

/// Columns of `conflictvisitmaps` that neither detection nor the
/// application writes today, each for a documented reason
/// (docs/conflicts.md §3.1): the identity `ID`; the un-prefixed patient
/// block, which \[SF\] always left NULL (the `P_…`/`PA_…` blocks carry the
/// patients); \[SF\]'s run scratch columns `UpdateFlag` and `TempGroupID`
/// (thaw diffs instead, §7.2, and groups directly, §7.6); `AgencyContact`
/// and `ResolvedBy` (the lifecycle, §6.6, §8.2); the billable units of the
/// external API (§6.5, §D12).
pub const NOT_WRITTEN_CVM_COLUMNS: &[&str] = &[
    "ID",
    "PAdmissionID", "PName", "PFName", "PLName", "PMedicaidNumber", "PStatus", "PAddressID", "PAppAddressID",
    "PAddressL1", "PAddressL2", "PCity", "PAddressState", "PZipCode", "PCounty",
    "ConPAdmissionID", "ConPName", "ConPFName", "ConPLName", "ConPMedicaidNumber", "ConPStatus", "ConPAddressID",
    "ConPAppAddressID", "ConPAddressL1", "ConPAddressL2", "ConPCity", "ConPAddressState", "ConPZipCode", "ConPCounty",
    "UpdateFlag", "TempGroupID",
    "AgencyContact", "ConAgencyContact", "ResolvedBy",
    "BILLABLEMINUTESFULLSHIFT", "BILLABLEUNITSFULLSHIFT", "BILLABLEMINUTESOVERLAP", "BILLABLEUNITSOVERLAP", "FAILEDON",
];

/// Columns of `conflicts` the nightly job writes.
pub const NIGHTLY_CONFLICT_COLUMNS: &[&str] =
    &["CONFLICTID", "RECORDEDDATETIME", "CreatedDate", "StatusFlag", "ResolveDate", "ResolvedBy", "UpdatedRFlag"];

/// Columns of `conflicts` the application owns: never written here.
pub const USER_OWNED_CONFLICT_COLUMNS: &[&str] = &[
    "NoResponseFlag",
    "NoResponseReasonID",
    "NoResponseTitle",
    "NoResponseNotes",
    "NoResponseDate",
    "FlagForReview",
    "FlagForReviewDate",
];

/// Columns of `settings` the run writes (docs/conflicts.md §D8 bookkeeping).
pub const NIGHTLY_SETTINGS_COLUMNS: &[&str] = &["InProgressFlag", "LastLoadDate"];

/// Columns of `conflict_watermark` the run writes (all of them; the table is
/// thaw's own, docs/conflicts.md §D1).
pub const WATERMARK_COLUMNS: &[&str] =
    &["ID", "SourceChangedUpTo", "SettingsFingerprint", "WindowStart", "WindowEnd", "Mode", "CompletedAt"];

/// Every `conflictvisitmaps` column whose value comes from detection
/// (keys, snapshot of both sides, pair metrics, flags), in a fixed order.
pub fn detected_cvm_columns() -> Vec<&'static str> {
    let mut cols: Vec<&'static str> = KEY_COLUMNS.to_vec();
    cols.extend(PAIR_COLUMNS);
    cols.extend(RuleFlags::COLUMNS);
    cols.extend(SIDE_COLUMNS.iter().map(|c| c.primary));
    cols.extend(SIDE_COLUMNS.iter().map(|c| c.conflicting));
    cols
}

/// Whether the nightly job may write `column` of `table`.
pub fn is_nightly_writable(table: Table, column: &str) -> bool {
    match table {
        Table::ConflictVisitMaps => {
            !USER_OWNED_CVM_COLUMNS.contains(&column)
                && (LIFECYCLE_CVM_COLUMNS.contains(&column)
                    || GROUP_CVM_COLUMNS.contains(&column)
                    || super::in_service::EVENT_CVM_COLUMNS.contains(&column)
                    || detected_cvm_columns().contains(&column))
        }
        Table::Conflicts => NIGHTLY_CONFLICT_COLUMNS.contains(&column) && !USER_OWNED_CONFLICT_COLUMNS.contains(&column),
        Table::Settings => NIGHTLY_SETTINGS_COLUMNS.contains(&column),
        Table::Watermark => WATERMARK_COLUMNS.contains(&column),
        Table::Notifications => super::notifications::WRITTEN_COLUMNS.contains(&column),
        Table::LogHistory => super::history::LOG_HISTORY_COLUMNS.contains(&column),
        Table::LogHistoryValues => super::history::LOG_HISTORY_VALUES_COLUMNS.contains(&column),
        Table::PayerProviderReminders => super::reminders::WRITTEN_COLUMNS.contains(&column),
        Table::ConflictComments => super::reminders::COMMENT_COLUMNS.contains(&column),
    }
}

/// The quoted column list of a write to `table`, after checking every
/// column against the allow-list. This is the only way statements here name
/// the columns they write.
///
/// Errors: [`ErrorKind::Internal`] naming the column (a bug in thaw).
pub fn written_columns<'c>(table: Table, columns: impl IntoIterator<Item = &'c str>) -> Result<Vec<String>> {
    columns
        .into_iter()
        .map(|c| {
            if is_nightly_writable(table, c) {
                Ok(ident(c))
            } else {
                Err(Error::internal(format!("refusing to write column \"{c}\" of {table:?}: it is not on the nightly allow-list")))
            }
        })
        .collect()
}

/// Set `InProgressFlag` to 1 (running) or 2 (idle, \[SF\] docs/conflicts.md §8.4) on every SETTINGS row.
pub async fn set_in_progress(client: &Client, schemas: &Schemas, running: bool) -> Result<()> {
    let col = &written_columns(Table::Settings, ["InProgressFlag"])?[0];
    let sql = format!("UPDATE {} SET {col} = $1", qualified(&schemas.conflict, "settings"));
    let value: i64 = if running { 1 } else { 2 };
    client.execute(&sql, &[&value]).await.map_err(|e| {
        let err = from_postgres(e, format!("setting {}.settings.InProgressFlag", schemas.conflict));
        if err.kind != ErrorKind::SchemaMismatch {
            return err;
        }
        // The first statement of a run: a conflict_schema naming a schema
        // without the conflict tables ends here (docs/conflicts.md §3.3).
        Error::new(
            ErrorKind::SchemaMismatch,
            format!(
                "{}. The conflict schema {} has no settings table: the migrations (`thaw conflicts`, `thaw migrate`) create the conflict \
                 tables in the schema \"conflict\" only (schema/V3__conflict.sql), so conflicts.conflict_schema may name another schema \
                 only when it already holds them (migrated CONFLICTREPORT tables, say); remove the key to use \"conflict\"",
                err.message,
                ident(&schemas.conflict)
            ),
        )
    })?;
    Ok(())
}

/// How the inserts skip pairs that are already stored: through the unique
/// natural-key index `idx_cvm_visitids_unique` (V3), one index probe per row.
/// A `NOT EXISTS` anti-join against the table being inserted into was
/// planned as a sequential scan per row on a never-analysed, empty table,
/// and each scan also visits the rows the statement has inserted so far:
/// quadratic (39 s for 22 748 rows at 2 M visits, docs/conflicts.md §14).
const ON_CONFLICT_KEEP_STORED: &str = "ON CONFLICT (\"VisitID\", \"ConVisitID\") DO NOTHING";

/// The staging table of the detected pairs of this run (keys, flags, metrics).
pub(crate) const STAGING: &str = "pg_temp.thaw_conflict_pairs";
const SIDE: &str = "pg_temp.thaw_conflict_side";
/// `CONFLICTID` and `CRDATEUNIQUE` per `VisitID` of the night's new rows
/// (`"VisitID"`, `conflict_id`, `first_created`), computed before the inserts.
pub(crate) const CONFLICT_IDS: &str = "pg_temp.thaw_conflict_ids";
const NEW: &str = "pg_temp.thaw_conflict_new";

/// Streams detected pairs into the staging table with binary COPY.
pub struct PairWriter {
    copy_sql: String,
    types: Vec<Type>,
}

impl PairWriter {
    /// Create the staging table (dropped at commit).
    pub async fn create(tx: &Transaction<'_>) -> Result<PairWriter> {
        let flags: Vec<String> = RuleFlags::COLUMNS.iter().map(|c| format!("{} text", ident(c))).collect();
        let sql = format!(
            "CREATE TEMP TABLE thaw_conflict_pairs (\"VisitID\" uuid, \"ConVisitID\" uuid, \"SSN\" text, \"VisitDate\" date, {}, \
             \"MinuteDiffBetweenSch\" int4, \"DistanceMilesFromLatLng\" float8, \"AverageMilesPerHour\" float8, \"ETATravelMinutes\" int4, \
             \"PLatitude\" float8, \"PLongitude\" float8, \"ConPLatitude\" float8, \"ConPLongitude\" float8, new_allowed bool) ON COMMIT DROP",
            flags.join(", ")
        );
        tx.batch_execute(&sql).await.map_err(|e| from_postgres(e, "creating the conflict staging table"))?;
        let mut types = vec![Type::UUID, Type::UUID, Type::TEXT, Type::DATE];
        types.extend([Type::TEXT; 7]);
        types.extend([Type::INT4, Type::FLOAT8, Type::FLOAT8, Type::INT4, Type::FLOAT8, Type::FLOAT8, Type::FLOAT8, Type::FLOAT8, Type::BOOL]);
        Ok(PairWriter { copy_sql: format!("COPY {STAGING} FROM STDIN (FORMAT binary)"), types })
    }

    /// Append `pairs` to the staging table.
    pub async fn write(&mut self, tx: &Transaction<'_>, pairs: &[DetectedPair]) -> Result<()> {
        if pairs.is_empty() {
            return Ok(());
        }
        let sink = tx.copy_in(&self.copy_sql).await.map_err(|e| from_postgres(e, "starting COPY of detected pairs"))?;
        let writer = BinaryCopyInWriter::new(sink, &self.types);
        pin_mut!(writer);
        for p in pairs {
            let flags: Vec<&'static str> = p.flags.as_array().iter().map(|f| if *f { "Y" } else { "N" }).collect();
            let miles = p.travel.map(|t| t.miles);
            let mph = p.travel.and_then(|t| t.mph);
            let eta = p.travel.and_then(|t| t.eta_minutes).map(|m| m.round() as i32);
            let (lat, lon) = (p.location.map(|g| g.latitude), p.location.map(|g| g.longitude));
            let (clat, clon) = (p.con_location.map(|g| g.latitude), p.con_location.map(|g| g.longitude));
            let mut row: Vec<&(dyn ToSql + Sync)> = vec![&p.visit_id, &p.con_visit_id, &p.ssn, &p.visit_date];
            row.extend(flags.iter().map(|f| f as &(dyn ToSql + Sync)));
            row.extend([
                &p.minute_diff as &(dyn ToSql + Sync),
                &miles,
                &mph,
                &eta,
                &lat,
                &lon,
                &clat,
                &clon,
                &p.new_conflict_allowed,
            ]);
            writer.as_mut().write(&row).await.map_err(|e| from_postgres(e, "writing detected pairs to staging"))?;
        }
        writer.finish().await.map_err(|e| from_postgres(e, "finishing COPY of detected pairs"))?;
        Ok(())
    }
}

/// Row counts of [`apply`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyCounts {
    /// New pair rows.
    pub inserted: u64,
    /// Refreshed pair rows (something changed).
    pub updated: u64,
    /// Pairs resolved because they were not detected (docs/conflicts.md §8.2
    /// step 4; the other lifecycle steps are logged, not counted).
    pub resolved: u64,
    /// New `conflicts` rows.
    pub conflicts_created: u64,
    /// Visit–event pairs found (in-service and PTO, one orientation each, docs/conflicts.md §5).
    pub event_pairs: u64,
    /// Rows whose status a step of the second pass (outside the window)
    /// set, per statement ([`super::lifecycle::OUTSIDE_WINDOW_STATUS_STEPS`]).
    pub outside_window_status_changes: u64,
}

/// Everything [`statements`] needs to build the SQL of one run.
#[derive(Debug, Clone)]
pub struct StatementContext {
    /// Schemas.
    pub schemas: Schemas,
    /// Quoted literal of the configured zone, e.g. `'America/New_York'`.
    pub zone_literal: String,
    /// `format_type` of every `conflictvisitmaps` column.
    pub cvm_types: HashMap<String, String>,
    /// Column types of the analytics mirror (ids may be `text`, docs/conflicts.md §2.4).
    pub source: ColumnTypes,
    /// Incremental run: resolve only stored pairs whose `(SSN, VisitDate)` is
    /// in [`super::incremental::KEYS`] (docs/conflicts.md §D1); `false`: the whole window.
    pub keyed: bool,
}

/// The SQL statements of [`apply`], in execution order, with a name each.
/// Pure, so the allow-list can be tested without a database.
pub fn statements(ctx: &StatementContext) -> Result<Vec<(&'static str, String)>> {
    let a = |t: &str| qualified(&ctx.schemas.analytics, t);
    let cvm = qualified(&ctx.schemas.conflict, "conflictvisitmaps");
    let conflicts = qualified(&ctx.schemas.conflict, "conflicts");
    let now = format!("(now() AT TIME ZONE {})", ctx.zone_literal);
    let ty = |col: &str| -> Result<&str> {
        ctx.cvm_types.get(col).map(String::as_str).ok_or_else(|| {
            Error::new(
                ErrorKind::SchemaMismatch,
                format!("{cvm} has no column \"{col}\"; apply the schema migrations (schema/V3__conflict.sql)"),
            )
        })
    };

    // 1. Visit snapshot, one row per visit in a staged pair.
    // Ids are compared through the column types found (uuid or text, docs/conflicts.md §2.4).
    let src = &ctx.source;
    let side_select: Vec<String> = SIDE_COLUMNS
        .iter()
        .map(|c| Ok(format!("{} AS {}", snapshot_expr(c.expr, src, &ctx.zone_literal)?, ident(c.primary))))
        .collect::<Result<_>>()?;
    let fk = |col: &str| src.expr("f", "factvisitcallperformance_cr", col, Want::Uuid);
    let pk = |alias: &str, table: &str, col: &str| src.expr(alias, table, col, Want::Uuid);
    // Both staged pair tables are analysed first: with the default estimate
    // of an unanalysed temporary table (hundreds of rows) the planner
    // hash-joined a night's few visits with whole-table scans of the
    // caregivers, patients and addresses (docs/conflicts.md §14).
    let side_sql = format!(
        r#"ANALYZE {STAGING} ("VisitID", "ConVisitID", new_allowed);
ANALYZE {event_pairs} (kind, event_id, visit_id);
CREATE TEMP TABLE thaw_conflict_side ON COMMIT DROP AS
WITH f AS (
    SELECT f.* FROM {fact} f WHERE {f_id} IN (SELECT "VisitID" FROM {STAGING} UNION SELECT "ConVisitID" FROM {STAGING}
                                              UNION SELECT visit_id FROM {event_pairs})
), address AS (
    SELECT DISTINCT ON (ad."Patient Id") ad.* FROM {addresses} ad
    WHERE {ad_primary} = true AND {ad_type} LIKE '%GPS%'
      AND {ad_patient} IN (SELECT {f_pp} FROM f UNION SELECT {f_pa} FROM f)
    ORDER BY ad."Patient Id", ad."Application Created UTC Timestamp" DESC NULLS LAST, ad."Patient Address Id"
)
SELECT {f_id} AS "VisitID", {cols}
FROM f
LEFT JOIN {caregivers} cg ON {cg_id} = {f_cg}
LEFT JOIN {providers} pr ON {pr_id} = {f_pr}
LEFT JOIN {offices} o ON {o_id} = {f_o}
LEFT JOIN {patients} pp ON {pp_id} = {f_pp}
LEFT JOIN address ppa ON {ppa_id} = {f_pp}
LEFT JOIN {patients} pa ON {pa_id} = {f_pa}
LEFT JOIN address paa ON {paa_id} = {f_pa}
LEFT JOIN {payers} py ON {py_id} = {f_py}
LEFT JOIN {contracts} ct ON {ct_id} = {f_ct}
LEFT JOIN {services} sc ON {sc_id} = {f_sc}
LEFT JOIN {users} u ON {u_id} = {f_u};
CREATE INDEX ON {SIDE} ("VisitID");
CREATE INDEX ON {STAGING} ("VisitID", "ConVisitID");
ANALYZE {SIDE} ("VisitID")"#,
        fact = a("factvisitcallperformance_cr"),
        event_pairs = in_service::EVENT_PAIRS,
        addresses = a("dimpatientaddress"),
        caregivers = a("dimcaregiver"),
        providers = a("dimprovider"),
        offices = a("dimoffice"),
        patients = a("dimpatient"),
        payers = a("dimpayer"),
        contracts = a("dimcontract"),
        services = a("dimservicecode"),
        users = a("dimuser"),
        cols = side_select.join(",\n       "),
        f_id = fk("Visit Id")?,
        f_pp = fk("Provider Patient Id")?,
        f_pa = fk("Payer Patient Id")?,
        f_cg = fk("Caregiver Id")?,
        f_pr = fk("Provider Id")?,
        f_o = fk("Office Id")?,
        f_py = fk("Payer Id")?,
        f_ct = fk("Contract Id")?,
        f_sc = fk("Service Code Id")?,
        f_u = src.expr("f", "factvisitcallperformance_cr", "Visit Updated User Id", Want::Text)?,
        ad_primary = src.expr("ad", "dimpatientaddress", "Primary Address", Want::Bool)?,
        ad_type = src.expr("ad", "dimpatientaddress", "Address Type", Want::Text)?,
        ad_patient = pk("ad", "dimpatientaddress", "Patient Id")?,
        cg_id = pk("cg", "dimcaregiver", "Caregiver Id")?,
        pr_id = pk("pr", "dimprovider", "Provider Id")?,
        o_id = pk("o", "dimoffice", "Office Id")?,
        pp_id = pk("pp", "dimpatient", "Patient Id")?,
        ppa_id = pk("ppa", "dimpatientaddress", "Patient Id")?,
        pa_id = pk("pa", "dimpatient", "Patient Id")?,
        paa_id = pk("paa", "dimpatientaddress", "Patient Id")?,
        py_id = pk("py", "dimpayer", "Payer Id")?,
        ct_id = pk("ct", "dimcontract", "Contract Id")?,
        sc_id = pk("sc", "dimservicecode", "Service Code Id")?,
        u_id = src.expr("u", "dimuser", "User Id", Want::Text)?,
    );

    // 2. The would-be rows, already in the target column types.
    let mut new_select = vec![r#"p."VisitID""#.to_string(), r#"p."ConVisitID""#.to_string()];
    for col in PAIR_COLUMNS.iter().chain(RuleFlags::COLUMNS.iter()) {
        new_select.push(format!("CAST(p.{q} AS {t}) AS {q}", q = ident(col), t = ty(col)?));
    }
    for c in SIDE_COLUMNS {
        new_select.push(format!("CAST(v1.{} AS {}) AS {}", ident(c.primary), ty(c.primary)?, ident(c.primary)));
    }
    for c in SIDE_COLUMNS {
        new_select.push(format!("CAST(v2.{} AS {}) AS {}", ident(c.primary), ty(c.conflicting)?, ident(c.conflicting)));
    }
    let new_sql = format!(
        r#"CREATE TEMP TABLE thaw_conflict_new ON COMMIT DROP AS
SELECT {cols}, p.new_allowed
FROM {STAGING} p
JOIN {SIDE} v1 ON v1."VisitID" = p."VisitID"
JOIN {SIDE} v2 ON v2."VisitID" = p."ConVisitID";
CREATE UNIQUE INDEX ON {NEW} ("VisitID", "ConVisitID");
ANALYZE {NEW} ("VisitID", "ConVisitID", "AppVisitID", new_allowed)"#,
        cols = new_select.join(", ")
    );

    // 3. Refresh stored pairs whose content would change.
    let refreshed: Vec<&str> = detected_cvm_columns()
        .into_iter()
        .filter(|c| !KEY_COLUMNS.contains(c) && !RuleFlags::COLUMNS.contains(c))
        .collect();
    let deleted_ids = super::lifecycle::deleted_visit_ids(ctx)?;
    let update_sql = refresh_statement(&cvm, &conflicts, NEW, &refreshed, &RuleFlags::COLUMNS, &now, &deleted_ids)?;

    // 4. Insert new pairs allowed to start a conflict.
    let detected_q = written_columns(Table::ConflictVisitMaps, detected_cvm_columns())?;
    let insert_life = written_columns(Table::ConflictVisitMaps, ["StatusFlag", "InServiceFlag", "PTOFlag", "CreatedDate", "ReverseUUID"])?;
    let reverse = |table: &str| {
        format!(
            "CASE WHEN {t}.\"VisitID\" IS NOT NULL AND {t}.\"AppVisitID\" IS NOT NULL AND {t}.\"ConVisitID\" IS NOT NULL AND {t}.\"ConAppVisitID\" IS NOT NULL \
             THEN least(({t}.\"VisitID\"::text || '~' || {t}.\"AppVisitID\"::text) COLLATE \"C\", ({t}.\"ConVisitID\"::text || '~' || {t}.\"ConAppVisitID\"::text) COLLATE \"C\") \
             || '_' || greatest(({t}.\"VisitID\"::text || '~' || {t}.\"AppVisitID\"::text) COLLATE \"C\", ({t}.\"ConVisitID\"::text || '~' || {t}.\"ConAppVisitID\"::text) COLLATE \"C\") END",
            t = table
        )
    };
    // CONFLICTID and CRDATEUNIQUE are computed before the inserts (step 5,
    // [`CONFLICT_IDS`]), so every new row is written once, final.
    // GroupID and G_CRDATEUNIQUE likewise ([`super::groups::plan_new_rows`] between the two).
    let insert_ids = written_columns(Table::ConflictVisitMaps, ["CONFLICTID", "CRDATEUNIQUE", "GroupID", "G_CRDATEUNIQUE"])?;
    let final_values = format!("i.conflict_id, i.first_created, g.group_id, CASE WHEN g.group_id IS NOT NULL THEN coalesce(g.created, {now}) END");
    let final_joins = format!(
        "LEFT JOIN {CONFLICT_IDS} i ON i.\"VisitID\" = n.\"VisitID\"\n\
         LEFT JOIN {groups} g ON g.\"VisitID\" = n.\"VisitID\" AND g.\"ConVisitID\" = n.\"ConVisitID\"",
        groups = super::groups::NEW_ROW_GROUPS
    );
    let insert_sql = format!(
        "INSERT INTO {cvm} ({cols}, {life}, {ids})\nSELECT {vals}, 'U', 'N', 'N', {now}, {rev}, {final_values}\n\
         FROM {NEW} n {final_joins}\nWHERE n.new_allowed\n{ON_CONFLICT_KEEP_STORED}",
        cols = detected_q.join(", "),
        life = insert_life.join(", "),
        ids = insert_ids.join(", "),
        vals = detected_q.iter().map(|c| format!("n.{c}")).collect::<Vec<_>>().join(", "),
        rev = reverse("n"),
    );

    // 3b/4b. In-service and PTO pairs (docs/conflicts.md §5): would-be rows
    // of both orientations, refreshed and inserted like visit pairs, with
    // InServiceFlag/PTOFlag sticky as the rule flags.
    let event_written: Vec<&str> = detected_cvm_columns()
        .into_iter()
        .chain(in_service::EVENT_CVM_COLUMNS.iter().copied())
        .chain(RuleFlags::EVENT_COLUMNS)
        .collect();
    let cast = |col: &str, expr: &str| -> Result<String> { Ok(format!("CAST({expr} AS {})", ty(col)?)) };
    let zone = &ctx.zone_literal;
    let events_sql = in_service::events_sql(src, zone, ctx.keyed)?;
    let event_pairs_sql = in_service::pairs_sql(src, zone)?;
    let event_side_sql = in_service::side_sql(src, zone)?;
    let event_rows_sql = in_service::rows_sql(&event_written, &cast, SIDE)?;
    let event_refreshed: Vec<&str> = event_written
        .iter()
        .copied()
        .filter(|c| !KEY_COLUMNS.contains(c) && !RuleFlags::COLUMNS.contains(c) && !RuleFlags::EVENT_COLUMNS.contains(c))
        .collect();
    let event_sticky: Vec<&str> = RuleFlags::COLUMNS.iter().copied().chain(RuleFlags::EVENT_COLUMNS).collect();
    let event_update_sql = refresh_statement(&cvm, &conflicts, in_service::EVENT_NEW, &event_refreshed, &event_sticky, &now, &deleted_ids)?;
    let event_cols_q = written_columns(Table::ConflictVisitMaps, event_written.iter().copied())?;
    let event_life = written_columns(Table::ConflictVisitMaps, ["StatusFlag", "CreatedDate", "ReverseUUID"])?;
    let event_insert_sql = format!(
        "INSERT INTO {cvm} ({cols}, {life}, {ids})\nSELECT {vals}, 'U', {now}, {rev}, {final_values}\n\
         FROM {new} n {final_joins}\n{ON_CONFLICT_KEEP_STORED}",
        new = in_service::EVENT_NEW,
        cols = event_cols_q.join(", "),
        life = event_life.join(", "),
        ids = insert_ids.join(", "),
        vals = event_cols_q.iter().map(|c| format!("n.{c}")).collect::<Vec<_>>().join(", "),
        rev = reverse("n"),
    );

    // 5. CONFLICTID for rows without one (TASK_04): inherit per VisitID, else
    //    max + dense rank by (VisitID, AppVisitID). Computed before the inserts
    //    over the rows they will write (the would-be rows not stored yet) and
    //    the stored rows still without one, so the inserts write final rows;
    //    with each id, the CRDATEUNIQUE of its new rows: the earliest
    //    CreatedDate among the id's rows, the new ones (CreatedDate = now) included.
    let stored_key = |t: &str| format!("EXISTS (SELECT 1 FROM {cvm} s WHERE s.\"VisitID\" = {t}.\"VisitID\" AND s.\"ConVisitID\" = {t}.\"ConVisitID\")");
    let ids_sql = format!(
        r#"CREATE TEMP TABLE thaw_conflict_ids ON COMMIT DROP AS
WITH pending AS (
    SELECT n."VisitID", n."AppVisitID" FROM {NEW} n WHERE n.new_allowed AND NOT {stored_new}
    UNION ALL
    SELECT n."VisitID", n."AppVisitID" FROM {event_new} n WHERE NOT {stored_event}
    UNION ALL
    SELECT "VisitID", "AppVisitID" FROM {cvm} WHERE "CONFLICTID" IS NULL
), need AS (
    SELECT "VisitID", min("AppVisitID") AS "AppVisitID" FROM pending GROUP BY "VisitID"
), inherited AS (
    SELECT c."VisitID", min(c."CONFLICTID") AS id FROM {cvm} c JOIN need USING ("VisitID") WHERE c."CONFLICTID" IS NOT NULL GROUP BY c."VisitID"
), top AS (
    SELECT greatest((SELECT coalesce(max("CONFLICTID"), 0) FROM {cvm}), (SELECT coalesce(max("CONFLICTID"), 0) FROM {conflicts})) AS id
), fresh AS (
    SELECT n."VisitID", top.id + dense_rank() OVER (ORDER BY n."VisitID", n."AppVisitID") AS id
    FROM need n CROSS JOIN top WHERE NOT EXISTS (SELECT 1 FROM inherited i WHERE i."VisitID" = n."VisitID")
), ids AS (
    SELECT "VisitID", id FROM inherited UNION ALL SELECT "VisitID", id FROM fresh
), created AS (
    SELECT c."CONFLICTID" AS id, min(c."CreatedDate") AS first FROM {cvm} c WHERE c."CONFLICTID" IN (SELECT id FROM inherited) GROUP BY 1
)
SELECT ids."VisitID", CAST(ids.id AS {id_type}) AS conflict_id, CAST(least(created.first, {now}) AS {crdate_type}) AS first_created
FROM ids LEFT JOIN created ON created.id = ids.id WHERE ids."VisitID" IS NOT NULL;
CREATE UNIQUE INDEX ON {CONFLICT_IDS} ("VisitID");
ANALYZE {CONFLICT_IDS}"#,
        event_new = in_service::EVENT_NEW,
        stored_new = stored_key("n"),
        stored_event = stored_key("n"),
        id_type = ty("CONFLICTID")?,
        crdate_type = ty("CRDATEUNIQUE")?,
    );
    // Stored rows still without an id (rows written by someone else; none after a thaw night) take theirs from the same map.
    let id_col = &written_columns(Table::ConflictVisitMaps, ["CONFLICTID"])?[0];
    let assign_sql = format!(
        r#"UPDATE {cvm} c SET {id_col} = i.conflict_id FROM {CONFLICT_IDS} i WHERE c."VisitID" = i."VisitID" AND c."CONFLICTID" IS NULL"#
    );
    let reverse_col = &written_columns(Table::ConflictVisitMaps, ["ReverseUUID"])?[0];
    let reverse_sql = format!(
        "UPDATE {cvm} c SET {reverse_col} = {rev} WHERE c.\"ReverseUUID\" IS NULL AND c.\"VisitID\" IS NOT NULL AND c.\"AppVisitID\" IS NOT NULL \
         AND c.\"ConVisitID\" IS NOT NULL AND c.\"ConAppVisitID\" IS NOT NULL",
        rev = reverse("c")
    );
    let crdate_col = &written_columns(Table::ConflictVisitMaps, ["CRDATEUNIQUE"])?[0];
    // A window function over the rows of the conflicts that have a row
    // without CRDATEUNIQUE (every row of such a conflict: the minimum is over
    // all of them), joined back by the primary key: linear whatever the
    // statistics say, and proportional to the night's new rows, not to the
    // table (docs/conflicts.md §14).
    let crdate_sql = format!(
        "UPDATE {cvm} c SET {crdate_col} = m.first FROM (\n    SELECT \"ID\", \"CRDATEUNIQUE\", min(\"CreatedDate\") OVER (PARTITION BY \"CONFLICTID\") AS first \
         FROM {cvm} WHERE \"CONFLICTID\" IN (SELECT \"CONFLICTID\" FROM {cvm} WHERE \"CRDATEUNIQUE\" IS NULL AND \"CONFLICTID\" IS NOT NULL)\n) m \
         WHERE c.\"ID\" = m.\"ID\" AND m.\"CRDATEUNIQUE\" IS NULL AND m.first IS NOT NULL"
    );

    // 6. A conflicts row for every CONFLICTID without one ([SF] TASK_05).
    let cf_cols = written_columns(Table::Conflicts, ["CONFLICTID", "StatusFlag", "CreatedDate", "RECORDEDDATETIME"])?;
    let conflicts_sql = format!(
        "INSERT INTO {conflicts} ({cols})\nSELECT DISTINCT c.\"CONFLICTID\", 'U', date_trunc('day', {now}), {now} FROM {cvm} c\n\
         WHERE c.\"CONFLICTID\" IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {conflicts} f WHERE f.\"CONFLICTID\" = c.\"CONFLICTID\")",
        cols = cf_cols.join(", ")
    );

    let last_load = &written_columns(Table::Settings, ["LastLoadDate"])?[0];
    let settings_sql = format!("UPDATE {} SET {last_load} = {now}", qualified(&ctx.schemas.conflict, "settings"));

    // After every bulk write, ANALYZE what the next statements read, so that a
    // first run on an empty, never-analysed schema plans with the real row
    // counts (docs/conflicts.md §14). ANALYZE of a table the role does not
    // own is skipped by PostgreSQL with a warning, never an error.
    // Only the columns the following statements filter, join or group on:
    // statistics of all 248 columns cost seconds on a large table.
    let analyze_cvm = format!(
        "ANALYZE {cvm} ({})",
        // With the in-service/PTO columns and flags, which the lifecycle uses
        // to tell visit pairs from event rows: without their null fractions
        // the planner multiplied eight default `IS NULL` selectivities into
        // one row, and "resolve" of a 1 % night at 2 M visits rescanned the
        // staged pairs for each of 22 754 stored rows (1.39 s, docs/conflicts.md §14).
        ANALYZED_CVM_COLUMNS
            .iter()
            .chain(in_service::EVENT_CVM_COLUMNS)
            .chain(&RuleFlags::EVENT_COLUMNS)
            .map(|c| ident(c))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok([
        ("in-service and PTO events", events_sql),
        // The pairs join the events on the trimmed SSN and filter on their kind.
        ("analyze events", format!("ANALYZE {} (kind, ssn)", in_service::EVENTS)),
        ("in-service and PTO pairs", event_pairs_sql),
        ("snapshot", side_sql),
        ("would-be rows", new_sql),
        ("event snapshot", event_side_sql),
        ("would-be event rows", event_rows_sql),
        ("refresh", update_sql),
        ("refresh event rows", event_update_sql),
        ("CONFLICTID and CRDATEUNIQUE of new rows", ids_sql),
        ("insert", insert_sql),
        ("insert event rows", event_insert_sql),
        ("analyze after insert", analyze_cvm),
        ("assign CONFLICTID", assign_sql),
        ("ReverseUUID", reverse_sql),
        ("CRDATEUNIQUE", crdate_sql),
        ("conflicts", conflicts_sql),
        ("analyze conflicts", format!("ANALYZE {conflicts}")),
    ]
    .into_iter()
    .chain(super::contacts::statements(ctx)?)
    .chain(super::lifecycle::statements(ctx)?)
    .chain(super::notifications::statements(ctx)?)
    .chain(super::reminders::statements(ctx)?)
    .chain([("LastLoadDate", settings_sql)])
    .collect())
}

/// The `conflictvisitmaps` columns whose statistics the statements after a
/// bulk write read (ids, keys, status, dates): what `ANALYZE` collects, with
/// [`in_service::EVENT_CVM_COLUMNS`] and [`RuleFlags::EVENT_COLUMNS`].
const ANALYZED_CVM_COLUMNS: &[&str] = &[
    "ID",
    "CONFLICTID",
    "VisitID",
    "AppVisitID",
    "ConVisitID",
    "SSN",
    "VisitDate",
    "StatusFlag",
    "CreatedDate",
    "CRDATEUNIQUE",
    "ReverseUUID",
    "IsMissed",
    "ConIsMissed",
];

/// Whether a bulk write of `written` rows into a table of `reltuples`
/// estimated rows (`-1`: never analysed) needs an `ANALYZE` before the next
/// statements: always for a table never analysed, and when the write is
/// more than a tenth of the table; smaller writes leave the plans' row
/// estimates valid (autovacuum catches up).
fn needs_analyze(written: u64, reltuples: f64) -> bool {
    written > 0 && (reltuples < 0.0 || written as f64 > 0.1 * reltuples)
}

/// Read the `format_type` of every `conflictvisitmaps` column.
async fn cvm_types(tx: &Transaction<'_>, schemas: &Schemas) -> Result<HashMap<String, String>> {
    let rows = tx
        .query(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a \
             JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relname = 'conflictvisitmaps' AND a.attnum > 0 AND NOT a.attisdropped",
            &[&schemas.conflict],
        )
        .await
        .map_err(|e| from_postgres(e, "reading the columns of conflictvisitmaps"))?;
    if rows.is_empty() {
        return Err(Error::new(
            ErrorKind::SchemaMismatch,
            format!("{}.conflictvisitmaps does not exist; apply the schema migrations (schema/V3__conflict.sql)", schemas.conflict),
        ));
    }
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// The refresh of stored pairs from the would-be rows of `new_table`
/// (docs/conflicts.md §7.2): a stored row with the same `(VisitID,
/// ConVisitID)` is updated only when something changes — a `refreshed`
/// column differs, a `sticky` flag goes `N` → `Y` (a flag is replaced only
/// when its stored value is `'N'`), or its status changes — and then gets
/// `UpdatedDate` = `now`. A row rewritten with another `ProviderID` or
/// `ConProviderID` loses its agency contacts (docs/conflicts.md §6.6), which
/// the contact step then fills for its new agencies.
///
/// Status (\[SF\] sets every detected pair but `W`/`I` to `U`, then the
/// lifecycle steps run; thaw writes the net outcome, docs/conflicts.md
/// §D24): an `R` row, and a `D` row whose conflicting visit is no longer in
/// `deleted_ids` (a restored visit; the SQL of a subquery of deleted visit
/// ids), reopens to `U`, or becomes `R` when one of its visits is missed
/// (an `R` row then stays as it is); a `D` row whose conflicting visit is
/// still deleted stays `D`; a NULL status becomes `U` (\[SF\]: `U` unless `W`
/// or `I`); `W`, `I`, `U` and `N` keep their status. One more net outcome
/// (§D25): a closed row that is the only row of a `D` conflict stays (or
/// becomes) `R`, because step 6 would close it again the same night.
/// `ResolveDate` is not written here: step 9 of docs/conflicts.md §8.2
/// clears it on the rows that stay open, and a row closed again in the same
/// night keeps its date (§D24).
#[allow(clippy::too_many_arguments)]
fn refresh_statement(
    cvm: &str,
    conflicts: &str,
    new_table: &str,
    refreshed: &[&str],
    sticky: &[&str],
    now: &str,
    deleted_ids: &str,
) -> Result<String> {
    let refreshed_q = written_columns(Table::ConflictVisitMaps, refreshed.iter().copied())?;
    let flags_q = written_columns(Table::ConflictVisitMaps, sticky.iter().copied())?;
    let life = written_columns(Table::ConflictVisitMaps, ["StatusFlag", "UpdatedDate"])?;
    let mut sets: Vec<String> = refreshed_q.iter().map(|c| format!("{c} = n.{c}")).collect();
    sets.extend(flags_q.iter().map(|f| format!("{f} = CASE WHEN c.{f} = 'N' THEN n.{f} ELSE c.{f} END")));
    // docs/conflicts.md §6.6: a filled contact belongs to the pair's two
    // agencies; when the rewrite changes either agency it is emptied, and the
    // contact step fills the new agencies' one ([SF]'s refresh wrote
    // detection's NULL contact on every rewrite and TASK_07 refilled it).
    for contact in written_columns(Table::ConflictVisitMaps, ["AgencyContact", "ConAgencyContact"])? {
        sets.push(format!(
            "{contact} = CASE WHEN ROW(c.\"ProviderID\", c.\"ConProviderID\") IS DISTINCT FROM ROW(n.\"ProviderID\", n.\"ConProviderID\") \
             THEN NULL ELSE c.{contact} END"
        ));
    }
    let status = refreshed_status(cvm, conflicts);
    sets.push(format!("{} = {status}", life[0]));
    sets.push(format!("{} = {now}", life[1]));
    let mut changed = vec![format!(
        "ROW({}) IS DISTINCT FROM ROW({})",
        refreshed_q.iter().map(|c| format!("c.{c}")).collect::<Vec<_>>().join(", "),
        refreshed_q.iter().map(|c| format!("n.{c}")).collect::<Vec<_>>().join(", ")
    )];
    changed.extend(flags_q.iter().map(|f| format!("(c.{f} = 'N' AND n.{f} = 'Y')")));
    changed.push(format!("{status} IS DISTINCT FROM c.\"StatusFlag\""));
    Ok(format!(
        "UPDATE {cvm} c SET {sets}\nFROM {new_table} n\n  LEFT JOIN (SELECT DISTINCT x.id FROM {deleted_ids} AS x(id)) deleted ON deleted.id = n.\"ConVisitID\"\n\
         WHERE c.\"VisitID\" = n.\"VisitID\" AND c.\"ConVisitID\" = n.\"ConVisitID\"\n  AND ({changed})",
        sets = sets.join(",\n    "),
        changed = changed.join("\n    OR "),
    ))
}

/// The status of a stored pair `c` detected again as the would-be row `n`
/// (see [`refresh_statement`]); `deleted.id` is the conflicting visit's id
/// when it is in the deleted-visits table, else NULL (a join, not an `IN`
/// inside the `CASE`, which PostgreSQL could only run as a subplan over the
/// whole deleted table). Three-valued as \[SF\]: a NULL `IsMissed` is not missed.
///
/// A closed row that would reopen stays closed (`R`) when it is the lone
/// row of a `D` conflict (docs/conflicts.md §D25): no step reopens a `D`
/// conflict, and step 6 (cascade down) closes the only pair of a `R`/`D`
/// conflict, so \[SF\]'s reopening is undone the same night. "Lone" is
/// judged conservatively: no other stored row with its `CONFLICTID` or its
/// `VisitID` (a row still without a `CONFLICTID` gets its visit's) and no
/// other pair of its visit among tonight's would-be visit or event rows
/// (they inherit the `CONFLICTID`); otherwise the row reopens and the
/// lifecycle decides, as before. The subqueries run only for the closed
/// rows detected again, through the `CONFLICTID` and `VisitID` indexes.
fn refreshed_status(cvm: &str, conflicts: &str) -> String {
    let closed = "(c.\"StatusFlag\" = 'R' OR (c.\"StatusFlag\" = 'D' AND deleted.id IS NULL))";
    let missed = "coalesce(n.\"IsMissed\" OR n.\"ConIsMissed\", false)";
    let lone_row_of_a_deleted_conflict = format!(
        "(EXISTS (SELECT 1 FROM {conflicts} k WHERE k.\"CONFLICTID\" = c.\"CONFLICTID\" AND k.\"StatusFlag\" = 'D')\n\
         AND NOT EXISTS (SELECT 1 FROM {cvm} x WHERE x.\"CONFLICTID\" = c.\"CONFLICTID\" AND x.\"ID\" <> c.\"ID\")\n\
         AND NOT EXISTS (SELECT 1 FROM {cvm} x WHERE x.\"VisitID\" = c.\"VisitID\" AND x.\"ID\" <> c.\"ID\")\n\
         AND NOT EXISTS (SELECT 1 FROM {NEW} y WHERE y.\"VisitID\" = c.\"VisitID\" AND y.\"ConVisitID\" <> c.\"ConVisitID\")\n\
         AND NOT EXISTS (SELECT 1 FROM {events} y WHERE y.\"VisitID\" = c.\"VisitID\" AND y.\"ConVisitID\" IS DISTINCT FROM c.\"ConVisitID\"))",
        events = in_service::EVENT_NEW,
    );
    // A NULL status (written by someone else) is not `W` or `I`: [SF]'s refresh sets it `U`
    // (step 3 then resolves it if a visit is missed, with a ResolveDate).
    format!(
        "(CASE WHEN c.\"StatusFlag\" IS NULL THEN 'U'\n\
               WHEN {closed} AND NOT {missed} THEN (CASE WHEN {lone_row_of_a_deleted_conflict} THEN 'R' ELSE 'U' END)\n\
               WHEN {closed} THEN 'R' ELSE c.\"StatusFlag\" END)"
    )
}

/// For [`super::groups::plan_new_rows`]: the query of the `("VisitID",
/// "ConVisitID")` of the rows the inserts will write (the would-be rows not
/// stored yet, each getting a `CONFLICTID` from [`CONFLICT_IDS`]), and the
/// condition of a stored row that gets its `CONFLICTID` from that map.
fn new_rows_for_groups(ctx: &StatementContext) -> (String, String) {
    let cvm = qualified(&ctx.schemas.conflict, "conflictvisitmaps");
    let not_stored = format!("NOT EXISTS (SELECT 1 FROM {cvm} s WHERE s.\"VisitID\" = n.\"VisitID\" AND s.\"ConVisitID\" = n.\"ConVisitID\")");
    let rows = format!(
        "SELECT n.\"VisitID\", n.\"ConVisitID\" FROM {NEW} n JOIN {CONFLICT_IDS} i ON i.\"VisitID\" = n.\"VisitID\" WHERE n.new_allowed AND {not_stored}\n\
         UNION\n\
         SELECT n.\"VisitID\", n.\"ConVisitID\" FROM {events} n JOIN {CONFLICT_IDS} i ON i.\"VisitID\" = n.\"VisitID\" WHERE n.\"ConVisitID\" IS NOT NULL AND {not_stored}",
        events = in_service::EVENT_NEW,
    );
    (rows, format!("\"VisitID\" IN (SELECT \"VisitID\" FROM {CONFLICT_IDS})"))
}

/// Quote a string as an SQL literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Diff the staged pairs against the stored ones and write (see the module docs).
///
/// `keyed`: an incremental run; the staged pairs are all the pairs of the
/// keys in [`super::incremental::KEYS`], and only stored pairs of those keys
/// can be resolved as "no longer detected" (docs/conflicts.md §D1). The
/// lifecycle statements after it are the same in both modes.
pub async fn apply(
    tx: &Transaction<'_>,
    schemas: &Schemas,
    settings: &DetectionSettings,
    source: &ColumnTypes,
    window: (NaiveDate, NaiveDate),
    keyed: bool,
) -> Result<ApplyCounts> {
    let ctx = StatementContext {
        schemas: schemas.clone(),
        zone_literal: literal(settings.time_zone.name()),
        cvm_types: cvm_types(tx, schemas).await?,
        source: source.clone(),
        keyed,
    };
    let mut counts = ApplyCounts::default();
    let size_estimate = |table: &'static str| async move {
        tx.query_opt(
            "SELECT c.reltuples::float8 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relname = $2",
            &[&schemas.conflict, &table],
        )
        .await
        .map_err(|e| from_postgres(e, format!("reading the size estimate of {table}")))
        .map(|row| row.map_or(-1.0, |r| r.get::<_, f64>(0)))
    };
    let reltuples = size_estimate("conflictvisitmaps").await?;
    let conflicts_reltuples = size_estimate("conflicts").await?;
    let excluded_providers = settings.exclusions.provider_list();
    let excluded_ssns = settings.exclusions.ssn_list();
    for (name, sql) in statements(&ctx)? {
        let what = format!("conflict step '{name}'");
        let step_started = std::time::Instant::now();
        let rows = match name {
            n if super::lifecycle::takes_window(n) => tx.execute(sql.as_str(), &[&window.0, &window.1]).await,
            "in-service and PTO events" => {
                tx.execute(sql.as_str(), &[&window.0, &window.1, &excluded_providers, &excluded_ssns]).await
            }
            "in-service and PTO pairs" => tx.execute(sql.as_str(), &[&window.0, &window.1, &excluded_providers]).await,
            "analyze after insert" if !needs_analyze(counts.inserted, reltuples) => Ok(0),
            // Like conflictvisitmaps: the statistics of `conflicts` only after a large insert (docs/conflicts.md §14).
            "analyze conflicts" if !needs_analyze(counts.conflicts_created, conflicts_reltuples) => Ok(0),
            "analyze events" | "snapshot" | "would-be rows" | "event snapshot" | "would-be event rows" | "CONFLICTID and CRDATEUNIQUE of new rows"
            | "analyze after insert" | "analyze conflicts" => {
                tx.batch_execute(&sql).await.map(|_| 0)
            }
            _ => tx.execute(sql.as_str(), &[]).await,
        }
        .map_err(|e| from_postgres(e, &what))?;
        tracing::debug!(step = name, rows, seconds = step_started.elapsed().as_secs_f64(), "conflict store");
        if name == "CONFLICTID and CRDATEUNIQUE of new rows" {
            // GroupID of the rows about to be inserted (docs/conflicts.md §7.6).
            let step_started = std::time::Instant::now();
            let (new_rows, pending_ids) = new_rows_for_groups(&ctx);
            let rows = super::groups::plan_new_rows(tx, schemas, &format!("(now() AT TIME ZONE {})", ctx.zone_literal), &new_rows, &pending_ids).await?;
            tracing::debug!(step = "GroupID of new rows", rows, seconds = step_started.elapsed().as_secs_f64(), "conflict store");
        }
        if name == "cascade down" {
            crate::failpoints::check(crate::failpoints::CONFLICT_LIFECYCLE_MIDWAY)?;
        }
        match name {
            "refresh" | "refresh event rows" => counts.updated += rows,
            "insert" | "insert event rows" => counts.inserted += rows,
            "in-service and PTO pairs" => counts.event_pairs = rows,
            "conflicts" => counts.conflicts_created = rows,
            "resolve" | "resolve event rows" => counts.resolved += rows,
            n if super::lifecycle::OUTSIDE_WINDOW_STATUS_STEPS.contains(&n) => counts.outside_window_status_changes += rows,
            _ => {}
        }
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> StatementContext {
        let mut cvm_types: HashMap<String, String> = HashMap::new();
        for c in detected_cvm_columns()
            .into_iter()
            .chain(LIFECYCLE_CVM_COLUMNS.iter().copied())
            .chain(in_service::EVENT_CVM_COLUMNS.iter().copied())
            .chain(GROUP_CVM_COLUMNS.iter().copied())
        {
            cvm_types.insert(c.to_string(), "text".to_string());
        }
        StatementContext {
            schemas: Schemas { analytics: "analytics".into(), conflict: "conflict".into() },
            zone_literal: "'America/New_York'".into(),
            cvm_types,
            source: ColumnTypes::assumed("analytics", "'America/New_York'"),
            keyed: false,
        }
    }

    #[test]
    fn analyze_runs_on_a_never_analysed_table_and_after_large_writes_only() {
        assert!(needs_analyze(10, -1.0));
        assert!(needs_analyze(10, 0.0));
        assert!(needs_analyze(2_000, 10_000.0));
        assert!(!needs_analyze(500, 10_000.0));
        assert!(!needs_analyze(0, -1.0));
    }

    #[test]
    fn allow_lists_and_user_owned_columns_are_disjoint() {
        for c in USER_OWNED_CVM_COLUMNS {
            assert!(!is_nightly_writable(Table::ConflictVisitMaps, c), "{c}");
        }
        for c in USER_OWNED_CONFLICT_COLUMNS {
            assert!(!is_nightly_writable(Table::Conflicts, c), "{c}");
        }
        let err = written_columns(Table::ConflictVisitMaps, ["SSN", "FlagForReview"]).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Internal);
        assert!(err.message.contains("\"FlagForReview\""), "{}", err.message);
        assert!(written_columns(Table::Conflicts, ["NoResponseFlag"]).is_err());
    }

    #[test]
    fn an_incremental_run_resolves_only_pairs_of_the_touched_keys() {
        let keyed = StatementContext { keyed: true, ..context() };
        let resolve = |ctx: &StatementContext| statements(ctx).unwrap().into_iter().find(|(n, _)| *n == "resolve").unwrap().1;
        assert!(resolve(&keyed).contains(super::super::incremental::KEYS), "{}", resolve(&keyed));
        assert!(!resolve(&context()).contains(super::super::incremental::KEYS));
    }

    /// The part of a statement that names the columns it writes: an
    /// UPDATE's SET list, an INSERT's column list (everything before the
    /// first WHERE, FROM or SELECT after the first word).
    pub(crate) fn written_part(sql: &str) -> &str {
        let end = ["WHERE", "FROM", "SELECT"].iter().filter_map(|k| sql[6..].find(k)).min().map_or(sql.len(), |i| i + 6);
        &sql[..end]
    }

    #[test]
    fn no_generated_statement_writes_a_user_owned_column() {
        let keyed = StatementContext { keyed: true, ..context() };
        for (name, sql) in statements(&context()).unwrap().into_iter().chain(statements(&keyed).unwrap()) {
            for c in USER_OWNED_CVM_COLUMNS.iter().chain(USER_OWNED_CONFLICT_COLUMNS) {
                assert!(!written_part(&sql).contains(&ident(c)), "statement '{name}' writes user-owned column {c}:\n{sql}");
            }
        }
        // Only the no-response steps read the application's columns at all (step 5
        // to leave an N conflict whose flag is still 'Yes' as it is, docs/conflicts.md §D19).
        let readers: Vec<&str> = statements(&context())
            .unwrap()
            .into_iter()
            .filter(|(_, sql)| USER_OWNED_CVM_COLUMNS.iter().chain(USER_OWNED_CONFLICT_COLUMNS).any(|c| sql.contains(&ident(c))))
            .map(|(n, _)| n)
            .collect();
        assert_eq!(
            readers,
            [
                "no response withdrawn pairs",
                "reopen conflicts",
                "no response conflicts",
                "no response pairs",
                "outside the window: reopen conflicts",
                "outside the window: no response conflicts",
                "outside the window: no response pairs"
            ]
        );
        assert!(written_part("UPDATE x SET \"A\" = 1 WHERE \"B\" = 2").contains("\"A\""));
        assert!(!written_part("UPDATE x SET \"A\" = 1 WHERE \"B\" = 2").contains("\"B\""));
    }

    #[test]
    fn detected_columns_have_no_duplicates_and_side_names_pair_up() {
        let cols = detected_cvm_columns();
        let unique: std::collections::HashSet<_> = cols.iter().collect();
        assert_eq!(unique.len(), cols.len());
        for c in SIDE_COLUMNS {
            let expected = format!("Con{}", c.primary);
            assert!(c.conflicting == expected || (c.primary.starts_with("ShVT") && c.conflicting == format!("C{}", c.primary)), "{c:?}");
        }
    }

    #[test]
    fn a_missing_target_column_is_a_schema_mismatch() {
        let mut ctx = context();
        ctx.cvm_types.remove("ConPayerState");
        let err = statements(&ctx).unwrap_err();
        assert_eq!(err.kind, ErrorKind::SchemaMismatch);
        assert!(err.message.contains("\"ConPayerState\""), "{}", err.message);
    }
}
