//! The Arrow vocabulary the sink reads (docs/sync.md §5.5): standard Arrow
//! types, classified once per field ([`ColumnKind::of_field`]) and read per
//! batch through typed slices ([`ColumnView`]).
//!
//! Every source hands the sink record batches in these types; the Snowflake
//! source decodes Snowflake's own conventions into them (`source::arrow`),
//! a Parquet reader produces them natively.
//!
//! | kind | Arrow types accepted |
//! | --- | --- |
//! | [`ColumnKind::Number`] | Int8/16/32/64 (scale 0), Decimal128(p,s) |
//! | [`ColumnKind::Float`] | Float64, Float32 |
//! | [`ColumnKind::Text`] | Utf8, LargeUtf8, Utf8View |
//! | [`ColumnKind::Json`] | the same, with extension name `arrow.json` |
//! | [`ColumnKind::Binary`] | Binary, LargeBinary, BinaryView, FixedSizeBinary |
//! | [`ColumnKind::Boolean`] | Boolean |
//! | [`ColumnKind::Date`] | Date32 (days since 1970-01-01) |
//! | [`ColumnKind::Time`] | Time64(µs) (also Time64(ns), Time32(s/ms)) |
//! | [`ColumnKind::Timestamp`] | Timestamp(unit, None): a wall clock |
//! | [`ColumnKind::TimestampUtc`] | Timestamp(unit, Some(zone)): an instant |
//! | [`ColumnKind::TimestampWithOffset`] | Struct{timestamp: Timestamp(unit, "UTC"), offset_minutes: Int16}, extension `arrow.timestamp_with_offset` |
//!
//! The canonical sources use microseconds; other units are accepted and
//! reduced to microseconds by flooring (docs/sync.md §5.2, note 1).

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Decimal128Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, Time32MillisecondType,
    Time32SecondType, Time64MicrosecondType, Time64NanosecondType, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType,
};
use arrow_array::{Array, ArrayRef};
use arrow_buffer::{BooleanBuffer, NullBuffer};
use arrow_schema::{DataType, Field, TimeUnit};

use crate::error::{Error, ErrorKind, Result};

/// Field metadata key naming an Arrow extension type.
pub const EXTENSION_NAME_KEY: &str = "ARROW:extension:name";
/// Arrow's canonical JSON extension (storage: a string type).
pub const JSON_EXTENSION: &str = "arrow.json";
/// Arrow's canonical timestamp-with-offset extension (storage: Struct{timestamp, offset_minutes}).
pub const TIMESTAMP_WITH_OFFSET_EXTENSION: &str = "arrow.timestamp_with_offset";
/// Field metadata key a source may set to name the column's type in its own
/// terms (Snowflake: `logicalType`); used only in messages.
pub const SOURCE_TYPE_KEY: &str = "logicalType";

/// Microseconds per day.
pub const MICROS_PER_DAY: i64 = 86_400_000_000;

/// What a column's values are, whatever their physical Arrow layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ColumnKind {
    /// Exact decimal numbers: integers or Decimal128(p,s).
    Number,
    /// IEEE doubles.
    Float,
    /// UTF-8 text.
    Text,
    /// JSON text (`arrow.json`).
    Json,
    /// Bytes.
    Binary,
    /// Booleans.
    Boolean,
    /// Calendar dates.
    Date,
    /// Times of day.
    Time,
    /// Timestamps without zone (a wall clock).
    Timestamp,
    /// Timestamps with a zone (an instant, shown in UTC).
    TimestampUtc,
    /// Instants with the offset they were written with.
    TimestampWithOffset,
}

impl ColumnKind {
    /// Classify `field` by its Arrow type and extension name.
    ///
    /// Errors: [`ErrorKind::TypeUnsupported`] naming the column and its Arrow type.
    pub fn of_field(field: &Field) -> Result<ColumnKind> {
        let extension = field.metadata().get(EXTENSION_NAME_KEY).map(String::as_str);
        let kind = match field.data_type() {
            DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 | DataType::Decimal128(..) => Some(ColumnKind::Number),
            DataType::Float32 | DataType::Float64 => Some(ColumnKind::Float),
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View if extension == Some(JSON_EXTENSION) => Some(ColumnKind::Json),
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Some(ColumnKind::Text),
            DataType::Binary | DataType::LargeBinary | DataType::BinaryView | DataType::FixedSizeBinary(_) => Some(ColumnKind::Binary),
            DataType::Boolean => Some(ColumnKind::Boolean),
            DataType::Date32 => Some(ColumnKind::Date),
            DataType::Time32(TimeUnit::Second | TimeUnit::Millisecond) | DataType::Time64(TimeUnit::Microsecond | TimeUnit::Nanosecond) => {
                Some(ColumnKind::Time)
            }
            DataType::Timestamp(_, None) => Some(ColumnKind::Timestamp),
            DataType::Timestamp(_, Some(_)) => Some(ColumnKind::TimestampUtc),
            DataType::Struct(fields) if extension == Some(TIMESTAMP_WITH_OFFSET_EXTENSION) => {
                let ok = fields.len() == 2
                    && matches!(fields[0].data_type(), DataType::Timestamp(_, Some(_)))
                    && fields[1].data_type() == &DataType::Int16;
                ok.then_some(ColumnKind::TimestampWithOffset)
            }
            _ => None,
        };
        kind.ok_or_else(|| {
            Error::new(
                ErrorKind::TypeUnsupported,
                format!(
                    "source column \"{}\" arrived as Arrow type {}{}, which thaw cannot copy. Change the column's type in the source, or list it in the table's exclude_columns.",
                    field.name(),
                    field.data_type(),
                    extension.map(|e| format!(" (extension {e})")).unwrap_or_default()
                ),
            )
        })
    }

