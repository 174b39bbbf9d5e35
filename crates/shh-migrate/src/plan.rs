//! The march (a sorted merge of the source and destination listings) and the plan file.
//!
//! A plan is two files: `PLAN.json`, a header an operator reads (stores, capabilities, counts,
//! bytes, an estimate and the plan's hash), and `PLAN.objects.jsonl`, one line per object,
//! whose BLAKE3 the header records. Both are streamed, so a plan over millions of objects is
//! written and replayed in constant memory; `run --plan` refuses a plan whose objects file
//! does not match its header.

use crate::listing::Entry;
use crate::probe::Capabilities;
use crate::{MigrateError, Result, io_err};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::iter::Peekable;
use std::path::{Path, PathBuf};

/// Plan format marker.
pub const PLAN_FORMAT: &str = "shh.migrate.plan/1";

/// What to do with one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Only at the source: copy it (create-only).
    Copy,
    /// At both sides with the same size. Hub objects are immutable and uniquely named, so this
    /// is the same object; `migrate verify` proves it against the manifests.
    Same,
    /// At both sides with the same size, and `--checksum` asked to compare contents.
    Check,
    /// At both sides with different sizes: the destination copy is wrong and is replaced.
    Replace,
    /// Only at the destination: left alone, or (sync `--delete`) quarantined then deleted.
    DestOnly,
}

/// One line of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// Object name relative to both stores' prefixes.
    pub path: String,
    /// What to do.
    pub action: Action,
    /// Size at the source (at the destination for [`Action::DestOnly`]).
    pub size: u64,
    /// Size at the destination, when it is there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst_size: Option<u64>,
}

/// Merges two sorted listings into plan items.
pub fn march<S, D>(src: S, dst: D, checksum: bool) -> March<S, D>
where
    S: Iterator<Item = Result<Entry>>,
    D: Iterator<Item = Result<Entry>>,
{
    March {
        src: src.peekable(),
        dst: dst.peekable(),
        checksum,
    }
}

/// The iterator [`march`] returns.
pub struct March<S: Iterator, D: Iterator> {
    src: Peekable<S>,
    dst: Peekable<D>,
    checksum: bool,
}

impl<S, D> Iterator for March<S, D>
where
    S: Iterator<Item = Result<Entry>>,
    D: Iterator<Item = Result<Entry>>,
{
    type Item = Result<Item>;

    fn next(&mut self) -> Option<Result<Item>> {
        if let Some(Err(_)) = self.src.peek() {
            return self.src.next().map(|r| r.map(|_| unreachable_item()));
        }
        if let Some(Err(_)) = self.dst.peek() {
            return self.dst.next().map(|r| r.map(|_| unreachable_item()));
        }
        let order = match (self.src.peek(), self.dst.peek()) {
            (None, None) => return None,
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some(Ok(s)), Some(Ok(d))) => s.path.cmp(&d.path),
            _ => return None,
        };
        let item = match order {
            std::cmp::Ordering::Less => {
                let s = self.src.next()?.ok()?;
                Item {
                    path: s.path,
                    action: Action::Copy,
                    size: s.size,
                    dst_size: None,
                }
            }
            std::cmp::Ordering::Greater => {
                let d = self.dst.next()?.ok()?;
                Item {
                    path: d.path,
                    action: Action::DestOnly,
                    size: d.size,
                    dst_size: Some(d.size),
                }
            }
            std::cmp::Ordering::Equal => {
                let s = self.src.next()?.ok()?;
                let d = self.dst.next()?.ok()?;
                let action = if s.size != d.size {
                    Action::Replace
                } else if self.checksum {
                    Action::Check
                } else {
                    Action::Same
                };
                Item {
                    path: s.path,
                    action,
                    size: s.size,
                    dst_size: Some(d.size),
                }
            }
        };
        Some(Ok(item))
    }
}

// An `Err` peeked above is returned as is; this value is never built.
fn unreachable_item() -> Item {
    Item {
        path: String::new(),
        action: Action::Same,
        size: 0,
        dst_size: None,
    }
}

