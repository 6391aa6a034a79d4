//! Column centring and matrix products that accumulate in float64.
//!
//! Inputs arrive as float32 or float64 views of any layout. float32 data are centred (with the
//! column means computed in float64) and multiplied in float32 over blocks of
//! [`Real::REDUCTION_BLOCK`] rows; each block's partial product is added to a float64
//! accumulator. A block of 4096 products has a rounding error of order `sqrt(4096) * 2^-24`
//! relative to the block's sum of absolute products, far below the 1e-5 that float32 inputs
//! can carry, while the matrix product itself runs at the float32 speed of the machine.

use faer::linalg::matmul::triangular::{self, BlockStructure};
use faer::{Accum, MatMut, MatRef, Par};
use ndarray::{Array1, Array2, ArrayView2, ArrayViewMut2, Axis, Zip};
use rayon::prelude::*;

/// Elements per chunk in deterministic parallel reductions (independent of the thread count).
pub const CHUNK: usize = 1 << 15;

/// The real scalar types congruence computes with.
pub trait Real: faer::traits::ComplexField + Copy + Send + Sync + PartialOrd + 'static {
    /// Rows reduced in this type before a partial product is added in float64.
    const REDUCTION_BLOCK: usize;
    fn to_f64(self) -> f64;
    fn from_f64(v: f64) -> Self;
    fn one() -> Self;
}

impl Real for f64 {
    const REDUCTION_BLOCK: usize = usize::MAX;
    #[inline]
    fn to_f64(self) -> f64 {
        self
    }
    #[inline]
    fn from_f64(v: f64) -> Self {
        v
    }
    fn one() -> Self {
        1.0
    }
}

impl Real for f32 {
    const REDUCTION_BLOCK: usize = 4096;
    #[inline]
    fn to_f64(self) -> f64 {
        self as f64
    }
    #[inline]
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    fn one() -> Self {
        1.0
    }
}

/// A borrowed (n, p) input in either supported precision.
#[derive(Clone, Copy, Debug)]
pub enum Input<'a> {
    F32(ArrayView2<'a, f32>),
    F64(ArrayView2<'a, f64>),
}

impl Input<'_> {
    pub fn nrows(&self) -> usize {
        match self {
            Input::F32(a) => a.nrows(),
            Input::F64(a) => a.nrows(),
        }
    }
    pub fn ncols(&self) -> usize {
        match self {
            Input::F32(a) => a.ncols(),
            Input::F64(a) => a.ncols(),
        }
    }
}

/// A faer view of an ndarray view (no copy; any strides).
pub fn faer_ref<'a, T: Real>(a: &ArrayView2<'a, T>) -> MatRef<'a, T> {
    let s = a.strides();
    // SAFETY: the pointer, shape and strides describe the memory of a live ndarray view.
    unsafe { MatRef::from_raw_parts(a.as_ptr(), a.nrows(), a.ncols(), s[0], s[1]) }
}

fn par() -> Par {
    Par::rayon(rayon::current_num_threads().max(1))
}

/// The threads of one product: every thread of the pool, or the calling thread alone (for
/// products run side by side, one per task). faer splits a product over its output, never
/// over the reduction, so both give the same bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Threads {
    All,
    One,
}

impl Threads {
    fn par(self) -> Par {
        match self {
            Threads::All => par(),
            Threads::One => Par::Seq,
        }
    }
}

/// Columns of `x` minus their means, as a new C-ordered array of the same precision, with the
/// means computed in float64. A column whose entries are all equal becomes exactly zero.
pub fn centre_columns<T: Real>(x: ArrayView2<T>) -> Array2<T> {
    let mut out = Array2::<T>::from_elem(x.dim(), T::from_f64(0.0));
    centre_columns_into(x, out.view_mut());
    out
}

/// [`centre_columns`] into `out` (same shape; each row of `out` contiguous, e.g. a block of
/// columns of a larger C-ordered array).
pub fn centre_columns_into<T: Real>(x: ArrayView2<T>, out: ArrayViewMut2<T>) {
    centre_into(x, out, false);
}

/// The column statistics of a block of rows that [`centre_rows_in_place`] removes.
pub struct RowBlockStats {
    /// `mu + c` is each column's mean: `mu` the float64 mean, `c` the mean of the residuals
    /// `x - mu` (its rounding error; zero in exact arithmetic)
    pub mu: Vec<f64>,
    pub c: Vec<f64>,
    /// column minima and maxima before centring; NaN for a column holding a NaN
    pub lo: Vec<f64>,
    pub hi: Vec<f64>,
}

/// Centre the columns of the row-major `(n, p)` float64 block `z` (`n >= 1`) in place by the
/// corrected two-pass rule, in two or three sweeps over the rows (each row contiguous, the
/// column statistics vectorised across it):
///
/// 1. column minima, maxima and sums: `mu = sum / n`;
/// 2. `z <- z - mu`, and the residual sums: `c = sum(z - mu) / n`;
/// 3. with `exact`, `z <- z - c`, so the columns sum to zero to working precision even for
///    large offsets; without it the caller corrects the products (`Z^T Z - n c c^T`).
///
/// A NaN makes its column's `lo` and `hi` NaN (an infinity shows in them as itself), so a
/// caller sees every non-finite column in the extremes; `z` is then left as it was (no
/// centring, `c` zero), for the caller to report the offending values.
pub fn centre_rows_in_place(mut z: ArrayViewMut2<f64>, exact: bool) -> RowBlockStats {
    let (n, p) = z.dim();
    assert!(n >= 1, "centre_rows_in_place: no rows");
    let mut lo = vec![f64::INFINITY; p];
    let mut hi = vec![f64::NEG_INFINITY; p];
    let mut sum = vec![0.0f64; p];
    crate::simd::with_avx2! {
        for row in z.rows() {
            let row = row.to_slice().expect("centre_rows_in_place: rows must be contiguous");
            for (((v, l), h), s) in row.iter().zip(&mut lo).zip(&mut hi).zip(&mut sum) {
                *l = if *v < *l { *v } else { *l };
                *h = if *v > *h { *v } else { *h };
                *s += *v;
            }
        }
    }
    let nf = n as f64;
    let mu: Vec<f64> = sum.iter().map(|s| s / nf).collect();
    for ((l, h), s) in lo.iter_mut().zip(&mut hi).zip(&sum) {
        if s.is_nan() {
            // a NaN (or infinities of both signs): shown in the extremes
            *l = f64::NAN;
            *h = f64::NAN;
        }
    }
    if lo.iter().chain(&hi).any(|v| !v.is_finite()) {
        return RowBlockStats {
            mu,
            c: vec![0.0; p],
            lo,
            hi,
        };
    }
    let mut res = vec![0.0f64; p];
    crate::simd::with_avx2! {
        for mut row in z.rows_mut() {
            let row = row.as_slice_mut().expect("centre_rows_in_place: rows must be contiguous");
            for ((v, m), r) in row.iter_mut().zip(&mu).zip(&mut res) {
                *v -= *m;
                *r += *v;
            }
        }
    }
    // one row: mu is the row itself, so the residuals and c are exactly zero
    let c: Vec<f64> = res.iter().map(|r| r / nf).collect();
    if exact {
        crate::simd::with_avx2! {
            for mut row in z.rows_mut() {
                let row = row.as_slice_mut().expect("centre_rows_in_place: rows must be contiguous");
                for (v, cc) in row.iter_mut().zip(&c) {
                    *v -= *cc;
                }
            }
        }
    }
    RowBlockStats { mu, c, lo, hi }
}

/// Columns of `x` minus their means, multiplied by `2^-e` and stored in `out`; returns `e`.
///
/// `e` is chosen from the largest column range `r = max_j (max_i x_ij - min_i x_ij)` so that
/// every centred entry lies in `[-1, 1]` (`r 2^-e` in `[1/2, 1)`; `e = 0` for a constant
/// input). The centring and the scaling are done in float64 before rounding to `T`, and a
/// power-of-two factor is exact, so the result is the centred matrix itself, up to one
/// rounding, at a magnitude where neither float32 nor float64 products overflow or lose their
/// dominant terms to underflow, whatever the magnitude or the offset of the input. Statistics
/// that are homogeneous in the data recover their value by the exact factor `2^(d e)`
/// ([`ldexp`]); scale-invariant ones need nothing.
pub fn centre_columns_normalised_into<T: Real, U: Real>(
    x: ArrayView2<T>,
    out: ArrayViewMut2<U>,
) -> i32 {
    centre_into(x, out, true)
}

