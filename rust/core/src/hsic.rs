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
//! * Gram route (linear kernel when it is cheaper for the whole matrix, and RBF): the kernel
//!   matrices of all layers are streamed together in square tiles (never stored whole, see
//!   [`crate::gram`]: one product per layer and tile, and all the tile's inner products as one
//!   more product) while accumulating `P = <K, L>`; the row sums `r` and totals `S` come from
//!   the tiles (RBF) or, for the linear kernel, exactly from `r = Xc (Xc^T 1)` (minus the
//!   diagonal `d` when unbiased); then, since `H` is idempotent,
//!   `<Kt, Lt> = P - (2/n) r_K.r_L + S_K S_L / n^2`, and with diagonal-free sums
//!   `<Ku, Lu> = P0 + S_K S_L/((n-1)(n-2)) - (2/(n-2)) r_K.r_L` (Song et al. 2012).
//!
//! Then `HSIC_b = <Kt, Lt>/(n-1)^2`, `HSIC_u = <Ku, Lu>/(n(n-3))` and
//! `CKA = <K., L.>/sqrt(<K., K.><L., L.>)`.
//!
//! The route is chosen once for the whole matrix, by flop count ([`route_costs`]).
//!
//! Linear Gram route without copies: a layer whose column means `mu` are small beside its
//! spread (`|mu|^2 <= 4 mean |xc_i|^2`, as for Gaussian or post-ReLU features) is not copied:
//! its tiles are formed from the rows themselves and centred entry by entry,
//! `xc_i . xc_j = x_i . x_j - x_i . mu - xc_j . mu` ([`linalg::Shifted`]; in float64 at most 25
//! times the rounding bound of the centred copy, about 1e-13 relative at p = 768; float32 rows
//! only on the float32 route below, whose error estimate then uses the rows' own norms).
//! Other layers are centred into copies as below.
//!
//! float32 Gram route: when every layer arrives as float32 and the linear Gram route is taken,
//! the centred, normalised float64 features are rounded to float32 (or the rows are used as
//! they are, see above) and the tiles are float32 products (accumulated in float32 over the features of one entry), widened to float64 before
//! the inner products, which are accumulated in float64. Every entry is then checked against
//! an estimate of its rounding error ([`f32_error`]); an entry whose estimate exceeds half of
//! the `1e-6` relative tolerance (values near 0, e.g. a debiased CKA) is recomputed in float64.
//!
//! Magnitude and precision: every layer is centred in float64 (float32 input converted
//! exactly) and multiplied by a power of two `2^-e` that brings its entries into `[-1, 1]`
//! ([`Centred::normalised`]), so no product overflows or underflows whatever the input's
//! magnitude or offset. CKA and the RBF kernel are invariant to that factor; the linear HSIC is
//! multiplied back by `2^(2 e_X + 2 e_Y)` at the very end ([`linalg::ldexp`]), which is exact
//! and gives `inf` only when the value itself exceeds the float64 range.

use crate::error::{CoreError, Result};
use crate::gram;
use crate::kernel::{self, PackedLower, Rows, TileKind};
use crate::linalg::{self, Centred, Input, Real, Threads};
use ndarray::{s, Array1, Array2, ArrayView2};
use rayon::prelude::*;

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

impl Kernel {
    /// `"linear"` or `"rbf"` (with its bandwidth fraction).
    pub fn parse(s: &str, sigma_frac: f64) -> Result<Self> {
        match s {
            "linear" => Ok(Kernel::Linear),
            "rbf" => Ok(Kernel::Rbf { sigma_frac }),
            other => Err(CoreError::Parameter {
                name: "kernel",
                value: format!("{other:?}"),
                expected: "'linear' or 'rbf'".into(),
            }),
        }
    }
}

impl Route {
    /// `"auto"`, `"features"` or `"gram"`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(Route::Auto),
            "features" => Ok(Route::Features),
            "gram" => Ok(Route::Gram),
            other => Err(CoreError::Parameter {
                name: "route",
                value: format!("{other:?}"),
                expected: "'auto', 'features' or 'gram'".into(),
            }),
        }
    }
}

impl Statistic {
    /// `"cka"` or `"hsic"`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "cka" => Ok(Statistic::Cka),
            "hsic" => Ok(Statistic::Hsic),
            other => Err(CoreError::Parameter {
                name: "statistic",
                value: format!("{other:?}"),
                expected: "'cka' or 'hsic'".into(),
            }),
        }
    }

    /// The name `parse` accepts.
    pub fn name(self) -> &'static str {
        match self {
            Statistic::Cka => "cka",
            Statistic::Hsic => "hsic",
        }
    }
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
    /// A spec from the option strings of the binding (the one place they are parsed).
    pub fn parse(
        kernel: &str,
        sigma_frac: f64,
        unbiased: bool,
        statistic: &str,
        route: &str,
    ) -> Result<Self> {
        Ok(Spec {
            kernel: Kernel::parse(kernel, sigma_frac)?,
            estimator: if unbiased {
                Estimator::Unbiased
            } else {
                Estimator::Biased
            },
            statistic: Statistic::parse(statistic)?,
            route: Route::parse(route)?,
        })
    }

    /// Smallest number of rows the estimator is defined for.
    pub fn min_rows(&self) -> usize {
        match self.estimator {
            Estimator::Biased => 2,
            Estimator::Unbiased => 4,
        }
    }

    pub(crate) fn validate(&self) -> Result<()> {
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
struct Prepared<'a> {
    /// Centred features times `2^-exp` (see [`Centred::normalised`]), or on the linear Gram
    /// route the layer itself, centred as its tiles are formed ([`linalg::Shifted`]).
    xc: Centred<'a>,
    exp: i32,
    sq: Array1<f64>,
    /// The kernel tiles of the Gram route; `None` when the kernel is undefined (RBF with a
    /// zero median distance).
    kind: Option<TileKind>,
    /// Squared distances kept from the median pass (RBF, when they fit the cache budget).
    cache: Option<PackedLower>,
    /// The float32 Gram route: `xc` holds the float32 rounding of the float64 centred
    /// features, which are not kept; these are their row sums of `Xc Xc^T` and their largest
    /// magnitude (see [`linalg::normalised_f32`]).
    f32_stats: Option<(Array1<f64>, f64)>,
}

