//! The staged source: Snowflake unloads a chunk to Parquet files in S3 and
//! thaw reads them back as standard Arrow record batches
//! (docs/sync.md §13).
//!
//! * [`UnloadForm`]: how each column is written into Parquet — as it is, or
//!   cast in the unload's SELECT to a lossless form Parquet carries the same
//!   way in Snowflake and in the emulator — and how it is converted back on
//!   load (docs/sync.md §13.2).
//! * [`s3_store`]: an `object_store` S3 client for the staging bucket (AWS,
//!   or the endpoint of `staging.endpoint` / `THAW_S3_ENDPOINT`).
//! * Loaded batches are the standard Arrow of the source/sink seam
//!   (docs/sync.md §5.5): NUMBER as Decimal128(38, s), TIMESTAMP_TZ/LTZ as
//!   Timestamp(unit, "+00:00"), VARIANT/OBJECT/ARRAY as Utf8 with the
//!   `arrow.json` extension, the rest as Parquet yields them.
//! * [`StagedFile`]: one unloaded object; [`StagedFile::row_count`] reads its
//!   Parquet footer only, [`StagedFile::batches`] streams its rows a row group
//!   at a time through the `parquet` crate's async reader, so memory is
//!   bounded by a row group, not by the file.
//!
//! Every error names the object (`s3://bucket/key`). A missing or unreadable
//! (corrupt, truncated, not Parquet) file is [`ErrorKind::ChunkFailed`] —
//! deterministic, never retried as transient: unloading the chunk again is
//! the fix. Network failures while reading are [`ErrorKind::Transient`].

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::types::ArrowTimestampType;
use arrow_array::cast::AsArray;
use arrow_array::{ArrayRef, RecordBatch};
use arrow_cast::{cast_with_options, CastOptions};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use futures::stream::{BoxStream, StreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::ObjectStore;
use parquet::arrow::async_reader::{ParquetObjectReader, ParquetRecordBatchStreamBuilder};
use parquet::arrow::ProjectionMask;
use parquet::errors::ParquetError;

use crate::config::StagingSettings;
use crate::error::{Error, ErrorKind, Result};
use crate::sink::values::{EXTENSION_NAME_KEY, JSON_EXTENSION, TIMESTAMP_WITH_OFFSET_EXTENSION};
use crate::source::arrow::LogicalType;
use crate::source::sql;
use crate::sync::table_plan::SourceColumn;

/// Rows per record batch read from a row group (Arrow's usual 8 Ki rows).
pub const READ_BATCH_ROWS: usize = 8192;

/// How one column travels through Parquet (docs/sync.md §13.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnloadForm {
    /// Unloaded as it is (FLOAT, VARCHAR, BINARY, BOOLEAN, DATE, TIME,
    /// TIMESTAMP_NTZ); read back with the column's logical type.
    AsIs(LogicalType),
    /// NUMBER: `TO_VARCHAR("COL")`, decimal text, read back as
    /// Decimal128(38, scale) — exact for every precision (Snowflake picks a
    /// NUMBER's Parquet type itself and values past 18 digits do not fit INT64).
    DecimalText {
        /// Digits after the decimal point (the column's scale).
        scale: i8,
    },
    /// TIMESTAMP_TZ / TIMESTAMP_LTZ: `CONVERT_TIMEZONE('UTC', "COL")::TIMESTAMP_NTZ`
    /// (the UTC wall clock; Snowflake refuses to unload TIMESTAMP_TZ), read
    /// back as the instant: Timestamp(µs or finer, "+00:00"), logical type
    /// TIMESTAMP_LTZ. The original offset is dropped (docs/sync.md §13.2).
    UtcTimestamp,
    /// TIMESTAMP_TZ: as TIMESTAMP_LTZ (the instant) plus its offset in
    /// minutes in a second column `"<COL>__thaw_offset_minutes"`
    /// (`DATE_PART(TIMEZONE_HOUR) * 60 + DATE_PART(TIMEZONE_MINUTE)`), read
    /// back as the seam's `arrow.timestamp_with_offset`, so the direct path's
    /// offset rules apply unchanged (docs/sync.md §13.2).
    UtcTimestampWithOffset,
    /// VARIANT / OBJECT / ARRAY: `TO_JSON("COL")`, compact JSON text.
    JsonText(LogicalType),
}