/// `2^k` for `|k| <= 1022` (a normal float64, built in the exponent bits).
fn pow2(k: i32) -> f64 {
    debug_assert!((-1022..=1023).contains(&k));
    f64::from_bits(((k + 1023) as u64) << 52)
}

/// `v 2^k`, exact unless the result itself overflows (`+-inf`) or is subnormal: the factor is
/// applied in steps of at most `2^1000`, all in the same direction.
pub fn ldexp(mut v: f64, mut k: i64) -> f64 {
    while k != 0 && v != 0.0 && v.is_finite() {
        let step = k.clamp(-1000, 1000);
        v *= pow2(step as i32);
        k -= step;
    }
    v
}

/// The exponent `e` with `r 2^-e` in `[1/2, 1)` for a finite `r > 0`.
fn exponent_above(r: f64) -> i32 {
    let bits = (r.to_bits() >> 52) & 0x7ff;
    if bits == 0 {
        // Subnormal: scale up first (exact).
        return exponent_above(r * pow2(600)) - 600;
    }
    bits as i32 - 1022
}

/// Rows per task of the column passes (centring, column sums); fixed, so that the partial
/// sums, added in block order, do not depend on the thread count.
const COL_ROWS: usize = 256;

/// The column means of `x` and the power-of-two factor of [`centre_into`]: `(mean, e, s1,
/// s2)`, the centred value of `x_ij` being `(x_ij - mean_j) s1 s2` with `s1 s2 = 2^-e` (two
/// exact steps, so that `e` may reach the whole float64 exponent range).
fn centring<T: Real>(x: ArrayView2<T>, normalise: bool) -> (Vec<f64>, i32, f64, f64) {
    let (n, p) = x.dim();
    // Partial column sums, minima and maxima over fixed blocks of rows, combined in order.
    struct Part {
        sum: Vec<f64>,
        min: Vec<f64>,
        max: Vec<f64>,
    }
    let parts: Vec<Part> = (0..n.div_ceil(COL_ROWS))
        .into_par_iter()
        .map(|b| {
            let mut part = Part {
                sum: vec![0.0; p],
                min: vec![f64::INFINITY; p],
                max: vec![f64::NEG_INFINITY; p],
            };
            let mut buf = vec![0.0f64; p];
            crate::simd::with_avx2! {
                for i in (b * COL_ROWS)..((b + 1) * COL_ROWS).min(n) {
                    let row = x.row(i);
                    match row.as_slice() {
                        Some(r) => buf.iter_mut().zip(r).for_each(|(o, v)| *o = v.to_f64()),
                        None => buf
                            .iter_mut()
                            .zip(row.iter())
                            .for_each(|(o, v)| *o = v.to_f64()),
                    }
                    for (((s, lo), hi), &v) in part
                        .sum
                        .iter_mut()
                        .zip(&mut part.min)
                        .zip(&mut part.max)
                        .zip(&buf)
                    {
                        *s += v;
                        // min/max rather than a comparison and a select, whose store the
                        // compiler makes conditional (a masked store, several times slower
                        // per element on AMD cores). Both skip a NaN; only the sign of a
                        // zero extreme may differ, which no range or mean depends on.
                        *lo = lo.min(v);
                        *hi = hi.max(v);
                    }
                }
            }
            part
        })
        .collect();
    let mut mean = vec![0.0f64; p];
    let mut lo = vec![f64::INFINITY; p];
    let mut hi = vec![f64::NEG_INFINITY; p];
    for part in &parts {
        for j in 0..p {
            mean[j] += part.sum[j];
            lo[j] = lo[j].min(part.min[j]);
            hi[j] = hi[j].max(part.max[j]);
        }
    }
    let mut range = 0.0f64;
    for j in 0..p {
        mean[j] = if lo[j] == hi[j] {
            lo[j]
        } else {
            mean[j] / n as f64
        };
        let r = hi[j] - lo[j];
        range = if r > range { r } else { range };
    }
    // |x_ij - mean_j| <= range; the factor 2^-e is applied as two exact steps so that e may
    // reach the whole float64 exponent range.
    let e = if normalise && range > 0.0 && range.is_finite() {
        exponent_above(range)
    } else {
        0
    };
    (mean, e, pow2(-e / 2), pow2(-(e - e / 2)))
}

fn centre_into<T: Real, U: Real>(
    x: ArrayView2<T>,
    mut out: ArrayViewMut2<U>,
    normalise: bool,
) -> i32 {
    assert_eq!(x.dim(), out.dim(), "centre_columns_into: shapes differ");
    let (mean, e, s1, s2) = centring(x, normalise);
    Zip::from(out.rows_mut())
        .and(x.rows())
        .par_for_each(|mut o, r| {
            centre_row(
                r,
                &mean,
                (s1, s2),
                o.as_slice_mut().expect("standard layout"),
            );
        });
    e
}

/// One row of the centred, normalised matrix of [`centring`]'s `(mean, s1, s2)`:
/// `out_j = (x_j - mean_j) s1 s2`, formed in float64 and then rounded to `U`. Inlined, so
/// that it is compiled for AVX2 inside [`crate::simd::with_avx2!`] blocks.
#[inline(always)]
fn centre_row<T: Real, U: Real>(
    row: ndarray::ArrayView1<T>,
    mean: &[f64],
    (s1, s2): (f64, f64),
    out: &mut [U],
) {
    let value = |v: &T, m: &f64| U::from_f64((v.to_f64() - m) * s1 * s2);
    match row.as_slice() {
        Some(r) => {
            for ((o, v), m) in out.iter_mut().zip(r).zip(mean) {
                *o = value(v, m);
            }
        }
        None => {
            for ((o, v), m) in out.iter_mut().zip(row.iter()).zip(mean) {
                *o = value(v, m);
            }
        }
    }
}

/// One layer prepared for the float32 Gram route without a float64 copy of its centred
/// features (half the memory and the writes): see [`normalised_f32`].
pub struct NormalisedF32 {
    /// The centred features times `2^-exp`, rounded to float32.
    pub x32: Array2<f32>,
    pub exp: i32,
    /// Of the float64 centred features `Xc` (times `2^-exp`) that `x32` rounds: the squared row
    /// norms, the row sums `Xc (Xc^T 1)` of `Xc Xc^T`, and the largest magnitude.
    pub sq: Array1<f64>,
    pub row_sums: Array1<f64>,
    pub max_abs: f64,
}

/// [`Centred::normalised`] rounded to float32, with the float64 statistics of the float64
/// values that the float32 Gram route needs, computed as those values are formed (each row
/// of `Xc` is formed twice, in a row buffer, and never stored). `x32` has the same bits as
/// rounding the float64 copy; the column sums are added in the order of [`col_sums`], and the
/// norms and row sums are float64 dot products (in another order than [`row_sq_norms`] and
/// [`mat_vec`]). All passes run over fixed blocks of rows, so nothing depends on the thread
/// count.
pub fn normalised_f32(x: Input) -> NormalisedF32 {
    match x {
        Input::F32(a) => normalised_f32_of(a),
        Input::F64(a) => normalised_f32_of(a),
    }
}

fn normalised_f32_of<T: Real>(x: ArrayView2<T>) -> NormalisedF32 {
    let (n, p) = x.dim();
    let (mean, exp, s1, s2) = centring(x, true);
    let mut x32 = Array2::<f32>::zeros((n, p));
    let pass = centred_norms(x, &mean, (s1, s2), Some(&mut x32), false);
    let row_sums = centred_row_sums(x, &mean, (s1, s2), &pass.sums);
    NormalisedF32 {
        x32,
        exp,
        sq: pass.sq,
        row_sums,
        max_abs: pass.max_abs,
    }
}

/// What pass 1 ([`centred_norms`]) gives: of the centred, normalised rows, the squared norms,
/// the column sums, the largest magnitude, and (when asked for) each row's product with the
/// means, `xc_i . mu` (in the normalised unit).
struct Pass1 {
    sq: Array1<f64>,
    sums: Vec<f64>,
    max_abs: f64,
    mu_dots: Vec<f64>,
}

