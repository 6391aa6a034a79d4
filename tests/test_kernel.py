"""Tests of the kernel measures ``congruence.cka`` and ``congruence.hsic`` (docs: kernel page).

The values are checked against the slow references of ``tests/reference.py`` (written from the
specification alone), against the published numbers of Kornblith et al. (2019), and for the
engineering promises of the package: both linear routes agree, float32 is computed accurately,
results do not depend on the thread count or on the memory layout / container of the input,
and the interpreter is released during the computation.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import congruence as cg
from congruence import DegenerateDataWarning, _core

sys.path.insert(0, os.path.dirname(__file__))
from reference import ref_cka, ref_hsic  # noqa: E402

RTOL = 1e-10


def _pair(n, p1, p2, seed=0, dtype=np.float64):
    """X (n, p1) and a Y (n, p2) that depends on X (so HSIC is well away from 0)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p1))
    W = rng.standard_normal((p1, p2))
    Y = np.tanh(X @ W / np.sqrt(p1)) + 0.5 * rng.standard_normal((n, p2)) + 3.0
    return X.astype(dtype), Y.astype(dtype)


def _assert_rel(got, want, rtol, what=""):
    assert isinstance(got, float), f"{what}: returned {type(got).__name__}, not float"
    assert np.isfinite(want), f"{what}: reference is {want}"
    err = abs(got - want)
    assert err <= rtol * abs(want), (
        f"{what}: got {got!r}, want {want!r}, rel err {err / abs(want):.3g}"
    )


# ---------------------------------------------------------------------------------------------
# (1) agreement with the references
# ---------------------------------------------------------------------------------------------

SHAPES = [
    (2, 3, 1),  # smallest n for the biased estimators
    (3, 1, 2),
    (4, 2, 3),  # smallest n for the debiased / unbiased estimators
    (5, 1, 1),
    (7, 4, 4),
    (10, 3, 7),  # p1 != p2
    (30, 50, 20),  # p > n on both sides (the linear kernel takes the Gram route)
    (25, 2, 60),  # p2 > n only
    (61, 5, 9),  # odd n (n^2 odd: the median is one entry)
    (120, 12, 6),
]
KERNELS = [("linear", 1.0), ("rbf", 1.0), ("rbf", 0.5), ("rbf", 2.5)]


# The unbiased estimators need n >= 4 (the error for smaller n is tested in test_validation.py).
REF_CASES = [
    pytest.param(
        shape,
        kernel,
        sigma_frac,
        flag,
        id=f"n{shape[0]}-p{shape[1]}-p{shape[2]}-{kernel}{sigma_frac}-{'unbiased' if flag else 'biased'}",
    )
    for shape in SHAPES
    for kernel, sigma_frac in KERNELS
    for flag in (False, True)
    if not (flag and shape[0] < 4)
]


@pytest.mark.parametrize("shape,kernel,sigma_frac,flag", REF_CASES)
def test_matches_reference(shape, kernel, sigma_frac, flag):
    n, p1, p2 = shape
    X, Y = _pair(n, p1, p2, seed=n * 1000 + p1 * 10 + p2)
    got_cka = cg.cka(X, Y, kernel=kernel, sigma_frac=sigma_frac, debiased=flag)
    want_cka = ref_cka(X, Y, kernel=kernel, sigma_frac=sigma_frac, debiased=flag)
    _assert_rel(got_cka, want_cka, RTOL, "cka")
    got_hsic = cg.hsic(X, Y, kernel=kernel, sigma_frac=sigma_frac, unbiased=flag)
    want_hsic = ref_hsic(X, Y, kernel=kernel, sigma_frac=sigma_frac, unbiased=flag)
    _assert_rel(got_hsic, want_hsic, RTOL, "hsic")


