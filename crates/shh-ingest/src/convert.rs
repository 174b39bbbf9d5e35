//! Cells to Arrow: parse each kept cell by its type, check its constraints, run the NIR leak
//! guard, pseudonymize or generalize it, and drop opted-out patients — one chunk at a time, on
//! as many threads as there are cores.
//!
//! A row is checked completely before any of its values is appended, so a rejected row (with
//! `--max-errors`) leaves no trace in the batch. Error messages name the file, line and field
//! but never echo the value of an identifier column.

use crate::plan::{Column, DateFormat, KeyCol, Kind, Plan};
use crate::policy::Class;
use crate::{CellError, FkSet};
use arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Float64Builder, Int32Builder, Int64Builder,
    StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use shh_pseudo::generalize::Generalized;
use shh_pseudo::guard::{self, Found};
use shh_pseudo::{Pseudonymizer, RiskAccumulator};
use std::collections::HashSet;
use std::sync::Arc;

/// Rows read from a source, holding only the kept columns, in plan order.
#[derive(Debug, Clone, Default)]
pub struct RawChunk {
    /// The source file (for messages).
    pub file: Arc<str>,
    /// Line (CSV, NDJSON) or row (Parquet) of each row.
    pub lines: Vec<u64>,
    /// Cell bytes, row-major.
    pub data: Vec<u8>,
    /// End offset of each cell in `data`.
    pub ends: Vec<u32>,
    /// Whether each cell is an explicit null (Parquet, JSON).
    pub nulls: Vec<bool>,
}

impl RawChunk {
    /// A chunk for `file`.
    pub fn new(file: Arc<str>) -> Self {
        Self {
            file,
            ..Default::default()
        }
    }
    /// Rows in the chunk.
    pub fn rows(&self) -> usize {
        self.lines.len()
    }
    /// Appends a cell.
    pub fn push(&mut self, bytes: &[u8]) {
        self.data.extend_from_slice(bytes);
        self.ends.push(self.data.len() as u32);
        self.nulls.push(false);
    }
    /// A chunk with room for `rows` rows of about `bytes` bytes (sized from the previous
    /// chunk, so the buffers are not regrown and copied).
    pub fn with_capacity(file: Arc<str>, rows: usize, cells: usize, bytes: usize) -> Self {
        Self {
            file,
            lines: Vec::with_capacity(rows),
            data: Vec::with_capacity(bytes),
            ends: Vec::with_capacity(cells),
            nulls: Vec::with_capacity(cells),
        }
    }
    /// Appends a null cell.
    pub fn push_null(&mut self) {
        self.ends.push(self.data.len() as u32);
        self.nulls.push(true);
    }
    /// Bytes held.
    pub fn size(&self) -> usize {
        self.data.len() + self.ends.len() * 5 + self.lines.len() * 8
    }
}

/// A rejected row (with `--max-errors`): where and why, never the values.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Reject {
    /// File.
    pub file: String,
    /// Line or row.
    pub line: u64,
    /// Field.
    pub field: String,
    /// Reason.
    pub reason: String,
}

/// What one chunk became.
#[derive(Debug)]
pub struct Converted {
    /// The stored rows.
    pub batch: RecordBatch,
    /// Line of each stored row.
    pub lines: Vec<u64>,
    /// Rows rejected (only with a positive error budget).
    pub rejects: Vec<Reject>,
    /// Lenient mode: (plan column, line, reason) of each value that broke the schema.
    pub violations: Vec<(usize, u64, String)>,
    /// Rows excluded because the patient opted out.
    pub opted_out: u64,
    /// Risk counts for this chunk.
    pub risk: RiskAccumulator,
    /// Foreign-key misses: (foreign key index, line).
    pub fk_misses: Vec<(usize, u64)>,
    /// Primary-key hashes with their line.
    pub pk: Vec<(u128, u64)>,
    /// Per `unique` column: value hashes with their line.
    pub unique: Vec<Vec<(u128, u64)>>,
}

