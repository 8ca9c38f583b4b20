-- Partial indexes over the conflictvisitmaps rows the nightly lifecycle
-- statements can change (docs/conflicts.md §8.2, §14). Those statements
-- follow the application's answers and the stored missed flags on every
-- stored pair of the window (and outside it, §D17), so they cannot be
-- scoped to the night's touched keys; each index holds exactly the rows a
-- statement looks for, which are few on a normal night, so an incremental
-- night no longer scans the whole table once per statement.
--
-- Missed pairs (steps 2 and 3, both passes): their conflicts are resolved.
CREATE INDEX IF NOT EXISTS idx_cvm_missed
    ON conflict.conflictvisitmaps ("CONFLICTID") WHERE "IsMissed" OR "ConIsMissed";
-- Closed pairs (step 7, cascade up): only a conflict with a closed pair can
-- be closed by its pairs.
CREATE INDEX IF NOT EXISTS idx_cvm_closed
    ON conflict.conflictvisitmaps ("CONFLICTID") WHERE "StatusFlag" IN ('R', 'D');
-- Open pairs answered "no response" (step 8): set to N.
CREATE INDEX IF NOT EXISTS idx_cvm_no_response_open
    ON conflict.conflictvisitmaps ("VisitDate") WHERE "ConNoResponseFlag" = 'Yes' AND "StatusFlag" IN ('U', 'W', 'I');
-- Open pairs still carrying a resolution (step 9): cleared.
CREATE INDEX IF NOT EXISTS idx_cvm_open_resolved
    ON conflict.conflictvisitmaps ("VisitDate")
    WHERE "StatusFlag" IN ('U', 'N', 'W', 'I') AND ("ResolveDate" IS NOT NULL OR "ResolvedBy" IS NOT NULL);
