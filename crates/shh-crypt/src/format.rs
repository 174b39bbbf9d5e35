//! The encrypted object format, version 1. Its constants are frozen: a change is a new version.
//!
//! ```text
//! object  = header(96) ‖ segment_0 ‖ … ‖ segment_{n-1}
//! header  = "SHHENC" ‖ version(1)=1 ‖ alg(1)=1 ‖ segment_size(u32 BE) ‖ nonce_prefix(7)
//!           ‖ reserved(1)=0 ‖ master_key_id(16) ‖ wrapped_data_key(60 = nonce 12 ‖ key 32 ‖ tag 16)
//! segment = AES-256-GCM(data_key, nonce_i, aad, plaintext_i) ‖ tag(16)
//! nonce_i = nonce_prefix(7) ‖ i (u32 BE) ‖ final flag (1 byte: 1 on the last segment, else 0)
//! aad     = "shh/seg/v1" ‖ object path
//! wrap aad= "shh/dek/v1" ‖ header[0..36] ‖ object path
//! ```
//!
//! Every segment but the last holds exactly `segment_size` plaintext bytes; the last holds
//! 0..=segment_size and carries the final flag (an empty object is one empty final segment).
//! So the plaintext length follows from the stored length, a range read needs only the header
//! and the segments it covers, and truncation, extension, reordering, editing, a swapped header
//! or an object moved to another path all fail authentication.

use shh_keys::{AeadKey, DataKey, KeyId, KeyWrapper, TAG_LEN, WRAPPED_KEY_LEN, random_bytes};

/// Magic bytes at the start of every encrypted object.
pub const MAGIC: &[u8; 6] = b"SHHENC";
/// Format version written by this code.
pub const VERSION: u8 = 1;
/// Algorithm 1: AES-256-GCM in the STREAM construction.
pub const ALG_AES256GCM_STREAM: u8 = 1;
/// Header length for version 1.
pub const HEADER_LEN: usize = 96;
/// Default plaintext bytes per segment.
pub const DEFAULT_SEGMENT: u32 = 64 * 1024;
/// Bytes of nonce prefix.
pub const NONCE_PREFIX_LEN: usize = 7;
const SEG_AAD_PREFIX: &[u8] = b"shh/seg/v1";
const DEK_AAD_PREFIX: &[u8] = b"shh/dek/v1";

/// Why bytes are not a valid object of this format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// Shorter than a header plus one tag.
    #[error("object too short ({0} bytes) to be encrypted data")]
    TooShort(u64),
    /// The magic bytes are wrong.
    #[error("not an shh encrypted object (bad magic)")]
    BadMagic,
    /// A version or algorithm this code does not know.
    #[error("unsupported format version {version} / algorithm {alg}")]
    Unsupported {
        /// Version byte.
        version: u8,
        /// Algorithm byte.
        alg: u8,
    },
    /// The segment size field is not allowed.
    #[error("invalid segment size {0}")]
    BadSegmentSize(u32),
    /// The data key did not unwrap for this object and path.
    #[error("data key does not authenticate for this object ({0})")]
    KeyUnwrap(String),
    /// A segment did not authenticate.
    #[error("segment {0} does not authenticate (altered, truncated, reordered or moved)")]
    Segment(u64),
    /// A requested range is outside the plaintext.
    #[error("range {start}..{end} is outside the object's {len} bytes")]
    Range {
        /// Range start.
        start: u64,
        /// Range end.
        end: u64,
        /// Plaintext length.
        len: u64,
    },
}

/// A parsed header together with the unwrapped data key.
pub struct ObjectKey {
    header: [u8; HEADER_LEN],
    segment: u32,
    nonce_prefix: [u8; NONCE_PREFIX_LEN],
    key: AeadKey,
    aad: Vec<u8>,
}

impl std::fmt::Debug for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectKey")
            .field("segment", &self.segment)
            .finish_non_exhaustive()
    }
}

/// Segment geometry of one object: maps plaintext offsets to stored offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Plaintext bytes per full segment.
    pub segment: u64,
}

impl Layout {
    /// Stored bytes per full segment.
    pub fn stored_segment(&self) -> u64 {
        self.segment + TAG_LEN as u64
    }

