//! The auditor's copy: a directory of plaintext files that needs neither the hub nor its keys.
//!
//! - `events.ndjson`: every event, one canonical JSON line each, exactly the Merkle leaf input;
//! - `heads.ndjson`: every signed tree head, by size, one canonical JSON line each;
//! - `pubkey.pem`: the hub's audit public key, for convenience only: an auditor verifies with a
//!   key obtained out of band (`shh audit pubkey`), never with the one shipped beside the data;
//! - `README.md`: what the files are and how to check them.
//!
//! The directory is written under a temporary name and renamed, so it is complete or absent.

use crate::log::{AuditError, AuditLog, ExportSummary, Result, lines};
use crate::sth::{PublicKey, SignedTreeHead};
use crate::verify::{Verifier, VerifyReport};
use futures::StreamExt;
use std::io::{BufRead, BufReader, Write};
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

pub(crate) async fn write(log: &AuditLog, out: &Path) -> Result<ExportSummary> {
    if out.exists() {
        return Err(AuditError::Export(format!(
            "{} already exists; choose a new directory",
            out.display()
        )));
    }
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => std::path::PathBuf::from("."),
    };
    let name = out
        .file_name()
        .ok_or_else(|| AuditError::Export(format!("{} is not a directory name", out.display())))?
        .to_string_lossy()
        .into_owned();
    let tmp = parent.join(format!(".{name}.tmp-{}", uuid::Uuid::new_v4()));
    let res = write_into(log, &tmp).await;
    let res = match res {
        Ok(s) => std::fs::rename(&tmp, out).map_err(io(out)).map(|_| s),
        Err(e) => Err(e),
    };
    if res.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    res.map(|mut s| {
        s.out = out.display().to_string();
        s
    })
}

async fn write_into(log: &AuditLog, dir: &Path) -> Result<ExportSummary> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let (signed, mut segs) = log.signed_segments().await?;
    let ev_path = dir.join(EVENTS_FILE);
    let mut ev = std::io::BufWriter::new(std::fs::File::create(&ev_path).map_err(io(&ev_path))?);
    let mut events = 0u64;
    while let Some((first, _, body)) = segs.next().await {
        if first >= signed {
            break;
        }
        let body = body?;
        for line in lines(&body) {
            ev.write_all(line).map_err(io(&ev_path))?;
            ev.write_all(b"\n").map_err(io(&ev_path))?;
            events += 1;
        }
    }
    ev.into_inner()
        .map_err(|e| io(&ev_path)(e.into_error()))?
        .sync_all()
        .map_err(io(&ev_path))?;
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
    let hp = dir.join(HEADS_FILE);
    std::fs::write(&hp, text).map_err(io(&hp))?;
    let key = log.public_key();
    let kp = dir.join(PUBKEY_FILE);
    std::fs::write(&kp, key.to_pem()).map_err(io(&kp))?;
    let rp = dir.join("README.md");
    std::fs::write(&rp, readme(log.hub(), events, heads.len(), &key)).map_err(io(&rp))?;
    Ok(ExportSummary {
        out: String::new(),
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
