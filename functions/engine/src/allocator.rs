//! How the process's allocator gives memory back (docs/sync.md §5.6).
//!
//! A copy worker's large buffers (downloaded result chunks, Arrow arrays,
//! COPY messages: 1–4 MB each with 10 000-row result chunks) are allocated
//! and freed continuously. glibc's `malloc` serves blocks above its mmap
//! threshold with their own mappings, returned to the system on `free`, but
//! by default it **raises** that threshold (up to 32 MiB) each time such a
//! block is freed, after which the same buffers come from the heap arenas
//! and stay in the process's RSS when freed. Fixing the threshold keeps it
//! where it is. Measured on the 1 M-visit bench (970 055 rows × 42 columns,
//! 4 workers, 10 000-row result chunks, docs/benchmarks.md §3): peak RSS
//! of `thaw run` 248 / 250 MiB with the default, 206 / 216 MiB with the
//! threshold fixed at 1 MiB, copy time unchanged within the noise.

/// Allocations of at least this many bytes get their own mapping, returned
/// to the system when freed: 1 MiB (glibc's default starts at 128 KiB and
/// moves; fixing it stops the moving).
pub const MMAP_THRESHOLD_BYTES: usize = 1 << 20;

/// Fix the allocator's mmap threshold at [`MMAP_THRESHOLD_BYTES`] so that
/// freed large buffers leave the process (glibc on Linux; elsewhere a no-op).
/// Call once at start-up. Returns whether
/// the setting was applied.
pub fn return_large_buffers_to_the_system() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes a malloc parameter (glibc takes its own
        // lock); the option and the value are valid.
        #[allow(unsafe_code)]
        unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES as libc::c_int) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn the_threshold_is_accepted_by_glibc() {
        assert!(super::return_large_buffers_to_the_system());
    }
}
