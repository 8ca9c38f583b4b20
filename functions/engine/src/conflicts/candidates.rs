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

use std::pin::Pin;

use chrono::{DateTime, NaiveDate, Utc};
use futures::StreamExt;
use tokio_postgres::binary_copy::{BinaryCopyOutRow, BinaryCopyOutStream};
use tokio_postgres::types::{FromSql, Type};
use tokio_postgres::Transaction;
use uuid::Uuid;

use super::columns::{ColumnTypes, Want};
use super::distance::GeoPoint;
use super::settings::trim_ssn;
use super::Visit;
use crate::error::{from_postgres, Error, Result};
use crate::sink::qualified;

/// Candidates handed to detection at once (rows; a batch ends at the first
/// key boundary after this many rows, so one key is never split).
pub const BATCH_ROWS: usize = 20_000;

/// A stream of candidate visits, ordered so that each `(trimmed SSN,
/// VisitDate)` key arrives complete within one batch.
///
/// A source may leave out the keys whose candidates all belong to one
/// provider: no rule pairs two visits of the same provider
/// (docs/conflicts.md §14 "Keys that cannot pair"), so they can neither
/// create nor refresh a pair. It still counts them in
/// [`VisitSource::visits_considered`].
#[allow(async_fn_in_trait)]
pub trait VisitSource {
    /// The next batch; `None` when the source is exhausted. A key is never
    /// split between two batches (a batch may be larger than the fetch size
    /// when one key is).
    async fn next_batch(&mut self) -> Result<Option<Vec<Visit>>>;

    /// The candidate visits the source considered so far (visits), those
    /// left out as unable to pair included; complete once
    /// [`VisitSource::next_batch`] has returned `None`.
    fn visits_considered(&self) -> u64;
}

/// Candidates read from the analytics mirror in PostgreSQL as one binary
/// `COPY (candidate query) TO STDOUT` stream of the run's transaction,
/// decoded row by row and cut into whole-key batches ([`KeyBatcher`]):
/// PostgreSQL keeps producing rows while thaw detects the previous batch, and
/// memory holds one batch (docs/conflicts.md §14).
///
/// While the stream is open the connection carries nothing else: the run
/// keeps what it derives from the batches (pairs) until the source is
/// exhausted or dropped.
pub struct PgVisitSource {
    rows: Pin<Box<BinaryCopyOutStream>>,
    batcher: KeyBatcher,
    ended: bool,
    /// Rows of the COPY stream decoded so far.
    rows_read: u64,
    /// The candidate count the full read's last row carries (`None` for a
    /// keyed read, whose stream is every candidate).
    candidates: Option<u64>,
}

/// `work_mem` for the candidate query, set with `SET LOCAL` (transaction
/// scope): the sort of the window by key should not depend on the server
/// default, and stays in memory up to about 5 million candidates (it takes
/// about 200 bytes per candidate: 99 MB for 495 255 visits, measured with
/// `EXPLAIN (ANALYZE)`); beyond that PostgreSQL sorts on disk, slower but
/// the same result (docs/conflicts.md §14). Only what a sort or hash
/// actually holds is allocated.
pub const CANDIDATE_WORK_MEM: &str = "1GB";

/// Planner costs of parallel query for the full candidate read, set with
/// `SET LOCAL` before it and put back by [`end_full_read`] after it.
///
/// With PostgreSQL's default costs (`parallel_setup_cost = 1000`,
/// `parallel_tuple_cost = 0.1` per row handed from a worker to the leader)
/// the planner reads and sorts the whole window in one process: handing 2 M
/// rows over is costed at 200 000 units, more than the sort it would split.
/// Measured, the handing over is cheap next to the sort: with these costs the
/// plan is a parallel scan and hash joins in the workers, each sorting its
/// share, and a Gather Merge feeding the window functions, 1.4–1.5× faster at
/// 2 M visits on two cores (9.5 s → 6.3–6.9 s, binary COPY to `/dev/null`,
/// interleaved runs; docs/conflicts.md §14). The result and its order are
/// the same (the window is computed over the merged sort). A server whose
/// `max_parallel_workers_per_gather` is 0 simply plans it serially.
/// Only the full read: a keyed (incremental) read touches a few rows, for
/// which starting workers costs more than it saves.
pub const FULL_READ_PARALLEL_COSTS: &str = "SET LOCAL parallel_setup_cost = 0; SET LOCAL parallel_tuple_cost = 0.001";

