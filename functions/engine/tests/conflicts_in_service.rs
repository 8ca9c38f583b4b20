//! In-service and PTO conflicts (docs/conflicts.md §5, scenarios A29, A30,
//! A39) against a real PostgreSQL through `thaw_engine::conflicts::run`:
//! exact conflict sets on planted data for every boundary of the rules,
//! synthetic ids, both orientations, refresh, resolve and the incremental
//! touched keys.
//!
//! Run under tests/harness.py (`make test`), which exports THAW_PG_*.

use thaw_engine::conflicts::{run, DetectionMode};
// Providers A, B (active), C (inactive); caregivers ca (A), cb (B), cc (C) with one SSN; "today" 2025-03-10.
use thaw_test_support::conflicts::{database_with, planted_settings as settings, REFERENCE};
use tokio_postgres::Client;

/// \[SF\] `MD5('I' || 501)` as a UUID (computed outside PostgreSQL).
const IN_SERVICE_501: &str = "ee2540c7-2ec7-65c7-5c60-215fecc2e4d6";
/// \[SF\] `MD5('I' || 502)`.
const IN_SERVICE_502: &str = "a0bd919f-4d88-a911-33b6-a21fae754eea";
/// \[SF\] `MD5('P' || 7)` with the vacation id a Snowflake `NUMBER(38,5)`: `'P7.00000'`.
const PTO_7: &str = "ce14275a-fddc-f0a6-a58f-5d8e5de447dc";

async fn planted(name: &str) -> Client {
    database_with(name, REFERENCE).await
}

/// A visit with application id `app` (Visit Id `…0000000<app>` in hex), its
/// caregiver/provider letter (`a`, `b`, `c`), date, actual times (NULL for
/// none, as SQL text) and `Is Missed`.
fn visit(app: u32, at: char, date: &str, start: &str, end: &str, missed: &str) -> String {
    format!(
        "INSERT INTO analytics.factvisitcallperformance_cr (\"Visit Id\", \"Application Visit Id\", \"Visit Date\", \"Caregiver Id\", \"Provider Id\",
             \"Scheduled Start Time\", \"Scheduled End Time\", \"Visit Start Time\", \"Visit End Time\", \"Is Missed\")
         VALUES ('00000000-0000-0000-0000-{app:012}', {app}, '{date}', '00000000-0000-0000-0000-0000000000c{at}', '00000000-0000-0000-0000-00000000000{at}',
             {start}, {end}, {start}, {end}, {missed});\n"
    )
}

fn in_service(id: i64, at: char, start: &str, end: &str) -> String {
    format!(
        "INSERT INTO analytics.factcaregiverinservice (\"Application Caregiver Inservice Id\", \"Environment\", \"Caregiver Id\", \"Provider Id\",
             \"Inservice start date\", \"Inservice end date\", \"Updated Datatimestamp\")
         VALUES ({id}, 'prod', '00000000-0000-0000-0000-0000000000c{at}', '00000000-0000-0000-0000-00000000000{at}', '{start}', '{end}', now());\n"
    )
}

fn absence(id: i64, at: char, start: &str, end: &str) -> String {
    format!(
        "INSERT INTO analytics.factcaregiverabsence (\"Caregiver Vacation Id\", \"Environment\", \"Global Caregiver Id\", \"Provider Id\",
             \"Start Date\", \"End Date\", \"Updated Datatimestamp\")
         VALUES ({id}, 'prod', '00000000-0000-0000-0000-0000000000c{at}', '00000000-0000-0000-0000-00000000000{at}', '{start}', '{end}', now());\n"
    )
}

/// Short name of an id: the synthetic ids by name, visits by application id.
fn short(id: &str) -> String {
    match id {
        IN_SERVICE_501 => "I501".into(),
        IN_SERVICE_502 => "I502".into(),
        PTO_7 => "P7".into(),
        _ => format!("v{}", id.rsplit('-').next().unwrap().trim_start_matches('0')),
    }
}

