//! `thaw`: the command-line door into thaw-engine.
//!
//! * `thaw run` — the nightly job in one process (plan → copy → merge →
//!   reconcile → conflict-create), with progress bars on a terminal and JSON
//!   logs otherwise, ending with a summary table.
//! * `thaw validate` — check a config without touching any database.
//! * `thaw migrate` — apply `schema/` migrations.
//! * `thaw reconcile` / `thaw conflicts` — run one step on demand.
//! * `thaw status` — runs, tables, chunks, rows, rows/s and failed chunks.
//! * `thaw cutover check` — the go/no-go gate for switching the application.
//! * `thaw dev seed` / `thaw dev mutate` — generate the emulated Snowflake dataset.
//!
//! Exit codes: 0 success, 1 runtime failure (including a run refused because
//! another run holds its lock), 2 bad input (config, schema, types,
//! credentials), 3 reconciliation mismatch or cutover NO-GO, 130 interrupted
//! by SIGINT (Ctrl-C), 143 interrupted by SIGTERM.

mod dev;
mod logging;
mod progress;
mod status;
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
    #[command(after_help = "Exit codes: 0 completed, 1 runtime failure (failed chunks or steps, or another run holds the lock of a selected table), \
2 bad input, 3 reconciliation mismatch, 130 interrupted by SIGINT, 143 interrupted by SIGTERM (rerun the same command to resume). \
The run's status in migration_status.migration_runs says the same; see `thaw status`.")]
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
        /// Diff a mismatching range row by row once it holds at most this many rows (at least 1).
        #[arg(long, default_value_t = 16_384, value_parser = clap::value_parser!(u64).range(1..))]
        leaf_rows: u64,
        /// Verify every row of every table. Without it a table of an
        /// incremental run is verified in its touched rows plus a rolling
        /// slice of the rest (docs/reconcile.md §5).
        #[arg(long)]
        full: bool,
        /// Every row is verified at least once per this many days: each
        /// nightly slice is 1/DAYS of the table.
        #[arg(long, value_name = "DAYS", default_value_t = 7)]
        period_days: u32,
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
    /// The dual-read job: compare Snowflake's legacy conflict tables
    /// (CONFLICTS, CONFLICTVISITMAPS) with PostgreSQL's conflict schema and
    /// record the result for the cutover gate (docs/reconcile.md §10).
    #[command(name = "dual-read", after_help = "Exit codes: 0 identical, 3 they differ, 2 the comparison could not be made for bad input \
(a missing table or column, credentials), 1 it failed otherwise (e.g. a database unreachable).")]
    DualRead {
        #[command(flatten)]
        config: ConfigArg,
        /// Snowflake database of the legacy conflict tables.
        #[arg(long, default_value = "CONFLICTREPORT")]
        sf_database: String,
        /// Snowflake schema of the legacy conflict tables.
        #[arg(long, default_value = "PUBLIC")]
        sf_schema: String,
        /// Print the report as JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// The cutover gate: go/no-go for switching the application to PostgreSQL.
    Cutover {
        #[command(subcommand)]
        command: CutoverCommand,
    },
    /// Show recent runs: status, tables, chunks, rows, rows/s, failed chunks with their errors;
    /// and per table the reconcile freshness (last full verification, rolling position, oldest
    /// unverified slice's age), flagging tables over --coverage-hours.
    Status {
        #[command(flatten)]
        config: ConfigArg,
        /// Only this run.
        #[arg(long, value_name = "UUID")]
        run_id: Option<uuid::Uuid>,
        /// How many of the newest runs to show (at least 1).
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(i64).range(1..))]
        limit: i64,
        /// Flag tables whose least recently verified slice is older than
        /// this many hours (reconcile freshness, docs/reconcile.md §5.4; the
        /// cutover gate's --coverage-hours).
        #[arg(long, value_name = "HOURS", default_value_t = 192)]
        coverage_hours: u32,
        /// Print JSON instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// Development helpers for the Snowflake emulator.
    Dev {
        #[command(subcommand)]
        command: dev::DevCommand,
    },
}

