//! What `thaw run` writes to its log when stderr is not a terminal (CI,
//! Lambda, cron): JSON lines, each event once. Runs the real binary.

use thaw_test_support::*;

/// L1 (docs/sync.md §12): the legacy tool printed every log line twice (its
/// own handler and Lambda's). thaw installs one subscriber: every stderr line
/// of a run is one JSON event, each step starts once, each table is planned
/// once and each chunk is reported copied once.
#[tokio::test]
async fn l1_a_run_logs_each_event_once_as_json_lines() {
    let sf_db = unique("SFLOG").to_uppercase();
    let pg_db = unique("log");
    let sf = fresh_sf(&sf_db).await;
    create_orders(&sf, &sf_db, 300).await;
    let pg = fresh_pg(&pg_db).await;
    create_orders_target(&pg).await;
    let path = config_file(&config_text(&sf_db, &pg_db, &[&orders_table(Some(("Id", "int")), "")], ""));
    let out = thaw!(&["run", "--config", path.to_str().unwrap(), "--no-conflicts"], &[("RUST_LOG", "warn,thaw=info,thaw_engine=info")]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let events: Vec<serde_json::Value> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("a log line that is not one JSON event ({e}): {l}")))
        .collect();
    let message = |e: &serde_json::Value| e["fields"]["message"].as_str().unwrap_or_default().to_string();
    let count = |m: &str| events.iter().filter(|e| message(e) == m).count();
    let mut steps: Vec<String> =
        events.iter().filter(|e| message(e) == "step started").map(|e| e["fields"]["step"].as_str().unwrap_or_default().to_string()).collect();
    let all = steps.len();
    steps.sort();
    steps.dedup();
    assert_eq!(all, steps.len(), "a step was logged as started twice: {stderr}");
    assert!(steps.iter().any(|s| s == "plan"), "{steps:?}");
    let table_plans = events.iter().filter(|e| message(e) == "planned" && e["fields"]["table"].as_str() == Some("ORDERS")).count();
    assert_eq!(table_plans, 1, "{stderr}");
    let chunks: i64 = pg.query_one("SELECT count(*) FROM migration_status.migration_chunk_status", &[]).await.unwrap().get(0);
    assert!(chunks > 1);
    assert_eq!(count("chunk copied") as i64, chunks, "{stderr}");
}
