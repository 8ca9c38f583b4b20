//! Issue 9 findings, against a real PostgreSQL (`thaw_engine::conflicts::run`):
//! plans that scale from an empty schema, a candidate read that does not
//! depend on NULL keys, every reasonable column type, no panic and no stuck
//! `InProgressFlag`, bad input never retryable, and \[SF\]'s literal NULL and
//! TRIM semantics (docs/conflicts.md §2.4, §10, §14, §D8).
//!
//! Run under tests/harness.py (`make test`), which exports THAW_PG_*.

use thaw_engine::conflicts::{run, DetectionMode, RUN_LOCK_KEY};
use thaw_engine::error::from_postgres;
use thaw_engine::ErrorKind;
// Planted data: 4 pairs (1↔2 rule 1, 3↔4 rule 7) with "today" 2025-03-10.
use thaw_test_support::conflicts::{planted, planted_settings as settings};
use thaw_test_support::{fresh_pg, unique};
use tokio_postgres::Client;


/// (VisitID last digit, ConVisitID last digit, StatusFlag, flags) per stored pair.
async fn stored_pairs(client: &Client) -> Vec<(String, String, String, String)> {
    client
        .query(
            r#"SELECT right("VisitID"::text, 1), right("ConVisitID"::text, 1), "StatusFlag",
                      "SameSchTimeFlag" || "SameVisitTimeFlag" || "SchAndVisitTimeSameFlag" || "SchOverAnotherSchTimeFlag"
                      || "VisitTimeOverAnotherVisitTimeFlag" || "SchTimeOverVisitTimeFlag" || "DistanceFlag"
               FROM conflict.conflictvisitmaps ORDER BY 1, 2"#,
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect()
}

fn planted_pairs() -> Vec<(String, String, String, String)> {
    [("1", "2", "YNNNNNN"), ("2", "1", "YNNNNNN"), ("3", "4", "NNNNNNY"), ("4", "3", "NNNNNNY")]
        .iter()
        .map(|(a, b, f)| (a.to_string(), b.to_string(), "U".to_string(), f.to_string()))
        .collect()
}

async fn in_progress_flag(client: &Client) -> i64 {
    client.query_one(r#"SELECT "InProgressFlag" FROM conflict.settings"#, &[]).await.unwrap().get(0)
}

/// The run lock is free: another session can take (and give back) it.
async fn assert_lock_free(name: &str, client: &Client) {
    let db: String = client.query_one("SELECT current_database()", &[]).await.unwrap().get(0);
    let other = thaw_test_support::pg(&db).await;
    let free: bool = other.query_one("SELECT pg_try_advisory_lock($1)", &[&RUN_LOCK_KEY]).await.unwrap().get(0);
    assert!(free, "{name}: the run lock is still held");
    other.execute("SELECT pg_advisory_unlock($1)", &[&RUN_LOCK_KEY]).await.unwrap();
}

/// Finding 1: a first full run on an empty, freshly migrated (never
/// analysed) conflict schema with a few thousand pairs finishes in seconds;
/// every `CRDATEUNIQUE` is the earliest `CreatedDate` of its conflict.
#[tokio::test]
async fn conflict_first_run_from_empty_schema_with_thousands_of_pairs_completes() {
    let mut client = fresh_pg(&unique("cf_scale")).await;
    // 600 caregivers (one SSN each) with the same schedule at three agencies
    // on 2025-03-12: 6 ordered pairs per SSN = 3 600 pairs, 1 800 conflicts.
    client
        .batch_execute(
            r#"
INSERT INTO analytics.dimprovider ("Provider Id", "Application Provider Id", "Provider Name", "Is Active", "Is Demo")
SELECT md5('p' || p)::uuid, p, 'Agency ' || p, true, false FROM generate_series(1, 3) p;
INSERT INTO analytics.dimcaregiver ("Caregiver Id", "Application Caregiver Id", "SSN")
SELECT md5('c' || i || '-' || p)::uuid, i * 10 + p, lpad(i::text, 9, '0') FROM generate_series(1, 600) i, generate_series(1, 3) p;
INSERT INTO analytics.factvisitcallperformance_cr ("Visit Id", "Application Visit Id", "Visit Date", "Caregiver Id", "Provider Id",
    "Scheduled Start Time", "Scheduled End Time", "Is Missed")
SELECT md5('v' || i || '-' || p)::uuid, i * 10 + p, '2025-03-12', md5('c' || i || '-' || p)::uuid, md5('p' || p)::uuid,
       '2025-03-12 09:00-04', '2025-03-12 13:00-04', false
FROM generate_series(1, 600) i, generate_series(1, 3) p;
INSERT INTO conflict.settings ("ID", "ExtraDistance", "ExtraDistancePer", "InProgressFlag") VALUES (1, 0, 1.0, 2);
INSERT INTO conflict.mph ("From", "To", "AverageMilesPerHour") VALUES (0, 2, 2), (2, 5, 6), (5, 10, 15), (10, 25, 25);
"#,
        )
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let summary = tokio::time::timeout(std::time::Duration::from_secs(180), run(&mut client, &settings(), DetectionMode::Full))
        .await
        .expect("a first run with 3 600 pairs must not take minutes")
        .unwrap();
    eprintln!("first run: {:?} in {:?}", summary, started.elapsed());
    assert_eq!((summary.visits_considered, summary.pairs_detected, summary.inserted, summary.conflicts_created), (1800, 3600, 3600, 1800));
    let row = client
        .query_one(
            r#"SELECT count(*), count(DISTINCT "CONFLICTID"), count("CRDATEUNIQUE"),
                      count(*) FILTER (WHERE "CRDATEUNIQUE" = first), count(*) FILTER (WHERE "CONFLICTID" BETWEEN 1 AND 1800)
               FROM (SELECT *, min("CreatedDate") OVER (PARTITION BY "CONFLICTID") AS first FROM conflict.conflictvisitmaps) c"#,
            &[],
        )
        .await
        .unwrap();
    assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1), row.get::<_, i64>(2), row.get::<_, i64>(3), row.get::<_, i64>(4)), (3600, 1800, 3600, 3600, 3600));
    let conflicts: i64 = client.query_one(r#"SELECT count(*) FROM conflict.conflicts WHERE "StatusFlag" = 'U'"#, &[]).await.unwrap().get(0);
    assert_eq!(conflicts, 1800);
    // The second run writes nothing.
    let again = run(&mut client, &settings(), DetectionMode::Full).await.unwrap();
    assert_eq!((again.inserted, again.updated, again.resolved, again.conflicts_created), (0, 0, 0, 0));
}