#[derive(Subcommand)]
enum CutoverCommand {
    /// Evaluate every gate (docs/reconcile.md §9) and print GO or NO-GO with
    /// the reasons; exit 0 on GO, 3 on NO-GO.
    Check {
        #[command(flatten)]
        config: ConfigArg,
        /// The operator's sign-off of the dual-read window (who, when, what
        /// matched; ops/cutover.md §1): overrides the recorded dual-read
        /// results, and is recorded in the report.
        #[arg(long, value_name = "TEXT")]
        dual_read_signed_off: Option<String>,
        /// Window in hours within which runs, reconciles and the conflict job
        /// must have succeeded.
        #[arg(long, default_value_t = 26)]
        max_age_hours: u32,
        /// Largest accepted age in hours of the last verified sync.
        #[arg(long, default_value_t = 26)]
        freshness_hours: u32,
        /// Largest accepted age in hours of any table's least recently
        /// verified slice (docs/reconcile.md §5).
        #[arg(long, default_value_t = 192)]
        coverage_hours: u32,
        /// Days of recorded dual-read results the dual-read gate looks back on;
        /// each of them must hold a clean comparison.
        #[arg(long, value_name = "DAYS", default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..))]
        dual_read_days: u32,
        /// Print the report as JSON instead of text.
        #[arg(long)]
        json: bool,
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
    /// Start a new run even if an unfinished run of the same config and
    /// selection exists; older unfinished runs are marked 'superseded' and never resumed.
    #[arg(long, conflicts_with = "resume_run_id")]
    no_resume: bool,
    /// Resume this run (it must not be completed and must have been planned
    /// with the same config, --source/--table and --full).
    #[arg(long, value_name = "UUID")]
    resume_run_id: Option<uuid::Uuid>,
    /// Resume automatically only unfinished runs (planning, running,
    /// interrupted, partial, failed) started within this many hours [default: 168].
    #[arg(long, value_name = "HOURS")]
    resume_max_age: Option<u32>,
    /// Allow truncate_onstart tables to truncate non-empty targets.
    #[arg(long)]
    allow_truncate: bool,
    /// Re-process only the rows of the one --table matching this Snowflake
    /// boolean expression (e.g. a date range); checked to be exactly one expression.
    #[arg(long = "where", value_name = "PREDICATE", requires = "tables")]
    where_predicate: Option<String>,
    /// Staged tables: load the Parquet files this earlier run unloaded
    /// instead of unloading again, for every chunk with the same predicate
    /// (docs/sync.md §13.6).
    #[arg(long, value_name = "RUN_ID")]
    reuse_unload: Option<uuid::Uuid>,
    /// Skip conflict detection.
    #[arg(long)]
    no_conflicts: bool,
    /// Recompute conflicts over the whole window.
    #[arg(long)]
    conflicts_full: bool,
    /// Reconcile every row of every table instead of the rows this run
    /// touched plus the rolling slice (docs/reconcile.md §5).
    #[arg(long)]
    reconcile_full: bool,
    /// Concurrent copy workers in total (at least 1; default
    /// max_parallel_tables × parallel_threads of the config, at most 16).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    workers: Option<u16>,
    /// Write the full run report (JSON) here.
    #[arg(long)]
    report: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    thaw_engine::allocator::return_large_buffers_to_the_system();
    let interactive = logging::init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let cancel = thaw_engine::cancel::Cancel::new();
    let config_path = cli.command.config_path();
    let code = match runtime.block_on(dispatch(cli, interactive, cancel.clone())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let e = name_config_file(e, config_path.as_deref());
            eprintln!("error: {e}");
            match cancel.reason() {
                Some(signal) => ExitCode::from(signal_exit_code(&signal)),
                None => ExitCode::from(e.kind.exit_code() as u8),
            }
        }
    };
    // Do not wait for blocking tasks (e.g. a pending stdin read) on the way out.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    code
}

impl Command {
    /// The `--config` file of the command, if it takes one.
    fn config_path(&self) -> Option<PathBuf> {
        let c = match self {
            Command::Run(a) => &a.config,
            Command::Validate(c) | Command::Migrate(c) => c,
            Command::Reconcile { config, .. } | Command::Conflicts { config, .. } | Command::DualRead { config, .. } | Command::Status { config, .. } => config,
            Command::Cutover { command: CutoverCommand::Check { config, .. } } => config,
            Command::Dev { .. } => return None,
        };
        Some(c.config.clone())
    }
}

