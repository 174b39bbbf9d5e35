//! Ingest: producers' files in, pseudonymized Arrow batches out.
//!
//! ```text
//!  file ─► source (CSV | Parquet | FHIR NDJSON) ─► RawChunk (kept columns only)
//!        ─► convert (types, constraints, NIR guard, pseudonyms, generalization, opt-out)
//!        ─► pipeline (ordered, parallel; keys, foreign keys, risk) ─► sink (dataset writer)
//! ```
//!
//! - [`schema`]: Frictionless Table Schema; [`policy`]: column classes; [`plan`]: both
//!   resolved into what each column becomes;
//! - [`source`], [`fhir`]: readers ([`quotes`]: CSV quoting checked as it is read); [`convert`]: per-cell work; [`pipeline`]: the whole run;
//! - [`unique`], [`keys`]: key checks in bounded memory;
//! - [`synth`]: the synthetic SNDS population generator;
//! - [`ucum`]: unit codes checked against UCUM (a unit column never keeps free text).
//!
//! Errors name the file, the line (or Parquet row) and the field, and never quote the value
//! of an identifier column. Nothing here writes to the hub: a failed ingest leaves nothing.

#![forbid(unsafe_code)]

pub mod convert;
pub mod fhir;
pub mod job;
pub mod keys;
pub mod pipeline;
pub mod plan;
pub mod policy;
pub mod quotes;
pub mod schema;
pub mod source;
pub mod synth;
pub mod ucum;
pub mod unique;

pub use convert::{Converter, RawChunk, Reject};
pub use keys::{FkSet, key_hashes};
pub use pipeline::{ForeignKeyReport, IngestStats, PipelineOptions};
pub use plan::Plan;
pub use policy::{Class, ColumnPolicy, Rule};
pub use schema::TableSchema;
pub use source::{Format, Input, Source, SourceInfo};

/// A bad cell or row: where, which field, why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: field {field}: {reason}")]
pub struct CellError {
    /// The file.
    pub file: String,
    /// Line (CSV, NDJSON) or row (Parquet), 1-based.
    pub line: u64,
    /// The field (`(row)`, `(json)` for structural errors).
    pub field: String,
    /// What is wrong (never an identifier's value).
    pub reason: String,
}

/// Ingest errors.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The table schema.
    #[error(transparent)]
    Schema(#[from] schema::SchemaError),
    /// The column policy.
    #[error(transparent)]
    Policy(#[from] policy::PolicyError),
    /// Schema and policy do not fit together.
    #[error("{reason}")]
    Plan {
        /// What is wrong.
        reason: String,
    },
    /// A bad cell or row.
    #[error(transparent)]
    Cell(#[from] CellError),
    /// A file that cannot be read at all.
    #[error("{file}: {reason}")]
    Source {
        /// The file.
        file: String,
        /// What is wrong.
        reason: String,
    },
    /// More rejected rows than `--max-errors` allows.
    #[error("more than {max} rows rejected{}", first.as_ref().map(|f| format!("; first: {f}")).unwrap_or_default())]
    TooManyErrors {
        /// The budget.
        max: u64,
        /// The first rejected row.
        first: Option<CellError>,
    },
    /// A primary key or unique column repeats.
    #[error("duplicate key {columns:?}: {second} repeats {first}")]
    Duplicate {
        /// The key's columns.
        columns: Vec<String>,
        /// Where it first appears.
        first: String,
        /// Where it repeats.
        second: String,
    },
    /// Foreign-key violations with `--strict-fk`.
    #[error(
        "foreign key {fields:?} → {resource}: {violations} rows reference no row of {resource}; first at {first}"
    )]
    ForeignKey {
        /// Columns.
        fields: Vec<String>,
        /// Referenced dataset.
        resource: String,
        /// Rows in violation.
        violations: u64,
        /// The first.
        first: String,
    },
    /// Local I/O.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// No row is left to store: a new, empty version would replace the current one.
    #[error(
        "no row to store ({read} read, {rejected} rejected, {opted_out} excluded by opt-out); nothing was written (allow an empty version with --allow-empty)"
    )]
    Empty {
        /// Rows read.
        read: u64,
        /// Rows rejected.
        rejected: u64,
        /// Rows excluded by the opt-out register.
        opted_out: u64,
    },
    /// The sink (dataset writer) failed.
    #[error("writing the version: {0}")]
    Sink(String),
    /// The caller cancelled the ingest.
    #[error("cancelled")]
    Cancelled,
}
