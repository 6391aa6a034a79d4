//! Kernel matrices streamed in row tiles of their lower triangle, and the RBF bandwidth.
//!
//! No n x n matrix is ever held: the Gram matrix of centred features, the squared distances
//! and the RBF kernel are produced a block of rows at a time (rows `i0..i1`, columns `0..i1`,
//! one matrix product per tile), consumed, and overwritten by the next tile. Memory is
//! O(tile_rows x n) per layer whatever n is.
//!
//! RBF bandwidth (MEASURES.md 1.1): with `D2_ij = ||x_i - x_j||^2` over all `n^2` ordered pairs
//! (the `n` zero diagonal entries included), `m = median(D2)` and
//! `K_ij = exp(-D2_ij / (2 sigma_frac^2 m))`. The median is found exactly by selection on the
//! strict lower triangle (each off-diagonal value stands for two entries of the full matrix):
//! a fixed sample brackets the wanted ranks, one streaming pass counts and collects inside the
//! bracket, and histogram rounds take over in the rare case the bracket misses.

use crate::linalg::{Centred, Entries, Scratch};
use ndarray::Array2;
use rayon::prelude::*;

/// Rows per task in passes over triangles (fixed, so results do not depend on thread count;
/// one task per block, so that a pass does not end with one thread working through several).
const ROW_BLOCK: usize = 32;
/// Values collected for the final in-memory selection.
const SELECT_CAP: usize = 1 << 20;
/// Bins per histogram round.
const BINS: usize = 1 << 12;
/// Values sampled to bracket a rank before the exact pass.
const SAMPLE: usize = 1 << 16;

/// What a tile holds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum TileKind {
    /// `<xc_i, xc_j>`, the linear kernel of centred features.
    Gram,
    /// `||x_i - x_j||^2` (exactly 0 on the diagonal, round-off negatives clipped to 0).
    SqDist,
    /// `exp(-(D2_ij a) a) - shift`, the RBF kernel less a constant (which centring ignores; it
    /// keeps the sums of the tiles small so the centring formulas do not cancel). `a^2 =
    /// 1 / (2 sigma^2)` enters as two factors (see [`rbf_kind`]). With `centre = Some(m)`
    /// (wide bandwidths) the same entries are formed as `shift expm1((m - D2_ij) a^2)`, with
    /// `shift = exp(-m a^2)`: no cancellation between two numbers near 1.
    Rbf {
        a: f64,
        shift: f64,
        centre: Option<f64>,
    },
}

/// One representation's centred features with their squared row norms, and optionally its
/// squared distances already computed (then RBF tiles need no matrix product).
pub struct Rows<'a, 'b> {
    pub xc: &'a Centred<'b>,
    pub sq: &'a [f64],
    pub cache: Option<&'a PackedLower>,
}

/// The lower triangle (diagonal included) of a symmetric n x n matrix, row by row:
/// row `i` holds columns `0..=i` at offset `i (i + 1) / 2`.
pub struct PackedLower {
    n: usize,
    data: Vec<f64>,
}

impl PackedLower {
    /// Bytes needed for an n x n matrix.
    pub fn bytes(n: usize) -> usize {
        n * (n + 1) / 2 * std::mem::size_of::<f64>()
    }

    /// Row `i`: columns `0..=i`.
    pub(crate) fn row(&self, i: usize) -> &[f64] {
        let o = i * (i + 1) / 2;
        &self.data[o..o + i + 1]
    }

    /// The squared distances of `rows`, computed in blocks of rows in parallel:
    /// each block is one single-threaded product (rows `i0..i1` against rows `0..i1`)
    /// transformed straight into its packed place, so the work is spread over all threads
    /// and the result does not depend on their number. The packed triangle is written once
    /// (no serial zero-filling first).
    pub fn squared_distances(rows: &Rows<'_, '_>) -> Self {
        let n = rows.n();
        let len = n * (n + 1) / 2;
        let mut data: Vec<f64> = crate::memory::with_capacity(
            len,
            "the cached squared distances of an RBF layer",
            "subsample the rows",
        );
        let sq = rows.sq;
        {
            // Split the packed triangle into its blocks of rows (row i has i + 1 entries).
            const ROWS: usize = crate::gram::TASK_ROWS;
            let mut blocks = Vec::with_capacity(n.div_ceil(ROWS));
            let mut rest = &mut data.spare_capacity_mut()[..len];
            for i0 in (0..n).step_by(ROWS) {
                let i1 = (i0 + ROWS).min(n);
                let (block, tail) = rest.split_at_mut(i1 * (i1 + 1) / 2 - i0 * (i0 + 1) / 2);
                blocks.push((i0, i1, block));
                rest = tail;
            }
            blocks
                .into_par_iter()
                .rev()
                .with_max_len(1)
                .for_each(|(i0, i1, block)| {
                    crate::interrupt::checkpoint();
                    let mut g = vec![0.0f64; (i1 - i0) * i1];
                    rows.xc
                        .gram_block((i0, i1, 0, i1), Entries::Lower, &mut g, i1);
                    let mut at = 0;
                    for (r, gr) in g.chunks_exact(i1).enumerate() {
                        let i = i0 + r;
                        let si = sq[i];
                        for ((o, &gij), &sj) in block[at..at + i].iter_mut().zip(gr).zip(sq) {
                            let t = si + sj - 2.0 * gij;
                            o.write(if t > 0.0 { t } else { 0.0 });
                        }
                        block[at + i].write(0.0);
                        at += i + 1;
                    }
                });
        }
        // SAFETY: the blocks above cover all `len` reserved entries, each written once.
        unsafe { data.set_len(len) };
        PackedLower { n, data }
    }
}

