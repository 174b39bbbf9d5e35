//! The aggregate every published value is computed by. Its input has one row per cell and
//! patient (the plan groups by the patient first, see `super::rewrite`): the patient's record
//! key, their rows with a value, and the exact sum of their values in millionths. From those
//! come the patients behind the cell, its record-key cell key and sketch, its sum, and its
//! largest contributors. Every part of a cell's summary is a sum, an XOR or a top two of its
//! patients' parts, so summaries of disjoint sets of patients merge exactly, and the result
//! does not depend on how rows were split between threads.

use super::iblt::Iblt;
use arrow::array::{Array, ArrayRef, AsArray, BinaryArray, BooleanArray};
use arrow::datatypes::{DataType, Decimal128Type, Field, FieldRef, Int64Type, UInt64Type};
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, EmitTo, GroupsAccumulator, Signature,
    TypeSignature, Volatility,
};
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

/// The type of a patient's exact sum: millionths, 38 digits (a value is cast to 30 digits
/// first, so no sum of fewer than 10⁸ rows can overflow).
pub const MICROS: DataType = DataType::Decimal128(38, 6);
/// The type one value is cast to before it is summed (an error beyond ±10²⁴, never a wrap).
pub const VALUE_MICROS: DataType = DataType::Decimal128(30, 6);

/// What a cell's measure is made of (the accumulator's result).
#[derive(Debug, Clone, Default, PartialEq)]
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

    /// Adds one patient: their record key, rows with a value and exact sum.
    pub fn add(&mut self, encoding: Encoding, key: u64, rows: u64, micros: i128) -> Result<()> {
        self.valued += 1;
        self.rows += rows;
        self.micros = plus(self.micros, micros)?;
        let a = micros.checked_abs().ok_or_else(overflow)?;
        self.total_abs = plus(self.total_abs, a)?;
        self.top = top_two(self.top, [a, 0]);
        self.top_rows = top_two(self.top_rows, [rows, 0]);
        if micros != 0 {
            self.nonzero += 1;
        }
        let e = match encoding {
            Encoding::Patients => Some(super::iblt::element(key, 0, ONE)),
            Encoding::Additive => (micros != 0).then(|| super::iblt::element(key, 0, micros)),
            Encoding::Mean => Some(super::iblt::element(key, rows, micros)),
            Encoding::Distinct => Some(super::iblt::element(key, rows, 0)),
        };
        if let Some(e) = e {
            self.patients += 1;
            self.key ^= e;
            self.sketch.insert(e, key);
        }
        Ok(())
    }

    /// Adds the summary of a disjoint set of patients.
    pub fn merge(&mut self, o: &Summary) -> Result<()> {
        self.patients += o.patients;
        self.valued += o.valued;
        self.nonzero += o.nonzero;
        self.rows += o.rows;
        self.micros = plus(self.micros, o.micros)?;
        self.total_abs = plus(self.total_abs, o.total_abs)?;
        self.top = top_two(self.top, o.top);
        self.top_rows = top_two(self.top_rows, o.top_rows);
        self.key ^= o.key;
        self.sketch.merge(&o.sketch);
        Ok(())
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

fn overflow() -> DataFusionError {
    DataFusionError::Execution("a sum is beyond what the hub computes exactly (±10³⁸)".into())
}

fn plus(a: i128, b: i128) -> Result<i128> {
    a.checked_add(b).ok_or_else(overflow)
}

/// The two largest of two top twos.
fn top_two<T: Ord + Copy>(a: [T; 2], b: [T; 2]) -> [T; 2] {
    let mut all = [a[0], a[1], b[0], b[1]];
    all.sort_unstable_by(|x, y| y.cmp(x));
    [all[0], all[1]]
}

/// The aggregate `measure(record_key, rows[, micros])` under one [`Encoding`], over one row per
/// cell and patient (`micros` of type [`MICROS`] for sums and means; without it a patient
/// adds `rows` × [`ONE`]). Never registered by name: only the plans disclosure control builds
/// call it. Its cell key and sketch are of (patient, contribution) elements: two cells differ
/// in the sketch by the patients whose contribution differs, which is what a differencing
/// attack changes (a patient left out, or one of their rows).
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
            signature: Signature::one_of(
                vec![
                    TypeSignature::Exact(vec![DataType::UInt64, DataType::Int64]),
                    TypeSignature::Exact(vec![DataType::UInt64, DataType::Int64, MICROS]),
                ],
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
        Ok(Box::new(One {
            encoding: self.encoding,
            summary: Summary::default(),
        }))
    }
    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(
            format!("{}[summary]", args.name),
            DataType::Binary,
            true,
        ))])
    }
    fn groups_accumulator_supported(&self, _: AccumulatorArgs) -> bool {
        true
    }
    fn create_groups_accumulator(&self, _: AccumulatorArgs) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(Groups {
            encoding: self.encoding,
            summaries: Vec::new(),
        }))
    }
}

