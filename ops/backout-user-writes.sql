-- Backout (ops/backout.md step 5): what users wrote in PostgreSQL since
-- cutover, to carry over to Snowflake's CONFLICTREPORT.
--
--   psql "$DATABASE_URL" -q -v ON_ERROR_STOP=1 -v cutover='2027-01-18 09:00:00' -f ops/backout-user-writes.sql
--
-- `cutover` is the time the application switched to PostgreSQL, in the
-- database's timestamp columns' clock (the wall clock the application
-- writes; `timestamp without time zone`). Writes two CSV files into the
-- current directory:
--
-- * backout-conflictvisitmaps.csv: one line per pair written since
--   cutover (by a user or the nightly job), keyed by the visit pair
--   (VisitID, ConVisitID): the pair's status and resolution and its
--   application-owned columns (docs/conflicts.md §3.4);
-- * backout-conflicts.csv: one line per conflict written since cutover,
--   keyed by its primary visit (PrimaryVisitID: the VisitID of its pairs),
--   with its status, resolution and application-owned columns.
--
-- Rows are keyed by visits, never by CONFLICTID or ID: PostgreSQL and
-- Snowflake generate those independently (docs/reconcile.md §10), so the
-- same number names different conflicts in the two systems. Match the
-- lines to CONFLICTREPORT's rows by these keys in the application's bulk
-- update. conflicts has no UpdatedDate: a conflict counts as written when
-- one of its own dates is after cutover or one of its pairs was written.

\pset format csv
\o backout-conflictvisitmaps.csv
SELECT "VisitID", "ConVisitID", "StatusFlag", "ResolveDate", "ResolvedBy", "UpdatedDate",
       "ConNoResponseFlag", "ConNoResponseReasonID", "ConNoResponseTitle", "ConNoResponseNotes", "ConNoResponseDate",
       "FlagForReview", "FlagForReviewDate", "AggFlagForReview", "AggFlagForReviewDate"
FROM conflict.conflictvisitmaps
WHERE "UpdatedDate" >= :'cutover' OR "ResolveDate" >= :'cutover' OR "ConNoResponseDate" >= :'cutover'
   OR "FlagForReviewDate" >= :'cutover' OR "AggFlagForReviewDate" >= :'cutover'
ORDER BY "VisitID", "ConVisitID";
\o backout-conflicts.csv
SELECT p."PrimaryVisitID", c."StatusFlag", c."ResolveDate", c."ResolvedBy",
       c."NoResponseFlag", c."NoResponseReasonID", c."NoResponseTitle", c."NoResponseNotes", c."NoResponseDate",
       c."FlagForReview", c."FlagForReviewDate"
FROM conflict.conflicts AS c
JOIN LATERAL (SELECT min(m."VisitID"::text) AS "PrimaryVisitID",
                     bool_or(m."UpdatedDate" >= :'cutover' OR m."ResolveDate" >= :'cutover') AS pair_written
              FROM conflict.conflictvisitmaps AS m WHERE m."CONFLICTID" = c."CONFLICTID") AS p ON p."PrimaryVisitID" IS NOT NULL
WHERE c."ResolveDate" >= :'cutover' OR c."NoResponseDate" >= :'cutover' OR c."FlagForReviewDate" >= :'cutover' OR p.pair_written
ORDER BY p."PrimaryVisitID";
\o
