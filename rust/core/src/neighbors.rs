//! k-nearest-neighbour sets under cosine distance, and the neighbourhood measures built on them
//! (MEASURES.md section 5).
//!
//! # The kNN sets ([`knn`])
//!
//! `N_k(i)` holds the `k` rows nearest to row `i` under the cosine distance `1 - cos`, row `i`
//! itself excluded, ordered by increasing distance with ties broken by the smaller index. An
//! all-zero row has cosine similarity 0 with every row (distance 1), as MEASURES.md 0.3 says.
//!
//! 1. The rows are normalised once, `u_i = x_i / ||x_i||`, computed in float64 on the row
//!    scaled by a power of two (exact, so neither tiny nor huge rows over- or underflow) and
//!    stored in float32 for the blocked products; all-zero rows stay zero.
//! 2. Blocked pass ([`candidates`]): the rows are cut into blocks of `B` rows ([`BLOCK`], or
//!    `n` when `n <= BLOCK`; the last block is padded with zero rows). For each block row `I`
//!    the tiles `S_IJ = U_I U_J^T`, `J <= I`, are computed in parallel, one single-threaded
//!    faer product per tile (float32; for `p > 4096` in blocks of 4096 columns added in
//!    float64, as [`crate::linalg::product_f64`] does). Only the lower triangle of blocks is
//!    computed: each unordered pair `{i, j}` is computed **exactly once**, in tile `(max, min)`
//!    (below the diagonal inside a diagonal tile), and that one value `d_ij = 1 - s_ij`
//!    (clamped to `[0, 2]`) is offered to both rows' selections; this halves the flops of an
//!    `n x n` product. Each row keeps a bounded max-heap of its best `(distance, index)` pairs
//!    in the lexicographic order, behind a conservative similarity threshold that rejects most
//!    candidates with one comparison. The `c` smallest elements of a set under a strict total
//!    order are unique, so the result does not depend on the order in which candidates arrive,
//!    hence not on the number of threads.
//! 3. The float32 pass only *screens*, for either input precision; the result is that of an
//!    exhaustive float64 search with the distance `||u_a - u_b||^2 / 2` of the float64 unit
//!    rows `u_a, u_b` of the rows `a, b` ([`ScaledRows`]: one fixed-order function of the two
//!    rows, [`crate::simd::sq_dist`], the same as in [`second_order_cosine`]). It equals
//!    `1 - cos` in exact arithmetic and, unlike `1 - cos`, keeps its relative accuracy for
//!    nearly parallel rows (data far from the origin, where every cosine is within 1e-8 of 1).
//!    float32 input is converted to float64 exactly, so its result is bitwise that of the
//!    same values given as float64: neighbour sets, ranks and ties never depend on the dtype.
//! 4. Certification: the pass keeps `c = 2k + 16` candidates per row. With `delta` a rigorous
//!    bound on the difference between a float32 and a float64 similarity
//!    ([`screening_error`]: `p 2^-24` to first order, 4.6e-5 for `p = 768`), the
//!    `k` float32-nearest rows are within `delta` in float64, so every row of the float64
//!    `N_k(i)` has a float32 distance within `2 delta` of the `k`-th float32 distance. Hence if
//!    the `c`-th kept candidate lies beyond the `k`-th by more than that margin (taken as
//!    `4 delta + 1e-14`), the kept candidates within the margin contain `N_k(i)`, and their
//!    float64 distances give the exact result. Rows where the margin does not hold (more than
//!    `c` rows within it: duplicated rows, many rows at one distance, or rows so nearly
//!    parallel that float32 cannot tell them apart, as with a large common offset) get the
//!    exhaustive float64 pass over all rows, a group of rows at a time. All-zero rows need no
//!    search: their neighbours are the smallest other indices, at distance 1. On random data
//!    every row is certified, and the search costs about half of a float64 product.
//!
//! Memory: the float32 unit rows (`n p` values), the tiles of one block row (`B x n`) and the
//! heaps (`n c` pairs); never `n x n`.
//!
//! **Exactness of ties.** Every distance in a result is a fixed function of the two rows,
//! computed the same way wherever the pair appears, so `d_ij = d_ji`, and rows whose unit
//! vectors are bitwise equal (duplicated rows, rows that differ by a power-of-two factor,
//! all-zero rows) have exactly equal distances to any third row and distance exactly 0 to each
//! other: their order is decided by the index, as specified. Exact-arithmetic ties between
//! rows whose scaled rows differ in the last bits, such as `x` and `3 x`, are ties only up to
//! round-off.
//!
//! # The measures
//!
//! [`set_statistic`] computes 5.1, 5.3, 5.4 and 5.5 from two index matrices, per row from the
//! shared neighbours with their rank sums added in the order of the unordered rank pairs, so
//! that `f(X, Y)` and `f(Y, X)` perform the same operations and agree to the bit (and identical
//! inputs give exactly 1). [`second_order_cosine`] (5.2) recomputes every distance it needs
//! with the float64 distance of item 4, so the "all distances zero" `nan` case is exact for
//! duplicated rows. The mean over rows is a sequential sum of per-row values, so every result
//! is identical for any number of threads.

use crate::error::{CoreError, Result};
use crate::linalg::{faer_ref, Input, Real};
use faer::{Accum, MatMut, Par};
use ndarray::{s, Array2, ArrayView1, ArrayView2, Axis, Zip};
use rayon::prelude::*;

/// Rows per block of the kNN computation (tiles are `BLOCK x BLOCK`): a multiple of the row
/// count of faer's float32 micro-kernel (24 with AVX2, 96 with AVX-512), so that no tile ends
/// in a partial micro-kernel, and small enough for faer's single-block path.
pub const BLOCK: usize = 288;

/// The `k` nearest neighbours of every row: `indices[i]` lists them by increasing distance
/// (ties to the smaller index), `distances[i]` holds their cosine distances.
#[derive(Clone, Debug)]
pub struct Knn {
    pub indices: Array2<i64>,
    pub distances: Array2<f64>,
}

/// A candidate neighbour of a row: its distance and index.
#[derive(Clone, Copy, Debug)]
struct Entry {
    d: f64,
    j: usize,
}

impl Entry {
    /// The strict total order of the specification: by distance, then by index.
    #[inline(always)]
    fn before(&self, other: &Entry) -> bool {
        self.d < other.d || (self.d == other.d && self.j < other.j)
    }
}