def test_n2_biased_values():
    # With two rows every non-constant linear representation has CKA 1.
    X = np.array([[0.0, 1.0], [2.0, -1.0]])
    Y = np.array([[5.0], [3.0]])
    assert cg.cka(X, Y) == pytest.approx(1.0, rel=1e-14)
    assert cg.cka(X, Y, kernel="rbf") == pytest.approx(ref_cka(X, Y, kernel="rbf"), rel=RTOL)
    # tr(K H L H) / (n-1)^2 = <Xc^T Yc>^2 with n - 1 = 1
    assert cg.hsic(X, Y) == pytest.approx(ref_hsic(X, Y), rel=RTOL)


@pytest.mark.parametrize("sigma_frac", [1e-20, 1e-155, 1e-160, 1e-200, 1e-300, 1e-320])
def test_rbf_tiny_bandwidth_is_the_identity_kernel(sigma_frac):
    # As sigma -> 0, exp(-d^2 / (2 sigma^2)) is 1 on the diagonal and 0 between distinct
    # rows: K = L = I. Then HKH = H, so biased CKA = 1 and HSIC = tr(H H) / (n-1)^2 = 1/(n-1).
    # Below sigma_frac ~ 1e-154, 1 / (2 sigma^2) overflows float64 (it once gave nan with a
    # warning); at 1e-20 the off-diagonal entries are exp(-1e40 ...) = 0 in float64 anyway.
    X, Y = _pair(30, 5, 4, seed=7)
    assert cg.cka(X, Y, kernel="rbf", sigma_frac=sigma_frac) == pytest.approx(1.0, rel=1e-13)
    assert cg.hsic(X, Y, kernel="rbf", sigma_frac=sigma_frac) == pytest.approx(1 / 29, rel=1e-13)
    # The debiased estimators zero the diagonal: the U-centred identity kernel is 0, so
    # debiased CKA is 0 / 0 (nan, with its warning) and unbiased HSIC is 0.
    with pytest.warns(DegenerateDataWarning, match="U-centred kernel matrix is zero"):
        assert np.isnan(cg.cka(X, Y, kernel="rbf", sigma_frac=sigma_frac, debiased=True))
    assert abs(cg.hsic(X, Y, kernel="rbf", sigma_frac=sigma_frac, unbiased=True)) < 1e-15


def test_rbf_small_bandwidth_matches_reference():
    # Exponents of order -100 to -1000 (some entries underflow, most do not) against the
    # formula in NumPy.
    X, Y = _pair(40, 6, 3, seed=11)
    for s in (0.05, 0.02):
        _assert_rel(cg.cka(X, Y, kernel="rbf", sigma_frac=s), ref_cka(X, Y, "rbf", s), RTOL)
        _assert_rel(cg.hsic(X, Y, kernel="rbf", sigma_frac=s), ref_hsic(X, Y, "rbf", s), RTOL)


@pytest.mark.parametrize("flag", [False, True])
def test_rbf_median_with_ties_exactly_half_zero(flag):
    # Rows a, a, b, b: 8 of the 16 entries of D2 are 0, the other 8 equal d, so the median
    # is the mean of the two middle values, d / 2 (not 0: the value is defined).
    X = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 2.0], [1.0, 2.0]])
    Y = np.array([[0.0], [1.0], [3.0], [7.0]])
    if not flag:
        _assert_rel(cg.cka(X, Y, kernel="rbf"), ref_cka(X, Y, kernel="rbf"), RTOL, "cka")
    _assert_rel(
        cg.hsic(X, Y, kernel="rbf", unbiased=flag),
        ref_hsic(X, Y, kernel="rbf", unbiased=flag),
        RTOL,
        "hsic",
    )


@pytest.mark.parametrize("n", [40, 41])
def test_rbf_median_with_many_ties(n):
    # Integer grid data: few distinct squared distances, so the median sits inside long runs
    # of equal values; the diagonal zeros must be counted.
    rng = np.random.default_rng(n)
    X = rng.integers(0, 3, size=(n, 2)).astype(float)
    Y = rng.integers(0, 4, size=(n, 3)).astype(float) + X[:, :1]
    for flag in (False, True):
        _assert_rel(
            cg.cka(X, Y, kernel="rbf", debiased=flag),
            ref_cka(X, Y, kernel="rbf", debiased=flag),
            RTOL,
            f"cka debiased={flag}",
        )
        _assert_rel(
            cg.hsic(X, Y, kernel="rbf", sigma_frac=0.3, unbiased=flag),
            ref_hsic(X, Y, kernel="rbf", sigma_frac=0.3, unbiased=flag),
            RTOL,
            f"hsic unbiased={flag}",
        )


