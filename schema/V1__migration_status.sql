-- migration_status: thaw's state store (legacy-compatible names, fixed semantics).
-- Runs, tables and chunks of every sync run. PostgreSQL is the only state
-- store: a chunk's rows and its 'completed' status commit in one transaction.

CREATE SCHEMA IF NOT EXISTS migration_status;

CREATE TABLE IF NOT EXISTS migration_status.migration_runs (
    run_id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    status            text NOT NULL DEFAULT 'running'
                      CHECK (status IN ('running', 'completed', 'failed', 'partial')),
    config_hash       text NOT NULL,
    execution_hash    text NOT NULL,
    mode              text NOT NULL DEFAULT 'incremental',
    started_at        timestamptz NOT NULL DEFAULT now(),
    heartbeat_at      timestamptz NOT NULL DEFAULT now(),
    completed_at      timestamptz,
    total_tables      integer NOT NULL DEFAULT 0,
    completed_tables  integer NOT NULL DEFAULT 0,
    failed_tables     integer NOT NULL DEFAULT 0,
    total_rows_copied bigint NOT NULL DEFAULT 0,
    error_message     text,
    metadata          jsonb NOT NULL DEFAULT '{}'::jsonb
);

CREATE INDEX IF NOT EXISTS migration_runs_resume_idx
    ON migration_status.migration_runs (execution_hash, started_at DESC) WHERE status <> 'completed';

CREATE TABLE IF NOT EXISTS migration_status.migration_table_status (
    run_id            uuid NOT NULL REFERENCES migration_status.migration_runs (run_id) ON DELETE CASCADE,
    source_name       text NOT NULL,
    source_database   text NOT NULL,
    source_schema     text NOT NULL,
    source_table      text NOT NULL,
    target_database   text NOT NULL,
    target_schema     text NOT NULL,
    target_table      text NOT NULL,
    status            text NOT NULL DEFAULT 'pending'
                      CHECK (status IN ('pending', 'in_progress', 'completed', 'failed', 'skipped')),
    load_mode         text CHECK (load_mode IN ('copy', 'upsert', 'insert_only')),
    strategy          text,
    watermark_from    text,
    truncated         boolean NOT NULL DEFAULT false,
    total_chunks      integer NOT NULL DEFAULT 0,
    completed_chunks  integer NOT NULL DEFAULT 0,
    failed_chunks     integer NOT NULL DEFAULT 0,
    total_rows_copied bigint NOT NULL DEFAULT 0,
    indexes_disabled  boolean NOT NULL DEFAULT false,
    indexes_restored  boolean NOT NULL DEFAULT false,
    plan              jsonb NOT NULL DEFAULT '{}'::jsonb,
    error_message     text,
    started_at        timestamptz NOT NULL DEFAULT now(),
    completed_at      timestamptz,
    PRIMARY KEY (run_id, source_database, source_schema, source_table)
);

CREATE TABLE IF NOT EXISTS migration_status.migration_chunk_status (
    run_id           uuid NOT NULL,
    source_database  text NOT NULL,
    source_schema    text NOT NULL,
    source_table     text NOT NULL,
    chunk_id         integer NOT NULL,
    chunk_range      jsonb NOT NULL,
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'in_progress', 'completed', 'failed')),
    rows_copied      bigint NOT NULL DEFAULT 0,
    rows_inserted    bigint NOT NULL DEFAULT 0,
    rows_updated     bigint NOT NULL DEFAULT 0,
    rows_unchanged   bigint NOT NULL DEFAULT 0,
    retry_count      integer NOT NULL DEFAULT 0,
    error_message    text,
    started_at       timestamptz,
    completed_at     timestamptz,
    PRIMARY KEY (run_id, source_database, source_schema, source_table, chunk_id),
    FOREIGN KEY (run_id, source_database, source_schema, source_table)
        REFERENCES migration_status.migration_table_status (run_id, source_database, source_schema, source_table)
        ON DELETE CASCADE
);

CREATE OR REPLACE VIEW migration_status.v_active_migrations AS
SELECT r.run_id, r.status, r.started_at, r.heartbeat_at,
       now() - r.heartbeat_at AS since_heartbeat,
       count(t.*) AS tables,
       count(t.*) FILTER (WHERE t.status = 'completed') AS tables_completed,
       count(t.*) FILTER (WHERE t.status = 'failed') AS tables_failed
FROM migration_status.migration_runs r
LEFT JOIN migration_status.migration_table_status t USING (run_id)
WHERE r.status = 'running'
GROUP BY r.run_id;

CREATE OR REPLACE VIEW migration_status.v_table_progress AS
SELECT t.run_id, t.source_name, t.source_table, t.target_schema, t.target_table, t.status, t.load_mode, t.strategy,
       count(c.*) AS chunks,
       count(c.*) FILTER (WHERE c.status = 'completed') AS chunks_completed,
       count(c.*) FILTER (WHERE c.status = 'failed') AS chunks_failed,
       coalesce(sum(c.rows_copied), 0) AS rows_copied,
       min(c.started_at) AS first_chunk_started, max(c.completed_at) AS last_chunk_completed
FROM migration_status.migration_table_status t
LEFT JOIN migration_status.migration_chunk_status c USING (run_id, source_database, source_schema, source_table)
GROUP BY t.run_id, t.source_name, t.source_table, t.target_schema, t.target_table, t.status, t.load_mode, t.strategy;

-- Per-chunk staging tables (UNLOGGED, not TEMP: TEMP pins RDS Proxy sessions).
CREATE SCHEMA IF NOT EXISTS thaw_staging;
