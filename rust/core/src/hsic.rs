//! HSIC and CKA (MEASURES.md 1.2 and 1.3), for one pair and for layer-by-layer matrices.
//!
//! Every layer is *prepared* once (its columns centred, its squared row norms, and for the RBF
//! kernel its bandwidth from the exact median distance); a pair then needs one inner product
//! `<K., L.>` of the centred (`Kt = H K H`) or U-centred (`Ku`) kernel matrices. Two routes:
//!
//! * Feature route (linear kernel, cheaper when p < n): `<Kt, Lt> = ||Xc^T Yc||_F^2`; unbiased,
//!   with `d_i = ||xc_i||^2`, `e_i = ||yc_i||^2` (the diagonals of the Gram matrices of centred
//!   features, whose row sums vanish):
//!   `<Ku, Lu> = ||Xc^T Yc||_F^2 - (1 + 2/(n-2)) d.e + (sum d)(sum e)/((n-1)(n-2))`.
//! * Gram route (linear kernel when p > n, and RBF): the kernel matrices are streamed in row
//!   tiles (never stored whole, see [`crate::kernel`]) while accumulating `P = <K, L>`, the row
//!   sums `r` and totals `S`; then, since `H` is idempotent,
//!   `<Kt, Lt> = P - (2/n) r_K.r_L + S_K S_L / n^2`, and with diagonal-free sums
//!   `<Ku, Lu> = P0 + S_K S_L/((n-1)(n-2)) - (2/(n-2)) r_K.r_L` (Song et al. 2012).
//!
//! Then `HSIC_b = <Kt, Lt>/(n-1)^2`, `HSIC_u = <Ku, Lu>/(n(n-3))` and
//! `CKA = <K., L.>/sqrt(<K., K.><L., L.>)`.

use crate::error::{CoreError, Result};
use crate::kernel::{self, Rows, TileKind};
use crate::linalg::{self, Centred, Input};
use ndarray::{Array1, Array2};

/// The kernel of the Gram matrices.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kernel {
    Linear,
    /// RBF with bandwidth `sigma^2 = sigma_frac^2 * median(D2)`.
    Rbf {
        sigma_frac: f64,
    },
}

/// Biased (Gretton et al. 2005, `H K H`) or unbiased (Song et al. 2012, U-centring).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Estimator {
    Biased,
    Unbiased,
}

/// How a linear-kernel statistic is computed; RBF always uses the Gram route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// The cheaper of the two by flop count (and the Gram route only if it fits in memory).
    Auto,
    Features,
    Gram,
}

/// The statistic returned for a pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Statistic {
    Hsic,
    Cka,
}

/// Everything a computation needs to know besides the data.
#[derive(Clone, Copy, Debug)]
pub struct Spec {
    pub kernel: Kernel,
    pub estimator: Estimator,
    pub statistic: Statistic,
    pub route: Route,
}

impl Spec {
    /// Smallest number of rows the estimator is defined for.
    pub fn min_rows(&self) -> usize {
        match self.estimator {
            Estimator::Biased => 2,
            Estimator::Unbiased => 4,
        }
    }

    fn validate(&self) -> Result<()> {
        if let Kernel::Rbf { sigma_frac } = self.kernel {
            if !(sigma_frac.is_finite() && sigma_frac > 0.0) {
                return Err(CoreError::Parameter {
                    name: "sigma_frac",
                    value: format!("{sigma_frac}"),
                    expected: "a finite number > 0".into(),
                });
            }
        }
        Ok(())
    }
}

/// One representation, prepared for any number of pairings.
struct Prepared {
    xc: Centred,
    sq: Array1<f64>,
    /// The kernel tiles of the Gram route; `None` when the kernel is undefined (RBF with a
    /// zero median distance).
    kind: Option<TileKind>,
}

fn prepare(x: Input, spec: &Spec, route: Route) -> Prepared {
    let xc = Centred::new(x);
    let sq = xc.sq_norms();
    let kind = match (spec.kernel, route) {
        (Kernel::Rbf { sigma_frac }, _) => kernel::rbf_kind(
            Rows {
                xc: &xc,
                sq: sq.as_slice().expect("contiguous"),
            },
            sigma_frac,
        ),
        _ => Some(TileKind::Gram),
    };
    Prepared { xc, sq, kind }
}

/// `||a^T b||_F^2`, promoting to float64 only when the precisions differ.
fn cross_sq(a: &Centred, b: &Centred) -> f64 {
    let m = match (a, b) {
        (Centred::F32(x), Centred::F32(y)) => linalg::at_b(x, y),
        (Centred::F64(x), Centred::F64(y)) => linalg::at_b(x, y),
        (Centred::F32(x), Centred::F64(y)) => linalg::at_b(&x.mapv(f64::from), y),
        (Centred::F64(x), Centred::F32(y)) => linalg::at_b(x, &y.mapv(f64::from)),
    };
    linalg::par_sum_by(m.as_slice().expect("standard layout"), |v| v * v)
}

