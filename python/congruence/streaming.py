r"""Large activation sets: exact streaming linear CKA/HSIC, and minibatch CKA.

Exact streaming (:class:`CKAAccumulator`, :class:`HSICAccumulator`, :class:`LayerAccumulator`)
-----------------------------------------------------------------------------------------------
Rows arrive in batches; the accumulators keep a state whose size depends on the widths only,
never on ``n``, and their value equals :func:`congruence.cka` / :func:`congruence.hsic` (linear
kernel, biased or debiased) on all rows seen, whatever the split into batches. States merge
(:meth:`merge` is associative), so partial results from threads, processes or machines
combine; :mod:`congruence.distributed` uses this for Dask.

All state is float64 and *centred*: co-moments about the running mean, merged with the
pairwise formulas of Chan, Golub & LeVeque (1979), never raw sums of products (which lose all
precision when the columns carry large offsets). float32 batches are accepted and
accumulated in float64.

**State.** The layers of one row are side by side, ``x_i^I`` the part of row ``i`` in layer
``I`` (width ``p_I``). For a set of ``k`` rows with per-layer means ``m_I`` and centred rows
``u_i^I = x_i^I - m_I`` (so :math:`\sum_i u_i^I = 0`), the state is ``k``, the means, and

.. math::

    C_{IJ} = \sum_i u_i^I (u_i^J)^T \quad (p_I \times p_J)

for the pairs that are compared and each layer with itself: O(p1 p2 + p1^2 + p2^2) for a
pair. The debiased estimator also needs the squared row norms
:math:`d_i = \lVert x_i - \bar x \rVert^2` about the *final* mean, through
:math:`\sum_i d_i`, :math:`\sum_i d_i^2` and :math:`\sum_i d_i e_i`. With
:math:`a_i^I = \lVert u_i^I \rVert^2` the state adds, for the same pairs (``I = J``
included),

.. math::

    W_{IJ} = \sum_i a_i^I a_i^J \;\text{(scalar)}, \qquad
    G_{IJ} = \sum_i a_i^I\, u_i^J \;\text{(vector of width } p_J),

and :math:`s_I = \sum_i a_i^I = \operatorname{tr} C_{II}` needs no storage.

**Shift.** Re-centre the same rows about another point ``c``: with
:math:`\delta_I = m_I - c_I`, :math:`x_i^I - c_I = u_i^I + \delta_I` and
:math:`\lVert u_i^I + \delta_I\rVert^2 = a_i^I + 2 u_i^I\cdot\delta_I + \lVert\delta_I\rVert^2`.
Expanding the products and dropping every term that contains :math:`\sum_i u_i = 0`:

.. math::

    C'_{IJ} &= C_{IJ} + k\,\delta_I \delta_J^T \\
    G'_{IJ} &= G_{IJ} + s_I\,\delta_J + 2\,C_{IJ}^T\delta_I
               + k\,\lVert\delta_I\rVert^2\,\delta_J \\
    W'_{IJ} &= W_{IJ} + 2\,G_{IJ}\cdot\delta_J + 2\,G_{JI}\cdot\delta_I
               + 4\,\delta_I^T C_{IJ}\,\delta_J + \lVert\delta_J\rVert^2 s_I
               + \lVert\delta_I\rVert^2 s_J + k\,\lVert\delta_I\rVert^2\lVert\delta_J\rVert^2

(for ``I = J``: :math:`W' = W + 4\,G_{II}\cdot\delta + 4\,\delta^T C\delta
+ 2\lVert\delta\rVert^2 s + k\lVert\delta\rVert^4`, the shifted :math:`\sum d_i^2`).

**Merge.** Two states ``A`` and ``B`` with ``k = k_A + k_B`` rows and
:math:`\Delta = m_B - m_A` have the mean :math:`m = m_A + (k_B/k)\,\Delta`. Each is shifted
to ``m`` (:math:`\delta_A = -(k_B/k)\Delta`, :math:`\delta_B = (k_A/k)\Delta`) and the two are
added. For ``C`` this is Chan et al.'s
:math:`C = C_A + C_B + (k_A k_B / k)\,\Delta_I\Delta_J^T`. A batch is turned into a state by
centring it about its own mean (corrected two-pass: the float64 mean ``mu``, then the mean
``c`` of the residuals) and one symmetric matrix product; a single row is a state with
``k = 1``, ``C = 0``, ``W = 0``, ``G = 0`` and merges like any other. Each mean is stored as a
fixed shift (a batch's ``mu``) plus a small part, so :math:`\Delta` keeps full precision
even when the columns carry offsets of 1e10.

**Values.** After all rows, ``m`` is the final mean, so :math:`s_I = \sum_i d_i`,
:math:`W_{IJ} = \sum_i d_i e_i` and :math:`\lVert X_c^T Y_c\rVert_F^2 =
\lVert C_{IJ}\rVert_F^2`. The centred Gram matrix :math:`K = X_c X_c^T` has zero row sums,
so with the zeroed diagonal :math:`K_0 = K - \operatorname{diag}(d)` the row sums are
:math:`-d_i` and MEASURES.md 1.3 gives

.. math::

    \langle K_u, L_u\rangle = \lVert C_{XY}\rVert_F^2 - \frac{n}{n-2}\sum_i d_i e_i
        + \frac{\sum_i d_i \sum_i e_i}{(n-1)(n-2)} = n(n-3)\,\mathrm{HSIC}_u,

and :math:`\langle HKH, HLH\rangle = \lVert C_{XY}\rVert_F^2 = (n-1)^2\,\mathrm{HSIC}_b`.
CKA divides by the square roots of the same quantities for ``X`` with itself and ``Y`` with
itself (``nan`` when one is not positive, as :func:`congruence.cka`).

Minibatch CKA (:class:`MinibatchCKA`, :func:`minibatch_cka`)
--------------------------------------------------------------
Nguyen, Raghu & Kornblith (2021): over batches ``b = 1..k`` with Gram matrices
:math:`K_b, L_b`,

.. math::

    \mathrm{CKA}_{mb} = \frac{\frac1k\sum_b \mathrm{HSIC}_u(K_b, L_b)}
      {\sqrt{\frac1k\sum_b \mathrm{HSIC}_u(K_b, K_b)\;\frac1k\sum_b \mathrm{HSIC}_u(L_b, L_b)}}

with the unbiased HSIC of MEASURES.md 1.3 per batch. It is a different estimator from CKA:
its value depends on the batch size (each batch is centred on its own). Batches need at least
4 rows. **Ragged last batch** (:func:`minibatch_cka` and
:func:`congruence.io.stream_layers`): with ``ragged="merge"`` (default) the
``n mod batch_size`` rows left over join the last full batch, so every row is used and
batches hold ``batch_size`` to ``2 batch_size - 1`` rows (one batch of all ``n`` rows when
``n < batch_size``); ``ragged="drop"`` leaves them out (as a loader with ``drop_last``).
"""

