//! What bounds a run besides its concurrency: one token bucket of bandwidth shared by all
//! transfers (`--bwlimit`), and one budget of source bytes buffered at once (`Options::buffer`).

use super::*;

/// A token bucket shared by all transfers.
#[derive(Debug)]
pub(super) struct Bandwidth {
    pub(super) rate: f64,
    pub(super) start: Instant,
    pub(super) taken: AtomicU64,
}

impl Bandwidth {
    pub(super) async fn take(&self, n: u64) {
        let total = self.taken.fetch_add(n, Ordering::Relaxed) + n;
        let due = self.start + Duration::from_secs_f64(total as f64 / self.rate);
        tokio::time::sleep_until(due.into()).await;
    }
}

impl Ctx {
    /// Reserves `bytes` of the buffer budget (an object larger than the whole budget takes
    /// all of it, and so goes alone).
    pub(super) async fn hold(
        &self,
        bytes: u64,
    ) -> Result<tokio::sync::SemaphorePermit<'_>, ObjErr> {
        let kib = u32::try_from(bytes.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .clamp(1, self.memory_kib);
        self.memory
            .acquire_many(kib)
            .await
            .map_err(|_| ObjErr::Conflict("the buffer budget was closed".into()))
    }
}
