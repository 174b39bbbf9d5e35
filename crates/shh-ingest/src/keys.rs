//! Key hashing shared by primary-key, `unique` and foreign-key checks: a row's key is the
//! BLAKE3 (first 128 bits) of its columns' text forms, so a key typed `integer` in one table
//! and `string` in another still compares equal when the text is equal.

use arrow::array::{Array, AsArray};
use arrow::record_batch::RecordBatch;
use arrow_schema::DataType;
use std::collections::HashSet;
use std::sync::Arc;

/// The keys a foreign key may point to.
pub type FkSet = Arc<HashSet<u128>>;

/// Hashes of the key formed by `cols` for every row; `None` where a key column is null.
pub fn key_hashes(batch: &RecordBatch, cols: &[usize]) -> Vec<Option<u128>> {
    let texts: Vec<_> = cols
        .iter()
        .map(|&i| {
            arrow::compute::cast(batch.column(i), &DataType::Utf8)
                .unwrap_or_else(|_| arrow::array::new_null_array(&DataType::Utf8, batch.num_rows()))
        })
        .collect();
    let strs: Vec<_> = texts.iter().map(|a| a.as_string::<i32>()).collect();
    (0..batch.num_rows())
        .map(|r| {
            let mut h = blake3::Hasher::new();
            for s in &strs {
                if s.is_null(r) {
                    return None;
                }
                let v = s.value(r);
                h.update(&(v.len() as u64).to_le_bytes());
                h.update(v.as_bytes());
            }
            let mut out = [0u8; 16];
            out.copy_from_slice(&h.finalize().as_bytes()[..16]);
            Some(u128::from_le_bytes(out))
        })
        .collect()
}