@pytest.mark.parametrize("data", ["continuous", "grid"])
def test_rbf_large_n_median(data):
    # n = 1500: more than 2^20 distinct pairs, beyond the in-memory selection of the core.
    n = 1500
    rng = np.random.default_rng(7)
    if data == "continuous":
        X = rng.standard_normal((n, 4))
        Y = X[:, :2] ** 2 + rng.standard_normal((n, 2))
    else:
        X = rng.integers(0, 4, size=(n, 3)).astype(float)
        Y = rng.integers(0, 3, size=(n, 2)).astype(float) + X[:, :2]
    _assert_rel(cg.cka(X, Y, kernel="rbf"), ref_cka(X, Y, kernel="rbf"), RTOL, "cka")


# ---------------------------------------------------------------------------------------------
# (2) published values (Kornblith et al. 2019, the CKA demo notebook)
# ---------------------------------------------------------------------------------------------


def _kornblith_data():
    np.random.seed(1337)
    X = np.random.randn(100, 10)
    Y = X + np.random.randn(100, 10)
    return X, Y


def test_kornblith_notebook_values():
    X, Y = _kornblith_data()
    assert round(cg.cka(X, Y), 5) == 0.55761
    assert round(cg.cka(X, Y, kernel="rbf", sigma_frac=0.5), 5) == 0.65483
    assert round(cg.cka(X, Y, debiased=True), 5) == 0.51346


# ---------------------------------------------------------------------------------------------
# (3) the two linear routes agree
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("statistic", ["cka", "hsic"])
@pytest.mark.parametrize("unbiased", [False, True])
@pytest.mark.parametrize("shape", [(6, 2, 3), (50, 5, 8), (30, 60, 40), (300, 20, 20)])
def test_feature_and_gram_routes_agree(shape, unbiased, statistic):
    X, Y = _pair(*shape, seed=sum(shape))
    vals = {
        route: _core.kernel_pair(X, Y, "linear", 1.0, unbiased, statistic, route)
        for route in ("features", "gram", "auto")
    }
    f, g = vals["features"], vals["gram"]
    assert abs(f - g) <= 1e-12 * abs(g), vals
    assert vals["auto"] in (f, g)
    ref = (ref_cka if statistic == "cka" else ref_hsic)(X, Y, "linear", 1.0, unbiased)
    _assert_rel(float(f), ref, RTOL, "features route vs reference")


# ---------------------------------------------------------------------------------------------
# (4) float32 input
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kernel", ["linear", "rbf"])
@pytest.mark.parametrize("flag", [False, True])
@pytest.mark.parametrize("shape", [(200, 16, 8), (60, 90, 70)])
def test_float32_matches_float64_of_same_values(shape, kernel, flag):
    X32, Y32 = _pair(*shape, seed=3, dtype=np.float32)
    X64, Y64 = X32.astype(np.float64), Y32.astype(np.float64)
    for f, name in ((cg.cka, "debiased"), (cg.hsic, "unbiased")):
        got = f(X32, Y32, kernel=kernel, **{name: flag})
        want = f(X64, Y64, kernel=kernel, **{name: flag})
        _assert_rel(got, want, 1e-6, f"{f.__name__} float32")
        # mixed precisions
        _assert_rel(f(X32, Y64, kernel=kernel, **{name: flag}), want, 1e-6, "mixed")


