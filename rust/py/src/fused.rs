//! Binding for `nerfprune_core::fused`: the positional encoding fused with a network's first layer.
//! Arrays are C-contiguous numpy views of torch tensors (`Tensor.numpy()`: no copy); `out` is written in place.

use crate::errors::{contiguous, guarded, NativeArgumentError};
use nerfprune_core::fused::{self, FirstLayer, SamplePoints};
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
    let columns: Vec<usize> = contiguous(&columns, what)?
        .iter()
        .map(|&c| usize::try_from(c))
        .collect::<Result<_, _>>()
        .map_err(|_| NativeArgumentError::new_err(format!("{what}: columns must not be negative")))?;
    let origins = contiguous(&origins, what)?;
    let dirs = contiguous(&dirs, what)?;
    let t = contiguous(&t, what)?;
    let ray_index = contiguous(&ray_index, what)?;
    let weight = contiguous(&weight, what)?;
    let refuse = || NativeArgumentError::new_err(format!("{what}: out must be C-contiguous and writable"));
    if !out.is_c_contiguous() {
        return Err(refuse()); // `as_slice_mut` would also take a Fortran-ordered array
    }
    let out = out.as_slice_mut().map_err(|_| refuse())?;
    py.detach(|| {
        // a panic leaves `out` half written; the caller gets NativePanic and never reads it
        guarded(AssertUnwindSafe(move || {
            let points = SamplePoints { origins, dirs, t, ray_index };
            let layer = FirstLayer { weight, out_features, columns: &columns, n_frequencies, relu };
            fused::encode_first_layer(&points, &layer, out, stride, threads)
        }))
    })
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(encode_first_layer, m)?)?;
    Ok(())
}
