//! Snowflake's Arrow conventions, decoded exactly.
//!
//! Every field of a Snowflake Arrow result carries metadata: `logicalType`
//! (FIXED, REAL, TEXT, BOOLEAN, DATE, TIME, TIMESTAMP_NTZ, TIMESTAMP_LTZ,
//! TIMESTAMP_TZ, BINARY, VARIANT, OBJECT, ARRAY), `scale`, `precision`,
//! `byteLength`, `charLength`. The physical Arrow type of the same column may
//! differ from batch to batch (a NUMBER(38,0) column is Int8 in one batch and
//! Int64 in the next), so thaw reads the logical type once per column
//! ([`SourceType::from_field`]) and builds a [`ColumnView`] per column per
//! batch that branches on the batch's *physical* type. Sources of the rules:
//! the Snowflake connectors (`CArrowChunkIterator.cpp`, `TimeStampConverter`,
//! JDBC `ArrowResultUtil`), fakesnow's `arrow.py`, and docs/emulator.md §1
//! ("How types arrive").
//!
//! | logical type | physical Arrow types accepted |
//! | --- | --- |
//! | FIXED (NUMBER(p,s)) | Int8/16/32/64 holding `value × 10^scale`, or Decimal128(p,s) |
//! | REAL | Float64 (Float32 accepted) |
//! | TEXT, VARIANT, OBJECT, ARRAY | Utf8, LargeUtf8, Utf8View (JSON text for the semi-structured types) |
//! | BINARY | Binary, LargeBinary, BinaryView, FixedSizeBinary |
//! | BOOLEAN | Boolean |
//! | DATE | Date32 (days since 1970-01-01) |
//! | TIME | Int32/Int64 in 10^-scale seconds since midnight (Time32/Time64 accepted) |
//! | TIMESTAMP_NTZ/LTZ | Int64 in 10^-scale seconds since the epoch, or Struct{epoch: Int64 seconds, fraction: Int32 nanoseconds} |
//! | TIMESTAMP_TZ | Struct{epoch: Int64 in 10^-scale s, timezone: Int32} (byteLength 8) or Struct{epoch s, fraction ns, timezone} (byteLength 16); offset minutes = timezone − 1440 |
//!
//! Fields without Snowflake metadata (e.g. Parquet files unloaded to a stage)
//! get a logical type inferred from their Arrow type, and Arrow's native
//! Timestamp/Time types are accepted too.
//!
//! Timestamps are reduced to microseconds (PostgreSQL's precision) by
//! **flooring** (toward negative infinity): `1969-12-31 23:59:59.9999995`
//! becomes `…59.999999`, never `…00.000000`. Reconciliation uses the same rule
//! (`DATEDIFF(microsecond, …)` counts microsecond boundaries, i.e. floors).

use std::fmt;

