//! `thaw dev seed` / `thaw dev mutate` against the Snowflake emulator.
//!
//! Run under the harness, which starts the emulator and exports THAW_SF_*:
//! `python3 tests/harness.py run -- cargo test -p thaw-engine --test dev_generator`
//! The timing measurement is ignored by default:
//! `THAW_DEV_SEED_VISITS=1000000 python3 tests/harness.py run -- cargo test -p thaw-engine
//!  --release --test dev_generator -- --ignored --nocapture seeding_time`
//!
//! Every test seeds the same `ANALYTICS` / `CONFLICTREPORT` databases of the
//! shared in-memory emulator, so they take turns (one async lock).

use std::collections::BTreeSet;
use std::path::PathBuf;

use chrono::{DateTime, NaiveDate, Utc};
use md5::{Digest, Md5};

use thaw_devdata::{
    self as dev, planted_conflicts, planted_near_misses, ExtraDistance, MutateOptions, SeedOptions,
};
use thaw_engine::source::{self, SnowflakeSource};

static EMULATOR_DATABASES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn session() -> SnowflakeSource {
    let settings = thaw_test_support::snowflake();
    source::connect(&settings, None, None)
        .await
        .expect("login to the emulator")
}

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 21).unwrap()
}

fn out_dir(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("thaw-dev-generator-{}-{name}", std::process::id()))
}

fn options(seed: u64, visits: u64, name: &str) -> SeedOptions {
    let mut opts = SeedOptions::new(seed, visits, today(), out_dir(name));
    opts.block_rows = 2_000;
    opts.part_rows = 4_000;
    opts
}

async fn count(source: &SnowflakeSource, table: &str, filter: &str) -> u64 {
    let rows = source
        .execute(&format!("SELECT COUNT(*) FROM {table} {filter}"))
        .await
        .unwrap();
    rows[0][0].as_deref().unwrap().parse().unwrap()
}

fn quoted(table: &str) -> String {
    table
        .split('.')
        .map(|p| format!("\"{p}\""))
        .collect::<Vec<_>>()
        .join(".")
}

/// MD5 over the visit rows as the emulator returns them, in key order.
async fn visit_checksum(source: &SnowflakeSource) -> String {
    let rows = source
        .execute(
            r#"SELECT "Visit Id", "Caregiver Id", "Provider Id", "Scheduled Start Time", "Visit End Time",
                      "Call Out GPS Coordinates", "Billed Rate", "Is Missed", "Visit Updated Timestamp"
               FROM "ANALYTICS"."BI"."FACTVISITCALLPERFORMANCE_CR" ORDER BY "Visit Id""#,
        )
        .await
        .unwrap();
    let mut digest = Md5::new();
    for row in rows {
        digest.update(format!("{row:?}\n").as_bytes());
    }
    hex::encode(digest.finalize())
}

