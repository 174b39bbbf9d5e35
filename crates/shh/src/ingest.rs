//! `shh ingest`, `shh synth snds`, `shh optout …` and `shh datasets risk`: the producer's and
//! the privacy officer's commands.

use crate::task::{self, Style};
use crate::{human_bytes, open, print_json};
use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use shh_hub::ingest::{Format, IngestReport, IngestRequest, OptOutKind, RiskReport};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

#[derive(Args)]
pub struct IngestArgs {
    /// Dataset to write a new version of.
    #[arg(long)]
    dataset: String,
    /// Frictionless Table Schema (JSON); not used for FHIR NDJSON (built-in mapping).
    #[arg(long)]
    schema: Option<PathBuf>,
    /// Column policy (TOML); built-in defaults otherwise.
    #[arg(long)]
    policy: Option<PathBuf>,
    /// csv, parquet or fhir-ndjson (default: from the extension).
    #[arg(long)]
    format: Option<String>,
    /// Reject up to N bad rows (listed in --rejects) instead of failing on the first.
    #[arg(long, default_value_t = 0)]
    max_errors: u64,
    /// Where rejected rows are listed (file, line, field, reason; never values).
    #[arg(long)]
    rejects: Option<PathBuf>,
    /// Foreign-key violations fail the ingest.
    #[arg(long)]
    strict_fk: bool,
    /// FHIR: map resource types without a dedicated mapping by the generic allow-list.
    #[arg(long)]
    fhir_generic: bool,
    /// Report values that break the schema instead of failing (kept without the broken
    /// constraint, or null if not of the type); never relaxes the NIR leak guard.
    #[arg(long)]
    lenient: bool,
    /// Write the version even if no row is left to store (a header-only file, every row
    /// rejected or opted out); without it such an ingest fails and the current version stays.
    #[arg(long)]
    allow_empty: bool,
    /// Input files.
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

#[derive(Subcommand)]
pub enum SynthCmd {
    /// A synthetic population in SNDS shape: T.csv, T.json (Table Schema), T.policy.toml.
    Snds {
        /// Patients.
        #[arg(long, default_value_t = 10_000)]
        patients: u64,
        /// Seed (same seed, same files).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
pub enum OptoutCmd {
    /// Register patients who object (source identifiers; stored only as pseudonyms).
    Add {
        /// Source identifiers (NIRs, spaces, dots and dashes allowed).
        #[arg(required = true)]
        ids: Vec<String>,
        /// What the identifiers are: `nir`, or `fhir-id` (a FHIR Patient's id).
        #[arg(long, default_value = "nir", value_parser = parse_kind)]
        id_type: OptOutKind,
    },
    /// Register the identifiers in a file, one per line (all or none: a bad line names its
    /// number, and nothing is added).
    Import {
        file: PathBuf,
        /// What the identifiers are: `nir`, or `fhir-id` (a FHIR Patient's id).
        #[arg(long, default_value = "nir", value_parser = parse_kind)]
        id_type: OptOutKind,
    },
    /// List the register (pseudonyms and key versions).
    List,
}

fn parse_kind(s: &str) -> Result<OptOutKind, String> {
    match s {
        "nir" => Ok(OptOutKind::Nir),
        "fhir-id" => Ok(OptOutKind::FhirId),
        _ => Err("nir or fhir-id".into()),
    }
}

pub fn print_report(r: &IngestReport) -> Result<()> {
    outln!(
        "{}: {} rows written ({} read, {} rejected, {} excluded by opt-out), pseudonym key v{}",
        r.reference,
        r.stats.rows_written,
        r.stats.rows_read,
        r.stats.rows_rejected,
        r.stats.opted_out,
        r.pseudonym_key_version
    );
    if !r.identifiers.is_empty() {
        outln!("  pseudonymized: {}", r.identifiers.join(", "));
    }
    if !r.dropped.is_empty() {
        let d: Vec<String> = r
            .dropped
            .iter()
            .map(|(n, c)| format!("{n} ({c})"))
            .collect();
        outln!("  dropped:       {}", d.join(", "));
    }
    for s in &r.stats.sources {
        outln!(
            "  source:        {} ({}, blake3 {})",
            s.path,
            human_bytes(s.bytes),
            &s.blake3[..16]
        );
    }
    for v in &r.stats.violations {
        outln!(
            "  schema:        {} value(s) of {} break the schema; first {}",
            v.count,
            v.field,
            v.first
        );
    }
    for d in &r.stats.duplicates {
        outln!("  schema:        {d}");
    }
    for f in &r.stats.foreign_keys {
        if f.checked {
            outln!(
                "  foreign key {:?} → {}: {} violation(s){}",
                f.fields,
                f.resource,
                f.violations,
                if f.examples.is_empty() {
                    String::new()
                } else {
                    format!(", first at {}", f.examples.join(", "))
                }
            );
        } else {
            outln!(
                "  foreign key {:?} → {}: not checked (no such dataset in the hub)",
                f.fields,
                f.resource
            );
        }
    }
    risk_summary(&r.stats.risk)?;
    Ok(())
}

pub fn risk_summary(r: &RiskReport) -> Result<()> {
    if r.quasi_identifiers.is_empty() {
        outln!("  risk:          no quasi-identifier declared");
        return Ok(());
    }
    outln!(
        "  risk:          {} classes over {}; smallest class {}; {:.2}% of records in classes < 5, {:.2}% < 10",
        r.classes,
        r.quasi_identifiers.join(" × "),
        r.smallest_class,
        r.share_below_k5 * 100.0,
        r.share_below_k10 * 100.0
    );
    if let Some(d) = r.drivers.first().filter(|d| d.unique_removed > 0) {
        outln!(
            "                 uniqueness driven most by {} ({} unique records)",
            d.column,
            d.unique_removed
        );
    }
    Ok(())
}

pub async fn ingest(a: IngestArgs, hub: &Path, json: bool) -> Result<ExitCode> {
    let format = match a.format.as_deref() {
        Some(f) => Some(
            Format::parse(f)
                .with_context(|| format!("unknown format {f:?} (csv, parquet, fhir-ndjson)"))?,
        ),
        None => None,
    };
    let (hub, s) = open(hub).await?;
    let req = IngestRequest {
        dataset: a.dataset,
        files: a.files,
        format,
        schema: a.schema,
        policy: a.policy,
        max_errors: a.max_errors,
        rejects: a.rejects,
        strict_fk: a.strict_fk,
        fhir_generic: a.fhir_generic,
        lenient: a.lenient,
        allow_empty: a.allow_empty,
    };
    let task = task::long(
        json,
        Style::Rows,
        &format!("ingesting into {}", req.dataset),
    );
    let start = Instant::now();
    let r = hub.ingest(&s, &task, &req).await;
    task.finish();
    let r = r?;
    if json {
        print_json(&r)?;
    } else {
        print_report(&r)?;
        let secs = start.elapsed().as_secs_f64();
        outln!(
            "  took:          {secs:.2} s ({:.0} rows/s)",
            r.stats.rows_read as f64 / secs.max(1e-9)
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn synth(c: SynthCmd, json: bool) -> Result<ExitCode> {
    let SynthCmd::Snds {
        patients,
        seed,
        out,
    } = c;
    let task = task::long(json, Style::Count("patients"), "synthesizing");
    let start = Instant::now();
    let r = shh_hub::synth::generate(&out, patients, seed, &task);
    task.finish();
    let r = r.with_context(|| format!("writing into {}", out.display()))?;
    let secs = start.elapsed().as_secs_f64();
    if json {
        print_json(&r)?;
    } else {
        for (t, rows, bytes) in &r.tables {
            outln!(
                "{t:<10} {rows:>12} rows  {:>10}  {}",
                human_bytes(*bytes),
                out.join(format!("{t}.csv")).display()
            );
        }
        outln!(
            "{} patients, {} rows in {secs:.2} s ({:.2} M rows/s); schemas and policies beside each CSV",
            r.patients,
            r.rows,
            r.rows as f64 / secs.max(1e-9) / 1e6
        );
        outln!(
            "ingest with: shh ingest --dataset IR_BEN_R --schema {0}/IR_BEN_R.json --policy {0}/IR_BEN_R.policy.toml {0}/IR_BEN_R.csv",
            out.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn optout(c: OptoutCmd, hub: &Path, json: bool) -> Result<ExitCode> {
    let (hub, s) = open(hub).await?;
    match c {
        OptoutCmd::Add { ids, id_type } => {
            report_added(hub.optout_add(&s, &ids, id_type).await?, json)?
        }
        OptoutCmd::Import { file, id_type } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            // Entry #N is line N.
            let ids: Vec<String> = text.lines().map(str::to_owned).collect();
            if ids.iter().all(|l| l.trim().is_empty()) {
                bail!("{}: no identifier", file.display());
            }
            let added = hub
                .optout_add(&s, &ids, id_type)
                .await
                .with_context(|| format!("{} (entry #N is line N)", file.display()))?;
            report_added(added, json)?;
        }
        OptoutCmd::List => {
            let l = hub.optout_list(&s).await?;
            if json {
                print_json(&l)?;
            } else {
                for o in &l {
                    outln!(
                        "{}  key v{}  {}",
                        o.pseudonym,
                        o.key_version,
                        o.added_at.format("%Y-%m-%d %H:%M:%S")
                    );
                }
                outln!("{} patient(s) opted out", l.len());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn report_added((submitted, added): (u64, u64), json: bool) -> Result<()> {
    if json {
        print_json(&serde_json::json!({"submitted": submitted, "added": added}))?;
    } else {
        outln!(
            "{added} added to the opt-out register ({} already there); stored as pseudonyms only",
            submitted - added
        );
    }
    Ok(())
}

pub async fn risk(reference: &str, hub: &Path, json: bool) -> Result<ExitCode> {
    let (hub, s) = open(hub).await?;
    let (reference, report) = hub
        .risk(&s, &shh_hub::ops::DatasetRef::parse(reference)?)
        .await?;
    let Some(r) = report else {
        bail!("{reference}: no risk report (the version was not written by `shh ingest`)");
    };
    if json {
        print_json(&r)?;
    } else {
        out!("{}", r.to_markdown(&reference));
    }
    Ok(ExitCode::SUCCESS)
}
