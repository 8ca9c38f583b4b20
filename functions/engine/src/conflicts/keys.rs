//! One row per key in the analytics tables detection joins by key
//! (docs/conflicts.md §2.5).
//!
//! Detection joins every visit to its caregiver, provider, office, patients,
//! payer, contract, service code and user by their ids, and expects at most
//! one row per id, as the primary keys of `schema/V2__analytics.sql` and
//! sync's `uniqueness_columns` guarantee. A mirror a user created without
//! those keys may hold the same id twice; each join would then multiply the
//! visit, and the night would fail deep inside the store on a temporary
//! table's index. [`check_unique_keys`] finds that before any row is read
//! and names the table, the key and a duplicated value.

use tokio_postgres::GenericClient;

use crate::error::{from_postgres, Error, ErrorKind, Result};
use crate::sink::{ident, qualified};

use super::columns::{ColumnTypes, Want};

/// The `(table, key column, type the key is read as)` of every analytics
/// table detection joins one-to-one by key.
pub const JOINED_KEYS: [(&str, &str, Want); 9] = [
    ("factvisitcallperformance_cr", "Visit Id", Want::Uuid),
    ("dimcaregiver", "Caregiver Id", Want::Uuid),
    ("dimprovider", "Provider Id", Want::Uuid),
    ("dimoffice", "Office Id", Want::Uuid),
    ("dimpatient", "Patient Id", Want::Uuid),
    ("dimpayer", "Payer Id", Want::Uuid),
    ("dimcontract", "Contract Id", Want::Uuid),
    ("dimservicecode", "Service Code Id", Want::Uuid),
    ("dimuser", "User Id", Want::Text),
];

/// Check that every table of [`JOINED_KEYS`] holds at most one row per key
/// (NULL keys join nothing and are ignored).
///
/// A table whose key column has the type it is read as and carries a valid
/// single-column unique index (a primary key) is trusted without reading
/// it: that is every table created by the migrations, so a normal night
/// costs one catalogue query. Any other table (no unique index, or ids held
/// as text, where `'ABC…'` and `'abc…'` are the same UUID) is read once with
/// a grouped count of its key as detection casts it.
///
/// Errors: [`ErrorKind::SchemaMismatch`] (bad input, exit 2, never retried)
/// naming the table, the key column, one duplicated value and its row
/// count; a missing table or column as [`ColumnTypes::expr`] reports it.
pub async fn check_unique_keys(client: &impl GenericClient, types: &ColumnTypes) -> Result<()> {
    let schema = types.schema();
    for (table, column, want) in JOINED_KEYS {
        let key = types.expr("t", table, column, want)?;
        let exact = match (want, types.found(table, column)) {
            (_, None) => true, // types assumed (no catalogue): nothing to check against
            (Want::Uuid, Some(found)) => found == "uuid",
            (_, Some(found)) => matches!(found, "text" | "varchar"),
        };
        if exact && has_unique_index(client, schema, table, column).await? {
            continue;
        }
        let sql = format!(
            "SELECT ({key})::text, count(*) FROM {} t WHERE ({key}) IS NOT NULL GROUP BY 1 HAVING count(*) > 1 ORDER BY 2 DESC, 1 LIMIT 1",
            qualified(schema, table)
        );
        let duplicate = client
            .query_opt(&sql, &[])
            .await
            .map_err(|e| from_postgres(e, format!("checking that {} holds one row per {}", qualified(schema, table), ident(column))))?;
        if let Some(row) = duplicate {
            let (value, rows): (String, i64) = (row.get(0), row.get(1));
            return Err(Error::new(
                ErrorKind::SchemaMismatch,
                format!(
                    "{table_name} holds {rows} rows with {col} = {value} (and possibly other duplicated keys): conflict detection joins this \
                     table by {col} and needs one row per key, or every visit joined to it would be counted once per row. Remove the \
                     duplicates and give the table a primary key on {col} (`thaw sync` keeps it unique through uniqueness_columns), \
                     then run again (docs/conflicts.md §2.5)",
                    table_name = qualified(schema, table),
                    col = ident(column),
                ),
            ));
        }
    }
    Ok(())
}

/// Whether `schema.table` has a valid, non-partial unique index (or primary
/// key) on exactly `column`.
async fn has_unique_index(client: &impl GenericClient, schema: &str, table: &str, column: &str) -> Result<bool> {
    let row = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = i.indkey[0] \
             WHERE n.nspname = $1 AND c.relname = $2 AND a.attname = $3 AND i.indisunique AND i.indisvalid \
             AND i.indnkeyatts = 1 AND i.indpred IS NULL AND i.indexprs IS NULL)",
            &[&schema, &table, &column],
        )
        .await
        .map_err(|e| from_postgres(e, format!("reading the unique indexes of {}", qualified(schema, table))))?;
    Ok(row.get(0))
}
