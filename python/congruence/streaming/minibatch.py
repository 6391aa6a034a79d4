r"""Minibatch CKA (:class:`MinibatchCKA`, :func:`minibatch_cka`).

Nguyen, Raghu & Kornblith (2021): over batches ``b = 1..k`` with Gram matrices
:math:`K_b, L_b`,

.. math::

    \mathrm{CKA}_{mb} = \frac{\frac1k\sum_b \mathrm{HSIC}_u(K_b, L_b)}
      {\sqrt{\frac1k\sum_b \mathrm{HSIC}_u(K_b, K_b)\;\frac1k\sum_b \mathrm{HSIC}_u(L_b, L_b)}}

with the unbiased HSIC of Song et al. (2012) per batch. It is a different estimator from CKA:
its value depends on the batch size (each batch is centred on its own). Batches need at least
4 rows. **Ragged last batch** (:func:`minibatch_cka` and
:func:`congruence.io.stream_layers`): with ``ragged="merge"`` (default) the
``n mod batch_size`` rows left over join the last full batch, so every row is used and
batches hold ``batch_size`` to ``2 batch_size - 1`` rows (one batch of all ``n`` rows when
``n < batch_size``); ``ragged="drop"`` leaves them out (as a loader with ``drop_last``).
"""

from __future__ import annotations

from typing import Callable, Literal, Optional, get_args

import numpy as np
from numpy.typing import ArrayLike

from congruence._linalg import largest_magnitude, pow2_scale
from congruence._registry import register
from congruence._validation import check_choice, check_number, check_pair, constant_columns
from congruence.errors import warn_degenerate
from congruence.results import LayerComparison
from congruence.streaming.moments import (
    _TINY_DEBIASED,
    Layers,
    _centre,
    _check_same_layers,
    _cka_from_inners,
    _Locked,
    batch_layers,
    underflow_error,
)

__all__ = ["MinibatchCKA", "minibatch_cka", "batch_bounds", "Regroup"]

Ragged = Literal["merge", "drop"]
_RAGGED = get_args(Ragged)


# ------------------------------------------------------------------------------ minibatch CKA


#: memory for one row block of every layer's Gram matrix in a minibatch (one block, i.e. one
#: symmetric product per layer, up to 24 layers of 1400-row batches)
_GRAM_BLOCK_BYTES = 512 * 2**20


