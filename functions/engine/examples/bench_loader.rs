//! The sync benchmark's baselines (tests/bench/sync_baselines.py,
//! docs/benchmarks.md): the two halves of a copy, measured alone on the same
//! rows thaw copies.
//!
//! * `fetch --sql SQL [--out FILE] [--before STATEMENT]`: a pure fetch from Snowflake (the
//!   emulator) with thaw's client, streaming the result chunks; optionally
//!   writes the rows as an Arrow IPC stream file (standard Arrow);
//!   `--before` runs a statement first (the bench's `ALTER SESSION`).
//! * `ingest --in FILE --database DB --table SCHEMA.TABLE [--truncate-to-date COLUMN]…`: the minimal
//!   binary-COPY loader: the rows of FILE into one table in one transaction
//!   (columns matched by exact name, the table's `truncate_to_date` as in
//!   the config), no source, no status, no staging.
//!
//! Connections come from the harness environment (`THAW_SF_*`, `THAW_PG_*`).
//! Prints one JSON line: `{"rows": N, "seconds": S}`. Exit code 1 on error.
//!
//! Build: `cargo build --release -p thaw-engine --example bench_loader`.

use std::time::Instant;

use futures::TryStreamExt;
use thaw_engine::sink::{self, encode::CopyEncoder, writer::CopyWriter};
use thaw_engine::source;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

async fn fetch(sql: &str, out: Option<&str>, before: Option<&str>) -> Result<u64, Box<dyn std::error::Error>> {
    let sf = source::connect(&thaw_test_support::snowflake(), None, None).await?;
    if let Some(statement) = before {
        sf.execute(statement).await?;
    }
    let mut batches = sf.stream_query(sql).await?;
    let mut rows = 0u64;
    let mut writer = None;
    while let Some(batch) = batches.try_next().await? {
        rows += batch.num_rows() as u64;
        if let Some(path) = out {
            let w = match &mut writer {
                Some(w) => w,
                None => writer.insert(arrow_ipc::writer::StreamWriter::try_new(
                    std::io::BufWriter::new(std::fs::File::create(path)?),
                    &batch.schema(),
                )?),
            };
            w.write(&batch)?;
        }
    }
    if let Some(mut w) = writer {
        w.finish()?;
    }
    Ok(rows)
}

async fn ingest(path: &str, database: &str, table: &str, truncate_to_date: &[String]) -> Result<u64, Box<dyn std::error::Error>> {
    let (schema_name, table_name) = table.split_once('.').ok_or("--table must be schema.table")?;
    let mut pg = sink::connect(&thaw_test_support::postgres(), database).await?;
    let targets = sink::table_columns(&pg, schema_name, table_name).await?;
    let reader = arrow_ipc::reader::StreamReader::try_new(std::io::BufReader::new(std::fs::File::open(path)?), None)?;
    let schema = reader.schema();
    let mut pairs = Vec::new();
    for field in schema.fields() {
        let target =
            targets.iter().find(|t| &t.name == field.name()).ok_or_else(|| format!("{table} has no column \"{}\"", field.name()))?;
        pairs.push((target.clone(), field.clone()));
    }
    let columns: Vec<String> = pairs.iter().map(|(t, _)| sink::ident(&t.name)).collect();
    let date_only: Vec<usize> =
        pairs.iter().enumerate().filter(|(_, (_, f))| truncate_to_date.contains(f.name())).map(|(i, _)| i).collect();
    let tx = pg.transaction().await?;
    let mut writer = CopyWriter::new(
        &tx,
        &sink::qualified(schema_name, table_name),
        &columns,
        CopyEncoder::new(pairs)?.with_truncate_to_date(&date_only),
    )
    .await?;
    for batch in reader {
        writer.write(&batch?).await?;
    }
    let rows = writer.finish().await?;
    tx.commit().await?;
    Ok(rows)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let started = Instant::now();
    let result = match args.get(1).map(String::as_str) {
        Some("fetch") => match arg(&args, "--sql") {
            Some(sql) => fetch(&sql, arg(&args, "--out").as_deref(), arg(&args, "--before").as_deref()).await,
            None => Err("fetch needs --sql".into()),
        },
        Some("ingest") => match (arg(&args, "--in"), arg(&args, "--database"), arg(&args, "--table")) {
            (Some(path), Some(database), Some(table)) => {
                let dates: Vec<String> = args.windows(2).filter(|w| w[0] == "--truncate-to-date").map(|w| w[1].clone()).collect();
                ingest(&path, &database, &table, &dates).await
            }
            _ => Err("ingest needs --in, --database and --table".into()),
        },
        _ => Err(
            "usage: bench_loader fetch --sql SQL [--out FILE] [--before STATEMENT] | ingest --in FILE --database DB --table SCHEMA.TABLE [--truncate-to-date COLUMN]..."
                .into(),
        ),
    };
    match result {
        Ok(rows) => println!("{{\"rows\": {rows}, \"seconds\": {:.3}}}", started.elapsed().as_secs_f64()),
        Err(e) => {
            eprintln!("bench_loader: {e}");
            std::process::exit(1);
        }
    }
}
