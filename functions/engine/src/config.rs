//! The run configuration: the legacy tool's `config.json`, accepted as is, plus
//! additive options.
//!
//! Loading is three steps, all before any database is touched:
//! 1. [`expand_env`]: `${VAR}` and `${VAR:-default}` are replaced from the
//!    environment; every missing variable is named in one error.
//! 2. strict JSON parsing: unknown keys are an error with a "did you mean".
//! 3. [`Config::validate`]: types, ranges, impossible combinations.
//!
//! Secrets (`snowflake.password`, `snowflake.rsa_key`, `postgres.password`)
//! are never printed ([`Secret`]'s `Debug` is redacted) and never enter
//! [`Config::config_hash`], so a rotated password does not orphan a resumable run.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A secret string: usable, never printed.
#[derive(Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(pub String);

impl Secret {
    /// The secret value; do not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

/// Snowflake connection settings (`snowflake` in config.json).
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SnowflakeSettings {
    /// Account identifier, e.g. `xy12345.us-east-1` (host `<account>.snowflakecomputing.com`).
    pub account: String,
    /// Login name.
    pub user: String,
    /// Warehouse to run queries on.
    #[serde(default)]
    pub warehouse: Option<String>,
    /// Role to assume.
    #[serde(default)]
    pub role: Option<String>,
    /// Key-pair authentication: PEM text (literal `\n` allowed) or a file path.
    #[serde(default)]
    pub rsa_key: Option<Secret>,
    /// Password authentication (used when `rsa_key` is absent).
    #[serde(default)]
    pub password: Option<Secret>,
    /// Connect to this `host:port` instead of resolving the account host
    /// (PrivateLink endpoints, proxies, local test servers). TLS still
    /// verifies the certificate for `<account>.snowflakecomputing.com`.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Extra PEM CA bundle to trust; when set, built-in roots are not used.
    #[serde(default)]
    pub ca_file: Option<String>,
    /// Per-request timeout in seconds (default 600).
    #[serde(default)]
    pub query_timeout_seconds: Option<u64>,
    /// Session parameters set on every session at login (`ALTER SESSION SET
    /// name = value`), e.g. `{"QUERY_TAG": "thaw"}`; numbers and booleans as
    /// they are, text quoted (docs/sync.md §1.3).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub session_parameters: std::collections::BTreeMap<String, serde_json::Value>,
    /// Bytes of downloaded result chunks all the process's sessions may hold
    /// at once (default 64 MiB; docs/sync.md §5.6). Additive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download_byte_budget: Option<u64>,
}

impl SnowflakeSettings {
    /// `endpoint` as the socket address to connect to; `None` when absent or
    /// empty (resolve `<account>.snowflakecomputing.com`).
    ///
    /// Errors: [`crate::error::ErrorKind::ConfigInvalid`] when it is not an
    /// `IP:port` address (a host name cannot be used: TLS is verified for
    /// the account host, which the endpoint replaces only in resolution).
    pub fn endpoint_address(&self) -> Result<Option<std::net::SocketAddr>> {
        let Some(endpoint) = self.endpoint.as_deref().map(str::trim).filter(|e| !e.is_empty()) else {
            return Ok(None);
        };
        endpoint.parse().map(Some).map_err(|_| {
            Error::config(format!("snowflake.endpoint '{endpoint}' is not an IP:port address (e.g. 10.0.0.5:443); leave it out to resolve the account host"))
        })
    }

    /// `download_byte_budget`, else
    /// [`crate::source::download_budget::DEFAULT_DOWNLOAD_BYTE_BUDGET`].
    pub fn download_byte_budget(&self) -> u64 {
        self.download_byte_budget.unwrap_or(crate::source::download_budget::DEFAULT_DOWNLOAD_BYTE_BUDGET)
    }
}

/// PostgreSQL connection settings (`postgres` in config.json).
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PostgresSettings {
    /// Host name or IP address.
    pub host: String,
    /// Login role.
    pub user: String,
    /// Password (absent for trust or IAM auth).
    #[serde(default)]
    pub password: Option<Secret>,
    /// TCP port, 1..=65535 (default 5432); a number or text holding one.
    #[serde(default, deserialize_with = "port_number")]
    pub port: Option<u16>,
    /// Database holding the `migration_status` schema (default: the first
    /// source's `target_pg_database`).
    #[serde(default)]
    pub status_database: Option<String>,
    /// TLS to PostgreSQL, as libpq's `sslmode`: `disable` (default; plain
    /// text, local PostgreSQL), `require` (encrypted, certificate not checked)
    /// or `verify-full` (certificate chain and host name checked against the
    /// public web roots plus `ca_file`; what RDS needs). Other values are
    /// rejected by [`crate::sink::connect`].
    #[serde(default)]
    pub sslmode: Option<String>,
    /// PEM bundle of extra CA certificates trusted for `verify-full`, e.g. the
    /// RDS bundle `global-bundle.pem` for direct cluster connections (RDS
    /// Proxy presents a certificate under Amazon Root CA, already trusted).
    /// Default: the environment variable `THAW_PG_CA_FILE`, if set.
    #[serde(default)]
    pub ca_file: Option<String>,
}

impl PostgresSettings {
    /// The TLS mode (`sslmode`, trimmed): `disable` when absent or empty,
    /// else `require` or `verify-full` (libpq's spellings).
    ///
    /// Errors: [`crate::error::ErrorKind::ConfigInvalid`] for any other value,
    /// naming the setting and the accepted values.
    pub fn tls_mode(&self) -> Result<&str> {
        let mode = self.sslmode.as_deref().map(str::trim).filter(|m| !m.is_empty()).unwrap_or("disable");
        if matches!(mode, "disable" | "require" | "verify-full") {
            Ok(mode)
        } else {
            Err(Error::config(format!(
                "postgres.sslmode '{mode}' is not one of disable, require, verify-full (set THAW_PG_SSLMODE or postgres.sslmode; RDS needs verify-full)"
            )))
        }
    }
}

/// `postgres.port`: a number, or text holding one (legacy configurations
/// write `"port": "5432"` or `"port": "${PG_PORT}"`; the legacy tool handed
/// it to psycopg2, which accepts both). `null` is absent.
/// A TCP port written as text (`"5432"`, blanks around allowed): 1 to 65535,
/// else `None`. Used for `postgres.port` given as a string and for the
/// Lambdas' `THAW_PG_PORT`.
pub fn parse_port(text: &str) -> Option<u16> {
    text.trim().parse::<u16>().ok().filter(|p| *p > 0)
}

fn port_number<'de, D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<Option<u16>, D::Error> {
    use serde::de::Error as _;
    let value = Option::<serde_json::Value>::deserialize(deserializer)?;
    let port = match &value {
        None | Some(serde_json::Value::Null) => return Ok(None),
        Some(serde_json::Value::Number(n)) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        Some(serde_json::Value::String(text)) => parse_port(text),
        Some(_) => None,
    };
    match port {
        Some(p) if p > 0 => Ok(Some(p)),
        _ => Err(D::Error::custom(format!(
            "{} is not a TCP port: give a number from 1 to 65535 (or leave the key out for 5432)",
            value.map_or_else(String::new, |v| v.to_string())
        ))),
    }
}

/// The declared type of a chunking column (`chunking_column_types`), in the
/// legacy tool's spellings (case-insensitive): it decides the chunking
/// strategy (docs/sync.md §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum ChunkKeyType {
    /// `int`, `bigint`, `integer`, `smallint`, `number`, `numeric`, `varchar_numeric`.
    Integer,
    /// `date`, `datetime`, `timestamp`, `timestamp_ntz`, `timestamp_ltz`, `timestamp_tz`.
    Temporal,
    /// `varchar`, `string`, `text`, `char`, `uuid`.
    Text,
}

impl ChunkKeyType {
    /// Parse a legacy type name (case-insensitive); `None` when unknown.
    pub fn parse(name: &str) -> Option<ChunkKeyType> {
        let n = name.trim().to_ascii_lowercase();
        Some(match n.as_str() {
            "int" | "bigint" | "integer" | "number" | "numeric" | "varchar_numeric" | "smallint" => ChunkKeyType::Integer,
            "date" | "datetime" => ChunkKeyType::Temporal,
            s if s.starts_with("timestamp") => ChunkKeyType::Temporal,
            "varchar" | "string" | "text" | "uuid" | "char" => ChunkKeyType::Text,
            _ => return None,
        })
    }
}

impl TryFrom<String> for ChunkKeyType {
    type Error = String;
    fn try_from(name: String) -> std::result::Result<Self, String> {
        ChunkKeyType::parse(&name).ok_or_else(|| {
            format!(
                "chunking column type '{name}' is not known; use one of int, bigint, integer, number, numeric, date, timestamp, \
                 timestamp_ntz, timestamp_ltz, timestamp_tz, varchar, string, text, uuid"
            )
        })
    }
}

impl From<ChunkKeyType> for String {
    fn from(t: ChunkKeyType) -> String {
        match t {
            ChunkKeyType::Integer => "integer",
            ChunkKeyType::Temporal => "timestamp",
            ChunkKeyType::Text => "text",
        }
        .to_string()
    }
}