/// Put back the planner costs [`FULL_READ_PARALLEL_COSTS`] changed (`SET
/// LOCAL … TO DEFAULT`: the values the connection started with, from the
/// server, database or role settings), so that the
/// night's later statements are planned as before. Call it once the
/// candidate COPY has ended (the connection carries one COPY at a time).
/// Errors: a failed statement (kind from its SQLSTATE).
pub async fn end_full_read(tx: &Transaction<'_>) -> Result<()> {
    tx.batch_execute("SET LOCAL parallel_setup_cost TO DEFAULT; SET LOCAL parallel_tuple_cost TO DEFAULT")
        .await
        .map_err(|e| from_postgres(e, "putting back the planner's parallel costs after the candidate read"))
}

/// The candidate query over the analytics schema described by `types`,
/// parameters `$1`/`$2` = the inclusive VisitDate window. Ordered by trimmed
/// SSN (byte order) and date. Reads the primary GPS addresses from the
/// temporary table [`ADDRESSES`] ([`address_setup`] creates it).
///
/// Every column is read through [`ColumnTypes::expr`], so a mirror whose ids
/// are `text` or whose `"Visit Date"` is a `timestamptz` gives the same
/// result (docs/conflicts.md §2.4). Predicates are \[SF\]'s, literally
/// (docs/conflicts.md §10): `TRIM` removes spaces only, `"Is Active" = TRUE AND
/// "Is Demo" = FALSE` fails on NULL, and `"Is Missed"` is passed on as is
/// (NULL stays NULL, docs/conflicts.md §4.1.5).
///
/// Shape (docs/conflicts.md §14): one scan of the visits, hash-joined with
/// the caregivers and the providers, one sort by (key, provider, visit) that
/// serves two window functions: the key's lowest and highest provider and a
/// running count of the candidates. Only the visits of keys with two or
/// more providers (the only keys that can pair), the window's last row
/// (which carries the count of every candidate) and any row thaw cannot
/// decode (a NULL id, a time that is no instant: the night fails on it as
/// an incremental read of its key would) go on to the two joins with
/// the analysed address table (hash tables over the small side, which has
/// no NULL keys: a visit without a payer patient just finds no address) and
/// a final sort of those few rows. About 4 % of the visits of the
/// state-scale benchmark survive, so PostgreSQL formats, and thaw decodes,
/// a twenty-fifth of the rows (docs/benchmarks.md §5).
///
/// Row shape: [`CANDIDATE_TYPES`]; column 18 (`candidates`) is NULL except
/// on the last row of a full read, column 19 (`can_pair`) is false only on
/// that last row when its key has one provider. A keyed read returns every
/// candidate of the touched keys with `candidates` NULL and `can_pair` true.
///
/// Errors: [`crate::ErrorKind::SchemaMismatch`] for a missing column or a type
/// that cannot hold the expected value.
///
/// `keyed`: read only the candidates of the touched keys (an incremental
/// run, docs/conflicts.md §D1) from [`TOUCHED_VISITS`], which
/// [`touched_visits_setup`] fills from [`super::incremental::KEYS`] through
/// the indexes, so the read is proportional to the touched keys.
pub fn candidate_query(types: &ColumnTypes, keyed: bool) -> Result<String> {
    query_with_window(types, keyed, "$1::date", "$2::date")
}

/// The binary `COPY` of [`candidate_query`] for the inclusive `window`
/// (written as date literals: `COPY` takes no parameters).
pub fn candidate_copy(types: &ColumnTypes, keyed: bool, window: (NaiveDate, NaiveDate)) -> Result<String> {
    let literal = |d: NaiveDate| format!("'{}'::date", d.format("%Y-%m-%d"));
    let query = query_with_window(types, keyed, &literal(window.0), &literal(window.1))?;
    Ok(format!("COPY ({query}) TO STDOUT (FORMAT binary)"))
}

/// The column types of the candidate query, in order (the binary COPY's row shape).
pub const CANDIDATE_TYPES: [Type; 20] = [
    Type::UUID,
    Type::INT8,
    Type::TEXT,
    Type::DATE,
    Type::UUID,
    Type::TIMESTAMPTZ,
    Type::TIMESTAMPTZ,
    Type::TIMESTAMPTZ,
    Type::TIMESTAMPTZ,
    Type::TEXT,
    Type::TEXT,
    Type::FLOAT8,
    Type::FLOAT8,
    Type::TEXT,
    Type::BOOL,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::INT8,
    Type::BOOL,
];

/// The temporary table of primary GPS addresses, one row per patient
/// (`patient_id uuid`, `latitude`, `longitude` float8, `zip`, `state` text),
/// dropped at commit.
pub const ADDRESSES: &str = "pg_temp.thaw_conflict_address";