from __future__ import annotations

import copy
import threading
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np

from congruence._registry import get_measure
from congruence._validation import (
    check_bool,
    check_choice,
    check_number,
    check_pair,
    constant_columns,
)
from congruence.errors import warn_degenerate
from congruence.results import LayerComparison, layer_not_found
from congruence.compare import _layers

__all__ = [
    "CKAAccumulator",
    "HSICAccumulator",
    "LayerAccumulator",
    "MinibatchCKA",
    "minibatch_cka",
    "batch_bounds",
]

Layers = Union[Mapping[str, Any], Sequence[Any]]

_RAGGED = ("merge", "drop")


# ------------------------------------------------------------------------------ layout


class _Layout:
    """Layer widths side by side; the first ``na`` belong to model a.

    ``cross``: pairs are (a-layer, b-layer) plus every layer with itself; otherwise every
    pair of layers (one model compared with itself).
    """

    def __init__(self, widths: Sequence[int], na: int, cross: bool):
        self.widths = tuple(int(w) for w in widths)
        self.na = int(na)
        self.cross = bool(cross)
        self.offsets = tuple(int(o) for o in np.concatenate([[0], np.cumsum(self.widths)]))
        self.P = self.offsets[-1]
        self.L = len(self.widths)
        self.PA = self.offsets[self.na]
        #: one symmetric product over all columns (one model with itself, or a single pair,
        #: where it does exactly the work of the separate blocks in one BLAS call)
        self.full = (not self.cross) or (self.na == 1 and self.L == 2)

    def sl(self, i: int) -> slice:
        return slice(self.offsets[i], self.offsets[i + 1])

    def sl_b(self, j: int) -> slice:
        """Columns of b-layer ``j`` (``j >= na``) inside the a x b cross matrix."""
        return slice(self.offsets[j] - self.PA, self.offsets[j + 1] - self.PA)

    def pairs(self) -> list[tuple[int, int]]:
        """The unordered pairs ``(i, j)``, ``i <= j``, whose co-moments are kept."""
        if self.cross:
            out = [(i, i) for i in range(self.L)]
            out += [(i, j) for i in range(self.na) for j in range(self.na, self.L)]
            return out
        return [(i, j) for i in range(self.L) for j in range(i, self.L)]

    def key(self) -> tuple:
        return (self.widths, self.na, self.cross)


