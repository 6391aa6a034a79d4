#!/usr/bin/env python
"""Benchmark the large-data estimators: exact streaming CKA, minibatch CKA, large-n RBF CKA.

Cases (full sizes; ``--quick`` shrinks them to a smoke run of well under a minute):

* ``exact_stream``: exact linear CKA of two layers of 10^6 rows x 1024 features (float32),
  read from ``.npy`` memmaps written first under ``--tmp`` (default /tmp), with
  ``cg.stream_layers`` (batch 8192). Reported: seconds, GFLOP/s achieved (the products a
  GEMM-based method must do: ``n p1 (p1+1) + n p2 (p2+1) + 2 n p1 p2``, symmetric products at
  half cost) against this machine's float64 GEMM rate measured in the same process and the
  nominal 99 GFLOP/s, and the peak resident memory of the whole process (VmHWM, in a fresh
  interpreter). Reference: NumPy two-pass (column means, then centred products) over the same
  memmaps. Targets: >= 60% of GEMM peak, < 1 GB peak memory.
* ``minibatch_12x12``: minibatch CKA (Nguyen et al. 2021) of 12 x 12 layers, 10^5 rows x 768
  features, batch 1024, vs a NumPy per-pair implementation of the same estimator (for every
  pair and batch: both Gram matrices, then the three unbiased HSICs). The batches are generated
  on the fly (same data for both); the reference runs on the first ``--ref-batches`` batches
  and its time is extrapolated to all batches (the table says so). Target: >= 5x.
* ``rbf_large``: ``cg.cka(X, Y, kernel="rbf")`` at n=50000, p=256: time and peak memory in a
  fresh interpreter. No NumPy reference at this size (one n x n float64 matrix is 20 GB); in
  quick mode (n=3000) a NumPy reference is run and the values compared. Target: < 2 GB.

Usage::

    python benches/bench_streaming.py --quick            # smoke run
    python benches/bench_streaming.py                    # full sizes (many minutes, ~9 GB in --tmp)
    python benches/bench_streaming.py --only exact_stream --threads 2 --repeat 2
    python benches/bench_streaming.py --json out.json

Both sides of every comparison run with the same thread count (BLAS threads for NumPy and
for congruence's streaming products, which use NumPy's BLAS; Rayon threads for the RBF core).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import _common
from _common import fmt

CASES = ("exact_stream", "minibatch_12x12", "rbf_large")
FULL = {
    "exact_stream": dict(n=1_000_000, p=1024, batch=8192),
    "minibatch_12x12": dict(n=100_000, p=768, layers=12, batch=1024),
    "rbf_large": dict(n=50_000, p=256),
}
QUICK = {
    "exact_stream": dict(n=60_000, p=256, batch=8192),
    "minibatch_12x12": dict(n=4_096, p=192, layers=4, batch=256),
    "rbf_large": dict(n=3_000, p=64),
}
NOMINAL_GEMM_GFLOPS = 99.0
TARGETS = {
    "exact_stream": "GEMM >= 60%, peak < 1 GB",
    "minibatch_12x12": ">= 5x",
    "rbf_large": "peak < 2 GB",
}


def _parse_args(argv=None):
    ap = argparse.ArgumentParser(
        description="congruence streaming / minibatch / large-n RBF benchmark"
    )
    ap.add_argument("--quick", action="store_true", help="small sizes: a smoke test of the script")
    ap.add_argument("--only", metavar="NAME", help="comma-separated cases: " + ", ".join(CASES))
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="threads for both sides (default: $RAYON_NUM_THREADS or os.cpu_count())",
    )
    ap.add_argument(
        "--repeat", type=int, default=1, help="timed repetitions, best kept (default 1)"
    )
    ap.add_argument(
        "--ref-batches",
        type=int,
        default=4,
        help="minibatch_12x12: batches the per-pair NumPy reference is timed on",
    )
    ap.add_argument("--tmp", default="/tmp", help="folder for the exact_stream .npy files")
    ap.add_argument("--keep", action="store_true", help="keep the exact_stream .npy files")
    ap.add_argument("--json", metavar="OUT", help="also write the rows as JSON")
    ap.add_argument("--_child", dest="child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--_args", dest="child_args", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    _common.finish_args(ap, args, CASES, check_repeat=False)
    if args.repeat < 1 or args.ref_batches < 1:
        ap.error("--repeat and --ref-batches must be >= 1")
    return args


ARGS = _parse_args()
THREADS = _common.resolve_threads(ARGS.threads)
_common.set_thread_env(THREADS)

import numpy as np  # noqa: E402

import congruence as cg  # noqa: E402

threadpoolctl, _LIMITER = _common.limit_blas(THREADS)


def hwm_kib() -> int:
    """Peak resident memory of this process so far (VmHWM, KiB; 0 where unavailable)."""
    return _common.vmhwm_kib(0)


# --------------------------------------------------------------------------------------
# exact_stream
# --------------------------------------------------------------------------------------


def stream_files(n: int, p: int, folder: str) -> tuple[str, str]:
    """Two float32 .npy files (n, p): X with column offsets, Y = 0.6 X reversed + noise."""
    px = os.path.join(folder, f"congruence_bench_x_{n}x{p}.npy")
    py = os.path.join(folder, f"congruence_bench_y_{n}x{p}.npy")
    ok = all(os.path.exists(f) and np.load(f, mmap_mode="r").shape == (n, p) for f in (px, py))
    if ok:
        return px, py
    rng = np.random.default_rng(0)
    offsets = (10.0 * rng.standard_normal(p)).astype(np.float32)
    X = np.lib.format.open_memmap(px, mode="w+", dtype=np.float32, shape=(n, p))
    Y = np.lib.format.open_memmap(py, mode="w+", dtype=np.float32, shape=(n, p))
    step = 50_000
    for s in range(0, n, step):
        e = min(n, s + step)
        x = rng.standard_normal((e - s, p), dtype=np.float32)
        X[s:e] = x + offsets
        Y[s:e] = 0.6 * x[:, ::-1] + 0.8 * rng.standard_normal((e - s, p), dtype=np.float32) + 1.0
    X.flush()
    Y.flush()
    del X, Y
    return px, py


def _child_exact(opts: dict) -> dict:
    """Runs in a fresh interpreter: one implementation over the memmaps; time and peak."""
    cg.stream_layers({"x": np.ones((16, 2))}, batch_size=8)  # warm-up: imports, BLAS
    base = hwm_kib()
    t0 = time.perf_counter()
    if opts["impl"] == "ours":
        res = cg.stream_layers({"x": opts["x"]}, {"y": opts["y"]}, batch_size=opts["batch"])
        value = float(res.values[0, 0])
    else:
        value = numpy_two_pass_cka(opts["x"], opts["y"], opts["batch"])
    dt = time.perf_counter() - t0
    return {"seconds": dt, "value": value, "peak_kib": hwm_kib(), "base_kib": base}


def numpy_two_pass_cka(px: str, py: str, batch: int) -> float:
    """Exact linear CKA over memmaps in NumPy: pass 1 the column means, pass 2 the products."""
    X = np.load(px, mmap_mode="r")
    Y = np.load(py, mmap_mode="r")
    n, p1 = X.shape
    p2 = Y.shape[1]
    mx = np.zeros(p1)
    my = np.zeros(p2)
    for s in range(0, n, batch):
        mx += X[s : s + batch].sum(axis=0, dtype=np.float64)
        my += Y[s : s + batch].sum(axis=0, dtype=np.float64)
    mx /= n
    my /= n
    cxx = np.zeros((p1, p1))
    cyy = np.zeros((p2, p2))
    cxy = np.zeros((p1, p2))
    for s in range(0, n, batch):
        xc = X[s : s + batch] - mx
        yc = Y[s : s + batch] - my
        cxx += xc.T @ xc
        cyy += yc.T @ yc
        cxy += xc.T @ yc
    return float(np.sum(cxy * cxy) / (np.linalg.norm(cxx) * np.linalg.norm(cyy)))


def _run_child(case: str, opts: dict) -> dict:
    return _common.run_child(__file__, case, opts, THREADS)


def gemm_gflops(size: int) -> float:
    """Best of 3 float64 square GEMMs (2 size^3 flops) with NumPy's BLAS."""
    rng = np.random.default_rng(1)
    A = rng.standard_normal((size, size))
    B = rng.standard_normal((size, size))
    A @ B
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        A @ B
        best = min(best, time.perf_counter() - t)
    return 2.0 * size**3 / best / 1e9


