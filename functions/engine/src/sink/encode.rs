//! PostgreSQL binary COPY, written by hand from standard Arrow batches
//! (the vocabulary of [`super::values`]; docs/sync.md §5.5).
//!
//! The format (PostgreSQL docs, "COPY — Binary Format"): a header
//! `PGCOPY\n\xff\r\n\0` + i32 flags (0) + i32 header-extension length (0);
//! per row an i16 field count, then per field an i32 byte length (−1 = NULL)
//! and the value in the type's binary *send* format; a trailer i16 −1. All
//! integers are big-endian.
//!
//! [`CopyEncoder::new`] checks every (column kind, PostgreSQL type) pair
//! once, before any row is read ([`supported_targets`] is the table; the
//! Snowflake types map to kinds as docs/sync.md §5.5 lists);
//! [`CopyEncoder::encode_batch`] then writes rows straight into a
//! `BytesMut` through per-batch [`ColumnView`]s: no String or Vec per row
//! (text renderings go through one reusable scratch buffer).
//!
//! Value rules (all errors name the column, the value and what to do):
//! * **numeric**: from the unscaled integer / Decimal128 at the target's
//!   scale (the source scale for an unconstrained `numeric`); rescaling that
//!   would drop non-zero digits, or more integer digits than `numeric(p,s)`
//!   holds, is an error. From REAL: rounded to the target scale (shortest
//!   exact binary value, half away from zero, like Snowflake's and DuckDB's
//!   FLOAT→NUMBER cast (0.125 → 0.13, 0.145 → 0.14); the target must declare
//!   its scale.
//! * **int2/int4/int8**: fractional values and values out of range are errors.
//! * **float4/float8**: NUMBER is converted with correct rounding; a finite
//!   double outside float4's range is an error.
//! * **text/varchar/bpchar**: lengths are checked in characters; NUL bytes
//!   (which PostgreSQL text cannot hold) are errors; BINARY must be UTF-8
//!   ([`InvalidUtf8`] decides between rejecting and replacing). Numbers,
//!   booleans, dates, times and timestamps are rendered canonically: NUMBER at
//!   its source scale (`-1.50`), `true`/`false`, `YYYY-MM-DD`,
//!   `HH:MM:SS.ffffff`, `YYYY-MM-DD HH:MM:SS.ffffff` plus `+HH:MM` for
//!   TIMESTAMP_LTZ (always `+00:00`) and TIMESTAMP_TZ (its stored offset) —
//!   the forms Snowflake's `TO_CHAR(…, 'YYYY-MM-DD HH24:MI:SS.FF6TZH:TZM')`
//!   produces, so reconciliation can render them on the Snowflake side.
//!   VARIANT/OBJECT/ARRAY text is minified (whitespace outside strings
//!   removed: real Snowflake sends it pretty-printed), matching `TO_JSON`.
//! * **uuid**: text in any case, with or without hyphens (braces and `urn:`
//!   forms too).
//! * **date/time/timestamp/timestamptz**: microseconds, nanoseconds floored
//!   toward negative infinity. `timestamp` gets the wall clock (TIMESTAMP_TZ:
//!   in its stored offset; TIMESTAMP_LTZ: in UTC); `timestamptz` the instant
//!   (TIMESTAMP_NTZ read as UTC); `date` the wall-clock date.
//! * **json/jsonb**: the JSON text (minified for VARIANT/OBJECT/ARRAY;
//!   jsonb: version byte 1 first). Text from a TEXT column must be one JSON
//!   value; a NUL byte, and for jsonb the escape `\u0000` (which jsonb cannot
//!   store), are errors.
//! * **NULL** into a NOT NULL column is an error.

use std::io::Write as _;

use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, FieldRef};
use bytes::{BufMut, BytesMut};

use super::values::{pow10, type_label, ColumnKind, ColumnView, Values, MICROS_PER_DAY};
use super::{PgType, TargetColumn};
use crate::error::{Error, ErrorKind, Result};

/// The 11-byte signature that starts every binary COPY stream.
pub const COPY_SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";

/// Days from 1970-01-01 to 2000-01-01 (PostgreSQL's date epoch).
const PG_EPOCH_DAYS: i64 = 10_957;
/// Microseconds from 1970-01-01 to 2000-01-01 (PostgreSQL's timestamp epoch).
const PG_EPOCH_MICROS: i64 = PG_EPOCH_DAYS * MICROS_PER_DAY;

/// What to do with BINARY values copied into text columns that are not UTF-8.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvalidUtf8 {
    /// Fail the chunk, naming the column and row (default).
    #[default]
    Reject,
    /// Replace each invalid sequence with U+FFFD.
    Replace,
}

/// The PostgreSQL types a column of `kind` can be copied into, in order of
/// preference. This is the table [`CopyEncoder::new`] enforces and the
/// round-trip tests cover (docs/sync.md §5.2). Snowflake logical types
/// convert into kinds (`source::arrow`), so `supported_targets(LogicalType::Fixed)` works too.
pub fn supported_targets(kind: impl Into<ColumnKind>) -> &'static [PgType] {
    use PgType::*;
    match kind.into() {
        ColumnKind::Number => &[Numeric, Int8, Int4, Int2, Float8, Float4, Bool, Text, Varchar, Bpchar],
        ColumnKind::Float => &[Float8, Float4, Numeric],
        ColumnKind::Text => &[Text, Varchar, Bpchar, Uuid, Json, Jsonb, Int8, Int4, Int2, Numeric],
        ColumnKind::Boolean => &[Bool, Text, Varchar, Bpchar],
        ColumnKind::Date => &[Date, Timestamp, Timestamptz, Text, Varchar, Bpchar],
        ColumnKind::Time => &[Time, Text, Varchar, Bpchar],
        ColumnKind::Timestamp => &[Timestamp, Timestamptz, Date, Text, Varchar, Bpchar],
        ColumnKind::TimestampUtc | ColumnKind::TimestampWithOffset => &[Timestamptz, Timestamp, Date, Text, Varchar, Bpchar],
        ColumnKind::Binary => &[Bytea, Text, Varchar, Bpchar],
        ColumnKind::Json => &[Jsonb, Json, Text, Varchar, Bpchar],
    }
}

/// The catalog name of `t` (`int8`, `timestamptz`, …), as messages list accepted types.
pub(crate) fn pg_name(t: PgType) -> &'static str {
    match t {
        PgType::Bool => "bool",
        PgType::Int2 => "int2",
        PgType::Int4 => "int4",
        PgType::Int8 => "int8",
        PgType::Float4 => "float4",
        PgType::Float8 => "float8",
        PgType::Numeric => "numeric",
        PgType::Text => "text",
        PgType::Varchar => "varchar",
        PgType::Bpchar => "bpchar",
        PgType::Date => "date",
        PgType::Time => "time",
        PgType::Timestamp => "timestamp",
        PgType::Timestamptz => "timestamptz",
        PgType::Uuid => "uuid",
        PgType::Json => "json",
        PgType::Jsonb => "jsonb",
        PgType::Bytea => "bytea",
    }
}

/// How one column's values are converted; chosen once per column.
#[derive(Debug, Clone, Copy)]
enum Conversion {
    NumberToNumeric,
    NumberToInt,
    NumberToFloat,
    NumberToBool,
    RealToFloat,
    RealToNumeric,
    Text,
    TextToUuid,
    /// Numeric text (legacy VARCHAR application ids) into an integer column.
    TextToInt,
    /// Numeric text into a numeric column.
    TextToNumeric,
    Json,
    MinifiedJson,
    JsonToText,
    Bytea,
    Bool,
    DateToDate,
    DateToTimestamp,
    TimeToTime,
    TimestampToTimestamp,
    TimestampToTimestamptz,
    TimestampToDate,
    /// Render any non-text source as canonical text.
    Render,
}

/// The source side of one copied column, read from its Arrow field.
#[derive(Debug, Clone)]
struct SourceColumn {
    /// Field name.
    name: String,
    /// What the values are.
    kind: ColumnKind,
    /// The type as messages name it (`Snowflake TIMESTAMP_NTZ`, `Arrow Int64`).
    label: String,
    /// Decimal128 precision, when the field has one.
    precision: Option<u32>,
}