impl Triangle for PackedLower {
    fn n(&self) -> usize {
        self.n
    }
    fn entry(&self, i: usize, j: usize) -> f64 {
        self.row(i)[j]
    }
    fn fold<A, F>(&self, init: A, f: F) -> Vec<A>
    where
        A: Clone + Send + Sync,
        F: Fn(&mut A, &[f64]) + Sync,
    {
        (0..self.n.div_ceil(ROW_BLOCK))
            .into_par_iter()
            .with_max_len(1)
            .map(|b| {
                crate::interrupt::checkpoint();
                let mut acc = init.clone();
                for i in (b * ROW_BLOCK)..((b + 1) * ROW_BLOCK).min(self.n) {
                    f(&mut acc, &self.row(i)[..i]);
                }
                acc
            })
            .collect()
    }
}

impl Rows<'_, '_> {
    pub fn n(&self) -> usize {
        self.sq.len()
    }

    /// One entry of `kind`'s matrix, computed directly (used only to pick thresholds).
    fn entry(&self, kind: TileKind, i: usize, j: usize) -> f64 {
        let g = self.xc.row_dot(i, j);
        match kind {
            TileKind::Gram => g,
            TileKind::SqDist | TileKind::Rbf { .. } if i == j => 0.0,
            _ => (self.sq[i] + self.sq[j] - 2.0 * g).max(0.0),
        }
    }

    /// Fill `buf` with rows `i0..i1`, columns `0..i1` of `kind`'s matrix, row-major; entries
    /// above the diagonal (`j > i`) are set to zero.
    pub fn tile(
        &self,
        kind: TileKind,
        i0: usize,
        i1: usize,
        buf: &mut Vec<f64>,
        scratch: &mut Scratch,
    ) {
        let w = i1;
        buf.resize((i1 - i0) * w, 0.0);
        let cached = match kind {
            TileKind::Rbf { .. } => self.cache,
            _ => None,
        };
        if cached.is_none() {
            self.xc.gram_rows(i0, i1, buf, scratch);
        }
        let sq = self.sq;
        buf.par_chunks_mut(w).enumerate().for_each(|(r, row)| {
            let i = i0 + r;
            let (lower, upper) = row.split_at_mut(i + 1);
            upper.fill(0.0);
            if let Some(d) = cached {
                lower.copy_from_slice(d.row(i));
            } else if kind != TileKind::Gram {
                let si = sq[i];
                for (v, &sj) in lower.iter_mut().zip(sq) {
                    let t = si + sj - 2.0 * *v;
                    *v = if t > 0.0 { t } else { 0.0 };
                }
                lower[i] = 0.0;
            }
            if let TileKind::Rbf { a, shift, centre } = kind {
                rbf_entries(lower, a, shift, centre);
            }
        });
    }
}

/// Row-tile boundaries for `layers` simultaneous layers of `n` rows: tiles of up to 512 rows,
/// fewer when many layers are streamed together (about 2^26 buffered values in all).
pub fn tiles(n: usize, layers: usize) -> Vec<(usize, usize)> {
    let rows = ((1usize << 26) / (layers.max(1) * n.max(1))).clamp(16, 512);
    (0..n.div_ceil(rows))
        .map(|t| (t * rows, ((t + 1) * rows).min(n)))
        .collect()
}

/// A strict lower triangle that can be visited row by row, in a fixed order.
pub trait Triangle: Sync {
    fn n(&self) -> usize;
    /// Entry `(i, j)`, `j < i`; may differ from the visited value by round-off (used only to
    /// choose thresholds).
    fn entry(&self, i: usize, j: usize) -> f64;
    /// Fold `f` over the rows `row_i[0..i]`, in blocks whose boundaries depend only on n;
    /// returns the blocks' results in order.
    fn fold<A, F>(&self, init: A, f: F) -> Vec<A>
    where
        A: Clone + Send + Sync,
        F: Fn(&mut A, &[f64]) + Sync;
}