@pytest.mark.parametrize("kernel", ["linear", "rbf"])
@pytest.mark.parametrize("debiased", [False, True])
def test_float32_large_offset(kernel, debiased):
    # A column offset of 1e4 must not destroy float32 accuracy (centring in float64).
    rng = np.random.default_rng(11)
    n = 1000 if kernel == "linear" else 600
    X32 = rng.standard_normal((n, 64)).astype(np.float32)
    Y32 = (X32[:, :32] + rng.standard_normal((n, 32))).astype(np.float32)
    Xoff = X32 + np.float32(1e4)
    base = cg.cka(X32, Y32, kernel=kernel, debiased=debiased)
    shifted = cg.cka(Xoff, Y32, kernel=kernel, debiased=debiased)
    # The offset data themselves are rounded (ulp(1e4) ~ 1e-3 in float32); check that this
    # rounding alone moves the exact value by much less than the tolerance, so that the test
    # measures the implementation and not the data.
    exact_base = ref_cka(X32, Y32, kernel=kernel, debiased=debiased)
    exact_shifted = ref_cka(Xoff, Y32, kernel=kernel, debiased=debiased)
    assert abs(exact_shifted - exact_base) < 3e-6
    assert abs(shifted - base) <= 1e-5, (base, shifted)
    assert abs(shifted - exact_shifted) <= 1e-6, (shifted, exact_shifted)


# ---------------------------------------------------------------------------------------------
# (5) results do not depend on the number of threads
# ---------------------------------------------------------------------------------------------

_THREAD_SCRIPT = textwrap.dedent(
    """
    import json, numpy as np, congruence as cg
    from congruence import _core
    rng = np.random.default_rng(2024)
    out = []
    X = rng.standard_normal((3000, 300)); Y = X[:, :200] @ rng.standard_normal((200, 250)) + rng.standard_normal((3000, 250))
    for unb in (False, True):
        for stat in ("cka", "hsic"):
            out.append(_core.kernel_pair(X, Y, "linear", 1.0, unb, stat, "features"))
    out.append(cg.cka(X, Y)); out.append(cg.hsic(X, Y, unbiased=True))
    Xg = rng.standard_normal((1200, 40)); Yg = np.sin(Xg[:, :30]) + rng.standard_normal((1200, 30))
    for unb in (False, True):
        for stat in ("cka", "hsic"):
            out.append(_core.kernel_pair(Xg, Yg, "linear", 1.0, unb, stat, "gram"))
    Xr = rng.standard_normal((700, 20)); Yr = Xr[:, :5] ** 2 + rng.standard_normal((700, 5))
    for flag in (False, True):
        out.append(cg.cka(Xr, Yr, kernel="rbf", debiased=flag))
        out.append(cg.hsic(Xr, Yr, kernel="rbf", sigma_frac=0.7, unbiased=flag))
    mats = [rng.standard_normal((500, p)) for p in (10, 600, 30)]
    out.extend(cg.compare_layers(mats, measure="cka").values.ravel().tolist())
    print(json.dumps([repr(float(v)) for v in out]))
    """
)


def _run_with_threads(k):
    env = dict(os.environ, RAYON_NUM_THREADS=str(k))
    res = subprocess.run(
        [sys.executable, "-c", _THREAD_SCRIPT], env=env, capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_thread_count_does_not_change_results():
    one = _run_with_threads(1)
    two = _run_with_threads(2)
    assert len(one) == len(two) > 10
    diffs = [(i, a, b) for i, (a, b) in enumerate(zip(one, two)) if a != b]
    assert not diffs, (
        f"results differ between 1 and 2 threads (index, 1 thread, 2 threads): {diffs}"
    )
    assert all(v != "nan" for v in one)


# ---------------------------------------------------------------------------------------------
# (6) undefined values give nan
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0.0, 0.1, 1.0 / 3.0, -7.25, 1e4 + 0.1])
@pytest.mark.parametrize("n", [5, 101])
def test_constant_representation_gives_nan(value, n):
    rng = np.random.default_rng(n)
    C = np.full((n, 3), value)
    Y = rng.standard_normal((n, 2))
    for kw in ({}, {"kernel": "rbf"}, {"debiased": True}, {"kernel": "rbf", "debiased": True}):
        with pytest.warns(DegenerateDataWarning, match=r"^X has zero variance.*cka is undefined"):
            assert np.isnan(cg.cka(C, Y, **kw)), kw
        with pytest.warns(DegenerateDataWarning, match=r"^Y has zero variance.*cka is undefined"):
            assert np.isnan(cg.cka(Y, C, **kw)), kw
        with pytest.warns(DegenerateDataWarning, match=r"^X has zero variance.*cka is undefined"):
            assert np.isnan(cg.cka(C.astype(np.float32), Y, **kw)), kw
    # HSIC of a constant representation is defined (0) for the linear kernel, with a warning ...
    with pytest.warns(DegenerateDataWarning, match=r"^X has zero variance.*hsic is 0$"):
        assert cg.hsic(C, Y) == 0.0
    with pytest.warns(DegenerateDataWarning, match=r"^X has zero variance.*hsic is 0$"):
        assert cg.hsic(C, Y, unbiased=True) == 0.0
    # ... and undefined for the RBF kernel (the median distance is 0).
    with pytest.warns(DegenerateDataWarning, match=r"^X has zero variance.*hsic is undefined"):
        assert np.isnan(cg.hsic(C, Y, kernel="rbf"))


