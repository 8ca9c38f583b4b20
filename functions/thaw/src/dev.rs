//! `thaw dev`: the emulated Snowflake dataset for demos and tests.
//!
//! * `seed` — generate the Conflict Management dataset into the emulator
//!   (and create the PostgreSQL target database if it is missing);
//! * `mutate` — update, insert and delete background visits;
//! * `check-planted` — compare the open `conflictvisitmaps` rows with the
//!   planted conflicts (exact set and flags); exit 1 on any difference.

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::NaiveDate;
use clap::{Args, Subcommand};
use thaw_engine::config::Config;
use thaw_devdata::{self as dev, MutateOptions, RuleFlags, SeedOptions};
use thaw_engine::{Error, ErrorKind, Result};
use uuid::Uuid;

/// Development commands.
#[derive(Subcommand)]
pub enum DevCommand {
    /// Generate the dataset into Snowflake (the emulator): ANALYTICS.BI and CONFLICTREPORT.PUBLIC.
    Seed(DatasetArgs),
    /// Update, insert and delete some background visits (planted conflicts stay as they are).
    Mutate {
        #[command(flatten)]
        dataset: DatasetArgs,
        /// Selects which visits change.
        #[arg(long, default_value_t = 1)]
        mutation_seed: u64,
        /// Visits to update [default: 500, or a quarter of the background visits when fewer].
        #[arg(long)]
        updates: Option<u64>,
        /// Visits to insert [default: 200, or a quarter of the background visits when fewer].
        #[arg(long)]
        inserts: Option<u64>,
        /// Visits to delete [default: 100, or a twentieth of the background visits when fewer].
        #[arg(long)]
        deletes: Option<u64>,
    },
    /// Check that conflict detection found exactly the planted conflicts.
    CheckPlanted(DatasetArgs),
}

/// Which dataset: the same values must be given to seed, mutate and check-planted.
#[derive(Args)]
pub struct DatasetArgs {
    /// Path to config.json (Snowflake connection; PostgreSQL target and conflicts database).
    #[arg(long, short, env = "THAW_CONFIG")]
    config: PathBuf,
    /// Rows of FACTVISITCALLPERFORMANCE_CR (planted visits included).
    #[arg(long, default_value_t = 100_000)]
    visits: u64,
    /// Generator seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Anchor date of the conflict window (default: today in the configured time zone).
    #[arg(long)]
    today: Option<NaiveDate>,
    /// Directory for the generated CSV parts (default: a temporary directory).
    #[arg(long)]
    out_dir: Option<PathBuf>,
}

impl DatasetArgs {
    fn options(&self, config: &Config) -> Result<SeedOptions> {
        let today = match (self.today, config.conflicts.as_ref().and_then(|c| c.today.as_deref())) {
            (Some(d), _) => d,
            (None, Some(d)) => NaiveDate::parse_from_str(d, "%Y-%m-%d").map_err(|e| Error::config(format!("conflicts.today: {e}")))?,
            (None, None) => {
                let tz: chrono_tz::Tz = config
                    .conflicts
                    .as_ref()
                    .and_then(|c| c.time_zone.as_deref())
                    .unwrap_or("America/New_York")
                    .parse()
                    .map_err(|_| Error::config("conflicts.time_zone is not an IANA zone"))?;
                chrono::Utc::now().with_timezone(&tz).date_naive()
            }
        };
        let dir = self.out_dir.clone().unwrap_or_else(|| std::env::temp_dir().join(format!("thaw-seed-{}", Uuid::new_v4().simple())));
        Ok(SeedOptions::new(self.seed, self.visits, today, dir))
    }
}

/// Run a dev command.
pub async fn run(command: DevCommand) -> Result<()> {
    match command {
        DevCommand::Seed(args) => {
            let config = Config::load(&args.config)?;
            let opts = args.options(&config)?;
            ensure_database(&config).await?;
            let source = thaw_engine::source::connect(&config.snowflake, None, None).await?;
            let report = dev::seed(Some(&source), &opts).await?;
            let _ = std::fs::remove_dir_all(&opts.out_dir);
            println!(
                "seeded {} visits (seed {}, today {}) in {:.1} s: {} tables, {} planted conflict rows, {} near misses",
                opts.visits,
                opts.seed,
                opts.today,
                report.seconds,
                report.rows.len(),
                report.planted_pairs,
                report.planted_near_misses
            );
            Ok(())
        }
        DevCommand::Mutate { dataset, mutation_seed, updates, inserts, deletes } => {
            let config = Config::load(&dataset.config)?;
            let seeded = dataset.options(&config)?;
            let source = thaw_engine::source::connect(&config.snowflake, None, None).await?;
            let (default_updates, default_inserts, default_deletes) = dev::default_counts(&seeded);
            let opts = MutateOptions {
                seeded,
                mutation_seed,
                updates: updates.unwrap_or(default_updates),
                inserts: inserts.unwrap_or(default_inserts),
                deletes: deletes.unwrap_or(default_deletes),
                now: chrono::Utc::now(),
            };
            let r = dev::mutate(&source, &opts).await?;
            println!("mutated in {:.1} s: {} updated, {} inserted, {} deleted", r.seconds, r.updated, r.inserted, r.deleted);
            Ok(())
        }
        DevCommand::CheckPlanted(args) => {
            let config = Config::load(&args.config)?;
            let opts = args.options(&config)?;
            check_planted(&config, &opts).await
        }
    }
}

