//! An invertible Bloom lookup table of a cell's patients (their record keys): a 4.5 KiB sketch
//! from which, given another cell's, the patients in one and not the other are recovered
//! when they are few. That is how the hub tells that a new cell differs from one it already
//! released by fewer patients than the threshold (the differencing attack), without keeping
//! any cell's list of patients.

/// Cells per sub-table; each key goes to one cell in each of the four. A difference fails to
/// decode only when some of its keys share all their cells with others: for two keys, a
/// chance of 48⁻⁴ (2 × 10⁻⁷); over 16 keys, about 2 × 10⁻⁵. One key alone always decodes. A
/// difference that does not decode counts as large (see `overlap`).
const PART: usize = 48;
const HASHES: usize = 4;
/// Cells in all.
pub const CELLS: usize = PART * HASHES;
/// Bytes of a serialized sketch.
pub const BYTES: usize = CELLS * 24;

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
    keys: u64,
    check: u64,
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

fn positions(key: u64) -> [usize; HASHES] {
    let mut p = [0usize; HASHES];
    for (j, s) in SEEDS.iter().enumerate() {
        // The remainder is below PART: the cast cannot truncate.
        p[j] = j * PART + (mix(key ^ s) % PART as u64) as usize;
    }
    p
}

impl Iblt {
    /// Adds a key.
    pub fn insert(&mut self, key: u64) {
        self.apply(key, 1);
    }

    fn apply(&mut self, key: u64, sign: i64) {
        let c = mix(key ^ CHECK);
        for i in positions(key) {
            let cell = &mut self.cells[i];
            cell.count += sign;
            cell.keys ^= key;
            cell.check ^= c;
        }
    }

    /// How many keys are in exactly one of `self` and `other`, if the sketches can tell (they
    /// can when the difference is small); `None` when it is too large to recover.
    pub fn difference(&self, other: &Iblt) -> Option<usize> {
        let mut d = Iblt {
            cells: self
                .cells
                .iter()
                .zip(&other.cells)
                .map(|(a, b)| Cell {
                    count: a.count - b.count,
                    keys: a.keys ^ b.keys,
                    check: a.check ^ b.check,
                })
                .collect(),
        };
        let mut found = 0usize;
        // Each pass removes at least one key or stops; a key is removed once.
        for _ in 0..CELLS * 2 {
            let pure = d
                .cells
                .iter()
                .position(|c| (c.count == 1 || c.count == -1) && mix(c.keys ^ CHECK) == c.check);
            let Some(i) = pure else { break };
            let cell = d.cells[i];
            d.apply(cell.keys, -cell.count);
            found += 1;
        }
        d.cells
            .iter()
            .all(|c| *c == Cell::default())
            .then_some(found)
    }

    /// The sketch's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(BYTES);
        for c in &self.cells {
            out.extend_from_slice(&c.count.to_le_bytes());
            out.extend_from_slice(&c.keys.to_le_bytes());
            out.extend_from_slice(&c.check.to_le_bytes());
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
            .chunks_exact(24)
            .map(|c| Cell {
                count: i64::from_le_bytes(word(&c[..8])),
                keys: u64::from_le_bytes(word(&c[8..16])),
                check: u64::from_le_bytes(word(&c[16..24])),
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
            s.insert(k);
        }
        s
    }

    #[test]
    fn one_patient_more_or_less_is_always_found() {
        let common: Vec<u64> = (0..5000u64).map(|i| mix(i ^ 0x1234)).collect();
        for extra in 0..2000u64 {
            let e = mix(extra ^ 0xabcd);
            let a = sketch(common.iter().copied());
            let b = sketch(common.iter().copied().chain([e]));
            assert_eq!(a.difference(&b), Some(1));
            assert_eq!(b.difference(&a), Some(1));
        }
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
            prop_assert_eq!(a.difference(&b), Some(only_a.len() + only_b.len()));
            prop_assert_eq!(Iblt::from_bytes(&a.to_bytes()), Some(a));
        }

        #[test]
        fn large_differences_are_never_taken_for_small_ones(
            a in proptest::collection::hash_set(any::<u64>(), 200..400),
            b in proptest::collection::hash_set(any::<u64>(), 200..400),
        ) {
            let d = sketch(a.iter().copied()).difference(&sketch(b.iter().copied()));
            // Either it cannot tell, or what it tells is right.
            if let Some(n) = d {
                prop_assert_eq!(n, a.symmetric_difference(&b).count());
            }
        }
    }
}
