//! The hub configuration file, `shh.toml`: where the data lives, where the catalog lives, and
//! where data may go.

use serde::{Deserialize, Serialize};
use shh_store::ResidencyPolicy;

/// Config format marker.
pub const CONFIG_FORMAT: &str = "shh.config/1";
/// The config file name in the hub directory.
pub const CONFIG_FILE: &str = "shh.toml";
/// The keystore file name in the hub directory.
pub const KEYSTORE_FILE: &str = "keystore.json";

/// `shh.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HubConfig {
    /// Format marker.
    pub format: String,
    /// Random identifier of this hub.
    pub hub_id: String,
    /// Primary store URL (ciphertext only goes there).
    pub store: String,
    /// Catalog URL (`sqlite://catalog.db`, relative to the hub directory).
    pub catalog: String,
    /// Destinations data may be sent to.
    #[serde(default)]
    pub residency: ResidencyPolicy,
    /// Refuse every write (set during a cut-over).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
    /// A second store that receives every write (dual-write during a migration window).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<String>,
    /// A cut-over that can still be rolled back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migration: Option<MigrationState>,
}

/// A cut-over in progress: the hub runs on `target`; `source` is kept for a rollback until
/// `shh migrate finalize`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MigrationState {
    /// The store the hub ran on before.
    pub source: String,
    /// The store it runs on now.
    pub target: String,
    /// When the cut-over happened.
    pub cutover_at: chrono::DateTime<chrono::Utc>,
    /// The acceptance report's Merkle root at cut-over.
    pub report_root: String,
}
