//! Incremental, key-scoped conflict runs (docs/conflicts.md §D1) against a
//! real PostgreSQL.
//!
//! The heart is a property test: random sequences of source mutations
//! (insert; update times, date, SSN, provider; delete; mark missed or not;
//! move a patient's GPS address; add or move an in-service or PTO event;
//! an application's answer: a conflict's no-response flag toggled, a pair
//! whitelisted, a conflict resolved by a user;
//! "today" moving forward so that dates enter the window) on a generated
//! dataset of a few hundred visits with many collisions are applied to two
//! identical databases. After every step one database runs incremental, the
//! other a full-window run, and their `conflictvisitmaps`/`conflicts` tables
//! must be identical on every column except the timestamps of writes
//! (`ID`, `CreatedDate`, `UpdatedDate`, `CRDATEUNIQUE`, `G_CRDATEUNIQUE`, `RECORDEDDATETIME`;
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
    thaw_test_support::conflicts::settings_on(&today.format("%Y-%m-%d").to_string())
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
    /// Ids of the in-service (`[0]`) and absence (`[1]`) events inserted so far.
    events: [Vec<u64>; 2],
}

impl Gen {
    fn new(seed: u64) -> Gen {
        Gen { rng: Rng(seed), next: 1, live: Vec::new(), events: [Vec::new(), Vec::new()] }
    }

    /// An in-service (`absence` false: 30 minutes to 3 hours on the grid of
    /// [`Gen::times`]) or absence (whole days, one or two) event: a new one of
    /// a random caregiver and agency, or one inserted before moved to another
    /// date, stamped `ts`. Events are never removed: an incremental run leaves
    /// a vanished event's rows to the next full run (docs/conflicts.md §5.3).
    fn event(&mut self, absence: bool, ts: &str) -> String {
        let date = self.date();
        let at = |d: NaiveDate, m: u64| format!("('{d} {:02}:{:02}'::timestamp AT TIME ZONE 'America/New_York')", m / 60, m % 60);
        let (start, end) = if absence {
            (at(date, 0), at(date + Duration::days(self.rng.below(2) as i64), 23 * 60))
        } else {
            let start = 8 * 60 + 30 * self.rng.below(12);
            (at(date, start), at(date, start + 30 * (1 + self.rng.below(6))))
        };
        let (table, id, caregiver_col, start_col, end_col) = if absence {
            ("factcaregiverabsence", "Caregiver Vacation Id", "Global Caregiver Id", "Start Date", "End Date")
        } else {
            ("factcaregiverinservice", "Application Caregiver Inservice Id", "Caregiver Id", "Inservice start date", "Inservice end date")
        };
        let known = &self.events[usize::from(absence)];
        if !known.is_empty() && self.rng.below(2) == 0 {
            let n = known[self.rng.below(known.len() as u64) as usize];
            return format!(
                "UPDATE analytics.{table} SET \"{start_col}\" = {start}, \"{end_col}\" = {end}, \"Updated Datatimestamp\" = {ts} WHERE \"{id}\" = {n};\n"
            );
        }
        let n = self.next;
        self.next += 1;
        self.events[usize::from(absence)].push(n);
        let (ssn, p) = (self.rng.below(SSNS), self.rng.below(PROVIDERS));
        format!(
            "INSERT INTO analytics.{table} (\"{id}\", \"Environment\", \"{caregiver_col}\", \"Provider Id\", \"{start_col}\", \"{end_col}\", \"Updated Datatimestamp\") \
             VALUES ({n}, 'prod', '{cg}', '{pr}', {start}, {end}, {ts});\n",
            cg = caregiver(ssn, p),
            pr = provider(p),
        )
    }

