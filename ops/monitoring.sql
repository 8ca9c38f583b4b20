-- thaw monitoring queries for the migration_status schema (schema/V1__migration_status.sql).
-- Run all: psql "$DATABASE_URL" -v stale_minutes=15 -f ops/monitoring.sql
-- Read-only; safe against the reader endpoint (mind aurora-replica-lag).
\if :{?stale_minutes} \else \set stale_minutes 15 \endif

-- §1 Recent runs: status, duration, tables, rows.
SELECT run_id, status, mode, started_at, completed_at,
       coalesce(completed_at, now()) - started_at AS duration,
       completed_tables || '/' || total_tables AS tables_done, failed_tables,
       total_rows_copied, left(error_message, 160) AS error
FROM migration_status.migration_runs
ORDER BY started_at DESC
LIMIT 10;

-- §2 Progress of running runs, per table (chunks done / total, rows so far).
SELECT p.run_id, p.source_name, p.source_table, p.target_schema || '.' || p.target_table AS target, p.status,
       p.chunks_completed || '/' || p.chunks AS chunks_done, p.chunks_failed, p.rows_copied,
       round(100.0 * p.chunks_completed / nullif(p.chunks, 0), 1) AS pct
FROM migration_status.v_table_progress p
JOIN migration_status.migration_runs r USING (run_id)
WHERE r.status IN ('planning', 'running')
ORDER BY pct NULLS FIRST, p.source_table;

-- §2b Stuck runs: planning/running but no heartbeat for :stale_minutes minutes (crashed or killed orchestration;
-- the next run of the same selection takes them over after 30 minutes, or at once when their lock session is gone).
SELECT run_id, status, started_at, heartbeat_at, now() - heartbeat_at AS since_heartbeat, host, pid
FROM migration_status.migration_runs
WHERE status IN ('planning', 'running') AND heartbeat_at < now() - make_interval(mins => :stale_minutes)
ORDER BY heartbeat_at;

-- §2c Stuck chunks: in_progress longer than the copy-chunk timeout (15 min) plus margin.
SELECT run_id, source_schema || '.' || source_table AS source, chunk_id, started_at, now() - started_at AS running, retry_count
FROM migration_status.migration_chunk_status
WHERE status = 'in_progress' AND started_at < now() - interval '20 minutes'
ORDER BY started_at;

-- §3 Failed chunks of the last 7 days, with their range and error (what to fix before resuming).
SELECT c.run_id, c.source_database || '.' || c.source_schema || '.' || c.source_table AS source, c.chunk_id,
       c.chunk_range, c.retry_count, c.completed_at, left(c.error_message, 200) AS error
FROM migration_status.migration_chunk_status c
JOIN migration_status.migration_runs r USING (run_id)
WHERE c.status = 'failed' AND r.started_at > now() - interval '7 days'
ORDER BY c.completed_at DESC NULLS LAST
LIMIT 100;

-- §4 Throughput per table of the latest run: rows per second over the chunks' wall time.
WITH latest AS (SELECT run_id FROM migration_status.migration_runs ORDER BY started_at DESC LIMIT 1)
SELECT c.source_schema || '.' || c.source_table AS source,
       count(*) FILTER (WHERE c.status = 'completed') AS chunks_completed,
       sum(c.rows_copied) AS rows_copied,
       max(c.completed_at) - min(c.started_at) AS wall_time,
       round(sum(c.rows_copied) / nullif(extract(epoch FROM max(c.completed_at) - min(c.started_at)), 0)) AS rows_per_second,
       round(avg(extract(epoch FROM c.completed_at - c.started_at))::numeric, 1) AS avg_chunk_seconds
FROM migration_status.migration_chunk_status c
JOIN latest USING (run_id)
GROUP BY 1
ORDER BY rows_per_second NULLS FIRST;

-- §5 Indexes dropped by disable_index and not restored yet (docs/sync.md §7): resume the run to
-- restore them; `definition` is the exact CREATE INDEX statement if one must be recreated by hand.
SELECT run_id, source_schema || '.' || source_table AS source, index_schema || '.' || index_name AS index,
       status, restore_attempts, dropped_at, left(error_message, 200) AS error, definition
FROM migration_status.migration_index_status
WHERE status <> 'restored'
ORDER BY dropped_at;
