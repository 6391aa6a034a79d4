#!/usr/bin/env python
"""How the layer matrix grows with the number of layers, and the serial fraction of the kernels.

Two reports (``--only layers``, ``--only serial``; both by default):

* ``layers``: for every registered representational measure (read from the registry), the
  time of one pair ``measure(X, Y)`` and of ``compare_layers(a, b, measure)`` on L x L layers
  for L = 4, 8, 16, as ``time(L x L) / time(one pair)``. Without per-layer reuse the ratio
  grows like L^2 (16, 64, 256); where the per-layer preparation is the cost and the pair step
  is cheap it grows like L (2L preparations, then L^2 cheap steps). The last columns divide
  the ratio by L and by L^2 so the growth can be read off. Sizes are small (n = 500, p = 32
  unless a measure needs otherwise) so that the 16 x 16 matrices of every measure run in
  minutes; the ratios, not the seconds, are the point.
* ``serial``: the serial fraction ``s = 2 T2 / T1 - 1`` (Amdahl) of the kernels named by the
  issue (RBF CKA, rsa, distance_correlation, knn_jaccard, cca and an 8 x 8 linear-CKA layer
  matrix; cca also at the issue's single-pair size 5000 x 768, and SciPy's cca beside it
  at both sizes, whose LAPACK calls bound cca's own fraction). Each of ``--rounds`` rounds
  times every kernel in fresh interpreters with 1 and with 2 threads (Rayon and BLAS alike;
  best of ``--repeat`` calls each), and the median of the rounds' fractions is reported with
  their range. On 2 cores, s <= 5% keeps
  the speed-up on 16 cores above 1 / (0.05 + 0.95 / 16) = 9.1x.

  The 2-thread children also report ``s_cpu = 2 W / C - 1`` of their fastest call, from its
  wall time ``W`` and the process's CPU time ``C`` (user + system) over that call: the share
  of the work that ran with one thread busy, from one run, without the 1-thread run. Where
  ``s`` exceeds ``s_cpu``, the rest of ``s`` is the two threads running slower together than
  one alone (shared memory bandwidth and caches), or noise between the two interpreters. A
  thread that spins while it waits counts as busy, so ``s_cpu`` says nothing for kernels
  that wait in BLAS (OpenBLAS spins: the cca rows).

Usage::

    python benches/bench_scaling.py                       # both reports (about 10 minutes)
    python benches/bench_scaling.py --only layers --quick # L = 2, 4 and n = 200: a smoke run
    python benches/bench_scaling.py --only serial --repeat 3 --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time

import _common

CASES = ("layers", "serial")
LAYER_COUNTS = (4, 8, 16)
# Sizes of the layer-scaling table: (n, p); a measure not listed uses DEFAULT_SIZE.
DEFAULT_SIZE = (500, 32)
SIZES = {"riemannian_distance": (100, 128)}  # needs p >= n
# The serial-fraction kernels: name -> (measure, params, n, p, L); L > 1 is a layer matrix.
SERIAL = {
    "rbf_cka": ("cka", {"kernel": "rbf"}, 6000, 256, 1),
    "rsa": ("rsa", {}, 3000, 64, 1),
    "distance_correlation": ("distance_correlation", {}, 3000, 64, 1),
    "knn_jaccard": ("knn_jaccard", {}, 6000, 64, 1),
    "cca": ("cca", {}, 5000, 256, 1),
    "cca_768": ("cca", {}, 5000, 768, 1),
    # SciPy's cca (see scipy_cca), whose LAPACK calls bound cca's own fraction
    "cca_scipy": ("scipy_cca", {}, 5000, 256, 1),
    "cca_768_scipy": ("scipy_cca", {}, 5000, 768, 1),
    "layers_8x8_cka": ("cka", {}, 3000, 256, 8),
}


def _parse_args(argv=None):
    ap = argparse.ArgumentParser(description="layer-matrix scaling and serial fractions")
    ap.add_argument("--only", metavar="NAME", help="comma-separated reports: " + ", ".join(CASES))
    ap.add_argument("--quick", action="store_true", help="small sizes and L = 2, 4: a smoke run")
    ap.add_argument("--repeat", type=int, default=3, help="timings per side, best kept (3)")
    ap.add_argument("--threads", type=int, default=None, help="threads for the layers report")
    ap.add_argument(
        "--rounds",
        type=int,
        default=5,
        help="serial: rounds of 1- and 2-thread runs; the median fraction is reported (5)",
    )
    ap.add_argument("--measures", default=None, help="layers: comma-separated measure names")
    ap.add_argument("--json", metavar="OUT", help="also write the rows as JSON")
    ap.add_argument("--_serial-child", dest="serial_child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    return _common.finish_args(ap, args, CASES, check_threads=True)


ARGS = _parse_args()
THREADS = _common.resolve_threads(ARGS.threads)
_common.set_thread_env(THREADS)

import numpy as np  # noqa: E402

import congruence as cg  # noqa: E402
from congruence._registry import measures  # noqa: E402


def layers(count: int, n: int, p: int, seed: int) -> list:
    """``count`` related but distinct layers: a shared base through random maps, plus noise."""
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((n, p))
    return [
        np.tanh(base @ rng.standard_normal((p, p)) / np.sqrt(p)) + 0.5 * rng.standard_normal((n, p))
        for _ in range(count)
    ]


def best(fn, k: int) -> float:
    return best_with_cpu(fn, k)[0]


def _cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def best_with_cpu(fn, k: int) -> tuple[float, float]:
    """The fastest of ``k`` calls: its wall time and the process's CPU time over it."""
    out = (float("inf"), float("nan"))
    for _ in range(k):
        c0, t0 = _cpu_seconds(), time.perf_counter()
        fn()
        wall, cpu = time.perf_counter() - t0, _cpu_seconds() - c0
        if wall < out[0]:
            out = (wall, cpu)
    return out


