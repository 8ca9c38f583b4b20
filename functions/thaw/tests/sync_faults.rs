//! `thaw run` against a Snowflake that misbehaves over HTTP: the emulator's
//! fault control (docs/emulator.md §13) makes the copy's query submissions and
//! result-chunk downloads answer 500/503/429, drop or cut the connection, or
//! fail with a deterministic Snowflake error. Retry behaviour: docs/sync.md
//! §9.3. Each case runs the real `thaw` binary against the real emulator and
//! PostgreSQL, and counts the requests at the emulator.


use serde_json::{json, Value};
use thaw_test_support::*;

/// A regex for the copy's chunk SELECTs of `table` in `db` (the planner's own
/// queries start with COUNT/MIN/FLOOR and are never matched).
fn copy_select(db: &str, table: &str) -> String {
    format!(r#"^SELECT "Id", "Code", .* FROM "{db}"\."S"\."{table}" WHERE "#)
}

fn report(path: &std::path::Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("the report was written")).expect("the report is JSON")
}

/// ORDERS (and ORDERS2, a copy) in the emulator, their targets in
/// PostgreSQL, and a config whose sessions get results in 40-row pieces (an
/// inline batch plus downloaded chunks for every 100-row copy chunk).
async fn setup(label: &str, retry: &str) -> (String, tokio_postgres::Client, String, usize) {
    let sf_db = unique(&format!("SF{label}")).to_uppercase();
    let pg_db = unique(label);
    let sf = fresh_sf(&sf_db).await;
    let rows = create_orders(&sf, &sf_db, 600).await;
    sf.execute(&format!("CREATE TABLE \"{sf_db}\".\"S\".\"ORDERS2\" AS SELECT * FROM \"{sf_db}\".\"S\".\"ORDERS\"")).await.unwrap();
    let pg = fresh_pg(&pg_db).await;
    create_orders_target(&pg).await;
    pg.batch_execute("CREATE TABLE public.orders2 (LIKE public.orders INCLUDING ALL)").await.unwrap();
    let t1 = orders_table(Some(("Id", "int")), "");
    let t2 = t1.replace("\"source\": \"ORDERS\", \"target\": \"orders\"", "\"source\": \"ORDERS2\", \"target\": \"orders2\"");
    let text = config_text(&sf_db, &pg_db, &[&t1, &t2], retry).replace(
        r#""ca_file": "${THAW_SF_CA_FILE}"}"#,
        r#""ca_file": "${THAW_SF_CA_FILE}", "session_parameters": {"THAW_EMULATOR_ROWS_PER_CHUNK": 40}}"#,
    );
    assert!(text.contains("THAW_EMULATOR_ROWS_PER_CHUNK"), "the config carries the session parameter");
    (sf_db, pg, config_file(&text).to_str().unwrap().to_string(), rows)
}

/// Rows, distinct codes and an order-independent checksum of a target table.
async fn contents(pg: &tokio_postgres::Client, table: &str) -> (i64, i64, String) {
    let row = pg
        .query_one(
            &format!(
                "SELECT count(*), count(DISTINCT \"Code\"), coalesce(md5(string_agg(md5(t::text), '' ORDER BY md5(t::text))), '') FROM public.{table} t"
            ),
            &[],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1), row.get(2))
}

