//! [`EncryptedStore`]: an [`ObjectStore`] that encrypts on write and authenticates and decrypts
//! on read, over any other `ObjectStore` (file, memory, S3, Azure, or another wrapper).
//!
//! Paths and listings pass through unchanged; sizes are reported as plaintext sizes; e-tags
//! are the inner store's. Copy and rename re-encrypt, because each object is bound to its path.

use crate::format::{DEFAULT_SEGMENT, FormatError, HEADER_LEN, ObjectKey, plain_len_default};
use crate::stream::{ObjectDigest, SegmentDecryptor, SegmentEncryptor};
use async_trait::async_trait;
use bytes::Bytes;
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
/// Plaintext bytes decrypted per read of a local file.
const FILE_CHUNK_SEGMENTS: u64 = 16;

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
    ) -> object_store::Result<(Vec<u8>, ObjectDigest)> {
        let mut enc = SegmentEncryptor::new(self.new_key(path)?);
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
        let (stored, digest) = self.seal(path, &plain)?;
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
            enc: Some(SegmentEncryptor::new(self.new_key(path)?)),
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
        let mut dec = SegmentDecryptor::new(self.keys.clone(), path.as_ref(), total);
        let mut out = Vec::new();
        while let Some(chunk) = stream.try_next().await? {
            dec.push(&chunk, &mut out).map_err(|e| integrity(path, e))?;
            out.clear();
        }
        dec.finish().map_err(|e| integrity(path, e))
    }

    async fn get_range(
        &self,
        path: &Path,
        mut options: GetOptions,
        range: GetRange,
    ) -> object_store::Result<GetResult> {
        // Header first: it gives the data key and (through the response) the stored length.
        options.range = Some(GetRange::Bounded(0..HEADER_LEN as u64));
        let head = self.inner.get_opts(path, options.clone()).await?;
        let meta = head.meta.clone();
        let attributes = head.attributes.clone();
        let header = head.bytes().await?;
        let key = ObjectKey::open(self.keys.as_ref(), path.as_ref(), &header)
            .map_err(|e| integrity(path, e))?;
        let layout = key.layout();
        let plain_len = layout
            .plain_len(meta.size)
            .map_err(|e| integrity(path, e))?;
        let (start, end) = resolve_range(&range, plain_len).map_err(|e| integrity(path, e))?;
        let total = layout.segments_for_plain(plain_len);
        let mut out = Vec::with_capacity((end - start) as usize);
        if start < end {
            let first = start / layout.segment;
            let last = (end - 1) / layout.segment;
            let stored = layout.stored_range(first, last, meta.size);
            // Pin the second request to the same object version the header came from.
            let pinned = GetOptions {
                range: Some(GetRange::Bounded(stored)),
                if_match: meta.e_tag.clone(),
                version: meta.version.clone(),
                ..Default::default()
            };
            let body = self.inner.get_opts(path, pinned).await?.bytes().await?;
            let mut plain = Vec::with_capacity(body.len());
            key.open_segments(first, total, &body, &mut plain)
                .map_err(|e| integrity(path, e))?;
            let offset = (first * layout.segment) as usize;
            let from = start as usize - offset;
            let to = end as usize - offset;
            if plain.len() < to {
                return Err(integrity(path, FormatError::Segment(last)));
            }
            out.extend_from_slice(&plain[from..to]);
        }
        let bytes = Bytes::from(out);
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

/// Reads a local file in large chunks off the async threads, decrypting as it goes.
fn file_stream(
    file: std::fs::File,
    path: Path,
    keys: Arc<dyn KeyWrapper>,
    stored_len: u64,
) -> BoxStream<'static, object_store::Result<Bytes>> {
    let chunk = (HEADER_LEN as u64 + FILE_CHUNK_SEGMENTS * (DEFAULT_SEGMENT as u64 + 16))
        .min(stored_len.max(1)) as usize;
    // One read buffer per stream, sized to the object when it is small: audit segments and
    // manifests are a few hundred bytes, and zeroing a megabyte for each would dominate.
    let state = (
        file,
        Some(SegmentDecryptor::new(keys, path.as_ref(), stored_len)),
        path,
        vec![0u8; chunk],
    );
    futures::stream::try_unfold(state, move |(file, dec, path, buf)| async move {
        let Some(mut dec) = dec else {
            return Ok(None);
        };
        let p = path.clone();
        let (file, dec, out, buf) = tokio::task::spawn_blocking(move || {
            use std::io::Read;
            let mut file = file;
            let mut buf = buf;
            let mut out = Vec::new();
            loop {
                let n = file
                    .read(&mut buf)
                    .map_err(|e| object_store::Error::Generic {
                        store: STORE,
                        source: Box::new(e),
                    })?;
                if n == 0 {
                    dec.finish().map_err(|e| integrity(&p, e))?;
                    return Ok::<_, object_store::Error>((file, None, out, buf));
                }
                dec.push(&buf[..n], &mut out)
                    .map_err(|e| integrity(&p, e))?;
                if !out.is_empty() {
                    return Ok((file, Some(dec), out, buf));
                }
            }
        })
        .await
        .map_err(|e| object_store::Error::JoinError { source: e })??;
        if out.is_empty() && dec.is_none() {
            return Ok(None);
        }
        Ok(Some((Bytes::from(out), (file, dec, path, buf))))
    })
    .boxed()
}

#[async_trait]
impl<S: ObjectStore> ObjectStore for EncryptedStore<S> {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let (stored, _) = self.seal(location, &payload)?;
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
