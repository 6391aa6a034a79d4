//! Per-layer preparations of the RSM family and the steps that combine them (layer matrices,
//! permutation tests).
//!
//! * [`rsa_prepare`] builds a representation's RSM triangle once (packed strict lower
//!   triangle, see [`crate::distance`]), ranks it for Spearman, and *standardises* it: centred
//!   and scaled to unit norm (Pearson, Spearman) or scaled to unit norm (cosine). The RSA value
//!   of two representations is then the dot product of their standardised triangles, and a
//!   whole layer matrix is one product of the stacked triangles, [`cross`]. Kendall's tau-a
//!   keeps the raw triangle (its exact pair counts are not a dot product).
//! * [`dcor_prepare`] holds the doubly centred distance matrix of one representation,
//!   `A = H a H`, as one unit vector `[sqrt 2 A_lower, diag A] / ||A||_F`: the distance
//!   correlation of two representations is the square root of the dot product of theirs.
//! * [`cross`] computes `out[i, j] = <a_i, b_j>` (or `||a_i - b_j||^2`, from the differences,
//!   for the Frobenius distance of two distance matrices) for every pair of two lists of
//!   equally long vectors, blocked over the vector length: each block of [`K_CHUNK`] entries of
//!   every vector is read once from memory and meets every vector of the other list in cache,
//!   in tiles of 4 x 2 pairs, so the memory held is the output only and the pass runs at the
//!   speed of the tile kernel rather than of memory.
//! * [`permuted_dots`] is the permutation tests' fast path: `<z_x, z_y o pi>` for many row
//!   permutations `pi`, where `z_y o pi` is the triangle of the permuted rows, a gather
//!   (`(i, j) -> (pi(i), pi(j))`: the RSM entries permute, and so do their ranks).
//!
//! Determinism: every vector is reduced in fixed groups of [`GROUP`] entries, each group in
//! fixed chunks of [`K_CHUNK`] entries with the lanes of the distance kernels, and the group
//! sums are added in order, so a value does not depend on the thread count, on the tile that
//! computed it, or on the other vectors of the call: `cross([a], [b])`, a cell of a larger
//! `cross` and `permuted_dots` with the identity give the same bits.

use crate::distance::{
    self, chunked_sum, is_constant, packed_segments, pair, tile, tri, use_fma, Compare, DcorBlock,
    Rows, Rsm, K_CHUNK, LANES, PANEL, RSA_ALTERNATIVE,
};
use crate::error::{CoreError, Result};
use crate::linalg::{Input, CHUNK};
use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

/// Entries per task of [`cross`] and per step of [`permuted_dots`] (a multiple of `K_CHUNK`).
pub const GROUP: usize = 1 << 15;
/// Groups whose partial matrices are held at once in [`cross`] (bounds its memory).
const WAVE: usize = 64;

// ------------------------------------------------------------------------------ RSA

/// The per-layer result of [`rsa_prepare`].
#[derive(Debug)]
pub enum RsaPrep {
    /// The triangle, standardised (or raw, for Kendall's tau-a).
    Ready(Vec<f64>),
    /// A row has zero variance: the correlation RSM is undefined.
    RowUndefined,
    /// Every entry of the triangle is the same: no correlation with it is defined.
    Constant,
}

/// Scale `v` in place to a unit vector after centring it (`centre`), or without centring;
/// `false` (and `v` unspecified) when `v` is constant.
pub fn standardise(v: &mut [f64], centre: bool) -> bool {
    let m = v.len();
    if m < 2 || is_constant(v) {
        return false;
    }
    if centre {
        let mean = chunked_sum(m, |i0, i1| [v[i0..i1].iter().sum::<f64>(), 0.0, 0.0])[0] / m as f64;
        v.par_chunks_mut(CHUNK)
            .for_each(|c| c.iter_mut().for_each(|x| *x -= mean));
    }
    // Divide by the largest magnitude first, so that no square overflows or underflows.
    let big = v
        .par_chunks(CHUNK)
        .map(|c| c.iter().fold(0.0f64, |t, x| t.max(x.abs())))
        .collect::<Vec<f64>>()
        .into_iter()
        .fold(0.0f64, f64::max);
    if big.is_nan() || big <= 0.0 {
        return false;
    }
    v.par_chunks_mut(CHUNK)
        .for_each(|c| c.iter_mut().for_each(|x| *x /= big));
    let ss = chunked_sum(m, |i0, i1| {
        [v[i0..i1].iter().map(|x| x * x).sum::<f64>(), 0.0, 0.0]
    })[0];
    if ss.is_nan() || ss <= 0.0 {
        return false;
    }
    let norm = ss.sqrt();
    v.par_chunks_mut(CHUNK)
        .for_each(|c| c.iter_mut().for_each(|x| *x /= norm));
    true
}

