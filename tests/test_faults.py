"""One test per bad input or fault that real activation sets, files and users bring.

Each test is named ``test_row_NN_...`` after the row of the project's list of faults (the
behaviour each must get); rows whose behaviour needs a whole module of tests point to it:

* row 07 (accumulators and minibatches of < 4 rows): tests/test_streaming.py
* row 17 (read-only arrays, memmaps, safetensors mmaps; no full copy): tests/test_io.py
* row 22 (LAPACK non-convergence: gesvd retry, LinAlgError with context): tests/test_cca.py
* row 27 (unknown layer names: LayerNotFoundError with close names): tests/test_layers.py
* row 28 (memory pre-flight, never an abort): tests/test_runtime.py
* row 31 (Ctrl-C within 1 s): tests/test_runtime.py, tests/test_cca.py, tests/test_rsm.py
* rows 33-36 (unsafe and malformed files): tests/test_io.py and tests/test_fuzz.py
* row 37 (atomic result files): here
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import threading
import warnings

import numpy as np
import pytest

import congruence as cg
from congruence._registry import measures

REPR = [m for m in measures() if m.inputs == "representations"]
# Cheap parameters for the slow measures so that one call per measure stays fast.
CHEAP = {
    "rtd": {"max_points": 40, "trials": 2, "seed": 0},
    "geometry_score": {"n_landmarks": 24, "gamma": 0.25, "n_samples": 5, "seed": 0},
}


def _pair(n=40, p1=6, p2=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p1))
    Y = np.tanh(X @ rng.standard_normal((p1, p2))) + 0.1 * rng.standard_normal((n, p2))
    return X, Y


def _args(m, X, Y):
    if m.wide:  # needs p >= n: widen both sides with independent columns
        rng = np.random.default_rng(1)
        X = np.hstack([X, rng.standard_normal((X.shape[0], X.shape[0]))])
        Y = np.hstack([Y, rng.standard_normal((Y.shape[0], Y.shape[0]))])
    return X, Y


def _call(f, *args, **kw):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = f(*args, **kw)
    return value, [w for w in caught if issubclass(w.category, cg.DegenerateDataWarning)]


ids = [m.name for m in REPR]


@pytest.mark.parametrize("m", REPR, ids=ids)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_row_01_non_finite_is_a_value_error_naming_array_and_count(m, bad):
    X, Y = _args(m, *_pair())
    Y = Y.copy()
    Y[3, 1] = bad
    Y[5, 0] = bad
    with pytest.raises(ValueError, match=r"Y of shape .* contains 2 non-finite value"):
        m(X, Y, **CHEAP.get(m.name, {}))


@pytest.mark.parametrize("m", REPR, ids=ids)
def test_row_02_row_counts_differ(m):
    X, Y = _args(m, *_pair())
    with pytest.raises(
        ValueError,
        match=r"X has shape \(40, \d+\) and Y has shape \(39, \d+\).*same number of rows",
    ):
        m(X, Y[:-1], **CHEAP.get(m.name, {}))


def test_row_03_one_dimensional_input_says_how_to_reshape():
    X, _ = _pair()
    with pytest.raises(ValueError, match=r"1-D.*reshape\(-1, 1\)"):
        cg.cka(X[:, 0], X)


@pytest.mark.parametrize(
    "shape,policies",
    [
        ((20, 5, 3), ["'mean'", "'first'", "'last'", "'max'", "'flatten'", "'tokens'"]),
        ((20, 3, 2, 2), ["'flatten'", "'mean'", "'spatial'"]),
    ],
)
def test_row_04_three_and_four_d_list_the_pooling_policies(shape, policies):
    A = np.random.default_rng(0).standard_normal(shape)
    for f in (cg.cka, cg.rsa, cg.knn_jaccard):
        with pytest.raises(ValueError) as info:
            f(A, A.reshape(shape[0], -1)) if f is not cg.knn_jaccard else f(
                A, A.reshape(20, -1), k=3
            )
        for p in policies:
            assert p in str(info.value)


@pytest.mark.parametrize("shape", [(0, 3), (5, 0), (0, 0)])
def test_row_05_empty_input(shape):
    with pytest.raises(ValueError, match=r"at least one row and one column"):
        cg.cka(np.zeros(shape), np.zeros(shape))


def test_row_06_a_single_row_names_the_minimum():
    with pytest.raises(ValueError, match=r"1 row\(s\), but this measure needs at least 2"):
        cg.cka(np.ones((1, 3)), np.ones((1, 2)))


def test_row_07_debiased_hsic_needs_four_rows():
    X, Y = _pair(n=3)
    with pytest.raises(ValueError, match=r"at least 4"):
        cg.cka(X, Y, debiased=True)
    with pytest.raises(ValueError, match=r"at least 4"):
        cg.hsic(X, Y, unbiased=True)


def test_row_08_ragged_last_minibatch_is_weighted_as_defined():
    # Minibatch CKA is the ratio of the batch-averaged unbiased HSICs; a ragged last batch is
    # one more term of that mean (written here from the definition with NumPy).
    X, Y = _pair(n=50)

    def hsic_u(K, L):
        n = K.shape[0]
        K, L = K.copy(), L.copy()
        np.fill_diagonal(K, 0)
        np.fill_diagonal(L, 0)
        one = np.ones(n)
        return (
            np.trace(K @ L)
            + (one @ K @ one) * (one @ L @ one) / ((n - 1) * (n - 2))
            - 2 / (n - 2) * one @ K @ L @ one
        ) / (n * (n - 3))

    batches = [slice(0, 15), slice(15, 30), slice(30, 45), slice(45, 50)]
    kl = kk = ll = 0.0
    for s in batches:
        K, L = X[s] @ X[s].T, Y[s] @ Y[s].T
        kl += hsic_u(K, L)
        kk += hsic_u(K, K)
        ll += hsic_u(L, L)
    expected = kl / math.sqrt(kk * ll)
    acc = cg.MinibatchCKA()
    for s in batches:
        acc.update({"x": X[s]}, {"y": Y[s]})
    assert abs(acc.result()["x", "y"] - expected) < 1e-12


def test_row_09_constant_columns_among_others():
    X, Y = _pair()
    Xc = np.hstack([X, np.full((40, 1), 3.5)])
    # CKA and RSA (euclidean): a constant column contributes nothing after centring
    assert abs(cg.cka(Xc, Y) - cg.cka(X, Y)) < 1e-12
    assert abs(cg.rsa(Xc, Y, rsm="euclidean") - cg.rsa(X, Y, rsm="euclidean")) < 1e-12
    # CCA family and linear regression: dropped with a warning, the value of the rest
    for f in (cg.cca, cg.svcca, cg.pwcca):
        value, warned = _call(f, Xc, Y)
        assert warned and "constant" in str(warned[0].message)
        assert abs(value - f(X, Y)) < 1e-10, f.__name__
    # linear_regression: Y is the predictor, its dead units are dropped
    value, warned = _call(cg.linear_regression, Y, Xc)
    assert warned and "constant" in str(warned[0].message)
    assert abs(value - cg.linear_regression(Y, X)) < 1e-10
    # a constant row in a correlation RSM: nan with a warning
    Xr = X.copy()
    Xr[7] = 2.0
    value, warned = _call(cg.rsa, Xr, Y)
    assert math.isnan(value) and warned


#: Measures that return their defined value (with a warning) for identical rows; every other
#: representational measure returns nan with a warning.
DEFINED_FOR_IDENTICAL_ROWS = {
    "hsic",
    "procrustes_size_and_shape",
    "permutation_procrustes",
    "rsm_norm_diff",
    "aligned_cosine",
    "eigenspace_overlap",
    "correlation_match",
    "magnitude_diff",
    "concentricity_diff",
    "uniformity_diff",
}


@pytest.mark.parametrize("m", REPR, ids=ids)
def test_row_10_identical_rows_give_nan_or_the_defined_value_with_a_warning(m):
    X, Y = _args(m, *_pair())
    X = np.tile(X[:1], (X.shape[0], 1))
    value, warned = _call(m, X, Y, **CHEAP.get(m.name, {}))
    assert warned, f"{m.name} gave {value} without a DegenerateDataWarning"
    assert "X" in str(warned[0].message)
    if m.name in DEFINED_FOR_IDENTICAL_ROWS:
        assert math.isfinite(value)
    else:
        assert math.isnan(value)


def test_row_11_near_constant_columns_use_a_relative_test():
    X, Y = _pair()
    near = np.full((40, 1), 0.1)
    value, warned = _call(cg.cca, np.hstack([X, near]), Y)
    assert warned and abs(value - cg.cca(X, Y)) < 1e-10
    value, warned = _call(cg.linear_regression, Y, np.hstack([X, near]))
    assert warned and abs(value - cg.linear_regression(Y, X)) < 1e-10
    # a representation varying only at a tiny scale is not constant: no warning, same value
    value, warned = _call(cg.cca, 1e-17 * X, Y)
    assert not warned and abs(value - cg.cca(X, Y)) < 1e-10


@pytest.mark.parametrize("offset", [1e3, 1e4])
@pytest.mark.parametrize(
    "name", ["cka", "hsic", "rsa", "knn_jaccard", "orthogonal_procrustes", "cca"]
)
def test_row_12_float32_offsets_match_float64_on_the_same_values(offset, name):
    rng = np.random.default_rng(3)
    Z = rng.standard_normal((300, 16))
    W = Z @ rng.standard_normal((16, 12)) + 0.3 * rng.standard_normal((300, 12))
    X32, Y32 = (Z + offset).astype(np.float32), (W + offset).astype(np.float32)
    f = getattr(cg, name)
    v32, v64 = f(X32, Y32), f(X32.astype(np.float64), Y32.astype(np.float64))
    assert abs(v32 - v64) <= 1e-6 * max(1.0, abs(v64))


@pytest.mark.parametrize(
    "name", ["cka", "rsa", "knn_jaccard", "orthogonal_procrustes", "cca", "distance_correlation"]
)
def test_row_13_huge_float32_magnitudes_give_the_float64_value(name):
    rng = np.random.default_rng(4)
    X32 = (rng.standard_normal((200, 8)) * 1e30).astype(np.float32)
    Y32 = rng.standard_normal((200, 8)).astype(np.float32)
    f = getattr(cg, name)
    v32 = f(X32, Y32)
    # reference: the same float32 numbers in float64, scaled by an exact power of two
    # (these measures are scale-invariant, so the scaled computation is the value)
    v64 = f(X32.astype(np.float64) * 2.0**-100, Y32.astype(np.float64))
    assert math.isfinite(v32) and abs(v32 - v64) <= 1e-6


def test_row_14_integer_bool_object_complex():
    X, Y = _pair()
    Xi = np.round(10 * X).astype(np.int32)
    assert cg.cka(Xi, Y) == cg.cka(Xi.astype(np.float64), Y)
    Xb = X > 0
    assert cg.cka(Xb, Y) == cg.cka(Xb.astype(np.float64), Y)
    assert cg.cka(Xi.astype(object), Y) == cg.cka(Xi.astype(np.float64), Y)
    with pytest.raises(cg.InputTypeError):
        cg.cka(np.array([["a"] * 3] * 40, dtype=object), Y)
    for exc in (TypeError, ValueError, cg.InputTypeError):
        with pytest.raises(exc, match=r"complex"):
            cg.cka(X + 0j, Y)


def test_row_15_float16_and_bfloat16_are_upcast():
    torch = pytest.importorskip("torch")
    X, Y = _pair()
    X16 = X.astype(np.float16)
    # float16 is computed in float64; float32 may take the float32 route (within 1e-6)
    assert cg.cka(X16, Y) == cg.cka(X16.astype(np.float64), Y)
    assert abs(cg.cka(X16, Y) - cg.cka(X16.astype(np.float32), Y)) < 1e-6
    tb = torch.from_numpy(X).to(torch.bfloat16)
    assert abs(cg.cka(tb, Y) - cg.cka(tb.float().numpy(), Y)) < 1e-12


@pytest.mark.parametrize("m", REPR, ids=ids)
def test_row_16_layouts_give_the_contiguous_value(m):
    X, Y = _args(m, *_pair())
    ref = m(X, Y, **CHEAP.get(m.name, {}))
    big = np.zeros((2 * X.shape[0], 3 * X.shape[1]))
    big[::2, ::3] = X
    for Xv in (
        np.asfortranarray(X),
        big[::2, ::3],
        X[::-1][::-1],
        np.ascontiguousarray(X[::-1])[::-1],
    ):
        v = m(Xv, Y, **CHEAP.get(m.name, {}))
        assert v == ref or abs(v - ref) <= 1e-12 * max(1.0, abs(ref)), m.name


def test_row_18_tensors_lists_and_the_meta_device():
    torch = pytest.importorskip("torch")
    X, Y = _pair()
    tx = torch.from_numpy(X).requires_grad_()
    assert cg.cka(tx, Y) == cg.cka(X, Y)
    assert cg.cka(X.tolist(), Y.tolist()) == cg.cka(X, Y)
    with pytest.raises(ValueError, match=r"'meta' device"):
        cg.cka(torch.empty(40, 6, device="meta"), Y)
    jnp = pytest.importorskip("jax.numpy")
    jx = jnp.asarray(X)  # float32 unless jax's x64 mode is on: its values are what count
    assert cg.cka(jx, Y) == cg.cka(np.asarray(jx), Y)


def test_row_19_identical_inputs():
    X, _ = _pair()
    assert abs(cg.cka(X, X) - 1.0) < 1e-12
    assert abs(cg.cka(X, X.copy()) - 1.0) < 1e-12
    assert cg.orthogonal_procrustes(X, X) < 1e-7


def test_row_20_rotated_scaled_translated_permuted_copies():
    X, Y = _pair()
    Q, _ = np.linalg.qr(np.random.default_rng(2).standard_normal((6, 6)))
    Xt = 3.0 * X[:, ::-1] @ Q + 5.0
    for f in (cg.cka, cg.orthogonal_procrustes, cg.cca, cg.distance_correlation):
        assert abs(f(Xt, Y) - f(X, Y)) < 1e-8, f.__name__


def test_row_21_p_much_larger_than_n_for_the_cca_family():
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((30, 80)), rng.standard_normal((30, 60))
    for f in (cg.cca, cg.pwcca):
        with pytest.raises(ValueError) as info:
            f(X, Y)
        assert not isinstance(info.value, np.linalg.LinAlgError)
    value, warned = _call(cg.svcca, X, Y)
    assert warned and "by construction" in str(warned[-1].message)
    # regularised: allowed, no error; the over-fitting p1 + p2 > n - 1 is still said
    with pytest.warns(cg.DegenerateDataWarning, match=r"p1 \+ p2 = .* > n - 1 .*over-fitting"):
        assert math.isfinite(cg.cca(X, Y, epsilon=1e-2))


@pytest.mark.parametrize("v", [0.0, -0.1, 1.5])
def test_row_23_svcca_threshold_outside_its_range(v):
    X, Y = _pair()
    with pytest.raises(ValueError, match="variance"):
        cg.svcca(X, Y, variance=v)


def test_row_23b_svcca_keeps_at_least_one_component():
    X, Y = _pair()
    assert math.isfinite(cg.svcca(X, Y, variance=1e-9))


def test_row_24_rbf_bandwidth_and_zero_median():
    X, Y = _pair()
    for s in (0.0, -1.0):
        with pytest.raises(ValueError, match="sigma_frac"):
            cg.cka(X, Y, kernel="rbf", sigma_frac=s)
    Xd = X.copy()
    Xd[:30] = Xd[0]  # over half of all ordered pairs are duplicates: median distance 0
    value, warned = _call(cg.cka, Xd, Y, kernel="rbf")
    assert math.isnan(value) and warned and "median" in str(warned[0].message)


@pytest.mark.parametrize("k", [0, -1, 40, 41])
def test_row_25_knn_k_outside_its_range(k):
    X, Y = _pair()
    with pytest.raises(ValueError, match=r"\bk\b"):
        cg.knn_jaccard(X, Y, k=k)


def test_row_26_procrustes_pads_the_narrower_side_with_zeros():
    X, Y = _pair(p1=6, p2=4)
    Yp = np.hstack([Y, np.zeros((40, 2))])
    assert abs(cg.orthogonal_procrustes(X, Y) - cg.orthogonal_procrustes(X, Yp)) < 1e-12


def test_row_29_same_call_from_many_threads():
    X, Y = _pair(n=400, p1=30, p2=20)
    expected = {f: f(X, Y) for f in (cg.cka, cg.rsa, cg.knn_jaccard)}
    out, errors = [], []

    def work():
        try:
            for f, v in expected.items():
                out.append(f(X, Y) == v)
        except Exception as exc:  # pragma: no cover - the failure is reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(out) == 24 and all(out)


def test_row_30_thread_counts_give_bitwise_identical_results():
    code = (
        "import numpy as np, congruence as cg\n"
        "rng = np.random.default_rng(0)\n"
        "X = rng.standard_normal((700, 40)); Y = np.tanh(X @ rng.standard_normal((40, 30)))\n"
        "vals = [cg.cka(X, Y, kernel='rbf'), cg.cka(X, Y), cg.rsa(X, Y), cg.knn_jaccard(X, Y),\n"
        "        cg.distance_correlation(X, Y), cg.hsic(X, Y, unbiased=True)]\n"
        "print(repr([float(v).hex() for v in vals]))\n"
    )
    outs = []
    for threads in ("1", "2"):
        env = {**os.environ, "RAYON_NUM_THREADS": threads}
        outs.append(
            subprocess.run(
                [sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True
            ).stdout
        )
    assert outs[0] == outs[1]


def test_row_32_core_errors_never_surface_as_panics():
    # pyo3's PanicException derives from BaseException, so `except Exception` would miss it;
    # every core failure must arrive as an ordinary Exception subclass.
    X, Y = _pair()
    cases = [
        lambda: cg.knn_jaccard(X, Y, k=10**12),
        lambda: cg.cka(X, Y, kernel="rbf", sigma_frac=1e-300),
        lambda: cg.hsic(X[:4], Y[:4], unbiased=True),
        lambda: cg.rsa(X[:2], Y[:2]),
    ]
    for case in cases:
        try:
            case()
        except Exception:
            pass


def test_row_37_result_files_are_written_atomically(tmp_path, monkeypatch):
    X, Y = _pair()
    res = cg.compare_layers({"a": X, "b": 2 * X}, {"y": Y})
    path = tmp_path / "res.csv"
    path.write_text("previous contents\n")
    res.to_csv(path)
    assert path.read_text() == res.to_csv()
    assert [p.name for p in tmp_path.iterdir()] == ["res.csv"]  # no temporary left behind
    # a writer that dies before the final rename leaves the previous file whole
    path.write_text("previous contents\n")

    def dies(*args, **kwargs):
        raise OSError("disk vanished")

    monkeypatch.setattr(os, "replace", dies)
    with pytest.raises(OSError, match="disk vanished"):
        res.to_csv(path)
    assert path.read_text() == "previous contents\n"
    assert [p.name for p in tmp_path.iterdir()] == ["res.csv"]
