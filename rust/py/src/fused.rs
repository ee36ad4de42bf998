//! Binding for `nerfprune_core::fused`: the positional encoding fused with a network's first layer, and a
//! whole network run per block of samples.
//! Arrays are C-contiguous numpy views of torch tensors (`Tensor.numpy()`: no copy); `out` is written in place.

use crate::errors::{contiguous, guarded, NativeArgumentError};
use nerfprune_core::fused::{self, Activation, FirstLayer, Network, NetworkLayer, SamplePoints};
use numpy::{PyReadonlyArray1, PyReadonlyArray2, PyReadwriteArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;
use std::panic::AssertUnwindSafe;

/// out[i, :W] = act(weight[:, :F'] gamma(origins[r] + t[i] dirs[r])[columns] + weight[:, F']) with
/// r = ray_index[i]: the encoding of `n_frequencies` octaves is never stored. Shapes: origins, dirs [B, 3];
/// t, ray_index [N]; weight [W, F' + 1] (the bias as last column); columns [F'] int64; out [N, >= W]
/// (its columns past W untouched). ReLU when `relu`; `threads` 0: one per core.
#[pyfunction]
#[pyo3(signature = (origins, dirs, t, ray_index, weight, columns, n_frequencies, out, *, relu=true, threads=0))]
#[allow(clippy::too_many_arguments)]
fn encode_first_layer(
    py: Python<'_>,
    origins: PyReadonlyArray2<'_, f32>,
    dirs: PyReadonlyArray2<'_, f32>,
    t: PyReadonlyArray1<'_, f32>,
    ray_index: PyReadonlyArray1<'_, i64>,
    weight: PyReadonlyArray2<'_, f32>,
    columns: PyReadonlyArray1<'_, i64>,
    n_frequencies: usize,
    mut out: PyReadwriteArray2<'_, f32>,
    relu: bool,
    threads: usize,
) -> PyResult<()> {
    let what = "encode_first_layer";
    let out_features = weight.shape()[0];
    let stride = out.shape()[1];
    let columns = indices(&columns, &format!("{what}: columns"))?;
    let origins = contiguous(&origins, what)?;
    let dirs = contiguous(&dirs, what)?;
    let t = contiguous(&t, what)?;
    let ray_index = contiguous(&ray_index, what)?;
    let weight = contiguous(&weight, what)?;
    let out = writable(&mut out, &format!("{what}: out"))?;
    py.detach(|| {
        // a panic leaves `out` half written; the caller gets NativePanic and never reads it
        guarded(AssertUnwindSafe(move || {
            let points = SamplePoints { origins, dirs, t, ray_index };
            let layer = FirstLayer { weight, out_features, columns: &columns, n_frequencies, relu };
            fused::encode_first_layer(&points, &layer, out, stride, threads)
        }))
    })
}

/// One layer as Python passes it: (weight [out, k], inputs [k] int64 (table rows), bias [out],
/// ray_term [B, out] or None, activation "relu" | "none" | "sigmoid", row, output index or None).
type LayerArgs<'py> = (
    PyReadonlyArray2<'py, f32>,
    PyReadonlyArray1<'py, i64>,
    PyReadonlyArray1<'py, f32>,
    Option<PyReadonlyArray2<'py, f32>>,
    String,
    usize,
    Option<usize>,
);

/// The whole network at every sample point origins[r] + t[i] dirs[r], r = ray_index[i]: the encoding of
/// `n_frequencies` octaves in table rows [0, 3 (1 + 2 n_frequencies)), each layer reading table rows and
/// writing its own (`nerfprune_core::fused::network`); the heads into `outputs` ([N, width] each, in place).
#[pyfunction]
#[pyo3(signature = (origins, dirs, t, ray_index, n_frequencies, layers, outputs, *, threads=0))]
#[allow(clippy::too_many_arguments)]
fn run_network(
    py: Python<'_>,
    origins: PyReadonlyArray2<'_, f32>,
    dirs: PyReadonlyArray2<'_, f32>,
    t: PyReadonlyArray1<'_, f32>,
    ray_index: PyReadonlyArray1<'_, i64>,
    n_frequencies: usize,
    layers: Vec<LayerArgs<'_>>,
    mut outputs: Vec<PyReadwriteArray2<'_, f32>>,
    threads: usize,
) -> PyResult<()> {
    let what = "run_network";
    let arg = |m: String| NativeArgumentError::new_err(format!("{what}: {m}"));
    let mut inputs: Vec<Vec<usize>> = Vec::with_capacity(layers.len());
    let mut activations = Vec::with_capacity(layers.len());
    for (i, (_, rows, _, _, activation, _, _)) in layers.iter().enumerate() {
        inputs.push(indices(rows, &format!("{what}: layer {i}: inputs"))?);
        activations.push(match activation.as_str() {
            "relu" => Activation::Relu,
            "none" => Activation::Identity,
            "sigmoid" => Activation::Sigmoid,
            other => return Err(arg(format!("layer {i}: unknown activation {other:?} (relu, none, sigmoid)"))),
        });
    }
    let mut views = Vec::with_capacity(layers.len());
    for (i, (weight, _, bias, term, _, row, output)) in layers.iter().enumerate() {
        views.push(NetworkLayer {
            weight: contiguous(weight, what)?,
            inputs: &inputs[i],
            out_features: weight.shape()[0],
            bias: contiguous(bias, what)?,
            ray_term: term.as_ref().map(|t| contiguous(t, what)).transpose()?,
            activation: activations[i],
            row: *row,
            output: *output,
        });
    }
    let mut slices = Vec::with_capacity(outputs.len());
    for (k, out) in outputs.iter_mut().enumerate() {
        slices.push(writable(out, &format!("{what}: output {k}"))?);
    }
    let points = SamplePoints {
        origins: contiguous(&origins, what)?,
        dirs: contiguous(&dirs, what)?,
        t: contiguous(&t, what)?,
        ray_index: contiguous(&ray_index, what)?,
    };
    py.detach(|| {
        // a panic leaves the outputs half written; the caller gets NativePanic and never reads them
        guarded(AssertUnwindSafe(move || {
            fused::run_network(&points, &Network { n_frequencies, layers: &views }, slices, threads)
        }))
    })
}

/// An int64 index array as usize, refused (naming `name`) where one is negative.
fn indices(array: &PyReadonlyArray1<'_, i64>, name: &str) -> PyResult<Vec<usize>> {
    contiguous(array, name)?
        .iter()
        .map(|&i| usize::try_from(i))
        .collect::<Result<_, _>>()
        .map_err(|_| NativeArgumentError::new_err(format!("{name} must not be negative")))
}

/// The array's floats to write in place, refused (naming `name`) unless C-contiguous and writable
/// (`as_slice_mut` alone would also take a Fortran-ordered array).
fn writable<'a>(array: &'a mut PyReadwriteArray2<'_, f32>, name: &str) -> PyResult<&'a mut [f32]> {
    let refuse = || NativeArgumentError::new_err(format!("{name} must be C-contiguous and writable"));
    if !array.is_c_contiguous() {
        return Err(refuse());
    }
    array.as_slice_mut().map_err(|_| refuse())
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(encode_first_layer, m)?)?;
    m.add_function(wrap_pyfunction!(run_network, m)?)?;
    Ok(())
}
