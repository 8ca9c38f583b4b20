//! Snowflake's Arrow conventions, decoded exactly into standard Arrow
//! ([`SnowflakeDecoder`]; the target types are docs/sync.md §5.5's).
//!
//! Every field of a Snowflake Arrow result carries metadata: `logicalType`
//! (FIXED, REAL, TEXT, BOOLEAN, DATE, TIME, TIMESTAMP_NTZ, TIMESTAMP_LTZ,
//! TIMESTAMP_TZ, BINARY, VARIANT, OBJECT, ARRAY), `scale`, `precision`,
//! `byteLength`, `charLength`. The physical Arrow type of the same column may
//! differ from batch to batch (a NUMBER(38,0) column is Int8 in one batch and
//! Int64 in the next), so thaw reads the logical type once per column
//! ([`SourceType::from_field`]) and decodes every batch's columns, branching
//! on the batch's *physical* type, into one fixed standard type per column
//! ([`SourceType::standard_type`]). Sources of the rules:
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

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Decimal128Type, Int32Type, Int64Type};
use arrow_array::{
    Array, ArrayRef, Decimal128Array, Int16Array, Int64Array, RecordBatch, RecordBatchOptions, StructArray, Time64MicrosecondArray,
    TimestampMicrosecondArray,
};
use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};

use crate::error::{Error, ErrorKind, Result};
use crate::sink::values::{self, pow10, scaled_to_micros, unit_scale, ColumnKind, ColumnView, IntValues, Timestamp, Values};

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
                    format!("source column \"{}\" arrived as Arrow type {} without Snowflake type metadata, and thaw cannot map it. Change the column's type in Snowflake, or list it in the table's exclude_columns.", field.name(), field.data_type()),
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

/// Microseconds per day.
pub use crate::sink::values::MICROS_PER_DAY;

impl SourceType {
    /// The standard Arrow type this column is decoded into (docs/sync.md §5.5):
    /// NUMBER(p≤18, 0) → Int64, other NUMBER → Decimal128(p,s), FLOAT →
    /// Float64, TEXT and the semi-structured types → Utf8, BINARY → Binary,
    /// BOOLEAN → Boolean, DATE → Date32, TIME → Time64(µs), TIMESTAMP_NTZ →
    /// Timestamp(µs), TIMESTAMP_LTZ → Timestamp(µs, "UTC"), TIMESTAMP_TZ →
    /// Struct{timestamp: Timestamp(µs, "UTC"), offset_minutes: Int16}.
    ///
    /// Errors: [`ErrorKind::TypeUnsupported`] for a NUMBER scale above 38.
    pub fn standard_type(&self) -> Result<DataType> {
        let utc = || DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        Ok(match self.logical {
            LogicalType::Fixed => {
                if self.scale > 38 {
                    return Err(Error::new(
                        ErrorKind::TypeUnsupported,
                        format!("source column \"{}\" is NUMBER with scale {}, above Arrow's 38 digits. Change the column's type in Snowflake, or list it in the table's exclude_columns.", self.name, self.scale),
                    ));
                }
                let precision = self.precision.unwrap_or(38).clamp(self.scale.max(1), 38);
                if self.scale == 0 && precision <= 18 {
                    DataType::Int64
                } else {
                    DataType::Decimal128(precision as u8, self.scale as i8)
                }
            }
            LogicalType::Real => DataType::Float64,
            LogicalType::Text | LogicalType::Variant | LogicalType::Object | LogicalType::Array => DataType::Utf8,
            LogicalType::Binary => DataType::Binary,
            LogicalType::Boolean => DataType::Boolean,
            LogicalType::Date => DataType::Date32,
            LogicalType::Time => DataType::Time64(TimeUnit::Microsecond),
            LogicalType::TimestampNtz => DataType::Timestamp(TimeUnit::Microsecond, None),
            LogicalType::TimestampLtz => utc(),
            LogicalType::TimestampTz => DataType::Struct(offset_fields()),
        })
    }

