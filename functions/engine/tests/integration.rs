//! One test binary for the engine's integration tests: sync, reconcile, conflicts and the cutover gate against the harness's PostgreSQL, emulator and S3 API.
//!
//! Each file of this directory is a module of it (its tests are named
//! `file::test`, e.g. `-E 'test(/^conflicts_app_queries::/)'` runs one file's), instead of a
//! binary of its own: one crate to compile and link instead of one per file cuts
//! the build of `make test` on CI's two cores. A new file here must be added
//! below (`tests/check_repository.py` fails otherwise; `autotests = false`
//! in Cargo.toml).

mod conflicts_app_queries;
mod conflicts_candidate_copy;
mod conflicts_contacts;
mod conflicts_detect;
mod conflicts_findings;
mod conflicts_groups;
mod conflicts_in_service;
mod conflicts_incremental;
mod conflicts_legacy_scenarios;
mod conflicts_lifecycle;
mod conflicts_prices;
mod conflicts_probe;
mod conflicts_scenarios;
mod conflicts_store;
mod contract;
mod cutover_gate;
mod emulator_client;
mod legacy_defects;
mod reconcile_nightly;
mod reconcile_row_hashes;
mod reconcile_rows;
mod sync_chunking;
mod sync_copy_safety;
mod sync_crash_suite;
mod sync_drift;
mod sync_exactly_once;
mod sync_incremental;
mod sync_runs;
mod sync_staged;
mod types_roundtrip;
