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
use shh_store::{Backend, Put, RawError, S3Raw, StoreUrl};
use shh_task::Task;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const MIB: u64 = 1024 * 1024;
/// Objects at least this large stream in signed chunks where the destination checks them,
/// instead of being held whole.
const STREAM_MIN: u64 = 8 * MIB;
/// Chunk of a chunk-signed upload.
const STREAM_CHUNK: usize = MIB as usize;
/// Piece in which streamed reads take a local file.
const PIECE: usize = shh_store::READ_PIECE;

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

/// How an object is verified after it is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VerifyMode {
    /// The service's check of every signed body on receipt where it makes one (probed), a
    /// read-back elsewhere.
    Auto,
    /// Read it back and compare its BLAKE3 with the source's.
    ReadBack,
    /// Compare sizes only.
    Size,
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
    ReadBack,
    Size,
}

/// How to run.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Options {
    /// Objects in flight.
    pub transfers: usize,
    /// Objects at least this large go part by part.
    pub multipart_threshold: u64,
    /// Preferred part size (raised to respect the destination's part limits).
    pub part_size: u64,
    /// Parts of one object in flight.
    pub part_concurrency: usize,
    /// Bytes of source data buffered at once over all transfers (whole small objects and
    /// parts): memory stays bounded however large the objects in flight are.
    pub buffer: u64,
    /// Bytes per second over all transfers.
    pub bwlimit: Option<u64>,
    /// Verification after writing.
    pub verify: VerifyMode,
    /// Attempts per request before an object fails.
    pub max_attempts: u32,
    /// Stop starting new objects after this many failures.
    pub max_failures: usize,
    /// Quarantine and delete destination-only objects.
    pub delete: bool,
    /// Names the quarantine folder.
    pub run_id: String,
    /// The plan's prefix: what an interrupted earlier run left is cleaned up only under it
    /// (another plan of the same stores may still resume its own).
    pub scope: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            transfers: 32,
            multipart_threshold: 128 * MIB,
            part_size: 8 * MIB,
            part_concurrency: 8,
            buffer: 512 * MIB,
            bwlimit: None,
            verify: VerifyMode::Auto,
            max_attempts: 6,
            max_failures: 100,
            delete: false,
            run_id: uuid::Uuid::new_v4().to_string(),
            scope: None,
        }
    }
}

/// An object that could not be migrated.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Failure {
    /// The object.
    pub path: String,
    /// Why.
    pub error: String,
}

/// What a run did.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct RunStats {
    /// Copied (absent before).
    pub copied: Tally,
    /// Replaced (different size before).
    pub replaced: Tally,
    /// Left alone (same size).
    pub same: Tally,
    /// Compared by content and found equal.
    pub checked_equal: Tally,
    /// Found already written (by an earlier, interrupted run) and verified.
    pub already_there: Tally,
    /// Destination-only objects quarantined and deleted.
    pub quarantined: Tally,
    /// Destination-only objects left in place.
    pub dest_only_kept: Tally,
    /// Listed empty, then not found at the source: folder markers (keys ending in `/`, which
    /// list without the slash and cannot be addressed) or empty objects deleted since listing.
    /// Nothing to copy either way.
    pub empty_gone: Tally,
    /// The first [`NAMES_KEPT`] of them.
    pub empty_gone_names: Vec<String>,
    /// Objects whose bytes this run sent in chunk-signed requests, streamed from the source
    /// (whole, or part by part); the rest went in requests signed whole.
    pub chunk_signed: Tally,
    /// Bytes written to the destination.
    pub bytes_sent: u64,
    /// Bytes read back for verification.
    pub bytes_read_back: u64,
    /// Parts of interrupted uploads that were not sent again.
    pub parts_resumed: u64,
    /// Staging files a killed earlier run left at a local destination, removed (count, bytes).
    pub staging_removed: Tally,
    /// Multipart uploads an earlier run left open and no object took up, aborted.
    pub uploads_aborted: u64,
    /// Their bytes.
    pub bytes_resumed: u64,
    /// Requests retried.
    pub retries: u64,
    /// Objects that failed.
    pub failures: Vec<Failure>,
    /// Wall time.
    pub seconds: f64,
    /// Verification used.
    pub verification: String,
}

