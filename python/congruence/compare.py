"""The uniform API: one measure by name, and layer-by-layer matrices."""

from __future__ import annotations

import re
from typing import Any, Literal, Mapping, Optional, Sequence, Union, get_args

import numpy as np
from numpy.typing import ArrayLike

from congruence._layers import CELL_ERRORS, fill
from congruence._progress import Progress
from congruence._registry import get_measure
from congruence._validation import as_matrix, check_bool, check_choice
from congruence.errors import ParameterError, warn_degenerate
from congruence.inference import (
    Alternative,
    check_count,
    check_paired,
    check_seed,
    draw_permutations,
    generators,
    pvalue,
    resolve_alternative,
)
from congruence.results import LayerComparison, layer_labels, layer_set, same_rows

__all__ = ["compare", "compare_layers"]

Layers = Union[Mapping[str, Any], Sequence[Any]]


def compare(X: ArrayLike, Y: ArrayLike, measure: str = "cka", **params: Any) -> float:
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


def compare_layers(
    a: Layers,
    b: Optional[Layers] = None,
    measure: str = "cka",
    *,
    progress: bool = True,
    on_error: OnError = "raise",
    permutations: Optional[int] = None,
    seed: Optional[int] = None,
    alternative: Optional[Alternative] = None,
    **params: Any,
) -> LayerComparison:
    """Compare every layer of ``a`` with every layer of ``b`` (or of ``a`` itself).

    Parameters
    ----------
    a, b : dict of str to array-like of shape (n, p_layer), or list of arrays
        Activations of each layer on the same ``n`` inputs (widths may differ). With
        ``b=None`` the result is the symmetric ``L x L`` matrix of ``a`` with itself, each
        unordered pair computed once (for symmetric measures). A list's layers are named
        ``"0"``, ``"1"``, ...
    measure : str
        A registered measure on representations (see :func:`congruence.list_measures`).
    progress : bool
        Show the cells done (tqdm when installed, else a one-line counter on stderr) once the
        work lasts over a second; nothing is shown for shorter work. Cells are counted on the
        cell-by-cell path; a measure's whole-matrix route is one call.
    on_error : {"raise", "nan"}
        What a cell that cannot be computed does (e.g. a CCA-family measure on a layer whose
        columns are collinear, or that is wider than ``n - 1``): ``"raise"`` (default) raises
        the measure's error, with the layers named (``a['conv2']``, not ``X``); ``"nan"``
        makes that cell ``nan``, issues one
        :class:`~congruence.errors.DegenerateDataWarning` (a ``RuntimeWarning``) per layer at
        fault, and returns the rest of the matrix.
    permutations : int >= 1, optional
        Also test every cell with this many row permutations
        (:func:`congruence.permutation_test`): one permutation set, drawn up front from
        ``seed``, is shared by all cells; each layer is prepared once and the permutations
        re-index the prepared column layer. With ``b=None`` and a symmetric measure, each
        unordered pair is tested once (the rows of the column layer permuted, ``j >= i``) and
        mirrored.
    seed : None or int >= 0
        Seeds the permutations (and, for measures that take their own ``seed`` such as
        ``rtd``, the measure too, by ``SeedSequence(seed).spawn(2)``; without
        ``permutations``, it is the measure's own ``seed``).
    alternative : {None, "greater", "less", "two-sided"}
        Of the permutation tests (default: "more alike than chance").
    **params
        The measure's parameters.

    Returns
    -------
    LayerComparison
        ``values[i, j] = measure(a[rows[i]], b[cols[j]])`` with the layer names; with
        ``permutations``, ``pvalues[i, j]`` too (``nan`` where the value is ``nan``).

    Raises
    ------
    ValueError
        For layers that are not real 2-D arrays, different row counts, an unknown measure or
        option, ``permutations`` with a measure whose sides are not paired by rows (as
        :func:`congruence.permutation_test`); with ``on_error="raise"``, a cell that cannot
        be computed (its layers named).
    TypeError
        For an unknown parameter of the measure.

    Notes
    -----
    Measures with a whole-matrix route prepare each layer once and reuse it across all pairs
    (for CKA and HSIC ``L1 + L2`` preparations, not ``L1 x L2``). When that route fails, the
    matrix is computed cell by cell to find the cells that cannot be computed and name them.

    Examples
    --------
    >>> import numpy as np, congruence as cg
    >>> rng = np.random.default_rng(0)
    >>> h1 = rng.standard_normal((100, 8)); h2 = np.tanh(h1 @ rng.standard_normal((8, 4)))
    >>> res = cg.compare_layers({"h1": h1, "h2": h2})
    >>> res.rows, round(res["h1", "h1"], 6)
    (('h1', 'h2'), 1.0)

    A layer with collinear columns has no canonical correlations:

    >>> dup = np.repeat(h1[:, :1], 2, axis=1)
    >>> cg.compare_layers({"h1": h1, "dup": dup}, measure="cca")
    Traceback (most recent call last):
    ...
    ValueError: cca(a['h1'], a['dup']): a['dup'] of shape (100, 2) does not have full column rank...
    >>> import warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     res = cg.compare_layers({"h1": h1, "dup": dup}, measure="cca", on_error="nan")
    >>> res.values.round(6).tolist()
    [[1.0, nan], [nan, nan]]
    """
    m = get_measure(measure)
    if m.inputs != "representations":
        raise ValueError(
            f"measure {measure!r} compares model outputs, not layer representations; "
            "call it directly on the two models' outputs instead of compare_layers"
        )
    full = m.check_params(params)
    progress = check_bool("progress", progress)
    on_error = check_choice("on_error", on_error, ON_ERROR)
    rng = None
    if permutations is None:
        if alternative is not None:
            raise ValueError(
                "alternative is an option of the permutation tests; pass permutations=N"
            )
        if seed is not None:
            if "seed" not in m.accepts:
                raise ValueError(
                    f"seed seeds the permutation tests (pass permutations=N); {m.name} takes no seed"
                )
            params = {**params, "seed": seed}
            full = m.check_params(params)
    else:
        check_paired(m)
        permutations = check_count("permutations", permutations)
        seed = check_seed(seed)
        alternative = resolve_alternative(alternative, m.kind)
        rng, params = generators(m, seed, dict(params))
        full = {**full, **params}
    min_rows = m.min_rows(**params)

    def convert(v: Any, label: str) -> np.ndarray:
        return as_matrix(v, label, min_rows=min_rows)

    rows, xa = layer_set(a, "a", convert)
    if b is None:
        cols, xb = rows, None
    else:
        cols, xb = layer_set(b, "b", convert)
    same_rows([("a", rows, xa)] + ([("b", cols, xb)] if xb is not None else []))
    pvalues = None
    with layer_labels(a=rows, b=cols):
        values, preps = _prepared(m, xa, xb, params, (rows, cols), on_error, progress)
        if rng is not None:
            perms = draw_permutations(rng, len(xa[0]), permutations)
            pvalues = _pvalues(m, preps, (xa, xb), values, perms, params, alternative, progress)
    return LayerComparison(
        measure=m.name,
        params=full,
        kind=m.kind,
        rows=tuple(rows),
        cols=tuple(cols),
        values=values,
        pvalues=pvalues,
        n_permutations=permutations,
        seed=seed if permutations is not None else None,
        alternative=alternative,
        shapes={
            side: {name: tuple(x.shape) for name, x in zip(names, xs)}
            for side, names, xs in (("a", rows, xa), ("b", cols, xb))
            if xs is not None
        },
    )


