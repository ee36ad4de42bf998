//! Mapping of core errors and Rust panics to Python exceptions.

use nerfprune_core::error::ErrorKind;
use nerfprune_core::CoreError;
use pyo3::create_exception;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use std::panic::{catch_unwind, UnwindSafe};

create_exception!(
    _native,
    SceneError,
    PyValueError,
    "Bad scene data on disk: the message names the file and the problem."
);
create_exception!(
    _native,
    NativePanic,
    PyRuntimeError,
    "A bug in nerfprune's Rust code (a panic), caught before it could abort Python."
);

/// The orphan rule forbids `impl From<CoreError> for PyErr`; this newtype carries it.
pub struct PyCoreError(pub CoreError);

impl From<CoreError> for PyCoreError {
    fn from(e: CoreError) -> Self {
        PyCoreError(e)
    }
}

impl From<PyCoreError> for PyErr {
    fn from(e: PyCoreError) -> PyErr {
        let message = e.0.to_string();
        match e.0.kind() {
            ErrorKind::Scene => SceneError::new_err(message),
            ErrorKind::Argument => PyValueError::new_err(message),
        }
    }
}

/// Run core work, converting its error and any panic into a Python exception.
/// Call it inside `py.detach` so heavy work runs without the GIL.
pub fn guarded<T>(work: impl FnOnce() -> Result<T, CoreError> + UnwindSafe) -> PyResult<T> {
    match catch_unwind(work) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(PyCoreError(e).into()),
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            Err(NativePanic::new_err(format!("internal error in nerfprune._native: {what}")))
        }
    }
}

/// Deliberately panics inside `guarded`; lets the test-suite prove a panic
/// surfaces as `NativePanic` instead of aborting the interpreter.
#[pyfunction]
fn _panic_for_tests(py: Python<'_>) -> PyResult<()> {
    py.detach(|| guarded(|| -> Result<(), CoreError> { panic!("deliberate test panic") }))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("SceneError", m.py().get_type::<SceneError>())?;
    m.add("NativePanic", m.py().get_type::<NativePanic>())?;
    m.add_function(wrap_pyfunction!(_panic_for_tests, m)?)?;
    Ok(())
}
