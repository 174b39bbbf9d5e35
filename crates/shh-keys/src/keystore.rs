//! The passphrase keystore: a JSON file beside the hub configuration holding the hub's master
//! keys, each wrapped by a key-encryption key derived from the passphrase with Argon2id.

use crate::aead::{AeadKey, open_blob, random_bytes, seal_blob};
use crate::{DataKey, KEY_LEN, KeyId, KeyWrapper, NONCE_LEN, TAG_LEN, WRAPPED_KEY_LEN, WrapError};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

const FORMAT: &str = "shh.keystore/1";
const BLOB_LEN: usize = NONCE_LEN + KEY_LEN + TAG_LEN;

/// Errors of the keystore.
#[derive(Debug, thiserror::Error)]
pub enum KeystoreError {
    /// The passphrase does not open this keystore. Nothing was changed.
    #[error("wrong passphrase for keystore {0}")]
    WrongPassphrase(PathBuf),
    /// The keystore file is not one this version can read, or was altered.
    #[error("keystore {path} is corrupt: {reason}")]
    Corrupt {
        /// The keystore file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A keystore already exists where a new one was to be created.
    #[error("keystore {0} already exists")]
    AlreadyExists(PathBuf),
    /// An empty passphrase was given.
    #[error("the passphrase must not be empty")]
    EmptyPassphrase,
    /// Another process rewrote the keystore since this one read it (a concurrent
    /// `keys passwd`, or a key added): nothing was written.
    #[error(
        "keystore {0} was changed by another process since this one opened it (another `shh keys passwd`?); nothing was changed: open the hub again and retry"
    )]
    Changed(PathBuf),
    /// Another process holds the keystore's lock too long.
    #[error("keystore {0} is locked by another process rewriting it; retry")]
    Locked(PathBuf),
    /// Argon2 refused the parameters.
    #[error("invalid key-derivation parameters: {0}")]
    Kdf(String),
    /// Reading or writing the keystore file failed.
    #[error("keystore {path}: {source}")]
    Io {
        /// The keystore file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Argon2id parameters; recorded in the keystore so that opening uses the same ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_cost_kib: u32,
    /// Iterations.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl KdfParams {
    /// The default: 64 MiB, 3 passes, 1 lane (OWASP's second recommended profile).
    pub const DEFAULT: Self = Self {
        m_cost_kib: 64 * 1024,
        t_cost: 3,
        p_cost: 1,
    };
    /// Deliberately weak parameters for tests and throw-away demo hubs only.
    pub const INSECURE_FAST: Self = Self {
        m_cost_kib: 256,
        t_cost: 1,
        p_cost: 1,
    };
    /// The most memory a key derivation may ask for: 1 GiB.
    pub const MAX_M_COST_KIB: u32 = 1 << 20;
    /// The most passes.
    pub const MAX_T_COST: u32 = 16;
    /// The most lanes.
    pub const MAX_P_COST: u32 = 16;
    /// The most memory × passes (KiB): 4 GiB-passes, some ten seconds on one core.
    pub const MAX_WORK: u64 = 4 << 20;

    /// Checks the parameters are within the bounds above: a keystore read from disk is not
    /// trusted to choose how much memory and time opening it takes (4 TiB, or passes without
    /// end, would abort or hang the process).
    pub fn check(self) -> Result<(), String> {
        let Self {
            m_cost_kib: m,
            t_cost: t,
            p_cost: p,
        } = self;
        if !(1..=Self::MAX_P_COST).contains(&p) {
            return Err(format!("{p} lanes (1 to {})", Self::MAX_P_COST));
        }
        if m < 8 * p || m > Self::MAX_M_COST_KIB {
            return Err(format!(
                "{m} KiB of memory ({} to {} KiB)",
                8 * p,
                Self::MAX_M_COST_KIB
            ));
        }
        if !(1..=Self::MAX_T_COST).contains(&t) {
            return Err(format!("{t} passes (1 to {})", Self::MAX_T_COST));
        }
        if u64::from(m) * u64::from(t) > Self::MAX_WORK {
            return Err(format!(
                "{m} KiB × {t} passes, more than {} KiB-passes",
                Self::MAX_WORK
            ));
        }
        Ok(())
    }
}