impl SourceColumn {
    fn of_field(field: &arrow_schema::Field) -> Result<SourceColumn> {
        Ok(SourceColumn {
            name: field.name().clone(),
            kind: ColumnKind::of_field(field)?,
            label: type_label(field),
            precision: match field.data_type() {
                DataType::Decimal128(p, _) => Some(u32::from(*p)),
                _ => None,
            },
        })
    }
}

#[derive(Debug, Clone)]
struct ColumnPlan {
    target: TargetColumn,
    source: SourceColumn,
    conversion: Conversion,
    /// Timestamp into date: drop the time of day on purpose (`truncate_to_date`).
    drop_time_of_day: bool,
}

/// Writes Arrow batches as PostgreSQL binary COPY rows for one target table.
///
/// Build it once per chunk (or table) with the source field and target column
/// of every copied column, then call [`CopyEncoder::header`], any number of
/// [`CopyEncoder::encode_batch`], and [`CopyEncoder::trailer`].
#[derive(Debug)]
pub struct CopyEncoder {
    columns: Vec<ColumnPlan>,
    scratch: Vec<u8>,
    invalid_utf8: InvalidUtf8,
    /// Positions (in COPY order) of the uniqueness columns, named in value errors.
    keys: Vec<usize>,
    /// Target table named in value errors (`"schema"."table"`).
    table: Option<String>,
}

impl CopyEncoder {
    /// Check every (source field, target column) pair and prepare the encoder.
    /// `pairs` are in COPY column order (the order of the COPY column list).
    ///
    /// Errors: [`ErrorKind::TypeUnsupported`] naming the column, the source
    /// type, the PostgreSQL type and the types that would work, for any pair
    /// outside [`supported_targets`] or an Arrow type outside the vocabulary;
    /// [`ErrorKind::ConfigInvalid`] for no columns or more than 1600.
    pub fn new(pairs: Vec<(TargetColumn, FieldRef)>) -> Result<CopyEncoder> {
        if pairs.is_empty() || pairs.len() > 1600 {
            return Err(Error::config(format!(
                "a COPY needs between 1 and 1600 columns, got {}; check the table's column_mapping",
                pairs.len()
            )));
        }
        let mut columns = Vec::with_capacity(pairs.len());
        for (target, field) in pairs {
            let source = SourceColumn::of_field(&field)?;
            let conversion = conversion_for(&source, &target)?;
            columns.push(ColumnPlan { target, source, conversion, drop_time_of_day: false });
        }
        Ok(CopyEncoder { columns, scratch: Vec::with_capacity(256), invalid_utf8: InvalidUtf8::Reject, keys: Vec::new(), table: None })
    }

    /// Name the target table and the uniqueness columns (positions in COPY
    /// order) in every value error, so that a failed row can be found:
    /// `table "public"."orders", key ("Code")=('a0ee…')`. Positions outside
    /// the column list are ignored.
    pub fn with_row_identity(mut self, table: impl Into<String>, keys: Vec<usize>) -> Self {
        self.table = Some(table.into());
        self.keys = keys.into_iter().filter(|k| *k < self.columns.len()).collect();
        self
    }

    /// Let the timestamp columns at `positions` (COPY order) drop their time of
    /// day when their target is a `date` (the table's `truncate_to_date`);
    /// without this a time of day is an error. Other positions are ignored.
    pub fn with_truncate_to_date(mut self, positions: &[usize]) -> Self {
        for p in positions {
            if let Some(c) = self.columns.get_mut(*p) {
                c.drop_time_of_day = matches!(c.conversion, Conversion::TimestampToDate);
            }
        }
        self
    }

    /// Choose what happens to BINARY values copied into text columns that are
    /// not valid UTF-8 (default: reject).
    pub fn with_invalid_utf8(mut self, policy: InvalidUtf8) -> Self {
        self.invalid_utf8 = policy;
        self
    }

    /// The kinds of the source columns, in column order.
    pub fn source_kinds(&self) -> impl Iterator<Item = ColumnKind> + '_ {
        self.columns.iter().map(|c| c.source.kind)
    }

    /// Append the 19-byte COPY header.
    pub fn header(out: &mut BytesMut) {
        out.put_slice(COPY_SIGNATURE);
        out.put_i32(0); // flags: no OIDs
        out.put_i32(0); // header extension length
    }

    /// Append the COPY trailer (field count −1).
    pub fn trailer(out: &mut BytesMut) {
        out.put_i16(-1);
    }

    /// Append every row of `batch` (columns in the encoder's order).
    pub fn encode_record_batch(&mut self, batch: &RecordBatch, out: &mut BytesMut) -> Result<usize> {
        self.encode_batch(batch.columns(), out)
    }

    /// Append the rows of one batch to `out` and return how many were written.
    /// `columns` are aligned with the pairs given to [`CopyEncoder::new`]; their
    /// physical Arrow types may differ from batch to batch.
    ///
    /// On error `out` is truncated back to its length at the call, so a
    /// caller may drop the batch; the chunk itself should fail.
    ///
    /// Errors: [`ErrorKind::ChunkFailed`] for a value the target cannot hold
    /// (naming column, row within the batch and value);
    /// [`ErrorKind::TypeUnsupported`] for a batch whose Arrow type does not
    /// belong to the column's kind;
    /// [`ErrorKind::Internal`] when the column count or lengths disagree.
    pub fn encode_batch(&mut self, columns: &[ArrayRef], out: &mut BytesMut) -> Result<usize> {
        if columns.len() != self.columns.len() {
            return Err(Error::internal(format!(
                "COPY encoder expects {} columns but the batch has {}",
                self.columns.len(),
                columns.len()
            )));
        }
        let rows = columns[0].len();
        if let Some(c) = columns.iter().position(|c| c.len() != rows) {
            return Err(Error::internal(format!("batch column {c} has {} rows, column 0 has {rows}", columns[c].len())));
        }
        let views = self
            .columns
            .iter()
            .zip(columns)
            .map(|(plan, array)| ColumnView::new(&plan.source.name, plan.source.kind, array))
            .collect::<Result<Vec<_>>>()?;
        let start = out.len();
        out.reserve(rows * (2 + 8 * views.len()));
        let field_count = self.columns.len() as i16;
        for row in 0..rows {
            out.put_i16(field_count);
            for (plan, view) in self.columns.iter().zip(&views) {
                if view.is_null(row) {
                    if !plan.target.nullable {
                        out.truncate(start);
                        return Err(Error::new(
                            ErrorKind::ChunkFailed,
                            format!(
                                "{}column \"{}\" is NOT NULL in PostgreSQL but row {row} of the batch has NULL in source column \"{}\". Make the target column nullable, filter the rows (source_filter), or fix the source data.",
                                self.row_identity(&views, row),
                                plan.target.name,
                                plan.source.name
                            ),
                        ));
                    }
                    out.put_i32(-1);
                    continue;
                }
                if let Err(problem) = encode_value(plan, view, row, out, &mut self.scratch, self.invalid_utf8) {
                    out.truncate(start);
                    return Err(Error::new(
                        ErrorKind::ChunkFailed,
                        format!(
                            "{}column \"{}\" ({}): row {row} of the batch from source column \"{}\" ({}): {problem}",
                            self.row_identity(&views, row),
                            plan.target.name,
                            plan.target.type_name,
                            plan.source.name,
                            plan.source.label
                        ),
                    ));
                }
            }
        }
        Ok(rows)
    }

    /// `table "s"."t", key ("k")=('v'): ` for value errors (cold path), empty
    /// when no table was named.
    fn row_identity(&self, views: &[ColumnView<'_>], row: usize) -> String {
        let mut out = String::new();
        if let Some(t) = &self.table {
            out.push_str(&format!("table {t}, "));
        }
        if !self.keys.is_empty() {
            let names: Vec<String> = self.keys.iter().map(|k| format!("\"{}\"", self.columns[*k].target.name)).collect();
            let values: Vec<String> = self.keys.iter().map(|k| key_text(&views[*k], row)).collect();
            out.push_str(&format!("key ({})=({}), ", names.join(", "), values.join(", ")));
        }
        out
    }
}

/// One key value as text for error messages: quoted text, canonical
/// renderings of other types, `NULL`.
fn key_text(view: &ColumnView<'_>, row: usize) -> String {
    if view.is_null(row) {
        return "NULL".into();
    }
    match view.values {
        // A NUL in the message could not be stored with the chunk's error (PostgreSQL text).
        Values::Text(t) => shorten(&t.value(row).replace('\0', "\\0")),
        Values::Binary(b) => format!("x'{}'", hex::encode(&b.value(row)[..b.value(row).len().min(32)])),
        values => {
            let mut buf = Vec::new();
            match render_text(view, values, row, &mut buf) {
                Ok(()) => String::from_utf8_lossy(&buf).into_owned(),
                Err(_) => "(unrenderable)".into(),
            }
        }
    }
}

