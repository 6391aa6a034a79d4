#!/usr/bin/env python
"""Benchmark congruence's orthogonal Procrustes distance against SciPy references.

Each case runs ``congruence.orthogonal_procrustes`` and two SciPy implementations side by side
in the same process with the same thread count (BLAS threads for all of them: congruence's
alignment measures run on NumPy/SciPy), reports the best of k timed repetitions (after one
warm-up, repetitions interleaved), the speed ratio and the absolute difference of the values.

References (both written the straightforward way, as in MEASURES.md 3.1):

* ``scipy svd``: centre, divide by the Frobenius norm, zero-pad to equal width, then
  ``scipy.linalg.svd(A.T @ B, compute_uv=False)`` and ``sqrt(max(0, 2 - 2 * sum))``.
* ``scipy orthogonal_procrustes``: centre, normalise, zero-pad, ``R, _ =
  scipy.linalg.orthogonal_procrustes(A, B)``, then ``||A R - B||_F``.

congruence centres (one copy per input), forms ``Xc^T Yc`` with one GEMM (p1 x p2; the
normalisation is applied to that small matrix, padding is never materialised) and takes the
nuclear norm from the eigenvalues of the p x p Gram matrix of ``Xc^T Yc`` when an error bound
allows it (else from its singular values).

Usage::

    python benches/bench_alignment.py                 # full sizes
    python benches/bench_alignment.py --quick         # smoke test (n / 5, p / 4)
    python benches/bench_alignment.py --only op_5000x768 --threads 2 --repeat 5
    python benches/bench_alignment.py --json out.json
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time

import _common

CASES = {
    "op_5000x768": dict(n=5000, p=768),
    "op_20000x1024": dict(n=20000, p=1024),
}
QUICK_N_DIV = 5
QUICK_P_DIV = 4
TARGET = 2.0
AGREE = 1e-9  # |value difference| expected between two float64 computations


def _parse_args(argv=None):
    ap = argparse.ArgumentParser(description="congruence vs SciPy: orthogonal Procrustes benchmark")
    ap.add_argument(
        "--quick",
        action="store_true",
        help=f"divide n by {QUICK_N_DIV} and p by {QUICK_P_DIV} (smoke test)",
    )
    ap.add_argument("--only", metavar="NAME", help="comma-separated cases: " + ", ".join(CASES))
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="BLAS threads for every implementation (default: $OPENBLAS_NUM_THREADS "
        "or $RAYON_NUM_THREADS if set, else os.cpu_count())",
    )
    ap.add_argument(
        "--repeat", type=int, default=3, help="timed repetitions, best kept (default 3)"
    )
    ap.add_argument("--json", metavar="OUT", help="also write environment and rows as JSON")
    return _common.finish_args(ap, ap.parse_args(argv), CASES, check_threads=True)


ARGS = _parse_args()
THREADS = _common.resolve_threads(ARGS.threads, ("OPENBLAS_NUM_THREADS", "RAYON_NUM_THREADS"))
# Same thread count everywhere; BLAS libraries read these when they are loaded.
_BEFORE = _common.set_thread_env(THREADS)
_CALLER_ENV = {
    k: _BEFORE[k]
    for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS")
}

import numpy as np  # noqa: E402
import scipy  # noqa: E402
import scipy.linalg  # noqa: E402

import congruence as cg  # noqa: E402
from congruence.measures.alignment import orthogonal_procrustes  # noqa: E402

threadpoolctl, _LIMITER = _common.limit_blas(THREADS)


# --------------------------------------------------------------------------------------------
# Data and references
# --------------------------------------------------------------------------------------------


def _normalised_padded(X, Y):
    Xc = X - X.mean(axis=0)
    Yc = Y - Y.mean(axis=0)
    A = Xc / np.linalg.norm(Xc)
    B = Yc / np.linalg.norm(Yc)
    p = max(A.shape[1], B.shape[1])
    A = np.pad(A, ((0, 0), (0, p - A.shape[1])))
    B = np.pad(B, ((0, 0), (0, p - B.shape[1])))
    return A, B


def scipy_svd(X, Y) -> float:
    A, B = _normalised_padded(X, Y)
    s = scipy.linalg.svd(A.T @ B, compute_uv=False)
    return math.sqrt(max(0.0, 2.0 - 2.0 * float(s.sum())))


def scipy_orthogonal_procrustes(X, Y) -> float:
    A, B = _normalised_padded(X, Y)
    R, _ = scipy.linalg.orthogonal_procrustes(A, B)
    return float(np.linalg.norm(A @ R - B))


def run_case(name: str) -> list:
    n, p = CASES[name]["n"], CASES[name]["p"]
    if ARGS.quick:
        n, p = n // QUICK_N_DIV, p // QUICK_P_DIV
    X, Y = _common.make_pair(n, p)
    t, v = _common.timed(
        {
            "ours": lambda: orthogonal_procrustes(X, Y),
            "svd": lambda: scipy_svd(X, Y),
            "procrustes": lambda: scipy_orthogonal_procrustes(X, Y),
        },
        ARGS.repeat,
    )
    rows = []
    for ref, label in (
        ("svd", "scipy svd(A^T B, compute_uv=False)"),
        ("procrustes", "scipy.linalg.orthogonal_procrustes + ||AR-B||"),
    ):
        ratio = t[ref] / t["ours"]
        diff = abs(v["ours"] - v[ref])
        rows.append(
            dict(
                case=name,
                vs=label,
                n=n,
                p=p,
                dtype="float64",
                threads=THREADS,
                ours_s=t["ours"],
                ref_s=t[ref],
                ratio=ratio,
                abs_diff=diff,
                value=v["ours"],
                target=f">={TARGET:.2f}x; agree",
                ok=bool(ratio >= TARGET and diff <= AGREE),
            )
        )
    return rows


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def environment() -> dict:
    env = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "congruence": getattr(cg, "__version__", "?"),
        "cpu_count": os.cpu_count(),
        "affinity": _common.affinity(),
        "loadavg": _common.loadavg(),
        "threads": THREADS,
        "caller_thread_env": _CALLER_ENV,
        "quick": ARGS.quick,
        "repeat": ARGS.repeat,
    }
    env["blas"] = _common.blas_info(
        threadpoolctl, ("internal_api", "version", "architecture", "num_threads"), with_file=True
    )
    return env


def header_lines(env) -> list:
    lines = [
        "congruence alignment benchmark (orthogonal_procrustes)"
        + ("  [QUICK: reduced sizes; the target is for full sizes]" if env["quick"] else ""),
        f"  python {env['python']}, numpy {env['numpy']}, scipy {env['scipy']}, "
        f"congruence {env['congruence']}, {env['platform']}",
        f"  os.cpu_count()={env['cpu_count']}  affinity={env['affinity']}  loadavg="
        + ("/".join(f"{x:.2f}" for x in env["loadavg"]) if env["loadavg"] else "?"),
        f"  threads for every implementation: {env['threads']} (caller's env: "
        + ", ".join(
            f"{k}={v if v is not None else 'unset'}" for k, v in env["caller_thread_env"].items()
        )
        + ")",
    ]
    if env["blas"] is None:
        lines.append(
            "  BLAS: threadpoolctl not installed (pip install threadpoolctl to report and limit it)"
        )
    else:
        for b in env["blas"]:
            lines.append(
                f"  BLAS: {b['internal_api']} {b['version']} {b['architecture']}, "
                f"num_threads={b['num_threads']}, {b['file']}"
            )
    lines.append(f"  timing: best of {env['repeat']} after 1 warm-up, repetitions interleaved")
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
        "target",
        "ok",
    ]
    body = [
        [
            r["case"],
            r["vs"],
            str(r["n"]),
            str(r["p"]),
            r["dtype"],
            str(r["threads"]),
            f"{r['ours_s']:.4f}",
            f"{r['ref_s']:.4f}",
            f"{r['ratio']:.2f}",
            f"{r['abs_diff']:.2e}",
            r["target"],
            "yes" if r["ok"] else "NO",
        ]
        for r in rows
    ]
    out = _common.format_table(cols, body, numeric={2, 3, 5, 6, 7, 8, 9})
    out.append(
        "  ref/ours: speed-up of congruence (higher is better); |diff|: absolute difference "
        "of the distances"
    )
    return out


def main() -> int:
    env = environment()
    for ln in header_lines(env):
        print(ln)
    print(flush=True)
    t_all = time.perf_counter()
    rows, failed = _common.run_cases(ARGS.only, run_case)
    return _common.finish_report(table_lines(rows), failed, t_all, ARGS.json, env, rows)


if __name__ == "__main__":
    sys.exit(main())
