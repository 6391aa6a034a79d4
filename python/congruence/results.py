"""The result of a layer-by-layer comparison, the one lookup of layer names, and the one
parser of layer sets.

:func:`find_layer` is where every layer name a user types is resolved (result indexing, the
file readers, the streaming accumulators, extraction from models); an unknown name raises
:class:`~congruence.errors.LayerNotFoundError` (a ``KeyError`` and a ``ValueError``) whose
message lists the closest available names.

:func:`layer_set` and :func:`same_rows` are where every "set of layers" argument is read
(:func:`congruence.compare_layers`, the streaming accumulators and drivers, Dask,
:func:`congruence.compare_models` and the command line): a mapping of layer names to items,
or a list (named ``"0"``, ``"1"``, ...), whose items all hold the same rows.
"""

from __future__ import annotations

import csv
import difflib
import io
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence

import numpy as np

from congruence._files import atomic_write
from congruence.errors import LayerNotFoundError

__all__ = ["LayerComparison", "find_layer", "layer_not_found", "layer_set", "same_rows"]

#: at most this many names are listed when no close match exists
_SHOWN = 20


#: The layer names of the layer matrix being computed, by side ("a", "b"), for messages of the
#: whole-matrix routes (which receive lists of arrays); per thread and per task.
_LABELS: ContextVar[Optional[Mapping[str, Sequence[str]]]] = ContextVar(
    "congruence_layer_labels", default=None
)


@contextmanager
def layer_labels(**sides: Sequence[str]) -> Iterator[None]:
    """Within this context :func:`layer_label` names the layers of each side (``a=rows``,
    ``b=cols``) by their names."""
    token = _LABELS.set(sides)
    try:
        yield
    finally:
        _LABELS.reset(token)


def layer_label(side: str, i: int) -> str:
    """How a message names layer ``i`` of ``side``: ``a['conv1']`` inside
    :func:`layer_labels` (as ``compare_layers`` sets it), else ``a[0]``."""
    labels = _LABELS.get()
    if labels is not None and side in labels:
        return f"{side}[{labels[side][i]!r}]"
    return f"{side}[{i}]"


def layer_not_found(
    name: Any, available: Sequence[str], where: str, kind: str = "layer"
) -> LayerNotFoundError:
    """The error for a layer ``name`` missing from ``available`` (the names ``where`` holds).

    The message names the layer and ``where``, then the close matches (``difflib``, by
    similarity of spelling, ratio >= 0.5), or the available names when none is close.
    ``kind`` is what the names are (``"layer"``; ``"module"`` for a model's submodules).

    >>> print(layer_not_found("h2", ["h1", "h_2", "out"], "the rows"))
    no layer named 'h2' in the rows; did you mean 'h_2' or 'h1'?
    >>> print(layer_not_found("fc", ["conv1", "conv2"], "model_a", kind="module"))
    no module named 'fc' in model_a; the modules are: 'conv1', 'conv2'
    """
    names = [str(a) for a in available]
    close = difflib.get_close_matches(str(name), names, n=3, cutoff=0.5)
    if close:
        hint = "did you mean " + " or ".join(repr(c) for c in close) + "?"
    elif names:
        shown = ", ".join(repr(a) for a in names[:_SHOWN])
        more = f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else ""
        hint = f"the {kind}s are: {shown}{more}"
    else:
        hint = f"there are no {kind}s"
    return LayerNotFoundError(f"no {kind} named {name!r} in {where}; {hint}")


def find_layer(name: Any, available: Sequence[str], where: str) -> int:
    """The position of layer ``name`` in ``available``; :class:`LayerNotFoundError` if absent.

    >>> find_layer("h1", ("h0", "h1"), "the rows")
    1
    """
    if isinstance(name, str):
        for i, a in enumerate(available):
            if a == name:
                return i
    raise layer_not_found(name, available, where)


def layer_set(
    layers: Any,
    arg: str,
    convert: Callable[[Any, str], Any],
    *,
    what: str = "(n, p) arrays",
    alternatives: str = "",
) -> tuple[list[str], list[Any]]:
    """The names and converted items of one set of layers.

    ``layers`` maps layer names to items (names are ``str(key)``), or is a list or tuple of
    items, named ``"0"``, ``"1"``, ... in order. ``convert(item, label)`` validates one item
    (``label`` is ``"<arg>['<name>']"``, for messages) and returns what the caller works on:
    a NumPy matrix, a row source, a Dask array.

    Raises
    ------
    ValueError
        For anything else (naming ``arg``, ``what`` it must hold and the ``alternatives``),
        an empty set, or two keys with the same name.

    >>> layer_set({"h1": 1, "h2": 2}, "a", lambda v, label: (label, v))
    (['h1', 'h2'], [("a['h1']", 1), ("a['h2']", 2)])
    >>> layer_set([5], "b", lambda v, label: v)
    (['0'], [5])
    """
    if isinstance(layers, Mapping):
        items = [(str(k), v) for k, v in layers.items()]
    elif isinstance(layers, (list, tuple)):
        items = [(str(i), v) for i, v in enumerate(layers)]
    else:
        raise ValueError(
            f"{arg} must map layer names to {what} (a dict) or be a list of them"
            f"{alternatives}; got {type(layers).__name__}"
        )
    if not items:
        raise ValueError(f"{arg} holds no layers")
    names = [k for k, _ in items]
    if len(set(names)) != len(names):
        twice = sorted({k for k in names if names.count(k) > 1})
        raise ValueError(f"{arg} names layer(s) {twice} twice (keys are compared as strings)")
    return names, [convert(v, f"{arg}[{k!r}]") for k, v in items]


