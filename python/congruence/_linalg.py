"""Numerics shared by the measures: one home for the LAPACK calls, the rescaling, the memory
pre-flight of dense buffers, and the handling of dead units and identical rows.

* **Retry and context.** :func:`svd` uses LAPACK ``gesdd`` and, if it does not converge,
  retries with the slower but more robust ``gesvd``; if that fails too, a
  ``numpy.linalg.LinAlgError`` names the measure, the argument and the shape. :func:`eigh`
  likewise retries ``syevd`` with ``syev``.
* **Ctrl-C.** A call whose cost exceeds :data:`LONG_FLOPS` runs through
  :func:`congruence._interrupt.interruptible`, so ``KeyboardInterrupt`` reaches the caller
  within a fraction of a second; smaller calls are made directly and pay nothing. This only
  helps where the library releases the GIL during the call. Measured with NumPy 2.4 and
  SciPy 1.17: NumPy's ``linalg.svd``, ``eigh``, ``eigvalsh``, ``cholesky``, ``qr`` and
  ``matmul`` and SciPy's ``linalg.qr`` release it; SciPy's ``linalg.svd`` (both drivers),
  ``eigh``, ``cholesky`` and ``solve_triangular`` hold it for the whole call. Hence the
  NumPy routines for every long factorisation here; only the ``gesvd`` retry and the
  triangular solves of ``p x p`` blocks stay uninterruptible.
* **Magnitude.** :func:`pow2_scale` divides an array by a power of two near its largest
  magnitude, which is exact (no rounding), so a scale-invariant computation on the result
  gives bitwise the value it would give on the unscaled data, without overflow at any
  magnitude; homogeneous quantities are scaled back with :func:`scale_back`.
* **Memory.** :func:`check_matrix_fits` is the pre-flight of a ``rows x cols`` float64
  buffer.
* **Degenerate data.** :func:`drop_dead_units` removes constant columns (the rule of
  :func:`congruence._validation.constant_columns`) with one warning per call, and
  :func:`warn_identical` warns about representations whose rows are all identical.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Optional, Sequence

import numpy as np
import scipy.linalg

from congruence._interrupt import interruptible
from congruence._memory import check_fits
from congruence._validation import constant_columns
from congruence.errors import warn_degenerate

__all__ = [
    "LONG_FLOPS",
    "run",
    "matmul",
    "svd",
    "eigh",
    "cholesky",
    "qr",
    "largest_magnitude",
    "pow2_exponent",
    "pow2_scaled",
    "pow2_scale",
    "scale_back",
    "identical_rows",
    "undefined",
    "still_defined",
    "check_matrix_fits",
    "drop_dead_units",
    "warn_identical",
]

#: Calls estimated above this many floating-point operations (about 0.05 s here) run in a
#: worker thread so that Ctrl-C interrupts them.
LONG_FLOPS = 2e8


def run(flops: float, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)``, interruptible by Ctrl-C when ``flops`` says it can be long."""
    if flops >= LONG_FLOPS:
        return interruptible(fn, *args, **kwargs)
    return fn(*args, **kwargs)