/// How a table is split into chunks (`chunking_strategy`; docs/sync.md §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChunkingStrategy {
    /// One chunk.
    Single,
    /// Half-open ranges of an integer key.
    NumericRange,
    /// Groups of whole days of a date/timestamp key.
    DateRange,
    /// Half-open ranges of a text key.
    Keyset,
    /// Lists of the distinct values of a low-cardinality key (provider,
    /// payer), packed by their row counts (docs/sync.md §3.1).
    GroupedValues,
}

/// Order in which a visit's coordinates are chosen for rule 7
/// (`conflicts.gps_priority`; docs/conflicts.md §D4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GpsPriority {
    /// Call-out GPS → call-in GPS → patient address, on both sides.
    #[default]
    Fixed,
    /// \[SF\]'s asymmetric order: primary visit call-out → call-in, conflicting
    /// visit call-in → call-out, then the patient address.
    Legacy,
}

/// One table to copy (`sources[].tables[]`).
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TableConfig {
    /// Copied only when true (default true).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Snowflake table name (unquoted names are upper-cased by Snowflake; thaw quotes exactly what is given).
    pub source: String,
    /// PostgreSQL table name in the source's `target_pg_schema`.
    pub target: String,
    /// Raw SQL boolean predicate applied in Snowflake (the only raw SQL thaw accepts).
    #[serde(default)]
    pub source_filter: Option<String>,
    /// Columns used to split the table into chunks (the first one decides the strategy).
    #[serde(default)]
    pub chunking_columns: Vec<String>,
    /// Declared types of `chunking_columns` (`int`, `bigint`, `number`, `numeric`, `date`, `timestamp*`, `varchar`, `uuid`, ...).
    #[serde(default)]
    pub chunking_column_types: Vec<ChunkKeyType>,
    /// Natural key of the table in the target (must be covered by a unique index for upserts).
    #[serde(default)]
    pub uniqueness_columns: Vec<String>,
    /// Source column whose growth marks changed rows (incremental loads).
    #[serde(default)]
    pub source_watermark: Option<String>,
    /// Target column holding the copied watermark.
    #[serde(default)]
    pub target_watermark: Option<String>,
    /// Truncate the target before loading (non-empty targets also need `--allow-truncate`).
    #[serde(default)]
    pub truncate_onstart: bool,
    /// `ON CONFLICT DO NOTHING` instead of updating existing keys.
    #[serde(default)]
    pub insert_only_mode: bool,
    /// Drop secondary indexes during the load and restore them afterwards.
    #[serde(default)]
    pub disable_index: bool,
    /// Chunks of this table copied concurrently.
    #[serde(default)]
    pub parallel_threads: Option<usize>,
    /// Target rows per chunk.
    #[serde(default)]
    pub batch_size: Option<u64>,
    /// Rows per chunk for first full loads (when larger than `batch_size`).
    #[serde(default)]
    pub batch_size_copy_mode: Option<u64>,
    /// Source column → target column renames.
    #[serde(default)]
    pub column_mapping: BTreeMap<String, String>,
    /// Accepted for compatibility; thaw orders by the uniqueness columns.
    #[serde(default)]
    pub sort_columns: Vec<String>,
    /// Override the automatically chosen chunking strategy
    /// (`single`, `numeric_range`, `date_range`, `keyset`).
    #[serde(default)]
    pub chunking_strategy: Option<ChunkingStrategy>,
    /// Estimated bytes per row used by the planner's memory budget (default: from the source types).
    #[serde(default)]
    pub estimated_row_bytes: Option<u64>,
    /// Delete target rows whose keys no longer exist in Snowflake, found by
    /// reconciliation (needs `uniqueness_columns`). Additive option; default false.
    #[serde(default)]
    pub propagate_deletes: bool,
    /// Source timestamp columns copied into a `date` column by dropping their
    /// time of day on purpose (additive; without it a time of day is an error,
    /// docs/sync.md §5.2).
    #[serde(default)]
    pub truncate_to_date: Vec<String>,
    /// Source columns never copied nor reconciled (e.g. columns PostgreSQL
    /// owns, such as the nightly job's own flags). Additive option.
    #[serde(default)]
    pub exclude_columns: Vec<String>,
    /// Keep each row's reconcile hash in a side table, written with the
    /// rows at load time (docs/reconcile.md §4.2); overrides the top-level
    /// `reconcile.row_hashes`. Needs `uniqueness_columns`. Additive; default off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_hashes: Option<bool>,
    /// Create the target table from the source's columns when it does not
    /// exist (natural type mapping, docs/sync.md §5.4), with a primary key on
    /// `uniqueness_columns`. Additive; overrides the top-level `create_tables`;
    /// default false (a missing target is a `SchemaMismatch` error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_tables: Option<bool>,
    /// What plan does with a source column that has no target column
    /// (docs/sync.md §3.6). Additive; overrides the top-level
    /// `schema_evolution`; absent = the legacy behaviour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_evolution: Option<SchemaEvolution>,
    /// How the table's rows leave Snowflake: `direct` queries (default) or
    /// `staged` Parquet files unloaded to S3 (docs/sync.md §13). Additive;
    /// overrides the source's `source_mode`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_mode: Option<SourceMode>,
}

/// `source_mode`: how a table's rows leave Snowflake (docs/sync.md §13).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceMode {
    /// One query per chunk, results streamed over Snowflake's HTTP API.
    #[default]
    Direct,
    /// One `COPY INTO @stage` per chunk, then the chunk's Parquet files are
    /// read from S3 (needs the `staging` section).
    Staged,
}

/// The `staging` section (legacy name `s3_staging` accepted): where staged
/// tables' Parquet files go (docs/sync.md §13.3). Key names follow the
/// legacy S3 variant's `s3copyconfig.json`.
#[derive(Debug, Clone, Deserialize, Serialize, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StagingSettings {
    /// Snowflake external stage the unloads write to, e.g.
    /// `CM_DB.PUBLIC.THAW_STAGE` (legacy `stage_name`). Its URL must point
    /// into `bucket`.
    #[serde(alias = "stage_name")]
    pub stage: String,
    /// Storage integration of the stage. When given, thaw runs `CREATE STAGE
    /// IF NOT EXISTS <stage> URL = 's3://<bucket>/' STORAGE_INTEGRATION = …`
    /// before the first unload; when absent the stage must exist
    /// (ops/snowflake-storage-integration.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_integration: Option<String>,
    /// S3 bucket the stage points into (the staging bucket of the CDK app).
    pub bucket: String,
    /// Key prefix of the stage's URL in `bucket` (default `unload/`, the
    /// prefix the CDK app lets Snowflake write and copy-chunk read); used
    /// when thaw creates the stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage_prefix: Option<String>,
    /// AWS region of the bucket (default: the environment's `AWS_REGION`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// S3 API endpoint URL (tests and S3-compatible servers; default: AWS,
    /// or `THAW_S3_ENDPOINT` when set). Path-style requests are used with an endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Path of a chunk's files below the stage, with placeholders
    /// `{database}`, `{schema}`, `{table}`, `{run_id}`, `{chunk_id}` (legacy
    /// `{source_database}`, `{source_schema}`, `{source_table}` too); default
    /// [`DEFAULT_STAGING_PREFIX`]. `run_{run_id}/chunk_{chunk_id}/` is
    /// appended when the pattern lacks `{run_id}` or `{chunk_id}`, so every
    /// chunk unloads into a prefix of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_pattern: Option<String>,
    /// File format: only `parquet` (the legacy CSV option is refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_format: Option<String>,
    /// Parquet compression: `snappy` (default), `zstd` or `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<String>,
    /// `MAX_FILE_SIZE` of the unload in MiB (1..=5120; default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_file_size_mb: Option<u64>,
    /// `MAX_FILE_SIZE` in bytes (1..=5 GiB), Snowflake's own unit; overrides
    /// `max_file_size_mb` (tests use a few KB to get several files per chunk).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_file_size: Option<u64>,
    /// Delete each file once its rows are committed (default false: files
    /// stay until the bucket's lifecycle expiry, so a failed run can be
    /// loaded again with `--reuse-unload`).
    #[serde(default)]
    pub cleanup_after_load: bool,
}

/// Whether a stage path may carry `c` unquoted after `@stage/`.
pub fn is_stage_path_character(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | '$' | '=')
}

/// A Snowflake name as one part of a stage path: ASCII letters, digits and
/// `_` as they are, every other byte of its UTF-8 as `-` and two upper-case
/// hex digits (`Sales Ops` → `Sales-20Ops`, `a-b` → `a-2Db`). Injective, so
/// two tables never share a path; plain upper-case names are unchanged.
pub fn stage_path_part(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' {
            out.push(b as char);
        } else {
            out.push_str(&format!("-{b:02X}"));
        }
    }
    out
}

/// The default `staging.prefix_pattern`.
pub const DEFAULT_STAGING_PREFIX: &str = "{database}/{schema}/{table}/run_{run_id}/chunk_{chunk_id}/";

