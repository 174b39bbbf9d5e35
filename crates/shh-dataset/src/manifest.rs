//! Version manifests: what a dataset version is made of, and the version's identity.
//!
//! A manifest lists the schema, the files with their row counts and the BLAKE3 of each file's
//! plaintext and of its stored ciphertext, the parent version and the creation parameters.
//! Its identity is the BLAKE3 of its canonical JSON: anyone holding the manifest can check that
//! it is the version an analysis cites, and every byte of data is pinned by it.

use crate::DatasetError;
use arrow_schema::Schema;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shh_audit::canonical::to_canonical_vec;
use std::collections::BTreeMap;

/// Manifest format marker; a change in meaning gets a new marker.
pub const MANIFEST_FORMAT: &str = "shh.manifest/1";
/// Hex characters of a version id shown to people (`name@<prefix>`).
pub const SHORT_ID: usize = 12;

/// One data file of a version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Path in the hub store.
    pub path: String,
    /// Rows in the file.
    pub rows: u64,
    /// Plaintext (Parquet) size.
    pub plain_size: u64,
    /// BLAKE3 of the plaintext, hex.
    pub plain_blake3: String,
    /// Stored (ciphertext) size.
    pub stored_size: u64,
    /// BLAKE3 of the stored bytes, hex: what a migration checks without any key.
    pub stored_blake3: String,
}

/// A dataset version's manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Format marker.
    pub format: String,
    /// Dataset name.
    pub dataset: String,
    /// Parent version id.
    pub parent: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Arrow schema of every file.
    pub schema: Schema,
    /// Data files, in order.
    pub files: Vec<FileEntry>,
    /// Total rows.
    pub rows: u64,
    /// Creation parameters (source files, tool version, options).
    pub params: BTreeMap<String, serde_json::Value>,
}

impl Manifest {
    /// Canonical bytes: what is stored and hashed.
    pub fn canonical_bytes(&self) -> Result<Vec<u8>, DatasetError> {
        let v = serde_json::to_value(self).map_err(|e| DatasetError::Manifest(e.to_string()))?;
        Ok(to_canonical_vec(&v))
    }

    /// The version id: hex BLAKE3 of the canonical bytes.
    pub fn id(&self) -> Result<String, DatasetError> {
        Ok(blake3::hash(&self.canonical_bytes()?).to_hex().to_string())
    }

    /// Parses stored manifest bytes and checks they hash to `expected_id`.
    pub fn from_stored(bytes: &[u8], expected_id: &str, path: &str) -> Result<Self, DatasetError> {
        let id = blake3::hash(bytes).to_hex().to_string();
        if id != expected_id {
            return Err(DatasetError::ManifestMismatch {
                path: path.to_owned(),
                expected: expected_id.to_owned(),
                found: id,
            });
        }
        let m: Manifest = serde_json::from_slice(bytes)
            .map_err(|e| DatasetError::Manifest(format!("{path}: {e}")))?;
        if m.format != MANIFEST_FORMAT {
            return Err(DatasetError::Manifest(format!(
                "{path}: unknown format {:?}",
                m.format
            )));
        }
        Ok(m)
    }

    /// Plaintext bytes of all files.
    pub fn plain_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.plain_size).sum()
    }
}

/// Where a dataset's objects live in the hub store.
pub fn manifest_path(dataset: &str, id: &str) -> String {
    format!("datasets/{dataset}/manifests/{id}.json")
}

/// A new data file's path: unique, so concurrent or retried writers never collide.
pub fn data_path(dataset: &str) -> String {
    format!("datasets/{dataset}/data/{}.parquet", uuid::Uuid::new_v4())
}
