"""Ctrl-C around calls that cannot stop by themselves (one LAPACK or GUDHI call).

Such a call runs in a worker thread while the calling thread waits in short, interruptible
steps, so ``KeyboardInterrupt`` reaches the caller within a fraction of a second. The worker
cannot be stopped: it finishes in the background and its result is discarded.

The caller waits on an event, not with ``Thread.join``: on Python 3.11 a ``join`` interrupted
by Ctrl-C marks a still running thread as stopped (the bpo-45274 clean-up releases the
thread's own lock), after which nothing could wait for it. The worker is not a daemon, so the
interpreter waits for it at exit instead of killing it inside a C++ library, which aborts the
process ("terminate called without an active exception", seen with GUDHI).
"""

from __future__ import annotations

import threading
from typing import Any, Callable, TypeVar

__all__ = ["interruptible"]

T = TypeVar("T")

_POLL_SECONDS = 0.05


def interruptible(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Return ``fn(*args, **kwargs)``, computed in a worker thread when called from the main
    thread (elsewhere, where no signal can arrive, it is called directly).

    Exceptions of ``fn`` are re-raised in the caller; a ``KeyboardInterrupt`` in the caller
    while waiting propagates at once (the worker finishes in the background).
    """
    if threading.current_thread() is not threading.main_thread():
        return fn(*args, **kwargs)
    box: dict[str, Any] = {}
    done = threading.Event()

    def work() -> None:
        try:
            box["value"] = fn(*args, **kwargs)
        except BaseException as exc:  # re-raised in the caller
            box["error"] = exc
        finally:
            done.set()

    worker = threading.Thread(target=work, name="congruence-worker", daemon=False)
    worker.start()
    while not done.wait(_POLL_SECONDS):
        pass
    if "error" in box:
        raise box["error"]
    return box["value"]