    /// An application's answer on a stored row, picked by its position in a
    /// deterministic order (the twins hold the same rows): a conflict's
    /// `NoResponseFlag` toggled, a pair whitelisted (`W`), resolved (`R`) or
    /// reopened (`U`) by a user (docs/conflicts.md §D26), or a conflict
    /// resolved (`R`) by a user.
    fn answer(&mut self) -> String {
        let k = self.rng.below(60);
        match self.rng.below(3) {
            0 => format!(
                "UPDATE conflict.conflicts SET \"NoResponseFlag\" = CASE WHEN \"NoResponseFlag\" = 'Yes' THEN NULL ELSE 'Yes' END \
                 WHERE \"CONFLICTID\" = (SELECT \"CONFLICTID\" FROM conflict.conflicts ORDER BY 1 OFFSET {k} LIMIT 1);\n"
            ),
            1 => format!(
                "UPDATE conflict.conflictvisitmaps SET \"StatusFlag\" = '{status}' \
                 WHERE (\"VisitID\", \"ConVisitID\") = (SELECT \"VisitID\", \"ConVisitID\" FROM conflict.conflictvisitmaps ORDER BY 1, 2 OFFSET {k} LIMIT 1);\n",
                status = ["W", "R", "U"][k as usize % 3],
            ),
            _ => format!(
                "UPDATE conflict.conflicts SET \"StatusFlag\" = 'R' \
                 WHERE \"CONFLICTID\" = (SELECT \"CONFLICTID\" FROM conflict.conflicts ORDER BY 1 OFFSET {k} LIMIT 1);\n"
            ),
        }
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
        let kind = self.rng.below(12);
        match kind {
            9 | 10 => return self.event(kind == 10, ts),
            11 => return self.answer(),
            _ => {}
        }
        if kind == 8 {
            // A patient's GPS address moves (rule 7 distances change for all its visits).
            let e = self.rng.below(PATIENTS);
            let dlat = self.rng.below(5) as f64 * 0.01;
            return format!(
                "UPDATE analytics.dimpatientaddress SET \"Latitude\" = \"Latitude\" + {dlat}, \"Updated Datatimestamp\" = {ts} WHERE \"Patient Id\" = '{}';\n",
                patient(e)
            );
        }
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
            r#"SELECT ((to_jsonb(c) - 'ID' - 'CreatedDate' - 'UpdatedDate' - 'CRDATEUNIQUE' - 'G_CRDATEUNIQUE' - 'ResolveDate')::text
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
/// the same tables as a full-window run (5 seeds × 8 steps). The seeds
/// together produce event pairs and the application's answers in the
/// stored rows (checked at the end, so that the mutations cannot silently stop mattering).
#[tokio::test]
async fn conflict_incremental_equals_full_on_random_mutation_sequences() {
    let (mut event_pairs, mut answered) = (0, 0);
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
            // With only three patients, an address move touches most keys; otherwise few are read.
            if !sql.contains("dimpatientaddress") {
                assert!(summary.visits_considered < first.visits_considered, "{context}: an incremental run reads only the touched keys: {summary:?}");
            }
            total += summary.inserted + summary.updated + summary.resolved;
            event_pairs += summary.event_pairs_detected;
        }
        assert!(total > 0, "seed {seed}: the mutations changed something");
        answered += twin
            .inc
            .query_one(
                r#"SELECT (SELECT count(*) FROM conflict.conflicts WHERE "NoResponseFlag" = 'Yes' OR "StatusFlag" = 'R')
                        + (SELECT count(*) FROM conflict.conflictvisitmaps WHERE "StatusFlag" = 'W')"#,
                &[],
            )
            .await
            .unwrap()
            .get::<_, i64>(0);
        // And a full run over the incrementally maintained tables has nothing left to do.
        let full = run(&mut twin.inc, &settings(twin.today), DetectionMode::Full).await.unwrap();
        assert_eq!((full.inserted, full.updated, full.resolved, full.conflicts_created), (0, 0, 0, 0), "seed {seed}: {full:?}");
    }
    assert!(event_pairs > 0 && answered > 0, "in-service/PTO pairs {event_pairs}, answered or resolved rows {answered}");
}

/// `(VisitID, ConVisitID)` → `(SSN, VisitDate, UpdatedDate)` of every stored pair, as text.
async fn updated_dates(client: &Client) -> std::collections::BTreeMap<(String, String), (String, String, Option<String>)> {
    client
        .query(
            r#"SELECT "VisitID"::text, "ConVisitID"::text, "SSN"::text, "VisitDate"::text, "UpdatedDate"::text FROM conflict.conflictvisitmaps"#,
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| ((r.get(0), r.get(1)), (r.get(2), r.get(3), r.get(4))))
        .collect()
}

/// An open pair's primary visit: (application visit id, VisitID text, SSN, VisitDate text).
async fn a_visit_with_pairs(client: &Client) -> (i64, String, String, String) {
    let r = client
        .query_one(
            r#"SELECT "AppVisitID", "VisitID"::text, "SSN"::text, "VisitDate"::text FROM conflict.conflictvisitmaps
               WHERE "StatusFlag" = 'U' ORDER BY "AppVisitID" LIMIT 1"#,
            &[],
        )
        .await
        .unwrap();
    (r.get(0), r.get(1), r.get(2), r.get(3))
}