    /// The standard Arrow field: [`SourceType::standard_type`], nullable, the
    /// Snowflake metadata kept (messages name the Snowflake type), plus
    /// `arrow.json` for VARIANT/OBJECT/ARRAY and `arrow.timestamp_with_offset`
    /// for TIMESTAMP_TZ.
    ///
    /// Errors: as [`SourceType::standard_type`].
    pub fn standard_field(&self, metadata: &HashMap<String, String>) -> Result<Field> {
        let mut metadata = metadata.clone();
        metadata.entry(values::SOURCE_TYPE_KEY.to_string()).or_insert_with(|| self.logical.name().to_string());
        if self.logical.is_semi_structured() {
            metadata.insert(values::EXTENSION_NAME_KEY.to_string(), values::JSON_EXTENSION.to_string());
        }
        if self.logical == LogicalType::TimestampTz {
            metadata.insert(values::EXTENSION_NAME_KEY.to_string(), values::TIMESTAMP_WITH_OFFSET_EXTENSION.to_string());
        }
        Ok(Field::new(self.name.clone(), self.standard_type()?, true).with_metadata(metadata))
    }
}

/// The children of a `arrow.timestamp_with_offset` struct.
fn offset_fields() -> Fields {
    Fields::from(vec![
        Field::new("timestamp", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), false),
        Field::new("offset_minutes", DataType::Int16, false),
    ])
}

/// The kind of column a Snowflake type becomes in standard Arrow, so that
/// the sink's pair table can be asked about Snowflake types
/// (`supported_targets(LogicalType::TimestampTz)`).
impl From<LogicalType> for ColumnKind {
    fn from(logical: LogicalType) -> ColumnKind {
        match logical {
            LogicalType::Fixed => ColumnKind::Number,
            LogicalType::Real => ColumnKind::Float,
            LogicalType::Text => ColumnKind::Text,
            LogicalType::Variant | LogicalType::Object | LogicalType::Array => ColumnKind::Json,
            LogicalType::Binary => ColumnKind::Binary,
            LogicalType::Boolean => ColumnKind::Boolean,
            LogicalType::Date => ColumnKind::Date,
            LogicalType::Time => ColumnKind::Time,
            LogicalType::TimestampNtz => ColumnKind::Timestamp,
            LogicalType::TimestampLtz => ColumnKind::TimestampUtc,
            LogicalType::TimestampTz => ColumnKind::TimestampWithOffset,
        }
    }
}

/// Decodes the batches of one Snowflake result into standard Arrow.
///
/// Built once per result from the first batch's schema (the Snowflake
/// metadata is the same in every batch, the physical types are not);
/// [`SnowflakeDecoder::decode`] then turns each batch into one with
/// [`SnowflakeDecoder::schema`], checking every value on the way: a NUMBER
/// that does not fit its declared precision, a TIME outside a day or a
/// timestamp outside 64-bit microseconds is an error naming the column and
/// the value. Nanosecond digits are floored to the microsecond (docs/sync.md
/// §5.2, note 1).
#[derive(Debug, Clone)]
pub struct SnowflakeDecoder {
    columns: Vec<SourceType>,
    schema: SchemaRef,
}

impl SnowflakeDecoder {
    /// Read the declared types from `schema` (a Snowflake result's).
    ///
    /// Errors: [`ErrorKind::TypeUnsupported`] naming a column whose type
    /// thaw cannot decode.
    pub fn new(schema: &Schema) -> Result<SnowflakeDecoder> {
        let columns = schema.fields().iter().map(|f| SourceType::from_field(f)).collect::<Result<Vec<_>>>()?;
        let fields = columns.iter().zip(schema.fields()).map(|(c, f)| c.standard_field(f.metadata())).collect::<Result<Vec<_>>>()?;
        Ok(SnowflakeDecoder { columns, schema: Arc::new(Schema::new(fields)) })
    }

    /// The standard schema every decoded batch has.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The declared Snowflake types, in column order.
    pub fn source_types(&self) -> &[SourceType] {
        &self.columns
    }

    /// Decode one batch of the result.
    ///
    /// Errors: [`ErrorKind::ChunkFailed`] for a value outside its declared
    /// type (naming column, row and value); [`ErrorKind::TypeUnsupported`]
    /// for a physical layout Snowflake does not use; [`ErrorKind::Internal`]
    /// when the batch has another number of columns.
    pub fn decode(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        if batch.num_columns() != self.columns.len() {
            return Err(Error::internal(format!("a Snowflake result batch has {} columns, the first had {}", batch.num_columns(), self.columns.len())));
        }
        let arrays = self
            .columns
            .iter()
            .zip(batch.columns())
            .zip(self.schema.fields())
            .map(|((source, array), field)| decode_column(source, array, field.data_type()))
            .collect::<Result<Vec<_>>>()?;
        RecordBatch::try_new_with_options(self.schema.clone(), arrays, &RecordBatchOptions::new().with_row_count(Some(batch.num_rows())))
            .map_err(|e| Error::internal(format!("cannot assemble a decoded batch: {e}")))
    }
}

