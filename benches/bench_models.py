#!/usr/bin/env python
"""Benchmark model-to-model comparison: extraction overhead and memory of cg.compare_models.

Cases (full sizes; ``--quick`` shrinks them to a smoke run):

* ``overhead``: ``cg.compare_models(a, b, x, layers, pooling="mean")`` (exact linear CKA,
  streamed into a ``LayerAccumulator``) on two small CNNs (digits-shaped 1 x 8 x 8 inputs:
  conv 16, conv 32, max-pool, fc 128, fc 10; 4 layers each, feature maps globally
  average-pooled) over 20,000 inputs in forward batches of 256, against the two models' bare
  forward passes on the same batches (``a(xb); b(xb)`` under ``torch.inference_mode()``).
  Runs alternate (ours, bare, ours, bare, ...); reported: the median of ``--repeat`` (5)
  ratios and their spread. Target: ratio <= 1.15. With ``--phases`` two more variants run in
  the same rotation, to say where the overhead goes: the bare forwards with an empty forward
  hook on each of the 8 layers (torch's hook dispatch), and ``compare_models`` with the
  accumulator's ``push``/``result`` replaced by no-ops (hooks, pooling in torch, conversion and
  the driver, without the co-moments). The page faults of each side are reported too: in
  some processes the C allocator returns the forward passes' freed buffers to the system and
  every batch faults them in again (millions of faults, bare forwards up to 2x slower), in
  others not; a process stays in one state. By default (``--heap steady``) the script fixes
  the allocator's thresholds in its own process (``mallopt``, both sides alike), so that no
  side runs in that state; ``--heap default`` leaves them alone, and then only runs with few
  faults on both sides measure the overhead. ``--phases`` also prints a floor: the co-moment
  products of the exact accumulator and the pooling kernel, each timed alone on idle cores,
  added to the bare forwards (the work that no driver can avoid).
* ``memory``: peak resident memory (VmHWM) of a fresh interpreter running the same exact
  ``compare_models`` over 100,000 and over 10,000 inputs (generated batch by batch, so the
  inputs are not held either). Target: the 100,000-input peak within 300 MB of the 10,000-input
  peak.

Usage::

    python benches/bench_models.py --quick           # smoke run, well under a minute
    python benches/bench_models.py                   # full sizes (a few minutes)
    python benches/bench_models.py --only memory --threads 2
    python benches/bench_models.py --only overhead --threads 2 --phases
    python benches/bench_models.py --json models.json

Both sides use the same thread count (``--threads``, else ``$RAYON_NUM_THREADS``, else
``os.cpu_count()``): torch's intra-op threads and the BLAS threads of NumPy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

import _common

CASES = ("overhead", "memory")
FULL = {
    "overhead": dict(n=20_000, batch=256),
    "memory": dict(n_big=100_000, n_small=10_000, batch=256),
}
QUICK = {
    "overhead": dict(n=2_000, batch=256),
    "memory": dict(n_big=10_000, n_small=1_000, batch=256),
}
TARGETS = {"overhead": "<= 1.15x bare forwards", "memory": "peak(big) - peak(small) <= 300 MB"}


def _parse_args(argv=None):
    ap = argparse.ArgumentParser(description="congruence compare_models benchmark")
    ap.add_argument("--quick", action="store_true", help="small sizes: a smoke test of the script")
    ap.add_argument("--only", metavar="NAME", help="comma-separated cases: " + ", ".join(CASES))
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="threads for both sides (default: $RAYON_NUM_THREADS or os.cpu_count())",
    )
    ap.add_argument("--repeat", type=int, default=5, help="alternating timed runs (median kept)")
    ap.add_argument(
        "--phases",
        action="store_true",
        help="overhead: also time the forwards with empty hooks and compare_models without "
        "the accumulator, to split the overhead",
    )
    ap.add_argument(
        "--heap",
        choices=("steady", "default"),
        default="steady",
        help="overhead: 'steady' (default) fixes glibc's mmap and trim thresholds in this "
        "process (mallopt), so neither side's freed buffers go back to the system between "
        "batches; 'default' leaves the allocator as it starts (its state then varies from "
        "process to process, see FAULTS_CLEAN)",
    )
    ap.add_argument("--json", metavar="OUT", help="also write the rows as JSON")
    ap.add_argument("--_child", dest="child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--_args", dest="child_args", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    return _common.finish_args(ap, args, CASES)


ARGS = _parse_args()
THREADS = _common.resolve_threads(ARGS.threads)
_common.set_thread_env(THREADS)


def steady_heap() -> bool:
    """Fix glibc's allocator thresholds in this process (both sides of the overhead case run
    here): blocks up to 32 MiB come from the heap and the heap's top is never trimmed, so
    the forward passes' freed buffers are reused instead of being returned to the system and
    faulted in again on every batch. glibc adjusts both thresholds by itself otherwise, and a
    process stays in whichever state its first allocations led to. False where ``mallopt``
    is unavailable (not glibc)."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
    return bool(mallopt(M_MMAP_THRESHOLD, 32 << 20)) and bool(mallopt(M_TRIM_THRESHOLD, 1 << 30))


