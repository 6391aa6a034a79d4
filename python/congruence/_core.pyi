"""Type stubs of the compiled module ``congruence._core`` (the Rust core's binding).

Private: use the public functions of :mod:`congruence` instead. Every function here is called
by the package; internals that only the tests call live in the submodule ``_core._testing``,
which this stub leaves out on purpose (see tests/stubtest_allowlist.txt).
"""

from typing import Optional, Sequence

import numpy as np
import numpy.typing as npt

_Array = npt.NDArray[np.float32] | npt.NDArray[np.float64]

# Kernel family (rust/python/src/kernel.rs).
def kernel_pair(
    x: _Array,
    y: _Array,
    kernel: str,
    sigma_frac: float,
    unbiased: bool,
    statistic: str,
    route: str = "auto",
) -> float: ...
def kernel_matrix(
    a: Sequence[_Array],
    b: Optional[Sequence[_Array]],
    kernel: str,
    sigma_frac: float,
    unbiased: bool,
    statistic: str,
    route: str = "auto",
) -> npt.NDArray[np.float64]: ...
def centred_kernel(
    x: _Array, kernel: str, sigma_frac: float, unbiased: bool
) -> Optional[tuple[npt.NDArray[np.float64], int]]: ...
def kernel_permuted(
    k: npt.NDArray[np.float64],
    l: npt.NDArray[np.float64],
    exp: int,
    perms: npt.NDArray[np.int64],
    kernel: str,
    sigma_frac: float,
    unbiased: bool,
    statistic: str,
) -> npt.NDArray[np.float64]: ...

# Representational-similarity-matrix family (rust/python/src/distance.rs).
def distance_difference(x: _Array, y: _Array) -> npt.NDArray[np.float64]: ...
def rsm_fro_diff(x: _Array, y: _Array) -> float: ...
def distance_correlation(x: _Array, y: _Array) -> float: ...

# rsm: "correlation" | "euclidean"; compare: "spearman" | "pearson" | "kendall_tau_a" | "cosine".
def rsa(x: _Array, y: _Array, rsm: str, compare: str) -> float: ...
def rsm_lower(x: _Array, rsm: str) -> Optional[npt.NDArray[np.float64]]: ...
def rsa_prepare(
    x: _Array, rsm: str, compare: str
) -> tuple[int, Optional[npt.NDArray[np.float64]]]: ...
def dcor_prepare(x: _Array) -> Optional[npt.NDArray[np.float64]]: ...
def layer_cross(
    a: Sequence[npt.NDArray[np.float64]], b: Sequence[npt.NDArray[np.float64]], dot: bool
) -> npt.NDArray[np.float64]: ...
def permuted_dots(
    zx: npt.NDArray[np.float64],
    zy: npt.NDArray[np.float64],
    n: int,
    perms: npt.NDArray[np.int64],
) -> npt.NDArray[np.float64]: ...
def kendall_tau_a(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> float: ...

# Neighbourhood family (rust/python/src/neighbors.rs).
def knn(x: _Array, k: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]: ...
def knn_statistic(
    nx: npt.NDArray[np.int64], ny: npt.NDArray[np.int64], statistic: str
) -> float: ...
def second_order_cosine(
    x: _Array, y: _Array, nx: npt.NDArray[np.int64], ny: npt.NDArray[np.int64]
) -> float: ...

# Runtime (rust/python/src/lib.rs): the memory rule and the error raised for a core bug.
# Every function above raises ValueError for bad arguments, MemoryError when its buffers cannot
# fit (pre-flight or a failed allocation), KeyboardInterrupt when Ctrl-C cancels it (main thread
# only), and InternalError for a bug (a Rust panic).
class InternalError(RuntimeError): ...

def memory_budget() -> Optional[int]: ...
def row_means_f32(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]: ...
def centre_rows(
    z: npt.NDArray[np.float64], exact: bool
) -> tuple[
    npt.NDArray[np.float64],
    npt.NDArray[np.float64],
    npt.NDArray[np.float64],
    npt.NDArray[np.float64],
]: ...
def check_fits(nbytes: float, what: str, alternative: str, budget: Optional[int]) -> None: ...
