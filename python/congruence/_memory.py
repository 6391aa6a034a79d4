"""The one memory pre-flight: how many bytes a computation may still allocate, and a
``MemoryError`` (never an abort or an OOM kill) when a request cannot fit.

The budget is the smallest of what the system reports: ``MemAvailable`` (Linux), the cgroup
memory limit minus its current usage (cgroup v2 ``memory.max``, or v1
``memory.limit_in_bytes``), and the address-space limit ``RLIMIT_AS`` minus the address space
already in use. Where none is known, there is no pre-flight refusal.
"""

from __future__ import annotations

import os
from typing import Optional

__all__ = ["memory_budget", "check_fits"]


def _read_int(path: str) -> Optional[int]:
    try:
        with open(path) as fh:
            text = fh.read().strip()
    except OSError:
        return None
    if not text or text == "max":
        return None
    try:
        return int(text.split()[0])
    except ValueError:
        return None


def _meminfo(field: str) -> Optional[int]:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_room() -> Optional[int]:
    for limit_path, usage_path in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        (
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/memory/memory.usage_in_bytes",
        ),
    ):
        limit = _read_int(limit_path)
        if limit is not None and limit < (1 << 60):
            used = _read_int(usage_path) or 0
            return max(limit - used, 0)
    return None


def _address_space_room() -> Optional[int]:
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    try:
        with open("/proc/self/status") as fh:
            vm = next((int(l.split()[1]) * 1024 for l in fh if l.startswith("VmSize:")), 0)
    except (OSError, ValueError):
        vm = 0
    return max(soft - vm, 0)


def memory_budget() -> Optional[int]:
    """Bytes that may still be allocated, or ``None`` if the system does not tell."""
    known = [v for v in (_meminfo("MemAvailable"), _cgroup_room(), _address_space_room()) if v is not None]
    return min(known) if known else None


def check_fits(nbytes: float, what: str, alternative: str) -> None:
    """Raise ``MemoryError`` if ``nbytes`` would not fit in 90% of :func:`memory_budget`.

    ``what`` names the buffer and the measure ("the 30000 x 30000 RSM of rsa"),
    ``alternative`` what the user can do instead ("subsample the rows or use ...").
    """
    budget = memory_budget()
    if budget is not None and nbytes > 0.9 * budget:
        raise MemoryError(
            f"{what} needs about {nbytes / 1e9:.2f} GB, but only {budget / 1e9:.2f} GB can be "
            f"allocated (available memory, cgroup limit and address-space limit); {alternative}"
        )
