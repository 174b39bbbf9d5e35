//! Creating a hub, atomically where the file system allows it.
//!
//! Everything local (keystore, catalog, configuration, and the default `file://` store) is
//! built in a hidden staging directory beside the hub's, `.NAME.shh-init-XXXX`, the `hub.init`
//! event included; one `rename` then makes it the hub. A process killed before the rename
//! leaves only the staging directory, which is not a hub and which the next `shh init` of the
//! same directory takes up: with the same passphrase it completes it, with another it says
//! exactly what to remove. A remote store receives its first objects (the audit log) before
//! the rename, so `init` refuses a store that already holds objects unless they are those of
//! the staging directory it completes.
//!
//! Into an existing, non-empty directory a rename cannot land: the files are moved in one by
//! one, `shh.toml` last (its presence is what makes the directory a hub); an init interrupted
//! there leaves a half-made hub, which the next `init` names file by file.

use crate::core::{Call, Core, read_config};
use crate::session::LocalAuthenticator;
use crate::{
    CONFIG_FILE, CONFIG_FORMAT, Draft, Hub, HubConfig, HubError, InitOptions, KEYSTORE_FILE,
    LocalOperator, ResidencyPolicy, ResidencyRule, Result, StoreUrl, Task, io,
};
use futures::StreamExt;
use shh_keys::{KeyPurpose, Keystore};
use std::path::{Path, PathBuf};

/// What a hub directory holds besides `shh.toml`: present without it, a half-made hub.
const HUB_FILES: &[&str] = &[
    KEYSTORE_FILE,
    "catalog.db",
    "catalog.db-wal",
    "catalog.db-shm",
    "keystore.lock",
    "hub.lock",
    "switch.lock",
    "store",
];

const STAGING: &str = ".shh-init-";

/// The first operator's user name.
pub const ADMIN: &str = "admin";

