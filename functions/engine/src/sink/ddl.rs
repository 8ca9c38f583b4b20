//! Target DDL derived from the source: the natural PostgreSQL type of each
//! Snowflake column (docs/sync.md §5.4), and the `CREATE TABLE` / `ALTER
//! TABLE … ADD COLUMN` statements plan runs for `create_tables` and
//! `schema_evolution: "add_columns"`, or prints when it refuses to.
//!
//! Every identifier is quoted exactly ([`super::ident`]), so the statements
//! are valid for any schema, table or column name.

use arrow_schema::{DataType, Field};

use super::values::ColumnKind;
use super::{ident, qualified, PgType, TargetColumn};

/// PostgreSQL's largest `varchar(n)`; longer Snowflake text becomes `text`.
pub const PG_VARCHAR_MAX: i64 = 10_485_760;

/// Snowflake's default (and largest) TEXT length: a column declared without
/// a length, mapped to `text`.
pub const SF_TEXT_DEFAULT_LENGTH: i64 = 16_777_216;

/// The natural target column for a source column decoded into standard
/// Arrow (docs/sync.md §5.5), or `None` when its Arrow type is not one the
/// sink copies.
///
/// `field` is the column's standard Arrow field (type and extension name;
/// the source builds it, e.g. `SourceType::standard_field` for Snowflake);
/// `char_length` is the declared text length in characters, when the
/// source knows one (Arrow has none). The mapping (docs/sync.md §5.4):
///
/// | standard Arrow | PostgreSQL |
/// | --- | --- |
/// | Int8/16/32/64, Decimal128(p ≤ 18, 0) | int8 |
/// | Decimal128(p,s), p > 18 or s > 0 | numeric(p,s) |
/// | Float32/64 | float8 |
/// | Utf8 | varchar(n), or text when n is absent, Snowflake's default 16 777 216 or above PostgreSQL's limit |
/// | Boolean | bool |
/// | Date32 | date |
/// | Time32/Time64 | time |
/// | Timestamp without zone | timestamp |
/// | Timestamp with zone, `arrow.timestamp_with_offset` | timestamptz |
/// | Binary | bytea |
/// | Utf8 with `arrow.json` | jsonb |
///
/// Every result is in [`super::encode::supported_targets`] for the
/// column's kind, and exact (no value is refused). The column is nullable.
pub fn natural_column(name: &str, field: &Field, char_length: Option<i64>) -> Option<TargetColumn> {
    let kind = ColumnKind::of_field(field).ok()?;
    let col = |pg_type: PgType, type_name: &str| TargetColumn::plain(name, pg_type, type_name);
    Some(match kind {
        ColumnKind::Number => match field.data_type() {
            DataType::Decimal128(p, s) if *s > 0 || *p > 18 => {
                TargetColumn { numeric_precision: Some(*p as i32), numeric_scale: Some((*s).max(0) as i32), ..col(PgType::Numeric, "numeric") }
            }
            _ => col(PgType::Int8, "int8"),
        },
        ColumnKind::Float => col(PgType::Float8, "float8"),
        ColumnKind::Text => match char_length {
            Some(n) if (1..=PG_VARCHAR_MAX).contains(&n) && n < SF_TEXT_DEFAULT_LENGTH => {
                TargetColumn { char_max_length: Some(n as i32), ..col(PgType::Varchar, "varchar") }
            }
            _ => col(PgType::Text, "text"),
        },
        ColumnKind::Boolean => col(PgType::Bool, "bool"),
        ColumnKind::Date => col(PgType::Date, "date"),
        ColumnKind::Time => col(PgType::Time, "time"),
        ColumnKind::Timestamp => col(PgType::Timestamp, "timestamp"),
        ColumnKind::TimestampUtc | ColumnKind::TimestampWithOffset => col(PgType::Timestamptz, "timestamptz"),
        ColumnKind::Binary => col(PgType::Bytea, "bytea"),
        ColumnKind::Json => col(PgType::Jsonb, "jsonb"),
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
    use crate::sink::values::{EXTENSION_NAME_KEY, JSON_EXTENSION, TIMESTAMP_WITH_OFFSET_EXTENSION};
    use arrow_schema::TimeUnit;

    fn field(data_type: DataType, extension: Option<&str>) -> Field {
        let f = Field::new("c", data_type, true);
        match extension {
            Some(e) => f.with_metadata([(EXTENSION_NAME_KEY.to_string(), e.to_string())].into()),
            None => f,
        }
    }

    #[test]
    fn natural_types_of_standard_arrow_follow_the_documented_table_and_are_supported_pairs() {
        let utc = || Some("UTC".into());
        let offset = DataType::Struct(
            vec![Field::new("timestamp", DataType::Timestamp(TimeUnit::Microsecond, utc()), false), Field::new("offset_minutes", DataType::Int16, false)].into(),
        );
        let cases: &[(Field, Option<i64>, &str)] = &[
            (field(DataType::Int64, None), None, "int8"),
            (field(DataType::Int32, None), None, "int8"),
            (field(DataType::Decimal128(18, 0), None), None, "int8"),
            (field(DataType::Decimal128(19, 0), None), None, "numeric(19,0)"),
            (field(DataType::Decimal128(38, 0), None), None, "numeric(38,0)"),
            (field(DataType::Decimal128(12, 2), None), None, "numeric(12,2)"),
            (field(DataType::Float64, None), None, "float8"),
            (field(DataType::Utf8, None), Some(100), "varchar(100)"),
            (field(DataType::Utf8, None), Some(SF_TEXT_DEFAULT_LENGTH), "text"),
            (field(DataType::Utf8, None), None, "text"),
            (field(DataType::Boolean, None), None, "bool"),
            (field(DataType::Date32, None), None, "date"),
            (field(DataType::Time64(TimeUnit::Microsecond), None), None, "time"),
            (field(DataType::Timestamp(TimeUnit::Microsecond, None), None), None, "timestamp"),
            (field(DataType::Timestamp(TimeUnit::Microsecond, utc()), None), None, "timestamptz"),
            (field(offset, Some(TIMESTAMP_WITH_OFFSET_EXTENSION)), None, "timestamptz"),
            (field(DataType::Binary, None), None, "bytea"),
            (field(DataType::Utf8, Some(JSON_EXTENSION)), None, "jsonb"),
        ];
        for (f, n, want) in cases {
            let c = natural_column("c", f, *n).unwrap_or_else(|| panic!("{f:?} maps"));
            assert_eq!(sql_type(&c), *want, "{f:?} ({n:?})");
            let kind = ColumnKind::of_field(f).unwrap();
            assert!(supported_targets(kind).contains(&c.pg_type), "{f:?} → {want} is not a supported pair");
        }
        assert!(natural_column("c", &field(DataType::Duration(TimeUnit::Second), None), None).is_none());
    }

    #[test]
    fn ddl_quotes_every_identifier() {
        let cols = vec![
            natural_column("Id", &field(DataType::Decimal128(38, 0), None), None).unwrap(),
            natural_column("line \"no\"", &field(DataType::Utf8, None), Some(10)).unwrap(),
        ];
        assert_eq!(
            create_table("My Schema", "Order-Lines", &cols, &["Id".into()]),
            "CREATE TABLE \"My Schema\".\"Order-Lines\" (\"Id\" numeric(38,0), \"line \"\"no\"\"\" varchar(10), PRIMARY KEY (\"Id\"));"
        );
        assert_eq!(add_column("s", "t", &cols[1]), "ALTER TABLE \"s\".\"t\" ADD COLUMN \"line \"\"no\"\"\" varchar(10);");
    }
}
