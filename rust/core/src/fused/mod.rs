//! Narrow (pruned) NeRF networks evaluated per block of samples, the positional encoding never stored
//! (inference only).
//!
//! At every sample point p = origins[r] + t dirs[r] a NeRF's first layer reads the encoding
//! gamma(p) = [p, sin(2^0 p), cos(2^0 p), ..., sin(2^(L-1) p), cos(2^(L-1) p)] (blocks of 3, the order of
//! `taichi_kernels.encoding`). Here the encoding of a block of [`LANES`] samples lives in a small table
//! (`[rows][LANES]`, one row per feature or neuron) that stays in the L1 cache, and layers read and write rows
//! of that table:
//! - [`first_layer`]: the encoding and the first layer, its output written to memory (the rest of the
//!   network runs as BLAS products);
//! - [`network`]: the encoding and every layer, only the heads (density, colour) written to memory.
//!
//! The arithmetic runs over the block's lanes (one SIMD register per 8 lanes where the CPU has AVX2/FMA,
//! chosen at run time), with [`OUT_BLOCK`] outputs at a time in registers. sin/cos: one Cody-Waite
//! reduction by pi/2 and minimax polynomials per input, then the double-angle recurrence for every next
//! octave (sin 2a = 2 sin a cos a, cos 2a = cos^2 a - sin^2 a), as the Taichi kernel does: rounding grows
//! ~2x per octave (~1e-5 after 10).

pub mod first_layer;
pub mod network;

pub use first_layer::{encode_first_layer, FirstLayer};
pub use network::{run_network, Activation, Network, NetworkLayer};

use crate::error::{CoreError, CoreResult};

/// Coordinates of a sample point.
pub const DIMS: usize = 3;
/// Octaves the kernels support (the original NeRF uses 10 for positions).
pub const MAX_FREQUENCIES: usize = 16;
/// Samples computed together (two 8-float registers per output).
pub const LANES: usize = 16;
/// Outputs accumulated together (4 x 2 registers: enough independent sums to keep the FMA units busy).
pub const OUT_BLOCK: usize = 4;
/// Fewer rows than this per thread are not worth a thread.
const MIN_ROWS_PER_THREAD: usize = 2048;
/// Features of the widest encoding.
const MAX_FEATURES: usize = DIMS * (1 + 2 * MAX_FREQUENCIES);

/// One feature or neuron over the lanes of a block.
type Row = [f32; LANES];

/// Sample points: ray origins and directions [B, 3] (row-major) and, per sample, its depth t and ray.
pub struct SamplePoints<'a> {
    pub origins: &'a [f32],
    pub dirs: &'a [f32],
    pub t: &'a [f32],
    pub ray_index: &'a [i64],
}

impl SamplePoints<'_> {
    /// Rays B.
    pub fn rays(&self) -> usize {
        self.origins.len() / DIMS
    }

    /// Refuses rays that are not [B, 3] and ray indices outside [0, B); `what` names the caller.
    fn check(&self, what: &str) -> CoreResult<()> {
        let bad = |m: String| Err(CoreError::InvalidArgument(format!("{what}: {m}")));
        let b = self.rays();
        if self.origins.len() % DIMS != 0 || self.dirs.len() != self.origins.len() {
            return bad(format!(
                "origins and dirs must both be [B, 3], got {} and {} floats",
                self.origins.len(),
                self.dirs.len()
            ));
        }
        let n = self.t.len();
        if self.ray_index.len() != n {
            return bad(format!("t and ray_index must both be [N], got {} and {}", n, self.ray_index.len()));
        }
        if let Some(&r) = self.ray_index.iter().find(|&&r| r < 0 || r as usize >= b) {
            return bad(format!("ray index {r} outside [0, {b})"));
        }
        Ok(())
    }
}

/// Features of the full encoding of `n_frequencies` octaves.
pub fn encoding_width(n_frequencies: usize) -> usize {
    DIMS * (1 + 2 * n_frequencies)
}

/// Refuses more octaves than the kernels support.
fn check_frequencies(n_frequencies: usize, what: &str) -> CoreResult<()> {
    if n_frequencies > MAX_FREQUENCIES {
        return Err(CoreError::InvalidArgument(format!(
            "{what}: at most {MAX_FREQUENCIES} frequencies, got {n_frequencies}"
        )));
    }
    Ok(())
}

