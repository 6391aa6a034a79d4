r"""The moment algebra of exact streaming linear CKA and HSIC: centred co-moments that merge.

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
:math:`-d_i` and the unbiased HSIC of Song et al. (2012) gives

.. math::

    \langle K_u, L_u\rangle = \lVert C_{XY}\rVert_F^2 - \frac{n}{n-2}\sum_i d_i e_i
        + \frac{\sum_i d_i \sum_i e_i}{(n-1)(n-2)} = n(n-3)\,\mathrm{HSIC}_u,

and :math:`\langle HKH, HLH\rangle = \lVert C_{XY}\rVert_F^2 = (n-1)^2\,\mathrm{HSIC}_b`.
CKA divides by the square roots of the same quantities for ``X`` with itself and ``Y`` with
itself (``nan`` when one is not positive, as :func:`congruence.cka`).

"""

from __future__ import annotations

import copy
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np

from congruence import _core
from congruence._linalg import scale_back
from congruence._memory import mapped_array
from congruence._validation import as_matrix, constant_columns
from congruence.errors import warn_degenerate
from congruence.results import layer_not_found, layer_set, same_rows

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


#: below this many multiply-adds per batch, the products run on the calling thread only
_THREADED_WORK = 1 << 24
#: the cross block of a batch is computed in row chunks of at most this many rows
_CHUNK = 128
#: Spreads below this (2**-480, about 3e-145) make the co-moments' products subnormal;
#: below 2**-240 (about 5.7e-73) the debiased state's fourth powers.
_TINY = 2.0**-480
_TINY_DEBIASED = 2.0**-240


def underflow_error(spread: float) -> ValueError:
    """The error for a layer that varies by only ``spread`` (below :data:`_TINY` or, with
    fourth powers, :data:`_TINY_DEBIASED`): its products would leave float64's normal range."""
    return ValueError(
        f"the batch holds a layer whose values vary by at most {spread:.3g}, whose products "
        "underflow float64 in the streaming co-moments; multiply each layer by a constant "
        "first (CKA does not change; HSIC scales by the product of the squared factors)"
    )


def _products(pairs: list, workers: int, outs: Optional[list] = None) -> list:
    """``[x.T @ y for x, y in pairs]`` (``x is y``: a symmetric product), computed on up to
    ``workers`` threads, the largest first. Each product is one NumPy call whichever thread
    runs it, so the results do not depend on ``workers``; more than one helps when BLAS runs
    on one thread (as :func:`congruence.compare_models` keeps it beside PyTorch's threads).
    ``outs``: arrays to write the products into (the same BLAS calls, the same bits)."""

    def product(k: int) -> np.ndarray:
        x, y = pairs[k]
        return x.T @ y if outs is None else np.matmul(x.T, y, out=outs[k])

    work = sum(x.shape[0] * x.shape[1] * y.shape[1] for x, y in pairs)
    if workers <= 1 or len(pairs) < 2 or work < _THREADED_WORK:
        return [product(k) for k in range(len(pairs))]
    order = sorted(range(len(pairs)), key=lambda k: -pairs[k][0].shape[1] * pairs[k][1].shape[1])
    ex = _pool(min(workers, len(pairs)))
    futures = {k: ex.submit(product, k) for k in order}
    return [futures[k].result() for k in range(len(pairs))]


_POOL: list = []
_POOL_LOCK = threading.Lock()


def _pool(workers: int) -> ThreadPoolExecutor:
    """One process-wide pool of product threads, kept between batches and calls: threads
    that come and go would each make the BLAS library set up (and keep) buffers of its own.
    A forked child (whose copy of the pool has no threads) makes a new one."""
    pid = os.getpid()
    with _POOL_LOCK:
        if _POOL and (_POOL[0][1] < workers or _POOL[0][2] != pid):
            old, _, owner = _POOL.pop()
            if owner == pid:
                old.shutdown(wait=False)
        if not _POOL:
            ex = ThreadPoolExecutor(workers, thread_name_prefix="congruence-products")
            _POOL.append((ex, workers, pid))
        return _POOL[0][0]


