//! Executing a plan: concurrent, verified, resumable copies.
//!
//! Every object is read from the source once, hashed (BLAKE3) as its bytes pass, written to the
//! destination, and verified there before the journal records it. By default
//! (`VerifyMode::Auto`) a service that checks the SHA-256 of every signed request body (probed:
//! it refuses a body that does not match) has verified each byte on receipt against the hash of
//! the bytes read from the source, so nothing is read back; elsewhere, and for objects this run
//! did not write whole (found already there, resumed uploads), the object is read back and
//! hashed again. `VerifyMode::ReadBack` always reads back; `VerifyMode::Size` compares sizes
//! only (for when reading back costs egress; `migrate verify` then does the end-to-end check
//! against the manifests).
//!
//! - Objects below the multipart threshold are written in one request, create-only where the
//!   destination enforces it: an object that appeared meanwhile is compared, never overwritten.
//! - Larger objects go part by part. Where the service has a multipart API (S3, Azure) the
//!   upload id and each finished part (with the BLAKE3 of its source bytes) are journalled, so a
//!   re-run after a crash sends only the missing parts. The object's digest is the BLAKE3 of its
//!   parts' BLAKE3s, which the read-back recomputes part by part.
//! - Failures are classified like rclone's `fserrors`: a missing object, a refused
//!   precondition or a permission error is final; anything else (HTTP 429/5xx, timeouts, dropped
//!   connections, a read-back that does not match) is retried with jittered exponential backoff.
//! - `--bwlimit` is one token bucket shared by all transfers.
//! - With `delete`, objects only at the destination are copied to
//!   `.shh-quarantine/<run>/` and then deleted, after every copy succeeded.

use crate::plan::{Action, Item, Tally};
use crate::probe::Capabilities;
use crate::{Journal, MigrateError, Result};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::{
    GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload,
};
use serde::Serialize;
use shh_store::retry::BackoffConfig;
use shh_store::{Backend, Put, RawError, S3Raw, StoreUrl};
use shh_task::Task;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const MIB: u64 = 1024 * 1024;
/// Objects at least this large stream in signed chunks where the destination checks them,
/// instead of being held whole.
const STREAM_MIN: u64 = 8 * MIB;
/// Objects at least this large are streamed to local disk.
const LOCAL_STREAM_MIN: u64 = 16 * MIB;
/// The pieces in which they stream.
const LOCAL_PIECE: u64 = 2 * MIB;
/// Chunk of a chunk-signed upload.
const STREAM_CHUNK: usize = MIB as usize;
/// Piece in which streamed reads take a local file.
const PIECE: usize = shh_store::READ_PIECE;

mod cleanup;
mod error;
mod limits;
mod multipart;
mod object;
mod options;
mod put;
#[cfg(test)]
mod tests;
mod verify;

use cleanup::*;
use error::*;
use limits::*;
use multipart::*;
use object::*;
use put::*;
use verify::*;

pub use object::NAMES_KEPT;
pub use options::{Failure, Options, RunStats, VerifyMode};
pub use verify::blake3_of;

/// One side of a migration.
#[derive(Debug, Clone)]
pub struct Side {
    /// Its URL.
    pub url: StoreUrl,
    /// The opened store.
    pub backend: Backend,
    /// What it can do.
    pub caps: Capabilities,
}

impl Side {
    fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.backend.store
    }
}

/// How this run sent an object's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sent {
    /// Not by this run: found already there, or taken over from an interrupted upload.
    Not,
    /// In requests signed with their body's SHA-256.
    Signed,
    /// In one upload whose every chunk is signed.
    Chunked,
}

/// What verifies one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    /// The service checked every body this run sent for it: nothing to read back.
    OnReceipt,
    /// Local disk: the store checked the file's size on its open handle before renaming it
    /// into place (`DurableLocal`), and the run syncs everything before it reports success.
    Written,
    ReadBack,
    Size,
}

struct Ctx {
    src: Side,
    dst: Side,
    journal: Arc<Journal>,
    opts: Options,
    bw: Option<Arc<Bandwidth>>,
    stats: Mutex<RunStats>,
    task: Task,
    stop: AtomicBool,
    /// Parts in flight at once over all objects (at most `transfers`).
    parts: tokio::sync::Semaphore,
    /// KiB of source data buffered at once over all transfers (`Options::buffer`).
    memory: tokio::sync::Semaphore,
    memory_kib: u32,
}

