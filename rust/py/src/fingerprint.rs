//! Binding for `nerfprune_core::checksum`.

use crate::errors::{contiguous, guarded};
use numpy::PyReadonlyArray1;
use pyo3::prelude::*;

/// Fingerprint of a contiguous uint8 buffer (a numpy array viewed as bytes).
#[pyfunction]
fn fingerprint(py: Python<'_>, data: PyReadonlyArray1<'_, u8>) -> PyResult<u64> {
    let bytes = contiguous(&data, "fingerprint")?;
    py.detach(|| guarded(|| Ok(nerfprune_core::checksum::fingerprint(bytes))))
}

/// Sequential FNV-1a-64 of a uint8 buffer (the primitive behind `fingerprint`).
#[pyfunction]
fn fnv1a64(data: PyReadonlyArray1<'_, u8>) -> PyResult<u64> {
    let bytes = contiguous(&data, "fnv1a64")?;
    Ok(nerfprune_core::checksum::fnv1a64(bytes))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(fingerprint, m)?)?;
    m.add_function(wrap_pyfunction!(fnv1a64, m)?)?;
    Ok(())
}
