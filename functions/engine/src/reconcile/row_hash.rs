//! Row hashes computed in Rust from the Arrow batch thaw writes
//! (docs/reconcile.md §4.2): per row, the key text and the row text exactly
//! as PostgreSQL's canonical SQL renders the written target row
//! ([`canonical::postgres_expr`], docs/reconcile.md §3), their MD5s, the
//! key's place in the key-hash space (§4) and the 48-bit row hash whose two
//! 24-bit halves the segment sums add up (§2.2).
//!
//! The form of each column is decided once per table by the **source**
//! column's type and the target column's type (`ColumnForm::of`), in the
//! same order of rules as [`canonical::postgres_expr`]; each row's value is
//! then rendered from the batch's typed Arrow values ([`ColumnView`]) into
//! one reusable buffer, so hashing allocates nothing per row. The value
//! rendered is the one the COPY encoder writes (it refuses lossy writes, so
//! for an accepted row the target's form equals the source's), which is why
//! the hash thaw keeps equals PostgreSQL's SQL hash of the stored row and
//! Snowflake's hash of the source row: `tests/types_roundtrip.rs`
//! (`rust_row_hashes_of_the_written_batch_equal_both_engines_value_by_value`)
//! checks all three for every type pair of the round-trip suite.

use std::io::Write as _;

use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::FieldRef;
use md5::{Digest, Md5};

use super::canonical::{self, canonical_float, canonical_json};
use crate::error::{Error, Result};
use crate::sink::encode::{minify_json, parse_decimal_text, render_text, write_decimal};
use crate::sink::values::{ColumnKind, ColumnView, Values, MICROS_PER_DAY};
use crate::sink::PgType;
use crate::source::arrow::LogicalType;
use crate::sync::table_plan::ColumnPair;

/// Hex digits of the key's MD5 that place a row (7 digits = 28 bits, docs/reconcile.md §4).
pub const PLACE_BITS: u32 = 28;

/// One row's hashes as reconcile uses them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RowHash {
    /// `MD5(key text)`, 16 bytes (the row's identity in the side table).
    pub key_md5: [u8; 16],
    /// The row's place in the key-hash space: the first 28 bits of
    /// `key_md5`, in `[0, 2^28)` (docs/reconcile.md §4).
    pub key_place: u32,
    /// The first 48 bits of `MD5(row text)` (docs/reconcile.md §2.2).
    pub row_hash: u64,
}

impl RowHash {
    /// The two 24-bit halves the segment sums add: (bits 47..24, bits 23..0).
    pub fn halves(self) -> (u64, u64) {
        (self.row_hash >> 24, self.row_hash & 0xff_ffff)
    }
}

/// The key-hash place of a key MD5: its first 28 bits (the value of its
/// first 7 hex digits).
pub fn key_place(key_md5: &[u8; 16]) -> u32 {
    u32::from_be_bytes([key_md5[0], key_md5[1], key_md5[2], key_md5[3]]) >> (32 - PLACE_BITS)
}

/// The 48-bit row hash of a row MD5: its first 6 bytes (first 12 hex digits).
pub fn row_hash48(row_md5: &[u8; 16]) -> u64 {
    row_md5[..6].iter().fold(0u64, |a, b| (a << 8) | u64::from(*b))
}

/// How one column's canonical text is rendered from the written value; the
/// rules of [`canonical::postgres_expr`], in its order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ColumnForm {
    /// A FLOAT source in a number column: [`canonical_float`] of the stored
    /// value read back as `float8` (`float4`: rounded to single precision;
    /// `numeric`: −0 is stored as 0).
    Float { float4: bool, numeric: bool },
    /// A TEXT source in an integer or numeric column: the parsed value
    /// rounded (half away from zero) to `scale` decimals, or, in an
    /// unconstrained `numeric` (`None`), exact without trailing zeros after
    /// the point (PostgreSQL's `TRIM_SCALE`); blank is NULL.
    TextNumber { scale: Option<u32> },
    /// Any other number: the value at `scale` decimals (half away from zero).
    Number { scale: u32 },
    /// The stored text; `bpchar`: trailing blanks removed.
    Text { bpchar: bool },
    /// `1` / `0`.
    Bool,
    /// Microseconds since 1970-01-01 of the stored date.
    Date,
    /// Microseconds since 1970-01-01 of the wall clock written (`timestamp`).
    WallClock,
    /// Microseconds since 1970-01-01 of the instant written (`timestamptz`).
    Instant,
    /// Microseconds since midnight.
    Time,
    /// Lower-case hyphenated.
    Uuid,
    /// [`canonical_json`] of the stored JSON.
    Json,
    /// Lower-case hex.
    Bytea,
}

