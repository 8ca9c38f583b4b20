//! A malformed `plan` event (a wrong value, a missing field, a field of the
//! wrong type) is `ConfigInvalid`, never retried, naming what is wrong; it
//! used to fail as `lambda_runtime::deserializer::DeserializeError`, an
//! error type `statemachines/contract.json` does not list.

#[path = "../../lambda-support/tests/support/runtime_api.rs"]
mod runtime_api;

#[test]
fn malformed_plan_events_are_config_invalid() {
    runtime_api::assert_malformed_events_are_config_invalid(env!("CARGO_BIN_EXE_plan"), "plan", "PlanRequest", &[r#"{"mode": "sideways"}"#, r#"{"no_resume": "yes"}"#]);
}
