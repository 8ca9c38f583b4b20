//! The candidate read as a binary COPY stream (docs/conflicts.md §14)
//! against a real PostgreSQL: every column decoded, the candidate rules of
//! the query applied (window, active non-demo agency, non-blank trimmed
//! SSN), keys whose candidates all belong to one provider left out but
//! counted, and the stream cut into batches of whole `(trimmed SSN,
//! VisitDate)` keys wherever the batch size falls.
//!
//! Run under tests/harness.py (`make test`), which exports THAW_PG_*.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{NaiveDate, TimeZone, Utc};
use thaw_engine::conflicts::candidates::{PgVisitSource, VisitSource};
use thaw_engine::conflicts::columns::ColumnTypes;
use thaw_engine::conflicts::Visit;
use thaw_test_support::{fresh_pg, unique};
use tokio_postgres::Client;
use uuid::Uuid;

fn id(kind: u32, n: u32) -> Uuid {
    Uuid::parse_str(&format!("00000000-0000-0000-{kind:04}-{n:012}")).unwrap()
}

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 3, d).unwrap()
}

/// Providers 1 (NY) and 2 (no state) active, 3 inactive; caregivers 1 and 2
/// the same person (`' 111 '`, `'111'`), 3 with a NULL SSN, 4 a blank one,
/// 5 `'222'`, 6 `'333'`; patient 1 with two primary GPS addresses (the newer wins),
/// patient 2 with a primary non-GPS address only.
async fn seed(client: &Client) {
    client
        .batch_execute(
            r#"
INSERT INTO analytics.dimprovider ("Provider Id", "Is Active", "Is Demo", "Address State") VALUES
  ('00000000-0000-0000-0003-000000000001', true, false, 'NY'),
  ('00000000-0000-0000-0003-000000000002', true, false, NULL),
  ('00000000-0000-0000-0003-000000000003', false, false, 'NY');
INSERT INTO analytics.dimcaregiver ("Caregiver Id", "SSN") VALUES
  ('00000000-0000-0000-0002-000000000001', ' 111 '),
  ('00000000-0000-0000-0002-000000000002', '111'),
  ('00000000-0000-0000-0002-000000000003', NULL),
  ('00000000-0000-0000-0002-000000000004', '   '),
  ('00000000-0000-0000-0002-000000000005', '222'),
  ('00000000-0000-0000-0002-000000000006', '333');
INSERT INTO analytics.dimpatientaddress ("Patient Address Id", "Patient Id", "Address Type", "Primary Address", "Latitude", "Longitude",
    "Zip Code", "Address State", "Application Created UTC Timestamp") VALUES
  ('00000000-0000-0000-0005-000000000001', '00000000-0000-0000-0004-000000000001', 'GPS', true, 10.0, 10.0, '00000', 'PA', '2024-01-01T00:00:00Z'),
  ('00000000-0000-0000-0005-000000000002', '00000000-0000-0000-0004-000000000001', 'Home GPS', true, 40.75, -73.99, '10001', 'NY', '2024-06-01T00:00:00Z'),
  ('00000000-0000-0000-0005-000000000003', '00000000-0000-0000-0004-000000000002', 'Home', true, 41.0, -74.0, '10002', 'NJ', '2024-06-01T00:00:00Z');
-- Key (111, 03-01): five visits over both caregiver ids and two providers; (111, 03-02): one;
-- (222, 03-01): three, visit 8 at provider 1 (set below), the others at provider 2; (333, 03-01): one.
INSERT INTO analytics.factvisitcallperformance_cr ("Visit Id", "Visit Date", "Caregiver Id", "Provider Id", "Scheduled Start Time", "Scheduled End Time")
SELECT ('00000000-0000-0000-0001-' || lpad(n::text, 12, '0'))::uuid, v.d, ('00000000-0000-0000-0002-' || lpad(v.c::text, 12, '0'))::uuid,
       '00000000-0000-0000-0003-000000000002'::uuid, v.d + time '08:00' + n * interval '1 minute', v.d + time '09:00'
FROM (VALUES (1, date '2025-03-01', 1), (2, date '2025-03-01', 2), (3, date '2025-03-01', 1), (4, date '2025-03-01', 2),
             (6, date '2025-03-02', 2), (7, date '2025-03-01', 5), (8, date '2025-03-01', 5), (9, date '2025-03-01', 5),
             -- The last candidate in key order, alone on its key: it carries the count and is not handed out.
             (14, date '2025-03-01', 6),
             -- Not candidates: NULL SSN, blank SSN, inactive agency, outside the window.
             (10, date '2025-03-01', 3), (11, date '2025-03-01', 4), (13, date '2024-01-01', 1)) v(n, d, c);
INSERT INTO analytics.factvisitcallperformance_cr ("Visit Id", "Visit Date", "Caregiver Id", "Provider Id")
VALUES ('00000000-0000-0000-0001-000000000012', '2025-03-01', '00000000-0000-0000-0002-000000000001', '00000000-0000-0000-0003-000000000003');
UPDATE analytics.factvisitcallperformance_cr SET "Provider Id" = '00000000-0000-0000-0003-000000000001'
WHERE "Visit Id" = '00000000-0000-0000-0001-000000000008';
-- Visit 5: every column set (key (111, 03-01)).
INSERT INTO analytics.factvisitcallperformance_cr ("Visit Id", "Application Visit Id", "Visit Date", "Caregiver Id", "Provider Id",
    "Scheduled Start Time", "Scheduled End Time", "Visit Start Time", "Visit End Time", "Call In GPS Coordinates", "Call Out GPS Coordinates",
    "Is Missed", "Provider Patient Id", "Payer Patient Id")
VALUES ('00000000-0000-0000-0001-000000000005', 9007199254740993, '2025-03-01', '00000000-0000-0000-0002-000000000001',
    '00000000-0000-0000-0003-000000000001', '2025-03-01T13:00:00Z', '2025-03-01T14:00:00Z', '2025-03-01T13:05:00Z', '2025-03-01T14:10:00Z',
    '"40.7,-73.9"', ',', false, '00000000-0000-0000-0004-000000000001', '00000000-0000-0000-0004-000000000002');
"#,
        )
        .await
        .unwrap();
}

