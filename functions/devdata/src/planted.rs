//! Planted conflicts: a small, fixed set of visit scenarios whose expected
//! conflict flags are known **by construction** (declared with each
//! scenario, never computed by detection code), plus near-misses that must
//! not be detected.
//!
//! Every scenario has its own person (SSN `899-00-NNNN`, never used by the
//! background), its visits are at dedicated agencies in New York
//! (`America/New_York`, the configured rule zone), so scenarios cannot
//! interact with each other or with the background. The expected set is per
//! ordered pair `(VisitID, ConVisitID)`, both orientations, with the seven
//! rule flags of docs/conflicts.md §4 as decided in
//! docs/conflicts.md §11 (rules 3 and 6 in both directions, rules 1 and 4 only for
//! VisitDate ≥ today, minute-boundary gaps, zip guard, no cross-state pairs,
//! NULL-safe and trimmed exclusions, one wall clock).
//!
//! Distance scenarios use the docs/conflicts.md §R7.5 acceptance points (40.597095, −73.998993)
//! and (40.654140, −73.935455): 5.16 mi (ExtraDistancePer 1.0, ETA 20.64 min
//! at 15 mph) or 6.19 mi (1.2, ETA 24.76 min).

use chrono::{DateTime, Datelike, Duration, FixedOffset, NaiveDate, NaiveTime, Weekday};
use uuid::Uuid;

use crate::visits::{two_years_before, VisitRecord};
use crate::world::{entity_uuid, wall, wall_later, Kind, World};

/// The seven rule flags of a stored pair (`conflictvisitmaps` columns).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize)]
pub struct RuleFlags {
    /// Rule 1 `SameSchTimeFlag`.
    pub same_sch_time: bool,
    /// Rule 2 `SameVisitTimeFlag`.
    pub same_visit_time: bool,
    /// Rule 3 `SchAndVisitTimeSameFlag`.
    pub sch_and_visit_time_same: bool,
    /// Rule 4 `SchOverAnotherSchTimeFlag`.
    pub sch_over_another_sch_time: bool,
    /// Rule 5 `VisitTimeOverAnotherVisitTimeFlag`.
    pub visit_time_over_another_visit_time: bool,
    /// Rule 6 `SchTimeOverVisitTimeFlag`.
    pub sch_time_over_visit_time: bool,
    /// Rule 7 `DistanceFlag`.
    pub distance: bool,
}

/// One of the seven rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Rule {
    /// Rule 1.
    SameSchTime,
    /// Rule 2.
    SameVisitTime,
    /// Rule 3.
    SchAndVisitTimeSame,
    /// Rule 4.
    SchOverAnotherSchTime,
    /// Rule 5.
    VisitTimeOverAnotherVisitTime,
    /// Rule 6.
    SchTimeOverVisitTime,
    /// Rule 7.
    Distance,
}

impl Rule {
    /// All seven, in flag order.
    pub const ALL: [Rule; 7] = [
        Rule::SameSchTime,
        Rule::SameVisitTime,
        Rule::SchAndVisitTimeSame,
        Rule::SchOverAnotherSchTime,
        Rule::VisitTimeOverAnotherVisitTime,
        Rule::SchTimeOverVisitTime,
        Rule::Distance,
    ];
}

impl RuleFlags {
    /// Flags with exactly `rule` set.
    pub fn only(rule: Rule) -> RuleFlags {
        let mut f = RuleFlags::default();
        *f.flag_mut(rule) = true;
        f
    }

    /// Whether `rule` is set.
    pub fn get(&self, rule: Rule) -> bool {
        let mut copy = *self;
        *copy.flag_mut(rule)
    }

    fn flag_mut(&mut self, rule: Rule) -> &mut bool {
        match rule {
            Rule::SameSchTime => &mut self.same_sch_time,
            Rule::SameVisitTime => &mut self.same_visit_time,
            Rule::SchAndVisitTimeSame => &mut self.sch_and_visit_time_same,
            Rule::SchOverAnotherSchTime => &mut self.sch_over_another_sch_time,
            Rule::VisitTimeOverAnotherVisitTime => &mut self.visit_time_over_another_visit_time,
            Rule::SchTimeOverVisitTime => &mut self.sch_time_over_visit_time,
            Rule::Distance => &mut self.distance,
        }
    }
}

