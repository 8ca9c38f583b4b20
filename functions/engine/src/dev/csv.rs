//! CSV files for bulk loading: one header line, then one line per row.
//!
//! Dialect (what the loader declares to Snowflake): comma separated, `"` as
//! the optional enclosure with `""` for an embedded quote, `\n` line ends.
//! An *unquoted empty* field is SQL NULL; text is always quoted, so an empty
//! string is `""` and stays distinct from NULL (the csv crate's writer has one
//! quoting style per file and cannot express that per field, hence this small
//! writer). Timestamps are ISO 8601 with their offset
//! (`2026-11-01T01:10:00-04:00`), so TIMESTAMP_TZ keeps the agency's offset.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, FixedOffset, NaiveDateTime, Utc};
use md5::{Digest, Md5};
use uuid::Uuid;

use crate::dev::tables::TableDef;
use crate::error::{Error, Result};

/// One field value.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// SQL NULL.
    Null,
    /// Text (always quoted).
    Text(String),
    /// A UUID rendered lower-case, quoted.
    Uuid(Uuid),
    /// An integer.
    Int(i64),
    /// A fixed-point decimal: `value / 10^scale`, rendered with `scale` digits.
    Decimal(i64, u32),
    /// A float.
    Float(f64),
    /// A boolean (`TRUE`/`FALSE`).
    Bool(bool),
    /// TIMESTAMP_TZ: instant with its offset.
    TimestampTz(DateTime<FixedOffset>),
    /// TIMESTAMP_LTZ: an instant, rendered in UTC.
    TimestampLtz(DateTime<Utc>),
    /// TIMESTAMP_NTZ.
    Timestamp(NaiveDateTime),
}

impl Cell {
    /// Text cell from anything string-like.
    pub fn text(s: impl Into<String>) -> Cell {
        Cell::Text(s.into())
    }

    /// Text or NULL.
    pub fn opt_text(s: Option<impl Into<String>>) -> Cell {
        s.map_or(Cell::Null, |s| Cell::Text(s.into()))
    }

    /// TIMESTAMP_TZ or NULL.
    pub fn opt_tz(t: Option<DateTime<FixedOffset>>) -> Cell {
        t.map_or(Cell::Null, Cell::TimestampTz)
    }

    /// UUID or NULL.
    pub fn opt_uuid(u: Option<Uuid>) -> Cell {
        u.map_or(Cell::Null, Cell::Uuid)
    }

    fn write_to(&self, out: &mut Vec<u8>) {
        match self {
            Cell::Null => {}
            Cell::Text(s) => quoted(out, s),
            Cell::Uuid(u) => {
                out.push(b'"');
                out.extend_from_slice(u.hyphenated().encode_lower(&mut Uuid::encode_buffer()).as_bytes());
                out.push(b'"');
            }
            Cell::Int(v) => out.extend_from_slice(v.to_string().as_bytes()),
            Cell::Decimal(v, scale) => out.extend_from_slice(decimal(*v, *scale).as_bytes()),
            Cell::Float(v) => out.extend_from_slice(v.to_string().as_bytes()),
            Cell::Bool(b) => out.extend_from_slice(if *b { b"TRUE" } else { b"FALSE" }),
            Cell::TimestampTz(t) => out.extend_from_slice(t.format("%Y-%m-%dT%H:%M:%S%:z").to_string().as_bytes()),
            Cell::TimestampLtz(t) => out.extend_from_slice(t.format("%Y-%m-%dT%H:%M:%SZ").to_string().as_bytes()),
            Cell::Timestamp(t) => out.extend_from_slice(t.format("%Y-%m-%d %H:%M:%S").to_string().as_bytes()),
        }
    }
}

/// `value / 10^scale` as text with exactly `scale` fractional digits.
pub fn decimal(value: i64, scale: u32) -> String {
    if scale == 0 {
        return value.to_string();
    }
    let p = 10i64.pow(scale);
    let sign = if value < 0 { "-" } else { "" };
    let a = value.unsigned_abs();
    format!("{sign}{}.{:0width$}", a / p as u64, a % p as u64, width = scale as usize)
}

