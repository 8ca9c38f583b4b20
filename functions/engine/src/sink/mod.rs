//! The PostgreSQL side: connections, the target catalog, and binary COPY.
//!
//! thaw maps every source column to the target column's *actual* type, read
//! from the catalog ([`table_columns`]), and streams rows with binary COPY
//! ([`encode`], [`writer`]).

pub mod ddl;
pub mod encode;
pub mod values;
pub mod writer;

use tokio_postgres::{Client, NoTls};

use crate::config::PostgresSettings;
use crate::error::{from_postgres, Error, ErrorKind, Result};

/// A PostgreSQL type thaw can write, as read from `pg_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum PgType {
    /// `bool`
    Bool,
    /// `int2`
    Int2,
    /// `int4`
    Int4,
    /// `int8`
    Int8,
    /// `float4` (`real`)
    Float4,
    /// `float8` (`double precision`)
    Float8,
    /// `numeric(p,s)`
    Numeric,
    /// `text`
    Text,
    /// `varchar(n)`
    Varchar,
    /// `bpchar` (`char(n)`)
    Bpchar,
    /// `date`
    Date,
    /// `time`
    Time,
    /// `timestamp` (without time zone)
    Timestamp,
    /// `timestamptz`
    Timestamptz,
    /// `uuid`
    Uuid,
    /// `json`
    Json,
    /// `jsonb`
    Jsonb,
    /// `bytea`
    Bytea,
}

impl PgType {
    /// Map a `pg_type.typname` to a supported type.
    pub fn from_typname(name: &str) -> Option<PgType> {
        Some(match name {
            "bool" => PgType::Bool,
            "int2" => PgType::Int2,
            "int4" => PgType::Int4,
            "int8" => PgType::Int8,
            "float4" => PgType::Float4,
            "float8" => PgType::Float8,
            "numeric" => PgType::Numeric,
            "text" => PgType::Text,
            "varchar" => PgType::Varchar,
            "bpchar" => PgType::Bpchar,
            "date" => PgType::Date,
            "time" => PgType::Time,
            "timestamp" => PgType::Timestamp,
            "timestamptz" => PgType::Timestamptz,
            "uuid" => PgType::Uuid,
            "json" => PgType::Json,
            "jsonb" => PgType::Jsonb,
            "bytea" => PgType::Bytea,
            _ => return None,
        })
    }
}

/// One column of a target table, as the catalog describes it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TargetColumn {
    /// Column name, exact case.
    pub name: String,
    /// Writable type.
    pub pg_type: PgType,
    /// `pg_type.typname`, for messages.
    pub type_name: String,
    /// Maximum length in characters for `varchar(n)`/`char(n)`.
    pub char_max_length: Option<i32>,
    /// Declared precision of `numeric(p,s)`.
    pub numeric_precision: Option<i32>,
    /// Declared scale of `numeric(p,s)`.
    pub numeric_scale: Option<i32>,
    /// Whether NULL is allowed.
    pub nullable: bool,
}

impl TargetColumn {
    /// A nullable column `name` of `pg_type` (`type_name` as the catalog
    /// spells it) with no length, precision or scale modifier.
    pub fn plain(name: &str, pg_type: PgType, type_name: &str) -> Self {
        TargetColumn {
            name: name.to_string(),
            pg_type,
            type_name: type_name.to_string(),
            char_max_length: None,
            numeric_precision: None,
            numeric_scale: None,
            nullable: true,
        }
    }
}

/// Open a connection to `database` with `settings`, over TLS as
/// `settings.sslmode` asks (libpq's meanings):
///
/// * `disable` (default): plain text, for a local PostgreSQL;
/// * `require`: encrypted, the server certificate is not checked;
/// * `verify-full`: the certificate chain must lead to a trusted root (the
///   public web roots, which hold Amazon Root CA for RDS Proxy, plus the PEM
///   bundle `settings.ca_file` or `THAW_PG_CA_FILE`, e.g. RDS's
///   `global-bundle.pem` for direct cluster connections) and name the host.
///
/// TLS is rustls with the ring provider (no OpenSSL, builds for Lambda).
/// Then sets bulk-load friendly session settings.
///
/// Errors: [`ErrorKind::ConfigInvalid`] for another `sslmode`, an unreadable
/// or empty CA bundle, a rejected server certificate, or a server that does
/// not accept TLS when `sslmode` asks for it (names the setting to fix);
/// [`ErrorKind::AuthFailed`] for a rejected password;
/// [`ErrorKind::ConfigInvalid`] naming `postgres.host` when the host name
/// does not exist (a temporary resolver failure is `Unreachable`);
/// [`ErrorKind::Unreachable`] when nothing answers at host:port;
/// [`ErrorKind::SchemaMismatch`] when the database does
/// not exist (the hint names `target_pg_database`; see [`connect_configured`]).
pub async fn connect(settings: &PostgresSettings, database: &str) -> Result<Client> {
    connect_configured(settings, database, "target_pg_database").await
}

