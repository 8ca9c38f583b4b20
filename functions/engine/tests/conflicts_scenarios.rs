//! Multi-night scenarios against a real PostgreSQL (docs/conflicts.md §8–§9):
//! night 1 detects; the application then sets its own statuses and columns;
//! night 2 sees the source change (a visit updated, one deleted, one missed,
//! one moved to another state); night 3 sees a resolved pair detected again
//! and is run twice. After every night the test checks the statuses, the
//! notifications, the log history, the reminders, the agency contacts and
//! that every column the application owns is untouched.
//!
//! Run under tests/harness.py (`make test`), which exports THAW_PG_*.

use thaw_engine::conflicts::history::CROSS_STATE_REASON;
use thaw_engine::contract::StatusChanges;
// Planted data: pairs 1↔2 (rule 1, 2025-03-12) and 3↔4 (rule 7,
// 2025-03-05), "today" 2025-03-10.
use thaw_test_support::conflicts::{planted, planted_night as night, strings, texts};
use tokio_postgres::Client;

/// Two more colliding pairs at agencies A and B (rule 1): 7↔8 on 2025-03-13
/// (visit 8's patient has its own NY address, moved to PA on night 2) and
/// 11↔12 on 2025-03-14; agency contacts kept by A for B; the payer-provider
/// dimension with one payer at A and B.
const SCENARIO: &str = r#"
INSERT INTO analytics.dimpatient ("Patient Id", "Application Patient Id", "Patient Name") VALUES
  ('00000000-0000-0000-0000-0000000000e3', 23, 'Pat Three');
INSERT INTO analytics.dimpatientaddress ("Patient Address Id", "Patient Id", "Address Type", "Primary Address",
    "Zip Code", "Address State", "Latitude", "Longitude", "Application Created UTC Timestamp") VALUES
  ('00000000-0000-0000-0000-0000000000f3', '00000000-0000-0000-0000-0000000000e3', 'GPS', true, '11215', 'NY', 40.66, -73.98, '2020-01-01Z');
INSERT INTO analytics.factvisitcallperformance_cr ("Visit Id", "Application Visit Id", "Visit Date", "Caregiver Id",
    "Provider Id", "Application Provider Id", "Provider Patient Id", "Payer Id", "Scheduled Start Time", "Scheduled End Time", "Is Missed") VALUES
  ('00000000-0000-0000-0000-000000000007', 107, '2025-03-13', '00000000-0000-0000-0000-0000000000ca', '00000000-0000-0000-0000-00000000000a', 1,
   '00000000-0000-0000-0000-0000000000e1', '00000000-0000-0000-0000-0000000000a1', '2025-03-13 09:00-04', '2025-03-13 13:00-04', false),
  ('00000000-0000-0000-0000-000000000008', 108, '2025-03-13', '00000000-0000-0000-0000-0000000000cb', '00000000-0000-0000-0000-00000000000b', 2,
   '00000000-0000-0000-0000-0000000000e3', '00000000-0000-0000-0000-0000000000a1', '2025-03-13 09:00-04', '2025-03-13 13:00-04', false),
  ('00000000-0000-0000-0000-000000000011', 111, '2025-03-14', '00000000-0000-0000-0000-0000000000ca', '00000000-0000-0000-0000-00000000000a', 1,
   '00000000-0000-0000-0000-0000000000e1', NULL, '2025-03-14 09:00-04', '2025-03-14 13:00-04', false),
  ('00000000-0000-0000-0000-000000000012', 112, '2025-03-14', '00000000-0000-0000-0000-0000000000cb', '00000000-0000-0000-0000-00000000000b', 2,
   '00000000-0000-0000-0000-0000000000e2', NULL, '2025-03-14 09:00-04', '2025-03-14 13:00-04', false);
INSERT INTO analytics.dimpayer ("Payer Id", "Application Payer Id", "Payer Name", "Is Active", "Is Demo") VALUES
  ('00000000-0000-0000-0000-0000000000a1', 501, 'Payer One', true, false);
INSERT INTO analytics.dimpayerprovider ("Payer Id", "Application Payer Id", "Provider Id", "Application Provider Id") VALUES
  ('00000000-0000-0000-0000-0000000000a1', 501, '00000000-0000-0000-0000-00000000000a', 1),
  ('00000000-0000-0000-0000-0000000000a1', 501, '00000000-0000-0000-0000-00000000000b', 2);
