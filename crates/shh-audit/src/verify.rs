//! The verifier an auditor runs: given the events (in order) and the signed tree heads, it
//! recomputes the Merkle tree, checks every head's signature and root, and so the consistency
//! of every head with every earlier one (they are all prefixes of one recomputed tree). It
//! needs the public key only; the same code checks the stored log and a plaintext export.
//!
//! What it can name: an event deleted, inserted or reordered breaks the sequence numbering at
//! that exact event; an event altered in place is caught by the first head that covers it, so
//! it is named to the precision of that head's batch (the first event after the previous good
//! head), which is one event whenever appends were not grouped.

use crate::merkle::{Frontier, Hash, leaf_hash};
use crate::sth::{PublicKey, SignedTreeHead};
use serde::Serialize;

/// The verdict.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct VerifyReport {
    /// No problem found.
    pub ok: bool,
    /// Events read.
    pub events: u64,
    /// Signed heads checked.
    pub heads: u64,
    /// Largest signed head that verified.
    pub last_head: Option<SignedTreeHead>,
    /// Events after the last signed head (a crash between an append and its head leaves
    /// these; the next append signs them).
    pub unsigned_tail: u64,
    /// First sequence number that cannot be trusted.
    pub first_bad_seq: Option<u64>,
    /// What is wrong.
    pub problem: Option<String>,
}

struct Checkpoint {
    size: u64,
    root: Hash,
    head: SignedTreeHead,
    known: bool,
}

/// Streaming verifier: feed events in order with [`Verifier::push`], then [`Verifier::finish`].
pub struct Verifier {
    hub: Option<String>,
    frontier: Frontier,
    checkpoints: Vec<Checkpoint>,
    next: usize,
    last_good: Option<SignedTreeHead>,
    matched: u64,
    heads_checked: u64,
    failure: Option<(u64, String)>,
    head_failure: Option<(u64, String)>,
}

impl Verifier {
    /// Starts a verification against the log's signed heads (in stored order) and any heads
    /// the auditor saved earlier (`known`), all checked with `keys`.
    pub fn new(heads: Vec<SignedTreeHead>, known: Vec<SignedTreeHead>, keys: &[PublicKey]) -> Self {
        let mut v = Verifier {
            hub: None,
            frontier: Frontier::new(),
            checkpoints: Vec::new(),
            next: 0,
            last_good: None,
            matched: 0,
            heads_checked: 0,
            failure: None,
            head_failure: None,
        };
        let mut prev = 0u64;
        for h in heads {
            let size = h.head.size;
            let problem = if size <= prev && !v.checkpoints.is_empty() {
                Some(format!(
                    "signed head for size {size} comes after the head for size {prev}"
                ))
            } else if size == 0 {
                Some("signed head for size 0".into())
            } else if v.hub.as_ref().is_some_and(|hub| *hub != h.head.hub) {
                Some(format!("signed head for size {size} names another hub"))
            } else {
                match h.verify(keys) {
                    Ok(root) => {
                        v.hub.get_or_insert_with(|| h.head.hub.clone());
                        v.checkpoints.push(Checkpoint {
                            size,
                            root,
                            head: h,
                            known: false,
                        });
                        None
                    }
                    Err(e) => Some(format!("signed head for size {size}: {e}")),
                }
            };
            if let Some(p) = problem {
                // The events this head was to cover are the first that lose their proof.
                v.head_failure = Some((prev, p));
                break;
            }
            prev = size;
        }
        for h in known {
            let size = h.head.size;
            match h.verify(keys) {
                Ok(root) => {
                    if let Some(c) = v.checkpoints.iter().find(|c| c.size == size)
                        && c.root != root
                    {
                        v.fail_head_at(size, format!("the log's head for size {size} differs from the known head: history was rewritten"));
                    }
                    v.checkpoints.push(Checkpoint {
                        size,
                        root,
                        head: h,
                        known: true,
                    });
                }
                Err(e) => v.fail_head_at(0, format!("known head for size {size}: {e}")),
            }
        }
        v.checkpoints.sort_by_key(|c| (c.size, c.known));
        v
    }

    /// Records a problem with the heads themselves (an unreadable head object, say).
    pub fn fail_head(&mut self, seq: u64, problem: impl Into<String>) {
        self.fail_head_at(seq, problem.into());
    }

    fn fail_head_at(&mut self, seq: u64, msg: String) {
        if self.head_failure.as_ref().is_none_or(|(s, _)| seq < *s) {
            self.head_failure = Some((seq, msg));
        }
    }

    /// Records a problem found outside the verifier (an unreadable segment, say).
    pub fn fail_at(&mut self, seq: u64, problem: impl Into<String>) {
        if self.failure.is_none() {
            self.failure = Some((seq, problem.into()));
        }
    }

