//! `nerfprune._native`: the thin PyO3 layer over `nerfprune-core`.
//!
//! Its only jobs: check arguments, convert numpy arrays to slices and back
//! (no copies where numpy allows it), release the GIL around heavy work, and
//! turn core errors and panics into Python exceptions.

use pyo3::prelude::*;

mod batch;
mod errors;
mod fingerprint;
mod fused;
mod masks;
mod scene;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    errors::register(m)?;
    fingerprint::register(m)?;
    fused::register(m)?;
    masks::register(m)?;
    scene::register(m)?;
    batch::register(m)?;
    Ok(())
}