INSERT INTO conflict.contact_maintenance ("ProviderID", "PID", "CONTACT_NAME", "PHONE", "UPDATED_AT") VALUES
  ('00000000-0000-0000-0000-00000000000a', '00000000-0000-0000-0000-00000000000b', 'Old Contact', '555-0100', '2024-01-01'),
  ('00000000-0000-0000-0000-00000000000a', '00000000-0000-0000-0000-00000000000B', 'Bea at B', '555-0102', '2025-01-01');
"#;

/// "VisitID>ConVisitID:pair status" (application visit ids modulo 100, `*` = ResolveDate set).
async fn pairs(client: &Client) -> Vec<String> {
    texts(
        client,
        r#"SELECT "AppVisitID" % 100 || '>' || "ConAppVisitID" % 100 || ':' || "StatusFlag" || (CASE WHEN "ResolveDate" IS NULL THEN '' ELSE '*' END)
           FROM conflict.conflictvisitmaps ORDER BY "AppVisitID", "ConAppVisitID""#,
    )
    .await
}

/// "primary visit:conflict status".
async fn conflicts(client: &Client) -> Vec<String> {
    texts(
        client,
        r#"SELECT s FROM (SELECT DISTINCT c."AppVisitID" AS v, c."AppVisitID" % 100 || ':' || k."StatusFlag" || (CASE WHEN k."ResolveDate" IS NULL THEN '' ELSE '*' END) AS s
           FROM conflict.conflicts k JOIN conflict.conflictvisitmaps c USING ("CONFLICTID")) x ORDER BY v"#,
    )
    .await
}

/// "primary visit:type:provider app id:contract" per notification.
async fn notifications(client: &Client) -> Vec<String> {
    texts(
        client,
        r#"SELECT DISTINCT ON (n."ID") (SELECT c."AppVisitID" % 100 FROM conflict.conflictvisitmaps c WHERE c."CONFLICTID" = n."CONFLICTID" LIMIT 1)
                  || ':' || n."NotificationType" || ':' || n."AppProviderID" || ':' || coalesce(n."Contract", '-')
           FROM conflict.notifications n ORDER BY n."ID""#,
    )
    .await
}

/// "pair:field:old>new" per log_history_values row of `LogTypeFlag` 'UpdatedNew' written after log_history id `after`.
async fn history_values(client: &Client, after: i64) -> Vec<String> {
    let mut rows: Vec<String> = client
        .query(
            r#"SELECT c."AppVisitID" % 100 || '>' || c."ConAppVisitID" % 100 || ':' || f."FieldName" || ':'
                      || coalesce(left(v."OldValue", 19), '-') || '>' || coalesce(left(v."NewValue", 19), '-')
               FROM conflict.log_history h JOIN conflict.log_history_values v ON v."LHID" = h."ID"
               JOIN conflict.log_fields f ON f."ID" = v."LogID" JOIN conflict.conflictvisitmaps c ON c."ID" = h."CONID"
               WHERE h."ID" > $1 AND h."LogTypeFlag" = 'UpdatedNew'"#,
            &[&after],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    rows.sort();
    rows
}

async fn count(client: &Client, sql: &str) -> i64 {
    client
        .query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0)
}

/// The application's own columns, as the application set them between the nights.
async fn user_columns(client: &Client) -> Vec<String> {
    texts(
        client,
        r#"SELECT 'cvm ' || "AppVisitID" % 100 || '>' || "ConAppVisitID" % 100 || ': ' || concat_ws('/', "FlagForReview", "ConNoResponseNotes", "AggFlagForReview")
             FROM conflict.conflictvisitmaps WHERE "FlagForReview" IS NOT NULL OR "ConNoResponseNotes" IS NOT NULL OR "AggFlagForReview" IS NOT NULL
           UNION ALL
           SELECT 'cf ' || "CONFLICTID" || ': ' || concat_ws('/', "NoResponseFlag", "NoResponseNotes", "FlagForReview")
             FROM conflict.conflicts WHERE "NoResponseFlag" IS NOT NULL OR "FlagForReview" IS NOT NULL
           UNION ALL
           SELECT 'reminder ' || "AppProviderID" || ': ' || "NumberOfDays" FROM conflict.payer_provider_reminders WHERE "NumberOfDays" IS NOT NULL
           UNION ALL
           SELECT 'read ' || "ID" || ': ' || "ReadUnreadFlag" FROM conflict.notifications WHERE "ReadUnreadFlag" <> 0
           ORDER BY 1"#,
    )
    .await
}

