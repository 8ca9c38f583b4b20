//! Visits: the row shape of FACTVISITCALLPERFORMANCE_CR (and its DELETED
//! twin), and the background visits, which are conflict-free by construction.
//!
//! ## Why background visits never conflict
//! A conflict needs two visits of one trimmed SSN on one VisitDate at two
//! different providers (docs/conflicts.md §4.2; in-service and PTO
//! events are only generated for single-agency people, see `seed`). For a
//! person working for `k ≥ 2` agencies, visit dates are partitioned by the day
//! number `dn` of the agency-local date:
//! * on most days (`dn % 5 != 0`) every visit of that person is at agency
//!   `dn % k`, so no pair exists at all;
//! * on "split days" (`dn % 5 == 0`) agency 0 gets morning visits (start
//!   06:00–08:45, at most 3 h, actual times within ±10 min, so done by 11:55)
//!   and agency 1 evening visits (start 15:00 or later, actual from 14:50):
//!   no time rule can fire (no overlap, no equality), and rule 7 cannot
//!   either: all agencies of a person are in one metro, patients lie within
//!   ±0.12° of its centre (≤ 23 miles apart, ≤ 27 with ExtraDistancePer 1.2;
//!   ETA ≤ 60 min at the seeded MPH bands: 25 mph up to 25 miles, 40 mph
//!   beyond), far below the ≥ 175 min gap. `thaw dev mutate` shifts times
//!   by at most 30 minutes, keeping a gap of ≥ 115 min.
//!
//! Every visit of a person stays inside one agency-local day (06:00–23:00).

use chrono::{DateTime, Datelike, Duration, FixedOffset, NaiveDate, NaiveTime};
use chrono_tz::Tz;
use rand::Rng;
use uuid::Uuid;

use crate::csv::Cell;
use crate::world::{entity_rng, entity_uuid, midnight, pick, round6, wall, Kind, World};

/// Whether and how a visit was performed (docs/conflicts.md §4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VisitState {
    /// Scheduled only: both actual times NULL.
    Scheduled,
    /// Completed: both actual times present.
    Completed,
    /// Partial: exactly one actual time present.
    Partial,
}

/// One visit row (both FACT tables share the layout of `tables::FACT_VISIT`).
#[derive(Debug, Clone)]
pub struct VisitRecord {
    /// `Visit Id`.
    pub id: Uuid,
    /// `Application Visit Id` (numeric text).
    pub app_id: u64,
    /// Agency zone: every timestamp is written with its offset there.
    pub zone: Tz,
    /// Agency-local service date ("Visit Date" = local midnight).
    pub date: NaiveDate,
    /// `Scheduled Start Time`.
    pub sched_start: DateTime<FixedOffset>,
    /// `Scheduled End Time`.
    pub sched_end: DateTime<FixedOffset>,
    /// `Visit Start Time`.
    pub visit_start: Option<DateTime<FixedOffset>>,
    /// `Visit End Time`.
    pub visit_end: Option<DateTime<FixedOffset>>,
    /// `Call In Time`.
    pub call_in: Option<DateTime<FixedOffset>>,
    /// `Call Out Time`.
    pub call_out: Option<DateTime<FixedOffset>>,
    /// `Call In GPS Coordinates` ("lat,lon", possibly quoted, "," or NULL).
    pub call_in_gps: Option<String>,
    /// `Call Out GPS Coordinates`.
    pub call_out_gps: Option<String>,
    /// `Call Out Device Type`.
    pub device: Option<&'static str>,
    /// `Caregiver Id`, `Application Caregiver Id`.
    pub caregiver: (Uuid, u64),
    /// `Provider Id`, `Application Provider Id`.
    pub provider: (Uuid, u64),
    /// `Office Id`, `Application Office Id`.
    pub office: (Uuid, u64),
    /// `Patient Id` (= `Provider Patient Id` = `Payer Patient Id` when a payer pays), app id.
    pub patient: (Uuid, u64),
    /// `Payer Id`, `Application Payer Id` (NULL / 0 when private pay).
    pub payer: Option<(Uuid, u64)>,
    /// `Contract Id`, `Application Contract Id` (NULL / 0 when none).
    pub contract: Option<(Uuid, u64)>,
    /// `Service Code Id`, `Application Service Code Id`.
    pub service_code: (Uuid, u64),
    /// `Bill Type`.
    pub bill_type: &'static str,
    /// `Billed` ('yes'/'no').
    pub billed: bool,
    /// `Billed Rate` in thousandths.
    pub billed_rate_milli: i64,
    /// `Billed Hours` in millionths.
    pub billed_hours_micro: i64,
    /// `Invoice Date` (local date of the invoice).
    pub invoice_date: Option<NaiveDate>,
    /// `Is Missed`.
    pub missed: bool,
    /// `Missed Visit Reason`.
    pub missed_reason: Option<&'static str>,
    /// `Visit Updated Timestamp`.
    pub updated: DateTime<FixedOffset>,
    /// `Visit Updated User Id`, `Application Visit Updated User Id`.
    pub updated_user: Option<(Uuid, u64)>,
    /// `External Source` ('HHAX' for migrated rows).
    pub external_source: &'static str,
    /// `Permanent Deleted`.
    pub permanent_deleted: bool,
}

