#!/usr/bin/env python
"""Benchmark congruence's CCA measures (cca, svcca, pwcca) against straightforward SciPy.

Each case runs congruence and a straightforward SciPy implementation of the same definition
side by side in the same process with the same BLAS thread count, and reports the best of k
timed repetitions (after one warm-up; the repetitions alternate ours / reference), the speed
ratio and the absolute difference of the values.

The references (MEASURES.md section 2, written plainly with scipy.linalg):

* ``cca``: centre, economic QR of both centred matrices, singular values of ``Qx^T Qy``, mean.
* ``svcca``: centre, thin SVD of both centred matrices (gesdd), keep ``k`` components
  (99 % of the variance), scores ``U_k S_k``, then the ``cca`` reference on the scores.
* ``pwcca``: the seven steps of the spec: covariance blocks, ``S^{-1/2}`` by ``eigh``, full
  SVD of ``M``, directions ``Z W``, economic QR of the directions, ``|P^T Z|`` row sums.

Usage::

    python benches/bench_cca.py                  # full sizes: n=5000 p=768, n=20000 p=1024
    python benches/bench_cca.py --quick          # smoke test (n / 5, p / 4)
    python benches/bench_cca.py --only cca,pwcca --threads 2 --repeat 5

On a machine shared with other jobs, 2 BLAS threads can be many times slower than 1 (the
threads wait for each other); ``--threads 1`` then gives the more meaningful ratios.

    python benches/bench_cca.py --layers --threads 2   # also the layer matrices

Target (full sizes): congruence >= 2x faster than the reference for every case.

``--layers`` adds the layer matrices (median of ``--repeat`` alternating runs, at least 3):

* svcca and pwcca, 8 x 8 layers at n=5000, p=512, against a SciPy loop that decomposes each
  layer once (svcca: thin SVD of the centred layer, kept components; pwcca: centred layer and
  ``S^{-1/2}`` by ``eigh``) and then runs the pair steps; and against the *GEMM bound*: the
  BLAS products any such route needs (each layer's Gram block, every cross product
  ``X_c^T Y_c``, the latter as one product of the stacked layers), timed in the same run.
  Target (DECISIONS 7): >= 1.5x the loop, or >= 80% of the GEMM bound.
* cca: ``time(L x L) / time(one pair)`` for L = 4, 8 (n=5000, p=512): with each layer
  prepared once it grows like the number of cells times the pair step, far below ``L^2``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys

import _common

MEASURES = ("cca", "svcca", "pwcca")
SIZES = ((5000, 768), (20000, 1024))
QUICK_N_DIV, QUICK_P_DIV = 5, 4
TARGET = 2.0


def _parse_args(argv=None):
    ap = argparse.ArgumentParser(description="congruence vs SciPy: CCA measures benchmark")
    ap.add_argument(
        "--quick",
        action="store_true",
        help=f"divide n by {QUICK_N_DIV} and p by {QUICK_P_DIV} (smoke test)",
    )
    ap.add_argument(
        "--only", metavar="NAMES", help="comma-separated subset of: " + ", ".join(MEASURES)
    )
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="BLAS threads for both sides (default: $OPENBLAS_NUM_THREADS, else os.cpu_count())",
    )
    ap.add_argument(
        "--layers",
        action="store_true",
        help="also the layer matrices: svcca / pwcca 8 x 8 against a SciPy loop with each "
        "layer's decomposition cached and the GEMM bound, and time(L x L) / time(one pair) of cca",
    )
    ap.add_argument(
        "--skip-pairs", action="store_true", help="with --layers: only the layer matrices"
    )
    ap.add_argument(
        "--repeat",
        type=int,
        default=None,
        help="timed repetitions, best kept (default 3; 1 with --quick)",
    )
    return ap.parse_args(argv)


ARGS = _parse_args()
REPEAT = ARGS.repeat if ARGS.repeat is not None else (1 if ARGS.quick else 3)
THREADS = _common.resolve_threads(ARGS.threads or None, ("OPENBLAS_NUM_THREADS",))
_common.set_thread_env(THREADS)

import numpy as np  # noqa: E402  (after the thread variables)
import scipy  # noqa: E402
import scipy.linalg as la  # noqa: E402

import congruence  # noqa: E402
from congruence.measures.cca import cca, pwcca, svcca  # noqa: E402

threadpoolctl, _LIMITER = _common.limit_blas(THREADS, user_api=None)


# ------------------------------------------------------------------------------ references


def _centre(X):
    return X - X.mean(axis=0)


def ref_cca(X, Y):
    Qx = la.qr(_centre(X), mode="economic")[0]
    Qy = la.qr(_centre(Y), mode="economic")[0]
    return float(np.mean(la.svd(Qx.T @ Qy, compute_uv=False)))


def _scores(X, variance):
    U, s, _ = la.svd(_centre(X), full_matrices=False)
    frac = np.cumsum(s**2) / np.sum(s**2)
    k = int(np.argmax(frac >= variance)) + 1 if variance < 1 else len(s)
    return U[:, :k] * s[:k]


def ref_svcca(X, Y, variance=0.99):
    return ref_cca(_scores(X, variance), _scores(Y, variance))


def _inv_sqrt(S):
    w, V = la.eigh(S)
    return (V / np.sqrt(w)) @ V.T


def ref_pwcca(X, Y):
    Xc, Yc = _centre(X), _centre(Y)
    n = X.shape[0]
    Sxx, Syy, Sxy = Xc.T @ Xc / (n - 1), Yc.T @ Yc / (n - 1), Xc.T @ Yc / (n - 1)
    U, rho, Vt = la.svd(_inv_sqrt(Sxx) @ Sxy @ _inv_sqrt(Syy))
    Z, W = (Xc, U) if X.shape[1] <= Y.shape[1] else (Yc, Vt.T)
    P = la.qr(Z @ W, mode="economic")[0]
    a = np.abs(P.T @ Z).sum(axis=1)
    return float(np.dot(a / a.sum(), rho[: len(a)]))


BLAS_KEYS = ("internal_api", "version", "architecture", "num_threads")
REFS = {"cca": ref_cca, "svcca": ref_svcca, "pwcca": ref_pwcca}
OURS = {"cca": cca, "svcca": svcca, "pwcca": pwcca}


# ------------------------------------------------------------------------------ timing


def _data(n, p):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, p)) + rng.uniform(-3, 3, p)
    Y = X @ (rng.standard_normal((p, p)) / np.sqrt(p)) + 0.5 * rng.standard_normal((n, p))
    return X, Y


# ------------------------------------------------------------------------------ layer matrices

LAYER_N, LAYER_P, LAYER_L = 5000, 512, 8


def _layer_set(n, p, L, seed):
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((n, p))
    out = {}
    for i in range(L):
        mix = rng.standard_normal((p, p)) / np.sqrt(p)
        out[f"h{i}"] = np.tanh(base @ mix) + 0.3 * rng.standard_normal((n, p))
    return out


def _ref_svcca_matrix(a, b, variance=0.99):
    ua = [la.svd(_centre(x), full_matrices=False)[0:2] for x in a.values()]
    ub = [la.svd(_centre(y), full_matrices=False)[0:2] for y in b.values()]

    def basis(us):
        U, s = us
        frac = np.cumsum(s**2) / np.sum(s**2)
        return U[:, : int(np.argmax(frac >= variance)) + 1]

    qa, qb = [basis(u) for u in ua], [basis(u) for u in ub]
    return np.array([[np.mean(la.svd(x.T @ y, compute_uv=False)) for y in qb] for x in qa])


def _ref_pwcca_matrix(a, b):
    def prep(x):
        xc = _centre(x)
        return xc, _inv_sqrt(xc.T @ xc / (x.shape[0] - 1))

    pa, pb = [prep(x) for x in a.values()], [prep(y) for y in b.values()]

    def pair(u, v):
        (Xc, Sx), (Yc, Sy) = u, v
        n = Xc.shape[0]
        U, rho, Vt = la.svd(Sx @ (Xc.T @ Yc / (n - 1)) @ Sy)
        Z, W = (Xc, U) if Xc.shape[1] <= Yc.shape[1] else (Yc, Vt.T)
        P = la.qr(Z @ W, mode="economic")[0]
        w = np.abs(P.T @ Z).sum(axis=1)
        return float(np.dot(w / w.sum(), rho[: len(w)]))

    return np.array([[pair(u, v) for v in pb] for u in pa])


def _gemm_bound(a, b):
    """The BLAS products of a layer matrix: each layer's Gram block and all cross products
    (one product of the stacked centred layers)."""
    A = np.hstack([_centre(x) for x in a.values()])
    B = np.hstack([_centre(y) for y in b.values()])
    for x in list(a.values()) + list(b.values()):
        xc = _centre(x)
        xc.T @ xc
    return A.T @ B


def layers_main():
    repeat = max(3, REPEAT)
    n, p, L = LAYER_N, LAYER_P, LAYER_L
    if ARGS.quick:
        n, p = n // QUICK_N_DIV, p // QUICK_P_DIV
    a, b = _layer_set(n, p, L, 1), _layer_set(n, p, L, 2)
    print(f"\nlayer matrices {L} x {L}, n={n}, p={p}, median of {repeat} alternating runs")
    head = (
        f"{'case':10} {'ours s':>8} {'loop s':>8} {'gemm s':>8} {'loop/ours':>9} "
        f"{'gemm/ours':>9} {'|diff|':>9}"
    )
    print(head)
    print("-" * len(head))
    refs = {"svcca": _ref_svcca_matrix, "pwcca": _ref_pwcca_matrix}
    for name in ("svcca", "pwcca"):
        med, v, runs = _common.alternating(
            {
                "ours": lambda: congruence.compare_layers(a, b, name, progress=False).values,
                "loop": lambda: refs[name](a, b),
                "gemm": lambda: _gemm_bound(a, b),
            },
            repeat,
        )
        diff = float(np.max(np.abs(v["ours"] - v["loop"])))
        print(
            f"{name + ' 8x8':10} {med['ours']:8.2f} {med['loop']:8.2f} {med['gemm']:8.2f} "
            f"{med['loop'] / med['ours']:9.2f} {med['gemm'] / med['ours']:9.2f} {diff:9.1e}"
            "  (loop/ours per run %.2f-%.2f)" % _common.ratio_spread(runs, "ours", "loop")
        )
        sys.stdout.flush()
    x, y = a["h0"], b["h0"]
    for Ls in (4, 8):
        sa = dict(list(a.items())[:Ls])
        sb = dict(list(b.items())[:Ls])
        med, _, _ = _common.alternating(
            {
                "pair": lambda: cca(x, y),
                "matrix": lambda: congruence.compare_layers(sa, sb, "cca", progress=False),
            },
            repeat,
        )
        print(
            f"cca {Ls} x {Ls}: matrix {med['matrix']:.2f} s, one pair {med['pair']:.2f} s, "
            f"ratio {med['matrix'] / med['pair']:.1f} ({Ls * Ls} cells)"
        )
        sys.stdout.flush()


def main():
    try:
        names = _common.select_cases(ARGS.only, MEASURES)
    except ValueError as exc:
        sys.exit(str(exc))
    print(
        f"python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}, "
        f"congruence {getattr(congruence, '__version__', '?')}"
    )
    print(
        f"cpu_count {os.cpu_count()}, threads {THREADS}, load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    for info in _common.blas_info(threadpoolctl, BLAS_KEYS) or ():
        print(
            f"  {info['internal_api']} {info['version']} "
            f"({info['architecture']}), {info['num_threads']} threads"
        )
    if ARGS.quick:
        print(f"--quick: n / {QUICK_N_DIV}, p / {QUICK_P_DIV} (the target is meant for full sizes)")
    head = (
        f"{'case':7} {'n':>6} {'p':>5} {'dtype':>7} {'thr':>3} {'ours s':>8} {'ref s':>8} "
        f"{'ref/ours':>8} {'|diff|':>9} {'target':>6} {'ok':>3}"
    )
    print(head)
    print("-" * len(head))
    failed = False
    for n, p in () if ARGS.skip_pairs else SIZES:
        if ARGS.quick:
            n, p = n // QUICK_N_DIV, p // QUICK_P_DIV
        X, Y = _data(n, p)
        for name in names:
            try:
                t, v = _common.timed(
                    {"ours": lambda: OURS[name](X, Y), "ref": lambda: REFS[name](X, Y)}, REPEAT
                )
                va, vb, ta, tb = v["ours"], v["ref"], t["ours"], t["ref"]
            except Exception as exc:  # report and continue with the other cases
                failed = True
                print(f"{name:7} {n:>6} {p:>5} float64 {THREADS:>3}  ERROR {exc!r}")
                continue
            ratio = tb / ta
            ok = "yes" if ratio >= TARGET else "no"
            print(
                f"{name:7} {n:>6} {p:>5} {'float64':>7} {THREADS:>3} {ta:8.3f} {tb:8.3f} "
                f"{ratio:8.2f} {abs(va - vb):9.2e} {TARGET:>5.1f}x {ok:>3}"
            )
            sys.stdout.flush()
    if ARGS.layers:
        layers_main()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
