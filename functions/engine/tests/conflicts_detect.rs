//! Pure conflict detection (`thaw_engine::conflicts::detect`): the
//! acceptance scenarios of docs/conflicts.md §13 (pairing, time
//! rules, distance rule) plus the decisions of docs/conflicts.md §11, without a
//! database.

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use rand::{Rng, SeedableRng};
use thaw_engine::conflicts::{
    detect, DetectedPair, DetectionSettings, Exclusions, GeoPoint, GpsPriority, MphBand, MphBands, RuleFlags, TravelEstimate, Visit,
};
use uuid::Uuid;

const SSN: &str = "123-45-6789";
const BROOKLYN_1: &str = "40.597095,-73.998993";
const BROOKLYN_2: &str = "40.654140,-73.935455";

fn ny() -> Tz {
    "America/New_York".parse().unwrap()
}
fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 3, 10).unwrap()
}
fn date(offset_days: i64) -> NaiveDate {
    today() + chrono::Duration::days(offset_days)
}
/// `h:m` on `day` in New York, as an instant.
fn at(day: NaiveDate, h: u32, m: u32) -> DateTime<Utc> {
    ny().from_local_datetime(&day.and_hms_opt(h, m, 0).unwrap()).earliest().unwrap().with_timezone(&Utc)
}
fn provider(n: u128) -> Uuid {
    Uuid::from_u128(0xA000 + n)
}

fn settings() -> DetectionSettings {
    let b = |from, to, mph| MphBand { from, to, mph };
    DetectionSettings {
        time_zone: ny(),
        extra_distance_per: 1.0,
        mph: MphBands::new(vec![b(0, 2, 2.0), b(2, 5, 6.0), b(5, 10, 15.0), b(10, 25, 25.0)]).unwrap().0,
        gps_priority: GpsPriority::Fixed,
        exclusions: Exclusions::default(),
    }
}

/// A scheduled-only visit `id` at provider `p` on `day`, `h1:m1`–`h2:m2`.
fn scheduled(id: u128, p: u128, day: NaiveDate, (h1, m1): (u32, u32), (h2, m2): (u32, u32)) -> Visit {
    Visit {
        visit_id: Uuid::from_u128(id),
        app_visit_id: Some(id as i64),
        ssn: Some(SSN.to_string()),
        visit_date: day,
        provider_id: provider(p),
        scheduled_start: Some(at(day, h1, m1)),
        scheduled_end: Some(at(day, h2, m2)),
        ..Default::default()
    }
}

/// A completed visit (actual times given; schedule = actual).
fn completed(id: u128, p: u128, day: NaiveDate, start: (u32, u32), end: (u32, u32)) -> Visit {
    let mut v = scheduled(id, p, day, start, end);
    v.visit_start = v.scheduled_start;
    v.visit_end = v.scheduled_end;
    v
}

fn with_gps(mut v: Visit, call_out: &str) -> Visit {
    v.call_out_gps = Some(call_out.to_string());
    v
}

fn flagged(pairs: &[DetectedPair]) -> Vec<(u128, u128, [bool; 7])> {
    let mut out: Vec<_> = pairs.iter().map(|p| (p.visit_id.as_u128(), p.con_visit_id.as_u128(), p.flags.as_array())).collect();
    out.sort();
    out
}

const RULE_1: [bool; 7] = [true, false, false, false, false, false, false];
const RULE_2: [bool; 7] = [false, true, false, false, false, false, false];
const RULE_3: [bool; 7] = [false, false, true, false, false, false, false];
const RULE_4: [bool; 7] = [false, false, false, true, false, false, false];
const RULE_5: [bool; 7] = [false, false, false, false, true, false, false];
const RULE_6: [bool; 7] = [false, false, false, false, false, true, false];
const RULE_7: [bool; 7] = [false, false, false, false, false, false, true];

#[test]
fn same_schedule_at_two_providers_is_rule_1_in_both_orientations() {
    let visits = [scheduled(1, 1, date(2), (9, 0), (13, 0)), scheduled(2, 2, date(2), (9, 0), (13, 0))];
    let pairs = detect(&visits, &settings(), today());
    assert_eq!(flagged(&pairs), vec![(1, 2, RULE_1), (2, 1, RULE_1)]);
    assert!(pairs.iter().all(|p| p.new_conflict_allowed && p.ssn == SSN && p.visit_date == date(2)));
}

