//! Standard output and error that never panic: `println!` panics when stdout is a closed pipe
//! (`shh audit log | head -1`). Every line goes through [`line`]; a closed stdout surfaces as
//! [`Closed`], which `main` turns into a quiet exit 0 (the reader chose to stop reading). What
//! the command had done by then stays done: output is printed after each operation completes.
//! Messages to stderr are written when they can be, and dropped when they cannot.

use std::io::Write;

/// Stdout was closed by its reader.
#[derive(Debug, thiserror::Error)]
#[error("standard output was closed")]
pub struct Closed;

fn written(r: std::io::Result<()>) -> anyhow::Result<()> {
    match r {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(Closed.into()),
        Err(e) => Err(anyhow::Error::new(e).context("writing to standard output")),
    }
}

/// Writes `args` (and a line end with `newline`) to stdout.
pub fn write(args: std::fmt::Arguments<'_>, newline: bool) -> anyhow::Result<()> {
    let mut o = std::io::stdout().lock();
    written(o.write_fmt(args).and_then(|()| {
        if newline {
            o.write_all(b"\n")
        } else {
            o.flush()
        }
    }))
}

/// Writes `v` as pretty JSON and a line end.
pub fn json(v: &impl serde::Serialize) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(v)?;
    write(format_args!("{text}"), true)
}

/// Writes a line to stderr if it can.
pub fn err(args: std::fmt::Arguments<'_>) {
    let mut e = std::io::stderr().lock();
    let _ = e.write_fmt(args).and_then(|()| e.write_all(b"\n"));
}

/// Whether an error is only stdout having been closed.
pub fn is_closed(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<Closed>().is_some())
}

/// A line to stdout; returns [`Closed`] from the enclosing function when stdout is closed.
macro_rules! outln {
    () => { $crate::out::write(format_args!(""), true)? };
    ($($t:tt)*) => { $crate::out::write(format_args!($($t)*), true)? };
}

/// Text to stdout, no line end.
macro_rules! out {
    ($($t:tt)*) => { $crate::out::write(format_args!($($t)*), false)? };
}

/// A line to stderr, if it can be written.
macro_rules! errln {
    ($($t:tt)*) => { $crate::out::err(format_args!($($t)*)) };
}
