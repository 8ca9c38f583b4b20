//! The Snowflake side: connecting, running queries, and receiving results as
//! Arrow record batches.
//!
//! thaw talks to Snowflake through the `snowflake-api` crate's HTTP protocol
//! with a reqwest client it builds itself ([`connect`]), so the same code
//! reaches real Snowflake (built-in roots, key-pair auth) and any server that
//! speaks the protocol at a configured endpoint with a configured CA.
//!
//! Small results (catalog reads, aggregates, reconciliation) come from
//! `exec_raw`: every result chunk as a complete Arrow IPC stream, all in
//! memory and out of order. A chunk's rows are streamed instead
//! ([`SnowflakeSource::stream_query`], [`result`]): the inline batch, then
//! the downloaded chunks in order with bounded prefetch, so memory does not
//! grow with the size of a chunk (docs/sync.md §5.6). [`TableSource`] is the
//! seam the sync uses.
//!
//! * [`sql`]: quoting of identifiers and literals (no bind parameters exist).
//! * [`arrow`]: Snowflake's Arrow conventions (scaled integers, timestamp structs), decoded into standard Arrow (docs/sync.md §5.5).
//! * [`predicate`]: a chunk's [`crate::sync::chunk::ChunkSpec`] as Snowflake or PostgreSQL SQL.

pub mod arrow;
pub mod download_budget;
pub mod predicate;
pub mod result;
pub mod sql;
pub mod table;

pub use table::TableSource;
pub mod staged;

use std::time::Duration;

use arrow_array::RecordBatch;
use bytes::Buf;
use futures::stream::BoxStream;
use snowflake_api::{AuthArgs, AuthType, CertificateArgs, PasswordArgs, RawQueryResult, SnowflakeApi, SnowflakeApiBuilder, SnowflakeApiError};

use crate::config::SnowflakeSettings;
use crate::error::{Error, ErrorKind, Result};

/// One Snowflake session. Runs one query at a time; give every concurrent
/// worker its own `SnowflakeSource` (sessions must never be shared across
/// concurrent queries).
pub struct SnowflakeSource {
    api: SnowflakeApi,
    account: String,
    /// The session's HTTP client (result chunks are downloaded with it).
    client: reqwest_middleware::ClientWithMiddleware,
    /// Takes the answer of a streamed query away from `api` ([`result`]).
    capture: result::ResultCapture,
    /// The process's budget for downloaded result chunks, shared with every
    /// session of the same configuration (`snowflake.download_byte_budget`).
    budget: std::sync::Arc<download_budget::DownloadBudget>,
}

/// The rows of a DML/DDL statement, as Snowflake returns them (JSON rows of strings).
pub type JsonRows = Vec<Vec<Option<String>>>;

/// Open a session with `settings`, optionally with a default database and schema.
///
/// Errors: [`ErrorKind::AuthFailed`] for rejected credentials,
/// [`ErrorKind::Unreachable`] when the endpoint cannot be reached,
/// [`ErrorKind::ConfigInvalid`] for an unreadable key or CA file.
pub async fn connect(settings: &SnowflakeSettings, database: Option<&str>, schema: Option<&str>) -> Result<SnowflakeSource> {
    let auth_type = match (&settings.rsa_key, &settings.password) {
        (Some(key), _) => AuthType::Certificate(CertificateArgs { private_key_pem: load_private_key(key.expose())? }),
        (None, Some(pw)) => AuthType::Password(PasswordArgs { password: pw.expose().to_string() }),
        (None, None) => return Err(Error::config("snowflake: neither rsa_key nor password is configured")),
    };
    let auth = AuthArgs {
        account_identifier: settings.account.clone(),
        warehouse: settings.warehouse.clone(),
        database: database.map(str::to_string),
        schema: schema.map(str::to_string),
        username: settings.user.clone(),
        role: settings.role.clone(),
        auth_type,
    };
    let capture = result::ResultCapture::default();
    let client = http_client(settings, &capture)?;
    let api = SnowflakeApiBuilder::new(auth)
        .with_client(client.clone())
        .build()
        .map_err(|e| map_snowflake_error(e, "opening a Snowflake session"))?;
    let budget = download_budget::DownloadBudget::shared(settings.download_byte_budget());
    let source = SnowflakeSource { api, account: settings.account.clone(), client, capture, budget };
    // Log in now so that bad credentials and dead endpoints fail here, not mid-run.
    source.execute("SELECT 1").await.map_err(|e| {
        let hint = login_hint(e.kind);
        Error::new(e.kind, format!("cannot log in to Snowflake account '{}' as user '{}': {}.{hint}", settings.account, settings.user, e.message.trim_end_matches('.')))
    })?;
    for statement in session_parameter_statements(settings)? {
        source.execute(&statement).await.map_err(|e| e.context("setting snowflake.session_parameters"))?;
    }
    Ok(source)
}

