//! The status lifecycle of docs/conflicts.md §8.2 against a real PostgreSQL:
//! deleted visits → `D` (terminal), missed visits → `R` without churn,
//! reopening on re-detection, cascades between `conflicts` and
//! `conflictvisitmaps` (acceptance scenarios A23–A26 of §13.5).
//!
//! Run under tests/harness.py (`make test`), which exports THAW_PG_*.

use thaw_engine::config::ConflictSettings;
use thaw_engine::conflicts::{run, DetectionMode};
use thaw_test_support::{fresh_pg, unique};
use tokio_postgres::Client;

/// Planted data: 4 pairs (1↔2 rule 1 on 2025-03-12, 3↔4 rule 7 on 2025-03-05), "today" 2025-03-10.
const PLANTED: &str = concat!(
    include_str!("fixtures/conflicts_reference.sql"),
    include_str!("fixtures/conflicts_visits.sql")
);

fn settings() -> ConflictSettings {
    ConflictSettings {
        database: "unused".into(),
        today: Some("2025-03-10".into()),
        ..Default::default()
    }
}

async fn planted(name: &str) -> Client {
    let client = fresh_pg(&unique(name)).await;
    client
        .batch_execute(PLANTED)
        .await
        .expect("load the planted fixture");
    client
}

async fn detect(client: &mut Client) -> thaw_engine::contract::ConflictCreateResponse {
    run(client, &settings(), DetectionMode::Full)
        .await
        .expect("conflict run")
}

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

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
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

/// A26: a conflict with two pairs, one resolved → stays open; both resolved →
/// `R` (cascade up); a resolved conflict whose other pairs are all closed
/// pulls its last open pair (here a whitelisted `W`) to `R` (cascade down).
#[tokio::test]
async fn conflict_lifecycle_cascades_between_conflicts_and_pairs() {
    let mut client = planted("cf_cascade").await;
    // A third active agency D with visit 6: same schedule as visits 1 and 2.
    client
        .batch_execute(
            r#"
INSERT INTO analytics.dimprovider ("Provider Id", "Application Provider Id", "Provider Name", "Is Active", "Is Demo") VALUES
  ('00000000-0000-0000-0000-00000000000d', 4, 'Agency D', true, false);
INSERT INTO analytics.dimcaregiver ("Caregiver Id", "Application Caregiver Id", "Caregiver Fullname", "SSN") VALUES
  ('00000000-0000-0000-0000-0000000000cd', 14, 'Ann Aide', '123-45-6789');
INSERT INTO analytics.factvisitcallperformance_cr ("Visit Id", "Application Visit Id", "Visit Date", "Caregiver Id", "Provider Id",
    "Scheduled Start Time", "Scheduled End Time", "Is Missed") VALUES
  ('00000000-0000-0000-0000-000000000006', 106, '2025-03-12', '00000000-0000-0000-0000-0000000000cd', '00000000-0000-0000-0000-00000000000d',
   '2025-03-12 09:00-04', '2025-03-12 13:00-04', false);
"#,
        )
        .await
        .unwrap();
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
/// `UpdatedRFlag` is '1' on every conflict with a pair in the window and
/// NULL on the ones step 5 reopened.
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
    assert_eq!(
        conflict_details(&client).await,
        strings(&["1:N/-/1", "2:U/-/1", "3:U/-/1", "4:U/-/1"])
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
    assert_eq!(
        conflict_details(&client).await,
        strings(&["1:U/-/-", "2:U/-/1", "3:U/-/1", "4:U/-/1"])
    );
    assert_eq!(
        pair_states(&client).await,
        strings(&["1>2:U", "2>1:U", "3>4:U", "4>3:U"])
    );
}