/// The batches of a full read and the source's count of candidate visits.
async fn read(client: &mut Client, batch_rows: usize) -> (Vec<Vec<Visit>>, u64) {
    let tx = client.transaction().await.unwrap();
    let types = ColumnTypes::load(&tx, "analytics", "'America/New_York'").await.unwrap();
    let mut source = PgVisitSource::open_with_batch_rows(&tx, &types, (day(1) - chrono::Duration::days(30), day(31)), false, batch_rows)
        .await
        .unwrap();
    let mut batches = Vec::new();
    while let Some(batch) = source.next_batch().await.unwrap() {
        batches.push(batch);
    }
    let considered = source.visits_considered();
    drop(source);
    tx.commit().await.unwrap();
    (batches, considered)
}

fn key(v: &Visit) -> (String, NaiveDate) {
    (v.ssn.as_deref().unwrap_or("").to_string(), v.visit_date)
}

#[tokio::test]
async fn candidate_copy_decodes_every_column_and_never_splits_a_key_between_batches() {
    let mut client = fresh_pg(&unique("cf_copy")).await;
    seed(&client).await;

    // One large batch: every candidate of a key with two providers, in key
    // order, nothing else. Visits 6 and 14, each alone on its key, cannot
    // pair: they are counted (ten candidates) but not handed out.
    let (whole, considered) = read(&mut client, 20_000).await;
    assert_eq!(whole.len(), 1);
    assert_eq!(considered, 10, "every candidate is counted, those that cannot pair included");
    let all = &whole[0];
    let ids: BTreeSet<Uuid> = all.iter().map(|v| v.visit_id).collect();
    assert_eq!(ids, [1, 2, 3, 4, 5, 7, 8, 9].into_iter().map(|n| id(1, n)).collect::<BTreeSet<_>>());
    let keys: Vec<(String, NaiveDate)> = all.iter().map(key).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "candidates arrive ordered by key");
    assert_eq!(keys.iter().filter(|k| **k == ("111".to_string(), day(1))).count(), 5, "SSNs are trimmed: ' 111 ' and '111' are one key");

    // Visit 5, column by column.
    let v = all.iter().find(|v| v.visit_id == id(1, 5)).unwrap();
    assert_eq!(v.app_visit_id, Some(9_007_199_254_740_993));
    assert_eq!(v.ssn.as_deref(), Some("111"));
    assert_eq!(v.visit_date, day(1));
    assert_eq!(v.provider_id, id(3, 1));
    assert_eq!(v.scheduled_start, Some(Utc.with_ymd_and_hms(2025, 3, 1, 13, 0, 0).unwrap()));
    assert_eq!(v.scheduled_end, Some(Utc.with_ymd_and_hms(2025, 3, 1, 14, 0, 0).unwrap()));
    assert_eq!(v.visit_start, Some(Utc.with_ymd_and_hms(2025, 3, 1, 13, 5, 0).unwrap()));
    assert_eq!(v.visit_end, Some(Utc.with_ymd_and_hms(2025, 3, 1, 14, 10, 0).unwrap()));
    assert_eq!(v.call_in_gps.as_deref(), Some("\"40.7,-73.9\""));
    assert_eq!(v.call_out_gps.as_deref(), Some(","));
    assert_eq!(v.is_missed, Some(false));
    let location = v.patient_location.expect("the newer primary GPS address of patient 1");
    assert_eq!((location.latitude, location.longitude), (40.75, -73.99));
    assert_eq!(v.patient_zip.as_deref(), Some("10001"));
    assert_eq!(v.patient_state.as_deref(), Some("NY"));
    assert_eq!(v.payer_patient_state, None, "patient 2 has no GPS address");
    assert_eq!(v.provider_state.as_deref(), Some("NY"));
    // Visit 1: NULLs stay NULL (no patients, no actual times, Is Missed unknown, agency without a state).
    let v = all.iter().find(|v| v.visit_id == id(1, 1)).unwrap();
    assert_eq!((v.app_visit_id, v.visit_start, v.call_in_gps.as_deref(), v.is_missed), (None, None, None, None));
    assert_eq!((v.patient_location, v.patient_zip.as_deref(), v.patient_state.as_deref()), (None, None, None));
    assert_eq!((v.payer_patient_state.as_deref(), v.provider_state.as_deref()), (None, None));

    // Batches of 1 to 6 rows: the same candidates in the same order, each
    // key whole in exactly one batch (the five-visit key straddles every
    // batch boundary it meets).
    for rows in 1..=6 {
        let (batches, considered) = read(&mut client, rows).await;
        assert_eq!(considered, 10, "batch size {rows}");
        let flat: Vec<Uuid> = batches.iter().flatten().map(|v| v.visit_id).collect();
        assert_eq!(flat, all.iter().map(|v| v.visit_id).collect::<Vec<_>>(), "batch size {rows}");
        let mut batch_of_key: BTreeMap<(String, NaiveDate), usize> = BTreeMap::new();
        for (i, batch) in batches.iter().enumerate() {
            for v in batch {
                let first = *batch_of_key.entry(key(v)).or_insert(i);
                assert_eq!(first, i, "batch size {rows}: key {:?} split between batches {first} and {i}", key(v));
            }
            assert!(batch.len() >= rows || i == batches.len() - 1, "batch size {rows}: batch {i} handed out early");
        }
    }
}