#[test]
fn same_provider_different_ssn_or_different_date_never_pair() {
    let same_provider = [scheduled(1, 1, date(2), (9, 0), (13, 0)), scheduled(2, 1, date(2), (9, 0), (13, 0))];
    assert!(detect(&same_provider, &settings(), today()).is_empty());
    let mut other = scheduled(2, 2, date(2), (9, 0), (13, 0));
    other.ssn = Some("999-99-9999".into());
    assert!(detect(&[scheduled(1, 1, date(2), (9, 0), (13, 0)), other], &settings(), today()).is_empty());
    // Overlap across midnight, but different service dates.
    let late = scheduled(1, 1, date(2), (22, 0), (23, 59));
    let mut next = scheduled(2, 2, date(3), (0, 0), (2, 0));
    next.scheduled_start = Some(at(date(2), 23, 0));
    assert!(detect(&[late, next], &settings(), today()).is_empty());
}

#[test]
fn past_schedule_pairs_are_detected_but_never_start_a_new_conflict() {
    let visits = [scheduled(1, 1, date(-1), (9, 0), (13, 0)), scheduled(2, 2, date(-1), (12, 0), (15, 0))];
    let pairs = detect(&visits, &settings(), today());
    assert_eq!(flagged(&pairs), vec![(1, 2, RULE_4), (2, 1, RULE_4)]);
    assert!(pairs.iter().all(|p| !p.new_conflict_allowed));
    // Today itself counts as future.
    let visits = [scheduled(1, 1, today(), (9, 0), (13, 0)), scheduled(2, 2, today(), (12, 0), (15, 0))];
    assert!(detect(&visits, &settings(), today()).iter().all(|p| p.new_conflict_allowed));
}

#[test]
fn missed_visits_refresh_but_never_start_a_new_conflict() {
    let mut missed = completed(2, 2, date(-3), (9, 30), (10, 30));
    missed.is_missed = Some(true);
    let pairs = detect(&[completed(1, 1, date(-3), (9, 0), (10, 0)), missed], &settings(), today());
    assert_eq!(flagged(&pairs), vec![(1, 2, RULE_5), (2, 1, RULE_5)]);
    assert!(pairs.iter().all(|p| !p.new_conflict_allowed));
}

#[test]
fn exclusions_blank_ssns_and_the_window_remove_candidates() {
    let pair = || [scheduled(1, 1, date(2), (9, 0), (13, 0)), scheduled(2, 2, date(2), (9, 0), (13, 0))];
    let mut s = settings();
    s.exclusions = Exclusions::new(vec![None, Some(format!("  {SSN} "))], vec![None]);
    assert!(detect(&pair(), &s, today()).is_empty(), "excluded SSN (trimmed both sides)");
    s.exclusions = Exclusions::new(vec![None], vec![None, Some(provider(2))]);
    assert!(detect(&pair(), &s, today()).is_empty(), "excluded agency");
    s.exclusions = Exclusions::new(vec![None, Some(String::new())], vec![None]);
    assert_eq!(detect(&pair(), &s, today()).len(), 2, "NULL and blank exclusions exclude nothing");
    let mut blank = pair();
    blank[1].ssn = Some("   ".into());
    assert!(detect(&blank, &settings(), today()).is_empty());
    let mut padded = pair();
    padded[1].ssn = Some(format!(" {SSN}  "));
    assert_eq!(detect(&padded, &settings(), today()).len(), 2, "SSN identity is trimmed of spaces");
    // Snowflake TRIM removes spaces only (docs/conflicts.md §10.2): a tab makes another SSN.
    let mut tabbed = pair();
    tabbed[1].ssn = Some(format!("{SSN}\t"));
    assert!(detect(&tabbed, &settings(), today()).is_empty(), "an SSN padded with a tab is another caregiver");
    let mut only_tab = pair();
    only_tab[0].ssn = Some("\t".into());
    only_tab[1].ssn = Some("\t".into());
    assert_eq!(detect(&only_tab, &settings(), today()).len(), 2, "a tab is not blank in [SF]");
    let far = [scheduled(1, 1, date(46), (9, 0), (13, 0)), scheduled(2, 2, date(46), (9, 0), (13, 0))];
    assert!(detect(&far, &settings(), today()).is_empty(), "beyond today + 45 days");
    let edge = [scheduled(1, 1, date(45), (9, 0), (13, 0)), scheduled(2, 2, date(45), (9, 0), (13, 0))];
    assert_eq!(detect(&edge, &settings(), today()).len(), 2, "today + 45 days is inside");
}

/// `v` with its provider-patient, payer-patient and provider states as stored.
fn in_states(mut v: Visit, patient: Option<&str>, payer_patient: Option<&str>, provider: Option<&str>) -> Visit {
    v.patient_state = patient.map(str::to_string);
    v.payer_patient_state = payer_patient.map(str::to_string);
    v.provider_state = provider.map(str::to_string);
    v
}

