//! `disable_index`: drop secondary indexes for the load, restore them at
//! merge, crash-safely (docs/sync.md §7).
//!
//! * **Drop** ([`disable`]), once per table of a run, before its first chunk
//!   writes: under an advisory lock and the table's status row lock, every
//!   *secondary* index of the target is recorded in
//!   `migration_status.migration_index_status` with its
//!   `pg_get_indexdef()` definition and dropped, in one transaction with
//!   `indexes_disabled = true`. Never dropped: primary keys, unique indexes
//!   (upserts' `ON CONFLICT` needs them), exclusion indexes and any index
//!   backing a constraint. When the loader role does not own the table it
//!   cannot drop indexes: the load goes on with indexes in place and the
//!   warning names the role and the grant that would allow it.
//! * **Restore** ([`restore`]), at merge once the table's chunks all
//!   completed: each recorded index is recreated from its definition in its
//!   own transaction, which also marks it `restored`; a failure is recorded
//!   (`failed`, with the error) and does not stop the others. The next merge
//!   of the run (a resume) retries whatever is not restored.
//!
//! A crash between drop and restore therefore loses nothing: the
//! definitions are in PostgreSQL, and resuming the run restores them.

use tokio_postgres::Client;

use crate::error::{from_postgres, Result};
use crate::failpoints;
use crate::sink;
use crate::sync::plan::TablePlan;
use crate::sync::status::TableKey;

/// Outcome of restoring a table's indexes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestoreReport {
    /// `schema.index` names recreated by this call.
    pub restored: Vec<String>,
    /// `schema.index: error` for each index whose restore failed (retried on resume).
    pub failed: Vec<String>,
}

/// Drop and record the secondary indexes of the plan's target, once per run
/// and table (later calls find `indexes_disabled` set and return at once).
///
/// Errors: catalog, DDL or status-store failures with their SQLSTATE kind;
/// the transaction rolls back, so no index is dropped without its record.
pub async fn disable(pg: &mut Client, plan: &TablePlan, key: &TableKey) -> Result<()> {
    let target = plan.target_fqn();
    let tx = pg.transaction().await.map_err(|e| from_postgres(e, "starting the index transaction"))?;
    tx.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&format!("thaw-indexes:{target}")])
        .await
        .map_err(|e| from_postgres(e, "locking the target's indexes"))?;
    let done: Option<bool> = tx
        .query_opt(
            "SELECT indexes_disabled FROM migration_status.migration_table_status \
             WHERE run_id = $1 AND source_database = $2 AND source_schema = $3 AND source_table = $4 FOR UPDATE",
            &[&key.run_id, &key.source_database, &key.source_schema, &key.source_table],
        )
        .await
        .map_err(|e| from_postgres(e, "reading indexes_disabled"))?
        .map(|r| r.get(0));
    if done != Some(false) {
        return Ok(());
    }
    let rows = tx
        .query(
            "SELECT ns.nspname::text, ic.relname::text, pg_get_indexdef(i.indexrelid), \
                    pg_has_role(current_user, c.relowner, 'USAGE'), pg_get_userbyid(c.relowner)::text, current_user::text \
             FROM pg_index i \
             JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_namespace ns ON ns.oid = ic.relnamespace \
             JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relname = $2 \
               AND NOT i.indisprimary AND NOT i.indisunique AND NOT i.indisexclusion \
               AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid) \
             ORDER BY ic.relname",
            &[&plan.target_schema, &plan.target_table],
        )
        .await
        .map_err(|e| from_postgres(e, format!("listing the secondary indexes of {target}")))?;
    if let Some(r) = rows.iter().find(|r| !r.get::<_, bool>(3)) {
        let (owner, me): (String, String) = (r.get(4), r.get(5));
        tracing::warn!(target = %target, "{}", not_owner_warning(&target, &me, &owner));
        return Ok(());
    }
    let mut dropped = Vec::new();
    for r in &rows {
        let (schema, name, definition): (String, String, String) = (r.get(0), r.get(1), r.get(2));
        failpoints::check(failpoints::INDEXES_BEFORE_RESTORE)?;
        tx.execute(
            "INSERT INTO migration_status.migration_index_status \
               (run_id, source_database, source_schema, source_table, index_schema, index_name, definition) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
            &[&key.run_id, &key.source_database, &key.source_schema, &key.source_table, &schema, &name, &definition],
        )
        .await
        .map_err(|e| from_postgres(e, format!("recording index {schema}.{name}")))?;
        tx.batch_execute(&format!("DROP INDEX {}", sink::qualified(&schema, &name)))
            .await
            .map_err(|e| from_postgres(e, format!("dropping index {schema}.{name} of {target}")))?;
        dropped.push(format!("{schema}.{name}"));
    }
    tx.execute(
        "UPDATE migration_status.migration_table_status SET indexes_disabled = true, indexes_restored = false \
         WHERE run_id = $1 AND source_database = $2 AND source_schema = $3 AND source_table = $4",
        &[&key.run_id, &key.source_database, &key.source_schema, &key.source_table],
    )
    .await
    .map_err(|e| from_postgres(e, "recording indexes_disabled"))?;
    tx.commit().await.map_err(|e| from_postgres(e, "committing the index drop"))?;
    if !dropped.is_empty() {
        tracing::info!(target = %target, indexes = ?dropped, "disable_index: dropped secondary indexes for the load (restored at merge)");
    }
    failpoints::check(failpoints::INDEXES_AFTER_DROP)?;
    Ok(())
}

