//! Which weights survive a pruning round: magnitude selection and random controls.
//!
//! Selection is O(n), never a full sort: a 16-bit radix histogram finds the
//! bucket of the k-th largest score, and `select_nth_unstable` runs inside it.
//!
//! **Tie-breaking (deterministic):** candidates are ordered by score, larger
//! first; equal scores are ordered by position, earlier first. The position of
//! a weight is its row-major index within its layer, with layers taken in the
//! order given (global scope) — so among equal magnitudes the weight that comes
//! first in the parameter list survives. `-0.0` counts as `0.0`; NaN scores are
//! an error. Together this makes the kept set a pure function of the inputs.
//!
//! **Counts:** pruning a fraction `p` of the `live` weights keeps
//! `k = round((1 - p) * live)` of them (`f64::round`: halves round away from zero).

use super::bitset::Bitset;
use crate::checksum::splitmix64;
use crate::{CoreError, CoreResult};

/// Whether one threshold/count applies to all layers together or to each layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelectionScope {
    /// One global ranking over all layers (the lottery-ticket default).
    Global,
    /// The same fraction pruned in every layer separately (layer-wise control).
    PerLayer,
}

/// The result of a magnitude pruning round.
#[derive(Debug, Clone, PartialEq)]
pub struct Selection {
    /// New masks, one per layer (a subset of the current masks).
    pub masks: Vec<Bitset>,
    /// Per layer: the smallest kept score of the ranking that layer took part in
    /// (the global one for `Global`); `None` where that ranking kept nothing.
    pub thresholds: Vec<Option<f32>>,
}

/// `round((1 - fraction) * live)`, checking `0 <= fraction <= 1`.
pub fn keep_count(live: usize, fraction: f64) -> CoreResult<usize> {
    if !(0.0..=1.0).contains(&fraction) {
        return Err(CoreError::InvalidArgument(format!(
            "pruning fraction must lie in [0, 1], got {fraction}"
        )));
    }
    Ok((((1.0 - fraction) * live as f64).round() as usize).min(live))
}

/// Order-preserving map of a non-NaN score to `u32` (larger score, larger code).
#[inline]
fn score_code(score: f32) -> u32 {
    let bits = (score + 0.0).to_bits(); // -0.0 + 0.0 == +0.0
    if bits >> 31 == 1 {
        !bits
    } else {
        bits | 0x8000_0000
    }
}

/// Keep, within each group of layers, the `counts[g]` live weights with the
/// largest `primary(layer, offset)` codes (ties: earlier position first).
///
/// Radix selection: a histogram of the top 16 bits of the codes finds the bucket
/// holding the k-th largest code; `select_nth_unstable` runs only inside that
/// bucket; a last pass in position order keeps codes above the threshold code
/// and the earliest of those equal to it. O(n), no sort.
fn select_groups(
    current: &[Bitset],
    groups: &[Vec<usize>],
    counts: &[usize],
    primary: impl Fn(usize, usize) -> u32,
) -> CoreResult<Vec<Bitset>> {
    let mut out: Vec<Bitset> = current.iter().map(|m| Bitset::new(m.len(), false)).collect();
    for (group, &k) in groups.iter().zip(counts) {
        let live: usize = group.iter().map(|&l| current[l].count_ones()).sum();
        if k > live {
            return Err(CoreError::InvalidArgument(format!(
                "cannot keep {k} weights: only {live} are live"
            )));
        }
        if k == 0 {
            continue;
        }
        // Codes of the live weights, in position order (layer order, then row-major).
        let mut codes = Vec::with_capacity(live);
        for &l in group {
            current[l].for_each_one(|off| codes.push(primary(l, off)));
        }
        let (threshold, mut ties) = kth_largest(&codes, k);
        let mut code = codes.iter();
        for &l in group {
            let mut words = vec![0u64; current[l].words().len()];
            current[l].for_each_one(|off| {
                let c = *code.next().expect("one code per live weight");
                if c > threshold || (c == threshold && ties > 0) {
                    ties -= usize::from(c == threshold);
                    words[off / 64] |= 1 << (off % 64);
                }
            });
            out[l] = Bitset::from_words(current[l].len(), words)?;
        }
    }
    Ok(out)
}

