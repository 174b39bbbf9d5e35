//! Push-based segment encryption and decryption. The store's put, multipart upload, streaming
//! get and verification all drive these two state machines, so the format logic lives once.

use crate::format::{FormatError, HEADER_LEN, Layout, ObjectKey};
use shh_keys::KeyWrapper;
use std::sync::Arc;

/// BLAKE3 digests and lengths of an object's plaintext and of its stored bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectDigest {
    /// Plaintext length.
    pub plain_len: u64,
    /// BLAKE3 of the plaintext.
    pub plain_blake3: [u8; 32],
    /// Stored (ciphertext) length.
    pub stored_len: u64,
    /// BLAKE3 of the stored bytes.
    pub stored_blake3: [u8; 32],
}

/// Encrypts a plaintext pushed in pieces of any size.
///
/// A full segment is held back until more data arrives, because only `finish` knows which
/// segment is the last one and must carry the final flag.
#[derive(Debug)]
pub struct SegmentEncryptor {
    key: ObjectKey,
    segment: usize,
    index: u64,
    held: Vec<u8>,
    header_done: bool,
    /// Plaintext and stored-bytes hashers, when the caller records digests (manifests do).
    digests: Option<(blake3::Hasher, blake3::Hasher)>,
    plain_len: u64,
    stored_len: u64,
}

impl SegmentEncryptor {
    /// Starts an object with a fresh header; [`SegmentEncryptor::finish`] reports lengths and
    /// zero hashes.
    pub fn new(key: ObjectKey) -> Self {
        let segment = key.layout().segment as usize;
        Self {
            key,
            segment,
            index: 0,
            held: Vec::with_capacity(segment),
            header_done: false,
            digests: None,
            plain_len: 0,
            stored_len: 0,
        }
    }

    /// Like [`SegmentEncryptor::new`], also hashing the plaintext and the stored bytes with
    /// BLAKE3 (two passes that cost more than the encryption: only where they are recorded).
    pub fn with_digests(key: ObjectKey) -> Self {
        Self {
            digests: Some((blake3::Hasher::new(), blake3::Hasher::new())),
            ..Self::new(key)
        }
    }

    fn header(&mut self, out: &mut Vec<u8>) {
        if !self.header_done {
            out.extend_from_slice(self.key.header());
            self.header_done = true;
        }
    }

    fn seal(&mut self, plain: &[u8], last: bool, out: &mut Vec<u8>) -> Result<(), FormatError> {
        self.key.seal_segment(self.index, last, plain, out)?;
        self.index += 1;
        Ok(())
    }

    /// Encrypts what is complete of `data`, appending stored bytes to `out`.
    pub fn push(&mut self, mut data: &[u8], out: &mut Vec<u8>) -> Result<(), FormatError> {
        let start = out.len();
        self.header(out);
        if let Some((plain, _)) = self.digests.as_mut() {
            plain.update(data);
        }
        self.plain_len += data.len() as u64;
        let seg = self.segment;
        if !self.held.is_empty() {
            let take = (seg - self.held.len()).min(data.len());
            self.held.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.held.len() == seg && !data.is_empty() {
                let held = std::mem::take(&mut self.held);
                self.seal(&held, false, out)?;
                self.held = held;
                self.held.clear();
            }
        }
        while data.len() > seg {
            self.seal(&data[..seg], false, out)?;
            data = &data[seg..];
        }
        self.held.extend_from_slice(data);
        self.account(&out[start..]);
        Ok(())
    }

    /// Seals the last segment, appending it to `out`, and returns the digests.
    pub fn finish(mut self, out: &mut Vec<u8>) -> Result<ObjectDigest, FormatError> {
        let start = out.len();
        self.header(out);
        let held = std::mem::take(&mut self.held);
        self.seal(&held, true, out)?;
        self.account(&out[start..]);
        let (plain_blake3, stored_blake3) = match self.digests {
            Some((p, s)) => (*p.finalize().as_bytes(), *s.finalize().as_bytes()),
            None => ([0; 32], [0; 32]),
        };
        Ok(ObjectDigest {
            plain_len: self.plain_len,
            plain_blake3,
            stored_len: self.stored_len,
            stored_blake3,
        })
    }

    fn account(&mut self, emitted: &[u8]) {
        if let Some((_, stored)) = self.digests.as_mut() {
            stored.update(emitted);
        }
        self.stored_len += emitted.len() as u64;
    }
}