/// docs/conflicts.md §D6 / docs/conflicts.md §13.4 (legacy case 20): cross-state pairs are never
/// emitted; any of the 2×2 patient-state combinations matching keeps a pair;
/// the provider's state stands in when both patient states are missing; a
/// visit without any state never makes a pair cross-state.
#[test]
fn cross_state_pairs_are_never_emitted_and_any_state_match_keeps_the_pair() {
    let d = date(-5);
    let pair = |a: (Option<&str>, Option<&str>, Option<&str>), b: (Option<&str>, Option<&str>, Option<&str>)| {
        let v1 = in_states(completed(1, 1, d, (9, 0), (12, 0)), a.0, a.1, a.2);
        let v2 = in_states(completed(2, 2, d, (10, 0), (13, 0)), b.0, b.1, b.2);
        flagged(&detect(&[v1, v2], &settings(), today()))
    };
    let overlap = vec![(1, 2, RULE_5), (2, 1, RULE_5)];
    assert_eq!(pair((Some("NY"), Some("NY"), Some("NY")), (Some("PA"), Some("PA"), Some("PA"))), vec![], "NY/NY vs PA/PA");
    assert_eq!(pair((Some("NY"), None, Some("NJ")), (Some("new york"), Some("PA"), Some("PA"))), overlap, "NY/NULL vs \"new york\"/PA");
    assert_eq!(pair((Some("NJ"), Some(" Pennsylvania"), None), (Some("pa "), Some("NY"), None)), overlap, "payer patient vs provider patient");
    assert_eq!(pair((Some(" "), None, Some("PA")), (Some("NY"), None, Some("PA"))), vec![], "provider fallback PA vs patient NY");
    assert_eq!(pair((None, None, Some(" ny")), (Some("New York"), None, Some("PA"))), overlap, "provider fallback NY vs patient NY");
    assert_eq!(pair((None, Some(""), None), (Some("PA"), Some("PA"), Some("PA"))), overlap, "no state at all on one side");
    assert_eq!(pair((Some("NY"), None, None), (None, None, None)), overlap, "no state at all on the other side");
}

#[test]
fn time_rules_through_detect_cover_touching_equal_partial_and_mixed_states() {
    let d = date(-5);
    let base = completed(1, 1, d, (9, 5), (13, 2));
    assert_eq!(flagged(&detect(&[base.clone(), completed(2, 2, d, (9, 5), (13, 2))], &settings(), today())), vec![(1, 2, RULE_2), (2, 1, RULE_2)]);
    assert!(detect(&[base.clone(), completed(2, 2, d, (13, 2), (14, 0))], &settings(), today()).is_empty(), "touching");
    assert_eq!(flagged(&detect(&[base.clone(), completed(2, 2, d, (12, 0), (14, 0))], &settings(), today())), vec![(1, 2, RULE_5), (2, 1, RULE_5)]);
    let s = scheduled(3, 2, d, (9, 5), (13, 2));
    assert_eq!(flagged(&detect(&[base.clone(), s], &settings(), today())), vec![(1, 3, RULE_3), (3, 1, RULE_3)]);
    let s = scheduled(3, 2, d, (10, 0), (14, 0));
    assert_eq!(flagged(&detect(&[base.clone(), s], &settings(), today())), vec![(1, 3, RULE_6), (3, 1, RULE_6)]);
    let mut partial = completed(4, 2, d, (9, 5), (13, 2));
    partial.visit_end = None;
    assert!(detect(&[base, partial], &settings(), today()).is_empty(), "partial visit");
    // Completed visits: overlapping schedules do not matter, only actual times.
    let mut a = completed(5, 1, d, (9, 0), (10, 0));
    a.scheduled_end = Some(at(d, 12, 0));
    let b = completed(6, 2, d, (10, 0), (11, 0));
    assert!(detect(&[a, b], &settings(), today()).is_empty());
}

