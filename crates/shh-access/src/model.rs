//! The records of research access and what makes one well-formed. The hub stores them in its
//! catalog; every field a person typed is also passed through the hub's identifier guard
//! before it is stored (not here: this crate sees no text it would write).

use crate::role::Role;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// A record is not well-formed: which field, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct Invalid {
    /// The field.
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

fn invalid(field: &'static str, reason: impl Into<String>) -> Invalid {
    Invalid {
        field,
        reason: reason.into(),
    }
}

/// Longest free text (a title, a purpose, a predicate).
pub const MAX_TEXT: usize = 2000;
/// Longest user name.
pub const MAX_NAME: usize = 64;
/// Most recipients, columns or members in one record.
pub const MAX_ITEMS: usize = 256;

/// A user name: 1 to 64 of `a-z 0-9 . _ -`, starting with a letter or digit. Narrow on
/// purpose: it appears in every event and on every command line, and cannot hold an
/// identifier's punctuation.
pub fn validate_user_name(name: &str) -> Result<(), Invalid> {
    let ok_start = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !ok_start
        || name.len() > MAX_NAME
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
    {
        return Err(invalid(
            "name",
            format!(
                "a user name is 1 to {MAX_NAME} of a-z, 0-9, '.', '_' and '-', starting with a letter or digit"
            ),
        ));
    }
    Ok(())
}

/// Free text a person typed: printable, bounded, not blank when `required`.
pub fn validate_text(field: &'static str, text: &str, required: bool) -> Result<(), Invalid> {
    if required && text.trim().is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    if text.chars().count() > MAX_TEXT {
        return Err(invalid(field, format!("longer than {MAX_TEXT} characters")));
    }
    if text.chars().any(|c| c.is_control() && c != '\n') {
        return Err(invalid(field, "holds control characters"));
    }
    Ok(())
}

/// A user's credential: the public half of their signing key, and the private half sealed
/// under their own passphrase (opaque here; `shh-keys` seals and opens it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    /// Ed25519 public key, 64 hex digits.
    pub public_key: String,
    /// The sealed private key (JSON).
    pub sealed: String,
    /// When it was enrolled.
    pub enrolled_at: DateTime<Utc>,
}

/// Someone who uses the hub.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    /// User name.
    pub name: String,
    /// Roles.
    pub roles: BTreeSet<Role>,
    /// Their credential, once enrolled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<Credential>,
    /// Who added them.
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
}

impl Principal {
    /// Checks the name and that there is at least one role.
    pub fn validate(&self) -> Result<(), Invalid> {
        validate_user_name(&self.name)?;
        if self.roles.is_empty() {
            return Err(invalid("roles", "at least one role is needed"));
        }
        Ok(())
    }

    /// The public key, once enrolled.
    pub fn public_key(&self) -> Option<&str> {
        self.credential.as_ref().map(|c| c.public_key.as_str())
    }
}

/// A research project: who works in it and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Project {
    /// Id (`prj-` and 12 hex digits).
    pub id: String,
    /// Title.
    pub title: String,
    /// Purpose.
    pub purpose: String,
    /// Legal basis (GDPR article, authorization number…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legal_basis: Option<String>,
    /// Data controller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller: Option<String>,
    /// Members (user names).
    pub members: BTreeSet<String>,
    /// Who created it.
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
}

impl Project {
    /// Checks every field.
    pub fn validate(&self) -> Result<(), Invalid> {
        validate_text("title", &self.title, true)?;
        validate_text("purpose", &self.purpose, true)?;
        if let Some(l) = &self.legal_basis {
            validate_text("legal basis", l, true)?;
        }
        if let Some(c) = &self.controller {
            validate_text("controller", c, true)?;
        }
        if self.members.len() > MAX_ITEMS {
            return Err(invalid("members", format!("more than {MAX_ITEMS}")));
        }
        self.members.iter().try_for_each(|m| validate_user_name(m))
    }
}

/// What a permit lets its holders do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Aggregates only, under disclosure control.
    Aggregate,
    /// Individual-level rows, under the project's own pseudonyms.
    Extract,
}

impl Mode {
    /// Parses `aggregate` or `extract`.
    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "aggregate" => Some(Mode::Aggregate),
            "extract" => Some(Mode::Extract),
            _ => None,
        }
    }

    /// The name on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Aggregate => "aggregate",
            Mode::Extract => "extract",
        }
    }
}

/// The terms a committee member grants (and signs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PermitTerms {
    /// The project.
    pub project: String,
    /// The dataset.
    pub dataset: String,
    /// A version id when pinned (reproducible); `None` follows the current version.
    #[serde(default)]
    pub version: Option<String>,
    /// The columns it may see; `None` is every column.
    #[serde(default)]
    pub columns: Option<Vec<String>>,
    /// A row predicate (SQL) applied beneath every query.
    #[serde(default)]
    pub predicate: Option<String>,
    /// Aggregate or extract.
    pub mode: Mode,
    /// First instant of validity.
    pub from: DateTime<Utc>,
    /// The instant it expires.
    pub until: DateTime<Utc>,
    /// Who may use it.
    pub to: BTreeSet<String>,
}

