//! Pairwise Euclidean distances and the O(n^2) statistics of the RSM family (MEASURES.md 4).
//!
//! * Distances are computed directly from the differences, `sqrt(sum_k (x_ik - x_jk)^2)`, not
//!   with the Gram-matrix identity `|x_i|^2 + |x_j|^2 - 2 <x_i, x_j>`: that identity loses the
//!   small distances to cancellation (an exact duplicate row gets a distance of order
//!   `1e-8 |x|` instead of 0) and breaks the exact ties that `rsa`'s Spearman ranks must see.
//!   Row blocks of [`ROW_BLOCK`] rows run in parallel, each block a task of its own and, on a
//!   triangle, the largest (last) blocks first, so a pass ends on small tasks instead of
//!   leaving one thread alone with a run of large blocks; inside a block, groups of 4 rows meet
//!   pairs of rows over chunks of `K_CHUNK` features, with 4 accumulators per pair, so each
//!   value is read once per 8 pairs. Every pair `(i, j)` is reduced in the same order whatever
//!   tile computes it, so `d(i, j)` does not depend on the block layout or the thread count.
//! * Distance correlation has its own distance kernel (its distances are never ranked, so they
//!   need not match the RSM kernel's bits): the rows are packed feature-major in panels of
//!   [`PANEL`], and a register tile of 6 rows x 8 panel rows keeps 12 accumulators, each pair
//!   one `fma` chain over the features in order, so every pair costs one subtraction and one
//!   `fma` per feature with fewer loads per pair than the 4 x 2 tiles and no horizontal
//!   reduction. Each row's distances are written in order and their row and column sums are
//!   formed as they are written.
//! * [`distance_correlation`] streams in one pass over the distances, holding no n x n matrix
//!   (memory O(threads * ROW_BLOCK * n) values plus a fixed bound on the partial row sums).
//!   It uses the exact identity
//!   `<HaH, HbH> = <a, b> - (2/n) r_a.r_b + S_a S_b / n^2` (row sums `r`, totals `S`), not on
//!   the distances themselves, whose large common mean would cancel and cost a factor of
//!   order n in accuracy, but on distances shifted by estimated row means, `a_ij - m_i - m_j
//!   + g`: double centring removes such a shift exactly, and the shifted values are already
//!   nearly centred. The estimates `m_i` are mean distances to [`MEAN_SAMPLE`] evenly spaced
//!   rows (a pre-pass of relative cost `2 MEAN_SAMPLE / n`).
//! * [`rsa`] builds the strict lower triangle of each RSM (Euclidean distances or Pearson
//!   correlations between rows) as a packed vector, row by row (`(i, j)`, `j < i`, at index
//!   `i (i - 1) / 2 + j`), and compares the two vectors with Pearson's correlation or with
//!   Spearman's (average ranks of ties, from one parallel sort per vector), Kendall's tau-a
//!   (exact pair counts by a merge sort, [`kendall_tau_a`]) or their cosine.
//!
//! Determinism: the work is split into fixed row blocks and fixed chunks, and every partial
//! result is combined in a fixed order, so results are identical for any `RAYON_NUM_THREADS`.

use crate::error::{CoreError, Result};
use crate::linalg::{Input, SyncPtr, CHUNK};
use ndarray::{Array2, ArrayView2, Axis, CowArray, Ix2};
use rayon::prelude::*;

/// Rows per task in every pass over the pairs (fixed, so results do not depend on threads).
pub const ROW_BLOCK: usize = 64;
/// Features per pass of the pair kernels: 4 + 2 rows of this many values stay in L1.
pub(crate) const K_CHUNK: usize = 256;
/// Bytes of the j-rows of one tile (kept in L2 while a row block sweeps over them).
const TILE_BYTES: usize = 1 << 17;
/// Independent accumulators per pair (fixed: the summation order never changes).
pub(crate) const LANES: usize = 4;

/// Number of pairs `(i, j)` with `j < i < n`, i.e. the offset of row `n` in packed order.
#[inline(always)]
pub fn tri(n: usize) -> usize {
    n * n.saturating_sub(1) / 2
}

/// How a representational similarity matrix is built from the rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rsm {
    /// Pearson correlation between rows (each row centred by its own mean).
    Correlation,
    /// Euclidean distance between rows.
    Euclidean,
}

impl Rsm {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "correlation" => Ok(Rsm::Correlation),
            "euclidean" => Ok(Rsm::Euclidean),
            other => Err(CoreError::Parameter {
                name: "rsm",
                value: format!("{other:?}"),
                expected: "'correlation' or 'euclidean'".into(),
            }),
        }
    }
}

/// How the two RSM vectors are compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compare {
    Spearman,
    Pearson,
    /// Kendall's tau-a: `(C - D) / (N (N - 1) / 2)`, tied pairs counting in neither.
    KendallTauA,
    /// Cosine of the two (uncentred) vectors.
    Cosine,
}

impl Compare {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "spearman" => Ok(Compare::Spearman),
            "pearson" => Ok(Compare::Pearson),
            "kendall_tau_a" => Ok(Compare::KendallTauA),
            "cosine" => Ok(Compare::Cosine),
            other => Err(CoreError::Parameter {
                name: "compare",
                value: format!("{other:?}"),
                expected: "'spearman', 'pearson', 'kendall_tau_a' or 'cosine'".into(),
            }),
        }
    }

    /// Bytes per triangle entry held at the peak of [`rsa`]: the two triangles, plus the
    /// sort buffer of the ranks (Spearman) or the key pairs and merge buffer (Kendall).
    pub fn bytes_per_value(self) -> f64 {
        match self {
            Compare::Pearson | Compare::Cosine => 16.0,
            Compare::Spearman => 32.0,
            Compare::KendallTauA => 48.0,
        }
    }
}

// ------------------------------------------------------------------------------ input rows

/// The rows of an input as one contiguous float64 buffer (borrowed when already so).
pub(crate) struct Rows<'a> {
    pub(crate) data: CowArray<'a, f64, Ix2>,
    pub(crate) n: usize,
    pub(crate) p: usize,
}

impl<'a> Rows<'a> {
    pub(crate) fn new(x: Input<'a>, arg: &'static str) -> Result<Self> {
        let data: CowArray<'a, f64, Ix2> = match x {
            Input::F64(a) if a.is_standard_layout() => CowArray::from(a),
            Input::F64(a) => CowArray::from(a.as_standard_layout().into_owned()),
            // float32 -> float64 is exact, and so are the differences of two float32 values.
            Input::F32(a) => CowArray::from(Array2::from_shape_fn(a.dim(), |ix| a[ix] as f64)),
        };
        let (n, p) = data.dim();
        if p == 0 {
            return Err(CoreError::Shape {
                arg,
                shape: vec![n, p],
                expected: "at least one column".into(),
            });
        }
        let bad = data.iter().filter(|v| !v.is_finite()).count();
        if bad > 0 {
            return Err(CoreError::NonFinite { arg, count: bad });
        }
        Ok(Rows { data, n, p })
    }

    pub(crate) fn slice(&self) -> &[f64] {
        self.data.as_slice().expect("standard layout")
    }
}

pub(crate) fn check_pair(x: &Rows, y: &Rows, min_rows: usize) -> Result<()> {
    if x.n != y.n {
        return Err(CoreError::Mismatch {
            what: format!(
                "X has {} rows and Y has {}; they must have the same number of rows",
                x.n, y.n
            ),
        });
    }
    if x.n < min_rows {
        return Err(CoreError::Shape {
            arg: "X",
            shape: vec![x.n, x.p],
            expected: format!("at least {min_rows} rows"),
        });
    }
    Ok(())
}

// ------------------------------------------------------------------------------ pair kernels

/// One step of a pair reduction: `acc + (a - b)^2` or `acc + a b`.
#[inline(always)]
fn term<const DOT: bool, const FMA: bool>(a: f64, b: f64, acc: f64) -> f64 {
    if DOT {
        if FMA {
            a.mul_add(b, acc)
        } else {
            acc + a * b
        }
    } else {
        let d = a - b;
        if FMA {
            d.mul_add(d, acc)
        } else {
            acc + d * d
        }
    }
}

/// Reduce the lane accumulators and the tail in the one fixed order every kernel uses.
#[inline(always)]
fn finish(q: &[f64; LANES], tail: f64) -> f64 {
    ((q[0] + q[2]) + (q[1] + q[3])) + tail
}

/// Partial sums over one chunk of features for 4 rows `a` against 2 rows `b` (row-major 4 x 2).
/// Portable version; lane `l` of each pair accumulates the features `k = l mod LANES`.
#[inline(always)]
fn tile_4x2<const DOT: bool, const FMA: bool>(a: [&[f64]; 4], b: [&[f64]; 2]) -> [f64; 8] {
    let len = a[0].len();
    let steps = len / LANES;
    let ca = a.map(|r| r.as_chunks::<LANES>());
    let cb = b.map(|r| r.as_chunks::<LANES>());
    assert!(
        ca.iter()
            .all(|c| c.0.len() == steps && c.1.len() == len - steps * LANES)
            && cb
                .iter()
                .all(|c| c.0.len() == steps && c.1.len() == len - steps * LANES),
        "tile rows differ in length"
    );
    let mut acc = [[0.0f64; LANES]; 8];
    for s in 0..steps {
        for r in 0..4 {
            let x = &ca[r].0[s];
            for c in 0..2 {
                let y = &cb[c].0[s];
                let q = &mut acc[2 * r + c];
                for l in 0..LANES {
                    q[l] = term::<DOT, FMA>(x[l], y[l], q[l]);
                }
            }
        }
    }
    let mut out = [0.0; 8];
    for r in 0..4 {
        for c in 0..2 {
            let mut tail = 0.0;
            for (&u, &v) in ca[r].1.iter().zip(cb[c].1) {
                tail = term::<DOT, FMA>(u, v, tail);
            }
            out[2 * r + c] = finish(&acc[2 * r + c], tail);
        }
    }
    out
}

