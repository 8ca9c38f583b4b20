//! Incremental, key-scoped conflict runs (docs/conflicts.md §D1) against a
//! real PostgreSQL.
//!
//! The heart is a property test: random sequences of source mutations
//! (insert; update times, date, SSN, provider; delete; mark missed or not;
//! "today" moving forward so that dates enter the window) on a generated
//! dataset of a few hundred visits with many collisions are applied to two
//! identical databases. After every step one database runs incremental, the
//! other a full-window run, and their `conflictvisitmaps`/`conflicts` tables
//! must be identical on every column except the timestamps of writes
//! (`ID`, `CreatedDate`, `UpdatedDate`, `CRDATEUNIQUE`, `RECORDEDDATETIME`;
//! `ResolveDate` is compared as set/not set).
//!
//! Run under tests/harness.py (`make test`), which exports THAW_PG_*.

use chrono::{Duration, NaiveDate};
use thaw_engine::config::ConflictSettings;
use thaw_engine::conflicts::{run, DetectionMode};
use thaw_engine::contract::ConflictCreateResponse;
use thaw_test_support::{fresh_pg, unique};
use tokio_postgres::Client;

const SSNS: u64 = 12;
const PROVIDERS: u64 = 3;
const PATIENTS: u64 = 3;
const FIRST_TODAY: &str = "2025-03-10";

fn settings(today: NaiveDate) -> ConflictSettings {
    ConflictSettings { database: "unused".into(), today: Some(today.format("%Y-%m-%d").to_string()), ..Default::default() }
}

/// splitmix64: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn provider(p: u64) -> String {
    format!("00000000-0000-0000-0003-{p:012}")
}
fn caregiver(ssn: u64, p: u64) -> String {
    format!("00000000-0000-0000-0002-{:012}", ssn * 10 + p)
}
fn visit(n: u64) -> String {
    format!("00000000-0000-0000-0001-{n:012}")
}
fn patient(e: u64) -> String {
    format!("00000000-0000-0000-0004-{e:012}")
}

/// Providers, caregivers (each SSN at every provider, some padded with
/// spaces), patients with GPS addresses a few miles apart, SETTINGS and the legacy MPH bands.
fn reference_sql() -> String {
    let mut sql = String::new();
    for p in 0..PROVIDERS {
        sql.push_str(&format!(
            "INSERT INTO analytics.dimprovider (\"Provider Id\", \"Application Provider Id\", \"Provider Name\", \"Is Active\", \"Is Demo\", \"Address State\") \
             VALUES ('{}', {}, 'Agency {p}', true, false, 'NY');\n",
            provider(p),
            p + 1
        ));
    }
    for s in 0..SSNS {
        for p in 0..PROVIDERS {
            let ssn = if p == 1 { format!(" 100-00-{s:04} ") } else { format!("100-00-{s:04}") };
            sql.push_str(&format!(
                "INSERT INTO analytics.dimcaregiver (\"Caregiver Id\", \"Application Caregiver Id\", \"Caregiver Fullname\", \"SSN\") VALUES ('{}', {}, 'Aide {s}', '{ssn}');\n",
                caregiver(s, p),
                s * 10 + p
            ));
        }
    }
    let points = [(40.597095, -73.998993, "11214"), (40.654140, -73.935455, "11203"), (40.6, -73.95, "11210")];
    for e in 0..PATIENTS {
        let (lat, lon, zip) = points[e as usize];
        sql.push_str(&format!(
            "INSERT INTO analytics.dimpatient (\"Patient Id\", \"Application Patient Id\", \"Patient Name\") VALUES ('{pid}', {n}, 'Pat {e}');\n\
             INSERT INTO analytics.dimpatientaddress (\"Patient Address Id\", \"Patient Id\", \"Address Type\", \"Primary Address\", \"Zip Code\", \"Address State\", \
             \"Latitude\", \"Longitude\", \"Application Created UTC Timestamp\") VALUES ('00000000-0000-0000-0005-{e:012}', '{pid}', 'GPS', true, '{zip}', 'NY', {lat}, {lon}, '2020-01-01Z');\n",
            pid = patient(e),
            n = 20 + e
        ));
    }
    sql.push_str(
        "INSERT INTO conflict.settings (\"ID\", \"ExtraDistance\", \"ExtraDistancePer\", \"InProgressFlag\") VALUES (1, 0, 1.0, 2);\n\
         INSERT INTO conflict.mph (\"From\", \"To\", \"AverageMilesPerHour\") VALUES (0, 2, 2), (2, 5, 6), (5, 10, 15), (10, 25, 25);\n\
         INSERT INTO conflict.excluded_agency (\"ProviderID\") VALUES (NULL);\n\
         INSERT INTO conflict.excluded_ssn (\"SSN\") VALUES (NULL);\n",
    );
    sql
}

/// A live visit of the generator: what updates need to stay consistent.
#[derive(Clone, Copy)]
struct Live {
    n: u64,
    ssn: u64,
    provider: u64,
}

/// Generates the dataset and the mutations as SQL text, so both twins get identical statements.
struct Gen {
    rng: Rng,
    next: u64,
    live: Vec<Live>,
}