/// The error of one object's attempt.
#[derive(Debug)]
enum ObjErr {
    Store(&'static str, object_store::Error),
    /// A request shh signs itself (chunk-signed uploads).
    Raw(&'static str, RawError),
    /// The bytes at the destination are not the source's.
    Mismatch(String),
    /// The source changed since it was listed.
    Changed(String),
    /// The destination holds another object under this name.
    Conflict(String),
    Journal(MigrateError),
}

impl ObjErr {
    fn retriable(&self) -> bool {
        use object_store::Error as E;
        match self {
            ObjErr::Store(_, e) => !matches!(
                e,
                E::NotFound { .. }
                    | E::AlreadyExists { .. }
                    | E::Precondition { .. }
                    | E::NotSupported { .. }
                    | E::NotImplemented { .. }
                    | E::PermissionDenied { .. }
                    | E::Unauthenticated { .. }
                    | E::InvalidPath { .. }
                    | E::UnknownConfigurationKey { .. }
            ),
            ObjErr::Raw(_, e) => e.retriable(),
            ObjErr::Mismatch(_) => true,
            ObjErr::Changed(_) | ObjErr::Conflict(_) | ObjErr::Journal(_) => false,
        }
    }

    fn not_found(&self) -> bool {
        matches!(self, ObjErr::Store(_, object_store::Error::NotFound { .. }))
    }
}

impl std::fmt::Display for ObjErr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ObjErr::Store(op, e) => write!(f, "{op}: {e}"),
            ObjErr::Raw(op, e) => write!(f, "{op}: {e}"),
            ObjErr::Mismatch(s) => write!(f, "verification failed: {s}"),
            ObjErr::Changed(s) => write!(f, "source changed during the run: {s}"),
            ObjErr::Conflict(s) => write!(f, "{s}"),
            ObjErr::Journal(e) => write!(f, "journal: {e}"),
        }
    }
}

fn st(op: &'static str) -> impl FnOnce(object_store::Error) -> ObjErr {
    move |e| ObjErr::Store(op, e)
}

/// A token bucket shared by all transfers.
#[derive(Debug)]
struct Bandwidth {
    rate: f64,
    start: Instant,
    taken: AtomicU64,
}

impl Bandwidth {
    async fn take(&self, n: u64) {
        let total = self.taken.fetch_add(n, Ordering::Relaxed) + n;
        let due = self.start + Duration::from_secs_f64(total as f64 / self.rate);
        tokio::time::sleep_until(due.into()).await;
    }
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

    /// Reserves `bytes` of the buffer budget (an object larger than the whole budget takes
    /// all of it, and so goes alone).
    async fn hold(&self, bytes: u64) -> Result<tokio::sync::SemaphorePermit<'_>, ObjErr> {
        let kib = u32::try_from(bytes.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .clamp(1, self.memory_kib);
        self.memory
            .acquire_many(kib)
            .await
            .map_err(|_| ObjErr::Conflict("the buffer budget was closed".into()))
    }