/// One expected `conflictvisitmaps` row.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ExpectedPair {
    /// Scenario name (stable, for messages).
    pub scenario: &'static str,
    /// Primary visit (`VisitID`).
    pub visit_id: Uuid,
    /// Conflicting visit (`ConVisitID`).
    pub con_visit_id: Uuid,
    /// Trimmed SSN (`SSN`).
    pub ssn: String,
    /// `VisitDate` (New York date).
    pub visit_date: NaiveDate,
    /// Expected flags.
    pub flags: RuleFlags,
}

/// A planted scenario that must produce no pair at all.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct NearMiss {
    /// Scenario name.
    pub scenario: &'static str,
    /// Its visits (FACT or DELETED).
    pub visit_ids: Vec<Uuid>,
}

/// `SETTINGS.ExtraDistancePer`: the two values the worked example covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ExtraDistance {
    /// 1.0 (no extra distance).
    None,
    /// 1.2 (ExtraDistance 20 %).
    TwentyPercent,
}

impl ExtraDistance {
    /// `(ExtraDistance %, ExtraDistancePer × 100)` as stored in SETTINGS.
    pub fn stored(self) -> (i64, i64) {
        match self {
            ExtraDistance::None => (0, 100),
            ExtraDistance::TwentyPercent => (20, 120),
        }
    }
}

/// A planted agency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Agency {
    /// Active NY agency A.
    A,
    /// Active NY agency B.
    B,
    /// Active NY agency C.
    C,
    /// Inactive NY agency.
    Inactive,
    /// Demo NY agency.
    Demo,
    /// NY agency listed in EXCLUDED_AGENCY.
    Excluded,
    /// Pennsylvania agency (cross-state).
    Pennsylvania,
}

impl Agency {
    /// All planted agencies.
    pub const ALL: [Agency; 7] = [
        Agency::A,
        Agency::B,
        Agency::C,
        Agency::Inactive,
        Agency::Demo,
        Agency::Excluded,
        Agency::Pennsylvania,
    ];

    /// Position in [`Agency::ALL`].
    pub fn index(self) -> u64 {
        Agency::ALL.iter().position(|a| *a == self).expect("listed") as u64
    }

    /// (name, state, active, demo).
    pub fn attributes(self) -> (&'static str, &'static str, bool, bool) {
        match self {
            Agency::A => ("Planted Agency A", "NY", true, false),
            Agency::B => ("Planted Agency B", "NY", true, false),
            Agency::C => ("Planted Agency C", "NY", true, false),
            Agency::Inactive => ("Planted Inactive Agency", "NY", false, false),
            Agency::Demo => ("Planted Demo Agency", "NY", true, true),
            Agency::Excluded => ("Planted Excluded Agency", "NY", true, false),
            Agency::Pennsylvania => ("Planted Pennsylvania Agency", "PA", true, false),
        }
    }

    /// (`Provider Id`, `Application Provider Id`).
    pub fn ids(self, seed: u64) -> (Uuid, u64) {
        (
            entity_uuid(seed, Kind::Planted, 1_000 + self.index()),
            90 + self.index(),
        )
    }

    /// The agency's single office (id, app id).
    pub fn office(self, seed: u64) -> (Uuid, u64) {
        (
            entity_uuid(seed, Kind::Planted, 2_000 + self.index()),
            49_000 + self.index(),
        )
    }
}

/// How a scenario's caregiver records carry the SSN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SsnStyle {
    /// Exact at every agency.
    Exact,
    /// Exact at the first agency, with surrounding spaces at the others (trimmed equal).
    Padded,
    /// Blank (`"   "`) at the first agency, NULL at the others.
    Blank,
    /// Exact, and listed (padded) in EXCLUDED_SSN.
    Excluded,
}

/// Actual times of a planted visit.
#[derive(Debug, Clone, Copy)]
pub enum Actual {
    /// Scheduled only.
    None,
    /// Completed.
    Both(DateTime<FixedOffset>, DateTime<FixedOffset>),
    /// Partial: started, never ended.
    StartOnly(DateTime<FixedOffset>),
}

/// A point with its patient ZIP and state.
#[derive(Debug, Clone, Copy)]
pub struct Place {
    /// Latitude.
    pub lat: f64,
    /// Longitude.
    pub lon: f64,
    /// Patient ZIP.
    pub zip: &'static str,
    /// Patient state.
    pub state: &'static str,
}