impl StagingSettings {
    /// The chunk's path below the stage: the pattern with its placeholders
    /// replaced, ending in `/`. Database, schema and table names go in
    /// through [`stage_path_part`], so any Snowflake name (spaces, quotes,
    /// `/`, non-ASCII) gives a path a stage can carry unquoted.
    pub fn chunk_prefix(&self, database: &str, schema: &str, table: &str, run_id: uuid::Uuid, chunk_id: i32) -> String {
        let (database, schema, table) = (&stage_path_part(database), &stage_path_part(schema), &stage_path_part(table));
        let mut pattern = self.prefix_pattern.clone().unwrap_or_else(|| DEFAULT_STAGING_PREFIX.to_string());
        if !pattern.ends_with('/') {
            pattern.push('/');
        }
        if !pattern.contains("{run_id}") || !pattern.contains("{chunk_id}") {
            pattern.push_str("run_{run_id}/chunk_{chunk_id}/");
        }
        pattern
            .replace("{source_database}", database)
            .replace("{source_schema}", schema)
            .replace("{source_table}", table)
            .replace("{database}", database)
            .replace("{schema}", schema)
            .replace("{table}", table)
            .replace("{run_id}", &run_id.to_string())
            .replace("{chunk_id}", &chunk_id.to_string())
    }

    /// The stage's URL: `s3://<bucket>/<stage_prefix>`.
    pub fn stage_url(&self) -> String {
        let prefix = self.stage_prefix.as_deref().unwrap_or("unload/");
        let prefix = if prefix.is_empty() || prefix.ends_with('/') { prefix.to_string() } else { format!("{prefix}/") };
        format!("s3://{}/{prefix}", self.bucket)
    }

    /// `MAX_FILE_SIZE` in bytes.
    pub fn max_file_size_bytes(&self) -> u64 {
        self.max_file_size.unwrap_or_else(|| self.max_file_size_mb.unwrap_or(100) * 1024 * 1024)
    }

    /// The compression keyword of the unload's `FILE_FORMAT` (`SNAPPY`, `ZSTD`, `NONE`).
    pub fn compression_keyword(&self) -> String {
        self.compression.as_deref().unwrap_or("snappy").to_ascii_uppercase()
    }

    /// Every problem of the section, each a sentence naming the key.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let object_name = |s: &str| !s.is_empty() && s.split('.').all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$'));
        if !object_name(&self.stage) {
            out.push(format!("staging.stage '{}' is not a Snowflake object name (letters, digits, _ and $, optionally qualified as DB.SCHEMA.STAGE)", self.stage));
        }
        if let Some(i) = &self.storage_integration {
            if !object_name(i) || i.contains('.') {
                out.push(format!("staging.storage_integration '{i}' is not a Snowflake identifier (letters, digits, _ and $)"));
            }
        }
        let bucket_ok = (3..=63).contains(&self.bucket.len())
            && self.bucket.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
        if !bucket_ok {
            out.push(format!("staging.bucket '{}' is not an S3 bucket name (3 to 63 lower-case letters, digits, '-' and '.'; no s3:// prefix)", self.bucket));
        }
        if let Some(p) = &self.stage_prefix {
            if p.starts_with('/') || p.contains('\'') || p.split('/').any(|part| part == ".." || part == ".") {
                out.push(format!("staging.stage_prefix '{p}' must be a key prefix in the bucket (no leading '/', no '.' or '..' parts, no quotes)"));
            }
        }
        if let Some(e) = &self.endpoint {
            if !(e.starts_with("http://") || e.starts_with("https://")) {
                out.push(format!("staging.endpoint '{e}' must be a URL starting with http:// or https://"));
            }
        }
        if let Some(p) = &self.prefix_pattern {
            let mut rest = p.as_str();
            while let Some(open) = rest.find('{') {
                let Some(close) = rest[open..].find('}') else {
                    out.push(format!("staging.prefix_pattern '{p}' has an unclosed '{{'"));
                    break;
                };
                let name = &rest[open + 1..open + close];
                if !matches!(name, "database" | "schema" | "table" | "run_id" | "chunk_id" | "source_database" | "source_schema" | "source_table") {
                    out.push(format!("staging.prefix_pattern '{p}' has an unknown placeholder {{{name}}} (known: database, schema, table, run_id, chunk_id)"));
                }
                rest = &rest[open + close + 1..];
            }
            if p.starts_with('/') || p.split('/').any(|part| part == ".." || part == ".") || p.contains('\'') {
                out.push(format!("staging.prefix_pattern '{p}' must be a relative path below the stage (no leading '/', no '.' or '..' parts, no quotes)"));
            }
            // The text around the placeholders goes into the path as written
            // (the names in the placeholders are escaped: stage_path_part).
            let mut literal = String::new();
            let mut rest = p.as_str();
            while let Some(open) = rest.find('{') {
                literal.push_str(&rest[..open]);
                rest = rest[open..].find('}').map_or("", |close| &rest[open + close + 1..]);
            }
            literal.push_str(rest);
            if let Some(c) = literal.chars().find(|c| !is_stage_path_character(*c) && *c != '\'') {
                out.push(format!(
                    "staging.prefix_pattern '{p}' holds '{c}', which a stage path cannot carry unquoted (letters, digits, '_', '-', '.', '/', '$', '=' only)"
                ));
            }
        }
        if let Some(f) = &self.file_format {
            if !f.eq_ignore_ascii_case("parquet") {
                out.push(format!("staging.file_format '{f}' is not supported: thaw unloads Parquet only (remove the key or set \"parquet\")"));
            }
        }
        if let Some(c) = &self.compression {
            if !["snappy", "zstd", "none"].contains(&c.to_ascii_lowercase().as_str()) {
                out.push(format!("staging.compression '{c}' is not one of snappy, zstd, none"));
            }
        }
        if let Some(m) = self.max_file_size_mb {
            if !(1..=5120).contains(&m) {
                out.push(format!("staging.max_file_size_mb {m} is outside 1..=5120 (Snowflake's limit for S3 is 5 GiB)"));
            }
        }
        if let Some(b) = self.max_file_size {
            if !(1..=5 * 1024 * 1024 * 1024).contains(&b) {
                out.push(format!("staging.max_file_size {b} is outside 1..=5368709120 bytes (Snowflake's limit for S3 is 5 GiB)"));
            }
        }
        out
    }
}

/// `schema_evolution`: how plan treats a source column without a target
/// column (docs/sync.md §3.6). When the key is absent, a column that a
/// previous run of the table already saw is skipped with a warning (the
/// legacy behaviour) and a column that appeared since is an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SchemaEvolution {
    /// `add_columns`: add the column to the target (`ALTER TABLE … ADD
    /// COLUMN`, natural type mapping) and copy it.
    AddColumns,
    /// `error`: every source column without a target column (and not in
    /// `exclude_columns`) is a `SchemaMismatch` error giving the DDL to run.
    Error,
}

fn yes() -> bool {
    true
}

/// A group of tables from one Snowflake schema into one PostgreSQL schema.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Name used on the command line (`--source`) and in status rows.
    pub source_name: String,
    /// Copied only when true (default true).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Snowflake database.
    pub source_sf_database: String,
    /// Snowflake schema.
    pub source_sf_schema: String,
    /// PostgreSQL database.
    pub target_pg_database: String,
    /// PostgreSQL schema.
    pub target_pg_schema: String,
    /// Tables of this source.
    pub tables: Vec<TableConfig>,
    /// Default `source_mode` of the source's tables (additive; default direct).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_mode: Option<SourceMode>,
}

/// The whole `config.json`.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Snowflake connection (required by the commands that copy: see [`Purpose`]).
    #[serde(default)]
    pub snowflake: SnowflakeSettings,
    /// PostgreSQL connection.
    pub postgres: PostgresSettings,
    /// Default chunks copied concurrently per table (default 4).
    #[serde(default)]
    pub parallel_threads: Option<usize>,
    /// Default target rows per chunk (default 100 000).
    #[serde(default)]
    pub batch_size: Option<u64>,
    /// Attempts per chunk for transient errors (default 3).
    #[serde(default)]
    pub max_retry_attempts: Option<u32>,
    /// Seconds a chunk keeps retrying retryable errors (connection lost,
    /// server restarting, serialization failure) before it fails, counted
    /// from its first failure; default 120 (additive; see
    /// [`crate::sync::retry::RetryPolicy`]).
    #[serde(default)]
    pub retry_budget_seconds: Option<u64>,
    /// Legacy Lambda setting, accepted and ignored (thaw's Lambdas check time per chunk).
    #[serde(default)]
    pub lambda_timeout_buffer_seconds: Option<u64>,
    /// Legacy global flag, accepted and ignored (only the per-table flag counts, as in the legacy tool).
    #[serde(default)]
    pub insert_only_mode: Option<bool>,
    /// Tables copied concurrently across the run (default 2).
    #[serde(default)]
    pub max_parallel_tables: Option<usize>,
    /// Memory budget per chunk in bytes (rows × estimated row width); default 256 MiB.
    #[serde(default)]
    pub chunk_byte_budget: Option<u64>,
    /// Default of the tables' `create_tables` (additive; default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_tables: Option<bool>,
    /// Default of the tables' `schema_evolution` (additive; absent = legacy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_evolution: Option<SchemaEvolution>,
    /// Conflict detection settings (absent: conflicts are not run).
    #[serde(default)]
    pub conflicts: Option<ConflictSettings>,
    /// Sources to copy (required by the commands that copy: see [`Purpose`]).
    #[serde(default)]
    pub sources: Vec<SourceConfig>,
    /// Where staged tables' Parquet files go (needed when any table's
    /// `source_mode` is `staged`; docs/sync.md §13).
    #[serde(default, alias = "s3_staging", skip_serializing_if = "Option::is_none")]
    pub staging: Option<StagingSettings>,
    /// Reconcile settings (absent: the defaults).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconcile: Option<ReconcileSettings>,
}