fn conversion_for(source: &SourceColumn, target: &TargetColumn) -> Result<Conversion> {
    use ColumnKind as K;
    use PgType as P;
    let allowed = supported_targets(source.kind);
    if !allowed.contains(&target.pg_type) {
        let names: Vec<&str> = allowed.iter().map(|t| pg_name(*t)).collect();
        return Err(Error::new(
            ErrorKind::TypeUnsupported,
            format!(
                "column \"{}\": thaw cannot copy {} (source column \"{}\") into PostgreSQL {}. Change the target column to one of: {}; or list the source column in the table's exclude_columns.",
                target.name,
                source.label,
                source.name,
                target.type_name,
                names.join(", ")
            ),
        ));
    }
    let text_target = matches!(target.pg_type, P::Text | P::Varchar | P::Bpchar);
    if source.kind == K::Float && target.pg_type == P::Numeric && target.numeric_scale.is_none() {
        return Err(Error::new(
            ErrorKind::TypeUnsupported,
            format!(
                "column \"{}\": a float (source column \"{}\") can only go into a numeric with a declared scale, e.g. numeric(18, 6), because a float has no decimal scale of its own. Declare the scale or use double precision.",
                target.name, source.name
            ),
        ));
    }
    Ok(match (source.kind, target.pg_type) {
        (K::Number, P::Numeric) => Conversion::NumberToNumeric,
        (K::Number, P::Int2 | P::Int4 | P::Int8) => Conversion::NumberToInt,
        (K::Number, P::Float4 | P::Float8) => Conversion::NumberToFloat,
        (K::Number, P::Bool) => Conversion::NumberToBool,
        (K::Float, P::Float4 | P::Float8) => Conversion::RealToFloat,
        (K::Float, P::Numeric) => Conversion::RealToNumeric,
        (K::Text | K::Binary, _) if text_target => Conversion::Text,
        (K::Json, _) if text_target => Conversion::JsonToText,
        (K::Text, P::Uuid) => Conversion::TextToUuid,
        (K::Text, P::Int2 | P::Int4 | P::Int8) => Conversion::TextToInt,
        (K::Text, P::Numeric) => Conversion::TextToNumeric,
        (K::Text, P::Json | P::Jsonb) => Conversion::Json,
        (K::Json, P::Json | P::Jsonb) => Conversion::MinifiedJson,
        (K::Binary, P::Bytea) => Conversion::Bytea,
        (K::Boolean, P::Bool) => Conversion::Bool,
        (K::Date, P::Date) => Conversion::DateToDate,
        (K::Date, P::Timestamp | P::Timestamptz) => Conversion::DateToTimestamp,
        (K::Time, P::Time) => Conversion::TimeToTime,
        (K::Timestamp | K::TimestampUtc | K::TimestampWithOffset, P::Timestamp) => Conversion::TimestampToTimestamp,
        (K::Timestamp | K::TimestampUtc | K::TimestampWithOffset, P::Timestamptz) => Conversion::TimestampToTimestamptz,
        (K::Timestamp | K::TimestampUtc | K::TimestampWithOffset, P::Date) => Conversion::TimestampToDate,
        (_, _) if text_target => Conversion::Render,
        _ => return Err(Error::internal(format!("no conversion for {} → {}", source.label, target.type_name))),
    })
}

/// Cold-path description of a bad value (what it is and what to do).
type Problem = String;

fn shorten(text: &str) -> String {
    const MAX: usize = 80;
    if text.chars().count() <= MAX {
        format!("'{text}'")
    } else {
        format!("'{}…'", text.chars().take(MAX).collect::<String>())
    }
}

