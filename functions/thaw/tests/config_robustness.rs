//! Every command against every kind of bad configuration (issue 7: "a
//! malformed config … say what, where and what to do; leave the target as it
//! was; exit non-zero"), and the dead or hostile dependencies of issue 9.
//! Each case runs the real `thaw` binary.

use thaw_test_support::*;

/// Every command that reads `--config`, with the arguments it needs besides.
/// `Sync` commands validate the whole file; `thaw conflicts` only `postgres`
/// and `conflicts` (docs/sync.md §1.1).
const COMMANDS: &[(&[&str], bool)] = &[
    (&["validate"], true),
    (&["run"], true),
    (&["run", "--full", "--no-conflicts"], true),
    (&["status"], true),
    (&["migrate"], true),
    (&["reconcile", "--run-id", "00000000-0000-0000-0000-000000000001"], true),
    (&["cutover", "check"], true),
    (&["dual-read"], true),
    (&["dev", "seed", "--visits", "200", "--seed", "1"], true),
    (&["conflicts"], false),
];

/// A complete, valid configuration writing into `db`, with conflicts.
fn good(db: &str) -> String {
    format!(
        r#"{{
  "snowflake": {{"account": "${{THAW_SF_ACCOUNT}}", "user": "${{THAW_SF_USER}}", "password": "${{THAW_SF_PASSWORD}}",
                 "endpoint": "${{THAW_SF_ENDPOINT}}", "ca_file": "${{THAW_SF_CA_FILE}}"}},
  "postgres": {{"host": "${{THAW_PG_HOST}}", "port": ${{THAW_PG_PORT}}, "user": "${{THAW_PG_USER}}", "password": "${{THAW_PG_PASSWORD}}"}},
  "batch_size": 1000,
  "conflicts": {{"database": "{db}", "time_zone": "America/New_York"}},
  "sources": [{{"source_name": "src", "source_sf_database": "QOPS", "source_sf_schema": "S",
                "target_pg_database": "{db}", "target_pg_schema": "public",
                "tables": [{{"source": "T", "target": "t", "chunking_columns": ["Id"], "chunking_column_types": ["int"]}}]}}]
}}"#
    )
}

/// `text` with `from` replaced by `to` (which must occur).
fn edit(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "{from} not in the fixture");
    text.replacen(from, to, 1)
}

/// The names of the tables and schemas of `db` that thaw could have created.
async fn footprint(db: &str) -> Vec<String> {
    let client = pg(db).await;
    let rows = client
        .query(
            "SELECT n.nspname || '.' || coalesce(c.relname, '') FROM pg_namespace n LEFT JOIN pg_class c ON c.relnamespace = n.oid \
             WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') ORDER BY 1",
            &[],
        )
        .await
        .expect("list the database's objects");
    rows.iter().map(|r| r.get(0)).collect()
}