/// What a master key is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyPurpose {
    /// Wraps the per-object data keys of the encrypted store.
    Storage,
    /// Signs audit tree heads.
    AuditSigning,
    /// Keys pseudonyms (HMAC).
    Pseudonym,
}

impl KeyPurpose {
    fn label(self) -> &'static str {
        match self {
            KeyPurpose::Storage => "storage",
            KeyPurpose::AuditSigning => "audit-signing",
            KeyPurpose::Pseudonym => "pseudonym",
        }
    }
}

impl std::fmt::Display for KeyPurpose {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

/// Public description of a master key (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInfo {
    /// Identifier.
    pub id: String,
    /// Purpose.
    pub purpose: KeyPurpose,
    /// Version within its purpose, starting at 1; the highest is current.
    pub version: u32,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// A master key in memory; its secret is zeroed on drop.
pub struct MasterKey {
    /// Public description.
    pub info: KeyInfo,
    id: KeyId,
    secret: Zeroizing<[u8; KEY_LEN]>,
}

impl MasterKey {
    /// The secret bytes (for HMAC or signing keys derived by other crates).
    pub fn secret(&self) -> &[u8; KEY_LEN] {
        &self.secret
    }
    /// The identifier.
    pub fn id(&self) -> KeyId {
        self.id
    }
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKey")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct KdfRecord {
    pub(crate) algorithm: String,
    pub(crate) version: u32,
    #[serde(flatten)]
    pub(crate) params: KdfParams,
    pub(crate) salt: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct KeyRecord {
    #[serde(flatten)]
    info: KeyInfo,
    wrapped: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct KeystoreFile {
    format: String,
    kdf: KdfRecord,
    /// A constant sealed under the key-encryption key: tells a wrong passphrase from a corrupt file.
    check: String,
    keys: Vec<KeyRecord>,
}

/// An opened keystore.
pub struct Keystore {
    path: PathBuf,
    /// BLAKE3 of the file as this process last read or wrote it: a rewrite that finds the
    /// file changed since refuses to overwrite what another process wrote.
    seen: Mutex<[u8; 32]>,
    kdf: KdfRecord,
    kek: AeadKey,
    keys: Vec<MasterKey>,
}

impl std::fmt::Debug for Keystore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keystore")
            .field("path", &self.path)
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

const CHECK_AAD: &[u8] = b"shh/keystore/v1/check";

fn key_aad(info: &KeyInfo) -> Vec<u8> {
    format!(
        "shh/keystore/v1/key/{}/{}/{}",
        info.id, info.purpose, info.version
    )
    .into_bytes()
}

pub(crate) fn derive_kek(
    passphrase: &str,
    params: KdfParams,
    salt: &[u8],
) -> Result<Zeroizing<[u8; KEY_LEN]>, KeystoreError> {
    if passphrase.is_empty() {
        return Err(KeystoreError::EmptyPassphrase);
    }
    params
        .check()
        .map_err(|e| KeystoreError::Kdf(format!("Argon2id parameters out of bounds: {e}")))?;
    let p = argon2::Params::new(
        params.m_cost_kib,
        params.t_cost,
        params.p_cost,
        Some(KEY_LEN),
    )
    .map_err(|e| KeystoreError::Kdf(e.to_string()))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, p);
    let mut out = Zeroizing::new([0u8; KEY_LEN]);
    argon
        .hash_password_into(passphrase.as_bytes(), salt, &mut out[..])
        .map_err(|e| KeystoreError::Kdf(e.to_string()))?;
    Ok(out)
}

fn salt_bytes(kdf: &KdfRecord, path: &Path) -> Result<Vec<u8>, KeystoreError> {
    match hex::decode(&kdf.salt) {
        Ok(s) if s.len() >= 16 => Ok(s),
        _ => Err(KeystoreError::Corrupt {
            path: path.to_owned(),
            reason: "the salt must be at least 16 bytes of hex".into(),
        }),
    }
}

pub(crate) fn new_kdf_record(params: KdfParams) -> KdfRecord {
    KdfRecord {
        algorithm: "argon2id".into(),
        version: 0x13,
        params,
        salt: hex::encode(random_bytes::<16>()),
    }
}

impl Keystore {
    /// Creates a keystore at `path` (which must not exist) holding one storage master key.
    pub fn create(path: &Path, passphrase: &str, params: KdfParams) -> Result<Self, KeystoreError> {
        if path.exists() {
            return Err(KeystoreError::AlreadyExists(path.to_owned()));
        }
        let kdf = new_kdf_record(params);
        let kek = AeadKey::new(&*derive_kek(passphrase, params, &salt_bytes(&kdf, path)?)?);
        let mut ks = Keystore {
            path: path.to_owned(),
            seen: Mutex::new([0; 32]),
            kdf,
            kek,
            keys: Vec::new(),
        };
        ks.push_new_key(KeyPurpose::Storage);
        ks.save(true)?;
        Ok(ks)
    }

