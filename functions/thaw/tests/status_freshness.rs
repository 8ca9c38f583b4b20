//! `thaw status` shows each table's reconcile freshness (docs/reconcile.md
//! §5.4) from `migration_status.reconcile_coverage`: the last full
//! verification, the rolling position and the age of the least recently
//! verified slice, flagging tables over `--coverage-hours` or never verified
//! whole, in the table and in `--json`. Real binary, real PostgreSQL and
//! emulator.

use thaw_test_support::*;

/// Move every verification time of `target` back by `days`, as if the
/// table had last been verified that long ago.
async fn age_coverage(pg: &tokio_postgres::Client, target: &str, days: i32) {
    let changed = pg
        .execute(
            "UPDATE migration_status.reconcile_coverage SET \
               last_full_verified_at = last_full_verified_at - make_interval(days => $2), \
               verified_since = verified_since - make_interval(days => $2), \
               verified_ranges = (SELECT jsonb_agg(jsonb_set(r, '{at}', to_jsonb((r->>'at')::timestamptz - make_interval(days => $2)))) \
                                  FROM jsonb_array_elements(verified_ranges) r) \
             WHERE target = $1",
            &[&target, &days],
        )
        .await
        .unwrap();
    assert_eq!(changed, 1, "{target} has a coverage row");
}

