//! Conflict detection against a real PostgreSQL (`thaw_engine::conflicts::run`):
//! planted visits in the analytics mirror → `conflictvisitmaps`/`conflicts`;
//! a second run writes nothing; a vanished pair is resolved ('R'), a
//! re-detected one reopened; user-owned columns survive every refresh; a
//! pair that becomes cross-state is resolved, never deleted (docs/conflicts.md §D6).
//!
//! Run under tests/harness.py (`make test`), which exports THAW_PG_*.

use thaw_engine::config::ConflictSettings;
use thaw_engine::conflicts::{run, DetectionMode};
use thaw_engine::contract::ConflictCreateResponse;
use tokio_postgres::{Client, NoTls};

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run under tests/harness.py (make test)"))
}

async fn connect(database: &str) -> Client {
    let mut cfg = tokio_postgres::Config::new();
    cfg.host(env("THAW_PG_HOST"))
        .port(env("THAW_PG_PORT").parse().expect("THAW_PG_PORT is a port number"))
        .user(env("THAW_PG_USER"))
        .password(env("THAW_PG_PASSWORD"))
        .dbname(database);
    let (client, connection) = cfg.connect(NoTls).await.expect("connect to the harness PostgreSQL");
    tokio::spawn(connection);
    client
}

/// A fresh database with the analytics mirror and the conflict schema.
async fn fresh_database(name: &str) -> Client {
    let db = format!("thaw_{name}_{}", std::process::id());
    let admin = connect("postgres").await;
    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {db}")).await.unwrap();
    admin.batch_execute(&format!("CREATE DATABASE {db}")).await.unwrap();
    let mut client = connect(&db).await;
    // Every migration, as a deployment has them (the conflict step reads the
    // side tables of V13 and the watermark of V10, not only V2/V3).
    thaw_engine::migrations::migrate(&mut client).await.expect("migrate the new database");
    client
}

/// Providers A, B (active) and C (inactive); caregivers with the same SSN at
/// each; two patients with GPS addresses in Brooklyn (different ZIPs);
/// SETTINGS (ExtraDistancePer 1.0) and the legacy MPH bands.
const REFERENCE_DATA: &str = include_str!("fixtures/conflicts_reference.sql");

/// Visits 1/2: same schedule on 2025-03-12 at A and B (rule 1).
/// Visits 3/4: completed on 2025-03-05 at A and B, 15 minutes apart, 5.16 mi (rule 7).
/// Visit 5: overlaps visit 3 but at the inactive provider C (invisible).
const VISITS: &str = include_str!("fixtures/conflicts_visits.sql");

fn settings(database: &str) -> ConflictSettings {
    ConflictSettings { database: database.to_string(), today: Some("2025-03-10".into()), ..Default::default() }
}

fn counts(s: &ConflictCreateResponse) -> (u64, u64, u64, u64, u64, u64) {
    (s.visits_considered, s.pairs_detected, s.inserted, s.updated, s.resolved, s.conflicts_created)
}