def _rank1(M: np.ndarray, f: float, x: np.ndarray, y: np.ndarray) -> None:
    """``M += f x y^T`` in place, a block of rows at a time (no full temporary matrix).

    Plain NumPy on purpose: SciPy's ``ger`` would run on SciPy's own OpenBLAS, a second
    thread pool next to NumPy's, and two pools oversubscribe the cores.
    """
    if M.size == 0 or f == 0.0:
        return
    fx = f * x
    step = max(1, (1 << 20) // max(1, M.shape[1]))
    for s in range(0, M.shape[0], step):
        M[s : s + step] += np.multiply.outer(fx[s : s + step], y)


def _centre(x: np.ndarray, out: np.ndarray, exact: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Write ``x`` minus its float64 column means ``mu`` into ``out``; return ``(mu, c)``.

    Corrected two-pass: ``c`` is the mean of the residuals (zero in exact arithmetic; the
    rounding of ``mu``), so the mean is ``mu + c``, kept as two terms for precision. With
    ``exact=True`` ``c`` is also removed from the residuals, which then sum to zero to working
    precision even with large offsets; otherwise the products are corrected instead
    (``Z^T Z - m c c^T``), saving a pass over the batch.
    """
    mu = x.mean(axis=0, dtype=np.float64)
    np.subtract(x, mu, out=out)
    if x.shape[0] == 1:
        return mu, np.zeros_like(mu)
    c = out.mean(axis=0)
    if exact:
        out -= c
    return mu, c


def _centred_block(arrays: Sequence[np.ndarray], exact: bool = True) -> tuple:
    """The layers of a batch side by side, centred about their means (float64).

    Returns ``(Z, mu, c, exact, lo, hi)``: the column means are ``mu + c``; ``Z`` holds the
    rows minus ``mu + c`` if ``exact``, else minus ``mu`` (see :func:`_centre`); ``lo`` and
    ``hi`` are the column minima and maxima (for the constant-column rule).
    """
    m = arrays[0].shape[0]
    P = sum(x.shape[1] for x in arrays)
    Z = np.empty((m, P))
    mu = np.empty(P)
    c = np.empty(P)
    lo = np.empty(P)
    hi = np.empty(P)
    o = 0
    for x in arrays:
        s = slice(o, o + x.shape[1])
        mu[s], c[s] = _centre(x, Z[:, s], exact)
        lo[s] = x.min(axis=0)
        hi[s] = x.max(axis=0)
        o = s.stop
    return Z, mu, c, exact or m == 1, lo, hi


# ------------------------------------------------------------------------------ moments


class _Moments:
    """Centred co-moments of a set of rows (see the module docstring for the algebra)."""

    def __init__(self, layout: _Layout, debiased: bool):
        self.layout = layout
        self.debiased = debiased
        self.n = 0
        P, L = layout.P, layout.L
        #: the mean is ``shift + mean``: ``shift`` is fixed (a batch mean, rounded) and ``mean``
        #: is small, so differences of means keep full precision however large the offsets
        self.shift = np.zeros(P)
        self.mean = np.zeros(P)
        #: column minima and maxima of all rows seen (the constant-column rule)
        self.lo = np.full(P, np.inf)
        self.hi = np.full(P, -np.inf)
        if layout.full:
            self.caa = np.zeros((P, P))
        else:
            self.selfs = [np.zeros((p, p)) for p in layout.widths]
            self.cab = np.zeros((layout.PA, P - layout.PA))
        if debiased:
            self.W = np.zeros((L, L))
            self.G = np.zeros((L, P))

    # -- storage ---------------------------------------------------------------------

    def matrices(self) -> list[tuple[np.ndarray, slice, slice]]:
        """Every stored co-moment matrix with the rows and columns of the mean it spans."""
        lay = self.layout
        if lay.full:
            full = slice(0, lay.P)
            return [(self.caa, full, full)]
        out = [(self.selfs[i], lay.sl(i), lay.sl(i)) for i in range(lay.L)]
        out.append((self.cab, slice(0, lay.PA), slice(lay.PA, lay.P)))
        return out

    def block(self, i: int, j: int) -> np.ndarray:
        """``C_ij`` (a view), for a kept pair in either order."""
        lay = self.layout
        if lay.full:
            return self.caa[lay.sl(i), lay.sl(j)]
        if i == j:
            return self.selfs[i]
        if i < lay.na <= j:
            return self.cab[lay.sl(i), lay.sl_b(j)]
        if j < lay.na <= i:
            return self.cab[lay.sl(j), lay.sl_b(i)].T
        raise KeyError((i, j))  # pragma: no cover - only kept pairs are asked for

    # -- construction ----------------------------------------------------------------

    @classmethod
    def from_batch(cls, layout: _Layout, debiased: bool, arrays: Sequence[np.ndarray]):
        """The state of one batch: centred about its own mean, one product per block."""
        return cls.from_centred(layout, debiased, *_centred_block(arrays, exact=debiased))

    def constant_layers(self) -> np.ndarray:
        """Per layer: are all its columns constant over the rows seen (the one relative rule
        of :func:`congruence._validation.constant_columns`, applied to the column ranges)?"""
        const = constant_columns(np.stack([self.lo, self.hi]))
        lay = self.layout
        return np.array([bool(const[lay.sl(i)].all()) for i in range(lay.L)])

    @classmethod
    def from_centred(
        cls,
        layout: _Layout,
        debiased: bool,
        Z: np.ndarray,
        mu: np.ndarray,
        c: np.ndarray,
        exact: bool,
        lo: np.ndarray,
        hi: np.ndarray,
    ):
        """The state of a batch from :func:`_centred_block`'s ``(Z, mu, c, exact, lo, hi)``.

        The means are ``mu + c``; if not ``exact``, ``Z`` still has column means ``c`` and
        the products are corrected by ``- m c c^T`` (biased estimator only).
        """
        st = cls.__new__(cls)
        st.layout, st.debiased = layout, debiased
        m = Z.shape[0]
        st.n, st.shift, st.mean = m, mu, c
        st.lo, st.hi = lo, hi
        with np.errstate(over="ignore", invalid="ignore"):  # overflow is checked below
            st._fill(Z, c, exact, m)
        st._check_finite()
        return st

    def _fill(self, Z: np.ndarray, c: np.ndarray, exact: bool, m: int) -> None:
        st, layout, debiased = self, self.layout, self.debiased
        if layout.full:
            st.caa = Z.T @ Z
        else:
            st.selfs = []
            for i in range(layout.L):
                z = Z[:, layout.sl(i)]
                st.selfs.append(z.T @ z)
            st.cab = Z[:, : layout.PA].T @ Z[:, layout.PA :]
        if not exact:
            if debiased:  # pragma: no cover - the debiased path always centres exactly
                raise AssertionError("the debiased state needs exactly centred rows")
            for M, rs, cs in st.matrices():
                _rank1(M, -float(m), c[rs], c[cs])
        if debiased:
            A = np.empty((m, layout.L))
            for i in range(layout.L):
                z = Z[:, layout.sl(i)]
                A[:, i] = np.einsum("ij,ij->i", z, z)
            st.W = A.T @ A
            st.G = A.T @ Z

    def _check_finite(self) -> None:
        """ValueError if a co-moment overflowed float64 (the batch is then not added)."""
        parts = [M for M, _, _ in self.matrices()]
        if self.debiased:
            parts += [self.W, self.G]
        if not all(np.isfinite(M).all() for M in parts):
            big = float(np.max(np.abs(np.concatenate([self.lo, self.hi]))))
            raise ValueError(
                f"the batch holds values up to {big:.3g} in magnitude, whose products overflow "
                "float64 in the streaming co-moments; divide each layer by a constant first "
                "(CKA does not change; HSIC scales by the product of the squared factors)"
            )

    def copy(self) -> "_Moments":
        return copy.deepcopy(self)

    # -- merging ---------------------------------------------------------------------

    def _shifted_extras(self, delta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``W'`` and ``G'`` of these rows re-centred by ``delta`` (= own mean - new centre)."""
        lay, k = self.layout, float(self.n)
        W, G = self.W.copy(), self.G.copy()
        dl = [delta[lay.sl(i)] for i in range(lay.L)]
        dn = [float(d @ d) for d in dl]
        s = [float(np.trace(self.block(i, i))) for i in range(lay.L)]
        for i, j in lay.pairs():
            C = self.block(i, j)
            t_ij = C.T @ dl[i]  # sum_r u_r^j (u_r^i . delta_i)
            G[i, lay.sl(j)] += s[i] * dl[j] + 2.0 * t_ij + k * dn[i] * dl[j]
            quad = float(dl[j] @ t_ij)  # delta_i^T C_ij delta_j
            if i == j:
                W[i, i] += (
                    4.0 * float(self.G[i, lay.sl(i)] @ dl[i])
                    + 4.0 * quad
                    + 2.0 * dn[i] * s[i]
                    + k * dn[i] * dn[i]
                )
            else:
                t_ji = C @ dl[j]
                G[j, lay.sl(i)] += s[j] * dl[i] + 2.0 * t_ji + k * dn[j] * dl[i]
                w = (
                    2.0 * float(self.G[i, lay.sl(j)] @ dl[j])
                    + 2.0 * float(self.G[j, lay.sl(i)] @ dl[i])
                    + 4.0 * quad
                    + dn[j] * s[i]
                    + dn[i] * s[j]
                    + k * dn[i] * dn[j]
                )
                W[i, j] += w
                W[j, i] += w
        return W, G

    def combined(self, spare: "_Moments") -> "_Moments":
        """The state of the rows of ``self`` and of ``spare``, built in ``spare``'s arrays.

        ``self`` is only read, so a state in use is never half-updated (an exception or a
        ``KeyboardInterrupt`` midway leaves it as it was); ``spare`` (a fresh batch state or
        a copy) is consumed and must not be used afterwards.
        """
        if spare.n == 0:
            return self
        if self.n == 0:
            return spare
        na, nb = float(self.n), float(spare.n)
        n = na + nb
        # difference of the means; the shifts are close (both batch means), so their
        # difference is (nearly) exact and the small parts keep their precision
        d = (spare.shift - self.shift) + spare.mean - self.mean
        if self.debiased:
            Wa, Ga = self._shifted_extras(-(nb / n) * d)
            Wb, Gb = spare._shifted_extras((na / n) * d)
            W, G = Wa + Wb, Ga + Gb
        f = na * nb / n
        for (M, rs, cs), (Ms, _, _) in zip(spare.matrices(), self.matrices()):
            M += Ms
            _rank1(M, f, d[rs], d[cs])
        if self.debiased:
            spare.W, spare.G = W, G
        spare.mean = self.mean + (nb / n) * d
        spare.shift = self.shift
        spare.lo = np.minimum(self.lo, spare.lo)
        spare.hi = np.maximum(self.hi, spare.hi)
        spare.n = self.n + spare.n
        spare._check_finite()
        return spare

    # -- values ----------------------------------------------------------------------

    def inner(self, i: int, j: int) -> float:
        """``<HK_iH, HK_jH>`` (biased) or ``<K_iu, K_ju>`` (debiased) on all rows seen."""
        C = self.block(i, j)
        kl = float(np.einsum("ij,ij->", C, C))
        if not self.debiased:
            return kl
        n = float(self.n)
        si = float(np.trace(self.block(i, i)))
        sj = si if i == j else float(np.trace(self.block(j, j)))
        return kl - n / (n - 2.0) * float(self.W[i, j]) + si * sj / ((n - 1.0) * (n - 2.0))

    def values(self, statistic: str) -> np.ndarray:
        """The matrix of ``statistic`` ("cka" or "hsic") between the compared layers."""
        lay, n = self.layout, float(self.n)
        rows = range(lay.na)
        cols = range(lay.na, lay.L) if lay.cross else range(lay.L)
        out = np.empty((len(rows), len(cols)))
        for r, i in enumerate(rows):
            for c, j in enumerate(cols):
                if not lay.cross and j < i:
                    out[r, c] = out[c, r]
                else:
                    out[r, c] = self.inner(i, j)
        if statistic == "hsic":
            return out / (n * (n - 3.0)) if self.debiased else out / ((n - 1.0) ** 2)
        selfs = np.array([self.inner(i, i) for i in range(lay.L)])
        ka, kb = selfs[list(rows)], selfs[list(cols)]
        return _cka_from_inners(out, ka, kb, lo=-1.0 if self.debiased else 0.0)


def _degenerate_fix(state: "_Moments", values: np.ndarray, statistic: str) -> np.ndarray:
    """Apply the constant-layer rule to a value matrix: a layer whose rows are all identical
    gives ``nan`` (CKA) or exactly ``0`` (linear HSIC), whatever the round-off left."""
    lay = state.layout
    const = state.constant_layers()
    rows = const[: lay.na]
    cols = const[lay.na :] if lay.cross else const
    mask = rows[:, None] | cols[None, :]
    if mask.any():
        values = values.copy()
        values[mask] = np.nan if statistic == "cka" else 0.0
    return values


def _cka_from_inners(kl: np.ndarray, ka: np.ndarray, kb: np.ndarray, lo: float) -> np.ndarray:
    """``kl / sqrt(ka kb)`` clipped to ``[lo, 1]``; ``nan`` where a self term is not > 0."""
    ok = (ka[:, None] > 0) & (kb[None, :] > 0)
    den = np.sqrt(np.where(ok, ka[:, None] * kb[None, :], 1.0))
    with np.errstate(invalid="ignore"):
        val = np.clip(kl / den, lo, 1.0)
    return np.where(ok, val, np.nan)


# ------------------------------------------------------------------------------ layers input


def _same_rows(groups: Sequence[tuple[str, list[str], list[np.ndarray]]]) -> int:
    arg0, names0, arrays0 = groups[0]
    m = arrays0[0].shape[0]
    for arg, names, arrays in groups:
        for name, x in zip(names, arrays):
            if x.shape[0] != m:
                raise ValueError(
                    f"{arg}[{name!r}] has shape {x.shape} but {arg0}[{names0[0]!r}] has {m} "
                    "rows; every layer of a batch must hold the same inputs (rows)"
                )
    return m


def _check_same_layers(arg: str, names: list[str], widths: list[int], want_names, want_widths):
    if names != list(want_names):
        unknown = [k for k in names if k not in want_names]
        where = f"the first batch of {arg} (layers {list(want_names)})"
        if unknown:  # a misspelled or new layer: a LayerNotFoundError (KeyError, ValueError)
            err = layer_not_found(unknown[0], list(want_names), where)
            raise type(err)(
                f"{arg} has layers {names} but the first batch had {list(want_names)}: "
                f"{err}; every batch must hold the same layers in the same order"
            )
        raise ValueError(
            f"{arg} has layers {names} but the first batch had {list(want_names)}; every "
            "batch must hold the same layers in the same order"
        )
    for name, w, w0 in zip(names, widths, want_widths):
        if w != w0:
            raise ValueError(
                f"{arg}[{name!r}] has {w} columns but earlier batches of that layer had {w0}; "
                "a layer's width cannot change between batches"
            )


# ------------------------------------------------------------------------------ thread safety


class _Locked:
    """A lock around every change of state, so one accumulator can be shared by threads.

    The expensive part of an update (validation, centring, the matrix products of the batch)
    runs outside the lock; the lock covers only the combination with the current state,
    which builds a new state and then swaps it in. A failed or interrupted update therefore
    leaves the accumulator as it was. The lock is not part of the pickled or copied state.
    """

    def _init_lock(self) -> None:
        self._lock = threading.RLock()

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("_lock", None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._init_lock()

    def copy(self):
        """An independent copy."""
        with self._lock:
            return copy.deepcopy(self)


def _nan_warnings(values: np.ndarray, statistic: str, rows, rconst, cols, cconst, rname, cname):
    """Issue one DegenerateDataWarning per layer behind the ``nan`` (CKA) or the defined zero
    (HSIC) of a constant layer, and for any other ``nan`` left in ``values``."""
    blamed = set()
    what = "is undefined (nan)" if statistic == "cka" else "is 0"
    for names, const, label in ((rows, rconst, rname), (cols, cconst, cname)):
        for k, c in zip(names, const):
            if c and label(k) not in blamed:
                blamed.add(label(k))
                warn_degenerate(
                    f"{label(k)} has zero variance: every row is identical; {statistic} "
                    f"{what}"
                )
    if statistic == "cka":
        bad = np.isnan(values) & ~(np.asarray(rconst)[:, None] | np.asarray(cconst)[None, :])
        for i, j in zip(*np.nonzero(bad)):
            warn_degenerate(
                f"the self-similarity of {rname(rows[i])} or {cname(cols[j])} is not positive "
                f"(the debiased estimator on too few distinct rows); cka is undefined (nan)"
            )


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
    ``cg.cka(X, Y, debiased=debiased)`` on all rows seen (MEASURES.md 1.2, linear kernel):

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

    Equals ``cg.hsic(X, Y, unbiased=unbiased)`` on all rows seen (MEASURES.md 1.3, linear
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
        names_a, xa = _layers(a, "a", 1, "(m, p) batches")
        groups = [("a", names_a, xa)]
        names_b: Optional[list[str]] = None
        xb: list[np.ndarray] = []
        if b is not None:
            names_b, xb = _layers(b, "b", 1, "(m, p) batches")
            groups.append(("b", names_b, xb))
        _same_rows(groups)
        widths = [x.shape[1] for x in xa + xb]
        return names_a, names_b, widths, _centred_block(xa + xb, exact=self._debiased)

    def _check_batch(self, names_a: list[str], names_b: Optional[list[str]], widths) -> None:
        state = self._state
        if state is None:
            return
        la, lay = len(names_a), state.layout
        if (names_b is not None) != lay.cross:
            raise ValueError(
                "b was given in the first batch but not in this one (or the reverse); "
                "pass b in every batch or in none"
            )
        _check_same_layers("a", names_a, widths[:la], self._rows, lay.widths[: lay.na])
        if names_b is not None:
            _check_same_layers("b", names_b, widths[la:], self._cols, lay.widths[lay.na :])

    def _absorb(self, prepared: tuple) -> "LayerAccumulator":
        names_a, names_b, widths, block = prepared
        self._check_batch(names_a, names_b, widths)
        # the products of the batch run outside the lock; only the combination is serialised
        lay = _Layout(widths, len(names_a), names_b is not None)
        batch = _Moments.from_centred(lay, self._debiased, *block)
        with self._lock:
            self._check_batch(names_a, names_b, widths)  # another thread may have begun
            if self._state is None:
                self._rows = tuple(names_a)
                self._cols = tuple(names_b) if names_b is not None else tuple(names_a)
                self._state = batch
            else:
                self._state = self._state.combined(batch)
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

    i.e. the mean over batches ``t`` of the unbiased HSIC (MEASURES.md 1.3) of the batch's
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
        names_a, xa = _layers(a, "a", 1, "(m, p) batches")
        groups = [("a", names_a, xa)]
        if b is not None:
            names_b, xb = _layers(b, "b", 1, "(m, p) batches")
            groups.append(("b", names_b, xb))
        m = _same_rows(groups)
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
        with self._lock:
            sums, rows, cols = self._sums, self._rows, self._cols
        if sums is None:
            raise ValueError("MinibatchCKA has no batch yet; call update() with at least one batch")
        kl, ka, kb, const_a, const_b, batches, _ = sums
        values = _cka_from_inners(kl, ka, kb, lo=-1.0)
        values[const_a, :] = np.nan
        values[:, const_b] = np.nan
        label_b = (lambda k: f"b[{k!r}]") if self._cross else (lambda k: f"a[{k!r}]")
        blamed = set()
        for names, const, label in ((rows, const_a, lambda k: f"a[{k!r}]"), (cols, const_b, label_b)):
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
                f"the minibatch self-similarity of a[{rows[i]!r}] or {label_b(cols[j])} is "
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


def minibatch_cka(X, Y, *, batch_size: int, ragged: str = "merge") -> float:
    r"""Minibatch CKA between two representations (Nguyen, Raghu, Kornblith 2021).

    Splits the rows into consecutive batches of ``batch_size`` rows and returns

    .. math::

        \frac{\frac1k\sum_t \mathrm{HSIC}_u(K_t, L_t)}
             {\sqrt{\frac1k\sum_t \mathrm{HSIC}_u(K_t, K_t)\,\frac1k\sum_t \mathrm{HSIC}_u(L_t, L_t)}}

    with the unbiased HSIC of MEASURES.md 1.3 on each batch's linear Gram matrices (see
    :class:`MinibatchCKA`). Not equal to :func:`congruence.cka`: the value depends on the
    batch size.

    Parameters
    ----------
    X : array-like of shape (n, p1)
    Y : array-like of shape (n, p2)
    batch_size : int >= 4
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
    batch_size = check_number("batch_size", batch_size, low=4, integer=True)
    X, Y = check_pair(X, Y, min_rows=4)
    acc = MinibatchCKA()
    for s, e in batch_bounds(X.shape[0], batch_size, ragged):
        acc.update([X[s:e]], [Y[s:e]])
    return float(acc.result().values[0, 0])
