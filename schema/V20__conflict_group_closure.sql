-- GroupID for the components a night touched (docs/conflicts.md §7.6, §14):
-- the night finds the rows still waiting for a group id through a partial
-- index (empty after a run), then walks their connected components through
-- "VisitID" (idx_conflictvisitmaps_visitid, V3) and "ConVisitID" (below),
-- so untouched groups are neither read nor rewritten.
CREATE INDEX IF NOT EXISTS idx_cvm_convisitid
    ON conflict.conflictvisitmaps ("ConVisitID");
CREATE INDEX IF NOT EXISTS idx_cvm_groupid_pending
    ON conflict.conflictvisitmaps ("ID") WHERE "GroupID" IS NULL OR "G_CRDATEUNIQUE" IS NULL;
