"""Tests of the kernel family's whole-matrix route (docs: kernel page, layer matrices).

``compare_layers`` and the core's ``kernel_matrix`` compute every pair of a layer matrix in
one pass over square tiles of the ``n x n`` index space (all inner products of a tile as one
matrix product). Checked here: the matrix equals the pair-by-pair values (feature route, an
independent computation) for every kernel, estimator and statistic, over several tiles with
ragged edges; it does not depend on the thread count (bitwise); and float32 input, which may
use float32 Gram tiles, stays within 1e-6 relative of the float64 computation on the same
values, including at a large common offset and for values near 0 (recomputed in float64).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import congruence as cg
from congruence import _core


def _layers(n, widths, seed, offset=0.0):
    """Layers that depend on each other (so the values are well away from 0)."""
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((n, 8))
    out = []
    for p in widths:
        x = np.tanh(base @ rng.standard_normal((8, p))) + 0.5 * rng.standard_normal((n, p))
        out.append(x + offset)
    return out


def _pairwise(a, b, kernel, flag, statistic):
    route = "features" if kernel == "linear" else "auto"
    return np.array(
        [[_core.kernel_pair(x, y, kernel, 1.0, flag, statistic, route) for y in b] for x in a]
    )


@pytest.mark.parametrize("kernel", ["linear", "rbf"])
@pytest.mark.parametrize("flag", [False, True])
@pytest.mark.parametrize("statistic", ["cka", "hsic"])
def test_whole_matrix_equals_the_pairs(kernel, flag, statistic):
    # n = 1100 with 5 layers: tiles of 640 rows, a ragged second tile; the Gram route is
    # forced for the linear kernel (p > n would choose it by itself only for wide layers).
    a = _layers(1100, (30, 70, 5), seed=1)
    b = _layers(1100, (40, 12), seed=2)
    route = "gram"
    got = _core.kernel_matrix(a, b, kernel, 1.0, flag, statistic, route)
    want = _pairwise(a, b, kernel, flag, statistic)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=0)
    sym = _core.kernel_matrix(a, None, kernel, 1.0, flag, statistic, route)
    want_sym = _pairwise(a, a, kernel, flag, statistic)
    np.testing.assert_allclose(sym, want_sym, rtol=1e-10, atol=0)
    assert np.array_equal(sym, sym.T)


@pytest.mark.parametrize("flag", [False, True])
@pytest.mark.parametrize("statistic", ["cka", "hsic"])
def test_linear_gram_route_equals_the_pairs_at_any_offset(flag, statistic):
    # float64 layers whose means are small beside their spread are not copied: their tiles
    # are centred as they are formed (x_i . x_j - x_i . mu - xc_j . mu); layers with large
    # offsets are centred into copies. Both kinds, and a matrix mixing them, against the
    # feature route on centred copies.
    a = _layers(700, (30, 70, 5), seed=3)
    b = _layers(700, (40, 12), seed=4)
    a[1] = a[1] + 0.3  # |mu|^2 / mean |xc|^2 about 0.2: tiles centred as formed
    b[0] = b[0] + 3e4  # a large offset: a centred copy
    for x, y in [(a, b), ([v + 1e3 for v in a], b), (a, [v * 1e-150 for v in b])]:
        got = _core.kernel_matrix(x, y, "linear", 1.0, flag, statistic, "gram")
        np.testing.assert_allclose(got, _pairwise(x, y, "linear", flag, statistic), rtol=1e-10)
        sym = _core.kernel_matrix(x, None, "linear", 1.0, flag, statistic, "gram")
        np.testing.assert_allclose(sym, _pairwise(x, x, "linear", flag, statistic), rtol=1e-10)


def test_compare_layers_equals_the_pairs_with_many_layers():
    # 24 layers: tiles of 288 rows, so n = 700 spans three row tiles.
    layers = _layers(700, [20 + 37 * (k % 5) for k in range(24)], seed=3)
    got = cg.compare_layers(layers[:12], layers[12:], "cka").values
    want = np.array([[cg.cka(x, y) for y in layers[12:]] for x in layers[:12]])
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=0)


_THREAD_SCRIPT = textwrap.dedent(
    """
    import json, numpy as np
    from congruence import _core
    rng = np.random.default_rng(7)
    a = [rng.standard_normal((1100, p)) + 2.0 for p in (40, 90, 15)]
    b = [np.sin(a[1][:, :p]) + rng.standard_normal((1100, p)) for p in (30, 60)]
    out = []
    for kernel in ("linear", "rbf"):
        for flag in (False, True):
            for stat in ("cka", "hsic"):
                out += _core.kernel_matrix(a, b, kernel, 1.0, flag, stat, "gram").ravel().tolist()
                out += _core.kernel_matrix(a, None, kernel, 1.0, flag, stat, "gram").ravel().tolist()
    a32 = [x.astype(np.float32) for x in a]
    out += _core.kernel_matrix(a32, None, "linear", 1.0, False, "cka", "gram").ravel().tolist()
    print(json.dumps([repr(float(v)) for v in out]))
    """
)


def _run(threads):
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    res = subprocess.run(
        [sys.executable, "-c", _THREAD_SCRIPT], env=env, capture_output=True, text=True, timeout=600
    )
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_whole_matrix_is_bitwise_independent_of_the_thread_count():
    one, two = _run(1), _run(2)
    assert len(one) == len(two) > 50
    assert one == two
    assert "nan" not in one


def _f32_case(n, widths, seed, offset=0.0):
    a32 = [x.astype(np.float32) for x in _layers(n, widths, seed, offset)]
    return a32, [x.astype(np.float64) for x in a32]


@pytest.mark.parametrize("flag", [False, True])
@pytest.mark.parametrize("statistic", ["cka", "hsic"])
@pytest.mark.parametrize("offset", [0.0, 0.4, 3e4])
def test_float32_matrix_is_within_1e6_of_float64(flag, statistic, offset):
    # n >> p: the float32 tiles are accurate enough to be certified for most entries. Offsets
    # 0 and 0.4 (small beside the spread): the float32 rows are used in place, their tiles
    # centred as they are formed; 3e4: each layer is centred into a float32 copy.
    a32, a64 = _f32_case(3000, (60, 100, 80), seed=5, offset=offset)
    got = _core.kernel_matrix(a32, None, "linear", 1.0, flag, statistic, "gram")
    want = _core.kernel_matrix(a64, None, "linear", 1.0, flag, statistic, "gram")
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=0)
    # The offset data hold the same centred values up to float32 rounding of the inputs.
    if offset > 1:
        base32, _ = _f32_case(3000, (60, 100, 80), seed=5)
        ref = _core.kernel_matrix(base32, None, "linear", 1.0, flag, statistic, "gram")
        assert np.all(np.isfinite(got)) and np.max(np.abs(got - ref) / np.abs(ref)) < 1e-2


def test_float32_route_is_taken_and_falls_back_near_zero():
    # Related layers: values far from 0, computed from float32 tiles (not bit-identical to
    # float64, yet within 1e-6). Independent noise: debiased CKA near 0, where float32 tiles
    # cannot be certified, so those entries are recomputed in float64 (to round-off; float32
    # tiles would be off by about 1e-4 relative there).
    a32, a64 = _f32_case(3000, (60, 100), seed=8)
    rng = np.random.default_rng(9)
    noise32 = rng.standard_normal((3000, 70)).astype(np.float32)
    got = _core.kernel_matrix(a32, [noise32], "linear", 1.0, True, "cka", "gram")
    want = _core.kernel_matrix(
        a64, [noise32.astype(np.float64)], "linear", 1.0, True, "cka", "gram"
    )
    assert np.all(np.abs(want) < 0.05)
    np.testing.assert_allclose(got, want, rtol=1e-8, atol=0)
    both = _core.kernel_matrix(a32, a32, "linear", 1.0, False, "cka", "gram")
    both64 = _core.kernel_matrix(a64, a64, "linear", 1.0, False, "cka", "gram")
    np.testing.assert_allclose(both, both64, rtol=1e-6, atol=0)
    assert not np.array_equal(both, both64)


def test_compare_layers_float32_matches_float64_of_the_same_values():
    a32, a64 = _f32_case(2500, (150, 90, 120, 60), seed=10)
    got = cg.compare_layers(a32, measure="cka").values
    want = cg.compare_layers(a64, measure="cka").values
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=0)
