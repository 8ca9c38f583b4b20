//! `GroupID` as connected components of the conflict graph
//! (docs/conflicts.md §7.6, §D5) against a real PostgreSQL: new groups get
//! new ids, a growing group keeps its id and `G_CRDATEUNIQUE`, merging groups
//! keep the oldest id, in-service events link visits of different dates.
//!
//! Run under tests/harness.py (`make test`), which exports THAW_PG_*.

use thaw_engine::conflicts::{run, DetectionMode};
// Planted data: pairs 1↔2 (2025-03-12, rule 1) and 3↔4 (2025-03-05, rule 7); "today" 2025-03-10.
use thaw_test_support::conflicts::{planted, planted_settings as settings};
use thaw_test_support::{fresh_pg, unique};
use tokio_postgres::Client;


/// (VisitID>ConVisitID by last hex digits, GroupID, G_CRDATEUNIQUE as text) of every row.
async fn groups(client: &Client) -> Vec<(String, i64, String)> {
    client
        .query(
            r#"SELECT right("VisitID"::text, 3) || '>' || right("ConVisitID"::text, 3), "GroupID", "G_CRDATEUNIQUE"::text
               FROM conflict.conflictvisitmaps ORDER BY 1"#,
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

/// An in-service event of the planted caregiver at provider B from the 5th
/// to the 12th of March 2025: it overlaps visit 3 (5th, A) and visit 6
/// (12th, A).
async fn add_in_service_event_at_b(client: &Client) {
    client
        .batch_execute(
            r#"INSERT INTO analytics.factcaregiverinservice ("Application Caregiver Inservice Id", "Environment", "Caregiver Id", "Provider Id",
                   "Inservice start date", "Inservice end date", "Updated Datatimestamp")
               VALUES (501, 'prod', '00000000-0000-0000-0000-0000000000cb', '00000000-0000-0000-0000-00000000000b',
                   '2025-03-05 09:30-05', '2025-03-12 10:00-04', now())"#,
        )
        .await
        .unwrap();
}

fn expect(rows: &[(&str, i64, &str)]) -> Vec<(String, i64, String)> {
    rows.iter().map(|(k, g, t)| (k.to_string(), *g, t.to_string())).collect()
}

#[tokio::test]
async fn group_ids_are_connected_components_stable_once_assigned() {
    let mut client = planted("cf_groups").await;
    run(&mut client, &settings(), DetectionMode::Full).await.unwrap();
    let first = groups(&client).await;
    assert_eq!(first.iter().map(|(k, g, _)| (k.as_str(), *g)).collect::<Vec<_>>(), [("001>002", 1), ("002>001", 1), ("003>004", 2), ("004>003", 2)]);
    // Pretend the groups were assigned long ago (G_CRDATEUNIQUE = first assignment).
    client
        .batch_execute(
            r#"UPDATE conflict.conflictvisitmaps SET "G_CRDATEUNIQUE" = '2020-01-01' WHERE "GroupID" = 1;
               UPDATE conflict.conflictvisitmaps SET "G_CRDATEUNIQUE" = '2021-01-01' WHERE "GroupID" = 2;"#,
        )
        .await
        .unwrap();

    // Visit 6 at A, completed 09:00-13:00 on the 12th: rule 3 with visit 2 (B). Group 1 grows and keeps its id.
    client
        .batch_execute(
            r#"INSERT INTO analytics.factvisitcallperformance_cr ("Visit Id", "Application Visit Id", "Visit Date", "Caregiver Id",
                   "Provider Id", "Provider Patient Id", "Scheduled Start Time", "Scheduled End Time", "Visit Start Time", "Visit End Time", "Is Missed")
               VALUES ('00000000-0000-0000-0000-000000000006', 106, '2025-03-12', '00000000-0000-0000-0000-0000000000ca',
                   '00000000-0000-0000-0000-00000000000a', '00000000-0000-0000-0000-0000000000e1',
                   '2025-03-12 09:00-04', '2025-03-12 13:00-04', '2025-03-12 09:00-04', '2025-03-12 13:00-04', false)"#,
        )
        .await
        .unwrap();
    run(&mut client, &settings(), DetectionMode::Full).await.unwrap();
    let old1 = "2020-01-01 00:00:00";
    let old2 = "2021-01-01 00:00:00";
    assert_eq!(
        groups(&client).await,
        expect(&[("001>002", 1, old1), ("002>001", 1, old1), ("002>006", 1, old1), ("003>004", 2, old2), ("004>003", 2, old2), ("006>002", 1, old1)])
    );

    // An in-service event at B from the 5th to the 12th overlaps visit 3 (5th, A) and visit 6 (12th, A):
    // it links the two groups, which merge under the older id 1.
    add_in_service_event_at_b(&client).await;
    run(&mut client, &settings(), DetectionMode::Full).await.unwrap();
    let merged = groups(&client).await;
    assert_eq!(merged.len(), 10, "{merged:?}");
    assert!(merged.iter().all(|(_, g, t)| *g == 1 && t == old1), "{merged:?}");

    // Nothing changes on a run without source changes.
    run(&mut client, &settings(), DetectionMode::Full).await.unwrap();
    assert_eq!(groups(&client).await, merged);
}

