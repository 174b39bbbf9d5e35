//! RFC 6962 Merkle tree hashing, the compact [`Frontier`] that appends in O(log n) memory,
//! and inclusion and consistency proofs with the verification algorithms of RFC 9162
//! (§2.1.3.2 and §2.1.4.2), so that any Certificate Transparency verifier can check them.
//!
//! SHA-256 comes from the `sha2` crate rather than `ring`: it detects the SHA extensions with
//! CPUID, which works on the hypervisors where ring's detection does not (3× faster here).

use sha2::{Digest, Sha256};

/// A SHA-256 value.
pub type Hash = [u8; 32];

/// `SHA-256(0x00 ‖ data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    Sha256::new()
        .chain_update([0u8])
        .chain_update(data)
        .finalize()
        .into()
}

/// `SHA-256(0x01 ‖ left ‖ right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    Sha256::new()
        .chain_update([1u8])
        .chain_update(left)
        .chain_update(right)
        .finalize()
        .into()
}

/// The root of the empty tree: `SHA-256("")`.
pub fn empty_root() -> Hash {
    Sha256::digest(b"").into()
}

/// The roots of the perfect subtrees that make up a tree of `size` leaves, largest first
/// (one per set bit of `size`). Enough to append and to compute the root.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Frontier {
    size: u64,
    stack: Vec<Hash>,
}

impl Frontier {
    /// The empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Rebuilds a frontier from its parts; `None` if the count does not match `size`.
    pub fn from_parts(size: u64, stack: Vec<Hash>) -> Option<Self> {
        (size.count_ones() as usize == stack.len()).then_some(Self { size, stack })
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The subtree roots, largest first.
    pub fn hashes(&self) -> &[Hash] {
        &self.stack
    }

    /// Appends a leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        self.stack.push(leaf);
        let mut n = self.size;
        // Each trailing one bit of the old size is a perfect subtree of the new leaf's height.
        while n & 1 == 1 {
            let (Some(r), Some(l)) = (self.stack.pop(), self.stack.pop()) else {
                unreachable!("the stack holds one hash per set bit of the size");
            };
            self.stack.push(node_hash(&l, &r));
            n >>= 1;
        }
        self.size += 1;
    }

    /// The RFC 6962 Merkle tree hash of the leaves so far.
    pub fn root(&self) -> Hash {
        let mut it = self.stack.iter().rev();
        let Some(last) = it.next() else {
            return empty_root();
        };
        it.fold(*last, |acc, left| node_hash(left, &acc))
    }
}

/// Largest power of two strictly below `n` (n ≥ 2).
fn split(n: usize) -> usize {
    let mut k = 1;
    while k << 1 < n {
        k <<= 1;
    }
    k
}

/// MTH(D[n]) over leaf hashes, as RFC 6962 §2.1 defines it.
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = split(n);
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// PATH(index, D[n]): the audit path for leaf `index` in the tree of `leaves`.
pub fn inclusion_proof(leaves: &[Hash], index: usize) -> Option<Vec<Hash>> {
    if index >= leaves.len() {
        return None;
    }
    let mut out = Vec::new();
    path(leaves, index, &mut out);
    Some(out)
}

fn path(leaves: &[Hash], m: usize, out: &mut Vec<Hash>) {
    let n = leaves.len();
    if n <= 1 {
        return;
    }
    let k = split(n);
    if m < k {
        path(&leaves[..k], m, out);
        out.push(root(&leaves[k..]));
    } else {
        path(&leaves[k..], m - k, out);
        out.push(root(&leaves[..k]));
    }
}

/// PROOF(m, D[n]): proves that the first `m` leaves are a prefix of `leaves`.
pub fn consistency_proof(leaves: &[Hash], m: usize) -> Option<Vec<Hash>> {
    if m == 0 || m > leaves.len() {
        return None;
    }
    let mut out = Vec::new();
    subproof(m, leaves, true, &mut out);
    Some(out)
}

fn subproof(m: usize, leaves: &[Hash], complete: bool, out: &mut Vec<Hash>) {
    let n = leaves.len();
    if m == n {
        if !complete {
            out.push(root(leaves));
        }
        return;
    }
    let k = split(n);
    if m <= k {
        subproof(m, &leaves[..k], complete, out);
        out.push(root(&leaves[k..]));
    } else {
        subproof(m - k, &leaves[k..], false, out);
        out.push(root(&leaves[..k]));
    }
}

