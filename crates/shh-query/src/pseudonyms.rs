//! Per-project pseudonyms and per-hub record keys, as functions the views call.
//!
//! Disclosure control needs one stable secret *record key* per patient per hub, so that two
//! projects cannot average different noise on one cell; a project needs pseudonyms of its own,
//! so that two projects' outputs do not join, and neither joins to the hub's stored
//! pseudonyms. Both come from one keyed permutation each (AES-256, keys derived by the hub):
//!
//! - the patient's *record block* `X = AES(K_record, hub pseudonym)` (the hub pseudonym's 16
//!   bytes; a value that is not a hub pseudonym goes through an HMAC first), whose first 8
//!   bytes are the record key;
//! - the project pseudonym `AES(K_project, X)`, as 22 characters of base64url.
//!
//! A permutation can be undone by whoever holds its key, so the record key comes back from the
//! project pseudonym alone (`AES⁻¹(K_project, p)`), with no table of patients: the disclosure
//! rules read it from the view's patient column wherever the query carried it (through joins
//! and subqueries). Without the keys, a project pseudonym says no more than an HMAC would:
//! another project's pseudonym of the same patient is under another key, the hub's pseudonym
//! is two permutations away. Neither function is registered by name: SQL cannot call them,
//! only the plans the hub builds.

use aes::Aes256;
use aes::cipher::{BlockDecrypt, BlockEncrypt, KeyInit};
use arrow::array::{Array, ArrayRef, StringArray, StringBuilder, UInt64Builder};
use arrow::datatypes::{DataType, Field, FieldRef};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use datafusion::common::{DataFusionError, Result};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};
use shh_pseudo::Pseudonymizer;
use shh_pseudo::pseudonym::PSEUDONYM_LEN;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// The name of the view's pseudonym function (not in any session's registry).
pub const PROJECT_PSEUDONYM: &str = "project_pseudonym";

/// Field metadata marking the patient column of a view (set only by [`Pseudonyms`]).
pub const PATIENT: &str = "shh.patient";

type Block = [u8; 16];

/// The keys of one query: the project's pseudonym key and the hub's record key.
pub struct Pseudonyms {
    project: Aes256,
    record: Aes256,
    /// For a value that is not a hub pseudonym (not 16 bytes of base64url).
    other: Pseudonymizer,
}

impl std::fmt::Debug for Pseudonyms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pseudonyms")
    }
}

impl Pseudonyms {
    /// Keys for one query: `project` (secret of the project) and `record` (secret of the hub).
    pub fn new(project: &[u8; 32], record: &[u8; 32]) -> Arc<Self> {
        Arc::new(Self {
            project: Aes256::new(project.into()),
            record: Aes256::new(record.into()),
            other: Pseudonymizer::new(0, record),
        })
    }

    /// The record block of a hub pseudonym.
    fn record_block(&self, hub: &str) -> Block {
        let mut b: Block = [0; 16];
        let decoded = hub.len() == PSEUDONYM_LEN
            && URL_SAFE_NO_PAD.decode_slice(hub, &mut b).ok() == Some(16);
        if !decoded {
            let mac = self.other.mac(hub.as_bytes());
            b.copy_from_slice(&mac[..16]);
        }
        self.record.encrypt_block((&mut b).into());
        b
    }

    fn key_of(block: &Block) -> u64 {
        let mut k = [0u8; 8];
        k.copy_from_slice(&block[..8]);
        u64::from_le_bytes(k)
    }

    /// The project pseudonym of a hub pseudonym, appended to `out`.
    fn project_pseudonym_into(&self, hub: &str, out: &mut String) {
        let mut b = self.record_block(hub);
        self.project.encrypt_block((&mut b).into());
        let mut buf = [0u8; PSEUDONYM_LEN];
        // 16 bytes always encode to exactly 22 characters.
        let n = URL_SAFE_NO_PAD.encode_slice(b, &mut buf).unwrap_or(0);
        out.extend(buf[..n].iter().map(|&c| c as char));
    }

    /// The project pseudonym of a hub pseudonym.
    pub fn project_pseudonym(&self, hub: &str) -> String {
        let mut out = String::with_capacity(PSEUDONYM_LEN);
        self.project_pseudonym_into(hub, &mut out);
        out
    }

    /// The record key of a hub pseudonym.
    pub fn record_key(&self, hub: &str) -> u64 {
        Self::key_of(&self.record_block(hub))
    }

    /// The record key behind a project pseudonym; `None` for a value that is not one.
    pub fn record_key_of_project(&self, pseudonym: &str) -> Option<u64> {
        let mut b: Block = [0; 16];
        if pseudonym.len() != PSEUDONYM_LEN
            || URL_SAFE_NO_PAD.decode_slice(pseudonym, &mut b).ok() != Some(16)
        {
            return None;
        }
        self.project.decrypt_block((&mut b).into());
        Some(Self::key_of(&b))
    }

    /// The function a view maps an identifier column through; `patient` marks the column
    /// disclosure control counts patients by.
    pub fn udf(self: &Arc<Self>, patient: bool) -> Arc<ScalarUDF> {
        Arc::new(ScalarUDF::new_from_impl(ProjectPseudonym {
            keys: self.clone(),
            patient,
            signature: Signature::string(1, Volatility::Immutable),
        }))
    }

    /// The function from a project pseudonym (of a patient column) to its record key.
    pub fn record_key_udf(self: &Arc<Self>) -> Arc<ScalarUDF> {
        Arc::new(ScalarUDF::new_from_impl(RecordKey {
            keys: self.clone(),
            signature: Signature::string(1, Volatility::Immutable),
        }))
    }
}

