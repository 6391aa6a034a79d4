#!/usr/bin/env python
"""Benchmark congruence's permutation tests against NumPy / SciPy references.

Every case runs 1,000 permutations drawn once (``congruence.inference.permutations``), so
congruence and the references compute the null on the same permutations, with the same thread
count (Rayon for congruence, BLAS for NumPy).

Cases and references (each precomputes everything it can; where two are allowed, the faster
one sets the ratio):

* ``linear_cka`` (n=2000, p=256): ``permutation_test(X, Y, "cka")`` against (a) centred
  features, ``||Xc^T Yc[pi]||_F^2`` per permutation (one GEMM), and (b) centred Gram matrices,
  ``sum(Kc * Lc[pi][:, pi])``.
* ``rbf_cka`` (n=2000, p=64): RBF CKA against centred RBF kernel matrices (median-distance
  bandwidth) re-indexed per permutation.
* ``layers_6x6`` (six layers on each side, n=2000, p=256, linear CKA):
  ``compare_layers(a, b, permutations=1000)`` against precomputed centred Gram matrices, each
  column layer's Gram permuted once per permutation and its inner products with the six row
  layers' taken in one product.
* ``rsa`` (n=1000): ``permutation_test(X, Y, "rsa")`` against SciPy with each RSM (correlation
  distance, ``pdist``) ranked once (``rankdata``); a permutation re-indexes the square rank
  matrix and takes the Pearson correlation of the upper triangles (Spearman's rho).

The slow references can be timed on the first ``--ref-perms`` permutations only and their time
scaled to the full count (the table says so); their null values are then compared with
congruence's on those permutations, and the p-values are compared when the reference ran all
permutations. Timing: congruence and each reference run alternately ``--repeat`` times (5;
after one untimed warm-up, except for the long 6 x 6 case), and the medians are kept; the
table gives the median ratio and its range over the runs.

Usage::

    python benches/bench_inference.py --threads 2
    python benches/bench_inference.py --quick            # n / 4, 100 permutations
    python benches/bench_inference.py --only rsa --ref-perms 1000
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import _common

# ref_perms: permutations the slow references run by default (their time scaled to 1,000).
CASES = {
    "linear_cka": dict(n=2000, p=256, target=3.0, ref_perms=1000),
    "rbf_cka": dict(n=2000, p=64, target=3.0, ref_perms=100),
    "layers_6x6": dict(n=2000, p=256, target=3.0, ref_perms=20),
    "rsa": dict(n=1000, p=64, target=5.0, ref_perms=1000),
}
N_PERM = 1000


def _parse_args(argv=None):
    ap = argparse.ArgumentParser(description="congruence vs NumPy: permutation-test benchmark")
    ap.add_argument("--quick", action="store_true", help="n / 4 and 100 permutations")
    ap.add_argument("--only", metavar="NAME", help="comma-separated cases: " + ", ".join(CASES))
    ap.add_argument("--threads", type=int, default=None, help="threads for every side")
    ap.add_argument(
        "--repeat",
        type=int,
        default=5,
        help="alternating timed runs (ours, reference, ours, ...); the median is kept (5)",
    )
    ap.add_argument(
        "--ref-perms",
        type=int,
        default=None,
        help="permutations the references run, their time scaled to the full count (default "
        "per case: 1000 for linear_cka and rsa, 100 for rbf_cka, 20 for layers_6x6; the full "
        "count compares the p-values too)",
    )
    ap.add_argument("--json", metavar="OUT", help="also write environment and rows as JSON")
    return _common.finish_args(ap, ap.parse_args(argv), CASES, check_threads=True)


ARGS = _parse_args()
THREADS = _common.resolve_threads(ARGS.threads)
_BEFORE = _common.set_thread_env(THREADS)

import numpy as np  # noqa: E402
import scipy  # noqa: E402
from scipy.spatial.distance import pdist  # noqa: E402
from scipy.stats import rankdata  # noqa: E402

import congruence as cg  # noqa: E402
from congruence.inference import permutations, pvalue  # noqa: E402

threadpoolctl, _LIMITER = _common.limit_blas(THREADS)


def data(n: int, p: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p))
    Y = np.tanh(X @ rng.standard_normal((p, p)) / np.sqrt(p)) + rng.standard_normal((n, p))
    return X, Y


def centre(a):
    return a - a.mean(axis=0)


def gram_centre(K):
    r = K.mean(axis=1)
    return K - r[:, None] - r[None, :] + r.mean()


def rbf_centred(X):
    sq = np.einsum("ij,ij->i", X, X)
    D2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * X @ X.T, 0.0)
    np.fill_diagonal(D2, 0.0)
    return gram_centre(np.exp(-D2 / (2.0 * np.median(D2))))


def ref_features(X, Y, perms):
    Xc, Yc = centre(X), centre(Y)
    den = np.linalg.norm(Xc.T @ Xc) * np.linalg.norm(Yc.T @ Yc)
    return np.array([np.sum((Xc.T @ Yc[p]) ** 2) / den for p in perms])


def ref_gram(Kc, Lc, perms):
    den = np.linalg.norm(Kc) * np.linalg.norm(Lc)
    return np.array([np.sum(Kc * Lc[p][:, p]) / den for p in perms])


def ref_layers(Ka, Lb, perms):
    """null[k, i, j] for every permutation: the six column Grams permuted once each."""
    A = np.stack([K.ravel() for K in Ka])
    na = np.linalg.norm(A, axis=1)
    nb = np.array([np.linalg.norm(L) for L in Lb])
    out = np.empty((len(perms), len(Ka), len(Lb)))
    for k, p in enumerate(perms):
        B = np.stack([L[p][:, p].ravel() for L in Lb])
        out[k] = (A @ B.T) / np.outer(na, nb)
    return out


def ref_rsa(X, Y, perms):
    n = len(X)
    iu = np.triu_indices(n, 1)
    rx = rankdata(pdist(X, "correlation"))
    ry = np.zeros((n, n))
    ry[iu] = rankdata(pdist(Y, "correlation"))
    ry += ry.T
    rxc = rx - rx.mean()
    out = []
    for p in perms:
        v = ry[p][:, p][iu]
        v = v - v.mean()
        out.append(float(rxc @ v / np.sqrt((rxc @ rxc) * (v @ v))))
    return np.array(out)


def run_case(name: str) -> list:
    spec = CASES[name]
    n, p, N = spec["n"], spec["p"], N_PERM
    if ARGS.quick:
        n, N = n // 4, 100
    k = min(ARGS.ref_perms or spec["ref_perms"], N)
    perms = permutations(n, N, seed=0)
    rows = []

    def row(ref, k, runs, ours_null, ref_null, p_ours, p_ref):
        scale = np.max(np.abs(ours_null)) or 1.0
        diff = float(np.max(np.abs(np.asarray(ours_null)[:k] - ref_null[:k])) / scale)
        ours_s = float(np.median(runs["ours"]))
        ref_s = float(np.median(runs["ref"])) * N / k
        ratio = ref_s / ours_s
        lo, hi = _common.ratio_spread(runs, "ours", "ref")
        same_p = None if p_ref is None else bool(p_ours == p_ref)
        rows.append(
            dict(
                case=name,
                vs=ref + ("" if k == N else f" (timed on {k}, scaled)"),
                n=n,
                p=p,
                perms=N,
                threads=THREADS,
                ours_s=ours_s,
                ref_s=ref_s,
                ratio=ratio,
                spread=(lo * N / k, hi * N / k),
                null_rel_diff=diff,
                pvalue=p_ours,
                same_p=same_p,
                target=f">={spec['target']:.0f}x",
                ok=bool(ratio >= spec["target"] and diff < 1e-9 and same_p is not False),
            )
        )

    if name in ("linear_cka", "rbf_cka", "rsa"):
        X, Y = data(n, p)
        measure, params = {
            "linear_cka": ("cka", {}),
            "rbf_cka": ("cka", {"kernel": "rbf"}),
            "rsa": ("rsa", {}),
        }[name]

        def ours():
            return cg.permutation_test(X, Y, measure, n_permutations=N, seed=0, **params)

        refs = {}  # label -> (null of the first q permutations, q)
        if name == "linear_cka":
            refs["numpy centred features"] = (lambda q: ref_features(X, Y, q), k)
            Kc, Lc = centre(X) @ centre(X).T, centre(Y) @ centre(Y).T
            # the slowest reference: 100 permutations unless --ref-perms says fewer
            refs["numpy centred Gram re-indexed"] = (lambda q: ref_gram(Kc, Lc, q), min(k, 100))
        elif name == "rbf_cka":
            Kc, Lc = rbf_centred(X), rbf_centred(Y)
            refs["numpy centred RBF kernels re-indexed"] = (lambda q: ref_gram(Kc, Lc, q), k)
        else:
            refs["scipy ranks once, re-indexed"] = (lambda q: ref_rsa(X, Y, q), k)
        for label, (fn, kk) in refs.items():
            _, v, runs = _common.alternating(
                {"ours": ours, "ref": lambda: fn(perms[:kk])}, ARGS.repeat
            )
            res, ref_null = v["ours"], v["ref"]
            p_ref = pvalue(res.statistic, ref_null, res.alternative) if kk == N else None
            row(label, kk, runs, res.null, ref_null, res.pvalue, p_ref)
        return rows

    # layers_6x6
    rng = np.random.default_rng(1)
    base = rng.standard_normal((n, p))
    a = {f"a{i}": np.tanh(base @ rng.standard_normal((p, p)) / np.sqrt(p)) for i in range(6)}
    b = {f"b{i}": a[f"a{i}"] + rng.standard_normal((n, p)) for i in range(6)}
    Ka = [centre(x) @ centre(x).T for x in a.values()]
    Lb = [centre(y) @ centre(y).T for y in b.values()]
    _, v, runs = _common.alternating(
        {
            "ours": lambda: cg.compare_layers(a, b, "cka", permutations=N, seed=0, progress=False),
            "ref": lambda: ref_layers(Ka, Lb, perms[:k]),
        },
        ARGS.repeat,
        warmup=False,
    )
    res, ref_null = v["ours"], v["ref"]
    ref_p = None
    if k == N:
        ref_p = np.array(
            [
                [pvalue(res.values[i, j], ref_null[:, i, j], "greater") for j in range(6)]
                for i in range(6)
            ]
        )
    # congruence's null of one cell, for the value check (the same permutations)
    m = cg.get_measure("cka")
    cell = m.permuted(m.prepare(a["a0"]), m.prepare(b["b1"]), perms[:k])
    row(
        "numpy centred Grams, permuted once per permutation",
        k,
        runs,
        cell,
        ref_null[:, 0, 1],
        float(res.pvalues.sum()),
        None if ref_p is None else float(ref_p.sum()),
    )
    return rows


def main() -> int:
    t_all = time.perf_counter()
    env = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "congruence": getattr(cg, "__version__", "?"),
        "cpu_count": os.cpu_count(),
        "affinity": _common.affinity(),
        "loadavg": _common.loadavg(),
        "threads": THREADS,
        "quick": ARGS.quick,
    }
    rows, failed = _common.run_cases(ARGS.only, run_case, report_failures=True)
    cols = ["case", "reference", "n", "p", "perms", "thr", "ours s", "ref s", "ref/ours"]
    cols += ["per run"]
    cols += ["null rel diff", "same p", "target", "ok"]
    body = [
        [
            r["case"],
            r["vs"],
            str(r["n"]),
            str(r["p"]),
            str(r["perms"]),
            str(r["threads"]),
            f"{r['ours_s']:.2f}",
            f"{r['ref_s']:.2f}",
            f"{r['ratio']:.2f}",
            f"{r['spread'][0]:.2f}-{r['spread'][1]:.2f}",
            f"{r['null_rel_diff']:.1e}",
            "-" if r["same_p"] is None else str(r["same_p"]),
            r["target"],
            "yes" if r["ok"] else "no",
        ]
        for r in rows
    ]
    load = env["loadavg"]
    lines = [
        "congruence permutation-test benchmark" + ("  [QUICK]" if ARGS.quick else ""),
        f"  python {env['python']}, numpy {env['numpy']}, scipy {env['scipy']}, "
        f"threads {THREADS}, cpu_count {env['cpu_count']}, loadavg "
        + ("/".join(f"{x:.2f}" for x in load) if load else "?"),
        "",
    ] + _common.format_table(cols, body, numeric=(2, 3, 4, 5, 6, 7, 8, 9))
    return _common.finish_report(lines, failed, t_all, ARGS.json, env, rows)


if __name__ == "__main__":
    sys.exit(main())
