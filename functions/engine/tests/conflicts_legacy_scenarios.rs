//! The legacy acceptance scenarios A1–A20 (docs/conflicts.md §13,
//! legacy_tests.md §9) and the rule boundaries of three-valued logic,
//! whitespace and the wall clock (docs/conflicts.md §4, §10), run through a
//! real PostgreSQL: visits planted in the analytics mirror, one full night
//! (`thaw_engine::conflicts::run`), and the stored `conflictvisitmaps` rows
//! with their seven rule flags. The pure tests of `conflicts_detect.rs`
//! check the same rules on `detect` alone; these also cover the candidate
//! query (trimming, provider flags, exclusions, the window, the time zone of
//! the instants, the patient addresses) and the store: the times it stores
//! for a mirror holding them as `timestamp`, and the MPH rows it refuses.
//!
//! Each scenario is a group `k` with its own caregiver SSN `000-00-{k:04}`
//! and visits `k*100 + 1…`, so the groups never pair with each other and one
//! night checks them all.
//!
//! Run under tests/harness.py (`make test`), which exports THAW_PG_*.

use thaw_engine::conflicts::{run, DetectionMode};
use thaw_engine::ErrorKind;
use thaw_test_support::conflicts::{database_with, settings_on, texts, REFERENCE};
use tokio_postgres::Client;

const TODAY: &str = "2025-03-10";
/// A date after "today": rules 1 and 4 may start new conflicts (A4).
const FUTURE: &str = "2025-03-12";
/// A date before "today" (and before the DST change of 2025-03-09).
const PAST: &str = "2025-03-05";
/// Call GPS of the worked example (docs/conflicts.md §R7.5): 5.16 mi apart.
const BROOKLYN_1: &str = "40.597095,-73.998993";
const BROOKLYN_2: &str = "40.654140,-73.935455";
/// About 130 miles from Brooklyn: beyond the last MPH band.
const ALBANY: &str = "42.652580,-73.756233";

/// Providers besides A, B (active) and C (inactive) of the reference data:
/// D demo, E with a NULL `Is Active`, F excluded, P active in Pennsylvania.
const PROVIDERS: &str = r#"
INSERT INTO analytics.dimprovider ("Provider Id", "Application Provider Id", "Provider Name", "Is Active", "Is Demo", "Address State") VALUES
  ('00000000-0000-0000-0000-00000000000d', 4, 'Agency D', true, true, NULL),
  ('00000000-0000-0000-0000-00000000000e', 5, 'Agency E', NULL, false, NULL),
  ('00000000-0000-0000-0000-00000000000f', 6, 'Agency F', true, false, NULL),
  ('00000000-0000-0000-0000-0000000000a9', 9, 'Agency P', true, false, ' Pennsylvania ');
INSERT INTO conflict.excluded_agency ("ProviderID") VALUES ('00000000-0000-0000-0000-00000000000f');
INSERT INTO conflict.excluded_ssn ("SSN") VALUES (' 000-00-0016  ');
-- Patients besides e1 (NY, ZIP 11214, Brooklyn 1) and e2 (NY, 11203, Brooklyn 2):
-- e3 at Brooklyn 2 with e1's ZIP, e4 in PA without coordinates, e5 in "new york", e6 at 0,0,
-- e7 at Brooklyn 2 with e1's ZIP and a trailing space, e8 and e9 at Brooklyn 1 and 2 with empty ZIPs.
INSERT INTO analytics.dimpatient ("Patient Id", "Application Patient Id", "Patient Name") VALUES
  ('00000000-0000-0000-0000-0000000000e3', 23, 'Pat Three'), ('00000000-0000-0000-0000-0000000000e4', 24, 'Pat Four'),
  ('00000000-0000-0000-0000-0000000000e5', 25, 'Pat Five'), ('00000000-0000-0000-0000-0000000000e6', 26, 'Pat Six'),
  ('00000000-0000-0000-0000-0000000000e7', 27, 'Pat Seven'), ('00000000-0000-0000-0000-0000000000e8', 28, 'Pat Eight'),
  ('00000000-0000-0000-0000-0000000000e9', 29, 'Pat Nine');
INSERT INTO analytics.dimpatientaddress ("Patient Address Id", "Patient Id", "Address Type", "Primary Address",
    "Zip Code", "Address State", "Latitude", "Longitude", "Application Created UTC Timestamp") VALUES
  ('00000000-0000-0000-0000-0000000000f3', '00000000-0000-0000-0000-0000000000e3', 'GPS', true, '11214', 'NY', 40.654140, -73.935455, '2020-01-01Z'),
  ('00000000-0000-0000-0000-0000000000f4', '00000000-0000-0000-0000-0000000000e4', 'GPS', true, '19103', 'PA', NULL, NULL, '2020-01-01Z'),
  ('00000000-0000-0000-0000-0000000000f5', '00000000-0000-0000-0000-0000000000e5', 'GPS', true, '11211', 'new york', NULL, NULL, '2020-01-01Z'),
  ('00000000-0000-0000-0000-0000000000f6', '00000000-0000-0000-0000-0000000000e6', 'GPS', true, '00000', 'NY', 0, 0, '2020-01-01Z'),
  ('00000000-0000-0000-0000-0000000000f7', '00000000-0000-0000-0000-0000000000e7', 'GPS', true, '11214 ', 'NY', 40.654140, -73.935455, '2020-01-01Z'),
  ('00000000-0000-0000-0000-0000000000f8', '00000000-0000-0000-0000-0000000000e8', 'GPS', true, '', 'NY', 40.597095, -73.998993, '2020-01-01Z'),
  ('00000000-0000-0000-0000-0000000000f9', '00000000-0000-0000-0000-0000000000e9', 'GPS', true, '', 'NY', 40.654140, -73.935455, '2020-01-01Z');
