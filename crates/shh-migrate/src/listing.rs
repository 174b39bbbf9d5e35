//! A store's listing in byte order of the object names, in bounded memory.
//!
//! S3 and Azure list in order, `file://` does not, and a hub of millions of objects must not be
//! held in memory. So entries are collected in runs of at most `run_len`, each run sorted and
//! spilled to a temporary file, and the runs merged with a heap (an external merge sort). A
//! listing that fits in one run never touches the disk. Memory is `run_len` entries plus one
//! buffered entry per run.

use crate::{MigrateError, Result, io_err, is_internal};
use futures::TryStreamExt;
use object_store::ObjectStore;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

/// Entries per sorted run: about 100 bytes each, so ~20 MiB per run.
pub const DEFAULT_RUN_LEN: usize = 200_000;

/// One object of a listing.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    /// Name relative to the store URL's prefix.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
}

/// A sorted listing being read back.
pub struct SortedListing {
    source: Source,
    /// Objects listed.
    pub objects: u64,
    /// Their total size.
    pub bytes: u64,
    last: Option<String>,
    // Holds the spill files until the listing is dropped.
    _dir: Option<tempfile::TempDir>,
}

enum Source {
    Memory(std::vec::IntoIter<Entry>),
    Runs {
        readers: Vec<(BufReader<File>, std::path::PathBuf)>,
        heap: BinaryHeap<Reverse<(Entry, usize)>>,
    },
}

impl std::fmt::Debug for SortedListing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SortedListing")
            .field("objects", &self.objects)
            .field("bytes", &self.bytes)
            .finish()
    }
}

impl SortedListing {
    /// Lists `store` (without the migration's own objects) and sorts the names, spilling runs
    /// of `run_len` entries under `tmp`.
    pub async fn collect(
        store: &dyn ObjectStore,
        url: &str,
        prefix: Option<&str>,
        run_len: usize,
        tmp: &Path,
    ) -> Result<Self> {
        let run_len = run_len.max(1);
        let prefix = prefix
            .map(|p| p.trim_matches('/'))
            .filter(|p| !p.is_empty())
            .map(object_store::path::Path::from);
        let mut stream = store.list(prefix.as_ref());
        let mut buf: Vec<Entry> = Vec::new();
        let mut dir: Option<tempfile::TempDir> = None;
        let mut runs = Vec::new();
        let (mut objects, mut bytes) = (0u64, 0u64);
        let list_err = |source| MigrateError::List {
            url: url.to_owned(),
            source,
        };
        while let Some(meta) = stream.try_next().await.map_err(list_err)? {
            let path = meta.location.to_string();
            if is_internal(&path) {
                continue;
            }
            objects += 1;
            bytes += meta.size;
            buf.push(Entry {
                path,
                size: meta.size,
            });
            if buf.len() >= run_len {
                let d = match &mut dir {
                    Some(d) => d,
                    None => dir.insert(tempfile::tempdir_in(tmp).map_err(io_err(tmp))?),
                };
                runs.push(spill(&mut buf, d.path(), runs.len())?);
            }
        }
        let source = if runs.is_empty() {
            buf.sort_unstable();
            Source::Memory(buf.into_iter())
        } else {
            if let Some(d) = dir.as_ref().filter(|_| !buf.is_empty()) {
                runs.push(spill(&mut buf, d.path(), runs.len())?);
            }
            let mut readers = Vec::with_capacity(runs.len());
            let mut heap = BinaryHeap::new();
            for (i, p) in runs.into_iter().enumerate() {
                let mut r = BufReader::new(File::open(&p).map_err(io_err(&p))?);
                if let Some(e) = read_entry(&mut r, &p)? {
                    heap.push(Reverse((e, i)));
                }
                readers.push((r, p));
            }
            Source::Runs { readers, heap }
        };
        Ok(Self {
            source,
            objects,
            bytes,
            last: None,
            _dir: dir,
        })
    }

    /// An in-memory listing (tests, and small stores).
    pub fn from_entries(mut entries: Vec<Entry>) -> Self {
        entries.sort_unstable();
        let objects = entries.len() as u64;
        let bytes = entries.iter().map(|e| e.size).sum();
        Self {
            source: Source::Memory(entries.into_iter()),
            objects,
            bytes,
            last: None,
            _dir: None,
        }
    }

