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
}