def case_exact_stream(sz: dict) -> dict:
    n, p, batch = sz["n"], sz["p"], sz["batch"]
    px, py = stream_files(n, p, ARGS.tmp)
    try:
        for f in (px, py):  # read once so that both sides start from the page cache
            arr = np.load(f, mmap_mode="r")
            for s in range(0, n, 65536):
                float(arr[s : s + 65536, 0].sum())
        best = {"ours": None, "ref": None}
        for _ in range(ARGS.repeat):
            for impl in ("ours", "ref"):  # alternate, so both see the same load
                r = _run_child("exact_stream", {"impl": impl, "x": px, "y": py, "batch": batch})
                if best[impl] is None or r["seconds"] < best[impl]["seconds"]:
                    best[impl] = r
    finally:
        if not ARGS.keep:
            for f in (px, py):
                try:
                    os.remove(f)
                except OSError:
                    pass
    peak_gemm = gemm_gflops(2048 if ARGS.quick else 4096)
    flops = n * p * (p + 1) * 2 + 2.0 * n * p * p
    ours, ref = best["ours"], best["ref"]
    gf = flops / ours["seconds"] / 1e9
    peak_mb = ours["peak_kib"] / 1024
    return dict(
        case="exact_stream",
        reference="NumPy two-pass over the memmaps",
        n=n,
        p=f"{p}+{p}",
        dtype="float32 file",
        ours_s=ours["seconds"],
        ref_s=ref["seconds"],
        ratio=ref["seconds"] / ours["seconds"],
        diff=abs(ours["value"] - ref["value"]),
        peak_mb=peak_mb,
        ref_peak_mb=ref["peak_kib"] / 1024,
        extra=(
            f"{gf:.1f} GFLOP/s = {100 * gf / peak_gemm:.0f}% of the measured GEMM "
            f"{peak_gemm:.1f} GFLOP/s ({100 * gf / NOMINAL_GEMM_GFLOPS:.0f}% of nominal "
            f"{NOMINAL_GEMM_GFLOPS:.0f}); batch {batch}"
        ),
        ok=(gf >= 0.6 * peak_gemm) and (peak_mb < 1024),
    )


