r"""Exact streaming linear CKA and HSIC: the pair accumulators and the layer accumulator.

:class:`CKAAccumulator` and :class:`HSICAccumulator` compare two representations,
:class:`LayerAccumulator` every layer of one or two models, over batches of rows; their values
equal :func:`congruence.cka`, :func:`congruence.hsic` and :func:`congruence.compare_layers`
(linear kernel, biased or debiased) on all rows seen. The algebra of their state is in
:mod:`congruence.streaming.moments`.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

import numpy as np

from congruence._registry import get_measure
from congruence._validation import check_bool, check_choice, check_number, check_pair
from congruence.results import LayerComparison
from congruence.streaming.moments import (
    Layers,
    _centred_block,
    _check_same_layers,
    _degenerate_fix,
    _Layout,
    _Locked,
    _Moments,
    _nan_warnings,
    batch_layers,
)

__all__ = ["CKAAccumulator", "HSICAccumulator", "LayerAccumulator"]


# ------------------------------------------------------------------------------ pair accumulators


class _PairAccumulator(_Locked):
    _flag_name = "debiased"
    _statistic = "cka"

    def __init__(self, flag: bool = False):
        self._debiased = check_bool(self._flag_name, flag)
        self._state: Optional[_Moments] = None
        self._init_lock()

    @property
    def n(self) -> int:
        """The number of rows seen."""
        return 0 if self._state is None else self._state.n

    @property
    def widths(self) -> Optional[tuple[int, int]]:
        """``(p1, p2)``, fixed by the first batch (``None`` before)."""
        return None if self._state is None else self._state.layout.widths  # type: ignore[return-value]

    def update(self, X, Y):
        """Add a batch of rows: ``X`` of shape (m, p1) and ``Y`` of shape (m, p2).

        Any ``m >= 1``; float32 batches are accumulated in float64. Returns ``self``.

        Raises
        ------
        ValueError
            For invalid arrays (see :func:`congruence._validation.as_matrix`), different row
            counts of ``X`` and ``Y``, or widths that differ from the first batch.
        """
        X, Y = check_pair(X, Y, min_rows=1, names=("X", "Y"))
        self._check_widths(X, Y)
        # the batch's products run outside the lock; only the combination is serialised
        batch = _Moments.from_batch(
            _Layout((X.shape[1], Y.shape[1]), 1, True), self._debiased, [X, Y]
        )
        with self._lock:
            self._check_widths(X, Y)  # another thread may have added the first batch
            self._state = batch if self._state is None else self._state.combined(batch)
        return self

    def _check_widths(self, X: np.ndarray, Y: np.ndarray) -> None:
        state = self._state
        if state is None:
            return
        for name, a, w in (("X", X, state.layout.widths[0]), ("Y", Y, state.layout.widths[1])):
            if a.shape[1] != w:
                raise ValueError(
                    f"{name} has shape {a.shape} but earlier batches of {name} had {w} "
                    "columns; every batch must have the same width"
                )

    def merge(self, other):
        """Add the rows of another accumulator of the same kind (``other`` is unchanged).

        Merging is associative and commutative up to round-off. Returns ``self``.
        """
        if not isinstance(other, _PairAccumulator):
            raise ValueError(
                f"other must be a CKAAccumulator or HSICAccumulator; got {type(other).__name__}"
            )
        if other._debiased != self._debiased:
            raise ValueError(
                f"cannot merge an accumulator with debiased={other._debiased} into one with "
                f"debiased={self._debiased}: their states differ"
            )
        with other._lock:  # a consistent snapshot of other (states are never half-updated)
            theirs = other._state
        if theirs is None:
            return self
        spare = theirs.copy()
        with self._lock:
            if self._state is None:
                self._state = spare
                return self
            if theirs.layout.key() != self._state.layout.key():
                raise ValueError(
                    f"other has widths (p1, p2) = {theirs.layout.widths} but this accumulator "
                    f"has {self.widths}; only accumulators over the same representations merge"
                )
            self._state = self._state.combined(spare)
        return self

    def _ready(self, what: str) -> _Moments:
        need = 4 if self._debiased else 2
        with self._lock:
            state = self._state
        if state is None or state.n < need:
            n = 0 if state is None else state.n
            raise ValueError(
                f"{type(self).__name__} has seen n={n} row(s); {what} with "
                f"{self._flag_name}={self._debiased} needs at least {need} rows (samples)"
            )
        return state

    def _statistic_value(self, statistic: str) -> float:
        state = self._ready(statistic)
        values = _degenerate_fix(state, state.values(statistic), statistic)
        const = state.constant_layers()
        _nan_warnings(values, statistic, ["X"], const[:1], ["Y"], const[1:], str, str)
        return float(values[0, 0])

    def cka(self) -> float:
        """Linear CKA of all rows seen (debiased with the unbiased HSIC if so constructed).

        ``nan`` with a :class:`~congruence.errors.DegenerateDataWarning` when ``X`` or ``Y``
        has identical rows (all columns constant, by the relative rule of
        :func:`congruence._validation.constant_columns`).
        """
        return self._statistic_value("cka")

    def hsic(self) -> float:
        """Linear HSIC of all rows seen (unbiased estimator if so constructed).

        ``0.0`` with a :class:`~congruence.errors.DegenerateDataWarning` when ``X`` or ``Y``
        has identical rows.
        """
        return self._statistic_value("hsic")

    def value(self) -> float:
        """The accumulator's statistic (:meth:`cka` or :meth:`hsic`)."""
        return self.cka() if self._statistic == "cka" else self.hsic()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self._flag_name}={self._debiased}) "
            f"[n={self.n}, widths={self.widths}]"
        )