def _centre(x: np.ndarray, out: np.ndarray, exact: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Write ``x`` minus its float64 column means ``mu`` into ``out`` (a C-ordered float64
    array; it may be ``x`` itself); return ``(mu, c)``.

    Corrected two-pass: ``c`` is the mean of the residuals (zero in exact arithmetic; the
    rounding of ``mu``), so the mean is ``mu + c``, kept as two terms for precision. With
    ``exact=True`` ``c`` is also removed from the residuals, which then sum to zero to working
    precision even with large offsets; otherwise the products are corrected instead
    (``Z^T Z - m c c^T``), saving a pass over the batch. The passes run in the core
    (``_core.centre_rows``: two or three sweeps over the rows, each row's columns at once,
    which also give the column extremes that :func:`_centred_rows` uses).
    """
    if out is not x:
        np.copyto(out, x)
    mu, c, _, _ = _core.centre_rows(out, exact)
    return mu, c


def _centred_block(arrays: Sequence[np.ndarray], exact: bool = True) -> tuple:
    """The layers of a batch side by side, centred about their means (float64).

    Returns ``(Z, mu, c, exact, lo, hi)``: the column means are ``mu + c``; ``Z`` holds the
    rows minus ``mu + c`` if ``exact``, else minus ``mu`` (see :func:`_centre`); ``lo`` and
    ``hi`` are the column minima and maxima (for the constant-column rule). The layers are
    first copied side by side into one float64 matrix (float32 values exactly), so every
    later pass runs over one contiguous block.
    """
    return _centred_rows(np.concatenate(arrays, axis=1, dtype=np.float64), exact)


def _centred_rows(Z: np.ndarray, exact: bool = True, check: Any = None) -> tuple:
    """:func:`_centred_block` of rows already side by side in a float64 matrix ``Z``, which
    is centred in place (a staging buffer, see :class:`congruence.streaming.drive.Feed`).
    ``check(lo, hi)``, if given, sees the column extremes (to raise for NaN or inf, which they
    reveal; ``Z`` is then left as it was, so the values can be reported)."""
    Z = np.ascontiguousarray(Z)  # the staging buffer's rows already are
    mu, c, lo, hi = _core.centre_rows(Z, exact)  # lo, hi: NaN for a column with a NaN
    if check is not None:
        check(lo, hi)
    return Z, mu, c, exact or Z.shape[0] == 1, lo, hi


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
        workers: int = 1,
        spare: Optional["_Moments"] = None,
    ):
        """The state of a batch from :func:`_centred_block`'s ``(Z, mu, c, exact, lo, hi)``.

        The means are ``mu + c``; if not ``exact``, ``Z`` still has column means ``c`` and
        the products are corrected by ``- m c c^T`` (biased estimator only). ``workers``
        threads share the products of the layer pairs (the result is the same bits).
        ``spare``: a state of the same layout that is no longer used, whose co-moment
        matrices receive the products (the same values; no new large arrays).
        """
        st = cls.__new__(cls)
        st.layout, st.debiased = layout, debiased
        m = Z.shape[0]
        st.n, st.shift, st.mean = m, mu, c
        st.lo, st.hi = lo, hi
        st._check_spread()
        with np.errstate(over="ignore", invalid="ignore"):  # overflow is checked below
            st._fill(Z, c, exact, m, workers, spare)
        st._check_finite()
        return st

    def _check_spread(self) -> None:
        """ValueError if a layer varies, but so little that the products of its centred
        values fall below float64's normal range (they would lose bits or vanish, and the
        value with them): every column within ``_TINY`` of its mean."""
        spread = self.hi - self.lo
        # the debiased state also sums products of squared row norms (fourth powers)
        tiny = _TINY_DEBIASED if self.debiased else _TINY
        for i in range(self.layout.L):
            s = float(np.max(spread[self.layout.sl(i)]))
            if 0.0 < s < tiny:
                raise underflow_error(s)

    @classmethod
    def blank(cls, layout: _Layout, debiased: bool) -> "_Moments":
        """A spare for :meth:`from_centred`: co-moment matrices of ``layout``, uninitialised,
        each in pages of its own (:func:`congruence._memory.mapped_array`), so that a caller alternating between
        two states keeps the large arrays out of the heap (see
        :class:`congruence.streaming.drive.Feed`)."""
        st = cls.__new__(cls)
        st.layout, st.debiased = layout, debiased
        if layout.full:
            st.caa = mapped_array(layout.P, layout.P)
        else:
            st.selfs = [mapped_array(p, p) for p in layout.widths]
            st.cab = mapped_array(layout.PA, layout.P - layout.PA)
        return st

    def _fill(
        self,
        Z: np.ndarray,
        c: np.ndarray,
        exact: bool,
        m: int,
        workers: int = 1,
        spare: Optional["_Moments"] = None,
    ) -> None:
        st, layout, debiased = self, self.layout, self.debiased
        if layout.full:
            st.caa = Z.T @ Z if spare is None else np.matmul(Z.T, Z, out=spare.caa)
        else:
            # fixed tasks: each layer with itself, and the cross block in row chunks of at
            # most _CHUNK rows (equal sizes); every task is one BLAS call, whoever runs it, so
            # the bits do not depend on ``workers``
            pairs = [(Z[:, layout.sl(i)],) * 2 for i in range(layout.L)]
            zb = Z[:, layout.PA :]
            k = -(-layout.PA // _CHUNK)
            cuts = [layout.PA * i // k for i in range(k + 1)]
            pairs += [(Z[:, cuts[i] : cuts[i + 1]], zb) for i in range(k)]
            outs = None
            if spare is not None:
                outs = list(spare.selfs) + [spare.cab[cuts[i] : cuts[i + 1]] for i in range(k)]
            done = _products(pairs, workers, outs)
            st.selfs = done[: layout.L]
            st.cab = np.concatenate(done[layout.L :], axis=0) if spare is None else spare.cab
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

    def exponents(self) -> list[int]:
        """Per layer, the ``k`` with ``2**(2k)`` about its largest centred sum of squares (the
        largest diagonal entry of its own block; 0 for a constant layer). By Cauchy-Schwarz
        every entry of block ``(i, j)`` is at most ``2**(k_i + k_j)`` in magnitude, so
        :meth:`inner` works on the blocks scaled by ``2**-(k_i + k_j)``: no overflow or
        underflow of the squares at any magnitude of the data, and exact scaling."""
        out = []
        for i in range(self.layout.L):
            d = float(np.max(np.diagonal(self.block(i, i))))
            out.append(math.frexp(d)[1] // 2 if d > 0.0 else 0)
        return out

    def inner(self, i: int, j: int, k: Sequence[int]) -> float:
        """``<HK_iH, HK_jH>`` (biased) or ``<K_iu, K_ju>`` (debiased) on all rows seen, times
        ``2**(-2 (k_i + k_j))`` (``k`` from :meth:`exponents`)."""
        C = np.ldexp(self.block(i, j), -(k[i] + k[j]))
        kl = float(np.einsum("ij,ij->", C, C))
        if not self.debiased:
            return kl
        n = float(self.n)
        si = math.ldexp(float(np.trace(self.block(i, i))), -2 * k[i])
        sj = math.ldexp(float(np.trace(self.block(j, j))), -2 * k[j])
        w = math.ldexp(float(self.W[i, j]), -2 * (k[i] + k[j]))
        return kl - n / (n - 2.0) * w + si * sj / ((n - 1.0) * (n - 2.0))

    def values(self, statistic: str) -> np.ndarray:
        """The matrix of ``statistic`` ("cka" or "hsic") between the compared layers."""
        lay, n = self.layout, float(self.n)
        rows = range(lay.na)
        cols = range(lay.na, lay.L) if lay.cross else range(lay.L)
        k = self.exponents()
        out = np.empty((len(rows), len(cols)))
        for r, i in enumerate(rows):
            for c, j in enumerate(cols):
                if not lay.cross and j < i:
                    out[r, c] = out[c, r]
                else:
                    out[r, c] = self.inner(i, j, k)
        if statistic == "hsic":
            den = n * (n - 3.0) if self.debiased else (n - 1.0) ** 2
            for r, i in enumerate(rows):
                for c, j in enumerate(cols):
                    out[r, c] = scale_back(out[r, c] / den, 2 * (k[i] + k[j]), "hsic")
            return out
        selfs = np.array([self.inner(i, i, k) for i in range(lay.L)])
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


Layers = Union[Mapping[str, Any], Sequence[Any]]


def batch_layers(
    a: Layers, b: Optional[Layers]
) -> tuple[list[str], list[np.ndarray], Optional[list[str]], list[np.ndarray], int]:
    """One batch of every layer: ``(names_a, xa, names_b, xb, m)``, validated.

    Read by the one parser of layer sets (:func:`congruence.results.layer_set`); every array
    is a real matrix (:func:`congruence._validation.as_matrix`, any ``m >= 1``) and all hold
    the same ``m`` rows. ``names_b`` is ``None`` and ``xb`` empty without ``b``.
    """

    def convert(v: Any, label: str) -> np.ndarray:
        return as_matrix(v, label, min_rows=1)

    names_a, xa = layer_set(a, "a", convert, what="(m, p) batches")
    sets = [("a", names_a, xa)]
    names_b: Optional[list[str]] = None
    xb: list[np.ndarray] = []
    if b is not None:
        names_b, xb = layer_set(b, "b", convert, what="(m, p) batches")
        sets.append(("b", names_b, xb))
    m = same_rows(sets, must="every layer of a batch must hold the same inputs (rows)")
    return names_a, xa, names_b, xb, m


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
        state.pop("_spare", None)  # scratch arrays of Feed's accumulator, no state
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
                    f"{label(k)} has zero variance: every row is identical; {statistic} {what}"
                )
    if statistic == "cka":
        bad = np.isnan(values) & ~(np.asarray(rconst)[:, None] | np.asarray(cconst)[None, :])
        for i, j in zip(*np.nonzero(bad)):
            warn_degenerate(
                f"the self-similarity of {rname(rows[i])} or {cname(cols[j])} is not positive "
                f"(the debiased estimator on too few distinct rows); cka is undefined (nan)"
            )