/// A bad-input error (exit 2: a setting, credentials, a missing database,
/// table or column) names the configuration file to fix, unless its
/// message already does.
fn name_config_file(e: Error, path: Option<&std::path::Path>) -> Error {
    match path {
        Some(p) if e.kind.exit_code() == 2 && !e.message.contains(&p.display().to_string()) => {
            let message = format!("{} (configuration file: {})", e.message, p.display());
            Error { message, ..e }
        }
        _ => e,
    }
}

/// 128 + the signal number, as shells report it: 130 for SIGINT, 143 for SIGTERM.
fn signal_exit_code(signal: &str) -> u8 {
    if signal == "SIGINT" {
        130
    } else {
        143
    }
}

/// Turn SIGINT and SIGTERM into a stop request: the run stops handing out
/// chunks, abandons the chunks in flight (their transactions roll back) and
/// records itself `interrupted`. A second signal exits at once.
fn handle_signals(cancel: thaw_engine::cancel::Cancel) {
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) else {
            tracing::warn!("cannot install signal handlers; SIGINT/SIGTERM will stop thaw without recording the run");
            return;
        };
        loop {
            let name = tokio::select! {
                _ = int.recv() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            };
            if cancel.is_cancelled() {
                eprintln!("{name} again: exiting now; the run stays as recorded and resumes with the same command");
                std::process::exit(signal_exit_code(name) as i32);
            }
            eprintln!("{name} received: stopping at the next chunk boundary (chunks in flight are rolled back); send it again to exit at once");
            cancel.cancel(name);
        }
    });
}

