//! [`EncryptedStore`]: an [`ObjectStore`] that encrypts on write and authenticates and decrypts
//! on read, over any other `ObjectStore` (file, memory, S3, Azure, or another wrapper).
//!
//! Paths and listings pass through unchanged; sizes are reported as plaintext sizes; e-tags
//! are the inner store's. Copy and rename re-encrypt, because each object is bound to its path.

use crate::format::{
    DEFAULT_SEGMENT, FormatError, HEADER_LEN, Layout, ObjectKey, plain_len_default,
};
use crate::stream::{ObjectDigest, SegmentDecryptor, SegmentEncryptor};
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{
    CopyMode, CopyOptions, GetOptions, GetRange, GetResult, GetResultPayload, ListResult,
    MultipartUpload, ObjectMeta, ObjectStore, PutMode, PutMultipartOptions, PutOptions, PutPayload,
    PutResult, UploadPart, WriteMultipart,
};
use shh_keys::KeyWrapper;
use std::fmt;
use std::sync::Arc;

const STORE: &str = "EncryptedStore";
/// Ciphertext bytes per part of a multipart upload (S3 wants ≥ 5 MiB for all but the last).
pub const PART_SIZE: usize = 8 << 20;
/// Segments read and decrypted per chunk of a whole local file (4 MiB of plaintext).
const FILE_CHUNK_SEGMENTS: u64 = 64;
/// Local objects up to this stored size are read whole into one buffer (one allocation, no
/// copy when the consumer collects them); larger ones stream in chunks.
const WHOLE_READ_MAX: u64 = 64 << 20;
/// Ranges whose segments lie at most this many segments apart are fetched in one read.
const COALESCE_GAP_SEGMENTS: u64 = 16;
/// A coalesced read grows to at most this many segments, so that reading one piece and
/// decrypting another overlap.
const COALESCE_MAX_SEGMENTS: u64 = 64;
/// Coalesced pieces in flight at once in `get_ranges`.
const RANGE_PIECES_IN_FLIGHT: usize = 4;

/// Whether decrypting `segments` segments is worth moving to a blocking thread (~1 MiB and
/// up: below that the hand-off costs more than the decryption).
fn buf_len_is_large(segments: u64, segment: u64) -> bool {
    segments * segment >= 1 << 20
}

/// Groups the segment spans (`first..=last`) of requested ranges into pieces to fetch: spans
/// that overlap always share a piece; nearby ones do while the piece stays small enough.
fn coalesce_spans(mut spans: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    spans.sort_unstable();
    let mut pieces: Vec<(u64, u64)> = Vec::new();
    for (first, last) in spans {
        match pieces.last_mut() {
            Some(p)
                if first <= p.1
                    || (first <= p.1 + 1 + COALESCE_GAP_SEGMENTS
                        && last.max(p.1) - p.0 < COALESCE_MAX_SEGMENTS) =>
            {
                p.1 = p.1.max(last);
            }
            _ => pieces.push((first, last)),
        }
    }
    pieces
}

/// An object whose header has been read: its data key, stored metadata and plaintext geometry.
struct Opened {
    key: Arc<ObjectKey>,
    meta: ObjectMeta,
    attributes: object_store::Attributes,
    plain_len: u64,
    total: u64,
}

/// The plaintext bytes `start..end` out of `plain`, the decrypted segments that begin at
/// plaintext offset `offset`; too short a piece means the object ended early.
fn slice_plain(
    path: &Path,
    plain: &Bytes,
    offset: u64,
    start: u64,
    end: u64,
    segment: u64,
) -> object_store::Result<Bytes> {
    let (from, to) = ((start - offset) as usize, (end - offset) as usize);
    if plain.len() < to {
        return Err(integrity(path, FormatError::Segment((end - 1) / segment)));
    }
    Ok(plain.slice(from..to))
}