def _each(m, xs, side: str, names, params) -> Optional[list]:
    """Each layer prepared on its own (``None`` for a layer that cannot be)."""
    if xs is None:
        return None
    out = []
    for name, x in zip(names, xs):
        try:
            out.append(m.prepare(x, name=f"{side}[{name!r}]", **params))
        except CELL_ERRORS:
            out.append(None)
    return out


def _pvalues(m, preps, arrays, values, perms, params, alternative, progress) -> np.ndarray:
    """The permutation p-value of every cell, from the prepared layers (``preps``: rows and
    columns, the columns ``None`` for ``a`` with itself; ``arrays`` the same as arrays, for
    measures that prepare a permuted layer afresh) and one shared permutation set."""
    pa, pb = preps
    cols = pa if pb is None else pb
    ys = arrays[0] if arrays[1] is None else arrays[1]
    sym = pb is None and m.symmetric(**params)
    cells = len(pa) * (len(pa) + 1) // 2 if sym else values.size

    def cell(i: int, j: int) -> float:
        if not (np.isfinite(values[i, j]) and pa[i] is not None and cols[j] is not None):
            return np.nan
        null = m.permuted(pa[i], cols[j], perms, y=ys[j], **params)
        return pvalue(values[i, j], null, alternative)

    with Progress(progress, total=cells, unit="cell") as bar:
        return fill(
            range(len(pa)),
            None if pb is None else range(len(cols)),
            cell,
            symmetric=sym,
            on_error=lambda i, j, exc: np.nan,
            tick=lambda: bar.update(1),
        )


