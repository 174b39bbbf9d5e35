//! The ingest pipeline: a reader thread fills chunks, a pool converts them in parallel, and the
//! results are handed on in order to the caller's sink (the dataset writer), so memory holds a
//! bounded number of chunks whatever the file size. Uniqueness is checked in bounded memory
//! ([`UniqueChecker`]); foreign-key misses and risk counts are accumulated on the way.

use crate::convert::{Converted, Converter, Reject};
use crate::source::{Source, SourceInfo};
use crate::unique::UniqueChecker;
use crate::{CellError, IngestError};
use arrow::record_batch::RecordBatch;
use rayon::prelude::*;
use serde::Serialize;
use shh_pseudo::guard::redact;
use shh_pseudo::{RiskAccumulator, RiskReport};
use shh_task::Task;
use std::io::Write;

/// Options.
#[derive(Debug, Clone)]
pub struct PipelineOptions {
    /// Rows per chunk.
    pub chunk_rows: usize,
    /// Rows that may be rejected (written to the rejects file) before the ingest fails;
    /// 0: the first bad row fails it.
    pub max_errors: u64,
    /// Foreign-key violations are errors.
    pub strict_fk: bool,
    /// An ingest that stores no row succeeds (otherwise it fails: see `IngestError::Empty`).
    pub allow_empty: bool,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        Self {
            chunk_rows: 64 * 1024,
            max_errors: 0,
            strict_fk: false,
            allow_empty: false,
        }
    }
}

/// One foreign key's outcome.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct ForeignKeyReport {
    /// Columns.
    pub fields: Vec<String>,
    /// Referenced dataset.
    pub resource: String,
    /// Referenced columns.
    pub reference_fields: Vec<String>,
    /// Whether the referenced dataset was in the hub (else not checked).
    pub checked: bool,
    /// Rows whose key is not in the referenced dataset.
    pub violations: u64,
    /// The first few such rows (`file:line`).
    pub examples: Vec<String>,
}

/// Values that broke the schema in one column (lenient mode).
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Violation {
    /// The column.
    pub field: String,
    /// Values that broke the schema.
    pub count: u64,
    /// The first (`file:line: reason`).
    pub first: String,
}

/// What an ingest read and wrote.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct IngestStats {
    /// Source files.
    pub sources: Vec<SourceInfo>,
    /// Rows read.
    pub rows_read: u64,
    /// Rows stored.
    pub rows_written: u64,
    /// Rows rejected (with `--max-errors`).
    pub rows_rejected: u64,
    /// Rows excluded by the opt-out register.
    pub opted_out: u64,
    /// Lenient mode: schema violations by column, and duplicate keys.
    pub violations: Vec<Violation>,
    /// Lenient mode: duplicate primary keys or unique values (`columns: second repeats first`).
    pub duplicates: Vec<String>,
    /// Foreign keys.
    pub foreign_keys: Vec<ForeignKeyReport>,
    /// Foreign keys that could not be checked (a column dropped).
    pub unchecked_foreign_keys: Vec<String>,
    /// The risk report.
    pub risk: RiskReport,
}

fn locate(sources: &[String], tagged: u64) -> String {
    let file = (tagged >> 40) as usize;
    let line = tagged & ((1 << 40) - 1);
    format!(
        "{}:{line}",
        sources.get(file).map(String::as_str).unwrap_or("?")
    )
}