/// The highest octave any of these encoding features needs, plus one (sin/cos blocks 1 and 2 are octave 0);
/// features past the encoding (`>= encoding_width`) are ignored.
fn octaves_read(features: impl Iterator<Item = usize>, encoding: usize) -> usize {
    features.filter(|&c| (DIMS..encoding).contains(&c)).map(|c| (c / DIMS - 1) / 2 + 1).max().unwrap_or(0)
}

/// A layer's weights regrouped for the kernels: for every block of OUT_BLOCK outputs, one row of OUT_BLOCK
/// weights per input (one broadcast each), outputs past `out_features` zero.
struct PackedWeights {
    blocks: usize,
    width: usize, // inputs
    out_features: usize,
    weight: Vec<f32>, // [blocks, width, OUT_BLOCK]
    bias: Vec<f32>,   // [blocks, OUT_BLOCK]
}

impl PackedWeights {
    /// From `weight` [out_features, row_len] row-major, its first `width` columns the inputs, and `bias`
    /// [out_features].
    fn new(weight: &[f32], row_len: usize, width: usize, out_features: usize, bias: impl Fn(usize) -> f32) -> Self {
        let blocks = out_features.div_ceil(OUT_BLOCK);
        let mut packed = vec![0.0; blocks * width * OUT_BLOCK];
        let mut padded_bias = vec![0.0; blocks * OUT_BLOCK];
        for j in 0..out_features {
            let (block, lane) = (j / OUT_BLOCK, j % OUT_BLOCK);
            for (k, &w) in weight[j * row_len..j * row_len + width].iter().enumerate() {
                packed[(block * width + k) * OUT_BLOCK + lane] = w;
            }
            padded_bias[block * OUT_BLOCK + lane] = bias(j);
        }
        PackedWeights { blocks, width, out_features, weight: packed, bias: padded_bias }
    }

    /// The weights of output block `block`: [width, OUT_BLOCK].
    fn block(&self, block: usize) -> &[f32] {
        &self.weight[block * self.width * OUT_BLOCK..(block + 1) * self.width * OUT_BLOCK]
    }

    /// The outputs of block `block` that exist (OUT_BLOCK but in the last one).
    fn outputs(&self, block: usize) -> usize {
        OUT_BLOCK.min(self.out_features - block * OUT_BLOCK)
    }

    /// The bias of block `block` broadcast over the lanes.
    fn bias_sums(&self, block: usize) -> [Row; OUT_BLOCK] {
        std::array::from_fn(|jj| [self.bias[block * OUT_BLOCK + jj]; LANES])
    }
}

/// A multiply-add: fused where the CPU has FMA (the AVX2 path), a product and a sum elsewhere; and the
/// product of one block of lanes built on it.
trait MulAdd: Sized {
    fn mul_add(a: f32, b: f32, c: f32) -> f32;

