//! A malformed `conflict-create` event (a wrong value, a missing field, a field of the
//! wrong type) is `ConfigInvalid`, never retried, naming what is wrong; it
//! used to fail as `lambda_runtime::deserializer::DeserializeError`, an
//! error type `statemachines/contract.json` does not list.

#[path = "../../lambda-support/tests/support/runtime_api.rs"]
mod runtime_api;

#[test]
fn malformed_conflict_create_events_are_config_invalid() {
    runtime_api::assert_malformed_events_are_config_invalid(env!("CARGO_BIN_EXE_conflict-create"), "conflict-create", "ConflictCreateRequest", &[r#"{"full": "yes"}"#, r#"{"run_id": "not-a-uuid"}"#]);
}
