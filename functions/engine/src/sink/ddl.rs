//! Target DDL derived from the source: the natural PostgreSQL type of each
//! Snowflake column (docs/sync.md §5.4), and the `CREATE TABLE` / `ALTER
//! TABLE … ADD COLUMN` statements plan runs for `create_tables` and
//! `schema_evolution: "add_columns"`, or prints when it refuses to.
//!
//! Every identifier is quoted exactly ([`super::ident`]), so the statements
//! are valid for any schema, table or column name.

use super::{ident, qualified, PgType, TargetColumn};
use crate::source::arrow::LogicalType;

/// PostgreSQL's largest `varchar(n)`; longer Snowflake text becomes `text`.
pub const PG_VARCHAR_MAX: i64 = 10_485_760;

/// Snowflake's default (and largest) TEXT length: a column declared without
/// a length, mapped to `text`.
pub const SF_TEXT_DEFAULT_LENGTH: i64 = 16_777_216;

/// The natural target column for a Snowflake column, or `None` when the
/// Snowflake type is not one thaw copies.
///
/// `data_type` is `INFORMATION_SCHEMA.COLUMNS.DATA_TYPE` (`NUMBER`, `TEXT`,
/// `TIMESTAMP_TZ`, ...); `precision` and `scale` are `NUMERIC_PRECISION` and
/// `NUMERIC_SCALE` (digits) for NUMBER, `char_length` is
/// `CHARACTER_MAXIMUM_LENGTH` (characters) for TEXT. The mapping:
///
/// | Snowflake | PostgreSQL |
/// | --- | --- |
/// | NUMBER(p,0), p ≤ 18 | int8 |
/// | NUMBER(p,0), p > 18 | numeric(p,0) |
/// | NUMBER(p,s), s > 0 | numeric(p,s) |
/// | FLOAT | float8 |
/// | TEXT/VARCHAR(n) | varchar(n), or text when n is absent, Snowflake's default 16 777 216 or above PostgreSQL's limit |
/// | BOOLEAN | bool |
/// | DATE | date |
/// | TIME | time |
/// | TIMESTAMP_NTZ | timestamp |
/// | TIMESTAMP_LTZ, TIMESTAMP_TZ | timestamptz |
/// | BINARY | bytea |
/// | VARIANT, OBJECT, ARRAY | jsonb |
///
/// Every result is in [`super::encode::supported_targets`] for the source
/// type, and exact (no value is refused). The column is nullable.
pub fn natural_column(name: &str, data_type: &str, precision: Option<i64>, scale: Option<i64>, char_length: Option<i64>) -> Option<TargetColumn> {
    let logical = LogicalType::from_data_type(data_type)?;
    let col = |pg_type: PgType, type_name: &str| TargetColumn {
        name: name.to_string(),
        pg_type,
        type_name: type_name.to_string(),
        char_max_length: None,
        numeric_precision: None,
        numeric_scale: None,
        nullable: true,
    };
    Some(match logical {
        LogicalType::Fixed => {
            let p = precision.filter(|p| (1..=1000).contains(p)).unwrap_or(38);
            let s = scale.filter(|s| (0..=p).contains(s)).unwrap_or(0);
            if s == 0 && p <= 18 {
                col(PgType::Int8, "int8")
            } else {
                TargetColumn { numeric_precision: Some(p as i32), numeric_scale: Some(s as i32), ..col(PgType::Numeric, "numeric") }
            }
        }
        LogicalType::Real => col(PgType::Float8, "float8"),
        LogicalType::Text => match char_length {
            Some(n) if (1..=PG_VARCHAR_MAX).contains(&n) && n < SF_TEXT_DEFAULT_LENGTH => {
                TargetColumn { char_max_length: Some(n as i32), ..col(PgType::Varchar, "varchar") }
            }
            _ => col(PgType::Text, "text"),
        },
        LogicalType::Boolean => col(PgType::Bool, "bool"),
        LogicalType::Date => col(PgType::Date, "date"),
        LogicalType::Time => col(PgType::Time, "time"),
        LogicalType::TimestampNtz => col(PgType::Timestamp, "timestamp"),
        LogicalType::TimestampLtz | LogicalType::TimestampTz => col(PgType::Timestamptz, "timestamptz"),
        LogicalType::Binary => col(PgType::Bytea, "bytea"),
        LogicalType::Variant | LogicalType::Object | LogicalType::Array => col(PgType::Jsonb, "jsonb"),
    })
}