# --------------------------------------------------------------------------------------
# minibatch_12x12
# --------------------------------------------------------------------------------------


def _batch_layers(seed: int, m: int, p: int, L: int):
    """One batch of the two models: a[l] drifts with l; b[l] = tanh(a[l] W) + noise + 0.1."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((m, p))
    W = np.random.default_rng(12345).standard_normal((p, p)) / np.sqrt(p)
    a, b = {}, {}
    for layer in range(L):
        x = 0.8 * x + 0.6 * rng.standard_normal((m, p))
        a[f"a{layer}"] = x
        b[f"b{layer}"] = np.tanh(x @ W) + 0.3 * rng.standard_normal((m, p)) + 0.1
    return a, b


def _hsic_u(K: np.ndarray, L: np.ndarray) -> float:
    """Unbiased HSIC (Song et al. 2012) from the trace formula; K, L with zeroed diagonals."""
    n = K.shape[0]
    one_K = K.sum(axis=0)
    one_L = L.sum(axis=0)
    return float(
        (
            np.sum(K * L)
            + one_K.sum() * one_L.sum() / ((n - 1) * (n - 2))
            - 2.0 / (n - 2) * (one_K @ one_L)
        )
        / (n * (n - 3))
    )


def numpy_minibatch_per_pair(a: dict, b: dict, acc: dict) -> None:
    """Per-pair minibatch CKA update: for each pair, both Gram matrices and three HSIC_u."""
    for i, x in a.items():
        for j, y in b.items():
            K = x @ x.T
            L = y @ y.T
            np.fill_diagonal(K, 0.0)
            np.fill_diagonal(L, 0.0)
            kl, kk, ll = _hsic_u(K, L), _hsic_u(K, K), _hsic_u(L, L)
            s = acc.setdefault((i, j), [0.0, 0.0, 0.0])
            s[0] += kl
            s[1] += kk
            s[2] += ll


def case_minibatch(sz: dict) -> dict:
    n, p, L, m = sz["n"], sz["p"], sz["layers"], sz["batch"]
    bounds = cg.streaming.batch_bounds(n, m, "merge")
    ref_batches = min(ARGS.ref_batches, len(bounds))
    best_ours = best_ref = float("inf")
    diff = 0.0
    for _ in range(ARGS.repeat):
        ours_t = ref_t = 0.0
        acc_small = cg.MinibatchCKA()
        acc_all = cg.MinibatchCKA()
        ref_acc: dict = {}
        for k, (s, e) in enumerate(bounds):
            a, b = _batch_layers(k, e - s, p, L)
            t = time.perf_counter()
            acc_all.update(a, b)
            ours_t += time.perf_counter() - t
            if k < ref_batches:
                acc_small.update(a, b)
                t = time.perf_counter()
                numpy_minibatch_per_pair(a, b, ref_acc)
                ref_t += time.perf_counter() - t
        best_ours = min(best_ours, ours_t)
        best_ref = min(best_ref, ref_t * len(bounds) / ref_batches)
        small = acc_small.result()
        for (i, j), (kl, kk, ll) in ref_acc.items():
            diff = max(diff, abs(small[i, j] - kl / np.sqrt(kk * ll)))
    note = (
        ""
        if ref_batches == len(bounds)
        else f"; ref timed on {ref_batches}/{len(bounds)} batches, scaled"
    )
    return dict(
        case="minibatch_12x12",
        reference="NumPy per-pair (2 Grams + 3 HSIC_u per pair)",
        n=n,
        p=f"{L}x{p} vs {L}x{p}",
        dtype="float64",
        ours_s=best_ours,
        ref_s=best_ref,
        ratio=best_ref / best_ours,
        diff=diff,
        peak_mb=None,
        ref_peak_mb=None,
        extra=f"batch {m}, {len(bounds)} batches{note}",
        ok=best_ref / best_ours >= 5.0,
    )


# --------------------------------------------------------------------------------------
# rbf_large
# --------------------------------------------------------------------------------------


def _rbf_data(n: int, p: int):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, p)) + rng.standard_normal(p)
    W = rng.standard_normal((p, p)) / np.sqrt(p)
    Y = np.tanh(X @ W) + 0.5 * rng.standard_normal((n, p))
    return X, Y


def numpy_rbf_cka(X, Y) -> float:
    """RBF CKA in NumPy: full D2, median over all n^2 entries, K = exp(-D2/(2m)), HKH."""
    out = []
    for A in (X, Y):
        s = np.einsum("ij,ij->i", A, A)
        D2 = np.maximum(s[:, None] + s[None, :] - 2.0 * (A @ A.T), 0.0)
        np.fill_diagonal(D2, 0.0)
        K = np.exp(-D2 / (2.0 * np.median(D2)))
        K -= K.mean(axis=0, keepdims=True)
        K -= K.mean(axis=1, keepdims=True)
        out.append(K)
    return float(np.sum(out[0] * out[1]) / (np.linalg.norm(out[0]) * np.linalg.norm(out[1])))


def _child_rbf(opts: dict) -> dict:
    cg.cka(np.eye(8), np.eye(8), kernel="rbf")  # warm-up
    X, Y = _rbf_data(opts["n"], opts["p"])
    base = hwm_kib()
    t0 = time.perf_counter()
    value = cg.cka(X, Y, kernel="rbf")
    dt = time.perf_counter() - t0
    return {"seconds": dt, "value": value, "peak_kib": hwm_kib(), "base_kib": base}


def case_rbf(sz: dict) -> dict:
    n, p = sz["n"], sz["p"]
    best = None
    for _ in range(ARGS.repeat):
        r = _run_child("rbf_large", {"n": n, "p": p})
        if best is None or r["seconds"] < best["seconds"]:
            best = r
    ref_s = diff = None
    if n <= 5000:
        X, Y = _rbf_data(n, p)
        t = time.perf_counter()
        ref = numpy_rbf_cka(X, Y)
        ref_s = time.perf_counter() - t
        diff = abs(ref - best["value"])
    peak_mb = best["peak_kib"] / 1024
    grown_mb = (best["peak_kib"] - best["base_kib"]) / 1024
    return dict(
        case="rbf_large",
        reference="NumPy full n x n" if ref_s else f"none (n x n = {n * n * 8 / 2**30:.0f} GiB)",
        n=n,
        p=p,
        dtype="float64",
        ours_s=best["seconds"],
        ref_s=ref_s,
        ratio=(ref_s / best["seconds"]) if ref_s else None,
        diff=diff,
        peak_mb=peak_mb,
        ref_peak_mb=None,
        extra=f"{grown_mb:.0f} MB above the inputs; one n x n float64 = {n * n * 8 / 2**20:.0f} MB",
        ok=peak_mb < 2048,
    )


# --------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------


def main() -> int:
    if ARGS.child is not None:
        opts = json.loads(ARGS.child_args)
        out = _child_exact(opts) if ARGS.child == "exact_stream" else _child_rbf(opts)
        print(json.dumps(out))
        return 0
    sizes = QUICK if ARGS.quick else FULL
    print(
        f"congruence {cg.__version__}, numpy {np.__version__}, Python {platform.python_version()}, "
        f"cpu_count {os.cpu_count()}, threads {THREADS}, load {os.getloadavg()[0]:.2f}"
        f"{', QUICK sizes (targets are for full sizes)' if ARGS.quick else ''}"
    )
    for info in (
        _common.blas_info(
            threadpoolctl,
            ("internal_api", "version", "architecture", "num_threads"),
            blas_only=True,
        )
        or ()
    ):
        print(
            f"BLAS: {info['internal_api']} {info['version']} "
            f"{info['architecture']} threads={info['num_threads']}"
        )
    rows, failures = [], []
    runners = {
        "exact_stream": case_exact_stream,
        "minibatch_12x12": case_minibatch,
        "rbf_large": case_rbf,
    }
    for case in ARGS.only:
        try:
            rows.append(runners[case](sizes[case]))
        except Exception as exc:  # report and go on with the other cases
            failures.append(f"{case}: {type(exc).__name__}: {exc}")
    head = (
        f"{'case':<16} {'n':>9} {'p':>14} {'dtype':>12} {'thr':>3} {'ours s':>9} {'ref s':>9} "
        f"{'ref/ours':>8} {'|diff|':>9} {'peak MB':>8} {'target':<26} ok"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        print(
            f"{r['case']:<16} {r['n']:>9} {str(r['p']):>14} {r['dtype']:>12} {THREADS:>3} "
            f"{fmt(r['ours_s'], '9.2f')} {fmt(r['ref_s'], '9.2f')} {fmt(r['ratio'], '8.2f')} "
            f"{fmt(r['diff'], '9.1e')} {fmt(r['peak_mb'], '8.0f')} {TARGETS[r['case']]:<26} "
            f"{'yes' if r['ok'] else 'no'}"
        )
        print(
            f"    reference: {r['reference']}; {r['extra']}"
            + (f"; reference peak {r['ref_peak_mb']:.0f} MB" if r.get("ref_peak_mb") else "")
        )
    for f in failures:
        print("ERROR", f)
    if ARGS.json:
        with open(ARGS.json, "w") as fh:
            json.dump(
                {"threads": THREADS, "quick": ARGS.quick, "rows": rows, "errors": failures},
                fh,
                indent=1,
            )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
