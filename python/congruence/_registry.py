"""The registry of measures: one record per measure with the metadata of its definition.

The public API (:func:`congruence.compare`, :func:`congruence.compare_layers`), the command
line, the README table and the common tests all read this registry, so a measure is defined
once, with its properties stated next to its code.
"""

from __future__ import annotations

import difflib
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional, Sequence, TypeVar

import numpy as np

from congruence._layers import PerLayer, fill

__all__ = ["Measure", "PerLayer", "register", "get_measure", "list_measures", "INVARIANCES"]

#: The transformations a measure can be invariant to (Klabunde et al. 2025).
INVARIANCES = (
    "orthogonal",
    "isotropic_scaling",
    "invertible_linear",
    "translation",
    "permutation",
)

Props = Callable[[Mapping[str, Any]], Any]
#: A measure function; ``register`` returns it unchanged (its signature stays visible to type
#: checkers).
F = TypeVar("F", bound=Callable[..., float])


@dataclass(frozen=True)
class Measure:
    """A registered measure and the properties its definition guarantees.

    Attributes
    ----------
    name : str
        Canonical name, also the function name ``congruence.<name>``.
    func : callable
        ``func(X, Y, **params) -> float``.
    family : str
        Family in the survey's taxonomy (``"kernel"``, ``"cca"``, ...).
    kind : str
        ``"similarity"`` (larger = more alike), ``"distance"`` (smaller = more alike) or
        ``"dependence"`` (an unnormalised statistic such as HSIC).
    inputs : str
        ``"representations"`` ((n, p) arrays) or ``"outputs"`` (model predictions).
    params : dict
        Keyword parameters and their defaults, read from the function signature.
    min_rows : callable
        ``min_rows(params) -> int``, the smallest admissible ``n``.
    references : tuple of str
    variants : tuple of dict
        Parameter settings the common tests exercise (the defaults come first).
    layers : PerLayer
        The per-layer contract (``prepare``, ``pair``, ``reindex``, ``matrix``; see
        :mod:`congruence._layers`) that layer matrices and permutation tests use; call it
        through :meth:`prepare`, :meth:`pair`, :meth:`reindex` and :meth:`matrix`.
    """

    name: str
    func: Callable[..., float]
    family: str
    kind: str
    summary: str
    inputs: str
    params: Mapping[str, Any]
    references: tuple[str, ...]
    variants: tuple[Mapping[str, Any], ...]
    _symmetric: Props
    _invariances: Props
    _bounds: Props
    _min_rows: Props
    layers: PerLayer = field(default=PerLayer(), compare=False)
    #: True when the measure needs at least as many features as rows (``p >= n``).
    wide: bool = False
    #: Every keyword a caller may pass (parameters with defaults and required ones such as
    #: ``labels``; the data arguments excluded).
    accepts: tuple[str, ...] = ()
    #: False for measures that compare each side separately (to itself, or to the labels), so
    #: that row ``i`` of ``X`` and row ``i`` of ``Y`` need not be the same input: a permutation
    #: test of them has no null to test (:func:`congruence.permutation_test` refuses them).
    paired: bool = True
    #: ``resampling(params) -> str or None``: why rows duplicated by a bootstrap resample bias
    #: the estimate (None: they do not); see :meth:`resampling_bias`.
    _resampling: Props = field(default=lambda params: None, compare=False)

    def __call__(self, *args: Any, **params: Any) -> float:
        return self.func(*args, **params)

    def _full(self, params: Mapping[str, Any]) -> dict[str, Any]:
        unknown = set(params) - set(self.accepts)
        if unknown:
            accepted = ", ".join(self.accepts) or "none"
            raise TypeError(
                f"{self.name}() got unexpected parameter(s) {sorted(unknown)}; accepted: {accepted}"
            )
        return {**self.params, **params}

    def symmetric(self, **params: Any) -> bool:
        """Whether ``f(X, Y) == f(Y, X)`` for these parameters."""
        return bool(self._symmetric(self._full(params)))

    def invariances(self, **params: Any) -> frozenset[str]:
        """The transformations (of :data:`INVARIANCES`) the value is invariant to."""
        return frozenset(self._invariances(self._full(params)))

    def bounds(self, **params: Any) -> tuple[float, float]:
        """The range of values, ``(low, high)``; infinite ends are ``±inf``."""
        return tuple(self._bounds(self._full(params)))  # type: ignore[return-value]

    def min_rows(self, **params: Any) -> int:
        """The smallest number of rows (samples) the measure is defined for."""
        return int(self._min_rows(self._full(params)))

    def resampling_bias(self, **params: Any) -> Optional[str]:
        """Why duplicated rows (as in a bootstrap resample) bias this estimate for these
        parameters, or ``None`` when they do not (:func:`congruence.bootstrap` warns)."""
        reason = self._resampling(self._full(params))
        return None if not reason else str(reason)

    def check_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Complete ``params`` with defaults; raise TypeError for unknown names."""
        return self._full(params)

    # -- the per-layer contract (congruence._layers) ---------------------------------------

    def prepare(self, x: Any, *, name: str = "X", **params: Any) -> Any:
        """What the measure needs of the validated ``(n, p)`` array ``x`` whatever the other
        side is (default: ``x`` itself); ``name`` names ``x`` in messages."""
        if self.layers.prepare is None:
            return x
        return self.layers.prepare(x, name=name, **params)

    def pair(self, prep_x: Any, prep_y: Any, **params: Any) -> float:
        """The value from two preparations: ``pair(prepare(X), prepare(Y)) == func(X, Y)``."""
        if self.layers.pair is None:
            return self.func(prep_x, prep_y, **params)
        return float(self.layers.pair(prep_x, prep_y, **params))

    @property
    def reindexable(self) -> bool:
        """Whether :meth:`reindex` exists (else re-prepare ``x[idx]``)."""
        return self.layers.prepare is None or self.layers.reindex is not None

    def reindex(self, prep: Any, idx: Any, **params: Any) -> Any:
        """``prepare(x[idx])`` from ``prep = prepare(x)``, for row permutations and
        resamples; raises ``NotImplementedError`` when not :attr:`reindexable`."""
        if self.layers.prepare is None:
            return prep[idx]
        if self.layers.reindex is None:
            raise NotImplementedError(f"{self.name} declares no reindex; prepare x[idx] instead")
        return self.layers.reindex(prep, idx, **params)

    def permuted(
        self, prep_x: Any, prep_y: Any, perms: Any, *, y: Any = None, **params: Any
    ) -> np.ndarray:
        """``values[k] = pair(prep_x, reindex(prep_y, perms[k]))`` for the ``(N, n)`` row
        permutations ``perms``, by the measure's fast path if it has one. A measure without
        one that is not :attr:`reindexable` prepares ``y[perms[k]]`` afresh: pass the
        validated array ``y`` (``prep_y``'s source) then."""
        if self.layers.permuted is not None:
            return self.layers.permuted(prep_x, prep_y, perms, **params)
        if not self.reindexable:
            if y is None:
                raise ValueError(f"{self.name}: permuted() needs y (it declares no reindex)")
            return np.array(
                [
                    self.pair(prep_x, self.prepare(y[idx], name="Y", **params), **params)
                    for idx in perms
                ],
                dtype=np.float64,
            )
        return np.array(
            [self.pair(prep_x, self.reindex(prep_y, idx, **params), **params) for idx in perms],
            dtype=np.float64,
        )

    def matrix(self, preps_a: Sequence[Any], preps_b: Optional[Sequence[Any]], **params: Any):
        """The layer matrix from preparations (``preps_b=None``: ``a`` with itself), by the
        measure's whole-matrix route if it has one, else one :meth:`pair` per cell."""
        if self.layers.matrix is not None:
            return self.layers.matrix(preps_a, preps_b, **params)
        return fill(
            preps_a,
            preps_b,
            lambda u, v: self.pair(u, v, **params),
            symmetric=self.symmetric(**params),
        )


_REGISTRY: dict[str, Measure] = {}


def _as_props(value: Any) -> Props:
    return value if callable(value) else (lambda params, _v=value: _v)


def register(
    *,
    family: str,
    kind: str,
    summary: str,
    references: Sequence[str],
    symmetric: Any = True,
    invariances: Any = (),
    bounds: Any = (float("-inf"), float("inf")),
    min_rows: Any = 2,
    inputs: str = "representations",
    variants: Sequence[Mapping[str, Any]] = ({},),
    wide: bool = False,
    prepare: Optional[Callable[..., Any]] = None,
    pair: Optional[Callable[..., float]] = None,
    reindex: Optional[Callable[..., Any]] = None,
    matrix: Optional[Callable[..., Any]] = None,
    permuted: Optional[Callable[..., Any]] = None,
    paired: bool = True,
    resampling: Any = None,
) -> Callable[[F], F]:
    """Decorator that records a measure function and its metadata in the registry.

    ``symmetric``, ``invariances``, ``bounds`` and ``min_rows`` are constants or callables of
    the (default-completed) parameter dict, for properties that depend on parameters.
    ``wide=True`` marks measures defined only for ``p >= n`` (so generic tests use wide data).
    ``prepare``, ``pair``, ``reindex``, ``matrix`` and ``permuted`` declare the per-layer
    contract (:mod:`congruence._layers`); a custom ``prepare`` needs its ``pair``.
    ``paired=False`` marks measures that compare each side separately (no permutation test);
    ``resampling`` is ``None``, a reason string, or a callable of the parameters returning
    the reason (or None) why rows duplicated by a bootstrap resample bias the estimate.
    """
    if prepare is not None and pair is None:
        raise ValueError("a measure with its own prepare must declare its pair")
    if reindex is not None and prepare is None:
        raise ValueError("reindex needs the prepare it reindexes")
    if kind not in ("similarity", "distance", "dependence"):
        raise ValueError(f"kind={kind!r}")
    if inputs not in ("representations", "outputs"):
        raise ValueError(f"inputs={inputs!r}")

    def decorate(func: F) -> F:
        sig = inspect.signature(func)
        params = {
            p.name: p.default
            for p in sig.parameters.values()
            if p.kind == p.KEYWORD_ONLY or (p.default is not p.empty)
        }
        if not callable(invariances):
            bad = set(invariances) - set(INVARIANCES)
            if bad:
                raise ValueError(f"unknown invariances {bad} for {func.__name__}")
        measure = Measure(
            name=func.__name__,
            func=func,
            family=family,
            kind=kind,
            summary=summary,
            inputs=inputs,
            params=params,
            references=tuple(references),
            variants=tuple(dict(v) for v in variants),
            _symmetric=_as_props(symmetric),
            _invariances=_as_props(invariances),
            _bounds=_as_props(bounds),
            _min_rows=_as_props(min_rows),
            wide=wide,
            paired=bool(paired),
            _resampling=_as_props(resampling),
            layers=PerLayer(
                prepare=prepare, pair=pair, reindex=reindex, matrix=matrix, permuted=permuted
            ),
            accepts=tuple(
                p.name
                for i, p in enumerate(sig.parameters.values())
                if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
                and (i >= 2 or p.default is not p.empty or p.kind == p.KEYWORD_ONLY)
            ),
        )
        if measure.name in _REGISTRY:
            raise ValueError(f"measure {measure.name!r} is registered twice")
        _REGISTRY[measure.name] = measure
        func.measure = measure  # type: ignore[attr-defined]
        return func

    return decorate


def get_measure(name: str) -> Measure:
    """Return the registered :class:`Measure` called ``name``.

    Raises
    ------
    ValueError
        For an unknown name, suggesting the closest registered names.
    """
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        pass
    close = difflib.get_close_matches(str(name), list(_REGISTRY), n=3, cutoff=0.5)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(f"unknown measure {name!r}.{hint} Available: {', '.join(sorted(_REGISTRY))}")


def list_measures(family: Optional[str] = None, inputs: Optional[str] = None) -> list[str]:
    """Names of the registered measures, optionally filtered by family or input kind."""
    return sorted(
        m.name
        for m in _REGISTRY.values()
        if (family is None or m.family == family) and (inputs is None or m.inputs == inputs)
    )


def measures() -> list[Measure]:
    """All registered measures, sorted by family then name."""
    return sorted(_REGISTRY.values(), key=lambda m: (m.family, m.name))
