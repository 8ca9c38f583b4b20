//! Bulk loading generated rows into the Snowflake emulator through the
//! Snowflake HTTP API (thaw's real client, [`SnowflakeSource::execute`]): one
//! statement per file instead of row-by-row `INSERT`s.
//!
//! ## How (fakesnow 0.12.1, DuckDB 2.0)
//! [`bulk_load_csv`] sends
//! ```sql
//! INSERT INTO "DB"."SCHEMA"."TABLE" ("col a", "COL_B", ...)
//! SELECT * FROM read_csv('/abs/file.csv', header = false, all_varchar = true,
//!     delim = ',', quote = '"', escape = '"', nullstr = '\\N', allow_quoted_nulls = false)
//! ```
//! fakesnow passes the unknown table function `read_csv` through to DuckDB.
//! Every field is read as text and cast by DuckDB to the target column's type,
//! so the table's types decide, never a guess from sampled rows. The emulator
//! reads the file itself: it must run on the same machine (the test harness
//! does). Real Snowflake rejects this statement; it is for the emulator only.
//!
//! ## The file format ([`write_csv_record`] writes it)
//! No header; comma-separated; every non-NULL value in double quotes with
//! embedded quotes doubled (newlines allowed inside); SQL NULL is an
//! *unquoted* `\N`, so `"\N"` and `""` are the strings `\N` and empty.
//! Values as Snowflake text: numbers `12.34` / `-1.5` / `1e3` for
//! NUMBER(p,s); booleans `true`/`false` (also `1`/`0`); dates `2026-01-05`;
//! TIMESTAMP_NTZ `2026-01-05 09:00:00.5`; TIMESTAMP_TZ with an offset
//! `2026-01-05 09:00:00-05:00` (stored converted to UTC, as the emulator always
//! does); VARIANT/OBJECT/ARRAY as JSON text `{"a":1}`.
//!
//! ## What else was tried, and why not
//! * `COPY INTO t FROM 'file:///dir/' FILES = ('t.csv') FILE_FORMAT = (TYPE = CSV
//!   FIELD_OPTIONALLY_ENCLOSED_BY = '"' NULL_IF = ('\\N') EMPTY_FIELD_AS_NULL = FALSE)`
//!   works for small files, but DuckDB sniffs each column's type from the first
//!   20 480 rows: a column that is NULL there and set later fails
//!   ("Could not convert string ... auto-detected"), and `007` in a text column
//!   can be read as the integer 7. Unknown FILE_FORMAT options (e.g. forcing
//!   text) are rejected by fakesnow.
//! * `COPY INTO t FROM 'file:///tmp/t.parquet' ...` processes 0 files: fakesnow
//!   globs `<url>/*` for `file://` URLs, so the URL must be a directory, or the
//!   directory plus `FILES = ('t.parquet')`. With `FILE_FORMAT = (TYPE = PARQUET)
//!   MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE` Parquet loads by name (fakesnow
//!   upper-cases the table's column names, so `CASE_SENSITIVE` misses
//!   lower-case names). It would need a Parquet writer for no gain over text.

use std::io::{self, Write};
use std::path::Path;

use thaw_engine::error::{Error, ErrorKind, Result};
use thaw_engine::source::{sql, SnowflakeSource};

/// The unquoted marker that stands for SQL NULL in a bulk-load CSV file.
pub const NULL_MARKER: &str = "\\N";

/// Write one record (one row) of a bulk-load CSV file: `None` is NULL, every
/// other value is quoted. Values are Snowflake text forms (see the module docs).
///
/// Errors: those of `out`.
pub fn write_csv_record<'a, W: Write>(out: &mut W, fields: impl IntoIterator<Item = Option<&'a str>>) -> io::Result<()> {
    for (i, field) in fields.into_iter().enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        match field {
            None => out.write_all(NULL_MARKER.as_bytes())?,
            Some(value) => {
                out.write_all(b"\"")?;
                let mut rest = value;
                while let Some(at) = rest.find('"') {
                    out.write_all(&rest.as_bytes()[..=at])?;
                    out.write_all(b"\"")?;
                    rest = &rest[at + 1..];
                }
                out.write_all(rest.as_bytes())?;
                out.write_all(b"\"")?;
            }
        }
    }
    out.write_all(b"\n")
}

/// Load every row of `csv_path` (format: module docs, [`write_csv_record`])
/// into `table_fqn`, assigning the file's fields in order to `columns`.
///
/// * `table_fqn`: the quoted, fully qualified table as [`sql::table`] renders it.
/// * `columns`: unquoted column names (quoted here; spaces and any case are fine),
///   as many as the file has fields; other columns get their defaults.
/// * Returns the number of rows inserted.
///
/// One statement, run by the emulator's DuckDB with all its cores; about
/// 1 M rows × 40 columns in seconds (see the emulator client tests).
///
/// Errors: [`ErrorKind::ConfigInvalid`] when `csv_path` is not a readable file or
/// `columns` is empty; [`ErrorKind::SchemaMismatch`] for a missing table or
/// column; a bad value (e.g. `abc` for a NUMBER) fails the whole statement with
/// the emulator's message naming the line and column.
pub async fn bulk_load_csv(source: &SnowflakeSource, table_fqn: &str, columns: &[String], csv_path: &Path) -> Result<u64> {
    if columns.is_empty() {
        return Err(Error::config(format!("bulk load into {table_fqn}: no columns given for {}", csv_path.display())));
    }
    let path = std::fs::canonicalize(csv_path)
        .ok()
        .filter(|p| p.is_file())
        .ok_or_else(|| Error::config(format!("bulk load into {table_fqn}: {} is not a readable file", csv_path.display())))?;
    let path = path
        .to_str()
        .ok_or_else(|| Error::config(format!("bulk load into {table_fqn}: path {} is not UTF-8", path.display())))?;
    let column_list = columns.iter().map(|c| sql::ident(c)).collect::<Vec<_>>().join(", ");
    let statement = format!(
        "INSERT INTO {table_fqn} ({column_list}) SELECT * FROM read_csv({}, header = false, all_varchar = true, \
         delim = ',', quote = '\"', escape = '\"', nullstr = {}, allow_quoted_nulls = false)",
        sql::literal(path),
        sql::literal(NULL_MARKER),
    );
    let rows = source.execute(&statement).await?;
    let inserted = rows.first().and_then(|row| row.first()).and_then(|cell| cell.as_deref());
    inserted.and_then(|n| n.parse::<u64>().ok()).ok_or_else(|| {
        Error::new(
            ErrorKind::Internal,
            format!("bulk load into {table_fqn} from {path}: the emulator answered {rows:?} instead of an inserted-row count"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(fields: &[Option<&str>]) -> String {
        let mut out = Vec::new();
        write_csv_record(&mut out, fields.iter().copied()).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn null_is_an_unquoted_marker_and_values_are_quoted() {
        assert_eq!(record(&[Some("1"), None, Some(""), Some("\\N")]), "\"1\",\\N,\"\",\"\\N\"\n");
    }

    #[test]
    fn embedded_quotes_are_doubled_and_newlines_kept() {
        assert_eq!(record(&[Some("say \"hi\""), Some("a\nb"), Some("\"")]), "\"say \"\"hi\"\"\",\"a\nb\",\"\"\"\"\n");
    }
}
