//! Canonical text forms for reconciliation checksums, rendered by SQL inside
//! each engine so that the same row yields byte-identical text in Snowflake
//! and in PostgreSQL (docs/reconcile.md §2.2).
//!
//! For every copied column, [`snowflake_expr`] and [`postgres_expr`] render
//! the canonical text of its value; the form is decided by the **target**
//! type (what PostgreSQL can hold), the Snowflake side converting the source
//! value the way the COPY encoder (`sink::encode`) does:
//!
//! | target | canonical text |
//! | --- | --- |
//! | int2/int4/int8 | plain decimal integer |
//! | numeric | fixed decimals at the target's scale (the source scale for an unconstrained numeric, which is the scale thaw writes) |
//! | float4/float8 | rounded to [`FLOAT_DECIMALS`] fixed decimals |
//! | bool | `1` / `0` |
//! | date | days since 1970-01-01 |
//! | time | microseconds since midnight |
//! | timestamp | microseconds since 1970-01-01 of the wall clock (TIMESTAMP_TZ: its stored offset; LTZ: UTC) |
//! | timestamptz | microseconds since 1970-01-01 UTC of the instant (NTZ read as UTC) |
//! | uuid | lower-case hyphenated |
//! | json/jsonb | minified JSON text |
//! | bytea | lower-case hex |
//! | text/varchar | the text as stored (bpchar: trailing blanks removed); non-text sources rendered as the encoder renders them |
//!
//! [`row_text`] joins a row's forms with [`SEPARATOR_SQL`], NULL as
//! [`NULL_MARKER_SQL`]; the row hash is `MD5(row_text)`, whose first 12 hex
//! digits are summed as two 24-bit halves ([`hex_to_int`], [`checksum_sql`]).
//! Each half is below 2^24, so even a FLOAT sum (fakesnow returns FLOAT for
//! SUM of NUMBER) stays exact up to 2^29 rows. Hex digits become integers by
//! `POSITION(SUBSTR(h, i, 1) IN '0123456789abcdef') - 1` terms, which both
//! engines (and fakesnow, which rejects `TO_NUMBER(h, 'XXXX')`) accept.
//!
//! Verified against fakesnow 0.12.1 and PostgreSQL 15 by
//! `tests/types_roundtrip.rs`. Known limits (documented, not hidden):
//! * fakesnow ignores `TO_CHAR` formats, so text columns filled from
//!   DATE/TIME/TIMESTAMP sources only agree on real Snowflake;
//! * floats: PostgreSQL converts float8 to numeric with 15 significant
//!   digits, so values with more than 15 significant digits whose 7th
//!   decimal is a rounding tie, NaN/±Infinity (Snowflake cannot cast them to
//!   NUMBER), and float4 columns holding more than 6 significant digits do
//!   not compare equal; fakesnow (DuckDB) renders doubles ≥ 1e15 imprecisely;
//! * jsonb: PostgreSQL reorders object keys (shorter keys first) and keeps
//!   numbers as written (`2.50`), while Snowflake's `TO_JSON` sorts keys
//!   alphabetically and normalises numbers; objects whose keys differ in
//!   length, or non-normalised numbers, compare unequal on jsonb targets (json
//!   and text targets keep Snowflake's text and compare exactly).

use crate::sync::plan::SourceColumn;
use crate::sink::{PgType, TargetColumn};
use crate::source::arrow::LogicalType;
use crate::source::sql;

/// Decimals kept when comparing float4/float8 columns.
pub const FLOAT_DECIMALS: u32 = 6;
/// SQL for the separator between a row's column texts (unit separator), the same in both engines.
pub const SEPARATOR_SQL: &str = "CHR(31)";
/// SQL for the text that stands for NULL (record separator), the same in both engines.
pub const NULL_MARKER_SQL: &str = "CHR(30)";