    fn next_raw(&mut self) -> Option<Result<Entry>> {
        match &mut self.source {
            Source::Memory(it) => it.next().map(Ok),
            Source::Runs { readers, heap } => {
                let Reverse((e, i)) = heap.pop()?;
                let (r, p) = &mut readers[i];
                match read_entry(r, p) {
                    Ok(Some(next)) => heap.push(Reverse((next, i))),
                    Ok(None) => {}
                    Err(err) => return Some(Err(err)),
                }
                Some(Ok(e))
            }
        }
    }
}

impl Iterator for SortedListing {
    type Item = Result<Entry>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let e = match self.next_raw()? {
                Ok(e) => e,
                Err(err) => return Some(Err(err)),
            };
            // A listing repeats a name only if the store changed under it; keep the first.
            if self.last.as_deref() == Some(e.path.as_str()) {
                continue;
            }
            self.last = Some(e.path.clone());
            return Some(Ok(e));
        }
    }
}

fn spill(buf: &mut Vec<Entry>, dir: &Path, n: usize) -> Result<std::path::PathBuf> {
    buf.sort_unstable();
    let p = dir.join(format!("run-{n:06}"));
    let f = File::create(&p).map_err(io_err(&p))?;
    let mut w = BufWriter::new(f);
    for e in buf.drain(..) {
        let name = e.path.as_bytes();
        let len = u32::try_from(name.len()).map_err(|_| MigrateError::Format {
            path: p.clone(),
            reason: "object name longer than 4 GiB".into(),
        })?;
        w.write_all(&len.to_le_bytes()).map_err(io_err(&p))?;
        w.write_all(name).map_err(io_err(&p))?;
        w.write_all(&e.size.to_le_bytes()).map_err(io_err(&p))?;
    }
    w.flush().map_err(io_err(&p))?;
    Ok(p)
}

fn read_entry(r: &mut impl Read, p: &Path) -> Result<Option<Entry>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(io_err(p)(e)),
    }
    let mut name = vec![0u8; u32::from_le_bytes(len) as usize];
    r.read_exact(&mut name).map_err(io_err(p))?;
    let mut size = [0u8; 8];
    r.read_exact(&mut size).map_err(io_err(p))?;
    let path = String::from_utf8(name).map_err(|_| MigrateError::Format {
        path: p.to_owned(),
        reason: "spill file holds a name that is not UTF-8".into(),
    })?;
    Ok(Some(Entry {
        path,
        size: u64::from_le_bytes(size),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;
    use object_store::{ObjectStoreExt, PutPayload};
    use proptest::prelude::*;

    async fn listing(names: &[String], run_len: usize) -> Vec<Entry> {
        let store = InMemory::new();
        for (i, n) in names.iter().enumerate() {
            store
                .put(
                    &object_store::path::Path::from(n.as_str()),
                    PutPayload::from(vec![0u8; i % 7]),
                )
                .await
                .expect("put");
        }
        let tmp = tempfile::tempdir().expect("tmp");
        SortedListing::collect(&store, "memory://", None, run_len, tmp.path())
            .await
            .expect("list")
            .collect::<Result<Vec<_>>>()
            .expect("entries")
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// Spilled runs merge into the same order as one in-memory sort, without duplicates.
        #[test]
        fn spilled_runs_merge_in_byte_order(names in proptest::collection::btree_set("[a-c/._-]{1,6}[a-z]", 0..60), run_len in 1usize..9) {
            let names: Vec<String> = names.into_iter().filter(|n| !n.contains("//") && !n.starts_with('/') && !n.contains("/.")&& !n.starts_with('.')).collect();
            let rt = tokio::runtime::Builder::new_current_thread().build().expect("rt");
            let spilled = rt.block_on(listing(&names, run_len));
            let memory = rt.block_on(listing(&names, usize::MAX));
            let got: Vec<&str> = spilled.iter().map(|e| e.path.as_str()).collect();
            let mut want: Vec<&str> = memory.iter().map(|e| e.path.as_str()).collect();
            prop_assert_eq!(&got, &want);
            want.sort_unstable();
            want.dedup();
            prop_assert_eq!(got, want);
        }
    }

    #[tokio::test]
    async fn the_migrations_own_objects_are_not_listed() {
        let names = vec![
            ".shh-migrate/probe".to_owned(),
            ".shh-quarantine/x/a".to_owned(),
            "datasets/a".to_owned(),
        ];
        let got = listing(&names, 2).await;
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].path, "datasets/a");
    }
}
