#!/usr/bin/env python
"""Benchmark congruence's kernel measures (CKA) against NumPy references.

Each case runs congruence and a NumPy reference side by side in the same process with the
same thread count (Rayon for congruence, BLAS for NumPy), reports the best of k timed
repetitions (after 1 warm-up), the speed ratio, the absolute difference of the values and,
for the RBF case, the peak memory of each, measured in a fresh subprocess.

Usage::

    python benches/bench_kernel.py                       # full sizes (minutes)
    python benches/bench_kernel.py --quick               # smoke test, < 30 s
    python benches/bench_kernel.py --only rbf_cka        # one case (comma-separate several)
    python benches/bench_kernel.py --json out.json       # also write the results as JSON
    python benches/bench_kernel.py --threads 2 --repeat 5
    python benches/bench_kernel.py --serial --only rbf_cka_6000,layers_12x12 --repeat 5
                                                         # serial fraction, 1 vs 2 threads

See benches/README.md for what each case measures and the targets.
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

CASES = (
    "linear_cka_f64",
    "linear_cka_f32",
    "debiased_linear_cka",
    "rbf_cka",
    "rbf_cka_6000",
    "layers_12x12",
    "layers_12x12_f32",
    "layers_12x12_n20000",
)

# Full sizes, and the divisors of n and p used by --quick.
SIZES = {
    "linear": dict(n=10000, p=2048),
    "rbf": dict(n=10000, p=256),
    "rbf_6000": dict(n=6000, p=256),
    "layers": dict(n=5000, p=768, layers=12),
    "layers_big": dict(n=20000, p=768, layers=12),
}
QUICK_N_DIV = 5
QUICK_P_DIV = 4
GRAM_PAIRS_TIMED = 6  # layers_12x12 (ii): pairs actually timed, extrapolated to all pairs
AGREE_F64 = 1e-9  # "the values agree" for two float64 computations of the same quantity
# NumPy's bundled OpenBLAS segfaults on X @ X.T for n >= 19000 with 2 threads on the
# benchmark machine; the RBF reference refuses such sizes.
RBF_REFERENCE_MAX_N = 19000

_ENV_SNAPSHOT = {
    k: os.environ.get(k)
    for k in (
        "RAYON_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "OMP_NUM_THREADS",
        "MKL_NUM_THREADS",
        "OPENBLAS_CORETYPE",
        "OPENBLAS_L2_SIZE",
    )
}


# --------------------------------------------------------------------------------------
# Arguments and thread setup (before NumPy / congruence are imported)
# --------------------------------------------------------------------------------------


def _parse_args(argv=None):
    ap = argparse.ArgumentParser(
        description="congruence vs NumPy: kernel measures (CKA) benchmark",
    )
    ap.add_argument(
        "--quick",
        action="store_true",
        help=f"divide n by {QUICK_N_DIV} and p by {QUICK_P_DIV} (smoke test, < 30 s)",
    )
    ap.add_argument(
        "--only", metavar="NAME", help="run only these cases (comma-separated): " + ", ".join(CASES)
    )
    ap.add_argument("--json", metavar="OUT", help="write environment and results to this JSON file")
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="threads for both congruence (Rayon) and NumPy (BLAS); default: "
        "$RAYON_NUM_THREADS if set, else os.cpu_count()",
    )
    ap.add_argument(
        "--repeat", type=int, default=3, help="timed repetitions, best is kept (default 3)"
    )
    ap.add_argument(
        "--stat",
        choices=("best", "median"),
        default="best",
        help="best of --repeat runs (default) or their median (the layer-matrix and RBF 6000 "
        "cases; the note then gives each ratio's range over the runs)",
    )
    ap.add_argument(
        "--serial",
        action="store_true",
        help="serial fraction instead of the table: run the selected cases (congruence only) "
        "in fresh interpreters with 1 and 2 threads, alternately, --repeat times each, and "
        "report the median times and s = 2 T2 / T1 - 1",
    )
    ap.add_argument(
        "--ours-only",
        dest="ours_only",
        action="store_true",
        help="time congruence only (no references); used by --serial",
    )
    # Internal: peak-memory measurement in a fresh interpreter.
    _common.add_mem_child_args(ap)
    return _common.finish_args(ap, ap.parse_args(argv), CASES, check_threads=True)


ARGS = _parse_args()
THREADS = _common.resolve_threads(ARGS.threads)

# Peak-memory subprocesses are started by a launcher created now, while this interpreter holds
# only the standard library (see _common.Launcher).
_LAUNCHER = None
if ARGS.mem_child is None and not ARGS.serial and "rbf_cka" in ARGS.only:
    _LAUNCHER = _common.Launcher()
# Same thread count for both sides. Rayon reads RAYON_NUM_THREADS when its global pool is
# built; BLAS libraries read theirs when loaded (threadpoolctl enforces it again below).
_common.set_thread_env(THREADS)

import numpy as np  # noqa: E402

import congruence as cg  # noqa: E402

threadpoolctl, _LIMITER = _common.limit_blas(THREADS)


# --------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------


def make_layers(n: int, p: int, L: int):
    """Two 'models' of L layers each; a[l] drifts with l, b[l] = tanh(a[l] @ W) + noise."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, p))
    a = []
    for _ in range(L):
        x = 0.8 * x + 0.6 * rng.standard_normal((n, p))
        a.append(x)
    W = rng.standard_normal((p, p)) / math.sqrt(p)
    b = []
    for x in a:
        y = np.tanh(x @ W)
        y += 0.3 * rng.standard_normal((n, p))
        y += 0.1  # offset
        b.append(y)
    return a, b