    /// How to verify an object this run sent as `sent`.
    fn check(&self, sent: Sent) -> Check {
        let caps = &self.dst.caps;
        let checked = match sent {
            Sent::Not => false,
            Sent::Signed => caps.payload_sha256_checked == Some(true),
            Sent::Chunked => caps.chunk_signatures_checked == Some(true),
        };
        match self.opts.verify {
            VerifyMode::Auto if checked => Check::OnReceipt,
            VerifyMode::Auto | VerifyMode::ReadBack => Check::ReadBack,
            VerifyMode::Size => Check::Size,
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
        let cap_ms = (100u64 << attempt.min(6)).min(5_000);
        let ms = rand::random_range(cap_ms / 4..=cap_ms);
        tokio::time::sleep(Duration::from_millis(ms)).await;
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
                Err(e) if e.retriable() && attempt + 1 < self.opts.max_attempts => {
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
        Check::Size => "size only (run `shh migrate verify` for hashes)",
    };
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
        ctx.journal.sync()?;
        return Err(MigrateError::Cancelled);
    }
    if !ctx.stop.load(Ordering::Relaxed) {
        abort_untaken_uploads(&ctx).await?;
    }
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

/// What earlier runs of this journal left at a local destination: the staging files of writes
/// killed before they were verified. Names the journal does not list are never touched.
fn remove_left_staging(ctx: &Ctx) -> Result<()> {
    let Some(root) = ctx.dst.url.local_path() else {
        return Ok(());
    };
    for name in ctx.journal.started_not_done() {
        if !ctx.in_scope(name) {
            continue;
        }
        let freed = shh_store::remove_staged(&root, name).map_err(|e| {
            MigrateError::Refused(format!(
                "removing what an interrupted run left of {name}: {e}"
            ))
        })?;
        ctx.journal.cleaned(name)?;
        if freed > 0 {
            ctx.stat(|s| s.staging_removed.add(freed));
        }
    }
    Ok(())
}

/// Multipart uploads an earlier run started and no object of this (complete) run took up —
/// the object was finished otherwise, or left the plan — are aborted at the service, which
/// would otherwise keep (and bill) their parts for ever.
async fn abort_untaken_uploads(ctx: &Ctx) -> Result<()> {
    let Some(mp) = ctx.dst.backend.multipart.clone() else {
        return Ok(());
    };
    for (name, id) in ctx.journal.untaken_uploads() {
        if !ctx.in_scope(&name) {
            continue;
        }
        let Ok(p) = listed(&name) else { continue };
        match mp.abort_multipart(&p, &id).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {
                ctx.journal.upload_ended(&name)?;
                ctx.stat(|s| s.uploads_aborted += 1);
            }
            // Kept in the journal: the next run tries again.
            Err(_) => {}
        }
    }
    Ok(())
}

/// The object a listed name addresses. Listings give names as the service stores them, and
/// `Path::from` would percent-encode some characters (non-ASCII, `~`, `%`, `?`…), addressing
/// another object: a source key `données/é.bin` would be read as `donn%C3%A9es/%C3%A9.bin`.
fn listed(name: &str) -> Result<Path, ObjErr> {
    Path::parse(name)
        .map_err(|source| ObjErr::Store("name", object_store::Error::InvalidPath { source }))
}

async fn object(ctx: &Ctx, item: &Item) -> Result<(), ObjErr> {
    let p = listed(&item.path)?;
    match item.action {
        Action::Check => {
            let (a, b) = futures::try_join!(
                hash_object(ctx, ctx.src.store(), &p, false),
                hash_object(ctx, ctx.dst.store(), &p, true)
            )?;
            if a == b {
                ctx.stat(|s| s.checked_equal.add(item.size));
                return Ok(());
            }
            copy(ctx, item, &p, true).await?;
            ctx.stat(|s| s.replaced.add(item.size));
        }
        Action::Replace => {
            copy(ctx, item, &p, true).await?;
            ctx.stat(|s| s.replaced.add(item.size));
        }
        Action::Copy => match copy(ctx, item, &p, false).await {
            Ok(true) => ctx.stat(|s| s.already_there.add(item.size)),
            Ok(false) => ctx.stat(|s| s.copied.add(item.size)),
            Err(e) if item.size == 0 && e.not_found() && gone(ctx, &p).await => ctx.stat(|s| {
                s.empty_gone.add(0);
                if s.empty_gone_names.len() < NAMES_KEPT {
                    s.empty_gone_names.push(item.path.clone());
                }
            }),
            Err(e) => return Err(e),
        },
        Action::Same | Action::DestOnly => {}
    }
    Ok(())
}

/// Names of empty objects gone from the source kept in the run's report.
pub const NAMES_KEPT: usize = 100;

/// Whether the source says `p` does not exist (and not merely that a request failed).
async fn gone(ctx: &Ctx, p: &Path) -> bool {
    matches!(
        ctx.src.store().head(p).await,
        Err(object_store::Error::NotFound { .. })
    )
}

/// Copies and verifies one object; true when it was already there (and verified).
async fn copy(ctx: &Ctx, item: &Item, p: &Path, overwrite: bool) -> Result<bool, ObjErr> {
    if ctx.dst.url.local_path().is_some() {
        // A kill from here to `done` may leave staging files: the next run removes them.
        ctx.journal.started(&item.path).map_err(ObjErr::Journal)?;
    }
    if item.size >= ctx.opts.multipart_threshold {
        let digest = match ctx.dst.backend.multipart.clone() {
            Some(mp) => copy_resumable(ctx, item, p, mp.as_ref()).await?,
            None => copy_streamed(ctx, item, p).await?,
        };
        ctx.journal
            .done(&item.path, item.size, &digest)
            .map_err(ObjErr::Journal)?;
        return Ok(false);
    }
    let create = !overwrite && ctx.dst.caps.conditional_create == Some(true);
    let force = AtomicBool::new(false);
    // Bytes of a streamed object the progress bar has shown: a retry shows only what goes
    // beyond an earlier attempt.
    let shown = Arc::new(AtomicU64::new(0));
    let (sent, hash) = ctx
        .retry(|_| async {
            let create = create && !force.load(Ordering::Relaxed);
            let (sent, hash) = match ctx.chunked(item.size) {
                Some(raw) => put_chunked(ctx, raw, p, item.size, create, &shown).await?,
                None => put_whole(ctx, p, item.size, create).await?,
            };
            match verify_whole(ctx, p, item.size, &hash, sent).await {
                Ok(()) => Ok((sent, hash)),
                Err(ObjErr::Mismatch(m)) if sent == Sent::Not => Err(ObjErr::Conflict(format!(
                    "already at the destination with other content ({m}); not overwritten"
                ))),
                Err(e) => {
                    // What we wrote did not arrive intact: the next attempt replaces it.
                    force.store(true, Ordering::Relaxed);
                    Err(e)
                }
            }
        })
        .await?;
    ctx.journal
        .done(&item.path, item.size, &hash.to_hex())
        .map_err(ObjErr::Journal)?;
    Ok(sent == Sent::Not)
}

/// Reads the whole object, then writes it in one request signed with its SHA-256. The
/// buffer budget is held only until the bytes are sent (a read-back streams).
async fn put_whole(
    ctx: &Ctx,
    p: &Path,
    size: u64,
    create: bool,
) -> Result<(Sent, blake3::Hash), ObjErr> {
    let _held = ctx.hold(size).await?;
    let (chunks, hash) = read(ctx, ctx.src.store(), p, None, true).await?;
    let len: u64 = chunks.iter().map(|c| c.len() as u64).sum();
    if len != size {
        return Err(ObjErr::Changed(format!("{len} bytes, listed {size}")));
    }
    let mode = if create {
        PutMode::Create
    } else {
        PutMode::Overwrite
    };
    let payload: PutPayload = chunks.into_iter().collect();
    match ctx
        .dst
        .store()
        .put_opts(p, payload, PutOptions::from(mode))
        .await
    {
        Ok(_) => {
            ctx.sent(len);
            Ok((Sent::Signed, hash))
        }
        Err(object_store::Error::AlreadyExists { .. }) => Ok((Sent::Not, hash)),
        Err(e) => Err(ObjErr::Store("write", e)),
    }
}

/// Streams the object from the source to the destination in one upload whose every chunk is
/// signed, hashing it as it passes: a few chunks in memory however large the object. Progress
/// moves as the bytes pass (`shown` is what earlier attempts already showed).
async fn put_chunked(
    ctx: &Ctx,
    raw: &S3Raw,
    p: &Path,
    size: u64,
    create: bool,
    shown: &Arc<AtomicU64>,
) -> Result<(Sent, blake3::Hash), ObjErr> {
    let _held = ctx.hold(3 * PIECE as u64).await?;
    match stream_put(ctx, raw, p, 0..size, Put::Object { create }, shown).await {
        Ok((_, hash)) => {
            ctx.stat(|s| {
                s.bytes_sent += size;
                s.chunk_signed.add(size);
            });
            Ok((Sent::Chunked, hash))
        }
        // Refused before the body was read through: hash the source on its own.
        Err(RawError::Exists) => {
            let (len, hash) = hash_object(ctx, ctx.src.store(), p, false).await?;
            if len != size {
                return Err(ObjErr::Changed(format!("{len} bytes, listed {size}")));
            }
            Ok((Sent::Not, hash))
        }
        Err(e) => Err(raw_err(e)),
    }
}

/// Streams `range` of the source object into one chunk-signed PUT (`put`: the object, or one
/// part of an upload of it), hashing the bytes as they pass and moving the progress bar
/// (`shown`: what earlier attempts of the same bytes showed). Returns the service's ETag and
/// the BLAKE3 of the bytes sent. What it holds at most: three pieces of a local source.
async fn stream_put(
    ctx: &Ctx,
    raw: &S3Raw,
    p: &Path,
    range: std::ops::Range<u64>,
    put: Put<'_>,
    shown: &Arc<AtomicU64>,
) -> Result<(String, blake3::Hash), RawError> {
    let size = range.end - range.start;
    let whole = matches!(put, Put::Object { .. });
    let got = ctx
        .src
        .store()
        .get_opts(p, ranged((!whole).then(|| range.clone())))
        .await
        .map_err(RawError::Source)?;
    let got_len = got.range.end - got.range.start;
    if got_len != size {
        return Err(RawError::Length {
            got: got_len,
            want: size,
        });
    }
    let hasher = Arc::new(Mutex::new(blake3::Hasher::new()));
    let (h, bw) = (hasher.clone(), ctx.bw.clone());
    let (progress, shown_by_stream) = (ctx.task.clone(), shown.clone());
    let passed = Arc::new(AtomicU64::new(0));
    let source = shh_store::byte_stream(got, PIECE).and_then(move |b| {
        let (h, bw) = (h.clone(), bw.clone());
        let (progress, shown, passed) = (progress.clone(), shown_by_stream.clone(), passed.clone());
        async move {
            if let Some(bw) = bw {
                bw.take(b.len() as u64).await;
            }
            if let Ok(mut h) = h.lock() {
                h.update(&b);
            }
            let now = passed.fetch_add(b.len() as u64, Ordering::Relaxed) + b.len() as u64;
            let before = shown.fetch_max(now, Ordering::Relaxed);
            if now > before {
                progress.advance(now - before);
            }
            Ok(b)
        }
    });
    // Generous, so that only a stalled transfer times out: five minutes plus the bytes at
    // 256 KiB/s (or at the bandwidth limit, when lower).
    let rate = ctx
        .bw
        .as_ref()
        .map_or(256.0 * 1024.0, |b| b.rate.min(256.0 * 1024.0));
    let timeout = Duration::from_secs(300) + Duration::from_secs_f64(size as f64 / rate);
    let etag = raw
        .put_chunked(p.as_ref(), put, size, STREAM_CHUNK, source, timeout)
        .await?;
    let hash = hasher
        .lock()
        .map(|h| h.finalize())
        .map_err(|_| RawError::Transport("hasher lock poisoned".into()))?;
    Ok((etag, hash))
}

/// The error of a chunk-signed PUT, as the copy loop classifies it.
fn raw_err(e: RawError) -> ObjErr {
    match e {
        RawError::Length { got, want } => {
            ObjErr::Changed(format!("{got} bytes read, {want} expected"))
        }
        RawError::Source(e) => ObjErr::Store("read", e),
        e => ObjErr::Raw("write", e),
    }
}

/// Reads an object (or a range), hashing it, under the bandwidth limit when `limit`.
async fn read(
    ctx: &Ctx,
    store: &Arc<dyn ObjectStore>,
    p: &Path,
    range: Option<std::ops::Range<u64>>,
    limit: bool,
) -> Result<(Vec<Bytes>, blake3::Hash), ObjErr> {
    // Whole object (or part) in one call: on local disk that is one blocking read instead of
    // one thread hand-off per 8 KiB chunk; over HTTP it is the same stream, collected.
    let bytes = store
        .get_opts(p, ranged(range))
        .await
        .map_err(st("read"))?
        .bytes()
        .await
        .map_err(st("read"))?;
    if let Some(bw) = ctx.bw.as_ref().filter(|_| limit) {
        bw.take(bytes.len() as u64).await;
    }
    let mut hasher = blake3::Hasher::new();
    hasher.update(&bytes);
    let chunks = vec![bytes];
    Ok((chunks, hasher.finalize()))
}

/// GET options for `range`, or the whole object.
fn ranged(range: Option<std::ops::Range<u64>>) -> GetOptions {
    GetOptions {
        range: range.map(GetRange::Bounded),
        ..GetOptions::default()
    }
}

/// Hashes a whole object by streaming it (`read_back` counts it as verification traffic).
async fn hash_object(
    ctx: &Ctx,
    store: &Arc<dyn ObjectStore>,
    p: &Path,
    read_back: bool,
) -> Result<(u64, blake3::Hash), ObjErr> {
    ctx.retry(|_| async {
        let (len, hash) = blake3_of(store.as_ref(), p, None)
            .await
            .map_err(st("read"))?;
        if read_back {
            ctx.stat(|s| s.bytes_read_back += len);
        }
        Ok((len, hash))
    })
    .await
}

/// Length and BLAKE3 of an object (or of `range` of it), streamed.
pub async fn blake3_of(
    store: &dyn ObjectStore,
    p: &Path,
    range: Option<std::ops::Range<u64>>,
) -> object_store::Result<(u64, blake3::Hash)> {
    let got = store.get_opts(p, ranged(range)).await?;
    let mut stream = shh_store::byte_stream(got, PIECE);
    let mut hasher = blake3::Hasher::new();
    let mut len = 0u64;
    while let Some(c) = stream.try_next().await? {
        len += c.len() as u64;
        hasher.update(&c);
    }
    Ok((len, hasher.finalize()))
}

async fn verify_whole(
    ctx: &Ctx,
    p: &Path,
    len: u64,
    hash: &blake3::Hash,
    sent: Sent,
) -> Result<(), ObjErr> {
    match ctx.check(sent) {
        Check::OnReceipt => {}
        Check::Size => {
            let meta = ctx.dst.store().head(p).await.map_err(st("verify"))?;
            if meta.size != len {
                return Err(ObjErr::Mismatch(format!("size {} != {len}", meta.size)));
            }
        }
        Check::ReadBack => {
            let (got_len, got) = hash_object(ctx, ctx.dst.store(), p, true).await?;
            if got_len != len {
                return Err(ObjErr::Mismatch(format!("size {got_len} != {len}")));
            }
            if &got != hash {
                return Err(ObjErr::Mismatch("BLAKE3 differs from the source's".into()));
            }
        }
    }
    Ok(())
}

/// The digest of a part-by-part object: BLAKE3 over its parts' BLAKE3s.
fn parts_digest(part_size: u64, parts: &[String]) -> String {
    let mut h = blake3::Hasher::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update(b"\n");
    }
    format!("parts:{part_size}:{}", h.finalize().to_hex())
}