/// The `reconcile` section (docs/reconcile.md §4.2).
#[derive(Debug, Clone, Deserialize, Serialize, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ReconcileSettings {
    /// Default of the tables' `row_hashes`: keep each row's reconcile hash
    /// in a side table written at load time, so reconcile reads it instead
    /// of hashing the target rows in SQL. Default false.
    #[serde(default)]
    pub row_hashes: bool,
}

/// What a configuration is loaded for: each command validates only the
/// sections it uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Everything (`thaw run`, `thaw validate`, the Lambdas): `snowflake`,
    /// `postgres`, `sources`, and `conflicts` when present.
    Sync,
    /// Conflict detection only (`thaw conflicts`): `postgres` and a
    /// `conflicts` section; `snowflake` and `sources` may be absent.
    Conflicts,
}

/// Settings for conflict detection (`conflicts` in config.json; additive).
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ConflictSettings {
    /// PostgreSQL database holding the analytics mirror and the conflict schema.
    pub database: String,
    /// Schema of the synced analytics tables (default `analytics`).
    #[serde(default)]
    pub analytics_schema: Option<String>,
    /// Schema of the conflict tables (default `conflict`).
    #[serde(default)]
    pub conflict_schema: Option<String>,
    /// IANA time zone in which rules, VisitDate and "today" are evaluated (default `America/New_York`).
    #[serde(default)]
    pub time_zone: Option<String>,
    /// Override "today" (YYYY-MM-DD) for reproducible runs and tests.
    #[serde(default)]
    pub today: Option<String>,
    /// `fixed` (default: call-out → call-in → patient address on both sides) or `legacy` (\[SF\]'s asymmetric order).
    #[serde(default)]
    pub gps_priority: Option<GpsPriority>,
}

/// Default rows per chunk when neither the table nor the run sets one.
pub const DEFAULT_BATCH_SIZE: u64 = 100_000;
/// Default concurrent chunks per table.
pub const DEFAULT_PARALLEL_THREADS: usize = 4;
/// Default per-chunk memory budget: 256 MiB.
pub const DEFAULT_CHUNK_BYTE_BUDGET: u64 = 256 * 1024 * 1024;

impl Config {
    /// Whether `table` keeps row hashes (docs/reconcile.md §4.2): its own
    /// `row_hashes`, else `reconcile.row_hashes`; never without
    /// `uniqueness_columns` (a row hash is kept per key).
    pub fn row_hashes(&self, table: &TableConfig) -> bool {
        !table.uniqueness_columns.is_empty() && table.row_hashes.unwrap_or_else(|| self.reconcile.as_ref().is_some_and(|r| r.row_hashes))
    }

    /// Load a config file: expand `${VAR}`, parse strictly, validate.
    ///
    /// Errors are [`crate::error::ErrorKind::ConfigInvalid`] and name the file, the JSON
    /// path or line, and what to change.
    pub fn load(path: &Path) -> Result<Config> {
        Self::load_for(path, Purpose::Sync)
    }