/// Every stored row as "primary>conflicting status InService PTO flags".
async fn rows(client: &Client) -> Vec<String> {
    let mut out: Vec<String> = client
        .query(
            r#"SELECT "VisitID"::text, "ConVisitID"::text, "StatusFlag", "InServiceFlag", "PTOFlag",
                      "SameSchTimeFlag" || "SameVisitTimeFlag" || "SchAndVisitTimeSameFlag" || "SchOverAnotherSchTimeFlag"
                      || "VisitTimeOverAnotherVisitTimeFlag" || "SchTimeOverVisitTimeFlag" || "DistanceFlag"
               FROM conflict.conflictvisitmaps"#,
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{}>{} {} {}{} {}",
                short(r.get(0)),
                short(r.get(1)),
                r.get::<_, String>(2),
                r.get::<_, String>(3),
                r.get::<_, String>(4),
                r.get::<_, String>(5)
            )
        })
        .collect();
    out.sort();
    out
}

fn expected(pairs: &[(&str, &str, &str)]) -> Vec<String> {
    let mut out: Vec<String> = pairs
        .iter()
        .flat_map(|(visit, event, flags)| {
            [format!("{visit}>{event} U {flags} NNNNNNN"), format!("{event}>{visit} U {flags} NNNNNNN")]
        })
        .collect();
    out.sort();
    out
}

