//! An invertible Bloom lookup table of a cell's patients (their record keys): a 4.5 KiB sketch
//! from which, given another cell's, the patients in one and not the other are recovered
//! when they are few. That is how the hub tells that a new cell differs from one it already
//! released by fewer patients than the threshold (the differencing attack), without keeping
//! any cell's list of patients.

/// Cells per sub-table; each element goes to one cell in each of the four. A difference
/// fails to decode only when some of its elements share all their cells with others: for two
/// elements, a chance of 48⁻⁴ (2 × 10⁻⁷); over 16, about 2 × 10⁻⁵. One element alone always
/// decodes. A difference that does not decode counts as large (see `overlap`).
const PART: usize = 48;
const HASHES: usize = 4;
/// Cells in all.
pub const CELLS: usize = PART * HASHES;
/// Bytes of a serialized sketch.
pub const BYTES: usize = CELLS * 32;

fn mix(mut z: u64) -> u64 {
    // splitmix64's finalizer: keys are already uniform (HMAC output); this spreads the seeds.
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The sketch element of a patient's contribution: their record key bound to their rows and
/// sum, so a changed contribution is a changed element.
pub fn element(key: u64, rows: u64, micros: i128) -> u64 {
    let m = micros as u128;
    mix(key ^ mix(rows ^ mix((m as u64) ^ mix((m >> 64) as u64 ^ 0x5851_f42d_4c95_7f2d))))
}

const SEEDS: [u64; HASHES] = [
    0x9e37_79b9_7f4a_7c15,
    0xc2b2_ae3d_27d4_eb4f,
    0x1656_67b1_9e37_79f9,
    0x85eb_ca77_c2b2_ae63,
];
const CHECK: u64 = 0x27d4_eb2f_1656_67c5;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Cell {
    count: i64,
    elements: u64,
    check: u64,
    /// XOR of the record keys of the elements: a pure cell gives its patient back (to the
    /// hub, which holds the sketch; record keys are secret and say nothing to anyone else).
    patients: u64,
}

/// The sketch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Iblt {
    cells: Vec<Cell>,
}

impl Default for Iblt {
    fn default() -> Self {
        Self {
            cells: vec![Cell::default(); CELLS],
        }
    }
}

fn positions(element: u64) -> [usize; HASHES] {
    let mut p = [0usize; HASHES];
    for (j, s) in SEEDS.iter().enumerate() {
        // The remainder is below PART: the cast cannot truncate.
        p[j] = j * PART + (mix(element ^ s) % PART as u64) as usize;
    }
    p
}

/// How two sketches differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Difference {
    /// Elements in exactly one of the two.
    pub elements: usize,
    /// Distinct patients those elements belong to.
    pub patients: usize,
}

impl Iblt {
    /// Adds `element`, a contribution of the patient whose record key is `patient`.
    pub fn insert(&mut self, element: u64, patient: u64) {
        self.apply(element, patient, 1);
    }

    /// Adds every element of `other` (the sketch of a disjoint set of contributions).
    pub fn merge(&mut self, other: &Iblt) {
        for (a, b) in self.cells.iter_mut().zip(&other.cells) {
            a.count += b.count;
            a.elements ^= b.elements;
            a.check ^= b.check;
            a.patients ^= b.patients;
        }
    }

    fn apply(&mut self, element: u64, patient: u64, sign: i64) {
        let c = mix(element ^ CHECK);
        for i in positions(element) {
            let cell = &mut self.cells[i];
            cell.count += sign;
            cell.elements ^= element;
            cell.check ^= c;
            cell.patients ^= patient;
        }
    }

    /// How `self` and `other` differ, if the sketches can tell (they can when the difference
    /// is small); `None` when it is too large to recover.
    pub fn difference(&self, other: &Iblt) -> Option<Difference> {
        self.difference_within(other, CELLS)
    }

    /// [`Iblt::difference`], or `None` at once when more than `most` elements differ for
    /// sure: each differing element has a cell of its own in the first sub-table, so more
    /// non-empty cells there than `most` is a larger difference (no decoding needed, which is
    /// what makes comparing a result's cells with many released ones cheap).
    pub fn difference_within(&self, other: &Iblt, most: usize) -> Option<Difference> {
        let occupied = self.cells[..PART]
            .iter()
            .zip(&other.cells[..PART])
            .filter(|(a, b)| a != b)
            .count();
        if occupied > most {
            return None;
        }
        let mut d = Iblt {
            cells: self
                .cells
                .iter()
                .zip(&other.cells)
                .map(|(a, b)| Cell {
                    count: a.count - b.count,
                    elements: a.elements ^ b.elements,
                    check: a.check ^ b.check,
                    patients: a.patients ^ b.patients,
                })
                .collect(),
        };
        let mut elements = 0usize;
        let mut patients = std::collections::HashSet::new();
        // Each pass removes one element or stops; an element is removed once.
        for _ in 0..CELLS * 2 {
            let pure = d.cells.iter().position(|c| {
                (c.count == 1 || c.count == -1) && mix(c.elements ^ CHECK) == c.check
            });
            let Some(i) = pure else { break };
            let cell = d.cells[i];
            d.apply(cell.elements, cell.patients, -cell.count);
            elements += 1;
            patients.insert(cell.patients);
        }
        d.cells
            .iter()
            .all(|c| *c == Cell::default())
            .then_some(Difference {
                elements,
                patients: patients.len(),
            })
    }