/// First docs/conflicts.md §R7.5 point (Bensonhurst).
pub const POINT_1: Place = Place {
    lat: 40.597095,
    lon: -73.998993,
    zip: "11214",
    state: "NY",
};
/// Second docs/conflicts.md §R7.5 point (East Flatbush).
pub const POINT_2: Place = Place {
    lat: 40.654140,
    lon: -73.935455,
    zip: "11203",
    state: "NY",
};
const HOME: Place = Place {
    lat: 40.650000,
    lon: -73.950000,
    zip: "11215",
    state: "NY",
};
const PHILLY: Place = Place {
    lat: 39.952000,
    lon: -75.165000,
    zip: "19103",
    state: "PA",
};

/// One planted visit.
#[derive(Debug, Clone)]
pub struct PlantedVisit {
    /// Agency.
    pub agency: Agency,
    /// Agency-local (New York) date.
    pub date: NaiveDate,
    /// Scheduled start and end.
    pub sched: (DateTime<FixedOffset>, DateTime<FixedOffset>),
    /// Actual times.
    pub actual: Actual,
    /// `Is Missed`.
    pub missed: bool,
    /// Patient address place (and call GPS point).
    pub place: Place,
    /// Lives only in FACTVISITCALLPERFORMANCE_DELETED_CR.
    pub deleted: bool,
}

/// One scenario: a person, visits and the expected unordered pairs.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Stable name.
    pub name: &'static str,
    /// Person number (SSN `899-00-NNNN`).
    pub number: u64,
    /// SSN storage style.
    pub ssn_style: SsnStyle,
    /// Visits.
    pub visits: Vec<PlantedVisit>,
    /// Expected pairs `(i, j, flags)` by visit position; both orientations are expected.
    pub pairs: Vec<(usize, usize, RuleFlags)>,
}

impl Scenario {
    /// The trimmed SSN.
    pub fn ssn(&self) -> String {
        format!("899-00-{:04}", self.number)
    }

    /// `Visit Id` of visit `i`.
    pub fn visit_id(&self, seed: u64, i: usize) -> Uuid {
        entity_uuid(seed, Kind::Planted, 100_000 + self.number * 10 + i as u64)
    }

    /// Global planted-visit number of visit `i` (patients, app ids).
    pub fn visit_number(&self, i: usize) -> u64 {
        self.number * 10 + i as u64
    }

    /// Caregiver record (id, app id, stored SSN) of this person at `agency`.
    pub fn caregiver(&self, seed: u64, agency: Agency) -> (Uuid, u64, Option<String>) {
        let index = self.number * 10 + agency.index();
        let first = self.visits.first().map(|v| v.agency) == Some(agency);
        let ssn = match (self.ssn_style, first) {
            (SsnStyle::Exact | SsnStyle::Excluded, _) | (SsnStyle::Padded, true) => {
                Some(self.ssn())
            }
            (SsnStyle::Padded, false) => Some(format!("  {} ", self.ssn())),
            (SsnStyle::Blank, true) => Some("   ".to_string()),
            (SsnStyle::Blank, false) => None,
        };
        (
            entity_uuid(seed, Kind::Planted, 10_000 + index),
            800_000 + index,
            ssn,
        )
    }

    /// Distinct agencies in visit order.
    pub fn agencies(&self) -> Vec<Agency> {
        let mut out: Vec<Agency> = Vec::new();
        for v in &self.visits {
            if !out.contains(&v.agency) {
                out.push(v.agency);
            }
        }
        out
    }
}

fn at(date: NaiveDate, hms: &str) -> DateTime<FixedOffset> {
    wall(
        chrono_tz::America::New_York,
        date.and_time(
            NaiveTime::parse_from_str(hms, "%H:%M:%S")
                .or_else(|_| NaiveTime::parse_from_str(hms, "%H:%M"))
                .expect("planted time literal"),
        ),
    )
}

fn at_later(date: NaiveDate, hm: &str) -> DateTime<FixedOffset> {
    wall_later(
        chrono_tz::America::New_York,
        date.and_time(NaiveTime::parse_from_str(hm, "%H:%M").expect("planted time literal")),
    )
}