/// An object failed authentication or is not in the encrypted format.
#[derive(Debug, thiserror::Error)]
#[error("integrity error in object {path}: {source}")]
pub struct IntegrityError {
    /// The object's path in the store.
    pub path: String,
    /// What failed.
    #[source]
    pub source: FormatError,
}

/// If `err` (or what it wraps) is an integrity failure, returns it.
pub fn integrity_error(err: &object_store::Error) -> Option<&IntegrityError> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(i) = e.downcast_ref::<IntegrityError>() {
            return Some(i);
        }
        cur = e.source();
    }
    None
}

fn integrity(path: &Path, source: FormatError) -> object_store::Error {
    object_store::Error::Generic {
        store: STORE,
        source: Box::new(IntegrityError {
            path: path.to_string(),
            source,
        }),
    }
}

fn wrap_error(path: &Path, e: shh_keys::WrapError) -> object_store::Error {
    integrity(path, FormatError::KeyUnwrap(e.to_string()))
}

/// Client-side encryption over any object store.
pub struct EncryptedStore<S: ObjectStore> {
    inner: Arc<S>,
    keys: Arc<dyn KeyWrapper>,
    segment: u32,
}

impl<S: ObjectStore> fmt::Debug for EncryptedStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(STORE)
            .field("inner", &self.inner)
            .field("segment", &self.segment)
            .finish_non_exhaustive()
    }
}

impl<S: ObjectStore> fmt::Display for EncryptedStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Encrypted({})", self.inner)
    }
}

impl<S: ObjectStore> EncryptedStore<S> {
    /// Wraps `inner`; new objects get data keys wrapped by `keys`' current master key.
    pub fn new(inner: S, keys: Arc<dyn KeyWrapper>) -> Self {
        Self::from_arc(Arc::new(inner), keys)
    }

    /// Wraps a shared `inner`.
    pub fn from_arc(inner: Arc<S>, keys: Arc<dyn KeyWrapper>) -> Self {
        Self {
            inner,
            keys,
            segment: DEFAULT_SEGMENT,
        }
    }

    /// The wrapped store (which holds only ciphertext).
    pub fn inner(&self) -> &Arc<S> {
        &self.inner
    }

    fn new_key(&self, path: &Path) -> object_store::Result<ObjectKey> {
        ObjectKey::generate(self.keys.as_ref(), path.as_ref(), self.segment)
            .map_err(|e| wrap_error(path, e))
    }

    /// Encrypts `plain` into a complete object (no I/O).
    fn seal(
        &self,
        path: &Path,
        plain: &PutPayload,
        digests: bool,
    ) -> object_store::Result<(Vec<u8>, ObjectDigest)> {
        let key = self.new_key(path)?;
        let mut enc = if digests {
            SegmentEncryptor::with_digests(key)
        } else {
            SegmentEncryptor::new(key)
        };
        let len: usize = plain.content_length();
        let mut out = Vec::with_capacity(len + HEADER_LEN + len / 1024 + 64);
        for chunk in plain.iter() {
            enc.push(chunk, &mut out).map_err(|e| integrity(path, e))?;
        }
        let digest = enc.finish(&mut out).map_err(|e| integrity(path, e))?;
        Ok((out, digest))
    }

    /// Writes a small object in one request and returns its digests.
    pub async fn put_with_digest(
        &self,
        path: &Path,
        plain: PutPayload,
        mode: PutMode,
    ) -> object_store::Result<ObjectDigest> {
        let (stored, digest) = self.seal(path, &plain, true)?;
        let opts = PutOptions {
            mode,
            ..Default::default()
        };
        self.inner.put_opts(path, stored.into(), opts).await?;
        Ok(digest)
    }

    /// A streaming writer for an object of any size that reports digests when finished.
    pub fn writer(&self, path: &Path) -> object_store::Result<EncryptedWriter> {
        Ok(EncryptedWriter {
            inner: self.inner.clone() as Arc<dyn ObjectStore>,
            path: path.clone(),
            enc: Some(SegmentEncryptor::with_digests(self.new_key(path)?)),
            buf: Vec::new(),
            upload: None,
        })
    }