fn part_range(i: usize, part_size: u64, size: u64) -> std::ops::Range<u64> {
    let start = i as u64 * part_size;
    start..(start + part_size).min(size)
}

/// Part by part through the service's multipart API, journalling the upload and every part.
async fn copy_resumable(
    ctx: &Ctx,
    item: &Item,
    p: &Path,
    mp: &dyn MultipartStore,
) -> Result<String, ObjErr> {
    let size = item.size;
    let ps = ctx.dst.caps.part_size(size, ctx.opts.part_size);
    let n = size.div_ceil(ps).max(1) as usize;
    // One fresh start is allowed when a journalled upload turns out to be gone at the service.
    for fresh in [false, true] {
        let mut upload = match ctx.journal.take_upload(&item.path) {
            Some(u) if !fresh && u.size == size && u.part_size == ps => {
                let bytes: u64 = u
                    .parts
                    .keys()
                    .map(|&i| part_range(i, ps, size).end - part_range(i, ps, size).start)
                    .sum();
                ctx.stat(|s| {
                    s.parts_resumed += u.parts.len() as u64;
                    s.bytes_resumed += bytes;
                });
                ctx.task.advance(bytes);
                u
            }
            old => {
                if let Some(u) = old {
                    let _ = mp.abort_multipart(p, &u.id).await;
                    ctx.journal
                        .upload_ended(&item.path)
                        .map_err(ObjErr::Journal)?;
                }
                let id = ctx
                    .retry(|_| async { mp.create_multipart(p).await.map_err(st("start upload")) })
                    .await?;
                ctx.journal
                    .upload_started(&item.path, size, ps, &id)
                    .map_err(ObjErr::Journal)?;
                crate::journal::OpenUpload {
                    size,
                    part_size: ps,
                    id,
                    parts: Default::default(),
                }
            }
        };
        let resumed = !upload.parts.is_empty();
        // Parts stream in signed chunks where the service takes them, like whole objects.
        let chunked_parts = ctx.chunked_uploads();
        let missing: Vec<usize> = (0..n).filter(|i| !upload.parts.contains_key(i)).collect();
        let id = upload.id.clone();
        let results: Vec<Result<(usize, String, String), ObjErr>> = futures::stream::iter(missing)
            .map(|i| {
                let id = &id;
                async move {
                    let range = part_range(i, ps, size);
                    let want = range.end - range.start;
                    let shown = Arc::new(AtomicU64::new(0));
                    let (pid, hash) = ctx
                        .retry(|_| {
                            let (range, shown) = (range.clone(), shown.clone());
                            async move {
                                let _budget = ctx.parts.acquire().await.map_err(|_| {
                                    ObjErr::Conflict("the part budget was closed".into())
                                })?;
                                if let Some(raw) = chunked_parts {
                                    let _held = ctx.hold(want.min(3 * PIECE as u64)).await?;
                                    let number = i + 1; // object_store's numbering
                                    let put = Put::Part {
                                        upload_id: id,
                                        number,
                                    };
                                    let (etag, hash) = stream_put(ctx, raw, p, range, put, &shown)
                                        .await
                                        .map_err(raw_err)?;
                                    ctx.stat(|s| s.bytes_sent += want);
                                    return Ok((PartId { content_id: etag }, hash));
                                }
                                let _held = ctx.hold(want).await?;
                                let (chunks, hash) =
                                    read(ctx, ctx.src.store(), p, Some(range), true).await?;
                                let len: u64 = chunks.iter().map(|c| c.len() as u64).sum();
                                if len != want {
                                    return Err(ObjErr::Changed(format!(
                                        "part {i}: {len} bytes, expected {want}"
                                    )));
                                }
                                let payload: PutPayload = chunks.into_iter().collect();
                                let pid = mp
                                    .put_part(p, id, i, payload)
                                    .await
                                    .map_err(st("upload part"))?;
                                ctx.sent(len);
                                Ok((pid, hash))
                            }
                        })
                        .await?;
                    let hash = hash.to_hex().to_string();
                    ctx.journal
                        .part_done(&item.path, i, &pid.content_id, &hash)
                        .map_err(ObjErr::Journal)?;
                    Ok((i, pid.content_id, hash))
                }
            })
            .buffer_unordered(ctx.opts.part_concurrency.max(1))
            .collect()
            .await;
        let mut gone = false;
        for r in results {
            match r {
                Ok((i, e, h)) => {
                    upload.parts.insert(i, (e, h));
                }
                Err(e) if e.not_found() && !fresh => gone = true,
                Err(e) => return Err(e),
            }
        }
        if gone {
            continue;
        }
        let parts: Vec<PartId> = upload
            .parts
            .values()
            .map(|(e, _)| PartId {
                content_id: e.clone(),
            })
            .collect();
        let hashes: Vec<String> = upload.parts.values().map(|(_, h)| h.clone()).collect();
        let done = ctx
            .retry(|_| async {
                mp.complete_multipart(p, &id, parts.clone())
                    .await
                    .map_err(st("complete upload"))
            })
            .await;
        match done {
            Ok(_) => {}
            Err(e) if e.not_found() && !fresh => {
                // The service forgot the upload (expired or aborted): start again.
                continue;
            }
            Err(e) => return Err(e),
        }
        ctx.journal
            .upload_ended(&item.path)
            .map_err(ObjErr::Journal)?;
        let sent = match (resumed, chunked_parts) {
            (true, _) => Sent::Not,
            (false, Some(_)) => Sent::Chunked,
            (false, None) => Sent::Signed,
        };
        if sent == Sent::Chunked {
            ctx.stat(|s| s.chunk_signed.add(size));
        }
        match verify_parts(ctx, p, size, ps, &hashes, sent).await {
            Ok(()) => return Ok(parts_digest(ps, &hashes)),
            // A part taken over from an earlier run did not hold what its journal line says:
            // send the whole object once more, part by part, from the source.
            Err(ObjErr::Mismatch(_)) if resumed && !fresh => continue,
            Err(e) => return Err(e),
        }
    }
    Err(ObjErr::Conflict(
        "the multipart upload was lost twice at the service".into(),
    ))
}

