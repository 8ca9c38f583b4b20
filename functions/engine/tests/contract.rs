//! `statemachines/contract.json` is generated from the Rust step types
//! ([`thaw_engine::contract::contract_json`]); the infra tests check the ASL
//! against it. This test fails when the committed file is stale.
//! Regenerate with `THAW_UPDATE_CONTRACT=1 cargo test -p thaw-engine --test integration contract::`.

use std::path::PathBuf;

#[test]
fn committed_contract_matches_the_rust_types() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../statemachines/contract.json");
    let generated = serde_json::to_string_pretty(&thaw_engine::contract::contract_json()).unwrap() + "\n";
    if std::env::var_os("THAW_UPDATE_CONTRACT").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "statemachines/contract.json is stale: run THAW_UPDATE_CONTRACT=1 cargo test -p thaw-engine --test integration contract:: and commit it"
    );
}

#[test]
fn every_step_names_types_with_schemas_and_the_errors_are_complete() {
    let contract = thaw_engine::contract::contract_json();
    for (step, request, response) in thaw_engine::contract::STEPS {
        for name in [request, response] {
            assert!(contract["types"][name].is_object(), "{step}: no schema for {name}");
        }
    }
    let props = contract["types"]["ChunkItem"]["properties"].as_object().unwrap();
    let mut fields: Vec<&str> = props.keys().map(String::as_str).collect();
    fields.sort();
    // file_key / staged: the staged path's per-file and unload items (docs/sync.md §13.7).
    assert_eq!(fields, ["chunk_id", "file_key", "run_id", "source_name", "source_table", "staged"]);
    assert_eq!(contract["retryable"], serde_json::json!(["Transient", "Unreachable", "Locked"]));
    assert_eq!(contract["errors"].as_array().unwrap().len(), 10);
}

#[test]
fn the_reconcile_lambda_event_selects_reconcile_or_dual_read_and_names_a_bad_operation() {
    use thaw_engine::contract::{DualReadOperation, ReconcileLambdaRequest};
    let run_id = "123e4567-e89b-42d3-a456-426614174000";
    match ReconcileLambdaRequest::from_event(serde_json::json!({ "run_id": run_id })).unwrap() {
        ReconcileLambdaRequest::Reconcile(r) => assert_eq!(r.run_id.to_string(), run_id),
        other => panic!("expected reconcile, got {other:?}"),
    }
    let event = serde_json::json!({ "operation": "dual-read", "run_id": run_id, "snowflake_database": "LEGACY" });
    match ReconcileLambdaRequest::from_event(event).unwrap() {
        ReconcileLambdaRequest::DualRead(r) => {
            assert_eq!(r.operation, DualReadOperation::DualRead);
            assert_eq!(r.snowflake_database.as_deref(), Some("LEGACY"));
            assert_eq!(r.snowflake_schema, None);
        }
        other => panic!("expected dual-read, got {other:?}"),
    }
    let e = ReconcileLambdaRequest::from_event(serde_json::json!({ "operation": "dual_read" })).unwrap_err();
    assert_eq!(e.kind, thaw_engine::ErrorKind::ConfigInvalid);
    assert!(e.message.contains("\"dual_read\"") && e.message.contains("\"dual-read\""), "{}", e.message);
    let e = ReconcileLambdaRequest::from_event(serde_json::json!({ "operation": "reconcile" })).unwrap_err();
    assert!(e.message.contains("RunRequest") && e.message.contains("run_id"), "{}", e.message);
}
