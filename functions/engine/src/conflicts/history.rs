//! Change history of the stored pairs (docs/conflicts.md §9.2, \[SF\]
//! TASK_09_0): `log_history` gets one row per pair and run that the run
//! inserted (`LogTypeFlag` `Inserted`) or whose recorded fields it changed
//! (`UpdatedNew`), `log_history_values` one row per changed field with the
//! old and the new value.
//!
//! Flow inside the run's transaction:
//! 1. While detection streams, [`cross_state_pairs`] lists the ordered
//!    visit pairs of each batch that are cross-state (docs/conflicts.md
//!    §4.5) and [`CrossStateWriter`] COPYs them into a temporary table: the
//!    sweep never emits such pairs, so this is how the run knows why a stored
//!    pair was not detected again.
//! 2. [`snapshot`], before [`super::store::apply`]: the recorded fields of
//!    every stored pair of the window, as \[SF\]'s pre-run snapshot of pairs
//!    joined with their conflicts (`StatusFlag` = the conflict's status,
//!    `ConStatusFlag` = the pair's, every other field a `conflictvisitmaps`
//!    column), one text array per pair.
//! 3. [`record`], after it: the same fields again; new pairs get an
//!    `Inserted` row, changed ones an `UpdatedNew` row and one value row per
//!    changed field, and a pair resolved because it became cross-state also a
//!    `ResolveReason` value row with the system reason [`CROSS_STATE_REASON`]
//!    (docs/conflicts.md §D6).
//!
//! Which fields are recorded is the application's `log_fields` table
//! (`FieldName`; V13 seeds it when it is new); names that are neither a
//! `conflictvisitmaps` column nor one of the two statuses are ignored.
//! `VisitID`/`AppVisitID` of a value row are the pair's primary visit. A rerun
//! of the same night changes nothing and so records nothing.

use std::collections::HashMap;

use chrono::NaiveDate;
use futures::pin_mut;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;
use tokio_postgres::Transaction;
use uuid::Uuid;

use super::cross_state::{self, VisitStates};
use super::settings;
use super::store::{written_columns, Schemas, Table};
use super::Visit;
use crate::error::{from_postgres, Result};
use crate::sink::{ident, qualified};

/// Columns of `log_history` the nightly job writes (its allow-list).
pub const LOG_HISTORY_COLUMNS: &[&str] = &["CONID", "CreatedDateTime", "LogTypeFlag"];

/// Columns of `log_history_values` the nightly job writes (its allow-list).
pub const LOG_HISTORY_VALUES_COLUMNS: &[&str] = &[
    "LHID",
    "LogID",
    "OldValue",
    "NewValue",
    "VisitID",
    "AppVisitID",
];

/// `log_fields."FieldName"` of the system reason of a resolution.
pub const RESOLVE_REASON_FIELD: &str = "ResolveReason";

/// The system reason recorded when the run resolves a pair because its
/// visits are now in different states (docs/conflicts.md §D6).
pub const CROSS_STATE_REASON: &str =
    "Resolved by the nightly run: the two visits are in different states (cross-state)";

const CROSS_STATE: &str = "pg_temp.thaw_conflict_cross_state";
/// The pre-run snapshot of [`snapshot`]: `id` (the pair's `ID`), `status`
/// (its `StatusFlag` as text) and the recorded fields, one row per stored
/// pair of the window.
pub(crate) const BEFORE: &str = "pg_temp.thaw_conflict_log_before";
const CHANGES: &str = "pg_temp.thaw_conflict_log_changes";