/// The primary GPS address per patient (docs/conflicts.md §4.1): the
/// `Primary Address` row whose `Address Type` contains `GPS`, latest
/// `Application Created UTC Timestamp` first, then the smallest address id.
/// `keyed`: only the provider and payer patients of the touched visits in
/// [`TOUCHED_VISITS`] ([`touched_visits_setup`] fills it), each looked up
/// through the patient index (a lateral probe per patient, so the plan
/// cannot turn into a scan of every address, docs/conflicts.md §14).
/// Errors: [`crate::ErrorKind::SchemaMismatch`] as [`candidate_query`].
pub fn address_query(types: &ColumnTypes, keyed: bool) -> Result<String> {
    use Want::*;
    let aa = "dimpatientaddress";
    let columns = format!(
        "{a_patient} AS patient_id, {a_lat} AS latitude, {a_lon} AS longitude, {a_zip} AS zip, {a_state} AS state,\n                 {a_created} AS created, {a_id} AS address_id",
        a_patient = types.expr("a", aa, "Patient Id", Uuid)?,
        a_lat = types.expr("a", aa, "Latitude", Float8)?,
        a_lon = types.expr("a", aa, "Longitude", Float8)?,
        a_zip = types.expr("a", aa, "Zip Code", Text)?,
        a_state = types.expr("a", aa, "Address State", Text)?,
        a_created = types.expr("a", aa, "Application Created UTC Timestamp", Timestamptz)?,
        a_id = types.expr("a", aa, "Patient Address Id", Text)?,
    );
    let primary_gps = format!(
        "{a_primary} AND {a_type} LIKE '%GPS%'",
        a_primary = types.expr("a", aa, "Primary Address", Bool)?,
        a_type = types.expr("a", aa, "Address Type", Text)?,
    );
    let addresses = qualified(types.schema(), aa);
    let source = if keyed {
        // OFFSET 0 keeps the lateral subquery a parameterised index probe per patient.
        format!(
            "SELECT a.* FROM (SELECT DISTINCT v.patient_id FROM {TOUCHED_VISITS} t\n          \
             CROSS JOIN LATERAL (VALUES (t.provider_patient_id), (t.payer_patient_id)) v(patient_id) WHERE v.patient_id IS NOT NULL) p\n          \
             CROSS JOIN LATERAL (SELECT {columns}\n          FROM {addresses} a WHERE {a_patient} = p.patient_id AND {primary_gps} OFFSET 0) a",
            a_patient = types.expr("a", aa, "Patient Id", Uuid)?,
        )
    } else {
        format!("SELECT {columns}\n          FROM {addresses} a\n          WHERE {primary_gps}")
    };
    Ok(format!(
        r#"SELECT DISTINCT ON (a.patient_id) a.patient_id, a.latitude, a.longitude, a.zip, a.state
    FROM ({source}) a
    WHERE a.patient_id IS NOT NULL
    ORDER BY a.patient_id, a.created DESC NULLS LAST, a.address_id"#
    ))
}

/// The temporary table of the visits of the touched keys of an incremental
/// run (docs/conflicts.md §D1, §14): the columns of the visits the candidate
/// read needs, already cast (`visit_id`, `app_visit_id`, `ssn` trimmed,
/// `visit_date`, `provider_id`, the four instants, the two GPS strings,
/// `is_missed`, `provider_patient_id`, `payer_patient_id`), one row per
/// visit, dropped at commit. Read once from the mirror and shared by the
/// keyed address statement and the keyed candidate query.
pub const TOUCHED_VISITS: &str = "pg_temp.thaw_conflict_touched_visits";

/// Whether the keyed read reaches the touched visits through the indexes
/// (a lateral probe per key: trimmed-SSN index on the caregivers, then
/// `("Caregiver Id", "Visit Date")` on the visits) rather than by one hash
/// join against a scan of the visits: while the touched keys are at most a
/// fortieth of the visits' row estimate (`visits_estimate`,
/// `pg_class.reltuples`, `-1` or `0` when never analysed). Measured with
/// `EXPLAIN (ANALYZE)` at 500 000 visits (docs/benchmarks.md §5): the
/// probes cost about 35 µs per key (491 keys 15–20 ms, 4 949 keys
/// 133–188 ms), the scan and hash join about 0.4–0.5 s whatever the keys
/// (4 949 keys 391–434 ms, 25 047 keys 493–528 ms against 871–955 ms of
/// probes): they cross near 13 000 keys, a fortieth of the visits.
pub fn keyed_read_uses_indexes(keys: u64, visits_estimate: f64) -> bool {
    visits_estimate <= 0.0 || keys as f64 * 40.0 <= visits_estimate
}

/// Create and `ANALYZE` [`TOUCHED_VISITS`] from [`touched_visits_query`].
/// Errors: [`crate::ErrorKind::SchemaMismatch`] as [`candidate_query`].
pub fn touched_visits_setup(types: &ColumnTypes, by_index: bool) -> Result<String> {
    Ok(format!(
        "CREATE TEMP TABLE thaw_conflict_touched_visits ON COMMIT DROP AS\n{};\nANALYZE {TOUCHED_VISITS}",
        touched_visits_query(types, by_index)?
    ))
}