# --------------------------------------------------------------------------------------
# NumPy references
# --------------------------------------------------------------------------------------


def np_linear_cka(X, Y):
    """Feature-space linear CKA: ||Xc^T Yc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F)."""
    Xc = X - X.mean(0)
    Yc = Y - Y.mean(0)
    return float(
        np.linalg.norm(Xc.T @ Yc) ** 2 / (np.linalg.norm(Xc.T @ Xc) * np.linalg.norm(Yc.T @ Yc))
    )


def np_linear_cka_debiased(X, Y):
    """Feature-space debiased linear CKA (U-centred Gram matrices, Song et al. 2012).

    With d_i = ||xc_i||^2, e_i = ||yc_i||^2 (diagonals of Xc Xc^T, Yc Yc^T, whose row sums
    vanish): <Ku, Lu> = ||Xc^T Yc||_F^2 - (1 + 2/(n-2)) d.e + sum(d) sum(e) / ((n-1)(n-2)),
    and the self terms alike; CKA = <Ku, Lu> / sqrt(<Ku, Ku> <Lu, Lu>).
    """
    n = X.shape[0]
    Xc = X - X.mean(0)
    Yc = Y - Y.mean(0)
    d = np.einsum("ij,ij->i", Xc, Xc)
    e = np.einsum("ij,ij->i", Yc, Yc)
    c1 = 1.0 + 2.0 / (n - 2)
    c2 = 1.0 / ((n - 1) * (n - 2))

    def u(cross_sq, a, b):
        return float(cross_sq) - c1 * float(a @ b) + float(a.sum()) * float(b.sum()) * c2

    kl = u(np.linalg.norm(Xc.T @ Yc) ** 2, d, e)
    kk = u(np.linalg.norm(Xc.T @ Xc) ** 2, d, d)
    ll = u(np.linalg.norm(Yc.T @ Yc) ** 2, e, e)
    return kl / math.sqrt(kk * ll)


def np_rbf_centred_gram(X):
    """Doubly centred RBF Gram matrix, bandwidth sigma^2 = median of all n^2 squared distances.

    In place where NumPy allows it (the median needs its own copy of the n^2 entries).
    """
    if X.shape[0] >= RBF_REFERENCE_MAX_N:
        raise RuntimeError(
            f"n={X.shape[0]} >= {RBF_REFERENCE_MAX_N}: NumPy's bundled OpenBLAS "
            "segfaults on X @ X.T at this size on the benchmark machine"
        )
    s = np.einsum("ij,ij->i", X, X)
    D2 = X @ X.T  # Gram G
    D2 *= -2.0
    D2 += s[:, None]
    D2 += s[None, :]
    np.maximum(D2, 0.0, out=D2)
    np.fill_diagonal(D2, 0.0)
    m = float(np.median(D2))  # over all n^2 entries, diagonal zeros included
    K = D2
    K *= -1.0 / (2.0 * m)
    np.exp(K, out=K)
    r = K.mean(axis=1)  # K is symmetric: row means = column means
    g = float(r.mean())
    K -= r[:, None]
    K -= r[None, :]
    K += g
    return K


