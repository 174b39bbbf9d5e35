//! A secret sealed under a person's own passphrase: a user's signing key, kept in the catalog
//! beside their public key, that only their passphrase opens. The same construction as the
//! keystore (Argon2id → key-encryption key → AES-256-GCM), one secret per record, bound by
//! its additional data to what it is for (a user's name), so that a sealed key copied onto
//! another user's record does not open as theirs.

use crate::aead::{AeadKey, open_blob, random_bytes, seal_blob};
use crate::keystore::{KdfRecord, derive_kek, new_kdf_record};
use crate::{KEY_LEN, KdfParams, KeystoreError, NONCE_LEN, TAG_LEN};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

const FORMAT: &str = "shh.sealed/1";
const BLOB_LEN: usize = NONCE_LEN + KEY_LEN + TAG_LEN;

/// A 32-byte secret sealed under a passphrase (JSON, safe to store anywhere).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedSecret {
    format: String,
    kdf: KdfRecordJson,
    /// Hex of nonce ‖ ciphertext ‖ tag.
    sealed: String,
}

/// [`KdfRecord`] with equality, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct KdfRecordJson {
    algorithm: String,
    version: u32,
    m_cost_kib: u32,
    t_cost: u32,
    p_cost: u32,
    salt: String,
}

/// Why a sealed secret did not open.
#[derive(Debug, thiserror::Error)]
pub enum SealedError {
    /// The passphrase (or the purpose) does not match.
    #[error("wrong passphrase")]
    WrongPassphrase,
    /// Not a sealed secret this version reads.
    #[error("the sealed secret is malformed: {0}")]
    Malformed(String),
    /// An empty passphrase or bad parameters.
    #[error(transparent)]
    Kdf(#[from] KeystoreError),
}

fn aad(purpose: &str) -> Vec<u8> {
    format!("{FORMAT}/{purpose}").into_bytes()
}

impl SealedSecret {
    /// Seals `secret` for `purpose` (what it is, e.g. `user-key/alice`) under `passphrase`.
    pub fn seal(
        secret: &[u8; KEY_LEN],
        passphrase: &str,
        params: KdfParams,
        purpose: &str,
    ) -> Result<Self, SealedError> {
        let kdf = new_kdf_record(params);
        let salt = hex::decode(&kdf.salt).map_err(|e| SealedError::Malformed(e.to_string()))?;
        let kek = AeadKey::new(&*derive_kek(passphrase, params, &salt)?);
        let blob: [u8; BLOB_LEN] = seal_blob(&kek, secret, &aad(purpose));
        Ok(Self {
            format: FORMAT.into(),
            kdf: KdfRecordJson::from(kdf),
            sealed: hex::encode(blob),
        })
    }

    /// A fresh random secret for `purpose`, sealed; returns it and its sealed form.
    pub fn generate(
        passphrase: &str,
        params: KdfParams,
        purpose: &str,
    ) -> Result<(Zeroizing<[u8; KEY_LEN]>, Self), SealedError> {
        let secret = Zeroizing::new(random_bytes::<KEY_LEN>());
        let sealed = Self::seal(&secret, passphrase, params, purpose)?;
        Ok((secret, sealed))
    }

    /// Opens the secret sealed for `purpose`.
    pub fn open(
        &self,
        passphrase: &str,
        purpose: &str,
    ) -> Result<Zeroizing<[u8; KEY_LEN]>, SealedError> {
        if self.format != FORMAT {
            return Err(SealedError::Malformed(format!(
                "unknown format {:?}",
                self.format
            )));
        }
        if self.kdf.algorithm != "argon2id" || self.kdf.version != 0x13 {
            return Err(SealedError::Malformed("unknown key derivation".into()));
        }
        let params = KdfParams {
            m_cost_kib: self.kdf.m_cost_kib,
            t_cost: self.kdf.t_cost,
            p_cost: self.kdf.p_cost,
        };
        // Parameters are checked before any work: a record cannot make us spend a gigabyte.
        params.check().map_err(SealedError::Malformed)?;
        let salt = hex::decode(&self.kdf.salt)
            .ok()
            .filter(|s| s.len() >= 16)
            .ok_or_else(|| SealedError::Malformed("the salt must be 16 bytes or more".into()))?;
        let blob = hex::decode(&self.sealed).map_err(|e| SealedError::Malformed(e.to_string()))?;
        let kek = AeadKey::new(&*derive_kek(passphrase, params, &salt)?);
        open_blob::<KEY_LEN>(&kek, &blob, &aad(purpose)).map_err(|_| SealedError::WrongPassphrase)
    }

    /// The JSON form stored in the catalog.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads the JSON form.
    pub fn from_json(text: &str) -> Result<Self, SealedError> {
        serde_json::from_str(text).map_err(|e| SealedError::Malformed(e.to_string()))
    }
}

impl From<KdfRecord> for KdfRecordJson {
    fn from(k: KdfRecord) -> Self {
        Self {
            algorithm: k.algorithm,
            version: k.version,
            m_cost_kib: k.params.m_cost_kib,
            t_cost: k.params.t_cost,
            p_cost: k.params.p_cost,
            salt: k.salt,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const FAST: KdfParams = KdfParams::INSECURE_FAST;

    #[test]
    fn opens_only_with_its_passphrase_and_purpose() {
        let (secret, sealed) =
            SealedSecret::generate("correct horse", FAST, "user-key/alice").expect("seal");
        let back = SealedSecret::from_json(&sealed.to_json()).expect("json");
        assert_eq!(
            *back.open("correct horse", "user-key/alice").expect("open"),
            *secret
        );
        assert!(matches!(
            back.open("Correct horse", "user-key/alice"),
            Err(SealedError::WrongPassphrase)
        ));
        // Copied onto another user's record, it does not open as theirs.
        assert!(matches!(
            back.open("correct horse", "user-key/mallory"),
            Err(SealedError::WrongPassphrase)
        ));
        assert!(SealedSecret::generate("", FAST, "x").is_err());
    }

    #[test]
    fn a_record_cannot_ask_for_unbounded_work() {
        let (_, sealed) = SealedSecret::generate("pw", FAST, "p").expect("seal");
        let mut v: serde_json::Value = serde_json::from_str(&sealed.to_json()).expect("json");
        v["kdf"]["m_cost_kib"] = serde_json::json!(u32::MAX);
        let bad = SealedSecret::from_json(&v.to_string()).expect("parses");
        assert!(matches!(
            bad.open("pw", "p"),
            Err(SealedError::Malformed(_))
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]
        /// Any secret round-trips, and any one flipped bit of the sealed form refuses to open.
        #[test]
        fn round_trips_and_detects_any_flipped_bit(secret in any::<[u8; 32]>(), bit in 0usize..(BLOB_LEN * 8)) {
            let sealed = SealedSecret::seal(&secret, "pw", FAST, "p").expect("seal");
            prop_assert_eq!(*sealed.open("pw", "p").expect("open"), secret);
            let mut blob = hex::decode(&sealed.sealed).expect("hex");
            blob[bit / 8] ^= 1 << (bit % 8);
            let tampered = SealedSecret { sealed: hex::encode(blob), ..sealed };
            prop_assert!(tampered.open("pw", "p").is_err());
        }
    }
}