#[tokio::test]
async fn every_command_refuses_every_kind_of_bad_config_with_exit_2_naming_file_key_and_fix_and_writes_nothing() {
    let db = unique("qcfg");
    let admin = pg("postgres").await;
    admin.batch_execute(&format!("CREATE DATABASE \"{db}\"")).await.unwrap();
    let before = footprint(&db).await;
    let good = good(&db);
    let dir = std::env::temp_dir().join(unique("thaw-qops-dir"));
    std::fs::create_dir_all(&dir).unwrap();
    let unreadable = config_file(&good);
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&unreadable, std::fs::Permissions::from_mode(0o000)).unwrap();
    }
    // root reads a mode-000 file anyway; the case is then covered by the directory case only.
    let unreadable_case = std::fs::read(&unreadable).is_err();

    // (what, config path, environment, expected in the message, also for `thaw conflicts`)
    type Case = (&'static str, std::path::PathBuf, Vec<(&'static str, &'static str)>, Vec<&'static str>, bool);
    let file = |text: &str| config_file(text);
    let mut cases: Vec<Case> = vec![
        ("empty file", file(""), vec![], vec!["is empty", "examples/config.json"], true),
        ("invalid JSON", file(&edit(&good, "\"batch_size\": 1000,", "\"batch_size\": 1000,,")), vec![], vec!["is not valid JSON at line 5", "Fix the syntax there"], true),
        ("top level not an object", file("[1, 2]"), vec![], vec!["holds an array at the top level", "one JSON object"], true),
        ("a directory", dir.clone(), vec![], vec!["cannot read config file", "Is a directory", "--config"], true),
        ("a missing file", dir.join("nope.json"), vec![], vec!["cannot read config file", "No such file", "--config"], true),
        (
            "unset variable",
            file(&edit(&good, "${THAW_PG_USER}", "${THAW_QOPS_UNSET_USER}")),
            vec![],
            vec!["environment variable(s) not set: THAW_QOPS_UNSET_USER", "${NAME:-default}"],
            true,
        ),
        (
            "empty variable where a number goes",
            file(&good),
            vec![("THAW_PG_PORT", "")],
            vec!["is not valid JSON at line 4", "${THAW_PG_PORT} (empty)"],
            true,
        ),
        ("misspelt key", file(&edit(&good, "\"batch_size\"", "\"batch_sise\"")), vec![], vec!["unknown key 'batch_sise' in the top level", "did you mean 'batch_size'"], true),
        ("misspelt nested key", file(&edit(&good, "\"time_zone\"", "\"timezone\"")), vec![], vec!["unknown key 'timezone' in conflicts", "did you mean 'time_zone'"], true),
        ("wrong type", file(&edit(&good, "\"batch_size\": 1000", "\"batch_size\": \"big\"")), vec![], vec!["batch_size has a wrong value", "expected a whole number"], true),
        ("wrong type of a list", file(&edit(&good, "\"chunking_columns\": [\"Id\"]", "\"chunking_columns\": \"Id\"")), vec![], vec!["sources[0].tables[0].chunking_columns has a wrong value", "expected a list"], true),
        ("out of range", file(&edit(&good, "\"batch_size\": 1000", "\"batch_size\": 5")), vec![], vec!["batch_size 5 is below the minimum of 100 rows"], true),
        ("port out of range", file(&edit(&good, "${THAW_PG_PORT}", "70000")), vec![], vec!["postgres.port has a wrong value", "from 1 to 65535"], true),
        ("port zero", file(&edit(&good, "${THAW_PG_PORT}", "0")), vec![], vec!["postgres.port has a wrong value", "from 1 to 65535"], true),
        ("missing required key", file(&edit(&good, "\"host\": \"${THAW_PG_HOST}\", ", "")), vec![], vec!["postgres has a wrong value", "missing field `host`"], true),
        ("missing required table key", file(&edit(&good, "\"target\": \"t\", ", "")), vec![], vec!["sources[0].tables[0] has a wrong value", "missing field `target`"], true),
        ("empty host from the environment", file(&good), vec![("THAW_PG_HOST", "")], vec!["postgres.host is empty"], true),
        ("sslmode misspelt", file(&edit(&good, "\"user\": \"${THAW_PG_USER}\"", "\"user\": \"${THAW_PG_USER}\", \"sslmode\": \"verify_full\"")), vec![], vec!["postgres.sslmode 'verify_full'", "disable, require, verify-full"], true),
        ("bad time zone", file(&edit(&good, "America/New_York", "America/Nowhere")), vec![], vec!["conflicts.time_zone 'America/Nowhere' is not an IANA time zone"], true),
        ("unknown choice", file(&edit(&good, "[\"int\"]", "[\"geography\"]")), vec![], vec!["sources[0].tables[0].chunking_column_types[0]", "use one of int"], false),
        ("endpoint given as a host name", file(&good), vec![("THAW_SF_ENDPOINT", "snowflake.internal:443")], vec!["snowflake.endpoint 'snowflake.internal:443' is not an IP:port address"], false),
        ("zero query timeout", file(&edit(&good, "\"ca_file\"", "\"query_timeout_seconds\": 0, \"ca_file\"")), vec![], vec!["snowflake.query_timeout_seconds must be at least 1"], false),
        ("empty Snowflake user", file(&good), vec![("THAW_SF_USER", "")], vec!["snowflake.user is empty"], false),
    ];
    if unreadable_case {
        cases.push(("unreadable file", unreadable.clone(), vec![], vec!["cannot read config file", "Permission denied"], true));
    }

    let mut failures = Vec::new();
    for (what, path, env, needles, conflicts_too) in &cases {
        let path_text = path.to_str().unwrap();
        for (command, sync) in COMMANDS {
            if !sync && !conflicts_too {
                continue;
            }
            let mut args: Vec<&str> = command.to_vec();
            args.extend(["--config", path_text]);
            let out = thaw!(&args, env);
            let text = text(&out);
            let mut problems = Vec::new();
            if out.status.code() != Some(2) {
                problems.push(format!("exit {:?}, expected 2", out.status.code()));
            }
            let file_name = path.file_name().unwrap().to_str().unwrap();
            if !text.contains(file_name) {
                problems.push(format!("the message does not name the file {file_name}"));
            }
            for needle in needles {
                if !text.contains(needle) {
                    problems.push(format!("the message lacks {needle:?}"));
                }
            }
            if text.contains("panicked") || text.contains(&var("THAW_PG_PASSWORD")) {
                problems.push("it panicked or printed a secret".into());
            }
            if text.lines().filter(|l| l.starts_with("error:")).count() != 1 {
                problems.push("expected exactly one error line".into());
            }
            if !problems.is_empty() {
                failures.push(format!("{what} / thaw {}: {}\n{text}", command.join(" "), problems.join("; ")));
            }
        }
    }
    assert!(failures.is_empty(), "{} failure(s):\n\n{}", failures.len(), failures.join("\n\n"));
    assert_eq!(footprint(&db).await, before, "a refused configuration wrote into {db}");
}