use arrow_array::cast::AsArray;
use arrow_array::types::{Date32Type, Decimal128Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_buffer::{BooleanBuffer, NullBuffer};
use arrow_schema::{DataType, Field, TimeUnit};

use crate::error::{Error, ErrorKind, Result};

/// Render batches as rows of display strings (NULL → `None`), for small
/// administrative results such as counts and aggregates.
pub fn display_rows(batches: &[RecordBatch]) -> Result<Vec<Vec<Option<String>>>> {
    let mut rows = Vec::new();
    for batch in batches {
        let formatters = batch
            .columns()
            .iter()
            .map(|c| arrow_cast::display::ArrayFormatter::try_new(c.as_ref(), &Default::default()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::internal(format!("cannot render Snowflake result: {e}")))?;
        for r in 0..batch.num_rows() {
            rows.push(
                batch
                    .columns()
                    .iter()
                    .zip(&formatters)
                    .map(|(c, f)| if c.is_null(r) { None } else { Some(f.value(r).to_string()) })
                    .collect(),
            );
        }
    }
    Ok(rows)
}

/// Snowflake's `logicalType` field metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum LogicalType {
    /// `NUMBER(p,s)` (also INT, DECIMAL, …).
    Fixed,
    /// `FLOAT` / `DOUBLE` / `REAL` (always 64-bit in Snowflake).
    Real,
    /// `VARCHAR` / `TEXT` / `STRING` / `CHAR`.
    Text,
    /// `BOOLEAN`.
    Boolean,
    /// `DATE`.
    Date,
    /// `TIME(s)`.
    Time,
    /// `TIMESTAMP_NTZ(s)`: a wall clock without zone.
    TimestampNtz,
    /// `TIMESTAMP_LTZ(s)`: an instant (shown in the session zone).
    TimestampLtz,
    /// `TIMESTAMP_TZ(s)`: an instant plus the offset it was written with.
    TimestampTz,
    /// `BINARY`.
    Binary,
    /// `VARIANT` (JSON text).
    Variant,
    /// `OBJECT` (JSON text).
    Object,
    /// `ARRAY` (JSON text).
    Array,
}

impl LogicalType {
    /// Every logical type, in declaration order.
    pub const ALL: [LogicalType; 13] = [
        LogicalType::Fixed,
        LogicalType::Real,
        LogicalType::Text,
        LogicalType::Boolean,
        LogicalType::Date,
        LogicalType::Time,
        LogicalType::TimestampNtz,
        LogicalType::TimestampLtz,
        LogicalType::TimestampTz,
        LogicalType::Binary,
        LogicalType::Variant,
        LogicalType::Object,
        LogicalType::Array,
    ];

    /// Parse Snowflake's metadata value (case-insensitive).
    pub fn parse(name: &str) -> Option<LogicalType> {
        Some(match name.to_ascii_uppercase().as_str() {
            "FIXED" => LogicalType::Fixed,
            "REAL" => LogicalType::Real,
            "TEXT" => LogicalType::Text,
            "BOOLEAN" => LogicalType::Boolean,
            "DATE" => LogicalType::Date,
            "TIME" => LogicalType::Time,
            "TIMESTAMP_NTZ" => LogicalType::TimestampNtz,
            "TIMESTAMP_LTZ" => LogicalType::TimestampLtz,
            "TIMESTAMP_TZ" => LogicalType::TimestampTz,
            "BINARY" => LogicalType::Binary,
            "VARIANT" => LogicalType::Variant,
            "OBJECT" => LogicalType::Object,
            "ARRAY" => LogicalType::Array,
            _ => return None,
        })
    }

    /// Map an `INFORMATION_SCHEMA.COLUMNS.DATA_TYPE` (or a type name written
    /// in DDL, parameters ignored: `NUMBER(10,2)`, `TIMESTAMP_TZ(9)`) to its
    /// logical type. `TIMESTAMP`/`DATETIME` mean TIMESTAMP_NTZ (Snowflake's
    /// default `TIMESTAMP_TYPE_MAPPING`).
    pub fn from_data_type(data_type: &str) -> Option<LogicalType> {
        let base = data_type.split('(').next().unwrap_or("").trim().to_ascii_uppercase();
        Some(match base.as_str() {
            "NUMBER" | "DECIMAL" | "NUMERIC" | "INT" | "INTEGER" | "BIGINT" | "SMALLINT" | "TINYINT" | "BYTEINT" | "FIXED" => LogicalType::Fixed,
            "FLOAT" | "FLOAT4" | "FLOAT8" | "DOUBLE" | "DOUBLE PRECISION" | "REAL" => LogicalType::Real,
            "TEXT" | "VARCHAR" | "STRING" | "CHAR" | "CHARACTER" | "NCHAR" | "NVARCHAR" | "CHAR VARYING" => LogicalType::Text,
            "TIMESTAMP" | "DATETIME" => LogicalType::TimestampNtz,
            "VARBINARY" => LogicalType::Binary,
            other => return LogicalType::parse(other),
        })
    }

    /// Snowflake's spelling, for messages and SQL.
    pub fn name(self) -> &'static str {
        match self {
            LogicalType::Fixed => "FIXED",
            LogicalType::Real => "REAL",
            LogicalType::Text => "TEXT",
            LogicalType::Boolean => "BOOLEAN",
            LogicalType::Date => "DATE",
            LogicalType::Time => "TIME",
            LogicalType::TimestampNtz => "TIMESTAMP_NTZ",
            LogicalType::TimestampLtz => "TIMESTAMP_LTZ",
            LogicalType::TimestampTz => "TIMESTAMP_TZ",
            LogicalType::Binary => "BINARY",
            LogicalType::Variant => "VARIANT",
            LogicalType::Object => "OBJECT",
            LogicalType::Array => "ARRAY",
        }
    }

    /// VARIANT, OBJECT or ARRAY: values are JSON text.
    pub fn is_semi_structured(self) -> bool {
        matches!(self, LogicalType::Variant | LogicalType::Object | LogicalType::Array)
    }

    /// One of the three TIMESTAMP types.
    pub fn is_timestamp(self) -> bool {
        matches!(self, LogicalType::TimestampNtz | LogicalType::TimestampLtz | LogicalType::TimestampTz)
    }
}

