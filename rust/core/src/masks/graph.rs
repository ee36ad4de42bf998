//! Dead-neuron analysis of a pruned MLP described as a generic layer graph.
//!
//! A layer computes `act(W x + b)` with `W` of shape `[out, in]`, where `x` is
//! the concatenation of its input *segments* in order; each segment is a whole
//! network input (e.g. the encoded position) or the whole output of an earlier
//! layer. This covers skip connections (a segment re-reading the network input)
//! and several heads (several layers reading one trunk layer).
//!
//! With masks applied, a hidden (non-output) neuron can be removed when
//! - **dead-in**: its row has no live weight, so its output is the constant
//!   `act(b)` — the caller folds `W[:, j] * act(b_j)` into the consumers' biases;
//! - **dead-out**: no live weight of any consumer reads it, so nothing depends on it.
//!
//! Removing a neuron clears its consumer columns (dead-in) or its own row
//! (dead-out) in the *effective* masks, which can make further neurons dead;
//! the analysis repeats to a fixed point. Neurons of output layers are never
//! removed. Layers must be listed in topological order (sources before readers).

use super::bitset::Bitset;
use crate::{CoreError, CoreResult};
use std::collections::HashMap;

/// Where a segment of a layer's input comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Network input number `i` (in the graph's input order).
    Input(usize),
    /// The output of layer number `i` (an earlier layer).
    Layer(usize),
}

/// One contiguous block of a layer's input columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub source: Source,
    /// Number of columns (= the source's full width).
    pub width: usize,
}

/// One Linear layer of the graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerNode {
    pub name: String,
    /// Number of output neurons (rows of `W`).
    pub out: usize,
    /// Input segments in concatenation order; their widths sum to `in`.
    pub inputs: Vec<Segment>,
    /// A network output: its neurons are never removed.
    pub is_output: bool,
}

impl LayerNode {
    /// Number of input columns of `W`.
    pub fn in_features(&self) -> usize {
        self.inputs.iter().map(|s| s.width).sum()
    }
}

/// A layer described by names: (name, out, [(source name, width)], is_output).
pub type NamedLayer = (String, usize, Vec<(String, usize)>, bool);

/// A validated layer graph: network inputs and layers in topological order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerGraph {
    /// (name, width) of each network input.
    pub inputs: Vec<(String, usize)>,
    pub layers: Vec<LayerNode>,
}

/// What the analysis found, per layer and per network input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadNeuronReport {
    /// Per layer, `[out]`: neurons that remain after compaction.
    pub kept: Vec<Bitset>,
    /// Per layer, `[out]`: removed neurons whose output is the constant `act(bias)`
    /// (bias after folding their own constant inputs); fold them into consumers.
    pub dead_in: Vec<Bitset>,
    /// Per layer, `[out]`: removed neurons that nothing reads (and are not dead-in).
    pub dead_out: Vec<Bitset>,
    /// Per layer, `[out * in]` row-major: the masks with removed rows/columns cleared.
    pub effective: Vec<Bitset>,
    /// Per network input, `[width]`: features read by some live effective weight.
    pub inputs_read: Vec<Bitset>,
    /// Sweeps until nothing changed (at least 1).
    pub sweeps: usize,
}

impl LayerGraph {
    /// Build a graph from names: `layers` are (name, out, [(source name, width)], is_output).
    /// Errors name the offending layer: unknown or later source, width mismatch, duplicate name.
    pub fn from_names(inputs: Vec<(String, usize)>, layers: Vec<NamedLayer>) -> CoreResult<Self> {
        let bad = |msg: String| Err(CoreError::InvalidArgument(format!("layer graph: {msg}")));
        let mut names: HashMap<String, (Source, usize)> = HashMap::new();
        for (i, (name, width)) in inputs.iter().enumerate() {
            if names.insert(name.clone(), (Source::Input(i), *width)).is_some() {
                return bad(format!("duplicate name {name:?}"));
            }
        }
        let mut nodes = Vec::with_capacity(layers.len());
        for (li, (name, out, segs, is_output)) in layers.into_iter().enumerate() {
            let mut inputs_of = Vec::with_capacity(segs.len());
            for (src, width) in segs {
                let Some(&(source, src_width)) = names.get(&src) else {
                    return bad(format!(
                        "layer {name:?} reads {src:?}, which is neither a network input nor an earlier layer"
                    ));
                };
                if src_width != width {
                    return bad(format!(
                        "layer {name:?} reads {width} columns of {src:?}, which has width {src_width}"
                    ));
                }
                inputs_of.push(Segment { source, width });
            }
            if names.insert(name.clone(), (Source::Layer(li), out)).is_some() {
                return bad(format!("duplicate name {name:?}"));
            }
            nodes.push(LayerNode { name, out, inputs: inputs_of, is_output });
        }
        Ok(LayerGraph { inputs, layers: nodes })
    }

