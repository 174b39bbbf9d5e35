//! What a run is told (its options: concurrency, part sizes, buffer, bandwidth, verification,
//! retries, deletion) and what it reports (its stats).

use super::*;

/// How an object is verified after it is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VerifyMode {
    /// The service's check of every signed body on receipt where it makes one (probed), a
    /// read-back elsewhere.
    Auto,
    /// Read it back and compare its BLAKE3 with the source's.
    ReadBack,
    /// Compare sizes only.
    Size,
}

/// How to run.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Options {
    /// Objects in flight.
    pub transfers: usize,
    /// Objects at least this large go part by part.
    pub multipart_threshold: u64,
    /// Preferred part size (raised to respect the destination's part limits).
    pub part_size: u64,
    /// Parts of one object in flight.
    pub part_concurrency: usize,
    /// Bytes of source data buffered at once over all transfers (whole small objects and
    /// parts): memory stays bounded however large the objects in flight are.
    pub buffer: u64,
    /// Bytes per second over all transfers.
    pub bwlimit: Option<u64>,
    /// Verification after writing.
    pub verify: VerifyMode,
    /// Attempts per object before it fails, and the waits between them (the requests inside
    /// are retried by the store's client too: `shh_store::retry`).
    pub retry: BackoffConfig,
    /// Stop starting new objects after this many failures.
    pub max_failures: usize,
    /// Quarantine and delete destination-only objects.
    pub delete: bool,
    /// Names the quarantine folder.
    pub run_id: String,
    /// The plan's prefix: what an interrupted earlier run left is cleaned up only under it
    /// (another plan of the same stores may still resume its own).
    pub scope: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            transfers: 32,
            multipart_threshold: 128 * MIB,
            part_size: 8 * MIB,
            part_concurrency: 8,
            buffer: 512 * MIB,
            bwlimit: None,
            verify: VerifyMode::Auto,
            retry: BackoffConfig::default(),
            max_failures: 100,
            delete: false,
            run_id: uuid::Uuid::new_v4().to_string(),
            scope: None,
        }
    }
}

/// An object that could not be migrated.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Failure {
    /// The object.
    pub path: String,
    /// Why.
    pub error: String,
}

/// What a run did.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct RunStats {
    /// Copied (absent before).
    pub copied: Tally,
    /// Replaced (different size before).
    pub replaced: Tally,
    /// Left alone (same size).
    pub same: Tally,
    /// Compared by content and found equal.
    pub checked_equal: Tally,
    /// Found already written (by an earlier, interrupted run) and verified.
    pub already_there: Tally,
    /// Destination-only objects quarantined and deleted.
    pub quarantined: Tally,
    /// Destination-only objects left in place.
    pub dest_only_kept: Tally,
    /// Listed empty, then not found at the source: folder markers (keys ending in `/`, which
    /// list without the slash and cannot be addressed) or empty objects deleted since listing.
    /// Nothing to copy either way.
    pub empty_gone: Tally,
    /// The first [`NAMES_KEPT`] of them.
    pub empty_gone_names: Vec<String>,
    /// Objects whose bytes this run sent in chunk-signed requests, streamed from the source
    /// (whole, or part by part); the rest went in requests signed whole.
    pub chunk_signed: Tally,
    /// Bytes written to the destination.
    pub bytes_sent: u64,
    /// Bytes read back for verification.
    pub bytes_read_back: u64,
    /// Parts of interrupted uploads that were not sent again.
    pub parts_resumed: u64,
    /// Staging files a killed earlier run left at a local destination, removed (count, bytes).
    pub staging_removed: Tally,
    /// Multipart uploads an earlier run left open and no object took up, aborted.
    pub uploads_aborted: u64,
    /// Their bytes.
    pub bytes_resumed: u64,
    /// Requests retried.
    pub retries: u64,
    /// Objects that failed.
    pub failures: Vec<Failure>,
    /// Wall time.
    pub seconds: f64,
    /// Verification used.
    pub verification: String,
}