fn status_json(cfg: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["status", "--config", cfg, "--json"];
    args.extend_from_slice(extra);
    let out = thaw!(&args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    serde_json::from_slice(&out.stdout).expect("JSON")
}

/// The text after "reconcile freshness" (the section follows the runs, whose
/// table lines also start with the target names).
fn freshness_section(out: &std::process::Output) -> String {
    let all = String::from_utf8_lossy(&out.stdout).to_string();
    all.split_once("\nreconcile freshness")
        .map(|(_, f)| f.to_string())
        .unwrap_or_else(|| panic!("no freshness section:\n{all}"))
}

#[tokio::test]
async fn status_shows_each_tables_reconcile_freshness_and_flags_stale_and_never_verified_tables() {
    let sf_db = unique("SFFRESH").to_uppercase();
    let pg_db = unique("fresh");
    let sf = fresh_sf(&sf_db).await;
    create_orders(&sf, &sf_db, 200).await;
    sf.execute(&format!(
        "CREATE TABLE \"{sf_db}\".\"S\".\"ORDERS2\" AS SELECT * FROM \"{sf_db}\".\"S\".\"ORDERS\""
    ))
    .await
    .unwrap();
    let pg = fresh_pg(&pg_db).await;
    create_orders_target(&pg).await;
    pg.batch_execute("CREATE TABLE public.orders2 (LIKE public.orders INCLUDING ALL)")
        .await
        .unwrap();
    let t1 = orders_table(Some(("Id", "int")), "");
    let t2 = t1.replace(
        "\"source\": \"ORDERS\", \"target\": \"orders\"",
        "\"source\": \"ORDERS2\", \"target\": \"orders2\"",
    );
    let path = config_file(&config_text(&sf_db, &pg_db, &[&t1, &t2], ""));
    let cfg = path.to_str().unwrap();
    let out = thaw!(&["run", "--config", cfg, "--no-conflicts"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // Right after the first (whole-table) reconcile: both fresh, cycle at 0.
    let v = status_json(cfg, &[]);
    assert_eq!(v["freshness"]["coverage_hours"], 192);
    let tables = v["freshness"]["tables"].as_array().unwrap();
    assert_eq!(
        tables.iter().map(|t| t["target"].as_str().unwrap()).collect::<Vec<_>>(),
        ["public.orders", "public.orders2"]
    );
    for t in tables {
        assert!(t["freshness_hours"].as_f64().unwrap() < 1.0, "{t}");
        assert_eq!(
            (t["stale"].as_bool(), t["rolling_position"].as_u64(), t["rolling_percent"].as_f64()),
            (Some(false), Some(0), Some(0.0)),
            "{t}"
        );
        assert!(t["last_full_verified_at"].is_string() && t["verified_since"].is_string(), "{t}");
    }
    assert_eq!(v["runs"][0]["status"], "completed", "the runs are still listed");

    // orders2 last verified 10 days ago: 240 h, over the default 192 h.
    age_coverage(&pg, "public.orders2", 10).await;
    let v = status_json(cfg, &[]);
    let t = &v["freshness"]["tables"][1];
    let hours = t["freshness_hours"].as_f64().unwrap();
    assert!((240.0..241.0).contains(&hours), "{t}");
    assert_eq!(
        (t["stale"].as_bool(), v["freshness"]["tables"][0]["stale"].as_bool()),
        (Some(true), Some(false))
    );
    // A looser threshold: not stale.
    assert_eq!(status_json(cfg, &["--coverage-hours", "300"])["freshness"]["tables"][1]["stale"], false);

    // The table view: one line per table, the stale one flagged.
    let out = thaw!(&["status", "--config", cfg]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let shown = freshness_section(&out);
    assert!(shown.starts_with(" (STALE: least recently verified slice older than 192 h"), "{shown}");
    let line = |target: &str| {
        shown
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{target} ")))
            .unwrap_or_else(|| panic!("no line for {target}:\n{shown}"))
            .to_string()
    };
    assert!(line("public.orders2").ends_with("STALE") && line("public.orders2").contains("240."), "{shown}");
    assert!(!line("public.orders").ends_with("STALE"), "{shown}");

    // A table without coverage (never reconciled clean): unknown freshness, flagged.
    pg.execute("DELETE FROM migration_status.reconcile_coverage WHERE target = 'public.orders'", &[])
        .await
        .unwrap();
    let v = status_json(cfg, &[]);
    let t = &v["freshness"]["tables"][0];
    assert_eq!(
        (t["freshness_hours"].is_null(), t["last_full_verified_at"].is_null(), t["stale"].as_bool()),
        (true, true, Some(true)),
        "{t}"
    );
    let out = thaw!(&["status", "--config", cfg]);
    let shown = freshness_section(&out);
    let never = shown.lines().find(|l| l.trim_start().starts_with("public.orders ")).unwrap().to_string();
    assert!(never.contains("never") && never.ends_with("STALE"), "{shown}");
}

/// Found when tried as a new user would: `thaw status` as the first command
/// against a new status database stopped with `relation
/// "migration_status.migration_runs" does not exist` (exit 2); it now says
/// that nothing has run there and how to start.
#[tokio::test]
async fn status_of_a_database_nothing_has_run_against_says_so_and_how_to_start() {
    let db = unique("statusnew");
    pg("postgres").await.batch_execute(&format!("CREATE DATABASE \"{db}\"")).await.unwrap();
    let cfg = config_file(&config_text("NOSF", &db, &[&orders_table(None, "")], ""));
    let cfg = cfg.to_str().unwrap();
    let out = thaw!(&["status", "--config", cfg]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(0), "{shown}");
    assert!(shown.contains(&format!("no runs recorded: the status database '{db}' is not migrated yet")) && shown.contains("thaw migrate"), "{shown}");
    let json = status_json(cfg, &[]);
    assert_eq!((json["runs"].as_array().map(Vec::len), json["migrated"].as_bool()), (Some(0), Some(false)), "{json}");
    let out = thaw!(&["status", "--config", cfg, "--run-id", "00000000-0000-4000-8000-000000000001"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

/// Found when tried as a new user would: after a reconcile found a table
/// different, `thaw status` still showed it verified minutes ago and not
/// flagged (a table that differs keeps the verification times of its last
/// clean check). The freshness lines now carry the newest reconcile outcome.
#[tokio::test]
async fn status_shows_the_newest_reconcile_outcome_next_to_a_tables_freshness() {
    let (sf_db, pg_db, pg, _sf) = orders("stmis", 40).await;
    let path = config_file(&config_text(&sf_db, &pg_db, &[&orders_table(None, "")], ""));
    let cfg = path.to_str().unwrap();
    let dir = std::env::temp_dir().join("thaw-test-reports");
    std::fs::create_dir_all(&dir).unwrap();
    let report = dir.join(format!("{}.json", unique("run")));
    let out = thaw!(&["run", "--config", cfg, "--no-conflicts", "--report", report.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let run_id = serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(&report).unwrap()).unwrap()["plan"]["run_id"].as_str().unwrap().to_string();
    let t = &status_json(cfg, &[])["freshness"]["tables"][0];
    assert_eq!((t["last_reconcile"].as_str(), t["stale"].as_bool()), (Some("ok"), Some(false)), "{t}");

    pg.execute("UPDATE public.orders SET \"Note\" = 'tampered' WHERE \"Id\" = 5", &[]).await.unwrap();
    let out = thaw!(&["reconcile", "--config", cfg, "--run-id", &run_id]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let t = &status_json(cfg, &[])["freshness"]["tables"][0];
    assert_eq!(t["last_reconcile"].as_str(), Some("mismatch"), "{t}");
    assert!(t["last_reconciled_at"].is_string() && t["verified_since"].is_string(), "{t}");
    let out = thaw!(&["status", "--config", cfg]);
    let shown = freshness_section(&out);
    let line = shown.lines().find(|l| l.trim_start().starts_with("public.orders ")).unwrap_or_else(|| panic!("{shown}")).to_string();
    assert!(line.contains("  MISMATCH 20"), "{shown}");
}

/// Session 12 (issue 9): a status database that does not exist was
/// hinted as `target_pg_database`, though `postgres.status_database` sets
/// it (the first source's `target_pg_database` only when it is absent). The
/// hint names that key and the configuration file; exit 2.
#[tokio::test]
async fn a_missing_status_database_names_the_key_that_sets_it_and_the_file() {
    let db = unique("statusgone");
    let config = config_text("NOSF", &db, &[&orders_table(None, "")], "")
        .replace("\"password\": \"${THAW_PG_PASSWORD}\"}", &format!("\"password\": \"${{THAW_PG_PASSWORD}}\", \"status_database\": \"{db}\"}}"));
    let cfg = config_file(&config);
    let cfg = cfg.to_str().unwrap();
    for command in [&["status"][..], &["run"]] {
        let mut args = command.to_vec();
        args.extend(["--config", cfg]);
        let out = thaw!(&args);
        let shown = text(&out);
        assert_eq!(out.status.code(), Some(2), "{shown}");
        assert!(shown.contains(&format!("database \"{db}\" does not exist")) && shown.contains("set postgres.status_database") && shown.contains(cfg), "{shown}");
        assert!(!shown.contains("set target_pg_database"), "{shown}");
    }
}

/// Session 12 (issue 9): a table name longer than 36 characters pushed
/// every later column of its row out of line with the header, in the runs
/// table and the freshness table. Names are printed whole and the columns
/// widen to the longest; `--json` holds the whole name.
#[tokio::test]
async fn status_columns_stay_aligned_with_a_long_table_name() {
    let (sf_db, pg_db, pg, _sf) = orders("statuslong", 20).await;
    let long = "orders_kept_for_the_alignment_check_of_status";
    pg.batch_execute(&format!("ALTER TABLE public.orders RENAME TO {long}")).await.unwrap();
    let entry = orders_table(None, "").replace("\"target\": \"orders\"", &format!("\"target\": \"{long}\""));
    let cfg = config_file(&config_text(&sf_db, &pg_db, &[&entry], ""));
    let cfg = cfg.to_str().unwrap();
    let out = thaw!(&["run", "--config", cfg, "--no-conflicts"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = thaw!(&["status", "--config", cfg]);
    let shown = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(0), "{shown}");
    let name = format!("public.{long}");
    let lines: Vec<&str> = shown.lines().collect();
    let headers: Vec<usize> = (0..lines.len()).filter(|&i| lines[i].trim_start().starts_with("table ")).collect();
    assert_eq!(headers.len(), 2, "a runs table and a freshness table:\n{shown}");
    for h in headers {
        let (header, row) = (lines[h], lines[h + 1]);
        assert!(row.trim_start().starts_with(&name), "the whole name:\n{shown}");
        // Every column boundary of the header (a blank followed by text) is one in the row too.
        let second = header["  table".len()..].find(|c: char| c != ' ').expect("a second column") + "  table".len();
        assert!(row.as_bytes()[second - 1] == b' ' && row.as_bytes()[second] != b' ', "column 2 of {header:?} at {second} is out of line in {row:?}:\n{shown}");
        assert_eq!(row[..second].trim(), name, "{shown}");
    }
    let json = status_json(cfg, &[]);
    assert_eq!(json["runs"][0]["tables"][0]["target"], name.as_str(), "{json}");
}