def same_rows(
    sets: Sequence[tuple[str, Sequence[str], Sequence[Any]]],
    *,
    rows: Callable[[Any], int] = lambda x: int(x.shape[0]),
    describe: Callable[[Any], str] = lambda x: f" has shape {tuple(x.shape)}",
    explain: Optional[Callable[[Any, Any], str]] = None,
    must: str = "every layer must hold the same n inputs",
) -> int:
    """The common row count of the layer sets ``[(arg, names, items), ...]``.

    Raises
    ------
    ValueError
        Naming the first layer whose row count differs from the first layer of the first
        set: ``"<label><describe(item)> but <reference> has <n> rows; <must><explain>"``, where
        ``explain(item, reference)`` may add a reason (e.g. a pooling policy that gives one row
        per token).

    >>> import numpy as np
    >>> same_rows([("a", ["h1"], [np.ones((5, 2))]), ("b", ["x"], [np.ones((5, 3))])])
    5
    >>> same_rows([("a", ["h1"], [np.ones((5, 2))]), ("b", ["x"], [np.ones((4, 3))])])
    Traceback (most recent call last):
    ...
    ValueError: b['x'] has shape (4, 3) but a['h1'] has 5 rows; every layer must hold the same n inputs
    """
    arg0, names0, items0 = sets[0]
    ref = items0[0]
    n = rows(ref)
    for arg, names, items in sets:
        for name, x in zip(names, items):
            if rows(x) != n:
                why = explain(x, ref) if explain is not None else ""
                raise ValueError(
                    f"{arg}[{name!r}]{describe(x)} but {arg0}[{names0[0]!r}] has {n} rows; "
                    f"{must}{why}"
                )
    return n


@dataclass(frozen=True)
class LayerComparison:
    """A labelled matrix of one measure between the layers of two models (or of one model).

    Attributes
    ----------
    measure : str
        Name of the registered measure.
    params : dict
        Its parameters (defaults completed).
    kind : str
        ``"similarity"``, ``"distance"`` or ``"dependence"``.
    rows, cols : tuple of str
        Layer names of the first and second model (the same when one model is compared
        with itself).
    values : ndarray of shape (len(rows), len(cols))
        ``values[i, j] = measure(a[rows[i]], b[cols[j]])``.
    pvalues : ndarray of shape (len(rows), len(cols)), optional
        Permutation-test p-values of each cell (``compare_layers(..., permutations=N)``).
    n_permutations, seed, alternative
        How the p-values were computed (``None`` without them).
    """

    measure: str
    params: Mapping[str, Any]
    kind: str
    rows: tuple[str, ...]
    cols: tuple[str, ...]
    values: np.ndarray = field(repr=False)
    pvalues: Optional[np.ndarray] = field(default=None, repr=False)
    n_permutations: Optional[int] = None
    seed: Optional[int] = None
    alternative: Optional[str] = None

    def __getitem__(self, key: tuple[str, str]) -> float:
        """``result["layer_a", "layer_b"]`` is the value for that pair of layers.

        Raises :class:`~congruence.errors.LayerNotFoundError` (a ``KeyError`` and a
        ``ValueError``) for a name that is not among ``rows`` / ``cols``, listing close names.
        """
        if not isinstance(key, tuple) or len(key) != 2:
            raise LayerNotFoundError(
                f"index a LayerComparison with a pair of layer names, result[row, col]; got {key!r}"
            )
        r, c = key
        i = find_layer(r, self.rows, "the rows")
        j = find_layer(c, self.cols, "the columns")
        return float(self.values[i, j])

    def best_match(self) -> dict[str, str]:
        """For every row layer, the column layer most alike (max similarity, min distance)."""
        pick = np.nanargmin if self.kind == "distance" else np.nanargmax
        out = {}
        for i, r in enumerate(self.rows):
            row = self.values[i]
            out[r] = self.cols[int(pick(row))] if np.isfinite(row).any() else None
        return out

    def to_pandas(self):
        """The matrix as a ``pandas.DataFrame`` indexed by layer names (needs pandas)."""
        try:
            import pandas as pd
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("to_pandas() needs pandas: pip install 'congruence[pandas]'") from exc
        return pd.DataFrame(self.values, index=list(self.rows), columns=list(self.cols))

    def to_csv(self, path=None) -> str:
        """Write the labelled matrix as CSV to ``path`` (if given, atomically: a temporary file
        renamed over ``path``) and return the text."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow([""] + list(self.cols))
        for r, row in zip(self.rows, self.values):
            w.writerow([r] + [repr(float(v)) for v in row])
        text = buf.getvalue()
        if path is not None:
            atomic_write(path, text)
        return text

    def format(self, digits: int = 3) -> str:
        """The matrix as an aligned text table."""
        cells = [[f"{v:.{digits}f}" for v in row] for row in self.values]
        w0 = max([len(r) for r in self.rows] + [0])
        widths = [max(len(c), *(len(row[j]) for row in cells)) for j, c in enumerate(self.cols)]
        lines = [" " * w0 + "  " + "  ".join(c.rjust(w) for c, w in zip(self.cols, widths))]
        for r, row in zip(self.rows, cells):
            lines.append(r.ljust(w0) + "  " + "  ".join(v.rjust(w) for v, w in zip(row, widths)))
        return "\n".join(lines)

    def __str__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{self.measure}({params}) [{self.kind}]\n{self.format()}"