fn quoted(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    for b in s.bytes() {
        if b == b'"' {
            out.push(b'"');
        }
        out.push(b);
    }
    out.push(b'"');
}

/// Writes the rows of one table into one CSV file and keeps a running MD5 of
/// the bytes (the dataset checksum of the seed report).
pub struct CsvTableWriter {
    table: TableDef,
    path: PathBuf,
    out: BufWriter<File>,
    line: Vec<u8>,
    digest: Md5,
    rows: u64,
}

impl CsvTableWriter {
    /// Create `<dir>/<TABLE>.csv` and write the header.
    pub fn create(dir: &Path, table: TableDef) -> Result<CsvTableWriter> {
        let path = dir.join(format!("{}.csv", table.name));
        let file = File::create(&path)
            .map_err(|e| Error::config(format!("cannot create {}: {e}. Check that --out-dir is writable.", path.display())))?;
        let mut w = CsvTableWriter { table, path, out: BufWriter::with_capacity(1 << 20, file), line: Vec::with_capacity(1024), digest: Md5::new(), rows: 0 };
        let header: Vec<Cell> = table.columns.iter().map(|c| Cell::text(c.name)).collect();
        w.write_line(&header)?;
        Ok(w)
    }

    /// Append one row; `cells` must follow the table's column order.
    pub fn write(&mut self, cells: &[Cell]) -> Result<()> {
        if cells.len() != self.table.columns.len() {
            return Err(Error::internal(format!(
                "generator produced {} values for {} which has {} columns",
                cells.len(),
                self.table.name,
                self.table.columns.len()
            )));
        }
        self.write_line(cells)?;
        self.rows += 1;
        Ok(())
    }

    /// Append a block of rows.
    pub fn write_block(&mut self, rows: &[Vec<Cell>]) -> Result<()> {
        rows.iter().try_for_each(|r| self.write(r))
    }

    fn write_line(&mut self, cells: &[Cell]) -> Result<()> {
        self.line.clear();
        for (i, c) in cells.iter().enumerate() {
            if i > 0 {
                self.line.push(b',');
            }
            c.write_to(&mut self.line);
        }
        self.line.push(b'\n');
        self.digest.update(&self.line);
        self.out
            .write_all(&self.line)
            .map_err(|e| Error::internal(format!("cannot write {}: {e} (disk full?)", self.path.display())))
    }

    /// Flush and close; returns the file and its data rows and MD5 (hex).
    pub fn finish(mut self) -> Result<WrittenFile> {
        self.out.flush().map_err(|e| Error::internal(format!("cannot write {}: {e} (disk full?)", self.path.display())))?;
        Ok(WrittenFile { table: self.table, path: self.path, rows: self.rows, md5: hex::encode(self.digest.finalize()) })
    }
}

/// A finished CSV file.
#[derive(Debug, Clone)]
pub struct WrittenFile {
    /// Table it belongs to.
    pub table: TableDef,
    /// File path.
    pub path: PathBuf,
    /// Data rows (header excluded).
    pub rows: u64,
    /// MD5 of the file bytes, hex.
    pub md5: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(cells: &[Cell]) -> String {
        let mut out = Vec::new();
        for (i, c) in cells.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            c.write_to(&mut out);
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn null_and_empty_text_are_distinct_and_quotes_are_doubled() {
        assert_eq!(line(&[Cell::Null, Cell::text(""), Cell::text(r#""40.1,-73.2""#)]), r#","","""40.1,-73.2""""#);
    }

    #[test]
    fn decimals_keep_their_scale() {
        assert_eq!(decimal(12_345, 3), "12.345");
        assert_eq!(decimal(-5, 2), "-0.05");
        assert_eq!(decimal(7, 0), "7");
        assert_eq!(decimal(100_000, 5), "1.00000");
    }

    #[test]
    fn timestamps_keep_the_agency_offset() {
        let t = DateTime::parse_from_rfc3339("2026-11-01T01:10:00-04:00").unwrap();
        assert_eq!(line(&[Cell::TimestampTz(t)]), "2026-11-01T01:10:00-04:00");
    }
}
