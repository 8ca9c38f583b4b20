-- Indexes behind the web application's main reads of the conflict schema
-- (docs/conflicts.md §15; the reads are listed in
-- functions/engine/src/conflicts/app_queries.rs, and
-- functions/engine/tests/conflicts_app_queries.rs fails when one of them stops
-- using its index).
--
-- Existing indexes already serve the detail pages: CONFLICTID
-- (idx_conflictvisitmaps_conflictid) and VisitID (idx_cvm_visitids_unique).
-- Migrations run in a transaction, so these are plain CREATE INDEX (a short
-- write lock on first deploy while the table is still small; on a large
-- existing table create them CONCURRENTLY by hand first, the IF NOT EXISTS
-- then makes this migration a no-op).

-- Provider and payer list pages: one provider (payer), a set of statuses, a
-- date range, newest first. Both orientations of a pair are stored, so the
-- primary side's columns cover "either side".
CREATE INDEX IF NOT EXISTS idx_cvm_provider_status_date
    ON conflict.conflictvisitmaps ("ProviderID", "StatusFlag", "VisitDate");
CREATE INDEX IF NOT EXISTS idx_cvm_payer_status_date
    ON conflict.conflictvisitmaps ("PayerID", "StatusFlag", "VisitDate");

-- Group view: every pair of a connected group.
CREATE INDEX IF NOT EXISTS idx_cvm_groupid
    ON conflict.conflictvisitmaps ("GroupID") WHERE "GroupID" IS NOT NULL;

-- Caregiver view (one SSN over a date range); also the (SSN, VisitDate) key
-- the nightly job recomputes.
CREATE INDEX IF NOT EXISTS idx_cvm_ssn_visitdate
    ON conflict.conflictvisitmaps ("SSN", "VisitDate");
