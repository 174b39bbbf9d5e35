//! The crash-safe journal of a migration between two stores.
//!
//! One JSON line per fact, appended as it happens: an object verified at the destination, a
//! multipart upload started (its id and part size), a part uploaded (its id and the BLAKE3 of
//! the source bytes), an upload finished. Each line is written with one `write` call, so after
//! `kill -9` the file ends with whole lines plus at most one torn line, which is ignored. The
//! lines are fsynced at most every second and at the end: a power loss forgets at most the
//! last second, and what is forgotten is redone (never skipped).
//!
//! A re-run uses the journal for what a new listing cannot show: unfinished multipart uploads,
//! which are invisible until completed. Their finished parts are not sent again.
//!
//! The journal of a pair of stores serves every run between them (the first copy, then each
//! sync of the parallel-operation window), so it would grow by a line per object copied. When
//! it is opened above 64 MiB it is compacted: rewritten as one summary line (how many objects
//! were verified) plus the lines of the uploads still open, then renamed over the old one, so
//! a crash during compaction leaves the old journal whole.

use crate::{MigrateError, Result, io_err};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
enum Record {
    /// Verified at the destination.
    Done { p: String, s: u64, h: String },
    /// Multipart upload started.
    Mpu {
        p: String,
        s: u64,
        ps: u64,
        id: String,
    },
    /// Part `i` uploaded: its id at the service and the source bytes' BLAKE3.
    Part {
        p: String,
        i: usize,
        e: String,
        h: String,
    },
    /// Multipart upload completed or abandoned.
    MpuEnd { p: String },
    /// A write to a local destination started: until `Done`, a kill may leave its staging
    /// files (`NAME#N`) behind, which the next run removes.
    Start { p: String },
    /// Those staging files were removed.
    Clean { p: String },
    /// What a compaction kept of the lines before it: the number of `Done` records.
    Summary { done: u64 },
}

/// A journal opened above this size is compacted.
const COMPACT_AT: u64 = 64 * 1024 * 1024;

/// An unfinished multipart upload found in the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenUpload {
    /// Object size it was started for.
    pub size: u64,
    /// Part size.
    pub part_size: u64,
    /// The service's upload id.
    pub id: String,
    /// Finished parts: index → (service part id, BLAKE3 of the source bytes).
    pub parts: BTreeMap<usize, (String, String)>,
}

/// An open journal.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: Mutex<(File, Instant)>,
    /// A periodic sync is running.
    syncing: Arc<AtomicBool>,
    open: Mutex<HashMap<String, OpenUpload>>,
    /// Local writes started and not verified when the journal was opened.
    started: Vec<String>,
    done: u64,
}