/// Pass 1 of the statistics of the centred, normalised rows of [`centring`]'s `(mean, s1,
/// s2)`, over blocks of [`COL_ROWS`] rows, each row formed in a float64 buffer: the squared
/// norms, the column sums (added row by row in block order, as [`col_sums`]), the largest
/// magnitude, and with `mu_dots` the products with the means; with `x32`, the rows rounded to
/// float32 are written there.
fn centred_norms<T: Real>(
    x: ArrayView2<T>,
    mean: &[f64],
    s: (f64, f64),
    x32: Option<&mut Array2<f32>>,
    mu_dots: bool,
) -> Pass1 {
    let (n, p) = x.dim();
    let mut sq = Array1::<f64>::zeros(n);
    let block = |b: usize,
                 mut sqs: ndarray::ArrayViewMut1<f64>,
                 mut rows32: Option<ArrayViewMut2<f32>>|
     -> (Vec<f64>, f64, Vec<f64>) {
        let mut buf = vec![0.0f64; p];
        let mut acc = vec![0.0f64; p];
        let mut dots = Vec::with_capacity(if mu_dots { sqs.len() } else { 0 });
        // Column-wise largest magnitudes (element-wise, so the loop vectorises).
        let mut top = vec![0.0f64; p];
        crate::simd::with_avx2! {
            for (r, s_out) in sqs.iter_mut().enumerate() {
                centre_row(x.row(b * COL_ROWS + r), mean, s, &mut buf);
                if let Some(rows32) = rows32.as_mut() {
                    let mut o = rows32.row_mut(r);
                    let o = o.as_slice_mut().expect("standard layout");
                    o.iter_mut().zip(&buf).for_each(|(o, &v)| *o = v as f32);
                }
                for ((a, t), &v) in acc.iter_mut().zip(&mut top).zip(&buf) {
                    *a += v;
                    let m = v.abs();
                    *t = t.max(m); // (not a select: see `centring`)
                }
                *s_out = crate::simd::dot(&buf, &buf);
                if mu_dots {
                    dots.push(crate::simd::dot(&buf, mean));
                }
            }
        }
        (acc, top.into_iter().fold(0.0, f64::max), dots)
    };
    let parts: Vec<(Vec<f64>, f64, Vec<f64>)> = match x32 {
        Some(x32) => x32
            .axis_chunks_iter_mut(Axis(0), COL_ROWS)
            .into_par_iter()
            .zip(sq.axis_chunks_iter_mut(Axis(0), COL_ROWS))
            .enumerate()
            .map(|(b, (rows32, sqs))| block(b, sqs, Some(rows32)))
            .collect(),
        None => sq
            .axis_chunks_iter_mut(Axis(0), COL_ROWS)
            .into_par_iter()
            .enumerate()
            .map(|(b, sqs)| block(b, sqs, None))
            .collect(),
    };
    let mut sums = vec![0.0f64; p];
    let mut max_abs = 0.0f64;
    let mut all_dots = Vec::with_capacity(if mu_dots { n } else { 0 });
    for (part, top, dots) in &parts {
        sums.iter_mut().zip(part).for_each(|(s, v)| *s += v);
        max_abs = max_abs.max(*top);
        all_dots.extend_from_slice(dots);
    }
    Pass1 {
        sq,
        sums,
        max_abs,
        mu_dots: all_dots,
    }
}

/// Pass 2: the row sums `Xc sums` of `Xc Xc^T` (`sums` the column sums of pass 1), each
/// centred row formed again in a buffer.
fn centred_row_sums<T: Real>(
    x: ArrayView2<T>,
    mean: &[f64],
    s: (f64, f64),
    sums: &[f64],
) -> Array1<f64> {
    let p = x.ncols();
    let mut row_sums = Array1::<f64>::zeros(x.nrows());
    row_sums
        .axis_chunks_iter_mut(Axis(0), COL_ROWS)
        .into_par_iter()
        .enumerate()
        .for_each(|(b, mut out)| {
            let mut buf = vec![0.0f64; p];
            crate::simd::with_avx2! {
                for (r, o) in out.iter_mut().enumerate() {
                    centre_row(x.row(b * COL_ROWS + r), mean, s, &mut buf);
                    *o = crate::simd::dot(&buf, sums);
                }
            }
        });
    row_sums
}

/// How far the column means may lie from the origin for [`Shifted`]: at most `SHIFT_RATIO`
/// times `mean_i ||xc_i||^2` in `||mean||^2` (post-ReLU features sit near 1.75, Gaussian ones
/// near 0).
const SHIFT_RATIO: f64 = 4.0;

/// A layer whose Gram blocks are centred as they are formed, with no centred copy.
///
/// `Xc Xc^T` is formed from the rows `x_i` themselves: with `mu` the column means,
/// `xc_i . xc_j = x_i . x_j - x_i . mu - xc_j . mu`, the product in the input's precision
/// (float32 products are the float32 Gram route's, certified by its error estimate with the
/// rows' own norms, [`Shifted::max_sq`]) and the two corrections in float64, once per row,
/// then times the exact factor `2^-2e` of [`Centred::normalised`]. Each entry's rounding error
/// is at most `gamma_p (|x_i| + |mu|) (|x_j| + |mu|)`, against `gamma_p |xc_i| |xc_j|` for the
/// centred copy; the form is used only where the means are small beside the spread
/// (`|mu|^2 <= 4 mean |xc_i|^2`, a factor of at most 25 on that bound: about 1e-13 relative
/// in float64 at p = 768) and no product can overflow or underflow. Elsewhere (large offsets,
/// constant or tiny layers, rows that are not contiguous) the layer is centred into a copy.
/// Saves the copy's memory (`8 n p` or `4 n p` bytes per layer) and writing it.
pub struct Shifted<'a> {
    x: Input<'a>,
    mean: Vec<f64>,
    /// `x_i . mu` and `xc_i . mu`, per row (`mu` the means, `xc_i = x_i - mu`).
    row_mu: Vec<f64>,
    col_mu: Vec<f64>,
    /// The normalising factor `2^-e` as two exact steps (see [`centring`]), and `2^-2e`.
    s: (f64, f64),
    scale: f64,
    /// As [`normalised_f32`]: of the centred, normalised rows, the squared norms and the row
    /// sums of `Xc Xc^T`.
    pub exp: i32,
    pub sq: Array1<f64>,
    pub row_sums: Array1<f64>,
    /// The largest squared norm of a row itself (not centred), times `2^-2e`.
    pub max_sq: f64,
}

impl<'a> Shifted<'a> {
    /// The shifted form of `x`, or `None` where it is not used (see [`Shifted`]).
    pub fn new(x: Input<'a>) -> Option<Self> {
        // Limits on the largest squared row norm and on the mean one, in the product's
        // precision (see `of`).
        match x {
            Input::F64(v) => Self::of(v, x, 1e300, 1e-200),
            Input::F32(v) => Self::of(v, x, 1e36, 1e-30),
        }
    }

    fn of<T: Real>(
        v: ArrayView2<'a, T>,
        x: Input<'a>,
        top_max: f64,
        mean_min: f64,
    ) -> Option<Self> {
        let (n, p) = v.dim();
        if n == 0 || p == 0 || v.strides()[1] != 1 {
            return None;
        }
        let (mean, exp, s1, s2) = centring(v, true);
        let scale = (s1 * s2) * (s1 * s2);
        if !scale.is_normal() {
            return None;
        }
        // One pass: the centred rows' norms and sums, and their products with the means.
        // With `xc_i . mu = 2^e (buffer . mu)` (the buffer is the centred row times the exact
        // factor 2^-e), `x_i . mu = xc_i . mu + |mu|^2` and `|x_i|^2 = |xc_i|^2 + 2 xc_i . mu
        // + |mu|^2`, each within a few ulps of its terms.
        let pass = centred_norms(v, &mean, (s1, s2), None, true);
        let mm = crate::simd::dot(&mean, &mean);
        let unit = 1.0 / (s1 * s2);
        let col_mu: Vec<f64> = pass.mu_dots.iter().map(|d| d * unit).collect();
        let row_mu: Vec<f64> = col_mu.iter().map(|e| e + mm).collect();
        let spread = pass.sq.sum() / scale / n as f64;
        let top = pass
            .sq
            .iter()
            .zip(&col_mu)
            .map(|(q, e)| q / scale + 2.0 * e + mm)
            .fold(0.0f64, f64::max);
        // |x_i . x_j| <= max |x_i|^2 stays far from overflow, and the spread far above
        // underflow, in the product's precision; the means small beside the spread.
        if !(top < top_max && spread + mm > mean_min && mm <= SHIFT_RATIO * spread) {
            return None;
        }
        let row_sums = centred_row_sums(v, &mean, (s1, s2), &pass.sums);
        let sq = pass.sq;
        Some(Shifted {
            x,
            mean,
            row_mu,
            col_mu,
            s: (s1, s2),
            scale,
            exp,
            sq,
            row_sums,
            max_sq: top * scale,
        })
    }

    pub fn nrows(&self) -> usize {
        self.x.nrows()
    }