    /// sums[j][lane] += sum_k weights[k OUT_BLOCK + j] table[inputs[k]][lane], k in input order.
    #[inline(always)]
    fn product(weights: &[f32], inputs: &[usize], table: &[Row], sums: &mut [Row; OUT_BLOCK]) {
        for (k, &input) in inputs.iter().enumerate() {
            let x = &table[input];
            let w = &weights[k * OUT_BLOCK..(k + 1) * OUT_BLOCK];
            for jj in 0..OUT_BLOCK {
                for lane in 0..LANES {
                    sums[jj][lane] = Self::mul_add(w[jj], x[lane], sums[jj][lane]);
                }
            }
        }
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
    fn product(weights: &[f32], inputs: &[usize], table: &[Row], sums: &mut [Row; OUT_BLOCK]) {
        // SAFETY: `Fused` is only used by kernels that run where the CPU has AVX2 and FMA (`dispatch`); every
        // kernel checks its inputs against its table before it starts.
        unsafe { product_avx2(weights, inputs, table, sums) }
    }
}
impl MulAdd for Plain {
    #[inline(always)]
    fn mul_add(a: f32, b: f32, c: f32) -> f32 {
        a * b + c
    }
}

/// `MulAdd::product` in AVX2/FMA intrinsics, the same operations in the same order (so the same floats): the
/// OUT_BLOCK x 2 sums live in named registers. Written generically, the compiler rotated them through
/// register copies and re-checked every index, ~3 instructions of overhead per FMA (~25 % of the FMA peak
/// on the 20-wide first layer of a pruned net).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn product_avx2(weights: &[f32], inputs: &[usize], table: &[Row], sums: &mut [Row; OUT_BLOCK]) {
    use std::arch::x86_64::*;
    const _: () = assert!(LANES == 16 && OUT_BLOCK == 4, "the registers below are written out for 16 x 4");
    debug_assert!(inputs.iter().all(|&c| c < table.len()) && weights.len() >= inputs.len() * OUT_BLOCK);
    let base = table.as_ptr() as *const f32;
    let s = sums.as_mut_ptr() as *mut f32;
    let (mut a0, mut a1) = (_mm256_loadu_ps(s), _mm256_loadu_ps(s.add(8)));
    let (mut b0, mut b1) = (_mm256_loadu_ps(s.add(16)), _mm256_loadu_ps(s.add(24)));
    let (mut c0, mut c1) = (_mm256_loadu_ps(s.add(32)), _mm256_loadu_ps(s.add(40)));
    let (mut d0, mut d1) = (_mm256_loadu_ps(s.add(48)), _mm256_loadu_ps(s.add(56)));
    let mut w = weights.as_ptr();
    for &input in inputs {
        // SAFETY: input < table.len() (checked by the kernel), so both loads stay inside `table`
        let x = base.add(input * LANES);
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
    for (k, v) in [a0, a1, b0, b1, c0, c1, d0, d1].into_iter().enumerate() {
        _mm256_storeu_ps(s.add(8 * k), v);
    }
}

/// A kernel over rows of samples, written once for both multiply-adds.
trait BlockKernel: Sync {
    /// What one thread writes: its share of every output.
    type Part<'p>: Send;

