//! In-service and PTO conflicts (docs/conflicts.md §5): a caregiver's
//! completed visit at one agency that overlaps an in-service training
//! (`factcaregiverinservice`) or an absence (`factcaregiverabsence`, PTO)
//! recorded for the same person (trimmed SSN) at another agency.
//!
//! Events are few next to visits, so this part is set-based SQL over the
//! analytics mirror, run inside the store's transaction
//! ([`super::store::statements`]):
//! 1. [`events_sql`]: the events of the window (docs/conflicts.md §5.1,
//!    §5.2) with their synthetic visit ids (\[SF\] `MD5('I' || id)` /
//!    `MD5('P' || id)`, [`synthetic_id`]) into [`EVENTS`];
//! 2. [`pairs_sql`]: every (completed, not missed) visit of the same SSN at
//!    another agency that overlaps an event — inclusive on the wall clock for
//!    in-service, inclusive by date for PTO — into [`EVENT_PAIRS`]. Visits
//!    are reached through the trimmed-SSN index on `dimcaregiver` and the
//!    `("Caregiver Id", "Visit Date")` index on the visits, for the dates
//!    of the event ± 1 day (docs/conflicts.md §D20);
//! 3. [`side_sql`]: the event's snapshot (caregiver, provider, office, shift
//!    times) in the column names of the visit snapshot, into [`EVENT_SIDE`];
//! 4. [`rows_sql`]: both orientations as would-be `conflictvisitmaps` rows
//!    (rule flags `N`, `InServiceFlag`/`PTOFlag` `Y`, event dates on the
//!    event's side, distance columns NULL) into [`EVENT_NEW`], which the store
//!    refreshes, inserts and resolves exactly like visit pairs.
//!
//! In an incremental run (docs/conflicts.md §D1) only the events near a
//! touched `(SSN, VisitDate)` key are recomputed, and only stored event rows
//! of a touched key or of a recomputed event can be resolved
//! ([`resolve_scope`]).

use super::columns::{ColumnTypes, Want};
use super::store::{SideColumn, SIDE_COLUMNS};
use crate::error::Result;
use crate::sink::{ident, qualified};

/// The events of the run (temporary, dropped at commit).
pub const EVENTS: &str = "pg_temp.thaw_conflict_events";
/// Visit–event pairs found by [`pairs_sql`].
pub const EVENT_PAIRS: &str = "pg_temp.thaw_conflict_event_pairs";
/// Snapshot of each event in the visit snapshot's column names.
pub const EVENT_SIDE: &str = "pg_temp.thaw_conflict_event_side";
/// Would-be `conflictvisitmaps` rows of the event pairs, target types.
pub const EVENT_NEW: &str = "pg_temp.thaw_conflict_event_new";

/// The event period columns of `conflictvisitmaps`, written only on event
/// rows: the primary side's when the event is the primary "visit", the
/// `Con…` ones when it is the conflicting one (docs/conflicts.md §5).
pub const EVENT_CVM_COLUMNS: &[&str] = &[
    "InserviceStartDate",
    "InserviceEndDate",
    "ConInserviceStartDate",
    "ConInserviceEndDate",
    "PTOStartDate",
    "PTOEndDate",
    "ConPTOStartDate",
    "ConPTOEndDate",
];

/// The two kinds of event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// `factcaregiverinservice`: inclusive overlap on the wall clock (docs/conflicts.md §5.1).
    InService,
    /// `factcaregiverabsence`: inclusive overlap by date (docs/conflicts.md §5.2).
    Pto,
}

impl EventKind {
    /// Both kinds.
    pub const ALL: [EventKind; 2] = [EventKind::InService, EventKind::Pto];