/// The per-layer part of RSA: the RSM triangle of `x`, ranked for Spearman, standardised for
/// Pearson, Spearman and cosine (so that RSA is a dot product), raw for Kendall's tau-a.
pub fn rsa_prepare(x: Input, rsm: Rsm, compare: Compare) -> Result<RsaPrep> {
    let rows = Rows::new(x, "X")?;
    let m = tri(rows.n) as f64;
    crate::memory::check_fits(
        compare.bytes_per_value() / 2.0 * m,
        &format!(
            "the RSM triangle of {} rows ({m} values) and its working memory",
            rows.n
        ),
        RSA_ALTERNATIVE,
    )?;
    let Some(mut v) = distance::rsm_vector(&rows, rsm) else {
        return Ok(RsaPrep::RowUndefined);
    };
    if constant_to_round_off(&v, rows.p) {
        return Ok(RsaPrep::Constant);
    }
    let ok = match compare {
        Compare::KendallTauA => v.len() >= 2 && !is_constant(&v),
        Compare::Cosine => standardise(&mut v, false),
        Compare::Pearson => standardise(&mut v, true),
        // Ranked and standardised in one go: the mean and norm of ranks are exact integers
        // of the tie sizes.
        Compare::Spearman => distance::rank_standardised(&mut v),
    };
    Ok(if ok {
        RsaPrep::Ready(v)
    } else {
        RsaPrep::Constant
    })
}

/// Whether the triangle's entries differ by no more than the round-off of computing them from
/// rows of `width` values (`4 (width + 2) eps` relative to the largest): an RSM that is
/// constant in exact arithmetic (every pair of rows equally correlated, or equally far apart)
/// then counts as constant, instead of passing its round-off to the comparison as if it
/// were structure.
fn constant_to_round_off(v: &[f64], width: usize) -> bool {
    let (lo, hi) = v
        .par_chunks(CHUNK)
        .map(|c| {
            c.iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &x| {
                    (l.min(x), h.max(x))
                })
        })
        .reduce(
            || (f64::INFINITY, f64::NEG_INFINITY),
            |a, b| (a.0.min(b.0), a.1.max(b.1)),
        );
    hi - lo <= 4.0 * (width as f64 + 2.0) * f64::EPSILON * lo.abs().max(hi.abs())
}

// ------------------------------------------------------------------------------ dCor

/// Below this sum of squares (or above [`SS_HIGH`]) the unit vector of [`dcor_prepare`] is
/// formed by [`standardise`], which divides by the largest magnitude first.
const SS_LOW: f64 = 1e-250;
const SS_HIGH: f64 = 1e250;