async fn dispatch(cli: Cli, interactive: bool, cancel: thaw_engine::cancel::Cancel) -> Result<()> {
    match cli.command {
        Command::Run(args) => {
            handle_signals(cancel.clone());
            run_command(args, interactive, cancel).await
        }
        Command::Validate(c) => {
            // A config with a `conflicts` section and neither `snowflake` nor
            // `sources` is one for `thaw conflicts` alone: valid when that
            // command would accept it, and said so (the sync commands refuse it).
            if let Ok(config) = Config::load_for(&c.config, Purpose::Conflicts) {
                if config.snowflake.account.is_empty() && config.sources.is_empty() && config.conflicts.is_some() {
                    println!(
                        "{}: valid for `thaw conflicts` only (no snowflake and no sources, which thaw run, reconcile and the other sync commands need)",
                        c.config.display()
                    );
                    return Ok(());
                }
            }
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
        Command::Reconcile { config, run_id, report, json, bisect_factor, leaf_rows, full, period_days } => {
            let config = Config::load(&config.config)?;
            if bisect_factor < 2 {
                return Err(Error::config(format!("--bisect-factor must be at least 2 (got {bisect_factor})")));
            }
            if period_days == 0 {
                return Err(Error::config("--period-days must be at least 1"));
            }
            if let Some(path) = &report {
                check_report_path(path)?;
            }
            let options = thaw_engine::reconcile::ReconcileOptions { factor: bisect_factor, leaf_rows, full, period_days, ..Default::default() };
            // Reconcile records its outcome in migration_status (results,
            // coverage, the run's status): a read-only status database is
            // refused before the comparison, as `thaw run` refuses it, instead
            // of a bare SQLSTATE 25006 once every table was compared.
            let writable = async {
                let status = thaw_engine::sink::connect_status(&config).await?;
                thaw_engine::migrations::refuse_read_only(&status).await
            };
            let reconciled = match writable.await {
                Ok(()) => thaw_engine::reconcile::reconcile_on_demand(&config, &RunRequest { run_id }, options).await,
                Err(e) => Err(e),
            };
            let (resp, details, run_status) = match reconciled {
                Ok(r) => r,
                Err(e) => {
                    // The report file says what happened also when nothing could be reconciled.
                    let failed = serde_json::json!({ "status": "failed", "error": { "step": "reconcile", "kind": e.kind, "message": e.message } });
                    return outcome_and_report(Err(e), report.as_deref(), &failed);
                }
            };
            let full = serde_json::json!({ "summary": resp, "tables": details, "run_status": run_status });
            if json {
                println!("{}", serde_json::to_string_pretty(&full).unwrap_or_default());
            } else {
                summary::print_reconcile(&resp, &details);
                println!("run {run_id}: '{run_status}' in migration_status.migration_runs");
            }
            outcome_and_report(thaw_engine::reconcile::require_match(&resp), report.as_deref(), &full)
        }
        Command::Conflicts { config, full, today } => {
            let mut config = Config::load_for(&config.config, Purpose::Conflicts)?;
            let conflicts = config.conflicts.as_mut().ok_or_else(|| Error::internal("conflicts section checked by load_for"))?;
            if let Some(today) = today {
                conflicts.today = Some(today.format("%Y-%m-%d").to_string());
            }
            let mut client = thaw_engine::sink::connect_configured(&config.postgres, &conflicts.database, "conflicts.database").await?;
            thaw_engine::migrations::migrate_if_permitted(&mut client).await?;
            drop(client);
            handle_signals(cancel.clone());
            let request = ConflictCreateRequest { run_id: None, full };
            let summary = thaw_engine::steps::conflict_create_interruptible(&config, &request, Some(&cancel)).await?;
            println!("{}", serde_json::to_string_pretty(&summary).unwrap_or_default());
            Ok(())
        }
        Command::DualRead { config, sf_database, sf_schema, json } => {
            let config = Config::load(&config.config)?;
            let tables_at = format!("{sf_database}.{sf_schema}");
            let options = thaw_engine::reconcile::dual_read::DualReadOptions { sf_database, sf_schema };
            let report = thaw_engine::reconcile::dual_read::run(&config, &options).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
            } else {
                print!("{}", report.render());
            }
            match report.status.as_str() {
                "ok" => Ok(()),
                "mismatch" => Err(Error::new(thaw_engine::ErrorKind::ReconcileMismatch, "the dual-read comparison found differences (listed above)")),
                // The failure's own kind: bad input (a missing table, credentials) exits 2, the rest 1.
                _ => {
                    let kind = report.error_kind.unwrap_or(thaw_engine::ErrorKind::Unreachable);
                    // The recorded error reads "<kind>: <message>"; the line starts with the kind once.
                    let error = report.error.unwrap_or_default();
                    let message = error.strip_prefix(&format!("{kind}: ")).unwrap_or(&error);
                    let hint = if kind == thaw_engine::ErrorKind::SchemaMismatch {
                        format!(" (looked in {tables_at}: give --sf-database and --sf-schema of the legacy conflict tables)")
                    } else {
                        String::new()
                    };
                    Err(Error::new(kind, format!("the dual-read comparison could not be made: {message}{hint}")))
                }
            }
        }
        Command::Cutover { command: CutoverCommand::Check { config, dual_read_signed_off, max_age_hours, freshness_hours, coverage_hours, dual_read_days, json } } => {
            let config = Config::load(&config.config)?;
            let options = thaw_engine::cutover::GateOptions { max_age_hours, freshness_hours, coverage_hours, dual_read_signed_off, dual_read_days };
            let report = thaw_engine::cutover::check(&config, &options).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
            } else {
                print!("{}", report.render());
            }
            if report.go {
                Ok(())
            } else {
                let failed: Vec<&str> = report.gates.iter().filter(|g| !g.passed).map(|g| g.name).collect();
                Err(Error::new(thaw_engine::ErrorKind::ReconcileMismatch, format!("cutover is NO-GO: {} gate(s) failed ({})", failed.len(), failed.join(", "))))
            }
        }
        Command::Status { config, run_id, limit, coverage_hours, json } => {
            let config = Config::load(&config.config)?;
            let pg = thaw_engine::sink::connect_status(&config).await?;
            if !thaw_engine::cutover::status_tables_exist(&pg).await? {
                // Nothing has run against this database yet: say so, not "relation does not exist".
                let note = format!("the status database '{}' is not migrated yet (nothing has run against it): `thaw run` migrates it first, or run `thaw migrate`", config.status_database());
                if json {
                    let freshness = serde_json::json!({ "coverage_hours": coverage_hours, "tables": [] });
                    let status = serde_json::json!({ "runs": [], "freshness": freshness, "migrated": false, "note": note });
                    println!("{}", serde_json::to_string_pretty(&status).unwrap_or_default());
                } else {
                    println!("no runs recorded: {note}");
                }
                return match run_id {
                    Some(id) => Err(Error::config(format!("run {id} does not exist: {note}"))),
                    None => Ok(()),
                };
            }
            use thaw_engine::sync::status_postgres::PgStatusStore;
            use thaw_engine::sync::status_store::StatusStore;
            let runs = PgStatusStore::new(&pg).overview(run_id, limit).await?;
            if let (Some(id), true) = (run_id, runs.is_empty()) {
                return Err(Error::config(format!("run {id} does not exist in migration_status.migration_runs")));
            }
            let threshold = f64::from(coverage_hours);
            let freshness = thaw_engine::reconcile::coverage::freshness_of_tables(&pg, &config, chrono::Utc::now(), threshold).await?;
            if json {
                let freshness = serde_json::json!({ "coverage_hours": coverage_hours, "tables": freshness });
                println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "runs": runs, "freshness": freshness })).unwrap_or_default());
            } else {
                status::print(&runs);
                status::print_freshness(&freshness, threshold);
            }
            Ok(())
        }
        Command::Dev { command } => dev::run(command).await,
    }
}