/// Part by part through `put_multipart` (no resume: used where the service has no multipart
/// API, such as local disk).
async fn copy_streamed(ctx: &Ctx, item: &Item, p: &Path) -> Result<String, ObjErr> {
    let size = item.size;
    let ps = ctx.dst.caps.part_size(size, ctx.opts.part_size);
    let n = size.div_ceil(ps).max(1) as usize;
    let hashes = ctx
        .retry(|_| async {
            let mut up = ctx
                .dst
                .store()
                .put_multipart(p)
                .await
                .map_err(st("start upload"))?;
            let mut hashes = Vec::with_capacity(n);
            for i in 0..n {
                let range = part_range(i, ps, size);
                let want = range.end - range.start;
                let _held = ctx.hold(want).await?;
                let r = read(ctx, ctx.src.store(), p, Some(range), true).await;
                let (chunks, hash) = match r {
                    Ok(v) => v,
                    Err(e) => {
                        let _ = up.abort().await;
                        return Err(e);
                    }
                };
                let len: u64 = chunks.iter().map(|c| c.len() as u64).sum();
                if len != want {
                    let _ = up.abort().await;
                    return Err(ObjErr::Changed(format!(
                        "part {i}: {len} bytes, expected {want}"
                    )));
                }
                if let Err(e) = up.put_part(chunks.into_iter().collect()).await {
                    let _ = up.abort().await;
                    return Err(ObjErr::Store("write part", e));
                }
                ctx.sent(len);
                hashes.push(hash.to_hex().to_string());
            }
            up.complete().await.map_err(st("complete upload"))?;
            verify_parts(ctx, p, size, ps, &hashes, Sent::Signed).await?;
            Ok(hashes)
        })
        .await?;
    Ok(parts_digest(ps, &hashes))
}