impl Journal {
    /// Opens (or creates) the journal at `path` and replays it.
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_compacting_at(path, COMPACT_AT)
    }

    /// [`Journal::open`], compacting a journal larger than `limit` bytes.
    pub fn open_compacting_at(path: &Path, limit: u64) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        }
        let mut open: HashMap<String, OpenUpload> = HashMap::new();
        let mut started: std::collections::BTreeSet<String> = Default::default();
        let mut done = 0;
        if path.exists() {
            let f = File::open(path).map_err(io_err(path))?;
            for line in BufReader::new(f).split(b'\n') {
                let line = line.map_err(io_err(path))?;
                // A torn last line (the process died mid-write) carries nothing finished.
                let Ok(rec) = serde_json::from_slice::<Record>(&line) else {
                    continue;
                };
                match rec {
                    Record::Done { p, .. } => {
                        done += 1;
                        open.remove(&p);
                        started.remove(&p);
                    }
                    Record::Start { p } => {
                        started.insert(p);
                    }
                    Record::Clean { p } => {
                        started.remove(&p);
                    }
                    Record::Mpu { p, s, ps, id } => {
                        open.insert(
                            p,
                            OpenUpload {
                                size: s,
                                part_size: ps,
                                id,
                                parts: BTreeMap::new(),
                            },
                        );
                    }
                    Record::Part { p, i, e, h } => {
                        if let Some(u) = open.get_mut(&p) {
                            u.parts.insert(i, (e, h));
                        }
                    }
                    Record::MpuEnd { p } => {
                        open.remove(&p);
                    }
                    Record::Summary { done: n } => done += n,
                }
            }
            if std::fs::metadata(path).map_err(io_err(path))?.len() > limit {
                compact(path, done, &open, &started)?;
            }
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(path)
            .map_err(io_err(path))?;
        // Close a torn last line, so the next record is not glued to it.
        let len = file.metadata().map_err(io_err(path))?.len();
        if len > 0 {
            use std::io::{Read, Seek, SeekFrom};
            let mut last = [0u8; 1];
            file.seek(SeekFrom::Start(len - 1)).map_err(io_err(path))?;
            file.read_exact(&mut last).map_err(io_err(path))?;
            if last[0] != b'\n' {
                file.write_all(b"\n").map_err(io_err(path))?;
            }
        }
        Ok(Self {
            path: path.to_owned(),
            file: Mutex::new((file, Instant::now())),
            syncing: Arc::default(),
            open: Mutex::new(open),
            started: started.into_iter().collect(),
            done,
        })
    }

    /// The journal file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Objects recorded as verified when the journal was opened.
    pub fn done_before(&self) -> u64 {
        self.done
    }

    /// Unfinished uploads found when the journal was opened (how many).
    pub fn open_uploads(&self) -> usize {
        self.open.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// Local writes that were started and never verified (a run killed mid-write).
    pub fn started_not_done(&self) -> &[String] {
        &self.started
    }

    /// The unfinished uploads no object of this run took up: (path, upload id).
    pub fn untaken_uploads(&self) -> Vec<(String, String)> {
        self.open
            .lock()
            .map(|m| m.iter().map(|(p, u)| (p.clone(), u.id.clone())).collect())
            .unwrap_or_default()
    }

    /// Records a write to a local destination starting.
    pub fn started(&self, path: &str) -> Result<()> {
        self.append(&Record::Start { p: path.into() })
    }

    /// Records that a killed write's staging files were removed.
    pub fn cleaned(&self, path: &str) -> Result<()> {
        self.append(&Record::Clean { p: path.into() })
    }

    /// Takes the unfinished upload of `path`, if one was journalled.
    pub fn take_upload(&self, path: &str) -> Option<OpenUpload> {
        self.open.lock().ok()?.remove(path)
    }

    fn append(&self, rec: &Record) -> Result<()> {
        let mut line = serde_json::to_vec(rec).map_err(|e| MigrateError::Format {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        line.push(b'\n');
        let mut g = self.file.lock().map_err(|_| MigrateError::Format {
            path: self.path.clone(),
            reason: "journal lock poisoned".into(),
        })?;
        g.0.write_all(&line).map_err(io_err(&self.path))?;
        if g.1.elapsed() < Duration::from_secs(1) {
            return Ok(());
        }
        g.1 = Instant::now();
        // Once a second the lines so far are made durable, on a thread of their own: an
        // fdatasync can wait a second behind other writeback of the file system, and under
        // the lock (on an async worker) it stalled every transfer with it. It only bounds
        // what a crash forgets (the next run re-plans from listings anyway); `sync` at the
        // end of a run is the one that reports failure.
        let Ok(f) = g.0.try_clone() else {
            return Ok(());
        };
        drop(g);
        if !self.syncing.swap(true, Ordering::AcqRel) {
            let syncing = self.syncing.clone();
            let sync = move || {
                let _ = f.sync_data();
                syncing.store(false, Ordering::Release);
            };
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => drop(rt.spawn_blocking(sync)),
                Err(_) => sync(),
            }
        }
        Ok(())
    }

    /// Records an object verified at the destination.
    pub fn done(&self, path: &str, size: u64, digest: &str) -> Result<()> {
        self.append(&Record::Done {
            p: path.into(),
            s: size,
            h: digest.into(),
        })
    }

    /// Records a started multipart upload.
    pub fn upload_started(&self, path: &str, size: u64, part_size: u64, id: &str) -> Result<()> {
        self.append(&Record::Mpu {
            p: path.into(),
            s: size,
            ps: part_size,
            id: id.into(),
        })
    }

    /// Records an uploaded part.
    pub fn part_done(&self, path: &str, index: usize, part_id: &str, blake3: &str) -> Result<()> {
        self.append(&Record::Part {
            p: path.into(),
            i: index,
            e: part_id.into(),
            h: blake3.into(),
        })
    }

    /// Records that an upload will not be resumed (completed or abandoned).
    pub fn upload_ended(&self, path: &str) -> Result<()> {
        self.append(&Record::MpuEnd { p: path.into() })
    }

    /// Flushes to stable storage.
    pub fn sync(&self) -> Result<()> {
        let g = self.file.lock().map_err(|_| MigrateError::Format {
            path: self.path.clone(),
            reason: "journal lock poisoned".into(),
        })?;
        g.0.sync_data().map_err(io_err(&self.path))
    }
}

/// Rewrites the journal at `path` as its summary and open uploads: written beside it,
/// fsynced, renamed over it, and the directory fsynced.
fn compact(
    path: &Path,
    done: u64,
    open: &HashMap<String, OpenUpload>,
    started: &std::collections::BTreeSet<String>,
) -> Result<()> {
    let tmp = path.with_extension("compacting");
    let mut out = Vec::new();
    let mut line = |rec: &Record| -> Result<()> {
        serde_json::to_writer(&mut out, rec).map_err(|e| MigrateError::Format {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        out.push(b'\n');
        Ok(())
    };
    line(&Record::Summary { done })?;
    for p in started {
        line(&Record::Start { p: p.clone() })?;
    }
    let mut names: Vec<&String> = open.keys().collect();
    names.sort();
    for name in names {
        let Some(u) = open.get(name) else { continue };
        line(&Record::Mpu {
            p: name.clone(),
            s: u.size,
            ps: u.part_size,
            id: u.id.clone(),
        })?;
        for (i, (e, h)) in &u.parts {
            line(&Record::Part {
                p: name.clone(),
                i: *i,
                e: e.clone(),
                h: h.clone(),
            })?;
        }
    }
    let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
    f.write_all(&out).map_err(io_err(&tmp))?;
    f.sync_all().map_err(io_err(&tmp))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io_err(path))?;
    if let Some(dir) = path.parent() {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(dir))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unfinished_uploads_survive_a_torn_last_line() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("j.ndjson");
        {
            let j = Journal::open(&p).expect("open");
            j.upload_started("big", 100, 10, "u1").expect("mpu");
            j.part_done("big", 0, "e0", "h0").expect("part");
            j.part_done("big", 3, "e3", "h3").expect("part");
            j.upload_started("done", 20, 10, "u2").expect("mpu");
            j.done("done", 20, "d").expect("done");
            j.done("small", 1, "s").expect("done");
        }
        let mut f = OpenOptions::new().append(true).open(&p).expect("append");
        f.write_all(br#"{"t":"part","p":"big","i":1,"e":"e1","#)
            .expect("torn");
        drop(f);
        let j = Journal::open(&p).expect("reopen");
        assert_eq!(j.done_before(), 2);
        let u = j.take_upload("big").expect("open upload");
        assert_eq!(u.id, "u1");
        assert_eq!(u.parts.keys().copied().collect::<Vec<_>>(), vec![0, 3]);
        assert!(j.take_upload("done").is_none());
        // The next record starts on its own line despite the torn one.
        j.done("after", 1, "a").expect("done");
        drop(j);
        assert_eq!(Journal::open(&p).expect("again").done_before(), 3);
    }

    #[test]
    fn a_large_journal_is_compacted_to_its_summary_and_open_uploads() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("j.ndjson");
        {
            let j = Journal::open(&p).expect("open");
            for i in 0..500 {
                j.done(&format!("obj-{i}"), 10, "d").expect("done");
            }
            j.upload_started("big", 100, 10, "u1").expect("mpu");
            j.part_done("big", 2, "e2", "h2").expect("part");
            j.upload_started("gone", 100, 10, "u2").expect("mpu");
            j.upload_ended("gone").expect("end");
        }
        let before = std::fs::metadata(&p).expect("meta").len();
        let j = Journal::open_compacting_at(&p, 1024).expect("compact");
        assert_eq!(j.done_before(), 500);
        j.done("after", 1, "a").expect("append after compaction");
        drop(j);
        let after = std::fs::metadata(&p).expect("meta").len();
        assert!(after < before / 10, "{after} bytes of {before}");
        let j = Journal::open(&p).expect("reopen");
        assert_eq!(j.done_before(), 501);
        let u = j.take_upload("big").expect("open upload kept");
        assert_eq!((u.id.as_str(), u.size, u.part_size), ("u1", 100, 10));
        assert_eq!(u.parts.get(&2), Some(&("e2".to_owned(), "h2".to_owned())));
        assert!(j.take_upload("gone").is_none());
        assert!(!p.with_extension("compacting").exists());
    }
}