impl Ctx {
    /// Whether `name` belongs to this run's plan (under its prefix).
    fn in_scope(&self, name: &str) -> bool {
        self.opts
            .scope
            .as_deref()
            .is_none_or(|p| name.starts_with(p))
    }

    /// How to verify an object this run sent as `sent`.
    fn check(&self, sent: Sent) -> Check {
        let caps = &self.dst.caps;
        let checked = match sent {
            Sent::Not => false,
            Sent::Signed => caps.payload_sha256_checked == Some(true),
            Sent::Chunked => caps.chunk_signatures_checked == Some(true),
        };
        // On local disk a read-back comes from the page cache, and a size read after the
        // rename would be the size of the file we just renamed: neither proves anything the
        // hash of the bytes handed to the file system and the store's own check on the open
        // file did not. The files are synced together at the end.
        let local = self.dst.backend.local.is_some() && sent != Sent::Not;
        match self.opts.verify {
            VerifyMode::Auto if checked => Check::OnReceipt,
            VerifyMode::Auto if local => Check::Written,
            VerifyMode::Auto | VerifyMode::ReadBack => Check::ReadBack,
            VerifyMode::Size => Check::Size,
        }
    }

    /// Objects at least this large go part by part. To local disk that is also how they
    /// stream (held whole, four 64 MiB objects in flight doubled the peak RSS), so it is at
    /// most 16 MiB there.
    fn multipart_threshold(&self) -> u64 {
        if self.dst.backend.local.is_some() {
            self.opts.multipart_threshold.min(LOCAL_STREAM_MIN)
        } else {
            self.opts.multipart_threshold
        }
    }

    /// The destination's chunk-signed uploads, where it takes them (probed).
    fn chunked_uploads(&self) -> Option<&S3Raw> {
        if self.dst.caps.chunked_uploads != Some(true) {
            return None;
        }
        self.dst.backend.s3.as_ref()
    }

    /// The same, for a whole object of `size` bytes worth streaming.
    fn chunked(&self, size: u64) -> Option<&S3Raw> {
        self.chunked_uploads().filter(|_| size >= STREAM_MIN)
    }

    fn stat(&self, f: impl FnOnce(&mut RunStats)) {
        if let Ok(mut s) = self.stats.lock() {
            f(&mut s)
        }
    }

    fn sent(&self, n: u64) {
        self.stat(|s| s.bytes_sent += n);
        self.task.advance(n);
    }

    async fn backoff(&self, attempt: u32) {
        self.stat(|s| s.retries += 1);
        tokio::time::sleep(self.opts.retry.delay(attempt)).await;
    }