/// Offer a candidate to a bounded max-heap (`heap.len() == k` slots, `len` of them used):
/// it enters when the heap is not full or when it comes before the current worst entry.
#[inline(always)]
fn offer(heap: &mut [Entry], len: &mut usize, cand: Entry) {
    let k = heap.len();
    if *len < k {
        let mut pos = *len;
        *len += 1;
        while pos > 0 {
            let parent = (pos - 1) / 2;
            if heap[parent].before(&cand) {
                heap[pos] = heap[parent];
                pos = parent;
            } else {
                break;
            }
        }
        heap[pos] = cand;
    } else if cand.before(&heap[0]) {
        let mut pos = 0;
        loop {
            let left = 2 * pos + 1;
            if left >= k {
                break;
            }
            let right = left + 1;
            let child = if right < k && heap[left].before(&heap[right]) {
                right
            } else {
                left
            };
            if cand.before(&heap[child]) {
                heap[pos] = heap[child];
                pos = child;
            } else {
                break;
            }
        }
        heap[pos] = cand;
    }
}

/// Cosine distance from a similarity of unit rows, clamped to its range `[0, 2]`.
#[inline(always)]
fn distance(s: f64) -> f64 {
    (1.0 - s).clamp(0.0, 2.0)
}

/// A row's selection: `k` heap slots, how many are used, and a similarity threshold `thr`
/// below which no candidate can enter (`-inf` while the heap is not full). A candidate enters
/// when `d < w.d` or `d == w.d` and `j < w.j` for the worst entry `w`, and since
/// `d = fl(1 - s)` differs from `1 - s` by at most `2^-52` for `|1 - s| <= 2`, that needs
/// `s >= fl(1 - w.d) - 1e-15`: the threshold is conservative, the test against `w` is exact.
#[inline(always)]
fn push(heap: &mut [Entry], len: &mut usize, thr: &mut f64, cand: Entry) {
    let k = heap.len();
    if *len == k && !cand.before(&heap[0]) {
        return;
    }
    offer(heap, len, cand);
    if *len == k {
        let wd = heap[0].d;
        // A worst distance of 2 can tie with candidates whose unclamped 1 - s exceeds 2.
        *thr = if wd >= 2.0 {
            f64::NEG_INFINITY
        } else {
            (1.0 - wd) - 1e-15
        };
    }
}

/// Lanes of the threshold pre-test (one comparison per candidate, eight at a time).
const LANES: usize = 8;

/// Offer the candidates `j0 + c` with similarities `sims[c]` to one row's selection.
#[inline(always)]
fn scan_row<S: Real>(heap: &mut [Entry], len: &mut usize, thr: &mut f64, sims: &[S], j0: usize) {
    for (q, chunk) in sims.chunks(LANES).enumerate() {
        let t = *thr;
        // An OR of comparisons (no ordered floating-point reduction), so it vectorises.
        if !chunk.iter().fold(false, |hit, &v| hit | (v.to_f64() >= t)) {
            continue;
        }
        for (c, &s) in chunk.iter().enumerate() {
            let s = s.to_f64();
            if s >= *thr {
                let j = j0 + q * LANES + c;
                push(heap, len, thr, Entry { d: distance(s), j });
            }
        }
    }
}

/// Offer candidate `i` with similarities `sims[c]` to the selections of rows `c` (one each).
#[inline(always)]
fn scan_column<S: Real>(
    heaps: &mut [Entry],
    lens: &mut [usize],
    thrs: &mut [f64],
    sims: &[S],
    i: usize,
) {
    let k = heaps.len() / lens.len();
    for (q, chunk) in sims.chunks(LANES).enumerate() {
        let c0 = q * LANES;
        let th = &thrs[c0..c0 + chunk.len()];
        let hit = chunk
            .iter()
            .zip(th)
            .fold(false, |acc, (&s, &t)| acc | (s.to_f64() >= t));
        if !hit {
            continue;
        }
        for (c, &s) in chunk.iter().enumerate() {
            let r = c0 + c;
            let s = s.to_f64();
            if s >= thrs[r] {
                let heap = &mut heaps[r * k..(r + 1) * k];
                let cand = Entry {
                    d: distance(s),
                    j: i,
                };
                push(heap, &mut lens[r], &mut thrs[r], cand);
            }
        }
    }
}

/// `2^-e` for the exponent `e` of `m > 0` (clamped to +-1000), so that `m 2^-e` is in `[1, 2)`
/// for all but extreme `m`. Multiplying by it is exact.
fn pow2_scale(m: f64) -> f64 {
    let e = if m > 0.0 {
        (m.log2().floor() as i64).clamp(-1000, 1000)
    } else {
        0
    };
    f64::from_bits(((1023 - e) as u64) << 52)
}

/// Largest absolute value of a row, in float64.
fn max_abs<T: Real>(row: ArrayView1<T>) -> f64 {
    row.iter().fold(0.0f64, |m, v| {
        let a = v.to_f64().abs();
        if a > m {
            a
        } else {
            m
        }
    })
}

/// Unit rows `x_i / ||x_i||` rounded to float32, in a C-ordered `(n_pad, p)` array whose rows
/// past `n` (padding) and whose all-zero rows are zero. Computed in float64 on the row scaled
/// by a power of two.
fn unit_rows<T: Real>(x: ArrayView2<T>, n_pad: usize) -> Array2<f32> {
    let (n, p) = x.dim();
    let mut u = Array2::<f32>::zeros((n_pad, p));
    u.slice_mut(s![..n, ..])
        .axis_iter_mut(Axis(0))
        .into_par_iter()
        .zip(x.axis_iter(Axis(0)).into_par_iter())
        .for_each_init(Vec::new, |buf, (mut o, r)| {
            buf.clear();
            buf.extend(r.iter().map(|v| v.to_f64()));
            let m = buf
                .iter()
                .fold(0.0f64, |m, v| if v.abs() > m { v.abs() } else { m });
            if m == 0.0 {
                return;
            }
            let sc = pow2_scale(m);
            let ss: f64 = buf.iter().map(|&v| (v * sc) * (v * sc)).sum();
            // v * sc is exact, so rows that differ by a power-of-two factor get bitwise equal
            // unit rows.
            let inv = 1.0 / ss.sqrt();
            for (o, &v) in o.iter_mut().zip(buf.iter()) {
                *o = ((v * sc) * inv) as f32;
            }
        });
    u
}

/// `out = a b^T` for two `(B, p)` blocks of unit rows, in `T`, on the calling thread.
///
/// faer runs with `Par::Seq`: the tiles themselves run in parallel, one per Rayon task, and
/// [`crate::linalg::product_f64`] would start faer's own thread team inside every task
/// (measured: about 1.5 times the CPU time).
fn tile_direct<T: Real>(a: ArrayView2<T>, b: ArrayView2<T>, out: &mut Array2<T>) {
    let (rows, cols) = (a.nrows(), b.nrows());
    assert!(out.is_standard_layout() && out.dim() == (rows, cols));
    // SAFETY: `out` is an owned, standard-layout (rows, cols) array borrowed uniquely here.
    let dst = unsafe { MatMut::from_raw_parts_mut(out.as_mut_ptr(), rows, cols, cols as isize, 1) };
    faer::linalg::matmul::matmul(
        dst,
        Accum::Replace,
        faer_ref(&a),
        faer_ref(&b).transpose(),
        T::one(),
        Par::Seq,
    );
}

