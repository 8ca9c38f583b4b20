-- Reconcile results per run and table (docs/reconcile.md §6.2): the latest
-- outcome of each table of each run, with the row-level report. A rerun of
-- `thaw reconcile` for the same run replaces the row and counts the attempt.
-- Privileges: the default privileges of V4 cover this table (thaw_loader
-- writes it from the reconcile step).

CREATE TABLE IF NOT EXISTS migration_status.reconcile_results (
    run_id            uuid NOT NULL REFERENCES migration_status.migration_runs (run_id) ON DELETE CASCADE,
    target            text NOT NULL,                       -- schema.table in PostgreSQL
    status            text NOT NULL CHECK (status IN ('ok', 'mismatch', 'error')),
    source_rows       bigint NOT NULL DEFAULT 0,
    target_rows       bigint NOT NULL DEFAULT 0,
    source_checksum   text NOT NULL DEFAULT '',
    target_checksum   text NOT NULL DEFAULT '',
    missing_keys      bigint NOT NULL DEFAULT 0,
    extra_keys        bigint NOT NULL DEFAULT 0,
    changed_keys      bigint NOT NULL DEFAULT 0,
    duplicate_keys    bigint NOT NULL DEFAULT 0,              -- on either side
    deleted_rows      bigint NOT NULL DEFAULT 0,              -- propagate_deletes
    error_message     text,
    report            jsonb NOT NULL DEFAULT '{}'::jsonb,     -- the table's full report (summary and row diff)
    attempts          integer NOT NULL DEFAULT 1,
    reconciled_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, target)
);

CREATE INDEX IF NOT EXISTS reconcile_results_target_idx
    ON migration_status.reconcile_results (target, reconciled_at DESC);