def _minibatch_inners(
    za: list[np.ndarray], zb: Optional[list[np.ndarray]]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``<K_i, L_j>`` of centred Gram matrices of one batch: cross matrix and self terms.

    ``za``/``zb`` are centred float64 layers of the batch (``zb=None``: ``a`` with itself).
    Picks the cheaper of the feature route (``||Za_i^T Zb_j||_F^2``) and the Gram route
    (each layer's Gram matrix computed once per batch, in row blocks to bound memory).
    """
    m = za[0].shape[0]
    pa = [z.shape[1] for z in za]
    pb = pa if zb is None else [z.shape[1] for z in zb]
    PA, PB = sum(pa), sum(pb)
    La, Lb = len(pa), len(pb)
    layers = za if zb is None else za + zb
    if zb is None:
        feat = m * PA * PA
        gram = m * m * PA + m * m * La * La
    else:
        feat = 2.0 * m * PA * PB + m * sum(z.shape[1] ** 2 for z in layers)
        gram = m * m * (PA + PB) + 2.0 * m * m * (La * Lb + La + Lb)
    if feat <= gram:
        ZA = np.concatenate(za, axis=1) if La > 1 else za[0]
        oa = np.concatenate([[0], np.cumsum(pa)])
        if zb is None:
            M = ZA.T @ ZA
            kl = _block_sq(M, oa, oa)
            d = np.diag(kl).copy()
            return kl, d, d
        ZB = np.concatenate(zb, axis=1) if Lb > 1 else zb[0]
        ob = np.concatenate([[0], np.cumsum(pb)])
        kl = _block_sq(ZA.T @ ZB, oa, ob)
        ka = np.array([_sq(z.T @ z) for z in za])
        kb = np.array([_sq(z.T @ z) for z in zb])
        return kl, ka, kb
    Lt = len(layers)
    r = int(max(1, min(m, _GRAM_BLOCK_BYTES // (8 * m * Lt))))
    kl = np.zeros((La, La if zb is None else Lb))
    kself = np.zeros(Lt)
    for s in range(0, m, r):
        e = min(m, s + r)
        F = np.empty((Lt, (e - s) * m))
        for i, z in enumerate(layers):
            if s == 0 and e == m:
                F[i] = (z @ z.T).ravel()
            else:
                F[i] = (z[s:e] @ z.T).ravel()
        kself += np.einsum("ij,ij->i", F, F)
        if zb is None:
            kl += F @ F.T
        else:
            kl += F[:La] @ F[La:].T
    if zb is None:
        return kl, kself, kself
    return kl, kself[:La], kself[La:]


def _sq(M: np.ndarray) -> float:
    return float(np.einsum("ij,ij->", M, M))


def _block_sq(M: np.ndarray, oa: np.ndarray, ob: np.ndarray) -> np.ndarray:
    out = np.empty((len(oa) - 1, len(ob) - 1))
    for i in range(len(oa) - 1):
        for j in range(len(ob) - 1):
            out[i, j] = _sq(M[oa[i] : oa[i + 1], ob[j] : ob[j + 1]])
    return out


class MinibatchCKA(_Locked):
    r"""Minibatch CKA (Nguyen, Raghu, Kornblith 2021) between all layers, batch by batch.

    .. math::

        \mathrm{CKA}_{mb}(a_i, b_j) = \frac{\sum_t w_t\,\langle K_{t,u}, L_{t,u}\rangle}
            {\sqrt{\sum_t w_t \lVert K_{t,u}\rVert_F^2 \;\sum_t w_t \lVert L_{t,u}\rVert_F^2}},
        \qquad w_t = \frac{1}{m_t (m_t - 3)},

    i.e. the mean over batches ``t`` of the unbiased HSIC (Song et al. 2012) of the batch's
    linear Gram matrices, combined into CKA. A different estimator from CKA: each batch is
    centred on its own, so the value depends on the batch size. Each layer's Gram matrix (or
    centred features, whichever is cheaper) is computed once per batch and reused for all
    ``L1 x L2`` pairs.

    Methods
    -------
    update(a, b=None)
        Add one batch ``{layer: (m, p)}`` of every layer (``m >= 4``, else ValueError).
    merge(other)
        Add another accumulator's batches (same layers).
    result(), value()
        :class:`~congruence.results.LayerComparison` (measure ``"minibatch_cka"``); ``nan``
        where a layer is constant in every batch. ValueError before the first batch.

    References
    ----------
    Nguyen, Raghu, Kornblith (2021). Do Wide and Deep Networks Learn the Same Things?
    ICLR. Song et al. (2012), JMLR.

    Examples
    --------
    >>> import numpy as np, congruence as cg
    >>> rng = np.random.default_rng(0)
    >>> h1 = rng.standard_normal((512, 8)); h2 = np.tanh(h1 @ rng.standard_normal((8, 8)))
    >>> acc = cg.MinibatchCKA()
    >>> for s in range(0, 512, 128):
    ...     _ = acc.update({"h1": h1[s:s + 128]}, {"h1": h1[s:s + 128], "h2": h2[s:s + 128]})
    >>> res = acc.result()
    >>> res.cols, round(res["h1", "h1"], 12), acc.batches
    (('h1', 'h2'), 1.0, 4)
    """

    def __init__(self) -> None:
        self._rows: tuple[str, ...] = ()
        self._cols: tuple[str, ...] = ()
        self._widths: tuple[int, ...] = ()
        self._cross: Optional[bool] = None
        #: ``(kl, ka, kb, const_a, const_b, batches, n)``, replaced whole by every update
        #: (never changed in place); ``const_*``: is each layer constant in every batch so far
        self._sums: Optional[tuple] = None
        self._init_lock()

    @property
    def batches(self) -> int:
        """The number of batches added."""
        sums = self._sums
        return 0 if sums is None else sums[5]

    @property
    def n(self) -> int:
        """The number of rows added."""
        sums = self._sums
        return 0 if sums is None else sums[6]

    def _check_batch(self, names_a, names_b, widths, la: int) -> None:
        if self._cross is None:
            return
        if (names_b is not None) != self._cross:
            raise ValueError(
                "b was given in the first batch but not in this one (or the reverse); "
                "pass b in every batch or in none"
            )
        n_rows = len(self._rows)
        _check_same_layers("a", names_a, widths[:la], self._rows, self._widths[:n_rows])
        if names_b is not None:
            _check_same_layers("b", names_b, widths[la:], self._cols, self._widths[n_rows:])

    def update(self, a: Layers, b: Optional[Layers] = None) -> "MinibatchCKA":
        """Add one batch of every layer; returns ``self``.

        Raises
        ------
        ValueError
            For invalid arrays, layers with different row counts, a batch of fewer than 4
            rows, or layers/widths that differ from the first batch.
        """
        names_a, xa, names_b, xb, m = batch_layers(a, b)
        if m < 4:
            raise ValueError(
                f"the batch has {m} row(s); minibatch CKA needs at least 4 rows per batch "
                "(the unbiased HSIC estimator); merge small batches into their neighbours"
            )
        widths = [x.shape[1] for x in xa] + ([x.shape[1] for x in xb] if b is not None else [])
        nb = names_b if b is not None else None
        self._check_batch(names_a, nb, widths, len(xa))
        const_a = np.array([bool(constant_columns(x).all()) for x in xa])
        const_b = const_a if b is None else np.array([bool(constant_columns(x).all()) for x in xb])
        za = [_centred64(x) for x in xa]
        zb = None if b is None else [_centred64(x) for x in xb]
        for z in za + (zb or []):  # the unbiased HSIC sums fourth powers of the values
            spread = largest_magnitude(z)
            if 0.0 < spread < _TINY_DEBIASED:
                raise underflow_error(spread)
        kl, ka, kb = _minibatch_inners(za, zb)
        # U-centred inner products from the centred ones: K has zero row sums, so with
        # d = diag(K): <Ku, Lu> = <K, L> - m/(m-2) d.e + sum(d) sum(e) / ((m-1)(m-2)).
        da = np.stack([np.einsum("ij,ij->i", z, z) for z in za], axis=1)
        db = da if zb is None else np.stack([np.einsum("ij,ij->i", z, z) for z in zb], axis=1)
        sa, sb = da.sum(axis=0), db.sum(axis=0)
        c1, c2 = m / (m - 2.0), 1.0 / ((m - 1.0) * (m - 2.0))
        w = 1.0 / (m * (m - 3.0))
        kl = w * (kl - c1 * (da.T @ db) + c2 * np.outer(sa, sb))
        ka = w * (ka - c1 * np.einsum("ij,ij->j", da, da) + c2 * sa * sa)
        kb = w * (kb - c1 * np.einsum("ij,ij->j", db, db) + c2 * sb * sb)
        # a batch in which a layer is constant contributes exactly 0 for that layer
        kl[const_a, :] = 0.0
        kl[:, const_b] = 0.0
        ka[const_a] = 0.0
        kb[const_b] = 0.0
        if not (np.isfinite(kl).all() and np.isfinite(ka).all() and np.isfinite(kb).all()):
            raise ValueError(
                "the batch holds values whose products overflow float64; divide each layer "
                "by a constant first (minibatch CKA does not change)"
            )
        with self._lock:
            self._check_batch(names_a, nb, widths, len(xa))  # another thread may have begun
            if self._cross is None:
                self._rows = tuple(names_a)
                self._cols = tuple(names_b) if b is not None else tuple(names_a)
                self._widths = tuple(widths)
                self._cross = b is not None
            self._sums = _add_sums(self._sums, (kl, ka, kb, const_a, const_b, 1, m))
        return self

    def merge(self, other: "MinibatchCKA") -> "MinibatchCKA":
        """Add the batches of ``other`` (same layers); returns ``self``."""
        if not isinstance(other, MinibatchCKA):
            raise ValueError(f"other must be a MinibatchCKA; got {type(other).__name__}")
        with other._lock:
            sums = other._sums
            header = (other._rows, other._cols, other._widths, other._cross)
        if sums is None:
            return self
        with self._lock:
            if self._sums is None:
                self._rows, self._cols, self._widths, self._cross = header
                self._sums = sums  # never changed in place, so it can be shared
                return self
            if header != (self._rows, self._cols, self._widths, self._cross):
                raise ValueError(
                    f"other compares layers {header[0]} x {header[1]} but this accumulator "
                    f"compares {self._rows} x {self._cols} (or their widths differ)"
                )
            self._sums = _add_sums(self._sums, sums)
        return self

    def result(self) -> LayerComparison:
        """The minibatch CKA matrix over all batches added.

        ``nan`` with a :class:`~congruence.errors.DegenerateDataWarning` for a layer that is
        constant within every batch.
        """
        return self._result(lambda k: f"a[{k!r}]", lambda k: f"b[{k!r}]")

    def _result(self, label_a: Callable[[str], str], label_b: Callable[[str], str]):
        """:meth:`result`, the layers named by ``label_a`` / ``label_b`` in the warnings
        (:func:`minibatch_cka` calls its two arguments ``X`` and ``Y``)."""
        with self._lock:
            sums, rows, cols = self._sums, self._rows, self._cols
        if sums is None:
            raise ValueError("MinibatchCKA has no batch yet; call update() with at least one batch")
        kl, ka, kb, const_a, const_b, batches, _ = sums
        values = _cka_from_inners(kl, ka, kb, lo=-1.0)
        values[const_a, :] = np.nan
        values[:, const_b] = np.nan
        if not self._cross:
            label_b = label_a
        blamed = set()
        for names, const, label in ((rows, const_a, label_a), (cols, const_b, label_b)):
            for k, c in zip(names, const):
                if c and label(k) not in blamed:
                    blamed.add(label(k))
                    warn_degenerate(
                        f"{label(k)} has zero variance within every batch: its rows are "
                        "identical in each; minibatch_cka is undefined (nan)"
                    )
        other = np.isnan(values) & ~(const_a[:, None] | const_b[None, :])
        for i, j in zip(*np.nonzero(other)):
            warn_degenerate(
                f"the minibatch self-similarity of {label_a(rows[i])} or {label_b(cols[j])} is "
                "not positive; minibatch_cka is undefined (nan)"
            )
        return LayerComparison(
            measure="minibatch_cka",
            params={"batches": batches},
            kind="similarity",
            rows=rows,
            cols=cols,
            values=values,
        )

    value = result

    def __repr__(self) -> str:
        return f"MinibatchCKA() [batches={self.batches}, n={self.n}]"


def _add_sums(acc: Optional[tuple], add: tuple) -> tuple:
    """Minibatch sums plus another batch's (or accumulator's): a new tuple, inputs unchanged."""
    if acc is None:
        return add
    kl, ka, kb, ca, cb, k, n = acc
    return (kl + add[0], ka + add[1], kb + add[2], ca & add[3], cb & add[4], k + add[5], n + add[6])


def _centred64(x: np.ndarray) -> np.ndarray:
    out = np.empty(x.shape, dtype=np.float64)
    _centre(x, out, exact=True)
    return out


def batch_bounds(n: int, batch_size: int, ragged: str = "merge") -> list[tuple[int, int]]:
    """Row ranges ``[(start, stop), ...]`` of the minibatches over ``n`` rows.

    ``ragged="merge"``: the ``n mod batch_size`` left-over rows join the last full batch
    (one batch of all rows when ``n < batch_size``); ``ragged="drop"``: they are left out
    (ValueError if no full batch remains).

    Examples
    --------
    >>> from congruence.streaming import batch_bounds
    >>> batch_bounds(10, 4)
    [(0, 4), (4, 10)]
    >>> batch_bounds(10, 4, ragged="drop")
    [(0, 4), (4, 8)]
    """
    batch_size = check_number("batch_size", batch_size, low=1, integer=True)
    ragged = check_choice("ragged", ragged, _RAGGED)
    n = int(n)
    k = n // batch_size
    bounds = [(i * batch_size, (i + 1) * batch_size) for i in range(k)]
    if n - k * batch_size:
        if ragged == "drop":
            if not bounds:
                raise ValueError(
                    f"ragged='drop' with batch_size={batch_size} leaves no batch of the "
                    f"n={n} rows; expected batch_size <= n, or ragged='merge'"
                )
        elif bounds:
            bounds[-1] = (bounds[-1][0], n)
        else:
            bounds = [(0, n)]
    return bounds


@register(
    family="kernel",
    kind="similarity",
    summary="Minibatch CKA: unbiased HSIC averaged over consecutive batches of rows",
    references=(
        "Nguyen, Raghu, Kornblith (2021). Do Wide and Deep Networks Learn the Same Things? "
        "Uncovering How Neural Network Representations Vary with Width and Depth. ICLR.",
        "Song, Smola, Gretton, Bedo, Borgwardt (2012). Feature Selection via Dependence "
        "Maximization. JMLR.",
    ),
    symmetric=True,
    invariances=("orthogonal", "isotropic_scaling", "translation", "permutation"),
    bounds=(-1.0, 1.0),
    # ragged="drop" needs one whole batch
    min_rows=lambda p: (
        max(4, p["batch_size"]) if p["ragged"] == "drop" and p["batch_size"] is not None else 4
    ),
    variants=({}, {"batch_size": 16}, {"batch_size": 16, "ragged": "drop"}),
    resampling="the unbiased estimator's U-statistic pairs a row with its own duplicate",
)
def minibatch_cka(
    X: ArrayLike, Y: ArrayLike, *, batch_size: Optional[int] = None, ragged: Ragged = "merge"
) -> float:
    r"""Minibatch CKA between two representations (Nguyen, Raghu, Kornblith 2021).

    Splits the rows into consecutive batches of ``batch_size`` rows and returns

    .. math::

        \frac{\frac1k\sum_t \mathrm{HSIC}_u(K_t, L_t)}
             {\sqrt{\frac1k\sum_t \mathrm{HSIC}_u(K_t, K_t)\,\frac1k\sum_t \mathrm{HSIC}_u(L_t, L_t)}}

    with the unbiased HSIC of Song et al. (2012) on each batch's linear Gram matrices (see
    :class:`MinibatchCKA`). Not equal to :func:`congruence.cka`: the value depends on the
    batch size.

    Parameters
    ----------
    X : array-like of shape (n, p1)
    Y : array-like of shape (n, p2)
    batch_size : int >= 4, optional
        Rows per batch; ``None`` (the default): one batch of all ``n`` rows, where the value
        is that of ``cka(X, Y, debiased=True)``.
    ragged : {"merge", "drop"}
        What happens to the ``n mod batch_size`` rows left over: ``"merge"`` adds them to the
        last full batch (one batch of all rows when ``n < batch_size``), ``"drop"`` leaves
        them out.

    Returns
    -------
    float
        In [-1, 1]; ``nan`` if ``X`` or ``Y`` is constant within every batch.

    Examples
    --------
    >>> import numpy as np, congruence as cg
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((1000, 10))
    >>> round(cg.minibatch_cka(X, 2 * X + 1, batch_size=256), 12)
    1.0
    """
    X, Y = check_pair(X, Y, min_rows=4)
    if batch_size is None:
        batch_size = X.shape[0]
    batch_size = check_number("batch_size", batch_size, low=4, integer=True)
    # each side times a power of two (exact; the value does not change): no overflow or
    # underflow of the fourth powers the unbiased HSIC sums, at any magnitude
    X, Y = (
        pow2_scale(np.asarray(X, dtype=np.float64))[0],
        pow2_scale(np.asarray(Y, dtype=np.float64))[0],
    )
    acc = MinibatchCKA()
    for s, e in batch_bounds(X.shape[0], batch_size, ragged):
        acc.update([X[s:e]], [Y[s:e]])
    return float(acc._result(lambda k: "X", lambda k: "Y").values[0, 0])


class Regroup:
    """Rows of consecutive forward batches regrouped into minibatches of exactly ``size`` rows;
    the ``n mod size`` rows left at the end join the last minibatch (one minibatch of all rows
    when ``n < size``), as :func:`batch_bounds` with ``ragged="merge"``."""

    def __init__(self, size: Optional[int], emit: Callable[[dict, Optional[dict]], None]):
        self.size = size
        self.emit = emit
        self.pending: list[tuple[dict, Optional[dict]]] = []
        self.rows = 0

    def push(self, a: dict, b: Optional[dict]) -> None:
        m = next(iter(a.values())).shape[0]
        if self.size is None:  # the first forward batch sets the minibatch size
            self.size = m
        self.pending.append((a, b))
        self.rows += m
        # a minibatch leaves only once size more rows follow it, so the last one can take
        # the remainder
        while self.rows >= 2 * self.size:
            self._emit(self.size)

    def _emit(self, k: int) -> None:
        a = {key: np.concatenate([p[0][key] for p in self.pending]) for key in self.pending[0][0]}
        b = None
        if self.pending[0][1] is not None:
            b = {
                key: np.concatenate([p[1][key] for p in self.pending]) for key in self.pending[0][1]
            }
        self.emit(
            {k_: v[:k] for k_, v in a.items()},
            None if b is None else {k_: v[:k] for k_, v in b.items()},
        )
        self.rows -= k
        self.pending = []
        if self.rows:
            self.pending = [
                (
                    {k_: v[k:] for k_, v in a.items()},
                    None if b is None else {k_: v[k:] for k_, v in b.items()},
                )
            ]

    def finish(self) -> None:
        if self.rows:
            self._emit(self.rows)