/// `out = a b^T` in float64 from float32 products over blocks of `f32::REDUCTION_BLOCK`
/// columns, each added in float64: the reduction of [`crate::linalg::product_f64`].
fn tile_blocked(
    a: ArrayView2<f32>,
    b: ArrayView2<f32>,
    out: &mut Array2<f64>,
    tmp: &mut Array2<f32>,
) {
    let p = a.ncols();
    out.fill(0.0);
    let mut k0 = 0;
    while k0 < p {
        let kb = (p - k0).min(f32::REDUCTION_BLOCK);
        tile_direct(
            a.slice(s![.., k0..k0 + kb]),
            b.slice(s![.., k0..k0 + kb]),
            tmp,
        );
        Zip::from(&mut *out)
            .and(&*tmp)
            .for_each(|o, &t| *o += t as f64);
        k0 += kb;
    }
}

/// Sort a row's entries by the specification's order.
fn sort_entries(e: &mut [Entry]) {
    e.sort_unstable_by(|a, b| {
        if a.before(b) {
            std::cmp::Ordering::Less
        } else if b.before(a) {
            std::cmp::Ordering::Greater
        } else {
            std::cmp::Ordering::Equal
        }
    });
}

/// For each of the first `n` rows of the float32 unit rows `u` (padded with zero rows to a
/// multiple of `b`), its `cap <= n - 1` best `(1 - s, index)` candidates over all other rows,
/// sorted: a flat `n * cap` vector. The blocked, symmetric pass of the module documentation.
fn candidates(u: &Array2<f32>, n: usize, cap: usize, b: usize) -> Vec<Entry> {
    if u.ncols() <= f32::REDUCTION_BLOCK {
        select::<f32, _>(u, n, cap, b, (0, 0), |x, y, out, _| tile_direct(x, y, out))
    } else {
        select::<f64, _>(u, n, cap, b, (b, b), tile_blocked)
    }
}

fn select<S, F>(
    u: &Array2<f32>,
    n: usize,
    cap: usize,
    b: usize,
    tmp_dim: (usize, usize),
    product: F,
) -> Vec<Entry>
where
    S: Real,
    F: Fn(ArrayView2<f32>, ArrayView2<f32>, &mut Array2<S>, &mut Array2<f32>) + Sync,
{
    let k = cap;
    let nb = n.div_ceil(b);
    let mut heaps = crate::memory::vec(
        n * k,
        Entry { d: 0.0, j: 0 },
        "the kNN candidate lists",
        KNN_ALTERNATIVE,
    );
    let mut lens = vec![0usize; n];
    let mut thrs = vec![f64::NEG_INFINITY; n];
    // One block row of tiles (B x n_pad), reused for every block row.
    let mut panel: Vec<Array2<S>> = (0..nb)
        .map(|_| Array2::from_elem((b, b), S::from_f64(0.0)))
        .collect();
    for bi in 0..nb {
        crate::interrupt::checkpoint();
        let i0 = bi * b;
        let rows = b.min(n - i0);
        let ui = u.slice(s![i0..i0 + b, ..]);
        // Tiles S_IJ = U_I U_J^T for J <= I, each B x B: the same product for every tile.
        panel[..=bi].par_iter_mut().enumerate().for_each_init(
            || Array2::<f32>::zeros(tmp_dim),
            |tmp, (bj, out)| {
                crate::interrupt::checkpoint();
                let uj = u.slice(s![bj * b..(bj + 1) * b, ..]);
                product(ui, uj, out, tmp);
            },
        );
        let tiles = &panel[..=bi];
        let (earlier_h, rest_h) = heaps.split_at_mut(i0 * k);
        let (earlier_l, rest_l) = lens.split_at_mut(i0);
        let (earlier_t, rest_t) = thrs.split_at_mut(i0);
        let cur_h = &mut rest_h[..rows * k];
        let cur_l = &mut rest_l[..rows];
        let cur_t = &mut rest_t[..rows];
        rayon::join(
            // Rows of block I: candidates from every tile of the block row.
            || {
                cur_h
                    .par_chunks_mut(k)
                    .zip(cur_l.par_iter_mut())
                    .zip(cur_t.par_iter_mut())
                    .enumerate()
                    .for_each(|(r, ((heap, len), thr))| {
                        for (bj, t) in tiles.iter().enumerate() {
                            let row = t.row(r);
                            let row = row.as_slice().expect("standard layout");
                            if bj < bi {
                                scan_row(heap, len, thr, row, bj * b);
                            } else {
                                // Diagonal tile: pairs (r, c < r) from row r, and pairs
                                // (c > r, r) from column r, both below the diagonal.
                                scan_row(heap, len, thr, &row[..r], i0);
                                for c in r + 1..rows {
                                    let s = t[[c, r]].to_f64();
                                    if s >= *thr {
                                        let cand = Entry {
                                            d: distance(s),
                                            j: i0 + c,
                                        };
                                        push(heap, len, thr, cand);
                                    }
                                }
                            }
                        }
                    });
            },
            // Rows of earlier blocks J < I: candidates i in I from the columns of S_IJ.
            || {
                earlier_h
                    .par_chunks_mut(b * k)
                    .zip(earlier_l.par_chunks_mut(b))
                    .zip(earlier_t.par_chunks_mut(b))
                    .enumerate()
                    .for_each(|(bj, ((hs, ls), ts))| {
                        let t = &tiles[bj];
                        for r in 0..rows {
                            let row = t.row(r);
                            let row = row.as_slice().expect("standard layout");
                            scan_column(hs, ls, ts, row, i0 + r);
                        }
                    });
            },
        );
    }
    heaps.par_chunks_mut(k).for_each(sort_entries);
    heaps
}

/// A bound on `|s32 - s64|` for two unit rows of length `p`, where `s32` is their similarity
/// from [`candidates`] (float32 unit rows, float32 products over at most 4096 terms, blocks
/// added in float64) and `s64` the float64 [`crate::simd::dot`] of the float64 unit rows:
/// rounding the unit rows to float32 (`2^-23` relative, plus slack), the float32 and float64
/// accumulations (`gamma_m = m u / (1 - m u)` each, times `||a|| ||b|| <= 1`), with 1 %
/// headroom for the norms of rounded unit rows.
fn screening_error(p: usize) -> f64 {
    let gamma = |m: usize, unit: f64| {
        let t = m as f64 * unit;
        t / (1.0 - t)
    };
    let (u32_, u64_) = (f32::EPSILON as f64 / 2.0, f64::EPSILON / 2.0);
    let pb = p.min(f32::REDUCTION_BLOCK);
    (gamma(pb, u32_) + 3.0 * u32_ + gamma(p, u64_) + gamma(p.div_ceil(pb) + 1, u64_)) * 1.01
}