/// Objects and bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// Objects.
    pub objects: u64,
    /// Bytes.
    pub bytes: u64,
}

impl Tally {
    /// Counts one object of `bytes`.
    pub fn add(&mut self, bytes: u64) {
        self.objects += 1;
        self.bytes += bytes;
    }
}

/// Counts per action.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// To copy.
    pub copy: Tally,
    /// Already there.
    pub same: Tally,
    /// To compare by content.
    pub check: Tally,
    /// To replace.
    pub replace: Tally,
    /// Only at the destination.
    pub dest_only: Tally,
}

impl Summary {
    /// Counts one item.
    pub fn add(&mut self, item: &Item) {
        match item.action {
            Action::Copy => self.copy.add(item.size),
            Action::Same => self.same.add(item.size),
            Action::Check => self.check.add(item.size),
            Action::Replace => self.replace.add(item.size),
            Action::DestOnly => self.dest_only.add(item.size),
        }
    }

    /// Bytes that will be sent to the destination.
    pub fn bytes_to_send(&self) -> u64 {
        self.copy.bytes + self.replace.bytes
    }

    /// Objects at the source.
    pub fn source(&self) -> Tally {
        Tally {
            objects: self.copy.objects
                + self.same.objects
                + self.check.objects
                + self.replace.objects,
            bytes: self.copy.bytes + self.same.bytes + self.check.bytes + self.replace.bytes,
        }
    }
}

/// How long the run should take, and on what assumptions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    /// Seconds.
    pub seconds: f64,
    /// Assumed throughput, bytes per second.
    pub bytes_per_sec: f64,
    /// Assumed per-object cost (round trips to both sides), seconds.
    pub per_object_sec: f64,
    /// Concurrent transfers assumed.
    pub transfers: usize,
}

impl Estimate {
    /// Seconds for `summary` at the given assumptions.
    pub fn new(
        summary: &Summary,
        bytes_per_sec: f64,
        per_object_sec: f64,
        transfers: usize,
    ) -> Self {
        let objects =
            (summary.copy.objects + summary.replace.objects + summary.check.objects) as f64;
        let bytes = (summary.bytes_to_send() + 2 * summary.check.bytes) as f64;
        let t = transfers.max(1) as f64;
        Self {
            seconds: objects * per_object_sec / t + bytes / bytes_per_sec.max(1.0),
            bytes_per_sec,
            per_object_sec,
            transfers,
        }
    }
}

/// `PLAN.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanHeader {
    /// [`PLAN_FORMAT`].
    pub format: String,
    /// When it was made.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Source store URL.
    pub from: String,
    /// Destination store URL.
    pub to: String,
    /// Only names under this prefix were listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// The proxy every request goes through (the residency policy's), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<String>,
    /// Whether same-size objects are compared by content.
    pub checksum: bool,
    /// Counts per action.
    pub summary: Summary,
    /// What each side can do.
    pub capabilities: PlanCapabilities,
    /// Expected duration.
    pub estimate: Estimate,
    /// The objects file, relative to the header's directory.
    pub objects_file: String,
    /// BLAKE3 of the objects file.
    pub objects_blake3: String,
    /// BLAKE3 of this header without this field: the plan's identity.
    #[serde(default)]
    pub plan_hash: String,
}

/// Both sides' capabilities.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanCapabilities {
    /// Source.
    pub from: Capabilities,
    /// Destination.
    pub to: Capabilities,
}

impl PlanHeader {
    /// BLAKE3 of the canonical JSON of the header without `plan_hash`. It goes through a
    /// parsed JSON value on both sides, so the floats hash the same after a round trip.
    fn hash(&self) -> String {
        let bytes = serde_json::to_vec(self).unwrap_or_default();
        hash_json(&bytes)
    }
}

