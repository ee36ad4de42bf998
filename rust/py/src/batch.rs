//! Bindings for `nerfprune_core::batch`: one training batch of rays per call.

use crate::errors::{contiguous, guarded};
use nerfprune_core::batch::{gather, ray_indices, Background, BatchConfig, ImagesRef};
use nerfprune_core::CoreError;
use numpy::ndarray::Array2;
use numpy::{
    IntoPyArray, PyArray1, PyArray2, PyReadonlyArray1, PyReadonlyArray4, PyUntypedArrayMethods,
};
use pyo3::prelude::*;

type BatchArrays<'py> = (
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray2<f32>>,
    Bound<'py, PyArray2<f32>>,
);

/// Batch `iteration` of rays over `images[views]`: returns
/// `(view [B] int64, row [B] int64, col [B] int64, rgb [B, 3] float32, background [B, 3] float32)`,
/// where `view` holds entries of `views` and `rgb` is alpha-composited onto `background`.
#[pyfunction]
#[pyo3(signature = (images, views, iteration, *, batch_size, seed, precrop_iters, precrop_frac, single_image, background, random_background))]
#[allow(clippy::too_many_arguments)]
fn ray_batch<'py>(
    py: Python<'py>,
    images: PyReadonlyArray4<'py, u8>,
    views: PyReadonlyArray1<'py, i64>,
    iteration: u64,
    batch_size: usize,
    seed: u64,
    precrop_iters: u64,
    precrop_frac: f32,
    single_image: bool,
    background: (f32, f32, f32),
    random_background: bool,
) -> PyResult<BatchArrays<'py>> {
    let shape = images.shape().to_vec();
    let data = contiguous(&images, "ray_batch: images")?;
    let views = contiguous(&views, "ray_batch: views")?;
    let cfg = BatchConfig {
        batch_size,
        seed,
        precrop_iters,
        precrop_frac,
        single_image,
    };
    let stack = ImagesRef {
        data,
        n: shape[0],
        height: shape[1],
        width: shape[2],
        channels: shape[3],
    };
    let bg = if random_background {
        Background::Random { seed, iteration }
    } else {
        Background::Fixed([background.0, background.1, background.2])
    };
    let (idx, rgb, back) = py.detach(|| {
        guarded(|| -> Result<_, CoreError> {
            let mut idx = ray_indices(&cfg, views.len(), stack.height, stack.width, iteration)?;
            for v in idx.view.iter_mut() {
                *v = views[*v as usize];
            }
            let (rgb, back) = gather(stack, &idx.view, &idx.row, &idx.col, bg)?;
            Ok((idx, rgb, back))
        })
    })?;
    let to2 = |v: Vec<f32>| Array2::from_shape_vec((v.len() / 3, 3), v).expect("3 floats per ray");
    Ok((
        idx.view.into_pyarray(py),
        idx.row.into_pyarray(py),
        idx.col.into_pyarray(py),
        to2(rgb).into_pyarray(py),
        to2(back).into_pyarray(py),
    ))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(ray_batch, m)?)?;
    Ok(())
}
