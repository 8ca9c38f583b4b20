//! Versioned SQL migrations from `schema/` (refinery), applied by the engine,
//! never by hand.
//!
//! * `V1__migration_status.sql`: the state store and the staging schema.
//! * `V2__analytics.sql`: the analytics mirror (sync targets).
//! * `V3__conflict.sql`: the conflict schema the web application reads.
//! * `V4__roles.sql`: the database roles and their least-privilege grants.
//! * `V5__run_state.sql`: run statuses, planning state and the run holder.
//! * `V6__index_management.sql`: index definitions dropped by `disable_index`.
//! * `V8__reconcile_state.sql`: per-run, per-table reconcile results.
//! * `V9__conflict_app_indexes.sql`: indexes of the application's reads.
//! * `V10__conflict_watermark.sql`: the incremental conflict run's watermark.
//! * `V12__conflict_events.sql`: indexes of the in-service and PTO lookups.
//! * `V13__conflict_side_tables.sql`: notifications, log history, payer/provider
//!   reminders, agency contacts and the payer-provider dimension.
//! * `V14__reconcile_coverage.sql`: per-table reconcile coverage (rolling slice, freshness).
//! * `V16__staged_files.sql`: the staged path's files and per-chunk unloads.
//! * `V19__conflict_pending_indexes.sql`: partial indexes of the conflict rows
//!   still waiting for `CONFLICTID`, `ReverseUUID` or `CRDATEUNIQUE`.
//! * `V20__conflict_group_closure.sql`: the indexes the `GroupID` closure walks
//!   (rows waiting for a group id, `ConVisitID`).
//! * `V21__row_hashes.sql`: the row-hash side tables' schema and registry
//!   (docs/reconcile.md §4.2).
//! * `V22__canonical_json.sql`: `thaw_reconcile.canonical_json` and
//!   `canonical_float`, PostgreSQL's canonical JSON and float forms for reconcile (docs/reconcile.md §3.3).
//! * `V23__conflict_lifecycle_indexes.sql`: partial indexes of the conflict
//!   rows the nightly lifecycle statements look for (docs/conflicts.md §14).
//!
//! (V7 was reserved and never used; refinery applies the files in version order.)
//!
//! [`migrate`] serialises concurrent callers with an advisory lock, so two
//! Lambdas starting at once cannot race.

use tokio_postgres::Client;

use crate::error::{from_postgres, Error, ErrorKind, Result};

mod embedded {
    refinery::embed_migrations!("../../schema");
}

/// Advisory lock key for migrations ("thaw" in ASCII).
const MIGRATION_LOCK: i64 = 0x7468_6177_0001;

/// Apply every pending migration to the database `client` is connected to.
/// Returns the names of the migrations applied by this call.
///
/// Errors: [`ErrorKind::Internal`] naming the failing migration; the failed
/// migration's transaction is rolled back and a rerun continues from there.
pub async fn migrate(client: &mut Client) -> Result<Vec<String>> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(|e| from_postgres(e, "taking the schema migration lock"))?;
    let report = embedded::migrations::runner().set_grouped(false).run_async(client).await;
    let _ = client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]).await;
    let report = report.map_err(|e| {
        Error::new(
            ErrorKind::Internal,
            format!("applying schema migrations failed: {e}. The failing migration was rolled back; fix it and rerun."),
        )
    })?;
    Ok(report.applied_migrations().iter().map(|m| m.to_string()).collect())
}

/// Apply pending migrations to every database a local run uses: the status
/// database and, when configured, the conflicts database. The local runner
/// and the CLI call this; the Lambdas never do (their roles cannot create
/// tables; the schema-migrate function migrates on every deploy).
pub async fn migrate_databases(config: &crate::config::Config) -> Result<Vec<String>> {
    let mut databases = vec![config.status_database().to_string()];
    if let Some(c) = &config.conflicts {
        if !databases.contains(&c.database) {
            databases.push(c.database.clone());
        }
    }
    let mut applied = Vec::new();
    for db in databases {
        let mut client = crate::sink::connect(&config.postgres, &db).await?;
        for m in migrate(&mut client).await? {
            applied.push(format!("{db}: {m}"));
        }
    }
    Ok(applied)
}