impl Hub {
    /// Creates a hub in `dir`. Nothing is written before the passphrase, the key-derivation
    /// parameters, the names and the store's residency are checked; a failure part-way removes
    /// what this call created.
    /// `operator` is who creates it (the `hub.init` event's actor).
    pub async fn init(
        dir: &Path,
        passphrase: &str,
        opts: InitOptions,
        operator: &LocalOperator,
    ) -> Result<Hub> {
        let session = LocalAuthenticator::session(operator)?;
        if passphrase.is_empty() {
            return Err(shh_keys::KeystoreError::EmptyPassphrase.into());
        }
        opts.kdf
            .check()
            .map_err(|e| shh_keys::KeystoreError::Kdf(format!("Argon2id parameters: {e}")))?;
        crate::guard::check_path("the hub directory's path", dir)?;
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| !n.is_empty() && *n != "." && *n != "..")
            .ok_or_else(|| HubError::Config {
                path: dir.to_owned(),
                reason: "a hub directory needs a name of its own (not `.` or `/`)".into(),
            })?
            .to_owned();
        let parent = match dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        if dir.join(CONFIG_FILE).exists() {
            return Err(HubError::AlreadyExists(dir.to_owned()));
        }
        let left: Vec<&str> = HUB_FILES
            .iter()
            .copied()
            .filter(|f| dir.join(f).exists())
            .collect();
        if !left.is_empty() {
            return Err(HubError::Config {
                path: dir.to_owned(),
                reason: format!(
                    "a half-made hub is here ({} without {CONFIG_FILE}: an `shh init` was \
                     interrupted); remove {} and run `shh init` again",
                    left.join(", "),
                    left.iter()
                        .map(|f| dir.join(f).display().to_string())
                        .collect::<Vec<_>>()
                        .join(" ")
                ),
            });
        }
        let created_from = first_missing(&parent);
        std::fs::create_dir_all(&parent).map_err(io(&parent))?;
        let result = async {
            let parent = parent.canonicalize().map_err(io(&parent))?;
            let target = parent.join(&name);
            if let Some(staging) = resumable(&parent, &name, passphrase)? {
                return Self::finish_init(&staging, &target, passphrase, None, &session).await;
            }
            let config = Self::new_config(&target, opts.store, opts.allow, opts.proxy)?;
            let staging = parent.join(format!(
                ".{name}{STAGING}{}",
                &uuid::Uuid::new_v4().simple().to_string()[..8]
            ));
            std::fs::create_dir(&staging).map_err(io(&staging))?;
            let built = Self::build_staging(&staging, &target, passphrase, &config, opts.kdf).await;
            match built {
                Ok(()) => {
                    Self::finish_init(&staging, &target, passphrase, Some(opts.kdf), &session).await
                }
                Err(e) => {
                    let _ = std::fs::remove_dir_all(&staging);
                    Err(e)
                }
            }
        }
        .await;
        if result.is_err()
            && let Some(p) = created_from
        {
            let _ = std::fs::remove_dir_all(p);
        }
        result
    }

    /// The configuration of a new hub at `target` (the default store under it).
    fn new_config(
        target: &Path,
        store: Option<StoreUrl>,
        allow: Vec<ResidencyRule>,
        proxy: Option<String>,
    ) -> Result<HubConfig> {
        let store_url = match store {
            Some(u) => u,
            None => StoreUrl::parse(&format!("file://{}", target.join("store").display()))
                .map_err(shh_store::StoreError::from)?,
        };
        crate::guard::check("the store URL", &store_url.to_string())?;
        let mut residency = ResidencyPolicy::local_only();
        if let Some(p) = proxy {
            residency.proxy =
                Some(shh_store::check_proxy(&p).map_err(shh_store::StoreError::from)?);
        }
        for r in allow {
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
        Ok(HubConfig {
            format: CONFIG_FORMAT.into(),
            hub_id: uuid::Uuid::new_v4().to_string(),
            store: store_url.to_string(),
            catalog: "sqlite://catalog.db".into(),
            residency,
            read_only: false,
            mirror: None,
            migration: None,
            switch: None,
            disclosure: Default::default(),
        })
    }

    /// Keystore, catalog and configuration in the staging directory.
    async fn build_staging(
        staging: &Path,
        target: &Path,
        passphrase: &str,
        config: &HubConfig,
        kdf: shh_keys::KdfParams,
    ) -> Result<()> {
        let mut ks = Keystore::create(&staging.join(KEYSTORE_FILE), passphrase, kdf)?;
        ks.add_key(KeyPurpose::AuditSigning)?;
        ks.add_key(KeyPurpose::Pseudonym)?;
        drop(ks);
        let catalog = shh_catalog::open_catalog(&config.catalog, staging)?;
        catalog.set_meta("hub.id", &config.hub_id).await?;
        catalog
            .set_meta("hub.created_at", &chrono::Utc::now().to_rfc3339())
            .await?;
        drop(catalog);
        // A store of its own: an interrupted init's objects, or another hub's, are not mixed
        // in (the default store under the new directory is empty by construction).
        let url = staged_store(staging, target, config)?;
        let raw = shh_store::open_store(&url, &config.residency)?;
        if let Some(first) = raw.list(None).next().await {
            let first = first.map_err(HubError::Object)?;
            return Err(HubError::Config {
                path: target.to_owned(),
                reason: format!(
                    "the store {} already holds objects ({} first): an interrupted `shh init` \
                     or another hub left them; empty it (remove everything under its prefix) \
                     or choose another prefix",
                    config.store,
                    shh_pseudo::guard::redact(first.location.as_ref())
                ),
            });
        }
        let text = toml::to_string_pretty(config).map_err(|e| HubError::Config {
            path: staging.join(CONFIG_FILE),
            reason: e.to_string(),
        })?;
        shh_keys::write_atomic(&staging.join(CONFIG_FILE), text.as_bytes(), true)
            .map_err(io(&staging.join(CONFIG_FILE)))?;
        Ok(())
    }

    /// Records `hub.init` (if the staging hub has no event yet), moves the staging directory
    /// into place and opens the hub there.
    async fn finish_init(
        staging: &Path,
        target: &Path,
        passphrase: &str,
        kdf: Option<shh_keys::KdfParams>,
        session: &crate::Session,
    ) -> Result<Hub> {
        {
            let mut config = read_config(staging)?;
            let final_store = config.store.clone();
            config.store = staged_store(staging, target, &config)?.to_string();
            let keystore = Keystore::open(&staging.join(KEYSTORE_FILE), passphrase)?;
            let kdf = kdf.unwrap_or_else(|| keystore.kdf_params());
            let lock = crate::lock::HubLock::shared(staging)?;
            let core = Core::from_parts(staging, config, keystore, lock)?;
            let task = Task::silent();
            let hub = Call::new(&core, session, &task);
            if hub.audit_log().await?.latest_head().await?.is_none() {
                let mut event = Draft::new("hub.init");
                if let Some(p) = &hub.config.residency.proxy {
                    event = event.detail("proxy", p.clone());
                }
                hub.record(
                    event
                        .object(final_store)
                        .detail("catalog", hub.config.catalog.clone())
                        .detail("kdf_memory_kib", u64::from(kdf.m_cost_kib))
                        .detail("kdf_passes", u64::from(kdf.t_cost))
                        .detail("audit_key", hub.audit_public_key()?.fingerprint())
                        .detail("first_operator", ADMIN),
                )
                .await?;
                // The first operator, who enrolls a credential of their own (`shh user
                // enroll admin`): the hub passphrase is not it. Recorded by `hub.init`.
                hub.catalog
                    .add_principal(&shh_access::Principal {
                        name: ADMIN.into(),
                        roles: [shh_access::Role::Operator].into(),
                        credential: None,
                        created_by: session.principal().to_owned(),
                        created_at: chrono::Utc::now(),
                    })
                    .await?;
            }
        }
        move_into_place(staging, target)?;
        Hub::open(target, passphrase).await
    }
}

