//! `thaw dev seed`: create the Snowflake tables and fill them with a
//! generated Conflict Management dataset.
//!
//! Rows are produced in blocks of at most [`SeedOptions::block_rows`] rows,
//! appended to CSV part files of at most [`SeedOptions::part_rows`] rows, and
//! each finished part is bulk-loaded ([`crate::load::bulk_load_csv`]) and
//! deleted. Memory and disk use are therefore bounded by the block and part
//! sizes, not by the number of visits.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::{DateTime, Duration, FixedOffset, NaiveDate, Utc};
use md5::{Digest, Md5};
use rand::Rng;

use crate::csv::{Cell, CsvTableWriter};
use crate::load;
use crate::planted::{
    planted_patient, planted_visit_record, scenarios, Agency, ExtraDistance, Scenario, SsnStyle,
};
use crate::tables::{self, TableDef};
use crate::visits::{background_first_date, background_span_days, background_visit};
use crate::world::{
    entity_rng, entity_uuid, midnight, pick, provider_metro, round6, street, wall, Kind, World,
};
use thaw_engine::error::{Error, Result};
use thaw_engine::source::SnowflakeSource;

/// What to generate.
#[derive(Debug, Clone)]
pub struct SeedOptions {
    /// Generator seed: same seed, visits and today → identical data.
    pub seed: u64,
    /// Rows of FACTVISITCALLPERFORMANCE_CR, planted visits included (at least [`min_visits`]).
    pub visits: u64,
    /// The New York date the conflict window is anchored to.
    pub today: NaiveDate,
    /// SETTINGS.ExtraDistancePer.
    pub extra_distance: ExtraDistance,
    /// Directory for the CSV part files (created if missing).
    pub out_dir: PathBuf,
    /// Rows generated per in-memory block.
    pub block_rows: usize,
    /// Rows per CSV part file (one bulk load each).
    pub part_rows: u64,
    /// Keep the CSV files after loading (default: delete each part once loaded).
    pub keep_files: bool,
}

impl SeedOptions {
    /// Defaults: 10 000-row blocks, 1 M-row parts, files deleted after loading.
    pub fn new(seed: u64, visits: u64, today: NaiveDate, out_dir: PathBuf) -> SeedOptions {
        SeedOptions {
            seed,
            visits,
            today,
            extra_distance: ExtraDistance::None,
            out_dir,
            block_rows: 10_000,
            part_rows: 1_000_000,
            keep_files: false,
        }
    }
}

/// What seeding produced.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SeedReport {
    /// Rows per Snowflake table (`DB.SCHEMA.TABLE`), as generated and as loaded.
    pub rows: BTreeMap<String, u64>,
    /// MD5 over each table's generated rows (hex): equal seeds give equal sums.
    pub checksums: BTreeMap<String, String>,
    /// Expected `conflictvisitmaps` rows (ordered pairs) from planted scenarios.
    pub planted_pairs: usize,
    /// Planted scenarios that must yield no pair.
    pub planted_near_misses: usize,
    /// Wall time of the whole seed, seconds.
    pub seconds: f64,
}

/// Planted FACT rows (visits not marked deleted) for `today`.
pub fn planted_fact_visits(today: NaiveDate, extra: ExtraDistance) -> u64 {
    scenarios(today, extra)
        .iter()
        .flat_map(|s| s.visits.iter())
        .filter(|v| !v.deleted)
        .count() as u64
}

/// The smallest `--visits` accepted: the planted visits plus 100 background visits.
pub fn min_visits(today: NaiveDate, extra: ExtraDistance) -> u64 {
    planted_fact_visits(today, extra) + 100
}

/// Where generated blocks go: CSV parts, bulk-loaded when a source is given.
pub(crate) struct TableSink<'a> {
    table: TableDef,
    dir: &'a Path,
    part_rows: u64,
    keep_files: bool,
    source: Option<&'a SnowflakeSource>,
    part: Option<CsvTableWriter>,
    parts: u64,
    rows: u64,
    loaded: u64,
    digest: Md5,
}

