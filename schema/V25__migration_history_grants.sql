-- The least-privilege roles (V4) may read the migration history, so that a
-- local `thaw run` or `thaw conflicts` run as one of them — which may not
-- apply migrations — can tell a schema that is up to date from one that is
-- behind this thaw and say so (`migrations::migrate_if_permitted`), instead
-- of failing later on a missing column or table.
GRANT SELECT ON TABLE refinery_schema_history TO thaw_loader, thaw_conflict_writer, thaw_app;