    pub fn ncols(&self) -> usize {
        self.x.ncols()
    }

    /// Row `i` of the centred, normalised copy that this form stands for.
    fn centred_row(&self, i: usize, out: &mut [f64]) {
        // (the same formula as the copy, so the same bits)
        match self.x {
            Input::F32(v) => centre_row(v.row(i), &self.mean, self.s, out),
            Input::F64(v) => centre_row(v.row(i), &self.mean, self.s, out),
        }
    }

    /// The centred, normalised float64 copy itself (for the feature route, which needs it
    /// whole).
    pub fn dense(&self) -> Array2<f64> {
        let mut out = Array2::<f64>::zeros((self.nrows(), self.ncols()));
        out.axis_iter_mut(Axis(0))
            .into_par_iter()
            .enumerate()
            .for_each(|(i, mut o)| self.centred_row(i, o.as_slice_mut().expect("standard layout")));
        out
    }

    /// What turns row `r` of a block `(ra, rb, c0, c1)` of `x x^T`, the product of the rows
    /// themselves in the input's precision, into the centred block of [`Centred::gram_block`]:
    /// `(x_i . x_j - x_i . mu - xc_j . mu) 2^-2e` per entry, in float64.
    fn centring_fix(
        &self,
        (ra, _, c0, c1): (usize, usize, usize, usize),
    ) -> impl FnMut(usize, &mut [f64]) + '_ {
        let (rows, cols, scale) = (&self.row_mu[ra..], &self.col_mu[c0..c1], self.scale);
        move |r, o| {
            let di = rows[r];
            o.iter_mut()
                .zip(cols)
                .for_each(|(o, &dj)| *o = ((*o - di) - dj) * scale);
        }
    }

    /// `<xc_i, xc_j>` of the normalised centred rows (for sampling single entries).
    pub fn row_dot(&self, i: usize, j: usize) -> f64 {
        let p = self.ncols();
        let (mut a, mut b) = (vec![0.0; p], vec![0.0; p]);
        self.centred_row(i, &mut a);
        self.centred_row(j, &mut b);
        crate::simd::dot(&a, &b)
    }
}

/// Squared Euclidean norm of each row, in float64.
pub fn row_sq_norms<'a, T: Real + 'a>(x: impl Into<ArrayView2<'a, T>>) -> Array1<f64> {
    let x = x.into();
    let mut out = Array1::zeros(x.nrows());
    Zip::from(&mut out).and(x.rows()).par_for_each(|o, r| {
        *o = r.iter().map(|v| v.to_f64() * v.to_f64()).sum();
    });
    out
}

/// Which part of a product's output is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    Full,
    /// Lower triangle with the diagonal (for symmetric products such as `A^T A`); the strict
    /// upper triangle of the result is left at zero.
    Lower,
}

/// `lhs @ rhs` (shapes m x k and k x n) in float64, reducing over k in blocks of
/// `T::REDUCTION_BLOCK`: each block is multiplied in `T` and added to the float64 result.
pub fn product_f64<T: Real>(
    lhs: MatRef<'_, T>,
    rhs: MatRef<'_, T>,
    part: Part,
    threads: Threads,
) -> Array2<f64> {
    let mut out = Array2::<f64>::zeros((lhs.nrows(), rhs.ncols()));
    let mut scratch = Vec::new();
    product_into(
        lhs,
        rhs,
        part,
        out.as_slice_mut().expect("standard layout"),
        &mut scratch,
        threads,
    );
    out
}

/// Floating-point operations per block of the inner dimension in float64 products (about
/// 0.1 s here; smaller blocks re-read the output and repack the inputs too often): the granularity at which a product checks for Ctrl-C.
const F64_BLOCK_FLOPS: usize = 1 << 33;

/// [`product_f64`] into a caller's row-major `m x n` buffer; `scratch` is reused between
/// calls for the lower-precision partial products.
pub fn product_into<T: Real>(
    lhs: MatRef<'_, T>,
    rhs: MatRef<'_, T>,
    part: Part,
    out: &mut [f64],
    scratch: &mut Vec<T>,
    threads: Threads,
) {
    let (m, k, n) = (lhs.nrows(), lhs.ncols(), rhs.ncols());
    assert_eq!(rhs.nrows(), k, "product_into: inner dimensions differ");
    assert_eq!(
        out.len(),
        m * n,
        "product_into: output buffer has the wrong size"
    );
    let structure = match part {
        Part::Full => BlockStructure::Rectangular,
        Part::Lower => BlockStructure::TriangularLower,
    };
    // SAFETY: `out` is a live m x n row-major buffer.
    let dst = || unsafe {
        MatMut::<f64>::from_raw_parts_mut(out.as_ptr() as *mut f64, m, n, n as isize, 1)
    };
    if std::any::TypeId::of::<T>() == std::any::TypeId::of::<f64>() {
        // SAFETY: T is f64 (checked above), so the views reinterpret without conversion.
        let (l, r) = unsafe {
            (
                MatRef::<f64>::from_raw_parts(
                    lhs.as_ptr() as *const f64,
                    m,
                    k,
                    lhs.row_stride(),
                    lhs.col_stride(),
                ),
                MatRef::<f64>::from_raw_parts(
                    rhs.as_ptr() as *const f64,
                    k,
                    n,
                    rhs.row_stride(),
                    rhs.col_stride(),
                ),
            )
        };
        // Blocks of the inner dimension of about F64_BLOCK_FLOPS each, accumulated in place,
        // with a Ctrl-C checkpoint between them (one product at n = 1e5, p = 512 would
        // otherwise run for seconds without one). The blocks depend on the shapes only, so the
        // result does not depend on the thread count.
        let kb = (F64_BLOCK_FLOPS / (2 * m * n).max(1))
            .max(256)
            .min(k.max(1));
        let mut k0 = 0;
        while k0 < k || k0 == 0 {
            let b = (k - k0).min(kb);
            crate::interrupt::checkpoint();
            triangular::matmul(
                dst(),
                structure,
                if k0 == 0 { Accum::Replace } else { Accum::Add },
                l.subcols(k0, b),
                BlockStructure::Rectangular,
                r.subrows(k0, b),
                BlockStructure::Rectangular,
                1.0,
                threads.par(),
            );
            k0 += b;
            if b == 0 {
                break;
            }
        }
        return;
    }
    if k > T::REDUCTION_BLOCK {
        out.fill(0.0);
    }
    scratch.resize(m * n, T::from_f64(0.0));
    let mut k0 = 0;
    while k0 < k {
        let kb = (k - k0).min(T::REDUCTION_BLOCK);
        // SAFETY: `scratch` holds m x n elements.
        let tmp =
            unsafe { MatMut::<T>::from_raw_parts_mut(scratch.as_mut_ptr(), m, n, n as isize, 1) };
        triangular::matmul(
            tmp,
            structure,
            Accum::Replace,
            lhs.subcols(k0, kb),
            BlockStructure::Rectangular,
            rhs.subrows(k0, kb),
            BlockStructure::Rectangular,
            T::one(),
            threads.par(),
        );
        let first = k0 == 0 && k <= T::REDUCTION_BLOCK;
        out.par_chunks_mut(CHUNK)
            .zip(scratch.par_chunks(CHUNK))
            .for_each(|(o, t)| {
                if first {
                    o.iter_mut().zip(t).for_each(|(o, t)| *o = t.to_f64());
                } else {
                    o.iter_mut().zip(t).for_each(|(o, t)| *o += t.to_f64());
                }
            });
        k0 += kb;
    }
}

/// Centred features of one representation, in the precision they arrived in, or a layer
/// centred as its Gram blocks are formed ([`Shifted`]).
pub enum Centred<'a> {
    F32(Array2<f32>),
    F64(Array2<f64>),
    Shifted(Shifted<'a>),
}

impl<'a> Centred<'a> {
    /// Centre the columns of an input (see [`centre_columns`]).
    pub fn new(x: Input) -> Self {
        match x {
            Input::F32(a) => Centred::F32(centre_columns(a)),
            Input::F64(a) => Centred::F64(centre_columns(a)),
        }
    }

    /// Centre and normalise the columns of an input by a power of two, in float64 whatever
    /// the input's precision: the centred matrix times `2^-e`, with `e` returned (see
    /// [`centre_columns_normalised_into`]). float32 input is converted exactly, so every
    /// statistic computed from the result is the float64 computation on the float32 values
    /// (a float32 copy of centred data would already move a debiased CKA near 0 by more than
    /// 1e-6 relative).
    pub fn normalised(x: Input) -> (Self, i32) {
        let mut out = Array2::<f64>::zeros((x.nrows(), x.ncols()));
        let e = match x {
            Input::F32(a) => centre_columns_normalised_into(a, out.view_mut()),
            Input::F64(a) => centre_columns_normalised_into(a, out.view_mut()),
        };
        (Centred::F64(out), e)
    }
}

