//! The hub: one directory holding the configuration (`shh.toml`), the keystore and (embedded
//! default) the SQLite catalog, plus a primary store holding only ciphertext.
//!
//! [`Hub::init`] creates one; [`Hub::open`] unlocks one with its passphrase. The CLI and, later,
//! the server call these and the operations in [`ops`]; they hold no logic of their own.

#![forbid(unsafe_code)]

pub mod audit;
pub mod config;
pub mod demo;
mod guard;
pub mod ingest;
mod init;
mod lock;
pub mod migrate;
pub mod ops;
mod switch;

pub use config::{CONFIG_FILE, CONFIG_FORMAT, HubConfig, KEYSTORE_FILE, MigrationState};
pub use shh_audit as audit_log;
pub use shh_audit::{Actor, Draft};
pub use shh_catalog::{Catalog, CatalogError, DatasetRecord, VersionRecord};
pub use shh_dataset as dataset;
pub use shh_ingest;
pub use shh_keys::{KdfParams, KeyInfo, KeyPurpose, Keystore, KeystoreError};
pub use shh_migrate;
pub use shh_pseudo;
pub use shh_store::{ResidencyPolicy, ResidencyRule, StoreUrl};

use object_store::ObjectStore;
use shh_crypt::EncryptedStore;
use shh_dataset::HubStore;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Errors of hub operations.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// No hub in the directory.
    #[error("no hub at {0} (no {CONFIG_FILE}); create one with `shh init`")]
    NotAHub(PathBuf),
    /// A hub already exists.
    #[error("a hub already exists at {0}")]
    AlreadyExists(PathBuf),
    /// The configuration is invalid.
    #[error("invalid configuration {path}: {reason}")]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Keystore (including a wrong passphrase).
    #[error(transparent)]
    Keys(#[from] KeystoreError),
    /// Store URL or residency.
    #[error(transparent)]
    Store(#[from] shh_store::StoreError),
    /// Catalog.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// Datasets.
    #[error(transparent)]
    Dataset(#[from] shh_dataset::DatasetError),
    /// Object store.
    #[error("{0}")]
    Object(#[from] object_store::Error),
    /// Another process holds the hub in a way this operation cannot share.
    #[error("the hub is busy: {0}")]
    Busy(String),
    /// The hub is read-only (a cut-over is in progress).
    #[error("the hub is read-only during a migration cut-over; try again when it is finished")]
    ReadOnly,
    /// A migration step failed or was refused.
    #[error(transparent)]
    Migrate(#[from] shh_migrate::MigrateError),
    /// Audit log: an action whose event cannot be recorded does not report success.
    #[error(transparent)]
    Audit(#[from] shh_audit::AuditError),
    /// Ingest (bad input names the file, line and field).
    #[error(transparent)]
    Ingest(#[from] shh_ingest::IngestError),
    /// Audit signing key.
    #[error(transparent)]
    AuditKey(#[from] shh_audit::KeyError),
    /// Local I/O.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A name or path that would be stored or shown holds a direct identifier.
    #[error(
        "{what} holds {}: refused, because the hub would store or show it in clear; rename it",
        found.describe()
    )]
    Identifier {
        /// Which name (never the name itself).
        what: String,
        /// What the guard found.
        found: shh_pseudo::guard::Found,
    },
}

/// Result alias.
pub type Result<T, E = HubError> = std::result::Result<T, E>;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> HubError + '_ {
    move |source| HubError::Io {
        path: path.to_owned(),
        source,
    }
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

/// An opened, unlocked hub.
#[derive(Debug)]
pub struct Hub {
    dir: PathBuf,
    config: HubConfig,
    keystore: Keystore,
    raw: Arc<dyn ObjectStore>,
    store: Arc<HubStore>,
    catalog: Arc<dyn Catalog>,
    audit: tokio::sync::OnceCell<shh_audit::AuditLog>,
    actor: Actor,
    lock: lock::HubLock,
}

impl Hub {
    /// Reads `shh.toml` without unlocking anything.
    pub fn read_config(dir: &Path) -> Result<HubConfig> {
        let path = dir.join(CONFIG_FILE);
        let text = match shh_keys::read_bounded(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(HubError::NotAHub(dir.to_owned()));
            }
            Err(e) => return Err(io(&path)(e)),
        };
        let config: HubConfig = toml::from_str(&text).map_err(|e| HubError::Config {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        if config.format != CONFIG_FORMAT {
            return Err(HubError::Config {
                path,
                reason: format!("unknown format {:?}", config.format),
            });
        }
        Ok(config)
    }

    /// Opens and unlocks the hub in `dir`.
    pub async fn open(dir: &Path, passphrase: &str) -> Result<Hub> {
        // Not a hub: no lock file is created. Read again under the lock, which a store switch
        // holds while it rewrites the configuration.
        Self::read_config(dir)?;
        let lock = lock::HubLock::shared(dir)?;
        let config = Self::read_config(dir)?;
        let keystore = Self::open_keystore(dir, passphrase)?;
        let mut hub = Self::from_parts(dir, config, keystore, lock)?;
        if hub.config.switch.is_some() {
            hub.recover_switch().await?;
        }
        Ok(hub)
    }

    /// Unlocks the keystore. Hubs created before the audit log or ingest get their
    /// audit-signing or pseudonym key on first unlock; two processes doing so at once do not
    /// both add one (the keystore's rewrite lock refuses the second, which reads the first's).
    fn open_keystore(dir: &Path, passphrase: &str) -> Result<Keystore> {
        let path = dir.join(KEYSTORE_FILE);
        let mut tries = 0;
        'open: loop {
            let mut keystore = Keystore::open(&path, passphrase)?;
            for purpose in [KeyPurpose::AuditSigning, KeyPurpose::Pseudonym] {
                if keystore.current(purpose).is_some() {
                    continue;
                }
                match keystore.add_key(purpose) {
                    Ok(_) => {}
                    Err(KeystoreError::Changed(_)) if tries < 5 => {
                        tries += 1;
                        continue 'open;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            return Ok(keystore);
        }
    }

    /// A hub over an unlocked keystore and a (possibly changed) configuration.
    pub(crate) fn from_parts(
        dir: &Path,
        config: HubConfig,
        keystore: Keystore,
        lock: lock::HubLock,
    ) -> Result<Hub> {
        let url = StoreUrl::parse(&config.store).map_err(shh_store::StoreError::from)?;
        let mut raw = shh_store::open_store(&url, &config.residency)?;
        if let Some(m) = &config.mirror {
            let murl = StoreUrl::parse(m).map_err(shh_store::StoreError::from)?;
            let mirror = shh_store::open_store(&murl, &config.residency)?;
            raw = Arc::new(shh_store::MirrorStore::new(raw, mirror));
        }
        let store = Arc::new(EncryptedStore::new(raw.clone(), keystore.storage_keys()));
        let catalog = shh_catalog::open_catalog(&config.catalog, dir)?;
        Ok(Hub {
            dir: dir.to_owned(),
            config,
            keystore,
            raw,
            store,
            catalog,
            audit: tokio::sync::OnceCell::new(),
            actor: audit::actor_from_env(),
            lock,
        })
    }

    /// Fails with [`HubError::ReadOnly`] while writes are refused.
    pub fn ensure_writable(&self) -> Result<()> {
        if self.config.read_only {
            Err(HubError::ReadOnly)
        } else {
            Ok(())
        }
    }

    /// Writes `shh.toml` atomically.
    pub(crate) fn save_config(dir: &Path, config: &HubConfig) -> Result<()> {
        let path = dir.join(CONFIG_FILE);
        let text = toml::to_string_pretty(config).map_err(|e| HubError::Config {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        shh_keys::write_atomic(&path, text.as_bytes(), false).map_err(io(&path))
    }

    /// The hub directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    /// The configuration.
    pub fn config(&self) -> &HubConfig {
        &self.config
    }
    /// The encrypted store.
    pub fn store(&self) -> &Arc<HubStore> {
        &self.store
    }
    /// The backend under the encryption (ciphertext only).
    pub fn raw_store(&self) -> &Arc<dyn ObjectStore> {
        &self.raw
    }
    /// The catalog.
    pub fn catalog(&self) -> &Arc<dyn Catalog> {
        &self.catalog
    }
    /// The keystore.
    pub fn keystore(&self) -> &Keystore {
        &self.keystore
    }

    /// Changes the passphrase: re-wraps the master keys only; no stored object changes.
    /// The change is recorded in the audit log (a failed change too).
    pub async fn change_passphrase(&mut self, new_passphrase: &str) -> Result<()> {
        let event = Draft::new("keys.passwd").object(self.keystore.path().display().to_string());
        match self.keystore.change_passphrase(new_passphrase, None) {
            Ok(()) => {
                self.record(event.detail("master_keys", self.keystore.keys().len() as u64))
                    .await?;
                Ok(())
            }
            Err(e) => {
                self.record(event.failed(e.to_string())).await?;
                Err(e.into())
            }
        }
    }

    /// Publishes a dataset version written with [`shh_dataset::VersionWriter`], recording the
    /// event after its manifest is sealed and before the catalog shows it: no version is ever
    /// visible without its audit event.
    pub async fn commit_version(
        &self,
        writer: shh_dataset::VersionWriter,
    ) -> Result<shh_dataset::CommittedVersion> {
        self.commit_version_as(writer, Draft::new("dataset.version.write"))
            .await
    }

    /// Like [`Self::commit_version`], recording `event` (its action and details) with the
    /// version's reference, id, rows, files and bytes added.
    pub async fn commit_version_as(
        &self,
        writer: shh_dataset::VersionWriter,
        event: Draft,
    ) -> Result<shh_dataset::CommittedVersion> {
        if self.config.read_only {
            writer.abort().await;
            return Err(HubError::ReadOnly);
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