fn id_list(ids: impl IntoIterator<Item = uuid::Uuid>) -> String {
    ids.into_iter()
        .map(|u| format!("'{u}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[tokio::test]
async fn seeding_loads_exactly_the_reported_rows_into_the_emulator() {
    let _turn = EMULATOR_DATABASES.lock().await;
    let source = session().await;
    let report = dev::seed(Some(&source), &options(1, 6_000, "counts"))
        .await
        .unwrap();
    assert_eq!(report.rows.len(), 17);
    assert_eq!(
        report.rows["ANALYTICS.BI.FACTVISITCALLPERFORMANCE_CR"],
        6_000
    );
    for (table, rows) in &report.rows {
        assert_eq!(
            count(&source, &quoted(table), "").await,
            *rows,
            "rows of {table}"
        );
    }
    assert!(
        !out_dir("counts").read_dir().unwrap().any(|_| true),
        "loaded CSV parts are deleted"
    );
    std::fs::remove_dir_all(out_dir("counts")).ok();
}

#[tokio::test]
async fn same_seed_reseeds_identical_data_and_another_seed_differs() {
    let _turn = EMULATOR_DATABASES.lock().await;
    let source = session().await;
    let first = dev::seed(Some(&source), &options(7, 3_000, "same-a"))
        .await
        .unwrap();
    let first_sum = visit_checksum(&source).await;
    dev::seed(Some(&source), &options(8, 3_000, "other"))
        .await
        .unwrap();
    let other_sum = visit_checksum(&source).await;
    let again = dev::seed(Some(&source), &options(7, 3_000, "same-b"))
        .await
        .unwrap();
    let again_sum = visit_checksum(&source).await;
    assert_eq!(first.checksums, again.checksums);
    assert_eq!(first_sum, again_sum);
    assert_ne!(first_sum, other_sum);
    // Re-seeding replaces the tables instead of appending.
    assert_eq!(
        count(
            &source,
            r#""ANALYTICS"."BI"."FACTVISITCALLPERFORMANCE_CR""#,
            ""
        )
        .await,
        3_000
    );
    for name in ["same-a", "other", "same-b"] {
        std::fs::remove_dir_all(out_dir(name)).ok();
    }
}

#[tokio::test]
async fn planted_visits_are_loaded_where_their_scenarios_need_them() {
    let _turn = EMULATOR_DATABASES.lock().await;
    let source = session().await;
    let seed = 3;
    dev::seed(Some(&source), &options(seed, 2_000, "planted"))
        .await
        .unwrap();
    let fact = r#""ANALYTICS"."BI"."FACTVISITCALLPERFORMANCE_CR""#;
    let deleted = r#""ANALYTICS"."BI"."FACTVISITCALLPERFORMANCE_DELETED_CR""#;
    let conflict_ids: BTreeSet<uuid::Uuid> = planted_conflicts(seed, today(), ExtraDistance::None)
        .iter()
        .flat_map(|p| [p.visit_id, p.con_visit_id])
        .collect();
    let filter = format!(
        r#"WHERE "Visit Id" IN ({})"#,
        id_list(conflict_ids.iter().copied())
    );
    assert_eq!(
        count(&source, fact, &filter).await,
        conflict_ids.len() as u64
    );
    let near = planted_near_misses(seed, today(), ExtraDistance::None);
    let deleted_scenario = near.iter().find(|n| n.scenario == "deleted_visit").unwrap();
    let filter = format!(r#"WHERE "Visit Id" = '{}'"#, deleted_scenario.visit_ids[1]);
    assert_eq!(count(&source, fact, &filter).await, 0);
    assert_eq!(count(&source, deleted, &filter).await, 1);
    let settings = source
        .execute(r#"SELECT "ExtraDistancePer", "ID" FROM "CONFLICTREPORT"."PUBLIC"."SETTINGS""#)
        .await
        .unwrap();
    assert_eq!(settings.len(), 1);
    assert_eq!(
        count(
            &source,
            r#""CONFLICTREPORT"."PUBLIC"."MPH""#,
            r#"WHERE "From" = 5 AND "To" = 10 AND "AverageMilesPerHour" = 15"#
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &source,
            r#""CONFLICTREPORT"."PUBLIC"."EXCLUDED_AGENCY""#,
            r#"WHERE "ProviderID" IS NULL"#
        )
        .await,
        1
    );
    std::fs::remove_dir_all(out_dir("planted")).ok();
}

#[tokio::test]
async fn mutate_updates_inserts_and_moves_deleted_visits_and_is_idempotent() {
    let _turn = EMULATOR_DATABASES.lock().await;
    let source = session().await;
    let seeded = options(5, 5_000, "mutate");
    let report = dev::seed(Some(&source), &seeded).await.unwrap();
    let fact = r#""ANALYTICS"."BI"."FACTVISITCALLPERFORMANCE_CR""#;
    let deleted = r#""ANALYTICS"."BI"."FACTVISITCALLPERFORMANCE_DELETED_CR""#;
    let deleted_before = report.rows["ANALYTICS.BI.FACTVISITCALLPERFORMANCE_DELETED_CR"];
    let now: DateTime<Utc> = DateTime::parse_from_rfc3339("2026-11-21T15:00:00Z")
        .unwrap()
        .to_utc();
    let opts = MutateOptions {
        seeded,
        mutation_seed: 1,
        updates: 120,
        inserts: 60,
        deletes: 40,
        now,
    };
    let changed = dev::mutate(&source, &opts).await.unwrap();
    assert_eq!(
        (changed.updated, changed.inserted, changed.deleted),
        (120, 60, 40)
    );
    assert!(changed.planted_unchanged);
    assert_eq!(count(&source, fact, "").await, 5_000 + 60 - 40);
    assert_eq!(count(&source, deleted, "").await, deleted_before + 40);
    let bumped =
        r#"WHERE "Visit Updated Timestamp" >= CAST('2026-11-21 15:00:00+00:00' AS TIMESTAMP_TZ)"#;
    assert_eq!(count(&source, fact, bumped).await, 120 + 60);
    assert_eq!(count(&source, deleted, bumped).await, 40);
    let again = dev::mutate(&source, &opts).await.unwrap();
    assert_eq!((again.updated, again.inserted, again.deleted), (120, 0, 0));
    assert_eq!(count(&source, fact, "").await, 5_000 + 60 - 40);
    std::fs::remove_dir_all(out_dir("mutate")).ok();
}

/// Seeding time for `THAW_DEV_SEED_VISITS` visits (default 100 000).
#[tokio::test]
#[ignore = "timing measurement; run explicitly with --ignored"]
async fn seeding_time_for_a_large_dataset() {
    let _turn = EMULATOR_DATABASES.lock().await;
    let visits: u64 = std::env::var("THAW_DEV_SEED_VISITS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let source = session().await;
    let opts = SeedOptions::new(11, visits, today(), out_dir("timing"));
    let report = dev::seed(Some(&source), &opts).await.unwrap();
    println!(
        "seeded {visits} visits in {:.1} s: {:?}",
        report.seconds, report.rows
    );
    assert_eq!(
        count(
            &source,
            r#""ANALYTICS"."BI"."FACTVISITCALLPERFORMANCE_CR""#,
            ""
        )
        .await,
        visits
    );
    std::fs::remove_dir_all(out_dir("timing")).ok();
}