def test_constant_columns_mixed_with_varying_columns_are_fine():
    rng = np.random.default_rng(5)
    X = np.column_stack([rng.standard_normal(30), np.full(30, 0.1), rng.standard_normal(30)])
    Y = X[:, [0]] + rng.standard_normal((30, 1))
    _assert_rel(cg.cka(X, Y), ref_cka(X, Y), RTOL, "cka")


@pytest.mark.parametrize("flag", [False, True])
def test_duplicated_rows_rbf_median_zero_gives_nan(flag):
    rng = np.random.default_rng(1)
    # 5 identical rows out of 6: 6 + 20 = 26 of the 36 squared distances are 0 -> median 0.
    X = np.vstack([np.tile([[1.0, 2.0, 3.0]], (5, 1)), [[0.0, 0.0, 1.0]]])
    Y = rng.standard_normal((6, 2))
    median_x = r"^X has duplicated rows.*\(their median\) is 0"
    median_y = r"^Y has duplicated rows.*\(their median\) is 0"
    with pytest.warns(DegenerateDataWarning, match=median_x):
        assert np.isnan(cg.cka(X, Y, kernel="rbf", debiased=flag))
    with pytest.warns(DegenerateDataWarning, match=median_y):
        assert np.isnan(cg.cka(Y, X, kernel="rbf", debiased=flag))
    with pytest.warns(DegenerateDataWarning, match=median_x):
        assert np.isnan(cg.hsic(X, Y, kernel="rbf", unbiased=flag))
    with pytest.warns(DegenerateDataWarning, match=median_y):
        assert np.isnan(cg.hsic(Y, X, kernel="rbf", unbiased=flag))
    # The biased linear CKA is defined on the same data. (The debiased one is not: with all
    # but one row identical the U-centred linear Gram matrix is exactly zero.)
    if not flag:
        _assert_rel(cg.cka(X, Y), ref_cka(X, Y), RTOL, "linear cka")


def test_undefined_layer_in_layer_matrix_gives_nan():
    # A layer whose RBF median distance is 0 makes its row and column nan, wherever it sits.
    rng = np.random.default_rng(2)
    C = np.ones((8, 3))
    Y = rng.standard_normal((8, 2))
    for layers in ([C, Y], [Y, C]):
        i = [k for k, a in enumerate(layers) if a is C][0]
        with pytest.warns(DegenerateDataWarning, match=rf"^layer a\['{i}'\] has zero variance"):
            v = cg.compare_layers(layers, measure="cka", kernel="rbf").values
        assert np.isnan(v[i]).all() and np.isnan(v[:, i]).all()
        assert v[1 - i, 1 - i] == pytest.approx(1.0, rel=1e-12)
    # C is layer a['0'] and layer b['1'] here: one warning for each.
    with pytest.warns(DegenerateDataWarning, match=r"^layer a\['0'\] has zero variance"):
        with pytest.warns(DegenerateDataWarning, match=r"^layer b\['1'\] has zero variance"):
            v = cg.compare_layers([C], [Y, C], measure="hsic", kernel="rbf").values
    assert np.isnan(v).all()


