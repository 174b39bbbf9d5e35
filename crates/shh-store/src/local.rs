//! Local disk that keeps its word: `object_store`'s `LocalFileSystem` writes a staging file
//! and renames it into place, but never calls `fsync`, so a power loss can lose an object
//! whose `put` already returned. The hub returns an action's result only after its audit event
//! is durable (and a dataset version only after its files are), so [`DurableLocal`] syncs the
//! file and its directory before a write is acknowledged. On S3 and Azure a successful PUT is
//! already durable; this wrapper is for `file://` only.
//!
//! A bulk copy (a migration to local disk) may ask for group durability instead
//! ([`DurableLocal::defer_syncs`]): writes return once renamed into place, and
//! [`DurableLocal::sync_deferred`] makes every one of them durable at once before the run
//! reports success: one `syncfs(2)` per file system on Linux, elsewhere each file and then
//! each distinct directory. Two fsyncs per object become one call per run.
//!
//! On Linux two writes are also cheaper than `LocalFileSystem`'s: a create-only put is moved
//! into place by one `rename(2)` with `RENAME_NOREPLACE` (not a hard link and an unlink), and a
//! multipart upload hands each piece to the disk once it is written (`posix_fadvise`
//! `DONTNEED` starts its writeback without waiting), so the final sync has little left to do
//! and a large copy does not fill the page cache. Staged files keep `LocalFileSystem`'s names
//! (`NAME#N`), so [`remove_staged`] finds what a crash leaves.

use async_trait::async_trait;
use futures::stream::BoxStream;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult, UploadPart,
};
use std::fmt;
use std::sync::Arc;

/// A `LocalFileSystem` whose completed writes are on stable storage.
#[derive(Debug, Clone)]
pub struct DurableLocal {
    inner: Arc<LocalFileSystem>,
    /// With group durability: the files written and not yet synced.
    deferred: Deferred,
}

type Deferred = Arc<std::sync::Mutex<Option<Vec<std::path::PathBuf>>>>;

impl DurableLocal {
    /// Wraps `inner`.
    pub fn new(inner: LocalFileSystem) -> Self {
        Self {
            inner: Arc::new(inner),
            deferred: Arc::default(),
        }
    }

    /// From now on, writes are made durable by [`Self::sync_deferred`], not one by one.
    pub fn defer_syncs(&self) {
        if let Ok(mut d) = self.deferred.lock() {
            d.get_or_insert_with(Vec::new);
        }
    }

