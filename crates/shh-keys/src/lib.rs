//! Key custody for the hub.
//!
//! The hierarchy is: passphrase → key-encryption key (Argon2id, parameters recorded in the
//! keystore) → hub master keys (random, stored only wrapped) → per-object data keys (random,
//! wrapped by a storage master key inside each object's header).
//!
//! Changing the passphrase re-wraps only the master keys: no data object is touched. The
//! storage backend never sees any of these keys: the keystore lives beside the hub
//! configuration, not in the object store.
//!
//! [`KeyWrapper`] is the narrow interface the encryption layer needs; the passphrase keystore
//! implements it today and a PKCS#11 HSM can implement it later (wrapping inside the HSM).

#![forbid(unsafe_code)]

mod aead;
mod keystore;
mod sealed;

pub use aead::{
    AeadError, AeadKey, KEY_LEN, NONCE_LEN, TAG_LEN, open_blob, random_bytes, seal_blob,
};
pub use keystore::{
    KdfParams, KeyInfo, KeyPurpose, Keystore, KeystoreError, MAX_FILE_BYTES, MasterKey,
    StorageKeys, read_bounded, write_atomic,
};
pub use sealed::{SealedError, SealedSecret};

use std::fmt;
use zeroize::Zeroizing;

/// Identifier of a master key: 16 random bytes, shown as 32 hex characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; 16]);

impl KeyId {
    /// Hex form, as written in the keystore and shown by `shh keys`.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses the hex form.
    pub fn from_hex(s: &str) -> Option<Self> {
        let v = hex::decode(s).ok()?;
        Some(Self(v.try_into().ok()?))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({})", self.to_hex())
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// A 256-bit data key, zeroed when dropped.
pub type DataKey = Zeroizing<[u8; KEY_LEN]>;

/// Length of a wrapped data key: nonce, encrypted key, tag.
pub const WRAPPED_KEY_LEN: usize = NONCE_LEN + KEY_LEN + TAG_LEN;

/// Errors of key wrapping.
#[derive(Debug, thiserror::Error)]
pub enum WrapError {
    /// The object names a master key this hub does not hold.
    #[error("unknown master key {0}")]
    UnknownKey(KeyId),
    /// The wrapped key did not authenticate: wrong key, wrong object, or altered bytes.
    #[error("data key does not authenticate under master key {0}")]
    Unauthentic(KeyId),
    /// The key provider failed (HSM unreachable, ...).
    #[error("key provider failed: {0}")]
    Provider(String),
}

/// Wraps and unwraps per-object data keys under a master key the caller never sees.
///
/// `aad` binds the wrapped key to its context (the object's header and path), so a wrapped key
/// copied into another object does not unwrap.
pub trait KeyWrapper: Send + Sync + fmt::Debug {
    /// The master key new objects are wrapped under.
    fn current_key_id(&self) -> KeyId;
    /// Wraps `key` under the current master key; returns nonce ‖ ciphertext ‖ tag.
    fn wrap(&self, key: &[u8; KEY_LEN], aad: &[u8]) -> Result<[u8; WRAPPED_KEY_LEN], WrapError>;
    /// Unwraps a key wrapped under master key `id`.
    fn unwrap(
        &self,
        id: &KeyId,
        wrapped: &[u8; WRAPPED_KEY_LEN],
        aad: &[u8],
    ) -> Result<DataKey, WrapError>;
}
