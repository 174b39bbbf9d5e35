//! The test vectors published in `docs/format.md`: the document is checked against the code, so
//! the two cannot drift apart. With SHH_PRINT_VECTORS=1 the vectors are printed instead.

use shh_crypt::format::{DEFAULT_SEGMENT, ObjectKey};
use shh_crypt::{SegmentDecryptor, SegmentEncryptor};
use shh_keys::{
    AeadKey, DataKey, KEY_LEN, KeyId, KeyWrapper, NONCE_LEN, WRAPPED_KEY_LEN, WrapError,
};
use std::sync::Arc;

/// A key wrapper with a fixed wrap nonce: only for reproducible vectors.
#[derive(Debug)]
struct Fixed {
    id: KeyId,
    key: AeadKey,
    nonce: [u8; NONCE_LEN],
}

impl KeyWrapper for Fixed {
    fn current_key_id(&self) -> KeyId {
        self.id
    }
    fn wrap(&self, k: &[u8; KEY_LEN], aad: &[u8]) -> Result<[u8; WRAPPED_KEY_LEN], WrapError> {
        let mut body = *k;
        let tag = self.key.seal(self.nonce, aad, &mut body);
        let mut out = [0u8; WRAPPED_KEY_LEN];
        out[..12].copy_from_slice(&self.nonce);
        out[12..44].copy_from_slice(&body);
        out[44..].copy_from_slice(&tag);
        Ok(out)
    }
    fn unwrap(
        &self,
        id: &KeyId,
        w: &[u8; WRAPPED_KEY_LEN],
        aad: &[u8],
    ) -> Result<DataKey, WrapError> {
        if *id != self.id {
            return Err(WrapError::UnknownKey(*id));
        }
        shh_keys::open_blob::<KEY_LEN>(&self.key, w, aad).map_err(|_| WrapError::Unauthentic(*id))
    }
}

struct Vector {
    name: &'static str,
    segment: u32,
    path: &'static str,
    plaintext: Vec<u8>,
}

fn vectors() -> Vec<Vector> {
    vec![
        Vector {
            name: "one-segment",
            segment: DEFAULT_SEGMENT,
            path: "datasets/demo/data/a.parquet",
            plaintext: b"shh test vector".to_vec(),
        },
        Vector {
            name: "empty",
            segment: DEFAULT_SEGMENT,
            path: "empty",
            plaintext: Vec::new(),
        },
        Vector {
            name: "three-segments",
            segment: 1024,
            path: "x/y",
            plaintext: (0..2053u32).map(|i| (i % 251) as u8).collect(),
        },
    ]
}

fn fixed() -> Arc<Fixed> {
    Arc::new(Fixed {
        id: KeyId([0x11; 16]),
        key: AeadKey::new(&[0x22; KEY_LEN]),
        nonce: [0x33; NONCE_LEN],
    })
}

fn encode(v: &Vector) -> Vec<u8> {
    let dek: DataKey = zeroize::Zeroizing::new([0x44; KEY_LEN]);
    let key =
        ObjectKey::with_key(fixed().as_ref(), v.path, v.segment, &dek, [0x55; 7]).expect("key");
    let mut out = Vec::new();
    let mut enc = SegmentEncryptor::new(key);
    enc.push(&v.plaintext, &mut out).expect("seal");
    enc.finish(&mut out).expect("seal");
    out
}

#[test]
fn vectors_match_docs_and_decrypt() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/format.md"))
        .expect("docs/format.md");
    let print = std::env::var("SHH_PRINT_VECTORS").is_ok();
    for v in vectors() {
        let obj = encode(&v);
        let keys: Arc<dyn KeyWrapper> = fixed();
        let mut dec = SegmentDecryptor::new(keys, v.path, obj.len() as u64);
        let mut out = Vec::new();
        dec.push(&obj, &mut out).expect("decrypt");
        dec.finish().expect("finish");
        assert_eq!(out, v.plaintext, "{}", v.name);
        let line_hash = format!(
            "{}: blake3(object) = {}",
            v.name,
            blake3::hash(&obj).to_hex()
        );
        let line_len = format!("{}: object length = {}", v.name, obj.len());
        if print {
            println!("{line_len}\n{line_hash}");
            if obj.len() < 200 {
                println!("{}: object = {}", v.name, hex::encode(&obj));
            }
            continue;
        }
        assert!(
            doc.contains(&line_hash),
            "docs/format.md lacks `{line_hash}`"
        );
        assert!(doc.contains(&line_len), "docs/format.md lacks `{line_len}`");
        if obj.len() < 200 {
            let line = format!("{}: object = {}", v.name, hex::encode(&obj));
            assert!(doc.contains(&line), "docs/format.md lacks `{line}`");
        }
    }
}
