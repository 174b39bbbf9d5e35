//! Per-project pseudonyms and per-hub record keys, as functions the views call.
//!
//! Inside a project a patient is `HMAC(K_project, hub pseudonym)`: two projects' outputs do not
//! join, and neither joins to the hub's stored pseudonyms. Disclosure control needs the
//! opposite: one stable secret *record key* per patient per hub (`HMAC(K_record, hub
//! pseudonym)`), so that two projects cannot average different noise on one cell. The view's
//! pseudonym function computes both and remembers, for this query only, which record key
//! stands behind each project pseudonym; the disclosure rules look it up. Neither function is
//! registered by name: SQL cannot call them, only the plans the hub builds.

use arrow::array::{Array, ArrayRef, StringArray, StringBuilder, UInt64Builder};
use arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{DataFusionError, Result};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};
use shh_pseudo::Pseudonymizer;
use shh_pseudo::pseudonym::PSEUDONYM_LEN;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::{Arc, Mutex};

/// A project pseudonym's bytes (the record keys' table is keyed by them, not by `String`s:
/// no allocation per patient).
type Key = [u8; PSEUDONYM_LEN];

/// A hasher for pseudonyms, which are already uniform (keyed-hash output, base64): folding
/// their words is enough, and much cheaper than SipHash. No one can choose a pseudonym to
/// collide, since they are made under a key nobody but the hub holds.
#[derive(Default)]
struct Fold(u64);

impl Hasher for Fold {
    fn write(&mut self, bytes: &[u8]) {
        for c in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..c.len()].copy_from_slice(c);
            self.0 = (self.0 ^ u64::from_le_bytes(w)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    fn finish(&self) -> u64 {
        self.0 ^ (self.0 >> 29)
    }
}

type RecordKeys = HashMap<Key, u64, BuildHasherDefault<Fold>>;

/// The name of the view's pseudonym function (not in any session's registry).
pub const PROJECT_PSEUDONYM: &str = "project_pseudonym";

/// Field metadata marking the patient column of a view (set only by [`Pseudonyms`]).
pub const PATIENT: &str = "shh.patient";

/// The keys of one query: the project's pseudonym key and the hub's record key.
pub struct Pseudonyms {
    project: Pseudonymizer,
    record: Pseudonymizer,
    keys: Mutex<RecordKeys>,
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
            project: Pseudonymizer::new(0, project),
            record: Pseudonymizer::new(0, record),
            keys: Mutex::new(RecordKeys::default()),
        })
    }

    /// The project pseudonym of a hub pseudonym.
    pub fn project_pseudonym(&self, hub: &str) -> String {
        let mut out = String::with_capacity(shh_pseudo::pseudonym::PSEUDONYM_LEN);
        self.project.derive_into(hub.as_bytes(), &mut out);
        out
    }

    /// The record key of a hub pseudonym.
    pub fn record_key(&self, hub: &str) -> u64 {
        let mac = self.record.mac(hub.as_bytes());
        let mut b = [0u8; 8];
        b.copy_from_slice(&mac[..8]);
        u64::from_le_bytes(b)
    }

    /// The function a view maps an identifier column through; `patient` marks the column
    /// disclosure control counts patients by (and makes the function remember record keys).
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
        let mut out = StringBuilder::with_capacity(input.len(), input.len() * 22);
        let mut learned = Vec::new();
        // Rows of one patient follow each other: one HMAC per run, not per row.
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
                    let p = self.keys.project_pseudonym(hub);
                    if self.patient
                        && let Ok(k) = Key::try_from(p.as_bytes())
                    {
                        learned.push((k, self.keys.record_key(hub)));
                    }
                    out.append_value(&p);
                    last = Some((hub, p));
                }
            }
        }
        if !learned.is_empty() {
            let mut keys = self
                .keys
                .keys
                .lock()
                .map_err(|_| DataFusionError::Internal("record keys poisoned".into()))?;
            keys.extend(learned);
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
        let keys = self
            .keys
            .keys
            .lock()
            .map_err(|_| DataFusionError::Internal("record keys poisoned".into()))?;
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
                    // Only the view's own pseudonyms have keys: anything else is not a patient.
                    let k = Key::try_from(p.as_bytes())
                        .ok()
                        .and_then(|b| keys.get(&b))
                        .copied()
                        .ok_or_else(|| {
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