impl Gen {
    fn new(seed: u64) -> Gen {
        Gen { rng: Rng(seed), next: 1, live: Vec::new() }
    }

    /// A service date: mostly around today (some before it, so rule 1/4 pairs
    /// cannot start conflicts), a few near the end of the window.
    fn date(&mut self) -> NaiveDate {
        let base: NaiveDate = FIRST_TODAY.parse().unwrap();
        if self.rng.below(10) == 0 {
            base + Duration::days(44 + self.rng.below(4) as i64)
        } else {
            base + Duration::days(self.rng.below(8) as i64 - 4)
        }
    }

    /// Scheduled and actual times on `date` (wall clock of New York): 30-minute grid, many collisions.
    fn times(&mut self, date: NaiveDate) -> String {
        let at = |m: u64| format!("('{date} {:02}:{:02}'::timestamp AT TIME ZONE 'America/New_York')", m / 60, m % 60);
        let start = 8 * 60 + 30 * self.rng.below(12);
        let end = start + 30 * (1 + self.rng.below(6));
        let (vs, ve) = match self.rng.below(3) {
            0 => ("NULL".to_string(), "NULL".to_string()),
            1 => (at(start), at(end)),
            _ => (at(start + 15), at(end + 15)),
        };
        format!("\"Scheduled Start Time\" = {}, \"Scheduled End Time\" = {}, \"Visit Start Time\" = {vs}, \"Visit End Time\" = {ve}", at(start), at(end))
    }

    fn insert(&mut self, ts: &str) -> String {
        let n = self.next;
        self.next += 1;
        let (ssn, p, e) = (self.rng.below(SSNS), self.rng.below(PROVIDERS), self.rng.below(PATIENTS));
        let date = self.date();
        self.live.push(Live { n, ssn, provider: p });
        format!(
            "INSERT INTO analytics.factvisitcallperformance_cr (\"Visit Id\", \"Application Visit Id\", \"Visit Date\", \"Caregiver Id\", \"Provider Id\", \
             \"Application Provider Id\", \"Provider Patient Id\", \"Billed\", \"Billed Rate\", \"Bill Type\", \"Is Missed\", \"Visit Updated Timestamp\") \
             VALUES ('{v}', {n}, '{date}', '{cg}', '{pr}', {ap}, '{pa}', 'yes', 25.5, 'Hourly', false, {ts});\n\
             UPDATE analytics.factvisitcallperformance_cr SET {times} WHERE \"Application Visit Id\" = {n};\n",
            v = visit(n),
            cg = caregiver(ssn, p),
            pr = provider(p),
            ap = p + 1,
            pa = patient(e),
            times = self.times(date),
        )
    }

    /// One random mutation stamped with change timestamp `ts`.
    fn mutation(&mut self, ts: &str) -> String {
        let kind = self.rng.below(8);
        if kind == 0 || self.live.is_empty() {
            return self.insert(ts);
        }
        let i = self.rng.below(self.live.len() as u64) as usize;
        let v = self.live[i];
        let set = |what: String| format!("UPDATE analytics.factvisitcallperformance_cr SET {what}, \"Visit Updated Timestamp\" = {ts} WHERE \"Application Visit Id\" = {};\n", v.n);
        match kind {
            1 | 7 => {
                // New times on the visit's current date (scheduled, or actual for 7).
                let (s, e) = if kind == 1 { ("Scheduled Start Time", "Scheduled End Time") } else { ("Visit Start Time", "Visit End Time") };
                let start = 8 * 60 + 30 * self.rng.below(12);
                let len = 30 * (1 + self.rng.below(6));
                set(format!(
                    "\"{s}\" = (\"Visit Date\" + make_interval(mins => {start}))::timestamp AT TIME ZONE 'America/New_York', \
                     \"{e}\" = (\"Visit Date\" + make_interval(mins => {}))::timestamp AT TIME ZONE 'America/New_York'",
                    start + len
                ))
            }
            2 => {
                let date = self.date();
                set(format!("\"Visit Date\" = '{date}', {}", self.times(date)))
            }
            3 => {
                let ssn = (v.ssn + 1 + self.rng.below(SSNS - 1)) % SSNS;
                self.live[i].ssn = ssn;
                set(format!("\"Caregiver Id\" = '{}'", caregiver(ssn, v.provider)))
            }
            4 => {
                let p = (v.provider + 1 + self.rng.below(PROVIDERS - 1)) % PROVIDERS;
                self.live[i].provider = p;
                set(format!("\"Provider Id\" = '{}', \"Application Provider Id\" = {}, \"Caregiver Id\" = '{}'", provider(p), p + 1, caregiver(v.ssn, p)))
            }
            5 => {
                self.live.swap_remove(i);
                format!(
                    "INSERT INTO analytics.factvisitcallperformance_deleted_cr (\"Visit Id\", \"Application Visit Id\", \"Visit Date\", \"Caregiver Id\", \"Provider Id\", \"Visit Updated Timestamp\")\n\
                     SELECT \"Visit Id\", \"Application Visit Id\", \"Visit Date\", \"Caregiver Id\", \"Provider Id\", {ts} FROM analytics.factvisitcallperformance_cr WHERE \"Application Visit Id\" = {n};\n\
                     DELETE FROM analytics.factvisitcallperformance_cr WHERE \"Application Visit Id\" = {n};\n",
                    n = v.n
                )
            }
            _ => set("\"Is Missed\" = NOT coalesce(\"Is Missed\", false)".into()),
        }
    }
}

