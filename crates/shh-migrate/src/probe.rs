//! What a store can do, found out before a migration relies on it, and recorded in the plan and
//! the report: conditional (create-only) writes, resumable multipart uploads and their limits,
//! the checksums the service offers, and how shh verifies objects there.
//!
//! Limits that cannot be asked for are known per provider: S3 allows 10,000 parts of 5 MiB to
//! 5 GiB, Scaleway only 1,000 parts, Azure 50,000 blocks of up to 4,000 MiB. A URL may override
//! the part count with `?max_parts=N` for other providers.

use crate::is_internal;
use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use shh_store::{Backend, Put, RawError, S3Raw, StoreKind, StoreUrl};
use std::time::{Duration, Instant};

const MIB: u64 = 1024 * 1024;

/// A store's capabilities.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Capabilities {
    /// The store URL.
    pub url: String,
    /// `file`, `memory`, `s3` or `az`.
    pub kind: String,
    /// Whether a create-only write refuses to replace an object (probed by writing twice).
    pub conditional_create: Option<bool>,
    /// Whether multipart uploads can be resumed part by part after a crash.
    pub resumable_multipart: bool,
    /// Most parts per upload.
    pub max_parts: u64,
    /// Smallest part (except the last).
    pub min_part: u64,
    /// Largest part.
    pub max_part: u64,
    /// Checksums the service can store or check.
    pub service_checksums: Vec<String>,
    /// How shh verifies an object after writing it there.
    pub verification: String,
    /// Whether the service refuses a request body whose SHA-256 differs from the one the
    /// request was signed with (probed by sending one). Where it does, every byte written is
    /// checked on receipt against the hash of what was read from the source, and a read-back
    /// adds nothing but load on the target.
    #[serde(default)]
    pub payload_sha256_checked: Option<bool>,
    /// Whether the service stores uploads whose every chunk is signed (`aws-chunked`) as
    /// sent (probed). Where it does, large objects stream from the source in signed chunks
    /// instead of being held whole.
    #[serde(default)]
    pub chunked_uploads: Option<bool>,
    /// Whether it refuses a chunk that differs from the signed one, storing nothing (probed
    /// by sending one): then a streamed object is checked on receipt, like a signed body.
    #[serde(default)]
    pub chunk_signatures_checked: Option<bool>,
    /// Round trip of one metadata request, milliseconds (probed).
    pub round_trip_ms: Option<f64>,
    /// Findings worth knowing.
    pub notes: Vec<String>,
}

impl Capabilities {
    /// What is known without sending a request.
    pub fn unprobed(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            kind: "unknown".into(),
            conditional_create: None,
            resumable_multipart: false,
            max_parts: 10_000,
            min_part: 5 * MIB,
            max_part: 5 * 1024 * MIB,
            service_checksums: Vec::new(),
            verification: "read-back BLAKE3".into(),
            payload_sha256_checked: None,
            chunked_uploads: None,
            chunk_signatures_checked: None,
            round_trip_ms: None,
            notes: Vec::new(),
        }
    }

    /// The part size for an object of `size` bytes: at least `wanted`, large enough to stay
    /// within `max_parts`, rounded up to a MiB.
    pub fn part_size(&self, size: u64, wanted: u64) -> u64 {
        let min_for_count = size.div_ceil(self.max_parts.max(1));
        let ps = wanted.max(self.min_part).max(min_for_count);
        ps.div_ceil(MIB) * MIB
    }
}

fn static_caps(url: &StoreUrl, backend: &Backend) -> Capabilities {
    let mut c = Capabilities::unprobed(&url.to_string());
    c.kind = url.kind().scheme().to_owned();
    c.resumable_multipart = backend.multipart.is_some();
    match url.kind() {
        StoreKind::S3 => {
            c.service_checksums = vec![
                "MD5 (ETag of single-part uploads)".into(),
                "CRC32/CRC32C/SHA-1/SHA-256 (x-amz-checksum-*, when the service supports them)"
                    .into(),
            ];
            let endpoint = url.destination().endpoint;
            if endpoint.contains("scw.cloud") {
                c.max_parts = 1_000;
                c.notes
                    .push("Scaleway Object Storage: at most 1,000 parts per upload".into());
            }
        }
        StoreKind::Azure => {
            c.max_parts = 50_000;
            c.min_part = MIB;
            c.max_part = 4_000 * MIB;
            c.service_checksums = vec!["Content-MD5 (weak)".into(), "CRC64 (weak)".into()];
        }
        StoreKind::File => {
            c.max_parts = u64::MAX;
            c.min_part = MIB;
            c.max_part = u64::MAX;
            c.notes
                .push("local disk: writes are staged and renamed, then fsynced".into());
        }
        StoreKind::Memory => {
            c.max_parts = u64::MAX;
            c.min_part = MIB;
            c.max_part = u64::MAX;
        }
    }
    if let Some(n) = url.param("max_parts").and_then(|v| v.parse::<u64>().ok()) {
        c.max_parts = n.max(1);
        c.notes.push(format!("max_parts={n} set in the URL"));
    }
    c
}