    /// Syncs every file written since [`Self::defer_syncs`] (or the last call), then their
    /// directories; returns how many files. Writes go on being deferred.
    pub async fn sync_deferred(&self) -> object_store::Result<u64> {
        let files = match self.deferred.lock() {
            Ok(mut d) => d.as_mut().map(std::mem::take).unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        let n = files.len() as u64;
        let mut dirs: Vec<std::path::PathBuf> = files
            .iter()
            .filter_map(|f| f.parent().map(Into::into))
            .collect();
        dirs.sort();
        dirs.dedup();
        if n > 0 && !syncfs_each(&dirs).await {
            sync_all(files).await?;
            sync_all(dirs).await?;
        }
        Ok(n)
    }

    /// Whether syncs are deferred (then a file's writeback is started as soon as it is
    /// written, so that the final sync has little left to wait for).
    fn deferring(&self) -> bool {
        self.deferred.lock().is_ok_and(|d| d.is_some())
    }

    /// Makes `file` (an object's path on disk) durable now, or later when syncs are deferred.
    async fn settle(&self, file: std::path::PathBuf) -> object_store::Result<()> {
        if let Ok(mut d) = self.deferred.lock()
            && let Some(pending) = d.as_mut()
        {
            pending.push(file);
            return Ok(());
        }
        sync(file).await
    }
}

/// What [`create_new`] did.
enum Created {
    Done(object_store::Result<PutResult>),
    /// The file system cannot rename without replacing: `LocalFileSystem` does it instead.
    Unsupported(PutPayload),
}

fn io_failed(what: &str, path: &std::path::Path, source: std::io::Error) -> object_store::Error {
    object_store::Error::Generic {
        store: "DurableLocal",
        source: format!("{what} {}: {source}", path.display()).into(),
    }
}

/// A new staging file beside `path`, named as `LocalFileSystem` names them (`NAME#N`), its
/// directories made as needed.
fn staged_file(
    path: &std::path::Path,
) -> object_store::Result<(std::fs::File, std::path::PathBuf)> {
    let mut n = 1u32;
    loop {
        let mut s = path.as_os_str().to_owned();
        s.push(format!("#{n}"));
        let staging = std::path::PathBuf::from(s);
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&staging)
        {
            Ok(f) => return Ok((f, staging)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => n += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => match path.parent() {
                Some(dir) => std::fs::create_dir_all(dir)
                    .map_err(|e| io_failed("creating the directory of", path, e))?,
                None => return Err(io_failed("creating", path, e)),
            },
            Err(e) => return Err(io_failed("creating", path, e)),
        }
    }
}

/// A create-only write as `LocalFileSystem` makes it (a staging file beside the object), but
/// moved into place by one `rename(2)` with `RENAME_NOREPLACE` instead of a hard link and an
/// unlink: two directory operations per object instead of three, which is what many small
/// objects cost.
fn create_new(path: &std::path::Path, payload: &PutPayload, early_writeback: bool) -> Created {
    #[cfg(target_os = "linux")]
    {
        use std::io::Write;
        let (mut file, staging) = match staged_file(path) {
            Ok(v) => v,
            Err(e) => return Created::Done(Err(e)),
        };
        let written = payload
            .iter()
            .try_for_each(|b| file.write_all(b))
            .and_then(|()| file.metadata());
        if early_writeback {
            // Its writeback starts now, while the run goes on, and not in the final sync.
            let _ = rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed);
        }
        drop(file);
        let meta = match written.and_then(|m| holds(m, payload.content_length() as u64)) {
            Ok(m) => m,
            Err(e) => {
                let _ = std::fs::remove_file(&staging);
                return Created::Done(Err(io_failed("writing", path, e)));
            }
        };
        let renamed = rustix::fs::renameat_with(
            rustix::fs::CWD,
            &staging,
            rustix::fs::CWD,
            path,
            rustix::fs::RenameFlags::NOREPLACE,
        );
        match renamed {
            Ok(()) => Created::Done(Ok(PutResult {
                e_tag: Some(etag(&meta)),
                version: None,
            })),
            Err(e) => {
                let _ = std::fs::remove_file(&staging);
                match e {
                    rustix::io::Errno::EXIST => {
                        Created::Done(Err(object_store::Error::AlreadyExists {
                            path: path.display().to_string(),
                            source: Box::new(std::io::Error::from(e)),
                        }))
                    }
                    rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS => {
                        Created::Unsupported(payload.clone())
                    }
                    e => Created::Done(Err(io_failed("renaming into place", path, e.into()))),
                }
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (path, early_writeback);
        Created::Unsupported(payload.clone())
    }
}

/// A multipart upload to local disk: a staging file beside the object, each piece written at
/// its offset and then handed to the disk (`posix_fadvise(DONTNEED)` starts its writeback and
/// lets the page cache go, without waiting), renamed into place on completion like
/// `LocalFileSystem`'s.
#[derive(Debug)]
struct Pieces {
    file: Arc<std::fs::File>,
    /// `None` once completed or aborted.
    staging: Option<std::path::PathBuf>,
    dest: std::path::PathBuf,
    offset: u64,
}

impl Pieces {
    async fn start(dest: std::path::PathBuf) -> object_store::Result<Self> {
        let d = dest.clone();
        let (file, staging) = tokio::task::spawn_blocking(move || staged_file(&d))
            .await
            .map_err(failed)??;
        Ok(Self {
            file: Arc::new(file),
            staging: Some(staging),
            dest,
            offset: 0,
        })
    }
}

/// Writes `data` at `offset` of `file`.
fn write_at(
    file: &std::fs::File,
    dest: &std::path::Path,
    offset: u64,
    data: &PutPayload,
) -> object_store::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileExt;
        let mut at = offset;
        for b in data.iter() {
            file.write_all_at(b, at)
                .map_err(|e| io_failed("writing", dest, e))?;
            at += b.len() as u64;
        }
        Ok(())
    }
    #[cfg(not(unix))]
    {
        let _ = (file, offset, data);
        Err(io_failed(
            "writing",
            dest,
            std::io::ErrorKind::Unsupported.into(),
        ))
    }
}

impl Drop for Pieces {
    /// An upload dropped unfinished (a cancelled write) leaves no staging file.
    fn drop(&mut self) {
        if let Some(staging) = self.staging.take() {
            let _ = std::fs::remove_file(staging);
        }
    }
}