fn hash_json(bytes: &[u8]) -> String {
    let mut v: serde_json::Value = serde_json::from_slice(bytes).unwrap_or_default();
    if let Some(m) = v.as_object_mut() {
        m.remove("plan_hash");
    }
    blake3::hash(&shh_audit::canonical::to_canonical_vec(&v))
        .to_hex()
        .to_string()
}

/// Where the objects file of a plan at `header` lives.
pub fn objects_path(header: &Path) -> PathBuf {
    let stem = header
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "plan".into());
    header.with_file_name(format!("{stem}.objects.jsonl"))
}

/// Streams the items to the objects file beside `out`, then writes the header. Returns it.
pub fn write_plan(
    out: &Path,
    items: impl Iterator<Item = Result<Item>>,
    mut header: PlanHeader,
    estimate: impl FnOnce(&Summary) -> Estimate,
) -> Result<PlanHeader> {
    let objects = objects_path(out);
    let tmp = objects.with_extension("jsonl.part");
    let f = File::create(&tmp).map_err(io_err(&tmp))?;
    let mut w = BufWriter::new(f);
    let mut hasher = blake3::Hasher::new();
    let mut summary = Summary::default();
    let mut line = Vec::with_capacity(256);
    for item in items {
        let item = item?;
        summary.add(&item);
        line.clear();
        serde_json::to_writer(&mut line, &item).map_err(|e| MigrateError::Format {
            path: tmp.clone(),
            reason: e.to_string(),
        })?;
        line.push(b'\n');
        hasher.update(&line);
        w.write_all(&line).map_err(io_err(&tmp))?;
    }
    w.flush().map_err(io_err(&tmp))?;
    drop(w);
    std::fs::rename(&tmp, &objects).map_err(io_err(&objects))?;
    header.summary = summary;
    header.estimate = estimate(&summary);
    header.objects_file = objects
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    header.objects_blake3 = hasher.finalize().to_hex().to_string();
    header.plan_hash = header.hash();
    let json = serde_json::to_vec_pretty(&header).map_err(|e| MigrateError::Format {
        path: out.to_owned(),
        reason: e.to_string(),
    })?;
    let tmp = out.with_extension("json.part");
    std::fs::write(&tmp, json).map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, out).map_err(io_err(out))?;
    Ok(header)
}

/// A plan read back: its header, checked, and its items streamed.
#[derive(Debug)]
pub struct PlanReader {
    /// The header.
    pub header: PlanHeader,
    objects: PathBuf,
}

impl PlanReader {
    /// Reads the header and checks its hash and the objects file's hash (one sequential pass).
    pub fn open(path: &Path) -> Result<Self> {
        let bad = |reason: String| MigrateError::Format {
            path: path.to_owned(),
            reason,
        };
        let text = std::fs::read(path).map_err(io_err(path))?;
        let header: PlanHeader =
            serde_json::from_slice(&text).map_err(|e| bad(format!("not a plan: {e}")))?;
        if header.format != PLAN_FORMAT {
            return Err(bad(format!("unknown plan format {:?}", header.format)));
        }
        if hash_json(&text) != header.plan_hash {
            return Err(bad(
                "the header does not match its plan_hash (edited?)".into()
            ));
        }
        // The objects file lies beside the header: a name, not a path elsewhere.
        let plain = std::path::Path::new(&header.objects_file)
            .file_name()
            .is_some_and(|n| n == header.objects_file.as_str());
        if !plain {
            return Err(bad(format!(
                "objects_file {:?} is not a file name beside the plan",
                header.objects_file
            )));
        }
        let objects = path.with_file_name(&header.objects_file);
        let mut f = File::open(&objects).map_err(io_err(&objects))?;
        let mut hasher = blake3::Hasher::new();
        std::io::copy(&mut f, &mut hasher).map_err(io_err(&objects))?;
        if hasher.finalize().to_hex().as_str() != header.objects_blake3 {
            return Err(MigrateError::Format {
                path: objects,
                reason: "the objects file does not match the plan's objects_blake3 (edited?)"
                    .into(),
            });
        }
        Ok(Self { header, objects })
    }