impl VisitRecord {
    /// The state implied by the actual times.
    pub fn state(&self) -> VisitState {
        match (self.visit_start, self.visit_end) {
            (None, None) => VisitState::Scheduled,
            (Some(_), Some(_)) => VisitState::Completed,
            _ => VisitState::Partial,
        }
    }

    /// Express an instant in the agency's zone.
    pub fn local(&self, t: DateTime<FixedOffset>) -> DateTime<FixedOffset> {
        t.with_timezone(&self.zone).fixed_offset()
    }

    /// The row in `tables::FACT_VISIT` column order.
    pub fn cells(&self) -> Vec<Cell> {
        let rate = self.billed_rate_milli;
        let non_billed_micro = rate * 1_000;
        let total_milli = if !self.billed {
            0
        } else if self.bill_type == "Hourly" {
            (rate as i128 * self.billed_hours_micro as i128 / 1_000_000) as i64
        } else {
            rate
        };
        let opt_id = |v: Option<(Uuid, u64)>| {
            (
                Cell::opt_uuid(v.map(|x| x.0)),
                Cell::Int(v.map_or(0, |x| x.1) as i64),
            )
        };
        let (payer_id, payer_app) = opt_id(self.payer);
        let contract_id = Cell::opt_uuid(self.contract.map(|x| x.0));
        let contract_app = Cell::text(self.contract.map_or(0, |x| x.1).to_string());
        let payer_patient = if self.payer.is_some() {
            (Cell::Uuid(self.patient.0), Cell::Int(self.patient.1 as i64))
        } else {
            (Cell::Null, Cell::Null)
        };
        vec![
            Cell::Uuid(self.id),
            Cell::text(self.app_id.to_string()),
            Cell::TimestampTz(midnight(self.zone, self.date)),
            Cell::TimestampTz(self.sched_start),
            Cell::TimestampTz(self.sched_end),
            Cell::opt_tz(self.visit_start),
            Cell::opt_tz(self.visit_end),
            Cell::opt_tz(self.call_in),
            Cell::opt_tz(self.call_out),
            Cell::opt_text(self.call_in_gps.clone()),
            Cell::opt_text(self.call_out_gps.clone()),
            Cell::opt_text(self.device),
            Cell::Uuid(self.caregiver.0),
            Cell::Int(self.caregiver.1 as i64),
            Cell::Uuid(self.provider.0),
            Cell::text(self.provider.1.to_string()),
            Cell::Uuid(self.office.0),
            Cell::text(self.office.1.to_string()),
            Cell::Uuid(self.patient.0),
            Cell::Int(self.patient.1 as i64),
            Cell::Uuid(self.patient.0),
            Cell::Int(self.patient.1 as i64),
            payer_patient.0,
            payer_patient.1,
            payer_id,
            payer_app,
            contract_id,
            contract_app,
            Cell::Uuid(self.service_code.0),
            Cell::Int(self.service_code.1 as i64),
            Cell::text(self.bill_type),
            Cell::text(if self.billed { "yes" } else { "no" }),
            Cell::Decimal(rate, 3),
            Cell::Decimal(non_billed_micro, 6),
            Cell::Decimal(self.billed_hours_micro, 6),
            Cell::Decimal(total_milli, 3),
            Cell::opt_tz(self.invoice_date.map(|d| midnight(self.zone, d))),
            Cell::Bool(self.missed),
            Cell::opt_text(self.missed_reason),
            Cell::TimestampTz(self.updated),
            Cell::opt_uuid(self.updated_user.map(|u| u.0)),
            self.updated_user
                .map_or(Cell::Null, |u| Cell::Int(u.1 as i64)),
            Cell::text(self.external_source),
            Cell::Bool(self.permanent_deleted),
        ]
    }
}