/// Snowflake SQL rendering the canonical text of `source` as it lands in
/// `target` (see the module table). The column name is quoted here.
/// A `DATA_TYPE` thaw does not know falls back to `CAST(col AS VARCHAR)`.
pub fn snowflake_expr(source: &SourceColumn, target: &TargetColumn) -> String {
    let c = sql::ident(&source.name);
    let logical = LogicalType::from_data_type(&source.data_type).unwrap_or(LogicalType::Text);
    let varchar = |e: String| format!("CAST({e} AS VARCHAR)");
    match target.pg_type {
        // Numeric text (VARCHAR application ids) uses TRY_CAST: blank text lands as NULL.
        PgType::Int2 | PgType::Int4 | PgType::Int8 if logical == LogicalType::Text => varchar(format!("TRY_CAST({c} AS NUMBER(38, 0))")),
        PgType::Int2 | PgType::Int4 | PgType::Int8 => varchar(format!("CAST({c} AS NUMBER(38, 0))")),
        PgType::Numeric => {
            let scale = target.numeric_scale.map(i64::from).or(source.scale).unwrap_or(0).clamp(0, 37);
            if logical == LogicalType::Text {
                varchar(format!("TRY_CAST({c} AS NUMBER(38, {scale}))"))
            } else {
                varchar(format!("CAST({c} AS NUMBER(38, {scale}))"))
            }
        }
        PgType::Float4 | PgType::Float8 => varchar(format!("CAST({c} AS NUMBER(38, {FLOAT_DECIMALS}))")),
        PgType::Bool => match logical {
            LogicalType::Fixed => format!("IFF({c} <> 0, '1', '0')"),
            _ => format!("IFF({c}, '1', '0')"),
        },
        PgType::Date => varchar(format!("DATEDIFF(day, '1970-01-01'::DATE, CAST({} AS DATE))", wall_clock(&c, logical))),
        PgType::Time => varchar(format!("DATEDIFF(microsecond, '00:00:00'::TIME, {c})")),
        PgType::Timestamp => varchar(format!("DATEDIFF(microsecond, '1970-01-01 00:00:00'::TIMESTAMP_NTZ, {})", wall_clock(&c, logical))),
        PgType::Timestamptz => varchar(format!("DATEDIFF(microsecond, '1970-01-01 00:00:00'::TIMESTAMP_NTZ, {})", utc_clock(&c, logical))),
        PgType::Uuid => {
            let hex = format!("LOWER(REPLACE(REPLACE(REPLACE(TRIM({c}), '-', ''), '{{', ''), '}}', ''))");
            let part = |start: u32, len: u32| format!("SUBSTR({hex}, {start}, {len})");
            format!("{} || '-' || {} || '-' || {} || '-' || {} || '-' || {}", part(1, 8), part(9, 4), part(13, 4), part(17, 4), part(21, 12))
        }
        PgType::Json | PgType::Jsonb => match logical {
            LogicalType::Variant | LogicalType::Object | LogicalType::Array => format!("TO_JSON({c})"),
            _ => format!("TO_JSON(PARSE_JSON({c}))"),
        },
        PgType::Bytea => format!("LOWER(HEX_ENCODE({c}))"),
        PgType::Text | PgType::Varchar | PgType::Bpchar => {
            let text = match logical {
                LogicalType::Text => c,
                LogicalType::Variant | LogicalType::Object | LogicalType::Array => format!("TO_JSON({c})"),
                LogicalType::Fixed | LogicalType::Boolean | LogicalType::Real => varchar(c),
                LogicalType::Binary => format!("HEX_DECODE_STRING(HEX_ENCODE({c}))"),
                LogicalType::Date => format!("TO_CHAR({c}, 'YYYY-MM-DD')"),
                LogicalType::Time => format!("TO_CHAR({c}, 'HH24:MI:SS.FF6')"),
                LogicalType::TimestampNtz => format!("TO_CHAR({c}, 'YYYY-MM-DD HH24:MI:SS.FF6')"),
                LogicalType::TimestampTz => format!("TO_CHAR({c}, 'YYYY-MM-DD HH24:MI:SS.FF6TZH:TZM')"),
                LogicalType::TimestampLtz => format!("TO_CHAR(CONVERT_TIMEZONE('UTC', {c}), 'YYYY-MM-DD HH24:MI:SS.FF6TZH:TZM')"),
            };
            if target.pg_type == PgType::Bpchar {
                format!("RTRIM({text}, ' ')")
            } else {
                text
            }
        }
    }
}

/// A TIMESTAMP_NTZ expression holding the wall clock thaw writes into a
/// `timestamp` (or the date of a `date`): NTZ as is, TIMESTAMP_TZ in its
/// stored offset, TIMESTAMP_LTZ in UTC, DATE at midnight.
fn wall_clock(c: &str, logical: LogicalType) -> String {
    match logical {
        LogicalType::TimestampNtz => c.to_string(),
        LogicalType::TimestampTz | LogicalType::Date => format!("CAST({c} AS TIMESTAMP_NTZ)"),
        _ => utc_clock(c, logical),
    }
}

/// A TIMESTAMP_NTZ expression holding the UTC wall clock of the instant thaw
/// writes into a `timestamptz` (NTZ and DATE read as UTC).
fn utc_clock(c: &str, logical: LogicalType) -> String {
    match logical {
        LogicalType::TimestampNtz => c.to_string(),
        LogicalType::TimestampTz | LogicalType::TimestampLtz => format!("CAST(CONVERT_TIMEZONE('UTC', {c}) AS TIMESTAMP_NTZ)"),
        _ => format!("CAST({c} AS TIMESTAMP_NTZ)"),
    }
}