    /// A short name for messages.
    pub fn name(self) -> &'static str {
        match self {
            ColumnKind::Number => "number",
            ColumnKind::Float => "float",
            ColumnKind::Text => "text",
            ColumnKind::Json => "JSON",
            ColumnKind::Binary => "binary",
            ColumnKind::Boolean => "boolean",
            ColumnKind::Date => "date",
            ColumnKind::Time => "time",
            ColumnKind::Timestamp => "timestamp",
            ColumnKind::TimestampUtc => "timestamp with zone",
            ColumnKind::TimestampWithOffset => "timestamp with offset",
        }
    }

    /// One of the three timestamp kinds.
    pub fn is_timestamp(self) -> bool {
        matches!(self, ColumnKind::Timestamp | ColumnKind::TimestampUtc | ColumnKind::TimestampWithOffset)
    }
}

/// The column's type as messages name it: the source's own name when the
/// field carries one (`Snowflake TIMESTAMP_NTZ`), else its Arrow type.
pub fn type_label(field: &Field) -> String {
    match field.metadata().get(SOURCE_TYPE_KEY) {
        Some(name) => format!("Snowflake {name}"),
        None => format!("Arrow {}", field.data_type()),
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

/// 10^n for n in 0..=38.
pub const fn pow10(n: u32) -> i128 {
    let mut v: i128 = 1;
    let mut i = 0;
    while i < n {
        v *= 10;
        i += 1;
    }
    v
}

/// Digits after the second of a time unit (s 0, ms 3, µs 6, ns 9).
pub fn unit_scale(unit: TimeUnit) -> u32 {
    match unit {
        TimeUnit::Second => 0,
        TimeUnit::Millisecond => 3,
        TimeUnit::Microsecond => 6,
        TimeUnit::Nanosecond => 9,
    }
}

/// A timestamp read from a column: microseconds since 1970-01-01 00:00:00
/// (floored) and the offset it was written with (0 unless
/// [`ColumnKind::TimestampWithOffset`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamp {
    /// Microseconds since the Unix epoch (the instant, or a wall clock read as UTC).
    pub micros: i64,
    /// Offset east of UTC in minutes.
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

/// Signed integers of the width the array uses.
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

    /// The integer at `row` when it fits an i64.
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

    /// Read a plain integer array (Int8..Int64); `None` for other types.
    pub fn of(array: &dyn Array) -> Option<IntValues<'_>> {
        Some(match array.data_type() {
            DataType::Int8 => IntValues::I8(array.as_primitive::<Int8Type>().values()),
            DataType::Int16 => IntValues::I16(array.as_primitive::<Int16Type>().values()),
            DataType::Int32 => IntValues::I32(array.as_primitive::<Int32Type>().values()),
            DataType::Int64 => IntValues::I64(array.as_primitive::<Int64Type>().values()),
            _ => return None,
        })
    }
}