    /// Opens the keystore at `path` with `passphrase`.
    pub fn open(path: &Path, passphrase: &str) -> Result<Self, KeystoreError> {
        let io = |source| KeystoreError::Io {
            path: path.to_owned(),
            source,
        };
        let corrupt = |reason: String| KeystoreError::Corrupt {
            path: path.to_owned(),
            reason,
        };
        let text = read_bounded(path).map_err(io)?;
        let file: KeystoreFile =
            serde_json::from_str(&text).map_err(|e| corrupt(format!("not a keystore: {e}")))?;
        if file.format != FORMAT {
            return Err(corrupt(format!("unsupported format {:?}", file.format)));
        }
        if file.kdf.algorithm != "argon2id" || file.kdf.version != 0x13 {
            return Err(corrupt(format!(
                "unsupported key derivation {} v{}",
                file.kdf.algorithm, file.kdf.version
            )));
        }
        // Checked before any memory is allocated or any pass run.
        file.kdf
            .params
            .check()
            .map_err(|e| corrupt(format!("its Argon2id parameters are out of bounds: {e}")))?;
        let kek = AeadKey::new(&*derive_kek(
            passphrase,
            file.kdf.params,
            &salt_bytes(&file.kdf, path)?,
        )?);
        let check = hex::decode(&file.check).map_err(|_| corrupt("check is not hex".into()))?;
        open_blob::<KEY_LEN>(&kek, &check, CHECK_AAD)
            .map_err(|_| KeystoreError::WrongPassphrase(path.to_owned()))?;
        let mut keys = Vec::with_capacity(file.keys.len());
        for rec in file.keys {
            let id = KeyId::from_hex(&rec.info.id)
                .ok_or_else(|| corrupt(format!("bad key id {:?}", rec.info.id)))?;
            let blob = hex::decode(&rec.wrapped)
                .map_err(|_| corrupt(format!("key {} is not hex", rec.info.id)))?;
            let secret = open_blob::<KEY_LEN>(&kek, &blob, &key_aad(&rec.info))
                .map_err(|_| corrupt(format!("key {} does not authenticate", rec.info.id)))?;
            keys.push(MasterKey {
                info: rec.info,
                id,
                secret,
            });
        }
        if !keys.iter().any(|k| k.info.purpose == KeyPurpose::Storage) {
            return Err(corrupt("no storage master key".into()));
        }
        Ok(Keystore {
            path: path.to_owned(),
            seen: Mutex::new(*blake3::hash(text.as_bytes()).as_bytes()),
            kdf: file.kdf,
            kek,
            keys,
        })
    }

    /// Re-wraps every master key under a key derived from `new_passphrase` and replaces the
    /// file atomically. Data objects are not touched: their data keys are wrapped by the master
    /// keys, which do not change.
    pub fn change_passphrase(
        &mut self,
        new_passphrase: &str,
        params: Option<KdfParams>,
    ) -> Result<(), KeystoreError> {
        let kdf = new_kdf_record(params.unwrap_or(self.kdf.params));
        let kek = AeadKey::new(&*derive_kek(
            new_passphrase,
            kdf.params,
            &salt_bytes(&kdf, &self.path)?,
        )?);
        let old = (
            std::mem::replace(&mut self.kdf, kdf),
            std::mem::replace(&mut self.kek, kek),
        );
        if let Err(e) = self.save(false) {
            (self.kdf, self.kek) = old;
            return Err(e);
        }
        Ok(())
    }