impl UnloadForm {
    /// The form of a source column, from its `INFORMATION_SCHEMA` data type.
    ///
    /// Errors: [`ErrorKind::TypeUnsupported`] naming the column for a type
    /// thaw cannot copy at all.
    pub fn of(column: &SourceColumn) -> Result<UnloadForm> {
        let logical = LogicalType::from_data_type(&column.data_type).ok_or_else(|| {
            Error::new(
                ErrorKind::TypeUnsupported,
                format!("source column \"{}\" has Snowflake type {}, which thaw cannot unload or copy; exclude it (exclude_columns) or cast it in a view", column.name, column.data_type),
            )
        })?;
        Ok(match logical {
            LogicalType::Fixed => UnloadForm::DecimalText {
                // Snowflake's scales are 0–38 (NUMBER(38,38) holds values in (−1, 1)).
                scale: column.scale.unwrap_or(0).clamp(0, 38) as i8,
            },
            LogicalType::TimestampLtz => UnloadForm::UtcTimestamp,
            LogicalType::TimestampTz => UnloadForm::UtcTimestampWithOffset,
            LogicalType::Variant | LogicalType::Object | LogicalType::Array => {
                UnloadForm::JsonText(logical)
            }
            other => UnloadForm::AsIs(other),
        })
    }

    /// The unload SELECT's expression for `name`, aliased to the name itself
    /// so that `HEADER = TRUE` keeps the column names.
    pub fn select_expr(self, name: &str) -> String {
        let col = sql::ident(name);
        match self {
            UnloadForm::AsIs(_) => col,
            UnloadForm::DecimalText { .. } => format!("TO_VARCHAR({col}) AS {col}"),
            UnloadForm::UtcTimestamp => {
                format!("CONVERT_TIMEZONE('UTC', {col})::TIMESTAMP_NTZ AS {col}")
            }
            UnloadForm::UtcTimestampWithOffset => format!(
                "CONVERT_TIMEZONE('UTC', {col})::TIMESTAMP_NTZ AS {col}, DATE_PART(TIMEZONE_HOUR, {col}) * 60 + DATE_PART(TIMEZONE_MINUTE, {col}) AS {}",
                sql::ident(&offset_column(name))
            ),
            UnloadForm::JsonText(_) => format!("TO_JSON({col}) AS {col}"),
        }
    }

    /// The logical type the loaded column has (what the encoder checks
    /// target types against).
    pub fn loaded_type(self) -> LogicalType {
        match self {
            UnloadForm::AsIs(l) | UnloadForm::JsonText(l) => l,
            UnloadForm::DecimalText { .. } => LogicalType::Fixed,
            UnloadForm::UtcTimestamp => LogicalType::TimestampLtz,
            UnloadForm::UtcTimestampWithOffset => LogicalType::TimestampTz,
        }
    }

