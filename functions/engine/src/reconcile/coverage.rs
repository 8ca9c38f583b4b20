//! Which rows of a table have been verified, and when (docs/reconcile.md §5).
//!
//! A nightly reconcile verifies the rows the run touched plus a **rolling
//! slice** of the key-hash space (`[rolling_position, rolling_position +
//! width)`), so that every row is verified at least once per period
//! (default 7 days). This module keeps, per target table, the rolling
//! position and the time each part of the key-hash space was last verified
//! clean (`migration_status.reconcile_coverage`, migration V14), chooses the
//! next slice, and computes the **freshness**: the age of the oldest
//! verification still standing, i.e. how long ago the least recently
//! verified slice was verified.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

use super::{KeyRange, HASH_SPACE};
use crate::error::{from_postgres, Error, Result};

/// One part of the key-hash space and when it was last verified clean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifiedRange {
    /// The key-hash range.
    pub range: KeyRange,
    /// When the reconcile that verified it started.
    pub at: DateTime<Utc>,
}

/// The verification state of one target table (one row of
/// `migration_status.reconcile_coverage`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coverage {
    /// `schema.table` in PostgreSQL.
    pub target: String,
    /// First key-hash value of the next rolling slice, in `[0, 2^28)`.
    pub rolling_position: u64,
    /// When the last whole-table verification (`--full`, the first
    /// reconcile, or a table copied whole) started.
    pub last_full_verified_at: Option<DateTime<Utc>>,
    /// Disjoint ranges, sorted, with the time each was last verified clean;
    /// together they cover the key-hash space once the table has been
    /// verified whole.
    pub verified: Vec<VerifiedRange>,
}

impl Coverage {
    /// A table never verified.
    pub fn new(target: &str) -> Coverage {
        Coverage { target: target.to_string(), rolling_position: 0, last_full_verified_at: None, verified: Vec::new() }
    }

    /// The next rolling slice, for a reconcile starting at `now`: from the
    /// rolling position, `1 / period_days` of the key-hash space, or more
    /// when more than a day's share of the period passed since the part at
    /// the rolling position was verified (a skipped night is caught up), and
    /// never past the end of the space (the last slice of a cycle may be
    /// shorter; the next starts again at 0).
    pub fn next_slice(&self, now: DateTime<Utc>, period_days: u32) -> KeyRange {
        let period_days = u64::from(period_days.max(1));
        let lo = self.rolling_position.min(HASH_SPACE - 1);
        let nightly = HASH_SPACE.div_ceil(period_days);
        // Catch up: the slice at the position should have been re-verified
        // `overdue` ago; widen by the share of the period that has elapsed.
        let overdue = self.verified_at(lo).map(|at| (now - at).num_seconds().max(0) as u64).unwrap_or(0).saturating_sub((period_days - 1) * 86_400);
        let catch_up = (HASH_SPACE as u128 * overdue as u128 / (period_days as u128 * 86_400)) as u64;
        let width = nightly.max(catch_up).max(1);
        KeyRange { lo, hi: (lo + width).min(HASH_SPACE) }
    }

    /// When the part of the space holding hash value `h` was last verified.
    fn verified_at(&self, h: u64) -> Option<DateTime<Utc>> {
        self.verified.iter().find(|v| v.range.lo <= h && h < v.range.hi).map(|v| v.at)
    }

    /// Record `range` as verified clean at `at`, and move the rolling
    /// position past it (back to 0 at the end of the space).
    pub fn record_slice(&mut self, range: KeyRange, at: DateTime<Utc>) {
        let mut kept = Vec::new();
        for v in &self.verified {
            if v.range.hi <= range.lo || v.range.lo >= range.hi {
                kept.push(*v);
                continue;
            }
            if v.range.lo < range.lo {
                kept.push(VerifiedRange { range: KeyRange { lo: v.range.lo, hi: range.lo }, at: v.at });
            }
            if v.range.hi > range.hi {
                kept.push(VerifiedRange { range: KeyRange { lo: range.hi, hi: v.range.hi }, at: v.at });
            }
        }
        kept.push(VerifiedRange { range, at });
        kept.sort_by_key(|v| v.range);
        self.verified = kept;
        self.rolling_position = if range.hi >= HASH_SPACE { 0 } else { range.hi };
    }

    /// Record the whole table as verified clean at `at`; the rolling slices
    /// start again at 0.
    pub fn record_full(&mut self, at: DateTime<Utc>) {
        self.verified = vec![VerifiedRange { range: KeyRange::ALL, at }];
        self.last_full_verified_at = Some(at);
        self.rolling_position = 0;
    }