def layer_rows() -> list:
    counts = (2, 4) if ARGS.quick else LAYER_COUNTS
    names = ARGS.measures.split(",") if ARGS.measures else None
    rows = []
    for m in measures():
        if m.family == "functional" or (names and m.name not in names):
            continue
        n, p = (200, 16) if ARGS.quick and m.name not in SIZES else SIZES.get(m.name, DEFAULT_SIZE)
        a = layers(max(counts), n, p, seed=1)
        b = layers(max(counts), n, p, seed=2)
        m(a[0], b[0])  # warm-up: imports, first-call set-up
        pair = best(lambda: m(a[0], b[0]), ARGS.repeat)
        row = dict(measure=m.name, family=m.family, n=n, p=p, threads=THREADS, pair_s=pair)
        for L in counts:
            k = ARGS.repeat if L < 16 else 1
            t = best(lambda: cg.compare_layers(a[:L], b[:L], m.name, progress=False), k)
            row[f"LxL_s_{L}"] = t
            row[f"ratio_{L}"] = t / pair
        rows.append(row)
        cols = "  ".join(
            f"L={L}: {row[f'ratio_{L}']:7.1f} (/L {row[f'ratio_{L}'] / L:5.2f}, "
            f"/L^2 {row[f'ratio_{L}'] / L**2:5.3f})"
            for L in counts
        )
        print(
            f"{m.name:26s} {m.family:11s} n={n:4d} p={p:3d} pair {pair:8.4f} s  {cols}", flush=True
        )
    return rows


def scipy_cca(x, y) -> float:
    """Mean canonical correlation as SciPy users compute it: QR of both centred sides, then
    the singular values of ``Qx^T Qy`` (LAPACK's geqrf, orgqr and gesdd)."""
    from scipy import linalg as la

    qx = la.qr(x - x.mean(0), mode="economic")[0]
    qy = la.qr(y - y.mean(0), mode="economic")[0]
    return float(np.mean(la.svd(qx.T @ qy, compute_uv=False)))


