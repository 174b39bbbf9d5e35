//! The one handle a long operation (ingest, migration, verification, export, the demo) takes
//! from its caller: a cancellation signal it checks between units of work, and a progress sink
//! it reports to. The CLI's sink draws progress bars and its Ctrl-C handler cancels; the
//! server's sink will stream events and a dropped connection will cancel.
//!
//! Cancelling is a request: the operation stops at its next check, undoes what is half-done
//! (an unpublished version, an unfinished journal entry) and returns [`Cancelled`], so a
//! re-run starts from a consistent state.

#![forbid(unsafe_code)]

use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// The operation was cancelled by its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cancelled by the caller")]
pub struct Cancelled;

/// What a count of progress counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Rows read.
    Rows,
    /// Bytes sent or read.
    Bytes,
    /// Objects checked.
    Objects,
    /// Patients generated.
    Patients,
    /// Steps of a multi-step command (the demo): each phase is one.
    Steps,
}

/// Where progress goes. Every method has a default that ignores it.
pub trait ProgressSink: Send + Sync {
    /// A new phase starts (replacing the previous one): what it does, how much there is to do
    /// if known, and in what unit.
    fn phase(&self, what: &str, total: Option<u64>, unit: Unit) {
        let _ = (what, total, unit);
    }
    /// `n` more units of the current phase are done.
    fn advance(&self, n: u64) {
        let _ = n;
    }
    /// The current phase is over.
    fn finish(&self) {}
}

struct Silent;
impl ProgressSink for Silent {}

/// A progress sink and a cancellation signal, cheap to clone and to share between the tasks of
/// one operation.
#[derive(Clone)]
pub struct Task {
    cancel: CancellationToken,
    sink: Arc<dyn ProgressSink>,
}

impl std::fmt::Debug for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Task")
            .field("cancelled", &self.is_cancelled())
            .finish_non_exhaustive()
    }
}

impl Default for Task {
    fn default() -> Self {
        Self::silent()
    }
}

impl Task {
    /// Reports to `sink`; cancelled by [`Task::cancel`] on it or any clone.
    pub fn new(sink: Arc<dyn ProgressSink>) -> Self {
        Self {
            cancel: CancellationToken::new(),
            sink,
        }
    }

    /// Reports nothing (tests, nested steps).
    pub fn silent() -> Self {
        Self::new(Arc::new(Silent))
    }

    /// The same cancellation, reporting to `sink` instead: a step run inside a larger one
    /// (the demo's ingest) is stopped by the same Ctrl-C.
    pub fn with_sink(&self, sink: Arc<dyn ProgressSink>) -> Self {
        Self {
            cancel: self.cancel.clone(),
            sink,
        }
    }

    /// The same cancellation, reporting nothing.
    pub fn quiet(&self) -> Self {
        self.with_sink(Arc::new(Silent))
    }

    /// Asks the operation to stop.
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// Whether it was asked to.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// `Err(Cancelled)` once it was asked to stop: the check between units of work.
    pub fn check(&self) -> Result<(), Cancelled> {
        if self.is_cancelled() {
            Err(Cancelled)
        } else {
            Ok(())
        }
    }

    /// Completes when it is asked to stop (for `select!` against a wait).
    pub async fn cancelled(&self) {
        self.cancel.cancelled().await
    }

    /// See [`ProgressSink::phase`].
    pub fn phase(&self, what: &str, total: Option<u64>, unit: Unit) {
        self.sink.phase(what, total, unit)
    }

    /// See [`ProgressSink::advance`].
    pub fn advance(&self, n: u64) {
        self.sink.advance(n)
    }

    /// See [`ProgressSink::finish`].
    pub fn finish(&self) {
        self.sink.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Log(Mutex<Vec<String>>);
    impl ProgressSink for Log {
        fn phase(&self, what: &str, total: Option<u64>, _: Unit) {
            self.0
                .lock()
                .expect("log")
                .push(format!("{what}/{total:?}"));
        }
        fn advance(&self, n: u64) {
            self.0.lock().expect("log").push(n.to_string());
        }
    }

    #[tokio::test]
    async fn a_cancel_on_any_clone_reaches_every_clone_and_waiter() {
        let log = Arc::new(Log::default());
        let task = Task::new(log.clone());
        let inner = task.quiet();
        let waiter = {
            let t = task.clone();
            tokio::spawn(async move { t.cancelled().await })
        };
        assert_eq!(inner.check(), Ok(()));
        inner.advance(3); // quiet: not in the log
        task.phase("read", Some(10), Unit::Rows);
        task.advance(4);
        inner.cancel();
        assert_eq!(task.check(), Err(Cancelled));
        waiter.await.expect("the waiter wakes");
        assert_eq!(*log.0.lock().expect("log"), ["read/Some(10)", "4"]);
    }
}