/// The visit columns the candidate reads take from the visit fact table
/// (alias `f`), each cast to the type detection wants ([`ColumnTypes::expr`]);
/// shared by [`touched_visits_query`] and [`candidate_query`].
struct VisitExprs {
    f_id: String,
    f_app: String,
    f_date: String,
    f_provider: String,
    f_ss: String,
    f_se: String,
    f_vs: String,
    f_ve: String,
    f_in: String,
    f_out: String,
    f_missed: String,
    f_pp: String,
    f_pa: String,
    f_cg: String,
}

impl VisitExprs {
    /// Errors: [`crate::ErrorKind::SchemaMismatch`] as [`candidate_query`].
    fn new(types: &ColumnTypes) -> Result<Self> {
        use Want::*;
        let f = |col: &str, want: Want| types.expr("f", "factvisitcallperformance_cr", col, want);
        Ok(VisitExprs {
            f_id: f("Visit Id", Uuid)?,
            f_app: f("Application Visit Id", Int8)?,
            f_date: f("Visit Date", Date)?,
            f_provider: f("Provider Id", Uuid)?,
            f_ss: f("Scheduled Start Time", Timestamptz)?,
            f_se: f("Scheduled End Time", Timestamptz)?,
            f_vs: f("Visit Start Time", Timestamptz)?,
            f_ve: f("Visit End Time", Timestamptz)?,
            f_in: f("Call In GPS Coordinates", Text)?,
            f_out: f("Call Out GPS Coordinates", Text)?,
            f_missed: f("Is Missed", Bool)?,
            f_pp: f("Provider Patient Id", Uuid)?,
            f_pa: f("Payer Patient Id", Uuid)?,
            f_cg: f("Caregiver Id", Uuid)?,
        })
    }
}

/// The visits of the keys in [`super::incremental::KEYS`] with the columns
/// of [`TOUCHED_VISITS`]. `by_index`: one lateral index probe per key and
/// caregiver ([`keyed_read_uses_indexes`]), else a plain join the planner
/// may hash. Errors: [`crate::ErrorKind::SchemaMismatch`] as [`candidate_query`].
pub fn touched_visits_query(types: &ColumnTypes, by_index: bool) -> Result<String> {
    use Want::*;
    let (fa, ca) = ("factvisitcallperformance_cr", "dimcaregiver");
    let ssn = format!("btrim({}, ' ')", types.expr("cg", ca, "SSN", Text)?);
    let VisitExprs { f_id, f_app, f_date, f_provider, f_ss, f_se, f_vs, f_ve, f_in, f_out, f_missed, f_pp, f_pa, f_cg } = VisitExprs::new(types)?;
    let columns = format!(
        "{f_id} AS visit_id, {f_app} AS app_visit_id, {f_date} AS visit_date, {f_provider} AS provider_id,\n       \
         {f_ss} AS sch_start, {f_se} AS sch_end, {f_vs} AS visit_start, {f_ve} AS visit_end, {f_in} AS call_in, {f_out} AS call_out,\n       \
         {f_missed} AS is_missed, {f_pp} AS provider_patient_id, {f_pa} AS payer_patient_id"
    );
    let (caregivers, visits, keys) = (qualified(types.schema(), ca), qualified(types.schema(), fa), super::incremental::KEYS);
    let cg_id = types.expr("cg", ca, "Caregiver Id", Uuid)?;
    let select = if by_index {
        // OFFSET 0 keeps each lateral subquery a parameterised index probe.
        format!(
            "SELECT k.ssn, f.* FROM {keys} k\n\
             CROSS JOIN LATERAL (SELECT {cg_id} AS caregiver_id FROM {caregivers} cg WHERE {ssn} = k.ssn OFFSET 0) cg\n\
             CROSS JOIN LATERAL (SELECT {columns}\n    FROM {visits} f WHERE {f_cg} = cg.caregiver_id AND {f_date} = k.visit_date OFFSET 0) f"
        )
    } else {
        format!(
            "SELECT k.ssn, {columns}\nFROM {keys} k\nJOIN {caregivers} cg ON {ssn} = k.ssn\nJOIN {visits} f ON {f_cg} = {cg_id} AND {f_date} = k.visit_date"
        )
    };
    Ok(select)
}

