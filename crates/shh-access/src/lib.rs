//! Research access as pure decisions: no I/O, no clock, no keys (like `shh-pseudo`). The hub
//! loads the records from its catalog, asks here, and records the answer in its audit log;
//! the server will ask the same questions.
//!
//! - [`role`]: the seven roles and the one table of which role may run which command
//!   ([`may`]), which `docs/access.md` prints;
//! - [`model`]: principals, projects, permits and their validation;
//! - [`decide`]: the rules of a grant, of a permit's use and of project membership, each
//!   refusal naming the rule that fired;
//! - [`airlock`]: a release request, its two reviews and the release;
//! - [`statement`]: the exact bytes a decider signs, so an auditor can check a signature
//!   offline against the public key the user enrolled.
//!
//! Every decision fails closed: what no rule allows is refused.

#![forbid(unsafe_code)]

pub mod airlock;
pub mod decide;
pub mod model;
pub mod role;
pub mod statement;

pub use decide::{
    Denied, check_apply, check_decide, check_grant, check_member, check_refuse, check_revoke,
    check_use,
};
pub use model::{
    ApplicationDecision, ApplicationState, Credential, Invalid, LedgerCell, Mode, Permit,
    PermitApplication, PermitState, PermitTerms, Principal, Project, Revocation,
    validate_user_name,
};
pub use role::{Action, RULES, Role, may};
pub use statement::{Statement, statement_bytes};