/// `ALTER SESSION SET name = value` for each of `snowflake.session_parameters`.
///
/// Errors: [`ErrorKind::ConfigInvalid`] for a name that is not a plain
/// identifier or a value that is not text, a number or a boolean.
fn session_parameter_statements(settings: &SnowflakeSettings) -> Result<Vec<String>> {
    settings
        .session_parameters
        .iter()
        .map(|(name, value)| {
            let plain = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_') && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !plain {
                return Err(Error::config(format!("snowflake.session_parameters: '{name}' is not a session parameter name (letters, digits and _)")));
            }
            let value = match value {
                serde_json::Value::String(text) => sql::literal(text),
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Bool(b) => if *b { "TRUE" } else { "FALSE" }.to_string(),
                other => return Err(Error::config(format!("snowflake.session_parameters.{name}: {other} is not text, a number or a boolean"))),
            };
            Ok(format!("ALTER SESSION SET {name} = {value}"))
        })
        .collect()
}

fn load_private_key(value: &str) -> Result<String> {
    let text = if value.contains("-----BEGIN") || value.contains("\\n") || value.len() > 512 {
        value.replace("\\n", "\n")
    } else {
        std::fs::read_to_string(value)
            .map_err(|e| Error::config(format!("snowflake.rsa_key looks like a file path ({value}) but cannot be read: {e}")))?
    };
    if text.contains("-----BEGIN") {
        Ok(text)
    } else {
        Ok(format!("-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n", text.trim()))
    }
}