/// Runs the pipeline over `sources` (read in order), handing each batch to `sink`. `task`
/// counts the rows read and, once cancelled, stops the run at the next chunk with
/// [`IngestError::Cancelled`].
pub fn run(
    conv: &Converter,
    sources: Vec<Box<dyn Source>>,
    opts: &PipelineOptions,
    mut rejects_out: Option<&mut dyn Write>,
    task: &Task,
    mut sink: impl FnMut(RecordBatch) -> Result<(), IngestError>,
) -> Result<IngestStats, IngestError> {
    let plan = &conv.plan;
    let names: Vec<String> = sources.iter().map(|s| s.info().path).collect();
    let workers = rayon::current_num_threads().max(1);
    let (tx, rx) = std::sync::mpsc::sync_channel::<
        Result<(usize, crate::convert::RawChunk), IngestError>,
    >(workers + 1);
    let chunk_rows = opts.chunk_rows.max(1);
    let reader = std::thread::spawn(move || {
        let mut sources = sources;
        let mut infos = Vec::new();
        for (i, s) in sources.iter_mut().enumerate() {
            loop {
                match s.next_chunk(chunk_rows) {
                    Ok(Some(c)) => {
                        if tx.send(Ok((i, c))).is_err() {
                            return infos;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return infos;
                    }
                }
            }
            infos.push(s.info());
        }
        infos
    });

    let mut rows_read = 0u64;
    let mut rows_written = 0u64;
    let mut rejected = 0u64;
    let mut opted_out = 0u64;
    let mut risk = RiskAccumulator::new(
        plan.quasi
            .iter()
            .map(|&i| plan.columns[i].name.clone())
            .collect(),
    );
    let mut pk = UniqueChecker::default();
    let mut uniques: Vec<UniqueChecker> = plan
        .unique
        .iter()
        .map(|_| UniqueChecker::default())
        .collect();
    let mut fk_counts = vec![0u64; plan.foreign_keys.len()];
    let mut viol: Vec<Option<Violation>> = vec![None; plan.columns.len()];
    let mut fk_examples: Vec<Vec<String>> = vec![Vec::new(); plan.foreign_keys.len()];
    let io = |e: std::io::Error| IngestError::Io {
        path: "(temporary files)".into(),
        source: e,
    };
    let mut done = false;
    let mut failure: Option<IngestError> = None;
    while !done && failure.is_none() {
        if task.is_cancelled() {
            failure = Some(IngestError::Cancelled);
            break;
        }
        let mut batch = Vec::with_capacity(workers);
        while batch.len() < workers {
            match rx.recv() {
                Ok(Ok(c)) => batch.push(c),
                Ok(Err(e)) => {
                    failure = Some(e);
                    break;
                }
                Err(_) => {
                    done = true;
                    break;
                }
            }
        }
        let results: Vec<(usize, usize, Result<Converted, CellError>)> = batch
            .par_iter()
            .map(|(i, c)| (*i, c.rows(), conv.convert(c)))
            .collect();
        for (file, n, r) in results {
            rows_read += n as u64;
            task.advance(n as u64);
            let tag = |l: u64| ((file as u64) << 40) | l;
            let c = match r {
                Ok(c) => c,
                Err(e) => {
                    failure.get_or_insert(IngestError::Cell(e));
                    break;
                }
            };
            rejected += c.rejects.len() as u64;
            if let Some(w) = rejects_out.as_deref_mut() {
                for Reject {
                    file,
                    line,
                    field,
                    reason,
                } in &c.rejects
                {
                    // Positions and reasons only; the net catches anything else.
                    let _ = writeln!(
                        w,
                        "{},{line},{},{}",
                        csv_field(&redact(file)),
                        csv_field(&redact(field)),
                        csv_field(&redact(reason))
                    );
                }
            }
            if rejected > opts.max_errors {
                let first = c.rejects.first().cloned();
                failure.get_or_insert(IngestError::TooManyErrors {
                    max: opts.max_errors,
                    first: first.map(|r| CellError {
                        file: r.file,
                        line: r.line,
                        field: r.field,
                        reason: r.reason,
                    }),
                });
                break;
            }
            opted_out += c.opted_out;
            for (ci, l, reason) in c.violations {
                let v = viol[ci].get_or_insert_with(|| Violation {
                    field: plan.columns[ci].name.clone(),
                    count: 0,
                    first: format!("{}: {reason}", locate(&names, tag(l))),
                });
                v.count += 1;
            }
            let tagged: Vec<(u128, u64)> = c.pk.iter().map(|(h, l)| (*h, tag(*l))).collect();
            pk.extend(&tagged).map_err(io)?;
            for (u, keys) in uniques.iter_mut().zip(&c.unique) {
                let tagged: Vec<(u128, u64)> = keys.iter().map(|(h, l)| (*h, tag(*l))).collect();
                u.extend(&tagged).map_err(io)?;
            }
            for (k, l) in &c.fk_misses {
                fk_counts[*k] += 1;
                if fk_examples[*k].len() < 5 {
                    fk_examples[*k].push(locate(&names, tag(*l)));
                }
            }
            risk.merge(c.risk);
            rows_written += c.batch.num_rows() as u64;
            if c.batch.num_rows() > 0
                && let Err(e) = sink(c.batch)
            {
                failure.get_or_insert(e);
                break;
            }
        }
    }
    drop(rx);
    let infos = reader.join().unwrap_or_default();
    if let Some(e) = failure {
        return Err(e);
    }
    let mut dup_errors = Vec::new();
    if let Some(d) = pk.finish().map_err(io)? {
        dup_errors.push(IngestError::Duplicate {
            columns: plan
                .primary_key
                .iter()
                .map(|&k| plan.key_name(k).to_owned())
                .collect(),
            first: locate(&names, d.first),
            second: locate(&names, d.second),
        });
    }
    for (u, &k) in uniques.into_iter().zip(&plan.unique) {
        if let Some(d) = u.finish().map_err(io)? {
            dup_errors.push(IngestError::Duplicate {
                columns: vec![plan.key_name(k).to_owned()],
                first: locate(&names, d.first),
                second: locate(&names, d.second),
            });
        }
    }
    let duplicates = dup_errors.iter().map(ToString::to_string).collect();
    if !conv.lenient
        && let Some(e) = dup_errors.into_iter().next()
    {
        return Err(e);
    }
    if rows_written == 0 && !opts.allow_empty {
        return Err(IngestError::Empty {
            read: rows_read,
            rejected,
            opted_out,
        });
    }
    let foreign_keys: Vec<ForeignKeyReport> = plan
        .foreign_keys
        .iter()
        .enumerate()
        .map(|(k, fk)| ForeignKeyReport {
            fields: fk.names.clone(),
            resource: fk.resource.clone(),
            reference_fields: fk.ref_fields.clone(),
            checked: conv.fk_sets.get(k).is_some_and(Option::is_some),
            violations: fk_counts[k],
            examples: fk_examples[k].clone(),
        })
        .collect();
    if opts.strict_fk
        && let Some(f) = foreign_keys.iter().find(|f| f.violations > 0)
    {
        return Err(IngestError::ForeignKey {
            fields: f.fields.clone(),
            resource: f.resource.clone(),
            violations: f.violations,
            first: f.examples.first().cloned().unwrap_or_default(),
        });
    }
    Ok(IngestStats {
        sources: infos,
        rows_read,
        rows_written,
        rows_rejected: rejected,
        opted_out,
        violations: viol.into_iter().flatten().collect(),
        duplicates,
        foreign_keys,
        unchecked_foreign_keys: plan.unchecked_foreign_keys.clone(),
        risk: risk.report(),
    })
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}