fn unsupported(source: &SourceType, array: &dyn Array) -> Error {
    Error::new(
        ErrorKind::TypeUnsupported,
        format!(
            "source column \"{}\" is declared {} (scale {}) but arrived as Arrow type {}, a layout thaw does not know. Report this with the Snowflake column definition; meanwhile list it in the table's exclude_columns.",
            source.name,
            source.logical,
            source.scale,
            array.data_type()
        ),
    )
}

fn bad_value(source: &SourceType, row: usize, problem: String) -> Error {
    Error::new(ErrorKind::ChunkFailed, format!("source column \"{}\" ({}), row {row} of the batch: {problem}", source.name, source.logical))
}

fn cast_to(source: &SourceType, array: &ArrayRef, to: &DataType) -> Result<ArrayRef> {
    if array.data_type() == to {
        return Ok(array.clone());
    }
    arrow_cast::cast_with_options(array, to, &arrow_cast::CastOptions { safe: false, ..Default::default() }).map_err(|_| unsupported(source, array.as_ref()))
}

/// One column of one batch into its standard type `to`.
fn decode_column(source: &SourceType, array: &ArrayRef, to: &DataType) -> Result<ArrayRef> {
    let physical = array.data_type();
    match source.logical {
        LogicalType::Fixed => decode_number(source, array, to),
        LogicalType::Real if matches!(physical, DataType::Float64 | DataType::Float32) => cast_to(source, array, to),
        LogicalType::Text | LogicalType::Variant | LogicalType::Object | LogicalType::Array
            if matches!(physical, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View) =>
        {
            cast_to(source, array, to)
        }
        LogicalType::Binary if matches!(physical, DataType::Binary | DataType::LargeBinary | DataType::BinaryView | DataType::FixedSizeBinary(_)) => {
            cast_to(source, array, to)
        }
        LogicalType::Boolean if physical == &DataType::Boolean => Ok(array.clone()),
        LogicalType::Date if physical == &DataType::Date32 => Ok(array.clone()),
        LogicalType::Time => decode_time(source, array),
        LogicalType::TimestampNtz | LogicalType::TimestampLtz | LogicalType::TimestampTz => decode_timestamp(source, array),
        _ => Err(unsupported(source, array.as_ref())),
    }
}

/// FIXED: scaled integers of any width, or Decimal128, into Int64 or Decimal128(p,s).
fn decode_number(source: &SourceType, array: &ArrayRef, to: &DataType) -> Result<ArrayRef> {
    let (unscaled, from_scale) = match array.data_type() {
        DataType::Decimal128(_, s) => (IntValues::I128(array.as_primitive::<Decimal128Type>().values()), u32::try_from(*s).map_err(|_| unsupported(source, array.as_ref()))?),
        _ => (IntValues::of(array.as_ref()).ok_or_else(|| unsupported(source, array.as_ref()))?, source.scale),
    };
    let to_scale = source.scale;
    let nulls = array.nulls();
    let rows = array.len();
    let value_at = |row: usize| -> Result<i128> {
        let u = unscaled.get(row);
        match from_scale.cmp(&to_scale) {
            std::cmp::Ordering::Equal => Ok(u),
            std::cmp::Ordering::Less => u.checked_mul(pow10(to_scale - from_scale)).ok_or_else(|| bad_value(source, row, format!("value {u}e-{from_scale} overflows 38 digits at scale {to_scale}"))),
            std::cmp::Ordering::Greater => {
                let p = pow10(from_scale - to_scale);
                if u % p == 0 {
                    Ok(u / p)
                } else {
                    Err(bad_value(source, row, format!("value {u}e-{from_scale} has more decimals than the declared scale {to_scale}")))
                }
            }
        }
    };
    match to {
        DataType::Int64 => {
            if array.data_type() == &DataType::Int64 && from_scale == 0 {
                return Ok(array.clone());
            }
            let mut out = Vec::with_capacity(rows);
            for row in 0..rows {
                if nulls.is_some_and(|n| n.is_null(row)) {
                    out.push(0);
                    continue;
                }
                let v = value_at(row)?;
                out.push(i64::try_from(v).map_err(|_| bad_value(source, row, format!("value {v} does not fit NUMBER({}, 0)", source.precision.unwrap_or(18))))?);
            }
            Ok(Arc::new(Int64Array::new(out.into(), nulls.cloned())))
        }
        DataType::Decimal128(precision, scale) => {
            let limit = pow10(u32::from(*precision));
            let mut out = Vec::with_capacity(rows);
            for row in 0..rows {
                if nulls.is_some_and(|n| n.is_null(row)) {
                    out.push(0);
                    continue;
                }
                let v = value_at(row)?;
                if v.unsigned_abs() >= limit.unsigned_abs() {
                    let mut text = Vec::new();
                    crate::sink::encode::write_decimal(&mut text, v, to_scale);
                    return Err(bad_value(source, row, format!("value {} has more than the {precision} digits NUMBER({precision}, {scale}) declares", String::from_utf8_lossy(&text))));
                }
                out.push(v);
            }
            let decimals = Decimal128Array::new(out.into(), nulls.cloned())
                .with_precision_and_scale(*precision, *scale)
                .map_err(|e| Error::internal(format!("decimal type of column {}: {e}", source.name)))?;
            Ok(Arc::new(decimals))
        }
        other => Err(Error::internal(format!("NUMBER column {} cannot decode into {other}", source.name))),
    }
}