fn check_k(n: usize, k: usize) -> Result<()> {
    if k < 1 || k + 1 > n {
        return Err(CoreError::Parameter {
            name: "k",
            value: k.to_string(),
            expected: format!(
                "an integer in [1, n-1] = [1, {}] for n = {n} rows",
                n.max(1) - 1
            ),
        });
    }
    Ok(())
}

fn check_input(x: &Input, arg: &'static str) -> Result<()> {
    let (n, p) = (x.nrows(), x.ncols());
    if n < 2 || p == 0 {
        return Err(CoreError::Shape {
            arg,
            shape: vec![n, p],
            expected: "at least 2 rows and 1 column".into(),
        });
    }
    Ok(())
}

/// The `k` nearest neighbours of every row of `x` under cosine distance (see the module
/// documentation for the algorithm and the exactness of ties).
///
/// Errors: `k` outside `[1, n-1]`; fewer than 2 rows or no column.
pub fn knn(x: Input, k: usize) -> Result<Knn> {
    check_input(&x, "X")?;
    check_k(x.nrows(), k)?;
    check_knn_memory(&x, k)?;
    Ok(knn_exact(x, k, BLOCK).0)
}

/// What to do when the kNN lists do not fit.
const KNN_ALTERNATIVE: &str = "use a smaller k or subsample the rows";

/// Memory pre-flight of [`knn`]: the candidate lists (`n cap` entries), the float64 result
/// lists, the two output matrices, the float32 unit rows and one block row of tiles.
fn check_knn_memory(x: &Input, k: usize) -> Result<()> {
    let (n, p) = (x.nrows() as f64, x.ncols() as f64);
    let cap = (2 * k + 16).min(x.nrows() - 1) as f64;
    let b = BLOCK.min(x.nrows()) as f64;
    let n_pad = (n / b).ceil() * b;
    let entry = std::mem::size_of::<Entry>() as f64;
    let tile_value = if x.ncols() <= f32::REDUCTION_BLOCK {
        4.0
    } else {
        8.0
    };
    let bytes = entry * n * cap
        + entry * n * k as f64
        + 16.0 * n * k as f64
        + 4.0 * n_pad * p
        + tile_value * n_pad * b;
    crate::memory::check_fits(
        bytes,
        &format!(
            "knn with k = {k} at n = {} (lists of {cap} candidate neighbours per row)",
            x.nrows()
        ),
        KNN_ALTERNATIVE,
    )
}

/// Index and distance matrices from sorted per-row entries (`width >= k` per row).
fn to_knn(entries: &[Entry], n: usize, width: usize, k: usize) -> Knn {
    let mut indices: Array2<i64> =
        crate::memory::zeros((n, k), "the kNN index matrix", KNN_ALTERNATIVE);
    let mut distances: Array2<f64> =
        crate::memory::zeros((n, k), "the kNN distance matrix", KNN_ALTERNATIVE);
    for (i, e) in entries.chunks(width).enumerate() {
        for c in 0..k {
            indices[[i, c]] = e[c].j as i64;
            distances[[i, c]] = e[c].d;
        }
    }
    Knn { indices, distances }
}

/// float32 input (tests use small blocks): the same exact search as float64 input, so the
/// result equals that of the float64 values of the input, bit for bit.
#[cfg(test)]
fn knn_f32(x: ArrayView2<f32>, k: usize, block: usize) -> Knn {
    knn_exact(Input::F32(x), k, block).0
}

/// Rows per group in the exhaustive float64 pass of [`knn_exact`].
const GROUP: usize = 32;

/// float64 input (tests use small blocks).
#[cfg(test)]
fn knn_f64(x: ArrayView2<f64>, k: usize, block: usize) -> Knn {
    knn_exact(Input::F64(x), k, block).0
}

#[cfg(test)]
fn knn_f64_counted(x: ArrayView2<f64>, k: usize, block: usize) -> (Knn, usize) {
    knn_exact(Input::F64(x), k, block)
}

/// The exact kNN lists of either precision: a float32 screening pass that keeps
/// `cap = 2k + 16` candidates per row, then the float64 distances of the certified candidates
/// or, for rows the screening cannot certify, an exhaustive float64 search (see the module
/// documentation). Also returns the number of rows that took the exhaustive pass.
fn knn_exact(x: Input, k: usize, block: usize) -> (Knn, usize) {
    let (n, p) = (x.nrows(), x.ncols());
    let b = block.min(n).max(1);
    let cap = (2 * k + 16).min(n - 1);
    let u = match x {
        Input::F32(a) => unit_rows(a, n.div_ceil(b) * b),
        Input::F64(a) => unit_rows(a, n.div_ceil(b) * b),
    };
    let cand = candidates(&u, n, cap, b);
    drop(u);
    let margin = 2.0 * (2.0 * screening_error(p)) + 1e-14;
    // The float64 distances: the same function of the two rows as in `second_order_cosine`.
    let rows = ScaledRows::new(x);
    let mut out = crate::memory::vec(
        n * k,
        Entry { d: 0.0, j: 0 },
        "the kNN lists",
        KNN_ALTERNATIVE,
    );
    let failed: Vec<usize> = out
        .par_chunks_mut(k)
        .zip(cand.par_chunks(cap))
        .enumerate()
        .map_init(
            || (Vec::new(), Vec::new()),
            |(bi, bj), (i, (o, c))| {
                crate::interrupt::checkpoint();
                if rows.is_zero(i) {
                    // Distance 1 to every row: the smallest other indices.
                    for (slot, j) in o.iter_mut().zip((0..n).filter(|&j| j != i)) {
                        *slot = Entry { d: 1.0, j };
                    }
                    return None;
                }
                if cap < n - 1 && c[cap - 1].d <= c[k - 1].d + margin {
                    return Some(i); // near-ties beyond the kept candidates: exhaustive pass
                }
                // Only candidates within the margin of the k-th can be among the k nearest.
                let limit = c[k - 1].d + margin;
                rows.load(i, bi);
                let mut e: Vec<Entry> = c
                    .iter()
                    .take_while(|e| e.d <= limit)
                    .map(|e| Entry {
                        d: rows.distance(i, bi, e.j, bj),
                        j: e.j,
                    })
                    .collect();
                sort_entries(&mut e);
                o.copy_from_slice(&e[..k]);
                None
            },
        )
        .flatten()
        .collect();
    // Rows whose candidates could not be certified: every other row, in float64, a group of
    // rows at a time so that each row of `x` is read once per group.
    let fixed: Vec<(usize, Vec<Entry>)> = failed
        .par_chunks(GROUP)
        .flat_map_iter(|group| {
            let g = group.len();
            let mut heaps = vec![Entry { d: 0.0, j: 0 }; g * k];
            let mut lens = vec![0usize; g];
            let mut thrs = vec![f64::NEG_INFINITY; g];
            let mut bufs: Vec<Vec<f64>> = vec![Vec::new(); g];
            for (&i, buf) in group.iter().zip(bufs.iter_mut()) {
                rows.load(i, buf);
            }
            let mut bj = Vec::new();
            for j in 0..n {
                if j % 1024 == 0 {
                    crate::interrupt::checkpoint();
                }
                rows.load(j, &mut bj);
                for (t, &i) in group.iter().enumerate() {
                    if j != i {
                        let d = rows.loaded_distance(i, &bufs[t], j, &bj);
                        if 1.0 - d >= thrs[t] {
                            let cand = Entry { d, j };
                            push(
                                &mut heaps[t * k..(t + 1) * k],
                                &mut lens[t],
                                &mut thrs[t],
                                cand,
                            );
                        }
                    }
                }
            }
            heaps.chunks_mut(k).for_each(sort_entries);
            group
                .iter()
                .zip(heaps.chunks(k))
                .map(|(&i, h)| (i, h.to_vec()))
                .collect::<Vec<_>>()
        })
        .collect();
    for (i, h) in &fixed {
        out[i * k..(i + 1) * k].copy_from_slice(h);
    }
    (to_knn(&out, n, k, k), fixed.len())
}

