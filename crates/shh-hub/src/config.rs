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
    /// A store switch under way: written before it starts, cleared when it ends, so that a
    /// switch whose process died is finished or undone by the next process that opens the hub
    /// (`crate::switch`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub switch: Option<Switch>,
    /// Disclosure control for aggregate permits (`[disclosure]`); the defaults unless the
    /// operator set them. No query can change them.
    #[serde(default, skip_serializing_if = "is_default")]
    pub disclosure: shh_query::disclosure::Settings,
}

fn is_default(s: &shh_query::disclosure::Settings) -> bool {
    *s == shh_query::disclosure::Settings::default()
}

/// A store switch (cut-over or rollback) in progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Switch {
    /// Random id, recorded in the switch's events (so that recovery records nothing twice).
    pub id: String,
    /// `migrate.cutover` or `migrate.rollback`: the event that ends it.
    pub action: String,
    /// The store the hub ran on when it started.
    pub from: String,
    /// The store it switches to.
    pub to: String,
    /// How far it got.
    pub phase: SwitchPhase,
    /// When it started.
    pub started_at: chrono::DateTime<chrono::Utc>,
    /// Switched: the details of the event that ends it, recorded on recovery if the process
    /// died before recording it.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub details: serde_json::Map<String, serde_json::Value>,
}

/// Where a switch stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SwitchPhase {
    /// Read-only, copying and verifying; `store` is still `from`. Undone on recovery.
    Started,
    /// `store` is `to`; the ending event may be missing. Completed on recovery.
    Switched,
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
