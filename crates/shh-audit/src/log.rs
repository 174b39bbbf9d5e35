//! The log as stored in the hub's (encrypted) object store, and its writer.
//!
//! Layout, all objects create-only:
//! - `audit/log/<first seq, 20 digits>.ndjson`: a segment, one batch of canonical events;
//! - `audit/heads/<size, 20 digits>.json`: the signed tree head after that batch, with the
//!   Merkle frontier so that the next writer resumes without re-reading the log;
//!
//! **Group commit.** [`AuditLog::append`] queues the event; whoever holds the writer lock takes
//! the whole queue, writes it as one segment (one durable object write) and answers every
//! waiter. An append returns only once its segment is stored: the event is durable before the
//! action's result is. Every batch gets a signed head: at once when no append is waiting, or
//! else stored in parallel with the next batch's segment, so that a busy log pays one round of
//! durable writes per batch, not two.
//!
//! **Crash safety.** A segment put is atomic, so a crash leaves either the whole batch or none
//! of it; sequence numbers are assigned from the stored log, so no gap can appear. A segment
//! whose head was not yet written is signed by the next writer that opens the log. Two
//! processes appending at once race on the create-only segment name; the loser reads the
//! winner's segment and renumbers its batch after it.

use crate::event::{Actor, Draft, Event, EventError, Rendered};
use crate::merkle::{Frontier, Hash, inclusion_proof, leaf_hash};
use crate::sth::{PublicKey, SignedTreeHead, Signer};
use crate::verify::{Verifier, VerifyReport};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tokio::sync::oneshot;

const LOG_PREFIX: &str = "audit/log";
const HEAD_PREFIX: &str = "audit/heads";
/// Create-only races lost in a row before giving up (another writer appending without pause).
const MAX_RACES: usize = 64;

/// Errors of the audit log.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The store failed.
    #[error("audit log object {path}: {source}")]
    Store {
        /// The object.
        path: String,
        /// The error.
        source: object_store::Error,
    },
    /// The stored log is inconsistent where the writer needs it.
    #[error("audit log is damaged at event {seq} ({path}): {reason}; run `shh audit verify`")]
    Corrupt {
        /// The object.
        path: String,
        /// The first affected sequence number.
        seq: u64,
        /// What is wrong.
        reason: String,
    },
    /// An event cannot be built.
    #[error(transparent)]
    Event(#[from] EventError),
    /// The append did not become durable; the action must not report success.
    #[error("audit event not recorded: {0}")]
    Append(String),
    /// No such event.
    #[error("no event {seq}: the signed log has {size} events")]
    NoSuchEvent {
        /// Asked for.
        seq: u64,
        /// Log size.
        size: u64,
    },
    /// No signed head of that size.
    #[error("no signed head for size {0}")]
    NoSuchHead(u64),
    /// Local files (an export being verified).
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The caller's sink (an export) refused or failed.
    #[error(transparent)]
    Sink(#[from] shh_sink::SinkError),
}

/// Result alias.
pub type Result<T, E = AuditError> = std::result::Result<T, E>;

fn store_err(path: &Path) -> impl FnOnce(object_store::Error) -> AuditError + '_ {
    move |source| AuditError::Store {
        path: path.to_string(),
        source,
    }
}

fn seg_path(first: u64) -> Path {
    Path::from(format!("{LOG_PREFIX}/{first:020}.ndjson"))
}

fn head_path(size: u64) -> Path {
    Path::from(format!("{HEAD_PREFIX}/{size:020}.json"))
}

fn number_in(path: &Path, prefix: &str, suffix: &str) -> Option<u64> {
    let s = path.as_ref().strip_prefix(prefix)?.strip_prefix('/')?;
    let n = s.strip_suffix(suffix)?;
    (n.len() == 20 && n.bytes().all(|b| b.is_ascii_digit()))
        .then(|| n.parse().ok())
        .flatten()
}

/// A head as stored: the signed head and the frontier it was computed from.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct HeadRecord {
    sth: SignedTreeHead,
    frontier: Vec<String>,
}

