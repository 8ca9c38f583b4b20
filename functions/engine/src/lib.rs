//! # thaw-engine
//!
//! Everything thaw does, as a library. The Lambda binaries and the `thaw` CLI
//! are thin doors into this crate ([`steps`]), so the cloud and a laptop run
//! the same code. The layout follows the flow of a night
//! (docs/architecture.md §3):
//!
//! ```text
//! config ─► steps ─► sync::plan ─► sync::copy (source ─► sink) ─► sync::merge
//!                 ─► reconcile ─► conflicts          (state: sync::status)
//! ```
//!
//! ## Concepts
//! * **config** ([`config`]): the legacy tool's `config.json`, accepted as is;
//!   domain choices (chunk key type, chunking strategy, GPS priority) are
//!   enums validated once, when the file is deserialised.
//! * **source** ([`source`]): Snowflake, reached over its HTTP API; results
//!   arrive as Arrow IPC streams in Snowflake's own conventions.
//! * **sink** ([`sink`]): PostgreSQL; rows go in with binary COPY, mapped to
//!   each target column's actual type.
//! * **sync** ([`sync`]): a run's **plan** splits each table into **chunks**
//!   (half-open ranges or equalities that partition its rows exactly;
//!   incremental tables plan only rows past the **watermark**); **copy** moves
//!   one chunk into the target or into a **staging** table followed by an
//!   **upsert**, its rows and `completed` status committing together (exactly
//!   once); **merge** finalises each table; **status** is the
//!   `migration_status` store in PostgreSQL, the single state store.
//! * **reconcile** ([`reconcile`]): row counts and a checksum over a canonical
//!   text form of every column, computed inside each database, with row-level
//!   diffs of the segments that differ.
//! * **conflicts** ([`conflicts`]): the nightly detection of **caregivers**
//!   whose **visits** collide across **providers**, maintaining the `conflict`
//!   schema the web application reads and writes.
//! * **steps** ([`steps`]) and **contract** ([`contract`]): the entry point
//!   and the typed request/response of every step, shared by the Lambdas, the
//!   local runner ([`runner`]) and the state machine.
//! * **cutover** ([`cutover`]): the go/no-go gate for switching the
//!   application from Snowflake to PostgreSQL.
//! * **migrations** ([`migrations`]): the versioned SQL of `schema/`.
//!
//! ## Errors
//! One [`error::Error`] with an [`error::ErrorKind`]: the kind drives retries
//! (transient vs deterministic) and is the name Step Functions matches on.

#![deny(missing_docs)]

pub mod allocator;
pub mod cancel;
pub mod config;
pub mod conflicts;
pub mod contract;
pub mod cutover;
pub mod error;
pub mod failpoints;
pub mod migrations;
pub mod reconcile;
pub mod runner;
pub mod sink;
pub mod source;
pub mod steps;
pub mod sync;

pub use error::{Error, ErrorKind, Result};
