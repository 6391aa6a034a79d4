#!/usr/bin/env python
"""Benchmark congruence's topology measures (imd, rtd, geometry_score) against re-creations of
the published reference implementations.

**The references here are re-creations, not the original code.** The published
implementations (the ``msid`` code of Tsitsulin et al. for IMD, the ``rtd`` package of
Barannikov, Trofimov et al., the ``gs`` package of Khrulkov & Oseledets) are distributed only
as source repositories, not on a package registry this project can install from (the PyPI
packages named ``imd``, ``msid``, ``rtd`` and ``gs`` are unrelated projects), and the RTD code
needs a CUDA build of Ripser++. So each reference below is written anew from its paper and the
published algorithm, with the published default parameters, and calls the same third-party
library as the original wherever that library is on PyPI:

* **IMD** (``ref_msid``): the msid algorithm. A 5-NN graph from the Gram-matrix form of the
  squared distances (the point itself excluded), made symmetric with 0/1 weights; its
  normalized Laplacian as a SciPy sparse matrix; the heat traces ``tr exp(-t L)`` on
  ``t = logspace(-1, 1, 256)`` by stochastic Lanczos quadrature with 10 Lanczos steps and 100
  Gaussian start vectors run together (full reorthogonalisation, two Gram-Schmidt passes),
  with the linear control variate of msid (``tr(-t L) = -t n`` is known exactly); the
  descriptor ``1e6 h(t) / n`` and the score ``max_t exp(-2 (t + 1/t)) |phi_X - phi_Y|``. The
  original finds the neighbours with a Python loop over rows; this one does it for all rows
  at once, so it is faster than the original. It is stochastic: its values scatter around the
  exact ones (congruence computes the exact heat trace from a full eigendecomposition, as
  the definition says); the note under the table gives the difference of the last run.
* **RTD** (``ref_rtd``): the published procedure. For each of 10 trials, the same 500 random
  rows of both sides; their Euclidean distance matrices, each divided by its 0.9-quantile; the
  ``2n x 2n`` matrix ``[[0, D_A^T], [D_A, min(D_A, D_B)]]`` with entries below
  ``1e-6 mean(D_A)`` set to 0; the sum of the degree-1 bar lengths of its Vietoris-Rips
  persistence; the mean of both directions; the mean over the trials. The original runs
  Ripser++ on a GPU; this one runs Ripser (``pip install ripser``, the CPU Ripser of the same
  family, single precision) on the same matrix. The trials use the rows congruence draws with
  the same seed, so the values agree to Ripser's single precision.
* **geometry score** (``ref_geometry_score``): the gs algorithm. For each of 1000 landmark
  sets of 64 rows drawn with replacement: witness-to-landmark distances (``cdist``), each
  witness's landmarks sorted by distance into the nearest-landmark table, GUDHI's
  ``WitnessComplex`` (``pip install gudhi``, as the original) up to dimension 2 with
  ``max_alpha_square = gamma max Dw``, ``gamma = n / (128 * 5000)``, its persistence over Z/2,
  the degree-1 intervals (infinite ones ended at ``alpha_max``) and their relative living
  times, averaged; the score is the squared distance of the two means. The same landmark sets
  as congruence's (same seed) are used, so the values agree exactly.

congruence prepares each layer once (``compare_layers``): imd its heat-trace descriptor,
geometry_score its mean relative living times, rtd its normalised distance matrices (the
cross-barcode itself depends on both sides). The layer cases report the time of an
``L x L`` matrix divided by ``L^2`` next to the references' time per pair; the reference
loop is timed both as published (each pair call recomputes both sides) and with each layer's
descriptor cached by hand (imd, geometry_score).

Timing: the cases run congruence and the reference alternately ``--repeat`` times after one
warm-up and report medians. With one thread the figures are process CPU seconds
(``time.process_time``), robust to other load on a shared machine; with more threads they
are wall seconds, given with the load average (CPU time then counts every thread).

Usage::

    python benches/bench_topology.py --threads 1            # n = 1000 and 2000 (~10 minutes)
    python benches/bench_topology.py --threads 2
    python benches/bench_topology.py --quick                # smoke test, n = 200
    python benches/bench_topology.py --only imd,gs --repeat 5 --json out.json

Cases: ``imd``, ``imd_layers``, ``rtd``, ``gs``, ``gs_layers``.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import sys
import time

import _common

CASES = ("imd", "imd_layers", "rtd", "gs", "gs_layers")
#: Alternating runs per case unless --repeat is given (rtd: ~1.5 min per run).
REPEATS = {"imd": 5, "imd_layers": 5, "rtd": 3, "gs": 5, "gs_layers": 3}
LAYERS = 4


def _parse_args(argv=None):
    ap = argparse.ArgumentParser(description="congruence vs reference re-creations: topology")
    ap.add_argument("--quick", action="store_true", help="n = 200 only (smoke test)")
    ap.add_argument("--only", metavar="NAMES", help="comma-separated cases: " + ", ".join(CASES))
    ap.add_argument("--threads", type=int, default=None, help="threads for both sides")
    ap.add_argument("--repeat", type=int, default=None, help="alternating runs (median kept)")
    ap.add_argument("--p", type=int, default=64, help="columns of every representation (64)")
    ap.add_argument("--json", metavar="OUT", help="also write environment and rows as JSON")
    args = ap.parse_args(argv)
    if args.repeat is not None and args.repeat < 1:
        ap.error("--repeat must be >= 1")
    return _common.finish_args(ap, args, CASES, check_repeat=False, check_threads=True)


ARGS = _parse_args()
THREADS = _common.resolve_threads(ARGS.threads)
_common.set_thread_env(THREADS)

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402
from scipy.spatial.distance import cdist, pdist, squareform  # noqa: E402

import congruence as cg  # noqa: E402

threadpoolctl, _LIMITER = _common.limit_blas(THREADS)


# --------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------


def make_layers(n: int, p: int, L: int):
    """a[l] = 0.8 a[l-1] + 0.6 noise; b[l] = tanh(a[l] W) + 0.3 noise + 0.1."""
    rng = np.random.default_rng(1)
    a = [rng.standard_normal((n, p))]
    for _ in range(L - 1):
        a.append(0.8 * a[-1] + 0.6 * rng.standard_normal((n, p)))
    W = rng.standard_normal((p, p)) / math.sqrt(p)
    b = [np.tanh(x @ W) + 0.3 * rng.standard_normal((n, p)) + 0.1 for x in a]
    return a, b


# --------------------------------------------------------------------------------------
# Reference re-creations (see the module docstring)
# --------------------------------------------------------------------------------------

MSID_TS = np.logspace(-1, 1, 256)


def _msid_laplacian(Z, k=5):
    """Normalized Laplacian (sparse) of the symmetric 0/1 k-NN graph, as msid builds it."""
    n = Z.shape[0]
    sq = np.einsum("ij,ij->i", Z, Z)
    d = sq[None, :] - 2.0 * (Z @ Z.T)  # |x_j|^2 - 2 x_i.x_j: the row's own |x_i|^2 dropped
    np.fill_diagonal(d, np.inf)
    nb = np.argpartition(d, k, axis=1)[:, :k]
    A = sp.csr_matrix((np.ones(n * k), (np.repeat(np.arange(n), k), nb.ravel())), shape=(n, n))
    A = A + A.T
    A.data[:] = 1.0
    s = sp.diags(1.0 / np.sqrt(np.asarray(A.sum(axis=1)).ravel()))
    return sp.identity(n, format="csr") - s @ A @ s


def _lanczos(Lap, m, nv, rng):
    """m Lanczos steps from nv Gaussian start vectors at once: (nv, m, m) tridiagonals."""
    n = Lap.shape[0]
    V = np.zeros((m, n, nv))
    alpha, beta = np.zeros((m, nv)), np.zeros((m - 1, nv))
    v = rng.standard_normal((n, nv))
    V[0] = v / np.linalg.norm(v, axis=0)
    for i in range(m):
        w = Lap @ V[i]
        alpha[i] = np.einsum("ij,ij->j", w, V[i])
        if i == m - 1:
            break
        for _ in range(2):  # full reorthogonalisation against the basis so far
            c = np.einsum("kij,ij->kj", V[: i + 1], w)
            w -= np.einsum("kij,kj->ij", V[: i + 1], c)
        beta[i] = np.linalg.norm(w, axis=0)
        V[i + 1] = w / beta[i]
    T = np.zeros((nv, m, m))
    d = np.arange(m)
    T[:, d, d] = alpha.T
    T[:, d[:-1], d[1:]] = beta.T
    T[:, d[1:], d[:-1]] = beta.T
    return T


def ref_msid_descriptor(Z, rng, m=10, niters=100):
    Lap = _msid_laplacian(Z)
    n = Lap.shape[0]
    ev, evec = np.linalg.eigh(_lanczos(Lap, m, niters, rng))
    weight = evec[:, 0, :] ** 2  # (nv, m): squared first components
    tl = np.multiply.outer(MSID_TS, ev)  # (ts, nv, m)
    tr_exp = n * (np.exp(-tl) * weight).sum(-1).mean(-1)
    tr_lin = n * (-tl * weight).sum(-1).mean(-1)
    est = tr_exp - (tr_lin + MSID_TS * n) / np.exp(MSID_TS)  # control variate: tr(-tL) = -tn
    return 1e6 * est / n


def ref_msid_score(phi_x, phi_y):
    return float(np.max(np.exp(-2.0 * (MSID_TS + 1.0 / MSID_TS)) * np.abs(phi_x - phi_y)))


def ref_msid(X, Y, rng):
    return ref_msid_score(ref_msid_descriptor(X, rng), ref_msid_descriptor(Y, rng))


def _ref_cross_h1(DA, DB):
    from ripser import ripser

    n = DA.shape[0]
    M = np.zeros((2 * n, 2 * n))
    M[n:, :n] = DA
    M[:n, n:] = DA.T
    M[n:, n:] = np.minimum(DA, DB)
    M[M < 1e-6 * DA.mean()] = 0.0
    bars = ripser(M, distance_matrix=True, maxdim=1)["dgms"][1]
    return float(np.sum(bars[:, 1] - bars[:, 0]))


def ref_rtd(X, Y, subsets):
    total = 0.0
    for rows in subsets:
        DA = squareform(pdist(X[rows]))
        DB = squareform(pdist(Y[rows]))
        DA /= np.quantile(DA, 0.9)
        DB /= np.quantile(DB, 0.9)
        total += (_ref_cross_h1(DA, DB) + _ref_cross_h1(DB, DA)) / 2.0
    return total / len(subsets)


def _rtd_subsets(n, max_points=500, trials=10, seed=0):
    """The rows congruence's rtd draws for this seed (the reference gets the same ones)."""
    if n <= max_points:
        return [np.arange(n)]
    rng = np.random.default_rng(seed)
    return [np.sort(rng.choice(n, size=max_points, replace=False)) for _ in range(trials)]


