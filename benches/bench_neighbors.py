#!/usr/bin/env python
"""Benchmark congruence's neighbourhood measures against scikit-learn + NumPy.

Cases: ``knn_jaccard`` and ``mutual_knn`` (MEASURES.md 5.1, 5.5) at n = 50000, p = 768, in
float32 and float64. The reference computes both representations' neighbour lists with
``sklearn.neighbors.NearestNeighbors(metric="cosine", algorithm="brute").kneighbors()`` (no
query argument, so each point is not its own neighbour) and the measure in NumPy. Both run
side by side in the same process with the same thread count (Rayon for congruence, BLAS for
NumPy / scikit-learn); the table gives the best of ``--repeat`` timed runs after a warm-up on
small inputs, the speed ratio, the absolute difference of the values and the peak memory of
each implementation, measured once in a fresh subprocess.

Usage::

    python benches/bench_neighbors.py                  # full sizes (tens of minutes, ~4 GB)
    python benches/bench_neighbors.py --quick          # smoke test: n = 5000, < 1 minute
    python benches/bench_neighbors.py --only knn_jaccard_f32,mutual_knn_f64
    python benches/bench_neighbors.py --threads 2 --repeat 3 --json out.json

Target (full sizes): congruence >= 3x faster than the scikit-learn reference, with peak memory
O(n k + block x n) above the inputs (never n x n).
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import sys
import time

import _common

MEASURES = ("knn_jaccard", "mutual_knn")
DTYPES = ("float32", "float64")
SUFFIX = {"float32": "f32", "float64": "f64"}
CASES = tuple(f"{m}_{SUFFIX[d]}" for m in MEASURES for d in DTYPES)
FULL = dict(n=50000, p=768, k=10)
QUICK = dict(n=5000, p=768, k=10)
TARGET_RATIO = 3.0


def _parse_args(argv=None):
    ap = argparse.ArgumentParser(description="congruence vs scikit-learn: kNN measures benchmark")
    ap.add_argument("--quick", action="store_true", help="n = 5000 instead of 50000 (smoke test)")
    ap.add_argument("--only", metavar="NAMES", help="comma-separated cases: " + ", ".join(CASES))
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="threads for both sides; default $RAYON_NUM_THREADS, else os.cpu_count()",
    )
    ap.add_argument(
        "--repeat",
        type=int,
        default=None,
        help="timed repetitions, best kept (default: 3 with --quick, 1 otherwise)",
    )
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    ap.add_argument("--json", metavar="OUT", help="also write the results as JSON")
    ap.add_argument(
        "--layers",
        action="store_true",
        help="only time(L x L) / time(one pair) of knn_jaccard's layer matrix, L = 4, 8 "
        "(n = 5000, p = 128, k = 10; median of 3 alternating runs)",
    )
    # Internal: one peak-memory measurement in a fresh interpreter.
    ap.add_argument("--_mem-child", dest="mem_child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.repeat is None:
        args.repeat = 3 if args.quick else 1
    return _common.finish_args(ap, args, CASES, check_threads=True)


ARGS = _parse_args()
THREADS = _common.resolve_threads(ARGS.threads)
SIZES = QUICK if ARGS.quick else FULL

# Peak memory is measured in fresh interpreters started by a launcher that is itself started
# now, before NumPy is imported (see _common.Launcher).
_LAUNCHER = None
if ARGS.mem_child is None and not ARGS.no_memory:
    _LAUNCHER = _common.Launcher()

# The same number of threads for both sides, set before the libraries are loaded.
_common.set_thread_env(THREADS)

import numpy as np  # noqa: E402
from sklearn.neighbors import NearestNeighbors  # noqa: E402

import congruence  # noqa: E402
from congruence.measures.neighbors import knn_jaccard, mutual_knn  # noqa: E402

threadpoolctl, _LIMITER = _common.limit_blas(THREADS, user_api=None)


# --------------------------------------------------------------------------------------
# Data, the two implementations
# --------------------------------------------------------------------------------------


def make_pair(n: int, p: int, dtype: str):
    """X standard normal; Y a noisy random linear map of X (related neighbourhoods).

    Generated in row chunks straight into the output arrays, so that making the data does
    not raise the process's peak memory above the data themselves (the memory baseline)."""
    rng = np.random.default_rng(0)
    W = rng.standard_normal((p, p)) / math.sqrt(p)
    X, Y = np.empty((n, p), dtype=dtype), np.empty((n, p), dtype=dtype)
    for i in range(0, n, 256):
        x = rng.standard_normal((min(256, n - i), p))
        X[i : i + len(x)] = x
        Y[i : i + len(x)] = x @ W + 0.5 * rng.standard_normal(x.shape)
    return X, Y


OURS = {"knn_jaccard": knn_jaccard, "mutual_knn": mutual_knn}


def sk_lists(Z, k: int) -> np.ndarray:
    """scikit-learn's brute-force cosine neighbours, the point itself excluded."""
    nn = NearestNeighbors(n_neighbors=k, metric="cosine", algorithm="brute").fit(Z)
    return nn.kneighbors(return_distance=False)


