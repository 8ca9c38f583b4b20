-- Row hashes kept at load time (docs/reconcile.md §4.2). For every target
-- table with `row_hashes` on, thaw keeps a side table
-- thaw_row_hashes."h_<16 hex digits of MD5(target)>" (created on demand by
-- the copy path, reconcile/side_table.rs) holding per row of the target:
--   key_place int4   -- the key-hash place, first 28 bits of MD5(key text), [0, 2^28)
--   key_md5   bytea  -- MD5(key text), 16 bytes: the row's identity
--   row_hash  int8   -- first 48 bits of MD5(row text)
-- with PRIMARY KEY (key_place, key_md5) INCLUDE (row_hash): the one index
-- serves the upserts (key_md5 decides key_place, so the pair is unique
-- exactly when key_md5 is) and reconcile's index-only scans ordered by the
-- key-hash place. The side table is written in the same transaction as the
-- chunk's rows, so it holds one row per target row for every row thaw wrote.
--
-- This registry records, per target table, its side table and whether that
-- side table is complete (filled for every row by a load into an empty table
-- or a full reconcile, and kept since); reconcile reads the side table only
-- when it is.
CREATE SCHEMA IF NOT EXISTS thaw_row_hashes;

CREATE TABLE IF NOT EXISTS migration_status.row_hash_tables (
    target          text PRIMARY KEY,                  -- "schema"."table" in PostgreSQL, quoted
    side_table      text NOT NULL,                     -- "thaw_row_hashes"."h_…", quoted
    complete        boolean NOT NULL DEFAULT false,    -- one side row per target row, as thaw wrote it
    complete_since  timestamptz,                       -- when it last became complete
    reason          text,                              -- why it is incomplete (or how it became complete)
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- The loader creates, fills and drops side tables (like its staging tables).
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'thaw_loader') THEN
        GRANT USAGE, CREATE ON SCHEMA thaw_row_hashes TO thaw_loader;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'thaw_migrator') THEN
        GRANT USAGE, CREATE ON SCHEMA thaw_row_hashes TO thaw_migrator;
    END IF;
END
$$;