/// Create and `ANALYZE` [`ADDRESSES`] from [`address_query`]: analysed, the
/// planner knows it holds one row per patient, so the candidate query joins
/// it by hash; as a CTE its join estimates were thousands of times the real
/// rows and the plan sorted the whole window three times (docs/conflicts.md §14).
pub fn address_setup(types: &ColumnTypes, keyed: bool) -> Result<String> {
    Ok(format!(
        "CREATE TEMP TABLE thaw_conflict_address ON COMMIT DROP AS\n{};\nANALYZE {ADDRESSES}",
        address_query(types, keyed)?
    ))
}

/// [`candidate_query`] with the window bounds as given SQL expressions.
fn query_with_window(types: &ColumnTypes, keyed: bool, from: &str, to: &str) -> Result<String> {
    use Want::*;
    let schema = types.schema().to_string();
    let t = |name: &str| qualified(&schema, name);
    let (fa, ca, pa) = ("factvisitcallperformance_cr", "dimcaregiver", "dimprovider");
    let ssn = format!("btrim({}, ' ')", types.expr("cg", ca, "SSN", Text)?);
    if keyed {
        // The touched visits were read once into TOUCHED_VISITS (already cast).
        return Ok(format!(
            r#"SELECT t.visit_id, t.app_visit_id, t.ssn COLLATE "C" AS ssn, t.visit_date, t.provider_id,
       t.sch_start, t.sch_end, t.visit_start, t.visit_end,
       t.call_in, t.call_out, ad.latitude, ad.longitude, ad.zip, t.is_missed,
       ad.state, payer_ad.state AS payer_state, {pr_state} AS provider_state, NULL::int8 AS candidates, true AS can_pair
FROM {TOUCHED_VISITS} t
JOIN {providers} pr ON {pr_id} = t.provider_id
LEFT JOIN {ADDRESSES} ad ON ad.patient_id = t.provider_patient_id
LEFT JOIN {ADDRESSES} payer_ad ON payer_ad.patient_id = t.payer_patient_id
WHERE t.visit_date BETWEEN {from} AND {to}
  AND {pr_active} = true AND {pr_demo} = false
  AND t.ssn <> ''
ORDER BY 3, 4"#,
            providers = t(pa),
            pr_id = types.expr("pr", pa, "Provider Id", Uuid)?,
            pr_state = types.expr("pr", pa, "Address State", Text)?,
            pr_active = types.expr("pr", pa, "Is Active", Bool)?,
            pr_demo = types.expr("pr", pa, "Is Demo", Bool)?,
        ));
    }
    let VisitExprs { f_id, f_app, f_date, f_provider, f_ss, f_se, f_vs, f_ve, f_in, f_out, f_missed, f_pp, f_pa, f_cg } = VisitExprs::new(types)?;
    // docs/conflicts.md §14 "Keys that cannot pair": the window is sorted
    // once by (key, provider, visit); `lowest`/`highest` are the key's first
    // and last provider, `seen` counts the candidates so far and the last
    // row carries the total. Addresses are joined to the survivors only.
    Ok(format!(
        r#"SELECT c.visit_id, c.app_visit_id, c.ssn, c.visit_date, c.provider_id, c.sch_start, c.sch_end, c.visit_start, c.visit_end,
       c.call_in, c.call_out, ad.latitude, ad.longitude, ad.zip, c.is_missed,
       ad.state, payer_ad.state AS payer_state, c.provider_state,
       CASE WHEN c.last THEN c.seen END AS candidates, c.lowest <> c.highest AS can_pair
FROM (SELECT n.*, first_value(n.provider_id) OVER k AS lowest, last_value(n.provider_id) OVER k AS highest,
             row_number() OVER w AS seen, lead(true) OVER w IS NULL AS last
      FROM (SELECT {f_id} AS visit_id, {f_app} AS app_visit_id, {ssn} COLLATE "C" AS ssn, {f_date} AS visit_date, {f_provider} AS provider_id,
                   {f_ss} AS sch_start, {f_se} AS sch_end, {f_vs} AS visit_start, {f_ve} AS visit_end,
                   {f_in} AS call_in, {f_out} AS call_out, {f_missed} AS is_missed,
                   {f_pp} AS provider_patient_id, {f_pa} AS payer_patient_id, {pr_state} AS provider_state
            FROM {visits} f
            JOIN {caregivers} cg ON {cg_id} = {f_cg}
            JOIN {providers} pr ON {pr_id} = {f_provider}
            WHERE {f_date} BETWEEN {from} AND {to}
              AND {pr_active} = true AND {pr_demo} = false
              AND {ssn} <> '') n
      WINDOW w AS (ORDER BY n.ssn, n.visit_date, n.provider_id, n.visit_id),
             k AS (PARTITION BY n.ssn, n.visit_date ORDER BY n.provider_id ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)) c
LEFT JOIN {ADDRESSES} ad ON ad.patient_id = c.provider_patient_id
LEFT JOIN {ADDRESSES} payer_ad ON payer_ad.patient_id = c.payer_patient_id
WHERE c.lowest <> c.highest OR c.last OR {undecodable}
ORDER BY c.ssn, c.visit_date, c.provider_id, c.visit_id"#,
        undecodable = undecodable("c"),
        visits = t(fa),
        caregivers = t(ca),
        providers = t(pa),
        cg_id = types.expr("cg", ca, "Caregiver Id", Uuid)?,
        pr_id = types.expr("pr", pa, "Provider Id", Uuid)?,
        pr_state = types.expr("pr", pa, "Address State", Text)?,
        pr_active = types.expr("pr", pa, "Is Active", Bool)?,
        pr_demo = types.expr("pr", pa, "Is Demo", Bool)?,
    ))
}