    /// Adds a new master key for `purpose` (its version is one above the current) and saves.
    pub fn add_key(&mut self, purpose: KeyPurpose) -> Result<KeyInfo, KeystoreError> {
        let info = self.push_new_key(purpose);
        if let Err(e) = self.save(false) {
            self.keys.pop();
            return Err(e);
        }
        Ok(info)
    }

    /// Public descriptions of every key.
    pub fn keys(&self) -> Vec<KeyInfo> {
        self.keys.iter().map(|k| k.info.clone()).collect()
    }

    /// The current (highest version) key for `purpose`.
    pub fn current(&self, purpose: KeyPurpose) -> Option<&MasterKey> {
        self.keys
            .iter()
            .filter(|k| k.info.purpose == purpose)
            .max_by_key(|k| k.info.version)
    }

    /// Every key of `purpose`, oldest first.
    pub fn all(&self, purpose: KeyPurpose) -> impl Iterator<Item = &MasterKey> {
        self.keys.iter().filter(move |k| k.info.purpose == purpose)
    }

    /// The Argon2id parameters in force.
    pub fn kdf_params(&self) -> KdfParams {
        self.kdf.params
    }

    /// The keystore file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The storage master keys as a [`KeyWrapper`] for the encrypted store.
    pub fn storage_keys(&self) -> Arc<StorageKeys> {
        let mut map = BTreeMap::new();
        let mut current = None;
        for k in self.all(KeyPurpose::Storage) {
            map.insert(k.id, AeadKey::new(&k.secret));
            current = Some(k.id);
        }
        let current = current.unwrap_or(KeyId([0; 16]));
        Arc::new(StorageKeys { keys: map, current })
    }

    fn push_new_key(&mut self, purpose: KeyPurpose) -> KeyInfo {
        let version = self.current(purpose).map_or(1, |k| k.info.version + 1);
        let id = KeyId(random_bytes());
        let info = KeyInfo {
            id: id.to_hex(),
            purpose,
            version,
            created_at: Utc::now(),
        };
        self.keys.push(MasterKey {
            info: info.clone(),
            id,
            secret: Zeroizing::new(random_bytes()),
        });
        info
    }

    fn save(&self, create_new: bool) -> Result<(), KeystoreError> {
        let check =
            seal_blob::<KEY_LEN, BLOB_LEN>(&self.kek, &random_bytes::<KEY_LEN>(), CHECK_AAD);
        let file = KeystoreFile {
            format: FORMAT.into(),
            kdf: self.kdf.clone(),
            check: hex::encode(check),
            keys: self
                .keys
                .iter()
                .map(|k| KeyRecord {
                    info: k.info.clone(),
                    wrapped: hex::encode(seal_blob::<KEY_LEN, BLOB_LEN>(
                        &self.kek,
                        &k.secret,
                        &key_aad(&k.info),
                    )),
                })
                .collect(),
        };
        let text = serde_json::to_string_pretty(&file).map_err(|e| KeystoreError::Corrupt {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        let io = |source: std::io::Error| {
            if source.kind() == std::io::ErrorKind::AlreadyExists {
                KeystoreError::AlreadyExists(self.path.clone())
            } else {
                KeystoreError::Io {
                    path: self.path.clone(),
                    source,
                }
            }
        };
        let _lock = self.lock()?;
        if !create_new {
            // Read, compare, write under the lock: of two rewrites at once, the second finds
            // the first's file and refuses, instead of silently replacing it.
            let now = std::fs::read(&self.path).map_err(io)?;
            let seen = *self
                .seen
                .lock()
                .map_err(|_| KeystoreError::Changed(self.path.clone()))?;
            if *blake3::hash(&now).as_bytes() != seen {
                return Err(KeystoreError::Changed(self.path.clone()));
            }
        }
        write_atomic(&self.path, text.as_bytes(), create_new).map_err(io)?;
        if let Ok(mut seen) = self.seen.lock() {
            *seen = *blake3::hash(text.as_bytes()).as_bytes();
        }
        Ok(())
    }

    /// The keystore's rewrite lock (`<keystore>.lock`, beside it), waited for up to 10 s.
    fn lock(&self) -> Result<std::fs::File, KeystoreError> {
        let path = self.path.with_extension("lock");
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| KeystoreError::Io {
                path: path.clone(),
                source,
            })?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match f.try_lock() {
                Ok(()) => return Ok(f),
                Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(KeystoreError::Locked(self.path.clone()));
                }
                Err(std::fs::TryLockError::Error(source)) => {
                    return Err(KeystoreError::Io { path, source });
                }
            }
        }
    }
}

/// The most a keystore file may hold (a few KiB in practice).
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// Reads a small state file as text, refusing one larger than [`MAX_FILE_BYTES`] (a swapped
/// file must not make opening the hub read gigabytes).
pub fn read_bounded(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let f = std::fs::File::open(path)?;
    let mut text = String::new();
    f.take(MAX_FILE_BYTES + 1).read_to_string(&mut text)?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {MAX_FILE_BYTES} bytes"),
        ));
    }
    Ok(text)
}