/// Probes a store. With `write`, a tiny object under `.shh-migrate/` is written twice
/// create-only (the second must be refused) and deleted; without, only a metadata request is
/// made (a source is never written to).
pub async fn probe(url: &StoreUrl, backend: &Backend, write: bool) -> Capabilities {
    let mut c = static_caps(url, backend);
    let store = &backend.store;
    let t = Instant::now();
    let missing = Path::from(format!(".shh-migrate/absent-{}", uuid::Uuid::new_v4()));
    match store.head(&missing).await {
        Ok(_) | Err(object_store::Error::NotFound { .. }) => {
            c.round_trip_ms = Some(t.elapsed().as_secs_f64() * 1e3);
        }
        Err(e) => c.notes.push(format!("metadata request failed: {e}")),
    }
    if write {
        // The three write probes use names of their own: they run at once.
        let (create, hashes) = futures::join!(probe_create(store.as_ref()), probe_hashes(backend));
        let (conditional, note) = create;
        c.conditional_create = conditional;
        c.notes.extend(note);
        if let Some((payload, chunked)) = hashes {
            c.payload_sha256_checked = payload.as_ref().ok().copied();
            match payload {
                Ok(true) => {
                    c.verification = "SHA-256 of every request body checked by the service on \
                                      receipt (signed payloads; probed)"
                        .into();
                }
                Ok(false) => c.notes.push(
                    "the service accepted a body whose SHA-256 differs from the signed one: \
                     objects are verified by reading them back"
                        .into(),
                ),
                Err(e) => c.notes.push(format!(
                    "payload-hash check not probed ({e}): objects are verified by reading them back"
                )),
            }
            match chunked {
                Ok(found) => {
                    c.chunked_uploads = Some(found.decoded);
                    c.chunk_signatures_checked = Some(found.checked);
                    if !found.decoded {
                        c.notes.push(
                            "chunk-signed uploads are not stored as sent: large objects are \
                             read whole before they are written"
                                .into(),
                        );
                    } else if !found.checked {
                        c.notes.push(
                            "the service accepted a chunk that differs from the signed one: \
                             large objects stream in signed chunks and are read back"
                                .into(),
                        );
                    }
                }
                Err(e) => c.notes.push(format!(
                    "chunk-signed uploads not probed ({e}): large objects are sent whole"
                )),
            }
        }
    }
    c
}

/// Writes a tiny object twice, create-only: the second must be refused. Returns whether it
/// was, and a note when that matters.
async fn probe_create(store: &dyn ObjectStore) -> (Option<bool>, Option<String>) {
    let p = Path::from(format!(".shh-migrate/probe-{}", uuid::Uuid::new_v4()));
    debug_assert!(is_internal(p.as_ref()));
    let create = || PutOptions::from(PutMode::Create);
    let found = match store
        .put_opts(&p, PutPayload::from_static(b"probe"), create())
        .await
    {
        Ok(_) => {
            let second = store
                .put_opts(&p, PutPayload::from_static(b"again"), create())
                .await;
            let refused = matches!(second, Err(object_store::Error::AlreadyExists { .. }));
            let note = (!refused).then(|| {
                "create-only writes are not enforced: an existing object could be replaced; \
                 objects are written only when the plan says they are absent"
                    .to_owned()
            });
            (Some(refused), note)
        }
        Err(object_store::Error::NotImplemented { .. }) => (Some(false), None),
        Err(e) => (None, Some(format!("probe write failed: {e}"))),
    };
    let _ = store.delete(&p).await;
    found
}

/// For an S3 store with credentials: whether it checks signed bodies and what it does with
/// chunk-signed uploads, both probed at once.
async fn probe_hashes(
    backend: &Backend,
) -> Option<(Result<bool, String>, Result<ChunkedSupport, String>)> {
    let raw = backend.s3.as_ref()?;
    let store = backend.store.as_ref();
    Some(futures::join!(
        checks_payload_hash(raw, store),
        probe_chunked(raw, store)
    ))
}

