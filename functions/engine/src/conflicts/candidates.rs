//! Where candidate visits come from: the [`VisitSource`] seam and its
//! PostgreSQL implementation over the synced analytics mirror.
//!
//! The source applies the candidate rules that need the dimensions
//! (docs/conflicts.md §4.1): the date window, a caregiver with an SSN, an
//! active non-demo provider, and attaches the primary GPS address (per
//! patient the `Primary Address` row whose `Address Type` contains `GPS`,
//! latest `Application Created UTC Timestamp` first) of the provider patient
//! (point, ZIP, state) and of the payer patient (state), plus the provider's
//! `Address State` (the cross-state fallback, docs/conflicts.md §D6). It does
//! **not** drop missed visits: they still refresh existing pairs ([SF-UPD]);
//! [`super::detect`] keeps them from creating new ones. SSN trimming,
//! exclusions and the window are (re)checked by [`super::detect`], so every
//! source behaves the same.

use chrono::{DateTime, NaiveDate, Utc};
use tokio_postgres::{Portal, Row, Transaction};
use uuid::Uuid;

use super::columns::{ColumnTypes, Want};
use super::distance::GeoPoint;
use super::settings::trim_ssn;
use super::Visit;
use crate::error::{from_postgres, Error, Result};
use crate::sink::qualified;

/// Candidates fetched per round trip.
pub const BATCH_ROWS: i32 = 20_000;

/// A stream of candidate visits, ordered so that each `(trimmed SSN,
/// VisitDate)` key arrives complete within one batch.
#[allow(async_fn_in_trait)]
pub trait VisitSource {
    /// The next batch; `None` when the source is exhausted. A key is never
    /// split between two batches (a batch may be larger than the fetch size
    /// when one key is).
    async fn next_batch(&mut self) -> Result<Option<Vec<Visit>>>;
}

/// Candidates read from the analytics mirror in PostgreSQL, streamed through
/// a portal of the run's transaction (bounded memory).
pub struct PgVisitSource<'a, 'c> {
    tx: &'a Transaction<'c>,
    portal: Portal,
    carry: Vec<Visit>,
    exhausted: bool,
}

/// `work_mem` for the candidate query, set with `SET LOCAL` (transaction
/// scope): the sorts and hashes of one read of the whole window should not
/// depend on the server default (docs/conflicts.md §14).
pub const CANDIDATE_WORK_MEM: &str = "256MB";