    /// `'I'` or `'P'`: the prefix of the synthetic id and the `kind` column of [`EVENTS`].
    pub fn letter(self) -> &'static str {
        match self {
            EventKind::InService => "I",
            EventKind::Pto => "P",
        }
    }

    /// The source table in the analytics mirror.
    pub fn table(self) -> &'static str {
        match self {
            EventKind::InService => "factcaregiverinservice",
            EventKind::Pto => "factcaregiverabsence",
        }
    }

    /// (id, caregiver, start, end) columns of [`EventKind::table`].
    pub(crate) fn columns(self) -> (&'static str, &'static str, &'static str, &'static str) {
        match self {
            EventKind::InService => ("Application Caregiver Inservice Id", "Caregiver Id", "Inservice start date", "Inservice end date"),
            EventKind::Pto => ("Caregiver Vacation Id", "Global Caregiver Id", "Start Date", "End Date"),
        }
    }

    /// The columns of the event start and end on the primary side and on the conflicting side.
    fn cvm_columns(self) -> [&'static str; 4] {
        match self {
            EventKind::InService => ["InserviceStartDate", "InserviceEndDate", "ConInserviceStartDate", "ConInserviceEndDate"],
            EventKind::Pto => ["PTOStartDate", "PTOEndDate", "ConPTOStartDate", "ConPTOEndDate"],
        }
    }

    /// SQL condition: the wall-clock interval `[vs, ve]` of a visit overlaps
    /// the event `[es, ee]` (inclusive; by date for PTO). NULL bounds are
    /// unknown, so never overlap (three-valued, docs/conflicts.md §10.1).
    fn overlap(self, vs: &str, ve: &str, es: &str, ee: &str) -> String {
        match self {
            EventKind::InService => format!("({vs} <= {ee} AND {ve} >= {es})"),
            EventKind::Pto => format!("(({vs})::date <= ({ee})::date AND ({ve})::date >= ({es})::date)"),
        }
    }
}

/// SQL text of \[SF\]'s synthetic id `MD5(letter || id)` as a `uuid`: the 32
/// hex digits of the MD5 read as a UUID, which is the same value written with
/// dashes in lower case (docs/conflicts.md §5, A39). The in-service id is a
/// Snowflake `NUMBER(38,0)`, whose text is the plain integer; the vacation id
/// is a `NUMBER(38,5)`, whose text carries five decimals (`'P' ||
/// 12.00000`), so it is formatted the same way here.
pub fn synthetic_id(kind: EventKind, id_expr: &str) -> String {
    match kind {
        EventKind::InService => format!("md5('I' || ({id_expr})::text)::uuid"),
        EventKind::Pto => format!("md5('P' || ({id_expr})::numeric(38, 5)::text)::uuid"),
    }
}

fn wall(expr: &str, zone: &str) -> String {
    format!("({expr} AT TIME ZONE {zone})")
}

