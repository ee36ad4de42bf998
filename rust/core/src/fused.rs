//! The positional encoding fused with the first layer of a NeRF MLP (inference only).
//!
//! At every sample point p = origins[r] + t dirs[r] the network's first layer reads the encoding
//! gamma(p) = [p, sin(2^0 p), cos(2^0 p), ..., sin(2^(L-1) p), cos(2^(L-1) p)] (blocks of 3, the order of
//! `taichi_kernels.encoding`), or some of its features (`columns`: a compacted network reads only those its
//! pruned weights still read). Done apart, the encoding is written to memory (63 floats a sample) and read
//! back by the layer's matrix product; for a pruned network of width 20 that store was 3x the product
//! itself (`benchmarks/bench_prune.py`'s stage profile). Here the encoding of a block of [`LANES`] samples
//! lives on the stack only, and the layer y = act(W gamma(p)[columns] + b) is written straight to `out`.
//!
//! The arithmetic runs over the block's lanes (one SIMD register per 8 lanes where the CPU has AVX2/FMA,
//! chosen at run time), with [`OUT_BLOCK`] outputs at a time in registers. sin/cos: one Cody-Waite
//! reduction by pi/2 and minimax polynomials per input, then the double-angle recurrence for every next
//! octave (sin 2a = 2 sin a cos a, cos 2a = cos^2 a - sin^2 a), as the Taichi kernel does: rounding grows
//! ~2x per octave (~1e-5 after 10).
//!
//! Shapes: B rays, N samples, F' = columns.len() features read, `out_features` outputs.

use crate::error::{CoreError, CoreResult};

/// Coordinates of a sample point.
pub const DIMS: usize = 3;
/// Octaves the kernel supports (the original NeRF uses 10 for positions).
pub const MAX_FREQUENCIES: usize = 16;
/// Samples computed together (two 8-float registers per output).
pub const LANES: usize = 16;
/// Outputs accumulated together (4 x 2 registers: enough independent sums to keep the FMA units busy).
pub const OUT_BLOCK: usize = 4;
/// Fewer rows than this per thread are not worth a thread.
const MIN_ROWS_PER_THREAD: usize = 2048;
const MAX_FEATURES: usize = DIMS * (1 + 2 * MAX_FREQUENCIES);

/// Sample points: ray origins and directions [B, 3] (row-major) and, per sample, its depth t and ray.
pub struct SamplePoints<'a> {
    pub origins: &'a [f32],
    pub dirs: &'a [f32],
    pub t: &'a [f32],
    pub ray_index: &'a [i64],
}

/// The first layer: `weight` [out_features, F' + 1] row-major, its last column the bias; it reads the
/// encoding's features `columns` [F'] (indices into the full encoding of `n_frequencies` octaves).
pub struct FirstLayer<'a> {
    pub weight: &'a [f32],
    pub out_features: usize,
    pub columns: &'a [usize],
    pub n_frequencies: usize,
    pub relu: bool,
}

/// Features of the full encoding of `n_frequencies` octaves.
pub fn encoding_width(n_frequencies: usize) -> usize {
    DIMS * (1 + 2 * n_frequencies)
}

/// out[i, :out_features] = act(W gamma(p_i)[columns] + b) for every sample i; `out` is [N, out_stride]
/// row-major (columns past `out_features` are left as they are). Runs on `threads` threads (0: one per
/// core), the calling one included.
pub fn encode_first_layer(
    points: &SamplePoints,
    layer: &FirstLayer,
    out: &mut [f32],
    out_stride: usize,
    threads: usize,
) -> CoreResult<()> {
    check(points, layer, out, out_stride)?;
    let n = points.t.len();
    if n == 0 || layer.out_features == 0 {
        return Ok(());
    }
    let packed = PackedWeights::new(layer);
    let octaves = octaves_read(layer.columns);
    let threads = if threads == 0 { std::thread::available_parallelism().map_or(1, |n| n.get()) } else { threads };
    // one contiguous share of rows per thread, on scoped threads that end with the call: a pool's workers
    // (rayon's) spin after their work and slowed the torch product that follows by 2x (6 -> 14 ms a view)
    let share = n.div_ceil(threads.min(n.div_ceil(MIN_ROWS_PER_THREAD)).max(1));
    let job = Job { points, packed: &packed, columns: layer.columns, octaves, relu: layer.relu };
    let job = &job;
    let run = move |(part, rows): (usize, &mut [f32])| {
        rows_dispatch(job, part * share, rows.len() / out_stride, rows, out_stride);
    };
    let mut parts = out.chunks_mut(share * out_stride).enumerate();
    let first = parts.next();
    std::thread::scope(|scope| {
        for part in parts {
            scope.spawn(move || run(part));
        }
        if let Some(part) = first {
            run(part); // the calling thread takes the first share
        }
    });
    Ok(())
}