def _ref_rlt(intervals, alpha_max, i_max):
    bars = [(b, alpha_max if math.isinf(d) else d) for b, d in intervals]
    rlt = np.zeros(i_max)
    if not bars:
        rlt[0] = 1.0
        return rlt
    ends = np.unique(np.array(bars + [(0.0, alpha_max)]).ravel())
    for lo, hi in zip(ends[:-1], ends[1:]):
        mid = (lo + hi) / 2.0
        c = sum(1 for b, d in bars if b <= mid < d)
        if c < i_max:
            rlt[c] += hi - lo
    return rlt / alpha_max


def ref_mrlt(R, landmarks, gamma, i_max=100):
    import gudhi

    total = np.zeros(i_max)
    for idx in landmarks:
        D = cdist(R, R[idx])
        alpha_max = gamma * float(D.max())
        order = np.argsort(D, axis=1)
        table = np.dstack([order, np.take_along_axis(D, order, axis=1)])
        st = gudhi.WitnessComplex(nearest_landmark_table=table).create_simplex_tree(
            max_alpha_square=alpha_max, limit_dimension=2
        )
        st.persistence(homology_coeff_field=2)
        total += _ref_rlt(st.persistence_intervals_in_dimension(1), alpha_max, i_max)
    return total / landmarks.shape[0]