    /// Readers of each source: (reader layer, first column of the segment).
    fn readers(&self, source: Source) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        for (li, layer) in self.layers.iter().enumerate() {
            let mut col = 0;
            for seg in &layer.inputs {
                if seg.source == source {
                    out.push((li, col));
                }
                col += seg.width;
            }
        }
        out
    }

    /// Run the dead-neuron analysis on masks `[out * in]` (one per layer, row-major).
    pub fn dead_neurons(&self, masks: &[Bitset]) -> CoreResult<DeadNeuronReport> {
        if masks.len() != self.layers.len() {
            return Err(CoreError::MaskMismatch(format!(
                "layer graph has {} layers but {} masks were given",
                self.layers.len(),
                masks.len()
            )));
        }
        for (layer, mask) in self.layers.iter().zip(masks) {
            let expect = layer.out * layer.in_features();
            if mask.len() != expect {
                return Err(CoreError::MaskMismatch(format!(
                    "layer {:?}: mask has {} bits, expected out*in = {}*{} = {expect}",
                    layer.name,
                    mask.len(),
                    layer.out,
                    layer.in_features()
                )));
            }
        }
        let n = self.layers.len();
        let widths: Vec<usize> = self.layers.iter().map(|l| l.in_features()).collect();
        let readers: Vec<Vec<(usize, usize)>> =
            (0..n).map(|l| self.readers(Source::Layer(l))).collect();
        let mut eff: Vec<Bitset> = masks.to_vec();
        let mut kept: Vec<Bitset> = self.layers.iter().map(|l| Bitset::new(l.out, true)).collect();
        let mut dead_in: Vec<Bitset> =
            self.layers.iter().map(|l| Bitset::new(l.out, false)).collect();
        let mut dead_out = dead_in.clone();
        let row_live = |m: &Bitset, w: usize, j: usize| (j * w..(j + 1) * w).any(|b| m.get(b));
        let mut sweeps = 0;
        loop {
            sweeps += 1;
            let mut changed = false;
            for l in (0..n).filter(|&l| !self.layers[l].is_output) {
                let alive: Vec<usize> = kept[l].ones().collect();
                for j in alive {
                    if !row_live(&eff[l], widths[l], j) {
                        dead_in[l].set(j, true);
                        for &(r, col) in &readers[l] {
                            for row in 0..self.layers[r].out {
                                eff[r].set(row * widths[r] + col + j, false);
                            }
                        }
                    } else if !readers[l].iter().any(|&(r, col)| {
                        (0..self.layers[r].out).any(|row| eff[r].get(row * widths[r] + col + j))
                    }) {
                        dead_out[l].set(j, true);
                        for b in j * widths[l]..(j + 1) * widths[l] {
                            eff[l].set(b, false);
                        }
                    } else {
                        continue;
                    }
                    kept[l].set(j, false);
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        let inputs_read = (0..self.inputs.len())
            .map(|i| {
                let width = self.inputs[i].1;
                let readers = self.readers(Source::Input(i));
                let bits: Vec<bool> = (0..width)
                    .map(|f| {
                        readers.iter().any(|&(r, col)| {
                            (0..self.layers[r].out).any(|row| eff[r].get(row * widths[r] + col + f))
                        })
                    })
                    .collect();
                Bitset::from_bools(&bits)
            })
            .collect();
        Ok(DeadNeuronReport { kept, dead_in, dead_out, effective: eff, inputs_read, sweeps })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn s(x: &str) -> String {
        x.to_string()
    }

    /// A small NeRF-shaped graph: pos -> a -> b (skip: pos, a) -> {sigma, feat}; (feat, dir) -> v -> rgb.
    fn nerf_like(w: usize) -> LayerGraph {
        LayerGraph::from_names(
            vec![(s("pos"), 3), (s("dir"), 2)],
            vec![
                (s("a"), w, vec![(s("pos"), 3)], false),
                (s("b"), w, vec![(s("pos"), 3), (s("a"), w)], false),
                (s("sigma"), 1, vec![(s("b"), w)], true),
                (s("feat"), w, vec![(s("b"), w)], false),
                (s("v"), 2, vec![(s("feat"), w), (s("dir"), 2)], false),
                (s("rgb"), 3, vec![(s("v"), 2)], true),
            ],
        )
        .unwrap()
    }

    fn random_masks(g: &LayerGraph) -> impl Strategy<Value = Vec<Bitset>> {
        let sizes: Vec<usize> = g.layers.iter().map(|l| l.out * l.in_features()).collect();
        sizes
            .into_iter()
            .map(|n| {
                proptest::collection::vec(proptest::bool::weighted(0.3), n)
                    .prop_map(|b| Bitset::from_bools(&b))
            })
            .collect::<Vec<_>>()
    }

    #[test]
    fn bad_graphs_are_rejected_with_the_layer_name() {
        let e =
            LayerGraph::from_names(vec![(s("x"), 2)], vec![(s("a"), 2, vec![(s("b"), 2)], false)]);
        assert!(e.unwrap_err().to_string().contains("\"a\" reads \"b\""));
        let e =
            LayerGraph::from_names(vec![(s("x"), 2)], vec![(s("a"), 2, vec![(s("x"), 3)], false)]);
        assert!(e.unwrap_err().to_string().contains("width 2"));
        let g = nerf_like(2);
        let e = g.dead_neurons(&[Bitset::new(1, true)]);
        assert!(matches!(e, Err(CoreError::MaskMismatch(_))));
    }

    #[test]
    fn dense_masks_remove_nothing() {
        let g = nerf_like(4);
        let masks: Vec<Bitset> =
            g.layers.iter().map(|l| Bitset::new(l.out * l.in_features(), true)).collect();
        let r = g.dead_neurons(&masks).unwrap();
        assert!(r.kept.iter().all(|k| k.count_ones() == k.len()));
        assert_eq!(r.effective, masks);
        assert_eq!(r.sweeps, 1);
    }

    #[test]
    fn death_propagates_through_the_skip_and_both_heads() {
        // Only sigma's and rgb's rows are dense; all hidden rows empty -> everything hidden is dead-in.
        let g = nerf_like(3);
        let masks: Vec<Bitset> =
            g.layers.iter().map(|l| Bitset::new(l.out * l.in_features(), l.is_output)).collect();
        let r = g.dead_neurons(&masks).unwrap();
        for (l, layer) in g.layers.iter().enumerate() {
            assert_eq!(r.kept[l].count_ones(), if layer.is_output { layer.out } else { 0 });
        }
        assert!(r.inputs_read.iter().all(|b| b.count_ones() == 0));
        assert!(r.effective.iter().all(|m| m.count_ones() == 0));
    }

    proptest! {
        #[test]
        fn the_fixed_point_is_idempotent_and_consistent(masks in random_masks(&nerf_like(4))) {
            let g = nerf_like(4);
            let r = g.dead_neurons(&masks).unwrap();
            let again = g.dead_neurons(&r.effective).unwrap();
            prop_assert_eq!(&again.kept, &r.kept);
            prop_assert_eq!(&again.effective, &r.effective);
            prop_assert_eq!(&again.inputs_read, &r.inputs_read);
            for (l, layer) in g.layers.iter().enumerate() {
                let w = layer.in_features();
                // Effective masks only remove weights.
                prop_assert_eq!(&r.effective[l].and(&masks[l]).unwrap(), &r.effective[l]);
                for j in 0..layer.out {
                    let removed = r.dead_in[l].get(j) || r.dead_out[l].get(j);
                    prop_assert_eq!(removed, !r.kept[l].get(j));
                    prop_assert!(!(r.dead_in[l].get(j) && r.dead_out[l].get(j)));
                    if layer.is_output { prop_assert!(r.kept[l].get(j)); }
                    if !r.kept[l].get(j) {
                        prop_assert!((0..w).all(|c| !r.effective[l].get(j * w + c)));
                    } else if !layer.is_output {
                        // A kept hidden neuron has a live input and a live reader.
                        prop_assert!((0..w).any(|c| r.effective[l].get(j * w + c)));
                        let read = g.readers(Source::Layer(l)).iter().any(|&(c, col)| {
                            let cw = g.layers[c].in_features();
                            (0..g.layers[c].out).any(|row| r.effective[c].get(row * cw + col + j))
                        });
                        prop_assert!(read);
                    }
                }
            }
        }
    }
}
