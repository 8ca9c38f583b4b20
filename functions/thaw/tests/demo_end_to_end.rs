//! The demo, as a test: seed the emulated Snowflake with the generated
//! Conflict Management dataset, run the nightly job with the example
//! configuration, find exactly the planted conflicts, then mutate the source
//! and check that the second run loads only the changes, reconciles clean and
//! writes no new conflicts.


use thaw_test_support::*;

const VISITS: &str = "6000";
const SEED: &str = "11";

fn run_ok(args: &[&str], envs: &[(&str, &str)]) -> String {
    let out = thaw!(args, envs);
    let text = text(&out);
    assert!(out.status.success(), "thaw {args:?} failed:\n{text}");
    text
}

fn report(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("report written")).expect("report is JSON")
}

#[tokio::test]
async fn nightly_job_finds_planted_conflicts_and_reruns_incrementally() {
    let db = unique("demo");
    let dir = std::env::temp_dir().join(unique("demo-run"));
    std::fs::create_dir_all(&dir).unwrap();
    let manifests = dir.to_str().unwrap().to_string();
    let envs = [("THAW_PG_DATABASE", db.as_str()), ("THAW_MANIFEST_DIR", manifests.as_str())];
    let config = "../../examples/config.json";
    let dataset = ["--config", config, "--visits", VISITS, "--seed", SEED];

    run_ok(&[&["dev", "seed"][..], &dataset[..]].concat(), &envs);
    let first = dir.join("run1.json");
    let out = run_ok(&["run", "--config", config, "--report", first.to_str().unwrap()], &envs);
    assert!(out.contains("0 mismatch(es)"), "{out}");
    let check = run_ok(&[&["dev", "check-planted"][..], &dataset[..]].concat(), &envs);
    assert!(check.contains("0 missing, 0 unexpected, 0 with wrong flags"), "{check}");
    let r1 = report(&first);
    let inserted_first = r1["conflicts"]["inserted"].as_u64().expect("conflict summary");
    assert!(inserted_first > 0);
    let fact_rows_first: u64 = r1["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["source_table"] == "FACTVISITCALLPERFORMANCE_CR")
        .map(|t| t["rows_read"].as_u64().unwrap())
        .unwrap();

    let pg = pg(&db).await;
    let fact = "analytics.factvisitcallperformance_cr";
    let watermark: chrono::DateTime<chrono::Utc> =
        pg.query_one(&format!("SELECT max(\"Visit Updated Timestamp\") FROM {fact}"), &[]).await.unwrap().get(0);

    run_ok(&["dev", "mutate", "--config", config, "--visits", VISITS, "--seed", SEED, "--updates", "40", "--inserts", "20", "--deletes", "10"], &envs);
    let second = dir.join("run2.json");
    let out = run_ok(&["run", "--config", config, "--allow-truncate", "--report", second.to_str().unwrap()], &envs);
    assert!(out.contains("0 mismatch(es)"), "{out}");
    let r2 = report(&second);
    let fact_report = r2["tables"].as_array().unwrap().iter().find(|t| t["source_table"] == "FACTVISITCALLPERFORMANCE_CR").expect("fact table copied");
    let read = fact_report["rows_read"].as_u64().unwrap();
    assert!(read < fact_rows_first / 4, "the second run reads only changed visits (read {read} of {fact_rows_first})");
    let changed: i64 = pg
        .query_one(&format!("SELECT count(*) FROM {fact} WHERE \"Visit Updated Timestamp\" > $1"), &[&watermark])
        .await
        .unwrap()
        .get(0);
    let written = fact_report["rows_written"].as_u64().unwrap();
    assert!(written > 0 && written <= 60, "at most the 40 updated + 20 inserted visits are written: {written}");
    assert_eq!(written, changed as u64, "exactly the rows past the old watermark were written");
    assert_eq!(r2["conflicts"]["inserted"].as_u64(), Some(0), "no new conflicts: mutations touch background visits only");
    let check = run_ok(&[&["dev", "check-planted"][..], &dataset[..]].concat(), &envs);
    assert!(check.contains("0 missing, 0 unexpected, 0 with wrong flags"), "{check}");
}