/// The AVX2 + FMA kernels: the same lanes, operations and reduction order as the portable
/// kernels with `FMA = true`, so both give bit-identical results.
#[cfg(target_arch = "x86_64")]
mod avx {
    use super::{finish, term, LANES};
    use std::arch::x86_64::*;

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn step<const DOT: bool>(a: __m256d, b: __m256d, acc: __m256d) -> __m256d {
        if DOT {
            _mm256_fmadd_pd(a, b, acc)
        } else {
            let d = _mm256_sub_pd(a, b);
            _mm256_fmadd_pd(d, d, acc)
        }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn lanes(v: __m256d) -> [f64; LANES] {
        let mut q = [0.0; LANES];
        _mm256_storeu_pd(q.as_mut_ptr(), v);
        q
    }

    /// See [`super::tile_4x2`].
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn tile_4x2<const DOT: bool>(a: [&[f64]; 4], b: [&[f64]; 2]) -> [f64; 8] {
        let len = a[0].len();
        assert!(
            a.iter().all(|r| r.len() == len) && b.iter().all(|r| r.len() == len),
            "tile rows differ in length"
        );
        let steps = len / LANES;
        let pa = a.map(|r| r.as_ptr());
        let pb = b.map(|r| r.as_ptr());
        let mut acc = [_mm256_setzero_pd(); 8];
        for s in 0..steps {
            let k = s * LANES;
            // SAFETY: k + LANES <= len, the length of every row.
            let y0 = _mm256_loadu_pd(pb[0].add(k));
            let y1 = _mm256_loadu_pd(pb[1].add(k));
            for r in 0..4 {
                let x = _mm256_loadu_pd(pa[r].add(k));
                acc[2 * r] = step::<DOT>(x, y0, acc[2 * r]);
                acc[2 * r + 1] = step::<DOT>(x, y1, acc[2 * r + 1]);
            }
        }
        let mut out = [0.0; 8];
        for r in 0..4 {
            for c in 0..2 {
                let mut tail = 0.0;
                for k in steps * LANES..len {
                    tail = term::<DOT, true>(a[r][k], b[c][k], tail);
                }
                out[2 * r + c] = finish(&lanes(acc[2 * r + c]), tail);
            }
        }
        out
    }

    /// See [`super::pair_1x1`].
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn pair_1x1<const DOT: bool>(a: &[f64], b: &[f64]) -> f64 {
        let len = a.len();
        assert_eq!(b.len(), len, "rows differ in length");
        let steps = len / LANES;
        let mut acc = _mm256_setzero_pd();
        for s in 0..steps {
            let k = s * LANES;
            // SAFETY: k + LANES <= len.
            acc = step::<DOT>(
                _mm256_loadu_pd(a.as_ptr().add(k)),
                _mm256_loadu_pd(b.as_ptr().add(k)),
                acc,
            );
        }
        let mut tail = 0.0;
        for k in steps * LANES..len {
            tail = term::<DOT, true>(a[k], b[k], tail);
        }
        finish(&lanes(acc), tail)
    }
}

/// [`tile_4x2`], through the AVX2 kernel when `FMA` (only set on CPUs that have it).
#[inline(always)]
pub(crate) fn tile<const DOT: bool, const FMA: bool>(a: [&[f64]; 4], b: [&[f64]; 2]) -> [f64; 8] {
    #[cfg(target_arch = "x86_64")]
    if FMA {
        // SAFETY: FMA kernels are only reached from `lower_block_fma`, which `lower_block`
        // calls only when the CPU supports AVX2 and FMA.
        return unsafe { avx::tile_4x2::<DOT>(a, b) };
    }
    tile_4x2::<DOT, FMA>(a, b)
}

/// [`pair_1x1`], through the AVX2 kernel when `FMA`.
#[inline(always)]
pub(crate) fn pair<const DOT: bool, const FMA: bool>(a: &[f64], b: &[f64]) -> f64 {
    #[cfg(target_arch = "x86_64")]
    if FMA {
        // SAFETY: as in `tile`.
        return unsafe { avx::pair_1x1::<DOT>(a, b) };
    }
    pair_1x1::<DOT, FMA>(a, b)
}

/// The same reduction as [`tile_4x2`] for one pair (bit-identical results).
#[inline(always)]
fn pair_1x1<const DOT: bool, const FMA: bool>(a: &[f64], b: &[f64]) -> f64 {
    let (ca, ta) = a.as_chunks::<LANES>();
    let (cb, tb) = b.as_chunks::<LANES>();
    assert_eq!(ca.len(), cb.len(), "rows differ in length");
    let mut acc = [0.0f64; LANES];
    for (x, y) in ca.iter().zip(cb) {
        for l in 0..LANES {
            acc[l] = term::<DOT, FMA>(x[l], y[l], acc[l]);
        }
    }
    let mut tail = 0.0;
    for (&u, &v) in ta.iter().zip(tb) {
        tail = term::<DOT, FMA>(u, v, tail);
    }
    finish(&acc, tail)
}

/// `v(i, j)` (squared distance, or dot product with `DOT`) for rows `i0 <= i < i1` and all
/// `j < i`, in packed row order, written to `out` (length `tri(i1) - tri(i0)`).
#[inline(always)]
fn lower_block_body<const DOT: bool, const FMA: bool>(
    x: &[f64],
    p: usize,
    i0: usize,
    i1: usize,
    out: &mut [f64],
) {
    let base = tri(i0);
    assert_eq!(out.len(), tri(i1) - base);
    out.fill(0.0);
    if i1 < 2 {
        return;
    }
    let row = |i: usize| &x[i * p..(i + 1) * p];
    let jt = (TILE_BYTES / (8 * K_CHUNK.min(p))).max(8);
    let jmax = i1 - 1; // the largest column is i1 - 2
    for j0 in (0..jmax).step_by(jt) {
        crate::interrupt::checkpoint();
        let j1 = (j0 + jt).min(jmax);
        for k0 in (0..p).step_by(K_CHUNK) {
            let k1 = (k0 + K_CHUNK).min(p);
            let mut ig = i0;
            while ig < i1 {
                let ie = (ig + 4).min(i1);
                let mut j = j0;
                if ie - ig == 4 {
                    // Columns j < ig belong to all four rows of the group.
                    let jc = j1.min(ig);
                    let a = [
                        &row(ig)[k0..k1],
                        &row(ig + 1)[k0..k1],
                        &row(ig + 2)[k0..k1],
                        &row(ig + 3)[k0..k1],
                    ];
                    while j + 2 <= jc {
                        let v = tile::<DOT, FMA>(a, [&row(j)[k0..k1], &row(j + 1)[k0..k1]]);
                        for r in 0..4 {
                            let o = tri(ig + r) - base + j;
                            out[o] += v[2 * r];
                            out[o + 1] += v[2 * r + 1];
                        }
                        j += 2;
                    }
                }
                // What the tiles left: for row i, the columns j..min(j1, i).
                for i in ig..ie {
                    let a = &row(i)[k0..k1];
                    let o = tri(i) - base;
                    for jj in j..j1.min(i) {
                        out[o + jj] += pair::<DOT, FMA>(a, &row(jj)[k0..k1]);
                    }
                }
                ig = ie;
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn lower_block_fma<const DOT: bool>(
    x: &[f64],
    p: usize,
    i0: usize,
    i1: usize,
    out: &mut [f64],
) {
    lower_block_body::<DOT, true>(x, p, i0, i1, out)
}

/// Whether the fused multiply-add kernels can run on this CPU.
pub(crate) fn use_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

fn lower_block<const DOT: bool>(rows: &Rows, i0: usize, i1: usize, out: &mut [f64], fma: bool) {
    let x = rows.slice();
    #[cfg(target_arch = "x86_64")]
    if fma {
        // SAFETY: `fma` is only true when the CPU supports AVX2 and FMA (see `use_fma`).
        return unsafe { lower_block_fma::<DOT>(x, rows.p, i0, i1, out) };
    }
    let _ = fma;
    lower_block_body::<DOT, false>(x, rows.p, i0, i1, out)
}

/// Squared distances from rows `i0 <= i < i1` of `x` to every row of `y` (both with `p`
/// features, `y` row-major with `m` rows), row-major `(i1 - i0) x m` into `out`.
#[inline(always)]
fn rect_block_body<const FMA: bool>(
    x: &[f64],
    p: usize,
    i0: usize,
    i1: usize,
    y: &[f64],
    out: &mut [f64],
) {
    let m = y.len() / p;
    assert_eq!(out.len(), (i1 - i0) * m);
    out.fill(0.0);
    let xr = |i: usize| &x[i * p..(i + 1) * p];
    let yr = |j: usize| &y[j * p..(j + 1) * p];
    for k0 in (0..p).step_by(K_CHUNK) {
        let k1 = (k0 + K_CHUNK).min(p);
        let mut ig = i0;
        while ig < i1 {
            let ie = (ig + 4).min(i1);
            let mut j = 0;
            if ie - ig == 4 {
                let a = [
                    &xr(ig)[k0..k1],
                    &xr(ig + 1)[k0..k1],
                    &xr(ig + 2)[k0..k1],
                    &xr(ig + 3)[k0..k1],
                ];
                while j + 2 <= m {
                    let v = tile::<false, FMA>(a, [&yr(j)[k0..k1], &yr(j + 1)[k0..k1]]);
                    for r in 0..4 {
                        let o = (ig + r - i0) * m + j;
                        out[o] += v[2 * r];
                        out[o + 1] += v[2 * r + 1];
                    }
                    j += 2;
                }
            }
            for i in ig..ie {
                let a = &xr(i)[k0..k1];
                for jj in j..m {
                    out[(i - i0) * m + jj] += pair::<false, FMA>(a, &yr(jj)[k0..k1]);
                }
            }
            ig = ie;
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn rect_block_fma(x: &[f64], p: usize, i0: usize, i1: usize, y: &[f64], out: &mut [f64]) {
    rect_block_body::<true>(x, p, i0, i1, y, out)
}

/// Euclidean distances from rows `i0..i1` of `rows` to the rows of `y` (row-major, same width).
fn rect_distances(rows: &Rows, i0: usize, i1: usize, y: &[f64], out: &mut [f64], fma: bool) {
    let x = rows.slice();
    #[cfg(target_arch = "x86_64")]
    if fma {
        // SAFETY: `fma` is only true when the CPU supports AVX2 and FMA (see `use_fma`).
        unsafe { rect_block_fma(x, rows.p, i0, i1, y, out) };
        out.iter_mut().for_each(|v| *v = v.sqrt());
        return;
    }
    let _ = fma;
    rect_block_body::<false>(x, rows.p, i0, i1, y, out);
    out.iter_mut().for_each(|v| *v = v.sqrt());
}

/// Euclidean distances `d(i, j)`, `i0 <= i < i1`, `j < i`, packed, into `out`.
pub(crate) fn distance_block(rows: &Rows, i0: usize, i1: usize, out: &mut [f64], fma: bool) {
    lower_block::<false>(rows, i0, i1, out, fma);
    out.iter_mut().for_each(|v| *v = v.sqrt());
}

/// The fixed row blocks `[i0, i1)` covering `0..n`.
pub(crate) fn blocks(n: usize) -> Vec<(usize, usize)> {
    (0..n.div_ceil(ROW_BLOCK))
        .map(|b| (b * ROW_BLOCK, ((b + 1) * ROW_BLOCK).min(n)))
        .collect()
}

/// Split a packed vector of length `tri(n)` into the disjoint segments of the row blocks.
pub(crate) fn packed_segments(v: &mut [f64], n: usize) -> Vec<((usize, usize), &mut [f64])> {
    let mut out = Vec::new();
    let mut rest = v;
    for (i0, i1) in blocks(n) {
        let (head, tail) = rest.split_at_mut(tri(i1) - tri(i0));
        out.push(((i0, i1), head));
        rest = tail;
    }
    out
}

// ------------------------------------------------------------------------------ dCor distances

/// Columns per panel of the distance-correlation kernel (two 4-lane vectors).
pub(crate) const PANEL: usize = 8;
/// Rows per register tile of the distance-correlation kernel.
const PANEL_ROWS: usize = 6;
/// Features per pass of the distance-correlation kernel (a panel's chunk stays in L1).
const PANEL_K: usize = 256;
/// Bytes of the panels one pass over a block's row groups reads (kept in L2).
const PANEL_RUN_BYTES: usize = 1 << 18;

/// The rows of `x` laid out for [`dcor_distances`]: panel `q` holds rows `q PANEL ..
/// (q + 1) PANEL` feature-major (`p x PANEL`, row `k` the `k`-th feature of the panel's rows),
/// zero past row `n`. Built in parallel, one task per group of panels, into memory that is not
/// zeroed first (a zeroed allocation of this size is a serial fill by the allocator: 1 ms of a
/// 27 ms distance correlation at n = 3000 on 2 threads).
pub(crate) fn pack_panels(rows: &Rows) -> Vec<f64> {
    let (n, p) = (rows.n, rows.p);
    let x = rows.slice();
    let per = PANEL * p;
    let len = n.div_ceil(PANEL) * per;
    let mut out: Vec<f64> = crate::memory::with_capacity(
        len,
        "the packed rows of a distance matrix",
        "subsample the rows",
    );
    out.spare_capacity_mut()[..len]
        .par_chunks_mut(per * 16)
        .enumerate()
        .for_each(|(c, chunk)| {
            for (q, panel) in chunk.chunks_mut(per).enumerate() {
                let j0 = (c * 16 + q) * PANEL;
                let live = PANEL.min(n - j0);
                for w in 0..live {
                    let row = &x[(j0 + w) * p..(j0 + w + 1) * p];
                    for (k, &v) in row.iter().enumerate() {
                        panel[k * PANEL + w].write(v);
                    }
                }
                for k in 0..p {
                    for slot in &mut panel[k * PANEL + live..(k + 1) * PANEL] {
                        slot.write(0.0);
                    }
                }
            }
        });
    // SAFETY: the tasks wrote every one of the `len` values: each panel's `live` rows and,
    // past them, its zero rows (the chunks cover `out[..len]`, the panels each chunk).
    unsafe { out.set_len(len) };
    out
}

/// `acc[r][w] += sum_k (x_r[k] - panel[k][w])^2`, the features in order (one `fma` chain per
/// pair): the squared distances of `PANEL_ROWS` rows to the rows of one panel chunk.
#[inline(always)]
fn panel_tile<const FMA: bool>(
    x: [&[f64]; PANEL_ROWS],
    panel: &[f64],
    acc: &mut [[f64; PANEL]; PANEL_ROWS],
) {
    let (cols, rest) = panel.as_chunks::<PANEL>();
    assert!(rest.is_empty() && x.iter().all(|r| r.len() == cols.len()));
    let mut a = *acc;
    for (k, col) in cols.iter().enumerate() {
        for r in 0..PANEL_ROWS {
            let b = x[r][k];
            for w in 0..PANEL {
                a[r][w] = term::<false, FMA>(b, col[w], a[r][w]);
            }
        }
    }
    *acc = a;
}

/// The output of [`dcor_distances`] for one block of rows `i0..i1`.
pub(crate) struct DcorBlock {
    /// `sum_{j < i} d(i, j)` for each row `i` of the block.
    pub(crate) rows: Vec<f64>,
    /// `sum_{i0 <= i < i1, i > j} d(i, j)` for each column `j < i1`.
    pub(crate) cols: Vec<f64>,
}

/// Euclidean distances `d(i, j)`, `i0 <= i < i1`, `j < i`, packed into `out` (length
/// `tri(i1) - tri(i0)`), from `panels` ([`pack_panels`] of the same rows), and the block's
/// parts of the row sums of the full symmetric matrix ([`DcorBlock`]).
///
/// Every squared distance is one `fma` chain over the features in order (continued, not
/// restarted, across chunks of [`PANEL_K`] features), so `d(i, j)` does not depend on the
/// block, the tile or the thread count. Row sums add their columns in 12 lanes (`j mod
/// PANEL`), reduced in a fixed order; column sums add their rows in order.
#[inline(always)]
fn dcor_distances_body<const SUMS: bool, const FMA: bool>(
    x: &[f64],
    p: usize,
    panels: &[f64],
    i0: usize,
    i1: usize,
    out: &mut [f64],
) -> DcorBlock {
    let base = tri(i0);
    assert_eq!(out.len(), tri(i1) - base);
    let mut lanes = vec![[0.0f64; PANEL]; if SUMS { i1 - i0 } else { 0 }];
    let mut cols = vec![0.0f64; if SUMS { i1 } else { 0 }];
    // Panels with a column j < i1 - 1 (column i1 - 2 is the largest one the block needs), in
    // runs that stay in L2 while every row group of the block meets them; each row's outputs
    // are then written in order.
    let npanel = (i1.saturating_sub(1)).div_ceil(PANEL);
    for k0 in (0..p).step_by(PANEL_K) {
        let k1 = (k0 + PANEL_K).min(p);
        let last = k1 == p;
        let run = (PANEL_RUN_BYTES / (8 * PANEL * (k1 - k0))).max(1);
        for t0 in (0..npanel).step_by(run) {
            crate::interrupt::checkpoint();
            for g in (i0..i1).step_by(PANEL_ROWS) {
                let gl = (g + PANEL_ROWS).min(i1);
                let ri: [usize; PANEL_ROWS] = std::array::from_fn(|r| (g + r).min(i1 - 1));
                let xr = ri.map(|i| &x[i * p + k0..i * p + k1]);
                for q in t0..(gl - 1).div_ceil(PANEL).min(t0 + run) {
                    let j0 = q * PANEL;
                    let pan = &panels[(q * p + k0) * PANEL..(q * p + k1) * PANEL];
                    let mut acc = [[0.0f64; PANEL]; PANEL_ROWS];
                    if k0 > 0 {
                        for (r, &i) in ri.iter().enumerate() {
                            let o = tri(i) - base + j0;
                            let width = PANEL.min(i.saturating_sub(j0));
                            acc[r][..width].copy_from_slice(&out[o..o + width]);
                        }
                    }
                    panel_tile::<FMA>(xr, pan, &mut acc);
                    if last {
                        for a in acc.iter_mut() {
                            for v in a.iter_mut() {
                                *v = v.sqrt();
                            }
                        }
                    }
                    for (r, i) in (g..gl).enumerate() {
                        let width = PANEL.min(i.saturating_sub(j0));
                        let o = tri(i) - base + j0;
                        if width == PANEL {
                            out[o..o + PANEL].copy_from_slice(&acc[r]);
                            if SUMS && last {
                                let (l, c) = (&mut lanes[i - i0], &mut cols[j0..j0 + PANEL]);
                                for w in 0..PANEL {
                                    l[w] += acc[r][w];
                                    c[w] += acc[r][w];
                                }
                            }
                        } else {
                            out[o..o + width].copy_from_slice(&acc[r][..width]);
                            if SUMS && last {
                                for w in 0..width {
                                    lanes[i - i0][w] += acc[r][w];
                                    cols[j0 + w] += acc[r][w];
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    let rows = lanes.iter().map(|l| l.iter().sum()).collect();
    DcorBlock { rows, cols }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dcor_distances_fma<const SUMS: bool>(
    x: &[f64],
    p: usize,
    panels: &[f64],
    i0: usize,
    i1: usize,
    out: &mut [f64],
) -> DcorBlock {
    dcor_distances_body::<SUMS, true>(x, p, panels, i0, i1, out)
}

/// See [`dcor_distances_body`]; with `SUMS`, the row and column sums too (else empty).
pub(crate) fn dcor_distances<const SUMS: bool>(
    rows: &Rows,
    panels: &[f64],
    i0: usize,
    i1: usize,
    out: &mut [f64],
    fma: bool,
) -> DcorBlock {
    let x = rows.slice();
    #[cfg(target_arch = "x86_64")]
    if fma {
        // SAFETY: `fma` is only true when the CPU supports AVX2 and FMA (see `use_fma`).
        return unsafe { dcor_distances_fma::<SUMS>(x, rows.p, panels, i0, i1, out) };
    }
    let _ = fma;
    dcor_distances_body::<SUMS, false>(x, rows.p, panels, i0, i1, out)
}

// ------------------------------------------------------------------------------ full matrices

/// The full n x n matrix of Euclidean distances between the rows of `x` (zero diagonal,
/// exactly symmetric).
pub fn distance_matrix(x: Input) -> Result<Array2<f64>> {
    let rows = Rows::new(x, "X")?;
    crate::memory::check_fits(
        8.0 * (rows.n as f64).powi(2),
        &format!("the {0} x {0} distance matrix", rows.n),
        FULL_ALTERNATIVE,
    )?;
    Ok(full_from_blocks(rows.n, |i0, i1, buf, fma| {
        distance_block(&rows, i0, i1, buf, fma)
    }))
}

/// The full n x n matrix `D_X - D_Y` of two Euclidean distance matrices (for its spectral
/// norm), built without holding either matrix.
pub fn distance_difference(x: Input, y: Input) -> Result<Array2<f64>> {
    let (rx, ry) = (Rows::new(x, "X")?, Rows::new(y, "Y")?);
    check_pair(&rx, &ry, 1)?;
    crate::memory::check_fits(
        8.0 * (rx.n as f64).powi(2),
        &format!("the {0} x {0} matrix D_X - D_Y", rx.n),
        FULL_ALTERNATIVE,
    )?;
    Ok(full_from_blocks(rx.n, |i0, i1, buf, fma| {
        distance_block(&rx, i0, i1, buf, fma);
        let mut other = vec![0.0; buf.len()];
        distance_block(&ry, i0, i1, &mut other, fma);
        buf.iter_mut().zip(&other).for_each(|(a, b)| *a -= b);
    }))
}

/// What to do when a full n x n matrix does not fit.
const FULL_ALTERNATIVE: &str = "subsample the rows, or use a streamed measure (the Frobenius \
     norm of D_X - D_Y and distance_correlation hold no n x n matrix)";

/// Assemble a symmetric n x n matrix with zero diagonal from packed lower-triangle blocks.
fn full_from_blocks<F>(n: usize, block: F) -> Array2<f64>
where
    F: Fn(usize, usize, &mut [f64], bool) + Sync,
{
    let fma = use_fma();
    let mut d = Array2::from_shape_vec(
        (n, n),
        crate::memory::zeroed_f64(n * n, "an n x n distance matrix", FULL_ALTERNATIVE),
    )
    .expect("n * n elements");
    d.axis_chunks_iter_mut(Axis(0), ROW_BLOCK)
        .into_par_iter()
        .enumerate()
        .for_each(|(b, mut chunk)| {
            let (i0, i1) = (b * ROW_BLOCK, (b * ROW_BLOCK + chunk.nrows()));
            let mut buf = vec![0.0; tri(i1) - tri(i0)];
            block(i0, i1, &mut buf, fma);
            for i in i0..i1 {
                let src = &buf[tri(i) - tri(i0)..tri(i + 1) - tri(i0)];
                let mut r = chunk.row_mut(i - i0);
                let r = r.as_slice_mut().expect("standard layout");
                r[..i].copy_from_slice(src);
            }
        });
    crate::linalg::mirror_lower(&mut d);
    d
}

// ------------------------------------------------------------------------------ streamed sums

/// `||D_X - D_Y||_F` over the full matrices (both triangles), streamed: no n x n matrix.
pub fn rsm_fro_diff(x: Input, y: Input) -> Result<f64> {
    let (rx, ry) = (Rows::new(x, "X")?, Rows::new(y, "Y")?);
    check_pair(&rx, &ry, 1)?;
    let fma = use_fma();
    // The largest blocks (the last rows) first, one per task, so that the pass ends on small
    // ones; their sums are then added in block order.
    let mut parts: Vec<f64> = blocks(rx.n)
        .into_par_iter()
        .rev()
        .with_max_len(1)
        .map(|(i0, i1)| {
            let len = tri(i1) - tri(i0);
            let (mut a, mut b) = (vec![0.0; len], vec![0.0; len]);
            distance_block(&rx, i0, i1, &mut a, fma);
            distance_block(&ry, i0, i1, &mut b, fma);
            a.iter()
                .zip(&b)
                .map(|(u, v)| (u - v) * (u - v))
                .sum::<f64>()
        })
        .collect();
    parts.reverse();
    Ok((2.0 * parts.iter().sum::<f64>()).sqrt())
}

/// Rows sampled to estimate the row means of a distance matrix (the shift of `dcov_sums`).
pub const MEAN_SAMPLE: usize = 128;
/// Values of partial row sums held at once in [`dcov_sums`] (bounds the memory of the pass):
/// a wave is as many row blocks as hold this many, at least [`WAVE`].
const WAVE_VALUES: usize = 1 << 22;
/// The fewest row blocks of a wave.
const WAVE: usize = 32;

/// Estimated row means of the distance matrix of `rows`: the mean distance from each row to
/// `min(n, MEAN_SAMPLE)` evenly spaced rows (exact when `n <= MEAN_SAMPLE`).
fn sampled_row_means(rows: &Rows, fma: bool) -> Vec<f64> {
    let (n, p) = (rows.n, rows.p);
    let m = n.min(MEAN_SAMPLE);
    let x = rows.slice();
    let mut sample = Vec::with_capacity(m * p);
    for k in 0..m {
        let j = k * n / m;
        sample.extend_from_slice(&x[j * p..(j + 1) * p]);
    }
    let parts: Vec<Vec<f64>> = blocks(n)
        .into_par_iter()
        .with_max_len(1)
        .map(|(i0, i1)| {
            let mut d = vec![0.0; (i1 - i0) * m];
            rect_distances(rows, i0, i1, &sample, &mut d, fma);
            d.chunks_exact(m)
                .map(|r| r.iter().sum::<f64>() / m as f64)
                .collect()
        })
        .collect();
    parts.concat()
}

/// Accumulators of one wave of row blocks in [`dcov_sums`].
struct Sums {
    /// `sum a~ b~`, `sum a~^2`, `sum b~^2` over the strict lower triangle.
    off: [f64; 3],
    /// The block's contributions to the off-diagonal row sums of `a~` and `b~`: each pair
    /// `(i, j)`, `j < i`, adds to rows `i` and `j` (rows `0..i1`).
    ra: Vec<f64>,
    rb: Vec<f64>,
}

/// The sums of the doubly centred distance matrices `A = H a H`, `B = H b H` over all `n^2`
/// entries: `(sum A_ij B_ij, sum A_ij^2, sum B_ij^2)`, in one streamed pass.
///
/// For symmetric `M, N` with row sums `r^M, r^N` and totals `S^M, S^N`,
/// `<HMH, HNH> = <M, N> - (2/n) r^M.r^N + S^M S^N / n^2`. Applied to `a` itself this
/// identity cancels badly (distances have a large common mean), so it is applied to the
/// shifted `a~_ij = a_ij - m_i - m_j + g`, with `m_i` the mean distance from row `i` to a
/// sample of rows and `g` the mean of the `m_i`: double centring removes any shift of the
/// form `u_i + u_j + c` exactly (`H a~ H = H a H`), and `a~` is already nearly centred, so
/// the three terms are small and nothing large cancels.
/// Memory: O(threads * ROW_BLOCK * n) values plus at most [`WAVE_VALUES`] (or `2 WAVE n`)
/// partial row sums, no n x n matrix.
pub fn dcov_sums(x: Input, y: Input) -> Result<(f64, f64, f64)> {
    let (rx, ry) = (Rows::new(x, "X")?, Rows::new(y, "Y")?);
    check_pair(&rx, &ry, 2)?;
    Ok(dcov_sums_in_waves(
        &rx,
        &ry,
        WAVE.max(WAVE_VALUES / (2 * rx.n)),
    ))
}

/// [`dcov_sums`] with `per_wave` row blocks per wave. The blocks' partial sums are added in
/// block order whatever the waves, so the result does not depend on `per_wave`.
fn dcov_sums_in_waves(rx: &Rows, ry: &Rows, per_wave: usize) -> (f64, f64, f64) {
    let n = rx.n;
    let nf = n as f64;
    let fma = use_fma();
    let (ma, mb) = (sampled_row_means(rx, fma), sampled_row_means(ry, fma));
    let (pa, pb) = (pack_panels(rx), pack_panels(ry));
    let ga = ma.iter().sum::<f64>() / nf;
    let gb = mb.iter().sum::<f64>() / nf;
    let (mut ra, mut rb) = (vec![0.0; n], vec![0.0; n]);
    let mut off = [0.0f64; 3];
    // Waves as large as the memory bound allows (all 47 blocks of n = 3000 in one): a wave
    // ends with its slowest block, so fewer waves leave threads idle less often.
    for wave in blocks(n).chunks(per_wave) {
        crate::interrupt::checkpoint();
        // The largest blocks first, so that the wave ends on small ones (less idle time);
        // their sums are then added in block order.
        let mut parts: Vec<Sums> = wave
            .par_iter()
            .rev()
            .with_max_len(1)
            .map(|&(i0, i1)| {
                let len = tri(i1) - tri(i0);
                let (mut a, mut b) = (vec![0.0; len], vec![0.0; len]);
                dcor_distances::<false>(rx, &pa, i0, i1, &mut a, fma);
                dcor_distances::<false>(ry, &pb, i0, i1, &mut b, fma);
                shifted_block_sums(&a, &b, i0, i1, (&ma, ga), (&mb, gb))
            })
            .collect();
        parts.reverse();
        for s in &parts {
            off.iter_mut().zip(&s.off).for_each(|(t, v)| *t += v);
            ra.iter_mut().zip(&s.ra).for_each(|(t, v)| *t += v);
            rb.iter_mut().zip(&s.rb).for_each(|(t, v)| *t += v);
        }
    }
    // Full matrices: the strict lower triangle twice, plus the diagonal a~_ii = g - 2 m_i.
    let mut full = [2.0 * off[0], 2.0 * off[1], 2.0 * off[2]];
    let (mut ta, mut tb) = (0.0f64, 0.0f64);
    let mut dot = [0.0f64; 3];
    for i in 0..n {
        let (da, db) = (ga - 2.0 * ma[i], gb - 2.0 * mb[i]);
        full[0] += da * db;
        full[1] += da * da;
        full[2] += db * db;
        // Row sums of the full shifted matrices: `ra[i]` holds row i's entries left of the
        // diagonal and, from later rows, column i's below it; add the diagonal.
        let (pa, pb) = (ra[i] + da, rb[i] + db);
        dot[0] += pa * pb;
        dot[1] += pa * pa;
        dot[2] += pb * pb;
        ta += pa;
        tb += pb;
    }
    let n2 = nf * nf;
    (
        full[0] - 2.0 / nf * dot[0] + ta * tb / n2,
        full[1] - 2.0 / nf * dot[1] + ta * ta / n2,
        full[2] - 2.0 / nf * dot[2] + tb * tb / n2,
    )
}

/// The [`Sums`] of one block of packed distance rows `[i0, i1)` after the shift.
fn shifted_block_sums(
    a: &[f64],
    b: &[f64],
    i0: usize,
    i1: usize,
    (ma, ga): (&[f64], f64),
    (mb, gb): (&[f64], f64),
) -> Sums {
    let base = tri(i0);
    let mut s = Sums {
        off: [0.0; 3],
        ra: vec![0.0; i1],
        rb: vec![0.0; i1],
    };
    for i in i0..i1 {
        let (ci, di) = (ga - ma[i], gb - mb[i]);
        let ra_row = &a[tri(i) - base..tri(i + 1) - base];
        let rb_row = &b[tri(i) - base..tri(i + 1) - base];
        let mut acc = [[0.0f64; 5]; LANES];
        let (ca, ta) = ra_row.as_chunks::<LANES>();
        let (cb, tb) = rb_row.as_chunks::<LANES>();
        let (cma, tma) = ma[..i].as_chunks::<LANES>();
        let (cmb, tmb) = mb[..i].as_chunks::<LANES>();
        let (cra, tra) = s.ra[..i].as_chunks_mut::<LANES>();
        let (crb, trb) = s.rb[..i].as_chunks_mut::<LANES>();
        for (((((u, v), p), q), wa), wb) in ca.iter().zip(cb).zip(cma).zip(cmb).zip(cra).zip(crb) {
            for l in 0..LANES {
                let aa = u[l] - p[l] + ci;
                let bb = v[l] - q[l] + di;
                acc[l][0] += aa * bb;
                acc[l][1] += aa * aa;
                acc[l][2] += bb * bb;
                acc[l][3] += aa;
                acc[l][4] += bb;
                wa[l] += aa;
                wb[l] += bb;
            }
        }
        let mut t = [0.0f64; 5];
        for (((((u, v), p), q), wa), wb) in ta.iter().zip(tb).zip(tma).zip(tmb).zip(tra).zip(trb) {
            let aa = u - p + ci;
            let bb = v - q + di;
            t[0] += aa * bb;
            t[1] += aa * aa;
            t[2] += bb * bb;
            t[3] += aa;
            t[4] += bb;
            *wa += aa;
            *wb += bb;
        }
        let lane_sum = |k: usize| ((acc[0][k] + acc[2][k]) + (acc[1][k] + acc[3][k])) + t[k];
        for k in 0..3 {
            s.off[k] += lane_sum(k);
        }
        s.ra[i] += lane_sum(3);
        s.rb[i] += lane_sum(4);
    }
    s
}

/// Distance correlation (V-statistic, Székely, Rizzo & Bakirov 2007):
/// `sqrt(dCov2(X,Y) / sqrt(dCov2(X,X) dCov2(Y,Y)))`, a tiny negative numerator clipped to 0.
/// NaN when either representation is constant (all its distances are zero).
pub fn distance_correlation(x: Input, y: Input) -> Result<f64> {
    let (ab, aa, bb) = dcov_sums(x, y)?;
    if !(aa > 0.0 && bb > 0.0) {
        return Ok(f64::NAN);
    }
    let r = ab.max(0.0) / (aa.sqrt() * bb.sqrt());
    Ok(r.sqrt().min(1.0))
}

// ------------------------------------------------------------------------------ RSA

/// Rows centred by their own means and scaled to unit norm (`None` if a row is constant).
fn standardised_rows(x: &Rows) -> Option<Array2<f64>> {
    let p = x.p;
    let mut z = Array2::<f64>::zeros((x.n, p));
    let ok = z
        .axis_iter_mut(Axis(0))
        .into_par_iter()
        .zip(x.data.axis_iter(Axis(0)))
        .map(|(mut zr, xr)| {
            let xr = xr.as_slice().expect("standard layout");
            let zr = zr.as_slice_mut().expect("standard layout");
            let (lo, hi) = xr
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &v| {
                    (l.min(v), h.max(v))
                });
            if lo == hi {
                return false;
            }
            // Corrected two-pass mean: the residuals' own mean (the rounding of the first)
            // is removed too, so a large offset shared by the row leaves nothing behind.
            let mean = xr.iter().sum::<f64>() / p as f64;
            for (o, &v) in zr.iter_mut().zip(xr) {
                *o = v - mean;
            }
            let c = zr.iter().sum::<f64>() / p as f64;
            zr.iter_mut().for_each(|v| *v -= c);
            // Scale by the largest magnitude first, so that squaring cannot overflow or
            // underflow; then to unit norm.
            let big = zr.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            if big == 0.0 {
                return false;
            }
            zr.iter_mut().for_each(|v| *v /= big);
            let norm = zr.iter().map(|v| v * v).sum::<f64>().sqrt();
            zr.iter_mut().for_each(|v| *v /= norm);
            true
        })
        .collect::<Vec<bool>>()
        .into_iter()
        .all(|b| b);
    ok.then_some(z)
}

/// The strict lower triangle of the RSM of `x`, packed row by row (`None` when the
/// correlation RSM is undefined because a row has zero variance).
pub(crate) fn rsm_vector(x: &Rows, rsm: Rsm) -> Option<Vec<f64>> {
    let n = x.n;
    let fma = use_fma();
    let mut v = crate::memory::zeroed_f64(tri(n), "an RSM triangle", RSA_ALTERNATIVE);
    match rsm {
        Rsm::Euclidean => {
            packed_segments(&mut v, n)
                .into_par_iter()
                .rev()
                .with_max_len(1)
                .for_each(|((i0, i1), seg)| distance_block(x, i0, i1, seg, fma));
        }
        Rsm::Correlation => {
            let z = standardised_rows(x)?;
            let zr = Rows {
                data: CowArray::from(z),
                n,
                p: x.p,
            };
            packed_segments(&mut v, n)
                .into_par_iter()
                .rev()
                .with_max_len(1)
                .for_each(|((i0, i1), seg)| lower_block::<true>(&zr, i0, i1, seg, fma));
        }
    }
    Some(v)
}

/// A key whose unsigned order is the numeric order of finite floats (-0.0 equals 0.0).
#[inline(always)]
pub(crate) fn sort_key(v: f64) -> u64 {
    let b = (v + 0.0).to_bits();
    if b >> 63 == 1 {
        !b
    } else {
        b | (1 << 63)
    }
}

/// A (value, index) pair of a ranking.
type Keyed = (f64, u64);

/// Values per bucket, on average, of the first (parallel) pass of a ranking: a bucket of
/// 16-byte pairs then fits the fast caches of the thread that finishes it.
const RANK_RUN: usize = 1024;
/// At most this many buckets per split (more streams would thrash the scatter's caches and
/// address translation).
const RANK_FANOUT: usize = if cfg!(test) { 1 << 6 } else { 1 << 13 };
/// Values per chunk of the parallel histogram and scatter (at least; see [`rank_chunks`]).
const RANK_CHUNK: usize = 1 << 16;
/// At most this many chunks (bounds the per-chunk histograms).
const RANK_CHUNKS: usize = 256;
/// At most this many buckets per parallel task of a ranking's second pass (about 16,000
/// values), so that the pass ends on a short task: a task, once started, is not split again,
/// and tasks of a few thousand buckets left one thread working alone for milliseconds.
const RANK_TASK: usize = 16;
/// Values per bucket, on average, when a run is split again inside the cache.
const RANK_SUB: usize = 4;
/// Runs at most this long are ranked by counting (see [`rank_small`]).
const RANK_SMALL: usize = 16;
/// A run longer than this is sorted by the parallel sort (only a value that is far denser
/// than the average, such as one big tie group, gives a run this long).
/// (The unit tests lower this and [`RANK_FANOUT`] to reach every path on small inputs.)
const RANK_BIG: usize = if cfg!(test) { 1 << 14 } else { 1 << 20 };
/// Splits of a run beyond this depth fall back to a sort (adversarial value spacings).
const RANK_DEPTH: usize = 8;

/// Positions `0..len` cut into the chunks of the parallel histogram and scatter.
fn rank_chunks(len: usize) -> usize {
    len.div_ceil(RANK_CHUNK).clamp(1, RANK_CHUNKS)
}

/// The equal-width buckets `0..nb` of the values `lo..=hi` (`lo < hi`): a function monotone in
/// the value that puts `lo` in bucket 0 and `hi` in bucket `nb - 1`; `None` when the width
/// is not representable (then the caller sorts). Halves, so that `hi - lo` cannot overflow.
#[inline(always)]
fn value_buckets(lo: f64, hi: f64, nb: usize) -> Option<impl Fn(f64) -> usize + Copy> {
    let base = 0.5 * lo;
    let span = 0.5 * hi - base;
    let scale = nb as f64 / span;
    let top = nb - 1;
    (span > 0.0 && scale.is_finite())
        .then_some(move |x: f64| (((0.5 * x - base) * scale) as usize).min(top))
}

/// Least and greatest of some values.
#[inline(always)]
fn value_range(it: impl Iterator<Item = f64>) -> (f64, f64) {
    it.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), x| {
        (l.min(x), h.max(x))
    })
}

/// The average rank of the positions `s..e` of a sorted run that starts at global position
/// `s0`, and the tie term `t^3 - t` of the group.
#[inline(always)]
fn tie_group(s0: usize, s: usize, e: usize) -> (f64, u128) {
    let t = (e - s) as u128;
    // Positions s0+s+1 ..= s0+e (1-based) share the average rank (2 s0 + s + 1 + e) / 2.
    ((2 * s0 + s + 1 + e) as f64 / 2.0, t * t * t - t)
}

/// Write the average ranks of a run sorted by value (positions `s0..s0 + run.len()` of the
/// whole sorted order) to `out`; the run's tie sum `sum (t^3 - t)`.
fn emit_sorted(run: &[Keyed], s0: usize, out: SyncPtr) -> u128 {
    let mut ties = 0;
    let mut s = 0;
    while s < run.len() {
        let x = run[s].0;
        let mut e = s + 1;
        while e < run.len() && run[e].0 == x {
            e += 1;
        }
        let (r, t) = tie_group(s0, s, e);
        ties += t;
        for &(_, idx) in &run[s..e] {
            // SAFETY: each index of the ranked vector appears once among all runs.
            unsafe { *out.0.add(idx as usize) = r };
        }
        s = e;
    }
    ties
}

/// Sort a run by value (-0.0 next to 0.0, which it equals) and write its ranks.
fn sort_and_emit(run: &mut [Keyed], s0: usize, out: SyncPtr) -> u128 {
    run.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
    emit_sorted(run, s0, out)
}

/// Rank a short run (at most [`RANK_SMALL`] pairs, positions `s0..` of the sorted order) by
/// counting, for each pair, the values below and equal to its own (branch-free, no sort); the
/// run's tie sum (a group of `t` equal values adds `t^2 - 1` per member, `t^3 - t` in all).
fn rank_small(run: &[Keyed], s0: usize, out: SyncPtr) -> u128 {
    let mut ties = 0usize;
    for &(x, idx) in run {
        let (mut less, mut eq) = (0usize, 0usize);
        for &(o, _) in run {
            less += (o < x) as usize;
            eq += (o == x) as usize;
        }
        // Positions s0+less+1 ..= s0+less+eq (1-based) share the average rank.
        let r = (2 * (s0 + less) + eq + 1) as f64 / 2.0;
        ties += eq * eq - 1;
        // SAFETY: each index of the ranked vector appears once among all runs.
        unsafe { *out.0.add(idx as usize) = r };
    }
    ties as u128
}

/// Rank one run of pairs (positions `s0..` of the sorted order) on one thread: split it into
/// about `len / RANK_SUB` buckets of equal width in value between its least and greatest
/// value (through `scratch`, as long as the run), then each bucket in turn. Every step is
/// monotone in the value, so equal values stay together and a bucket holds a contiguous range
/// of ranks; the greatest value never shares the least one's bucket, so every split makes
/// progress. Returns the tie sum.
fn rank_run(
    run: &mut [Keyed],
    scratch: &mut [Keyed],
    ids: &mut Vec<u32>,
    s0: usize,
    out: SyncPtr,
    depth: usize,
) -> u128 {
    let len = run.len();
    if len <= RANK_SMALL {
        return rank_small(run, s0, out);
    }
    let (lo, hi) = value_range(run.iter().map(|p| p.0));
    if lo == hi {
        let (r, t) = tie_group(s0, 0, len);
        for &(_, idx) in run.iter() {
            // SAFETY: as in `emit_sorted`.
            unsafe { *out.0.add(idx as usize) = r };
        }
        return t;
    }
    let nb = (len / RANK_SUB).clamp(2, RANK_FANOUT);
    let bucket = match value_buckets(lo, hi, nb) {
        Some(f) if depth < RANK_DEPTH => f,
        _ => return sort_and_emit(run, s0, out),
    };
    ids.clear();
    ids.extend(run.iter().map(|p| bucket(p.0) as u32));
    let mut at = vec![0u32; nb + 1];
    for &b in ids.iter() {
        at[b as usize + 1] += 1;
    }
    for b in 0..nb {
        at[b + 1] += at[b];
    }
    let starts = at.clone();
    for (&p, &b) in run.iter().zip(ids.iter()) {
        scratch[at[b as usize] as usize] = p;
        at[b as usize] += 1;
    }
    let mut ties = 0;
    for b in 0..nb {
        let (a, e) = (starts[b] as usize, starts[b + 1] as usize);
        if e - a <= RANK_SMALL {
            ties += rank_small(&scratch[a..e], s0 + a, out);
        } else {
            ties += rank_run(
                &mut scratch[a..e],
                &mut run[a..e],
                ids,
                s0 + a,
                out,
                depth + 1,
            );
        }
    }
    ties
}

/// Replace the (finite) values of `v` by their ranks, 1 to m, ties getting the average of
/// the ranks they span (as `scipy.stats.rankdata(method="average")`); returns the tie sum
/// `sum (t^3 - t)` over the tie groups of sizes `t`, an exact integer.
///
/// A two-level bucket sort by value. The first pass splits `v` into about `m / 1024` buckets
/// of equal width between its minimum and maximum, with per-chunk histograms and a parallel
/// scatter of (value, index) pairs (each chunk owns its cursors: no atomics); each bucket (a
/// "run") is then ranked on one thread inside the fast caches by [`rank_run`], which splits it
/// again by value into buckets of about 4 and ranks those by counting. A run that a dense value
/// made longer than [`RANK_BIG`] (a big tie group) is sorted by the parallel sort. Every
/// bucket function is monotone in the value, so equal values share a bucket and every bucket
/// holds a contiguous range of ranks: `O(m)` work for the smooth distributions of RSM
/// entries. Ranks depend on the values only, so they do not depend on the thread count.
fn rank_core(v: &mut [f64]) -> u128 {
    let m = v.len();
    if m == 0 {
        return 0;
    }
    let (lo, hi) = v
        .par_chunks(CHUNK)
        .map(|c| {
            crate::interrupt::checkpoint();
            value_range(c.iter().copied())
        })
        .reduce(
            || (f64::INFINITY, f64::NEG_INFINITY),
            |a, b| (a.0.min(b.0), a.1.max(b.1)),
        );
    if lo == hi {
        let (r, t) = tie_group(0, 0, m);
        v.par_chunks_mut(CHUNK).for_each(|c| c.fill(r));
        return t;
    }
    let nb = (m / RANK_RUN).clamp(1, RANK_FANOUT);
    // A width that is not representable puts every value in bucket 0 (one run, sorted).
    let bucket = value_buckets(lo, hi, nb);
    let bucket = move |x: f64| bucket.map_or(0, |f| f(x));
    let nc = rank_chunks(m);
    let per = m.div_ceil(nc);
    let what = "the buckets of a ranking";
    // Per-chunk histograms, chunk-major; then, per bucket, each chunk's cursor relative to
    // the bucket's start, and the bucket's total.
    let mut counts = crate::memory::vec(nc * nb, 0usize, what, RSA_ALTERNATIVE);
    counts.par_chunks_mut(nb).enumerate().for_each(|(c, h)| {
        crate::interrupt::checkpoint();
        for &x in &v[c * per..((c + 1) * per).min(m)] {
            h[bucket(x)] += 1;
        }
    });
    let mut starts = crate::memory::vec(nb + 1, 0usize, what, RSA_ALTERNATIVE);
    {
        let cp = SyncPtr(counts.as_mut_ptr());
        starts[1..]
            .par_chunks_mut(1024)
            .enumerate()
            .for_each(|(g, tot)| {
                for (k, t) in tot.iter_mut().enumerate() {
                    let b = g * 1024 + k;
                    let mut run = 0;
                    for c in 0..nc {
                        // SAFETY: each bucket's column is touched by this task only.
                        let h = unsafe { &mut *cp.at(c * nb + b) };
                        let n = *h;
                        *h = run;
                        run += n;
                    }
                    *t = run;
                }
            });
    }
    for b in 0..nb {
        starts[b + 1] += starts[b];
    }
    let mut keyed: Vec<Keyed> =
        crate::memory::with_capacity(m, "the sort buffer of a ranking", RSA_ALTERNATIVE);
    {
        let dst = SyncPtr(keyed.as_mut_ptr());
        let vv: &[f64] = v;
        let starts = &starts;
        counts
            .par_chunks_mut(nb)
            .enumerate()
            .for_each(move |(c, cur)| {
                crate::interrupt::checkpoint();
                let i0 = c * per;
                for (i, &x) in vv[i0..((c + 1) * per).min(m)].iter().enumerate() {
                    let b = bucket(x);
                    let at = starts[b] + cur[b];
                    cur[b] += 1;
                    // SAFETY: the cursors hand out each position of `keyed` exactly once.
                    unsafe { dst.at(at).write((x, (i0 + i) as u64)) };
                }
            });
        // SAFETY: the scatter wrote every one of the m positions (the counts sum to m).
        unsafe { keyed.set_len(m) };
    }
    drop(counts);
    let out = SyncPtr(v.as_mut_ptr());
    let src = SyncPtr(keyed.as_mut_ptr());
    let starts = &starts;
    let ties: u128 = (0..nb)
        .into_par_iter()
        .with_min_len(4)
        .with_max_len(RANK_TASK)
        .map_init(
            || (Vec::new(), Vec::new()),
            |(scratch, ids): &mut (Vec<Keyed>, Vec<u32>), b| {
                let (s0, s1) = (starts[b], starts[b + 1]);
                // SAFETY: buckets are disjoint ranges of `keyed`, each handled by one task.
                let run = unsafe { std::slice::from_raw_parts_mut(src.at(s0), s1 - s0) };
                if run.len() > RANK_BIG {
                    return 0;
                }
                crate::interrupt::checkpoint();
                if scratch.len() < run.len() {
                    scratch.resize(run.len(), (0.0, 0));
                }
                rank_run(run, &mut scratch[..s1 - s0], ids, s0, out, 0)
            },
        )
        .sum();
    let mut big = 0;
    for b in 0..nb {
        let (s0, s1) = (starts[b], starts[b + 1]);
        if s1 - s0 > RANK_BIG {
            let run = &mut keyed[s0..s1];
            let watch = crate::interrupt::Watch::current();
            run.par_sort_unstable_by(|a, b| {
                watch.checkpoint();
                a.0.total_cmp(&b.0)
            });
            big += emit_sorted(run, s0, out);
        }
    }
    // Unmapping the buffer's pages is serial work in the kernel (about 2.5 ms per million
    // values): leave it to an idle worker instead of the caller.
    rayon::spawn(move || drop(keyed));
    ties + big
}

/// Replace the (finite) values of `v` by their ranks, 1 to m, ties getting the average of
/// the ranks they span (as `scipy.stats.rankdata(method="average")`); see [`rank_core`] for
/// the method.
pub fn rank_in_place(v: &mut [f64]) {
    rank_core(v);
}

/// Replace the (finite) values of `v` by their standardised average ranks, `(r - mean) /
/// ||r - mean||`: centred and of unit norm, so that the Spearman correlation of two vectors
/// is the dot product of theirs. `false` (and `v` unspecified) when `v` has fewer than 2
/// entries or all are equal.
///
/// The mean and norm are exact integers of the tie sizes, with no pass over the data: the
/// ranks 1..m have mean `(m + 1) / 2` (averaging a tie group keeps its sum), and
/// `sum (r - mean)^2 = (m^3 - m - sum (t^3 - t)) / 12` over the tie groups of sizes `t`
/// (averaging a group of `t` consecutive ranks removes `(t^3 - t) / 12` from the sum of
/// squares). So `z = (2 r - (m + 1)) / sqrt((m^3 - m - T) / 3)`, the numerator an exact
/// integer.
pub fn rank_standardised(v: &mut [f64]) -> bool {
    let m = v.len();
    if m < 2 {
        return false;
    }
    let ties = rank_core(v);
    let mm = m as u128;
    let four_ss = (mm * mm * mm - mm - ties) / 3;
    if four_ss == 0 {
        return false;
    }
    let norm = (four_ss as f64).sqrt();
    let shift = (m + 1) as f64;
    v.par_chunks_mut(CHUNK)
        .for_each(|c| c.iter_mut().for_each(|x| *x = (2.0 * *x - shift) / norm));
    true
}

/// Deterministic parallel sum of `f(i)` over `0..len` in fixed chunks.
pub(crate) fn chunked_sum<F: Fn(usize, usize) -> [f64; 3] + Sync>(len: usize, f: F) -> [f64; 3] {
    let parts: Vec<[f64; 3]> = (0..len.div_ceil(CHUNK))
        .into_par_iter()
        .map(|c| {
            crate::interrupt::checkpoint();
            f(c * CHUNK, ((c + 1) * CHUNK).min(len))
        })
        .collect();
    let mut t = [0.0; 3];
    for p in &parts {
        for k in 0..3 {
            t[k] += p[k];
        }
    }
    t
}

pub(crate) fn is_constant(v: &[f64]) -> bool {
    let parts: Vec<(f64, f64)> = v
        .par_chunks(CHUNK)
        .map(|c| {
            c.iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &x| {
                    (l.min(x), h.max(x))
                })
        })
        .collect();
    let (lo, hi) = parts
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), p| {
            (l.min(p.0), h.max(p.1))
        });
    lo == hi
}

/// Pearson's correlation of two equally long vectors (two passes: means, then centred
/// sums). NaN when either vector is constant (or has fewer than 2 entries).
pub fn pearson(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "pearson: lengths differ");
    let m = a.len();
    if m < 2 || is_constant(a) || is_constant(b) {
        return f64::NAN;
    }
    let s = chunked_sum(m, |i0, i1| {
        [
            a[i0..i1].iter().sum::<f64>(),
            b[i0..i1].iter().sum::<f64>(),
            0.0,
        ]
    });
    let (ma, mb) = (s[0] / m as f64, s[1] / m as f64);
    let c = chunked_sum(m, |i0, i1| {
        let mut t = [0.0; 3];
        for (&u, &v) in a[i0..i1].iter().zip(&b[i0..i1]) {
            let (du, dv) = (u - ma, v - mb);
            t[0] += du * dv;
            t[1] += du * du;
            t[2] += dv * dv;
        }
        t
    });
    if !(c[1] > 0.0 && c[2] > 0.0) {
        return f64::NAN;
    }
    (c[0] / (c[1].sqrt() * c[2].sqrt())).clamp(-1.0, 1.0)
}

/// Spearman's rank correlation (Pearson's correlation of the average ranks).
pub fn spearman(a: &[f64], b: &[f64]) -> f64 {
    let (mut ra, mut rb) = (a.to_vec(), b.to_vec());
    rank_in_place(&mut ra);
    rank_in_place(&mut rb);
    pearson(&ra, &rb)
}

/// Number of unordered pairs among the members of each run of equal values in `keys`
/// (already sorted): `sum t (t - 1) / 2` over the tie groups of sizes `t`.
fn tied_pairs<T: PartialEq>(keys: impl Iterator<Item = T>) -> u128 {
    let mut total: u128 = 0;
    let mut run: u128 = 0;
    let mut prev: Option<T> = None;
    for k in keys {
        if prev.as_ref() == Some(&k) {
            total += run;
            run += 1;
        } else {
            run = 1;
            prev = Some(k);
        }
    }
    total
}

/// Below this length the halves of [`sort_counting_inversions`] are sorted on one thread.
const MERGE_PAR_MIN: usize = 1 << 14;

/// Sort `v` ascending and return the number of strict inversions, the pairs `i < j` with
/// `v[i] > v[j]` (equal values are not inversions). Merge sort, `O(m log m)`; `buf` is
/// scratch of the same length. The count is an integer, so it does not depend on threads.
fn sort_counting_inversions(v: &mut [u64], buf: &mut [u64]) -> u128 {
    let m = v.len();
    if m <= 32 {
        // Insertion sort: each element moves past exactly the earlier, strictly larger ones.
        let mut count: u128 = 0;
        for i in 1..m {
            let x = v[i];
            let mut j = i;
            while j > 0 && v[j - 1] > x {
                v[j] = v[j - 1];
                j -= 1;
            }
            v[j] = x;
            count += (i - j) as u128;
        }
        return count;
    }
    let mid = m / 2;
    let (left, right) = {
        let (vl, vr) = v.split_at_mut(mid);
        let (bl, br) = buf.split_at_mut(mid);
        if m >= MERGE_PAR_MIN {
            rayon::join(
                || sort_counting_inversions(vl, bl),
                || sort_counting_inversions(vr, br),
            )
        } else {
            (
                sort_counting_inversions(vl, bl),
                sort_counting_inversions(vr, br),
            )
        }
    };
    if m >= 4096 {
        crate::interrupt::checkpoint(); // once per merge of a large block
    }
    let mut count = left + right;
    let (mut i, mut j, mut k) = (0, mid, 0);
    while i < mid && j < m {
        if v[j] < v[i] {
            // v[j] is smaller than every remaining left element: mid - i inversions.
            buf[k] = v[j];
            j += 1;
            count += (mid - i) as u128;
        } else {
            buf[k] = v[i];
            i += 1;
        }
        k += 1;
    }
    buf[k..k + (mid - i)].copy_from_slice(&v[i..mid]);
    k += mid - i;
    buf[k..].copy_from_slice(&v[j..]);
    v.copy_from_slice(buf);
    count
}

/// Kendall's tau-a of two equally long vectors of length `N` (Nili et al. 2014):
/// `(C - D) / (N (N - 1) / 2)` with `C` / `D` the concordant / discordant pairs, a pair tied
/// in either vector counting in neither. NaN when either vector is constant (or `N < 2`).
///
/// Exact counts in `O(N log N)` (Knight 1966): sort the pairs by `(a, b)`; the discordant
/// pairs are then the strict inversions of the `b` sequence (pairs tied in `a` are in `b`
/// order, so they give none), and with `n0 = N (N - 1) / 2`, `n1` / `n2` the pairs tied in
/// `a` / `b` and `n3` the pairs tied in both, `C + D = n0 - n1 - n2 + n3`.
pub fn kendall_tau_a(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "kendall_tau_a: lengths differ");
    let m = a.len();
    if m < 2 || is_constant(a) || is_constant(b) {
        return f64::NAN;
    }
    let mut pairs: Vec<(u64, u64)> = a
        .par_iter()
        .zip(b.par_iter())
        .map(|(&u, &v)| (sort_key(u), sort_key(v)))
        .collect();
    // Equal pairs are indistinguishable, so the unstable sort's result is unique.
    pairs.par_sort_unstable();
    let n1 = tied_pairs(pairs.iter().map(|p| p.0));
    let n3 = tied_pairs(pairs.iter().copied());
    let mut keys: Vec<u64> = pairs.iter().map(|p| p.1).collect();
    drop(pairs);
    let mut buf = vec![0u64; m];
    let discordant = sort_counting_inversions(&mut keys, &mut buf);
    let n2 = tied_pairs(keys.iter());
    let n0 = (m as u128) * (m as u128 - 1) / 2;
    let untied = (n0 + n3 - n1 - n2) as i128;
    let diff = untied - 2 * discordant as i128;
    (diff as f64 / n0 as f64).clamp(-1.0, 1.0)
}

/// Cosine `<a, b> / (||a|| ||b||)` of two equally long vectors, not centred. Each vector is
/// divided by its largest magnitude first, so no square overflows or underflows. NaN when
/// either vector is constant (the RSA convention, which covers the all-zero vector).
pub fn cosine(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "cosine: lengths differ");
    let m = a.len();
    if m < 2 || is_constant(a) || is_constant(b) {
        return f64::NAN;
    }
    let big = |v: &[f64]| {
        v.par_chunks(CHUNK)
            .map(|c| c.iter().fold(0.0f64, |t, x| t.max(x.abs())))
            .collect::<Vec<f64>>()
            .into_iter()
            .fold(0.0f64, f64::max)
    };
    let (sa, sb) = (1.0 / big(a), 1.0 / big(b));
    let c = chunked_sum(m, |i0, i1| {
        let mut t = [0.0; 3];
        for (&u, &v) in a[i0..i1].iter().zip(&b[i0..i1]) {
            let (u, v) = (u * sa, v * sb);
            t[0] += u * v;
            t[1] += u * u;
            t[2] += v * v;
        }
        t
    });
    (c[0] / (c[1].sqrt() * c[2].sqrt())).clamp(-1.0, 1.0)
}

/// The comparison of the two RSM triangles that `compare` names (for Spearman, the triangles
/// already hold their ranks).
pub fn compare_triangles(a: &[f64], b: &[f64], compare: Compare) -> f64 {
    match compare {
        Compare::Spearman | Compare::Pearson => pearson(a, b),
        Compare::KendallTauA => kendall_tau_a(a, b),
        Compare::Cosine => cosine(a, b),
    }
}

/// Representational similarity analysis (Kriegeskorte et al. 2008): the Pearson or Spearman
/// correlation of the strict lower triangles of the two RSMs. NaN when a row has zero
/// variance (correlation RSM) or when either triangle is constant.
pub fn rsa(x: Input, y: Input, rsm: Rsm, compare: Compare) -> Result<f64> {
    let (rx, ry) = (Rows::new(x, "X")?, Rows::new(y, "Y")?);
    check_pair(&rx, &ry, 3)?;
    let m = tri(rx.n) as f64;
    let per_value = compare.bytes_per_value();
    crate::memory::check_fits(
        per_value * m,
        &format!("rsa at n = {} (two RSM triangles of {m} values each)", rx.n),
        RSA_ALTERNATIVE,
    )?;
    let Some(mut vx) = rsm_vector(&rx, rsm) else {
        return Ok(f64::NAN);
    };
    if compare == Compare::Spearman {
        rank_in_place(&mut vx);
    }
    let Some(mut vy) = rsm_vector(&ry, rsm) else {
        return Ok(f64::NAN);
    };
    if compare == Compare::Spearman {
        rank_in_place(&mut vy);
    }
    Ok(compare_triangles(&vx, &vy, compare))
}

/// What to do when the RSM triangles do not fit.
pub(crate) const RSA_ALTERNATIVE: &str =
    "subsample the rows (the memory grows with n^2: half the rows need a quarter of it)";

/// The packed strict lower triangle of the RSM of `x` (`None` for an undefined correlation
/// RSM), for tests and for callers that compare one representation with many.
pub fn rsm_lower(x: Input, rsm: Rsm) -> Result<Option<Vec<f64>>> {
    let rx = Rows::new(x, "X")?;
    crate::memory::check_fits(
        8.0 * tri(rx.n) as f64,
        &format!("the RSM triangle of {} rows", rx.n),
        RSA_ALTERNATIVE,
    )?;
    Ok(rsm_vector(&rx, rsm))
}

/// Euclidean distances between the rows of a view, naive and slow: for tests only.
#[doc(hidden)]
pub fn naive_distances(x: ArrayView2<f64>) -> Array2<f64> {
    let n = x.nrows();
    Array2::from_shape_fn((n, n), |(i, j)| {
        x.row(i)
            .iter()
            .zip(x.row(j))
            .map(|(a, b)| (a - b) * (a - b))
            .sum::<f64>()
            .sqrt()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testutil::{in_pool, pseudo};

    #[test]
    fn distances_match_naive_across_blocks_tiles_and_chunks() {
        // n crosses row blocks and 4-row groups; p crosses K_CHUNK and the lane width.
        for &(n, p) in &[(2usize, 1usize), (3, 3), (7, 5), (131, 263), (70, 600)] {
            let x = pseudo(n, p, (n * p) as u64);
            let d = distance_matrix(Input::F64(x.view())).unwrap();
            let want = naive_distances(x.view());
            for i in 0..n {
                assert_eq!(d[[i, i]], 0.0);
                for j in 0..n {
                    assert_eq!(d[[i, j]], d[[j, i]]);
                    let tol = 1e-13 * want[[i, j]].max(1.0);
                    assert!(
                        (d[[i, j]] - want[[i, j]]).abs() <= tol,
                        "n={n} p={p} ({i},{j})"
                    );
                }
            }
        }
    }

    #[test]
    fn every_tile_reduces_a_pair_in_the_same_order() {
        let x = pseudo(11, 37, 5);
        let rows = Rows::new(Input::F64(x.view()), "X").unwrap();
        let mut out = vec![0.0; tri(11)];
        lower_block::<false>(&rows, 0, 11, &mut out, use_fma());
        for i in 0..11 {
            for j in 0..i {
                let direct = if use_fma() {
                    pair_1x1::<false, true>(
                        x.row(i).as_slice().unwrap(),
                        x.row(j).as_slice().unwrap(),
                    )
                } else {
                    pair_1x1::<false, false>(
                        x.row(i).as_slice().unwrap(),
                        x.row(j).as_slice().unwrap(),
                    )
                };
                assert_eq!(out[tri(i) + j], direct, "({i},{j})");
            }
        }
    }

    #[test]
    fn avx_and_portable_kernels_agree_bitwise() {
        if !use_fma() {
            return;
        }
        for p in [1usize, 4, 37, 256] {
            let x = pseudo(6, p, 17 + p as u64);
            let r = |i: usize| x.row(i).to_slice().unwrap();
            let (a, b) = ([r(0), r(1), r(2), r(3)], [r(4), r(5)]);
            // SAFETY: use_fma() checked the CPU.
            unsafe {
                assert_eq!(avx::tile_4x2::<false>(a, b), tile_4x2::<false, true>(a, b));
                assert_eq!(avx::tile_4x2::<true>(a, b), tile_4x2::<true, true>(a, b));
                assert_eq!(
                    avx::pair_1x1::<false>(r(0), r(5)),
                    pair_1x1::<false, true>(r(0), r(5))
                );
                assert_eq!(
                    avx::pair_1x1::<true>(r(0), r(5)),
                    pair_1x1::<true, true>(r(0), r(5))
                );
            }
            let t = tile_4x2::<false, true>(a, b);
            assert_eq!(t[3], pair_1x1::<false, true>(r(1), r(5)));
        }
    }

    #[test]
    fn duplicate_rows_and_integer_data_give_exact_distances() {
        let mut x = Array2::from_shape_fn((9, 6), |(i, j)| ((i * 7 + j * 3) % 5) as f64 + 1e6);
        let r = x.row(2).to_owned();
        x.row_mut(6).assign(&r);
        let d = distance_matrix(Input::F64(x.view())).unwrap();
        assert_eq!(d[[2, 6]], 0.0);
        let want = naive_distances(x.view());
        assert_eq!(d, want);
    }

    #[test]
    fn float32_and_strided_inputs_agree_with_float64() {
        let x = pseudo(40, 9, 3);
        let x32 = x.mapv(|v| v as f32);
        let d32 = distance_matrix(Input::F32(x32.view())).unwrap();
        let d64 = distance_matrix(Input::F64(x32.mapv(f64::from).view())).unwrap();
        assert_eq!(d32, d64);
        let xt = x.t().to_owned();
        let dt = distance_matrix(Input::F64(xt.t())).unwrap();
        assert_eq!(dt, distance_matrix(Input::F64(x.view())).unwrap());
    }

    fn naive_dcor(x: &Array2<f64>, y: &Array2<f64>) -> f64 {
        let n = x.nrows();
        let centre = |d: Array2<f64>| {
            let h = Array2::from_shape_fn((n, n), |(i, j)| {
                f64::from(u8::from(i == j)) - 1.0 / n as f64
            });
            h.dot(&d).dot(&h)
        };
        let a = centre(naive_distances(x.view()));
        let b = centre(naive_distances(y.view()));
        let (ab, aa, bb) = ((&a * &b).sum(), (&a * &a).sum(), (&b * &b).sum());
        (ab / (aa * bb).sqrt()).sqrt()
    }

    #[test]
    fn distance_correlation_matches_double_centring() {
        for &(n, p, q) in &[(2usize, 1usize, 1usize), (5, 2, 3), (150, 4, 7)] {
            let x = pseudo(n, p, 1 + n as u64);
            let y = pseudo(n, q, 2 + n as u64).mapv(|v| v * v) + x.column(0).insert_axis(Axis(1));
            let got = distance_correlation(Input::F64(x.view()), Input::F64(y.view())).unwrap();
            let want = naive_dcor(&x, &y);
            assert!((got - want).abs() < 1e-12, "n={n}: {got} vs {want}");
        }
        let c = Array2::<f64>::from_elem((6, 2), 0.3);
        let y = pseudo(6, 2, 9);
        assert!(
            distance_correlation(Input::F64(c.view()), Input::F64(y.view()))
                .unwrap()
                .is_nan()
        );
    }

    #[test]
    fn distance_covariance_sums_across_waves_and_the_sampled_shift() {
        // n = 2200: several waves of row blocks, and row means estimated from a sample.
        let n = 2200;
        let x = pseudo(n, 3, 21);
        let y = pseudo(n, 2, 22).mapv(|v| v.abs()) + x.column(1).insert_axis(Axis(1));
        let centred = |m: &Array2<f64>| {
            let d = naive_distances(m.view());
            let r: Vec<f64> = d
                .rows()
                .into_iter()
                .map(|row| row.sum() / n as f64)
                .collect();
            let g = r.iter().sum::<f64>() / n as f64;
            Array2::from_shape_fn((n, n), |(i, j)| d[[i, j]] - r[i] - r[j] + g)
        };
        let (a, b) = (centred(&x), centred(&y));
        let want = ((&a * &b).sum(), (&a * &a).sum(), (&b * &b).sum());
        let got = dcov_sums(Input::F64(x.view()), Input::F64(y.view())).unwrap();
        assert!((got.0 - want.0).abs() < 1e-10 * want.1.sqrt() * want.2.sqrt());
        assert!((got.1 - want.1).abs() < 1e-11 * want.1);
        assert!((got.2 - want.2).abs() < 1e-11 * want.2);
        // Waves of 5 of the 35 row blocks (n = 2200 is one wave by default): the same bits.
        let (rx, ry) = (
            Rows::new(Input::F64(x.view()), "X").unwrap(),
            Rows::new(Input::F64(y.view()), "Y").unwrap(),
        );
        assert_eq!(dcov_sums_in_waves(&rx, &ry, 5), got);
    }

    #[test]
    fn dcor_distances_and_their_sums_match_the_differences() {
        // n not a multiple of the tile (6 rows) or the panel (8); p = 300 crosses a chunk of
        // PANEL_K features (the chains continue across it); p = 1 a single feature.
        for &(n, p) in &[(2usize, 1usize), (53, 300), (131, 7), (9, 1)] {
            let x = pseudo(n, p, 40 + p as u64).mapv(|v| v * 3.0 + 1.0);
            let d = naive_distances(x.view());
            let rows = Rows::new(Input::F64(x.view()), "X").unwrap();
            let panels = pack_panels(&rows);
            for fma in [false, use_fma()] {
                let mut v = vec![f64::NAN; tri(n)];
                let mut rsum = vec![0.0; n];
                let mut csum = vec![0.0; n];
                for ((i0, i1), seg) in packed_segments(&mut v, n) {
                    let b = dcor_distances::<true>(&rows, &panels, i0, i1, seg, fma);
                    rsum[i0..i1].copy_from_slice(&b.rows);
                    csum[..i1]
                        .iter_mut()
                        .zip(&b.cols)
                        .for_each(|(t, c)| *t += c);
                }
                for i in 0..n {
                    for j in 0..i {
                        let got = v[tri(i) + j];
                        assert!(
                            (got - d[[i, j]]).abs() <= 1e-14 * d[[i, j]],
                            "{n} {p} {i} {j}"
                        );
                    }
                    let left: f64 = (0..i).map(|j| d[[i, j]]).sum();
                    let below: f64 = (i + 1..n).map(|k| d[[k, i]]).sum();
                    assert!((rsum[i] - left).abs() <= 1e-13 * left.max(1.0));
                    assert!((csum[i] - below).abs() <= 1e-13 * below.max(1.0));
                }
                // One block for all rows: every pair is the same chain, so the same bits.
                let mut whole = vec![0.0; tri(n)];
                dcor_distances::<false>(&rows, &panels, 0, n, &mut whole, fma);
                assert_eq!(whole, v);
            }
        }
    }

    #[test]
    fn published_dcor_of_three_points() {
        // R energy values used in the dcor test suite: dCor^2 = 0.93387 and 0.31623.
        let m1 = ndarray::array![[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]];
        let m2 = ndarray::array![[7.0, 3.0, 6.0], [2.0, 1.0, 4.0], [3.0, 8.0, 1.0]];
        let m3 = ndarray::array![[1.0, 1.0, 1.0], [2.0, 1.0, 1.0], [1.0, 1.0, 1.0]];
        let r = distance_correlation(Input::F64(m1.view()), Input::F64(m2.view())).unwrap();
        assert!((r * r - 0.93387).abs() < 5e-6);
        let r = distance_correlation(Input::F64(m1.view()), Input::F64(m3.view())).unwrap();
        assert!((r * r - 0.31623).abs() < 5e-6);
    }

    /// Average ranks from a full sort (values below, values equal): the reference.
    fn naive_ranks(v: &[f64]) -> Vec<f64> {
        let mut sorted: Vec<f64> = v.iter().map(|x| x + 0.0).collect();
        sorted.sort_by(|a, b| a.total_cmp(b));
        v.iter()
            .map(|&x| {
                let below = sorted.partition_point(|&u| u < x) as f64;
                let equal = sorted.partition_point(|&u| u <= x) as f64 - below;
                below + (equal + 1.0) / 2.0
            })
            .collect()
    }

    /// Inputs that reach every path of the ranking: short runs, runs split once and again,
    /// sizes around the run, chunk and small-run boundaries, one run beyond `RANK_BIG`, value
    /// spacings that defeat equal-width buckets, subnormals, signed zeros and ties.
    fn ranking_cases() -> Vec<(&'static str, Vec<f64>)> {
        let smooth = |m: usize, seed: u64| pseudo(m, 1, seed).into_raw_vec_and_offset().0;
        let coarse = |m: usize, seed: u64, q: f64| -> Vec<f64> {
            smooth(m, seed)
                .iter()
                .map(|x| (x * q).round() / q)
                .collect()
        };
        let mut big: Vec<f64> = (0..RANK_BIG + 301)
            .map(|i| if i % 2 == 0 { i as f64 * 1e-9 } else { 0.5 })
            .collect();
        big[1] = 1e9; // one far value: every other value lands in the first bucket
        vec![
            ("one", vec![2.5]),
            ("two equal", vec![-1.0, -1.0]),
            ("small", vec![3.0, -1.0, 3.0, 0.0, -0.0, 7.5, 3.0]),
            ("RANK_SMALL", smooth(RANK_SMALL, 1)),
            ("RANK_SMALL + 1", smooth(RANK_SMALL + 1, 2)),
            ("one run", smooth(RANK_RUN - 1, 3)),
            ("two runs", smooth(2 * RANK_RUN + 1, 4)),
            ("chunks", smooth(RANK_CHUNK + 1, 5)),
            ("many chunks, ties", coarse(3 * RANK_CHUNK + 17, 6, 300.0)),
            ("fan-out cap", smooth(RANK_RUN * RANK_FANOUT + 5, 7)),
            ("few values", coarse(50_000, 8, 3.0)),
            (
                "geometric",
                (0..3000)
                    .map(|i| 0.5f64.powi(i % 1000) * (1 + i / 1000) as f64)
                    .collect(),
            ),
            (
                "subnormals",
                (0..4000)
                    .map(|i| f64::from_bits((i % 7) as u64) * if i % 3 == 0 { -1.0 } else { 1.0 })
                    .collect(),
            ),
            (
                "extremes",
                (0..5000)
                    .map(|i| [1e300, -1e300, 0.0, -0.0, 5e-324][i % 5])
                    .collect(),
            ),
            ("beyond RANK_BIG", big),
        ]
    }

    #[test]
    fn ranks_match_a_sort_on_every_path() {
        for (name, v) in ranking_cases() {
            let mut w = v.clone();
            rank_in_place(&mut w);
            assert_eq!(w, naive_ranks(&v), "{name}");
        }
    }

    #[test]
    fn standardised_ranks_are_the_centred_unit_ranks() {
        for (name, v) in ranking_cases() {
            let mut z = v.clone();
            let ok = rank_standardised(&mut z);
            // Centred ranks in exact integers: 2 r_i m - 2 sum r (ranks are half-integers).
            let r = naive_ranks(&v);
            let m = r.len() as i128;
            let sum2: i128 = r.iter().map(|&x| (2.0 * x) as i128).sum();
            let c: Vec<i128> = r.iter().map(|&x| (2.0 * x) as i128 * m - sum2).collect();
            let ss: i128 = c.iter().map(|&d| d * d).sum();
            if m < 2 || ss == 0 {
                assert!(!ok, "{name}: constant or too short, yet standardised");
                continue;
            }
            assert!(ok, "{name}");
            let norm = (ss as f64).sqrt();
            for (i, (&zi, &ci)) in z.iter().zip(&c).enumerate() {
                let want = ci as f64 / norm;
                assert!((zi - want).abs() < 1e-14, "{name} [{i}]: {zi} {want}");
            }
        }
    }

    #[test]
    fn all_equal_values_share_the_middle_rank() {
        for m in [1usize, 2, 17, RANK_RUN + 3, RANK_CHUNK + 9] {
            let mut w = vec![-0.25; m];
            rank_in_place(&mut w);
            assert!(w.iter().all(|&r| r == (m as f64 + 1.0) / 2.0), "m = {m}");
            let mut z = vec![7.0; m];
            assert!(!rank_standardised(&mut z), "m = {m}");
        }
        // Signed zeros are one value.
        let mut z = vec![0.0, -0.0, 0.0, -0.0];
        assert!(!rank_standardised(&mut z));
    }

    #[test]
    fn ranks_do_not_depend_on_the_thread_count() {
        for (name, v) in ranking_cases() {
            let run = || {
                let (mut w, mut z) = (v.clone(), v.clone());
                rank_in_place(&mut w);
                rank_standardised(&mut z);
                (w, z)
            };
            let (one, three) = (in_pool(1, run), in_pool(3, run));
            assert_eq!(one.0, three.0, "{name}");
            let bits = |z: &[f64]| z.iter().map(|x| x.to_bits()).collect::<Vec<u64>>();
            assert_eq!(bits(&one.1), bits(&three.1), "{name}");
        }
    }

    #[test]
    fn spearman_with_ties_matches_the_hand_computation() {
        // x = (1, 2, 2, 3) has ranks (1, 2.5, 2.5, 4): centred (-1.5, 0, 0, 1.5), norm^2 4.5
        // = (4^3 - 4 - (2^3 - 2)) / 12; y = (0, 5, 4, 9) has ranks (1, 3, 2, 4): centred
        // (-1.5, 0.5, -0.5, 1.5), norm^2 5. r = (2.25 + 2.25) / sqrt(4.5 * 5).
        let (mut x, mut y) = (vec![1.0, 2.0, 2.0, 3.0], vec![0.0, 5.0, 4.0, 9.0]);
        assert!(rank_standardised(&mut x) && rank_standardised(&mut y));
        let r: f64 = x.iter().zip(&y).map(|(a, b)| a * b).sum();
        assert!((r - 4.5 / (4.5f64 * 5.0).sqrt()).abs() < 1e-15);
        assert!((r - spearman(&[1.0, 2.0, 2.0, 3.0], &[0.0, 5.0, 4.0, 9.0])).abs() < 1e-15);
    }

    #[test]
    fn ranks_average_ties() {
        let mut v = vec![3.0, -1.0, 3.0, 0.0, -0.0, 7.5, 3.0];
        rank_in_place(&mut v);
        assert_eq!(v, vec![5.0, 1.0, 5.0, 2.5, 2.5, 7.0, 5.0]);
        // Tie groups that straddle the chunks of the parallel pass.
        let m = 3 * CHUNK + 17;
        let mut w: Vec<f64> = (0..m).map(|i| ((i / 1000) % 50) as f64).collect();
        let orig = w.clone();
        rank_in_place(&mut w);
        let mut sorted = orig.clone();
        sorted.sort_by(|a, b| a.total_cmp(b));
        for (i, &r) in w.iter().enumerate() {
            let below = sorted.partition_point(|&u| u < orig[i]) as f64;
            let equal = sorted.partition_point(|&u| u <= orig[i]) as f64 - below;
            assert_eq!(r, below + (equal + 1.0) / 2.0);
        }
    }

    #[test]
    fn pearson_and_spearman_simple_cases() {
        let a = [1.0, 2.0, 3.0, 4.0];
        assert!((pearson(&a, &[2.0, 4.0, 6.0, 8.0]) - 1.0).abs() < 1e-15);
        assert!((pearson(&a, &[8.0, 6.0, 4.0, 2.0]) + 1.0).abs() < 1e-15);
        assert!(pearson(&a, &[0.1, 0.1, 0.1, 0.1]).is_nan());
        assert!((spearman(&a, &[1.0, 10.0, 100.0, 1000.0]) - 1.0).abs() < 1e-15);
        // Hand computation: ranks (1,2,3,4) and (1.5,1.5,3,4): r = 4.5 / sqrt(5 * 4.5).
        let s = spearman(&a, &[5.0, 5.0, 6.0, 9.0]);
        assert!((s - 4.5 / (5.0f64 * 4.5).sqrt()).abs() < 1e-15);
    }

    #[test]
    fn rsa_vectors_and_nan_cases() {
        let x = pseudo(20, 5, 4);
        let v = rsm_lower(Input::F64(x.view()), Rsm::Euclidean)
            .unwrap()
            .unwrap();
        let d = naive_distances(x.view());
        for i in 0..20 {
            for j in 0..i {
                assert!((v[tri(i) + j] - d[[i, j]]).abs() < 1e-14);
            }
        }
        let c = rsm_lower(Input::F64(x.view()), Rsm::Correlation)
            .unwrap()
            .unwrap();
        let z: Vec<Vec<f64>> = (0..20)
            .map(|i| {
                let r = x.row(i);
                let m = r.sum() / 5.0;
                let cr: Vec<f64> = r.iter().map(|v| v - m).collect();
                let nr = cr.iter().map(|v| v * v).sum::<f64>().sqrt();
                cr.iter().map(|v| v / nr).collect()
            })
            .collect();
        for i in 0..20 {
            for j in 0..i {
                let want: f64 = z[i].iter().zip(&z[j]).map(|(a, b)| a * b).sum();
                assert!((c[tri(i) + j] - want).abs() < 1e-14);
            }
        }
        let mut flat = x.clone();
        flat.row_mut(3).fill(0.7);
        let y = pseudo(20, 3, 8);
        let r = rsa(
            Input::F64(flat.view()),
            Input::F64(y.view()),
            Rsm::Correlation,
            Compare::Spearman,
        );
        assert!(r.unwrap().is_nan());
        let r = rsa(
            Input::F64(flat.view()),
            Input::F64(y.view()),
            Rsm::Euclidean,
            Compare::Spearman,
        );
        assert!(r.unwrap().is_finite());
    }

    #[test]
    fn errors_are_reported_not_panicked() {
        let x = pseudo(5, 2, 1);
        let y = pseudo(4, 2, 1);
        assert!(matches!(
            distance_correlation(Input::F64(x.view()), Input::F64(y.view())),
            Err(CoreError::Mismatch { .. })
        ));
        let x2 = pseudo(2, 2, 1);
        assert!(matches!(
            rsa(
                Input::F64(x2.view()),
                Input::F64(x2.view()),
                Rsm::Euclidean,
                Compare::Pearson
            ),
            Err(CoreError::Shape { .. })
        ));
        let mut bad = pseudo(5, 2, 1);
        bad[[1, 1]] = f64::NAN;
        assert!(matches!(
            rsm_fro_diff(Input::F64(bad.view()), Input::F64(x.view())),
            Err(CoreError::NonFinite { arg: "X", count: 1 })
        ));
        assert!(matches!(
            Rsm::parse("cosine"),
            Err(CoreError::Parameter { name: "rsm", .. })
        ));
        assert!(matches!(
            Compare::parse("kendall"),
            Err(CoreError::Parameter {
                name: "compare",
                ..
            })
        ));
    }

    /// Kendall's tau-a from the definition: every pair of positions, O(m^2).
    fn brute_tau_a(a: &[f64], b: &[f64]) -> f64 {
        let m = a.len();
        let mut s: i64 = 0;
        for i in 0..m {
            for j in 0..i {
                let prod = (a[i] - a[j]).signum() * (b[i] - b[j]).signum();
                if a[i] != a[j] && b[i] != b[j] {
                    s += prod as i64;
                }
            }
        }
        s as f64 / (m * (m - 1) / 2) as f64
    }

    #[test]
    fn kendall_tau_a_matches_the_pair_count() {
        // Hand case: a = (1, 2, 3), b = (1, 3, 2): pairs (0,1) C, (0,2) C, (1,2) D -> 1/3.
        let t = kendall_tau_a(&[1.0, 2.0, 3.0], &[1.0, 3.0, 2.0]);
        assert!((t - 1.0 / 3.0).abs() < 1e-15);
        // Ties in a, in b, and in both count in neither: a = (0,0,1,1), b = (0,1,1,1):
        // pairs (0,2) C, (0,3) C, (1,2) tie b, (1,3) tie b, (0,1) tie a, (2,3) tie both.
        let t = kendall_tau_a(&[0.0, 0.0, 1.0, 1.0], &[0.0, 1.0, 1.0, 1.0]);
        assert!((t - 2.0 / 6.0).abs() < 1e-15);
        assert!(kendall_tau_a(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]).is_nan());
        // -0.0 and 0.0 are one value (a tie).
        let t = kendall_tau_a(&[0.0, -0.0, 1.0], &[0.0, 1.0, 2.0]);
        assert!((t - 2.0 / 3.0).abs() < 1e-15);
        for (m, levels, seed) in [(40, 3, 1), (257, 7, 2), (1000, 1000, 3), (2000, 5, 4)] {
            let x = pseudo(m, 2, seed);
            let a: Vec<f64> = x
                .column(0)
                .iter()
                .map(|v| (v * levels as f64).floor())
                .collect();
            let b: Vec<f64> = x
                .column(1)
                .iter()
                .map(|v| (v * levels as f64).floor())
                .collect();
            let want = brute_tau_a(&a, &b);
            assert!((kendall_tau_a(&a, &b) - want).abs() < 1e-14, "m={m}");
        }
        // Long enough for the parallel merge (m >= MERGE_PAR_MIN), b descending in ties of 3.
        let m = 3 * MERGE_PAR_MIN + 5;
        let a: Vec<f64> = (0..m).map(|i| i as f64).collect();
        let b: Vec<f64> = (0..m).map(|i| -((i / 3) as f64)).collect();
        // Every pair not tied in b is discordant: C - D = -(n0 - ties in b).
        let n0 = (m * (m - 1) / 2) as f64;
        let ties_b = ((m / 3) * 3 + (m % 3) * (m % 3 - 1) / 2) as f64;
        let want = -(n0 - ties_b) / n0;
        assert!((kendall_tau_a(&a, &b) - want).abs() < 1e-15);
    }

    #[test]
    fn cosine_of_triangles() {
        let c = cosine(&[1.0, 0.0, 1.0], &[1.0, 1.0, 0.0]);
        assert!((c - 0.5).abs() < 1e-15);
        let c = cosine(&[1e300, 2e300, 0.0], &[1e-300, 2e-300, 0.0]);
        assert!((c - 1.0).abs() < 1e-15);
        assert!(cosine(&[2.0, 2.0, 2.0], &[1.0, 2.0, 3.0]).is_nan());
        assert!(matches!(
            Compare::parse("kendall_tau_a"),
            Ok(Compare::KendallTauA)
        ));
        assert!(matches!(Compare::parse("cosine"), Ok(Compare::Cosine)));
    }

    #[test]
    fn results_do_not_depend_on_the_thread_count() {
        let x = pseudo(300, 40, 11);
        let y = pseudo(300, 13, 12).mapv(|v| v.powi(3)) + x.column(0).insert_axis(Axis(1));
        let run = || {
            let (xi, yi) = (Input::F64(x.view()), Input::F64(y.view()));
            (
                distance_correlation(xi, yi).unwrap(),
                rsm_fro_diff(xi, yi).unwrap(),
                rsa(xi, yi, Rsm::Euclidean, Compare::Spearman).unwrap(),
                rsa(xi, yi, Rsm::Correlation, Compare::Pearson).unwrap(),
                distance_matrix(xi).unwrap(),
                rsa(xi, yi, Rsm::Euclidean, Compare::KendallTauA).unwrap(),
                rsa(xi, yi, Rsm::Correlation, Compare::Cosine).unwrap(),
            )
        };
        let one = in_pool(1, run);
        let three = in_pool(3, run);
        assert_eq!(one.0.to_bits(), three.0.to_bits());
        assert_eq!(one.1.to_bits(), three.1.to_bits());
        assert_eq!(one.2.to_bits(), three.2.to_bits());
        assert_eq!(one.3.to_bits(), three.3.to_bits());
        assert_eq!(one.4, three.4);
        assert_eq!(one.5.to_bits(), three.5.to_bits());
        assert_eq!(one.6.to_bits(), three.6.to_bits());
    }
}