OnError = Literal["raise", "nan"]
ON_ERROR = get_args(OnError)

#: an argument name of a measure (``X`` or ``Y``) standing alone in its message
_ARG = re.compile(r"(?<![\w'\"\[])([XY])(?![\w'\"\]])")


def _cell_error(exc: BaseException, measure: str, lx: str, ly: str) -> tuple[BaseException, Any]:
    """The error of a cell with the layers named, and whom it blames (a layer label, or the
    reason when the message names neither argument)."""
    reason = " ".join(str(exc).split()) or type(exc).__name__
    found = _ARG.search(reason)
    blame: Any = reason if found is None else (lx if found.group(1) == "X" else ly)
    named = _ARG.sub(lambda mt: lx if mt.group(1) == "X" else ly, reason)
    text = f"{measure}({lx}, {ly}): {named}"
    try:
        err = type(exc)(text)
    except Exception:  # an exception class with another signature
        err = ValueError(text)
    return err, blame


def _prepared(
    m,
    xa: Sequence[np.ndarray],
    xb: Optional[Sequence[np.ndarray]],
    params: dict,
    names: tuple[Sequence[str], Sequence[str]],
    on_error: str,
    progress: bool,
) -> tuple[np.ndarray, tuple[list, Optional[list]]]:
    """The layer matrix through the measure's per-layer contract (each layer prepared once,
    then its whole-matrix route or one pair step per cell); if a layer cannot be prepared or
    the whole-matrix route fails, cell by cell on the arrays, to name what cannot be computed.
    Also returns the preparations (rows, columns or ``None``) for the permutation tests."""
    rows, cols = names
    try:
        pa = [m.prepare(x, name=f"a[{r!r}]", **params) for r, x in zip(rows, xa)]
        pb = (
            None
            if xb is None
            else [m.prepare(y, name=f"b[{c!r}]", **params) for c, y in zip(cols, xb)]
        )
        if m.layers.matrix is not None:
            return np.asarray(m.matrix(pa, pb, **params), dtype=np.float64), (pa, pb)
    except CELL_ERRORS:
        values = _pairwise(m.func, m, xa, xb, params, names, on_error, progress)
        return values, (_each(m, xa, "a", rows, params), _each(m, xb, "b", cols, params))
    return _pairwise(m.pair, m, pa, pb, params, names, on_error, progress), (pa, pb)


def _pairwise(
    pair,
    m,
    xa: Sequence[Any],
    xb: Optional[Sequence[Any]],
    params: dict,
    names: tuple[Sequence[str], Sequence[str]],
    on_error: str = "raise",
    progress: bool = False,
) -> np.ndarray:
    """The layer matrix one cell at a time, ``pair(xa[i], xb[j], **params)`` (the measure's
    pair step on prepared layers, or its function on the arrays), each failing cell's error
    naming its layers; ``on_error="nan"`` makes it nan with one warning per layer at fault."""
    rows, cols = names
    other = "b" if xb is not None else "a"
    sym = xb is None and m.symmetric(**params)
    warned: set = set()

    def failed(i: int, j: int, exc: BaseException) -> float:
        if isinstance(exc, ParameterError):  # the call's fault, not this cell's data
            raise exc
        lx, ly = f"a[{rows[i]!r}]", f"{other}[{cols[j]!r}]"
        err, blame = _cell_error(exc, m.name, lx, ly)
        if on_error == "raise":
            raise err from exc
        if blame not in warned:
            warned.add(blame)
            warn_degenerate(
                f"{err}; the cell is nan (on_error='nan'), as is every other cell "
                f"that fails for {blame if blame in (lx, ly) else 'this reason'} "
                "(warned once)"
            )
        return np.nan

    La, Lb = len(xa), len(xa if xb is None else xb)
    cells = La * (La + 1) // 2 if sym else La * Lb
    with Progress(progress, total=cells, unit="cell") as bar:
        return fill(
            xa,
            xb,
            lambda u, v: pair(u, v, **params),
            symmetric=sym,
            on_error=failed,
            tick=lambda: bar.update(1),
        )