/// Reads the destination object back and checks every part's BLAKE3.
async fn verify_parts(
    ctx: &Ctx,
    p: &Path,
    size: u64,
    ps: u64,
    hashes: &[String],
    sent: Sent,
) -> Result<(), ObjErr> {
    let check = ctx.check(sent);
    if check == Check::OnReceipt {
        return Ok(());
    }
    if check == Check::Size {
        let meta = ctx.dst.store().head(p).await.map_err(st("verify"))?;
        if meta.size != size {
            return Err(ObjErr::Mismatch(format!("size {} != {size}", meta.size)));
        }
        return Ok(());
    }
    // The size first (a truncated or extended object fails here), then every part by a ranged
    // read of its own, several at once, each hashed as it streams.
    let meta = ctx.dst.store().head(p).await.map_err(st("verify"))?;
    if meta.size != size {
        return Err(ObjErr::Mismatch(format!("size {} != {size}", meta.size)));
    }
    let n = size.div_ceil(ps).max(1) as usize;
    if n != hashes.len() {
        return Err(ObjErr::Mismatch(format!(
            "{n} parts expected, {} written",
            hashes.len()
        )));
    }
    let mut checks = futures::stream::iter(0..n)
        .map(|i| async move {
            let range = part_range(i, ps, size);
            let (len, hash) = blake3_of(ctx.dst.store().as_ref(), p, Some(range.clone()))
                .await
                .map_err(st("verify"))?;
            ctx.stat(|s| s.bytes_read_back += len);
            if len != range.end - range.start || hash.to_hex().as_str() != hashes[i] {
                return Err(ObjErr::Mismatch(format!(
                    "part {i} BLAKE3 differs from the source's"
                )));
            }
            Ok(())
        })
        .buffer_unordered(ctx.opts.part_concurrency.max(1));
    while let Some(r) = checks.next().await {
        r?;
    }
    Ok(())
}