impl Triangle for Array2<f64> {
    fn n(&self) -> usize {
        self.nrows()
    }
    fn entry(&self, i: usize, j: usize) -> f64 {
        self[[i, j]]
    }
    fn fold<A, F>(&self, init: A, f: F) -> Vec<A>
    where
        A: Clone + Send + Sync,
        F: Fn(&mut A, &[f64]) + Sync,
    {
        let n = self.nrows();
        let flat = self.as_slice().expect("standard layout");
        (0..n.div_ceil(ROW_BLOCK))
            .into_par_iter()
            .with_max_len(1)
            .map(|b| {
                let mut acc = init.clone();
                for i in (b * ROW_BLOCK)..((b + 1) * ROW_BLOCK).min(n) {
                    f(&mut acc, &flat[i * n..i * n + i]);
                }
                acc
            })
            .collect()
    }
}

/// The squared distances of one representation, produced tile by tile.
pub struct StreamedDistances<'a, 'b>(pub Rows<'a, 'b>);

impl Triangle for StreamedDistances<'_, '_> {
    fn n(&self) -> usize {
        self.0.n()
    }
    fn entry(&self, i: usize, j: usize) -> f64 {
        self.0.entry(TileKind::SqDist, i, j)
    }
    fn fold<A, F>(&self, init: A, f: F) -> Vec<A>
    where
        A: Clone + Send + Sync,
        F: Fn(&mut A, &[f64]) + Sync,
    {
        let n = self.n();
        let mut buf = Vec::new();
        let mut scratch = Scratch::default();
        let mut out = Vec::new();
        for (i0, i1) in tiles(n, 1) {
            crate::interrupt::checkpoint();
            self.0
                .tile(TileKind::SqDist, i0, i1, &mut buf, &mut scratch);
            let parts: Vec<A> = (i0..i1)
                .step_by(ROW_BLOCK)
                .collect::<Vec<_>>()
                .into_par_iter()
                .with_max_len(1)
                .map(|b0| {
                    let mut acc = init.clone();
                    for i in b0..(b0 + ROW_BLOCK).min(i1) {
                        let r = (i - i0) * i1;
                        f(&mut acc, &buf[r..r + i]);
                    }
                    acc
                })
                .collect();
            out.extend(parts);
        }
        out
    }
}

