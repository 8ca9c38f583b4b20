-- In-service and PTO conflicts (docs/conflicts.md §5).
--
-- A visit that overlaps an event of its own caregiver id at its own agency
-- is excluded from that kind of conflict: the lookup goes by caregiver and
-- agency. Incremental runs find the events changed after the watermark by
-- their change timestamp (docs/conflicts.md §D1).
CREATE INDEX IF NOT EXISTS factcaregiverinservice_caregiver
    ON analytics.factcaregiverinservice ("Caregiver Id", "Provider Id");
CREATE INDEX IF NOT EXISTS factcaregiverabsence_caregiver
    ON analytics.factcaregiverabsence ("Global Caregiver Id", "Provider Id");
CREATE INDEX IF NOT EXISTS factcaregiverinservice_updated
    ON analytics.factcaregiverinservice ("Updated Datatimestamp");
CREATE INDEX IF NOT EXISTS factcaregiverabsence_updated
    ON analytics.factcaregiverabsence ("Updated Datatimestamp");