#[test]
fn worked_example_6_5_impossible_travel() {
    let d = date(-5);
    let v1 = with_gps(completed(1, 1, d, (9, 0), (10, 0)), BROOKLYN_1);
    let near = with_gps(completed(2, 2, d, (10, 15), (11, 0)), BROOKLYN_2);
    let pairs = detect(&[v1.clone(), near], &settings(), today());
    assert_eq!(flagged(&pairs), vec![(1, 2, RULE_7), (2, 1, RULE_7)]);
    let p = &pairs[0];
    assert_eq!(p.travel, Some(TravelEstimate { miles: 5.16, mph: Some(15.0), eta_minutes: Some(20.64) }));
    assert_eq!(p.minute_diff, 15);
    assert_eq!(p.location.map(|g| g.latitude).into_iter().chain(p.con_location.map(|g| g.latitude)).count(), 2);

    let later = with_gps(completed(2, 2, d, (10, 25), (11, 0)), BROOKLYN_2);
    assert!(detect(&[v1.clone(), later.clone()], &settings(), today()).is_empty(), "gap 25 > ETA 20.64");
    let back_to_back = with_gps(completed(2, 2, d, (10, 0), (11, 0)), BROOKLYN_2);
    assert!(detect(&[v1.clone(), back_to_back], &settings(), today()).is_empty(), "gap 0 never flags");
    let overlapping = with_gps(completed(2, 2, d, (9, 30), (11, 0)), BROOKLYN_2);
    assert_eq!(flagged(&detect(&[v1.clone(), overlapping], &settings(), today())), vec![(1, 2, RULE_5), (2, 1, RULE_5)]);

    let mut wider = settings();
    wider.extra_distance_per = 1.2;
    let gap_20 = with_gps(completed(2, 2, d, (10, 20), (11, 0)), BROOKLYN_2);
    let pairs = detect(&[v1.clone(), gap_20], &wider, today());
    assert_eq!(pairs[0].travel.unwrap().eta_minutes, Some(24.76));
    assert_eq!(pairs.len(), 2);
    assert!(detect(&[v1, later], &wider, today()).is_empty());
}

#[test]
fn impossible_travel_needs_points_a_speed_and_different_zips() {
    let d = date(-5);
    let v1 = with_gps(completed(1, 1, d, (9, 0), (10, 0)), BROOKLYN_1);
    let no_gps = completed(2, 2, d, (10, 15), (11, 0));
    assert!(detect(&[v1.clone(), no_gps.clone()], &settings(), today()).is_empty());
    // The patient address is the fallback; quotes and "," are handled.
    let mut by_address = no_gps.clone();
    by_address.call_in_gps = Some(",".into());
    by_address.call_out_gps = Some(",".into());
    by_address.patient_location = GeoPoint::new(40.654140, -73.935455);
    assert_eq!(detect(&[v1.clone(), by_address.clone()], &settings(), today()).len(), 2);
    let quoted = with_gps(no_gps, "\"40.654140,-73.935455\"");
    assert_eq!(detect(&[v1.clone(), quoted], &settings(), today()).len(), 2);
    // docs/conflicts.md §D10: same patient ZIP on both sides never flags; the
    // ZIPs are compared as stored ([SF]'s `=`): padded is another ZIP, two
    // empty ZIPs are the same, a NULL is no ZIP.
    let (mut z1, mut z2) = (v1.clone(), by_address.clone());
    z1.patient_zip = Some("11214".into());
    z2.patient_zip = Some("11214".into());
    assert!(detect(&[z1.clone(), z2.clone()], &settings(), today()).is_empty());
    z2.patient_zip = Some("11214 ".into());
    assert_eq!(detect(&[z1.clone(), z2.clone()], &settings(), today()).len(), 2, "a padded ZIP is another ZIP");
    z2.patient_zip = None;
    assert_eq!(detect(&[z1.clone(), z2.clone()], &settings(), today()).len(), 2, "a NULL ZIP");
    z2.patient_zip = Some("11203".into());
    assert_eq!(detect(&[z1.clone(), z2.clone()], &settings(), today()).len(), 2);
    z1.patient_zip = Some(String::new());
    z2.patient_zip = Some(String::new());
    assert!(detect(&[z1, z2], &settings(), today()).is_empty(), "two empty ZIPs are equal");
    // A distance in no band gives no speed and no flag.
    let mut gapped = settings();
    gapped.mph = MphBands::new(vec![MphBand { from: 0, to: 5, mph: 6.0 }, MphBand { from: 6, to: 10, mph: 15.0 }]).unwrap().0;
    let pairs = detect(&[v1, by_address], &gapped, today());
    assert!(pairs.is_empty());
}

#[test]
fn legacy_gps_priority_reads_call_in_first_on_the_conflicting_side() {
    let d = date(-5);
    let v1 = with_gps(completed(1, 1, d, (9, 0), (10, 0)), BROOKLYN_1);
    let mut v2 = with_gps(completed(2, 2, d, (10, 15), (11, 0)), BROOKLYN_2);
    v2.call_in_gps = Some(BROOKLYN_1.into()); // call-in at the same place as v1: no travel needed
    assert_eq!(detect(&[v1.clone(), v2.clone()], &settings(), today()).len(), 2, "fixed: call-out first on both sides");
    let mut legacy = settings();
    legacy.gps_priority = GpsPriority::Legacy;
    let pairs = detect(&[v1, v2], &legacy, today());
    // (1,2): v2 conflicting → call-in (same point) → 0 miles, no flag; (2,1): v2 primary → call-out → flag.
    assert_eq!(flagged(&pairs), vec![(2, 1, RULE_7)]);
}

