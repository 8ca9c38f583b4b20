//! Visit states and the time rules 1–6 (docs/conflicts.md §4).
//!
//! All comparisons are on wall-clock times in one configured zone
//! (docs/conflicts.md §D9): the legacy compared `TIMESTAMP_TZ` values cast to naive
//! wall clock in their stored offset; thaw converts instants to the
//! configured zone, so both visits of a pair are compared on the same clock.
//! Intervals are half-open: touching intervals (end = start) do not overlap;
//! exactly equal intervals belong to the "same time" rules (1, 2, 3), never
//! to the overlap rules (4, 5, 6).

use chrono::{DateTime, NaiveDateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// Which times of a visit the rules use (docs/conflicts.md §4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VisitState {
    /// Scheduled only: no actual start and no actual end. Its *scheduled*
    /// interval is compared.
    Scheduled,
    /// Completed: actual start and actual end. Its *actual* interval is
    /// compared (its schedule is ignored).
    Completed,
    /// Exactly one actual time present: matches no rule at all.
    Partial,
}

impl VisitState {
    /// The state from the presence of the actual start and end.
    pub fn of(visit_start: Option<DateTime<Utc>>, visit_end: Option<DateTime<Utc>>) -> VisitState {
        match (visit_start, visit_end) {
            (None, None) => VisitState::Scheduled,
            (Some(_), Some(_)) => VisitState::Completed,
            _ => VisitState::Partial,
        }
    }
}

/// The seven rule flags of a pair, named by their `conflictvisitmaps` columns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleFlags {
    /// Rule 1 `SameSchTimeFlag`: two scheduled-only visits with equal schedules.
    pub same_scheduled_time: bool,
    /// Rule 2 `SameVisitTimeFlag`: two completed visits with equal actual times.
    pub same_visit_time: bool,
    /// Rule 3 `SchAndVisitTimeSameFlag`: a scheduled-only visit's schedule equals a completed visit's actual times.
    pub scheduled_and_visit_time_same: bool,
    /// Rule 4 `SchOverAnotherSchTimeFlag`: two scheduled-only visits whose schedules overlap (not equal).
    pub scheduled_over_scheduled: bool,
    /// Rule 5 `VisitTimeOverAnotherVisitTimeFlag`: two completed visits whose actual times overlap (not equal).
    pub visit_over_visit: bool,
    /// Rule 6 `SchTimeOverVisitTimeFlag`: a scheduled-only visit's schedule overlaps a completed visit's actual times (not equal).
    pub scheduled_over_visit: bool,
    /// Rule 7 `DistanceFlag`: impossible travel between two completed visits.
    pub distance: bool,
}

impl RuleFlags {
    /// Whether any rule fired.
    pub fn any(&self) -> bool {
        self.as_array().iter().any(|f| *f)
    }

    /// The flags in `conflictvisitmaps` column order (rules 1..7).
    pub fn as_array(&self) -> [bool; 7] {
        [
            self.same_scheduled_time,
            self.same_visit_time,
            self.scheduled_and_visit_time_same,
            self.scheduled_over_scheduled,
            self.visit_over_visit,
            self.scheduled_over_visit,
            self.distance,
        ]
    }

    /// The `conflictvisitmaps` column names of [`RuleFlags::as_array`], in order.
    pub const COLUMNS: [&'static str; 7] = [
        "SameSchTimeFlag",
        "SameVisitTimeFlag",
        "SchAndVisitTimeSameFlag",
        "SchOverAnotherSchTimeFlag",
        "VisitTimeOverAnotherVisitTimeFlag",
        "SchTimeOverVisitTimeFlag",
        "DistanceFlag",
    ];

    /// The `conflictvisitmaps` flags of the in-service and PTO pairs
    /// (docs/conflicts.md §5): `Y` on an event pair, sticky like the rule
    /// flags, `N` on a visit pair.
    pub const EVENT_COLUMNS: [&'static str; 2] = ["InServiceFlag", "PTOFlag"];
}

/// A wall-clock interval `[start, end)` in the configured zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WallInterval {
    /// Start, wall clock.
    pub start: NaiveDateTime,
    /// End, wall clock.
    pub end: NaiveDateTime,
}

impl WallInterval {
    /// Both bounds of an instant pair on the wall clock of `zone`; `None` when either is missing.
    pub fn from_instants(start: Option<DateTime<Utc>>, end: Option<DateTime<Utc>>, zone: Tz) -> Option<WallInterval> {
        Some(WallInterval { start: wall_clock(start?, zone), end: wall_clock(end?, zone) })
    }

    /// Strict overlap as the legacy writes it: `a.start < b.end and a.end > b.start`
    /// (touching intervals do not overlap).
    pub fn overlaps(&self, other: &WallInterval) -> bool {
        self.start < other.end && self.end > other.start
    }

    /// Lowest and highest bound (intervals with end before start are still
    /// compared by the rules as written, so the sweep must see their full span).
    pub fn span(&self) -> (NaiveDateTime, NaiveDateTime) {
        (self.start.min(self.end), self.start.max(self.end))
    }
}

/// The wall-clock time of `instant` in `zone` (docs/conflicts.md §D9).
pub fn wall_clock(instant: DateTime<Utc>, zone: Tz) -> NaiveDateTime {
    instant.with_timezone(&zone).naive_local()
}

