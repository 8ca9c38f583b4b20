//! Development dataset generator behind `thaw dev seed` and `thaw dev mutate`.
//!
//! Builds a realistic Conflict Management source in Snowflake (or the
//! emulator): the 13 `ANALYTICS.BI` tables conflict detection reads and the 4
//! `CONFLICTREPORT.PUBLIC` settings tables, with
//! * caregivers working for 1–3 agencies (same SSN, one `Caregiver Id` per
//!   agency; SSNs sometimes padded with spaces, a few blank or NULL),
//! * agencies in Eastern, Central, Mountain (incl. Arizona) and Pacific time,
//!   every TIMESTAMP_TZ written with the agency's DST-correct offset,
//! * scheduled-only, completed, partial and missed visits over
//!   `[today − 2 years − 10 days, today + 50 days]`, GPS strings in every
//!   legacy spelling, patients with GPS addresses and ZIPs, inactive and demo
//!   agencies, exclusions, deleted visits, in-service and absence events;
//! * a **planted** set of conflicts covering all seven rules, and near-misses
//!   ([`planted`]); the background is conflict-free by construction
//!   ([`visits`]), so the expected detection output is exactly
//!   [`planted::planted_conflicts`].
//!
//! Everything is a pure function of the seed, the visit count and "today"
//! (ChaCha8 streams per entity, [`world`]); generation streams in blocks into
//! CSV parts that are bulk-loaded one by one ([`seed()`], [`load`]), so memory
//! and disk do not grow with the number of visits.
//!
//! * [`tables`]: column definitions and Snowflake DDL (and the check against
//!   `schema/V2__analytics.sql`).
//! * [`mutate()`]: deterministic updates, inserts and deletes of background visits.

pub mod csv;
pub mod load;
pub mod mutate;
pub mod planted;
pub mod seed;
pub mod tables;
pub mod visits;
pub mod world;

pub use mutate::{default_counts, mutate, MutateOptions, MutateReport};
pub use planted::{planted_conflicts, planted_near_misses, ExpectedPair, ExtraDistance, NearMiss, Rule, RuleFlags};
pub use seed::{seed, SeedOptions, SeedReport};
