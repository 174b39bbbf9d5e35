//! Rule `disclosure.threshold`: a cell is published only if at least `threshold` distinct
//! patients (11 by default, HDH and CASD practice) stand behind it. For a sum, the patients
//! whose values do not add to zero; for a mean, both those with a value and those adding
//! something (so the mean of a 0/1 vector with one 1 is not a mean over many).
//!
//! The decision uses the true count. The boundary is not an oracle: a cell within the
//! overlap rule's reach of one already released gets that cell's answer, so N and N−1
//! patients, the one pair that would read the boundary, get one answer.

use super::Settings;
use super::functions::Kind;
use super::measure::Summary;

/// The rule's name in reports and audit events.
pub const RULE: &str = "disclosure.threshold";

/// Whether enough patients stand behind the cell.
pub fn passes(kind: Kind, s: &Summary, settings: &Settings) -> bool {
    let t = settings.threshold;
    s.patients >= t && (kind != Kind::Avg || s.nonzero >= t)
}