def ref_geometry_score(X, Y, landmarks, gamma):
    d = ref_mrlt(X, landmarks, gamma) - ref_mrlt(Y, landmarks, gamma)
    return float(np.sum(d * d))


# --------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------


CLOCK = "cpu" if THREADS == 1 else "wall"


def alternate(fns: dict, k: int) -> dict:
    """One warm-up, then k alternating timed runs of each callable (``_common.alternating``
    in CPU seconds with one thread, wall seconds otherwise): per name, the list of seconds
    under ``CLOCK`` and the last value."""
    _, values, runs = _common.alternating(fns, k, clock=CLOCK)
    return {name: {CLOCK: runs[name], "value": values[name]} for name in fns}


def summarise(case, n, p, ours, refs, *, per_ours=1.0, per_ref=None, note=""):
    """Rows ``ours vs each reference``: median seconds per pair and the median (min-max) of
    the per-run ratios reference / ours."""
    rows = []
    t_ours = [t / per_ours for t in ours[CLOCK]]
    for label, (res, per) in refs.items():
        t_ref = [t / per for t in res[CLOCK]]
        ratios = [r / o for r, o in zip(t_ref, t_ours)]
        rows.append(
            dict(
                case=case,
                reference=label,
                n=n,
                p=p,
                threads=THREADS,
                clock=CLOCK,
                ours=statistics.median(t_ours),
                ref=statistics.median(t_ref),
                ratio=statistics.median(ratios),
                ratio_min=min(ratios),
                ratio_max=max(ratios),
                runs=len(ratios),
                note=note,
                load=_common.loadavg(),
            )
        )
    return rows