/// The ordered pairs `(VisitID, ConVisitID)` among `visits` that share the
/// trimmed SSN and the `VisitDate`, belong to different providers and are
/// cross-state (docs/conflicts.md §4.5), both orientations. Visits without a
/// usable SSN are skipped. Work: quadratic in the visits of one
/// `(SSN, VisitDate)` key only (a caregiver's visits of one day).
pub fn cross_state_pairs(visits: &[Visit]) -> Vec<(Uuid, Uuid)> {
    let mut keys: HashMap<(&str, NaiveDate), Vec<(&Visit, VisitStates<'_>)>> = HashMap::new();
    for v in visits {
        let Some(ssn) = v
            .ssn
            .as_deref()
            .map(settings::trim_ssn)
            .filter(|s| !s.is_empty())
        else {
            continue;
        };
        let states = VisitStates::of(
            v.patient_state.as_deref(),
            v.payer_patient_state.as_deref(),
            v.provider_state.as_deref(),
        );
        keys.entry((ssn, v.visit_date))
            .or_default()
            .push((v, states));
    }
    let mut pairs = Vec::new();
    for group in keys.values() {
        for (i, (a, a_states)) in group.iter().enumerate() {
            for (b, b_states) in &group[i + 1..] {
                if a.provider_id != b.provider_id
                    && a.visit_id != b.visit_id
                    && cross_state::is_cross_state(a_states, b_states)
                {
                    pairs.push((a.visit_id, b.visit_id));
                    pairs.push((b.visit_id, a.visit_id));
                }
            }
        }
    }
    pairs
}

/// Streams the cross-state pairs of the run into a temporary table (dropped at commit).
pub struct CrossStateWriter {
    copy_sql: String,
}

impl CrossStateWriter {
    /// Create the temporary table.
    pub async fn create(tx: &Transaction<'_>) -> Result<CrossStateWriter> {
        tx.batch_execute(
            "CREATE TEMP TABLE thaw_conflict_cross_state (\"VisitID\" uuid, \"ConVisitID\" uuid) ON COMMIT DROP",
        )
        .await
        .map_err(|e| from_postgres(e, "creating the cross-state pair table"))?;
        Ok(CrossStateWriter {
            copy_sql: format!("COPY {CROSS_STATE} FROM STDIN (FORMAT binary)"),
        })
    }

    /// Append `pairs` (from [`cross_state_pairs`]).
    pub async fn write(&mut self, tx: &Transaction<'_>, pairs: &[(Uuid, Uuid)]) -> Result<()> {
        if pairs.is_empty() {
            return Ok(());
        }
        let sink = tx
            .copy_in(&self.copy_sql)
            .await
            .map_err(|e| from_postgres(e, "starting COPY of cross-state pairs"))?;
        let writer = BinaryCopyInWriter::new(sink, &[Type::UUID, Type::UUID]);
        pin_mut!(writer);
        for (visit, con_visit) in pairs {
            writer
                .as_mut()
                .write(&[visit, con_visit])
                .await
                .map_err(|e| from_postgres(e, "writing cross-state pairs"))?;
        }
        writer
            .finish()
            .await
            .map_err(|e| from_postgres(e, "finishing COPY of cross-state pairs"))?;
        Ok(())
    }
}

/// The recorded fields of one run, from `log_fields`, and the pre-run state.
#[derive(Debug, Clone)]
pub struct Audit {
    /// `(log_fields."ID", SQL expression)` per recorded field, aliases
    /// `c` = `conflictvisitmaps`, `k` = `conflicts`; the value as stored,
    /// compared and kept as PostgreSQL text only where it changed.
    fields: Vec<(i64, String)>,
    /// `log_fields."ID"` of [`RESOLVE_REASON_FIELD`], when listed.
    reason_id: Option<i64>,
    /// The largest pair `ID` before the run: larger ids were inserted by it.
    max_id_before: i64,
}

impl Audit {
    /// The recorded fields of the stored row as a text array.
    fn array(&self) -> String {
        Self::text_array(self.fields.iter().map(|(_, e)| e.clone()))
    }

    /// The recorded fields of the pre-run snapshot `b` as a text array.
    fn before_array(&self) -> String {
        Self::text_array((0..self.fields.len()).map(|i| format!("b.f{i}")))
    }

    fn text_array(values: impl Iterator<Item = String>) -> String {
        let values: Vec<String> = values.map(|v| format!("{v}::text")).collect();
        if values.is_empty() {
            "ARRAY[]::text[]".into()
        } else {
            format!("ARRAY[{}]", values.join(", "))
        }
    }

    /// SQL condition: a recorded field of the stored row differs from the
    /// snapshot `b`. The values are compared as stored, by their binary
    /// image (`record_image_ne`, the `*<>` operator called as a function so
    /// that the rows are not compared column by column; NULLs equal each
    /// other), which differs exactly when their text differs, so only the
    /// changed rows are turned into text.
    fn changed(&self) -> String {
        if self.fields.is_empty() {
            return "false".into();
        }
        let before: Vec<String> = (0..self.fields.len()).map(|i| format!("b.f{i}")).collect();
        let after: Vec<&str> = self.fields.iter().map(|(_, e)| e.as_str()).collect();
        format!("record_image_ne(ROW({}), ROW({}))", before.join(", "), after.join(", "))
    }
}

/// Counts of [`record`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HistoryCounts {
    /// `log_history` rows written (pairs inserted or changed).
    pub entries: u64,
    /// `log_history_values` rows written (changed fields and reasons).
    pub values: u64,
}