/// Memory that RBF layers may keep for their squared distances (saves a second product each).
const CACHE_BUDGET: usize = 2 << 30;

/// Prepare one layer; `shifted`: its form without a centred copy, when the linear Gram route
/// can use one (see [`linalg::Shifted`]; made before the memory pre-flight).
fn prepare<'a>(
    x: Input<'a>,
    spec: &Spec,
    route: Route,
    keep: bool,
    f32: bool,
    shifted: Option<linalg::Shifted<'a>>,
) -> Prepared<'a> {
    if let Some(s) = shifted {
        // No copy: the tiles are centred as they are formed. On the float32 route the rows
        // themselves are multiplied; they are exact, so the error estimate has no term for
        // rounding centred values to float32 (m = 0).
        return Prepared {
            exp: s.exp,
            sq: s.sq.clone(),
            f32_stats: f32.then(|| (s.row_sums.clone(), 0.0)),
            xc: Centred::Shifted(s),
            kind: Some(TileKind::Gram),
            cache: None,
        };
    }
    if f32 {
        // The float32 Gram route (linear kernel): no float64 copy of the layer.
        let p = linalg::normalised_f32(x);
        return Prepared {
            xc: Centred::F32(p.x32),
            exp: p.exp,
            sq: p.sq,
            kind: Some(TileKind::Gram),
            cache: None,
            f32_stats: Some((p.row_sums, p.max_abs)),
        };
    }
    let (xc, exp) = Centred::normalised(x);
    let sq = xc.sq_norms();
    let (kind, cache) = match (spec.kernel, route) {
        (Kernel::Rbf { sigma_frac }, _) => {
            let rows = Rows {
                xc: &xc,
                sq: sq.as_slice().expect("contiguous"),
                cache: None,
            };
            kernel::rbf_kind(rows, sigma_frac, keep)
        }
        _ => (Some(TileKind::Gram), None),
    };
    Prepared {
        xc,
        exp,
        sq,
        kind,
        cache,
        f32_stats: None,
    }
}

/// `||a^T b||_F^2`, promoting to float64 only when the precisions differ.
fn cross_sq(a: &Centred, b: &Centred, threads: Threads) -> f64 {
    if let Centred::Shifted(s) = a {
        return cross_sq(&Centred::F64(s.dense()), b, threads);
    }
    if let Centred::Shifted(s) = b {
        return cross_sq(a, &Centred::F64(s.dense()), threads);
    }
    let m = match (a, b) {
        (Centred::F32(x), Centred::F32(y)) => linalg::at_b(x, y, threads),
        (Centred::F64(x), Centred::F64(y)) => linalg::at_b(x, y, threads),
        (Centred::F32(x), Centred::F64(y)) => linalg::at_b(&x.mapv(f64::from), y, threads),
        (Centred::F64(x), Centred::F32(y)) => linalg::at_b(x, &y.mapv(f64::from), threads),
        (Centred::Shifted(_), _) | (_, Centred::Shifted(_)) => unreachable!("made dense above"),
    };
    linalg::par_sum_by(m.as_slice().expect("standard layout"), |v| v * v)
}

/// `||a^T a||_F^2` from the lower triangle of `a^T a`.
fn self_sq(a: &Centred, threads: Threads) -> f64 {
    let lower = match a {
        Centred::F32(x) => linalg::at_a_lower(x, threads),
        Centred::F64(x) => linalg::at_a_lower(x, threads),
        Centred::Shifted(s) => linalg::at_a_lower(&s.dense(), threads),
    };
    linalg::sym_sum_sq_from_lower(&lower)
}

/// `v`, or 0 when `v` is not above the round-off of a sum of terms whose absolute values add
/// up to `scale` (`64 n eps scale`): a layer's own `<K., K.>` is then zero to float64
/// precision, and CKA undefined (`nan`) rather than a ratio of round-off. Biased linear values
/// are sums of squares (`scale = v`) and never cut unless 0.
fn cut(v: f64, scale: f64, n: usize) -> f64 {
    if v > 64.0 * n as f64 * f64::EPSILON * scale {
        v
    } else {
        0.0
    }
}

/// A layer's own `<K., K.>` on the feature route, cut to 0 at round-off (see [`cut`]).
fn feature_self(a: &Prepared, spec: &Spec, threads: Threads) -> f64 {
    let kk = self_sq(&a.xc, threads);
    let d = &a.sq;
    let n = d.len();
    let nf = n as f64;
    match spec.estimator {
        Estimator::Biased => kk,
        Estimator::Unbiased => {
            let t1 = (1.0 + 2.0 / (nf - 2.0)) * linalg::dot(d, d);
            let t2 = d.sum() * d.sum() / ((nf - 1.0) * (nf - 2.0));
            cut(kk - t1 + t2, kk + t1 + t2, n)
        }
    }
}

