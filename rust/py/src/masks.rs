//! Binding for `nerfprune_core::masks`: masks cross the boundary as flat,
//! C-contiguous numpy `bool` arrays (row-major flattening of `[out, in]`).

use crate::errors::{contiguous, guarded};
use nerfprune_core::masks::{csr, graph::NamedLayer, select, Bitset, LayerGraph};
use numpy::{IntoPyArray, PyArray1, PyReadonlyArray1};
use pyo3::prelude::*;
use pyo3::types::PyDict;

type BoolArrays<'py> = Vec<Bound<'py, PyArray1<bool>>>;
/// (indptr int64, indices int64, values float32) of a CSR matrix.
type CsrArrays<'py> =
    (Bound<'py, PyArray1<i64>>, Bound<'py, PyArray1<i64>>, Bound<'py, PyArray1<f32>>);

fn bitsets(arrays: &[PyReadonlyArray1<'_, bool>], what: &str) -> PyResult<Vec<Bitset>> {
    arrays.iter().map(|a| contiguous(a, what).map(Bitset::from_bools)).collect()
}

fn to_numpy<'py>(py: Python<'py>, sets: &[Bitset]) -> BoolArrays<'py> {
    sets.iter().map(|s| s.to_bools().into_pyarray(py)).collect()
}

fn scope(per_layer: bool) -> select::SelectionScope {
    if per_layer {
        select::SelectionScope::PerLayer
    } else {
        select::SelectionScope::Global
    }
}

/// `round((1 - fraction) * live)`: how many weights a pruning round keeps.
#[pyfunction]
fn mask_keep_count(live: usize, fraction: f64) -> PyResult<usize> {
    guarded(|| select::keep_count(live, fraction))
}

/// Magnitude pruning by selection; returns (new masks, per-layer thresholds or None).
#[pyfunction]
#[pyo3(signature = (scores, current, fraction, per_layer=false))]
fn magnitude_masks<'py>(
    py: Python<'py>,
    scores: Vec<PyReadonlyArray1<'py, f32>>,
    current: Vec<PyReadonlyArray1<'py, bool>>,
    fraction: f64,
    per_layer: bool,
) -> PyResult<(BoolArrays<'py>, Vec<Option<f32>>)> {
    let score_slices =
        scores.iter().map(|a| contiguous(a, "magnitude_masks")).collect::<PyResult<Vec<&[f32]>>>()?;
    let current = bitsets(&current, "magnitude_masks")?;
    let sel = py.detach(|| {
        guarded(|| select::magnitude_masks(&score_slices, &current, fraction, scope(per_layer)))
    })?;
    Ok((to_numpy(py, &sel.masks), sel.thresholds))
}

/// Random control masks pruning `fraction` of the live weights (global or per-layer count).
#[pyfunction]
#[pyo3(signature = (current, fraction, seed, per_layer=false))]
fn random_masks<'py>(
    py: Python<'py>,
    current: Vec<PyReadonlyArray1<'py, bool>>,
    fraction: f64,
    seed: u64,
    per_layer: bool,
) -> PyResult<BoolArrays<'py>> {
    let current = bitsets(&current, "random_masks")?;
    let masks =
        py.detach(|| guarded(|| select::random_masks(&current, fraction, scope(per_layer), seed)))?;
    Ok(to_numpy(py, &masks))
}

/// Random control masks keeping exactly `counts[l]` live weights of layer `l`.
#[pyfunction]
fn random_masks_with_counts<'py>(
    py: Python<'py>,
    current: Vec<PyReadonlyArray1<'py, bool>>,
    counts: Vec<usize>,
    seed: u64,
) -> PyResult<BoolArrays<'py>> {
    let current = bitsets(&current, "random_masks_with_counts")?;
    let masks =
        py.detach(|| guarded(|| select::random_masks_with_counts(&current, &counts, seed)))?;
    Ok(to_numpy(py, &masks))
}

/// Live-weight count of each mask.
#[pyfunction]
fn mask_counts(masks: Vec<PyReadonlyArray1<'_, bool>>) -> PyResult<Vec<usize>> {
    Ok(bitsets(&masks, "mask_counts")?.iter().map(Bitset::count_ones).collect())
}

/// (intersection, union, jaccard) of two masks of the same length.
#[pyfunction]
fn mask_overlap(
    a: PyReadonlyArray1<'_, bool>,
    b: PyReadonlyArray1<'_, bool>,
) -> PyResult<(usize, usize, f64)> {
    let (a, b) = (
        Bitset::from_bools(contiguous(&a, "mask_overlap")?),
        Bitset::from_bools(contiguous(&b, "mask_overlap")?),
    );
    let o = guarded(|| a.overlap(&b))?;
    Ok((o.intersection, o.union, o.jaccard))
}

/// Dead-neuron analysis; returns a dict with `kept`, `dead_in`, `dead_out`,
/// `effective` (lists of bool arrays, one per layer), `inputs_read` (one per
/// network input) and `sweeps`.
#[pyfunction]
fn dead_neurons<'py>(
    py: Python<'py>,
    inputs: Vec<(String, usize)>,
    layers: Vec<NamedLayer>,
    masks: Vec<PyReadonlyArray1<'py, bool>>,
) -> PyResult<Bound<'py, PyDict>> {
    let masks = bitsets(&masks, "dead_neurons")?;
    let report =
        py.detach(|| guarded(|| LayerGraph::from_names(inputs, layers)?.dead_neurons(&masks)))?;
    let out = PyDict::new(py);
    out.set_item("kept", to_numpy(py, &report.kept))?;
    out.set_item("dead_in", to_numpy(py, &report.dead_in))?;
    out.set_item("dead_out", to_numpy(py, &report.dead_out))?;
    out.set_item("effective", to_numpy(py, &report.effective))?;
    out.set_item("inputs_read", to_numpy(py, &report.inputs_read))?;
    out.set_item("sweeps", report.sweeps)?;
    Ok(out)
}

/// CSR form (indptr int64, indices int64, values float32) of a masked `[rows, cols]` matrix.
#[pyfunction]
fn mask_to_csr<'py>(
    py: Python<'py>,
    weights: PyReadonlyArray1<'py, f32>,
    rows: usize,
    cols: usize,
    mask: PyReadonlyArray1<'py, bool>,
) -> PyResult<CsrArrays<'py>> {
    let w = contiguous(&weights, "mask_to_csr")?;
    let m = Bitset::from_bools(contiguous(&mask, "mask_to_csr")?);
    let c = py.detach(|| guarded(|| csr::to_csr(w, rows, cols, &m)))?;
    Ok((c.indptr.into_pyarray(py), c.indices.into_pyarray(py), c.values.into_pyarray(py)))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(mask_keep_count, m)?)?;
    m.add_function(wrap_pyfunction!(magnitude_masks, m)?)?;
    m.add_function(wrap_pyfunction!(random_masks, m)?)?;
    m.add_function(wrap_pyfunction!(random_masks_with_counts, m)?)?;
    m.add_function(wrap_pyfunction!(mask_counts, m)?)?;
    m.add_function(wrap_pyfunction!(mask_overlap, m)?)?;
    m.add_function(wrap_pyfunction!(dead_neurons, m)?)?;
    m.add_function(wrap_pyfunction!(mask_to_csr, m)?)?;
    Ok(())
}