    /// Reads the whole object, authenticating every segment, and returns both digests.
    /// This is what `verify` runs: it needs the stored bytes and the plaintext hash in one pass.
    pub async fn read_digest(&self, path: &Path) -> object_store::Result<ObjectDigest> {
        let res = self.inner.get_opts(path, GetOptions::default()).await?;
        let total = res.meta.size;
        let mut stream = res.into_stream();
        let mut dec = SegmentDecryptor::with_digests(self.keys.clone(), path.as_ref(), total);
        let mut out = Vec::new();
        while let Some(chunk) = stream.try_next().await? {
            dec.push(&chunk, &mut out).map_err(|e| integrity(path, e))?;
            out.clear();
        }
        dec.finish().map_err(|e| integrity(path, e))
    }

    /// Reads the header of the object at `path`, unwraps its data key and works out its
    /// plaintext geometry.
    async fn open_key(&self, path: &Path, mut options: GetOptions) -> object_store::Result<Opened> {
        // Header first: it gives the data key and (through the response) the stored length.
        options.range = Some(GetRange::Bounded(0..HEADER_LEN as u64));
        let head = self.inner.get_opts(path, options).await?;
        let meta = head.meta.clone();
        let attributes = head.attributes.clone();
        let header = head.bytes().await?;
        let key = ObjectKey::open(self.keys.as_ref(), path.as_ref(), &header)
            .map_err(|e| integrity(path, e))?;
        let plain_len = key
            .layout()
            .plain_len(meta.size)
            .map_err(|e| integrity(path, e))?;
        let total = key.layout().segments_for_plain(plain_len);
        Ok(Opened {
            key: Arc::new(key),
            meta,
            attributes,
            plain_len,
            total,
        })
    }

    /// Reads and decrypts segments `first..=last` of the object whose header gave `key` and
    /// `meta`, returning their plaintext. Decryption happens in place in the fetched buffer,
    /// off the async threads when it is large.
    async fn fetch_segments(
        &self,
        path: &Path,
        obj: &Opened,
        first: u64,
        last: u64,
    ) -> object_store::Result<Bytes> {
        let (key, meta, total) = (&obj.key, &obj.meta, obj.total);
        let stored = key.layout().stored_range(first, last, meta.size);
        // Pin the read to the object version the header came from.
        let pinned = GetOptions {
            range: Some(GetRange::Bounded(stored)),
            if_match: meta.e_tag.clone(),
            version: meta.version.clone(),
            ..Default::default()
        };
        let body = self.inner.get_opts(path, pinned).await?.bytes().await?;
        let mut buf = body
            .try_into_mut()
            .unwrap_or_else(|shared| BytesMut::from(&shared[..]));
        let decrypt = {
            let key = key.clone();
            let path = path.clone();
            move || -> object_store::Result<Bytes> {
                let n = key
                    .open_segments_in_place(first, total, &mut buf)
                    .map_err(|e| integrity(&path, e))?;
                buf.truncate(n);
                Ok(buf.freeze())
            }
        };
        if buf_len_is_large(last - first + 1, key.layout().segment) {
            tokio::task::spawn_blocking(decrypt)
                .await
                .map_err(|e| object_store::Error::JoinError { source: e })?
        } else {
            decrypt()
        }
    }

    async fn get_range(
        &self,
        path: &Path,
        options: GetOptions,
        range: GetRange,
    ) -> object_store::Result<GetResult> {
        let obj = self.open_key(path, options).await?;
        let segment = obj.key.layout().segment;
        let (start, end) = resolve_range(&range, obj.plain_len).map_err(|e| integrity(path, e))?;
        let bytes = if start < end {
            let (first, last) = (start / segment, (end - 1) / segment);
            let plain = self.fetch_segments(path, &obj, first, last).await?;
            slice_plain(path, &plain, first * segment, start, end, segment)?
        } else {
            Bytes::new()
        };
        let Opened {
            meta,
            attributes,
            plain_len,
            ..
        } = obj;
        Ok(GetResult {
            payload: GetResultPayload::Stream(
                futures::stream::once(async move { Ok(bytes) }).boxed(),
            ),
            meta: ObjectMeta {
                size: plain_len,
                ..meta
            },
            range: start..end,
            attributes,
        })
    }