/// PostgreSQL SQL rendering the canonical text of `target` (see the module
/// table). The column name is quoted here.
pub fn postgres_expr(target: &TargetColumn) -> String {
    let c = crate::sink::ident(&target.name);
    let epoch_micros = format!("CAST(CAST(EXTRACT(EPOCH FROM {c}) * 1000000 AS BIGINT) AS VARCHAR)");
    match target.pg_type {
        PgType::Int2 | PgType::Int4 | PgType::Int8 | PgType::Numeric | PgType::Uuid | PgType::Text | PgType::Varchar => {
            format!("CAST({c} AS VARCHAR)")
        }
        PgType::Float4 | PgType::Float8 => format!("CAST(ROUND(CAST({c} AS NUMERIC), {FLOAT_DECIMALS}) AS VARCHAR)"),
        PgType::Bool => format!("CASE WHEN {c} THEN '1' ELSE '0' END"),
        PgType::Date => format!("CAST({c} - DATE '1970-01-01' AS VARCHAR)"),
        PgType::Time | PgType::Timestamp | PgType::Timestamptz => epoch_micros,
        // Remove whitespace outside string literals (jsonb::text adds ", " and ": ").
        PgType::Json | PgType::Jsonb => format!(r#"REGEXP_REPLACE(CAST({c} AS TEXT), '("(?:[^"\\]|\\.)*")|\s+', '\1', 'g')"#),
        PgType::Bytea => format!("ENCODE({c}, 'hex')"),
        PgType::Bpchar => format!("RTRIM(CAST({c} AS TEXT), ' ')"),
    }
}

/// One row's canonical text: the column expressions joined by
/// [`SEPARATOR_SQL`], each NULL replaced by [`NULL_MARKER_SQL`]. Valid SQL in
/// both engines.
pub fn row_text(exprs: &[String]) -> String {
    if exprs.is_empty() {
        return "''".to_string();
    }
    exprs.iter().map(|e| format!("COALESCE({e}, {NULL_MARKER_SQL})")).collect::<Vec<_>>().join(&format!(" || {SEPARATOR_SQL} || "))
}

/// SQL turning `len` lower-case hex digits of `hex_expr`, starting at 1-based
/// position `start`, into an integer, valid in both engines (and fakesnow).
/// `len` at most 13 keeps the value exact in a double.
pub fn hex_to_int(hex_expr: &str, start: usize, len: usize) -> String {
    (0..len)
        .map(|i| {
            let weight = 16u64.pow((len - 1 - i) as u32);
            format!("(POSITION(SUBSTR({hex_expr}, {}, 1) IN '0123456789abcdef') - 1) * {weight}", start + i)
        })
        .collect::<Vec<_>>()
        .join(" + ")
}

/// A whole-table checksum query, valid in both engines: one row of
/// `(row count, SUM of hash bits 47..24, SUM of hash bits 23..0)` over
/// `FROM {from}` (a table, optionally followed by `WHERE …`), where each
/// row's hash is `MD5(row_text)`.
pub fn checksum_sql(row_text: &str, from: &str) -> String {
    format!(
        "SELECT COUNT(*), SUM(hi), SUM(lo) FROM (SELECT {} AS hi, {} AS lo FROM (SELECT MD5({row_text}) AS rh FROM {from}) hashed) halves",
        hex_to_int("rh", 1, 6),
        hex_to_int("rh", 7, 6)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(name: &str, pg_type: PgType, scale: Option<i32>) -> TargetColumn {
        TargetColumn {
            name: name.into(),
            pg_type,
            type_name: format!("{pg_type:?}").to_lowercase(),
            char_max_length: None,
            numeric_precision: scale.map(|_| 18),
            numeric_scale: scale,
            nullable: true,
        }
    }

    fn source(name: &str, data_type: &str, scale: Option<i64>) -> SourceColumn {
        SourceColumn { name: name.into(), data_type: data_type.into(), scale, char_length: None }
    }

    #[test]
    fn numeric_is_compared_at_the_target_scale() {
        let e = snowflake_expr(&source("Rate", "NUMBER", Some(2)), &target("rate", PgType::Numeric, Some(4)));
        assert_eq!(e, r#"CAST(CAST("Rate" AS NUMBER(38, 4)) AS VARCHAR)"#);
        let e = snowflake_expr(&source("Rate", "NUMBER", Some(2)), &target("rate", PgType::Numeric, None));
        assert_eq!(e, r#"CAST(CAST("Rate" AS NUMBER(38, 2)) AS VARCHAR)"#);
    }

    #[test]
    fn timestamp_tz_into_naive_timestamp_uses_the_stored_offset_wall_clock() {
        let e = snowflake_expr(&source("At", "TIMESTAMP_TZ", None), &target("at", PgType::Timestamp, None));
        assert!(e.contains(r#"CAST("At" AS TIMESTAMP_NTZ)"#), "{e}");
        let e = snowflake_expr(&source("At", "TIMESTAMP_TZ", None), &target("at", PgType::Timestamptz, None));
        assert!(e.contains("CONVERT_TIMEZONE('UTC', \"At\")"), "{e}");
    }

    #[test]
    fn row_text_marks_nulls_and_separates_columns() {
        assert_eq!(row_text(&["a".into(), "b".into()]), "COALESCE(a, CHR(30)) || CHR(31) || COALESCE(b, CHR(30))");
    }

    #[test]
    fn hex_digits_are_weighted_by_position() {
        let sql = hex_to_int("h", 1, 2);
        assert_eq!(sql, "(POSITION(SUBSTR(h, 1, 1) IN '0123456789abcdef') - 1) * 16 + (POSITION(SUBSTR(h, 2, 1) IN '0123456789abcdef') - 1) * 1");
    }
}
