//! The CLI's side of a long command's [`Task`]: progress bars (hidden with `--json`) and
//! Ctrl-C. The first Ctrl-C cancels the task: the hub stops at its next check, undoes what is
//! half-done, and the command exits with 130. A second Ctrl-C exits at once (130 too); what
//! that interrupts is what a `kill -9` would, and the next run recovers it.

use indicatif::{ProgressBar, ProgressStyle};
use shh_hub::{ProgressSink, Task, Unit};
use std::sync::Arc;
use std::time::Duration;

/// What a bar shows.
#[derive(Clone, Copy)]
pub enum Style {
    /// A spinner with a count of rows.
    Rows,
    /// A bar of bytes (its length set when known).
    Bytes,
    /// A spinner with a count (patients, objects).
    Count(&'static str),
    /// A spinner that prints each step as it starts.
    Steps,
    /// A spinner with a message only.
    Spinner,
}

/// Progress bars drawn by indicatif.
struct Bars {
    pb: ProgressBar,
    style: Style,
}

impl ProgressSink for Bars {
    fn phase(&self, what: &str, total: Option<u64>, _unit: Unit) {
        match self.style {
            Style::Steps => {
                self.pb.println(format!("• {what}"));
                self.pb.set_message(what.to_owned());
            }
            _ => {
                if let Some(t) = total {
                    self.pb.set_length(t);
                }
            }
        }
    }
    fn advance(&self, n: u64) {
        self.pb.inc(n);
    }
    fn finish(&self) {
        self.pb.finish_and_clear();
    }
}

fn template(style: Style) -> String {
    match style {
        Style::Rows => "{spinner} {msg} {human_pos} rows ({per_sec}) {elapsed}".into(),
        Style::Bytes => "{spinner} [{elapsed_precise}] [{bar:30}] {bytes}/{total_bytes} \
                         {bytes_per_sec} ETA {eta} {msg}"
            .into(),
        Style::Count(unit) => format!("{{spinner}} {{msg}} {{human_pos}} {unit} ({{per_sec}})"),
        Style::Steps | Style::Spinner => "{spinner} {msg}".into(),
    }
}

/// A long command's task: bars on stderr unless `json`, cancelled by Ctrl-C.
pub fn long(json: bool, style: Style, what: &str) -> Task {
    let pb = if json {
        ProgressBar::hidden()
    } else {
        let pb = match style {
            Style::Bytes => ProgressBar::new(0),
            _ => ProgressBar::new_spinner(),
        };
        pb.set_style(
            ProgressStyle::with_template(&template(style))
                .unwrap_or_else(|_| ProgressStyle::default_spinner())
                .progress_chars("=> "),
        );
        pb.set_message(what.to_owned());
        pb.enable_steady_tick(Duration::from_millis(200));
        pb
    };
    let task = Task::new(Arc::new(Bars { pb, style }));
    cancel_on_ctrl_c(&task);
    task
}

fn cancel_on_ctrl_c(task: &Task) {
    let t = task.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_err() {
            return;
        }
        errln!(
            "\nstopping: finishing what is in flight, undoing what is half-done (Ctrl-C again to stop at once)"
        );
        t.cancel();
        if tokio::signal::ctrl_c().await.is_ok() {
            std::process::exit(130);
        }
    });
}