/// First background date: a little before the conflict window (`today − 2 years − 10 days`).
pub fn background_first_date(today: NaiveDate) -> NaiveDate {
    two_years_before(today) - Duration::days(10)
}

/// `today − 2 years` (Feb 29 → Feb 28), the conflict window's lower bound.
pub fn two_years_before(today: NaiveDate) -> NaiveDate {
    today
        .checked_sub_months(chrono::Months::new(24))
        .expect("date in range")
}

/// Days of background dates: up to `today + 50` (a little past the window's `today + 45`).
pub fn background_span_days(today: NaiveDate) -> i64 {
    (today + Duration::days(50) - background_first_date(today)).num_days() + 1
}

/// Time-of-day slot of a background visit (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// 06:00–22:45.
    Any,
    /// Split day, first agency: 06:00–11:45.
    Morning,
    /// Split day, second agency: from 15:00.
    Evening,
}

/// Choose agency position and slot for a person with `agencies` agencies on
/// local day number `day_number` (see the module docs).
pub fn agency_and_slot<R: Rng>(rng: &mut R, agencies: usize, day_number: u64) -> (usize, Slot) {
    if agencies == 1 {
        (0, Slot::Any)
    } else if day_number.is_multiple_of(5) {
        if rng.gen_bool(0.5) {
            (0, Slot::Morning)
        } else {
            (1, Slot::Evening)
        }
    } else {
        ((day_number % agencies as u64) as usize, Slot::Any)
    }
}

const MISSED_REASONS: [&str; 4] = [
    "Patient hospitalized",
    "Caregiver no-show",
    "Patient refused service",
    "Weather",
];
const DEVICES: [&str; 3] = ["Mobile", "IVR", "FOB"];