"#;

/// A time on the wall clock of New York (`YYYY-MM-DD HH:MM[:SS]`), as SQL.
fn ny(wall: &str) -> String {
    format!("('{wall}'::timestamp AT TIME ZONE 'America/New_York')")
}

/// An instant written with its own offset (`2025-03-05 15:00+00`), as SQL.
fn instant(text: &str) -> String {
    format!("'{text}'::timestamptz")
}

/// One planted visit. Times are SQL expressions ([`ny`], [`instant`]).
#[derive(Clone)]
struct Visit {
    id: u32,
    date: &'static str,
    caregiver: u32,
    provider: &'static str,
    scheduled: (Option<String>, Option<String>),
    actual: (Option<String>, Option<String>),
    missed: Option<bool>,
    call_out_gps: Option<&'static str>,
    patient: Option<&'static str>,
    payer_patient: Option<&'static str>,
}

/// A scheduled-only visit `id` of caregiver `caregiver` at provider
/// `provider` (last hex digits of its id) on `date`, `from`–`to` (New York `HH:MM`).
fn scheduled(id: u32, caregiver: u32, provider: &'static str, date: &'static str, from: &str, to: &str) -> Visit {
    Visit {
        id,
        date,
        caregiver,
        provider,
        scheduled: (Some(ny(&format!("{date} {from}"))), Some(ny(&format!("{date} {to}")))),
        actual: (None, None),
        missed: Some(false),
        call_out_gps: None,
        patient: None,
        payer_patient: None,
    }
}

/// A completed visit: actual times `from`–`to`, scheduled the same.
fn completed(id: u32, caregiver: u32, provider: &'static str, date: &'static str, from: &str, to: &str) -> Visit {
    let mut v = scheduled(id, caregiver, provider, date, from, to);
    v.actual = v.scheduled.clone();
    v
}

impl Visit {
    fn gps(mut self, call_out: &'static str) -> Visit {
        self.call_out_gps = Some(call_out);
        self
    }
    fn patients(mut self, patient: Option<&'static str>, payer_patient: Option<&'static str>) -> Visit {
        self.patient = patient;
        self.payer_patient = payer_patient;
        self
    }
}

/// SQL of an optional value.
fn or_null(value: &Option<String>) -> String {
    value.clone().unwrap_or_else(|| "NULL".into())
}

/// A quoted SQL text literal.
fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The id of caregiver `n` (a UUID ending in `n` in hex).
fn caregiver_id(n: u32) -> String {
    format!("00000000-0000-0000-00cc-{n:012x}")
}

/// The INSERT of caregivers `(n, SSN)` (a NULL SSN when `None`).
fn caregivers_sql(caregivers: &[(u32, Option<&str>)]) -> String {
    let rows: Vec<String> = caregivers
        .iter()
        .map(|(n, ssn)| format!("('{}', {n}, 'Ann Aide', {})", caregiver_id(*n), ssn.map(quoted).unwrap_or_else(|| "NULL".into())))
        .collect();
    format!(
        "INSERT INTO analytics.dimcaregiver (\"Caregiver Id\", \"Application Caregiver Id\", \"Caregiver Fullname\", \"SSN\") VALUES {};\n",
        rows.join(",\n  ")
    )
}

/// The INSERT of `visits` into the mirror (last updated 2025-03-01).
fn visits_sql(visits: &[Visit]) -> String {
    let uuid = |suffix: &str| format!("'00000000-0000-0000-0000-{suffix:0>12}'");
    let rows: Vec<String> = visits
        .iter()
        .map(|v| {
            format!(
                "('00000000-0000-0000-0001-{id:012}', {id}, '{date}', '{cg}', {pr}, {sch_s}, {sch_e}, {act_s}, {act_e}, {missed}, {gps}, {pp}, {pa}, 'Hourly', '2025-03-01Z')",
                id = v.id,
                date = v.date,
                cg = caregiver_id(v.caregiver),
                pr = uuid(v.provider),
                sch_s = or_null(&v.scheduled.0),
                sch_e = or_null(&v.scheduled.1),
                act_s = or_null(&v.actual.0),
                act_e = or_null(&v.actual.1),
                missed = v.missed.map_or("NULL".to_string(), |m| m.to_string()),
                gps = v.call_out_gps.map(quoted).unwrap_or_else(|| "NULL".into()),
                pp = v.patient.map(uuid).unwrap_or_else(|| "NULL".into()),
                pa = v.payer_patient.map(uuid).unwrap_or_else(|| "NULL".into()),
            )
        })
        .collect();
    format!(
        "INSERT INTO analytics.factvisitcallperformance_cr (\"Visit Id\", \"Application Visit Id\", \"Visit Date\", \"Caregiver Id\", \
         \"Provider Id\", \"Scheduled Start Time\", \"Scheduled End Time\", \"Visit Start Time\", \"Visit End Time\", \"Is Missed\", \
         \"Call Out GPS Coordinates\", \"Provider Patient Id\", \"Payer Patient Id\", \"Bill Type\", \"Visit Updated Timestamp\") VALUES\n  {};\n",
        rows.join(",\n  ")
    )
}

