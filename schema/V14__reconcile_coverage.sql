-- Reconcile coverage per target table (docs/reconcile.md §5): which parts of
-- the key-hash space were last verified clean and when, the rolling slice's
-- position, and the last whole-table verification. A nightly reconcile
-- verifies the rows its run touched plus the next rolling slice; every row is
-- verified at least once per period (default 7 days).
-- Privileges: the default privileges of V4 cover this table (thaw_loader
-- writes it from the reconcile step).

CREATE TABLE IF NOT EXISTS migration_status.reconcile_coverage (
    target                 text PRIMARY KEY,                      -- schema.table in PostgreSQL
    rolling_position       bigint NOT NULL DEFAULT 0              -- first key-hash value of the next slice, [0, 2^28)
                           CHECK (rolling_position >= 0 AND rolling_position < 268435456),
    last_full_verified_at  timestamptz,                           -- last whole-table verification (--full, first reconcile, table copied whole)
    verified_since         timestamptz,                           -- every row verified clean since (oldest standing slice); NULL: never whole
    verified_ranges        jsonb NOT NULL DEFAULT '[]'::jsonb,    -- [{"range": {"lo", "hi"}, "at"}], disjoint, sorted
    updated_at             timestamptz NOT NULL DEFAULT now()
);

-- Dual-read validation results (docs/reconcile.md §10): one row per
-- comparison of Snowflake's legacy conflict tables with the conflict schema
-- (`thaw dual-read`), read by the cutover gate's dual-read check.
CREATE TABLE IF NOT EXISTS migration_status.dual_read_results (
    checked_at        timestamptz NOT NULL DEFAULT now(),
    status            text NOT NULL CHECK (status IN ('ok', 'mismatch', 'error')),
    source_conflicts  bigint NOT NULL DEFAULT 0,
    target_conflicts  bigint NOT NULL DEFAULT 0,
    source_pairs      bigint NOT NULL DEFAULT 0,
    target_pairs      bigint NOT NULL DEFAULT 0,
    missing_pairs     bigint NOT NULL DEFAULT 0,              -- pairs only in Snowflake
    extra_pairs       bigint NOT NULL DEFAULT 0,              -- pairs only in PostgreSQL
    changed_pairs     bigint NOT NULL DEFAULT 0,
    error_message     text,
    report            jsonb NOT NULL DEFAULT '{}'::jsonb      -- the full report (compared columns, differing pairs)
);

CREATE INDEX IF NOT EXISTS dual_read_results_checked_idx ON migration_status.dual_read_results (checked_at DESC);
