//! A whole narrow NeRF network per block of samples: the encoding and every layer in a table that stays
//! in the L1 cache; only the heads (raw density, colour) are written to memory.
//!
//! Why: in a structured 95 % network compacted to widths of 20 (mic, 100x100), after fusing the encoding
//! into the first layer ([`super::first_layer`]) the other layers, each a BLAS product over a [chunk, 21]
//! buffer plus its per-ray gather and activation pass, took ~2.7x the first layer's time for fewer FLOPs
//! (`benchmarks/bench_fused.py --network`): at these widths a call's fixed costs and the passes over memory
//! outweigh the products.
//!
//! A network is a list of layers over the rows of a block's table: rows [0, encoding_width) hold the
//! encoding; a layer reads any rows (`inputs`, in the order of its weight's columns: a skip connection is just
//! more rows) and writes its outputs to rows [row, row + out_features), and a head also to its output buffer.
//! A layer whose sums start from a per-ray term (`ray_term` [B, out]: the bias plus the view direction's
//! part, computed once per ray by the caller) gathers it by each sample's ray.
//!
//! Shapes: B rays, N samples.

use super::{
    check_frequencies, encode_block, encoding_width, octaves_read, run_shares, share, BlockKernel, MulAdd,
    PackedWeights, Row, SamplePoints, LANES, OUT_BLOCK,
};
use crate::error::{CoreError, CoreResult};

/// A layer's activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    Relu,
    Identity,
    Sigmoid,
}

/// One layer: y = act(W table[inputs] + (bias, or ray_term[ray])), into rows [row, row + out_features) of the
/// table and, for a head, into `outputs[output]` [N, out_features].
pub struct NetworkLayer<'a> {
    pub weight: &'a [f32], // [out_features, inputs.len()] row-major
    pub inputs: &'a [usize],
    pub out_features: usize,
    pub bias: &'a [f32],               // [out_features]
    pub ray_term: Option<&'a [f32]>,   // [B, out_features]: replaces the bias
    pub activation: Activation,
    pub row: usize,
    pub output: Option<usize>,
}

/// The layers in evaluation order, over the encoding of `n_frequencies` octaves.
pub struct Network<'a> {
    pub n_frequencies: usize,
    pub layers: &'a [NetworkLayer<'a>],
}

/// Runs `network` at every sample point into `outputs` (each [N, width of the head that writes it],
/// row-major); on `threads` threads (0: one per core), the calling one included.
pub fn run_network(points: &SamplePoints, network: &Network, outputs: Vec<&mut [f32]>, threads: usize) -> CoreResult<()> {
    let widths = check(points, network, &outputs)?;
    let n = points.t.len();
    if n == 0 {
        return Ok(());
    }
    let encoding = encoding_width(network.n_frequencies);
    let packed: Vec<PackedWeights> = network
        .layers
        .iter()
        .map(|l| PackedWeights::new(l.weight, l.inputs.len(), l.inputs.len(), l.out_features, |j| l.bias[j]))
        .collect();
    let kernel = Kernel {
        points,
        layers: network.layers,
        packed: &packed,
        octaves: octaves_read(network.layers.iter().flat_map(|l| l.inputs.iter().copied()), encoding),
        rows: table_rows(network),
    };
    let share = share(n, threads);
    let mut shares: Vec<_> = outputs.into_iter().zip(&widths).map(|(o, &w)| o.chunks_mut(share * w)).collect();
    let parts = (0..n.div_ceil(share))
        .map(|_| shares.iter_mut().map(|s| s.next().expect("one chunk per share")).collect())
        .collect();
    run_shares(&kernel, n, share, parts);
    Ok(())
}

/// Rows of the table: the encoding's and every layer's.
fn table_rows(network: &Network) -> usize {
    let encoding = encoding_width(network.n_frequencies);
    network.layers.iter().map(|l| l.row + l.out_features).max().unwrap_or(0).max(encoding)
}

