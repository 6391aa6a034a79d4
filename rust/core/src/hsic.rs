//! HSIC and CKA (MEASURES.md 1.2 and 1.3), for one pair and for layer-by-layer matrices.
//!
//! Every layer is *prepared* once: its columns are centred and, depending on the route, either
//! the centred features are kept (linear kernel, feature route) or its centred or U-centred
//! n x n Gram matrix is built (Gram route, and always for RBF). A pair then costs one inner
//! product `<Kt, Lt>` (or `<Ku, Lu>`):
//!
//! * Gram route: the elementwise dot product of the two prepared n x n matrices.
//! * Feature route, biased: `<Kt, Lt> = ||Xc^T Yc||_F^2`.
//! * Feature route, unbiased: with `d_i = ||xc_i||^2`, `e_i = ||yc_i||^2` (the diagonals of the
//!   Gram matrices of centred features, whose row sums vanish),
//!   `<Ku, Lu> = ||Xc^T Yc||_F^2 - (1 + 2/(n-2)) d.e + (sum d)(sum e)/((n-1)(n-2))`.
//!
//! Then `HSIC_b = <Kt, Lt>/(n-1)^2`, `HSIC_u = <Ku, Lu>/(n(n-3))` and
//! `CKA = <K., L.>/sqrt(<K., K.><L., L.>)`.

use crate::error::{CoreError, Result};
use crate::kernel;
use crate::linalg::{self, Input, Real};
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

enum Centred {
    F32(Array2<f32>),
    F64(Array2<f64>),
}

enum Repr {
    /// Centred features and the squared norms of their rows.
    Features { xc: Centred, sq: Array1<f64> },
    /// Centred (biased) or U-centred (unbiased) n x n Gram matrix.
    Gram(Array2<f64>),
    /// The statistic is undefined for this layer (RBF with a zero median distance).
    Undefined,
}

/// One representation, prepared for any number of pairings.
pub struct Prepared {
    n: usize,
    repr: Repr,
    /// `<K., K.>` (only computed when the statistic is CKA).
    self_inner: f64,
}

fn centre(x: Input) -> Centred {
    match x {
        Input::F32(a) => Centred::F32(linalg::centre_columns(a)),
        Input::F64(a) => Centred::F64(linalg::centre_columns(a)),
    }
}

fn gram_of<T: Real>(xc: &Array2<T>, spec: &Spec) -> Option<Array2<f64>> {
    let mut k = match spec.kernel {
        Kernel::Linear => kernel::linear_gram(xc),
        Kernel::Rbf { sigma_frac } => {
            let mut d = kernel::squared_distances(xc);
            if !kernel::rbf_from_squared_distances(&mut d, sigma_frac) {
                return None;
            }
            d
        }
    };
    match spec.estimator {
        Estimator::Biased => {
            // The linear Gram of centred features is already doubly centred.
            if spec.kernel != Kernel::Linear {
                kernel::double_centre(&mut k)
            }
        }
        Estimator::Unbiased => kernel::u_centre(&mut k),
    }
    Some(k)
}

fn slice(a: &Array2<f64>) -> &[f64] {
    a.as_slice().expect("owned arrays are in standard layout")
}

/// `||a^T b||_F^2`, promoting to float64 only when the precisions differ.
fn cross_sq(a: &Centred, b: &Centred) -> f64 {
    let m = match (a, b) {
        (Centred::F32(x), Centred::F32(y)) => linalg::at_b(x, y),
        (Centred::F64(x), Centred::F64(y)) => linalg::at_b(x, y),
        (Centred::F32(x), Centred::F64(y)) => linalg::at_b(&x.mapv(f64::from), y),
        (Centred::F64(x), Centred::F32(y)) => linalg::at_b(x, &y.mapv(f64::from)),
    };
    linalg::par_sum_by(slice(&m), |v| v * v)
}