/// Write one non-NULL value (length prefix + send format).
#[inline]
fn encode_value(
    plan: &ColumnPlan,
    view: &ColumnView<'_>,
    row: usize,
    out: &mut BytesMut,
    scratch: &mut Vec<u8>,
    invalid_utf8: InvalidUtf8,
) -> Result<(), Problem> {
    let target = &plan.target;
    match (plan.conversion, view.values) {
        (Conversion::NumberToInt, Values::Number { unscaled, scale }) => {
            let value = if scale == 0 {
                unscaled.get(row)
            } else {
                let u = unscaled.get(row);
                let p = pow10(scale);
                if u % p != 0 {
                    return Err(format!(
                        "value {} has a fractional part and cannot go into an integer column; use numeric({}, {scale}), or round the value in Snowflake",
                        decimal_string(u, scale),
                        (plan.source.precision.unwrap_or(38)).max(scale)
                    ));
                }
                u / p
            };
            put_int(target.pg_type, value, out).map_err(|range| format!("value {value} is outside the range of {} ({range}); use a wider integer type or numeric", target.type_name))
        }
        (Conversion::NumberToNumeric, Values::Number { unscaled, scale }) => {
            let u = unscaled.get(row);
            let (digits, digits_scale, display_scale) = fit_numeric(target, u, scale, || decimal_string(u, scale))?;
            put_numeric(out, digits, digits_scale, display_scale);
            Ok(())
        }
        (Conversion::NumberToFloat, Values::Number { unscaled, scale }) => {
            let u = unscaled.get(row);
            let v = if scale <= 22 && u.unsigned_abs() < (1u128 << 53) {
                u as f64 / 10f64.powi(scale as i32)
            } else {
                scratch.clear();
                write_decimal(scratch, u, scale);
                std::str::from_utf8(scratch).ok().and_then(|s| s.parse::<f64>().ok()).unwrap_or(f64::NAN)
            };
            if !float_is_exact(target.pg_type, v, u, scale) {
                return Err(format!(
                    "value {} has no exact {} representation (it would be stored as {}); use numeric, or round the value in Snowflake",
                    decimal_string(u, scale),
                    target.type_name,
                    float_text(target.pg_type, v)
                ));
            }
            put_float(target.pg_type, v, out).map_err(|_| format!("value {} is outside the range of real; use double precision", decimal_string(u, scale)))
        }
        (Conversion::NumberToBool, Values::Number { unscaled, scale }) => {
            let u = unscaled.get(row);
            let b = if u == 0 {
                false
            } else if u == pow10(scale) {
                true
            } else {
                return Err(format!("value {} is neither 0 nor 1 and cannot go into a boolean column", decimal_string(u, scale)));
            };
            out.put_i32(1);
            out.put_u8(u8::from(b));
            Ok(())
        }
        (Conversion::RealToFloat, Values::Float64(v)) => {
            let x = v[row];
            if target.pg_type == PgType::Float4 && x.is_finite() && float_text(PgType::Float4, x) != float_text(PgType::Float8, x) {
                return Err(format!(
                    "value {x} has no exact real (float4) representation (it would be stored as {}); use double precision",
                    float_text(PgType::Float4, x)
                ));
            }
            put_float(target.pg_type, x, out).map_err(|_| format!("value {x} is outside the range of real; use double precision"))
        }
        (Conversion::RealToFloat, Values::Float32(v)) => put_float(target.pg_type, f64::from(v[row]), out).map_err(|e| e.to_string()),
        (Conversion::RealToNumeric, Values::Float64(_) | Values::Float32(_)) => {
            let x = match view.values {
                Values::Float64(v) => v[row],
                Values::Float32(v) => f64::from(v[row]),
                _ => unreachable!("matched above"),
            };
            if !x.is_finite() {
                return Err(format!("value {x} cannot go into numeric; use double precision or filter it out"));
            }
            let scale = target.numeric_scale.unwrap_or(0).max(0) as u32;
            // The float's shortest decimal form (what Snowflake shows) must fit
            // the scale: rounding it would change the value silently.
            let shortest = x.to_string();
            let exact = parse_decimal_text(&shortest).and_then(|(u, s)| rescale(u, s, scale));
            if exact.is_none() {
                return Err(format!(
                    "value {shortest} has more decimal places than numeric({}, {scale}) keeps; widen the scale, use double precision, or round the value in Snowflake",
                    target.numeric_precision.unwrap_or(0)
                ));
            }
            let unscaled = round_float(x, scale, scratch).ok_or_else(|| format!("value {x} has more than 38 digits at scale {scale}; use double precision"))?;
            check_precision(target, unscaled, scale, || x.to_string())?;
            put_numeric(out, unscaled, scale, scale);
            Ok(())
        }
        (Conversion::Text, Values::Text(t)) => put_text(target, t.value(row).as_bytes(), out),
        (Conversion::Text, Values::Binary(b)) => {
            let bytes = b.value(row);
            match std::str::from_utf8(bytes) {
                Ok(s) => put_text(target, s.as_bytes(), out),
                Err(e) if invalid_utf8 == InvalidUtf8::Replace => {
                    let _ = e;
                    let fixed = String::from_utf8_lossy(bytes);
                    put_text(target, fixed.as_bytes(), out)
                }
                Err(e) => Err(format!(
                    "the bytes are not valid UTF-8 ({e}; starting {}), which a PostgreSQL text column cannot hold; copy the column into bytea, fix the bytes in Snowflake, leave the row out with the table's source_filter, or stop copying the column with exclude_columns",
                    hex::encode(&bytes[..bytes.len().min(16)])
                )),
            }
        }
        (Conversion::TextToUuid, Values::Text(t)) => {
            let s = t.value(row);
            let id = uuid::Uuid::try_parse(s.trim()).map_err(|_| format!("value {} is not a UUID; fix the source value or use a text column", shorten(s)))?;
            out.put_i32(16);
            out.put_slice(id.as_bytes());
            Ok(())
        }
        (Conversion::TextToInt | Conversion::TextToNumeric, Values::Text(t)) => {
            let text = t.value(row);
            let Some((unscaled, scale)) = parse_decimal_text(text) else {
                if text.trim().is_empty() {
                    // A blank application id means "none", as NULL does.
                    out.put_i32(-1);
                    return Ok(());
                }
                return Err(format!("value {} is not a decimal number; fix the source value or use a text column", shorten(text)));
            };
            if matches!(plan.conversion, Conversion::TextToInt) {
                let p = pow10(scale);
                if unscaled % p != 0 {
                    return Err(format!("value {} has a fractional part and cannot go into an integer column; use numeric", shorten(text)));
                }
                let value = unscaled / p;
                return put_int(target.pg_type, value, out)
                    .map_err(|range| format!("value {value} is outside the range of {} ({range}); use a wider integer type or numeric", target.type_name));
            }
            let (digits, digits_scale, display_scale) = fit_numeric(target, unscaled, scale, || shorten(text))?;
            put_numeric(out, digits, digits_scale, display_scale);
            Ok(())
        }
        (Conversion::JsonToText, Values::Text(t)) => {
            scratch.clear();
            minify_json(t.value(row).as_bytes(), scratch);
            put_text(target, scratch, out)
        }
        (Conversion::Json | Conversion::MinifiedJson, Values::Text(t)) => {
            let s = if matches!(plan.conversion, Conversion::MinifiedJson) {
                scratch.clear();
                minify_json(t.value(row).as_bytes(), scratch);
                &scratch[..]
            } else {
                t.value(row).as_bytes()
            };
            if s.contains(&0) {
                return Err(format!(
                    "value {} contains a NUL character, which PostgreSQL {} cannot store; {NUL_REMEDY}",
                    shorten(&String::from_utf8_lossy(s).replace('\0', "\\0")),
                    target.type_name
                ));
            }
            if matches!(plan.conversion, Conversion::Json) {
                // TEXT: PostgreSQL would refuse invalid JSON at the end of the COPY,
                // naming neither the row, the key nor the value.
                if let Some(problem) = invalid_json(s) {
                    return Err(format!(
                        "value {} is not valid JSON ({problem}), which {} refuses; fix the value in Snowflake, copy the column into text, \
                         or leave the row out with the table's source_filter",
                        shorten(&String::from_utf8_lossy(s)),
                        target.type_name
                    ));
                }
            }
            if target.pg_type == PgType::Jsonb && has_nul_escape(s) {
                return Err(format!(
                    "value {} holds the JSON escape \\u0000 (a NUL character), which jsonb cannot store; copy the column into json or text \
                     (which keep the escape), or {NUL_REMEDY}",
                    shorten(&String::from_utf8_lossy(s))
                ));
            }
            if target.pg_type == PgType::Jsonb {
                out.put_i32(len_i32(s.len() + 1)?);
                out.put_u8(1);
            } else {
                out.put_i32(len_i32(s.len())?);
            }
            out.put_slice(s);
            Ok(())
        }
        (Conversion::Bytea, Values::Binary(b)) => {
            let bytes = b.value(row);
            out.put_i32(len_i32(bytes.len())?);
            out.put_slice(bytes);
            Ok(())
        }
        (Conversion::Bool, Values::Boolean(b)) => {
            out.put_i32(1);
            out.put_u8(u8::from(b.value(row)));
            Ok(())
        }
        (Conversion::DateToDate, Values::Date(d)) => put_date(out, i64::from(d[row])),
        (Conversion::DateToTimestamp, Values::Date(d)) => put_timestamp(out, i64::from(d[row]) * MICROS_PER_DAY),
        (Conversion::TimeToTime, Values::Time { .. }) => {
            let micros = view.time_micros(row).filter(|m| (0..=MICROS_PER_DAY).contains(m)).ok_or_else(|| "time of day out of range".to_string())?;
            out.put_i32(8);
            out.put_i64(micros);
            Ok(())
        }
        (Conversion::TimestampToTimestamp | Conversion::TimestampToTimestamptz | Conversion::TimestampToDate, Values::Timestamp { .. }) => {
            let ts = view.timestamp(row).ok_or_else(|| "timestamp out of range (more than ±292,000 years)".to_string())?;
            match plan.conversion {
                Conversion::TimestampToTimestamp => {
                    if ts.offset_minutes != 0 {
                        scratch.clear();
                        render_text(view, view.values, row, scratch)?;
                        return Err(format!(
                            "value {} carries a UTC offset that timestamp (without time zone) would drop, so the instant would be lost; use timestamptz, or store the value at offset +00:00 in Snowflake",
                            String::from_utf8_lossy(scratch)
                        ));
                    }
                    put_timestamp(out, ts.wall_micros())
                }
                Conversion::TimestampToTimestamptz => put_timestamp(out, ts.micros),
                _ => {
                    let wall = ts.wall_micros();
                    if wall.rem_euclid(MICROS_PER_DAY) != 0 && !plan.drop_time_of_day {
                        scratch.clear();
                        render_text(view, view.values, row, scratch)?;
                        return Err(format!(
                            "value {} has a time of day that a date column would drop; use timestamp or timestamptz, or list the column in the table's truncate_to_date if only the day matters",
                            String::from_utf8_lossy(scratch)
                        ));
                    }
                    put_date(out, wall.div_euclid(MICROS_PER_DAY))
                }
            }
        }
        (Conversion::Render, values) => {
            scratch.clear();
            render_text(view, values, row, scratch)?;
            put_text(target, scratch, out)
        }
        (conversion, values) => Err(format!("internal: conversion {conversion:?} does not apply to {values:?}")),
    }
}

fn len_i32(len: usize) -> Result<i32, Problem> {
    i32::try_from(len).map_err(|_| format!("value of {len} bytes exceeds PostgreSQL's 1 GB field limit"))
}

/// What to do about a NUL character PostgreSQL cannot store. thaw runs no
/// custom source query, so the fix is in Snowflake or in the configuration
/// (the advice used to be "strip it in the source query or copy into
/// bytea", and TEXT → bytea is a refused pair).
const NUL_REMEDY: &str = "remove it in Snowflake (e.g. UPDATE … SET col = REPLACE(col, CHR(0), '')), leave the row out with the table's \
     source_filter, or stop copying the column with exclude_columns (a BINARY column can go into bytea)";

/// Why the text `json` is not one JSON value, as PostgreSQL's json and
/// jsonb input would refuse it; `None` when it is (or when only `serde_json`
/// is stricter than PostgreSQL: numbers beyond a double's range, nesting
/// deeper than 128 levels, lone UTF-16 surrogate escapes; those are left to
/// PostgreSQL).
fn invalid_json(json: &[u8]) -> Option<String> {
    let error = serde_json::from_slice::<serde::de::IgnoredAny>(json).err()?;
    let text = error.to_string();
    let stricter = ["number out of range", "recursion limit exceeded", "lone leading surrogate", "unexpected end of hex escape", "invalid unicode code point"];
    (!stricter.iter().any(|s| text.starts_with(s))).then_some(text)
}

