//! Readers: each turns a file into [`RawChunk`]s holding only the columns the plan keeps, so a
//! dropped column is never buffered. Every reader hashes the bytes it reads (BLAKE3), for the
//! manifest and the audit event.

use crate::convert::RawChunk;
use crate::plan::Plan;
use crate::quotes::Checked;
use crate::schema::TableSchema;
use crate::{CellError, IngestError};
use arrow::array::{Array, AsArray};
use std::io::Read;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Input formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// CSV with a header row.
    Csv,
    /// Apache Parquet.
    Parquet,
    /// FHIR Bulk Data NDJSON.
    FhirNdjson,
}

impl Format {
    /// From a file's extension.
    pub fn from_path(p: &Path) -> Option<Format> {
        let name = p.file_name()?.to_str()?.to_ascii_lowercase();
        if name.ends_with(".csv") {
            Some(Format::Csv)
        } else if name.ends_with(".parquet") {
            Some(Format::Parquet)
        } else if name.ends_with(".ndjson") {
            Some(Format::FhirNdjson)
        } else {
            None
        }
    }

    /// From `--format`.
    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "csv" => Some(Format::Csv),
            "parquet" => Some(Format::Parquet),
            "fhir-ndjson" | "ndjson" => Some(Format::FhirNdjson),
            _ => None,
        }
    }
}

/// What a reader tells about its file once done.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SourceInfo {
    /// Path as given.
    pub path: String,
    /// Format.
    pub format: Format,
    /// Bytes read.
    pub bytes: u64,
    /// BLAKE3 of the file, hex.
    pub blake3: String,
}

/// A file being read.
pub trait Source: Send {
    /// The next chunk of at most `max_rows` rows; `None` at the end.
    fn next_chunk(&mut self, max_rows: usize) -> Result<Option<RawChunk>, IngestError>;
    /// Path, size and hash (complete once `next_chunk` returned `None`).
    fn info(&self) -> SourceInfo;
}

/// BLAKE3 state and byte count of what a reader has read so far.
pub(crate) type HashState = Arc<Mutex<(blake3::Hasher, u64)>>;

/// A reader that hashes what passes through it.
pub(crate) struct Hashing<R> {
    inner: R,
    state: HashState,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Ok(mut s) = self.state.lock() {
            s.0.update(&buf[..n]);
            s.1 += n as u64;
        }
        Ok(n)
    }
}

/// Any byte stream a CSV or NDJSON source reads: a local file, or an upload as it arrives
/// (no temporary file). Parquet needs its footer first, so it reads a seekable file.
pub type Input = Box<dyn Read + Send>;

pub(crate) fn open_file(path: &Path) -> Result<Input, IngestError> {
    let f = std::fs::File::open(path).map_err(|e| IngestError::Source {
        file: path.display().to_string(),
        reason: e.to_string(),
    })?;
    Ok(Box::new(f))
}

pub(crate) fn hashing<R>(inner: R) -> (Hashing<R>, HashState) {
    let state = Arc::new(Mutex::new((blake3::Hasher::new(), 0)));
    (
        Hashing {
            inner,
            state: state.clone(),
        },
        state,
    )
}

pub(crate) fn info_of(path: &str, format: Format, s: &HashState) -> SourceInfo {
    let (hash, bytes) = s
        .lock()
        .map(|s| (s.0.finalize().to_hex().to_string(), s.1))
        .unwrap_or_default();
    SourceInfo {
        path: path.to_owned(),
        format,
        bytes,
        blake3: hash,
    }
}

