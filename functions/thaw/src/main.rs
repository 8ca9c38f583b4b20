//! `thaw`: the command-line door into thaw-engine.
//!
//! * `thaw run` — the nightly job in one process (plan → copy → merge →
//!   reconcile → conflict-create), with progress bars on a terminal and JSON
//!   logs otherwise, ending with a summary table.
//! * `thaw validate` — check a config without touching any database.
//! * `thaw migrate` — apply `schema/` migrations.
//! * `thaw reconcile` / `thaw conflicts` — run one step on demand.
//! * `thaw dev seed` / `thaw dev mutate` — generate the emulated Snowflake dataset.
//!
//! Exit codes: 0 success, 1 runtime failure, 2 bad input (config, schema,
//! types, credentials), 3 reconciliation mismatch.

mod dev;
mod logging;
mod progress;
mod summary;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use thaw_engine::config::{Config, Purpose};
use thaw_engine::contract::{ConflictCreateRequest, PlanRequest, RunRequest, SyncMode};
use thaw_engine::runner::{self, RunOptions};
use thaw_engine::{Error, Result};

#[derive(Parser)]
#[command(name = "thaw", version, about = "Move an operational workload off Snowflake onto PostgreSQL: sync, reconcile, detect conflicts.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct ConfigArg {
    /// Path to config.json (legacy format; ${VAR} and ${VAR:-default} expanded).
    #[arg(long, short, env = "THAW_CONFIG")]
    config: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole nightly job: plan, copy, merge, reconcile, conflict-create.
    Run(RunArgs),
    /// Check a configuration file without touching any database.
    Validate(ConfigArg),
    /// Apply the schema migrations to the status database.
    Migrate(ConfigArg),
    /// Reconcile the tables of a run.
    Reconcile {
        #[command(flatten)]
        config: ConfigArg,
        /// Run to reconcile.
        #[arg(long)]
        run_id: uuid::Uuid,
    },
    /// Run conflict detection over the synced analytics tables.
    ///
    /// Needs only the `postgres` and `conflicts` sections of the config
    /// (`snowflake` and `sources` may be absent). Applies the schema
    /// migrations to `conflicts.database`, then detects and prints the summary.
    Conflicts {
        #[command(flatten)]
        config: ConfigArg,
        /// Recompute the whole candidate window [today - 2 years, today + 45 days]
        /// (docs/conflicts.md §D1). Without it the run is incremental: only the
        /// (SSN, visit date) keys touched since the last successful run's
        /// watermark; it falls back to a full run on the first run or when the
        /// settings (SETTINGS, MPH, exclusions, providers) changed. The summary
        /// says which mode ran and why ("mode", "mode_reason").
        #[arg(long)]
        full: bool,
        /// Evaluate as of this date (YYYY-MM-DD) instead of the current date in
        /// conflicts.time_zone; overrides the config key conflicts.today.
        #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_date)]
        today: Option<chrono::NaiveDate>,
    },
    /// Development helpers for the Snowflake emulator.
    Dev {
        #[command(subcommand)]
        command: dev::DevCommand,
    },
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// Only these sources (repeatable; default: every enabled source).
    #[arg(long = "source")]
    sources: Vec<String>,
    /// Only these tables, by source or target name (repeatable).
    #[arg(long = "table")]
    tables: Vec<String>,
    /// Ignore watermarks and plan every row again.
    #[arg(long)]
    full: bool,
    /// Never resume an unfinished run.
    #[arg(long)]
    no_resume: bool,
    /// Resume this run.
    #[arg(long)]
    resume_run_id: Option<uuid::Uuid>,
    /// Resume only runs younger than this many hours (default 168).
    #[arg(long)]
    resume_max_age: Option<u32>,
    /// Allow truncate_onstart tables to truncate non-empty targets.
    #[arg(long)]
    allow_truncate: bool,
    /// Skip conflict detection.
    #[arg(long)]
    no_conflicts: bool,
    /// Recompute conflicts over the whole window.
    #[arg(long)]
    conflicts_full: bool,
    /// Concurrent copy workers in total.
    #[arg(long)]
    workers: Option<usize>,
    /// Write the full run report (JSON) here.
    #[arg(long)]
    report: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let interactive = logging::init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(dispatch(cli, interactive)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.kind.exit_code() as u8)
        }
    }
}

