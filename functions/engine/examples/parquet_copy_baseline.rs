//! The minimal loader `make bench` measures thaw's staged load against
//! (tests/bench/staged.py, docs/benchmarks.md): the Parquet files one staged
//! run unloaded, each downloaded whole, decoded with the `parquet` crate's
//! synchronous reader and written through one binary COPY into an empty
//! table — no status rows, no transaction per file, no streaming reads, no
//! retries; with `<streams>` > 1 the files are dealt round-robin to that
//! many concurrent COPYs (one connection and transaction each), the
//! parallelism thaw's workers have. It uses thaw's own sink encoder and unload-form conversions, so
//! the ratio measures what thaw's orchestration costs, not a different
//! encoder.
//!
//! ```text
//! cargo run --release -p thaw-engine --example parquet_copy_baseline -- \
//!     <status database> <run id> <source table> <target database> [<truncate_to_date columns, comma-separated> [<streams>]]
//! ```
//! The last argument is the table's `truncate_to_date` (source column names),
//! applied as thaw's load applies it.
//! PostgreSQL from `THAW_PG_HOST`/`THAW_PG_PORT`/`THAW_PG_USER`/`THAW_PG_PASSWORD`,
//! S3 from `THAW_S3_ENDPOINT` and the `AWS_*` variables. Prints one JSON
//! line: `{"rows": …, "files": …, "bytes": …, "streams": …, "seconds": …}`.

use std::time::Instant;

use bytes::BytesMut;
use futures::SinkExt;
use object_store::path::Path as ObjectPath;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use thaw_engine::config::{PostgresSettings, Secret, StagingSettings};
use thaw_engine::sink::{self, encode::CopyEncoder};
use thaw_engine::source::staged::{offset_column, s3_store, UnloadForm};
use thaw_engine::sync::status::TableKey;
use thaw_engine::sync::{copy, staged};

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set (run under tests/harness.py)"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (status_db, run_id, source_table, target_db, truncate_to_date, streams) = match &args[..] {
        [s, r, t, d] => (s, r, t, d, String::new(), 1),
        [s, r, t, d, dates] => (s, r, t, d, dates.clone(), 1),
        [s, r, t, d, dates, n] => (s, r, t, d, dates.clone(), n.parse::<usize>()?.max(1)),
        _ => return Err("usage: parquet_copy_baseline <status database> <run id> <source table> <target database> [<truncate_to_date columns> [<streams>]]".into()),
    };
    let truncate_to_date: Vec<&str> = truncate_to_date.split(',').filter(|c| !c.is_empty()).collect();
    let settings = PostgresSettings {
        host: env("THAW_PG_HOST"),
        port: Some(env("THAW_PG_PORT").parse()?),
        user: env("THAW_PG_USER"),
        password: std::env::var("THAW_PG_PASSWORD").ok().map(Secret),
        ..Default::default()
    };
    let target_db = target_db.clone();
    let status = sink::connect(&settings, status_db).await?;
    let row = status
        .query_one(
            "SELECT source_database, source_schema FROM migration_status.migration_table_status WHERE run_id = $1 AND source_table = $2",
            &[&run_id.parse::<uuid::Uuid>()?, source_table],
        )
        .await?;
    let key = TableKey {
        run_id: run_id.parse()?,
        source_database: row.get(0),
        source_schema: row.get(1),
        source_table: source_table.clone(),
    };
    let plan = copy::load_plan(&status, &key).await?;
    let forms = staged::unload_forms(&plan)?;
    let files = status
        .query(
            "SELECT bucket, file_key, bytes FROM migration_status.migration_file_status WHERE run_id = $1 AND source_table = $2 ORDER BY chunk_id, file_key",
            &[&key.run_id, source_table],
        )
        .await?;

    let started = Instant::now();
    // Files dealt round-robin to `streams` concurrent COPYs, one connection
    // and transaction each, as thaw's workers share them.
    let mut groups: Vec<Vec<(String, String)>> = vec![Vec::new(); streams];
    for (i, f) in files.iter().enumerate() {
        groups[i % streams].push((f.get(0), f.get(1)));
    }
    let plan = std::sync::Arc::new(plan);
    let forms = std::sync::Arc::new(forms);
    let truncate_to_date: std::sync::Arc<Vec<String>> = std::sync::Arc::new(truncate_to_date.iter().map(|c| c.to_string()).collect());
    let loads = groups.into_iter().filter(|g| !g.is_empty()).map(|group| {
        let (settings, target_db) = (settings.clone(), target_db.clone());
        let (plan, forms, truncate_to_date) = (plan.clone(), forms.clone(), truncate_to_date.clone());
        tokio::spawn(async move { load_files(&settings, &target_db, &plan, &forms, &truncate_to_date, &group).await.map_err(|e| e.to_string()) })
    });
    let (mut rows, mut bytes_read) = (0u64, 0u64);
    for load in futures::future::join_all(loads).await {
        let (r, b) = load??;
        rows += r;
        bytes_read += b;
    }
    println!(
        "{}",
        serde_json::json!({"rows": rows, "files": files.len(), "bytes": bytes_read, "streams": streams, "seconds": started.elapsed().as_secs_f64()})
    );
    Ok(())
}

