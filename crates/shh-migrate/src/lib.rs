//! Moving a hub's bytes between clouds, with proof.
//!
//! The pipeline follows rclone's split of march, transfer and verify:
//!
//! 1. [`listing`]: each side's listing, sorted in bounded memory (runs spilled to disk and
//!    merged), because `file://` lists in directory order and millions of objects do not fit.
//! 2. [`plan`]: a sorted merge of the two listings classifies every object (copy, same, check,
//!    replace, only at the destination) and writes a hashed plan an operator can review.
//! 3. [`transfer`]: concurrent copies that hash the source bytes as they pass, write
//!    create-only where the target can, use resumable multipart uploads for large objects, and
//!    verify every object after writing it. A crash-safe [`journal`] lets a re-run after
//!    `kill -9` send only what was not finished.
//! 4. [`report`]: the signed acceptance report (JSON lines per object, a Merkle root over them,
//!    Markdown and HTML for people). What is checked (the manifests' hashes) is the hub's job;
//!    this crate writes and checks the report.
//!
//! The hub encrypts client-side, so everything here moves ciphertext and needs no data key.

#![forbid(unsafe_code)]

pub mod journal;
pub mod listing;
pub mod plan;
pub mod probe;
pub mod report;
pub mod transfer;

pub use journal::Journal;
pub use listing::{Entry, SortedListing};
pub use plan::{Action, Item, PlanHeader, PlanReader, Summary, Tally};
pub use probe::Capabilities;
pub use transfer::{NAMES_KEPT, Options, RunStats, Side, VerifyMode, blake3_of};

use std::path::PathBuf;

/// Object names under these prefixes belong to the migration itself (capability probes,
/// quarantined deletions): never listed, copied or deleted as hub data.
pub const INTERNAL_PREFIXES: [&str; 2] = [".shh-migrate/", ".shh-quarantine/"];

/// Whether `path` is one of the migration's own objects.
pub fn is_internal(path: &str) -> bool {
    INTERNAL_PREFIXES.iter().any(|p| path.starts_with(p))
}

/// Errors of migration operations. Every variant names the object or file concerned.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// A store operation failed for good (after retries, or not retriable).
    #[error("{op} {path}: {source}")]
    Object {
        /// What was being done.
        op: &'static str,
        /// The object.
        path: String,
        /// The store's error.
        source: object_store::Error,
    },
    /// Listing a store failed.
    #[error("listing {url}: {source}")]
    List {
        /// The store.
        url: String,
        /// The store's error.
        source: object_store::Error,
    },
    /// Local file I/O (plans, journals, reports, spill files).
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A plan, journal or report file is malformed or does not match its hash.
    #[error("{path}: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A store URL or the residency policy refused the store.
    #[error(transparent)]
    Store(#[from] shh_store::StoreError),
    /// The run was refused before anything moved.
    #[error("{0}")]
    Refused(String),
    /// Some objects failed; the first is named.
    #[error("{failed} object(s) failed; first: {first}")]
    Failed {
        /// How many.
        failed: usize,
        /// The first failure, with its object name.
        first: String,
    },
    /// The caller cancelled the run; the journal holds every object finished before.
    #[error("cancelled; the journal holds every object finished before, and a re-run resumes")]
    Cancelled,
    /// The caller's sink (an acceptance report) refused or failed.
    #[error(transparent)]
    Sink(#[from] shh_sink::SinkError),
}

/// Result alias.
pub type Result<T, E = MigrateError> = std::result::Result<T, E>;

pub(crate) fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> MigrateError + '_ {
    move |source| MigrateError::Io {
        path: path.to_owned(),
        source,
    }
}