/// Create the PostgreSQL target database of every source if it does not exist.
async fn ensure_database(config: &Config) -> Result<()> {
    let admin = thaw_engine::sink::connect(&config.postgres, "postgres").await?;
    let mut names: Vec<&str> = config.sources.iter().map(|s| s.target_pg_database.as_str()).collect();
    if let Some(c) = &config.conflicts {
        names.push(&c.database);
    }
    names.sort();
    names.dedup();
    for name in names {
        let exists: bool = admin
            .query_one("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", &[&name])
            .await
            .map_err(|e| thaw_engine::error::from_postgres(e, "listing databases"))?
            .get(0);
        if !exists {
            admin
                .batch_execute(&format!("CREATE DATABASE {}", thaw_engine::sink::ident(name)))
                .await
                .map_err(|e| thaw_engine::error::from_postgres(e, format!("creating database {name}")))?;
            println!("created PostgreSQL database {name}");
        }
    }
    Ok(())
}


fn flags_of(f: &RuleFlags) -> [bool; 7] {
    [f.same_sch_time, f.same_visit_time, f.sch_and_visit_time_same, f.sch_over_another_sch_time, f.visit_time_over_another_visit_time, f.sch_time_over_visit_time, f.distance]
}

async fn check_planted(config: &Config, opts: &SeedOptions) -> Result<()> {
    let settings = config.conflicts.as_ref().ok_or_else(|| Error::config("check-planted needs a 'conflicts' section in the config"))?;
    let schema = settings.conflict_schema.as_deref().unwrap_or("conflict");
    let pg = thaw_engine::sink::connect_configured(&config.postgres, &settings.database, "conflicts.database").await?;
    let cols: Vec<String> = thaw_engine::conflicts::RuleFlags::COLUMNS.iter().map(|c| format!("\"{c}\"")).collect();
    let rows = pg
        .query(
            &format!(
                "SELECT \"VisitID\", \"ConVisitID\", {} FROM {}.conflictvisitmaps WHERE coalesce(\"StatusFlag\", 'U') NOT IN ('R', 'D')",
                cols.join(", "),
                thaw_engine::sink::ident(schema)
            ),
            &[],
        )
        .await
        .map_err(|e| thaw_engine::error::from_postgres(e, "reading conflictvisitmaps"))?;
    let found: BTreeMap<(Uuid, Uuid), [bool; 7]> = rows
        .iter()
        .map(|r| {
            let mut flags = [false; 7];
            for (i, f) in flags.iter_mut().enumerate() {
                *f = r.get::<_, Option<String>>(i + 2).as_deref() == Some("Y");
            }
            ((r.get(0), r.get(1)), flags)
        })
        .collect();
    let expected: BTreeMap<(Uuid, Uuid), ([bool; 7], &'static str)> = dev::planted_conflicts(opts.seed, opts.today, opts.extra_distance)
        .iter()
        .map(|p| ((p.visit_id, p.con_visit_id), (flags_of(&p.flags), p.scenario)))
        .collect();
    let missing: Vec<String> = expected.iter().filter(|(k, _)| !found.contains_key(k)).map(|(k, (_, s))| format!("{s} {}→{}", k.0, k.1)).collect();
    let unexpected: Vec<String> = found.keys().filter(|k| !expected.contains_key(k)).map(|k| format!("{}→{}", k.0, k.1)).collect();
    let wrong: Vec<String> = expected
        .iter()
        .filter_map(|(k, (f, s))| found.get(k).filter(|g| *g != f).map(|g| format!("{s} {}→{}: expected {f:?}, found {g:?}", k.0, k.1)))
        .collect();
    println!(
        "planted conflicts: {} expected, {} found open, {} missing, {} unexpected, {} with wrong flags",
        expected.len(),
        found.len(),
        missing.len(),
        unexpected.len(),
        wrong.len()
    );
    for line in missing.iter().chain(&unexpected).chain(&wrong).take(30) {
        println!("  {line}");
    }
    if missing.is_empty() && unexpected.is_empty() && wrong.is_empty() {
        Ok(())
    } else {
        Err(Error::new(ErrorKind::Internal, "conflict detection does not match the planted conflicts (see the lines above)"))
    }
}