impl fmt::Display for LogicalType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A source column's declared Snowflake type, read once from field metadata.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SourceType {
    /// Column name as Snowflake returned it.
    pub name: String,
    /// The logical type.
    pub logical: LogicalType,
    /// `scale`: decimal digits after the point (FIXED), or fractional-second
    /// digits 0..=9 (TIME, TIMESTAMP_*). 0 when absent.
    pub scale: u32,
    /// `precision` (FIXED), when present.
    pub precision: Option<u32>,
    /// `byteLength` (TIMESTAMP_TZ: 8 = {epoch, timezone}, 16 = {epoch, fraction, timezone}).
    pub byte_length: Option<u32>,
    /// `charLength` (TEXT), when present and non-zero.
    pub char_length: Option<u32>,
}

impl SourceType {
    /// Read the Snowflake type of `field` from its metadata, or infer it from
    /// the Arrow type when the field has no `logicalType` (Parquet, tests).
    ///
    /// Errors: [`ErrorKind::TypeUnsupported`] naming the column when the
    /// `logicalType` is unknown or no logical type can be inferred.
    pub fn from_field(field: &Field) -> Result<SourceType> {
        let md = field.metadata();
        let number = |key: &str| md.get(key).and_then(|v| v.trim().parse::<u32>().ok());
        let logical = match md.get("logicalType") {
            Some(name) => LogicalType::parse(name).ok_or_else(|| {
                Error::new(
                    ErrorKind::TypeUnsupported,
                    format!("source column \"{}\" has Snowflake type {name}, which thaw cannot copy. Leave the column out of the source (a view) or cast it in Snowflake.", field.name()),
                )
            })?,
            None => infer_logical(field.data_type()).ok_or_else(|| {
                Error::new(
                    ErrorKind::TypeUnsupported,
                    format!("source column \"{}\" arrived as Arrow type {} without Snowflake type metadata, and thaw cannot map it. Cast it in the source query.", field.name(), field.data_type()),
                )
            })?,
        };
        let inferred_scale = match field.data_type() {
            DataType::Decimal128(_, s) => (*s).max(0) as u32,
            DataType::Timestamp(unit, _) | DataType::Time64(unit) | DataType::Time32(unit) => unit_scale(*unit),
            _ => 0,
        };
        Ok(SourceType {
            name: field.name().clone(),
            logical,
            scale: number("scale").unwrap_or(inferred_scale),
            precision: number("precision"),
            byte_length: number("byteLength"),
            char_length: number("charLength").filter(|&n| n > 0),
        })
    }
}

fn infer_logical(dt: &DataType) -> Option<LogicalType> {
    Some(match dt {
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 | DataType::Decimal128(..) => LogicalType::Fixed,
        DataType::Float32 | DataType::Float64 => LogicalType::Real,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => LogicalType::Text,
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView | DataType::FixedSizeBinary(_) => LogicalType::Binary,
        DataType::Boolean => LogicalType::Boolean,
        DataType::Date32 => LogicalType::Date,
        DataType::Time32(_) | DataType::Time64(_) => LogicalType::Time,
        DataType::Timestamp(_, None) => LogicalType::TimestampNtz,
        DataType::Timestamp(_, Some(_)) => LogicalType::TimestampLtz,
        _ => return None,
    })
}

fn unit_scale(unit: TimeUnit) -> u32 {
    match unit {
        TimeUnit::Second => 0,
        TimeUnit::Millisecond => 3,
        TimeUnit::Microsecond => 6,
        TimeUnit::Nanosecond => 9,
    }
}

/// 10^n for n in 0..=38.
pub(crate) const fn pow10(n: u32) -> i128 {
    let mut v: i128 = 1;
    let mut i = 0;
    while i < n {
        v *= 10;
        i += 1;
    }
    v
}

/// Microseconds per day.
pub const MICROS_PER_DAY: i64 = 86_400_000_000;

/// A decoded timestamp: microseconds since 1970-01-01 00:00:00 (floored to
/// the microsecond) and, for TIMESTAMP_TZ, the offset it was stored with.
///
/// For TIMESTAMP_NTZ `micros` is the wall clock read as if it were UTC; for
/// LTZ and TZ it is the instant (UTC). The stored-offset wall clock of a TZ
/// value is `micros + offset_minutes × 60 000 000` ([`Timestamp::wall_micros`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamp {
    /// Microseconds since the Unix epoch (UTC instant, or NTZ wall clock).
    pub micros: i64,
    /// Offset east of UTC in minutes (TIMESTAMP_TZ only; 0 otherwise).
    pub offset_minutes: i32,
}

impl Timestamp {
    /// The wall clock in the stored offset, in microseconds since the epoch.
    pub fn wall_micros(self) -> i64 {
        self.micros + i64::from(self.offset_minutes) * 60_000_000
    }
}

