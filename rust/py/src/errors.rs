//! The exception family of nerfprune, and the mapping of core errors and Rust
//! panics onto it.
//!
//! The classes are created here, in the extension, so that an error raised in
//! Rust and the same kind of error raised in Python (`nerfprune.errors`
//! re-exports these) are one class:
//!
//! ```text
//! ValueError
//! └── NerfpruneError                  every bad input nerfprune reports
//!     ├── SceneError                  bad scene data (Python validation raises it too)
//!     │   ├── SceneReadError          CoreError::Io: a file cannot be read
//!     │   └── SceneDecodeError        CoreError::Decode: a file is not a valid image
//!     ├── MaskError                   CoreError::MaskMismatch: masks do not fit
//!     └── NativeArgumentError         CoreError::InvalidArgument, non-contiguous arrays
//! RuntimeError
//! └── NativePanic                     a Rust panic, caught before it aborts Python
//! ```

use nerfprune_core::CoreError;
use numpy::ndarray::Dimension;
use numpy::{Element, PyReadonlyArray, PyUntypedArrayMethods};
use pyo3::create_exception;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use std::panic::{catch_unwind, UnwindSafe};

create_exception!(
    nerfprune._native,
    NerfpruneError,
    PyValueError,
    "Base of every error nerfprune reports about its inputs; the message names the file or \
     argument and the problem."
);
create_exception!(
    nerfprune._native,
    SceneError,
    NerfpruneError,
    "Bad scene data on disk: the message names the file and the problem."
);
create_exception!(
    nerfprune._native,
    SceneReadError,
    SceneError,
    "A scene file cannot be read (missing, a folder, no permission)."
);
create_exception!(
    nerfprune._native,
    SceneDecodeError,
    SceneError,
    "A scene file was read but is not a valid image (corrupt, truncated, unsupported)."
);
create_exception!(
    nerfprune._native,
    MaskError,
    NerfpruneError,
    "Masks that do not fit the weights they mask or each other (shape, length or count)."
);
create_exception!(
    nerfprune._native,
    NativeArgumentError,
    NerfpruneError,
    "An argument breaks a documented precondition of a nerfprune._native function."
);
create_exception!(
    nerfprune._native,
    NativePanic,
    PyRuntimeError,
    "A bug in nerfprune's Rust code (a panic or a broken internal invariant), caught before it \
     could abort Python."
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
        match e.0 {
            CoreError::Io { .. } => SceneReadError::new_err(message),
            CoreError::Decode { .. } => SceneDecodeError::new_err(message),
            CoreError::MaskMismatch(_) => MaskError::new_err(message),
            CoreError::InvalidArgument(_) => NativeArgumentError::new_err(message),
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

/// The elements of a numpy array as one slice, or `NativeArgumentError` naming
/// `what` (the function and argument) when the array is not C-contiguous.
pub fn contiguous<'a, T: Element, D: Dimension>(
    array: &'a PyReadonlyArray<'_, T, D>,
    what: &str,
) -> PyResult<&'a [T]> {
    let refuse = || {
        NativeArgumentError::new_err(format!(
            "{what}: the array must be C-contiguous (pass numpy.ascontiguousarray(...))"
        ))
    };
    // `as_slice` also takes a Fortran-ordered array, whose elements a row-major reader would misplace
    if !array.is_c_contiguous() {
        return Err(refuse());
    }
    array.as_slice().map_err(|_| refuse())
}

/// Deliberately panics inside `guarded`; lets the test-suite prove a panic
/// surfaces as `NativePanic` instead of aborting the interpreter.
#[pyfunction]
fn _panic_for_tests(py: Python<'_>) -> PyResult<()> {
    py.detach(|| guarded(|| -> Result<(), CoreError> { panic!("deliberate test panic") }))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("NerfpruneError", py.get_type::<NerfpruneError>())?;
    m.add("SceneError", py.get_type::<SceneError>())?;
    m.add("SceneReadError", py.get_type::<SceneReadError>())?;
    m.add("SceneDecodeError", py.get_type::<SceneDecodeError>())?;
    m.add("MaskError", py.get_type::<MaskError>())?;
    m.add("NativeArgumentError", py.get_type::<NativeArgumentError>())?;
    m.add("NativePanic", py.get_type::<NativePanic>())?;
    m.add_function(wrap_pyfunction!(_panic_for_tests, m)?)?;
    Ok(())
}