#[async_trait]
impl MultipartUpload for Pieces {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let start = self.offset;
        let len = data.content_length() as u64;
        self.offset += len;
        let (file, dest) = (self.file.clone(), self.dest.clone());
        Box::pin(async move {
            let f = file.clone();
            tokio::task::spawn_blocking(move || write_at(&f, &dest, start, &data))
                .await
                .map_err(failed)??;
            // Writeback of the piece starts on a thread of its own: it waits for the disk's
            // queue, and the next piece need not.
            #[cfg(target_os = "linux")]
            drop(tokio::task::spawn_blocking(move || {
                rustix::fs::fadvise(
                    &*file,
                    start,
                    std::num::NonZeroU64::new(len),
                    rustix::fs::Advice::DontNeed,
                )
            }));
            Ok(())
        })
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        let staging = self
            .staging
            .take()
            .ok_or_else(|| object_store::Error::Generic {
                store: "DurableLocal",
                source: "the upload was already completed or aborted".into(),
            })?;
        let (file, dest, len) = (self.file.clone(), self.dest.clone(), self.offset);
        tokio::task::spawn_blocking(move || {
            let meta = file
                .metadata()
                .and_then(|m| holds(m, len))
                .map_err(|e| io_failed("writing", &dest, e))?;
            std::fs::rename(&staging, &dest)
                .map_err(|e| io_failed("renaming into place", &dest, e))?;
            Ok(PutResult {
                e_tag: Some(etag(&meta)),
                version: None,
            })
        })
        .await
        .map_err(failed)?
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        if let Some(staging) = self.staging.take() {
            tokio::task::spawn_blocking(move || std::fs::remove_file(staging))
                .await
                .map_err(failed)?
                .map_err(failed)?;
        }
        Ok(())
    }
}

/// `m` (a staging file's, from its open handle) when the file holds the `len` bytes written
/// to it: checked before the rename, so an object whose size is wrong never takes its name.
fn holds(m: std::fs::Metadata, len: u64) -> std::io::Result<std::fs::Metadata> {
    if m.len() == len {
        Ok(m)
    } else {
        Err(std::io::Error::other(format!(
            "the file holds {} bytes, {len} were written",
            m.len()
        )))
    }
}

/// Largest object (or range) [`DurableLocal::get_opts`] reads in one blocking call; larger
/// ones stream.
const WHOLE_READ_MAX: u64 = 8 << 20;

/// The range [`read_small`] may read for `options`: `Some(None)` for the whole object,
/// `Some(Some(range))` for a bounded range, `None` when `LocalFileSystem` must answer
/// (conditions, a head, a version, a suffix or open range). Decided before any thread hand-off,
/// so a request that cannot take the short path pays nothing for it.
fn plain_range(options: &GetOptions) -> Option<Option<std::ops::Range<u64>>> {
    let plain = options.if_match.is_none()
        && options.if_none_match.is_none()
        && options.if_modified_since.is_none()
        && options.if_unmodified_since.is_none()
        && options.version.is_none()
        && !options.head;
    match &options.range {
        _ if !plain => None,
        None => Some(None),
        Some(object_store::GetRange::Bounded(r)) if r.start <= r.end => Some(Some(r.clone())),
        Some(_) => None,
    }
}

/// A whole small file (or `wanted`, a range of it) read on one blocking thread: its open,
/// `fstat` and read in one hand-off, where `LocalFileSystem` makes one for the open and another
/// for the read. `None` when `LocalFileSystem` should answer instead: something other than a
/// regular file, a range past the end, or too many bytes (whose error or stream is then
/// `LocalFileSystem`'s own).
fn read_small(
    file: &std::path::Path,
    location: &Path,
    wanted: Option<std::ops::Range<u64>>,
) -> Option<object_store::Result<GetResult>> {
    use std::io::{Read, Seek};
    let mut f = std::fs::File::open(file).ok()?;
    let meta = f.metadata().ok()?;
    if !meta.is_file() {
        return None;
    }
    let range = wanted.unwrap_or(0..meta.len());
    if range.end > meta.len() || range.end - range.start > WHOLE_READ_MAX {
        return None;
    }
    let mut buf = Vec::with_capacity((range.end - range.start) as usize);
    let read = f
        .seek(std::io::SeekFrom::Start(range.start))
        .and_then(|_| (&mut f).take(range.end - range.start).read_to_end(&mut buf));
    match read {
        Ok(n) if n as u64 == range.end - range.start => {}
        // Shorter than its size said: it changed under us; `LocalFileSystem` reports it.
        Ok(_) => return None,
        Err(e) => return Some(Err(io_failed("reading", file, e))),
    }
    let object = ObjectMeta {
        location: location.clone(),
        last_modified: meta
            .modified()
            .map(chrono::DateTime::<chrono::Utc>::from)
            .unwrap_or_default(),
        size: meta.len(),
        e_tag: Some(etag(&meta)),
        version: None,
    };
    let bytes = bytes::Bytes::from(buf);
    Some(Ok(GetResult {
        payload: object_store::GetResultPayload::Stream(Box::pin(futures::stream::once(
            async move { Ok(bytes) },
        ))),
        meta: object,
        range,
        attributes: Default::default(),
    }))
}

