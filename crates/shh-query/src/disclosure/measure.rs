//! The aggregate every published value is computed by: per cell, each patient's contribution
//! (rows with a value, and the exact sum of the values in millionths), from which come the
//! patients behind the cell, its record-key cell key and sketch, its sum, and its largest
//! contributors. Sums are exact integers of millionths, added per patient and then in record-
//! key order, so the result does not depend on how rows were split between threads.

use super::iblt::Iblt;
use arrow::array::{Array, ArrayRef, AsArray, BinaryArray, Float64Array, UInt64Array};
use arrow::datatypes::{DataType, Field, FieldRef, Float64Type, UInt64Type};
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Signature, Volatility,
};
use std::collections::HashMap;
use std::sync::Arc;

/// What a patient contributes to a measure, as its sketch and cell key see it, and so which
/// patients stand behind it.
///
/// Counts of patients, counts of rows and sums are one family: each patient adds a number
/// (one; their rows; their values) and the cell's value is the total. The element of a
/// patient is their record key bound to that number, so cells of this family whose patients
/// add the same are the same cell whatever their kind (`count(*)` over one row per patient,
/// `count(DISTINCT patient)`, the `sum` of an indicator): a differencing pair cannot escape
/// the overlap rule by asking the same number in two ways.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// A count of patients: each adds one.
    Patients,
    /// A count of rows or a sum: each adds their rows or values; those adding zero are not
    /// behind it (a sum of one patient's flag must not pass as a sum over many).
    Additive,
    /// A mean: each patient's rows and sum.
    Mean,
    /// A count of distinct values: each patient's rows with a value.
    Distinct,
}

/// What every patient of a cell of the additive family adds when the cell counts patients.
pub const ONE: i128 = 1_000_000;

#[derive(Debug, Clone, Copy, Default)]
struct Contribution {
    rows: u64,
    micros: i128,
}

/// What a cell's measure is made of (the accumulator's result).
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Patients behind it.
    pub patients: u64,
    /// Patients with at least one value.
    pub valued: u64,
    /// Patients whose values do not sum to zero.
    pub nonzero: u64,
    /// Rows with a value.
    pub rows: u64,
    /// Sum of the values, millionths.
    pub micros: i128,
    /// The two largest patient contributions (absolute, millionths) and their total.
    pub top: [i128; 2],
    /// Total of the absolute patient contributions.
    pub total_abs: i128,
    /// The two largest patient row counts.
    pub top_rows: [u64; 2],
    /// XOR of the record keys behind it: a function of the set of patients only.
    pub key: u64,
    /// The sketch of the patients behind it.
    pub sketch: Iblt,
}

impl Summary {
    /// The sum as a number.
    pub fn sum(&self) -> f64 {
        self.micros as f64 / 1e6
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(160 + super::iblt::BYTES);
        for v in [self.patients, self.valued, self.nonzero, self.rows] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for v in [self.micros, self.top[0], self.top[1], self.total_abs] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for v in [self.top_rows[0], self.top_rows[1], self.key] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&self.sketch.to_bytes());
        out
    }

    /// Reads [`Summary`]'s bytes.
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        if b.len() != 4 * 8 + 4 * 16 + 3 * 8 + super::iblt::BYTES {
            return None;
        }
        let u = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[i..i + 8]);
            u64::from_le_bytes(w)
        };
        let l = |i: usize| {
            let mut w = [0u8; 16];
            w.copy_from_slice(&b[i..i + 16]);
            i128::from_le_bytes(w)
        };
        Some(Self {
            patients: u(0),
            valued: u(8),
            nonzero: u(16),
            rows: u(24),
            micros: l(32),
            top: [l(48), l(64)],
            total_abs: l(80),
            top_rows: [u(96), u(104)],
            key: u(112),
            sketch: Iblt::from_bytes(&b[120..])?,
        })
    }
}

/// The aggregate `measure(record_key, value)` under one [`Encoding`]. Never registered by
/// name: only the plans disclosure control builds call it. Its cell key and sketch are of
/// (patient, contribution) elements: two cells differ in the sketch by the patients whose
/// contribution differs, which is what a differencing attack changes (a patient left out,
/// or one of their rows).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Measure {
    encoding: Encoding,
    signature: Signature,
}

impl Measure {
    /// The aggregate function.
    pub fn udaf(encoding: Encoding) -> Arc<AggregateUDF> {
        Arc::new(AggregateUDF::new_from_impl(Self {
            encoding,
            signature: Signature::exact(
                vec![DataType::UInt64, DataType::Float64],
                Volatility::Immutable,
            ),
        }))
    }
}

