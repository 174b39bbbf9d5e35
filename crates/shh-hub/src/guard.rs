//! The hub's doors for names: every name or path a caller hands in that the hub would store
//! or show (a source file recorded in a manifest and an audit event, an export directory, a
//! store URL) is checked by the one identifier guard ([`shh_pseudo::guard`]) before anything
//! is written, and refused without being repeated. What gets past every door anyway (an
//! inner error quoting part of a file) is redacted by [`redact`] on its way into an event or a
//! manifest.

use crate::{HubError, Result};
use shh_pseudo::guard::{Look, scan};
use std::path::Path;

/// Refuses `text` if it holds a direct identifier; `what` names it in the error.
pub(crate) fn check(what: &str, text: &str) -> Result<()> {
    match scan(text, Look::NAME) {
        Some(h) => Err(HubError::Identifier {
            what: what.to_owned(),
            found: h.found,
        }),
        None => Ok(()),
    }
}

/// Refuses a local path holding a direct identifier (in any component, as it would be
/// recorded).
pub(crate) fn check_path(what: &str, p: &Path) -> Result<()> {
    check(what, &p.to_string_lossy())
}

/// Replaces every NIR in an actor's id or role by a placeholder. Only NIRs: a member of
/// staff's e-mail address is who acted, and the log must keep it.
pub(crate) fn redact_actor(s: &mut String) {
    redact_in_place(
        s,
        Look {
            contact: false,
            ..Look::NAME
        },
    );
}

/// Replaces every direct identifier in `s` by a placeholder.
pub(crate) fn redact(s: &mut String) {
    redact_in_place(s, Look::NAME);
}

fn redact_in_place(s: &mut String, look: Look) {
    if let std::borrow::Cow::Owned(r) = shh_pseudo::guard::redact_only(s, look) {
        *s = r;
    }
}