impl PgVisitSource {
    /// Start the binary COPY of the candidates of `window` (inclusive dates)
    /// in `tx`, over the analytics schema whose column types are `types`,
    /// after creating [`ADDRESSES`] ([`address_setup`]).
    ///
    /// Sets `work_mem` for the transaction ([`CANDIDATE_WORK_MEM`]) and
    /// turns PostgreSQL's JIT compilation off for it: when the addresses were
    /// a CTE, the join estimates were far above the real row counts, which
    /// pushed the candidate query over `jit_above_cost` and spent about
    /// 0.85 s of 1.4 s compiling at 100 000 visits (docs/conflicts.md §14);
    /// a read of whole tables gains nothing from JIT. A full read also gets
    /// [`FULL_READ_PARALLEL_COSTS`]; the caller puts them back with
    /// [`end_full_read`] once the stream has ended.
    /// Errors: [`crate::ErrorKind::SchemaMismatch`] when an analytics table or
    /// column is missing or has an unusable type (run the migrations / the sync first).
    /// `keyed`: only the keys of [`super::incremental::KEYS`] (see [`candidate_query`]).
    pub async fn open(tx: &Transaction<'_>, types: &ColumnTypes, window: (NaiveDate, NaiveDate), keyed: bool) -> Result<Self> {
        Self::open_with_batch_rows(tx, types, window, keyed, BATCH_ROWS).await
    }

    /// [`PgVisitSource::open`] with batches of about `batch_rows` rows
    /// instead of [`BATCH_ROWS`] (tests cut a small dataset into many batches).
    pub async fn open_with_batch_rows(
        tx: &Transaction<'_>,
        types: &ColumnTypes,
        window: (NaiveDate, NaiveDate),
        keyed: bool,
        batch_rows: usize,
    ) -> Result<Self> {
        let sql = candidate_copy(types, keyed, window)?;
        tx.batch_execute(&format!("SET LOCAL work_mem = '{CANDIDATE_WORK_MEM}'; SET LOCAL jit = off"))
            .await
            .map_err(|e| from_postgres(e, "setting work_mem for the candidate query"))?;
        if !keyed {
            tx.batch_execute(FULL_READ_PARALLEL_COSTS)
                .await
                .map_err(|e| from_postgres(e, "setting the planner's parallel costs for the candidate query"))?;
        }
        if keyed {
            let by_index = touched_read_uses_indexes(tx, types).await?;
            tx.batch_execute(&touched_visits_setup(types, by_index)?)
                .await
                .map_err(|e| from_postgres(e, format!("reading the visits of the touched keys from schema {}", types.schema())))?;
        }
        tx.batch_execute(&address_setup(types, keyed)?)
            .await
            .map_err(|e| from_postgres(e, format!("reading the primary GPS addresses of schema {}", types.schema())))?;
        let stream = tx
            .copy_out(sql.as_str())
            .await
            .map_err(|e| from_postgres(e, format!("starting the candidate visit COPY on schema {}", types.schema())))?;
        Ok(PgVisitSource {
            rows: Box::pin(BinaryCopyOutStream::new(stream, &CANDIDATE_TYPES)),
            batcher: KeyBatcher::new(batch_rows),
            ended: false,
            rows_read: 0,
            candidates: None,
        })
    }
}

/// [`keyed_read_uses_indexes`] for the touched keys in
/// [`super::incremental::KEYS`] and the planner's row estimate of the visits.
async fn touched_read_uses_indexes(tx: &Transaction<'_>, types: &ColumnTypes) -> Result<bool> {
    let sql = format!(
        "SELECT (SELECT count(*) FROM {keys})::int8, coalesce((SELECT c.reltuples FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1 AND c.relname = 'factvisitcallperformance_cr'), -1)::float8",
        keys = super::incremental::KEYS
    );
    let row = tx.query_one(&sql, &[&types.schema()]).await.map_err(|e| from_postgres(e, "counting the touched keys"))?;
    let (keys, estimate): (i64, f64) = (row.get(0), row.get(1));
    Ok(keyed_read_uses_indexes(keys.max(0) as u64, estimate))
}

