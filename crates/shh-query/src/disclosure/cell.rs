//! One output cell of one measure, as the rules decide it.

use super::measure::Summary;

/// A cell and its fate.
#[derive(Debug, Clone)]
pub struct Cell {
    /// What stands behind it.
    pub summary: Summary,
    /// The true number of distinct values (`count(DISTINCT x)` of a column not the patient).
    pub distinct: Option<i64>,
    /// What is published (`None`: suppressed).
    pub released: Option<f64>,
    /// The rule that decided it.
    pub fired: Option<&'static str>,
    /// Answered by a cell released earlier (the overlap rule).
    pub earlier: bool,
    /// Answered by this fresh cell of the same result (its index among the result's fresh
    /// cells): it repeats that cell's final answer, after secondary suppression.
    pub source: Option<usize>,
    /// Its own index among the result's fresh cells (the ledger's new entries).
    pub entry: Option<usize>,
}