/// The interval a visit is compared with: the schedule of a scheduled-only
/// visit, the actual times of a completed one, nothing for a partial one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleTimes {
    /// The visit's state.
    pub state: VisitState,
    /// The compared interval (None: a partial visit, or a schedule with a NULL bound).
    pub interval: Option<WallInterval>,
}

/// Rules 1–6 for the ordered pair (`v1`, `v2`) (docs/conflicts.md §4.4).
///
/// At most one of the six is set. The future-only qualifier of rules 1 and 4
/// is not applied here: it only restricts the creation of *new* rows
/// ([`crate::conflicts::DetectedPair::new_conflict_allowed`]), as in \[SF\].
pub fn time_rules(v1: &RuleTimes, v2: &RuleTimes) -> RuleFlags {
    let mut flags = RuleFlags::default();
    let (Some(a), Some(b)) = (v1.interval, v2.interval) else {
        return flags;
    };
    let equal = a == b;
    let overlap = !equal && a.overlaps(&b);
    use VisitState::{Completed, Scheduled};
    match (v1.state, v2.state) {
        (Scheduled, Scheduled) => {
            flags.same_scheduled_time = equal;
            flags.scheduled_over_scheduled = overlap;
        }
        (Completed, Completed) => {
            flags.same_visit_time = equal;
            flags.visit_over_visit = overlap;
        }
        (Scheduled, Completed) | (Completed, Scheduled) => {
            flags.scheduled_and_visit_time_same = equal;
            flags.scheduled_over_visit = overlap;
        }
        _ => {}
    }
    flags
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{NaiveDate, TimeZone};

    fn at(h: u32, m: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(2025, 3, 10).unwrap().and_hms_opt(h, m, 0).unwrap()
    }
    fn times(state: VisitState, (h1, m1): (u32, u32), (h2, m2): (u32, u32)) -> RuleTimes {
        RuleTimes { state, interval: Some(WallInterval { start: at(h1, m1), end: at(h2, m2) }) }
    }
    fn s(a: (u32, u32), b: (u32, u32)) -> RuleTimes {
        times(VisitState::Scheduled, a, b)
    }
    fn c(a: (u32, u32), b: (u32, u32)) -> RuleTimes {
        times(VisitState::Completed, a, b)
    }

    #[test]
    fn equal_schedules_are_rule_1_only() {
        let f = time_rules(&s((9, 0), (13, 0)), &s((9, 0), (13, 0)));
        assert_eq!(f, RuleFlags { same_scheduled_time: true, ..Default::default() });
    }

    #[test]
    fn overlapping_schedules_are_rule_4_and_touching_ones_nothing() {
        let f = time_rules(&s((9, 0), (13, 0)), &s((12, 0), (15, 0)));
        assert_eq!(f, RuleFlags { scheduled_over_scheduled: true, ..Default::default() });
        assert!(!time_rules(&s((9, 0), (13, 0)), &s((13, 0), (15, 0))).any());
        assert!(!time_rules(&s((13, 0), (15, 0)), &s((9, 0), (13, 0))).any());
    }

    #[test]
    fn completed_visits_equal_overlapping_and_touching() {
        let base = c((9, 5), (13, 2));
        assert_eq!(time_rules(&base, &c((9, 5), (13, 2))), RuleFlags { same_visit_time: true, ..Default::default() });
        assert!(!time_rules(&base, &c((13, 2), (14, 0))).any());
        assert_eq!(time_rules(&base, &c((12, 0), (14, 0))), RuleFlags { visit_over_visit: true, ..Default::default() });
    }

    #[test]
    fn scheduled_vs_completed_fires_in_both_directions() {
        let sched = s((9, 0), (13, 0));
        let same = c((9, 0), (13, 0));
        let later = c((10, 0), (14, 0));
        let rule3 = RuleFlags { scheduled_and_visit_time_same: true, ..Default::default() };
        let rule6 = RuleFlags { scheduled_over_visit: true, ..Default::default() };
        assert_eq!(time_rules(&sched, &same), rule3);
        assert_eq!(time_rules(&same, &sched), rule3);
        assert_eq!(time_rules(&sched, &later), rule6);
        assert_eq!(time_rules(&later, &sched), rule6);
    }

    #[test]
    fn partial_visits_match_nothing() {
        let partial = RuleTimes { state: VisitState::Partial, interval: Some(WallInterval { start: at(9, 0), end: at(13, 0) }) };
        assert!(!time_rules(&partial, &c((9, 0), (13, 0))).any());
        assert!(!time_rules(&s((9, 0), (13, 0)), &partial).any());
        assert_eq!(VisitState::of(Some(Utc::now()), None), VisitState::Partial);
        assert_eq!(VisitState::of(None, Some(Utc::now())), VisitState::Partial);
    }

    #[test]
    fn a_schedule_with_a_null_bound_matches_nothing() {
        let open = RuleTimes { state: VisitState::Scheduled, interval: None };
        assert!(!time_rules(&open, &s((9, 0), (13, 0))).any());
    }

    #[test]
    fn wall_clock_uses_the_configured_zone_across_fall_back() {
        // 2024-11-03 01:30 happens twice in New York: 05:30Z (EDT) and 06:30Z (EST).
        let ny: Tz = "America/New_York".parse().unwrap();
        let edt = Utc.with_ymd_and_hms(2024, 11, 3, 5, 30, 0).unwrap();
        let est = Utc.with_ymd_and_hms(2024, 11, 3, 6, 30, 0).unwrap();
        assert_eq!(wall_clock(edt, ny), wall_clock(est, ny));
    }
}
