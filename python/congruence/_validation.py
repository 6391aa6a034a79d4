"""One validation path for every measure: array conversion, shapes, finiteness, parameters.

Every public measure calls :func:`check_pair` (or :func:`as_matrix`) first, so all measures
accept the same inputs and fail with the same, specific messages.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Iterable, Sequence

import numpy as np

from congruence.errors import InputTypeError, ParameterError

__all__ = [
    "as_matrix",
    "check_pair",
    "check_choice",
    "check_number",
    "check_bool",
    "constant_columns",
]


def _to_numpy(x: Any, name: str) -> np.ndarray:
    """Convert numpy arrays, array-likes, ``__array__`` and ``__dlpack__`` objects to numpy.

    Tensors are handled by duck typing, without importing their framework: a tensor that
    requires grad is detached first, and one on an accelerator is moved to the CPU.
    """
    if isinstance(x, np.ndarray):
        if x.dtype.name == "bfloat16":  # ml_dtypes: NumPy cannot compute on it, upcast exactly
            return x.astype(np.float32)
        return x
    if hasattr(x, "detach") and callable(x.detach) and getattr(x, "requires_grad", False):
        x = x.detach()
    device = getattr(x, "device", None)
    if getattr(device, "type", None) == "meta":
        raise ValueError(
            f"{name} is a tensor on the 'meta' device, which holds shapes but no values; "
            "compute it on a real device (CPU or GPU) first"
        )
    if "bfloat16" in str(getattr(x, "dtype", "")) and callable(getattr(x, "float", None)):
        x = x.float()  # NumPy has no bfloat16; float32 holds every bfloat16 value exactly
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


#: What to do with a 3-D or 4-D activation array: the pooling policies (one row per input,
#: or one per token / spatial position).
_POOLING_HINT = {
    3: (
        "a 3-D (n, tokens, d) activation needs a pooling policy: 'mean' (over tokens), "
        "'first' (CLS), 'last', 'max', 'flatten' or 'tokens' (every token a row), e.g. "
        "{name}.mean(axis=1) or {name}.reshape({name}.shape[0], -1)"
    ),
    4: (
        "a 4-D (n, c, h, w) activation needs a pooling policy: 'flatten', 'mean' (global "
        "average pool) or 'spatial' (every position a row), e.g. "
        "{name}.reshape({name}.shape[0], -1)"
    ),
}


def as_matrix(x: Any, name: str = "X", *, min_rows: int = 2) -> np.ndarray:
    """Return ``x`` as a 2-D float32 or float64 numpy array, validated.

    float32 input stays float32 (the core computes on it directly, accumulating in float64);
    every other real dtype becomes float64. Layout is preserved: strided views, Fortran order
    and read-only memory maps are read in place.

    Raises
    ------
    InputTypeError
        (a ``TypeError`` and a ``ValueError``) for complex, object or other non-real data.
    ValueError
        Naming ``name`` and its shape, for 1-D or >2-D input,
        empty input, fewer than ``min_rows`` rows, or NaN/inf entries (with their count).
    """
    a = _numeric_array(x, name, "real numbers (float, int or bool)")
    if a.ndim != 2:
        if a.ndim < 2:
            hint = (
                f"reshape it to (n_samples, n_features), e.g. {name}.reshape(-1, 1) for a "
                "single feature"
            )
        else:
            hint = _POOLING_HINT.get(
                a.ndim, "reshape it to one row per input, e.g. {name}.reshape({name}.shape[0], -1)"
            ).format(name=name)
        raise ValueError(
            f"{name} must be 2-D (n_samples, n_features) but has shape {a.shape} "
            f"({a.ndim}-D); {hint}"
        )
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"{name} has shape {a.shape}; expected at least one row and one column")
    if a.shape[0] < min_rows:
        raise ValueError(
            f"{name} has shape {a.shape}: {a.shape[0]} row(s), but this measure needs at "
            f"least {min_rows} rows (samples)"
        )
    if a.dtype == np.float32 and a.dtype.isnative:
        pass
    elif a.dtype != np.float64 or not a.dtype.isnative:
        a = a.astype(np.float64)
    _check_finite(a, name)
    return a


def constant_columns(a: np.ndarray) -> np.ndarray:
    """Boolean mask of the columns of a 2-D array that are constant up to round-off.

    A column is constant when its peak-to-peak range is at most ``8 * eps64 * max|x|`` (a
    relative test, so a column of repeated ``0.1`` whose computed variance is ``1e-34`` counts
    as constant, while a column varying at any scale of its own does not). ``eps64`` is the
    float64 machine epsilon whatever the dtype: float32 values are exact float64 values.
    """
    if a.shape[0] == 0:
        return np.zeros(a.shape[1], dtype=bool)
    hi = a.max(axis=0).astype(np.float64)
    lo = a.min(axis=0).astype(np.float64)
    scale = np.maximum(np.abs(hi), np.abs(lo))
    return (hi - lo) <= 8.0 * np.finfo(np.float64).eps * scale


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
    """Return ``value`` if it is one of ``choices``, else raise a ParameterError (a
    ValueError) listing them."""
    choices = tuple(choices)
    if not isinstance(value, str) or value not in choices:
        listed = ", ".join(repr(c) for c in choices)
        raise ParameterError(f"{name}={value!r} is invalid; expected one of {listed}")
    return value


def check_bool(name: str, value: Any) -> bool:
    """Return ``value`` if it is a bool (numpy bools included), else raise ParameterError."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise ParameterError(f"{name}={value!r} is invalid; expected True or False")


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
        raise ParameterError(f"{name}={value!r} is invalid; expected {what}")
    if integer:
        v: float = int(value)
        bad = False
    else:
        try:
            v = float(value)
        except OverflowError:  # an int beyond float64 (10**400): out of every range here
            v = math.inf
        bad = not math.isfinite(v)
    if low is not None:
        bad |= v <= low if low_open else v < low
    if high is not None:
        bad |= v >= high if high_open else v > high
    if bad:
        left = "(" if low_open or low is None else "["
        right = ")" if high_open or high is None else "]"
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        raise ParameterError(
            f"{name}={value!r} is out of range; expected a value in {left}{lo}, {hi}{right}"
        )
    return v


