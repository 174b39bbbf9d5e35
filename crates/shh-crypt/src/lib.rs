//! Client-side encryption for the hub's object store.
//!
//! Everything the hub writes (Parquet files, manifests, audit segments, exports) passes
//! through [`EncryptedStore`], so the cloud that holds the bytes sees only ciphertext and never
//! a key. The object format is in [`format`] and documented with test vectors in
//! `docs/format.md`.

#![forbid(unsafe_code)]

pub mod format;
mod store;
mod stream;

pub use format::{FormatError, Layout, ObjectKey};
pub use store::{EncryptedStore, EncryptedWriter, IntegrityError, PART_SIZE, integrity_error};
pub use stream::{ObjectDigest, SegmentDecryptor, SegmentEncryptor};
