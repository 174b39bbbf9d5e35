//! A sink that is a local directory: each result is a subdirectory, assembled under a hidden
//! name beside it and renamed into place (never over an existing one) once every file is
//! synced, so a crash or an error leaves no half-written result under the name.

use crate::{Result, SinkError, SinkFile, Staged, check_file_name, check_result_name};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use tokio::io::AsyncWriteExt;

/// Results as subdirectories of a local directory (made when the first result is staged).
#[derive(Debug, Clone)]
pub struct DirSink {
    dir: PathBuf,
}

impl DirSink {
    /// Results go under `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// A sink for a result at `path` itself (its parent directory, and its file name as the
    /// result's name): what a command given `--out DIR` for one result uses.
    pub fn for_path(path: &Path) -> Result<(Self, String)> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| SinkError::BadName {
                name: path.display().to_string(),
                reason: "not a directory name",
            })?;
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        Ok((Self::new(parent), name))
    }
}

fn io(location: &Path) -> impl FnOnce(std::io::Error) -> SinkError + '_ {
    move |source| SinkError::Io {
        location: location.display().to_string(),
        source,
    }
}

#[async_trait::async_trait]
impl crate::Sink for DirSink {
    fn location(&self) -> String {
        self.dir.display().to_string()
    }

    async fn stage(&self, name: &str) -> Result<Box<dyn Staged>> {
        check_result_name(name)?;
        let target = self.dir.join(name);
        if tokio::fs::symlink_metadata(&target).await.is_ok() {
            return Err(SinkError::Exists {
                name: name.to_owned(),
                location: target.display().to_string(),
            });
        }
        tokio::fs::create_dir_all(&self.dir)
            .await
            .map_err(io(&self.dir))?;
        let tmp = self
            .dir
            .join(format!(".{name}.partial-{}", uuid::Uuid::new_v4().simple()));
        tokio::fs::create_dir(&tmp).await.map_err(io(&tmp))?;
        Ok(Box::new(DirStaged {
            name: name.to_owned(),
            parent: self.dir.clone(),
            target,
            dirs: Mutex::new(BTreeSet::from([tmp.clone()])),
            tmp,
            settled: false,
        }))
    }
}

#[derive(Debug)]
struct DirStaged {
    name: String,
    parent: PathBuf,
    target: PathBuf,
    /// The hidden directory the result is assembled in.
    tmp: PathBuf,
    /// Committed or aborted: nothing is left to remove when dropped.
    settled: bool,
    /// Directories made (each is synced before the rename, so its entries survive a crash).
    dirs: Mutex<BTreeSet<PathBuf>>,
}

impl Drop for DirStaged {
    fn drop(&mut self) {
        if !self.settled {
            let _ = std::fs::remove_dir_all(&self.tmp);
        }
    }
}

#[async_trait::async_trait]
impl Staged for DirStaged {
    fn location(&self) -> String {
        self.target.display().to_string()
    }

    async fn create(&self, name: &str) -> Result<Box<dyn SinkFile>> {
        check_file_name(name)?;
        let path = self.tmp.join(name);
        if let Some(parent) = path.parent().filter(|p| *p != self.tmp) {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(io(parent))?;
            let mut dirs = self.dirs.lock().unwrap_or_else(|e| e.into_inner());
            let mut p = parent;
            while p != self.tmp && dirs.insert(p.to_owned()) {
                match p.parent() {
                    Some(up) => p = up,
                    None => break,
                }
            }
        }
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .await
            .map_err(|source| {
                if source.kind() == std::io::ErrorKind::AlreadyExists {
                    SinkError::Exists {
                        name: name.to_owned(),
                        location: self.target.join(name).display().to_string(),
                    }
                } else {
                    io(&path)(source)
                }
            })?;
        Ok(Box::new(DirFile {
            out: tokio::io::BufWriter::with_capacity(1 << 20, file),
            path,
        }))
    }

    async fn commit(mut self: Box<Self>) -> Result<String> {
        let dirs: Vec<PathBuf> =
            std::mem::take(&mut *self.dirs.lock().unwrap_or_else(|e| e.into_inner()))
                .into_iter()
                .collect();
        // Deepest first, so each directory's entries are durable before its parent's.
        for d in dirs.iter().rev() {
            sync_dir(d).await?;
        }
        rename_new(&self.tmp, &self.target, &self.name).await?;
        self.settled = true;
        sync_dir(&self.parent).await?;
        Ok(self.target.display().to_string())
    }

    async fn abort(mut self: Box<Self>) {
        self.settled = true;
        let _ = tokio::fs::remove_dir_all(&self.tmp).await;
    }
}

#[derive(Debug)]
struct DirFile {
    out: tokio::io::BufWriter<tokio::fs::File>,
    path: PathBuf,
}

#[async_trait::async_trait]
impl SinkFile for DirFile {
    async fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.out.write_all(bytes).await.map_err(io(&self.path))
    }

    async fn finish(mut self: Box<Self>) -> Result<()> {
        self.out.flush().await.map_err(io(&self.path))?;
        self.out.get_ref().sync_all().await.map_err(io(&self.path))
    }
}

async fn sync_dir(d: &Path) -> Result<()> {
    let f = tokio::fs::File::open(d).await.map_err(io(d))?;
    f.sync_all().await.map_err(io(d))
}

/// Renames `from` to `to` unless `to` exists, atomically where the OS can (Linux's
/// `RENAME_NOREPLACE`); elsewhere, or on a file system without it, after a check (a race
/// with another writer of the same name could then replace an empty directory only).
async fn rename_new(from: &Path, to: &Path, name: &str) -> Result<()> {
    let exists = || SinkError::Exists {
        name: name.to_owned(),
        location: to.display().to_string(),
    };
    #[cfg(target_os = "linux")]
    {
        let (f, t) = (from.to_owned(), to.to_owned());
        let res = tokio::task::spawn_blocking(move || {
            rustix::fs::renameat_with(
                rustix::fs::CWD,
                &f,
                rustix::fs::CWD,
                &t,
                rustix::fs::RenameFlags::NOREPLACE,
            )
        })
        .await
        .map_err(|e| io(to)(std::io::Error::other(e)))?;
        match res {
            Ok(()) => return Ok(()),
            Err(rustix::io::Errno::EXIST) => return Err(exists()),
            Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS) => {}
            Err(e) => return Err(io(to)(e.into())),
        }
    }
    if tokio::fs::symlink_metadata(to).await.is_ok() {
        return Err(exists());
    }
    tokio::fs::rename(from, to).await.map_err(io(to))
}
