//! The catalog: which datasets exist, their versions, which version is current, and hub
//! metadata.
//!
//! Callers see only the [`Catalog`] trait; SQL lives inside each backend. The embedded default
//! is SQLite ([`SqliteCatalog`]); a PostgreSQL backend implements the same trait for
//! multi-replica servers. The catalog is an index: every version's manifest also lives,
//! content-addressed and encrypted, in the store, so the store alone can rebuild it.
//!
//! The one mutable thing about a dataset is its current-version pointer, and it only moves by
//! [`Catalog::commit_version`], a compare-and-swap: two writers racing on the same parent
//! cannot both win, and a writer that dies before the commit leaves nothing visible.
//!
//! Research access ([`AccessCatalog`]) lives here too: users, projects and permits, as the
//! records `shh-access` defines and decides on.

#![forbid(unsafe_code)]

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
mod sqlite;
mod sqlite_access;

pub use shh_access::airlock::ExportRecord;
pub use shh_access::{Credential, Permit, PermitApplication, Principal, Project, Revocation};
pub use sqlite::SqliteCatalog;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Catalog errors.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// No such dataset.
    #[error("no dataset named {0:?}")]
    NoDataset(String),
    /// No version of the dataset matches.
    #[error("dataset {dataset:?} has no version {version:?}")]
    NoVersion {
        /// Dataset.
        dataset: String,
        /// Version id or prefix asked for.
        version: String,
    },
    /// A version prefix matches several versions.
    #[error(
        "version prefix {prefix:?} of dataset {dataset:?} is ambiguous ({count} versions match)"
    )]
    Ambiguous {
        /// Dataset.
        dataset: String,
        /// Prefix.
        prefix: String,
        /// How many match.
        count: usize,
    },
    /// The current pointer moved since the writer read it.
    #[error(
        "dataset {dataset:?} changed while writing: expected current {expected:?}, found {found:?}; retry"
    )]
    Conflict {
        /// Dataset.
        dataset: String,
        /// The parent the writer built on.
        expected: Option<String>,
        /// The current version found.
        found: Option<String>,
    },
    /// The catalog URL is not supported.
    #[error("unsupported catalog URL {0:?} (supported: sqlite://PATH)")]
    UnsupportedUrl(String),
    /// No such record (a user, a project, a permit).
    #[error("no {what} {id:?}")]
    NotFound {
        /// What kind of record.
        what: &'static str,
        /// Its id or name.
        id: String,
    },
    /// A record with that id or name exists already.
    #[error("{what} {id:?} exists already")]
    Exists {
        /// What kind of record.
        what: &'static str,
        /// Its id or name.
        id: String,
    },
    /// The record is no longer in the state the change was made for (a credential replaced,
    /// a permit revoked meanwhile): nothing was changed.
    #[error("{what} {id:?} changed meanwhile: {reason}")]
    Changed {
        /// What kind of record.
        what: &'static str,
        /// Its id or name.
        id: String,
        /// How.
        reason: String,
    },
    /// The backend failed.
    #[error("catalog backend error: {0}")]
    Backend(String),
}

/// Result alias.
pub type Result<T, E = CatalogError> = std::result::Result<T, E>;

/// A dataset and its current version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetRecord {
    /// Name.
    pub name: String,
    /// Current version id, if any version was committed.
    pub current: Option<String>,
    /// Number of versions.
    pub versions: u64,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Time the pointer last moved.
    pub updated_at: DateTime<Utc>,
}

/// One committed version, as indexed by the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionRecord {
    /// Dataset.
    pub dataset: String,
    /// Full version id (hex BLAKE3 of the manifest).
    pub id: String,
    /// Parent version id.
    pub parent: Option<String>,
    /// Path of the manifest in the store.
    pub manifest_path: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Rows.
    pub rows: u64,
    /// Data files.
    pub files: u64,
    /// Plaintext bytes of the data files.
    pub bytes: u64,
}

/// One entry of the opt-out register: a patient who objected to the use of their data, known
/// only by their pseudonym under one key version (the source identifier is never stored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OptOutRecord {
    /// The pseudonym.
    pub pseudonym: String,
    /// The pseudonym key version it was computed under.
    pub key_version: u32,
    /// When the objection was registered.
    pub added_at: DateTime<Utc>,
}

/// A released cell in a project's ledger.
pub type LedgerEntry = shh_access::LedgerCell;