    /// Samples [first, first + count) into `part`.
    fn rows<M: MulAdd>(&self, first: usize, count: usize, part: Self::Part<'_>);
}

/// Runs `kernel.rows` with FMA where the CPU has AVX2 and FMA, plainly elsewhere.
fn dispatch<K: BlockKernel>(kernel: &K, first: usize, count: usize, part: K::Part<'_>) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has the features the function is compiled for (checked just above).
        unsafe { rows_avx2(kernel, first, count, part) };
        return;
    }
    kernel.rows::<Plain>(first, count, part);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn rows_avx2<K: BlockKernel>(kernel: &K, first: usize, count: usize, part: K::Part<'_>) {
    kernel.rows::<Fused>(first, count, part);
}

/// Rows per thread for `n` samples on `threads` threads (0: one per core).
fn share(n: usize, threads: usize) -> usize {
    let threads = if threads == 0 { std::thread::available_parallelism().map_or(1, |n| n.get()) } else { threads };
    n.div_ceil(threads.min(n.div_ceil(MIN_ROWS_PER_THREAD)).max(1))
}

/// Runs `kernel` over consecutive shares of `share` rows, `parts[i]` holding what share i writes: on scoped
/// threads that end with the call (a pool's workers, rayon's, spin after their work and slowed the torch
/// product that follows by 2x, 6 -> 14 ms a view), the calling thread taking the first share.
fn run_shares<'p, K: BlockKernel>(kernel: &K, n: usize, share: usize, parts: Vec<K::Part<'p>>) {
    let run = move |(i, part): (usize, K::Part<'p>)| {
        let first = i * share;
        dispatch(kernel, first, share.min(n - first), part);
    };
    let mut parts = parts.into_iter().enumerate();
    let first = parts.next();
    std::thread::scope(|scope| {
        for part in parts {
            scope.spawn(move || run(part));
        }
        if let Some(part) = first {
            run(part);
        }
    });
}

/// The full encoding (up to `octaves`) of samples [first, first + valid) into table[f][lane] (rows
/// 0..encoding_width); lanes past `valid` repeat the last sample (computed, never stored).
#[inline(always)]
fn encode_block(points: &SamplePoints, first: usize, valid: usize, octaves: usize, table: &mut [Row]) {
    for d in 0..DIMS {
        let mut v = [0.0f32; LANES];
        for (lane, value) in v.iter_mut().enumerate() {
            let i = first + lane.min(valid - 1);
            let r = points.ray_index[i] as usize;
            *value = points.origins[r * DIMS + d] + points.t[i] * points.dirs[r * DIMS + d];
        }
        table[d] = v;
        let (mut s, mut c) = sincos(&v);
        for level in 0..octaves {
            table[DIMS * (1 + 2 * level) + d] = s;
            table[DIMS * (2 + 2 * level) + d] = c;
            for lane in 0..LANES {
                let (a, b) = (s[lane], c[lane]);
                s[lane] = 2.0 * a * b;
                c[lane] = b * b - a * a;
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
fn sincos(v: &Row) -> (Row, Row) {
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
pub(crate) mod testing {
    //! What the kernels' tests share: random inputs and the encoding in f64.
    use super::*;

    pub fn lcg(seed: u64, n: usize, scale: f32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
            })
            .collect()
    }

    /// Random rays [rays, 3] and `samples` depths in [1, 3], the samples of a ray together.
    pub struct Rays {
        pub origins: Vec<f32>,
        pub dirs: Vec<f32>,
        pub t: Vec<f32>,
        pub ray: Vec<i64>,
    }

    impl Rays {
        pub fn new(seed: u64, rays: usize, samples: usize) -> Self {
            Rays {
                origins: lcg(seed, rays * 3, 1.5),
                dirs: lcg(seed + 1, rays * 3, 1.0),
                t: lcg(seed + 2, samples, 1.0).iter().map(|v| 2.0 + v).collect(),
                ray: (0..samples).map(|i| (i * rays / samples.max(1)) as i64).collect(),
            }
        }

        pub fn points(&self) -> SamplePoints<'_> {
            SamplePoints { origins: &self.origins, dirs: &self.dirs, t: &self.t, ray_index: &self.ray }
        }
    }

    /// The full encoding of sample i in f64, libm sin/cos at every octave.
    pub fn gamma(points: &SamplePoints, i: usize, n_frequencies: usize) -> Vec<f64> {
        let r = points.ray_index[i] as usize;
        let p: Vec<f64> = (0..DIMS)
            .map(|d| points.origins[r * DIMS + d] as f64 + points.t[i] as f64 * points.dirs[r * DIMS + d] as f64)
            .collect();
        let mut gamma = p.clone();
        for level in 0..n_frequencies {
            let f = 2f64.powi(level as i32);
            gamma.extend(p.iter().map(|x| (f * x).sin()));
            gamma.extend(p.iter().map(|x| (f * x).cos()));
        }
        gamma
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn octaves_read_counts_only_encoding_features() {
        assert_eq!(octaves_read([0, 1, 2].into_iter(), 63), 0);
        assert_eq!(octaves_read([3, 8].into_iter(), 63), 1);
        assert_eq!(octaves_read([62, 70].into_iter(), 63), 10);
        assert_eq!(octaves_read([63, 64].into_iter(), 63), 0); // rows past the encoding: a layer's
    }

    #[test]
    fn the_fma_product_and_the_plain_one_agree() {
        let table: Vec<Row> = (0..9).map(|r| std::array::from_fn(|l| (r * LANES + l) as f32 * 0.01 - 0.5)).collect();
        let weights = testing::lcg(7, 5 * OUT_BLOCK, 1.0);
        let inputs = [8, 0, 3, 3, 5];
        let mut plain = [[0.25f32; LANES]; OUT_BLOCK];
        Plain::product(&weights, &inputs, &table, &mut plain);
        let mut fused = plain;
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            fused = [[0.25f32; LANES]; OUT_BLOCK];
            Fused::product(&weights, &inputs, &table, &mut fused); // the AVX2 registers
        }
        for jj in 0..OUT_BLOCK {
            for lane in 0..LANES {
                let want: f32 = 0.25 + (0..5).map(|k| weights[k * OUT_BLOCK + jj] * table[inputs[k]][lane]).sum::<f32>();
                assert!((plain[jj][lane] - want).abs() < 1e-5 && (fused[jj][lane] - want).abs() < 1e-5);
            }
        }
    }
}
