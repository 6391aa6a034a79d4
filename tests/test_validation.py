"""Input validation (docs: errors and warnings): every invalid argument is a ValueError whose message
names the argument and says what is wrong (its shape, what was expected)."""

from __future__ import annotations

import re

import numpy as np
import pytest

import congruence as cg
from congruence import InputTypeError


def esc(s: str) -> str:
    return re.escape(s)


@pytest.fixture
def XY():
    rng = np.random.default_rng(0)
    return rng.standard_normal((10, 3)), rng.standard_normal((10, 4))


# The public entry points that take two representations, with the name of their flag.
ENTRIES = [
    pytest.param(lambda X, Y, **kw: cg.cka(X, Y, **kw), "debiased", id="cka"),
    pytest.param(lambda X, Y, **kw: cg.hsic(X, Y, **kw), "unbiased", id="hsic"),
    pytest.param(lambda X, Y, **kw: cg.compare(X, Y, "cka", **kw), "debiased", id="compare-cka"),
    pytest.param(lambda X, Y, **kw: cg.compare(X, Y, "hsic", **kw), "unbiased", id="compare-hsic"),
]


# ---------------------------------------------------------------------------------------------
# shapes
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("f,flag", ENTRIES)
def test_1d_input_suggests_reshape(f, flag, XY):
    X, Y = XY
    with pytest.raises(ValueError, match=r"X must be 2-D.*shape \(10,\).*reshape\(-1, 1\)"):
        f(X[:, 0], Y)
    with pytest.raises(ValueError, match=r"Y must be 2-D.*shape \(10,\).*reshape\(-1, 1\)"):
        f(X, Y[:, 0])


@pytest.mark.parametrize("f,flag", ENTRIES)
def test_0d_input(f, flag, XY):
    X, Y = XY
    with pytest.raises(ValueError, match=r"X must be 2-D.*shape \(\)"):
        f(np.float64(1.5), Y)


@pytest.mark.parametrize("f,flag", ENTRIES)
def test_3d_input_suggests_flattening(f, flag, XY):
    X, Y = XY
    X3 = np.zeros((10, 2, 5))
    with pytest.raises(ValueError, match=r"X must be 2-D.*shape \(10, 2, 5\).*flatten"):
        f(X3, Y)
    with pytest.raises(ValueError, match=r"Y must be 2-D.*shape \(10, 2, 5\).*flatten"):
        f(X, X3)
    # The suggested fix works.
    assert np.isfinite(f(X3.reshape(X3.shape[0], -1) + np.arange(100.0).reshape(10, 10), Y))


@pytest.mark.parametrize("f,flag", ENTRIES)
def test_mismatched_rows_names_both_shapes(f, flag, XY):
    X, Y = XY
    with pytest.raises(
        ValueError, match=r"X has shape \(10, 3\) and Y has shape \(8, 4\).*same number of rows"
    ):
        f(X, Y[:8])
    with pytest.raises(ValueError, match=r"X has shape \(7, 3\) and Y has shape \(10, 4\)"):
        f(X[:7], Y)


@pytest.mark.parametrize("f,flag", ENTRIES)
@pytest.mark.parametrize("shape", [(0, 3), (5, 0), (0, 0)], ids=lambda s: "x".join(map(str, s)))
def test_empty_arrays(f, flag, shape, XY):
    X, Y = XY
    E = np.zeros(shape)
    pat = esc(f"has shape {shape}") + ".*at least one row and one column"
    with pytest.raises(ValueError, match="X " + pat):
        f(E, Y[: shape[0]])
    with pytest.raises(ValueError, match="Y " + pat):
        f(X[: shape[0]] if shape[0] else X, E)


def test_empty_nested_list(XY):
    _, Y = XY
    with pytest.raises(ValueError, match=r"X"):
        cg.cka([], Y)
    with pytest.raises(ValueError, match=r"X .*shape \(3, 0\)"):
        cg.cka([[], [], []], Y[:3])


