//! The per-key sweep: candidates → flagged ordered pairs.
//!
//! Pairs only form within one `(trimmed SSN, VisitDate)` key
//! (docs/conflicts.md §4.2). Within a key, the compared intervals are sorted by start; a visit is
//! only compared with the visits that start before its end plus the longest
//! possible travel time ([`MphBands::max_eta_minutes`](crate::conflicts::distance::MphBands::max_eta_minutes) + 1 minute for the
//! minute-boundary rounding). Anything starting later can neither overlap it
//! (rules 1–6) nor be too close for the travel time (rule 7), so the work is
//! proportional to the pairs that can interact, not to the square of a day's
//! visits, and no database self-join is involved.
//!
//! Pairs whose visits are in different states are dropped here, before any
//! rule is evaluated ([`cross_state`], docs/conflicts.md §D6), so they are never
//! emitted.

use chrono::{Duration, NaiveDate, NaiveDateTime};

use super::cross_state::{self, VisitStates};
use super::distance::{self, GeoPoint};
use super::rules::{self, RuleTimes, VisitState, WallInterval};
use super::settings::{self, DetectionSettings};
use crate::config::GpsPriority;
use super::{DetectedPair, Visit};

/// A candidate ready for comparison: filtered, on the wall clock, GPS parsed once.
struct Candidate<'a> {
    visit: &'a Visit,
    ssn: &'a str,
    times: RuleTimes,
    /// `[lowest, highest]` bound of the compared interval (the sweep's extent).
    span: (NaiveDateTime, NaiveDateTime),
    call_in: Option<GeoPoint>,
    call_out: Option<GeoPoint>,
    zip: Option<&'a str>,
    /// Normalised patient states (provider fallback) for the cross-state test.
    states: VisitStates<'a>,
}

/// Which end of an ordered pair a visit is on (matters for [`GpsPriority::Legacy`]).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Primary,
    Conflicting,
}

impl Candidate<'_> {
    /// The visit's point for rule 7 (docs/conflicts.md §D4; docs/conflicts.md §R7.1).
    fn location(&self, side: Side, priority: GpsPriority) -> Option<GeoPoint> {
        let calls = match (priority, side) {
            (GpsPriority::Legacy, Side::Conflicting) => [self.call_in, self.call_out],
            _ => [self.call_out, self.call_in],
        };
        calls.into_iter().flatten().next().or(self.visit.patient_location)
    }

    fn actual(&self) -> Option<(NaiveDateTime, NaiveDateTime)> {
        match (self.times.state, self.times.interval) {
            (VisitState::Completed, Some(i)) => Some((i.start, i.end)),
            _ => None,
        }
    }
}

/// Filter, group and sweep; see [`super::detect`].
pub fn detect_pairs(visits: &[Visit], settings: &DetectionSettings, today: NaiveDate) -> Vec<DetectedPair> {
    let (from, to) = settings::candidate_window(today);
    let mut candidates: Vec<Candidate<'_>> = visits
        .iter()
        .filter(|v| (from..=to).contains(&v.visit_date))
        .filter(|v| !settings.exclusions.excludes_provider(&v.provider_id))
        .filter_map(|v| {
            let ssn = settings::trim_ssn(v.ssn.as_deref()?);
            if ssn.is_empty() || settings.exclusions.excludes_ssn(ssn) {
                return None;
            }
            let state = VisitState::of(v.visit_start, v.visit_end);
            let interval = match state {
                VisitState::Scheduled => WallInterval::from_instants(v.scheduled_start, v.scheduled_end, settings.time_zone),
                VisitState::Completed => WallInterval::from_instants(v.visit_start, v.visit_end, settings.time_zone),
                VisitState::Partial => None,
            }?;
            Some(Candidate {
                visit: v,
                ssn,
                times: RuleTimes { state, interval: Some(interval) },
                span: interval.span(),
                call_in: v.call_in_gps.as_deref().and_then(distance::parse_gps),
                call_out: v.call_out_gps.as_deref().and_then(distance::parse_gps),
                // As stored: [SF-INS] compares the ZIPs with `=` (docs/conflicts.md §D10).
                zip: v.patient_zip.as_deref(),
                states: VisitStates::of(v.patient_state.as_deref(), v.payer_patient_state.as_deref(), v.provider_state.as_deref()),
            })
        })
        .collect();
    candidates.sort_by(|a, b| (a.ssn, a.visit.visit_date, a.span.0).cmp(&(b.ssn, b.visit.visit_date, b.span.0)));

    let horizon = Duration::minutes(settings.mph.max_eta_minutes() + 1);
    let mut pairs = Vec::new();
    for key in candidates.chunk_by(|a, b| a.ssn == b.ssn && a.visit.visit_date == b.visit.visit_date) {
        for (i, first) in key.iter().enumerate() {
            let reach = first.span.1 + horizon;
            for second in key[i + 1..].iter().take_while(|c| c.span.0 <= reach) {
                pairs.extend(compare(first, second, settings, today));
                pairs.extend(compare(second, first, settings, today));
            }
        }
    }
    pairs
}

