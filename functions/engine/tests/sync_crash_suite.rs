//! The seeded crash suite (docs/sync.md §6.8): a run is stopped at a
//! failpoint of every step boundary (planning after each table, index drop,
//! copy before COPY, after COPY and before commit, merge, each index
//! restore, reconcile), at seeded hit counts, then resumed, again and again,
//! until at least 100 crash points were injected. After every crash the
//! status is consistent with the target (no `completed` chunk without its
//! rows, no rows without a `completed` chunk); after every resumed run the
//! target equals the source (reconcile clean), holds no duplicate key and
//! has every index it had before.
//!
//! Failpoints are process-global, so the suite is one test. Half the chains
//! load empty targets (COPY path), the other half upsert source changes
//! into the loaded targets (upsert path).

use std::collections::BTreeSet;
use std::sync::Arc;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use thaw_engine::contract::PlanRequest;
use thaw_engine::failpoints;
use thaw_engine::runner::{self, Quiet, RunOptions};
use thaw_engine::ErrorKind;
use thaw_test_support::*;

/// Crash points the suite must inject in total.
const CRASHES_WANTED: u32 = 100;

/// The failpoints of a sync run (conflict detection is not part of it) and
/// how many passes each may let through before failing (chunks per run and
/// tables per run bound the hit counts that can fire).
const POINTS: [(&str, u32); 8] = [
    (failpoints::PLAN_AFTER_TABLE, 1),
    (failpoints::INDEXES_AFTER_DROP, 1),
    (failpoints::COPY_CHUNK_BEFORE_COPY, 3),
    (failpoints::COPY_CHUNK_AFTER_COPY, 3),
    (failpoints::COPY_CHUNK_BEFORE_COMMIT, 3),
    (failpoints::MERGE_AFTER_TABLE, 1),
    (failpoints::INDEXES_BEFORE_RESTORE, 1),
    (failpoints::RECONCILE_STEP, 0),
];

const TARGETS: [&str; 2] = ["orders", "orders2"];