/// A binary COPY's encoded rows are sent to PostgreSQL every this many
/// bytes (1 MiB): the [`writer::CopyWriter`] of the rows and the row-hash
/// side table's COPY alike.
pub const FLUSH_BYTES: usize = 1 << 20;

/// The configuration key that sets the status database (the database of
/// `migration_status`), as messages name it.
pub const STATUS_DATABASE_KEY: &str = "postgres.status_database (when absent, the first source's target_pg_database)";

/// [`connect`] to the status database of `config`
/// ([`Config::status_database`](crate::config::Config::status_database)): a
/// database that does not exist is [`ErrorKind::SchemaMismatch`] naming
/// [`STATUS_DATABASE_KEY`], the key that sets it. Other errors as [`connect`].
pub async fn connect_status(config: &crate::config::Config) -> Result<Client> {
    connect_configured(&config.postgres, config.status_database(), STATUS_DATABASE_KEY).await
}

/// [`connect`] to `database`, named in the configuration by `key` (e.g.
/// `conflicts.database`): a database that does not exist is
/// [`ErrorKind::SchemaMismatch`] saying to create it or set `key` to an
/// existing one. Other errors as [`connect`].
pub async fn connect_configured(settings: &PostgresSettings, database: &str, key: &str) -> Result<Client> {
    use std::sync::Arc;

    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

    /// `sslmode=require`: the handshake's signatures are checked (the session
    /// is really encrypted with the key of the certificate presented), the
    /// certificate itself is not, as in libpq.
    #[derive(Debug)]
    struct EncryptOnly(Arc<CryptoProvider>);
    impl ServerCertVerifier for EncryptOnly {
        fn verify_server_cert(
            &self,
            _end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _server_name: &ServerName<'_>,
            _ocsp_response: &[u8],
            _now: UnixTime,
        ) -> std::result::Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
        }
        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
        }
        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }

    /// Connect and drive the connection in the background.
    async fn open<T>(cfg: &tokio_postgres::Config, tls: T) -> std::result::Result<Client, tokio_postgres::Error>
    where
        T: tokio_postgres::tls::MakeTlsConnect<tokio_postgres::Socket>,
        T::Stream: Send + 'static,
    {
        let (client, connection) = cfg.connect(tls).await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "postgres connection closed");
            }
        });
        Ok(client)
    }

    /// The rustls error under a failed connect, if TLS is what failed.
    fn rustls_cause(err: &tokio_postgres::Error) -> Option<&rustls::Error> {
        crate::error::causes(err).skip(1).find_map(|e| {
            e.downcast_ref::<rustls::Error>()
                .or_else(|| e.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()).and_then(|inner| inner.downcast_ref::<rustls::Error>()))
        })
    }

    /// Whether the server answered the TLS request with "no TLS here"
    /// (tokio-postgres reports it only as this message, under a TLS error).
    fn server_refused_tls(err: &tokio_postgres::Error) -> bool {
        crate::error::causes(err).skip(1).any(|e| e.to_string() == "server does not support TLS")
    }

    let sslmode = settings.tls_mode()?;
    let mut cfg = tokio_postgres::Config::new();
    cfg.host(&settings.host)
        .port(settings.port.unwrap_or(5432))
        .user(&settings.user)
        .dbname(database)
        .application_name("thaw")
        .connect_timeout(std::time::Duration::from_secs(15));
    if let Some(pw) = &settings.password {
        cfg.password(pw.expose());
    }
    let where_ = format!("PostgreSQL {}@{}:{}/{}", settings.user, settings.host, settings.port.unwrap_or(5432), database);
    let connected = if sslmode == "disable" {
        open(&cfg, NoTls).await
    } else {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::internal(format!("rustls rejected its default protocol versions: {e}")))?;
        let tls = if sslmode == "require" {
            builder.dangerous().with_custom_certificate_verifier(Arc::new(EncryptOnly(provider))).with_no_client_auth()
        } else {
            let mut roots = RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
            let ca_file = settings.ca_file.clone().or_else(|| std::env::var("THAW_PG_CA_FILE").ok()).filter(|f| !f.trim().is_empty());
            if let Some(path) = ca_file {
                let unreadable = |e: &dyn std::fmt::Display| {
                    Error::config(format!("postgres CA bundle {path} (postgres.ca_file or THAW_PG_CA_FILE) cannot be read as PEM certificates: {e}"))
                };
                let certs = CertificateDer::pem_file_iter(&path)
                    .map_err(|e| unreadable(&e))?
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(|e| unreadable(&e))?;
                let (added, _ignored) = roots.add_parsable_certificates(certs);
                if added == 0 {
                    return Err(Error::config(format!(
                        "postgres CA bundle {path} (postgres.ca_file or THAW_PG_CA_FILE) holds no usable CA certificate; for RDS use global-bundle.pem"
                    )));
                }
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        };
        cfg.ssl_mode(tokio_postgres::config::SslMode::Require);
        open(&cfg, tokio_postgres_rustls::MakeRustlsConnect::new(tls)).await
    };
    let client = connected.map_err(|e| {
        if let Some(tls) = rustls_cause(&e) {
            return Error::config(format!(
                "cannot connect to {where_} with sslmode {sslmode}: TLS failed: {tls}. For a rejected certificate, trust its CA with postgres.ca_file or \
                 THAW_PG_CA_FILE (RDS: global-bundle.pem) and check that postgres.host is the name the certificate was issued for."
            ));
        }
        if sslmode != "disable" && server_refused_tls(&e) {
            // A server without TLS answers every retry the same: a setting
            // to fix (exit 2, never retried), not an unreachable server.
            return Error::config(format!(
                "cannot connect to {where_} with sslmode {sslmode}: the server does not accept TLS. Enable ssl on the server, or set \
                 postgres.sslmode (THAW_PG_SSLMODE) to disable for a server reached only over a trusted network."
            ));
        }
        let dns = crate::error::name_resolution_failure(&e);
        let err = from_postgres(e, format!("cannot connect to {where_}"));
        let hint = match err.kind {
            ErrorKind::ConfigInvalid if dns == Some(crate::error::NameResolution::NotFound) => format!(
                " The host '{}' does not exist (its name does not resolve): check postgres.host (THAW_PG_HOST) in the configuration file; retrying cannot help.",
                settings.host
            ),
            ErrorKind::AuthFailed => " Check postgres.user and postgres.password.".to_string(),
            ErrorKind::Unreachable if sslmode != "disable" => {
                format!(" Check postgres.host/port, that the server is running and that it accepts TLS (sslmode {sslmode}).")
            }
            ErrorKind::Unreachable => " Check postgres.host/port and that the server is running.".to_string(),
            ErrorKind::SchemaMismatch => format!(" Create the database or set {key} to an existing database in the configuration file."),
            _ => String::new(),
        };
        Error::new(err.kind, format!("{}.{hint}", err.message))
    })?;
    // Bulk-load friendly session settings (safe: every chunk commits explicitly).
    client
        .batch_execute("SET synchronous_commit = off; SET lock_timeout = '60s'; SET idle_in_transaction_session_timeout = '15min'")
        .await
        .map_err(|e| from_postgres(e, format!("configuring session on {where_}")))?;
    Ok(client)
}

