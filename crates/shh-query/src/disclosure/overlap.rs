//! Rule `disclosure.overlap`: differencing. Two cells whose patients' contributions differ for
//! fewer than the threshold's patients (N and N−1 patients, a patient's rows left out by a
//! predicate or a join) would give those patients away by subtraction, whatever noise each
//! carries. So every published cell goes into the project's ledger (its measure, its number
//! of patients, its cell key and sketch, the value released), and a new cell that the sketches
//! show to be that close to a cell of the same kind already released gets the earlier cell's
//! answer (a count of distinct values of another expression is suppressed instead): the two
//! queries answer the same, whether the target was in both or in one.

use super::iblt::Iblt;
use super::measure::Summary;
use async_trait::async_trait;
use std::sync::Mutex;

/// The rule's name in reports and audit events.
pub const RULE: &str = "disclosure.overlap";

pub use shh_access::LedgerCell;

/// Where a project's released cells are kept (the hub keeps them in its catalog, per project
/// and dataset).
#[async_trait]
pub trait Ledger: Send + Sync {
    /// Cells of `signature` with between `lo` and `hi` patients.
    async fn near(&self, signature: &str, lo: u64, hi: u64) -> Result<Vec<LedgerCell>, String>;
    /// Adds cells.
    async fn add(&self, cells: &[LedgerCell]) -> Result<(), String>;
}

/// A ledger in memory (tests, and queries that release nothing).
#[derive(Debug, Default)]
pub struct MemoryLedger(Mutex<Vec<LedgerCell>>);

#[async_trait]
impl Ledger for MemoryLedger {
    async fn near(&self, signature: &str, lo: u64, hi: u64) -> Result<Vec<LedgerCell>, String> {
        let cells = self.0.lock().map_err(|_| "ledger poisoned".to_string())?;
        Ok(cells
            .iter()
            .filter(|c| c.signature == signature && (lo..=hi).contains(&c.patients))
            .cloned()
            .collect())
    }
    async fn add(&self, cells: &[LedgerCell]) -> Result<(), String> {
        let mut all = self.0.lock().map_err(|_| "ledger poisoned".to_string())?;
        all.extend_from_slice(cells);
        Ok(())
    }
}

/// Patients whose contributions may differ for two cells to count as one (they must also be
/// fewer than either cell holds): fewer than the threshold, since a difference of that many
/// is itself a cell the threshold would publish.
pub fn reach(threshold: u64) -> u64 {
    threshold.saturating_sub(1)
}

/// Whether `s` is close enough to the released cell `c` to be that cell asked again.
pub fn close(s: &Summary, c: &LedgerCell, threshold: u64) -> bool {
    let reach = reach(threshold);
    if c.patients.abs_diff(s.patients) > reach {
        return false;
    }
    if c.key == s.key && c.patients == s.patients {
        return true;
    }
    let Some(theirs) = Iblt::from_bytes(&c.sketch) else {
        return false;
    };
    // Close means: few differ, and fewer than either holds (two small cells of different
    // patients are not one cell asked twice).
    s.sketch.difference(&theirs).is_some_and(|d| {
        (d.patients as u64) <= reach && (d.patients as u64) < s.patients.min(c.patients)
    })
}

/// What a cell close to `c` answers: `c`'s answer for the same expression; suppressed for
/// another (a count of distinct values of other values: a fresh noise draw on the same
/// patients, and many such draws average out).
pub fn answer(c: &LedgerCell, expression: &str) -> Option<f64> {
    if c.expression == expression {
        c.released
    } else {
        None
    }
}

/// The answer `s` must give, if any cell among `earlier` is close to it.
pub fn earlier<'a>(
    s: &Summary,
    expression: &str,
    threshold: u64,
    earlier: impl IntoIterator<Item = &'a LedgerCell>,
) -> Option<Option<f64>> {
    earlier
        .into_iter()
        .find(|c| close(s, c, threshold))
        .map(|c| answer(c, expression))
}
