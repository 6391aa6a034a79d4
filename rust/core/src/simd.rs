//! Elementwise kernels written so that the compiler vectorises them, compiled twice: for the
//! baseline target and (chosen at run time) for AVX2. Neither version fuses multiplications
//! and additions, so both give bit-identical results.

/// Accumulators of the dot product (fixed, so the summation order never changes).
const LANES: usize = 8;

#[inline(always)]
fn dot_body(x: &[f64], y: &[f64]) -> f64 {
    let mut acc = [0.0f64; LANES];
    let cx = x.chunks_exact(LANES);
    let cy = y.chunks_exact(LANES);
    let (rx, ry) = (cx.remainder(), cy.remainder());
    for (a, b) in cx.zip(cy) {
        for l in 0..LANES {
            acc[l] += a[l] * b[l];
        }
    }
    let mut tail = 0.0;
    for (a, b) in rx.iter().zip(ry) {
        tail += a * b;
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

#[inline(always)]
fn sq_dist_body(x: &[f64], y: &[f64]) -> f64 {
    let mut acc = [0.0f64; LANES];
    let cx = x.chunks_exact(LANES);
    let cy = y.chunks_exact(LANES);
    let (rx, ry) = (cx.remainder(), cy.remainder());
    for (a, b) in cx.zip(cy) {
        for l in 0..LANES {
            let d = a[l] - b[l];
            acc[l] += d * d;
        }
    }
    let mut tail = 0.0;
    for (a, b) in rx.iter().zip(ry) {
        let d = a - b;
        tail += d * d;
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

/// `1/i!` for `i = 0..=13`: the Taylor coefficients of `exp` on the reduced argument.
const INV_FACTORIAL: [f64; 14] = [
    1.0,
    1.0,
    1.0 / 2.0,
    1.0 / 6.0,
    1.0 / 24.0,
    1.0 / 120.0,
    1.0 / 720.0,
    1.0 / 5040.0,
    1.0 / 40320.0,
    1.0 / 362880.0,
    1.0 / 3628800.0,
    1.0 / 39916800.0,
    1.0 / 479001600.0,
    1.0 / 6227020800.0,
];

/// The argument reduction of [`exp_body`] and [`expm1_body`]: `t = k ln 2 + r` with
/// `|r| <= ln 2 / 2`, for `t` in `[-708, 1]`; returns `(r, 2^k)`, `2^k` built in the exponent
/// bits.
#[inline(always)]
fn reduce(t: f64) -> (f64, f64) {
    const LOG2E: f64 = std::f64::consts::LOG2_E;
    // The split of ln 2 in the digits usually published for it (fdlibm); the literals round
    // to the intended float64 values, the extra digits only document them.
    #[allow(clippy::excessive_precision)]
    const LN2_HI: f64 = 6.931_471_803_691_238_164_9e-1;
    #[allow(clippy::excessive_precision)]
    const LN2_LO: f64 = 1.908_214_929_270_587_700_02e-10;
    const SHIFT: f64 = 6_755_399_441_055_744.0; // 1.5 * 2^52: adding it rounds to an integer
    let kf = (t * LOG2E + SHIFT) - SHIFT;
    let r = (t - kf * LN2_HI) - kf * LN2_LO;
    // kf is an integer in [-1022, 1]; its bits after adding SHIFT hold it in the low word.
    let k = ((kf + SHIFT).to_bits() as i64).wrapping_sub(SHIFT.to_bits() as i64);
    (r, f64::from_bits(((k + 1023) as u64) << 52))
}

/// `exp(-(v a) a)` in place, for `v >= 0` (kernel values).
///
/// `t = -(v a) a` is split by [`reduce`]; `exp(r)` is its Taylor polynomial of degree 13
/// (truncation error below 3e-17 relative) times `2^k`. Arguments below -708 (results below
/// 3e-308) give 0.
#[inline(always)]
fn exp_body(v: &mut [f64], a: f64) {
    for x in v.iter_mut() {
        let t0 = -((*x * a) * a);
        let (r, scale) = reduce(if t0 < -708.0 { -708.0 } else { t0 });
        let mut p = INV_FACTORIAL[13];
        for i in (0..13).rev() {
            p = p * r + INV_FACTORIAL[i];
        }
        *x = if t0 < -708.0 { 0.0 } else { p * scale };
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn dot_avx2(x: &[f64], y: &[f64]) -> f64 {
    dot_body(x, y)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn sq_dist_avx2(x: &[f64], y: &[f64]) -> f64 {
    sq_dist_body(x, y)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn exp_avx2(v: &mut [f64], a: f64) {
    exp_body(v, a)
}

/// `v <- shift expm1(((m - v) a) a)` for `(m - v) a^2 <= 1/8`: [`reduce`], then
/// `expm1(t) = 2^k expm1(r) + (2^k - 1)`, with `expm1(r) = r (1 + r/2 + r^2/6 + ...)` summed
/// without its leading 1, so small `t` keep their relative accuracy; `t < -708` gives
/// `-shift` (the exponential is 0).
#[inline(always)]
fn expm1_body(v: &mut [f64], a: f64, m: f64, shift: f64) {
    for x in v.iter_mut() {
        let t0 = ((m - *x) * a) * a;
        let (r, scale) = reduce(if t0 < -708.0 { -708.0 } else { t0 });
        let mut q = INV_FACTORIAL[13];
        for i in (1..13).rev() {
            q = q * r + INV_FACTORIAL[i];
        }
        let e = scale * (q * r) + (scale - 1.0);
        *x = shift * if t0 < -708.0 { -1.0 } else { e };
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn expm1_avx2(v: &mut [f64], a: f64, m: f64, shift: f64) {
    expm1_body(v, a, m, shift)
}

/// `v <- shift expm1(((m - v) a) a)` elementwise, for `(m - v) a^2 <= 1/8` (the RBF kernel
/// less its value at distance `m`, for wide bandwidths; see `kernel::TileKind::Rbf`).
pub fn expm1_scaled(v: &mut [f64], a: f64, m: f64, shift: f64) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU supports AVX2 (checked at run time).
        return unsafe { expm1_avx2(v, a, m, shift) };
    }
    expm1_body(v, a, m, shift)
}

/// Rows that [`row_means_f32`] sums together: independent additions that overlap.
const MEAN_ROWS: usize = 4;
/// Accumulators of each row's sum in [`row_means_f32`] (fixed, so the order never changes).
const MEAN_LANES: usize = 8;

/// One row's sum from its lane accumulators and its last `k mod MEAN_LANES` values.
#[inline(always)]
fn finish_row(acc: &[f64; MEAN_LANES], tail: &[f32]) -> f64 {
    let mut t = 0.0;
    for &a in tail {
        t += f64::from(a);
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + t
}

/// `out[i] = float32(sum_j x[i k + j] / k)`, the sums in float64 (each value exact). Each
/// row is summed in the same fixed order whatever rows it is grouped with: lane `l` adds the
/// values `j = l mod MEAN_LANES` in turn, then the lanes pairwise and the tail.
#[inline(always)]
fn row_means_body(x: &[f32], k: usize, out: &mut [f32]) {
    let k8 = k - k % MEAN_LANES;
    let kf = k as f64;
    let mut blocks = x.chunks_exact(MEAN_ROWS * k);
    let mut outs = out.chunks_exact_mut(MEAN_ROWS);
    for (block, o) in (&mut blocks).zip(&mut outs) {
        let mut acc = [[0.0f64; MEAN_LANES]; MEAN_ROWS];
        let mut j = 0;
        while j < k8 {
            for (r, a) in acc.iter_mut().enumerate() {
                let v: &[f32; MEAN_LANES] =
                    block[r * k + j..r * k + j + MEAN_LANES].try_into().unwrap();
                for l in 0..MEAN_LANES {
                    a[l] += f64::from(v[l]);
                }
            }
            j += MEAN_LANES;
        }
        for (r, a) in acc.iter().enumerate() {
            o[r] = (finish_row(a, &block[r * k + k8..(r + 1) * k]) / kf) as f32;
        }
    }
    for (row, o) in blocks
        .remainder()
        .chunks_exact(k)
        .zip(outs.into_remainder())
    {
        let mut a = [0.0f64; MEAN_LANES];
        for v in row[..k8].chunks_exact(MEAN_LANES) {
            for l in 0..MEAN_LANES {
                a[l] += f64::from(v[l]);
            }
        }
        *o = (finish_row(&a, &row[k8..]) / kf) as f32;
    }
}

/// [`row_means_body`] with AVX2 intrinsics (the compiler's vectorisation of the body shuffles
/// 128-bit halves): the same additions in the same order, so the same bits. Each row's eight
/// lanes are two vectors of four float64 sums. Only whole blocks of [`MEAN_ROWS`] rows: the
/// rows of `out` beyond the last whole block are left to the caller.
///
/// # Safety
/// The CPU must support AVX2; `x.len() == out.len() * k`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn row_means_avx2(x: &[f32], k: usize, out: &mut [f32]) {
    use std::arch::x86_64::{
        __m256d, _mm256_add_pd, _mm256_cvtps_pd, _mm256_setzero_pd, _mm256_storeu_pd, _mm_loadu_ps,
    };
    let k8 = k - k % MEAN_LANES;
    let kf = k as f64;
    let p = x.as_ptr();
    for (b, o) in out.chunks_exact_mut(MEAN_ROWS).enumerate() {
        let i = b * MEAN_ROWS;
        let mut lo: [__m256d; MEAN_ROWS] = [_mm256_setzero_pd(); MEAN_ROWS];
        let mut hi: [__m256d; MEAN_ROWS] = [_mm256_setzero_pd(); MEAN_ROWS];
        let mut j = 0;
        while j < k8 {
            for r in 0..MEAN_ROWS {
                // SAFETY: row i + r < n and j + 8 <= k8 <= k: inside x
                let q = p.add((i + r) * k + j);
                lo[r] = _mm256_add_pd(lo[r], _mm256_cvtps_pd(_mm_loadu_ps(q)));
                hi[r] = _mm256_add_pd(hi[r], _mm256_cvtps_pd(_mm_loadu_ps(q.add(4))));
            }
            j += MEAN_LANES;
        }
        for r in 0..MEAN_ROWS {
            let mut a = [0.0f64; MEAN_LANES];
            _mm256_storeu_pd(a.as_mut_ptr(), lo[r]);
            _mm256_storeu_pd(a.as_mut_ptr().add(4), hi[r]);
            o[r] = (finish_row(&a, &x[(i + r) * k + k8..(i + r + 1) * k]) / kf) as f32;
        }
    }
}

/// [`row_means_avx2`] with AVX-512: each row's eight lanes in one vector, in the same order
/// (lane `l` still adds the values `j = l mod 8`), so the same bits; whole blocks only.
///
/// # Safety
/// The CPU must support AVX-512F; `x.len() == out.len() * k`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn row_means_avx512(x: &[f32], k: usize, out: &mut [f32]) {
    use std::arch::x86_64::{
        __m512d, _mm256_loadu_ps, _mm512_add_pd, _mm512_cvtps_pd, _mm512_setzero_pd,
        _mm512_storeu_pd,
    };
    let k8 = k - k % MEAN_LANES;
    let kf = k as f64;
    let p = x.as_ptr();
    for (b, o) in out.chunks_exact_mut(MEAN_ROWS).enumerate() {
        let i = b * MEAN_ROWS;
        let mut acc: [__m512d; MEAN_ROWS] = [_mm512_setzero_pd(); MEAN_ROWS];
        let mut j = 0;
        while j < k8 {
            for (r, a) in acc.iter_mut().enumerate() {
                // SAFETY: row i + r < n and j + 8 <= k8 <= k: inside x
                let q = p.add((i + r) * k + j);
                *a = _mm512_add_pd(*a, _mm512_cvtps_pd(_mm256_loadu_ps(q)));
            }
            j += MEAN_LANES;
        }
        for (r, v) in acc.iter().enumerate() {
            let mut a = [0.0f64; MEAN_LANES];
            _mm512_storeu_pd(a.as_mut_ptr(), *v);
            o[r] = (finish_row(&a, &x[(i + r) * k + k8..(i + r + 1) * k]) / kf) as f32;
        }
    }
}

#[cfg(target_arch = "x86_64")]
fn has_avx2() -> bool {
    std::is_x86_feature_detected!("avx2")
}

/// Run a block compiled for AVX2 where the CPU has it (checked at run time) and for the
/// baseline target elsewhere: for loops over rows that the compiler vectorises, where the
/// baseline's 128-bit vectors (or scalar conversions) leave them several times slower.
///
/// The block is expanded twice, as two closures: one is the only call in [`run_avx2`] (a
/// function compiled with AVX2 enabled), where the compiler inlines it with whatever it
/// inlines in turn, the other is the baseline path. (A single closure called from both
/// branches had two callers, was left out of line and ran the baseline code; a `perf`
/// profile shows the row passes inside `run_avx2` now.)
/// Neither version fuses multiplications and additions, and vectorising never reorders a sum
/// (no reassociation without fast-math), so both give the same bits.
macro_rules! with_avx2 {
    ($($body:tt)*) => {
        if $crate::simd::use_avx2() {
            // SAFETY: the CPU supports AVX2 (checked at run time by `use_avx2`).
            unsafe { $crate::simd::run_avx2(|| { $($body)* }) }
        } else {
            $crate::simd::run_baseline(|| { $($body)* })
        }
    };
}
pub(crate) use with_avx2;

/// Whether [`with_avx2!`] takes its AVX2 branch.
#[inline(always)]
pub(crate) fn use_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    return has_avx2() && !baseline_forced();
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// `f()` inside a function compiled with AVX2 enabled (see [`with_avx2!`]).
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn run_avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// `f()` (the other branch of [`with_avx2!`]).
#[inline(always)]
pub(crate) fn run_baseline<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// Elsewhere [`use_avx2`] is false and this is never called.
#[cfg(not(target_arch = "x86_64"))]
pub(crate) unsafe fn run_avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// Tests set this to run [`with_avx2!`]'s blocks as the baseline build does (the two must give
/// the same bits).
#[cfg(test)]
pub(crate) static FORCE_BASELINE: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

#[inline(always)]
fn baseline_forced() -> bool {
    #[cfg(test)]
    return FORCE_BASELINE.load(std::sync::atomic::Ordering::Relaxed);
    #[cfg(not(test))]
    false
}

/// `sum_i x_i y_i` with a fixed summation order.
pub fn dot(x: &[f64], y: &[f64]) -> f64 {
    assert_eq!(x.len(), y.len());
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU supports AVX2 (checked at run time).
        return unsafe { dot_avx2(x, y) };
    }
    dot_body(x, y)
}

/// `sum_i (x_i - y_i)^2` with a fixed summation order (symmetric in `x` and `y` to the bit).
pub fn sq_dist(x: &[f64], y: &[f64]) -> f64 {
    assert_eq!(x.len(), y.len());
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU supports AVX2 (checked at run time).
        return unsafe { sq_dist_avx2(x, y) };
    }
    sq_dist_body(x, y)
}

/// The mean of each row of a row-major `(n, k)` float32 matrix `x`, into `out` (`n` values):
/// float64 sums (every value exact), each divided by `k` and rounded once to float32. Rows
/// are summed four at a time in a fixed order, so a row's mean does not depend on the others.
/// Panics unless `k >= 1` and `x.len() == out.len() * k`.
pub fn row_means_f32(x: &[f32], k: usize, out: &mut [f32]) {
    assert!(
        k >= 1 && x.len() == out.len() * k,
        "row_means_f32: shapes do not agree"
    );
    #[cfg(target_arch = "x86_64")]
    if use_avx2() {
        // whole blocks of rows by intrinsics, the last rows by the body (the same order)
        let whole = out.len() - out.len() % MEAN_ROWS;
        let (head, tail) = out.split_at_mut(whole);
        if std::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F (checked at run time); shapes checked above.
            unsafe { row_means_avx512(&x[..whole * k], k, head) };
        } else {
            // SAFETY: the CPU supports AVX2 (checked at run time); shapes checked above.
            unsafe { row_means_avx2(&x[..whole * k], k, head) };
        }
        return row_means_body(&x[whole * k..], k, tail);
    }
    row_means_body(x, k, out)
}

/// `v <- exp(-(v a) a)` elementwise, for `v >= 0` and finite `a >= 0`. The scale enters as
/// two factors, so `a^2` never overflows: `v = 0` gives 1 and `v > 0` gives 0 once the
/// exponent passes -708, whatever the size of `a`.
pub fn exp_scaled(v: &mut [f64], a: f64) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU supports AVX2 (checked at run time).
        return unsafe { exp_avx2(v, a) };
    }
    exp_body(v, a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expm1_is_accurate_to_a_few_ulps_relative_near_zero_and_far() {
        // squared distances v with m = 0.125, a = 1: t = m - v from 0.125 down to -800
        let mut v: Vec<f64> = (0..100_001)
            .map(|i| (i as f64 * 8e-3) * (i as f64 * 1e-3))
            .chain([0.0, 1e-300, 1e-12, 0.125, 0.125 + 1e-15])
            .collect();
        // the same t as the kernel forms it, against the standard library's expm1
        let ts: Vec<f64> = v.iter().map(|x| 0.125 - x).collect();
        expm1_scaled(&mut v, 1.0, 0.125, 2.0);
        for (t, e) in ts.iter().zip(&v) {
            let want = 2.0 * if *t < -708.0 { -1.0 } else { t.exp_m1() };
            assert!(
                (e - want).abs() <= 4.0 * f64::EPSILON * want.abs(),
                "t={t}: {e} vs {want}"
            );
        }
    }

    #[test]
    fn exp_is_accurate_to_a_few_ulps() {
        let xs: Vec<f64> = (0..200_001).map(|i| i as f64 * 3.6e-3).collect();
        let mut v = xs.clone();
        exp_scaled(&mut v, 1.0);
        for (x, e) in xs.iter().zip(&v) {
            let want = if *x > 708.0 { 0.0 } else { (-x).exp() };
            assert!(
                (e - want).abs() <= 4.0 * f64::EPSILON * want,
                "x={x}: {e} vs {want}"
            );
        }
        let mut big = vec![0.0, 700.0, 708.5, 1e6];
        exp_scaled(&mut big, 1.0);
        assert_eq!(big[0], 1.0);
        assert!((big[1] - (-700.0f64).exp()).abs() <= 4.0 * f64::EPSILON * (-700.0f64).exp());
        assert_eq!(&big[2..], &[0.0, 0.0]);
        // The largest scale (a tiny bandwidth): 1 at distance 0, 0 at every positive distance,
        // the smallest subnormal included; no nan from 0 * inf.
        let mut tiny = vec![0.0, 5e-324, 1e-300, 1.0, 1e300];
        exp_scaled(&mut tiny, f64::MAX);
        assert_eq!(tiny, [1.0, 0.0, 0.0, 0.0, 0.0]);
    }

    /// The means of `rows` (n x k), each row through the kernel on its own (n = 1).
    fn one_by_one(x: &[f32], k: usize) -> Vec<f32> {
        x.chunks_exact(k)
            .map(|row| {
                let mut o = [0.0f32];
                row_means_f32(row, k, &mut o);
                o[0]
            })
            .collect()
    }

    #[test]
    fn row_means_sum_in_float64_and_do_not_depend_on_grouping_or_path() {
        // integers below 2^24 are exact float32 values and their sums exact in float64
        for &(n, k) in &[(1, 1), (3, 7), (4, 8), (9, 64), (13, 37), (6, 203)] {
            let x: Vec<f32> = (0..n * k).map(|i| ((i * 7919) % 65_536) as f32).collect();
            let mut got = vec![0.0f32; n];
            row_means_f32(&x, k, &mut got);
            for (r, g) in got.iter().enumerate() {
                let sum: i64 = (0..k).map(|j| ((r * k + j) * 7919 % 65_536) as i64).sum();
                assert_eq!(*g, (sum as f64 / k as f64) as f32, "n={n} k={k} row {r}");
            }
            // a row's mean is the same alone or in a block of four, AVX2 or baseline
            let y: Vec<f32> = (0..n * k).map(|i| (i as f32 * 0.37).sin() * 1e3).collect();
            let mut block = vec![0.0f32; n];
            row_means_f32(&y, k, &mut block);
            assert_eq!(block, one_by_one(&y, k));
            FORCE_BASELINE.store(true, std::sync::atomic::Ordering::Relaxed);
            let mut base = vec![0.0f32; n];
            row_means_f32(&y, k, &mut base);
            FORCE_BASELINE.store(false, std::sync::atomic::Ordering::Relaxed);
            assert_eq!(block, base);
            #[cfg(target_arch = "x86_64")]
            if has_avx2() {
                // the AVX2 kernel, which a CPU with AVX-512 does not take above
                let whole = n - n % MEAN_ROWS;
                let mut v2 = vec![0.0f32; whole];
                // SAFETY: the CPU supports AVX2; y has at least `whole` rows of k values
                unsafe { row_means_avx2(&y[..whole * k], k, &mut v2) };
                assert_eq!(block[..whole], v2[..]);
            }
            for (r, b) in block.iter().enumerate() {
                let naive: f64 = y[r * k..(r + 1) * k].iter().map(|&v| f64::from(v)).sum();
                assert_eq!(*b, (naive / k as f64) as f32, "row {r}");
            }
        }
        // a sum no float32 accumulator gets right: 2^24 then ones (each lost in float32)
        let mut z = vec![1.0f32; 5 * 64];
        z[64] = 16_777_216.0;
        let mut got = vec![0.0f32; 5];
        row_means_f32(&z, 64, &mut got);
        assert_eq!(got[1], ((16_777_216.0 + 63.0) / 64.0) as f32);
        assert_eq!(got[0], 1.0);
    }

    #[test]
    fn dot_paths_agree_and_match_naive() {
        let x: Vec<f64> = (0..1003).map(|i| (i as f64 * 0.37).sin()).collect();
        let y: Vec<f64> = (0..1003).map(|i| (i as f64 * 0.11).cos()).collect();
        let naive: f64 = x.iter().zip(&y).map(|(a, b)| a * b).sum();
        assert!((dot(&x, &y) - naive).abs() < 1e-12);
        assert_eq!(dot(&x, &y), dot_body(&x, &y));
        let naive: f64 = x.iter().zip(&y).map(|(a, b)| (a - b) * (a - b)).sum();
        assert!((sq_dist(&x, &y) - naive).abs() < 1e-12);
        assert_eq!(sq_dist(&x, &y), sq_dist_body(&x, &y));
        assert_eq!(sq_dist(&x, &y), sq_dist(&y, &x));
    }
}