    /// [`Config::load`] validating only what `purpose` needs.
    pub fn load_for(path: &Path, purpose: Purpose) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::config(format!("cannot read config file {}: {e}. Check the path given to --config.", path.display()))
        })?;
        Self::from_text_for(&text, &path.display().to_string(), &|k| std::env::var(k).ok(), purpose)
    }

    /// Parse config text (see [`Config::load`]); `origin` names it in errors and
    /// `env` looks variables up.
    pub fn from_text(text: &str, origin: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Config> {
        Self::from_text_for(text, origin, env, Purpose::Sync)
    }

    /// [`Config::from_text`] validating only what `purpose` needs.
    pub fn from_text_for(text: &str, origin: &str, env: &dyn Fn(&str) -> Option<String>, purpose: Purpose) -> Result<Config> {
        let expanded = expand_env(text, env).map_err(|e| e.context(format!("config {origin}")))?;
        if expanded.trim().is_empty() {
            return Err(Error::config(format!(
                "config {origin} is empty; it must hold one JSON object with at least \"postgres\" (and \"snowflake\" and \"sources\" to copy), see examples/config.json"
            )));
        }
        let value: serde_json::Value = serde_json::from_str(&expanded).map_err(|e| {
            Error::config(format!(
                "config {origin} is not valid JSON at line {}, column {}: {e}{}. Fix the syntax there.",
                e.line(),
                e.column(),
                expanded_on_line(text, e.line(), env)
            ))
        })?;
        if !value.is_object() {
            return Err(Error::config(format!(
                "config {origin} holds {} at the top level; it must hold one JSON object ({{\"snowflake\": …, \"postgres\": …, \"sources\": […]}}), see examples/config.json",
                json_kind(&value)
            )));
        }
        check_unknown_keys(&value, origin)?;
        let config: Config = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            let at = if path == "." { "the top level".to_string() } else { path };
            Error::config(format!(
                "config {origin}: {at} has a wrong value: {}. See examples/config.json and docs/sync.md §1 for the expected layout.",
                plain_serde_message(&e.inner().to_string())
            ))
        })?;
        config.validate_for(purpose).map_err(|e| e.context(format!("config {origin}")))?;
        Ok(config)
    }

    /// Check types, ranges and combinations that need no database.
    pub fn validate(&self) -> Result<()> {
        self.validate_for(Purpose::Sync)
    }

    /// [`Config::validate`] for the sections `purpose` uses.
    pub fn validate_for(&self, purpose: Purpose) -> Result<()> {
        let mut problems = Vec::new();
        if purpose == Purpose::Conflicts {
            match &self.conflicts {
                None => problems.push("a 'conflicts' section is required for conflict detection (at least {\"database\": \"...\"})".to_string()),
                Some(c) if c.database.trim().is_empty() => problems.push("conflicts.database is empty".to_string()),
                Some(_) => {}
            }
        }
        if purpose == Purpose::Sync && self.snowflake.account.trim().is_empty() {
            problems.push("snowflake.account is empty".to_string());
        }
        if purpose == Purpose::Sync && self.snowflake.rsa_key.is_none() && self.snowflake.password.is_none() {
            problems.push("snowflake needs rsa_key (key-pair auth) or password".to_string());
        }
        if self.postgres.host.trim().is_empty() {
            problems.push("postgres.host is empty (the PostgreSQL server's host name or IP address)".to_string());
        }
        if self.postgres.user.trim().is_empty() {
            problems.push("postgres.user is empty (the PostgreSQL login role)".to_string());
        }
        if let Err(e) = self.postgres.tls_mode() {
            problems.push(e.message);
        }
        if purpose == Purpose::Sync && self.snowflake.user.trim().is_empty() {
            problems.push("snowflake.user is empty (the Snowflake login name)".to_string());
        }
        if let (Purpose::Sync, Err(e)) = (purpose, self.snowflake.endpoint_address()) {
            problems.push(e.message);
        }
        if purpose == Purpose::Sync && self.snowflake.query_timeout_seconds == Some(0) {
            problems.push("snowflake.query_timeout_seconds must be at least 1 (seconds per request; leave it out for 600)".to_string());
        }
        if let Some(0) = self.parallel_threads {
            problems.push("parallel_threads must be at least 1".to_string());
        }
        if let Some(b) = self.snowflake.download_byte_budget {
            if b < 1024 * 1024 {
                problems.push(format!("snowflake.download_byte_budget {b} is below the minimum of 1048576 bytes (1 MiB)"));
            }
        }
        if let Some(b) = self.batch_size {
            if b < 100 {
                problems.push(format!("batch_size {b} is below the minimum of 100 rows"));
            }
        }
        if let Some(0) = self.max_parallel_tables {
            problems.push("max_parallel_tables must be at least 1".to_string());
        }
        if let Some(0) = self.chunk_byte_budget {
            problems.push("chunk_byte_budget must be at least 1 byte (it is the memory budget of one chunk, default 256 MiB)".to_string());
        }
        if purpose == Purpose::Sync && self.sources.is_empty() {
            problems.push("sources is empty: nothing to copy".to_string());
        }
        let mut names = std::collections::BTreeSet::new();
        // Across sources too: one target table written by two table entries
        // (or one Snowflake table copied twice) cannot be planned, loaded or
        // reconciled as one table (status rows are keyed by the Snowflake table).
        let mut written: std::collections::BTreeMap<(String, String, String), String> = std::collections::BTreeMap::new();
        let mut read: std::collections::BTreeMap<(String, String, String), String> = std::collections::BTreeMap::new();
        for (si, s) in self.sources.iter().enumerate() {
            for (ti, t) in s.tables.iter().enumerate().filter(|(_, t)| s.enabled && t.enabled) {
                let at = format!("sources[{si}] ('{}').tables[{ti}] ('{}')", s.source_name, t.source);
                let target = (s.target_pg_database.clone(), s.target_pg_schema.clone(), t.target.clone());
                if let Some(first) = written.get(&target).filter(|first| !first.starts_with(&format!("sources[{si}] "))) {
                    problems.push(format!("{at}: target {}.{} is also written by {first}; each PostgreSQL table can have one enabled source table", target.1, target.2));
                }
                written.entry(target).or_insert_with(|| at.clone());
                let source = (s.source_sf_database.clone(), s.source_sf_schema.clone(), t.source.clone());
                if let Some(first) = read.get(&source) {
                    problems.push(format!("{at}: Snowflake table {}.{}.{} is also copied by {first}; copy each table once per configuration", source.0, source.1, source.2));
                }
                read.entry(source).or_insert(at);
            }
        }
        for (si, s) in self.sources.iter().enumerate() {
            if !names.insert(s.source_name.clone()) {
                problems.push(format!("sources[{si}].source_name '{}' is used twice", s.source_name));
            }
            if purpose == Purpose::Sync && s.enabled && s.tables.iter().any(|t| t.enabled) && s.target_pg_database != self.status_database() {
                problems.push(format!(
                    "sources[{si}] ('{}'): target_pg_database '{}' differs from the status database '{}' (postgres.status_database, default: the first source's target_pg_database); a chunk's rows and its status commit in one transaction, so they must be the same database",
                    s.source_name,
                    s.target_pg_database,
                    self.status_database()
                ));
            }
            let mut targets = std::collections::BTreeSet::new();
            for (ti, t) in s.tables.iter().enumerate() {
                let at = format!("sources[{si}] ('{}').tables[{ti}] ('{}')", s.source_name, t.source);
                if t.enabled && !targets.insert(t.target.clone()) {
                    problems.push(format!("{at}: target '{}' is written by two enabled tables", t.target));
                }
                if t.chunking_strategy.is_some_and(|c| c != ChunkingStrategy::Single) && t.chunking_columns.is_empty() {
                    problems.push(format!("{at}: chunking_strategy needs a chunking column; add chunking_columns and chunking_column_types"));
                }
                if t.chunking_columns.len() != t.chunking_column_types.len() {
                    problems.push(format!(
                        "{at}: chunking_columns has {} entries but chunking_column_types has {}; give one type per column",
                        t.chunking_columns.len(),
                        t.chunking_column_types.len()
                    ));
                }
                if t.source_watermark.is_some() != t.target_watermark.is_some() {
                    problems.push(format!("{at}: source_watermark and target_watermark must be given together"));
                }
                if t.insert_only_mode && t.uniqueness_columns.is_empty() {
                    problems.push(format!("{at}: insert_only_mode needs uniqueness_columns to recognise existing rows"));
                }
                if t.propagate_deletes && t.uniqueness_columns.is_empty() {
                    problems.push(format!("{at}: propagate_deletes needs uniqueness_columns to identify deleted rows"));
                }
                if t.row_hashes == Some(true) && t.uniqueness_columns.is_empty() {
                    problems.push(format!("{at}: row_hashes needs uniqueness_columns (a row hash is kept per key, docs/reconcile.md §4.2)"));
                }
                if let Some(0) = t.parallel_threads {
                    problems.push(format!("{at}: parallel_threads must be at least 1"));
                }
                if let Some(b) = t.batch_size {
                    if b < 100 {
                        problems.push(format!("{at}: batch_size {b} is below the minimum of 100 rows"));
                    }
                }
                if let Some(0) = t.estimated_row_bytes {
                    problems.push(format!("{at}: estimated_row_bytes must be at least 1 (bytes per row; leave it out to estimate from the source types)"));
                }
                if let Some(f) = &t.source_filter {
                    if let Err(e) = check_filter(f) {
                        problems.push(format!("{at}: source_filter {e}"));
                    }
                }
            }
        }
        let staged: Vec<String> = self
            .sources
            .iter()
            .flat_map(|s| s.tables.iter().filter(|t| t.enabled && self.source_mode(s, t) == SourceMode::Staged).map(move |t| format!("{}.{}", s.source_name, t.source)))
            .collect();
        match &self.staging {
            Some(staging) => problems.extend(staging.problems()),
            None if !staged.is_empty() => problems.push(format!(
                "table(s) {} have source_mode \"staged\" but there is no 'staging' section (at least {{\"stage\": \"DB.SCHEMA.STAGE\", \"bucket\": \"...\"}}; docs/sync.md §13)",
                staged.join(", ")
            )),
            None => {}
        }
        if let Some(c) = &self.conflicts {
            if let Some(tz) = &c.time_zone {
                if tz.parse::<chrono_tz::Tz>().is_err() {
                    problems.push(format!("conflicts.time_zone '{tz}' is not an IANA time zone (e.g. America/New_York)"));
                }
            }
            if let Some(d) = &c.today {
                if chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").is_err() {
                    problems.push(format!("conflicts.today '{d}' is not a date in YYYY-MM-DD form"));
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::config(format!("{} problem(s): {}.", problems.len(), problems.join("; "))))
        }
    }

    /// MD5 of the configuration without secrets and without connection
    /// endpoints, hex-encoded. A rotated password or a moved proxy keeps the hash.
    pub fn config_hash(&self) -> String {
        let mut redacted = self.clone();
        redacted.snowflake.password = None;
        redacted.snowflake.rsa_key = None;
        redacted.snowflake.endpoint = None;
        redacted.snowflake.ca_file = None;
        redacted.postgres.password = None;
        redacted.postgres.host = String::new();
        redacted.postgres.port = None;
        let text = serde_json::to_string(&redacted).expect("config serialises");
        hex::encode(md5_digest(text.as_bytes()))
    }

    /// Rows per chunk for `table`: its own `batch_size`, else the run's, else 100 000.
    pub fn batch_size(&self, table: &TableConfig) -> u64 {
        table.batch_size.or(self.batch_size).unwrap_or(DEFAULT_BATCH_SIZE)
    }

    /// Concurrent chunks for `table`.
    pub fn parallel_threads(&self, table: &TableConfig) -> usize {
        table.parallel_threads.or(self.parallel_threads).unwrap_or(DEFAULT_PARALLEL_THREADS)
    }

    /// Whether plan creates `table`'s target when it is missing: the table's
    /// `create_tables`, else the top-level one, else false.
    pub fn create_tables(&self, table: &TableConfig) -> bool {
        table.create_tables.or(self.create_tables).unwrap_or(false)
    }

    /// `table`'s `schema_evolution`, else the top-level one; `None` = legacy.
    pub fn schema_evolution(&self, table: &TableConfig) -> Option<SchemaEvolution> {
        table.schema_evolution.or(self.schema_evolution)
    }

    /// `table`'s source mode: its own `source_mode`, else its source's, else direct.
    pub fn source_mode(&self, source: &SourceConfig, table: &TableConfig) -> SourceMode {
        table.source_mode.or(source.source_mode).unwrap_or_default()
    }

    /// The per-chunk memory budget in bytes.
    pub fn chunk_byte_budget(&self) -> u64 {
        self.chunk_byte_budget.unwrap_or(DEFAULT_CHUNK_BYTE_BUDGET)
    }

    /// The database holding `migration_status`.
    pub fn status_database(&self) -> &str {
        self.postgres
            .status_database
            .as_deref()
            .or_else(|| self.sources.first().map(|s| s.target_pg_database.as_str()))
            .unwrap_or("postgres")
    }

    /// Find an enabled source by name.
    pub fn source(&self, name: &str) -> Result<&SourceConfig> {
        self.sources.iter().find(|s| s.source_name == name).ok_or_else(|| {
            let known: Vec<_> = self.sources.iter().map(|s| s.source_name.as_str()).collect();
            Error::config(format!("source '{name}' is not in the configuration (known: {})", known.join(", ")))
        })
    }
}

fn md5_digest(bytes: &[u8]) -> [u8; 16] {
    use md5::{Digest, Md5};
    Md5::digest(bytes).into()
}

/// Check that a `source_filter` is a single boolean expression: it parses
/// (the `sqlparser` crate, Snowflake dialect) as exactly one SQL expression
/// with nothing after it — no `;`, no second statement or expression, no
/// comment (`--`, `//`, `/* */`, which could hide text), balanced quotes and
/// parentheses. The text itself is sent to Snowflake as written.
///
/// Returns a description of the first problem found (what and where), to
/// follow the name of what is checked in an error message.
pub fn check_filter(filter: &str) -> std::result::Result<(), String> {
    parse_filter(filter).map(|_| ())
}