def np_shared(NX: np.ndarray, NY: np.ndarray) -> np.ndarray:
    """|N_X(i) & N_Y(i)| per row: the lists hold distinct indices, so the shared ones are
    the repeated values of the concatenated, sorted row."""
    both = np.sort(np.concatenate([NX, NY], axis=1), axis=1)
    return (both[:, 1:] == both[:, :-1]).sum(axis=1)


def reference(measure: str, X, Y, k: int) -> float:
    c = np_shared(sk_lists(X, k), sk_lists(Y, k))
    if measure == "knn_jaccard":
        return float(np.mean(c / (2 * k - c)))
    return float(np.mean(c / k))


def run(impl: str, measure: str, X, Y, k: int) -> float:
    if impl == "congruence":
        return OURS[measure](X, Y, k=k)
    return reference(measure, X, Y, k)


def warm_up():
    rng = np.random.default_rng(1)
    for dtype in DTYPES:
        t = rng.standard_normal((300, 16)).astype(dtype)
        for measure in MEASURES:
            run("congruence", measure, t, t[:, ::-1], 5)
            run("sklearn", measure, t, t[:, ::-1], 5)


# --------------------------------------------------------------------------------------
# Peak memory
# --------------------------------------------------------------------------------------


def mem_child(spec: str) -> None:
    impl, measure, dtype = spec.split(":")
    warm_up()
    X, Y = make_pair(SIZES["n"], SIZES["p"], dtype)
    gc.collect()
    base, base_hwm = _common.maxrss_kib(), _common.vmhwm_kib()
    t0 = time.perf_counter()
    v = run(impl, measure, X, Y, SIZES["k"])
    dt = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "baseline_kib": base,
                "peak_kib": _common.maxrss_kib(),
                "baseline_hwm_kib": base_hwm,
                "peak_hwm_kib": _common.vmhwm_kib(),
                "value": v,
                "seconds": dt,
            }
        )
    )


def measure_peak(impl: str, measure: str, dtype: str) -> dict:
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--_mem-child",
        f"{impl}:{measure}:{dtype}",
        "--threads",
        str(THREADS),
    ] + (["--quick"] if ARGS.quick else [])
    out = _LAUNCHER.run(cmd, impl)
    out["mib"] = (out["peak_kib"] - out["baseline_kib"]) / 1024
    if out["peak_hwm_kib"] is not None:
        out["mib_hwm"] = (out["peak_hwm_kib"] - out["baseline_hwm_kib"]) / 1024
    return out


def _close_launcher():
    if _LAUNCHER is not None:
        _LAUNCHER.close(timeout=60)


# --------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------


def layers_main() -> int:
    """``time(L x L) / time(one pair)``: each layer's neighbour lists are computed once, so the
    matrix costs ``2 L`` searches plus ``L^2`` cheap set comparisons, about ``L`` pairs."""
    rng = np.random.default_rng(0)
    n, p, k = 5000, 128, 10
    base = rng.standard_normal((n, p))
    a = {f"h{i}": np.tanh(base @ rng.standard_normal((p, p)) / 10) for i in range(8)}
    b = {f"g{i}": np.tanh(base @ rng.standard_normal((p, p)) / 10) for i in range(8)}
    x, y = a["h0"], b["g0"]
    for L in (4, 8):
        sa, sb = dict(list(a.items())[:L]), dict(list(b.items())[:L])
        times = {"pair": [], "matrix": []}
        fns = {
            "pair": lambda: knn_jaccard(x, y, k=k),
            "matrix": lambda: congruence.compare_layers(sa, sb, "knn_jaccard", k=k),
        }
        for f in fns.values():
            f()
        for _ in range(3):
            for key, f in fns.items():
                t0 = time.perf_counter()
                f()
                times[key].append(time.perf_counter() - t0)
        tp, tm = float(np.median(times["pair"])), float(np.median(times["matrix"]))
        print(
            f"knn_jaccard {L} x {L} (n={n}, p={p}, k={k}, threads {THREADS}): matrix {tm:.2f} s, "
            f"one pair {tp:.2f} s, ratio {tm / tp:.1f} ({L * L} cells)"
        )
    return 0