/// Maps the columns a chunk holds ([`Plan::read_columns`]) to positions in a source header;
/// every schema field must be there and nothing else (an unlisted column could be an
/// identifier nobody declared). A header name the schema does not know is shown only if the
/// guard finds no identifier in it.
fn map_header(
    file: &str,
    header: &[String],
    schema: &TableSchema,
    plan: &Plan,
) -> Result<Vec<usize>, IngestError> {
    let err = |field: &str, reason: String| {
        IngestError::Cell(CellError {
            file: file.to_owned(),
            line: 1,
            field: shh_pseudo::guard::redact(field).into_owned(),
            reason,
        })
    };
    for h in header {
        if schema.field(h).is_none() {
            return Err(err(h, "the column is not in the table schema".into()));
        }
    }
    for f in &schema.fields {
        if !header.iter().any(|h| h == &f.name) {
            return Err(err(
                &f.name,
                "the schema's column is missing from the file".into(),
            ));
        }
    }
    Ok(plan
        .read_columns()
        .map(|c| header.iter().position(|h| h == c).unwrap_or(0))
        .collect())
}

/// CSV with a header row (RFC 4180 quoting, checked by [`crate::quotes`]).
pub struct CsvSource {
    file: Arc<str>,
    rdr: csv::Reader<Checked<Hashing<Input>>>,
    state: HashState,
    /// Record position of each chunk cell; the last `hidden` ones are hashed.
    map: Vec<usize>,
    hidden_from: usize,
    hidden_key: [u8; 32],
    rec: csv::ByteRecord,
    /// Bytes of the last chunk: the next one is allocated at that size.
    last_bytes: usize,
}

impl CsvSource {
    /// Opens a CSV file and checks its header against the schema.
    pub fn open(path: &Path, schema: &TableSchema, plan: &Plan) -> Result<Self, IngestError> {
        Self::from_reader(&path.display().to_string(), open_file(path)?, schema, plan)
    }

    /// Reads CSV from `input` (named `name` in messages and the manifest) and checks its
    /// header against the schema.
    pub fn from_reader(
        name: &str,
        input: Input,
        schema: &TableSchema,
        plan: &Plan,
    ) -> Result<Self, IngestError> {
        let file: Arc<str> = name.into();
        let (r, state) = hashing(input);
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(false)
            .buffer_capacity(1 << 20)
            .from_reader(Checked::new(r, b','));
        let header = rdr.headers().cloned();
        let header = header.map_err(|e| IngestError::Cell(csv_error(&file, &rdr, &e)))?;
        if header.is_empty() {
            return Err(IngestError::Source {
                file: file.to_string(),
                reason: "the file is empty: a header naming the schema's columns is required"
                    .into(),
            });
        }
        let header: Vec<String> = header
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let h = if i == 0 {
                    h.trim_start_matches('\u{feff}')
                } else {
                    h
                };
                h.to_owned()
            })
            .collect();
        let map = map_header(&file, &header, schema, plan)?;
        Ok(Self {
            file,
            rdr,
            state,
            hidden_from: plan.columns.len(),
            map,
            hidden_key: plan.hidden_key,
            rec: csv::ByteRecord::new(),
            last_bytes: 0,
        })
    }
}

fn csv_error<R: Read>(file: &str, rdr: &csv::Reader<Checked<R>>, e: &csv::Error) -> CellError {
    if let Some(f) = rdr.get_ref().fault() {
        return CellError {
            file: file.to_owned(),
            line: f.line(),
            field: "(row)".into(),
            reason: f.reason(),
        };
    }
    let line = e.position().map(|p| p.line()).unwrap_or(0);
    let reason = match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("the row has {len} fields, the header {expected_len}"),
        csv::ErrorKind::Utf8 { err, .. } => format!("invalid UTF-8: {err}"),
        csv::ErrorKind::Io(e) => format!("reading the file: {e}"),
        _ => "unreadable CSV".into(),
    };
    CellError {
        file: file.to_owned(),
        line,
        field: "(row)".into(),
        reason,
    }
}

