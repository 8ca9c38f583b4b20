//! Each chunking strategy's chunks partition the source rows exactly: every
//! row matches exactly one chunk predicate, on skewed, sparse and
//! NULL-bearing keys. The same property without a database, on generated
//! keys, is proved by the property tests of `sync::chunk`.

use thaw_engine::contract::PlanRequest;
use thaw_test_support::*;

async fn assert_partition(chunk_col: Option<(&str, &str)>, min_chunks: usize) {
    assert_partition_with(chunk_col, "", min_chunks).await;
}

/// Plan ORDERS (2 400 rows, batch 100) with `extra` table settings and check
/// the stored chunks partition it; returns the stored chunk ranges.
async fn assert_partition_with(chunk_col: Option<(&str, &str)>, extra: &str, min_chunks: usize) -> Vec<serde_json::Value> {
    let sf_db = unique("SFPART").to_uppercase();
    let pg_db = unique("part");
    let sf = fresh_sf(&sf_db).await;
    let total = create_orders(&sf, &sf_db, 2400).await;
    let pg = fresh_pg(&pg_db).await;
    create_orders_target(&pg).await;
    let config = config(&config_text(&sf_db, &pg_db, &[&orders_table(chunk_col, extra)], ""));

    let plan = thaw_engine::sync::plan::plan_run(&config, &PlanRequest { no_resume: true, ..Default::default() }).await.expect("plan");
    let rows = pg
        .query("SELECT chunk_range->>'filter_sql' FROM migration_status.migration_chunk_status WHERE run_id = $1 ORDER BY chunk_id", &[&plan.run_id])
        .await
        .unwrap();
    let filters: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    assert!(filters.len() >= min_chunks, "expected at least {min_chunks} chunks, got {}: {filters:?}", filters.len());
    assert_eq!(plan.chunks as usize, filters.len());

    let membership: Vec<String> = filters.iter().map(|f| format!("CASE WHEN {f} THEN 1 ELSE 0 END")).collect();
    let fqn = format!("\"{sf_db}\".\"S\".\"ORDERS\"");
    let q = format!("SELECT COUNT(*), SUM(CASE WHEN ({m}) = 1 THEN 1 ELSE 0 END) FROM {fqn}", m = membership.join(" + "));
    let r = sf.execute(&q).await.unwrap();
    let count: f64 = r[0][0].as_deref().unwrap().parse().unwrap();
    let exactly_once: f64 = r[0][1].as_deref().unwrap().parse().unwrap();
    assert_eq!(count as usize, total);
    assert_eq!(exactly_once as usize, total, "every row must match exactly one chunk: {filters:#?}");
    pg.query("SELECT chunk_range FROM migration_status.migration_chunk_status WHERE run_id = $1 ORDER BY chunk_id", &[&plan.run_id])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test]
async fn numeric_range_chunks_partition_sparse_keys_with_nulls() {
    assert_partition(Some(("Id", "bigint")), 10).await;
}

#[tokio::test]
async fn date_range_chunks_partition_a_skewed_day_and_nulls() {
    assert_partition(Some(("Day", "timestamp_tz")), 10).await;
}

#[tokio::test]
async fn keyset_chunks_partition_text_keys() {
    assert_partition(Some(("Code", "varchar")), 10).await;
}

#[tokio::test]
async fn single_chunk_covers_everything() {
    assert_partition(None, 1).await;
}

#[tokio::test]
async fn grouped_values_chunks_partition_a_heavy_day_and_nulls() {
    // ~300 distinct days, one holding half the rows, NULL days: value lists
    // by day, the heavy day alone, NULLs in their own chunk.
    let ranges = assert_partition_with(Some(("Day", "timestamp_tz")), r#", "chunking_strategy": "grouped_values""#, 10).await;
    let kinds: Vec<&str> = ranges.iter().map(|r| r["spec"]["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "nulls").count(), 1, "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"nulls"), "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| **k == "other_values").count(), 1, "{kinds:?}");
    assert_eq!(ranges[0]["spec"]["values"], serde_json::json!([{"day": "2026-03-01"}]), "the heaviest day comes first, alone: {}", ranges[0]);
    assert!(ranges[0]["estimated_rows"].as_u64().unwrap() > 100);
    // Every other list stays within the batch of 100 rows.
    for r in &ranges[1..] {
        assert!(r["estimated_rows"].as_u64().unwrap() <= 100, "{r}");
    }
}

#[tokio::test]
async fn grouped_values_chunks_partition_integer_keys() {
    let ranges = assert_partition_with(Some(("Id", "bigint")), r#", "chunking_strategy": "grouped_values""#, 20).await;
    assert!(ranges.iter().all(|r| r["estimated_rows"].as_u64().unwrap() <= 100), "{ranges:#?}");
}