/// Checks an inclusion proof (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(index: u64, size: u64, leaf: &Hash, proof: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut f, mut s) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    s == 0 && r == *root
}

/// Checks a consistency proof between a tree of `m` leaves and one of `n` (RFC 9162 §2.1.4.2).
pub fn verify_consistency(m: u64, n: u64, root_m: &Hash, root_n: &Hash, proof: &[Hash]) -> bool {
    if m == 0 || m > n {
        return false;
    }
    if m == n {
        return proof.is_empty() && root_m == root_n;
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if m.is_power_of_two() {
        path.push(*root_m);
    }
    path.extend_from_slice(proof);
    let Some((first, rest)) = path.split_first() else {
        return false;
    };
    let (mut f, mut s) = (m - 1, n - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    fr == *root_m && sr == *root_n && s == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf_hash(&(i as u64).to_le_bytes()))
            .collect()
    }

    /// RFC 6962's reference values come from the CT test suite: the 8-leaf tree over these
    /// inputs has this root (certificate-transparency-go, merkle tests).
    #[test]
    fn matches_the_certificate_transparency_test_vector() {
        let inputs: [&[u8]; 8] = [
            b"",
            b"\x00",
            b"\x10",
            b"\x20\x21",
            b"\x30\x31",
            b"\x40\x41\x42\x43",
            b"\x50\x51\x52\x53\x54\x55\x56\x57",
            b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
        ];
        let l: Vec<Hash> = inputs.iter().map(|d| leaf_hash(d)).collect();
        assert_eq!(
            hex::encode(root(&l)),
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
        );
        assert_eq!(
            hex::encode(root(&l[..1])),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
        assert_eq!(
            hex::encode(empty_root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    proptest! {
        #[test]
        fn frontier_root_equals_recursive_root(n in 0usize..300) {
            let l = leaves(n);
            let mut f = Frontier::new();
            for (i, h) in l.iter().enumerate() {
                f.push(*h);
                prop_assert_eq!(f.root(), root(&l[..=i]));
            }
            prop_assert_eq!(f.size(), n as u64);
            prop_assert_eq!(Frontier::from_parts(f.size(), f.hashes().to_vec()), Some(f));
        }

        #[test]
        fn inclusion_proofs_verify_and_bind_the_leaf(n in 1usize..200, seed in any::<u64>()) {
            let l = leaves(n);
            let i = (seed % n as u64) as usize;
            let r = root(&l);
            let p = inclusion_proof(&l, i).expect("in range");
            prop_assert!(verify_inclusion(i as u64, n as u64, &l[i], &p, &r));
            // A different leaf, index or size must not verify.
            let other = leaf_hash(b"not in the tree");
            prop_assert!(!verify_inclusion(i as u64, n as u64, &other, &p, &r));
            if n > 1 {
                let j = (i + 1) % n;
                prop_assert!(!verify_inclusion(j as u64, n as u64, &l[i], &p, &r) || l[i] == l[j]);
                prop_assert!(!verify_inclusion(i as u64, n as u64, &l[j], &p, &r));
            }
        }

        #[test]
        fn consistency_proofs_verify_and_detect_rewrites(n in 1usize..200, seed in any::<u64>()) {
            let l = leaves(n);
            let m = 1 + (seed % n as u64) as usize;
            let (rm, rn) = (root(&l[..m]), root(&l));
            let p = consistency_proof(&l, m).expect("m ≤ n");
            prop_assert!(verify_consistency(m as u64, n as u64, &rm, &rn, &p));
            // Rewriting any leaf of the old tree breaks the proof.
            let mut forged = l.clone();
            forged[(seed as usize / 7) % m] = leaf_hash(b"forged");
            let fm = root(&forged[..m]);
            prop_assert!(!verify_consistency(m as u64, n as u64, &fm, &rn, &p));
            if m < n {
                prop_assert!(!verify_consistency(m as u64, n as u64, &rm, &fm, &p));
            }
        }
    }
}
