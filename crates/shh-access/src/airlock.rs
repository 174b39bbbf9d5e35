//! The airlock: how a result leaves the hub. A researcher asks for a query's result to be
//! released (with a reason); two output checkers, distinct, neither the requester, review it;
//! each review is signed; an update of the request resets the reviews; only then may the
//! requester take the file. Pure decisions on the request's record, like [`crate::decide`].

use crate::decide::Denied;
use crate::role::Role;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Approvals a release needs, from distinct checkers.
pub const REVIEWERS: usize = 2;

/// The file types a result may leave in (open, typed or plain; no executable, no archive).
pub const FORMATS: [&str; 3] = ["csv", "json", "parquet"];

/// One checker's review of one revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Review {
    /// The checker.
    pub by: String,
    /// The revision reviewed.
    pub revision: u32,
    /// Approved, or rejected.
    pub approve: bool,
    /// Their note.
    pub note: String,
    /// When.
    pub at: DateTime<Utc>,
    /// Their signature of the review (base64).
    pub signature: String,
    /// The key it verifies under (hex).
    pub public_key: String,
}

/// A release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    /// Who took the file.
    pub by: String,
    /// When.
    pub at: DateTime<Utc>,
    /// BLAKE3 of the file, hex.
    pub blake3: String,
    /// Its size.
    pub bytes: u64,
}

/// A request to release a result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportRecord {
    /// Id (`exp-` and 12 hex digits).
    pub id: String,
    /// The project.
    pub project: String,
    /// The permits the query runs under.
    pub permits: Vec<String>,
    /// Who asked.
    pub requester: String,
    /// Changes since the request (an update makes a new revision).
    pub revision: u32,
    /// The query.
    pub query: String,
    /// Why it should leave.
    pub reason: String,
    /// The file type.
    pub format: String,
    /// `dataset@version` it was computed from (pinned: the release recomputes on these).
    pub versions: Vec<String>,
    /// BLAKE3 of the SQL.
    pub query_hash: String,
    /// BLAKE3 of the result computed at the request.
    pub result_hash: String,
    /// Rows of the result.
    pub rows: u64,
    /// When asked.
    pub created_at: DateTime<Utc>,
    /// Every review, of every revision.
    pub reviews: Vec<Review>,
    /// Releases made.
    pub releases: Vec<Release>,
}

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExportState {
    /// Waiting for reviews.
    Pending,
    /// Rejected by a checker (an update starts it again).
    Rejected,
    /// Approved by two checkers: the requester may take it.
    Approved,
}

impl ExportRecord {
    /// The reviews of the current revision.
    pub fn current_reviews(&self) -> impl Iterator<Item = &Review> {
        self.reviews.iter().filter(|r| r.revision == self.revision)
    }

    /// Where it stands.
    pub fn state(&self) -> ExportState {
        if self.current_reviews().any(|r| !r.approve) {
            return ExportState::Rejected;
        }
        let approvers: BTreeSet<&str> = self
            .current_reviews()
            .filter(|r| r.approve)
            .map(|r| r.by.as_str())
            .collect();
        if approvers.len() >= REVIEWERS {
            ExportState::Approved
        } else {
            ExportState::Pending
        }
    }
}

fn deny(rule: &'static str, reason: impl Into<String>) -> Result<(), Denied> {
    Err(Denied {
        rule,
        reason: reason.into(),
    })
}

/// Whether the format is on the allow-list.
pub fn check_format(format: &str) -> Result<(), Denied> {
    if FORMATS.contains(&format) {
        Ok(())
    } else {
        deny(
            "airlock.format",
            format!("a result leaves as {}, not {format:?}", FORMATS.join(", ")),
        )
    }
}

/// Whether `reviewer` (holding `roles`) may review the request now.
pub fn check_review(
    rec: &ExportRecord,
    reviewer: &str,
    roles: &BTreeSet<Role>,
) -> Result<(), Denied> {
    if !roles.contains(&Role::Checker) {
        return deny("review.checker", "only output checkers review a release");
    }
    if reviewer == rec.requester {
        return deny(
            "review.not-requester",
            "the requester cannot review their own request",
        );
    }
    if rec.current_reviews().any(|r| r.by == reviewer) {
        return deny(
            "review.once",
            format!(
                "{reviewer} already reviewed revision {} of {}",
                rec.revision, rec.id
            ),
        );
    }
    Ok(())
}

/// Whether `user` may change the request.
pub fn check_update(rec: &ExportRecord, user: &str) -> Result<(), Denied> {
    if user != rec.requester {
        return deny("update.requester", "only the requester changes a request");
    }
    Ok(())
}

/// Whether `user` may take the file.
pub fn check_release(rec: &ExportRecord, user: &str) -> Result<(), Denied> {
    if user != rec.requester {
        return deny(
            "release.requester",
            "only the requester takes the released file",
        );
    }
    match rec.state() {
        ExportState::Approved => Ok(()),
        ExportState::Rejected => deny("release.approved", format!("{} was rejected", rec.id)),
        ExportState::Pending => deny(
            "release.approved",
            format!(
                "{} needs approvals from {REVIEWERS} distinct output checkers (revision {} has {})",
                rec.id,
                rec.revision,
                rec.current_reviews().filter(|r| r.approve).count()
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec() -> ExportRecord {
        ExportRecord {
            id: "exp-1".into(),
            project: "prj-1".into(),
            permits: vec!["pmt-1".into()],
            requester: "rita".into(),
            revision: 0,
            query: "SELECT 1".into(),
            reason: "paper".into(),
            format: "csv".into(),
            versions: vec![],
            query_hash: String::new(),
            result_hash: String::new(),
            rows: 1,
            created_at: Utc::now(),
            reviews: vec![],
            releases: vec![],
        }
    }

    fn review(by: &str, revision: u32, approve: bool) -> Review {
        Review {
            by: by.into(),
            revision,
            approve,
            note: String::new(),
            at: Utc::now(),
            signature: String::new(),
            public_key: String::new(),
        }
    }

    #[test]
    fn two_distinct_checkers_not_the_requester_and_an_update_resets() {
        let checker: BTreeSet<Role> = [Role::Checker].into();
        let mut r = rec();
        assert_eq!(
            check_review(&r, "rita", &checker).map_err(|d| d.rule),
            Err("review.not-requester")
        );
        assert_eq!(
            check_review(&r, "olga", &[Role::Researcher].into()).map_err(|d| d.rule),
            Err("review.checker")
        );
        r.reviews.push(review("olga", 0, true));
        assert_eq!(
            check_review(&r, "olga", &checker).map_err(|d| d.rule),
            Err("review.once")
        );
        assert_eq!(
            check_release(&r, "rita").map_err(|d| d.rule),
            Err("release.approved")
        );
        r.reviews.push(review("otto", 0, true));
        assert_eq!(r.state(), ExportState::Approved);
        assert_eq!(
            check_release(&r, "olga").map_err(|d| d.rule),
            Err("release.requester")
        );
        assert_eq!(check_release(&r, "rita"), Ok(()));
        // An update: the old approvals do not count for the new revision.
        r.revision = 1;
        assert_eq!(r.state(), ExportState::Pending);
        assert_eq!(check_review(&r, "olga", &checker), Ok(()));
        r.reviews.push(review("olga", 1, false));
        assert_eq!(r.state(), ExportState::Rejected);
        assert_eq!(
            check_format("exe").map_err(|d| d.rule),
            Err("airlock.format")
        );
    }
}
