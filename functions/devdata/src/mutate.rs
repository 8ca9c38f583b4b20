//! `thaw dev mutate`: change a seeded dataset the way a day of production
//! does — some visits updated, some inserted, some deleted — so incremental
//! sync and incremental conflict detection have something to catch up on.
//!
//! Only **background** visits are touched, in conflict-free ways (module docs
//! of [`crate::visits`]): updates shift a visit's times by 15 or 30
//! minutes and bump `Visit Updated Timestamp` to `now`; inserts are new
//! background visits (same construction); deletes move visits to
//! FACTVISITCALLPERFORMANCE_DELETED_CR (`Permanent Deleted` TRUE, timestamp
//! `now`) and remove them from FACT. The planted conflicts and their expected
//! pairs are therefore unchanged ([`MutateReport::planted_unchanged`]).
//!
//! Changed rows are bulk-loaded into staging tables in `ANALYTICS.THAW_DEV`
//! and applied with set-based DELETE / INSERT … SELECT statements (no
//! row-by-row statements); re-running the same mutation is idempotent.

use std::collections::BTreeSet;
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use rand::Rng;

use crate::csv::Cell;
use crate::seed::{planted_fact_visits, SeedOptions, SeedReport, TableSink};
use crate::tables::{self, TableDef, FACT_VISIT, FACT_VISIT_DELETED};
use crate::visits::{background_visit, VisitRecord};
use crate::world::{entity_rng, Kind, World};
use thaw_engine::error::{Error, Result};
use thaw_engine::source::sql::{ident, literal};
use thaw_engine::source::SnowflakeSource;

/// What to change.
#[derive(Debug, Clone)]
pub struct MutateOptions {
    /// The options the dataset was seeded with (seed, visits, today, ...).
    pub seeded: SeedOptions,
    /// Selects which visits change; same value → same changes.
    pub mutation_seed: u64,
    /// Visits to update.
    pub updates: u64,
    /// Visits to insert.
    pub inserts: u64,
    /// Visits to delete (moved to the DELETED table).
    pub deletes: u64,
    /// The change time written into `Visit Updated Timestamp`.
    pub now: DateTime<Utc>,
}

/// What changed.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct MutateReport {
    /// FACT rows updated.
    pub updated: u64,
    /// FACT rows inserted.
    pub inserted: u64,
    /// FACT rows moved to the DELETED table.
    pub deleted: u64,
    /// Always true: only background visits change, so
    /// [`crate::planted_conflicts`] still gives the expected pairs.
    pub planted_unchanged: bool,
    /// Wall time, seconds.
    pub seconds: f64,
}

const STAGE_SCHEMA: &str = "THAW_DEV";
const STAGE_UPDATES: TableDef = TableDef {
    database: "ANALYTICS",
    schema: STAGE_SCHEMA,
    name: "MUTATE_UPDATES",
    columns: FACT_VISIT.columns,
};
const STAGE_INSERTS: TableDef = TableDef {
    database: "ANALYTICS",
    schema: STAGE_SCHEMA,
    name: "MUTATE_INSERTS",
    columns: FACT_VISIT.columns,
};
const STAGE_DELETES: TableDef = TableDef {
    database: "ANALYTICS",
    schema: STAGE_SCHEMA,
    name: "MUTATE_DELETES",
    columns: &[tables::col("Visit Id", "VARCHAR(100)")],
};

/// The background indices chosen for updates and deletes (disjoint), and the
/// first index of inserted visits, for `opts`.
pub fn chosen_visits(opts: &MutateOptions) -> Result<(Vec<u64>, Vec<u64>, u64)> {
    let background = background_count(&opts.seeded);
    if opts.updates + opts.deletes > background / 2 {
        return Err(Error::config(format!(
            "cannot update {} and delete {} of {background} background visits; change at most half of them",
            opts.updates, opts.deletes
        )));
    }
    let mut rng = entity_rng(opts.seeded.seed, Kind::Mutation, opts.mutation_seed);
    let mut chosen = BTreeSet::new();
    let mut pick = |n: u64, chosen: &mut BTreeSet<u64>| {
        let mut out = Vec::with_capacity(n as usize);
        while (out.len() as u64) < n {
            let i = rng.gen_range(0..background);
            if chosen.insert(i) {
                out.push(i);
            }
        }
        out
    };
    let updates = pick(opts.updates, &mut chosen);
    let deletes = pick(opts.deletes, &mut chosen);
    // Inserted visits continue the background sequence in a range of their own per mutation seed.
    let first_insert = 1_000_000_000_000 + (opts.mutation_seed % 1_000_000) * 10_000_000;
    Ok((updates, deletes, first_insert))
}

/// The default numbers of visits to (update, insert, delete) for a dataset
/// seeded with `seeded`: 500, 200 and 100, or a quarter, a quarter and a
/// twentieth of its background visits when that is fewer, so that `thaw dev
/// mutate` without counts works on every dataset `thaw dev seed` accepts
/// (at most half of the background visits change, [`chosen_visits`]).
pub fn default_counts(seeded: &SeedOptions) -> (u64, u64, u64) {
    let background = background_count(seeded);
    ((background / 4).min(500), (background / 4).min(200), (background / 20).min(100))
}

