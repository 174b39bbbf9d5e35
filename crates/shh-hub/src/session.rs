//! Who is calling: a [`Session`] (principal, roles, the permit it works under) that every hub
//! operation takes, and the [`Authenticator`]s that alone make one.
//!
//! A session is never built from a bare name: its constructor is private to this crate, and
//! only an authenticator, given a credential and the unlocked hub, returns one. Today's is the
//! [`LocalAuthenticator`] of the CLI: whoever unlocked the keystore with the hub's passphrase
//! on this machine is its operator and says who they are (the CLI reads `SHH_ACTOR` and
//! `SHH_ROLE`). The access issue adds principals with their own credentials (`--as USER`), the
//! server adds tokens; both are authenticators here, and nothing else changes.

use crate::{Hub, HubError, Result};
use shh_audit::Actor;

/// An authenticated caller. Cheap to clone; shared by the calls it makes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Session {
    id: String,
    principal: String,
    roles: Vec<String>,
    permit: Option<String>,
    method: &'static str,
}

impl Session {
    /// Only authenticators (in this crate) make sessions.
    pub(crate) fn new(principal: String, roles: Vec<String>, method: &'static str) -> Self {
        Self {
            id: uuid::Uuid::new_v4().simple().to_string(),
            principal,
            roles,
            permit: None,
            method,
        }
    }

    /// The hub acting on its own (recovering a switch a dead process left), not a caller.
    pub(crate) fn hub() -> Self {
        Self::new("shh".into(), vec!["hub".into()], "internal")
    }

    /// This session's id (in the local log beside each error's detail).
    pub fn id(&self) -> &str {
        &self.id
    }
    /// Who.
    pub fn principal(&self) -> &str {
        &self.principal
    }
    /// In which roles (the first is the one events are recorded with).
    pub fn roles(&self) -> &[String] {
        &self.roles
    }
    /// The permit the session works under, if any (research access).
    pub fn permit(&self) -> Option<&str> {
        self.permit.as_deref()
    }
    /// How it was authenticated (`local`, later `password`, `oidc`…).
    pub fn method(&self) -> &str {
        self.method
    }
    /// The actor its audit events carry.
    pub fn actor(&self) -> Actor {
        Actor::new(
            self.principal.clone(),
            self.roles.first().cloned().unwrap_or_default(),
        )
    }
}

/// Turns a credential into a session, or refuses with [`HubError::Unauthenticated`].
pub trait Authenticator: Send + Sync {
    /// What the caller presents.
    type Credential;
    /// The session for `credential` on `hub`.
    fn authenticate(&self, hub: &Hub, credential: &Self::Credential) -> Result<Session>;
}

/// The local operator's claim: who they say they are. It is believed because they unlocked the
/// hub's keystore on this machine, which only its operators can.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LocalOperator {
    /// Their name (`user@host` by default).
    pub name: String,
    /// Their role (`operator` by default).
    pub role: String,
}

/// The CLI's authenticator: see [`LocalOperator`].
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalAuthenticator;

/// Longest name or role a session takes: it is written into every event.
const MAX_NAME: usize = 256;

impl LocalAuthenticator {
    /// The session of `who`, before a hub exists (the one who creates it).
    pub(crate) fn session(who: &LocalOperator) -> Result<Session> {
        for (what, v) in [("name", &who.name), ("role", &who.role)] {
            if v.trim().is_empty() || v.len() > MAX_NAME || v.chars().any(char::is_control) {
                return Err(HubError::Unauthenticated(format!(
                    "the operator's {what} must be 1 to {MAX_NAME} printable characters"
                )));
            }
        }
        Ok(Session::new(
            who.name.clone(),
            vec![who.role.clone()],
            "local",
        ))
    }
}

impl Authenticator for LocalAuthenticator {
    type Credential = LocalOperator;
    fn authenticate(&self, _hub: &Hub, who: &LocalOperator) -> Result<Session> {
        Self::session(who)
    }
}
