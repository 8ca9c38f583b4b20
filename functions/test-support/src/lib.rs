//! Test support shared by every crate's integration tests: connection
//! settings for the services `tests/harness.py` starts (a private PostgreSQL
//! and the Snowflake emulator), fresh per-test databases, the ORDERS fixture
//! table, the planted conflict fixture ([`conflicts`]), and a way to run
//! the real `thaw` binary.
//!
//! The harness exports `THAW_PG_HOST/PORT/USER/PASSWORD` and
//! `THAW_SF_ACCOUNT/USER/PASSWORD/ENDPOINT/CA_FILE`. Outside the harness the
//! functions panic with an instruction to run under it (tests must never pass
//! silently without their services). This crate is a dev-dependency only:
//! no binary that ships links it.

pub mod conflicts;

use std::path::PathBuf;
use std::process::Output;

use thaw_engine::config::{Config, PostgresSettings, Secret, SnowflakeSettings};
use thaw_engine::source::{self, SnowflakeSource};
use tokio_postgres::Client;

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
/// A unique lower-case name for this test's databases.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple().to_string().get(..10).unwrap())
}

/// Create a fresh PostgreSQL database and return a connection to it.
pub async fn fresh_pg(name: &str) -> Client {
    let admin = thaw_engine::sink::connect(&postgres(), "postgres").await.expect("connect to harness PostgreSQL");
    admin.batch_execute(&format!("CREATE DATABASE \"{name}\"")).await.expect("create database");
    let mut client = thaw_engine::sink::connect(&postgres(), name).await.expect("connect to the new database");
    thaw_engine::migrations::migrate(&mut client).await.expect("migrate the new database");
    client
}

/// Connect to a database of the harness PostgreSQL.
pub async fn pg(name: &str) -> Client {
    thaw_engine::sink::connect(&postgres(), name).await.expect("connect")
}

/// Create a fresh Snowflake database with schema `S` and return a session in it.
pub async fn fresh_sf(db: &str) -> SnowflakeSource {
    let s = source::connect(&snowflake(), None, None).await.expect("connect to the emulator");
    s.execute(&format!("CREATE DATABASE \"{db}\"")).await.expect("create database");
    s.execute(&format!("CREATE SCHEMA \"{db}\".\"S\"")).await.expect("create schema");
    source::connect(&snowflake(), Some(db), Some("S")).await.expect("connect to the new database")
}

/// A config JSON text for one source `src` (Snowflake `db.S` → PostgreSQL `pg_db.public`)
/// with the given table objects (JSON text).
pub fn config_text(sf_db: &str, pg_db: &str, tables: &[&str], extra_top: &str) -> String {
    format!(
        r#"{{
  "snowflake": {{"account": "${{THAW_SF_ACCOUNT}}", "user": "${{THAW_SF_USER}}", "password": "${{THAW_SF_PASSWORD}}",
                 "endpoint": "${{THAW_SF_ENDPOINT}}", "ca_file": "${{THAW_SF_CA_FILE}}"}},
  "postgres": {{"host": "${{THAW_PG_HOST}}", "port": ${{THAW_PG_PORT}}, "user": "${{THAW_PG_USER}}", "password": "${{THAW_PG_PASSWORD}}"}},
  "parallel_threads": 3,
  {extra_top}
  "sources": [{{"source_name": "src", "source_sf_database": "{sf_db}", "source_sf_schema": "S",
                "target_pg_database": "{pg_db}", "target_pg_schema": "public",
                "tables": [{}]}}]
}}"#,
        tables.join(",\n")
    )
}

/// Parse a config text with the process environment.
pub fn config(text: &str) -> Config {
    Config::from_text(text, "test", &|k| std::env::var(k).ok()).expect("valid test config")
}

/// Write `text` to a temporary config file and return its path.
pub fn config_file(text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join("thaw-test-configs");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{}.json", unique("cfg")));
    std::fs::write(&path, text).unwrap();
    path
}


/// stdout + stderr of a finished command, for assertions.
pub fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// Count rows of a PostgreSQL table.
pub async fn pg_count(c: &Client, table: &str) -> i64 {
    c.query_one(&format!("SELECT count(*) FROM {table}"), &[]).await.expect("count").get(0)
}