class CKAAccumulator(_PairAccumulator):
    r"""Exact linear CKA of two representations whose rows arrive in batches.

    The value after any sequence of :meth:`update` and :meth:`merge` calls equals
    ``cg.cka(X, Y, debiased=debiased)`` on all rows seen (Kornblith et al. 2019, linear kernel):

    .. math::

        \mathrm{CKA} = \frac{\lVert X_c^T Y_c\rVert_F^2}
                            {\lVert X_c^T X_c\rVert_F\,\lVert Y_c^T Y_c\rVert_F}

    (biased), or with the U-centred inner products of the module docstring (debiased). The
    state holds centred float64 co-moments, O(p1 p2 + p1^2 + p2^2) numbers, independent of n.

    Parameters
    ----------
    debiased : bool
        Use the unbiased HSIC estimator (Song et al. 2012); needs ``n >= 4`` rows in total.

    Methods
    -------
    update(X, Y)
        Add a batch: ``X`` (m, p1), ``Y`` (m, p2), any ``m >= 1``.
    merge(other)
        Add another accumulator's rows.
    value(), cka(), hsic()
        The statistic on all rows so far; ``nan`` as :func:`congruence.cka` (a constant
        representation). ValueError if fewer than 2 (biased) or 4 (debiased) rows were seen.

    References
    ----------
    Kornblith et al. (2019), ICML; Chan, Golub, LeVeque (1979), Updating formulae and a
    pairwise algorithm for computing sample variances.

    Examples
    --------
    >>> import numpy as np, congruence as cg
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((1000, 8)); Y = np.tanh(X @ rng.standard_normal((8, 4)))
    >>> acc = cg.CKAAccumulator()
    >>> for s in range(0, 1000, 300):            # ragged batches of 300, 300, 300, 100 rows
    ...     _ = acc.update(X[s:s + 300], Y[s:s + 300])
    >>> abs(acc.value() - cg.cka(X, Y)) < 1e-12
    True
    """

    _flag_name = "debiased"
    _statistic = "cka"

    def __init__(self, debiased: bool = False):
        super().__init__(debiased)


