//! The generated world: agencies (providers), offices, payers, contracts,
//! service codes, users, caregivers (people with one caregiver record per
//! agency), patients and their addresses.
//!
//! Every entity is a pure function of `(seed, kind, index)`: its attributes
//! come from a ChaCha8 stream selected by the index
//! ([`entity_rng`]), so any entity can be rebuilt without storing the others
//! and generation memory does not grow with the dataset. The sizes of each
//! population derive from the requested visit count ([`World::new`]).

use chrono::{DateTime, Duration, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeZone};
use chrono_tz::Tz;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use uuid::Uuid;

/// Entity kinds: each has its own ChaCha8 key, so streams never collide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum Kind {
    /// An agency.
    Provider = 1,
    /// An agency office.
    Office = 2,
    /// A payer.
    Payer = 3,
    /// A contract.
    Contract = 4,
    /// A service code.
    ServiceCode = 5,
    /// An application user.
    User = 6,
    /// A person (one SSN).
    Person = 7,
    /// A caregiver record (person at one agency).
    Caregiver = 8,
    /// A patient.
    Patient = 9,
    /// A patient address.
    Address = 10,
    /// A background visit.
    Visit = 11,
    /// A deleted background visit.
    DeletedVisit = 12,
    /// An in-service event.
    Inservice = 13,
    /// A caregiver absence.
    Absence = 14,
    /// Planted scenario entities.
    Planted = 15,
    /// `thaw dev mutate` choices.
    Mutation = 16,
}

/// The deterministic random stream of entity `index` of `kind` under `seed`.
pub fn entity_rng(seed: u64, kind: Kind, index: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(
        seed.rotate_left(17) ^ (kind as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
    );
    rng.set_stream(index);
    rng
}

/// A stable UUID (v4 layout, lower-case text) for entity `index` of `kind`.
pub fn entity_uuid(seed: u64, kind: Kind, index: u64) -> Uuid {
    // Word position 1_000_000 keeps id bytes apart from the attribute draws.
    let mut rng = entity_rng(seed, kind, index);
    rng.set_word_pos(1_000_000);
    uuid::Builder::from_random_bytes(rng.gen()).into_uuid()
}

/// A metropolitan area: agencies, caregivers and patients of one area stay in it.
#[derive(Debug, Clone, Copy)]
pub struct Metro {
    /// City name.
    pub city: &'static str,
    /// County name.
    pub county: &'static str,
    /// Two-letter state.
    pub state: &'static str,
    /// IANA zone of the agencies there (their TIMESTAMP_TZ offsets).
    pub zone: Tz,
    /// Centre latitude.
    pub lat: f64,
    /// Centre longitude.
    pub lon: f64,
    /// First three ZIP digits.
    pub zip3: u32,
}

/// The metros, several US time zones (Eastern, Central, Mountain incl. Arizona without DST, Pacific).
pub const METROS: [Metro; 7] = [
    Metro {
        city: "Brooklyn",
        county: "Kings",
        state: "NY",
        zone: chrono_tz::America::New_York,
        lat: 40.650,
        lon: -73.950,
        zip3: 112,
    },
    Metro {
        city: "Philadelphia",
        county: "Philadelphia",
        state: "PA",
        zone: chrono_tz::America::New_York,
        lat: 39.952,
        lon: -75.165,
        zip3: 191,
    },
    Metro {
        city: "Chicago",
        county: "Cook",
        state: "IL",
        zone: chrono_tz::America::Chicago,
        lat: 41.878,
        lon: -87.630,
        zip3: 606,
    },
    Metro {
        city: "Houston",
        county: "Harris",
        state: "TX",
        zone: chrono_tz::America::Chicago,
        lat: 29.760,
        lon: -95.370,
        zip3: 770,
    },
    Metro {
        city: "Denver",
        county: "Denver",
        state: "CO",
        zone: chrono_tz::America::Denver,
        lat: 39.739,
        lon: -104.990,
        zip3: 802,
    },
    Metro {
        city: "Phoenix",
        county: "Maricopa",
        state: "AZ",
        zone: chrono_tz::America::Phoenix,
        lat: 33.448,
        lon: -112.074,
        zip3: 850,
    },
    Metro {
        city: "Los Angeles",
        county: "Los Angeles",
        state: "CA",
        zone: chrono_tz::America::Los_Angeles,
        lat: 34.052,
        lon: -118.244,
        zip3: 900,
    },
];

/// Provider slot → metro index: providers `r` with `r % 10 == s` are in metro `METRO_OF_SLOT[s]`
/// (New York has four slots in ten, the state the legacy system serves most).
const METRO_OF_SLOT: [usize; 10] = [0, 0, 0, 0, 1, 2, 3, 4, 5, 6];

/// Metro of provider `r`.
pub fn provider_metro(r: u64) -> &'static Metro {
    &METROS[METRO_OF_SLOT[(r % 10) as usize]]
}

