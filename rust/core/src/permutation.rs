//! Permutation nulls of HSIC and CKA: each side's centred kernel matrix is computed once, and
//! every row permutation of the second side only re-indexes it.
//!
//! **Biased estimator.** With `Kt = H K H` and `P` the matrix of a permutation `pi` of the rows
//! of `Y`, the kernel of `PY` is `P L P^T`, and since `P H P^T = H`, its centred kernel is
//! `P Lt P^T`. Hence
//!
//! `<Kt, (P L P^T)t> = sum_ij Kt_ij Lt_{pi(i) pi(j)}`,
//!
//! an `n^2` gather per permutation instead of a new kernel matrix. `<Kt, Kt>` and `<Lt, Lt>`
//! (the CKA denominator) and the RBF bandwidth (a median of all squared distances) do not
//! change under a permutation.
//!
//! **Unbiased estimator** (Song et al. 2012). From its definition, with `K0`, `L0` the kernels
//! with zeroed diagonals, `r` their row sums and `S` their totals,
//! `<Ku, Lu> = sum_{i != j} K0_ij L0_ij + S_K S_L / ((n-1)(n-2)) - 2/(n-2) r_K . r_L`. Permuting
//! the rows of `Y` permutes `L0` to `P L0 P^T` and its row sums to `P r_L`, and leaves `S_L`
//! unchanged:
//!
//! `<Ku, Lu>(pi) = sum_{i != j} K0_ij L0_{pi(i) pi(j)} + S_K S_L/((n-1)(n-2))
//!                 - 2/(n-2) sum_i r_K,i r_L,pi(i)`.
//!
//! The U-centred matrix `Lu` (`Lu_ij = L0_ij - r_i/(n-2) - r_j/(n-2) + S/((n-1)(n-2))` off
//! the diagonal, 0 on it) is permutation-equivariant in the same way (`(P L P^T)u = P Lu P^T`),
//! and the right-hand side equals `sum_{i != j} Ku_ij Lu_{pi(i) pi(j)}`: the same gather as the
//! biased case, on the U-centred matrices, whose entries are centred (smaller terms, less
//! cancellation than the three raw sums).
//!
//! **Cost and determinism.** Both `n x n` matrices are held (`16 n^2` bytes; the caller checks
//! that they fit); a permutation costs `n^2 / 2` multiply-adds (the matrices are symmetric),
//! and the permutations run in parallel in fixed batches. Each permutation's sum is computed
//! by one task in a fixed order, so every value is bitwise identical for any number of
//! threads. Cancellation (Ctrl-C) is checked every few hundred rows.

use crate::error::{CoreError, Result};
use crate::hsic::{self, Estimator, Kernel, Spec};
use crate::kernel::{self, Rows, TileKind};
use crate::linalg::{Centred, Input, Scratch};
use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

/// Permutations handled together by one task: they share each row of `L`, read once from
/// memory per batch (16 rather than 4 took a single-thread permutation at n = 2000 from 1.55
/// to 0.95 ns per product; 16 batches still make 63 tasks of 1000 permutations).
const BATCH: usize = 16;
/// Rows between two cancellation checkpoints.
const CHECK_ROWS: usize = 256;

/// One representation's centred (biased) or U-centred (unbiased) kernel matrix.
pub struct CentredKernel {
    /// The symmetric `n x n` matrix, of the features normalised by `2^-exp`.
    pub matrix: Array2<f64>,
    /// The normalisation exponent (the linear HSIC is rescaled by it at the end).
    pub exp: i32,
}