    /// The sketch's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(BYTES);
        for c in &self.cells {
            out.extend_from_slice(&c.count.to_le_bytes());
            out.extend_from_slice(&c.elements.to_le_bytes());
            out.extend_from_slice(&c.check.to_le_bytes());
            out.extend_from_slice(&c.patients.to_le_bytes());
        }
        out
    }

    /// A sketch from [`Iblt::to_bytes`]; `None` if `bytes` is not one.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != BYTES {
            return None;
        }
        let word = |c: &[u8]| {
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            b
        };
        let cells = bytes
            .chunks_exact(32)
            .map(|c| Cell {
                count: i64::from_le_bytes(word(&c[..8])),
                elements: u64::from_le_bytes(word(&c[8..16])),
                check: u64::from_le_bytes(word(&c[16..24])),
                patients: u64::from_le_bytes(word(&c[24..32])),
            })
            .collect();
        Some(Self { cells })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sketch(keys: impl IntoIterator<Item = u64>) -> Iblt {
        let mut s = Iblt::default();
        for k in keys {
            s.insert(k, k);
        }
        s
    }

    fn diff(elements: usize) -> Option<Difference> {
        Some(Difference {
            elements,
            patients: elements,
        })
    }

    #[test]
    fn one_patient_more_or_less_is_always_found() {
        let common: Vec<u64> = (0..5000u64).map(|i| mix(i ^ 0x1234)).collect();
        for extra in 0..2000u64 {
            let e = mix(extra ^ 0xabcd);
            let a = sketch(common.iter().copied());
            let b = sketch(common.iter().copied().chain([e]));
            assert_eq!(a.difference(&b), diff(1));
            assert_eq!(b.difference(&a), diff(1));
        }
    }

    #[test]
    fn a_changed_contribution_is_one_patient() {
        let mut a = Iblt::default();
        let mut b = Iblt::default();
        for p in 0..1000u64 {
            let k = mix(p);
            a.insert(element(k, 3, 100), k);
            b.insert(element(k, if p == 7 { 2 } else { 3 }, 100), k);
        }
        assert_eq!(
            a.difference(&b),
            Some(Difference {
                elements: 2,
                patients: 1
            })
        );
    }

    proptest! {
        // The property holds but for the rare difference whose keys share all their cells
        // (see `PART`): a fixed seed keeps the suite from failing on such a draw.
        #![proptest_config(ProptestConfig {
            rng_seed: proptest::test_runner::RngSeed::Fixed(2026),
            ..ProptestConfig::default()
        })]

        #[test]
        fn small_differences_are_counted_exactly(
            common in proptest::collection::hash_set(any::<u64>(), 0..2000),
            only_a in proptest::collection::hash_set(any::<u64>(), 0..8),
            only_b in proptest::collection::hash_set(any::<u64>(), 0..8),
        ) {
            let only_a: Vec<u64> = only_a.into_iter().filter(|k| !common.contains(k)).collect();
            let only_b: Vec<u64> = only_b.into_iter()
                .filter(|k| !common.contains(k) && !only_a.contains(k)).collect();
            let a = sketch(common.iter().copied().chain(only_a.iter().copied()));
            let b = sketch(common.iter().copied().chain(only_b.iter().copied()));
            prop_assert_eq!(a.difference(&b), diff(only_a.len() + only_b.len()));
            prop_assert_eq!(Iblt::from_bytes(&a.to_bytes()), Some(a.clone()));
            // Sketches of two disjoint parts add up to the sketch of the whole.
            let mut halves = sketch(common.iter().copied());
            halves.merge(&sketch(only_a.iter().copied()));
            prop_assert_eq!(halves, a);
        }

        #[test]
        fn large_differences_are_never_taken_for_small_ones(
            a in proptest::collection::hash_set(any::<u64>(), 200..400),
            b in proptest::collection::hash_set(any::<u64>(), 200..400),
        ) {
            let d = sketch(a.iter().copied()).difference(&sketch(b.iter().copied()));
            // Either it cannot tell, or what it tells is right.
            if let Some(n) = d {
                prop_assert_eq!(n.elements, a.symmetric_difference(&b).count());
            }
        }
    }
}