/// Three nights of one installation (see the module docs): statuses
/// (A22–A28), notifications (`New Conflict` once per conflict, `Resolved`
/// for conflicts closed today, nothing twice), log history (`Inserted` per
/// new pair, `UpdatedNew` with old and new values per changed field, the
/// cross-state system reason of §D6), reminders (new pairs, names refreshed,
/// `NumberOfDays` kept), agency contacts (filled when empty, the latest entry)
/// and the application's columns, never written.
#[tokio::test]
async fn conflict_scenario_three_nights_with_application_changes_in_between() {
    let mut client = planted("cf_nights").await;
    client.batch_execute(SCENARIO).await.unwrap();

    // Night 1: eight pairs, eight conflicts, all new.
    let first = night(&mut client).await;
    assert_eq!(
        (first.inserted, first.conflicts_created),
        (8, 8),
        "{first:?}"
    );
    assert_eq!(
        pairs(&client).await,
        strings(&["1>2:U", "2>1:U", "3>4:U", "4>3:U", "7>8:U", "8>7:U", "11>12:U", "12>11:U"])
    );
    assert_eq!(
        notifications(&client).await,
        strings(&[
            "1:New Conflict:1:-",
            "2:New Conflict:2:-",
            "3:New Conflict:1:-",
            "4:New Conflict:2:-",
            "7:New Conflict:1:Payer One",
            "8:New Conflict:2:Payer One",
            "11:New Conflict:1:-",
            "12:New Conflict:2:-"
        ])
    );
    assert_eq!(
        count(
            &client,
            r#"SELECT count(*) FROM conflict.log_history WHERE "LogTypeFlag" = 'Inserted'"#
        )
        .await,
        8
    );
    assert_eq!(
        count(
            &client,
            r#"SELECT count(*) FROM conflict.log_history_values"#
        )
        .await,
        0
    );
    // Contacts: A keeps the latest entry for B; shown as the conflicting agency's contact on A's pairs
    // and as the agency's own contact on B's pairs; B keeps none for A.
    assert_eq!(
        texts(
            &client,
            r#"SELECT "AppVisitID" % 100 || '>' || "ConAppVisitID" % 100 || ':' || concat_ws('/', coalesce("AgencyContact", '-'), coalesce("AgencyPhone", '-'),
                      coalesce("ConAgencyContact", '-'), coalesce("ConAgencyPhone", '-'))
               FROM conflict.conflictvisitmaps WHERE "AppVisitID" IN (101, 102) ORDER BY "AppVisitID""#
        )
        .await,
        strings(&["1>2:-/-/Bea at B/555-0102", "2>1:Bea at B/555-0102/-/-"])
    );
    assert_eq!(
        texts(
            &client,
            r#"SELECT "AppProviderID" || ':' || "ProviderName" || ':' || "Contract" || ':' || "AppPayerID" FROM conflict.payer_provider_reminders ORDER BY "AppProviderID""#
        )
        .await,
        strings(&["1:Agency A:Payer One:501", "2:Agency B:Payer One:501"])
    );

    // The application: whitelists (1,2), answers "no response" on visit 2's conflict, flags
    // things for review, writes notes, marks a notice read and sets a reminder cadence.
    client
        .batch_execute(
            r#"UPDATE conflict.conflictvisitmaps SET "StatusFlag" = 'W' WHERE "AppVisitID" = 101;
               UPDATE conflict.conflicts SET "NoResponseFlag" = 'Yes', "NoResponseNotes" = 'no answer'
                 WHERE "CONFLICTID" = (SELECT "CONFLICTID" FROM conflict.conflictvisitmaps WHERE "AppVisitID" = 102 LIMIT 1);
               UPDATE conflict.conflicts SET "FlagForReview" = 'Y'
                 WHERE "CONFLICTID" = (SELECT "CONFLICTID" FROM conflict.conflictvisitmaps WHERE "AppVisitID" = 103 LIMIT 1);
               UPDATE conflict.conflictvisitmaps SET "FlagForReview" = 'Y' WHERE "AppVisitID" = 103;
               UPDATE conflict.conflictvisitmaps SET "ConNoResponseNotes" = 'called twice', "AggFlagForReview" = 'Y' WHERE "AppVisitID" = 108;
               UPDATE conflict.payer_provider_reminders SET "NumberOfDays" = 7 WHERE "AppProviderID" = 2;
               UPDATE conflict.notifications SET "ReadUnreadFlag" = 1 WHERE "ID" = (SELECT min("ID") FROM conflict.notifications);"#,
        )
        .await
        .unwrap();
    let user_before = user_columns(&client).await;
    assert_eq!(user_before.len(), 6, "{user_before:?}");
    let last_log = count(&client, r#"SELECT max("ID") FROM conflict.log_history"#).await;

    // Night 2: visit 2 starts later (rule 4 as well), visit 4 is deleted, visit 12 is missed,
    // visit 8's patient moves to Pennsylvania; the payer is renamed; a new payer-provider pair.
    client
        .batch_execute(
            r#"UPDATE analytics.factvisitcallperformance_cr SET "Scheduled Start Time" = '2025-03-12 09:30-04' WHERE "Application Visit Id" = 102;
               INSERT INTO analytics.factvisitcallperformance_deleted_cr ("Visit Id", "Visit Date")
                 SELECT "Visit Id", "Visit Date" FROM analytics.factvisitcallperformance_cr WHERE "Application Visit Id" = 104;
               DELETE FROM analytics.factvisitcallperformance_cr WHERE "Application Visit Id" = 104;
               UPDATE analytics.factvisitcallperformance_cr SET "Is Missed" = true WHERE "Application Visit Id" = 112;
               UPDATE analytics.dimpatientaddress SET "Address State" = 'PA' WHERE "Patient Id" = '00000000-0000-0000-0000-0000000000e3';
               UPDATE analytics.dimpayer SET "Payer Name" = 'Payer One Inc';
               INSERT INTO analytics.dimpayerprovider ("Payer Id", "Application Payer Id", "Provider Id", "Application Provider Id") VALUES
                 ('00000000-0000-0000-0000-0000000000a1', 501, '00000000-0000-0000-0000-00000000000c', 3);"#,
        )
        .await
        .unwrap();
    let second = night(&mut client).await;
    let after_night_2 = strings(&[
        "1>2:W", "2>1:U", "3>4:D*", "4>3:R*", "7>8:R*", "8>7:R*", "11>12:R*", "12>11:R*",
    ]);
    assert_eq!(pairs(&client).await, after_night_2);
    let conflicts_after_night_2 = strings(&[
        "1:U", "2:N", "3:R*", "4:D*", "7:R*", "8:R*", "11:R*", "12:R*",
    ]);
    assert_eq!(conflicts(&client).await, conflicts_after_night_2);
    // docs/conflicts.md §8.2.2: the night's net status changes, by new status.
    assert_eq!(
        second.status_changes,
        StatusChanges {
            pairs_deleted: 1,
            pairs_resolved: 5,
            conflicts_deleted: 1,
            conflicts_resolved: 5,
            conflicts_no_response: 1,
            ..Default::default()
        },
        "{second:?}"
    );
    let flags: Vec<String> = texts(
        &client,
        r#"SELECT "SameSchTimeFlag" || "SchOverAnotherSchTimeFlag" FROM conflict.conflictvisitmaps WHERE "AppVisitID" IN (101, 102) ORDER BY "AppVisitID""#,
    )
    .await;
    assert_eq!(
        flags,
        strings(&["YY", "YY"]),
        "rule 4 goes N→Y, rule 1 stays Y (sticky)"
    );
    let resolved_by = texts(
        &client,
        r#"SELECT coalesce("ResolvedBy", '-') FROM conflict.conflictvisitmaps WHERE "AppVisitID" IN (103, 104) ORDER BY "AppVisitID""#,
    )
    .await;
    assert_eq!(
        resolved_by,
        strings(&["Bea at B", "-"]),
        "a deleted conflicting visit: its agency's contact"
    );
    let resolved_notices = strings(&[
        "3:Resolved:1:-",
        "4:Resolved:2:-",
        "7:Resolved:1:Payer One",
        "8:Resolved:2:Payer One",
        "11:Resolved:1:-",
        "12:Resolved:2:-",
    ]);
    // (A resolved pair's snapshot is not pulled again, so its Contract is night 1's.)
    let all_notices: Vec<String> = notifications(&client).await;
    assert_eq!(all_notices[8..], resolved_notices[..], "{all_notices:?}");
    let cross = CROSS_STATE_REASON.get(..19).unwrap();
    let mut expected_history = strings(&[
        "1>2:ConSchStartTime:2025-03-12 09:00:00>2025-03-12 09:30:00",
        "11>12:ConStatusFlag:U>R",
        "11>12:StatusFlag:U>R",
        "12>11:ConStatusFlag:U>R",
        "12>11:StatusFlag:U>R",
        "2>1:SchStartTime:2025-03-12 09:00:00>2025-03-12 09:30:00",
        "2>1:StatusFlag:U>N",
        "3>4:ConStatusFlag:U>D",
        "3>4:ResolvedBy:->Bea at B",
        "3>4:StatusFlag:U>R",
        "4>3:ConStatusFlag:U>R",
        "4>3:StatusFlag:U>D",
        &format!("7>8:ResolveReason:->{cross}"),
        "7>8:ConStatusFlag:U>R",
        "7>8:StatusFlag:U>R",
        &format!("8>7:ResolveReason:->{cross}"),
        "8>7:ConStatusFlag:U>R",
        "8>7:StatusFlag:U>R",
    ]);
    expected_history.sort();
    assert_eq!(history_values(&client, last_log).await, expected_history);
    assert_eq!(
        texts(
            &client,
            r#"SELECT "AppProviderID" || ':' || "Contract" || ':' || coalesce("NumberOfDays"::text, '-') FROM conflict.payer_provider_reminders ORDER BY "AppProviderID""#
        )
        .await,
        strings(&["1:Payer One Inc:-", "2:Payer One Inc:7", "3:Payer One Inc:-"])
    );
    assert_eq!(
        user_columns(&client).await,
        user_before,
        "the application's columns are never written"
    );

    // Night 3: visit 12 is not missed after all: its pairs are detected again and reopen; the
    // night runs twice (a rerun after an operator's doubt) and the second run adds nothing.
    client
        .batch_execute(r#"UPDATE analytics.factvisitcallperformance_cr SET "Is Missed" = false WHERE "Application Visit Id" = 112"#)
        .await
        .unwrap();
    let third = night(&mut client).await;
    let after_night_3 = strings(&[
        "1>2:W", "2>1:U", "3>4:D*", "4>3:R*", "7>8:R*", "8>7:R*", "11>12:U", "12>11:U",
    ]);
    assert_eq!(pairs(&client).await, after_night_3);
    assert_eq!(
        conflicts(&client).await,
        strings(&["1:U", "2:N", "3:R*", "4:D*", "7:R*", "8:R*", "11:U", "12:U"])
    );
    assert_eq!(
        third.status_changes,
        StatusChanges { pairs_reopened: 2, conflicts_reopened: 2, ..Default::default() },
        "{third:?}"
    );
    let notices = notifications(&client).await;
    assert_eq!(
        notices.len(),
        14,
        "a reopened conflict is not new again: {notices:?}"
    );
    let log_rows = count(&client, "SELECT count(*) FROM conflict.log_history").await;
    let log_values = count(&client, "SELECT count(*) FROM conflict.log_history_values").await;

    let rerun = night(&mut client).await;
    assert_eq!(pairs(&client).await, after_night_3);
    assert_eq!(rerun.status_changes, StatusChanges::default(), "{rerun:?}");
    assert_eq!(
        notifications(&client).await,
        notices,
        "a rerun of the night adds no notification"
    );
    assert_eq!(
        count(&client, "SELECT count(*) FROM conflict.log_history").await,
        log_rows,
        "a rerun records no history"
    );
    assert_eq!(
        count(&client, "SELECT count(*) FROM conflict.log_history_values").await,
        log_values
    );
    assert_eq!(
        count(
            &client,
            "SELECT count(*) FROM conflict.payer_provider_reminders"
        )
        .await,
        3
    );
    assert_eq!(
        user_columns(&client).await,
        user_before,
        "the application's columns are never written"
    );
}
