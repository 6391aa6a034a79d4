"""The uniform API: one measure by name, and layer-by-layer matrices."""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np

from congruence._registry import get_measure
from congruence._validation import as_matrix
from congruence.results import LayerComparison

__all__ = ["compare", "compare_layers"]

Layers = Union[Mapping[str, Any], Sequence[Any]]


def compare(X, Y, measure: str = "cka", **params: Any) -> float:
    """Compute the registered ``measure`` between ``X`` and ``Y``.

    ``compare(X, Y, "cka", kernel="rbf")`` is ``cka(X, Y, kernel="rbf")``; see
    :func:`congruence.list_measures` for the names.

    Examples
    --------
    >>> import numpy as np, congruence as cg
    >>> X = np.arange(12.0).reshape(6, 2) ** 2
    >>> cg.compare(X, X, "cka") == cg.cka(X, X)
    True
    """
    m = get_measure(measure)
    m.check_params(params)
    return m(X, Y, **params)


def _layers(
    layers: Layers, arg: str, min_rows: int, what: str = "(n, p) arrays"
) -> tuple[list[str], list[np.ndarray]]:
    """Layer names and validated arrays from a mapping or a list (shared by every layer API)."""
    if isinstance(layers, Mapping):
        items = [(str(k), v) for k, v in layers.items()]
    elif isinstance(layers, (list, tuple)):
        items = [(str(i), v) for i, v in enumerate(layers)]
    else:
        raise ValueError(
            f"{arg} must map layer names to {what} (a dict) or be a list of arrays; "
            f"got {type(layers).__name__}"
        )
    if not items:
        raise ValueError(f"{arg} holds no layers")
    names = [k for k, _ in items]
    arrays = [as_matrix(v, f"{arg}[{k!r}]", min_rows=min_rows) for k, v in items]
    return names, arrays


def compare_layers(
    a: Layers, b: Optional[Layers] = None, measure: str = "cka", **params: Any
) -> LayerComparison:
    """Compare every layer of ``a`` with every layer of ``b`` (or of ``a`` itself).

    Parameters
    ----------
    a, b : dict of str to array-like of shape (n, p_layer), or list of arrays
        Activations of each layer on the same ``n`` inputs (widths may differ). With
        ``b=None`` the result is the symmetric ``L x L`` matrix of ``a`` with itself, each
        unordered pair computed once (for symmetric measures).
    measure : str
        A registered measure on representations (see :func:`congruence.list_measures`).
    **params
        The measure's parameters.

    Returns
    -------
    LayerComparison
        ``values[i, j] = measure(a[rows[i]], b[cols[j]])`` with the layer names.

    Notes
    -----
    For CKA and HSIC each layer is prepared once (centred features or centred Gram matrix)
    and reused across all pairs: ``L1 + L2`` preparations, not ``L1 x L2``.

    Examples
    --------
    >>> import numpy as np, congruence as cg
    >>> rng = np.random.default_rng(0)
    >>> h1 = rng.standard_normal((100, 8)); h2 = np.tanh(h1 @ rng.standard_normal((8, 4)))
    >>> res = cg.compare_layers({"h1": h1, "h2": h2})
    >>> res.rows, round(res["h1", "h1"], 6)
    (('h1', 'h2'), 1.0)
    """
    m = get_measure(measure)
    if m.inputs != "representations":
        raise ValueError(
            f"measure {measure!r} compares model outputs, not layer representations; "
            "call it directly on the two models' outputs instead of compare_layers"
        )
    full = m.check_params(params)
    min_rows = m.min_rows(**params)
    rows, xa = _layers(a, "a", min_rows)
    if b is None:
        cols, xb = rows, None
    else:
        cols, xb = _layers(b, "b", min_rows)
    n = xa[0].shape[0]
    for name, arrs, labels in (("a", xa, rows), ("b", xb or [], cols)):
        for lab, x in zip(labels, arrs):
            if x.shape[0] != n:
                raise ValueError(
                    f"{name}[{lab!r}] has shape {x.shape} but a[{rows[0]!r}] has {n} rows; "
                    "every layer must hold the same n inputs"
                )
    if m.batch is not None:
        values = np.asarray(m.batch(xa, xb, **params), dtype=np.float64)
    else:
        values = _pairwise(m, xa, xb, params)
    return LayerComparison(
        measure=m.name, params=full, kind=m.kind, rows=tuple(rows), cols=tuple(cols), values=values
    )


def _pairwise(m, xa, xb, params) -> np.ndarray:
    if xb is None:
        L = len(xa)
        out = np.empty((L, L))
        sym = m.symmetric(**params)
        for i in range(L):
            for j in range(L):
                if sym and j < i:
                    out[i, j] = out[j, i]
                else:
                    out[i, j] = m(xa[i], xa[j], **params)
        return out
    return np.array([[m(x, y, **params) for y in xb] for x in xa], dtype=np.float64)