/// One stream: `files` (bucket, key) downloaded whole, decoded synchronously
/// and written through one binary COPY in one transaction; (rows, bytes read).
async fn load_files(
    settings: &PostgresSettings,
    target_db: &str,
    plan: &thaw_engine::sync::table_plan::TablePlan,
    forms: &[(String, UnloadForm)],
    truncate_to_date: &[String],
    files: &[(String, String)],
) -> Result<(u64, u64), Box<dyn std::error::Error>> {
    let mut target = sink::connect(settings, target_db).await?;
    let tx = target.transaction().await?;
    let cols: Vec<String> = plan
        .columns
        .iter()
        .map(|c| sink::ident(&c.target.name))
        .collect();
    let copy_in = tx
        .copy_in::<_, bytes::Bytes>(&format!(
            "COPY {} ({}) FROM STDIN (FORMAT binary)",
            plan.target_fqn(),
            cols.join(", ")
        ))
        .await?;
    futures::pin_mut!(copy_in);
    let mut buf = BytesMut::with_capacity(2 << 20);
    CopyEncoder::header(&mut buf);
    let mut encoder: Option<CopyEncoder> = None;
    let (mut rows, mut bytes_read) = (0u64, 0u64);
    for (bucket, file_key) in files {
        let object = s3_store(
            &StagingSettings {
                bucket: bucket.clone(),
                ..Default::default()
            },
            bucket,
        )?
        .get(&ObjectPath::from(file_key.as_str()))
        .await?
        .bytes()
        .await?;
        bytes_read += object.len() as u64;
        let reader = ParquetRecordBatchReaderBuilder::try_new(object)?
            .with_batch_size(8192)
            .build()?;
        for batch in reader {
            let batch = batch?;
            // Columns in plan order, matched by name, converted back from their unload form.
            let arrays = forms
                .iter()
                .map(|(name, form)| {
                    let i = batch.schema().index_of(name)?;
                    Ok(match form {
                        UnloadForm::UtcTimestampWithOffset => {
                            let o = batch.schema().index_of(&offset_column(name))?;
                            form.convert_with_offset(name, batch.column(i), batch.column(o))?
                        }
                        _ => form.convert(name, batch.column(i))?,
                    })
                })
                .collect::<Result<Vec<_>, Box<dyn std::error::Error>>>()?;
            let encoder = match &mut encoder {
                Some(e) => e,
                None => {
                    let fields = forms.iter().zip(&arrays).map(|((name, form), a)| {
                        std::sync::Arc::new(form.loaded_field(name, a.data_type()))
                    });
                    let date_only: Vec<usize> = plan
                        .columns
                        .iter()
                        .enumerate()
                        .filter(|(_, c)| truncate_to_date.contains(&c.source.name))
                        .map(|(i, _)| i)
                        .collect();
                    encoder.insert(
                        CopyEncoder::new(
                            plan.columns
                                .iter()
                                .map(|c| c.target.clone())
                                .zip(fields)
                                .collect(),
                        )?
                        .with_truncate_to_date(&date_only),
                    )
                }
            };
            rows += encoder.encode_batch(&arrays, &mut buf)? as u64;
            if buf.len() >= 1 << 20 {
                copy_in.send(buf.split().freeze()).await?;
            }
        }
    }
    CopyEncoder::trailer(&mut buf);
    copy_in.send(buf.split().freeze()).await?;
    let copied = copy_in.finish().await?;
    tx.commit().await?;
    assert_eq!(copied, rows, "COPY wrote every row read");
    Ok((rows, bytes_read))
}