/// Feature route: `<K., L.>` from `||Xc^T Yc||_F^2` (with the unbiased correction).
fn feature_inner(a: &Prepared, b: &Prepared, spec: &Spec, same: bool, threads: Threads) -> f64 {
    let kl = if same {
        self_sq(&a.xc, threads)
    } else {
        cross_sq(&a.xc, &b.xc, threads)
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

/// Feature route for a single pair of equal precision: centre `[X | Y]` into one buffer and
/// take the lower triangle of its cross-product matrix, whose blocks are `Xc^T Xc`,
/// `Yc^T Xc` and `Yc^T Yc`: one large product instead of three. Returns `(kl, kk, ll)`.
/// float32 inputs are centred into float64 (see [`Centred::normalised`]).
fn joint_pair<T: Real, U: Real>(
    x: ArrayView2<T>,
    y: ArrayView2<U>,
    spec: &Spec,
) -> (f64, f64, f64) {
    let (n, p1, p2) = (x.nrows(), x.ncols(), y.ncols());
    let mut z = Array2::<f64>::zeros((n, p1 + p2));
    // Each side normalised by its own power of two: CKA is scale-invariant.
    linalg::centre_columns_normalised_into(x, z.slice_mut(s![.., ..p1]));
    linalg::centre_columns_normalised_into(y, z.slice_mut(s![.., p1..]));
    let g = linalg::at_a_lower(&z, Threads::All);
    let kk = linalg::sym_sum_sq_from_lower(g.slice(s![..p1, ..p1]));
    let ll = linalg::sym_sum_sq_from_lower(g.slice(s![p1.., p1..]));
    let cross = g.slice(s![p1.., ..p1]);
    let kl: f64 = cross
        .rows()
        .into_iter()
        .map(|r| r.iter().map(|v| v * v).sum::<f64>())
        .sum();
    match spec.estimator {
        Estimator::Biased => (kl, kk, ll),
        Estimator::Unbiased => {
            let nf = n as f64;
            let d = linalg::row_sq_norms(z.slice(s![.., ..p1]));
            let e = linalg::row_sq_norms(z.slice(s![.., p1..]));
            let terms = |a: &Array1<f64>, b: &Array1<f64>| {
                (
                    (1.0 + 2.0 / (nf - 2.0)) * linalg::dot(a, b),
                    a.sum() * b.sum() / ((nf - 1.0) * (nf - 2.0)),
                )
            };
            let fix = |v: f64, a: &Array1<f64>, b: &Array1<f64>| {
                let (t1, t2) = terms(a, b);
                v - t1 + t2
            };
            let fix_self = |v: f64, a: &Array1<f64>| {
                let (t1, t2) = terms(a, a);
                cut(v - t1 + t2, v + t1 + t2, n)
            };
            (fix(kl, &d, &e), fix_self(kk, &d), fix_self(ll, &e))
        }
    }
}

/// Room for products side by side on the feature route when the system does not tell the
/// memory budget (1 GiB).
const SIDE_BY_SIDE_ROOM: f64 = (1u64 << 30) as f64;

/// Bytes a feature-route product of `x` and `y` holds while it runs: its `p_x x p_y` result
/// (counted twice: a float32 product is converted to float64) and the float64 copies made of
/// a side in the shifted form or of a float32 side met by a float64 one (the copies
/// [`cross_sq`] and [`self_sq`] make; change both together).
fn product_bytes(x: &Centred, y: &Centred) -> f64 {
    let wide = |c: &Centred| !matches!(c, Centred::F32(_));
    let copy = |c: &Centred, other: &Centred| match c {
        Centred::Shifted(_) => true,
        Centred::F32(_) => wide(other),
        Centred::F64(_) => false,
    };
    let dense = |c: &Centred| (c.nrows() * c.ncols()) as f64 * 8.0;
    let mut bytes = 16.0 * (x.ncols() * y.ncols()) as f64;
    if copy(x, y) {
        bytes += dense(x);
    }
    if copy(y, x) {
        bytes += dense(y);
    }
    bytes
}

/// The inner products of all pairs (`a` x `b`, or `a` x `a` when `b` is `None`) and every
/// layer's own (`a` then `b`), NaN where a layer is undefined; on the Gram route also every
/// layer's raw `||K||_F^2` (diagonal included; for the float32 error estimate).
fn inners<'a>(
    a: &[Prepared<'a>],
    b: Option<&[Prepared<'a>]>,
    spec: &Spec,
    route: Route,
) -> (Array2<f64>, Vec<f64>, Vec<f64>) {
    let pb = b.unwrap_or(a);
    let all: Vec<&Prepared> = a.iter().chain(b.unwrap_or(&[])).collect();
    let mut cross = Array2::from_elem((a.len(), pb.len()), f64::NAN);
    let mut selfs = vec![f64::NAN; all.len()];
    let need_selfs = spec.statistic == Statistic::Cka;
    if route == Route::Features {
        // One product per value: the cells (each unordered pair once when a layer set meets
        // itself) and, for CKA, every layer's own. With at least two products per thread,
        // they run side by side, one thread each (768 x 20000 x 768 products here: 103
        // GFLOP/s against 89 with every thread on each product in turn); fewer take every
        // thread each. Either way gives the same bits (see `Threads`). Side by side, every
        // thread holds a product's memory at once ([`product_bytes`]): on many cores and wide
        // layers (128 threads of 16k x 16k results would take 256 GiB) they run in turn
        // unless a quarter of the memory budget holds them all.
        let mut tasks: Vec<(Option<usize>, usize)> = Vec::new();
        for i in 0..a.len() {
            for j in 0..pb.len() {
                if b.is_some() || j > i || (j == i && !need_selfs) {
                    tasks.push((Some(i), j));
                }
            }
        }
        if need_selfs {
            tasks.extend((0..all.len()).map(|k| (None, k)));
        }
        let value = |&(i, j): &(Option<usize>, usize), threads: Threads| match i {
            Some(i) => feature_inner(&a[i], &pb[j], spec, b.is_none() && i == j, threads),
            None => feature_self(all[j], spec, threads),
        };
        let threads = rayon::current_num_threads();
        let largest = tasks.iter().map(|&(i, j)| match i {
            Some(i) => product_bytes(&a[i].xc, &pb[j].xc),
            None => product_bytes(&all[j].xc, &all[j].xc),
        });
        let largest = largest.fold(0.0, f64::max);
        let room = crate::memory::budget().map_or(SIDE_BY_SIDE_ROOM, |b| b as f64 / 4.0);
        let side_by_side = tasks.len() >= 2 * threads && threads as f64 * largest <= room;
        let values: Vec<f64> = if side_by_side {
            tasks
                .par_iter()
                .with_max_len(1)
                .map(|t| value(t, Threads::One))
                .collect()
        } else {
            tasks.iter().map(|t| value(t, Threads::All)).collect()
        };
        for (&(i, j), &v) in tasks.iter().zip(&values) {
            match i {
                Some(i) => {
                    cross[[i, j]] = v;
                    if b.is_none() {
                        cross[[j, i]] = v;
                    }
                }
                None => {
                    selfs[j] = v;
                    if b.is_none() {
                        cross[[j, j]] = v;
                    }
                }
            }
        }
        return (cross, selfs, Vec::new());
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
                    cache: p.cache.as_ref(),
                },
                p.kind.expect("defined"),
            )
        })
        .collect();
    let mut raw = vec![f64::NAN; all.len()];
    if layers.is_empty() {
        return (cross, selfs, raw);
    }
    let unbiased = spec.estimator == Estimator::Unbiased;
    let linear = spec.kernel == Kernel::Linear;
    let mut sums = gram::sums(&layers, split, unbiased, !linear);
    if linear {
        // Row sums of Xc Xc^T, exactly: Xc (Xc^T 1) (zero up to round-off), less the diagonal
        // when it is left out.
        sums.rows = defined
            .iter()
            .map(|&k| {
                let p = all[k];
                let r = match (&p.f32_stats, &p.xc) {
                    (Some((rows, _)), _) => rows.clone(),
                    (None, Centred::F64(x)) => linalg::mat_vec(x, &linalg::col_sums(x)),
                    (None, Centred::Shifted(s)) => s.row_sums.clone(),
                    (None, Centred::F32(_)) => unreachable!("float32 copies come with their sums"),
                };
                if unbiased {
                    r - &p.sq
                } else {
                    r
                }
            })
            .collect();
    }
    for (u, &k) in defined.iter().enumerate() {
        raw[k] = sums.selfs[u]
            + if unbiased {
                all[k].sq.iter().map(|d| d * d).sum::<f64>()
            } else {
                0.0
            };
    }
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
        // Round-off cut (see `cut`), with the absolute values of the three terms as scale.
        let p = sums.selfs[u];
        let rr = linalg::dot(&sums.rows[u], &sums.rows[u]);
        let tt = total[u] * total[u];
        let scale = if unbiased {
            p.abs() + tt / ((n - 1.0) * (n - 2.0)) + 2.0 / (n - 2.0) * rr
        } else {
            p.abs() + 2.0 / n * rr + tt / (n * n)
        };
        selfs[k] = cut(centred(p, u, u), scale, n as usize);
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
    (cross, selfs, raw)
}

