//! Ray batches for training: which pixels (view, row, column) and their target colours.
//!
//! A batch is a pure function of `(seed, iteration)`: there is no sampler state,
//! so a resumed run sees exactly the same batches, and memory does not grow with
//! the number of iterations. Pixels are shuffled *without replacement per epoch*
//! by a seeded bijection of `[0, M)` (M = views x H x W): a balanced Feistel
//! network on the next even power of two, restricted to `[0, M)` by cycle-walking.
//! Batch `i` takes positions `[i*B, (i+1)*B)` of the endless sequence
//! `perm_0(0..M), perm_1(0..M), ...` with one fresh permutation per epoch.
//!
//! Options (see [`BatchConfig`]): a centre pre-crop for the first iterations (the
//! original NeRF's `precrop_iters`/`precrop_frac`), and one-image-per-batch mode,
//! where every round of `V` iterations visits each view once (in a shuffled
//! order) and each view's pixels are drawn without replacement per view-epoch.

use crate::checksum::splitmix64;
use crate::error::{CoreError, CoreResult};

const ROUNDS: usize = 6;
const TAG_PIXELS: u64 = 0x5049_5845_4c53; // stream tags keep the permutations independent
const TAG_CROP: u64 = 0x4352_4f50;
const TAG_VIEWS: u64 = 0x0056_4945_5753;
const TAG_BACKGROUND: u64 = 0x4247;

/// Hash of a sequence of words (order-sensitive).
#[inline]
fn key(words: &[u64]) -> u64 {
    words
        .iter()
        .fold(0x6E65_7266_7072_756E, |h, &w| splitmix64(h ^ splitmix64(w)))
}

/// A seeded bijection of `[0, n)`: Feistel network + cycle-walking.
#[derive(Debug, Clone)]
pub struct Permutation {
    n: u64,
    half_bits: u32,
    mask: u64,
    keys: [u64; ROUNDS],
}

impl Permutation {
    /// Permutation of `[0, n)` determined by `stream_key` (n >= 1).
    pub fn new(n: u64, stream_key: u64) -> Self {
        let bits = (64 - (n.max(2) - 1).leading_zeros()).max(2);
        let half_bits = bits.div_ceil(2);
        let mut keys = [0u64; ROUNDS];
        for (i, k) in keys.iter_mut().enumerate() {
            *k = key(&[stream_key, i as u64]);
        }
        Permutation {
            n,
            half_bits,
            mask: (1u64 << half_bits) - 1,
            keys,
        }
    }

    #[inline]
    fn encrypt(&self, x: u64) -> u64 {
        let (mut left, mut right) = (x >> self.half_bits, x & self.mask);
        for &k in &self.keys {
            let f = splitmix64(right ^ k) & self.mask;
            (left, right) = (right, left ^ f);
        }
        (left << self.half_bits) | right
    }

    /// Image of `x` (must be `< n`); the domain is at most 4n, so few walks are needed.
    #[inline]
    pub fn apply(&self, x: u64) -> u64 {
        debug_assert!(x < self.n);
        let mut y = self.encrypt(x);
        while y >= self.n {
            y = self.encrypt(y);
        }
        y
    }
}

/// How batches are drawn.
#[derive(Debug, Clone)]
pub struct BatchConfig {
    /// Rays per batch.
    pub batch_size: usize,
    /// Seed of all shuffles and random backgrounds.
    pub seed: u64,
    /// Iterations at the start that sample only the centre crop.
    pub precrop_iters: u64,
    /// Fraction of height/width kept by the centre crop, in (0, 1].
    pub precrop_frac: f32,
    /// One view per batch (instead of rays from all views mixed).
    pub single_image: bool,
}

/// Pixel indices of one batch; `view` indexes the caller's list of views (the split).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RayIndices {
    pub view: Vec<i64>,
    pub row: Vec<i64>,
    pub col: Vec<i64>,
}

/// The image region sampled at an iteration: all pixels or the centre crop.
struct Region {
    row0: u64,
    col0: u64,
    rows: u64,
    cols: u64,
}

fn region(cfg: &BatchConfig, height: u64, width: u64, crop: bool) -> Region {
    if !crop {
        return Region {
            row0: 0,
            col0: 0,
            rows: height,
            cols: width,
        };
    }
    // As the original NeRF: rows H/2 - dH .. H/2 + dH with dH = H/2 * frac.
    let dh = ((height / 2) as f64 * cfg.precrop_frac as f64) as u64;
    let dw = ((width / 2) as f64 * cfg.precrop_frac as f64) as u64;
    let (rows, cols) = ((2 * dh).clamp(1, height), (2 * dw).clamp(1, width));
    Region {
        row0: (height - rows) / 2,
        col0: (width - cols) / 2,
        rows,
        cols,
    }
}