fn self_sq(a: &Centred) -> f64 {
    let lower = match a {
        Centred::F32(x) => linalg::at_a_lower(x),
        Centred::F64(x) => linalg::at_a_lower(x),
    };
    linalg::sym_sum_sq_from_lower(&lower)
}

/// `<K., L.>` between two layers prepared with the same spec and row count.
fn inner(a: &Prepared, b: &Prepared, spec: &Spec) -> f64 {
    match (&a.repr, &b.repr) {
        (Repr::Gram(k), Repr::Gram(l)) => linalg::par_dot(slice(k), slice(l)),
        (Repr::Features { xc, sq: d }, Repr::Features { xc: yc, sq: e }) => {
            let kl = if std::ptr::eq(a, b) {
                self_sq(xc)
            } else {
                cross_sq(xc, yc)
            };
            match spec.estimator {
                Estimator::Biased => kl,
                Estimator::Unbiased => {
                    let n = a.n as f64;
                    kl - (1.0 + 2.0 / (n - 2.0)) * linalg::dot(d, e)
                        + d.sum() * e.sum() / ((n - 1.0) * (n - 2.0))
                }
            }
        }
        _ => f64::NAN,
    }
}

/// Approximate flop counts of the two linear routes for `pairs` pairings of the layers.
fn route_costs(
    n: usize,
    widths: &[usize],
    pairs: &[(usize, usize)],
    statistic: Statistic,
) -> (f64, f64) {
    let n = n as f64;
    let w: Vec<f64> = widths.iter().map(|&p| p as f64).collect();
    let selfs = if statistic == Statistic::Cka {
        1.0
    } else {
        0.0
    };
    let features: f64 = pairs
        .iter()
        .map(|&(i, j)| 2.0 * n * w[i] * w[j])
        .sum::<f64>()
        + selfs * w.iter().map(|p| n * p * p).sum::<f64>();
    let gram: f64 = w.iter().map(|p| n * n * p).sum::<f64>() + pairs.len() as f64 * 2.0 * n * n;
    (features, gram)
}

/// Bytes of memory currently available, where the system tells (Linux).
fn available_memory() -> Option<usize> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn gram_fits(n: usize, layers: usize) -> bool {
    let need = (layers + 1) as f64 * (n as f64) * (n as f64) * 8.0;
    available_memory().map_or(true, |avail| need <= 0.8 * avail as f64)
}

fn check_gram_memory(n: usize, layers: usize) -> Result<()> {
    if gram_fits(n, layers) {
        return Ok(());
    }
    let need = (layers + 1) as f64 * (n as f64).powi(2) * 8.0 / 1e9;
    Err(CoreError::Parameter {
        name: "X",
        value: format!("(n={n} rows)"),
        expected: format!(
            "a size whose {} n x n float64 Gram matrices fit in memory (about {need:.1} GB needed); \
             use the linear kernel, which needs no n x n matrix, or subsample the rows",
            layers + 1
        ),
    })
}

/// Resolve `Route::Auto` for a set of layers and pairings.
fn resolve_route(spec: &Spec, n: usize, widths: &[usize], pairs: &[(usize, usize)]) -> Route {
    match (spec.kernel, spec.route) {
        (Kernel::Rbf { .. }, _) => Route::Gram,
        (Kernel::Linear, Route::Auto) => {
            let (f, g) = route_costs(n, widths, pairs, spec.statistic);
            if g < f && gram_fits(n, widths.len()) {
                Route::Gram
            } else {
                Route::Features
            }
        }
        (Kernel::Linear, r) => r,
    }
}

