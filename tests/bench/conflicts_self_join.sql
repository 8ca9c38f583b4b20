-- Conflict detection as one SQL self-join: the BASELINE of the conflict
-- benchmark (tests/bench/README.md). Not product logic; thaw detects with a
-- per-key sweep in Rust (docs/conflicts.md §14).
--
-- Same inputs and rules as `thaw conflicts --full` (docs/conflicts.md §4 with
-- the docs/conflicts.md §11 decisions): candidates in [today − 2 years, today + 45 days]
-- with a non-blank trimmed SSN, an active non-demo provider, NULL-safe SSN and
-- agency exclusions (SSNs trimmed of spaces only on both sides, as [SF]'s TRIM,
-- docs/conflicts.md §10.2); pairs of the same trimmed
-- SSN and VisitDate at different providers, both orientations; rules 1–6 on
-- wall-clock times in the configured zone (half-open overlap, equal intervals
-- are "same time"); rule 7 with GPS call-out → call-in → patient address,
-- great-circle metres / 1609 × ExtraDistancePer rounded to 2 decimals, the
-- half-open MPH band, ETA rounded to 2 decimals, minute-boundary gaps and the
-- ZIP guard; cross-state pairs (any-to-any, provider-state fallback) dropped.
--
-- Inputs (session settings, set by the runner or in psql with SET):
--   thaw_bench.today      'YYYY-MM-DD', the run's "today"
--   thaw_bench.time_zone  IANA zone of the wall clock, e.g. 'America/New_York'
-- Output: table public.bench_self_join_pairs, one row per flagged ordered pair
-- (visit_id, con_visit_id, ssn, visit_date, the seven flags, new_conflict_allowed).
-- Its row count is comparable with thaw's `pairs_detected`; the rows with
-- new_conflict_allowed with the rows thaw stores in conflict.conflictvisitmaps.

DROP TABLE IF EXISTS public.bench_self_join_pairs;