/// Decrypts a whole stored object pushed in pieces of any size, in order.
///
/// Reads ([`SegmentDecryptor::new`]) only authenticate and decrypt; verification
/// ([`SegmentDecryptor::with_digests`]) also hashes both byte streams, which costs more than
/// the decryption itself.
pub struct SegmentDecryptor {
    keys: Arc<dyn KeyWrapper>,
    path: String,
    stored_total: u64,
    key: Option<ObjectKey>,
    layout: Option<Layout>,
    total_segments: u64,
    index: u64,
    pending: Vec<u8>,
    consumed: u64,
    digests: Option<(blake3::Hasher, blake3::Hasher)>,
    plain_len: u64,
}

impl SegmentDecryptor {
    /// Decrypts the object at `path`, whose stored length is `stored_total`.
    pub fn new(keys: Arc<dyn KeyWrapper>, path: &str, stored_total: u64) -> Self {
        Self {
            keys,
            path: path.to_owned(),
            stored_total,
            key: None,
            layout: None,
            total_segments: 0,
            index: 0,
            pending: Vec::new(),
            consumed: 0,
            digests: None,
            plain_len: 0,
        }
    }

    /// Like [`SegmentDecryptor::new`], and [`SegmentDecryptor::finish`] also reports the
    /// BLAKE3 of the stored bytes and of the plaintext.
    pub fn with_digests(keys: Arc<dyn KeyWrapper>, path: &str, stored_total: u64) -> Self {
        Self {
            digests: Some((blake3::Hasher::new(), blake3::Hasher::new())),
            ..Self::new(keys, path, stored_total)
        }
    }

    fn next_len(&self) -> usize {
        match self.layout {
            None => HEADER_LEN,
            Some(l) => {
                let remaining = self.stored_total - self.consumed;
                remaining.min(l.stored_segment()) as usize
            }
        }
    }

    fn done(&self) -> bool {
        self.layout.is_some() && self.index == self.total_segments
    }

    /// Feeds stored bytes; appends the plaintext of every segment completed to `out`.
    /// Whole segments are decrypted straight from `data`; only a piece cut off at the end
    /// of a chunk is copied aside until the rest arrives.
    pub fn push(&mut self, mut data: &[u8], out: &mut Vec<u8>) -> Result<(), FormatError> {
        if let Some((stored, _)) = self.digests.as_mut() {
            stored.update(data);
        }
        if !self.pending.is_empty() {
            let need = self.next_len();
            let take = need.saturating_sub(self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.pending.len() < need {
                return Ok(());
            }
            let unit = std::mem::take(&mut self.pending);
            let r = self.unit(&unit, out);
            self.pending = unit;
            self.pending.clear();
            r?;
        }
        while !data.is_empty() {
            if self.done() {
                // More bytes than the length announced: someone appended.
                return Err(FormatError::Segment(self.index));
            }
            let need = self.next_len();
            if data.len() < need {
                self.pending.extend_from_slice(data);
                break;
            }
            self.unit(&data[..need], out)?;
            data = &data[need..];
        }
        Ok(())
    }

    /// One complete unit: the header, or the next segment.
    fn unit(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<(), FormatError> {
        match &self.key {
            None => {
                let key = ObjectKey::open(self.keys.as_ref(), &self.path, chunk)?;
                let layout = key.layout();
                let plain = layout.plain_len(self.stored_total)?;
                self.total_segments = layout.segments_for_plain(plain);
                self.layout = Some(layout);
                self.key = Some(key);
            }
            Some(key) => {
                let start = out.len();
                key.open_segments(self.index, self.total_segments, chunk, out)?;
                if let Some((_, plain)) = self.digests.as_mut() {
                    plain.update(&out[start..]);
                }
                self.plain_len += (out.len() - start) as u64;
                self.index += 1;
            }
        }
        self.consumed += chunk.len() as u64;
        Ok(())
    }

    /// Checks that the object ended where its length said and returns the digests (zero
    /// hashes unless made [`SegmentDecryptor::with_digests`]).
    pub fn finish(self) -> Result<ObjectDigest, FormatError> {
        if self.key.is_none() {
            return Err(FormatError::TooShort(
                self.consumed + self.pending.len() as u64,
            ));
        }
        if self.index != self.total_segments || !self.pending.is_empty() {
            return Err(FormatError::Segment(self.index));
        }
        let (stored_blake3, plain_blake3) = match self.digests {
            Some((s, p)) => (*s.finalize().as_bytes(), *p.finalize().as_bytes()),
            None => ([0; 32], [0; 32]),
        };
        Ok(ObjectDigest {
            plain_len: self.plain_len,
            plain_blake3,
            stored_len: self.consumed,
            stored_blake3,
        })
    }
}