impl Centred<'_> {
    pub fn nrows(&self) -> usize {
        match self {
            Centred::F32(a) => a.nrows(),
            Centred::F64(a) => a.nrows(),
            Centred::Shifted(s) => s.nrows(),
        }
    }

    pub fn ncols(&self) -> usize {
        match self {
            Centred::F32(a) => a.ncols(),
            Centred::F64(a) => a.ncols(),
            Centred::Shifted(s) => s.ncols(),
        }
    }

    /// Squared norms of the rows, in float64.
    pub fn sq_norms(&self) -> Array1<f64> {
        match self {
            Centred::F32(a) => row_sq_norms(a),
            Centred::F64(a) => row_sq_norms(a),
            Centred::Shifted(s) => s.sq.clone(),
        }
    }

    /// Rows `i0..i1` of the Gram matrix restricted to columns `0..i1`, that is
    /// `Xc[i0..i1] Xc[0..i1]^T`, written row-major into `out` (`(i1 - i0) * i1` values).
    pub fn gram_rows(&self, i0: usize, i1: usize, out: &mut [f64], scratch: &mut Scratch) {
        match self {
            Centred::F32(a) => {
                let v = faer_ref(&a.view());
                product_into(
                    v.subrows(i0, i1 - i0),
                    v.subrows(0, i1).transpose(),
                    Part::Full,
                    out,
                    &mut scratch.f32,
                    Threads::All,
                )
            }
            Centred::F64(a) => {
                let v = faer_ref(&a.view());
                product_into(
                    v.subrows(i0, i1 - i0),
                    v.subrows(0, i1).transpose(),
                    Part::Full,
                    out,
                    &mut scratch.f64,
                    Threads::All,
                )
            }
            Centred::Shifted(_) => self.gram_block((i0, i1, 0, i1), Entries::All, out, i1),
        }
    }

    /// Rows `ra..rb` of the Gram matrix restricted to columns `c0..c1` (`block = (ra, rb, c0,
    /// c1)`), that is `Xc[ra..rb] Xc[c0..c1]^T`, all of it or (with [`Entries::Lower`], for a
    /// block that ends on the diagonal) the entries `j <= i`, written into `out` (row `i - ra`
    /// at offset `(i - ra) * stride`, `c1 - c0 <= stride` values each) by one single-threaded
    /// product: callers run many such blocks in parallel, so that the blocks, and hence every
    /// rounding, depend on the shapes alone. float32 features are multiplied in float32
    /// (accumulated in float32 over the `p` features of one entry) and the block is then
    /// widened to float64.
    pub fn gram_block(
        &self,
        block: (usize, usize, usize, usize),
        entries: Entries,
        out: &mut [f64],
        stride: usize,
    ) {
        let id = |_: usize, _: &mut [f64]| {};
        match self {
            Centred::F64(a) => block_product(Input::F64(a.view()), block, entries, out, stride, id),
            Centred::F32(a) => block_product(Input::F32(a.view()), block, entries, out, stride, id),
            Centred::Shifted(s) => {
                block_product(s.x, block, entries, out, stride, s.centring_fix(block))
            }
        }
    }

    /// `<xc_i, xc_j>` accumulated in float64 (for sampling single entries).
    pub fn row_dot(&self, i: usize, j: usize) -> f64 {
        match self {
            Centred::F32(a) => a
                .row(i)
                .iter()
                .zip(a.row(j))
                .map(|(x, y)| *x as f64 * *y as f64)
                .sum(),
            Centred::F64(a) => a.row(i).dot(&a.row(j)),
            Centred::Shifted(s) => s.row_dot(i, j),
        }
    }
}

/// Which entries of a Gram block are formed (see [`Centred::gram_block`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entries {
    /// All of them.
    All,
    /// Those on and below the diagonal (`j <= i`) of a block that ends on it (`c1 == rb`,
    /// `c0 <= ra`): the columns left of `ra` by a rectangular product, the square right of
    /// it by a triangular one (half its products). Each row `i` then holds
    /// `i + 1 - c0` formed values; the rest of the row is left as it was.
    Lower,
}

/// The product `rows ra..rb` times `(rows c0..c1)^T` of `v` into `dst`, single-threaded, all
/// of it or (with [`Entries::Lower`]) its part on and below the diagonal.
fn product_block<T: faer::traits::ComplexField>(
    dst: MatMut<'_, T>,
    v: MatRef<'_, T>,
    (ra, rb, c0, c1): (usize, usize, usize, usize),
    entries: Entries,
    one: T,
) {
    let h = rb - ra;
    let lhs = v.subrows(ra, h);
    match entries {
        Entries::All => {
            let rhs = v.subrows(c0, c1 - c0).transpose();
            faer::linalg::matmul::matmul(dst, Accum::Replace, lhs, rhs, one, Par::Seq);
        }
        Entries::Lower => {
            assert!(
                c1 == rb && c0 <= ra,
                "gram_block: a lower block must end on the diagonal"
            );
            let (left, square) = dst.split_at_col_mut(ra - c0);
            if ra > c0 {
                let rhs = v.subrows(c0, ra - c0).transpose();
                faer::linalg::matmul::matmul(left, Accum::Replace, lhs, rhs, one.clone(), Par::Seq);
            }
            triangular::matmul(
                square,
                BlockStructure::TriangularLower,
                Accum::Replace,
                lhs,
                BlockStructure::Rectangular,
                lhs.transpose(),
                BlockStructure::Rectangular,
                one,
                Par::Seq,
            );
        }
    }
}

/// Rows `ra..rb` of `x x^T` restricted to columns `c0..c1` by one single-threaded product
/// (all the entries, or those on and below the diagonal: `entries`), written into `out` (row
/// `r = i - ra` at offset `r * stride`, `c1 - c0 <= stride` values), then `fix(r, row)` on
/// the formed entries of each row. float32 rows are multiplied in float32 (accumulated in
/// float32 over the `p` features of one entry) and each row widened to float64 before `fix`.
fn block_product(
    x: Input<'_>,
    block: (usize, usize, usize, usize),
    entries: Entries,
    out: &mut [f64],
    stride: usize,
    mut fix: impl FnMut(usize, &mut [f64]),
) {
    let (ra, rb, c0, c1) = block;
    let (h, w) = (rb - ra, c1 - c0);
    if h == 0 || w == 0 {
        return;
    }
    assert!(
        w <= stride && out.len() >= (h - 1) * stride + w,
        "gram_block: output too small"
    );
    // The formed values of row r.
    let formed = |r: usize| match entries {
        Entries::All => w,
        Entries::Lower => ra + r + 1 - c0,
    };
    match x {
        Input::F64(a) => {
            // SAFETY: `out` holds h rows of `stride >= w` values (checked above).
            let dst = unsafe {
                MatMut::<f64>::from_raw_parts_mut(out.as_mut_ptr(), h, w, stride as isize, 1)
            };
            product_block(dst, faer_ref(&a), block, entries, 1.0);
            crate::simd::with_avx2! {
                for r in 0..h {
                    fix(r, &mut out[r * stride..r * stride + formed(r)]);
                }
            }
        }
        Input::F32(a) => {
            let mut tmp = vec![0.0f32; h * w];
            // SAFETY: `tmp` holds h x w values, row-major.
            let dst =
                unsafe { MatMut::<f32>::from_raw_parts_mut(tmp.as_mut_ptr(), h, w, w as isize, 1) };
            product_block(dst, faer_ref(&a), block, entries, 1.0f32);
            crate::simd::with_avx2! {
                for (r, src) in tmp.chunks_exact(w).enumerate() {
                    let o = &mut out[r * stride..r * stride + formed(r)];
                    o.iter_mut().zip(src).for_each(|(o, &t)| *o = f64::from(t));
                    fix(r, o);
                }
            }
        }
    }
}

/// Reusable buffers for [`Centred::gram_rows`].
#[derive(Default)]
pub struct Scratch {
    f32: Vec<f32>,
    f64: Vec<f64>,
}

/// `a^T b` for two (n, p) and (n, q) arrays, in float64.
pub fn at_b<T: Real>(a: &Array2<T>, b: &Array2<T>, threads: Threads) -> Array2<f64> {
    product_f64(
        faer_ref(&a.view()).transpose(),
        faer_ref(&b.view()),
        Part::Full,
        threads,
    )
}