/// `||a^T a||_F^2` from the lower triangle of `a^T a`.
fn self_sq(a: &Centred) -> f64 {
    let lower = match a {
        Centred::F32(x) => linalg::at_a_lower(x),
        Centred::F64(x) => linalg::at_a_lower(x),
    };
    linalg::sym_sum_sq_from_lower(&lower)
}

/// Feature route: `<K., L.>` from `||Xc^T Yc||_F^2` (with the unbiased correction).
fn feature_inner(a: &Prepared, b: &Prepared, spec: &Spec, same: bool) -> f64 {
    let kl = if same {
        self_sq(&a.xc)
    } else {
        cross_sq(&a.xc, &b.xc)
    };
    match spec.estimator {
        Estimator::Biased => kl,
        Estimator::Unbiased => {
            let n = a.sq.len() as f64;
            let (d, e) = (&a.sq, &b.sq);
            kl - (1.0 + 2.0 / (n - 2.0)) * linalg::dot(d, e)
                + d.sum() * e.sum() / ((n - 1.0) * (n - 2.0))
        }
    }
}

/// The inner products of all pairs (`a` x `b`, or `a` x `a` when `b` is `None`) and every
/// layer's own (`a` then `b`), NaN where a layer is undefined.
fn inners(
    a: &[Prepared],
    b: Option<&[Prepared]>,
    spec: &Spec,
    route: Route,
) -> (Array2<f64>, Vec<f64>) {
    let pb = b.unwrap_or(a);
    let all: Vec<&Prepared> = a.iter().chain(b.unwrap_or(&[])).collect();
    let mut cross = Array2::from_elem((a.len(), pb.len()), f64::NAN);
    let mut selfs = vec![f64::NAN; all.len()];
    let need_selfs = spec.statistic == Statistic::Cka;
    if route == Route::Features {
        for (i, x) in a.iter().enumerate() {
            for (j, y) in pb.iter().enumerate() {
                if b.is_none() && j < i {
                    cross[[i, j]] = cross[[j, i]];
                } else if !(b.is_none() && i == j && need_selfs) {
                    cross[[i, j]] = feature_inner(x, y, spec, b.is_none() && i == j);
                }
            }
        }
        for (k, x) in all.iter().enumerate() {
            if b.is_none() && need_selfs {
                selfs[k] = feature_inner(x, x, spec, true);
                cross[[k, k]] = selfs[k];
            } else if need_selfs {
                selfs[k] = feature_inner(x, x, spec, true);
            }
        }
        return (cross, selfs);
    }
    // Gram route: stream the defined layers together.
    let defined: Vec<usize> = (0..all.len()).filter(|&k| all[k].kind.is_some()).collect();
    let split = b.map(|_| defined.iter().filter(|&&k| k < a.len()).count());
    let layers: Vec<(Rows, TileKind)> = defined
        .iter()
        .map(|&k| {
            let p = all[k];
            (
                Rows {
                    xc: &p.xc,
                    sq: p.sq.as_slice().expect("contiguous"),
                },
                p.kind.expect("defined"),
            )
        })
        .collect();
    if layers.is_empty() {
        return (cross, selfs);
    }
    let unbiased = spec.estimator == Estimator::Unbiased;
    let sums = kernel::stream(&layers, split, unbiased);
    let n = all[0].sq.len() as f64;
    let total: Vec<f64> = sums.rows.iter().map(|r| r.sum()).collect();
    let centred = |p: f64, u: usize, v: usize| -> f64 {
        let rr = linalg::dot(&sums.rows[u], &sums.rows[v]);
        if unbiased {
            p + total[u] * total[v] / ((n - 1.0) * (n - 2.0)) - 2.0 / (n - 2.0) * rr
        } else {
            p - 2.0 / n * rr + total[u] * total[v] / (n * n)
        }
    };
    for (u, &k) in defined.iter().enumerate() {
        selfs[k] = centred(sums.selfs[u], u, u);
    }
    let s = split.unwrap_or(0);
    for (u, &ka) in defined.iter().enumerate().filter(|(_, &k)| k < a.len()) {
        for (v, &kb) in defined.iter().enumerate() {
            let (col, w) = match b {
                Some(_) if kb >= a.len() => (kb - a.len(), v - s),
                None => (kb, v),
                _ => continue,
            };
            cross[[ka, col]] = centred(sums.cross[[u, w]], u, v);
        }
    }
    (cross, selfs)
}

/// Approximate flop counts of the two linear routes for `pairs` pairings of the layers.
fn route_costs(
    n: usize,
    widths: &[usize],
    pairs: usize,
    cross_flops: f64,
    statistic: Statistic,
) -> (f64, f64) {
    let n = n as f64;
    let selfs = if statistic == Statistic::Cka {
        1.0
    } else {
        0.0
    };
    let features = cross_flops + selfs * widths.iter().map(|&p| n * (p * p) as f64).sum::<f64>();
    let gram = widths.iter().map(|&p| n * n * p as f64).sum::<f64>() + pairs as f64 * n * n;
    (features, gram)
}