impl Source for CsvSource {
    fn next_chunk(&mut self, max_rows: usize) -> Result<Option<RawChunk>, IngestError> {
        let mut chunk = RawChunk::with_capacity(
            self.file.clone(),
            max_rows,
            max_rows * self.map.len(),
            self.last_bytes + self.last_bytes / 8,
        );
        while chunk.rows() < max_rows && chunk.data.len() < 16 << 20 {
            match self.rdr.read_byte_record(&mut self.rec) {
                Ok(false) => break,
                Ok(true) => {
                    for (k, &i) in self.map.iter().enumerate() {
                        let v = self.rec.get(i).unwrap_or_default();
                        if k < self.hidden_from {
                            chunk.push(v);
                        } else {
                            chunk.push(&crate::plan::hide(&self.hidden_key, v));
                        }
                    }
                    chunk
                        .lines
                        .push(self.rec.position().map(|p| p.line()).unwrap_or(0));
                }
                Err(e) => {
                    return Err(IngestError::Cell(csv_error(&self.file, &self.rdr, &e)));
                }
            }
        }
        self.last_bytes = chunk.data.len();
        Ok((chunk.rows() > 0).then_some(chunk))
    }

    fn info(&self) -> SourceInfo {
        info_of(&self.file, Format::Csv, &self.state)
    }
}

/// Parquet: each kept column is read and turned to text, then checked like any other source.
///
/// Lists are rendered as text (`[a, b]`), so that the guard sees every element; struct, map
/// and union columns are refused by name (flattening a record is the producer's choice).
/// Binary columns pass their bytes as they are, and a string column holding invalid UTF-8
/// (which the Parquet decoder refuses for a whole batch) is narrowed down to the row and column
/// at fault: that cell reaches the converter as invalid bytes, so it is refused, or rejected
/// with `--max-errors`, exactly as the same bytes in a CSV would be.
pub struct ParquetSource {
    file: Arc<str>,
    path: std::path::PathBuf,
    metadata: ArrowReaderMetadata,
    /// Root columns read, in file order.
    roots: Vec<usize>,
    reader: parquet::arrow::arrow_reader::ParquetRecordBatchReader,
    /// Batch column of each chunk cell; the last ones (from `hidden_from`) are hashed.
    map: Vec<usize>,
    hidden_from: usize,
    hidden_key: [u8; 32],
    row: u64,
    rows: u64,
    info: SourceInfo,
}

use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReader,
    ParquetRecordBatchReaderBuilder, RowSelection, RowSelector,
};

const PARQUET_BATCH: usize = 8192;

/// A reader of root columns `roots` of the file over rows `[from, to)`.
fn open_reader(
    path: &Path,
    metadata: &ArrowReaderMetadata,
    roots: &[usize],
    from: u64,
    to: u64,
    batch: usize,
) -> Result<ParquetRecordBatchReader, String> {
    let bad = |e: &dyn std::fmt::Display| format!("not a readable Parquet file: {e}");
    let f = std::fs::File::open(path).map_err(|e| bad(&e))?;
    let mask =
        parquet::arrow::ProjectionMask::roots(metadata.parquet_schema(), roots.iter().copied());
    let selection = RowSelection::from(vec![
        RowSelector::skip(usize::try_from(from).unwrap_or(usize::MAX)),
        RowSelector::select(usize::try_from(to.saturating_sub(from)).unwrap_or(usize::MAX)),
    ]);
    ParquetRecordBatchReaderBuilder::new_with_metadata(f, metadata.clone())
        .with_projection(mask)
        .with_row_selection(selection)
        .with_batch_size(batch)
        .build()
        .map_err(|e| bad(&e))
}

/// Whether a decoding error is the decoder's UTF-8 check.
fn is_utf8_error(e: &dyn std::fmt::Display) -> bool {
    let m = e.to_string().to_ascii_lowercase();
    m.contains("utf-8") || m.contains("utf8")
}

