//! The web application's main reads of the conflict schema keep using their
//! indexes (docs/conflicts.md §15): on a freshly migrated database filled with
//! 300 000 pair rows spread like production (hundreds of providers and
//! payers, six statuses, two years of dates, groups and caregivers), every
//! query of `thaw_engine::conflicts::app_queries::QUERIES` is planned with one
//! of its listed indexes, and answers correctly.
//!
//! Run under tests/harness.py (`make test`), which exports THAW_PG_*.

use chrono::NaiveDate;
use thaw_engine::conflicts::app_queries::{plan_indexes, Sample, QUERIES};
use thaw_test_support::{fresh_pg, unique};

/// Pair rows generated for the plans (enough that a sequential scan is
/// never the cheapest plan for a selective read).
const ROWS: i64 = 300_000;

#[tokio::test]
async fn every_application_read_uses_its_index_on_a_realistic_table() {
    let pg = fresh_pg(&unique("appq")).await;
    pg.batch_execute(&format!(
        "INSERT INTO conflict.conflictvisitmaps
           (\"CONFLICTID\", \"GroupID\", \"SSN\", \"ProviderID\", \"PayerID\", \"VisitID\", \"ConVisitID\", \"VisitDate\",
            \"StatusFlag\", \"ProviderName\", \"ConProviderName\")
         SELECT g / 2, g / 6, lpad((g % 40000)::text, 9, '0'),
                ('00000000-0000-4000-8000-' || lpad((g % 300)::text, 12, '0'))::uuid,
                ('00000000-0000-4000-9000-' || lpad((g % 120)::text, 12, '0'))::uuid,
                md5('v' || g)::uuid, md5('c' || g)::uuid,
                date '2025-01-01' + (g % 730)::int,
                (ARRAY['U','N','W','I','R','D'])[1 + (g % 6)::int],
                'Provider ' || (g % 300), 'Provider ' || ((g + 7) % 300)
         FROM generate_series(1, {ROWS}) AS g;
         ANALYZE conflict.conflictvisitmaps;"
    ))
    .await
    .expect("fill conflictvisitmaps");

    let sample = Sample {
        provider: "00000000-0000-4000-8000-000000000042".parse().unwrap(),
        payer: "00000000-0000-4000-9000-000000000012".parse().unwrap(),
        statuses: vec!["U".into(), "N".into()],
        from: NaiveDate::from_ymd_opt(2025, 6, 1).unwrap(),
        to: NaiveDate::from_ymd_opt(2025, 8, 31).unwrap(),
        conflict_id: 4242,
        visit: pg.query_one("SELECT md5('v' || 4242)::uuid", &[]).await.unwrap().get(0),
        group: 777,
        ssn: "000012345".into(),
    };

    let mut failures = Vec::new();
    for q in QUERIES {
        let explain = format!("EXPLAIN (FORMAT JSON) {}", q.sql);
        let row = pg.query_one(&explain, &q.bind(&sample)).await.unwrap_or_else(|e| panic!("EXPLAIN {}: {e}", q.name));
        let plan: serde_json::Value = row.get(0);
        let used = plan_indexes(&plan);
        if !used.iter().any(|i| q.indexes.contains(&i.as_str())) {
            failures.push(format!("{}: plan uses {:?}, expected one of {:?}\n{}", q.name, used, q.indexes, plan));
        }
        let rows = pg.query(q.sql, &q.bind(&sample)).await.unwrap_or_else(|e| panic!("{}: {e}", q.name));
        assert!(!rows.is_empty(), "{}: the sample values match rows, so the read must return some", q.name);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[tokio::test]
async fn the_listed_indexes_exist_after_migration() {
    let pg = fresh_pg(&unique("appqidx")).await;
    let names: Vec<String> = pg
        .query("SELECT indexname FROM pg_indexes WHERE schemaname = 'conflict' AND tablename = 'conflictvisitmaps'", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    for q in QUERIES {
        assert!(q.indexes.iter().any(|i| names.iter().any(|n| n == i)), "{}: none of {:?} exists (have {names:?})", q.name, q.indexes);
    }
}
