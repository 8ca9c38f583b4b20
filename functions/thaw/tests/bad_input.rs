//! Bad input gets a one-paragraph error naming what and where, a non-zero
//! exit code, and no partial state a rerun cannot fix. Each case runs the
//! real `thaw` binary.


use thaw_test_support::*;

fn assert_fails(args: &[&str], code: i32, needles: &[&str]) -> String {
    let out = thaw!(args);
    let text = text(&out);
    assert_eq!(out.status.code(), Some(code), "exit code for {args:?}; output:\n{text}");
    for n in needles {
        assert!(text.contains(n), "expected {n:?} in:\n{text}");
    }
    assert!(!text.contains(&std::env::var("THAW_PG_PASSWORD").unwrap_or_else(|_| "\u{0}".into())), "a secret leaked:\n{text}");
    assert!(!text.contains("panicked"), "{text}");
    text
}

#[test]
fn malformed_config_names_the_line() {
    let path = config_file("{\n  \"snowflake\": {\"account\": \"a\",,\n}");
    assert_fails(&["validate", "--config", path.to_str().unwrap()], 2, &["is not valid JSON at line 2"]);
}

#[test]
fn missing_environment_variable_is_named() {
    let text = config_text("DB", "db", &[r#"{"source": "T", "target": "t"}"#], "").replace("${THAW_SF_USER}", "${THAW_TEST_UNSET_USER}");
    let path = config_file(&text);
    assert_fails(&["validate", "--config", path.to_str().unwrap()], 2, &["environment variable(s) not set: THAW_TEST_UNSET_USER"]);
}

#[test]
fn unknown_key_suggests_a_fix() {
    let text = config_text("DB", "db", &[r#"{"source": "T", "target": "t", "uniqueness_column": ["a"]}"#], "");
    let path = config_file(&text);
    assert_fails(&["validate", "--config", path.to_str().unwrap()], 2, &["unknown key 'uniqueness_column'", "did you mean 'uniqueness_columns'"]);
}

#[test]
fn unreachable_database_is_reported_with_host_and_port() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let text = config_text("DB", "db", &[r#"{"source": "T", "target": "t"}"#], "").replace("${THAW_PG_PORT}", &port.to_string());
    let path = config_file(&text);
    assert_fails(&["run", "--config", path.to_str().unwrap()], 1, &[&format!(":{port}/db"), "Check postgres.host/port"]);
}

#[test]
fn wrong_postgres_password_is_an_auth_error() {
    let text = config_text("DB", "postgres", &[r#"{"source": "T", "target": "t"}"#], "").replace("${THAW_PG_PASSWORD}", "not-the-password");
    let path = config_file(&text);
    assert_fails(&["run", "--config", path.to_str().unwrap()], 2, &["AuthFailed", "password authentication failed", "Check postgres.user and postgres.password"]);
}

#[tokio::test]
async fn wrong_snowflake_password_is_an_auth_error() {
    let pg_db = unique("badsf");
    fresh_pg(&pg_db).await;
    let text = config_text("DB", &pg_db, &[r#"{"source": "T", "target": "t"}"#], "").replace("${THAW_SF_PASSWORD}", "not-the-password");
    let path = config_file(&text);
    assert_fails(&["run", "--config", path.to_str().unwrap()], 2, &["AuthFailed", "cannot log in to Snowflake account", "as user"]);
}

#[tokio::test]
async fn l18_missing_source_table_and_column_fail_before_anything_is_written() {
    let sf_db = unique("SFBAD").to_uppercase();
    let pg_db = unique("bad");
    let sf = fresh_sf(&sf_db).await;
    create_orders(&sf, &sf_db, 50).await;
    let pg = fresh_pg(&pg_db).await;
    create_orders_target(&pg).await;

    let missing_table = config_text(&sf_db, &pg_db, &[r#"{"source": "ORDERZ", "target": "orders"}"#], "");
    let path = config_file(&missing_table);
    assert_fails(&["run", "--config", path.to_str().unwrap()], 2, &["SchemaMismatch", "ORDERZ", "does not exist in Snowflake"]);

    let missing_column = config_text(&sf_db, &pg_db, &[&orders_table(Some(("Nope", "int")), "")], "");
    let path = config_file(&missing_column);
    assert_fails(&["run", "--config", path.to_str().unwrap()], 2, &["source column \"Nope\"", "ORDERS"]);

    // A name that differs only in case (Snowflake folds unquoted names to upper case,
    // PostgreSQL to lower case) says which one was meant.
    let wrong_case = config_text(&sf_db, &pg_db, &[&orders_table(Some(("ID", "int")), "").replace(r#"["Code"]"#, r#"["code"]"#)], "");
    let path = config_file(&wrong_case);
    assert_fails(
        &["run", "--config", path.to_str().unwrap()],
        2,
        &["source column \"ID\" (did you mean \"Id\"? names are case-sensitive)", "uniqueness column \"code\" in the source (did you mean \"Code\"?"],
    );

    let missing_target = config_text(&sf_db, &pg_db, &[r#"{"source": "ORDERS", "target": "no_such_table"}"#], "");
    let path = config_file(&missing_target);
    assert_fails(&["run", "--config", path.to_str().unwrap()], 2, &["public.no_such_table does not exist in PostgreSQL"]);

    // Nothing was planned or copied: no run row, an empty target.
    let runs: i64 = pg.query_one("SELECT count(*) FROM migration_status.migration_runs", &[]).await.unwrap().get(0);
    assert_eq!(runs, 0);
    assert_eq!(pg_count(&pg, "public.orders").await, 0);

    // The fixed config then runs clean.
    let good = config_text(&sf_db, &pg_db, &[&orders_table(Some(("Id", "int")), "")], "");
    let path = config_file(&good);
    let out = thaw!(&["run", "--config", path.to_str().unwrap(), "--no-conflicts"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(pg_count(&pg, "public.orders").await, 50);
}

#[tokio::test]
async fn unmappable_target_type_names_the_column() {
    let sf_db = unique("SFTYPE").to_uppercase();
    let pg_db = unique("types");
    let sf = fresh_sf(&sf_db).await;
    create_orders(&sf, &sf_db, 10).await;
    let pg = fresh_pg(&pg_db).await;
    pg.batch_execute("CREATE TABLE public.orders (\"Code\" uuid PRIMARY KEY, \"Note\" point)").await.unwrap();
    let text = config_text(&sf_db, &pg_db, &[r#"{"source": "ORDERS", "target": "orders"}"#], "");
    let path = config_file(&text);
    assert_fails(&["run", "--config", path.to_str().unwrap()], 2, &["TypeUnsupported", "\"Note\" (point)"]);
}

/// A type pair docs/sync.md §5.2 refuses between types thaw knows
/// (BOOLEAN into int2, TIMESTAMP_TZ into uuid) used to pass plan, record a
/// run, fail every chunk with `TypeUnsupported`, exit 1, and advise a
/// "source query" thaw cannot run. Plan now refuses it before anything is
/// written, exit 2, naming every such column, both types and what the
/// target column could be.
#[tokio::test]
async fn refused_type_pairs_fail_before_anything_is_written_naming_every_column() {
    let sf_db = unique("SFPAIR").to_uppercase();
    let pg_db = unique("pair");
    let sf = fresh_sf(&sf_db).await;
    create_orders(&sf, &sf_db, 10).await;
    let pg = fresh_pg(&pg_db).await;
    pg.batch_execute("CREATE TABLE public.orders (\"Code\" uuid PRIMARY KEY, \"Flag\" int2, \"Day\" uuid, \"Note\" text)").await.unwrap();
    let text = config_text(&sf_db, &pg_db, &[r#"{"source": "ORDERS", "target": "orders", "uniqueness_columns": ["Code"]}"#], "");
    let path = config_file(&text);
    let shown = assert_fails(
        &["run", "--config", path.to_str().unwrap(), "--no-conflicts"],
        2,
        &[
            "TypeUnsupported",
            r#""Flag" (Snowflake BOOLEAN) into "Flag" (int2; it takes bool, text, varchar, bpchar)"#,
            r#""Day" (Snowflake TIMESTAMP_TZ) into "Day" (uuid; it takes timestamptz, timestamp, date, text, varchar, bpchar)"#,
            "exclude_columns",
            "nothing was written",
        ],
    );
    assert!(!shown.contains("source query"), "{shown}");
    assert_eq!(pg_count(&pg, "migration_status.migration_runs").await, 0, "no run was recorded");
    assert_eq!(pg_count(&pg, "public.orders").await, 0);
}

#[tokio::test]
async fn bad_data_fails_the_chunk_and_leaves_the_target_consistent() {
    let sf_db = unique("SFDATA").to_uppercase();
    let pg_db = unique("data");
    let sf = fresh_sf(&sf_db).await;
    create_orders(&sf, &sf_db, 300).await;
    let pg = fresh_pg(&pg_db).await;
    // "Note" is too short for the source values: every chunk with a note fails.
    pg.batch_execute("CREATE TABLE public.orders (\"Id\" int8, \"Code\" uuid NOT NULL UNIQUE, \"Note\" varchar(5), \"Updated\" timestamptz)").await.unwrap();
    let text = config_text(&sf_db, &pg_db, &[r#"{"source": "ORDERS", "target": "orders", "uniqueness_columns": ["Code"]}"#], "");
    let path = config_file(&text);
    assert_fails(&["run", "--config", path.to_str().unwrap(), "--no-conflicts"], 1, &["ChunkFailed", "\"Note\""]);
    assert_eq!(pg_count(&pg, "public.orders").await, 0, "the failed chunk committed nothing");
    let failed: i64 = pg.query_one("SELECT count(*) FROM migration_status.migration_chunk_status WHERE status = 'failed'", &[]).await.unwrap().get(0);
    assert_eq!(failed, 1);
}

#[tokio::test]
async fn unreachable_snowflake_endpoint_is_not_reported_as_bad_credentials() {
    let pg_db = unique("nosf");
    fresh_pg(&pg_db).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let text = config_text("DB", &pg_db, &[r#"{"source": "T", "target": "t"}"#], "").replace("${THAW_SF_ENDPOINT}", &format!("127.0.0.1:{port}"));
    let path = config_file(&text);
    assert_fails(&["run", "--config", path.to_str().unwrap()], 1, &["Unreachable", "cannot log in to Snowflake account", "Check snowflake.account / snowflake.endpoint"]);
}

/// Session 12 (issue 9): a host name that does not exist was `Unreachable`
/// (exit 1, retried by the workflow as a network drop) for PostgreSQL and
/// Snowflake alike. It is bad input (exit 2, never retried) naming the key
/// to fix and the configuration file; nothing is recorded.
#[tokio::test]
async fn a_host_that_does_not_exist_is_bad_input_naming_its_key() {
    let pg_db = unique("nohost");
    let pg = fresh_pg(&pg_db).await;
    let text = config_text("DB", &pg_db, &[r#"{"source": "T", "target": "t"}"#], "");
    let no_pg = config_file(&text.replace("${THAW_PG_HOST}", "no-such-host.invalid"));
    for command in [&["status"][..], &["run"], &["migrate"]] {
        let mut args = command.to_vec();
        args.extend(["--config", no_pg.to_str().unwrap()]);
        let shown = assert_fails(&args, 2, &["ConfigInvalid", "no-such-host.invalid", "does not exist", "postgres.host", no_pg.to_str().unwrap()]);
        assert!(!shown.contains("Unreachable"), "{shown}");
    }
    // No endpoint override: the client resolves <account>.snowflakecomputing.com, which does not exist.
    let no_sf = config_file(&text.replace("\"endpoint\": \"${THAW_SF_ENDPOINT}\", ", "").replace("${THAW_SF_ACCOUNT}", "thaw-no-such-account-q12"));
    let shown = assert_fails(&["run", "--config", no_sf.to_str().unwrap()], 2, &["ConfigInvalid", "cannot log in to Snowflake account", "does not exist", "snowflake.account", "snowflake.endpoint"]);
    assert!(!shown.contains("Unreachable"), "{shown}");
    assert_eq!(pg_count(&pg, "migration_status.migration_runs").await, 0, "nothing was recorded");
}

/// Schema drift through the CLI (docs/sync.md §3.6): a column added to the
/// Snowflake table after a run, with no `schema_evolution`, stops the next
/// plan with exit code 2 and the `ALTER TABLE` to run; nothing is written.
#[tokio::test]
async fn new_source_column_without_schema_evolution_is_an_error_giving_the_ddl() {
    let sf_db = unique("SFDRIFT").to_uppercase();
    let pg_db = unique("drift");
    let sf = fresh_sf(&sf_db).await;
    create_orders(&sf, &sf_db, 60).await;
    let pg = fresh_pg(&pg_db).await;
    create_orders_target(&pg).await;
    let path = config_file(&config_text(&sf_db, &pg_db, &[&orders_table(None, "")], ""));
    let out = thaw!(&["run", "--config", path.to_str().unwrap(), "--no-conflicts"]);
    assert!(out.status.success(), "{}", text(&out));

    sf.execute(&format!("ALTER TABLE \"{sf_db}\".\"S\".\"ORDERS\" ADD COLUMN \"Region Code\" VARCHAR(8)")).await.unwrap();
    sf.execute(&format!(
        "INSERT INTO \"{sf_db}\".\"S\".\"ORDERS\" (\"Id\", \"Code\", \"Updated\", \"Region Code\") VALUES (9000001, 'cccccccc-0000-4000-8000-000000000001', '2026-06-01 00:00:00+00:00', 'NE')"
    ))
    .await
    .unwrap();
    assert_fails(
        &["run", "--config", path.to_str().unwrap(), "--no-conflicts"],
        2,
        &[
            "SchemaMismatch",
            "source column(s) \"Region Code\" (TEXT) have no column in \"public\".\"orders\" (new since the previous run)",
            "ALTER TABLE \"public\".\"orders\" ADD COLUMN \"Region Code\" varchar(8);",
            "\"schema_evolution\": \"add_columns\"",
        ],
    );
    let runs: i64 = pg.query_one("SELECT count(*) FROM migration_status.migration_runs", &[]).await.unwrap().get(0);
    assert_eq!(runs, 1, "the refused plan recorded no run");
    assert_eq!(pg_count(&pg, "public.orders").await, 60);
    let added: i64 = pg
        .query_one("SELECT count(*) FROM information_schema.columns WHERE table_name = 'orders' AND column_name = 'Region Code'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(added, 0, "the target is unchanged");

    // Opting in adds the column (the log shows the DDL) and copies the new row.
    let evolving = config_text(&sf_db, &pg_db, &[&orders_table(None, r#", "schema_evolution": "add_columns""#)], "");
    let path = config_file(&evolving);
    let out = thaw!(&["run", "--config", path.to_str().unwrap(), "--no-conflicts"]);
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("ADD COLUMN \\\"Region Code\\\" varchar(8)") || log.contains("ADD COLUMN \"Region Code\" varchar(8)"), "the DDL is logged:\n{log}");
    let region: Option<String> = pg
        .query_one("SELECT \"Region Code\" FROM public.orders WHERE \"Code\" = 'cccccccc-0000-4000-8000-000000000001'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(region.as_deref(), Some("NE"));
    assert_eq!(pg_count(&pg, "public.orders").await, 61);
}

#[test]
fn validate_accepts_create_tables_and_schema_evolution() {
    let table = r#"{"source": "T", "target": "t", "create_tables": false, "schema_evolution": "add_columns"}"#;
    let path = config_file(&config_text("DB", "db", &[table], r#""create_tables": true, "schema_evolution": "error","#));
    let out = thaw!(&["validate", "--config", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let bad = config_text("DB", "db", &[r#"{"source": "T", "target": "t", "schema_evolution": "add_column"}"#], "");
    let path = config_file(&bad);
    assert_fails(&["validate", "--config", path.to_str().unwrap()], 2, &["schema_evolution"]);
}

/// Found when probing as a new user: `chunk_byte_budget: 0`,
/// `estimated_row_bytes: 0` and `max_parallel_tables: 0` passed `thaw
/// validate`; the budget of 0 then planned one row per chunk (on the probe
/// table a planning query the emulator refused, exit 1 recorded as a failed
/// run). Each is refused offline with exit 2 naming the key.
#[test]
fn zero_budget_row_bytes_and_table_parallelism_are_refused_by_validate() {
    for (top, table_extra, needle) in [
        (r#""chunk_byte_budget": 0,"#, "", "chunk_byte_budget must be at least 1 byte"),
        (r#""max_parallel_tables": 0,"#, "", "max_parallel_tables must be at least 1"),
        ("", r#", "estimated_row_bytes": 0"#, "tables[0] ('T'): estimated_row_bytes must be at least 1"),
    ] {
        let table = format!(r#"{{"source": "T", "target": "t"{table_extra}}}"#);
        let path = config_file(&config_text("DB", "db", &[&table], top));
        assert_fails(&["validate", "--config", path.to_str().unwrap()], 2, &["ConfigInvalid", needle]);
    }
}

/// Found when probing as a new user: a chunking column declared with the
/// wrong type family (`"date"` for a NUMBER column) passed plan's checks and
/// failed in Snowflake's planning query as `Internal` (exit 1, a failed run
/// recorded), and a typo in `truncate_to_date` was ignored. Both are now bad
/// input: exit 2 naming the column, nothing recorded, the target untouched.
#[tokio::test]
async fn chunking_type_of_the_wrong_family_and_unknown_truncate_to_date_column_fail_before_anything_is_written() {
    let sf_db = unique("SFCHUNKTYPE").to_uppercase();
    let pg_db = unique("chunktype");
    let sf = fresh_sf(&sf_db).await;
    create_orders(&sf, &sf_db, 50).await;
    let pg = fresh_pg(&pg_db).await;
    create_orders_target(&pg).await;

    let wrong_type = config_text(&sf_db, &pg_db, &[&orders_table(Some(("Id", "date")), "")], "");
    let path = config_file(&wrong_type);
    assert_fails(
        &["run", "--config", path.to_str().unwrap(), "--no-conflicts"],
        2,
        &["ConfigInvalid", "chunking column \"Id\" is declared a date or timestamp", "its Snowflake type is NUMBER", "\"bigint\""],
    );
    let wrong_type = config_text(&sf_db, &pg_db, &[&orders_table(Some(("Day", "bigint")), "")], "");
    let path = config_file(&wrong_type);
    assert_fails(&["run", "--config", path.to_str().unwrap(), "--no-conflicts"], 2, &["chunking column \"Day\" is declared an integer", "TIMESTAMP_TZ"]);

    let typo = config_text(&sf_db, &pg_db, &[&orders_table(Some(("Id", "bigint")), r#", "truncate_to_date": ["Dya"]"#)], "");
    let path = config_file(&typo);
    assert_fails(&["run", "--config", path.to_str().unwrap(), "--no-conflicts"], 2, &["SchemaMismatch", "source column \"Dya\""]);

    let runs: i64 = pg.query_one("SELECT count(*) FROM migration_status.migration_runs", &[]).await.unwrap().get(0);
    assert_eq!(runs, 0, "nothing was planned");
    assert_eq!(pg_count(&pg, "public.orders").await, 0);
    // A text declaration of a numeric column stays accepted (keyset ranges).
    let text_key = config_text(&sf_db, &pg_db, &[&orders_table(Some(("Id", "varchar")), "")], "");
    let path = config_file(&text_key);
    let out = thaw!(&["run", "--config", path.to_str().unwrap(), "--no-conflicts"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(pg_count(&pg, "public.orders").await, 50);
}

/// Found when probing as a new user: `thaw run --workers 0` planned the run,
/// took its lock and then waited forever for a worker (SIGTERM could not stop
/// it either, and the run stayed `running` holding the lock). It is refused
/// as bad input before anything is touched.
#[test]
fn zero_workers_are_refused_before_anything_is_touched() {
    let path = config_file(&config_text("DB", "db", &[r#"{"source": "T", "target": "t"}"#], ""));
    assert_fails(&["run", "--config", path.to_str().unwrap(), "--workers", "0"], 2, &["--workers", "0 is not in 1..="]);
}

/// Found when probing as a new user: a `postgres.status_database` other than
/// the sources' `target_pg_database` passed `thaw validate`, and `thaw run`
/// then failed connecting to it with "Create the database or fix
/// target_pg_database" (the wrong key). docs/sync.md §1.3 requires them to
/// be equal; validate now says so, naming both.
#[test]
fn a_status_database_other_than_the_target_database_is_refused_by_validate() {
    let text = config_text("DB", "db", &[r#"{"source": "T", "target": "t"}"#], "")
        .replace(r#""password": "${THAW_PG_PASSWORD}"}"#, r#""password": "${THAW_PG_PASSWORD}", "status_database": "other"}"#);
    assert!(text.contains("\"status_database\": \"other\""), "the fixture changed: {text}");
    let path = config_file(&text);
    assert_fails(&["validate", "--config", path.to_str().unwrap()], 2, &["target_pg_database 'db' differs from the status database 'other'"]);
}

/// Found when probing as a new user: two sources whose tables wrote the same
/// PostgreSQL table (or copied the same Snowflake table) passed `thaw
/// validate` (the duplicate-target check looked within one source only);
/// `thaw run` then failed with a duplicate key in `migration_table_status`
/// (exit 1). Both are refused offline naming both entries.
#[test]
fn two_sources_writing_one_target_or_reading_one_table_are_refused_by_validate() {
    let one = r#"{"source_name": "a", "source_sf_database": "DB", "source_sf_schema": "S", "target_pg_database": "db", "target_pg_schema": "public",
                 "tables": [{"source": "T", "target": "t"}]}"#;
    let base = config_text("DB", "db", &[r#"{"source": "T", "target": "t"}"#], "");
    let start = base.find("\"sources\": [").unwrap() + "\"sources\": [".len();
    let two = format!("{}{one}, {}", &base[..start], &base[start..]);
    let path = config_file(&two);
    assert_fails(
        &["validate", "--config", path.to_str().unwrap()],
        2,
        &["target public.t is also written by sources[0] ('a').tables[0] ('T')", "Snowflake table DB.S.T is also copied by sources[0] ('a').tables[0] ('T')"],
    );
    let other_table = two.replacen(r#""tables": [{"source": "T", "target": "t"}]"#, r#""tables": [{"source": "U", "target": "t"}]"#, 1);
    let path = config_file(&other_table);
    let text = assert_fails(&["validate", "--config", path.to_str().unwrap()], 2, &["target public.t is also written by sources[0] ('a').tables[0] ('U')"]);
    assert!(!text.contains("is also copied"), "{text}");
}

/// `--table` naming no table of the selection used to say only "is not in
/// any selected source", also for a table whose source is disabled. Now the
/// error (exit 2, before any database is touched) lists the tables, or names
/// the source that has the table and how to select it.
#[test]
fn table_option_naming_an_unknown_or_unselected_table_lists_the_tables_or_names_its_source() {
    let other = r#"{"source_name": "legacy", "enabled": false, "source_sf_database": "DB2", "source_sf_schema": "S", "target_pg_database": "db", "target_pg_schema": "public",
                   "tables": [{"source": "OLDVISITS", "target": "old_visits"}]}"#;
    let base = config_text("DB", "db", &[r#"{"source": "FACTVISIT", "target": "factvisit"}"#, r#"{"source": "DIMPAYER", "target": "dimpayer"}"#], "");
    let start = base.find("\"sources\": [").unwrap() + "\"sources\": [".len();
    let path = config_file(&format!("{}{other}, {}", &base[..start], &base[start..]));
    let cfg = path.to_str().unwrap();
    assert_fails(
        &["run", "--config", cfg, "--table", "factvisits"],
        2,
        &["table 'factvisits' is not in the configuration", "legacy.old_visits (OLDVISITS), src.dimpayer (DIMPAYER), src.factvisit (FACTVISIT)"],
    );
    assert_fails(
        &["run", "--config", cfg, "--table", "OLD_VISITS"],
        2,
        &["table 'OLD_VISITS' is in source 'legacy', which this run does not select: that source is disabled", "add --source legacy"],
    );
    assert_fails(&["run", "--config", cfg, "--source", "src", "--table", "oldvisits"], 2, &["--source selects only src; add --source legacy"]);
}

/// Found when probing as a new user: a target with a NOT NULL column
/// without a default that no source column fills was planned and every
/// chunk then failed on the not-null constraint (exit 1, a failed run
/// recorded). Plan now refuses it before anything is written (exit 2),
/// naming the column and the ways out.
#[tokio::test]
async fn a_required_target_column_no_source_column_fills_fails_before_anything_is_written() {
    let sf_db = unique("SFREQUIRED").to_uppercase();
    let pg_db = unique("required");
    let sf = fresh_sf(&sf_db).await;
    create_orders(&sf, &sf_db, 20).await;
    let pg = fresh_pg(&pg_db).await;
    pg.batch_execute(&format!(
        "CREATE TABLE public.orders ({ORDERS_TARGET_COLUMNS}, \"Region\" text NOT NULL, \"Loaded\" timestamptz NOT NULL DEFAULT now(), \
         \"Serial\" int8 GENERATED ALWAYS AS IDENTITY, UNIQUE (\"Code\"))"
    ))
    .await
    .unwrap();
    let path = config_file(&config_text(&sf_db, &pg_db, &[&orders_table(Some(("Id", "bigint")), "")], ""));
    let message = assert_fails(
        &["run", "--config", path.to_str().unwrap(), "--no-conflicts"],
        2,
        &["SchemaMismatch", "target column(s) \"Region\" of \"public\".\"orders\" are NOT NULL without a default", "column_mapping"],
    );
    assert!(!message.contains("\"Loaded\"") && !message.contains("\"Serial\""), "columns with a default or identity are fine:\n{message}");
    let runs: i64 = pg.query_one("SELECT count(*) FROM migration_status.migration_runs", &[]).await.unwrap().get(0);
    assert_eq!(runs, 0, "nothing was planned");
    // With a default the same table loads.
    pg.batch_execute("ALTER TABLE public.orders ALTER COLUMN \"Region\" SET DEFAULT 'NE'").await.unwrap();
    let out = thaw!(&["run", "--config", path.to_str().unwrap(), "--no-conflicts"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(pg_count(&pg, "public.orders").await, 20);
}

/// Found when tried as a new user would: `--report` in a directory that
/// does not exist was only noticed after the whole run or reconcile, and
/// its write error (exit 1) replaced the command's own outcome. The path is
/// now checked first (exit 2, nothing run: here PostgreSQL is not even
/// reached), and a report that cannot be written late never hides why the
/// command failed (`/dev/full` refuses every write).
#[test]
fn a_report_path_in_a_missing_directory_is_refused_before_anything_runs_and_never_hides_the_outcome() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let text = config_text("DB", "db", &[r#"{"source": "T", "target": "t"}"#], "").replace("${THAW_PG_PORT}", &port.to_string());
    let path = config_file(&text);
    let config = path.to_str().unwrap();
    let run_id = "00000000-0000-0000-0000-000000000001";
    let missing = std::env::temp_dir().join(unique("no_such_directory")).join("report.json");
    let missing = missing.to_str().unwrap();
    for args in [vec!["run", "--config", config, "--report", missing], vec!["reconcile", "--config", config, "--run-id", run_id, "--report", missing]] {
        let text = assert_fails(&args, 2, &["ConfigInvalid", &format!("--report {missing} is in "), "not an existing directory", "nothing was run"]);
        assert!(!text.contains("cannot connect"), "the path is checked before PostgreSQL is reached:\n{text}");
    }
    let directory = std::env::temp_dir();
    assert_fails(&["reconcile", "--config", config, "--run-id", run_id, "--report", directory.to_str().unwrap()], 2, &["is a directory"]);
    for args in [vec!["run", "--config", config, "--report", "/dev/full"], vec!["reconcile", "--config", config, "--run-id", run_id, "--report", "/dev/full"]] {
        let text = assert_fails(&args, 1, &["cannot write the report to /dev/full"]);
        let last = text.lines().rfind(|l| l.starts_with("error:")).unwrap_or_default();
        assert!(last.contains("Unreachable") && last.contains(&format!(":{port}/")), "the command's own error comes last and decides the exit:\n{text}");
    }
}