# ---------------------------------------------------------------------------------------------
# (7) input forms
# ---------------------------------------------------------------------------------------------


class ArrayOnly:
    """Exposes only ``__array__``."""

    def __init__(self, a):
        self._a = a

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self._a, dtype=dtype)


class DLPackOnly:
    """Exposes only ``__dlpack__`` / ``__dlpack_device__`` (wrapping a numpy array)."""

    def __init__(self, a):
        self._a = a

    def __dlpack__(self, *args, **kwargs):
        return self._a.__dlpack__(*args, **kwargs)

    def __dlpack_device__(self):
        return self._a.__dlpack_device__()


class FakeGradTensor:
    """Mimics a torch tensor with ``requires_grad=True``: only ``detach()`` gives the data."""

    requires_grad = True

    def __init__(self, a):
        self._a = a
        self.detached = 0

    def detach(self):
        self.detached += 1
        return DLPackOnly(self._a)

    def __array__(self, *args, **kwargs):
        raise RuntimeError(
            "Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() instead."
        )

    def __dlpack__(self, *args, **kwargs):
        raise RuntimeError("Can't export tensors that require gradient, use tensor.detach()")

    def __dlpack_device__(self):
        return (1, 0)


_MEASURE_CALLS = [
    ("cka", {}),
    ("cka", {"kernel": "rbf", "debiased": True}),
    ("hsic", {"unbiased": True}),
    ("hsic", {"kernel": "rbf", "sigma_frac": 0.5}),
]


def _calls(X, Y):
    return [repr(getattr(cg, name)(X, Y, **kw)) for name, kw in _MEASURE_CALLS]


@pytest.fixture(scope="module")
def base_data():
    rng = np.random.default_rng(42)
    X = rng.standard_normal((40, 9))
    Y = np.cos(X[:, :4]) + 0.3 * rng.standard_normal((40, 4))
    return X, Y


FORMS = {
    "fortran": np.asfortranarray,
    "negative_strides": lambda a: np.ascontiguousarray(a[::-1, ::-1])[::-1, ::-1],
    "nested_list": lambda a: a.tolist(),
    "big_endian": lambda a: a.astype(">f8"),
    "array_only": ArrayOnly,
    "dlpack_only": DLPackOnly,
    "fake_grad_tensor": FakeGradTensor,
}


@pytest.mark.parametrize("form", list(FORMS))
def test_input_forms_identical(base_data, form):
    X, Y = base_data
    want = _calls(X, Y)
    conv = FORMS[form]
    assert _calls(conv(X), conv(Y)) == want
    assert _calls(conv(X), Y) == want
    assert _calls(X, conv(Y)) == want


def test_strided_view_identical(base_data):
    rng = np.random.default_rng(3)
    big = rng.standard_normal((80, 27))
    bigY = rng.standard_normal((80, 12)) + big[:, :12]
    X, Y = big[::2, ::3], bigY[::2, ::3]
    assert not X.flags.c_contiguous and not X.flags.f_contiguous
    assert _calls(X, Y) == _calls(np.ascontiguousarray(X), np.ascontiguousarray(Y))
    # negative strides of a view of a larger array
    Xn, Yn = big[::-2, ::-3], bigY[::-2, ::-3]
    assert _calls(Xn, Yn) == _calls(np.ascontiguousarray(Xn), np.ascontiguousarray(Yn))


@pytest.mark.parametrize("order", ["C", "F"])
def test_readonly_memmap_identical(base_data, tmp_path, order):
    X, Y = base_data
    path = tmp_path / "x.npy"
    np.save(path, np.asarray(X, order=order))
    Xm = np.load(path, mmap_mode="r")
    assert isinstance(Xm, np.memmap) and not Xm.flags.writeable
    assert _calls(Xm, Y) == _calls(X, Y)
    assert _calls(Y, Xm) == _calls(Y, X)


def test_float32_views_are_read_in_place(base_data):
    X, Y = base_data
    X32 = X.astype(np.float32)
    want = _calls(X32, Y)
    assert _calls(np.asfortranarray(X32), Y) == want
    big = np.zeros((80, 18), dtype=np.float32)
    big[::2, ::2] = X32
    assert _calls(big[::2, ::2], Y) == want