# --------------------------------------------------------------------------- model outputs
# Functional measures (Klabunde et al. 2025, functional measures) take model outputs instead of representations:
# hard predictions (1-D integer class labels, shape (n,)) or soft outputs (2-D scores or
# probabilities, shape (n, C)). The helpers below are their single validation path.

#: Largest magnitude up to which a float label is an exact integer (2**53).
_MAX_EXACT_FLOAT_INT = float(2**53)


def _numeric_array(x: Any, name: str, what: str) -> np.ndarray:
    """``x`` as a numpy array of a real dtype: object arrays of numbers are converted; complex,
    string and other non-real data raise :class:`InputTypeError` (a TypeError and ValueError)."""
    a = _to_numpy(x, name)
    if a.dtype.kind == "O":
        try:
            if any(item is None for item in a.flat):
                raise TypeError("it holds None")
            a = a.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise InputTypeError(
                f"{name} has dtype object and its items are not all real numbers ({exc}); "
                f"expected {what}"
            ) from None
    if a.dtype.kind not in "biuf":
        hint = "; take .real, .imag or abs() first" if a.dtype.kind == "c" else ""
        raise InputTypeError(f"{name} has dtype {a.dtype}; expected {what}{hint}")
    return a


def _check_examples(a: np.ndarray, name: str, min_rows: int) -> None:
    if a.shape[0] == 0 or (a.ndim == 2 and a.shape[1] == 0):
        raise ValueError(f"{name} has shape {a.shape}; expected at least one example and class")
    if a.shape[0] < min_rows:
        raise ValueError(
            f"{name} has shape {a.shape}: {a.shape[0]} example(s), but this measure needs at "
            f"least {min_rows} examples (rows)"
        )


def _check_finite(a: np.ndarray, name: str) -> None:
    """The one finiteness check: a ValueError naming ``name``, its shape and the count."""
    if a.dtype.kind == "f":
        finite = np.isfinite(a)
        if not finite.all():
            bad = int(a.size - np.count_nonzero(finite))
            raise ValueError(
                f"{name} of shape {a.shape} contains {bad} non-finite value(s) (NaN or inf); "
                "remove or impute them first"
            )


def _integer_labels(a: np.ndarray, name: str) -> np.ndarray:
    """A validated 1-D numeric array as int64 class labels (a new array)."""
    if a.dtype.kind == "f":
        _check_finite(a, name)
        frac = a != np.round(a)
        if frac.any():
            first = a[np.flatnonzero(frac)[0]]
            raise ValueError(
                f"{name} holds {int(np.count_nonzero(frac))} non-integer value(s) (e.g. "
                f"{float(first)!r}); hard predictions and labels must be integer class "
                "indices (pass soft outputs as a 2-D (n, C) array of scores)"
            )
        if np.abs(a).max() > _MAX_EXACT_FLOAT_INT:
            raise ValueError(
                f"{name} holds class labels beyond 2**53 in magnitude; expected integer class "
                "indices"
            )
    elif a.dtype.kind == "u" and a.dtype.itemsize >= 8 and a.max() > np.iinfo(np.int64).max:
        raise ValueError(f"{name} holds class labels beyond the int64 range")
    return a.astype(np.int64)


