//! Who the local operator says they are: `SHH_ACTOR` (default `user@host`) in role
//! `SHH_ROLE` (default `operator`). The hub believes it because they unlocked its keystore
//! (`shh_hub::LocalAuthenticator`); the server will authenticate its callers instead.

use shh_hub::LocalOperator;

/// The operator of this process.
pub fn from_env() -> LocalOperator {
    let name = std::env::var("SHH_ACTOR").ok().filter(|s| !s.is_empty());
    let name = name.unwrap_or_else(|| {
        let user = std::env::var("USER")
            .or_else(|_| std::env::var("USERNAME"))
            .unwrap_or_else(|_| "unknown".into());
        let host = std::fs::read_to_string("/etc/hostname")
            .ok()
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| "localhost".into());
        format!("{user}@{host}")
    });
    let role = std::env::var("SHH_ROLE")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "operator".into());
    LocalOperator { name, role }
}
