"""congruence: similarity of neural-network representations and outputs.

Every measure of the literature, exact to the papers' definitions (see MEASURES.md), with the
O(n^2) and O(n p^2) work in a Rust core.

>>> import numpy as np, congruence as cg
>>> X = np.random.default_rng(0).standard_normal((100, 10))
>>> round(cg.cka(X, 2 * X), 12)
1.0
"""

from importlib.metadata import PackageNotFoundError, version

from congruence import measures as _measures  # noqa: F401  (registers every measure)
from congruence._registry import Measure, get_measure, list_measures
from congruence.compare import compare, compare_layers
from congruence.measures.functional import (
    accuracy_diff,
    cohens_kappa,
    disagreement,
    error_corrected_disagreement,
    fleiss_kappa,
    jsd,
    prediction_difference,
    surrogate_churn,
)
from congruence.measures.kernel import cka, hsic
from congruence.results import LayerComparison

try:
    __version__ = version("congruence")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

__all__ = [
    "LayerComparison",
    "Measure",
    "accuracy_diff",
    "cka",
    "cohens_kappa",
    "compare",
    "compare_layers",
    "disagreement",
    "error_corrected_disagreement",
    "fleiss_kappa",
    "get_measure",
    "hsic",
    "jsd",
    "list_measures",
    "prediction_difference",
    "surrogate_churn",
]
