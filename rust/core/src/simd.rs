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

/// `exp(c * v)` in place, for `c * v <= 0` (kernel values).
///
/// `t = c v` is split as `t = k ln 2 + r` with `|r| <= ln2 / 2`; `exp(r)` is its Taylor
/// polynomial of degree 13 (truncation error below 3e-17 relative) and `2^k` is built in the
/// exponent bits. Arguments below -708 (results below 3e-308) give 0.
#[inline(always)]
fn exp_body(v: &mut [f64], c: f64) {
    const LOG2E: f64 = std::f64::consts::LOG2_E;
    // The split of ln 2 in the digits usually published for it (fdlibm); the literals round
    // to the intended float64 values, the extra digits only document them.
    #[allow(clippy::excessive_precision)]
    const LN2_HI: f64 = 6.931_471_803_691_238_164_9e-1;
    #[allow(clippy::excessive_precision)]
    const LN2_LO: f64 = 1.908_214_929_270_587_700_02e-10;
    const SHIFT: f64 = 6_755_399_441_055_744.0; // 1.5 * 2^52: adding it rounds to an integer
    const INV: [f64; 14] = [
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
    for x in v.iter_mut() {
        let t0 = c * *x;
        let t = if t0 < -708.0 { -708.0 } else { t0 };
        let kf = (t * LOG2E + SHIFT) - SHIFT;
        let r = (t - kf * LN2_HI) - kf * LN2_LO;
        let mut p = INV[13];
        for i in (0..13).rev() {
            p = p * r + INV[i];
        }
        // kf is an integer in [-1022, 0]; its bits after adding SHIFT hold it in the low word.
        let k = ((kf + SHIFT).to_bits() as i64).wrapping_sub(SHIFT.to_bits() as i64);
        let scale = f64::from_bits(((k + 1023) as u64) << 52);
        let e = p * scale;
        *x = if t0 < -708.0 { 0.0 } else { e };
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
unsafe fn exp_avx2(v: &mut [f64], c: f64) {
    exp_body(v, c)
}

/// Accumulators of [`sum_f32`]: four AVX2 vectors, so the additions' latency overlaps.
const SUM_LANES: usize = 16;

/// `sum_i x_i` of float32 values in float64 (each value exact), with a fixed order.
#[inline(always)]
fn sum_f32_body(x: &[f32]) -> f64 {
    let mut acc = [0.0f64; SUM_LANES];
    let cx = x.chunks_exact(SUM_LANES);
    let rx = cx.remainder();
    for a in cx {
        for l in 0..SUM_LANES {
            acc[l] += f64::from(a[l]);
        }
    }
    let mut tail = 0.0;
    for &a in rx {
        tail += f64::from(a);
    }
    let mut half = [0.0f64; SUM_LANES / 2];
    for l in 0..SUM_LANES / 2 {
        half[l] = acc[l] + acc[l + SUM_LANES / 2];
    }
    ((half[0] + half[4]) + (half[1] + half[5])) + ((half[2] + half[6]) + (half[3] + half[7])) + tail
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn sum_f32_avx2(x: &[f32]) -> f64 {
    sum_f32_body(x)
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

/// `sum_i x_i` of float32 values accumulated in float64, with a fixed summation order.
pub fn sum_f32(x: &[f32]) -> f64 {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU supports AVX2 (checked at run time).
        return unsafe { sum_f32_avx2(x) };
    }
    sum_f32_body(x)
}

/// `v <- exp(c v)` elementwise, for `c v <= 0`.
pub fn exp_scaled(v: &mut [f64], c: f64) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU supports AVX2 (checked at run time).
        return unsafe { exp_avx2(v, c) };
    }
    exp_body(v, c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_accurate_to_a_few_ulps() {
        let xs: Vec<f64> = (0..200_001).map(|i| i as f64 * 3.6e-3).collect();
        let mut v = xs.clone();
        exp_scaled(&mut v, -1.0);
        for (x, e) in xs.iter().zip(&v) {
            let want = if *x > 708.0 { 0.0 } else { (-x).exp() };
            assert!(
                (e - want).abs() <= 4.0 * f64::EPSILON * want,
                "x={x}: {e} vs {want}"
            );
        }
        let mut big = vec![0.0, 700.0, 708.5, 1e6];
        exp_scaled(&mut big, -1.0);
        assert_eq!(big[0], 1.0);
        assert!((big[1] - (-700.0f64).exp()).abs() <= 4.0 * f64::EPSILON * (-700.0f64).exp());
        assert_eq!(&big[2..], &[0.0, 0.0]);
    }

    #[test]
    fn sum_f32_is_exact_on_integers_and_paths_agree() {
        // integers below 2^24 are exact float32 values and their sums exact in float64
        let x: Vec<f32> = (0..1003).map(|i| ((i * 7919) % 65_536) as f32).collect();
        let want: i64 = (0..1003).map(|i| ((i * 7919) % 65_536) as i64).sum();
        assert_eq!(sum_f32(&x), want as f64);
        // a sum no float32 accumulator gets right: 2^24 then ones (each lost in float32)
        let mut y = vec![1.0f32; 64];
        y[0] = 16_777_216.0;
        assert_eq!(sum_f32(&y), 16_777_216.0 + 63.0);
        let z: Vec<f32> = (0..77).map(|i| (i as f32 * 0.37).sin()).collect();
        assert_eq!(sum_f32(&z), sum_f32_body(&z));
        let naive: f64 = z.iter().map(|&v| f64::from(v)).sum();
        assert!((sum_f32(&z) - naive).abs() < 1e-13);
        assert_eq!(sum_f32(&[]), 0.0);
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