fn finish(spec: &Spec, n: usize, kl: f64, kk: f64, ll: f64) -> f64 {
    let nf = n as f64;
    match (spec.statistic, spec.estimator) {
        (Statistic::Hsic, Estimator::Biased) => kl / ((nf - 1.0) * (nf - 1.0)),
        (Statistic::Hsic, Estimator::Unbiased) => kl / (nf * (nf - 3.0)),
        (Statistic::Cka, est) => {
            if !(kk > 0.0 && ll > 0.0) {
                return f64::NAN;
            }
            let lo = if est == Estimator::Biased { 0.0 } else { -1.0 };
            (kl / (kk.sqrt() * ll.sqrt())).clamp(lo, 1.0)
        }
    }
}

fn check_inputs(layers: &[Input], arg: &'static str, n: usize, spec: &Spec) -> Result<()> {
    for x in layers {
        if x.nrows() != n {
            return Err(CoreError::Mismatch {
                what: format!("{arg} has {} rows but the first input has {n}; every input needs the same rows", x.nrows()),
            });
        }
        if x.ncols() == 0 {
            return Err(CoreError::Shape {
                arg,
                shape: vec![x.nrows(), 0],
                expected: "at least one column".into(),
            });
        }
    }
    if n < spec.min_rows() {
        return Err(CoreError::Shape {
            arg,
            shape: vec![n, layers.first().map_or(0, |x| x.ncols())],
            expected: format!("at least {} rows for this estimator", spec.min_rows()),
        });
    }
    Ok(())
}

/// HSIC or CKA of one pair `(X, Y)` as `spec` says.
pub fn pair<'a>(x: Input<'a>, y: Input<'a>, spec: &Spec) -> Result<f64> {
    let m = layer_matrix(&[x], Some(&[y]), spec)?;
    Ok(m[[0, 0]])
}

/// The matrix of `spec`'s statistic between every layer of `a` and every layer of `b`, or the
/// symmetric matrix between all layers of `a` when `b` is `None` (each unordered pair once).
/// Each layer is prepared once, so the work is `L1 + L2` preparations plus one inner product
/// per pair.
pub fn layer_matrix<'a>(
    a: &[Input<'a>],
    b: Option<&[Input<'a>]>,
    spec: &Spec,
) -> Result<Array2<f64>> {
    spec.validate()?;
    let Some(first) = a.first() else {
        return Err(CoreError::Mismatch {
            what: "no layers were given".into(),
        });
    };
    let n = first.nrows();
    check_inputs(a, "X", n, spec)?;
    if let Some(b) = b {
        if b.is_empty() {
            return Err(CoreError::Mismatch {
                what: "no layers were given for the second set".into(),
            });
        }
        check_inputs(b, "Y", n, spec)?;
    }
    let la = a.len();
    let lb = b.map_or(0, |b| b.len());
    let widths: Vec<usize> = a
        .iter()
        .chain(b.unwrap_or(&[]))
        .map(|x| x.ncols())
        .collect();
    let (pairs, cross_flops) = match b {
        None => (
            la * (la + 1) / 2,
            (0..la)
                .flat_map(|i| (i + 1..la).map(move |j| (i, j)))
                .map(|(i, j)| 2.0 * (n * widths[i] * widths[j]) as f64)
                .sum(),
        ),
        Some(_) => (
            la * lb,
            (0..la)
                .flat_map(|i| (la..la + lb).map(move |j| (i, j)))
                .map(|(i, j)| 2.0 * (n * widths[i] * widths[j]) as f64)
                .sum(),
        ),
    };
    let route = match (spec.kernel, spec.route) {
        (Kernel::Rbf { .. }, _) => Route::Gram,
        (Kernel::Linear, Route::Auto) => {
            let (f, g) = route_costs(n, &widths, pairs, cross_flops, spec.statistic);
            if g < f {
                Route::Gram
            } else {
                Route::Features
            }
        }
        (Kernel::Linear, r) => r,
    };
    let pa: Vec<Prepared> = a.iter().map(|&x| prepare(x, spec, route)).collect();
    let pb: Option<Vec<Prepared>> = b.map(|b| b.iter().map(|&x| prepare(x, spec, route)).collect());
    let (cross, selfs) = inners(&pa, pb.as_deref(), spec, route);
    let self_b = |j: usize| if b.is_some() { selfs[la + j] } else { selfs[j] };
    let out = Array2::from_shape_fn(cross.dim(), |(i, j)| {
        finish(spec, n, cross[[i, j]], selfs[i], self_b(j))
    });
    Ok(out)
}
