//! Plumbing shared by thaw's Lambda binaries, so each binary is an event
//! type, a response type and one call into the engine.
//!
//! * [`serve`]: start the runtime with JSON logs, load the configuration
//!   once per container (warm invocations reuse it) and map engine errors to
//!   Step Functions error names.
//! * The configuration file comes from `THAW_CONFIG` (default
//!   `/var/task/config.json`); `${VAR}` references resolve from the
//!   function's environment.

use std::future::Future;
use std::sync::{Arc, OnceLock};

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
        Diagnostic { error_type: e.0.kind.name().to_string(), error_message: e.0.message }
    }
}

static CONFIG: OnceLock<Arc<Config>> = OnceLock::new();

/// The configuration, loaded once per container.
pub fn config() -> Result<Arc<Config>, HandlerError> {
    if let Some(c) = CONFIG.get() {
        return Ok(c.clone());
    }
    let path = std::env::var("THAW_CONFIG").unwrap_or_else(|_| "/var/task/config.json".into());
    let c = Arc::new(Config::load(std::path::Path::new(&path))?);
    Ok(CONFIG.get_or_init(|| c).clone())
}

/// Run a Lambda whose handler takes the typed event `E` and returns `R`.
pub async fn serve<E, R, F, Fut>(handler: F) -> Result<(), lambda_runtime::Error>
where
    E: DeserializeOwned + Send + 'static,
    R: Serialize + Send + 'static,
    F: Fn(Arc<Config>, E) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = Result<R, HandlerError>> + Send,
{
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_current_span(false)
        .init();
    lambda_runtime::run(service_fn(move |event: LambdaEvent<E>| {
        let handler = handler.clone();
        async move {
            let config = config()?;
            handler(config, event.payload).await
        }
    }))
    .await
}
