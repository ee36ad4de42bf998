//! Integer-factor area downscaling ("box filter") of interleaved uint8 images.
//!
//! Each output pixel is the mean of a `factor x factor` block of input pixels,
//! rounded to nearest. With 4 channels (RGBA, straight alpha) colour is averaged
//! alpha-weighted (premultiplied): compositing the downscaled pixel onto a
//! background then equals the mean of the composited block, and fully
//! transparent pixels do not darken object edges. Output size is
//! `(width / factor, height / factor)` rounded down; leftover rows/columns at
//! the right/bottom are dropped, so pixel (r, c) of the output covers input rows
//! `[r*f, r*f+f)` and columns `[c*f, c*f+f)` and intrinsics scale by exactly 1/f.

use crate::error::{CoreError, CoreResult};
use rayon::prelude::*;

/// Downscale `src` (`[height, width, channels]`) by `factor` into `dst`
/// (`[height / factor, width / factor, channels]`).
pub fn area_downscale(
    src: &[u8],
    width: usize,
    height: usize,
    channels: usize,
    factor: usize,
    dst: &mut [u8],
) {
    let (ow, oh) = (width / factor, height / factor);
    assert_eq!(
        src.len(),
        width * height * channels,
        "area_downscale: source size"
    );
    assert_eq!(
        dst.len(),
        ow * oh * channels,
        "area_downscale: destination size"
    );
    let count = (factor * factor) as u64;
    let mut sums = vec![0u64; channels];
    for r in 0..oh {
        for c in 0..ow {
            sums.iter_mut().for_each(|s| *s = 0);
            for y in r * factor..r * factor + factor {
                let row = &src[(y * width + c * factor) * channels
                    ..(y * width + c * factor + factor) * channels];
                for px in row.chunks_exact(channels) {
                    if channels == 4 {
                        let a = px[3] as u64;
                        for k in 0..3 {
                            sums[k] += px[k] as u64 * a;
                        }
                        sums[3] += a;
                    } else {
                        for k in 0..channels {
                            sums[k] += px[k] as u64;
                        }
                    }
                }
            }
            let out = &mut dst[(r * ow + c) * channels..(r * ow + c + 1) * channels];
            if channels == 4 {
                let alpha = sums[3];
                for k in 0..3 {
                    out[k] = (sums[k] + alpha / 2).checked_div(alpha).unwrap_or(0) as u8;
                }
                out[3] = ((alpha + count / 2) / count) as u8;
            } else {
                for k in 0..channels {
                    out[k] = ((sums[k] + count / 2) / count) as u8;
                }
            }
        }
    }
}

/// Downscale a stack `[n, height, width, channels]` by `factor`, in parallel over images.
pub fn downscale_stack(
    src: &[u8],
    n: usize,
    height: usize,
    width: usize,
    channels: usize,
    factor: usize,
) -> CoreResult<Vec<u8>> {
    let (oh, ow) = (height / factor.max(1), width / factor.max(1));
    if factor == 0 || oh == 0 || ow == 0 || n == 0 || src.len() != n * height * width * channels {
        return Err(CoreError::InvalidArgument(format!(
            "cannot downscale {} bytes as [{n}, {height}, {width}, {channels}] by {factor}",
            src.len()
        )));
    }
    let mut out = crate::buffer::zeroed(n * oh * ow * channels);
    out.par_chunks_mut(oh * ow * channels)
        .zip(src.par_chunks(height * width * channels))
        .for_each(|(o, i)| area_downscale(i, width, height, channels, factor, o));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rgb_block_mean_rounds_to_nearest() {
        // 2x2 RGB image -> 1 pixel.
        let src = [0, 10, 255, 1, 10, 255, 0, 11, 255, 1, 10, 254];
        let mut dst = [0u8; 3];
        area_downscale(&src, 2, 2, 3, 2, &mut dst);
        assert_eq!(dst, [1, 10, 255]); // 0.5 rounds up, 10.25 -> 10, 254.75 -> 255
    }

    #[test]
    fn rgba_is_alpha_weighted() {
        // One opaque red pixel, three fully transparent black ones.
        let src = [255, 0, 0, 255, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let mut dst = [0u8; 4];
        area_downscale(&src, 2, 2, 4, 2, &mut dst);
        assert_eq!(dst, [255, 0, 0, 64]);
    }

    proptest! {
        #[test]
        fn constant_images_stay_constant(w in 1usize..20, h in 1usize..20, f in 1usize..5, v in any::<u8>()) {
            prop_assume!(w >= f && h >= f);
            let src = vec![v; w * h * 3];
            let mut dst = vec![0u8; (w / f) * (h / f) * 3];
            area_downscale(&src, w, h, 3, f, &mut dst);
            prop_assert!(dst.iter().all(|&x| x == v));
        }
    }
}
