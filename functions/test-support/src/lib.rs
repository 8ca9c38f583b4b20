//! Connection settings for the local test harness (`tests/harness.py`), so
//! every integration test and tool reaches the same private PostgreSQL and
//! Snowflake emulator the same way.
//!
//! The harness exports `THAW_PG_HOST/PORT/USER/PASSWORD` and
//! `THAW_SF_ACCOUNT/USER/PASSWORD/ENDPOINT/CA_FILE`. Outside the harness the
//! functions panic with an instruction to run under it (tests must never pass
//! silently without their services).

use crate::config::{PostgresSettings, Secret, SnowflakeSettings};

/// The harness variable `name`; panics with "run under tests/harness.py (make test)" when unset.
pub fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run under tests/harness.py (make test)"))
}

/// Snowflake settings pointing at the harness emulator (password login, private CA).
pub fn snowflake() -> SnowflakeSettings {
    SnowflakeSettings {
        account: var("THAW_SF_ACCOUNT"),
        user: var("THAW_SF_USER"),
        password: Some(Secret(var("THAW_SF_PASSWORD"))),
        endpoint: Some(var("THAW_SF_ENDPOINT")),
        ca_file: Some(var("THAW_SF_CA_FILE")),
        ..Default::default()
    }
}

/// PostgreSQL settings for the harness server.
pub fn postgres() -> PostgresSettings {
    PostgresSettings {
        host: var("THAW_PG_HOST"),
        port: Some(var("THAW_PG_PORT").parse().expect("THAW_PG_PORT is a port number")),
        user: var("THAW_PG_USER"),
        password: Some(Secret(var("THAW_PG_PASSWORD"))),
        ..Default::default()
    }
}