    /// Convert one Parquet column back into the standard Arrow the encoder
    /// takes: decimal text → Decimal128(38, scale), UTC wall clock →
    /// Timestamp(unit, "+00:00"), the rest unchanged.
    ///
    /// A Decimal128 of negative scale (not written by thaw's unload) is
    /// rescaled to Decimal128(38, column scale), exactly.
    ///
    /// Errors: [`ErrorKind::ChunkFailed`] for text that is not a decimal of
    /// the column's scale, a negative-scale decimal with more than 38 digits
    /// at the column's scale, or an Arrow type the form does not produce.
    pub fn convert(self, name: &str, array: &ArrayRef) -> Result<ArrayRef> {
        let strict = CastOptions {
            safe: false,
            ..Default::default()
        };
        let bad =
            |what: String| Error::new(ErrorKind::ChunkFailed, format!("column \"{name}\": {what}"));
        match self {
            UnloadForm::AsIs(_) | UnloadForm::JsonText(_) => Ok(array.clone()),
            UnloadForm::DecimalText { scale } => match array.data_type() {
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
                    // Arrow's cast rounds decimals beyond the scale half up
                    // without a word; thaw's unload never writes them, a file
                    // from elsewhere might: refuse instead of rounding.
                    let text = cast_with_options(array, &DataType::Utf8, &strict)
                        .map_err(|e| bad(format!("cannot read the unloaded decimal text: {e}")))?;
                    let text = text.as_string::<i32>();
                    if let Some(value) = text.iter().flatten().find(|v| loses_decimals(v, scale)) {
                        return Err(bad(format!(
                            "the staged file holds {value:?}, more decimals than the column's scale {scale}; \
                             loading it would round the value. Unload the chunk again with thaw (a new run without --reuse-unload)"
                        )));
                    }
                    cast_with_options(array, &DataType::Decimal128(38, scale), &strict).map_err(
                        |e| {
                            bad(format!(
                                "the unloaded decimal text is not a NUMBER of scale {scale}: {e}"
                            ))
                        },
                    )
                }
                // A negative scale (whole hundreds, thousands, …; not
                // Snowflake's, which has none): rescaled exactly to the
                // column's scale; a value with more than 38 digits then is refused.
                DataType::Decimal128(_, s) if *s < 0 => {
                    cast_with_options(array, &DataType::Decimal128(38, scale), &strict).map_err(|e| {
                        bad(format!(
                            "the staged file holds it as {} (negative scale) and a value has more than 38 digits at the column's scale {scale} ({e}); \
                             a NUMBER column holds at most 38. Unload the chunk again with thaw (a new run without --reuse-unload), \
                             or stop copying the column (exclude_columns)",
                            array.data_type()
                        ))
                    })
                }
                // Unloaded by something else than thaw's SELECT (e.g. an older
                // unload): integers and decimals are exact as they are.
                DataType::Int8
                | DataType::Int16
                | DataType::Int32
                | DataType::Int64
                | DataType::Decimal128(..) => Ok(array.clone()),
                other => Err(bad(format!(
                    "expected decimal text in the Parquet file, found {other}"
                ))),
            },
            UnloadForm::UtcTimestamp | UnloadForm::UtcTimestampWithOffset => {
                use arrow_array::types::{
                    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
                    TimestampSecondType,
                };
                // The same values, now read as instants in UTC.
                match array.data_type() {
                    DataType::Timestamp(TimeUnit::Second, _) => {
                        Ok(as_utc::<TimestampSecondType>(array))
                    }
                    DataType::Timestamp(TimeUnit::Millisecond, _) => {
                        Ok(as_utc::<TimestampMillisecondType>(array))
                    }
                    DataType::Timestamp(TimeUnit::Microsecond, _) => {
                        Ok(as_utc::<TimestampMicrosecondType>(array))
                    }
                    DataType::Timestamp(TimeUnit::Nanosecond, _) => {
                        Ok(as_utc::<TimestampNanosecondType>(array))
                    }
                    other => Err(bad(format!(
                        "expected a timestamp in the Parquet file, found {other}"
                    ))),
                }
            }
        }
    }

    /// The loaded field of a column converted to `data_type` ([`UnloadForm::convert`]'s
    /// output type): `name`, that type, and the logical
    /// type (and scale) as Snowflake field metadata, so the encoder applies
    /// the column's Snowflake semantics (e.g. VARIANT's JSON targets).
    pub fn loaded_field(self, name: &str, data_type: &DataType) -> Field {
        let scale = match (self, data_type) {
            (UnloadForm::DecimalText { scale }, _) => scale.max(0) as u32,
            (_, DataType::Decimal128(_, s)) => (*s).max(0) as u32,
            (_, DataType::Timestamp(unit, _) | DataType::Time64(unit)) => match unit {
                TimeUnit::Second => 0,
                TimeUnit::Millisecond => 3,
                TimeUnit::Microsecond => 6,
                TimeUnit::Nanosecond => 9,
            },
            _ => 0,
        };
        // The sink decides on the Arrow type (and the JSON extension) alone;
        // `logicalType` only lets its messages name the Snowflake type.
        let mut md = HashMap::from([
            (
                "logicalType".to_string(),
                self.loaded_type().name().to_string(),
            ),
            ("scale".to_string(), scale.to_string()),
        ]);
        match self {
            UnloadForm::JsonText(_) => {
                md.insert(EXTENSION_NAME_KEY.to_string(), JSON_EXTENSION.to_string());
            }
            UnloadForm::UtcTimestampWithOffset => {
                md.insert(
                    EXTENSION_NAME_KEY.to_string(),
                    TIMESTAMP_WITH_OFFSET_EXTENSION.to_string(),
                );
            }
            _ => {}
        }
        Field::new(name, data_type.clone(), true).with_metadata(md)
    }

    /// TIMESTAMP_TZ: the instant ([`UnloadForm::convert`]) and the unloaded
    /// offset column as `arrow.timestamp_with_offset`
    /// (Struct{timestamp: Timestamp(unit, "+00:00"), offset_minutes: Int16}).
    ///
    /// Errors: [`ErrorKind::ChunkFailed`] for an offset that is not a whole
    /// number of minutes within ±18 hours.
    pub fn convert_with_offset(
        self,
        name: &str,
        instant: &ArrayRef,
        offset: &ArrayRef,
    ) -> Result<ArrayRef> {
        let strict = CastOptions {
            safe: false,
            ..Default::default()
        };
        let instant = self.convert(name, instant)?;
        let bad =
            |what: String| Error::new(ErrorKind::ChunkFailed, format!("column \"{name}\": {what}"));
        let minutes = cast_with_options(offset, &DataType::Int16, &strict).map_err(|e| {
            bad(format!(
                "the unloaded UTC offset is not a number of minutes: {e}"
            ))
        })?;
        if let Some(v) = minutes
            .as_any()
            .downcast_ref::<arrow_array::Int16Array>()
            .and_then(|m| m.iter().flatten().find(|v| v.abs() > 18 * 60))
        {
            return Err(bad(format!(
                "the unloaded UTC offset {v} minutes is outside ±18 hours"
            )));
        }
        let DataType::Struct(fields) = loaded_data_type(self, instant.data_type()) else {
            return Err(Error::internal("timestamp_with_offset has a struct type"));
        };
        let nulls = instant.logical_nulls();
        let out = arrow_array::StructArray::try_new(fields, vec![instant, minutes], nulls)
            .map_err(|e| bad(e.to_string()))?;
        Ok(Arc::new(out))
    }
}

