//! Gram matrices, their centring and U-centring, and the RBF bandwidth.
//!
//! RBF bandwidth (MEASURES.md 1.1): with `D2_ij = ||x_i - x_j||^2` over all `n^2` ordered pairs
//! (the `n` zero diagonal entries included), `m = median(D2)` and
//! `K_ij = exp(-D2_ij / (2 sigma_frac^2 m))`. The median is found exactly by selection on the
//! strict lower triangle (each off-diagonal value stands for two entries of the full matrix),
//! with histogram passes that narrow the search to one bin, so no sorted copy is ever made.

use crate::linalg::{self, Real};
use ndarray::{Array1, Array2, Axis, Zip};
use rayon::prelude::*;

/// Rows per task in passes over triangles (fixed, so results do not depend on thread count).
const ROW_BLOCK: usize = 32;
/// Values collected for the final in-memory selection.
const SELECT_CAP: usize = 1 << 20;
/// Bins per histogram pass.
const BINS: usize = 1 << 12;

/// Full n x n linear Gram matrix `Xc Xc^T` of already centred features.
pub fn linear_gram<T: Real>(xc: &Array2<T>) -> Array2<f64> {
    let mut g = linalg::a_at_lower(xc);
    linalg::mirror_lower(&mut g);
    g
}

/// Full n x n matrix of squared Euclidean distances between the rows of centred features;
/// the diagonal is exactly zero and round-off negatives are clipped to zero.
pub fn squared_distances<T: Real>(xc: &Array2<T>) -> Array2<f64> {
    let sq = linalg::row_sq_norms(xc);
    let mut d = linalg::a_at_lower(xc);
    d.axis_iter_mut(Axis(0))
        .into_par_iter()
        .enumerate()
        .for_each(|(i, mut row)| {
            for j in 0..i {
                row[j] = (sq[i] + sq[j] - 2.0 * row[j]).max(0.0);
            }
            row[i] = 0.0;
        });
    linalg::mirror_lower(&mut d);
    d
}

/// A chain of histogram bins that a value must fall in to stay a candidate.
#[derive(Clone, Default)]
struct Filter {
    levels: Vec<(f64, f64, usize)>, // (lo, bins per unit, chosen bin)
}

impl Filter {
    #[inline]
    fn bin(v: f64, lo: f64, scale: f64) -> usize {
        (((v - lo) * scale) as usize).min(BINS - 1)
    }
    #[inline]
    fn keeps(&self, v: f64) -> bool {
        self.levels
            .iter()
            .all(|&(lo, scale, b)| v >= lo && Self::bin(v, lo, scale) == b)
    }
}

/// Visit the strict lower triangle of `d` in fixed row blocks, folding each block with `f`.
fn fold_lower<A, F>(d: &Array2<f64>, init: A, f: F) -> Vec<A>
where
    A: Clone + Send + Sync,
    F: Fn(&mut A, f64) + Sync,
{
    let n = d.nrows();
    (0..n.div_ceil(ROW_BLOCK))
        .into_par_iter()
        .map(|b| {
            let mut acc = init.clone();
            for i in (b * ROW_BLOCK)..((b + 1) * ROW_BLOCK).min(n) {
                for &v in d.row(i).iter().take(i) {
                    f(&mut acc, v);
                }
            }
            acc
        })
        .collect()
}

/// The `r`-th smallest (0-based) value of the strict lower triangle of `d`.
pub fn select_lower(d: &Array2<f64>, r: usize) -> f64 {
    let mut filter = Filter::default();
    let mut r = r;
    loop {
        let stats = fold_lower(d, (0usize, f64::INFINITY, f64::NEG_INFINITY), |a, v| {
            if filter.keeps(v) {
                a.0 += 1;
                a.1 = a.1.min(v);
                a.2 = a.2.max(v);
            }
        });
        let count: usize = stats.iter().map(|s| s.0).sum();
        let lo = stats.iter().map(|s| s.1).fold(f64::INFINITY, f64::min);
        let hi = stats.iter().map(|s| s.2).fold(f64::NEG_INFINITY, f64::max);
        debug_assert!(r < count);
        if lo == hi {
            return lo;
        }
        if count <= SELECT_CAP {
            let parts = fold_lower(d, Vec::new(), |a: &mut Vec<f64>, v| {
                if filter.keeps(v) {
                    a.push(v)
                }
            });
            let mut vals: Vec<f64> = parts.concat();
            let (_, v, _) = vals.select_nth_unstable_by(r, |a, b| a.total_cmp(b));
            return *v;
        }
        let scale = BINS as f64 / (hi - lo);
        let hists = fold_lower(d, vec![0usize; BINS], |h: &mut Vec<usize>, v| {
            if filter.keeps(v) {
                h[Filter::bin(v, lo, scale)] += 1;
            }
        });
        let mut hist = vec![0usize; BINS];
        for h in &hists {
            for (t, c) in hist.iter_mut().zip(h) {
                *t += c;
            }
        }
        let mut below = 0;
        let mut chosen = BINS - 1;
        for (b, &c) in hist.iter().enumerate() {
            if below + c > r {
                chosen = b;
                break;
            }
            below += c;
        }
        r -= below;
        filter.levels.push((lo, scale, chosen));
    }
}