// ------------------------------------------------------------------------------------------
// Measures from two index matrices
// ------------------------------------------------------------------------------------------

/// Which neighbourhood statistic [`set_statistic`] averages over the rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetStatistic {
    /// 5.1: `|A ∩ B| / |A ∪ B|`.
    Jaccard,
    /// 5.3: rank similarity of the shared neighbours.
    Rank,
    /// 5.4: Jaccard times rank similarity, per row.
    JointRankJaccard,
    /// 5.5: `|A ∩ B| / k`.
    Mutual,
}

impl SetStatistic {
    /// `"jaccard"`, `"rank"`, `"joint_rank_jaccard"` or `"mutual"`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "jaccard" => Ok(SetStatistic::Jaccard),
            "rank" => Ok(SetStatistic::Rank),
            "joint_rank_jaccard" => Ok(SetStatistic::JointRankJaccard),
            "mutual" => Ok(SetStatistic::Mutual),
            other => Err(CoreError::Parameter {
                name: "statistic",
                value: format!("{other:?}"),
                expected: "'jaccard', 'rank', 'joint_rank_jaccard' or 'mutual'".into(),
            }),
        }
    }
}

/// Check that `nx` and `ny` are valid `(n, k)` neighbour lists: same shape, `1 <= k <= n-1`,
/// entries in `[0, n)`, never the row itself, distinct within a row.
fn check_lists(nx: &ArrayView2<i64>, ny: &ArrayView2<i64>) -> Result<()> {
    if nx.dim() != ny.dim() {
        return Err(CoreError::Mismatch {
            what: format!(
                "the neighbour lists have shapes {:?} and {:?}; they must be equal",
                nx.shape(),
                ny.shape()
            ),
        });
    }
    let (n, k) = nx.dim();
    check_k(n, k)?;
    for (arg, a) in [("nx", nx), ("ny", ny)] {
        let bad = a
            .axis_iter(Axis(0))
            .into_par_iter()
            .enumerate()
            .any(|(i, row)| {
                crate::interrupt::checkpoint();
                let mut v: Vec<i64> = row.to_vec();
                if v.iter()
                    .any(|&j| j < 0 || j as usize >= n || j as usize == i)
                {
                    return true;
                }
                v.sort_unstable();
                v.windows(2).any(|w| w[0] == w[1])
            });
        if bad {
            return Err(CoreError::Shape {
                arg,
                shape: vec![n, k],
                expected: "rows of distinct indices in [0, n) that exclude the row itself".into(),
            });
        }
    }
    Ok(())
}

/// Per-task buffers of [`set_statistic`]: (index, rank) of each list, and the shared ranks.
type Scratch = (Vec<(i64, usize)>, Vec<(i64, usize)>, Vec<(usize, usize)>);

/// Mean over rows of a neighbourhood statistic of two kNN index matrices `(n, k)` (as returned
/// by [`knn`]: column `c` holds the neighbour of rank `c + 1`).
pub fn set_statistic(
    nx: ArrayView2<i64>,
    ny: ArrayView2<i64>,
    statistic: SetStatistic,
) -> Result<f64> {
    check_lists(&nx, &ny)?;
    let (n, k) = nx.dim();
    // Harmonic numbers H_0..H_k, summed in a fixed order.
    let mut harmonic = vec![0.0f64; k + 1];
    for t in 1..=k {
        harmonic[t] = harmonic[t - 1] + 1.0 / t as f64;
    }
    let per_row: Vec<f64> = (0..n)
        .into_par_iter()
        .map_init(
            || (Vec::new(), Vec::new(), Vec::new()),
            |(by_x, by_y, pairs): &mut Scratch, i| {
                crate::interrupt::checkpoint();
                by_x.clear();
                by_y.clear();
                pairs.clear();
                // (index, rank) of each list, sorted by index, then merged: the shared neighbours.
                by_x.extend(nx.row(i).iter().enumerate().map(|(r, &j)| (j, r + 1)));
                by_y.extend(ny.row(i).iter().enumerate().map(|(r, &j)| (j, r + 1)));
                by_x.sort_unstable();
                by_y.sort_unstable();
                let (mut p, mut q) = (0, 0);
                while p < k && q < k {
                    let (jx, rx) = by_x[p];
                    let (jy, ry) = by_y[q];
                    if jx < jy {
                        p += 1;
                    } else if jy < jx {
                        q += 1;
                    } else {
                        pairs.push((rx.min(ry), rx.max(ry)));
                        p += 1;
                        q += 1;
                    }
                }
                let shared = pairs.len();
                // Terms summed in the order of their unordered rank pair: the same order for
                // f(X, Y) and f(Y, X) (equal keys give equal terms), and for identical lists the
                // order 1, 1/2, ..., 1/k of the harmonic number, so that s_i = 1 exactly.
                pairs.sort_unstable();
                let rank_sum: f64 = pairs
                    .iter()
                    .map(|&(lo, hi)| {
                        let (lo, hi) = (lo as f64, hi as f64);
                        2.0 / ((1.0 + (hi - lo)) * (lo + hi))
                    })
                    .sum();
                let jaccard = shared as f64 / (2 * k - shared) as f64;
                let rank = if shared == 0 {
                    0.0
                } else {
                    rank_sum / harmonic[shared]
                };
                match statistic {
                    SetStatistic::Jaccard => jaccard,
                    SetStatistic::Mutual => shared as f64 / k as f64,
                    SetStatistic::Rank => rank,
                    SetStatistic::JointRankJaccard => jaccard * rank,
                }
            },
        )
        .collect();
    Ok(per_row.iter().sum::<f64>() / n as f64)
}