fn strings(v: &ColumnarValue, rows: usize) -> Result<StringArray> {
    let a = v.to_array(rows)?;
    let a = arrow::compute::cast(&a, &DataType::Utf8)?;
    a.as_any()
        .downcast_ref::<StringArray>()
        .cloned()
        .ok_or_else(|| DataFusionError::Internal("a pseudonym column is not text".into()))
}

#[derive(Debug)]
struct ProjectPseudonym {
    keys: Arc<Pseudonyms>,
    patient: bool,
    signature: Signature,
}

impl PartialEq for ProjectPseudonym {
    fn eq(&self, o: &Self) -> bool {
        Arc::ptr_eq(&self.keys, &o.keys) && self.patient == o.patient
    }
}
impl Eq for ProjectPseudonym {}
impl Hash for ProjectPseudonym {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (Arc::as_ptr(&self.keys) as usize).hash(state);
        self.patient.hash(state);
    }
}

impl ScalarUDFImpl for ProjectPseudonym {
    fn name(&self) -> &str {
        PROJECT_PSEUDONYM
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let nullable = args.arg_fields.first().is_none_or(|f| f.is_nullable());
        let mut f = Field::new(self.name(), DataType::Utf8, nullable);
        if self.patient {
            f = f.with_metadata(HashMap::from([(PATIENT.to_owned(), "true".to_owned())]));
        }
        Ok(Arc::new(f))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let Some(arg) = args.args.first() else {
            return Err(DataFusionError::Internal("no argument".into()));
        };
        let input = strings(arg, args.number_rows)?;
        let mut out = StringBuilder::with_capacity(input.len(), input.len() * PSEUDONYM_LEN);
        // Rows of one patient follow each other: one derivation per run, not per row.
        let mut last: Option<(&str, String)> = None;
        for v in input.iter() {
            match v {
                None => out.append_null(),
                Some(hub) => {
                    if let Some((h, p)) = &last
                        && *h == hub
                    {
                        out.append_value(p);
                        continue;
                    }
                    let mut p = String::with_capacity(PSEUDONYM_LEN);
                    self.keys.project_pseudonym_into(hub, &mut p);
                    out.append_value(&p);
                    last = Some((hub, p));
                }
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish()) as ArrayRef))
    }
}

#[derive(Debug)]
struct RecordKey {
    keys: Arc<Pseudonyms>,
    signature: Signature,
}

impl PartialEq for RecordKey {
    fn eq(&self, o: &Self) -> bool {
        Arc::ptr_eq(&self.keys, &o.keys)
    }
}
impl Eq for RecordKey {}
impl Hash for RecordKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (Arc::as_ptr(&self.keys) as usize).hash(state);
    }
}

impl ScalarUDFImpl for RecordKey {
    fn name(&self) -> &str {
        "record_key"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::UInt64)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let Some(arg) = args.args.first() else {
            return Err(DataFusionError::Internal("no argument".into()));
        };
        let input = strings(arg, args.number_rows)?;
        let mut out = UInt64Builder::with_capacity(input.len());
        let mut last: Option<(&str, u64)> = None;
        for v in input.iter() {
            match v {
                None => out.append_null(),
                Some(p) => {
                    if let Some((q, k)) = last
                        && q == p
                    {
                        out.append_value(k);
                        continue;
                    }
                    // Only the view's own pseudonyms reach here (the shape rule sees to it);
                    // a value that is not one is an error, never a patient.
                    let k = self.keys.record_key_of_project(p).ok_or_else(|| {
                        DataFusionError::Internal(
                            "a patient value the permit's view did not produce".into(),
                        )
                    })?;
                    out.append_value(k);
                    last = Some((p, k));
                }
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish()) as ArrayRef))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn the_record_key_comes_back_from_the_project_pseudonym(
            raw in proptest::array::uniform16(any::<u8>()),
            other in "[a-zA-Z0-9 _-]{0,40}",
            p in proptest::array::uniform32(any::<u8>()),
            q in proptest::array::uniform32(any::<u8>()),
        ) {
            let record = [3u8; 32];
            let (a, b) = (Pseudonyms::new(&p, &record), Pseudonyms::new(&q, &record));
            for hub in [URL_SAFE_NO_PAD.encode(raw), other] {
                let (pa, pb) = (a.project_pseudonym(&hub), b.project_pseudonym(&hub));
                prop_assert_eq!(pa.len(), PSEUDONYM_LEN);
                // One record key per hub, whichever project asks.
                prop_assert_eq!(a.record_key_of_project(&pa), Some(a.record_key(&hub)));
                prop_assert_eq!(b.record_key_of_project(&pb), Some(a.record_key(&hub)));
                if p != q {
                    prop_assert_ne!(&pa, &pb);
                }
                prop_assert_ne!(&pa, &hub);
            }
        }

        #[test]
        fn a_value_that_is_not_a_project_pseudonym_has_no_record_key(v in "[a-zA-Z0-9+/=_-]{0,40}") {
            let k = Pseudonyms::new(&[1; 32], &[2; 32]);
            let decodes = v.len() == PSEUDONYM_LEN
                && URL_SAFE_NO_PAD.decode(&v).is_ok_and(|b| b.len() == 16);
            prop_assert_eq!(k.record_key_of_project(&v).is_some(), decodes);
        }
    }
}
