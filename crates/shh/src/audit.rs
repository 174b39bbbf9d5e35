//! `shh audit …`: read, verify, export and prove the audit log. `verify --export` runs
//! without a hub or a passphrase: it is what an auditor runs on their own machine.

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use shh_hub::audit::{Event, EventFilter, Outcome, PublicKey, SignedTreeHead, VerifyReport};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum AuditCmd {
    /// List events (filters combine).
    Log {
        /// At or after this time (RFC 3339, or a date YYYY-MM-DD).
        #[arg(long)]
        since: Option<String>,
        /// Before this time.
        #[arg(long)]
        until: Option<String>,
        /// Only this actor.
        #[arg(long)]
        actor: Option<String>,
        /// Only this action (`dataset.export`), or a prefix ending in `*` (`dataset.*`).
        #[arg(long)]
        action: Option<String>,
    },
    /// Recompute the Merkle tree, check every signed head; exit non-zero naming the first bad
    /// event. With --export, check an exported copy offline (no hub, no passphrase).
    Verify {
        /// An export directory (from `shh audit export`).
        #[arg(long, requires = "pubkey")]
        export: Option<PathBuf>,
        /// The hub's public key (PEM, from `shh audit pubkey`), obtained out of band.
        #[arg(long)]
        pubkey: Option<PathBuf>,
        /// Signed heads kept from earlier (`shh audit head`): the log must agree with them.
        #[arg(long = "known-head")]
        known_head: Vec<PathBuf>,
    },
    /// Write the events, signed heads and public key as plaintext files for an auditor.
    Export {
        /// New directory to create.
        #[arg(long)]
        out: PathBuf,
    },
    /// An RFC 6962 inclusion proof for one event against a signed head.
    Proof {
        /// The event's sequence number.
        seq: u64,
        /// Tree size of the head to prove against (default: the latest).
        #[arg(long)]
        size: Option<u64>,
    },
    /// Print the audit public key (PEM).
    Pubkey,
    /// Print the latest signed tree head (keep it: later logs must agree with it).
    Head,
}

fn parse_time(s: &str) -> Result<chrono::DateTime<chrono::Utc>> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    let d = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .with_context(|| format!("{s:?} is neither RFC 3339 nor YYYY-MM-DD"))?;
    Ok(d.and_time(chrono::NaiveTime::MIN).and_utc())
}

fn read_known(files: &[PathBuf]) -> Result<Vec<SignedTreeHead>> {
    files
        .iter()
        .map(|f| {
            let text =
                std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
            serde_json::from_str(&text)
                .with_context(|| format!("{} is not a signed tree head", f.display()))
        })
        .collect()
}