    /// Number of segments for `plain_len` plaintext bytes (at least one).
    pub fn segments_for_plain(&self, plain_len: u64) -> u64 {
        plain_len.div_ceil(self.segment).max(1)
    }

    /// Stored length of an object holding `plain_len` bytes.
    pub fn stored_len(&self, plain_len: u64) -> u64 {
        HEADER_LEN as u64 + plain_len + TAG_LEN as u64 * self.segments_for_plain(plain_len)
    }

    /// Plaintext length of an object stored in `stored_len` bytes.
    pub fn plain_len(&self, stored_len: u64) -> Result<u64, FormatError> {
        let body = stored_len
            .checked_sub(HEADER_LEN as u64 + TAG_LEN as u64)
            .ok_or(FormatError::TooShort(stored_len))?
            + TAG_LEN as u64;
        let n = body.div_ceil(self.stored_segment());
        // A last segment of only a tag after full ones would mean a non-canonical encoding.
        let plain = body - TAG_LEN as u64 * n;
        if self.stored_len(plain) != stored_len {
            return Err(FormatError::TooShort(stored_len));
        }
        Ok(plain)
    }

    /// Stored byte range holding segments `first..=last`, given the object's stored length.
    pub fn stored_range(&self, first: u64, last: u64, stored_len: u64) -> std::ops::Range<u64> {
        let start = HEADER_LEN as u64 + first * self.stored_segment();
        let end = (HEADER_LEN as u64 + (last + 1) * self.stored_segment()).min(stored_len);
        start..end
    }
}

/// Plaintext length of an object of `stored_len` bytes with the default segment size; used where
/// only a listing is at hand (sizes in `list`). Non-canonical lengths map to 0.
pub fn plain_len_default(stored_len: u64) -> u64 {
    Layout {
        segment: DEFAULT_SEGMENT as u64,
    }
    .plain_len(stored_len)
    .unwrap_or(0)
}

fn seg_aad(path: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(SEG_AAD_PREFIX.len() + path.len());
    aad.extend_from_slice(SEG_AAD_PREFIX);
    aad.extend_from_slice(path.as_bytes());
    aad
}

fn dek_aad(header: &[u8; HEADER_LEN], path: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(DEK_AAD_PREFIX.len() + 36 + path.len());
    aad.extend_from_slice(DEK_AAD_PREFIX);
    aad.extend_from_slice(&header[..36]);
    aad.extend_from_slice(path.as_bytes());
    aad
}

impl ObjectKey {
    /// A fresh data key and header for a new object at `path`.
    pub fn generate(
        keys: &dyn KeyWrapper,
        path: &str,
        segment: u32,
    ) -> Result<Self, shh_keys::WrapError> {
        let dek: DataKey = zeroize::Zeroizing::new(random_bytes());
        Self::with_key(keys, path, segment, &dek, random_bytes())
    }

    /// A header for a given data key and nonce prefix (test vectors use this).
    pub fn with_key(
        keys: &dyn KeyWrapper,
        path: &str,
        segment: u32,
        dek: &DataKey,
        nonce_prefix: [u8; NONCE_PREFIX_LEN],
    ) -> Result<Self, shh_keys::WrapError> {
        let mut header = [0u8; HEADER_LEN];
        header[..6].copy_from_slice(MAGIC);
        header[6] = VERSION;
        header[7] = ALG_AES256GCM_STREAM;
        header[8..12].copy_from_slice(&segment.to_be_bytes());
        header[12..19].copy_from_slice(&nonce_prefix);
        header[20..36].copy_from_slice(&keys.current_key_id().0);
        let wrapped = keys.wrap(dek, &dek_aad(&header, path))?;
        header[36..].copy_from_slice(&wrapped);
        Ok(Self {
            header,
            segment,
            nonce_prefix,
            key: AeadKey::new(dek),
            aad: seg_aad(path),
        })
    }