/// Everything conversion needs besides the chunk.
pub struct Converter {
    /// The plan.
    pub plan: Plan,
    /// Pseudonyms under the hub's current key.
    pub pseudonymizer: Pseudonymizer,
    /// Pseudonyms of opted-out patients.
    pub optout: HashSet<String>,
    /// Reference keys for the plan's foreign keys (same order); `None`: not checked.
    pub fk_sets: Vec<Option<FkSet>>,
    /// Whether rows may be rejected instead of failing the ingest.
    pub reject_rows: bool,
    /// Lenient: values that break the schema are reported, not fatal (kept without the broken
    /// constraint, or null when they do not have the type). The NIR guard is never relaxed.
    pub lenient: bool,
}

enum Out {
    Null,
    /// Range in the chunk's data.
    Raw(usize, usize),
    /// Range in the row scratch.
    Scratch(usize, usize),
    I64(i64),
    I32(i32),
    F64(f64),
    Bool(bool),
    Date(i32),
    Ts(i64),
}

enum Builder {
    Utf8(StringBuilder),
    I64(Int64Builder),
    I32(Int32Builder),
    F64(Float64Builder),
    Bool(BooleanBuilder),
    Date(Date32Builder),
    Ts(TimestampMicrosecondBuilder),
}

impl Builder {
    fn new(t: &arrow_schema::DataType, n: usize) -> Self {
        use arrow_schema::DataType as D;
        match t {
            D::Int64 => Builder::I64(Int64Builder::with_capacity(n)),
            D::Int32 => Builder::I32(Int32Builder::with_capacity(n)),
            D::Float64 => Builder::F64(Float64Builder::with_capacity(n)),
            D::Boolean => Builder::Bool(BooleanBuilder::with_capacity(n)),
            D::Date32 => Builder::Date(Date32Builder::with_capacity(n)),
            D::Timestamp(..) => {
                Builder::Ts(TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC"))
            }
            _ => Builder::Utf8(StringBuilder::with_capacity(n, n * 16)),
        }
    }

    fn append(&mut self, v: &Out, data: &str, scratch: &str) {
        match (self, v) {
            (Builder::Utf8(b), Out::Null) => b.append_null(),
            (Builder::Utf8(b), Out::Raw(s, e)) => b.append_value(&data[*s..*e]),
            (Builder::Utf8(b), Out::Scratch(s, e)) => b.append_value(&scratch[*s..*e]),
            (Builder::I64(b), Out::I64(x)) => b.append_value(*x),
            (Builder::I64(b), _) => b.append_null(),
            (Builder::I32(b), Out::I32(x)) => b.append_value(*x),
            (Builder::I32(b), _) => b.append_null(),
            (Builder::F64(b), Out::F64(x)) => b.append_value(*x),
            (Builder::F64(b), _) => b.append_null(),
            (Builder::Bool(b), Out::Bool(x)) => b.append_value(*x),
            (Builder::Bool(b), _) => b.append_null(),
            (Builder::Date(b), Out::Date(x)) => b.append_value(*x),
            (Builder::Date(b), _) => b.append_null(),
            (Builder::Ts(b), Out::Ts(x)) => b.append_value(*x),
            (Builder::Ts(b), _) => b.append_null(),
            (Builder::Utf8(b), _) => b.append_null(),
        }
    }

    fn finish(self) -> ArrayRef {
        match self {
            Builder::Utf8(mut b) => Arc::new(b.finish()),
            Builder::I64(mut b) => Arc::new(b.finish()),
            Builder::I32(mut b) => Arc::new(b.finish()),
            Builder::F64(mut b) => Arc::new(b.finish()),
            Builder::Bool(mut b) => Arc::new(b.finish()),
            Builder::Date(mut b) => Arc::new(b.finish()),
            Builder::Ts(mut b) => Arc::new(b.finish()),
        }
    }
}

const EPOCH_DAYS_CE: i32 = 719_163;

/// Buffers one chunk's conversion reuses from cell to cell.
struct Work {
    /// The normalized identifier being pseudonymized.
    norm: Vec<u8>,
    /// Per plan column: the last identifier pseudonymized there and its pseudonym.
    last: Vec<(String, String)>,
}

/// Why a cell was refused. `guard` faults (a direct identifier in a kept value) are never
/// relaxed, not even by `--lenient`.
struct Fault {
    reason: String,
    guard: bool,
}

impl From<String> for Fault {
    fn from(reason: String) -> Self {
        Fault {
            reason,
            guard: false,
        }
    }
}

impl From<&str> for Fault {
    fn from(reason: &str) -> Self {
        Fault::from(reason.to_owned())
    }
}

/// What the leak guard says of a kept value: which identifier, and what the operator can do.
/// Never the value.
pub fn guard_reason(found: Found) -> String {
    let what = found.describe();
    match found {
        Found::Nir => format!(
            "holds {what} but the column is not declared `identifier` in the policy; declare it \
             `identifier` (pseudonymized) or `direct` (dropped)"
        ),
        Found::Email | Found::Phone => format!(
            "holds {what} but the column is not declared `identifier` or `direct` in the policy; \
             declare it so, or set `allow_contact_like = true` if these are not a patient's"
        ),
    }
}

/// A cell's bytes as text, or why not: invalid UTF-8 and NUL characters are refused in every
/// format, in every column (NUL is never text in health data: it is a binary or UTF-16 file
/// read as text, and most tools downstream cut the value at it).
fn text_of(bytes: &[u8]) -> Result<&str, &'static str> {
    let t = std::str::from_utf8(bytes).map_err(|_| "is not valid UTF-8")?;
    if bytes.contains(&0) {
        return Err("holds a NUL character");
    }
    Ok(t)
}

