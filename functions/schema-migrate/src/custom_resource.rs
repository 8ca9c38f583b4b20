//! The schema-migrate custom resource: on `Create` and `Update` it makes the
//! database roles exist with the passwords from their secrets, then applies
//! every pending `schema/` migration ([`thaw_engine::migrations::migrate`]);
//! `Delete` does nothing (dropping a stack must never drop data).
//!
//! The CDK Provider framework sends the CloudFormation response; this handler
//! returns `{"PhysicalResourceId": "thaw-schema-<database>", "Data": {...}}`.
//! The id is stable, so an `Update` never makes CloudFormation delete the
//! "old" resource.
//!
//! Connection (first match):
//! * `THAW_PG_ADMIN_SECRET_ARN`: the cluster admin secret (`username`,
//!   `password`, `host`, `port`, `dbname`); `THAW_PG_HOST` / `THAW_PG_PORT` /
//!   `THAW_PG_DATABASE` / `THAW_PG_SSLMODE` override its fields.
//! * otherwise the `postgres` section of the Lambda configuration
//!   ([`thaw_lambda::config`]), for local runs.
//!
//! Roles: `THAW_PG_USER_SECRET_ARNS` is a JSON object `{role: secret arn}`.
//! Each role is created `LOGIN` if missing and its password set from the
//! secret's `password` as a SCRAM-SHA-256 verifier computed here, so the
//! plain password never appears in SQL text or server logs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use thaw_engine::config::{PostgresSettings, Secret};
use thaw_engine::error::from_postgres;
use thaw_engine::{Error, Result};

/// The CloudFormation custom-resource event (fields thaw reads).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CustomResourceEvent {
    /// `Create`, `Update` or `Delete`.
    pub request_type: String,
    /// Set on `Update` and `Delete`.
    #[serde(default)]
    pub physical_resource_id: Option<String>,
    /// `SchemaHash`, `DeployId`, `Database` from the stack (informational).
    #[serde(default)]
    pub resource_properties: BTreeMap<String, serde_json::Value>,
}

/// What the Provider framework reports back to CloudFormation.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct CustomResourceResponse {
    /// Stable id of the schema resource.
    pub physical_resource_id: String,
    /// Small attributes (`Applied`: migrations applied by this call, comma-separated).
    pub data: BTreeMap<String, String>,
}

/// Handle one event (see the module docs).
///
/// Errors: `ConfigInvalid` for an unknown request type or bad secrets,
/// `AuthFailed` / `Unreachable` from connecting, `Internal` for a failed
/// migration (rolled back; the deploy fails and can be retried).
pub async fn handle(event: CustomResourceEvent) -> Result<CustomResourceResponse> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let (settings, database) = match env("THAW_PG_ADMIN_SECRET_ARN") {
        Some(arn) => admin_settings(&arn, &env).await?,
        None => {
            let config = thaw_lambda::config().await.map_err(|e| e.0)?;
            (config.postgres.clone(), config.status_database().to_string())
        }
    };
    let physical_resource_id = format!("thaw-schema-{database}");
    match event.request_type.as_str() {
        "Delete" => {
            tracing::info!("Delete: schema and data are kept");
            let id = event.physical_resource_id.unwrap_or(physical_resource_id);
            return Ok(CustomResourceResponse { physical_resource_id: id, data: BTreeMap::new() });
        }
        "Create" | "Update" => {}
        other => return Err(Error::config(format!("custom resource RequestType '{other}' is not Create, Update or Delete"))),
    }
    let mut client = thaw_engine::sink::connect(&settings, &database).await?;
    if let Some(arns) = env("THAW_PG_USER_SECRET_ARNS") {
        let roles: BTreeMap<String, String> = serde_json::from_str(&arns)
            .map_err(|e| Error::config(format!("THAW_PG_USER_SECRET_ARNS is not a JSON object of role → secret ARN: {e}")))?;
        for (role, arn) in &roles {
            let secret = thaw_lambda::aws::secret_json(arn).await?;
            let password = Secret(thaw_lambda::aws::field(&secret, "password").ok_or_else(|| Error::config(format!("secret {arn} has no 'password' field")))?);
            ensure_role(&client, role, &password).await?;
        }
        tracing::info!(roles = roles.len(), "database roles ensured");
    }
    let applied = thaw_engine::migrations::migrate(&mut client).await?;
    tracing::info!(applied = ?applied, properties = ?event.resource_properties, "schema migrations applied");
    Ok(CustomResourceResponse { physical_resource_id, data: BTreeMap::from([("Applied".to_string(), applied.join(","))]) })
}

/// Connection settings from the admin secret, with `THAW_PG_*` overrides.
async fn admin_settings(arn: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<(PostgresSettings, String)> {
    let secret = thaw_lambda::aws::secret_json(arn).await?;
    let field = |k: &str| thaw_lambda::aws::field(&secret, k);
    let missing = |k: &str| Error::config(format!("admin secret {arn} has no '{k}' field"));
    let settings = PostgresSettings {
        host: env("THAW_PG_HOST").or_else(|| field("host")).ok_or_else(|| missing("host"))?,
        user: field("username").ok_or_else(|| missing("username"))?,
        password: Some(Secret(field("password").ok_or_else(|| missing("password"))?)),
        port: env("THAW_PG_PORT").or_else(|| field("port")).and_then(|p| p.parse().ok()),
        status_database: None,
        sslmode: env("THAW_PG_SSLMODE"),
        ca_file: env("THAW_PG_CA_FILE"),
    };
    let database = env("THAW_PG_DATABASE").or_else(|| field("dbname")).unwrap_or_else(|| "postgres".into());
    Ok((settings, database))
}

/// Create `role` (LOGIN) if missing and set its password to a SCRAM verifier of `password`.
async fn ensure_role(client: &tokio_postgres::Client, role: &str, password: &Secret) -> Result<()> {
    let exists = client
        .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&role])
        .await
        .map_err(|e| from_postgres(e, format!("looking up role {role}")))?
        .is_some();
    let quoted = thaw_engine::sink::ident(role);
    if !exists {
        client.batch_execute(&format!("CREATE ROLE {quoted} LOGIN")).await.map_err(|e| from_postgres(e, format!("creating role {role}")))?;
    }
    let verifier = postgres_protocol::password::scram_sha_256(password.expose().as_bytes());
    client
        .batch_execute(&format!("ALTER ROLE {quoted} WITH LOGIN PASSWORD '{verifier}'"))
        .await
        .map_err(|e| from_postgres(e, format!("setting the password of role {role}")))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloudformation_events_deserialise() {
        let event: CustomResourceEvent = serde_json::from_value(serde_json::json!({
            "RequestType": "Update", "PhysicalResourceId": "thaw-schema-thaw", "StackId": "arn:aws:cloudformation:x",
            "ResourceProperties": {"ServiceToken": "arn", "SchemaHash": "abc", "DeployId": "20250101T000000Z", "Database": "thaw"}
        }))
        .unwrap();
        assert_eq!(event.request_type, "Update");
        assert_eq!(event.resource_properties["SchemaHash"], "abc");
    }

    #[test]
    fn response_uses_the_provider_framework_field_names() {
        let response = CustomResourceResponse { physical_resource_id: "thaw-schema-thaw".into(), data: BTreeMap::new() };
        assert_eq!(serde_json::to_value(&response).unwrap(), serde_json::json!({"PhysicalResourceId": "thaw-schema-thaw", "Data": {}}));
    }
}