const FIRST_NAMES: [&str; 24] = [
    "Maria", "Jose", "Ana", "Luis", "Fatima", "Mohammed", "Olga", "Ivan", "Grace", "Samuel", "Mei",
    "Wei", "Aisha", "Kwame", "Rosa", "Carlos", "Yuki", "Priya", "Rahul", "Chen", "Elena", "David",
    "Sarah", "James",
];
const LAST_NAMES: [&str; 24] = [
    "Garcia",
    "Rodriguez",
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Miller",
    "Davis",
    "Martinez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Perez",
    "Thompson",
    "White",
    "Harris",
];
const STREETS: [&str; 12] = [
    "Ocean Ave",
    "Kings Hwy",
    "Main St",
    "Broadway",
    "Park Pl",
    "Elm St",
    "Maple Ave",
    "Oak St",
    "Washington Ave",
    "Lincoln Rd",
    "Church Ave",
    "Bay Pkwy",
];

/// Pick a name from a list.
pub fn pick<'a, R: Rng>(rng: &mut R, list: &[&'a str]) -> &'a str {
    list[rng.gen_range(0..list.len())]
}

/// Population sizes for one seed and visit count.
#[derive(Debug, Clone)]
pub struct World {
    /// Generator seed.
    pub seed: u64,
    /// Background agencies.
    pub providers: u64,
    /// Background people (distinct SSNs).
    pub persons: u64,
    /// Patients per agency.
    pub patients_per_provider: u64,
    /// Payers.
    pub payers: u64,
    /// Contracts.
    pub contracts: u64,
    /// Service codes.
    pub service_codes: u64,
    /// Application users.
    pub users: u64,
    /// Reference "now" of the seed run: the start of `today` in New York. No
    /// generated timestamp is later, so `thaw dev mutate` run on `today` at
    /// the real clock always moves the `Visit Updated Timestamp` watermark on.
    pub now: DateTime<FixedOffset>,
}

/// An agency.
#[derive(Debug, Clone)]
pub struct Provider {
    /// `Provider Id`.
    pub id: Uuid,
    /// `Application Provider Id`.
    pub app_id: u64,
    /// `Provider Name`.
    pub name: String,
    /// Where it is.
    pub metro: &'static Metro,
    /// `Is Active`.
    pub active: bool,
    /// `Is Demo`.
    pub demo: bool,
    /// Offices (1–3), numbered `r * 4 + o`.
    pub offices: u64,
}

/// One caregiver record: a person at one agency.
#[derive(Debug, Clone)]
pub struct CaregiverRecord {
    /// `Caregiver Id`.
    pub id: Uuid,
    /// `Application Caregiver Id`.
    pub app_id: u64,
    /// Agency index.
    pub provider: u64,
    /// `SSN` as stored (may carry spaces, be blank or NULL).
    pub ssn: Option<String>,
}

/// A person: one SSN, working for `agencies.len()` agencies of one metro.
#[derive(Debug, Clone)]
pub struct Person {
    /// Index.
    pub index: u64,
    /// Trimmed SSN, `9XX-XX-XXXX`.
    pub ssn: String,
    /// First name.
    pub first: &'static str,
    /// Last name.
    pub last: &'static str,
    /// Distinct agencies (1–3).
    pub agencies: Vec<u64>,
}

/// A patient of one agency with its primary GPS address.
#[derive(Debug, Clone)]
pub struct Patient {
    /// `Patient Id`.
    pub id: Uuid,
    /// `Application Patient Id`.
    pub app_id: u64,
    /// Latitude of the primary GPS address.
    pub lat: f64,
    /// Longitude of the primary GPS address.
    pub lon: f64,
}

impl World {
    /// Population sizes for `visits` background visits (memory-free: only counts).
    pub fn new(seed: u64, visits: u64, today: NaiveDate) -> World {
        let providers = (visits / 4_000).clamp(30, 5_000);
        World {
            seed,
            providers,
            persons: (visits / 150).max(60),
            patients_per_provider: (visits / (providers * 40)).max(4),
            payers: 12,
            contracts: 20,
            service_codes: 15,
            users: (providers * 2).max(20),
            now: midnight(chrono_tz::America::New_York, today),
        }
    }