/// Unit rows in float64, computed on demand: what [`knn`] and [`second_order_cosine`] need to
/// compute any cosine distance.
///
/// Row `i` is scaled by a power of two `c_i` (exact) so that its largest entry lies in
/// `[1, 2)`, and its unit row is `u_i = (c_i x_i) / sqrt(<c_i x_i, c_i x_i>)`, each entry one
/// correctly rounded division, always by the same operations: rows that are equal up to a
/// power-of-two factor get bitwise equal unit rows, and a one-column row becomes exactly +-1
/// (`sqrt(fl(s * s)) = |s|`), so same-signed rows of one column are at distance exactly 0. The cosine distance is `||u_i - u_j||^2 / 2` (equal to `1 - cos` in exact arithmetic):
/// a difference of unit rows keeps its relative accuracy when the rows are nearly parallel
/// (large offsets, where `1 - cos` would cancel to the last bits of 1), its error is about
/// `2^-52 sqrt(2 / d)` relative to the distance `d`, it is symmetric to the bit, and it is
/// exactly 0 for rows with equal unit rows.
struct ScaledRows<'a> {
    x: Input<'a>,
    scale: Vec<f64>,
    /// `||c_i x_i||`, 0 for an all-zero row.
    norm: Vec<f64>,
}

impl<'a> ScaledRows<'a> {
    fn new(x: Input<'a>) -> Self {
        let n = x.nrows();
        let mut scale = vec![0.0; n];
        let mut norm = vec![0.0; n];
        scale
            .par_iter_mut()
            .zip(norm.par_iter_mut())
            .enumerate()
            .for_each_init(Vec::new, |buf, (i, (sc, nm))| {
                let m = match x {
                    Input::F32(a) => max_abs(a.row(i)),
                    Input::F64(a) => max_abs(a.row(i)),
                };
                *sc = if m == 0.0 { 0.0 } else { pow2_scale(m) };
                load_row(x, i, *sc, 1.0, buf);
                *nm = crate::simd::dot(buf, buf).sqrt();
            });
        ScaledRows { x, scale, norm }
    }

    fn is_zero(&self, i: usize) -> bool {
        self.norm[i] == 0.0
    }

    /// Unit row `i` into `buf` (zeros for an all-zero row).
    fn load(&self, i: usize, buf: &mut Vec<f64>) {
        let d = if self.is_zero(i) { 1.0 } else { self.norm[i] };
        load_row(self.x, i, self.scale[i], d, buf);
    }

    /// Cosine distance between rows `i` and `j` whose unit rows are loaded into `bi` and `bj`:
    /// `||u_i - u_j||^2 / 2` clamped to `[0, 2]`, or 1 if either row is all zeros (MEASURES.md
    /// 0.3).
    #[inline]
    fn loaded_distance(&self, i: usize, bi: &[f64], j: usize, bj: &[f64]) -> f64 {
        if self.is_zero(i) || self.is_zero(j) {
            return 1.0;
        }
        (0.5 * crate::simd::sq_dist(bi, bj)).clamp(0.0, 2.0)
    }

    /// Cosine distance between rows `i` (already loaded into `bi`) and `j`, using `bj` as
    /// scratch.
    fn distance(&self, i: usize, bi: &[f64], j: usize, bj: &mut Vec<f64>) -> f64 {
        if self.is_zero(i) || self.is_zero(j) {
            return 1.0;
        }
        self.load(j, bj);
        self.loaded_distance(i, bi, j, bj)
    }
}

/// Row `i` of `x` times `scale`, then divided by `div`, in float64, into `buf`.
fn load_row(x: Input, i: usize, scale: f64, div: f64, buf: &mut Vec<f64>) {
    buf.clear();
    match x {
        Input::F32(a) => buf.extend(a.row(i).iter().map(|&v| (v as f64 * scale) / div)),
        Input::F64(a) => buf.extend(a.row(i).iter().map(|&v| (v * scale) / div)),
    }
}