#[tokio::test]
async fn transient_http_faults_on_query_submission_and_result_chunks_are_retried_to_an_exact_copy() {
    let (sf_db, pg, cfg, rows) = setup("faultok", r#""retry_budget_seconds": 60, "max_retry_attempts": 3,"#).await;
    let faults = EmulatorFaults::new();
    let mut rules = Vec::new();
    for table in ["ORDERS", "ORDERS2"] {
        let select = copy_select(&sf_db, table);
        for (target, action, times) in [("query", "http_500", 2), ("query", "drop", 1), ("query", "truncate", 1), ("chunk", "http_500", 2), ("chunk", "drop", 1), ("chunk", "truncate", 1)] {
            rules.push(faults.add(json!({"target": target, "sql_regex": select, "action": action, "times": times})).await);
        }
        for target in ["query", "chunk"] {
            rules.push(faults.add(json!({"target": target, "sql_regex": select, "action": "http_503", "times": 1, "retry_after": 1})).await);
            rules.push(faults.add(json!({"target": target, "sql_regex": select, "action": "http_429", "times": 1, "retry_after": 1})).await);
        }
    }
    let path = std::env::temp_dir().join(format!("{}.json", unique("faults-ok")));
    let out = thaw!(&["run", "--config", &cfg, "--no-conflicts", "--report", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let r = report(&path);
    assert_eq!(r["status"], "completed", "{r}");

    // Every fault was served and every faulted request was sent again.
    for id in &rules {
        let (matched, faulted) = faults.counts(id).await;
        let rule: Value = faults.rule(id).await;
        assert_eq!(faulted, rule["times"].as_u64().unwrap(), "rule {rule} was not used up");
        assert!(matched > faulted, "rule {rule}: the faulted request was never sent again");
        faults.remove(id).await;
    }

    // An exact copy: every row once, the same contents as a fault-free copy.
    let orders = contents(&pg, "orders").await;
    assert_eq!((orders.0, orders.1), (rows as i64, rows as i64));
    assert_eq!(contents(&pg, "orders2").await, orders, "ORDERS2 holds the same rows as ORDERS");
    let (failed, retried): (i64, i64) = {
        let row = pg
            .query_one("SELECT count(*) FILTER (WHERE status <> 'completed'), count(*) FILTER (WHERE retry_count > 1) FROM migration_status.migration_chunk_status", &[])
            .await
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert_eq!(failed, 0, "every chunk completed");
    assert!(retried > 0, "the query faults made chunks retry");
}

/// A query submission answered HTTP 429 with `Retry-After: 2` is sent again
/// by the submission itself, after waiting at least the 2 s the server asked
/// for (docs/sync.md §9.3): the wait thaw logs is at least the hint, the
/// emulator saw the refused SELECT once more, and no chunk needed a second
/// attempt of its own (so the retry was the submission's, not the chunk
/// budget's jittered one). The copy is exact.
#[tokio::test]
async fn a_query_submission_answered_429_waits_the_retry_after_before_sending_it_again() {
    let (sf_db, pg, cfg, rows) = setup("faultwait", r#""retry_budget_seconds": 60, "max_retry_attempts": 3,"#).await;
    let faults = EmulatorFaults::new();
    let throttle = faults.add(json!({"target": "query", "sql_regex": copy_select(&sf_db, "ORDERS"), "action": "http_429", "times": 1, "retry_after": 2})).await;
    let out = thaw!(&["run", "--config", &cfg, "--no-conflicts"]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(0), "{said}");
    let chunks: i64 = pg
        .query_one("SELECT count(*) FROM migration_status.migration_chunk_status WHERE source_table = 'ORDERS'", &[])
        .await
        .unwrap()
        .get(0);
    assert!(chunks > 1, "ORDERS was planned in several chunks");
    // One refusal, and the refused SELECT sent once more: every chunk's SELECT plus one.
    assert_eq!(faults.counts(&throttle).await, (chunks as u64 + 1, 1));
    faults.remove(&throttle).await;
    let attempts: i64 = pg
        .query_one("SELECT max(retry_count)::int8 FROM migration_status.migration_chunk_status WHERE source_table = 'ORDERS' AND status = 'completed'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(attempts, 1, "no chunk needed a second attempt: the submission retried itself");
    // The logged wait (JSON lines on stderr) is at least the server's hint.
    let waits: Vec<(u64, String)> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["fields"]["message"].as_str().is_some_and(|m| m.contains("to a query request")))
        .map(|l| (l["fields"]["wait_ms"].as_u64().unwrap_or(0), l["fields"]["message"].as_str().unwrap_or_default().to_string()))
        .collect();
    assert_eq!(waits.len(), 1, "one logged wait: {said}");
    let (wait_ms, message) = &waits[0];
    assert!(*wait_ms >= 2000, "waited {wait_ms} ms, less than Retry-After: 2 s: {message}");
    assert!(message.contains("HTTP 429") && message.contains("(Retry-After: 2 s)") && message.contains("attempt 2 of 3"), "{message}");
    let orders = contents(&pg, "orders").await;
    assert_eq!((orders.0, orders.1), (rows as i64, rows as i64));
    assert_eq!(contents(&pg, "orders2").await, orders);
}

#[tokio::test]
async fn persistent_chunk_download_fault_fails_the_table_naming_table_and_chunk_and_resume_completes() {
    let (sf_db, pg, cfg, rows) = setup("faultbad", r#""retry_budget_seconds": 1, "max_retry_attempts": 2,"#).await;
    let faults = EmulatorFaults::new();
    let forever = faults.add(json!({"target": "chunk", "sql_regex": copy_select(&sf_db, "ORDERS2"), "action": "http_500", "times": 1_000_000})).await;
    let path = std::env::temp_dir().join(format!("{}.json", unique("faults-bad")));
    let out = thaw!(&["run", "--config", &cfg, "--no-conflicts", "--report", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let all = text(&out);
    assert!(all.contains(": partial"), "the summary names the status:\n{all}");
    let r = report(&path);
    assert_eq!(r["status"], "partial", "{r}");
    let run_id = r["plan"]["run_id"].as_str().unwrap().to_string();
    let row = pg
        .query_one(
            "SELECT r.status, t.status, t.error_message FROM migration_status.migration_runs r JOIN migration_status.migration_table_status t USING (run_id) WHERE t.source_table = 'ORDERS2'",
            &[],
        )
        .await
        .unwrap();
    let (run_status, table_status, error): (String, String, String) = (row.get(0), row.get(1), row.get(2));
    assert_eq!((run_status.as_str(), table_status.as_str()), ("partial", "failed"));
    for needle in ["ORDERS2", "chunk ", "HTTP 500", "download attempts"] {
        assert!(error.contains(needle), "the table's error names {needle:?}: {error}");
    }
    assert_eq!(contents(&pg, "orders").await.0, rows as i64, "the healthy table copied in full");
    // Each failed chunk attempt tried its download 3 times, and each chunk had at least 2 attempts.
    assert!(faults.counts(&forever).await.0 >= 6, "{:?}", faults.counts(&forever).await);

    // The fault clears: the next run resumes the same run and completes it exactly.
    faults.remove(&forever).await;
    let out = thaw!(&["run", "--config", &cfg, "--no-conflicts", "--report", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let r = report(&path);
    assert_eq!((r["status"].as_str(), r["plan"]["run_id"].as_str(), r["plan"]["resumed"].as_bool()), (Some("completed"), Some(run_id.as_str()), Some(true)), "{r}");
    let orders = contents(&pg, "orders").await;
    assert_eq!((orders.0, orders.1), (rows as i64, rows as i64));
    assert_eq!(contents(&pg, "orders2").await, orders);
}

#[tokio::test]
async fn deterministic_snowflake_error_is_not_retried() {
    let (sf_db, pg, cfg, rows) = setup("faultsql", r#""retry_budget_seconds": 60, "max_retry_attempts": 3,"#).await;
    let faults = EmulatorFaults::new();
    let compile_error = faults
        .add(json!({"target": "query", "sql_regex": copy_select(&sf_db, "ORDERS2"), "action": "sql_error", "times": 1_000_000,
                    "code": "001003", "message": "SQL compilation error: syntax error line 1 at position 7 unexpected 'FROM'."}))
        .await;
    let out = thaw!(&["run", "--config", &cfg, "--no-conflicts"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let chunks: i64 = pg
        .query_one("SELECT count(*) FROM migration_status.migration_chunk_status WHERE source_table = 'ORDERS2'", &[])
        .await
        .unwrap()
        .get(0);
    assert!(chunks > 1, "ORDERS2 was planned in several chunks");
    // Each chunk's SELECT reached the emulator exactly once: no retry.
    assert_eq!(faults.counts(&compile_error).await, (chunks as u64, chunks as u64));
    let error: String = pg
        .query_one("SELECT error_message FROM migration_status.migration_table_status WHERE source_table = 'ORDERS2'", &[])
        .await
        .unwrap()
        .get(0);
    assert!(error.contains("SQL compilation error") && error.contains("ORDERS2"), "{error}");
    let retried: i64 = pg
        .query_one("SELECT coalesce(max(retry_count), 0)::int8 FROM migration_status.migration_chunk_status WHERE source_table = 'ORDERS2'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(retried, 1, "each chunk was attempted once (retry_count counts attempts)");
    assert_eq!(contents(&pg, "orders").await.0, rows as i64);
    assert_eq!(contents(&pg, "orders2").await.0, 0, "nothing of the failed table was written");
    faults.remove(&compile_error).await;
}

/// A login answered HTTP 503 (a busy or restarting service) is a transient
/// failure, never reported as rejected credentials: `snowflake-api` reports
/// every failed login as an authentication error, so thaw's HTTP layer
/// records the status of the login request and the source classifies by it.
/// A login that keeps failing names the status and exits 1 (a runtime
/// failure), not 2 with "check the password"; a single 503 on the plan
/// step's login is retried and the run completes.
#[tokio::test]
async fn a_login_answered_503_is_transient_never_reported_as_bad_credentials() {
    let (sf_db, pg, cfg, rows) = setup("faultlogin", r#""retry_budget_seconds": 5, "max_retry_attempts": 3,"#).await;
    let faults = EmulatorFaults::new();
    let regex = format!("databaseName={sf_db}(&|$)");
    let always = faults.add(json!({"target": "login", "sql_regex": regex, "action": "http_503", "times": 1_000_000})).await;
    let out = thaw!(&["run", "--config", &cfg, "--no-conflicts"]);
    let said = text(&out);
    faults.remove(&always).await;
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("HTTP 503") && said.contains("login request"), "{said}");
    assert!(!said.contains("AuthFailed") && !said.contains("password"), "a busy login is not bad credentials: {said}");
    assert_eq!(contents(&pg, "orders").await.0, 0, "nothing was written");

    let once = faults.add(json!({"target": "login", "sql_regex": regex, "action": "http_503", "times": 1})).await;
    let out = thaw!(&["run", "--config", &cfg, "--no-conflicts"]);
    let (matched, faulted) = faults.counts(&once).await;
    faults.remove(&once).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(faulted, 1);
    assert!(matched > 1, "the faulted login was tried again");
    assert_eq!(contents(&pg, "orders").await.0, rows as i64);
}