/// `CREATE TEMP TABLE` of [`EVENTS`]: kind, synthetic `event_id`,
/// `app_event_id`, caregiver, provider and office ids, trimmed `ssn`,
/// wall-clock `starts`/`ends` — for every event whose start date (wall
/// clock) is in the window, whose caregiver has a non-blank trimmed SSN,
/// whose agency is active and not demo, and that no exclusion names.
///
/// Parameters: `$1`/`$2` the window (dates), `$3` the excluded agencies
/// (`uuid[]`), `$4` the excluded trimmed SSNs (`text[]`). `keyed`: only
/// events whose SSN has a touched key within a day of the event's dates.
/// An absent source table is a [`crate::ErrorKind::SchemaMismatch`] naming it. Duplicated synthetic
/// ids (the same event id in two `Environment`s) keep the first environment.
pub fn events_sql(types: &ColumnTypes, zone: &str, keyed: bool) -> Result<String> {
    let a = |t: &str| qualified(types.schema(), t);
    let mut branches = Vec::new();
    for kind in EventKind::ALL {
        // Both event tables are required like every other source table
        // (docs/conflicts.md §2.4, §5): skipping an absent one resolved every
        // stored event pair of its kind without a word.
        let table = kind.table();
        let (id, caregiver, start, end) = kind.columns();
        let e = |col: &str, want: Want| types.expr("i", table, col, want);
        let ssn = format!("btrim({}, ' ')", types.expr("cg", "dimcaregiver", "SSN", Want::Text)?);
        let (starts, ends) = (wall(&e(start, Want::Timestamptz)?, zone), wall(&e(end, Want::Timestamptz)?, zone));
        // Incremental: the events of the caregiver ids of the touched SSNs
        // (collected by trimmed-SSN index probes into TOUCHED_CAREGIVERS), read
        // through the events' caregiver index — an array of ids, so the plan is
        // an index scan whatever the estimates, never a scan of every event or
        // caregiver (docs/conflicts.md §14); then the date test.
        let keyed_filter = if keyed {
            format!(
                "\n      AND {i_cg} = ANY(ARRAY(SELECT caregiver_id FROM {caregivers}))\
                 \n      AND EXISTS (SELECT 1 FROM {keys} k WHERE k.ssn = {ssn} AND k.visit_date BETWEEN {starts}::date - 1 AND coalesce({ends}, {starts})::date + 1)",
                keys = super::incremental::KEYS,
                i_cg = e(caregiver, Want::Uuid)?,
                caregivers = super::incremental::TOUCHED_CAREGIVERS,
            )
        } else {
            String::new()
        };
        branches.push(format!(
            "    SELECT '{letter}'::text AS kind, {event_id} AS event_id, {app_id} AS app_event_id, {i_cg} AS caregiver_id, \
             {i_pr} AS provider_id, {i_office} AS office_id, {ssn} AS ssn, {starts} AS starts, {ends} AS ends, {environment} AS environment\n    \
             FROM {t} i JOIN {caregivers} cg ON {cg_id} = {i_cg} JOIN {providers} pr ON {pr_id} = {i_pr}\n    \
             WHERE {starts}::date BETWEEN $1::date AND $2::date AND {pr_active} = true AND {pr_demo} = false AND {ssn} <> ''\n      \
             AND NOT ({i_pr} = ANY($3::uuid[])) AND NOT ({ssn} = ANY($4::text[])){keyed_filter}",
            letter = kind.letter(),
            event_id = synthetic_id(kind, &e(id, Want::Int8)?),
            app_id = e(id, Want::Int8)?,
            i_cg = e(caregiver, Want::Uuid)?,
            i_pr = e("Provider Id", Want::Uuid)?,
            i_office = e("Office Id", Want::Uuid)?,
            environment = e("Environment", Want::Text)?,
            t = a(table),
            caregivers = a("dimcaregiver"),
            providers = a("dimprovider"),
            cg_id = types.expr("cg", "dimcaregiver", "Caregiver Id", Want::Uuid)?,
            pr_id = types.expr("pr", "dimprovider", "Provider Id", Want::Uuid)?,
            pr_active = types.expr("pr", "dimprovider", "Is Active", Want::Bool)?,
            pr_demo = types.expr("pr", "dimprovider", "Is Demo", Want::Bool)?,
        ));
    }
    if branches.is_empty() {
        branches.push(
            "    SELECT NULL::text, NULL::uuid, NULL::int8, NULL::uuid, NULL::uuid, NULL::uuid, NULL::text, NULL::timestamp, NULL::timestamp, NULL::text \
             WHERE $1::date IS NULL AND $2::date IS NULL AND $3::uuid[] IS NULL AND $4::text[] IS NULL AND false"
                .to_string(),
        );
    }
    Ok(format!(
        "CREATE TEMP TABLE thaw_conflict_events ON COMMIT DROP AS\n\
         SELECT DISTINCT ON (event_id) kind, event_id, app_event_id, caregiver_id, provider_id, office_id, ssn, starts, ends FROM (\n{}\n) e(kind, event_id, app_event_id, caregiver_id, provider_id, office_id, ssn, starts, ends, environment)\n\
         ORDER BY event_id, environment",
        branches.join("\nUNION ALL\n")
    ))
}

