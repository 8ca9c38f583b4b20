//! One error type for the whole engine.
//!
//! Every error carries an [`ErrorKind`] that decides what the caller does with it
//! (retry with backoff, fail the chunk, fail the run), a one-paragraph message
//! that names *what* went wrong, *where*, and *what to do*, and never a secret.
//! The kind's [`ErrorKind::name`] is what Step Functions `Retry`/`Catch`
//! `ErrorEquals` match on, so the names are part of the public contract.

use std::fmt;

/// What a caller should do about an [`Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum ErrorKind {
    /// Network drop, throttling, lock timeout, serialization failure: retry with
    /// backoff and jitter; the step is idempotent.
    Transient,
    /// The configuration file or an event payload is malformed or inconsistent.
    /// Fix the input; retrying cannot help.
    ConfigInvalid,
    /// Authentication failed (wrong password, bad key). Fix credentials.
    AuthFailed,
    /// A database could not be reached at all (refused, DNS, TLS).
    Unreachable,
    /// A table or column named by the configuration does not exist.
    SchemaMismatch,
    /// A value or type cannot be mapped from Snowflake to PostgreSQL.
    TypeUnsupported,
    /// One chunk failed deterministically (bad data, constraint violation).
    ChunkFailed,
    /// Reconciliation found differences between source and target.
    ReconcileMismatch,
    /// Another run holds the lock this step needs.
    Locked,
    /// A bug or an invariant violation inside thaw.
    Internal,
}

impl ErrorKind {
    /// Every kind, in declaration order (published in `statemachines/contract.json`).
    pub const ALL: [ErrorKind; 10] = [
        ErrorKind::Transient,
        ErrorKind::ConfigInvalid,
        ErrorKind::AuthFailed,
        ErrorKind::Unreachable,
        ErrorKind::SchemaMismatch,
        ErrorKind::TypeUnsupported,
        ErrorKind::ChunkFailed,
        ErrorKind::ReconcileMismatch,
        ErrorKind::Locked,
        ErrorKind::Internal,
    ];

    /// The stable name used in Step Functions `ErrorEquals` and in logs.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Transient => "Transient",
            ErrorKind::ConfigInvalid => "ConfigInvalid",
            ErrorKind::AuthFailed => "AuthFailed",
            ErrorKind::Unreachable => "Unreachable",
            ErrorKind::SchemaMismatch => "SchemaMismatch",
            ErrorKind::TypeUnsupported => "TypeUnsupported",
            ErrorKind::ChunkFailed => "ChunkFailed",
            ErrorKind::ReconcileMismatch => "ReconcileMismatch",
            ErrorKind::Locked => "Locked",
            ErrorKind::Internal => "Internal",
        }
    }

    /// Whether retrying the same step can succeed without any change.
    pub fn is_retryable(self) -> bool {
        matches!(self, ErrorKind::Transient | ErrorKind::Unreachable | ErrorKind::Locked)
    }

    /// Process exit code for the CLI: 2 for bad input, 3 for data
    /// differences, 1 for everything else.
    pub fn exit_code(self) -> i32 {
        match self {
            ErrorKind::ConfigInvalid | ErrorKind::SchemaMismatch | ErrorKind::TypeUnsupported | ErrorKind::AuthFailed => 2,
            ErrorKind::ReconcileMismatch => 3,
            _ => 1,
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The engine's error: a kind plus a human-readable paragraph.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct Error {
    /// What to do about it.
    pub kind: ErrorKind,
    /// What went wrong, where, and what to do; never contains secrets.
    pub message: String,
    /// The five-character SQLSTATE when PostgreSQL raised the error (e.g.
    /// `23505`, a unique violation), so callers can react to one condition
    /// without reading the message; kept by [`Error::context`].
    pub sqlstate: Option<String>,
}

impl Error {
    /// Build an error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error { kind, message: message.into(), sqlstate: None }
    }
    /// Shorthand for [`ErrorKind::ConfigInvalid`].
    pub fn config(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::ConfigInvalid, message)
    }
    /// Shorthand for [`ErrorKind::Internal`].
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }
    /// Whether PostgreSQL refused a row because its key is already present
    /// (SQLSTATE 23505, `unique_violation`).
    pub fn is_unique_violation(&self) -> bool {
        self.sqlstate.as_deref() == Some("23505")
    }
    /// Prefix the message with context (e.g. the table or chunk), keeping the kind.
    pub fn context(mut self, what: impl fmt::Display) -> Self {
        self.message = format!("{what}: {}", self.message);
        self
    }
}