/// Median of all n^2 entries of a symmetric matrix of squared distances with zero diagonal.
///
/// In sorted order the full matrix holds the n diagonal zeros first, then every strict-lower
/// value twice; entry `k >= n` of that order is lower-triangle order statistic `(k - n) / 2`.
pub fn median_full_from_lower(d: &Array2<f64>) -> f64 {
    let n = d.nrows();
    let total = n * n;
    let at = |k: usize| {
        if k < n {
            0.0
        } else {
            select_lower(d, (k - n) / 2)
        }
    };
    if total % 2 == 1 {
        at(total / 2)
    } else {
        let (k1, k2) = (total / 2 - 1, total / 2);
        if k1 < n || (k1 - n) / 2 != (k2 - n) / 2 {
            0.5 * (at(k1) + at(k2))
        } else {
            at(k2)
        }
    }
}

/// Turn squared distances into the RBF kernel in place with bandwidth `sigma_frac^2 * m`.
/// Returns `false` (leaving `d` unchanged) when the median `m` is zero.
pub fn rbf_from_squared_distances(d: &mut Array2<f64>, sigma_frac: f64) -> bool {
    let m = median_full_from_lower(d);
    if m <= 0.0 {
        return false;
    }
    let c = -1.0 / (2.0 * sigma_frac * sigma_frac * m);
    d.as_slice_mut()
        .expect("standard layout")
        .par_chunks_mut(linalg::CHUNK)
        .for_each(|chunk| {
            for v in chunk {
                *v = (*v * c).exp();
            }
        });
    true
}

fn row_sums(k: &Array2<f64>) -> Array1<f64> {
    let mut r = Array1::zeros(k.nrows());
    Zip::from(&mut r)
        .and(k.rows())
        .par_for_each(|o, row| *o = row.sum());
    r
}

/// `H K H` in place for a symmetric `K`: `K_ij - r_i/n - r_j/n + S/n^2`.
pub fn double_centre(k: &mut Array2<f64>) {
    let n = k.nrows() as f64;
    let r = row_sums(k) / n;
    let g = r.sum() / n;
    Zip::from(k.rows_mut())
        .and(&r)
        .par_for_each(|mut row, &ri| {
            for (v, &rj) in row.iter_mut().zip(&r) {
                *v = *v - ri - rj + g;
            }
        });
}

/// U-centring (Székely & Rizzo 2014) in place for a symmetric `K`:
/// zero the diagonal, then `K_ij - (r_i + r_j)/(n-2) + S/((n-1)(n-2))` off the diagonal.
pub fn u_centre(k: &mut Array2<f64>) {
    let n = k.nrows();
    k.diag_mut().fill(0.0);
    let r = row_sums(k);
    let s = r.sum();
    let nf = n as f64;
    let g = s / ((nf - 1.0) * (nf - 2.0));
    Zip::from(k.rows_mut())
        .and(&r)
        .par_for_each(|mut row, &ri| {
            for (v, &rj) in row.iter_mut().zip(&r) {
                *v = *v - (ri + rj) / (nf - 2.0) + g;
            }
        });
    k.diag_mut().fill(0.0);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive_median(d: &Array2<f64>) -> f64 {
        let mut v: Vec<f64> = d.iter().copied().collect();
        v.sort_by(|a, b| a.total_cmp(b));
        let m = v.len();
        if m % 2 == 1 {
            v[m / 2]
        } else {
            0.5 * (v[m / 2 - 1] + v[m / 2])
        }
    }

    fn pseudo(n: usize, p: usize, seed: u64) -> Array2<f64> {
        let mut s = seed;
        Array2::from_shape_fn((n, p), |_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64) - 0.5
        })
    }

    #[test]
    fn median_matches_sorting_for_odd_and_even_n() {
        for n in [2usize, 3, 4, 5, 17, 64, 501, 1600] {
            let x = linalg::centre_columns(pseudo(n, 3, n as u64).view());
            let d = squared_distances(&x);
            assert_eq!(median_full_from_lower(&d), naive_median(&d), "n={n}");
        }
    }

    #[test]
    fn median_with_many_ties_and_zero() {
        // Duplicated rows: more than half of the entries are zero.
        let mut x = Array2::<f64>::zeros((6, 2));
        x[[5, 0]] = 1.0;
        let d = squared_distances(&x);
        assert_eq!(median_full_from_lower(&d), 0.0);
        // Two clusters with many exactly equal distances.
        let x = Array2::from_shape_fn((1500, 1), |(i, _)| (i % 3) as f64);
        let d = squared_distances(&linalg::centre_columns(x.view()));
        assert_eq!(median_full_from_lower(&d), naive_median(&d));
    }

    #[test]
    fn centrings_match_definitions() {
        let x = linalg::centre_columns(pseudo(9, 4, 3).view());
        let k0 = squared_distances(&x).mapv(|v| (-v).exp());
        let n = 9;
        let h = Array2::from_shape_fn(
            (n, n),
            |(i, j)| if i == j { 1.0 } else { 0.0 } - 1.0 / n as f64,
        );
        let want = h.dot(&k0).dot(&h);
        let mut got = k0.clone();
        double_centre(&mut got);
        assert!((&got - &want).iter().all(|v| v.abs() < 1e-13));
        let mut u = k0.clone();
        u_centre(&mut u);
        let mut kz = k0.clone();
        kz.diag_mut().fill(0.0);
        let nf = n as f64;
        let s = kz.sum();
        for i in 0..n {
            for j in 0..n {
                let want = if i == j {
                    0.0
                } else {
                    kz[[i, j]] - (kz.row(i).sum() + kz.row(j).sum()) / (nf - 2.0)
                        + s / ((nf - 1.0) * (nf - 2.0))
                };
                assert!((u[[i, j]] - want).abs() < 1e-13);
            }
        }
    }
}