def main() -> int:
    if ARGS.layers:
        return layers_main()
    if ARGS.mem_child:
        mem_child(ARGS.mem_child)
        return 0
    n, p, k = SIZES["n"], SIZES["p"], SIZES["k"]
    print(
        "congruence neighbourhood benchmark"
        + ("  [QUICK: n = 5000; the target is for n = 50000]" if ARGS.quick else "")
    )
    print(
        f"  python {platform.python_version()}, numpy {np.__version__}, scikit-learn "
        f"{__import__('sklearn').__version__}, congruence {getattr(congruence, '__version__', '?')}, "
        f"{platform.platform()}"
    )
    load = "/".join(f"{x:.2f}" for x in _common.loadavg()) if hasattr(os, "getloadavg") else "?"
    print(
        f"  os.cpu_count()={os.cpu_count()}  loadavg={load}  threads (both sides)={THREADS}  "
        f"k={k}  best of {ARGS.repeat} after a warm-up on small inputs"
    )
    for info in (
        _common.blas_info(threadpoolctl, ("internal_api", "version", "architecture", "num_threads"))
        or ()
    ):
        print(
            f"  BLAS: {info['internal_api']} {info['version']} "
            f"({info['architecture']}), num_threads={info['num_threads']}"
        )
    print(flush=True)
    warm_up()
    rows = []
    t_all = time.perf_counter()
    for dtype in DTYPES:
        todo = [m for m in MEASURES if f"{m}_{SUFFIX[dtype]}" in ARGS.only]
        if not todo:
            continue
        X, Y = make_pair(n, p, dtype)
        for measure in todo:
            print(f"[{measure} {dtype}] timing ...", file=sys.stderr, flush=True)
            t, v = _common.timed(
                {
                    "ours": lambda m=measure, A=X, B=Y: run("congruence", m, A, B, k),
                    "ref": lambda m=measure, A=X, B=Y: run("sklearn", m, A, B, k),
                },
                ARGS.repeat,
                warmup=False,
                cpu=True,
            )
            row = dict(
                case=f"{measure}_{SUFFIX[dtype]}",
                n=n,
                p=p,
                dtype=dtype,
                threads=THREADS,
                ours_s=t["ours"][0],
                ref_s=t["ref"][0],
                ours_cpu=t["ours"][1],
                ref_cpu=t["ref"][1],
                ratio=t["ref"][0] / t["ours"][0],
                value=v["ours"],
                ref_value=v["ref"],
                abs_diff=abs(v["ours"] - v["ref"]),
                mem_ours_mib=None,
                mem_ref_mib=None,
            )
            if not ARGS.no_memory and measure == todo[0]:
                print(
                    f"[{measure} {dtype}] peak memory (fresh subprocesses) ...",
                    file=sys.stderr,
                    flush=True,
                )
                mo, mr = (
                    measure_peak("congruence", measure, dtype),
                    measure_peak("sklearn", measure, dtype),
                )
                row["mem_ours_mib"], row["mem_ref_mib"] = mo["mib"], mr["mib"]
                for m, who in ((mo, "congruence"), (mr, "sklearn")):
                    if m.get("mib_hwm") is not None and abs(m["mib_hwm"] - m["mib"]) > 64:
                        print(
                            f"  WARNING: {who} ru_maxrss {m['mib']:.0f} MiB vs VmHWM "
                            f"{m['mib_hwm']:.0f} MiB",
                            flush=True,
                        )
            row["ok"] = row["ratio"] >= TARGET_RATIO
            rows.append(row)
        del X, Y
        gc.collect()
    input_mib = n * p * 4 / 2**20
    cols = [
        "case",
        "n",
        "p",
        "dtype",
        "thr",
        "ours s",
        "sklearn s",
        "ratio",
        "cpu ours",
        "cpu sklearn",
        "|diff|",
        "value",
        "mem ours MiB",
        "mem sklearn MiB",
        "target",
        "ok",
    ]
    body = [
        [
            r["case"],
            str(r["n"]),
            str(r["p"]),
            r["dtype"],
            str(r["threads"]),
            f"{r['ours_s']:.3f}",
            f"{r['ref_s']:.3f}",
            f"{r['ratio']:.2f}",
            f"{r['ours_cpu']:.2f}",
            f"{r['ref_cpu']:.2f}",
            f"{r['abs_diff']:.2e}",
            f"{r['value']:.6f}",
            "-" if r["mem_ours_mib"] is None else f"{r['mem_ours_mib']:.0f}",
            "-" if r["mem_ref_mib"] is None else f"{r['mem_ref_mib']:.0f}",
            f">={TARGET_RATIO:.1f}x",
            "yes" if r["ok"] else "NO",
        ]
        for r in rows
    ]
    for ln in _common.format_table(cols, body):
        print(ln)
    print(
        f"  ours s / sklearn s: best-of-{ARGS.repeat} wall seconds; ratio = sklearn s / ours s "
        "(higher is better); cpu: process CPU seconds of that run, all threads (a load-independent "
        "cross-check on a busy machine)."
    )
    print(
        f"  mem: peak RSS (ru_maxrss) above the baseline with the data created, one run of the "
        f"dtype's first measure in a fresh interpreter; one float32 input is {input_mib:.0f} MiB."
    )
    print(
        "  |diff|: |ours - sklearn|; float32 neighbours may differ where two distances agree to "
        "float32 round-off."
    )
    print(f"\ntotal wall time {time.perf_counter() - t_all:.1f} s")
    if ARGS.json:
        with open(ARGS.json, "w", encoding="utf-8") as f:
            json.dump({"rows": rows, "threads": THREADS, "quick": ARGS.quick}, f, indent=2)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        _close_launcher()