    fn get_all(&self, path: &Path, res: GetResult) -> object_store::Result<GetResult> {
        let stored_len = res.meta.size;
        let plain_len = plain_len_default(stored_len);
        let meta = ObjectMeta {
            size: plain_len,
            ..res.meta.clone()
        };
        let attributes = res.attributes.clone();
        let stream = match res.payload {
            GetResultPayload::File(file, _) => {
                file_stream(file, path.clone(), self.keys.clone(), stored_len)
            }
            GetResultPayload::Stream(s) => {
                decrypt_stream(s, path.clone(), self.keys.clone(), stored_len)
            }
        };
        Ok(GetResult {
            payload: GetResultPayload::Stream(stream),
            meta,
            range: 0..plain_len,
            attributes,
        })
    }
}

/// Resolves a requested plaintext range against the object's length, as `object_store` does:
/// a range starting past the end is an error, one ending past it is clamped.
fn resolve_range(range: &GetRange, len: u64) -> Result<(u64, u64), FormatError> {
    let (start, end) = match range {
        GetRange::Bounded(r) => (r.start, r.end.min(len)),
        GetRange::Offset(o) => (*o, len),
        GetRange::Suffix(n) => (len.saturating_sub(*n), len),
    };
    let bad = match range {
        GetRange::Bounded(r) => r.start >= r.end || r.start >= len,
        GetRange::Offset(o) => *o >= len && len > 0,
        GetRange::Suffix(_) => false,
    };
    if bad {
        let end = match range {
            GetRange::Bounded(r) => r.end,
            _ => end,
        };
        return Err(FormatError::Range { start, end, len });
    }
    Ok((start, end))
}

/// Decrypts a stream of stored bytes into a stream of plaintext pieces.
fn decrypt_stream(
    inner: BoxStream<'static, object_store::Result<Bytes>>,
    path: Path,
    keys: Arc<dyn KeyWrapper>,
    stored_len: u64,
) -> BoxStream<'static, object_store::Result<Bytes>> {
    futures::stream::try_unfold(
        (
            inner,
            Some(SegmentDecryptor::new(keys, path.as_ref(), stored_len)),
            path,
        ),
        |(mut inner, mut dec, path)| async move {
            loop {
                let Some(d) = dec.as_mut() else {
                    return Ok(None);
                };
                match inner.try_next().await? {
                    Some(chunk) => {
                        let mut out = Vec::new();
                        d.push(&chunk, &mut out).map_err(|e| integrity(&path, e))?;
                        if !out.is_empty() {
                            return Ok(Some((Bytes::from(out), (inner, dec, path))));
                        }
                    }
                    None => {
                        let d = dec.take().map(SegmentDecryptor::finish);
                        if let Some(Err(e)) = d {
                            return Err(integrity(&path, e));
                        }
                    }
                }
            }
        },
    )
    .boxed()
}

/// Reads a local file on a blocking thread. An object of up to [`WHOLE_READ_MAX`] comes back
/// as one buffer (decrypted on several cores when large, see [`read_whole`]); a larger one
/// in chunks, each decrypted in place and handed over through a small channel so that reading
/// the next chunk overlaps with the consumer taking the previous one (at most three chunks in
/// memory).
fn file_stream(
    file: std::fs::File,
    path: Path,
    keys: Arc<dyn KeyWrapper>,
    stored_len: u64,
) -> BoxStream<'static, object_store::Result<Bytes>> {
    let (tx, rx) = tokio::sync::mpsc::channel::<object_store::Result<Bytes>>(2);
    tokio::task::spawn_blocking(move || {
        let r = if stored_len <= WHOLE_READ_MAX {
            // A reader that went away needs no answer.
            read_whole(&file, &path, keys.as_ref(), stored_len).map(|b| {
                let _ = tx.blocking_send(Ok(b));
            })
        } else {
            produce_file(file, &path, keys.as_ref(), stored_len, &tx)
        };
        if let Err(e) = r {
            let _ = tx.blocking_send(Err(e));
        }
    });
    futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
    .boxed()
}