/// The warning logged when the loader role `me` does not own `target` (owned
/// by `owner`) and therefore cannot drop its indexes: names both roles and the
/// grant that would allow it.
pub fn not_owner_warning(target: &str, me: &str, owner: &str) -> String {
    format!(
        "disable_index: role {me} cannot drop the indexes of {target}: only its owner ({owner}) may. \
         Run `GRANT {owner} TO {me};` (or make {me} the table's owner) to let thaw drop and restore them; \
         loading with the indexes in place."
    )
}

/// Recreate every recorded, not yet restored index of `key`, each in its own
/// transaction. Sets `indexes_restored` on the table when none is left.
///
/// Errors: only status-store failures; a failing `CREATE INDEX` is recorded
/// and reported in [`RestoreReport::failed`].
pub async fn restore(pg: &mut Client, key: &TableKey) -> Result<RestoreReport> {
    let rows = pg
        .query(
            "SELECT index_schema, index_name, definition FROM migration_status.migration_index_status \
             WHERE run_id = $1 AND source_database = $2 AND source_schema = $3 AND source_table = $4 AND status <> 'restored' \
             ORDER BY index_schema, index_name",
            &[&key.run_id, &key.source_database, &key.source_schema, &key.source_table],
        )
        .await
        .map_err(|e| from_postgres(e, "reading the indexes to restore"))?;
    let mut report = RestoreReport::default();
    for r in rows {
        let (schema, name, definition): (String, String, String) = (r.get(0), r.get(1), r.get(2));
        failpoints::check(failpoints::INDEXES_BEFORE_RESTORE)?;
        let attempt = async {
            let tx = pg.transaction().await?;
            let exists: bool = tx.query_one("SELECT to_regclass($1) IS NOT NULL", &[&sink::qualified(&schema, &name)]).await?.get(0);
            if !exists {
                tx.batch_execute(&definition).await?;
            }
            tx.execute(
                "UPDATE migration_status.migration_index_status SET status = 'restored', restored_at = now(), error_message = NULL, \
                   restore_attempts = restore_attempts + 1 \
                 WHERE run_id = $1 AND source_database = $2 AND source_schema = $3 AND source_table = $4 AND index_schema = $5 AND index_name = $6",
                &[&key.run_id, &key.source_database, &key.source_schema, &key.source_table, &schema, &name],
            )
            .await?;
            tx.commit().await
        }
        .await;
        match attempt {
            Ok(()) => report.restored.push(format!("{schema}.{name}")),
            Err(e) => {
                let err = from_postgres(e, format!("restoring index {schema}.{name} ({definition})"));
                tracing::warn!(error = %err, "index restore failed; it is retried when the run is resumed");
                pg.execute(
                    "UPDATE migration_status.migration_index_status SET status = 'failed', error_message = $7, restore_attempts = restore_attempts + 1 \
                     WHERE run_id = $1 AND source_database = $2 AND source_schema = $3 AND source_table = $4 AND index_schema = $5 AND index_name = $6",
                    &[&key.run_id, &key.source_database, &key.source_schema, &key.source_table, &schema, &name, &err.message],
                )
                .await
                .map_err(|e| from_postgres(e, "recording the failed index restore"))?;
                report.failed.push(format!("{schema}.{name}: {}", err.message));
            }
        }
    }
    if report.failed.is_empty() {
        pg.execute(
            "UPDATE migration_status.migration_table_status SET indexes_restored = true \
             WHERE run_id = $1 AND source_database = $2 AND source_schema = $3 AND source_table = $4 AND indexes_disabled",
            &[&key.run_id, &key.source_database, &key.source_schema, &key.source_table],
        )
        .await
        .map_err(|e| from_postgres(e, "recording indexes_restored"))?;
    }
    Ok(report)
}

/// How many recorded indexes of `key` are not restored yet.
pub async fn pending<C: tokio_postgres::GenericClient>(pg: &C, key: &TableKey) -> Result<i64> {
    let row = pg
        .query_one(
            "SELECT count(*) FROM migration_status.migration_index_status \
             WHERE run_id = $1 AND source_database = $2 AND source_schema = $3 AND source_table = $4 AND status <> 'restored'",
            &[&key.run_id, &key.source_database, &key.source_schema, &key.source_table],
        )
        .await
        .map_err(|e| from_postgres(e, "counting dropped indexes"))?;
    Ok(row.get(0))
}

#[cfg(test)]
mod tests {
    #[test]
    fn not_owner_warning_names_roles_and_grant() {
        let w = super::not_owner_warning("\"analytics\".\"dimpayer\"", "thaw_loader_prod", "thaw_migrator");
        assert!(w.contains("role thaw_loader_prod cannot drop the indexes of \"analytics\".\"dimpayer\""), "{w}");
        assert!(w.contains("GRANT thaw_migrator TO thaw_loader_prod;") && w.contains("indexes in place"), "{w}");
    }
}