/// The candidate query over the analytics schema described by `types`,
/// parameters `$1`/`$2` = the inclusive VisitDate window. Ordered by trimmed
/// SSN (byte order) and date.
///
/// Every column is read through [`ColumnTypes::expr`], so a mirror whose ids
/// are `text` or whose `"Visit Date"` is a `timestamptz` gives the same
/// result (docs/conflicts.md §2.4). Predicates are [SF]'s, literally
/// (docs/conflicts.md §10): `TRIM` removes spaces only, `"Is Active" = TRUE AND
/// "Is Demo" = FALSE` fails on NULL, and `"Is Missed"` is passed on as is
/// (NULL stays NULL, docs/conflicts.md §4.1.5).
///
/// Shape (docs/conflicts.md §14): the primary GPS address per patient is
/// computed once; visits without a payer patient (a large NULL share in
/// practice) never take part in the payer-address join, so no hash table is
/// ever built over NULL keys, which all land in one bucket and spill.
///
/// Errors: [`crate::ErrorKind::SchemaMismatch`] for a missing column or a type
/// that cannot hold the expected value.
///
/// `keyed`: read only the candidates of the touched keys in
/// [`super::incremental::KEYS`] (an incremental run, docs/conflicts.md §D1):
/// a set-based join on the trimmed SSN and the date, so the read is
/// proportional to the touched keys.
pub fn candidate_query(types: &ColumnTypes, keyed: bool) -> Result<String> {
    use Want::*;
    let schema = types.schema().to_string();
    let t = |name: &str| qualified(&schema, name);
    let (fa, ca, pa, aa) = ("factvisitcallperformance_cr", "dimcaregiver", "dimprovider", "dimpatientaddress");
    let f = |col: &str, want: Want| types.expr("f", fa, col, want);
    let ssn = format!("btrim({}, ' ')", types.expr("cg", ca, "SSN", Text)?);
    Ok(format!(
        r#"WITH address AS (
    SELECT DISTINCT ON (a.patient_id) a.patient_id, a.latitude, a.longitude, a.zip, a.state
    FROM (SELECT {a_patient} AS patient_id, {a_lat} AS latitude, {a_lon} AS longitude, {a_zip} AS zip, {a_state} AS state,
                 {a_created} AS created, {a_id} AS address_id
          FROM {addresses} a
          WHERE {a_primary} AND {a_type} LIKE '%GPS%'{address_filter}) a
    WHERE a.patient_id IS NOT NULL
    ORDER BY a.patient_id, a.created DESC NULLS LAST, a.address_id
), visits AS (
    SELECT {f_id} AS visit_id, {f_app} AS app_visit_id, {ssn} COLLATE "C" AS ssn, {f_date} AS visit_date, {f_provider} AS provider_id,
           {f_ss} AS sch_start, {f_se} AS sch_end, {f_vs} AS visit_start, {f_ve} AS visit_end,
           {f_in} AS call_in, {f_out} AS call_out, {f_missed} AS is_missed, {pr_state} AS provider_state,
           {f_pp} AS provider_patient_id, {f_pa} AS payer_patient_id
    FROM {visits} f
    JOIN {caregivers} cg ON {cg_id} = {f_cg}
    JOIN {providers} pr ON {pr_id} = {f_provider}{key_join}
    WHERE {f_date} BETWEEN $1::date AND $2::date
      AND {pr_active} = true AND {pr_demo} = false
      AND {ssn} <> ''
), with_payer AS (
    SELECT v.*, payer_ad.state AS payer_state FROM visits v
    LEFT JOIN address payer_ad ON payer_ad.patient_id = v.payer_patient_id
    WHERE v.payer_patient_id IS NOT NULL
), without_payer AS (
    SELECT v.*, NULL::text AS payer_state FROM visits v WHERE v.payer_patient_id IS NULL
), candidates AS (
    SELECT * FROM with_payer UNION ALL SELECT * FROM without_payer
)
SELECT c.visit_id, c.app_visit_id, c.ssn, c.visit_date, c.provider_id, c.sch_start, c.sch_end, c.visit_start, c.visit_end,
       c.call_in, c.call_out, ad.latitude, ad.longitude, ad.zip, c.is_missed, ad.state, c.payer_state, c.provider_state
FROM candidates c
LEFT JOIN address ad ON ad.patient_id = c.provider_patient_id
ORDER BY c.ssn, c.visit_date"#,
        // Incremental: the primary addresses of the touched visits' patients only, not of every patient.
        address_filter = if keyed {
            format!(
                "\n            AND {a_patient} IN (SELECT v.patient_id FROM {keys} k JOIN {caregivers} cg ON {ssn} = k.ssn \
                 JOIN {visits} f ON {f_cg} = {cg_id} AND {f_date} = k.visit_date \
                 CROSS JOIN LATERAL (VALUES ({f_pp}), ({f_pa})) v(patient_id))",
                a_patient = types.expr("a", aa, "Patient Id", Uuid)?,
                keys = super::incremental::KEYS,
                caregivers = t(ca),
                visits = t(fa),
                f_cg = f("Caregiver Id", Uuid)?,
                cg_id = types.expr("cg", ca, "Caregiver Id", Uuid)?,
                f_date = f("Visit Date", Date)?,
                f_pp = f("Provider Patient Id", Uuid)?,
                f_pa = f("Payer Patient Id", Uuid)?,
            )
        } else {
            String::new()
        },
        key_join = if keyed {
            format!("\n    JOIN {} k ON k.ssn = {ssn} AND k.visit_date = {}", super::incremental::KEYS, f("Visit Date", Date)?)
        } else {
            String::new()
        },
        addresses = t(aa),
        visits = t(fa),
        caregivers = t(ca),
        providers = t(pa),
        a_patient = types.expr("a", aa, "Patient Id", Uuid)?,
        a_lat = types.expr("a", aa, "Latitude", Float8)?,
        a_lon = types.expr("a", aa, "Longitude", Float8)?,
        a_zip = types.expr("a", aa, "Zip Code", Text)?,
        a_state = types.expr("a", aa, "Address State", Text)?,
        a_created = types.expr("a", aa, "Application Created UTC Timestamp", Timestamptz)?,
        a_id = types.expr("a", aa, "Patient Address Id", Text)?,
        a_primary = types.expr("a", aa, "Primary Address", Bool)?,
        a_type = types.expr("a", aa, "Address Type", Text)?,
        f_id = f("Visit Id", Uuid)?,
        f_app = f("Application Visit Id", Int8)?,
        f_date = f("Visit Date", Date)?,
        f_provider = f("Provider Id", Uuid)?,
        f_ss = f("Scheduled Start Time", Timestamptz)?,
        f_se = f("Scheduled End Time", Timestamptz)?,
        f_vs = f("Visit Start Time", Timestamptz)?,
        f_ve = f("Visit End Time", Timestamptz)?,
        f_in = f("Call In GPS Coordinates", Text)?,
        f_out = f("Call Out GPS Coordinates", Text)?,
        f_missed = f("Is Missed", Bool)?,
        f_pp = f("Provider Patient Id", Uuid)?,
        f_pa = f("Payer Patient Id", Uuid)?,
        f_cg = f("Caregiver Id", Uuid)?,
        cg_id = types.expr("cg", ca, "Caregiver Id", Uuid)?,
        pr_id = types.expr("pr", pa, "Provider Id", Uuid)?,
        pr_state = types.expr("pr", pa, "Address State", Text)?,
        pr_active = types.expr("pr", pa, "Is Active", Bool)?,
        pr_demo = types.expr("pr", pa, "Is Demo", Bool)?,
    ))
}