async fn index_names(pg: &tokio_postgres::Client, table: &str) -> BTreeSet<String> {
    pg.query("SELECT indexname::text FROM pg_indexes WHERE schemaname = 'public' AND tablename = $1", &[&table])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Rows in the targets must equal `base` plus the rows inserted by the
/// completed chunks of the runs started since `since`, per table.
async fn assert_status_matches_rows(pg: &tokio_postgres::Client, base: &[i64; 2], since: chrono::DateTime<chrono::Utc>, context: &str) {
    for (i, table) in TARGETS.iter().enumerate() {
        let rows = pg_count(pg, &format!("public.{table}")).await;
        let inserted: i64 = pg
            .query_one(
                "SELECT coalesce(sum(c.rows_inserted), 0)::int8 FROM migration_status.migration_chunk_status c \
                 JOIN migration_status.migration_table_status t USING (run_id, source_database, source_schema, source_table) \
                 JOIN migration_status.migration_runs r USING (run_id) \
                 WHERE c.status = 'completed' AND t.target_table = $1 AND r.started_at >= $2",
                &[table, &since],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(rows, base[i] + inserted, "{context}: {table} holds {rows} rows but its completed chunks inserted {inserted} over {}", base[i]);
    }
}

#[tokio::test]
async fn seeded_crashes_at_every_step_boundary_resume_to_an_exact_copy() {
    let sf_db = unique("SFCRASH").to_uppercase();
    let sf = fresh_sf(&sf_db).await;
    create_orders(&sf, &sf_db, 400).await;
    let fqn = format!("\"{sf_db}\".\"S\".\"ORDERS\"");
    let fqn2 = format!("\"{sf_db}\".\"S\".\"ORDERS2\"");
    sf.execute(&format!("CREATE TABLE {fqn2} AS SELECT * FROM {fqn}")).await.unwrap();
    // orders: numeric ranges with NULL ids; orders2: date ranges (a heavy day
    // split by "Code") with its secondary indexes dropped for the load.
    let t1 = orders_table(Some(("Id", "bigint")), "");
    let t2 = orders_table(Some(("Day", "timestamp_tz")), r#", "disable_index": true"#)
        .replace("\"source\": \"ORDERS\", \"target\": \"orders\"", "\"source\": \"ORDERS2\", \"target\": \"orders2\"");

    let mut rng = ChaCha8Rng::seed_from_u64(20_261_206);
    let mut crashes = 0u32;
    let mut fired_per_point = std::collections::BTreeMap::<&str, u32>::new();
    let mut pg_db = String::new();
    let mut chain = 0u32;
    while crashes < CRASHES_WANTED {
        chain += 1;
        let incremental = chain.is_multiple_of(2);
        if !incremental {
            pg_db = unique("crash");
            let pg = fresh_pg(&pg_db).await;
            create_orders_target(&pg).await;
            pg.batch_execute(
                "CREATE TABLE public.orders2 (LIKE public.orders INCLUDING ALL); \
                 CREATE INDEX orders2_day ON public.orders2 (\"Day\"); CREATE INDEX orders2_note ON public.orders2 (\"Note\", \"Id\")",
            )
            .await
            .unwrap();
        } else {
            // Source changes for the upsert path: newer rows, new keys.
            let stamp = (chrono::NaiveDate::from_ymd_opt(2027, 1, 1).unwrap().and_hms_opt(0, 0, 0).unwrap()
                + chrono::Duration::minutes(chain as i64))
            .format("%Y-%m-%d %H:%M:%S+00:00")
            .to_string();
            for f in [&fqn, &fqn2] {
                sf.execute(&format!(
                    "UPDATE {f} SET \"Note\" = 'chain {chain}', \"Updated\" = '{stamp}' WHERE MOD(COALESCE(\"Id\", 7), 9) = {}",
                    chain % 9
                ))
                .await
                .unwrap();
                sf.execute(&format!(
                    "INSERT INTO {f} VALUES ({id}, '{code:08x}-1111-4000-8000-000000000000', '2026-03-01 10:00:00-05:00', 1.5, TRUE, 'new', '{stamp}')",
                    id = 9_000_000 + chain,
                    code = chain
                ))
                .await
                .unwrap();
            }
        }
        let pg = pg(&pg_db).await;
        let config = Arc::new(config(&config_text(&sf_db, &pg_db, &[&t1, &t2], "")));
        let indexes_before = [index_names(&pg, "orders").await, index_names(&pg, "orders2").await];
        let base = [pg_count(&pg, "public.orders").await, pg_count(&pg, "public.orders2").await];
        let since: chrono::DateTime<chrono::Utc> = pg.query_one("SELECT now()", &[]).await.unwrap().get(0);
        let opts = || RunOptions { request: PlanRequest::default(), conflicts: false, ..Default::default() };

        // Up to 6 crashes per chain, then a clean resume.
        let mut completed = false;
        // A resumed run only passes the points at or after the last crash
        // (a planned table is not planned again), and after a copy crash only
        // the failed chunk is copied again: pick points it can still reach.
        // Each point but the copy points fires at most once per chain, so the
        // chains spread over every boundary.
        let mut stage = 0;
        let mut copy_crashed = false;
        let mut used = BTreeSet::new();
        for _ in 0..6 {
            let candidates: Vec<usize> = (stage..POINTS.len()).filter(|i| !used.contains(i)).collect();
            if candidates.is_empty() {
                break;
            }
            let index = candidates[rng.gen_range(0..candidates.len())];
            let (point, max_skip) = POINTS[index];
            let is_copy = point.starts_with("copy_chunk");
            let skip = if is_copy && copy_crashed { 0 } else { rng.gen_range(0..=max_skip) };
            failpoints::arm_at(point, ErrorKind::Internal, skip, 1);
            let outcome = runner::run(config.clone(), opts(), Arc::new(Quiet)).await;
            let fired = failpoints::fired(point);
            failpoints::clear();
            let context = format!("chain {chain}, {point} after {skip} passes");
            if fired == 0 {
                // The point was not reached (e.g. nothing left to plan): this run finished.
                let report = outcome.unwrap_or_else(|e| panic!("{context}: a run without a crash failed: {e}"));
                report.outcome().unwrap_or_else(|e| panic!("{context}: {e}"));
                completed = true;
                break;
            }
            crashes += 1;
            *fired_per_point.entry(point).or_default() += 1;
            stage = index;
            copy_crashed |= is_copy;
            if !is_copy {
                used.insert(index);
            }
            match &outcome {
                Ok(report) => assert_ne!(report.status, "completed", "{context}: a crashed run is never recorded completed"),
                Err(e) => assert!(e.message.contains("failpoint"), "{context}: {e}"),
            }
            assert_status_matches_rows(&pg, &base, since, &context).await;
        }
        if !completed {
            let report = runner::run(config.clone(), opts(), Arc::new(Quiet)).await.expect("the resumed run");
            report.outcome().unwrap_or_else(|e| panic!("chain {chain}: the resumed run does not reconcile: {e}"));
            assert_eq!(report.status, "completed");
        }
        assert_status_matches_rows(&pg, &base, since, &format!("chain {chain} finished")).await;
        for (i, table) in TARGETS.iter().enumerate() {
            let dupes: i64 = pg.query_one(&format!("SELECT count(*) - count(DISTINCT \"Code\") FROM public.{table}"), &[]).await.unwrap().get(0);
            assert_eq!(dupes, 0, "chain {chain}: duplicate keys in {table}");
            assert_eq!(index_names(&pg, table).await, indexes_before[i], "chain {chain}: the indexes of {table}");
        }
        let unfinished: i64 = pg
            .query_one("SELECT count(*) FROM migration_status.migration_chunk_status c JOIN migration_status.migration_runs r USING (run_id) WHERE r.started_at >= $1 AND r.status = 'completed' AND c.status <> 'completed'", &[&since])
            .await
            .unwrap()
            .get(0);
        assert_eq!(unfinished, 0, "chain {chain}: a completed run with unfinished chunks");
    }
    // Every kind of point was injected.
    for (point, _) in POINTS {
        assert!(fired_per_point.get(point).copied().unwrap_or(0) > 0, "{point} never fired: {fired_per_point:?}");
    }
    eprintln!("{crashes} crash points over {chain} chains: {fired_per_point:?}");
}