fn io_error(e: std::io::Error) -> object_store::Error {
    object_store::Error::Generic {
        store: STORE,
        source: Box::new(e),
    }
}

/// `read_exact_at`, with a file shorter than its listing named as an integrity error.
fn read_at(
    file: &std::fs::File,
    buf: &mut [u8],
    offset: u64,
    short: impl FnOnce() -> object_store::Error,
) -> object_store::Result<()> {
    use std::os::unix::fs::FileExt;
    file.read_exact_at(buf, offset).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => short(),
        _ => io_error(e),
    })
}

/// A local object whose header has been read and whose data key is unwrapped: what both
/// whole-read paths start from.
struct LocalObject<'a> {
    file: &'a std::fs::File,
    path: &'a Path,
    stored_len: u64,
    key: ObjectKey,
    layout: Layout,
    plain_len: u64,
    total: u64,
}

impl<'a> LocalObject<'a> {
    fn open(
        file: &'a std::fs::File,
        path: &'a Path,
        keys: &dyn KeyWrapper,
        stored_len: u64,
    ) -> object_store::Result<Self> {
        let too_short = || integrity(path, FormatError::TooShort(stored_len));
        if stored_len < HEADER_LEN as u64 {
            return Err(too_short());
        }
        let mut header = [0u8; HEADER_LEN];
        read_at(file, &mut header, 0, too_short)?;
        let key = ObjectKey::open(keys, path.as_ref(), &header).map_err(|e| integrity(path, e))?;
        let layout = key.layout();
        let plain_len = layout
            .plain_len(stored_len)
            .map_err(|e| integrity(path, e))?;
        let total = layout.segments_for_plain(plain_len);
        // Bytes after the length the listing announced: the file grew or was appended to.
        let mut probe = [0u8; 1];
        if std::os::unix::fs::FileExt::read_at(file, &mut probe, stored_len).map_err(io_error)? != 0
        {
            return Err(integrity(path, FormatError::Segment(total)));
        }
        Ok(Self {
            file,
            path,
            stored_len,
            key,
            layout,
            plain_len,
            total,
        })
    }

    /// Reads segments `first..=last` into `buf` and decrypts them there; `buf` ends up
    /// holding their plaintext.
    fn read_segments(&self, first: u64, last: u64, buf: &mut Vec<u8>) -> object_store::Result<()> {
        let range = self.layout.stored_range(first, last, self.stored_len);
        buf.resize((range.end - range.start) as usize, 0);
        read_at(self.file, buf, range.start, || {
            integrity(self.path, FormatError::Segment(first))
        })?;
        let n = self
            .key
            .open_segments_in_place(first, self.total, buf)
            .map_err(|e| integrity(self.path, e))?;
        buf.truncate(n);
        Ok(())
    }

    /// The last segment of the chunk that starts at segment `first`.
    fn chunk_end(&self, first: u64) -> u64 {
        (first + FILE_CHUNK_SEGMENTS).min(self.total) - 1
    }
}