/// The store the staging hub writes to: the default store inside the staging directory
/// (it moves with it), any other as configured.
fn staged_store(staging: &Path, target: &Path, config: &HubConfig) -> Result<StoreUrl> {
    let default = format!("file://{}", target.join("store").display());
    let url = if config.store
        == StoreUrl::parse(&default)
            .map(|u| u.to_string())
            .unwrap_or_default()
    {
        format!("file://{}", staging.join("store").display())
    } else {
        config.store.clone()
    };
    Ok(StoreUrl::parse(&url).map_err(shh_store::StoreError::from)?)
}

/// A staging directory an interrupted `init` of `name` left in `parent`, if its keystore
/// opens with `passphrase`. One that never got its configuration never wrote anywhere else
/// (remote objects come after it) and is removed; a complete one that does not open with
/// this passphrase is named for removal, with the store it may have written to.
fn resumable(parent: &Path, name: &str, passphrase: &str) -> Result<Option<PathBuf>> {
    let prefix = format!(".{name}{STAGING}");
    let entries = std::fs::read_dir(parent).map_err(io(parent))?;
    let mut found = None;
    for e in entries.flatten() {
        let p = e.path();
        if !e.file_name().to_string_lossy().starts_with(&prefix) {
            continue;
        }
        if !p.join(CONFIG_FILE).exists() {
            std::fs::remove_dir_all(&p).map_err(io(&p))?;
            continue;
        }
        if found.is_none() && Keystore::open(&p.join(KEYSTORE_FILE), passphrase).is_ok() {
            found = Some(p);
            continue;
        }
        let store = read_config(&p).ok().map(|c| c.store);
        return Err(HubError::Config {
            path: p.clone(),
            reason: format!(
                "an interrupted `shh init` of this hub left {}, which does not open with this \
                 passphrase: run `shh init` again with the passphrase it was given, or remove \
                 it{} and run `shh init` again",
                p.display(),
                match store {
                    Some(s) if !s.starts_with("file://") => {
                        format!(" and every object it wrote to {s}")
                    }
                    _ => String::new(),
                }
            ),
        });
    }
    Ok(found)
}

/// The first ancestor of `p` (or `p` itself) that does not exist: what `create_dir_all`
/// would create, removed again on failure.
fn first_missing(p: &Path) -> Option<PathBuf> {
    let mut missing = None;
    let mut cur = Some(p);
    while let Some(c) = cur {
        if c.as_os_str().is_empty() || c.exists() {
            break;
        }
        missing = Some(c.to_owned());
        cur = c.parent();
    }
    missing
}

/// Renames `staging` to `target` (absent or empty); into a non-empty directory, moves the
/// files one by one, `shh.toml` last.
fn move_into_place(staging: &Path, target: &Path) -> Result<()> {
    match std::fs::rename(staging, target) {
        Ok(()) => {
            sync_dir(target.parent());
            return Ok(());
        }
        // Into an existing, non-empty directory: file by file below.
        Err(_) if target.is_dir() => {}
        Err(e) => return Err(io(target)(e)),
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(staging)
        .map_err(io(staging))?
        .flatten()
        .map(|e| e.path())
        .collect();
    // The configuration last: its presence is what makes the directory a hub.
    entries.sort_by_key(|p| p.file_name().is_some_and(|n| n == CONFIG_FILE));
    for from in entries {
        let Some(n) = from.file_name() else { continue };
        let to = target.join(n);
        if to.exists() {
            return Err(HubError::AlreadyExists(to));
        }
        std::fs::rename(&from, &to).map_err(io(&to))?;
    }
    sync_dir(Some(target));
    std::fs::remove_dir(staging).map_err(io(staging))?;
    Ok(())
}

/// Makes a rename in `d` durable, where the file system lets us (best effort).
fn sync_dir(d: Option<&Path>) {
    if let Some(d) = d
        && let Ok(f) = std::fs::File::open(d)
    {
        let _ = f.sync_all();
    }
}
