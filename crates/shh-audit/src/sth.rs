//! Signed tree heads: `(hub, size, root, time)` signed with Ed25519 by the hub's audit key,
//! published after every batch of appended events. The signed message is
//! `"shh/sth/v1\n" ‖ canonical JSON of the head without its signature`, so a head cannot be
//! confused with any other signed object. Public keys travel as standard PEM
//! (SubjectPublicKeyInfo, as `openssl pkey -pubout` writes them).

use crate::canonical::to_canonical_vec;
use crate::merkle::Hash;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, SubsecRound, Utc};
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use serde::{Deserialize, Serialize};

/// Format tag of a tree head.
pub const STH_FORMAT: &str = "shh.sth/1";
const DOMAIN: &[u8] = b"shh/sth/v1\n";
/// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410), before the 32 key bytes.
const SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// Errors with keys and signatures.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The seed does not make an Ed25519 key.
    #[error("invalid Ed25519 signing key")]
    BadSeed,
    /// A public key could not be read.
    #[error("not an Ed25519 public key (PEM SubjectPublicKeyInfo or 64 hex digits): {0}")]
    BadPublicKey(String),
}

/// An Ed25519 public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicKey([u8; 32]);

impl PublicKey {
    /// Whether `signature` (base64) is this key's signature of `document` under `domain`
    /// (see [`Signer::sign_document`]).
    pub fn verify_document(&self, domain: &[u8], document: &[u8], signature: &str) -> bool {
        let Ok(sig) = B64.decode(signature) else {
            return false;
        };
        let mut m = domain.to_vec();
        m.push(b'\n');
        m.extend_from_slice(document);
        UnparsedPublicKey::new(&ED25519, &self.0)
            .verify(&m, &sig)
            .is_ok()
    }

    /// The raw 32 bytes.
    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// A short, stable name: the first 8 bytes of SHA-256 of the raw key, in hex.
    pub fn fingerprint(&self) -> String {
        let d = ring::digest::digest(&ring::digest::SHA256, &self.0);
        hex::encode(&d.as_ref()[..8])
    }

    /// PEM (SubjectPublicKeyInfo).
    pub fn to_pem(&self) -> String {
        let mut der = SPKI_PREFIX.to_vec();
        der.extend_from_slice(&self.0);
        format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            B64.encode(der)
        )
    }

    /// Reads every key in `text`: PEM blocks or lines of 64 hex digits.
    pub fn parse_all(text: &str) -> Result<Vec<PublicKey>, KeyError> {
        let mut keys = Vec::new();
        let mut pem: Option<String> = None;
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if line == "-----BEGIN PUBLIC KEY-----" {
                pem = Some(String::new());
            } else if line == "-----END PUBLIC KEY-----" {
                let body = pem.take().ok_or_else(|| bad("END without BEGIN"))?;
                let der = B64.decode(body).map_err(|e| bad(&e.to_string()))?;
                let raw = der
                    .strip_prefix(&SPKI_PREFIX[..])
                    .filter(|k| k.len() == 32)
                    .ok_or_else(|| bad("not an Ed25519 SubjectPublicKeyInfo"))?;
                keys.push(PublicKey(raw.try_into().map_err(|_| bad("length"))?));
            } else if let Some(body) = pem.as_mut() {
                body.push_str(line);
            } else {
                let raw = hex::decode(line).map_err(|e| bad(&e.to_string()))?;
                let raw: [u8; 32] = raw.try_into().map_err(|_| bad("hex key is not 32 bytes"))?;
                keys.push(PublicKey(raw));
            }
        }
        if pem.is_some() {
            return Err(bad("BEGIN without END"));
        }
        if keys.is_empty() {
            return Err(bad("no key found"));
        }
        Ok(keys)
    }
}

fn bad(why: &str) -> KeyError {
    KeyError::BadPublicKey(why.to_owned())
}

/// The hub's audit signing key.
pub struct Signer {
    pair: Ed25519KeyPair,
    public: PublicKey,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer({})", self.public.fingerprint())
    }
}

impl Signer {
    /// A signer from a 32-byte seed (the keystore's audit-signing master key).
    pub fn from_seed(seed: &[u8; 32]) -> Result<Self, KeyError> {
        let pair = Ed25519KeyPair::from_seed_unchecked(seed).map_err(|_| KeyError::BadSeed)?;
        let mut raw = [0u8; 32];
        raw.copy_from_slice(pair.public_key().as_ref());
        Ok(Self {
            pair,
            public: PublicKey(raw),
        })
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        self.public
    }

    /// Signs any other document the hub vouches for (a migration acceptance report, say).
    /// `domain` separates kinds of documents, so no signature can be replayed as a tree head.
    /// Returns the base64 signature.
    pub fn sign_document(&self, domain: &[u8], document: &[u8]) -> String {
        let mut m = domain.to_vec();
        m.push(b'\n');
        m.extend_from_slice(document);
        B64.encode(self.pair.sign(&m).as_ref())
    }

