"""The one memory pre-flight: how many bytes a computation may still allocate, and a
``MemoryError`` (never an abort or an OOM kill) when a request cannot fit.

The rule lives in the Rust core (``congruence._core``), which applies it to its own large
buffers; this module is its Python face for the computations written in Python. The budget is
the smallest of what the system reports: ``MemAvailable`` (Linux), the cgroup memory limit minus
its current usage for the process's cgroup and each of its ancestors (cgroup v2 ``memory.max``
and ``memory.current``, or v1 ``memory.limit_in_bytes`` and ``memory.usage_in_bytes``), and the
address-space limit ``RLIMIT_AS`` (``ulimit -v``) minus the address space already in use. Where
none is known, there is no pre-flight refusal. A request may take at most 90% of the budget.

>>> from congruence._memory import check_fits, memory_budget
>>> budget = memory_budget()
>>> budget is None or budget > 0
True
>>> check_fits(1024, "a tiny buffer", "nothing to do")   # fits: returns None
>>> try:
...     check_fits(1e30, "the 1e15 x 1e15 RSM of rsa", "subsample the rows")
... except MemoryError as e:
...     print(str(e).endswith("subsample the rows"))
True
"""

from __future__ import annotations

import mmap
from typing import Optional

import numpy as np

from . import _core

__all__ = ["memory_budget", "check_fits", "mapped_array"]


def memory_budget() -> Optional[int]:
    """Bytes that may still be allocated, or ``None`` if the system does not tell."""
    return _core.memory_budget()


def check_fits(nbytes: float, what: str, alternative: str) -> None:
    """Raise ``MemoryError`` if ``nbytes`` would not fit in 90% of :func:`memory_budget`.

    ``what`` names the buffer and the measure ("the 30000 x 30000 RSM of rsa"),
    ``alternative`` what the user can do instead ("subsample the rows or use ..."). The
    message gives the size in GB and in bytes, the budget, and the alternative.
    """
    _core.check_fits(float(nbytes), what, alternative, memory_budget())


def mapped_array(rows: int, cols: int, dtype: type = np.float64) -> np.ndarray:
    """An uninitialised C-ordered ``(rows, cols)`` array in pages of its own (an anonymous
    memory map, outside the heap of ``malloc``).

    For buffers kept from batch to batch while a model runs: allocated on the heap among the
    model's activations, they would fragment it, and glibc would then grow and trim the heap
    on every batch (page faults in every forward pass)."""
    count = rows * cols
    size = max(count, 1) * np.dtype(dtype).itemsize
    return np.frombuffer(mmap.mmap(-1, size), dtype=dtype, count=count).reshape(rows, cols)
