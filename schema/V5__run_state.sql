-- Run state (docs/sync.md §6): explicit planning state, truthful outcomes,
-- the holder of a run (for the run lock and dead-run detection).
--
-- Run statuses:
--   planning     tables are being planned (a table is planned when its row exists)
--   running      every selected table is planned; chunks are being copied
--   completed    every table copied and reconciliation matched
--   partial      some tables failed, others completed
--   failed       nothing usable, or a step (plan, reconcile, conflict-create) failed
--   mismatch     every table copied, reconciliation found differences
--   interrupted  stopped by SIGINT/SIGTERM at a chunk boundary; resumable
--   superseded   replaced by a newer run started with --no-resume; never resumed

ALTER TABLE migration_status.migration_runs DROP CONSTRAINT IF EXISTS migration_runs_status_check;
ALTER TABLE migration_status.migration_runs ADD CONSTRAINT migration_runs_status_check
    CHECK (status IN ('planning', 'running', 'completed', 'partial', 'failed', 'mismatch', 'interrupted', 'superseded'));

-- Who runs it: host name and process id of the thaw process (NULL for
-- Lambda-driven runs), and the PostgreSQL backend pid of the session holding
-- the run's advisory locks (a run whose lock session is gone is dead).
ALTER TABLE migration_status.migration_runs ADD COLUMN IF NOT EXISTS host text;
ALTER TABLE migration_status.migration_runs ADD COLUMN IF NOT EXISTS pid integer;
ALTER TABLE migration_status.migration_runs ADD COLUMN IF NOT EXISTS lock_backend_pid integer;

CREATE OR REPLACE VIEW migration_status.v_active_migrations AS
SELECT r.run_id, r.status, r.started_at, r.heartbeat_at,
       now() - r.heartbeat_at AS since_heartbeat,
       count(t.*) AS tables,
       count(t.*) FILTER (WHERE t.status = 'completed') AS tables_completed,
       count(t.*) FILTER (WHERE t.status = 'failed') AS tables_failed
FROM migration_status.migration_runs r
LEFT JOIN migration_status.migration_table_status t USING (run_id)
WHERE r.status IN ('planning', 'running')
GROUP BY r.run_id;
