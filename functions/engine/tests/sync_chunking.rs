//! Each chunking strategy's chunks partition the source rows exactly: every
//! row matches exactly one chunk predicate, on skewed, sparse and
//! NULL-bearing keys.


use thaw_test_support::*;
use thaw_engine::contract::PlanRequest;

async fn assert_partition(chunk_col: Option<(&str, &str)>, min_chunks: usize) {
    let sf_db = unique("SFPART").to_uppercase();
    let pg_db = unique("part");
    let sf = fresh_sf(&sf_db).await;
    let total = create_orders(&sf, &sf_db, 2400).await;
    let pg = fresh_pg(&pg_db).await;
    create_orders_target(&pg).await;
    let config = config(&config_text(&sf_db, &pg_db, &[&orders_table(chunk_col, "")], ""));

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