fn background_count(opts: &SeedOptions) -> u64 {
    opts.visits
        .saturating_sub(planted_fact_visits(opts.today, opts.extra_distance))
}

/// Visit `index` after an update at `now`: times shifted by 15 or 30 minutes
/// (keeping split-day gaps ≥ 115 min), `Visit Updated Timestamp` = `now`.
pub fn updated_visit(world: &World, opts: &MutateOptions, index: u64) -> VisitRecord {
    let mut v = background_visit(world, opts.seeded.today, Kind::Visit, index);
    let mut rng = entity_rng(
        world.seed,
        Kind::Mutation,
        opts.mutation_seed ^ index.rotate_left(20),
    );
    let shift = Duration::minutes(if rng.gen_bool(0.5) { 15 } else { 30 });
    v.sched_start += shift;
    v.sched_end += shift;
    for t in [
        &mut v.visit_start,
        &mut v.visit_end,
        &mut v.call_in,
        &mut v.call_out,
    ] {
        *t = t.map(|t| t + shift);
    }
    v.updated = v.local(opts.now.fixed_offset());
    v
}

/// Apply the mutation to the seeded Snowflake tables.
///
/// Errors: [`thaw_engine::ErrorKind::ConfigInvalid`] when more than half of the
/// background would change; Snowflake errors from staging or DML.
pub async fn mutate(source: &SnowflakeSource, opts: &MutateOptions) -> Result<MutateReport> {
    let started = Instant::now();
    let (updates, deletes, first_insert) = chosen_visits(opts)?;
    let world = World::new(
        opts.seeded.seed,
        background_count(&opts.seeded),
        opts.seeded.today,
    );
    std::fs::create_dir_all(&opts.seeded.out_dir).map_err(|e| {
        Error::config(format!(
            "cannot create {}: {e}. Choose a writable --out-dir.",
            opts.seeded.out_dir.display()
        ))
    })?;
    source
        .execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS {}.{}",
            ident("ANALYTICS"),
            ident(STAGE_SCHEMA)
        ))
        .await?;
    for stage in [STAGE_UPDATES, STAGE_INSERTS, STAGE_DELETES] {
        source.execute(&stage.create_sql()).await?;
    }
    let seeded = &opts.seeded;
    stage_rows(
        source,
        seeded,
        STAGE_UPDATES,
        updates
            .iter()
            .map(|&i| updated_visit(&world, opts, i).cells()),
    )
    .await?;
    let inserts = (0..opts.inserts).map(|k| {
        let mut v = background_visit(&world, seeded.today, Kind::Visit, first_insert + k);
        v.updated = v.local(opts.now.fixed_offset());
        v.cells()
    });
    stage_rows(source, seeded, STAGE_INSERTS, inserts).await?;
    let deleted_ids = deletes.iter().map(|&i| {
        vec![Cell::Uuid(
            background_visit(&world, seeded.today, Kind::Visit, i).id,
        )]
    });
    stage_rows(source, seeded, STAGE_DELETES, deleted_ids).await?;

    let fact = FACT_VISIT.qualified();
    let deleted_table = FACT_VISIT_DELETED.qualified();
    let key = ident("Visit Id");
    let columns: Vec<String> = FACT_VISIT.columns.iter().map(|c| ident(c.name)).collect();
    let column_list = columns.join(", ");
    // Updates replace existing rows only; inserts add rows not seen before
    // (neither in FACT nor already deleted), so a re-run changes nothing twice.
    // (DELETE + INSERT rather than MERGE: the emulator mis-binds MERGE on
    // quoted column names with spaces.)
    let updates_stage = STAGE_UPDATES.qualified();
    source
        .execute(&format!(
            "DELETE FROM {updates_stage} WHERE {key} NOT IN (SELECT {key} FROM {fact})"
        ))
        .await?;
    source
        .execute(&format!(
            "DELETE FROM {fact} WHERE {key} IN (SELECT {key} FROM {updates_stage})"
        ))
        .await?;
    let updated = count(
        source
            .execute(&format!(
                "INSERT INTO {fact} ({column_list}) SELECT {column_list} FROM {updates_stage}"
            ))
            .await?,
    );
    let inserts_stage = STAGE_INSERTS.qualified();
    source
        .execute(&format!(
            "DELETE FROM {inserts_stage} WHERE {key} IN (SELECT {key} FROM {fact}) OR {key} IN (SELECT {key} FROM {deleted_table})"
        ))
        .await?;
    let inserted = count(
        source
            .execute(&format!(
                "INSERT INTO {fact} ({column_list}) SELECT {column_list} FROM {inserts_stage}"
            ))
            .await?,
    );
    let now_literal = format!(
        "CAST({} AS TIMESTAMP_TZ)",
        literal(&opts.now.format("%Y-%m-%d %H:%M:%S+00:00").to_string())
    );
    let moved_columns: Vec<String> = columns
        .iter()
        .map(|c| match c.as_str() {
            "\"Permanent Deleted\"" => "TRUE".to_string(),
            "\"Visit Updated Timestamp\"" => now_literal.clone(),
            _ => c.clone(),
        })
        .collect();
    let in_stage = format!("{key} IN (SELECT {key} FROM {})", STAGE_DELETES.qualified());
    let deleted = count(
        source
            .execute(&format!(
                "INSERT INTO {deleted_table} ({}) SELECT {} FROM {fact} WHERE {in_stage} AND {key} NOT IN (SELECT {key} FROM {deleted_table})",
                columns.join(", "),
                moved_columns.join(", ")
            ))
            .await?,
    );
    source
        .execute(&format!("DELETE FROM {fact} WHERE {in_stage}"))
        .await?;
    for stage in [STAGE_UPDATES, STAGE_INSERTS, STAGE_DELETES] {
        source
            .execute(&format!("DROP TABLE IF EXISTS {}", stage.qualified()))
            .await?;
    }
    Ok(MutateReport {
        updated,
        inserted,
        deleted,
        planted_unchanged: true,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Bulk-load `rows` into `stage` in blocks of `block_rows`.
async fn stage_rows(
    source: &SnowflakeSource,
    seeded: &SeedOptions,
    stage: TableDef,
    rows: impl Iterator<Item = Vec<Cell>>,
) -> Result<()> {
    let mut sink = TableSink::new(stage, seeded, Some(source));
    let mut rows = rows.peekable();
    while rows.peek().is_some() {
        let block: Vec<Vec<Cell>> = rows.by_ref().take(seeded.block_rows.max(1)).collect();
        sink.write_block(&block).await?;
    }
    sink.finish(&mut SeedReport::default()).await
}

/// The row count of an INSERT answer (`[["3"]]`).
fn count(rows: thaw_engine::source::JsonRows) -> u64 {
    rows.first()
        .and_then(|r| r.first())
        .and_then(|c| c.as_deref()?.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn opts() -> MutateOptions {
        let seeded = SeedOptions::new(
            9,
            20_000,
            NaiveDate::from_ymd_opt(2026, 11, 21).unwrap(),
            std::env::temp_dir(),
        );
        MutateOptions {
            seeded,
            mutation_seed: 1,
            updates: 50,
            inserts: 20,
            deletes: 30,
            now: DateTime::parse_from_rfc3339("2026-11-21T12:00:00Z")
                .unwrap()
                .to_utc(),
        }
    }

    #[test]
    fn mutation_choices_are_deterministic_and_disjoint() {
        let (u1, d1, i1) = chosen_visits(&opts()).unwrap();
        let (u2, d2, i2) = chosen_visits(&opts()).unwrap();
        assert_eq!((&u1, &d1, i1), (&u2, &d2, i2));
        assert_eq!((u1.len(), d1.len()), (50, 30));
        assert!(u1.iter().all(|i| !d1.contains(i)));
        let other = chosen_visits(&MutateOptions {
            mutation_seed: 2,
            ..opts()
        })
        .unwrap();
        assert_ne!(other.0, u1);
    }

    #[test]
    fn updates_shift_times_within_half_an_hour_and_bump_the_watermark() {
        let o = opts();
        let world = World::new(9, background_count(&o.seeded), o.seeded.today);
        for i in 0..200 {
            let before = background_visit(&world, o.seeded.today, Kind::Visit, i);
            let after = updated_visit(&world, &o, i);
            let shift = (after.sched_start - before.sched_start).num_minutes();
            assert!(shift == 15 || shift == 30);
            assert_eq!(after.date, before.date);
            assert_eq!(after.updated, o.now.fixed_offset());
            assert_eq!(after.id, before.id);
        }
    }

    #[test]
    fn default_counts_fit_every_seedable_dataset() {
        let at = |visits: u64| SeedOptions { visits, ..opts().seeded };
        let smallest = crate::seed::min_visits(opts().seeded.today, opts().seeded.extra_distance);
        // The smallest dataset `thaw dev seed` accepts has 100 background visits.
        assert_eq!(default_counts(&at(smallest)), (25, 25, 5));
        assert_eq!(default_counts(&at(100_000)), (500, 200, 100));
        for visits in [smallest, smallest + 1, 1_000, 2_500, 100_000] {
            let (updates, inserts, deletes) = default_counts(&at(visits));
            let chosen = chosen_visits(&MutateOptions { updates, inserts, deletes, ..opts() });
            assert!(chosen.is_ok(), "{visits} visits: {:?}", chosen.err());
            assert!(updates > 0 && inserts > 0 && deletes > 0, "{visits} visits change something");
        }
    }

    #[test]
    fn changing_more_than_half_the_background_is_refused() {
        let err = chosen_visits(&MutateOptions {
            updates: 15_000,
            ..opts()
        })
        .unwrap_err();
        assert!(err.message.contains("at most half"), "{}", err.message);
    }
}