    /// Agency `r`.
    pub fn provider(&self, r: u64) -> Provider {
        let mut rng = entity_rng(self.seed, Kind::Provider, r);
        let metro = provider_metro(r);
        let u: f64 = rng.gen();
        Provider {
            id: entity_uuid(self.seed, Kind::Provider, r),
            app_id: 10_000 + r,
            name: format!(
                "{} {} Home Care #{}",
                metro.city,
                pick(&mut rng, &LAST_NAMES),
                r
            ),
            metro,
            active: u >= 0.04,
            demo: (0.04..0.06).contains(&u),
            offices: rng.gen_range(1..=3),
        }
    }

    /// Person `p` and their agencies (distinct, same metro).
    pub fn person(&self, p: u64) -> Person {
        let mut rng = entity_rng(self.seed, Kind::Person, p);
        let u: f64 = rng.gen();
        let count = if u < 0.68 {
            1
        } else if u < 0.92 {
            2
        } else {
            3
        };
        let slot = rng.gen_range(0..10u64);
        let blocks = self.providers.div_ceil(10);
        let mut agencies = Vec::with_capacity(count);
        while agencies.len() < count {
            let r = rng.gen_range(0..blocks) * 10 + slot;
            if r < self.providers && !agencies.contains(&r) {
                agencies.push(r);
            }
        }
        let d = p + 1_000_000;
        Person {
            index: p,
            ssn: format!(
                "{:03}-{:02}-{:04}",
                900 + (d / 1_000_000) % 100,
                (d / 10_000) % 100,
                d % 10_000
            ),
            first: pick(&mut rng, &FIRST_NAMES),
            last: pick(&mut rng, &LAST_NAMES),
            agencies,
        }
    }

    /// Caregiver record `j` (0-based agency position) of person `person`.
    pub fn caregiver(&self, person: &Person, j: usize) -> CaregiverRecord {
        let index = person.index * 4 + j as u64;
        let mut rng = entity_rng(self.seed, Kind::Caregiver, index);
        let u: f64 = rng.gen();
        let ssn = if u < 0.01 {
            None
        } else if u < 0.02 {
            Some("   ".to_string())
        } else if u < 0.12 {
            Some(format!(" {}  ", person.ssn))
        } else {
            Some(person.ssn.clone())
        };
        CaregiverRecord {
            id: entity_uuid(self.seed, Kind::Caregiver, index),
            app_id: 200_000 + index,
            provider: person.agencies[j],
            ssn,
        }
    }

    /// Patient `k` of agency `r`.
    pub fn patient(&self, r: u64, k: u64) -> Patient {
        let q = r * self.patients_per_provider + k;
        let mut rng = entity_rng(self.seed, Kind::Patient, q);
        let metro = provider_metro(r);
        // Within ~0.12 degrees (~8 miles) of the centre: a multi-agency
        // caregiver's patients are at most ~25 miles apart.
        let lat = round6(metro.lat + rng.gen_range(-0.12..0.12));
        let lon = round6(metro.lon + rng.gen_range(-0.12..0.12));
        Patient {
            id: entity_uuid(self.seed, Kind::Patient, q),
            app_id: 3_000_000 + q,
            lat,
            lon,
        }
    }

    /// Global patient index of patient `k` of agency `r`.
    pub fn patient_index(&self, r: u64, k: u64) -> u64 {
        r * self.patients_per_provider + k
    }

    /// Office `o` of agency `r`: (id, application id).
    pub fn office(&self, r: u64, o: u64) -> (Uuid, u64) {
        let index = r * 4 + o;
        (entity_uuid(self.seed, Kind::Office, index), 50_000 + index)
    }

    /// Payer `i`: (id, application id).
    pub fn payer(&self, i: u64) -> (Uuid, u64) {
        (entity_uuid(self.seed, Kind::Payer, i), 700 + i)
    }

    /// Contract `i`: (id, application id).
    pub fn contract(&self, i: u64) -> (Uuid, u64) {
        (entity_uuid(self.seed, Kind::Contract, i), 900 + i)
    }

    /// Service code `i`: (id, application id).
    pub fn service_code(&self, i: u64) -> (Uuid, u64) {
        (entity_uuid(self.seed, Kind::ServiceCode, i), 40 + i)
    }