def test_integer_and_bool_dtypes():
    rng = np.random.default_rng(9)
    Xi = rng.integers(-5, 6, size=(30, 4))
    Yb = rng.random((30, 3)) < 0.4
    Yb[0] = True  # no constant column issues either way
    want = _calls(Xi.astype(np.float64), Yb.astype(np.float64))
    for xi in (Xi, Xi.astype(np.int8), Xi.astype(np.int32), Xi.astype(np.uint16) + 5):
        exp = want if xi.dtype.kind == "i" else _calls(xi.astype(np.float64), Yb.astype(np.float64))
        assert _calls(xi, Yb) == exp
    assert _calls(Xi.tolist(), Yb.tolist()) == want


def test_inputs_are_not_modified(base_data):
    X, Y = base_data
    X0, Y0 = X.copy(), Y.copy()
    _calls(X, Y)
    for name, kw in _MEASURE_CALLS:
        getattr(cg, name)(X, Y, **kw)
    np.testing.assert_array_equal(X, X0)
    np.testing.assert_array_equal(Y, Y0)


def test_fake_grad_tensor_is_detached(base_data):
    X, Y = base_data
    t = FakeGradTensor(X)
    assert repr(cg.cka(t, Y)) == repr(cg.cka(X, Y))
    assert t.detached >= 1


def test_real_torch_tensor_requiring_grad(base_data):
    torch = pytest.importorskip("torch")
    X, Y = base_data
    tx = torch.tensor(X, requires_grad=True)
    ty = torch.tensor(Y)
    assert _calls(tx, ty) == _calls(X, Y)
    t32 = torch.tensor(X.astype(np.float32), requires_grad=True)
    assert _calls(t32, Y) == _calls(X.astype(np.float32), Y)


# ---------------------------------------------------------------------------------------------
# (8) the interpreter is released
# ---------------------------------------------------------------------------------------------


def test_concurrent_calls_from_threads():
    rng = np.random.default_rng(8)
    data = []
    for k in range(2):
        X = rng.standard_normal((4000, 512))
        Y = X[:, : 256 + k] @ rng.standard_normal((256 + k, 300)) + rng.standard_normal((4000, 300))
        data.append((X, Y))
    results = [None, None]
    errors = []
    barrier = threading.Barrier(2)

    def work(i):
        try:
            barrier.wait(timeout=30)
            results[i] = cg.cka(*data[i])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    assert not errors, errors
    for i, (X, Y) in enumerate(data):
        assert results[i] == cg.cka(X, Y)
        # independent check through the Gram identity ||Xc^T Yc||^2 / (||Xc^T Xc|| ||Yc^T Yc||)
        Xc, Yc = X - X.mean(0), Y - Y.mean(0)
        want = np.linalg.norm(Xc.T @ Yc) ** 2 / (
            np.linalg.norm(Xc.T @ Xc) * np.linalg.norm(Yc.T @ Yc)
        )
        assert results[i] == pytest.approx(want, rel=1e-10)


# ---------------------------------------------------------------------------------------------
# (9) scaling of HSIC
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("unbiased", [False, True])
@pytest.mark.parametrize("a,b", [(2.0, 3.0), (-0.5, 10.0), (1e-3, 1e3)])
def test_linear_hsic_scaling(a, b, unbiased):
    X, Y = _pair(50, 6, 4, seed=12)
    base = cg.hsic(X, Y, unbiased=unbiased)
    got = cg.hsic(a * X, b * Y, unbiased=unbiased)
    _assert_rel(got, a**2 * b**2 * base, 1e-12, "linear hsic scaling")
    # RBF HSIC and both CKAs are invariant to isotropic scaling
    _assert_rel(
        cg.hsic(a * X, b * Y, kernel="rbf", unbiased=unbiased),
        cg.hsic(X, Y, kernel="rbf", unbiased=unbiased),
        1e-10,
        "rbf hsic scale invariance",
    )
    _assert_rel(
        cg.cka(a * X, b * Y, debiased=unbiased), cg.cka(X, Y, debiased=unbiased), 1e-12, "cka scale"
    )


