"""The runtime contract of the Rust core: Ctrl-C, memory limits, typed errors, threads.

* Ctrl-C (SIGINT, sent to this process by a timer thread) during a core call that would run
  for seconds raises ``KeyboardInterrupt`` from that call within 1 s of the signal; the next
  call gives the value of the slow references of ``tests/reference*.py`` (written from the
  formulas). Calls from other threads are neither interrupted nor disturbed.
* Requests that cannot fit raise ``MemoryError`` naming the size and the alternative, in a
  child process that then exits cleanly (the reproducers used to abort with SIGABRT).
* Core errors arrive as ``ValueError``, ``MemoryError``, ``KeyboardInterrupt`` or
  ``congruence._core.InternalError`` (a ``RuntimeError``), never a ``PanicException``.
* Results are bitwise identical for ``RAYON_NUM_THREADS`` = 1 and 2, and whichever thread
  calls.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import traceback

import numpy as np
import pytest
from reference import ref_cka
from reference_neighbors import ref_knn_jaccard
from reference_rsm import ref_distance_correlation, ref_rsa

import congruence as cg
from congruence import _core, _memory
from congruence._core import _testing

PYTHON_DIR = os.path.dirname(os.path.dirname(os.path.abspath(cg.__file__)))


def _run_child(
    code: str, env: dict | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = PYTHON_DIR + os.pathsep + full_env.get("PYTHONPATH", "")
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
    )


# ------------------------------------------------------------------------------ Ctrl-C


def _interrupt(call, delay: float = 0.3) -> float:
    """Run ``call`` with SIGINT sent to this process after ``delay`` s; check that the call
    itself (the line of its ``_core`` function) raised KeyboardInterrupt, and return the time
    from the signal to the exception."""
    sent = {}

    def kill():
        sent["t"] = time.monotonic()
        os.kill(os.getpid(), signal.SIGINT)

    timer = threading.Timer(delay, kill)

    def start_at_core_entry(frame, event, arg):
        # The clock starts when the call enters the core (the Python validation before it
        # may take long on a loaded machine), so the signal lands inside the core's work.
        if event == "c_call" and getattr(arg, "__module__", "") == "congruence._core":
            sys.setprofile(None)
            timer.start()

    sys.setprofile(start_at_core_entry)
    try:
        call()
    except KeyboardInterrupt as exc:
        caught = time.monotonic()
        frames = traceback.extract_tb(exc.__traceback__)
    else:
        caught = None
    finally:
        sys.setprofile(None)
        # A signal that arrives after a call that finished early must not escape the test.
        try:
            if timer.is_alive() or timer.finished.is_set():
                timer.join()
            time.sleep(0.05)
        except KeyboardInterrupt:
            pass
    assert caught is not None, "the call finished before the signal: make it larger"
    assert "_core." in (frames[-1].line or ""), frames[-1]
    return caught - sent["t"]


def _data(n: int, p: int, q: int, seed: int):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p))
    Y = X[:, :q] @ rng.standard_normal((q, q)) + 0.5 * rng.standard_normal((n, q))
    return X, Y


# Each long call would run for several seconds (more on a loaded machine); the small call
# that follows is checked against a reference written from the formula.
LONG_AND_NEXT = {
    # the feature-space route: float64 products checked between blocks of rows
    "linear_cka": (lambda X, Y: cg.cka(X, Y), (100000, 512, 512), lambda X, Y: ref_cka(X, Y)),
    "rbf_cka": (
        lambda X, Y: cg.cka(X, Y, kernel="rbf"),
        (12000, 64, 32),
        lambda X, Y: ref_cka(X, Y, kernel="rbf"),
    ),
    "rsa": (lambda X, Y: cg.rsa(X, Y), (8000, 64, 32), lambda X, Y: ref_rsa(X, Y)),
    "distance_correlation": (
        cg.distance_correlation,
        (20000, 64, 32),
        ref_distance_correlation,
    ),
    "knn_jaccard": (
        lambda X, Y: cg.knn_jaccard(X, Y, k=10),
        (20000, 128, 64),
        lambda X, Y: ref_knn_jaccard(X, Y, k=10),
    ),
}


@pytest.mark.parametrize("name", sorted(LONG_AND_NEXT))
def test_ctrl_c_stops_a_long_call_within_a_second_and_the_next_call_is_right(name, default_sigint):
    measure, shape, reference = LONG_AND_NEXT[name]
    X, Y = _data(*shape, seed=1)
    latency = _interrupt(lambda: measure(X, Y))
    assert latency < 1.0, f"{name}: KeyboardInterrupt {latency:.2f} s after the signal"
    x, y = _data(60, 5, 3, seed=2)
    assert measure(x, y) == pytest.approx(reference(x, y), rel=1e-10, abs=1e-12)


def test_a_signal_handler_that_raises_something_else_also_stops_the_call(default_sigint):
    class Alarm(Exception):
        pass

    def ring(signum, frame):
        raise Alarm("time is up")

    old = signal.signal(signal.SIGALRM, ring)
    X, Y = _data(20000, 64, 32, seed=3)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.3)
        start = time.monotonic()
        with pytest.raises(Alarm, match="time is up"):
            cg.distance_correlation(X, Y)
        assert time.monotonic() - start < 1.3
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def test_worker_threads_compute_and_are_not_cancelled_by_the_main_threads_ctrl_c(default_sigint):
    x, y = _data(1500, 16, 8, seed=4)
    want = cg.distance_correlation(x, y)
    assert want == pytest.approx(ref_distance_correlation(x, y), rel=1e-10)
    results, errors = [], []
    stop = threading.Event()

    def worker():
        try:
            while not stop.is_set():
                results.append(cg.distance_correlation(x, y))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        X, Y = _data(20000, 64, 32, seed=5)
        latency = _interrupt(lambda: cg.distance_correlation(X, Y))
    finally:
        time.sleep(0.3)
        stop.set()
        for t in threads:
            t.join()
    assert latency < 1.0
    assert not errors, errors
    assert results, "the worker threads computed nothing"
    assert all(r == want for r in results), set(results)


def test_a_call_from_a_worker_thread_is_correct():
    x, y = _data(80, 6, 4, seed=6)
    box = {}
    t = threading.Thread(target=lambda: box.update(v=cg.rsa(x, y), k=cg.knn_jaccard(x, y, k=5)))
    t.start()
    t.join()
    assert box["v"] == pytest.approx(ref_rsa(x, y), rel=1e-12)
    assert box["k"] == pytest.approx(ref_knn_jaccard(x, y, k=5), rel=1e-12)


def test_concurrent_calls_from_many_threads_agree_bitwise_with_the_main_thread():
    x, y = _data(900, 12, 6, seed=7)
    calls = {
        "rbf": lambda: cg.cka(x, y, kernel="rbf"),
        "rsa": lambda: cg.rsa(x, y, rsm="euclidean"),
        "dcor": lambda: cg.distance_correlation(x, y),
        "knn": lambda: cg.knn_jaccard(x, y, k=7),
    }
    want = {k: f() for k, f in calls.items()}
    got: list[tuple[str, float]] = []
    lock = threading.Lock()

    def worker():
        for k, f in calls.items():
            v = f()
            with lock:
                got.append((k, v))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for k, f in calls.items():  # the main thread computes at the same time
        assert f() == want[k]
    for t in threads:
        t.join()
    assert len(got) == 4 * len(calls)
    for k, v in got:
        assert v == want[k], k


# ------------------------------------------------------------------------------ memory


def test_knn_with_an_enormous_k_is_a_memory_error_not_an_abort():
    # Reproducer: this call aborted the process ("memory allocation of 639996800000 bytes").
    r = _run_child(
        """
        import numpy as np, congruence as cg
        X = np.random.default_rng(0).standard_normal((200000, 2))
        try:
            cg.knn_jaccard(X, X, k=199999)
        except MemoryError as e:
            print("MemoryError:", e)
        else:
            print("no error")
        """
    )
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert out.startswith("MemoryError:"), out + r.stderr
    assert "knn with k = 199999 at n = 200000" in out
    # The size: 200000 rows x 199999 candidates x 16 bytes, at least.
    size_gb = float(out.split("needs about ")[1].split(" GB")[0])
    assert size_gb >= 200000 * 199999 * 16 / 1e9
    assert "smaller k" in out


def test_rsa_respects_the_address_space_limit():
    # Reproducer: under `ulimit -v 8000000`, rsa at n = 30000 aborted; its pre-flight read only
    # MemAvailable. Spearman needs 32 bytes per pair: 14.4 GB for 449985000 pairs.
    r = _run_child(
        """
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (8_000_000 * 1024, 8_000_000 * 1024))
        import numpy as np, congruence as cg
        from congruence import _memory
        budget = _memory.memory_budget()
        X = np.random.default_rng(0).standard_normal((30000, 8))
        try:
            cg.rsa(X, X[:, :4])
        except MemoryError as e:
            print("MemoryError:", e)
        else:
            print("no error")
        print("budget", budget)
        """
    )
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert out.startswith("MemoryError:"), out + r.stderr
    assert "rsa at n = 30000" in out
    size_gb = float(out.split("needs about ")[1].split(" GB")[0])
    assert size_gb == pytest.approx(32 * 30000 * 29999 / 2 / 1e9, rel=1e-3)
    assert "subsample the rows" in out
    budget = int(out.split("budget ")[1])
    assert budget <= 8_000_000 * 1024


def test_an_rbf_distance_cache_that_does_not_fit_is_skipped_not_fatal():
    # RBF layers cache their squared distances (144 MB per layer at n = 6000) when they fit;
    # with 150 MB of address space left neither fits, and the distances are streamed again.
    rng = np.random.default_rng(11)
    X = rng.standard_normal((6000, 16))
    Y = X[:, :8] + rng.standard_normal((6000, 8))
    want = cg.cka(X, Y, kernel="rbf")
    r = _run_child(
        """
        import resource, numpy as np, congruence as cg
        rng = np.random.default_rng(11)
        X = rng.standard_normal((6000, 16))
        Y = X[:, :8] + rng.standard_normal((6000, 8))
        cg.cka(X[:50], Y[:50], kernel="rbf")  # the thread pools exist before the limit
        with open("/proc/self/status") as fh:
            vm = next(int(l.split()[1]) * 1024 for l in fh if l.startswith("VmSize:"))
        resource.setrlimit(resource.RLIMIT_AS, (vm + 150_000_000, resource.RLIM_INFINITY))
        print(cg.cka(X, Y, kernel="rbf").hex())
        """
    )
    assert r.returncode == 0, r.stderr
    assert float.fromhex(r.stdout.strip()) == pytest.approx(want, rel=1e-12)


def test_the_linear_gram_route_counts_only_the_copies_it_makes():
    # 8 float64 layers of 1500 x 2500 (240 MB) take the Gram route; centred as their tiles are
    # formed, they need only the tile buffers (about 17 MB), so 150 MB of address space is
    # enough. With large offsets every layer is centred into a copy (240 MB more), and the
    # pre-flight refuses before allocating.
    code = """
        import resource, numpy as np, congruence as cg
        rng = np.random.default_rng(12)
        base = rng.standard_normal((1500, 40))
        layers = [base @ rng.standard_normal((40, 2500)) + rng.standard_normal((1500, 2500))
                  for _ in range(8)]
        layers = [x + OFFSET for x in layers]
        cg.compare_layers(layers[:2], None, "cka", progress=False)  # pools exist first
        with open("/proc/self/status") as fh:
            vm = next(int(l.split()[1]) * 1024 for l in fh if l.startswith("VmSize:"))
        resource.setrlimit(resource.RLIMIT_AS, (vm + 150_000_000, resource.RLIM_INFINITY))
        try:
            m = cg.compare_layers(layers, None, "cka", progress=False).values
        except MemoryError as e:
            print("refused", e)
        else:
            print(m[0, 1].hex(), m[2, 7].hex())
        """
    rng = np.random.default_rng(12)
    base = rng.standard_normal((1500, 40))
    layers = [
        base @ rng.standard_normal((40, 2500)) + rng.standard_normal((1500, 2500)) for _ in range(8)
    ]
    for offset in (0.0, 1e3):
        r = _run_child(code.replace("OFFSET", repr(offset)))
        assert r.returncode == 0, r.stderr
        if offset == 0.0:
            got = [float.fromhex(v) for v in r.stdout.split()]
            want = [cg.cka(layers[0], layers[1]), cg.cka(layers[2], layers[7])]
            np.testing.assert_allclose(got, want, rtol=1e-10)
        else:
            assert r.stdout.startswith("refused "), r.stdout
            assert "centred copies and kernel tiles" in r.stdout


def test_the_python_pre_flight_is_the_cores():
    budget = _memory.memory_budget()
    assert budget == _core.memory_budget() or abs(budget - _core.memory_budget()) < 256e6
    _memory.check_fits(1024, "a small buffer", "nothing")
    with pytest.raises(MemoryError) as info:
        _memory.check_fits(1e30, "the 1e15 x 1e15 RSM of rsa", "subsample the rows")
    msg = str(info.value)
    assert msg.startswith("the 1e15 x 1e15 RSM of rsa needs about 1000000000000000000000.00 GB")
    assert msg.endswith("; subsample the rows")


def test_an_address_space_limit_lowers_the_budget_in_a_child():
    r = _run_child(
        """
        import resource
        with open("/proc/self/status") as fh:
            vm = next(int(l.split()[1]) * 1024 for l in fh if l.startswith("VmSize:"))
        limit = vm + (1 << 30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, resource.RLIM_INFINITY))
        from congruence import _memory
        print(_memory.memory_budget())
        """
    )
    assert r.returncode == 0, r.stderr
    # Importing congruence maps more address space, so at most 1 GiB is left.
    assert 0 <= int(r.stdout) <= 1 << 30


# ------------------------------------------------------------------------------ typed errors


def test_core_errors_map_to_python_classes():
    x = np.random.default_rng(8).standard_normal((20, 3))
    with pytest.raises(ValueError, match='kernel="poly" is invalid'):
        _core.kernel_pair(x, x, "poly", 1.0, False, "cka")
    with pytest.raises(ValueError, match='route="fast" is invalid'):
        _core.kernel_pair(x, x, "linear", 1.0, False, "cka", "fast")
    with pytest.raises(ValueError, match='statistic="hamming" is invalid'):
        nx = _core.knn(x, 3)[0]
        _core.knn_statistic(nx, nx, "hamming")
    with pytest.raises(ValueError, match="k=-1 is invalid"):
        _core.knn(x, -1)
    with pytest.raises(ValueError, match="k=20 is invalid"):
        _core.knn(x, 20)
    with pytest.raises(MemoryError):
        _core.check_fits(1e30, "x", "y", 2**40)


@pytest.mark.parametrize("where", ["main", "worker"])
def test_a_core_bug_is_an_internal_error_not_a_panic_exception(where):
    assert issubclass(_core.InternalError, RuntimeError)
    box = {}

    def call():
        try:
            _testing.panic("invariant broken")
        except BaseException as exc:
            box["exc"] = exc

    if where == "main":
        call()
    else:
        t = threading.Thread(target=call)
        t.start()
        t.join()
    exc = box["exc"]
    assert type(exc) is _core.InternalError
    assert "invariant broken" in str(exc) and "please report it" in str(exc)
    # The interpreter and the core still work.
    x = np.random.default_rng(9).standard_normal((30, 3))
    assert cg.cka(x, x) == pytest.approx(1.0, abs=1e-12)


# ------------------------------------------------------------------------------ determinism


def test_results_are_bitwise_identical_for_one_and_two_threads():
    code = """
        import json, threading
        import numpy as np, congruence as cg
        from congruence import _core
        rng = np.random.default_rng(10)
        X = rng.standard_normal((700, 20))
        Y = X[:, :8] @ rng.standard_normal((8, 8)) + 0.3 * rng.standard_normal((700, 8))
        calls = {
            "rbf_cka": lambda: cg.cka(X, Y, kernel="rbf"),
            "rbf_hsic_u": lambda: cg.hsic(X, Y, kernel="rbf", unbiased=True),
            "gram_cka": lambda: _core.kernel_pair(X, Y, "linear", 1.0, False, "cka", "gram"),
            "rsa_spearman": lambda: cg.rsa(X, Y),
            "rsa_euclidean": lambda: cg.rsa(X, Y, rsm="euclidean", compare="pearson"),
            "dcor": lambda: cg.distance_correlation(X, Y),
            "knn_jaccard": lambda: cg.knn_jaccard(X, Y, k=12),
            "knn32": lambda: float(_core.knn(X.astype(np.float32), 9)[1].sum()),
        }
        out = {k: f().hex() for k, f in calls.items()}
        box = {}
        t = threading.Thread(target=lambda: box.update({k: f().hex() for k, f in calls.items()}))
        t.start(); t.join()
        assert box == out, (box, out)
        print(json.dumps(out))
    """
    one = _run_child(code, env={"RAYON_NUM_THREADS": "1"})
    two = _run_child(code, env={"RAYON_NUM_THREADS": "2"})
    assert one.returncode == 0, one.stderr
    assert two.returncode == 0, two.stderr
    assert json.loads(one.stdout) == json.loads(two.stdout)