struct Pending {
    event: Rendered,
    tx: oneshot::Sender<Result<u64, String>>,
}

struct State {
    frontier: Frontier,
    signed: u64,
}

/// Selects events for `shh audit log` (and the body of the server's query).
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
#[serde(default)]
pub struct EventFilter {
    /// At or after.
    pub since: Option<DateTime<Utc>>,
    /// Before.
    pub until: Option<DateTime<Utc>>,
    /// Exact actor.
    pub actor: Option<String>,
    /// Exact action, or a prefix ending in `*` (`dataset.*`).
    pub action: Option<String>,
}

impl EventFilter {
    /// Whether `e` is selected.
    pub fn matches(&self, e: &Event) -> bool {
        self.since.is_none_or(|t| e.time >= t)
            && self.until.is_none_or(|t| e.time < t)
            && self.actor.as_ref().is_none_or(|a| *a == e.actor)
            && self
                .action
                .as_ref()
                .is_none_or(|a| match a.strip_suffix('*') {
                    Some(prefix) => e.action.starts_with(prefix),
                    None => *a == e.action,
                })
    }
}

/// An inclusion proof, in the terms of RFC 6962 / RFC 9162.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InclusionProof {
    /// The event's sequence number (= leaf index).
    pub leaf_index: u64,
    /// Tree size the proof is for.
    pub tree_size: u64,
    /// The event's canonical JSON, exactly the leaf input.
    pub event: String,
    /// `SHA-256(0x00 ‖ event)`, hex.
    pub leaf_hash: String,
    /// Audit path, hex, bottom up.
    pub audit_path: Vec<String>,
    /// Root for `tree_size`, hex.
    pub root: String,
    /// The signed head that commits to `root`.
    pub head: SignedTreeHead,
}

/// What an export wrote.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct ExportSummary {
    /// Where the copy is (for a local directory, its path).
    pub out: String,
    /// Events.
    pub events: u64,
    /// Signed heads.
    pub heads: u64,
    /// Fingerprint of the signing key.
    pub key: String,
}

/// The hub's audit log.
pub struct AuditLog {
    store: Arc<dyn ObjectStore>,
    hub: String,
    signer: Signer,
    queue: std::sync::Mutex<Vec<Pending>>,
    state: tokio::sync::Mutex<State>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AuditLog({}, {:?})", self.hub, self.signer)
    }
}

impl AuditLog {
    /// Opens the log in `store` (the hub's encrypted store), resuming after its last event
    /// and signing any events a crash left without a head.
    pub async fn open(store: Arc<dyn ObjectStore>, hub: &str, signer: Signer) -> Result<Self> {
        let log = AuditLog {
            store,
            hub: hub.to_owned(),
            signer,
            queue: std::sync::Mutex::new(Vec::new()),
            state: tokio::sync::Mutex::new(State {
                frontier: Frontier::new(),
                signed: 0,
            }),
        };
        {
            let mut st = log.state.lock().await;
            log.load(&mut st).await?;
            if st.frontier.size() > st.signed {
                log.publish(&mut st).await?;
            }
        }
        Ok(log)
    }

    /// The public key auditors verify heads with.
    pub fn public_key(&self) -> PublicKey {
        self.signer.public()
    }

    /// The hub id events are bound to.
    pub fn hub(&self) -> &str {
        &self.hub
    }

    /// Number of durable events.
    pub async fn size(&self) -> u64 {
        self.state.lock().await.frontier.size()
    }