impl ParquetSource {
    /// Opens a Parquet file and checks its columns against the schema.
    pub fn open(path: &Path, schema: &TableSchema, plan: &Plan) -> Result<Self, IngestError> {
        use arrow_schema::DataType as D;
        let file: Arc<str> = path.display().to_string().into();
        let bad = |reason: String| IngestError::Source {
            file: file.to_string(),
            reason,
        };
        // Hash first: the reader seeks, and the file's identity is its bytes.
        let (mut r, state) = hashing(open_file(path)?);
        std::io::copy(&mut r, &mut std::io::sink()).map_err(|e| bad(e.to_string()))?;
        let info = info_of(&file, Format::Parquet, &state);
        let f = std::fs::File::open(path).map_err(|e| bad(e.to_string()))?;
        let metadata = ArrowReaderMetadata::load(&f, ArrowReaderOptions::new())
            .map_err(|e| bad(format!("not a readable Parquet file: {e}")))?;
        let header: Vec<String> = metadata
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let positions = map_header(&file, &header, schema, plan)?;
        for &p in &positions {
            let f = metadata.schema().field(p);
            if matches!(
                f.data_type(),
                D::Struct(_) | D::Map(..) | D::Union(..) | D::RunEndEncoded(..)
            ) {
                return Err(IngestError::Cell(CellError {
                    file: file.to_string(),
                    line: 1,
                    field: shh_pseudo::guard::redact(f.name()).into_owned(),
                    reason: format!(
                        "a Parquet {} column cannot be ingested: flatten it into columns of \
                         their own, each in the table schema",
                        match f.data_type() {
                            D::Struct(_) => "struct",
                            D::Map(..) => "map",
                            _ => "nested",
                        }
                    ),
                }));
            }
        }
        let mut roots = positions.clone();
        roots.sort_unstable();
        roots.dedup();
        let map = positions
            .iter()
            .map(|p| roots.iter().position(|s| s == p).unwrap_or(0))
            .collect();
        let rows = u64::try_from(metadata.metadata().file_metadata().num_rows()).unwrap_or(0);
        let reader = open_reader(path, &metadata, &roots, 0, rows, PARQUET_BATCH).map_err(bad)?;
        Ok(Self {
            file,
            path: path.to_owned(),
            metadata,
            reader,
            roots,
            map,
            hidden_from: plan.columns.len(),
            hidden_key: plan.hidden_key,
            row: 0,
            rows,
            info,
        })
    }

    /// A reader of root columns `roots` over rows `[from, to)`.
    fn reader_at(
        &self,
        roots: &[usize],
        from: u64,
        to: u64,
        batch: usize,
    ) -> Result<ParquetRecordBatchReader, IngestError> {
        open_reader(&self.path, &self.metadata, roots, from, to, batch).map_err(|reason| {
            IngestError::Source {
                file: self.file.to_string(),
                reason,
            }
        })
    }

    /// Whether reading root `root` over `[from, to)` fails.
    fn fails(&self, root: usize, from: u64, to: u64) -> Result<bool, IngestError> {
        let mut r = self.reader_at(&[root], from, to, PARQUET_BATCH)?;
        Ok(r.any(|b| b.is_err()))
    }

    /// The raw bytes of a flat byte-array column over rows `[from, to)`, read below the
    /// decoder (which refuses a whole batch, or with a dictionary a whole column chunk, for one
    /// invalid value); `None` if the column is not flat byte arrays.
    fn raw_bytes(
        &self,
        root: usize,
        from: u64,
        to: u64,
    ) -> Result<Option<Vec<Option<Vec<u8>>>>, IngestError> {
        use parquet::column::reader::ColumnReader;
        use parquet::file::reader::{FileReader, SerializedFileReader};
        let bad = |e: &dyn std::fmt::Display| self.unreadable(e);
        let descr = self.metadata.parquet_schema();
        let leaves: Vec<usize> = (0..descr.num_columns())
            .filter(|&l| descr.get_column_root_idx(l) == root)
            .collect();
        let [leaf] = leaves[..] else { return Ok(None) };
        let col = descr.column(leaf);
        if col.physical_type() != parquet::basic::Type::BYTE_ARRAY || col.max_rep_level() > 0 {
            return Ok(None);
        }
        let max_def = col.max_def_level();
        let f = std::fs::File::open(&self.path).map_err(|e| bad(&e))?;
        let reader = SerializedFileReader::new(f).map_err(|e| bad(&e))?;
        let mut out = Vec::with_capacity(usize::try_from(to - from).unwrap_or(0));
        let mut rg_start = 0u64;
        for g in 0..reader.num_row_groups() {
            let n = u64::try_from(reader.metadata().row_group(g).num_rows()).unwrap_or(0);
            let (lo, hi) = (from.max(rg_start), to.min(rg_start + n));
            if lo < hi {
                let rg = reader.get_row_group(g).map_err(|e| bad(&e))?;
                let ColumnReader::ByteArrayColumnReader(mut cr) =
                    rg.get_column_reader(leaf).map_err(|e| bad(&e))?
                else {
                    return Ok(None);
                };
                let skip = usize::try_from(lo - rg_start).unwrap_or(usize::MAX);
                cr.skip_records(skip).map_err(|e| bad(&e))?;
                let want = usize::try_from(hi - lo).unwrap_or(usize::MAX);
                let (mut defs, mut values) = (Vec::new(), Vec::new());
                let mut got = 0;
                while got < want {
                    let (records, _, _) = cr
                        .read_records(want - got, Some(&mut defs), None, &mut values)
                        .map_err(|e| bad(&e))?;
                    if records == 0 {
                        break;
                    }
                    got += records;
                }
                let mut vals = values.into_iter();
                for i in 0..got {
                    let present = max_def == 0 || defs.get(i) == Some(&max_def);
                    out.push(if present {
                        vals.next().map(|v| v.data().to_vec())
                    } else {
                        None
                    });
                }
            }
            rg_start += n;
        }
        Ok(Some(out))
    }

