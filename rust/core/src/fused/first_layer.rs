//! The positional encoding fused with the first layer of a NeRF MLP: y = act(W gamma(p)[columns] + b),
//! written straight to `out` (the rest of the network runs as BLAS products).
//!
//! Done apart, the encoding is written to memory (63 floats a sample) and read back by the layer's matrix
//! product; for a pruned network of width 20 that store was 3x the product itself
//! (`benchmarks/bench_prune.py`'s stage profile). A compacted network reads only some features (`columns`).
//!
//! Shapes: B rays, N samples, F' = columns.len() features read, `out_features` outputs.

use super::{
    check_frequencies, encode_block, encoding_width, octaves_read, run_shares, share, BlockKernel, MulAdd,
    PackedWeights, Row, SamplePoints, LANES, MAX_FEATURES, OUT_BLOCK,
};
use crate::error::{CoreError, CoreResult};

/// The first layer: `weight` [out_features, F' + 1] row-major, its last column the bias; it reads the
/// encoding's features `columns` [F'] (indices into the full encoding of `n_frequencies` octaves).
pub struct FirstLayer<'a> {
    pub weight: &'a [f32],
    pub out_features: usize,
    pub columns: &'a [usize],
    pub n_frequencies: usize,
    pub relu: bool,
}

/// out[i, :out_features] = act(W gamma(p_i)[columns] + b) for every sample i; `out` is [N, out_stride]
/// row-major (columns past `out_features` are left as they are). Runs on `threads` threads (0: one per
/// core), the calling one included.
pub fn encode_first_layer(
    points: &SamplePoints,
    layer: &FirstLayer,
    out: &mut [f32],
    out_stride: usize,
    threads: usize,
) -> CoreResult<()> {
    check(points, layer, out, out_stride)?;
    let n = points.t.len();
    if n == 0 || layer.out_features == 0 {
        return Ok(());
    }
    let width = layer.columns.len();
    let packed = PackedWeights::new(layer.weight, width + 1, width, layer.out_features, |j| {
        layer.weight[j * (width + 1) + width]
    });
    let features = encoding_width(layer.n_frequencies);
    let kernel = Kernel {
        points,
        packed: &packed,
        columns: layer.columns,
        octaves: octaves_read(layer.columns.iter().copied(), features),
        relu: layer.relu,
        stride: out_stride,
    };
    let share = share(n, threads);
    run_shares(&kernel, n, share, out.chunks_mut(share * out_stride).collect());
    Ok(())
}

fn check(points: &SamplePoints, layer: &FirstLayer, out: &[f32], out_stride: usize) -> CoreResult<()> {
    let what = "encode_first_layer";
    let bad = |m: String| Err(CoreError::InvalidArgument(format!("{what}: {m}")));
    points.check(what)?;
    check_frequencies(layer.n_frequencies, what)?;
    let features = encoding_width(layer.n_frequencies);
    if let Some(&c) = layer.columns.iter().find(|&&c| c >= features) {
        return bad(format!("column {c} outside the {features} features of {} frequencies", layer.n_frequencies));
    }
    if layer.weight.len() != layer.out_features * (layer.columns.len() + 1) {
        return bad(format!(
            "weight must be [{}, {}] (the bias as last column), got {} floats",
            layer.out_features,
            layer.columns.len() + 1,
            layer.weight.len()
        ));
    }
    let n = points.t.len();
    if out_stride < layer.out_features || out.len() != n * out_stride {
        return bad(format!(
            "out must be [{n}, stride >= {}], got {} floats with stride {out_stride}",
            layer.out_features,
            out.len()
        ));
    }
    Ok(())
}

/// What every block of a call shares.
struct Kernel<'a> {
    points: &'a SamplePoints<'a>,
    packed: &'a PackedWeights,
    columns: &'a [usize],
    octaves: usize,
    relu: bool,
    stride: usize,
}

impl BlockKernel for Kernel<'_> {
    type Part<'p> = &'p mut [f32];

    #[inline(always)]
    fn rows<M: MulAdd>(&self, first: usize, count: usize, out: &mut [f32]) {
        let mut table = [[0.0f32; LANES]; MAX_FEATURES];
        let mut start = 0;
        while start < count {
            let valid = LANES.min(count - start);
            encode_block(self.points, first + start, valid, self.octaves, &mut table);
            self.layer::<M>(&table, &mut out[start * self.stride..], valid);
            start += LANES;
        }
    }
}

