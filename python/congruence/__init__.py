"""congruence: similarity of neural-network representations and outputs.

Every measure of the literature, exact to the papers' definitions, with the
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
from congruence.distributed import dask_compare_layers
from congruence.errors import (
    DegenerateDataWarning,
    InputTypeError,
    LayerNotFoundError,
    ParameterError,
    ResamplingBiasWarning,
    UnreadableFileError,
)
from congruence.inference import BootstrapResult, PermutationTest, bootstrap, permutation_test
from congruence.io import open_layers
from congruence.measures.alignment import (
    aligned_cosine,
    angular_shape_metric,
    correlation_match,
    linear_regression,
    orthogonal_procrustes,
    permutation_procrustes,
    procrustes_size_and_shape,
)
from congruence.measures.cca import cca, pwcca, svcca
from congruence.measures.descriptive import concentricity_diff, magnitude_diff, uniformity_diff
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
from congruence.measures.neighbors import (
    joint_rank_jaccard,
    knn_jaccard,
    mutual_knn,
    rank_similarity,
    second_order_cosine,
)
from congruence.measures.rsm import (
    distance_correlation,
    eigenspace_overlap,
    gulp,
    normalized_bures,
    riemannian_distance,
    rsa,
    rsm_norm_diff,
)
from congruence.measures.topology import geometry_score, imd, rtd
from congruence.models import compare_models
from congruence.pooling import pool
from congruence.report import report
from congruence.results import LayerComparison, load_result
from congruence.streaming import (
    CKAAccumulator,
    HSICAccumulator,
    LayerAccumulator,
    MinibatchCKA,
    minibatch_cka,
    stream_layers,
)
from congruence.torch import extract

try:
    __version__ = version("congruence")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

__all__ = [
    "BootstrapResult",
    "CKAAccumulator",
    "PermutationTest",
    "ResamplingBiasWarning",
    "DegenerateDataWarning",
    "InputTypeError",
    "LayerNotFoundError",
    "ParameterError",
    "UnreadableFileError",
    "HSICAccumulator",
    "LayerAccumulator",
    "LayerComparison",
    "Measure",
    "MinibatchCKA",
    "accuracy_diff",
    "aligned_cosine",
    "angular_shape_metric",
    "bootstrap",
    "cca",
    "cka",
    "cohens_kappa",
    "compare",
    "compare_layers",
    "compare_models",
    "concentricity_diff",
    "correlation_match",
    "dask_compare_layers",
    "disagreement",
    "distance_correlation",
    "eigenspace_overlap",
    "error_corrected_disagreement",
    "extract",
    "fleiss_kappa",
    "geometry_score",
    "get_measure",
    "gulp",
    "hsic",
    "imd",
    "joint_rank_jaccard",
    "jsd",
    "knn_jaccard",
    "linear_regression",
    "list_measures",
    "load_result",
    "magnitude_diff",
    "minibatch_cka",
    "mutual_knn",
    "normalized_bures",
    "open_layers",
    "orthogonal_procrustes",
    "permutation_procrustes",
    "permutation_test",
    "pool",
    "prediction_difference",
    "procrustes_size_and_shape",
    "pwcca",
    "rank_similarity",
    "report",
    "riemannian_distance",
    "rsa",
    "rsm_norm_diff",
    "rtd",
    "second_order_cosine",
    "stream_layers",
    "surrogate_churn",
    "svcca",
    "uniformity_diff",
]
