//! The configuration a Lambda runs with: `config.json` plus the cloud's
//! connection settings and secrets, loaded once per container.
//!
//! Steps ([`load`]):
//! 1. Text from `THAW_CONFIG_URI` (`s3://bucket/key` or a path), else the
//!    path `THAW_CONFIG`, else `/var/task/config.json`.
//! 2. Secrets: `THAW_SNOWFLAKE_SECRET_ARN` (JSON `{account, user, role,
//!    warehouse, private_key_pem}`) and, with `THAW_PG_AUTH=secret`,
//!    `THAW_PG_SECRET_ARN` (the RDS secret shape, `password` used).
//! 3. `${VAR}` expansion sees these first, then the process environment:
//!    `THAW_SF_ACCOUNT`, `THAW_SF_USER`, `THAW_SF_ROLE`, `THAW_SF_WAREHOUSE`,
//!    `THAW_SF_PRIVATE_KEY`, `THAW_SF_PASSWORD` (empty when key-pair auth
//!    comes from the secret) and `THAW_PG_PASSWORD`. So the same
//!    `examples/config.json` runs on a laptop and in the cloud.
//! 4. Overrides, applied after parsing and validated again: the Snowflake
//!    secret's fields replace `snowflake.*` (key-pair auth, password cleared);
//!    `THAW_PG_HOST`, `THAW_PG_PORT`, `THAW_PG_USER`, `THAW_PG_SSLMODE` replace
//!    `postgres.*`; the secret or IAM token becomes `postgres.password`; empty
//!    `snowflake.endpoint` / `ca_file` mean "not set".
//!
//! With `THAW_PG_AUTH=iam` the password is an RDS auth token (aws-sigv4,
//! signed locally, valid 15 minutes); [`current`] re-signs it when older than
//! 10 minutes, so warm containers never connect with an expired token.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use aws_credential_types::provider::ProvideCredentials;
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SignatureLocation, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use thaw_engine::config::{Config, Secret};
use thaw_engine::{Error, ErrorKind, Result};
use tokio::sync::{Mutex, OnceCell};

use crate::aws;

/// How the Lambda authenticates to PostgreSQL (`THAW_PG_AUTH`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgAuth {
    /// The password in the config (or `THAW_PG_PASSWORD`) as is (default; local runs).
    Config,
    /// The `password` of the secret `THAW_PG_SECRET_ARN`.
    Secret,
    /// An RDS IAM auth token (RDS Proxy with IAM authentication).
    Iam,
}

impl PgAuth {
    /// Parse `THAW_PG_AUTH` (unset or empty = [`PgAuth::Config`]).
    pub fn from_env_value(value: Option<&str>) -> Result<PgAuth> {
        match value.unwrap_or("") {
            "" | "config" => Ok(PgAuth::Config),
            "secret" => Ok(PgAuth::Secret),
            "iam" => Ok(PgAuth::Iam),
            other => Err(Error::config(format!("THAW_PG_AUTH='{other}' is not one of iam, secret, config"))),
        }
    }
}

/// Token age after which [`current`] signs a new one (tokens live 15 minutes).
const IAM_TOKEN_REFRESH: Duration = Duration::from_secs(600);

struct Loaded {
    config: Arc<Config>,
    auth: PgAuth,
    iam: Mutex<Option<(Instant, Arc<Config>)>>,
}

static LOADED: OnceCell<Loaded> = OnceCell::const_new();

/// The configuration for this invocation (see the module docs). Loaded on the
/// first call of a container; later calls reuse it.
pub async fn current() -> Result<Arc<Config>> {
    let loaded = LOADED
        .get_or_try_init(|| async {
            let auth = PgAuth::from_env_value(std::env::var("THAW_PG_AUTH").ok().as_deref())?;
            let config = Arc::new(load(auth).await?);
            Ok::<_, Error>(Loaded { config, auth, iam: Mutex::new(None) })
        })
        .await?;
    if loaded.auth != PgAuth::Iam {
        return Ok(loaded.config.clone());
    }
    let mut cached = loaded.iam.lock().await;
    if let Some((signed, config)) = cached.as_ref() {
        if signed.elapsed() < IAM_TOKEN_REFRESH {
            return Ok(config.clone());
        }
    }
    let mut config = (*loaded.config).clone();
    config.postgres.password = Some(iam_token(&config).await?);
    let config = Arc::new(config);
    *cached = Some((Instant::now(), config.clone()));
    Ok(config)
}

