//! Where a result leaves the hub to. An operation that produces files — a dataset export, the
//! auditor's copy of the audit log, a migration's acceptance report — writes them into a
//! [`Staged`] result that the caller's [`Sink`] opened under a name; the caller chooses the
//! sink: the CLI a local directory ([`DirSink`]), in-process tests and tomorrow's server a
//! [`MemorySink`] they read back or stream to a client.
//!
//! Every sink keeps promise 6: nothing is visible under the result's name until
//! [`Staged::commit`], which makes the whole result appear at once; a result dropped or
//! [`Staged::abort`]ed (an error, a cancelled call) leaves nothing behind, and a name that
//! already holds a result is never overwritten.

#![forbid(unsafe_code)]

mod dir;
mod memory;

pub use dir::DirSink;
pub use memory::MemorySink;

use bytes::Bytes;

/// Errors of sinks.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// A result or file of that name exists; sinks never overwrite.
    #[error("{location} already exists; choose a new name")]
    Exists {
        /// The name the caller chose or the operation derived (public).
        name: String,
        /// Where, in full (a local path: for the local log only).
        location: String,
    },
    /// A name a sink refuses (it would leave the result or hide in it).
    #[error("{name:?} cannot name a result or a file in one: {reason}")]
    BadName {
        /// The name.
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// Writing failed.
    #[error("writing {location}: {source}")]
    Io {
        /// Where (a local path: for the local log only).
        location: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// Result alias.
pub type Result<T, E = SinkError> = std::result::Result<T, E>;

/// A place results go to, chosen by whoever calls the hub.
#[async_trait::async_trait]
pub trait Sink: Send + Sync + std::fmt::Debug {
    /// Where results go, for people (`/srv/exports`, `memory`).
    fn location(&self) -> String;

    /// Starts a result called `name` (one path segment, see [`check_result_name`]). Refused
    /// with [`SinkError::Exists`] when the sink already holds one of that name.
    async fn stage(&self, name: &str) -> Result<Box<dyn Staged>>;
}

/// A result being written: invisible until [`Staged::commit`]; dropping it discards it.
#[async_trait::async_trait]
pub trait Staged: Send + Sync + std::fmt::Debug {
    /// Where the result will be once committed (`/srv/exports/cohort@1a2b…`).
    fn location(&self) -> String;

    /// Starts the file `name`: a relative, `/`-separated path (see [`check_file_name`]); each
    /// file is written once.
    async fn create(&self, name: &str) -> Result<Box<dyn SinkFile>>;

    /// Writes the whole file `name` at once.
    async fn put(&self, name: &str, bytes: Bytes) -> Result<()> {
        let mut f = self.create(name).await?;
        f.write(&bytes).await?;
        f.finish().await
    }

    /// Makes the result, with every finished file, appear under its name at once (durably,
    /// where the sink can). Returns [`Staged::location`].
    async fn commit(self: Box<Self>) -> Result<String>;

    /// Discards everything written (what dropping does, awaited).
    async fn abort(self: Box<Self>);
}

/// A file of a staged result being written.
#[async_trait::async_trait]
pub trait SinkFile: Send + std::fmt::Debug {
    /// Appends `bytes`.
    async fn write(&mut self, bytes: &[u8]) -> Result<()>;

    /// Completes the file (durably, where the sink can). Every file is finished before the
    /// result is committed.
    async fn finish(self: Box<Self>) -> Result<()>;
}

const MAX_SEGMENT: usize = 255;

fn check_segment(whole: &str, s: &str) -> Result<()> {
    let bad = |reason| {
        Err(SinkError::BadName {
            name: whole.to_owned(),
            reason,
        })
    };
    if s.is_empty() {
        return bad("an empty path segment");
    }
    if s == "." || s == ".." {
        return bad("`.` and `..` would leave the result");
    }
    if s.len() > MAX_SEGMENT {
        return bad("a segment longer than 255 bytes");
    }
    if s.chars().any(|c| c == '\\' || c == '\0' || c.is_control()) {
        return bad("a backslash or a control character");
    }
    Ok(())
}

/// A result's name: one path segment, not hidden (hidden names are the sinks' staging area).
pub fn check_result_name(name: &str) -> Result<()> {
    check_segment(name, name)?;
    if name.contains('/') {
        return Err(SinkError::BadName {
            name: name.to_owned(),
            reason: "a result's name is one path segment",
        });
    }
    if name.starts_with('.') {
        return Err(SinkError::BadName {
            name: name.to_owned(),
            reason: "a hidden name",
        });
    }
    Ok(())
}

/// A file's name inside a result: relative `/`-separated segments, none empty, `.` or `..`.
pub fn check_file_name(name: &str) -> Result<()> {
    if name.starts_with('/') {
        return Err(SinkError::BadName {
            name: name.to_owned(),
            reason: "an absolute path",
        });
    }
    name.split('/').try_for_each(|s| check_segment(name, s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_that_would_escape_or_hide_are_refused() {
        for bad in ["", ".", "..", "a/b", ".hidden", "a\\b", "a\0b", "a\nb"] {
            assert!(check_result_name(bad).is_err(), "{bad:?}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "a//b",
            "a/../b",
            "../x",
            "a/",
            "x\\..\\y",
        ] {
            assert!(check_file_name(bad).is_err(), "{bad:?}");
        }
        check_result_name("cohort@1a2b3c4d5e6f").expect("ok");
        check_file_name("data/part-00000.parquet").expect("ok");
        check_file_name(".keep").expect("a hidden file inside a result is fine");
    }

    proptest! {
        /// Whatever a name is, an accepted one stays inside the result: no segment climbs out.
        #[test]
        fn an_accepted_file_name_never_climbs_out(name in "[a-z./\\\\]{0,12}") {
            if check_file_name(&name).is_ok() {
                let p = std::path::Path::new(&name);
                prop_assert!(p.is_relative());
                prop_assert!(p.components().all(|c| matches!(c, std::path::Component::Normal(_))));
            }
        }
    }
}
