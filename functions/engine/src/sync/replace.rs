//! Safe `truncate_onstart`: load a shadow table, swap it in at merge
//! (docs/sync.md §8.1).
//!
//! Truncating the target before the copy (what the legacy tool and earlier
//! thaw did) commits the TRUNCATE on its own, so a copy that fails later —
//! bad data in one chunk, a crash, a lost connection — leaves the target
//! empty or half loaded. Instead, a table planned with truncation
//! ([`TablePlan::truncated`]) is loaded into a **shadow table**
//! `thaw_staging."r_<hash of run and table>"` (`LIKE target INCLUDING
//! DEFAULTS`, a normal logged table whose only index is a unique index on
//! the key columns when the table has keys), and the target is only
//! touched by [`swap_in`] at merge, once every chunk is `completed`: in
//! **one transaction** it truncates the target, inserts the shadow's rows and
//! drops the shadow, together with the table's `completed` status.
//!
//! Why this holds with many parallel chunks and a crash at any point:
//! * chunks only write the shadow, each in its own transaction with its
//!   `completed` status, so the shadow holds exactly the completed chunks;
//! * until the swap commits, the target keeps its previous rows, whatever
//!   failed; a resumed run copies the unfinished chunks into the same shadow;
//! * the swap is one transaction: a crash during it rolls back to the old
//!   target and the full shadow, and the next merge (or resume) swaps again;
//!   after it commits the shadow is gone and the table is `completed`, so a
//!   repeated merge finds nothing to swap.
//!
//! Cost: the rows are written twice (shadow, then target); the target is
//! locked (ACCESS EXCLUSIVE, from the TRUNCATE) only for the swap.

use tokio_postgres::GenericClient;

use crate::error::{from_postgres, Result};
use crate::sink;
use crate::sync::table_plan::TablePlan;
use crate::sync::status::TableKey;

/// Schema of shadow tables (the staging schema, which the loader role may create tables in).
pub const SHADOW_SCHEMA: &str = "thaw_staging";

/// Unquoted name of the shadow table of `key`: `r_` + 16 hex digits of the
/// run and table identity (stable across retries and resumes).
pub fn shadow_name(key: &TableKey) -> String {
    use md5::{Digest, Md5};
    let h = hex::encode(Md5::digest(format!("{}|{}|{}|{}", key.run_id, key.source_database, key.source_schema, key.source_table)));
    format!("r_{}", &h[..16])
}

/// Quoted `"thaw_staging"."r_…"`.
pub fn shadow_fqn(key: &TableKey) -> String {
    sink::qualified(SHADOW_SCHEMA, &shadow_name(key))
}

/// Create the shadow table of `key` if it does not exist (idempotent and
/// safe under concurrent chunks: serialised by a transaction-level advisory
/// lock on the shadow's name), with a unique index on the plan's key columns
/// when the table has keys.
///
/// The unique index makes the copy path see the shadow as keyed
/// ([`crate::sync::copy`]): a key the source moved from a loaded chunk into
/// an unloaded one while the load ran is refused by the index and the chunk
/// falls back to staging + upsert, instead of going into the shadow twice
/// and failing the swap on the target's unique index at every resume.
///
/// Errors: catalog or DDL failures (e.g. the loader role may not create tables
/// in `thaw_staging`), with their SQLSTATE kind; the unique index cannot be
/// built on a shadow left by an earlier thaw that already holds a key twice
/// (`ChunkFailed`: rerun with `--no-resume`).
pub async fn ensure_shadow(pg: &mut tokio_postgres::Client, plan: &TablePlan, key: &TableKey) -> Result<()> {
    let fqn = shadow_fqn(key);
    let tx = pg.transaction().await.map_err(|e| from_postgres(e, "starting the shadow-table transaction"))?;
    tx.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&fqn]).await.map_err(|e| from_postgres(e, "locking the shadow table name"))?;
    tx.batch_execute(&format!("CREATE TABLE IF NOT EXISTS {fqn} (LIKE {} INCLUDING DEFAULTS)", plan.target_fqn()))
        .await
        .map_err(|e| from_postgres(e, format!("creating the shadow table {fqn} for {}", plan.target_fqn())))?;
    if !plan.key_columns.is_empty() {
        let keys: Vec<String> = plan.key_columns.iter().map(|k| sink::ident(k)).collect();
        let index = sink::ident(&format!("{}_key", shadow_name(key)));
        tx.batch_execute(&format!("CREATE UNIQUE INDEX IF NOT EXISTS {index} ON {fqn} ({})", keys.join(", ")))
            .await
            .map_err(|e| {
                from_postgres(e, format!("creating the unique index on ({}) of the shadow table {fqn} (a shadow holding a key twice: rerun with --no-resume)", plan.key_columns.join(", ")))
            })?;
    }
    tx.commit().await.map_err(|e| from_postgres(e, "committing the shadow table"))?;
    Ok(())
}

