-- Index management for `disable_index` (docs/sync.md §7).
--
-- Every secondary index thaw drops before a load is recorded here, with its
-- pg_get_indexdef() definition, in the same transaction as the DROP INDEX, so
-- a crash can never lose a definition. Merge recreates each one in its own
-- transaction (status 'restored' commits with the CREATE INDEX); a failed
-- restore is recorded ('failed', with the error) and retried by the next merge
-- of the run (resume). No foreign key to the run: deleting old runs must never
-- take the definition of an index that is still dropped with it.
CREATE TABLE IF NOT EXISTS migration_status.migration_index_status (
    run_id           uuid NOT NULL,
    source_database  text NOT NULL,
    source_schema    text NOT NULL,
    source_table     text NOT NULL,
    index_schema     text NOT NULL,
    index_name       text NOT NULL,
    definition       text NOT NULL,
    status           text NOT NULL DEFAULT 'dropped' CHECK (status IN ('dropped', 'restored', 'failed')),
    restore_attempts integer NOT NULL DEFAULT 0,
    error_message    text,
    dropped_at       timestamptz NOT NULL DEFAULT now(),
    restored_at      timestamptz,
    PRIMARY KEY (run_id, source_database, source_schema, source_table, index_schema, index_name)
);

CREATE INDEX IF NOT EXISTS migration_index_status_pending_idx
    ON migration_status.migration_index_status (run_id) WHERE status <> 'restored';

GRANT SELECT, INSERT, UPDATE, DELETE ON migration_status.migration_index_status TO thaw_loader;
