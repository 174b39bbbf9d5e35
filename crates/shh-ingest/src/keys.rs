//! Key hashing shared by primary-key, `unique` and foreign-key checks: a row's key is the
//! BLAKE3 (first 128 bits) of its columns' canonical forms, length-prefixed. Text is its bytes
//! and integers their decimal digits, so a key typed `integer` in one table and `string` in
//! another compare equal when the digits are equal; dates and timestamps are their day or
//! microsecond numbers, booleans `true`/`false`.

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{
    Date32Type, Float64Type, Int32Type, Int64Type, TimeUnit, TimestampMicrosecondType,
};
use arrow::record_batch::RecordBatch;
use arrow_schema::DataType;
use std::collections::HashSet;
use std::sync::Arc;

/// The keys a foreign key may point to.
pub type FkSet = Arc<HashSet<u128>>;

enum Col<'a> {
    Text(&'a arrow::array::StringArray),
    I64(&'a arrow::array::PrimitiveArray<Int64Type>),
    I32(&'a arrow::array::PrimitiveArray<Int32Type>),
    Date(&'a arrow::array::PrimitiveArray<Date32Type>),
    Ts(&'a arrow::array::PrimitiveArray<TimestampMicrosecondType>),
    F64(&'a arrow::array::PrimitiveArray<Float64Type>),
    Bool(&'a arrow::array::BooleanArray),
    /// Anything else, cast to text once.
    Cast(ArrayRef),
}

impl<'a> Col<'a> {
    fn new(a: &'a ArrayRef) -> Self {
        match a.data_type() {
            DataType::Utf8 => Col::Text(a.as_string::<i32>()),
            DataType::Int64 => Col::I64(a.as_primitive()),
            DataType::Int32 => Col::I32(a.as_primitive()),
            DataType::Date32 => Col::Date(a.as_primitive()),
            DataType::Timestamp(TimeUnit::Microsecond, _) => Col::Ts(a.as_primitive()),
            DataType::Float64 => Col::F64(a.as_primitive()),
            DataType::Boolean => Col::Bool(a.as_boolean()),
            _ => Col::Cast(
                arrow::compute::cast(a, &DataType::Utf8)
                    .unwrap_or_else(|_| arrow::array::new_null_array(&DataType::Utf8, a.len())),
            ),
        }
    }

    /// Appends row `r`'s canonical form; `false` if it is null.
    fn encode(&self, r: usize, buf: &mut Vec<u8>) -> bool {
        let mut int = itoa::Buffer::new();
        let bytes: &[u8] = match self {
            Col::Text(a) if a.is_valid(r) => a.value(r).as_bytes(),
            Col::I64(a) if a.is_valid(r) => int.format(a.value(r)).as_bytes(),
            Col::I32(a) if a.is_valid(r) => int.format(a.value(r)).as_bytes(),
            Col::Date(a) if a.is_valid(r) => int.format(a.value(r)).as_bytes(),
            Col::Ts(a) if a.is_valid(r) => int.format(a.value(r)).as_bytes(),
            Col::F64(a) if a.is_valid(r) => {
                let s = a.value(r).to_string();
                buf.extend_from_slice(&(s.len() as u32).to_le_bytes());
                buf.extend_from_slice(s.as_bytes());
                return true;
            }
            Col::Bool(a) if a.is_valid(r) => {
                if a.value(r) {
                    b"true"
                } else {
                    b"false"
                }
            }
            Col::Cast(a) if a.is_valid(r) => a.as_string::<i32>().value(r).as_bytes(),
            _ => return false,
        };
        buf.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        buf.extend_from_slice(bytes);
        true
    }
}

/// Hashes of the key formed by `cols` for every row; `None` where a key column is null.
pub fn key_hashes(batch: &RecordBatch, cols: &[usize]) -> Vec<Option<u128>> {
    let arrays: Vec<ArrayRef> = cols.iter().map(|&i| batch.column(i).clone()).collect();
    key_hashes_of(&arrays, batch.num_rows())
}

/// Hashes of the key formed by `arrays` (each `rows` long) for every row; `None` where a key
/// column is null.
pub fn key_hashes_of(arrays: &[ArrayRef], rows: usize) -> Vec<Option<u128>> {
    let columns: Vec<Col<'_>> = arrays.iter().map(Col::new).collect();
    let mut buf = Vec::with_capacity(128);
    (0..rows)
        .map(|r| {
            buf.clear();
            for c in &columns {
                if !c.encode(r, &mut buf) {
                    return None;
                }
            }
            let h = blake3::hash(&buf);
            let mut out = [0u8; 16];
            out.copy_from_slice(&h.as_bytes()[..16]);
            Some(u128::from_le_bytes(out))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow_schema::{Field, Schema};

    #[test]
    fn integer_and_text_keys_compare_by_digits() {
        let ints = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, true)])),
            vec![Arc::new(Int64Array::from(vec![Some(7), None, Some(12)]))],
        )
        .expect("batch");
        let texts = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("a", DataType::Utf8, true)])),
            vec![Arc::new(StringArray::from(vec!["7", "x", "1"]))],
        )
        .expect("batch");
        let a = key_hashes(&ints, &[0]);
        let b = key_hashes(&texts, &[0]);
        assert_eq!(a[0], b[0]);
        assert_eq!(a[1], None);
        assert_ne!(a[2], b[2]);
    }
}