/// Rows of the test table ORDERS: skewed, sparse and NULL-bearing keys.
/// Returns the number of rows inserted.
///
/// * `"Id"` NUMBER: dense 1..=dense, then sparse steps of 1000, plus NULLs;
/// * `"Day"` TIMESTAMP_TZ: half the rows on one day, the rest spread, some NULL;
/// * `"Code"` text UUID: unique key (never NULL);
/// * `"Updated"` TIMESTAMP_TZ: the watermark.
pub async fn create_orders(sf: &SnowflakeSource, db: &str, rows: usize) -> usize {
    sf.execute(&format!(
        "CREATE OR REPLACE TABLE \"{db}\".\"S\".\"ORDERS\" (\"Id\" NUMBER(38,0), \"Code\" VARCHAR(100), \"Day\" TIMESTAMP_TZ, \
         \"Amount\" NUMBER(19,3), \"Flag\" BOOLEAN, \"Note\" VARCHAR(50), \"Updated\" TIMESTAMP_TZ)"
    ))
    .await
    .expect("create ORDERS");
    let mut values = Vec::new();
    for i in 0..rows {
        let id = if i % 97 == 13 {
            "NULL".to_string()
        } else if i < rows * 2 / 3 {
            (i + 1).to_string()
        } else {
            (1_000_000 + i * 1000).to_string()
        };
        let day = if i % 53 == 7 {
            "NULL".to_string()
        } else if i % 2 == 0 {
            "'2026-03-01 10:00:00-05:00'".to_string()
        } else {
            format!("'2026-{:02}-{:02} {:02}:30:00-08:00'", 1 + (i % 11), 1 + (i % 27), i % 24)
        };
        let code = format!("{:08x}-0000-4000-8000-{:012x}", i * 7919 % 100_000_007, i);
        let note = if i % 5 == 0 { "NULL".to_string() } else { format!("'note {i} O''Brien'") };
        values.push(format!(
            "({id}, '{code}', {day}, {}.{:03}, {}, {note}, '2026-04-01 00:00:{:02}.{:06}+00:00')",
            i * 3,
            i % 1000,
            if i % 3 == 0 { "TRUE" } else { "FALSE" },
            i % 60,
            i
        ));
    }
    for part in values.chunks(400) {
        sf.execute(&format!("INSERT INTO \"{db}\".\"S\".\"ORDERS\" VALUES {}", part.join(", "))).await.expect("insert ORDERS");
    }
    rows
}

/// The columns of ORDERS' PostgreSQL target, without any key (a test that
/// must see duplicates creates `public.orders` from these alone).
pub const ORDERS_TARGET_COLUMNS: &str = "\"Id\" int8, \"Code\" uuid NOT NULL, \"Day\" timestamptz, \"Amount\" numeric(19,3), \
     \"Flag\" bool, \"Note\" varchar(50), \"Updated\" timestamptz";

/// The ORDERS fixture: `rows` rows of [`create_orders`] in a fresh emulator
/// database `SF<prefix>…` and an empty [`create_orders_target`] in a fresh
/// PostgreSQL database `<prefix>…`. Returns (Snowflake database, PostgreSQL
/// database, a connection to it, the emulator session).
pub async fn orders(prefix: &str, rows: usize) -> (String, String, Client, SnowflakeSource) {
    let sf_db = unique(&format!("SF{prefix}")).to_uppercase();
    let pg_db = unique(prefix);
    let sf = fresh_sf(&sf_db).await;
    create_orders(&sf, &sf_db, rows).await;
    let pg = fresh_pg(&pg_db).await;
    create_orders_target(&pg).await;
    (sf_db, pg_db, pg, sf)
}

/// The PostgreSQL target of ORDERS (in schema public), with a unique key on "Code".
pub async fn create_orders_target(pg: &Client) {
    pg.batch_execute(&format!("CREATE TABLE public.orders ({ORDERS_TARGET_COLUMNS}, UNIQUE (\"Code\"))"))
        .await
        .expect("create orders");
}

/// A table entry of the config for ORDERS with the given chunking.
pub fn orders_table(chunk_col: Option<(&str, &str)>, extra: &str) -> String {
    let chunking = match chunk_col {
        Some((c, t)) => format!(r#""chunking_columns": ["{c}"], "chunking_column_types": ["{t}"],"#),
        None => String::new(),
    };
    format!(
        r#"{{"source": "ORDERS", "target": "orders", {chunking} "uniqueness_columns": ["Code"],
             "source_watermark": "Updated", "target_watermark": "Updated", "batch_size": 100 {extra}}}"#
    )
}

/// The `thaw` binary to run: `$THAW_TEST_BIN` when set (a copy taken right
/// after the build, for a `CARGO_TARGET_DIR` shared by several checkouts,
/// where `target/debug/thaw` may be overwritten by another checkout's build
/// while tests run), else `bin` (the binary Cargo built).
pub fn thaw_bin(bin: &str) -> String {
    std::env::var("THAW_TEST_BIN").ok().filter(|b| !b.is_empty()).unwrap_or_else(|| bin.to_string())
}