pub(crate) fn days(d: NaiveDate) -> i32 {
    use chrono::Datelike;
    d.num_days_from_ce() - EPOCH_DAYS_CE
}

/// `YYYY-MM-DD` without going through a format interpreter (the common case, millions of
/// times per ingest).
fn iso_date(s: &str) -> Option<NaiveDate> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return NaiveDate::parse_from_str(s, "%Y-%m-%d").ok();
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        b[r].iter().try_fold(0u32, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    NaiveDate::from_ymd_opt(num(0..4)? as i32, num(5..7)?, num(8..10)?)
}

fn parse_date(s: &str, f: &DateFormat) -> Option<NaiveDate> {
    match f {
        DateFormat::Default => iso_date(s),
        DateFormat::Any => {
            iso_date(s).or_else(|| parse_datetime(s, &DateFormat::Any).map(|t| t.date_naive()))
        }
        DateFormat::Pattern(p) => NaiveDate::parse_from_str(s, p).ok(),
        DateFormat::PartialPattern(_) => None,
    }
}

fn parse_datetime(s: &str, f: &DateFormat) -> Option<DateTime<Utc>> {
    match f {
        DateFormat::Default => DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.with_timezone(&Utc))
            .or_else(|| {
                NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S")
                    .ok()
                    .map(|t| t.and_utc())
            }),
        DateFormat::Any => parse_datetime(s, &DateFormat::Default)
            .or_else(|| {
                NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
                    .ok()
                    .map(|t| t.and_utc())
            })
            .or_else(|| {
                NaiveDate::parse_from_str(s, "%Y-%m-%d")
                    .ok()
                    .and_then(|d| d.and_hms_opt(0, 0, 0))
                    .map(|t| t.and_utc())
            }),
        DateFormat::Pattern(p) => DateTime::parse_from_str(s, p)
            .ok()
            .map(|t| t.with_timezone(&Utc))
            .or_else(|| {
                NaiveDateTime::parse_from_str(s, p)
                    .ok()
                    .map(|t| t.and_utc())
            }),
        DateFormat::PartialPattern(_) => None,
    }
}

fn partial_ok(s: &str, p: &str) -> bool {
    let mut parsed = chrono::format::Parsed::new();
    chrono::format::parse(&mut parsed, s, chrono::format::StrftimeItems::new(p)).is_ok()
}

pub(crate) fn parse_year_month(s: &str) -> Option<(i32, u32)> {
    let (y, m) = match s.split_once('-') {
        Some((y, m)) => (y, m),
        None if s.len() == 6 && s.is_char_boundary(4) => (&s[..4], &s[4..]),
        None => return None,
    };
    let y: i32 = y.parse().ok()?;
    let m: u32 = m.parse().ok()?;
    ((1..=12).contains(&m) && y.to_string().len() <= 4).then_some((y, m))
}