/// `CREATE TEMP TABLE` of [`EVENT_PAIRS`]: `kind`, `event_id`, `ssn`,
/// `starts`, `ends`, `event_date` (the date of the start), `visit_id`,
/// `visit_date` — one row per event and visit that conflict
/// (docs/conflicts.md §5): the visit is a candidate of the window (same
/// trimmed SSN, active non-demo agency not excluded), completed (both
/// actual times), `"Is Missed" = FALSE` (three-valued), at another agency
/// than the event, overlapping it, and overlapping no event of the same kind
/// of its own caregiver id at its own agency. Visits are looked up for the
/// event's dates ± 1 day (docs/conflicts.md §D20), through the visits'
/// `("Caregiver Id", "Visit Date")` index once per event and caregiver id of
/// its SSN, in the order of that index (caregiver id, then start): the
/// probes then walk the index forwards instead of jumping about it, which
/// at 2 M visits (396 399 probes) took 3.8–4.3 s instead of 6.5–6.6 s
/// (docs/conflicts.md §14).
///
/// Parameters: `$1`/`$2` the window, `$3` the excluded agencies (`uuid[]`).
pub fn pairs_sql(types: &ColumnTypes, zone: &str) -> Result<String> {
    let a = |t: &str| qualified(types.schema(), t);
    let fa = "factvisitcallperformance_cr";
    let f = |col: &str, want: Want| types.expr("f", fa, col, want);
    let (vs, ve) = (wall(&f("Visit Start Time", Want::Timestamptz)?, zone), wall(&f("Visit End Time", Want::Timestamptz)?, zone));
    let mut overlap = Vec::new();
    for kind in EventKind::ALL {
        let (_, caregiver, start, end) = kind.columns();
        let o = |col: &str, want: Want| types.expr("o", kind.table(), col, want);
        let (os, oe) = (wall(&o(start, Want::Timestamptz)?, zone), wall(&o(end, Want::Timestamptz)?, zone));
        overlap.push(format!(
            "(e.kind = '{letter}' AND {pair}\n        AND NOT EXISTS (SELECT 1 FROM {t} o WHERE {o_cg} = {f_cg} AND {o_pr} = {f_pr} AND {own}))",
            letter = kind.letter(),
            pair = kind.overlap(&vs, &ve, "e.starts", "e.ends"),
            t = a(kind.table()),
            o_cg = o(caregiver, Want::Uuid)?,
            o_pr = o("Provider Id", Want::Uuid)?,
            f_cg = f("Caregiver Id", Want::Uuid)?,
            f_pr = f("Provider Id", Want::Uuid)?,
            own = kind.overlap(&vs, &ve, &os, &oe),
        ));
    }
    if overlap.is_empty() {
        overlap.push("false".into());
    }
    let f_date = f("Visit Date", Want::Date)?;
    Ok(format!(
        "CREATE TEMP TABLE thaw_conflict_event_pairs ON COMMIT DROP AS\n\
         SELECT e.kind, e.event_id, e.ssn, e.starts, e.ends, e.starts::date AS event_date, {f_id} AS visit_id, {f_date} AS visit_date\n\
         FROM (SELECT e.*, {cg_id} AS caregiver_id_of_ssn FROM {EVENTS} e JOIN {caregivers} cg ON btrim({cg_ssn}, ' ') = e.ssn\n      \
               ORDER BY caregiver_id_of_ssn, e.starts) e\n\
         JOIN {visits} f ON {f_cg} = e.caregiver_id_of_ssn AND {f_date} BETWEEN e.starts::date - 1 AND coalesce(e.ends, e.starts)::date + 1\n\
         JOIN {providers} pr ON {pr_id} = {f_pr}\n\
         WHERE {f_date} BETWEEN $1::date AND $2::date AND {pr_active} = true AND {pr_demo} = false AND NOT ({f_pr} = ANY($3::uuid[]))\n  \
           AND {f_pr} <> e.provider_id AND {missed} = false AND {f_vs} IS NOT NULL AND {f_ve} IS NOT NULL\n  \
           AND ({overlap})",
        f_id = f("Visit Id", Want::Uuid)?,
        caregivers = a("dimcaregiver"),
        visits = a(fa),
        providers = a("dimprovider"),
        cg_ssn = types.expr("cg", "dimcaregiver", "SSN", Want::Text)?,
        f_cg = f("Caregiver Id", Want::Uuid)?,
        cg_id = types.expr("cg", "dimcaregiver", "Caregiver Id", Want::Uuid)?,
        pr_id = types.expr("pr", "dimprovider", "Provider Id", Want::Uuid)?,
        f_pr = f("Provider Id", Want::Uuid)?,
        pr_active = types.expr("pr", "dimprovider", "Is Active", Want::Bool)?,
        pr_demo = types.expr("pr", "dimprovider", "Is Demo", Want::Bool)?,
        missed = f("Is Missed", Want::Bool)?,
        f_vs = f("Visit Start Time", Want::Timestamptz)?,
        f_ve = f("Visit End Time", Want::Timestamptz)?,
        overlap = overlap.join("\n    OR "),
    ))
}

