"""One validation path for every measure: array conversion, shapes, finiteness, parameters.

Every public measure calls :func:`check_pair` (or :func:`as_matrix`) first, so all measures
accept the same inputs and fail with the same, specific messages.
"""

from __future__ import annotations

import numbers
from typing import Any, Iterable, Sequence

import numpy as np

__all__ = ["as_matrix", "check_pair", "check_choice", "check_number", "check_bool"]


def _to_numpy(x: Any, name: str) -> np.ndarray:
    """Convert numpy arrays, array-likes, ``__array__`` and ``__dlpack__`` objects to numpy.

    Tensors are handled by duck typing, without importing their framework: a tensor that
    requires grad is detached first, and one on an accelerator is moved to the CPU.
    """
    if isinstance(x, np.ndarray):
        return x
    if hasattr(x, "detach") and callable(x.detach) and getattr(x, "requires_grad", False):
        x = x.detach()
    if hasattr(x, "__dlpack__"):
        try:
            return np.from_dlpack(x)
        except (TypeError, RuntimeError, BufferError, ValueError):
            if hasattr(x, "cpu") and callable(x.cpu):
                try:
                    return np.from_dlpack(x.cpu())
                except (TypeError, RuntimeError, BufferError, ValueError):
                    pass
    try:
        return np.asarray(x)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"{name} could not be converted to a numeric array ({exc}); pass a 2-D numpy "
            "array, a nested list of numbers, or a tensor"
        ) from None


def as_matrix(x: Any, name: str = "X", *, min_rows: int = 2) -> np.ndarray:
    """Return ``x`` as a 2-D float32 or float64 numpy array, validated.

    float32 input stays float32 (the core computes on it directly, accumulating in float64);
    every other real dtype becomes float64. Layout is preserved: strided views, Fortran order
    and read-only memory maps are read in place.

    Raises
    ------
    ValueError
        Naming ``name`` and its shape, for complex or non-numeric data, 1-D or >2-D input,
        empty input, fewer than ``min_rows`` rows, or NaN/inf entries (with their count).
    """
    a = _to_numpy(x, name)
    if a.dtype.kind not in "biuf":
        raise ValueError(
            f"{name} has dtype {a.dtype}; expected real numbers (float, int or bool)"
        )
    if a.ndim != 2:
        if a.ndim < 2:
            hint = (
                f"reshape it to (n_samples, n_features), e.g. {name}.reshape(-1, 1) for a "
                "single feature"
            )
        else:
            hint = (
                f"flatten the trailing dimensions, e.g. {name}.reshape({name}.shape[0], -1) "
                "(one row per input example)"
            )
        raise ValueError(
            f"{name} must be 2-D (n_samples, n_features) but has shape {a.shape} "
            f"({a.ndim}-D); {hint}"
        )
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(
            f"{name} has shape {a.shape}; expected at least one row and one column"
        )
    if a.shape[0] < min_rows:
        raise ValueError(
            f"{name} has shape {a.shape}: {a.shape[0]} row(s), but this measure needs at "
            f"least {min_rows} rows (samples)"
        )
    if a.dtype == np.float32 and a.dtype.isnative:
        pass
    elif a.dtype != np.float64 or not a.dtype.isnative:
        a = a.astype(np.float64)
    if a.dtype.kind == "f":
        finite = np.isfinite(a)
        if not finite.all():
            bad = int(a.size - np.count_nonzero(finite))
            raise ValueError(
                f"{name} of shape {a.shape} contains {bad} non-finite value(s) (NaN or inf); "
                "remove or impute them first"
            )
    return a


def check_pair(
    X: Any, Y: Any, *, min_rows: int = 2, names: Sequence[str] = ("X", "Y")
) -> tuple[np.ndarray, np.ndarray]:
    """Validate two representations of the same ``n`` inputs (see :func:`as_matrix`)."""
    a = as_matrix(X, names[0], min_rows=min_rows)
    b = as_matrix(Y, names[1], min_rows=min_rows)
    if a.shape[0] != b.shape[0]:
        raise ValueError(
            f"{names[0]} has shape {a.shape} and {names[1]} has shape {b.shape}: they must "
            f"have the same number of rows (row i of both is the same input example)"
        )
    return a, b


def check_choice(name: str, value: Any, choices: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``choices``, else raise a ValueError listing them."""
    choices = tuple(choices)
    if not isinstance(value, str) or value not in choices:
        listed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name}={value!r} is invalid; expected one of {listed}")
    return value


def check_bool(name: str, value: Any) -> bool:
    """Return ``value`` if it is a bool (numpy bools included), else raise ValueError."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise ValueError(f"{name}={value!r} is invalid; expected True or False")


def check_number(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    integer: bool = False,
) -> float:
    """Return ``value`` as a float (or int) if it is a finite number in the stated interval."""
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, kind):
        what = "an integer" if integer else "a real number"
        raise ValueError(f"{name}={value!r} is invalid; expected {what}")
    v = int(value) if integer else float(value)
    bad = not np.isfinite(v)
    if low is not None:
        bad |= v <= low if low_open else v < low
    if high is not None:
        bad |= v >= high if high_open else v > high
    if bad:
        left = "(" if low_open or low is None else "["
        right = ")" if high_open or high is None else "]"
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        raise ValueError(
            f"{name}={value!r} is out of range; expected a value in {left}{lo}, {hi}{right}"
        )
    return v
