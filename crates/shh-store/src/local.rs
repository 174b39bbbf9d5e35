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
//! each distinct directory. Two fsyncs per object become one call per run. So that the call
//! at the end does not wait for the whole run's bytes to reach the disk, writeback starts
//! early: after every [`EARLY_WRITEBACK`] bytes written, a `syncfs` runs in the background
//! while the copy goes on, and the last one waits only for what was written since.

use async_trait::async_trait;
use futures::stream::BoxStream;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, UploadPart,
};
use std::fmt;
use std::sync::Arc;

/// Bytes written under group durability after which writeback starts in the background.
pub const EARLY_WRITEBACK: u64 = 32 * 1024 * 1024;

/// A `LocalFileSystem` whose completed writes are on stable storage.
#[derive(Debug, Clone)]
pub struct DurableLocal {
    inner: Arc<LocalFileSystem>,
    group: Arc<Group>,
}

/// Group durability's state, shared with the uploads in flight.
#[derive(Debug, Default)]
struct Group {
    /// With group durability: the files written and not yet synced.
    files: std::sync::Mutex<Option<Vec<std::path::PathBuf>>>,
    /// The store's root (its file system is the one synced early).
    root: Option<std::path::PathBuf>,
    /// Bytes written since writeback last started.
    dirty: std::sync::atomic::AtomicU64,
    /// The early writeback in flight.
    early: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Group {
    fn deferring(&self) -> bool {
        self.files.lock().map(|f| f.is_some()).unwrap_or(false)
    }

    /// `n` more bytes are on their way to the disk: past [`EARLY_WRITEBACK`], and unless
    /// one is still running, start a background `syncfs` so the final one has less to wait
    /// for. Only a head start: durability is still the final sync's.
    fn wrote(&self, n: u64) {
        use std::sync::atomic::Ordering;
        if !cfg!(target_os = "linux") || n == 0 || !self.deferring() {
            return;
        }
        if self.dirty.fetch_add(n, Ordering::Relaxed) + n < EARLY_WRITEBACK {
            return;
        }
        let (Some(root), Ok(mut early)) = (self.root.clone(), self.early.lock()) else {
            return;
        };
        if early.as_ref().is_some_and(|h| !h.is_finished()) {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        self.dirty.store(0, Ordering::Relaxed);
        *early = Some(rt.spawn_blocking(move || {
            let _ = syncfs_of(&root);
        }));
    }

    /// Waits for the early writeback in flight, if any.
    async fn settle_early(&self) {
        let h = self.early.lock().ok().and_then(|mut e| e.take());
        if let Some(h) = h {
            let _ = h.await;
        }
    }
}

/// `syncfs(2)` of the file system holding `dir`.
#[cfg(target_os = "linux")]
fn syncfs_of(dir: &std::path::Path) -> std::io::Result<()> {
    let f = std::fs::File::open(dir)?;
    rustix::fs::syncfs(&f).map_err(std::io::Error::from)
}

#[cfg(not(target_os = "linux"))]
fn syncfs_of(_: &std::path::Path) -> std::io::Result<()> {
    Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
}

impl DurableLocal {
    /// Wraps `inner`.
    pub fn new(inner: LocalFileSystem) -> Self {
        // `LocalFileSystem` shows its root only as the directory of a top-level object.
        let root = inner
            .path_to_filesystem(&Path::from("root"))
            .ok()
            .and_then(|f| f.parent().map(Into::into));
        Self {
            inner: Arc::new(inner),
            group: Arc::new(Group {
                root,
                ..Group::default()
            }),
        }
    }

    /// From now on, writes are made durable by [`Self::sync_deferred`], not one by one.
    pub fn defer_syncs(&self) {
        if let Ok(mut d) = self.group.files.lock() {
            d.get_or_insert_with(Vec::new);
        }
    }

    /// Syncs every file written since [`Self::defer_syncs`] (or the last call), then their
    /// directories; returns how many files. Writes go on being deferred.
    pub async fn sync_deferred(&self) -> object_store::Result<u64> {
        self.group.settle_early().await;
        let files = match self.group.files.lock() {
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

    /// Makes `location` durable now, or later when syncs are deferred.
    async fn settle(&self, location: &Path) -> object_store::Result<()> {
        settle(&self.inner, &self.group, location).await
    }
}

async fn settle(
    fs: &Arc<LocalFileSystem>,
    group: &Group,
    location: &Path,
) -> object_store::Result<()> {
    if let Ok(mut d) = group.files.lock()
        && let Some(pending) = d.as_mut()
    {
        pending.push(fs.path_to_filesystem(location)?);
        return Ok(());
    }
    sync(fs.clone(), location.clone()).await
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
        tokio::task::spawn_blocking(move || one.iter().all(|d| syncfs_of(d).is_ok()))
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
async fn sync(fs: Arc<LocalFileSystem>, location: Path) -> object_store::Result<()> {
    let file = fs.path_to_filesystem(&location)?;
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
        let n = payload.content_length() as u64;
        let r = self.inner.put_opts(location, payload, opts).await?;
        self.settle(location).await?;
        self.group.wrote(n);
        Ok(r)
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        let inner = self.inner.put_multipart_opts(location, opts).await?;
        Ok(Box::new(DurableUpload {
            inner,
            fs: self.inner.clone(),
            group: self.group.clone(),
            location: location.clone(),
        }))
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
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
        self.settle(to).await
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
    fs: Arc<LocalFileSystem>,
    group: Arc<Group>,
    location: Path,
}

#[async_trait]
impl MultipartUpload for DurableUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let n = data.content_length() as u64;
        let part = self.inner.put_part(data);
        let group = self.group.clone();
        Box::pin(async move {
            part.await?;
            group.wrote(n);
            Ok(())
        })
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        let r = self.inner.complete().await?;
        settle(&self.fs, &self.group, &self.location).await?;
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

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn past_the_threshold_writeback_starts_before_the_final_sync() {
        use object_store::ObjectStoreExt;
        let dir = tempfile::tempdir().expect("tmp");
        let d = DurableLocal::new(LocalFileSystem::new_with_prefix(dir.path()).expect("fs"));
        let piece = vec![7u8; (EARLY_WRITEBACK / 4) as usize];
        d.put(&Path::from("undeferred"), piece.clone().into())
            .await
            .expect("put");
        d.put(&Path::from("again"), piece.clone().into())
            .await
            .expect("put");
        assert!(
            d.group.early.lock().expect("lock").is_none(),
            "synced one by one: nothing to start early"
        );
        d.defer_syncs();
        for i in 0..3 {
            d.put(&Path::from(format!("d/{i}")), piece.clone().into())
                .await
                .expect("put");
        }
        assert!(
            d.group.early.lock().expect("lock").is_none(),
            "below the threshold"
        );
        d.put(&Path::from("d/3"), piece.clone().into())
            .await
            .expect("put");
        assert!(
            d.group.early.lock().expect("lock").is_some(),
            "past it: a background writeback runs"
        );
        assert_eq!(d.sync_deferred().await.expect("sync"), 4);
        assert!(d.group.early.lock().expect("lock").is_none(), "waited for");
    }
}