CREATE UNLOGGED TABLE public.bench_self_join_pairs AS
WITH params AS (
    SELECT current_setting('thaw_bench.today')::date AS today,
           current_setting('thaw_bench.time_zone') AS zone
),
extra AS (
    SELECT "ExtraDistancePer"::numeric::float8 AS per FROM conflict.settings LIMIT 1
),
address AS (
    SELECT DISTINCT ON (a."Patient Id") a."Patient Id", a."Latitude"::float8 AS latitude,
           a."Longitude"::float8 AS longitude, a."Zip Code"::text AS zip, a."Address State"::text AS state
    FROM analytics.dimpatientaddress a
    WHERE a."Primary Address" AND a."Address Type" LIKE '%GPS%'
    ORDER BY a."Patient Id", a."Application Created UTC Timestamp" DESC NULLS LAST, a."Patient Address Id"
),
raw AS (
    SELECT f."Visit Id" AS visit_id,
           btrim(cg."SSN", ' ') AS ssn,
           f."Visit Date"::date AS visit_date,
           f."Provider Id" AS provider_id,
           coalesce(f."Is Missed", false) AS is_missed,
           CASE WHEN f."Visit Start Time" IS NULL AND f."Visit End Time" IS NULL THEN 'S'
                WHEN f."Visit Start Time" IS NOT NULL AND f."Visit End Time" IS NOT NULL THEN 'C' END AS state,
           f."Scheduled Start Time", f."Scheduled End Time", f."Visit Start Time", f."Visit End Time",
           -- "lat,lon" call coordinates, quotes stripped (docs/conflicts.md §D4)
           regexp_match(replace(f."Call Out GPS Coordinates"::text, '"', ''),
                        '^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*,\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$') AS call_out,
           regexp_match(replace(f."Call In GPS Coordinates"::text, '"', ''),
                        '^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*,\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$') AS call_in,
           CASE WHEN abs(ad.latitude) <= 90 AND abs(ad.longitude) <= 180 THEN ARRAY[ad.latitude, ad.longitude] END AS patient_point,
           nullif(btrim(ad.zip), '') AS zip,
           ad.state AS patient_state, payer_ad.state AS payer_state, pr."Address State"::text AS provider_state
    FROM analytics.factvisitcallperformance_cr f
    JOIN analytics.dimcaregiver cg ON cg."Caregiver Id" = f."Caregiver Id"
    JOIN analytics.dimprovider pr ON pr."Provider Id" = f."Provider Id"
    LEFT JOIN address ad ON ad."Patient Id" = f."Provider Patient Id"
    LEFT JOIN address payer_ad ON payer_ad."Patient Id" = f."Payer Patient Id"
    CROSS JOIN params p
    WHERE f."Visit Date" BETWEEN (p.today - interval '2 years')::date AND p.today + 45
      AND pr."Is Active" AND pr."Is Demo" = false
      AND btrim(cg."SSN", ' ') <> ''
      AND NOT EXISTS (SELECT 1 FROM conflict.excluded_ssn e
                      WHERE btrim(e."SSN", ' ') = btrim(cg."SSN", ' '))
      AND NOT EXISTS (SELECT 1 FROM conflict.excluded_agency e WHERE e."ProviderID" = f."Provider Id")
),
points AS (
    SELECT r.*,
           CASE WHEN abs(r.call_out[1]::float8) <= 90 AND abs(r.call_out[2]::float8) <= 180 THEN ARRAY[r.call_out[1]::float8, r.call_out[2]::float8] END AS out_point,
           CASE WHEN abs(r.call_in[1]::float8) <= 90 AND abs(r.call_in[2]::float8) <= 180 THEN ARRAY[r.call_in[1]::float8, r.call_in[2]::float8] END AS in_point
    FROM raw r
),
states AS (
    -- cross-state normalisation (docs/conflicts.md §D6): trim blanks, upper-case, four names to codes
    SELECT pt.*,
           (SELECT CASE n WHEN 'MISSISSIPPI' THEN 'MS' WHEN 'NEW YORK' THEN 'NY' WHEN 'PENNSYLVANIA' THEN 'PA'
                          WHEN 'LONG ISLAND' THEN 'LI' ELSE n END
            FROM (SELECT nullif(upper(btrim(pt.patient_state, ' ')), '') AS n) x) AS s_patient,
           (SELECT CASE n WHEN 'MISSISSIPPI' THEN 'MS' WHEN 'NEW YORK' THEN 'NY' WHEN 'PENNSYLVANIA' THEN 'PA'
                          WHEN 'LONG ISLAND' THEN 'LI' ELSE n END
            FROM (SELECT nullif(upper(btrim(pt.payer_state, ' ')), '') AS n) x) AS s_payer,
           (SELECT CASE n WHEN 'MISSISSIPPI' THEN 'MS' WHEN 'NEW YORK' THEN 'NY' WHEN 'PENNSYLVANIA' THEN 'PA'
                          WHEN 'LONG ISLAND' THEN 'LI' ELSE n END
            FROM (SELECT nullif(upper(btrim(pt.provider_state, ' ')), '') AS n) x) AS s_provider
    FROM points pt
),
candidate AS (
    SELECT s.visit_id, s.ssn, s.visit_date, s.provider_id, s.is_missed, s.state, s.zip,
           CASE s.state WHEN 'S' THEN s."Scheduled Start Time" ELSE s."Visit Start Time" END AT TIME ZONE p.zone AS t_start,
           CASE s.state WHEN 'S' THEN s."Scheduled End Time" ELSE s."Visit End Time" END AT TIME ZONE p.zone AS t_end,
           coalesce(s.out_point, s.in_point, s.patient_point) AS point,
           CASE WHEN s.s_patient IS NULL AND s.s_payer IS NULL THEN s.s_provider ELSE s.s_patient END AS st1,
           CASE WHEN s.s_patient IS NULL AND s.s_payer IS NULL THEN s.s_provider ELSE s.s_payer END AS st2
    FROM states s CROSS JOIN params p
    WHERE s.state IS NOT NULL
),
usable AS (
    SELECT * FROM candidate WHERE t_start IS NOT NULL AND t_end IS NOT NULL
),
pair AS (
    SELECT a.visit_id, b.visit_id AS con_visit_id, a.ssn, a.visit_date, a.state AS a_state, b.state AS b_state,
           a.t_start = b.t_start AND a.t_end = b.t_end AS same,
           a.t_start < b.t_end AND a.t_end > b.t_start AS overlap,
           a.t_start AS a_start, a.t_end AS a_end, b.t_start AS b_start, b.t_end AS b_end,
           a.point AS a_point, b.point AS b_point,
           a.zip IS NOT NULL AND a.zip = b.zip AS same_zip,
           a.is_missed OR b.is_missed AS any_missed
    FROM usable a
    JOIN usable b ON b.ssn = a.ssn AND b.visit_date = a.visit_date
                 AND b.provider_id <> a.provider_id AND b.visit_id <> a.visit_id
    WHERE (a.st1 IS NULL AND a.st2 IS NULL) OR (b.st1 IS NULL AND b.st2 IS NULL)
       OR a.st1 = b.st1 OR a.st1 = b.st2 OR a.st2 = b.st1 OR a.st2 = b.st2
),
travel AS (
    SELECT pr.*,
           CASE WHEN pr.a_state = 'C' AND pr.b_state = 'C' AND pr.a_point IS NOT NULL AND pr.b_point IS NOT NULL THEN
               round((2 * 6371008.8 * asin(least(1, sqrt(
                   sin(radians(pr.b_point[1] - pr.a_point[1]) / 2) ^ 2
                   + cos(radians(pr.a_point[1])) * cos(radians(pr.b_point[1])) * sin(radians(pr.b_point[2] - pr.a_point[2]) / 2) ^ 2)))
                   / 1609 * (SELECT per FROM extra))::numeric, 2)
           END AS miles,
           extract(epoch FROM date_trunc('minute', pr.b_start) - date_trunc('minute', pr.a_end)) / 60 AS gap1,
           extract(epoch FROM date_trunc('minute', pr.a_start) - date_trunc('minute', pr.b_end)) / 60 AS gap2
    FROM pair pr
),
flagged AS (
    SELECT t.*,
           (SELECT round((t.miles / m."AverageMilesPerHour"::numeric::float8 * 60)::numeric, 2)
            FROM conflict.mph m
            WHERE m."From" <= t.miles AND t.miles < m."To"
            ORDER BY m."From", m."To" LIMIT 1) AS eta
    FROM travel t
)
SELECT f.visit_id, f.con_visit_id, f.ssn, f.visit_date,
       f.a_state = 'S' AND f.b_state = 'S' AND f.same AS same_scheduled_time,
       f.a_state = 'C' AND f.b_state = 'C' AND f.same AS same_visit_time,
       f.a_state <> f.b_state AND f.same AS scheduled_and_visit_time_same,
       f.a_state = 'S' AND f.b_state = 'S' AND NOT f.same AND f.overlap AS scheduled_over_scheduled,
       f.a_state = 'C' AND f.b_state = 'C' AND NOT f.same AND f.overlap AS visit_over_visit,
       f.a_state <> f.b_state AND NOT f.same AND f.overlap AS scheduled_over_visit,
       coalesce(NOT f.same_zip AND ((f.gap1 > 0 AND f.eta > f.gap1) OR (f.gap2 > 0 AND f.eta > f.gap2)), false) AS distance,
       NOT (f.any_missed OR (f.a_state = 'S' AND f.b_state = 'S' AND f.visit_date < (SELECT today FROM params))) AS new_conflict_allowed
FROM flagged f
WHERE f.same OR f.overlap
   OR coalesce(NOT f.same_zip AND ((f.gap1 > 0 AND f.eta > f.gap1) OR (f.gap2 > 0 AND f.eta > f.gap2)), false);