fn report(r: &VerifyReport, json: bool, what: &str) -> Result<ExitCode> {
    if json {
        crate::print_json(r)?;
    }
    match (&r.first_bad_seq, &r.problem) {
        (Some(seq), problem) => {
            errln!(
                "audit verification FAILED ({what}): first bad event {seq}: {}",
                problem.as_deref().unwrap_or("")
            );
            Ok(ExitCode::FAILURE)
        }
        (None, _) => {
            if !json {
                let head = r
                    .last_head
                    .as_ref()
                    .map(|h| format!("size {}, root {}", h.head.size, h.head.root))
                    .unwrap_or_else(|| "none".into());
                outln!(
                    "{what}: OK — {} events, {} signed heads checked; latest head: {head}",
                    r.events,
                    r.heads
                );
                if r.decisions > 0 {
                    outln!(
                        "  {} signed decision(s) verified under the keys their deciders enrolled ({} distinct: {})",
                        r.decisions,
                        r.deciders.len(),
                        r.deciders.join(", ")
                    );
                }
                if r.unsigned_tail > 0 {
                    outln!(
                        "  {} event(s) after the latest head (a crash interrupted signing; the next append signs them)",
                        r.unsigned_tail
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub async fn run(cmd: AuditCmd, hub_dir: &Path, json: bool) -> Result<ExitCode> {
    if let AuditCmd::Verify {
        export: Some(dir),
        pubkey,
        known_head,
    } = &cmd
    {
        let Some(pk) = pubkey else {
            bail!("--export needs --pubkey");
        };
        let text =
            std::fs::read_to_string(pk).with_context(|| format!("reading {}", pk.display()))?;
        let keys = PublicKey::parse_all(&text).with_context(|| pk.display().to_string())?;
        let r = shh_hub::audit::verify_export(dir, &keys, read_known(known_head)?)?;
        return report(&r, json, &format!("export {}", dir.display()));
    }
    let (hub, s) = crate::open(hub_dir).await?;
    let s = &s;
    match cmd {
        AuditCmd::Log {
            since,
            until,
            actor,
            action,
        } => {
            let filter = EventFilter {
                since: since.as_deref().map(parse_time).transpose()?,
                until: until.as_deref().map(parse_time).transpose()?,
                actor,
                action,
            };
            let events = hub.audit_events(s, &filter).await?;
            if json {
                crate::print_json(&events)?;
            } else {
                for e in events {
                    print_event(&e)?;
                }
            }
        }
        AuditCmd::Verify { known_head, .. } => {
            let req = shh_hub::audit::AuditVerifyRequest {
                known_heads: read_known(&known_head)?,
            };
            let r = hub.audit_verify(s, &req).await?;
            return report(&r, json, "audit log");
        }
        AuditCmd::Export { out } => {
            let (sink, name) = crate::result_sink(&out)?;
            let req = shh_hub::audit::AuditExportRequest { name };
            let s = hub.audit_export(s, &req, &sink).await?;
            if json {
                crate::print_json(&s)?;
            } else {
                outln!(
                    "exported {} events and {} signed heads to {} (key {})",
                    s.events,
                    s.heads,
                    s.out,
                    s.key
                );
                outln!(
                    "an auditor checks it with: shh audit verify --export {} --pubkey KEY.pem",
                    s.out
                );
            }
        }
        AuditCmd::Proof { seq, size } => {
            let req = shh_hub::audit::AuditProofRequest { seq, size };
            crate::print_json(&hub.audit_proof(s, &req).await?)?
        }
        AuditCmd::Pubkey => {
            let k = hub.audit_public_key().await?;
            if json {
                crate::print_json(&serde_json::json!({
                    "algorithm": "Ed25519",
                    "fingerprint": k.fingerprint(),
                    "pem": k.to_pem(),
                }))?;
            } else {
                out!("{}", k.to_pem());
            }
        }
        AuditCmd::Head => match hub.audit_head(s).await? {
            Some(h) => crate::print_json(&h)?,
            None => bail!("the audit log has no signed head yet"),
        },
    }
    Ok(ExitCode::SUCCESS)
}

fn print_event(e: &Event) -> Result<()> {
    let t = &e.targets;
    let target = [&t.dataset, &t.project, &t.permit, &t.object]
        .into_iter()
        .flatten()
        .cloned()
        .collect::<Vec<_>>()
        .join(" ");
    let outcome = match &e.outcome {
        Outcome::Allowed => "allowed".to_owned(),
        Outcome::Refused { reason } => format!("REFUSED: {reason}"),
        Outcome::Failed { reason } => format!("FAILED: {reason}"),
    };
    let details = e
        .details
        .iter()
        .map(|(k, v)| {
            format!(
                "{k}={}",
                v.as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| v.to_string())
            )
        })
        .collect::<Vec<_>>()
        .join(" ");
    outln!(
        "{:>6}  {}  {} ({})  {}  {}  {}  {}",
        e.seq,
        e.time.format("%Y-%m-%d %H:%M:%S%.3f"),
        e.actor,
        e.role,
        e.action,
        target,
        outcome,
        details
    );
    Ok(())
}