fn http_client(settings: &SnowflakeSettings, capture: &result::ResultCapture) -> Result<reqwest_middleware::ClientWithMiddleware> {
    let timeout = Duration::from_secs(settings.query_timeout_seconds.unwrap_or(600));
    let mut builder = reqwest::ClientBuilder::new()
        .use_rustls_tls()
        .user_agent(concat!("thaw/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(20))
        .timeout(timeout)
        .pool_idle_timeout(Duration::from_secs(60));
    if let Some(addr) = settings.endpoint_address()? {
        builder = builder.resolve(&format!("{}.snowflakecomputing.com", settings.account.to_lowercase()), addr);
    }
    if let Some(ca) = settings.ca_file.as_ref().filter(|c| !c.trim().is_empty()) {
        let pem = std::fs::read(ca).map_err(|e| Error::config(format!("snowflake.ca_file {ca} cannot be read: {e}")))?;
        let cert = reqwest::Certificate::from_pem(&pem)
            .map_err(|e| Error::config(format!("snowflake.ca_file {ca} is not a PEM certificate: {e}")))?;
        builder = builder.tls_built_in_root_certs(false).add_root_certificate(cert);
    }
    let client = builder.build().map_err(|e| Error::config(format!("cannot build the HTTPS client for Snowflake: {e}")))?;
    Ok(capture.install(reqwest_middleware::ClientBuilder::new(client)).build())
}

fn map_snowflake_error(err: SnowflakeApiError, what: &str) -> Error {
    let kind = classify_snowflake(&err);
    let detail = describe_snowflake_error(&err);
    Error::new(kind, format!("{what}: {detail}.{}", login_hint(kind)))
}

/// What to check for a failed Snowflake login or session, by error kind
/// (empty for the others).
fn login_hint(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::AuthFailed => " Check snowflake.user and the password or key.",
        ErrorKind::Unreachable => " Check snowflake.account / snowflake.endpoint and the network path.",
        ErrorKind::ConfigInvalid => {
            " The host name does not exist (it does not resolve): check snowflake.account (the host is <account>.snowflakecomputing.com) \
             and snowflake.endpoint in the configuration file; retrying cannot help."
        }
        _ => "",
    }
}

/// A Snowflake client error with its causes ("error sending request …:
/// client error (Connect): tcp connect error: Connection refused"), so a
/// dead, refusing, unresolvable or non-Snowflake endpoint says which; URL
/// query strings (request ids, timestamps) are left out.
fn describe_snowflake_error(err: &SnowflakeApiError) -> String {
    let detail = crate::error::chain_text(err);
    // "(https://host/path?query)" → "(https://host/path)".
    let mut out = String::with_capacity(detail.len());
    let mut rest = detail.as_str();
    while let Some(q) = rest.find("?clientStartTime=").or_else(|| rest.find("?requestId=")) {
        out.push_str(&rest[..q]);
        rest = rest[q..].find(')').map_or("", |close| &rest[q + close..]);
    }
    out.push_str(rest);
    out
}

fn source_chain_has_connect_error(err: &(dyn std::error::Error + 'static)) -> bool {
    crate::error::causes(err).any(|e| {
        let connect = |r: &reqwest::Error| r.is_connect() || r.is_timeout();
        e.downcast_ref::<reqwest::Error>().is_some_and(connect)
            // `#[error(transparent)]` wrappers skip the reqwest error itself, so
            // also accept the I/O error (refused, reset, DNS, timeout) underneath.
            || e.downcast_ref::<std::io::Error>().is_some()
            || matches!(e.downcast_ref::<reqwest_middleware::Error>(), Some(reqwest_middleware::Error::Reqwest(r)) if connect(r))
    })
}

/// Log in to Snowflake for planning: [`connect`], retried while the
/// service answers busy ([`ErrorKind::Transient`]: a login answered
/// 5xx/408/429, a dropped answer) within `policy`. Nothing answering at all
/// (`Unreachable`) and rejected credentials fail at once, so a wrong
/// endpoint or password is reported without waiting out the budget.
///
/// Errors: the last login error.
pub async fn connect_for_planning(
    settings: &crate::config::SnowflakeSettings,
    database: &str,
    schema: &str,
    mut policy: crate::sync::retry::RetryPolicy,
) -> crate::error::Result<SnowflakeSource> {
    let mut attempt = 1;
    loop {
        match connect(settings, Some(database), Some(schema)).await {
            Ok(source) => return Ok(source),
            Err(e) if e.kind == crate::error::ErrorKind::Transient => match policy.next_delay(attempt, &e) {
                Some(delay) => {
                    tracing::warn!(attempt, error = %e.message, delay_ms = delay.as_millis() as u64, "Snowflake login failed; retrying");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                None => return Err(e),
            },
            Err(e) => return Err(e),
        }
    }
}

/// Classify a Snowflake client error. A host name that does not exist
/// (a wrong `snowflake.account` or `snowflake.endpoint`) is
/// [`ErrorKind::ConfigInvalid`]; a temporary resolver failure stays
/// `Unreachable` (retried).
pub fn classify_snowflake(err: &SnowflakeApiError) -> ErrorKind {
    if crate::error::name_resolution_failure(err) == Some(crate::error::NameResolution::NotFound) {
        return ErrorKind::ConfigInvalid;
    }
    match err {
        // The crate wraps a failed login *request* in AuthError too: a
        // connect/DNS/TLS failure underneath means the endpoint is unreachable.
        SnowflakeApiError::AuthError(_) if source_chain_has_connect_error(err) => ErrorKind::Unreachable,
        SnowflakeApiError::AuthError(_) => ErrorKind::AuthFailed,
        SnowflakeApiError::RequestError(_) if source_chain_has_connect_error(err) => ErrorKind::Unreachable,
        SnowflakeApiError::RequestError(_) => ErrorKind::Transient,
        SnowflakeApiError::ApiError(code, _) => match code.as_str() {
            // SQL compilation: object does not exist / invalid identifier.
            "002003" | "000904" | "002043" => ErrorKind::SchemaMismatch,
            // Authentication and session.
            "390100" | "390144" | "390318" | "390101" => ErrorKind::AuthFailed,
            "390104" | "390114" | "390112" => ErrorKind::Transient,
            // Statement queued/aborted/timeouts, warehouse busy.
            "000604" | "000625" | "000630" | "100183" | "000629" => ErrorKind::Transient,
            c if c.starts_with("0010") || c.starts_with("0020") => ErrorKind::ChunkFailed,
            _ => ErrorKind::Internal,
        },
        SnowflakeApiError::EmptyResponse | SnowflakeApiError::BrokenResponse | SnowflakeApiError::UnexpectedResponse => {
            ErrorKind::Transient
        }
        _ => ErrorKind::Internal,
    }
}

impl SnowflakeSource {
    /// Run a query and decode every result chunk with thaw's own arrow version.
    /// Batches arrive in no particular order. An empty result yields no batches.
    pub async fn query_arrow(&self, sql: &str) -> Result<Vec<RecordBatch>> {
        match self.raw(sql).await? {
            RawQueryResult::Bytes(chunks) => decode_chunks(chunks),
            RawQueryResult::Empty => Ok(Vec::new()),
            RawQueryResult::Json(j) => Err(Error::internal(format!(
                "expected Arrow rows from a query but Snowflake answered JSON ({} rows); the statement was: {}",
                j.value.as_array().map(|a| a.len()).unwrap_or(0),
                truncate(sql)
            ))),
        }
    }

    /// Run a query and collect its result decoded into standard Arrow
    /// ([`arrow::SnowflakeDecoder`]): every batch has the same schema, in
    /// result order. For small results; stream large ones
    /// ([`SnowflakeSource::stream_query`]).
    ///
    /// Errors: as [`SnowflakeSource::stream_query`].
    pub async fn query_standard(&self, sql: &str) -> Result<Vec<RecordBatch>> {
        use futures::TryStreamExt as _;
        self.stream_query(sql).await?.try_collect().await
    }

    /// Run a query and stream its rows as standard Arrow batches in result
    /// order: the inline first chunk, then the downloaded chunks, at most
    /// [`result::PREFETCH_CHUNKS`] ahead of the batch being read and within
    /// the process's download budget ([`download_budget`]).
    ///
    /// Errors: the query's (kind from Snowflake's error code); in the
    /// stream, a failed chunk download (`Transient`/`Unreachable`) or a value
    /// the decoder refuses (docs/sync.md §5.5).
    pub async fn stream_query(&self, sql: &str) -> Result<BoxStream<'static, Result<RecordBatch>>> {
        use futures::StreamExt as _;
        self.capture.arm(sql);
        let answer = self.raw(sql).await;
        let captured = self.capture.take();
        let answer = answer?;
        match (captured, answer) {
            (Some(Ok(result)), _) => Ok(result.into_batches(self.client.clone(), self.budget.clone())),
            (Some(Err(problem)), _) => Err(Error::new(ErrorKind::Transient, format!("Snowflake's answer to `{}` is unreadable: {problem}", truncate(sql)))),
            (None, RawQueryResult::Empty) => Ok(futures::stream::empty().boxed()),
            (None, RawQueryResult::Bytes(chunks)) => {
                let batches = decode_chunks(chunks)?;
                let decoded = match batches.iter().find(|b| b.num_rows() > 0) {
                    None => Vec::new(),
                    Some(first) => {
                        let decoder = arrow::SnowflakeDecoder::new(&first.schema())?;
                        batches.iter().filter(|b| b.num_rows() > 0).map(|b| decoder.decode(b)).collect::<Vec<_>>()
                    }
                };
                Ok(futures::stream::iter(decoded).boxed())
            }
            (None, RawQueryResult::Json(j)) => Err(Error::internal(format!(
                "expected Arrow rows from a query but Snowflake answered JSON ({} rows); the statement was: {}",
                j.value.as_array().map(|a| a.len()).unwrap_or(0),
                truncate(sql)
            ))),
        }
    }

    /// Run a statement (DDL/DML, or a query) and return its rows as strings.
    /// Arrow results are rendered through [`arrow::display_rows`].
    pub async fn execute(&self, sql: &str) -> Result<JsonRows> {
        match self.raw(sql).await? {
            RawQueryResult::Json(j) => Ok(j
                .value
                .as_array()
                .map(|rows| {
                    rows.iter()
                        .map(|r| {
                            r.as_array()
                                .map(|cells| cells.iter().map(|c| c.as_str().map(str::to_string).or_else(|| (!c.is_null()).then(|| c.to_string()))).collect())
                                .unwrap_or_default()
                        })
                        .collect()
                })
                .unwrap_or_default()),
            RawQueryResult::Empty => Ok(Vec::new()),
            // Decode what arrived; running `sql` again would repeat its effect.
            RawQueryResult::Bytes(chunks) => arrow::display_rows(&decode_chunks(chunks)?),
        }
    }

    async fn raw(&self, sql: &str) -> Result<RawQueryResult> {
        self.api.exec_raw(sql).await.map_err(|e| {
            let kind = classify_snowflake(&e);
            // snowflake-api reports every failed login as an authentication
            // error; a login answered 5xx/429 is a busy service, not bad credentials.
            if kind == ErrorKind::AuthFailed {
                if let Some(busy) = self.capture.take_session_busy() {
                    return Error::new(ErrorKind::Transient, format!("Snowflake ({}) could not log in for `{}`: {busy}", self.account, truncate(sql)));
                }
            }
            Error::new(kind, format!("Snowflake ({}) rejected or failed `{}`: {}", self.account, truncate(sql), describe_snowflake_error(&e)))
        })
    }
}

/// Decode every result chunk (each a complete Arrow IPC stream) with thaw's arrow version.
fn decode_chunks(chunks: Vec<bytes::Bytes>) -> Result<Vec<RecordBatch>> {
    let mut out = Vec::new();
    for chunk in chunks {
        let reader = arrow_ipc::reader::StreamReader::try_new(chunk.reader(), None)
            .map_err(|e| Error::internal(format!("Snowflake returned an undecodable Arrow stream: {e}")))?;
        for batch in reader {
            out.push(batch.map_err(|e| Error::internal(format!("Snowflake returned an undecodable Arrow batch: {e}")))?);
        }
    }
    Ok(out)
}

fn truncate(sql: &str) -> String {
    const MAX: usize = 300;
    let one_line: String = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.len() <= MAX {
        one_line
    } else {
        let mut end = MAX;
        while !one_line.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &one_line[..end])
    }
}