/// Who may use the hub and under which permits: principals, projects and permits. Records
/// are created whole and change only by the few steps below, each atomic, so two deciders
/// racing cannot both win (two enrollments of one user, a revocation and a second one).
#[async_trait]
pub trait AccessCatalog: Send + Sync {
    /// Adds a user; `Exists` if the name is taken.
    async fn add_principal(&self, p: &Principal) -> Result<()>;
    /// One user; `NotFound` if unknown.
    async fn principal(&self, name: &str) -> Result<Principal>;
    /// Every user, by name.
    async fn principals(&self) -> Result<Vec<Principal>>;
    /// Sets a user's credential, only if their public key is still `expected` (`None`: not
    /// enrolled yet); `Changed` otherwise.
    async fn set_credential(
        &self,
        name: &str,
        expected: Option<&str>,
        credential: &Credential,
    ) -> Result<()>;
    /// Adds a project; `Exists` if the id is taken.
    async fn add_project(&self, p: &Project) -> Result<()>;
    /// One project.
    async fn project(&self, id: &str) -> Result<Project>;
    /// Every project, oldest first.
    async fn projects(&self) -> Result<Vec<Project>>;
    /// Adds a member to a project; false if they were one already.
    async fn add_member(&self, project: &str, name: &str) -> Result<bool>;
    /// Adds a granted permit; `Exists` if the id is taken.
    async fn add_permit(&self, p: &Permit) -> Result<()>;
    /// One permit.
    async fn permit(&self, id: &str) -> Result<Permit>;
    /// The permits of a project (or all), oldest first.
    async fn permits(&self, project: Option<&str>) -> Result<Vec<Permit>>;
    /// Revokes a permit, only if it is not revoked yet (`Changed` otherwise).
    async fn revoke_permit(&self, id: &str, revocation: &Revocation) -> Result<()>;
    /// The cells of `project`'s ledger in `scope` (its datasets) for the measure `signature`,
    /// with between `lo` and `hi` patients.
    async fn ledger_near(
        &self,
        project: &str,
        scope: &str,
        signature: &str,
        lo: u64,
        hi: u64,
    ) -> Result<Vec<LedgerEntry>>;
    /// Adds cells to `project`'s ledger in `scope`, all or none.
    async fn ledger_add(&self, project: &str, scope: &str, cells: &[LedgerEntry]) -> Result<()>;
    /// Adds a release request; `Exists` if the id is taken.
    async fn add_export(&self, e: &ExportRecord) -> Result<()>;
    /// One release request.
    async fn export(&self, id: &str) -> Result<ExportRecord>;
    /// The release requests of a project (or all), oldest first.
    async fn exports(&self, project: Option<&str>) -> Result<Vec<ExportRecord>>;
    /// Replaces a release request, only if it is still `expected` (`Changed` otherwise): two
    /// checkers reviewing at once, or a review racing an update, cannot both count.
    async fn change_export(&self, expected: &ExportRecord, new: &ExportRecord) -> Result<()>;
    /// Adds a permit request; `Exists` if the id is taken, `NotFound` without its project.
    async fn add_application(&self, a: &PermitApplication) -> Result<()>;
    /// One permit request.
    async fn application(&self, id: &str) -> Result<PermitApplication>;
    /// The permit requests of a project (or all), oldest first.
    async fn applications(&self, project: Option<&str>) -> Result<Vec<PermitApplication>>;
    /// Replaces a permit request, only if it is still `expected` (`Changed` otherwise): a
    /// grant and a refusal racing cannot both decide it.
    async fn change_application(
        &self,
        expected: &PermitApplication,
        new: &PermitApplication,
    ) -> Result<()>;
}

/// The catalog interface every backend implements.
#[async_trait]
pub trait Catalog: AccessCatalog + Send + Sync + std::fmt::Debug {
    /// Reads a hub metadata value.
    async fn get_meta(&self, key: &str) -> Result<Option<String>>;
    /// Writes a hub metadata value.
    async fn set_meta(&self, key: &str, value: &str) -> Result<()>;
    /// All datasets, by name.
    async fn datasets(&self) -> Result<Vec<DatasetRecord>>;
    /// One dataset.
    async fn dataset(&self, name: &str) -> Result<DatasetRecord>;
    /// Versions of a dataset, oldest first.
    async fn versions(&self, dataset: &str) -> Result<Vec<VersionRecord>>;
    /// The version whose id starts with `prefix` (at least 4 hex characters), or the current
    /// one if `prefix` is `None`.
    async fn version(&self, dataset: &str, prefix: Option<&str>) -> Result<VersionRecord>;
    /// Records `version` and moves the dataset's current pointer to it, only if the pointer is
    /// still `version.parent` (creating the dataset when the parent is `None`).
    async fn commit_version(&self, version: &VersionRecord) -> Result<()>;
    /// Adds opt-out entries (in one transaction); returns how many were new.
    async fn add_optouts(&self, entries: &[OptOutRecord]) -> Result<u64>;
    /// The opt-out register, by pseudonym.
    async fn optouts(&self) -> Result<Vec<OptOutRecord>>;
}

/// Opens the catalog a URL names: `sqlite://PATH` (relative paths resolve against `base`).
pub fn open_catalog(url: &str, base: &std::path::Path) -> Result<Arc<dyn Catalog>> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        let p = std::path::Path::new(path);
        let p = if p.is_absolute() {
            p.to_owned()
        } else {
            base.join(p)
        };
        return Ok(Arc::new(SqliteCatalog::open(&p)?));
    }
    Err(CatalogError::UnsupportedUrl(url.to_owned()))
}