    /// The items, in order.
    pub fn items(&self) -> Result<impl Iterator<Item = Result<Item>> + use<>> {
        let f = File::open(&self.objects).map_err(io_err(&self.objects))?;
        let path = self.objects.clone();
        Ok(BufReader::new(f).lines().enumerate().map(move |(i, line)| {
            let line = line.map_err(io_err(&path))?;
            serde_json::from_str(&line).map_err(|e| MigrateError::Format {
                path: path.clone(),
                reason: format!("line {}: {e}", i + 1),
            })
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn entries(m: &BTreeMap<String, u64>) -> Vec<Result<Entry>> {
        m.iter()
            .map(|(p, s)| {
                Ok(Entry {
                    path: p.clone(),
                    size: *s,
                })
            })
            .collect()
    }

    proptest! {
        /// Every name on either side appears once, classified by where it is and its sizes.
        #[test]
        fn march_classifies_every_name_once(
            src in proptest::collection::btree_map("[a-d]{1,3}", 0u64..4, 0..30),
            dst in proptest::collection::btree_map("[a-d]{1,3}", 0u64..4, 0..30),
        ) {
            let items: Vec<Item> = march(entries(&src).into_iter(), entries(&dst).into_iter(), false)
                .collect::<Result<_>>().expect("march");
            let names: Vec<&str> = items.iter().map(|i| i.path.as_str()).collect();
            let mut all: Vec<&str> = src.keys().chain(dst.keys()).map(String::as_str).collect();
            all.sort_unstable();
            all.dedup();
            prop_assert_eq!(names, all);
            for i in &items {
                let want = match (src.get(&i.path), dst.get(&i.path)) {
                    (Some(_), None) => Action::Copy,
                    (None, Some(_)) => Action::DestOnly,
                    (Some(a), Some(b)) if a == b => Action::Same,
                    _ => Action::Replace,
                };
                prop_assert_eq!(i.action, want);
            }
        }
    }

    fn header() -> PlanHeader {
        PlanHeader {
            format: PLAN_FORMAT.into(),
            created_at: chrono::Utc::now(),
            from: "file:///a".into(),
            to: "file:///b".into(),
            prefix: None,
            proxy: None,
            checksum: false,
            summary: Summary::default(),
            capabilities: PlanCapabilities {
                from: Capabilities::unprobed("file:///a"),
                to: Capabilities::unprobed("file:///b"),
            },
            estimate: Estimate::new(&Summary::default(), 1.0, 0.0, 1),
            objects_file: String::new(),
            objects_blake3: String::new(),
            plan_hash: String::new(),
        }
    }

    #[test]
    fn a_plan_reads_back_and_an_edited_plan_is_refused() {
        let dir = tempfile::tempdir().expect("tmp");
        let out = dir.path().join("plan.json");
        let items = vec![
            Item {
                path: "a".into(),
                action: Action::Copy,
                size: 3,
                dst_size: None,
            },
            Item {
                path: "b".into(),
                action: Action::DestOnly,
                size: 1,
                dst_size: Some(1),
            },
        ];
        let h = write_plan(&out, items.clone().into_iter().map(Ok), header(), |s| {
            Estimate::new(s, 1e6, 0.01, 4)
        })
        .expect("write");
        assert_eq!(
            h.summary.copy,
            Tally {
                objects: 1,
                bytes: 3
            }
        );
        let r = PlanReader::open(&out).expect("read");
        let back: Vec<Item> = r
            .items()
            .expect("items")
            .collect::<Result<_>>()
            .expect("parse");
        assert_eq!(back, items);

        let objects = objects_path(&out);
        let text = std::fs::read_to_string(&objects).expect("objects");
        std::fs::write(&objects, text.replace("\"a\"", "\"z\"")).expect("edit");
        let err = PlanReader::open(&out).expect_err("edited objects");
        assert!(err.to_string().contains("objects_blake3"), "{err}");
    }
}