/// Lower triangle of `a^T a` in float64.
pub fn at_a_lower<T: Real>(a: &Array2<T>, threads: Threads) -> Array2<f64> {
    product_f64(
        faer_ref(&a.view()).transpose(),
        faer_ref(&a.view()),
        Part::Lower,
        threads,
    )
}

/// A raw pointer that may cross threads; users guarantee disjoint writes.
pub(crate) struct SyncPtr<T = f64>(pub *mut T);
impl<T> Clone for SyncPtr<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for SyncPtr<T> {}
// SAFETY: only used where each element is written by one task and never read concurrently.
unsafe impl<T> Send for SyncPtr<T> {}
unsafe impl<T> Sync for SyncPtr<T> {}

impl<T> SyncPtr<T> {
    /// The pointer to element `i` (a method, so that closures capture the whole wrapper).
    pub(crate) fn at(self, i: usize) -> *mut T {
        // SAFETY (of the callers): `i` is inside the buffer.
        self.0.wrapping_add(i)
    }
}

/// Copy the strict lower triangle onto the strict upper triangle, in place, tile by tile.
pub fn mirror_lower(a: &mut Array2<f64>) {
    const T: usize = 64;
    let n = a.nrows();
    assert!(a.is_standard_layout() && a.ncols() == n);
    let ptr = SyncPtr(a.as_mut_ptr());
    (0..n.div_ceil(T)).into_par_iter().for_each(move |bi| {
        let p = ptr;
        let (i0, i1) = (bi * T, ((bi + 1) * T).min(n));
        for j0 in (i0..n).step_by(T) {
            let j1 = (j0 + T).min(n);
            for i in i0..i1 {
                for j in j0.max(i + 1)..j1 {
                    // SAFETY: the task for row block bi writes only (i, j > i) with i in the
                    // block and reads only (j, i), j > i, which no task writes; all indices
                    // lie inside the n x n standard-layout buffer.
                    unsafe { *p.0.add(i * n + j) = *p.0.add(j * n + i) };
                }
            }
        }
    });
}

/// Deterministic parallel sum of `f(x)` over a slice.
pub fn par_sum_by<F>(x: &[f64], f: F) -> f64
where
    F: Fn(f64) -> f64 + Sync,
{
    let parts: Vec<f64> = x
        .par_chunks(CHUNK)
        .map(|c| c.iter().map(|&v| f(v)).sum())
        .collect();
    parts.iter().sum()
}

/// Deterministic parallel `<a, b>` of two equally long slices.
pub fn par_dot(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    let parts: Vec<f64> = a
        .par_chunks(CHUNK)
        .zip(b.par_chunks(CHUNK))
        .map(|(x, y)| crate::simd::dot(x, y))
        .collect();
    parts.iter().sum()
}

/// `M[i, j] = <a_i, b_j>` for equally long slices, reading each slice once: the slices are
/// walked in cache-sized chunks and every pair's partial dot product is taken per chunk.
/// With `symmetric` (b is a), only `j >= i` is computed and mirrored. Deterministic.
pub fn multi_dot(a: &[&[f64]], b: &[&[f64]], symmetric: bool) -> Array2<f64> {
    const C: usize = 2048;
    const GROUP: usize = 32;
    let (la, lb) = (a.len(), b.len());
    if la == 0 || lb == 0 {
        return Array2::zeros((la, lb));
    }
    let len = a[0].len();
    assert!(a.iter().chain(b).all(|x| x.len() == len));
    let chunks = len.div_ceil(C);
    let partials: Vec<Array2<f64>> = (0..chunks.div_ceil(GROUP))
        .into_par_iter()
        .map(|g| {
            let mut acc = Array2::<f64>::zeros((la, lb));
            for c in (g * GROUP)..((g + 1) * GROUP).min(chunks) {
                let r = (c * C)..((c + 1) * C).min(len);
                for i in 0..la {
                    let x = &a[i][r.clone()];
                    let j0 = if symmetric { i } else { 0 };
                    for j in j0..lb {
                        acc[[i, j]] += crate::simd::dot(x, &b[j][r.clone()]);
                    }
                }
            }
            acc
        })
        .collect();
    let mut out = Array2::<f64>::zeros((la, lb));
    for p in &partials {
        out += p;
    }
    if symmetric {
        for i in 0..la {
            for j in 0..i {
                out[[i, j]] = out[[j, i]];
            }
        }
    }
    out
}

/// Sum of squares of a full symmetric matrix given by its lower triangle (diagonal included).
pub fn sym_sum_sq_from_lower<'a>(a: impl Into<ArrayView2<'a, f64>>) -> f64 {
    let a = a.into();
    let parts: Vec<f64> = a
        .axis_iter(Axis(0))
        .into_par_iter()
        .enumerate()
        .map(|(i, row)| {
            let off: f64 = row.iter().take(i).map(|v| v * v).sum();
            2.0 * off + row[i] * row[i]
        })
        .collect();
    parts.iter().sum()
}

/// Column sums of `x` in float64, over fixed blocks of rows combined in order (deterministic
/// for any thread count).
pub fn col_sums(x: &Array2<f64>) -> Array1<f64> {
    let (n, p) = x.dim();
    let parts: Vec<Array1<f64>> = (0..n.div_ceil(COL_ROWS))
        .into_par_iter()
        .map(|b| {
            let mut acc = Array1::<f64>::zeros(p);
            for i in (b * COL_ROWS)..((b + 1) * COL_ROWS).min(n) {
                acc += &x.row(i);
            }
            acc
        })
        .collect();
    let mut out = Array1::<f64>::zeros(p);
    for part in &parts {
        out += part;
    }
    out
}

/// `x v` for an (n, p) matrix and a p-vector, one row per task (deterministic).
pub fn mat_vec(x: &Array2<f64>, v: &Array1<f64>) -> Array1<f64> {
    let mut out = Array1::<f64>::zeros(x.nrows());
    Zip::from(&mut out)
        .and(x.rows())
        .par_for_each(|o, r| *o = r.iter().zip(v).map(|(a, b)| a * b).sum());
    out
}

