//! The column types of the tables detection reads, as they really are, and
//! SQL expressions that bring each column to the type detection expects
//! (docs/conflicts.md §2.4).
//!
//! The same data arrives with different column types depending on who
//! created the tables: a settings table migrated by hand has `numeric`
//! instead of `bigint`/`real`, ids are `text` instead of `uuid`, a mirror
//! has `"Visit Date"` as `date` or as `timestamptz`. Detection never decodes
//! a column by guessing: [`ColumnTypes::expr`] casts in SQL to the expected
//! type when the found type is a reasonable spelling of it, and otherwise
//! fails with [`ErrorKind::SchemaMismatch`] naming the table, the column,
//! the type found and the types accepted, before any row is read.

use std::collections::HashMap;

use tokio_postgres::GenericClient;

use crate::error::{from_postgres, Error, ErrorKind, Result};
use crate::sink::{ident, qualified};

/// The type detection reads a column as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// `uuid`; accepted: `uuid`, `text`, `varchar`, `char` (cast, blank = NULL).
    Uuid,
    /// `int8`; accepted: any integer type and `numeric`.
    Int8,
    /// `float8`; accepted: any integer or floating type and `numeric`.
    Float8,
    /// `text`; accepted: any type (cast to its text form).
    Text,
    /// `boolean`; accepted: `boolean` only.
    Bool,
    /// `date`; accepted: `date`, `timestamp` (its date), `timestamptz` (its
    /// date on the wall clock of the configured zone, docs/conflicts.md §D9).
    Date,
    /// `timestamptz`; accepted: `timestamptz`, `timestamp` (read as wall
    /// clock of the configured zone).
    Timestamptz,
}

impl Want {
    /// What the error message lists as accepted.
    fn accepted(self) -> &'static str {
        match self {
            Want::Uuid => "uuid (or text holding UUIDs)",
            Want::Int8 => "an integer type or numeric",
            Want::Float8 => "a number (integer, numeric, real, double precision)",
            Want::Text => "any type",
            Want::Bool => "boolean",
            Want::Date => "date, timestamp or timestamptz",
            Want::Timestamptz => "timestamptz or timestamp",
        }
    }
}

/// Column types (`pg_type.typname`, domains resolved to their base type) of
/// every table of one schema, loaded once per run.
#[derive(Debug, Clone)]
pub struct ColumnTypes {
    schema: String,
    zone_literal: String,
    /// `(table, column)` → typname. Empty = assume every column has its expected type.
    types: HashMap<(String, String), String>,
    tables: std::collections::HashSet<String>,
}

impl ColumnTypes {
    /// Read the column types of every table of `schema`. `zone_literal` is
    /// the configured zone as a quoted SQL literal (`'America/New_York'`).
    pub async fn load(client: &impl GenericClient, schema: &str, zone_literal: &str) -> Result<ColumnTypes> {
        let rows = client
            .query(
                "SELECT c.relname::text, a.attname::text, coalesce(bt.typname, t.typname)::text \
                 FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
                 JOIN pg_type t ON t.oid = a.atttypid LEFT JOIN pg_type bt ON t.typtype = 'd' AND bt.oid = t.typbasetype \
                 WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND a.attnum > 0 AND NOT a.attisdropped",
                &[&schema],
            )
            .await
            .map_err(|e| from_postgres(e, format!("reading the column types of schema {schema}")))?;
        let mut types = HashMap::new();
        let mut tables = std::collections::HashSet::new();
        for row in rows {
            let (table, column, ty): (String, String, String) = (row.get(0), row.get(1), row.get(2));
            tables.insert(table.clone());
            types.insert((table, column), ty);
        }
        Ok(ColumnTypes { schema: schema.to_string(), zone_literal: zone_literal.to_string(), types, tables })
    }

    /// Types that are all as expected (no casts): for statement tests without a database.
    pub fn assumed(schema: &str, zone_literal: &str) -> ColumnTypes {
        ColumnTypes { schema: schema.to_string(), zone_literal: zone_literal.to_string(), types: HashMap::new(), tables: Default::default() }
    }

    /// The schema these types describe.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// Whether `table` exists in the schema (always true for [`ColumnTypes::assumed`]).
    pub fn has_table(&self, table: &str) -> bool {
        self.types.is_empty() || self.tables.contains(table)
    }

    /// The found type of `table.column` (`None` when assumed or unknown).
    pub fn found(&self, table: &str, column: &str) -> Option<&str> {
        self.types.get(&(table.to_string(), column.to_string())).map(String::as_str)
    }