/// The values of one column of one batch, as typed slices.
#[derive(Debug, Clone, Copy)]
pub enum Values<'a> {
    /// Number: `value = unscaled / 10^scale`.
    Number {
        /// Unscaled integers.
        unscaled: IntValues<'a>,
        /// Digits after the decimal point.
        scale: u32,
    },
    /// Float64.
    Float64(&'a [f64]),
    /// Float32.
    Float32(&'a [f32]),
    /// Text and JSON.
    Text(TextValues<'a>),
    /// Bytes.
    Binary(BinaryValues<'a>),
    /// Booleans.
    Boolean(&'a BooleanBuffer),
    /// Days since 1970-01-01.
    Date(&'a [i32]),
    /// `ticks / 10^scale` seconds since midnight.
    Time {
        /// Ticks since midnight.
        ticks: IntValues<'a>,
        /// Fractional-second digits of a tick.
        scale: u32,
    },
    /// `ticks / 10^scale` seconds since the Unix epoch, with per-row offsets
    /// in minutes for [`ColumnKind::TimestampWithOffset`].
    Timestamp {
        /// Ticks since the epoch.
        ticks: &'a [i64],
        /// Fractional-second digits of a tick.
        scale: u32,
        /// Offset east of UTC in minutes, per row.
        offsets: Option<&'a [i16]>,
    },
}

/// One column of one batch: its kind, validity and typed values. Built once
/// per batch per column; reading a value allocates nothing.
#[derive(Debug, Clone, Copy)]
pub struct ColumnView<'a> {
    /// What the values are.
    pub kind: ColumnKind,
    nulls: Option<&'a NullBuffer>,
    /// The typed values (meaningless where the row is NULL).
    pub values: Values<'a>,
}

impl<'a> ColumnView<'a> {
    /// Build a view of `array` (one batch's column) of kind `kind`.
    ///
    /// Errors: [`ErrorKind::TypeUnsupported`] naming `column` when the
    /// array's Arrow type does not belong to `kind` (a source changed a
    /// column's type between batches).
    pub fn new(column: &str, kind: ColumnKind, array: &'a ArrayRef) -> Result<ColumnView<'a>> {
        let unsupported = || {
            Error::new(
                ErrorKind::TypeUnsupported,
                format!("source column \"{column}\" is a {} column but a batch brought Arrow type {}", kind.name(), array.data_type()),
            )
        };
        let dt = array.data_type();
        let mut nulls = array.nulls();
        let values = match (kind, dt) {
            (ColumnKind::Number, DataType::Decimal128(_, s)) => Values::Number {
                unscaled: IntValues::I128(array.as_primitive::<Decimal128Type>().values()),
                scale: u32::try_from(*s).map_err(|_| unsupported())?,
            },
            (ColumnKind::Number, _) => Values::Number { unscaled: IntValues::of(array.as_ref()).ok_or_else(unsupported)?, scale: 0 },
            (ColumnKind::Float, DataType::Float64) => Values::Float64(array.as_primitive::<Float64Type>().values()),
            (ColumnKind::Float, DataType::Float32) => Values::Float32(array.as_primitive::<Float32Type>().values()),
            (ColumnKind::Text | ColumnKind::Json, DataType::Utf8) => Values::Text(TextValues::Small(array.as_string::<i32>())),
            (ColumnKind::Text | ColumnKind::Json, DataType::LargeUtf8) => Values::Text(TextValues::Large(array.as_string::<i64>())),
            (ColumnKind::Text | ColumnKind::Json, DataType::Utf8View) => Values::Text(TextValues::View(array.as_string_view())),
            (ColumnKind::Binary, DataType::Binary) => Values::Binary(BinaryValues::Small(array.as_binary::<i32>())),
            (ColumnKind::Binary, DataType::LargeBinary) => Values::Binary(BinaryValues::Large(array.as_binary::<i64>())),
            (ColumnKind::Binary, DataType::BinaryView) => Values::Binary(BinaryValues::View(array.as_binary_view())),
            (ColumnKind::Binary, DataType::FixedSizeBinary(_)) => Values::Binary(BinaryValues::Fixed(array.as_fixed_size_binary())),
            (ColumnKind::Boolean, DataType::Boolean) => Values::Boolean(array.as_boolean().values()),
            (ColumnKind::Date, DataType::Date32) => Values::Date(array.as_primitive::<Date32Type>().values()),
            (ColumnKind::Time, DataType::Time32(TimeUnit::Second)) => {
                Values::Time { ticks: IntValues::I32(array.as_primitive::<Time32SecondType>().values()), scale: 0 }
            }
            (ColumnKind::Time, DataType::Time32(TimeUnit::Millisecond)) => {
                Values::Time { ticks: IntValues::I32(array.as_primitive::<Time32MillisecondType>().values()), scale: 3 }
            }
            (ColumnKind::Time, DataType::Time64(TimeUnit::Microsecond)) => {
                Values::Time { ticks: IntValues::I64(array.as_primitive::<Time64MicrosecondType>().values()), scale: 6 }
            }
            (ColumnKind::Time, DataType::Time64(TimeUnit::Nanosecond)) => {
                Values::Time { ticks: IntValues::I64(array.as_primitive::<Time64NanosecondType>().values()), scale: 9 }
            }
            (ColumnKind::Timestamp, DataType::Timestamp(unit, None)) | (ColumnKind::TimestampUtc, DataType::Timestamp(unit, Some(_))) => {
                Values::Timestamp { ticks: timestamp_ticks(array, *unit), scale: unit_scale(*unit), offsets: None }
            }
            (ColumnKind::TimestampWithOffset, DataType::Struct(fields)) if fields.len() == 2 => {
                let s = array.as_struct();
                let (instant, offsets) = (s.column(0), s.column(1));
                let DataType::Timestamp(unit, Some(_)) = instant.data_type() else { return Err(unsupported()) };
                if offsets.data_type() != &DataType::Int16 {
                    return Err(unsupported());
                }
                nulls = s.nulls();
                Values::Timestamp {
                    ticks: timestamp_ticks(instant, *unit),
                    scale: unit_scale(*unit),
                    offsets: Some(offsets.as_primitive::<Int16Type>().values()),
                }
            }
            _ => return Err(unsupported()),
        };
        Ok(ColumnView { kind, nulls, values })
    }

    /// Whether the value at `row` is NULL.
    #[inline]
    pub fn is_null(&self, row: usize) -> bool {
        self.nulls.is_some_and(|n| n.is_null(row))
    }

    /// The timestamp at `row` (timestamp views; the caller checks nulls).
    /// `None` when the value overflows 64-bit microseconds.
    #[inline]
    pub fn timestamp(&self, row: usize) -> Option<Timestamp> {
        match self.values {
            Values::Timestamp { ticks, scale, offsets } => {
                Some(Timestamp { micros: scaled_to_micros(ticks[row], scale)?, offset_minutes: offsets.map_or(0, |o| i32::from(o[row])) })
            }
            _ => None,
        }
    }

    /// Microseconds since midnight at `row` (time views; floored).
    #[inline]
    pub fn time_micros(&self, row: usize) -> Option<i64> {
        match self.values {
            Values::Time { ticks, scale } => scaled_to_micros(ticks.get_i64(row)?, scale),
            _ => None,
        }
    }
}

fn timestamp_ticks(array: &ArrayRef, unit: TimeUnit) -> &[i64] {
    match unit {
        TimeUnit::Second => array.as_primitive::<TimestampSecondType>().values(),
        TimeUnit::Millisecond => array.as_primitive::<TimestampMillisecondType>().values(),
        TimeUnit::Microsecond => array.as_primitive::<TimestampMicrosecondType>().values(),
        TimeUnit::Nanosecond => array.as_primitive::<TimestampNanosecondType>().values(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use arrow_array::{Int16Array, StructArray, TimestampMicrosecondArray, TimestampNanosecondArray};

    use super::*;

    #[test]
    fn kinds_follow_the_arrow_type_and_extension_name() {
        let json = Field::new("J", DataType::Utf8, true)
            .with_metadata(HashMap::from([(EXTENSION_NAME_KEY.to_string(), JSON_EXTENSION.to_string())]));
        assert_eq!(ColumnKind::of_field(&json).unwrap(), ColumnKind::Json);
        assert_eq!(ColumnKind::of_field(&Field::new("T", DataType::Utf8, true)).unwrap(), ColumnKind::Text);
        assert_eq!(ColumnKind::of_field(&Field::new("D", DataType::Decimal128(38, 2), true)).unwrap(), ColumnKind::Number);
        let utc = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        assert_eq!(ColumnKind::of_field(&Field::new("A", utc, true)).unwrap(), ColumnKind::TimestampUtc);
        let err = ColumnKind::of_field(&Field::new("L", DataType::new_list(DataType::Int8, true), true)).unwrap_err();
        assert_eq!(err.kind, ErrorKind::TypeUnsupported);
        assert!(err.message.contains("\"L\"") && err.message.contains("List"), "{}", err.message);
    }

    #[test]
    fn timestamp_with_offset_reads_instant_and_offset_and_floors_nanoseconds() {
        let instant: ArrayRef = Arc::new(TimestampMicrosecondArray::from(vec![1_710_093_600_500_000]).with_timezone("UTC"));
        let offsets: ArrayRef = Arc::new(Int16Array::from(vec![330]));
        let fields = vec![
            Arc::new(Field::new("timestamp", instant.data_type().clone(), false)),
            Arc::new(Field::new("offset_minutes", DataType::Int16, false)),
        ];
        let array: ArrayRef = Arc::new(StructArray::new(fields.into(), vec![instant, offsets], None));
        let view = ColumnView::new("AT", ColumnKind::TimestampWithOffset, &array).unwrap();
        let ts = view.timestamp(0).unwrap();
        assert_eq!((ts.micros, ts.offset_minutes), (1_710_093_600_500_000, 330));
        let nanos: ArrayRef = Arc::new(TimestampNanosecondArray::from(vec![-500]));
        let view = ColumnView::new("AT", ColumnKind::Timestamp, &nanos).unwrap();
        assert_eq!(view.timestamp(0).unwrap().micros, -1);
    }
}