/// Result alias used across the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Classify a PostgreSQL client error by SQLSTATE class, so that retries are
/// driven by kind and never by message text.
pub fn classify_postgres(err: &tokio_postgres::Error) -> ErrorKind {
    use tokio_postgres::error::SqlState;
    if let Some(db) = err.as_db_error() {
        let code = db.code();
        let class = &code.code()[..2];
        return match class {
            "08" => ErrorKind::Transient,                  // connection exception
            "40" => ErrorKind::Transient,                  // serialization failure / deadlock
            "53" => ErrorKind::Transient,                  // insufficient resources
            "57" if *code == SqlState::QUERY_CANCELED => ErrorKind::Transient,
            "57" => ErrorKind::Transient,                  // admin shutdown, cannot connect now
            "55" if *code == SqlState::LOCK_NOT_AVAILABLE => ErrorKind::Transient,
            // A write on a reader: during a failover the writer endpoint points at
            // the demoted instance for a while; the retry's new connection reaches the new writer.
            "25" if *code == SqlState::READ_ONLY_SQL_TRANSACTION => ErrorKind::Transient,
            "28" => ErrorKind::AuthFailed,                 // invalid authorization
            "3D" | "3F" | "42" if *code == SqlState::UNDEFINED_TABLE
                || *code == SqlState::UNDEFINED_COLUMN
                || *code == SqlState::INVALID_SCHEMA_NAME
                || *code == SqlState::INVALID_CATALOG_NAME => ErrorKind::SchemaMismatch,
            "22" | "23" => ErrorKind::ChunkFailed,         // data exception / integrity
            _ => ErrorKind::Internal,
        };
    }
    if err.is_closed() {
        return ErrorKind::Transient;
    }
    // A value that does not convert between Rust and PostgreSQL (a parameter
    // or a column of another type than the code expects) is bad input, never
    // retryable; so is an invalid connection configuration.
    let text = err.to_string();
    if text.starts_with("error serializing parameter")
        || text.starts_with("error deserializing column")
        || std::error::Error::source(err).is_some_and(|s| s.is::<tokio_postgres::types::WrongType>())
    {
        return ErrorKind::SchemaMismatch;
    }
    if text.starts_with("invalid configuration") {
        return ErrorKind::ConfigInvalid;
    }
    // No server error: I/O during connect or mid-stream.
    ErrorKind::Unreachable
}

/// Convert a PostgreSQL error into an engine error with `what` as context.
pub fn from_postgres(err: tokio_postgres::Error, what: impl fmt::Display) -> Error {
    let kind = classify_postgres(&err);
    let detail = match err.as_db_error() {
        Some(db) => {
            let mut s = format!("{} (SQLSTATE {})", db.message(), db.code().code());
            if let Some(d) = db.detail() {
                s.push_str(&format!("; detail: {d}"));
            }
            if let Some(h) = db.hint() {
                s.push_str(&format!("; hint: {h}"));
            }
            s
        }
        None => {
            let mut s = err.to_string();
            let mut src = std::error::Error::source(&err);
            while let Some(e) = src {
                s.push_str(&format!(": {e}"));
                src = e.source();
            }
            s
        }
    };
    let mut error = Error::new(kind, format!("{what}: {detail}"));
    error.sqlstate = err.as_db_error().map(|db| db.code().code().to_string());
    error
}
