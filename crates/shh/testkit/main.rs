//! `shh-testkit`: test-only commands, outside the user's `shh`. The CLI's crash tests need a
//! process to kill while it writes a dataset version or appends events; benchmarks need sample
//! versions. It opens the hub as `shh` does (`SHH_PASSPHRASE`, `SHH_ACTOR`, `SHH_ROLE`).
//!
//! ```text
//! shh-testkit --hub DIR write-sample --dataset NAME --rows N [--rows-per-file N] [--marker S] [--seed N]
//! shh-testkit --hub DIR audit-burst --count N [--writers N]
//! ```

#![forbid(unsafe_code)]

// The CLI's never-panicking output, of which this binary uses a part.
#[macro_use]
#[path = "../src/out.rs"]
#[allow(dead_code, unused_macros)]
mod out;
#[path = "../src/operator.rs"]
mod operator;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use shh_hub::testkit::SampleRequest;
use shh_hub::{Authenticator, Hub, LocalAuthenticator};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "shh-testkit",
    about = "Test-only commands for shh's crash tests"
)]
struct Cli {
    #[arg(long, env = "SHH_HUB")]
    hub: PathBuf,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Write a sample dataset version.
    WriteSample {
        #[arg(long)]
        dataset: String,
        #[arg(long)]
        rows: u64,
        #[arg(long, default_value_t = 1_000_000)]
        rows_per_file: u64,
        #[arg(long)]
        marker: Option<String>,
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Append a burst of events from concurrent writers.
    AuditBurst {
        #[arg(long)]
        count: u64,
        #[arg(long, default_value_t = 64)]
        writers: u64,
    },
}

async fn run(cli: Cli) -> Result<()> {
    let pass = std::env::var("SHH_PASSPHRASE").context("set SHH_PASSPHRASE")?;
    let hub = Arc::new(Hub::open(&cli.hub, &pass).await?);
    let session = LocalAuthenticator
        .authenticate(&hub, &operator::from_env())
        .await?;
    match cli.cmd {
        Cmd::WriteSample {
            dataset,
            rows,
            rows_per_file,
            marker,
            seed,
        } => {
            let req = SampleRequest {
                dataset,
                rows,
                rows_per_file,
                marker,
                seed,
            };
            let mut n = 0usize;
            let r = hub
                .testkit_write_sample(&session, &req, move |path, rows| {
                    n += 1;
                    errln!("file {n} written: {path} ({rows} rows)");
                })
                .await?;
            outln!("{r}");
        }
        Cmd::AuditBurst { count, writers } => {
            let done = Arc::new(std::sync::atomic::AtomicU64::new(0));
            let per = count.div_ceil(writers.max(1));
            let mut tasks = Vec::new();
            for w in 0..writers.max(1) {
                let (hub, done, session) = (hub.clone(), done.clone(), session.clone());
                tasks.push(tokio::spawn(async move {
                    for i in 0..per {
                        hub.testkit_record(&session, w, i).await?;
                        let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                        if n % 1000 == 0 {
                            errln!("appended {n}");
                        }
                    }
                    Ok::<_, shh_hub::HubError>(())
                }));
            }
            for t in tasks {
                t.await??;
            }
            outln!("{}", hub.testkit_audit_size().await?);
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            errln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
