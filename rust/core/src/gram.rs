//! The Gram route of a whole layer matrix, tile by tile, at matrix-product speed.
//!
//! The `n x n` index space is cut into square tiles `(I, J)`, `J <= I`, of a side fixed by `n`
//! and the number of layers `L` alone ([`tile_side`]). For each tile:
//!
//! 1. the kernel tile of every layer is computed, one small single-threaded product per layer
//!    and block of [`task_rows`] rows (all such products run in parallel), and transformed in
//!    place (squared distances and `exp` for the RBF kernel), optionally with its row and
//!    column sums;
//! 2. the tiles are the rows of one `L x |I||J|` matrix `M`, and all the inner products of the
//!    tile are the one product `M_a M_b^T` (or `M M^T`), taken over fixed chunks of the
//!    columns in parallel and added in chunk order;
//! 3. the tile's `L_a x L_b` inner products are added, in float64, to the running sums.
//!
//! Only the lower triangle is visited: a tile off the diagonal stands for itself and its
//! mirror image (weight 2), and on a diagonal tile the upper part is zero (never formed: the
//! products stop at the diagonal, [`Entries::Lower`]) and the diagonal entries are multiplied
//! by `1/sqrt(2)` (or 0 when the estimator leaves the diagonal out), so that the same weight 2
//! counts them once. The tile buffer takes about [`TILE_VALUES`] values.
//!
//! Determinism: tiles, row blocks and column chunks depend on `n` and `L` only, every product
//! is single-threaded, and partial results are added in a fixed order, so the sums are
//! bitwise the same for any number of threads.

use crate::kernel::{Rows, TileKind};
use crate::linalg::Entries;
use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatRef, Par};
use ndarray::{Array1, Array2};
use rayon::prelude::*;

/// Rows per product task of the cached squared distances (a multiple of the 48-row
/// float64 micro-kernel of the matrix product).
pub const TASK_ROWS: usize = 96;
/// Values of the flattened tiles per inner-product task (small enough that the chunks of 24
/// layers stay in a core's L2 cache and that a tile gives many balanced tasks).
const DOT_CHUNK: usize = 1 << 12;
/// Values (of all layers) in one tile buffer: 64 MiB of float64. Larger tiles mean larger
/// product tasks, which pack their operands fewer times per flop: 12 x 12 layers of 5000 x
/// 768 took 4.63 s in the tile products at 2^22 values and 4.55 s at 2^23 and 2^24 (16 MiB,
/// 2^21, before diagonal tiles stopped at the diagonal: 4.81 s). The buffer no longer stays in
/// the last-level cache between the two steps; the inner products, which read it once per
/// tile, took the same time either way.
pub const TILE_VALUES: usize = 1 << 23;

/// The side of the square tiles for `layers` layers of `n` rows: a multiple of 48 between 96
/// and 1056 such that the tiles of all layers take about [`TILE_VALUES`] values (at most `n`).
pub fn tile_side(n: usize, layers: usize) -> usize {
    let t = ((TILE_VALUES / layers.max(1)) as f64).sqrt() as usize;
    (t / 48 * 48).clamp(96, 1056).min(n.max(1))
}

/// Rows of a tile per product task: the tile side `t` cut into `ceil(32 / layers)` parts,
/// rounded up to a multiple of 48, so that a tile gives about 32 tasks (at least 16) over all
/// layers. Each task packs the tile's columns once for its whole product, so the rows per
/// task are as many as that parallelism allows (few rows per task spend a large share of
/// the product on packing). A function of `t` and `layers` only: the sums stay bitwise the
/// same for any number of threads.
pub fn task_rows(t: usize, layers: usize) -> usize {
    let parts = 32usize.div_ceil(layers.max(1));
    t.div_ceil(parts).div_ceil(48) * 48
}

/// Bytes of the buffers [`sums`] allocates for `layers` layers of `n` rows (the pre-flight).
pub fn buffer_bytes(n: usize, layers: usize) -> f64 {
    let t = tile_side(n, layers);
    8.0 * (layers * t * t) as f64 + 8.0 * (layers * n) as f64
}

/// Sums over all layers' kernel matrices, accumulated tile by tile (see [`sums`]).
pub struct Sums {
    /// `P[a, b] = sum_ij T_a,ij T_b,ij` (all ordered pairs, diagonal included unless the
    /// estimator is unbiased) for the pairs asked for.
    pub cross: Array2<f64>,
    /// `P[a, a]` for every layer.
    pub selfs: Vec<f64>,
    /// Full row sums of each layer's (diagonal-free, when unbiased) matrix; empty unless asked.
    pub rows: Vec<Array1<f64>>,
}

/// One product task's share of a tile's row and column sums.
struct Part {
    rows: Vec<f64>,
    cols: Vec<f64>,
}

