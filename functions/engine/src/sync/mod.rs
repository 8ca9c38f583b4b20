//! A sync run, in the order it happens (docs/sync.md):
//!
//! * [`plan`]: one aggregate query per table picks chunks whose predicates
//!   partition the rows exactly; status rows and the manifest are written.
//! * [`chunk`]: typed chunks ([`chunk::ChunkSpec`]) and the pure packers.
//! * [`manifest`]: the chunk list the Distributed Map (or the local runner)
//!   iterates, in S3 or a local file.
//! * [`copy`]: one chunk from the source into PostgreSQL, exactly once.
//! * [`staged`]: a staged table's chunk: unload to S3, then one file at a time.
//! * [`merge`]: per-table finalisation once all chunks are done.
//! * [`keys`]: duplicate/NULL key check before a first load.
//! * [`replace`]: `truncate_onstart` through a shadow table swapped in at merge.
//! * [`indexes`]: `disable_index`: secondary indexes dropped, recorded, restored.
//! * [`retry`]: the per-chunk retry budget (backoff with full jitter).
//! * [`status`]: the `migration_status` records (runs, tables, chunks, indexes, files) and their statuses.
//! * [`status_store`]: the [`status_store::StatusStore`] seam over them, and its in-memory store for unit tests.
//! * [`status_postgres`]: its PostgreSQL implementation, every read and write of the `migration_status` schema.
//! * [`lock`]: the run lock (one run per target table) and the planning lock.

pub mod chunk;
pub mod copy;
pub mod indexes;
pub mod keys;
pub mod lock;
pub mod manifest;
pub mod merge;
pub mod plan;
pub mod replace;
pub mod retry;
pub mod staged;
pub mod status;
pub mod status_postgres;
pub mod status_store;
pub mod table_plan;
