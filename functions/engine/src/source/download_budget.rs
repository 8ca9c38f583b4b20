//! A process-wide byte budget for downloaded Snowflake result chunks
//! (docs/sync.md §5.6).
//!
//! Every worker streams its chunk's result with one chunk downloaded ahead of
//! the one being read ([`super::result::PREFETCH_CHUNKS`]), so without a
//! bound the process holds about two result chunks per worker, and Snowflake
//! chooses the size of its result chunks. A [`DownloadBudget`] bounds the
//! bytes of downloaded chunks held at once by all the sessions of a process:
//! a download first reserves the chunk's size (Snowflake's `uncompressedSize`)
//! and the reservation is released when the reader has read the chunk, so
//! the bytes held never exceed the budget, whatever the chunk size and the
//! worker count. A chunk larger than the whole budget waits until it can
//! have all of it and is then held alone.
//!
//! Readers never wait on the budget, only downloads do, so a reader holding
//! a chunk always finishes it and releases its bytes: the budget delays
//! prefetching, it cannot deadlock. Reservations are granted in request
//! order (tokio's fair semaphore), so a large chunk is not starved by
//! smaller ones.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Default budget: 64 MiB of downloaded result chunks per process
/// (`snowflake.download_byte_budget`). Roomy for the few-MiB chunks
/// Snowflake usually sends (four workers with one chunk read and one ahead
/// stay under it); it bounds the process when chunks are large.
pub const DEFAULT_DOWNLOAD_BYTE_BUDGET: u64 = 64 * 1024 * 1024;

/// The semaphore counts KiB so that one reservation fits its `u32` permits.
const BYTES_PER_PERMIT: u64 = 1024;

/// Bytes of downloaded result chunks the sessions of a process may hold at
/// once. Shared by every session configured with the same budget
/// ([`DownloadBudget::shared`]).
#[derive(Debug)]
pub struct DownloadBudget {
    capacity_bytes: u64,
    permits: Arc<Semaphore>,
    /// Bytes of the chunks reserved now (their real sizes).
    held_bytes: AtomicU64,
    /// The most `held_bytes` has been.
    high_water_bytes: AtomicU64,
}

/// The bytes of one downloaded chunk, reserved in a [`DownloadBudget`];
/// returned to it when dropped.
#[derive(Debug)]
pub struct ChunkReservation {
    _permits: OwnedSemaphorePermit,
    bytes: u64,
    budget: Arc<DownloadBudget>,
}

impl Drop for ChunkReservation {
    fn drop(&mut self) {
        self.budget.held_bytes.fetch_sub(self.bytes, Ordering::SeqCst);
    }
}

impl DownloadBudget {
    /// A budget of `capacity_bytes` (at least 1 KiB) used by nobody else.
    pub fn new(capacity_bytes: u64) -> Arc<DownloadBudget> {
        let permits = capacity_bytes.div_ceil(BYTES_PER_PERMIT).clamp(1, u64::from(u32::MAX));
        Arc::new(DownloadBudget {
            capacity_bytes: permits * BYTES_PER_PERMIT,
            permits: Arc::new(Semaphore::new(permits as usize)),
            held_bytes: AtomicU64::new(0),
            high_water_bytes: AtomicU64::new(0),
        })
    }

    /// The process's budget of `capacity_bytes`: every call with the same
    /// capacity returns the same budget, so all the sessions of one
    /// configuration share it.
    pub fn shared(capacity_bytes: u64) -> Arc<DownloadBudget> {
        static BUDGETS: OnceLock<Mutex<HashMap<u64, Arc<DownloadBudget>>>> = OnceLock::new();
        let mut budgets = BUDGETS.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner());
        budgets.entry(capacity_bytes).or_insert_with(|| DownloadBudget::new(capacity_bytes)).clone()
    }

    /// Reserve `bytes` for one chunk, waiting until they are free; a chunk
    /// larger than the budget waits for the whole budget.
    pub async fn reserve(self: &Arc<Self>, bytes: u64) -> ChunkReservation {
        let capacity = self.capacity_bytes / BYTES_PER_PERMIT;
        let wanted = bytes.div_ceil(BYTES_PER_PERMIT).clamp(1, capacity) as u32;
        let Ok(permits) = self.permits.clone().acquire_many_owned(wanted).await else {
            unreachable!("the download budget's semaphore is never closed")
        };
        let held = self.held_bytes.fetch_add(bytes, Ordering::SeqCst) + bytes;
        self.high_water_bytes.fetch_max(held, Ordering::SeqCst);
        ChunkReservation { _permits: permits, bytes, budget: self.clone() }
    }

    /// The budget in bytes (the configured value rounded up to whole KiB).
    pub fn capacity_bytes(&self) -> u64 {
        self.capacity_bytes
    }

    /// Bytes of downloaded chunks held now.
    pub fn held_bytes(&self) -> u64 {
        self.held_bytes.load(Ordering::SeqCst)
    }

    /// The most bytes of downloaded chunks held at once since the budget was
    /// created: at most the budget, or the largest single chunk when one is
    /// larger than the budget.
    pub fn high_water_bytes(&self) -> u64 {
        self.high_water_bytes.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_reservation_waits_until_the_bytes_are_returned() {
        let budget = DownloadBudget::new(10 * 1024);
        let first = budget.reserve(6 * 1024).await;
        let waiting = tokio::spawn({
            let budget = budget.clone();
            async move { budget.reserve(6 * 1024).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "12 KiB must not be held in a 10 KiB budget");
        assert_eq!(budget.held_bytes(), 6 * 1024);
        drop(first);
        let second = waiting.await.unwrap();
        assert_eq!(budget.held_bytes(), 6 * 1024);
        assert_eq!(budget.high_water_bytes(), 6 * 1024);
        drop(second);
        assert_eq!(budget.held_bytes(), 0);
    }

    #[tokio::test]
    async fn a_chunk_larger_than_the_budget_is_held_alone() {
        let budget = DownloadBudget::new(4 * 1024);
        let small = budget.reserve(1024).await;
        let large = tokio::spawn({
            let budget = budget.clone();
            async move { budget.reserve(100 * 1024).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!large.is_finished(), "the large chunk waits for the whole budget");
        drop(small);
        let large = large.await.unwrap();
        assert_eq!(budget.held_bytes(), 100 * 1024);
        assert_eq!(budget.high_water_bytes(), 100 * 1024);
        drop(large);
        assert_eq!(budget.held_bytes(), 0);
    }

    #[test]
    fn sessions_with_the_same_budget_share_it() {
        let a = DownloadBudget::shared(3 * 1024 * 1024);
        let b = DownloadBudget::shared(3 * 1024 * 1024);
        let c = DownloadBudget::shared(5 * 1024 * 1024);
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(DownloadBudget::new(1).capacity_bytes(), 1024);
    }
}
