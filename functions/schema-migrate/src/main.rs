//! Lambda `schema-migrate`: the `onEvent` handler of the CDK custom-resource
//! Provider run on every deploy ([`custom_resource`] has the rules).
mod custom_resource;

use custom_resource::{handle, CustomResourceEvent, CustomResourceResponse};
use lambda_runtime::{service_fn, LambdaEvent};
use thaw_lambda::HandlerError;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    thaw_lambda::init_logging();
    lambda_runtime::run(service_fn(|event: LambdaEvent<CustomResourceEvent>| async move {
        Ok::<CustomResourceResponse, HandlerError>(handle(event.payload).await?)
    }))
    .await
}
