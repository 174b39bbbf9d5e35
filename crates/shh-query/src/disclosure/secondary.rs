//! Rule `disclosure.secondary`: margins must not reveal a suppressed cell. When a result
//! suppresses cells whose patients add up to fewer than the threshold (or a single cell for
//! dominance), a total published elsewhere minus the published cells would give them away;
//! so the next smallest published cells are suppressed too, until the suppressed cells
//! together hold at least the threshold's patients. Patients in several cells are counted in
//! each (the sum over cells, not their union): a known limit, on the side of publishing.

use super::Settings;
use super::cell::Cell;

/// The rule's name in reports and audit events.
pub const RULE: &str = "disclosure.secondary";

/// Suppresses, in one measure's cells, what the margins would reveal; returns how many.
pub fn apply(cells: &mut [&mut Cell], settings: &Settings) -> u64 {
    let suppressed: Vec<usize> = (0..cells.len())
        .filter(|&i| cells[i].released.is_none())
        .collect();
    if suppressed.is_empty() {
        return 0;
    }
    let mut total: u64 = suppressed.iter().map(|&i| cells[i].summary.patients).sum();
    let mut count = suppressed.len();
    let dominance = suppressed
        .iter()
        .any(|&i| cells[i].fired == Some(super::dominance::RULE));
    let mut added = 0;
    while total < settings.threshold || (dominance && count < 2) {
        let next = (0..cells.len())
            .filter(|&i| cells[i].released.is_some() && !cells[i].earlier)
            .min_by_key(|&i| (cells[i].summary.patients, i));
        let Some(i) = next else { break };
        cells[i].released = None;
        cells[i].fired = Some(RULE);
        total += cells[i].summary.patients;
        count += 1;
        added += 1;
    }
    added
}