def _rel(a, b):
    return abs(a - b) / max(abs(b), 1e-300)


def case_imd(n, p, k):
    X, Y = _common.make_pair(n, p, "tanh")
    rng = np.random.default_rng(7)
    res = alternate({"ours": lambda: cg.imd(X, Y), "ref": lambda: ref_msid(X, Y, rng)}, k)
    diff = _rel(res["ref"]["value"], res["ours"]["value"])
    return summarise(
        "imd",
        n,
        p,
        res["ours"],
        {"msid (SLQ)": (res["ref"], 1.0)},
        note=f"exact vs SLQ: values differ by {diff:.1%}",
    )


def case_imd_layers(n, p, k):
    a, b = make_layers(n, p, LAYERS)
    rng = np.random.default_rng(7)
    pairs = LAYERS * LAYERS

    def ref_loop():
        return [ref_msid(x, y, rng) for x in a for y in b]

    def ref_cached():
        pa = [ref_msid_descriptor(x, rng) for x in a]
        pb = [ref_msid_descriptor(y, rng) for y in b]
        return [ref_msid_score(u, v) for u in pa for v in pb]

    res = alternate(
        {
            "ours": lambda: cg.compare_layers(a, b, "imd", progress=False),
            "loop": ref_loop,
            "cached": ref_cached,
        },
        k,
    )
    return summarise(
        f"imd {LAYERS}x{LAYERS} layers, per pair",
        n,
        p,
        res["ours"],
        {
            "msid per pair call": (res["loop"], pairs),
            "msid, descriptors cached": (res["cached"], pairs),
        },
        per_ours=pairs,
    )


def case_rtd(n, p, k):
    X, Y = _common.make_pair(n, p, "tanh")
    subsets = _rtd_subsets(n)
    res = alternate(
        {"ours": lambda: cg.rtd(X, Y, seed=0), "ref": lambda: ref_rtd(X, Y, subsets)}, k
    )
    diff = _rel(res["ref"]["value"], res["ours"]["value"])
    return summarise(
        "rtd",
        n,
        p,
        res["ours"],
        {"RTD (Ripser, float32)": (res["ref"], 1.0)},
        note=f"same subsets: values differ by {diff:.1e} (relative)",
    )


def _gs_landmarks(n, n_samples=1000, n_landmarks=64, seed=0):
    return np.random.default_rng(seed).integers(0, n, size=(n_samples, n_landmarks))


