//! Fixed-length bitsets packed into `u64` words.
//!
//! Bit `i` lives in word `i / 64` at bit position `i % 64` (least significant
//! first). Invariant: the bits past `len` in the last word are always zero, so
//! word-wise counts and comparisons need no masking.

use crate::{CoreError, CoreResult};

/// A fixed-length set of bits (one per weight: `true` = live).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Bitset {
    len: usize,
    words: Vec<u64>,
}

/// Overlap of two masks of the same length (e.g. two pruning rounds).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Overlap {
    /// Bits set in both masks.
    pub intersection: usize,
    /// Bits set in either mask.
    pub union: usize,
    /// `intersection / union`; 1.0 when both masks are empty.
    pub jaccard: f64,
}

fn words_for(len: usize) -> usize {
    len.div_ceil(64)
}

impl Bitset {
    /// A bitset of `len` bits, all set to `value`.
    pub fn new(len: usize, value: bool) -> Self {
        let fill = if value { u64::MAX } else { 0 };
        let mut set = Bitset { len, words: vec![fill; words_for(len)] };
        set.clear_tail();
        set
    }

    /// From one bool per bit.
    pub fn from_bools(bits: &[bool]) -> Self {
        let words = bits
            .chunks(64)
            .map(|chunk| chunk.iter().rev().fold(0u64, |w, &b| (w << 1) | b as u64))
            .collect();
        Bitset { len: bits.len(), words }
    }

    /// From packed words; errors if `words` has the wrong count or stray tail bits.
    pub fn from_words(len: usize, words: Vec<u64>) -> CoreResult<Self> {
        if words.len() != words_for(len) {
            return Err(CoreError::InvalidArgument(format!(
                "a bitset of {len} bits needs {} words, got {}",
                words_for(len),
                words.len()
            )));
        }
        let set = Bitset { len, words };
        let mut clean = set.clone();
        clean.clear_tail();
        if clean != set {
            return Err(CoreError::InvalidArgument(format!(
                "bits set past the end of a {len}-bit set"
            )));
        }
        Ok(set)
    }

