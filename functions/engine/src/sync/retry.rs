//! How long a chunk keeps retrying: a time budget with exponential backoff
//! and full jitter (docs/sync.md §9.3).
//!
//! A PostgreSQL restart or failover takes 10–60 s; a fixed three attempts a
//! second apart give up long before the server is back. A [`RetryPolicy`]
//! therefore retries *retryable* kinds ([`ErrorKind::is_retryable`](crate::ErrorKind::is_retryable)) until
//! `retry_budget_seconds` (default 120 s) have passed since the chunk's
//! first failure, sleeping `uniform(0, min(cap, base × 2^(attempt−1)))`
//! between attempts (base 0.5 s, cap 15 s). The caller reconnects dead
//! connections before the next attempt. Deterministic kinds (bad value,
//! missing column, permission, constraint) are never retried and never
//! sleep.

use std::time::{Duration, Instant};

use crate::config::Config;
use crate::error::Error;

/// Default retry budget per chunk: 120 seconds.
pub const DEFAULT_RETRY_BUDGET_SECONDS: u64 = 120;
/// First backoff ceiling: 500 ms.
const BASE: Duration = Duration::from_millis(500);
/// Largest single backoff ceiling: 15 s.
const CAP: Duration = Duration::from_secs(15);

/// Retry decisions for one chunk (or one connection attempt).
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Time allowed for retries after the first failure.
    pub budget: Duration,
    /// Attempts always allowed, whatever the budget (`max_retry_attempts`, default 3).
    pub min_attempts: u32,
    first_failure: Option<Instant>,
}

impl RetryPolicy {
    /// The policy of `config`: `retry_budget_seconds` (default 120) and
    /// `max_retry_attempts` (default 3) as a floor of attempts.
    pub fn from_config(config: &Config) -> RetryPolicy {
        RetryPolicy::new(
            Duration::from_secs(config.retry_budget_seconds.unwrap_or(DEFAULT_RETRY_BUDGET_SECONDS)),
            config.max_retry_attempts.unwrap_or(3).max(1),
        )
    }

    /// A policy with an explicit budget and attempt floor.
    pub fn new(budget: Duration, min_attempts: u32) -> RetryPolicy {
        RetryPolicy { budget, min_attempts, first_failure: None }
    }

    /// After attempt number `attempt` (1-based) failed with `error`: how long
    /// to sleep before the next attempt, or `None` to give up. Deterministic
    /// errors give up at once; retryable ones until the budget is spent (and
    /// at least `min_attempts` attempts were made). The sleep never runs past
    /// the end of the budget.
    pub fn next_delay(&mut self, attempt: u32, error: &Error) -> Option<Duration> {
        if !error.kind.is_retryable() {
            return None;
        }
        let first = *self.first_failure.get_or_insert_with(Instant::now);
        let elapsed = first.elapsed();
        if elapsed >= self.budget && attempt >= self.min_attempts {
            return None;
        }
        let ceiling = BASE.saturating_mul(1u32 << (attempt.saturating_sub(1)).min(10)).min(CAP);
        let jittered = Duration::from_millis(rand::Rng::gen_range(&mut rand::thread_rng(), 0..=ceiling.as_millis() as u64));
        let left = self.budget.saturating_sub(elapsed);
        Some(if attempt >= self.min_attempts { jittered.min(left) } else { jittered })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn deterministic_errors_are_never_retried() {
        let mut p = RetryPolicy::new(Duration::from_secs(60), 3);
        assert_eq!(p.next_delay(1, &Error::new(ErrorKind::ChunkFailed, "bad value")), None);
        assert_eq!(p.next_delay(1, &Error::new(ErrorKind::SchemaMismatch, "no column")), None);
    }

    #[test]
    fn retryable_errors_back_off_within_the_budget() {
        let mut p = RetryPolicy::new(Duration::from_secs(60), 1);
        for attempt in 1..20 {
            let d = p.next_delay(attempt, &Error::new(ErrorKind::Unreachable, "refused")).expect("within budget");
            assert!(d <= CAP, "attempt {attempt}: {d:?}");
        }
        let mut spent = RetryPolicy::new(Duration::ZERO, 1);
        assert_eq!(spent.next_delay(1, &Error::new(ErrorKind::Transient, "reset")), None);
    }
}