async fn dispatch(cli: Cli, interactive: bool) -> Result<()> {
    match cli.command {
        Command::Run(args) => run_command(args, interactive).await,
        Command::Validate(c) => {
            let config = Config::load(&c.config)?;
            let tables: usize = config.sources.iter().map(|s| s.tables.iter().filter(|t| t.enabled).count()).sum();
            println!("{}: valid ({} sources, {} enabled tables, config_hash {})", c.config.display(), config.sources.len(), tables, config.config_hash());
            Ok(())
        }
        Command::Migrate(c) => {
            let config = Config::load(&c.config)?;
            let applied = thaw_engine::migrations::migrate_databases(&config).await?;
            println!("applied {} migration(s){}", applied.len(), if applied.is_empty() { String::new() } else { format!(": {}", applied.join(", ")) });
            Ok(())
        }
        Command::Reconcile { config, run_id } => {
            let config = Config::load(&config.config)?;
            let (resp, details) = thaw_engine::reconcile::reconcile_run(&config, &RunRequest { run_id }).await?;
            println!("{}", serde_json::to_string_pretty(&details).unwrap_or_default());
            if resp.mismatches > 0 {
                return Err(Error::new(thaw_engine::ErrorKind::ReconcileMismatch, format!("{} table(s) differ", resp.mismatches)));
            }
            Ok(())
        }
        Command::Conflicts { config, full, today } => {
            let mut config = Config::load_for(&config.config, Purpose::Conflicts)?;
            let conflicts = config.conflicts.as_mut().ok_or_else(|| Error::internal("conflicts section checked by load_for"))?;
            if let Some(today) = today {
                conflicts.today = Some(today.format("%Y-%m-%d").to_string());
            }
            let mut client = thaw_engine::sink::connect(&config.postgres, &conflicts.database).await?;
            thaw_engine::migrations::migrate(&mut client).await?;
            drop(client);
            let summary = thaw_engine::steps::conflict_create(&config, &ConflictCreateRequest { run_id: None, full }).await?;
            println!("{}", serde_json::to_string_pretty(&summary).unwrap_or_default());
            Ok(())
        }
        Command::Dev { command } => dev::run(command).await,
    }
}

/// `--today`: a calendar date in YYYY-MM-DD form.
fn parse_date(text: &str) -> std::result::Result<chrono::NaiveDate, String> {
    chrono::NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").map_err(|e| format!("'{text}' is not a date in YYYY-MM-DD form ({e}), e.g. 2025-03-10"))
}

async fn run_command(args: RunArgs, interactive: bool) -> Result<()> {
    let config = Arc::new(Config::load(&args.config.config)?);
    let options = RunOptions {
        request: PlanRequest {
            sources: (!args.sources.is_empty()).then_some(args.sources),
            tables: (!args.tables.is_empty()).then_some(args.tables),
            mode: if args.full { SyncMode::Full } else { SyncMode::Incremental },
            resume_run_id: args.resume_run_id,
            no_resume: args.no_resume,
            resume_max_age_hours: args.resume_max_age,
            allow_truncate: args.allow_truncate,
            manifest_uri: None,
        },
        conflicts: !args.no_conflicts,
        conflicts_full: args.conflicts_full,
        max_workers: args.workers,
    };
    let observer: Arc<dyn runner::Observer> = if interactive { Arc::new(progress::Bars::new()) } else { Arc::new(progress::Logs) };
    let report = runner::run(config, options, observer).await?;
    if let Some(path) = &args.report {
        let text = serde_json::to_string_pretty(&report).unwrap_or_default();
        std::fs::write(path, text).map_err(|e| Error::config(format!("cannot write report {}: {e}", path.display())))?;
    }
    summary::print(&report);
    report.outcome()
}