/// Whether the JSON text `json` holds the escape `\u0000` (a backslash
/// that is not itself escaped, then `u0000`): jsonb refuses it (SQLSTATE
/// 22P05, "unsupported Unicode escape sequence"), json keeps it as text.
fn has_nul_escape(json: &[u8]) -> bool {
    json.windows(5).enumerate().any(|(i, w)| {
        w == b"u0000" && json[..i].iter().rev().take_while(|&&b| b == b'\\').count() % 2 == 1
    })
}

/// Check `varchar(n)`/`char(n)` length (in characters) and NUL bytes, then write.
#[inline]
fn put_text(target: &TargetColumn, bytes: &[u8], out: &mut BytesMut) -> Result<(), Problem> {
    if let Some(max) = target.char_max_length {
        let max = max.max(0) as usize;
        // A string of at most `max` bytes has at most `max` characters.
        if bytes.len() > max {
            let s = std::str::from_utf8(bytes).unwrap_or("");
            let chars = s.chars().count();
            if chars > max {
                return Err(format!(
                    "value {} has {chars} characters but the column is {}({max}); widen the column, or shorten the value in Snowflake",
                    shorten(s),
                    target.type_name
                ));
            }
        }
    }
    if bytes.contains(&0) {
        return Err(format!(
            "value {} contains a NUL character, which PostgreSQL text cannot store; {NUL_REMEDY}",
            shorten(&String::from_utf8_lossy(bytes).replace('\0', "\\0"))
        ));
    }
    out.put_i32(len_i32(bytes.len())?);
    out.put_slice(bytes);
    Ok(())
}

fn put_int(pg_type: PgType, value: i128, out: &mut BytesMut) -> Result<(), &'static str> {
    match pg_type {
        PgType::Int2 => {
            let v = i16::try_from(value).map_err(|_| "-32768..32767")?;
            out.put_i32(2);
            out.put_i16(v);
        }
        PgType::Int4 => {
            let v = i32::try_from(value).map_err(|_| "-2147483648..2147483647")?;
            out.put_i32(4);
            out.put_i32(v);
        }
        _ => {
            let v = i64::try_from(value).map_err(|_| "-9223372036854775808..9223372036854775807")?;
            out.put_i32(8);
            out.put_i64(v);
        }
    }
    Ok(())
}

/// The shortest decimal text of `v` as PostgreSQL would store it (`float4`
/// rounds to single precision first).
fn float_text(pg_type: PgType, v: f64) -> String {
    if pg_type == PgType::Float4 {
        (v as f32).to_string()
    } else {
        v.to_string()
    }
}

