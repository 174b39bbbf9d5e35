//! `shh migrate …`: the operator's commands to move a hub between clouds, and the auditor's
//! `check-report`.

use crate::task::{self, Style};
use crate::{human_bytes, open, print_json};
use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use shh_hub::migrate::{
    AcceptanceReport, CompareRequest, CutoverRequest, FinalizeRequest, MirrorRequest, Options,
    PlanHeader, PlanRequest, RollbackRequest, RunReport, RunRequest, SwitchReport, VerifyMode,
    VerifyRequest, check_report,
};
use shh_hub::{Hub, Session};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Subcommand)]
pub enum MigrateCmd {
    /// List both stores, classify every object, and write a hashed plan (nothing is copied).
    Plan {
        /// Source store (default: the hub's primary store).
        #[arg(long)]
        from: Option<String>,
        /// Destination store.
        #[arg(long)]
        to: String,
        /// Only objects under this prefix.
        #[arg(long)]
        prefix: Option<String>,
        /// Compare objects of the same size by content during the run.
        #[arg(long)]
        checksum: bool,
        /// Concurrent transfers assumed by the estimate.
        #[arg(long, default_value_t = 32)]
        transfers: usize,
        /// The plan (its objects go to PLAN.objects.jsonl beside it).
        #[arg(long)]
        out: PathBuf,
    },
    /// Copy what a plan says (or plan and copy), verifying every object; resumable.
    Run {
        /// A plan written by `shh migrate plan`.
        #[arg(long, conflicts_with_all = ["from", "to"])]
        plan: Option<PathBuf>,
        /// Source store (default: the hub's primary store).
        #[arg(long)]
        from: Option<String>,
        /// Destination store.
        #[arg(long, required_unless_present = "plan")]
        to: Option<String>,
        /// Only objects under this prefix.
        #[arg(long)]
        prefix: Option<String>,
        #[command(flatten)]
        t: TransferArgs,
    },
    /// Incremental re-run for the parallel-operation window.
    Sync {
        /// Source store (default: the hub's primary store).
        #[arg(long)]
        from: Option<String>,
        /// Destination store.
        #[arg(long)]
        to: String,
        /// Only objects under this prefix.
        #[arg(long)]
        prefix: Option<String>,
        /// Quarantine (under .shh-quarantine/) and delete objects only at the destination.
        #[arg(long)]
        delete: bool,
        /// Refuse to run if more objects than this would be deleted.
        #[arg(long, default_value_t = 1000)]
        max_delete: u64,
        #[command(flatten)]
        t: TransferArgs,
    },
    /// Check every object the manifests reference at a store; write the signed acceptance report.
    Verify {
        /// Store to check (default: the hub's primary store).
        #[arg(long)]
        to: Option<String>,
        /// Also decrypt and check the plaintext hashes.
        #[arg(long)]
        deep: bool,
        /// Report directory (default: <hub>/migrate/reports/<time>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Objects read at once.
        #[arg(long, default_value_t = 16)]
        transfers: usize,
    },
    /// Check an acceptance report with the hub's public key only (for auditors).
    CheckReport {
        /// The report directory.
        dir: PathBuf,
        /// The audit public key (`shh audit pubkey`).
        #[arg(long)]
        pubkey: PathBuf,
    },
    /// Read-only, final sync, verify, switch the primary store to the target.
    Cutover {
        /// The new primary store.
        #[arg(long)]
        to: String,
        /// Do not keep the old store current by dual writes until `finalize`.
        #[arg(long)]
        no_mirror: bool,
        /// Acceptance report directory (default: <hub>/migrate/reports/<time>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Seconds to wait for other shh processes to close the hub (the switch must be alone).
        #[arg(long, default_value_t = 10)]
        wait: u64,
        #[command(flatten)]
        t: TransferArgs,
    },
    /// Back to the store the hub ran on before the cut-over (new objects are copied back).
    Rollback {
        /// Seconds to wait for other shh processes to close the hub (the switch must be alone).
        #[arg(long, default_value_t = 10)]
        wait: u64,
        #[command(flatten)]
        t: TransferArgs,
    },
    /// End the rollback window (the old store is left in place, no longer used).
    Finalize {
        /// Seconds to wait for other shh processes to close the hub (they would go on
        /// mirroring).
        #[arg(long, default_value_t = 10)]
        wait: u64,
    },
    /// Send every new write to a second store too (dual-write), or stop with --off.
    Mirror {
        /// The mirror store.
        #[arg(long, required_unless_present = "off")]
        to: Option<String>,
        /// Stop mirroring.
        #[arg(long, conflicts_with = "to")]
        off: bool,
        /// Seconds to wait for other shh processes to close the hub (a process that opened it
        /// before would not mirror its writes).
        #[arg(long, default_value_t = 10)]
        wait: u64,
    },
    /// Shadow-read a sample of objects from the primary and another store and compare them.
    Compare {
        /// The other store (default: the mirror, or the cut-over's source).
        #[arg(long = "with")]
        with: Option<String>,
        /// Percentage of objects to read.
        #[arg(long, default_value_t = 10.0)]
        sample: f64,
        /// Objects read at once.
        #[arg(long, default_value_t = 16)]
        transfers: usize,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum VerifyArg {
    /// Where the target checks the SHA-256 of every signed request body (probed), that check
    /// on receipt; elsewhere a read-back compared by BLAKE3.
    Auto,
    /// Read every written object back and compare BLAKE3.
    Readback,
    /// Compare sizes only (run `shh migrate verify` afterwards).
    Size,
}

#[derive(Args)]
pub struct TransferArgs {
    /// Objects in flight.
    #[arg(long, default_value_t = 32)]
    transfers: usize,
    /// Parts of one large object in flight (over all objects, at most --transfers parts).
    #[arg(long, default_value_t = 8)]
    part_transfers: usize,
    /// Source bytes buffered at once over all transfers (whole small objects and parts):
    /// the bound on memory.
    #[arg(long, default_value = "512M", value_parser = parse_size)]
    buffer: u64,
    /// Objects at least this large are sent part by part (resumable on S3 and Azure).
    #[arg(long, default_value = "128M", value_parser = parse_size)]
    multipart_threshold: u64,
    /// Part size (raised to fit the target's part-count limit).
    #[arg(long, default_value = "8M", value_parser = parse_size)]
    part_size: u64,
    /// Bandwidth limit over all transfers, bytes per second (K, M, G suffixes: 1024-based).
    #[arg(long, value_parser = parse_size)]
    bwlimit: Option<u64>,
    /// Verification of every object written.
    #[arg(long, value_enum, default_value = "auto")]
    verify: VerifyArg,
    /// Compare same-size objects by content (reads both sides).
    #[arg(long)]
    checksum: bool,
    /// Attempts per request.
    #[arg(long, default_value_t = 6)]
    retries: u32,
}

impl TransferArgs {
    fn options(&self, delete: bool) -> Options {
        Options {
            transfers: self.transfers.max(1),
            multipart_threshold: self.multipart_threshold.max(1),
            part_size: self.part_size.max(1),
            part_concurrency: self.part_transfers.max(1),
            buffer: self.buffer.max(1),
            bwlimit: self.bwlimit,
            verify: match self.verify {
                VerifyArg::Auto => VerifyMode::Auto,
                VerifyArg::Readback => VerifyMode::ReadBack,
                VerifyArg::Size => VerifyMode::Size,
            },
            retry: shh_hub::migrate::BackoffConfig {
                max_attempts: self.retries.max(1),
                ..Default::default()
            },
            delete,
            ..Options::default()
        }
    }
}

/// `64M`, `1.5G`, `512K`, `1000` (bytes; suffixes are powers of 1024).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m = match c.to_ascii_uppercase() {
                'B' => 1u64,
                'K' => 1 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'T' => 1 << 40,
                _ => {
                    return Err(format!(
                        "unknown size suffix {c:?} in {s:?} (use K, M, G or T)"
                    ));
                }
            };
            (&s[..i], m)
        }
        _ => (s, 1),
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("not a size: {s:?} (e.g. 512K, 16M, 1.5G)"))?;
    if !(v.is_finite() && v >= 0.0) {
        return Err(format!("not a size: {s:?}"));
    }
    Ok((v * mult as f64) as u64)
}