class HSICAccumulator(_PairAccumulator):
    r"""Exact linear HSIC of two representations whose rows arrive in batches.

    Equals ``cg.hsic(X, Y, unbiased=unbiased)`` on all rows seen (Gretton et al. 2005; Song et al. 2012, linear
    kernel): :math:`\mathrm{HSIC}_b = \lVert X_c^T Y_c\rVert_F^2/(n-1)^2`, or
    :math:`\mathrm{HSIC}_u = \langle K_u, L_u\rangle / (n(n-3))` with the closed form of the
    module docstring. Same state, methods and merging as :class:`CKAAccumulator`.

    Parameters
    ----------
    unbiased : bool
        Song et al.'s unbiased estimator; needs ``n >= 4`` rows in total.

    References
    ----------
    Gretton et al. (2005), ALT; Song et al. (2012), JMLR.

    Examples
    --------
    >>> import numpy as np, congruence as cg
    >>> X = np.array([[0.0], [1.0], [2.0]])
    >>> acc = cg.HSICAccumulator()
    >>> for row in X:                      # one row at a time
    ...     _ = acc.update(row[None, :], row[None, :])
    >>> acc.value()                         # cg.hsic(X, X) = 1.0
    1.0
    """

    _flag_name = "unbiased"
    _statistic = "hsic"

    def __init__(self, unbiased: bool = False):
        super().__init__(unbiased)


# ------------------------------------------------------------------------------ layers


_STREAMABLE = ("cka", "hsic")


def _measure_params(measure: Any, params: Mapping[str, Any]) -> tuple[Any, dict, bool]:
    """The registered measure, its completed parameters and the estimator flag."""
    measure = check_choice("measure", measure, _STREAMABLE)
    m = get_measure(measure)
    full = m.check_params(dict(params))
    if full["kernel"] != "linear":
        check_choice("kernel", full["kernel"], ("linear", "rbf"))
        raise ValueError(
            f"kernel={full['kernel']!r} cannot be accumulated over batches: expected "
            "kernel='linear'. The RBF bandwidth needs the median over all rows; "
            "cg.cka(X, Y, kernel='rbf') computes it exactly without an n x n matrix"
        )
    check_number("sigma_frac", full["sigma_frac"], low=0.0, low_open=True)
    flag = "debiased" if measure == "cka" else "unbiased"
    full[flag] = check_bool(flag, full[flag])
    return m, full, full[flag]


