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
    let sq = sq.as_slice().expect("contiguous");
    let mut d = linalg::a_at_lower(xc);
    d.axis_iter_mut(Axis(0))
        .into_par_iter()
        .enumerate()
        .for_each(|(i, mut row)| {
            let row = row.as_slice_mut().expect("standard layout");
            let si = sq[i];
            for (v, &sj) in row[..i].iter_mut().zip(&sq[..i]) {
                let t = si + sj - 2.0 * *v;
                *v = if t > 0.0 { t } else { 0.0 };
            }
            row[i] = 0.0;
        });
    linalg::mirror_lower(&mut d);
    d
}

/// Position of `v` on a histogram level, clamped to `[0, BINS - 1]`; its bin is the floor.
#[inline(always)]
fn level_pos(v: f64, lo: f64, scale: f64) -> f64 {
    const TOP: f64 = (BINS - 1) as f64;
    let t = (v - lo) * scale;
    if t < 0.0 {
        0.0
    } else if t > TOP {
        TOP
    } else {
        t
    }
}

/// A chain of histogram bins `(lo, scale, bin)` that a value must fall in to stay a candidate.
#[derive(Clone, Default)]
struct Filter {
    levels: Vec<(f64, f64, f64)>,
}

impl Filter {
    #[inline(always)]
    fn keeps(&self, v: f64) -> bool {
        self.levels.iter().all(|&(lo, scale, b)| {
            let t = level_pos(v, lo, scale);
            t >= b && t < b + 1.0
        })
    }
}

/// Visit the strict lower triangle of `d` in fixed row blocks, folding each block with `f`.
fn fold_lower<A, F>(d: &Array2<f64>, init: A, f: F) -> Vec<A>
where
    A: Clone + Send + Sync,
    F: Fn(&mut A, &[f64]) + Sync,
{
    let n = d.nrows();
    let flat = d.as_slice().expect("standard layout");
    (0..n.div_ceil(ROW_BLOCK))
        .into_par_iter()
        .map(|b| {
            let mut acc = init.clone();
            for i in (b * ROW_BLOCK)..((b + 1) * ROW_BLOCK).min(n) {
                f(&mut acc, &flat[i * n..i * n + i]);
            }
            acc
        })
        .collect()
}

/// Exact minimum and maximum of the candidates that pass `filter`.
fn candidate_range(d: &Array2<f64>, filter: &Filter) -> (f64, f64) {
    let parts = fold_lower(d, (f64::INFINITY, f64::NEG_INFINITY), |a, row| {
        for &v in row {
            if filter.keeps(v) {
                a.0 = if v < a.0 { v } else { a.0 };
                a.1 = if v > a.1 { v } else { a.1 };
            }
        }
    });
    parts
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), p| {
            (l.min(p.0), h.max(p.1))
        })
}

