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
use crate::sync::table_plan::TablePlan;
use crate::sync::status::{IndexRecord, TableKey};
use crate::sync::status_postgres::PgStatusStore;
use crate::sync::status_store::StatusStore;

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
    let done = PgStatusStore::lock_indexes_disabled(&tx, key).await?;
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
        PgStatusStore::record_dropped_index(&tx, key, &IndexRecord { schema: schema.clone(), name: name.clone(), definition }).await?;
        tx.batch_execute(&format!("DROP INDEX {}", sink::qualified(&schema, &name)))
            .await
            .map_err(|e| from_postgres(e, format!("dropping index {schema}.{name} of {target}")))?;
        dropped.push(format!("{schema}.{name}"));
    }
    PgStatusStore::mark_indexes_disabled(&tx, key).await?;
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
    let mut report = RestoreReport::default();
    for index in PgStatusStore::new(pg).indexes_to_restore(key).await? {
        let (schema, name) = (index.schema.clone(), index.name.clone());
        failpoints::check(failpoints::INDEXES_BEFORE_RESTORE)?;
        let context = || format!("restoring index {schema}.{name} ({})", index.definition);
        let attempt = async {
            let tx = pg.transaction().await.map_err(|e| from_postgres(e, context()))?;
            let exists: bool = tx
                .query_one("SELECT to_regclass($1) IS NOT NULL", &[&sink::qualified(&schema, &name)])
                .await
                .map_err(|e| from_postgres(e, context()))?
                .get(0);
            if !exists {
                tx.batch_execute(&index.definition).await.map_err(|e| from_postgres(e, context()))?;
            }
            PgStatusStore::mark_index_restored(&tx, key, &index).await?;
            tx.commit().await.map_err(|e| from_postgres(e, context()))
        }
        .await;
        match attempt {
            Ok(()) => report.restored.push(format!("{schema}.{name}")),
            Err(err) => {
                tracing::warn!(error = %err, "index restore failed; it is retried when the run is resumed");
                PgStatusStore::new(pg).record_index_restore_failure(key, &index, &err.message).await?;
                report.failed.push(format!("{schema}.{name}: {}", err.message));
            }
        }
    }
    if report.failed.is_empty() {
        PgStatusStore::new(pg).mark_indexes_restored(key).await?;
    }
    Ok(report)
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