/// Indices of batch `iteration` over `n_views` images of `height` x `width` pixels.
pub fn ray_indices(
    cfg: &BatchConfig,
    n_views: usize,
    height: usize,
    width: usize,
    iteration: u64,
) -> CoreResult<RayIndices> {
    if cfg.batch_size == 0 || n_views == 0 || height == 0 || width == 0 {
        return Err(CoreError::InvalidArgument(format!(
            "need batch_size, views, height and width > 0 (got {}, {n_views}, {height}, {width})",
            cfg.batch_size
        )));
    }
    if !(cfg.precrop_frac > 0.0 && cfg.precrop_frac <= 1.0) {
        return Err(CoreError::InvalidArgument(format!(
            "precrop_frac must be in (0, 1], got {}",
            cfg.precrop_frac
        )));
    }
    let crop = iteration < cfg.precrop_iters;
    // Iterations count from the start of their phase, so epochs align with phases.
    let (phase_iter, tag) = if crop {
        (iteration, TAG_CROP)
    } else {
        (iteration - cfg.precrop_iters, TAG_PIXELS)
    };
    let reg = region(cfg, height as u64, width as u64, crop);
    let per_view = reg.rows * reg.cols;
    let b = cfg.batch_size as u64;
    let mut out = RayIndices {
        view: Vec::with_capacity(cfg.batch_size),
        row: Vec::new(),
        col: Vec::new(),
    };
    out.row.reserve(cfg.batch_size);
    out.col.reserve(cfg.batch_size);
    let mut push = |v: u64, pixel: u64| {
        out.view.push(v as i64);
        out.row.push((reg.row0 + pixel / reg.cols) as i64);
        out.col.push((reg.col0 + pixel % reg.cols) as i64);
    };
    if cfg.single_image {
        let v_count = n_views as u64;
        let round = phase_iter / v_count;
        let view = Permutation::new(v_count, key(&[cfg.seed, tag, TAG_VIEWS, round]))
            .apply(phase_iter % v_count);
        // `round` = how often this view was drawn before: continue its own pixel sequence.
        let mut epoch = u64::MAX;
        let mut perm = None;
        for p in round * b..round * b + b {
            if p / per_view != epoch {
                epoch = p / per_view;
                perm = Some(Permutation::new(
                    per_view,
                    key(&[cfg.seed, tag, view, epoch]),
                ));
            }
            push(view, perm.as_ref().unwrap().apply(p % per_view));
        }
    } else {
        let total = n_views as u64 * per_view;
        let mut epoch = u64::MAX;
        let mut perm = None;
        for p in phase_iter * b..phase_iter * b + b {
            if p / total != epoch {
                epoch = p / total;
                perm = Some(Permutation::new(total, key(&[cfg.seed, tag, epoch])));
            }
            let idx = perm.as_ref().unwrap().apply(p % total);
            push(idx / per_view, idx % per_view);
        }
    }
    Ok(out)
}

/// Background each ray is composited on.
#[derive(Debug, Clone, Copy)]
pub enum Background {
    /// The same RGB in [0, 1] for every ray.
    Fixed([f32; 3]),
    /// Uniform random RGB per ray, a pure function of (seed, iteration, ray).
    Random { seed: u64, iteration: u64 },
}

/// Images as a borrowed `[n, height, width, channels]` uint8 buffer (channels 3 or 4).
#[derive(Debug, Clone, Copy)]
pub struct ImagesRef<'a> {
    pub data: &'a [u8],
    pub n: usize,
    pub height: usize,
    pub width: usize,
    pub channels: usize,
}