    /// Forget every verification (the table must be verified whole again,
    /// e.g. after columns were added to it); the time of the last full
    /// verification stays, as history.
    pub fn invalidate(&mut self) {
        self.verified.clear();
        self.rolling_position = 0;
    }

    /// The time since which every row has been verified clean: the oldest
    /// verification still standing; `None` while part of the key-hash space
    /// has never been verified.
    pub fn verified_since(&self) -> Option<DateTime<Utc>> {
        let mut next = 0;
        for v in &self.verified {
            if v.range.lo != next {
                return None;
            }
            next = v.range.hi;
        }
        if next != HASH_SPACE {
            return None;
        }
        self.verified.iter().map(|v| v.at).min()
    }

    /// Freshness: hours since the least recently verified slice was
    /// verified (`None`: part of the table was never verified).
    pub fn freshness_hours(&self, now: DateTime<Utc>) -> Option<f64> {
        self.verified_since().map(|at| ((now - at).num_milliseconds().max(0) as f64) / 3_600_000.0)
    }
}

/// One table's verification state as `thaw status` shows it
/// (docs/reconcile.md §5.4).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TableFreshness {
    /// `schema.table` in PostgreSQL.
    pub target: String,
    /// When the last whole-table verification started (`None`: never).
    pub last_full_verified_at: Option<DateTime<Utc>>,
    /// First key-hash value of the next rolling slice, in `[0, 2^28)`.
    pub rolling_position: u64,
    /// The rolling position as a share of the key-hash space, in percent
    /// (0–100): how far the current cycle of rolling slices has come.
    pub rolling_percent: f64,
    /// Since when every row has been verified clean: the time of the least
    /// recently verified slice (`None`: part of the table never verified).
    pub verified_since: Option<DateTime<Utc>>,
    /// Freshness: hours since `verified_since` (`None` with it).
    pub freshness_hours: Option<f64>,
    /// True when the freshness exceeds the threshold, or is unknown.
    pub stale: bool,
    /// Outcome of the newest reconcile of the table (`ok`, `mismatch`,
    /// `error`; `None`: never reconciled), from
    /// `migration_status.reconcile_results`. A table that differs or could
    /// not be checked keeps the verification times of its last clean check,
    /// so this says whether they still describe the table.
    pub last_reconcile: Option<String>,
    /// When that reconcile ran.
    pub last_reconciled_at: Option<DateTime<Utc>>,
}

impl Coverage {
    /// This table's [`TableFreshness`] at `now`; `stale` when the least
    /// recently verified slice is older than `threshold_hours` or part of
    /// the table was never verified.
    pub fn freshness(&self, now: DateTime<Utc>, threshold_hours: f64) -> TableFreshness {
        let freshness_hours = self.freshness_hours(now);
        TableFreshness {
            target: self.target.clone(),
            last_full_verified_at: self.last_full_verified_at,
            rolling_position: self.rolling_position,
            rolling_percent: self.rolling_position as f64 * 100.0 / HASH_SPACE as f64,
            verified_since: self.verified_since(),
            freshness_hours,
            stale: freshness_hours.is_none_or(|h| h > threshold_hours),
            last_reconcile: None,
            last_reconciled_at: None,
        }
    }
}

/// [`TableFreshness`] of every enabled table of `config` (in config order),
/// against `threshold_hours` (the cutover gate's `--coverage-hours`, default
/// 192: the 7-day period plus a day).
///
/// Errors: [`crate::ErrorKind`] by SQLSTATE; `Internal` when stored ranges
/// do not parse.
pub async fn freshness_of_tables(pg: &Client, config: &crate::config::Config, now: DateTime<Utc>, threshold_hours: f64) -> Result<Vec<TableFreshness>> {
    let mut tables = Vec::new();
    for source in config.sources.iter().filter(|s| s.enabled) {
        for table in source.tables.iter().filter(|t| t.enabled) {
            let target = format!("{}.{}", source.target_pg_schema, table.target);
            let mut freshness = load(pg, &target).await?.freshness(now, threshold_hours);
            let last = pg
                .query_opt("SELECT status, reconciled_at FROM migration_status.reconcile_results WHERE target = $1 ORDER BY reconciled_at DESC LIMIT 1", &[&target])
                .await
                .map_err(|e| from_postgres(e, format!("reading the newest reconcile result of {target}")))?;
            if let Some(row) = last {
                freshness.last_reconcile = Some(row.get(0));
                freshness.last_reconciled_at = Some(row.get(1));
            }
            tables.push(freshness);
        }
    }
    Ok(tables)
}

