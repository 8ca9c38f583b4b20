//! Named fault-injection points for tests.
//!
//! With the `failpoints` feature, a test arms a point with `arm` (or
//! `arm_at`, to let it pass a number of times first) and the engine fails
//! there with the given kind; `fired` says how often it did. Without the
//! feature every check compiles to nothing. The crash suite
//! (`tests/sync_crash_suite.rs`) arms every point of [`ALL`] at seeded hit
//! counts and resumes after each failure.

/// Fails after the chunk's rows were written by COPY and before the commit.
pub const COPY_CHUNK_BEFORE_COMMIT: &str = "copy_chunk_before_commit";

/// Fails inside the chunk transaction (status row locked, write path
/// chosen) before the source query and the COPY start.
pub const COPY_CHUNK_BEFORE_COPY: &str = "copy_chunk_before_copy";

/// Fails right after the COPY finished (rows in the destination or in
/// staging), before the upsert and the status update: of a chunk on the
/// direct path, of a file on the staged path (both write through
/// `sync::copy::write_batches`).
pub const COPY_CHUNK_AFTER_COPY: &str = "copy_chunk_after_copy";

/// Fails in merge after a table's outcome (and a replaced table's swap)
/// committed, before its indexes are restored and it is analysed.
pub const MERGE_AFTER_TABLE: &str = "merge_after_table";

/// Fails before each index restore of merge (an index still recorded
/// dropped), so some of a table's indexes are restored and some are not.
pub const INDEXES_BEFORE_RESTORE: &str = "indexes_before_restore";

/// Conflict detection *panics* (not fails) after staging the detected pairs,
/// inside the run's transaction: the run lock and `InProgressFlag` must still
/// be released (docs/conflicts.md §D8).
pub const CONFLICT_DETECT_PANIC: &str = "conflict_detect_panic";

/// Fails right after `disable_index` committed the drop of a table's
/// secondary indexes (and their records), before any row is copied: the
/// "crash between drop and restore".
pub const INDEXES_AFTER_DROP: &str = "indexes_after_drop";

/// Fails the conflict run in the middle of the status lifecycle (after the
/// cascade down of docs/conflicts.md §8.2 step 6, inside the run's
/// transaction): nothing of the night may stay written.
pub const CONFLICT_LIFECYCLE_MIDWAY: &str = "conflict_lifecycle_midway";

/// Fails after a table's plan (its table and chunk rows) committed, before
/// the next table is planned: a run stopped half-way through planning.
pub const PLAN_AFTER_TABLE: &str = "plan_after_table";

/// Fails after a staged file's rows were written by COPY and before its
/// commit (arm it with `arm_at` to let the first files through).
pub const STAGED_FILE_BEFORE_COMMIT: &str = "staged_file_before_commit";

/// Fails the `reconcile` step before it reads anything.
pub const RECONCILE_STEP: &str = "reconcile_step";

/// Every step-boundary point of a sync run, in run order (the crash suite's list).
pub const ALL: [&str; 9] = [
    PLAN_AFTER_TABLE,
    INDEXES_AFTER_DROP,
    COPY_CHUNK_BEFORE_COPY,
    COPY_CHUNK_AFTER_COPY,
    COPY_CHUNK_BEFORE_COMMIT,
    MERGE_AFTER_TABLE,
    INDEXES_BEFORE_RESTORE,
    RECONCILE_STEP,
    CONFLICT_DETECT_PANIC,
];

#[cfg(feature = "failpoints")]
mod imp {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use crate::error::{Error, ErrorKind};

    /// An armed point: its error kind, passes left before it fails, failures
    /// left, failures so far.
    struct Armed {
        kind: ErrorKind,
        skip: u32,
        times: u32,
        fired: u32,
    }

    static ARMED: Mutex<Option<HashMap<String, Armed>>> = Mutex::new(None);

    fn lock() -> std::sync::MutexGuard<'static, Option<HashMap<String, Armed>>> {
        ARMED.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Arm `point` to fail the next `times` passes with `kind`.
    pub fn arm(point: &str, kind: ErrorKind, times: u32) {
        arm_at(point, kind, 0, times);
    }

    /// Arm `point` to let `skip` passes through, then fail the next `times` with `kind`.
    pub fn arm_at(point: &str, kind: ErrorKind, skip: u32, times: u32) {
        lock().get_or_insert_with(HashMap::new).insert(point.to_string(), Armed { kind, skip, times, fired: 0 });
    }

    /// How many times `point` failed since it was armed (0 when not armed).
    pub fn fired(point: &str) -> u32 {
        lock().as_ref().and_then(|m| m.get(point)).map_or(0, |a| a.fired)
    }

    /// Disarm every point.
    pub fn clear() {
        *lock() = None;
    }

    /// Return an error if `point` is armed (and count the pass down).
    pub fn check(point: &str) -> Result<(), Error> {
        let mut guard = lock();
        if let Some(a) = guard.as_mut().and_then(|m| m.get_mut(point)) {
            if a.skip > 0 {
                a.skip -= 1;
            } else if a.times > 0 {
                a.times -= 1;
                a.fired += 1;
                return Err(Error::new(a.kind, format!("failpoint {point} triggered")));
            }
        }
        Ok(())
    }
}

#[cfg(feature = "failpoints")]
pub use imp::{arm, arm_at, check, clear, fired};

/// Without the `failpoints` feature nothing is ever armed.
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn check(_point: &str) -> Result<(), crate::error::Error> {
    Ok(())
}