impl<'a> TableSink<'a> {
    pub(crate) fn new(
        table: TableDef,
        opts: &'a SeedOptions,
        source: Option<&'a SnowflakeSource>,
    ) -> TableSink<'a> {
        TableSink {
            table,
            dir: &opts.out_dir,
            part_rows: opts.part_rows.max(1),
            keep_files: opts.keep_files,
            source,
            part: None,
            parts: 0,
            rows: 0,
            loaded: 0,
            digest: Md5::new(),
        }
    }

    pub(crate) async fn write_block(&mut self, block: &[Vec<Cell>]) -> Result<()> {
        for row in block {
            if self.part.is_none() {
                self.part = Some(CsvTableWriter::create(self.dir, self.table, self.parts)?);
                self.parts += 1;
            }
            let part = self.part.as_mut().expect("just created");
            part.write(row)?;
            self.rows += 1;
            if part.rows() >= self.part_rows {
                self.flush_part().await?;
            }
        }
        Ok(())
    }

    async fn flush_part(&mut self) -> Result<()> {
        let Some(part) = self.part.take() else {
            return Ok(());
        };
        let file = part.finish()?;
        self.digest.update(file.md5.as_bytes());
        if let Some(source) = self.source {
            let columns: Vec<String> = self
                .table
                .columns
                .iter()
                .map(|c| c.name.to_string())
                .collect();
            let inserted =
                load::bulk_load_csv(source, &self.table.qualified(), &columns, &file.path).await?;
            if inserted != file.rows {
                return Err(Error::internal(format!(
                    "bulk load of {} inserted {inserted} rows but the file has {}",
                    file.path.display(),
                    file.rows
                )));
            }
            self.loaded += inserted;
            if !self.keep_files {
                std::fs::remove_file(&file.path).map_err(|e| {
                    Error::internal(format!("cannot delete {}: {e}", file.path.display()))
                })?;
            }
        }
        Ok(())
    }

    pub(crate) async fn finish(mut self, report: &mut SeedReport) -> Result<()> {
        self.flush_part().await?;
        let name = format!(
            "{}.{}.{}",
            self.table.database, self.table.schema, self.table.name
        );
        report.rows.insert(name.clone(), self.rows);
        report
            .checksums
            .insert(name, hex::encode(self.digest.finalize()));
        Ok(())
    }
}

/// Rows of entities `0..count`, each entity giving 0–3 rows, in blocks of at
/// least `block_rows` rows (the last block may be shorter); a block holds at
/// most `block_rows + 2` rows.
pub struct Blocks<F> {
    next: u64,
    count: u64,
    block_rows: usize,
    rows_of: F,
}

impl<F: FnMut(u64) -> Vec<Vec<Cell>>> Blocks<F> {
    /// Blocks over entities `0..count`.
    pub fn new(count: u64, block_rows: usize, rows_of: F) -> Blocks<F> {
        Blocks {
            next: 0,
            count,
            block_rows: block_rows.max(1),
            rows_of,
        }
    }
}

impl<F: FnMut(u64) -> Vec<Vec<Cell>>> Iterator for Blocks<F> {
    type Item = Vec<Vec<Cell>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.count {
            return None;
        }
        let mut block = Vec::with_capacity(self.block_rows + 2);
        while block.len() < self.block_rows && self.next < self.count {
            block.extend((self.rows_of)(self.next));
            self.next += 1;
        }
        Some(block)
    }
}

async fn write_all<F: FnMut(u64) -> Vec<Vec<Cell>>>(
    sink: &mut TableSink<'_>,
    blocks: Blocks<F>,
) -> Result<()> {
    for block in blocks {
        sink.write_block(&block).await?;
    }
    Ok(())
}