    async fn load(&self, st: &mut State) -> Result<()> {
        // A full listing: offset listings (S3 start-after) are not answered consistently by
        // every S3 implementation (s3s-fs returns keys of other prefixes).
        let heads = self.head_sizes().await?;
        if let Some(&size) = heads.last() {
            let rec = self.read_head(size).await?;
            let corrupt = |reason: &str| AuditError::Corrupt {
                path: head_path(size).to_string(),
                seq: size,
                reason: reason.to_owned(),
            };
            let hashes: Option<Vec<Hash>> = rec
                .frontier
                .iter()
                .map(|h| hex::decode(h).ok()?.try_into().ok())
                .collect();
            let frontier = hashes
                .and_then(|h| Frontier::from_parts(size, h))
                .ok_or_else(|| corrupt("malformed frontier"))?;
            let root = rec
                .sth
                .verify(&[self.signer.public()])
                .map_err(|e| corrupt(&e.to_string()))?;
            if frontier.root() != root || rec.sth.head.size != size {
                return Err(corrupt("frontier does not match the signed head"));
            }
            st.frontier = frontier;
            st.signed = size;
        }
        self.catch_up(st).await
    }

    /// Folds in segments written after the frontier (by a crashed or concurrent writer).
    async fn catch_up(&self, st: &mut State) -> Result<()> {
        let size = st.frontier.size();
        let mut segs: Vec<(u64, Path)> = self
            .store
            .list(Some(&Path::from(LOG_PREFIX)))
            .try_filter_map(|m| async move {
                Ok(number_in(&m.location, LOG_PREFIX, ".ndjson")
                    .filter(|n| *n >= size)
                    .map(|n| (n, m.location)))
            })
            .try_collect()
            .await
            .map_err(store_err(&Path::from(LOG_PREFIX)))?;
        segs.sort();
        for (first, path) in segs {
            if first != st.frontier.size() {
                return Err(AuditError::Corrupt {
                    path: path.to_string(),
                    seq: st.frontier.size(),
                    reason: format!("segment starts at event {first}"),
                });
            }
            let body = self.read(&path).await?;
            for line in lines(&body) {
                st.frontier.push(leaf_hash(line));
            }
        }
        Ok(())
    }

    async fn read(&self, path: &Path) -> Result<Bytes> {
        let r = self.store.get(path).await.map_err(store_err(path))?;
        r.bytes().await.map_err(store_err(path))
    }

    async fn read_head(&self, size: u64) -> Result<HeadRecord> {
        let path = head_path(size);
        let body = self.read(&path).await?;
        serde_json::from_slice(&body).map_err(|e| AuditError::Corrupt {
            path: path.to_string(),
            seq: size,
            reason: e.to_string(),
        })
    }

    /// Sizes of the stored heads, ascending.
    async fn head_sizes(&self) -> Result<Vec<u64>> {
        let prefix = Path::from(HEAD_PREFIX);
        let mut sizes: Vec<u64> = self
            .store
            .list(Some(&prefix))
            .try_filter_map(|m| async move { Ok(number_in(&m.location, HEAD_PREFIX, ".json")) })
            .try_collect()
            .await
            .map_err(store_err(&prefix))?;
        sizes.sort_unstable();
        Ok(sizes)
    }

    /// Signs and stores a head for the current frontier.
    async fn publish(&self, st: &mut State) -> Result<()> {
        let (size, path, body) = self.head_for(st)?;
        match self.put_create(&path, body).await {
            // Another writer signed the same size first: same root, any of the two is valid.
            Ok(()) | Err(object_store::Error::AlreadyExists { .. }) => {}
            Err(e) => return Err(store_err(&path)(e)),
        }
        st.signed = size;
        Ok(())
    }

    /// The signed head for the current frontier, as it is stored.
    fn head_for(&self, st: &State) -> Result<(u64, Path, Vec<u8>)> {
        let size = st.frontier.size();
        let sth = self.signer.sign(&self.hub, size, &st.frontier.root());
        let rec = HeadRecord {
            sth,
            frontier: st.frontier.hashes().iter().map(hex::encode).collect(),
        };
        let body = serde_json::to_vec(&rec).map_err(EventError::from)?;
        Ok((size, head_path(size), body))
    }

    async fn put_create(&self, path: &Path, body: Vec<u8>) -> object_store::Result<()> {
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        self.store
            .put_opts(path, PutPayload::from(body), opts)
            .await
            .map(|_| ())
    }