impl Converter {
    /// Parses and checks one cell; returns its output value. Messages say what is wrong with
    /// the value, never what it is.
    #[allow(clippy::too_many_arguments)]
    fn cell(
        &self,
        c: &Column,
        text: &str,
        start: usize,
        null: bool,
        scratch: &mut String,
        w: &mut Work,
        strict: bool,
    ) -> Result<Out, Fault> {
        if null || self.plan.is_missing(text) {
            if c.required && strict {
                return Err("a value is required".into());
            }
            return Ok(Out::Null);
        }
        if c.look.any()
            && text.len() >= c.scan_from
            && let Some(hit) = guard::scan(text, c.look)
        {
            return Err(Fault {
                reason: guard_reason(hit.found),
                guard: true,
            });
        }
        let cons = &c.field.constraints;
        if strict && (cons.min_length.is_some() || cons.max_length.is_some()) {
            let n = text.chars().count();
            if let Some(m) = cons.min_length
                && n < m
            {
                return Err(format!("is shorter than minLength {m} ({n} characters)").into());
            }
            if let Some(m) = cons.max_length
                && n > m
            {
                return Err(format!("is longer than maxLength {m} ({n} characters)").into());
            }
        }
        if let Some(p) = &c.pattern
            && strict
            && !p.is_match(text)
        {
            return Err("does not match the pattern".into());
        }
        if let Some(a) = &c.allowed
            && strict
            && !a.contains(text)
        {
            return Err("is not one of the allowed values".into());
        }
        let bad_type = |what: &str| Fault::from(format!("is not a valid {what}"));
        let range = |v: f64| -> Result<(), Fault> {
            if !strict {
                return Ok(());
            }
            let field = |b: &str| match b {
                "min" if cons.exclusive_minimum.is_some() => "exclusiveMinimum",
                "min" => "minimum",
                _ if cons.exclusive_maximum.is_some() => "exclusiveMaximum",
                _ => "maximum",
            };
            let shown = |b: &Option<serde_json::Value>, e: &Option<serde_json::Value>| match b
                .as_ref()
                .or(e.as_ref())
            {
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(v) => v.to_string(),
                None => String::new(),
            };
            if let Some(b) = c.min
                && (v < b.value || (b.exclusive && v == b.value))
            {
                return Err(format!(
                    "is below the {} {}",
                    field("min"),
                    shown(&cons.minimum, &cons.exclusive_minimum)
                )
                .into());
            }
            if let Some(b) = c.max
                && (v > b.value || (b.exclusive && v == b.value))
            {
                return Err(format!(
                    "is above the {} {}",
                    field("max"),
                    shown(&cons.maximum, &cons.exclusive_maximum)
                )
                .into());
            }
            Ok(())
        };
        // The typed value, before the policy's transformation.
        let typed = match &c.kind {
            Kind::String | Kind::Other | Kind::Time => Out::Raw(start, start + text.len()),
            Kind::Ucum => {
                if !crate::ucum::is_ucum(text) {
                    return Err(Fault {
                        reason: "is not a UCUM unit code (the column keeps units, never free \
                                 text)"
                            .into(),
                        guard: true,
                    });
                }
                Out::Raw(start, start + text.len())
            }
            Kind::Integer => {
                let v: i64 = text
                    .strip_prefix('+')
                    .unwrap_or(text)
                    .parse()
                    .map_err(|_| bad_type("integer"))?;
                range(v as f64)?;
                Out::I64(v)
            }
            Kind::Number => {
                let v: f64 = text.parse().map_err(|_| bad_type("number"))?;
                range(v)?;
                if let Some(d) = cons.decimals
                    && strict
                    && !text.contains(['e', 'E'])
                    && let Some((_, frac)) = text.split_once('.')
                    && frac.len() > d as usize
                {
                    return Err(format!("has more than {d} decimals").into());
                }
                Out::F64(v)
            }
            Kind::Boolean { yes, no } => {
                if yes.iter().any(|y| y == text) {
                    Out::Bool(true)
                } else if no.iter().any(|n| n == text) {
                    Out::Bool(false)
                } else {
                    return Err(bad_type("boolean"));
                }
            }
            Kind::Date(DateFormat::PartialPattern(p))
            | Kind::DateTime(DateFormat::PartialPattern(p)) => {
                if !partial_ok(text, p) {
                    return Err(bad_type(&format!("date in format {p}")));
                }
                Out::Raw(start, start + text.len())
            }
            Kind::Date(f) => {
                let d = days(parse_date(text, f).ok_or_else(|| bad_type("date"))?);
                range(f64::from(d))?;
                Out::Date(d)
            }
            Kind::DateTime(f) => {
                let t = parse_datetime(text, f)
                    .ok_or_else(|| bad_type("datetime"))?
                    .timestamp_micros();
                range(t as f64)?;
                Out::Ts(t)
            }
            Kind::Year => {
                let v: i32 = text.parse().map_err(|_| bad_type("year"))?;
                range(f64::from(v))?;
                Out::I32(v)
            }
            Kind::YearMonth => {
                let (y, m) = parse_year_month(text).ok_or_else(|| bad_type("year-month"))?;
                range(f64::from(y) * 12.0 + f64::from(m) - 1.0)?;
                let s = scratch.len();
                use std::fmt::Write;
                let _ = write!(scratch, "{y:04}-{m:02}");
                Out::Scratch(s, scratch.len())
            }
        };
        match (c.rule.class, c.rule.generalize) {
            (Class::Identifier, _) => {
                let s = scratch.len();
                // Rows of one patient usually follow each other: the same id as the row before
                // (in this column) reuses its pseudonym instead of another HMAC.
                let last = &mut w.last[c.index];
                if last.0 == text {
                    scratch.push_str(&last.1);
                } else {
                    self.pseudonymizer
                        .pseudonym_into(text, &mut w.norm, scratch);
                    last.0.clear();
                    last.0.push_str(text);
                    last.1.clear();
                    last.1.push_str(&scratch[s..]);
                }
                Ok(Out::Scratch(s, scratch.len()))
            }
            (_, Some(g)) => {
                let r = match (&c.kind, &typed) {
                    (_, Out::Date(d)) => NaiveDate::from_num_days_from_ce_opt(d + EPOCH_DAYS_CE)
                        .map(|d| g.date(d))
                        .ok_or_else(|| bad_type("date"))?,
                    (_, Out::Ts(t)) => DateTime::from_timestamp_micros(*t)
                        .map(|t| g.date(t.date_naive()))
                        .ok_or_else(|| bad_type("datetime"))?,
                    (Kind::YearMonth, _) => {
                        let (y, m) =
                            parse_year_month(text).ok_or_else(|| bad_type("year-month"))?;
                        g.year_month(y, m)
                    }
                    (_, Out::I64(v)) => g.int(*v),
                    (_, Out::I32(v)) => g.int(i64::from(*v)),
                    _ => g.text(text),
                }
                .map_err(|e| Fault::from(format!("cannot be generalized: {e}")))?;
                Ok(match r {
                    Generalized::Int(v) => Out::I64(v),
                    Generalized::Text(t) => {
                        let s = scratch.len();
                        scratch.push_str(&t);
                        Out::Scratch(s, scratch.len())
                    }
                })
            }
            _ => Ok(typed),
        }
    }