/// Read `log_fields` and snapshot the recorded fields of every stored pair
/// of `window` (first and last `VisitDate`). Call before
/// [`super::store::apply`].
///
/// Errors: PostgreSQL errors, e.g. `log_fields` missing (migration V13 not
/// applied) as [`crate::error::ErrorKind::SchemaMismatch`].
pub async fn snapshot(
    tx: &Transaction<'_>,
    schemas: &Schemas,
    window: (NaiveDate, NaiveDate),
) -> Result<Audit> {
    let cvm = qualified(&schemas.conflict, "conflictvisitmaps");
    let conflicts = qualified(&schemas.conflict, "conflicts");
    let columns: Vec<String> = tx
        .query(
            // pg_attribute, not information_schema.columns: the view cost a
            // few milliseconds of every night (docs/conflicts.md §14).
            "SELECT a.attname::text FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relname = 'conflictvisitmaps' AND a.attnum > 0 AND NOT a.attisdropped",
            &[&schemas.conflict],
        )
        .await
        .map_err(|e| from_postgres(e, "reading the columns of conflictvisitmaps"))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let rows = tx
        .query(
            &format!(
                "SELECT \"ID\", \"FieldName\"::text FROM {} WHERE \"FieldName\" IS NOT NULL ORDER BY \"ID\"",
                qualified(&schemas.conflict, "log_fields")
            ),
            &[],
        )
        .await
        .map_err(|e| from_postgres(e, "reading log_fields (apply schema/V13__conflict_side_tables.sql)"))?;
    let mut fields = Vec::new();
    let mut reason_id = None;
    for row in rows {
        let (id, name): (i64, String) = (row.get(0), row.get(1));
        let expr = match name.as_str() {
            RESOLVE_REASON_FIELD => {
                reason_id = reason_id.or(Some(id));
                continue;
            }
            "StatusFlag" => "k.\"StatusFlag\"".to_string(),
            "ConStatusFlag" => "c.\"StatusFlag\"".to_string(),
            other if columns.iter().any(|c| c == other) => format!("c.{}", ident(other)),
            _ => continue,
        };
        fields.push((id, expr));
    }
    let max_id_before: i64 = tx
        .query_one(
            &format!("SELECT coalesce(max(\"ID\"), 0)::int8 FROM {cvm}"),
            &[],
        )
        .await
        .map_err(|e| from_postgres(e, "reading the largest pair id"))?
        .get(0);
    let audit = Audit {
        fields,
        reason_id,
        max_id_before,
    };
    // The values as stored, one column each (`f0`, `f1`, ...): no text is
    // made of the window's rows before the night (docs/conflicts.md §14).
    let values: String = audit.fields.iter().enumerate().map(|(i, (_, e))| format!(", {e} AS f{i}")).collect();
    let sql = format!(
        "CREATE TEMP TABLE thaw_conflict_log_before ON COMMIT DROP AS\n\
         SELECT c.\"ID\" AS id, c.\"StatusFlag\"::text AS status{values}\n\
         FROM {cvm} c LEFT JOIN {conflicts} k ON k.\"CONFLICTID\" = c.\"CONFLICTID\"\n\
         WHERE c.\"VisitDate\" BETWEEN $1 AND $2"
    );
    tx.execute(sql.as_str(), &[&window.0, &window.1])
        .await
        .map_err(|e| from_postgres(e, "taking the pre-run snapshot of the pairs"))?;
    tx.batch_execute(&format!(
        "CREATE UNIQUE INDEX ON {BEFORE} (id); ANALYZE {BEFORE} (id, status); ANALYZE {CROSS_STATE}"
    ))
    .await
    .map_err(|e| from_postgres(e, "indexing the pre-run snapshot"))?;
    Ok(audit)
}

