//! Keyed pseudonyms.
//!
//! HMAC is computed with SHA-256 from precomputed inner and outer states (RFC 2104), so a
//! pseudonym costs two compression calls; `sha2` picks the CPU's SHA extensions at run time.
//! The output is the first 128 bits: at a billion distinct identifiers the chance that two
//! collide is about 10⁻²¹.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// Characters of an encoded pseudonym.
pub const PSEUDONYM_LEN: usize = 22;
const BLOCK: usize = 64;

/// Computes pseudonyms under one key version.
#[derive(Clone)]
pub struct Pseudonymizer {
    version: u32,
    inner: Sha256,
    outer: Sha256,
}

impl std::fmt::Debug for Pseudonymizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pseudonymizer")
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl Pseudonymizer {
    /// A pseudonymizer for key `version` (recorded in manifests) with secret `key`.
    pub fn new(version: u32, key: &[u8; 32]) -> Self {
        let mut ipad = Zeroizing::new([0x36u8; BLOCK]);
        let mut opad = Zeroizing::new([0x5cu8; BLOCK]);
        for (i, k) in key.iter().enumerate() {
            ipad[i] ^= k;
            opad[i] ^= k;
        }
        let mut inner = Sha256::new();
        inner.update(ipad.as_slice());
        let mut outer = Sha256::new();
        outer.update(opad.as_slice());
        Self {
            version,
            inner,
            outer,
        }
    }

    /// The key version.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The full HMAC-SHA-256 of already-normalized bytes.
    pub fn mac(&self, normalized: &[u8]) -> [u8; 32] {
        let mut h = self.inner.clone();
        h.update(normalized);
        let ih = h.finalize();
        let mut o = self.outer.clone();
        o.update(ih);
        o.finalize().into()
    }

    /// A pseudonym derived from an existing one's exact bytes (no normalization: a pseudonym
    /// is already canonical), appended to `out` (22 characters). A project's pseudonyms are
    /// these, under the project's key, of the hub's.
    pub fn derive_into(&self, pseudonym: &[u8], out: &mut String) {
        let mac = self.mac(pseudonym);
        let mut buf = [0u8; PSEUDONYM_LEN];
        // 16 bytes always encode to exactly 22 characters: the slice cannot be too small.
        let n = URL_SAFE_NO_PAD
            .encode_slice(&mac[..16], &mut buf)
            .unwrap_or(0);
        out.extend(buf[..n].iter().map(|&b| b as char));
    }

    /// The pseudonym of a source identifier, appended to `out` (22 characters).
    pub fn pseudonym_into(&self, id: &str, scratch: &mut Vec<u8>, out: &mut String) {
        normalize_into(id, scratch);
        self.derive_into(scratch, out);
    }

    /// The pseudonym of a source identifier.
    pub fn pseudonym(&self, id: &str) -> String {
        let mut s = String::with_capacity(PSEUDONYM_LEN);
        self.pseudonym_into(id, &mut Vec::new(), &mut s);
        s
    }
}

/// Normalization before hashing: surrounding and inner ASCII whitespace removed, ASCII letters
/// upper-cased. `"1 84 12 76 451 089 46"` and `"184127645108946"` are the same person; the
/// normalization is part of the pseudonym's definition and never changes for a key version.
pub fn normalize_into(id: &str, out: &mut Vec<u8>) {
    out.clear();
    out.extend(
        id.bytes()
            .filter(|b| !b.is_ascii_whitespace())
            .map(|b| b.to_ascii_uppercase()),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn equals_rfc4231_case_2_and_ring() {
        // RFC 4231 test case 2 uses a 4-byte key; ours are 32 bytes, so compare with ring.
        let key = [7u8; 32];
        let p = Pseudonymizer::new(1, &key);
        let r = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key);
        for msg in [&b""[..], b"what do ya want for nothing?", &[0xaa; 200]] {
            assert_eq!(p.mac(msg).as_slice(), ring::hmac::sign(&r, msg).as_ref());
        }
    }

    #[test]
    fn stable_and_normalized() {
        let p = Pseudonymizer::new(1, &[1u8; 32]);
        let a = p.pseudonym("1 84 12 76 451 089 46");
        assert_eq!(a, p.pseudonym("184127645108946"));
        assert_eq!(a.len(), PSEUDONYM_LEN);
        assert_ne!(
            a,
            Pseudonymizer::new(2, &[2u8; 32]).pseudonym("184127645108946")
        );
        assert_eq!(p.pseudonym("ab"), p.pseudonym("AB"));
    }

    proptest! {
        #[test]
        fn always_22_url_safe_chars(id in ".*", key in any::<[u8; 32]>()) {
            let s = Pseudonymizer::new(1, &key).pseudonym(&id);
            prop_assert_eq!(s.len(), PSEUDONYM_LEN);
            prop_assert!(s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        }

        #[test]
        fn distinct_ids_distinct_pseudonyms(a in "[0-9A-Z]{1,20}", b in "[0-9A-Z]{1,20}") {
            prop_assume!(a != b);
            let p = Pseudonymizer::new(1, &[9u8; 32]);
            prop_assert_ne!(p.pseudonym(&a), p.pseudonym(&b));
        }
    }
}
