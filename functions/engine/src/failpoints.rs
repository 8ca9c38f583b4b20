//! Named fault-injection points for tests.
//!
//! With the `failpoints` feature, a test arms a point with [`arm`] and the
//! engine fails there once with the given kind; without the feature every
//! check compiles to nothing.

/// Fails after the chunk's rows were written by COPY and before the commit.
pub const COPY_CHUNK_BEFORE_COMMIT: &str = "copy_chunk_before_commit";

/// Conflict detection *panics* (not fails) after staging the detected pairs,
/// inside the run's transaction: the run lock and `InProgressFlag` must still
/// be released (docs/conflicts.md §D8).
pub const CONFLICT_DETECT_PANIC: &str = "conflict_detect_panic";

/// Fails right after `disable_index` committed the drop of a table's
/// secondary indexes (and their records), before any row is copied: the
/// "crash between drop and restore".
pub const INDEXES_AFTER_DROP: &str = "indexes_after_drop";

/// Fails after a table's plan (its table and chunk rows) committed, before
/// the next table is planned: a run stopped half-way through planning.
pub const PLAN_AFTER_TABLE: &str = "plan_after_table";

/// Fails after a staged file's rows were written by COPY and before its
/// commit (arm it with [`arm_after`] to let the first files through).
pub const STAGED_FILE_BEFORE_COMMIT: &str = "staged_file_before_commit";

/// Fails the `reconcile` step before it reads anything.
pub const RECONCILE_STEP: &str = "reconcile_step";

#[cfg(feature = "failpoints")]
mod imp {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use crate::error::{Error, ErrorKind};

    /// An armed point: (kind, passes still let through, failures left).
    type Armed = (ErrorKind, u32, u32);

    static ARMED: Mutex<Option<HashMap<String, Armed>>> = Mutex::new(None);

    /// Arm `point` to fail the next `times` passes with `kind`.
    pub fn arm(point: &str, kind: ErrorKind, times: u32) {
        arm_after(point, kind, 0, times);
    }

    /// Arm `point` to let `skip` passes through, then fail `times` passes with `kind`.
    pub fn arm_after(point: &str, kind: ErrorKind, skip: u32, times: u32) {
        ARMED.lock().unwrap().get_or_insert_with(HashMap::new).insert(point.to_string(), (kind, skip, times));
    }

    /// Disarm every point.
    pub fn clear() {
        *ARMED.lock().unwrap() = None;
    }

    /// Return an error if `point` is armed (and count the pass down).
    pub fn check(point: &str) -> Result<(), Error> {
        let mut guard = ARMED.lock().unwrap();
        if let Some(map) = guard.as_mut() {
            if let Some((kind, skip, times)) = map.get_mut(point) {
                if *skip > 0 {
                    *skip -= 1;
                } else if *times > 0 {
                    *times -= 1;
                    return Err(Error::new(*kind, format!("failpoint {point} triggered")));
                }
            }
        }
        Ok(())
    }
}

#[cfg(feature = "failpoints")]
pub use imp::{arm, arm_after, check, clear};

/// Without the `failpoints` feature nothing is ever armed.
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn check(_point: &str) -> Result<(), crate::error::Error> {
    Ok(())
}