fn default_report_dir(hub: &Hub) -> PathBuf {
    hub.migrate_dir()
        .join("reports")
        .join(chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ").to_string())
}

fn print_plan(h: &PlanHeader, path: &Path) -> Result<()> {
    let s = &h.summary;
    outln!("plan {} ({})", path.display(), &h.plan_hash[..16]);
    outln!("  from {}", h.from);
    outln!("  to   {}", h.to);
    if let Some(p) = &h.proxy {
        outln!("  via  {p} (the residency policy's proxy)");
    }
    for (name, t) in [
        ("copy", s.copy),
        ("same", s.same),
        ("check", s.check),
        ("replace", s.replace),
        ("only at destination", s.dest_only),
    ] {
        outln!(
            "  {name:<20} {:>10} objects {:>12}",
            t.objects,
            human_bytes(t.bytes)
        );
    }
    outln!(
        "  estimate: {:.0} s at {}/s with {} transfers",
        h.estimate.seconds,
        human_bytes(h.estimate.bytes_per_sec as u64),
        h.estimate.transfers
    );
    let to = &h.capabilities.to;
    outln!(
        "  target: {} · create-only writes {} · resumable multipart {} · max {} parts · verify by {}",
        to.kind,
        match to.conditional_create {
            Some(true) => "enforced",
            Some(false) => "NOT enforced",
            None => "not probed",
        },
        if to.resumable_multipart { "yes" } else { "no" },
        to.max_parts,
        to.verification
    );
    for n in &to.notes {
        outln!("    note: {n}");
    }
    Ok(())
}

fn print_run(r: &RunReport) -> Result<()> {
    let s = &r.stats;
    outln!(
        "{} → {}: {} copied ({}), {} replaced, {} already there, {} same, {} checked equal",
        r.from,
        r.to,
        s.copied.objects,
        human_bytes(s.copied.bytes),
        s.replaced.objects,
        s.already_there.objects,
        s.same.objects,
        s.checked_equal.objects
    );
    let rate = s.bytes_sent as f64 / s.seconds.max(1e-9);
    outln!(
        "  sent {} in {:.1} s ({}/s); read back {}; {} parts resumed ({} not re-sent); {} retries",
        human_bytes(s.bytes_sent),
        s.seconds,
        human_bytes(rate as u64),
        human_bytes(s.bytes_read_back),
        s.parts_resumed,
        human_bytes(s.bytes_resumed),
        s.retries
    );
    if s.chunk_signed.objects > 0 {
        outln!(
            "  streamed in signed chunks: {} object(s), {}",
            s.chunk_signed.objects,
            human_bytes(s.chunk_signed.bytes)
        );
    }
    if s.staging_removed.objects > 0 || s.uploads_aborted > 0 {
        outln!(
            "  left by an interrupted earlier run and removed: {} staging file set(s) ({}), {} open upload(s) aborted",
            s.staging_removed.objects,
            human_bytes(s.staging_removed.bytes),
            s.uploads_aborted
        );
    }
    if s.empty_gone.objects > 0 {
        outln!(
            "  {} empty object(s) listed but not found at the source, nothing to copy: folder \
             markers (keys ending in /) or deleted since listing; first: {}",
            s.empty_gone.objects,
            s.empty_gone_names.first().map_or("", String::as_str)
        );
    }
    if s.quarantined.objects > 0 || s.dest_only_kept.objects > 0 {
        outln!(
            "  destination-only: {} quarantined and deleted, {} kept",
            s.quarantined.objects,
            s.dest_only_kept.objects
        );
    }
    outln!("  verification: {}", s.verification);
    if r.audit_seq > 0 {
        outln!(
            "  journal {} · audit event #{}",
            r.journal.display(),
            r.audit_seq
        );
    } else {
        outln!("  journal {}", r.journal.display());
    }
    for f in s.failures.iter().take(20) {
        outln!("  FAILED {}: {}", f.path, f.error);
    }
    Ok(())
}

fn print_report(r: &AcceptanceReport, dir: &Path) -> Result<()> {
    outln!(
        "{}: {} objects checked at {} ({} ok, {} failed){}",
        if r.summary.failed == 0 {
            "ACCEPTED"
        } else {
            "REJECTED"
        },
        r.summary.objects,
        r.target,
        r.summary.ok,
        r.summary.failed,
        if r.deep { ", plaintext too" } else { "" }
    );
    outln!(
        "  Merkle root {} signed by audit key {}",
        r.merkle_root,
        r.key
    );
    outln!(
        "  report: {}/report.{{json,md,html}}, objects.jsonl",
        dir.display()
    );
    if let Some(f) = &r.first_failure {
        outln!("  first bad object: {f}");
    }
    Ok(())
}

fn run_exit(r: &RunReport) -> ExitCode {
    if let Some(f) = r.stats.failures.first() {
        errln!(
            "error: {} object(s) failed; first: {}: {}",
            r.stats.failures.len(),
            f.path,
            f.error
        );
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn print_switch(r: &SwitchReport, what: &str) -> Result<()> {
    outln!("{what}: the hub now runs on {} (was {})", r.to, r.from);
    print_run(&r.sync)?;
    if let Some(a) = &r.acceptance {
        outln!(
            "  acceptance: {} objects verified, Merkle root {}",
            a.summary.objects,
            a.merkle_root
        );
    }
    if let Some(m) = &r.mirror {
        outln!("  dual writes to {m} until `shh migrate finalize`");
    }
    Ok(())
}

/// `run` and `sync`: a progress bar sized once the plan is known, the report, the exit code.
async fn run_and_print(hub: &Hub, s: &Session, req: RunRequest, json: bool) -> Result<ExitCode> {
    let task = task::long(json, Style::Bytes, "");
    let t = task.clone();
    let r = hub
        .migrate_run(s, &task, req, move |h| {
            t.phase(
                "sending",
                Some(h.summary.bytes_to_send()),
                shh_hub::Unit::Bytes,
            )
        })
        .await;
    task.finish();
    let r = r?;
    if json {
        print_json(&r)?;
    } else {
        print_run(&r)?;
    }
    Ok(run_exit(&r))
}

pub async fn migrate(cmd: MigrateCmd, hub_dir: &Path, json: bool) -> Result<ExitCode> {
    if let MigrateCmd::CheckReport { dir, pubkey } = &cmd {
        let text = std::fs::read_to_string(pubkey)
            .with_context(|| format!("cannot read {}", pubkey.display()))?;
        let keys = shh_hub::audit::PublicKey::parse_all(&text)?;
        let c = check_report(dir, &keys)?;
        if json {
            print_json(&c)?;
        } else {
            outln!(
                "report OK: signature by {} verifies, {} object lines match the Merkle root {}",
                c.report.key,
                c.lines,
                c.report.merkle_root
            );
            print_report(&c.report, dir)?;
        }
        return Ok(if c.report.summary.failed == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    let (hub, s) = open(hub_dir).await?;
    let s = &s;
    match cmd {
        MigrateCmd::CheckReport { .. } => Ok(ExitCode::SUCCESS),
        MigrateCmd::Plan {
            from,
            to,
            prefix,
            checksum,
            transfers,
            out,
        } => {
            let req = PlanRequest {
                from,
                to,
                prefix,
                checksum,
                transfers,
                out: out.clone(),
            };
            let h = hub.migrate_plan(s, &req).await?;
            if json {
                print_json(&h)?;
            } else {
                print_plan(&h, &out)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        MigrateCmd::Run {
            plan,
            from,
            to,
            prefix,
            t,
        } => {
            let req = RunRequest {
                plan,
                from,
                to,
                prefix,
                checksum: t.checksum,
                options: t.options(false),
                max_delete: 0,
                sync: false,
            };
            run_and_print(&hub, s, req, json).await
        }
        MigrateCmd::Sync {
            from,
            to,
            prefix,
            delete,
            max_delete,
            t,
        } => {
            let req = RunRequest {
                plan: None,
                from,
                to: Some(to),
                prefix,
                checksum: t.checksum,
                options: t.options(delete),
                max_delete,
                sync: true,
            };
            run_and_print(&hub, s, req, json).await
        }
        MigrateCmd::Verify {
            to,
            deep,
            out,
            transfers,
        } => {
            let dir = out.unwrap_or_else(|| default_report_dir(&hub));
            let what = format!(
                "checking every manifest-referenced object{}",
                if deep { " (decrypting)" } else { "" }
            );
            let task = task::long(json, Style::Count("objects"), &what);
            let (sink, report) = crate::result_sink(&dir)?;
            let req = VerifyRequest {
                to,
                deep,
                concurrency: transfers,
                report,
            };
            let r = hub.migrate_verify(s, &task, &req, &sink).await;
            task.finish();
            let r = r?;
            if json {
                print_json(&r)?;
            } else {
                print_report(&r, &dir)?;
            }
            if let Some(f) = &r.first_failure {
                errln!("error: verification failed; first bad object: {f}");
                return Ok(ExitCode::FAILURE);
            }
            Ok(ExitCode::SUCCESS)
        }
        MigrateCmd::Cutover {
            to,
            no_mirror,
            out,
            wait,
            t,
        } => {
            let dir = out.unwrap_or_else(|| default_report_dir(&hub));
            let (sink, report) = crate::result_sink(&dir)?;
            let task = task::long(json, Style::Bytes, "final sync");
            let req = CutoverRequest {
                to,
                options: t.options(false),
                wait: Duration::from_secs(wait),
                mirror_source: !no_mirror,
                report,
            };
            let r = hub.migrate_cutover(s, &task, &req, &sink).await;
            task.finish();
            let r = r?;
            if json {
                print_json(&r)?;
            } else {
                print_switch(&r, "cut-over complete")?;
                outln!("  acceptance report: {}", dir.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        MigrateCmd::Rollback { wait, t } => {
            let task = task::long(json, Style::Bytes, "copying back");
            let req = RollbackRequest {
                options: t.options(false),
                wait: Duration::from_secs(wait),
            };
            let r = hub.migrate_rollback(s, &task, &req).await;
            task.finish();
            let r = r?;
            if json {
                print_json(&r)?;
            } else {
                print_switch(&r, "rolled back")?;
            }
            Ok(ExitCode::SUCCESS)
        }
        MigrateCmd::Finalize { wait } => {
            let m = hub
                .migrate_finalize(
                    s,
                    &FinalizeRequest {
                        wait: Duration::from_secs(wait),
                    },
                )
                .await?;
            if json {
                print_json(&m)?;
            } else {
                outln!(
                    "finalized: the hub runs on {}; {} is no longer used or kept current.",
                    m.target,
                    m.source
                );
                outln!(
                    "  nothing was deleted there: remove it with the provider's tools when your retention rules allow."
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        MigrateCmd::Mirror { to, off, wait } => {
            if off && to.is_some() {
                bail!("--to and --off exclude each other");
            }
            hub.migrate_mirror(
                s,
                &MirrorRequest {
                    to: to.clone(),
                    wait: Duration::from_secs(wait),
                },
            )
            .await?;
            match &hub.config().await.mirror {
                Some(m) => outln!("every new write now also goes to {m}"),
                None => outln!("mirroring stopped"),
            }
            Ok(ExitCode::SUCCESS)
        }
        MigrateCmd::Compare {
            with,
            sample,
            transfers,
        } => {
            let req = CompareRequest {
                with,
                pct: sample,
                concurrency: transfers,
            };
            let r = hub.migrate_compare(s, &req).await?;
            if json {
                print_json(&r)?;
            } else {
                outln!(
                    "{} of {} objects read from {} and {}: {} equal, {} missing, {} different ({} per side)",
                    r.sampled,
                    r.listed,
                    r.primary,
                    r.other,
                    r.equal,
                    r.missing.len(),
                    r.differ.len(),
                    human_bytes(r.bytes)
                );
                for p in r.missing.iter().take(20) {
                    outln!("  missing: {p}");
                }
                for p in r.differ.iter().take(20) {
                    outln!("  differs: {p}");
                }
            }
            Ok(if r.missing.is_empty() && r.differ.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_parse_with_binary_suffixes() {
        assert_eq!(parse_size("1000"), Ok(1000));
        assert_eq!(parse_size("16M"), Ok(16 << 20));
        assert_eq!(parse_size("1.5k"), Ok(1536));
        assert!(parse_size("12Q").is_err());
        assert!(parse_size("-1M").is_err());
    }
}