/// The stored coverage of `target` (`schema.table`), or a fresh one.
///
/// Errors: [`crate::ErrorKind`] by SQLSTATE; `Internal` when the stored
/// ranges do not parse.
pub async fn load(pg: &Client, target: &str) -> Result<Coverage> {
    let row = pg
        .query_opt("SELECT rolling_position, last_full_verified_at, verified_ranges FROM migration_status.reconcile_coverage WHERE target = $1", &[&target])
        .await
        .map_err(|e| from_postgres(e, format!("reading the reconcile coverage of {target}")))?;
    let Some(row) = row else { return Ok(Coverage::new(target)) };
    let verified: Vec<VerifiedRange> = serde_json::from_value(row.get(2))
        .map_err(|e| Error::internal(format!("migration_status.reconcile_coverage.verified_ranges of {target} is unreadable: {e}")))?;
    Ok(Coverage { target: target.to_string(), rolling_position: row.get::<_, i64>(0).max(0) as u64, last_full_verified_at: row.get(1), verified })
}

/// Write `coverage` (insert or replace the table's row).
///
/// Errors: [`crate::ErrorKind`] by SQLSTATE.
pub async fn store(pg: &Client, coverage: &Coverage) -> Result<()> {
    let verified = serde_json::to_value(&coverage.verified).map_err(|e| Error::internal(format!("coverage does not serialise: {e}")))?;
    let since = coverage.verified_since();
    pg.execute(
        "INSERT INTO migration_status.reconcile_coverage (target, rolling_position, last_full_verified_at, verified_since, verified_ranges, updated_at) \
         VALUES ($1, $2, $3, $4, $5, now()) \
         ON CONFLICT (target) DO UPDATE SET rolling_position = EXCLUDED.rolling_position, last_full_verified_at = EXCLUDED.last_full_verified_at, \
           verified_since = EXCLUDED.verified_since, verified_ranges = EXCLUDED.verified_ranges, updated_at = now()",
        &[&coverage.target, &(coverage.rolling_position as i64), &coverage.last_full_verified_at, &since, &verified],
    )
    .await
    .map_err(|e| from_postgres(e, format!("recording the reconcile coverage of {}", coverage.target)))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-01-01T02:00:00Z").unwrap().with_timezone(&Utc)
    }

    #[test]
    fn nightly_slices_cover_the_space_within_the_period_and_freshness_follows_the_oldest_slice() {
        let mut c = Coverage::new("public.t");
        assert_eq!(c.freshness_hours(t0()), None, "never verified");
        c.record_full(t0());
        assert_eq!(c.freshness_hours(t0() + Duration::hours(5)), Some(5.0));
        let mut covered = 0;
        for night in 1..=7 {
            let now = t0() + Duration::days(night);
            let s = c.next_slice(now, 7);
            assert_eq!(s.lo, covered, "night {night} continues where the last slice ended");
            covered = s.hi;
            c.record_slice(s, now);
            // The oldest standing verification is the full one until the cycle ends.
            let expected = if night < 7 { night as f64 * 24.0 } else { 6.0 * 24.0 };
            assert_eq!(c.freshness_hours(now), Some(expected), "night {night}");
        }
        assert_eq!(covered, HASH_SPACE, "seven nightly slices cover the space");
        assert_eq!(c.rolling_position, 0, "the next cycle starts at 0");
        assert_eq!(c.verified.len(), 7);
    }

    #[test]
    fn freshness_flags_a_table_over_the_threshold_or_never_verified_whole() {
        let mut c = Coverage::new("public.t");
        let never = c.freshness(t0(), 192.0);
        assert_eq!((never.freshness_hours, never.stale, never.last_full_verified_at), (None, true, None));
        c.record_full(t0());
        let slice = c.next_slice(t0() + Duration::days(1), 7);
        c.record_slice(slice, t0() + Duration::days(1));
        let fresh = c.freshness(t0() + Duration::days(8), 192.0);
        assert_eq!((fresh.freshness_hours, fresh.stale), (Some(192.0), false), "exactly at the threshold is not over it");
        assert_eq!(fresh.rolling_position, slice.hi);
        assert!((fresh.rolling_percent - 100.0 / 7.0).abs() < 0.01, "{}", fresh.rolling_percent);
        assert_eq!(fresh.verified_since, Some(t0()));
        let stale = c.freshness(t0() + Duration::days(8) + Duration::minutes(1), 192.0);
        assert!(stale.stale);
    }

    #[test]
    fn a_skipped_week_widens_the_next_slice() {
        let mut c = Coverage::new("public.t");
        c.record_full(t0());
        let s = c.next_slice(t0() + Duration::days(1), 7);
        assert_eq!(s.hi - s.lo, HASH_SPACE.div_ceil(7));
        let late = c.next_slice(t0() + Duration::days(14), 7);
        assert_eq!(late, KeyRange::ALL, "two weeks without a reconcile: the whole space is overdue");
    }
}
