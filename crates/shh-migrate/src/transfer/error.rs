//! The failure of one object's attempt, and whether another attempt may cure it (the
//! classification is `shh_store::retry`'s, shared with every store client).

use super::*;

/// The error of one object's attempt.
#[derive(Debug)]
pub(super) enum ObjErr {
    Store(&'static str, object_store::Error),
    /// A request shh signs itself (chunk-signed uploads).
    Raw(&'static str, RawError),
    /// The bytes at the destination are not the source's.
    Mismatch(String),
    /// The source changed since it was listed.
    Changed(String),
    /// The destination holds another object under this name.
    Conflict(String),
    Journal(MigrateError),
}

impl ObjErr {
    pub(super) fn retriable(&self) -> bool {
        match self {
            ObjErr::Store(_, e) => shh_store::retry::retriable(e),
            ObjErr::Raw(_, e) => e.retriable(),
            ObjErr::Mismatch(_) => true,
            ObjErr::Changed(_) | ObjErr::Conflict(_) | ObjErr::Journal(_) => false,
        }
    }

    pub(super) fn not_found(&self) -> bool {
        matches!(self, ObjErr::Store(_, object_store::Error::NotFound { .. }))
    }
}

impl std::fmt::Display for ObjErr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ObjErr::Store(op, e) => write!(f, "{op}: {e}"),
            ObjErr::Raw(op, e) => write!(f, "{op}: {e}"),
            ObjErr::Mismatch(s) => write!(f, "verification failed: {s}"),
            ObjErr::Changed(s) => write!(f, "source changed during the run: {s}"),
            ObjErr::Conflict(s) => write!(f, "{s}"),
            ObjErr::Journal(e) => write!(f, "journal: {e}"),
        }
    }
}

pub(super) fn st(op: &'static str) -> impl FnOnce(object_store::Error) -> ObjErr {
    move |e| ObjErr::Store(op, e)
}

/// The error of a chunk-signed PUT, as the copy loop classifies it.
pub(super) fn raw_err(e: RawError) -> ObjErr {
    match e {
        RawError::Length { got, want } => {
            ObjErr::Changed(format!("{got} bytes read, {want} expected"))
        }
        RawError::Source(e) => ObjErr::Store("read", e),
        e => ObjErr::Raw("write", e),
    }
}
