"""Per-layer reuse: the contract a measure declares, and the one loop that fills a layer matrix.

A measure compared over many layers (``compare_layers``), or over many row permutations
(``permutation_test``), should not redo for every pair the work that depends on one side only.
Each registered measure therefore declares, through :func:`congruence._registry.register`:

``prepare(x, *, name, **params) -> prep``
    What does not depend on the other side (centred features, SVD bases, RSM ranks, kNN
    lists, ...). ``x`` is the validated ``(n, p)`` float array; ``name`` is how messages and
    warnings name it (``"X"``, ``"a['conv1']"``). Default: ``x`` itself.
``pair(prep_x, prep_y, **params) -> float``
    The value from two preparations. Default: the measure's function on the two arrays.
``reindex(prep, idx, **params) -> prep`` (optional)
    Must equal ``prepare(x[idx])`` (bit for bit, up to the documented tolerance of the
    measure); the permutation and bootstrap fast paths call it. With the default
    ``prepare``, ``prep[idx]``.
``matrix(preps_a, preps_b, **params) -> ndarray`` (optional)
    A whole-matrix route (``preps_b=None``: ``a`` with itself), e.g. one product over every
    Gram tile. Without it, :func:`fill` calls ``pair`` once per cell.
``permuted(prep_x, prep_y, perms, **params) -> ndarray`` (optional)
    ``values[k] = pair(prep_x, reindex(prep_y, perms[k]))`` for an ``(N, n)`` integer array
    of row permutations, computed from the same preparations (no second cache), e.g. in
    parallel in the core; the permutation tests' fast path. Without it, ``reindex`` and
    ``pair`` once per permutation.

Streaming keeps its own accumulator hook (``congruence.streaming``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import numpy as np

__all__ = ["PerLayer", "CELL_ERRORS", "fill"]

#: what a cell that cannot be computed raises (LinAlgError is a ValueError); MemoryError,
#: TypeError (a bad parameter) and KeyboardInterrupt are never turned into nan
CELL_ERRORS = (ValueError, ArithmeticError)


@dataclass(frozen=True)
class PerLayer:
    """The per-layer contract of one measure (see the module docstring); ``None`` fields take
    the defaults."""

    prepare: Optional[Callable[..., Any]] = None
    pair: Optional[Callable[..., float]] = None
    reindex: Optional[Callable[..., Any]] = None
    matrix: Optional[Callable[..., Any]] = None
    permuted: Optional[Callable[..., Any]] = None


def fill(
    pa: Sequence[Any],
    pb: Optional[Sequence[Any]],
    pair: Callable[[Any, Any], float],
    *,
    symmetric: bool = True,
    both: Optional[Callable[[Any, Any], tuple[float, float]]] = None,
    on_error: Optional[Callable[[int, int, BaseException], float]] = None,
    tick: Optional[Callable[[], None]] = None,
) -> np.ndarray:
    """The layer matrix ``values[i, j] = pair(pa[i], pb[j])`` from prepared layers: the one
    loop every cell-by-cell route runs.

    With ``pb=None`` the matrix is ``pa`` against itself: for a ``symmetric`` pair each
    unordered pair is computed once and mirrored (bit for bit); for an asymmetric one,
    ``both(u, v) -> (pair(u, v), pair(v, u))`` computes both orders at once when given.
    ``on_error(i, j, exc)`` gives the value of a cell whose ``pair`` raised one of
    :data:`CELL_ERRORS` (``None``: the error propagates); ``tick()`` is called after each
    computed cell.

    >>> fill([1.0, 2.0], None, lambda u, v: u * 10 + v).tolist()
    [[11.0, 12.0], [12.0, 22.0]]
    >>> fill([1.0, 2.0], None, lambda u, v: u * 10 + v, symmetric=False).tolist()
    [[11.0, 12.0], [21.0, 22.0]]
    >>> fill([1.0], [3.0, 4.0], lambda u, v: u - v).tolist()
    [[-2.0, -3.0]]
    """
    cols = pa if pb is None else pb
    half = pb is None and (symmetric or both is not None)
    out = np.empty((len(pa), len(cols)))
    for i in range(len(pa)):
        for j in range(i if half else 0, len(cols)):
            try:
                if half and not symmetric and both is not None:
                    out[i, j], out[j, i] = both(pa[i], cols[j])
                else:
                    out[i, j] = pair(pa[i], cols[j])
            except CELL_ERRORS as exc:
                if on_error is None:
                    raise
                out[i, j] = on_error(i, j, exc)
                if half and not symmetric:
                    out[j, i] = on_error(j, i, exc)
            if half and symmetric:
                out[j, i] = out[i, j]
            if tick is not None:
                tick()
    return out
