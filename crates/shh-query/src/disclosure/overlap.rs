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
    /// Cells of `signature` with between `lo` and `hi` patients, by patients, then in the
    /// order they were added.
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
        let mut near: Vec<LedgerCell> = cells
            .iter()
            .filter(|c| c.signature == signature && (lo..=hi).contains(&c.patients))
            .cloned()
            .collect();
        // The catalog's order: patients, then when released (a stable sort keeps the latter).
        near.sort_by_key(|c| c.patients);
        Ok(near)
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

/// Whether `s` is close enough to the released cell `c` (whose sketch is `theirs`) to be
/// that cell asked again.
pub fn close(s: &Summary, c: &LedgerCell, theirs: Option<&Iblt>, threshold: u64) -> bool {
    let reach = reach(threshold);
    if c.patients.abs_diff(s.patients) > reach {
        return false;
    }
    if c.key == s.key && c.patients == s.patients {
        return true;
    }
    let Some(theirs) = theirs else {
        return false;
    };
    // Close means: few differ, and fewer than either holds (two small cells of different
    // patients are not one cell asked twice). A patient whose contribution changed is two
    // elements (the old and the new).
    let most = usize::try_from(reach.saturating_mul(2)).unwrap_or(usize::MAX);
    s.sketch.difference_within(theirs, most).is_some_and(|d| {
        (d.patients as u64) <= reach && (d.patients as u64) < s.patients.min(c.patients)
    })
}

/// The released cells of one signature that a result's cells may repeat, read from the
/// ledger once per run of cells whose reaches overlap (not once per cell), each sketch parsed
/// once; in the ledger's order (patients, then when released).
#[derive(Debug, Default)]
pub struct Nearby {
    cells: Vec<(LedgerCell, Option<Iblt>)>,
}

impl Nearby {
    /// The cells of `signature` near any of `counts` (patients of a result's cells).
    pub async fn read(
        ledger: &dyn Ledger,
        signature: &str,
        counts: &[u64],
        threshold: u64,
    ) -> Result<Self, String> {
        let reach = reach(threshold);
        let mut counts = counts.to_vec();
        counts.sort_unstable();
        counts.dedup();
        let mut cells = Vec::new();
        let mut i = 0;
        while i < counts.len() {
            let lo = counts[i].saturating_sub(reach);
            let mut hi = counts[i].saturating_add(reach);
            while i + 1 < counts.len() && counts[i + 1].saturating_sub(reach) <= hi {
                i += 1;
                hi = counts[i].saturating_add(reach);
            }
            for c in ledger.near(signature, lo, hi).await? {
                let sketch = Iblt::from_bytes(&c.sketch);
                cells.push((c, sketch));
            }
            i += 1;
        }
        Ok(Self { cells })
    }

    /// The answer `s` must give, if a cell here is close to it.
    pub fn earlier(&self, s: &Summary, expression: &str, threshold: u64) -> Option<Option<f64>> {
        let reach = reach(threshold);
        let lo = s.patients.saturating_sub(reach);
        let from = self.cells.partition_point(|(c, _)| c.patients < lo);
        self.cells[from..]
            .iter()
            .take_while(|(c, _)| c.patients <= s.patients.saturating_add(reach))
            .find(|(c, sk)| close(s, c, sk.as_ref(), threshold))
            .map(|(c, _)| answer(c, expression))
    }
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