    /// Whether verification already failed (callers may stop reading).
    pub fn failed(&self) -> bool {
        self.failure.is_some()
    }

    /// Events accepted so far.
    pub fn size(&self) -> u64 {
        self.frontier.size()
    }

    /// Feeds the next events, each one canonical JSON line without its newline.
    pub fn push(&mut self, lines: &[&[u8]]) {
        if self.failure.is_some() {
            return;
        }
        for (i, parsed) in parse_all(lines).into_iter().enumerate() {
            let expected = self.frontier.size();
            let (seq, hub, leaf) = match parsed {
                Ok(p) => p,
                Err(why) => return self.fail_at(expected, format!("event {expected}: {why}")),
            };
            if seq != expected {
                let what = if seq > expected {
                    "missing (deleted)"
                } else {
                    "out of order or inserted"
                };
                return self.fail_at(
                    expected,
                    format!("expected event {expected}, found event {seq}: events {what} (line {} of this batch)", i + 1),
                );
            }
            match &self.hub {
                Some(h) if *h != hub => {
                    return self.fail_at(seq, format!("event {seq} belongs to hub {hub:?}"));
                }
                Some(_) => {}
                None => self.hub = Some(hub),
            }
            self.frontier.push(leaf);
            self.check_heads();
            if self.failure.is_some() {
                return;
            }
        }
    }

    fn check_heads(&mut self) {
        let size = self.frontier.size();
        while let Some(c) = self.checkpoints.get(self.next) {
            if c.size != size {
                break;
            }
            if self.frontier.root() != c.root {
                let from = self.matched;
                let msg = if c.known {
                    format!(
                        "events {from}..{} differ from the head the auditor kept for size {size}: history was rewritten",
                        size - 1
                    )
                } else {
                    format!(
                        "events {from}..{} do not match the signed head for size {size}: an event was altered",
                        size - 1
                    )
                };
                self.failure = Some((from, msg));
                return;
            }
            self.heads_checked += 1;
            if !c.known {
                self.last_good = Some(c.head.clone());
            }
            self.next += 1;
        }
        if self.checkpoints[..self.next]
            .last()
            .is_some_and(|c| c.size == size)
        {
            self.matched = size;
        }
    }

    /// The verdict. With `require_signed_tail`, events after the last signed head are a
    /// failure (an export always ends with a head).
    pub fn finish(mut self, require_signed_tail: bool) -> VerifyReport {
        let size = self.frontier.size();
        let signed = self.last_good.as_ref().map_or(0, |h| h.head.size);
        if self.failure.is_none() {
            if let Some(c) = self.checkpoints.get(self.next) {
                self.failure = Some((
                    size,
                    format!(
                        "the log ends after {size} events, but a signed head covers {}: events were removed from the end",
                        c.size
                    ),
                ));
            } else if require_signed_tail && size > signed {
                self.failure = Some((
                    signed,
                    format!(
                        "events {signed}..{} are not covered by any signed head",
                        size - 1
                    ),
                ));
            }
        }
        let bad = match (self.failure, self.head_failure) {
            (Some(a), Some(b)) => Some(if b.0 < a.0 { b } else { a }),
            (a, b) => a.or(b),
        };
        VerifyReport {
            ok: bad.is_none(),
            events: size,
            heads: self.heads_checked,
            last_head: self.last_good,
            unsigned_tail: size - signed,
            first_bad_seq: bad.as_ref().map(|b| b.0),
            problem: bad.map(|b| b.1),
        }
    }
}

type Parsed = Result<(u64, String, Hash), String>;

/// The two fields the verifier needs; serde skips the rest without building it.
#[derive(serde::Deserialize)]
struct Fields<'a> {
    seq: u64,
    #[serde(borrow)]
    hub: std::borrow::Cow<'a, str>,
}

/// Parses one event and hashes its exact bytes. Whether the bytes are the canonical form is
/// not checked here: the writer only writes canonical bytes, and any other byte string hashes
/// differently, so a re-serialized event fails the root check like any other alteration.
fn parse_one(line: &[u8]) -> Parsed {
    let f: Fields = serde_json::from_slice(line).map_err(|e| format!("not an event: {e}"))?;
    Ok((f.seq, f.hub.into_owned(), leaf_hash(line)))
}

/// Parses and hashes on every core: these dominate verification, the tree fold does not.
fn parse_all(lines: &[&[u8]]) -> Vec<Parsed> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if threads < 2 || lines.len() < 2048 {
        return lines.iter().map(|l| parse_one(l)).collect();
    }
    let chunk = lines.len().div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = lines
            .chunks(chunk)
            .map(|c| s.spawn(move || c.iter().map(|l| parse_one(l)).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| {
                h.join()
                    .unwrap_or_else(|_| vec![Err("verifier thread panicked".into())])
            })
            .collect()
    })
}
