//! The hub: one directory holding the configuration (`shh.toml`), the keystore and (embedded
//! default) the SQLite catalog, plus a primary store holding only ciphertext.
//!
//! [`Hub::init`] creates one; [`Hub::open`] unlocks one with its passphrase. Then an
//! [`Authenticator`] turns a caller's credential into a [`Session`], and every operation takes
//! that session and a [`Task`] (cancellation, progress): this is the one operations API the CLI
//! and, later, the server call; they hold no logic of their own. A `Hub` is `Send + Sync` and
//! meant to be shared as `Arc<Hub>` by many sessions at once ([`core`] says how a store switch
//! drains them). Errors carry an [`ErrorKind`] a front end maps to an exit code or a status.

#![forbid(unsafe_code)]

pub mod access;
pub mod audit;
pub mod config;
mod core;
pub mod demo;
mod error;
mod guard;
pub mod ingest;
mod init;
mod lock;
pub mod migrate;
pub mod ops;
pub mod query;
mod session;
mod switch;
pub mod synth;
#[cfg(feature = "testkit")]
pub mod testkit;

pub use config::{CONFIG_FILE, CONFIG_FORMAT, HubConfig, KEYSTORE_FILE, MigrationState};
pub use shh_audit::Actor;
pub use shh_catalog::{DatasetRecord, OptOutRecord, VersionRecord};
pub use shh_keys::{KdfParams, KeyInfo, KeyPurpose};
pub use shh_store::{ResidencyPolicy, ResidencyRule, StoreUrl};

use shh_audit::Draft;

pub use error::{ErrorBody, ErrorKind, HubError, Result};
pub use session::{
    Authenticator, LocalAuthenticator, LocalOperator, Session, UserAuthenticator, UserLogin,
};
pub use shh_access::{
    Action, ApplicationState, Mode, Permit, PermitApplication, PermitState, Project, Role,
};
pub use shh_sink::{DirSink, MemorySink, Sink, SinkError};
pub use shh_task::{Cancelled, ProgressSink, Task, Unit};

pub(crate) use error::io;

use crate::core::{Call, CallMut, Core};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The net every message passes before a front end shows it: direct identifiers (NIRs,
/// e-mail addresses, phone numbers…) replaced by their class.
pub fn redact(text: &str) -> String {
    shh_pseudo::guard::redact(text).into_owned()
}

/// How to create a hub.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// Primary store; default `file://<hub>/store`.
    pub store: Option<StoreUrl>,
    /// Destinations to allow besides local disk (the primary store's is added automatically).
    pub allow: Vec<ResidencyRule>,
    /// Argon2id parameters.
    pub kdf: KdfParams,
    /// The proxy requests to remote stores go through (`[residency] proxy`); never the
    /// environment's.
    pub proxy: Option<String>,
}

impl Default for InitOptions {
    fn default() -> Self {
        Self {
            store: None,
            allow: Vec::new(),
            kdf: KdfParams::DEFAULT,
            proxy: None,
        }
    }
}

/// An opened, unlocked hub. Share it as `Arc<Hub>`: every operation takes `&self`.
#[derive(Debug)]
pub struct Hub {
    dir: PathBuf,
    core: tokio::sync::RwLock<Core>,
}

impl Hub {
    /// Opens and unlocks the hub in `dir`. A store switch a dead process left half-done is
    /// finished or undone first ([`switch`]), recorded as the hub's own act.
    pub async fn open(dir: &Path, passphrase: &str) -> Result<Hub> {
        // Not a hub: no lock file is created. Read again under the lock, which a store switch
        // holds while it rewrites the configuration.
        core::read_config(dir)?;
        let lock = lock::HubLock::shared(dir)?;
        let config = core::read_config(dir)?;
        let keystore = core::open_keystore(dir, passphrase)?;
        let mut core = Core::from_parts(dir, config, keystore, lock)?;
        if core.config.switch.is_some() {
            let (session, task) = (Session::hub(), Task::silent());
            Box::pin(CallMut::new(&mut core, &session, &task).recover_switch()).await?;
        }
        Ok(Hub::from_core(core))
    }