/// The SQL type of `col` with its modifiers: `int8`, `numeric(38,0)`,
/// `varchar(100)`, `timestamptz`, ...
pub fn sql_type(col: &TargetColumn) -> String {
    match (col.pg_type, col.numeric_precision, col.numeric_scale, col.char_max_length) {
        (PgType::Numeric, Some(p), Some(s), _) => format!("numeric({p},{s})"),
        (PgType::Varchar | PgType::Bpchar, _, _, Some(n)) => format!("{}({n})", col.type_name),
        _ => col.type_name.clone(),
    }
}

/// `CREATE TABLE "schema"."table" ("c1" type, ..., PRIMARY KEY ("k1", ...));`
/// for `columns` in order; the primary key is left out when `keys` is empty.
pub fn create_table(schema: &str, table: &str, columns: &[TargetColumn], keys: &[String]) -> String {
    let mut parts: Vec<String> = columns.iter().map(|c| format!("{} {}", ident(&c.name), sql_type(c))).collect();
    if !keys.is_empty() {
        parts.push(format!("PRIMARY KEY ({})", keys.iter().map(|k| ident(k)).collect::<Vec<_>>().join(", ")));
    }
    format!("CREATE TABLE {} ({});", qualified(schema, table), parts.join(", "))
}

/// `ALTER TABLE "schema"."table" ADD COLUMN "c" type;`
pub fn add_column(schema: &str, table: &str, column: &TargetColumn) -> String {
    format!("ALTER TABLE {} ADD COLUMN {} {};", qualified(schema, table), ident(&column.name), sql_type(column))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::encode::supported_targets;

    #[test]
    fn natural_types_follow_the_documented_table_and_are_supported_pairs() {
        /// (DATA_TYPE, NUMERIC_PRECISION, NUMERIC_SCALE, CHARACTER_MAXIMUM_LENGTH, expected type)
        type Case = (&'static str, Option<i64>, Option<i64>, Option<i64>, &'static str);
        let cases: &[Case] = &[
            ("NUMBER", Some(18), Some(0), None, "int8"),
            ("NUMBER", Some(10), Some(0), None, "int8"),
            ("NUMBER", Some(19), Some(0), None, "numeric(19,0)"),
            ("NUMBER", Some(38), Some(0), None, "numeric(38,0)"),
            ("NUMBER", Some(12), Some(2), None, "numeric(12,2)"),
            ("NUMBER", None, None, None, "numeric(38,0)"),
            ("FLOAT", None, None, None, "float8"),
            ("TEXT", None, None, Some(100), "varchar(100)"),
            ("TEXT", None, None, Some(16_777_216), "text"),
            ("VARCHAR", None, None, None, "text"),
            ("BOOLEAN", None, None, None, "bool"),
            ("DATE", None, None, None, "date"),
            ("TIME", None, None, None, "time"),
            ("TIMESTAMP_NTZ", None, None, None, "timestamp"),
            ("TIMESTAMP_LTZ", None, None, None, "timestamptz"),
            ("TIMESTAMP_TZ", None, None, None, "timestamptz"),
            ("BINARY", None, None, None, "bytea"),
            ("VARIANT", None, None, None, "jsonb"),
            ("OBJECT", None, None, None, "jsonb"),
            ("ARRAY", None, None, None, "jsonb"),
        ];
        for (ty, p, s, n, want) in cases {
            let c = natural_column("c", ty, *p, *s, *n).unwrap_or_else(|| panic!("{ty} maps"));
            assert_eq!(sql_type(&c), *want, "{ty}({p:?},{s:?},{n:?})");
            let logical = LogicalType::from_data_type(ty).unwrap();
            assert!(supported_targets(logical).contains(&c.pg_type), "{ty} → {want} is not a supported pair");
        }
        assert!(natural_column("c", "GEOGRAPHY", None, None, None).is_none());
    }

    #[test]
    fn ddl_quotes_every_identifier() {
        let cols = vec![
            natural_column("Id", "NUMBER", Some(38), Some(0), None).unwrap(),
            natural_column("line \"no\"", "TEXT", None, None, Some(10)).unwrap(),
        ];
        assert_eq!(
            create_table("My Schema", "Order-Lines", &cols, &["Id".into()]),
            "CREATE TABLE \"My Schema\".\"Order-Lines\" (\"Id\" numeric(38,0), \"line \"\"no\"\"\" varchar(10), PRIMARY KEY (\"Id\"));"
        );
        assert_eq!(add_column("s", "t", &cols[1]), "ALTER TABLE \"s\".\"t\" ADD COLUMN \"line \"\"no\"\"\" varchar(10);");
    }
}
