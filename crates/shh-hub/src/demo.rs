//! `shh demo`: the first thing a newcomer runs. Creates a hub on the embedded default (local
//! disk + SQLite), writes a dataset version, verifies it, shows that the store holds only
//! ciphertext, and verifies the audit log that recorded all of it. Later features extend it.

use crate::{Hub, HubError, InitOptions, KdfParams, Result};
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use serde::Serialize;
use shh_dataset::{VersionWriter, WriteOptions, sample};
use std::path::{Path, PathBuf};

/// A marker file that says a directory was made by `shh demo` (and may be replaced by it).
pub const DEMO_MARKER: &str = ".shh-demo";
/// A string written into the demo data, then searched for in the raw store.
pub const PLAINTEXT_MARKER: &str = "SHH-DEMO-PLAINTEXT-MARKER";

/// What the demo did.
#[derive(Debug, Clone, Serialize)]
pub struct DemoReport {
    /// Hub directory.
    pub hub: PathBuf,
    /// Primary store URL.
    pub store: String,
    /// `name@id` of the version written.
    pub version: String,
    /// Rows written.
    pub rows: u64,
    /// Files verified.
    pub files_verified: usize,
    /// Objects in the raw store: path, size, first bytes (hex).
    pub raw_objects: Vec<(String, u64, String)>,
    /// Whether the plaintext marker was found anywhere in the raw store (it must not be).
    pub marker_in_store: bool,
    /// The audit events the demo produced: seq, action, target.
    pub audit_events: Vec<(u64, String, String)>,
    /// The audit log's verification.
    pub audit: shh_audit::VerifyReport,
    /// The audit public key (PEM).
    pub audit_pubkey: String,
}

/// A random passphrase for a throw-away demo hub (printed to the user, so never for real data).
pub fn random_passphrase() -> String {
    format!("demo-{}", &uuid::Uuid::new_v4().simple().to_string()[..16])
}

/// Steps reported as the demo runs.
pub trait DemoProgress {
    /// A step starts.
    fn step(&mut self, what: &str);
}

impl<F: FnMut(&str)> DemoProgress for F {
    fn step(&mut self, what: &str) {
        self(what)
    }
}

/// Runs the demo in `dir` (replacing an earlier demo there, never anything else).
pub async fn run(
    dir: &Path,
    passphrase: &str,
    rows: u64,
    progress: &mut dyn DemoProgress,
) -> Result<DemoReport> {
    if dir.exists() {
        let is_demo = dir.join(DEMO_MARKER).exists();
        let empty = std::fs::read_dir(dir)
            .map(|mut d| d.next().is_none())
            .unwrap_or(false);
        if is_demo {
            progress.step(&format!(
                "removing the previous demo hub at {}",
                dir.display()
            ));
            std::fs::remove_dir_all(dir).map_err(|source| HubError::Io {
                path: dir.to_owned(),
                source,
            })?;
        } else if !empty {
            return Err(HubError::AlreadyExists(dir.to_owned()));
        }
    }
    std::fs::create_dir_all(dir).map_err(|source| HubError::Io {
        path: dir.to_owned(),
        source,
    })?;
    std::fs::write(dir.join(DEMO_MARKER), b"created by shh demo\n").map_err(|source| {
        HubError::Io {
            path: dir.join(DEMO_MARKER),
            source,
        }
    })?;

    progress.step("creating a hub: keystore (Argon2id), SQLite catalog, encrypted local store");
    let opts = InitOptions {
        kdf: KdfParams::DEFAULT,
        ..Default::default()
    };
    let hub = Hub::init(dir, passphrase, opts).await?;

    progress.step(&format!(
        "writing dataset 'outpatient_claims' ({rows} rows) as an immutable version"
    ));
    let mut params = std::collections::BTreeMap::new();
    params.insert(
        "source".to_owned(),
        serde_json::json!("shh demo sample generator"),
    );
    let wopts = WriteOptions {
        params,
        max_rows_per_file: rows.div_ceil(2).max(1),
        ..Default::default()
    };
    let mut w = VersionWriter::new(
        hub.store().clone(),
        hub.catalog().clone(),
        "outpatient_claims",
        sample::schema(),
        wopts,
    )
    .await?;
    for b in sample::batches(rows, 16 * 1024, 2026, Some(PLAINTEXT_MARKER)) {
        w.write(&b).await?;
    }
    let v = hub.commit_version(w).await?;

    progress.step("verifying every file against the manifest (ciphertext and plaintext BLAKE3)");
    let r = crate::ops::DatasetRef {
        name: "outpatient_claims".into(),
        version: None,
    };
    let report = hub.verify(&r).await?;
    if let Some(bad) = report.first_bad() {
        return Err(HubError::Dataset(shh_dataset::DatasetError::FileMismatch {
            path: bad.path.clone(),
            what: bad.error.clone().unwrap_or_default(),
        }));
    }

    progress.step("listing the raw store as the cloud provider sees it");
    let mut raw_objects = Vec::new();
    let mut marker_in_store = false;
    let objs: Vec<_> = hub.raw_store().list(None).try_collect().await?;
    for m in objs {
        let bytes = hub.raw_store().get(&m.location).await?.bytes().await?;
        marker_in_store |= bytes
            .windows(PLAINTEXT_MARKER.len())
            .any(|w| w == PLAINTEXT_MARKER.as_bytes());
        let head = hex::encode(&bytes[..bytes.len().min(12)]);
        raw_objects.push((m.location.to_string(), m.size, head));
    }
    raw_objects.sort();

    progress
        .step("verifying the audit log: recomputing the Merkle tree, checking every signed head");
    let audit = hub.audit_verify(Vec::new()).await?;
    let audit_events = hub
        .audit_events(&shh_audit::EventFilter::default())
        .await?
        .into_iter()
        .map(|e| {
            let t = e.targets;
            let target = t.dataset.or(t.object).unwrap_or_default();
            (e.seq, e.action, target)
        })
        .collect();
    Ok(DemoReport {
        audit_events,
        audit,
        audit_pubkey: hub.audit_public_key()?.to_pem(),
        hub: hub.dir().to_owned(),
        store: hub.config().store.clone(),
        version: crate::ops::short_ref("outpatient_claims", &v.id),
        rows: v.manifest.rows,
        files_verified: report.files.len(),
        raw_objects,
        marker_in_store,
    })
}
