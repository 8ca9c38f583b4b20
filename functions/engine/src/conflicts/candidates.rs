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

use super::distance::GeoPoint;
use super::settings::trim_ssn;
use super::Visit;
use crate::error::{from_postgres, Result};
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

/// The candidate query over `analytics_schema`, parameters `$1`/`$2` = the
/// inclusive VisitDate window. Ordered by trimmed SSN (byte order) and date.
pub fn candidate_query(analytics_schema: &str) -> String {
    let t = |name: &str| qualified(analytics_schema, name);
    format!(
        r#"WITH address AS (
    SELECT DISTINCT ON (a."Patient Id") a."Patient Id", a."Latitude"::float8 AS latitude,
           a."Longitude"::float8 AS longitude, a."Zip Code"::text AS zip, a."Address State"::text AS state
    FROM {addresses} a
    WHERE a."Primary Address" AND a."Address Type" LIKE '%GPS%'
    ORDER BY a."Patient Id", a."Application Created UTC Timestamp" DESC NULLS LAST, a."Patient Address Id"
)
SELECT f."Visit Id", f."Application Visit Id"::int8, cg."SSN"::text, f."Visit Date"::date, f."Provider Id",
       f."Scheduled Start Time", f."Scheduled End Time", f."Visit Start Time", f."Visit End Time",
       f."Call In GPS Coordinates"::text, f."Call Out GPS Coordinates"::text,
       ad.latitude, ad.longitude, ad.zip, coalesce(f."Is Missed", false),
       ad.state, payer_ad.state, pr."Address State"::text
FROM {visits} f
JOIN {caregivers} cg ON cg."Caregiver Id" = f."Caregiver Id"
JOIN {providers} pr ON pr."Provider Id" = f."Provider Id"
LEFT JOIN address ad ON ad."Patient Id" = f."Provider Patient Id"
LEFT JOIN address payer_ad ON payer_ad."Patient Id" = f."Payer Patient Id"
WHERE f."Visit Date" BETWEEN $1 AND $2
  AND pr."Is Active" AND pr."Is Demo" = false
  AND btrim(cg."SSN", {trim}) <> ''
ORDER BY btrim(cg."SSN", {trim}) COLLATE "C", f."Visit Date""#,
        addresses = t("dimpatientaddress"),
        visits = t("factvisitcallperformance_cr"),
        caregivers = t("dimcaregiver"),
        providers = t("dimprovider"),
        trim = r"E' \t\n\r\x0b\f'",
    )
}

impl<'a, 'c> PgVisitSource<'a, 'c> {
    /// Open the candidate query for `window` (inclusive dates) in `tx`.
    ///
    /// Errors: [`crate::ErrorKind::SchemaMismatch`] when an analytics table or
    /// column is missing (run the migrations / the sync first).
    pub async fn open(tx: &'a Transaction<'c>, analytics_schema: &str, window: (NaiveDate, NaiveDate)) -> Result<Self> {
        let sql = candidate_query(analytics_schema);
        let portal = tx
            .bind(sql.as_str(), &[&window.0, &window.1])
            .await
            .map_err(|e| from_postgres(e, format!("opening the candidate visit query on schema {analytics_schema}")))?;
        Ok(PgVisitSource { tx, portal, carry: Vec::new(), exhausted: false })
    }
}

fn visit_from_row(row: &Row) -> Visit {
    let latitude: Option<f64> = row.get(11);
    let longitude: Option<f64> = row.get(12);
    Visit {
        visit_id: row.get::<_, Uuid>(0),
        app_visit_id: row.get(1),
        ssn: row.get(2),
        visit_date: row.get(3),
        provider_id: row.get(4),
        scheduled_start: row.get::<_, Option<DateTime<Utc>>>(5),
        scheduled_end: row.get(6),
        visit_start: row.get(7),
        visit_end: row.get(8),
        call_in_gps: row.get(9),
        call_out_gps: row.get(10),
        patient_location: latitude.zip(longitude).and_then(|(lat, lon)| GeoPoint::new(lat, lon)),
        patient_zip: row.get(13),
        is_missed: row.get(14),
        patient_state: row.get(15),
        payer_patient_state: row.get(16),
        provider_state: row.get(17),
    }
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
            batch.extend(rows.iter().map(visit_from_row));
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