/// "primary>conflicting:flags" (application visit ids, flags of rules 1–7
/// as `Y`/`N`) of every stored pair of group `k` (visits `k*100 + 1…`).
async fn group_pairs(client: &Client, k: u32) -> Vec<String> {
    texts(
        client,
        &format!(
            r#"SELECT "AppVisitID" || '>' || "ConAppVisitID" || ':' || "SameSchTimeFlag" || "SameVisitTimeFlag" || "SchAndVisitTimeSameFlag"
                      || "SchOverAnotherSchTimeFlag" || "VisitTimeOverAnotherVisitTimeFlag" || "SchTimeOverVisitTimeFlag" || "DistanceFlag"
               FROM conflict.conflictvisitmaps WHERE "AppVisitID" / 100 = {k} ORDER BY "AppVisitID", "ConAppVisitID""#
        ),
    )
    .await
}

/// Both orientations of the pair `a`, `b` with the same `flags`.
fn both(a: u32, b: u32, flags: &str) -> Vec<String> {
    vec![format!("{a}>{b}:{flags}"), format!("{b}>{a}:{flags}")]
}

/// Both orientations of several pairs, sorted as [`group_pairs`] returns them.
fn all(pairs: &[(u32, u32, &str)]) -> Vec<String> {
    let mut rows: Vec<(u32, u32, String)> =
        pairs.iter().flat_map(|(a, b, f)| [(*a, *b, f.to_string()), (*b, *a, f.to_string())]).collect();
    rows.sort();
    rows.into_iter().map(|(a, b, f)| format!("{a}>{b}:{f}")).collect()
}

const RULE_1: &str = "YNNNNNN";
const RULE_2: &str = "NYNNNNN";
const RULE_3: &str = "NNYNNNN";
const RULE_4: &str = "NNNYNNN";
const RULE_5: &str = "NNNNYNN";
const RULE_6: &str = "NNNNNYN";
const RULE_7: &str = "NNNNNNY";

/// Caregiver `k` with the SSN `000-00-{k:04}` (the identity of group `k`).
fn ssn(k: u32) -> String {
    format!("000-00-{k:04}")
}