/// The k-th largest code `t` (1 <= k <= len) and how many codes equal to `t` the
/// k largest include.
fn kth_largest(codes: &[u32], k: usize) -> (u32, usize) {
    let mut hist = vec![0usize; 1 << 16];
    for &c in codes {
        hist[(c >> 16) as usize] += 1;
    }
    let mut above = 0; // codes in buckets above the current one
    let mut bucket = hist.len() - 1;
    while above + hist[bucket] < k {
        above += hist[bucket];
        bucket -= 1;
    }
    let mut inside: Vec<u32> =
        codes.iter().copied().filter(|&c| (c >> 16) as usize == bucket).collect();
    let rank = k - above; // 1-based rank of t among the bucket, largest first
    let t = *inside.select_nth_unstable_by(rank - 1, |a, b| b.cmp(a)).1;
    let greater = inside.iter().filter(|&&c| c > t).count();
    (t, rank - greater)
}

fn check_shapes(scores: &[&[f32]], current: &[Bitset]) -> CoreResult<()> {
    if scores.len() != current.len() {
        return Err(CoreError::MaskMismatch(format!(
            "{} score arrays but {} masks",
            scores.len(),
            current.len()
        )));
    }
    for (i, (s, m)) in scores.iter().zip(current).enumerate() {
        if s.len() != m.len() {
            return Err(CoreError::MaskMismatch(format!(
                "layer {i}: {} scores but a {}-bit mask",
                s.len(),
                m.len()
            )));
        }
    }
    Ok(())
}

fn groups_and_counts(
    current: &[Bitset],
    scope: SelectionScope,
    fraction: f64,
) -> CoreResult<(Vec<Vec<usize>>, Vec<usize>)> {
    let groups: Vec<Vec<usize>> = match scope {
        SelectionScope::Global => vec![(0..current.len()).collect()],
        SelectionScope::PerLayer => (0..current.len()).map(|l| vec![l]).collect(),
    };
    let counts = groups
        .iter()
        .map(|g| keep_count(g.iter().map(|&l| current[l].count_ones()).sum(), fraction))
        .collect::<CoreResult<Vec<_>>>()?;
    Ok((groups, counts))
}

/// Magnitude pruning: prune `fraction` of the currently live weights, keeping
/// those with the largest `scores` (typically `|w|`), globally or per layer.
/// Weights already pruned in `current` stay pruned.
pub fn magnitude_masks(
    scores: &[&[f32]],
    current: &[Bitset],
    fraction: f64,
    scope: SelectionScope,
) -> CoreResult<Selection> {
    check_shapes(scores, current)?;
    let (groups, counts) = groups_and_counts(current, scope, fraction)?;
    for (l, s) in scores.iter().enumerate() {
        if let Some(off) = s.iter().position(|x| x.is_nan()) {
            return Err(CoreError::InvalidArgument(format!(
                "layer {l}: score at flat index {off} is NaN"
            )));
        }
    }
    let masks = select_groups(current, &groups, &counts, |l, off| score_code(scores[l][off]))?;
    let mut thresholds = vec![None; current.len()];
    for group in &groups {
        let min = group
            .iter()
            .flat_map(|&l| masks[l].ones().map(move |off| scores[l][off] + 0.0))
            .min_by(|a, b| a.total_cmp(b));
        for &l in group {
            thresholds[l] = min;
        }
    }
    Ok(Selection { masks, thresholds })
}