/// Prepare one representation for the given spec and (resolved) route.
fn prepare(x: Input, spec: &Spec, route: Route) -> Prepared {
    let n = x.nrows();
    let xc = centre(x);
    let repr = match route {
        Route::Gram => {
            let k = match &xc {
                Centred::F32(a) => gram_of(a, spec),
                Centred::F64(a) => gram_of(a, spec),
            };
            k.map_or(Repr::Undefined, Repr::Gram)
        }
        _ => {
            let sq = match &xc {
                Centred::F32(a) => linalg::row_sq_norms(a),
                Centred::F64(a) => linalg::row_sq_norms(a),
            };
            Repr::Features { xc, sq }
        }
    };
    let mut p = Prepared {
        n,
        repr,
        self_inner: f64::NAN,
    };
    if spec.statistic == Statistic::Cka {
        p.self_inner = inner(&p, &p, spec);
    }
    p
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

/// `<K., L.>` for all pairs of Gram-route layers, each matrix read once.
fn gram_inners(a: &[Prepared], b: &[Prepared], symmetric: bool) -> Array2<f64> {
    let defined = |p: &[Prepared]| -> Vec<usize> {
        (0..p.len())
            .filter(|&i| matches!(p[i].repr, Repr::Gram(_)))
            .collect()
    };
    let (ia, ib) = (defined(a), defined(b));
    fn slices<'p>(p: &'p [Prepared], idx: &[usize]) -> Vec<&'p [f64]> {
        idx.iter()
            .map(|&i| match &p[i].repr {
                Repr::Gram(k) => slice(k),
                _ => unreachable!("only Gram layers are indexed"),
            })
            .collect()
    }
    let m = linalg::multi_dot(&slices(a, &ia), &slices(b, &ib), symmetric);
    let mut out = Array2::from_elem((a.len(), b.len()), f64::NAN);
    for (r, &i) in ia.iter().enumerate() {
        for (c, &j) in ib.iter().enumerate() {
            out[[i, j]] = m[[r, c]];
        }
    }
    out
}

/// `<K., L.>` for all pairs of feature-route layers, one product per pair (or per unordered
/// pair when `symmetric`), reusing the self terms already computed.
fn feature_inners(a: &[Prepared], b: &[Prepared], symmetric: bool, spec: &Spec) -> Array2<f64> {
    let mut out = Array2::from_elem((a.len(), b.len()), f64::NAN);
    for i in 0..a.len() {
        for j in 0..b.len() {
            if symmetric && j < i {
                out[[i, j]] = out[[j, i]];
            } else if symmetric && i == j && spec.statistic == Statistic::Cka {
                out[[i, j]] = a[i].self_inner;
            } else {
                out[[i, j]] = inner(&a[i], &b[j], spec);
            }
        }
    }
    out
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
    let all: Vec<Input> = a.iter().chain(b.unwrap_or(&[]).iter()).copied().collect();
    let pairs: Vec<(usize, usize)> = match b {
        None => (0..la)
            .flat_map(|i| (i..la).map(move |j| (i, j)))
            .filter(|&(i, j)| i != j || la == 1)
            .collect(),
        Some(b) => (0..la)
            .flat_map(|i| (0..b.len()).map(move |j| (i, la + j)))
            .collect(),
    };
    let widths: Vec<usize> = all.iter().map(|x| x.ncols()).collect();
    let route = resolve_route(spec, n, &widths, &pairs);
    if route == Route::Gram {
        check_gram_memory(n, all.len())?;
    }
    let prepared: Vec<Prepared> = all.iter().map(|&x| prepare(x, spec, route)).collect();
    let (pa, pb) = prepared.split_at(la);
    let symmetric = b.is_none();
    let pb = if symmetric { pa } else { pb };
    let kl = if route == Route::Gram {
        gram_inners(pa, pb, symmetric)
    } else {
        feature_inners(pa, pb, symmetric, spec)
    };
    let mut out = Array2::from_elem(kl.dim(), f64::NAN);
    for ((i, j), v) in out.indexed_iter_mut() {
        let (x, y) = (&pa[i], &pb[j]);
        if !matches!(x.repr, Repr::Undefined) && !matches!(y.repr, Repr::Undefined) {
            *v = finish(spec, n, kl[[i, j]], x.self_inner, y.self_inner);
        }
    }
    Ok(out)
}