/// Approximate costs (float64 flops) of the two linear routes for `pairs` pairings of the
/// layers: the feature route's cross products `2 n p_a p_b` and symmetric self products
/// `n p^2`; the Gram route's symmetric tiles `n^2 p` per layer, at half the cost in float32,
/// and its inner products `n^2` per pair, weighted 2 (they run at memory speed).
fn route_costs(
    n: usize,
    widths: &[usize],
    pairs: usize,
    cross_flops: f64,
    statistic: Statistic,
    f32: bool,
) -> (f64, f64) {
    let n = n as f64;
    let selfs = if statistic == Statistic::Cka {
        1.0
    } else {
        0.0
    };
    let features = cross_flops + selfs * widths.iter().map(|&p| n * (p * p) as f64).sum::<f64>();
    let speed = if f32 { 0.5 } else { 1.0 };
    let gram =
        speed * widths.iter().map(|&p| n * n * p as f64).sum::<f64>() + 2.0 * pairs as f64 * n * n;
    (features, gram)
}

/// The statistic from the inner products of the normalised layers; `exp` is the sum of the
/// two layers' normalisation exponents (the linear HSIC is homogeneous of degree 2 in each
/// argument, so its value is the normalised one times `2^(2 exp)`, applied exactly and last:
/// `inf` only when the value itself exceeds the float64 range).
pub(crate) fn finish(spec: &Spec, n: usize, kl: f64, kk: f64, ll: f64, exp: i64) -> f64 {
    let nf = n as f64;
    let scale = match spec.kernel {
        Kernel::Linear => 2 * exp,
        Kernel::Rbf { .. } => 0,
    };
    match (spec.statistic, spec.estimator) {
        (Statistic::Hsic, Estimator::Biased) => {
            linalg::ldexp(kl / ((nf - 1.0) * (nf - 1.0)), scale)
        }
        (Statistic::Hsic, Estimator::Unbiased) => linalg::ldexp(kl / (nf * (nf - 3.0)), scale),
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
    let all_f32 = a
        .iter()
        .chain(b.unwrap_or(&[]))
        .all(|x| matches!(x, Input::F32(_)));
    let f32_gram = spec.kernel == Kernel::Linear && all_f32;
    let route = match (spec.kernel, spec.route) {
        (Kernel::Rbf { .. }, _) => Route::Gram,
        (Kernel::Linear, Route::Auto) => {
            let (f, g) = route_costs(n, &widths, pairs, cross_flops, spec.statistic, f32_gram);
            if g < f {
                Route::Gram
            } else {
                Route::Features
            }
        }
        (Kernel::Linear, r) => r,
    };
    let f32_gram = f32_gram && route == Route::Gram;
    // Memory pre-flight: a centred float64 copy of every layer, and the tile buffers of the
    // Gram route. The linear Gram route copies only the layers it cannot centre as their
    // tiles are formed (see linalg::Shifted; deciding takes two passes over each layer and no
    // large allocation). The float32 Gram route keeps float32 copies at most, but an entry it
    // cannot certify is recomputed in float64 while they are held: 4 + 8 bytes per value (8
    // for a layer used in place).
    let all_layers = || a.iter().chain(b.unwrap_or(&[]));
    // Float32 layers are used in place only on the (certified) float32 route.
    let shifted: Vec<Option<linalg::Shifted>> =
        if route == Route::Gram && spec.kernel == Kernel::Linear {
            all_layers()
                .map(|&x| match (x, f32_gram) {
                    (Input::F64(_), false) | (Input::F32(_), true) => linalg::Shifted::new(x),
                    _ => None,
                })
                .collect()
        } else {
            Vec::new()
        };
    let copies: f64 = all_layers()
        .enumerate()
        .map(|(k, x)| {
            let per_value = match (f32_gram, matches!(shifted.get(k), Some(Some(_)))) {
                (true, true) => 8.0,
                (true, false) => 12.0,
                (false, true) => 0.0,
                (false, false) => 8.0,
            };
            (x.nrows() * x.ncols()) as f64 * per_value
        })
        .sum();
    let tile_bytes = match route {
        Route::Gram => gram::buffer_bytes(n, la + lb),
        _ => 0.0,
    };
    crate::memory::check_fits(
        copies + tile_bytes,
        &format!(
            "{} of {} layer(s) at n = {n} (centred copies and kernel tiles)",
            spec.statistic.name(),
            la + lb
        ),
        "pass fewer layers per call or subsample the rows; for linear CKA, \
         streaming.MinibatchCKA and streaming.CKAAccumulator work in minibatches",
    )?;
    if let (Route::Features, Statistic::Cka, [x], Some([y])) = (route, spec.statistic, a, b) {
        let (kl, kk, ll) = match (x, y) {
            (Input::F64(x), Input::F64(y)) => joint_pair(*x, *y, spec),
            (Input::F32(x), Input::F32(y)) => joint_pair(*x, *y, spec),
            (Input::F32(x), Input::F64(y)) => joint_pair(*x, *y, spec),
            (Input::F64(x), Input::F32(y)) => joint_pair(*x, *y, spec),
        };
        // joint_pair serves CKA only (scale-invariant): no exponent needed.
        return Ok(Array2::from_elem((1, 1), finish(spec, n, kl, kk, ll, 0)));
    }
    // RBF layers keep their squared distances while the budget lasts, in order, and only if
    // they fit in memory now (otherwise they are streamed again).
    let keep: Vec<bool> = (0..la + lb)
        .map(|k| (k + 1) * PackedLower::bytes(n) <= CACHE_BUDGET)
        .collect();
    let room = crate::memory::budget();
    let keep: Vec<bool> = keep
        .iter()
        .enumerate()
        .map(|(k, &c)| {
            let cached = ((k + 1) * PackedLower::bytes(n)) as f64;
            c && crate::memory::check_fits_within(copies + tile_bytes + cached, room, "", "")
                .is_ok()
        })
        .collect();
    Ok(compute(a, b, spec, route, &keep, f32_gram, shifted))
}

/// The layer matrix on `route` (validated, memory checked), float32 tiles when `f32`.
fn compute<'a>(
    a: &[Input<'a>],
    b: Option<&[Input<'a>]>,
    spec: &Spec,
    route: Route,
    keep: &[bool],
    f32: bool,
    shifted: Vec<Option<linalg::Shifted<'a>>>,
) -> Array2<f64> {
    let la = a.len();
    let n = a[0].nrows();
    let mut shifted = shifted.into_iter();
    let pa: Vec<Prepared> = a
        .iter()
        .zip(keep)
        .map(|(&x, &k)| prepare(x, spec, route, k, f32, shifted.next().flatten()))
        .collect();
    let pb: Option<Vec<Prepared>> = b.map(|b| {
        b.iter()
            .zip(&keep[la..])
            .map(|(&x, &k)| prepare(x, spec, route, k, f32, shifted.next().flatten()))
            .collect()
    });
    let (cross, selfs, raw) = inners(&pa, pb.as_deref(), spec, route);
    let side_b = |j: usize| if b.is_some() { la + j } else { j };
    let exp_b = |j: usize| match &pb {
        Some(pb) => pb[j].exp,
        None => pa[j].exp,
    };
    let mut out = Array2::from_shape_fn(cross.dim(), |(i, j)| {
        let e = i64::from(pa[i].exp) + i64::from(exp_b(j));
        finish(spec, n, cross[[i, j]], selfs[i], selfs[side_b(j)], e)
    });
    if !f32 {
        return out;
    }
    // Certify every entry of the float32 route; recompute the others in float64.
    let all: Vec<&Prepared> = pa.iter().chain(pb.iter().flatten()).collect();
    let stats: Vec<(f64, f64)> = all
        .iter()
        .zip(&raw)
        .map(|(p, &r)| f32_stats(p, r))
        .collect();
    let mut rows = Vec::new();
    let mut cols = Vec::new();
    for ((i, j), _) in out.indexed_iter() {
        let (u, v) = (i, side_b(j));
        let ok = f32_certified(spec, cross[[i, j]], selfs[u], selfs[v], stats[u], stats[v]);
        if !ok {
            rows.push(i);
            cols.push(j);
        }
    }
    if rows.is_empty() {
        return out;
    }
    // Few failures spread over many layers: recompute just those pairs on the feature route
    // (cross product and both self products each) when that is cheaper than the float64 Gram
    // route over every layer involved.
    let width = |k: usize| all[k].xc.ncols() as f64;
    let nf = n as f64;
    let per_pair: f64 = rows
        .iter()
        .zip(&cols)
        .map(|(&i, &j)| {
            let (p, q) = (width(i), width(side_b(j)));
            nf * (2.0 * p * q + p * p + q * q)
        })
        .sum();
    let mut involved: Vec<usize> = rows
        .iter()
        .copied()
        .chain(cols.iter().map(|&j| side_b(j)))
        .collect();
    involved.sort_unstable();
    involved.dedup();
    let sub_gram: f64 = involved.iter().map(|&k| nf * nf * width(k)).sum();
    if per_pair < sub_gram {
        for (&i, &j) in rows.iter().zip(&cols) {
            let y = match b {
                Some(b) => b[j],
                None => a[j],
            };
            let v = compute(
                &[a[i]],
                Some(&[y]),
                spec,
                Route::Features,
                &[false, false],
                false,
                Vec::new(),
            )[[0, 0]];
            out[[i, j]] = v;
        }
        return out;
    }
    let uniq = |v: &mut Vec<usize>| {
        v.sort_unstable();
        v.dedup();
    };
    if let Some(b) = b {
        uniq(&mut rows);
        uniq(&mut cols);
        let sa: Vec<Input> = rows.iter().map(|&i| a[i]).collect();
        let sb: Vec<Input> = cols.iter().map(|&j| b[j]).collect();
        let keep_sub: Vec<bool> = rows
            .iter()
            .map(|&i| keep[i])
            .chain(cols.iter().map(|&j| keep[la + j]))
            .collect();
        let m = compute(&sa, Some(&sb), spec, route, &keep_sub, false, Vec::new());
        for (u, &i) in rows.iter().enumerate() {
            for (v, &j) in cols.iter().enumerate() {
                out[[i, j]] = m[[u, v]];
            }
        }
    } else {
        // Symmetric: one symmetric sub-matrix over every layer involved.
        rows.extend_from_slice(&cols);
        uniq(&mut rows);
        let sub: Vec<Input> = rows.iter().map(|&i| a[i]).collect();
        let keep_sub: Vec<bool> = rows.iter().map(|&i| keep[i]).collect();
        let m = compute(&sub, None, spec, route, &keep_sub, false, Vec::new());
        for (u, &i) in rows.iter().enumerate() {
            for (v, &j) in rows.iter().enumerate() {
                out[[i, j]] = m[[u, v]];
            }
        }
    }
    out
}

/// Unit roundoff of float32.
const U32: f64 = 1.0 / 16_777_216.0;
/// How many standard deviations of the rounding error [`f32_error`] allows for. The
/// deviations themselves are upper bounds built from the largest row norm and entry of each
/// layer, far above the actual errors on typical data (3e-9 relative measured at n = 5000,
/// p = 768, where the estimate gives up to 4e-7).
const F32_LAMBDA: f64 = 2.0;
/// The relative error a float32 entry may have.
const F32_TOL: f64 = 1e-6;

/// A layer's terms of the float32 error estimate: `(sqrt(p) D + 2 m sqrt(F), F)` with `D`
/// the largest squared row norm and `m` the largest absolute entry of the (normalised,
/// centred) features and `F = ||K||_F` (`raw = F^2`). For a layer used in place
/// ([`linalg::Shifted`]) the products are of the rows themselves: `D` is their largest
/// squared norm, and `m = 0` (they are exact, nothing was rounded to float32).
fn f32_stats(p: &Prepared, raw: f64) -> (f64, f64) {
    let Some((_, m)) = p.f32_stats else {
        unreachable!("the float32 route prepares its layers with their statistics")
    };
    let d = match &p.xc {
        Centred::Shifted(s) => s.max_sq,
        _ => p.sq.iter().copied().fold(0.0, f64::max),
    };
    let f = raw.max(0.0).sqrt();
    ((p.xc.ncols() as f64).sqrt() * d + 2.0 * m * f.sqrt(), f)
}

/// Estimated rounding error of `P = <K, L>` computed from float32 tiles.
///
/// Under the standard probabilistic model of rounding (independent, mean-zero relative errors
/// of at most `u = 2^-24`; Higham and Mary 2019), an entry `k_ij` of a float32 Gram tile
/// carries an error of standard deviation at most `u sqrt(p) ||x_i|| ||x_j|| <= u sqrt(p) D`
/// from its accumulation over the `p` features, and rounding the centred features to float32
/// perturbs `P` by at most `2 u max|x| ||K_L||_F ||X||_2 <= 2 u m sqrt(F_K) F_L`; the errors
/// of distinct entries are independent, so the error of `P` has a standard deviation of at
/// most `u (sqrt(p) D ||K_L||_F + ...)`. `F32_LAMBDA` such deviations are allowed for.
fn f32_error(x: (f64, f64), y: (f64, f64)) -> f64 {
    F32_LAMBDA * U32 * (x.0 * y.1 + y.0 * x.1)
}

/// Whether an entry of the float32 route is within [`F32_TOL`] of its float64 value by the
/// estimate [`f32_error`]: `kl`, `kk`, `ll` are the centred inner products.
fn f32_certified(spec: &Spec, kl: f64, kk: f64, ll: f64, x: (f64, f64), y: (f64, f64)) -> bool {
    let e = f32_error(x, y);
    match spec.statistic {
        Statistic::Hsic => kl.is_finite() && e <= F32_TOL * kl.abs(),
        Statistic::Cka => {
            if !(kk > 0.0 && ll > 0.0 && kl.is_finite()) {
                return false;
            }
            let c = kl / (kk.sqrt() * ll.sqrt());
            let err = e / (kk.sqrt() * ll.sqrt())
                + c.abs() * (f32_error(x, x) / (2.0 * kk) + f32_error(y, y) / (2.0 * ll));
            err <= F32_TOL * c.abs()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::in_pool;
    use ndarray::Array2;

    fn pseudo(n: usize, p: usize, seed: u64) -> Array2<f64> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        Array2::from_shape_fn((n, p), |_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        })
    }

    fn spec(kernel: Kernel, estimator: Estimator, statistic: Statistic, route: Route) -> Spec {
        Spec {
            kernel,
            estimator,
            statistic,
            route,
        }
    }

    /// Slow reference: explicit n x n Gram matrices, H K H or U-centring, Frobenius products.
    fn reference(x: &Array2<f64>, y: &Array2<f64>, est: Estimator) -> (f64, f64) {
        let n = x.nrows();
        let centre = |k: Array2<f64>| -> Array2<f64> {
            let nf = n as f64;
            match est {
                Estimator::Biased => {
                    let h = Array2::from_shape_fn((n, n), |(i, j)| {
                        f64::from(u8::from(i == j)) - 1.0 / nf
                    });
                    h.dot(&k).dot(&h)
                }
                Estimator::Unbiased => {
                    let mut k0 = k;
                    k0.diag_mut().fill(0.0);
                    let r = k0.sum_axis(ndarray::Axis(1));
                    let s = r.sum();
                    Array2::from_shape_fn((n, n), |(i, j)| {
                        if i == j {
                            0.0
                        } else {
                            k0[[i, j]] - (r[i] + r[j]) / (nf - 2.0) + s / ((nf - 1.0) * (nf - 2.0))
                        }
                    })
                }
            }
        };
        let (k, l) = (centre(x.dot(&x.t())), centre(y.dot(&y.t())));
        let kl = (&k * &l).sum();
        let nf = n as f64;
        let hsic = match est {
            Estimator::Biased => kl / ((nf - 1.0) * (nf - 1.0)),
            Estimator::Unbiased => kl / (nf * (nf - 3.0)),
        };
        (hsic, kl / ((&k * &k).sum().sqrt() * (&l * &l).sum().sqrt()))
    }

    #[test]
    fn both_linear_routes_match_the_reference_on_random_shapes() {
        for (seed, (n, p1, p2)) in [(5, 3, 2), (9, 12, 4), (40, 7, 30), (64, 3, 3), (130, 20, 9)]
            .into_iter()
            .enumerate()
        {
            let x = pseudo(n, p1, seed as u64) + 3.0;
            let y = pseudo(n, p2, 100 + seed as u64).mapv(|v| v * v) - 1.0;
            for est in [Estimator::Biased, Estimator::Unbiased] {
                let (h_ref, c_ref) = reference(
                    &(&x - &x.mean_axis(ndarray::Axis(0)).unwrap()),
                    &(&y - &y.mean_axis(ndarray::Axis(0)).unwrap()),
                    est,
                );
                for route in [Route::Features, Route::Gram, Route::Auto] {
                    let h = pair(
                        Input::F64(x.view()),
                        Input::F64(y.view()),
                        &spec(Kernel::Linear, est, Statistic::Hsic, route),
                    )
                    .unwrap();
                    let c = pair(
                        Input::F64(x.view()),
                        Input::F64(y.view()),
                        &spec(Kernel::Linear, est, Statistic::Cka, route),
                    )
                    .unwrap();
                    assert!(
                        (h - h_ref).abs() <= 1e-10 * h_ref.abs().max(1e-12),
                        "{n} {est:?} {route:?}: {h} vs {h_ref}"
                    );
                    assert!(
                        (c - c_ref).abs() <= 1e-10,
                        "{n} {est:?} {route:?}: {c} vs {c_ref}"
                    );
                }
            }
        }
    }

    #[test]
    fn cka_of_a_representation_with_itself_and_its_rotation_is_one() {
        let x = pseudo(50, 6, 1);
        // A rotation in the plane of the first two features, plus scaling and translation.
        let (c, s) = (0.6, 0.8);
        let mut y = x.clone();
        for mut row in y.rows_mut() {
            let (a, b) = (row[0], row[1]);
            row[0] = 2.5 * (c * a - s * b) + 7.0;
            row[1] = 2.5 * (s * a + c * b) - 1.0;
            for v in row.iter_mut().skip(2) {
                *v *= 2.5;
            }
        }
        for kernel in [Kernel::Linear, Kernel::Rbf { sigma_frac: 0.8 }] {
            for est in [Estimator::Biased, Estimator::Unbiased] {
                let v = pair(
                    Input::F64(x.view()),
                    Input::F64(y.view()),
                    &spec(kernel, est, Statistic::Cka, Route::Auto),
                )
                .unwrap();
                assert!((v - 1.0).abs() < 1e-12, "{kernel:?} {est:?}: {v}");
            }
        }
    }

    #[test]
    fn symmetric_layer_matrix_equals_the_pairs_and_float32_is_close() {
        let layers: Vec<Array2<f64>> = (0..3).map(|i| pseudo(30, 2 + 3 * i, i as u64)).collect();
        let inputs: Vec<Input> = layers.iter().map(|x| Input::F64(x.view())).collect();
        let layers32: Vec<Array2<f32>> = layers.iter().map(|x| x.mapv(|v| v as f32)).collect();
        let inputs32: Vec<Input> = layers32.iter().map(|x| Input::F32(x.view())).collect();
        for kernel in [Kernel::Linear, Kernel::Rbf { sigma_frac: 1.0 }] {
            let s = spec(kernel, Estimator::Biased, Statistic::Cka, Route::Auto);
            let m = layer_matrix(&inputs, None, &s).unwrap();
            let m32 = layer_matrix(&inputs32, None, &s).unwrap();
            for i in 0..3 {
                for j in 0..3 {
                    let v = pair(inputs[i], inputs[j], &s).unwrap();
                    assert!((m[[i, j]] - v).abs() < 1e-12 && m[[i, j]] == m[[j, i]]);
                    assert!((m32[[i, j]] - v).abs() < 1e-5);
                }
            }
        }
    }

    #[test]
    fn feature_route_products_side_by_side_or_in_turn_give_the_same_bits() {
        // With 1 thread the products of a layer matrix run side by side (one task each);
        // with 8, there are fewer than two per thread and each takes every thread in turn.
        let a: Vec<Array2<f64>> = (0..3)
            .map(|i| pseudo(40, 3 + 2 * i, 20 + i as u64))
            .collect();
        let b: Vec<Array2<f64>> = (0..2)
            .map(|i| pseudo(40, 4 + i, 30 + i as u64) + 2.0)
            .collect();
        let ia: Vec<Input> = a.iter().map(|x| Input::F64(x.view())).collect();
        let ib: Vec<Input> = b.iter().map(|x| Input::F64(x.view())).collect();
        for stat in [Statistic::Cka, Statistic::Hsic] {
            for est in [Estimator::Biased, Estimator::Unbiased] {
                let s = spec(Kernel::Linear, est, stat, Route::Features);
                for other in [None, Some(&ib[..])] {
                    let run = |t| in_pool(t, || layer_matrix(&ia, other, &s).unwrap());
                    let (one, eight) = (run(1), run(8));
                    let bits = |m: &Array2<f64>| m.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(&one), bits(&eight), "{stat:?} {est:?}");
                    let cols = other.unwrap_or(&ia[..]);
                    for (i, &x) in ia.iter().enumerate() {
                        for (j, &y) in cols.iter().enumerate() {
                            let v = pair(x, y, &s).unwrap();
                            let tol = 1e-12 * v.abs().max(1.0);
                            assert!((one[[i, j]] - v).abs() <= tol, "{stat:?} {est:?} {i} {j}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn extreme_magnitudes_follow_the_scaling_laws_exactly() {
        let x = pseudo(40, 5, 3) + 2.0;
        let y = pseudo(40, 3, 4).mapv(|v| v * v);
        for (kernel, est) in [
            (Kernel::Linear, Estimator::Biased),
            (Kernel::Linear, Estimator::Unbiased),
            (Kernel::Rbf { sigma_frac: 1.0 }, Estimator::Unbiased),
        ] {
            let h = spec(kernel, est, Statistic::Hsic, Route::Auto);
            let c = spec(kernel, est, Statistic::Cka, Route::Auto);
            let base_h = pair(Input::F64(x.view()), Input::F64(y.view()), &h).unwrap();
            let base_c = pair(Input::F64(x.view()), Input::F64(y.view()), &c).unwrap();
            for k in [-996i64, -400, 400, 996] {
                let xs = x.mapv(|v| linalg::ldexp(v, k));
                let got_c = pair(Input::F64(xs.view()), Input::F64(y.view()), &c).unwrap();
                assert_eq!(got_c, base_c, "{kernel:?} {est:?} 2^{k}");
                let got_h = pair(Input::F64(xs.view()), Input::F64(y.view()), &h).unwrap();
                let want = match kernel {
                    Kernel::Linear => linalg::ldexp(base_h, 2 * k),
                    Kernel::Rbf { .. } => base_h,
                };
                assert_eq!(got_h, want, "{kernel:?} {est:?} 2^{k}");
            }
        }
        // float32 at 1e20: products would overflow float32; the value is the float64 one.
        let x32 = x.mapv(|v| (v * 1e20) as f32);
        let x64 = x32.mapv(f64::from);
        let c = spec(
            Kernel::Linear,
            Estimator::Biased,
            Statistic::Cka,
            Route::Auto,
        );
        let a = pair(Input::F32(x32.view()), Input::F64(y.view()), &c).unwrap();
        let b = pair(Input::F64(x64.view()), Input::F64(y.view()), &c).unwrap();
        assert_eq!(a, b);
        assert!(a > 0.0);
    }

    #[test]
    fn debiased_cka_of_a_u_centred_zero_matrix_is_nan() {
        // All rows but one identical: Ku is exactly zero; round-off must not make it a value.
        let mut x = Array2::from_elem((6, 3), 0.0);
        for mut r in x.rows_mut().into_iter().take(5) {
            r.assign(&ndarray::array![1.0, 2.0, 3.0]);
        }
        x[[5, 2]] = 1.0;
        let y = pseudo(6, 2, 9);
        for route in [Route::Features, Route::Gram, Route::Auto] {
            let c = spec(Kernel::Linear, Estimator::Unbiased, Statistic::Cka, route);
            let v = pair(Input::F64(x.view()), Input::F64(y.view()), &c).unwrap();
            assert!(v.is_nan(), "{route:?}: {v}");
        }
    }

    #[test]
    fn bad_arguments_are_errors_not_panics() {
        let x = pseudo(10, 2, 1);
        let short = pseudo(9, 2, 2);
        let s = spec(
            Kernel::Linear,
            Estimator::Biased,
            Statistic::Cka,
            Route::Auto,
        );
        assert!(matches!(
            pair(Input::F64(x.view()), Input::F64(short.view()), &s),
            Err(CoreError::Mismatch { .. })
        ));
        let bad = spec(
            Kernel::Rbf { sigma_frac: -1.0 },
            Estimator::Biased,
            Statistic::Cka,
            Route::Auto,
        );
        assert!(matches!(
            pair(Input::F64(x.view()), Input::F64(x.view()), &bad),
            Err(CoreError::Parameter { .. })
        ));
        let tiny = pseudo(3, 2, 3);
        let unb = spec(
            Kernel::Linear,
            Estimator::Unbiased,
            Statistic::Hsic,
            Route::Auto,
        );
        assert!(matches!(
            pair(Input::F64(tiny.view()), Input::F64(tiny.view()), &unb),
            Err(CoreError::Shape { .. })
        ));
        assert!(layer_matrix(&[], None, &s).is_err());
    }
}
