-- Deleted (`D`) pairs by their conflicting visit (docs/conflicts.md §D1):
-- every incremental night looks for the `D` pairs whose conflicting visit is
-- back in the visit table and gone from the deleted table (a restored
-- visit), so that their keys are recomputed. Few rows; without this index
-- the lookup read every closed (`R` or `D`) pair each night.
CREATE INDEX IF NOT EXISTS idx_cvm_deleted
    ON conflict.conflictvisitmaps ("ConVisitID") WHERE "StatusFlag" = 'D';
