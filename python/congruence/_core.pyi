"""Type stubs of the compiled module ``congruence._core`` (the Rust core's binding).

Private: use the public functions of :mod:`congruence` instead.
"""

from typing import Optional, Sequence

import numpy as np
import numpy.typing as npt

_Array = npt.NDArray[np.float32] | npt.NDArray[np.float64]

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