    /// An SQL expression reading `alias.column` of `table` as `want`.
    ///
    /// Errors: [`ErrorKind::SchemaMismatch`] when the table or column does
    /// not exist, or the column's type cannot reasonably hold `want`.
    pub fn expr(&self, alias: &str, table: &str, column: &str, want: Want) -> Result<String> {
        let raw = if alias.is_empty() { ident(column) } else { format!("{alias}.{}", ident(column)) };
        if self.types.is_empty() {
            return Ok(raw);
        }
        let where_ = format!("{}.{}", qualified(&self.schema, table), ident(column));
        let Some(found) = self.found(table, column) else {
            let what = if self.tables.contains(table) { format!("column {where_} does not exist") } else { format!("table {} does not exist", qualified(&self.schema, table)) };
            return Err(Error::new(
                ErrorKind::SchemaMismatch,
                format!("{what}; conflict detection needs it as {}. Apply the schema migrations (schema/) and sync the table", self.want_name(want)),
            ));
        };
        let tz = &self.zone_literal;
        let text = matches!(found, "text" | "varchar" | "bpchar" | "name" | "citext");
        let int = matches!(found, "int2" | "int4" | "int8");
        let number = int || matches!(found, "numeric" | "float4" | "float8");
        let sql = match want {
            Want::Uuid if found == "uuid" => Some(raw),
            Want::Uuid if text => Some(format!("CAST(NULLIF(btrim({raw}::text), '') AS uuid)")),
            Want::Int8 if found == "int8" => Some(raw),
            Want::Int8 if int || found == "numeric" => Some(format!("{raw}::int8")),
            Want::Float8 if found == "float8" => Some(raw),
            // Through numeric, so that a real 1.2 reads as 1.2, not 1.2000000476837158.
            Want::Float8 if found == "float4" => Some(format!("{raw}::numeric::float8")),
            Want::Float8 if number => Some(format!("{raw}::float8")),
            Want::Text if text && found == "text" => Some(raw),
            Want::Text => Some(format!("{raw}::text")),
            Want::Bool if found == "bool" => Some(raw),
            Want::Date if found == "date" => Some(raw),
            Want::Date if found == "timestamp" => Some(format!("{raw}::date")),
            Want::Date if found == "timestamptz" => Some(format!("({raw} AT TIME ZONE {tz})::date")),
            Want::Timestamptz if found == "timestamptz" => Some(raw),
            Want::Timestamptz if found == "timestamp" => Some(format!("({raw} AT TIME ZONE {tz})")),
            _ => None,
        };
        sql.ok_or_else(|| {
            Error::new(
                ErrorKind::SchemaMismatch,
                format!(
                    "column {where_} has type {found}, but conflict detection reads it as {} and accepts {}; alter the column (or the sync's target type) to one of those",
                    self.want_name(want),
                    want.accepted()
                ),
            )
        })
    }

    fn want_name(&self, want: Want) -> &'static str {
        match want {
            Want::Uuid => "uuid",
            Want::Int8 => "bigint",
            Want::Float8 => "double precision",
            Want::Text => "text",
            Want::Bool => "boolean",
            Want::Date => "date",
            Want::Timestamptz => "timestamptz",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn types(pairs: &[(&str, &str, &str)]) -> ColumnTypes {
        let mut t = ColumnTypes::assumed("analytics", "'America/New_York'");
        for (table, column, ty) in pairs {
            t.tables.insert(table.to_string());
            t.types.insert((table.to_string(), column.to_string()), ty.to_string());
        }
        t
    }

    #[test]
    fn reasonable_types_are_cast_in_sql() {
        let t = types(&[("f", "Visit Date", "timestamptz"), ("f", "Visit Id", "text"), ("s", "From", "numeric"), ("f", "D2", "date")]);
        assert_eq!(t.expr("f", "f", "Visit Date", Want::Date).unwrap(), r#"(f."Visit Date" AT TIME ZONE 'America/New_York')::date"#);
        assert_eq!(t.expr("f", "f", "Visit Id", Want::Uuid).unwrap(), r#"CAST(NULLIF(btrim(f."Visit Id"::text), '') AS uuid)"#);
        assert_eq!(t.expr("", "s", "From", Want::Float8).unwrap(), r#""From"::float8"#);
        assert_eq!(t.expr("f", "f", "D2", Want::Date).unwrap(), r#"f."D2""#);
    }

    #[test]
    fn unreasonable_types_and_missing_columns_are_schema_mismatches_naming_everything() {
        let t = types(&[("factvisitcallperformance_cr", "Visit Date", "int4")]);
        let err = t.expr("f", "factvisitcallperformance_cr", "Visit Date", Want::Date).unwrap_err();
        assert_eq!(err.kind, ErrorKind::SchemaMismatch);
        for needle in [r#""analytics"."factvisitcallperformance_cr"."Visit Date""#, "type int4", "as date", "timestamptz"] {
            assert!(err.message.contains(needle), "{needle}: {}", err.message);
        }
        let err = t.expr("f", "factvisitcallperformance_cr", "Nope", Want::Text).unwrap_err();
        assert!(err.message.contains("does not exist"), "{}", err.message);
        let err = t.expr("f", "other", "Nope", Want::Text).unwrap_err();
        assert!(err.message.contains(r#"table "analytics"."other" does not exist"#), "{}", err.message);
    }
}