/// Scheduled-only visit.
fn s(agency: Agency, date: NaiveDate, from: &str, to: &str) -> PlantedVisit {
    PlantedVisit {
        agency,
        date,
        sched: (at(date, from), at(date, to)),
        actual: Actual::None,
        missed: false,
        place: HOME,
        deleted: false,
    }
}

/// Completed visit whose schedule equals its actual times.
fn c(agency: Agency, date: NaiveDate, from: &str, to: &str) -> PlantedVisit {
    let v = s(agency, date, from, to);
    PlantedVisit {
        actual: Actual::Both(v.sched.0, v.sched.1),
        ..v
    }
}

impl PlantedVisit {
    fn at_place(self, place: Place) -> PlantedVisit {
        PlantedVisit { place, ..self }
    }
    fn scheduled(self, from: &str, to: &str) -> PlantedVisit {
        PlantedVisit {
            sched: (at(self.date, from), at(self.date, to)),
            ..self
        }
    }
}

/// The most recent fall-back Sunday (first Sunday of November) inside the window.
pub fn fall_back_date(today: NaiveDate) -> NaiveDate {
    let mut d = today;
    while !(d.month() == 11 && d.weekday() == Weekday::Sun && d.day() <= 7) {
        d -= Duration::days(1);
    }
    d
}

/// (name, SSN style, visits, expected pairs) before numbering.
type ScenarioSpec = (
    &'static str,
    SsnStyle,
    Vec<PlantedVisit>,
    Vec<(usize, usize, RuleFlags)>,
);

