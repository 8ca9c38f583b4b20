-- The closed conflict pairs as the last conflict night left them (docs/conflicts.md §D1, §D26).
--
-- An incremental night recomputes only the (SSN, VisitDate) keys whose source rows changed, but
-- [SF]'s nightly refresh reopens every closed pair it detects again and resolves every open pair
-- it no longer detects, whoever changed the status. So a night must also recompute the keys of
-- the pairs whose status someone else (the application, a user) changed since the last night:
-- the closed pairs (R/D) missing from this list and the listed pairs that are no longer closed.
-- Each night rewrites the list at its end, in the night's own transaction; the pairs the night's cascade
-- closed while they are still detected stay off it, so the next night recomputes their keys as a
-- full night would reopen them. Seeded with the closed pairs of the day the migration runs.
CREATE TABLE IF NOT EXISTS conflict.conflict_closed_pairs (
    "ID" int8 NOT NULL,
    PRIMARY KEY ("ID")
);

-- The closed pairs by ID, read in ID order against the list above (index-only).
CREATE INDEX IF NOT EXISTS idx_cvm_closed_ids
    ON conflict.conflictvisitmaps ("ID") WHERE "StatusFlag" IN ('R', 'D');

INSERT INTO conflict.conflict_closed_pairs ("ID")
    SELECT "ID" FROM conflict.conflictvisitmaps WHERE "StatusFlag" IN ('R', 'D')
    ON CONFLICT DO NOTHING;