HEAP = "steady" if ARGS.heap == "steady" and not ARGS.child and steady_heap() else "default"

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

import congruence as cg  # noqa: E402

torch.set_num_threads(THREADS)
LAYERS = ["1", "3", "7", "8"]


def hwm_kib() -> int:
    """Peak resident memory of this process so far (VmHWM, KiB; 0 where unavailable)."""
    return _common.vmhwm_kib(0)


#: page faults per input above which a side counts as faulting its buffers in on every batch
#: (about 12 per input in that state here, against at most 0.3 otherwise)
FAULTS_CLEAN = 1.0


def minor_faults() -> int:
    """Page faults of this process so far (minor: pages the kernel maps on first touch). A
    forward pass whose freed buffers the C allocator gave back to the system faults its pages
    in again on every batch; this process-dependent state moves the bare forwards by up to
    2x from one run of the script to the next, so the overhead line reports the faults of each
    side per run."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def small_cnn(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 16, 128),
        nn.ReLU(),
        nn.Linear(128, 10),
    ).eval()


def inputs(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 8, 8, generator=g)


def batches(n: int, batch: int, seed: int = 0):
    """``n`` inputs generated batch by batch (nothing of size n is held)."""
    g = torch.Generator().manual_seed(seed)
    for s in range(0, n, batch):
        yield torch.rand(min(batch, n - s), 1, 8, 8, generator=g)


# -------------------------------------------------------------------------------- overhead


def case_overhead(opts: dict, repeat: int) -> dict:
    n, batch = opts["n"], opts["batch"]
    a, b = small_cnn(0), small_cnn(1)
    x = inputs(n)
    split = [x[s : s + batch] for s in range(0, n, batch)]

    def ours():
        return cg.compare_models(a, b, x, LAYERS, pooling="mean", batch_size=batch, progress=False)

    def bare():
        with torch.inference_mode():
            for xb in split:
                a(xb)
                b(xb)

    def hooks_only():
        mods = [dict(m.named_modules())[k] for m in (a, b) for k in LAYERS]
        handles = [m.register_forward_hook(lambda *_: None) for m in mods]
        try:
            bare()
        finally:
            for h in handles:
                h.remove()

    def no_accumulator():
        from congruence.streaming.drive import Feed

        push, result = Feed.push, Feed.result
        Feed.push = lambda self, a, b=None: None
        Feed.result = lambda self: None
        try:
            ours()
        finally:
            Feed.push, Feed.result = push, result

    extra = {"hooks": hooks_only, "pooled": no_accumulator} if ARGS.phases else {}
    ours()
    bare()  # warm-up
    for f in extra.values():
        f()
    t_ours, t_bare = [], []
    f_ours, f_bare = [], []
    t_extra = {k: [] for k in extra}
    for _ in range(repeat):
        f0 = minor_faults()
        t0 = time.perf_counter()
        res = ours()
        t_ours.append(time.perf_counter() - t0)
        f1 = minor_faults()
        t0 = time.perf_counter()
        bare()
        t_bare.append(time.perf_counter() - t0)
        f_ours.append(f1 - f0)
        f_bare.append(minor_faults() - f1)
        for k, f in extra.items():
            t0 = time.perf_counter()
            f()
            t_extra[k].append(time.perf_counter() - t0)
    ratios = [o / r for o, r in zip(t_ours, t_bare)]
    # correctness: the same matrix as compare_layers on float64 copies of the extracted arrays
    f64 = lambda acts: {k: v.astype(np.float64) for k, v in acts.items()}  # noqa: E731
    acts = [
        f64(cg.extract(m, x, LAYERS, pooling="mean", batch_size=batch, progress=False))
        for m in (a, b)
    ]
    ref = cg.compare_layers(*acts)
    floor = _floor(a, b, x, acts, batch, repeat) if ARGS.phases else None
    diff = float(np.max(np.abs(res.values - ref.values)))
    med = statistics.median(ratios)
    # a side whose every batch faults its buffers in again is timed in the allocator's slow
    # state: the ratio then says nothing about compare_models' own overhead
    clean = max(statistics.median(f_ours), statistics.median(f_bare)) <= FAULTS_CLEAN * n
    return dict(
        case="overhead",
        n=n,
        batch=batch,
        ours_s=statistics.median(t_ours),
        bare_s=statistics.median(t_bare),
        ratio=med,
        ratio_min=min(ratios),
        ratio_max=max(ratios),
        diff=diff,
        faults_ours=statistics.median(f_ours),
        faults_bare=statistics.median(f_bare),
        target=TARGETS["overhead"],
        clean=clean,
        ok=med <= 1.15 and clean,
        floor=floor,
        phases={
            k: dict(
                seconds=statistics.median(v),
                ratio=statistics.median([t / r for t, r in zip(v, t_bare)]),
            )
            for k, v in t_extra.items()
        },
    )


def _floor(a, b, x, acts: list, batch: int, repeat: int) -> dict:
    """The two parts of compare_models' work that no driver can avoid, each timed alone on
    idle cores (median of ``repeat``), to bound the overhead from below:

    * the co-moment products of the exact accumulator, on the extracted activations (float64)
      in its row blocks: each layer with itself (a symmetric product) and every layer of
      ``a`` with every layer of ``b``, on ``THREADS`` BLAS threads;
    * the global average pool (the core's kernel) of every 4-D activation of every batch.
    """
    from congruence import _core
    from congruence.streaming.drive import MODEL_BLOCK

    Z = np.concatenate([v for side in acts for v in side.values()], axis=1)
    widths = [v.shape[1] for side in acts for v in side.values()]
    pa = sum(v.shape[1] for v in acts[0].values())
    flops = sum(len(Z) * w * w for w in widths) + 2 * len(Z) * pa * (Z.shape[1] - pa)

    def products():
        for s in range(0, len(Z), MODEL_BLOCK):
            z = Z[s : s + MODEL_BLOCK]
            c = 0
            for w in widths:
                block = z[:, c : c + w]
                block.T @ block
                c += w
            z[:, :pa].T @ z[:, pa:]

    shapes = []
    with torch.inference_mode():
        for m in (a, b):
            mods = dict(m.named_modules())
            hs = [
                mods[k].register_forward_hook(lambda _m, _i, out: shapes.append(tuple(out.shape)))
                for k in LAYERS
            ]
            try:
                m(x[:batch])
            finally:
                for h in hs:
                    h.remove()
    maps = [torch.rand(*s).view(s[0] * s[1], -1).numpy() for s in shapes if len(s) == 4]
    rounds = -(-len(x) // batch)

    def pooling():
        for _ in range(rounds):
            for t in maps:
                _core.row_means_f32(t)

    tp, limiter = _common.limit_blas(THREADS)
    try:
        times = {}
        for name, f in (("products", products), ("pooling", pooling)):
            f()
            runs = []
            for _ in range(repeat):
                t0 = time.perf_counter()
                f()
                runs.append(time.perf_counter() - t0)
            times[name] = statistics.median(runs)
    finally:
        if limiter is not None:
            limiter.restore_original_limits()
    return dict(
        products_s=times["products"],
        gflops=flops / times["products"] / 1e9,
        pooling_s=times["pooling"],
    )


# -------------------------------------------------------------------------------- memory


def _child_memory(opts: dict) -> dict:
    a, b = small_cnn(0), small_cnn(1)
    # warm up torch, NumPy and congruence on a few inputs first
    cg.compare_models(
        a, b, batches(512, opts["batch"], seed=1), LAYERS, pooling="mean", progress=False
    )
    base = hwm_kib()
    t0 = time.perf_counter()
    res = cg.compare_models(
        a, b, batches(opts["n"], opts["batch"]), LAYERS, pooling="mean", progress=False
    )
    return dict(
        n=opts["n"],
        seconds=time.perf_counter() - t0,
        base_kib=base,
        peak_kib=hwm_kib(),
        value=float(res.values[0, 0]),
    )


def _run_child(case: str, opts: dict) -> dict:
    return _common.run_child(__file__, case, opts, THREADS)


def case_memory(opts: dict, repeat: int) -> dict:
    small = _run_child("memory", dict(n=opts["n_small"], batch=opts["batch"]))
    big = _run_child("memory", dict(n=opts["n_big"], batch=opts["batch"]))
    delta_mb = (big["peak_kib"] - small["peak_kib"]) * 1024 / 1e6
    return dict(
        case="memory",
        n_small=small["n"],
        n_big=big["n"],
        peak_small_mb=small["peak_kib"] * 1024 / 1e6,
        peak_big_mb=big["peak_kib"] * 1024 / 1e6,
        delta_mb=delta_mb,
        seconds_small=small["seconds"],
        seconds_big=big["seconds"],
        target=TARGETS["memory"],
        ok=delta_mb <= 300,
    )


# -------------------------------------------------------------------------------- main


def main() -> int:
    if ARGS.child:
        print(json.dumps(_child_memory(json.loads(ARGS.child_args))))
        return 0
    sizes = QUICK if ARGS.quick else FULL
    print(
        f"congruence {cg.__version__} | torch {torch.__version__} | numpy {np.__version__} | "
        f"Python {platform.python_version()} | cpus {os.cpu_count()} | threads {THREADS} | "
        f"load {os.getloadavg()[0]:.2f} | heap {HEAP}"
        + (" | QUICK (sizes reduced)" if ARGS.quick else "")
    )
    rows, errors = [], []
    for case in ARGS.only:
        try:
            fn = case_overhead if case == "overhead" else case_memory
            rows.append(fn(sizes[case], ARGS.repeat))
        except Exception as exc:  # reported under the table
            errors.append(f"{case}: {type(exc).__name__}: {exc}")
    for r in rows:
        if r["case"] == "overhead":
            print(
                f"overhead  n={r['n']} batch={r['batch']}: compare_models {r['ours_s']:.3f} s, bare "
                f"forwards {r['bare_s']:.3f} s, ratio median {r['ratio']:.3f} (min {r['ratio_min']:.3f}, "
                f"max {r['ratio_max']:.3f}) over {ARGS.repeat} runs, |diff| vs compare_layers "
                f"{r['diff']:.1e}; target {r['target']}: {'yes' if r['ok'] else 'NO'}"
            )
            print(
                f"  page faults per run (median): compare_models {r['faults_ours']:.0f}, bare "
                f"forwards {r['faults_bare']:.0f}"
                + (
                    ""
                    if r["clean"]
                    else " -- a side ran in the allocator's faulting state: not a measure of "
                    "the overhead; run the script again"
                )
            )
            fl = r["floor"]
            if fl is not None:
                least = (r["bare_s"] + fl["products_s"] + fl["pooling_s"]) / r["bare_s"]
                print(
                    f"  floor   on idle cores: the co-moment products {fl['products_s'] * 1e3:.1f} ms "
                    f"({fl['gflops']:.0f} GFLOP/s), the pooling kernel {fl['pooling_s'] * 1e3:.1f} ms: "
                    f"bare forwards plus these alone {least:.3f}x"
                )
            for k, ph in r["phases"].items():
                what = {
                    "hooks": "bare forwards with 8 empty hooks",
                    "pooled": "compare_models without the accumulator",
                }[k]
                print(
                    f"  phase {k:6s}  {what}: {ph['seconds']:.3f} s, median ratio to bare "
                    f"{ph['ratio']:.3f}"
                )
        else:
            print(
                f"memory    peak RSS n={r['n_small']}: {r['peak_small_mb']:.0f} MB "
                f"({r['seconds_small']:.1f} s), n={r['n_big']}: {r['peak_big_mb']:.0f} MB "
                f"({r['seconds_big']:.1f} s), difference {r['delta_mb']:.1f} MB; target "
                f"{r['target']}: {'yes' if r['ok'] else 'NO'}"
            )
    for e in errors:
        print("ERROR", e)
    if ARGS.json:
        with open(ARGS.json, "w") as f:
            json.dump(
                {
                    "threads": THREADS,
                    "quick": ARGS.quick,
                    "heap": HEAP,
                    "rows": rows,
                    "errors": errors,
                },
                f,
                indent=1,
            )
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
