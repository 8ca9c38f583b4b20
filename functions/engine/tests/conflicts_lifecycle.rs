//! The status lifecycle of docs/conflicts.md §8.2 against a real PostgreSQL:
//! deleted visits → `D` (terminal), missed visits → `R` without churn,
//! reopening on re-detection, cascades between `conflicts` and
//! `conflictvisitmaps` (acceptance scenarios A23–A26 of §13.5).
//!
//! Run under tests/harness.py (`make test`), which exports THAW_PG_*.

use thaw_engine::config::ConflictSettings;
use thaw_engine::conflicts::store::{
    is_nightly_writable, Table, USER_OWNED_CONFLICT_COLUMNS, USER_OWNED_CVM_COLUMNS,
};
use thaw_engine::conflicts::{run, DetectionMode};
use thaw_engine::contract::StatusChanges;
use thaw_engine::error::ErrorKind;
// Planted data: 4 pairs (1↔2 rule 1 on 2025-03-12, 3↔4 rule 7 on 2025-03-05), "today" 2025-03-10.
use thaw_test_support::conflicts::{planted, planted_night as detect, planted_settings as settings, strings, texts, PLANTED_TODAY};
use tokio_postgres::Client;

/// "VisitID→ConVisitID:pair status/ResolveDate set?" per pair, by application visit ids.
async fn pair_states(client: &Client) -> Vec<String> {
    client
        .query(
            r#"SELECT "AppVisitID" % 100 || '>' || "ConAppVisitID" % 100 || ':' || "StatusFlag" || (CASE WHEN "ResolveDate" IS NULL THEN '' ELSE '*' END)
               FROM conflict.conflictvisitmaps ORDER BY "AppVisitID", "ConAppVisitID""#,
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// The first column (text) of every row of `sql`.
/// "primary visit:conflict status/ResolveDate set?" per conflict.
async fn conflict_states(client: &Client) -> Vec<String> {
    client
        .query(
            r#"SELECT DISTINCT c."AppVisitID" % 100 || ':' || k."StatusFlag" || (CASE WHEN k."ResolveDate" IS NULL THEN '' ELSE '*' END), c."AppVisitID"
               FROM conflict.conflicts k JOIN conflict.conflictvisitmaps c USING ("CONFLICTID") ORDER BY c."AppVisitID""#,
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// ResolveDate and UpdatedDate of the pair whose primary visit is 103.
async fn resolved_at(c: &Client) -> (Option<String>, Option<String>) {
    let row = c
        .query_one(r#"SELECT max("ResolveDate")::text, max("UpdatedDate")::text FROM conflict.conflictvisitmaps WHERE "AppVisitID" = 103"#, &[])
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

/// A24: the conflicting visit deleted → its pair `D` (with ResolveDate); the
/// conflict of the deleted primary visit → `D`; later runs never change `D`.
#[tokio::test]
async fn conflict_lifecycle_deleted_visit_marks_pair_and_conflict_deleted() {
    let mut client = planted("cf_deleted").await;
    detect(&mut client).await;
    client
        .batch_execute(
            r#"INSERT INTO analytics.factvisitcallperformance_deleted_cr ("Visit Id", "Visit Date")
                 SELECT "Visit Id", "Visit Date" FROM analytics.factvisitcallperformance_cr WHERE "Application Visit Id" = 102;
               DELETE FROM analytics.factvisitcallperformance_cr WHERE "Application Visit Id" = 102;"#,
        )
        .await
        .unwrap();
    detect(&mut client).await;
    let expected_pairs = strings(&["1>2:D*", "2>1:R*", "3>4:U", "4>3:U"]);
    let expected_conflicts = strings(&["1:R*", "2:D*", "3:U", "4:U"]);
    assert_eq!(pair_states(&client).await, expected_pairs);
    assert_eq!(conflict_states(&client).await, expected_conflicts);
    // ResolvedBy of the deleted pair: the conflicting agency's contact, else its name.
    let resolved_by: Option<String> = client
        .query_one(
            r#"SELECT "ResolvedBy" FROM conflict.conflictvisitmaps WHERE "AppVisitID" = 101"#,
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(resolved_by.as_deref(), Some("Agency B"));
    // D is terminal: another run (and a user reopening the other conflict) changes nothing about it.
    client
        .batch_execute(
            r#"UPDATE conflict.conflicts SET "StatusFlag" = 'U' WHERE "StatusFlag" = 'R'"#,
        )
        .await
        .unwrap();
    detect(&mut client).await;
    assert_eq!(pair_states(&client).await, expected_pairs);
    assert_eq!(
        conflict_states(&client).await,
        expected_conflicts,
        "a conflict whose only pair is D is resolved again"
    );
}

/// ResolveDate and UpdatedDate of the pair `primary>conflicting` (application visit ids).
async fn pair_dates(c: &Client, primary: i64, conflicting: i64) -> (Option<String>, Option<String>) {
    let row = c
        .query_one(
            r#"SELECT "ResolveDate"::text, "UpdatedDate"::text FROM conflict.conflictvisitmaps WHERE "AppVisitID" = $1 AND "ConAppVisitID" = $2"#,
            &[&primary, &conflicting],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

/// Deletes visit 102 as the source does: kept in `analytics.visit_102` (for
/// a later restore), recorded in the deleted-visits table with a change
/// timestamp of now, and removed from the visit table.
async fn delete_visit_102(client: &Client) {
    client
        .batch_execute(
            r#"CREATE TABLE analytics.visit_102 AS SELECT * FROM analytics.factvisitcallperformance_cr WHERE "Application Visit Id" = 102;
               INSERT INTO analytics.factvisitcallperformance_deleted_cr ("Visit Id", "Visit Date", "Visit Updated Timestamp")
                 SELECT "Visit Id", "Visit Date", now() FROM analytics.visit_102;
               DELETE FROM analytics.factvisitcallperformance_cr WHERE "Application Visit Id" = 102;"#,
        )
        .await
        .unwrap();
}

/// Adds visit 106: a copy of visit 101 (agency A, same caregiver, same
/// schedule on 2025-03-12), so it conflicts with visit 102 as 101 does.
async fn add_visit_106(client: &Client) {
    client
        .batch_execute(
            r#"CREATE TEMP TABLE visit_106 AS SELECT * FROM analytics.factvisitcallperformance_cr WHERE "Application Visit Id" = 101;
               UPDATE visit_106 SET "Visit Id" = '00000000-0000-0000-0000-000000000006', "Application Visit Id" = 106;
               INSERT INTO analytics.factvisitcallperformance_cr SELECT * FROM visit_106;"#,
        )
        .await
        .unwrap();
}

/// Night 1 detects; visit 102 is deleted (moved to the deleted-visits
/// table) and night 2 marks its pairs and conflict; then 102 is back in the
/// visit table, removed from the deleted table too unless `still_deleted`,
/// and night 3 runs incremental. With `new_stamp`, the restored row gets a
/// new `"Visit Updated Timestamp"`; without, it keeps its old one (as a
/// restore of the old row does). Returns the client after night 3 with the
/// summaries of nights 2 and 3 and the dates of both pairs after night 2.
async fn deleted_then_back(
    name: &str,
    still_deleted: bool,
    new_stamp: bool,
) -> (Client, [thaw_engine::contract::ConflictCreateResponse; 2], [(Option<String>, Option<String>); 2]) {
    let mut client = planted(name).await;
    detect(&mut client).await;
    delete_visit_102(&client).await;
    let night2 = run(&mut client, &settings(), DetectionMode::Incremental).await.expect("night 2");
    assert_eq!(pair_states(&client).await, strings(&["1>2:D*", "2>1:R*", "3>4:U", "4>3:U"]));
    assert_eq!(conflict_states(&client).await, strings(&["1:R*", "2:D*", "3:U", "4:U"]));
    let dates = [pair_dates(&client, 101, 102).await, pair_dates(&client, 102, 101).await];
    client
        .batch_execute(&format!(
            r#"INSERT INTO analytics.factvisitcallperformance_cr SELECT * FROM analytics.visit_102;
               {}
               {}"#,
            if new_stamp { r#"UPDATE analytics.factvisitcallperformance_cr SET "Visit Updated Timestamp" = now() WHERE "Application Visit Id" = 102;"# } else { "" },
            if still_deleted { "" } else { r#"DELETE FROM analytics.factvisitcallperformance_deleted_cr WHERE "Visit Id" IN (SELECT "Visit Id" FROM analytics.visit_102);"# }
        ))
        .await
        .unwrap();
    let night3 = run(&mut client, &settings(), DetectionMode::Incremental).await.expect("night 3");
    assert_eq!(night3.mode.as_deref(), Some("incremental"), "{night3:?}");
    (client, [night2, night3], dates)
}

/// docs/conflicts.md §8.2 step 1 and §D24: a deleted visit restored (back in
/// the visit table, gone from the deleted table) is detected again, and its
/// pairs come out as \[SF\]'s net outcome: the `D` pair of the other visit's
/// conflict reopens (`U`, ResolveDate and ResolvedBy cleared) and that
/// conflict with it; the restored visit's own conflict stays `D` (step 5
/// never reopens a `D` conflict) and pulls its only pair back to `R`
/// (cascade down), keeping the ResolveDate of night 2 where \[SF\] would reset
/// it. Later nights, full or incremental, write nothing: the lone pair of
/// the `D` conflict is not reopened and closed again every night (§D25,
/// \[SF\] rewrote it with a new UpdatedDate and ResolveDate each night). The
/// summary counts each night's status changes.
#[tokio::test]
async fn conflict_lifecycle_restored_visit_reopens_its_deleted_pair_as_sf_does() {
    let (mut client, [night2, night3], [_, resolved_2_1]) = deleted_then_back("cf_restored", false, true).await;
    assert_eq!(
        night2.status_changes,
        StatusChanges { pairs_deleted: 1, pairs_resolved: 1, conflicts_deleted: 1, conflicts_resolved: 1, ..Default::default() },
        "{night2:?}"
    );
    assert_eq!(pair_states(&client).await, strings(&["1>2:U", "2>1:R*", "3>4:U", "4>3:U"]));
    assert_eq!(conflict_states(&client).await, strings(&["1:U", "2:D*", "3:U", "4:U"]));
    let resolved_by: Option<String> = client
        .query_one(r#"SELECT "ResolvedBy" FROM conflict.conflictvisitmaps WHERE "AppVisitID" = 101"#, &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(resolved_by, None, "a reopened pair carries no ResolvedBy");
    assert_eq!(pair_dates(&client, 102, 101).await.0, resolved_2_1.0, "closed again the same night: ResolveDate kept (§D24)");
    assert_eq!(
        night3.status_changes,
        StatusChanges { pairs_reopened: 1, conflicts_reopened: 1, ..Default::default() },
        "{night3:?}"
    );
    let after_night3 = pair_dates(&client, 102, 101).await;
    let night4 = detect(&mut client).await;
    assert_eq!(pair_states(&client).await, strings(&["1>2:U", "2>1:R*", "3>4:U", "4>3:U"]));
    assert_eq!(conflict_states(&client).await, strings(&["1:U", "2:D*", "3:U", "4:U"]));
    assert_eq!(pair_dates(&client, 102, 101).await.0, resolved_2_1.0);
    assert_eq!(night4.status_changes, StatusChanges::default(), "{night4:?}");
    assert_eq!(pair_dates(&client, 102, 101).await, after_night3, "not reopened and closed again: UpdatedDate kept (§D25)");
    assert_eq!((night4.inserted, night4.updated, night4.resolved), (0, 0, 0), "a night without changes writes nothing: {night4:?}");
    let incremental = run(&mut client, &settings(), DetectionMode::Incremental).await.expect("night 5");
    assert_eq!((incremental.updated, incremental.keys_touched), (0, Some(0)), "{incremental:?}");
    assert_eq!(pair_dates(&client, 102, 101).await, after_night3);
}

/// docs/conflicts.md §D1: a visit restored with its old change timestamp
/// (the restore of the old row; its removal from the deleted table leaves no
/// trace) is still seen by an incremental night: the keys of stored `D` pairs
/// whose conflicting visit is back in the visit table and gone from the
/// deleted table are touched, so the night equals a full run's.
#[tokio::test]
async fn conflict_incremental_reopens_the_pairs_of_a_visit_restored_with_its_old_timestamp() {
    let (client, [_, night3], _) = deleted_then_back("cf_restored_old_stamp", false, false).await;
    assert_eq!(pair_states(&client).await, strings(&["1>2:U", "2>1:R*", "3>4:U", "4>3:U"]), "{night3:?}");
    assert_eq!(conflict_states(&client).await, strings(&["1:U", "2:D*", "3:U", "4:U"]));
    assert_eq!(night3.keys_touched, Some(1), "{night3:?}");
}

/// docs/conflicts.md §D24: a pair whose conflicting visit is detected again
/// while still in the deleted table stays `D` (\[SF\]: reopened by the
/// refresh and set `D` again by step 1 the same night, net `D`) and keeps
/// the ResolveDate of the night it became `D` (\[SF\] resets it to now); its
/// visit snapshot is refreshed (the restored visit's new update time), and a
/// night without changes rewrites nothing.
#[tokio::test]
async fn conflict_lifecycle_pair_of_a_visit_still_deleted_stays_deleted_when_detected_again() {
    let (mut client, [_, night3], [deleted_1_2, resolved_2_1]) = deleted_then_back("cf_still_deleted", true, true).await;
    assert_eq!(pair_states(&client).await, strings(&["1>2:D*", "2>1:R*", "3>4:U", "4>3:U"]));
    assert_eq!(conflict_states(&client).await, strings(&["1:R*", "2:D*", "3:U", "4:U"]));
    let after_night3 = pair_dates(&client, 101, 102).await;
    assert_eq!(after_night3.0, deleted_1_2.0, "the D pair keeps its ResolveDate");
    let changed: Option<String> = client
        .query_one(r#"SELECT "ConLastUpdatedDate"::text FROM conflict.conflictvisitmaps WHERE "AppVisitID" = 101"#, &[])
        .await
        .unwrap()
        .get(0);
    assert_ne!(after_night3.1, deleted_1_2.1, "the snapshot of the restored visit is refreshed ({changed:?})");
    assert_eq!(pair_dates(&client, 102, 101).await.0, resolved_2_1.0);
    assert_eq!(night3.status_changes, StatusChanges::default(), "{night3:?}");
    let night4 = detect(&mut client).await;
    assert_eq!(pair_states(&client).await, strings(&["1>2:D*", "2>1:R*", "3>4:U", "4>3:U"]));
    assert_eq!(pair_dates(&client, 101, 102).await, after_night3, "a night without changes does not rewrite the D pair");
    assert_eq!(night4.status_changes, StatusChanges::default(), "{night4:?}");
}

/// docs/conflicts.md §8.2 steps 5-7, literally: a restored visit whose own
/// `D` conflict has two pairs. Every pair reopens on re-detection; the other
/// visits' conflicts reopen (step 5); the restored visit's conflict stays `D`
/// (step 5 never reopens `D`) over two open pairs, because cascade down
/// needs one pair or all but one closed, and cascade up skips `D`.
#[tokio::test]
async fn conflict_lifecycle_restored_visit_with_two_pairs_keeps_its_deleted_conflict_over_open_pairs() {
    let mut client = planted("cf_restored_two").await;
    add_visit_106(&client).await;
    detect(&mut client).await;
    assert_eq!(pair_states(&client).await, strings(&["1>2:U", "2>1:U", "2>6:U", "3>4:U", "4>3:U", "6>2:U"]));
    delete_visit_102(&client).await;
    detect(&mut client).await;
    assert_eq!(pair_states(&client).await, strings(&["1>2:D*", "2>1:R*", "2>6:R*", "3>4:U", "4>3:U", "6>2:D*"]));
    assert_eq!(conflict_states(&client).await, strings(&["1:R*", "2:D*", "3:U", "4:U", "6:R*"]));
    client
        .batch_execute(
            r#"INSERT INTO analytics.factvisitcallperformance_cr SELECT * FROM analytics.visit_102;
               DELETE FROM analytics.factvisitcallperformance_deleted_cr;"#,
        )
        .await
        .unwrap();
    let night = detect(&mut client).await;
    assert_eq!(pair_states(&client).await, strings(&["1>2:U", "2>1:U", "2>6:U", "3>4:U", "4>3:U", "6>2:U"]));
    assert_eq!(conflict_states(&client).await, strings(&["1:U", "2:D*", "3:U", "4:U", "6:U"]));
    assert_eq!(night.status_changes, StatusChanges { pairs_reopened: 4, conflicts_reopened: 2, ..Default::default() }, "{night:?}");
}

/// docs/conflicts.md §D25, its limit: a restored visit whose `D` conflict
/// gains a new pair the night it comes back. \[SF\] reopens the closed pair
/// and inserts the new one under the same `CONFLICTID`; step 6 then sees
/// two open pairs and closes neither. thaw must not keep the closed pair
/// `R` (it is no longer the conflict's lone row), or step 6 would close the
/// new pair too.
#[tokio::test]
async fn conflict_lifecycle_restored_visit_with_a_new_pair_reopens_its_closed_pair() {
    let mut client = planted("cf_restored_new_pair").await;
    detect(&mut client).await;
    delete_visit_102(&client).await;
    detect(&mut client).await;
    assert_eq!(pair_states(&client).await, strings(&["1>2:D*", "2>1:R*", "3>4:U", "4>3:U"]));
    client
        .batch_execute(
            r#"INSERT INTO analytics.factvisitcallperformance_cr SELECT * FROM analytics.visit_102;
               DELETE FROM analytics.factvisitcallperformance_deleted_cr;"#,
        )
        .await
        .unwrap();
    add_visit_106(&client).await;
    let night = detect(&mut client).await;
    assert_eq!(pair_states(&client).await, strings(&["1>2:U", "2>1:U", "2>6:U", "3>4:U", "4>3:U", "6>2:U"]));
    assert_eq!(conflict_states(&client).await, strings(&["1:U", "2:D*", "3:U", "4:U", "6:U"]));
    assert_eq!(night.status_changes, StatusChanges { pairs_reopened: 2, conflicts_reopened: 1, ..Default::default() }, "{night:?}");
}

/// The mode and the touched keys of an incremental night on `today` (asserted incremental).
async fn incremental_night(client: &mut Client, today: &str) -> thaw_engine::contract::ConflictCreateResponse {
    let night = run(client, &thaw_test_support::conflicts::settings_on(today), DetectionMode::Incremental).await.expect("incremental night");
    assert_eq!(night.mode.as_deref(), Some("incremental"), "{night:?}");
    night
}

/// docs/conflicts.md §D1 over several incremental nights: a visit moved to
/// another date resolves its old pairs (and, through the cascade, the
/// conflict left with no open pair) and detects its new ones, which inherit
/// its `CONFLICTID`; moved to a caregiver with another SSN its pairs are
/// resolved with both conflicts; moved back they reopen with their ids.
/// Each night touches exactly the old and the new key.
#[tokio::test]
async fn conflict_visit_moved_to_another_date_or_caregiver_resolves_old_pairs_and_detects_new_ones() {
    let mut client = planted("cf_moved_visit").await;
    detect(&mut client).await;
    add_visit_106(&client).await;
    client
        .batch_execute(
            r#"UPDATE analytics.factvisitcallperformance_cr
                 SET "Visit Date" = "Visit Date" + 1, "Scheduled Start Time" = "Scheduled Start Time" + interval '1 day',
                     "Scheduled End Time" = "Scheduled End Time" + interval '1 day', "Visit Updated Timestamp" = now()
               WHERE "Application Visit Id" IN (102, 106)"#,
        )
        .await
        .unwrap();
    let night2 = incremental_night(&mut client, "2025-03-10").await;
    assert_eq!(night2.keys_touched, Some(2), "the old and the new key: {night2:?}");
    assert_eq!(pair_states(&client).await, strings(&["1>2:R*", "2>1:R*", "2>6:U", "3>4:U", "4>3:U", "6>2:U"]));
    assert_eq!(conflict_states(&client).await, strings(&["1:R*", "2:U", "3:U", "4:U", "6:U"]));
    let conflict_of_102 = texts(&client, r#"SELECT DISTINCT "CONFLICTID"::text FROM conflict.conflictvisitmaps WHERE "AppVisitID" = 102"#).await;
    assert_eq!(conflict_of_102.len(), 1, "the new pair of visit 102 inherits its CONFLICTID: {conflict_of_102:?}");

    client
        .batch_execute(
            r#"INSERT INTO analytics.dimcaregiver ("Caregiver Id", "Application Caregiver Id", "Caregiver Fullname", "SSN")
                 VALUES ('00000000-0000-0000-0000-0000000000cd', 14, 'Bob Aide', '987-65-4321');
               UPDATE analytics.factvisitcallperformance_cr SET "Caregiver Id" = '00000000-0000-0000-0000-0000000000cd', "Visit Updated Timestamp" = now()
               WHERE "Application Visit Id" = 106"#,
        )
        .await
        .unwrap();
    let night3 = incremental_night(&mut client, "2025-03-10").await;
    assert_eq!(night3.keys_touched, Some(2), "the old and the new SSN: {night3:?}");
    assert_eq!(pair_states(&client).await, strings(&["1>2:R*", "2>1:R*", "2>6:R*", "3>4:U", "4>3:U", "6>2:R*"]));
    assert_eq!(conflict_states(&client).await, strings(&["1:R*", "2:R*", "3:U", "4:U", "6:R*"]));

    client
        .batch_execute(
            r#"UPDATE analytics.factvisitcallperformance_cr SET "Caregiver Id" = '00000000-0000-0000-0000-0000000000ca', "Visit Updated Timestamp" = now()
               WHERE "Application Visit Id" = 106"#,
        )
        .await
        .unwrap();
    let night4 = incremental_night(&mut client, "2025-03-10").await;
    assert_eq!(pair_states(&client).await, strings(&["1>2:R*", "2>1:R*", "2>6:U", "3>4:U", "4>3:U", "6>2:U"]));
    assert_eq!(conflict_states(&client).await, strings(&["1:R*", "2:U", "3:U", "4:U", "6:U"]));
    assert_eq!(
        night4.status_changes,
        StatusChanges { pairs_reopened: 2, conflicts_reopened: 2, ..Default::default() },
        "{night4:?}"
    );
    let again = texts(&client, r#"SELECT DISTINCT "CONFLICTID"::text FROM conflict.conflictvisitmaps WHERE "AppVisitID" = 102"#).await;
    assert_eq!(again, conflict_of_102, "CONFLICTIDs never change");
}

/// docs/conflicts.md §8.2 and §D17 with "today" moving forward: pairs whose
/// date leaves the window are neither resolved (\[SF\]'s step 4 marks only
/// the window's rows) nor rewritten; they keep their status, and the second
/// pass outside the window leaves them as they are while nothing in them
/// changes. Incremental and full nights agree.
#[tokio::test]
async fn conflict_pairs_leaving_the_window_keep_their_status_and_are_not_rewritten() {
    let mut client = planted("cf_leaving_window").await;
    detect(&mut client).await;
    // UpdatedDate and row version of every pair.
    let versions = r#"SELECT "AppVisitID" || ':' || coalesce("UpdatedDate"::text, '-') || ' ' || xmin FROM conflict.conflictvisitmaps ORDER BY 1"#;
    let before = texts(&client, versions).await;
    // 2027-03-06: the window starts on 2025-03-06, after the pairs of 2025-03-05.
    let night2 = incremental_night(&mut client, "2027-03-06").await;
    assert_eq!((night2.inserted, night2.updated, night2.resolved), (0, 0, 0), "{night2:?}");
    assert_eq!(night2.status_changes, StatusChanges::default(), "{night2:?}");
    // 2027-03-14: every pair is outside the window.
    for mode in [DetectionMode::Incremental, DetectionMode::Full] {
        let night = run(&mut client, &thaw_test_support::conflicts::settings_on("2027-03-14"), mode).await.expect("night");
        assert_eq!((night.visits_considered, night.inserted, night.updated, night.resolved), (0, 0, 0, 0), "{night:?}");
        assert_eq!(night.status_changes, StatusChanges::default(), "{night:?}");
    }
    assert_eq!(pair_states(&client).await, strings(&["1>2:U", "2>1:U", "3>4:U", "4>3:U"]));
    assert_eq!(conflict_states(&client).await, strings(&["1:U", "2:U", "3:U", "4:U"]));
    let after = texts(&client, versions).await;
    assert_eq!(after, before, "no row rewritten");
    // Outside the window the second pass still follows the stored missed flags (§D17).
    client.batch_execute(r#"UPDATE conflict.conflictvisitmaps SET "ConIsMissed" = true WHERE "AppVisitID" = 103"#).await.unwrap();
    run(&mut client, &thaw_test_support::conflicts::settings_on("2027-03-14"), DetectionMode::Incremental).await.expect("night");
    assert_eq!(pair_states(&client).await, strings(&["1>2:U", "2>1:U", "3>4:R*", "4>3:U"]));
    assert_eq!(conflict_states(&client).await, strings(&["1:U", "2:U", "3:R*", "4:U"]));
}

/// docs/conflicts.md §D1: a change of the settings (an excluded SSN, an
/// excluded agency, a slower MPH band) forces a full night, whose pairs no
/// longer detected are resolved with their conflicts (\[SF\]: not marked
/// again → `R`), while the others keep their status and get the new
/// distance metrics (stored for every pair with two points, §R7); undoing
/// the change reopens them in the next (again full) night.
#[tokio::test]
async fn conflict_settings_changes_resolve_and_reopen_pairs_in_the_forced_full_night() {
    let mut client = planted("cf_settings_nights").await;
    detect(&mut client).await;
    let speed_of_1_2 = r#"SELECT "AverageMilesPerHour" || ' mph ' || "ETATravelMinutes" || ' min' FROM conflict.conflictvisitmaps WHERE "AppVisitID" IN (101, 102) ORDER BY "AppVisitID""#;
    for (change, undo, pairs, conflicts) in [
        (
            r#"INSERT INTO conflict.excluded_ssn ("SSN") VALUES ('123-45-6789 ')"#,
            r#"DELETE FROM conflict.excluded_ssn WHERE "SSN" IS NOT NULL"#,
            ["1>2:R*", "2>1:R*", "3>4:R*", "4>3:R*"],
            ["1:R*", "2:R*", "3:R*", "4:R*"],
        ),
        (
            r#"INSERT INTO conflict.excluded_agency ("ProviderID") VALUES ('00000000-0000-0000-0000-00000000000b')"#,
            r#"DELETE FROM conflict.excluded_agency WHERE "ProviderID" IS NOT NULL"#,
            ["1>2:R*", "2>1:R*", "3>4:R*", "4>3:R*"],
            ["1:R*", "2:R*", "3:R*", "4:R*"],
        ),
        (
            // 5.16 mi at 30 mph: an ETA of 10.32 minutes fits the 15-minute gap.
            r#"UPDATE conflict.mph SET "AverageMilesPerHour" = 30 WHERE "From" = 5"#,
            r#"UPDATE conflict.mph SET "AverageMilesPerHour" = 15 WHERE "From" = 5"#,
            ["1>2:U", "2>1:U", "3>4:R*", "4>3:R*"],
            ["1:U", "2:U", "3:R*", "4:R*"],
        ),
    ] {
        client.batch_execute(change).await.unwrap();
        let night = incremental_night_or_full(&mut client).await;
        assert_eq!(night.mode.as_deref(), Some("full"), "{change}: {night:?}");
        assert_eq!(pair_states(&client).await, strings(&pairs), "{change}");
        assert_eq!(conflict_states(&client).await, strings(&conflicts), "{change}");
        if pairs[0].ends_with(":U") {
            // The schedule pair keeps its status; its distance metrics follow the band.
            assert_eq!(texts(&client, speed_of_1_2).await, ["30 mph 10 min", "30 mph 10 min"], "{change}");
        }
        client.batch_execute(undo).await.unwrap();
        let night = incremental_night_or_full(&mut client).await;
        assert_eq!(night.mode.as_deref(), Some("full"), "{undo}: {night:?}");
        assert_eq!(pair_states(&client).await, strings(&["1>2:U", "2>1:U", "3>4:U", "4>3:U"]), "{undo}");
        assert_eq!(conflict_states(&client).await, strings(&["1:U", "2:U", "3:U", "4:U"]), "{undo}");
    }
}

/// An incremental night on the planted "today" (full when the settings changed).
async fn incremental_night_or_full(client: &mut Client) -> thaw_engine::contract::ConflictCreateResponse {
    run(client, &settings(), DetectionMode::Incremental).await.expect("night")
}

/// A restored visit that is missed: its `D` pair becomes `R` (\[SF\]: `U` by
/// the refresh, `R` by step 3), keeping its ResolveDate (§D24).
#[tokio::test]
async fn conflict_lifecycle_restored_missed_visit_resolves_its_deleted_pair() {
    let mut client = planted("cf_restored_missed").await;
    detect(&mut client).await;
    delete_visit_102(&client).await;
    detect(&mut client).await;
    let deleted_at = pair_dates(&client, 101, 102).await.0;
    client
        .batch_execute(
            r#"INSERT INTO analytics.factvisitcallperformance_cr SELECT * FROM analytics.visit_102;
               UPDATE analytics.factvisitcallperformance_cr SET "Is Missed" = true WHERE "Application Visit Id" = 102;
               DELETE FROM analytics.factvisitcallperformance_deleted_cr;"#,
        )
        .await
        .unwrap();
    let night = detect(&mut client).await;
    assert_eq!(pair_states(&client).await, strings(&["1>2:R*", "2>1:R*", "3>4:U", "4>3:U"]));
    assert_eq!(conflict_states(&client).await, strings(&["1:R*", "2:D*", "3:U", "4:U"]));
    assert_eq!(pair_dates(&client, 101, 102).await.0, deleted_at);
    assert_eq!(night.status_changes, StatusChanges { pairs_resolved: 1, ..Default::default() }, "{night:?}");
}

/// docs/conflicts.md §7.2: a stored pair whose `StatusFlag` is NULL (the
/// column's default is 'U'; someone else wrote NULL) is not `W` or `I`, so
/// \[SF\]'s refresh sets it `U` when it is detected again, and step 3 then
/// resolves it (with a ResolveDate) when one of its visits is missed.
#[tokio::test]
async fn conflict_lifecycle_pair_with_a_null_status_detected_again_is_open() {
    let mut client = planted("cf_null_status").await;
    detect(&mut client).await;
    client
        .batch_execute(
            r#"UPDATE conflict.conflictvisitmaps SET "StatusFlag" = NULL WHERE "AppVisitID" IN (101, 103, 104);
               UPDATE analytics.factvisitcallperformance_cr SET "Is Missed" = true WHERE "Application Visit Id" = 104;"#,
        )
        .await
        .unwrap();
    let night = detect(&mut client).await;
    assert_eq!(pair_states(&client).await, strings(&["1>2:U", "2>1:U", "3>4:R*", "4>3:R*"]));
    assert_eq!(conflict_states(&client).await, strings(&["1:U", "2:U", "3:R*", "4:R*"]));
    assert_eq!(
        night.status_changes,
        StatusChanges { pairs_resolved: 2, pairs_reopened: 1, conflicts_resolved: 2, ..Default::default() },
        "{night:?}"
    );
}

/// A25 and A23: one side becomes missed → pair and conflict `R`, and stay so
/// without rewrites while nothing changes; no longer missed → both reopen
/// to `U` with ResolveDate cleared.
#[tokio::test]
async fn conflict_lifecycle_missed_visit_resolves_pairs_and_conflicts_and_reopens() {
    let mut client = planted("cf_missed").await;
    detect(&mut client).await;
    client.batch_execute(r#"UPDATE analytics.factvisitcallperformance_cr SET "Is Missed" = true WHERE "Application Visit Id" = 104"#).await.unwrap();
    detect(&mut client).await;
    assert_eq!(
        pair_states(&client).await,
        strings(&["1>2:U", "2>1:U", "3>4:R*", "4>3:R*"])
    );
    assert_eq!(
        conflict_states(&client).await,
        strings(&["1:U", "2:U", "3:R*", "4:R*"])
    );
    let before = resolved_at(&client).await;
    let again = detect(&mut client).await;
    assert_eq!(
        (again.updated, again.inserted, again.resolved),
        (0, 0, 0),
        "a missed, resolved pair is not reopened and resolved again: {again:?}"
    );
    assert_eq!(resolved_at(&client).await, before);
    assert_eq!(
        pair_states(&client).await,
        strings(&["1>2:U", "2>1:U", "3>4:R*", "4>3:R*"])
    );

    client.batch_execute(r#"UPDATE analytics.factvisitcallperformance_cr SET "Is Missed" = false WHERE "Application Visit Id" = 104"#).await.unwrap();
    let reopened = detect(&mut client).await;
    assert_eq!(reopened.updated, 2, "{reopened:?}");
    assert_eq!(
        pair_states(&client).await,
        strings(&["1>2:U", "2>1:U", "3>4:U", "4>3:U"])
    );
    assert_eq!(
        conflict_states(&client).await,
        strings(&["1:U", "2:U", "3:U", "4:U"])
    );
}

/// A third active agency D with visit 6: same caregiver (SSN) and schedule
/// as visits 1 and 2 on 2025-03-12, so conflicts 1, 2 and 6 have two pairs each.
const VISIT_6_AT_AGENCY_D: &str = r#"
INSERT INTO analytics.dimprovider ("Provider Id", "Application Provider Id", "Provider Name", "Is Active", "Is Demo") VALUES
  ('00000000-0000-0000-0000-00000000000d', 4, 'Agency D', true, false);
INSERT INTO analytics.dimcaregiver ("Caregiver Id", "Application Caregiver Id", "Caregiver Fullname", "SSN") VALUES
  ('00000000-0000-0000-0000-0000000000cd', 14, 'Ann Aide', '123-45-6789');
INSERT INTO analytics.factvisitcallperformance_cr ("Visit Id", "Application Visit Id", "Visit Date", "Caregiver Id", "Provider Id",
    "Scheduled Start Time", "Scheduled End Time", "Is Missed") VALUES
  ('00000000-0000-0000-0000-000000000006', 106, '2025-03-12', '00000000-0000-0000-0000-0000000000cd', '00000000-0000-0000-0000-00000000000d',
   '2025-03-12 09:00-04', '2025-03-12 13:00-04', false);
"#;

/// A26: a conflict with two pairs, one resolved → stays open; both resolved →
/// `R` (cascade up); a resolved conflict whose other pairs are all closed
/// pulls its last open pair (here a whitelisted `W`) to `R` (cascade down).
#[tokio::test]
async fn conflict_lifecycle_cascades_between_conflicts_and_pairs() {
    let mut client = planted("cf_cascade").await;
    client.batch_execute(VISIT_6_AT_AGENCY_D).await.unwrap();
    detect(&mut client).await;
    assert_eq!(
        conflict_states(&client).await,
        strings(&["1:U", "2:U", "3:U", "4:U", "6:U"])
    );

    // Visit 6 moves away: its four pairs are no longer detected.
    client
        .batch_execute(
            r#"UPDATE analytics.factvisitcallperformance_cr SET "Scheduled Start Time" = '2025-03-12 14:00-04', "Scheduled End Time" = '2025-03-12 15:00-04'
               WHERE "Application Visit Id" = 106"#,
        )
        .await
        .unwrap();
    detect(&mut client).await;
    assert_eq!(
        pair_states(&client).await,
        strings(&["1>2:U", "1>6:R*", "2>1:U", "2>6:R*", "3>4:U", "4>3:U", "6>1:R*", "6>2:R*"])
    );
    assert_eq!(
        conflict_states(&client).await,
        strings(&["1:U", "2:U", "3:U", "4:U", "6:R*"]),
        "one of two resolved: open; both: R"
    );

    // A user whitelists (1,2) and resolves conflict 1: all but one pair closed → the last one is pulled to R.
    // Conflict 1 keeps its empty ResolveDate ([SF]'s step 2 would stamp it with the night's time, §D27).
    client
        .batch_execute(
            r#"UPDATE conflict.conflictvisitmaps SET "StatusFlag" = 'W' WHERE "AppVisitID" = 101 AND "ConAppVisitID" = 102;
               UPDATE conflict.conflicts SET "StatusFlag" = 'R' WHERE "CONFLICTID" = (SELECT "CONFLICTID" FROM conflict.conflictvisitmaps WHERE "AppVisitID" = 101 LIMIT 1);"#,
        )
        .await
        .unwrap();
    detect(&mut client).await;
    assert_eq!(
        pair_states(&client).await,
        strings(&["1>2:R*", "1>6:R*", "2>1:U", "2>6:R*", "3>4:U", "4>3:U", "6>1:R*", "6>2:R*"])
    );
    assert_eq!(
        conflict_states(&client).await,
        strings(&["1:R", "2:U", "3:U", "4:U", "6:R*"])
    );
}

/// docs/conflicts.md §D19: a night without source changes writes nothing,
/// also where \[SF\]'s literal order closes and reopens a conflict every
/// night: conflicts 1 and 2 have a missed pair (to visit 6) and an open pair
/// (step 2 sets them `R`, step 5 reopens them), conflict 3 is `N` with an
/// open pair (step 5 reopens it, step 8 sets `N` again). thaw writes the net
/// result, the same statuses, `ResolveDate`, `ResolvedBy` and `UpdatedRFlag`
/// as the literal order leaves (nights 1 and 2, which do change rows), and on
/// the nights after them no row version, change history entry or
/// notification, full or incremental.
#[tokio::test]
async fn conflict_lifecycle_quiet_night_does_not_resolve_and_reopen_conflicts_with_an_open_pair() {
    let mut client = planted("cf_quiet_reopen").await;
    client.batch_execute(VISIT_6_AT_AGENCY_D).await.unwrap();
    detect(&mut client).await;
    client
        .batch_execute(
            r#"UPDATE analytics.factvisitcallperformance_cr SET "Is Missed" = true WHERE "Application Visit Id" = 106;
               UPDATE conflict.conflicts SET "NoResponseFlag" = 'Yes', "ResolveDate" = '2025-03-01', "ResolvedBy" = 'Someone'
                 WHERE "CONFLICTID" = (SELECT "CONFLICTID" FROM conflict.conflictvisitmaps WHERE "AppVisitID" = 103 LIMIT 1);"#,
        )
        .await
        .unwrap();
    let expected_pairs = strings(&["1>2:U", "1>6:R*", "2>1:U", "2>6:R*", "3>4:U", "4>3:U", "6>1:R*", "6>2:R*"]);
    // Night 1: visit 6 missed → its pairs R, conflict 6 R; conflicts 1 and 2 R and reopened by the
    // first pass, then marked '1' by [SF]'s second pass (TASK_05, every conflict: already open, not
    // reopened); conflict 3 N with its resolution cleared by the first pass, then reopened by the
    // second (an N conflict with an open pair, UpdatedRFlag NULL) and set N again (docs/conflicts.md §D17).
    let night1 = detect(&mut client).await;
    assert_eq!(pair_states(&client).await, expected_pairs, "{night1:?}");
    assert_eq!(conflict_details(&client).await, strings(&["1:U/-/1", "2:U/-/1", "3:N/-/-", "4:U/-/1", "6:R*/-/1"]));
    // Night 2: the same again; no status changes.
    let night2 = detect(&mut client).await;
    assert_eq!(night2.status_changes, StatusChanges::default(), "{night2:?}");
    assert_eq!(pair_states(&client).await, expected_pairs);
    let expected_conflicts = strings(&["1:U/-/1", "2:U/-/1", "3:N/-/-", "4:U/-/1", "6:R*/-/1"]);
    assert_eq!(conflict_details(&client).await, expected_conflicts);
    // Row versions of every conflict and pair, and the counts of history and notices.
    let versions = r#"SELECT 'conflict ' || "CONFLICTID" || ' ' || xmin FROM conflict.conflicts
                      UNION ALL SELECT 'pair ' || "ID" || ' ' || xmin FROM conflict.conflictvisitmaps
                      UNION ALL SELECT 'history ' || count(*) FROM conflict.log_history
                      UNION ALL SELECT 'notifications ' || count(*) FROM conflict.notifications ORDER BY 1"#;
    let before = texts(&client, versions).await;
    for (night, mode) in [(3, DetectionMode::Full), (4, DetectionMode::Incremental)] {
        let quiet = run(&mut client, &settings(), mode).await.expect("quiet night");
        assert_eq!((quiet.inserted, quiet.updated, quiet.resolved), (0, 0, 0), "night {night}: {quiet:?}");
        assert_eq!(quiet.status_changes, StatusChanges::default(), "night {night}: {quiet:?}");
        assert_eq!(texts(&client, versions).await, before, "night {night} rewrote rows");
        assert_eq!(pair_states(&client).await, expected_pairs);
        assert_eq!(conflict_details(&client).await, expected_conflicts);
    }
}

/// "primary visit:conflict status/ResolveDate set?/ResolvedBy/UpdatedRFlag" per conflict.
async fn conflict_details(client: &Client) -> Vec<String> {
    client
        .query(
            r#"SELECT DISTINCT c."AppVisitID" % 100 || ':' || k."StatusFlag" || (CASE WHEN k."ResolveDate" IS NULL THEN '' ELSE '*' END)
                      || '/' || coalesce(k."ResolvedBy", '-') || '/' || coalesce(k."UpdatedRFlag", '-'), c."AppVisitID"
               FROM conflict.conflicts k JOIN conflict.conflictvisitmaps c USING ("CONFLICTID") ORDER BY c."AppVisitID""#,
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// A27 and §8.2 steps 5, 8, 9: `NoResponseFlag = 'Yes'` on an open conflict
/// → `N` with `ResolveDate` and `ResolvedBy` cleared; `ConNoResponseFlag =
/// 'Yes'` on a pair → `N`; the comparison is literal ('yes' is not 'Yes');
/// the flags themselves are never written; once the application withdraws
/// the flag, the conflict (it has an open pair) and the pair are `U` again.
/// `UpdatedRFlag` is as [SF]'s last pass (TASK_05, every conflict) leaves
/// it: '1', but NULL on the conflicts its step 5 reopens (an `N` conflict
/// over an open pair, set `N` again by its step 8; docs/conflicts.md §D17).
#[tokio::test]
async fn conflict_lifecycle_no_response_sets_n_and_clears_the_resolution() {
    let mut client = planted("cf_noresp").await;
    detect(&mut client).await;
    assert_eq!(
        conflict_details(&client).await,
        strings(&["1:U/-/1", "2:U/-/1", "3:U/-/1", "4:U/-/1"])
    );
    client
        .batch_execute(
            r#"UPDATE conflict.conflicts SET "NoResponseFlag" = 'Yes', "ResolveDate" = '2025-03-01', "ResolvedBy" = 'Someone'
                 WHERE "CONFLICTID" = (SELECT "CONFLICTID" FROM conflict.conflictvisitmaps WHERE "AppVisitID" = 101 LIMIT 1);
               UPDATE conflict.conflicts SET "NoResponseFlag" = 'yes'
                 WHERE "CONFLICTID" = (SELECT "CONFLICTID" FROM conflict.conflictvisitmaps WHERE "AppVisitID" = 102 LIMIT 1);
               UPDATE conflict.conflictvisitmaps SET "ConNoResponseFlag" = 'Yes', "ResolveDate" = '2025-03-01', "ResolvedBy" = 'Someone'
                 WHERE "AppVisitID" = 103;
               UPDATE conflict.conflictvisitmaps SET "ConNoResponseFlag" = 'no' WHERE "AppVisitID" = 104;"#,
        )
        .await
        .unwrap();
    detect(&mut client).await;
    // Conflict 1: N by the first pass's step 8; [SF]'s second pass (TASK_05, every conflict) reopens
    // the N conflict over its open pair (UpdatedRFlag NULL) and sets it N again (docs/conflicts.md §D17).
    assert_eq!(
        conflict_details(&client).await,
        strings(&["1:N/-/-", "2:U/-/1", "3:U/-/1", "4:U/-/1"])
    );
    assert_eq!(
        pair_states(&client).await,
        strings(&["1>2:U", "2>1:U", "3>4:N", "4>3:U"])
    );
    let by: Option<String> = client
        .query_one(
            r#"SELECT "ResolvedBy" FROM conflict.conflictvisitmaps WHERE "AppVisitID" = 103"#,
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(by, None, "ResolvedBy of an open pair is cleared");
    let flags: Vec<String> = client
        .query(
            r#"SELECT coalesce(k."NoResponseFlag", '-') || '/' || coalesce(c."ConNoResponseFlag", '-')
               FROM conflict.conflictvisitmaps c JOIN conflict.conflicts k USING ("CONFLICTID") ORDER BY c."AppVisitID""#,
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        flags,
        strings(&["Yes/-", "yes/-", "-/Yes", "-/no"]),
        "the application's flags are never written"
    );

    // The application withdraws both flags: conflict 1 reopens (it has an open pair, step 5) and the pair is U again.
    client
        .batch_execute(
            r#"UPDATE conflict.conflicts SET "NoResponseFlag" = NULL;
               UPDATE conflict.conflictvisitmaps SET "ConNoResponseFlag" = NULL;"#,
        )
        .await
        .unwrap();
    detect(&mut client).await;
    // Conflict 1 reopened by the first pass, then marked '1' by [SF]'s second pass (open, not reopened).
    assert_eq!(
        conflict_details(&client).await,
        strings(&["1:U/-/1", "2:U/-/1", "3:U/-/1", "4:U/-/1"])
    );
    assert_eq!(
        pair_states(&client).await,
        strings(&["1>2:U", "2>1:U", "3>4:U", "4>3:U"])
    );
}

/// §8.2 step 5 with a no-response pair: \[SF\]'s refresh sets every pair it
/// detects again to `U` (but `W`/`I`), step 5 then sees an `N` pair as open,
/// and only step 8 sets it `N` again. So a conflict whose no-response answer
/// was withdrawn while its pair still has one reopens to `U`, and a conflict a
/// user resolved while its pair has a no-response answer reopens too (its
/// pair stays `N`; step 6 does not close it). Before the fix thaw left the
/// first conflict `N` and closed the second with its pair.
#[tokio::test]
async fn conflict_lifecycle_conflict_over_a_no_response_pair_reopens_as_sf_does() {
    let mut client = planted("cf_noresp_pair").await;
    detect(&mut client).await;
    client
        .batch_execute(
            r#"UPDATE conflict.conflictvisitmaps SET "ConNoResponseFlag" = 'Yes' WHERE "AppVisitID" IN (103, 104);
               UPDATE conflict.conflicts SET "NoResponseFlag" = 'Yes'
                 WHERE "CONFLICTID" = (SELECT "CONFLICTID" FROM conflict.conflictvisitmaps WHERE "AppVisitID" = 103 LIMIT 1);"#,
        )
        .await
        .unwrap();
    detect(&mut client).await;
    assert_eq!(pair_states(&client).await, strings(&["1>2:U", "2>1:U", "3>4:N", "4>3:N"]));
    assert_eq!(conflict_details(&client).await, strings(&["1:U/-/1", "2:U/-/1", "3:N/-/1", "4:U/-/1"]));
    // The application withdraws conflict 3's answer (the pair keeps its own) and a user resolves conflict 4.
    client
        .batch_execute(
            r#"UPDATE conflict.conflicts SET "NoResponseFlag" = NULL
                 WHERE "CONFLICTID" = (SELECT "CONFLICTID" FROM conflict.conflictvisitmaps WHERE "AppVisitID" = 103 LIMIT 1);
               UPDATE conflict.conflicts SET "StatusFlag" = 'R', "ResolveDate" = '2025-03-09', "ResolvedBy" = 'A user'
                 WHERE "CONFLICTID" = (SELECT "CONFLICTID" FROM conflict.conflictvisitmaps WHERE "AppVisitID" = 104 LIMIT 1);"#,
        )
        .await
        .unwrap();
    let night = detect(&mut client).await;
    assert_eq!(pair_states(&client).await, strings(&["1>2:U", "2>1:U", "3>4:N", "4>3:N"]), "{night:?}");
    // UpdatedRFlag '1' on both: the first pass reopens them, and [SF]'s second pass (TASK_05, every
    // conflict) marks every conflict '1' and reopens neither, already open (docs/conflicts.md §D17).
    assert_eq!(conflict_details(&client).await, strings(&["1:U/-/1", "2:U/-/1", "3:U/-/1", "4:U/-/1"]), "{night:?}");
    assert_eq!(
        (night.status_changes.conflicts_reopened, night.status_changes.pairs_resolved),
        (2, 0),
        "{night:?}"
    );
    // The next nights keep both open ([SF]: step 5 marks open conflicts '1' and reopens none).
    for mode in [DetectionMode::Full, DetectionMode::Incremental] {
        let quiet = run(&mut client, &settings(), mode).await.expect("quiet night");
        assert_eq!(quiet.status_changes, StatusChanges::default(), "{quiet:?}");
        assert_eq!(pair_states(&client).await, strings(&["1>2:U", "2>1:U", "3>4:N", "4>3:N"]));
        assert_eq!(conflict_details(&client).await, strings(&["1:U/-/1", "2:U/-/1", "3:U/-/1", "4:U/-/1"]));
    }
}

/// §D26: incremental nights act on the application's edits of pair statuses
/// as \[SF\]'s full nights do, although the edits touch no source key: a pair a
/// user resolved while it is still detected reopens (with its conflict); a
/// pair closed by the cascade of a conflict a user resolved, still detected,
/// reopens the next night; a pair a user reopened that is no longer detected
/// is resolved again. Before the closed-pairs list an incremental night left
/// all three as the application had left them, until the next full night.
#[tokio::test]
async fn conflict_incremental_nights_follow_the_applications_pair_status_edits_as_full_nights_do() {
    let mut client = planted("cf_app_pair_edits").await;
    detect(&mut client).await;
    let conflict_of = |visit: i64| {
        format!(r#"(SELECT "CONFLICTID" FROM conflict.conflictvisitmaps WHERE "AppVisitID" = {visit} LIMIT 1)"#)
    };
    client
        .batch_execute(&format!(
            r#"UPDATE conflict.conflictvisitmaps SET "StatusFlag" = 'R', "ResolveDate" = '2025-03-09', "ResolvedBy" = 'A user' WHERE "AppVisitID" = 103;
               UPDATE conflict.conflictvisitmaps SET "StatusFlag" = 'W' WHERE "AppVisitID" = 104;
               UPDATE conflict.conflicts SET "StatusFlag" = 'R' WHERE "CONFLICTID" = {};"#,
            conflict_of(104)
        ))
        .await
        .unwrap();
    // Night 2: 3>4 is detected again → U (refresh), and so its conflict; conflict 4, resolved
    // by the user with only a W pair, stays R and pulls its pair to R (step 6).
    let night = incremental_night(&mut client, PLANTED_TODAY).await;
    assert_eq!(pair_states(&client).await, strings(&["1>2:U", "2>1:U", "3>4:U", "4>3:R*"]), "{night:?}");
    assert_eq!(conflict_states(&client).await, strings(&["1:U", "2:U", "3:U", "4:R"]), "{night:?}");
    // Night 3, no change anywhere: 4>3 is still detected, so [SF]'s refresh reopens it and step 5 its conflict.
    let night = incremental_night(&mut client, PLANTED_TODAY).await;
    assert_eq!(pair_states(&client).await, strings(&["1>2:U", "2>1:U", "3>4:U", "4>3:U"]), "{night:?}");
    assert_eq!(conflict_states(&client).await, strings(&["1:U", "2:U", "3:U", "4:U"]), "{night:?}");
    // Night 4: visit 102 moves away, 1>2 and 2>1 are resolved; then a user reopens 1>2 (W).
    client
        .batch_execute(
            r#"UPDATE analytics.factvisitcallperformance_cr SET "Scheduled Start Time" = '2025-03-12 14:00-04', "Scheduled End Time" = '2025-03-12 16:00-04',
                 "Visit Updated Timestamp" = now() WHERE "Application Visit Id" = 102;"#,
        )
        .await
        .unwrap();
    incremental_night(&mut client, PLANTED_TODAY).await;
    assert_eq!(pair_states(&client).await, strings(&["1>2:R*", "2>1:R*", "3>4:U", "4>3:U"]));
    client
        .batch_execute(r#"UPDATE conflict.conflictvisitmaps SET "StatusFlag" = 'W', "ResolveDate" = NULL WHERE "AppVisitID" = 101"#)
        .await
        .unwrap();
    // Night 5: 1>2 is not detected, so step 4 resolves it again.
    let night = incremental_night(&mut client, PLANTED_TODAY).await;
    assert_eq!(pair_states(&client).await, strings(&["1>2:R*", "2>1:R*", "3>4:U", "4>3:U"]), "{night:?}");
    assert_eq!(conflict_states(&client).await, strings(&["1:R*", "2:R*", "3:U", "4:U"]), "{night:?}");
    // A full night finds nothing left to change.
    let full = detect(&mut client).await;
    assert_eq!(full.status_changes, StatusChanges::default(), "{full:?}");
}

/// §D17: \[SF\] runs the pass of the window (TASK_02_3) before the night's
/// inserts and TASK_05's pass after them. A whitelisted conflict whose only
/// pair is no longer detected is resolved by the first pass (step 7: all its
/// pairs in the window closed) and reopened by the second when its primary
/// visit has a new pair tonight, which joins the conflict (step 5). Before,
/// thaw ran one pass after the inserts, the new open pair kept step 7 away and
/// the conflict stayed `W`, hiding the new pair behind the user's old answer.
#[tokio::test]
async fn conflict_lifecycle_whitelisted_conflict_with_a_new_pair_reopens_as_sf_does() {
    let mut client = planted("cf_w_new_pair").await;
    detect(&mut client).await;
    client
        .batch_execute(
            r#"UPDATE conflict.conflicts SET "StatusFlag" = 'W'
                 WHERE "CONFLICTID" = (SELECT "CONFLICTID" FROM conflict.conflictvisitmaps WHERE "AppVisitID" = 103 LIMIT 1);
               CREATE TEMP TABLE visit_106 AS SELECT * FROM analytics.factvisitcallperformance_cr WHERE "Application Visit Id" = 104;
               UPDATE visit_106 SET "Visit Id" = '00000000-0000-0000-0000-000000000006', "Application Visit Id" = 106,
                 "Visit Start Time" = '2025-03-05 09:30-05', "Visit End Time" = '2025-03-05 10:30-05', "Visit Updated Timestamp" = now();
               INSERT INTO analytics.factvisitcallperformance_cr SELECT * FROM visit_106;
               UPDATE analytics.factvisitcallperformance_cr SET "Visit Date" = '2025-03-06', "Visit Start Time" = '2025-03-06 10:15-05',
                 "Visit End Time" = '2025-03-06 11:00-05', "Visit Updated Timestamp" = now() WHERE "Application Visit Id" = 104;"#,
        )
        .await
        .unwrap();
    let night = detect(&mut client).await;
    assert_eq!(
        pair_states(&client).await,
        strings(&["1>2:U", "2>1:U", "3>4:R*", "3>6:U", "4>3:R*", "6>3:U"]),
        "{night:?}"
    );
    assert_eq!(conflict_states(&client).await, strings(&["1:U", "2:U", "3:U", "4:R*", "6:U"]), "{night:?}");
    // The next night changes nothing.
    let quiet = run(&mut client, &settings(), DetectionMode::Incremental).await.expect("quiet night");
    assert_eq!(quiet.status_changes, StatusChanges::default(), "{quiet:?}");
    assert_eq!(conflict_states(&client).await, strings(&["1:U", "2:U", "3:U", "4:R*", "6:U"]));
}

/// §D17: \[SF\] TASK_05 repeats steps 2–9 without the window, so stored rows
/// older than the window still follow the application's answers and their
/// visits' stored missed flags: conflicts by `IsMissed` only, pairs by
/// `ConIsMissed` only, cascades over all pairs, no response → `N`, open
/// rows lose their resolution. A primary visit missed outside the window
/// leaves its pair and conflict open, as \[SF\]'s literal order does (step 2
/// sets the conflict `R`, step 5 reopens it: thaw writes neither, §D19). The
/// planted pairs (2025-03-05 and 2025-03-12) are outside the window of
/// 2028-03-10; a second night changes no status, a third writes nothing.
#[tokio::test]
async fn conflict_lifecycle_second_pass_updates_rows_outside_the_window_as_sf_does() {
    let mut client = planted("cf_outside").await;
    detect(&mut client).await;
    client
        .batch_execute(
            r#"UPDATE conflict.conflictvisitmaps SET "IsMissed" = true WHERE "AppVisitID" = 103;
               UPDATE conflict.conflictvisitmaps SET "ConIsMissed" = true WHERE "ConAppVisitID" = 103;
               UPDATE conflict.conflicts SET "NoResponseFlag" = 'Yes'
                 WHERE "CONFLICTID" = (SELECT "CONFLICTID" FROM conflict.conflictvisitmaps WHERE "AppVisitID" = 101 LIMIT 1);
               UPDATE conflict.conflictvisitmaps SET "ConNoResponseFlag" = 'Yes', "ResolveDate" = '2025-03-01', "ResolvedBy" = 'Someone'
                 WHERE "AppVisitID" = 102;"#,
        )
        .await
        .unwrap();
    let three_years_later = ConflictSettings { today: Some("2028-03-10".into()), ..settings() };
    let night = run(&mut client, &three_years_later, DetectionMode::Full).await.expect("conflict run");
    assert_eq!((night.inserted, night.updated), (0, 0), "nothing is detected in the window: {night:?}");
    // Status writes of the second pass, per statement (docs/conflicts.md §8.2.2): pair 4>3 R,
    // conflict 4 R (cascade up), conflict 1 and pair 2>1 N; conflict 3 stays U (§D19).
    assert_eq!(night.status_changes, StatusChanges { outside_window_status_writes: 4, ..Default::default() }, "{night:?}");
    let expected_pairs = strings(&["1>2:U", "2>1:N", "3>4:U", "4>3:R*"]);
    let expected_conflicts = strings(&["1:N", "2:U", "3:U", "4:R*"]);
    assert_eq!(
        pair_states(&client).await,
        expected_pairs,
        "4>3 by ConIsMissed; 3>4 stays open (only its IsMissed is set, which the pass reads on conflicts only); 2>1 no response"
    );
    assert_eq!(
        conflict_states(&client).await,
        expected_conflicts,
        "4 by the cascade up from its only pair; 3 stays open (its pair is U: [SF] sets it R by IsMissed and step 5 reopens it); 1 no response"
    );
    let by: Option<String> = client
        .query_one(r#"SELECT "ResolvedBy" FROM conflict.conflictvisitmaps WHERE "AppVisitID" = 102"#, &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(by, None, "an open pair outside the window loses its resolution");
    // UpdatedRFlag as [SF]'s literal order leaves it: NULL on conflict 3, which step 5 reopened.
    assert_eq!(conflict_details(&client).await, strings(&["1:N/-/1", "2:U/-/1", "3:U/-/-", "4:R*/-/1"]));
    let second = run(&mut client, &three_years_later, DetectionMode::Full).await.expect("second night");
    assert_eq!(
        second.status_changes,
        StatusChanges::default(),
        "[SF]'s literal order would write conflict 3 R (missed) and U (open pair), conflict 1 U (open pair) and N (flag), and change no status (§D19): {second:?}"
    );
    // The one change of the second night, as in [SF]: step 5 now reopens the N conflict 1 (step 8 sets N again), so its UpdatedRFlag is NULL.
    assert_eq!(conflict_details(&client).await, strings(&["1:N/-/-", "2:U/-/1", "3:U/-/-", "4:R*/-/1"]));
    let stamps = r#"SELECT 'pair ' || "ID" || ' ' || coalesce("ResolveDate"::text, '-') || '/' || coalesce("UpdatedDate"::text, '-') || ' ' || xmin FROM conflict.conflictvisitmaps
                    UNION ALL SELECT 'conflict ' || "CONFLICTID" || ' ' || xmin FROM conflict.conflicts ORDER BY 1"#;
    let before = texts(&client, stamps).await;
    let third = run(&mut client, &three_years_later, DetectionMode::Full).await.expect("third night");
    assert_eq!(third.status_changes, StatusChanges::default(), "{third:?}");
    assert_eq!(texts(&client, stamps).await, before, "a third night rewrites no pair or conflict outside the window");
    assert_eq!(pair_states(&client).await, expected_pairs);
    assert_eq!(conflict_states(&client).await, expected_conflicts);
}

/// §9.3, §D23 (\[SF\] TASK_06): an open (`U`) conflict recorded exactly
/// `NumberOfDays` days ago whose primary visit has the payer and provider of
/// a reminder entry gets one "From Payer" notice for that provider (with the
/// payer's name) and one automatic comment by the system user 99999 whose
/// `ReverseUUID` holds the `CONFLICTID`; a day more or less, another status,
/// or no entry: nothing. A second run the same day adds nothing.
#[tokio::test]
async fn conflict_from_payer_reminders_notify_and_comment_on_the_due_day() {
    let mut client = planted("cf_frompayer").await;
    client
        .batch_execute(
            r#"INSERT INTO analytics.dimpayer ("Payer Id", "Application Payer Id", "Payer Name", "Is Active", "Is Demo") VALUES
                 ('00000000-0000-0000-0000-0000000000a1', 501, 'Payer One', true, false);
               INSERT INTO analytics.dimpayerprovider ("Payer Id", "Application Payer Id", "Provider Id", "Application Provider Id") VALUES
                 ('00000000-0000-0000-0000-0000000000a1', 501, '00000000-0000-0000-0000-00000000000a', 1),
                 ('00000000-0000-0000-0000-0000000000a1', 501, '00000000-0000-0000-0000-00000000000b', 2);
               UPDATE analytics.factvisitcallperformance_cr SET "Payer Id" = '00000000-0000-0000-0000-0000000000a1', "Application Payer Id" = 501;"#,
        )
        .await
        .unwrap();
    detect(&mut client).await;
    // The application sets the cadence; the conflicts were recorded some days ago.
    client
        .batch_execute(
            r#"UPDATE conflict.payer_provider_reminders SET "NumberOfDays" = 3;
               UPDATE conflict.conflicts k SET "RECORDEDDATETIME" = (now() AT TIME ZONE 'America/New_York') - make_interval(days => d.days)
                 FROM (SELECT "CONFLICTID", CASE "AppVisitID" WHEN 102 THEN 4 ELSE 3 END AS days FROM conflict.conflictvisitmaps) d
                 WHERE d."CONFLICTID" = k."CONFLICTID";
               UPDATE conflict.conflicts SET "StatusFlag" = 'W'
                 WHERE "CONFLICTID" = (SELECT "CONFLICTID" FROM conflict.conflictvisitmaps WHERE "AppVisitID" = 103 LIMIT 1);"#,
        )
        .await
        .unwrap();
    let notices = r#"SELECT DISTINCT v."AppVisitID" % 100 || ':' || n."AppProviderID" || ':' || n."Contract" || ':' || (n."CreatedDate" = (now() AT TIME ZONE 'America/New_York')::date), v."AppVisitID"
                   FROM conflict.notifications n JOIN conflict.conflictvisitmaps v USING ("CONFLICTID")
                   WHERE n."NotificationType" = 'From Payer' ORDER BY v."AppVisitID""#;
    let comments = r#"SELECT DISTINCT v."AppVisitID" % 100 || ':' || m.created_by || ':' || m.created_by_name || ':' || (m."ReverseUUID" = m."CONFLICTID"::text) || ':' || m."Description", v."AppVisitID"
                   FROM conflict.conflict_commu_inters m JOIN conflict.conflictvisitmaps v USING ("CONFLICTID") ORDER BY v."AppVisitID""#;
    assert_eq!(texts(&client, notices).await, Vec::<String>::new(), "no reminder before the cadence is set");
    detect(&mut client).await;
    let expected_notices = strings(&["1:1:Payer One:true", "4:2:Payer One:true"]);
    let expected_comments = strings(&[
        "1:99999:System:true:Reminder from payer Payer One: this conflict is still open after 3 days.",
        "4:99999:System:true:Reminder from payer Payer One: this conflict is still open after 3 days.",
    ]);
    assert_eq!(texts(&client, notices).await, expected_notices, "2 is four days old, 3 is whitelisted");
    assert_eq!(texts(&client, comments).await, expected_comments);
    detect(&mut client).await;
    assert_eq!(texts(&client, notices).await, expected_notices, "a rerun the same day adds nothing");
    let count: i64 = client
        .query_one(r#"SELECT count(*) FROM conflict.notifications WHERE "NotificationType" = 'From Payer'"#, &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 2);
    let count: i64 = client.query_one("SELECT count(*) FROM conflict.conflict_commu_inters", &[]).await.unwrap().get(0);
    assert_eq!(count, 2);
}

/// The tables the nightly run writes, with their allow-list.
const WRITTEN_TABLES: [(&str, Table); 8] = [
    ("conflictvisitmaps", Table::ConflictVisitMaps),
    ("conflicts", Table::Conflicts),
    ("settings", Table::Settings),
    ("notifications", Table::Notifications),
    ("payer_provider_reminders", Table::PayerProviderReminders),
    ("log_history", Table::LogHistory),
    ("log_history_values", Table::LogHistoryValues),
    ("conflict_commu_inters", Table::ConflictComments),
];

/// The key column of a written table (rows with a larger key were inserted by the night).
fn key(table: &str) -> &'static str {
    match table {
        "conflicts" => "\"CONFLICTID\"",
        "conflict_commu_inters" => "id",
        _ => "\"ID\"",
    }
}

/// A sentinel value of the column type `data_type` (with its length limit), as an SQL literal.
fn sentinel(data_type: &str, max_length: Option<i32>) -> String {
    match data_type {
        "character varying" | "character" | "text" => {
            format!(
                "'{}'",
                &"sentinel"[..max_length.map_or(8, |n| n.min(8) as usize)]
            )
        }
        "bigint" | "integer" | "smallint" => "4242".into(),
        "real" | "double precision" | "numeric" => "42.5".into(),
        "timestamp without time zone" | "timestamp with time zone" => {
            "'2001-02-03 04:05:06'".into()
        }
        "date" => "'2001-02-03'".into(),
        "uuid" => "'00000000-0000-0000-0000-0000000000ee'".into(),
        "boolean" => "true".into(),
        other => panic!("no sentinel for type {other}"),
    }
}

/// §3.4: every column outside the nightly allow-list of its table (the
/// application's columns, and the ones no built step writes yet) is set to a
/// sentinel on every row; a night with inserts, refreshes, deletions,
/// missed visits and no-response answers then leaves every sentinel as it
/// was. The list of columns comes from the code (`is_nightly_writable`), so a
/// column added to an allow-list leaves the test by itself.
#[tokio::test]
async fn conflict_night_never_writes_a_column_outside_the_allow_list() {
    let mut client = planted("cf_sentinel").await;
    client
        .batch_execute(
            r#"INSERT INTO analytics.dimpayer ("Payer Id", "Application Payer Id", "Payer Name") VALUES ('00000000-0000-0000-0000-0000000000a1', 501, 'Payer One');
               INSERT INTO analytics.dimpayerprovider ("Payer Id", "Application Payer Id", "Provider Id", "Application Provider Id") VALUES
                 ('00000000-0000-0000-0000-0000000000a1', 501, '00000000-0000-0000-0000-00000000000a', 1);"#,
        )
        .await
        .unwrap();
    detect(&mut client).await;
    // A comment of the application's (the night only ever adds reminder comments).
    client
        .batch_execute(
            r#"INSERT INTO conflict.conflict_commu_inters ("CONFLICTID", "Description", created_by, created_at)
                 SELECT min("CONFLICTID"), 'Called the agency', 7, now() FROM conflict.conflicts;"#,
        )
        .await
        .unwrap();
    let mut guarded: Vec<(String, String, String)> = Vec::new();
    for (table, kind) in WRITTEN_TABLES {
        let columns = client
            .query(
                "SELECT column_name::text, data_type::text, character_maximum_length::int4 FROM information_schema.columns \
                 WHERE table_schema = 'conflict' AND table_name = $1 ORDER BY ordinal_position",
                &[&table],
            )
            .await
            .unwrap();
        assert!(!columns.is_empty(), "{table} exists");
        let mut sets = Vec::new();
        for c in &columns {
            let (name, data_type, length): (String, String, Option<i32>) =
                (c.get(0), c.get(1), c.get(2));
            if name == "ID" || name == "id" || is_nightly_writable(kind, &name) {
                continue;
            }
            let value = sentinel(&data_type, length);
            sets.push(format!("\"{name}\" = {value}"));
            guarded.push((table.to_string(), name, value));
        }
        if !sets.is_empty() {
            let rows = client
                .execute(
                    &format!("UPDATE conflict.{table} SET {}", sets.join(", ")),
                    &[],
                )
                .await
                .unwrap();
            assert!(rows > 0, "{table} has rows to guard");
        }
    }
    let guarded_names: Vec<&str> = guarded.iter().map(|(_, c, _)| c.as_str()).collect();
    for c in USER_OWNED_CVM_COLUMNS
        .iter()
        .chain(USER_OWNED_CONFLICT_COLUMNS)
        .chain(&["ReadUnreadFlag", "NumberOfDays"])
    {
        assert!(
            guarded_names.contains(c),
            "{c} is guarded: {guarded_names:?}"
        );
    }

    // The night: visit 102 moves (refresh), visit 104 is deleted (D, R, cascades), visit 101
    // becomes missed (R), a new visit 109 collides with visit 103 (insert, new conflicts, notices).
    client
        .batch_execute(
            r#"UPDATE analytics.factvisitcallperformance_cr SET "Scheduled Start Time" = '2025-03-12 09:30-04' WHERE "Application Visit Id" = 102;
               INSERT INTO analytics.factvisitcallperformance_deleted_cr ("Visit Id", "Visit Date")
                 SELECT "Visit Id", "Visit Date" FROM analytics.factvisitcallperformance_cr WHERE "Application Visit Id" = 104;
               DELETE FROM analytics.factvisitcallperformance_cr WHERE "Application Visit Id" = 104;
               UPDATE analytics.factvisitcallperformance_cr SET "Is Missed" = true WHERE "Application Visit Id" = 101;
               INSERT INTO analytics.factvisitcallperformance_cr ("Visit Id", "Application Visit Id", "Visit Date", "Caregiver Id", "Provider Id",
                   "Scheduled Start Time", "Scheduled End Time", "Visit Start Time", "Visit End Time", "Is Missed") VALUES
                 ('00000000-0000-0000-0000-000000000009', 109, '2025-03-05', '00000000-0000-0000-0000-0000000000cb', '00000000-0000-0000-0000-00000000000b',
                  '2025-03-05 09:30-05', '2025-03-05 10:30-05', '2025-03-05 09:30-05', '2025-03-05 10:30-05', false);"#,
        )
        .await
        .unwrap();
    let mut last_ids = Vec::new();
    for (table, _) in WRITTEN_TABLES {
        let last: i64 = client
            .query_one(
                &format!(
                    "SELECT coalesce(max({}), 0)::int8 FROM conflict.{table}",
                    key(table)
                ),
                &[],
            )
            .await
            .unwrap()
            .get(0);
        last_ids.push((table.to_string(), last));
    }
    let summary = detect(&mut client).await;
    assert!(
        summary.inserted >= 2 && summary.updated >= 2,
        "the night wrote rows: {summary:?}"
    );
    for (table, column, value) in &guarded {
        let last = last_ids
            .iter()
            .find(|(t, _)| t == table)
            .map(|(_, id)| *id)
            .unwrap();
        let changed: i64 = client
            .query_one(
                &format!("SELECT count(*) FROM conflict.{table} WHERE {} <= $1 AND \"{column}\" IS DISTINCT FROM {value}", key(table)),
                &[&last],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(changed, 0, "{table}.{column} was written by the night");
    }
}

/// Everything the night writes, as one text per table (keys and values in a fixed order).
async fn night_state(client: &Client) -> Vec<String> {
    let mut state = Vec::new();
    for table in [
        "conflictvisitmaps",
        "conflicts",
        "notifications",
        "log_history",
        "log_history_values",
        "payer_provider_reminders",
        "settings",
        "conflict_watermark",
    ] {
        let text: Option<String> = client
            .query_one(
                &format!(
                    "SELECT string_agg(t::text, '|' ORDER BY t::text) FROM conflict.{table} t"
                ),
                &[],
            )
            .await
            .unwrap()
            .get(0);
        state.push(format!("{table}: {}", text.unwrap_or_default()));
    }
    state
}

/// §D8 and §9: a run that fails in the middle of the status lifecycle (after
/// the cascade down, failpoint `conflict_lifecycle_midway`) leaves no
/// half-written night: every table it writes is exactly as before (pairs,
/// conflicts, notifications, log history, reminders, watermark), the run
/// lock and `InProgressFlag` (2) are released, and the next run does the
/// whole night.
#[tokio::test]
async fn conflict_crash_in_the_middle_of_the_lifecycle_leaves_no_half_written_night() {
    let mut client = planted("cf_crash").await;
    detect(&mut client).await;
    client
        .batch_execute(
            r#"INSERT INTO analytics.factvisitcallperformance_deleted_cr ("Visit Id", "Visit Date")
                 SELECT "Visit Id", "Visit Date" FROM analytics.factvisitcallperformance_cr WHERE "Application Visit Id" = 102;
               DELETE FROM analytics.factvisitcallperformance_cr WHERE "Application Visit Id" = 102;
               UPDATE analytics.factvisitcallperformance_cr SET "Is Missed" = true WHERE "Application Visit Id" = 104;"#,
        )
        .await
        .unwrap();
    let before = night_state(&client).await;

    thaw_engine::failpoints::arm(
        thaw_engine::failpoints::CONFLICT_LIFECYCLE_MIDWAY,
        ErrorKind::Unreachable,
        1,
    );
    let err = run(&mut client, &settings(), DetectionMode::Full)
        .await
        .unwrap_err();
    thaw_engine::failpoints::clear();
    assert_eq!(err.kind, ErrorKind::Unreachable, "{err:?}");
    assert!(
        err.message.contains("conflict_lifecycle_midway"),
        "{}",
        err.message
    );
    assert_eq!(
        night_state(&client).await,
        before,
        "nothing of the failed night stays written"
    );
    let flag: i64 = client
        .query_one(r#"SELECT "InProgressFlag" FROM conflict.settings"#, &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(flag, 2, "InProgressFlag is reset");
    let held: i64 = client
        .query_one("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) AND objid = ($1::int8 & 4294967295)::oid", &[&thaw_engine::conflicts::RUN_LOCK_KEY])
        .await
        .unwrap()
        .get(0);
    assert_eq!(held, 0, "the run lock is released");

    detect(&mut client).await;
    assert_eq!(
        pair_states(&client).await,
        strings(&["1>2:D*", "2>1:R*", "3>4:R*", "4>3:R*"])
    );
    assert_eq!(
        conflict_states(&client).await,
        strings(&["1:R*", "2:D*", "3:R*", "4:R*"])
    );
    let notices: i64 = client
        .query_one(
            r#"SELECT count(*) FROM conflict.notifications WHERE "NotificationType" = 'Resolved'"#,
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        notices, 4,
        "the resumed night writes its notifications once"
    );
}

/// The `(type, provider)` of every notification of the conflict of
/// application visit `visit`, oldest first.
async fn notices_of(client: &Client, visit: i64) -> Vec<String> {
    texts(
        client,
        &format!(
            r#"SELECT n."NotificationType" || ' ' || n."ProviderID"::text FROM conflict.notifications n
                 WHERE n."CONFLICTID" IN (SELECT "CONFLICTID" FROM conflict.conflictvisitmaps WHERE "AppVisitID" = {visit}) ORDER BY n."ID""#
        ),
    )
    .await
}

/// docs/conflicts.md §9.1: a night run again writes no notice, also for a
/// conflict whose pair rows name different providers. Conflict 2 (visit
/// 102, agency B) pairs with 101 and 106 (agency A); 101 is deleted, so
/// pair 2>1 is closed and keeps agency B in its snapshot; 102 moves to
/// agency D, so the re-detected pair 2>6 carries D; 106 is deleted and
/// conflict 2 is resolved. The night notifies agency B (the oldest pair's);
/// its rerun looked up a notice for each pair's provider and wrote a second
/// `Resolved` (and, the night 102 moved, a second `New Conflict`) for D.
/// Found by the lifecycle application model (seed 9003, §13.8).
#[tokio::test]
async fn conflict_notifications_are_written_once_when_the_pairs_of_a_conflict_name_different_providers() {
    let mut client = planted("cf_notice_providers").await;
    add_visit_106(&client).await;
    client
        .batch_execute(
            r#"INSERT INTO analytics.dimprovider ("Provider Id", "Application Provider Id", "Provider Name", "Is Active", "Is Demo")
                 VALUES ('00000000-0000-0000-0000-00000000000d', 4, 'Agency D', true, false);"#,
        )
        .await
        .unwrap();
    detect(&mut client).await;
    let b = "00000000-0000-0000-0000-00000000000b";
    assert_eq!(notices_of(&client, 102).await, vec![format!("New Conflict {b}")]);
    let delete = |visit: i64| {
        format!(
            r#"INSERT INTO analytics.factvisitcallperformance_deleted_cr ("Visit Id", "Visit Date", "Visit Updated Timestamp")
                 SELECT "Visit Id", "Visit Date", now() FROM analytics.factvisitcallperformance_cr WHERE "Application Visit Id" = {visit};
               DELETE FROM analytics.factvisitcallperformance_cr WHERE "Application Visit Id" = {visit};"#
        )
    };
    client.batch_execute(&delete(101)).await.unwrap();
    detect(&mut client).await;
    client
        .batch_execute(
            r#"UPDATE analytics.factvisitcallperformance_cr SET "Provider Id" = '00000000-0000-0000-0000-00000000000d', "Application Provider Id" = 4
                 WHERE "Application Visit Id" = 102;"#,
        )
        .await
        .unwrap();
    detect(&mut client).await;
    detect(&mut client).await;
    let providers = texts(
        &client,
        r#"SELECT "VisitID"::text || '>' || "ConVisitID"::text || ' ' || "ProviderID"::text FROM conflict.conflictvisitmaps WHERE "AppVisitID" = 102 ORDER BY "ID""#,
    )
    .await;
    assert_eq!(providers.len(), 2, "{providers:?}");
    assert!(providers[0].ends_with(b) && providers[1].ends_with("00000000-0000-0000-0000-00000000000d"), "the pairs of conflict 2 name B and D: {providers:?}");
    assert_eq!(notices_of(&client, 102).await, vec![format!("New Conflict {b}")], "a night run again writes no second New Conflict");
    client.batch_execute(&delete(106)).await.unwrap();
    detect(&mut client).await;
    assert_eq!(conflict_states(&client).await.iter().filter(|s| s.starts_with("2:")).cloned().collect::<Vec<_>>(), strings(&["2:R*"]));
    let once = vec![format!("New Conflict {b}"), format!("Resolved {b}")];
    assert_eq!(notices_of(&client, 102).await, once);
    detect(&mut client).await;
    assert_eq!(notices_of(&client, 102).await, once, "the same night run again writes no second Resolved notice");
}