/// What a service does with chunk-signed uploads (probed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkedSupport {
    /// It stores what the chunks carry, byte for byte.
    pub decoded: bool,
    /// It refuses a chunk that differs from what was signed, and stores nothing then.
    pub checked: bool,
}

/// How long a probe request may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

/// True when `sent` failed with a status from the service and nothing is stored at `key`
/// (which is removed either way).
async fn refused_and_absent(
    store: &dyn ObjectStore,
    key: &str,
    sent: Result<(), RawError>,
) -> Result<bool, String> {
    let p = Path::from(key);
    let held = store.head(&p).await;
    let _ = store.delete(&p).await;
    match sent {
        Ok(()) => Ok(false),
        Err(RawError::Status { .. }) => {
            Ok(matches!(held, Err(object_store::Error::NotFound { .. })))
        }
        Err(e) => Err(e.to_string()),
    }
}

/// Whether the service refuses a body whose SHA-256 differs from the signed one. The same small
/// PUT is sent twice, signed once with the body's SHA-256 and once with another hash: a service
/// that stores the first and refuses the second (holding nothing for it afterwards) checks
/// payload hashes (AWS answers `XAmzContentSHA256Mismatch`; s3s answers 500 but stores
/// nothing). `store` is the same store, used to look and clean up.
async fn checks_payload_hash(raw: &S3Raw, store: &dyn ObjectStore) -> Result<bool, String> {
    const BODY: &[u8] = b"shh capability probe: is the signed SHA-256 of this body checked?";
    let body = Bytes::from_static(BODY);
    let ok = format!(".shh-migrate/payload-ok-{}", uuid::Uuid::new_v4());
    let sha = |b: &[u8]| -> Vec<u8> { Sha256::digest(b).to_vec() };
    let right = raw
        .put_claiming(&ok, body.clone(), &sha(BODY), PROBE_TIMEOUT)
        .await;
    let _ = store.delete(&Path::from(ok)).await;
    right.map_err(|e| format!("a correctly signed request failed: {e}"))?;
    let bad = format!(".shh-migrate/payload-bad-{}", uuid::Uuid::new_v4());
    let wrong = raw
        .put_claiming(&bad, body, &sha(b"other"), PROBE_TIMEOUT)
        .await;
    refused_and_absent(store, &bad, wrong).await
}

/// What the service does with chunk-signed uploads. One upload of two chunks must be stored
/// byte for byte (`decoded`); the same upload with one byte of its second chunk changed after
/// signing must then be refused and leave nothing behind (`checked`).
async fn probe_chunked(raw: &S3Raw, store: &dyn ObjectStore) -> Result<ChunkedSupport, String> {
    const CHUNK: usize = 8192; // the smallest chunk AWS accepts
    let data: Bytes = (0..CHUNK + 100)
        .map(|i| (i % 251) as u8)
        .collect::<Vec<_>>()
        .into();
    let ok = format!(".shh-migrate/chunked-ok-{}", uuid::Uuid::new_v4());
    let source = futures::stream::iter([Ok(data.clone())]);
    let put = raw
        .put_chunked(
            &ok,
            Put::Object { create: false },
            data.len() as u64,
            CHUNK,
            source,
            PROBE_TIMEOUT,
        )
        .await;
    let stored = match put {
        Ok(_) => store.get(&Path::from(ok.as_str())).await,
        Err(e) => {
            let _ = store.delete(&Path::from(ok)).await;
            return Err(format!("a correctly signed chunked upload failed: {e}"));
        }
    };
    let stored = match stored {
        Ok(r) => r.bytes().await,
        Err(e) => Err(e),
    };
    let _ = store.delete(&Path::from(ok)).await;
    if stored.map_err(|e| e.to_string())? != data {
        return Ok(ChunkedSupport {
            decoded: false,
            checked: false,
        });
    }
    let bad = format!(".shh-migrate/chunked-bad-{}", uuid::Uuid::new_v4());
    let sent = raw
        .put_chunked_tampered(&bad, data, CHUNK, PROBE_TIMEOUT)
        .await;
    Ok(ChunkedSupport {
        decoded: true,
        checked: refused_and_absent(store, &bad, sent).await?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_sizes_respect_the_part_limit() {
        let mut c = Capabilities::unprobed("s3://b");
        c.max_parts = 1_000;
        let size = 100 * 1024 * MIB;
        let ps = c.part_size(size, 8 * MIB);
        assert!(size.div_ceil(ps) <= 1_000);
        assert_eq!(ps % MIB, 0);
        assert_eq!(c.part_size(10 * MIB, 8 * MIB), 8 * MIB);
        assert_eq!(c.part_size(10 * MIB, MIB), 5 * MIB);
    }
}
