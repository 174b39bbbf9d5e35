//! Readers: each turns a file into [`RawChunk`]s holding only the columns the plan keeps, so a
//! dropped column is never buffered. Every reader hashes the bytes it reads (BLAKE3), for the
//! manifest and the audit event.

use crate::convert::RawChunk;
use crate::plan::Plan;
use crate::schema::TableSchema;
use crate::{CellError, IngestError};
use arrow::array::{Array, AsArray};
use std::io::Read;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Input formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
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
#[derive(Debug, Clone, serde::Serialize)]
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

pub(crate) fn open_hashing(
    path: &Path,
) -> Result<(Hashing<std::fs::File>, HashState), IngestError> {
    let f = std::fs::File::open(path).map_err(|e| IngestError::Source {
        file: path.display().to_string(),
        reason: e.to_string(),
    })?;
    let state = Arc::new(Mutex::new((blake3::Hasher::new(), 0)));
    Ok((
        Hashing {
            inner: f,
            state: state.clone(),
        },
        state,
    ))
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

/// Maps the plan's columns to positions in a source header; every schema field must be there
/// and nothing else (an unlisted column could be an identifier nobody declared).
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
            field: field.to_owned(),
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
        .columns
        .iter()
        .map(|c| header.iter().position(|h| *h == c.name).unwrap_or(0))
        .collect())
}

/// CSV with a header row (RFC 4180 quoting).
pub struct CsvSource {
    file: Arc<str>,
    rdr: csv::Reader<Hashing<std::fs::File>>,
    state: HashState,
    map: Vec<usize>,
    rec: csv::ByteRecord,
    /// Bytes of the last chunk: the next one is allocated at that size.
    last_bytes: usize,
}

impl CsvSource {
    /// Opens a CSV file and checks its header against the schema.
    pub fn open(path: &Path, schema: &TableSchema, plan: &Plan) -> Result<Self, IngestError> {
        let file: Arc<str> = path.display().to_string().into();
        let (r, state) = open_hashing(path)?;
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(false)
            .buffer_capacity(1 << 20)
            .from_reader(r);
        let header: Vec<String> = rdr
            .headers()
            .map_err(|e| IngestError::Cell(csv_error(&file, &e)))?
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
            map,
            rec: csv::ByteRecord::new(),
            last_bytes: 0,
        })
    }
}

fn csv_error(file: &str, e: &csv::Error) -> CellError {
    let line = e.position().map(|p| p.line()).unwrap_or(0);
    let reason = match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("the row has {len} fields, the header {expected_len}"),
        csv::ErrorKind::Utf8 { err, .. } => format!("invalid UTF-8: {err}"),
        _ => e.to_string(),
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
                    for &i in &self.map {
                        chunk.push(self.rec.get(i).unwrap_or_default());
                    }
                    chunk
                        .lines
                        .push(self.rec.position().map(|p| p.line()).unwrap_or(0));
                }
                Err(e) => return Err(IngestError::Cell(csv_error(&self.file, &e))),
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
pub struct ParquetSource {
    file: Arc<str>,
    reader: parquet::arrow::arrow_reader::ParquetRecordBatchReader,
    /// Batch column of each plan column.
    map: Vec<usize>,
    row: u64,
    info: SourceInfo,
}

impl ParquetSource {
    /// Opens a Parquet file and checks its columns against the schema.
    pub fn open(path: &Path, schema: &TableSchema, plan: &Plan) -> Result<Self, IngestError> {
        let file: Arc<str> = path.display().to_string().into();
        let bad = |reason: String| IngestError::Source {
            file: file.to_string(),
            reason,
        };
        // Hash first: the reader seeks, and the file's identity is its bytes.
        let (mut r, state) = open_hashing(path)?;
        std::io::copy(&mut r, &mut std::io::sink()).map_err(|e| bad(e.to_string()))?;
        let info = info_of(&file, Format::Parquet, &state);
        let f = std::fs::File::open(path).map_err(|e| bad(e.to_string()))?;
        let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
            .map_err(|e| bad(format!("not a readable Parquet file: {e}")))?;
        let header: Vec<String> = builder
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let positions = map_header(&file, &header, schema, plan)?;
        let mask = parquet::arrow::ProjectionMask::roots(
            builder.parquet_schema(),
            positions.iter().copied(),
        );
        let mut sorted = positions.clone();
        sorted.sort_unstable();
        let map = positions
            .iter()
            .map(|p| sorted.iter().position(|s| s == p).unwrap_or(0))
            .collect();
        let reader = builder
            .with_projection(mask)
            .with_batch_size(8192)
            .build()
            .map_err(|e| bad(format!("not a readable Parquet file: {e}")))?;
        Ok(Self {
            file,
            reader,
            map,
            row: 0,
            info,
        })
    }
}

impl Source for ParquetSource {
    fn next_chunk(&mut self, max_rows: usize) -> Result<Option<RawChunk>, IngestError> {
        let mut chunk = RawChunk::new(self.file.clone());
        while chunk.rows() < max_rows {
            let batch = match self.reader.next() {
                None => break,
                Some(Ok(b)) => b,
                Some(Err(e)) => {
                    return Err(IngestError::Cell(CellError {
                        file: self.file.to_string(),
                        line: self.row + 1,
                        field: "(row group)".into(),
                        reason: format!("unreadable Parquet data from this row on: {e}"),
                    }));
                }
            };
            let texts: Vec<_> = self
                .map
                .iter()
                .map(|&i| arrow::compute::cast(batch.column(i), &arrow_schema::DataType::Utf8))
                .collect::<Result<_, _>>()
                .map_err(|e| IngestError::Source {
                    file: self.file.to_string(),
                    reason: e.to_string(),
                })?;
            let strs: Vec<_> = texts.iter().map(|a| a.as_string::<i32>()).collect();
            for r in 0..batch.num_rows() {
                for s in &strs {
                    if s.is_null(r) {
                        chunk.push_null();
                    } else {
                        chunk.push(s.value(r).as_bytes());
                    }
                }
                self.row += 1;
                chunk.lines.push(self.row);
            }
        }
        Ok((chunk.rows() > 0).then_some(chunk))
    }

    fn info(&self) -> SourceInfo {
        self.info.clone()
    }
}