/// Stream the kernel matrices of `layers` (each with its tile kind) tile by tile and
/// accumulate what HSIC and CKA need: for every requested pair `(i, j)` of `layers[..split]`
/// x `layers[split..]` (or of `layers` with itself when `split` is `None`) the inner product
/// of the two matrices, every layer's own inner product, and (with `row_sums`) its row sums.
/// With `zero_diagonal` the diagonals are left out everywhere (the unbiased estimator).
/// One Ctrl-C checkpoint per tile.
pub fn sums(
    layers: &[(Rows<'_, '_>, TileKind)],
    split: Option<usize>,
    zero_diagonal: bool,
    row_sums: bool,
) -> Sums {
    let l = layers.len();
    let n = layers.first().map_or(0, |x| x.0.n());
    let la = split.unwrap_or(l);
    let lb = l - split.unwrap_or(0);
    let mut cross = Array2::<f64>::zeros((la, lb));
    let mut selfs = vec![0.0; l];
    let mut rows: Vec<Array1<f64>> = if row_sums {
        vec![Array1::zeros(n); l]
    } else {
        Vec::new()
    };
    if l == 0 || n == 0 {
        return Sums { cross, selfs, rows };
    }
    let t = tile_side(n, l);
    let rows_per_task = task_rows(t, l);
    let mut m = crate::memory::zeroed_f64(
        l * t * t,
        "the kernel tiles of the layer matrix",
        "pass fewer layers per call or subsample the rows",
    );
    let diag_weight = if zero_diagonal {
        0.0
    } else {
        std::f64::consts::FRAC_1_SQRT_2
    };
    let nb = n.div_ceil(t);
    for bi in 0..nb {
        for bj in 0..=bi {
            crate::interrupt::checkpoint();
            let (r0, r1) = (bi * t, ((bi + 1) * t).min(n));
            let (c0, c1) = (bj * t, ((bj + 1) * t).min(n));
            let (h, w) = (r1 - r0, c1 - c0);
            let size = h * w;
            let tile = Tile {
                c0,
                c1,
                diagonal: bi == bj,
                diag_weight,
                zero_diagonal,
                row_sums,
            };
            // Step 1: the kernel tiles, one task per layer and block of rows.
            let parts: Vec<Part> = m[..l * size]
                .par_chunks_mut(size)
                .enumerate()
                .flat_map(|(k, lm)| {
                    let tile = &tile;
                    lm.par_chunks_mut(rows_per_task * w)
                        .enumerate()
                        .map(move |(c, out)| tile.fill(&layers[k], r0 + c * rows_per_task, out))
                })
                .collect();
            if row_sums {
                let per_layer = h.div_ceil(rows_per_task);
                for (k, acc) in rows.iter_mut().enumerate() {
                    for (c, part) in parts[k * per_layer..(k + 1) * per_layer].iter().enumerate() {
                        let ra = r0 + c * rows_per_task;
                        for (a, v) in acc
                            .slice_mut(ndarray::s![ra..ra + part.rows.len()])
                            .iter_mut()
                            .zip(&part.rows)
                        {
                            *a += v;
                        }
                    }
                    for part in &parts[k * per_layer..(k + 1) * per_layer] {
                        for (a, v) in acc
                            .slice_mut(ndarray::s![c0..c1])
                            .iter_mut()
                            .zip(&part.cols)
                        {
                            *a += v;
                        }
                    }
                }
            }
            // Step 2: all inner products of the tile as one product over column chunks.
            let (tc, ts) = inner_products(&m[..l * size], size, la, split.is_some());
            cross.zip_mut_with(&tc, |c, v| *c += 2.0 * v);
            for (s, v) in selfs.iter_mut().zip(&ts) {
                *s += 2.0 * v;
            }
        }
    }
    if split.is_none() {
        for (i, s) in selfs.iter_mut().enumerate() {
            *s = cross[[i, i]];
        }
    }
    Sums { cross, selfs, rows }
}

/// Where a tile lies and how its entries are treated.
struct Tile {
    c0: usize,
    c1: usize,
    diagonal: bool,
    diag_weight: f64,
    zero_diagonal: bool,
    row_sums: bool,
}