/// Legacy scenarios A1–A20 (legacy_tests.md §9, docs/conflicts.md §13.1–13.4)
/// through PostgreSQL: the candidate query, the rules and the store give
/// exactly the rows the scenarios state, and a second night writes nothing.
/// A18 (`ExtraDistancePer` 1.2) is the second night after the setting
/// changed, which also shows the ZIP guard of A19 holding on the refresh.
#[tokio::test]
async fn legacy_scenarios_a1_to_a20_give_the_stated_pairs_through_postgresql() {
    let mut cgs: Vec<(u32, Option<String>)> = [1, 2, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 29, 30, 31, 32]
        .iter()
        .map(|k| (*k, Some(ssn(*k))))
        .collect();
    // A3: another SSN (same name) at the other agency; A8: blank, empty and NULL SSNs.
    cgs.extend([(3, Some(ssn(3))), (303, Some(ssn(303))), (8, Some("   ".to_string())), (18, Some(String::new())), (28, None)]);
    let caregivers: Vec<(u32, Option<&str>)> = cgs.iter().map(|(n, s)| (*n, s.as_deref())).collect();
    let (a, b) = ("a", "b");
    let visits = vec![
        // A1 same schedule, A2 same provider, A3 different SSNs, A4 yesterday.
        scheduled(101, 1, a, FUTURE, "09:00", "13:00"),
        scheduled(102, 1, b, FUTURE, "09:00", "13:00"),
        scheduled(201, 2, a, FUTURE, "09:00", "13:00"),
        scheduled(202, 2, a, FUTURE, "09:00", "13:00"),
        scheduled(301, 3, a, FUTURE, "09:00", "13:00"),
        scheduled(302, 303, b, FUTURE, "09:00", "13:00"),
        scheduled(401, 4, a, "2025-03-09", "09:00", "13:00"),
        scheduled(402, 4, b, "2025-03-09", "09:00", "13:00"),
        // A5: overlapping across midnight on different dates → nothing.
        Visit { scheduled: (Some(ny("2025-03-12 22:00")), Some(ny("2025-03-13 02:00"))), ..scheduled(501, 5, a, FUTURE, "00:00", "00:00") },
        scheduled(502, 5, b, "2025-03-13", "00:00", "03:00"),
        // A6: an excluded agency (F), an excluded SSN (listed with spaces, §D11).
        scheduled(601, 6, a, FUTURE, "09:00", "13:00"),
        scheduled(602, 6, "f", FUTURE, "09:00", "13:00"),
        scheduled(1601, 16, a, FUTURE, "09:00", "13:00"),
        scheduled(1602, 16, b, FUTURE, "09:00", "13:00"),
        // A7: inactive (C), demo (D) and NULL-active (E) agencies.
        scheduled(701, 7, a, FUTURE, "09:00", "13:00"),
        scheduled(702, 7, "c", FUTURE, "09:00", "13:00"),
        scheduled(1701, 17, a, FUTURE, "09:00", "13:00"),
        scheduled(1702, 17, "d", FUTURE, "09:00", "13:00"),
        scheduled(2701, 27, a, FUTURE, "09:00", "13:00"),
        scheduled(2702, 27, "e", FUTURE, "09:00", "13:00"),
        // A8: SSN of spaces, empty, NULL.
        scheduled(801, 8, a, FUTURE, "09:00", "13:00"),
        scheduled(802, 8, b, FUTURE, "09:00", "13:00"),
        scheduled(1801, 18, a, FUTURE, "09:00", "13:00"),
        scheduled(1802, 18, b, FUTURE, "09:00", "13:00"),
        scheduled(2801, 28, a, FUTURE, "09:00", "13:00"),
        scheduled(2802, 28, b, FUTURE, "09:00", "13:00"),
        // A9: schedule over schedule; touching.
        scheduled(901, 9, a, FUTURE, "09:00", "13:00"),
        scheduled(902, 9, b, FUTURE, "12:00", "15:00"),
        scheduled(903, 9, b, FUTURE, "13:00", "15:00"),
        // A10: same visit time, touching, visit over visit.
        completed(1001, 10, a, PAST, "09:05", "13:02"),
        completed(1002, 10, b, PAST, "09:05", "13:02"),
        completed(1003, 10, b, PAST, "13:02", "14:00"),
        completed(1004, 10, b, PAST, "12:00", "14:00"),
        // A11 schedule equals visit time, A12 schedule over visit.
        scheduled(1101, 11, a, PAST, "09:00", "13:00"),
        completed(1102, 11, b, PAST, "09:00", "13:00"),
        scheduled(1201, 12, a, PAST, "09:00", "13:00"),
        completed(1202, 12, b, PAST, "10:00", "14:00"),
        // A13: a partial visit (actual start, no end) against S and C.
        Visit { actual: (Some(ny("2025-03-05 09:00")), None), ..scheduled(1301, 13, a, PAST, "09:00", "13:00") },
        scheduled(1302, 13, b, PAST, "09:00", "13:00"),
        completed(1303, 13, b, PAST, "09:00", "13:00"),
        // A14: completed visits whose schedules overlap but actual times touch.
        Visit { scheduled: (Some(ny("2025-03-05 09:00")), Some(ny("2025-03-05 12:00"))), ..completed(1401, 14, a, PAST, "09:00", "10:00") },
        Visit { scheduled: (Some(ny("2025-03-05 09:00")), Some(ny("2025-03-05 12:00"))), ..completed(1402, 14, b, PAST, "10:00", "11:00") },
        // A15 gap 15 < ETA 20.64; A16 gap 25, gap 0, overlapping.
        completed(1501, 15, a, PAST, "09:00", "10:00").gps(BROOKLYN_1),
        completed(1502, 15, b, PAST, "10:15", "11:00").gps(BROOKLYN_2),
        completed(1901, 19, a, PAST, "09:00", "10:00").gps(BROOKLYN_1),
        completed(1902, 19, b, PAST, "10:25", "11:00").gps(BROOKLYN_2),
        completed(2001, 20, a, PAST, "09:00", "10:00").gps(BROOKLYN_1),
        completed(2002, 20, b, PAST, "10:00", "11:00").gps(BROOKLYN_2),
        completed(2101, 21, a, PAST, "09:00", "10:00").gps(BROOKLYN_1),
        completed(2102, 21, b, PAST, "09:30", "11:00").gps(BROOKLYN_2),
        // A17: no coordinates on one side; a distance in no band.
        completed(2201, 22, a, PAST, "09:00", "10:00").gps(BROOKLYN_1),
        completed(2202, 22, b, PAST, "10:15", "11:00"),
        completed(2301, 23, a, PAST, "09:00", "10:00").gps(BROOKLYN_1),
        completed(2302, 23, b, PAST, "10:15", "11:00").gps(ALBANY),
        // A18: gap 22: no flag with 1.0 (ETA 20.64), a flag with 1.2 (ETA 24.76).
        completed(2401, 24, a, PAST, "09:00", "10:00").gps(BROOKLYN_1),
        completed(2402, 24, b, PAST, "10:22", "11:00").gps(BROOKLYN_2),
        // A19: the provider patients share a ZIP → no flag; control with different ZIPs.
        completed(2501, 25, a, PAST, "09:00", "10:00").gps(BROOKLYN_1).patients(Some("e1"), None),
        completed(2502, 25, b, PAST, "10:15", "11:00").gps(BROOKLYN_2).patients(Some("e3"), None),
        completed(2601, 26, a, PAST, "09:00", "10:00").gps(BROOKLYN_1).patients(Some("e1"), None),
        completed(2602, 26, b, PAST, "10:15", "11:00").gps(BROOKLYN_2).patients(Some("e2"), None),
        // A20: NY/NY vs PA/PA → excluded; NY/NULL vs "new york"/PA → kept;
        // no patient state → the provider's (P in Pennsylvania) → excluded;
        // no state at all on one side → kept.
        completed(2901, 29, a, PAST, "09:00", "12:00").patients(Some("e1"), Some("e1")),
        completed(2902, 29, b, PAST, "10:00", "13:00").patients(Some("e4"), Some("e4")),
        completed(3001, 30, a, PAST, "09:00", "12:00").patients(Some("e1"), None),
        completed(3002, 30, b, PAST, "10:00", "13:00").patients(Some("e5"), Some("e4")),
        completed(3101, 31, "a9", PAST, "09:00", "12:00"),
        completed(3102, 31, b, PAST, "10:00", "13:00").patients(Some("e1"), None),
        completed(3201, 32, a, PAST, "09:00", "12:00"),
        completed(3202, 32, b, PAST, "10:00", "13:00").patients(Some("e4"), Some("e4")),
    ];
    let sql = format!("{REFERENCE}{PROVIDERS}{}{}", caregivers_sql(&caregivers), visits_sql(&visits));
    let mut client = database_with("cf_legacy_a1_a20", &sql).await;
    let night = run(&mut client, &settings_on(TODAY), DetectionMode::Full).await.expect("night 1");

    let none: Vec<String> = vec![];
    assert_eq!(group_pairs(&client, 1).await, both(101, 102, RULE_1), "A1");
    assert_eq!(group_pairs(&client, 2).await, none, "A2: same provider");
    assert_eq!(group_pairs(&client, 3).await, none, "A3: different SSNs");
    assert_eq!(group_pairs(&client, 4).await, none, "A4: a past schedule starts no conflict");
    assert_eq!(group_pairs(&client, 5).await, none, "A5: different dates across midnight");
    assert_eq!(group_pairs(&client, 6).await, none, "A6: excluded agency");
    assert_eq!(group_pairs(&client, 16).await, none, "A6: excluded SSN, listed with spaces");
    for (k, what) in [(7, "inactive"), (17, "demo"), (27, "NULL Is Active")] {
        assert_eq!(group_pairs(&client, k).await, none, "A7: {what} agency");
    }
    for (k, what) in [(8, "spaces"), (18, "empty"), (28, "NULL")] {
        assert_eq!(group_pairs(&client, k).await, none, "A8: SSN {what}");
    }
    assert_eq!(group_pairs(&client, 9).await, both(901, 902, RULE_4), "A9: rule 4, touching 903 nothing");
    assert_eq!(group_pairs(&client, 10).await, all(&[(1001, 1002, RULE_2), (1001, 1004, RULE_5)]), "A10");
    assert_eq!(group_pairs(&client, 11).await, both(1101, 1102, RULE_3), "A11");
    assert_eq!(group_pairs(&client, 12).await, both(1201, 1202, RULE_6), "A12");
    assert_eq!(group_pairs(&client, 13).await, none, "A13: partial visit");
    assert_eq!(group_pairs(&client, 14).await, none, "A14: overlapping schedules of completed visits");
    assert_eq!(group_pairs(&client, 15).await, both(1501, 1502, RULE_7), "A15");
    assert_eq!(group_pairs(&client, 19).await, none, "A16: gap 25");
    assert_eq!(group_pairs(&client, 20).await, none, "A16: gap 0");
    assert_eq!(group_pairs(&client, 21).await, both(2101, 2102, RULE_5), "A16: overlapping → rule 5 only");
    assert_eq!(group_pairs(&client, 22).await, none, "A17: no coordinates");
    assert_eq!(group_pairs(&client, 23).await, none, "A17: distance in no band");
    assert_eq!(group_pairs(&client, 24).await, none, "A18: gap 22 with ExtraDistancePer 1.0");
    assert_eq!(group_pairs(&client, 25).await, none, "A19: same provider-patient ZIP");
    assert_eq!(group_pairs(&client, 26).await, both(2601, 2602, RULE_7), "A19 control: different ZIPs");
    assert_eq!(group_pairs(&client, 29).await, none, "A20: NY/NY vs PA/PA");
    assert_eq!(group_pairs(&client, 30).await, both(3001, 3002, RULE_5), "A20: NY/NULL vs \"new york\"/PA");
    assert_eq!(group_pairs(&client, 31).await, none, "A20: the provider's state stands in");
    assert_eq!(group_pairs(&client, 32).await, both(3201, 3202, RULE_5), "A20: no state at all on one side");
    let distance: Vec<String> = texts(
        &client,
        r#"SELECT "DistanceMilesFromLatLng" || ' mi ' || "AverageMilesPerHour" || ' mph ' || "ETATravelMinutes" || ' min ' || "MinuteDiffBetweenSch"
           FROM conflict.conflictvisitmaps WHERE "AppVisitID" = 1501"#,
    )
    .await;
    assert_eq!(distance, ["5.16 mi 15 mph 21 min 15"], "the worked example's stored metrics");
    assert_eq!(night.inserted, 22, "{night:?}");

    // A18 and A19 on the refresh: ExtraDistancePer 1.2 (a full night, §D1).
    client.batch_execute(r#"UPDATE conflict.settings SET "ExtraDistance" = 20, "ExtraDistancePer" = 1.2"#).await.unwrap();
    let night2 = run(&mut client, &settings_on(TODAY), DetectionMode::Incremental).await.expect("night 2");
    assert_eq!(night2.mode.as_deref(), Some("full"), "{night2:?}");
    assert_eq!(group_pairs(&client, 24).await, both(2401, 2402, RULE_7), "A18: gap 22 with ExtraDistancePer 1.2");
    assert_eq!(group_pairs(&client, 19).await, none, "A18: gap 25 with 1.2 (ETA 24.76)");
    assert_eq!(group_pairs(&client, 25).await, none, "A19: the ZIP guard holds on the refresh too");
    assert_eq!(night2.inserted, 2, "{night2:?}");
    let night3 = run(&mut client, &settings_on(TODAY), DetectionMode::Full).await.expect("night 3");
    assert_eq!((night3.inserted, night3.updated, night3.resolved), (0, 0, 0), "a night without changes writes nothing: {night3:?}");
}

/// docs/conflicts.md §4.4 and §10: the rule boundaries through PostgreSQL.
/// A NULL scheduled bound gives no interval (three-valued: no rule, against
/// a scheduled or a completed visit); a visit running past midnight is
/// compared with the other visits of its own service date on the wall
/// clock; a zero-length schedule inside another is an overlap (rule 4) and
/// equal to another zero-length one (rule 1); touching instants written in
/// other offsets do not overlap and equal ones are the same time (§D9);
/// 30 seconds of overlap is an overlap; an SSN with a tab or a
/// non-breaking space is another caregiver, one of non-breaking spaces only
/// is not blank (Snowflake's `TRIM` removes spaces only, §10.2), one with
/// spaces is the same; GPS `0,0` and a patient address at 0,0 are points
/// thousands of miles away, in no band: no rule 7; the ZIP guard compares
/// as \[SF\]'s `=` (a trailing space is another ZIP, empty ZIPs are equal).
#[tokio::test]
async fn rule_boundaries_of_nulls_midnight_offsets_and_whitespace_through_postgresql() {
    let nbsp = '\u{a0}';
    let caregivers_owned: Vec<(u32, String)> = vec![
        (40, ssn(40)),
        (41, ssn(41)),
        (42, ssn(42)),
        (43, ssn(43)),
        (44, ssn(44)),
        (45, ssn(45)),
        (4500, format!("{}\t", ssn(45))),
        (46, ssn(46)),
        (4600, format!("{nbsp}{}", ssn(46))),
        (47, format!("{nbsp}")),
        (4700, format!("{nbsp}")),
        (48, format!(" {} ", ssn(48))),
        (4800, ssn(48)),
        (49, ssn(49)),
        (50, ssn(50)),
        (51, ssn(51)),
        (52, ssn(52)),
        (53, ssn(53)),
    ];
    let caregivers: Vec<(u32, Option<&str>)> = caregivers_owned.iter().map(|(n, s)| (*n, Some(s.as_str()))).collect();
    let (a, b) = ("a", "b");
    let visits = vec![
        // A NULL scheduled start: no interval, no rule (vs S and vs C).
        Visit { scheduled: (None, Some(ny("2025-03-12 13:00"))), ..scheduled(4001, 40, a, FUTURE, "09:00", "13:00") },
        scheduled(4002, 40, b, FUTURE, "09:00", "13:00"),
        Visit { scheduled: (Some(ny("2025-03-05 09:00")), None), ..scheduled(4101, 41, a, PAST, "09:00", "13:00") },
        completed(4102, 41, b, PAST, "09:00", "13:00"),
        // Zero-length schedules.
        scheduled(4201, 42, a, FUTURE, "10:00", "10:00"),
        scheduled(4202, 42, b, FUTURE, "09:00", "13:00"),
        scheduled(4203, 42, "a9", FUTURE, "10:00", "10:00"),
        // Offsets: 4302 touches 4301 (10:00 EST = 15:00Z), 4303 equals it (14:00+00 = 09:00 EST).
        completed(4301, 43, a, PAST, "09:00", "10:00"),
        Visit { actual: (Some(instant("2025-03-05 15:00+00")), Some(instant("2025-03-05 16:00+00"))), ..completed(4302, 43, b, PAST, "10:00", "11:00") },
        Visit { actual: (Some(instant("2025-03-05 14:00+00")), Some(instant("2025-03-05 10:00-05"))), ..completed(4303, 43, "a9", PAST, "09:00", "10:00") },
        // 30 seconds of overlap.
        Visit { actual: (Some(ny("2025-03-05 09:00")), Some(ny("2025-03-05 10:00:30"))), ..completed(4401, 44, a, PAST, "09:00", "10:00") },
        completed(4402, 44, b, PAST, "10:00", "11:00"),
        // Whitespace in SSNs.
        scheduled(4501, 45, a, FUTURE, "09:00", "13:00"),
        scheduled(4502, 4500, b, FUTURE, "09:00", "13:00"),
        scheduled(4601, 46, a, FUTURE, "09:00", "13:00"),
        scheduled(4602, 4600, b, FUTURE, "09:00", "13:00"),
        scheduled(4701, 47, a, FUTURE, "09:00", "13:00"),
        scheduled(4702, 4700, b, FUTURE, "09:00", "13:00"),
        scheduled(4801, 48, a, FUTURE, "09:00", "13:00"),
        scheduled(4802, 4800, b, FUTURE, "09:00", "13:00"),
        // GPS 0,0 and a patient address at 0,0: no band, no flag.
        completed(4901, 49, a, PAST, "09:00", "10:00").gps("0,0"),
        completed(4902, 49, b, PAST, "10:15", "11:00").gps(BROOKLYN_2),
        completed(5001, 50, a, PAST, "09:00", "10:00").patients(Some("e6"), None),
        completed(5002, 50, b, PAST, "10:15", "11:00").gps(BROOKLYN_2),
        // ZIP guard (§D10) as [SF]'s `=`: a trailing space is another ZIP, two empty ZIPs are equal.
        completed(5201, 52, a, PAST, "09:00", "10:00").patients(Some("e1"), None),
        completed(5202, 52, b, PAST, "10:15", "11:00").patients(Some("e7"), None),
        completed(5301, 53, a, PAST, "09:00", "10:00").patients(Some("e8"), None),
        completed(5302, 53, b, PAST, "10:15", "11:00").patients(Some("e9"), None),
        // Past midnight on its own service date: 22:00–02:00 against 01:00–03:00 the next morning.
        Visit { scheduled: (Some(ny("2025-03-12 22:00")), Some(ny("2025-03-13 02:00"))), ..scheduled(5101, 51, a, FUTURE, "00:00", "00:00") },
        Visit { scheduled: (Some(ny("2025-03-13 01:00")), Some(ny("2025-03-13 03:00"))), ..scheduled(5102, 51, b, FUTURE, "00:00", "00:00") },
        Visit { scheduled: (Some(ny("2025-03-13 02:00")), Some(ny("2025-03-13 04:00"))), ..scheduled(5103, 51, "a9", FUTURE, "00:00", "00:00") },
    ];
    let sql = format!("{REFERENCE}{PROVIDERS}{}{}", caregivers_sql(&caregivers), visits_sql(&visits));
    let mut client = database_with("cf_rule_boundaries", &sql).await;
    run(&mut client, &settings_on(TODAY), DetectionMode::Full).await.expect("night");
    let none: Vec<String> = vec![];
    assert_eq!(group_pairs(&client, 40).await, none, "NULL scheduled start vs S");
    assert_eq!(group_pairs(&client, 41).await, none, "NULL scheduled end vs C");
    assert_eq!(
        group_pairs(&client, 42).await,
        all(&[(4201, 4202, RULE_4), (4201, 4203, RULE_1), (4202, 4203, RULE_4)]),
        "zero-length schedules"
    );
    assert_eq!(group_pairs(&client, 43).await, all(&[(4301, 4303, RULE_2)]), "offsets: touching is no overlap, equal instants are equal");
    assert_eq!(group_pairs(&client, 44).await, both(4401, 4402, RULE_5), "30 seconds of overlap");
    assert_eq!(group_pairs(&client, 45).await, none, "an SSN with a tab is another caregiver");
    assert_eq!(group_pairs(&client, 46).await, none, "an SSN with a non-breaking space is another caregiver");
    assert_eq!(group_pairs(&client, 47).await, both(4701, 4702, RULE_1), "an SSN of a non-breaking space is not blank");
    assert_eq!(group_pairs(&client, 48).await, both(4801, 4802, RULE_1), "spaces are trimmed");
    assert_eq!(group_pairs(&client, 49).await, none, "GPS 0,0");
    assert_eq!(group_pairs(&client, 50).await, none, "a patient address at 0,0");
    assert_eq!(group_pairs(&client, 52).await, both(5201, 5202, RULE_7), "ZIP '11214' and '11214 ' differ");
    assert_eq!(group_pairs(&client, 53).await, none, "two empty ZIPs are equal");
    assert_eq!(
        group_pairs(&client, 51).await,
        all(&[(5101, 5102, RULE_4), (5102, 5103, RULE_4)]),
        "past midnight on one service date; 5101 touches 5103 at 02:00"
    );
    let ssns = texts(&client, r#"SELECT DISTINCT "SSN" || '|' || "AideSSN" FROM conflict.conflictvisitmaps WHERE "AppVisitID" / 100 IN (47, 48) ORDER BY 1"#).await;
    assert_eq!(ssns, [format!("{}|{}", ssn(48), ssn(48)), format!("{nbsp}|{nbsp}")], "stored SSNs are trimmed of spaces only");
}

/// docs/conflicts.md §D7: an MPH band with a NULL speed (or NULL bounds) is
/// bad input naming the row (\[SF\] silently never flagged a distance in such
/// a band), like a zero speed; the run writes nothing, exits 2 and is never
/// retried, and releases `InProgressFlag`.
#[tokio::test]
async fn conflict_mph_band_with_a_null_speed_or_bound_is_bad_input_naming_the_row() {
    for (column, set) in [("AverageMilesPerHour", "NULL"), ("To", "NULL"), ("AverageMilesPerHour", "0")] {
        let sql = format!("{REFERENCE}{}", include_str!("fixtures/conflicts_visits.sql"));
        let mut client = database_with("cf_mph_null", &sql).await;
        client.batch_execute(&format!(r#"UPDATE conflict.mph SET "{column}" = {set} WHERE "From" = 5"#)).await.unwrap();
        let id: i64 = client.query_one(r#"SELECT "ID" FROM conflict.mph WHERE "From" = 5"#, &[]).await.unwrap().get(0);
        let err = run(&mut client, &settings_on(TODAY), DetectionMode::Full).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::ConfigInvalid, "{column} {set}: {err}");
        assert_eq!(err.kind.exit_code(), 2);
        assert!(!err.kind.is_retryable());
        assert!(err.message.contains("conflict.mph"), "{}", err.message);
        if set == "NULL" {
            assert!(err.message.contains(&format!("row ID {id}")), "{column}: {}", err.message);
        }
        let stored = texts(&client, r#"SELECT count(*)::text FROM conflict.conflictvisitmaps"#).await;
        assert_eq!(stored, ["0"]);
        let flag = texts(&client, r#"SELECT "InProgressFlag"::text FROM conflict.settings"#).await;
        assert_eq!(flag, ["2"]);
    }
}

/// The stored times of every pair (`SchStartTime` … `LastUpdatedDate`,
/// both sides, the shift and the per-minute rate), one text per pair.
async fn stored_times(client: &Client) -> Vec<String> {
    texts(
        client,
        r#"SELECT concat_ws(' | ', "AppVisitID", "ConAppVisitID", "SchStartTime", "SchEndTime", "VisitStartTime", "VisitEndTime",
                  "EVVStartTime", "EVVEndTime", "ShVTSTTime", "ShVTENTime", "LastUpdatedDate", "ConSchStartTime", "ConVisitEndTime",
                  "CShVTSTTime", "CShVTENTime", "ConLastUpdatedDate", "BilledRateMinute", "ConBilledRateMinute", "MinuteDiffBetweenSch")
           FROM conflict.conflictvisitmaps ORDER BY "AppVisitID", "ConAppVisitID""#,
    )
    .await
}

/// Finding (docs/conflicts.md §2.4): a mirror holding the visit times as
/// `timestamp` (the wall clock of `conflicts.time_zone`) was detected
/// right, but its stored times were moved by the zone's offset (09:00 was
/// stored as 13:00, in the session's time zone), because the snapshot read
/// them raw. They are now read through their column type: the stored rows
/// equal those of a `timestamptz` mirror whatever the session's time zone,
/// and a second night writes nothing.
#[tokio::test]
async fn conflict_visit_times_held_as_timestamp_are_stored_on_the_wall_clock() {
    let sql = format!("{REFERENCE}{}", include_str!("fixtures/conflicts_visits.sql"));
    let mut expected_client = database_with("cf_times_tz", &sql).await;
    run(&mut expected_client, &settings_on(TODAY), DetectionMode::Full).await.expect("timestamptz mirror");
    let expected = stored_times(&expected_client).await;
    assert!(expected[0].starts_with("101 | 102 | 2025-03-12 09:00:00 | 2025-03-12 13:00:00"), "{expected:?}");

    let mut client = database_with("cf_times_wall", &sql).await;
    let to_wall_clock: Vec<String> = ["Scheduled Start Time", "Scheduled End Time", "Visit Start Time", "Visit End Time", "Call In Time", "Call Out Time", "Visit Updated Timestamp"]
        .iter()
        .map(|c| format!(r#"ALTER "{c}" TYPE timestamp USING ("{c}" AT TIME ZONE 'America/New_York')"#))
        .collect();
    client
        .batch_execute(&format!(
            "UPDATE analytics.factvisitcallperformance_cr SET \"Call In Time\" = \"Visit Start Time\", \"Call Out Time\" = \"Visit End Time\";
             ALTER TABLE analytics.factvisitcallperformance_cr {};
             SET TimeZone = 'Asia/Tokyo'",
            to_wall_clock.join(", ")
        ))
        .await
        .unwrap();
    expected_client
        .batch_execute(r#"UPDATE analytics.factvisitcallperformance_cr SET "Call In Time" = "Visit Start Time", "Call Out Time" = "Visit End Time""#)
        .await
        .unwrap();
    let night = run(&mut expected_client, &settings_on(TODAY), DetectionMode::Full).await.expect("timestamptz mirror, call times");
    assert_eq!(night.updated, 2, "the call times reach the completed pair: {night:?}");
    let expected = stored_times(&expected_client).await;
    run(&mut client, &settings_on(TODAY), DetectionMode::Full).await.expect("timestamp mirror");
    assert_eq!(stored_times(&client).await, expected);
    let again = run(&mut client, &settings_on(TODAY), DetectionMode::Full).await.expect("second night");
    assert_eq!((again.inserted, again.updated, again.resolved), (0, 0, 0), "{again:?}");
}
