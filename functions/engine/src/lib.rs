//! # thaw-engine
//!
//! Everything thaw does, as a library. The Lambda binaries and the `thaw` CLI
//! are thin doors into this crate, so the cloud and a laptop run the same code.
//!
//! ## Concepts
//! * **source** ([`source`]): Snowflake, reached over its HTTP API; results
//!   arrive as Arrow IPC streams in Snowflake's own conventions.
//! * **sink** ([`sink`]): PostgreSQL; rows go in with binary COPY, mapped to
//!   each target column's actual type.
//! * **plan** ([`plan`]): one aggregate query per table splits it into
//!   **chunks**, each a half-open range or equality predicate; the chunks of a
//!   table partition its rows exactly. Incremental tables plan only rows past
//!   the **watermark** read from the target.
//! * **copy** ([`copy`]): one chunk = one Snowflake query → binary COPY into
//!   the target (empty target) or into a **staging** table followed by an
//!   **upsert**; the rows and the chunk's `completed` status commit in one
//!   transaction (exactly once).
//! * **merge** ([`merge`]): per-table finalisation once all chunks are done.
//! * **reconcile** ([`reconcile`]): row counts and a checksum over a canonical
//!   text form of every column, computed inside each database.
//! * **conflicts** ([`conflicts`]): the nightly detection of **caregivers**
//!   whose **visits** collide across **providers**, maintaining the `conflict`
//!   schema the web application reads and writes.
//! * **status** ([`status`]): the `migration_status` schema (legacy-compatible)
//!   in PostgreSQL is the single state store: runs, tables, chunks.
//! * **handlers** ([`handlers`]): the typed request/response of every step,
//!   shared by the Lambdas, the local runner ([`run`]) and the state machine.
//!
//! ## Errors
//! One [`error::Error`] with an [`error::ErrorKind`]: the kind drives retries
//! (transient vs deterministic) and is the name Step Functions matches on.

pub mod config;
pub mod conflicts;
pub mod copy;
pub mod dev;
pub mod error;
pub mod failpoints;
pub mod handlers;
pub mod harness;
pub mod manifest;
pub mod merge;
pub mod plan;
pub mod reconcile;
pub mod run;
pub mod schema;
pub mod sink;
pub mod source;
pub mod status;

pub use error::{Error, ErrorKind, Result};
