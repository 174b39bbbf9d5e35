//! The auditor's copy: a directory of plaintext files that needs neither the hub nor its keys.
//!
//! - `events.ndjson`: every event, one canonical JSON line each, exactly the Merkle leaf input;
//! - `heads.ndjson`: every signed tree head, by size, one canonical JSON line each;
//! - `pubkey.pem`: the hub's audit public key, for convenience only: an auditor verifies with a
//!   key obtained out of band (`shh audit pubkey`), never with the one shipped beside the data;
//! - `README.md`: what the files are and how to check them.
//!
//! The caller chooses the sink (a local directory, memory); the copy is complete or absent.

use crate::log::{AuditError, AuditLog, ExportSummary, Result, lines};
use crate::sth::{PublicKey, SignedTreeHead};
use crate::verify::{Verifier, VerifyReport};
use futures::StreamExt;
use shh_sink::Sink;
use std::io::{BufRead, BufReader};
use std::path::Path;

/// Events file in an export.
pub const EVENTS_FILE: &str = "events.ndjson";
/// Heads file in an export.
pub const HEADS_FILE: &str = "heads.ndjson";
/// Public key file in an export.
pub const PUBKEY_FILE: &str = "pubkey.pem";

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> AuditError + '_ {
    move |source| AuditError::Io {
        path: path.display().to_string(),
        source,
    }
}

pub(crate) async fn write(log: &AuditLog, sink: &dyn Sink, name: &str) -> Result<ExportSummary> {
    // Dropped on any error: the sink discards the half-written copy.
    let staged = sink.stage(name).await?;
    let (signed, mut segs) = log.signed_segments().await?;
    let mut ev = staged.create(EVENTS_FILE).await?;
    let mut events = 0u64;
    let mut buf = Vec::with_capacity(1 << 20);
    while let Some((first, _, body)) = segs.next().await {
        if first >= signed {
            break;
        }
        let body = body?;
        for line in lines(&body) {
            buf.extend_from_slice(line);
            buf.push(b'\n');
            events += 1;
        }
        if buf.len() >= 1 << 20 {
            ev.write(&buf).await?;
            buf.clear();
        }
    }
    ev.write(&buf).await?;
    ev.finish().await?;
    let heads: Vec<SignedTreeHead> = log
        .heads()
        .await?
        .into_iter()
        .filter(|h| h.head.size <= signed)
        .collect();
    let mut text = Vec::new();
    for h in &heads {
        text.extend_from_slice(&h.canonical_bytes());
        text.push(b'\n');
    }
    staged.put(HEADS_FILE, text.into()).await?;
    let key = log.public_key();
    staged.put(PUBKEY_FILE, key.to_pem().into()).await?;
    staged
        .put(
            "README.md",
            readme(log.hub(), events, heads.len(), &key).into(),
        )
        .await?;
    Ok(ExportSummary {
        out: staged.commit().await?,
        events,
        heads: heads.len() as u64,
        key: key.fingerprint(),
    })
}

fn readme(hub: &str, events: u64, heads: usize, key: &PublicKey) -> String {
    format!(
        "# Audit log export of hub {hub}\n\n\
         - `{EVENTS_FILE}`: {events} events, one RFC 8785 canonical JSON object per line. \
         Event `seq` n is leaf n of an RFC 6962 Merkle tree whose leaf hash is \
         `SHA-256(0x00 ‖ line)` and node hash `SHA-256(0x01 ‖ left ‖ right)`.\n\
         - `{HEADS_FILE}`: {heads} signed tree heads, one per line. The Ed25519 signature \
         (base64) covers `\"shh/sth/v1\\n\"` followed by the canonical JSON of the head without \
         its `signature` field.\n\
         - `{PUBKEY_FILE}`: the signing key (fingerprint {fp}). Check it against the key the hub \
         published (`shh audit pubkey`) before trusting it.\n\n\
         Verify without the hub: `shh audit verify --export DIR --pubkey KEY.pem \
         [--known-head HEAD.json]`.\n",
        fp = key.fingerprint()
    )
}

/// Verifies an export with trusted public keys (and heads the auditor kept, if any).
pub fn verify_export(
    dir: &Path,
    keys: &[PublicKey],
    known: Vec<SignedTreeHead>,
) -> Result<VerifyReport> {
    let hp = dir.join(HEADS_FILE);
    let text = std::fs::read_to_string(&hp).map_err(io(&hp))?;
    let mut heads = Vec::new();
    let mut head_problem = None;
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        match serde_json::from_str::<SignedTreeHead>(line) {
            Ok(h) => heads.push(h),
            Err(e) => {
                let prev = heads.last().map_or(0, |h: &SignedTreeHead| h.head.size);
                head_problem = Some((prev, format!("{} line {}: {e}", hp.display(), i + 1)));
                break;
            }
        }
    }
    let mut v = Verifier::new(heads, known, keys);
    if let Some((seq, msg)) = head_problem {
        v.fail_head(seq, msg);
    }
    let ep = dir.join(EVENTS_FILE);
    let mut r = BufReader::with_capacity(1 << 20, std::fs::File::open(&ep).map_err(io(&ep))?);
    const BATCH: usize = 1 << 16;
    let mut batch: Vec<Vec<u8>> = Vec::with_capacity(BATCH);
    loop {
        let mut line = Vec::new();
        let n = r.read_until(b'\n', &mut line).map_err(io(&ep))?;
        if n > 0 {
            if line.last() == Some(&b'\n') {
                line.pop();
            }
            if !line.is_empty() {
                batch.push(line);
            }
        }
        if batch.len() == BATCH || (n == 0 && !batch.is_empty()) {
            let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
            v.push(&refs);
            batch.clear();
            if v.failed() {
                break;
            }
        }
        if n == 0 {
            break;
        }
    }
    Ok(v.finish(true))
}
