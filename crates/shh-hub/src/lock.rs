//! One hub directory, several processes. Every process that opens a hub holds a shared lock on
//! `<hub>/hub.lock` for as long as it has the hub open. A cut-over or a rollback copies the
//! store, switches it and must not see another process write to the old one (a dataset
//! version, or merely an audit event of a read) after its final copy, so it turns its own lock
//! exclusive first, which succeeds only when no other process has the hub open. While it holds
//! it, opening the hub fails at once and says why. The kernel drops a dead process's lock: a
//! crash never leaves the hub locked.

use crate::{HubError, Result, io};
use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

const LOCK_FILE: &str = "hub.lock";

/// A lock file, created if missing, never truncated (its contents are not the lock).
fn open_lock_file(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .map_err(io(path))
}

/// This process's hold on a hub directory.
#[derive(Debug, Clone)]
pub(crate) struct HubLock {
    file: Arc<File>,
    path: PathBuf,
}

impl HubLock {
    /// Takes the shared lock of the hub in `dir`; fails at once while a switch holds it.
    pub(crate) fn shared(dir: &Path) -> Result<Self> {
        let path = dir.join(LOCK_FILE);
        let file = open_lock_file(&path)?;
        match file.try_lock_shared() {
            Ok(()) => Ok(Self {
                file: Arc::new(file),
                path,
            }),
            Err(TryLockError::WouldBlock) => Err(HubError::Busy(
                "a migration cut-over or rollback is switching this hub's store; retry when it \
                 has finished"
                    .into(),
            )),
            Err(TryLockError::Error(e)) => Err(io(&path)(e)),
        }
    }

    /// Turns this process's lock exclusive, waiting up to `wait` for other processes to close
    /// the hub.
    pub(crate) async fn exclusive(&self, wait: Duration) -> Result<()> {
        let deadline = Instant::now() + wait;
        loop {
            match self.file.try_lock() {
                Ok(()) => return Ok(()),
                Err(TryLockError::WouldBlock) => {
                    // A refused conversion may have dropped the shared lock (flock converts by
                    // unlocking first): take it back before waiting.
                    self.file.lock_shared().map_err(io(&self.path))?;
                    if Instant::now() >= deadline {
                        return Err(HubError::Busy(
                            "other shh processes have this hub open; a cut-over or rollback \
                             must be the only one: stop them and retry"
                                .into(),
                        ));
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(TryLockError::Error(e)) => return Err(io(&self.path)(e)),
            }
        }
    }

    /// Back to a shared lock, letting other processes open the hub again.
    pub(crate) fn share(&self) -> Result<()> {
        self.file.lock_shared().map_err(io(&self.path))
    }
}

/// One project's aggregate answers, one at a time, across the tasks of a process and the
/// processes of a hub: between reading the project's ledger and adding a result's cells to it,
/// no other answer of the project may read it, or a differencing pair sent at once would find
/// neither half in the ledger. A lock file per project (`locks/ledger-<hash>.lock`), held
/// while the guard lives; the kernel drops it with a dead process.
#[derive(Debug)]
pub(crate) struct LedgerLock {
    _file: File,
}

impl LedgerLock {
    /// Waits up to `wait` for the project's ledger.
    pub(crate) async fn take(dir: &Path, project: &str, wait: Duration) -> Result<Self> {
        let locks = dir.join("locks");
        std::fs::create_dir_all(&locks).map_err(io(&locks))?;
        let hash = blake3::hash(project.as_bytes()).to_hex();
        let path = locks.join(format!("ledger-{}.lock", &hash[..32]));
        // A file of its own per taker: flock excludes open files, so two tasks of one process
        // exclude each other as two processes do.
        let file = open_lock_file(&path)?;
        let deadline = Instant::now() + wait;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(Self { _file: file }),
                Err(TryLockError::WouldBlock) => {
                    if Instant::now() >= deadline {
                        return Err(HubError::Busy(
                            "another query of this project is being answered; retry".into(),
                        ));
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(TryLockError::Error(e)) => return Err(io(&path)(e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_exclusive_lock_waits_for_other_holders_and_keeps_openers_out() {
        let dir = tempfile::tempdir().expect("tmp");
        let a = HubLock::shared(dir.path()).expect("first");
        let b = HubLock::shared(dir.path()).expect("second shares");
        let e = a
            .exclusive(Duration::from_millis(250))
            .await
            .expect_err("b still holds it");
        assert!(matches!(e, HubError::Busy(_)));
        // The refused attempt left `a` holding its shared lock.
        assert!(matches!(
            File::open(dir.path().join(LOCK_FILE))
                .expect("open")
                .try_lock(),
            Err(TryLockError::WouldBlock)
        ));
        drop(b);
        a.exclusive(Duration::from_secs(5))
            .await
            .expect("alone now");
        assert!(matches!(
            HubLock::shared(dir.path()),
            Err(HubError::Busy(_))
        ));
        a.share().expect("share again");
        HubLock::shared(dir.path()).expect("others may open again");
    }

    #[tokio::test]
    async fn one_answer_of_a_project_at_a_time() {
        let dir = tempfile::tempdir().expect("tmp");
        let wait = Duration::from_millis(100);
        let first = LedgerLock::take(dir.path(), "p1", wait)
            .await
            .expect("first");
        let e = LedgerLock::take(dir.path(), "p1", wait)
            .await
            .expect_err("the project's ledger is held");
        assert!(matches!(e, HubError::Busy(_)));
        LedgerLock::take(dir.path(), "p2", wait)
            .await
            .expect("another project's is not");
        drop(first);
        LedgerLock::take(dir.path(), "p1", wait)
            .await
            .expect("free again");
    }
}