/// The aliases an expression of [`SIDE_COLUMNS`] reads (`f`, `cg`, `pr`, ...).
fn aliases(expr: &str) -> Vec<&str> {
    let mut found = Vec::new();
    for (i, _) in expr.match_indices(".\"") {
        let head = &expr[..i];
        let start = head.rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).map_or(0, |p| p + 1);
        found.push(&head[start..]);
    }
    found
}

/// The event's value of one snapshot column: ids, shift times and the
/// application ids from the event and its dimensions; the caregiver,
/// provider and office columns as for a visit; everything else NULL (an
/// event has no patient, payer, billing, schedule or actual times). The
/// shift start and end (`ShVTSTTime`, `ShVTENTime`) are \[SF\]'s
/// `coalesce(visit, schedule, in-service)`, so an in-service event's period
/// and NULL for an absence (docs/conflicts.md §6.2). `BilledRateMinute` is
/// 0: \[SF\]'s computed column is `CASE … ELSE 0` and an event has no
/// billing (docs/conflicts.md §6.3).
fn event_column(c: &SideColumn, zone: &str) -> String {
    let expr = match c.primary {
        "AppVisitID" => "e.app_event_id".to_string(),
        "ProviderID" => "e.provider_id".to_string(),
        "AppProviderID" => r#"pr."Application Provider Id""#.to_string(),
        "CaregiverID" => "e.caregiver_id".to_string(),
        "AppCaregiverID" => r#"cg."Application Caregiver Id""#.to_string(),
        "OfficeID" => "e.office_id".to_string(),
        "AppOfficeID" => r#"o."Application Office Id""#.to_string(),
        "ShVTSTTime" => "CASE WHEN e.kind = 'I' THEN e.starts END".to_string(),
        "ShVTENTime" => "CASE WHEN e.kind = 'I' THEN e.ends END".to_string(),
        "BilledRateMinute" => "0::numeric".to_string(),
        _ if aliases(c.expr).iter().all(|a| matches!(*a, "cg" | "pr" | "o")) => c.expr.replace("{tz}", zone),
        _ => "NULL".to_string(),
    };
    format!("{expr} AS {}", ident(c.primary))
}

