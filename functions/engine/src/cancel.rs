//! Stopping a run from outside: the request a signal handler fires and the
//! runner, the copy workers and conflict detection check at their
//! boundaries (docs/sync.md §6.6).

use std::sync::Arc;

use tokio::sync::Notify;

/// A request to stop a run at the next chunk boundary, shared between the
/// code that receives signals and the runner. Cloning shares the request.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<CancelState>);

#[derive(Debug, Default)]
struct CancelState {
    reason: std::sync::Mutex<Option<String>>,
    notify: Notify,
}

impl Cancel {
    /// A request that has not fired.
    pub fn new() -> Self {
        Self::default()
    }
    /// Fire with `reason` (e.g. `SIGTERM`); the first reason is kept.
    pub fn cancel(&self, reason: &str) {
        {
            let mut r = self.0.reason.lock().unwrap_or_else(|p| p.into_inner());
            if r.is_none() {
                *r = Some(reason.to_string());
            }
        }
        self.0.notify.notify_waiters();
    }
    /// The reason, once fired.
    pub fn reason(&self) -> Option<String> {
        self.0.reason.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
    /// Whether it fired.
    pub fn is_cancelled(&self) -> bool {
        self.reason().is_some()
    }
    /// Resolves when it fires (at once if it already has).
    pub async fn cancelled(&self) {
        loop {
            let notified = self.0.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_cancelled() {
                return;
            }
            notified.await;
        }
    }
}
