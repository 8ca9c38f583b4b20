//! PostgreSQL connections from a Lambda: TLS with rustls, trusting the public
//! web roots (RDS Proxy presents an ACM certificate under Amazon Root CA) plus
//! the RDS CA bundle for direct cluster connections (`THAW_PG_CA_FILE`, a PEM
//! file such as AWS's `global-bundle.pem`).
//!
//! `sslmode`: `disable` (or unset) connects in plain text (local PostgreSQL);
//! `require`, `verify-ca` and `verify-full` all verify the certificate chain
//! and the host name, because an unverified TLS session protects nothing.

use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};
use thaw_engine::config::PostgresSettings;
use thaw_engine::error::from_postgres;
use thaw_engine::{Error, Result};
use tokio_postgres::{Client, NoTls};

/// The rustls client configuration: web roots plus the PEM certificates of
/// `ca_file`.
///
/// Errors: `ConfigInvalid` naming the file when it cannot be read
/// or holds no certificate.
pub fn tls_config(ca_file: Option<&str>) -> Result<ClientConfig> {
    let mut roots = RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    if let Some(path) = ca_file {
        let pem = std::fs::read(path).map_err(|e| Error::config(format!("THAW_PG_CA_FILE {path} cannot be read: {e}")))?;
        let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut pem.as_slice())
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| Error::config(format!("THAW_PG_CA_FILE {path} is not a PEM certificate bundle: {e}")))?;
        if certs.is_empty() {
            return Err(Error::config(format!("THAW_PG_CA_FILE {path} holds no certificate; use the RDS bundle global-bundle.pem")));
        }
        let (_added, _ignored) = roots.add_parsable_certificates(certs);
    }
    let config = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::internal(format!("rustls rejected its default protocol versions: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

/// Whether `sslmode` asks for TLS (`disable`/unset: no).
pub fn wants_tls(sslmode: Option<&str>) -> Result<bool> {
    match sslmode.unwrap_or("disable") {
        "disable" | "" => Ok(false),
        "require" | "verify-ca" | "verify-full" => Ok(true),
        other => Err(Error::config(format!("postgres sslmode '{other}' is not one of disable, require, verify-ca, verify-full"))),
    }
}

/// Connect to `database` with `settings`, over TLS when `settings.sslmode` asks for it.
///
/// Errors: as [`thaw_engine::sink::connect`] (`AuthFailed`,
/// `Unreachable`, ...); TLS failures are `Unreachable`.
pub async fn connect(settings: &PostgresSettings, database: &str) -> Result<Client> {
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
    let client = if wants_tls(settings.sslmode.as_deref())? {
        cfg.ssl_mode(tokio_postgres::config::SslMode::Require);
        let ca_file = std::env::var("THAW_PG_CA_FILE").ok().filter(|v| !v.is_empty());
        let tls = tokio_postgres_rustls::MakeRustlsConnect::new(tls_config(ca_file.as_deref())?);
        let (client, connection) = cfg.connect(tls).await.map_err(|e| from_postgres(e, format!("cannot connect to {where_} over TLS")))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "postgres connection closed");
            }
        });
        client
    } else {
        let (client, connection) = cfg.connect(NoTls).await.map_err(|e| from_postgres(e, format!("cannot connect to {where_}")))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "postgres connection closed");
            }
        });
        client
    };
    Ok(client)
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_values_are_checked() {
        assert!(!wants_tls(None).unwrap());
        assert!(wants_tls(Some("verify-full")).unwrap());
        assert!(wants_tls(Some("prefer")).unwrap_err().message.contains("verify-full"));
    }

    #[test]
    fn a_missing_ca_bundle_is_named() {
        let err = tls_config(Some("/nonexistent/global-bundle.pem")).unwrap_err();
        assert!(err.message.contains("/nonexistent/global-bundle.pem"), "{}", err.message);
        assert!(tls_config(None).is_ok());
    }
}