impl Kernel<'_> {
    /// out[lane, j] = act(b_j + sum_k W[j, k] table[columns[k]][lane]) for the block's `valid` lanes.
    #[inline(always)]
    fn layer<M: MulAdd>(&self, table: &[Row], out: &mut [f32], valid: usize) {
        let packed = self.packed;
        for block in 0..packed.blocks {
            let mut sums = packed.bias_sums(block);
            M::product(packed.block(block), self.columns, table, &mut sums);
            let base = block * OUT_BLOCK;
            for lane in 0..valid {
                let row = &mut out[lane * self.stride + base..lane * self.stride + base + packed.outputs(block)];
                for (jj, y) in row.iter_mut().enumerate() {
                    let v = sums[jj][lane];
                    *y = if self.relu { v.max(0.0) } else { v };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{gamma, lcg, Rays};
    use super::*;
    use proptest::prelude::*;

    /// The reference: the encoding in f64 with libm sin/cos at every octave, then the product.
    fn reference(points: &SamplePoints, layer: &FirstLayer) -> Vec<f64> {
        let n = points.t.len();
        let width = layer.columns.len();
        let mut out = vec![0.0; n * layer.out_features];
        for i in 0..n {
            let gamma = gamma(points, i, layer.n_frequencies);
            for j in 0..layer.out_features {
                let row = &layer.weight[j * (width + 1)..(j + 1) * (width + 1)];
                let mut y = row[width] as f64;
                for (k, &c) in layer.columns.iter().enumerate() {
                    y += row[k] as f64 * gamma[c];
                }
                out[i * layer.out_features + j] = if layer.relu { y.max(0.0) } else { y };
            }
        }
        out
    }

    struct Case {
        rays: Rays,
        weight: Vec<f32>,
        columns: Vec<usize>,
    }

    fn case(seed: u64, rays: usize, samples: usize, out_features: usize, columns: Vec<usize>) -> Case {
        Case {
            rays: Rays::new(seed, rays, samples),
            weight: lcg(seed + 3, out_features * (columns.len() + 1), 0.3),
            columns,
        }
    }

    fn run(c: &Case, out_features: usize, n_frequencies: usize, relu: bool, stride: usize, threads: usize) -> Vec<f32> {
        let layer = FirstLayer { weight: &c.weight, out_features, columns: &c.columns, n_frequencies, relu };
        let mut out = vec![-7.0; c.rays.t.len() * stride];
        encode_first_layer(&c.rays.points(), &layer, &mut out, stride, threads).unwrap();
        out
    }

    fn assert_matches(c: &Case, out_features: usize, n_frequencies: usize, relu: bool, stride: usize) {
        let got = run(c, out_features, n_frequencies, relu, stride, 2);
        let layer = FirstLayer { weight: &c.weight, out_features, columns: &c.columns, n_frequencies, relu };
        let want = reference(&c.rays.points(), &layer);
        for i in 0..c.rays.t.len() {
            for j in 0..out_features {
                let (g, w) = (got[i * stride + j] as f64, want[i * out_features + j]);
                // the double-angle recurrence doubles the rounding at every octave: 2^L * float eps * sum |W|
                assert!((g - w).abs() < 2e-3, "sample {i} output {j}: {g} against {w}");
            }
            for j in out_features..stride {
                assert_eq!(got[i * stride + j], -7.0, "column {j} past the outputs was written");
            }
        }
    }

    #[test]
    fn matches_the_reference_for_the_full_encoding() {
        let columns: Vec<usize> = (0..encoding_width(10)).collect();
        let c = case(1, 37, 1000, 20, columns);
        assert_matches(&c, 20, 10, true, 21);
        assert_matches(&c, 20, 10, false, 20);
    }

    #[test]
    fn matches_the_reference_for_picked_columns_in_any_order() {
        let c = case(2, 5, 77, 7, vec![40, 0, 3, 17, 5, 62]);
        assert_matches(&c, 7, 10, false, 9);
    }

    #[test]
    fn one_thread_and_many_give_the_same_floats() {
        let c = case(3, 50, 5000, 13, (0..encoding_width(4)).collect());
        assert_eq!(run(&c, 13, 4, true, 14, 1), run(&c, 13, 4, true, 14, 2));
    }

    #[test]
    fn bad_arguments_are_refused_with_their_reason() {
        let c = case(4, 3, 10, 2, vec![0, 1, 2]);
        let points = c.rays.points();
        let layer = FirstLayer { weight: &c.weight, out_features: 2, columns: &c.columns, n_frequencies: 10, relu: true };
        let mut out = vec![0.0; 10 * 2];
        assert!(encode_first_layer(&points, &layer, &mut out[..19], 2, 1).unwrap_err().to_string().contains("out must be"));
        let far = vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 3];
        let bad_ray = SamplePoints { ray_index: &far, ..c.rays.points() };
        assert!(encode_first_layer(&bad_ray, &layer, &mut out, 2, 1).unwrap_err().to_string().contains("ray index 3"));
        let wide = FirstLayer { columns: &[0, 63], ..layer };
        assert!(encode_first_layer(&points, &wide, &mut out, 2, 1).unwrap_err().to_string().contains("column 63"));
    }

    proptest! {
        #[test]
        fn any_shape_matches_the_reference(seed in 0u64..1000, rays in 1usize..9, samples in 0usize..70,
                                           out_features in 1usize..11, n_frequencies in 0usize..8, pad in 0usize..3) {
            let features = encoding_width(n_frequencies);
            let columns: Vec<usize> = (0..features).filter(|f| (f + seed as usize) % 3 != 0).collect();
            let c = case(seed, rays, samples, out_features, columns);
            assert_matches(&c, out_features, n_frequencies, seed % 2 == 0, out_features + pad);
        }
    }
}
