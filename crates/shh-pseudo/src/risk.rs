//! The re-identification risk report, in the manner of ARX and sdcMicro.
//!
//! Records are grouped into equivalence classes by their (generalized) quasi-identifier
//! values. A record in a class of size 1 is unique: anyone who knows those attributes of a
//! person finds their record. The report gives the class-size distribution, the share of
//! records in classes below k (k = 5 and 10), and, for each quasi-identifier, how many unique
//! records would remain without it — the columns that drive uniqueness.
//!
//! Classes are counted exactly (the key is the tuple's bytes), so memory grows with the number
//! of distinct combinations, not with the number of records. Records are rows of the table;
//! for tables with several rows per person this is the record-level (not person-level) risk.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Counts equivalence classes as rows stream by. Workers keep one each and [`Self::merge`].
#[derive(Debug, Clone, Default)]
pub struct RiskAccumulator {
    columns: Vec<String>,
    records: u64,
    full: HashMap<Box<[u8]>, u64>,
    /// One map per column, keyed by the tuple without that column.
    without: Vec<HashMap<Box<[u8]>, u64>>,
    key: Vec<u8>,
}

const NULL: u8 = 0;
const SEP: u8 = 1;

impl RiskAccumulator {
    /// An accumulator over these quasi-identifier columns.
    pub fn new(columns: Vec<String>) -> Self {
        let without = vec![HashMap::new(); if columns.len() > 1 { columns.len() } else { 0 }];
        Self {
            columns,
            without,
            ..Default::default()
        }
    }

    /// The quasi-identifier columns.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// Adds one record's quasi-identifier values, in column order (`None` is null).
    pub fn add(&mut self, values: &[Option<&str>]) {
        self.records += 1;
        if self.columns.is_empty() {
            return;
        }
        build_key(&mut self.key, values, usize::MAX);
        bump(&mut self.full, &self.key, 1);
        for j in 0..self.without.len() {
            build_key(&mut self.key, values, j);
            bump(&mut self.without[j], &self.key, 1);
        }
    }

    /// Adds another accumulator's counts (same columns).
    pub fn merge(&mut self, other: RiskAccumulator) {
        self.records += other.records;
        for (k, n) in other.full {
            bump(&mut self.full, &k, n);
        }
        for (mine, theirs) in self.without.iter_mut().zip(other.without) {
            for (k, n) in theirs {
                bump(mine, &k, n);
            }
        }
    }

    /// The report.
    pub fn report(&self) -> RiskReport {
        let mut buckets: Vec<SizeBucket> = BUCKETS
            .iter()
            .map(|&(lo, hi)| SizeBucket {
                min: lo,
                max: hi,
                classes: 0,
                records: 0,
            })
            .collect();
        let mut below5 = 0;
        let mut below10 = 0;
        let mut smallest: Option<u64> = None;
        for &n in self.full.values() {
            if let Some(b) = buckets
                .iter_mut()
                .find(|b| n >= b.min && b.max.is_none_or(|m| n <= m))
            {
                b.classes += 1;
                b.records += n;
            }
            if n < 5 {
                below5 += n;
            }
            if n < 10 {
                below10 += n;
            }
            smallest = Some(smallest.map_or(n, |s| s.min(n)));
        }
        let unique = count_unique(&self.full);
        let mut drivers: Vec<Driver> = self
            .without
            .iter()
            .zip(&self.columns)
            .map(|(m, c)| {
                let u = count_unique(m);
                Driver {
                    column: c.clone(),
                    unique_without: u,
                    unique_removed: unique.saturating_sub(u),
                }
            })
            .collect();
        drivers.sort_by(|a, b| {
            b.unique_removed
                .cmp(&a.unique_removed)
                .then(a.column.cmp(&b.column))
        });
        let share = |n: u64| {
            if self.records == 0 {
                0.0
            } else {
                n as f64 / self.records as f64
            }
        };
        RiskReport {
            quasi_identifiers: self.columns.clone(),
            records: self.records,
            classes: self.full.len() as u64,
            unique_records: unique,
            smallest_class: smallest.unwrap_or(0),
            records_below_k5: below5,
            records_below_k10: below10,
            share_below_k5: share(below5),
            share_below_k10: share(below10),
            class_sizes: buckets,
            drivers,
        }
    }
}

fn count_unique(m: &HashMap<Box<[u8]>, u64>) -> u64 {
    m.values().filter(|&&n| n == 1).count() as u64
}

fn bump(m: &mut HashMap<Box<[u8]>, u64>, key: &[u8], n: u64) {
    if let Some(c) = m.get_mut(key) {
        *c += n;
    } else {
        m.insert(key.into(), n);
    }
}

fn build_key(key: &mut Vec<u8>, values: &[Option<&str>], skip: usize) {
    key.clear();
    for (i, v) in values.iter().enumerate() {
        if i == skip {
            continue;
        }
        match v {
            None => key.push(NULL),
            Some(s) => {
                key.push(SEP);
                key.extend_from_slice(&(s.len() as u32).to_le_bytes());
                key.extend_from_slice(s.as_bytes());
            }
        }
    }
}

const BUCKETS: [(u64, Option<u64>); 7] = [
    (1, Some(1)),
    (2, Some(2)),
    (3, Some(4)),
    (5, Some(9)),
    (10, Some(19)),
    (20, Some(99)),
    (100, None),
];

