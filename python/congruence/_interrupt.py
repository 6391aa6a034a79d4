"""Ctrl-C around calls that cannot stop by themselves (one LAPACK or GUDHI call).

Such a call runs in a worker thread while the calling thread waits in short, interruptible
steps, so ``KeyboardInterrupt`` reaches the caller within a fraction of a second. The worker
cannot be stopped: it finishes in the background and its result is discarded.
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

    def work() -> None:
        try:
            box["value"] = fn(*args, **kwargs)
        except BaseException as exc:  # re-raised in the caller
            box["error"] = exc

    worker = threading.Thread(target=work, name="congruence-worker", daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(_POLL_SECONDS)
    if "error" in box:
        raise box["error"]
    return box["value"]
