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

:class:`LayerComparison` is the result of a layer matrix: values by layer names, best matches,
optional permutation p-values and :meth:`~LayerComparison.significant` (Holm or
Benjamini-Hochberg), text and notebook display, plots (:mod:`congruence.plot`), and
:meth:`~LayerComparison.save` / :func:`load_result` in ``.json``, ``.npz`` and ``.csv``, which
round-trip exactly.
"""

from __future__ import annotations

import csv
import difflib
import html
import io
import json
import math
import os
import warnings
import zipfile
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Literal, Mapping, Optional, Sequence, Union, get_args

import numpy as np

from congruence._files import atomic_write, check_output
from congruence._validation import check_choice, check_number
from congruence.errors import LayerNotFoundError, UnreadableFileError, _outside_package_stacklevel

__all__ = [
    "LayerComparison",
    "find_layer",
    "layer_not_found",
    "layer_set",
    "load_result",
    "same_rows",
]

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
    names = list(dict.fromkeys(str(a) for a in available))  # each once, in order
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


#: The file formats of :meth:`LayerComparison.save`, by suffix.
FORMATS = (".json", ".npz", ".csv")
#: What the metadata of a saved result calls itself (JSON, the npz ``meta`` entry, the CSV
#: header line), and the version of that layout.
_FORMAT = "congruence.LayerComparison"
_FORMAT_VERSION = 1
#: The first characters of a CSV written by :meth:`LayerComparison.save`.
_CSV_MARK = "# congruence "
#: ``repr`` shows the numbers up to this many rows and columns, a summary beyond.
_REPR_MAX = 20
#: The corrections of :meth:`LayerComparison.significant`.
Correction = Literal["holm", "fdr_bh"]
CORRECTIONS = get_args(Correction)


def _package_version() -> str:
    import congruence

    return str(getattr(congruence, "__version__", "0+unknown"))


def _shapes(shapes: Any) -> Optional[dict[str, dict[str, tuple[int, ...]]]]:
    """``shapes`` as ``{side: {layer: (int, ...)}}`` (ValueError for anything else)."""
    if shapes is None:
        return None
    try:
        out = {
            str(side): {str(name): tuple(int(d) for d in shape) for name, shape in layers.items()}
            for side, layers in shapes.items()
        }
    except (AttributeError, TypeError, ValueError):
        raise ValueError(
            "shapes must map each side ('a', 'b') to {layer name: shape tuple}, e.g. "
            f"{{'a': {{'h1': (100, 64)}}}}; got {shapes!r}"
        ) from None
    return out


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
    pvalues : ndarray of the shape of ``values``, optional
        Permutation p-values of the cells (``compare_layers(..., permutations=N)``).
    n_permutations, seed : int, optional
        How the p-values were computed.
    alternative : str, optional
        The alternative hypothesis of the p-values.
    shapes : dict, optional
        The input shapes, by side and layer: ``{"a": {"h1": (n, p)}, "b": {...}}``.
    version : str
        The version of congruence that computed the result (default: this one).

    Examples
    --------
    >>> import numpy as np
    >>> res = LayerComparison(measure="cka", params={"debiased": False}, kind="similarity",
    ...                       rows=("h1", "h2"), cols=("g1",), values=np.array([[0.9], [0.25]]))
    >>> res
    LayerComparison(cka(debiased=False) [similarity], 2 x 1)
           g1
    h1  0.900
    h2  0.250
    >>> res["h2", "g1"]
    0.25
    >>> res.best_match()
    {'h1': 'g1', 'h2': 'g1'}
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
    shapes: Optional[Mapping[str, Mapping[str, tuple[int, ...]]]] = None
    version: str = field(default_factory=_package_version)

    def __post_init__(self) -> None:
        shape = (len(self.rows), len(self.cols))
        if np.shape(self.values) != shape:
            raise ValueError(
                f"values must have shape (len(rows), len(cols)) = {shape}; "
                f"got {np.shape(self.values)}"
            )
        if self.pvalues is not None:
            p = np.asarray(self.pvalues, dtype=np.float64)
            if p.shape != shape:
                raise ValueError(f"pvalues must have the shape of values, {shape}; got {p.shape}")
            object.__setattr__(self, "pvalues", p)
        object.__setattr__(self, "shapes", _shapes(self.shapes))

    # ------------------------------------------------------------------ lookup

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
        return {
            r: (None if j < 0 else self.cols[j]) for r, j in zip(self.rows, self._best_columns())
        }

    def _best_columns(self) -> list[int]:
        """Per row, the position of the most alike column (-1 when the row is all nan)."""
        pick = np.nanargmin if self.kind == "distance" else np.nanargmax
        values = np.asarray(self.values, dtype=np.float64)
        return [int(pick(row)) if np.isfinite(row).any() else -1 for row in values]

    @property
    def is_self(self) -> bool:
        """Whether this is one model's layers against themselves: ``rows == cols`` and the
        values are symmetric (nan where nan), as ``compare_layers(a)`` returns for a
        symmetric measure.

        >>> import numpy as np
        >>> LayerComparison("cka", {}, "similarity", ("h1", "h2"), ("h1", "h2"),
        ...                 np.array([[1.0, 0.3], [0.3, 1.0]])).is_self
        True
        """
        v = np.asarray(self.values, dtype=np.float64)
        return self.rows == self.cols and np.array_equal(v, v.T, equal_nan=True)

    # ------------------------------------------------------------------ inference

    def significant(
        self, alpha: float = 0.05, correction: Optional[Correction] = "holm"
    ) -> np.ndarray:
        """Which cells' p-values are significant at level ``alpha``, as a boolean matrix.

        Parameters
        ----------
        alpha : float in (0, 1)
            The family-wise error rate (``"holm"``), the false discovery rate
            (``"fdr_bh"``) or the level of each cell (``None``).
        correction : {"holm", "fdr_bh", None}
            With ``m`` tested cells and their p-values sorted, ``p_(1) <= ... <= p_(m)``:

            * ``"holm"`` (Holm 1979, step-down): reject ``p_(1), ..., p_(k)`` where ``k`` is
              the largest index with ``p_(i) <= alpha / (m - i + 1)`` for every ``i <= k``
              (stop at the first failure). Controls the family-wise error rate under any
              dependence between the cells.
            * ``"fdr_bh"`` (Benjamini & Hochberg 1995, step-up): reject ``p_(1), ..., p_(k)``
              for the largest ``k`` with ``p_(k) <= k alpha / m``. Controls the false
              discovery rate for independent or positively dependent cells.
            * ``None``: each cell alone, ``p <= alpha``.

        Returns
        -------
        ndarray of bool, shape of ``values``
            ``False`` for a cell whose p-value is nan (it is not counted among the ``m``).

        Notes
        -----
        The family. For one model against itself (:attr:`is_self`) each unordered pair of
        layers is one test: the ``m = L (L + 1) / 2`` cells ``i <= j`` (the diagonal
        included) are corrected, and the decision of ``(i, j)`` is mirrored to ``(j, i)``.
        Counting both halves would test every pair twice. (A diagonal cell compares a layer
        with itself; when it passes, as it does with enough permutations, Holm's decisions on
        the other cells are those of the ``L (L - 1) / 2`` off-diagonal cells alone.)
        Otherwise every cell is a test.

        Too few permutations. A permutation p-value is at least ``1 / (N + 1)`` for ``N``
        permutations. When ``N + 1 < m / alpha`` (``m = 1`` without correction) no single
        cell can pass Holm's first threshold ``alpha / m``: a ``UserWarning`` says so (with
        ``"fdr_bh"`` cells can pass only as a group of at least ``m / (alpha (N + 1))``
        cells at the smallest p-value; below ``N + 1 < 1 / alpha`` none can).

        Raises
        ------
        ValueError
            When the result holds no p-values, or for an invalid ``alpha`` / ``correction``.

        Examples
        --------
        >>> import numpy as np
        >>> res = LayerComparison("cka", {}, "similarity", ("h1", "h2"), ("g1", "g2"),
        ...                       np.array([[0.9, 0.2], [0.3, 0.8]]),
        ...                       pvalues=np.array([[0.001, 0.04], [0.02, 0.011]]),
        ...                       n_permutations=999)
        >>> res.significant(0.05, correction=None).tolist()
        [[True, True], [True, True]]

        Sorted, the p-values are .001, .011, .02, .04 (``m = 4``). Holm at 0.05 compares them
        with .05/4, .05/3, .05/2, .05/1: all pass. At 0.03 the thresholds are .0075, .01,
        ...: .011 > .01 stops the procedure after the first. Benjamini-Hochberg at 0.03
        compares with 1, 2, 3, 4 times .03/4: the largest passing rank is 3 (.02 <= .0225).

        >>> res.significant(0.05, correction="holm").tolist()
        [[True, True], [True, True]]
        >>> res.significant(0.03, correction="holm").tolist()
        [[True, False], [False, False]]
        >>> res.significant(0.03, correction="fdr_bh").tolist()
        [[True, False], [True, True]]
        """
        if self.pvalues is None:
            raise ValueError(
                "this result holds no p-values; compute them with "
                "compare_layers(..., permutations=N)"
            )
        alpha = check_number("alpha", alpha, low=0.0, high=1.0, low_open=True, high_open=True)
        if correction is not None:
            correction = check_choice("correction", correction, CORRECTIONS + (None,))
        p = np.asarray(self.pvalues, dtype=np.float64)
        family = np.ones(p.shape, dtype=bool)
        mirror = self.is_self
        if mirror:
            family = np.triu(family)
        family &= ~np.isnan(p)
        tested = p[family]
        m = int(tested.size)
        self._warn_too_few(alpha, correction, m)
        passed = np.zeros(m, dtype=bool)
        if m:
            if correction is None:
                passed = tested <= alpha
            else:
                order = np.argsort(tested, kind="stable")
                ranked = tested[order]
                i = np.arange(1, m + 1)
                if correction == "holm":
                    ok = ranked <= alpha / (m - i + 1)
                    k = m if ok.all() else int(np.argmin(ok))  # the first failure stops
                else:
                    ok = np.nonzero(ranked <= i * alpha / m)[0]
                    k = int(ok[-1]) + 1 if ok.size else 0
                passed[order[:k]] = True
        out = np.zeros(p.shape, dtype=bool)
        out[family] = passed
        if mirror:
            out |= np.triu(out, 1).T
        return out

    def _warn_too_few(self, alpha: float, correction: Optional[str], m: int) -> None:
        n = self.n_permutations
        if n is None or m == 0:
            return
        smallest = 1.0 / (n + 1)
        tests = m if correction is not None else 1
        if n + 1 >= tests / alpha:
            return
        if correction == "fdr_bh" and n + 1 >= 1 / alpha:
            group = int(np.ceil(m / (alpha * (n + 1)) - 1e-12))
            msg = (
                f"with {n} permutations the smallest p-value is {smallest:.3g} > alpha/m = "
                f"{alpha:g}/{m}: a cell passes fdr_bh only when at least {group} cells have "
                f"that p-value; use at least {int(np.ceil(m / alpha)) - 1} permutations"
            )
        else:
            what = f"alpha/m = {alpha:g}/{m}" if tests > 1 else f"alpha = {alpha:g}"
            need = int(np.ceil(tests / alpha)) - 1
            msg = (
                f"with {n} permutations the smallest p-value is {smallest:.3g} > {what}: no "
                f"cell can be significant; use at least {need} permutations"
            )
        warnings.warn(msg, UserWarning, stacklevel=_outside_package_stacklevel())

    # ------------------------------------------------------------------ export

    def to_pandas(self):
        """The matrix as a ``pandas.DataFrame`` indexed by layer names (needs pandas)."""
        try:
            import pandas as pd
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("to_pandas() needs pandas: pip install 'congruence[pandas]'") from exc
        return pd.DataFrame(self.values, index=list(self.rows), columns=list(self.cols))

    def to_xarray(self):
        """The matrix as an ``xarray.DataArray`` (needs xarray: ``congruence[xarray]``).

        Dimensions ``("rows", "cols")`` with the layer names as coordinates; the array is
        named after the measure. ``attrs`` hold ``measure``, ``kind``, ``params`` (a dict),
        ``version`` and, when present, ``n_permutations``, ``seed`` and ``alternative``.
        The p-values, when present, are a second array on the same dimensions, attached as
        the coordinate ``"pvalues"`` (``da.coords["pvalues"]``), so that selections keep
        each value with its p-value.

        >>> import numpy as np
        >>> res = LayerComparison("cka", {}, "similarity", ("h1", "h2"), ("g1",),
        ...                       np.array([[0.9], [0.25]]))
        >>> da = res.to_xarray()
        >>> da.dims, float(da.sel(rows="h2", cols="g1")), da.attrs["measure"]
        (('rows', 'cols'), 0.25, 'cka')
        """
        try:
            import xarray as xr
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("to_xarray() needs xarray: pip install 'congruence[xarray]'") from exc
        coords: dict[str, Any] = {"rows": list(self.rows), "cols": list(self.cols)}
        if self.pvalues is not None:
            coords["pvalues"] = (("rows", "cols"), np.array(self.pvalues, dtype=np.float64))
        attrs: dict[str, Any] = {
            "measure": self.measure,
            "kind": self.kind,
            "params": dict(self.params),
            "version": self.version,
        }
        for key in ("n_permutations", "seed", "alternative"):
            if getattr(self, key) is not None:
                attrs[key] = getattr(self, key)
        return xr.DataArray(
            np.array(self.values, dtype=np.float64),
            dims=("rows", "cols"),
            coords=coords,
            name=self.measure,
            attrs=attrs,
        )

    def to_csv(self, path: Union[str, "os.PathLike[str]", None] = None) -> str:
        """Write the labelled matrix as CSV to ``path`` (if given, atomically: a temporary file
        renamed over ``path``) and return the text.

        The table only, without the measure or its parameters: :meth:`save` to a ``.csv``
        writes them in a header line before this table."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow([""] + list(self.cols))
        for r, row in zip(self.rows, self.values):
            w.writerow([r] + [repr(float(v)) for v in row])
        text = buf.getvalue()
        if path is not None:
            atomic_write(path, text)
        return text

    def save(self, path: Union[str, os.PathLike]) -> None:
        """Save the result to ``path`` in the format its suffix names; :func:`load_result`
        reads it back exactly (every value to the last bit, nan and ±inf included).

        * ``.json``: one object with the metadata, ``values`` and ``pvalues`` as lists of
          rows; nan, inf and -inf are the strings ``"nan"``, ``"inf"``, ``"-inf"``; numbers
          are written with ``repr`` (shortest text that reads back to the same float).
        * ``.npz``: the arrays ``values`` (and ``pvalues``) as float64, and ``meta``, the
          metadata as a JSON string (read without pickle).
        * ``.csv``: a first line ``# congruence <metadata as JSON, p-values included>``, then
          the table of :meth:`to_csv`.

        The metadata are the measure, its parameters, the kind, the layer names, the p-values'
        ``n_permutations``, ``seed`` and ``alternative``, the input ``shapes`` and the
        ``version`` of congruence. The file is written atomically (a temporary file renamed
        over ``path``).

        Raises
        ------
        ValueError
            For an unknown suffix (the formats are listed), a ``path`` that is a folder, or a
            parameter whose value is not a JSON scalar (str, int, float, bool or None), named.
        FileNotFoundError, PermissionError
            When the folder of ``path`` does not exist or cannot be written.

        Examples
        --------
        >>> import os, tempfile, numpy as np, congruence as cg
        >>> res = LayerComparison("cka", {"debiased": True}, "similarity", ("h1",), ("g1", "g2"),
        ...                       np.array([[0.5, np.nan]]))
        >>> path = os.path.join(tempfile.mkdtemp(), "res.json")
        >>> res.save(path)
        >>> back = cg.load_result(path)
        >>> back.params, back.values.tolist()
        ({'debiased': True}, [[0.5, nan]])
        """
        fmt = check_output(path, FORMATS, "the result file")
        meta = self._metadata()
        if fmt == ".json":
            meta["values"] = _encode_matrix(self.values)
            atomic_write(path, json.dumps(meta, ensure_ascii=False, indent=1) + "\n")
        elif fmt == ".csv":
            header = _CSV_MARK + json.dumps(meta, ensure_ascii=False) + "\n"
            atomic_write(path, header + self.to_csv())
        else:
            arrays = {"values": np.array(self.values, dtype=np.float64)}
            if self.pvalues is not None:
                arrays["pvalues"] = np.array(self.pvalues, dtype=np.float64)
            del meta["pvalues"]
            buf = io.BytesIO()
            np.savez(buf, meta=np.array(json.dumps(meta, ensure_ascii=False)), **arrays)
            atomic_write(path, buf.getvalue())

    def _metadata(self) -> dict[str, Any]:
        """Everything but the values, as JSON-ready data."""
        params = {}
        for key, value in self.params.items():
            params[str(key)] = _json_scalar(value, f"parameter {key!r}")
        return {
            "format": _FORMAT,
            "format_version": _FORMAT_VERSION,
            "measure": str(self.measure),
            "kind": str(self.kind),
            "params": params,
            "rows": list(self.rows),
            "cols": list(self.cols),
            "pvalues": None if self.pvalues is None else _encode_matrix(self.pvalues),
            "n_permutations": _optional_int(self.n_permutations, "n_permutations"),
            "seed": _optional_int(self.seed, "seed"),
            "alternative": None if self.alternative is None else str(self.alternative),
            "shapes": None
            if self.shapes is None
            else {s: {k: list(v) for k, v in lay.items()} for s, lay in self.shapes.items()},
            "version": str(self.version),
        }

    # ------------------------------------------------------------------ display

    def format(self, digits: int = 3) -> str:
        """The matrix as an aligned text table."""
        return _text_table(self.rows, self.cols, self.values, digits)

    def __str__(self) -> str:
        return f"{self._title()}\n{self.format()}"

    def _title(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{self.measure}({params}) [{self.kind}]"

    def __repr__(self) -> str:
        """The measure and the numbers (up to 20 x 20; beyond, a summary)."""
        r, c = len(self.rows), len(self.cols)
        extra = ""
        if self.pvalues is not None:
            extra = f", p-values from {self.n_permutations} permutations"
        head = f"LayerComparison({self._title()}, {r} x {c}{extra})"
        if r <= _REPR_MAX and c <= _REPR_MAX:
            text = head + "\n" + self.format()
            if self.pvalues is not None:
                text += "\np-values\n" + _text_table(self.rows, self.cols, self.pvalues, 3)
            return text
        v = np.asarray(self.values, dtype=np.float64)
        finite = v[np.isfinite(v)]
        span = (
            f"values from {finite.min():.3g} to {finite.max():.3g}"
            if finite.size
            else "no finite value"
        )
        nan = int(np.isnan(v).sum())
        shown = lambda names: ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")  # noqa: E731
        return (
            f"{head}\n  rows: {shown(self.rows)}\n  cols: {shown(self.cols)}\n  {span}"
            + (f", {nan} nan" if nan else "")
            + "\n  (print(result.format()) shows every value)"
        )

    def _repr_html_(self) -> str:
        """An HTML table for notebooks: each cell shaded by its value (darker = more alike),
        the best match of each row in bold and framed, p-values under the values."""
        return (
            f"<div><p><b>{html.escape(self._title())}</b>, "
            f"{len(self.rows)} x {len(self.cols)}; darker = more alike; "
            f"<b>bold, framed</b> = best match of the row</p>{html_table(self)}</div>"
        )

    # ------------------------------------------------------------------ plots

    def plot(
        self,
        ax: Any = None,
        annotate: Optional[bool] = None,
        cmap: Any = None,
        mark_best: bool = True,
        significance: bool = True,
        **kwargs: Any,
    ) -> Any:
        """A heatmap of the matrix (needs matplotlib: ``congruence[plot]``); see
        :func:`congruence.plot.heatmap`. Returns the matplotlib Axes."""
        from congruence.plot import heatmap

        return heatmap(
            self,
            ax=ax,
            annotate=annotate,
            cmap=cmap,
            mark_best=mark_best,
            significance=significance,
            **kwargs,
        )

    def plot_profile(self, ax: Any = None, **kwargs: Any) -> Any:
        """For each row layer, the value of its best match and of the same-depth column layer
        (needs matplotlib); see :func:`congruence.plot.profile`. Returns the Axes."""
        from congruence.plot import profile

        return profile(self, ax=ax, **kwargs)


# ---------------------------------------------------------------------- text and HTML


def _text_table(rows: Sequence[str], cols: Sequence[str], values: Any, digits: int) -> str:
    cells = [[f"{v:.{digits}f}" for v in row] for row in values]
    w0 = max([len(r) for r in rows] + [0])
    widths = [max(len(c), *(len(row[j]) for row in cells)) for j, c in enumerate(cols)]
    lines = [" " * w0 + "  " + "  ".join(c.rjust(w) for c, w in zip(cols, widths))]
    for r, row in zip(rows, cells):
        lines.append(r.ljust(w0) + "  " + "  ".join(v.rjust(w) for v, w in zip(row, widths)))
    return "\n".join(lines)


#: The colour scale of the HTML tables and report heatmaps, from least to most alike.
_SCALE = ((0.0, (247, 249, 252)), (0.5, (122, 163, 209)), (1.0, (22, 44, 109)))


def shade(t: float) -> str:
    """The colour (``#rrggbb``) of position ``t`` in [0, 1] of the scale (0 = least alike);
    nan is grey.

    >>> shade(0.0), shade(1.0), shade(float("nan"))
    ('#f7f9fc', '#162c6d', '#d9d9d9')
    """
    if not np.isfinite(t):
        return "#d9d9d9"
    t = min(max(float(t), 0.0), 1.0)
    for (t0, c0), (t1, c1) in zip(_SCALE, _SCALE[1:]):
        if t <= t1:
            f = (t - t0) / (t1 - t0)
            rgb = [round(a + f * (b - a)) for a, b in zip(c0, c1)]
            return "#" + "".join(f"{v:02x}" for v in rgb)
    return "#" + "".join(f"{v:02x}" for v in _SCALE[-1][1])  # pragma: no cover


def alikeness(res: LayerComparison) -> np.ndarray:
    """Each cell's place between the least (0) and most (1) alike finite value of the matrix
    (reversed for distances); nan where the value is not finite; 1 when all are equal."""
    v = np.asarray(res.values, dtype=np.float64)
    finite = np.isfinite(v)
    t = np.full(v.shape, np.nan)
    if finite.any():
        lo, hi = v[finite].min(), v[finite].max()
        t[finite] = (v[finite] - lo) / (hi - lo) if hi > lo else 1.0
        if res.kind == "distance":
            t[finite] = 1.0 - t[finite]
    return t


def html_table(res: LayerComparison, digits: int = 3, significant: Any = None) -> str:
    """The matrix as an HTML ``<table>`` with inline styles (no stylesheet needed).

    Each value cell is a ``<td class="cell">`` shaded by :func:`alikeness`, carrying
    ``data-row``, ``data-col``, ``data-value`` (``repr`` of the value) and, with p-values,
    ``data-pvalue``; the best match of each row has the class ``best`` (bold, framed). Names
    are HTML-escaped. ``significant`` (a boolean matrix) marks the cells that pass with the
    class ``significant`` and an asterisk after the p-value.
    """
    esc = html.escape
    t = alikeness(res)
    best = res._best_columns()
    cell = "padding:2px 6px;text-align:right;font-family:monospace;white-space:nowrap;"
    out = ['<table class="congruence-matrix" style="border-collapse:collapse">']
    out.append("<thead><tr><th></th>")
    out += [f'<th scope="col" style="padding:2px 6px">{esc(c)}</th>' for c in res.cols]
    out.append("</tr></thead><tbody>")
    for i, r in enumerate(res.rows):
        out.append(f'<tr><th scope="row" style="padding:2px 6px;text-align:left">{esc(r)}</th>')
        for j, c in enumerate(res.cols):
            v = float(res.values[i, j])
            classes = ["cell"]
            style = cell + f"background-color:{shade(t[i, j])};"
            style += "color:#ffffff;" if t[i, j] > 0.55 else "color:#000000;"
            if j == best[i]:
                classes.append("best")
                style += "font-weight:bold;outline:2px solid #e6550d;outline-offset:-2px;"
            attrs = f' data-row="{esc(r)}" data-col="{esc(c)}" data-value="{v!r}"'
            text = f"{v:.{digits}f}"
            if res.pvalues is not None:
                p = float(res.pvalues[i, j])
                attrs += f' data-pvalue="{p!r}"'
                star = ""
                if significant is not None and significant[i, j]:
                    classes.append("significant")
                    star = "*"
                text += f'<br><small class="pvalue">p={p:.3g}{star}</small>'
            out.append(f'<td class="{" ".join(classes)}"{attrs} style="{style}">{text}</td>')
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


# ---------------------------------------------------------------------- saving and loading


def _format_of(path: Any) -> str:
    try:
        name = os.fspath(path)
    except TypeError:
        raise ValueError(f"path must be a str or os.PathLike; got {type(path).__name__}") from None
    suffix = os.path.splitext(name)[1].lower()
    if suffix not in FORMATS:
        raise ValueError(
            f"cannot tell the format of {name!r} from its suffix {suffix or '(none)'!r}; "
            f"the formats are {', '.join(FORMATS)}"
        )
    return suffix


def _json_scalar(value: Any, what: str) -> Any:
    """``value`` as JSON data: str, int, bool and None as they are, numpy scalars as Python
    ones, a finite float as is and a non-finite one as ``{"float": "nan"}``."""
    if isinstance(value, np.generic) and not isinstance(value, (np.void, np.object_)):
        value = value.item()
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else {"float": repr(float(value))}
    raise ValueError(
        f"cannot save {what} = {value!r} ({type(value).__name__}): saved results hold "
        "parameters that are JSON scalars (str, int, float, bool or None)"
    )


def _optional_int(value: Any, what: str) -> Optional[int]:
    if value is None:
        return None
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        return int(value)
    raise ValueError(f"cannot save {what} = {value!r}: expected an int or None")


def _encode_matrix(values: Any) -> list[list[Any]]:
    """Rows of floats; nan, inf and -inf as the strings ``"nan"``, ``"inf"``, ``"-inf"``."""
    return [
        [float(v) if math.isfinite(v) else repr(float(v)) for v in row]
        for row in np.asarray(values, dtype=np.float64).tolist()
    ]


_NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def _decode_number(v: Any, path: str) -> float:
    if isinstance(v, str) and v in _NONFINITE:
        return _NONFINITE[v]
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    raise UnreadableFileError(path, f"{v!r} is not a number (nor 'nan', 'inf', '-inf')")


def _decode_matrix(rows: Any, shape: tuple[int, int], what: str, path: str) -> np.ndarray:
    if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
        raise UnreadableFileError(path, f"{what} is not a list of rows")
    if len(rows) != shape[0] or any(len(r) != shape[1] for r in rows):
        found = (len(rows), sorted({len(r) for r in rows}))
        raise UnreadableFileError(
            path, f"{what} has {found[0]} rows of lengths {found[1]}, expected shape {shape}"
        )
    return np.array([[_decode_number(v, path) for v in r] for r in rows], dtype=np.float64)


def _check_format(meta: Any, path: str) -> None:
    if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
        raise UnreadableFileError(path, f"not a congruence result (no 'format': {_FORMAT!r})")
    if meta.get("format_version") != _FORMAT_VERSION:
        raise UnreadableFileError(
            path,
            f"format_version {meta.get('format_version')!r} is not the one this version of "
            f"congruence reads ({_FORMAT_VERSION})",
        )


def _from_metadata(
    meta: Any, values: np.ndarray, pvalues: Optional[np.ndarray], path: str
) -> LayerComparison:
    _check_format(meta, path)
    try:
        params = {
            k: (_NONFINITE[v["float"]] if isinstance(v, dict) else v)
            for k, v in meta["params"].items()
        }
        return LayerComparison(
            measure=meta["measure"],
            params=params,
            kind=meta["kind"],
            rows=tuple(meta["rows"]),
            cols=tuple(meta["cols"]),
            values=values,
            pvalues=pvalues,
            n_permutations=meta["n_permutations"],
            seed=meta["seed"],
            alternative=meta["alternative"],
            shapes=meta["shapes"],
            version=meta["version"],
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise UnreadableFileError(
            path, f"malformed metadata ({type(exc).__name__}: {exc})"
        ) from None


def load_result(path: Union[str, os.PathLike]) -> LayerComparison:
    """Read a :class:`LayerComparison` written by :meth:`LayerComparison.save` (``.json``,
    ``.npz`` or ``.csv``, told by the suffix); the values, p-values and metadata are those
    saved, exactly.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    congruence.errors.UnreadableFileError
        (a ``ValueError``) for a file that is not a saved result or is damaged.
    ValueError
        For an unknown suffix.

    >>> import os, tempfile, numpy as np, congruence as cg
    >>> res = cg.LayerComparison("rsa", {}, "similarity", ("h1",), ("g1",), np.array([[0.1]]))
    >>> path = os.path.join(tempfile.mkdtemp(), "res.csv")
    >>> res.save(path)
    >>> print(open(path).read().splitlines()[1:])
    [',g1', 'h1,0.1']
    >>> cg.load_result(path)["h1", "g1"]
    0.1
    """
    fmt = _format_of(path)
    name = os.fspath(path)
    if fmt == ".npz":
        return _load_npz(name)
    with open(name, encoding="utf-8", newline="") as fh:
        text = fh.read()
    if fmt == ".json":
        try:
            meta = json.loads(text)
        except ValueError as exc:
            raise UnreadableFileError(name, f"not valid JSON ({exc})") from None
        _check_format(meta, name)
        shape = (len(meta.get("rows", ())), len(meta.get("cols", ())))
        values = _decode_matrix(meta.get("values"), shape, "values", name)
        pvalues = _pvalues_of(meta, shape, name)
        return _from_metadata(meta, values, pvalues, name)
    return _load_csv(text, name)


def _pvalues_of(meta: dict, shape: tuple[int, int], path: str) -> Optional[np.ndarray]:
    raw = meta.get("pvalues")
    return None if raw is None else _decode_matrix(raw, shape, "pvalues", path)


def _load_csv(text: str, path: str) -> LayerComparison:
    first, _, table = text.partition("\n")
    if not first.startswith(_CSV_MARK):
        raise UnreadableFileError(
            path,
            f"the first line does not start with {_CSV_MARK.strip()!r} (a table written by "
            "to_csv() carries no metadata: read it with the csv module or pandas)",
        )
    try:
        meta = json.loads(first[len(_CSV_MARK) :])
    except ValueError as exc:
        raise UnreadableFileError(path, f"the header line is not valid JSON ({exc})") from None
    _check_format(meta, path)
    rows = list(csv.reader(io.StringIO(table)))
    if not rows or rows[0][:1] != [""]:
        raise UnreadableFileError(path, "no table header after the metadata line")
    cols, body = tuple(rows[0][1:]), rows[1:]
    names = tuple(r[0] if r else "" for r in body)
    if cols != tuple(meta.get("cols", ())) or names != tuple(meta.get("rows", ())):
        raise UnreadableFileError(path, "the table's layer names differ from the metadata's")
    try:
        values = np.array([[float(v) for v in r[1:]] for r in body], dtype=np.float64)
    except ValueError as exc:
        raise UnreadableFileError(path, f"a value of the table is not a number ({exc})") from None
    shape = (len(names), len(cols))
    values = values.reshape(shape) if values.size == shape[0] * shape[1] else values
    if values.shape != shape:
        raise UnreadableFileError(path, f"the table has shape {values.shape}, expected {shape}")
    return _from_metadata(meta, values, _pvalues_of(meta, shape, path), path)


def _load_npz(path: str) -> LayerComparison:
    try:
        with np.load(path, allow_pickle=False) as z:
            files = set(z.files)
            if not {"meta", "values"} <= files:
                raise UnreadableFileError(
                    path, "not a congruence result (no 'meta' and 'values' entries)"
                )
            meta = json.loads(str(z["meta"][()]))
            values = np.array(z["values"], dtype=np.float64)
            pvalues = np.array(z["pvalues"], dtype=np.float64) if "pvalues" in files else None
    except (UnreadableFileError, FileNotFoundError):
        raise
    except (ValueError, OSError, zipfile.BadZipFile, EOFError, KeyError) as exc:
        raise UnreadableFileError(path, f"not a readable .npz result ({exc})") from None
    return _from_metadata(meta, values, pvalues, path)