/// Rows of both tables with the columns that must agree (see the module docs).
async fn table_rows(client: &Client) -> (Vec<String>, Vec<String>) {
    let cvm = client
        .query(
            r#"SELECT ((to_jsonb(c) - 'ID' - 'CreatedDate' - 'UpdatedDate' - 'CRDATEUNIQUE' - 'ResolveDate')::text
                      || ' resolved=' || (c."ResolveDate" IS NOT NULL)::text)
               FROM conflict.conflictvisitmaps c ORDER BY c."VisitID", c."ConVisitID""#,
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let conflicts = client
        .query(
            r#"SELECT ((to_jsonb(k) - 'ID' - 'CreatedDate' - 'RECORDEDDATETIME' - 'ResolveDate')::text
                      || ' resolved=' || (k."ResolveDate" IS NOT NULL)::text)
               FROM conflict.conflicts k ORDER BY k."CONFLICTID""#,
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    (cvm, conflicts)
}

/// Two databases with the same data: `inc` runs incremental, `full` full-window.
struct Twin {
    inc: Client,
    full: Client,
    today: NaiveDate,
}

impl Twin {
    async fn new(name: &str, setup: &str) -> Twin {
        let inc = fresh_pg(&unique(&format!("{name}_i"))).await;
        let full = fresh_pg(&unique(&format!("{name}_f"))).await;
        for c in [&inc, &full] {
            c.batch_execute(&reference_sql()).await.expect("reference data");
            c.batch_execute(setup).await.expect("initial visits");
        }
        Twin { inc, full, today: FIRST_TODAY.parse().unwrap() }
    }

    async fn exec(&self, sql: &str) {
        for c in [&self.inc, &self.full] {
            c.batch_execute(sql).await.unwrap_or_else(|e| panic!("{e}:\n{sql}"));
        }
    }

    /// Run both and compare; returns the incremental summary.
    async fn step(&mut self, context: &str) -> ConflictCreateResponse {
        let cfg = settings(self.today);
        let inc = run(&mut self.inc, &cfg, DetectionMode::Incremental).await.unwrap_or_else(|e| panic!("{context}: incremental: {e}"));
        run(&mut self.full, &cfg, DetectionMode::Full).await.unwrap_or_else(|e| panic!("{context}: full: {e}"));
        let (a, b) = (table_rows(&self.inc).await, table_rows(&self.full).await);
        assert_eq!(a.0.len(), b.0.len(), "{context}: pair counts differ (incremental {inc:?})");
        for (x, y) in a.0.iter().zip(&b.0) {
            assert_eq!(x, y, "{context}: a pair differs between incremental and full");
        }
        assert_eq!(a.1, b.1, "{context}: conflicts differ between incremental and full");
        inc
    }
}

/// The change timestamp of step `step` (an SQL expression), later than the initial data.
fn stamp(step: u64) -> String {
    format!("('2025-03-02 00:00:00Z'::timestamptz + interval '{step} hours')")
}

/// The initial dataset of `visits` visits (change timestamp 2025-03-01).
fn dataset(g: &mut Gen, visits: usize) -> String {
    (0..visits).map(|_| g.insert("'2025-03-01 00:00:00Z'::timestamptz")).collect()
}

/// Property: after every step of random mutations an incremental run leaves
/// the same tables as a full-window run (5 seeds × 8 steps).
#[tokio::test]
async fn conflict_incremental_equals_full_on_random_mutation_sequences() {
    for seed in 1..=5u64 {
        let mut g = Gen::new(seed * 7919);
        let initial = dataset(&mut g, 300);
        let mut twin = Twin::new(&format!("cf_prop{seed}"), &initial).await;
        let first = twin.step(&format!("seed {seed} initial")).await;
        assert_eq!(first.mode.as_deref(), Some("full"), "the first run is full: {first:?}");
        assert!(first.inserted > 50, "the dataset collides a lot: {first:?}");
        let mut total = 0;
        for step in 1..=8u64 {
            if step % 3 == 0 {
                twin.today += Duration::days(1);
            }
            let mutations = 1 + g.rng.below(12);
            let sql: String = (0..mutations).map(|_| g.mutation(&stamp(step))).collect();
            twin.exec(&sql).await;
            let context = format!("seed {seed} step {step} (today {}), mutations:\n{sql}", twin.today);
            let summary = twin.step(&context).await;
            assert_eq!(summary.mode.as_deref(), Some("incremental"), "{context}: {summary:?}");
            assert!(summary.visits_considered < first.visits_considered, "{context}: an incremental run reads only the touched keys: {summary:?}");
            total += summary.inserted + summary.updated + summary.resolved;
        }
        assert!(total > 0, "seed {seed}: the mutations changed something");
    }
}