/// Only the key of the changed visit is read and written: the run reads
/// exactly that key's candidates, and every stored pair of another key keeps
/// its `UpdatedDate`; a run without changes reads and writes nothing.
#[tokio::test]
async fn conflict_incremental_touches_only_the_keys_of_changed_visits() {
    let mut g = Gen::new(42);
    let mut twin = Twin::new("cf_inc_keys", &dataset(&mut g, 300)).await;
    twin.step("initial").await;
    let (app, _, ssn, date) = a_visit_with_pairs(&twin.inc).await;
    let before = updated_dates(&twin.inc).await;

    twin.exec(&format!(
        "UPDATE analytics.factvisitcallperformance_cr SET \"Scheduled Start Time\" = \"Scheduled Start Time\" + interval '15 minutes', \
         \"Scheduled End Time\" = \"Scheduled End Time\" + interval '15 minutes', \"Visit Updated Timestamp\" = {} WHERE \"Application Visit Id\" = {app}",
        stamp(1)
    ))
    .await;
    let summary = twin.step("one visit's schedule moved").await;
    assert_eq!((summary.mode.as_deref(), summary.keys_touched), (Some("incremental"), Some(1)), "{summary:?}");
    let candidates: i64 = twin
        .inc
        .query_one(
            r#"SELECT count(*) FROM analytics.factvisitcallperformance_cr f JOIN analytics.dimcaregiver cg USING ("Caregiver Id")
               WHERE btrim(cg."SSN", ' ') = $1 AND f."Visit Date" = $2::text::date"#,
            &[&ssn, &date],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(summary.visits_considered, candidates as u64, "only the candidates of the touched key are read: {summary:?}");
    assert!(summary.updated > 0, "the pairs of the moved visit are refreshed: {summary:?}");

    let after = updated_dates(&twin.inc).await;
    let mut touched_rows = 0;
    for (pair, (s, d, updated)) in &after {
        let old = before.get(pair);
        if (s.as_str(), d.as_str()) == (ssn.as_str(), date.as_str()) {
            touched_rows += usize::from(old.map(|o| &o.2) != Some(updated));
        } else {
            assert_eq!(old.map(|o| &o.2), Some(updated), "pair {pair:?} of an untouched key was written");
        }
    }
    assert!(touched_rows > 0, "some pair of the touched key was rewritten");

    let quiet = twin.step("no change").await;
    assert_eq!(
        (quiet.mode.as_deref(), quiet.keys_touched, quiet.visits_considered, quiet.inserted, quiet.updated, quiet.resolved),
        (Some("incremental"), Some(0), 0, 0, 0, 0),
        "{quiet:?}"
    );
    assert_eq!(updated_dates(&twin.inc).await, after);
}

/// A visit deleted in the source: incrementally, its stored pairs are
/// revisited by their old key (the visit is gone from the fact table): pairs
/// where it is the conflicting visit → `D`, its own pairs → `R`, its conflict
/// → `D`, exactly as a full run does.
#[tokio::test]
async fn conflict_incremental_handles_a_deleted_visits_pairs() {
    let mut g = Gen::new(4242);
    let mut twin = Twin::new("cf_inc_del", &dataset(&mut g, 300)).await;
    twin.step("initial").await;
    let (app, visit_id, _, _) = a_visit_with_pairs(&twin.inc).await;
    twin.exec(&format!(
        "INSERT INTO analytics.factvisitcallperformance_deleted_cr (\"Visit Id\", \"Application Visit Id\", \"Visit Date\", \"Caregiver Id\", \"Provider Id\", \"Visit Updated Timestamp\")\n\
         SELECT \"Visit Id\", \"Application Visit Id\", \"Visit Date\", \"Caregiver Id\", \"Provider Id\", {ts} FROM analytics.factvisitcallperformance_cr WHERE \"Application Visit Id\" = {app};\n\
         DELETE FROM analytics.factvisitcallperformance_cr WHERE \"Application Visit Id\" = {app};",
        ts = stamp(1)
    ))
    .await;
    let summary = twin.step("a visit deleted").await;
    assert_eq!(summary.mode.as_deref(), Some("incremental"), "{summary:?}");
    assert!(summary.resolved > 0, "its own pairs are no longer detected: {summary:?}");
    let states = |sql: &'static str| {
        let client = &twin.inc;
        let visit_id = visit_id.clone();
        async move {
            client.query(sql, &[&visit_id]).await.unwrap().iter().map(|r| r.get::<_, String>(0)).collect::<std::collections::BTreeSet<String>>()
        }
    };
    let as_conflicting = states(r#"SELECT "StatusFlag"::text FROM conflict.conflictvisitmaps WHERE "ConVisitID"::text = $1"#).await;
    let as_primary = states(r#"SELECT "StatusFlag"::text FROM conflict.conflictvisitmaps WHERE "VisitID"::text = $1"#).await;
    let conflict = states(
        r#"SELECT k."StatusFlag"::text FROM conflict.conflicts k WHERE k."CONFLICTID" IN (SELECT "CONFLICTID" FROM conflict.conflictvisitmaps WHERE "VisitID"::text = $1)"#,
    )
    .await;
    assert_eq!(as_conflicting, ["D".to_string()].into());
    assert_eq!(as_primary, ["R".to_string()].into());
    assert_eq!(conflict, ["D".to_string()].into());
}

/// The first run, `--full`, and any change of the settings fingerprint
/// (MPH, SETTINGS, excluded SSNs, provider activity) run the whole window;
/// run bookkeeping (`InProgressFlag`, `LastLoadDate`, the legacy cron flags) does not count.
#[tokio::test]
async fn conflict_settings_change_forces_a_full_run() {
    let mut g = Gen::new(7);
    let mut client = fresh_pg(&unique("cf_inc_settings")).await;
    client.batch_execute(&reference_sql()).await.unwrap();
    client.batch_execute(&dataset(&mut g, 100)).await.unwrap();
    async fn mode(client: &mut Client, mode: DetectionMode) -> (String, String) {
        let s = run(client, &settings(FIRST_TODAY.parse().unwrap()), mode).await.unwrap();
        (s.mode.unwrap_or_default(), s.mode_reason.unwrap_or_default())
    }
    let (m, why) = mode(&mut client, DetectionMode::Incremental).await;
    assert_eq!(m, "full");
    assert!(why.contains("first run"), "{why}");
    assert_eq!(mode(&mut client, DetectionMode::Incremental).await.0, "incremental");
    assert_eq!(mode(&mut client, DetectionMode::Full).await, ("full".into(), "full run requested (--full)".into()));
    assert_eq!(mode(&mut client, DetectionMode::Incremental).await.0, "incremental");
    client.batch_execute(r#"UPDATE conflict.settings SET "UpdateCronFlag" = 1, "LastLoadDate" = '2020-01-01'"#).await.unwrap();
    assert_eq!(mode(&mut client, DetectionMode::Incremental).await.0, "incremental", "bookkeeping columns are not settings");

    for change in [
        r#"UPDATE conflict.mph SET "AverageMilesPerHour" = 3 WHERE "From" = 0"#,
        r#"UPDATE conflict.settings SET "ExtraDistancePer" = 1.5"#,
        r#"INSERT INTO conflict.excluded_ssn ("SSN") VALUES ('100-00-0003')"#,
        r#"INSERT INTO conflict.excluded_agency ("ProviderID") VALUES ('00000000-0000-0000-0003-000000000002')"#,
        r#"UPDATE analytics.dimprovider SET "Is Active" = false WHERE "Application Provider Id" = 1"#,
        r#"UPDATE analytics.dimprovider SET "Is Demo" = true WHERE "Application Provider Id" = 2"#,
    ] {
        client.batch_execute(change).await.unwrap();
        let (m, why) = mode(&mut client, DetectionMode::Incremental).await;
        assert_eq!(m, "full", "{change}");
        assert!(why.contains("settings changed"), "{change}: {why}");
        assert_eq!(mode(&mut client, DetectionMode::Incremental).await.0, "incremental", "after {change}");
    }
    let row = client.query_one(r#"SELECT "Mode", "SettingsFingerprint" FROM conflict.conflict_watermark"#, &[]).await.unwrap();
    assert_eq!((row.get::<_, String>(0).as_str(), row.get::<_, String>(1).len()), ("incremental", 32));
}

/// A skipped night: two nights of changes are caught up by one run (the
/// watermark is the last *successful* run's), with the same tables as a full run.
#[tokio::test]
async fn conflict_incremental_catches_up_a_skipped_night() {
    let mut g = Gen::new(99);
    let mut twin = Twin::new("cf_inc_skip", &dataset(&mut g, 300)).await;
    twin.step("initial").await;
    let night1: String = (0..6).map(|_| g.mutation(&stamp(1))).collect();
    twin.exec(&night1).await;
    // The run of night 1 fails: nothing is committed, the watermark stays.
    twin.exec("ALTER TABLE conflict.conflicts RENAME TO conflicts_away").await;
    let cfg = settings(twin.today);
    assert!(run(&mut twin.inc, &cfg, DetectionMode::Incremental).await.is_err());
    twin.exec("ALTER TABLE conflict.conflicts_away RENAME TO conflicts").await;
    let night2: String = (0..6).map(|_| g.mutation(&stamp(2))).collect();
    twin.exec(&night2).await;
    twin.today += Duration::days(1);
    let summary = twin.step(&format!("two nights in one run:\n{night1}\n{night2}")).await;
    assert_eq!(summary.mode.as_deref(), Some("incremental"), "{summary:?}");
    assert!(summary.keys_touched.unwrap_or(0) >= 2, "{summary:?}");
}

/// The plan tests' providers (10) and caregivers (20 000, SSN = their
/// number on 9 digits), with ids `…-0003-<n>` and `…-0002-<n>`.
const TEN_PROVIDERS_AND_20_000_CAREGIVERS: &str = r#"
INSERT INTO analytics.dimprovider ("Provider Id", "Is Active", "Is Demo")
  SELECT ('00000000-0000-0000-0003-' || lpad(p::text, 12, '0'))::uuid, true, false FROM generate_series(0, 9) p;
INSERT INTO analytics.dimcaregiver ("Caregiver Id", "SSN")
  SELECT ('00000000-0000-0000-0002-' || lpad(c::text, 12, '0'))::uuid, lpad(c::text, 9, '0') FROM generate_series(0, 19999) c;
"#;

/// docs/conflicts.md §14: the keyed candidate read costs what the touched keys
/// cost. On 100 000 visits, 20 000 caregivers and 20 000 addresses, with two
/// touched keys and with 2 000 (a fiftieth of the visits, a 2 % night), the
/// touched visits are read once through the trimmed-SSN index and
/// `("Caregiver Id", "Visit Date")`, their addresses by patient, and the
/// candidate query reads only that temporary table: no sequential scan of
/// the visits, the caregivers or the addresses in any of the three plans.
#[tokio::test]
async fn conflict_incremental_candidate_read_uses_the_key_indexes() {
    use thaw_engine::conflicts::{
        candidates::{address_query, address_setup, candidate_query, keyed_read_uses_indexes, touched_visits_query, touched_visits_setup},
        columns::ColumnTypes,
    };
    let mut client = fresh_pg(&unique("cf_inc_plan")).await;
    client.batch_execute(TEN_PROVIDERS_AND_20_000_CAREGIVERS).await.unwrap();
    client
        .batch_execute(
            r#"
INSERT INTO analytics.dimpatientaddress ("Patient Address Id", "Patient Id", "Address Type", "Primary Address", "Latitude", "Longitude")
  SELECT ('00000000-0000-0000-0005-' || lpad(e::text, 12, '0'))::uuid, ('00000000-0000-0000-0004-' || lpad(e::text, 12, '0'))::uuid,
         'GPS', true, 40.6, -73.9 FROM generate_series(0, 19999) e;
INSERT INTO analytics.factvisitcallperformance_cr ("Visit Id", "Visit Date", "Caregiver Id", "Provider Id", "Provider Patient Id", "Payer Patient Id")
  SELECT ('00000000-0000-0000-0001-' || lpad(n::text, 12, '0'))::uuid, date '2025-01-01' + (n % 60),
         ('00000000-0000-0000-0002-' || lpad((n % 20000)::text, 12, '0'))::uuid, ('00000000-0000-0000-0003-' || lpad((n % 10)::text, 12, '0'))::uuid,
         ('00000000-0000-0000-0004-' || lpad((n % 20000)::text, 12, '0'))::uuid,
         CASE WHEN n % 2 = 0 THEN ('00000000-0000-0000-0004-' || lpad(((n + 7) % 20000)::text, 12, '0'))::uuid END
  FROM generate_series(0, 99999) n;
ANALYZE analytics.dimprovider, analytics.dimcaregiver, analytics.dimpatientaddress, analytics.factvisitcallperformance_cr;
"#,
        )
        .await
        .unwrap();
    let estimate: f32 = client
        .query_one("SELECT reltuples FROM pg_class WHERE oid = 'analytics.factvisitcallperformance_cr'::regclass", &[])
        .await
        .unwrap()
        .get(0);
    // Keys: caregiver 4i on its date 2025-01-01 + (4i % 60).
    for keys in [2, 2_000] {
        let tx = client.transaction().await.unwrap();
        tx.batch_execute(&format!(
            "CREATE TEMP TABLE thaw_conflict_keys (ssn text NOT NULL, visit_date date NOT NULL, PRIMARY KEY (ssn, visit_date)) ON COMMIT DROP;
             INSERT INTO pg_temp.thaw_conflict_keys SELECT lpad((c * 4)::text, 9, '0'), date '2025-01-01' + ((c * 4) % 60)
               FROM generate_series(0, {}) c;
             ANALYZE pg_temp.thaw_conflict_keys",
            keys - 1
        ))
        .await
        .unwrap();
        let by_index = keyed_read_uses_indexes(keys, estimate as f64);
        assert!(by_index, "{keys} keys of {estimate} visits");
        let types = ColumnTypes::load(&tx, "analytics", "'America/New_York'").await.unwrap();
        let explain = |sql: String| format!("EXPLAIN {sql}");
        let mut plan: Vec<String> =
            tx.query(&explain(touched_visits_query(&types, by_index).unwrap()), &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
        tx.batch_execute(&touched_visits_setup(&types, by_index).unwrap()).await.unwrap();
        let touched: i64 = tx.query_one("SELECT count(*) FROM pg_temp.thaw_conflict_touched_visits", &[]).await.unwrap().get(0);
        // Visit n: caregiver n % 20 000 on date n % 60, so caregiver c has visits c and c + 60 000 on date c % 60.
        assert_eq!(touched, keys as i64 * 2, "{keys} keys");
        // The addresses of the touched patients, then the candidates that read the touched visits.
        plan.extend(tx.query(&explain(address_query(&types, true).unwrap()), &[]).await.unwrap().iter().map(|r| r.get::<_, String>(0)));
        tx.batch_execute(&address_setup(&types, true).unwrap()).await.unwrap();
        let sql = candidate_query(&types, true).unwrap().replace("$1::date", "'2023-03-10'::date").replace("$2::date", "'2025-04-24'::date");
        plan.extend(tx.query(&explain(sql.clone()), &[]).await.unwrap().iter().map(|r| r.get::<_, String>(0)));
        let candidates = tx.query(&sql, &[]).await.unwrap().len();
        assert_eq!(candidates, keys as usize * 2);
        let plan = plan.join("\n");
        for index in ["idx_dimcaregiver_ssn_trimmed", "factvisitcallperformance_cr_caregiver", "dimpatientaddress_patient"] {
            assert!(plan.contains(index), "{keys} keys: {index} not used:\n{plan}");
        }
        for table in ["factvisitcallperformance_cr", "dimcaregiver", "dimpatientaddress"] {
            assert!(!plan.contains(&format!("Seq Scan on {table} ")), "{keys} keys: sequential scan of {table}:\n{plan}");
        }
        tx.rollback().await.unwrap();
    }
    // Beyond a fortieth of the visits one scan of them is the cheaper read.
    assert!(!keyed_read_uses_indexes(5_000, estimate as f64));
}

/// The statements of a night that used to scan a whole table whatever the
/// night touched (docs/conflicts.md §14) read only their candidate rows, on
/// 20 000 caregivers with one in-service training and one absence each and
/// 8 000 stored pairs (open, not missed, unanswered): the caregivers of the
/// touched SSNs by the trimmed-SSN index, their events by the events'
/// caregiver indexes; the lifecycle steps that follow the stored missed
/// flags, the application's answers and the resolutions (steps 3, 7, 8, 9,
/// both passes) through the partial indexes of
/// schema/V23__conflict_lifecycle_indexes.sql. Each plan is checked for the
/// index and for the absence of a sequential scan of the big table, and the
/// statements' results are checked too: the exact touched caregivers and
/// events, and one missed pair, one answered pair and one open pair with a
/// stale resolution among the 8 000, which the statements change and no
/// other.
#[tokio::test]
async fn conflict_night_statements_read_only_their_candidate_rows() {
    use std::collections::HashMap;
    use thaw_engine::conflicts::{columns::ColumnTypes, in_service, incremental, lifecycle, store};
    let mut client = fresh_pg(&unique("cf_night_plan")).await;
    client.batch_execute(TEN_PROVIDERS_AND_20_000_CAREGIVERS).await.unwrap();
    client
        .batch_execute(
            r#"
INSERT INTO analytics.factcaregiverinservice ("Application Caregiver Inservice Id", "Environment", "Caregiver Id", "Provider Id",
                                              "Inservice start date", "Inservice end date")
  SELECT c, 'prod', ('00000000-0000-0000-0002-' || lpad(c::text, 12, '0'))::uuid, ('00000000-0000-0000-0003-' || lpad((c % 10)::text, 12, '0'))::uuid,
         timestamptz '2025-01-01 14:00+00' + (c % 60) * interval '1 day', timestamptz '2025-01-01 16:00+00' + (c % 60) * interval '1 day'
  FROM generate_series(0, 19999) c;
INSERT INTO analytics.factcaregiverabsence ("Caregiver Vacation Id", "Environment", "Global Caregiver Id", "Provider Id", "Start Date", "End Date")
  SELECT c, 'prod', ('00000000-0000-0000-0002-' || lpad(c::text, 12, '0'))::uuid, ('00000000-0000-0000-0003-' || lpad((c % 10)::text, 12, '0'))::uuid,
         timestamptz '2025-01-01 05:00+00' + (c % 60) * interval '1 day', timestamptz '2025-01-02 04:59+00' + (c % 60) * interval '1 day'
  FROM generate_series(0, 19999) c;
INSERT INTO conflict.conflicts ("CONFLICTID", "StatusFlag") SELECT n, 'U' FROM generate_series(1, 4000) n;
INSERT INTO conflict.conflictvisitmaps ("CONFLICTID", "VisitID", "ConVisitID", "SSN", "VisitDate", "StatusFlag", "IsMissed", "ConIsMissed")
  SELECT n / 2 + 1, ('00000000-0000-0000-0001-' || lpad(n::text, 12, '0'))::uuid, ('00000000-0000-0000-0001-' || lpad((n + 100000)::text, 12, '0'))::uuid,
         lpad(n::text, 9, '0'), date '2025-01-01' + (n % 60), 'U', false, false
  FROM generate_series(0, 7999) n;
UPDATE conflict.conflictvisitmaps SET "ConIsMissed" = true WHERE "CONFLICTID" = 7;
UPDATE conflict.conflictvisitmaps SET "ConNoResponseFlag" = 'Yes' WHERE "CONFLICTID" = 8 AND "ID" % 2 = 0;
UPDATE conflict.conflictvisitmaps SET "ResolveDate" = timestamp '2025-01-05 10:00', "ResolvedBy" = 'someone' WHERE "CONFLICTID" = 9 AND "ID" % 2 = 0;
ANALYZE analytics.dimprovider, analytics.dimcaregiver, analytics.factcaregiverinservice, analytics.factcaregiverabsence,
        conflict.conflicts, conflict.conflictvisitmaps;
"#,
        )
        .await
        .unwrap();
    let window = (NaiveDate::from_ymd_opt(2023, 3, 10).unwrap(), NaiveDate::from_ymd_opt(2025, 4, 24).unwrap());
    let tx = client.transaction().await.unwrap();
    // Two touched keys: caregivers 4 and 8 on the dates of their events.
    tx.batch_execute(
        "CREATE TEMP TABLE thaw_conflict_keys (ssn text NOT NULL, visit_date date NOT NULL, PRIMARY KEY (ssn, visit_date)) ON COMMIT DROP;
         INSERT INTO pg_temp.thaw_conflict_keys VALUES ('000000004', date '2025-01-05'), ('000000008', date '2025-01-09');
         ANALYZE pg_temp.thaw_conflict_keys",
    )
    .await
    .unwrap();
    let types = ColumnTypes::load(&tx, "analytics", "'America/New_York'").await.unwrap();
    let explain = |rows: Vec<tokio_postgres::Row>| rows.iter().map(|r| r.get::<_, String>(0)).collect::<Vec<_>>().join("\n");
    let setup = incremental::touched_caregivers_setup(&types).unwrap();
    let (create, analyze) = setup.split_once(";\n").unwrap();
    let plan = explain(tx.query(&format!("EXPLAIN {create}"), &[]).await.unwrap());
    assert!(plan.contains("idx_dimcaregiver_ssn_trimmed") && !plan.contains("Seq Scan on dimcaregiver"), "{plan}");
    tx.batch_execute(&format!("{create};\n{analyze}")).await.unwrap();
    let caregivers: Vec<String> = tx
        .query("SELECT caregiver_id::text FROM pg_temp.thaw_conflict_touched_caregivers ORDER BY 1", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(caregivers, ["00000000-0000-0000-0002-000000000004", "00000000-0000-0000-0002-000000000008"]);
    let events = in_service::events_sql(&types, "'America/New_York'", true).unwrap();
    let (excluded_providers, excluded_ssns): (Vec<uuid::Uuid>, Vec<String>) = (vec![], vec![]);
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] = [&window.0, &window.1, &excluded_providers, &excluded_ssns];
    let plan = explain(tx.query(&format!("EXPLAIN {events}"), &params).await.unwrap());
    for index in ["factcaregiverinservice_caregiver", "factcaregiverabsence_caregiver"] {
        assert!(plan.contains(index), "{index} not used:\n{plan}");
    }
    for table in ["factcaregiverinservice", "factcaregiverabsence", "dimcaregiver"] {
        assert!(!plan.contains(&format!("Seq Scan on {table} ")), "sequential scan of {table}:\n{plan}");
    }
    tx.execute(events.as_str(), &params).await.unwrap();
    let found: Vec<(String, i64)> = tx
        .query("SELECT kind, app_event_id FROM pg_temp.thaw_conflict_events ORDER BY 1, 2", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(found, [("I".to_string(), 4), ("I".to_string(), 8), ("P".to_string(), 4), ("P".to_string(), 8)]);

    // The lifecycle statements over the 8 000 stored pairs.
    let cvm_types: HashMap<String, String> = tx
        .query(
            "SELECT attname::text, format_type(atttypid, atttypmod) FROM pg_attribute \
             WHERE attrelid = 'conflict.conflictvisitmaps'::regclass AND attnum > 0 AND NOT attisdropped",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let ctx = store::StatementContext {
        schemas: store::Schemas { analytics: "analytics".into(), conflict: "conflict".into() },
        zone_literal: "'America/New_York'".into(),
        cvm_types,
        source: types.clone(),
        keyed: true,
    };
    let statements: HashMap<&str, String> = lifecycle::statements(&ctx).unwrap().into_iter().collect();
    // The night's new conflicts (none here), which the second pass also covers (docs/conflicts.md §D17).
    tx.batch_execute("CREATE TEMP TABLE thaw_conflict_ids (\"VisitID\" uuid, conflict_id int8, first_created timestamp) ON COMMIT DROP")
        .await
        .unwrap();
    let indexed = [
        ("missed pairs", "idx_cvm_missed"),
        ("outside the window: missed pairs", "idx_cvm_missed"),
        ("missed conflicts", "idx_cvm_missed"),
        ("outside the window: missed conflicts", "idx_cvm_missed"),
        ("cascade up", "idx_cvm_closed"),
        ("outside the window: cascade up", "idx_cvm_closed"),
        ("no response pairs", "idx_cvm_no_response_open"),
        ("outside the window: no response pairs", "idx_cvm_no_response_open"),
        ("clear ResolveDate of open pairs", "idx_cvm_open_resolved"),
        ("outside the window: clear ResolveDate of open pairs", "idx_cvm_open_resolved"),
    ];
    for (name, index) in indexed {
        let plan = explain(tx.query(&format!("EXPLAIN {}", statements[name]), &[&window.0, &window.1]).await.unwrap());
        assert!(plan.contains(index), "'{name}': {index} not used:\n{plan}");
        assert!(!plan.contains("Seq Scan on conflictvisitmaps "), "'{name}': sequential scan of conflictvisitmaps:\n{plan}");
    }
    // Run them in the night's order (without step 2, so that step 7 closes
    // conflict 7 once both its pairs are closed); exactly the three prepared
    // conflicts change.
    for (name, sql) in lifecycle::statements(&ctx).unwrap() {
        if indexed.iter().any(|(n, _)| *n == name) && !name.ends_with("missed conflicts") {
            tx.execute(sql.as_str(), &[&window.0, &window.1]).await.unwrap();
        }
    }
    let changed: Vec<(i64, String, bool)> = tx
        .query(
            "SELECT \"CONFLICTID\", \"StatusFlag\"::text, \"ResolveDate\" IS NOT NULL FROM conflict.conflictvisitmaps \
             WHERE \"StatusFlag\" <> 'U' OR \"ResolveDate\" IS NOT NULL ORDER BY 1, 2",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(changed, [(7, "R".to_string(), true), (7, "R".to_string(), true), (8, "N".to_string(), false)]);
    let conflicts: Vec<(i64, String)> = tx
        .query("SELECT \"CONFLICTID\", \"StatusFlag\"::text FROM conflict.conflicts WHERE \"StatusFlag\" <> 'U' ORDER BY 1", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(conflicts, [(7, "R".to_string())]);
    let resolved_by: i64 = tx
        .query_one("SELECT count(*) FROM conflict.conflictvisitmaps WHERE \"ResolvedBy\" IS NOT NULL", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(resolved_by, 0);
    tx.rollback().await.unwrap();
}

/// docs/conflicts.md §D1: the lookup of restored visits (stored `D` pairs
/// whose conflicting visit is back in the visits and not in the deleted
/// table) reads the `D` pairs through their partial index
/// (schema/V26__conflict_deleted_pairs_index.sql), not the 8 000 closed
/// pairs, and finds exactly the restored one: of three `D` pairs, one
/// conflicting visit is back, one is back but still in the deleted table,
/// one is gone from both.
#[tokio::test]
async fn conflict_restored_visit_lookup_reads_only_the_deleted_pairs() {
    use thaw_engine::conflicts::{columns::ColumnTypes, incremental, store};
    let mut client = fresh_pg(&unique("cf_restored_plan")).await;
    client.batch_execute(TEN_PROVIDERS_AND_20_000_CAREGIVERS).await.unwrap();
    client
        .batch_execute(
            r#"
INSERT INTO conflict.conflictvisitmaps ("CONFLICTID", "VisitID", "ConVisitID", "SSN", "VisitDate", "StatusFlag")
  SELECT n / 2 + 1, ('00000000-0000-0000-0001-' || lpad(n::text, 12, '0'))::uuid, ('00000000-0000-0000-0001-' || lpad((n + 100000)::text, 12, '0'))::uuid,
         lpad(n::text, 9, '0'), date '2025-01-01' + (n % 60), CASE WHEN n < 3 THEN 'D' ELSE 'R' END
  FROM generate_series(0, 7999) n;
INSERT INTO analytics.factvisitcallperformance_cr ("Visit Id", "Application Visit Id", "Visit Date", "Caregiver Id", "Provider Id", "Application Provider Id")
  SELECT ('00000000-0000-0000-0001-' || lpad((n + 100000)::text, 12, '0'))::uuid, n + 100000, date '2025-02-01' + n,
         ('00000000-0000-0000-0002-' || lpad((n + 40)::text, 12, '0'))::uuid, '00000000-0000-0000-0003-000000000001', 1
  FROM generate_series(0, 1) n;
INSERT INTO analytics.factvisitcallperformance_deleted_cr ("Visit Id", "Visit Date")
  VALUES ('00000000-0000-0000-0001-000000100001', date '2025-02-02');
ANALYZE conflict.conflictvisitmaps, analytics.factvisitcallperformance_cr, analytics.factvisitcallperformance_deleted_cr;
"#,
        )
        .await
        .unwrap();
    let tx = client.transaction().await.unwrap();
    let types = ColumnTypes::load(&tx, "analytics", "'America/New_York'").await.unwrap();
    let schemas = store::Schemas { analytics: "analytics".into(), conflict: "conflict".into() };
    let sql = incremental::restored_visit_keys_sql(&schemas, &types).unwrap();
    let plan: Vec<String> = tx.query(&format!("EXPLAIN {sql}"), &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
    let plan = plan.join("\n");
    assert!(plan.contains("idx_cvm_deleted") && !plan.contains("Seq Scan on conflictvisitmaps"), "{plan}");
    let mut keys: Vec<String> = tx
        .query(&format!("SELECT ssn || ' ' || visit_date FROM ({sql}) k"), &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    keys.sort();
    // The pair's key (SSN 000000000, 2025-01-01) and the restored visit's own (caregiver 40's SSN, 2025-02-01).
    assert_eq!(keys, ["000000000 2025-01-01", "000000040 2025-02-01"]);
}