/// TIME: ticks at the declared scale (or Time32/Time64) into Time64(µs), floored.
fn decode_time(source: &SourceType, array: &ArrayRef) -> Result<ArrayRef> {
    let (ticks, scale) = match array.data_type() {
        DataType::Int32 | DataType::Int64 => (IntValues::of(array.as_ref()).ok_or_else(|| unsupported(source, array.as_ref()))?, source.scale),
        DataType::Time32(_) | DataType::Time64(_) => {
            let view = ColumnView::new(&source.name, ColumnKind::Time, array)?;
            match view.values {
                Values::Time { ticks, scale } => (ticks, scale),
                _ => return Err(unsupported(source, array.as_ref())),
            }
        }
        _ => return Err(unsupported(source, array.as_ref())),
    };
    if scale > 9 {
        return Err(unsupported(source, array.as_ref()));
    }
    let nulls = array.nulls();
    let mut out = Vec::with_capacity(array.len());
    for row in 0..array.len() {
        if nulls.is_some_and(|n| n.is_null(row)) {
            out.push(0);
            continue;
        }
        let micros = ticks
            .get_i64(row)
            .and_then(|t| scaled_to_micros(t, scale))
            .filter(|m| (0..=MICROS_PER_DAY).contains(m))
            .ok_or_else(|| bad_value(source, row, format!("time of day {}e-{scale} s is outside 00:00..24:00", ticks.get(row))))?;
        out.push(micros);
    }
    Ok(Arc::new(Time64MicrosecondArray::new(out.into(), nulls.cloned())))
}

/// Snowflake's timestamp layouts, read per row.
#[derive(Debug, Clone, Copy)]
struct SnowflakeTimestamps<'a> {
    /// Epoch in 10^-epoch_scale seconds.
    epoch: &'a [i64],
    /// Digits of `epoch` after the second (0 for struct layouts with a fraction).
    epoch_scale: u32,
    /// Nanoseconds within the second (struct layouts with a fraction).
    fraction: Option<&'a [i32]>,
    /// Snowflake's encoded offset (`minutes + 1440`), TIMESTAMP_TZ only.
    timezone: Option<&'a [i32]>,
}

impl SnowflakeTimestamps<'_> {
    /// The timestamp at `row`; `None` when it overflows 64-bit microseconds.
    fn get(&self, row: usize) -> Option<Timestamp> {
        let e = self.epoch[row];
        let micros = match self.fraction {
            // epoch in seconds, fraction in nanoseconds.
            Some(f) => e.checked_mul(1_000_000)?.checked_add(i64::from(f[row]).div_euclid(1000))?,
            None => scaled_to_micros(e, self.epoch_scale)?,
        };
        Some(Timestamp { micros, offset_minutes: self.timezone.map_or(0, |tz| tz[row] - 1440) })
    }
}