impl PermitTerms {
    /// Checks every field.
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.until <= self.from {
            return Err(invalid("until", "must be after --from"));
        }
        if self.to.is_empty() {
            return Err(invalid("to", "a permit is granted to at least one user"));
        }
        if self.to.len() > MAX_ITEMS {
            return Err(invalid("to", format!("more than {MAX_ITEMS} users")));
        }
        self.to.iter().try_for_each(|m| validate_user_name(m))?;
        if let Some(cols) = &self.columns {
            if cols.is_empty() {
                return Err(invalid("columns", "name at least one column, or omit it"));
            }
            if cols.len() > MAX_ITEMS {
                return Err(invalid("columns", format!("more than {MAX_ITEMS}")));
            }
            let unique: BTreeSet<_> = cols.iter().collect();
            if unique.len() != cols.len() {
                return Err(invalid("columns", "a column is named twice"));
            }
        }
        if let Some(p) = &self.predicate {
            validate_text("where", p, true)?;
        }
        Ok(())
    }
}

/// Why and when a permit was ended early.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    /// Who.
    pub by: String,
    /// When.
    pub at: DateTime<Utc>,
    /// Why.
    pub reason: String,
}

/// A granted permit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permit {
    /// Id (`pmt-` and 12 hex digits).
    pub id: String,
    /// What was granted.
    pub terms: PermitTerms,
    /// The committee member who granted it.
    pub granted_by: String,
    /// When.
    pub granted_at: DateTime<Utc>,
    /// Their signature of the grant ([`crate::statement`]), base64.
    pub signature: String,
    /// The public key it verifies under, hex.
    pub public_key: String,
    /// Set once revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<Revocation>,
}

/// A project's request for a permit (`shh permit request`): the terms a member asks for and
/// why, until a committee member grants it (`shh permit grant --request`) or refuses it. The
/// grant is still the one signed step, under every rule of a grant; the request only says
/// what the project asked, so the register and an auditor see the asked and the granted side
/// by side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PermitApplication {
    /// Id (`prq-` and 12 hex digits).
    pub id: String,
    /// What is asked for.
    pub terms: PermitTerms,
    /// Why (the research question the terms serve).
    pub reason: String,
    /// The member who asked.
    pub requested_by: String,
    /// When.
    pub requested_at: DateTime<Utc>,
    /// The committee's decision, once made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<ApplicationDecision>,
}

/// What the committee decided on a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplicationDecision {
    /// The committee member.
    pub by: String,
    /// When.
    pub at: DateTime<Utc>,
    /// The permit granted; `None`: refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permit: Option<String>,
    /// Why (required for a refusal).
    #[serde(default)]
    pub note: String,
}

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ApplicationState {
    /// Waiting for the committee.
    Pending,
    /// A permit was granted on it.
    Granted,
    /// Refused.
    Refused,
}

impl ApplicationState {
    /// The state's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Granted => "granted",
            Self::Refused => "refused",
        }
    }
}

impl PermitApplication {
    /// Where it stands.
    pub fn state(&self) -> ApplicationState {
        match &self.decision {
            None => ApplicationState::Pending,
            Some(d) if d.permit.is_some() => ApplicationState::Granted,
            Some(_) => ApplicationState::Refused,
        }
    }
}

/// Where a permit stands at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PermitState {
    /// Before `from`.
    NotYetValid,
    /// Usable.
    Active,
    /// At or after `until`.
    Expired,
    /// Revoked.
    Revoked,
}

impl Permit {
    /// Its state at `now`: a revocation wins over the dates.
    pub fn state(&self, now: DateTime<Utc>) -> PermitState {
        if self.revoked.as_ref().is_some_and(|r| r.at <= now) {
            PermitState::Revoked
        } else if now < self.terms.from {
            PermitState::NotYetValid
        } else if now >= self.terms.until {
            PermitState::Expired
        } else {
            PermitState::Active
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn user_names_are_narrow() {
        for ok in ["admin", "alice", "a.b-c_d", "7"] {
            assert!(validate_user_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Alice",
            "-x",
            "a b",
            "a/b",
            "é",
            &"a".repeat(65),
            "1 85 12 75 ...",
        ] {
            assert!(validate_user_name(bad).is_err(), "{bad:?}");
        }
    }

    proptest! {
        /// Whatever a name holds, an accepted one is only the narrow alphabet.
        #[test]
        fn accepted_names_hold_only_the_alphabet(s in "\\PC{0,80}") {
            if validate_user_name(&s).is_ok() {
                prop_assert!(s.len() <= MAX_NAME);
                prop_assert!(s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c)));
            }
        }
    }
}

/// A cell released to a project under disclosure control, as the project's ledger keeps it:
/// enough to tell whether a later cell differs from it by a few patients (the sketch), never
/// who they are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LedgerCell {
    /// The measure (its kind and the columns it reads).
    pub signature: String,
    /// The measure's exact expression (columns unqualified).
    pub expression: String,
    /// Patients behind it.
    pub patients: u64,
    /// Its cell key.
    pub key: u64,
    /// Its sketch of patients.
    pub sketch: Vec<u8>,
    /// What was published (`None`: suppressed).
    pub released: Option<f64>,
}
