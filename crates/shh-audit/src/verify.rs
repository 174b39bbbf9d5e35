//! The verifier an auditor runs: given the events (in order) and the signed tree heads, it
//! recomputes the Merkle tree, checks every head's signature and root, and so the consistency
//! of every head with every earlier one (they are all prefixes of one recomputed tree). It
//! needs the public key only; the same code checks the stored log and a plaintext export.
//!
//! What it can name: an event deleted, inserted or reordered breaks the sequence numbering at
//! that exact event; an event altered in place is caught by the first head that covers it, so
//! it is named to the precision of that head's batch (the first event after the previous good
//! head), which is one event whenever appends were not grouped.
//!
//! It also checks every **signed decision** the log carries (a permit granted, a release
//! approved): an allowed event whose details hold `statement`, `signature` and `public_key`
//! must verify under that key (domain `shh/decision/v1`), the statement must name the event's
//! actor and hub, and the key must be the one that actor's latest `user.enroll` event before
//! it recorded. So an auditor learns from the log alone that a decision was signed by the key
//! its decider enrolled, and how many distinct keys signed.

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
    /// Signed decisions whose signatures verified under the key their decider enrolled.
    #[serde(default)]
    pub decisions: u64,
    /// The distinct users who signed them.
    #[serde(default)]
    pub deciders: Vec<String>,
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
    /// Each user's enrolled key (hex), from the latest `user.enroll` so far.
    enrolled: std::collections::HashMap<String, String>,
    decisions: u64,
    deciders: std::collections::BTreeSet<String>,
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
            enrolled: Default::default(),
            decisions: 0,
            deciders: Default::default(),
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
            let (seq, hub, leaf, signed) = match parsed {
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
            if let Some(d) = signed
                && let Err(why) = self.check_decision(d)
            {
                return self.fail_at(seq, format!("event {seq}: {why}"));
            }
            self.frontier.push(leaf);
            self.check_heads();
            if self.failure.is_some() {
                return;
            }
        }
    }

    fn check_decision(&mut self, d: Signed) -> Result<(), String> {
        match d {
            Signed::Enroll { user, key } => {
                self.enrolled.insert(user, key);
                Ok(())
            }
            Signed::Decision {
                actor,
                key,
                signature,
                statement,
            } => {
                if self.enrolled.get(&actor) != Some(&key) {
                    return Err(format!(
                        "a decision signed with a key {actor} had not enrolled"
                    ));
                }
                let public = PublicKey::parse_all(&key)
                    .ok()
                    .and_then(|k| k.first().copied())
                    .ok_or("the decision's public key is not an Ed25519 key")?;
                if !public.verify_document(DECISION_DOMAIN, statement.as_bytes(), &signature) {
                    return Err("the decision's signature does not verify".into());
                }
                #[derive(serde::Deserialize)]
                struct Who {
                    hub: String,
                    by: String,
                }
                let who: Who = serde_json::from_str(&statement)
                    .map_err(|e| format!("the signed statement is not one: {e}"))?;
                if who.by != actor || self.hub.as_deref() != Some(who.hub.as_str()) {
                    return Err(
                        "the signed statement names another decider or hub than its event".into(),
                    );
                }
                self.decisions += 1;
                self.deciders.insert(actor);
                Ok(())
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
            decisions: self.decisions,
            deciders: self.deciders.into_iter().collect(),
        }
    }
}

/// The domain signed decisions are signed under (`shh_access::statement`).
pub const DECISION_DOMAIN: &[u8] = shh_access::statement::DOMAIN;

/// What an event tells the decision check.
enum Signed {
    /// `user` enrolled `key`.
    Enroll { user: String, key: String },
    /// `actor` signed `statement`.
    Decision {
        actor: String,
        key: String,
        signature: String,
        statement: String,
    },
}

type Parsed = Result<(u64, String, Hash, Option<Signed>), String>;

type Text<'a> = std::borrow::Cow<'a, str>;

/// The fields the verifier needs; serde skips the rest without building it.
#[derive(serde::Deserialize)]
struct Fields<'a> {
    seq: u64,
    #[serde(borrow)]
    hub: Text<'a>,
    #[serde(borrow)]
    actor: Text<'a>,
    #[serde(borrow)]
    action: Text<'a>,
    #[serde(default, borrow)]
    details: Details<'a>,
    #[serde(borrow)]
    outcome: OutcomeTag<'a>,
}

#[derive(Default, serde::Deserialize)]
struct Details<'a> {
    #[serde(default, borrow)]
    user: Option<Text<'a>>,
    #[serde(default, borrow)]
    public_key: Option<Text<'a>>,
    #[serde(default, borrow)]
    signature: Option<Text<'a>>,
    #[serde(default, borrow)]
    statement: Option<Text<'a>>,
}

#[derive(serde::Deserialize)]
struct OutcomeTag<'a> {
    #[serde(borrow)]
    result: Text<'a>,
}

impl Fields<'_> {
    fn signed(self) -> Option<Signed> {
        if self.outcome.result != "allowed" {
            return None;
        }
        let d = self.details;
        if self.action == "user.enroll" {
            return Some(Signed::Enroll {
                user: d.user?.into_owned(),
                key: d.public_key?.into_owned(),
            });
        }
        match (d.public_key, d.signature, d.statement) {
            (Some(k), Some(sig), Some(st)) => Some(Signed::Decision {
                actor: self.actor.into_owned(),
                key: k.into_owned(),
                signature: sig.into_owned(),
                statement: st.into_owned(),
            }),
            _ => None,
        }
    }
}

/// Parses one event and hashes its exact bytes. Whether the bytes are the canonical form is
/// not checked here: the writer only writes canonical bytes, and any other byte string hashes
/// differently, so a re-serialized event fails the root check like any other alteration.
fn parse_one(line: &[u8]) -> Parsed {
    let f: Fields = serde_json::from_slice(line).map_err(|e| format!("not an event: {e}"))?;
    let (seq, hub) = (f.seq, f.hub.to_string());
    Ok((seq, hub, leaf_hash(line), f.signed()))
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