fn check(points: &SamplePoints, layer: &FirstLayer, out: &[f32], out_stride: usize) -> CoreResult<()> {
    let bad = |m: String| Err(CoreError::InvalidArgument(format!("encode_first_layer: {m}")));
    let b = points.origins.len() / DIMS;
    if points.origins.len() % DIMS != 0 || points.dirs.len() != points.origins.len() {
        return bad(format!(
            "origins and dirs must both be [B, 3], got {} and {} floats",
            points.origins.len(),
            points.dirs.len()
        ));
    }
    let n = points.t.len();
    if points.ray_index.len() != n {
        return bad(format!("t and ray_index must both be [N], got {} and {}", n, points.ray_index.len()));
    }
    if let Some(&r) = points.ray_index.iter().find(|&&r| r < 0 || r as usize >= b) {
        return bad(format!("ray index {r} outside [0, {b})"));
    }
    if layer.n_frequencies > MAX_FREQUENCIES {
        return bad(format!("at most {MAX_FREQUENCIES} frequencies, got {}", layer.n_frequencies));
    }
    let features = encoding_width(layer.n_frequencies);
    if let Some(&c) = layer.columns.iter().find(|&&c| c >= features) {
        return bad(format!("column {c} outside the {features} features of {} frequencies", layer.n_frequencies));
    }
    if layer.weight.len() != layer.out_features * (layer.columns.len() + 1) {
        return bad(format!(
            "weight must be [{}, {}] (the bias as last column), got {} floats",
            layer.out_features,
            layer.columns.len() + 1,
            layer.weight.len()
        ));
    }
    if out_stride < layer.out_features || out.len() != n * out_stride {
        return bad(format!(
            "out must be [{n}, stride >= {}], got {} floats with stride {out_stride}",
            layer.out_features,
            out.len()
        ));
    }
    Ok(())
}

/// The highest octave any column reads, plus one (sin/cos blocks 1 and 2 are octave 0).
fn octaves_read(columns: &[usize]) -> usize {
    columns.iter().filter(|&&c| c >= DIMS).map(|&c| (c / DIMS - 1) / 2 + 1).max().unwrap_or(0)
}

/// The weights regrouped for the kernel: for every block of OUT_BLOCK outputs, F' rows of OUT_BLOCK
/// weights (one broadcast each), outputs past `out_features` zero.
struct PackedWeights {
    blocks: usize,
    width: usize, // F'
    out_features: usize,
    weight: Vec<f32>, // [blocks, F', OUT_BLOCK]
    bias: Vec<f32>,   // [blocks, OUT_BLOCK]
}

impl PackedWeights {
    fn new(layer: &FirstLayer) -> Self {
        let width = layer.columns.len();
        let blocks = layer.out_features.div_ceil(OUT_BLOCK);
        let mut weight = vec![0.0; blocks * width * OUT_BLOCK];
        let mut bias = vec![0.0; blocks * OUT_BLOCK];
        for j in 0..layer.out_features {
            let (block, lane) = (j / OUT_BLOCK, j % OUT_BLOCK);
            let row = &layer.weight[j * (width + 1)..(j + 1) * (width + 1)];
            for (k, &w) in row[..width].iter().enumerate() {
                weight[(block * width + k) * OUT_BLOCK + lane] = w;
            }
            bias[block * OUT_BLOCK + lane] = row[width];
        }
        PackedWeights { blocks, width, out_features: layer.out_features, weight, bias }
    }
}

/// A multiply-add: fused where the CPU has FMA (the AVX2 path), a product and a sum elsewhere; and the
/// layer product of one block of lanes built on it.
trait MulAdd: Sized {
    fn mul_add(a: f32, b: f32, c: f32) -> f32;

