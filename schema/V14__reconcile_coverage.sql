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