/// `CREATE TEMP TABLE` of [`EVENT_SIDE`] (one row per event in a pair,
/// column `"VisitID"` = the synthetic id, then the primary names of
/// [`SIDE_COLUMNS`]), its index and `ANALYZE`.
pub fn side_sql(types: &ColumnTypes, zone: &str) -> Result<String> {
    let a = |t: &str| qualified(types.schema(), t);
    let cols: Vec<String> = SIDE_COLUMNS.iter().map(|c| event_column(c, zone)).collect();
    Ok(format!(
        "ANALYZE {EVENT_PAIRS} (kind, event_id, visit_id);\n\
         CREATE TEMP TABLE thaw_conflict_event_side ON COMMIT DROP AS\n\
         SELECT e.event_id AS \"VisitID\", {cols}\n\
         FROM {EVENTS} e\n\
         LEFT JOIN {caregivers} cg ON {cg_id} = e.caregiver_id\n\
         LEFT JOIN {providers} pr ON {pr_id} = e.provider_id\n\
         LEFT JOIN {offices} o ON {o_id} = e.office_id\n\
         WHERE e.event_id IN (SELECT event_id FROM {EVENT_PAIRS});\n\
         CREATE INDEX ON {EVENT_SIDE} (\"VisitID\");\n\
         ANALYZE {EVENT_SIDE} (\"VisitID\")",
        cols = cols.join(",\n       "),
        caregivers = a("dimcaregiver"),
        providers = a("dimprovider"),
        offices = a("dimoffice"),
        cg_id = types.expr("cg", "dimcaregiver", "Caregiver Id", Want::Uuid)?,
        pr_id = types.expr("pr", "dimprovider", "Provider Id", Want::Uuid)?,
        o_id = types.expr("o", "dimoffice", "Office Id", Want::Uuid)?,
    ))
}

/// `CREATE TEMP TABLE` of [`EVENT_NEW`]: both orientations of every pair of
/// [`EVENT_PAIRS`] as would-be rows in the target column types. `columns`:
/// every written column in order (the store's detected columns, then
/// [`EVENT_CVM_COLUMNS`], `InServiceFlag`, `PTOFlag`); `cast(column, expr)`
/// casts an SQL expression to the column's type; `visit_side` is the store's
/// visit snapshot table (same column names as [`EVENT_SIDE`]).
///
/// The (visit, event) row has the visit's `VisitDate` and the event period
/// in the `Con…` columns, the (event, visit) row the event's start date and
/// the period in the primary columns; rule flags `N`, `MinuteDiffBetweenSch`
/// 0 (no actual times on the event side, docs/conflicts.md §6.1), distance
/// columns NULL, `InServiceFlag`/`PTOFlag` `Y` by kind.
pub fn rows_sql(columns: &[&str], cast: &dyn Fn(&str, &str) -> Result<String>, visit_side: &str) -> Result<String> {
    let orientation = |event_primary: bool| -> Result<String> {
        let (v1, v2) = if event_primary { ("es", "vs") } else { ("vs", "es") };
        let mut select = Vec::new();
        for &col in columns {
            let side = SIDE_COLUMNS.iter().find(|c| c.primary == col || c.conflicting == col);
            let expr = match (col, side) {
                ("VisitID", _) => (if event_primary { "p.event_id" } else { "p.visit_id" }).to_string(),
                ("ConVisitID", _) => (if event_primary { "p.visit_id" } else { "p.event_id" }).to_string(),
                ("SSN", _) => "p.ssn".into(),
                ("VisitDate", _) => (if event_primary { "p.event_date" } else { "p.visit_date" }).to_string(),
                ("MinuteDiffBetweenSch", _) => "0".into(),
                ("InServiceFlag", _) => "CASE WHEN p.kind = 'I' THEN 'Y' ELSE 'N' END".into(),
                ("PTOFlag", _) => "CASE WHEN p.kind = 'P' THEN 'Y' ELSE 'N' END".into(),
                (_, Some(c)) if c.primary == col => format!("{v1}.{}", ident(c.primary)),
                (_, Some(c)) => format!("{v2}.{}", ident(c.primary)),
                _ if super::rules::RuleFlags::COLUMNS.contains(&col) => "'N'".into(),
                _ => event_period(col, event_primary).unwrap_or_else(|| "NULL".into()),
            };
            select.push(format!("{} AS {}", cast(col, &expr)?, ident(col)));
        }
        Ok(format!(
            "SELECT {}\nFROM {EVENT_PAIRS} p\nJOIN {visit_side} vs ON vs.\"VisitID\" = p.visit_id\nJOIN {EVENT_SIDE} es ON es.\"VisitID\" = p.event_id",
            select.join(", ")
        ))
    };
    Ok(format!(
        "CREATE TEMP TABLE thaw_conflict_event_new ON COMMIT DROP AS\n{}\nUNION ALL\n{};\n\
         CREATE UNIQUE INDEX ON {EVENT_NEW} (\"VisitID\", \"ConVisitID\");\nANALYZE {EVENT_NEW} (\"VisitID\", \"ConVisitID\", \"AppVisitID\")",
        orientation(false)?,
        orientation(true)?
    ))
}