/// The full read's parallel costs (`FULL_READ_PARALLEL_COSTS`,
/// docs/conflicts.md §14): with tables this small the planner reads
/// serially unless told that every table is large enough for workers, so
/// the session says so; the candidates are then read by a Gather Merge
/// plan and must be exactly those of the serial read, in the same order.
/// Once the stream has ended, `end_full_read` puts the costs back to what
/// the connection had before the read.
#[tokio::test]
async fn full_read_in_parallel_gives_the_serial_candidates_and_puts_the_planner_costs_back() {
    use thaw_engine::conflicts::candidates::end_full_read;
    let mut client = fresh_pg(&unique("cf_parallel")).await;
    seed(&client).await;
    let (serial, serial_considered) = read(&mut client, 20_000).await;

    client
        .batch_execute("SET min_parallel_table_scan_size = 0; SET min_parallel_index_scan_size = 0; SET max_parallel_workers_per_gather = 2")
        .await
        .unwrap();
    let costs = "SELECT current_setting('parallel_setup_cost'), current_setting('parallel_tuple_cost')";
    let setting = |r: tokio_postgres::Row| (r.get::<_, String>(0), r.get::<_, String>(1));
    let before = setting(client.query_one(costs, &[]).await.unwrap());
    assert_eq!(before, ("1000".to_string(), "0.1".to_string()), "PostgreSQL's defaults before the read");

    let tx = client.transaction().await.unwrap();
    let types = ColumnTypes::load(&tx, "analytics", "'America/New_York'").await.unwrap();
    let window = (day(1) - chrono::Duration::days(30), day(31));
    let mut source = PgVisitSource::open_with_batch_rows(&tx, &types, window, false, 20_000).await.unwrap();
    let mut parallel = Vec::new();
    while let Some(batch) = source.next_batch().await.unwrap() {
        parallel.push(batch);
    }
    let considered = source.visits_considered();
    drop(source);
    let during = setting(tx.query_one(costs, &[]).await.unwrap());
    assert_eq!(during, ("0".to_string(), "0.001".to_string()), "the full read sets its costs for the transaction");
    let explained: Vec<String> = tx
        .query(&format!("EXPLAIN {}", thaw_engine::conflicts::candidates::candidate_query(&types, false).unwrap()), &[&window.0, &window.1])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect();
    assert!(explained.iter().any(|l| l.contains("Gather")), "the read is planned in parallel here:\n{}", explained.join("\n"));
    end_full_read(&tx).await.unwrap();
    let after = setting(tx.query_one(costs, &[]).await.unwrap());
    assert_eq!(after, before, "the night's later statements are planned with the costs the connection had");
    tx.commit().await.unwrap();

    assert_eq!(considered, serial_considered);
    let ids = |batches: &[Vec<Visit>]| batches.iter().flatten().map(|v| v.visit_id).collect::<Vec<_>>();
    assert_eq!(ids(&parallel), ids(&serial), "the same candidates in the same order");
}