/// `--today`: a calendar date in YYYY-MM-DD form.
fn parse_date(text: &str) -> std::result::Result<chrono::NaiveDate, String> {
    chrono::NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").map_err(|e| format!("'{text}' is not a date in YYYY-MM-DD form ({e}), e.g. 2025-03-10"))
}

async fn run_command(args: RunArgs, interactive: bool, cancel: thaw_engine::cancel::Cancel) -> Result<()> {
    let config = Arc::new(Config::load(&args.config.config)?);
    if let Some(path) = &args.report {
        check_report_path(path)?;
    }
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
            where_predicate: args.where_predicate,
            reuse_unload: args.reuse_unload,
        },
        conflicts: !args.no_conflicts,
        conflicts_full: args.conflicts_full,
        reconcile_full: args.reconcile_full,
        max_workers: args.workers.map(usize::from),
        cancel: Some(cancel),
    };
    let observer: Arc<dyn runner::Observer> = if interactive { Arc::new(progress::Bars::new()) } else { Arc::new(progress::Logs) };
    let report = match runner::run(config, options, observer).await {
        Ok(r) => r,
        Err(e) => {
            // No run report (lock refused, plan failed, interrupted while
            // planning): the report file still says what happened.
            let text = serde_json::json!({ "status": "failed", "error": { "step": "plan", "kind": e.kind, "message": e.message } });
            return outcome_and_report(Err(e), args.report.as_deref(), &text);
        }
    };
    summary::print(&report);
    outcome_and_report(report.outcome(), args.report.as_deref(), &report)
}

/// Refuse a `--report` path that cannot be written, before any work: its
/// directory must exist and the path must not be a directory.
///
/// Errors: [`thaw_engine::ErrorKind::ConfigInvalid`] (exit 2) naming the path.
fn check_report_path(path: &std::path::Path) -> Result<()> {
    let directory = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    let problem = if path.is_dir() {
        "is a directory".to_string()
    } else if !directory.is_dir() {
        format!("is in {}, which is not an existing directory", directory.display())
    } else {
        return Ok(());
    };
    Err(Error::config(format!("--report {} {problem}; create the directory or pass another file path (nothing was run)", path.display())))
}

/// Write `report` to `path` (when given) and return `outcome`: the
/// command's own error comes first, so a report that cannot be written
/// never hides why the command failed (that write error is printed on
/// stderr); a report that cannot be written after a success is the error.
fn outcome_and_report(outcome: Result<()>, path: Option<&std::path::Path>, report: &impl serde::Serialize) -> Result<()> {
    let written = path.map_or(Ok(()), |p| write_report(p, report));
    match (outcome, written) {
        (Err(e), Err(w)) => {
            eprintln!("error: {w}");
            Err(e)
        }
        (Err(e), Ok(())) => Err(e),
        (Ok(()), written) => written,
    }
}

fn write_report(path: &std::path::Path, report: &impl serde::Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(report).unwrap_or_default();
    std::fs::write(path, text).map_err(|e| Error::new(thaw_engine::ErrorKind::Internal, format!("cannot write the report to {}: {e}; check the directory exists and is writable", path.display())))
}
