//! `shh query` and `shh disclosure show`: SQL under a permit, and the settings that protect
//! its answers.

use crate::{open, print_json};
use anyhow::{Result, bail};
use clap::Subcommand;
use shh_hub::query::{Format, QueryRequest};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `shh disclosure`.
#[derive(Subcommand)]
pub enum DisclosureCmd {
    /// The hub's disclosure-control settings (set in `shh.toml`; no query changes them).
    Show,
}

/// `shh query`.
pub async fn query(
    hub: &Path,
    permits: Vec<String>,
    sql: String,
    format: &str,
    out: Option<PathBuf>,
    json: bool,
) -> Result<ExitCode> {
    let Some(format) = Format::parse(format) else {
        bail!("--format is one of table, csv, json, parquet, not {format:?}");
    };
    if format == Format::Parquet && out.is_none() {
        bail!("--format parquet needs --out FILE");
    }
    let (hub, s) = open(hub).await?;
    let r = hub.query(&s, &QueryRequest { permits, sql }).await?;
    let bytes = r.to_bytes(format)?;
    match &out {
        Some(path) => crate::airlock::write_whole(path, &bytes)?,
        None => std::io::stdout().write_all(&bytes)?,
    }
    let p = &r.provenance;
    if json {
        // The rows went to stdout or the file; what they came from goes to stderr.
        let text = serde_json::to_string(p)?;
        eprintln!("{text}");
    } else {
        eprintln!(
            "{} rows · {} · query {} · result {}",
            p.rows,
            p.versions.join(", "),
            &p.query_hash[..12],
            &p.result_hash[..12]
        );
        if let Some(d) = &p.disclosure {
            let rules: Vec<String> = d.rules.iter().map(|(k, v)| format!("{k} {v}")).collect();
            eprintln!(
                "disclosure control: {} of {} cells published ({})",
                d.published,
                d.cells,
                rules.join(", ")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `shh disclosure show`.
pub async fn disclosure(cmd: DisclosureCmd, hub: &Path, json: bool) -> Result<ExitCode> {
    let (hub, s) = open(hub).await?;
    match cmd {
        DisclosureCmd::Show => {
            let d = hub.disclosure_settings(&s).await?;
            if json {
                print_json(&d)?;
            } else {
                outln!(
                    "threshold        {} distinct patients per published cell",
                    d.threshold
                );
                outln!("rounding         counts to a multiple of {}", d.rounding);
                outln!(
                    "count noise      ±{} (cell key, per hub record keys)",
                    d.count_noise
                );
                outln!(
                    "magnitude noise  {} × the largest contribution (sums, means)",
                    d.magnitude_noise
                );
                outln!(
                    "dominance        one patient ≤ {:.0} %, two ≤ {:.0} % of a sum",
                    d.dominance_one * 100.0,
                    d.dominance_two * 100.0
                );
                outln!(
                    "overlap          a cell within {} patients of one released earlier gets its answer",
                    d.threshold.saturating_sub(1)
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