    /// Appends an event and returns its sequence number once it is durable.
    /// The event's time is when it was submitted; its sequence number is its place in the log.
    pub async fn append(&self, actor: &Actor, event: Draft) -> Result<u64> {
        // Serializing here, in the caller's task, keeps the writer lock's critical path short.
        let event = event.render(Utc::now(), &self.hub, actor)?;
        let (tx, rx) = oneshot::channel();
        self.queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Pending { event, tx });
        // Let appenders that are already running queue up behind this one: on a store that
        // answers without suspending (memory, a fast disk) there would be no group otherwise.
        tokio::task::yield_now().await;
        let mut rx = rx;
        loop {
            // Either a leader commits our event, or we become the leader and commit everything
            // queued. Waiting for the lock alone would make every waiter take it in turn after
            // its event was already written, each committing a batch of one.
            tokio::select! {
                biased;
                r = &mut rx => {
                    return r
                        .map_err(|_| AuditError::Append("the log writer was cancelled".into()))?
                        .map_err(AuditError::Append);
                }
                mut st = self.state.lock() => {
                    let batch =
                        std::mem::take(&mut *self.queue.lock().unwrap_or_else(|e| e.into_inner()));
                    if !batch.is_empty() {
                        self.commit(&mut st, batch).await;
                    }
                }
            }
        }
    }

    async fn commit(&self, st: &mut State, batch: Vec<Pending>) {
        match self.write_batch(st, &batch).await {
            Ok(first) => {
                for (i, p) in batch.into_iter().enumerate() {
                    let _ = p.tx.send(Ok(first + i as u64));
                }
            }
            Err(e) => {
                let msg = e.to_string();
                for p in batch {
                    let _ = p.tx.send(Err(msg.clone()));
                }
                return;
            }
        }
        // Sign the batch now only if no append is waiting: under load the next segment write
        // carries this head alongside (see `write_batch`), so a batch costs one round of
        // durable writes instead of two. The events are durable either way; a head that
        // fails here is signed by the next writer.
        let idle = self
            .queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty();
        if idle && let Err(e) = self.publish(st).await {
            tracing::warn!("audit head not published yet: {e}");
        }
    }

    async fn write_batch(&self, st: &mut State, batch: &[Pending]) -> Result<u64> {
        for _ in 0..MAX_RACES {
            let first = st.frontier.size();
            let mut body = Vec::with_capacity(batch.len() * 320);
            let mut leaves = Vec::with_capacity(batch.len());
            for (i, p) in batch.iter().enumerate() {
                let start = body.len();
                p.event.write(first + i as u64, &mut body);
                leaves.push(leaf_hash(&body[start..]));
                body.push(b'\n');
            }
            let path = seg_path(first);
            // The head of the previous batch, if still unsigned, is stored alongside this
            // segment: it covers only events already durable, so it never vouches for events
            // that could still be lost.
            let pending_head = if st.frontier.size() > st.signed {
                Some(self.head_for(st)?)
            } else {
                None
            };
            let written = match pending_head {
                Some((size, head, head_body)) => {
                    let (seg, signed) = tokio::join!(
                        self.put_create(&path, body),
                        self.put_create(&head, head_body)
                    );
                    match signed {
                        Ok(()) | Err(object_store::Error::AlreadyExists { .. }) => st.signed = size,
                        Err(e) => tracing::warn!("audit head {head} not published yet: {e}"),
                    }
                    seg
                }
                None => self.put_create(&path, body).await,
            };
            match written {
                Ok(()) => {
                    for l in leaves {
                        st.frontier.push(l);
                    }
                    return Ok(first);
                }
                Err(object_store::Error::AlreadyExists { .. }) => self.catch_up(st).await?,
                Err(e) => return Err(store_err(&path)(e)),
            }
        }
        Err(AuditError::Append(format!(
            "lost {MAX_RACES} races for the next segment to other writers"
        )))
    }

    /// Every signed head, by size, as stored (each authenticated by the store on read).
    /// A head that cannot be read ends the list and is reported with the size before it.
    async fn stored_heads(&self) -> Result<(Vec<SignedTreeHead>, Option<(u64, String)>)> {
        let mut out = Vec::new();
        let mut prev = 0;
        // Many small objects: read several at once, in order.
        let mut reads = futures::stream::iter(self.head_sizes().await?)
            .map(|size| async move { (size, self.read_head(size).await) })
            .buffered(16);
        while let Some((size, read)) = reads.next().await {
            match read {
                Ok(rec) if rec.sth.head.size == size => out.push(rec.sth),
                Ok(rec) => {
                    let msg = format!(
                        "{} holds the head for size {}",
                        head_path(size),
                        rec.sth.head.size
                    );
                    return Ok((out, Some((prev, msg))));
                }
                Err(e) => return Ok((out, Some((prev, e.to_string())))),
            }
            prev = size;
        }
        Ok((out, None))
    }

    /// Every signed head, by size.
    pub async fn heads(&self) -> Result<Vec<SignedTreeHead>> {
        let (heads, problem) = self.stored_heads().await?;
        match problem {
            Some((seq, reason)) => Err(AuditError::Corrupt {
                path: HEAD_PREFIX.into(),
                seq,
                reason,
            }),
            None => Ok(heads),
        }
    }

    /// The latest signed head.
    pub async fn latest_head(&self) -> Result<Option<SignedTreeHead>> {
        let size = self.state.lock().await.signed;
        if size == 0 {
            return Ok(None);
        }
        Ok(Some(self.read_head(size).await?.sth))
    }

    /// The segments in order, with their first sequence number, read a few at a time.
    async fn segments(&self) -> Result<BoxStream<'_, (u64, Path, Result<Bytes>)>> {
        let prefix = Path::from(LOG_PREFIX);
        let mut segs: Vec<(u64, Path)> = self
            .store
            .list(Some(&prefix))
            .try_filter_map(|m| async move {
                Ok(number_in(&m.location, LOG_PREFIX, ".ndjson").map(|n| (n, m.location)))
            })
            .try_collect()
            .await
            .map_err(store_err(&prefix))?;
        segs.sort();
        Ok(futures::stream::iter(segs)
            .map(move |(n, p)| async move {
                let r = self.read(&p).await;
                (n, p, r)
            })
            .buffered(16)
            .boxed())
    }

    /// Calls `f` on every stored event in order (stops at the first unreadable segment).
    pub async fn for_each_event(&self, mut f: impl FnMut(Event)) -> Result<()> {
        let mut segs = self.segments().await?;
        while let Some((first, path, body)) = segs.next().await {
            let body = body?;
            for (i, line) in lines(&body).enumerate() {
                let e: Event = serde_json::from_slice(line).map_err(|e| AuditError::Corrupt {
                    path: path.to_string(),
                    seq: first + i as u64,
                    reason: e.to_string(),
                })?;
                f(e);
            }
        }
        Ok(())
    }

    /// Verifies the stored log: every segment authenticated by the store, every head signed
    /// by this hub's key, every root recomputed. `known` are heads an auditor kept earlier.
    pub async fn verify(&self, known: Vec<SignedTreeHead>) -> Result<VerifyReport> {
        let (heads, head_problem) = self.stored_heads().await?;
        let mut v = Verifier::new(heads, known, &[self.signer.public()]);
        if let Some((seq, msg)) = head_problem {
            v.fail_head(seq, msg);
        }
        // Segments are small (one batch each): gather them so the verifier parses and hashes
        // large batches on every core.
        let mut pending: Vec<Bytes> = Vec::new();
        let mut pending_lines = 0u64;
        let flush = |v: &mut Verifier, pending: &mut Vec<Bytes>, n: &mut u64| {
            let all: Vec<&[u8]> = pending.iter().flat_map(|b| lines(b)).collect();
            v.push(&all);
            pending.clear();
            *n = 0;
        };
        let mut segs = self.segments().await?;
        while let Some((first, path, body)) = segs.next().await {
            let expected = v.size() + pending_lines;
            if first != expected {
                flush(&mut v, &mut pending, &mut pending_lines);
                if v.failed() {
                    break;
                }
                let what = if first > expected {
                    "missing"
                } else {
                    "duplicated"
                };
                v.fail_at(
                    expected,
                    format!("{path} starts at event {first}, expected {expected}: events {what}"),
                );
                break;
            }
            match body {
                Ok(b) => {
                    pending_lines += lines(&b).count() as u64;
                    pending.push(b);
                    if pending_lines >= 16_384 {
                        flush(&mut v, &mut pending, &mut pending_lines);
                    }
                }
                Err(e) => {
                    flush(&mut v, &mut pending, &mut pending_lines);
                    v.fail_at(first, e.to_string());
                }
            }
            if v.failed() {
                break;
            }
        }
        flush(&mut v, &mut pending, &mut pending_lines);
        Ok(v.finish(false))
    }

    /// An inclusion proof for event `seq` against the signed head of `size` (default: latest).
    pub async fn inclusion_proof(&self, seq: u64, size: Option<u64>) -> Result<InclusionProof> {
        let size = match size {
            Some(s) => s,
            None => self.state.lock().await.signed,
        };
        if seq >= size {
            return Err(AuditError::NoSuchEvent { seq, size });
        }
        let head = match self.read_head(size).await {
            Ok(r) => r.sth,
            Err(AuditError::Store {
                source: object_store::Error::NotFound { .. },
                ..
            }) => return Err(AuditError::NoSuchHead(size)),
            Err(e) => return Err(e),
        };
        let mut leaves: Vec<Hash> = Vec::with_capacity(size as usize);
        let mut event = None;
        let mut segs = self.segments().await?;
        while let Some((_, _, body)) = segs.next().await {
            for line in lines(&body?) {
                if leaves.len() as u64 == seq {
                    event = Some(String::from_utf8_lossy(line).into_owned());
                }
                leaves.push(leaf_hash(line));
                if leaves.len() as u64 == size {
                    break;
                }
            }
            if leaves.len() as u64 >= size {
                break;
            }
        }
        let root = crate::merkle::root(&leaves[..(size as usize).min(leaves.len())]);
        let missing = || AuditError::Corrupt {
            path: LOG_PREFIX.into(),
            seq: leaves.len() as u64,
            reason: format!("the log is shorter than its signed head for size {size}"),
        };
        if (leaves.len() as u64) < size || head.root().ok() != Some(root) {
            return Err(missing());
        }
        let path = inclusion_proof(&leaves, seq as usize).ok_or_else(missing)?;
        Ok(InclusionProof {
            leaf_index: seq,
            tree_size: size,
            event: event.unwrap_or_default(),
            leaf_hash: hex::encode(leaves[seq as usize]),
            audit_path: path.iter().map(hex::encode).collect(),
            root: hex::encode(root),
            head,
        })
    }

    /// Writes the events, the signed heads and the public key as plaintext files, the result
    /// `name` of `sink` (which must not hold one of that name), for an auditor who has
    /// neither the hub nor its keys.
    pub async fn export(&self, sink: &dyn shh_sink::Sink, name: &str) -> Result<ExportSummary> {
        crate::export::write(self, sink, name).await
    }

    /// The size of the latest signed head (signing the tail first if needed) and the raw
    /// canonical segments in order, for exports: an export ends with a signed head.
    pub(crate) async fn signed_segments(
        &self,
    ) -> Result<(u64, BoxStream<'_, (u64, Path, Result<Bytes>)>)> {
        let signed = {
            let mut st = self.state.lock().await;
            if st.frontier.size() > st.signed {
                self.publish(&mut st).await?;
            }
            st.signed
        };
        Ok((signed, self.segments().await?))
    }
}

/// The lines of a segment, without their newlines.
pub(crate) fn lines(body: &[u8]) -> impl Iterator<Item = &[u8]> {
    body.split(|b| *b == b'\n').filter(|l| !l.is_empty())
}