    #[inline(always)]
    fn layer(job: &Job, features: &[[f32; LANES]; MAX_FEATURES], out: &mut [f32], valid: usize, stride: usize) {
        layer_block::<Self>(job.packed, job.columns, features, job.relu, out, valid, stride);
    }
}
struct Fused;
struct Plain;
impl MulAdd for Fused {
    #[inline(always)]
    fn mul_add(a: f32, b: f32, c: f32) -> f32 {
        a.mul_add(b, c)
    }

    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn layer(job: &Job, features: &[[f32; LANES]; MAX_FEATURES], out: &mut [f32], valid: usize, stride: usize) {
        // SAFETY: `Fused` is only used by `rows_avx2`, which runs only where the CPU has AVX2 and FMA.
        unsafe { layer_block_avx2(job.packed, job.columns, features, job.relu, out, valid, stride) }
    }
}
impl MulAdd for Plain {
    #[inline(always)]
    fn mul_add(a: f32, b: f32, c: f32) -> f32 {
        a * b + c
    }
}

/// What every block of a call shares.
struct Job<'a> {
    points: &'a SamplePoints<'a>,
    packed: &'a PackedWeights,
    columns: &'a [usize],
    octaves: usize,
    relu: bool,
}

fn rows_dispatch(job: &Job, first: usize, count: usize, out: &mut [f32], stride: usize) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has the features the function is compiled for (checked just above).
        unsafe { rows_avx2(job, first, count, out, stride) };
        return;
    }
    rows::<Plain>(job, first, count, out, stride);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn rows_avx2(job: &Job, first: usize, count: usize, out: &mut [f32], stride: usize) {
    rows::<Fused>(job, first, count, out, stride);
}

/// Samples [first, first + count) into `out` ([count, stride]), LANES at a time.
#[inline(always)]
fn rows<M: MulAdd>(job: &Job, first: usize, count: usize, out: &mut [f32], stride: usize) {
    let mut features = [[0.0f32; LANES]; MAX_FEATURES];
    let mut start = 0;
    while start < count {
        let valid = LANES.min(count - start);
        encode_block(job.points, first + start, valid, job.octaves, &mut features);
        M::layer(job, &features, &mut out[start * stride..], valid, stride);
        start += LANES;
    }
}

/// The full encoding (up to `octaves`) of samples [first, first + valid) into features[f][lane]; lanes past
/// `valid` repeat the last sample (computed, never stored).
#[inline(always)]
fn encode_block(
    points: &SamplePoints,
    first: usize,
    valid: usize,
    octaves: usize,
    features: &mut [[f32; LANES]; MAX_FEATURES],
) {
    for d in 0..DIMS {
        let mut v = [0.0f32; LANES];
        for (lane, value) in v.iter_mut().enumerate() {
            let i = first + lane.min(valid - 1);
            let r = points.ray_index[i] as usize;
            *value = points.origins[r * DIMS + d] + points.t[i] * points.dirs[r * DIMS + d];
        }
        features[d] = v;
        let (mut s, mut c) = sincos(&v);
        for level in 0..octaves {
            features[DIMS * (1 + 2 * level) + d] = s;
            features[DIMS * (2 + 2 * level) + d] = c;
            for lane in 0..LANES {
                let (a, b) = (s[lane], c[lane]);
                s[lane] = 2.0 * a * b;
                c[lane] = b * b - a * a;
            }
        }
    }
}

/// out[lane, j] = act(b_j + sum_k W[j, k] features[columns[k]][lane]) for the block's `valid` lanes.
#[inline(always)]
fn layer_block<M: MulAdd>(
    packed: &PackedWeights,
    columns: &[usize],
    features: &[[f32; LANES]; MAX_FEATURES],
    relu: bool,
    out: &mut [f32],
    valid: usize,
    stride: usize,
) {
    let width = packed.width;
    for block in 0..packed.blocks {
        let mut acc = [[0.0f32; LANES]; OUT_BLOCK];
        for (jj, sums) in acc.iter_mut().enumerate() {
            *sums = [packed.bias[block * OUT_BLOCK + jj]; LANES];
        }
        let weights = &packed.weight[block * width * OUT_BLOCK..(block + 1) * width * OUT_BLOCK];
        for (k, &column) in columns.iter().enumerate() {
            let x = &features[column];
            let w = &weights[k * OUT_BLOCK..(k + 1) * OUT_BLOCK];
            for jj in 0..OUT_BLOCK {
                for lane in 0..LANES {
                    acc[jj][lane] = M::mul_add(w[jj], x[lane], acc[jj][lane]);
                }
            }
        }
        let outputs = OUT_BLOCK.min(packed.out_features - block * OUT_BLOCK);
        for lane in 0..valid {
            let row = &mut out[lane * stride + block * OUT_BLOCK..lane * stride + block * OUT_BLOCK + outputs];
            for (jj, y) in row.iter_mut().enumerate() {
                let v = acc[jj][lane];
                *y = if relu { v.max(0.0) } else { v };
            }
        }
    }
}