    fn from_core(core: Core) -> Hub {
        Hub {
            dir: core.dir.clone(),
            core: tokio::sync::RwLock::new(core),
        }
    }

    /// Reads `shh.toml` without unlocking anything.
    pub fn read_config(dir: &Path) -> Result<HubConfig> {
        core::read_config(dir)
    }

    /// The hub directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The configuration as it is now (a switch may change it later).
    pub async fn config(&self) -> HubConfig {
        self.core.read().await.config.clone()
    }

    /// Fails with [`HubError::ReadOnly`] while writes are refused (a cut-over in progress).
    pub async fn ensure_writable(&self) -> Result<()> {
        self.core.read().await.ensure_writable()
    }

    /// Waits for the other operations of this process to finish and keeps new ones waiting,
    /// for at most `wait` (then [`HubError::Busy`]): the in-process half of a switch's
    /// exclusivity, beside the file lock that keeps other processes out.
    async fn exclusive(&self, wait: Duration) -> Result<tokio::sync::RwLockWriteGuard<'_, Core>> {
        tokio::time::timeout(wait, self.core.write())
            .await
            .map_err(|_| {
                HubError::Busy(
                    "other operations of this process are still running on the hub; retry when \
                     they have finished"
                        .into(),
                )
            })
    }

    /// Changes the passphrase: re-wraps the master keys only; no stored object changes.
    /// The change is recorded in the audit log (a failed change too).
    pub async fn change_passphrase(&self, session: &Session, new_passphrase: &str) -> Result<()> {
        self.allow(session, shh_access::Action::Keys).await?;
        let mut core = self.exclusive(Duration::from_secs(30)).await?;
        let task = Task::silent();
        let call = CallMut::new(&mut core, session, &task);
        call.change_passphrase(new_passphrase).await
    }
}

impl CallMut<'_> {
    async fn change_passphrase(mut self, new_passphrase: &str) -> Result<()> {
        let event = Draft::new("keys.passwd").object(self.keystore.path().display().to_string());
        match self.keystore.change_passphrase(new_passphrase, None) {
            Ok(()) => {
                let n = self.keystore.keys().len() as u64;
                self.record(event.detail("master_keys", n)).await?;
                Ok(())
            }
            Err(e) => {
                self.record(event.failed(e.to_string())).await?;
                Err(e.into())
            }
        }
    }
}

impl Call<'_> {
    /// Publishes a dataset version written with [`shh_dataset::VersionWriter`], recording
    /// `event` (its action and details) with the version's reference, id, rows, files and bytes
    /// added, after its manifest is sealed and before the catalog shows it: no version is ever
    /// visible without its audit event.
    pub(crate) async fn commit_version_as(
        &self,
        writer: shh_dataset::VersionWriter,
        event: Draft,
    ) -> Result<shh_dataset::CommittedVersion> {
        if self.config.read_only {
            writer.abort().await;
            return Err(HubError::ReadOnly);
        }
        if self.task.is_cancelled() {
            writer.abort().await;
            return Err(HubError::Cancelled("nothing was published".into()));
        }
        let sealed = writer.seal().await?;
        let v = sealed.version();
        let reference = ops::short_ref(&v.record.dataset, &v.id);
        let mut event = event
            .dataset(reference.clone())
            .detail("version", v.id.clone())
            .detail("rows", v.manifest.rows)
            .detail("files", v.manifest.files.len() as u64)
            .detail("bytes", v.manifest.plain_bytes());
        if let Some(p) = &v.manifest.parent {
            event = event.detail("parent", p.clone());
        }
        self.record(event).await?;
        match sealed.publish().await {
            Ok(v) => Ok(v),
            Err(e) => {
                self.record(
                    Draft::new("dataset.version.publish")
                        .dataset(reference)
                        .failed(e.to_string()),
                )
                .await?;
                Err(e.into())
            }
        }
    }
}