@pytest.mark.parametrize("f,flag", ENTRIES)
def test_too_few_rows_biased(f, flag, XY):
    X, Y = XY
    with pytest.raises(ValueError, match=r"X has shape \(1, 3\).*at least 2 rows"):
        f(X[:1], Y[:1])
    assert np.isfinite(f(X[:2], Y[:2]))  # n = 2 is allowed


@pytest.mark.parametrize("f,flag", ENTRIES)
@pytest.mark.parametrize("n", [1, 2, 3])
def test_too_few_rows_unbiased(f, flag, n, XY):
    X, Y = XY
    with pytest.raises(ValueError, match=esc(f"X has shape ({n}, 3)") + r".*at least 4 rows"):
        f(X[:n], Y[:n], **{flag: True})
    with pytest.raises(ValueError, match=esc(f"X has shape ({n}, 3)") + r".*at least 4 rows"):
        f(X[:n], Y[:n], kernel="rbf", **{flag: True})
    assert np.isfinite(f(X[:4], Y[:4], **{flag: True}))  # n = 4 is allowed


# ---------------------------------------------------------------------------------------------
# values and dtypes
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("f,flag", ENTRIES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_non_finite_entries_are_counted(f, flag, dtype, XY):
    X, Y = XY
    Xb = X.astype(dtype)
    Xb[0, 0] = np.nan
    Xb[3, 1] = np.inf
    Xb[9, 2] = -np.inf
    with pytest.raises(ValueError, match=r"X of shape \(10, 3\) contains 3 non-finite"):
        f(Xb, Y)
    Yb = Y.astype(dtype)
    Yb[:, 1] = np.nan
    with pytest.raises(ValueError, match=r"Y of shape \(10, 4\) contains 10 non-finite"):
        f(X, Yb)
    with pytest.raises(ValueError, match=r"X .*1 non-finite"):
        f([[float("nan")] + [0.0] * 2] + X[1:].tolist(), Y)


@pytest.mark.parametrize("f,flag", ENTRIES)
def test_complex_dtype(f, flag, XY):
    X, Y = XY
    with pytest.raises(ValueError, match=r"X has dtype complex128; expected real"):
        f(X + 0j, Y)
    with pytest.raises(ValueError, match=r"Y has dtype complex64; expected real"):
        f(X, Y.astype(np.complex64))


@pytest.mark.parametrize("f,flag", ENTRIES)
def test_string_and_object_arrays(f, flag, XY):
    X, Y = XY
    S = np.array([["a", "b", "c"]] * 10)
    with pytest.raises(ValueError, match=r"X has dtype <U1; expected real"):
        f(S, Y)
    with pytest.raises(ValueError, match=r"Y has dtype <U1; expected real"):
        f(X, S)
    # object arrays of numbers are converted (same value); others are an InputTypeError
    assert f(X.astype(object), Y) == f(X, Y)
    mixed = X.astype(object)
    mixed[3, 1] = "a"
    with pytest.raises(InputTypeError, match=r"X has dtype object and its items are not all"):
        f(mixed, Y)
    with pytest.raises(TypeError, match=r"Y has dtype complex128; expected real.*\.real"):
        f(X, Y + 1j)
    with pytest.raises(ValueError, match=r"X has dtype .*expected real"):
        f([[1.0, "a", 2.0]] * 10, Y)
    with pytest.raises(ValueError, match=r"X has dtype .*expected real"):
        f(np.array([b"xy"] * 20).reshape(10, 2), Y)


@pytest.mark.parametrize("f,flag", ENTRIES)
def test_ragged_nested_lists(f, flag, XY):
    X, Y = XY
    ragged = X.tolist()
    ragged[4] = ragged[4][:2]
    with pytest.raises(ValueError, match=r"X could not be converted to a numeric array"):
        f(ragged, Y)
    with pytest.raises(ValueError, match=r"Y could not be converted to a numeric array"):
        f(X, [[1.0, 2.0], [3.0]] * 5)


def test_none_input(XY):
    X, Y = XY
    with pytest.raises(ValueError, match=r"X"):
        cg.cka(None, Y)
    with pytest.raises(ValueError, match=r"Y"):
        cg.hsic(X, None)


# ---------------------------------------------------------------------------------------------
# parameters
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("f,flag", ENTRIES)
@pytest.mark.parametrize("kernel", ["poly", "RBF", "", "gaussian", None, 1])
def test_bad_kernel_lists_choices(f, flag, kernel, XY):
    X, Y = XY
    with pytest.raises(ValueError, match=esc(f"kernel={kernel!r}") + r".*'linear'.*'rbf'"):
        f(X, Y, kernel=kernel)


@pytest.mark.parametrize("f,flag", ENTRIES)
@pytest.mark.parametrize("kernel", ["rbf", "linear"])
@pytest.mark.parametrize(
    "sigma",
    [0, 0.0, -1.0, -1e-300, float("nan"), float("inf"), float("-inf"), "1.0", None, [1.0]],
    ids=repr,
)
def test_bad_sigma_frac(f, flag, kernel, sigma, XY):
    X, Y = XY
    with pytest.raises(ValueError, match=r"sigma_frac=.*(out of range|expected a real number)"):
        f(X, Y, kernel=kernel, sigma_frac=sigma)


@pytest.mark.parametrize("sigma", [0.5, 2, np.float32(0.7), np.float64(1.5), np.int64(3), 1e-3])
def test_good_sigma_frac(sigma, XY):
    X, Y = XY
    assert np.isfinite(cg.cka(X, Y, kernel="rbf", sigma_frac=sigma))
    assert cg.cka(X, Y, kernel="rbf", sigma_frac=sigma) == cg.cka(
        X, Y, kernel="rbf", sigma_frac=float(sigma)
    )


@pytest.mark.parametrize("f,flag", ENTRIES)
@pytest.mark.parametrize("value", [1, 0, "yes", "True", None, 1.0, np.int64(1), [True]], ids=repr)
def test_flag_must_be_bool(f, flag, value, XY):
    X, Y = XY
    with pytest.raises(ValueError, match=esc(f"{flag}={value!r}") + r".*expected True or False"):
        f(X, Y, **{flag: value})


@pytest.mark.parametrize("f,flag", ENTRIES)
def test_numpy_bool_flag_is_accepted(f, flag, XY):
    X, Y = XY
    assert f(X, Y, **{flag: np.True_}) == f(X, Y, **{flag: True})
    assert f(X, Y, **{flag: np.False_}) == f(X, Y, **{flag: False})


def test_validation_order_params_before_data():
    # A bad parameter is reported even when the data are fine, and bad data even when the
    # parameters are fine; each message is about the argument that is wrong.
    X = np.ones((5, 2)) * np.arange(5.0)[:, None]
    with pytest.raises(ValueError, match="kernel"):
        cg.cka(X, X, kernel="cosine")
    with pytest.raises(ValueError, match=r"X has shape \(5, 2\) and Y has shape \(4, 2\)"):
        cg.cka(X, X[:4], kernel="rbf")


# ---------------------------------------------------------------------------------------------
# compare(): measure names and keyword parameters
# ---------------------------------------------------------------------------------------------


def test_compare_unknown_measure_suggests_cka(XY):
    X, Y = XY
    with pytest.raises(ValueError, match=r"unknown measure 'cak'.*'cka'"):
        cg.compare(X, Y, "cak")
    with pytest.raises(ValueError, match=r"unknown measure 'hsci'.*'hsic'"):
        cg.compare(X, Y, "hsci")
    with pytest.raises(ValueError, match=r"unknown measure"):
        cg.compare(X, Y, "no-such-thing")


@pytest.mark.parametrize(
    "measure,bad,accepted",
    [
        ("cka", {"kernal": "rbf"}, ("kernel", "sigma_frac", "debiased")),
        ("cka", {"unbiased": True}, ("kernel", "sigma_frac", "debiased")),
        ("hsic", {"debiased": True}, ("kernel", "sigma_frac", "unbiased")),
    ],
)
def test_compare_unknown_parameter_lists_accepted(measure, bad, accepted, XY):
    X, Y = XY
    with pytest.raises(TypeError) as info:
        cg.compare(X, Y, measure, **bad)
    msg = str(info.value)
    assert next(iter(bad)) in msg
    assert "accepted" in msg
    for name in accepted:
        assert name in msg, (name, msg)


def test_direct_call_unknown_keyword_is_type_error(XY):
    X, Y = XY
    with pytest.raises(TypeError, match="kernal"):
        cg.cka(X, Y, kernal="rbf")
    with pytest.raises(TypeError, match="debiased"):
        cg.hsic(X, Y, debiased=True)


def test_compare_passes_parameters(XY):
    X, Y = XY
    assert cg.compare(X, Y, "cka", kernel="rbf", sigma_frac=0.5, debiased=True) == cg.cka(
        X, Y, kernel="rbf", sigma_frac=0.5, debiased=True
    )
    assert cg.compare(X, Y) == cg.cka(X, Y)
    with pytest.raises(ValueError, match=r"sigma_frac=-2"):
        cg.compare(X, Y, "hsic", kernel="rbf", sigma_frac=-2.0)


def _identical_by_definition(Z: np.ndarray) -> bool:
    """Every column's range within 8 eps of its largest magnitude, from the definition."""
    Z = np.asarray(Z, dtype=np.float64)
    eps = np.finfo(np.float64).eps
    with np.errstate(over="ignore"):
        return all(
            np.ptp(Z[:, j]) <= 8.0 * eps * np.max(np.abs(Z[:, j])) for j in range(Z.shape[1])
        )


def test_identical_rows_quick_look_agrees_with_the_definition():
    from congruence._linalg import identical_rows

    rng = np.random.default_rng(7)
    eps = np.finfo(np.float64).eps
    base = rng.standard_normal(6) * 10.0 ** rng.integers(-5, 5, 6)
    cases = {
        "random": rng.standard_normal((40, 6)),
        "identical": np.tile(base, (40, 1)),
        "one-ulp noise": np.tile(base, (40, 1)) * (1 + eps * rng.integers(-2, 3, (40, 6))),
        "zeros": np.zeros((12, 3)),
        "zeros, one entry late": np.vstack([np.zeros((11, 3)), [[0.0, 1e-300, 0.0]]]),
        "differs after the first rows only": np.vstack([np.tile(base, (20, 1)), base * 1.5]),
        "range of 6 eps |z| in the first rows": np.tile(base, (10, 1))
        * (1 + 6 * eps * (np.arange(10) % 2))[:, None],
        "range of 40 eps |z| in the first rows": np.tile(base, (10, 1))
        * (1 + 40 * eps * (np.arange(10) % 2))[:, None],
        "one row": base[None, :],
        "two rows, float32": np.tile(base.astype(np.float32), (2, 1)),
        "huge values": np.array([[1e308, -1e308], [-1e308, 1e308], [1e308, -1e308]]),
    }
    for name, Z in cases.items():
        assert identical_rows(Z) == _identical_by_definition(Z), name
    assert identical_rows(cases["identical"]) and identical_rows(cases["one-ulp noise"])
    assert not identical_rows(cases["differs after the first rows only"])
    assert not identical_rows(cases["zeros, one entry late"])


def test_numbers_beyond_float64_get_the_parameter_error():
    # np.isfinite(10**30) and float(10**400) once raised TypeError / OverflowError
    X = np.random.default_rng(3).standard_normal((30, 3))
    with pytest.raises(cg.ParameterError, match=r"k=1000000000000000000000000000000 is out of"):
        cg.mutual_knn(X, X, k=10**30)
    with pytest.raises(cg.ParameterError, match="epsilon=1000000000000"):
        cg.cca(X, X, epsilon=10**400)
    with pytest.raises(cg.ParameterError, match="out of range"):
        cg.knn_jaccard(X, X, k=2**70)