#[tokio::test]
async fn a_postgres_without_tls_when_sslmode_asks_for_it_is_a_setting_to_fix_not_an_outage() {
    // The harness PostgreSQL has ssl off: `sslmode: require` can never work
    // there, so it is a bad setting (exit 2, ConfigInvalid: never retried as
    // transient) naming postgres.sslmode, not "Unreachable" (exit 1, retried).
    let db = unique("qtls");
    fresh_pg(&db).await;
    let config = edit(&good(&db), "\"user\": \"${THAW_PG_USER}\"", "\"user\": \"${THAW_PG_USER}\", \"sslmode\": \"require\"");
    let path = config_file(&config);
    for command in [&["status"][..], &["run"], &["conflicts"], &["migrate"], &["cutover", "check"]] {
        let mut args = command.to_vec();
        args.extend(["--config", path.to_str().unwrap()]);
        let out = thaw!(&args);
        let text = text(&out);
        assert_eq!(out.status.code(), Some(2), "thaw {command:?}: {text}");
        for needle in ["ConfigInvalid", "does not accept TLS", "postgres.sslmode", &format!("/{db}")] {
            assert!(text.contains(needle), "thaw {command:?}: expected {needle:?} in {text}");
        }
    }
    let pg = pg(&db).await;
    assert_eq!(pg_count(&pg, "migration_status.migration_runs").await, 0);
}

/// A TCP server answering every connection with an HTML gateway page, as
/// a captive proxy or a load balancer's error page would.
fn html_server() -> u16 {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buffer = [0u8; 4096];
            let _ = stream.read(&mut buffer);
            let body = "<html><body><h1>502 Bad Gateway</h1></body></html>";
            let _ = write!(stream, "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
        }
    });
    port
}

#[tokio::test]
async fn a_dead_or_foreign_snowflake_endpoint_is_named_with_its_cause_and_writes_nothing() {
    let db = unique("qsfdead");
    let pg = fresh_pg(&db).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let html = html_server();
    for (what, endpoint, cause) in [
        ("nothing listening", format!("127.0.0.1:{closed}"), "Connection refused"),
        ("an HTML page, not Snowflake", format!("127.0.0.1:{html}"), "received corrupt message"),
    ] {
        let path = config_file(&good(&db));
        for command in [&["run"][..], &["dual-read"]] {
            let mut args = command.to_vec();
            args.extend(["--config", path.to_str().unwrap()]);
            let out = thaw!(&args, &[("THAW_SF_ENDPOINT", endpoint.as_str())]);
            let text = text(&out);
            assert_eq!(out.status.code(), Some(1), "{what} / thaw {command:?}: {text}");
            for needle in ["Unreachable", "cannot log in to Snowflake account", cause, "Check snowflake.account / snowflake.endpoint"] {
                assert!(text.contains(needle), "{what} / thaw {command:?}: expected {needle:?} in {text}");
            }
            assert!(!text.contains("clientStartTime"), "{what}: request ids are noise at 3 a.m.: {text}");
        }
    }
    assert_eq!(pg_count(&pg, "migration_status.migration_runs").await, 0, "a run was recorded although Snowflake was never reached");
}

#[test]
fn shell_style_defaults_and_a_quoted_port_are_accepted() {
    // `${VAR:-default}` takes the default when VAR is empty, as in the shell;
    // a legacy `"port": "5432"` (psycopg2 took text) still loads.
    let config = edit(&good("qdefault"), "${THAW_PG_PORT}", "\"${THAW_QOPS_EMPTY_PORT:-5432}\"");
    let path = config_file(&config);
    let out = thaw!(&["validate", "--config", path.to_str().unwrap()], &[("THAW_QOPS_EMPTY_PORT", "")]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn flags_out_of_range_are_refused_naming_the_flag() {
    let path = config_file(&good("qflags"));
    let path = path.to_str().unwrap();
    for (args, flag) in [
        (vec!["status", "--config", path, "--limit", "0"], "--limit"),
        (vec!["reconcile", "--config", path, "--run-id", "00000000-0000-0000-0000-000000000001", "--leaf-rows", "0"], "--leaf-rows"),
        (vec!["run", "--config", path, "--workers", "0"], "--workers"),
        (vec!["cutover", "check", "--config", path, "--dual-read-days", "0"], "--dual-read-days"),
        (vec!["conflicts", "--config", path, "--today", "2025-02-30"], "--today"),
    ] {
        let out = thaw!(&args);
        let text = text(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {text}");
        assert!(text.contains(flag), "{args:?}: expected {flag} in {text}");
    }
}
