//! Rule `disclosure.dominance`: a sum, a mean or a count of rows is not published when one
//! patient makes up more than `dominance_one` of it (50 % by default) or two patients more
//! than `dominance_two` (80 %): such a cell tells about them however many others it holds.

use super::Settings;
use super::functions::Kind;
use super::measure::Summary;

/// The rule's name in reports and audit events.
pub const RULE: &str = "disclosure.dominance";

fn share(top: [f64; 2], total: f64, settings: &Settings) -> bool {
    total > 0.0
        && (top[0] > settings.dominance_one * total
            || top[0] + top[1] > settings.dominance_two * total)
}

/// Whether one or two patients dominate the cell.
pub fn dominated(kind: Kind, s: &Summary, settings: &Settings) -> bool {
    match kind {
        Kind::Sum | Kind::Avg => share(
            [s.top[0] as f64, s.top[1] as f64],
            s.total_abs as f64,
            settings,
        ),
        Kind::Rows => share(
            [s.top_rows[0] as f64, s.top_rows[1] as f64],
            s.rows as f64,
            settings,
        ),
        Kind::Patients | Kind::Distinct => false,
    }
}
