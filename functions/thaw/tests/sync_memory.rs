//! `thaw run` keeps a hard memory bound: a chunk's rows stream from the
//! result's chunks into COPY instead of being collected first
//! (docs/sync.md §5.6). The loose bound (256 MiB) is the target of
//! docs/benchmarks.md; the exact figures live in `make bench`.

use std::process::{Command, Stdio};
use std::time::Duration;

use thaw_test_support::*;

/// Peak resident set (VmHWM, KiB) of a running process, if it still runs.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// 400 000 rows of about 450 bytes (≈ 170 MiB of text) in four chunks of
/// 100 000 rows copied by four workers: collecting each chunk before COPY
/// (the old behaviour: its IPC bytes plus its decoded batches, per worker)
/// needs well over 256 MiB; streaming 10 000-row result chunks stays far below.
/// The table has no FLOAT or JSON column, so reconcile checks it in SQL on
/// the emulator too (its Rust fallback for those columns reads every row,
/// docs/reconcile.md).
#[tokio::test]
async fn l4_l12_thaw_run_peak_rss_stays_below_256_mib_on_a_wide_table() {
    const ROWS: i64 = 400_000;
    let sf_db = unique("SFMEM").to_uppercase();
    let pg_db = unique("mem");
    let sf = fresh_sf(&sf_db).await;
    let text_column = |n: usize| format!("'{} ' || SEQ8() AS C{n}", format!("caregiver visit note {n} ").repeat(3));
    let texts: Vec<String> = (1..=6).map(text_column).collect();
    sf.execute(&format!(
        "CREATE TABLE \"{sf_db}\".\"S\".\"WIDE\" AS SELECT SEQ8() AS ID, {}, CAST(SEQ8() / 100 AS NUMBER(12,2)) AS AMOUNT, \
         CAST('2026-01-05 09:00:00' AS TIMESTAMP_NTZ) AS VISIT_START FROM TABLE(GENERATOR(ROWCOUNT => {ROWS}))",
        texts.join(", ")
    ))
    .await
    .unwrap();
    let pg = fresh_pg(&pg_db).await;
    pg.batch_execute(
        "CREATE TABLE public.wide (\"ID\" int8 PRIMARY KEY, \"C1\" text, \"C2\" text, \"C3\" text, \"C4\" text, \"C5\" text, \"C6\" text, \
         \"AMOUNT\" numeric(14,2), \"VISIT_START\" timestamp)",
    )
    .await
    .unwrap();
    let table = r#"{"source": "WIDE", "target": "wide", "uniqueness_columns": ["ID"], "chunking_columns": ["ID"], "chunking_column_types": ["int"],
                    "batch_size": 100000, "batch_size_copy_mode": 100000, "parallel_threads": 4}"#;
    let config = config_text(&sf_db, &pg_db, &[table], "")
        .replace(
            r#""ca_file": "${THAW_SF_CA_FILE}"}"#,
            r#""ca_file": "${THAW_SF_CA_FILE}", "session_parameters": {"THAW_EMULATOR_ROWS_PER_CHUNK": 10000}}"#,
        )
        .replace(r#""parallel_threads": 3,"#, r#""parallel_threads": 4,"#);
    assert!(config.contains("session_parameters"), "the config asks the emulator for chunked results");
    let path = config_file(&config);

    let mut child = Command::new(thaw_bin(env!("CARGO_BIN_EXE_thaw")))
        .args(["run", "--config", path.to_str().unwrap(), "--no-conflicts", "--no-resume"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start thaw");
    let pid = child.id();
    let mut peak_kib = 0;
    let status = loop {
        if let Some(kib) = peak_rss_kib(pid) {
            peak_kib = peak_kib.max(kib);
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = child.wait_with_output().unwrap();
    let output = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(status.success(), "thaw run failed:\n{output}");
    assert_eq!(pg_count(&pg, "public.wide").await, ROWS, "every row copied");
    let chunks: i64 = pg
        .query_one("SELECT count(*) FROM migration_status.migration_chunk_status WHERE source_table = 'WIDE' AND status = 'completed'", &[])
        .await
        .unwrap()
        .get(0);
    assert!(chunks >= 4, "the table was copied in {chunks} chunk(s); four workers need at least four");
    assert!(peak_kib > 0, "VmHWM of the thaw process was read");
    eprintln!("thaw run peak RSS: {} MiB", peak_kib / 1024);
    assert!(peak_kib < 256 * 1024, "thaw run peaked at {} MiB RSS (bound 256 MiB)", peak_kib / 1024);
}