impl AggregateUDFImpl for Measure {
    fn name(&self) -> &str {
        match self.encoding {
            Encoding::Patients => "shh_patients",
            Encoding::Additive => "shh_additive",
            Encoding::Mean => "shh_mean",
            Encoding::Distinct => "shh_distinct",
        }
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Binary)
    }
    fn accumulator(&self, _: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(Acc {
            encoding: self.encoding,
            patients: HashMap::new(),
        }))
    }
    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(
            format!("{}[patients]", args.name),
            DataType::Binary,
            true,
        ))])
    }
}

#[derive(Debug)]
struct Acc {
    encoding: Encoding,
    patients: HashMap<u64, Contribution>,
}

fn to_micros(v: f64) -> Result<i128> {
    if !v.is_finite() {
        return Err(DataFusionError::Execution(
            "a value to sum is not a finite number".into(),
        ));
    }
    // |v| < 1.7e38 / 1e6 holds for any f64 that is not absurd; beyond, the value saturates.
    Ok((v * 1e6).round() as i128)
}

impl Accumulator for Acc {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let [keys, vals] = values else {
            return Err(DataFusionError::Internal(
                "measure takes two arguments".into(),
            ));
        };
        let keys: &UInt64Array = keys.as_primitive::<UInt64Type>();
        let vals: &Float64Array = vals.as_primitive::<Float64Type>();
        for i in 0..keys.len() {
            if keys.is_null(i) || vals.is_null(i) {
                // A row without a patient or without a value adds nothing to this measure.
                continue;
            }
            let c = self.patients.entry(keys.value(i)).or_default();
            c.rows += 1;
            c.micros += to_micros(vals.value(i))?;
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let mut ordered: Vec<(u64, Contribution)> =
            self.patients.iter().map(|(k, c)| (*k, *c)).collect();
        ordered.sort_unstable_by_key(|(k, _)| *k);
        let mut s = Summary {
            patients: 0,
            valued: 0,
            nonzero: 0,
            rows: 0,
            micros: 0,
            top: [0, 0],
            total_abs: 0,
            top_rows: [0, 0],
            key: 0,
            sketch: Iblt::default(),
        };
        for (k, c) in &ordered {
            s.valued += 1;
            s.rows += c.rows;
            s.micros += c.micros;
            let a = c.micros.abs();
            s.total_abs += a;
            if a > s.top[0] {
                s.top = [a, s.top[0]];
            } else if a > s.top[1] {
                s.top[1] = a;
            }
            if c.rows > s.top_rows[0] {
                s.top_rows = [c.rows, s.top_rows[0]];
            } else if c.rows > s.top_rows[1] {
                s.top_rows[1] = c.rows;
            }
            if c.micros != 0 {
                s.nonzero += 1;
            }
            let e = match self.encoding {
                Encoding::Patients => Some(super::iblt::element(*k, 0, ONE)),
                Encoding::Additive => {
                    (c.micros != 0).then(|| super::iblt::element(*k, 0, c.micros))
                }
                Encoding::Mean => Some(super::iblt::element(*k, c.rows, c.micros)),
                Encoding::Distinct => Some(super::iblt::element(*k, c.rows, 0)),
            };
            if let Some(e) = e {
                s.patients += 1;
                s.key ^= e;
                s.sketch.insert(e, *k);
            }
        }
        Ok(ScalarValue::Binary(Some(s.to_bytes())))
    }

    fn size(&self) -> usize {
        std::mem::size_of::<Self>() + self.patients.capacity() * 40
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let mut out = Vec::with_capacity(self.patients.len() * 32);
        for (k, c) in &self.patients {
            out.extend_from_slice(&k.to_le_bytes());
            out.extend_from_slice(&c.rows.to_le_bytes());
            out.extend_from_slice(&c.micros.to_le_bytes());
        }
        Ok(vec![ScalarValue::Binary(Some(out))])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let [state] = states else {
            return Err(DataFusionError::Internal("measure has one state".into()));
        };
        let state: &BinaryArray = state.as_binary::<i32>();
        for b in state.iter().flatten() {
            if b.len() % 32 != 0 {
                return Err(DataFusionError::Internal(
                    "a measure's state is torn".into(),
                ));
            }
            for e in b.chunks_exact(32) {
                let mut w = [0u8; 8];
                w.copy_from_slice(&e[..8]);
                let k = u64::from_le_bytes(w);
                w.copy_from_slice(&e[8..16]);
                let rows = u64::from_le_bytes(w);
                let mut l = [0u8; 16];
                l.copy_from_slice(&e[16..32]);
                let c = self.patients.entry(k).or_default();
                c.rows += rows;
                c.micros += i128::from_le_bytes(l);
            }
        }
        Ok(())
    }
}
