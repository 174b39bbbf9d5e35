//! Immutable, content-addressed dataset versions.
//!
//! Writing a version: record batches stream into Parquet files (bounded memory: one row group
//! buffered, files rolled by size) written through the [`EncryptedStore`] under fresh unique
//! paths; then the manifest is written create-only at a path derived from its own hash; then the
//! catalog's current pointer is moved by compare-and-swap. A writer that dies at any point
//! before that last step leaves no visible version and an unchanged pointer; the unreferenced
//! files it left are invisible and can be swept.
//!
//! Reading back: [`verify_version`] re-reads every file and checks both hashes; [`export_version`]
//! writes plain Parquet and the manifest as JSON — the way out of the hub without lock-in.

#![forbid(unsafe_code)]

mod manifest;
mod ops;
pub mod sample;
mod writer;

pub use manifest::{FileEntry, MANIFEST_FORMAT, Manifest, SHORT_ID, data_path, manifest_path};
pub use ops::{
    EXPORT_MANIFEST, ExportReport, FileCheck, StagedExport, VerifyReport, export_version,
    load_manifest, read_columns, stage_export, verify_version,
};
pub use shh_audit::canonical::to_canonical_vec;
pub use writer::{CommittedVersion, SealedVersion, VersionWriter, WriteOptions};

use object_store::ObjectStore;
use shh_crypt::EncryptedStore;
use std::sync::Arc;

/// The hub's store as datasets see it: encryption over whatever backend.
pub type HubStore = EncryptedStore<Arc<dyn ObjectStore>>;

/// Dataset errors.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// The dataset name is not allowed. The message never repeats the name: a refused name may
    /// be the very identifier the guard stopped.
    #[error("invalid dataset name: {0}")]
    InvalidName(String),
    /// The store failed (including integrity errors, which name the object).
    #[error("{0}")]
    Store(#[from] object_store::Error),
    /// The catalog failed.
    #[error(transparent)]
    Catalog(#[from] shh_catalog::CatalogError),
    /// Parquet encoding failed.
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// Arrow failed.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// A batch does not have the version's schema.
    #[error("batch schema does not match the dataset schema: {0}")]
    SchemaMismatch(String),
    /// A manifest could not be encoded or decoded.
    #[error("manifest: {0}")]
    Manifest(String),
    /// A stored manifest does not hash to its version id.
    #[error("manifest {path} hashes to {found}, not to its version id {expected}")]
    ManifestMismatch {
        /// Manifest path.
        path: String,
        /// The version id.
        expected: String,
        /// What it hashes to.
        found: String,
    },
    /// A data file does not match its manifest entry.
    #[error("file {path} does not match the manifest: {what}")]
    FileMismatch {
        /// File path in the store.
        path: String,
        /// What differs.
        what: String,
    },
    /// The caller's sink (an export) refused or failed.
    #[error(transparent)]
    Sink(#[from] shh_sink::SinkError),
}

/// Checks a dataset name. It becomes part of every object path, which the storage provider
/// reads in clear, so besides its characters the guard checks it holds no direct identifier.
pub fn validate_name(name: &str) -> Result<(), DatasetError> {
    const RULE: &str = "use letters, digits, '_', '-' and '.', at most 128 characters, not \
                        starting with '.' or '-'";
    let bad = |why: String| Err(DatasetError::InvalidName(why));
    if name.is_empty() {
        return bad(format!("it is empty; {RULE}"));
    }
    if name.len() > 128 {
        return bad(format!("it has {} bytes; {RULE}", name.len()));
    }
    if name.starts_with(['.', '-']) {
        return bad(format!("it starts with '.' or '-'; {RULE}"));
    }
    if let Some((i, _)) = name
        .char_indices()
        .find(|&(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        let at = name[..i].chars().count() + 1;
        return bad(format!("character {at} is not allowed; {RULE}"));
    }
    if let Some(h) = shh_pseudo::guard::scan(name, shh_pseudo::guard::Look::NAME) {
        return bad(format!(
            "it holds {}, and names are stored in clear; choose another",
            h.found.describe()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_without_being_repeated() {
        assert!(validate_name("ER_PRS_F").is_ok());
        assert!(validate_name("claims-2024.v2").is_ok());
        for bad in [
            "185057800608491",
            "x.1-85-05-78-006-084-91",
            "patient_185057800608491",
            "jean.dupont@example.fr".replace('@', "_at_").as_str(),
            "185057800608491!",
            "",
            ".hidden",
            "a/b",
        ] {
            match validate_name(bad) {
                Err(e) => {
                    let m = e.to_string();
                    assert!(bad.is_empty() || !m.contains(bad), "{m}");
                    assert!(!m.contains("185057800608491"), "{m}");
                }
                Ok(()) if bad.contains("_at_") => {} // not an address without its at-sign
                Ok(()) => panic!("{bad:?} accepted"),
            }
        }
    }
}