    /// Parses a header read from the object at `path` and unwraps its data key.
    pub fn open(keys: &dyn KeyWrapper, path: &str, bytes: &[u8]) -> Result<Self, FormatError> {
        let header: [u8; HEADER_LEN] = bytes
            .get(..HEADER_LEN)
            .and_then(|h| h.try_into().ok())
            .ok_or(FormatError::TooShort(bytes.len() as u64))?;
        if &header[..6] != MAGIC {
            return Err(FormatError::BadMagic);
        }
        if header[6] != VERSION || header[7] != ALG_AES256GCM_STREAM {
            return Err(FormatError::Unsupported {
                version: header[6],
                alg: header[7],
            });
        }
        let mut seg = [0u8; 4];
        seg.copy_from_slice(&header[8..12]);
        let segment = u32::from_be_bytes(seg);
        if !(1024..=(16 << 20)).contains(&segment) || header[19] != 0 {
            return Err(FormatError::BadSegmentSize(segment));
        }
        let mut nonce_prefix = [0u8; NONCE_PREFIX_LEN];
        nonce_prefix.copy_from_slice(&header[12..19]);
        let mut id = [0u8; 16];
        id.copy_from_slice(&header[20..36]);
        let mut wrapped = [0u8; WRAPPED_KEY_LEN];
        wrapped.copy_from_slice(&header[36..]);
        let dek = keys
            .unwrap(&KeyId(id), &wrapped, &dek_aad(&header, path))
            .map_err(|e| FormatError::KeyUnwrap(e.to_string()))?;
        Ok(Self {
            header,
            segment,
            nonce_prefix,
            key: AeadKey::new(&dek),
            aad: seg_aad(path),
        })
    }

    /// The header bytes to write first.
    pub fn header(&self) -> &[u8; HEADER_LEN] {
        &self.header
    }

    /// Segment geometry.
    pub fn layout(&self) -> Layout {
        Layout {
            segment: self.segment as u64,
        }
    }

    fn nonce(&self, index: u64, last: bool) -> Result<[u8; 12], FormatError> {
        let idx = u32::try_from(index).map_err(|_| FormatError::Segment(index))?;
        let mut n = [0u8; 12];
        n[..7].copy_from_slice(&self.nonce_prefix);
        n[7..11].copy_from_slice(&idx.to_be_bytes());
        n[11] = last as u8;
        Ok(n)
    }

    /// Encrypts one segment's plaintext, appending ciphertext and tag to `out`.
    pub fn seal_segment(
        &self,
        index: u64,
        last: bool,
        plain: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), FormatError> {
        let nonce = self.nonce(index, last)?;
        let start = out.len();
        out.extend_from_slice(plain);
        let tag = self.key.seal(nonce, &self.aad, &mut out[start..]);
        out.extend_from_slice(&tag);
        Ok(())
    }

    /// Decrypts stored segments `first..` (as laid out contiguously in `stored`), where
    /// `total_segments` says which index is the final one. Appends plaintext to `out`.
    pub fn open_segments(
        &self,
        first: u64,
        total_segments: u64,
        stored: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), FormatError> {
        let start = out.len();
        out.extend_from_slice(stored);
        let n = self.open_segments_in_place(first, total_segments, &mut out[start..])?;
        out.truncate(start + n);
        Ok(())
    }

    /// Decrypts stored segments `first..` laid out contiguously from the start of `buf`, in
    /// place: the plaintext ends up packed at the front of `buf` (each segment's tag
    /// squeezed out as it is decrypted), and its length is returned. No second buffer.
    pub fn open_segments_in_place(
        &self,
        first: u64,
        total_segments: u64,
        buf: &mut [u8],
    ) -> Result<usize, FormatError> {
        let step = self.layout().stored_segment() as usize;
        let (mut at, mut plain, mut index) = (0usize, 0usize, first);
        while at < buf.len() {
            let end = (at + step).min(buf.len());
            let n = (end - at)
                .checked_sub(TAG_LEN)
                .ok_or(FormatError::Segment(index))?;
            let mut tag = [0u8; TAG_LEN];
            tag.copy_from_slice(&buf[at + n..end]);
            let nonce = self.nonce(index, index + 1 == total_segments)?;
            self.key
                .open_shifted(nonce, &self.aad, &mut buf[plain..at + n], at - plain, &tag)
                .map_err(|_| FormatError::Segment(index))?;
            plain += n;
            at = end;
            index += 1;
        }
        Ok(plain)
    }
}
