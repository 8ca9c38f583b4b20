//! One test binary for the CLI's integration tests: the real `thaw` binary as an operator runs it.
//!
//! Each file of this directory is a module of it (its tests are named
//! `file::test`, e.g. `-E 'test(/^bad_input::/)'` runs one file's), instead of a
//! binary of its own: one crate to compile and link instead of one per file cuts
//! the build of `make test` on CI's two cores. A new file here must be added
//! below (`tests/check_repository.py` fails otherwise; `autotests = false`
//! in Cargo.toml).

mod bad_input;
mod config_robustness;
mod conflicts_cli;
mod cutover_docs;
mod demo_end_to_end;
mod logging;
mod reconcile_mismatch;
mod run_lifecycle;
mod status_freshness;
mod sync_faults;
mod sync_memory;
