//! Plumbing shared by thaw's Lambda binaries, so each binary is an event
//! type, a response type and one call into the engine.
//!
//! * [`serve`]: start the runtime with JSON logs, load the configuration
//!   once per container (warm invocations reuse it, see [`config`]) and map
//!   engine errors to Step Functions error names.
//! * [`config`]: `config.json` from `THAW_CONFIG_URI` (`s3://…` or a path) or
//!   `THAW_CONFIG`, with connection settings and secrets filled from the
//!   environment and Secrets Manager ([`cloud`] has the rules).
//! * PostgreSQL connections, TLS included, are the engine's
//!   ([`thaw_engine::sink::connect`]: `postgres.sslmode`, `THAW_PG_CA_FILE`).
//! * [`metrics`]: CloudWatch metrics as Embedded Metric Format log lines.
//!
//! Secrets never reach logs or results: they live only in
//! [`thaw_engine::config::Secret`] values, whose `Debug` is redacted.

pub mod aws;
pub mod cloud;
pub mod metrics;

use std::future::Future;
use std::sync::Arc;

use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use serde::de::DeserializeOwned;
use serde::Serialize;
use thaw_engine::config::Config;

/// A handler error carrying the engine's error kind as the error type that
/// ASL `Retry`/`Catch` `ErrorEquals` match (`Transient`, `ChunkFailed`, ...).
#[derive(Debug)]
pub struct HandlerError(pub thaw_engine::Error);

impl From<thaw_engine::Error> for HandlerError {
    fn from(e: thaw_engine::Error) -> Self {
        HandlerError(e)
    }
}

impl From<HandlerError> for Diagnostic {
    fn from(e: HandlerError) -> Diagnostic {
        tracing::error!(error_type = e.0.kind.name(), message = %e.0.message, "step failed");
        Diagnostic { error_type: e.0.kind.name().to_string(), error_message: e.0.message }
    }
}

/// The configuration for this invocation: loaded once per container, with a
/// fresh IAM auth token when `THAW_PG_AUTH=iam` (see [`cloud::load`]).
pub async fn config() -> Result<Arc<Config>, HandlerError> {
    Ok(cloud::current().await?)
}

/// Start JSON logging (`RUST_LOG` filter, default `info`). Called by [`serve`].
pub fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_current_span(false)
        .without_time()
        .try_init();
}

/// Decode a step's event (the JSON the state machine sent) into its request
/// type `E` (`statemachines/contract.json`).
///
/// Errors: an event of another shape (a missing field, a field of the wrong
/// type, a value out of range) is [`thaw_engine::ErrorKind::ConfigInvalid`]
/// (`ConfigInvalid`, never retried), naming the function, the expected type
/// and serde's description of the first problem. Left to `lambda_runtime`,
/// the same event failed with the error type
/// `lambda_runtime::deserializer::DeserializeError`, which no `ErrorEquals`
/// of the contract names.
pub fn decode_event<E: DeserializeOwned>(event: serde_json::Value) -> Result<E, HandlerError> {
    serde_json::from_value(event).map_err(|e| {
        let function = std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| "this".into());
        let expected = std::any::type_name::<E>().rsplit("::").next().unwrap_or("request");
        HandlerError(thaw_engine::Error::config(format!(
            "the {function} Lambda's event is not a valid {expected}: {e}; send the request shape of statemachines/contract.json"
        )))
    })
}

/// Run a Lambda whose handler takes the typed event `E` and returns `R`.
///
/// The event is decoded by [`decode_event`] (a malformed event is
/// `ConfigInvalid`) before the configuration is loaded.
pub async fn serve<E, R, F, Fut>(handler: F) -> Result<(), lambda_runtime::Error>
where
    E: DeserializeOwned + Send + 'static,
    R: Serialize + Send + 'static,
    F: Fn(Arc<Config>, E) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = Result<R, HandlerError>> + Send,
{
    init_logging();
    thaw_engine::allocator::return_large_buffers_to_the_system();
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
        let handler = handler.clone();
        async move {
            let request: E = decode_event(event.payload)?;
            let config = config().await?;
            handler(config, request).await
        }
    }))
    .await
}