/// Typed access to the text of a string column, whatever its Arrow layout.
#[derive(Debug, Clone, Copy)]
pub enum TextValues<'a> {
    /// `Utf8`
    Small(&'a arrow_array::StringArray),
    /// `LargeUtf8`
    Large(&'a arrow_array::LargeStringArray),
    /// `Utf8View`
    View(&'a arrow_array::StringViewArray),
}

impl<'a> TextValues<'a> {
    /// The string at `row` (the caller checks nulls).
    #[inline]
    pub fn value(&self, row: usize) -> &'a str {
        match self {
            TextValues::Small(a) => a.value(row),
            TextValues::Large(a) => a.value(row),
            TextValues::View(a) => a.value(row),
        }
    }
}

/// Typed access to the bytes of a binary column, whatever its Arrow layout.
#[derive(Debug, Clone, Copy)]
pub enum BinaryValues<'a> {
    /// `Binary`
    Small(&'a arrow_array::BinaryArray),
    /// `LargeBinary`
    Large(&'a arrow_array::LargeBinaryArray),
    /// `BinaryView`
    View(&'a arrow_array::BinaryViewArray),
    /// `FixedSizeBinary`
    Fixed(&'a arrow_array::FixedSizeBinaryArray),
}

impl<'a> BinaryValues<'a> {
    /// The bytes at `row` (the caller checks nulls).
    #[inline]
    pub fn value(&self, row: usize) -> &'a [u8] {
        match self {
            BinaryValues::Small(a) => a.value(row),
            BinaryValues::Large(a) => a.value(row),
            BinaryValues::View(a) => a.value(row),
            BinaryValues::Fixed(a) => a.value(row),
        }
    }
}

/// Signed integers of the width this batch happens to use.
#[derive(Debug, Clone, Copy)]
pub enum IntValues<'a> {
    /// Int8
    I8(&'a [i8]),
    /// Int16
    I16(&'a [i16]),
    /// Int32
    I32(&'a [i32]),
    /// Int64
    I64(&'a [i64]),
    /// Decimal128 (unscaled)
    I128(&'a [i128]),
}

impl IntValues<'_> {
    /// The integer at `row`, widened.
    #[inline]
    pub fn get(&self, row: usize) -> i128 {
        match self {
            IntValues::I8(v) => i128::from(v[row]),
            IntValues::I16(v) => i128::from(v[row]),
            IntValues::I32(v) => i128::from(v[row]),
            IntValues::I64(v) => i128::from(v[row]),
            IntValues::I128(v) => v[row],
        }
    }

    /// The integer at `row` when it fits an i64 (all but Decimal128 always do).
    #[inline]
    pub fn get_i64(&self, row: usize) -> Option<i64> {
        match self {
            IntValues::I8(v) => Some(i64::from(v[row])),
            IntValues::I16(v) => Some(i64::from(v[row])),
            IntValues::I32(v) => Some(i64::from(v[row])),
            IntValues::I64(v) => Some(v[row]),
            IntValues::I128(v) => i64::try_from(v[row]).ok(),
        }
    }
}

/// The values of one column of one batch, as typed slices. Built once per
/// batch per column ([`ColumnView::new`]); reading a value allocates nothing.
#[derive(Debug, Clone, Copy)]
pub enum Values<'a> {
    /// FIXED: `value = unscaled / 10^scale`.
    Number {
        /// Unscaled integers.
        unscaled: IntValues<'a>,
        /// Digits after the decimal point.
        scale: u32,
    },
    /// REAL.
    Float64(&'a [f64]),
    /// REAL arriving as Float32 (Parquet).
    Float32(&'a [f32]),
    /// TEXT, VARIANT, OBJECT, ARRAY.
    Text(TextValues<'a>),
    /// BINARY.
    Binary(BinaryValues<'a>),
    /// BOOLEAN.
    Boolean(&'a BooleanBuffer),
    /// DATE: days since 1970-01-01.
    Date(&'a [i32]),
    /// TIME: `ticks / 10^scale` seconds since midnight.
    Time {
        /// Ticks since midnight.
        ticks: IntValues<'a>,
        /// Fractional-second digits of a tick.
        scale: u32,
    },
    /// TIMESTAMP_*: `epoch / 10^epoch_scale` seconds (+ `fraction` ns) since
    /// the Unix epoch; `timezone − 1440` minutes of offset.
    Timestamp {
        /// Epoch in 10^-epoch_scale seconds.
        epoch: &'a [i64],
        /// Digits of `epoch` after the second (0 for struct layouts with a fraction).
        epoch_scale: u32,
        /// Nanoseconds within the second (struct layouts with a fraction).
        fraction: Option<&'a [i32]>,
        /// Snowflake's encoded offset (`minutes + 1440`), TIMESTAMP_TZ only.
        timezone: Option<&'a [i32]>,
    },
}

/// One column of one batch: its declared type, validity and typed values.
#[derive(Debug, Clone, Copy)]
pub struct ColumnView<'a> {
    /// The declared type (from the field metadata).
    pub source: &'a SourceType,
    nulls: Option<&'a NullBuffer>,
    /// The typed values (meaningless where the row is NULL).
    pub values: Values<'a>,
}

impl<'a> ColumnView<'a> {
    /// Build a view of `array` (one batch's column) declared as `source`,
    /// branching on the array's physical type.
    ///
    /// Errors: [`ErrorKind::TypeUnsupported`] naming the column, its logical
    /// type and the Arrow type when the layout is not one Snowflake uses.
    pub fn new(source: &'a SourceType, array: &'a ArrayRef) -> Result<ColumnView<'a>> {
        let unsupported = || {
            Error::new(
                ErrorKind::TypeUnsupported,
                format!(
                    "source column \"{}\" is declared {} (scale {}) but arrived as Arrow type {}, a layout thaw does not know. Report this with the Snowflake column definition; meanwhile cast the column in the source query.",
                    source.name,
                    source.logical,
                    source.scale,
                    array.data_type()
                ),
            )
        };
        let dt = array.data_type();
        let values = match source.logical {
            LogicalType::Fixed => match dt {
                DataType::Decimal128(_, s) => Values::Number {
                    unscaled: IntValues::I128(array.as_primitive::<Decimal128Type>().values()),
                    scale: u32::try_from(*s).map_err(|_| unsupported())?,
                },
                _ => Values::Number { unscaled: int_values(array).ok_or_else(unsupported)?, scale: source.scale },
            },
            LogicalType::Real => match dt {
                DataType::Float64 => Values::Float64(array.as_primitive::<Float64Type>().values()),
                DataType::Float32 => Values::Float32(array.as_primitive::<Float32Type>().values()),
                _ => return Err(unsupported()),
            },
            LogicalType::Text | LogicalType::Variant | LogicalType::Object | LogicalType::Array => match dt {
                DataType::Utf8 => Values::Text(TextValues::Small(array.as_string::<i32>())),
                DataType::LargeUtf8 => Values::Text(TextValues::Large(array.as_string::<i64>())),
                DataType::Utf8View => Values::Text(TextValues::View(array.as_string_view())),
                _ => return Err(unsupported()),
            },
            LogicalType::Binary => match dt {
                DataType::Binary => Values::Binary(BinaryValues::Small(array.as_binary::<i32>())),
                DataType::LargeBinary => Values::Binary(BinaryValues::Large(array.as_binary::<i64>())),
                DataType::BinaryView => Values::Binary(BinaryValues::View(array.as_binary_view())),
                DataType::FixedSizeBinary(_) => Values::Binary(BinaryValues::Fixed(array.as_fixed_size_binary())),
                _ => return Err(unsupported()),
            },
            LogicalType::Boolean => match dt {
                DataType::Boolean => Values::Boolean(array.as_boolean().values()),
                _ => return Err(unsupported()),
            },
            LogicalType::Date => match dt {
                DataType::Date32 => Values::Date(array.as_primitive::<Date32Type>().values()),
                _ => return Err(unsupported()),
            },
            LogicalType::Time => match dt {
                DataType::Int32 | DataType::Int64 => Values::Time { ticks: int_values(array).ok_or_else(unsupported)?, scale: source.scale },
                DataType::Time32(unit) => Values::Time {
                    ticks: IntValues::I32(primitive_i32(array).ok_or_else(unsupported)?),
                    scale: unit_scale(*unit),
                },
                DataType::Time64(unit) => Values::Time {
                    ticks: IntValues::I64(primitive_i64(array).ok_or_else(unsupported)?),
                    scale: unit_scale(*unit),
                },
                _ => return Err(unsupported()),
            },
            LogicalType::TimestampNtz | LogicalType::TimestampLtz | LogicalType::TimestampTz => {
                timestamp_values(source, array).ok_or_else(unsupported)?
            }
        };
        let fractional_digits = match values {
            Values::Time { scale, .. } => scale,
            Values::Timestamp { epoch_scale, .. } => epoch_scale,
            _ => 0,
        };
        if fractional_digits > 9 {
            return Err(unsupported());
        }
        Ok(ColumnView { source, nulls: array.nulls(), values })
    }

    /// Whether the value at `row` is NULL.
    #[inline]
    pub fn is_null(&self, row: usize) -> bool {
        self.nulls.is_some_and(|n| n.is_null(row))
    }

    /// The timestamp at `row` (the view must be a timestamp; the caller
    /// checks nulls). `None` when the value overflows 64-bit microseconds.
    #[inline]
    pub fn timestamp(&self, row: usize) -> Option<Timestamp> {
        match self.values {
            Values::Timestamp { epoch, epoch_scale, fraction, timezone } => {
                let e = epoch[row];
                let micros = match fraction {
                    // epoch in seconds, fraction in nanoseconds.
                    Some(f) => e.checked_mul(1_000_000)?.checked_add(i64::from(f[row]).div_euclid(1000))?,
                    None => scaled_to_micros(e, epoch_scale)?,
                };
                let offset_minutes = timezone.map_or(0, |tz| tz[row] - 1440);
                Some(Timestamp { micros, offset_minutes })
            }
            _ => None,
        }
    }

    /// Microseconds since midnight at `row` (TIME views; floored).
    #[inline]
    pub fn time_micros(&self, row: usize) -> Option<i64> {
        match self.values {
            Values::Time { ticks, scale } => scaled_to_micros(ticks.get_i64(row)?, scale),
            _ => None,
        }
    }
}

/// `value / 10^scale` seconds → microseconds, floored. `None` on overflow.
#[inline]
pub fn scaled_to_micros(value: i64, scale: u32) -> Option<i64> {
    match scale {
        6 => Some(value),
        0..=5 => value.checked_mul(10_i64.pow(6 - scale)),
        7..=9 => Some(value.div_euclid(10_i64.pow(scale - 6))),
        _ => None,
    }
}

fn int_values(array: &ArrayRef) -> Option<IntValues<'_>> {
    Some(match array.data_type() {
        DataType::Int8 => IntValues::I8(array.as_primitive::<Int8Type>().values()),
        DataType::Int16 => IntValues::I16(array.as_primitive::<Int16Type>().values()),
        DataType::Int32 => IntValues::I32(array.as_primitive::<Int32Type>().values()),
        DataType::Int64 => IntValues::I64(array.as_primitive::<Int64Type>().values()),
        _ => return None,
    })
}

fn primitive_i32(array: &ArrayRef) -> Option<&[i32]> {
    match array.data_type() {
        DataType::Time32(TimeUnit::Second) => Some(array.as_primitive::<arrow_array::types::Time32SecondType>().values()),
        DataType::Time32(TimeUnit::Millisecond) => Some(array.as_primitive::<arrow_array::types::Time32MillisecondType>().values()),
        _ => None,
    }
}

fn primitive_i64(array: &ArrayRef) -> Option<&[i64]> {
    match array.data_type() {
        DataType::Time64(TimeUnit::Microsecond) => Some(array.as_primitive::<arrow_array::types::Time64MicrosecondType>().values()),
        DataType::Time64(TimeUnit::Nanosecond) => Some(array.as_primitive::<arrow_array::types::Time64NanosecondType>().values()),
        _ => None,
    }
}

fn timestamp_values<'a>(source: &SourceType, array: &'a ArrayRef) -> Option<Values<'a>> {
    use arrow_array::types::{TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType};
    let tz_kind = source.logical == LogicalType::TimestampTz;
    Some(match array.data_type() {
        DataType::Int64 if !tz_kind => Values::Timestamp {
            epoch: array.as_primitive::<Int64Type>().values(),
            epoch_scale: source.scale,
            fraction: None,
            timezone: None,
        },
        DataType::Timestamp(unit, _) => {
            let epoch: &[i64] = match unit {
                TimeUnit::Second => array.as_primitive::<TimestampSecondType>().values(),
                TimeUnit::Millisecond => array.as_primitive::<TimestampMillisecondType>().values(),
                TimeUnit::Microsecond => array.as_primitive::<TimestampMicrosecondType>().values(),
                TimeUnit::Nanosecond => array.as_primitive::<TimestampNanosecondType>().values(),
            };
            Values::Timestamp { epoch, epoch_scale: unit_scale(*unit), fraction: None, timezone: None }
        }
        DataType::Struct(fields) => {
            let s = array.as_struct();
            let child = |name: &str| fields.iter().position(|f| f.name().eq_ignore_ascii_case(name)).map(|i| s.column(i));
            let epoch_col = child("epoch")?;
            if epoch_col.data_type() != &DataType::Int64 {
                return None;
            }
            let epoch = epoch_col.as_primitive::<Int64Type>().values();
            let fraction = match child("fraction") {
                Some(c) if c.data_type() == &DataType::Int32 => Some(&c.as_primitive::<Int32Type>().values()[..]),
                Some(_) => return None,
                None => None,
            };
            let timezone = match child("timezone") {
                Some(c) if c.data_type() == &DataType::Int32 => Some(&c.as_primitive::<Int32Type>().values()[..]),
                Some(_) => return None,
                None => None,
            };
            if tz_kind != timezone.is_some() || fields.len() != 1 + usize::from(fraction.is_some()) + usize::from(timezone.is_some()) {
                return None;
            }
            // With a fraction the epoch is in whole seconds; without one
            // (TIMESTAMP_TZ byteLength 8) it is scaled by 10^scale.
            let epoch_scale = if fraction.is_some() { 0 } else { source.scale };
            Values::Timestamp { epoch, epoch_scale, fraction, timezone }
        }
        _ => return None,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;

    use arrow_array::{Decimal128Array, Int16Array, Int32Array, Int64Array, Int8Array, StructArray};

    use super::*;

    /// A field carrying Snowflake metadata, as Snowflake sends it.
    pub(crate) fn snowflake_field(name: &str, data_type: DataType, logical: &str, scale: u32, byte_length: Option<u32>) -> Field {
        let mut md = std::collections::HashMap::from([
            ("logicalType".to_string(), logical.to_string()),
            ("scale".to_string(), scale.to_string()),
            ("precision".to_string(), "38".to_string()),
        ]);
        if let Some(b) = byte_length {
            md.insert("byteLength".to_string(), b.to_string());
        }
        Field::new(name, data_type, true).with_metadata(md)
    }

    /// Struct{epoch, [fraction,] [timezone]} as Snowflake encodes TIMESTAMP_*.
    pub(crate) fn timestamp_struct(epoch: Vec<i64>, fraction: Option<Vec<i32>>, timezone: Option<Vec<i32>>) -> ArrayRef {
        let mut fields: Vec<(Arc<Field>, ArrayRef)> = vec![(Arc::new(Field::new("epoch", DataType::Int64, false)), Arc::new(Int64Array::from(epoch)))];
        if let Some(f) = fraction {
            fields.push((Arc::new(Field::new("fraction", DataType::Int32, false)), Arc::new(Int32Array::from(f))));
        }
        if let Some(t) = timezone {
            fields.push((Arc::new(Field::new("timezone", DataType::Int32, false)), Arc::new(Int32Array::from(t))));
        }
        Arc::new(StructArray::from(fields))
    }

    fn numbers(source: &SourceType, array: &ArrayRef) -> Vec<(i128, u32)> {
        let view = ColumnView::new(source, array).unwrap();
        let Values::Number { unscaled, scale } = view.values else { panic!("not a number view: {:?}", view.values) };
        (0..array.len()).map(|r| (unscaled.get(r), scale)).collect()
    }

    fn micros(source: &SourceType, array: &ArrayRef) -> Vec<(i64, i32)> {
        let view = ColumnView::new(source, array).unwrap();
        (0..array.len()).map(|r| view.timestamp(r).map(|t| (t.micros, t.offset_minutes)).unwrap()).collect()
    }

    #[test]
    fn scaled_number_of_every_integer_width_keeps_the_declared_scale() {
        let field = snowflake_field("AMOUNT", DataType::Int8, "FIXED", 2, None);
        let source = SourceType::from_field(&field).unwrap();
        let batches: Vec<ArrayRef> = vec![
            Arc::new(Int8Array::from(vec![-128, 22])),
            Arc::new(Int16Array::from(vec![12_345, -1])),
            Arc::new(Int32Array::from(vec![i32::MAX, 5])),
            Arc::new(Int64Array::from(vec![i64::MIN, 0])),
        ];
        let got: Vec<_> = batches.iter().flat_map(|b| numbers(&source, b)).collect();
        assert_eq!(
            got,
            vec![(-128, 2), (22, 2), (12_345, 2), (-1, 2), (i128::from(i32::MAX), 2), (5, 2), (i128::from(i64::MIN), 2), (0, 2)]
        );
    }

    #[test]
    fn decimal128_number_takes_its_scale_from_the_arrow_type() {
        let field = snowflake_field("RATE", DataType::Decimal128(38, 4), "FIXED", 4, None);
        let source = SourceType::from_field(&field).unwrap();
        let array: ArrayRef = Arc::new(Decimal128Array::from(vec![10_i128.pow(37), -15]).with_precision_and_scale(38, 4).unwrap());
        assert_eq!(numbers(&source, &array), vec![(10_i128.pow(37), 4), (-15, 4)]);
    }

    #[test]
    fn int64_timestamps_at_scales_0_3_6_9_floor_to_microseconds() {
        // 1969-12-31 23:59:59.9999995 at scale 9 floors to ...59.999999.
        for (scale, raw, expected) in [
            (0u32, 1_700_000_000_i64, 1_700_000_000_000_000_i64),
            (3, -1_500, -1_500_000),
            (6, 1_234_567, 1_234_567),
            (9, -500, -1),
            (9, 1_999, 1),
        ] {
            let field = snowflake_field("AT", DataType::Int64, "TIMESTAMP_NTZ", scale, None);
            let source = SourceType::from_field(&field).unwrap();
            let array: ArrayRef = Arc::new(Int64Array::from(vec![raw]));
            assert_eq!(micros(&source, &array), vec![(expected, 0)], "scale {scale}");
        }
    }

    #[test]
    fn two_field_ntz_struct_is_seconds_plus_nanoseconds() {
        let field = snowflake_field("AT", DataType::Null, "TIMESTAMP_LTZ", 9, None);
        let source = SourceType::from_field(&field).unwrap();
        let array = timestamp_struct(vec![-1, 1_700_000_000], Some(vec![123_456_789, 999_999_999]), None);
        assert_eq!(micros(&source, &array), vec![(-876_544, 0), (1_700_000_000_999_999, 0)]);
    }

    #[test]
    fn timestamp_tz_with_two_fields_scales_the_epoch_and_decodes_the_offset() {
        // 2024-03-10 18:00:00.5 UTC written at +05:30 (timezone 1440 + 330), scale 3.
        let field = snowflake_field("AT", DataType::Null, "TIMESTAMP_TZ", 3, Some(8));
        let source = SourceType::from_field(&field).unwrap();
        let array = timestamp_struct(vec![1_710_093_600_500, -1], None, Some(vec![1770, 1440 - 480]));
        let view = ColumnView::new(&source, &array).unwrap();
        let first = view.timestamp(0).unwrap();
        assert_eq!((first.micros, first.offset_minutes), (1_710_093_600_500_000, 330));
        assert_eq!(first.wall_micros(), 1_710_093_600_500_000 + 330 * 60_000_000);
        let second = view.timestamp(1).unwrap();
        assert_eq!((second.micros, second.offset_minutes), (-1_000, -480));
    }

    #[test]
    fn timestamp_tz_with_three_fields_has_seconds_fraction_and_offset() {
        let field = snowflake_field("AT", DataType::Null, "TIMESTAMP_TZ", 9, Some(16));
        let source = SourceType::from_field(&field).unwrap();
        let array = timestamp_struct(vec![1_710_093_600], Some(vec![500_000_999]), Some(vec![1440 - 300]));
        assert_eq!(micros(&source, &array), vec![(1_710_093_600_500_000, -300)]);
    }

    #[test]
    fn time_ticks_follow_the_declared_scale() {
        for (scale, array, expected) in [
            (0u32, Arc::new(Int32Array::from(vec![3_661])) as ArrayRef, 3_661_000_000_i64),
            (3, Arc::new(Int32Array::from(vec![3_661_250])) as ArrayRef, 3_661_250_000),
            (9, Arc::new(Int64Array::from(vec![47_655_123_456_789_i64])) as ArrayRef, 47_655_123_456),
        ] {
            let field = snowflake_field("T", array.data_type().clone(), "TIME", scale, None);
            let source = SourceType::from_field(&field).unwrap();
            let view = ColumnView::new(&source, &array).unwrap();
            assert_eq!(view.time_micros(0), Some(expected), "scale {scale}");
        }
    }

    #[test]
    fn unknown_layout_is_type_unsupported_naming_the_column() {
        let field = snowflake_field("AT", DataType::Utf8, "TIMESTAMP_NTZ", 9, None);
        let source = SourceType::from_field(&field).unwrap();
        let array: ArrayRef = Arc::new(arrow_array::StringArray::from(vec!["x"]));
        let err = ColumnView::new(&source, &array).unwrap_err();
        assert_eq!(err.kind, ErrorKind::TypeUnsupported);
        assert!(err.message.contains("\"AT\"") && err.message.contains("TIMESTAMP_NTZ") && err.message.contains("Utf8"), "{}", err.message);
    }

    #[test]
    fn information_schema_type_names_map_to_logical_types() {
        assert_eq!(LogicalType::from_data_type("NUMBER(10,2)"), Some(LogicalType::Fixed));
        assert_eq!(LogicalType::from_data_type("timestamp_tz"), Some(LogicalType::TimestampTz));
        assert_eq!(LogicalType::from_data_type("TEXT"), Some(LogicalType::Text));
        assert_eq!(LogicalType::from_data_type("GEOGRAPHY"), None);
    }
}
