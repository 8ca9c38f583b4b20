//! The planted conflict fixture shared by the conflict tests of every crate
//! (`functions/engine/tests/conflicts_*.rs`, `functions/thaw/tests/conflicts_cli.rs`):
//! providers A, B (active) and C (inactive), one caregiver SSN at each, the
//! legacy MPH bands and SETTINGS (`fixtures/conflicts_reference.sql`), and
//! visits giving four pairs — 1↔2 same schedule on 2025-03-12 (rule 1, both
//! orientations), 3↔4 completed on 2025-03-05, 15 minutes and 5.16 mi apart
//! (rule 7) — with visit 5 at the inactive provider (`fixtures/conflicts_visits.sql`),
//! all relative to "today" [`PLANTED_TODAY`].

use thaw_engine::config::ConflictSettings;
use tokio_postgres::Client;

use crate::{fresh_pg, unique};

/// Providers, caregivers, patients, SETTINGS and MPH bands, without visits.
pub const REFERENCE: &str = include_str!("../../engine/tests/fixtures/conflicts_reference.sql");

/// [`REFERENCE`] and the planted visits: 4 pairs, 4 conflicts on [`PLANTED_TODAY`].
pub const PLANTED: &str = concat!(
    include_str!("../../engine/tests/fixtures/conflicts_reference.sql"),
    include_str!("../../engine/tests/fixtures/conflicts_visits.sql")
);

/// The "today" (`YYYY-MM-DD`) the planted fixture is written for.
pub const PLANTED_TODAY: &str = "2025-03-10";

/// Conflict settings with "today" = `today` (`YYYY-MM-DD`); the database
/// name is unused by `thaw_engine::conflicts::run`, which gets its client.
pub fn settings_on(today: &str) -> ConflictSettings {
    ConflictSettings { database: "unused".into(), today: Some(today.into()), ..Default::default() }
}

/// [`settings_on`] the planted fixture's [`PLANTED_TODAY`].
pub fn planted_settings() -> ConflictSettings {
    settings_on(PLANTED_TODAY)
}

/// A fresh migrated database named after `name` (made unique) holding `sql`.
pub async fn database_with(name: &str, sql: &str) -> Client {
    let client = fresh_pg(&unique(name)).await;
    client.batch_execute(sql).await.expect("load the conflict fixture");
    client
}

/// A fresh migrated database named after `name` holding [`PLANTED`].
pub async fn planted(name: &str) -> Client {
    database_with(name, PLANTED).await
}

/// Owned copies of `items`, for comparing query results with literals.
pub fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// A full conflict night (`thaw_engine::conflicts::run`, `--full`) on the
/// planted fixture's "today"; panics when the run fails.
pub async fn planted_night(client: &mut Client) -> thaw_engine::contract::ConflictCreateResponse {
    thaw_engine::conflicts::run(client, &planted_settings(), thaw_engine::conflicts::DetectionMode::Full)
        .await
        .expect("conflict run")
}

/// The first column of every row of `sql`, as text; panics naming the
/// statement when it fails.
pub async fn texts(client: &Client, sql: &str) -> Vec<String> {
    client.query(sql, &[]).await.unwrap_or_else(|e| panic!("{sql}: {e}")).iter().map(|r| r.get(0)).collect()
}