/// Each input row's patient: record key, rows, exact sum; `None` for a row that adds nothing
/// (no patient, or no value).
fn patients(values: &[ArrayRef]) -> Result<impl Iterator<Item = Option<(u64, u64, i128)>> + '_> {
    let (keys, rows, micros) = match values {
        [k, r] => (k, r, None),
        [k, r, m] => (k, r, Some(m.as_primitive::<Decimal128Type>())),
        _ => {
            return Err(DataFusionError::Internal(
                "measure takes two or three arguments".into(),
            ));
        }
    };
    let keys = keys.as_primitive::<UInt64Type>();
    let rows = rows.as_primitive::<Int64Type>();
    Ok((0..keys.len()).map(move |i| {
        if keys.is_null(i) || rows.is_null(i) || rows.value(i) <= 0 {
            return None;
        }
        // Positive: the cast cannot wrap.
        let n = rows.value(i) as u64;
        let m = match micros {
            None => i128::from(n) * ONE,
            Some(m) if m.is_null(i) => return None,
            Some(m) => m.value(i),
        };
        Some((keys.value(i), n, m))
    }))
}

fn summaries(b: &BinaryArray) -> impl Iterator<Item = Result<Option<Summary>>> + '_ {
    b.iter().map(|v| {
        v.map(|b| {
            Summary::from_bytes(b)
                .ok_or_else(|| DataFusionError::Internal("a measure's state is torn".into()))
        })
        .transpose()
    })
}

/// The accumulator of an aggregate without groups (one cell).
#[derive(Debug)]
struct One {
    encoding: Encoding,
    summary: Summary,
}

impl Accumulator for One {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        for (k, n, m) in patients(values)?.flatten() {
            self.summary.add(self.encoding, k, n, m)?;
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(ScalarValue::Binary(Some(self.summary.to_bytes())))
    }

    fn size(&self) -> usize {
        std::mem::size_of::<Self>() + super::iblt::BYTES
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![self.evaluate()?])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let [state] = states else {
            return Err(DataFusionError::Internal("measure has one state".into()));
        };
        for s in summaries(state.as_binary::<i32>()) {
            if let Some(s) = s? {
                self.summary.merge(&s)?;
            }
        }
        Ok(())
    }
}

/// The accumulator of a grouped aggregate: one summary per cell.
#[derive(Debug)]
struct Groups {
    encoding: Encoding,
    summaries: Vec<Summary>,
}

impl Groups {
    fn emit(&mut self, emit_to: EmitTo) -> ArrayRef {
        let taken = emit_to.take_needed(&mut self.summaries);
        let bytes: Vec<Vec<u8>> = taken.iter().map(Summary::to_bytes).collect();
        Arc::new(BinaryArray::from_iter_values(bytes))
    }
}

fn kept(filter: Option<&BooleanArray>, i: usize) -> bool {
    filter.is_none_or(|f| f.is_valid(i) && f.value(i))
}

impl GroupsAccumulator for Groups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.summaries
            .resize_with(total_num_groups, Summary::default);
        for (i, (p, g)) in patients(values)?.zip(group_indices).enumerate() {
            if let Some((k, n, m)) = p
                && kept(opt_filter, i)
                && let Some(s) = self.summaries.get_mut(*g)
            {
                s.add(self.encoding, k, n, m)?;
            }
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        Ok(self.emit(emit_to))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        Ok(vec![self.emit(emit_to)])
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        let [state] = values else {
            return Err(DataFusionError::Internal("measure has one state".into()));
        };
        self.summaries
            .resize_with(total_num_groups, Summary::default);
        for (s, g) in summaries(state.as_binary::<i32>()).zip(group_indices) {
            if let Some(s) = s?
                && let Some(t) = self.summaries.get_mut(*g)
            {
                t.merge(&s)?;
            }
        }
        Ok(())
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let mut out = Vec::new();
        for (i, p) in patients(values)?.enumerate() {
            let mut s = Summary::default();
            if let Some((k, n, m)) = p
                && kept(opt_filter, i)
            {
                s.add(self.encoding, k, n, m)?;
            }
            out.push(s.to_bytes());
        }
        Ok(vec![Arc::new(BinaryArray::from_iter_values(out))])
    }

    fn size(&self) -> usize {
        self.summaries.capacity() * (std::mem::size_of::<Summary>() + super::iblt::BYTES)
    }
}