impl Tile {
    /// Rows `ra..` (up to [`task_rows`], as many as `out` holds) of one layer's tile, in
    /// place in `out` (row-major, `c1 - c0` values per row), with their row and column sums.
    fn fill(&self, layer: &(Rows<'_, '_>, TileKind), ra: usize, out: &mut [f64]) -> Part {
        let (rows, kind) = layer;
        let (c0, c1) = (self.c0, self.c1);
        let w = c1 - c0;
        let h = out.len() / w;
        let rb = ra + h;
        // On a diagonal tile only columns j <= i < rb are needed.
        let wc = if self.diagonal { rb - c0 } else { w };
        let cached = match kind {
            TileKind::Rbf { .. } => rows.cache,
            _ => None,
        };
        match cached {
            Some(d) => {
                for (r, o) in out.chunks_exact_mut(w).enumerate() {
                    let i = ra + r;
                    let top = (i + 1).min(c1);
                    o[..top - c0].copy_from_slice(&d.row(i)[c0..top]);
                }
            }
            None => {
                let entries = if self.diagonal {
                    Entries::Lower
                } else {
                    Entries::All
                };
                rows.xc.gram_block((ra, rb, c0, c0 + wc), entries, out, w)
            }
        }
        let sq = rows.sq;
        let mut part = Part {
            rows: if self.row_sums {
                vec![0.0; h]
            } else {
                Vec::new()
            },
            cols: if self.row_sums {
                vec![0.0; w]
            } else {
                Vec::new()
            },
        };
        for (r, o) in out.chunks_exact_mut(w).enumerate() {
            let i = ra + r;
            // Entries j < top are the tile's part of the lower triangle (diagonal included).
            let top = if self.diagonal { i + 1 } else { c1 };
            let (lower, upper) = o.split_at_mut(top - c0);
            upper.fill(0.0);
            if cached.is_none() && *kind != TileKind::Gram {
                let si = sq[i];
                for (v, &sj) in lower.iter_mut().zip(&sq[c0..top]) {
                    let d = si + sj - 2.0 * *v;
                    *v = if d > 0.0 { d } else { 0.0 };
                }
                if self.diagonal {
                    lower[i - c0] = 0.0;
                }
            }
            if let TileKind::Rbf { a, shift, centre } = *kind {
                crate::kernel::rbf_entries(lower, a, shift, centre);
            }
            // Strictly lower entries, then the diagonal entry (on a diagonal tile).
            let strict = if self.diagonal { i - c0 } else { w };
            if self.row_sums {
                let below = &lower[..strict];
                let diag = if self.diagonal && !self.zero_diagonal {
                    lower[strict]
                } else {
                    0.0
                };
                part.rows[r] = below.iter().sum::<f64>() + diag;
                part.cols[..strict]
                    .iter_mut()
                    .zip(below)
                    .for_each(|(c, v)| *c += v);
            }
            if self.diagonal {
                lower[strict] *= self.diag_weight;
            }
        }
        part
    }
}

