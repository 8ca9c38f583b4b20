//! `thaw conflicts` with the real binary: it needs only PostgreSQL and the
//! `conflicts` section (no Snowflake credentials, no sources), and `--today`
//! and `--full` are real, documented flags (docs/conflicts.md §1.2, README).

// Planted data of the engine tests: 4 pairs with "today" 2025-03-10.
use thaw_test_support::conflicts::PLANTED;
use thaw_test_support::*;

/// A config with `postgres` and `conflicts` only.
fn conflicts_only_config(database: &str, extra_conflicts: &str) -> std::path::PathBuf {
    config_file(&format!(
        r#"{{
  "postgres": {{"host": "${{THAW_PG_HOST}}", "port": ${{THAW_PG_PORT}}, "user": "${{THAW_PG_USER}}", "password": "${{THAW_PG_PASSWORD}}"}},
  "conflicts": {{"database": "{database}"{extra_conflicts}}}
}}"#
    ))
}

fn summary(out: &std::process::Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let start = stdout
        .find('{')
        .unwrap_or_else(|| panic!("no JSON summary in:\n{}", text(out)));
    serde_json::from_str(&stdout[start..])
        .unwrap_or_else(|e| panic!("summary is not JSON ({e}):\n{}", text(out)))
}

#[tokio::test]
async fn conflicts_command_needs_only_postgres_and_the_conflicts_section() {
    let db = unique("cli_conflicts");
    let client = fresh_pg(&db).await;
    client.batch_execute(PLANTED).await.unwrap();

    // No snowflake, no sources: the command runs; --today sets "today".
    let path = conflicts_only_config(&db, "");
    let out = thaw!(&[
        "conflicts",
        "--config",
        path.to_str().unwrap(),
        "--today",
        "2025-03-10"
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let s = summary(&out);
    assert_eq!(
        (
            s["visits_considered"].as_u64(),
            s["inserted"].as_u64(),
            s["conflicts_created"].as_u64()
        ),
        (Some(4), Some(4), Some(4)),
        "{s}"
    );
    // Incremental by default, but the first run has no watermark: full (docs/conflicts.md §D1).
    assert_eq!(s["mode"].as_str(), Some("full"), "{s}");
    assert!(
        s["mode_reason"]
            .as_str()
            .unwrap_or("")
            .contains("first run"),
        "{s}"
    );
    let pairs: i64 = client
        .query_one("SELECT count(*) FROM conflict.conflictvisitmaps", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(pairs, 4);
    let flag: i64 = client
        .query_one(r#"SELECT "InProgressFlag" FROM conflict.settings"#, &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(flag, 2);

    // The config key conflicts.today does the same; --full is accepted; nothing changed, nothing written.
    let path = conflicts_only_config(&db, r#", "today": "2025-03-10""#);
    let out = thaw!(&["conflicts", "--config", path.to_str().unwrap(), "--full"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let s = summary(&out);
    assert_eq!(
        (
            s["pairs_detected"].as_u64(),
            s["inserted"].as_u64(),
            s["updated"].as_u64(),
            s["resolved"].as_u64()
        ),
        (Some(4), Some(0), Some(0), Some(0)),
        "{s}"
    );
    assert_eq!(
        (s["mode"].as_str(), s["mode_reason"].as_str()),
        (Some("full"), Some("full run requested (--full)")),
        "{s}"
    );

    // --today wins over the config key: on 2025-03-13 the rule-1 pair is past, but stored rows are refreshed, not resolved.
    let out = thaw!(&[
        "conflicts",
        "--config",
        path.to_str().unwrap(),
        "--today",
        "2025-03-13"
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let s = summary(&out);
    assert_eq!(s["resolved"].as_u64(), Some(0));
    // Without --full and without source changes: incremental, nothing to read.
    assert_eq!(
        (
            s["mode"].as_str(),
            s["keys_touched"].as_u64(),
            s["visits_considered"].as_u64()
        ),
        (Some("incremental"), Some(0), Some(0)),
        "{s}"
    );

    // validate accepts the conflicts-only config for `thaw conflicts` and says the sync commands
    // need more (it used to exit 2 naming the missing Snowflake and sources, although
    // `thaw conflicts` runs with it).
    let out = thaw!(&["validate", "--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("valid for `thaw conflicts` only (no snowflake and no sources"), "{}", text(&out));
    // The sync commands still need everything: run names the missing Snowflake and sources.
    let out = thaw!(&["run", "--config", path.to_str().unwrap(), "--no-conflicts"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("snowflake.account is empty")
            && text(&out).contains("sources is empty"),
        "{}",
        text(&out)
    );
    assert!(!text(&out).contains("panicked"));
    // A conflicts section that `thaw conflicts` would refuse is still an error of validate.
    let broken = conflicts_only_config(&db, r#", "time_zone": "Mars/Olympus_Mons""#);
    let out = thaw!(&["validate", "--config", broken.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("Mars/Olympus_Mons"), "{}", text(&out));
}

#[test]
fn conflicts_command_without_a_conflicts_section_or_with_a_bad_today_is_bad_input() {
    let path = config_file(
        r#"{"postgres": {"host": "${THAW_PG_HOST}", "port": ${THAW_PG_PORT}, "user": "${THAW_PG_USER}", "password": "${THAW_PG_PASSWORD}"}}"#,
    );
    let out = thaw!(&["conflicts", "--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("a 'conflicts' section is required"),
        "{}",
        text(&out)
    );

    let path = conflicts_only_config("whatever", "");
    let out = thaw!(&[
        "conflicts",
        "--config",
        path.to_str().unwrap(),
        "--today",
        "10/03/2025"
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("YYYY-MM-DD"), "{}", text(&out));
}

/// Finding: a `conflicts.database` that does not exist was reported with the
/// sync's hint "Create the database or fix target_pg_database", a key
/// `thaw conflicts` never reads.
#[test]
fn conflicts_command_on_a_missing_database_names_conflicts_database() {
    let path = conflicts_only_config("thaw_no_such_conflict_db", "");
    let out = thaw!(&["conflicts", "--config", path.to_str().unwrap(), "--today", "2025-03-10"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let said = text(&out);
    assert!(said.contains(r#"database "thaw_no_such_conflict_db" does not exist"#), "{said}");
    assert!(said.contains("set conflicts.database to an existing database"), "{said}");
    assert!(!said.contains("target_pg_database"), "{said}");
}

/// Finding: `thaw conflicts` run with the production role of conflict
/// detection (a member of `thaw_conflict_writer`, docs/operations.md) failed
/// with "Internal: applying schema migrations failed: `error asserting
/// migrations table`" (exit 1) because it always migrated first. A role that
/// may not migrate uses the schema as migrated; on a database never migrated
/// it says what to run (exit 2).
#[tokio::test]
async fn conflicts_command_runs_with_the_conflict_writer_role() {
    let db = unique("cli_conflicts_writer");
    let client = fresh_pg(&db).await;
    client.batch_execute(PLANTED).await.unwrap();
    let role = unique("cw");
    client
        .batch_execute(&format!("CREATE ROLE {role} LOGIN PASSWORD 'writer-pw' IN ROLE thaw_conflict_writer"))
        .await
        .unwrap();
    let config = |database: &str| {
        config_file(&format!(
            r#"{{"postgres": {{"host": "${{THAW_PG_HOST}}", "port": ${{THAW_PG_PORT}}, "user": "{role}", "password": "writer-pw"}},
                "conflicts": {{"database": "{database}"}}}}"#
        ))
    };
    let path = config(&db);
    let out = thaw!(&["conflicts", "--config", path.to_str().unwrap(), "--today", "2025-03-10"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let s = summary(&out);
    assert_eq!((s["inserted"].as_u64(), s["conflicts_created"].as_u64()), (Some(4), Some(4)), "{s}");

    // A database nobody migrated: the role cannot create the schema and says so.
    let empty = unique("cli_conflicts_unmigrated");
    client.batch_execute(&format!("CREATE DATABASE {empty}")).await.unwrap();
    let path = config(&empty);
    let out = thaw!(&["conflicts", "--config", path.to_str().unwrap(), "--today", "2025-03-10"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains(&format!("role {role} may not create it: run `thaw migrate`")), "{}", text(&out));
}

#[test]
fn conflicts_help_documents_today_and_full() {
    let out = thaw!(&["conflicts", "--help"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let help = text(&out);
    for needle in [
        "--today <YYYY-MM-DD>",
        "conflicts.today",
        "--full",
        "whole candidate window",
        "incremental",
        "postgres",
        "conflicts",
    ] {
        assert!(help.contains(needle), "{needle} not in:\n{help}");
    }
}

/// (New Conflict notices, Resolved notices, Inserted history rows, UpdatedNew history rows).
async fn side_table_counts(client: &tokio_postgres::Client) -> (i64, i64, i64, i64) {
    let row = client
        .query_one(
            r#"SELECT (SELECT count(*) FROM conflict.notifications WHERE "NotificationType" = 'New Conflict'),
                      (SELECT count(*) FROM conflict.notifications WHERE "NotificationType" = 'Resolved'),
                      (SELECT count(*) FROM conflict.log_history WHERE "LogTypeFlag" = 'Inserted'),
                      (SELECT count(*) FROM conflict.log_history WHERE "LogTypeFlag" = 'UpdatedNew')"#,
            &[],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1), row.get(2), row.get(3))
}

/// The lifecycle side tables through the real binary (docs/conflicts.md §9):
/// the first night notifies every new conflict and records every new pair;
/// running the same night again adds nothing; the next night, with the
/// conflicting visit 102 deleted, marks the pair `D` with its agency as
/// `ResolvedBy`, resolves the rest, and notifies the resolved conflicts once.
#[tokio::test]
async fn conflicts_command_writes_notifications_and_history_once_per_night() {
    let db = unique("cli_cf_nights");
    let client = fresh_pg(&db).await;
    client.batch_execute(PLANTED).await.unwrap();
    let path = conflicts_only_config(&db, r#", "today": "2025-03-10""#);
    for _ in 0..2 {
        let out = thaw!(&["conflicts", "--config", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        assert_eq!(
            side_table_counts(&client).await,
            (4, 0, 4, 0),
            "{}",
            text(&out)
        );
    }

    client
        .batch_execute(
            r#"INSERT INTO analytics.factvisitcallperformance_deleted_cr ("Visit Id", "Visit Date", "Visit Updated Timestamp")
                 SELECT "Visit Id", "Visit Date", now() FROM analytics.factvisitcallperformance_cr WHERE "Application Visit Id" = 102;
               DELETE FROM analytics.factvisitcallperformance_cr WHERE "Application Visit Id" = 102;"#,
        )
        .await
        .unwrap();
    for _ in 0..2 {
        let out = thaw!(&["conflicts", "--config", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        assert_eq!(
            side_table_counts(&client).await,
            (4, 2, 4, 2),
            "{}",
            text(&out)
        );
    }
    let states: Vec<String> = client
        .query(
            r#"SELECT "AppVisitID" % 100 || '>' || "ConAppVisitID" % 100 || ':' || "StatusFlag" || ':' || coalesce("ResolvedBy", '-')
               FROM conflict.conflictvisitmaps ORDER BY "AppVisitID""#,
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(states, ["1>2:D:Agency B", "2>1:R:-", "3>4:U:-", "4>3:U:-"]);
}

/// docs/conflicts.md §D8, §D18: `thaw conflicts` stopped by SIGTERM in the
/// middle of its night (held up by a lock on `notifications`, after the
/// pairs, conflicts and lifecycle were written in its transaction) exits 143,
/// rolls the night back, resets `InProgressFlag` to 2 (it was 1 while
/// running) and releases the run lock; the same command then does the night.
#[tokio::test]
async fn conflicts_command_stopped_by_sigterm_rolls_back_and_releases_the_flag() {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};
    let db = unique("cli_cf_sigterm");
    let client = fresh_pg(&db).await;
    client.batch_execute(PLANTED).await.unwrap();
    let path = conflicts_only_config(&db, r#", "today": "2025-03-10""#);

    // A second session holds the notifications table: the run blocks on its first notice.
    let mut blocker = pg(&db).await;
    let hold = blocker.transaction().await.unwrap();
    hold.batch_execute("LOCK TABLE conflict.notifications IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let child = Command::new(thaw_bin(env!("CARGO_BIN_EXE_thaw")))
        .args(["conflicts", "--config", path.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start thaw conflicts");
    let started = Instant::now();
    loop {
        let waiting: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE 'INSERT INTO \"conflict\".\"notifications\"%'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if waiting > 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "thaw conflicts never reached the notifications"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let flag: i64 = client
        .query_one(r#"SELECT "InProgressFlag" FROM conflict.settings"#, &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(flag, 1, "InProgressFlag shows the run");

    assert!(Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill")
        .success());
    let out = child.wait_with_output().expect("thaw exits");
    let all = text(&out);
    assert_eq!(out.status.code(), Some(143), "SIGTERM exits 143:\n{all}");
    assert!(
        all.contains("interrupted by SIGTERM") && all.contains("rolled back"),
        "{all}"
    );
    hold.rollback().await.unwrap();
    let row = client
        .query_one(
            r#"SELECT (SELECT "InProgressFlag" FROM conflict.settings), (SELECT count(*) FROM conflict.conflictvisitmaps),
                      (SELECT count(*) FROM conflict.conflicts), (SELECT count(*) FROM conflict.log_history)"#,
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        (
            row.get::<_, i64>(0),
            row.get::<_, i64>(1),
            row.get::<_, i64>(2),
            row.get::<_, i64>(3)
        ),
        (2, 0, 0, 0),
        "nothing of the night stays"
    );

    let out = thaw!(&["conflicts", "--config", path.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "the lock is free and the night runs:\n{}",
        text(&out)
    );
    assert_eq!(side_table_counts(&client).await, (4, 0, 4, 0));
}
