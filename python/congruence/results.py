"""The result of a layer-by-layer comparison, and the one lookup of layer names.

:func:`find_layer` is where every layer name a user types is resolved (result indexing, the
file readers, the streaming accumulators); an unknown name raises
:class:`~congruence.errors.LayerNotFoundError` (a ``KeyError`` and a ``ValueError``) whose
message lists the closest available names.
"""

from __future__ import annotations

import csv
import difflib
import io
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from congruence._files import atomic_write
from congruence.errors import LayerNotFoundError

__all__ = ["LayerComparison", "find_layer", "layer_not_found"]

#: at most this many names are listed when no close match exists
_SHOWN = 20


def layer_not_found(name: Any, available: Sequence[str], where: str) -> LayerNotFoundError:
    """The error for a layer ``name`` missing from ``available`` (the names ``where`` holds).

    The message names the layer and ``where``, then the close matches (``difflib``, by
    similarity of spelling, ratio >= 0.5), or the available names when none is close.

    >>> print(layer_not_found("h2", ["h1", "h_2", "out"], "the rows"))
    no layer named 'h2' in the rows; did you mean 'h_2' or 'h1'?
    """
    names = [str(a) for a in available]
    close = difflib.get_close_matches(str(name), names, n=3, cutoff=0.5)
    if close:
        hint = "did you mean " + " or ".join(repr(c) for c in close) + "?"
    elif names:
        shown = ", ".join(repr(a) for a in names[:_SHOWN])
        more = f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else ""
        hint = f"the layers are: {shown}{more}"
    else:
        hint = "there are no layers"
    return LayerNotFoundError(f"no layer named {name!r} in {where}; {hint}")


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
    """

    measure: str
    params: Mapping[str, Any]
    kind: str
    rows: tuple[str, ...]
    cols: tuple[str, ...]
    values: np.ndarray = field(repr=False)

    def __getitem__(self, key: tuple[str, str]) -> float:
        """``result["layer_a", "layer_b"]`` is the value for that pair of layers.

        Raises :class:`~congruence.errors.LayerNotFoundError` (a ``KeyError`` and a
        ``ValueError``) for a name that is not among ``rows`` / ``cols``, listing close names.
        """
        if not isinstance(key, tuple) or len(key) != 2:
            raise LayerNotFoundError(
                f"index a LayerComparison with a pair of layer names, result[row, col]; "
                f"got {key!r}"
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
            raise ImportError(
                "to_pandas() needs pandas: pip install 'congruence[pandas]'"
            ) from exc
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