/// Second-order cosine similarity (5.2) of `x` and `y` given their kNN index matrices: for each
/// row `i`, the cosine between the vectors of cosine distances from `i` to the rows of
/// `U_i = N^X_k(i) ∪ N^Y_k(i)` in `x` and in `y`; the mean over rows. `nan` if for some row one
/// of the two distance vectors is all zeros.
pub fn second_order_cosine(
    x: Input,
    y: Input,
    nx: ArrayView2<i64>,
    ny: ArrayView2<i64>,
) -> Result<f64> {
    check_input(&x, "X")?;
    check_input(&y, "Y")?;
    let n = x.nrows();
    if y.nrows() != n || nx.nrows() != n {
        return Err(CoreError::Mismatch {
            what: format!(
                "X has {n} rows, Y has {} and the neighbour lists {}; they must be equal",
                y.nrows(),
                nx.nrows()
            ),
        });
    }
    check_lists(&nx, &ny)?;
    let (sx, sy) = (ScaledRows::new(x), ScaledRows::new(y));
    let per_row: Vec<f64> = (0..n)
        .into_par_iter()
        .map_init(
            || (Vec::new(), Vec::new(), Vec::new(), Vec::new()),
            |(bx, by, scratch, union), i| {
                crate::interrupt::checkpoint();
                union.clear();
                union.extend(
                    nx.row(i)
                        .iter()
                        .chain(ny.row(i).iter())
                        .map(|&j| j as usize),
                );
                union.sort_unstable();
                union.dedup();
                sx.load(i, bx);
                sy.load(i, by);
                let (mut aa, mut bb, mut ab) = (0.0f64, 0.0f64, 0.0f64);
                for &j in union.iter() {
                    let a = sx.distance(i, bx, j, scratch);
                    let b = sy.distance(i, by, j, scratch);
                    aa += a * a;
                    bb += b * b;
                    ab += a * b;
                }
                if aa == 0.0 || bb == 0.0 {
                    f64::NAN
                } else {
                    ab / (aa * bb).sqrt()
                }
            },
        )
        .collect();
    Ok(per_row.iter().sum::<f64>() / n as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    /// Brute force: all distances from unit rows in float64, then a stable sort.
    fn brute(x: &Array2<f64>, k: usize) -> Array2<i64> {
        let n = x.nrows();
        let norms: Vec<f64> = x.rows().into_iter().map(|r| r.dot(&r).sqrt()).collect();
        let mut out = Array2::<i64>::zeros((n, k));
        for i in 0..n {
            let mut cand: Vec<(f64, usize)> = (0..n)
                .filter(|&j| j != i)
                .map(|j| {
                    let s = if norms[i] == 0.0 || norms[j] == 0.0 {
                        0.0
                    } else {
                        x.row(i).dot(&x.row(j)) / (norms[i] * norms[j])
                    };
                    (1.0 - s, j)
                })
                .collect();
            cand.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap().then(a.1.cmp(&b.1)));
            for c in 0..k {
                out[[i, c]] = cand[c].1 as i64;
            }
        }
        out
    }

    fn pseudo_random(n: usize, p: usize, seed: u64) -> Array2<f64> {
        let mut state = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        Array2::from_shape_fn((n, p), |_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        })
    }

    #[test]
    fn ties_go_to_the_smaller_index_and_zero_rows_are_at_distance_one() {
        // Axis-aligned rows: every cosine is exactly 0, 1 or -1.
        let x = array![
            [1.0, 0.0],  // 0
            [0.0, 2.0],  // 1
            [-3.0, 0.0], // 2
            [0.0, -1.0], // 3
            [4.0, 0.0],  // 4: same direction as 0
            [0.0, 0.0],  // 5: all zero
        ];
        let r = knn(Input::F64(x.view()), 5).unwrap();
        assert_eq!(r.indices.row(0).to_vec(), vec![4, 1, 3, 5, 2]);
        assert_eq!(r.distances.row(0).to_vec(), vec![0.0, 1.0, 1.0, 1.0, 2.0]);
        assert_eq!(r.indices.row(5).to_vec(), vec![0, 1, 2, 3, 4]);
        assert_eq!(r.distances.row(5).to_vec(), vec![1.0; 5]);
        assert_eq!(r.indices.row(1).to_vec(), vec![0, 2, 4, 5, 3]);
    }

    #[test]
    fn blocked_matches_brute_force_for_every_block_size() {
        let mut x = pseudo_random(37, 5, 3);
        // Duplicated rows spread over several blocks, and a zero row.
        for (dst, src) in [(20, 2), (33, 2), (9, 30)] {
            let row = x.row(src).to_owned();
            x.row_mut(dst).assign(&row);
        }
        x.row_mut(12).fill(0.0);
        let want = brute(&x, 7);
        let x32 = x.mapv(|v| v as f32);
        for block in [1, 2, 5, 8, 16, 37, 64] {
            assert_eq!(knn_f64(x.view(), 7, block).indices, want, "block {block}");
            assert_eq!(knn_f32(x32.view(), 7, block).indices, want, "block {block}");
        }
    }

    #[test]
    fn duplicates_tie_exactly_across_tiles() {
        // Row 0 duplicated at positions in different tiles: each other row sees the copies at
        // bitwise-equal distances, so they appear consecutively, in increasing index order.
        let mut x = pseudo_random(700, 40, 11);
        let row = x.row(0).to_owned();
        for &j in &[1usize, 287, 288, 575, 576, 699] {
            x.row_mut(j).assign(&row);
        }
        let copies = [0i64, 1, 287, 288, 575, 576, 699];
        let x32 = x.mapv(|v| v as f32);
        let (r64, fallback) = knn_f64_counted(x.view(), 30, BLOCK);
        // 40 random columns: the screening certifies every row but the duplicates' own rows
        // (at distance 0 from 6 copies, within the margin of each other).
        assert!(fallback <= copies.len(), "{fallback} rows fell back");
        for r in [r64, knn_f32(x32.view(), 30, BLOCK)] {
            let mut seen = 0;
            for i in (0..700).filter(|i| !copies.contains(&(*i as i64))) {
                let row = r.indices.row(i);
                let pos: Vec<usize> = (0..30).filter(|&c| copies.contains(&row[c])).collect();
                if let (Some(&first), Some(&last)) = (pos.first(), pos.last()) {
                    seen += 1;
                    // Contiguous, at one distance, and the copies with the smallest indices.
                    assert_eq!(
                        pos.len(),
                        last - first + 1,
                        "row {i}: copies not contiguous"
                    );
                    let d: Vec<f64> = pos.iter().map(|&c| r.distances[[i, c]]).collect();
                    assert!(d.iter().all(|&v| v == d[0]), "row {i}: {d:?}");
                    let idx: Vec<i64> = pos.iter().map(|&c| row[c]).collect();
                    assert_eq!(idx, copies[..idx.len()].to_vec(), "row {i}");
                }
            }
            assert!(seen > 5, "too few rows saw the copies: {seen}");
            for &c in &copies {
                let row = r.indices.row(c as usize);
                let others: Vec<i64> = copies.iter().copied().filter(|&o| o != c).collect();
                assert_eq!(row.slice(s![..6]).to_vec(), others);
                let d0 = r.distances[[c as usize, 0]];
                assert!(r
                    .distances
                    .row(c as usize)
                    .slice(s![..6])
                    .iter()
                    .all(|&d| d == d0));
            }
        }
    }

    /// Compare with the brute force where the lists are separated by more than round-off (the
    /// brute force sorts distances computed with another formula).
    fn assert_matches_brute(x: &Array2<f64>, got: &Knn, k: usize) {
        let want = brute(x, k);
        let d = |i: usize, j: usize| {
            let (a, b) = (x.row(i), x.row(j));
            let (na, nb) = (a.dot(&a).sqrt(), b.dot(&b).sqrt());
            if na == 0.0 || nb == 0.0 {
                1.0
            } else {
                1.0 - a.dot(&b) / (na * nb)
            }
        };
        for i in 0..x.nrows() {
            for c in 0..k {
                let (j1, j2) = (got.indices[[i, c]] as usize, want[[i, c]] as usize);
                if j1 != j2 {
                    assert!(
                        (d(i, j1) - d(i, j2)).abs() < 1e-14,
                        "row {i} rank {c}: {j1} vs {j2}"
                    );
                }
                assert!((got.distances[[i, c]] - d(i, j1)).abs() < 1e-14);
            }
        }
    }

    #[test]
    fn float64_screening_falls_back_on_near_ties() {
        // Axis directions in 50-D, each on 10 rows (scaled): every row has 9 rows in its
        // direction and 490 at distance exactly 1, so for k >= 10 the k-th and the last kept
        // candidate tie and the row takes the exhaustive float64 pass. Mixed with zero rows and
        // a block of identical rows.
        let mut x = Array2::from_shape_fn((500, 50), |(i, j)| {
            if j == i % 50 {
                1.0 + (i / 50) as f64
            } else {
                0.0
            }
        });
        for i in 100..130 {
            x.row_mut(i).fill(0.3);
        }
        for i in [5, 250, 499] {
            x.row_mut(i).fill(0.0);
        }
        for k in [1, 7, 40] {
            let (got, fallback) = knn_f64_counted(x.view(), k, BLOCK);
            // k = 1 keeps 18 candidates: the 30 identical rows fail (29 others at distance 0).
            // k = 40 keeps 96: every non-zero row fails (its 40th and 96th candidates are both
            // at distance 1, or both at 1 - 1/sqrt(50) for the identical rows). k = 7 keeps 30,
            // which the margin certifies for every row.
            let want_fallback = match k {
                1 => 30,
                7 => 0,
                _ => 497,
            };
            assert_eq!(fallback, want_fallback, "k = {k}");
            assert_matches_brute(&x, &got, k);
            // The identical rows: each sees the others first, at distance exactly 0, by index.
            let row = got.indices.row(100);
            let m = k.min(29);
            let want_idx: Vec<i64> = (101..101 + m as i64).collect();
            assert_eq!(row.slice(s![..m]).to_vec(), want_idx);
            assert!(got
                .distances
                .row(100)
                .slice(s![..m])
                .iter()
                .all(|&d| d == 0.0));
            // Zero rows: the smallest other indices at distance 1.
            let z: Vec<i64> = (0..500).filter(|&j| j != 250).take(k).collect();
            assert_eq!(got.indices.row(250).to_vec(), z);
            assert!(got.distances.row(250).iter().all(|&d| d == 1.0));
        }
        // Random continuous data: the screening certifies every row.
        let y = pseudo_random(600, 30, 4);
        let (got, fallback) = knn_f64_counted(y.view(), 10, BLOCK);
        assert_eq!(fallback, 0);
        assert_matches_brute(&y, &got, 10);
        // A constant representation: every row fails the margin; all distances are 0.
        let c = Array2::from_elem((60, 3), 0.25);
        let got = knn_f64(c.view(), 4, BLOCK);
        for i in 0..60 {
            let want: Vec<i64> = (0..60i64).filter(|&j| j != i as i64).take(4).collect();
            assert_eq!(got.indices.row(i).to_vec(), want);
        }
        assert!(got.distances.iter().all(|&d| d == 0.0));
    }

    #[test]
    fn float32_equals_float64_of_the_same_values_at_large_offsets() {
        // All rows near (1e4, ..., 1e4): float32 products cannot tell them apart, so every row
        // takes the exhaustive float64 pass, and the float32 input gives the float64 result.
        let x = pseudo_random(300, 6, 8).mapv(|v| (v + 1e4) as f32);
        let x64 = x.mapv(f64::from);
        let (r64, fallback) = knn_f64_counted(x64.view(), 5, BLOCK);
        assert!(fallback > 250, "{fallback}");
        let r32 = knn(Input::F32(x.view()), 5).unwrap();
        assert_eq!(r32.indices, r64.indices);
        assert_eq!(r32.distances, r64.distances);
        // The distances keep their relative accuracy (1 - cos would keep about 8 digits).
        let d = |i: usize, j: usize| {
            let (a, b) = (x64.row(i), x64.row(j));
            let (na, nb) = (a.dot(&a).sqrt(), b.dot(&b).sqrt());
            a.iter()
                .zip(b.iter())
                .map(|(p, q)| (p / na - q / nb).powi(2))
                .sum::<f64>()
                / 2.0
        };
        for i in 0..300 {
            let j = r64.indices[[i, 0]] as usize;
            assert!((r64.distances[[i, 0]] - d(i, j)).abs() <= 1e-6 * d(i, j));
        }
    }

    #[test]
    fn k_out_of_range_is_an_error() {
        let x = pseudo_random(5, 2, 1);
        assert!(matches!(
            knn(Input::F64(x.view()), 0),
            Err(CoreError::Parameter { name: "k", .. })
        ));
        assert!(matches!(
            knn(Input::F64(x.view()), 5),
            Err(CoreError::Parameter { name: "k", .. })
        ));
        assert!(knn(Input::F64(x.view()), 4).is_ok());
    }

    #[test]
    fn set_statistics_by_hand() {
        // Row 0: X = [1, 2, 3], Y = [2, 1, 4]: shared {1, 2}, Jaccard 2/4, mutual 2/3,
        // rank: j=1 (1, 2): 2/(2*3) = 1/3; j=2 (2, 1): 1/3; sum 2/3 over H_2 = 3/2 -> 4/9.
        // Row 1..4: identical lists: Jaccard 1, mutual 1, rank 1.
        let nx = array![[1i64, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2], [0, 1, 2]];
        let mut ny = nx.clone();
        ny.row_mut(0).assign(&array![2i64, 1, 4]);
        let mean = |v0: f64| (v0 + 4.0) / 5.0;
        let close = |a: f64, b: f64| (a - b).abs() < 1e-15;
        assert!(close(
            set_statistic(nx.view(), ny.view(), SetStatistic::Jaccard).unwrap(),
            mean(0.5)
        ));
        assert!(close(
            set_statistic(nx.view(), ny.view(), SetStatistic::Mutual).unwrap(),
            mean(2.0 / 3.0)
        ));
        assert!(close(
            set_statistic(nx.view(), ny.view(), SetStatistic::Rank).unwrap(),
            mean(4.0 / 9.0)
        ));
        assert!(close(
            set_statistic(nx.view(), ny.view(), SetStatistic::JointRankJaccard).unwrap(),
            mean(2.0 / 9.0)
        ));
        let bad = array![[0i64, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2], [0, 1, 2]];
        assert!(set_statistic(bad.view(), ny.view(), SetStatistic::Jaccard).is_err());
        let dup = array![[1i64, 1, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2], [0, 1, 2]];
        assert!(set_statistic(dup.view(), ny.view(), SetStatistic::Jaccard).is_err());
    }

    #[test]
    fn second_order_cosine_identical_is_one_and_constant_is_nan() {
        let x = pseudo_random(30, 4, 5);
        let nx = knn(Input::F64(x.view()), 5).unwrap().indices;
        let v = second_order_cosine(
            Input::F64(x.view()),
            Input::F64(x.view()),
            nx.view(),
            nx.view(),
        )
        .unwrap();
        assert_eq!(v, 1.0);
        // Identical rows (up to a power of two): every distance is exactly 0.
        let c = Array2::from_shape_fn((8, 3), |(i, j)| {
            (j as f64 + 0.1) * if i % 2 == 0 { 1.0 } else { 4.0 }
        });
        let y = pseudo_random(8, 3, 9);
        let nc = knn(Input::F64(c.view()), 3).unwrap().indices;
        let ny = knn(Input::F64(y.view()), 3).unwrap().indices;
        let v = second_order_cosine(
            Input::F64(c.view()),
            Input::F64(y.view()),
            nc.view(),
            ny.view(),
        )
        .unwrap();
        assert!(v.is_nan());
    }
}