/// Writes `bytes` to a temporary file beside `path`, syncs it and renames it into place, so a
/// crash leaves either the old file or the new one, never a torn one. With `create_new`, an
/// existing `path` is an error (`AlreadyExists`).
pub fn write_atomic(path: &Path, bytes: &[u8], create_new: bool) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.{}.tmp", hex::encode(random_bytes::<6>())));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        if create_new {
            // hard_link fails if the target exists: an atomic create-only rename.
            std::fs::hard_link(&tmp, path)?;
            std::fs::remove_file(&tmp)?;
        } else {
            std::fs::rename(&tmp, path)?;
        }
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// The storage master keys, as the encrypted store sees them.
pub struct StorageKeys {
    keys: BTreeMap<KeyId, AeadKey>,
    current: KeyId,
}

impl std::fmt::Debug for StorageKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageKeys")
            .field("ids", &self.keys.keys().collect::<Vec<_>>())
            .field("current", &self.current)
            .finish()
    }
}

impl StorageKeys {
    /// A single in-memory master key, for tests and tools that do not use a keystore.
    pub fn ephemeral() -> Arc<Self> {
        Self::from_secret(KeyId(random_bytes()), &random_bytes())
    }

    /// A single master key with a known secret (test vectors).
    pub fn from_secret(id: KeyId, secret: &[u8; KEY_LEN]) -> Arc<Self> {
        let mut keys = BTreeMap::new();
        keys.insert(id, AeadKey::new(secret));
        Arc::new(Self { keys, current: id })
    }
}

impl KeyWrapper for StorageKeys {
    fn current_key_id(&self) -> KeyId {
        self.current
    }

    fn wrap(&self, key: &[u8; KEY_LEN], aad: &[u8]) -> Result<[u8; WRAPPED_KEY_LEN], WrapError> {
        let kek = self
            .keys
            .get(&self.current)
            .ok_or(WrapError::UnknownKey(self.current))?;
        Ok(seal_blob::<KEY_LEN, WRAPPED_KEY_LEN>(kek, key, aad))
    }

