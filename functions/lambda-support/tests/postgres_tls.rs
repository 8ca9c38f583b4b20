//! `postgres.sslmode` of `thaw_engine::sink::connect`, the connection every
//! Lambda opens: which values are accepted, and what each TLS mode checks.
//!
//! The server side is a PostgreSQL-speaking TLS endpoint on 127.0.0.1: it
//! answers the client's SSLRequest with `S` and completes a rustls handshake
//! with `fixtures/server.pem` (CN/SAN `localhost`, issued by `fixtures/ca.pem`;
//! throwaway key pair, valid until 2126), then hangs up. A handshake that
//! completed proves the client accepted the certificate.

use std::path::PathBuf;
use std::sync::Arc;

use thaw_engine::config::{PostgresSettings, Secret};
use thaw_engine::ErrorKind;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// Serve one connection; resolves to whether the TLS handshake completed.
async fn tls_endpoint() -> (u16, tokio::task::JoinHandle<bool>) {
    let certs = CertificateDer::pem_file_iter(fixture("server.pem")).unwrap().collect::<Result<Vec<_>, _>>().unwrap();
    let key = PrivateKeyDer::from_pem_file(fixture("server-key.pem")).unwrap();
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let served = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut ssl_request = [0u8; 8];
        socket.read_exact(&mut ssl_request).await.unwrap();
        assert_eq!(ssl_request, [0, 0, 0, 8, 4, 210, 22, 47], "the client must open with an SSLRequest");
        socket.write_all(b"S").await.unwrap();
        acceptor.accept(socket).await.is_ok()
    });
    (port, served)
}

fn settings(host: &str, port: u16, sslmode: &str, ca_file: Option<PathBuf>) -> PostgresSettings {
    PostgresSettings {
        host: host.into(),
        port: Some(port),
        user: "thaw_loader".into(),
        password: Some(Secret("not-used".into())),
        sslmode: Some(sslmode.into()),
        ca_file: ca_file.map(|p| p.display().to_string()),
        ..Default::default()
    }
}

#[tokio::test]
async fn an_unknown_sslmode_is_a_config_error_naming_the_accepted_values() {
    for mode in ["prefer", "verify-ca", "VERIFY-FULL"] {
        let err = thaw_engine::sink::connect(&settings("localhost", 1, mode, None), "postgres").await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::ConfigInvalid, "{mode}: {}", err.message);
        assert!(err.message.contains(&format!("'{mode}'")) && err.message.contains("disable, require, verify-full"), "{}", err.message);
    }
}

#[tokio::test]
async fn verify_full_rejects_a_certificate_from_an_untrusted_ca_and_says_how_to_trust_it() {
    let (port, served) = tls_endpoint().await;
    let err = thaw_engine::sink::connect(&settings("localhost", port, "verify-full", None), "postgres").await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::ConfigInvalid, "{}", err.message);
    assert!(err.message.contains("UnknownIssuer"), "{}", err.message);
    assert!(err.message.contains("postgres.ca_file") && err.message.contains("THAW_PG_CA_FILE"), "{}", err.message);
    assert!(!served.await.unwrap(), "the handshake must not complete");
}

#[tokio::test]
async fn verify_full_with_the_ca_bundle_accepts_the_certificate() {
    let (port, served) = tls_endpoint().await;
    let err = thaw_engine::sink::connect(&settings("localhost", port, "verify-full", Some(fixture("ca.pem"))), "postgres")
        .await
        .unwrap_err();
    assert!(served.await.unwrap(), "the handshake must complete: {}", err.message);
    assert!(!err.message.contains("TLS failed"), "the endpoint hung up after the handshake, TLS did not fail: {}", err.message);
}

#[tokio::test]
async fn verify_full_rejects_a_host_name_the_certificate_does_not_name() {
    let (port, served) = tls_endpoint().await;
    let err = thaw_engine::sink::connect(&settings("127.0.0.1", port, "verify-full", Some(fixture("ca.pem"))), "postgres")
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::ConfigInvalid, "{}", err.message);
    assert!(err.message.contains("not valid for name \"127.0.0.1\""), "{}", err.message);
    assert!(!served.await.unwrap());
}

#[tokio::test]
async fn require_encrypts_without_checking_the_certificate() {
    let (port, served) = tls_endpoint().await;
    let _ = thaw_engine::sink::connect(&settings("127.0.0.1", port, "require", None), "postgres").await;
    assert!(served.await.unwrap(), "sslmode require must accept any certificate");
}

#[tokio::test]
async fn a_missing_ca_bundle_is_named() {
    let err = thaw_engine::sink::connect(&settings("localhost", 1, "verify-full", Some("/nonexistent/global-bundle.pem".into())), "postgres")
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::ConfigInvalid);
    assert!(err.message.contains("/nonexistent/global-bundle.pem"), "{}", err.message);
}