/// The doubly centred distance matrix `A = H a H` of `x` as one unit vector
/// `[sqrt 2 A_ij (j < i, packed), A_ii] / ||A||_F` of length `n (n - 1) / 2 + n`, so that
/// `dCor^2(X, Y) = <v_X, v_Y>`; `None` when `A = 0` (every row the same).
///
/// Two passes over the packed triangle, both parallel over fixed row blocks: the distances
/// with their row and column sums ([`distance::dcor_distances`]), then the centring
/// `sqrt 2 (a_ij - m_i - m_j + g)` with the sum of squares; a third divides by the norm.
pub fn dcor_prepare(x: Input) -> Result<Option<Vec<f64>>> {
    let rows = Rows::new(x, "X")?;
    let n = rows.n;
    if n < 2 {
        return Err(CoreError::Shape {
            arg: "X",
            shape: vec![n, rows.p],
            expected: "at least 2 rows".into(),
        });
    }
    let m = tri(n);
    crate::memory::check_fits(
        8.0 * (m + n + n.div_ceil(PANEL) * PANEL * rows.p) as f64,
        &format!("the doubly centred distance matrix of {n} rows (packed)"),
        RSA_ALTERNATIVE,
    )?;
    let fma = use_fma();
    let panels = distance::pack_panels(&rows);
    let mut v = crate::memory::zeroed_f64(
        m + n,
        "a packed doubly centred distance matrix",
        RSA_ALTERNATIVE,
    );
    let (low, diag) = v.split_at_mut(m);
    // The largest blocks (the last rows) first, so that the pass ends on small ones; the
    // blocks' sums are then combined in block order.
    let mut parts: Vec<DcorBlock> = packed_segments(low, n)
        .into_par_iter()
        .rev()
        .with_max_len(1)
        .map(|((i0, i1), seg)| {
            crate::interrupt::checkpoint();
            distance::dcor_distances::<true>(&rows, &panels, i0, i1, seg, fma)
        })
        .collect();
    parts.reverse();
    drop(panels);
    // Row means of the full symmetric matrix: row i's packed entries (j < i), then column i's
    // entries in the later blocks, added block by block in order.
    let nf = n as f64;
    let mut mu: Vec<f64> = parts.iter().flat_map(|b| b.rows.iter().copied()).collect();
    mu.par_chunks_mut(SUM_CHUNK)
        .enumerate()
        .for_each(|(c, out)| {
            let j0 = c * SUM_CHUNK;
            for b in &parts {
                if let Some(col) = b.cols.get(j0..) {
                    out.iter_mut().zip(col).for_each(|(t, v)| *t += v);
                }
            }
            out.iter_mut().for_each(|t| *t /= nf);
        });
    drop(parts);
    let g = mu.iter().sum::<f64>() / nf;
    let s2 = std::f64::consts::SQRT_2;
    let mut squares: Vec<f64> = packed_segments(low, n)
        .into_par_iter()
        .rev()
        .with_max_len(1)
        .map(|((i0, i1), seg)| {
            crate::interrupt::checkpoint();
            let base = tri(i0);
            let mut total = 0.0;
            for i in i0..i1 {
                let ci = g - mu[i];
                let row = &mut seg[tri(i) - base..tri(i + 1) - base];
                let (cr, tr) = row.as_chunks_mut::<LANES>();
                let (cm, tm) = mu[..i].as_chunks::<LANES>();
                let mut q = [0.0f64; LANES];
                for (d, mj) in cr.iter_mut().zip(cm) {
                    for l in 0..LANES {
                        d[l] = s2 * (d[l] - mj[l] + ci);
                        q[l] += d[l] * d[l];
                    }
                }
                let mut tail = 0.0;
                for (d, &mj) in tr.iter_mut().zip(tm) {
                    *d = s2 * (*d - mj + ci);
                    tail += *d * *d;
                }
                total += ((q[0] + q[2]) + (q[1] + q[3])) + tail;
            }
            total
        })
        .collect();
    squares.reverse();
    let mut ss = squares.iter().sum::<f64>();
    for (d, &mi) in diag.iter_mut().zip(&mu) {
        *d = g - 2.0 * mi;
        ss += *d * *d;
    }
    if !(SS_LOW..=SS_HIGH).contains(&ss) {
        return Ok(standardise(&mut v, false).then_some(v));
    }
    let norm = ss.sqrt();
    v.par_chunks_mut(CHUNK)
        .for_each(|c| c.iter_mut().for_each(|x| *x /= norm));
    Ok(Some(v))
}

/// Entries per task when the column parts of the row sums are added.
const SUM_CHUNK: usize = 4096;

// ------------------------------------------------------------------------------ products