/// `layer_block` in AVX2/FMA intrinsics, the same operations in the same order (so the same floats): the
/// OUT_BLOCK x 2 sums live in named registers. Written generically, the compiler rotated them through
/// register copies and re-checked every column index, ~3 instructions of overhead per FMA (~25 % of the
/// FMA peak on the 20-wide first layer of a pruned net).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn layer_block_avx2(
    packed: &PackedWeights,
    columns: &[usize],
    features: &[[f32; LANES]; MAX_FEATURES],
    relu: bool,
    out: &mut [f32],
    valid: usize,
    stride: usize,
) {
    use std::arch::x86_64::*;
    const _: () = assert!(LANES == 16 && OUT_BLOCK == 4, "the registers below are written out for 16 x 4");
    debug_assert!(columns.iter().all(|&c| c < MAX_FEATURES)); // `check` refused any other
    let width = packed.width;
    let base = features.as_ptr() as *const f32;
    let zero = _mm256_setzero_ps();
    let mut sums = [[0.0f32; LANES]; OUT_BLOCK];
    for block in 0..packed.blocks {
        let bias = packed.bias.as_ptr().add(block * OUT_BLOCK);
        let (mut a0, mut b0, mut c0, mut d0) = (
            _mm256_broadcast_ss(&*bias),
            _mm256_broadcast_ss(&*bias.add(1)),
            _mm256_broadcast_ss(&*bias.add(2)),
            _mm256_broadcast_ss(&*bias.add(3)),
        );
        let (mut a1, mut b1, mut c1, mut d1) = (a0, b0, c0, d0);
        let mut w = packed.weight.as_ptr().add(block * width * OUT_BLOCK);
        for &column in columns {
            // SAFETY: column < MAX_FEATURES, so both loads stay inside `features`
            let x = base.add(column * LANES);
            let (x0, x1) = (_mm256_loadu_ps(x), _mm256_loadu_ps(x.add(8)));
            let wa = _mm256_broadcast_ss(&*w);
            a0 = _mm256_fmadd_ps(wa, x0, a0);
            a1 = _mm256_fmadd_ps(wa, x1, a1);
            let wb = _mm256_broadcast_ss(&*w.add(1));
            b0 = _mm256_fmadd_ps(wb, x0, b0);
            b1 = _mm256_fmadd_ps(wb, x1, b1);
            let wc = _mm256_broadcast_ss(&*w.add(2));
            c0 = _mm256_fmadd_ps(wc, x0, c0);
            c1 = _mm256_fmadd_ps(wc, x1, c1);
            let wd = _mm256_broadcast_ss(&*w.add(3));
            d0 = _mm256_fmadd_ps(wd, x0, d0);
            d1 = _mm256_fmadd_ps(wd, x1, d1);
            w = w.add(OUT_BLOCK);
        }
        for (row, (lo, hi)) in sums.iter_mut().zip([(a0, a1), (b0, b1), (c0, c1), (d0, d1)]) {
            let (lo, hi) = if relu { (_mm256_max_ps(lo, zero), _mm256_max_ps(hi, zero)) } else { (lo, hi) };
            _mm256_storeu_ps(row.as_mut_ptr(), lo);
            _mm256_storeu_ps(row.as_mut_ptr().add(8), hi);
        }
        let outputs = OUT_BLOCK.min(packed.out_features - block * OUT_BLOCK);
        for lane in 0..valid {
            let row = &mut out[lane * stride + block * OUT_BLOCK..lane * stride + block * OUT_BLOCK + outputs];
            for (jj, y) in row.iter_mut().enumerate() {
                *y = sums[jj][lane];
            }
        }
    }
}

/// 1.5 2^23: adding it rounds any |y| < 2^22 to an integer, exactly (`sincos`).
const ROUNDING_SHIFT: f32 = 12_582_912.0;

