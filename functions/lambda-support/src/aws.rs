//! The AWS SDK configuration (one per container) and Secrets Manager reads.
//!
//! HTTPS uses rustls with ring (no C toolchain needed for cross builds).
//! Endpoints follow the SDK's standard variables, so `AWS_ENDPOINT_URL` /
//! `AWS_ENDPOINT_URL_SECRETS_MANAGER` point it at a local moto server.

use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
use thaw_engine::config::Secret;
use thaw_engine::{Error, ErrorKind, Result};
use tokio::sync::OnceCell;

static SDK: OnceCell<SdkConfig> = OnceCell::const_new();

/// The shared SDK configuration (credentials, region, endpoints from the environment).
pub async fn sdk_config() -> &'static SdkConfig {
    SDK.get_or_init(|| async {
        let http = aws_smithy_http_client::Builder::new().tls_provider(Provider::Rustls(CryptoMode::Ring)).build_https();
        aws_config::defaults(BehaviorVersion::latest()).http_client(http).load().await
    })
    .await
}

/// The `SecretString` of `secret_id` (ARN or name), parsed as a JSON object.
///
/// Errors: [`ErrorKind::AuthFailed`] when access is denied or the secret is
/// missing, [`ErrorKind::ConfigInvalid`] when it is not a JSON object,
/// [`ErrorKind::Transient`] otherwise. Messages name the secret, never its value.
pub async fn secret_json(secret_id: &str) -> Result<serde_json::Map<String, serde_json::Value>> {
    let client = aws_sdk_secretsmanager::Client::new(sdk_config().await);
    let out = client.get_secret_value().secret_id(secret_id).send().await.map_err(|e| {
        let service = e.as_service_error().map(|s| s.to_string()).unwrap_or_default();
        let kind = if service.contains("AccessDenied") || service.contains("ResourceNotFound") || e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) {
            ErrorKind::AuthFailed
        } else {
            ErrorKind::Transient
        };
        Error::new(kind, format!("cannot read secret {secret_id} from Secrets Manager: {}", aws_sdk_secretsmanager::error::DisplayErrorContext(&e)))
    })?;
    let text = Secret(out.secret_string().unwrap_or_default().to_string());
    match serde_json::from_str::<serde_json::Value>(text.expose()) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        _ => Err(Error::config(format!("secret {secret_id} is not a JSON object; store it as {{\"key\": \"value\", ...}}"))),
    }
}

/// String field `key` of a secret, or `None` when absent or empty.
pub fn field(secret: &serde_json::Map<String, serde_json::Value>, key: &str) -> Option<String> {
    match secret.get(key)? {
        serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}
