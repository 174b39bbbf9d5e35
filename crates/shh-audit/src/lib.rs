//! The tamper-evident audit log: "who saw what, when, under which authorization?", answered
//! in a way an auditor can check without trusting the operator.
//!
//! - [`event`]: the event (actor, role, action, targets, details, outcome) and its RFC 8785
//!   canonical bytes, which are the Merkle leaf;
//! - [`merkle`]: RFC 6962 hashing, the append frontier, inclusion and consistency proofs;
//! - [`sth`]: Ed25519 signed tree heads and public keys (PEM);
//! - [`log`]: the log stored in the hub's encrypted store, with group commit and crash recovery;
//! - [`verify`]: the verifier, shared by the stored log and [`export`]ed copies;
//! - [`canonical`]: canonical JSON, also used for manifest identities.

#![forbid(unsafe_code)]

pub mod canonical;
pub mod event;
pub mod export;
pub mod log;
pub mod merkle;
pub mod sth;
pub mod verify;

pub use event::{Actor, Draft, Event, EventError, Outcome, Rendered, Targets, map_json_strings};
pub use export::verify_export;
pub use log::{AuditError, AuditLog, EventFilter, ExportSummary, InclusionProof};
pub use sth::{KeyError, PublicKey, SignedTreeHead, Signer, TreeHead};
pub use verify::{DECISION_DOMAIN, Verifier, VerifyReport};