/// [`check_filter`]'s parse: the filter as one `sqlparser` expression.
///
/// Errors: as [`check_filter`].
pub fn parse_filter(filter: &str) -> std::result::Result<sqlparser::ast::Expr, String> {
    use sqlparser::dialect::SnowflakeDialect;
    use sqlparser::parser::Parser;
    use sqlparser::tokenizer::{Token, Tokenizer, Whitespace};

    if filter.trim().is_empty() {
        return Err("is empty; give a boolean expression such as \"VisitDate\" >= '2024-01-01'".into());
    }
    let dialect = SnowflakeDialect {};
    let tokens = Tokenizer::new(&dialect, filter).tokenize_with_location().map_err(|e| format!("cannot be read as SQL: {e}"))?;
    for t in &tokens {
        match &t.token {
            Token::Whitespace(Whitespace::SingleLineComment { .. } | Whitespace::MultiLineComment(_)) => {
                return Err(format!("contains a comment ('--', '//' or '/* */'){}; remove it", t.span.start));
            }
            Token::SemiColon => return Err("contains ';': it must be one boolean expression, not statements".into()),
            _ => {}
        }
    }
    let mut parser = Parser::new(&dialect).with_tokens_with_locations(tokens);
    let expr = parser.parse_expr().map_err(|e| format!("is not one SQL expression: {e}"))?;
    let next = parser.peek_token();
    if next.token != Token::EOF {
        return Err(format!(
            "has text after the expression{} ('{}'); give exactly one boolean expression",
            next.span.start, next.token
        ));
    }
    Ok(expr)
}

/// Replace `${VAR}` and `${VAR:-default}` in `text` using `env`; the
/// default applies when `VAR` is unset or empty, as in the shell.
///
/// Values are inserted JSON-escaped (so a multi-line PEM key works). Every
/// missing variable is listed in a single [`crate::error::ErrorKind::ConfigInvalid`] error.
pub fn expand_env(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut missing: Vec<String> = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err(Error::config("unterminated '${' (missing '}')".to_string()));
        };
        let inner = &after[..end];
        let (name, default) = match inner.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (inner, None),
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(Error::config(format!("'${{{inner}}}' is not a valid variable reference; use ${{NAME}} or ${{NAME:-default}}")));
        }
        // As in the shell, `${NAME:-default}` takes the default when NAME is
        // unset *or empty* (an exported `NAME=` is common in scripts and CI).
        match env(name).filter(|v| default.is_none() || !v.is_empty()).or_else(|| default.map(str::to_string)) {
            Some(v) => {
                let quoted = serde_json::to_string(&v).expect("string serialises");
                out.push_str(&quoted[1..quoted.len() - 1]);
            }
            None => {
                if !missing.contains(&name.to_string()) {
                    missing.push(name.to_string());
                }
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    if missing.is_empty() {
        Ok(out)
    } else {
        Err(Error::config(format!(
            "environment variable(s) not set: {}. Export them or give a default with ${{NAME:-default}}.",
            missing.join(", ")
        )))
    }
}

/// For a JSON syntax error on `line` (1-based) of the unexpanded `text`:
/// the `${VAR}` references on that line and which of them are empty or
/// unset, since the error is in the text after expansion (e.g. `"port":
/// ${PG_PORT}` with `PG_PORT` empty). Values are never shown (they may be
/// secrets). Empty when the line holds no reference.
fn expanded_on_line(text: &str, line: usize, env: &dyn Fn(&str) -> Option<String>) -> String {
    let Some(source_line) = text.lines().nth(line.saturating_sub(1)) else {
        return String::new();
    };
    let mut references = Vec::new();
    let mut rest = source_line;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { break };
        let inner = &after[..end];
        let (name, default) = match inner.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (inner, None),
        };
        let state = match (env(name).filter(|v| !v.is_empty()), default) {
            (Some(_), _) => "set",
            (None, Some(d)) if !d.is_empty() => "from its default",
            _ => "empty",
        };
        references.push(format!("${{{inner}}} ({state})"));
        rest = &after[end + 1..];
    }
    if references.is_empty() {
        String::new()
    } else {
        format!(" (after expanding {} on that line of the file: check the variable's value)", references.join(", "))
    }
}

/// What a JSON value is, for messages: "an array", "null", ...
fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// A serde message in an operator's words: Rust type names (`u64`,
/// `usize`, ...) become what the key takes.
fn plain_serde_message(message: &str) -> String {
    let mut out = message.to_string();
    for (rust, plain) in [
        ("expected u16", "expected a whole number from 0 to 65535"),
        ("expected u32", "expected a whole number of at least 0"),
        ("expected u64", "expected a whole number of at least 0"),
        ("expected usize", "expected a whole number of at least 0"),
        ("expected i64", "expected a whole number"),
        ("expected a sequence", "expected a list [...]"),
        ("expected a map", "expected an object {...}"),
    ] {
        out = out.replace(rust, plain);
    }
    if let Some(at) = out.find("expected struct ") {
        out.truncate(at);
        out.push_str("expected an object {...}");
    }
    out
}

/// Known keys per object path, for "did you mean" suggestions on unknown keys.
fn known_keys(path: &str) -> &'static [&'static str] {
    match path {
        "" => &[
            "snowflake", "postgres", "parallel_threads", "batch_size", "max_retry_attempts", "retry_budget_seconds",
            "lambda_timeout_buffer_seconds", "insert_only_mode", "max_parallel_tables", "chunk_byte_budget",
            "create_tables", "schema_evolution", "conflicts", "sources",
            "staging", "s3_staging", "reconcile",
        ],
        "reconcile" => &["row_hashes"],
        "snowflake" => &["account", "user", "warehouse", "role", "rsa_key", "password", "endpoint", "ca_file", "query_timeout_seconds", "session_parameters", "download_byte_budget"],
        "postgres" => &["host", "user", "password", "port", "status_database", "sslmode", "ca_file"],
        "conflicts" => &["database", "analytics_schema", "conflict_schema", "time_zone", "today", "gps_priority"],
        "source" => &["source_name", "enabled", "source_sf_database", "source_sf_schema", "target_pg_database", "target_pg_schema", "tables", "source_mode"],
        "staging" => &[
            "stage", "stage_name", "storage_integration", "bucket", "stage_prefix", "region", "endpoint", "prefix_pattern", "file_format",
            "compression", "max_file_size_mb", "max_file_size", "cleanup_after_load",
        ],
        "table" => &[
            "enabled", "source", "target", "source_filter", "chunking_columns", "chunking_column_types",
            "uniqueness_columns", "source_watermark", "target_watermark", "truncate_onstart", "insert_only_mode",
            "disable_index", "parallel_threads", "batch_size", "batch_size_copy_mode", "column_mapping",
            "sort_columns", "chunking_strategy", "estimated_row_bytes", "propagate_deletes", "exclude_columns",
            "truncate_to_date", "create_tables", "schema_evolution", "source_mode", "row_hashes",
        ],
        _ => &[],
    }
}