/// Rows complete (docs/conflicts.md §3.1): every column of the migrated
/// `conflictvisitmaps` is written by the nightly job, owned by the
/// application, or listed as not written with its reason — so a column
/// added to the table cannot be silently left empty.
#[tokio::test]
async fn every_conflictvisitmaps_column_is_written_owned_or_listed() {
    use thaw_engine::conflicts::store::{is_nightly_writable, Table, NOT_WRITTEN_CVM_COLUMNS, USER_OWNED_CVM_COLUMNS};
    let client = fresh_pg(&unique("cf_columns")).await;
    let columns: Vec<String> = client
        .query(
            "SELECT column_name::text FROM information_schema.columns WHERE table_schema = 'conflict' AND table_name = 'conflictvisitmaps'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(columns.len(), 248);
    let unlisted: Vec<&String> = columns
        .iter()
        .filter(|c| {
            !is_nightly_writable(Table::ConflictVisitMaps, c)
                && !USER_OWNED_CVM_COLUMNS.contains(&c.as_str())
                && !NOT_WRITTEN_CVM_COLUMNS.contains(&c.as_str())
        })
        .collect();
    assert!(unlisted.is_empty(), "columns neither written, owned nor listed: {unlisted:?}");
    for c in NOT_WRITTEN_CVM_COLUMNS {
        assert!(columns.iter().any(|x| x == c), "{c} is listed but not a column");
    }
}

/// (ID, GroupID, G_CRDATEUNIQUE, xmin) of every row, by ID.
async fn stored(client: &Client) -> Vec<(i64, i64, String, String)> {
    client
        .query(r#"SELECT "ID", "GroupID", "G_CRDATEUNIQUE"::text, xmin::text FROM conflict.conflictvisitmaps ORDER BY "ID""#, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect()
}

/// docs/conflicts.md §7.6, §14: a night that adds a row to one group reads
/// only that group's component and rewrites no stored row: every row stored
/// before keeps its `GroupID`, its `G_CRDATEUNIQUE` and its `xmin` (the
/// transaction that last wrote it), the untouched group included; only the
/// night's new rows are written, with the grown group's id.
#[tokio::test]
async fn a_night_touching_one_group_rewrites_no_other_row() {
    let mut client = planted("cf_groups_touch").await;
    run(&mut client, &settings(), DetectionMode::Full).await.unwrap();
    let before = stored(&client).await;
    assert_eq!(before.len(), 4);
    // Visit 6 at A on the 12th: rule 3 with visit 2 (B), so group 1 grows by two rows.
    client
        .batch_execute(
            r#"INSERT INTO analytics.factvisitcallperformance_cr ("Visit Id", "Application Visit Id", "Visit Date", "Caregiver Id",
                   "Provider Id", "Provider Patient Id", "Scheduled Start Time", "Scheduled End Time", "Visit Start Time", "Visit End Time",
                   "Is Missed", "Visit Updated Timestamp")
               VALUES ('00000000-0000-0000-0000-000000000006', 106, '2025-03-12', '00000000-0000-0000-0000-0000000000ca',
                   '00000000-0000-0000-0000-00000000000a', '00000000-0000-0000-0000-0000000000e1',
                   '2025-03-12 09:00-04', '2025-03-12 13:00-04', '2025-03-12 09:00-04', '2025-03-12 13:00-04', false, now())"#,
        )
        .await
        .unwrap();
    let summary = run(&mut client, &settings(), DetectionMode::Incremental).await.unwrap();
    assert_eq!((summary.mode.as_deref(), summary.inserted), (Some("incremental"), 2), "{summary:?}");
    let after = stored(&client).await;
    assert_eq!(after.len(), 6);
    assert_eq!(&after[..4], &before[..], "a stored row was rewritten");
    assert_eq!(groups(&client).await.iter().filter(|(k, _, _)| k.contains("006")).map(|(_, g, _)| *g).collect::<Vec<_>>(), [1, 1]);
    assert_eq!(after[4].2, before.iter().find(|r| r.1 == 1).unwrap().2, "the grown group keeps its G_CRDATEUNIQUE");
}

/// docs/conflicts.md §7.7, §14: the first full run writes each new row once,
/// final (`CONFLICTID`, `CRDATEUNIQUE`, `ReverseUUID`, `GroupID` and
/// `G_CRDATEUNIQUE` computed before the insert): no statement after the
/// insert rewrites a row, so in the freshly filled table every page's
/// visible rows sit in its first line pointers, without a gap left by a
/// dead version, and the pages are contiguous from 0.
#[tokio::test]
async fn a_full_run_writes_each_new_row_once() {
    let mut client = planted("cf_write_once").await;
    // An in-service event at B overlapping visit 3 adds event rows (the second insert).
    add_in_service_event_at_b(&client).await;
    run(&mut client, &settings(), DetectionMode::Full).await.unwrap();
    let rows = client
        .query(
            r#"SELECT (ctid::text::point)[0]::int8 AS page, count(*), max((ctid::text::point)[1])::int8,
                      count(*) FILTER (WHERE "CONFLICTID" IS NULL OR "CRDATEUNIQUE" IS NULL OR "ReverseUUID" IS NULL
                                        OR "GroupID" IS NULL OR "G_CRDATEUNIQUE" IS NULL)
               FROM conflict.conflictvisitmaps GROUP BY 1 ORDER BY 1"#,
            &[],
        )
        .await
        .unwrap();
    let pages: Vec<(i64, i64, i64, i64)> = rows.iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3))).collect();
    assert!(pages.iter().map(|p| p.1).sum::<i64>() > 4, "event rows expected too: {pages:?}");
    for (i, (page, count, last, incomplete)) in pages.iter().enumerate() {
        assert_eq!(*page, i as i64, "pages not contiguous: {pages:?}");
        assert_eq!(count, last, "page {page} has a dead row version (a row was rewritten): {pages:?}");
        assert_eq!(*incomplete, 0, "rows without their final ids: {pages:?}");
    }
    // The values are those of the statements after the insert: same CRDATEUNIQUE and GroupID per conflict/component.
    let spread: i64 = client
        .query_one(
            r#"SELECT count(*) FROM (SELECT "CONFLICTID" FROM conflict.conflictvisitmaps GROUP BY 1
                                     HAVING count(DISTINCT "CRDATEUNIQUE") > 1 OR count(DISTINCT "GroupID") > 1) x"#,
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(spread, 0);
}