/// Reads and decrypts a whole local object into one plaintext buffer.
///
/// Large objects are cut into chunks that threads take in turn: each reads a chunk into its
/// own (warm) buffer, decrypts it there and copies the plaintext to the chunk's place in the
/// result. The result's disjoint chunks let the threads write without sharing, and the page
/// faults of a fresh buffer — most of a whole read's cost on a VM — are spread over cores.
fn read_whole(
    file: &std::fs::File,
    path: &Path,
    keys: &dyn KeyWrapper,
    stored_len: u64,
) -> object_store::Result<Bytes> {
    let obj = LocalObject::open(file, path, keys, stored_len)?;
    let chunk_plain = (FILE_CHUNK_SEGMENTS * obj.layout.segment) as usize;
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min((obj.plain_len as usize).div_ceil(chunk_plain))
        .max(1);
    if threads == 1 {
        // One buffer: read, decrypt and squeeze out the tags in place.
        let mut buf = Vec::new();
        obj.read_segments(0, obj.total - 1, &mut buf)?;
        return Ok(Bytes::from(buf));
    }
    let mut out = vec![0u8; obj.plain_len as usize];
    let mut shares: Vec<Vec<(u64, &mut [u8])>> = (0..threads).map(|_| Vec::new()).collect();
    for (k, dst) in out.chunks_mut(chunk_plain).enumerate() {
        shares[k % threads].push((k as u64 * FILE_CHUNK_SEGMENTS, dst));
    }
    let work = |share: Vec<(u64, &mut [u8])>| -> object_store::Result<()> {
        let mut local = Vec::new();
        for (first, dst) in share {
            let last = obj.chunk_end(first);
            obj.read_segments(first, last, &mut local)?;
            if local.len() != dst.len() {
                return Err(integrity(path, FormatError::Segment(last)));
            }
            dst.copy_from_slice(&local);
        }
        Ok(())
    };
    std::thread::scope(|scope| {
        let mut shares = shares.into_iter();
        let mine = shares.next().unwrap_or_default();
        let others: Vec<_> = shares.map(|s| scope.spawn(move || work(s))).collect();
        let mut result = work(mine);
        for h in others {
            let r = h.join().unwrap_or_else(|_| {
                Err(object_store::Error::Generic {
                    store: STORE,
                    source: "decryption thread panicked".into(),
                })
            });
            result = result.and(r);
        }
        result
    })?;
    Ok(Bytes::from(out))
}

/// Streams a large local object chunk by chunk into `tx`.
fn produce_file(
    file: std::fs::File,
    path: &Path,
    keys: &dyn KeyWrapper,
    stored_len: u64,
    tx: &tokio::sync::mpsc::Sender<object_store::Result<Bytes>>,
) -> object_store::Result<()> {
    let obj = LocalObject::open(&file, path, keys, stored_len)?;
    let mut first = 0;
    while first < obj.total {
        let last = obj.chunk_end(first);
        let mut buf = Vec::new();
        obj.read_segments(first, last, &mut buf)?;
        if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
            // The reader went away: nothing more to do.
            return Ok(());
        }
        first = last + 1;
    }
    Ok(())
}

#[async_trait]
impl<S: ObjectStore> ObjectStore for EncryptedStore<S> {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let (stored, _) = self.seal(location, &payload, false)?;
        self.inner.put_opts(location, stored.into(), opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        let enc = SegmentEncryptor::new(self.new_key(location)?);
        let inner = self.inner.put_multipart_opts(location, opts).await?;
        Ok(Box::new(EncryptedUpload {
            inner,
            path: location.clone(),
            enc: Some(enc),
            pending: Vec::new(),
        }))
    }

    async fn get_opts(
        &self,
        location: &Path,
        mut options: GetOptions,
    ) -> object_store::Result<GetResult> {
        if options.head {
            options.range = None;
            let res = self.inner.get_opts(location, options).await?;
            let size = plain_len_default(res.meta.size);
            return Ok(GetResult {
                payload: GetResultPayload::Stream(futures::stream::empty().boxed()),
                meta: ObjectMeta { size, ..res.meta },
                range: 0..size,
                attributes: res.attributes,
            });
        }
        match options.range.take() {
            Some(range) => self.get_range(location, options, range).await,
            None => {
                let res = self.inner.get_opts(location, options).await?;
                self.get_all(location, res)
            }
        }
    }