/// Evaluate the ordered pair (`v1`, `v2`): all seven rules, distance metrics,
/// and whether a new row may be created. Same-provider, same-visit and
/// cross-state pairs (docs/conflicts.md §D6) are never pairs.
fn compare(v1: &Candidate<'_>, v2: &Candidate<'_>, settings: &DetectionSettings, today: NaiveDate) -> Option<DetectedPair> {
    if v1.visit.provider_id == v2.visit.provider_id
        || v1.visit.visit_id == v2.visit.visit_id
        || cross_state::is_cross_state(&v1.states, &v2.states)
    {
        return None;
    }
    let mut flags = rules::time_rules(&v1.times, &v2.times);
    let location = v1.location(Side::Primary, settings.gps_priority);
    let con_location = v2.location(Side::Conflicting, settings.gps_priority);
    let travel = match (location, con_location) {
        (Some(a), Some(b)) => Some(distance::estimate(a, b, settings.extra_distance_per, &settings.mph)),
        _ => None,
    };
    let mut minute_diff = 0;
    if let (Some(a1), Some(a2)) = (v1.actual(), v2.actual()) {
        let (g1, g2) = distance::gaps(a1, a2);
        minute_diff = distance::minute_diff(g1, g2);
        // docs/conflicts.md §D10 ([SF-INS] zip guard): same patient ZIP on both sides never
        // flags. Literal SQL `=`: no trimming ('11214 ' is another ZIP), and two empty
        // ZIPs are equal; only a NULL is unknown, which lets the flag through.
        let same_zip = matches!((v1.zip, v2.zip), (Some(a), Some(b)) if a == b);
        if let Some(eta) = travel.and_then(|t| t.eta_minutes) {
            flags.distance = !same_zip && distance::travel_is_impossible(g1, g2, eta);
        }
    }
    if !flags.any() {
        return None;
    }
    // [SF-INS]: no new conflict for a missed visit, nor for schedules (rules 1/4) before today.
    let past_schedules = v1.times.state == VisitState::Scheduled && v2.times.state == VisitState::Scheduled && v1.visit.visit_date < today;
    Some(DetectedPair {
        visit_id: v1.visit.visit_id,
        app_visit_id: v1.visit.app_visit_id,
        con_visit_id: v2.visit.visit_id,
        con_app_visit_id: v2.visit.app_visit_id,
        ssn: v1.ssn.to_string(),
        visit_date: v1.visit.visit_date,
        flags,
        minute_diff: i32::try_from(minute_diff).unwrap_or(if minute_diff > 0 { i32::MAX } else { 0 }),
        location,
        con_location,
        travel,
        new_conflict_allowed: v1.visit.is_missed == Some(false) && v2.visit.is_missed == Some(false) && !past_schedules,
    })
}