/// Position of `v` on a histogram level, clamped to `[0, BINS - 1]`; its bin is the floor.
#[inline(always)]
fn level_pos(v: f64, lo: f64, scale: f64) -> f64 {
    const TOP: f64 = (BINS - 1) as f64;
    ((v - lo) * scale).clamp(0.0, TOP)
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

/// Exact minimum and maximum of the candidates that pass `filter`.
fn candidate_range<S: Triangle>(d: &S, filter: &Filter) -> (f64, f64) {
    let parts = d.fold((f64::INFINITY, f64::NEG_INFINITY), |a, row| {
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
fn select_by_histogram<S: Triangle>(d: &S, r: usize, with_next: bool) -> (f64, Option<f64>) {
    let mut filter = Filter::default();
    let n = d.n();
    let mut r = r;
    let mut count = n * (n - 1) / 2;
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
        let parts = d.fold(vec![0usize; BINS], |h: &mut Vec<usize>, row| {
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
            let parts = d.fold(
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

/// The `r`-th smallest (0-based) value of the strict lower triangle and, when `with_next`,
/// the `(r+1)`-th as well. Exact.
///
/// A fixed pseudo-random sample of the triangle brackets the wanted ranks between two sample
/// quantiles `a <= b` (four standard deviations either side, whatever the distribution); one
/// pass then counts the values below `a`, equal to `a` and equal to `b`, and collects those
/// strictly between, among which the ranks are selected exactly. If the bracket misses (about
/// once in 10^4 calls) histogram rounds take over.
pub fn select_lower<S: Triangle>(d: &S, r: usize, with_next: bool) -> (f64, Option<f64>) {
    let n = d.n();
    let total = n * n.saturating_sub(1) / 2;
    assert!(
        r < total && (!with_next || r + 1 < total),
        "rank out of range"
    );
    if total <= SELECT_CAP {
        let mut vals: Vec<f64> = d
            .fold(Vec::new(), |a: &mut Vec<f64>, row| a.extend_from_slice(row))
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

fn select_by_bracket<S: Triangle>(d: &S, r: usize, with_next: bool) -> Option<(f64, Option<f64>)> {
    let n = d.n();
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
            (i, k - i * (i - 1) / 2)
        })
        .collect::<Vec<_>>()
        .into_par_iter()
        .map(|(i, j)| d.entry(i, j))
        .collect();
    sample.par_sort_unstable_by(|a, b| a.total_cmp(b));
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
    let parts = d.fold(Pass::default(), |p: &mut Pass, row| {
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
    let lo_end = below + eq_a + inside.len();
    if r < below || last >= lo_end + eq_b {
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

/// Median of all n^2 entries of a symmetric matrix with zero diagonal and non-negative
/// entries (squared distances), given its strict lower triangle.
///
/// In sorted order the full matrix holds the n diagonal zeros first, then every strict-lower
/// value twice; entry `k >= n` of that order is lower-triangle order statistic `(k - n) / 2`.
pub fn median_full<S: Triangle>(d: &S) -> f64 {
    let n = d.n();
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

/// The RBF tile kind for `rows` (MEASURES.md 1.1), or `None` when the median squared distance
/// is zero (the kernel is then undefined). With `keep`, the squared distances are computed once
/// into a packed triangle, used for the median and returned so the kernel tiles can reuse them
/// instead of a second matrix product; otherwise they are streamed (no n x n memory).
pub fn rbf_kind(
    rows: Rows<'_, '_>,
    sigma_frac: f64,
    keep: bool,
) -> (Option<TileKind>, Option<PackedLower>) {
    let (m, cache) = if keep {
        let d = PackedLower::squared_distances(&rows);
        (median_full(&d), Some(d))
    } else {
        (median_full(&StreamedDistances(rows)), None)
    };
    if m <= 0.0 {
        return (None, None);
    }
    // exp(-D2 / (2 sigma_frac^2 m)) = exp(-(D2 a) a): a^2 itself overflows float64 for tiny
    // bandwidths (sigma_frac^2 m below about 1e-308), a does not. A larger `a` than f64::MAX
    // changes nothing: (D2 f64::MAX) f64::MAX already overflows for every D2 > 0 (the entry
    // is then exactly 0, as the exact one is), and D2 = 0 gives 1.
    let a = (1.0 / (sigma_frac * (2.0 * m).sqrt())).min(f64::MAX);
    // m a^2 = 1 / (2 sigma_frac^2): below 1/8 (sigma_frac > 2) every entry is near the shift
    // and exp(..) - shift would cancel (sigma_frac = 1e4 lost 6 digits, 1e8 all of them)
    let q = (m * a) * a;
    (
        Some(TileKind::Rbf {
            a,
            shift: (-q).exp(),
            centre: (q < 0.125).then_some(m),
        }),
        cache,
    )
}

/// The RBF kernel entries of a row of squared distances `v`, in place (see
/// [`TileKind::Rbf`]).
pub(crate) fn rbf_entries(v: &mut [f64], a: f64, shift: f64, centre: Option<f64>) {
    match centre {
        None => {
            crate::simd::exp_scaled(v, a);
            v.iter_mut().for_each(|x| *x -= shift);
        }
        Some(m) => crate::simd::expm1_scaled(v, a, m, shift),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linalg;

    use crate::testutil::{full_sq_dist, pseudo};

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

    #[test]
    fn streamed_median_matches_sorting_for_odd_and_even_n() {
        for n in [2usize, 3, 4, 5, 17, 64, 501, 1600] {
            let x = pseudo(n, 3, n as u64);
            let xc = Centred::new(linalg::Input::F64(x.view()));
            let sq = xc.sq_norms();
            let rows = || Rows {
                xc: &xc,
                sq: sq.as_slice().unwrap(),
                cache: None,
            };
            let got = median_full(&StreamedDistances(rows()));
            let packed = median_full(&PackedLower::squared_distances(&rows()));
            let want = naive_median(&full_sq_dist(&x));
            assert!((got - want).abs() <= 1e-12 * want, "n={n}: {got} vs {want}");
            assert_eq!(got, packed, "n={n}: streamed and packed medians differ");
        }
    }

    #[test]
    fn histogram_and_bracket_selection_agree_with_sorting() {
        let d = full_sq_dist(&pseudo(1700, 2, 7));
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
        assert_eq!(median_full(&full_sq_dist(&x)), 0.0);
        // Three clusters with many exactly equal distances.
        let x = Array2::from_shape_fn((1500, 1), |(i, _)| (i % 3) as f64);
        let d = full_sq_dist(&x);
        assert_eq!(median_full(&d), naive_median(&d));
        assert_eq!(
            select_by_histogram(&d, 500_000, true),
            select_lower(&d, 500_000, true)
        );
    }
}