    /// One header read for all ranges; the segments they need are fetched in coalesced
    /// pieces, several in flight, each decrypted in place; every range is a zero-copy slice
    /// of its piece.
    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[std::ops::Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        if ranges.is_empty() {
            return Ok(Vec::new());
        }
        let obj = self.open_key(location, GetOptions::default()).await?;
        let segment = obj.key.layout().segment;
        let mut wanted = Vec::with_capacity(ranges.len());
        for r in ranges {
            let (start, end) = resolve_range(&GetRange::Bounded(r.clone()), obj.plain_len)
                .map_err(|e| integrity(location, e))?;
            wanted.push((start, end));
        }
        let spans = wanted
            .iter()
            .map(|&(s, e)| (s / segment, (e - 1) / segment))
            .collect();
        let pieces = coalesce_spans(spans);
        let obj = &obj;
        let plains: Vec<Bytes> = futures::stream::iter(pieces.iter().copied())
            .map(|(first, last)| self.fetch_segments(location, obj, first, last))
            .buffered(RANGE_PIECES_IN_FLIGHT)
            .try_collect()
            .await?;
        wanted
            .into_iter()
            .map(|(start, end)| {
                let seg = start / segment;
                let i = pieces.partition_point(|p| p.1 < seg);
                let missing = || integrity(location, FormatError::Segment(seg));
                let (first, _) = pieces.get(i).ok_or_else(missing)?;
                let plain = plains.get(i).ok_or_else(missing)?;
                slice_plain(location, plain, first * segment, start, end, segment)
            })
            .collect()
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix).map_ok(plain_meta).boxed()
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner
            .list_with_offset(prefix, offset)
            .map_ok(plain_meta)
            .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        let mut res = self.inner.list_with_delimiter(prefix).await?;
        res.objects = res.objects.into_iter().map(plain_meta).collect();
        Ok(res)
    }

    /// Re-encrypts under a fresh data key: an object's ciphertext is bound to its path, so the
    /// inner store's server-side copy would produce an object that fails authentication.
    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        let res = self.get_opts(from, GetOptions::default()).await?;
        let mut stream = res.into_stream();
        match options.mode {
            CopyMode::Create => {
                // Create-only needs a single conditional put: multipart uploads cannot be conditional.
                let mut plain = Vec::new();
                while let Some(chunk) = stream.try_next().await? {
                    plain.extend_from_slice(&chunk);
                }
                self.put_with_digest(to, plain.into(), PutMode::Create)
                    .await?;
            }
            CopyMode::Overwrite => {
                let mut w = self.writer(to)?;
                while let Some(chunk) = stream.try_next().await? {
                    w.write(&chunk).await?;
                }
                w.finish().await?;
            }
        }
        Ok(())
    }
}

fn plain_meta(meta: ObjectMeta) -> ObjectMeta {
    ObjectMeta {
        size: plain_len_default(meta.size),
        ..meta
    }
}

/// A streaming encrypted write that reports the object's digests when finished.
///
/// Small objects (under one part) are written with a single put when finished; larger ones
/// switch to a multipart upload of [`PART_SIZE`] parts, at most 4 in flight, so memory stays
/// bounded whatever the object's size. Until `finish` returns, nothing is visible at the path.
pub struct EncryptedWriter {
    inner: Arc<dyn ObjectStore>,
    path: Path,
    enc: Option<SegmentEncryptor>,
    buf: Vec<u8>,
    upload: Option<WriteMultipart>,
}