    /// Signs a head of `size` leaves with `root`, now.
    pub fn sign(&self, hub: &str, size: u64, root: &Hash) -> SignedTreeHead {
        let head = TreeHead {
            format: STH_FORMAT.into(),
            hub: hub.into(),
            size,
            root: hex::encode(root),
            time: Utc::now().trunc_subsecs(6),
            key: self.public.fingerprint(),
        };
        let sig = self.pair.sign(&head.message());
        SignedTreeHead {
            head,
            signature: B64.encode(sig.as_ref()),
        }
    }
}

/// A tree head before signing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeHead {
    /// [`STH_FORMAT`].
    pub format: String,
    /// The hub's id.
    pub hub: String,
    /// Number of events covered.
    pub size: u64,
    /// RFC 6962 root over those events, hex.
    pub root: String,
    /// When it was signed.
    pub time: DateTime<Utc>,
    /// Fingerprint of the signing key.
    pub key: String,
}

impl TreeHead {
    fn message(&self) -> Vec<u8> {
        let mut m = DOMAIN.to_vec();
        // A TreeHead always serializes (strings and integers only).
        let v = serde_json::to_value(self).unwrap_or_default();
        m.extend_from_slice(&to_canonical_vec(&v));
        m
    }
}

/// A signed tree head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedTreeHead {
    /// What is signed.
    #[serde(flatten)]
    pub head: TreeHead,
    /// Ed25519 signature, base64.
    pub signature: String,
}

/// Why a head does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    /// Unknown format tag.
    #[error("unknown tree head format {0:?}")]
    Format(String),
    /// No given public key has this fingerprint.
    #[error("signed by key {0}, which is not among the trusted public keys")]
    UnknownKey(String),
    /// The signature does not verify.
    #[error("bad signature")]
    Signature,
    /// The root is not 32 bytes of hex.
    #[error("malformed root")]
    Root,
}

impl SignedTreeHead {
    /// Checks the signature against the trusted keys and returns the root.
    pub fn verify(&self, keys: &[PublicKey]) -> Result<Hash, HeadError> {
        if self.head.format != STH_FORMAT {
            return Err(HeadError::Format(self.head.format.clone()));
        }
        let key = keys
            .iter()
            .find(|k| k.fingerprint() == self.head.key)
            .ok_or_else(|| HeadError::UnknownKey(self.head.key.clone()))?;
        let sig = B64
            .decode(&self.signature)
            .map_err(|_| HeadError::Signature)?;
        UnparsedPublicKey::new(&ED25519, key.bytes())
            .verify(&self.head.message(), &sig)
            .map_err(|_| HeadError::Signature)?;
        self.root()
    }

    /// The root, decoded (unauthenticated until [`Self::verify`]).
    pub fn root(&self) -> Result<Hash, HeadError> {
        hex::decode(&self.head.root)
            .ok()
            .and_then(|r| r.try_into().ok())
            .ok_or(HeadError::Root)
    }

    /// Canonical JSON of the signed head (one line of an export).
    pub fn canonical_bytes(&self) -> Vec<u8> {
        to_canonical_vec(&serde_json::to_value(self).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_verify_only_unaltered_and_with_the_right_key() {
        let s = Signer::from_seed(&[7; 32]).expect("key");
        let other = Signer::from_seed(&[8; 32]).expect("key");
        let h = s.sign("hub", 10, &[1; 32]);
        assert_eq!(h.verify(&[s.public()]), Ok([1; 32]));
        assert!(matches!(
            h.verify(&[other.public()]),
            Err(HeadError::UnknownKey(_))
        ));
        let mut bigger = h.clone();
        bigger.head.size = 11;
        assert_eq!(bigger.verify(&[s.public()]), Err(HeadError::Signature));
        let json = serde_json::to_string(&h).expect("json");
        let back: SignedTreeHead = serde_json::from_str(&json).expect("parse");
        assert_eq!(back.verify(&[s.public()]), Ok([1; 32]));
    }

    #[test]
    fn public_keys_round_trip_through_pem_and_hex() {
        let s = Signer::from_seed(&[9; 32]).expect("key");
        let pem = s.public().to_pem();
        assert_eq!(PublicKey::parse_all(&pem).expect("pem"), vec![s.public()]);
        let hexed = hex::encode(s.public().bytes());
        assert_eq!(
            PublicKey::parse_all(&format!("{pem}\n{hexed}\n")).expect("both"),
            vec![s.public(), s.public()]
        );
        assert!(PublicKey::parse_all("-----BEGIN PUBLIC KEY-----\nAAAA\n").is_err());
        assert!(PublicKey::parse_all("").is_err());
    }
}
