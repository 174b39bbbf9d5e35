//! Uniqueness over any number of rows in bounded memory: (key hash, line) pairs are sorted in
//! runs, spilled to temporary files when a run is full, and merged at the end — the way a
//! database checks a unique index it cannot hold in memory. The files hold hashes and line
//! numbers only, never values.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{BufReader, BufWriter, Read, Write};

/// Entries held in memory before a run is spilled (24 bytes each).
pub const RUN_ENTRIES: usize = 2 << 20;

/// Two lines with the same key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Duplicate {
    /// The first line.
    pub first: u64,
    /// The line repeating it.
    pub second: u64,
}

/// Collects key hashes and finds the first duplicate.
#[derive(Debug)]
pub struct UniqueChecker {
    run: Vec<(u128, u64)>,
    runs: Vec<std::fs::File>,
    limit: usize,
    dup: Option<Duplicate>,
}

impl Default for UniqueChecker {
    fn default() -> Self {
        Self::with_limit(RUN_ENTRIES)
    }
}

fn note(dup: &mut Option<Duplicate>, a: u64, b: u64) {
    let d = Duplicate {
        first: a.min(b),
        second: a.max(b),
    };
    if dup.is_none_or(|x| d.second < x.second) {
        *dup = Some(d);
    }
}

impl UniqueChecker {
    /// A checker spilling every `limit` entries.
    pub fn with_limit(limit: usize) -> Self {
        Self {
            run: Vec::new(),
            runs: Vec::new(),
            limit: limit.max(1),
            dup: None,
        }
    }

    /// Adds keys.
    pub fn extend(&mut self, keys: &[(u128, u64)]) -> std::io::Result<()> {
        for k in keys {
            self.run.push(*k);
            if self.run.len() >= self.limit {
                self.spill()?;
            }
        }
        Ok(())
    }

    fn sort_run(&mut self) {
        self.run.sort_unstable();
        for w in self.run.windows(2) {
            if w[0].0 == w[1].0 {
                note(&mut self.dup, w[0].1, w[1].1);
            }
        }
    }

    fn spill(&mut self) -> std::io::Result<()> {
        self.sort_run();
        let mut f = BufWriter::new(tempfile::tempfile()?);
        for (h, l) in &self.run {
            f.write_all(&h.to_le_bytes())?;
            f.write_all(&l.to_le_bytes())?;
        }
        let mut f = f.into_inner().map_err(|e| e.into_error())?;
        std::io::Seek::rewind(&mut f)?;
        self.runs.push(f);
        self.run.clear();
        Ok(())
    }

    /// The first duplicate (by the line of its second occurrence, within what the runs show).
    pub fn finish(mut self) -> std::io::Result<Option<Duplicate>> {
        if self.runs.is_empty() {
            self.sort_run();
            return Ok(self.dup);
        }
        if !self.run.is_empty() {
            self.spill()?;
        }
        let mut readers: Vec<_> = self
            .runs
            .drain(..)
            .map(|f| BufReader::with_capacity(1 << 16, f))
            .collect();
        let read = |r: &mut BufReader<std::fs::File>| -> std::io::Result<Option<(u128, u64)>> {
            let mut b = [0u8; 24];
            match r.read_exact(&mut b) {
                Ok(()) => {
                    let mut h = [0u8; 16];
                    h.copy_from_slice(&b[..16]);
                    let mut l = [0u8; 8];
                    l.copy_from_slice(&b[16..]);
                    Ok(Some((u128::from_le_bytes(h), u64::from_le_bytes(l))))
                }
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
                Err(e) => Err(e),
            }
        };
        let mut heap = BinaryHeap::new();
        for (i, r) in readers.iter_mut().enumerate() {
            if let Some(e) = read(r)? {
                heap.push(Reverse((e, i)));
            }
        }
        let mut prev: Option<(u128, u64)> = None;
        while let Some(Reverse((e, i))) = heap.pop() {
            if let Some(p) = prev
                && p.0 == e.0
            {
                note(&mut self.dup, p.1, e.1);
            }
            prev = Some(e);
            if let Some(n) = read(&mut readers[i])? {
                heap.push(Reverse((n, i)));
            }
        }
        Ok(self.dup)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn finds_duplicates_across_spills(keys in proptest::collection::vec(0u128..500, 0..300),
                                          limit in 1usize..50) {
            let mut c = UniqueChecker::with_limit(limit);
            let entries: Vec<(u128, u64)> = keys.iter().enumerate().map(|(i, k)| (*k, i as u64 + 2)).collect();
            c.extend(&entries).expect("extend");
            let found = c.finish().expect("finish");
            let mut seen = std::collections::HashSet::new();
            let has_dup = keys.iter().any(|k| !seen.insert(*k));
            prop_assert_eq!(found.is_some(), has_dup);
            if let Some(d) = found {
                prop_assert_eq!(keys[(d.first - 2) as usize], keys[(d.second - 2) as usize]);
            }
        }
    }
}