/// The columns of `schema.table` that every inserted row must give a value:
/// `NOT NULL`, without a default, not an identity or generated column; in
/// table order. Plan refuses a table whose source leaves one of them
/// without a value (docs/sync.md §4.6).
pub async fn required_columns(client: &Client, schema: &str, table: &str) -> Result<Vec<String>> {
    let rows = client
        .query(
            "SELECT a.attname FROM pg_attribute a \
             JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped \
               AND a.attnotnull AND NOT a.atthasdef AND a.attidentity = '' AND a.attgenerated = '' \
             ORDER BY a.attnum",
            &[&schema, &table],
        )
        .await
        .map_err(|e| from_postgres(e, format!("reading the required columns of {schema}.{table}")))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Read the columns of `schema.table` in ordinal order.
///
/// Errors: [`ErrorKind::SchemaMismatch`] when the table does not exist;
/// [`ErrorKind::TypeUnsupported`] naming each column whose type thaw cannot write.
pub async fn table_columns(client: &Client, schema: &str, table: &str) -> Result<Vec<TargetColumn>> {
    let rows = client
        .query(
            "SELECT a.attname, t.typname, \
                    CASE WHEN t.typname IN ('varchar','bpchar') AND a.atttypmod > 0 THEN a.atttypmod - 4 END, \
                    CASE WHEN t.typname = 'numeric' AND a.atttypmod > 0 THEN ((a.atttypmod - 4) >> 16) & 65535 END, \
                    CASE WHEN t.typname = 'numeric' AND a.atttypmod > 0 THEN (a.atttypmod - 4) & 65535 END, \
                    NOT a.attnotnull \
             FROM pg_attribute a \
             JOIN pg_class c ON c.oid = a.attrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             JOIN pg_type t ON t.oid = a.atttypid \
             WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped \
             ORDER BY a.attnum",
            &[&schema, &table],
        )
        .await
        .map_err(|e| from_postgres(e, format!("reading columns of {schema}.{table}")))?;
    if rows.is_empty() {
        return Err(Error::new(
            ErrorKind::SchemaMismatch,
            format!("target table {schema}.{table} does not exist in PostgreSQL. Create it (schema/ migrations create the standard tables) or fix 'target' / 'target_pg_schema' in the config."),
        ));
    }
    let mut out = Vec::with_capacity(rows.len());
    let mut unsupported = Vec::new();
    for r in rows {
        let name: String = r.get(0);
        let typname: String = r.get(1);
        match PgType::from_typname(&typname) {
            Some(pg_type) => out.push(TargetColumn {
                name,
                pg_type,
                type_name: typname,
                char_max_length: r.get(2),
                numeric_precision: r.get(3),
                numeric_scale: r.get(4),
                nullable: r.get(5),
            }),
            None => unsupported.push(format!("\"{name}\" ({typname})")),
        }
    }
    if !unsupported.is_empty() {
        return Err(Error::new(
            ErrorKind::TypeUnsupported,
            format!("target table {schema}.{table} has column(s) of a type thaw cannot write: {}. Change the column type or leave the column out of the source.", unsupported.join(", ")),
        ));
    }
    Ok(out)
}

/// Quote a PostgreSQL identifier.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Whether a table (or view) `schema.table` exists, names matched exactly.
///
/// Errors: [`ErrorKind::SchemaMismatch`]/others from the catalog query only.
pub async fn table_exists(client: &Client, schema: &str, table: &str) -> Result<bool> {
    let row = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p', 'v', 'f', 'm'))",
            &[&schema, &table],
        )
        .await
        .map_err(|e| from_postgres(e, format!("checking whether {schema}.{table} exists")))?;
    Ok(row.get(0))
}

/// Quoted `"schema"."table"`.
pub fn qualified(schema: &str, table: &str) -> String {
    format!("{}.{}", ident(schema), ident(table))
}

/// Whether `schema.table` has a non-partial unique index on exactly the
/// columns `keys` (any order): what `INSERT ... ON CONFLICT (keys)` needs.
/// `false` for an empty `keys`.
///
/// Errors: a failed catalog query (kind from its SQLSTATE).
pub async fn has_unique_index<C: tokio_postgres::GenericClient>(client: &C, schema: &str, table: &str, keys: &[String]) -> Result<bool> {
    if keys.is_empty() {
        return Ok(false);
    }
    let rows = client
        .query(
            "SELECT array_agg(a.attname::text ORDER BY a.attname) FROM pg_index i \
             JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY(i.indkey) \
             WHERE n.nspname = $1 AND c.relname = $2 AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL \
             GROUP BY i.indexrelid",
            &[&schema, &table],
        )
        .await
        .map_err(|e| from_postgres(e, format!("reading unique indexes of {schema}.{table}")))?;
    let mut wanted: Vec<String> = keys.to_vec();
    wanted.sort();
    wanted.dedup();
    Ok(rows.iter().any(|r| r.get::<_, Vec<String>>(0) == wanted))
}