def np_rbf_cka(X, Y):
    K = np_rbf_centred_gram(X)
    L = np_rbf_centred_gram(Y)
    return float(np.vdot(K, L) / (np.linalg.norm(K) * np.linalg.norm(L)))


def np_layers_cached(a, b):
    """144-pair linear CKA with cached self terms: centre and ||Xc^T Xc||_F once per layer."""
    ac = [x - x.mean(0) for x in a]
    bc = [y - y.mean(0) for y in b]
    na = [np.linalg.norm(x.T @ x) for x in ac]
    nb = [np.linalg.norm(y.T @ y) for y in bc]
    out = np.empty((len(a), len(b)))
    for i, x in enumerate(ac):
        for j, y in enumerate(bc):
            out[i, j] = np.linalg.norm(x.T @ y) ** 2 / (na[i] * nb[j])
    return out


def np_pair_gram(X, Y):
    """Linear CKA through the two n x n Gram matrices (what the PyTorch CKA tools do)."""
    Xc = X - X.mean(0)
    Yc = Y - Y.mean(0)
    K = Xc @ Xc.T
    L = Yc @ Yc.T
    return float(np.vdot(K, L) / (np.linalg.norm(K) * np.linalg.norm(L)))


# --------------------------------------------------------------------------------------
# Timing and memory
# --------------------------------------------------------------------------------------


def mem_child(args) -> None:
    """Run one RBF implementation once in this fresh interpreter; print a JSON line."""
    n, p = args.n, args.p
    # Warm both libraries up on tiny inputs (BLAS buffers, Rayon pool, lazy imports) so
    # that one-time allocations count in the baseline, not in the measurement.
    rng = np.random.default_rng(1)
    t = rng.standard_normal((256, 16))
    cg.cka(t, t[:, ::-1], kernel="rbf")
    cg.cka(t, t[:, ::-1])
    np_rbf_cka(t, t[:, ::-1])
    del t
    X, Y = _common.make_pair(n, p)
    gc.collect()
    base, base_hwm = _common.maxrss_kib(), _common.vmhwm_kib()
    fn = {"congruence": lambda: cg.cka(X, Y, kernel="rbf"), "numpy": lambda: np_rbf_cka(X, Y)}[
        args.impl
    ]
    t0 = time.perf_counter()
    v = float(fn())
    dt = time.perf_counter() - t0
    peak, peak_hwm = _common.maxrss_kib(), _common.vmhwm_kib()
    print(
        json.dumps(
            {
                "impl": args.impl,
                "n": n,
                "p": p,
                "baseline_kib": base,
                "peak_kib": peak,
                "baseline_hwm_kib": base_hwm,
                "peak_hwm_kib": peak_hwm,
                "value": v,
                "seconds": dt,
            }
        )
    )


def measure_peak(case: str, impl: str, n: int, p: int) -> dict:
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
    if _LAUNCHER is None:
        raise RuntimeError("the memory-measurement launcher is not running")
    out = _LAUNCHER.run(cmd, f"for {impl}")
    nxn_kib = n * n * 8 / 1024
    out["nxn"] = (out["peak_kib"] - out["baseline_kib"]) / nxn_kib
    if out.get("peak_hwm_kib") is not None:
        out["nxn_hwm"] = (out["peak_hwm_kib"] - out["baseline_hwm_kib"]) / nxn_kib
    return out


def _close_launcher():
    if _LAUNCHER is not None:
        _LAUNCHER.close(timeout=30)


# --------------------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------------------


def _row(
    case,
    vs,
    n,
    p,
    dtype,
    ours,
    ref,
    diff=None,
    mem_ours=None,
    mem_ref=None,
    target=None,
    ok=None,
    note=None,
):
    return dict(
        case=case,
        vs=vs,
        n=n,
        p=p,
        dtype=dtype,
        threads=THREADS,
        ours_s=ours,
        ref_s=ref,
        ratio=(ref / ours) if (ours and ref) else None,
        abs_diff=None if diff is None else float(diff),
        mem_ours_nxn=mem_ours,
        mem_ref_nxn=mem_ref,
        target=target,
        ok=None if ok is None else bool(ok),
        note=note,
    )