    /// Appends a batch's rows to `chunk`.
    fn push_batch(
        &mut self,
        chunk: &mut RawChunk,
        batch: &arrow::record_batch::RecordBatch,
    ) -> Result<(), IngestError> {
        let cells: Vec<Cells> = self
            .map
            .iter()
            .map(|&i| Cells::of(batch.column(i), &self.file))
            .collect::<Result<_, _>>()?;
        for r in 0..batch.num_rows() {
            for (k, c) in cells.iter().enumerate() {
                self.push_cell(chunk, k, c.get(r));
            }
            self.row += 1;
            chunk.lines.push(self.row);
        }
        Ok(())
    }

    fn push_cell(&self, chunk: &mut RawChunk, k: usize, v: Option<&[u8]>) {
        match v {
            None if k < self.hidden_from => chunk.push_null(),
            None => chunk.push(&crate::plan::hide(&self.hidden_key, b"")),
            Some(v) if k < self.hidden_from => chunk.push(v),
            Some(v) => chunk.push(&crate::plan::hide(&self.hidden_key, v)),
        }
    }

    /// The batch starting at `self.row` failed the decoder's UTF-8 check: its columns that
    /// fail alone are read raw, the others decoded, so every cell reaches the converter as its
    /// bytes and only the cells that are not UTF-8 are refused. `false` if no column fails
    /// alone (then the error is something else).
    fn recover(&mut self, chunk: &mut RawChunk) -> Result<bool, IngestError> {
        let (from, to) = (self.row, (self.row + PARQUET_BATCH as u64).min(self.rows));
        let roots = self.roots.clone();
        let mut failing = Vec::with_capacity(roots.len());
        for &root in &roots {
            failing.push(self.fails(root, from, to)?);
        }
        if !failing.contains(&true) {
            return Ok(false);
        }
        let good: Vec<usize> = roots
            .iter()
            .zip(&failing)
            .filter(|(_, f)| !**f)
            .map(|(r, _)| *r)
            .collect();
        let mut decoded = Vec::new();
        if !good.is_empty() {
            for b in self.reader_at(&good, from, to, PARQUET_BATCH)? {
                decoded.push(b.map_err(|e| self.unreadable(&e))?);
            }
        }
        let decoded = match decoded.len() {
            0 => None,
            1 => decoded.pop(),
            _ => Some(
                arrow::compute::concat_batches(&decoded[0].schema(), &decoded)
                    .map_err(|e| self.unreadable(&e))?,
            ),
        };
        let rows = usize::try_from(to - from).unwrap_or(0);
        let mut cells = Vec::with_capacity(roots.len());
        let mut next_good = 0;
        for (&root, &fails) in roots.iter().zip(&failing) {
            cells.push(if fails {
                // Not flat bytes (a list, say): every cell of the batch refused as not UTF-8.
                Cells::Raw(
                    self.raw_bytes(root, from, to)?
                        .unwrap_or_else(|| vec![Some(vec![0xFF]); rows]),
                )
            } else {
                let b = decoded
                    .as_ref()
                    .ok_or_else(|| self.unreadable(&"a column went missing"))?;
                next_good += 1;
                Cells::of(b.column(next_good - 1), &self.file)?
            });
        }
        for r in 0..rows {
            for k in 0..self.map.len() {
                let v = cells[self.map[k]].get(r);
                self.push_cell(chunk, k, v);
            }
            self.row += 1;
            chunk.lines.push(self.row);
        }
        self.reader = self.reader_at(&roots, self.row, self.rows, PARQUET_BATCH)?;
        Ok(true)
    }