    /// User `i`: (id, application id).
    pub fn user(&self, i: u64) -> (Uuid, u64) {
        (entity_uuid(self.seed, Kind::User, i), 80_000 + i)
    }
}

/// A street address line.
pub fn street<R: Rng>(rng: &mut R) -> String {
    format!("{} {}", rng.gen_range(1..9999), pick(rng, &STREETS))
}

/// Round to 6 decimals (GPS precision in the samples).
pub fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

/// The instant of wall-clock `local` in `zone` with that zone's offset
/// (earliest mapping in a fall-back hour; a spring-forward gap moves on by an hour).
pub fn wall(zone: Tz, local: NaiveDateTime) -> DateTime<FixedOffset> {
    match zone.from_local_datetime(&local).earliest() {
        Some(t) => t.fixed_offset(),
        None => wall(zone, local + Duration::hours(1)),
    }
}

/// The instant of wall-clock `local` in `zone` taking the *later* of two
/// mappings in a fall-back hour (the second 01:30 of a November Sunday).
pub fn wall_later(zone: Tz, local: NaiveDateTime) -> DateTime<FixedOffset> {
    match zone.from_local_datetime(&local).latest() {
        Some(t) => t.fixed_offset(),
        None => wall(zone, local),
    }
}

/// Local midnight of `date` in `zone` (how "Visit Date" is stored).
pub fn midnight(zone: Tz, date: NaiveDate) -> DateTime<FixedOffset> {
    wall(zone, date.and_time(NaiveTime::MIN))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entities_are_pure_functions_of_seed_and_index() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 21).unwrap();
        let w = World::new(7, 100_000, today);
        assert_eq!(w.person(12).ssn, w.person(12).ssn);
        assert_eq!(
            w.provider(3).id,
            World::new(7, 100_000, today).provider(3).id
        );
        assert_ne!(
            w.provider(3).id,
            World::new(8, 100_000, today).provider(3).id
        );
        assert_ne!(
            entity_uuid(7, Kind::Visit, 1),
            entity_uuid(7, Kind::DeletedVisit, 1)
        );
    }

    #[test]
    fn multi_agency_people_work_for_distinct_agencies_of_one_metro() {
        let w = World::new(1, 100_000, NaiveDate::from_ymd_opt(2026, 11, 21).unwrap());
        let mut multi = 0;
        for p in 0..500 {
            let person = w.person(p);
            let mut a = person.agencies.clone();
            a.dedup();
            assert_eq!(a.len(), person.agencies.len());
            let metro = provider_metro(person.agencies[0]).city;
            assert!(person
                .agencies
                .iter()
                .all(|r| provider_metro(*r).city == metro && *r < w.providers));
            multi += usize::from(person.agencies.len() > 1);
        }
        assert!(
            multi > 100 && multi < 250,
            "{multi} of 500 people work for several agencies"
        );
    }

    #[test]
    fn ssns_are_unique_and_in_the_legacy_shape() {
        let w = World::new(1, 1_000_000, NaiveDate::from_ymd_opt(2026, 11, 21).unwrap());
        let a = w.person(0).ssn;
        let b = w.person(6_666).ssn;
        assert_ne!(a, b);
        assert_eq!(a.len(), 11);
        assert_eq!(&a[3..4], "-");
    }

    #[test]
    fn wall_clock_offsets_follow_daylight_saving_time() {
        let ny = chrono_tz::America::New_York;
        let jan = NaiveDate::from_ymd_opt(2026, 1, 15)
            .unwrap()
            .and_hms_opt(9, 0, 0)
            .unwrap();
        let jul = NaiveDate::from_ymd_opt(2026, 7, 15)
            .unwrap()
            .and_hms_opt(9, 0, 0)
            .unwrap();
        assert_eq!(wall(ny, jan).offset().local_minus_utc(), -5 * 3600);
        assert_eq!(wall(ny, jul).offset().local_minus_utc(), -4 * 3600);
        assert_eq!(
            wall(chrono_tz::America::Phoenix, jul)
                .offset()
                .local_minus_utc(),
            -7 * 3600
        );
        let fold = NaiveDate::from_ymd_opt(2026, 11, 1)
            .unwrap()
            .and_hms_opt(1, 30, 0)
            .unwrap();
        assert_eq!(wall(ny, fold).offset().local_minus_utc(), -4 * 3600);
        assert_eq!(wall_later(ny, fold).offset().local_minus_utc(), -5 * 3600);
    }
}