/// Random control: keep exactly `counts[l]` of the live weights of layer `l`,
/// chosen uniformly at random with `seed` (deterministic for a given seed).
pub fn random_masks_with_counts(
    current: &[Bitset],
    counts: &[usize],
    seed: u64,
) -> CoreResult<Vec<Bitset>> {
    if counts.len() != current.len() {
        return Err(CoreError::InvalidArgument(format!(
            "{} counts but {} masks",
            counts.len(),
            current.len()
        )));
    }
    let groups: Vec<Vec<usize>> = (0..current.len()).map(|l| vec![l]).collect();
    select_groups(current, &groups, counts, |l, off| random_code(seed, l, off))
}

/// Random control: prune `fraction` of the live weights at random, with the
/// global count (`Global`) or the same count per layer (`PerLayer`).
pub fn random_masks(
    current: &[Bitset],
    fraction: f64,
    scope: SelectionScope,
    seed: u64,
) -> CoreResult<Vec<Bitset>> {
    let (groups, counts) = groups_and_counts(current, scope, fraction)?;
    select_groups(current, &groups, &counts, |l, off| random_code(seed, l, off))
}

/// A seeded, position-keyed random stream: the code of weight `offset` of `layer`.
fn random_code(seed: u64, layer: usize, offset: usize) -> u32 {
    (splitmix64(splitmix64(seed ^ splitmix64(layer as u64)) ^ offset as u64) >> 32) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Sort-based reference: the kept set of a global ranking (score desc, position asc).
    fn reference(
        scores: &[Vec<f32>],
        masks: &[Vec<bool>],
        fraction: f64,
    ) -> (Vec<Vec<bool>>, Option<f32>) {
        let mut cands: Vec<(f32, usize, usize)> = Vec::new();
        for (l, (s, m)) in scores.iter().zip(masks).enumerate() {
            for i in 0..s.len() {
                if m[i] {
                    cands.push((s[i] + 0.0, l, i));
                }
            }
        }
        let k = keep_count(cands.len(), fraction).unwrap();
        cands.sort_by(|a, b| b.0.total_cmp(&a.0).then((a.1, a.2).cmp(&(b.1, b.2))));
        let mut out: Vec<Vec<bool>> = masks.iter().map(|m| vec![false; m.len()]).collect();
        for c in &cands[..k] {
            out[c.1][c.2] = true;
        }
        // numpy-style: np.partition(live, live - k)[live - k] is the k-th largest.
        let thr = if k == 0 { None } else { Some(cands[k - 1].0) };
        (out, thr)
    }

    fn layers() -> impl Strategy<Value = Vec<(Vec<f32>, Vec<bool>)>> {
        // Few distinct values so that ties are common.
        let layer = (1usize..40).prop_flat_map(|n| {
            (
                proptest::collection::vec((-4i32..5).prop_map(|v| v as f32 * 0.25), n),
                proptest::collection::vec(proptest::bool::weighted(0.8), n),
            )
        });
        proptest::collection::vec(layer, 1..5)
    }

    #[test]
    fn ties_keep_the_earliest_position() {
        let s = [1.0f32, 1.0, 1.0, 2.0];
        let cur = [Bitset::new(4, true)];
        let sel = magnitude_masks(&[&s], &cur, 0.5, SelectionScope::Global).unwrap();
        assert_eq!(sel.masks[0].to_bools(), vec![true, false, false, true]);
        assert_eq!(sel.thresholds[0], Some(1.0));
    }

    #[test]
    fn nan_scores_and_bad_fractions_are_errors() {
        let cur = [Bitset::new(2, true)];
        assert!(magnitude_masks(&[&[f32::NAN, 1.0]], &cur, 0.5, SelectionScope::Global).is_err());
        assert!(magnitude_masks(&[&[0.0, 1.0]], &cur, 1.5, SelectionScope::Global).is_err());
        let short = magnitude_masks(&[&[0.0]], &cur, 0.5, SelectionScope::Global);
        assert!(matches!(short, Err(CoreError::MaskMismatch(_))));
        let bad_fraction = magnitude_masks(&[&[0.0, 1.0]], &cur, 1.5, SelectionScope::Global);
        assert!(matches!(bad_fraction, Err(CoreError::InvalidArgument(_))));
    }

    proptest! {
        #[test]
        fn global_selection_matches_the_sorted_reference(ls in layers(), fraction in 0.0f64..=1.0) {
            let scores: Vec<Vec<f32>> = ls.iter().map(|l| l.0.clone()).collect();
            let bools: Vec<Vec<bool>> = ls.iter().map(|l| l.1.clone()).collect();
            let cur: Vec<Bitset> = bools.iter().map(|b| Bitset::from_bools(b)).collect();
            let refs: Vec<&[f32]> = scores.iter().map(|s| s.as_slice()).collect();
            let sel = magnitude_masks(&refs, &cur, fraction, SelectionScope::Global).unwrap();
            let (expect, thr) = reference(&scores, &bools, fraction);
            let got: Vec<Vec<bool>> = sel.masks.iter().map(|m| m.to_bools()).collect();
            prop_assert_eq!(got, expect);
            for t in &sel.thresholds { prop_assert_eq!(*t, thr); }
            let live: usize = cur.iter().map(|m| m.count_ones()).sum();
            let kept: usize = sel.masks.iter().map(|m| m.count_ones()).sum();
            prop_assert_eq!(kept, keep_count(live, fraction).unwrap());
        }

        #[test]
        fn per_layer_selection_prunes_each_layer_alone(ls in layers(), fraction in 0.0f64..=1.0) {
            let cur: Vec<Bitset> = ls.iter().map(|l| Bitset::from_bools(&l.1)).collect();
            let refs: Vec<&[f32]> = ls.iter().map(|l| l.0.as_slice()).collect();
            let sel = magnitude_masks(&refs, &cur, fraction, SelectionScope::PerLayer).unwrap();
            for (l, layer) in ls.iter().enumerate() {
                let (scores, masks) = (std::slice::from_ref(&layer.0), std::slice::from_ref(&layer.1));
                let (expect, thr) = reference(scores, masks, fraction);
                prop_assert_eq!(sel.masks[l].to_bools(), expect[0].clone());
                prop_assert_eq!(sel.thresholds[l], thr);
            }
        }

        #[test]
        fn random_masks_are_seeded_subsets_with_the_right_counts(ls in layers(), fraction in 0.0f64..=1.0, seed in any::<u64>()) {
            let cur: Vec<Bitset> = ls.iter().map(|l| Bitset::from_bools(&l.1)).collect();
            for scope in [SelectionScope::Global, SelectionScope::PerLayer] {
                let a = random_masks(&cur, fraction, scope, seed).unwrap();
                prop_assert_eq!(&a, &random_masks(&cur, fraction, scope, seed).unwrap());
                for (m, c) in a.iter().zip(&cur) {
                    prop_assert_eq!(&m.and(c).unwrap(), m); // only live weights survive
                    if scope == SelectionScope::PerLayer {
                        prop_assert_eq!(m.count_ones(), keep_count(c.count_ones(), fraction).unwrap());
                    }
                }
                let live = cur.iter().map(|m| m.count_ones()).sum();
                if scope == SelectionScope::Global {
                    let kept: usize = a.iter().map(|m| m.count_ones()).sum();
                    prop_assert_eq!(kept, keep_count(live, fraction).unwrap());
                }
            }
        }
    }

    #[test]
    fn random_masks_depend_on_the_seed() {
        let cur = [Bitset::new(1000, true)];
        let a = random_masks(&cur, 0.5, SelectionScope::Global, 1).unwrap();
        let b = random_masks(&cur, 0.5, SelectionScope::Global, 2).unwrap();
        assert_ne!(a, b);
        let counts = random_masks_with_counts(&cur, &[123], 7).unwrap();
        assert_eq!(counts[0].count_ones(), 123);
    }
}