/// Every planted scenario for `today` and the seeded ExtraDistancePer.
pub fn scenarios(today: NaiveDate, extra: ExtraDistance) -> Vec<Scenario> {
    use Agency::*;
    let day = |offset: i64| today + Duration::days(offset);
    let lower = two_years_before(today);
    let fall = fall_back_date(today);
    let one = RuleFlags::only;
    let mut list: Vec<ScenarioSpec> = vec![
        // Positives: every rule.
        (
            "same_scheduled_time",
            SsnStyle::Exact,
            vec![
                s(A, day(3), "09:00", "13:00"),
                s(B, day(3), "09:00", "13:00"),
            ],
            vec![(0, 1, one(Rule::SameSchTime))],
        ),
        (
            "same_visit_time",
            SsnStyle::Padded,
            vec![
                c(A, day(-10), "09:00", "13:00"),
                c(B, day(-10), "09:00", "13:00").scheduled("08:30", "12:30"),
            ],
            vec![(0, 1, one(Rule::SameVisitTime))],
        ),
        (
            "scheduled_equals_visit_time",
            SsnStyle::Exact,
            vec![
                s(A, day(-5), "08:00", "12:00"),
                c(B, day(-5), "08:00", "12:00").scheduled("07:30", "11:30"),
            ],
            vec![(0, 1, one(Rule::SchAndVisitTimeSame))],
        ),
        (
            "visit_time_equals_scheduled",
            SsnStyle::Exact,
            vec![
                c(A, day(-1), "14:00", "16:00").scheduled("13:00", "16:00"),
                s(B, day(-1), "14:00", "16:00"),
            ],
            vec![(0, 1, one(Rule::SchAndVisitTimeSame))],
        ),
        (
            "scheduled_overlap",
            SsnStyle::Exact,
            vec![
                s(A, day(10), "09:00", "12:00"),
                s(B, day(10), "11:00", "14:00"),
            ],
            vec![(0, 1, one(Rule::SchOverAnotherSchTime))],
        ),
        (
            "scheduled_overlap_today",
            SsnStyle::Exact,
            vec![
                s(A, day(0), "09:00", "12:00"),
                s(B, day(0), "10:00", "11:00"),
            ],
            vec![(0, 1, one(Rule::SchOverAnotherSchTime))],
        ),
        (
            "visit_time_overlap",
            SsnStyle::Exact,
            vec![
                c(A, day(-20), "09:00", "12:00"),
                c(B, day(-20), "11:30", "15:00"),
            ],
            vec![(0, 1, one(Rule::VisitTimeOverAnotherVisitTime))],
        ),
        (
            "scheduled_overlaps_visit_time",
            SsnStyle::Exact,
            vec![
                s(A, day(-7), "10:00", "14:00"),
                c(B, day(-7), "13:00", "17:00"),
            ],
            vec![(0, 1, one(Rule::SchTimeOverVisitTime))],
        ),
        (
            "visit_time_overlaps_scheduled",
            SsnStyle::Exact,
            vec![
                c(A, day(-8), "10:00", "14:00"),
                s(B, day(-8), "13:00", "17:00"),
            ],
            vec![(0, 1, one(Rule::SchTimeOverVisitTime))],
        ),
        (
            "distance_eta_exceeds_gap",
            SsnStyle::Exact,
            vec![
                c(A, day(-30), "09:00", "10:00").at_place(POINT_1),
                c(B, day(-30), "10:15", "11:00").at_place(POINT_2),
            ],
            vec![(0, 1, one(Rule::Distance))],
        ),
        (
            "window_lower_bound",
            SsnStyle::Exact,
            vec![c(A, lower, "09:00", "12:00"), c(B, lower, "11:00", "13:00")],
            vec![(0, 1, one(Rule::VisitTimeOverAnotherVisitTime))],
        ),
        (
            "window_upper_bound",
            SsnStyle::Exact,
            vec![
                s(A, day(45), "09:00", "12:00"),
                s(B, day(45), "11:00", "14:00"),
            ],
            vec![(0, 1, one(Rule::SchOverAnotherSchTime))],
        ),
        (
            "fall_back_repeated_hour",
            SsnStyle::Exact,
            vec![c(A, fall, "01:10", "01:50"), {
                let (a, b) = (at_later(fall, "01:20"), at_later(fall, "01:40"));
                PlantedVisit {
                    sched: (a, b),
                    actual: Actual::Both(a, b),
                    ..c(B, fall, "01:20", "01:40")
                }
            }],
            vec![(0, 1, one(Rule::VisitTimeOverAnotherVisitTime))],
        ),
        (
            "three_agencies_chain",
            SsnStyle::Exact,
            vec![
                c(A, day(-12), "09:00", "12:00"),
                c(B, day(-12), "11:00", "14:00"),
                c(C, day(-12), "13:30", "16:00"),
            ],
            vec![
                (0, 1, one(Rule::VisitTimeOverAnotherVisitTime)),
                (1, 2, one(Rule::VisitTimeOverAnotherVisitTime)),
            ],
        ),
        // Near-misses: none of these may be detected.
        (
            "touching_schedules",
            SsnStyle::Exact,
            vec![
                s(A, day(4), "09:00", "12:00"),
                s(B, day(4), "12:00", "15:00"),
            ],
            vec![],
        ),
        (
            "back_to_back_far_apart",
            SsnStyle::Exact,
            vec![
                c(A, day(-4), "09:00", "10:00").at_place(POINT_1),
                c(B, day(-4), "10:00", "11:00").at_place(POINT_2),
            ],
            vec![],
        ),
        (
            "partial_visit",
            SsnStyle::Exact,
            vec![
                c(A, day(-6), "09:00", "12:00"),
                PlantedVisit {
                    actual: Actual::StartOnly(at(day(-6), "10:00")),
                    ..s(B, day(-6), "10:00", "13:00")
                },
            ],
            vec![],
        ),
        (
            "same_provider",
            SsnStyle::Exact,
            vec![
                c(A, day(-6), "09:00", "12:00"),
                c(A, day(-6), "10:00", "13:00"),
            ],
            vec![],
        ),
        (
            "excluded_ssn",
            SsnStyle::Excluded,
            vec![
                c(A, day(-9), "09:00", "12:00"),
                c(B, day(-9), "10:00", "13:00"),
            ],
            vec![],
        ),
        (
            "excluded_agency",
            SsnStyle::Exact,
            vec![
                c(A, day(-9), "09:00", "12:00"),
                c(Excluded, day(-9), "10:00", "13:00"),
            ],
            vec![],
        ),
        (
            "inactive_provider",
            SsnStyle::Exact,
            vec![
                c(A, day(-9), "09:00", "12:00"),
                c(Inactive, day(-9), "10:00", "13:00"),
            ],
            vec![],
        ),
        (
            "demo_provider",
            SsnStyle::Exact,
            vec![
                c(A, day(-9), "09:00", "12:00"),
                c(Demo, day(-9), "10:00", "13:00"),
            ],
            vec![],
        ),
        (
            "missed_visit",
            SsnStyle::Exact,
            vec![
                c(A, day(-11), "09:00", "12:00"),
                PlantedVisit {
                    missed: true,
                    ..s(B, day(-11), "10:00", "13:00")
                },
            ],
            vec![],
        ),
        (
            "past_same_scheduled_time",
            SsnStyle::Exact,
            vec![
                s(A, day(-3), "09:00", "13:00"),
                s(B, day(-3), "09:00", "13:00"),
            ],
            vec![],
        ),
        (
            "past_scheduled_overlap",
            SsnStyle::Exact,
            vec![
                s(A, day(-3), "09:00", "12:00"),
                s(B, day(-3), "11:00", "14:00"),
            ],
            vec![],
        ),
        (
            "different_dates_across_midnight",
            SsnStyle::Exact,
            vec![
                {
                    let (a, b) = (at(day(-13), "22:00"), at(day(-12), "01:00"));
                    PlantedVisit {
                        sched: (a, b),
                        actual: Actual::Both(a, b),
                        ..c(A, day(-13), "22:00", "23:00")
                    }
                },
                c(B, day(-12), "00:30", "02:00"),
            ],
            vec![],
        ),
        (
            "outside_window_before",
            SsnStyle::Exact,
            vec![
                c(A, lower - Duration::days(1), "09:00", "12:00"),
                c(B, lower - Duration::days(1), "11:00", "13:00"),
            ],
            vec![],
        ),
        (
            "outside_window_after",
            SsnStyle::Exact,
            vec![
                s(A, day(46), "09:00", "12:00"),
                s(B, day(46), "11:00", "14:00"),
            ],
            vec![],
        ),
        (
            "blank_ssn",
            SsnStyle::Blank,
            vec![
                c(A, day(-14), "09:00", "12:00"),
                c(B, day(-14), "10:00", "13:00"),
            ],
            vec![],
        ),
        (
            "deleted_visit",
            SsnStyle::Exact,
            vec![
                c(A, day(-15), "09:00", "12:00"),
                PlantedVisit {
                    deleted: true,
                    ..c(B, day(-15), "10:00", "13:00")
                },
            ],
            vec![],
        ),
        (
            "distance_gap_25",
            SsnStyle::Exact,
            vec![
                c(A, day(-32), "09:00", "10:00").at_place(POINT_1),
                c(B, day(-32), "10:25", "11:00").at_place(POINT_2),
            ],
            vec![],
        ),
        (
            "distance_minute_boundary",
            SsnStyle::Exact,
            // DATEDIFF(minute) counts boundaries: 09:59:59 → 10:20:30 is 21 (elapsed 20.5 < ETA 20.64),
            // 09:59:59 → 10:24:30 is 25 (elapsed 24.5 < ETA 24.76): not a conflict.
            vec![
                {
                    let v = c(A, day(-33), "09:00", "10:00").at_place(POINT_1);
                    let end = at(day(-33), "09:59:59");
                    PlantedVisit {
                        actual: Actual::Both(v.sched.0, end),
                        ..v
                    }
                },
                {
                    let start = if extra == ExtraDistance::None {
                        "10:20:30"
                    } else {
                        "10:24:30"
                    };
                    let v = c(B, day(-33), "10:20", "11:00").at_place(POINT_2);
                    PlantedVisit {
                        actual: Actual::Both(at(day(-33), start), v.sched.1),
                        ..v
                    }
                },
            ],
            vec![],
        ),
        (
            "distance_same_zip",
            SsnStyle::Exact,
            vec![
                c(A, day(-34), "09:00", "10:00").at_place(POINT_1),
                c(B, day(-34), "10:15", "11:00").at_place(Place {
                    zip: POINT_1.zip,
                    ..POINT_2
                }),
            ],
            vec![],
        ),
        (
            "cross_state",
            SsnStyle::Exact,
            vec![
                c(A, day(-16), "09:00", "12:00"),
                c(Pennsylvania, day(-16), "10:00", "13:00").at_place(PHILLY),
            ],
            vec![],
        ),
        (
            "schedules_overlap_visits_touch",
            SsnStyle::Exact,
            vec![
                c(A, day(-17), "09:00", "11:00").scheduled("09:00", "13:00"),
                c(B, day(-17), "11:00", "14:00").scheduled("10:00", "14:00"),
            ],
            vec![],
        ),
    ];
    // docs/conflicts.md §R7.5 with a 22-minute gap: ETA 20.64 (1.0) does not exceed it, ETA 24.76 (1.2) does.
    let gap_22 = vec![
        c(A, day(-31), "09:00", "10:00").at_place(POINT_1),
        c(B, day(-31), "10:22", "11:00").at_place(POINT_2),
    ];
    let gap_22_pairs = if extra == ExtraDistance::TwentyPercent {
        vec![(0, 1, one(Rule::Distance))]
    } else {
        vec![]
    };
    list.push(("distance_gap_22", SsnStyle::Exact, gap_22, gap_22_pairs));
    list.into_iter()
        .enumerate()
        .map(|(n, (name, ssn_style, visits, pairs))| Scenario {
            name,
            number: n as u64 + 1,
            ssn_style,
            visits,
            pairs,
        })
        .collect()
}

