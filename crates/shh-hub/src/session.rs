//! Who is calling: a [`Session`] (principal, roles, the permit it works under) that every hub
//! operation takes, and the [`Authenticator`]s that alone make one.
//!
//! A session is never built from a bare name: its constructor is private to this crate, and
//! only an authenticator, given a credential and the unlocked hub, returns one.
//! - [`LocalAuthenticator`]: whoever unlocked the keystore with the hub's passphrase on this
//!   machine is its operator (the CLI reads their name from `SHH_ACTOR`; `SHH_ROLE` only
//!   labels their events and grants nothing).
//! - [`UserAuthenticator`]: an enrolled user proves who they are with their own passphrase,
//!   which opens their signing key (`--as USER`); the session holds their roles and the key
//!   that signs their decisions.
//!
//! The server adds tokens; they are authenticators here too, and nothing else changes.

use crate::{Hub, HubError, Result};
use shh_access::{Action, Role};
use shh_audit::Actor;
use std::collections::BTreeSet;
use std::sync::Arc;

/// A user's signing key, unlocked for one session (never serialized, never shown).
#[derive(Clone)]
pub(crate) struct UserKey(Arc<shh_audit::Signer>);

impl UserKey {
    pub(crate) fn signer(&self) -> &shh_audit::Signer {
        &self.0
    }
}

impl std::fmt::Debug for UserKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "UserKey({})", self.0.public().fingerprint())
    }
}

impl PartialEq for UserKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.public() == other.0.public()
    }
}
impl Eq for UserKey {}

/// An authenticated caller. Cheap to clone; shared by the calls it makes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Session {
    id: String,
    principal: String,
    roles: Vec<String>,
    /// What the session may do: the roles the table of `shh_access` checks.
    grants: BTreeSet<Role>,
    permit: Option<String>,
    method: &'static str,
    #[serde(skip)]
    key: Option<UserKey>,
}

impl Session {
    /// Only authenticators (in this crate) make sessions.
    pub(crate) fn new(
        principal: String,
        roles: Vec<String>,
        grants: BTreeSet<Role>,
        method: &'static str,
    ) -> Self {
        Self {
            id: uuid::Uuid::new_v4().simple().to_string(),
            principal,
            roles,
            grants,
            permit: None,
            method,
            key: None,
        }
    }

    /// The hub acting on its own (recovering a switch a dead process left), not a caller.
    pub(crate) fn hub() -> Self {
        Self::new(
            "shh".into(),
            vec!["hub".into()],
            BTreeSet::from([Role::Operator]),
            "internal",
        )
    }

    /// The roles this session may act in.
    pub fn grants(&self) -> &BTreeSet<Role> {
        &self.grants
    }

    /// Whether the session's roles allow `action` (the table of `shh_access`).
    pub fn may(&self, action: Action) -> bool {
        shh_access::may(&self.grants, action)
    }

    /// The key that signs this session's decisions: only a user who proved who they are has
    /// one.
    pub(crate) fn key(&self) -> Result<&UserKey> {
        self.key.as_ref().ok_or_else(|| {
            HubError::Forbidden(
                "this decision is signed by the deciding user's own key: run it --as an enrolled \
                 user"
                    .into(),
            )
        })
    }

    /// Whether the session was proven with a user's own credential (`--as`).
    pub fn is_user(&self) -> bool {
        self.key.is_some()
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
#[async_trait::async_trait]
pub trait Authenticator: Send + Sync {
    /// What the caller presents.
    type Credential: Sync;
    /// The session for `credential` on `hub`.
    async fn authenticate(&self, hub: &Hub, credential: &Self::Credential) -> Result<Session>;
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
        // Holding the hub passphrase is what makes them its operator; the role they name
        // labels their events and grants nothing more.
        Ok(Session::new(
            who.name.clone(),
            vec![who.role.clone()],
            BTreeSet::from([Role::Operator]),
            "local",
        ))
    }
}

#[async_trait::async_trait]
impl Authenticator for LocalAuthenticator {
    type Credential = LocalOperator;
    async fn authenticate(&self, _hub: &Hub, who: &LocalOperator) -> Result<Session> {
        Self::session(who)
    }
}

/// An enrolled user and their own passphrase (`--as USER`).
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
pub struct UserLogin {
    /// The user name.
    pub name: String,
    /// Their passphrase (never the hub's).
    pub passphrase: String,
}

impl std::fmt::Debug for UserLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "UserLogin({}, ..)", self.name)
    }
}