class LayerAccumulator(_Locked):
    r"""Exact linear CKA or HSIC between all layers, over batches of rows.

    The layer-wise form of :class:`CKAAccumulator`: each :meth:`update` takes one batch of
    every layer as ``{layer: (m, p_layer) array}`` for model ``a`` (and ``b``), and
    :meth:`result` returns the same :class:`~congruence.results.LayerComparison` as
    ``cg.compare_layers(a, b, measure, **params)`` on all rows seen. With ``b`` omitted the
    matrix is ``a`` against itself. The state is O(sum of p_a p_b over the compared pairs +
    sum of p^2), independent of n.

    Parameters
    ----------
    measure : {"cka", "hsic"}
    **params
        The measure's parameters: ``debiased`` (cka) or ``unbiased`` (hsic); ``kernel`` must be
        ``"linear"`` (the RBF median needs all rows at once; :func:`congruence.cka` computes it
        exactly without an n x n matrix).

    Methods
    -------
    update(a, b=None)
        Add a batch: mappings (or lists) of (m, p) arrays, the same layers every time.
    merge(other)
        Add another accumulator's rows (same layers and measure).
    result(), value()
        The :class:`~congruence.results.LayerComparison`; ``cka()`` / ``hsic()`` give
        either statistic from the same state. ValueError if fewer than 2 (biased) or 4
        (debiased) rows were seen; ``nan`` entries for constant layers (CKA).

    Examples
    --------
    >>> import numpy as np, congruence as cg
    >>> rng = np.random.default_rng(0)
    >>> h1 = rng.standard_normal((500, 6)); h2 = np.tanh(h1 @ rng.standard_normal((6, 4)))
    >>> acc = cg.LayerAccumulator("cka", debiased=True)
    >>> for s in range(0, 500, 128):
    ...     _ = acc.update({"h1": h1[s:s + 128], "h2": h2[s:s + 128]})
    >>> res = acc.result()
    >>> res.rows
    ('h1', 'h2')
    >>> want = cg.compare_layers({"h1": h1, "h2": h2}, measure="cka", debiased=True)
    >>> bool(np.allclose(res.values, want.values, rtol=0, atol=1e-12))
    True
    """

    def __init__(self, measure: str = "cka", **params: Any):
        self._measure, self._params, self._debiased = _measure_params(measure, params)
        self._state: Optional[_Moments] = None
        self._rows: tuple[str, ...] = ()
        self._cols: tuple[str, ...] = ()
        #: threads sharing the products of a batch (set by the model driver; same result)
        self._workers = 1
        #: with a single updating thread and no reader of the state meanwhile (the model
        #: driver's private accumulator): the state replaced by an update is kept as
        #: ``_spare``, whose arrays receive the next batch's products (see _Moments.blank)
        self._recycle = False
        self._init_lock()

    @property
    def n(self) -> int:
        """The number of rows seen."""
        return 0 if self._state is None else self._state.n

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state["_measure"] = self._measure.name  # the registry entry is looked up again
        return state

    def __setstate__(self, state: dict) -> None:
        state = dict(state)
        state["_measure"] = get_measure(state["_measure"])
        super().__setstate__(state)

    def update(self, a: Layers, b: Optional[Layers] = None) -> "LayerAccumulator":
        """Add one batch of every layer (``{layer: (m, p)}``); returns ``self``.

        Raises
        ------
        ValueError
            For invalid arrays, layers with different row counts, a batch whose layers or
            widths differ from the first one, or ``b`` given in some batches only.
        """
        return self._absorb(self._prepare(a, b))

    def _prepare(self, a: Layers, b: Optional[Layers]) -> tuple:
        """Validate and centre a batch without touching the state.

        The expensive single-threaded part of :meth:`update`; a reader thread runs it on the
        next batch while :meth:`_absorb` runs the matrix products of the current one.
        """
        names_a, xa, names_b, xb, _ = batch_layers(a, b)
        widths = [x.shape[1] for x in xa + xb]
        return names_a, names_b, widths, _centred_block(xa + xb, exact=self._debiased)

    def _check_batch(
        self,
        names_a: list[str],
        names_b: Optional[list[str]],
        widths,
        expect: Optional[tuple] = None,
    ) -> None:
        """ValueError unless a batch has the layers and widths of the first one: that of the
        state, or ``expect = (names_a, names_b, widths)`` (a caller's first batch)."""
        if expect is None:
            state = self._state
            if state is None:
                return
            lay = state.layout
            expect = (self._rows, self._cols if lay.cross else None, lay.widths)
        want_a, want_b, want_widths = expect
        la, na = len(names_a), len(want_a)
        if (names_b is not None) != (want_b is not None):
            raise ValueError(
                "b was given in the first batch but not in this one (or the reverse); "
                "pass b in every batch or in none"
            )
        _check_same_layers("a", names_a, widths[:la], want_a, want_widths[:na])
        if names_b is not None:
            _check_same_layers("b", names_b, widths[la:], want_b, want_widths[na:])

    def _absorb(self, prepared: tuple) -> "LayerAccumulator":
        names_a, names_b, widths, block = prepared
        self._check_batch(names_a, names_b, widths)
        # the products of the batch run outside the lock; only the combination is serialised
        lay = _Layout(widths, len(names_a), names_b is not None)
        recycle = getattr(self, "_recycle", False)
        spare = None
        if recycle:
            spare = self.__dict__.pop("_spare", None)
            if spare is None or spare.layout.key() != lay.key():
                spare = _Moments.blank(lay, self._debiased)
        batch = _Moments.from_centred(
            lay, self._debiased, *block, workers=getattr(self, "_workers", 1), spare=spare
        )
        with self._lock:
            self._check_batch(names_a, names_b, widths)  # another thread may have begun
            if self._state is None:
                self._rows = tuple(names_a)
                self._cols = tuple(names_b) if names_b is not None else tuple(names_a)
                self._state = batch
            else:
                old = self._state
                self._state = old.combined(batch)
                if recycle and self._state is batch:
                    self._spare = old
        return self

    def merge(self, other: "LayerAccumulator") -> "LayerAccumulator":
        """Add the rows of ``other`` (same measure, estimator and layers); returns ``self``."""
        if not isinstance(other, LayerAccumulator):
            raise ValueError(f"other must be a LayerAccumulator; got {type(other).__name__}")
        if other._debiased != self._debiased:
            raise ValueError(
                f"cannot merge an accumulator with the {'un' if other._debiased else ''}biased "
                f"estimator into one with the {'un' if self._debiased else ''}biased estimator"
            )
        with other._lock:  # a consistent snapshot of other (states are never half-updated)
            theirs, rows, cols = other._state, other._rows, other._cols
        if theirs is None:
            return self
        spare = theirs.copy()
        with self._lock:
            if self._state is None:
                self._rows, self._cols = rows, cols
                self._state = spare
                return self
            if (rows, cols, theirs.layout.key()) != (
                self._rows,
                self._cols,
                self._state.layout.key(),
            ):
                raise ValueError(
                    f"other compares layers {rows} x {cols} but this accumulator "
                    f"compares {self._rows} x {self._cols} (or their widths differ); only "
                    "accumulators over the same layers merge"
                )
            self._state = self._state.combined(spare)
        return self

    def _comparison(self, statistic: str) -> LayerComparison:
        need = 4 if self._debiased else 2
        with self._lock:
            state, rows, cols = self._state, self._rows, self._cols
        if state is None or state.n < need:
            flag = "debiased" if self._measure.name == "cka" else "unbiased"
            raise ValueError(
                f"LayerAccumulator has seen n={0 if state is None else state.n} row(s); "
                f"{self._measure.name} with {flag}={self._debiased} needs at least {need} "
                "rows (samples)"
            )
        m = get_measure(statistic)
        flag = "debiased" if statistic == "cka" else "unbiased"
        params = m.check_params(
            {"kernel": "linear", "sigma_frac": self._params["sigma_frac"], flag: self._debiased}
        )
        values = _degenerate_fix(state, state.values(statistic), statistic)
        const = state.constant_layers()
        lay = state.layout
        cross = lay.cross
        _nan_warnings(
            values,
            statistic,
            rows,
            const[: lay.na],
            cols,
            const[lay.na :] if cross else const,
            lambda k: f"a[{k!r}]",
            (lambda k: f"b[{k!r}]") if cross else (lambda k: f"a[{k!r}]"),
        )
        return LayerComparison(
            measure=m.name, params=params, kind=m.kind, rows=rows, cols=cols, values=values
        )

    def result(self) -> LayerComparison:
        """The layer matrix of the measure on all rows seen (as ``cg.compare_layers``)."""
        return self._comparison(self._measure.name)

    value = result

    def cka(self) -> LayerComparison:
        """Linear CKA between the layers (debiased if the estimator is unbiased)."""
        return self._comparison("cka")

    def hsic(self) -> LayerComparison:
        """Linear HSIC between the layers (unbiased if the estimator is unbiased)."""
        return self._comparison("hsic")

    def __repr__(self) -> str:
        return f"LayerAccumulator({self._measure.name!r}, {self._params}) [n={self.n}]"