impl ColumnForm {
    fn of(pair: &ColumnPair) -> ColumnForm {
        let (source, target) = (&pair.source, &pair.target);
        let logical = canonical::logical(source);
        let number_scale = canonical::number_scale(source, target) as u32;
        match target.pg_type {
            PgType::Int2 | PgType::Int4 | PgType::Int8 | PgType::Numeric | PgType::Float4 | PgType::Float8 if logical == LogicalType::Real => {
                ColumnForm::Float { float4: target.pg_type == PgType::Float4, numeric: target.pg_type == PgType::Numeric }
            }
            PgType::Int2 | PgType::Int4 | PgType::Int8 | PgType::Numeric if logical == LogicalType::Text => {
                // An unconstrained numeric holds the text's own decimals: compared exactly.
                ColumnForm::TextNumber { scale: (target.pg_type != PgType::Numeric || target.numeric_scale.is_some()).then(|| target.numeric_scale.map(i64::from).unwrap_or(0).clamp(0, 37) as u32) }
            }
            PgType::Int2 | PgType::Int4 | PgType::Int8 | PgType::Numeric | PgType::Float4 | PgType::Float8 => ColumnForm::Number { scale: number_scale },
            PgType::Uuid => ColumnForm::Uuid,
            PgType::Text | PgType::Varchar => ColumnForm::Text { bpchar: false },
            PgType::Bpchar => ColumnForm::Text { bpchar: true },
            PgType::Bool => ColumnForm::Bool,
            PgType::Date => ColumnForm::Date,
            PgType::Time => ColumnForm::Time,
            PgType::Timestamp => ColumnForm::WallClock,
            PgType::Timestamptz => ColumnForm::Instant,
            PgType::Json | PgType::Jsonb => ColumnForm::Json,
            PgType::Bytea => ColumnForm::Bytea,
        }
    }
}

/// Computes [`RowHash`]es (and, for tests and diagnostics, the canonical
/// texts) of the rows of batches in one table's standard Arrow schema.
#[derive(Debug, Clone)]
pub struct RowHasher {
    /// Per column (batch order): its name (for messages), kind and form.
    columns: Vec<(String, ColumnKind, ColumnForm)>,
    /// Positions of the key columns, in key order (all columns when the
    /// table has no key).
    keys: Vec<usize>,
}

/// One rendered value: written into the buffer, or NULL.
enum Rendered {
    Value,
    Null,
}

impl RowHasher {
    /// Prepare for a table whose columns are `pairs` (source and target, in
    /// the batch's column order, as the plan stores them) arriving as
    /// `fields` (the batches' schema), keyed by `key_columns` (target names;
    /// empty: every column is the key, as reconcile does).
    ///
    /// Errors: `Internal` when the field count differs from the pairs;
    /// `TypeUnsupported` for a field outside the sink's Arrow vocabulary.
    pub fn new(pairs: &[ColumnPair], fields: &[FieldRef], key_columns: &[String]) -> Result<RowHasher> {
        if pairs.len() != fields.len() {
            return Err(Error::internal(format!("row hashes: {} columns planned but the batches have {}", pairs.len(), fields.len())));
        }
        let columns = pairs
            .iter()
            .zip(fields)
            .map(|(p, f)| Ok((p.target.name.clone(), ColumnKind::of_field(f)?, ColumnForm::of(p))))
            .collect::<Result<Vec<_>>>()?;
        let keys: Vec<usize> = if key_columns.is_empty() {
            (0..pairs.len()).collect()
        } else {
            key_columns.iter().filter_map(|k| pairs.iter().position(|p| &p.target.name == k)).collect()
        };
        Ok(RowHasher { columns, keys })
    }