def _scale(n, p):
    if ARGS.quick:
        return max(n // QUICK_N_DIV, 8), max(p // QUICK_P_DIV, 2)
    return n, p


def case_linear_cka_f64(k):
    n, p = _scale(**SIZES["linear"])
    X, Y = _common.make_pair(n, p)
    t, v = _common.timed({"ours": lambda: cg.cka(X, Y), "ref": lambda: np_linear_cka(X, Y)}, k)
    diff = abs(v["ours"] - v["ref"])
    return [
        _row(
            "linear_cka_f64",
            "numpy f64 feature-space",
            n,
            p,
            "float64",
            t["ours"],
            t["ref"],
            diff,
            target=f"values agree (<={AGREE_F64:g})",
            ok=diff <= AGREE_F64,
        )
    ]


def case_linear_cka_f32(k):
    n, p = _scale(**SIZES["linear"])
    X, Y = _common.make_pair(n, p)
    # Round the data to float32 once: the float64 reference then sees exactly the values
    # congruence gets as float32, so |diff| is the error of the float32 computation alone.
    X32, Y32 = X.astype(np.float32), Y.astype(np.float32)
    del X, Y
    X64, Y64 = X32.astype(np.float64), Y32.astype(np.float64)
    t, v = _common.timed(
        {
            "ours": lambda: cg.cka(X32, Y32),
            "ref64": lambda: np_linear_cka(X64, Y64),
            "ref32": lambda: np_linear_cka(X32, Y32),
        },
        k,
    )
    d64 = abs(v["ours"] - v["ref64"])
    d32 = abs(v["ref32"] - v["ref64"])
    ratio = t["ref64"] / t["ours"]
    return [
        _row(
            "linear_cka_f32",
            "numpy f64 feature-space",
            n,
            p,
            "float32",
            t["ours"],
            t["ref64"],
            d64,
            target=">=1.80x and |diff|<=1e-5",
            ok=(ratio >= 1.8 and d64 <= 1e-5),
        ),
        _row(
            "linear_cka_f32",
            "numpy f32 (info; |diff| = numpy f32 vs f64)",
            n,
            p,
            "float32",
            t["ours"],
            t["ref32"],
            d32,
            target="info",
        ),
    ]


def case_debiased_linear_cka(k):
    n, p = _scale(**SIZES["linear"])
    X, Y = _common.make_pair(n, p)
    t, v = _common.timed(
        {
            "ours": lambda: cg.cka(X, Y, debiased=True),
            "biased": lambda: cg.cka(X, Y),
            "ref": lambda: np_linear_cka_debiased(X, Y),
        },
        k,
    )
    slow = t["ours"] / t["biased"]
    diff = abs(v["ours"] - v["ref"])
    return [
        _row(
            "debiased_linear_cka",
            "congruence biased (ref/ours = biased/debiased)",
            n,
            p,
            "float64",
            t["ours"],
            t["biased"],
            None,
            target="debiased <= 1.10x biased time",
            ok=slow <= 1.1,
        ),
        _row(
            "debiased_linear_cka",
            "numpy f64 feature-space debiased",
            n,
            p,
            "float64",
            t["ours"],
            t["ref"],
            diff,
            target=f"values agree (<={AGREE_F64:g})",
            ok=diff <= AGREE_F64,
        ),
    ]


def case_rbf_cka(k):
    n, p = _scale(**SIZES["rbf"])
    X, Y = _common.make_pair(n, p)
    t, v = _common.timed(
        {"ours": lambda: cg.cka(X, Y, kernel="rbf"), "ref": lambda: np_rbf_cka(X, Y)}, k
    )
    diff = abs(v["ours"] - v["ref"])
    X = Y = None  # free the inputs (the lambdas above hold the same cells)
    gc.collect()
    mo = measure_peak("rbf_cka", "congruence", n, p)
    mr = measure_peak("rbf_cka", "numpy", n, p)
    ok = diff <= AGREE_F64 and mo["nxn"] <= 2.0
    for m in (mo, mr):
        if m.get("nxn_hwm") is not None and abs(m["nxn_hwm"] - m["nxn"]) > 0.05:
            print(
                f"WARNING [rbf_cka]: {m['impl']} ru_maxrss gives {m['nxn']:.2f} nxn but VmHWM "
                f"gives {m['nxn_hwm']:.2f} nxn",
                file=sys.stderr,
            )
    return [
        _row(
            "rbf_cka",
            "numpy f64 Gram/median/exp/centre",
            n,
            p,
            "float64",
            t["ours"],
            t["ref"],
            diff,
            mem_ours=mo["nxn"],
            mem_ref=mr["nxn"],
            target=f"peak <= 2.00 nxn; agree (<={AGREE_F64:g})",
            ok=ok,
            note=(
                f"peak memory: fresh subprocess, ru_maxrss - baseline after imports, warm-up "
                f"and data; 1 nxn = {n * n * 8 / 2**20:.1f} MiB; congruence {mo['nxn']:.2f} nxn "
                f"({(mo['peak_kib'] - mo['baseline_kib']) / 1024:.0f} MiB), numpy {mr['nxn']:.2f} "
                f"nxn ({(mr['peak_kib'] - mr['baseline_kib']) / 1024:.0f} MiB)"
            ),
        )
    ]


def _timed(fns: dict, k: int):
    """``_common.timed``, or with ``--stat median`` the median of k alternating runs; returns
    (seconds, values, per-run seconds)."""
    if ARGS.stat == "best":
        t, v = _common.timed(fns, k)
        return t, v, None
    t, v, runs = _common.alternating(fns, k)
    return t, v, runs


def _spread(runs, ours="ours", ref="ref") -> str:
    if runs is None:
        return ""
    ratios = sorted(b / a for a, b in zip(runs[ours], runs[ref]))
    return (
        f"; median of {len(ratios)} alternating runs, ratio per run "
        f"{ratios[0]:.2f}-{ratios[-1]:.2f}, congruence {min(runs[ours]):.3f}-"
        f"{max(runs[ours]):.3f} s, reference {min(runs[ref]):.3f}-{max(runs[ref]):.3f} s"
    )


def _ours_only_row(case, n, p, dtype, t):
    return _row(case, "none (--ours-only)", n, p, dtype, t, None, target="info")


def case_rbf_cka_6000(k):
    """RBF CKA at the size of the serial-fraction measurement (no memory measurement)."""
    n, p = _scale(**SIZES["rbf_6000"])
    X, Y = _common.make_pair(n, p)
    ours = {"ours": lambda: cg.cka(X, Y, kernel="rbf")}
    if ARGS.ours_only:
        return [_ours_only_row("rbf_cka_6000", n, p, "float64", _common.timed(ours, k)[0]["ours"])]
    t, v, runs = _timed({**ours, "ref": lambda: np_rbf_cka(X, Y)}, k)
    diff = abs(v["ours"] - v["ref"])
    return [
        _row(
            "rbf_cka_6000",
            "numpy f64 Gram/median/exp/centre",
            n,
            p,
            "float64",
            t["ours"],
            t["ref"],
            diff,
            target=f"agree (<={AGREE_F64:g})",
            ok=diff <= AGREE_F64,
            note=_spread(runs)[2:] or None,
        )
    ]


def gemm_calibration(n: int, p: int, k: int, dtype=np.float64) -> float:
    """Seconds of one n x n x p product in ``dtype`` (NumPy, best of k): the machine's GEMM
    rate in that precision.

    ``X @ Y.T`` with two different arrays, so that NumPy does not take its symmetric
    (``syrk``, half the flops) shortcut for ``X @ X.T``."""
    rng = np.random.default_rng(3)
    X = rng.standard_normal((n, p)).astype(dtype)
    Y = rng.standard_normal((n, p)).astype(dtype)
    t, _ = _common.timed({"gemm": lambda: X @ Y.T}, k)
    return t["gemm"]


def case_layers_12x12(k):
    n, p = _scale(SIZES["layers"]["n"], SIZES["layers"]["p"])
    L = SIZES["layers"]["layers"]
    a, b = make_layers(n, p, L)
    npairs = L * L
    ours = {"ours": lambda: cg.compare_layers(a, b, "cka").values}
    if ARGS.ours_only:
        return [_ours_only_row("layers_12x12", n, p, "float64", _common.timed(ours, k)[0]["ours"])]
    t, v, runs = _timed({**ours, "ref": lambda: np_layers_cached(a, b)}, k)
    # The Gram-route bound: 2L layers x n^2 p flops (symmetric products), at the rate of one
    # n x n x p product (2 n^2 p flops) measured now: 2L x n^2 p / (2 n^2 p / t) = L t.
    t_gemm = gemm_calibration(n, p, k)
    bound = L * t_gemm
    ours_m = v["ours"]
    diff_c = float(np.max(np.abs(ours_m - v["ref"])))
    # (ii) Gram matrices recomputed per pair: time GRAM_PAIRS_TIMED pairs, extrapolate.
    pairs = [(i, (5 * i + 1) % L) for i in range(0, L, max(L // GRAM_PAIRS_TIMED, 1))][
        :GRAM_PAIRS_TIMED
    ]
    tg, vg = _common.timed({"gram": lambda: [np_pair_gram(a[i], b[j]) for i, j in pairs]}, k)
    t_gram = tg["gram"] * npairs / len(pairs)
    diff_g = max(abs(ours_m[i, j] - g) for (i, j), g in zip(pairs, vg["gram"]))
    r_c = t["ref"] / t["ours"]
    r_g = t_gram / t["ours"]
    return [
        _row(
            "layers_12x12",
            f"numpy cached self terms ({npairs} pairs)",
            n,
            p,
            "float64",
            t["ours"],
            t["ref"],
            diff_c,
            target=">=2.20x (or >=90% of the Gram bound); agree",
            ok=((r_c >= 2.2 or bound / t["ours"] >= 0.9) and diff_c <= AGREE_F64),
            note=(
                f"Gram-route bound {bound:.3f} s = {2 * L} layers x n^2 p flops at the GEMM rate "
                f"measured now ({2 * n * n * p / t_gemm / 1e9:.1f} GFLOP/s: one {n}x{p} @ "
                f"{p}x{n} product in {t_gemm:.3f} s); congruence at "
                f"{bound / t['ours']:.0%} of the bound" + _spread(runs)
            ),
        ),
        _row(
            "layers_12x12",
            f"numpy Gram per pair (EXTRAPOLATED: {len(pairs)} pairs timed x{npairs // len(pairs)})",
            n,
            p,
            "float64",
            t["ours"],
            t_gram,
            diff_g,
            target=">=10.00x; agree",
            ok=(r_g >= 10.0 and diff_g <= AGREE_F64),
            note=(
                f"Gram-per-pair reference timed on {len(pairs)} pairs {pairs} "
                f"({tg['gram']:.3f} s) and extrapolated to {npairs} pairs ({t_gram:.3f} s); "
                f"|diff| is the max over those {len(pairs)} pairs"
            ),
        ),
    ]


def case_layers_12x12_f32(k):
    """float32 input to congruence vs the float64 NumPy loop on the same values."""
    n, p = _scale(SIZES["layers"]["n"], SIZES["layers"]["p"])
    L = SIZES["layers"]["layers"]
    a, b = make_layers(n, p, L)
    a32 = [x.astype(np.float32) for x in a]
    b32 = [x.astype(np.float32) for x in b]
    del a, b
    ours = {"ours": lambda: cg.compare_layers(a32, b32, "cka").values}
    if ARGS.ours_only:
        return [
            _ours_only_row("layers_12x12_f32", n, p, "float32", _common.timed(ours, k)[0]["ours"])
        ]
    a64 = [x.astype(np.float64) for x in a32]
    b64 = [x.astype(np.float64) for x in b32]
    t, v, runs = _timed({**ours, "ref": lambda: np_layers_cached(a64, b64)}, k)
    # The exact reference: congruence's float64 computation on the same values (not timed).
    exact = cg.compare_layers(a64, b64, "cka").values
    rel = float(np.max(np.abs(v["ours"] - exact) / np.abs(exact)))
    r = t["ref"] / t["ours"]
    # The float32 Gram-route bound: the float64 case's flops (2L layers x n^2 p, symmetric)
    # at the rate of one float32 n x n x p product measured now.
    t_gemm = gemm_calibration(n, p, k, np.float32)
    bound = L * t_gemm
    return [
        _row(
            "layers_12x12_f32",
            f"numpy f64 cached self terms ({L * L} pairs); |diff| = max relative vs float64",
            n,
            p,
            "float32",
            t["ours"],
            t["ref"],
            rel,
            target=">=4.00x; rel diff <=1e-6",
            ok=(r >= 4.0 and rel <= 1e-6),
            note=(
                f"float32 Gram-route bound {bound:.3f} s = {2 * L} layers x n^2 p flops at the "
                f"float32 GEMM rate measured now ({2 * n * n * p / t_gemm / 1e9:.1f} GFLOP/s: "
                f"one {n}x{p} @ {p}x{n} float32 product in {t_gemm:.3f} s); congruence at "
                f"{bound / t['ours']:.0%} of the bound" + _spread(runs)
            ),
        )
    ]


def case_layers_12x12_n20000(k):
    """12 x 12 at n = 20000 (the feature route) vs the NumPy loop with cached self terms."""
    n, p = _scale(SIZES["layers_big"]["n"], SIZES["layers_big"]["p"])
    L = SIZES["layers_big"]["layers"]
    a, b = make_layers(n, p, L)
    ours = {"ours": lambda: cg.compare_layers(a, b, "cka").values}
    if ARGS.ours_only:
        return [
            _ours_only_row(
                "layers_12x12_n20000", n, p, "float64", _common.timed(ours, k)[0]["ours"]
            )
        ]
    t, v, runs = _timed({**ours, "ref": lambda: np_layers_cached(a, b)}, k)
    diff = float(np.max(np.abs(v["ours"] - v["ref"])))
    r = t["ref"] / t["ours"]
    return [
        _row(
            "layers_12x12_n20000",
            f"numpy cached self terms ({L * L} pairs)",
            n,
            p,
            "float64",
            t["ours"],
            t["ref"],
            diff,
            target=">=1.10x; agree",
            ok=(r >= 1.1 and diff <= AGREE_F64),
            note=_spread(runs)[2:] or None,
        )
    ]


def serial_fraction() -> int:
    """Median 1- and 2-thread times of the selected cases (congruence only), each run in a
    fresh interpreter, the thread counts alternating; s = 2 T2 / T1 - 1 (Amdahl)."""
    import statistics
    import subprocess
    import tempfile

    times = {c: {1: [], 2: []} for c in ARGS.only}
    for _ in range(ARGS.repeat):
        for threads in (1, 2):
            with tempfile.TemporaryDirectory() as d:
                out = os.path.join(d, "rows.json")
                cmd = [
                    sys.executable,
                    os.path.abspath(__file__),
                    "--only",
                    ",".join(ARGS.only),
                    "--threads",
                    str(threads),
                    "--repeat",
                    "1",
                    "--ours-only",
                    "--json",
                    out,
                ] + (["--quick"] if ARGS.quick else [])
                subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
                with open(out, encoding="utf-8") as f:
                    rows = json.load(f)["rows"]
            for r in rows:
                times[r["case"]][threads].append(r["ours_s"])
    print(f"serial fraction, {ARGS.repeat} alternating runs per thread count (medians; range)")
    for case, t in times.items():
        t1, t2 = statistics.median(t[1]), statistics.median(t[2])
        per_run = sorted(_common.serial_fraction(a, b) for a, b in zip(t[1], t[2]))
        print(
            f"  {case}: T1 {t1:.3f} s ({min(t[1]):.3f}-{max(t[1]):.3f}), T2 {t2:.3f} s "
            f"({min(t[2]):.3f}-{max(t[2]):.3f}), s = 2 T2/T1 - 1 = {_common.serial_fraction(t1, t2):.1%} "
            f"(per run {per_run[0]:.1%} to {per_run[-1]:.1%})"
        )
    return 0


RUNNERS = {
    "linear_cka_f64": case_linear_cka_f64,
    "linear_cka_f32": case_linear_cka_f32,
    "debiased_linear_cka": case_debiased_linear_cka,
    "rbf_cka": case_rbf_cka,
    "rbf_cka_6000": case_rbf_cka_6000,
    "layers_12x12": case_layers_12x12,
    "layers_12x12_f32": case_layers_12x12_f32,
    "layers_12x12_n20000": case_layers_12x12_n20000,
}


# --------------------------------------------------------------------------------------
# Environment header and table
# --------------------------------------------------------------------------------------


def environment() -> dict:
    env = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "numpy": np.__version__,
        "congruence": getattr(cg, "__version__", "?"),
        "cpu_count": os.cpu_count(),
        "affinity": _common.affinity(),
        "loadavg": _common.loadavg(),
        "threads": THREADS,
        "rayon_num_threads_env": _ENV_SNAPSHOT["RAYON_NUM_THREADS"],
        "openblas_coretype": _ENV_SNAPSHOT["OPENBLAS_CORETYPE"],
        "openblas_l2_size": _ENV_SNAPSHOT["OPENBLAS_L2_SIZE"],
        "blas_thread_env": {
            k: _ENV_SNAPSHOT[k]
            for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
        },
        "quick": ARGS.quick,
        "repeat": ARGS.repeat,
        "stat": ARGS.stat,
        "warmup": 1,
    }
    if threadpoolctl is not None:
        env["threadpoolctl"] = threadpoolctl.__version__
        env["blas"] = _common.blas_info(
            threadpoolctl,
            (
                "user_api",
                "internal_api",
                "version",
                "architecture",
                "threading_layer",
                "num_threads",
            ),
            with_file=True,
        )
    else:
        env["threadpoolctl"] = None
        env["blas"] = None
    return env


def header_lines(env) -> list:
    def setornot(v):
        return "unset" if v is None else f"set ({v!r})"

    lines = [
        "congruence kernel benchmark"
        + (
            "  [QUICK: smoke test, reduced sizes; targets are for full sizes]"
            if env["quick"]
            else ""
        ),
        f"  python {env['python']}, numpy {env['numpy']}, congruence {env['congruence']}, {env['platform']}",
        f"  os.cpu_count()={env['cpu_count']}  sched affinity={env['affinity']}  "
        f"loadavg={'/'.join(f'{x:.2f}' for x in env['loadavg']) if env['loadavg'] else '?'}",
        f"  threads used by both sides: {env['threads']}  (RAYON_NUM_THREADS in caller's env: "
        f"{env['rayon_num_threads_env'] or 'unset'}; set to {env['threads']} for this run)",
        f"  OPENBLAS_CORETYPE: {setornot(env['openblas_coretype'])}  "
        f"OPENBLAS_L2_SIZE: {setornot(env['openblas_l2_size'])}",
        "  BLAS thread env in caller's env: "
        + ", ".join(
            f"{k}={v if v is not None else 'unset'}" for k, v in env["blas_thread_env"].items()
        ),
    ]
    if env["blas"] is None:
        lines.append(
            "  NumPy BLAS: threadpoolctl not installed (pip install threadpoolctl to report it)"
        )
    else:
        for b in env["blas"]:
            lines.append(
                f"  NumPy BLAS (threadpoolctl {env['threadpoolctl']}): {b['internal_api']} {b['version']}, "
                f"kernel={b['architecture']}, threading={b['threading_layer']}, "
                f"num_threads={b['num_threads']}, {b['file']}"
            )
    lines.append(
        f"  timing: {env['stat']} of {env['repeat']} (time.perf_counter) after 1 warm-up, "
        "repetitions interleaved between congruence and the reference"
    )
    return lines


def table_lines(rows) -> list:
    cols = [
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
    ]
    body = []
    for r in rows:
        body.append(
            [
                r["case"],
                r["vs"],
                str(r["n"]),
                str(r["p"]),
                r["dtype"],
                str(r["threads"]),
                _common.fmt(r["ours_s"], ".4f"),
                _common.fmt(r["ref_s"], ".4f"),
                _common.fmt(r["ratio"], ".2f"),
                _common.fmt(r["abs_diff"], ".2e"),
                _common.fmt(r["mem_ours_nxn"], ".2f"),
                _common.fmt(r["mem_ref_nxn"], ".2f"),
                r["target"] or "-",
                "-" if r["ok"] is None else ("yes" if r["ok"] else "NO"),
            ]
        )
    out = _common.format_table(cols, body, numeric={2, 3, 5, 6, 7, 8, 9, 10, 11})
    out.append(
        "  ours/ref s: best-of-k seconds; ref/ours: speed-up of congruence (higher is better); "
        "mem: peak above baseline, in n x n float64 matrices"
    )
    notes = [f"  note [{r['case']}]: {r['note']}" for r in rows if r.get("note")]
    return out + notes


def main() -> int:
    if ARGS.mem_child:
        mem_child(ARGS)
        return 0
    if ARGS.serial:
        return serial_fraction()
    try:
        return _run()
    finally:
        _close_launcher()


def _run() -> int:
    env = environment()
    for ln in header_lines(env):
        print(ln)
    print(flush=True)
    t_all = time.perf_counter()
    rows, failed = _common.run_cases(
        ARGS.only, lambda name: RUNNERS[name](ARGS.repeat), report_failures=True
    )
    return _common.finish_report(table_lines(rows), failed, t_all, ARGS.json, env, rows)


if __name__ == "__main__":
    sys.exit(main())