def matmul(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """``A @ B`` (BLAS GEMM / SYRK; interruptible when long)."""
    flops = 2.0 * A.shape[0] * A.shape[1] * (B.shape[1] if B.ndim == 2 else 1)
    return run(flops, np.matmul, A, B)


def _context(measure: str, argument: str, shape: tuple) -> str:
    return f"{measure}: {argument} of shape {shape}"


def svd(
    a: np.ndarray,
    *,
    measure: str,
    argument: str,
    compute_uv: bool = True,
    full_matrices: bool = False,
):
    """Singular value decomposition ``a = U diag(s) Vh`` (or ``s`` alone), descending.

    LAPACK ``gesdd`` (through NumPy, which releases the GIL); if it does not converge,
    ``gesvd`` (through SciPy). ``measure`` and ``argument`` name the computation in the
    error raised when both fail.

    Raises
    ------
    numpy.linalg.LinAlgError
        If neither driver converges, naming the measure, the argument and its shape.
    """
    m, n = a.shape
    k = min(m, n)
    flops = 4.0 * m * n * k + (8.0 * k**3 if compute_uv else 0.0)
    return _retried(
        flops,
        (np.linalg.svd, (a,), dict(full_matrices=full_matrices, compute_uv=compute_uv)),
        (
            scipy.linalg.svd,
            (a,),
            dict(
                full_matrices=full_matrices,
                compute_uv=compute_uv,
                check_finite=False,
                lapack_driver="gesvd",
            ),
        ),
        f"{_context(measure, argument, a.shape)}: the singular value decomposition did not "
        "converge, neither with LAPACK gesdd ({first}) nor with gesvd ({second}); check the "
        "data for extreme dynamic range or rescale the columns",
    )


def _retried(flops: float, first: tuple, second: tuple, message: str):
    """``fn(*args, **kwargs)`` of ``first``; if LAPACK did not converge, that of ``second`` (a
    more robust driver); if it fails too, ``LinAlgError(message)`` with ``{first}`` and
    ``{second}`` filled by the two errors. Both calls go through :func:`run` (interruptible
    when ``flops`` says they can be long)."""
    try:
        return run(flops, first[0], *first[1], **first[2])
    except np.linalg.LinAlgError as e1:
        try:
            return run(flops, second[0], *second[1], **second[2])
        except np.linalg.LinAlgError as e2:
            raise np.linalg.LinAlgError(message.format(first=e1, second=e2)) from e2


def eigh(G: np.ndarray, *, measure: str, argument: str, eigvals_only: bool = False):
    """Eigenvalues (ascending) and eigenvectors of the symmetric matrix ``G`` (lower triangle).

    LAPACK ``syevd`` through NumPy, retried with ``syev`` through SciPy.

    Raises
    ------
    numpy.linalg.LinAlgError
        If neither converges, naming the measure, the argument and the shape.
    """
    flops = (4.0 if eigvals_only else 9.0) * G.shape[0] ** 3
    fn = np.linalg.eigvalsh if eigvals_only else np.linalg.eigh
    return _retried(
        flops,
        (fn, (G,), {}),
        (
            scipy.linalg.eigh,
            (G,),
            dict(lower=True, eigvals_only=eigvals_only, check_finite=False, driver="ev"),
        ),
        f"{_context(measure, argument, G.shape)}: the symmetric eigenvalue problem did not "
        "converge, neither with LAPACK syevd ({first}) nor with syev ({second})",
    )


def cholesky(G: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor of ``G``; ``numpy.linalg.LinAlgError`` if ``G`` is not positive
    definite (a test the callers rely on, so it carries no context)."""
    return run(G.shape[0] ** 3 / 3.0, np.linalg.cholesky, G)


def qr(A: np.ndarray, mode: str = "economic"):
    """Householder QR of ``A`` (SciPy ``geqrf``, which releases the GIL); ``mode`` as SciPy."""
    n, p = A.shape
    flops = 4.0 * n * p * min(n, p)
    return run(flops, scipy.linalg.qr, A, mode=mode, check_finite=False)


def largest_magnitude(*arrays: np.ndarray) -> float:
    """``max |a_ij|`` over all the arrays (no temporary copy of any of them)."""
    return max(max(float(a.max()), -float(a.min())) for a in arrays)


def pow2_exponent(*arrays: np.ndarray) -> int:
    """The ``k`` with ``max |a_ij| * 2**-k`` in ``[0.5, 1)`` over all the arrays (0 if all
    are zero)."""
    big = largest_magnitude(*arrays)
    return math.frexp(big)[1] if big > 0.0 else 0


def pow2_scaled(A: np.ndarray, k: int) -> np.ndarray:
    """``A * 2**-k`` as a new float64 array.

    Multiplying by a power of two is exact (only entries pushed below the normal range,
    ``2**-1022`` relative to the largest, lose bits, negligible for every measure here), so
    every later rounding happens exactly as it would at the original scale, with no overflow
    or underflow: values, ties and orderings are those of the formula on the given numbers.
    """
    return np.ldexp(np.asarray(A, dtype=np.float64), -k)


def pow2_scale(A: np.ndarray) -> tuple[np.ndarray, int]:
    """``(A * 2**-k, k)`` with ``2**(k-1) <= max|A| < 2**k`` (``k = 0`` for an all-zero
    ``A``): :func:`pow2_scaled` by :func:`pow2_exponent`."""
    k = pow2_exponent(A)
    return pow2_scaled(A, k), k


def scale_back(value: float, k: int, what: str) -> float:
    """``value * 2**k``; ``inf`` with a :class:`DegenerateDataWarning` if that overflows
    float64 (``what`` names the quantity)."""
    try:
        return math.ldexp(value, k)
    except OverflowError:
        warn_degenerate(
            f"{what} exceeds the float64 range (overflow: about 2**{math.frexp(value)[1] + k}; "
            "the largest float64 is about 1.8e308): returning inf (the inputs are finite but "
            "too large; rescale them to compare them)"
        )
        return math.inf


#: Buffers below this many bytes skip the memory pre-flight (it reads /proc files).
_SMALL_BYTES = 64 * 2**20


def check_matrix_fits(rows: int, cols: int, what: str, alternative: str) -> None:
    """Memory pre-flight of a ``rows x cols`` float64 buffer (``MemoryError`` if it cannot
    fit); buffers below 64 MiB are not checked."""
    nbytes = 8.0 * rows * cols
    if nbytes >= _SMALL_BYTES:
        check_fits(nbytes, what, alternative)


#: Rows that the quick looks of :func:`identical_rows` and of the neighbour family's tie
#: check take first.
PROBE_ROWS = 8


def identical_rows(Z: np.ndarray) -> bool:
    """Every row of ``Z`` is the same (all columns constant, by the one relative rule of
    :func:`congruence._validation.constant_columns`).

    The first rows are looked at first. A column is constant when its range is at most
    ``8 eps S`` with ``S`` its largest magnitude; every value of such a column then lies
    within ``8 eps S`` of its first value ``z``, so ``S <= |z| / (1 - 8 eps)`` and any two of
    its values differ by at most ``8 eps |z| / (1 - 8 eps) < 16 eps |z|``. Two of the first
    rows that differ by more than ``16 eps |z|`` in some column (an overflowing difference
    included) therefore prove that column varies, and the answer is False without the two
    passes over the whole array (serial NumPy reductions, a few percent of a distance
    correlation at n = 3000 on two threads).
    """
    head = np.asarray(Z[:PROBE_ROWS], dtype=np.float64)
    if head.shape[0] >= 2:
        with np.errstate(over="ignore"):
            gap = np.max(head, axis=0) - np.min(head, axis=0)
        if np.any(gap > 16.0 * np.finfo(np.float64).eps * np.abs(head[0])):
            return False
    return bool(constant_columns(Z).all())


def undefined(
    name: str,
    measure: str,
    cause: str = "every row is identical",
    what: str = "has zero variance",
) -> float:
    """Warn that ``measure`` is undefined on the data of ``name`` (``"<name> <what>:
    <cause>; <measure> is undefined (nan)"``) and return ``nan``."""
    warn_degenerate(f"{name} {what}: {cause}; {measure} is undefined (nan)")
    return math.nan


def still_defined(name: str, measure: str, value: str) -> None:
    """Warn that ``name``'s rows are identical while ``measure`` stays defined (``value``)."""
    warn_degenerate(
        f"{name} has zero variance: every row is identical; {measure} is still defined ({value})"
    )


def warn_identical(names: Sequence[str], measure: str, outcome: str) -> None:
    """One warning for the representations ``names`` whose rows are all identical;
    ``outcome`` says what the measure returns ("is undefined (nan)", ...)."""
    if names:
        verb = "has" if len(names) == 1 else "each have"
        warn_degenerate(
            f"{' and '.join(names)} {verb} zero variance: every row is identical (all "
            f"columns constant); {measure} {outcome}"
        )


def drop_dead_units(
    arrays: Sequence[np.ndarray],
    names: Sequence[str],
    measure: str,
    outcome: str = "is undefined there (nan)",
) -> list[Optional[np.ndarray]]:
    """Each array without its constant columns (dead units), ``None`` if all are constant.

    Issues at most one warning for the dropped columns (naming each argument and how many)
    and one (:func:`warn_identical`, with ``outcome``) for the arrays with identical rows.
    """
    kept: list[Optional[np.ndarray]] = []
    dropped, identical = [], []
    for X, name in zip(arrays, names):
        dead = constant_columns(X)
        k = int(np.count_nonzero(dead))
        if k == 0:
            kept.append(X)
        elif k == X.shape[1]:
            kept.append(None)
            identical.append(name)
        else:
            kept.append(X[:, ~dead])
            dropped.append(f"{name} has {k} constant column{'s' if k > 1 else ''} of {X.shape[1]}")
    if dropped:
        warn_degenerate(
            "; ".join(dropped) + f" (dead units: zero variance); {measure} drops them and "
            "uses the remaining columns"
        )
    warn_identical(identical, measure, outcome)
    return kept