    /// Converts a chunk. `Err` is the first bad cell when rows may not be rejected.
    pub fn convert(&self, chunk: &RawChunk) -> Result<Converted, CellError> {
        let plan = &self.plan;
        let ncols = plan.columns.len();
        let ncells = plan.cells();
        let rows = chunk.rows();
        let mut builders: Vec<Builder> = plan
            .columns
            .iter()
            .map(|c| Builder::new(&c.out, rows))
            .collect();
        let mut hidden: Vec<StringBuilder> = plan
            .hidden
            .iter()
            .map(|_| StringBuilder::with_capacity(rows, rows * 32))
            .collect();
        let mut lines = Vec::with_capacity(rows);
        let mut rejects = Vec::new();
        let mut violations = Vec::new();
        let mut opted_out = 0;
        let qnames = plan
            .quasi
            .iter()
            .map(|&i| plan.columns[i].name.clone())
            .collect();
        let mut risk = RiskAccumulator::new(qnames);
        let mut outs: Vec<Out> = Vec::with_capacity(ncols);
        let mut scratch = String::new();
        let mut work = Work {
            norm: Vec::new(),
            last: vec![(String::new(), String::new()); ncols],
        };
        let mut risk_vals: Vec<Option<String>> = Vec::with_capacity(plan.quasi.len());
        // The whole chunk is checked at once; only a chunk with a bad byte somewhere (or a
        // cell boundary inside a character) is looked at cell by cell.
        let whole = std::str::from_utf8(&chunk.data).ok().filter(|d| {
            memchr::memchr(0, &chunk.data).is_none()
                && (d.is_ascii() || chunk.ends.iter().all(|&e| d.is_char_boundary(e as usize)))
        });
        let ident_cols: Vec<usize> = (0..ncols)
            .filter(|&i| plan.columns[i].rule.class == Class::Identifier)
            .collect();
        // Builders append from one text: the chunk's (or, cell by cell, a copy of the row's).
        let mut row_text = String::new();
        'rows: for r in 0..rows {
            outs.clear();
            scratch.clear();
            row_text.clear();
            let line = chunk.lines[r];
            let row_start = if r == 0 {
                0
            } else {
                chunk.ends[r * ncells - 1] as usize
            };
            let reject = |field: &str, reason: String| CellError {
                file: chunk.file.to_string(),
                line,
                field: field.to_owned(),
                reason,
            };
            let mut start = row_start;
            for (ci, c) in plan.columns.iter().enumerate() {
                let end = chunk.ends[r * ncells + ci] as usize;
                let null = chunk.nulls[r * ncells + ci];
                let (text, at) = match whole {
                    Some(d) => (Ok(&d[start..end]), start),
                    None => match text_of(&chunk.data[start..end]) {
                        Ok(t) => {
                            let at = row_text.len();
                            row_text.push_str(t);
                            (Ok(&row_text[at..]), at)
                        }
                        Err(e) => (Err(e), 0),
                    },
                };
                let mut result = match text {
                    Ok(t) => self.cell(c, t, at, null, &mut scratch, &mut work, true),
                    Err(e) => Err(Fault::from(e)),
                };
                if self.lenient
                    && let Err(f) = &result
                    && !f.guard
                    && let Ok(t) = text
                {
                    // Report the violation; keep the typed value without constraints, or null
                    // if it does not even have the type.
                    violations.push((ci, line, f.reason.clone()));
                    result = match self.cell(c, t, at, null, &mut scratch, &mut work, false) {
                        Err(f) if f.guard => Err(f),
                        Err(_) => Ok(Out::Null),
                        ok => ok,
                    };
                }
                match result {
                    Ok(o) => outs.push(o),
                    Err(f) => {
                        let e = reject(&c.name, f.reason);
                        if self.reject_rows {
                            rejects.push(e.into());
                            continue 'rows;
                        }
                        return Err(e);
                    }
                }
                start = end;
            }
            for (h, b) in hidden.iter_mut().enumerate() {
                let end = chunk.ends[r * ncells + ncols + h] as usize;
                // Readers put a hash here, never a value: hex, always text.
                b.append_value(std::str::from_utf8(&chunk.data[start..end]).unwrap_or_default());
                start = end;
            }
            if !self.optout.is_empty()
                && ident_cols.iter().any(|&i| match outs[i] {
                    Out::Scratch(s, e) => self.optout.contains(&scratch[s..e]),
                    _ => false,
                })
            {
                opted_out += 1;
                continue;
            }
            let d = whole.unwrap_or(&row_text);
            if !plan.quasi.is_empty() {
                risk_vals.clear();
                for &qi in &plan.quasi {
                    risk_vals.push(match &outs[qi] {
                        Out::Null => None,
                        Out::Raw(s, e) => Some(d[*s..*e].to_owned()),
                        Out::Scratch(s, e) => Some(scratch[*s..*e].to_owned()),
                        Out::I64(v) => Some(v.to_string()),
                        Out::I32(v) => Some(v.to_string()),
                        Out::F64(v) => Some(v.to_string()),
                        Out::Bool(v) => Some(v.to_string()),
                        Out::Date(v) => Some(v.to_string()),
                        Out::Ts(v) => Some(v.to_string()),
                    });
                }
                let refs: Vec<Option<&str>> = risk_vals.iter().map(|v| v.as_deref()).collect();
                risk.add(&refs);
            }
            for (b, o) in builders.iter_mut().zip(&outs) {
                b.append(o, d, &scratch);
            }
            lines.push(line);
        }
        let arrays: Vec<ArrayRef> = builders.into_iter().map(Builder::finish).collect();
        let hidden: Vec<ArrayRef> = hidden
            .into_iter()
            .map(|mut b| Arc::new(b.finish()) as ArrayRef)
            .collect();
        let batch = RecordBatch::try_new(plan.output.clone(), arrays).map_err(|e| CellError {
            file: chunk.file.to_string(),
            line: chunk.lines.first().copied().unwrap_or(0),
            field: "(batch)".into(),
            reason: e.to_string(),
        })?;
        let key_arrays = |key: &[KeyCol]| -> Vec<ArrayRef> {
            key.iter()
                .map(|k| match *k {
                    KeyCol::Kept(i) => batch.column(i).clone(),
                    KeyCol::Hidden(j) => hidden[j].clone(),
                })
                .collect()
        };
        let with_lines = |key: &[KeyCol]| -> Vec<(u128, u64)> {
            crate::keys::key_hashes_of(&key_arrays(key), batch.num_rows())
                .into_iter()
                .zip(&lines)
                .filter_map(|(h, l)| h.map(|h| (h, *l)))
                .collect()
        };
        let pk = if plan.primary_key.is_empty() {
            Vec::new()
        } else {
            with_lines(&plan.primary_key)
        };
        let unique = plan.unique.iter().map(|k| with_lines(&[*k])).collect();
        let mut fk_misses = Vec::new();
        for (k, (fk, set)) in plan.foreign_keys.iter().zip(&self.fk_sets).enumerate() {
            let Some(set) = set else { continue };
            for (h, l) in crate::keys::key_hashes(&batch, &fk.columns)
                .into_iter()
                .zip(&lines)
            {
                if let Some(h) = h
                    && !set.contains(&h)
                {
                    fk_misses.push((k, *l));
                }
            }
        }
        Ok(Converted {
            batch,
            lines,
            rejects,
            violations,
            opted_out,
            risk,
            fk_misses,
            pk,
            unique,
        })
    }
}

