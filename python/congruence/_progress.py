"""The one progress display: tqdm when it is installed, else a one-line stderr counter.

``progress=True`` never raises ImportError, and nothing is shown for work that ends within
``delay`` seconds (1 s): the display starts at the first update after that.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Optional

__all__ = ["Progress"]


class Progress:
    """Count units of work (``update(k)``) and show them once the work lasts over ``delay`` s.

    Use as a context manager, or call :meth:`close`. With ``enabled=False`` it does nothing.
    """

    def __init__(
        self,
        enabled: bool,
        total: Optional[int] = None,
        unit: str = "row",
        desc: str = "congruence",
        delay: float = 1.0,
        file: Any = None,
    ) -> None:
        self.enabled = bool(enabled)
        self.total = total
        self.unit = unit
        self.desc = desc
        self.delay = delay
        self.file = file
        self.count = 0
        self._start = time.perf_counter()
        self._bar: Any = None
        self._plain = False
        self._last_print = 0.0

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _open(self) -> None:
        try:
            from tqdm.auto import tqdm
        except ImportError:
            self._plain = True
            return
        self._bar = tqdm(
            total=self.total,
            initial=self.count,
            unit=self.unit,
            unit_scale=True,
            desc=self.desc,
            file=self.file,
        )

    def update(self, k: int = 1) -> None:
        """Add ``k`` units of work done."""
        self.count += k
        if not self.enabled:
            return
        now = time.perf_counter()
        if self._bar is None and not self._plain:
            if now - self._start < self.delay:
                return
            self._open()
            if self._bar is not None:
                return
        if self._bar is not None:
            self._bar.update(k)
        elif now - self._last_print >= 0.2:
            self._print(now)

    def _print(self, now: float, end: str = "") -> None:
        out = self.file if self.file is not None else sys.stderr
        of = f"/{self.total}" if self.total is not None else ""
        rate = self.count / max(now - self._start, 1e-9)
        out.write(f"\r{self.desc}: {self.count}{of} {self.unit}s ({rate:.0f} {self.unit}s/s){end}")
        out.flush()
        self._last_print = now

    def close(self) -> None:
        """End the display (a newline after the plain counter)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self._plain:
            self._print(time.perf_counter(), end="\n")
            self._plain = False