def as_labels(x: Any, name: str = "labels", *, min_rows: int = 2) -> np.ndarray:
    """Return ``x`` as a 1-D int64 vector of class labels, validated (a new array).

    Integer and bool arrays are accepted, and float arrays whose values are all integers.

    Raises
    ------
    ValueError
        Naming ``name``, for non-numeric data, an array that is not 1-D, fewer than
        ``min_rows`` entries, NaN/inf, or non-integer values.
    """
    a = _numeric_array(x, name, "integer class labels")
    if a.ndim != 1:
        raise ValueError(
            f"{name} must be 1-D (n,) integer class labels but has shape {a.shape} ({a.ndim}-D)"
        )
    _check_examples(a, name, min_rows)
    return _integer_labels(a, name)


def as_outputs(x: Any, name: str, *, min_rows: int = 2) -> np.ndarray:
    """Return model outputs validated: hard (1-D int64 labels) or soft (2-D float64 scores).

    A 1-D input is hard predictions (see :func:`as_labels`); a 2-D ``(n, C)`` input is soft
    outputs (scores, logits or probabilities), returned as float64 (possibly the input itself:
    never write to the result).

    Raises
    ------
    ValueError
        Naming ``name``, for non-numeric data, input that is neither 1-D nor 2-D, no example or
        no class, fewer than ``min_rows`` examples, NaN/inf entries, or non-integer hard labels.
    """
    a = _numeric_array(x, name, "integer class labels (n,) or real scores (n, C)")
    if a.ndim == 1:
        _check_examples(a, name, min_rows)
        return _integer_labels(a, name)
    if a.ndim != 2:
        raise ValueError(
            f"{name} has shape {a.shape} ({a.ndim}-D); expected hard predictions of shape (n,) "
            "or soft outputs (scores or probabilities) of shape (n, C)"
        )
    _check_examples(a, name, min_rows)
    if a.dtype != np.float64 or not a.dtype.isnative:
        a = a.astype(np.float64)
    _check_finite(a, name)
    return a


def as_probabilities(x: Any, name: str, *, min_rows: int = 2) -> np.ndarray:
    """Return ``x`` as a validated 2-D float64 ``(n, C)`` array of non-negative values.

    Raises
    ------
    ValueError
        Naming ``name``, as :func:`as_outputs`, and for 1-D (hard) input or negative entries.
    """
    a = _numeric_array(x, name, "non-negative real probabilities (n, C)")
    if a.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D (n, C) probabilities but has shape {a.shape} ({a.ndim}-D); "
            "this measure needs soft outputs (e.g. a softmax over the classes), not hard labels"
        )
    a = as_outputs(a, name, min_rows=min_rows)
    neg = a < 0
    if neg.any():
        raise ValueError(
            f"{name} of shape {a.shape} has {int(np.count_nonzero(neg))} negative value(s) "
            f"(minimum {float(a.min()):g}); expected non-negative probabilities (apply a "
            "softmax to logits first)"
        )
    return a


def check_same_length(arrays: Sequence[np.ndarray], names: Sequence[str]) -> int:
    """Return the common number of examples ``n`` (rows) of ``arrays``, else raise ValueError."""
    n = arrays[0].shape[0]
    for a, name in zip(arrays[1:], names[1:]):
        if a.shape[0] != n:
            raise ValueError(
                f"{name} has shape {a.shape} and {names[0]} has shape {arrays[0].shape}: they "
                f"must hold the same number n of examples (entry i of each is the same input)"
            )
    return n


def check_class_counts(arrays: Sequence[np.ndarray], names: Sequence[str]) -> int | None:
    """Check that model outputs agree on the classes; return ``C`` (``None`` if all hard).

    Soft outputs (2-D) must have the same number ``C`` of columns; when there is one, hard
    labels (1-D) must lie in ``0 .. C-1``, the classes an argmax over the columns can give.
    """
    soft = [(a, name) for a, name in zip(arrays, names) if a.ndim == 2]
    if not soft:
        return None
    first, first_name = soft[0]
    C = first.shape[1]
    for a, name in soft[1:]:
        if a.shape[1] != C:
            raise ValueError(
                f"{name} has shape {a.shape} and {first_name} has shape {first.shape}: soft "
                f"outputs must have the same number of classes (columns)"
            )
    for a, name in zip(arrays, names):
        if a.ndim == 1:
            bad = (a < 0) | (a >= C)
            if bad.any():
                raise ValueError(
                    f"{name} holds class label {int(a[np.flatnonzero(bad)[0]])}, outside "
                    f"0..{C - 1}: the number of classes does not match the {C} columns of "
                    f"{first_name}"
                )
    return C


def check_probabilities(
    arrays: Sequence[Any], names: Sequence[str], *, min_rows: int = 2
) -> list[np.ndarray]:
    """Validate model outputs as probabilities (:func:`as_probabilities`) of equal shapes."""
    out = [as_probabilities(a, name, min_rows=min_rows) for a, name in zip(arrays, names)]
    for a, name in zip(out[1:], names[1:]):
        if a.shape != out[0].shape:
            raise ValueError(
                f"{name} has shape {a.shape} and {names[0]} has shape {out[0].shape}: the "
                "probabilities must have equal shapes (n, C) (same examples, same classes)"
            )
    return out
