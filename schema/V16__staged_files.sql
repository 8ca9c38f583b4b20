-- The S3-staged Parquet path (docs/sync.md §13): one row per unloaded file,
-- and the unload's outcome on the chunk. A file's rows and its 'completed'
-- status commit in one transaction (like a chunk's, §4.2), so a crash or a
-- retry resumes at the next unfinished file; a chunk is completed when all
-- its files are. Privileges: the default privileges of V4 cover this table.

ALTER TABLE migration_status.migration_chunk_status
    ADD COLUMN IF NOT EXISTS rows_unloaded bigint,          -- COPY INTO @stage's rows_unloaded
    ADD COLUMN IF NOT EXISTS unloaded_at   timestamptz,     -- NULL: not unloaded (or the unload is being redone)
    ADD COLUMN IF NOT EXISTS unload_prefix text;            -- s3://bucket/key-prefix/ of the chunk's files

CREATE TABLE IF NOT EXISTS migration_status.migration_file_status (
    run_id           uuid NOT NULL,
    source_database  text NOT NULL,
    source_schema    text NOT NULL,
    source_table     text NOT NULL,
    chunk_id         integer NOT NULL,
    file_key         text NOT NULL,                        -- S3 object key (without bucket)
    bucket           text NOT NULL,
    bytes            bigint NOT NULL,                      -- object size (LIST)
    etag             text NOT NULL DEFAULT '',             -- LIST's md5 column: the S3 ETag
    rows             bigint NOT NULL,                      -- rows in the Parquet footer
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'in_progress', 'completed', 'failed')),
    rows_copied      bigint NOT NULL DEFAULT 0,                -- rows read from the file and written
    rows_inserted    bigint NOT NULL DEFAULT 0,
    rows_updated     bigint NOT NULL DEFAULT 0,
    attempts         integer NOT NULL DEFAULT 0,
    error_message    text,
    unloaded_by_run  uuid NOT NULL,                        -- the run whose unload wrote the file (--reuse-unload)
    completed_at     timestamptz,
    PRIMARY KEY (run_id, source_database, source_schema, source_table, chunk_id, file_key),
    FOREIGN KEY (run_id, source_database, source_schema, source_table, chunk_id)
        REFERENCES migration_status.migration_chunk_status (run_id, source_database, source_schema, source_table, chunk_id)
        ON DELETE CASCADE
);

CREATE INDEX IF NOT EXISTS migration_file_status_unfinished_idx
    ON migration_status.migration_file_status (run_id, source_table, chunk_id) WHERE status <> 'completed';