/// `LocalFileSystem`'s ETag of a file (inode, mtime in µs, size), so that a put's and a
/// later head's agree.
fn etag(m: &std::fs::Metadata) -> String {
    #[cfg(unix)]
    let ino = std::os::unix::fs::MetadataExt::ino(m);
    #[cfg(not(unix))]
    let ino = 0u64;
    let mtime = m
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .unwrap_or_default()
        .as_micros();
    format!("{ino:x}-{mtime:x}-{:x}", m.len())
}

/// One `syncfs(2)` per file system holding `dirs`: every file and directory written there is
/// on stable storage when it returns, in one call instead of one `fsync` per file. False
/// where it is not available (then each file and directory is synced).
async fn syncfs_each(dirs: &[std::path::PathBuf]) -> bool {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::MetadataExt;
        let mut seen = std::collections::BTreeMap::new();
        for d in dirs {
            if let Ok(m) = std::fs::metadata(d) {
                seen.entry(m.dev()).or_insert_with(|| d.clone());
            }
        }
        let one: Vec<std::path::PathBuf> = seen.into_values().collect();
        tokio::task::spawn_blocking(move || {
            one.iter().all(|d| {
                std::fs::File::open(d)
                    .and_then(|f| rustix::fs::syncfs(&f).map_err(std::io::Error::from))
                    .is_ok()
            })
        })
        .await
        .unwrap_or(false)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = dirs;
        false
    }
}

/// `fsync`s `paths` (files or directories) on the blocking pool, a few at a time.
async fn sync_all(paths: Vec<std::path::PathBuf>) -> object_store::Result<()> {
    use futures::StreamExt;
    let results: Vec<_> = futures::stream::iter(paths)
        .map(|p| {
            tokio::task::spawn_blocking(move || std::fs::File::open(&p).and_then(|f| f.sync_all()))
        })
        .buffer_unordered(16)
        .collect()
        .await;
    for r in results {
        r.map_err(failed)?.map_err(failed)?;
    }
    Ok(())
}

/// A failed sync (or its blocking task), as the store reports it.
fn failed(e: impl std::error::Error + Send + Sync + 'static) -> object_store::Error {
    object_store::Error::Generic {
        store: "DurableLocal",
        source: Box::new(e),
    }
}

impl fmt::Display for DurableLocal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DurableLocal({})", self.inner)
    }
}

/// Syncs the object's file and then its directory (which makes the rename durable).
async fn sync(file: std::path::PathBuf) -> object_store::Result<()> {
    tokio::task::spawn_blocking(move || {
        let sync_one = |p: &std::path::Path| std::fs::File::open(p).and_then(|f| f.sync_all());
        sync_one(&file)?;
        if let Some(dir) = file.parent() {
            sync_one(dir)?;
        }
        Ok::<_, std::io::Error>(())
    })
    .await
    .map_err(failed)?
    .map_err(failed)
}

#[async_trait]
impl ObjectStore for DurableLocal {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let file = self.inner.path_to_filesystem(location)?;
        let r = match opts.mode {
            // Nothing else set: the common case of a bulk copy, in two directory operations.
            PutMode::Create if cfg!(target_os = "linux") && opts.attributes.is_empty() => {
                let path = file.clone();
                let early = self.deferring();
                let done = tokio::task::spawn_blocking(move || create_new(&path, &payload, early))
                    .await
                    .map_err(failed)?;
                match done {
                    Created::Done(r) => r?,
                    Created::Unsupported(payload) => {
                        self.inner.put_opts(location, payload, opts).await?
                    }
                }
            }
            _ => self.inner.put_opts(location, payload, opts).await?,
        };
        self.settle(file).await?;
        Ok(r)
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        let file = self.inner.path_to_filesystem(location)?;
        let inner: Box<dyn MultipartUpload> =
            if cfg!(target_os = "linux") && opts.attributes.is_empty() {
                Box::new(Pieces::start(file.clone()).await?)
            } else {
                self.inner.put_multipart_opts(location, opts).await?
            };
        Ok(Box::new(DurableUpload {
            inner,
            store: self.clone(),
            file,
        }))
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let Some(wanted) = plain_range(&options) else {
            return self.inner.get_opts(location, options).await;
        };
        let file = self.inner.path_to_filesystem(location)?;
        let l = location.clone();
        let small = tokio::task::spawn_blocking(move || read_small(&file, &l, wanted))
            .await
            .map_err(failed)?;
        match small {
            Some(r) => r,
            None => self.inner.get_opts(location, options).await,
        }
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await?;
        self.settle(self.inner.path_to_filesystem(to)?).await
    }
}

