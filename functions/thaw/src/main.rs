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
use thaw_engine::config::Config;
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
        /// Write the full reconcile report (JSON: summary and per-table
        /// details) here; written whatever the outcome.
        #[arg(long)]
        report: Option<PathBuf>,
        /// Print the report as JSON instead of the human summary.
        #[arg(long)]
        json: bool,
        /// Split a mismatching key-hash range into this many (at least 2).
        #[arg(long, default_value_t = 32)]
        bisect_factor: u64,
        /// Diff a mismatching range row by row once it holds at most this many rows.
        #[arg(long, default_value_t = 16_384)]
        leaf_rows: u64,
    },
    /// Run conflict detection over the synced analytics tables.
    Conflicts {
        #[command(flatten)]
        config: ConfigArg,
        /// Recompute the whole window.
        #[arg(long)]
        full: bool,
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
        Command::Reconcile { config, run_id, report, json, bisect_factor, leaf_rows } => {
            let config = Config::load(&config.config)?;
            if bisect_factor < 2 {
                return Err(Error::config(format!("--bisect-factor must be at least 2 (got {bisect_factor})")));
            }
            let options = thaw_engine::reconcile::ReconcileOptions { factor: bisect_factor, leaf_rows, ..Default::default() };
            let (resp, details) = thaw_engine::reconcile::reconcile_run_with(&config, &RunRequest { run_id }, options).await?;
            let full = serde_json::json!({ "summary": resp, "tables": details });
            if let Some(path) = &report {
                write_report(path, &full)?;
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&full).unwrap_or_default());
            } else {
                summary::print_reconcile(&resp, &details);
            }
            thaw_engine::reconcile::require_match(&resp)
        }
        Command::Conflicts { config, full } => {
            let config = Config::load(&config.config)?;
            thaw_engine::migrations::migrate_databases(&config).await?;
            let summary = thaw_engine::steps::conflict_create(&config, &ConflictCreateRequest { run_id: None, full }).await?;
            println!("{}", serde_json::to_string_pretty(&summary).unwrap_or_default());
            Ok(())
        }
        Command::Dev { command } => dev::run(command).await,
    }
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
        write_report(path, &report)?;
    }
    summary::print(&report);
    report.outcome()
}

/// Write `value` as pretty JSON to `path`.
fn write_report(path: &std::path::Path, value: &impl serde::Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Error::internal(format!("report does not serialise: {e}")))?;
    std::fs::write(path, text).map_err(|e| Error::config(format!("cannot write report {}: {e}", path.display())))
}