/// Generate the dataset into CSV files and, when `source` is given, create
/// the Snowflake tables (`CREATE OR REPLACE`, so re-seeding is idempotent)
/// and bulk-load every file.
///
/// Errors: [`thaw_engine::ErrorKind::ConfigInvalid`] for too few visits or an
/// unwritable `out_dir`; Snowflake errors from DDL or loading.
pub async fn seed(source: Option<&SnowflakeSource>, opts: &SeedOptions) -> Result<SeedReport> {
    let started = Instant::now();
    let min = min_visits(opts.today, opts.extra_distance);
    if opts.visits < min {
        return Err(Error::config(format!("--visits {} is below the minimum of {min} (the planted scenarios need room); ask for more visits", opts.visits)));
    }
    std::fs::create_dir_all(&opts.out_dir).map_err(|e| {
        Error::config(format!(
            "cannot create {}: {e}. Choose a writable --out-dir.",
            opts.out_dir.display()
        ))
    })?;
    if let Some(source) = source {
        create_tables(source).await?;
    }
    let planted = scenarios(opts.today, opts.extra_distance);
    let background = opts.visits - planted_fact_visits(opts.today, opts.extra_distance);
    let world = World::new(opts.seed, background, opts.today);
    let mut report = SeedReport::default();
    let block = opts.block_rows;
    let today = opts.today;

    macro_rules! table {
        ($def:expr, $count:expr, $rows:expr) => {{
            let mut sink = TableSink::new($def, opts, source);
            write_all(&mut sink, Blocks::new($count, block, $rows)).await?;
            sink.finish(&mut report).await?;
        }};
    }

    let planted_agencies = Agency::ALL.len() as u64;
    table!(
        tables::DIM_PROVIDER,
        world.providers + planted_agencies,
        |i| vec![provider_row(&world, i)]
    );
    table!(
        tables::DIM_OFFICE,
        world.providers + planted_agencies,
        |i| office_rows(&world, i)
    );
    table!(tables::DIM_PAYER, world.payers, |i| vec![payer_row(
        &world, i
    )]);
    table!(tables::DIM_CONTRACT, world.contracts, |i| vec![
        contract_row(&world, i)
    ]);
    table!(tables::DIM_SERVICE_CODE, world.service_codes, |i| vec![
        service_code_row(&world, i)
    ]);
    table!(tables::DIM_USER, world.users, |i| vec![user_row(&world, i)]);
    table!(
        tables::DIM_CAREGIVER,
        world.persons + planted.len() as u64,
        |i| caregiver_rows(&world, &planted, i)
    );
    let patients = world.providers * world.patients_per_provider;
    let planted_visit_numbers: Vec<(usize, usize)> = planted
        .iter()
        .enumerate()
        .flat_map(|(s, sc)| (0..sc.visits.len()).map(move |v| (s, v)))
        .collect();
    let planted_n = planted_visit_numbers.len() as u64;
    table!(tables::DIM_PATIENT, patients + planted_n, |i| vec![
        patient_row(&world, &planted, &planted_visit_numbers, i)
    ]);
    table!(tables::DIM_PATIENT_ADDRESS, patients + planted_n, |i| {
        address_rows(&world, &planted, &planted_visit_numbers, i)
    });
    table!(tables::FACT_INSERVICE, (background / 40).max(20), |i| vec![
        inservice_row(&world, today, i)
    ]);
    table!(tables::FACT_ABSENCE, (background / 100).max(10), |i| vec![
        absence_row(&world, today, i)
    ]);
    let planted_rows = |deleted: bool| -> Vec<Vec<Cell>> {
        planted
            .iter()
            .flat_map(|sc| {
                (0..sc.visits.len())
                    .filter(move |&v| sc.visits[v].deleted == deleted)
                    .map(move |v| (sc, v))
            })
            .map(|(sc, v)| planted_visit_record(&world, sc, v).cells())
            .collect()
    };
    {
        let mut sink = TableSink::new(tables::FACT_VISIT, opts, source);
        sink.write_block(&planted_rows(false)).await?;
        write_all(
            &mut sink,
            Blocks::new(background, block, |i| {
                vec![background_visit(&world, today, Kind::Visit, i).cells()]
            }),
        )
        .await?;
        sink.finish(&mut report).await?;
    }
    {
        let mut sink = TableSink::new(tables::FACT_VISIT_DELETED, opts, source);
        sink.write_block(&planted_rows(true)).await?;
        write_all(
            &mut sink,
            Blocks::new((background / 100).max(10), block, |i| {
                vec![background_visit(&world, today, Kind::DeletedVisit, i).cells()]
            }),
        )
        .await?;
        sink.finish(&mut report).await?;
    }
    let settings = settings_rows(&world, &planted, opts.extra_distance);
    for (def, rows) in settings {
        let mut sink = TableSink::new(def, opts, source);
        sink.write_block(&rows).await?;
        sink.finish(&mut report).await?;
    }
    report.planted_pairs = planted.iter().map(|s| s.pairs.len() * 2).sum();
    report.planted_near_misses = planted.iter().filter(|s| s.pairs.is_empty()).count();
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// `CREATE DATABASE/SCHEMA IF NOT EXISTS` and `CREATE OR REPLACE TABLE` for all 17 tables.
pub async fn create_tables(source: &SnowflakeSource) -> Result<()> {
    for (db, schema) in [("ANALYTICS", "BI"), ("CONFLICTREPORT", "PUBLIC")] {
        source
            .execute(&format!(
                "CREATE DATABASE IF NOT EXISTS {}",
                thaw_engine::source::sql::ident(db)
            ))
            .await?;
        source
            .execute(&format!(
                "CREATE SCHEMA IF NOT EXISTS {}.{}",
                thaw_engine::source::sql::ident(db),
                thaw_engine::source::sql::ident(schema)
            ))
            .await?;
    }
    for t in tables::ANALYTICS_TABLES
        .iter()
        .chain(tables::CONFLICT_TABLES.iter())
    {
        source.execute(&t.create_sql()).await?;
    }
    Ok(())
}

fn updated_at<R: Rng>(world: &World, rng: &mut R, zone: chrono_tz::Tz) -> DateTime<FixedOffset> {
    (world.now - Duration::minutes(rng.gen_range(60..60 * 24 * 700)))
        .with_timezone(&zone)
        .fixed_offset()
}

fn source_system<R: Rng>(rng: &mut R) -> Cell {
    Cell::text(if rng.gen_bool(0.98) { "hha" } else { "enc" })
}

fn provider_row(world: &World, i: u64) -> Vec<Cell> {
    let mut rng = entity_rng(world.seed, Kind::Provider, i);
    let (id, app_id, name, state, active, demo, zone) = if i < world.providers {
        let p = world.provider(i);
        (
            p.id,
            p.app_id,
            p.name,
            p.metro.state,
            p.active,
            p.demo,
            p.metro.zone,
        )
    } else {
        let a = Agency::ALL[(i - world.providers) as usize];
        let (name, state, active, demo) = a.attributes();
        let (id, app) = a.ids(world.seed);
        (
            id,
            app,
            name.to_string(),
            state,
            active,
            demo,
            chrono_tz::America::New_York,
        )
    };
    rng.set_word_pos(5_000);
    vec![
        Cell::Uuid(id),
        Cell::text(app_id.to_string()),
        Cell::text(name),
        Cell::text(if rng.gen_bool(0.1) {
            format!(" {} ", state.to_lowercase())
        } else {
            state.to_string()
        }),
        Cell::text(format!(
            "{:02}-{:07}",
            rng.gen_range(10..99),
            rng.gen_range(0..10_000_000)
        )),
        Cell::text(format!(
            "({}) {}-{:04}",
            rng.gen_range(200..999),
            rng.gen_range(200..999),
            rng.gen_range(0..10_000)
        )),
        Cell::Bool(active),
        Cell::Bool(demo),
        Cell::text(format!("prod-{}", 1 + i % 3)),
        Cell::text("hha"),
        Cell::TimestampTz(updated_at(world, &mut rng, zone)),
    ]
}

fn office_rows(world: &World, i: u64) -> Vec<Vec<Cell>> {
    let mut rng = entity_rng(world.seed, Kind::Office, i);
    let offices: Vec<((uuid::Uuid, u64), chrono_tz::Tz)> = if i < world.providers {
        let p = world.provider(i);
        (0..p.offices)
            .map(|o| (world.office(i, o), p.metro.zone))
            .collect()
    } else {
        vec![(
            Agency::ALL[(i - world.providers) as usize].office(world.seed),
            chrono_tz::America::New_York,
        )]
    };
    offices
        .into_iter()
        .enumerate()
        .map(|(o, ((id, app), zone))| {
            vec![
                Cell::Uuid(id),
                Cell::text(app.to_string()),
                Cell::text(if o == 0 {
                    "Main Office".to_string()
                } else {
                    format!("Branch {o}")
                }),
                Cell::Bool(o == 0 || rng.gen_bool(0.9)),
                Cell::text(format!(
                    "{:02}-{:07}",
                    rng.gen_range(10..99),
                    rng.gen_range(0..10_000_000)
                )),
                if rng.gen_bool(0.8) {
                    Cell::text(format!(
                        "{:010}",
                        rng.gen_range(1_000_000_000u64..9_999_999_999)
                    ))
                } else {
                    Cell::Null
                },
                source_system(&mut rng),
                Cell::TimestampTz(updated_at(world, &mut rng, zone)),
            ]
        })
        .collect()
}

fn payer_row(world: &World, i: u64) -> Vec<Cell> {
    let mut rng = entity_rng(world.seed, Kind::Payer, i);
    let (id, app) = world.payer(i);
    let state = if i < 8 { "NY" } else { provider_metro(i).state };
    vec![
        Cell::Uuid(id),
        Cell::text(app.to_string()),
        Cell::text(format!("{} Medicaid Plan {}", state, i + 1)),
        Cell::text(state),
        Cell::Bool(i != world.payers - 1),
        Cell::Bool(false),
        Cell::text("hha"),
        Cell::TimestampTz(updated_at(world, &mut rng, chrono_tz::America::New_York)),
    ]
}

fn contract_row(world: &World, i: u64) -> Vec<Cell> {
    let mut rng = entity_rng(world.seed, Kind::Contract, i);
    let (id, app) = world.contract(i);
    vec![
        Cell::Uuid(id),
        Cell::text(app.to_string()),
        Cell::text(format!("Contract {}", i + 1)),
        Cell::Bool(rng.gen_bool(0.9)),
        Cell::text("hha"),
        Cell::TimestampTz(updated_at(world, &mut rng, chrono_tz::America::New_York)),
    ]
}

fn service_code_row(world: &World, i: u64) -> Vec<Cell> {
    let mut rng = entity_rng(world.seed, Kind::ServiceCode, i);
    let (id, app) = world.service_code(i);
    const CODES: [&str; 5] = ["HHA", "PCA", "RN", "LPN", "PT"];
    vec![
        Cell::Uuid(id),
        Cell::text(app.to_string()),
        Cell::text(format!("{}{:02}", CODES[(i % 5) as usize], i)),
        Cell::Bool(true),
        Cell::text("hha"),
        Cell::TimestampTz(updated_at(world, &mut rng, chrono_tz::America::New_York)),
    ]
}

fn user_row(world: &World, i: u64) -> Vec<Cell> {
    let mut rng = entity_rng(world.seed, Kind::User, i);
    let (id, app) = world.user(i);
    let first = pick(
        &mut rng,
        &["Alex", "Jordan", "Taylor", "Casey", "Morgan", "Riley"],
    );
    let last = pick(
        &mut rng,
        &["Kim", "Patel", "Nguyen", "Cohen", "Okafor", "Silva"],
    );
    let username = format!("{}.{}{}", first.to_lowercase(), last.to_lowercase(), i);
    vec![
        Cell::text(id.to_string()),
        Cell::Int(app as i64),
        Cell::text(format!("{first} {last}")),
        Cell::text(format!("{username}@agency.example")),
        if rng.gen_bool(0.97) {
            Cell::text(username)
        } else {
            Cell::Null
        },
        Cell::Bool(i % 25 == 24),
        Cell::text("hha"),
    ]
}

fn caregiver_cells(
    world: &World,
    id: uuid::Uuid,
    app_id: u64,
    ssn: Option<String>,
    (first, last): (&str, &str),
    zone: chrono_tz::Tz,
    rng: &mut impl Rng,
) -> Vec<Cell> {
    vec![
        Cell::Uuid(id),
        Cell::Int(app_id as i64),
        Cell::text(format!("CG{app_id}")),
        Cell::text(first),
        Cell::text(last),
        Cell::text(format!("{first} {last}")),
        Cell::opt_text(ssn),
        Cell::text(if rng.gen_bool(0.9) {
            "Active"
        } else {
            "Terminated"
        }),
        source_system(rng),
        Cell::TimestampTz(updated_at(world, rng, zone)),
    ]
}

fn caregiver_rows(world: &World, planted: &[Scenario], i: u64) -> Vec<Vec<Cell>> {
    let mut rng = entity_rng(world.seed, Kind::Caregiver, i);
    rng.set_word_pos(5_000);
    if i < world.persons {
        let person = world.person(i);
        (0..person.agencies.len())
            .map(|j| {
                let cg = world.caregiver(&person, j);
                let zone = provider_metro(cg.provider).zone;
                caregiver_cells(
                    world,
                    cg.id,
                    cg.app_id,
                    cg.ssn,
                    (person.first, person.last),
                    zone,
                    &mut rng,
                )
            })
            .collect()
    } else {
        let sc = &planted[(i - world.persons) as usize];
        sc.agencies()
            .into_iter()
            .map(|a| {
                let (id, app, ssn) = sc.caregiver(world.seed, a);
                let mut cells = caregiver_cells(
                    world,
                    id,
                    app,
                    ssn,
                    ("Planted", sc.name),
                    chrono_tz::America::New_York,
                    &mut rng,
                );
                cells[tables::DIM_CAREGIVER.position("Status")] = Cell::text("Active");
                cells[tables::DIM_CAREGIVER.position("Source System")] = Cell::text("hha");
                cells
            })
            .collect()
    }
}

/// (patient id, app id, payer, zone) of patient row `i` (background first, then planted).
fn patient_identity(
    world: &World,
    planted: &[Scenario],
    numbers: &[(usize, usize)],
    i: u64,
) -> ((uuid::Uuid, u64), chrono_tz::Tz) {
    let patients = world.providers * world.patients_per_provider;
    if i < patients {
        let r = i / world.patients_per_provider;
        let p = world.patient(r, i % world.patients_per_provider);
        ((p.id, p.app_id), provider_metro(r).zone)
    } else {
        let (s, v) = numbers[(i - patients) as usize];
        (
            planted_patient(world.seed, planted[s].visit_number(v)),
            chrono_tz::America::New_York,
        )
    }
}

fn patient_row(
    world: &World,
    planted: &[Scenario],
    numbers: &[(usize, usize)],
    i: u64,
) -> Vec<Cell> {
    let mut rng = entity_rng(world.seed, Kind::Patient, i);
    rng.set_word_pos(5_000);
    let ((id, app), zone) = patient_identity(world, planted, numbers, i);
    let first = pick(
        &mut rng,
        &[
            "Ruth", "Harold", "Dolores", "Walter", "Edna", "Frank", "Gloria", "Stanley",
        ],
    );
    let last = pick(
        &mut rng,
        &[
            "Cohen",
            "Rivera",
            "Kowalski",
            "Washington",
            "Rossi",
            "Nguyen",
            "Brown",
            "Ortiz",
        ],
    );
    let planted_patient = i >= world.providers * world.patients_per_provider;
    vec![
        Cell::Uuid(id),
        Cell::Uuid(world.payer(rng.gen_range(0..world.payers)).0),
        Cell::Int(app as i64),
        Cell::text(first),
        Cell::text(last),
        Cell::text(format!("{last}, {first}")),
        Cell::text(format!("ADM-{app}")),
        if rng.gen_bool(0.9) {
            Cell::text(format!(
                "{}{:05}{}",
                (b'A' + rng.gen_range(0..26u8)) as char,
                rng.gen_range(0..100_000),
                (b'A' + rng.gen_range(0..26u8)) as char
            ))
        } else {
            Cell::Null
        },
        Cell::text(if planted_patient || rng.gen_bool(0.95) {
            "Active"
        } else {
            "Discharged"
        }),
        Cell::Bool(true),
        Cell::text("hha"),
        Cell::TimestampTz(updated_at(world, &mut rng, zone)),
    ]
}

#[allow(clippy::too_many_arguments)]
fn address_cells(
    world: &World,
    id: uuid::Uuid,
    app: u64,
    patient: (uuid::Uuid, u64),
    kind: &str,
    primary: bool,
    place: (f64, f64, String, &str, &str, &str),
    created: DateTime<Utc>,
    zone: chrono_tz::Tz,
    rng: &mut impl Rng,
) -> Vec<Cell> {
    let (lat, lon, zip, city, county, state) = place;
    vec![
        Cell::Uuid(id),
        Cell::Int(app as i64),
        Cell::Uuid(patient.0),
        Cell::Int(patient.1 as i64),
        Cell::text(kind),
        Cell::text(street(rng)),
        if rng.gen_bool(0.3) {
            Cell::text(format!("Apt {}", rng.gen_range(1..40)))
        } else {
            Cell::Null
        },
        Cell::text(city),
        Cell::text(county),
        Cell::text(state),
        Cell::text(zip),
        Cell::Bool(primary),
        Cell::Float(lat),
        Cell::Float(lon),
        Cell::TimestampLtz(created),
        Cell::text("hha"),
        Cell::TimestampTz(updated_at(world, rng, zone)),
    ]
}

fn address_rows(
    world: &World,
    planted: &[Scenario],
    numbers: &[(usize, usize)],
    i: u64,
) -> Vec<Vec<Cell>> {
    let mut rng = entity_rng(world.seed, Kind::Address, i);
    let patients = world.providers * world.patients_per_provider;
    let (patient, zone) = patient_identity(world, planted, numbers, i);
    let created = (world.now - Duration::days(rng.gen_range(30..1500))).with_timezone(&Utc);
    if i < patients {
        let r = i / world.patients_per_provider;
        let p = world.patient(r, i % world.patients_per_provider);
        let metro = provider_metro(r);
        let zip = format!("{}{:02}", metro.zip3, rng.gen_range(0..100));
        let mut rows = vec![address_cells(
            world,
            entity_uuid(world.seed, Kind::Address, i * 2),
            4_000_000 + i * 2,
            patient,
            "Billing, GPS, Home",
            true,
            (
                p.lat,
                p.lon,
                zip.clone(),
                metro.city,
                metro.county,
                metro.state,
            ),
            created,
            zone,
            &mut rng,
        )];
        if rng.gen_bool(0.3) {
            // An older address: either not primary, or primary GPS but superseded by the newer one.
            let older = created - Duration::days(rng.gen_range(30..900));
            let primary = rng.gen_bool(0.5);
            let (lat, lon) = (
                round6(p.lat + rng.gen_range(-0.05..0.05)),
                round6(p.lon + rng.gen_range(-0.05..0.05)),
            );
            rows.push(address_cells(
                world,
                entity_uuid(world.seed, Kind::Address, i * 2 + 1),
                4_000_000 + i * 2 + 1,
                patient,
                if primary { "GPS, Home" } else { "Billing" },
                primary,
                (lat, lon, zip, metro.city, metro.county, metro.state),
                older,
                zone,
                &mut rng,
            ));
        }
        rows
    } else {
        let (s, v) = numbers[(i - patients) as usize];
        let place = planted[s].visits[v].place;
        let (city, county) = if place.state == "PA" {
            ("Philadelphia", "Philadelphia")
        } else {
            ("Brooklyn", "Kings")
        };
        vec![address_cells(
            world,
            entity_uuid(
                world.seed,
                Kind::Planted,
                30_000 + planted[s].visit_number(v),
            ),
            6_000_000 + planted[s].visit_number(v),
            patient,
            "Billing, GPS, Home",
            true,
            (
                place.lat,
                place.lon,
                place.zip.to_string(),
                city,
                county,
                place.state,
            ),
            created,
            zone,
            &mut rng,
        )]
    }
}

/// A single-agency person for event `index` (in-service and absence events
/// only go to people with one agency, so they can never conflict).
fn single_agency_person(
    world: &World,
    kind: Kind,
    index: u64,
) -> (crate::world::Person, rand_chacha::ChaCha8Rng) {
    let mut rng = entity_rng(world.seed, kind, index);
    loop {
        let person = world.person(rng.gen_range(0..world.persons));
        if person.agencies.len() == 1 {
            return (person, rng);
        }
    }
}

fn event_window(today: NaiveDate, rng: &mut impl Rng) -> NaiveDate {
    background_first_date(today) + Duration::days(rng.gen_range(0..background_span_days(today)))
}

fn inservice_row(world: &World, today: NaiveDate, i: u64) -> Vec<Cell> {
    let (person, mut rng) = single_agency_person(world, Kind::Inservice, i);
    let cg = world.caregiver(&person, 0);
    let provider = world.provider(cg.provider);
    let zone = provider.metro.zone;
    let date = event_window(today, &mut rng);
    let start = wall(
        zone,
        date.and_hms_opt(rng.gen_range(8..16), 0, 0).expect("valid"),
    );
    let end = start + Duration::hours(rng.gen_range(1..4));
    vec![
        Cell::Int(500_000 + i as i64),
        Cell::text(format!("prod-{}", 1 + cg.provider % 3)),
        Cell::Uuid(cg.id),
        Cell::Uuid(provider.id),
        Cell::Uuid(world.office(cg.provider, 0).0),
        Cell::TimestampTz(start),
        Cell::TimestampTz(end),
        Cell::text("hha"),
        Cell::TimestampTz(end.min(world.now.with_timezone(&zone).fixed_offset())),
    ]
}

fn absence_row(world: &World, today: NaiveDate, i: u64) -> Vec<Cell> {
    let (person, mut rng) = single_agency_person(world, Kind::Absence, i);
    let cg = world.caregiver(&person, 0);
    let provider = world.provider(cg.provider);
    let zone = provider.metro.zone;
    let date = event_window(today, &mut rng);
    let end_date = date + Duration::days(rng.gen_range(0..10));
    vec![
        Cell::Decimal((i as i64 + 1) * 100_000, 5),
        Cell::text(format!("prod-{}", 1 + cg.provider % 3)),
        Cell::Uuid(cg.id),
        Cell::Uuid(world.office(cg.provider, 0).0),
        Cell::Uuid(provider.id),
        Cell::TimestampTz(midnight(zone, date)),
        Cell::TimestampTz(wall(zone, end_date.and_hms_opt(23, 59, 0).expect("valid"))),
        Cell::Bool(rng.gen_bool(0.95)),
        Cell::text("hha"),
        Cell::TimestampTz(
            (world.now - Duration::days(rng.gen_range(1..30)))
                .with_timezone(&zone)
                .fixed_offset(),
        ),
    ]
}

/// SETTINGS (one row, `ID` = 1), MPH (half-open bands 0–2–5–10–25–1000),
/// EXCLUDED_SSN (the planted excluded person, padded, plus a blank entry)
/// and EXCLUDED_AGENCY (the planted excluded agency plus a NULL `ProviderID`
/// row that must exclude nothing).
fn settings_rows(
    world: &World,
    planted: &[Scenario],
    extra: ExtraDistance,
) -> Vec<(TableDef, Vec<Vec<Cell>>)> {
    let now = world.now.naive_local();
    let (percent, per) = extra.stored();
    let settings = vec![vec![
        Cell::Int(percent),
        Cell::Decimal(per, 2),
        Cell::Int(7),
        Cell::Int(1),
        Cell::Int(0),
        Cell::Int(0),
        Cell::Int(0),
        Cell::Int(0),
        Cell::Int(0),
        Cell::Timestamp(now - Duration::days(1)),
        Cell::Int(2),
    ]];
    let mph = [
        (0, 2, 10),
        (2, 5, 12),
        (5, 10, 15),
        (10, 25, 25),
        (25, 1000, 40),
    ]
    .iter()
    .enumerate()
    .map(|(i, (from, to, speed))| {
        vec![
            Cell::Int(i as i64 + 1),
            Cell::Timestamp(now - Duration::days(400)),
            Cell::text("MPH"),
            Cell::Int(*from),
            Cell::Int(*to),
            Cell::Int(*speed),
        ]
    })
    .collect();
    let mut excluded_ssn: Vec<Vec<Cell>> = planted
        .iter()
        .filter(|s| s.ssn_style == SsnStyle::Excluded)
        .map(|s| vec![Cell::Null, Cell::text(format!(" {} ", s.ssn()))])
        .collect();
    excluded_ssn.push(vec![Cell::Null, Cell::text("")]);
    for (i, row) in excluded_ssn.iter_mut().enumerate() {
        row[0] = Cell::Int(i as i64 + 1);
    }
    let (excluded_id, excluded_app) = Agency::Excluded.ids(world.seed);
    let excluded_agency = vec![
        vec![
            Cell::Int(1),
            Cell::text(Agency::Excluded.attributes().0),
            Cell::Uuid(excluded_id),
            Cell::text(excluded_app.to_string()),
        ],
        vec![
            Cell::Int(2),
            Cell::text("Removed agency (no id)"),
            Cell::Null,
            Cell::Null,
        ],
    ];
    vec![
        (tables::SETTINGS, settings),
        (tables::MPH, mph),
        (tables::EXCLUDED_SSN, excluded_ssn),
        (tables::EXCLUDED_AGENCY, excluded_agency),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 21).unwrap()
    }

    #[test]
    fn blocks_bound_the_rows_held_in_memory() {
        let mut seen = 0;
        for block in Blocks::new(10_000, 256, |i| {
            (0..(i % 4)).map(|_| vec![Cell::Int(i as i64)]).collect()
        }) {
            assert!(block.len() <= 256 + 2, "block of {} rows", block.len());
            seen += block.len();
        }
        assert_eq!(
            seen,
            (0..10_000u64).map(|i| (i % 4) as usize).sum::<usize>()
        );
    }

    #[tokio::test]
    async fn same_seed_gives_identical_files_and_another_seed_does_not() {
        let dir = std::env::temp_dir().join(format!("thaw-dev-seed-test-{}", std::process::id()));
        let run = |seed: u64, sub: &str| {
            let mut opts = SeedOptions::new(seed, 3_000, today(), dir.join(sub));
            opts.block_rows = 500;
            opts.part_rows = 1_000;
            opts
        };
        let a = seed(None, &run(42, "a")).await.unwrap();
        let b = seed(None, &run(42, "b")).await.unwrap();
        let c = seed(None, &run(43, "c")).await.unwrap();
        std::fs::remove_dir_all(&dir).ok();
        assert_eq!(a.checksums, b.checksums);
        assert_ne!(
            a.checksums["ANALYTICS.BI.FACTVISITCALLPERFORMANCE_CR"],
            c.checksums["ANALYTICS.BI.FACTVISITCALLPERFORMANCE_CR"]
        );
        assert_eq!(a.rows["ANALYTICS.BI.FACTVISITCALLPERFORMANCE_CR"], 3_000);
        assert_eq!(a.rows["CONFLICTREPORT.PUBLIC.SETTINGS"], 1);
        assert_eq!(a.rows.len(), 17);
    }

    #[test]
    fn too_few_visits_is_a_clear_error() {
        let opts = SeedOptions::new(1, 10, today(), std::env::temp_dir());
        let err = futures::executor::block_on(seed(None, &opts)).unwrap_err();
        assert!(err.message.contains("below the minimum"), "{}", err.message);
    }
}