/// The expected `conflictvisitmaps` rows: both orientations of every planted pair.
///
/// `today` is the New York date detection runs on; `extra` must match the
/// seeded SETTINGS row. Background data adds no pair (see `visits`).
pub fn planted_conflicts(seed: u64, today: NaiveDate, extra: ExtraDistance) -> Vec<ExpectedPair> {
    let mut out = Vec::new();
    for sc in scenarios(today, extra) {
        for (i, j, flags) in &sc.pairs {
            for (a, b) in [(*i, *j), (*j, *i)] {
                out.push(ExpectedPair {
                    scenario: sc.name,
                    visit_id: sc.visit_id(seed, a),
                    con_visit_id: sc.visit_id(seed, b),
                    ssn: sc.ssn(),
                    visit_date: sc.visits[a].date,
                    flags: *flags,
                });
            }
        }
    }
    out
}

/// The planted scenarios that must produce no pair.
pub fn planted_near_misses(seed: u64, today: NaiveDate, extra: ExtraDistance) -> Vec<NearMiss> {
    scenarios(today, extra)
        .into_iter()
        .filter(|sc| sc.pairs.is_empty())
        .map(|sc| NearMiss {
            scenario: sc.name,
            visit_ids: (0..sc.visits.len()).map(|i| sc.visit_id(seed, i)).collect(),
        })
        .collect()
}

