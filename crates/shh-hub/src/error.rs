//! The hub's one error type and what a front end makes of it: a stable [`ErrorKind`] (with the
//! code a JSON error body carries and the CLI's exit code), a public message safe to send to a
//! remote client, and the local detail (paths, inner errors) for the operator's log and the CLI
//! user on their own machine.

use crate::CONFIG_FILE;
use shh_catalog::CatalogError;
use shh_keys::KeystoreError;
use std::path::{Path, PathBuf};

/// What kind of failure an error is: how a front end reports it. The codes are stable (JSON
/// error bodies, scripts); so are the exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    /// What was asked for does not exist (a dataset, a version, a hub).
    NotFound,
    /// The request contradicts the current state (it already exists, it changed meanwhile, a
    /// migration step out of order).
    Conflict,
    /// The input is wrong: a file, line or field, a URL, a name; fix it and retry.
    InvalidInput,
    /// No valid credentials (a wrong passphrase, no session).
    Unauthenticated,
    /// Authenticated, but not allowed (residency, a permit).
    Forbidden,
    /// Another holder has the hub or a lock for now; retry later.
    Busy,
    /// Writes are refused for now (a cut-over is in progress).
    ReadOnly,
    /// Stored bytes or records do not match what they must (tampering, corruption).
    Integrity,
    /// A store, catalog or other service could not be reached or failed; retry later.
    Unavailable,
    /// The caller cancelled it; nothing half-done was left.
    Cancelled,
    /// A fault of the hub itself or of its host (local I/O, a bug).
    Internal,
}

impl ErrorKind {
    /// Every kind, in the README's order.
    pub const ALL: [ErrorKind; 11] = [
        ErrorKind::NotFound,
        ErrorKind::Conflict,
        ErrorKind::InvalidInput,
        ErrorKind::Unauthenticated,
        ErrorKind::Forbidden,
        ErrorKind::Busy,
        ErrorKind::ReadOnly,
        ErrorKind::Integrity,
        ErrorKind::Unavailable,
        ErrorKind::Cancelled,
        ErrorKind::Internal,
    ];

    /// The stable code of JSON error bodies.
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not-found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::InvalidInput => "invalid-input",
            ErrorKind::Unauthenticated => "unauthenticated",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::Busy => "busy",
            ErrorKind::ReadOnly => "read-only",
            ErrorKind::Integrity => "integrity",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Internal => "internal",
        }
    }

    /// The CLI's exit code. 1 stays what it was: the command ran and found a problem (a
    /// failed verification); 2 is clap's for bad usage and ours for bad input; 130 is the
    /// shell's for Ctrl-C.
    pub fn exit_code(self) -> u8 {
        match self {
            ErrorKind::InvalidInput => 2,
            ErrorKind::NotFound => 3,
            ErrorKind::Conflict => 4,
            ErrorKind::Unauthenticated => 5,
            ErrorKind::Forbidden => 6,
            ErrorKind::Busy => 7,
            ErrorKind::ReadOnly => 8,
            ErrorKind::Integrity => 9,
            ErrorKind::Unavailable => 10,
            ErrorKind::Internal => 70,
            ErrorKind::Cancelled => 130,
        }
    }

    /// The HTTP status the server will answer with.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorKind::NotFound => 404,
            ErrorKind::Conflict => 409,
            ErrorKind::InvalidInput => 400,
            ErrorKind::Unauthenticated => 401,
            ErrorKind::Forbidden => 403,
            ErrorKind::Busy => 503,
            ErrorKind::ReadOnly => 423,
            ErrorKind::Integrity => 500,
            ErrorKind::Unavailable => 502,
            ErrorKind::Cancelled => 499,
            ErrorKind::Internal => 500,
        }
    }

    /// What a remote client is told when the error's own message may not leave the hub.
    fn generic(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not found",
            ErrorKind::Conflict => "the request conflicts with the hub's current state",
            ErrorKind::InvalidInput => "invalid input",
            ErrorKind::Unauthenticated => "not authenticated",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::Busy => "the hub is busy; retry later",
            ErrorKind::ReadOnly => "the hub is read-only for now; retry later",
            ErrorKind::Integrity => {
                "stored data failed an integrity check; the operator has been told"
            }
            ErrorKind::Unavailable => "a service the hub depends on is unavailable; retry later",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Internal => "internal error; the operator's log has the details",
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// The body a front end sends for an error: its kind's code and the public message.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ErrorBody {
    /// [`ErrorKind::code`].
    pub code: ErrorKind,
    /// [`HubError::public_message`].
    pub message: String,
}