impl From<CellError> for Reject {
    fn from(e: CellError) -> Self {
        Reject {
            file: e.file,
            line: e.line,
            field: e.field,
            reason: e.reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::ColumnPolicy;
    use crate::schema::TableSchema;
    use arrow::array::AsArray;
    use arrow::datatypes::{Date32Type, Int32Type, Int64Type};
    use proptest::prelude::*;

    fn converter(schema: &str, policy: &str, lenient: bool) -> Converter {
        let s: TableSchema = serde_json::from_str(schema).expect("schema");
        let p = ColumnPolicy::parse(policy).expect("policy");
        Converter {
            plan: Plan::with_mode(&s, &p, lenient).expect("plan"),
            pseudonymizer: Pseudonymizer::new(1, &[3u8; 32]),
            optout: HashSet::new(),
            fk_sets: Vec::new(),
            reject_rows: false,
            lenient,
        }
    }

    fn chunk(rows: &[&[&str]]) -> RawChunk {
        let mut c = RawChunk::new("t.csv".into());
        for (i, r) in rows.iter().enumerate() {
            for v in *r {
                c.push(v.as_bytes());
            }
            c.lines.push(i as u64 + 2);
        }
        c
    }

    const SCHEMA: &str = r#"{"fields":[
        {"name":"ID"},
        {"name":"BIRTH","type":"date"},
        {"name":"YM","type":"yearmonth"},
        {"name":"COM"},
        {"name":"AGE","type":"integer","constraints":{"maximum":130}},
        {"name":"Y","type":"year"},
        {"name":"NAME"}]}"#;
    const POLICY: &str = r#"[columns]
        ID = "identifier"
        BIRTH = { class = "quasi", generalize = "month" }
        YM = { class = "quasi", generalize = "year" }
        COM = { class = "quasi", generalize = "departement" }
        AGE = { class = "quasi", generalize = "age_band:10" }
        NAME = "direct"
    "#;

