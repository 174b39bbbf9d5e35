//! Users: added by an operator with their roles, then enrolled with a credential of their own
//! (an Ed25519 key pair whose private half is sealed under their passphrase). The enrollment
//! event records the public key, so every signature a user makes later can be checked offline
//! against the key the log shows they enrolled.

use crate::core::Call;
use crate::session::key_purpose;
use crate::{Hub, HubError, Result, Session};
use serde::{Deserialize, Serialize};
use shh_access::{Action, Credential, Denied, Principal, Role};
use shh_audit::Draft;

/// Shortest passphrase a user may enroll with.
pub const MIN_PASSPHRASE: usize = 8;

/// `shh user add NAME --role ROLE...`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserAddRequest {
    /// The user name.
    pub name: String,
    /// Their roles.
    pub roles: Vec<Role>,
}

/// `shh user enroll NAME`: the user and the passphrase their new key is sealed under (the
/// same shape as a login, and as carefully never printed).
pub type UserEnrollRequest = crate::UserLogin;

/// A user as shown (never their sealed key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserView {
    /// Name.
    pub name: String,
    /// Roles.
    pub roles: Vec<Role>,
    /// Their public key (hex), once enrolled.
    pub public_key: Option<String>,
    /// Its fingerprint.
    pub fingerprint: Option<String>,
    /// Who added them.
    pub created_by: String,
    /// When.
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl From<&Principal> for UserView {
    fn from(p: &Principal) -> Self {
        let key = p.public_key().map(str::to_owned);
        Self {
            name: p.name.clone(),
            roles: p.roles.iter().copied().collect(),
            fingerprint: key.as_deref().and_then(fingerprint),
            public_key: key,
            created_by: p.created_by.clone(),
            created_at: p.created_at,
        }
    }
}

/// The audit key's fingerprint scheme applied to a user's key.
pub(crate) fn fingerprint(hex_key: &str) -> Option<String> {
    shh_audit::PublicKey::parse_all(hex_key)
        .ok()
        .and_then(|k| k.first().map(|k| k.fingerprint()))
}

impl Call<'_> {
    pub(crate) async fn add_user(&self, p: &Principal) -> Result<UserView> {
        p.validate()?;
        // Digits are allowed in a name, so a NIR could be one: refused like any other name.
        crate::guard::check("the user name", &p.name)?;
        let roles: Vec<&str> = p.roles.iter().map(|r| r.as_str()).collect();
        let event = Draft::new("user.add")
            .detail("user", p.name.clone())
            .detail("roles", roles.join(","));
        self.recorded(event, async { Ok(self.catalog.add_principal(p).await?) })
            .await?;
        Ok(UserView::from(p))
    }

    async fn enroll(&self, req: &UserEnrollRequest) -> Result<UserView> {
        self.ensure_writable()?;
        let event = Draft::new("user.enroll").detail("user", req.name.clone());
        let target = self.catalog.principal(&req.name).await?;
        let own = self.session.is_user() && self.session.principal() == req.name;
        if !own {
            self.allow(Action::EnrollUser).await?;
            if target.credential.is_some() {
                let once = Denied {
                    rule: "enroll.once",
                    reason: format!(
                        "{} is enrolled already: only they can replace their key (--as {})",
                        req.name, req.name
                    ),
                };
                self.enforce(&event, Err(once)).await?;
            }
        }
        if req.passphrase.chars().count() < MIN_PASSPHRASE {
            return Err(HubError::Invalid(shh_access::Invalid {
                field: "passphrase",
                reason: format!("at least {MIN_PASSPHRASE} characters"),
            }));
        }
        // The hub's passphrase opens everything: a user's credential must be their own.
        if shh_keys::Keystore::open(self.keystore.path(), &req.passphrase).is_ok() {
            let own = Denied {
                rule: "enroll.own-passphrase",
                reason: "a user's passphrase must not be the hub's".into(),
            };
            self.enforce(&event, Err(own)).await?;
        }
        let (seed, sealed) = shh_keys::SealedSecret::generate(
            &req.passphrase,
            self.keystore.kdf_params(),
            &key_purpose(&self.config.hub_id, &req.name),
        )
        .map_err(|e| HubError::Internal(format!("sealing the user's key: {e}")))?;
        let signer = shh_audit::Signer::from_seed(&seed)
            .map_err(|e| HubError::Internal(format!("the user's key: {e}")))?;
        let public = signer.public();
        let credential = Credential {
            public_key: hex::encode(public.bytes()),
            sealed: sealed.to_json(),
            enrolled_at: chrono::Utc::now(),
        };
        let event = event
            .detail("public_key", credential.public_key.clone())
            .detail("fingerprint", public.fingerprint())
            .detail("replaces", target.public_key().unwrap_or("").to_owned());
        // Durable in the log before the credential can be used.
        self.recorded(event, async {
            Ok(self
                .catalog
                .set_credential(&req.name, target.public_key(), &credential)
                .await?)
        })
        .await?;
        let mut p = target;
        p.credential = Some(credential);
        Ok(UserView::from(&p))
    }
}

/// The user operations.
impl Hub {
    /// Adds a user (operators only).
    pub async fn user_add(&self, s: &Session, req: &UserAddRequest) -> Result<UserView> {
        let core = self.core.read().await;
        let task = shh_task::Task::silent();
        let call = Call::new(&core, s, &task);
        call.allow(Action::ManageUsers).await?;
        core.ensure_writable()?;
        let p = Principal {
            name: req.name.clone(),
            roles: req.roles.iter().copied().collect(),
            credential: None,
            created_by: s.principal().to_owned(),
            created_at: chrono::Utc::now(),
        };
        call.add_user(&p).await
    }

    /// Enrolls a user's first credential (an operator), or replaces one's own (the user,
    /// proven with the old one).
    pub async fn user_enroll(&self, s: &Session, req: &UserEnrollRequest) -> Result<UserView> {
        let core = self.core.read().await;
        Call::new(&core, s, &shh_task::Task::silent())
            .enroll(req)
            .await
    }

    /// Every user, by name.
    pub async fn users(&self, s: &Session) -> Result<Vec<UserView>> {
        let core = self.core.read().await;
        Call::new(&core, s, &shh_task::Task::silent())
            .allow(Action::ManageUsers)
            .await?;
        Ok(core
            .catalog
            .principals()
            .await?
            .iter()
            .map(UserView::from)
            .collect())
    }
}