/// The event period column `col` of a row: the event's start or end when
/// the column belongs to the event's kind and side.
fn event_period(col: &str, event_primary: bool) -> Option<String> {
    for kind in EventKind::ALL {
        let [start, end, con_start, con_end] = kind.cvm_columns();
        let (s, e) = if event_primary { (start, end) } else { (con_start, con_end) };
        let bound = if col == s {
            "starts"
        } else if col == e {
            "ends"
        } else {
            continue;
        };
        return Some(format!("CASE WHEN p.kind = '{}' THEN p.{bound} END", kind.letter()));
    }
    None
}

/// SQL condition on a stored row `c`: it is an event row (one of the eight
/// event period columns is set).
pub fn is_event_row(alias: &str) -> String {
    let any: Vec<String> = EVENT_CVM_COLUMNS.iter().map(|col| format!("{alias}.{} IS NOT NULL", ident(col))).collect();
    format!("({})", any.join(" OR "))
}

/// In an incremental run, the stored event rows that may be resolved: those
/// of a touched key and those of a recomputed event.
pub fn resolve_scope(alias: &str) -> String {
    format!(
        "(EXISTS (SELECT 1 FROM {keys} k WHERE k.ssn = {alias}.\"SSN\" AND k.visit_date = {alias}.\"VisitDate\") \
         OR {alias}.\"VisitID\" IN (SELECT event_id FROM {EVENTS}) OR {alias}.\"ConVisitID\" IN (SELECT event_id FROM {EVENTS}))",
        keys = super::incremental::KEYS
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_ids_follow_the_snowflake_number_text() {
        assert_eq!(synthetic_id(EventKind::InService, "x"), "md5('I' || (x)::text)::uuid");
        assert!(synthetic_id(EventKind::Pto, "x").contains("numeric(38, 5)"));
    }

    #[test]
    fn event_side_columns_read_only_the_event_and_its_dimensions() {
        let zone = "'America/New_York'";
        for c in SIDE_COLUMNS {
            let sql = event_column(c, zone);
            for alias in aliases(&sql) {
                assert!(matches!(alias, "cg" | "pr" | "o" | "e"), "{}: {sql}", c.primary);
            }
        }
        let name = SIDE_COLUMNS.iter().find(|c| c.primary == "ProviderName").unwrap();
        assert_eq!(event_column(name, zone), r#"pr."Provider Name" AS "ProviderName""#);
        let patient = SIDE_COLUMNS.iter().find(|c| c.primary == "P_PName").unwrap();
        assert_eq!(event_column(patient, zone), r#"NULL AS "P_PName""#);
    }

    #[test]
    fn periods_go_to_the_event_side() {
        assert_eq!(event_period("ConInserviceStartDate", false).unwrap(), "CASE WHEN p.kind = 'I' THEN p.starts END");
        assert_eq!(event_period("PTOEndDate", true).unwrap(), "CASE WHEN p.kind = 'P' THEN p.ends END");
        assert!(event_period("PTOEndDate", false).is_none());
    }
}
