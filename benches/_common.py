"""Scaffolding shared by the ``bench_*.py`` scripts: argument checks, threads, timing, memory.

Only the standard library is imported here, so a script can import this module, resolve its
thread count and call :func:`set_thread_env` *before* it imports NumPy, SciPy or torch (BLAS
libraries and Rayon read their thread variables when they are loaded). Functions that need a
library (:func:`limit_blas`) import it themselves and are meant to be called after NumPy.

The scripts import it as ``import _common`` (Python puts the script's folder first on
``sys.path``), also in the fresh interpreters they start for memory measurements.
"""

from __future__ import annotations

import gc
import json
import math
import os
import subprocess
import sys
import time

THREAD_VARS = ("RAYON_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


# --------------------------------------------------------------------------------------
# Arguments
# --------------------------------------------------------------------------------------


def select_cases(only: str | None, cases) -> list:
    """The case names of a comma-separated ``--only`` value (all ``cases`` when it is empty).

    Raises ValueError naming the unknown ones."""
    names = [s.strip() for s in (only or ",".join(cases)).split(",") if s.strip()]
    bad = [s for s in names if s not in cases]
    if bad:
        raise ValueError(f"unknown case(s) {bad}; choose from {', '.join(cases)}")
    return names


def add_mem_child_args(ap) -> None:
    """The hidden options of a peak-memory child run: case, implementation, n and p."""
    import argparse

    ap.add_argument("--_mem-child", dest="mem_child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--_impl", dest="impl", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--_n", dest="n", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--_p", dest="p", type=int, default=None, help=argparse.SUPPRESS)


def finish_args(ap, args, cases, *, check_repeat: bool = True, check_threads: bool = False):
    """Replace ``args.only`` by the list of selected cases and check ``--repeat`` (and
    ``--threads`` if asked) are >= 1; errors go through ``ap.error`` (usage, exit 2)."""
    try:
        args.only = select_cases(args.only, cases)
    except ValueError as exc:
        ap.error(str(exc))
    if check_repeat and args.repeat < 1:
        ap.error("--repeat must be >= 1")
    if check_threads and args.threads is not None and args.threads < 1:
        ap.error("--threads must be >= 1")
    return args


# --------------------------------------------------------------------------------------
# Threads (call before NumPy / torch are imported)
# --------------------------------------------------------------------------------------


def resolve_threads(requested: int | None, env_vars=("RAYON_NUM_THREADS",)) -> int:
    """``requested`` if given, else the first of ``env_vars`` holding a positive integer,
    else ``os.cpu_count()``."""
    if requested is not None:
        return requested
    for var in env_vars:
        v = os.environ.get(var, "")
        if v.strip().isdigit() and int(v) > 0:
            return int(v)
    return os.cpu_count() or 1


def set_thread_env(threads: int) -> dict:
    """Set every variable of THREAD_VARS to ``threads``; return the caller's values (None if
    unset). Must run before the libraries that read them are imported."""
    before = {var: os.environ.get(var) for var in THREAD_VARS}
    for var in THREAD_VARS:
        os.environ[var] = str(threads)
    return before


def limit_blas(threads: int, user_api: str | None = "blas"):
    """Limit the loaded thread pools with threadpoolctl (after NumPy is imported).

    Returns ``(threadpoolctl module, limiter)``, or ``(None, None)`` without threadpoolctl."""
    try:
        import threadpoolctl
    except ImportError:  # pragma: no cover - optional
        return None, None
    return threadpoolctl, threadpoolctl.threadpool_limits(limits=threads, user_api=user_api)


def blas_info(threadpoolctl, keys, *, blas_only: bool = False, with_file: bool = False):
    """One dict of ``keys`` per thread pool threadpoolctl sees (None without threadpoolctl)."""
    if threadpoolctl is None:
        return None
    out = []
    for info in threadpoolctl.threadpool_info():
        if blas_only and info.get("user_api") != "blas":
            continue
        d = {k: info.get(k) for k in keys}
        if with_file:
            d["file"] = os.path.basename(info.get("filepath", ""))
        out.append(d)
    return out


def affinity():
    """Number of CPUs this process may run on (None where unknown)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None


def loadavg():
    """The 1, 5 and 15 minute load averages as a list (None where unknown)."""
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


# --------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------


def make_pair(n: int, p: int, link: str = "linear"):
    """The benchmark pair, float64, from ``np.random.default_rng(0)``: ``X`` standard normal
    with random column offsets (so centring matters), ``W`` Gaussian / sqrt(p), and
    ``Y = X W + 0.5 noise`` (``link="linear"``) or ``Y = tanh(X W) + 0.5 noise``
    (``link="tanh"``)."""
    import numpy as np

    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, p))
    X += rng.standard_normal(p)
    Y = X @ (rng.standard_normal((p, p)) / math.sqrt(p))
    if link == "tanh":
        np.tanh(Y, out=Y)
    elif link != "linear":
        raise ValueError(f"link must be 'linear' or 'tanh', not {link!r}")
    Y += 0.5 * rng.standard_normal((n, p))
    return X, Y


# --------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------


def timed(fns: dict, k: int, *, warmup: bool = True, cpu: bool = False):
    """Best-of-k wall seconds and the last value of each callable.

    With ``warmup`` each callable first runs once untimed. The k timed repetitions are
    interleaved (ours, ref, ours, ref, ...) so that all sides see the same machine load, with a
    ``gc.collect()`` before each run. With ``cpu`` the best entry is ``(wall, process CPU
    seconds of that run)`` instead of the wall seconds alone."""
    values = {}
    if warmup:
        for name, fn in fns.items():
            gc.collect()
            values[name] = fn()
    best = {name: (math.inf, math.inf) for name in fns}
    for _ in range(k):
        for name, fn in fns.items():
            gc.collect()
            t0, c0 = time.perf_counter(), time.process_time()
            values[name] = fn()
            wall, used = time.perf_counter() - t0, time.process_time() - c0
            if wall < best[name][0]:
                best[name] = (wall, used)
    if not cpu:
        best = {name: b[0] for name, b in best.items()}
    return best, values


def alternating(fns: dict, k: int, *, warmup: bool = True, clock: str = "wall"):
    """Median seconds of ``k`` alternating runs of each callable (ours, ref, ours, ref, ...;
    a ``gc.collect()`` before each), so that every side sees the same machine load; wall
    seconds, or with ``clock="cpu"`` the process's CPU seconds (steadier under load for
    single-threaded comparisons).

    Returns ``(medians, values, runs)``: the median seconds and the last value of each
    callable, and its ``k`` per-run seconds (for the spread of the ratios, see
    :func:`ratio_spread`). With ``warmup`` each callable first runs once untimed."""
    import statistics

    values = {}
    if warmup:
        for name, fn in fns.items():
            gc.collect()
            values[name] = fn()
    now = {"wall": time.perf_counter, "cpu": time.process_time}[clock]
    runs = {name: [] for name in fns}
    for _ in range(k):
        for name, fn in fns.items():
            gc.collect()
            t0 = now()
            values[name] = fn()
            runs[name].append(now() - t0)
    return {name: statistics.median(t) for name, t in runs.items()}, values, runs


def ratio_spread(runs: dict, ours: str, ref: str) -> tuple:
    """``(min, max)`` over the alternating runs of ``ref`` time / ``ours`` time."""
    ratios = [b / a for a, b in zip(runs[ours], runs[ref])]
    return min(ratios), max(ratios)


# --------------------------------------------------------------------------------------
# Peak memory
# --------------------------------------------------------------------------------------


def maxrss_kib() -> int:
    """Peak RSS of this process (ru_maxrss, KiB; it survives exec and starts at the parent's)."""
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r // 1024 if sys.platform == "darwin" else r  # bytes on macOS, KiB on Linux


def vmhwm_kib(default=None):
    """Peak RSS of this process image (VmHWM from /proc/self/status, KiB; ``default`` where
    unavailable)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return default


def last_json_line(text: str) -> dict:
    """The last line of ``text`` that starts with ``{``, parsed."""
    return json.loads([ln for ln in text.splitlines() if ln.startswith("{")][-1])


_LAUNCHER_SRC = r"""
import json, subprocess, sys
for line in sys.stdin:
    req = json.loads(line)
    p = subprocess.run(req["argv"], capture_output=True, text=True, env=req["env"])
    sys.stdout.write(json.dumps({"rc": p.returncode, "stdout": p.stdout, "stderr": p.stderr}) + "\n")
    sys.stdout.flush()
"""


class Launcher:
    """Starts the peak-memory subprocesses from a tiny interpreter.

    On Linux a child's ru_maxrss starts at the RSS of the process it was forked from, which
    survives exec; so measurement subprocesses must not be forked from a benchmark that holds
    its data. Create the launcher early, while the script holds only the standard library; it
    exits when its stdin is closed (:meth:`close`)."""

    def __init__(self):
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _LAUNCHER_SRC],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def run(self, argv: list, what: str) -> dict:
        """Run ``argv`` with this process's environment; its last JSON line of output, parsed."""
        if self.proc.poll() is not None:
            raise RuntimeError("the memory-measurement launcher is not running")
        self.proc.stdin.write(json.dumps({"argv": argv, "env": dict(os.environ)}) + "\n")
        self.proc.stdin.flush()
        reply = self.proc.stdout.readline()
        if not reply:
            raise RuntimeError("the memory-measurement launcher exited unexpectedly")
        out = json.loads(reply)
        if out["rc"] != 0:
            raise RuntimeError(
                f"memory subprocess {what} failed (rc={out['rc']}):\n"
                f"{out['stderr'].strip()[-2000:]}"
            )
        return last_json_line(out["stdout"])

    def close(self, timeout: float = 60) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:  # pragma: no cover
                self.proc.kill()
                self.proc.wait()


def serial_fraction(t1: float, t2: float) -> float:
    """Amdahl's serial fraction from 1- and 2-thread times: ``T2 = T1 (s + (1 - s) / 2)``, so
    ``s = 2 T2 / T1 - 1``."""
    return 2.0 * t2 / t1 - 1.0


def run_child_argv(args: list, what: str) -> dict:
    """Run ``python *args`` in a fresh interpreter (forked from this process); its last JSON
    line of output, parsed. Raises RuntimeError with the child's stderr when it fails."""
    p = subprocess.run([sys.executable, *args], capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{what} child failed:\n{p.stderr[-3000:]}")
    return last_json_line(p.stdout)


def run_child(script: str, case: str, opts: dict, threads: int) -> dict:
    """Run ``script --_child case --_args <opts as JSON> --threads N`` in a fresh interpreter
    (forked from this process); its last JSON line of output, parsed."""
    args = [os.path.abspath(script), "--_child", case, "--_args", json.dumps(opts)]
    return run_child_argv(args + ["--threads", str(threads)], what=case)


# --------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------


def fmt(x, spec, none="-"):
    """``format(x, spec)``, or ``none`` for None."""
    return none if x is None else format(x, spec)


def format_table(cols, body, numeric=()):
    """Header, dashes and body lines; columns two spaces apart, padded to the widest cell,
    right-aligned for the column indices in ``numeric`` and left-aligned otherwise."""
    widths = [
        max(len(c), *(len(b[i]) for b in body)) if body else len(c) for i, c in enumerate(cols)
    ]

    def line(cells):
        return "  ".join(
            c.rjust(w) if i in numeric else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths))
        )

    return [line(cols), line(["-" * w for w in widths])] + [line(b) for b in body]


def run_cases(names, runner, *, report_failures: bool = False):
    """Run ``runner(name)`` (a list of rows) for each name, with progress on stderr; a case
    that raises is recorded in ``failed`` and the others go on. Returns (rows, failed)."""
    rows, failed = [], []
    for name in names:
        print(f"[{name}] running ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        try:
            new = runner(name)
        except Exception as exc:  # keep going; report at the end
            failed.append((name, f"{type(exc).__name__}: {exc}"))
            if report_failures:
                print(f"[{name}] FAILED: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            continue
        rows.extend(new)
        print(f"[{name}] done in {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
        gc.collect()
    return rows, failed


def finish_report(lines, failed, t_all: float, json_path, env: dict, rows: list) -> int:
    """Print the table lines, the failures and the total time; write the JSON if asked.
    Returns the exit status (1 if a case failed)."""
    for ln in lines:
        print(ln)
    for name, msg in failed:
        print(f"  FAILED [{name}]: {msg}")
    total = time.perf_counter() - t_all
    print(f"\ntotal wall time {total:.1f} s")
    if json_path:
        with open(json_path, "w", encoding="utf-8") as f:
            json.dump(
                {"environment": env, "rows": rows, "failed": failed, "total_seconds": total},
                f,
                indent=2,
                default=float,
            )
        print(f"wrote {json_path}")
    return 1 if failed else 0
