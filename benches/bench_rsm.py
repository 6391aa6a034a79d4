#!/usr/bin/env python
"""Benchmark congruence's RSM measures (RSA, distance correlation) against NumPy/SciPy.

Each case runs congruence and a NumPy/SciPy reference side by side in the same process with
the same thread count (Rayon for congruence; BLAS for NumPy, whose ``pdist``, ``rankdata`` and
``spearmanr`` are single-threaded C), reports the best of k timed repetitions after one
warm-up, the speed ratio, the absolute difference of the values and the peak memory of each
side (measured once in a fresh interpreter, in units of one n x n float64 matrix).

Usage::

    python benches/bench_rsm.py                        # full sizes: n=5000, p=256 (minutes)
    python benches/bench_rsm.py --quick                # smoke test: n=1000, p=64
    python benches/bench_rsm.py --only dcor            # one case (comma-separate several)
    python benches/bench_rsm.py --threads 2 --repeat 5 --json out.json
    python benches/bench_rsm.py --no-memory            # skip the peak-memory subprocesses

Cases (target: congruence >= 3x faster than the reference at full size):

* ``rsa_correlation``: ``rsa(X, Y)`` (correlation RSM, Spearman) vs
  ``spearmanr(corrcoef(X)[iu], corrcoef(Y)[iu])`` (BLAS correlation matrices).
* ``rsa_euclidean``: ``rsa(X, Y, rsm="euclidean")`` vs ``spearmanr(pdist(X), pdist(Y))``.
* ``rsa_euclidean_pearson``: ``rsa(X, Y, rsm="euclidean", compare="pearson")`` vs
  ``pearsonr(pdist(X), pdist(Y))`` (for information; no target).
* ``dcor``: ``distance_correlation(X, Y)`` vs NumPy double centring of
  ``squareform(pdist(.))`` and ``mean(A * B)``.

Layer matrices (``compare_layers``, 8 x 8 layers; each reference prepares every layer once
and then loops over the pairs; ratios are the median of ``--repeat`` alternating runs):

* ``rsa_layers`` (n=1000, p=128; target 5x): the correlation RSM of each layer ranked once
  (``rankdata(corrcoef(X)[iu])``), then ``corrcoef`` of the ranked triangles per pair.
* ``dcor_layers`` (n=2000, p=128; target 5x): each layer's doubly centred
  ``squareform(pdist(X))`` cached, then ``vdot`` per pair.
* ``norm_layers`` (n=2000, p=128; target 5x): each layer's ``squareform(pdist(X))`` cached,
  then ``norm(D_a - D_b)`` per pair.
* ``rsa_scaling``: time(L x L) / time(one pair) of ``compare_layers(a, measure="rsa")`` for
  L = 4 and 8 (no reference).
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import sys

import _common

CASES = (
    "rsa_correlation",
    "rsa_euclidean",
    "rsa_euclidean_pearson",
    "dcor",
    "rsa_layers",
    "dcor_layers",
    "norm_layers",
    "rsa_scaling",
)
LAYER_CASES = {"rsa_layers": 1000, "dcor_layers": 2000, "norm_layers": 2000}
TARGETS = {
    "rsa_correlation": 3.0,
    "rsa_euclidean": 3.0,
    "dcor": 3.0,
    "rsa_layers": 5.0,
    "dcor_layers": 5.0,
    "norm_layers": 5.0,
}
FULL = dict(n=5000, p=256)
QUICK = dict(n=1000, p=64)
AGREE = 1e-9  # |value difference| allowed between two float64 computations


def _parse_args(argv=None):
    ap = argparse.ArgumentParser(description="congruence vs NumPy/SciPy: RSM measures")
    ap.add_argument("--quick", action="store_true", help="n=1000, p=64 instead of n=5000, p=256")
    ap.add_argument("--only", metavar="NAMES", help="comma-separated cases: " + ", ".join(CASES))
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="threads for both sides (default: $RAYON_NUM_THREADS, else cpu_count)",
    )
    ap.add_argument("--repeat", type=int, default=3, help="timed repetitions, best kept (3)")
    ap.add_argument("--json", metavar="OUT", help="also write environment and rows as JSON")
    ap.add_argument("--no-memory", action="store_true", help="skip peak-memory measurement")
    _common.add_mem_child_args(ap)
    return _common.finish_args(ap, ap.parse_args(argv), CASES, check_threads=True)


ARGS = _parse_args()
THREADS = _common.resolve_threads(ARGS.threads)
_CALLER_RAYON = os.environ.get("RAYON_NUM_THREADS")

# Memory subprocesses are started by a launcher created now, while this interpreter is small:
# on Linux a child's ru_maxrss starts at the RSS of the process that forked it.
_LAUNCHER = None
if ARGS.mem_child is None and not ARGS.no_memory:
    _LAUNCHER = _common.Launcher()

_common.set_thread_env(THREADS)

import numpy as np  # noqa: E402
from scipy.spatial.distance import pdist, squareform  # noqa: E402
from scipy.stats import pearsonr, rankdata, spearmanr  # noqa: E402

import congruence as cg  # noqa: E402
from congruence.measures import rsm as _rsm  # noqa: E402

threadpoolctl, _LIMITER = _common.limit_blas(THREADS)

rsa = getattr(cg, "rsa", _rsm.rsa)
distance_correlation = getattr(cg, "distance_correlation", _rsm.distance_correlation)


# --------------------------------------------------------------------------------------
# Data and references
# --------------------------------------------------------------------------------------


def ref_rsa_correlation(X, Y):
    iu = np.triu_indices(X.shape[0], k=1)
    return float(spearmanr(np.corrcoef(X)[iu], np.corrcoef(Y)[iu]).statistic)


def ref_rsa_euclidean(X, Y):
    return float(spearmanr(pdist(X), pdist(Y)).statistic)


def ref_rsa_euclidean_pearson(X, Y):
    return float(pearsonr(pdist(X), pdist(Y)).statistic)


def _double_centred(X):
    a = squareform(pdist(X))
    r = a.mean(axis=1)  # symmetric: row means = column means
    a -= r[:, None]
    a -= r[None, :]
    a += r.mean()
    return a


def ref_dcor(X, Y):
    A = _double_centred(X)
    B = _double_centred(Y)
    ab, aa, bb = float(np.vdot(A, B)), float(np.vdot(A, A)), float(np.vdot(B, B))
    return math.sqrt(max(ab, 0.0) / math.sqrt(aa * bb))


IMPLS = {
    "rsa_correlation": (lambda X, Y: rsa(X, Y), ref_rsa_correlation, "spearmanr(corrcoef[iu])"),
    "rsa_euclidean": (
        lambda X, Y: rsa(X, Y, rsm="euclidean"),
        ref_rsa_euclidean,
        "spearmanr(pdist)",
    ),
    "rsa_euclidean_pearson": (
        lambda X, Y: rsa(X, Y, rsm="euclidean", compare="pearson"),
        ref_rsa_euclidean_pearson,
        "pearsonr(pdist)",
    ),
    "dcor": (lambda X, Y: distance_correlation(X, Y), ref_dcor, "numpy H a H (squareform)"),
}


# --------------------------------------------------------------------------------------
# Layer matrices
# --------------------------------------------------------------------------------------

LAYERS = 8
LAYER_P = 128


def make_layers(n: int, p: int, count: int, seed: int):
    """``count`` layers of a random tanh network on the same ``n`` inputs."""
    rng = np.random.default_rng(seed)
    h = rng.standard_normal((n, p))
    out = {}
    for i in range(count):
        h = np.tanh(h @ (rng.standard_normal((p, p)) / math.sqrt(p))) + 0.1 * rng.standard_normal(
            (n, p)
        )
        out[f"l{i}"] = h
    return out


def ref_rsa_layers(a, b):
    iu = np.triu_indices(next(iter(a.values())).shape[0], k=1)
    ra = [rankdata(np.corrcoef(x)[iu]) for x in a.values()]
    rb = [rankdata(np.corrcoef(y)[iu]) for y in b.values()]
    return np.array([[np.corrcoef(u, v)[0, 1] for v in rb] for u in ra])


def ref_dcor_layers(a, b):
    ca = [_double_centred(x) for x in a.values()]
    cb = [_double_centred(y) for y in b.values()]
    na = [math.sqrt(float(np.vdot(A, A))) for A in ca]
    nb = [math.sqrt(float(np.vdot(B, B))) for B in cb]
    return np.array(
        [
            [math.sqrt(max(float(np.vdot(A, B)), 0.0) / (sa * sb)) for B, sb in zip(cb, nb)]
            for A, sa in zip(ca, na)
        ]
    )


def ref_norm_layers(a, b):
    da = [squareform(pdist(x)) for x in a.values()]
    db = [squareform(pdist(y)) for y in b.values()]
    return np.array([[float(np.linalg.norm(A - B)) for B in db] for A in da])


LAYER_IMPLS = {
    "rsa_layers": ("rsa", ref_rsa_layers, "rankdata(corrcoef) once per layer, corrcoef"),
    "dcor_layers": ("distance_correlation", ref_dcor_layers, "numpy H a H once per layer, vdot"),
    "norm_layers": ("rsm_norm_diff", ref_norm_layers, "squareform(pdist) once per layer"),
}


def run_layers_case(case: str, quick: bool):
    measure, ref, ref_name = LAYER_IMPLS[case]
    n = LAYER_CASES[case] // (4 if quick else 1)
    a = make_layers(n, LAYER_P, LAYERS, 1)
    b = make_layers(n, LAYER_P, LAYERS, 2)
    t, v, runs = _common.alternating(
        {
            "ours": lambda: cg.compare_layers(a, b, measure=measure, progress=False).values,
            "ref": lambda: ref(a, b),
        },
        max(ARGS.repeat, 3),
    )
    diff = float(np.max(np.abs(v["ours"] - v["ref"])))
    spread = _common.ratio_spread(runs, "ours", "ref")
    return dict(
        case=case,
        reference=ref_name,
        n=n,
        p=LAYER_P,
        dtype="float64",
        threads=THREADS,
        ours_s=t["ours"],
        ref_s=t["ref"],
        ratio=t["ref"] / t["ours"],
        ratio_spread=spread,
        abs_diff=diff,
        value=float(v["ours"][0, 0]),
        mem_ours=None,
        mem_ref=None,
        target=TARGETS.get(case),
        ok=diff <= AGREE and t["ref"] / t["ours"] >= TARGETS[case],
    )


def run_scaling(quick: bool):
    """time(L x L) / time(one pair) of the rsa self-matrix, L = 4 and 8."""
    n = 250 if quick else 1000
    layers = make_layers(n, LAYER_P, 8, 3)
    X, Y = layers["l0"], layers["l1"]
    out = []
    for L in (4, 8):
        sub = dict(list(layers.items())[:L])
        t, _, _ = _common.alternating(
            {
                "pair": lambda: rsa(X, Y),
                "matrix": lambda: cg.compare_layers(sub, measure="rsa", progress=False),
            },
            max(ARGS.repeat, 3),
        )
        out.append((L, t["pair"], t["matrix"], t["matrix"] / t["pair"]))
    return n, out


# --------------------------------------------------------------------------------------
# Timing and memory
# --------------------------------------------------------------------------------------


def mem_child(args) -> None:
    """Run one implementation once in this fresh interpreter; print one JSON line."""
    ours, ref, _ = IMPLS[args.mem_child]
    fn = ours if args.impl == "congruence" else ref
    t = np.random.default_rng(1).standard_normal((64, 8))
    fn(t, t[:, ::-1] ** 2)  # warm-up: BLAS buffers, Rayon pool, lazy imports
    X, Y = _common.make_pair(args.n, args.p, "tanh")
    gc.collect()
    base = _common.maxrss_kib()
    v = float(fn(X, Y))
    peak = _common.maxrss_kib()
    print(json.dumps({"baseline_kib": base, "peak_kib": peak, "value": v}))


def measure_peak(case: str, impl: str, n: int, p: int) -> float:
    """Peak memory above the inputs, in n x n float64 matrices."""
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--_mem-child",
        case,
        "--_impl",
        impl,
        "--_n",
        str(n),
        "--_p",
        str(p),
        "--threads",
        str(THREADS),
    ]
    out = _LAUNCHER.run(cmd, f"({case}, {impl})")
    return (out["peak_kib"] - out["baseline_kib"]) / (n * n * 8 / 1024)


# --------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------


def run_case(case: str, n: int, p: int):
    ours, ref, ref_name = IMPLS[case]
    X, Y = _common.make_pair(n, p, "tanh")
    t, v = _common.timed({"ours": lambda: ours(X, Y), "ref": lambda: ref(X, Y)}, ARGS.repeat)
    row = dict(
        case=case,
        reference=ref_name,
        n=n,
        p=p,
        dtype="float64",
        threads=THREADS,
        ours_s=t["ours"],
        ref_s=t["ref"],
        ratio=t["ref"] / t["ours"],
        abs_diff=abs(v["ours"] - v["ref"]),
        value=v["ours"],
        mem_ours=None,
        mem_ref=None,
        target=TARGETS.get(case),
    )
    if _LAUNCHER is not None:
        row["mem_ours"] = measure_peak(case, "congruence", n, p)
        row["mem_ref"] = measure_peak(case, "reference", n, p)
    row["ok"] = row["abs_diff"] <= AGREE and (
        row["target"] is None or row["ratio"] >= row["target"]
    )
    return row


def header() -> dict:
    env = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "congruence": getattr(cg, "__version__", "?"),
        "cpu_count": os.cpu_count(),
        "affinity": _common.affinity(),
        "loadavg": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "RAYON_NUM_THREADS (caller)": _CALLER_RAYON,
        "threads used": THREADS,
        "quick": ARGS.quick,
    }
    if threadpoolctl is not None:
        env["blas"] = _common.blas_info(
            threadpoolctl,
            ("internal_api", "version", "architecture", "num_threads"),
            blas_only=True,
        )
    return env


def main() -> int:
    if ARGS.mem_child is not None:
        mem_child(ARGS)
        return 0
    size = QUICK if ARGS.quick else FULL
    env = header()
    for k, v in env.items():
        print(f"# {k}: {v}")
    rows, errors = [], []
    scaling = None
    for case in ARGS.only:
        try:
            if case in LAYER_CASES:
                rows.append(run_layers_case(case, ARGS.quick))
            elif case == "rsa_scaling":
                scaling = run_scaling(ARGS.quick)
            else:
                rows.append(run_case(case, size["n"], size["p"]))
        except Exception as exc:  # report and go on with the other cases
            errors.append((case, repr(exc)))
    cols = (
        "case",
        "reference",
        "n",
        "p",
        "dtype",
        "thr",
        "ours s",
        "ref s",
        "ref/ours",
        "|diff|",
        "mem ours",
        "mem ref",
        "target",
        "ok",
    )
    print(" | ".join(cols))
    for r in rows:
        print(
            " | ".join(
                [
                    r["case"],
                    r["reference"],
                    str(r["n"]),
                    str(r["p"]),
                    r["dtype"],
                    str(r["threads"]),
                    f"{r['ours_s']:.3f}",
                    f"{r['ref_s']:.3f}",
                    f"{r['ratio']:.2f}",
                    f"{r['abs_diff']:.1e}",
                    _common.fmt(r["mem_ours"], ".2f"),
                    _common.fmt(r["mem_ref"], ".2f"),
                    "-" if r["target"] is None else f">= {r['target']:g}x",
                    "yes" if r["ok"] else "no",
                ]
            )
        )
    for r in rows:
        if "ratio_spread" in r:
            lo, hi = r["ratio_spread"]
            print(f"# {r['case']}: ref/ours per run from {lo:.2f} to {hi:.2f}")
    if scaling is not None:
        n, out = scaling
        for L, tp, tm, ratio in out:
            print(
                f"# rsa_scaling n={n} p={LAYER_P}: L={L}: one pair {tp:.3f} s, "
                f"L x L {tm:.3f} s, ratio {ratio:.2f} (pairs computed: {L * (L + 1) // 2})"
            )
    print(
        "# mem: peak RSS above the inputs in one run, in n x n float64 matrices "
        f"({size['n'] ** 2 * 8 / 1e6:.0f} MB each)"
    )
    if ARGS.quick:
        print("# --quick: sizes are reduced; targets are meant for the full sizes")
    for case, err in errors:
        print(f"# ERROR in {case}: {err}")
    if ARGS.json:
        with open(ARGS.json, "w", encoding="utf-8") as f:
            json.dump(
                {"environment": env, "rows": rows, "scaling": scaling, "errors": errors},
                f,
                indent=2,
            )
    if _LAUNCHER is not None:
        _LAUNCHER.close()
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
