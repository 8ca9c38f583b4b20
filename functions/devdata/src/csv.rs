//! CSV files for bulk loading, in the format of [`crate::load`]
//! (written by [`load::write_csv_record`]): no header, every non-NULL value
//! quoted, NULL as an unquoted `\N`, values as Snowflake text forms.
//! Timestamps keep their offset (`2026-11-01 01:10:00-04:00`), so a
//! TIMESTAMP_TZ carries the agency's offset.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, FixedOffset, NaiveDateTime, Utc};
use md5::{Digest, Md5};
use uuid::Uuid;

use crate::load;
use crate::tables::TableDef;
use thaw_engine::error::{Error, Result};

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

    /// The Snowflake text form, `None` for NULL.
    pub fn text_form(&self) -> Option<String> {
        Some(match self {
            Cell::Null => return None,
            Cell::Text(s) => s.clone(),
            Cell::Uuid(u) => u.hyphenated().to_string(),
            Cell::Int(v) => v.to_string(),
            Cell::Decimal(v, scale) => decimal(*v, *scale),
            Cell::Float(v) => v.to_string(),
            Cell::Bool(b) => b.to_string(),
            Cell::TimestampTz(t) => t.format("%Y-%m-%d %H:%M:%S%:z").to_string(),
            Cell::TimestampLtz(t) => t.format("%Y-%m-%d %H:%M:%S+00:00").to_string(),
            Cell::Timestamp(t) => t.format("%Y-%m-%d %H:%M:%S").to_string(),
        })
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
    format!(
        "{sign}{}.{:0width$}",
        a / p as u64,
        a % p as u64,
        width = scale as usize
    )
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
    /// Create `<dir>/<TABLE>.<part>.csv` (no header: columns are in table order).
    pub fn create(dir: &Path, table: TableDef, part: u64) -> Result<CsvTableWriter> {
        let path = dir.join(format!("{}.{part}.csv", table.name));
        let file = File::create(&path).map_err(|e| {
            Error::config(format!(
                "cannot create {}: {e}. Check that --out-dir is writable.",
                path.display()
            ))
        })?;
        let w = CsvTableWriter {
            table,
            path,
            out: BufWriter::with_capacity(1 << 20, file),
            line: Vec::with_capacity(1024),
            digest: Md5::new(),
            rows: 0,
        };
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

    /// Data rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Append a block of rows.
    pub fn write_block(&mut self, rows: &[Vec<Cell>]) -> Result<()> {
        rows.iter().try_for_each(|r| self.write(r))
    }

    fn write_line(&mut self, cells: &[Cell]) -> Result<()> {
        self.line.clear();
        let texts: Vec<Option<String>> = cells.iter().map(Cell::text_form).collect();
        load::write_csv_record(&mut self.line, texts.iter().map(|t| t.as_deref()))
            .expect("writing to a Vec cannot fail");
        self.digest.update(&self.line);
        self.out.write_all(&self.line).map_err(|e| {
            Error::internal(format!(
                "cannot write {}: {e} (disk full?)",
                self.path.display()
            ))
        })
    }

    /// Flush and close; returns the file and its data rows and MD5 (hex).
    pub fn finish(mut self) -> Result<WrittenFile> {
        self.out.flush().map_err(|e| {
            Error::internal(format!(
                "cannot write {}: {e} (disk full?)",
                self.path.display()
            ))
        })?;
        Ok(WrittenFile {
            table: self.table,
            path: self.path,
            rows: self.rows,
            md5: hex::encode(self.digest.finalize()),
        })
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

    #[test]
    fn null_and_empty_text_are_distinct() {
        assert_eq!(Cell::Null.text_form(), None);
        assert_eq!(Cell::text("").text_form(), Some(String::new()));
        assert_eq!(Cell::Bool(true).text_form().as_deref(), Some("true"));
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
        assert_eq!(
            Cell::TimestampTz(t).text_form().as_deref(),
            Some("2026-11-01 01:10:00-04:00")
        );
    }
}