/// Load and resolve the configuration once (steps 1-4 of the module docs).
pub async fn load(auth: PgAuth) -> Result<Config> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let uri = env("THAW_CONFIG_URI").or_else(|| env("THAW_CONFIG")).unwrap_or_else(|| "/var/task/config.json".into());
    let bytes = thaw_engine::sync::manifest::read_object(&uri)
        .await
        .map_err(|e| Error::new(e.kind, format!("{}. Upload the sync configuration there (ops/deploy.md step 5) or set THAW_CONFIG_URI.", e.message)))?;
    let text = String::from_utf8(bytes).map_err(|_| Error::config(format!("config {uri} is not UTF-8 text")))?;

    let snowflake = match env("THAW_SNOWFLAKE_SECRET_ARN") {
        Some(arn) => Some(SnowflakeSecret::from_json(&arn, &aws::secret_json(&arn).await?)?),
        None => None,
    };
    let pg_password = match auth {
        PgAuth::Secret => {
            let arn = env("THAW_PG_SECRET_ARN").ok_or_else(|| Error::config("THAW_PG_AUTH=secret needs THAW_PG_SECRET_ARN (the database user's secret)"))?;
            let secret = aws::secret_json(&arn).await?;
            Some(Secret(aws::field(&secret, "password").ok_or_else(|| Error::config(format!("secret {arn} has no 'password' field")))?))
        }
        PgAuth::Config | PgAuth::Iam => None,
    };
    let variables = secret_variables(snowflake.as_ref(), pg_password.as_ref(), auth);
    let lookup = |k: &str| variables.get(k).map(|s| s.expose().to_string()).or_else(|| std::env::var(k).ok());
    let mut config = Config::from_text(&text, &uri, &lookup)?;
    apply_overrides(&mut config, snowflake.as_ref(), pg_password, &|k| env(k)).map_err(|e| e.context(format!("config {uri}")))?;
    config.validate().map_err(|e| e.context(format!("config {uri} after applying the THAW_* environment and secrets")))?;
    Ok(config)
}

/// The Snowflake key-pair secret (`THAW_SNOWFLAKE_SECRET_ARN`).
#[derive(Debug, Clone)]
pub struct SnowflakeSecret {
    /// Account identifier.
    pub account: String,
    /// Login name.
    pub user: String,
    /// Role, if given.
    pub role: Option<String>,
    /// Warehouse, if given.
    pub warehouse: Option<String>,
    /// PKCS#8 private key, PEM.
    pub private_key_pem: Secret,
}

impl SnowflakeSecret {
    /// Read the JSON fields; `account`, `user` and `private_key_pem` are required.
    pub fn from_json(arn: &str, secret: &serde_json::Map<String, serde_json::Value>) -> Result<SnowflakeSecret> {
        let required = |k: &str| {
            aws::field(secret, k).ok_or_else(|| {
                Error::new(ErrorKind::ConfigInvalid, format!("Snowflake secret {arn} has no '{k}'; fill it as in ops/deploy.md step 5"))
            })
        };
        Ok(SnowflakeSecret {
            account: required("account")?,
            user: required("user")?,
            role: aws::field(secret, "role"),
            warehouse: aws::field(secret, "warehouse"),
            private_key_pem: Secret(required("private_key_pem")?),
        })
    }
}

/// The `${VAR}` values that come from secrets (step 3 of the module docs).
fn secret_variables(snowflake: Option<&SnowflakeSecret>, pg_password: Option<&Secret>, auth: PgAuth) -> BTreeMap<&'static str, Secret> {
    let mut vars = BTreeMap::new();
    if let Some(sf) = snowflake {
        vars.insert("THAW_SF_ACCOUNT", Secret(sf.account.clone()));
        vars.insert("THAW_SF_USER", Secret(sf.user.clone()));
        vars.insert("THAW_SF_PRIVATE_KEY", sf.private_key_pem.clone());
        vars.insert("THAW_SF_PASSWORD", Secret(String::new()));
        if let Some(role) = &sf.role {
            vars.insert("THAW_SF_ROLE", Secret(role.clone()));
        }
        if let Some(warehouse) = &sf.warehouse {
            vars.insert("THAW_SF_WAREHOUSE", Secret(warehouse.clone()));
        }
    }
    match (pg_password, auth) {
        (Some(pw), _) => {
            vars.insert("THAW_PG_PASSWORD", pw.clone());
        }
        // The token is signed per invocation; the parsed config only needs a placeholder.
        (None, PgAuth::Iam) => {
            vars.insert("THAW_PG_PASSWORD", Secret(String::new()));
        }
        (None, _) => {}
    }
    vars
}