fn check_unknown_keys(value: &serde_json::Value, origin: &str) -> Result<()> {
    let mut problems = Vec::new();
    let mut check = |obj: &serde_json::Value, kind: &str, at: &str| {
        if let Some(map) = obj.as_object() {
            for key in map.keys() {
                let known = known_keys(kind);
                if !known.contains(&key.as_str()) {
                    let suggestion = known
                        .iter()
                        .map(|k| (edit_distance(k, key), *k))
                        .min()
                        .filter(|(d, _)| *d <= 3)
                        .map(|(_, k)| format!(" (did you mean '{k}'?)"))
                        .unwrap_or_default();
                    problems.push(format!("unknown key '{key}' in {at}{suggestion}"));
                }
            }
        }
    };
    check(value, "", "the top level");
    for section in ["snowflake", "postgres", "conflicts", "reconcile"] {
        if let Some(v) = value.get(section) {
            check(v, section, section);
        }
    }
    for section in ["staging", "s3_staging"] {
        if let Some(v) = value.get(section) {
            check(v, "staging", section);
        }
    }
    if let Some(sources) = value.get("sources").and_then(|s| s.as_array()) {
        for (si, s) in sources.iter().enumerate() {
            check(s, "source", &format!("sources[{si}]"));
            if let Some(tables) = s.get("tables").and_then(|t| t.as_array()) {
                for (ti, t) in tables.iter().enumerate() {
                    check(t, "table", &format!("sources[{si}].tables[{ti}]"));
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::config(format!("config {origin}: {}.", problems.join("; "))))
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_must_be_one_expression() {
        assert!(check_filter(r#""Is Active" = TRUE AND "Source System" = 'hha'"#).is_ok());
        assert!(check_filter("x = 1; DROP TABLE t").is_err());
        assert!(check_filter("x = ';'").is_ok());
        assert!(check_filter("(x = 1").is_err());
        assert!(check_filter("x = 1 -- y").is_err());
    }

    #[test]
    fn filters_accept_the_snowflake_predicates_users_write() {
        for ok in [
            r#""Visit Date" >= '2024-01-01'"#,
            r#""Name" ILIKE 'smith%' AND "Code" NOT LIKE 'X_%'"#,
            r#""Visit Date" BETWEEN '2024-01-01' AND '2024-12-31'"#,
            r#""Deleted At" IS NULL AND "Payer" IS NOT NULL"#,
            r#""Visit Date"::date >= '2024-01-01'::date"#,
            r#"TO_DATE("Created") > DATEADD(day, -30, CURRENT_DATE())"#,
            r#"UPPER(TRIM("Status")) IN ('ACTIVE', 'ON HOLD') OR "Status" IS NULL"#,
            r#"COALESCE("Miles", 0) < 12.5 AND NOT "Is Test""#,
            r#"IFF("Kind" = 'a', 1, 0) = 1"#,
            r#""Is Active""#,
            "x = ';'",
            "note = 'it''s -- not a comment /* nor this */'",
            r#""a;b" = 1"#,
            r#""Provider ID" IN (SELECT "Id" FROM "DB"."S"."PROVIDERS" WHERE "Active")"#,
        ] {
            assert_eq!(check_filter(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn filters_refuse_statements_extra_expressions_and_comments_naming_the_problem() {
        let bad = |text: &str| check_filter(text).expect_err(text);
        assert_eq!(bad("x = 1; DROP TABLE t"), "contains ';': it must be one boolean expression, not statements");
        assert_eq!(bad("x = 1;"), "contains ';': it must be one boolean expression, not statements");
        for comment in ["x = 1 -- y", "x = 1 // y", "x = 1 /* y */", "x /* ; DROP TABLE t */ = 1"] {
            assert!(bad(comment).starts_with("contains a comment ('--', '//' or '/* */') at Line: 1, Column: "), "{comment}: {}", bad(comment));
        }
        assert!(bad("(x = 1").starts_with("is not one SQL expression"), "{}", bad("(x = 1"));
        assert_eq!(bad("x = 1)"), "has text after the expression at Line: 1, Column: 6 (')'); give exactly one boolean expression");
        assert!(bad("x = 1 y = 2").contains("has text after the expression"), "{}", bad("x = 1 y = 2"));
        assert!(bad("x = 1, y = 2").contains("has text after the expression"), "{}", bad("x = 1, y = 2"));
        assert!(bad("x = 'open").starts_with("cannot be read as SQL"), "{}", bad("x = 'open"));
        assert!(bad(r#""open = 1"#).starts_with("cannot be read as SQL"), "{}", bad(r#""open = 1"#));
        assert!(bad("SELECT 1").starts_with("is not one SQL expression") || bad("SELECT 1").contains("text after"), "{}", bad("SELECT 1"));
        assert!(bad("DELETE FROM t").contains("text after") || bad("DELETE FROM t").starts_with("is not one SQL expression"), "{}", bad("DELETE FROM t"));
        assert!(bad("  ").starts_with("is empty"));
    }

    #[test]
    fn a_bad_source_filter_is_a_config_error_naming_the_table() {
        let text = r#"{"snowflake":{"account":"a","user":"u","password":"p"},"postgres":{"host":"h","user":"u"},
            "sources":[{"source_name":"s","source_sf_database":"D","source_sf_schema":"S","target_pg_database":"d","target_pg_schema":"public",
            "tables":[{"source":"T","target":"t","source_filter":"x = 1; DROP TABLE t"}]}]}"#;
        let err = Config::from_text(text, "test", &|_| None).unwrap_err();
        assert!(err.message.contains("sources[0] ('s').tables[0] ('T')"), "{}", err.message);
        assert!(err.message.contains("source_filter contains ';'"), "{}", err.message);
    }

    #[test]
    fn enum_values_are_validated_by_deserialisation_with_their_path() {
        let text = r#"{"snowflake":{"account":"a","user":"u","password":"p"},"postgres":{"host":"h","user":"u"},
          "sources":[{"source_name":"s","source_sf_database":"D","source_sf_schema":"S","target_pg_database":"d",
          "target_pg_schema":"s","tables":[{"source":"T","target":"t","chunking_columns":["a"],"chunking_column_types":["geography"]}]}]}"#;
        let err = Config::from_text(text, "test", &|_| None).unwrap_err();
        assert!(err.message.contains("sources[0].tables[0].chunking_column_types[0]"), "{}", err.message);
        assert!(err.message.contains("chunking column type 'geography' is not known"), "{}", err.message);
        let text = text.replace(r#""chunking_column_types":["geography"]"#, r#""chunking_column_types":["TIMESTAMP_TZ"],"chunking_strategy":"hash""#);
        let err = Config::from_text(&text, "test", &|_| None).unwrap_err();
        assert!(err.message.contains("sources[0].tables[0].chunking_strategy"), "{}", err.message);
        let ok = text.replace(r#""hash""#, r#""keyset""#);
        let config = Config::from_text(&ok, "test", &|_| None).unwrap();
        assert_eq!(config.sources[0].tables[0].chunking_column_types, vec![ChunkKeyType::Temporal]);
        assert_eq!(config.sources[0].tables[0].chunking_strategy, Some(ChunkingStrategy::Keyset));
    }

    #[test]
    fn the_download_byte_budget_defaults_to_64_mib_and_refuses_less_than_1_mib() {
        let text = r#"{"snowflake":{"account":"a","user":"u","password":"p" BUDGET},"postgres":{"host":"h","user":"u"},
          "sources":[{"source_name":"s","source_sf_database":"D","source_sf_schema":"S","target_pg_database":"d",
          "target_pg_schema":"s","tables":[{"source":"T","target":"t"}]}]}"#;
        let config = Config::from_text(&text.replace(" BUDGET", ""), "test", &|_| None).unwrap();
        assert_eq!(config.snowflake.download_byte_budget(), 64 * 1024 * 1024);
        let config = Config::from_text(&text.replace(" BUDGET", r#","download_byte_budget": 8388608"#), "test", &|_| None).unwrap();
        assert_eq!(config.snowflake.download_byte_budget(), 8 * 1024 * 1024);
        let err = Config::from_text(&text.replace(" BUDGET", r#","download_byte_budget": 1000"#), "test", &|_| None).unwrap_err();
        assert_eq!(err.kind, crate::error::ErrorKind::ConfigInvalid);
        assert!(err.message.contains("snowflake.download_byte_budget 1000 is below the minimum of 1048576 bytes (1 MiB)"), "{}", err.message);
    }

    #[test]
    fn row_hashes_default_from_the_reconcile_section_per_table_and_need_keys() {
        let text = r#"{"snowflake":{"account":"a","user":"u","password":"p"},"postgres":{"host":"h","user":"u"}, TOP
          "sources":[{"source_name":"s","source_sf_database":"D","source_sf_schema":"S","target_pg_database":"d",
          "target_pg_schema":"s","tables":[{"source":"T","target":"t","uniqueness_columns":["id"] TABLE},
                                           {"source":"U","target":"u","uniqueness_columns":["id"]}, {"source":"V","target":"v"}]}]}"#;
        let parse = |top: &str, table: &str| Config::from_text(&text.replace("TOP", top).replace("TABLE", table), "test", &|_| None);
        let tables = |c: &Config| c.sources[0].tables.iter().map(|t| c.row_hashes(t)).collect::<Vec<_>>();
        assert_eq!(tables(&parse("", "").unwrap()), [false, false, false], "off by default");
        assert_eq!(tables(&parse(r#""reconcile": {"row_hashes": true},"#, "").unwrap()), [true, true, false], "never without keys");
        assert_eq!(tables(&parse(r#""reconcile": {"row_hashes": true},"#, r#","row_hashes": false"#).unwrap()), [false, true, false]);
        assert_eq!(tables(&parse("", r#","row_hashes": true"#).unwrap()), [true, false, false]);
        let err = parse(r#""reconcile": {"row_hash": true},"#, "").unwrap_err();
        assert!(err.message.contains("unknown key 'row_hash' in reconcile (did you mean 'row_hashes'?)"), "{}", err.message);
        let keyless = text.replace(r#"{"source":"V","target":"v"}"#, r#"{"source":"V","target":"v","row_hashes":true}"#).replace("TOP", "").replace("TABLE", "");
        let err = Config::from_text(&keyless, "test", &|_| None).unwrap_err();
        assert!(err.message.contains("row_hashes needs uniqueness_columns"), "{}", err.message);
    }

    #[test]
    fn grouped_values_is_a_strategy_that_needs_a_chunking_column() {
        let text = r#"{"snowflake":{"account":"a","user":"u","password":"p"},"postgres":{"host":"h","user":"u"},
          "sources":[{"source_name":"s","source_sf_database":"D","source_sf_schema":"S","target_pg_database":"d",
          "target_pg_schema":"s","tables":[{"source":"T","target":"t","chunking_strategy":"grouped_values" COLUMNS}]}]}"#;
        let ok = Config::from_text(&text.replace("COLUMNS", r#","chunking_columns":["ProviderID"],"chunking_column_types":["int"]"#), "test", &|_| None).unwrap();
        assert_eq!(ok.sources[0].tables[0].chunking_strategy, Some(ChunkingStrategy::GroupedValues));
        let err = Config::from_text(&text.replace("COLUMNS", ""), "test", &|_| None).unwrap_err();
        assert!(err.message.contains("tables[0] ('T'): chunking_strategy needs a chunking column"), "{}", err.message);
    }

    #[test]
    fn staged_tables_need_a_valid_staging_section() {
        let text = r#"{"snowflake":{"account":"a","user":"u","password":"p"},"postgres":{"host":"h","user":"u"},
          TOP "sources":[{"source_name":"s","source_sf_database":"D","source_sf_schema":"S","target_pg_database":"d",
          "target_pg_schema":"s", SOURCE "tables":[{"source":"T","target":"t" TABLE}, {"source":"U","target":"u"}]}]}"#;
        let load = |top: &str, source: &str, table: &str| {
            Config::from_text(&text.replace("TOP", top).replace("SOURCE", source).replace("TABLE", table), "test", &|_| None)
        };
        // Default: direct, no staging needed; a table or its source opts in.
        let direct = load("", "", "").unwrap();
        assert_eq!(direct.source_mode(&direct.sources[0], &direct.sources[0].tables[0]), SourceMode::Direct);
        let err = load("", "", r#", "source_mode": "staged""#).unwrap_err();
        assert!(err.message.contains("s.T have source_mode \"staged\" but there is no 'staging' section"), "{}", err.message);
        let staging = r#""staging": {"stage": "DB.PUBLIC.THAW_STAGE", "bucket": "thaw-staging"},"#;
        let per_source = load(staging, r#""source_mode": "staged","#, r#", "source_mode": "direct""#).unwrap();
        let s = &per_source.sources[0];
        assert_eq!((per_source.source_mode(s, &s.tables[0]), per_source.source_mode(s, &s.tables[1])), (SourceMode::Direct, SourceMode::Staged));
        let st = per_source.staging.as_ref().unwrap();
        let run = uuid::Uuid::nil();
        assert_eq!(st.chunk_prefix("D", "S", "T", run, 7), format!("D/S/T/run_{run}/chunk_7/"));
        // Names a stage path cannot carry unquoted are escaped, injectively.
        assert_eq!(st.chunk_prefix("D", "Sales Ops", "Visit/Log-é", run, 0), format!("D/Sales-20Ops/Visit-2FLog-2D-C3-A9/run_{run}/chunk_0/"));
        assert_ne!(stage_path_part("a b"), stage_path_part("a-20b"));
        assert_eq!((st.max_file_size_bytes(), st.compression_keyword()), (100 * 1024 * 1024, "SNAPPY".to_string()));
        assert_eq!(st.stage_url(), "s3://thaw-staging/unload/");
        // The legacy section name and keys (s3copyconfig.json) are accepted;
        // a legacy prefix without run/chunk gets them appended.
        let legacy = load(
            r#""s3_staging": {"stage_name": "CM_S3_STAGE", "bucket": "cm-migration-dev01", "prefix_pattern": "{source_database}/{source_schema}/{source_table}/",
               "file_format": "parquet", "compression": "snappy", "max_file_size_mb": 100, "cleanup_after_load": false},"#,
            "",
            r#", "source_mode": "staged""#,
        )
        .unwrap();
        assert_eq!(legacy.staging.as_ref().unwrap().chunk_prefix("D", "S", "T", run, 0), format!("D/S/T/run_{run}/chunk_0/"));
        // Every problem of the section in one error, naming the key.
        let err = load(
            r#""staging": {"stage": "bad stage", "bucket": "s3://Bucket", "prefix_pattern": "/{db}/x", "file_format": "csv", "compression": "gzip",
               "max_file_size_mb": 0, "endpoint": "localhost:9000", "stage_nme": "x"},"#,
            "",
            "",
        )
        .unwrap_err();
        assert!(err.message.contains("unknown key 'stage_nme' in staging (did you mean 'stage_name'?)"), "{}", err.message);
        let err = load(
            r#""staging": {"stage": "bad stage", "bucket": "s3://Bucket", "prefix_pattern": "/{db}/x", "file_format": "csv", "compression": "gzip",
               "max_file_size_mb": 0, "endpoint": "localhost:9000"},"#,
            "",
            "",
        )
        .unwrap_err();
        for fragment in [
            "staging.stage 'bad stage'",
            "staging.bucket 's3://Bucket'",
            "unknown placeholder {db}",
            "must be a relative path",
            "staging.file_format 'csv'",
            "staging.compression 'gzip'",
            "staging.max_file_size_mb 0",
            "staging.endpoint 'localhost:9000'",
        ] {
            assert!(err.message.contains(fragment), "missing '{fragment}' in: {}", err.message);
        }
        let err = load(r#""staging": {"stage": "S", "bucket": "b", "prefix_pattern": "exports/{table} files/"},"#, "", "").unwrap_err();
        assert!(err.message.contains("staging.prefix_pattern 'exports/{table} files/' holds ' '"), "{}", err.message);
    }

    #[test]
    fn create_tables_and_schema_evolution_are_accepted_top_level_and_per_table() {
        let text = r#"{"snowflake":{"account":"a","user":"u","password":"p"},"postgres":{"host":"h","user":"u"},
          TOP "sources":[{"source_name":"s","source_sf_database":"D","source_sf_schema":"S","target_pg_database":"d",
          "target_pg_schema":"s","tables":[{"source":"T","target":"t" TABLE}]}]}"#;
        let load = |top: &str, table: &str| Config::from_text(&text.replace("TOP", top).replace("TABLE", table), "test", &|_| None);
        let legacy = load("", "").unwrap();
        let t = &legacy.sources[0].tables[0];
        assert!(!legacy.create_tables(t));
        assert_eq!(legacy.schema_evolution(t), None);
        let top = load(r#""create_tables": true, "schema_evolution": "error","#, "").unwrap();
        assert!(top.create_tables(&top.sources[0].tables[0]));
        assert_eq!(top.schema_evolution(&top.sources[0].tables[0]), Some(SchemaEvolution::Error));
        let overridden = load(r#""create_tables": true, "schema_evolution": "error","#, r#", "create_tables": false, "schema_evolution": "add_columns""#).unwrap();
        assert!(!overridden.create_tables(&overridden.sources[0].tables[0]));
        assert_eq!(overridden.schema_evolution(&overridden.sources[0].tables[0]), Some(SchemaEvolution::AddColumns));
        // Absent keys leave config_hash as it was (resumable runs of legacy configs stay resumable).
        assert!(!serde_json::to_string(&legacy).unwrap().contains("create_tables"));
        let err = load("", r#", "schema_evolution": "drop_columns""#).unwrap_err();
        assert!(err.message.contains("sources[0].tables[0].schema_evolution"), "{}", err.message);
    }

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: BTreeMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn expand_env_names_every_missing_variable() {
        let err = expand_env("${A} ${B} ${C:-x} ${A}", &env(&[])).unwrap_err();
        assert_eq!(err.kind, crate::error::ErrorKind::ConfigInvalid);
        assert!(err.message.contains("A, B"), "{}", err.message);
        assert!(!err.message.contains('C'), "{}", err.message);
    }

    #[test]
    fn l25_expand_env_uses_defaults_and_escapes_json() {
        let out = expand_env(r#"{"k": "${K}", "d": "${D:-5432}"}"#, &env(&[("K", "a\"b\nc")])).unwrap();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["k"], "a\"b\nc");
        assert_eq!(v["d"], "5432");
    }

    #[test]
    fn unknown_key_suggests_the_closest_known_one() {
        let text = r#"{"snowflake":{"account":"a","user":"u","password":"p"},"postgres":{"host":"h","user":"u"},
          "sources":[{"source_name":"s","source_sf_database":"D","source_sf_schema":"S","target_pg_database":"d",
          "target_pg_schema":"s","tables":[{"source":"T","target":"t","chunking_colums":[]}]}]}"#;
        let err = Config::from_text(text, "test.json", &env(&[])).unwrap_err();
        assert!(err.message.contains("unknown key 'chunking_colums' in sources[0].tables[0] (did you mean 'chunking_columns'?)"), "{}", err.message);
    }

    #[test]
    fn l15_config_hash_ignores_secrets_and_endpoints() {
        let text = |pw: &str| format!(r#"{{"snowflake":{{"account":"a","user":"u","password":"{pw}"}},"postgres":{{"host":"h","user":"u","password":"{pw}"}},
          "sources":[{{"source_name":"s","source_sf_database":"D","source_sf_schema":"S","target_pg_database":"d",
          "target_pg_schema":"s","tables":[{{"source":"T","target":"t"}}]}}]}}"#);
        let a = Config::from_text(&text("pw-alpha-1"), "a", &env(&[])).unwrap();
        let b = Config::from_text(&text("pw-beta-2"), "b", &env(&[])).unwrap();
        assert_eq!(a.config_hash(), b.config_hash());
        assert!(!format!("{a:?}").contains("pw-alpha-1"));
    }

    #[test]
    fn mismatched_chunking_lists_are_rejected() {
        let text = r#"{"snowflake":{"account":"a","user":"u","password":"p"},"postgres":{"host":"h","user":"u"},
          "sources":[{"source_name":"s","source_sf_database":"D","source_sf_schema":"S","target_pg_database":"d",
          "target_pg_schema":"s","tables":[{"source":"T","target":"t","chunking_columns":["a","b"],"chunking_column_types":["int"]}]}]}"#;
        let err = Config::from_text(text, "c.json", &env(&[])).unwrap_err();
        assert!(err.message.contains("chunking_columns has 2 entries but chunking_column_types has 1"), "{}", err.message);
    }
}