/// Removes the staging files (`NAME#N`) that `LocalFileSystem` writes before renaming into
/// place, for object `name` of the store rooted at `root`: what a writer killed mid-write
/// leaves (unlisted, never read, never cleaned by `object_store`). Only files of exactly
/// that shape, beside that object, are touched. Returns how many bytes were freed.
pub fn remove_staged(root: &std::path::Path, name: &str) -> object_store::Result<u64> {
    let fs = LocalFileSystem::new_with_prefix(root)?;
    let file = fs.path_to_filesystem(
        &Path::parse(name).map_err(|source| object_store::Error::InvalidPath { source })?,
    )?;
    let (Some(dir), Some(base)) = (file.parent(), file.file_name()) else {
        return Ok(0);
    };
    let base = base.to_string_lossy().into_owned();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => {
            return Err(object_store::Error::Generic {
                store: "DurableLocal",
                source: Box::new(e),
            });
        }
    };
    let mut freed = 0;
    for e in entries.flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        let staged = n
            .strip_prefix(base.as_str())
            .and_then(|rest| rest.strip_prefix('#'))
            .is_some_and(|suffix| !suffix.is_empty() && suffix.bytes().all(|b| b.is_ascii_digit()));
        if staged {
            freed += e.metadata().map(|m| m.len()).unwrap_or(0);
            std::fs::remove_file(e.path()).map_err(|e| object_store::Error::Generic {
                store: "DurableLocal",
                source: Box::new(e),
            })?;
        }
    }
    Ok(freed)
}

#[derive(Debug)]
struct DurableUpload {
    inner: Box<dyn MultipartUpload>,
    /// The store it writes to (whose syncs may be deferred).
    store: DurableLocal,
    /// The object's path on disk.
    file: std::path::PathBuf,
}

#[async_trait]
impl MultipartUpload for DurableUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        self.inner.put_part(data)
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        let r = self.inner.complete().await?;
        self.store.settle(self.file.clone()).await?;
        Ok(r)
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        self.inner.abort().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_staging_files_of_the_object_are_removed() {
        let dir = tempfile::tempdir().expect("tmp");
        let d = dir.path().join("datasets/x/data");
        std::fs::create_dir_all(&d).expect("mkdir");
        for n in [
            "a.parquet#1",
            "a.parquet#23",
            "a.parquet",
            "a.parquet#x",
            "ab.parquet#1",
            "b#1",
        ] {
            std::fs::write(d.join(n), b"12345").expect("write");
        }
        let freed = remove_staged(dir.path(), "datasets/x/data/a.parquet").expect("clean");
        assert_eq!(freed, 10);
        let mut left: Vec<String> = std::fs::read_dir(&d)
            .expect("ls")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["a.parquet", "a.parquet#x", "ab.parquet#1", "b#1"]);
        assert_eq!(remove_staged(dir.path(), "nowhere/z").expect("absent"), 0);
    }

    #[tokio::test]
    async fn deferred_writes_are_counted_and_synced_together() {
        use object_store::ObjectStoreExt;
        let dir = tempfile::tempdir().expect("tmp");
        let fs = LocalFileSystem::new_with_prefix(dir.path()).expect("fs");
        let d = DurableLocal::new(fs);
        d.put(&Path::from("a/1"), PutPayload::from_static(b"x"))
            .await
            .expect("put");
        assert_eq!(d.sync_deferred().await.expect("none deferred"), 0);
        d.defer_syncs();
        for n in ["a/2", "a/3", "b/4"] {
            d.put(&Path::from(n), PutPayload::from_static(b"y"))
                .await
                .expect("put");
        }
        assert_eq!(d.sync_deferred().await.expect("sync"), 3);
        assert_eq!(d.sync_deferred().await.expect("again"), 0);
        assert_eq!(
            d.get(&Path::from("b/4"))
                .await
                .expect("get")
                .bytes()
                .await
                .expect("b"),
            &b"y"[..]
        );
    }
}