/// (VisitID last digit, ConVisitID last digit, CONFLICTID, StatusFlag, flags) per stored pair.
async fn stored_pairs(client: &Client) -> Vec<(String, String, i64, String, String)> {
    client
        .query(
            r#"SELECT right("VisitID"::text, 1), right("ConVisitID"::text, 1), "CONFLICTID", "StatusFlag",
                      "SameSchTimeFlag" || "SameVisitTimeFlag" || "SchAndVisitTimeSameFlag" || "SchOverAnotherSchTimeFlag"
                      || "VisitTimeOverAnotherVisitTimeFlag" || "SchTimeOverVisitTimeFlag" || "DistanceFlag"
               FROM conflict.conflictvisitmaps ORDER BY 1, 2"#,
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
        .collect()
}

#[tokio::test]
async fn planted_pairs_are_stored_once_refreshed_resolved_and_user_columns_survive() {
    let mut client = fresh_database("conflicts_store").await;
    client.batch_execute(REFERENCE_DATA).await.unwrap();
    client.batch_execute(VISITS).await.unwrap();
    let cfg = settings("unused");

    // First run: two planted pairs, both orientations; visit 5 (inactive agency) is invisible.
    let first = run(&mut client, &cfg, DetectionMode::Full).await.unwrap();
    assert_eq!(counts(&first), (4, 4, 4, 0, 0, 4), "{first:?}");
    let pairs = stored_pairs(&client).await;
    assert_eq!(
        pairs,
        vec![
            ("1".into(), "2".into(), 1, "U".into(), "YNNNNNN".into()),
            ("2".into(), "1".into(), 2, "U".into(), "YNNNNNN".into()),
            ("3".into(), "4".into(), 3, "U".into(), "NNNNNNY".into()),
            ("4".into(), "3".into(), 4, "U".into(), "NNNNNNY".into()),
        ]
    );
    // docs/conflicts.md §R7.5 numbers and the snapshot columns, on the wall clock of New York.
    let row = client
        .query_one(
            r#"SELECT "DistanceMilesFromLatLng", "AverageMilesPerHour", "ETATravelMinutes", "MinuteDiffBetweenSch",
                      "VisitStartTime"::text, "ConVisitStartTime"::text, "ProviderName", "ConProviderName", "SSN", "AideSSN",
                      "ConAideSSN", "BilledRate", "BilledRateMinute", "P_PZipCode", "ConP_PZipCode", "AppVisitID", "ConAppVisitID",
                      "ReverseUUID", "CRDATEUNIQUE" IS NOT NULL, "InServiceFlag", "PTOFlag"
               FROM conflict.conflictvisitmaps WHERE "AppVisitID" = 103"#,
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, f32>(0), 5.16);
    assert_eq!(row.get::<_, f32>(1), 15.0);
    assert_eq!(row.get::<_, i32>(2), 21);
    assert_eq!(row.get::<_, i32>(3), 15);
    assert_eq!(row.get::<_, String>(4), "2025-03-05 09:00:00");
    assert_eq!(row.get::<_, String>(5), "2025-03-05 10:15:00");
    assert_eq!((row.get::<_, String>(6), row.get::<_, String>(7)), ("Agency A".into(), "Agency B".into()));
    assert_eq!((row.get::<_, String>(8), row.get::<_, String>(9), row.get::<_, String>(10)), ("123-45-6789".into(), "123-45-6789".into(), "123-45-6789".into()));
    assert_eq!(row.get::<_, f32>(11), 25.5);
    assert_eq!(row.get::<_, f32>(12), 0.425);
    assert_eq!((row.get::<_, String>(13), row.get::<_, String>(14)), ("11214".into(), "11203".into()));
    assert_eq!((row.get::<_, i64>(15), row.get::<_, i64>(16)), (103, 104));
    assert_eq!(
        row.get::<_, String>(17),
        "00000000-0000-0000-0000-000000000003~103_00000000-0000-0000-0000-000000000004~104"
    );
    assert!(row.get::<_, bool>(18));
    assert_eq!((row.get::<_, String>(19), row.get::<_, String>(20)), ("N".into(), "N".into()));
    let cf: Vec<(i64, String)> = client
        .query(r#"SELECT "CONFLICTID", "StatusFlag" FROM conflict.conflicts ORDER BY 1"#, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(cf, vec![(1, "U".into()), (2, "U".into()), (3, "U".into()), (4, "U".into())]);
    let in_progress: i64 = client.query_one(r#"SELECT "InProgressFlag" FROM conflict.settings"#, &[]).await.unwrap().get(0);
    assert_eq!(in_progress, 2);

    // The application's users answer on some rows. (They record that the
    // other agency did respond: a 'Yes' no-response flag turns a pair `N`,
    // docs/conflicts.md §8.2 step 8, tested in conflicts_lifecycle.rs; here
    // only the store's refresh and resolve are under test.)
    client
        .batch_execute(
            r#"UPDATE conflict.conflictvisitmaps SET "ConNoResponseFlag" = 'No', "ConNoResponseNotes" = 'called twice',
                   "FlagForReview" = 'Y', "FlagForReviewDate" = '2025-03-10 08:00', "AggFlagForReview" = 'Y';
               UPDATE conflict.conflicts SET "NoResponseFlag" = 'No', "NoResponseTitle" = 'no answer', "FlagForReview" = 'Y';"#,
        )
        .await
        .unwrap();

    // Second run, no source change: nothing written, UpdatedDate untouched.
    let second = run(&mut client, &cfg, DetectionMode::Full).await.unwrap();
    assert_eq!(counts(&second), (4, 4, 0, 0, 0, 0), "{second:?}");
    let touched: i64 = client
        .query_one(r#"SELECT count(*) FROM conflict.conflictvisitmaps WHERE "UpdatedDate" IS NOT NULL"#, &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(touched, 0);

    // Visit 4 moves 40 minutes later (travel now possible) and visit 1's rate changes.
    client
        .batch_execute(
            r#"UPDATE analytics.factvisitcallperformance_cr SET "Visit Start Time" = '2025-03-05 10:40-05', "Scheduled Start Time" = '2025-03-05 10:40-05'
               WHERE "Application Visit Id" = 104;
               UPDATE analytics.factvisitcallperformance_cr SET "Billed Rate" = 31.000 WHERE "Application Visit Id" = 101;"#,
        )
        .await
        .unwrap();
    let third = run(&mut client, &cfg, DetectionMode::Full).await.unwrap();
    assert_eq!(counts(&third), (4, 2, 0, 2, 2, 0), "{third:?}");
    let pairs = stored_pairs(&client).await;
    assert_eq!(pairs.iter().map(|p| (p.2, p.3.as_str())).collect::<Vec<_>>(), vec![(1, "U"), (2, "U"), (3, "R"), (4, "R")]);
    let resolved_with_date: i64 = client
        .query_one(r#"SELECT count(*) FROM conflict.conflictvisitmaps WHERE "StatusFlag" = 'R' AND "ResolveDate" IS NOT NULL"#, &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(resolved_with_date, 2);
    let rates: Vec<(f32, Option<f32>)> = client
        .query(r#"SELECT "BilledRate", "ConBilledRate" FROM conflict.conflictvisitmaps WHERE "CONFLICTID" IN (1, 2) ORDER BY "CONFLICTID""#, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get::<_, Option<f32>>(0).unwrap_or(-1.0), r.get(1)))
        .collect();
    assert_eq!(rates, vec![(31.0, None), (-1.0, Some(31.0))]);

    // User-owned columns are exactly as the users left them.
    let user_cvm: i64 = client
        .query_one(
            r#"SELECT count(*) FROM conflict.conflictvisitmaps WHERE "ConNoResponseFlag" = 'No' AND "ConNoResponseNotes" = 'called twice'
                 AND "FlagForReview" = 'Y' AND "FlagForReviewDate" = '2025-03-10 08:00' AND "AggFlagForReview" = 'Y'"#,
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(user_cvm, 4);
    let user_cf: i64 = client
        .query_one(
            r#"SELECT count(*) FROM conflict.conflicts WHERE "NoResponseFlag" = 'No' AND "NoResponseTitle" = 'no answer' AND "FlagForReview" = 'Y'"#,
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(user_cf, 4);

    // Stable again.
    let fourth = run(&mut client, &cfg, DetectionMode::Full).await.unwrap();
    assert_eq!(counts(&fourth), (4, 2, 0, 0, 0, 0), "{fourth:?}");

    // Visit 4 moves back: the resolved pairs reopen with their CONFLICTIDs.
    client
        .batch_execute(
            r#"UPDATE analytics.factvisitcallperformance_cr SET "Visit Start Time" = '2025-03-05 10:15-05', "Scheduled Start Time" = '2025-03-05 10:15-05'
               WHERE "Application Visit Id" = 104;"#,
        )
        .await
        .unwrap();
    let fifth = run(&mut client, &cfg, DetectionMode::Full).await.unwrap();
    assert_eq!(counts(&fifth), (4, 4, 0, 2, 0, 0), "{fifth:?}");
    let pairs = stored_pairs(&client).await;
    assert_eq!(pairs.iter().map(|p| (p.2, p.3.as_str())).collect::<Vec<_>>(), vec![(1, "U"), (2, "U"), (3, "U"), (4, "U")]);
    let open_with_date: i64 = client
        .query_one(r#"SELECT count(*) FROM conflict.conflictvisitmaps WHERE "ResolveDate" IS NOT NULL"#, &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(open_with_date, 0);
}

/// `(StatusFlag, ResolveDate set)` of every stored pair, in VisitID/ConVisitID order.
async fn statuses(client: &Client) -> Vec<(String, bool)> {
    client
        .query(r#"SELECT "StatusFlag", "ResolveDate" IS NOT NULL FROM conflict.conflictvisitmaps ORDER BY "VisitID", "ConVisitID""#, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// docs/conflicts.md §D6 through the real candidate query: states come from the
/// provider patient's and the payer patient's primary GPS addresses, with
/// the provider's `Address State` as fallback. A stored pair that becomes
/// cross-state is resolved ('R', kept, with a ResolveDate), and reopened
/// when its states match again.
#[tokio::test]
async fn a_stored_pair_that_becomes_cross_state_is_resolved_never_deleted_and_reopens() {
    let mut client = fresh_database("conflicts_cross_state").await;
    client.batch_execute(REFERENCE_DATA).await.unwrap();
    client.batch_execute(VISITS).await.unwrap();
    let cfg = settings("unused");
    let first = run(&mut client, &cfg, DetectionMode::Full).await.unwrap();
    assert_eq!(counts(&first), (4, 4, 4, 0, 0, 4), "{first:?}");
    let open = vec![("U".to_string(), false); 4];
    let resolved = vec![("R".to_string(), true); 4];

    // Agency B's patient moves to Pennsylvania (full name, padded): both pairs are cross-state.
    client
        .batch_execute(r#"UPDATE analytics.dimpatientaddress SET "Address State" = ' pennsylvania ' WHERE "Patient Id" = '00000000-0000-0000-0000-0000000000e2'"#)
        .await
        .unwrap();
    let moved = run(&mut client, &cfg, DetectionMode::Full).await.unwrap();
    assert_eq!(counts(&moved), (4, 0, 0, 0, 4, 0), "{moved:?}");
    assert_eq!(statuses(&client).await, resolved, "resolved, never deleted");
    let cf: i64 = client.query_one("SELECT count(*) FROM conflict.conflicts", &[]).await.unwrap().get(0);
    assert_eq!(cf, 4);

    // B's visits are paid for the New York patient: any-to-any (B's payer patient NY = A's patient NY) reopens them.
    client
        .batch_execute(
            r#"UPDATE analytics.factvisitcallperformance_cr SET "Payer Patient Id" = '00000000-0000-0000-0000-0000000000e1'
               WHERE "Provider Id" = '00000000-0000-0000-0000-00000000000b'"#,
        )
        .await
        .unwrap();
    let paid = run(&mut client, &cfg, DetectionMode::Full).await.unwrap();
    assert_eq!(counts(&paid), (4, 4, 0, 4, 0, 0), "{paid:?}");
    assert_eq!(statuses(&client).await, open);
    let payer_state: String = client
        .query_one(r#"SELECT "PA_PAddressState" FROM conflict.conflictvisitmaps WHERE "AppVisitID" = 102"#, &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(payer_state, "NY");

    // No payer patient and no state on B's patient: B's provider state (Pennsylvania) stands in.
    client
        .batch_execute(
            r#"UPDATE analytics.factvisitcallperformance_cr SET "Payer Patient Id" = NULL;
               UPDATE analytics.dimpatientaddress SET "Address State" = '  ' WHERE "Patient Id" = '00000000-0000-0000-0000-0000000000e2';
               UPDATE analytics.dimprovider SET "Address State" = ' pa' WHERE "Provider Id" = '00000000-0000-0000-0000-00000000000b';"#,
        )
        .await
        .unwrap();
    let fallback = run(&mut client, &cfg, DetectionMode::Full).await.unwrap();
    assert_eq!(counts(&fallback), (4, 0, 0, 0, 4, 0), "{fallback:?}");
    assert_eq!(statuses(&client).await, resolved);

    // B's provider moves to New York: same state again, reopened.
    client
        .batch_execute(r#"UPDATE analytics.dimprovider SET "Address State" = 'New York' WHERE "Provider Id" = '00000000-0000-0000-0000-00000000000b'"#)
        .await
        .unwrap();
    let back = run(&mut client, &cfg, DetectionMode::Full).await.unwrap();
    assert_eq!(counts(&back), (4, 4, 0, 4, 0, 0), "{back:?}");
    assert_eq!(statuses(&client).await, open);
}

#[tokio::test]
async fn a_second_concurrent_run_is_refused_with_locked() {
    let mut client = fresh_database("conflicts_lock").await;
    client.batch_execute(REFERENCE_DATA).await.unwrap();
    let holder = connect(&format!("thaw_conflicts_lock_{}", std::process::id())).await;
    holder.execute("SELECT pg_advisory_lock($1)", &[&thaw_engine::conflicts::RUN_LOCK_KEY]).await.unwrap();
    let err = run(&mut client, &settings("unused"), DetectionMode::Full).await.unwrap_err();
    assert_eq!(err.kind, thaw_engine::ErrorKind::Locked, "{err}");
    holder.execute("SELECT pg_advisory_unlock($1)", &[&thaw_engine::conflicts::RUN_LOCK_KEY]).await.unwrap();
    let ok = run(&mut client, &settings("unused"), DetectionMode::Full).await.unwrap();
    assert_eq!(ok.pairs_detected, 0);
}

#[tokio::test]
async fn a_zero_speed_band_fails_the_run_and_releases_the_lock() {
    let mut client = fresh_database("conflicts_zero_speed").await;
    client.batch_execute(REFERENCE_DATA).await.unwrap();
    client.batch_execute(r#"UPDATE conflict.mph SET "AverageMilesPerHour" = 0 WHERE "From" = 5"#).await.unwrap();
    let err = run(&mut client, &settings("unused"), DetectionMode::Full).await.unwrap_err();
    assert_eq!(err.kind, thaw_engine::ErrorKind::ConfigInvalid, "{err}");
    assert!(err.message.contains("speed 0 mph"), "{err}");
    let flag: i64 = client.query_one(r#"SELECT "InProgressFlag" FROM conflict.settings"#, &[]).await.unwrap().get(0);
    assert_eq!(flag, 2, "InProgressFlag back to idle after a failure");
    let free: bool = client
        .query_one("SELECT pg_try_advisory_lock($1)", &[&thaw_engine::conflicts::RUN_LOCK_KEY])
        .await
        .unwrap()
        .get(0);
    assert!(free, "the run lock is released on the error path");
}