/// The centred (or U-centred) kernel matrix of `x` as `spec` says (kernel and estimator), or
/// `None` when the kernel is undefined (RBF with a zero median squared distance).
pub fn centred_kernel(x: Input, spec: &Spec) -> Result<Option<CentredKernel>> {
    spec.validate()?;
    let (n, p) = (x.nrows(), x.ncols());
    if p == 0 || n < spec.min_rows() {
        return Err(CoreError::Shape {
            arg: "X",
            shape: vec![n, p],
            expected: format!(
                "at least {} rows and one column for this estimator",
                spec.min_rows()
            ),
        });
    }
    let nn = n as f64 * n as f64;
    crate::memory::check_fits(
        8.0 * (nn + (n * p) as f64 + 512.0 * n as f64),
        &format!("the {n} x {n} centred kernel matrix of a permutation test"),
        "use fewer rows, or the generic permutation path (which recomputes each value)",
    )?;
    let (xc, exp) = Centred::normalised(x);
    let sq = xc.sq_norms();
    let rows = Rows {
        xc: &xc,
        sq: sq.as_slice().expect("contiguous"),
        cache: None,
    };
    let kind = match spec.kernel {
        Kernel::Linear => TileKind::Gram,
        Kernel::Rbf { sigma_frac } => match kernel::rbf_kind(rows, sigma_frac, false).0 {
            Some(kind) => kind,
            None => return Ok(None),
        },
    };
    let rows = Rows {
        xc: &xc,
        sq: sq.as_slice().expect("contiguous"),
        cache: None,
    };
    let mut m = Array2::from_shape_vec(
        (n, n),
        crate::memory::try_zeroed_f64(
            n * n,
            "the centred kernel matrix of a permutation test",
            "use fewer rows",
        )?,
    )
    .expect("n * n elements");
    let (mut buf, mut scratch) = (Vec::new(), Scratch::default());
    {
        let out = m.as_slice_mut().expect("standard layout");
        for (i0, i1) in kernel::tiles(n, 1) {
            crate::interrupt::checkpoint();
            rows.tile(kind, i0, i1, &mut buf, &mut scratch);
            for (r, src) in buf.chunks(i1).enumerate() {
                let i = i0 + r;
                out[i * n..i * n + i + 1].copy_from_slice(&src[..=i]);
            }
        }
        // Mirror the lower triangle, one row of the upper triangle per task.
        let lower: &[f64] = &*out;
        let upper: Vec<Vec<f64>> = (0..n)
            .into_par_iter()
            .map(|j| (j + 1..n).map(|i| lower[i * n + j]).collect())
            .collect();
        for (j, vals) in upper.into_iter().enumerate() {
            out[j * n + j + 1..(j + 1) * n].copy_from_slice(&vals);
        }
    }
    let nf = n as f64;
    match (spec.estimator, spec.kernel) {
        // Gram matrix of centred features: already H K H.
        (Estimator::Biased, Kernel::Linear) => {}
        (Estimator::Biased, Kernel::Rbf { .. }) => {
            let r = row_sums(&m);
            let total: f64 = r.iter().sum();
            let mean: Vec<f64> = r.iter().map(|v| v / nf).collect();
            let grand = total / (nf * nf);
            recentre(&mut m, &mean, grand, false);
        }
        (Estimator::Unbiased, _) => {
            for i in 0..n {
                m[[i, i]] = 0.0;
            }
            let r = row_sums(&m);
            let total: f64 = r.iter().sum();
            let mean: Vec<f64> = r.iter().map(|v| v / (nf - 2.0)).collect();
            let grand = total / ((nf - 1.0) * (nf - 2.0));
            recentre(&mut m, &mean, grand, true);
        }
    }
    Ok(Some(CentredKernel { matrix: m, exp }))
}

/// Row sums of a square matrix, each in a fixed order.
fn row_sums(m: &Array2<f64>) -> Vec<f64> {
    let n = m.nrows();
    m.as_slice()
        .expect("standard layout")
        .par_chunks(n)
        .map(|row| row.iter().sum())
        .collect()
}