    /// One bool per bit.
    pub fn to_bools(&self) -> Vec<bool> {
        let mut out = Vec::with_capacity(self.len);
        for (i, &w) in self.words.iter().enumerate() {
            let n = (self.len - i * 64).min(64);
            out.extend((0..n).map(|b| (w >> b) & 1 == 1));
        }
        out
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The packed words (tail bits zero).
    pub fn words(&self) -> &[u64] {
        &self.words
    }

    /// Bit `i`. Panics if `i >= len` (a caller bug, like slice indexing).
    #[inline]
    pub fn get(&self, i: usize) -> bool {
        assert!(i < self.len, "bit {i} out of range for a {}-bit set", self.len);
        (self.words[i / 64] >> (i % 64)) & 1 == 1
    }

    /// Set bit `i` to `value`. Panics if `i >= len`.
    #[inline]
    pub fn set(&mut self, i: usize, value: bool) {
        assert!(i < self.len, "bit {i} out of range for a {}-bit set", self.len);
        let bit = 1u64 << (i % 64);
        if value {
            self.words[i / 64] |= bit;
        } else {
            self.words[i / 64] &= !bit;
        }
    }

    /// Number of set bits (live weights).
    pub fn count_ones(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// Fraction of cleared bits (pruned weights); 0.0 for an empty set.
    pub fn sparsity(&self) -> f64 {
        if self.len == 0 {
            0.0
        } else {
            1.0 - self.count_ones() as f64 / self.len as f64
        }
    }

    /// Indices of the set bits, ascending.
    pub fn ones(&self) -> impl Iterator<Item = usize> + '_ {
        self.words.iter().enumerate().flat_map(|(wi, &w)| {
            let mut rest = w;
            std::iter::from_fn(move || {
                if rest == 0 {
                    return None;
                }
                let bit = rest.trailing_zeros() as usize;
                rest &= rest - 1;
                Some(wi * 64 + bit)
            })
        })
    }

    /// Call `f` with the index of every set bit, ascending (faster than [`Bitset::ones`]
    /// on dense sets: full words are walked as plain ranges).
    #[inline]
    pub fn for_each_one(&self, mut f: impl FnMut(usize)) {
        for (wi, &w) in self.words.iter().enumerate() {
            let base = wi * 64;
            if w == u64::MAX {
                (base..base + 64).for_each(&mut f);
            } else {
                let mut rest = w;
                while rest != 0 {
                    f(base + rest.trailing_zeros() as usize);
                    rest &= rest - 1;
                }
            }
        }
    }

    /// Bit-wise AND with `other` (same length).
    pub fn and(&self, other: &Bitset) -> CoreResult<Bitset> {
        self.zip(other, |a, b| a & b)
    }

    /// Bit-wise OR with `other` (same length).
    pub fn or(&self, other: &Bitset) -> CoreResult<Bitset> {
        self.zip(other, |a, b| a | b)
    }

    /// Intersection, union and Jaccard index with `other` (same length).
    pub fn overlap(&self, other: &Bitset) -> CoreResult<Overlap> {
        let intersection = self.and(other)?.count_ones();
        let union = self.or(other)?.count_ones();
        let jaccard = if union == 0 { 1.0 } else { intersection as f64 / union as f64 };
        Ok(Overlap { intersection, union, jaccard })
    }

    fn zip(&self, other: &Bitset, op: impl Fn(u64, u64) -> u64) -> CoreResult<Bitset> {
        if self.len != other.len {
            return Err(CoreError::MaskMismatch(format!(
                "masks of different lengths ({} and {} bits)",
                self.len, other.len
            )));
        }
        let words = self.words.iter().zip(&other.words).map(|(&a, &b)| op(a, b)).collect();
        Ok(Bitset { len: self.len, words })
    }

    fn clear_tail(&mut self) {
        let rem = self.len % 64;
        if rem != 0 {
            if let Some(last) = self.words.last_mut() {
                *last &= (1u64 << rem) - 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn bools(max: usize) -> impl Strategy<Value = Vec<bool>> {
        proptest::collection::vec(any::<bool>(), 0..max)
    }

    #[test]
    fn full_and_empty_sets() {
        let full = Bitset::new(130, true);
        assert_eq!(full.count_ones(), 130);
        assert_eq!(full.words()[2], 0b11);
        assert_eq!(Bitset::new(130, false).sparsity(), 1.0);
        assert_eq!(Bitset::new(0, true).sparsity(), 0.0);
    }

    #[test]
    fn stray_tail_bits_are_rejected() {
        assert!(Bitset::from_words(3, vec![0b1000]).is_err());
        assert!(Bitset::from_words(3, vec![0b111, 0]).is_err());
        assert_eq!(Bitset::from_words(3, vec![0b101]).unwrap().to_bools(), vec![true, false, true]);
    }

    #[test]
    fn overlap_of_different_lengths_is_an_error() {
        let e = Bitset::new(3, true).overlap(&Bitset::new(4, true));
        assert!(matches!(e, Err(CoreError::MaskMismatch(_))));
    }

    proptest! {
        #[test]
        fn matches_a_vec_of_bools(bits in bools(300)) {
            let set = Bitset::from_bools(&bits);
            prop_assert_eq!(set.to_bools(), bits.clone());
            prop_assert_eq!(set.count_ones(), bits.iter().filter(|&&b| b).count());
            let ones: Vec<usize> = set.ones().collect();
            let expect: Vec<usize> = (0..bits.len()).filter(|&i| bits[i]).collect();
            prop_assert_eq!(&ones, &expect);
            let mut visited = Vec::new();
            set.for_each_one(|i| visited.push(i));
            prop_assert_eq!(visited, expect);
        }

        #[test]
        fn set_and_get_match_the_model(bits in bools(200), flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<bool>()), 0..50)) {
            prop_assume!(!bits.is_empty());
            let mut model = bits.clone();
            let mut set = Bitset::from_bools(&bits);
            for (idx, v) in flips {
                let i = idx.index(bits.len());
                model[i] = v;
                set.set(i, v);
            }
            prop_assert_eq!(set.to_bools(), model.clone());
            prop_assert_eq!(&set, &Bitset::from_bools(&model));
        }

        #[test]
        fn overlap_matches_the_model(pairs in proptest::collection::vec((any::<bool>(), any::<bool>()), 0..300)) {
            let a: Vec<bool> = pairs.iter().map(|p| p.0).collect();
            let b: Vec<bool> = pairs.iter().map(|p| p.1).collect();
            let o = Bitset::from_bools(&a).overlap(&Bitset::from_bools(&b)).unwrap();
            let inter = pairs.iter().filter(|p| p.0 && p.1).count();
            let uni = pairs.iter().filter(|p| p.0 || p.1).count();
            prop_assert_eq!(o.intersection, inter);
            prop_assert_eq!(o.union, uni);
            let j = if uni == 0 { 1.0 } else { inter as f64 / uni as f64 };
            prop_assert!((o.jaccard - j).abs() < 1e-12);
        }
    }
}