/// The FACT/DELETED row of visit `i` of scenario `sc`.
pub fn planted_visit_record(world: &World, sc: &Scenario, i: usize) -> VisitRecord {
    let v = &sc.visits[i];
    let seed = world.seed;
    let n = sc.visit_number(i);
    let (visit_start, visit_end) = match v.actual {
        Actual::None => (None, None),
        Actual::Both(a, b) => (Some(a), Some(b)),
        Actual::StartOnly(a) => (Some(a), None),
    };
    let plain = format!("{},{}", v.place.lat, v.place.lon);
    // Alternate GPS spellings between the two sides; every spelling resolves
    // to the patient address point, whichever priority or parsing applies.
    let (call_in_gps, call_out_gps) = if i.is_multiple_of(2) {
        (Some(plain.clone()), Some(format!("\"{plain}\"")))
    } else {
        (Some(",".to_string()), None)
    };
    let caregiver = sc.caregiver(seed, v.agency);
    let end = visit_end.unwrap_or(v.sched.1);
    let updated = if v.date > world.now.date_naive() {
        world.now - Duration::days(2)
    } else {
        (end + Duration::hours(1)).min(world.now - Duration::minutes(5))
    };
    VisitRecord {
        id: sc.visit_id(seed, i),
        app_id: 5_000_000 + n,
        zone: chrono_tz::America::New_York,
        date: v.date,
        sched_start: v.sched.0,
        sched_end: v.sched.1,
        visit_start,
        visit_end,
        call_in: visit_start,
        call_out: visit_end,
        call_in_gps: visit_start.and(call_in_gps),
        call_out_gps: visit_end.and(call_out_gps),
        device: visit_end.map(|_| "Mobile"),
        caregiver: (caregiver.0, caregiver.1),
        provider: v.agency.ids(seed),
        office: v.agency.office(seed),
        patient: planted_patient(seed, n),
        payer: Some(world.payer(0)),
        contract: None,
        service_code: world.service_code(0),
        bill_type: "Hourly",
        billed: false,
        billed_rate_milli: 25_000,
        billed_hours_micro: (v.sched.1 - v.sched.0).num_seconds() * 1_000_000 / 3_600,
        invoice_date: None,
        missed: v.missed,
        missed_reason: v.missed.then_some("Caregiver no-show"),
        updated,
        updated_user: Some(world.user(0)),
        external_source: "HHAX",
        permanent_deleted: v.deleted,
    }
}