    fn unwrap(
        &self,
        id: &KeyId,
        wrapped: &[u8; WRAPPED_KEY_LEN],
        aad: &[u8],
    ) -> Result<DataKey, WrapError> {
        let kek = self.keys.get(id).ok_or(WrapError::UnknownKey(*id))?;
        open_blob::<KEY_LEN>(kek, wrapped, aad).map_err(|_| WrapError::Unauthentic(*id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_passphrase_is_named_and_changes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("keystore.json");
        Keystore::create(&path, "right", KdfParams::INSECURE_FAST).expect("create");
        let before = std::fs::read(&path).expect("read");
        let err = Keystore::open(&path, "wrong").expect_err("must fail");
        assert!(matches!(err, KeystoreError::WrongPassphrase(_)), "{err}");
        assert_eq!(before, std::fs::read(&path).expect("read"));
    }

    #[test]
    fn passwd_keeps_master_keys() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("keystore.json");
        let ks = Keystore::create(&path, "one", KdfParams::INSECURE_FAST).expect("create");
        let secret = *ks.current(KeyPurpose::Storage).expect("storage").secret();
        let mut ks = Keystore::open(&path, "one").expect("open");
        ks.change_passphrase("two", None).expect("passwd");
        assert!(matches!(
            Keystore::open(&path, "one"),
            Err(KeystoreError::WrongPassphrase(_))
        ));
        let ks = Keystore::open(&path, "two").expect("open with new");
        assert_eq!(
            &secret,
            ks.current(KeyPurpose::Storage).expect("storage").secret()
        );
    }

    #[test]
    fn kdf_parameters_from_the_file_are_bounded_before_use() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("keystore.json");
        Keystore::create(&path, "p", KdfParams::INSECURE_FAST).expect("create");
        let text = std::fs::read_to_string(&path).expect("read");
        for (field, value) in [
            ("m_cost_kib", "4294967295"),
            ("t_cost", "4294967295"),
            ("p_cost", "4294967295"),
            ("m_cost_kib", "0"),
            ("t_cost", "0"),
            ("m_cost_kib", "1048576\", \"t_cost\": 16, \"x\": \"1"),
        ] {
            let v: serde_json::Value = serde_json::from_str(&text).expect("json");
            let mut v = v;
            let kdf = v["kdf"].as_object_mut().expect("kdf");
            match value.parse::<u64>() {
                Ok(n) => {
                    kdf.insert(field.into(), n.into());
                }
                Err(_) => {
                    kdf.insert("m_cost_kib".into(), 1_048_576u64.into());
                    kdf.insert("t_cost".into(), 16u64.into());
                }
            }
            std::fs::write(&path, serde_json::to_vec(&v).expect("json")).expect("write");
            let started = std::time::Instant::now();
            let e = Keystore::open(&path, "p").expect_err("refused");
            assert!(matches!(e, KeystoreError::Corrupt { .. }), "{e}");
            assert!(e.to_string().contains("out of bounds"), "{e}");
            assert!(
                started.elapsed() < std::time::Duration::from_secs(2),
                "refused before any work"
            );
        }
        let huge = dir.path().join("huge.json");
        std::fs::write(&huge, vec![b' '; (MAX_FILE_BYTES + 10) as usize]).expect("write");
        assert!(matches!(
            Keystore::open(&huge, "p"),
            Err(KeystoreError::Io { .. })
        ));
        assert!(KdfParams::DEFAULT.check().is_ok() && KdfParams::INSECURE_FAST.check().is_ok());
    }

    #[test]
    fn two_rewrites_from_the_same_read_the_second_refuses() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("keystore.json");
        Keystore::create(&path, "zero", KdfParams::INSECURE_FAST).expect("create");
        let mut a = Keystore::open(&path, "zero").expect("a");
        let mut b = Keystore::open(&path, "zero").expect("b");
        a.change_passphrase("one", None).expect("first wins");
        let e = b
            .change_passphrase("two", None)
            .expect_err("second refused");
        assert!(matches!(e, KeystoreError::Changed(_)), "{e}");
        // What reported success holds; the refused one changed nothing.
        Keystore::open(&path, "one").expect("a's passphrase opens");
        assert!(matches!(
            Keystore::open(&path, "two"),
            Err(KeystoreError::WrongPassphrase(_))
        ));
        // A process that wrote last may write again.
        a.add_key(KeyPurpose::Pseudonym).expect("a again");
        assert!(matches!(
            b.add_key(KeyPurpose::Pseudonym),
            Err(KeystoreError::Changed(_))
        ));
    }

    #[test]
    fn create_refuses_existing_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("keystore.json");
        Keystore::create(&path, "p", KdfParams::INSECURE_FAST).expect("create");
        assert!(matches!(
            Keystore::create(&path, "p", KdfParams::INSECURE_FAST),
            Err(KeystoreError::AlreadyExists(_))
        ));
    }

    #[test]
    fn wrapped_key_is_bound_to_its_context() {
        let keys = StorageKeys::ephemeral();
        let dek = [7u8; KEY_LEN];
        let w = keys.wrap(&dek, b"a").expect("wrap");
        assert_eq!(
            *keys
                .unwrap(&keys.current_key_id(), &w, b"a")
                .expect("unwrap"),
            dek
        );
        assert!(keys.unwrap(&keys.current_key_id(), &w, b"b").is_err());
    }
}
