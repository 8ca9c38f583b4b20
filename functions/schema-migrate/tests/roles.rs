//! schema/V4__roles.sql against the harness PostgreSQL (run under tests/harness.py):
//! the four roles exist after migrating, migrating a second database of the same
//! cluster does not trip over them, and each role may write exactly what docs/operations.md §8
//! allows (checked with `SET ROLE` from the harness superuser; the roles are NOLOGIN
//! until schema-migrate gives them passwords).

use thaw_test_support as harness;
use tokio_postgres::Client;

/// A fresh database with every migration applied; returns a superuser connection to it.
async fn migrated_database(label: &str) -> (Client, String) {
    let settings = harness::postgres();
    let admin = thaw_engine::sink::connect(&settings, "postgres").await.unwrap();
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    let database = format!("thaw_roles_{label}_{}_{nanos}", std::process::id());
    admin.batch_execute(&format!("CREATE DATABASE \"{database}\"")).await.unwrap();
    let mut client = thaw_engine::sink::connect(&settings, &database).await.unwrap();
    let applied = thaw_engine::migrations::migrate(&mut client).await.unwrap();
    assert!(applied.iter().any(|m| m.contains("V4__roles")), "V4 applied in {database}: {applied:?}");
    (client, database)
}

async fn drop_database(database: &str) {
    let admin = thaw_engine::sink::connect(&harness::postgres(), "postgres").await.unwrap();
    admin.batch_execute(&format!("DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)")).await.unwrap();
}

/// Run `sql` as `role` in a transaction that is rolled back; the SQLSTATE on failure.
async fn as_role(client: &mut Client, role: &str, sql: &str) -> Result<(), String> {
    let tx = client.transaction().await.unwrap();
    tx.batch_execute(&format!("SET LOCAL ROLE {role}")).await.unwrap();
    let outcome = tx.batch_execute(sql).await.map_err(|e| e.code().map(|c| c.code().to_string()).unwrap_or_else(|| e.to_string()));
    tx.rollback().await.unwrap();
    outcome
}

const INSERT_ANALYTICS: &str = r#"INSERT INTO analytics.dimpayer ("Payer Id", "Payer Name") VALUES (gen_random_uuid(), 'role test')"#;
const INSERT_CONFLICT: &str = r#"INSERT INTO conflict.conflicts ("StatusFlag") VALUES ('U')"#;
const UPDATE_CONFLICT_SETTINGS: &str = r#"UPDATE conflict.settings SET "InProgressFlag" = 0"#;
const READ_ANALYTICS: &str = "SELECT count(*) FROM analytics.dimpayer";
const READ_STATUS: &str = "SELECT count(*) FROM migration_status.migration_runs";
const CREATE_STAGING: &str = "CREATE UNLOGGED TABLE thaw_staging.role_test (id int); DROP TABLE thaw_staging.role_test";
const PERMISSION_DENIED: &str = "42501";

#[tokio::test]
async fn the_app_role_writes_the_conflict_schema_but_not_analytics_or_the_state_store() {
    let (mut client, database) = migrated_database("app").await;
    assert_eq!(as_role(&mut client, "thaw_app", INSERT_ANALYTICS).await, Err(PERMISSION_DENIED.into()));
    assert_eq!(as_role(&mut client, "thaw_app", "DELETE FROM analytics.dimpayer").await, Err(PERMISSION_DENIED.into()));
    assert_eq!(as_role(&mut client, "thaw_app", READ_ANALYTICS).await, Ok(()));
    assert_eq!(as_role(&mut client, "thaw_app", INSERT_CONFLICT).await, Ok(()));
    assert_eq!(as_role(&mut client, "thaw_app", UPDATE_CONFLICT_SETTINGS).await, Ok(()));
    assert_eq!(as_role(&mut client, "thaw_app", READ_STATUS).await, Err(PERMISSION_DENIED.into()));
    assert_eq!(as_role(&mut client, "thaw_app", CREATE_STAGING).await, Err(PERMISSION_DENIED.into()));
    drop(client);
    drop_database(&database).await;
}

#[tokio::test]
async fn the_conflict_writer_reads_analytics_and_writes_conflict_only() {
    let (mut client, database) = migrated_database("writer").await;
    assert_eq!(as_role(&mut client, "thaw_conflict_writer", READ_ANALYTICS).await, Ok(()));
    assert_eq!(as_role(&mut client, "thaw_conflict_writer", INSERT_ANALYTICS).await, Err(PERMISSION_DENIED.into()));
    assert_eq!(as_role(&mut client, "thaw_conflict_writer", INSERT_CONFLICT).await, Ok(()));
    assert_eq!(as_role(&mut client, "thaw_conflict_writer", READ_STATUS).await, Err(PERMISSION_DENIED.into()));
    drop(client);
    drop_database(&database).await;
}

#[tokio::test]
async fn the_loader_writes_analytics_the_state_store_and_staging_but_not_conflicts() {
    let (mut client, database) = migrated_database("loader").await;
    assert_eq!(as_role(&mut client, "thaw_loader", INSERT_ANALYTICS).await, Ok(()));
    assert_eq!(as_role(&mut client, "thaw_loader", "TRUNCATE analytics.dimuser").await, Ok(()));
    assert_eq!(as_role(&mut client, "thaw_loader", READ_STATUS).await, Ok(()));
    assert_eq!(as_role(&mut client, "thaw_loader", CREATE_STAGING).await, Ok(()));
    assert_eq!(as_role(&mut client, "thaw_loader", UPDATE_CONFLICT_SETTINGS).await, Ok(()), "conflict.settings is a sync target");
    assert_eq!(as_role(&mut client, "thaw_loader", INSERT_CONFLICT).await, Err(PERMISSION_DENIED.into()));
    drop(client);
    drop_database(&database).await;
}

#[tokio::test]
async fn migrating_a_second_database_of_the_cluster_keeps_the_existing_roles() {
    let (first, first_db) = migrated_database("first").await;
    let (second, second_db) = migrated_database("second").await;
    let roles: Vec<String> = second
        .query("SELECT rolname::text FROM pg_roles WHERE rolname LIKE 'thaw\\_%' ORDER BY 1", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    for role in ["thaw_app", "thaw_conflict_writer", "thaw_loader", "thaw_migrator"] {
        assert!(roles.iter().any(|r| r == role), "{role} missing: {roles:?}");
    }
    drop((first, second));
    drop_database(&first_db).await;
    drop_database(&second_db).await;
}