/// Finding 2: visits whose payer patient is NULL (a large share in
/// practice) are read without joining on the NULL key, and give the same
/// result as before: payer-patient states still drive the cross-state rule.
#[tokio::test]
async fn conflict_candidates_with_null_payer_patient_keys_are_read_identically() {
    let mut client = planted("cf_nullkey").await;
    client
        .batch_execute(
            r#"
-- Payer patients: e3 in PA, e4 without any address. 15 % and more of the visits below have none.
INSERT INTO analytics.dimpatient ("Patient Id", "Application Patient Id", "Patient Name") VALUES
  ('00000000-0000-0000-0000-0000000000e3', 23, 'Pat Three'), ('00000000-0000-0000-0000-0000000000e4', 24, 'Pat Four');
INSERT INTO analytics.dimpatientaddress ("Patient Address Id", "Patient Id", "Address Type", "Primary Address", "Address State", "Application Created UTC Timestamp") VALUES
  ('00000000-0000-0000-0000-0000000000f3', '00000000-0000-0000-0000-0000000000e3', 'GPS', true, 'PA', '2020-01-01Z');
-- Visits 1/2 (NY provider patients) keep their NULL payer patient; visit 3 gets the payer patient e4
-- (no address: as NULL), visit 4 gets e3 (PA), which still shares nothing with 3's NY: 3/4 become cross-state.
UPDATE analytics.factvisitcallperformance_cr SET "Payer Patient Id" = '00000000-0000-0000-0000-0000000000e4' WHERE "Application Visit Id" = 103;
UPDATE analytics.factvisitcallperformance_cr SET "Payer Patient Id" = '00000000-0000-0000-0000-0000000000e3' WHERE "Application Visit Id" = 104;
UPDATE analytics.dimpatientaddress SET "Address State" = 'PA' WHERE "Patient Id" = '00000000-0000-0000-0000-0000000000e2';
"#,
        )
        .await
        .unwrap();
    let summary = run(&mut client, &settings(), DetectionMode::Full).await.unwrap();
    assert_eq!(summary.visits_considered, 4, "{summary:?}");
    // 3 (NY/none) vs 4 (PA/PA): cross-state, excluded; 1/2 (NY vs PA provider patients, NULL payer patients) too.
    assert_eq!(stored_pairs(&client).await, vec![]);
    // Back to NY for visit 4's payer patient: any-to-any match keeps 3/4; 1/2 stay cross-state (NY vs PA, no payer states).
    client
        .batch_execute(r#"UPDATE analytics.dimpatientaddress SET "Address State" = 'NY' WHERE "Patient Id" = '00000000-0000-0000-0000-0000000000e3'"#)
        .await
        .unwrap();
    run(&mut client, &settings(), DetectionMode::Full).await.unwrap();
    let pairs: Vec<_> = stored_pairs(&client).await.into_iter().map(|p| (p.0, p.1)).collect();
    assert_eq!(pairs, vec![("3".to_string(), "4".to_string()), ("4".to_string(), "3".to_string())]);
    let payer_state: Option<String> = client
        .query_one(r#"SELECT "ConPA_PAddressState" FROM conflict.conflictvisitmaps WHERE "AppVisitID" = 103"#, &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(payer_state.as_deref(), Some("NY"));
}

/// Finding 3: settings tables with `numeric` numbers and `text` ids, a
/// mirror with `text` ids and a `timestamptz` (or `timestamp`) "Visit Date"
/// give exactly the planted result.
#[tokio::test]
async fn conflict_settings_and_visits_with_other_column_types_give_the_same_result() {
    for (visit_date_type, using) in [
        ("timestamptz", r#"("Visit Date"::timestamp AT TIME ZONE 'America/New_York')"#),
        ("timestamp", r#""Visit Date"::timestamp"#),
    ] {
        let mut client = planted("cf_types").await;
        client
            .batch_execute(&format!(
                r#"
ALTER TABLE conflict.settings ALTER "ExtraDistancePer" TYPE numeric, ALTER "ID" TYPE numeric;
ALTER TABLE conflict.mph ALTER "ID" DROP IDENTITY;
ALTER TABLE conflict.mph ALTER "ID" TYPE numeric, ALTER "From" TYPE numeric, ALTER "To" TYPE numeric,
    ALTER "AverageMilesPerHour" TYPE numeric;
ALTER TABLE conflict.excluded_agency ALTER "ProviderID" TYPE text;
INSERT INTO conflict.excluded_agency ("ProviderID") VALUES ('00000000-0000-0000-0000-0000000000FF'), ('  ');
ALTER TABLE conflict.excluded_ssn ALTER "SSN" TYPE text;
ALTER TABLE analytics.factvisitcallperformance_cr ALTER "Visit Id" TYPE text, ALTER "Provider Id" TYPE text,
    ALTER "Caregiver Id" TYPE text, ALTER "Provider Patient Id" TYPE text,
    ALTER "Visit Date" TYPE {visit_date_type} USING {using};
UPDATE analytics.factvisitcallperformance_cr SET "Visit Id" = upper("Visit Id");
ALTER TABLE analytics.dimcaregiver ALTER "Caregiver Id" TYPE text;
"#
            ))
            .await
            .unwrap();
        let summary = run(&mut client, &settings(), DetectionMode::Full).await.unwrap_or_else(|e| panic!("{visit_date_type}: {e}"));
        assert_eq!((summary.visits_considered, summary.inserted, summary.conflicts_created), (4, 4, 4), "{visit_date_type}");
        assert_eq!(stored_pairs(&client).await, planted_pairs(), "{visit_date_type}");
        let row = client
            .query_one(r#"SELECT "DistanceMilesFromLatLng", "ETATravelMinutes", "VisitDate"::text FROM conflict.conflictvisitmaps WHERE "AppVisitID" = 103"#, &[])
            .await
            .unwrap();
        assert_eq!((row.get::<_, f32>(0), row.get::<_, i32>(1), row.get::<_, String>(2)), (5.16, 21, "2025-03-05".to_string()), "{visit_date_type}");
        assert_eq!(in_progress_flag(&client).await, 2);
    }
}

/// Findings 3 and 4: a column whose type cannot hold the value is a
/// `SchemaMismatch` naming table, column, found and expected type, never a
/// retryable error nor a panic; `InProgressFlag` is back to 2 and the lock free.
#[tokio::test]
async fn conflict_wrong_visit_date_type_is_bad_input_never_retried() {
    let mut client = planted("cf_badtype").await;
    client
        .batch_execute(r#"ALTER TABLE analytics.factvisitcallperformance_cr ALTER "Visit Date" TYPE int4 USING extract(doy FROM "Visit Date")::int4"#)
        .await
        .unwrap();
    let err = run(&mut client, &settings(), DetectionMode::Full).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::SchemaMismatch, "{err}");
    assert!(!err.kind.is_retryable());
    assert_eq!(err.kind.exit_code(), 2);
    for needle in [r#""analytics"."factvisitcallperformance_cr"."Visit Date""#, "type int4", "as date", "timestamptz"] {
        assert!(err.message.contains(needle), "{needle} not in: {}", err.message);
    }
    assert_eq!(in_progress_flag(&client).await, 2);
    assert_lock_free("bad visit date", &client).await;

    // A settings column of an unusable type: the same.
    let mut client = planted("cf_badmph").await;
    client.batch_execute(r#"ALTER TABLE conflict.mph ALTER "From" TYPE bool USING "From" > 0"#).await.unwrap();
    let err = run(&mut client, &settings(), DetectionMode::Full).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::SchemaMismatch, "{err}");
    assert!(err.message.contains(r#""conflict"."mph"."From" has type bool"#), "{}", err.message);
    assert_eq!(in_progress_flag(&client).await, 2);
    assert_lock_free("bad mph", &client).await;

    // The classification itself: a value of the wrong type for a statement
    // (what a wrong "Visit Date" type produced before) is bad input, not Unreachable.
    let date = chrono::NaiveDate::from_ymd_opt(2025, 3, 10).unwrap();
    let pg_err = client.query("SELECT $1::int4", &[&date]).await.unwrap_err();
    let err = from_postgres(pg_err, "binding a date to an int4 parameter");
    assert_eq!(err.kind, ErrorKind::SchemaMismatch, "{err}");
    assert!(!err.kind.is_retryable());
    let pg_err = client.query_one("SELECT 1::int4", &[]).await.unwrap().try_get::<_, chrono::NaiveDate>(0).map(|_| ()).unwrap_err();
    assert_eq!(thaw_engine::error::from_postgres(pg_err, "reading an int4 as a date").kind, ErrorKind::SchemaMismatch);
}

/// Finding 3: the run lock and `InProgressFlag` are released on every exit
/// path, a panic inside the run's transaction included (docs/conflicts.md §D8);
/// nothing of the panicking run is committed and the next run succeeds.
#[cfg(feature = "failpoints")]
#[tokio::test]
async fn conflict_panic_releases_the_run_lock_and_in_progress_flag() {
    let mut client = planted("cf_panic").await;
    thaw_engine::failpoints::arm(thaw_engine::failpoints::CONFLICT_DETECT_PANIC, ErrorKind::Internal, 1);
    let err = run(&mut client, &settings(), DetectionMode::Full).await.unwrap_err();
    thaw_engine::failpoints::clear();
    assert_eq!(err.kind, ErrorKind::Internal, "{err}");
    assert!(err.message.contains("panicked") && err.message.contains("conflict_detect_panic"), "{}", err.message);
    assert_eq!(in_progress_flag(&client).await, 2);
    assert_lock_free("panic", &client).await;
    assert_eq!(stored_pairs(&client).await, vec![], "the panicking run's transaction is rolled back");
    run(&mut client, &settings(), DetectionMode::Full).await.unwrap();
    assert_eq!(stored_pairs(&client).await, planted_pairs());
}

/// Finding 6, docs/conflicts.md §10.1: [SF-INS] `"Is Missed" = FALSE` is
/// unknown for NULL, so a visit with a NULL flag never starts a conflict;
/// a stored pair is still refreshed ([SF-UPD]).
#[tokio::test]
async fn conflict_null_is_missed_visit_never_starts_a_conflict() {
    let mut client = planted("cf_nullmissed").await;
    client
        .batch_execute(r#"UPDATE analytics.factvisitcallperformance_cr SET "Is Missed" = NULL WHERE "Application Visit Id" = 102"#)
        .await
        .unwrap();
    let summary = run(&mut client, &settings(), DetectionMode::Full).await.unwrap();
    assert_eq!((summary.pairs_detected, summary.inserted), (4, 2), "{summary:?}");
    let pairs: Vec<_> = stored_pairs(&client).await.into_iter().map(|p| (p.0, p.1)).collect();
    assert_eq!(pairs, vec![("3".to_string(), "4".to_string()), ("4".to_string(), "3".to_string())]);
    // Once stored (flag FALSE), a NULL flag no longer prevents the refresh.
    client.batch_execute(r#"UPDATE analytics.factvisitcallperformance_cr SET "Is Missed" = false"#).await.unwrap();
    run(&mut client, &settings(), DetectionMode::Full).await.unwrap();
    client
        .batch_execute(r#"UPDATE analytics.factvisitcallperformance_cr SET "Is Missed" = NULL, "Scheduled End Time" = '2025-03-12 13:30-04' WHERE "Application Visit Id" = 102"#)
        .await
        .unwrap();
    let refresh = run(&mut client, &settings(), DetectionMode::Full).await.unwrap();
    assert_eq!((refresh.inserted, refresh.resolved), (0, 0), "{refresh:?}");
    assert!(refresh.updated >= 2, "{refresh:?}");
    let is_missed: Option<bool> = client
        .query_one(r#"SELECT "IsMissed" FROM conflict.conflictvisitmaps WHERE "AppVisitID" = 102"#, &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(is_missed, None);
}

/// Finding 6, docs/conflicts.md §10.2: Snowflake `TRIM` removes spaces only,
/// so an SSN padded with a tab is a different SSN than the trimmed one (no
/// conflict), while spaces are trimmed (the planted pairs use ' SSN ').
#[tokio::test]
async fn conflict_ssn_padded_with_a_tab_is_another_ssn() {
    let mut client = planted("cf_tabssn").await;
    client
        .batch_execute("UPDATE analytics.dimcaregiver SET \"SSN\" = E'123-45-6789\\t' WHERE \"Application Caregiver Id\" = 12")
        .await
        .unwrap();
    let summary = run(&mut client, &settings(), DetectionMode::Full).await.unwrap();
    assert_eq!((summary.visits_considered, summary.pairs_detected), (4, 0), "{summary:?}");
    assert_eq!(stored_pairs(&client).await, vec![]);
    // Excluding the tab-padded SSN with a space-padded entry excludes only the untrimmed-equal one.
    client.batch_execute("UPDATE analytics.dimcaregiver SET \"SSN\" = ' 123-45-6789 ' WHERE \"Application Caregiver Id\" = 12").await.unwrap();
    client.batch_execute("INSERT INTO conflict.excluded_ssn (\"SSN\") VALUES (E'123-45-6789\\t')").await.unwrap();
    run(&mut client, &settings(), DetectionMode::Full).await.unwrap();
    assert_eq!(stored_pairs(&client).await, planted_pairs(), "a tab-padded exclusion does not exclude the SSN");
    let ssn: String = client.query_one(r#"SELECT "ConAideSSN" FROM conflict.conflictvisitmaps WHERE "AppVisitID" = 101"#, &[]).await.unwrap().get(0);
    assert_eq!(ssn, "123-45-6789");
}