/// Target colours `[B, 3]` (sRGB in [0, 1], alpha composited) and the backgrounds `[B, 3]`.
pub fn gather(
    images: ImagesRef<'_>,
    views: &[i64],
    rows: &[i64],
    cols: &[i64],
    bg: Background,
) -> CoreResult<(Vec<f32>, Vec<f32>)> {
    let ImagesRef {
        data,
        n,
        height,
        width,
        channels,
    } = images;
    if data.len() != n * height * width * channels || !(channels == 3 || channels == 4) {
        return Err(CoreError::InvalidArgument(format!(
            "images buffer of {} bytes is not [{n}, {height}, {width}, 3|4]",
            data.len()
        )));
    }
    let mut rgb = Vec::with_capacity(views.len() * 3);
    let mut backgrounds = Vec::with_capacity(views.len() * 3);
    for (j, ((&v, &r), &c)) in views.iter().zip(rows).zip(cols).enumerate() {
        if v < 0 || v as usize >= n || r < 0 || r as usize >= height || c < 0 || c as usize >= width
        {
            return Err(CoreError::InvalidArgument(format!(
                "pixel ({v}, {r}, {c}) outside [{n}, {height}, {width}]"
            )));
        }
        let at = ((v as usize * height + r as usize) * width + c as usize) * channels;
        let px = &data[at..at + channels];
        let back = match bg {
            Background::Fixed(b) => b,
            Background::Random { seed, iteration } => {
                let h = key(&[seed, TAG_BACKGROUND, iteration, j as u64]);
                // Three 21-bit uniforms from one hash.
                let u = |s: u32| ((h >> s) & 0x1F_FFFF) as f32 / 0x1F_FFFF as f32;
                [u(0), u(21), u(42)]
            }
        };
        let alpha = if channels == 4 {
            px[3] as f32 / 255.0
        } else {
            1.0
        };
        for k in 0..3 {
            rgb.push(px[k] as f32 / 255.0 * alpha + back[k] * (1.0 - alpha));
        }
        backgrounds.extend_from_slice(&back);
    }
    Ok((rgb, backgrounds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    fn cfg(b: usize, seed: u64) -> BatchConfig {
        BatchConfig {
            batch_size: b,
            seed,
            precrop_iters: 0,
            precrop_frac: 0.5,
            single_image: false,
        }
    }

    #[test]
    fn gather_composites_alpha_on_background() {
        let data = [255u8, 0, 0, 0, 0, 255, 0, 255];
        let img = ImagesRef {
            data: &data,
            n: 1,
            height: 1,
            width: 2,
            channels: 4,
        };
        let (rgb, bg) = gather(
            img,
            &[0, 0],
            &[0, 0],
            &[0, 1],
            Background::Fixed([1.0, 1.0, 1.0]),
        )
        .unwrap();
        assert_eq!(rgb, vec![1.0, 1.0, 1.0, 0.0, 1.0, 0.0]);
        assert_eq!(bg, vec![1.0; 6]);
        assert!(gather(img, &[1], &[0], &[0], Background::Fixed([0.0; 3])).is_err());
    }

    #[test]
    fn one_epoch_covers_every_pixel_once() {
        // 3 views of 5x7: 105 pixels, batches of 15 -> 7 batches per epoch.
        let c = cfg(15, 9);
        let mut seen = HashSet::new();
        for it in 0..7 {
            let b = ray_indices(&c, 3, 5, 7, it).unwrap();
            for j in 0..15 {
                assert!(seen.insert((b.view[j], b.row[j], b.col[j])));
            }
        }
        assert_eq!(seen.len(), 105);
        assert_ne!(
            ray_indices(&c, 3, 5, 7, 0).unwrap(),
            ray_indices(&c, 3, 5, 7, 7).unwrap()
        );
    }

    #[test]
    fn precrop_stays_in_the_centre_then_stops() {
        let c = BatchConfig {
            precrop_iters: 3,
            ..cfg(64, 1)
        };
        for it in 0..3 {
            let b = ray_indices(&c, 2, 20, 40, it).unwrap();
            assert!(b.row.iter().all(|&r| (5..15).contains(&r)));
            assert!(b.col.iter().all(|&x| (10..30).contains(&x)));
        }
        let after: Vec<i64> = (3..40)
            .flat_map(|it| ray_indices(&c, 2, 20, 40, it).unwrap().row)
            .collect();
        assert!(after.iter().any(|&r| !(5..15).contains(&r)));
    }

    #[test]
    fn single_image_rounds_visit_every_view_once() {
        let c = BatchConfig {
            single_image: true,
            ..cfg(10, 3)
        };
        for round in 0..3 {
            let views: HashSet<i64> = (round * 4..round * 4 + 4)
                .map(|it| {
                    let b = ray_indices(&c, 4, 6, 6, it).unwrap();
                    assert!(b.view.iter().all(|&v| v == b.view[0]));
                    b.view[0]
                })
                .collect();
            assert_eq!(views.len(), 4);
        }
    }

    proptest! {
        /// The Feistel permutation is a bijection of [0, n) for any n and key.
        #[test]
        fn permutation_is_a_bijection(n in 1u64..3000, k in any::<u64>()) {
            let p = Permutation::new(n, k);
            let mut seen = vec![false; n as usize];
            for x in 0..n {
                let y = p.apply(x);
                prop_assert!(y < n);
                prop_assert!(!seen[y as usize]);
                seen[y as usize] = true;
            }
        }

        /// Batches are pure functions of (seed, iteration) and stay inside the images.
        #[test]
        fn batches_are_deterministic_and_in_range(seed in any::<u64>(), it in 0u64..1_000_000, v in 1usize..5, h in 1usize..9, w in 1usize..9, single in any::<bool>()) {
            let c = BatchConfig { single_image: single, precrop_iters: 2, ..cfg(33, seed) };
            let a = ray_indices(&c, v, h, w, it).unwrap();
            prop_assert_eq!(&a, &ray_indices(&c, v, h, w, it).unwrap());
            prop_assert!(a.view.iter().all(|&x| (0..v as i64).contains(&x)));
            prop_assert!(a.row.iter().all(|&x| (0..h as i64).contains(&x)));
            prop_assert!(a.col.iter().all(|&x| (0..w as i64).contains(&x)));
        }
    }
}
