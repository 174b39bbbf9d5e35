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
mod lock;
pub mod migrate;
pub mod ops;

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
}

impl Default for InitOptions {
    fn default() -> Self {
        Self {
            store: None,
            allow: Vec::new(),
            kdf: KdfParams::DEFAULT,
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
    /// Creates a hub in `dir`. The store URL is checked against the residency policy before
    /// anything is written; a failure part-way removes what this call created.
    pub async fn init(dir: &Path, passphrase: &str, opts: InitOptions) -> Result<Hub> {
        let cfg_path = dir.join(CONFIG_FILE);
        if cfg_path.exists() || dir.join(KEYSTORE_FILE).exists() {
            return Err(HubError::AlreadyExists(dir.to_owned()));
        }
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let dir = dir.canonicalize().map_err(io(dir))?;
        let store_url = match opts.store {
            Some(u) => u,
            None => StoreUrl::parse(&format!("file://{}", dir.join("store").display()))
                .map_err(shh_store::StoreError::from)?,
        };
        let mut residency = ResidencyPolicy::local_only();
        for r in opts.allow {
            if !residency.allow.contains(&r) {
                residency.allow.push(r);
            }
        }
        // The operator names the primary store; it is allowed by that act, and checked anyway.
        let primary = ResidencyRule::for_url(&store_url);
        if !residency.allow.contains(&primary) && residency.check(&store_url).is_err() {
            residency.allow.push(primary);
        }
        residency
            .check(&store_url)
            .map_err(shh_store::StoreError::from)?;
        let config = HubConfig {
            format: CONFIG_FORMAT.into(),
            hub_id: uuid::Uuid::new_v4().to_string(),
            store: store_url.to_string(),
            catalog: "sqlite://catalog.db".into(),
            residency,
            read_only: false,
            mirror: None,
            migration: None,
        };
        let kdf_params = opts.kdf;
        let created = Self::create_files(&dir, passphrase, &config, opts.kdf).await;
        if created.is_err() {
            for f in [
                KEYSTORE_FILE,
                CONFIG_FILE,
                "catalog.db",
                "catalog.db-wal",
                "catalog.db-shm",
            ] {
                let _ = std::fs::remove_file(dir.join(f));
            }
        }
        created?;
        let hub = Self::open(&dir, passphrase).await?;
        hub.record(
            Draft::new("hub.init")
                .object(hub.config.store.clone())
                .detail("catalog", hub.config.catalog.clone())
                .detail("kdf_memory_kib", u64::from(kdf_params.m_cost_kib))
                .detail("kdf_passes", u64::from(kdf_params.t_cost))
                .detail("audit_key", hub.audit_public_key()?.fingerprint()),
        )
        .await?;
        Ok(hub)
    }

    async fn create_files(
        dir: &Path,
        passphrase: &str,
        config: &HubConfig,
        kdf: KdfParams,
    ) -> Result<()> {
        let mut ks = Keystore::create(&dir.join(KEYSTORE_FILE), passphrase, kdf)?;
        ks.add_key(KeyPurpose::AuditSigning)?;
        ks.add_key(KeyPurpose::Pseudonym)?;
        let catalog = shh_catalog::open_catalog(&config.catalog, dir)?;
        catalog.set_meta("hub.id", &config.hub_id).await?;
        catalog
            .set_meta("hub.created_at", &chrono::Utc::now().to_rfc3339())
            .await?;
        let text = toml::to_string_pretty(config).map_err(|e| HubError::Config {
            path: dir.join(CONFIG_FILE),
            reason: e.to_string(),
        })?;
        // The config is written last: its presence is what makes the directory a hub.
        shh_keys::write_atomic(&dir.join(CONFIG_FILE), text.as_bytes(), true)
            .map_err(io(&dir.join(CONFIG_FILE)))?;
        Ok(())
    }

    /// Reads `shh.toml` without unlocking anything.
    pub fn read_config(dir: &Path) -> Result<HubConfig> {
        let path = dir.join(CONFIG_FILE);
        let text = match std::fs::read_to_string(&path) {
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
        let mut keystore = Keystore::open(&dir.join(KEYSTORE_FILE), passphrase)?;
        if keystore.current(KeyPurpose::AuditSigning).is_none() {
            // Hubs created before the audit log get their signing key on first unlock.
            keystore.add_key(KeyPurpose::AuditSigning)?;
        }
        if keystore.current(KeyPurpose::Pseudonym).is_none() {
            // Likewise the pseudonym key, for hubs created before ingest.
            keystore.add_key(KeyPurpose::Pseudonym)?;
        }
        Self::from_parts(dir, config, keystore, lock)
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