    fn unreadable(&self, e: &dyn std::fmt::Display) -> IngestError {
        IngestError::Cell(CellError {
            file: self.file.to_string(),
            line: self.row + 1,
            field: "(row group)".into(),
            reason: format!("unreadable Parquet data from this row on: {e}"),
        })
    }
}

/// One column of a batch, as cell bytes.
enum Cells {
    Bytes(arrow::array::ArrayRef),
    Text(arrow::array::ArrayRef),
    Shown(Vec<Option<String>>),
    Raw(Vec<Option<Vec<u8>>>),
}

impl Cells {
    fn of(a: &arrow::array::ArrayRef, file: &str) -> Result<Self, IngestError> {
        use arrow_schema::DataType as D;
        Ok(match a.data_type() {
            D::Binary | D::LargeBinary | D::BinaryView | D::FixedSizeBinary(_) => {
                Cells::Bytes(arrow::compute::cast(a, &D::Binary).map_err(|e| {
                    IngestError::Source {
                        file: file.to_owned(),
                        reason: e.to_string(),
                    }
                })?)
            }
            D::List(_)
            | D::LargeList(_)
            | D::FixedSizeList(..)
            | D::ListView(_)
            | D::LargeListView(_) => {
                let f = arrow::util::display::ArrayFormatter::try_new(
                    a.as_ref(),
                    &arrow::util::display::FormatOptions::default(),
                )
                .map_err(|e| IngestError::Source {
                    file: file.to_owned(),
                    reason: e.to_string(),
                })?;
                Cells::Shown(
                    (0..a.len())
                        .map(|i| a.is_valid(i).then(|| f.value(i).to_string()))
                        .collect(),
                )
            }
            _ => {
                Cells::Text(
                    arrow::compute::cast(a, &D::Utf8).map_err(|e| IngestError::Source {
                        file: file.to_owned(),
                        reason: e.to_string(),
                    })?,
                )
            }
        })
    }

    fn get(&self, r: usize) -> Option<&[u8]> {
        match self {
            Cells::Bytes(a) => {
                let a = a.as_binary::<i32>();
                a.is_valid(r).then(|| a.value(r))
            }
            Cells::Text(a) => {
                let a = a.as_string::<i32>();
                a.is_valid(r).then(|| a.value(r).as_bytes())
            }
            Cells::Shown(v) => v[r].as_deref().map(str::as_bytes),
            Cells::Raw(v) => v.get(r).and_then(|c| c.as_deref()),
        }
    }
}

impl Source for ParquetSource {
    fn next_chunk(&mut self, max_rows: usize) -> Result<Option<RawChunk>, IngestError> {
        let mut chunk = RawChunk::new(self.file.clone());
        while chunk.rows() < max_rows {
            match self.reader.next() {
                None => break,
                Some(Ok(b)) => self.push_batch(&mut chunk, &b)?,
                Some(Err(e)) if is_utf8_error(&e) && self.recover(&mut chunk)? => {}
                Some(Err(e)) => return Err(self.unreadable(&e)),
            }
        }
        Ok((chunk.rows() > 0).then_some(chunk))
    }

    fn info(&self) -> SourceInfo {
        self.info.clone()
    }
}
