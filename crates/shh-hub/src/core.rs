//! The state behind a [`Hub`](crate::Hub) and the per-call view the operations run on.
//!
//! [`Core`] is one configuration of an unlocked hub: its `shh.toml`, keystore, stores and
//! catalog. The hub keeps it behind an async read-write lock: every operation holds a read
//! guard for as long as it runs, so many sessions work at once; a store switch (cut-over,
//! rollback, mirror, finalize) and a passphrase change take the write guard, which waits for
//! the operations in flight to drain and makes new ones wait, then reconfigure the core in
//! place. A long-lived process thus keeps one `Hub` across a cut-over.
//!
//! An operation runs on a [`Call`]: the core, the caller's [`Session`] (whose actor every event
//! carries) and the caller's [`Task`] (cancellation, progress). Switches run on a [`CallMut`].

use crate::lock::HubLock;
use crate::{
    CONFIG_FILE, CONFIG_FORMAT, Draft, HubConfig, HubError, KEYSTORE_FILE, Result, Session, io,
};
use object_store::ObjectStore;
use shh_catalog::Catalog;
use shh_crypt::EncryptedStore;
use shh_dataset::HubStore;
use shh_keys::{KeyPurpose, Keystore, KeystoreError};
use shh_store::StoreUrl;
use shh_task::Task;
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One configuration of an opened, unlocked hub.
#[derive(Debug)]
pub(crate) struct Core {
    pub(crate) dir: PathBuf,
    pub(crate) config: HubConfig,
    pub(crate) keystore: Keystore,
    pub(crate) raw: Arc<dyn ObjectStore>,
    pub(crate) store: Arc<HubStore>,
    pub(crate) catalog: Arc<dyn Catalog>,
    pub(crate) audit: tokio::sync::OnceCell<shh_audit::AuditLog>,
    pub(crate) lock: HubLock,
}

/// Reads `shh.toml` without unlocking anything.
pub(crate) fn read_config(dir: &Path) -> Result<HubConfig> {
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
    // Settings that would switch disclosure control off do not open.
    config
        .disclosure
        .check()
        .map_err(|reason| HubError::Config {
            path: path.clone(),
            reason,
        })?;
    Ok(config)
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

/// Unlocks the keystore. Hubs created before the audit log or ingest get their audit-signing
/// or pseudonym key on first unlock; two processes doing so at once do not both add one (the
/// keystore's rewrite lock refuses the second, which reads the first's).
pub(crate) fn open_keystore(dir: &Path, passphrase: &str) -> Result<Keystore> {
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

/// What a configuration names: the raw store, the encrypted store over it, the catalog.
type Backends = (Arc<dyn ObjectStore>, Arc<HubStore>, Arc<dyn Catalog>);

/// The stores and catalog a configuration names.
fn backends(dir: &Path, config: &HubConfig, keystore: &Keystore) -> Result<Backends> {
    let url = StoreUrl::parse(&config.store).map_err(shh_store::StoreError::from)?;
    let mut raw = shh_store::open_store(&url, &config.residency)?;
    if let Some(m) = &config.mirror {
        let murl = StoreUrl::parse(m).map_err(shh_store::StoreError::from)?;
        let mirror = shh_store::open_store(&murl, &config.residency)?;
        raw = Arc::new(shh_store::MirrorStore::new(raw, mirror));
    }
    let store = Arc::new(EncryptedStore::new(raw.clone(), keystore.storage_keys()));
    let catalog = shh_catalog::open_catalog(&config.catalog, dir)?;
    Ok((raw, store, catalog))
}

impl Core {
    /// A core over an unlocked keystore and a configuration.
    pub(crate) fn from_parts(
        dir: &Path,
        config: HubConfig,
        keystore: Keystore,
        lock: HubLock,
    ) -> Result<Core> {
        let (raw, store, catalog) = backends(dir, &config, &keystore)?;
        Ok(Core {
            dir: dir.to_owned(),
            config,
            keystore,
            raw,
            store,
            catalog,
            audit: tokio::sync::OnceCell::new(),
            lock,
        })
    }

    /// Runs on `config` from now on (a switched store, a mirror): its stores, catalog and audit
    /// log are opened afresh. Nothing changes if they cannot be opened.
    pub(crate) fn reconfigure(&mut self, config: HubConfig) -> Result<()> {
        let (raw, store, catalog) = backends(&self.dir, &config, &self.keystore)?;
        self.config = config;
        self.raw = raw;
        self.store = store;
        self.catalog = catalog;
        self.audit = tokio::sync::OnceCell::new();
        Ok(())
    }

    /// Fails with [`HubError::ReadOnly`] while writes are refused.
    pub(crate) fn ensure_writable(&self) -> Result<()> {
        if self.config.read_only {
            Err(HubError::ReadOnly)
        } else {
            Ok(())
        }
    }
}

/// One operation of one session on the hub's current core.
pub(crate) struct Call<'a> {
    core: &'a Core,
    pub(crate) session: &'a Session,
    pub(crate) task: &'a Task,
}

impl<'a> Call<'a> {
    pub(crate) fn new(core: &'a Core, session: &'a Session, task: &'a Task) -> Self {
        Self {
            core,
            session,
            task,
        }
    }
}

impl Deref for Call<'_> {
    type Target = Core;
    fn deref(&self) -> &Core {
        self.core
    }
}

/// An operation that changes the core: it holds the hub's write guard, so no other call runs.
pub(crate) struct CallMut<'a> {
    core: &'a mut Core,
    pub(crate) session: &'a Session,
    pub(crate) task: &'a Task,
}

impl<'a> CallMut<'a> {
    pub(crate) fn new(core: &'a mut Core, session: &'a Session, task: &'a Task) -> Self {
        Self {
            core,
            session,
            task,
        }
    }

    /// The same call, read-only (to run the steps a switch shares with other operations).
    pub(crate) fn call(&self) -> Call<'_> {
        Call::new(self.core, self.session, self.task)
    }

    /// See [`Call::record`].
    pub(crate) async fn record(&self, event: Draft) -> Result<u64> {
        self.call().record(event).await
    }
}

impl Deref for CallMut<'_> {
    type Target = Core;
    fn deref(&self) -> &Core {
        self.core
    }
}

impl DerefMut for CallMut<'_> {
    fn deref_mut(&mut self) -> &mut Core {
        self.core
    }
}