/// Copies a destination-only object into the quarantine prefix, then deletes it.
async fn quarantine(ctx: &Ctx, item: &Item) -> Result<(), ObjErr> {
    let p = listed(&item.path)?;
    let q = listed(&format!(
        ".shh-quarantine/{}/{}",
        ctx.opts.run_id, item.path
    ))?;
    ctx.retry(|_| async {
        ctx.dst
            .store()
            .copy(&p, &q)
            .await
            .map_err(st("quarantine copy"))
    })
    .await?;
    let meta = ctx
        .dst
        .store()
        .head(&q)
        .await
        .map_err(st("quarantine check"))?;
    if meta.size != item.size {
        return Err(ObjErr::Mismatch(format!(
            "quarantined copy has {} bytes, not {}",
            meta.size, item.size
        )));
    }
    ctx.retry(|_| async { ctx.dst.store().delete(&p).await.map_err(st("delete")) })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    use object_store::memory::InMemory;

    fn side(store: Arc<InMemory>) -> Side {
        let url = StoreUrl::parse("memory://").expect("url");
        let mut caps = Capabilities::unprobed("memory://");
        caps.conditional_create = Some(true);
        caps.min_part = 1;
        Side {
            url,
            backend: Backend {
                s3: None,
                store: store.clone(),
                multipart: Some(store),
            },
            caps,
        }
    }

    fn item(path: &str, action: Action, size: u64) -> Result<Item> {
        Ok(Item {
            path: path.into(),
            action,
            size,
            dst_size: None,
        })
    }

    /// Runs `items` from `a` to `b` without progress output.
    async fn run(
        items: Vec<Result<Item>>,
        a: Arc<InMemory>,
        b: Arc<InMemory>,
        journal: Arc<Journal>,
        opts: Options,
    ) -> RunStats {
        execute(
            items.into_iter(),
            side(a),
            side(b),
            journal,
            opts,
            Task::silent(),
        )
        .await
        .expect("run")
    }

    /// Small and part-by-part copies arrive intact; an object that appeared at the
    /// destination with other content is reported, never overwritten; a journalled upload's
    /// finished parts are not sent again.
    #[tokio::test]
    async fn copies_are_verified_conflicts_kept_and_uploads_resumed() {
        let (a, b) = (Arc::new(InMemory::new()), Arc::new(InMemory::new()));
        let big: Vec<u8> = (0..655_360u32).flat_map(|i| i.to_le_bytes()).collect();
        let ps = MIB as usize;
        a.put(&Path::from("big"), PutPayload::from(big.clone()))
            .await
            .expect("put");
        a.put(&Path::from("small"), PutPayload::from_static(b"hello"))
            .await
            .expect("put");
        a.put(&Path::from("clash"), PutPayload::from_static(b"source"))
            .await
            .expect("put");
        b.put(&Path::from("clash"), PutPayload::from_static(b"theirs"))
            .await
            .expect("put");

        // A crashed earlier run: an upload of "big" (2.5 MiB) with part 0 of 1 MiB done.
        let mp: &dyn MultipartStore = b.as_ref();
        let id = mp.create_multipart(&Path::from("big")).await.expect("mpu");
        let p0 = mp
            .put_part(
                &Path::from("big"),
                &id,
                0,
                PutPayload::from(big[..ps].to_vec()),
            )
            .await
            .expect("part");
        let dir = tempfile::tempdir().expect("tmp");
        let journal = Arc::new(Journal::open(&dir.path().join("j")).expect("journal"));
        journal
            .upload_started("big", big.len() as u64, MIB, &id)
            .expect("j");
        let h0 = blake3::hash(&big[..ps]).to_hex().to_string();
        journal.part_done("big", 0, &p0.content_id, &h0).expect("j");
        drop(journal);
        let journal = Arc::new(Journal::open(&dir.path().join("j")).expect("journal"));

        let opts = Options {
            multipart_threshold: 1000,
            part_size: MIB,
            max_attempts: 2,
            ..Options::default()
        };
        let items = vec![
            item("big", Action::Copy, big.len() as u64),
            item("clash", Action::Copy, 6),
            item("small", Action::Copy, 5),
        ];
        let stats = run(items, a, b.clone(), journal, opts).await;
        assert_eq!(stats.parts_resumed, 1, "{stats:?}");
        assert_eq!(stats.bytes_sent, big.len() as u64 - MIB + 5, "{stats:?}");
        assert_eq!(
            b.get(&Path::from("big"))
                .await
                .expect("big")
                .bytes()
                .await
                .expect("b")
                .as_ref(),
            &big[..]
        );
        assert_eq!(stats.failures.len(), 1, "{stats:?}");
        assert_eq!(stats.failures[0].path, "clash");
        assert!(
            stats.failures[0].error.contains("not overwritten"),
            "{stats:?}"
        );
        assert_eq!(
            b.get(&Path::from("clash"))
                .await
                .expect("c")
                .bytes()
                .await
                .expect("b")
                .as_ref(),
            b"theirs"
        );
    }

    /// A folder marker (`dir/` on S3) lists as an empty `dir` that no request finds: counted
    /// and named, not a failure. An object with bytes that vanished is still a failure.
    #[tokio::test]
    async fn empty_objects_gone_from_the_source_are_counted_not_failed() {
        let (a, b) = (Arc::new(InMemory::new()), Arc::new(InMemory::new()));
        a.put(&Path::from("dir/inside"), PutPayload::from_static(b"x"))
            .await
            .expect("put");
        let dir = tempfile::tempdir().expect("tmp");
        let journal = Arc::new(Journal::open(&dir.path().join("j")).expect("journal"));
        let items = vec![
            item("dir", Action::Copy, 0),
            item("dir/inside", Action::Copy, 1),
            item("vanished", Action::Copy, 7),
        ];
        let opts = Options {
            max_attempts: 1,
            ..Options::default()
        };
        let stats = run(items, a, b.clone(), journal, opts).await;
        assert_eq!(stats.empty_gone.objects, 1, "{stats:?}");
        assert_eq!(stats.empty_gone_names, ["dir"], "{stats:?}");
        assert_eq!(stats.copied.objects, 1, "{stats:?}");
        let failed: Vec<&str> = stats.failures.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(failed, ["vanished"], "{stats:?}");
        assert!(
            b.head(&Path::from("dir")).await.is_err(),
            "nothing written for the marker"
        );
    }

    proptest::proptest! {
        /// Any name a listing can give (segments of any printable characters, `é ~ % ? [`
        /// included) addresses itself, so reads and writes go to the object that was listed.
        #[test]
        fn listed_names_address_themselves(
            segments in proptest::collection::vec("[^/\\p{Cc}]{1,12}", 1..5)
        ) {
            let name = segments.join("/");
            proptest::prop_assume!(segments.iter().all(|s| s != "." && s != ".."));
            let p = listed(&name).map_err(|e| proptest::test_runner::TestCaseError::fail(e.to_string()))?;
            proptest::prop_assert_eq!(p.as_ref(), name.as_str());
        }
    }

    #[test]
    fn part_ranges_cover_the_object_exactly() {
        let size = 10 * MIB + 3;
        let ps = 4 * MIB;
        let n = size.div_ceil(ps) as usize;
        let mut next = 0;
        for i in 0..n {
            let r = part_range(i, ps, size);
            assert_eq!(r.start, next);
            next = r.end;
        }
        assert_eq!(next, size);
    }

    #[test]
    fn only_transient_errors_are_retried() {
        let gone = ObjErr::Store(
            "read",
            object_store::Error::NotFound {
                path: "x".into(),
                source: "gone".into(),
            },
        );
        assert!(!gone.retriable());
        let flaky = ObjErr::Store(
            "read",
            object_store::Error::Generic {
                store: "S3",
                source: "connection reset".into(),
            },
        );
        assert!(flaky.retriable());
        assert!(ObjErr::Mismatch("x".into()).retriable());
        assert!(!ObjErr::Changed("x".into()).retriable());
    }
}