/// Partial sums over the entries `g0..g1` of every pair `(a_i, b_j)`, added to the row-major
/// `out` (`a.len() x b.len()`), one [`K_CHUNK`] of entries at a time.
#[inline(always)]
fn group_body<const DOT: bool, const FMA: bool>(
    a: &[&[f64]],
    b: &[&[f64]],
    g0: usize,
    g1: usize,
    out: &mut [f64],
) {
    let (la, lb) = (a.len(), b.len());
    for k0 in (g0..g1).step_by(K_CHUNK) {
        let k1 = (k0 + K_CHUNK).min(g1);
        let mut i = 0;
        while i < la {
            let ie = (i + 4).min(la);
            let mut j = 0;
            if ie - i == 4 {
                let ra = [
                    &a[i][k0..k1],
                    &a[i + 1][k0..k1],
                    &a[i + 2][k0..k1],
                    &a[i + 3][k0..k1],
                ];
                while j + 2 <= lb {
                    let v = tile::<DOT, FMA>(ra, [&b[j][k0..k1], &b[j + 1][k0..k1]]);
                    for r in 0..4 {
                        out[(i + r) * lb + j] += v[2 * r];
                        out[(i + r) * lb + j + 1] += v[2 * r + 1];
                    }
                    j += 2;
                }
            }
            for ii in i..ie {
                for jj in j..lb {
                    out[ii * lb + jj] += pair::<DOT, FMA>(&a[ii][k0..k1], &b[jj][k0..k1]);
                }
            }
            i = ie;
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn group_fma<const DOT: bool>(
    a: &[&[f64]],
    b: &[&[f64]],
    g0: usize,
    g1: usize,
    out: &mut [f64],
) {
    group_body::<DOT, true>(a, b, g0, g1, out)
}

fn group<const DOT: bool>(
    a: &[&[f64]],
    b: &[&[f64]],
    g0: usize,
    g1: usize,
    out: &mut [f64],
    fma: bool,
) {
    #[cfg(target_arch = "x86_64")]
    if fma {
        // SAFETY: `fma` is only true when the CPU supports AVX2 and FMA (see `use_fma`).
        return unsafe { group_fma::<DOT>(a, b, g0, g1, out) };
    }
    let _ = fma;
    group_body::<DOT, false>(a, b, g0, g1, out)
}

fn common_length(a: &[&[f64]], b: &[&[f64]]) -> Result<usize> {
    let m = a.first().or(b.first()).map_or(0, |v| v.len());
    if let Some(v) = a.iter().chain(b).find(|v| v.len() != m) {
        return Err(CoreError::Mismatch {
            what: format!(
                "prepared vectors of lengths {m} and {}: the layers must have the same number \
                 of rows",
                v.len()
            ),
        });
    }
    Ok(m)
}

/// `out[i, j] = <a_i, b_j>` (`DOT`) or `||a_i - b_j||^2` for every pair of two lists of
/// equally long vectors, blocked over their length (see the module notes).
pub fn cross<const DOT: bool>(a: &[&[f64]], b: &[&[f64]]) -> Result<Array2<f64>> {
    let m = common_length(a, b)?;
    let (la, lb) = (a.len(), b.len());
    let fma = use_fma();
    let mut total = vec![0.0; la * lb];
    let groups: Vec<(usize, usize)> = (0..m.div_ceil(GROUP))
        .map(|g| (g * GROUP, ((g + 1) * GROUP).min(m)))
        .collect();
    for wave in groups.chunks(WAVE) {
        let parts: Vec<Vec<f64>> = wave
            .par_iter()
            .map(|&(g0, g1)| {
                crate::interrupt::checkpoint();
                let mut out = vec![0.0; la * lb];
                group::<DOT>(a, b, g0, g1, &mut out, fma);
                out
            })
            .collect();
        for p in &parts {
            total.iter_mut().zip(p).for_each(|(t, v)| *t += v);
        }
    }
    Ok(Array2::from_shape_vec((la, lb), total).expect("la x lb values"))
}

/// The row `i` of the packed lower triangle that holds entry `t` (`tri(i) <= t < tri(i + 1)`).
fn row_of(t: usize) -> usize {
    let mut i = ((2.0 * t as f64 + 0.25).sqrt() + 0.5) as usize;
    while tri(i) > t {
        i -= 1;
    }
    while tri(i + 1) <= t {
        i += 1;
    }
    i
}

/// `values[k] = <zx, zy o perms[k]>` with `(zy o pi)_(i, j) = zy_(pi(i), pi(j))` (packed
/// triangles of `n` rows, `perms` an `(N, n)` array of row permutations): the dot product
/// [`cross`] gives for `zx` and the triangle of the permuted rows, bit for bit. Parallel over
/// the permutations, each reduced in the fixed order of [`cross`].
pub fn permuted_dots(zx: &[f64], zy: &[f64], n: usize, perms: ArrayView2<i64>) -> Result<Vec<f64>> {
    let m = tri(n);
    if zx.len() != m || zy.len() != m {
        return Err(CoreError::Mismatch {
            what: format!(
                "prepared triangles of lengths {} and {} for n = {n} rows (expected {m})",
                zx.len(),
                zy.len()
            ),
        });
    }
    if perms.ncols() != n {
        return Err(CoreError::Shape {
            arg: "perms",
            shape: vec![perms.nrows(), perms.ncols()],
            expected: format!("(N, {n}): one permutation of the {n} rows per row"),
        });
    }
    let bad = perms.outer_iter().into_par_iter().any(|row| {
        let mut seen = vec![false; n];
        row.iter().any(|&v| {
            if v < 0 || v as usize >= n || seen[v as usize] {
                return true;
            }
            seen[v as usize] = true;
            false
        })
    });
    if bad {
        return Err(CoreError::Parameter {
            name: "perms",
            value: "a row that is not a permutation".into(),
            expected: format!("each row a permutation of 0..{n}"),
        });
    }
    let fma = use_fma();
    Ok(perms
        .outer_iter()
        .into_par_iter()
        .map(|row| {
            let pi: Vec<usize> = row.iter().map(|&v| v as usize).collect();
            let mut buf = vec![0.0; GROUP.min(m)];
            let mut total = 0.0;
            for g0 in (0..m).step_by(GROUP) {
                crate::interrupt::checkpoint();
                let g1 = (g0 + GROUP).min(m);
                let (mut i, mut j) = (row_of(g0), 0);
                j += g0 - tri(i);
                for slot in &mut buf[..g1 - g0] {
                    let (a, b) = (pi[i], pi[j]);
                    let (hi, lo) = if a > b { (a, b) } else { (b, a) };
                    *slot = zy[tri(hi) + lo];
                    j += 1;
                    if j == i {
                        i += 1;
                        j = 0;
                    }
                }
                let mut out = [0.0];
                group::<true>(
                    &[&zx[g0..g1]],
                    &[&buf[..g1 - g0]],
                    0,
                    g1 - g0,
                    &mut out,
                    fma,
                );
                total += out[0];
            }
            total
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distance::{naive_distances, pearson, rank_in_place, rsa, spearman};
    use crate::testutil::{in_pool, pseudo};

    fn ready(p: RsaPrep) -> Vec<f64> {
        match p {
            RsaPrep::Ready(v) => v,
            other => panic!("not ready: {other:?}"),
        }
    }

    #[test]
    fn standardised_dot_is_the_correlation() {
        let x = pseudo(60, 7, 1);
        let y = pseudo(60, 3, 2).mapv(|v| v * v * v);
        for (rsm, compare) in [
            (Rsm::Correlation, Compare::Spearman),
            (Rsm::Euclidean, Compare::Spearman),
            (Rsm::Euclidean, Compare::Pearson),
            (Rsm::Correlation, Compare::Cosine),
        ] {
            let (ix, iy) = (Input::F64(x.view()), Input::F64(y.view()));
            let za = ready(rsa_prepare(ix, rsm, compare).unwrap());
            let zb = ready(rsa_prepare(iy, rsm, compare).unwrap());
            let got = cross::<true>(&[&za], &[&zb]).unwrap()[[0, 0]];
            let want = rsa(ix, iy, rsm, compare).unwrap();
            assert!(
                (got - want).abs() < 1e-13,
                "{rsm:?} {compare:?}: {got} {want}"
            );
        }
    }

    #[test]
    fn constant_triangles_and_rows_are_reported() {
        let mut flat = pseudo(6, 3, 3);
        flat.row_mut(2).fill(0.25);
        assert!(matches!(
            rsa_prepare(Input::F64(flat.view()), Rsm::Correlation, Compare::Spearman),
            Ok(RsaPrep::RowUndefined)
        ));
        let same = ndarray::Array2::<f64>::from_elem((5, 2), 0.5);
        assert!(matches!(
            rsa_prepare(Input::F64(same.view()), Rsm::Euclidean, Compare::Spearman),
            Ok(RsaPrep::Constant)
        ));
    }

    #[test]
    fn cross_matches_naive_sums_and_its_own_pairs() {
        // Lengths that cross K_CHUNK, GROUP and the lanes; 5 x 3 lists (tile remainders).
        let m = 2 * GROUP + 3 * K_CHUNK + 7;
        let a: Vec<Vec<f64>> = (0..5)
            .map(|s| pseudo(m, 1, s).into_raw_vec_and_offset().0)
            .collect();
        let b: Vec<Vec<f64>> = (5..8)
            .map(|s| pseudo(m, 1, s).into_raw_vec_and_offset().0)
            .collect();
        let ar: Vec<&[f64]> = a.iter().map(|v| v.as_slice()).collect();
        let br: Vec<&[f64]> = b.iter().map(|v| v.as_slice()).collect();
        let dots = cross::<true>(&ar, &br).unwrap();
        let sq = cross::<false>(&ar, &br).unwrap();
        for i in 0..5 {
            for j in 0..3 {
                let d: f64 = a[i].iter().zip(&b[j]).map(|(u, v)| u * v).sum();
                let s: f64 = a[i].iter().zip(&b[j]).map(|(u, v)| (u - v) * (u - v)).sum();
                assert!((dots[[i, j]] - d).abs() < 1e-11);
                assert!((sq[[i, j]] - s).abs() < 1e-11 * s);
                let one = cross::<true>(&[ar[i]], &[br[j]]).unwrap();
                assert_eq!(one[[0, 0]].to_bits(), dots[[i, j]].to_bits());
                let one = cross::<false>(&[ar[i]], &[br[j]]).unwrap();
                assert_eq!(one[[0, 0]].to_bits(), sq[[i, j]].to_bits());
            }
        }
        assert!(matches!(
            cross::<true>(&[ar[0]], &[&br[0][..10]]),
            Err(CoreError::Mismatch { .. })
        ));
    }

    #[test]
    fn permuted_dots_gather_the_permuted_triangle() {
        let n = 300; // tri(n) = 44850 > GROUP: two groups
        let x = pseudo(n, 4, 7);
        let y = pseudo(n, 5, 8).mapv(|v| v.abs()) + x.column(0).insert_axis(ndarray::Axis(1));
        let zx =
            ready(rsa_prepare(Input::F64(x.view()), Rsm::Euclidean, Compare::Spearman).unwrap());
        let zy =
            ready(rsa_prepare(Input::F64(y.view()), Rsm::Euclidean, Compare::Spearman).unwrap());
        // Two shifts and the reversal.
        let perms = ndarray::Array2::from_shape_fn((3, n), |(k, i)| match k {
            0 => ((i + 1) % n) as i64,
            1 => (n - 1 - i) as i64,
            _ => ((i + 137) % n) as i64,
        });
        let got = permuted_dots(&zx, &zy, n, perms.view()).unwrap();
        for (k, &gk) in got.iter().enumerate() {
            let pi: Vec<usize> = perms.row(k).iter().map(|&v| v as usize).collect();
            let yp = ndarray::Array2::from_shape_fn((n, y.ncols()), |(i, c)| y[[pi[i], c]]);
            // The triangle of the permuted rows, gathered from zy: the same bits.
            let mut g = vec![0.0; tri(n)];
            for i in 0..n {
                for j in 0..i {
                    let (a, b) = (pi[i].max(pi[j]), pi[i].min(pi[j]));
                    g[tri(i) + j] = zy[tri(a) + b];
                }
            }
            let want = cross::<true>(&[&zx], &[&g]).unwrap()[[0, 0]];
            assert_eq!(gk.to_bits(), want.to_bits(), "perm {k}");
            // And the RSA of the permuted rows, prepared afresh (up to rounding).
            let again = rsa(
                Input::F64(x.view()),
                Input::F64(yp.view()),
                Rsm::Euclidean,
                Compare::Spearman,
            )
            .unwrap();
            assert!((got[k] - again).abs() < 1e-12);
        }
        let mut dup = perms.clone();
        dup[[0, 1]] = dup[[0, 0]];
        assert!(matches!(
            permuted_dots(&zx, &zy, n, dup.view()),
            Err(CoreError::Parameter { name: "perms", .. })
        ));
    }

    #[test]
    fn dcor_vector_is_the_unit_double_centred_matrix() {
        // p = 300: the distance chains cross a chunk of features; n = 131: several row blocks.
        for &(n, p) in &[(40usize, 3usize), (131, 300), (2, 1)] {
            let x = pseudo(n, p, 4 + p as u64).mapv(|v| v + 2.0);
            let v = dcor_prepare(Input::F64(x.view())).unwrap().unwrap();
            let d = naive_distances(x.view());
            let r: Vec<f64> = (0..n).map(|i| d.row(i).sum() / n as f64).collect();
            let g = r.iter().sum::<f64>() / n as f64;
            let a = ndarray::Array2::from_shape_fn((n, n), |(i, j)| d[[i, j]] - r[i] - r[j] + g);
            let norm = a.iter().map(|v| v * v).sum::<f64>().sqrt();
            for i in 0..n {
                assert!((v[tri(n) + i] - a[[i, i]] / norm).abs() < 1e-14);
                for j in 0..i {
                    let want = 2f64.sqrt() * a[[i, j]] / norm;
                    assert!((v[tri(i) + j] - want).abs() < 1e-14, "n={n} p={p}");
                }
            }
            // Magnitudes whose sum of squares leaves the safe range take the rescaled route;
            // the unit vector is scale-invariant (the scales are powers of two: exact).
            for scale in [2f64.powi(-470), 2f64.powi(470)] {
                let s = dcor_prepare(Input::F64(x.mapv(|t| t * scale).view()))
                    .unwrap()
                    .unwrap();
                let worst = s
                    .iter()
                    .zip(&v)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f64::max);
                assert!(worst < 1e-15, "scale {scale}: {worst}");
            }
        }
        let same = ndarray::Array2::<f64>::from_elem((5, 2), 0.5);
        assert!(dcor_prepare(Input::F64(same.view())).unwrap().is_none());
    }

    #[test]
    fn bucket_ranks_match_a_sort_on_hard_inputs() {
        // Heavy ties (one big bucket), extreme magnitudes and signed zeros.
        let mut cases: Vec<Vec<f64>> = vec![
            (0..200_000)
                .map(|i| if i % 7 == 0 { 1.0 } else { 0.0 })
                .collect(),
            (0..5000)
                .map(|i| [1e300, -1e300, 0.0, -0.0, 5e-324][i % 5])
                .collect(),
            pseudo(70_000, 1, 9).into_raw_vec_and_offset().0,
            vec![2.5],
        ];
        cases[2][17] = 1e200; // one far outlier: almost everything in the first bucket
        for orig in cases {
            let mut w = orig.clone();
            rank_in_place(&mut w);
            let mut sorted = orig.clone();
            sorted.sort_by(|a, b| a.total_cmp(b));
            for (i, &r) in w.iter().enumerate() {
                let below = sorted.partition_point(|&u| u < orig[i]) as f64;
                let equal = sorted.partition_point(|&u| u <= orig[i]) as f64 - below;
                assert_eq!(r, below + (equal + 1.0) / 2.0);
            }
        }
        let a: Vec<f64> = pseudo(1000, 1, 3).into_raw_vec_and_offset().0;
        let b: Vec<f64> = a.iter().map(|v| v.exp()).collect();
        assert!((spearman(&a, &b) - 1.0).abs() < 1e-15);
        assert!((pearson(&a, &a) - 1.0).abs() < 1e-15);
    }

    #[test]
    fn results_do_not_depend_on_the_thread_count() {
        let n = 260;
        let x = pseudo(n, 9, 1);
        let y = pseudo(n, 4, 2).mapv(|v| v.powi(3));
        let perms = ndarray::Array2::from_shape_fn((4, n), |(k, i)| ((i + 7 * k) % n) as i64);
        let run = || {
            let za = ready(
                rsa_prepare(Input::F64(x.view()), Rsm::Correlation, Compare::Spearman).unwrap(),
            );
            let zb = ready(
                rsa_prepare(Input::F64(y.view()), Rsm::Correlation, Compare::Spearman).unwrap(),
            );
            let da = dcor_prepare(Input::F64(x.view())).unwrap().unwrap();
            let db = dcor_prepare(Input::F64(y.view())).unwrap().unwrap();
            (
                cross::<true>(&[&za, &zb], &[&za, &zb]).unwrap(),
                cross::<false>(&[&da], &[&db]).unwrap(),
                permuted_dots(&za, &zb, n, perms.view()).unwrap(),
                za,
                da,
            )
        };
        let one = in_pool(1, run);
        let three = in_pool(3, run);
        assert_eq!(one.0, three.0);
        assert_eq!(one.1, three.1);
        assert_eq!(one.2, three.2);
        assert_eq!(one.3, three.3);
        assert_eq!(one.4, three.4);
    }
}