/// Errors of hub operations.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// No hub in the directory.
    #[error("no hub at {0} (no {CONFIG_FILE}); create one with `shh init`")]
    NotAHub(PathBuf),
    /// A hub already exists.
    #[error("a hub already exists at {0}")]
    AlreadyExists(PathBuf),
    /// The configuration is invalid.
    #[error("invalid configuration {path}: {reason}")]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Keystore (including a wrong passphrase).
    #[error(transparent)]
    Keys(#[from] KeystoreError),
    /// Store URL or residency.
    #[error(transparent)]
    Store(#[from] shh_store::StoreError),
    /// Catalog.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// Datasets.
    #[error(transparent)]
    Dataset(#[from] shh_dataset::DatasetError),
    /// Object store.
    #[error("{0}")]
    Object(#[from] object_store::Error),
    /// Another process holds the hub in a way this operation cannot share.
    #[error("the hub is busy: {0}")]
    Busy(String),
    /// The hub is read-only (a cut-over is in progress).
    #[error("the hub is read-only during a migration cut-over; try again when it is finished")]
    ReadOnly,
    /// A migration step failed or was refused.
    #[error(transparent)]
    Migrate(#[from] shh_migrate::MigrateError),
    /// Audit log: an action whose event cannot be recorded does not report success.
    #[error(transparent)]
    Audit(#[from] shh_audit::AuditError),
    /// Ingest (bad input names the file, line and field).
    #[error(transparent)]
    Ingest(#[from] shh_ingest::IngestError),
    /// Audit signing key.
    #[error(transparent)]
    AuditKey(#[from] shh_audit::KeyError),
    /// Local I/O.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A name or path that would be stored or shown holds a direct identifier.
    #[error(
        "{what} holds {}: refused, because the hub would store or show it in clear; rename it",
        found.describe()
    )]
    Identifier {
        /// Which name (never the name itself).
        what: String,
        /// What the guard found.
        found: shh_pseudo::guard::Found,
    },
    /// No valid credentials: the session could not be established.
    #[error("not authenticated: {0}")]
    Unauthenticated(String),
    /// The session may not do this.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The caller cancelled the operation (Ctrl-C, a closed connection); it left nothing
    /// half-done and may be run again.
    #[error("cancelled: {0}")]
    Cancelled(String),
    /// The caller's sink refused or failed (a result of that name exists, a local disk full).
    #[error(transparent)]
    Sink(#[from] shh_sink::SinkError),
    /// An access rule refused (the rule is named).
    #[error("forbidden: {0}")]
    Denied(#[from] shh_access::Denied),
    /// An access record given is not well-formed (the field is named).
    #[error("invalid {0}")]
    Invalid(#[from] shh_access::Invalid),
    /// A stored record contradicts itself (a sealed key that is not the enrolled one).
    #[error("integrity: {0}")]
    Integrity(String),
    /// A fault of the hub itself.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Result alias.
pub type Result<T, E = HubError> = std::result::Result<T, E>;

pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> HubError + '_ {
    move |source| HubError::Io {
        path: path.to_owned(),
        source,
    }
}

impl HubError {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        use ErrorKind as K;
        match self {
            HubError::NotAHub(_) => K::NotFound,
            HubError::AlreadyExists(_) => K::Conflict,
            HubError::Config { .. } => K::Internal,
            HubError::Keys(e) => keys_kind(e),
            HubError::Store(e) => store_kind(e),
            HubError::Catalog(e) => catalog_kind(e),
            HubError::Dataset(e) => dataset_kind(e),
            HubError::Object(e) => object_kind(e),
            HubError::Busy(_) => K::Busy,
            HubError::ReadOnly => K::ReadOnly,
            HubError::Migrate(e) => migrate_kind(e),
            HubError::Audit(e) => audit_kind(e),
            HubError::Ingest(e) => ingest_kind(e),
            HubError::AuditKey(_) => K::Integrity,
            HubError::Io { .. } => K::Internal,
            HubError::Identifier { .. } => K::InvalidInput,
            HubError::Unauthenticated(_) => K::Unauthenticated,
            HubError::Forbidden(_) | HubError::Denied(_) => K::Forbidden,
            HubError::Invalid(_) => K::InvalidInput,
            HubError::Integrity(_) => K::Integrity,
            HubError::Internal(_) => K::Internal,
            HubError::Cancelled(_) => K::Cancelled,
            HubError::Sink(e) => sink_kind(e),
        }
    }

    /// The message a remote client may see: the kind, and what is wrong with the client's own
    /// input (the file, line and field of an upload, a dataset's name, a URL it gave), never a
    /// local path, an inner error or a value.
    pub fn public_message(&self) -> String {
        let kind = self.kind();
        let own = match self {
            // These name only what the client sent or asked for.
            HubError::Ingest(e) if !matches!(e, shh_ingest::IngestError::Io { .. }) => {
                Some(e.to_string())
            }
            HubError::Identifier { .. }
            | HubError::Busy(_)
            | HubError::ReadOnly
            | HubError::Unauthenticated(_)
            | HubError::Forbidden(_)
            | HubError::Denied(_)
            | HubError::Invalid(_)
            | HubError::Cancelled(_) => Some(self.to_string()),
            HubError::Catalog(
                e @ (shh_catalog::CatalogError::NoDataset(_)
                | shh_catalog::CatalogError::NoVersion { .. }
                | shh_catalog::CatalogError::Ambiguous { .. }
                | shh_catalog::CatalogError::Conflict { .. }
                | shh_catalog::CatalogError::NotFound { .. }
                | shh_catalog::CatalogError::Exists { .. }
                | shh_catalog::CatalogError::Changed { .. }),
            ) => Some(e.to_string()),
            HubError::Dataset(shh_dataset::DatasetError::InvalidName(_)) => Some(self.to_string()),
            HubError::Store(
                e @ (shh_store::StoreError::Url(_) | shh_store::StoreError::Residency(_)),
            ) => Some(e.to_string()),
            HubError::Migrate(shh_migrate::MigrateError::Refused(m)) => Some(m.clone()),
            HubError::Keys(KeystoreError::WrongPassphrase(_)) => Some("wrong passphrase".into()),
            HubError::Keys(KeystoreError::EmptyPassphrase | KeystoreError::Kdf(_)) => {
                Some(self.to_string())
            }
            HubError::NotAHub(_) => Some("no hub there".into()),
            HubError::Sink(e) => sink_public(e),
            HubError::Dataset(shh_dataset::DatasetError::Sink(e))
            | HubError::Audit(shh_audit::AuditError::Sink(e))
            | HubError::Migrate(shh_migrate::MigrateError::Sink(e)) => sink_public(e),
            _ => None,
        };
        let mut text = own.unwrap_or_else(|| kind.generic().to_owned());
        // The same net as every other message: nothing that reaches a client shows a direct
        // identifier, whatever an inner error quoted.
        crate::guard::redact(&mut text);
        text
    }

    /// Everything known about the error: its message and every inner error, with paths. For
    /// the local log and the CLI user on their own machine; never for a remote client.
    pub fn detail(&self) -> String {
        let mut s = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(e) = source {
            let t = e.to_string();
            if !s.contains(&t) {
                s.push_str(": ");
                s.push_str(&t);
            }
            source = e.source();
        }
        crate::guard::redact(&mut s);
        s
    }

    /// The body a front end sends.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            code: self.kind(),
            message: self.public_message(),
        }
    }
}

fn io_kind(e: &std::io::Error) -> ErrorKind {
    use std::io::ErrorKind as Io;
    match e.kind() {
        Io::NotFound => ErrorKind::NotFound,
        Io::AlreadyExists => ErrorKind::Conflict,
        Io::PermissionDenied => ErrorKind::Forbidden,
        Io::InvalidData | Io::InvalidInput | Io::UnexpectedEof => ErrorKind::InvalidInput,
        Io::Interrupted => ErrorKind::Cancelled,
        _ => ErrorKind::Internal,
    }
}

fn sink_kind(e: &shh_sink::SinkError) -> ErrorKind {
    use shh_sink::SinkError as S;
    match e {
        S::Exists { .. } => ErrorKind::Conflict,
        S::BadName { .. } => ErrorKind::InvalidInput,
        S::Io { source, .. } => io_kind(source),
    }
}

/// A sink's error as a remote client may see it: the name it chose, never the local location.
fn sink_public(e: &shh_sink::SinkError) -> Option<String> {
    use shh_sink::SinkError as S;
    match e {
        S::Exists { name, .. } => Some(format!("a result named {name:?} already exists")),
        S::BadName { .. } => Some(e.to_string()),
        S::Io { .. } => None,
    }
}

fn keys_kind(e: &KeystoreError) -> ErrorKind {
    match e {
        KeystoreError::WrongPassphrase(_) => ErrorKind::Unauthenticated,
        KeystoreError::Corrupt { .. } => ErrorKind::Integrity,
        KeystoreError::AlreadyExists(_) => ErrorKind::Conflict,
        KeystoreError::EmptyPassphrase | KeystoreError::Kdf(_) => ErrorKind::InvalidInput,
        KeystoreError::Changed(_) => ErrorKind::Conflict,
        KeystoreError::Locked(_) => ErrorKind::Busy,
        KeystoreError::Io { .. } => ErrorKind::Internal,
    }
}

fn store_kind(e: &shh_store::StoreError) -> ErrorKind {
    use shh_store::StoreError as S;
    match e {
        S::Url(_) | S::Proxy(_) => ErrorKind::InvalidInput,
        S::Residency(_) => ErrorKind::Forbidden,
        S::MissingCredential { .. } => ErrorKind::InvalidInput,
        S::Backend { source, .. } => object_kind(source),
        S::Io { .. } => ErrorKind::Internal,
    }
}

fn object_kind(e: &object_store::Error) -> ErrorKind {
    use object_store::Error as O;
    // Ciphertext that fails authentication is tampering or corruption, not an outage.
    if shh_crypt::integrity_error(e).is_some() {
        return ErrorKind::Integrity;
    }
    match e {
        O::NotFound { .. } => ErrorKind::NotFound,
        O::AlreadyExists { .. } | O::Precondition { .. } | O::NotModified { .. } => {
            ErrorKind::Conflict
        }
        O::PermissionDenied { .. } => ErrorKind::Forbidden,
        O::Unauthenticated { .. } => ErrorKind::Unavailable,
        O::InvalidPath { .. } | O::UnknownConfigurationKey { .. } => ErrorKind::InvalidInput,
        O::NotSupported { .. } | O::NotImplemented { .. } => ErrorKind::Internal,
        _ => ErrorKind::Unavailable,
    }
}

fn catalog_kind(e: &shh_catalog::CatalogError) -> ErrorKind {
    use shh_catalog::CatalogError as C;
    match e {
        C::NoDataset(_) | C::NoVersion { .. } | C::NotFound { .. } => ErrorKind::NotFound,
        C::Exists { .. } | C::Changed { .. } => ErrorKind::Conflict,
        C::Ambiguous { .. } => ErrorKind::InvalidInput,
        C::Conflict { .. } => ErrorKind::Conflict,
        C::UnsupportedUrl(_) => ErrorKind::InvalidInput,
        C::Backend(_) => ErrorKind::Unavailable,
    }
}

fn dataset_kind(e: &shh_dataset::DatasetError) -> ErrorKind {
    use shh_dataset::DatasetError as D;
    match e {
        D::InvalidName(_) | D::SchemaMismatch(_) => ErrorKind::InvalidInput,
        D::Store(e) => object_kind(e),
        D::Catalog(e) => catalog_kind(e),
        D::Parquet(_) | D::Manifest(_) | D::ManifestMismatch { .. } | D::FileMismatch { .. } => {
            ErrorKind::Integrity
        }
        D::Arrow(_) => ErrorKind::Internal,
        D::Sink(e) => sink_kind(e),
    }
}

fn migrate_kind(e: &shh_migrate::MigrateError) -> ErrorKind {
    use shh_migrate::MigrateError as M;
    match e {
        M::Object { source, .. } | M::List { source, .. } => object_kind(source),
        M::Io { source, .. } => io_kind(source),
        M::Format { .. } => ErrorKind::InvalidInput,
        M::Store(e) => store_kind(e),
        M::Refused(_) => ErrorKind::Conflict,
        M::Failed { .. } => ErrorKind::Unavailable,
        M::Cancelled => ErrorKind::Cancelled,
        M::Sink(e) => sink_kind(e),
    }
}

fn audit_kind(e: &shh_audit::AuditError) -> ErrorKind {
    use shh_audit::AuditError as A;
    match e {
        A::Store { source, .. } => object_kind(source),
        A::Corrupt { .. } => ErrorKind::Integrity,
        A::Event(_) => ErrorKind::InvalidInput,
        A::Append(_) => ErrorKind::Unavailable,
        A::NoSuchEvent { .. } | A::NoSuchHead(_) => ErrorKind::NotFound,
        A::Io { source, .. } => io_kind(source),
        A::Sink(e) => sink_kind(e),
    }
}

fn ingest_kind(e: &shh_ingest::IngestError) -> ErrorKind {
    use shh_ingest::IngestError as I;
    match e {
        I::Io { source, .. } => io_kind(source),
        I::Sink(_) => ErrorKind::Unavailable,
        I::Cancelled => ErrorKind::Cancelled,
        _ => ErrorKind::InvalidInput,
    }
}