/// Write the history of this run (see the module docs). Call after
/// [`super::store::apply`] with the [`Audit`] of [`snapshot`]; `zone_literal`
/// is the quoted configured zone (timestamps on its wall clock).
///
/// Errors: PostgreSQL errors; [`crate::error::ErrorKind::Internal`] when a
/// statement would write a column outside the allow-list (a bug in thaw).
pub async fn record(
    tx: &Transaction<'_>,
    schemas: &Schemas,
    audit: &Audit,
    zone_literal: &str,
    window: (NaiveDate, NaiveDate),
) -> Result<HistoryCounts> {
    let cvm = qualified(&schemas.conflict, "conflictvisitmaps");
    let conflicts = qualified(&schemas.conflict, "conflicts");
    let now = format!("(now() AT TIME ZONE {zone_literal})");
    let (array, before_array, changed) = (audit.array(), audit.before_array(), audit.changed());
    let cross_state = format!(
        "(b.status IS DISTINCT FROM 'R' AND b.status IS DISTINCT FROM 'D' AND c.\"StatusFlag\" = 'R'\n    \
         AND EXISTS (SELECT 1 FROM {CROSS_STATE} x WHERE x.\"VisitID\" = c.\"VisitID\" AND x.\"ConVisitID\" = c.\"ConVisitID\"))"
    );
    let changes_sql = format!(
        "CREATE TEMP TABLE thaw_conflict_log_changes ON COMMIT DROP AS\n\
         SELECT c.\"ID\" AS id, c.\"VisitID\" AS visit_id, c.\"AppVisitID\"::int8 AS app_visit_id, b.id IS NULL AS inserted,\n       \
                CASE WHEN b.id IS NOT NULL THEN {before_array} END AS old_vals, {array} AS vals, {cross_state} AS cross_state\n\
         FROM {cvm} c LEFT JOIN {conflicts} k ON k.\"CONFLICTID\" = c.\"CONFLICTID\" LEFT JOIN {BEFORE} b ON b.id = c.\"ID\"\n\
         WHERE c.\"VisitDate\" BETWEEN $1 AND $2\n  \
         AND ((b.id IS NULL AND c.\"ID\" > {max_id}) OR (b.id IS NOT NULL AND ({changed} OR {cross_state})))",
        max_id = audit.max_id_before,
    );
    tx.execute(changes_sql.as_str(), &[&window.0, &window.1])
        .await
        .map_err(|e| from_postgres(e, "collecting the changed pairs for log history"))?;
    // The history insert joins the changes by pair id: give the planner an index and real counts.
    tx.batch_execute(&format!(
        "CREATE UNIQUE INDEX ON {CHANGES} (id); ANALYZE {CHANGES} (id, visit_id, inserted)"
    ))
    .await
    .map_err(|e| from_postgres(e, "indexing the changed pairs"))?;
    let lh = qualified(&schemas.conflict, "log_history");
    let lhv = qualified(&schemas.conflict, "log_history_values");
    let lh_cols =
        written_columns(Table::LogHistory, LOG_HISTORY_COLUMNS.iter().copied())?.join(", ");
    let lhv_cols = written_columns(
        Table::LogHistoryValues,
        LOG_HISTORY_VALUES_COLUMNS.iter().copied(),
    )?
    .join(", ");
    let ids = audit
        .fields
        .iter()
        .map(|(id, _)| id.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let reason = match audit.reason_id {
        Some(id) => format!(
            "\nUNION ALL\nSELECT lh.\"ID\", {id}, NULL, '{}', ch.visit_id, ch.app_visit_id FROM lh JOIN {CHANGES} ch ON ch.id = lh.\"CONID\" WHERE ch.cross_state",
            CROSS_STATE_REASON.replace('\'', "''")
        ),
        None => String::new(),
    };
    let write_sql = format!(
        "WITH lh AS (\n    \
           INSERT INTO {lh} ({lh_cols})\n    \
           SELECT id, {now}, CASE WHEN inserted THEN 'Inserted' ELSE 'UpdatedNew' END FROM {CHANGES} ORDER BY id\n    \
           RETURNING \"ID\", \"CONID\"\n\
         ), v AS (\n    \
           INSERT INTO {lhv} ({lhv_cols})\n    \
           SELECT lh.\"ID\", f.log_id, ch.old_vals[f.i], ch.vals[f.i], ch.visit_id, ch.app_visit_id\n    \
           FROM lh JOIN {CHANGES} ch ON ch.id = lh.\"CONID\"\n    \
           CROSS JOIN LATERAL unnest('{{{ids}}}'::int8[]) WITH ORDINALITY AS f(log_id, i)\n    \
           WHERE NOT ch.inserted AND ch.old_vals[f.i] IS DISTINCT FROM ch.vals[f.i]{reason}\n    \
           RETURNING 1\n\
         )\n\
         SELECT (SELECT count(*) FROM lh)::int8, (SELECT count(*) FROM v)::int8"
    );
    let row = tx
        .query_one(write_sql.as_str(), &[])
        .await
        .map_err(|e| from_postgres(e, "writing log history"))?;
    Ok(HistoryCounts {
        entries: row.get::<_, i64>(0) as u64,
        values: row.get::<_, i64>(1) as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn visit(id: u128, ssn: &str, provider: u128, state: Option<&str>) -> Visit {
        Visit {
            visit_id: Uuid::from_u128(id),
            ssn: Some(ssn.into()),
            visit_date: NaiveDate::from_ymd_opt(2025, 3, 12).unwrap(),
            provider_id: Uuid::from_u128(provider),
            patient_state: state.map(str::to_string),
            ..Visit::default()
        }
    }

    #[test]
    fn cross_state_pairs_are_the_different_provider_pairs_of_one_key_in_different_states() {
        let visits = [
            visit(1, "123-45-6789", 10, Some("NY")),
            visit(2, " 123-45-6789 ", 20, Some("pennsylvania")),
            visit(3, "123-45-6789", 10, Some("PA")),
            visit(4, "123-45-6789", 30, None),
            visit(5, "999-99-9999", 40, Some("PA")),
            visit(6, "  ", 50, Some("PA")),
        ];
        let mut pairs = cross_state_pairs(&visits);
        pairs.sort();
        let id = Uuid::from_u128;
        // 1 (NY at 10) and 2 (PA at 20): cross-state both ways; 2 and 3 share PA; 1 and 3 share
        // a provider; 4 has no state; 5 and 6 are other (or no) caregivers.
        assert_eq!(pairs, vec![(id(1), id(2)), (id(2), id(1))]);
    }
}
