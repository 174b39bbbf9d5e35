//! `shh export …` (the airlock) and `shh register export` (the public register).

use crate::{open, print_json};
use anyhow::{Result, bail};
use clap::Subcommand;
use shh_hub::access::airlock::{
    ExportAskRequest, ExportReviewRequest, ExportUpdateRequest, ExportView,
};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `shh export`.
#[derive(Subcommand)]
pub enum ExportCmd {
    /// Ask for a query's result to leave the hub (checked now, reviewed by two output checkers).
    Request {
        /// The permit the query runs under (repeat for a join: one per dataset).
        #[arg(long, required = true)]
        permit: Vec<String>,
        /// The query.
        #[arg(long)]
        query: String,
        /// Why the result should leave.
        #[arg(long)]
        reason: String,
        /// csv, json or parquet.
        #[arg(long, default_value = "csv")]
        format: String,
    },
    /// Review a request (an output checker, not its requester): signed with your key.
    Review {
        /// The request.
        id: String,
        /// Approve it.
        #[arg(long, conflicts_with = "reject")]
        approve: bool,
        /// Reject it.
        #[arg(long)]
        reject: bool,
        /// Your note.
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Change a request's query or reason (its reviews start again).
    Update {
        /// The request.
        id: String,
        /// The new query.
        #[arg(long)]
        query: Option<String>,
        /// The new reason.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Take an approved request's file (computed again on the versions reviewed, hashed, logged).
    Release {
        /// The request.
        id: String,
        /// The file to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// The requests (of a project).
    List {
        /// Only this project's.
        #[arg(long)]
        project: Option<String>,
    },
    /// One request.
    Show {
        /// The request.
        id: String,
    },
}

/// `shh register`.
#[derive(Subcommand)]
pub enum RegisterCmd {
    /// Write the public register of projects as `register.json` and `register.md` in DIR.
    Export {
        /// The directory to write into.
        #[arg(long)]
        out: PathBuf,
    },
}

fn print_export(v: &ExportView) -> Result<()> {
    let r = &v.record;
    outln!(
        "{}  {:?}  revision {}  project {}  permits {}",
        r.id,
        v.state,
        r.revision,
        r.project,
        r.permits.join(", ")
    );
    outln!(
        "  requested by {} at {}: {}",
        r.requester,
        r.created_at,
        r.reason
    );
    outln!("  query:   {}", r.query);
    outln!(
        "  result:  {} rows, {} as {}, on {}",
        r.rows,
        &r.result_hash[..12.min(r.result_hash.len())],
        r.format,
        r.versions.join(", ")
    );
    for rv in &r.reviews {
        outln!(
            "  review:  revision {} {} by {} at {}{}",
            rv.revision,
            if rv.approve { "approved" } else { "rejected" },
            rv.by,
            rv.at,
            if rv.note.is_empty() {
                String::new()
            } else {
                format!(": {}", rv.note)
            }
        );
    }
    for rl in &r.releases {
        outln!(
            "  release: by {} at {}: {} bytes, BLAKE3 {}",
            rl.by,
            rl.at,
            rl.bytes,
            rl.blake3
        );
    }
    Ok(())
}

/// Writes `bytes` to `path` whole or not at all.
pub(crate) fn write_whole(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("shh-partial");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// `shh export …`.
pub async fn export(cmd: ExportCmd, hub: &Path, json: bool) -> Result<ExitCode> {
    let (hub, s) = open(hub).await?;
    let (v, id_only) = match cmd {
        ExportCmd::Request {
            permit,
            query,
            reason,
            format,
        } => (
            hub.export_request(
                &s,
                &ExportAskRequest {
                    permits: permit,
                    query,
                    reason,
                    format,
                },
            )
            .await?,
            true,
        ),
        ExportCmd::Review {
            id,
            approve,
            reject,
            note,
        } => {
            if approve == reject {
                bail!("say --approve or --reject");
            }
            (
                hub.export_review(&s, &ExportReviewRequest { id, approve, note })
                    .await?,
                false,
            )
        }
        ExportCmd::Update { id, query, reason } => (
            hub.export_update(&s, &ExportUpdateRequest { id, query, reason })
                .await?,
            false,
        ),
        ExportCmd::Release { id, out } => {
            let r = hub.export_release(&s, &id).await?;
            write_whole(&out, &r.bytes)?;
            if json {
                print_json(&r.view)?;
            } else if let Some(rl) = r.view.record.releases.last() {
                outln!(
                    "{}: {} bytes, BLAKE3 {}",
                    out.display(),
                    rl.bytes,
                    rl.blake3
                );
            }
            return Ok(ExitCode::SUCCESS);
        }
        ExportCmd::List { project } => {
            let all = hub.exports(&s, project.as_deref()).await?;
            if json {
                print_json(&all)?;
            } else {
                for v in &all {
                    print_export(v)?;
                }
            }
            return Ok(ExitCode::SUCCESS);
        }
        ExportCmd::Show { id } => (hub.export_show(&s, &id).await?, false),
    };
    if json {
        print_json(&v)?;
    } else if id_only {
        outln!("{}", v.record.id);
    } else {
        print_export(&v)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `shh register export`.
pub async fn register(cmd: RegisterCmd, hub: &Path, json: bool) -> Result<ExitCode> {
    let (hub, s) = open(hub).await?;
    let RegisterCmd::Export { out } = cmd;
    let r = hub.register(&s).await?;
    std::fs::create_dir_all(&out)?;
    write_whole(&out.join("register.json"), &serde_json::to_vec_pretty(&r)?)?;
    write_whole(&out.join("register.md"), r.to_markdown().as_bytes())?;
    if json {
        print_json(&r)?;
    } else {
        outln!(
            "{} projects → {} and {}",
            r.projects.len(),
            out.join("register.json").display(),
            out.join("register.md").display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
