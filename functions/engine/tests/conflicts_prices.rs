//! Overlap minutes, ShiftPrice, OverlapPrice and the final price of a
//! conflict pair (docs/conflicts.md §6.4, §D21, §D22): the view
//! `conflict.conflictvisitmaps_prices` of migration V18 read against a real
//! PostgreSQL, one stored pair per boundary (zero overlap, touching shifts,
//! minute boundaries, containment both ways, NULL times, NULL and zero
//! rates, an overnight shift, billable minutes of the API, rounding to
//! cents, the conflict's status).
//!
//! Run under tests/harness.py (`make test`), which exports THAW_PG_*.

use thaw_test_support::{fresh_pg, unique};

/// One stored pair: its case number, the primary shift, the conflicting
/// shift (wall clock, `NULL` allowed), `BilledRateMinute`, the billable
/// minutes of the full shift and of the overlap, the conflict's status.
struct Case {
    case: i64,
    shift: (&'static str, &'static str),
    con_shift: (&'static str, &'static str),
    rate: &'static str,
    billable: (&'static str, &'static str),
    status: &'static str,
    /// Expected `ShiftMinutes/OverlapMinutes/ShiftPrice/OverlapPrice/FinalPrice` (`-` = NULL).
    expected: &'static str,
}

const CASES: &[Case] = &[
    // Containment: the conflicting shift inside the primary one → its length.
    Case { case: 1, shift: ("'2025-03-12 09:00'", "'2025-03-12 13:00'"), con_shift: ("'2025-03-12 10:00'", "'2025-03-12 11:00'"), rate: "0.5", billable: ("NULL", "NULL"), status: "'U'", expected: "240/60/120.00/30.00/0" },
    // The primary shift inside the conflicting one → the primary length.
    Case { case: 2, shift: ("'2025-03-12 10:00'", "'2025-03-12 11:00'"), con_shift: ("'2025-03-12 09:00'", "'2025-03-12 13:00'"), rate: "0.5", billable: ("NULL", "NULL"), status: "'U'", expected: "60/60/30.00/30.00/0" },
    // Conflicting shift starts inside and ends after: minute boundaries, 12:00:30 → 13:00 is 60.
    Case { case: 3, shift: ("'2025-03-12 09:00'", "'2025-03-12 13:00'"), con_shift: ("'2025-03-12 12:00:30'", "'2025-03-12 14:00'"), rate: "0.5", billable: ("NULL", "NULL"), status: "'U'", expected: "240/60/120.00/30.00/0" },
    // The primary starts inside the conflicting shift and ends after: 11:00 → 12:00:59 is 60.
    Case { case: 4, shift: ("'2025-03-12 11:00'", "'2025-03-12 15:00'"), con_shift: ("'2025-03-12 09:00'", "'2025-03-12 12:00:59'"), rate: "0.5", billable: ("NULL", "NULL"), status: "'U'", expected: "240/60/120.00/30.00/0" },
    // Touching shifts (the conflicting one starts when the primary ends) → 0, either way round.
    Case { case: 5, shift: ("'2025-03-12 09:00'", "'2025-03-12 13:00'"), con_shift: ("'2025-03-12 13:00'", "'2025-03-12 14:00'"), rate: "0.5", billable: ("NULL", "NULL"), status: "'U'", expected: "240/0/120.00/0.00/0" },
    Case { case: 6, shift: ("'2025-03-12 13:00'", "'2025-03-12 14:00'"), con_shift: ("'2025-03-12 09:00'", "'2025-03-12 13:00'"), rate: "0.5", billable: ("NULL", "NULL"), status: "'U'", expected: "60/0/30.00/0.00/0" },
    // Zero overlap (a gap) → 0.
    Case { case: 7, shift: ("'2025-03-12 09:00'", "'2025-03-12 10:00'"), con_shift: ("'2025-03-12 10:15'", "'2025-03-12 11:00'"), rate: "0.425", billable: ("NULL", "NULL"), status: "'U'", expected: "60/0/25.50/0.00/0" },
    // A NULL end on the conflicting side → no overlap; on the primary side → no shift length either.
    Case { case: 8, shift: ("'2025-03-12 09:00'", "'2025-03-12 13:00'"), con_shift: ("'2025-03-12 10:00'", "NULL"), rate: "0.5", billable: ("NULL", "NULL"), status: "'U'", expected: "240/0/120.00/0.00/0" },
    Case { case: 9, shift: ("'2025-03-12 09:00'", "NULL"), con_shift: ("'2025-03-12 10:00'", "'2025-03-12 11:00'"), rate: "0.5", billable: ("NULL", "NULL"), status: "'U'", expected: "-/0/-/0.00/0" },
    // A NULL rate: ShiftPrice 0 (the rate is not positive), OverlapPrice NULL (NULL propagates); a zero rate: both 0.
    Case { case: 10, shift: ("'2025-03-12 09:00'", "'2025-03-12 13:00'"), con_shift: ("'2025-03-12 10:00'", "'2025-03-12 11:00'"), rate: "NULL", billable: ("NULL", "NULL"), status: "'U'", expected: "240/60/0/-/0" },
    Case { case: 11, shift: ("'2025-03-12 09:00'", "'2025-03-12 13:00'"), con_shift: ("'2025-03-12 10:00'", "'2025-03-12 11:00'"), rate: "0", billable: ("NULL", "NULL"), status: "'U'", expected: "240/60/0/0.00/0" },
    // Overnight: 22:00 → 02:00 the next day against 01:00 → 03:00.
    Case { case: 12, shift: ("'2025-03-12 22:00'", "'2025-03-13 02:00'"), con_shift: ("'2025-03-13 01:00'", "'2025-03-13 03:00'"), rate: "0.5", billable: ("NULL", "NULL"), status: "'U'", expected: "240/60/120.00/30.00/0" },
    // Billable minutes of the API, when present, replace the shift and overlap minutes.
    Case { case: 13, shift: ("'2025-03-12 09:00'", "'2025-03-12 13:00'"), con_shift: ("'2025-03-12 10:00'", "'2025-03-12 11:00'"), rate: "0.5", billable: ("200", "30"), status: "'U'", expected: "240/60/100.00/15.00/0" },
    // Rounding to cents, half away from zero: 1 minute at 0.125 → 0.13 (§D22).
    Case { case: 14, shift: ("'2025-03-12 09:00'", "'2025-03-12 09:01'"), con_shift: ("'2025-03-12 09:00'", "'2025-03-12 09:01'"), rate: "0.125", billable: ("NULL", "NULL"), status: "'U'", expected: "1/1/0.13/0.13/0" },
    // The final price counts the overlap only for a resolved or deleted conflict; a NULL status counts nothing.
    Case { case: 15, shift: ("'2025-03-12 09:00'", "'2025-03-12 13:00'"), con_shift: ("'2025-03-12 10:00'", "'2025-03-12 11:00'"), rate: "0.5", billable: ("NULL", "NULL"), status: "'R'", expected: "240/60/120.00/30.00/30.00" },
    Case { case: 16, shift: ("'2025-03-12 09:00'", "'2025-03-12 13:00'"), con_shift: ("'2025-03-12 10:00'", "'2025-03-12 11:00'"), rate: "0.5", billable: ("NULL", "NULL"), status: "'D'", expected: "240/60/120.00/30.00/30.00" },
    Case { case: 17, shift: ("'2025-03-12 09:00'", "'2025-03-12 13:00'"), con_shift: ("'2025-03-12 10:00'", "'2025-03-12 11:00'"), rate: "0.5", billable: ("NULL", "NULL"), status: "NULL", expected: "240/60/120.00/30.00/0" },
];