/// Refuses a network that reads a row nothing wrote, writes over the encoding, or whose arrays do not have
/// their shapes; the width of every output.
fn check(points: &SamplePoints, network: &Network, outputs: &[&mut [f32]]) -> CoreResult<Vec<usize>> {
    let what = "run_network";
    let bad = |m: String| Err(CoreError::InvalidArgument(format!("{what}: {m}")));
    points.check(what)?;
    check_frequencies(network.n_frequencies, what)?;
    let (n, b) = (points.t.len(), points.rays());
    let encoding = encoding_width(network.n_frequencies);
    let mut written = vec![false; table_rows(network)];
    written[..encoding].fill(true);
    let mut widths: Vec<Option<usize>> = vec![None; outputs.len()];
    for (i, l) in network.layers.iter().enumerate() {
        if l.weight.len() != l.out_features * l.inputs.len() || l.bias.len() != l.out_features {
            return bad(format!(
                "layer {i}: weight must be [{}, {}] and bias [{}], got {} and {} floats",
                l.out_features,
                l.inputs.len(),
                l.out_features,
                l.weight.len(),
                l.bias.len()
            ));
        }
        if let Some(term) = l.ray_term {
            if term.len() != b * l.out_features {
                return bad(format!("layer {i}: ray_term must be [{b}, {}], got {} floats", l.out_features, term.len()));
            }
        }
        if let Some(&r) = l.inputs.iter().find(|&&r| !written.get(r).copied().unwrap_or(false)) {
            return bad(format!("layer {i} reads row {r}, which neither the encoding nor an earlier layer writes"));
        }
        if l.row < encoding {
            return bad(format!("layer {i} writes row {}, inside the encoding's rows [0, {encoding})", l.row));
        }
        let rows = l.row..l.row + l.out_features;
        if let Some(&r) = l.inputs.iter().find(|r| rows.contains(r)) {
            return bad(format!("layer {i} reads row {r}, one of those it writes (its output blocks would read it)"));
        }
        written[l.row..l.row + l.out_features].fill(true);
        if let Some(k) = l.output {
            match widths.get(k) {
                None => return bad(format!("layer {i} writes output {k}, but {} outputs were given", outputs.len())),
                Some(Some(_)) => return bad(format!("output {k} is written by two layers")),
                Some(None) if l.out_features == 0 => return bad(format!("layer {i}: a head needs an output")),
                Some(None) => widths[k] = Some(l.out_features),
            }
            if outputs[k].len() != n * l.out_features {
                return bad(format!("output {k} must be [{n}, {}], got {} floats", l.out_features, outputs[k].len()));
            }
        }
    }
    widths
        .into_iter()
        .enumerate()
        .map(|(k, w)| w.ok_or_else(|| CoreError::InvalidArgument(format!("{what}: no layer writes output {k}"))))
        .collect()
}

/// What every block of a call shares.
struct Kernel<'a> {
    points: &'a SamplePoints<'a>,
    layers: &'a [NetworkLayer<'a>],
    packed: &'a [PackedWeights],
    octaves: usize,
    rows: usize,
}

impl BlockKernel for Kernel<'_> {
    type Part<'p> = Vec<&'p mut [f32]>;

    #[inline(always)]
    fn rows<M: MulAdd>(&self, first: usize, count: usize, mut outputs: Vec<&mut [f32]>) {
        let mut table: Vec<Row> = vec![[0.0; LANES]; self.rows];
        let mut start = 0;
        while start < count {
            let valid = LANES.min(count - start);
            let rays: [usize; LANES] =
                std::array::from_fn(|lane| self.points.ray_index[first + start + lane.min(valid - 1)] as usize);
            encode_block(self.points, first + start, valid, self.octaves, &mut table);
            for (layer, packed) in self.layers.iter().zip(self.packed) {
                layer_block::<M>(layer, packed, &rays, &mut table, &mut outputs, start, valid);
            }
            start += LANES;
        }
    }
}