    fn views<'a>(&self, batch: &'a RecordBatch) -> Result<Vec<ColumnView<'a>>> {
        if batch.num_columns() != self.columns.len() {
            return Err(Error::internal(format!("row hashes: a batch has {} columns, the table {}", batch.num_columns(), self.columns.len())));
        }
        self.columns.iter().zip(batch.columns()).map(|((name, kind, _), a): (_, &ArrayRef)| ColumnView::new(name, *kind, a)).collect()
    }

    /// Append one [`RowHash`] per row of `batch` to `out`, in row order.
    ///
    /// Errors: `TypeUnsupported` when a batch's Arrow type does not fit the
    /// column; `ChunkFailed` for a value without a canonical form (one the
    /// COPY encoder refuses too, e.g. a timestamp beyond ±292 000 years).
    pub fn hash_batch(&self, batch: &RecordBatch, out: &mut Vec<RowHash>) -> Result<()> {
        let views = self.views(batch)?;
        out.reserve(batch.num_rows());
        let (mut row_text, mut key_text, mut value) = (Vec::with_capacity(256), Vec::with_capacity(64), Vec::with_capacity(64));
        let mut is_key = vec![false; self.columns.len()];
        for k in &self.keys {
            is_key[*k] = true;
        }
        // Key columns in key order: their rendered values, kept per row.
        let mut key_values: Vec<Option<Vec<u8>>> = vec![None; self.columns.len()];
        for row in 0..batch.num_rows() {
            row_text.clear();
            key_text.clear();
            for (i, view) in views.iter().enumerate() {
                if i > 0 {
                    row_text.push(canonical::SEPARATOR as u8);
                }
                value.clear();
                let rendered = self.render(i, view, row, &mut value)?;
                let text: &[u8] = match rendered {
                    Rendered::Value => &value,
                    Rendered::Null => &[canonical::NULL_MARKER as u8],
                };
                row_text.extend_from_slice(text);
                if is_key[i] {
                    let slot = key_values[i].get_or_insert_with(Vec::new);
                    slot.clear();
                    slot.extend_from_slice(text);
                }
            }
            for (n, k) in self.keys.iter().enumerate() {
                if n > 0 {
                    key_text.push(canonical::SEPARATOR as u8);
                }
                key_text.extend_from_slice(key_values[*k].as_deref().unwrap_or_default());
            }
            let key_md5: [u8; 16] = Md5::digest(&key_text).into();
            let row_md5: [u8; 16] = Md5::digest(&row_text).into();
            out.push(RowHash { key_md5, key_place: key_place(&key_md5), row_hash: row_hash48(&row_md5) });
        }
        Ok(())
    }

    /// Every column's canonical text of every row of `batch` (NULL: `None`),
    /// the texts [`Self::hash_batch`] hashes. For tests and diagnostics.
    ///
    /// Errors: as [`Self::hash_batch`].
    pub fn texts(&self, batch: &RecordBatch) -> Result<Vec<Vec<Option<String>>>> {
        let views = self.views(batch)?;
        let mut value = Vec::new();
        (0..batch.num_rows())
            .map(|row| {
                views
                    .iter()
                    .enumerate()
                    .map(|(i, view)| {
                        value.clear();
                        Ok(match self.render(i, view, row, &mut value)? {
                            Rendered::Value => Some(String::from_utf8_lossy(&value).into_owned()),
                            Rendered::Null => None,
                        })
                    })
                    .collect()
            })
            .collect()
    }

    /// Render column `i` of `row` into `out` (empty on entry).
    fn render(&self, i: usize, view: &ColumnView<'_>, row: usize, out: &mut Vec<u8>) -> Result<Rendered> {
        if view.is_null(row) {
            return Ok(Rendered::Null);
        }
        let (name, _, form) = &self.columns[i];
        let bad = |what: String| Error::new(crate::error::ErrorKind::ChunkFailed, format!("row hashes: column \"{name}\", row {row} of the batch: {what}"));
        let w = |out: &mut Vec<u8>, x: &dyn std::fmt::Display| write!(out, "{x}").expect("Vec write");
        match (*form, view.values) {
            (ColumnForm::Float { float4, numeric }, values) => {
                let x = match values {
                    Values::Float64(v) => v[row],
                    Values::Float32(v) => f64::from(v[row]),
                    Values::Number { unscaled, scale } => decimal_to_f64(unscaled.get(row), scale),
                    other => return Err(bad(format!("a float column brought {other:?}"))),
                };
                let stored = if float4 {
                    f64::from(x as f32)
                } else if numeric && x == 0.0 {
                    0.0
                } else {
                    x
                };
                out.extend_from_slice(canonical_float(stored).as_bytes());
            }
            (ColumnForm::TextNumber { scale }, Values::Text(t)) => {
                let text = t.value(row);
                let Some((unscaled, s)) = parse_decimal_text(text) else {
                    // The encoder writes blank as NULL and refuses anything else.
                    return if text.trim().is_empty() { Ok(Rendered::Null) } else { Err(bad(format!("'{text}' is not a decimal number"))) };
                };
                match scale {
                    Some(scale) => write_decimal(out, round_half_away(unscaled, s, scale).ok_or_else(|| bad("value out of range".into()))?, scale),
                    None => {
                        // Exact, in its shortest form (`TRIM_SCALE`): trailing zeros dropped.
                        let (mut unscaled, mut s) = (unscaled, s);
                        while s > 0 && unscaled % 10 == 0 {
                            (unscaled, s) = (unscaled / 10, s - 1);
                        }
                        write_decimal(out, unscaled, s);
                    }
                }
            }
            (ColumnForm::Number { scale }, Values::Number { unscaled, scale: s }) => {
                write_decimal(out, round_half_away(unscaled.get(row), s, scale).ok_or_else(|| bad("value out of range".into()))?, scale);
            }
            (ColumnForm::Text { bpchar }, values) => {
                match values {
                    Values::Text(t) if view.kind == ColumnKind::Json => minify_json(t.value(row).as_bytes(), out),
                    Values::Text(t) => out.extend_from_slice(t.value(row).as_bytes()),
                    Values::Binary(b) => out.extend_from_slice(String::from_utf8_lossy(b.value(row)).as_bytes()),
                    values => render_text(view, values, row, out).map_err(bad)?,
                }
                if bpchar {
                    while out.last() == Some(&b' ') {
                        out.pop();
                    }
                }
                canonical::escape_separators(out);
            }
            (ColumnForm::Bool, Values::Boolean(b)) => out.push(if b.value(row) { b'1' } else { b'0' }),
            (ColumnForm::Bool, Values::Number { unscaled, .. }) => out.push(if unscaled.get(row) != 0 { b'1' } else { b'0' }),
            (ColumnForm::Date, Values::Date(d)) => w(out, &(i64::from(d[row]) * MICROS_PER_DAY)),
            (ColumnForm::Date, Values::Timestamp { .. }) => {
                let ts = view.timestamp(row).ok_or_else(|| bad("timestamp out of range".into()))?;
                w(out, &(ts.wall_micros().div_euclid(MICROS_PER_DAY) * MICROS_PER_DAY));
            }
            (ColumnForm::WallClock | ColumnForm::Instant, Values::Date(d)) => w(out, &(i64::from(d[row]) * MICROS_PER_DAY)),
            (ColumnForm::WallClock, Values::Timestamp { .. }) => w(out, &view.timestamp(row).ok_or_else(|| bad("timestamp out of range".into()))?.wall_micros()),
            (ColumnForm::Instant, Values::Timestamp { .. }) => w(out, &view.timestamp(row).ok_or_else(|| bad("timestamp out of range".into()))?.micros),
            (ColumnForm::Time, Values::Time { .. }) => w(out, &view.time_micros(row).ok_or_else(|| bad("time of day out of range".into()))?),
            (ColumnForm::Uuid, Values::Text(t)) => {
                let id = uuid::Uuid::try_parse(t.value(row).trim()).map_err(|_| bad(format!("'{}' is not a UUID", t.value(row))))?;
                w(out, &id.hyphenated());
            }
            (ColumnForm::Json, Values::Text(t)) => {
                let v: serde_json::Value = serde_json::from_str(t.value(row)).map_err(|e| bad(format!("not JSON: {e}")))?;
                out.extend_from_slice(canonical_json(&v).as_bytes());
            }
            (ColumnForm::Bytea, Values::Binary(b)) => out.extend_from_slice(hex::encode(b.value(row)).as_bytes()),
            (form, values) => return Err(bad(format!("no canonical form {form:?} for {values:?}"))),
        }
        Ok(Rendered::Value)
    }
}