/// `m_ij -= mean_i + mean_j - grand` (the diagonal left at 0 when `zero_diagonal`).
fn recentre(m: &mut Array2<f64>, mean: &[f64], grand: f64, zero_diagonal: bool) {
    let n = m.nrows();
    m.as_slice_mut()
        .expect("standard layout")
        .par_chunks_mut(n)
        .enumerate()
        .for_each(|(i, row)| {
            for (v, mj) in row.iter_mut().zip(mean) {
                *v = *v - mean[i] - mj + grand;
            }
            if zero_diagonal {
                row[i] = 0.0;
            }
        });
}

/// `sum_ij m_ij^2`, rows summed in parallel and added in a fixed order.
fn sum_sq(m: ArrayView2<f64>) -> f64 {
    let n = m.ncols();
    let rows: Vec<f64> = m
        .as_slice()
        .expect("standard layout")
        .par_chunks(n.max(1))
        .map(|row| row.iter().map(|v| v * v).sum::<f64>())
        .collect();
    rows.iter().sum()
}

/// `sum_j k_j l_{idx_j}` with eight accumulators (a fixed order).
#[inline]
fn gather_dot(k: &[f64], l: &[f64], idx: &[u32]) -> f64 {
    debug_assert_eq!(k.len(), idx.len());
    let mut acc = [0.0f64; 8];
    let ck = k.chunks_exact(8);
    let ci = idx.chunks_exact(8);
    let (rk, ri) = (ck.remainder(), ci.remainder());
    for (a, b) in ck.zip(ci) {
        for t in 0..8 {
            // SAFETY: every index was checked to be < n = l.len() by `permutation_rows`.
            acc[t] += a[t] * unsafe { *l.get_unchecked(b[t] as usize) };
        }
    }
    let mut tail = 0.0;
    for (a, &b) in rk.iter().zip(ri) {
        tail += a * l[b as usize];
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

/// The rows of `perms` as `u32`, each checked to be a permutation of `0..n`.
fn permutation_rows(perms: ArrayView2<i64>, n: usize) -> Result<Vec<u32>> {
    if perms.ncols() != n || n > u32::MAX as usize {
        return Err(CoreError::Shape {
            arg: "perms",
            shape: vec![perms.nrows(), perms.ncols()],
            expected: format!("one row per permutation of the {n} rows"),
        });
    }
    let mut out = Vec::with_capacity(perms.len());
    let mut seen = vec![usize::MAX; n];
    for (k, row) in perms.rows().into_iter().enumerate() {
        for &v in row.iter() {
            if v < 0 || v as usize >= n || seen[v as usize] == k {
                return Err(CoreError::Parameter {
                    name: "perms",
                    value: format!("row {k}"),
                    expected: format!("a permutation of 0..{n} (each index once)"),
                });
            }
            seen[v as usize] = k;
            out.push(v as u32);
        }
    }
    Ok(out)
}

/// `<K, P_k L P_k^T> = sum_ij K_ij L_{p_k(i) p_k(j)}` for each row `p_k` of `perms`, where `k`
/// and `l` are symmetric `n x n` matrices (the lower triangles are read).
pub fn permuted_inner(
    k: ArrayView2<f64>,
    l: ArrayView2<f64>,
    perms: ArrayView2<i64>,
) -> Result<Vec<f64>> {
    let n = k.nrows();
    for (arg, m) in [("K", &k), ("L", &l)] {
        if m.dim() != (n, n) || m.as_slice().is_none() {
            return Err(CoreError::Shape {
                arg,
                shape: m.shape().to_vec(),
                expected: format!("a C-contiguous {n} x {n} matrix"),
            });
        }
    }
    let p = permutation_rows(perms, n)?;
    if n == 0 || p.is_empty() {
        return Ok(vec![0.0; perms.nrows()]);
    }
    let (kd, ld) = (
        k.as_slice().expect("checked"),
        l.as_slice().expect("checked"),
    );
    let batches: Vec<Vec<f64>> = p
        .par_chunks(n * BATCH)
        .map(|batch| {
            let ps: Vec<&[u32]> = batch.chunks(n).collect();
            // inv[t][a] = i with p_t(i) = a.
            let inv: Vec<Vec<u32>> = ps
                .iter()
                .map(|pk| {
                    let mut v = vec![0u32; n];
                    for (i, &a) in pk.iter().enumerate() {
                        v[a as usize] = i as u32;
                    }
                    v
                })
                .collect();
            let mut totals = vec![0.0f64; ps.len()];
            // sum_ij K_ij L_{p(i) p(j)} = sum_a [K_ii L_aa + 2 sum_{j<i} K_ij L_{a p(j)}] with
            // i = p^-1(a). Row a of L is read once for the batch and stays in the first-level
            // cache, where the gather of L_{a p(j)} is cheap; the row i of K is read in order
            // (a stream the hardware prefetches), only its first i entries. Reading K's rows
            // in the order of i and gathering from row p(i) of L instead would need the whole
            // random row of L copied (or gathered from memory) for every permutation: twice
            // the traffic.
            for a in 0..n {
                if a % CHECK_ROWS == 0 {
                    crate::interrupt::checkpoint();
                }
                let lrow = &ld[a * n..(a + 1) * n];
                let laa = lrow[a];
                for (t, pk) in ps.iter().enumerate() {
                    let i = inv[t][a] as usize;
                    let krow = &kd[i * n..i * n + i];
                    totals[t] += 2.0 * gather_dot(krow, lrow, &pk[..i]) + kd[i * n + i] * laa;
                }
            }
            totals
        })
        .collect();
    Ok(batches.into_iter().flatten().collect())
}

/// The statistic of `spec` (HSIC or CKA) between `X` and `Y` with its rows permuted by each row
/// of `perms`, from the two centred kernel matrices (`exp` is the sum of their normalisation
/// exponents, used by the linear HSIC).
pub fn permuted_statistic(
    k: ArrayView2<f64>,
    l: ArrayView2<f64>,
    exp: i64,
    perms: ArrayView2<i64>,
    spec: &Spec,
) -> Result<Vec<f64>> {
    spec.validate()?;
    let n = k.nrows();
    if n < spec.min_rows() {
        return Err(CoreError::Shape {
            arg: "K",
            shape: k.shape().to_vec(),
            expected: format!("at least {} rows for this estimator", spec.min_rows()),
        });
    }
    let kl = permuted_inner(k, l, perms)?;
    let (kk, ll) = match spec.statistic {
        hsic::Statistic::Cka => (sum_sq(k), sum_sq(l)),
        hsic::Statistic::Hsic => (1.0, 1.0),
    };
    Ok(kl
        .into_iter()
        .map(|v| hsic::finish(spec, n, v, kk, ll, exp))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::pseudo;
    use ndarray::Array2;

    fn spec(kernel: &str, unbiased: bool, statistic: &str) -> Spec {
        Spec::parse(kernel, 1.0, unbiased, statistic, "auto").unwrap()
    }

    /// A reproducible permutation of 0..n (Fisher-Yates on an LCG).
    fn shuffle(n: usize, seed: u64) -> Vec<i64> {
        let mut v: Vec<i64> = (0..n as i64).collect();
        let mut s = seed;
        for i in (1..n).rev() {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let j = ((s >> 33) as usize) % (i + 1);
            v.swap(i, j);
        }
        v
    }

    fn perms(n: usize, count: usize) -> Array2<i64> {
        let mut out = Array2::zeros((count, n));
        for k in 0..count {
            for (o, v) in out.row_mut(k).iter_mut().zip(shuffle(n, k as u64 + 7)) {
                *o = v;
            }
        }
        out
    }

    #[test]
    fn the_gather_equals_the_permuted_matrix_product() {
        let n = 37;
        let a = pseudo(n, n, 1);
        let b = pseudo(n, n, 2);
        let k = &a + &a.t();
        let l = &b + &b.t();
        let ps = perms(n, 9);
        let got = permuted_inner(k.view(), l.view(), ps.view()).unwrap();
        for (row, g) in ps.rows().into_iter().zip(&got) {
            let want: f64 = (0..n)
                .flat_map(|i| (0..n).map(move |j| (i, j)))
                .map(|(i, j)| k[[i, j]] * l[[row[i] as usize, row[j] as usize]])
                .sum();
            assert!(
                (g - want).abs() <= 1e-12 * want.abs().max(1.0),
                "{g} {want}"
            );
        }
    }

    #[test]
    fn the_null_equals_the_statistic_of_the_permuted_rows() {
        let n = 41;
        let x = pseudo(n, 5, 3);
        let y = &x.slice(ndarray::s![.., ..3]) * 2.0 + pseudo(n, 3, 4);
        let ps = perms(n, 6);
        for kernel in ["linear", "rbf"] {
            for unbiased in [false, true] {
                for stat in ["cka", "hsic"] {
                    let sp = spec(kernel, unbiased, stat);
                    let kx = centred_kernel(Input::F64(x.view()), &sp).unwrap().unwrap();
                    let ky = centred_kernel(Input::F64(y.view()), &sp).unwrap().unwrap();
                    let got = permuted_statistic(
                        kx.matrix.view(),
                        ky.matrix.view(),
                        i64::from(kx.exp) + i64::from(ky.exp),
                        ps.view(),
                        &sp,
                    )
                    .unwrap();
                    for (row, g) in ps.rows().into_iter().zip(&got) {
                        let yp = ndarray::Array2::from_shape_fn(y.dim(), |(i, j)| {
                            y[[row[i] as usize, j]]
                        });
                        let want =
                            hsic::pair(Input::F64(x.view()), Input::F64(yp.view()), &sp).unwrap();
                        assert!(
                            (g - want).abs() <= 1e-12 * want.abs().max(1e-3),
                            "{kernel} {unbiased} {stat}: {g} vs {want}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn values_do_not_depend_on_the_thread_count() {
        let n = 300;
        let sp = spec("rbf", true, "cka");
        let x = pseudo(n, 4, 5);
        let y = pseudo(n, 6, 6);
        let kx = centred_kernel(Input::F64(x.view()), &sp).unwrap().unwrap();
        let ky = centred_kernel(Input::F64(y.view()), &sp).unwrap().unwrap();
        let ps = perms(n, 3 * BATCH + 5); // several batches, one of them partial
        let run = |threads: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| {
                    let k2 = centred_kernel(Input::F64(x.view()), &sp).unwrap().unwrap();
                    assert_eq!(k2.matrix, kx.matrix);
                    permuted_statistic(kx.matrix.view(), ky.matrix.view(), 0, ps.view(), &sp)
                        .unwrap()
                })
        };
        let one: Vec<u64> = run(1).iter().map(|v| v.to_bits()).collect();
        let three: Vec<u64> = run(3).iter().map(|v| v.to_bits()).collect();
        assert_eq!(one, three);
    }

    #[test]
    fn rows_that_are_not_permutations_are_refused() {
        let k = Array2::<f64>::eye(4);
        let bad = ndarray::array![[0i64, 1, 2, 2]];
        assert!(matches!(
            permuted_inner(k.view(), k.view(), bad.view()),
            Err(CoreError::Parameter { .. })
        ));
        let out_of_range = ndarray::array![[0i64, 1, 2, 4]];
        assert!(permuted_inner(k.view(), k.view(), out_of_range.view()).is_err());
        let short = ndarray::array![[0i64, 1, 2]];
        assert!(matches!(
            permuted_inner(k.view(), k.view(), short.view()),
            Err(CoreError::Shape { .. })
        ));
    }

    #[test]
    fn an_undefined_rbf_kernel_is_none() {
        let x = Array2::<f64>::zeros((6, 2));
        let sp = spec("rbf", false, "cka");
        assert!(centred_kernel(Input::F64(x.view()), &sp).unwrap().is_none());
    }
}