/// Authenticates an enrolled user by their passphrase: it must open the signing key sealed in
/// their record, and that key must be the public key they enrolled. A failure is recorded
/// (`user.authenticate`, failed) and says only that the name or passphrase is wrong.
#[derive(Debug, Clone, Copy, Default)]
pub struct UserAuthenticator;

/// What a user's sealed key is bound to: this hub and this user.
pub(crate) fn key_purpose(hub_id: &str, name: &str) -> String {
    format!("user-key/{hub_id}/{name}")
}

#[async_trait::async_trait]
impl Authenticator for UserAuthenticator {
    type Credential = UserLogin;
    async fn authenticate(&self, hub: &Hub, login: &UserLogin) -> Result<Session> {
        if shh_access::validate_user_name(&login.name).is_err() {
            return Err(wrong_login(&login.name));
        }
        let core = hub.core.read().await;
        let hub_id = core.config.hub_id.clone();
        let proven = match core.catalog.principal(&login.name).await {
            Ok(p) => prove(&hub_id, &p, &login.passphrase).map(|k| (p, k)),
            Err(shh_catalog::CatalogError::NotFound { .. }) => Err(wrong_login(&login.name)),
            Err(e) => return Err(e.into()),
        };
        match proven {
            Ok((p, key)) => {
                let mut s = Session::new(
                    p.name.clone(),
                    p.roles.iter().map(|r| r.as_str().to_owned()).collect(),
                    p.roles.clone(),
                    "key",
                );
                s.key = Some(key);
                Ok(s)
            }
            Err(e) => {
                let who = Session::new(login.name.clone(), vec![], BTreeSet::new(), "key");
                let task = shh_task::Task::silent();
                crate::core::Call::new(&core, &who, &task)
                    .record(
                        shh_audit::Draft::new("user.authenticate")
                            .detail("user", login.name.clone())
                            .refused(e.to_string()),
                    )
                    .await?;
                Err(e)
            }
        }
    }
}

/// The one answer to a failed login: an unknown name and a wrong passphrase look the same.
fn wrong_login(name: &str) -> HubError {
    HubError::Unauthenticated(format!("unknown user or wrong passphrase for {name:?}"))
}

/// Opens `p`'s sealed key with `passphrase` and checks it is the key `p` enrolled.
fn prove(hub_id: &str, p: &shh_access::Principal, passphrase: &str) -> Result<UserKey> {
    let refused = || wrong_login(&p.name);
    let Some(c) = &p.credential else {
        return Err(HubError::Unauthenticated(format!(
            "{} has no credential yet: enroll with `shh user enroll {}`",
            p.name, p.name
        )));
    };
    let sealed = shh_keys::SealedSecret::from_json(&c.sealed).map_err(|_| refused())?;
    let seed = sealed
        .open(passphrase, &key_purpose(hub_id, &p.name))
        .map_err(|_| refused())?;
    let signer = shh_audit::Signer::from_seed(&seed).map_err(|_| refused())?;
    // A sealed key swapped into the record opens, but is not the key the user enrolled.
    if hex::encode(signer.public().bytes()) != c.public_key {
        return Err(HubError::Integrity(format!(
            "the key sealed for {} is not the public key they enrolled",
            p.name
        )));
    }
    Ok(UserKey(Arc::new(signer)))
}