/// Selection by histogram rounds, the fallback of [`select_lower`].
///
/// Each round takes a histogram of the remaining candidates over their exact range and keeps
/// the bin holding rank `r`; once the candidates of that bin fit in memory they are collected
/// and selected. Rank `r + 1` is either in the same bin or the smallest value above it.
/// Typically three passes over the triangle: range, histogram, collection.
fn select_by_histogram(d: &Array2<f64>, r: usize, with_next: bool) -> (f64, Option<f64>) {
    let n = d.nrows();
    let total = n * n.saturating_sub(1) / 2;
    assert!(
        r < total && (!with_next || r + 1 < total),
        "rank out of range"
    );
    let mut filter = Filter::default();
    let mut r = r;
    let mut count = total;
    let mut next: Option<f64> = None;
    let mut need_next = with_next;
    loop {
        let (lo, hi) = candidate_range(d, &filter);
        if lo == hi {
            // Every candidate is equal; rank r + 1, if still needed, is among them.
            return (lo, if need_next { Some(lo) } else { next });
        }
        let scale = BINS as f64 / (hi - lo);
        let f = &filter;
        let parts = fold_lower(d, vec![0usize; BINS], |h: &mut Vec<usize>, row| {
            for &v in row {
                if f.keeps(v) {
                    h[level_pos(v, lo, scale) as usize] += 1;
                }
            }
        });
        let mut hist = vec![0usize; BINS];
        for p in &parts {
            for (t, c) in hist.iter_mut().zip(p) {
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
        count = count.min(hist[chosen]);
        // When rank r is the last of its bin, rank r + 1 is the smallest value above the bin.
        let next_outside = need_next && r + 1 == count;
        let parent = filter.clone();
        let bf = chosen as f64;
        filter.levels.push((lo, scale, bf));
        if count <= SELECT_CAP || next_outside {
            let parts = fold_lower(
                d,
                (Vec::new(), f64::INFINITY),
                |a: &mut (Vec<f64>, f64), row| {
                    for &v in row {
                        if parent.keeps(v) {
                            let t = level_pos(v, lo, scale);
                            if t >= bf && t < bf + 1.0 {
                                a.0.push(v);
                            } else if t >= bf + 1.0 && v < a.1 {
                                a.1 = v;
                            }
                        }
                    }
                },
            );
            if next_outside {
                next = Some(parts.iter().map(|p| p.1).fold(f64::INFINITY, f64::min));
                need_next = false;
            }
            if count <= SELECT_CAP {
                let mut vals: Vec<f64> = parts.into_iter().flat_map(|p| p.0).collect();
                let (_, v, rest) = vals.select_nth_unstable_by(r, |a, b| a.total_cmp(b));
                let v = *v;
                if need_next {
                    next = rest.iter().copied().reduce(f64::min);
                }
                return (v, next);
            }
        }
    }
}

/// Values sampled to bracket a rank before the exact pass.
const SAMPLE: usize = 1 << 16;

/// The `r`-th smallest (0-based) value of the strict lower triangle of `d` and, when
/// `with_next`, the `(r+1)`-th as well. Exact.
///
/// A fixed pseudo-random sample of the triangle brackets the wanted ranks between two sample
/// quantiles `a <= b` (four standard deviations either side, whatever the distribution); one
/// pass then counts the values below `a`, equal to `a` and equal to `b`, and collects those
/// strictly between, among which the ranks are selected exactly. If the bracket misses (about
/// once in 10^4 calls) the histogram rounds of `select_by_histogram` take over.
pub fn select_lower(d: &Array2<f64>, r: usize, with_next: bool) -> (f64, Option<f64>) {
    let n = d.nrows();
    let total = n * n.saturating_sub(1) / 2;
    assert!(
        r < total && (!with_next || r + 1 < total),
        "rank out of range"
    );
    if total <= SELECT_CAP {
        let mut vals: Vec<f64> = fold_lower(d, Vec::new(), |a: &mut Vec<f64>, row| {
            a.extend_from_slice(row)
        })
        .concat();
        let (_, v, rest) = vals.select_nth_unstable_by(r, |a, b| a.total_cmp(b));
        let v = *v;
        return (
            v,
            with_next.then(|| rest.iter().copied().fold(f64::INFINITY, f64::min)),
        );
    }
    select_by_bracket(d, r, with_next).unwrap_or_else(|| select_by_histogram(d, r, with_next))
}

fn select_by_bracket(d: &Array2<f64>, r: usize, with_next: bool) -> Option<(f64, Option<f64>)> {
    let n = d.nrows();
    let total = n * (n - 1) / 2;
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut sample: Vec<f64> = (0..SAMPLE)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let k = (state % total as u64) as usize;
            // Lower-triangle index k -> (i, j), j < i, rows in order.
            let mut i = ((1.0 + (1.0 + 8.0 * k as f64).sqrt()) / 2.0) as usize;
            while i * (i - 1) / 2 > k {
                i -= 1;
            }
            while (i + 1) * i / 2 <= k {
                i += 1;
            }
            d[[i, k - i * (i - 1) / 2]]
        })
        .collect();
    sample.sort_by(|a, b| a.total_cmp(b));
    let s = SAMPLE as f64;
    let last = r + usize::from(with_next);
    let (q0, q1) = (r as f64 / total as f64, last as f64 / total as f64);
    let margin = |q: f64| 4.0 * (s * q * (1.0 - q)).sqrt() + 2.0;
    let i0 = q0 * s - margin(q0);
    let i1 = q1 * s + margin(q1);
    let a = if i0 < 0.0 {
        f64::NEG_INFINITY
    } else {
        sample[i0 as usize]
    };
    let b = if i1 >= s - 1.0 {
        f64::INFINITY
    } else {
        sample[i1 as usize]
    };
    #[derive(Clone, Default)]
    struct Pass {
        below: usize,
        eq_a: usize,
        eq_b: usize,
        inside: Vec<f64>,
    }
    let parts = fold_lower(d, Pass::default(), |p: &mut Pass, row| {
        for &v in row {
            p.below += usize::from(v < a);
            p.eq_a += usize::from(v == a);
            p.eq_b += usize::from(v == b);
            if v > a && v < b {
                p.inside.push(v);
            }
        }
    });
    let below: usize = parts.iter().map(|p| p.below).sum();
    let eq_a: usize = parts.iter().map(|p| p.eq_a).sum();
    let eq_b: usize = if a == b {
        0
    } else {
        parts.iter().map(|p| p.eq_b).sum()
    };
    let mut inside: Vec<f64> = parts.into_iter().flat_map(|p| p.inside).collect();
    let (lo_end, hi_end) = (
        below + eq_a + inside.len(),
        below + eq_a + inside.len() + eq_b,
    );
    if r < below || last >= hi_end {
        return None;
    }
    // Sorted order of the bracket: eq_a copies of a, the inside values, eq_b copies of b.
    let mut at = |rank: usize| -> f64 {
        if rank < below + eq_a {
            a
        } else if rank < lo_end {
            let k = rank - below - eq_a;
            *inside.select_nth_unstable_by(k, |x, y| x.total_cmp(y)).1
        } else {
            b
        }
    };
    let v = at(r);
    let next = with_next.then(|| at(r + 1));
    Some((v, next))
}