/// Classes whose size falls in `[min, max]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SizeBucket {
    /// Smallest size in the bucket.
    pub min: u64,
    /// Largest size (`None`: unbounded).
    pub max: Option<u64>,
    /// Classes of that size.
    pub classes: u64,
    /// Records in them.
    pub records: u64,
}

/// How much one quasi-identifier contributes to uniqueness.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Driver {
    /// The column.
    pub column: String,
    /// Unique records if this column were removed.
    pub unique_without: u64,
    /// Unique records that this column alone makes unique.
    pub unique_removed: u64,
}

/// The re-identification risk of one dataset version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RiskReport {
    /// The quasi-identifiers (as stored, after generalization).
    pub quasi_identifiers: Vec<String>,
    /// Records.
    pub records: u64,
    /// Equivalence classes.
    pub classes: u64,
    /// Records alone in their class.
    pub unique_records: u64,
    /// Size of the smallest class (the k the version achieves).
    pub smallest_class: u64,
    /// Records in classes of fewer than 5.
    pub records_below_k5: u64,
    /// Records in classes of fewer than 10.
    pub records_below_k10: u64,
    /// Share of records in classes of fewer than 5.
    pub share_below_k5: f64,
    /// Share of records in classes of fewer than 10.
    pub share_below_k10: f64,
    /// Distribution of class sizes.
    pub class_sizes: Vec<SizeBucket>,
    /// Columns by how many unique records they cause, most first.
    pub drivers: Vec<Driver>,
}

impl RiskReport {
    /// The report for people.
    pub fn to_markdown(&self, title: &str) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(s, "# Re-identification risk: {title}\n");
        if self.quasi_identifiers.is_empty() {
            let _ = writeln!(
                s,
                "No quasi-identifier is declared in the column policy: no risk computed."
            );
            return s;
        }
        let _ = writeln!(
            s,
            "Quasi-identifiers: {}\n",
            self.quasi_identifiers
                .iter()
                .map(|c| format!("`{c}`"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let _ = writeln!(s, "| measure | value |\n| --- | --- |");
        let _ = writeln!(s, "| records | {} |", self.records);
        let _ = writeln!(s, "| equivalence classes | {} |", self.classes);
        let _ = writeln!(
            s,
            "| smallest class (k achieved) | {} |",
            self.smallest_class
        );
        let _ = writeln!(
            s,
            "| unique records | {} ({:.2}%) |",
            self.unique_records,
            pct(self.unique_records, self.records)
        );
        let _ = writeln!(
            s,
            "| records in classes < 5 | {} ({:.2}%) |",
            self.records_below_k5,
            self.share_below_k5 * 100.0
        );
        let _ = writeln!(
            s,
            "| records in classes < 10 | {} ({:.2}%) |\n",
            self.records_below_k10,
            self.share_below_k10 * 100.0
        );
        let _ = writeln!(
            s,
            "## Class sizes\n\n| size | classes | records |\n| --- | --- | --- |"
        );
        for b in &self.class_sizes {
            let size = match b.max {
                Some(m) if m == b.min => m.to_string(),
                Some(m) => format!("{}–{m}", b.min),
                None => format!("≥ {}", b.min),
            };
            let _ = writeln!(s, "| {size} | {} | {} |", b.classes, b.records);
        }
        if !self.drivers.is_empty() {
            let _ = writeln!(
                s,
                "\n## What drives uniqueness\n\n| column | unique records without it | made unique by it |\n| --- | --- | --- |"
            );
            for d in &self.drivers {
                let _ = writeln!(
                    s,
                    "| `{}` | {} | {} |",
                    d.column, d.unique_without, d.unique_removed
                );
            }
        }
        s
    }
}

fn pct(n: u64, d: u64) -> f64 {
    if d == 0 {
        0.0
    } else {
        n as f64 * 100.0 / d as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_and_drivers() {
        let mut a = RiskAccumulator::new(vec!["sex".into(), "year".into()]);
        let mut b = RiskAccumulator::new(vec!["sex".into(), "year".into()]);
        for _ in 0..6 {
            a.add(&[Some("1"), Some("1950")]);
        }
        b.add(&[Some("2"), Some("1950")]);
        b.add(&[Some("2"), Some("1951")]);
        b.add(&[None, Some("1951")]);
        a.merge(b);
        let r = a.report();
        assert_eq!(r.records, 9);
        assert_eq!(r.classes, 4);
        assert_eq!(r.unique_records, 3);
        assert_eq!(r.smallest_class, 1);
        assert_eq!(r.records_below_k5, 3);
        assert_eq!(r.records_below_k10, 9);
        // Without `sex`: years {1950: 7, 1951: 2}, nobody unique: sex makes all 3 unique.
        // Without `year`: sexes {1: 6, 2: 2, null: 1}, one unique: year makes 2 unique.
        assert_eq!(r.drivers[0].column, "sex");
        assert_eq!(r.drivers[0].unique_removed, 3);
        assert_eq!(r.drivers[1].column, "year");
        assert_eq!(r.drivers[1].unique_removed, 2);
        assert_eq!(r.class_sizes[0].classes, 3);
        assert!(
            r.to_markdown("t")
                .contains("| unique records | 3 (33.33%) |")
        );
    }
}
