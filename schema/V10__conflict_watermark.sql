-- The watermark of the last successful conflict run (docs/conflicts.md §D1).
--
-- One row (ID = 1), written by the nightly job in the run's transaction, so
-- only on success:
--   "SourceChangedUpTo"   the largest source change timestamp seen by that run
--                         ("Visit Updated Timestamp" of visits and deleted
--                         visits, "Updated Datatimestamp" of in-service and
--                         absence facts); the next incremental run revisits the
--                         (SSN, VisitDate) keys of every row changed after it;
--   "SettingsFingerprint" md5 of everything besides the visits that changes
--                         results (SETTINGS row, MPH bands, EXCLUDED_SSN,
--                         EXCLUDED_AGENCY, provider activity/demo/state, time
--                         zone, GPS priority); a different value forces a full run;
--   "WindowStart"/"WindowEnd" the candidate window of that run (keys whose date
--                         enters the window are revisited; a window moving
--                         backwards forces a full run);
--   "Mode"                'full' or 'incremental', "CompletedAt" wall time (UTC).
-- A separate table rather than SETTINGS."LastLoadDate": SETTINGS is a sync
-- target (thaw_loader rewrites it) and LastLoadDate is the run's wall clock,
-- not a source change timestamp.
CREATE TABLE IF NOT EXISTS conflict.conflict_watermark (
    "ID" int2 NOT NULL DEFAULT 1 CHECK ("ID" = 1),
    "SourceChangedUpTo" timestamptz,
    "SettingsFingerprint" text NOT NULL,
    "WindowStart" date NOT NULL,
    "WindowEnd" date NOT NULL,
    "Mode" text NOT NULL,
    "CompletedAt" timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY ("ID")
);

-- Incremental runs read the candidates of the touched keys through the
-- trimmed SSN (keys table → caregivers → visits by ("Caregiver Id",
-- "Visit Date")); this makes the first hop an index scan.
CREATE INDEX IF NOT EXISTS idx_dimcaregiver_ssn_trimmed
    ON analytics.dimcaregiver (btrim("SSN", ' '));

-- A changed patient or patient address touches the keys of that patient's
-- visits (rule 7 and the cross-state rule read the address).
CREATE INDEX IF NOT EXISTS factvisitcallperformance_cr_provider_patient
    ON analytics.factvisitcallperformance_cr ("Provider Patient Id");
CREATE INDEX IF NOT EXISTS factvisitcallperformance_cr_payer_patient
    ON analytics.factvisitcallperformance_cr ("Payer Patient Id");

-- The change lookups of an incremental run: rows changed after the watermark.
CREATE INDEX IF NOT EXISTS dimcaregiver_updated
    ON analytics.dimcaregiver ("Updated Datatimestamp");
CREATE INDEX IF NOT EXISTS dimpatient_updated
    ON analytics.dimpatient ("Updated Datatimestamp");
CREATE INDEX IF NOT EXISTS dimpatientaddress_updated
    ON analytics.dimpatientaddress ("Updated Datatimestamp");