/// Background visit `index` of `kind` ([`Kind::Visit`] for FACT rows,
/// [`Kind::DeletedVisit`] for DELETED rows): a pure function of the world,
/// `today` and the index.
pub fn background_visit(world: &World, today: NaiveDate, kind: Kind, index: u64) -> VisitRecord {
    let mut rng = entity_rng(world.seed, kind, index);
    let person_index = if kind == Kind::Visit {
        index % world.persons
    } else {
        rng.gen_range(0..world.persons)
    };
    let person = world.person(person_index);
    let date = background_first_date(today)
        + Duration::days(rng.gen_range(0..background_span_days(today)));
    let day_number = date.num_days_from_ce() as u64;
    let (j, slot) = agency_and_slot(&mut rng, person.agencies.len(), day_number);
    let caregiver = world.caregiver(&person, j);
    let r = caregiver.provider;
    let provider = world.provider(r);
    let zone = provider.metro.zone;
    let patient = world.patient(r, rng.gen_range(0..world.patients_per_provider));
    let office = world.office(r, rng.gen_range(0..provider.offices));

    let (start_hours, max_minutes) = match slot {
        Slot::Any => (6..=18u32, 240i64),
        Slot::Morning => (6..=8, 180),
        Slot::Evening => (15..=18, 240),
    };
    let start = date.and_time(
        NaiveTime::from_hms_opt(rng.gen_range(start_hours), 15 * rng.gen_range(0..4u32), 0)
            .expect("valid time"),
    );
    let minutes = 30 * rng.gen_range(2..=max_minutes / 30);
    let sched_start = wall(zone, start);
    let sched_end = wall(zone, start + Duration::minutes(minutes));

    let u: f64 = rng.gen();
    let state = if date > today {
        VisitState::Scheduled
    } else if u < 0.80 {
        VisitState::Completed
    } else if u < 0.86 {
        VisitState::Scheduled
    } else if u < 0.92 {
        VisitState::Partial
    } else {
        VisitState::Scheduled
    };
    let missed = date <= today && u >= 0.92;
    let jitter = |rng: &mut rand_chacha::ChaCha8Rng, t: DateTime<FixedOffset>, secs: i64| {
        t + Duration::seconds(rng.gen_range(-secs..=secs))
    };
    let (mut visit_start, mut visit_end) = (None, None);
    if state != VisitState::Scheduled {
        visit_start = Some(jitter(&mut rng, sched_start, 600));
        visit_end = Some(jitter(&mut rng, sched_end, 600));
        if state == VisitState::Partial {
            if rng.gen_bool(0.5) {
                visit_end = None;
            } else {
                visit_start = None;
            }
        }
    }
    let gps = |rng: &mut rand_chacha::ChaCha8Rng| -> Option<String> {
        let lat = round6(patient.lat + rng.gen_range(-0.002..0.002));
        let lon = round6(patient.lon + rng.gen_range(-0.002..0.002));
        let v: f64 = rng.gen();
        if v < 0.75 {
            Some(format!("{lat},{lon}"))
        } else if v < 0.85 {
            Some(format!("\"{lat},{lon}\""))
        } else if v < 0.92 {
            Some(",".to_string())
        } else {
            None
        }
    };
    let call_in = visit_start.map(|t| jitter(&mut rng, t, 90));
    let call_out = visit_end.map(|t| jitter(&mut rng, t, 90));
    let call_in_gps = call_in.and_then(|_| gps(&mut rng));
    let call_out_gps = call_out.and_then(|_| gps(&mut rng));
    let device = call_out.map(|_| pick(&mut rng, &DEVICES));

    let payer = rng
        .gen_bool(0.85)
        .then(|| world.payer(rng.gen_range(0..world.payers)));
    let contract = rng
        .gen_bool(0.7)
        .then(|| world.contract(rng.gen_range(0..world.contracts)));
    let service_code = world.service_code(rng.gen_range(0..world.service_codes));
    let (bill_type, rate_range) = match rng.gen_range(0..10) {
        0..=6 => ("Hourly", 18_000..=35_000),
        7 | 8 => ("Daily", 150_000..=300_000),
        _ => ("Visit", 40_000..=90_000),
    };
    let billed =
        state == VisitState::Completed && date + Duration::days(7) <= today && rng.gen_bool(0.7);
    let worked = match (visit_start, visit_end) {
        (Some(a), Some(b)) => (b - a).num_seconds(),
        _ => minutes * 60,
    };
    let end_of_visit = visit_end.unwrap_or(sched_end);
    let updated = if date > today {
        world.now - Duration::minutes(rng.gen_range(60..60 * 24 * 40))
    } else {
        (end_of_visit + Duration::minutes(rng.gen_range(5..60 * 72)))
            .min(world.now - Duration::minutes(rng.gen_range(1..60)))
    };
    let updated_user = rng
        .gen_bool(0.95)
        .then(|| world.user(rng.gen_range(0..world.users)));
    let app_base = if kind == Kind::Visit {
        10_000_000
    } else {
        90_000_000
    };
    VisitRecord {
        id: entity_uuid(world.seed, kind, index),
        app_id: app_base + index,
        zone,
        date,
        sched_start,
        sched_end,
        visit_start,
        visit_end,
        call_in,
        call_out,
        call_in_gps,
        call_out_gps,
        device,
        caregiver: (caregiver.id, caregiver.app_id),
        provider: (provider.id, provider.app_id),
        office,
        patient: (patient.id, patient.app_id),
        payer,
        contract,
        service_code,
        bill_type,
        billed_rate_milli: rng.gen_range(rate_range),
        billed_hours_micro: worked * 1_000_000 / 3_600,
        billed,
        invoice_date: billed.then(|| date + Duration::days(14)),
        missed,
        missed_reason: missed.then(|| pick(&mut rng, &MISSED_REASONS)),
        updated: updated.with_timezone(&zone).fixed_offset(),
        updated_user,
        external_source: if rng.gen_bool(0.97) { "HHAX" } else { "EVV3P" },
        permanent_deleted: kind == Kind::DeletedVisit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::FACT_VISIT;
    use chrono::Timelike;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 21).unwrap()
    }

    #[test]
    fn cells_follow_the_fact_column_order() {
        let w = World::new(3, 10_000, today());
        let v = background_visit(&w, today(), Kind::Visit, 5);
        let cells = v.cells();
        assert_eq!(cells.len(), FACT_VISIT.columns.len());
        assert_eq!(cells[FACT_VISIT.position("Visit Id")], Cell::Uuid(v.id));
        assert_eq!(
            cells[FACT_VISIT.position("Is Missed")],
            Cell::Bool(v.missed)
        );
        assert_eq!(
            cells[FACT_VISIT.position("Visit Updated Timestamp")],
            Cell::TimestampTz(v.updated)
        );
    }

    /// The construction the module docs describe, checked over many visits:
    /// two visits of one person on one date at different agencies are a
    /// morning/evening split with a gap of at least 175 minutes.
    #[test]
    fn background_visits_of_one_person_never_share_a_date_across_agencies_without_a_wide_gap() {
        let w = World::new(11, 20_000, today());
        let mut by_person_date: std::collections::HashMap<(u64, NaiveDate), Vec<VisitRecord>> =
            Default::default();
        for i in 0..20_000 {
            let v = background_visit(&w, today(), Kind::Visit, i);
            by_person_date
                .entry((i % w.persons, v.date))
                .or_default()
                .push(v);
        }
        let mut split_days = 0;
        for visits in by_person_date.values() {
            for a in visits {
                for b in visits {
                    if a.provider.0 == b.provider.0 {
                        continue;
                    }
                    split_days += 1;
                    let (first, second) = if a.sched_start < b.sched_start {
                        (a, b)
                    } else {
                        (b, a)
                    };
                    let first_end = first
                        .visit_end
                        .unwrap_or(first.sched_end)
                        .max(first.sched_end);
                    let second_start = second
                        .visit_start
                        .unwrap_or(second.sched_start)
                        .min(second.sched_start);
                    assert!(
                        (second_start - first_end).num_minutes() >= 175,
                        "{first:?} {second:?}"
                    );
                }
            }
        }
        assert!(
            split_days > 0,
            "no split day generated: the test proves nothing"
        );
    }

    #[test]
    fn future_visits_are_scheduled_only_and_times_stay_within_the_local_day() {
        let w = World::new(5, 10_000, today());
        for i in 0..3_000 {
            let v = background_visit(&w, today(), Kind::Visit, i);
            if v.date > today() {
                assert_eq!(v.state(), VisitState::Scheduled);
            }
            let local_start = v.local(v.sched_start);
            let local_end = v.local(v.sched_end);
            assert_eq!(local_start.date_naive(), v.date);
            assert_eq!(local_end.date_naive(), v.date);
            assert!(local_start.hour() >= 6 && local_end.hour() <= 23);
            assert!(v.updated <= w.now);
        }
    }
}