/// sin and cos of every lane: reduction by pi/2 in three parts (Cody-Waite), minimax polynomials on
/// [-pi/4, pi/4], the quadrant chosen by selects (no branch, so the lanes vectorise). Absolute error
/// ~1e-7 for |v| up to ~1e4.
#[inline(always)]
fn sincos(v: &[f32; LANES]) -> ([f32; LANES], [f32; LANES]) {
    let mut s = [0.0f32; LANES];
    let mut c = [0.0f32; LANES];
    for lane in 0..LANES {
        let x = v[lane];
        // k = x 2/pi rounded to the nearest integer (ties to even) by adding 1.5 2^23, whose float has a unit
        // last place; the low mantissa bits then hold k + 2^22, so its two low bits are the quadrant k mod 4.
        // (`k as i32` saturates, one compare per lane, and kept this loop scalar: 2x slower.)
        let shifted = x * std::f32::consts::FRAC_2_PI + ROUNDING_SHIFT;
        let q = shifted.to_bits() as i32;
        let k = shifted - ROUNDING_SHIFT;
        let r = x - k * 1.570_312_5 - k * 4.837_513e-4 - k * 7.549_79e-8;
        let r2 = r * r;
        let sp = r + r * r2 * (-0.166_666_67 + r2 * (0.008_333_331 + r2 * (-0.000_198_393_35 + r2 * 2.718_311_5e-6)));
        let cp = 1.0 + r2 * (-0.5 + r2 * (0.041_666_668 + r2 * (-0.001_388_888_9 + r2 * (2.480_158_7e-5 - r2 * 2.755_732e-7))));
        let (a, b) = if q & 1 == 0 { (sp, cp) } else { (cp, sp) };
        s[lane] = if q & 2 == 0 { a } else { -a };
        c[lane] = if (q + 1) & 2 == 0 { b } else { -b };
    }
    (s, c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The reference: the encoding in f64 with libm sin/cos at every octave, then the product.
    fn reference(points: &SamplePoints, layer: &FirstLayer) -> Vec<f64> {
        let n = points.t.len();
        let width = layer.columns.len();
        let mut out = vec![0.0; n * layer.out_features];
        for i in 0..n {
            let r = points.ray_index[i] as usize;
            let p: Vec<f64> = (0..DIMS)
                .map(|d| points.origins[r * DIMS + d] as f64 + points.t[i] as f64 * points.dirs[r * DIMS + d] as f64)
                .collect();
            let mut gamma = p.clone();
            for level in 0..layer.n_frequencies {
                let f = 2f64.powi(level as i32);
                gamma.extend(p.iter().map(|x| (f * x).sin()));
                gamma.extend(p.iter().map(|x| (f * x).cos()));
            }
            for j in 0..layer.out_features {
                let row = &layer.weight[j * (width + 1)..(j + 1) * (width + 1)];
                let mut y = row[width] as f64;
                for (k, &c) in layer.columns.iter().enumerate() {
                    y += row[k] as f64 * gamma[c];
                }
                out[i * layer.out_features + j] = if layer.relu { y.max(0.0) } else { y };
            }
        }
        out
    }

    fn lcg(seed: u64, n: usize, scale: f32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
            })
            .collect()
    }

    struct Case {
        origins: Vec<f32>,
        dirs: Vec<f32>,
        t: Vec<f32>,
        ray: Vec<i64>,
        weight: Vec<f32>,
        columns: Vec<usize>,
    }

    fn case(seed: u64, rays: usize, samples: usize, out_features: usize, columns: Vec<usize>) -> Case {
        Case {
            origins: lcg(seed, rays * 3, 1.5),
            dirs: lcg(seed + 1, rays * 3, 1.0),
            t: lcg(seed + 2, samples, 1.0).iter().map(|v| 2.0 + v).collect(),
            ray: (0..samples).map(|i| (i * rays / samples.max(1)) as i64).collect(),
            weight: lcg(seed + 3, out_features * (columns.len() + 1), 0.3),
            columns,
        }
    }

    fn run(c: &Case, out_features: usize, n_frequencies: usize, relu: bool, stride: usize, threads: usize) -> Vec<f32> {
        let points = SamplePoints { origins: &c.origins, dirs: &c.dirs, t: &c.t, ray_index: &c.ray };
        let layer = FirstLayer { weight: &c.weight, out_features, columns: &c.columns, n_frequencies, relu };
        let mut out = vec![-7.0; c.t.len() * stride];
        encode_first_layer(&points, &layer, &mut out, stride, threads).unwrap();
        out
    }

    fn assert_matches(c: &Case, out_features: usize, n_frequencies: usize, relu: bool, stride: usize) {
        let got = run(c, out_features, n_frequencies, relu, stride, 2);
        let points = SamplePoints { origins: &c.origins, dirs: &c.dirs, t: &c.t, ray_index: &c.ray };
        let layer = FirstLayer { weight: &c.weight, out_features, columns: &c.columns, n_frequencies, relu };
        let want = reference(&points, &layer);
        for i in 0..c.t.len() {
            for j in 0..out_features {
                let (g, w) = (got[i * stride + j] as f64, want[i * out_features + j]);
                // the double-angle recurrence doubles the rounding at every octave: 2^L * float eps * sum |W|
                assert!((g - w).abs() < 2e-3, "sample {i} output {j}: {g} against {w}");
            }
            for j in out_features..stride {
                assert_eq!(got[i * stride + j], -7.0, "column {j} past the outputs was written");
            }
        }
    }

    #[test]
    fn matches_the_reference_for_the_full_encoding() {
        let columns: Vec<usize> = (0..encoding_width(10)).collect();
        let c = case(1, 37, 1000, 20, columns);
        assert_matches(&c, 20, 10, true, 21);
        assert_matches(&c, 20, 10, false, 20);
    }

    #[test]
    fn matches_the_reference_for_picked_columns_in_any_order() {
        let c = case(2, 5, 77, 7, vec![40, 0, 3, 17, 5, 62]);
        assert_matches(&c, 7, 10, false, 9);
    }

    #[test]
    fn one_thread_and_many_give_the_same_floats() {
        let c = case(3, 50, 5000, 13, (0..encoding_width(4)).collect());
        assert_eq!(run(&c, 13, 4, true, 14, 1), run(&c, 13, 4, true, 14, 2));
    }

    #[test]
    fn sincos_is_accurate_over_the_reduced_range_and_beyond() {
        let mut worst: f64 = 0.0;
        for i in 0..LANES * 4000 {
            let x = (i as f32 - (LANES * 2000) as f32) * 0.013;
            let mut v = [x; LANES];
            v[1] = -x;
            let (s, c) = sincos(&v);
            worst = worst.max((s[0] as f64 - (x as f64).sin()).abs()).max((c[0] as f64 - (x as f64).cos()).abs());
            worst = worst.max((s[1] as f64 + (x as f64).sin()).abs());
        }
        assert!(worst < 2e-6, "worst error {worst}");
    }

    #[test]
    fn sincos_keeps_its_quadrant_up_to_ten_thousand() {
        // the rounding shift's quadrant bits, on both signs and across many periods
        let mut worst: f64 = 0.0;
        for i in 0..LANES * 1000 {
            let x = -1.0e4 + i as f32 * 1.25;
            let (s, c) = sincos(&[x; LANES]);
            worst = worst.max((s[3] as f64 - (x as f64).sin()).abs()).max((c[3] as f64 - (x as f64).cos()).abs());
        }
        assert!(worst < 2e-6, "worst error {worst}");
    }

    #[test]
    fn bad_arguments_are_refused_with_their_reason() {
        let c = case(4, 3, 10, 2, vec![0, 1, 2]);
        let points = SamplePoints { origins: &c.origins, dirs: &c.dirs, t: &c.t, ray_index: &c.ray };
        let layer = FirstLayer { weight: &c.weight, out_features: 2, columns: &c.columns, n_frequencies: 10, relu: true };
        let mut out = vec![0.0; 10 * 2];
        assert!(encode_first_layer(&points, &layer, &mut out[..19], 2, 1).unwrap_err().to_string().contains("out must be"));
        let far = vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 3];
        let bad_ray = SamplePoints { ray_index: &far, ..points };
        assert!(encode_first_layer(&bad_ray, &layer, &mut out, 2, 1).unwrap_err().to_string().contains("ray index 3"));
        let points = SamplePoints { origins: &c.origins, dirs: &c.dirs, t: &c.t, ray_index: &c.ray };
        let wide = FirstLayer { columns: &[0, 63], ..layer };
        assert!(encode_first_layer(&points, &wide, &mut out, 2, 1).unwrap_err().to_string().contains("column 63"));
    }

    proptest! {
        #[test]
        fn any_shape_matches_the_reference(seed in 0u64..1000, rays in 1usize..9, samples in 0usize..70,
                                           out_features in 1usize..11, n_frequencies in 0usize..8, pad in 0usize..3) {
            let features = encoding_width(n_frequencies);
            let columns: Vec<usize> = (0..features).filter(|f| (f + seed as usize) % 3 != 0).collect();
            let c = case(seed, rays, samples, out_features, columns);
            assert_matches(&c, out_features, n_frequencies, seed % 2 == 0, out_features + pad);
        }
    }
}