/// Run the `thaw` binary at `bin` (see [`thaw_bin`]) with `args` and extra
/// environment variables `envs`; returns its exit status and output. Use the
/// [`thaw!`] macro from the CLI's tests, which supplies the binary Cargo built.
pub fn run_thaw(bin: &str, args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = std::process::Command::new(thaw_bin(bin));
    cmd.args(args);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().expect("run thaw")
}

/// Run the real `thaw` binary of the calling test crate:
/// `thaw!(&["validate", ...])` or `thaw!(&[...], &[("VAR", "value")])`.
/// Only usable from the `thaw` crate's integration tests
/// (it expands `env!("CARGO_BIN_EXE_thaw")` there).
#[macro_export]
macro_rules! thaw {
    ($args:expr) => {
        $crate::run_thaw(env!("CARGO_BIN_EXE_thaw"), $args, &[])
    };
    ($args:expr, $envs:expr) => {
        $crate::run_thaw(env!("CARGO_BIN_EXE_thaw"), $args, $envs)
    };
}

/// The repository root (for fixtures such as `examples/config.json`).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A TCP proxy in front of the harness PostgreSQL that can simulate a server
/// outage for one test without touching the shared server (other tests run
/// against it at the same time): [`FlakyProxy::outage`] cuts every open
/// connection and refuses new ones (accepted and closed at once) for a while,
/// as a PostgreSQL restart or failover does to its clients.
pub struct FlakyProxy {
    /// Port on 127.0.0.1 to point `postgres.port` at.
    pub port: u16,
    down: std::sync::Arc<std::sync::atomic::AtomicBool>,
    kill: std::sync::Arc<tokio::sync::watch::Sender<u64>>,
}

impl FlakyProxy {
    /// Start a proxy to the harness PostgreSQL (`THAW_PG_HOST:THAW_PG_PORT`).
    pub async fn start() -> FlakyProxy {
        use std::sync::atomic::Ordering;
        let target = format!("{}:{}", var("THAW_PG_HOST"), var("THAW_PG_PORT"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let down = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let kill = std::sync::Arc::new(tokio::sync::watch::channel(0u64).0);
        let (d, k) = (down.clone(), kill.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else { continue };
                if d.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let mut killed = k.subscribe();
                let target = target.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = killed.changed() => {}
                    }
                });
            }
        });
        FlakyProxy { port, down, kill }
    }

    /// Cut every open connection now and refuse new ones for `duration`.
    pub fn outage(&self, duration: std::time::Duration) {
        use std::sync::atomic::Ordering;
        self.down.store(true, Ordering::SeqCst);
        self.kill.send_modify(|n| *n += 1);
        let down = self.down.clone();
        tokio::spawn(async move {
            tokio::time::sleep(duration).await;
            down.store(false, Ordering::SeqCst);
        });
    }
}

/// The emulator's fault-control endpoint (docs/emulator.md §13), over the same
/// TLS as thaw's client: register rules that make matching query submissions
/// or result-chunk downloads fail, and read how often requests matched. A
/// rule with `"times": 0` never faults and only counts.
pub struct EmulatorFaults {
    client: reqwest::Client,
    base: String,
}

impl Default for EmulatorFaults {
    fn default() -> Self {
        Self::new()
    }
}

impl EmulatorFaults {
    /// A client for the harness emulator (`THAW_SF_ENDPOINT`, `THAW_SF_CA_FILE`).
    pub fn new() -> EmulatorFaults {
        let ca = std::fs::read(var("THAW_SF_CA_FILE")).expect("read the harness CA");
        let client = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("CA is PEM"))
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .expect("HTTPS client");
        EmulatorFaults { client, base: format!("https://{}/thaw-emulator/faults", var("THAW_SF_ENDPOINT")) }
    }

    /// Register a rule (JSON as in docs/emulator.md §13); returns its id.
    pub async fn add(&self, rule: serde_json::Value) -> String {
        let response = self.client.post(&self.base).json(&rule).send().await.expect("register a fault rule");
        assert_eq!(response.status().as_u16(), 201, "fault rule {rule} refused: {}", response.text().await.unwrap_or_default());
        response.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_string()
    }

    /// A rule as the emulator reports it (its JSON with `matched` and `faulted`).
    pub async fn rule(&self, id: &str) -> serde_json::Value {
        self.client.get(format!("{}/{id}", self.base)).send().await.unwrap().json().await.unwrap()
    }

    /// (matched, faulted) of a rule: requests that matched its regex, and those answered with its fault.
    pub async fn counts(&self, id: &str) -> (u64, u64) {
        let rule = self.rule(id).await;
        (rule["matched"].as_u64().unwrap(), rule["faulted"].as_u64().unwrap())
    }

    /// Remove a rule.
    pub async fn remove(&self, id: &str) {
        self.client.delete(format!("{}/{id}", self.base)).send().await.unwrap();
    }
}