/// The visit time columns of the candidate COPY, by position (5 to 8).
const CANDIDATE_TIME_COLUMNS: [(usize, &str); 4] =
    [(5, "Scheduled Start Time"), (6, "Scheduled End Time"), (7, "Visit Start Time"), (8, "Visit End Time")];

/// Decode one candidate row. The query casts every column to its expected
/// type, so a failure here is a bug in thaw, reported as an error, never a
/// panic — except a time that is a valid `timestamptz` but no instant
/// (`infinity`, `-infinity`, or beyond chrono's range of ±262 000 years):
/// bad input, [`crate::ErrorKind::TypeUnsupported`] (exit 2, never retried)
/// naming the visit and the column (docs/conflicts.md §2.4).
fn visit_from_row(row: &BinaryCopyOutRow) -> Result<Visit> {
    fn get<'r, T: FromSql<'r>>(row: &'r BinaryCopyOutRow, i: usize) -> Result<T> {
        row.try_get(i)
            .map_err(|e| Error::internal(format!("decoding column {i} ({}) of the candidate COPY: {e}", CANDIDATE_TYPES[i])))
    }
    let visit_id = get::<Option<Uuid>>(row, 0)?.ok_or_else(|| Error::new(crate::ErrorKind::ChunkFailed, "a candidate visit has a NULL or blank \"Visit Id\"; fix the row in factvisitcallperformance_cr"))?;
    let mut times = [None; 4];
    for (slot, (i, column)) in times.iter_mut().zip(CANDIDATE_TIME_COLUMNS) {
        *slot = row.try_get::<Option<DateTime<Utc>>>(i).map_err(|_| {
            Error::new(
                crate::ErrorKind::TypeUnsupported,
                format!(
                    "visit {visit_id} (factvisitcallperformance_cr) has a \"{column}\" that is no instant (infinity, -infinity or out of range), \
                     which has no wall clock to compare; correct the value or set it to NULL, then run again"
                ),
            )
        })?;
    }
    let [scheduled_start, scheduled_end, visit_start, visit_end] = times;
    let latitude: Option<f64> = get(row, 11)?;
    let longitude: Option<f64> = get(row, 12)?;
    Ok(Visit {
        visit_id,
        app_visit_id: get(row, 1)?,
        ssn: get(row, 2)?,
        visit_date: get::<Option<NaiveDate>>(row, 3)?.ok_or_else(|| Error::internal("candidate visit without a Visit Date"))?,
        provider_id: get::<Option<Uuid>>(row, 4)?.ok_or_else(|| Error::internal("candidate visit without a Provider Id"))?,
        scheduled_start,
        scheduled_end,
        visit_start,
        visit_end,
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

/// SQL condition (over the full read's window rows aliased `alias`) for a
/// candidate [`visit_from_row`] may refuse: a NULL `visit_id`, or a time
/// that is `±infinity` or after the year 200 000 (chrono holds about
/// ±262 000 years; a row sent in vain is decoded and dropped).
/// The full read sends such rows even when their key cannot pair, so the
/// night fails on them as an incremental read of their key would.
fn undecodable(alias: &str) -> String {
    let times: Vec<String> = ["sch_start", "sch_end", "visit_start", "visit_end"]
        .iter()
        .map(|column| {
            format!(
                "({alias}.{column} IS NOT NULL AND NOT ({alias}.{column} > '-infinity'::timestamptz AND {alias}.{column} < '200000-01-01 00:00:00+00'::timestamptz))"
            )
        })
        .collect();
    format!("({alias}.visit_id IS NULL OR {})", times.join(" OR "))
}

/// Columns 18 and 19 of a candidate row: the count of every candidate (on
/// the last row of a full read) and whether the row's key can pair.
fn count_columns(row: &BinaryCopyOutRow) -> Result<(Option<u64>, bool)> {
    let candidates: Option<i64> = row.try_get(18).map_err(|e| Error::internal(format!("decoding the candidate count of the candidate COPY: {e}")))?;
    let can_pair: Option<bool> = row.try_get(19).map_err(|e| Error::internal(format!("decoding can_pair of the candidate COPY: {e}")))?;
    Ok((candidates.map(|n| n.max(0) as u64), can_pair.unwrap_or(true)))
}

/// The pairing key of a candidate: (trimmed SSN, VisitDate); a NULL SSN is the empty key.
fn key(v: &Visit) -> (&str, NaiveDate) {
    (trim_ssn(v.ssn.as_deref().unwrap_or("")), v.visit_date)
}

/// Cuts a stream of candidates ordered by key into batches of whole keys:
/// a batch is handed out at the first key change after `rows` rows, so the
/// visits of one `(trimmed SSN, VisitDate)` key always arrive together,
/// however many rows it has and wherever the stream's buffers end.
#[derive(Debug)]
pub struct KeyBatcher {
    rows: usize,
    batch: Vec<Visit>,
}

impl KeyBatcher {
    /// A batcher handing out batches of about `rows` rows (at least 1).
    pub fn new(rows: usize) -> KeyBatcher {
        KeyBatcher { rows: rows.max(1), batch: Vec::new() }
    }

    /// Add the next visit (in key order). Returns a complete batch when
    /// `visit` starts a new key and the batch has reached its size; `visit`
    /// then starts the next batch.
    pub fn push(&mut self, visit: Visit) -> Option<Vec<Visit>> {
        let full = self.batch.len() >= self.rows && self.batch.last().is_some_and(|last| key(last) != key(&visit));
        let out = full.then(|| std::mem::replace(&mut self.batch, Vec::with_capacity(self.rows + 64)));
        self.batch.push(visit);
        out
    }

    /// The last batch, at the end of the stream (`None` when empty).
    pub fn finish(&mut self) -> Option<Vec<Visit>> {
        let rest = std::mem::take(&mut self.batch);
        (!rest.is_empty()).then_some(rest)
    }
}

impl VisitSource for PgVisitSource {
    async fn next_batch(&mut self) -> Result<Option<Vec<Visit>>> {
        // A binary COPY stream polled again after its trailer reports a closed connection.
        if self.ended {
            return Ok(None);
        }
        while let Some(row) = self.rows.next().await {
            let row = row.map_err(|e| from_postgres(e, "reading the candidate visit COPY"))?;
            self.rows_read += 1;
            let (candidates, can_pair) = count_columns(&row)?;
            if let Some(n) = candidates {
                self.candidates = Some(n);
            }
            // A row whose key cannot pair is still decoded: bad input in it
            // (a NULL id, a time that is no instant) fails the night as it
            // does in an incremental read.
            let visit = visit_from_row(&row)?;
            if !can_pair {
                continue;
            }
            if let Some(batch) = self.batcher.push(visit) {
                return Ok(Some(batch));
            }
        }
        self.ended = true;
        Ok(self.batcher.finish())
    }

    fn visits_considered(&self) -> u64 {
        self.candidates.unwrap_or(self.rows_read)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn visit(id: u128, ssn: Option<&str>, day: u32) -> Visit {
        Visit {
            visit_id: Uuid::from_u128(id),
            ssn: ssn.map(str::to_string),
            visit_date: NaiveDate::from_ymd_opt(2025, 3, day).unwrap(),
            ..Visit::default()
        }
    }

    fn batches(rows: usize, visits: Vec<Visit>) -> Vec<Vec<u128>> {
        let mut batcher = KeyBatcher::new(rows);
        let mut out: Vec<Vec<Visit>> = visits.into_iter().filter_map(|v| batcher.push(v)).collect();
        out.extend(batcher.finish());
        out.into_iter().map(|b| b.iter().map(|v| v.visit_id.as_u128()).collect()).collect()
    }

    #[test]
    fn a_key_larger_than_the_batch_size_stays_in_one_batch() {
        let visits = vec![
            visit(1, Some("111"), 1),
            visit(2, Some("111"), 1),
            visit(3, Some("111"), 1),
            visit(4, Some("111"), 2),
            visit(5, Some("222"), 2),
        ];
        // Row 4 (a new key) cuts the full batch; row 5 joins it (the batch is not full yet).
        assert_eq!(batches(2, visits), vec![vec![1, 2, 3], vec![4, 5]]);
    }

    #[test]
    fn a_key_straddling_the_batch_boundary_moves_whole_to_the_next_batch() {
        // Rows 3 and 4 share a key; the batch is full after row 3, so it is
        // cut before row 4 only if the key changes there, which it does not.
        let visits = vec![visit(1, Some("111"), 1), visit(2, Some("222"), 1), visit(3, Some("333"), 1), visit(4, Some(" 333 "), 1), visit(5, Some("444"), 1)];
        assert_eq!(batches(3, visits), vec![vec![1, 2, 3, 4], vec![5]]);
    }

    #[test]
    fn a_null_ssn_is_one_key_like_a_blank_one_and_an_empty_stream_has_no_batch() {
        let visits = vec![visit(1, None, 1), visit(2, Some("  "), 1), visit(3, Some("111"), 1)];
        assert_eq!(batches(1, visits), vec![vec![1, 2], vec![3]]);
        assert!(batches(5, Vec::new()).is_empty());
    }
}