/// Median of all n^2 entries of a symmetric matrix of squared distances with zero diagonal.
///
/// In sorted order the full matrix holds the n diagonal zeros first, then every strict-lower
/// value twice; entry `k >= n` of that order is lower-triangle order statistic `(k - n) / 2`.
pub fn median_full_from_lower(d: &Array2<f64>) -> f64 {
    let n = d.nrows();
    let total = n * n;
    let (k1, k2) = if total % 2 == 1 {
        (total / 2, total / 2)
    } else {
        (total / 2 - 1, total / 2)
    };
    if k2 < n {
        return 0.0;
    }
    if k1 < n {
        return 0.5 * select_lower(d, 0, false).0;
    }
    let (r1, r2) = ((k1 - n) / 2, (k2 - n) / 2);
    let (v1, v2) = select_lower(d, r1, r2 != r1);
    0.5 * (v1 + v2.unwrap_or(v1))
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
        .for_each(|chunk| crate::simd::exp_scaled(chunk, c));
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
    fn histogram_and_bracket_selection_agree_with_sorting() {
        let x = linalg::centre_columns(pseudo(1700, 2, 7).view());
        let d = squared_distances(&x);
        let mut all: Vec<f64> = (0..1700)
            .flat_map(|i| (0..i).map(move |j| (i, j)))
            .map(|(i, j)| d[[i, j]])
            .collect();
        all.sort_by(|a, b| a.total_cmp(b));
        for r in [0usize, 1, 777, all.len() / 2, all.len() - 2] {
            assert_eq!(select_by_histogram(&d, r, true), (all[r], Some(all[r + 1])));
            assert_eq!(select_lower(&d, r, true), (all[r], Some(all[r + 1])));
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