/// Step 4 of the module docs; `env` reads non-empty environment variables.
///
/// Errors: [`ErrorKind::ConfigInvalid`] when `THAW_PG_PORT` is not a port
/// number (it used to be ignored, silently keeping `postgres.port`).
fn apply_overrides(config: &mut Config, snowflake: Option<&SnowflakeSecret>, pg_password: Option<Secret>, env: &dyn Fn(&str) -> Option<String>) -> Result<()> {
    if let Some(sf) = snowflake {
        config.snowflake.account = sf.account.clone();
        config.snowflake.user = sf.user.clone();
        config.snowflake.role = sf.role.clone().or(config.snowflake.role.take());
        config.snowflake.warehouse = sf.warehouse.clone().or(config.snowflake.warehouse.take());
        config.snowflake.rsa_key = Some(sf.private_key_pem.clone());
        config.snowflake.password = None;
    }
    config.snowflake.endpoint = config.snowflake.endpoint.take().filter(|s| !s.is_empty());
    config.snowflake.ca_file = config.snowflake.ca_file.take().filter(|s| !s.is_empty());
    if let Some(host) = env("THAW_PG_HOST") {
        config.postgres.host = host;
    }
    if let Some(port) = env("THAW_PG_PORT") {
        config.postgres.port = Some(thaw_engine::config::parse_port(&port).ok_or_else(|| Error::config(format!("THAW_PG_PORT '{port}' is not a TCP port (1 to 65535)")))?);
    }
    if let Some(user) = env("THAW_PG_USER") {
        config.postgres.user = user;
    }
    if let Some(mode) = env("THAW_PG_SSLMODE") {
        config.postgres.sslmode = Some(mode);
    }
    if let Some(pw) = pg_password {
        config.postgres.password = Some(pw);
    }
    Ok(())
}

/// A fresh RDS IAM auth token for `config.postgres` (host, port, user),
/// signed with the Lambda's credentials in `AWS_REGION` ([`rds_auth_token`]).
///
/// Errors: [`ErrorKind::AuthFailed`] when no credentials or region are available.
pub async fn iam_token(config: &Config) -> Result<Secret> {
    let sdk = aws::sdk_config().await;
    let pg = &config.postgres;
    let failed = |what: String| Error::new(ErrorKind::AuthFailed, format!("cannot sign an RDS IAM auth token for {}@{}: {what}. Check the function's credentials and AWS_REGION.", pg.user, pg.host));
    let provider = sdk.credentials_provider().ok_or_else(|| failed("no AWS credentials are configured".into()))?;
    let credentials = provider.provide_credentials().await.map_err(|e| failed(e.to_string()))?;
    let region = sdk.region().ok_or_else(|| failed("no AWS region is configured".into()))?;
    let token = rds_auth_token(&pg.host, pg.port.unwrap_or(5432), &pg.user, region.as_ref(), credentials, SystemTime::now()).map_err(|e| failed(e.message))?;
    Ok(Secret(token))
}

