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
    let first = run(&mut client, &settings(), DetectionMode::Full).await.unwrap();
    // The summary counts the event pairs too (it said "pairs_detected 4, inserted 6" before).
    assert_eq!((first.pairs_detected, first.event_pairs_detected, first.inserted), (4, 2, 6), "{first:?}");
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

/// Finding: a visit whose `"Visit Updated Timestamp"` is NULL (a mirror
/// filled by hand, as the docs' own examples are) was invisible to every
/// incremental run: after moving visit 2 away from visit 1 and adding a
/// visit 6 on top of visit 1 and an in-service event overlapping visit 3
/// (also without `"Updated Datatimestamp"`), the default `thaw conflicts` reported
/// "incremental, keys_touched 0" and left the vanished pair open and the new
/// one undetected until a `--full` run. Such visits count as changed on every
/// incremental run, so it ends like a full run; the summary warns how many
/// there are (docs/conflicts.md §D1).
#[tokio::test]
async fn conflict_visit_without_change_timestamp_is_seen_by_incremental_runs() {
    let mut client = planted("cf_nullts").await;
    run(&mut client, &settings(), DetectionMode::Full).await.unwrap();
    client
        .batch_execute(
            r#"UPDATE analytics.factvisitcallperformance_cr SET "Scheduled Start Time" = '2025-03-12 14:00-04',
                   "Scheduled End Time" = '2025-03-12 15:00-04', "Visit Updated Timestamp" = NULL WHERE "Application Visit Id" = 102;
               INSERT INTO analytics.factvisitcallperformance_cr ("Visit Id", "Application Visit Id", "Visit Date", "Caregiver Id",
                   "Provider Id", "Scheduled Start Time", "Scheduled End Time", "Is Missed")
               VALUES ('00000000-0000-0000-0000-000000000006', 106, '2025-03-12', '00000000-0000-0000-0000-0000000000cb',
                   '00000000-0000-0000-0000-00000000000b', '2025-03-12 10:00-04', '2025-03-12 12:00-04', false);
               INSERT INTO analytics.factcaregiverinservice ("Application Caregiver Inservice Id", "Environment", "Caregiver Id",
                   "Provider Id", "Inservice start date", "Inservice end date")
               VALUES (501, 'prod', '00000000-0000-0000-0000-0000000000cb', '00000000-0000-0000-0000-00000000000b',
                   '2025-03-05 09:30-05', '2025-03-05 12:00-05');"#,
        )
        .await
        .unwrap();
    let summary = run(&mut client, &settings(), DetectionMode::Incremental).await.unwrap();
    assert_eq!((summary.mode.as_deref(), summary.keys_touched), (Some("incremental"), Some(2)), "{summary:?}");
    // 1↔6 and the in-service event ↔ visit 3 (09:00–10:00 at A) are new, 1↔2 vanished.
    assert_eq!((summary.inserted, summary.resolved), (4, 2), "{summary:?}");
    let events = texts(&client, r#"SELECT "StatusFlag" FROM conflict.conflictvisitmaps WHERE "InServiceFlag" = 'Y'"#).await;
    assert_eq!(events, ["U", "U"]);
    let expected_warning = "3 visit, deleted-visit, in-service or absence rows have a NULL or infinite change timestamp";
    assert!(summary.warnings.iter().any(|w| w.starts_with(expected_warning)), "{:?}", summary.warnings);
    let statuses = r#"SELECT right("VisitID"::text, 1) || '>' || right("ConVisitID"::text, 1) || ' ' || "StatusFlag"
                      FROM conflict.conflictvisitmaps ORDER BY 1"#;
    let after_incremental = texts(&client, statuses).await;
    assert_eq!(after_incremental.len(), 8);
    assert_eq!(after_incremental[..6], ["1>2 R", "1>6 U", "2>1 R", "3>4 U", "3>6 U", "4>3 U"]);

    // The next incremental night reads those keys again and changes nothing.
    let again = run(&mut client, &settings(), DetectionMode::Incremental).await.unwrap();
    assert_eq!((again.keys_touched, again.inserted, again.updated, again.resolved), (Some(2), 0, 0, 0), "{again:?}");
    // And a full run agrees.
    let full = run(&mut client, &settings(), DetectionMode::Full).await.unwrap();
    assert_eq!((full.inserted, full.updated, full.resolved), (0, 0, 0), "{full:?}");
    assert_eq!(texts(&client, statuses).await, after_incremental);
}

/// Finding: a change timestamp of `infinity` (a visit's `"Visit Updated
/// Timestamp"`, a caregiver's `"Updated Datatimestamp"`) made every run,
/// `--full` included, panic decoding the watermark ("conflict detection
/// panicked … this is a bug in thaw", exit 1), and had it been stored, no
/// later change would ever have been newer. The watermark takes finite
/// stamps only; a row stamped `infinity` or `-infinity` cannot be placed
/// before or after it and counts as changed on every incremental run, like
/// a NULL stamp, which the summary counts in its warning; later changes are
/// seen (docs/conflicts.md §D1).
#[tokio::test]
async fn conflict_infinite_change_timestamps_neither_panic_nor_hide_later_changes() {
    let mut client = planted("cf_infts").await;
    client
        .batch_execute(
            r#"UPDATE analytics.factvisitcallperformance_cr SET "Visit Updated Timestamp" = 'infinity' WHERE "Application Visit Id" = 103;
               UPDATE analytics.factvisitcallperformance_cr SET "Visit Updated Timestamp" = '-infinity' WHERE "Application Visit Id" = 104;
               UPDATE analytics.dimcaregiver SET "Updated Datatimestamp" = 'infinity' WHERE "Application Caregiver Id" = 12;"#,
        )
        .await
        .unwrap();
    let first = run(&mut client, &settings(), DetectionMode::Full).await.expect("a full night");
    assert_eq!(first.inserted, 4, "{first:?}");
    let expected_warning = "2 visit, deleted-visit, in-service or absence rows have a NULL or infinite change timestamp";
    assert!(first.warnings.iter().any(|w| w.starts_with(expected_warning)), "{:?}", first.warnings);
    let stored = texts(&client, r#"SELECT "SourceChangedUpTo"::text FROM conflict.conflict_watermark"#).await;
    assert_eq!(stored, ["2025-03-01 00:00:00+00"], "the largest finite stamp");

    // Visit 102 moves off visit 101's schedule: the next incremental night sees it.
    client
        .batch_execute(
            r#"UPDATE analytics.factvisitcallperformance_cr SET "Scheduled Start Time" = '2025-03-12 14:00-04',
                   "Scheduled End Time" = '2025-03-12 15:00-04', "Visit Updated Timestamp" = now() WHERE "Application Visit Id" = 102"#,
        )
        .await
        .unwrap();
    let night = run(&mut client, &settings(), DetectionMode::Incremental).await.expect("an incremental night");
    assert_eq!((night.mode.as_deref(), night.keys_touched), (Some("incremental"), Some(2)), "{night:?}");
    assert_eq!((night.inserted, night.updated, night.resolved), (0, 0, 2), "{night:?}");
    assert_eq!(stored_pairs(&client).await, ["1>2", "2>1", "3>4", "4>3"]);
    let statuses = texts(&client, r#"SELECT "StatusFlag" FROM conflict.conflictvisitmaps ORDER BY "AppVisitID""#).await;
    assert_eq!(statuses, ["R", "R", "U", "U"]);
    // The infinitely stamped rows are read again each night and change nothing.
    let again = run(&mut client, &settings(), DetectionMode::Incremental).await.expect("another incremental night");
    assert_eq!((again.keys_touched, again.inserted, again.updated, again.resolved), (Some(2), 0, 0, 0), "{again:?}");
}

/// Finding: a visit time of `infinity` or `-infinity` (valid in a
/// `timestamptz` column, never written by sync) failed the night as
/// `Internal` "decoding column 8 (timestamptz) of the candidate COPY: error
/// deserializing column 8": no visit, no column, exit 1. It is bad input:
/// `TypeUnsupported` (exit 2, never retried) naming the visit and the
/// column, nothing written, lock and flag released (docs/conflicts.md §2.4).
#[tokio::test]
async fn conflict_infinite_visit_time_is_bad_input_naming_the_visit_and_column() {
    let mut client = planted("cf_inftime").await;
    for (column, value, visit) in [("Visit End Time", "infinity", 3), ("Scheduled Start Time", "-infinity", 1)] {
        let sql = format!(r#"UPDATE analytics.factvisitcallperformance_cr SET "{column}" = '{value}' WHERE "Application Visit Id" = 10{visit}"#);
        client.batch_execute(&sql).await.unwrap();
        let err = run(&mut client, &settings(), DetectionMode::Full).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::TypeUnsupported, "{err}");
        assert_eq!(err.kind.exit_code(), 2);
        assert!(!err.kind.is_retryable());
        let expected = format!(r#"visit 00000000-0000-0000-0000-00000000000{visit} (factvisitcallperformance_cr) has a "{column}" that is no instant"#);
        assert!(err.message.contains(&expected), "{}", err.message);
        assert!(err.message.contains("set it to NULL"), "{}", err.message);
        assert_eq!(stored_pairs(&client).await, Vec::<String>::new(), "nothing written");
        assert_released(&client).await;
        client.batch_execute(&format!(r#"UPDATE analytics.factvisitcallperformance_cr SET "{column}" = NULL WHERE "Application Visit Id" = 10{visit}"#)).await.unwrap();
    }
    // A visit alone on its key cannot pair, and a full read leaves its key
    // out (docs/conflicts.md §14), yet its infinite time is still bad input,
    // as in an incremental read of that key.
    client
        .batch_execute(
            r#"INSERT INTO analytics.factvisitcallperformance_cr ("Visit Id", "Application Visit Id", "Visit Date", "Caregiver Id", "Provider Id", "Visit End Time")
               SELECT '00000000-0000-0000-0000-000000000199', 199, "Visit Date" - 100, "Caregiver Id", "Provider Id", 'infinity'
               FROM analytics.factvisitcallperformance_cr WHERE "Application Visit Id" = 101"#,
        )
        .await
        .unwrap();
    let err = run(&mut client, &settings(), DetectionMode::Full).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::TypeUnsupported, "{err}");
    let expected = r#"visit 00000000-0000-0000-0000-000000000199 (factvisitcallperformance_cr) has a "Visit End Time" that is no instant"#;
    assert!(err.message.contains(expected), "{}", err.message);
    assert_eq!(stored_pairs(&client).await, Vec::<String>::new(), "nothing written");
    assert_released(&client).await;
    client.batch_execute(r#"DELETE FROM analytics.factvisitcallperformance_cr WHERE "Application Visit Id" = 199"#).await.unwrap();
    let summary = run(&mut client, &settings(), DetectionMode::Full).await.expect("the night once the values are NULL");
    // 101 has no schedule start: no rule 1 pair; 103 is a partial visit now: no rule 7 pair.
    assert_eq!(summary.inserted, 0, "{summary:?}");
}

/// Finding: `conflicts.conflict_schema` set to a schema the migrations never
/// create failed with `relation "cr.settings" does not exist` and no hint
/// that the migrations only create `conflict` (docs/conflicts.md §3.3).
#[tokio::test]
async fn conflict_schema_without_the_conflict_tables_says_what_to_do() {
    let mut client = planted("cf_schema").await;
    let custom = thaw_engine::config::ConflictSettings { conflict_schema: Some("cr".into()), ..settings() };
    let err = run(&mut client, &custom, DetectionMode::Full).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::SchemaMismatch, "{err}");
    assert_eq!(err.kind.exit_code(), 2);
    for needle in [r#"relation "cr.settings" does not exist"#, r#"The conflict schema "cr" has no settings table"#, "conflicts.conflict_schema"] {
        assert!(err.message.contains(needle), "{needle} not in: {}", err.message);
    }
    // The lock is free and the default schema untouched.
    assert_released(&client).await;
    assert_eq!(stored_pairs(&client).await, Vec::<String>::new());
}