impl<'a, 'c> PgVisitSource<'a, 'c> {
    /// Open the candidate query for `window` (inclusive dates) in `tx`, over
    /// the analytics schema whose column types are `types`.
    ///
    /// Sets `work_mem` for the transaction ([`CANDIDATE_WORK_MEM`]) and
    /// turns PostgreSQL's JIT compilation off for it: the join estimates over
    /// the address CTE are far above the real row counts, which pushed the
    /// candidate query over `jit_above_cost` and spent about 0.85 s of 1.4 s
    /// compiling at 100 000 visits (docs/conflicts.md §14).
    /// Errors: [`crate::ErrorKind::SchemaMismatch`] when an analytics table or
    /// column is missing or has an unusable type (run the migrations / the sync first).
    /// `keyed`: only the keys of [`super::incremental::KEYS`] (see [`candidate_query`]).
    pub async fn open(tx: &'a Transaction<'c>, types: &ColumnTypes, window: (NaiveDate, NaiveDate), keyed: bool) -> Result<Self> {
        let sql = candidate_query(types, keyed)?;
        tx.batch_execute(&format!("SET LOCAL work_mem = '{CANDIDATE_WORK_MEM}'; SET LOCAL jit = off"))
            .await
            .map_err(|e| from_postgres(e, "setting work_mem for the candidate query"))?;
        let portal = tx
            .bind(sql.as_str(), &[&window.0, &window.1])
            .await
            .map_err(|e| from_postgres(e, format!("opening the candidate visit query on schema {}", types.schema())))?;
        Ok(PgVisitSource { tx, portal, carry: Vec::new(), exhausted: false })
    }
}

/// Decode one candidate row. The query casts every column to its expected
/// type, so a failure here is a bug in thaw, reported as an error, never a panic.
fn visit_from_row(row: &Row) -> Result<Visit> {
    fn get<'r, T: tokio_postgres::types::FromSql<'r>>(row: &'r Row, i: usize) -> Result<T> {
        row.try_get(i).map_err(|e| {
            Error::internal(format!("decoding column {i} ({}) of the candidate query: {e}", row.columns()[i].name()))
        })
    }
    let latitude: Option<f64> = get(row, 11)?;
    let longitude: Option<f64> = get(row, 12)?;
    Ok(Visit {
        visit_id: get::<Option<Uuid>>(row, 0)?.ok_or_else(|| Error::new(crate::ErrorKind::ChunkFailed, "a candidate visit has a NULL or blank \"Visit Id\"; fix the row in factvisitcallperformance_cr"))?,
        app_visit_id: get(row, 1)?,
        ssn: get(row, 2)?,
        visit_date: get::<Option<NaiveDate>>(row, 3)?.ok_or_else(|| Error::internal("candidate visit without a Visit Date"))?,
        provider_id: get::<Option<Uuid>>(row, 4)?.ok_or_else(|| Error::internal("candidate visit without a Provider Id"))?,
        scheduled_start: get::<Option<DateTime<Utc>>>(row, 5)?,
        scheduled_end: get(row, 6)?,
        visit_start: get(row, 7)?,
        visit_end: get(row, 8)?,
        call_in_gps: get(row, 9)?,
        call_out_gps: get(row, 10)?,
        patient_location: latitude.zip(longitude).and_then(|(lat, lon)| GeoPoint::new(lat, lon)),
        patient_zip: get(row, 13)?,
        is_missed: get(row, 14)?,
        patient_state: get(row, 15)?,
        payer_patient_state: get(row, 16)?,
        provider_state: get(row, 17)?,
    })
}

fn key(v: &Visit) -> (&str, NaiveDate) {
    (trim_ssn(v.ssn.as_deref().unwrap_or("")), v.visit_date)
}

impl VisitSource for PgVisitSource<'_, '_> {
    async fn next_batch(&mut self) -> Result<Option<Vec<Visit>>> {
        loop {
            if self.exhausted {
                let rest = std::mem::take(&mut self.carry);
                return Ok((!rest.is_empty()).then_some(rest));
            }
            let rows = self
                .tx
                .query_portal(&self.portal, BATCH_ROWS)
                .await
                .map_err(|e| from_postgres(e, "fetching candidate visits"))?;
            self.exhausted = rows.len() < BATCH_ROWS as usize;
            let mut batch = std::mem::take(&mut self.carry);
            for row in &rows {
                batch.push(visit_from_row(row)?);
            }
            if self.exhausted {
                return Ok((!batch.is_empty()).then_some(batch));
            }
            // Hold back the last key: its visits may continue in the next fetch.
            let last = batch.last().map(|v| (key(v).0.to_string(), key(v).1));
            let split = match &last {
                Some((ssn, date)) => batch.iter().rposition(|v| key(v) != (ssn.as_str(), *date)).map_or(0, |i| i + 1),
                None => 0,
            };
            self.carry = batch.split_off(split);
            if !batch.is_empty() {
                return Ok(Some(batch));
            }
        }
    }
}