impl fmt::Debug for EncryptedWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptedWriter")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl EncryptedWriter {
    /// Encrypts and buffers or uploads `data`.
    pub async fn write(&mut self, data: &[u8]) -> object_store::Result<()> {
        let enc = self.enc.as_mut().ok_or_else(|| finished(&self.path))?;
        enc.push(data, &mut self.buf)
            .map_err(|e| integrity(&self.path, e))?;
        if self.buf.len() >= PART_SIZE {
            if self.upload.is_none() {
                let up = self
                    .inner
                    .put_multipart_opts(&self.path, Default::default())
                    .await?;
                self.upload = Some(WriteMultipart::new_with_chunk_size(up, PART_SIZE));
            }
            if let Some(up) = self.upload.as_mut() {
                up.wait_for_capacity(4).await?;
                up.write(&self.buf);
                self.buf.clear();
            }
        }
        Ok(())
    }

    /// Seals the last segment, completes the write and returns the digests.
    pub async fn finish(mut self) -> object_store::Result<ObjectDigest> {
        let enc = self.enc.take().ok_or_else(|| finished(&self.path))?;
        let digest = enc
            .finish(&mut self.buf)
            .map_err(|e| integrity(&self.path, e))?;
        let buf = std::mem::take(&mut self.buf);
        match self.upload.take() {
            None => {
                let opts = PutOptions::default();
                self.inner.put_opts(&self.path, buf.into(), opts).await?;
            }
            Some(mut up) => {
                up.write(&buf);
                up.finish().await?;
            }
        }
        Ok(digest)
    }

    /// Abandons the write; nothing becomes visible at the path.
    pub async fn abort(mut self) -> object_store::Result<()> {
        match self.upload.take() {
            Some(up) => up.abort().await,
            None => Ok(()),
        }
    }
}

fn finished(path: &Path) -> object_store::Error {
    object_store::Error::Generic {
        store: STORE,
        source: format!("write to {path} used after finish").into(),
    }
}

/// The `MultipartUpload` face of an encrypted write, for generic callers.
struct EncryptedUpload {
    inner: Box<dyn MultipartUpload>,
    path: Path,
    enc: Option<SegmentEncryptor>,
    pending: Vec<u8>,
}

impl fmt::Debug for EncryptedUpload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptedUpload")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl MultipartUpload for EncryptedUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let Some(enc) = self.enc.as_mut() else {
            let e = finished(&self.path);
            return Box::pin(async move { Err(e) });
        };
        for chunk in data.iter() {
            if let Err(e) = enc.push(chunk, &mut self.pending) {
                let e = integrity(&self.path, e);
                return Box::pin(async move { Err(e) });
            }
        }
        if self.pending.len() >= PART_SIZE {
            let part = std::mem::take(&mut self.pending);
            return self.inner.put_part(part.into());
        }
        Box::pin(async { Ok(()) })
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        let enc = self.enc.take().ok_or_else(|| finished(&self.path))?;
        enc.finish(&mut self.pending)
            .map_err(|e| integrity(&self.path, e))?;
        let part = std::mem::take(&mut self.pending);
        self.inner.put_part(part.into()).await?;
        self.inner.complete().await
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        self.enc = None;
        self.inner.abort().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Every requested span lies whole inside exactly one piece; pieces are sorted and
        /// disjoint; a piece outgrows the cap only where overlapping spans force it.
        #[test]
        fn coalesced_pieces_cover_each_span_once(
            spans in proptest::collection::vec((0u64..2_000, 0u64..200), 0..40),
        ) {
            let spans: Vec<(u64, u64)> = spans.into_iter().map(|(f, len)| (f, f + len)).collect();
            let pieces = coalesce_spans(spans.clone());
            for w in pieces.windows(2) {
                prop_assert!(w[0].1 < w[1].0, "sorted and disjoint: {pieces:?}");
            }
            for &(f, l) in &spans {
                let holding = pieces.iter().filter(|p| p.0 <= f && l <= p.1).count();
                prop_assert_eq!(holding, 1, "span {}..={} in {:?}", f, l, pieces);
            }
            for p in &pieces {
                prop_assert!(spans.iter().any(|s| p.0 <= s.0 && s.1 <= p.1), "{p:?} holds no span");
                let forced = spans.iter().any(|s| s.1 - s.0 >= COALESCE_MAX_SEGMENTS)
                    || spans.iter().filter(|s| p.0 <= s.0 && s.1 <= p.1).count() > 1;
                prop_assert!(p.1 - p.0 < COALESCE_MAX_SEGMENTS || forced, "{p:?} from {spans:?}");
            }
        }
    }
}