/// One layer over a block of lanes: its outputs into the table and, for a head, into its output (rows
/// [start, start + valid) of this thread's share).
#[inline(always)]
fn layer_block<M: MulAdd>(
    layer: &NetworkLayer,
    packed: &PackedWeights,
    rays: &[usize; LANES],
    table: &mut [Row],
    outputs: &mut [&mut [f32]],
    start: usize,
    valid: usize,
) {
    let width = layer.out_features;
    for block in 0..packed.blocks {
        let (base, count) = (block * OUT_BLOCK, packed.outputs(block));
        let mut sums = match layer.ray_term {
            None => packed.bias_sums(block),
            Some(term) => std::array::from_fn(|jj| {
                if jj < count {
                    std::array::from_fn(|lane| term[rays[lane] * width + base + jj])
                } else {
                    [0.0; LANES]
                }
            }),
        };
        M::product(packed.block(block), layer.inputs, table, &mut sums);
        for sum in sums.iter_mut().take(count) {
            match layer.activation {
                Activation::Relu => sum.iter_mut().for_each(|v| *v = v.max(0.0)),
                Activation::Identity => {}
                Activation::Sigmoid => sum.iter_mut().for_each(|v| *v = 1.0 / (1.0 + (-*v).exp())),
            }
        }
        table[layer.row + base..layer.row + base + count].copy_from_slice(&sums[..count]);
        if let Some(k) = layer.output {
            let out = &mut outputs[k][start * width..];
            for lane in 0..valid {
                for (jj, sum) in sums.iter().enumerate().take(count) {
                    out[lane * width + base + jj] = sum[lane];
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

    /// A layer's arrays, owned.
    struct Layer {
        weight: Vec<f32>,
        inputs: Vec<usize>,
        out_features: usize,
        bias: Vec<f32>,
        ray_term: Option<Vec<f32>>,
        activation: Activation,
        row: usize,
        output: Option<usize>,
    }

    impl Layer {
        fn view(&self) -> NetworkLayer<'_> {
            NetworkLayer {
                weight: &self.weight,
                inputs: &self.inputs,
                out_features: self.out_features,
                bias: &self.bias,
                ray_term: self.ray_term.as_deref(),
                activation: self.activation,
                row: self.row,
                output: self.output,
            }
        }
    }

    /// The NeRF network of widths `w` (trunk) and `v` (colour layer), rows as a plan lays them out: the
    /// colour layer reuses the first layer's rows; `skip` also feeds the encoding to the second layer.
    fn nerf(seed: u64, rays: usize, features: usize, w: usize, v: usize, skip: bool) -> Vec<Layer> {
        let e = features;
        let layer = |s: u64, inputs: Vec<usize>, out: usize, term: bool, activation, row, output| Layer {
            weight: lcg(seed + s, out * inputs.len(), 0.4),
            bias: lcg(seed + s + 100, out, 0.2),
            ray_term: term.then(|| lcg(seed + s + 200, rays * out, 0.5)),
            inputs,
            out_features: out,
            activation,
            row,
            output,
        };
        let colour_row = if v <= w { e } else { e + 3 * w + 4 }; // the first layer's rows, where they suffice
        let second: Vec<usize> = if skip { (e..e + w).chain(0..e).collect() } else { (e..e + w).collect() };
        vec![
            layer(1, (0..e).collect(), w, false, Activation::Relu, e, None),
            layer(2, second, w, false, Activation::Relu, e + w, None),
            layer(3, (e + w..e + 2 * w).collect(), 1, false, Activation::Identity, e + 2 * w, Some(0)),
            layer(4, (e + w..e + 2 * w).collect(), w, false, Activation::Identity, e + 2 * w + 1, None),
            layer(5, (e + 2 * w + 1..e + 3 * w + 1).collect(), v, true, Activation::Relu, colour_row, None),
            layer(6, (colour_row..colour_row + v).collect(), 3, false, Activation::Sigmoid, e + 3 * w + 1, Some(1)),
        ]
    }

    /// The reference: the encoding in f64 with libm sin/cos, every layer in f64.
    fn reference(points: &SamplePoints, n_frequencies: usize, layers: &[Layer]) -> [Vec<f64>; 2] {
        let mut outputs = [vec![], vec![]];
        for i in 0..points.t.len() {
            let mut table = gamma(points, i, n_frequencies);
            for l in layers {
                let r = points.ray_index[i] as usize;
                let y: Vec<f64> = (0..l.out_features)
                    .map(|j| {
                        let start = l.ray_term.as_ref().map_or(l.bias[j], |t| t[r * l.out_features + j]) as f64;
                        let row = &l.weight[j * l.inputs.len()..(j + 1) * l.inputs.len()];
                        let z = start + row.iter().zip(&l.inputs).map(|(&w, &k)| w as f64 * table[k]).sum::<f64>();
                        match l.activation {
                            Activation::Relu => z.max(0.0),
                            Activation::Identity => z,
                            Activation::Sigmoid => 1.0 / (1.0 + (-z).exp()),
                        }
                    })
                    .collect();
                if table.len() < l.row + l.out_features {
                    table.resize(l.row + l.out_features, 0.0);
                }
                table[l.row..l.row + l.out_features].copy_from_slice(&y);
                if let Some(k) = l.output {
                    outputs[k].extend(&y);
                }
            }
        }
        outputs
    }

    fn run(rays: &Rays, n_frequencies: usize, layers: &[Layer], threads: usize) -> CoreResult<[Vec<f32>; 2]> {
        let views: Vec<NetworkLayer> = layers.iter().map(Layer::view).collect();
        let n = rays.t.len();
        let (mut sigma, mut rgb) = (vec![-7.0; n], vec![-7.0; n * 3]);
        run_network(&rays.points(), &Network { n_frequencies, layers: &views }, vec![&mut sigma, &mut rgb], threads)?;
        Ok([sigma, rgb])
    }

    fn assert_matches(rays: &Rays, n_frequencies: usize, layers: &[Layer]) {
        let got = run(rays, n_frequencies, layers, 2).unwrap();
        let want = reference(&rays.points(), n_frequencies, layers);
        for (k, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g.len(), w.len());
            for (i, (&g, &w)) in g.iter().zip(w).enumerate() {
                // the double-angle recurrence doubles the rounding at every octave; two layers on top
                assert!((g as f64 - w).abs() < 3e-3, "output {k}, value {i}: {g} against {w}");
            }
        }
    }

    #[test]
    fn a_nerf_network_matches_the_reference() {
        let rays = Rays::new(1, 41, 1500);
        assert_matches(&rays, 10, &nerf(1, 41, encoding_width(10), 20, 10, false));
        assert_matches(&rays, 10, &nerf(2, 41, encoding_width(10), 7, 3, true));
    }

    #[test]
    fn one_thread_and_many_give_the_same_floats() {
        let rays = Rays::new(3, 60, 6000);
        let layers = nerf(3, 60, encoding_width(4), 13, 6, false);
        assert_eq!(run(&rays, 4, &layers, 1).unwrap(), run(&rays, 4, &layers, 2).unwrap());
    }

    #[test]
    fn bad_networks_are_refused_with_their_reason() {
        let rays = Rays::new(4, 3, 10);
        let e = encoding_width(2);
        let message = |layers: &[Layer]| run(&rays, 2, layers, 1).unwrap_err().to_string();
        let mut layers = nerf(4, 3, e, 4, 2, false);
        layers[1].inputs[0] = e + 40;
        assert!(message(&layers).contains(&format!("layer 1 reads row {}", e + 40)));
        let mut layers = nerf(4, 3, e, 4, 2, false);
        layers[0].row = 5;
        assert!(message(&layers).contains("inside the encoding's rows"));
        let mut layers = nerf(4, 3, e, 4, 2, false);
        layers[1].row = e + 2;
        assert!(message(&layers).contains(&format!("layer 1 reads row {}, one of those it writes", e + 2)));
        let mut layers = nerf(4, 3, e, 4, 2, false);
        layers[4].ray_term = Some(vec![0.0; 5]);
        assert!(message(&layers).contains("layer 4: ray_term must be [3, 2]"));
        let mut layers = nerf(4, 3, e, 4, 2, false);
        layers[5].output = Some(0);
        assert!(message(&layers).contains("output 0 is written by two layers"));
        let mut layers = nerf(4, 3, e, 4, 2, false);
        layers[2].output = None;
        assert!(message(&layers).contains("no layer writes output 0"));
    }

    proptest! {
        #[test]
        fn any_widths_match_the_reference(seed in 0u64..1000, rays in 1usize..7, samples in 0usize..60,
                                          w in 1usize..11, v in 1usize..6, n_frequencies in 0usize..7, skip: bool) {
            let rays_ = Rays::new(seed, rays, samples);
            assert_matches(&rays_, n_frequencies, &nerf(seed, rays, encoding_width(n_frequencies), w, v, skip));
        }
    }
}