#[tokio::test]
async fn overlap_minutes_and_prices_follow_sf_at_every_boundary() {
    let client = fresh_pg(&unique("cf_prices")).await;
    let mut sql = String::new();
    for c in CASES {
        sql.push_str(&format!(
            r#"INSERT INTO conflict.conflicts ("CONFLICTID", "StatusFlag") VALUES ({case}, {status});
               INSERT INTO conflict.conflictvisitmaps ("CONFLICTID", "VisitID", "ConVisitID", "AppVisitID", "VisitDate",
                   "ShVTSTTime", "ShVTENTime", "CShVTSTTime", "CShVTENTime", "BilledRateMinute", "BILLABLEMINUTESFULLSHIFT", "BILLABLEMINUTESOVERLAP")
               VALUES ({case}, md5('v{case}')::uuid, md5('c{case}')::uuid, {case}, '2025-03-12', {s}, {e}, {cs}, {ce}, {rate}, {bf}, {bo});
"#,
            case = c.case,
            status = c.status,
            s = c.shift.0,
            e = c.shift.1,
            cs = c.con_shift.0,
            ce = c.con_shift.1,
            rate = c.rate,
            bf = c.billable.0,
            bo = c.billable.1,
        ));
    }
    client.batch_execute(&sql).await.expect("plant the pairs");
    let rows = client
        .query(
            r#"SELECT c."AppVisitID",
                      coalesce(p."ShiftMinutes"::text, '-') || '/' || coalesce(p."OverlapMinutes"::text, '-') || '/' ||
                      coalesce(p."ShiftPrice"::text, '-') || '/' || coalesce(p."OverlapPrice"::text, '-') || '/' || coalesce(p."FinalPrice"::text, '-')
               FROM conflict.conflictvisitmaps_prices p JOIN conflict.conflictvisitmaps c USING ("ID") ORDER BY c."AppVisitID""#,
            &[],
        )
        .await
        .expect("read the prices view");
    assert_eq!(rows.len(), CASES.len(), "one row of the view per stored pair");
    for (c, row) in CASES.iter().zip(&rows) {
        let (case, got): (i64, String) = (row.get(0), row.get(1));
        assert_eq!(case, c.case);
        assert_eq!(got, c.expected, "case {case}: ShiftMinutes/OverlapMinutes/ShiftPrice/OverlapPrice/FinalPrice");
    }
}