    /// Runs `f` until it succeeds, fails for good, or runs out of attempts.
    async fn retry<T, F, Fut>(&self, mut f: F) -> Result<T, ObjErr>
    where
        F: FnMut(u32) -> Fut,
        Fut: std::future::Future<Output = Result<T, ObjErr>>,
    {
        let mut attempt = 0;
        loop {
            match f(attempt).await {
                Ok(v) => return Ok(v),
                Err(e) if e.retriable() && self.opts.retry.another_after(attempt) => {
                    attempt += 1;
                    self.backoff(attempt).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// Runs `items` from `src` to `dst`. Per-object failures are collected in the stats (the run
/// goes on, like rclone, until `max_failures`); an unreadable plan stops it. `task` counts the
/// bytes sent; once it is cancelled no new object starts, the ones in flight finish (so the
/// journal records each object whole or not at all) and the run ends with
/// [`MigrateError::Cancelled`]: a re-run resumes from the journal.
pub async fn execute(
    items: impl Iterator<Item = Result<Item>>,
    src: Side,
    dst: Side,
    journal: Arc<Journal>,
    opts: Options,
    task: Task,
) -> Result<RunStats> {
    let started = Instant::now();
    let transfers = opts.transfers.max(1);
    let memory_kib = u32::try_from(opts.buffer.div_ceil(1024).max(1)).unwrap_or(u32::MAX);
    let ctx = Arc::new(Ctx {
        bw: opts.bwlimit.map(|rate| {
            Arc::new(Bandwidth {
                rate: rate.max(1) as f64,
                start: Instant::now(),
                taken: AtomicU64::new(0),
            })
        }),
        src,
        dst,
        journal,
        opts,
        stats: Mutex::new(RunStats::default()),
        task,
        stop: AtomicBool::new(false),
        parts: tokio::sync::Semaphore::new(transfers),
        memory: tokio::sync::Semaphore::new(memory_kib as usize),
        memory_kib,
    });
    // What verifies an object this run writes whole; others (found already there, resumed
    // uploads) are read back unless sizes only were asked for.
    let verification = match ctx.check(Sent::Signed) {
        Check::OnReceipt => {
            "SHA-256 of every byte sent checked by the service on receipt (signed bodies, or \
             signed chunks for objects streamed); objects found already there and resumed \
             uploads read back and compared by BLAKE3"
        }
        Check::ReadBack => "read-back BLAKE3 of every object written",
        Check::Written => {
            "local disk: BLAKE3 of every source byte as handed to the file system, each file's \
             size checked on its open handle before it is renamed into place, every file and \
             directory synced together before the run ends (a read-back would come from the \
             page cache); objects found already there read back and compared by BLAKE3; \
             `shh migrate verify` re-reads everything against the manifests"
        }
        Check::Size => "size only (run `shh migrate verify` for hashes)",
    };
    if let Some(l) = &ctx.dst.backend.local {
        l.defer_syncs();
    }
    ctx.stat(|s| s.verification = verification.to_owned());
    remove_left_staging(&ctx)?;
    let deletes: Arc<Mutex<Vec<Item>>> = Arc::default();
    let mut tasks = futures::stream::iter(items)
        .map(|r| {
            let ctx = ctx.clone();
            let deletes = deletes.clone();
            async move {
                let item = r?;
                if item.action == Action::DestOnly {
                    if ctx.opts.delete {
                        if let Ok(mut d) = deletes.lock() {
                            d.push(item);
                        }
                    } else {
                        ctx.stat(|s| s.dest_only_kept.add(item.size));
                    }
                    return Ok(());
                }
                if item.action == Action::Same {
                    ctx.stat(|s| s.same.add(item.size));
                    return Ok(());
                }
                if ctx.stop.load(Ordering::Relaxed) || ctx.task.is_cancelled() {
                    return Ok(());
                }
                // A task of its own, so hashing and I/O of many objects use every core.
                let c = ctx.clone();
                let path = item.path.clone();
                let r = tokio::spawn(async move { object(&c, &item).await }).await;
                let r = match r {
                    Ok(r) => r,
                    Err(e) => Err(ObjErr::Conflict(format!("task failed: {e}"))),
                };
                if let Err(e) = r {
                    let mut stop = false;
                    ctx.stat(|s| {
                        s.failures.push(Failure {
                            path: path.clone(),
                            error: e.to_string(),
                        });
                        stop = s.failures.len() >= ctx.opts.max_failures;
                    });
                    if stop {
                        ctx.stop.store(true, Ordering::Relaxed);
                    }
                }
                Ok::<(), MigrateError>(())
            }
        })
        .buffer_unordered(transfers);
    while let Some(r) = tasks.next().await {
        r?;
    }
    drop(tasks);
    if ctx.task.is_cancelled() {
        durable_local(&ctx).await?;
        ctx.journal.sync()?;
        return Err(MigrateError::Cancelled);
    }
    if !ctx.stop.load(Ordering::Relaxed) {
        abort_untaken_uploads(&ctx).await?;
    }
    durable_local(&ctx).await?;
    ctx.journal.sync()?;

    let failed = ctx.stats.lock().map(|s| s.failures.len()).unwrap_or(1);
    let deletes = std::mem::take(
        &mut *deletes
            .lock()
            .map_err(|_| MigrateError::Refused("delete list lock poisoned".into()))?,
    );
    if failed == 0 {
        for item in deletes {
            match quarantine(&ctx, &item).await {
                Ok(()) => ctx.stat(|s| s.quarantined.add(item.size)),
                Err(e) => ctx.stat(|s| {
                    s.failures.push(Failure {
                        path: item.path.clone(),
                        error: format!("quarantine: {e}"),
                    })
                }),
            }
        }
    } else {
        ctx.stat(|s| {
            for d in &deletes {
                s.dest_only_kept.add(d.size);
            }
        });
    }
    let mut stats = ctx
        .stats
        .lock()
        .map(|s| s.clone())
        .map_err(|_| MigrateError::Refused("stats lock poisoned".into()))?;
    stats.seconds = started.elapsed().as_secs_f64();
    Ok(stats)
}

/// Group durability of a local destination: every file this run wrote, and their
/// directories, fsync'd at once before the run reports anything.
async fn durable_local(ctx: &Ctx) -> Result<()> {
    if let Some(l) = &ctx.dst.backend.local {
        l.sync_deferred()
            .await
            .map_err(|source| MigrateError::Object {
                op: "fsync",
                path: ctx.dst.url.to_string(),
                source,
            })?;
    }
    Ok(())
}
