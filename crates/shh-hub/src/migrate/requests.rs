//! The typed requests and reports of the migration operations: what the CLI fills from its
//! flags and the server will take as JSON, and what comes back.

use super::*;

/// What to run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RunRequest {
    /// A reviewed plan to execute.
    pub plan: Option<PathBuf>,
    /// Or: the source (default: the hub's primary store)…
    pub from: Option<String>,
    /// …and the destination, planned now.
    pub to: Option<String>,
    /// Only names under this prefix.
    pub prefix: Option<String>,
    /// Compare same-size objects by content.
    pub checksum: bool,
    /// Transfer options.
    pub options: Options,
    /// With `options.delete`: refuse to run if more destination-only objects than this.
    pub max_delete: u64,
    /// Recorded as `migrate.sync` rather than `migrate.run`.
    pub sync: bool,
}

/// What a run did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunReport {
    /// The plan executed.
    pub plan: PathBuf,
    /// Its hash.
    pub plan_hash: String,
    /// Source.
    pub from: String,
    /// Destination.
    pub to: String,
    /// The plan's counts.
    pub summary: Summary,
    /// What happened.
    pub stats: RunStats,
    /// The journal.
    pub journal: PathBuf,
    /// Objects the journal had verified before this run.
    pub journal_done_before: u64,
    /// Interrupted multipart uploads found in the journal.
    pub resumable_uploads: usize,
    /// Audit sequence number of the run's event.
    pub audit_seq: u64,
}

/// What a cut-over or rollback did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SwitchReport {
    /// The store the hub ran on.
    pub from: String,
    /// The store it runs on now.
    pub to: String,
    /// The final sync.
    pub sync: RunReport,
    /// The acceptance report (cut-over only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acceptance: Option<AcceptanceReport>,
    /// The store receiving dual writes from now on.
    pub mirror: Option<String>,
}

/// Shadow-read comparison of the primary store and another.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CompareReport {
    /// The primary.
    pub primary: String,
    /// The other side.
    pub other: String,
    /// Objects at the primary.
    pub listed: u64,
    /// Objects read on both sides.
    pub sampled: u64,
    /// Identical.
    pub equal: u64,
    /// Missing at the other side.
    pub missing: Vec<String>,
    /// Different bytes.
    pub differ: Vec<String>,
    /// Bytes read per side.
    pub bytes: u64,
}

/// A plan to write.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PlanRequest {
    /// The source (default: the hub's primary store).
    pub from: Option<String>,
    /// The destination.
    pub to: String,
    /// Only names under this prefix.
    pub prefix: Option<String>,
    /// Compare same-size objects by content.
    pub checksum: bool,
    /// Transfers the estimate assumes.
    pub transfers: usize,
    /// Where the plan is written.
    pub out: PathBuf,
}

/// An acceptance check of a store against the manifests.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct VerifyRequest {
    /// The store (default: the primary).
    pub to: Option<String>,
    /// Decrypt and check the plaintext too.
    pub deep: bool,
    /// Objects read at once.
    pub concurrency: usize,
    /// The signed report's name in the caller's sink (a directory name for a local one).
    pub report: String,
}

/// A cut-over to another store.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct CutoverRequest {
    /// The new primary store.
    pub to: String,
    /// The final sync's transfer options.
    pub options: Options,
    /// How long to wait for other operations and processes to let go of the hub.
    pub wait: std::time::Duration,
    /// Keep the source current by dual writes until finalize.
    pub mirror_source: bool,
    /// The acceptance report's name in the caller's sink.
    pub report: String,
}

/// A rollback to the cut-over's source.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RollbackRequest {
    /// The copy-back's transfer options.
    pub options: Options,
    /// How long to wait for other operations and processes to let go of the hub.
    pub wait: std::time::Duration,
}

/// Shadow reads against another store.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct CompareRequest {
    /// The other store (default: the mirror, or the cut-over's source).
    pub with: Option<String>,
    /// Percent of the primary's objects read.
    pub pct: f64,
    /// Objects read at once.
    pub concurrency: usize,
}

/// Dual writes to another store, or (with `to: None`) their end.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct MirrorRequest {
    /// The mirror; `None` stops mirroring.
    pub to: Option<String>,
    /// How long to wait for other operations and processes to let go of the hub.
    pub wait: std::time::Duration,
}

/// The end of a cut-over's rollback window.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct FinalizeRequest {
    /// How long to wait for other operations and processes to let go of the hub.
    pub wait: std::time::Duration,
}