def case_gs(n, p, k):
    X, Y = _common.make_pair(n, p, "tanh")
    idx = _gs_landmarks(n)
    gamma = n / (128 * 5000)
    res = alternate(
        {
            "ours": lambda: cg.geometry_score(X, Y, seed=0),
            "ref": lambda: ref_geometry_score(X, Y, idx, gamma),
        },
        k,
    )
    diff = abs(res["ref"]["value"] - res["ours"]["value"])
    return summarise(
        "geometry_score",
        n,
        p,
        res["ours"],
        {"gs (GUDHI witness complex)": (res["ref"], 1.0)},
        note=f"same landmark sets: |diff| = {diff:.1e}",
    )


def case_gs_layers(n, p, k):
    a, b = make_layers(n, p, LAYERS)
    idx = _gs_landmarks(n)
    gamma = n / (128 * 5000)
    pairs = LAYERS * LAYERS

    def ref_cached():
        pa = [ref_mrlt(x, idx, gamma) for x in a]
        pb = [ref_mrlt(y, idx, gamma) for y in b]
        return [float(np.sum((u - v) ** 2)) for u in pa for v in pb]

    res = alternate(
        {
            "ours": lambda: cg.compare_layers(a, b, "geometry_score", seed=0, progress=False),
            "cached": ref_cached,
        },
        k,
    )
    # The published loop (each pair call recomputes both sides) costs one pair call per pair:
    # timed once on the first pair rather than 16 times.
    single = alternate({"pair": lambda: ref_geometry_score(a[0], b[0], idx, gamma)}, 1)["pair"]
    return summarise(
        f"geometry_score {LAYERS}x{LAYERS} layers, per pair",
        n,
        p,
        res["ours"],
        {
            "gs per pair call (1 pair timed)": ({CLOCK: single[CLOCK] * k}, 1.0),
            "gs, MRLTs cached": (res["cached"], pairs),
        },
        per_ours=pairs,
    )


RUNNERS = {
    "imd": case_imd,
    "imd_layers": case_imd_layers,
    "rtd": case_rtd,
    "gs": case_gs,
    "gs_layers": case_gs_layers,
}
#: Sizes per case: the references' defaults at n = 1000, and n = 2000 where cheap.
SIZES = {
    "imd": (1000, 2000),
    "imd_layers": (1000,),
    "rtd": (1000,),
    "gs": (1000, 2000),
    "gs_layers": (1000,),
}


def main() -> int:
    t_all = time.perf_counter()
    env = dict(
        python=platform.python_version(),
        numpy=np.__version__,
        congruence=getattr(cg, "__version__", "?"),
        cpu_count=os.cpu_count(),
        affinity=_common.affinity(),
        threads=THREADS,
        clock=CLOCK,
        load_before=_common.loadavg(),
    )
    print(f"# topology benchmark: {env}")

    def runner(name):
        k = ARGS.repeat or REPEATS[name]
        rows = []
        for n in (200,) if ARGS.quick else SIZES[name]:
            rows.extend(RUNNERS[name](n, ARGS.p, k))
        return rows

    rows, failed = _common.run_cases(ARGS.only, runner, report_failures=True)
    body = [
        [
            r["case"],
            r["reference"],
            str(r["n"]),
            str(r["p"]),
            str(r["threads"]),
            "float64",
            f"{r['ours']:.3f}",
            f"{r['ref']:.3f}",
            f"{r['ratio']:.2f} ({r['ratio_min']:.2f}-{r['ratio_max']:.2f})",
            str(r["runs"]),
            " ".join(f"{x:.1f}" for x in r["load"] or []),
        ]
        for r in rows
    ]
    cols = ["case", "reference", "n", "p", "thr", "dtype", f"ours {CLOCK} s", f"ref {CLOCK} s",
            "ref/ours", "runs", "load"]  # fmt: skip
    lines = _common.format_table(cols, body, numeric=(2, 3, 4, 6, 7, 9))
    lines += [f"  {r['case']} n={r['n']}: {r['note']}" for r in rows if r["note"]]
    return _common.finish_report(lines, failed, t_all, ARGS.json, env, rows)


if __name__ == "__main__":
    sys.exit(main())