/// `unscaled / 10^scale` as the nearest double (through its decimal text).
fn decimal_to_f64(unscaled: i128, scale: u32) -> f64 {
    let mut text = Vec::new();
    write_decimal(&mut text, unscaled, scale);
    std::str::from_utf8(&text).ok().and_then(|s| s.parse().ok()).unwrap_or(f64::NAN)
}

/// `unscaled / 10^from` at `to` decimals, rounded half away from zero like
/// PostgreSQL's `ROUND(numeric, n)`; `None` on overflow.
fn round_half_away(unscaled: i128, from: u32, to: u32) -> Option<i128> {
    if to >= from {
        return unscaled.checked_mul(10i128.checked_pow(to - from)?);
    }
    let p = 10i128.checked_pow(from - to)?;
    let (q, r) = (unscaled / p, unscaled % p);
    Some(if r.unsigned_abs() * 2 >= p.unsigned_abs() { q + unscaled.signum() } else { q })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn place_and_row_hash_are_the_first_7_and_12_hex_digits() {
        let md5: [u8; 16] = Md5::digest(b"abc").into();
        let hex = hex::encode(md5);
        assert_eq!(u64::from(key_place(&md5)), u64::from_str_radix(&hex[..7], 16).unwrap());
        assert_eq!(row_hash48(&md5), u64::from_str_radix(&hex[..12], 16).unwrap());
        let h = RowHash { key_md5: md5, key_place: key_place(&md5), row_hash: row_hash48(&md5) };
        assert_eq!(h.halves(), (u64::from_str_radix(&hex[..6], 16).unwrap(), u64::from_str_radix(&hex[6..12], 16).unwrap()));
    }

    #[test]
    fn rounding_is_half_away_from_zero_like_postgres_round() {
        assert_eq!(round_half_away(125, 2, 1), Some(13));
        assert_eq!(round_half_away(-125, 2, 1), Some(-13));
        assert_eq!(round_half_away(124, 2, 1), Some(12));
        assert_eq!(round_half_away(125, 5, 0), Some(0));
        assert_eq!(round_half_away(15, 1, 3), Some(1500));
    }
}
