//! Findings of trying `thaw conflicts` as a new user would, against a real
//! PostgreSQL (`thaw_engine::conflicts::run`): a user's own mirror, tables
//! it lacks, and what the run then says (docs/conflicts.md §2.5).
//!
//! Run under tests/harness.py (`make test`), which exports THAW_PG_*.

use thaw_engine::conflicts::{run, DetectionMode, RUN_LOCK_KEY};
use thaw_engine::ErrorKind;
// Planted data: 4 pairs (1↔2 rule 1, 3↔4 rule 7) with "today" 2025-03-10.
use thaw_test_support::conflicts::{planted, planted_settings as settings, texts};
use tokio_postgres::Client;

/// `VisitID`→`ConVisitID` (last digits) of every stored pair.
async fn stored_pairs(client: &Client) -> Vec<String> {
    texts(client, r#"SELECT right("VisitID"::text, 1) || '>' || right("ConVisitID"::text, 1) FROM conflict.conflictvisitmaps ORDER BY 1"#).await
}

/// `InProgressFlag` is back to 2 and another session can take the run lock.
async fn assert_released(client: &Client) {
    let flag: i64 = client.query_one(r#"SELECT "InProgressFlag" FROM conflict.settings"#, &[]).await.unwrap().get(0);
    assert_eq!(flag, 2, "InProgressFlag");
    let db: String = client.query_one("SELECT current_database()", &[]).await.unwrap().get(0);
    let other = thaw_test_support::pg(&db).await;
    let free: bool = other.query_one("SELECT pg_try_advisory_lock($1)", &[&RUN_LOCK_KEY]).await.unwrap().get(0);
    assert!(free, "the run lock is still held");
    other.execute("SELECT pg_advisory_unlock($1)", &[&RUN_LOCK_KEY]).await.unwrap();
}

/// Finding: a mirror without primary keys holding a provider twice (or a
/// caregiver id twice in two spellings of the same UUID) failed the night
/// with `ChunkFailed` "could not create unique index
/// thaw_conflict_new_VisitID_ConVisitID_idx" (exit 1). It is bad input:
/// `SchemaMismatch` (exit 2, never retried) naming the table, the key
/// column, the duplicated value and its row count, nothing written, lock
/// and flag released; once the duplicate is gone the night is the planted
/// one (docs/conflicts.md §2.5).
#[tokio::test]
async fn conflict_duplicate_key_in_a_joined_table_is_bad_input_naming_table_key_and_value() {
    let mut client = planted("cf_dupkey").await;
    client
        .batch_execute(
            r#"ALTER TABLE analytics.dimprovider DROP CONSTRAINT dimprovider_pkey;
               INSERT INTO analytics.dimprovider SELECT * FROM analytics.dimprovider WHERE "Application Provider Id" = 1;"#,
        )
        .await
        .unwrap();
    let err = run(&mut client, &settings(), DetectionMode::Full).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::SchemaMismatch, "{err}");
    assert_eq!(err.kind.exit_code(), 2);
    assert!(!err.kind.is_retryable());
    let expected = r#""analytics"."dimprovider" holds 2 rows with "Provider Id" = 00000000-0000-0000-0000-00000000000a"#;
    assert!(err.message.contains(expected), "{}", err.message);
    assert!(err.message.contains("primary key"), "{}", err.message);
    assert_eq!(stored_pairs(&client).await, Vec::<String>::new(), "nothing written");
    assert_released(&client).await;

    // Ids held as text under a unique index: two spellings of one UUID are one key.
    client
        .batch_execute(
            r#"DELETE FROM analytics.dimprovider a USING analytics.dimprovider b WHERE a.ctid > b.ctid AND a."Provider Id" = b."Provider Id";
               ALTER TABLE analytics.dimcaregiver ALTER "Caregiver Id" TYPE text;
               INSERT INTO analytics.dimcaregiver ("Caregiver Id", "Application Caregiver Id", "SSN")
               SELECT upper("Caregiver Id"), 99, '999-99-9999' FROM analytics.dimcaregiver WHERE "Application Caregiver Id" = 12;"#,
        )
        .await
        .unwrap();
    let err = run(&mut client, &settings(), DetectionMode::Full).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::SchemaMismatch, "{err}");
    let expected = r#""analytics"."dimcaregiver" holds 2 rows with "Caregiver Id" = 00000000-0000-0000-0000-0000000000cb"#;
    assert!(err.message.contains(expected), "{}", err.message);
    assert_released(&client).await;

    client.batch_execute(r#"DELETE FROM analytics.dimcaregiver WHERE "Application Caregiver Id" = 99"#).await.unwrap();
    let summary = run(&mut client, &settings(), DetectionMode::Full).await.unwrap();
    assert_eq!((summary.inserted, summary.conflicts_created), (4, 4));
    assert_eq!(stored_pairs(&client).await, ["1>2", "2>1", "3>4", "4>3"]);
    assert_released(&client).await;
}

/// Finding: with `factcaregiverinservice` (or `factcaregiverabsence`)
/// missing from the mirror — not synced, renamed, a user's own schema —
/// the night skipped that kind of event without a word, exited 0 and
/// resolved every stored in-service pair (`R`, "Resolved" notices). A
/// missing event table is a `SchemaMismatch` naming it, like every other
/// source table (docs/conflicts.md §2.4, §5), and the stored pairs stay open.
#[tokio::test]
async fn conflict_missing_event_table_is_bad_input_and_keeps_stored_event_pairs_open() {
    let mut client = planted("cf_noevents").await;
    client
        .batch_execute(
            r#"INSERT INTO analytics.factcaregiverinservice ("Application Caregiver Inservice Id", "Environment", "Caregiver Id", "Provider Id",
                   "Inservice start date", "Inservice end date")
               VALUES (501, 'prod', '00000000-0000-0000-0000-0000000000cb', '00000000-0000-0000-0000-00000000000b', '2025-03-05 09:30-05', '2025-03-05 12:00-05');"#,
        )
        .await
        .unwrap();
    run(&mut client, &settings(), DetectionMode::Full).await.unwrap();
    let statuses = r#"SELECT "StatusFlag" || "InServiceFlag" FROM conflict.conflictvisitmaps WHERE "InServiceFlag" = 'Y' ORDER BY 1"#;
    // Visit 3 (09:00–10:00 at A) overlaps the in-service at B: both orientations.
    assert_eq!(texts(&client, statuses).await, ["UY", "UY"]);
    for table in ["factcaregiverinservice", "factcaregiverabsence"] {
        client.batch_execute(&format!("ALTER TABLE analytics.{table} RENAME TO {table}_gone")).await.unwrap();
        let err = run(&mut client, &settings(), DetectionMode::Full).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::SchemaMismatch, "{table}: {err}");
        assert_eq!(err.kind.exit_code(), 2);
        assert!(err.message.contains(&format!(r#"table "analytics"."{table}" does not exist"#)), "{}", err.message);
        assert_eq!(texts(&client, statuses).await, ["UY", "UY"], "{table}: the stored in-service pairs stay open");
        let resolved = texts(&client, r#"SELECT "NotificationType" FROM conflict.notifications WHERE "NotificationType" = 'Resolved'"#).await;
        assert_eq!(resolved, Vec::<String>::new(), "{table}");
        assert_released(&client).await;
        client.batch_execute(&format!("ALTER TABLE analytics.{table}_gone RENAME TO {table}")).await.unwrap();
    }
    let summary = run(&mut client, &settings(), DetectionMode::Full).await.unwrap();
    assert_eq!(summary.resolved, 0);
    assert_eq!(texts(&client, statuses).await, ["UY", "UY"]);
}