/// The RDS IAM auth token of `user` at `host:port` in `region` at `now`: the
/// password Aurora and RDS Proxy accept for an IAM-enabled database user.
/// It is the `connect` action's URL, presigned with Signature Version 4 for
/// the service `rds-db` (the `aws-sigv4` crate), valid for 900 seconds (the
/// maximum), without its `https://`: `host:port/?Action=connect&DBUser=…&X-Amz-…`.
/// The same token as `aws-sdk-rds`'s `AuthTokenGenerator` (test
/// `the_rds_auth_token_is_the_aws_sdk_token_byte_for_byte`), without that
/// crate's whole RDS API, by far the largest crate of the build.
///
/// Errors: [`ErrorKind::AuthFailed`] when the request cannot be signed.
pub fn rds_auth_token(host: &str, port: u16, user: &str, region: &str, credentials: Credentials, now: SystemTime) -> Result<String> {
    let failed = |what: &dyn std::fmt::Display| Error::new(ErrorKind::AuthFailed, format!("cannot sign an RDS IAM auth token for {user}@{host}: {what}"));
    let mut settings = SigningSettings::default();
    settings.expires_in = Some(Duration::from_secs(900));
    settings.signature_location = SignatureLocation::QueryParams;
    let identity: Identity = credentials.into();
    let params = v4::SigningParams::builder().identity(&identity).region(region).name("rds-db").time(now).settings(settings).build().map_err(|e| failed(&e))?;
    let url = format!("https://{host}:{port}/?Action=connect&DBUser={user}");
    let request = SignableRequest::new("GET", &url, std::iter::empty(), SignableBody::empty()).map_err(|e| failed(&e))?;
    let (instructions, _signature) = aws_sigv4::http_request::sign(request, &params.into()).map_err(|e| failed(&e))?.into_parts();
    let mut signed = url::Url::parse(&url).map_err(|e| failed(&e))?;
    for (name, value) in instructions.params() {
        signed.query_pairs_mut().append_pair(name, value);
    }
    Ok(signed.to_string().split_off("https://".len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tokens made by aws-sdk-rds 1.159's `AuthTokenGenerator` (the crate this
    /// signer replaced) for the same credentials, time and endpoint, with and
    /// without a session token.
    #[test]
    fn the_rds_auth_token_is_the_aws_sdk_token_byte_for_byte() {
        let at = std::time::UNIX_EPOCH + Duration::from_secs(1_796_643_845); // 2026-12-07T11:44:05Z
        let key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
        let token = rds_auth_token("db.proxy-abc.us-east-1.rds.amazonaws.com", 5432, "thaw_loader", "us-east-1", Credentials::new("AKIDEXAMPLE", key, None, None, "test"), at).unwrap();
        assert_eq!(
            token,
            "db.proxy-abc.us-east-1.rds.amazonaws.com:5432/?Action=connect&DBUser=thaw_loader&X-Amz-Algorithm=AWS4-HMAC-SHA256\
             &X-Amz-Credential=AKIDEXAMPLE%2F20261207%2Fus-east-1%2Frds-db%2Faws4_request&X-Amz-Date=20261207T114405Z&X-Amz-Expires=900\
             &X-Amz-SignedHeaders=host&X-Amz-Signature=773dafc78044bb87f7bcf27d2487ce2e654d19a2cb8d60411092634ae274eb26"
        );
        let session = Credentials::new("AKIDEXAMPLE", key, Some("SESSIONTOKEN/with+odd=chars".into()), None, "test");
        let token = rds_auth_token("my-aurora.cluster-xyz.eu-west-1.rds.amazonaws.com", 6543, "thaw_reader", "eu-west-1", session, at).unwrap();
        assert_eq!(
            token,
            "my-aurora.cluster-xyz.eu-west-1.rds.amazonaws.com:6543/?Action=connect&DBUser=thaw_reader&X-Amz-Algorithm=AWS4-HMAC-SHA256\
             &X-Amz-Credential=AKIDEXAMPLE%2F20261207%2Feu-west-1%2Frds-db%2Faws4_request&X-Amz-Date=20261207T114405Z&X-Amz-Expires=900\
             &X-Amz-SignedHeaders=host&X-Amz-Signature=de11e12311c51641bd9e51c2f14c1247397789cffadc4b0a29e616012e15ea8f\
             &X-Amz-Security-Token=SESSIONTOKEN%2Fwith%2Bodd%3Dchars"
        );
    }

    /// aws-sdk-rds panicked on a user name that is not valid in a URL; the
    /// signer here says so (and a Lambda reports it instead of crashing).
    #[test]
    fn a_user_name_that_cannot_be_signed_is_an_auth_error_not_a_panic() {
        let credentials = Credentials::new("AKIDEXAMPLE", "secret", None, None, "test");
        let err = rds_auth_token("db.example.com", 5432, "user name", "us-east-1", credentials, SystemTime::now()).unwrap_err();
        assert_eq!(err.kind, ErrorKind::AuthFailed, "{err}");
        assert!(err.message.contains("cannot sign an RDS IAM auth token for user name@db.example.com"), "{err}");
    }

    const CONFIG: &str = include_str!("../../../examples/config.json");

    fn snowflake_secret() -> SnowflakeSecret {
        let json = serde_json::json!({"account": "ORG-ACCT", "user": "THAW", "role": "THAW_READER", "warehouse": "THAW_WH",
            "private_key_pem": "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n"});
        SnowflakeSecret::from_json("arn:sf", json.as_object().unwrap()).unwrap()
    }

    #[test]
    fn a_port_override_that_is_not_a_port_is_an_error_not_ignored() {
        let lookup = |k: &str| (!k.starts_with("THAW_SF_ENDPOINT") && !k.starts_with("THAW_SF_CA_FILE")).then(|| format!("x-{k}"));
        let text = CONFIG.replace("${THAW_PG_PORT:-5432}", "5432");
        for bad in ["54321x", "0", "70000"] {
            let mut config = Config::from_text(&text, "examples/config.json", &lookup).unwrap();
            let err = apply_overrides(&mut config, None, None, &|k| (k == "THAW_PG_PORT").then(|| bad.to_string())).unwrap_err();
            assert_eq!(err.kind, ErrorKind::ConfigInvalid, "{err}");
            assert!(err.message.contains(&format!("THAW_PG_PORT '{bad}' is not a TCP port")), "{err}");
        }
        let mut config = Config::from_text(&text, "examples/config.json", &lookup).unwrap();
        apply_overrides(&mut config, None, None, &|k| (k == "THAW_PG_PORT").then(|| "6432".to_string())).unwrap();
        assert_eq!(config.postgres.port, Some(6432));
    }

    #[test]
    fn example_config_takes_key_pair_auth_and_database_password_from_secrets() {
        let sf = snowflake_secret();
        let pg = Secret("pg-$ecret-${not-a-var}".into());
        let vars = secret_variables(Some(&sf), Some(&pg), PgAuth::Secret);
        let process = BTreeMap::from([("THAW_PG_HOST", "proxy.example"), ("THAW_PG_USER", "thaw_loader"), ("THAW_PG_SSLMODE", "verify-full")]);
        let lookup = |k: &str| vars.get(k).map(|s| s.expose().to_string()).or_else(|| process.get(k).map(|v| v.to_string()));
        let mut config = Config::from_text(CONFIG, "examples/config.json", &lookup).unwrap();
        apply_overrides(&mut config, Some(&sf), Some(pg.clone()), &|k| process.get(k).map(|v| v.to_string())).unwrap();
        config.validate().unwrap();
        assert_eq!(config.snowflake.account, "ORG-ACCT");
        assert_eq!(config.snowflake.role.as_deref(), Some("THAW_READER"));
        assert_eq!(config.snowflake.warehouse.as_deref(), Some("THAW_WH"));
        assert!(config.snowflake.password.is_none());
        assert!(config.snowflake.rsa_key.as_ref().unwrap().expose().contains("BEGIN PRIVATE KEY"));
        assert!(config.snowflake.endpoint.is_none() && config.snowflake.ca_file.is_none());
        assert_eq!(config.postgres.password.as_ref().unwrap().expose(), "pg-$ecret-${not-a-var}");
        assert_eq!(config.postgres.sslmode.as_deref(), Some("verify-full"));
        let printed = format!("{config:?}");
        assert!(!printed.contains("pg-$ecret") && !printed.contains("MIIB"), "secrets leaked into Debug output");
    }

    #[test]
    fn snowflake_secret_left_empty_by_the_stack_is_rejected_with_the_fix() {
        let json = serde_json::json!({"account": "", "user": "", "role": "", "warehouse": "", "private_key_pem": ""});
        let err = SnowflakeSecret::from_json("arn:aws:secretsmanager:x", json.as_object().unwrap()).unwrap_err();
        assert_eq!(err.kind, ErrorKind::ConfigInvalid);
        assert!(err.message.contains("'account'") && err.message.contains("ops/deploy.md"), "{}", err.message);
    }

    #[test]
    fn pg_auth_names_the_accepted_values() {
        assert_eq!(PgAuth::from_env_value(None).unwrap(), PgAuth::Config);
        assert_eq!(PgAuth::from_env_value(Some("iam")).unwrap(), PgAuth::Iam);
        assert!(PgAuth::from_env_value(Some("kerberos")).unwrap_err().message.contains("iam, secret, config"));
    }
}