    #[test]
    fn types_policy_and_generalization() {
        let c = converter(SCHEMA, POLICY, false);
        assert_eq!(c.plan.columns.len(), 6, "NAME is never planned");
        let raw = chunk(&[&[
            "184127645108946",
            "1984-03-09",
            "202003",
            "2A004",
            "47",
            "1984",
        ]]);
        let out = c.convert(&raw).expect("convert");
        let b = &out.batch;
        assert_eq!(
            b.column(0).as_string::<i32>().value(0),
            c.pseudonymizer.pseudonym("184127645108946")
        );
        assert_eq!(b.column(1).as_string::<i32>().value(0), "1984-03");
        assert_eq!(b.column(2).as_primitive::<Int64Type>().value(0), 2020);
        assert_eq!(b.column(3).as_string::<i32>().value(0), "2A");
        assert_eq!(b.column(4).as_string::<i32>().value(0), "40-49");
        assert_eq!(b.column(5).as_primitive::<Int32Type>().value(0), 1984);
        assert_eq!(out.risk.report().records, 1);
    }

    #[test]
    fn errors_never_quote_identifiers_and_lenient_reports() {
        let s = r#"{"fields":[{"name":"ID","constraints":{"minLength":15}},{"name":"D","type":"date"},
                    {"name":"N","type":"integer","constraints":{"maximum":5}}]}"#;
        let strict = converter(s, "[columns]\nID = \"identifier\"", false);
        let e = strict
            .convert(&chunk(&[&["SECRET", "2024-01-01", "1"]]))
            .expect_err("short id");
        assert_eq!((e.line, e.field.as_str()), (2, "ID"));
        assert!(
            !e.reason.contains("SECRET") && e.reason.contains("6 characters"),
            "{e}"
        );
        let e = strict
            .convert(&chunk(&[&["123456789012345", "2024-13-01", "1"]]))
            .expect_err("date");
        assert_eq!(e.field, "D");
        let lenient = converter(s, "[columns]\nID = \"identifier\"", true);
        let out = lenient
            .convert(&chunk(&[&["123456789012345", "2024-13-01", "9"]]))
            .expect("lenient");
        assert_eq!(out.violations.len(), 2);
        assert!(
            out.batch.column(1).is_null(0),
            "untyped value stored as null"
        );
        assert_eq!(
            out.batch.column(2).as_primitive::<Int64Type>().value(0),
            9,
            "kept despite the maximum"
        );
        // The leak guard holds even when lenient.
        let e = lenient
            .convert(&chunk(&[&[
                "123456789012345",
                "2024-01-01",
                "255081416802538",
            ]]))
            .expect_err("guard");
        assert!(e.reason.contains("NIR") && e.field == "N");
    }

    #[test]
    fn optout_excludes_rows() {
        let mut c = converter(SCHEMA, POLICY, false);
        c.optout
            .insert(c.pseudonymizer.pseudonym("1 84 12 76 451 089 46"));
        let raw = chunk(&[
            &[
                "184127645108946",
                "1984-03-09",
                "202003",
                "75056",
                "47",
                "1984",
            ],
            &[
                "255081416802538",
                "1955-08-01",
                "202003",
                "75056",
                "68",
                "1955",
            ],
        ]);
        let out = c.convert(&raw).expect("convert");
        assert_eq!((out.opted_out, out.batch.num_rows()), (1, 1));
        assert_eq!(out.lines, vec![3]);
    }

    proptest! {
        #[test]
        fn any_cells_never_panic(cells in proptest::collection::vec(proptest::collection::vec(any::<String>(), 6), 1..20),
                                 lenient in any::<bool>()) {
            let c = converter(SCHEMA, POLICY, lenient);
            let rows: Vec<Vec<&str>> = cells.iter().map(|r| r.iter().map(String::as_str).collect()).collect();
            let refs: Vec<&[&str]> = rows.iter().map(Vec::as_slice).collect();
            let _ = c.convert(&chunk(&refs));
        }

        #[test]
        fn dates_round_trip(days in -100_000i32..100_000) {
            let c = converter(r#"{"fields":[{"name":"D","type":"date"}]}"#, "", false);
            let d = NaiveDate::from_num_days_from_ce_opt(days + EPOCH_DAYS_CE).expect("date");
            let text = d.format("%Y-%m-%d").to_string();
            prop_assume!(text.len() == 10);
            let out = c.convert(&chunk(&[&[text.as_str()]])).expect("convert");
            prop_assert_eq!(out.batch.column(0).as_primitive::<Date32Type>().value(0), days);
        }
    }
}