/// (VisitID>ConVisitID, CONFLICTID) of every stored row.
async fn ids(client: &Client) -> Vec<(String, i64)> {
    client
        .query(r#"SELECT "VisitID"::text || '>' || "ConVisitID"::text, "CONFLICTID" FROM conflict.conflictvisitmaps ORDER BY 1"#, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// A29 and the boundaries of docs/conflicts.md §5.1: in-service 10:00–12:00
/// at B against completed visits of the same person at A. Inclusive overlap
/// (touching at either end conflicts), no same-date requirement, only
/// completed and explicitly not-missed visits, never at the event's own
/// agency, never from an inactive agency's event; a visit dated two days
/// away from the event is not looked at (§D20).
#[tokio::test]
async fn in_service_conflicts_are_inclusive_overlaps_at_another_agency() {
    let mut client = planted("cf_inservice").await;
    let mut sql = String::new();
    sql += &in_service(501, 'b', "2025-03-12 10:00-04", "2025-03-12 12:00-04");
    // An event of the inactive agency C, overlapping everything: never a conflict.
    sql += &in_service(503, 'c', "2025-03-12 06:00-04", "2025-03-12 18:00-04");
    sql += &visit(1, 'a', "2025-03-12", "'2025-03-12 11:00-04'", "'2025-03-12 13:00-04'", "false"); // overlap
    sql += &visit(2, 'a', "2025-03-12", "'2025-03-12 12:00-04'", "'2025-03-12 13:00-04'", "false"); // touches the end
    sql += &visit(3, 'a', "2025-03-12", "'2025-03-12 12:01-04'", "'2025-03-12 13:00-04'", "false"); // after
    sql += &visit(4, 'a', "2025-03-12", "'2025-03-12 08:00-04'", "'2025-03-12 10:00-04'", "false"); // touches the start
    sql += &visit(5, 'a', "2025-03-12", "NULL", "NULL", "false"); // scheduled only
    sql += &visit(6, 'a', "2025-03-12", "'2025-03-12 11:00-04'", "'2025-03-12 13:00-04'", "true"); // missed
    sql += &visit(7, 'a', "2025-03-12", "'2025-03-12 11:00-04'", "'2025-03-12 13:00-04'", "NULL"); // Is Missed NULL
    sql += &visit(8, 'b', "2025-03-12", "'2025-03-12 10:00-04'", "'2025-03-12 10:30-04'", "false"); // the event's own agency
    // A visit dated the evening before, running past midnight into the event of the next day.
    sql += &in_service(502, 'b', "2025-03-14 00:30-04", "2025-03-14 02:00-04");
    sql += &visit(9, 'a', "2025-03-13", "'2025-03-13 23:00-04'", "'2025-03-14 01:00-04'", "false");
    // §D20: a visit whose Visit Date is two days before its actual times is not looked at.
    sql += &visit(10, 'a', "2025-03-10", "'2025-03-12 11:00-04'", "'2025-03-12 11:30-04'", "false");
    client.batch_execute(&sql).await.unwrap();
    // Visit 5's schedule is NULL too: give it one that overlaps, so only its state excludes it.
    client
        .execute(
            r#"UPDATE analytics.factvisitcallperformance_cr SET "Scheduled Start Time" = '2025-03-12 11:00-04', "Scheduled End Time" = '2025-03-12 13:00-04'
               WHERE "Application Visit Id" = 5"#,
            &[],
        )
        .await
        .unwrap();

    let summary = run(&mut client, &settings(), DetectionMode::Full).await.unwrap();
    assert_eq!(
        rows(&client).await,
        expected(&[("v1", "I501", "YN"), ("v2", "I501", "YN"), ("v4", "I501", "YN"), ("v9", "I502", "YN")]),
        "{summary:?}"
    );
    assert_eq!(summary.inserted, 8);

    // The rows: event dates on the event's side, the event's snapshot, VisitDate of each primary.
    let row = client
        .query_one(
            r#"SELECT "AppVisitID", "VisitDate"::text, "InserviceStartDate"::text, "InserviceEndDate"::text, "ConInserviceStartDate",
                      "ProviderID"::text, "AppProviderID", "ProviderName", "CaregiverID"::text, "AppCaregiverID", "SSN", "AideSSN",
                      "ShVTSTTime"::text, "CShVTSTTime"::text, "ConAppVisitID", "MinuteDiffBetweenSch", "DistanceMilesFromLatLng",
                      "CONFLICTID" IS NOT NULL, "ReverseUUID"
               FROM conflict.conflictvisitmaps WHERE "VisitID" = $1::text::uuid AND "ConVisitID" = '00000000-0000-0000-0000-000000000001'"#,
            &[&IN_SERVICE_501],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, Option<i64>>(0), Some(501));
    assert_eq!(row.get::<_, String>(1), "2025-03-12");
    assert_eq!(row.get::<_, String>(2), "2025-03-12 10:00:00");
    assert_eq!(row.get::<_, String>(3), "2025-03-12 12:00:00");
    assert_eq!(row.get::<_, Option<chrono::NaiveDateTime>>(4), None);
    assert_eq!(row.get::<_, String>(5), "00000000-0000-0000-0000-00000000000b");
    assert_eq!(row.get::<_, Option<i64>>(6), Some(2));
    assert_eq!(row.get::<_, String>(7), "Agency B");
    assert_eq!(row.get::<_, String>(8), "00000000-0000-0000-0000-0000000000cb");
    assert_eq!(row.get::<_, Option<i64>>(9), Some(12));
    assert_eq!((row.get::<_, String>(10), row.get::<_, String>(11)), ("123-45-6789".into(), "123-45-6789".into()));
    assert_eq!(row.get::<_, String>(12), "2025-03-12 10:00:00", "ShVTSTTime of an in-service event is its start");
    assert_eq!(row.get::<_, String>(13), "2025-03-12 11:00:00");
    assert_eq!(row.get::<_, Option<i64>>(14), Some(1));
    assert_eq!(row.get::<_, Option<i32>>(15), Some(0));
    assert_eq!(row.get::<_, Option<f32>>(16), None);
    assert!(row.get::<_, bool>(17));
    assert_eq!(row.get::<_, String>(18), format!("00000000-0000-0000-0000-000000000001~1_{IN_SERVICE_501}~501"));
    // The reverse row carries the period in the Con columns and the visit's date.
    let reverse = client
        .query_one(
            r#"SELECT "VisitDate"::text, "ConInserviceStartDate"::text, "InserviceStartDate", "ConProviderName", "ConAppVisitID"
               FROM conflict.conflictvisitmaps WHERE "VisitID" = '00000000-0000-0000-0000-000000000009' AND "ConVisitID" = $1::text::uuid"#,
            &[&IN_SERVICE_502],
        )
        .await
        .unwrap();
    assert_eq!(reverse.get::<_, String>(0), "2025-03-13");
    assert_eq!(reverse.get::<_, String>(1), "2025-03-14 00:30:00");
    assert_eq!(reverse.get::<_, Option<chrono::NaiveDateTime>>(2), None);
    assert_eq!(reverse.get::<_, String>(3), "Agency B");
    assert_eq!(reverse.get::<_, Option<i64>>(4), Some(502));
    // One conflict per primary, each with a conflicts row.
    let conflicts: i64 = client.query_one("SELECT count(*) FROM conflict.conflicts WHERE \"StatusFlag\" = 'U'", &[]).await.unwrap().get(0);
    assert_eq!(conflicts, 6, "v1, v2, v4, v9, I501, I502");

    // A second run without changes writes nothing.
    let again = run(&mut client, &settings(), DetectionMode::Full).await.unwrap();
    assert_eq!((again.inserted, again.updated, again.resolved), (0, 0, 0), "{again:?}");
}

/// §5.1: a visit that overlaps an in-service event of its own caregiver id at
/// its own agency is excluded from in-service conflicts altogether.
#[tokio::test]
async fn a_visit_overlapping_an_in_service_event_at_its_own_agency_is_excluded() {
    let mut client = planted("cf_inservice_own").await;
    let mut sql = String::new();
    sql += &in_service(501, 'b', "2025-03-12 10:00-04", "2025-03-12 12:00-04");
    sql += &in_service(502, 'a', "2025-03-12 12:30-04", "2025-03-12 12:45-04");
    sql += &visit(1, 'a', "2025-03-12", "'2025-03-12 11:00-04'", "'2025-03-12 13:00-04'", "false"); // overlaps 502 at A
    sql += &visit(2, 'a', "2025-03-12", "'2025-03-12 09:00-04'", "'2025-03-12 10:30-04'", "false"); // does not
    client.batch_execute(&sql).await.unwrap();
    run(&mut client, &settings(), DetectionMode::Full).await.unwrap();
    assert_eq!(rows(&client).await, expected(&[("v2", "I501", "YN")]));
}

/// A30 and docs/conflicts.md §5.2: PTO overlaps by date, inclusive at both
/// ends, whatever the hours; the synthetic id is \[SF\]'s `MD5('P' || id)`
/// with the id's Snowflake `NUMBER(38,5)` text.
#[tokio::test]
async fn pto_conflicts_overlap_by_date_inclusive() {
    let mut client = planted("cf_pto").await;
    let mut sql = String::new();
    // Absent on the 12th and the 13th (ends at 08:00 on the 13th).
    sql += &absence(7, 'b', "2025-03-12 00:00-04", "2025-03-13 08:00-04");
    sql += &visit(1, 'a', "2025-03-12", "'2025-03-12 15:00-04'", "'2025-03-12 16:00-04'", "false"); // same date
    sql += &visit(2, 'a', "2025-03-13", "'2025-03-13 18:00-04'", "'2025-03-13 19:00-04'", "false"); // end date, after the hour
    sql += &visit(3, 'a', "2025-03-14", "'2025-03-14 09:00-04'", "'2025-03-14 10:00-04'", "false"); // the day after
    sql += &visit(4, 'a', "2025-03-11", "'2025-03-11 23:00-04'", "'2025-03-12 00:30-04'", "false"); // ends on the start date
    sql += &visit(5, 'a', "2025-03-11", "'2025-03-11 20:00-04'", "'2025-03-11 23:59-04'", "false"); // the day before
    sql += &visit(6, 'b', "2025-03-12", "'2025-03-12 17:00-04'", "'2025-03-12 18:00-04'", "false"); // own agency
    client.batch_execute(&sql).await.unwrap();
    run(&mut client, &settings(), DetectionMode::Full).await.unwrap();
    assert_eq!(rows(&client).await, expected(&[("v1", "P7", "NY"), ("v2", "P7", "NY"), ("v4", "P7", "NY")]));
    let row = client
        .query_one(
            r#"SELECT "PTOStartDate"::text, "PTOEndDate"::text, "ShVTSTTime", "AppVisitID" FROM conflict.conflictvisitmaps
               WHERE "VisitID" = $1::text::uuid AND "ConVisitID" = '00000000-0000-0000-0000-000000000001'"#,
            &[&PTO_7],
        )
        .await
        .unwrap();
    assert_eq!((row.get::<_, String>(0), row.get::<_, String>(1)), ("2025-03-12 00:00:00".into(), "2025-03-13 08:00:00".into()));
    assert_eq!(row.get::<_, Option<chrono::NaiveDateTime>>(2), None, "an absence is not part of [SF]'s shift coalesce");
    assert_eq!(row.get::<_, Option<i64>>(3), Some(7));
}

/// §5.1 refresh: a stored event row keeps its CONFLICTID and is refreshed
/// when the event changes; pairs no longer detected are resolved (§8.2
/// step 4) and reopen when detected again; an incremental run picks up a
/// changed or new event through the touched keys (§D1) and ends with the
/// same rows as a full run.
#[tokio::test]
async fn event_rows_refresh_resolve_reopen_and_follow_incremental_runs() {
    let mut client = planted("cf_event_life").await;
    let mut sql = String::new();
    sql += &in_service(501, 'b', "2025-03-12 10:00-04", "2025-03-12 12:00-04");
    sql += &visit(1, 'a', "2025-03-12", "'2025-03-12 11:00-04'", "'2025-03-12 13:00-04'", "false");
    sql += &visit(2, 'a', "2025-03-12", "'2025-03-12 08:00-04'", "'2025-03-12 10:30-04'", "false");
    client.batch_execute(&sql).await.unwrap();
    run(&mut client, &settings(), DetectionMode::Full).await.unwrap();
    assert_eq!(rows(&client).await, expected(&[("v1", "I501", "YN"), ("v2", "I501", "YN")]));
    let before = ids(&client).await;

    // The event now starts at 11:00: visit 2 (ends 10:30) no longer overlaps. Incremental run.
    client
        .execute(
            r#"UPDATE analytics.factcaregiverinservice SET "Inservice start date" = '2025-03-12 11:00-04', "Updated Datatimestamp" = now() + interval '1 minute'"#,
            &[],
        )
        .await
        .unwrap();
    let summary = run(&mut client, &settings(), DetectionMode::Incremental).await.unwrap();
    assert_eq!(summary.mode.as_deref(), Some("incremental"), "{summary:?}");
    let mut want = expected(&[("v1", "I501", "YN")]);
    want.extend(["I501>v2 R YN NNNNNNN".to_string(), "v2>I501 R YN NNNNNNN".to_string()]);
    want.sort();
    assert_eq!(rows(&client).await, want);
    let start: String = client
        .query_one(
            r#"SELECT "ConInserviceStartDate"::text FROM conflict.conflictvisitmaps WHERE "VisitID" = '00000000-0000-0000-0000-000000000001'"#,
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(start, "2025-03-12 11:00:00", "the stored row is refreshed");
    assert_eq!(ids(&client).await, before, "CONFLICTIDs never change");

    // Back to 10:00: the resolved pair reopens; and a new PTO absence is picked up, incrementally.
    client
        .batch_execute(
            r#"UPDATE analytics.factcaregiverinservice SET "Inservice start date" = '2025-03-12 10:00-04', "Updated Datatimestamp" = now() + interval '2 minutes';"#,
        )
        .await
        .unwrap();
    client
        .batch_execute(&absence(7, 'b', "2025-03-12 00:00-04", "2025-03-12 23:00-04").replace("now())", "now() + interval '2 minutes')"))
        .await
        .unwrap();
    let summary = run(&mut client, &settings(), DetectionMode::Incremental).await.unwrap();
    assert_eq!(summary.mode.as_deref(), Some("incremental"), "{summary:?}");
    let incremental = rows(&client).await;
    assert_eq!(
        incremental,
        expected(&[("v1", "I501", "YN"), ("v2", "I501", "YN"), ("v1", "P7", "NY"), ("v2", "P7", "NY")])
    );
    // A full run finds nothing else to do.
    let full = run(&mut client, &settings(), DetectionMode::Full).await.unwrap();
    assert_eq!((full.inserted, full.updated, full.resolved), (0, 0, 0), "{full:?}");
    assert_eq!(rows(&client).await, incremental);
}

/// §5.3, §D1: an incremental night resolves the rows an event leaves behind
/// as a full night does, when the event stops qualifying without any of its
/// new dates being a touched key: its caregiver's SSN edited away (the
/// caregiver row changed, the event row did not), or the event moved to a
/// caregiver id without a caregiver row. Both orientations are stored under
/// different dates (the absence's start date, the visit's date), so the
/// reverse row's key is touched too. Each change undone reopens the rows.
/// Before, the rows stayed open until the next `--full` (found by
/// tests/conflict_detection_model.py's incremental nights).
#[tokio::test]
async fn conflict_incremental_resolves_the_rows_of_an_event_that_stops_qualifying() {
    let mut client = planted("cf_event_leaves").await;
    let mut sql = String::new();
    // Absent at B from the 12th to the 13th; visit 1 at A on the 13th.
    sql += &absence(7, 'b', "2025-03-12 00:00-04", "2025-03-13 08:00-04");
    sql += &visit(1, 'a', "2025-03-13", "'2025-03-13 15:00-04'", "'2025-03-13 16:00-04'", "false");
    client.batch_execute(&sql).await.unwrap();
    run(&mut client, &settings(), DetectionMode::Full).await.unwrap();
    let open = expected(&[("v1", "P7", "NY")]);
    assert_eq!(open, ["P7>v1 U NY NNNNNNN", "v1>P7 U NY NNNNNNN"]);
    assert_eq!(rows(&client).await, open);
    let dates: Vec<String> = client
        .query(r#"SELECT "VisitDate"::text FROM conflict.conflictvisitmaps ORDER BY "VisitID" = '00000000-0000-0000-0000-000000000001'"#, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(dates, ["2025-03-12", "2025-03-13"], "the two orientations have different keys");
    let resolved = ["P7>v1 R NY NNNNNNN", "v1>P7 R NY NNNNNNN"];
    let steps = [
        // B's caregiver loses the SSN: the event has no person any more.
        (r#"UPDATE analytics.dimcaregiver SET "SSN" = '999-99-9999', "Updated Datatimestamp" = now() + interval '1 minute' WHERE "Application Caregiver Id" = 12"#, resolved),
        (r#"UPDATE analytics.dimcaregiver SET "SSN" = ' 123-45-6789 ', "Updated Datatimestamp" = now() + interval '2 minutes' WHERE "Application Caregiver Id" = 12"#, ["P7>v1 U NY NNNNNNN", "v1>P7 U NY NNNNNNN"]),
        // The absence moves to a caregiver id without a caregiver row.
        (r#"UPDATE analytics.factcaregiverabsence SET "Global Caregiver Id" = '00000000-0000-0000-0000-0000000000ff', "Updated Datatimestamp" = now() + interval '3 minutes'"#, resolved),
        (r#"UPDATE analytics.factcaregiverabsence SET "Global Caregiver Id" = '00000000-0000-0000-0000-0000000000cb', "Updated Datatimestamp" = now() + interval '4 minutes'"#, ["P7>v1 U NY NNNNNNN", "v1>P7 U NY NNNNNNN"]),
    ];
    for (change, want) in steps {
        client.batch_execute(change).await.unwrap();
        let summary = run(&mut client, &settings(), DetectionMode::Incremental).await.unwrap();
        assert_eq!(summary.mode.as_deref(), Some("incremental"), "{summary:?}");
        assert_eq!(rows(&client).await, want, "after {change}");
        // A full run finds nothing else to do.
        let full = run(&mut client, &settings(), DetectionMode::Full).await.unwrap();
        assert_eq!((full.inserted, full.resolved), (0, 0), "after {change}: {full:?}");
        assert_eq!(rows(&client).await, want, "after {change}, full");
    }
}

/// A stored row's pair, `BilledRateMinute`, `ConBilledRateMinute` and `OverlapPrice` (text).
type RateRow = (String, Option<f32>, Option<f32>, Option<String>);

/// docs/conflicts.md §5.1, §6.3: the event's side of an in-service or PTO
/// row has no billing, and \[SF\]'s `BilledRateMinute` (`CASE … ELSE 0`, a NULL
/// `Billed` falls to 0) is 0 there, not NULL; so the row's `OverlapPrice` is
/// 0 (found by tests/conflict_detection_model.py: thaw stored NULL).
#[tokio::test]
async fn the_event_side_billed_rate_minute_is_zero() {
    let mut client = planted("cf_event_rate").await;
    let mut sql = String::new();
    sql += &in_service(501, 'b', "2025-03-12 10:00-04", "2025-03-12 12:00-04");
    sql += &absence(7, 'b', "2025-03-12 00:00-04", "2025-03-12 23:00-04");
    sql += &visit(1, 'a', "2025-03-12", "'2025-03-12 11:00-04'", "'2025-03-12 13:00-04'", "false");
    client.batch_execute(&sql).await.unwrap();
    run(&mut client, &settings(), DetectionMode::Full).await.unwrap();
    let got: Vec<RateRow> = client
        .query(
            r#"SELECT c."VisitID"::text || '>' || c."ConVisitID"::text, c."BilledRateMinute", c."ConBilledRateMinute", p."OverlapPrice"::text
               FROM conflict.conflictvisitmaps c JOIN conflict.conflictvisitmaps_prices p USING ("ID") ORDER BY 1"#,
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert_eq!(got.len(), 4, "{got:?}");
    for (pair, rate, con_rate, overlap_price) in got {
        // the visit has no billing either: 0 on both sides of every row
        assert_eq!((rate, con_rate), (Some(0.0), Some(0.0)), "{pair}");
        assert_eq!(overlap_price.as_deref(), Some("0.00"), "{pair}");
    }
}