/// TIMESTAMP_*: Int64 at the declared scale, Struct{epoch, [fraction], [timezone]},
/// or Arrow's own Timestamp, into Timestamp(µs) / Timestamp(µs, UTC) / timestamp-with-offset.
fn decode_timestamp(source: &SourceType, array: &ArrayRef) -> Result<ArrayRef> {
    let layout = timestamp_layout(source, array).ok_or_else(|| unsupported(source, array.as_ref()))?;
    if layout.epoch_scale > 9 {
        return Err(unsupported(source, array.as_ref()));
    }
    let nulls = array.nulls();
    let rows = array.len();
    let mut micros = Vec::with_capacity(rows);
    let mut offsets = Vec::with_capacity(if source.logical == LogicalType::TimestampTz { rows } else { 0 });
    for row in 0..rows {
        if nulls.is_some_and(|n| n.is_null(row)) {
            micros.push(0);
            if source.logical == LogicalType::TimestampTz {
                offsets.push(0);
            }
            continue;
        }
        let ts = layout.get(row).ok_or_else(|| {
            bad_value(source, row, format!("timestamp {}e-{} s since 1970 is outside PostgreSQL's range (more than ±292,000 years)", layout.epoch[row], layout.epoch_scale))
        })?;
        micros.push(ts.micros);
        if source.logical == LogicalType::TimestampTz {
            offsets.push(i16::try_from(ts.offset_minutes).map_err(|_| bad_value(source, row, format!("UTC offset of {} minutes is out of range", ts.offset_minutes)))?);
        }
    }
    let instants = TimestampMicrosecondArray::new(micros.into(), nulls.cloned());
    Ok(match source.logical {
        LogicalType::TimestampNtz => Arc::new(instants),
        LogicalType::TimestampLtz => Arc::new(instants.with_timezone("UTC")),
        _ => {
            // The struct carries the nulls; its children are non-nullable.
            let instants = TimestampMicrosecondArray::new(instants.values().clone(), None).with_timezone("UTC");
            let offsets = Int16Array::from(offsets);
            Arc::new(StructArray::new(offset_fields(), vec![Arc::new(instants), Arc::new(offsets)], nulls.cloned()))
        }
    })
}

fn timestamp_layout<'a>(source: &SourceType, array: &'a ArrayRef) -> Option<SnowflakeTimestamps<'a>> {
    use arrow_array::types::{TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType};
    let tz_kind = source.logical == LogicalType::TimestampTz;
    Some(match array.data_type() {
        DataType::Int64 if !tz_kind => SnowflakeTimestamps { epoch: array.as_primitive::<Int64Type>().values(), epoch_scale: source.scale, fraction: None, timezone: None },
        DataType::Timestamp(unit, _) => {
            let epoch: &[i64] = match unit {
                TimeUnit::Second => array.as_primitive::<TimestampSecondType>().values(),
                TimeUnit::Millisecond => array.as_primitive::<TimestampMillisecondType>().values(),
                TimeUnit::Microsecond => array.as_primitive::<TimestampMicrosecondType>().values(),
                TimeUnit::Nanosecond => array.as_primitive::<TimestampNanosecondType>().values(),
            };
            SnowflakeTimestamps { epoch, epoch_scale: unit_scale(*unit), fraction: None, timezone: None }
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
            SnowflakeTimestamps { epoch, epoch_scale, fraction, timezone }
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

    fn decoded(source: &SourceType, array: &ArrayRef) -> ArrayRef {
        decode_column(source, array, &source.standard_type().unwrap()).unwrap()
    }

    fn view<'a>(source: &SourceType, decoded: &'a ArrayRef) -> ColumnView<'a> {
        ColumnView::new(&source.name, source.logical.into(), decoded).unwrap()
    }

    fn numbers(source: &SourceType, array: &ArrayRef) -> Vec<(i128, u32)> {
        let decoded = decoded(source, array);
        let view = view(source, &decoded);
        let Values::Number { unscaled, scale } = view.values else { panic!("not a number view: {:?}", view.values) };
        (0..array.len()).map(|r| (unscaled.get(r), scale)).collect()
    }

    fn micros(source: &SourceType, array: &ArrayRef) -> Vec<(i64, i32)> {
        let decoded = decoded(source, array);
        let view = view(source, &decoded);
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
        let decoded = decoded(&source, &array);
        let view = view(&source, &decoded);
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
            let decoded = decoded(&source, &array);
            assert_eq!(view(&source, &decoded).time_micros(0), Some(expected), "scale {scale}");
        }
    }

    #[test]
    fn unknown_layout_is_type_unsupported_naming_the_column() {
        let field = snowflake_field("AT", DataType::Utf8, "TIMESTAMP_NTZ", 9, None);
        let source = SourceType::from_field(&field).unwrap();
        let array: ArrayRef = Arc::new(arrow_array::StringArray::from(vec!["x"]));
        let err = decode_column(&source, &array, &source.standard_type().unwrap()).unwrap_err();
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
