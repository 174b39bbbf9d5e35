//! AES-256-GCM primitives shared by key wrapping and the object format (via `ring`).

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, Tag, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

/// AES-256 key length.
pub const KEY_LEN: usize = 32;
/// GCM nonce length.
pub const NONCE_LEN: usize = 12;
/// GCM tag length.
pub const TAG_LEN: usize = 16;

/// An AEAD operation failed: for `open`, the bytes do not authenticate.
#[derive(Debug, thiserror::Error)]
#[error("authentication failed")]
pub struct AeadError;

/// An expanded AES-256-GCM key; build it once per object, not per segment.
pub struct AeadKey(LessSafeKey);

impl std::fmt::Debug for AeadKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AeadKey(..)")
    }
}

impl AeadKey {
    /// Expands a 256-bit key.
    pub fn new(k: &[u8; KEY_LEN]) -> Self {
        match UnboundKey::new(&AES_256_GCM, k) {
            Ok(key) => Self(LessSafeKey::new(key)),
            // AES-256 accepts every 32-byte key.
            Err(_) => panic!("ring rejected a 32-byte AES-256 key"),
        }
    }

    /// Encrypts `buf` in place and returns the tag.
    pub fn seal(&self, nonce: [u8; NONCE_LEN], aad: &[u8], buf: &mut [u8]) -> [u8; TAG_LEN] {
        match self.0.seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            buf,
        ) {
            Ok(tag) => {
                let mut out = [0u8; TAG_LEN];
                out.copy_from_slice(tag.as_ref());
                out
            }
            // Only inputs beyond GCM's 64 GiB limit fail; segments are 64 KiB.
            Err(_) => panic!("AES-GCM seal failed on a {} byte buffer", buf.len()),
        }
    }

    /// Decrypts `buf` in place, checking `tag`.
    pub fn open(
        &self,
        nonce: [u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), AeadError> {
        self.open_shifted(nonce, aad, buf, 0, tag)
    }

    /// Decrypts the ciphertext at `buf[src..]`, checking `tag`, and writes the plaintext to
    /// the front of `buf` (`buf[..buf.len() - src]`): decryption and compaction in one pass.
    pub fn open_shifted(
        &self,
        nonce: [u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
        src: usize,
        tag: &[u8; TAG_LEN],
    ) -> Result<(), AeadError> {
        self.0
            .open_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                Tag::from(*tag),
                buf,
                src..,
            )
            .map(|_| ())
            .map_err(|_| AeadError)
    }
}

/// Fills an array from the operating system's random source.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    if SystemRandom::new().fill(&mut out).is_err() {
        panic!("the operating system's random source failed");
    }
    out
}

/// Seals a small secret into nonce ‖ ciphertext ‖ tag with a fresh random nonce.
pub fn seal_blob<const N: usize, const W: usize>(
    key: &AeadKey,
    secret: &[u8; N],
    aad: &[u8],
) -> [u8; W] {
    debug_assert_eq!(W, NONCE_LEN + N + TAG_LEN);
    let nonce: [u8; NONCE_LEN] = random_bytes();
    let mut body = *secret;
    let tag = key.seal(nonce, aad, &mut body);
    let mut out = [0u8; W];
    out[..NONCE_LEN].copy_from_slice(&nonce);
    out[NONCE_LEN..NONCE_LEN + N].copy_from_slice(&body);
    out[NONCE_LEN + N..].copy_from_slice(&tag);
    zeroize::Zeroize::zeroize(&mut body);
    out
}

/// Opens a blob made by [`seal_blob`].
pub fn open_blob<const N: usize>(
    key: &AeadKey,
    blob: &[u8],
    aad: &[u8],
) -> Result<zeroize::Zeroizing<[u8; N]>, AeadError> {
    if blob.len() != NONCE_LEN + N + TAG_LEN {
        return Err(AeadError);
    }
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&blob[..NONCE_LEN]);
    let mut body = zeroize::Zeroizing::new([0u8; N]);
    body.copy_from_slice(&blob[NONCE_LEN..NONCE_LEN + N]);
    let mut tag = [0u8; TAG_LEN];
    tag.copy_from_slice(&blob[NONCE_LEN + N..]);
    key.open(nonce, aad, &mut body[..], &tag)?;
    Ok(body)
}
