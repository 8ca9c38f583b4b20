-- Database roles and least-privilege grants (docs/operations.md §8).
--
--   thaw_migrator         schema changes: everything on thaw's four schemas
--   thaw_loader           plan, copy-chunk, merge, reconcile, fail-run: writes analytics,
--                         migration_status and thaw_staging (creates its staging tables)
--   thaw_conflict_writer  conflict-create: reads analytics, writes conflict
--   thaw_app              the Conflict Management web application: reads analytics and
--                         conflict, writes only the conflict schema
--
-- Who runs this: the cluster admin in the cloud (schema-migrate, a CloudFormation custom
-- resource, with the admin secret; RDS's admin has CREATEROLE), the harness user locally
-- (a superuser). Grants below are made by that user, and ALTER DEFAULT PRIVILEGES covers the
-- tables and sequences it creates in later migrations.
--
-- Roles are created NOLOGIN when missing. In the cloud schema-migrate has already created the
-- roles that have a secret (LOGIN, SCRAM password, functions/schema-migrate) before any
-- migration runs; nothing here changes an existing role.
--
-- Why an anonymous DO block (the one exception to "no database-side code"): roles belong to
-- the cluster, migrations to a database. refinery applies V4 once per *database*, so a second
-- database in the same cluster (every test database of the harness; sfn-local's reference and
-- state databases; an environment sharing a cluster) would fail on a plain CREATE ROLE with
-- "role already exists", and PostgreSQL has no CREATE ROLE IF NOT EXISTS. The block only runs
-- CREATE ROLE for names missing from pg_roles; it defines no function, trigger or procedure,
-- and leaves nothing behind in the database. (Creating the roles in Rust before migrating
-- covers the cloud, but `thaw run` and the tests migrate through thaw_engine::schema::migrate,
-- which has no such step; a migration, once applied, can no longer be edited.)
DO $roles$
DECLARE
    role_name text;
BEGIN
    FOREACH role_name IN ARRAY ARRAY['thaw_migrator', 'thaw_loader', 'thaw_conflict_writer', 'thaw_app'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = role_name) THEN
            -- Two databases of one cluster migrating at once can both see the role
            -- missing (advisory locks are per database): the loser finds it created.
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', role_name);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;
            END;
        END IF;
    END LOOP;
END
$roles$;

-- thaw_migrator: every privilege on thaw's schemas and what is in them.
GRANT USAGE, CREATE ON SCHEMA migration_status, analytics, conflict, thaw_staging TO thaw_migrator;
GRANT ALL ON ALL TABLES IN SCHEMA migration_status, analytics, conflict, thaw_staging TO thaw_migrator;
GRANT ALL ON ALL SEQUENCES IN SCHEMA migration_status, analytics, conflict, thaw_staging TO thaw_migrator;

-- thaw_loader: the sync. Reads and writes the analytics mirror (TRUNCATE for truncate_onstart and
-- full reloads) and the state store; creates and drops its own per-chunk tables in thaw_staging.
GRANT USAGE ON SCHEMA analytics, migration_status TO thaw_loader;
GRANT USAGE, CREATE ON SCHEMA thaw_staging TO thaw_loader;
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA analytics, migration_status TO thaw_loader;
GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA analytics, migration_status TO thaw_loader;
GRANT SELECT ON ALL TABLES IN SCHEMA conflict TO thaw_loader;  -- reconcile counts conflict.settings & co. (sync targets)
GRANT USAGE ON SCHEMA conflict TO thaw_loader;
GRANT INSERT, UPDATE, DELETE, TRUNCATE ON conflict.settings, conflict.mph, conflict.excluded_ssn, conflict.excluded_agency TO thaw_loader;

-- thaw_conflict_writer: conflict detection reads the mirror and maintains the conflict schema.
GRANT USAGE ON SCHEMA analytics, conflict TO thaw_conflict_writer;
GRANT SELECT ON ALL TABLES IN SCHEMA analytics TO thaw_conflict_writer;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA conflict TO thaw_conflict_writer;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA conflict TO thaw_conflict_writer;

-- thaw_app: reads analytics and conflict; writes only the conflict schema.
GRANT USAGE ON SCHEMA analytics, conflict TO thaw_app;
GRANT SELECT ON ALL TABLES IN SCHEMA analytics TO thaw_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA conflict TO thaw_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA conflict TO thaw_app;

-- The same grants on what later migrations create (as the user running them).
ALTER DEFAULT PRIVILEGES IN SCHEMA migration_status, analytics, conflict, thaw_staging GRANT ALL ON TABLES TO thaw_migrator;
ALTER DEFAULT PRIVILEGES IN SCHEMA migration_status, analytics, conflict, thaw_staging GRANT ALL ON SEQUENCES TO thaw_migrator;
ALTER DEFAULT PRIVILEGES IN SCHEMA analytics, migration_status GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON TABLES TO thaw_loader;
ALTER DEFAULT PRIVILEGES IN SCHEMA analytics, migration_status GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO thaw_loader;
ALTER DEFAULT PRIVILEGES IN SCHEMA conflict GRANT SELECT ON TABLES TO thaw_loader;
ALTER DEFAULT PRIVILEGES IN SCHEMA analytics GRANT SELECT ON TABLES TO thaw_conflict_writer, thaw_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA conflict GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO thaw_conflict_writer, thaw_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA conflict GRANT USAGE, SELECT ON SEQUENCES TO thaw_conflict_writer, thaw_app;