/// Whether decimal text `value` has a nonzero digit after the first
/// `scale` decimals (Arrow's cast would round it away). Exponent forms
/// (`1e-3`), which thaw's unload never writes, count as losing.
fn loses_decimals(value: &str, scale: i8) -> bool {
    let value = value.trim();
    if value.bytes().any(|b| b == b'e' || b == b'E') {
        return true;
    }
    let decimals = value.split_once('.').map_or("", |(_, d)| d);
    decimals.bytes().skip(scale.max(0) as usize).any(|b| b != b'0')
}

/// A timestamp column of unit `T` relabelled as instants in UTC
/// (Timestamp(unit, "+00:00")): the values stay, only the time zone changes
/// (a UTC wall clock is the UTC instant). `array` must be a
/// `PrimitiveArray<T>`; [`UnloadForm::convert`] dispatches on the unit.
/// `arrow_cast::cast` to a "UTC" zone would need chrono-tz; this needs nothing.
fn as_utc<T: ArrowTimestampType>(array: &ArrayRef) -> ArrayRef {
    use arrow_array::cast::AsArray;
    Arc::new(array.as_primitive::<T>().clone().with_timezone_utc())
}

/// The name of the extra unload column holding a TIMESTAMP_TZ column's offset in minutes.
pub fn offset_column(name: &str) -> String {
    format!("{name}__thaw_offset_minutes")
}

/// The S3 client for the staging bucket `bucket`: credentials and region
/// from the environment (the Lambda's role; `AWS_*` locally), the endpoint
/// from `staging.endpoint`, else `THAW_S3_ENDPOINT`, else AWS.
///
/// Errors: [`ErrorKind::ConfigInvalid`] when the client cannot be built
/// (names the setting).
pub fn s3_store(settings: &StagingSettings, bucket: &str) -> Result<Arc<dyn ObjectStore>> {
    let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
    if let Some(region) = settings.region.as_deref().filter(|r| !r.trim().is_empty()) {
        builder = builder.with_region(region);
    }
    let endpoint = settings
        .endpoint
        .clone()
        .or_else(|| std::env::var("THAW_S3_ENDPOINT").ok())
        .filter(|e| !e.trim().is_empty());
    if let Some(endpoint) = endpoint {
        builder = builder
            .with_endpoint(&endpoint)
            .with_allow_http(endpoint.starts_with("http://"))
            .with_virtual_hosted_style_request(false);
    }
    let store = builder
        .build()
        .map_err(|e| Error::config(format!("cannot build the S3 client for staging bucket '{bucket}': {e}. Check staging.region / staging.endpoint and the AWS credentials")))?;
    Ok(Arc::new(store))
}

/// Split `s3://bucket/key` (the `name` column of `LIST @stage`) into bucket and key.
///
/// Errors: [`ErrorKind::Internal`] for anything else (Snowflake lists S3 stages this way).
pub fn parse_s3_url(url: &str) -> Result<(String, String)> {
    url.strip_prefix("s3://")
        .and_then(|rest| rest.split_once('/'))
        .filter(|(bucket, key)| !bucket.is_empty() && !key.is_empty())
        .map(|(b, k)| (b.to_string(), k.to_string()))
        .ok_or_else(|| Error::internal(format!("LIST returned '{url}', not an s3://bucket/key URL; thaw reads staged files from S3 stages only")))
}

/// One unloaded Parquet object.
#[derive(Debug, Clone)]
pub struct StagedFile {
    /// S3 client of the object's bucket.
    pub store: Arc<dyn ObjectStore>,
    /// Bucket name (for messages).
    pub bucket: String,
    /// Object key.
    pub key: String,
    /// Object size in bytes, as listed (saves a HEAD request).
    pub bytes: u64,
}