/// Whether the float stored for the decimal `unscaled / 10^scale` reads back
/// as the same decimal (its shortest text form equals the source value).
fn float_is_exact(pg_type: PgType, v: f64, unscaled: i128, scale: u32) -> bool {
    if !v.is_finite() {
        return false;
    }
    let Some((u, s)) = parse_decimal_text(&float_text(pg_type, v)) else { return false };
    let common = s.max(scale);
    match (rescale(u, s, common), rescale(unscaled, scale, common)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

fn put_float(pg_type: PgType, v: f64, out: &mut BytesMut) -> Result<(), &'static str> {
    if pg_type == PgType::Float4 {
        let f = v as f32;
        if f.is_infinite() && v.is_finite() {
            return Err("outside the range of real");
        }
        out.put_i32(4);
        out.put_f32(f);
    } else {
        out.put_i32(8);
        out.put_f64(v);
    }
    Ok(())
}

fn put_date(out: &mut BytesMut, days_since_unix_epoch: i64) -> Result<(), Problem> {
    let days = i32::try_from(days_since_unix_epoch - PG_EPOCH_DAYS).map_err(|_| "date out of range".to_string())?;
    out.put_i32(4);
    out.put_i32(days);
    Ok(())
}

fn put_timestamp(out: &mut BytesMut, micros_since_unix_epoch: i64) -> Result<(), Problem> {
    let micros = micros_since_unix_epoch.checked_sub(PG_EPOCH_MICROS).ok_or_else(|| "timestamp out of range".to_string())?;
    out.put_i32(8);
    out.put_i64(micros);
    Ok(())
}

/// `unscaled / 10^from` re-expressed with `to` decimals; `None` when digits
/// would be lost or the result overflows.
fn rescale(unscaled: i128, from: u32, to: u32) -> Option<i128> {
    use std::cmp::Ordering;
    match to.cmp(&from) {
        Ordering::Equal => Some(unscaled),
        Ordering::Greater => unscaled.checked_mul(*POW10.get((to - from) as usize)?),
        Ordering::Less => {
            let p = *POW10.get((from - to) as usize)?;
            (unscaled % p == 0).then(|| unscaled / p)
        }
    }
}

const POW10: [i128; 39] = {
    let mut t = [0i128; 39];
    let mut i = 0;
    while i < 39 {
        t[i] = pow10(i as u32);
        i += 1;
    }
    t
};

fn check_precision(target: &TargetColumn, unscaled: i128, scale: u32, shown: impl FnOnce() -> String) -> Result<(), Problem> {
    if let Some(p) = target.numeric_precision {
        let p = p.max(0) as usize;
        if p < POW10.len() && unscaled.unsigned_abs() >= POW10[p].unsigned_abs() {
            return Err(format!(
                "value {} does not fit numeric({p}, {scale}) (at most {} digits before the point); widen the column",
                shown(),
                p.saturating_sub(scale as usize)
            ));
        }
    }
    Ok(())
}

/// `unscaled / 10^scale` fitted to the target `numeric(p, s)`: returns
/// `(digits, digits_scale, display_scale)` for [`put_numeric`], the value
/// being `digits / 10^digits_scale` shown with `display_scale` (= `s`, or
/// `scale` when the column has no declared scale) decimals.
///
/// Fewer target decimals: the value is re-expressed at `s` when no digit is
/// lost, else an error. More target decimals: the digits stay as they are
/// and only the display scale grows, so a 38-digit NUMBER fits a wider
/// `numeric` even where `unscaled × 10^(s − scale)` would not fit an `i128`.
/// Errors: digits lost, or more digits before the point than `p − s`.
fn fit_numeric(target: &TargetColumn, unscaled: i128, scale: u32, shown: impl FnOnce() -> String) -> Result<(i128, u32, u32), Problem> {
    let target_scale = target.numeric_scale.map_or(scale, |s| s.max(0) as u32);
    if target_scale < scale {
        let Some(rescaled) = rescale(unscaled, scale, target_scale) else {
            return Err(format!(
                "value {} has more decimal places than numeric({}, {target_scale}) keeps; widen the target scale, or round the value in Snowflake",
                shown(),
                target.numeric_precision.unwrap_or(0)
            ));
        };
        check_precision(target, rescaled, target_scale, shown)?;
        return Ok((rescaled, target_scale, target_scale));
    }
    match rescale(unscaled, scale, target_scale) {
        Some(rescaled) => check_precision(target, rescaled, target_scale, shown)?,
        None => {
            // More than 38 digits at the target scale: compare the digits
            // before the point with what the column keeps.
            if let Some(p) = target.numeric_precision {
                let integer_digits_allowed = (p.max(0) as u32).saturating_sub(target_scale) as usize;
                let integer_part = unscaled.unsigned_abs() / POW10[scale.min(38) as usize].unsigned_abs();
                if integer_digits_allowed < POW10.len() && integer_part >= POW10[integer_digits_allowed].unsigned_abs() {
                    return Err(format!(
                        "value {} does not fit numeric({p}, {target_scale}) (at most {integer_digits_allowed} digits before the point); widen the column",
                        shown()
                    ));
                }
            }
        }
    }
    Ok((unscaled, scale, target_scale))
}

/// Write `unscaled / 10^scale` in PostgreSQL's binary numeric format:
/// i16 ndigits, i16 weight, u16 sign, u16 dscale (= `display_scale`, at
/// least `scale`), then base-10000 digits.
fn put_numeric(out: &mut BytesMut, unscaled: i128, scale: u32, display_scale: u32) {
    let negative = unscaled < 0;
    let magnitude = unscaled.unsigned_abs();
    let p = POW10[scale.min(38) as usize].unsigned_abs();
    let mut int_part = magnitude / p;
    let mut frac = magnitude % p;
    // Base-10000 groups: integer part (little-endian while collecting).
    let mut int_groups = [0u16; 12];
    let mut n_int = 0;
    while int_part > 0 {
        int_groups[n_int] = (int_part % 10_000) as u16;
        int_part /= 10_000;
        n_int += 1;
    }
    // Fractional groups: the last one is padded on the right with zeros.
    let n_frac = scale.div_ceil(4) as usize;
    let mut frac_groups = [0u16; 12];
    if n_frac > 0 {
        let last_digits = scale - 4 * (n_frac as u32 - 1);
        let last_p = 10u128.pow(last_digits);
        frac_groups[n_frac - 1] = ((frac % last_p) * 10u128.pow(4 - last_digits)) as u16;
        frac /= last_p;
        for i in (0..n_frac - 1).rev() {
            frac_groups[i] = (frac % 10_000) as u16;
            frac /= 10_000;
        }
    }
    // Assemble big-endian, then trim zero groups at both ends.
    let mut digits = [0u16; 24];
    let mut n = 0;
    for i in (0..n_int).rev() {
        digits[n] = int_groups[i];
        n += 1;
    }
    digits[n..n + n_frac].copy_from_slice(&frac_groups[..n_frac]);
    n += n_frac;
    let mut weight = n_int as i16 - 1;
    let mut first = 0;
    while first < n && digits[first] == 0 {
        first += 1;
        weight -= 1;
    }
    let mut last = n;
    while last > first && digits[last - 1] == 0 {
        last -= 1;
    }
    let ndigits = last - first;
    if ndigits == 0 {
        weight = 0;
    }
    out.put_i32(8 + 2 * ndigits as i32);
    out.put_i16(ndigits as i16);
    out.put_i16(weight);
    out.put_u16(if negative && ndigits > 0 { 0x4000 } else { 0 });
    out.put_u16(display_scale.max(scale) as u16);
    for d in &digits[first..last] {
        out.put_u16(*d);
    }
}

/// `x` at `scale` decimals as an unscaled integer, rounding the exact binary
/// value half away from zero. `None` when the result has more than 38 digits.
fn round_float(x: f64, scale: u32, scratch: &mut Vec<u8>) -> Option<i128> {
    // Print 20 digits beyond the rounding position: Rust prints the exact
    // binary expansion up to there, so the digit after `scale` decides.
    scratch.clear();
    write!(scratch, "{:.*}", scale as usize + 20, x.abs()).expect("Vec write");
    let dot = scratch.iter().position(|&b| b == b'.')?;
    let mut value: i128 = 0;
    for &digit in scratch[..dot].iter().chain(&scratch[dot + 1..dot + 1 + scale as usize]) {
        value = value.checked_mul(10)?.checked_add(i128::from(digit - b'0'))?;
    }
    if scratch[dot + 1 + scale as usize] >= b'5' {
        value += 1;
    }
    (value < POW10[38]).then_some(if x < 0.0 { -value } else { value })
}

/// Parse trimmed decimal text (`-12`, `+3.50`, `007`) into (unscaled, scale).
/// `None` for anything else (blank, exponents, letters, more than 38 digits).
pub(crate) fn parse_decimal_text(text: &str) -> Option<(i128, u32)> {
    let t = text.trim();
    let (negative, digits) = match t.as_bytes().first()? {
        b'-' => (true, &t[1..]),
        b'+' => (false, &t[1..]),
        _ => (false, t),
    };
    let (int_part, frac_part) = digits.split_once('.').unwrap_or((digits, ""));
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    if !int_part.bytes().chain(frac_part.bytes()).all(|b| b.is_ascii_digit()) || int_part.len() + frac_part.len() > 38 {
        return None;
    }
    let mut value: i128 = 0;
    for b in int_part.bytes().chain(frac_part.bytes()) {
        value = value * 10 + i128::from(b - b'0');
    }
    Some((if negative { -value } else { value }, frac_part.len() as u32))
}

/// Copy JSON text without the whitespace outside string literals.
pub(crate) fn minify_json(json: &[u8], out: &mut Vec<u8>) {
    let mut in_string = false;
    let mut escaped = false;
    for &b in json {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if b == b'"' {
            in_string = true;
        } else if matches!(b, b' ' | b'\n' | b'\r' | b'\t') {
            continue;
        }
        out.push(b);
    }
}

/// `unscaled / 10^scale` as plain decimal text with exactly `scale` decimals.
pub(crate) fn write_decimal(out: &mut Vec<u8>, unscaled: i128, scale: u32) {
    let magnitude = unscaled.unsigned_abs();
    if unscaled < 0 {
        out.push(b'-');
    }
    if scale == 0 {
        write!(out, "{magnitude}").expect("Vec write");
        return;
    }
    let p = 10u128.pow(scale.min(38));
    write!(out, "{}.{:0width$}", magnitude / p, magnitude % p, width = scale as usize).expect("Vec write");
}

fn decimal_string(unscaled: i128, scale: u32) -> String {
    let mut v = Vec::new();
    write_decimal(&mut v, unscaled, scale);
    String::from_utf8(v).unwrap_or_default()
}

/// Render a non-text value as canonical text into `out` (see module docs).
pub(crate) fn render_text(view: &ColumnView<'_>, values: Values<'_>, row: usize, out: &mut Vec<u8>) -> Result<(), Problem> {
    match values {
        Values::Number { unscaled, scale } => write_decimal(out, unscaled.get(row), scale),
        Values::Float64(v) => write!(out, "{}", v[row]).expect("Vec write"),
        Values::Float32(v) => write!(out, "{}", v[row]).expect("Vec write"),
        Values::Boolean(b) => out.extend_from_slice(if b.value(row) { b"true" } else { b"false" }),
        Values::Date(d) => write_date(out, i64::from(d[row]))?,
        Values::Time { .. } => {
            let micros = view.time_micros(row).ok_or_else(|| "time of day out of range".to_string())?;
            write_time(out, micros);
        }
        Values::Timestamp { .. } => {
            let ts = view.timestamp(row).ok_or_else(|| "timestamp out of range".to_string())?;
            let wall = ts.wall_micros();
            write_date(out, wall.div_euclid(MICROS_PER_DAY))?;
            out.push(b' ');
            write_time(out, wall.rem_euclid(MICROS_PER_DAY));
            if view.kind != ColumnKind::Timestamp {
                let sign = if ts.offset_minutes < 0 { '-' } else { '+' };
                let m = ts.offset_minutes.unsigned_abs();
                write!(out, "{sign}{:02}:{:02}", m / 60, m % 60).expect("Vec write");
            }
        }
        Values::Text(_) | Values::Binary(_) => return Err("internal: text values are not rendered".into()),
    }
    Ok(())
}

fn write_date(out: &mut Vec<u8>, days_since_unix_epoch: i64) -> Result<(), Problem> {
    use chrono::Datelike as _;
    let date = i32::try_from(days_since_unix_epoch + 719_163)
        .ok()
        .and_then(chrono::NaiveDate::from_num_days_from_ce_opt)
        .filter(|d| (1..=9999).contains(&d.year()))
        .ok_or_else(|| format!("date {days_since_unix_epoch} days from 1970-01-01 is outside years 1..9999 and has no text form"))?;
    write!(out, "{:04}-{:02}-{:02}", date.year(), date.month(), date.day()).expect("Vec write");
    Ok(())
}

fn write_time(out: &mut Vec<u8>, micros_since_midnight: i64) {
    let secs = micros_since_midnight / 1_000_000;
    let frac = micros_since_midnight % 1_000_000;
    write!(out, "{:02}:{:02}:{:02}.{frac:06}", secs / 3600, secs / 60 % 60, secs % 60).expect("Vec write");
}

#[cfg(test)]
mod text_number_tests {
    use super::parse_decimal_text;

    #[test]
    fn numeric_text_parses_with_sign_scale_and_padding() {
        assert_eq!(parse_decimal_text(" 0042 "), Some((42, 0)));
        assert_eq!(parse_decimal_text("-12.500"), Some((-12500, 3)));
        assert_eq!(parse_decimal_text("+7."), Some((7, 0)));
        assert_eq!(parse_decimal_text(""), None);
        assert_eq!(parse_decimal_text("1e5"), None);
        assert_eq!(parse_decimal_text("12a"), None);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{Decimal128Array, Float64Array, Int64Array, StringArray, TimestampMicrosecondArray};
    use arrow_schema::{DataType, Field, TimeUnit};

    use super::*;

    /// A standard Arrow field (no source metadata).
    fn plain(name: &str, data_type: DataType) -> Field {
        Field::new(name, data_type, true)
    }

    fn decimals(values: Vec<i128>, precision: u8, scale: i8) -> ArrayRef {
        Arc::new(Decimal128Array::from(values).with_precision_and_scale(precision, scale).unwrap())
    }

    fn micros(values: Vec<i64>) -> ArrayRef {
        Arc::new(TimestampMicrosecondArray::from(values))
    }

    fn target(name: &str, pg_type: PgType, type_name: &str) -> TargetColumn {
        TargetColumn::plain(name, pg_type, type_name)
    }

    fn encode_one(target: TargetColumn, field: Field, array: ArrayRef) -> Result<Vec<u8>> {
        let mut encoder = CopyEncoder::new(vec![(target, Arc::new(field))])?;
        let mut out = BytesMut::new();
        encoder.encode_batch(&[array], &mut out)?;
        Ok(out.to_vec())
    }

    /// jsonb cannot store the escape `\u0000` (PostgreSQL fails the COPY with
    /// 22P05, naming neither row nor key) nor json a raw NUL: both are value
    /// errors naming the value; an escaped backslash before `u0000` is plain
    /// text, and json keeps the escape.
    #[test]
    fn nul_escapes_in_json_are_refused_for_jsonb_and_kept_for_json() {
        let json_field = || {
            plain("doc", DataType::Utf8).with_metadata(std::collections::HashMap::from([(
                super::super::values::EXTENSION_NAME_KEY.to_string(),
                super::super::values::JSON_EXTENSION.to_string(),
            )]))
        };
        let docs = |v: &str| -> ArrayRef { Arc::new(StringArray::from(vec![v])) };
        let err = encode_one(target("doc", PgType::Jsonb, "jsonb"), json_field(), docs(r#"{"a": "x\u0000y"}"#)).unwrap_err();
        assert_eq!(err.kind, ErrorKind::ChunkFailed);
        assert!(err.message.contains(r#"value '{"a":"x\u0000y"}' holds the JSON escape \u0000"#), "{err}");
        assert!(err.message.contains("exclude_columns") && !err.message.contains("source query"), "{err}");
        // Text sources into jsonb are checked the same way, and a raw NUL into json too.
        let err = encode_one(target("doc", PgType::Jsonb, "jsonb"), plain("doc", DataType::Utf8), docs(r#"["\u0000"]"#)).unwrap_err();
        assert!(err.message.contains("holds the JSON escape"), "{err}");
        let err = encode_one(target("doc", PgType::Json, "json"), plain("doc", DataType::Utf8), docs("[\"a\u{0}\"]")).unwrap_err();
        assert!(err.message.contains("contains a NUL character, which PostgreSQL json cannot store"), "{err}");
        // Not a NUL: an escaped backslash followed by the letters u0000; and json keeps the escape.
        for (pg_type, name, doc) in [(PgType::Jsonb, "jsonb", r#"["\\u0000", "\\\\u0000"]"#), (PgType::Json, "json", r#"["\u0000"]"#)] {
            encode_one(target("doc", pg_type, name), json_field(), docs(doc)).unwrap_or_else(|e| panic!("{doc} into {name}: {e}"));
        }
        assert!(has_nul_escape(br#"["\\\u0000"]"#), "an escaped backslash, then the escape");
    }

    /// Text that is not JSON fails in the encoder, naming the value (PostgreSQL
    /// refused it at the end of the COPY naming neither row nor key); JSON
    /// that only serde_json would refuse (a number beyond a double, deep
    /// nesting) still goes to PostgreSQL, which accepts it.
    #[test]
    fn text_that_is_not_json_is_refused_naming_the_value() {
        let docs = |v: &str| -> ArrayRef { Arc::new(StringArray::from(vec![v])) };
        for (doc, fragment) in [(r#"{"a": }"#, "value '{\"a\": }' is not valid JSON (expected value"), ("", "is not valid JSON (EOF"), ("[1] 2", "trailing characters")] {
            let err = encode_one(target("doc", PgType::Jsonb, "jsonb"), plain("doc", DataType::Utf8), docs(doc)).unwrap_err();
            assert_eq!(err.kind, ErrorKind::ChunkFailed);
            assert!(err.message.contains(fragment) && err.message.contains("jsonb refuses"), "{doc:?}: {err}");
        }
        let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        for doc in ["[1e400]", deep.as_str(), r#"{"a": [1, 2.5, null, true, "x"]}"#] {
            for (pg_type, name) in [(PgType::Jsonb, "jsonb"), (PgType::Json, "json")] {
                encode_one(target("doc", pg_type, name), plain("doc", DataType::Utf8), docs(doc)).unwrap_or_else(|e| panic!("{doc} into {name}: {e}"));
            }
        }
    }

    fn numeric_bytes(unscaled: i128, scale: u32) -> Vec<u8> {
        let mut out = BytesMut::new();
        put_numeric(&mut out, unscaled, scale, scale);
        out.to_vec()
    }

    #[test]
    fn numeric_uses_base_10000_groups_with_weight_and_display_scale() {
        // 12345.678 at scale 3: digits [1, 2345, 6780], weight 1, dscale 3.
        assert_eq!(numeric_bytes(12_345_678, 3), [0, 0, 0, 14, 0, 3, 0, 1, 0, 0, 0, 3, 0, 1, 0x09, 0x29, 0x1A, 0x7C]);
        // -0.0005 at scale 4: one digit [5], weight -1, negative.
        assert_eq!(numeric_bytes(-5, 4), [0, 0, 0, 10, 0, 1, 0xFF, 0xFF, 0x40, 0, 0, 4, 0, 5]);
        // Zero keeps its display scale and has no digits.
        assert_eq!(numeric_bytes(0, 2), [0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 2]);
        // 10^37 at scale 38 (0.1): digit [1000], weight -1.
        assert_eq!(numeric_bytes(10_i128.pow(37), 38), [0, 0, 0, 10, 0, 1, 0xFF, 0xFF, 0, 0, 0, 38, 0x03, 0xE8]);
    }

    #[test]
    fn float_rounds_the_exact_binary_value_half_away_from_zero() {
        let mut scratch = Vec::new();
        assert_eq!(round_float(0.125, 2, &mut scratch), Some(13));
        assert_eq!(round_float(0.145, 2, &mut scratch), Some(14));
        assert_eq!(round_float(-2.5, 0, &mut scratch), Some(-3));
        assert_eq!(round_float(0.1 + 0.2, 6, &mut scratch), Some(300_000));
    }

    #[test]
    fn fractional_number_into_integer_column_names_column_and_value() {
        let field = plain("VISIT_ID", DataType::Decimal128(18, 2));
        let err = encode_one(target("visit_id", PgType::Int8, "int8"), field, decimals(vec![100, 150], 18, 2)).unwrap_err();
        assert_eq!(err.kind, ErrorKind::ChunkFailed);
        assert!(err.message.contains("\"visit_id\"") && err.message.contains("1.50") && err.message.contains("fractional"), "{}", err.message);
    }

    #[test]
    fn integer_overflow_names_the_range() {
        let field = plain("N", DataType::Int64);
        let err = encode_one(target("n", PgType::Int2, "int2"), field, Arc::new(Int64Array::from(vec![40_000]))).unwrap_err();
        assert_eq!(err.kind, ErrorKind::ChunkFailed);
        assert!(err.message.contains("40000") && err.message.contains("-32768..32767"), "{}", err.message);
    }

    #[test]
    fn varchar_length_is_counted_in_characters() {
        let mut t = target("name", PgType::Varchar, "varchar");
        t.char_max_length = Some(5);
        let field = plain("NAME", DataType::Utf8);
        // Five characters in ten bytes fit.
        assert!(encode_one(t.clone(), field.clone(), Arc::new(StringArray::from(vec!["ééééé"]))).is_ok());
        let err = encode_one(t, field, Arc::new(StringArray::from(vec!["éééééé"]))).unwrap_err();
        assert_eq!(err.kind, ErrorKind::ChunkFailed);
        assert!(err.message.contains("6 characters") && err.message.contains("varchar(5)"), "{}", err.message);
    }

    #[test]
    fn uuid_text_parses_in_any_case_with_or_without_hyphens() {
        let field = plain("ID", DataType::Utf8);
        let forms = ["A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11", "a0eebc999c0b4ef8bb6d6bb9bd380a11"];
        for form in forms {
            let bytes = encode_one(target("id", PgType::Uuid, "uuid"), field.clone(), Arc::new(StringArray::from(vec![form]))).unwrap();
            assert_eq!(&bytes[2..6], &[0, 0, 0, 16]);
            assert_eq!(hex::encode(&bytes[6..]), "a0eebc999c0b4ef8bb6d6bb9bd380a11");
        }
        let err = encode_one(target("id", PgType::Uuid, "uuid"), field, Arc::new(StringArray::from(vec!["not-a-uuid"]))).unwrap_err();
        assert_eq!(err.kind, ErrorKind::ChunkFailed);
        assert!(err.message.contains("'not-a-uuid'") && err.message.contains("\"id\""), "{}", err.message);
    }

    #[test]
    fn null_into_not_null_column_fails_the_chunk() {
        let mut t = target("visit_date", PgType::Float8, "float8");
        t.nullable = false;
        let field = plain("V", DataType::Float64);
        let err = encode_one(t, field, Arc::new(Float64Array::from(vec![Some(1.0), None]))).unwrap_err();
        assert_eq!(err.kind, ErrorKind::ChunkFailed);
        assert!(err.message.contains("NOT NULL") && err.message.contains("\"visit_date\"") && err.message.contains("row 1"), "{}", err.message);
    }

    #[test]
    fn time_of_day_into_date_is_refused_unless_listed_in_truncate_to_date() {
        let field = plain("AT", DataType::Timestamp(TimeUnit::Microsecond, None));
        let noon = || micros(vec![(86_400 + 43_200) * 1_000_000]);
        let err = encode_one(target("at", PgType::Date, "date"), field.clone(), noon()).unwrap_err();
        assert_eq!(err.kind, ErrorKind::ChunkFailed);
        assert!(err.message.contains("1970-01-02 12:00:00.000000 has a time of day") && err.message.contains("truncate_to_date"), "{}", err.message);
        let mut encoder = CopyEncoder::new(vec![(target("at", PgType::Date, "date"), Arc::new(field))]).unwrap().with_truncate_to_date(&[0]);
        let mut out = BytesMut::new();
        assert_eq!(encoder.encode_batch(&[noon()], &mut out).unwrap(), 1);
        // 1970-01-02 is day -10956 from 2000-01-01.
        assert_eq!(&out[2..10], &[0, 0, 0, 4, 0xFF, 0xFF, 0xD5, 0x34]);
    }

    #[test]
    fn value_errors_name_table_and_key() {
        let key = plain("ID", DataType::Utf8);
        let at = plain("AT", DataType::Timestamp(TimeUnit::Microsecond, None));
        let mut encoder = CopyEncoder::new(vec![(target("id", PgType::Text, "text"), Arc::new(key)), (target("at", PgType::Date, "date"), Arc::new(at))])
            .unwrap()
            .with_row_identity("\"public\".\"visits\"", vec![0]);
        let columns: Vec<ArrayRef> = vec![Arc::new(StringArray::from(vec!["v-1"])), micros(vec![3_600_000_000])];
        let err = encoder.encode_batch(&columns, &mut BytesMut::new()).unwrap_err();
        assert!(err.message.starts_with("table \"public\".\"visits\", key (\"id\")=('v-1'), column \"at\" (date)"), "{}", err.message);
    }

    #[test]
    fn unsupported_pair_is_rejected_before_any_row() {
        let field = plain("AT", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())))
            .with_metadata([(crate::sink::values::SOURCE_TYPE_KEY.to_string(), "TIMESTAMP_TZ".to_string())].into());
        let err = CopyEncoder::new(vec![(target("at", PgType::Uuid, "uuid"), Arc::new(field))]).unwrap_err();
        assert_eq!(err.kind, ErrorKind::TypeUnsupported);
        assert!(err.message.contains("Snowflake TIMESTAMP_TZ") && err.message.contains("uuid") && err.message.contains("timestamptz"), "{}", err.message);
    }

    #[test]
    fn pretty_variant_text_is_minified_outside_strings() {
        let mut out = Vec::new();
        minify_json(b"{\n  \"a b\": [1, 2],\n  \"c\": \"x \\\" y\"\n}", &mut out);
        assert_eq!(out, b"{\"a b\":[1,2],\"c\":\"x \\\" y\"}");
    }

    #[test]
    fn stream_has_header_rows_and_trailer() {
        let mut out = BytesMut::new();
        CopyEncoder::header(&mut out);
        CopyEncoder::trailer(&mut out);
        assert_eq!(&out[..], b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0\xff\xff");
    }

    /// Rough throughput: `cargo test --release -p thaw-engine --lib encode_throughput -- --ignored --nocapture`.
    #[test]
    #[ignore = "benchmark; run explicitly in release mode"]
    fn encode_throughput_one_million_rows_ten_columns() {
        use arrow_array::{BooleanArray, Date32Array};
        let rows = 1_000_000usize;
        let fields = vec![
            (plain("ID", DataType::Int64), target("id", PgType::Int8, "int8")),
            (plain("AMOUNT", DataType::Decimal128(18, 2)), target("amount", PgType::Numeric, "numeric")),
            (plain("RATE", DataType::Float64), target("rate", PgType::Float8, "float8")),
            (plain("NAME", DataType::Utf8), target("name", PgType::Text, "text")),
            (plain("CODE", DataType::Utf8), target("code", PgType::Varchar, "varchar")),
            (plain("GUID", DataType::Utf8), target("guid", PgType::Uuid, "uuid")),
            (plain("ACTIVE", DataType::Boolean), target("active", PgType::Bool, "bool")),
            (plain("DAY", DataType::Date32), target("day", PgType::Date, "date")),
            (plain("AT", DataType::Timestamp(TimeUnit::Microsecond, None)), target("at", PgType::Timestamp, "timestamp")),
            (plain("AT_TZ", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))), target("at_tz", PgType::Timestamptz, "timestamptz")),
        ];
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from_iter_values(0..rows as i64)),
            Arc::new(Decimal128Array::from_iter_values((0..rows).map(|i| i as i128 * 37 - 500_000)).with_precision_and_scale(18, 2).unwrap()),
            Arc::new(Float64Array::from_iter_values((0..rows).map(|i| i as f64 * 0.25))),
            Arc::new(StringArray::from_iter_values((0..rows).map(|i| format!("caregiver name {i}")))),
            Arc::new(StringArray::from_iter_values((0..rows).map(|i| format!("C{}", i % 1000)))),
            Arc::new(StringArray::from_iter_values((0..rows).map(|i| format!("a0eebc99-9c0b-4ef8-bb6d-{:012x}", i)))),
            Arc::new(BooleanArray::from_iter((0..rows).map(|i| Some(i % 2 == 0)))),
            Arc::new(Date32Array::from_iter_values((0..rows).map(|i| 19_000 + (i % 1000) as i32))),
            Arc::new(TimestampMicrosecondArray::from_iter_values((0..rows).map(|i| 1_700_000_000_000_000 + i as i64 * 1_001))),
            Arc::new(TimestampMicrosecondArray::from_iter_values((0..rows).map(|i| 1_700_000_000_000_000 + i as i64)).with_timezone("UTC")),
        ];
        let pairs = fields.into_iter().map(|(f, t)| (t, Arc::new(f))).collect();
        let mut encoder = CopyEncoder::new(pairs).unwrap();
        let mut out = BytesMut::with_capacity(200 << 20);
        let started = std::time::Instant::now();
        // Encode in 100 K-row slices, as chunks arrive.
        for start in (0..rows).step_by(100_000) {
            let slice: Vec<ArrayRef> = columns.iter().map(|c| c.slice(start, 100_000)).collect();
            encoder.encode_batch(&slice, &mut out).unwrap();
        }
        let secs = started.elapsed().as_secs_f64();
        println!("encoded {rows} rows x 10 columns ({} MiB) in {secs:.3} s = {:.0} rows/s", out.len() >> 20, rows as f64 / secs);
    }
}