#[test]
fn dst_fall_back_compares_wall_clocks_in_the_configured_zone() {
    // 2024-11-03, New York: 01:00-01:45 EDT and 01:15-01:50 EST do not overlap
    // as instants but do on the agency's wall clock, as in [SF].
    let day = NaiveDate::from_ymd_opt(2024, 11, 3).unwrap();
    let today = NaiveDate::from_ymd_opt(2024, 11, 1).unwrap();
    let mut a = completed(1, 1, day, (0, 0), (0, 0));
    a.visit_start = Some(Utc.with_ymd_and_hms(2024, 11, 3, 5, 0, 0).unwrap());
    a.visit_end = Some(Utc.with_ymd_and_hms(2024, 11, 3, 5, 45, 0).unwrap());
    let mut b = completed(2, 2, day, (0, 0), (0, 0));
    b.visit_start = Some(Utc.with_ymd_and_hms(2024, 11, 3, 6, 15, 0).unwrap());
    b.visit_end = Some(Utc.with_ymd_and_hms(2024, 11, 3, 6, 50, 0).unwrap());
    assert_eq!(flagged(&detect(&[a.clone(), b.clone()], &settings(), today)), vec![(1, 2, RULE_5), (2, 1, RULE_5)]);
    // In UTC the same visits are 30 minutes apart: no conflict.
    let mut utc = settings();
    utc.time_zone = chrono_tz::UTC;
    assert!(detect(&[a, b], &utc, today).is_empty());
}

#[test]
fn dst_spring_forward_keeps_wall_clock_equality() {
    // 2025-03-09 02:30 does not exist in New York; 03:30 EDT = 07:30Z.
    let day = NaiveDate::from_ymd_opt(2025, 3, 9).unwrap();
    let a = completed(1, 1, day, (3, 30), (5, 0));
    let b = completed(2, 2, day, (3, 30), (5, 0));
    assert_eq!(a.visit_start, Some(Utc.with_ymd_and_hms(2025, 3, 9, 7, 30, 0).unwrap()));
    assert_eq!(flagged(&detect(&[a, b], &settings(), NaiveDate::from_ymd_opt(2025, 3, 1).unwrap())), vec![(1, 2, RULE_2), (2, 1, RULE_2)]);
}

/// The sweep prunes pairs that cannot interact; pruning must never drop a
/// flagged pair. Same random day of visits, detected with the real MPH table
/// and with one whose look-ahead horizon is effectively unlimited.
#[test]
fn sweep_pruning_never_drops_a_pair_on_random_days() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let d = date(-4); // not the DST day (date(-1) has no 02:xx)
    let mut visits = Vec::new();
    for id in 0..600u128 {
        let start = rng.gen_range(0..22 * 60);
        let len = rng.gen_range(15..240);
        let (s, e) = (start, (start + len).min(23 * 60 + 59));
        let p = rng.gen_range(0..4);
        let mut v = if rng.gen_bool(0.5) {
            completed(id, p, d, (s / 60, s % 60), (e / 60, e % 60))
        } else {
            scheduled(id, p, d, (s / 60, s % 60), (e / 60, e % 60))
        };
        v.ssn = Some(format!("000-00-{:04}", rng.gen_range(0..40)));
        let (lat, lon) = (40.5 + rng.gen_range(0.0..0.4), -74.1 + rng.gen_range(0.0..0.4));
        v.call_out_gps = Some(format!("{lat},{lon}"));
        visits.push(v);
    }
    let real = settings();
    let mut unlimited = settings();
    let mut bands = real.mph.bands().to_vec();
    bands.push(MphBand { from: 1_000_000, to: 1_000_001, mph: 0.001 });
    unlimited.mph = MphBands::new(bands).unwrap().0;
    let pruned = detect(&visits, &real, today());
    let full = detect(&visits, &unlimited, today());
    assert!(pruned.len() > 50, "the random day should produce conflicts, got {}", pruned.len());
    assert_eq!(flagged(&pruned), flagged(&full));
    assert!(pruned.iter().any(|p| p.flags.distance), "some impossible travel expected");
    let _ = RuleFlags::default();
}