def serial_child(name: str) -> None:
    """Time one serial-fraction kernel (best of --repeat) and print it as a JSON line."""
    measure, params, n, p, L = SERIAL[name]
    if ARGS.quick:
        n = n // 4
    a = layers(L, n, p, seed=1)
    b = layers(L, n, p, seed=2)
    if measure == "scipy_cca":
        fn = lambda: scipy_cca(a[0], b[0])  # noqa: E731
    elif L == 1:
        fn = lambda: cg.compare(a[0], b[0], measure, **params)  # noqa: E731
    else:
        fn = lambda: cg.compare_layers(a, b, measure, progress=False, **params)  # noqa: E731
    fn()
    wall, cpu = best_with_cpu(fn, ARGS.repeat)
    print(json.dumps(dict(case=name, threads=THREADS, n=n, p=p, L=L, s=wall, cpu=cpu)))


def serial_rows() -> list:
    """Per round, each kernel in a fresh interpreter with 1 then 2 threads (best of --repeat
    calls each); the serial fraction of each round, and their median and range (DECISIONS:
    median of >= 5 alternating runs with its spread)."""
    times: dict = {name: {1: [], 2: []} for name in SERIAL}
    cpu_fractions: dict = {name: [] for name in SERIAL}
    rounds = 1 if ARGS.quick else ARGS.rounds
    for _ in range(rounds):
        for name in SERIAL:
            for threads in (1, 2):
                out = _common.run_child_argv(
                    [
                        os.path.abspath(__file__),
                        "--_serial-child",
                        name,
                        "--threads",
                        str(threads),
                        "--repeat",
                        str(ARGS.repeat),
                    ]
                    + (["--quick"] if ARGS.quick else []),
                    what=name,
                )
                times[name][threads].append(out["s"])
                if threads == 2:
                    cpu_fractions[name].append(2.0 * out["s"] / out["cpu"] - 1.0)
    rows = []
    for name, t in times.items():
        per_round = [_common.serial_fraction(a, b) for a, b in zip(t[1], t[2])]
        s = float(np.median(per_round))
        s_cpu = float(np.median(cpu_fractions[name]))
        t1, t2 = float(np.median(t[1])), float(np.median(t[2]))
        measure, params, n, p, L = SERIAL[name]
        rows.append(
            dict(
                case=name,
                n=n // 4 if ARGS.quick else n,
                p=p,
                L=L,
                T1_s=t1,
                T2_s=t2,
                s=s,
                s_rounds=per_round,
                s_cpu=s_cpu,
                s_cpu_rounds=cpu_fractions[name],
            )
        )
        print(
            f"{name:22s} n={rows[-1]['n']:5d} p={p:3d} L={L}: T1 {t1:7.3f} s  T2 {t2:7.3f} s  "
            f"speed-up {t1 / t2:4.2f}  serial fraction {s:6.1%} (rounds {min(per_round):.1%}"
            f" to {max(per_round):.1%}; target <= 5%: {'yes' if s <= 0.05 else 'no'}); "
            f"s_cpu {s_cpu:6.1%} ({min(cpu_fractions[name]):.1%} to "
            f"{max(cpu_fractions[name]):.1%})",
            flush=True,
        )
    return rows


def main() -> int:
    if ARGS.serial_child:
        serial_child(ARGS.serial_child)
        return 0
    print(
        f"python {platform.python_version()}, numpy {np.__version__}, congruence "
        f"{cg.__version__}, cpu_count {os.cpu_count()}, loadavg {_common.loadavg()}",
        flush=True,
    )
    out = {}
    if "layers" in ARGS.only:
        print(f"\nlayer matrix: time(L x L) / time(one pair), {THREADS} thread(s), float64")
        out["layers"] = layer_rows()
    if "serial" in ARGS.only:
        print(
            f"\nserial fraction s = 2 T2/T1 - 1: median over {1 if ARGS.quick else ARGS.rounds} "
            "rounds of fresh "
            f"interpreters with 1 and 2 threads (best of {ARGS.repeat} calls each); T1, T2 "
            "are the medians"
        )
        out["serial"] = serial_rows()
    print(f"loadavg at the end {_common.loadavg()}")
    if ARGS.json:
        with open(ARGS.json, "w", encoding="utf-8") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
