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
    /// A database could not be reached at all (refused, a temporary DNS
    /// failure, TLS); a host name that does not exist is [`ErrorKind::ConfigInvalid`].
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

/// `err` and the errors of its source chain, outermost first.
pub fn causes<'a>(err: &'a (dyn std::error::Error + 'static)) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(err), |e| e.source())
}

/// `err`'s text followed by each cause of its source chain, `: `-separated;
/// a cause whose text the line already holds (libraries often repeat their
/// source's message in their own) is left out.
pub fn chain_text(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    for cause in causes(err).skip(1) {
        let part = cause.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
    }
    text
}

/// How a host name failed to resolve ([`name_resolution_failure`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameResolution {
    /// The name does not exist (`EAI_NONAME` "Name or service not known",
    /// `EAI_NODATA` "No address associated with hostname"; musl's "Name does
    /// not resolve"; macOS's "nodename nor servname provided, or not
    /// known"): a wrong host in the configuration, bad input that no retry
    /// can fix ([`ErrorKind::ConfigInvalid`]).
    NotFound,
    /// The resolver could not answer now (`EAI_AGAIN` "Temporary failure in
    /// name resolution", or any other lookup failure): retryable.
    Temporary,
}

/// Messages of `getaddrinfo` (glibc, musl, macOS) for a name that does not exist.
const NAME_NOT_FOUND: [&str; 5] = [
    "Name or service not known",
    "No address associated with hostname",
    "Name does not resolve",
    "nodename nor servname provided, or not known",
    "No such host is known",
];

/// Whether `err` (or an error in its source chain) is a failed host name
/// lookup, and which kind. The standard library's resolver reports
/// `getaddrinfo`'s failure only as the text "failed to lookup address
/// information: <gai_strerror>" (an `io::Error` of kind `Uncategorized`),
/// so the cause is read from that text: the one place where thaw decides by
/// message, because no code is exposed. tokio-postgres, reqwest/hyper
/// ("dns error") and object_store all resolve through it.
pub fn name_resolution_failure(err: &(dyn std::error::Error + 'static)) -> Option<NameResolution> {
    let mut lookup = false;
    for e in causes(err) {
        let text = e.to_string();
        if NAME_NOT_FOUND.iter().any(|m| text.contains(m)) {
            return Some(NameResolution::NotFound);
        }
        lookup |= text.contains("failed to lookup address information") || text.contains("dns error");
    }
    lookup.then_some(NameResolution::Temporary)
}

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
    // A host that does not exist is bad input; a resolver that cannot answer now is not.
    if name_resolution_failure(err) == Some(NameResolution::NotFound) {
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
        None => chain_text(&err),
    };
    let mut error = Error::new(kind, format!("{what}: {detail}"));
    error.sqlstate = err.as_db_error().map(|db| db.code().code().to_string());
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error whose source is `inner`, as tokio-postgres and hyper wrap the resolver's.
    #[derive(Debug)]
    struct Wrapped(&'static str, std::io::Error);
    impl fmt::Display for Wrapped {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }
    impl std::error::Error for Wrapped {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.1)
        }
    }

    fn lookup(message: &str) -> Wrapped {
        Wrapped("dns error", std::io::Error::other(format!("failed to lookup address information: {message}")))
    }

    #[test]
    fn a_host_that_does_not_exist_is_told_apart_from_a_resolver_that_cannot_answer_now() {
        for gone in ["Name or service not known", "No address associated with hostname", "Name does not resolve"] {
            assert_eq!(name_resolution_failure(&lookup(gone)), Some(NameResolution::NotFound), "{gone}");
        }
        assert_eq!(name_resolution_failure(&lookup("Temporary failure in name resolution")), Some(NameResolution::Temporary));
        let refused = Wrapped("error connecting to server", std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert_eq!(name_resolution_failure(&refused), None);
    }
}