impl StagedFile {
    /// `s3://bucket/key`.
    pub fn url(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }

    fn error(&self, e: ParquetError) -> Error {
        // object_store errors surface as ParquetError::External; the HTTP
        // status decides whose problem it is: the object's (missing, changed,
        // unreadable), the permissions', or the network's.
        let text = e.to_string();
        let has = |needles: &[&str]| needles.iter().any(|n| text.contains(n));
        let server_error = (500..600).any(|code| text.contains(&format!("status code: {code}")));
        if crate::error::name_resolution_failure(&e) == Some(crate::error::NameResolution::NotFound) {
            Error::config(format!("reading staged file {}: {} ({text})", self.url(), crate::sync::manifest::S3_HOST_NOT_FOUND_HINT))
        } else if has(&["NotFound", "NoSuchKey", "not found", "404"]) {
            Error::new(
                ErrorKind::ChunkFailed,
                format!("staged file {} is missing: {text}. Unload the chunk again (a new run without --reuse-unload) or restore the object", self.url()),
            )
        } else if has(&["AccessDenied", "403 Forbidden", "status code: 403"]) {
            Error::config(format!(
                "access to staged file {} is denied: {text}. The loader's role needs s3:GetObject on the staging bucket (infra/lib/constructs/staging.ts)",
                self.url()
            ))
        } else if has(&["416", "InvalidRange"]) {
            Error::new(
                ErrorKind::ChunkFailed,
                format!("staged file {} changed since it was listed (its size is no longer {} bytes): {text}. Unload the chunk again (a new run without --reuse-unload)", self.url(), self.bytes),
            )
        } else if server_error
            || has(&[
                "error sending request",
                "connection",
                "Connection",
                "timed out",
                "dns error",
            ])
        {
            Error::new(
                ErrorKind::Transient,
                format!("reading staged file {}: {text}", self.url()),
            )
        } else {
            Error::new(
                ErrorKind::ChunkFailed,
                format!("staged file {} is not a readable Parquet file ({text}). Unload the chunk again (a new run without --reuse-unload)", self.url()),
            )
        }
    }

    async fn builder(&self) -> Result<ParquetRecordBatchStreamBuilder<ParquetObjectReader>> {
        let reader =
            ParquetObjectReader::new(self.store.clone(), ObjectPath::from(self.key.as_str()))
                .with_file_size(self.bytes);
        ParquetRecordBatchStreamBuilder::new(reader)
            .await
            .map_err(|e| self.error(e))
    }

    /// Rows in the file, from its Parquet footer (one ranged read).
    ///
    /// Errors: see the module docs.
    pub async fn row_count(&self) -> Result<u64> {
        let builder = self.builder().await?;
        Ok(builder.metadata().file_metadata().num_rows().max(0) as u64)
    }