/// The inner products of the flattened tiles in `m` (`L` rows of `size` values): the
/// `la x (L - la)` products of the first `la` rows with the others and every row's own
/// product when `split`, else the `L x L` products `M M^T` (own products on its diagonal).
fn inner_products(m: &[f64], size: usize, la: usize, split: bool) -> (Array2<f64>, Vec<f64>) {
    let l = m.len() / size;
    let lb = if split { l - la } else { l };
    let chunks = size.div_ceil(DOT_CHUNK);
    let parts: Vec<(Mat<f64>, Vec<f64>)> = (0..chunks)
        .into_par_iter()
        .map(|c| {
            let off = c * DOT_CHUNK;
            let len = DOT_CHUNK.min(size - off);
            // SAFETY: rows of `size` values; `off + len <= size`; views only read.
            let view = |first: usize, count: usize| unsafe {
                MatRef::<f64>::from_raw_parts(
                    m.as_ptr().add(first * size + off),
                    count,
                    len,
                    size as isize,
                    1,
                )
            };
            let (a, b) = if split {
                (view(0, la), view(la, lb))
            } else {
                (view(0, l), view(0, l))
            };
            let mut out = Mat::<f64>::zeros(a.nrows(), b.nrows());
            matmul(
                out.as_mut(),
                Accum::Replace,
                a,
                b.transpose(),
                1.0,
                Par::Seq,
            );
            let own = if split {
                (0..l)
                    .map(|k| {
                        let r = &m[k * size + off..k * size + off + len];
                        crate::simd::dot(r, r)
                    })
                    .collect()
            } else {
                Vec::new()
            };
            (out, own)
        })
        .collect();
    let mut cross = Array2::<f64>::zeros((if split { la } else { l }, lb));
    let mut selfs = vec![0.0; if split { l } else { 0 }];
    for (p, own) in &parts {
        for ((i, j), c) in cross.indexed_iter_mut() {
            *c += p[(i, j)];
        }
        for (s, v) in selfs.iter_mut().zip(own) {
            *s += v;
        }
    }
    (cross, selfs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::Rows;
    use crate::linalg::{self, Centred};
    use crate::testutil::{full_sq_dist, pseudo};

    /// Every tile shape (several tiles, ragged edges, diagonal and off-diagonal tiles), both
    /// kinds, with and without the diagonal, against explicit n x n matrices.
    #[test]
    fn sums_match_full_matrices() {
        for (n, layers) in [(37usize, 2usize), (300, 3), (1100, 40)] {
            let xs: Vec<Array2<f64>> = (0..layers)
                .map(|k| pseudo(n, 3 + k % 5, k as u64))
                .collect();
            let cs: Vec<Centred> = xs
                .iter()
                .map(|x| Centred::new(linalg::Input::F64(x.view())))
                .collect();
            let sqs: Vec<Array1<f64>> = cs.iter().map(|c| c.sq_norms()).collect();
            let rbf = TileKind::Rbf {
                a: 0.8,
                shift: 0.25,
                centre: None,
            };
            for kind in [TileKind::Gram, rbf] {
                let full: Vec<Array2<f64>> = cs
                    .iter()
                    .map(|c| match (c, kind) {
                        (Centred::F64(a), TileKind::Gram) => a.dot(&a.t()),
                        (Centred::F64(a), _) => {
                            full_sq_dist(a).mapv(|d| (-((d * 0.8) * 0.8)).exp() - 0.25)
                        }
                        _ => unreachable!(),
                    })
                    .collect();
                for zero_diagonal in [false, true] {
                    let ls: Vec<(Rows, TileKind)> = cs
                        .iter()
                        .zip(&sqs)
                        .map(|(c, s)| {
                            (
                                Rows {
                                    xc: c,
                                    sq: s.as_slice().unwrap(),
                                    cache: None,
                                },
                                kind,
                            )
                        })
                        .collect();
                    let f: Vec<Array2<f64>> = full
                        .iter()
                        .map(|k| {
                            let mut k = k.clone();
                            if zero_diagonal {
                                k.diag_mut().fill(0.0);
                            }
                            k
                        })
                        .collect();
                    let dot = |a: &Array2<f64>, b: &Array2<f64>| (a * b).sum();
                    let tol = |v: f64| 1e-11 * v.abs().max(1.0);
                    let split = layers / 2;
                    let s = sums(&ls, Some(split), zero_diagonal, true);
                    for i in 0..split {
                        for j in split..layers {
                            let want = dot(&f[i], &f[j]);
                            assert!((s.cross[[i, j - split]] - want).abs() < tol(want));
                        }
                    }
                    let sym = sums(&ls, None, zero_diagonal, false);
                    assert!(sym.rows.is_empty());
                    for i in 0..layers {
                        let want = dot(&f[i], &f[i]);
                        assert!((s.selfs[i] - want).abs() < tol(want), "{n} {kind:?}");
                        assert!((sym.selfs[i] - want).abs() < tol(want));
                        for j in 0..layers {
                            let want = dot(&f[i], &f[j]);
                            assert!((sym.cross[[i, j]] - want).abs() < tol(want));
                            assert_eq!(sym.cross[[i, j]], sym.cross[[j, i]]);
                        }
                    }
                    for (r, k) in s.rows.iter().zip(&f) {
                        assert!((r - &k.sum_axis(ndarray::Axis(1)))
                            .iter()
                            .all(|v| v.abs() < 1e-10));
                    }
                }
            }
        }
    }

    #[test]
    fn tiles_fit_their_budget() {
        // sqrt(2^23 / 24) = 591.2 -> 576; sqrt(2^23 / 9) = 965.4 -> 960 (multiples of 48);
        // sqrt(2^23 / 2) = 2048 -> 1056 (the largest side).
        assert_eq!(tile_side(5000, 24), 576);
        assert_eq!(tile_side(5000, 9), 960);
        assert_eq!(tile_side(5000, 2), 1056);
        assert_eq!(tile_side(10, 2), 10);
        assert_eq!(tile_side(5000, 10_000), 96);
        for l in [1usize, 2, 8, 24, 100, 1000] {
            let t = tile_side(100_000, l);
            assert!(t.is_multiple_of(48) && (l * t * t <= TILE_VALUES || t == 96));
        }
    }

    #[test]
    fn task_rows_give_enough_tasks() {
        // 24 layers: a 576-row tile in two tasks of 288 rows (48 tasks over the layers).
        assert_eq!(task_rows(576, 24), 288);
        assert_eq!(task_rows(288, 24), 144);
        // 2 layers: 1008 rows in 16 parts of 63 rows, rounded up to 96.
        assert_eq!(task_rows(1008, 2), 96);
        for (t, l) in [
            (288usize, 24usize),
            (576, 24),
            (1056, 2),
            (1008, 2),
            (96, 1000),
            (10, 2),
            (480, 9),
        ] {
            let r = task_rows(t, l);
            assert!(r.is_multiple_of(48) && r >= 48);
            assert!(t.div_ceil(r) * l >= 16.min(l * t.div_ceil(48)), "{t} {l}");
        }
    }
}
