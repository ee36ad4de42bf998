//! Bindings for `nerfprune_core::decode`: parallel image decoding with the GIL released.

use crate::errors::{contiguous, guarded, NativePanic};
use nerfprune_core::decode::{decode_bytes, decode_files, probe_file};
use nerfprune_core::resize::downscale_stack;
use nerfprune_core::CoreError;
use numpy::ndarray::{Array3, Array4};
use numpy::{IntoPyArray, PyArray3, PyArray4, PyReadonlyArray4, PyUntypedArrayMethods};
use pyo3::prelude::*;

/// A decoded buffer that does not fill its shape is a bug in the core, not bad input.
fn shape_error(e: impl std::fmt::Display) -> PyErr {
    NativePanic::new_err(format!(
        "internal error in nerfprune._native: decoded buffer has the wrong size: {e}"
    ))
}

/// Decode PNG/JPEG files in parallel into one `[N, H/factor, W/factor, C]` uint8
/// array (C = 4 if any file has alpha, else 3), handed to numpy without a copy.
/// Only regular files are opened (a FIFO or device is an error, never a wait).
#[pyfunction]
#[pyo3(signature = (paths, factor = 1))]
fn decode_images<'py>(
    py: Python<'py>,
    paths: Vec<String>,
    factor: usize,
) -> PyResult<Bound<'py, PyArray4<u8>>> {
    let stack = py.detach(|| guarded(|| decode_files(&paths, factor)))?;
    let shape = (stack.n, stack.height, stack.width, stack.channels);
    let array = Array4::from_shape_vec(shape, stack.data).map_err(shape_error)?;
    Ok(array.into_pyarray(py))
}

/// Decode one in-memory PNG/JPEG to `[H, W, C]` uint8 with its own channel
/// count (1 gray, 2 gray+alpha, 3 RGB, 4 RGBA); `name` appears in error messages.
#[pyfunction]
#[pyo3(signature = (data, name = "<bytes>"))]
fn decode_image_bytes<'py>(
    py: Python<'py>,
    data: Vec<u8>,
    name: &str,
) -> PyResult<Bound<'py, PyArray3<u8>>> {
    let img = py.detach(|| guarded(|| -> Result<_, CoreError> { decode_bytes(&data, name) }))?;
    let shape = (img.height as usize, img.width as usize, img.channels);
    let array = Array3::from_shape_vec(shape, img.data).map_err(shape_error)?;
    Ok(array.into_pyarray(py))
}

/// Header of one image file: `(width, height, has_alpha)`, without decoding the pixels
/// (only a regular file is opened).
#[pyfunction]
fn probe_image(py: Python<'_>, path: String) -> PyResult<(u32, u32, bool)> {
    let info = py.detach(|| guarded(|| probe_file(&path)))?;
    Ok((info.width, info.height, info.has_alpha))
}

/// Area-downscale a `[N, H, W, C]` uint8 array by an integer factor (in parallel
/// over images); RGBA is averaged alpha-weighted, see `nerfprune_core::resize`.
#[pyfunction]
fn downscale_images<'py>(
    py: Python<'py>,
    images: PyReadonlyArray4<'py, u8>,
    factor: usize,
) -> PyResult<Bound<'py, PyArray4<u8>>> {
    let s = images.shape().to_vec();
    let src = contiguous(&images, "downscale_images: images")?;
    let data = py.detach(|| guarded(|| downscale_stack(src, s[0], s[1], s[2], s[3], factor)))?;
    let shape = (s[0], s[1] / factor, s[2] / factor, s[3]);
    let array = Array4::from_shape_vec(shape, data).map_err(shape_error)?;
    Ok(array.into_pyarray(py))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(downscale_images, m)?)?;
    m.add_function(wrap_pyfunction!(probe_image, m)?)?;
    m.add_function(wrap_pyfunction!(decode_images, m)?)?;
    m.add_function(wrap_pyfunction!(decode_image_bytes, m)?)?;
    Ok(())
}