/// (`Patient Id`, `Application Patient Id`) of planted visit number `n`.
pub fn planted_patient(seed: u64, n: u64) -> (Uuid, u64) {
    (entity_uuid(seed, Kind::Planted, 20_000 + n), 7_000_000 + n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 21).unwrap()
    }

    #[test]
    fn planted_set_covers_every_rule_in_both_orientations() {
        for extra in [ExtraDistance::None, ExtraDistance::TwentyPercent] {
            let pairs = planted_conflicts(1, today(), extra);
            let set: HashSet<(Uuid, Uuid)> =
                pairs.iter().map(|p| (p.visit_id, p.con_visit_id)).collect();
            assert_eq!(set.len(), pairs.len(), "duplicate ordered pair");
            for p in &pairs {
                assert!(
                    set.contains(&(p.con_visit_id, p.visit_id)),
                    "{} lacks its reverse orientation",
                    p.scenario
                );
            }
            for rule in Rule::ALL {
                assert!(
                    pairs.iter().filter(|p| p.flags.get(rule)).count() >= 2,
                    "{rule:?} not planted in both orientations"
                );
            }
        }
    }

    #[test]
    fn rule_3_and_6_are_planted_with_the_scheduled_visit_on_either_agency() {
        let sc = scenarios(today(), ExtraDistance::None);
        let first_state = |name: &str| {
            matches!(
                sc.iter().find(|s| s.name == name).unwrap().visits[0].actual,
                Actual::None
            )
        };
        assert!(
            first_state("scheduled_equals_visit_time")
                && !first_state("visit_time_equals_scheduled")
        );
        assert!(
            first_state("scheduled_overlaps_visit_time")
                && !first_state("visit_time_overlaps_scheduled")
        );
    }

    #[test]
    fn extra_distance_decides_only_the_22_minute_gap() {
        let a = planted_conflicts(1, today(), ExtraDistance::None);
        let b = planted_conflicts(1, today(), ExtraDistance::TwentyPercent);
        assert_eq!(b.len(), a.len() + 2);
        assert!(
            b.iter().any(|p| p.scenario == "distance_gap_22")
                && !a.iter().any(|p| p.scenario == "distance_gap_22")
        );
    }

    #[test]
    fn near_misses_and_conflicts_use_distinct_visits_and_people() {
        let sc = scenarios(today(), ExtraDistance::None);
        let ssns: HashSet<String> = sc.iter().map(Scenario::ssn).collect();
        assert_eq!(ssns.len(), sc.len());
        let ids: HashSet<Uuid> = sc
            .iter()
            .flat_map(|s| (0..s.visits.len()).map(|i| s.visit_id(1, i)))
            .collect();
        assert_eq!(ids.len(), sc.iter().map(|s| s.visits.len()).sum::<usize>());
        assert!(planted_near_misses(1, today(), ExtraDistance::None).len() >= 20);
    }

    #[test]
    fn fall_back_scenario_overlaps_on_the_wall_clock_but_not_in_utc() {
        let sc = scenarios(today(), ExtraDistance::None);
        let s = sc
            .iter()
            .find(|s| s.name == "fall_back_repeated_hour")
            .unwrap();
        assert_eq!(
            s.visits[0].date,
            NaiveDate::from_ymd_opt(2026, 11, 1).unwrap()
        );
        let (Actual::Both(a0, a1), Actual::Both(b0, b1)) = (s.visits[0].actual, s.visits[1].actual)
        else {
            panic!()
        };
        assert!(a1 <= b0 || b1 <= a0, "instants must not overlap");
        assert!(
            a0.naive_local() < b1.naive_local() && b0.naive_local() < a1.naive_local(),
            "wall clocks must overlap"
        );
    }

    #[test]
    fn window_bounds_follow_today() {
        let sc = scenarios(
            NaiveDate::from_ymd_opt(2028, 2, 29).unwrap(),
            ExtraDistance::None,
        );
        let lower = sc.iter().find(|s| s.name == "window_lower_bound").unwrap();
        assert_eq!(
            lower.visits[0].date,
            NaiveDate::from_ymd_opt(2026, 2, 28).unwrap()
        );
    }
}
