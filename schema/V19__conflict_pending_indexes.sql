-- Partial indexes over the conflictvisitmaps rows still waiting for a value
-- the night derives after inserting them (docs/conflicts.md §14): CONFLICTID,
-- ReverseUUID and CRDATEUNIQUE. They hold only the night's new rows (plus the
-- few rows whose value stays NULL for lack of an id), so the statements that
-- fill those values find their rows without scanning the whole table and an
-- incremental night costs what its new rows cost.
CREATE INDEX IF NOT EXISTS idx_cvm_conflictid_pending
    ON conflict.conflictvisitmaps ("VisitID") WHERE "CONFLICTID" IS NULL;
CREATE INDEX IF NOT EXISTS idx_cvm_reverseuuid_pending
    ON conflict.conflictvisitmaps ("ID") WHERE "ReverseUUID" IS NULL;
CREATE INDEX IF NOT EXISTS idx_cvm_crdateunique_pending
    ON conflict.conflictvisitmaps ("CONFLICTID") WHERE "CRDATEUNIQUE" IS NULL;