    /// Stream the file's rows as record batches of the columns `columns` (in
    /// that order, matched to the Parquet columns by name, exactly or else
    /// case-insensitively), each converted back from its unload form
    /// ([`UnloadForm::convert`]). Batches hold at most [`READ_BATCH_ROWS`]
    /// rows; one row group is decoded at a time.
    ///
    /// Errors: [`ErrorKind::SchemaMismatch`] naming the file and the columns
    /// it lacks; otherwise see the module docs.
    pub async fn batches(
        &self,
        columns: &[(String, UnloadForm)],
    ) -> Result<(SchemaRef, BoxStream<'static, Result<RecordBatch>>)> {
        let builder = self.builder().await?;
        let file_schema = builder.schema().clone();
        let mut positions = Vec::with_capacity(columns.len());
        let mut offset_positions: Vec<Option<usize>> = Vec::with_capacity(columns.len());
        let mut missing = Vec::new();
        let find = |name: &str| {
            file_schema
                .fields()
                .iter()
                .position(|f| f.name() == name)
                .or_else(|| {
                    file_schema
                        .fields()
                        .iter()
                        .position(|f| f.name().eq_ignore_ascii_case(name))
                })
        };
        for (name, form) in columns {
            if *form == UnloadForm::UtcTimestampWithOffset {
                let offset = offset_column(name);
                match find(&offset) {
                    Some(p) => offset_positions.push(Some(p)),
                    None => missing.push(format!("\"{offset}\"")),
                }
            } else {
                offset_positions.push(None);
            }
            match find(name) {
                Some(p) => positions.push(p),
                None => missing.push(format!("\"{name}\"")),
            }
        }
        if !missing.is_empty() {
            let have: Vec<&str> = file_schema
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .collect();
            return Err(Error::new(
                ErrorKind::SchemaMismatch,
                format!(
                    "staged file {} lacks column(s) {} (it has {}); it was unloaded with other columns or without HEADER = TRUE. Unload the chunk again",
                    self.url(),
                    missing.join(", "),
                    have.join(", ")
                ),
            ));
        }
        let mut all = positions.clone();
        all.extend(offset_positions.iter().flatten());
        let mask = ProjectionMask::roots(builder.parquet_schema(), all.clone());
        // The projected batch keeps the file's column order: map each wanted
        // column to its index among the projected ones.
        let mut sorted = all;
        sorted.sort_unstable();
        sorted.dedup();
        let order: Vec<usize> = positions
            .iter()
            .map(|p| sorted.binary_search(p).unwrap_or(0))
            .collect();
        let offset_order: Vec<Option<usize>> = offset_positions
            .iter()
            .map(|p| p.map(|p| sorted.binary_search(&p).unwrap_or(0)))
            .collect();
        let fields: Vec<Field> = columns
            .iter()
            .zip(&positions)
            .map(|((name, form), p)| {
                form.loaded_field(
                    name,
                    &loaded_data_type(*form, file_schema.field(*p).data_type()),
                )
            })
            .collect();
        let schema: SchemaRef = Arc::new(Schema::new(fields));
        let stream = builder
            .with_projection(mask)
            .with_batch_size(READ_BATCH_ROWS)
            .build()
            .map_err(|e| self.error(e))?;
        let file = self.clone();
        let forms: Vec<(String, UnloadForm)> = columns.to_vec();
        let out_schema = schema.clone();
        let converted = stream.map(move |batch| {
            let batch = batch.map_err(|e| file.error(e))?;
            let arrays = order
                .iter()
                .zip(&offset_order)
                .zip(&forms)
                .map(|((i, offset), (name, form))| {
                    match offset {
                        Some(o) => {
                            form.convert_with_offset(name, batch.column(*i), batch.column(*o))
                        }
                        None => form.convert(name, batch.column(*i)),
                    }
                    .map_err(|e| e.context(format!("staged file {}", file.url())))
                })
                .collect::<Result<Vec<ArrayRef>>>()?;
            RecordBatch::try_new(out_schema.clone(), arrays).map_err(|e| {
                Error::internal(format!(
                    "staged file {}: converted batch is inconsistent: {e}",
                    file.url()
                ))
            })
        });
        Ok((schema, converted.boxed()))
    }
}