/// docs/conflicts.md §D28: a not-billed `Daily`/`Visit` visit whose schedule
/// starts and ends inside one minute (09:00:10–09:00:50: start ≠ end, but
/// zero whole minutes) has the per-minute rate 0. \[SF\] guards on start ≠ end
/// and divides by the whole-minute length, a division by zero that fails
/// the night; a schedule of whole minutes divides as \[SF\] (30 / 1 h / 60).
#[tokio::test]
async fn a_schedule_inside_one_minute_has_no_per_minute_rate() {
    use thaw_engine::conflicts::{run, DetectionMode};
    use thaw_test_support::conflicts::{database_with, planted_settings, REFERENCE};
    let mut client = database_with("cf_rate_one_minute", REFERENCE).await;
    client
        .batch_execute(
            "INSERT INTO analytics.factvisitcallperformance_cr (\"Visit Id\", \"Application Visit Id\", \"Visit Date\", \"Caregiver Id\", \"Provider Id\",
                 \"Scheduled Start Time\", \"Scheduled End Time\", \"Billed\", \"Bill Rate Non-Billed\", \"Bill Type\", \"Is Missed\") VALUES
             ('00000000-0000-0000-0000-000000000001', 1, '2025-03-12', '00000000-0000-0000-0000-0000000000ca', '00000000-0000-0000-0000-00000000000a',
              '2025-03-12 09:00:10-04', '2025-03-12 09:00:50-04', 'no', 20, 'Daily', false),
             ('00000000-0000-0000-0000-000000000002', 2, '2025-03-12', '00000000-0000-0000-0000-0000000000cb', '00000000-0000-0000-0000-00000000000b',
              '2025-03-12 09:00:00-04', '2025-03-12 10:00:00-04', 'no', 30, 'Daily', false)",
        )
        .await
        .unwrap();
    run(&mut client, &planted_settings(), DetectionMode::Full).await.expect("a schedule inside one minute is no error");
    let got: Vec<(i64, f32, f32)> = client
        .query(r#"SELECT "AppVisitID", "BilledRateMinute", "ConBilledRateMinute" FROM conflict.conflictvisitmaps ORDER BY 1"#, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(got, [(1, 0.0, 0.5), (2, 0.5, 0.0)]);
}