# ---------------------------------------------------------------------------------------------
# properties stated by Kornblith et al. (2019) and Song et al. (2012)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kernel", ["linear", "rbf"])
@pytest.mark.parametrize("flag", [False, True])
def test_symmetry_and_invariances(kernel, flag):
    rng = np.random.default_rng(21)
    X, Y = _pair(45, 7, 5, seed=21)
    Q, _ = np.linalg.qr(rng.standard_normal((7, 7)))
    perm = rng.permutation(7)
    c = cg.cka(X, Y, kernel=kernel, debiased=flag)
    h = cg.hsic(X, Y, kernel=kernel, unbiased=flag)
    _assert_rel(cg.cka(Y, X, kernel=kernel, debiased=flag), c, 1e-12, "cka symmetry")
    _assert_rel(cg.hsic(Y, X, kernel=kernel, unbiased=flag), h, 1e-12, "hsic symmetry")
    for T in (X @ Q, X + rng.standard_normal(7) * 10, X[:, perm]):
        _assert_rel(cg.cka(T, Y, kernel=kernel, debiased=flag), c, 1e-10, "cka invariance")
        _assert_rel(cg.hsic(T, Y, kernel=kernel, unbiased=flag), h, 1e-10, "hsic invariance")
    assert cg.cka(X, X, kernel=kernel, debiased=flag) == pytest.approx(1.0, rel=1e-13)
    lo = -1.0 if flag else 0.0
    assert lo <= c <= 1.0


def _mp_rbf(X, Y, sigma_frac):
    """(biased CKA, biased HSIC) of RBF kernels from the formula at 60 digits."""
    import mpmath

    with mpmath.workdps(60):

        def gram(A):
            n = len(A)
            D = [
                [
                    mpmath.fsum((mpmath.mpf(a) - mpmath.mpf(b)) ** 2 for a, b in zip(A[i], A[j]))
                    for j in range(n)
                ]
                for i in range(n)
            ]
            flat = sorted(D[i][j] for i in range(n) for j in range(n))
            half = len(flat) // 2
            med = flat[half] if len(flat) % 2 else (flat[half - 1] + flat[half]) / 2
            s2 = mpmath.mpf(sigma_frac) ** 2 * med
            return mpmath.matrix(
                [[mpmath.exp(-D[i][j] / (2 * s2)) for j in range(n)] for i in range(n)]
            )

        K, L = gram(X), gram(Y)
        n = K.rows
        H = mpmath.eye(n) - mpmath.ones(n, n) / n
        Kc, Lc = H * K * H, H * L * H

        def inner(A, B):
            return mpmath.fsum(A[i, j] * B[i, j] for i in range(n) for j in range(n))

        kl = inner(Kc, Lc)
        return float(kl / mpmath.sqrt(inner(Kc, Kc) * inner(Lc, Lc))), float(kl / (n - 1) ** 2)


@pytest.mark.parametrize("sigma_frac", [1.0, 3.0, 1e2, 1e4, 1e8, 1e12])
def test_rbf_wide_bandwidths_against_60_digits(sigma_frac):
    # Wide bandwidths make every kernel entry near the same value: exp(..) - shift cancelled
    # (sigma_frac = 1e4 lost 6 digits, 1e8 gave 0.849 for 0.941, 1e10 nan); the entries are now
    # shift * expm1(..) there
    rng = np.random.default_rng(1)
    X = rng.standard_normal((12, 3))
    Y = X + 0.5 * rng.standard_normal((12, 3))
    want_cka, want_hsic = _mp_rbf(X, Y, sigma_frac)
    assert cg.cka(X, Y, kernel="rbf", sigma_frac=sigma_frac) == pytest.approx(want_cka, rel=1e-12)
    assert cg.hsic(X, Y, kernel="rbf", sigma_frac=sigma_frac) == pytest.approx(want_hsic, rel=1e-10)