/// The Arrow type a column of Parquet type `file_type` has after [`UnloadForm::convert`].
fn loaded_data_type(form: UnloadForm, file_type: &DataType) -> DataType {
    match (form, file_type) {
        (
            UnloadForm::DecimalText { scale },
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View,
        ) => DataType::Decimal128(38, scale),
        (UnloadForm::DecimalText { scale }, DataType::Decimal128(_, s)) if *s < 0 => {
            DataType::Decimal128(38, scale)
        }
        (UnloadForm::UtcTimestamp, DataType::Timestamp(unit, _)) => {
            DataType::Timestamp(*unit, Some("+00:00".into()))
        }
        (UnloadForm::UtcTimestampWithOffset, DataType::Timestamp(unit, _)) => {
            DataType::Struct(arrow_schema::Fields::from(vec![
                Field::new(
                    "timestamp",
                    DataType::Timestamp(*unit, Some("+00:00".into())),
                    true,
                ),
                Field::new("offset_minutes", DataType::Int16, true),
            ]))
        }
        (_, other) => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use arrow_array::{Array, Decimal128Array, StringArray, TimestampMicrosecondArray};

    use super::*;

    fn column(name: &str, data_type: &str, scale: Option<i64>) -> SourceColumn {
        SourceColumn {
            name: name.into(),
            data_type: data_type.into(),
            scale,
            char_length: None,
        }
    }

    #[test]
    fn unload_forms_follow_the_per_type_table() {
        assert_eq!(
            UnloadForm::of(&column("ID", "NUMBER", Some(0))).unwrap(),
            UnloadForm::DecimalText { scale: 0 }
        );
        // NUMBER(38,38) is read at its own scale: at 37 (the earlier clamp)
        // the staged path rounded off every value's last digit without a word
        // (found by the sync model, docs/sync.md §14).
        assert_eq!(
            UnloadForm::of(&column("FRACTION", "NUMBER", Some(38))).unwrap(),
            UnloadForm::DecimalText { scale: 38 }
        );
        assert_eq!(
            UnloadForm::of(&column("AMT", "NUMBER", Some(2)))
                .unwrap()
                .select_expr("AMT"),
            "TO_VARCHAR(\"AMT\") AS \"AMT\""
        );
        assert_eq!(
            UnloadForm::of(&column("T", "TIMESTAMP_TZ", None))
                .unwrap()
                .select_expr("T"),
            "CONVERT_TIMEZONE('UTC', \"T\")::TIMESTAMP_NTZ AS \"T\", DATE_PART(TIMEZONE_HOUR, \"T\") * 60 + DATE_PART(TIMEZONE_MINUTE, \"T\") AS \"T__thaw_offset_minutes\""
        );
        assert_eq!(
            UnloadForm::of(&column("T", "TIMESTAMP_LTZ", None)).unwrap(),
            UnloadForm::UtcTimestamp
        );
        assert_eq!(
            UnloadForm::of(&column("V", "VARIANT", None))
                .unwrap()
                .select_expr("V"),
            "TO_JSON(\"V\") AS \"V\""
        );
        assert_eq!(
            UnloadForm::of(&column("N", "TEXT", None))
                .unwrap()
                .select_expr("N"),
            "\"N\""
        );
        assert_eq!(
            UnloadForm::of(&column("D", "DATE", None)).unwrap(),
            UnloadForm::AsIs(LogicalType::Date)
        );
        let err = UnloadForm::of(&column("G", "GEOGRAPHY", None)).unwrap_err();
        assert_eq!(err.kind, ErrorKind::TypeUnsupported);
        assert!(
            err.message.contains("\"G\"") && err.message.contains("GEOGRAPHY"),
            "{err}"
        );
    }

    #[test]
    fn decimal_text_converts_exactly_and_refuses_non_numbers() {
        let text: ArrayRef = Arc::new(StringArray::from(vec![
            Some("12345678901234567890123.45"),
            Some("-0.01"),
            None,
        ]));
        let out = UnloadForm::DecimalText { scale: 2 }
            .convert("AMT", &text)
            .unwrap();
        let dec = out.as_any().downcast_ref::<Decimal128Array>().unwrap();
        assert_eq!(
            (dec.value(0), dec.value(1), dec.is_null(2)),
            (1_234_567_890_123_456_789_012_345, -1, true)
        );
        // Scale 38 (NUMBER(38,38)): every digit kept, with or without the leading zero.
        let text: ArrayRef = Arc::new(StringArray::from(vec![
            "0.04391924410018483383401209867666976589",
            ".04391924410018483383401209867666976589",
            "-0.99999999999999999999999999999999999999",
        ]));
        let out = UnloadForm::DecimalText { scale: 38 }.convert("C", &text).unwrap();
        let dec = out.as_any().downcast_ref::<Decimal128Array>().unwrap();
        assert_eq!(
            (dec.value(0), dec.value(1), dec.value(2)),
            (4_391_924_410_018_483_383_401_209_867_666_976_589, 4_391_924_410_018_483_383_401_209_867_666_976_589, -(10_i128.pow(38) - 1))
        );
        // More decimals than the scale: refused, never rounded; zeros beyond it are exact.
        let longer: ArrayRef = Arc::new(StringArray::from(vec![Some("1.230"), None, Some("2.345")]));
        let err = UnloadForm::DecimalText { scale: 2 }.convert("AMT", &longer).unwrap_err();
        assert_eq!(err.kind, ErrorKind::ChunkFailed);
        for part in ["column \"AMT\"", "\"2.345\"", "scale 2", "round"] {
            assert!(err.message.contains(part), "missing {part:?} in {err}");
        }
        let zeros: ArrayRef = Arc::new(StringArray::from(vec!["1.230", "-4.5000"]));
        let out = UnloadForm::DecimalText { scale: 2 }.convert("AMT", &zeros).unwrap();
        let dec = out.as_any().downcast_ref::<Decimal128Array>().unwrap();
        assert_eq!((dec.value(0), dec.value(1)), (123, -450));
        let exponent: ArrayRef = Arc::new(StringArray::from(vec!["1e-3"]));
        assert!(UnloadForm::DecimalText { scale: 2 }.convert("AMT", &exponent).is_err());
        let bad: ArrayRef = Arc::new(StringArray::from(vec!["12x"]));
        let err = UnloadForm::DecimalText { scale: 0 }
            .convert("ID", &bad)
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::ChunkFailed);
        assert!(err.message.contains("\"ID\""), "{err}");
    }

    /// A negative-scale Decimal128 (not thaw's unload: Snowflake has no
    /// negative scale) used to reach the encoder as it was, which refused it
    /// naming the column only ("a batch brought Arrow type Decimal128(38, -2)").
    #[test]
    fn negative_scale_decimals_are_rescaled_exactly_or_refused_naming_type_and_what_to_do() {
        let hundreds: ArrayRef = Arc::new(
            Decimal128Array::from(vec![Some(12), Some(-3), None])
                .with_precision_and_scale(38, -2)
                .unwrap(),
        );
        let form = UnloadForm::DecimalText { scale: 1 };
        let out = form.convert("ID", &hundreds).unwrap();
        assert_eq!(out.data_type(), &loaded_data_type(form, hundreds.data_type()));
        assert_eq!(out.data_type(), &DataType::Decimal128(38, 1));
        let dec = out.as_any().downcast_ref::<Decimal128Array>().unwrap();
        assert_eq!((dec.value(0), dec.value(1), dec.is_null(2)), (12_000, -3_000, true), "1200.0 and -300.0");

        let too_big: ArrayRef = Arc::new(
            Decimal128Array::from(vec![10_i128.pow(37)])
                .with_precision_and_scale(38, -2)
                .unwrap(),
        );
        let err = UnloadForm::DecimalText { scale: 0 }.convert("ID", &too_big).unwrap_err();
        assert_eq!(err.kind, ErrorKind::ChunkFailed);
        for part in ["column \"ID\"", "Decimal128(38, -2)", "38 digits", "Unload the chunk again", "exclude_columns"] {
            assert!(err.message.contains(part), "missing {part:?} in {err}");
        }
    }

    #[test]
    fn utc_wall_clock_becomes_the_utc_instant() {
        let wall: ArrayRef = Arc::new(TimestampMicrosecondArray::from(vec![1_710_100_800_500_000]));
        let out = UnloadForm::UtcTimestamp.convert("T", &wall).unwrap();
        assert_eq!(
            out.data_type(),
            &DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into()))
        );
        assert_eq!(
            out.as_any()
                .downcast_ref::<TimestampMicrosecondArray>()
                .unwrap()
                .value(0),
            1_710_100_800_500_000
        );
    }

    #[test]
    fn every_timestamp_unit_is_relabelled_utc_with_its_values_kept() {
        use arrow_array::{
            TimestampMillisecondArray, TimestampNanosecondArray, TimestampSecondArray,
        };
        let arrays: Vec<(ArrayRef, TimeUnit)> = vec![
            (
                Arc::new(TimestampSecondArray::from(vec![Some(1_710_100_800), None])),
                TimeUnit::Second,
            ),
            (
                Arc::new(TimestampMillisecondArray::from(vec![
                    Some(1_710_100_800_123),
                    None,
                ])),
                TimeUnit::Millisecond,
            ),
            (
                Arc::new(TimestampMicrosecondArray::from(vec![
                    Some(1_710_100_800_123_456),
                    None,
                ])),
                TimeUnit::Microsecond,
            ),
            (
                Arc::new(TimestampNanosecondArray::from(vec![
                    Some(1_710_100_800_123_456_789),
                    None,
                ])),
                TimeUnit::Nanosecond,
            ),
        ];
        for (wall, unit) in arrays {
            for form in [UnloadForm::UtcTimestamp, UnloadForm::UtcTimestampWithOffset] {
                let out = form.convert("T", &wall).unwrap();
                assert_eq!(
                    out.data_type(),
                    &DataType::Timestamp(unit, Some("+00:00".into()))
                );
                assert_eq!(
                    out.to_data().buffers(),
                    wall.to_data().buffers(),
                    "{unit:?}: values kept"
                );
                assert!(out.is_null(1), "{unit:?}: NULL kept");
            }
        }
        let not_a_timestamp: ArrayRef = Arc::new(StringArray::from(vec!["2026-01-01"]));
        let err = UnloadForm::UtcTimestamp
            .convert("T", &not_a_timestamp)
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::ChunkFailed);
        assert!(err.message.contains("expected a timestamp"), "{err}");
    }

    #[test]
    fn listed_names_split_into_bucket_and_key() {
        assert_eq!(
            parse_s3_url("s3://thaw-staging/a/b/data_0_0_0.snappy.parquet").unwrap(),
            (
                "thaw-staging".into(),
                "a/b/data_0_0_0.snappy.parquet".into()
            )
        );
        assert!(parse_s3_url("azure://x/y").is_err());
        assert!(parse_s3_url("s3://bucket-only").is_err());
    }
}