/// Give the shadow table of `key` (when it exists) the target's current
/// definition of `columns` (type with modifiers, nullability): a resume
/// after the user widened a target column a chunk failed on
/// ([`crate::sync::plan`] refreshes the plan's target columns) must not
/// fail again on the shadow, created `LIKE` the narrower target. The rows
/// already in the shadow are converted by `ALTER COLUMN … TYPE`.
///
/// Errors: catalog or DDL failures with their SQLSTATE kind (e.g. rows of
/// the shadow that do not fit a narrowed type).
pub async fn align_shadow_columns(pg: &tokio_postgres::Client, plan: &TablePlan, key: &TableKey, columns: &[String]) -> Result<()> {
    if columns.is_empty() || !shadow_exists(pg, key).await? {
        return Ok(());
    }
    let fqn = shadow_fqn(key);
    let rows = pg
        .query(
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull FROM pg_attribute a \
             WHERE a.attrelid = to_regclass($1) AND a.attname::text = ANY($2) AND a.attnum > 0 AND NOT a.attisdropped",
            &[&plan.target_fqn(), &columns],
        )
        .await
        .map_err(|e| from_postgres(e, format!("reading the column definitions of {}", plan.target_fqn())))?;
    let changes: Vec<String> = rows
        .iter()
        .flat_map(|r| {
            let column = sink::ident(r.get::<_, &str>(0));
            let nullability = if r.get::<_, bool>(2) { "SET NOT NULL" } else { "DROP NOT NULL" };
            [format!("ALTER COLUMN {column} TYPE {}", r.get::<_, &str>(1)), format!("ALTER COLUMN {column} {nullability}")]
        })
        .collect();
    pg.batch_execute(&format!("ALTER TABLE {fqn} {}", changes.join(", ")))
        .await
        .map_err(|e| from_postgres(e, format!("giving the shadow table {fqn} the current definitions of {}'s columns {columns:?}", plan.target_fqn())))?;
    Ok(())
}

/// Whether the shadow table of `key` exists.
pub async fn shadow_exists<C: GenericClient>(pg: &C, key: &TableKey) -> Result<bool> {
    let row = pg
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&shadow_fqn(key)])
        .await
        .map_err(|e| from_postgres(e, "looking for the shadow table"))?;
    Ok(row.get(0))
}

/// Replace the target's rows with the shadow's, inside the caller's
/// transaction `tx`: `TRUNCATE target; INSERT INTO target SELECT … FROM
/// shadow; DROP shadow`. Returns the rows moved. A missing shadow (already
/// swapped) moves nothing and returns `None`.
///
/// Errors: the TRUNCATE (e.g. the target is referenced by a foreign key),
/// the INSERT (constraints of the target) or the DROP fail with their
/// SQLSTATE kind; the caller's transaction then rolls back and the target
/// keeps its previous rows.
pub async fn swap_in<C: GenericClient>(tx: &C, plan: &TablePlan, key: &TableKey) -> Result<Option<u64>> {
    if !shadow_exists(tx, key).await? {
        return Ok(None);
    }
    let shadow = shadow_fqn(key);
    let target = plan.target_fqn();
    let cols: Vec<String> = plan.columns.iter().map(|c| sink::ident(&c.target.name)).collect();
    tx.batch_execute(&format!("TRUNCATE {target}")).await.map_err(|e| from_postgres(e, format!("truncating {target} for the swap")))?;
    let moved = tx
        .execute(&format!("INSERT INTO {target} ({c}) SELECT {c} FROM {shadow}", c = cols.join(", ")), &[])
        .await
        .map_err(|e| from_postgres(e, format!("moving the loaded rows from {shadow} into {target}")))?;
    tx.batch_execute(&format!("DROP TABLE {shadow}")).await.map_err(|e| from_postgres(e, format!("dropping {shadow}")))?;
    // Row hashes (docs/reconcile.md §4.2): the shadow's side table becomes the target's.
    crate::reconcile::side_table::swap_in(tx, &shadow, &target).await?;
    tracing::warn!(target = %target, rows = moved, "replaced the target's rows (truncate_onstart + --allow-truncate)");
    Ok(Some(moved))
}