/// Plain sequential dot product of two equally long vectors.
pub fn dot(a: &Array1<f64>, b: &Array1<f64>) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn centre_rows_in_place_matches_the_two_pass_rule() {
        // rows with a large offset: the residual mean c corrects the rounding of mu
        let (n, p) = (37, 5);
        let x = Array2::from_shape_fn((n, p), |(i, j)| {
            1e8 * (j as f64 + 1.0) + ((i * 31 + j * 7) % 17) as f64 * 0.1
        });
        for exact in [true, false] {
            let mut z = x.clone();
            let st = centre_rows_in_place(z.view_mut(), exact);
            for j in 0..p {
                let col: Vec<f64> = x.column(j).to_vec();
                let sum: f64 = col.iter().sum();
                let mu = sum / n as f64;
                assert_eq!(st.mu[j], mu);
                let res: f64 = col.iter().map(|v| v - mu).sum();
                assert_eq!(st.c[j], res / n as f64);
                assert_eq!(st.lo[j], col.iter().cloned().fold(f64::INFINITY, f64::min));
                assert_eq!(
                    st.hi[j],
                    col.iter().cloned().fold(f64::NEG_INFINITY, f64::max)
                );
                for i in 0..n {
                    let want = if exact {
                        (x[[i, j]] - mu) - st.c[j]
                    } else {
                        x[[i, j]] - mu
                    };
                    assert_eq!(z[[i, j]], want);
                }
                // the mean itself: mu + c is the exact mean to within a few units
                let exact_mean = 1e8 * (j as f64 + 1.0)
                    + (0..n)
                        .map(|i| ((i * 31 + j * 7) % 17) as f64 * 0.1)
                        .sum::<f64>()
                        / n as f64;
                assert!((st.mu[j] + st.c[j] - exact_mean).abs() <= 4.0 * f64::EPSILON * exact_mean);
            }
        }
        // one row: c is zero and the row becomes zero
        let mut one = Array2::from_shape_vec((1, 3), vec![1.5, -2.0, 7.0]).unwrap();
        let st = centre_rows_in_place(one.view_mut(), true);
        assert_eq!(st.c, vec![0.0; 3]);
        assert_eq!(one.as_slice().unwrap(), &[0.0, 0.0, 0.0]);
        // NaN shows in both extremes of its column; infinities as themselves
        let mut bad =
            Array2::from_shape_vec((2, 3), vec![1.0, f64::NAN, f64::INFINITY, 2.0, 0.0, 1.0])
                .unwrap();
        let before = bad.clone();
        let st = centre_rows_in_place(bad.view_mut(), false);
        assert!(st.lo[1].is_nan() && st.hi[1].is_nan());
        assert!(bad
            .iter()
            .zip(&before)
            .all(|(a, b)| a.to_bits() == b.to_bits())); // untouched
        assert_eq!((st.lo[0], st.hi[0]), (1.0, 2.0));
        assert_eq!(st.hi[2], f64::INFINITY);
    }
    use ndarray::array;

    #[test]
    fn centring_removes_means_and_zeroes_constant_columns() {
        let x: Array2<f64> = array![[1.0, 5.0, 0.1], [3.0, 5.0, 0.2], [8.0, 5.0, 0.6]];
        let c = centre_columns(x.view());
        for j in 0..3 {
            assert!(c.column(j).sum().abs() < 1e-15);
        }
        assert!(c.column(1).iter().all(|&v| v == 0.0));
        assert_eq!(c[[0, 0]], -3.0);
    }

    #[test]
    fn float32_preparation_matches_the_float64_copy() {
        // Rows not a multiple of the block, a large offset in one column, a constant column,
        // float32 and float64 input, a strided (transposed) view.
        let (n, p) = (600, 7);
        let x = Array2::from_shape_fn((n, p), |(i, j)| {
            let v = ((i * 7919 + j * 104_729) % 1013) as f64 / 97.0 - 5.0;
            match j {
                0 => 1e6 + v,
                3 => 2.5,
                _ => v * (j as f64 + 0.5),
            }
        });
        let x32 = x.mapv(|v| v as f32);
        let xt = x.t().to_owned();
        let inputs = [
            Input::F64(x.view()),
            Input::F32(x32.view()),
            Input::F64(xt.t()),
        ];
        for input in inputs {
            let got = normalised_f32(input);
            let (Centred::F64(c), e) = Centred::normalised(input) else {
                unreachable!()
            };
            assert_eq!(got.exp, e);
            assert_eq!(
                got.x32,
                c.mapv(|v| v as f32),
                "float32 rounding of the copy"
            );
            let max = c.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            assert_eq!(got.max_abs, max);
            let sq = row_sq_norms(&c);
            let sums = col_sums(&c);
            let rows = mat_vec(&c, &sums);
            let mut nonzero = 0;
            for i in 0..n {
                assert!((got.sq[i] - sq[i]).abs() <= 1e-14 * sq[i], "row {i}");
                // The same column sums, a dot product in another order: within the rounding
                // bound of a p-term dot product.
                let mag: f64 = c.row(i).iter().zip(&sums).map(|(a, b)| (a * b).abs()).sum();
                let bound = 2.0 * p as f64 * f64::EPSILON * mag;
                assert!((got.row_sums[i] - rows[i]).abs() <= bound, "row sum {i}");
                nonzero += usize::from(rows[i].abs() > bound);
            }
            assert!(
                nonzero > n / 2,
                "the row sums are not all round-off-free zeros"
            );
        }
    }

    #[test]
    fn row_passes_give_the_same_bits_with_and_without_avx2() {
        // The layer passes and the Gram blocks' row loops run through simd::with_avx2: the
        // AVX2 build of a loop must give the baseline build's bits (no fused multiply-adds,
        // no reordered sums). float64 and float32 rows, offsets, a ragged last block.
        use std::sync::atomic::Ordering;
        let (n, p) = (300, 37);
        let x = Array2::from_shape_fn((n, p), |(i, j)| {
            let v = ((i * 7919 + j * 104_729) % 1013) as f64 / 1013.0 - 0.5;
            v * (1.0 + j as f64) + 0.3 * (j % 4) as f64
        });
        let x32 = x.mapv(|v| v as f32);
        let run = |input: Input, baseline: bool| {
            crate::simd::FORCE_BASELINE.store(baseline, Ordering::Relaxed);
            let s = Shifted::new(input).expect("small offsets take the shifted form");
            let stats = (
                s.mean.clone(),
                s.sq.clone(),
                s.row_sums.clone(),
                s.col_mu.clone(),
            );
            let max_sq = s.max_sq;
            let (c, e) = Centred::normalised(input);
            let mut blocks = Vec::new();
            for own in [Centred::Shifted(s), c] {
                let mut out = vec![f64::NAN; 100 * 150];
                own.gram_block((50, 150, 10, 160), Entries::All, &mut out, 150);
                blocks.push(out);
            }
            crate::simd::FORCE_BASELINE.store(false, Ordering::Relaxed);
            (stats.0, stats.1, stats.2, stats.3, max_sq, e, blocks)
        };
        for input in [Input::F64(x.view()), Input::F32(x32.view())] {
            let (fast, slow) = (run(input, false), run(input, true));
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&fast.0), bits(&slow.0), "means");
            assert_eq!(
                bits(fast.1.as_slice().unwrap()),
                bits(slow.1.as_slice().unwrap())
            );
            assert_eq!(
                bits(fast.2.as_slice().unwrap()),
                bits(slow.2.as_slice().unwrap())
            );
            assert_eq!(bits(&fast.3), bits(&slow.3), "products with the means");
            assert_eq!(fast.4.to_bits(), slow.4.to_bits());
            assert_eq!(fast.5, slow.5);
            for (a, b) in fast.6.iter().zip(&slow.6) {
                assert_eq!(bits(a), bits(b), "Gram blocks");
            }
        }
    }

    #[test]
    fn lower_gram_blocks_form_the_lower_entries_only() {
        // A block ending on the diagonal, formed with Entries::Lower, holds the entries j <= i
        // of the whole block (to the rounding of the product: the triangular product may add
        // in another order) and leaves every other value as it was; blocks starting left of
        // the diagonal and on it, float64, float32 and shifted rows, a stride with a gap.
        let (n, p) = (400, 70);
        let x = Array2::from_shape_fn((n, p), |(i, j)| {
            let v = ((i * 7919 + j * 104_729) % 1013) as f64 / 1013.0 - 0.5;
            v + 0.1 * (j % 3) as f64
        });
        let x32 = x.mapv(|v| v as f32);
        for input in [Input::F64(x.view()), Input::F32(x32.view())] {
            let eps = match input {
                Input::F64(_) => f64::EPSILON,
                Input::F32(_) => f64::from(f32::EPSILON),
            };
            let forms = [
                Centred::Shifted(Shifted::new(input).expect("small offsets")),
                Centred::normalised(input).0,
            ];
            for own in &forms {
                for (ra, rb, c0) in [(100, 196, 0), (288, 400, 288), (150, 250, 130)] {
                    let (h, w) = (rb - ra, rb - c0);
                    let stride = w + 3;
                    let mut all = vec![f64::NAN; h * stride];
                    let mut low = vec![f64::NAN; h * stride];
                    own.gram_block((ra, rb, c0, rb), Entries::All, &mut all, stride);
                    own.gram_block((ra, rb, c0, rb), Entries::Lower, &mut low, stride);
                    let norms: Vec<f64> = (c0..rb).map(|i| own.row_dot(i, i).sqrt()).collect();
                    for r in 0..h {
                        let i = ra + r;
                        for k in 0..stride {
                            let (a, l) = (all[r * stride + k], low[r * stride + k]);
                            if k < w && c0 + k <= i {
                                let bound = 2.0 * p as f64 * eps * norms[i - c0] * norms[k];
                                assert!((a - l).abs() <= bound, "({i}, {}): {a} vs {l}", c0 + k);
                            } else {
                                assert!(l.is_nan(), "({i}, {}) was written", c0 + k);
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn shifted_gram_blocks_match_the_centred_copy() {
        // Means of half the spread in every column (a ratio |mu|^2 / mean |xc|^2 near 0.3),
        // rows not a multiple of the block; float64 and float32 rows.
        let (n, p) = (600, 9);
        let x = Array2::from_shape_fn((n, p), |(i, j)| {
            let v = ((i * 7919 + j * 104_729) % 1013) as f64 / 1013.0 - 0.5;
            (v * 3.0 + 0.4 * (j % 3) as f64) * 1e-3
        });
        let x32 = x.mapv(|v| v as f32);
        let exact32 = x32.mapv(f64::from);
        for (input, values, eps) in [
            (Input::F64(x.view()), &x, f64::EPSILON),
            (Input::F32(x32.view()), &exact32, f64::from(f32::EPSILON)),
        ] {
            let s = Shifted::new(input).expect("small offsets take the shifted form");
            let (Centred::F64(c), e) = Centred::normalised(input) else {
                unreachable!()
            };
            assert_eq!(s.exp, e);
            assert_eq!(s.dense(), c, "the same centred rows, bit for bit");
            let scale = ldexp(1.0, -2 * i64::from(e));
            let norm = |v: ndarray::ArrayView1<f64>| v.dot(&v).sqrt();
            let top = values
                .rows()
                .into_iter()
                .map(|r| norm(r).powi(2))
                .fold(0.0, f64::max);
            assert!((s.max_sq - top * scale).abs() <= 1e-14 * top * scale);
            let sq = row_sq_norms(&c);
            let sums = col_sums(&c);
            let rows = mat_vec(&c, &sums);
            for i in 0..n {
                assert!((s.sq[i] - sq[i]).abs() <= 1e-14 * sq[i], "row {i}");
                let mag: f64 = c.row(i).iter().zip(&sums).map(|(a, b)| (a * b).abs()).sum();
                assert!((s.row_sums[i] - rows[i]).abs() <= 2.0 * p as f64 * f64::EPSILON * mag);
            }
            // Gram blocks (one off the diagonal, one on it, a ragged edge) with a wider
            // stride, within the rounding bound gamma_p (|x_i| + |mu|) (|x_j| + |mu|) 2^-2e
            // of the product's precision.
            let mu = values.mean_axis(Axis(0)).unwrap();
            let own = Centred::Shifted(s);
            let copy = Centred::F64(c.clone());
            for (ra, rb, c0, c1) in [(96, 192, 0, 96), (288, 400, 288, 400), (500, 600, 37, 599)] {
                let (h, w, stride) = (rb - ra, c1 - c0, c1 - c0 + 5);
                let mut got = vec![f64::NAN; h * stride];
                let mut want = vec![f64::NAN; h * stride];
                own.gram_block((ra, rb, c0, c1), Entries::All, &mut got, stride);
                copy.gram_block((ra, rb, c0, c1), Entries::All, &mut want, stride);
                let mut large = 0;
                for r in 0..h {
                    for k in 0..w {
                        let (i, j) = (ra + r, c0 + k);
                        let (g, v) = (got[r * stride + k], want[r * stride + k]);
                        let bound = 4.0
                            * p as f64
                            * eps
                            * (norm(values.row(i)) + norm(mu.view()))
                            * (norm(values.row(j)) + norm(mu.view()))
                            * scale;
                        assert!((g - v).abs() <= bound, "entry ({i}, {j}): {g} vs {v}");
                        large += usize::from(v.abs() > 30.0 * bound);
                        let dot_bound = 2.0 * p as f64 * f64::EPSILON * (sq[i] * sq[j]).sqrt();
                        assert!((own.row_dot(i, j) - copy.row_dot(i, j)).abs() <= dot_bound);
                    }
                    // The stride's gap is left alone.
                    assert!(got[r * stride + w..(r + 1) * stride]
                        .iter()
                        .all(|v| v.is_nan()));
                }
                assert!(large > h * w / 2, "the entries are not all round-off");
            }
        }
        // Where the shifted form is not used: a large offset, a constant layer, products
        // that could overflow or underflow, columns that are not contiguous.
        let mut off = x.clone();
        off.column_mut(2).mapv_inplace(|v| v + 1.0);
        let f64_of = |a: &Array2<f64>| Shifted::new(Input::F64(a.view())).is_some();
        let f32_of = |a: &Array2<f32>| Shifted::new(Input::F32(a.view())).is_some();
        assert!(!f64_of(&off), "offset");
        assert!(!f32_of(&off.mapv(|v| v as f32)), "offset");
        assert!(!f64_of(&Array2::from_elem((50, 3), 2.0)), "constant");
        assert!(!f64_of(&x.mapv(|v| v * 1e160)), "float64 overflow");
        assert!(f64_of(&x.mapv(|v| v * 1e100)), "large but safe");
        assert!(!f32_of(&x32.mapv(|v| v * 1e21)), "float32 overflow");
        assert!(!f32_of(&x32.mapv(|v| v * 1e-14)), "float32 underflow");
        assert!(f32_of(&x32.mapv(|v| v * 1e18)), "large but safe");
        let xt = x.t().as_standard_layout().into_owned();
        assert!(Shifted::new(Input::F64(xt.t())).is_none(), "column-major");
    }

    #[test]
    fn normalised_centring_is_exact_at_any_magnitude() {
        let x: Array2<f64> = array![[1.0, 5.0, 0.1], [3.0, 5.0, 0.2], [8.0, 5.0, 0.6]];
        let base = centre_columns(x.view());
        for k in [-1000i32, -300, -1, 0, 7, 300, 1000] {
            let s = ldexp(1.0, k as i64);
            let xs = x.mapv(|v| v * s);
            let mut out = Array2::<f64>::zeros(x.dim());
            let e = centre_columns_normalised_into(xs.view(), out.view_mut());
            // Range 7 (column 0): 7 * 2^k * 2^-e lies in [1/2, 1).
            assert_eq!(e, k + 3);
            assert_eq!(out.mapv(|v| ldexp(v, e as i64 - k as i64)), base);
            assert!(out.iter().all(|v| v.abs() <= 1.0));
        }
        // float32 input at the top of its range, centred into float64.
        let x32 = x.mapv(|v| (v * 1e37) as f32);
        let mut out = Array2::<f64>::zeros(x.dim());
        let e = centre_columns_normalised_into(x32.view(), out.view_mut());
        assert!(out.iter().all(|v| v.is_finite() && v.abs() <= 1.0) && e > 120);
        // A constant input is left at exponent 0, and exactly zero.
        let c = Array2::from_elem((4, 2), 3.5e300);
        let mut out = Array2::<f64>::from_elem((4, 2), 1.0);
        assert_eq!(centre_columns_normalised_into(c.view(), out.view_mut()), 0);
        assert!(out.iter().all(|&v| v == 0.0));
    }

    #[test]
    fn ldexp_is_exact_until_the_range_ends() {
        assert_eq!(ldexp(ldexp(3.0, 1500), -1500), f64::INFINITY);
        assert_eq!(ldexp(ldexp(3.0, 1000), -1000), 3.0);
        // 1.5 times the smallest subnormal: one rounding, to even (2 units).
        assert_eq!(ldexp(1.5, -1074), f64::from_bits(2));
        assert_eq!(ldexp(-1.0, 1024), f64::NEG_INFINITY);
        assert_eq!(ldexp(0.75, 1024), 1.5 * 2f64.powi(1023));
    }

    #[test]
    fn products_match_naive_in_both_precisions() {
        let (n, p, q) = (2500, 7, 5);
        let a = Array2::from_shape_fn((n, p), |(i, j)| ((i * 31 + j * 17) % 13) as f64 - 6.0);
        let b = Array2::from_shape_fn((n, q), |(i, j)| ((i * 7 + j * 3) % 11) as f64 - 5.0);
        let naive = a.t().dot(&b);
        let a32 = a.mapv(|v| v as f32);
        let b32 = b.mapv(|v| v as f32);
        let full = a.t().dot(&a);
        for threads in [Threads::All, Threads::One] {
            assert_eq!(at_b(&a, &b, threads), naive);
            // Small integers: every float32 block product is exact, so the result is too.
            assert_eq!(at_b(&a32, &b32, threads), naive);
            let lower = at_a_lower(&a32, threads);
            for i in 0..p {
                for j in 0..p {
                    let want = if j <= i { full[[i, j]] } else { 0.0 };
                    assert_eq!(lower[[i, j]], want);
                }
            }
            assert_eq!(
                sym_sum_sq_from_lower(&lower),
                full.iter().map(|v| v * v).sum::<f64>()
            );
        }
    }

    #[test]
    fn one_thread_and_all_threads_give_the_same_bits() {
        // Values whose products round, on shapes large enough for faer to split the product
        // over 4 threads: the feature route may run a product either way.
        let (n, p, q) = (3000, 300, 260);
        let a = crate::testutil::pseudo(n, p, 5);
        let b = crate::testutil::pseudo(n, q, 6);
        let (all, all_lower) = crate::testutil::in_pool(4, || {
            (at_b(&a, &b, Threads::All), at_a_lower(&a, Threads::All))
        });
        let bits = |m: &Array2<f64>| m.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&all), bits(&at_b(&a, &b, Threads::One)));
        assert_eq!(bits(&all_lower), bits(&at_a_lower(&a, Threads::One)));
        let naive = a.t().dot(&b);
        let scale = naive.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        assert!(all
            .iter()
            .zip(&naive)
            .all(|(x, y)| (x - y).abs() <= 1e-12 * scale));
    }
}
