"""cg.pool against loop references written from the definitions, masks included."""

import numpy as np
import pytest
import torch

import congruence as cg
from congruence.errors import InputTypeError


def _mask(rng, n, T, left=False):
    """A 0/1 mask with 1..T real tokens per row (right padding, or left padding)."""
    lengths = rng.integers(1, T + 1, size=n)
    lengths[0] = T  # one full row
    m = np.zeros((n, T), dtype=np.int64)
    for i, L in enumerate(lengths):
        if left:
            m[i, T - L :] = 1
        else:
            m[i, :L] = 1
    return m


def _ref3(x, policy, mask):
    """Row by row, token by token: only the tokens whose mask is 1."""
    n, T, d = x.shape
    rows = []
    for i in range(n):
        toks = [x[i, t] for t in range(T) if mask is None or mask[i, t] == 1]
        if policy == "mean":
            acc = np.zeros(d)
            for v in toks:
                acc = acc + v
            rows.append(acc / len(toks))
        elif policy == "first":
            rows.append(toks[0])
        elif policy == "last":
            rows.append(toks[-1])
        elif policy == "max":
            best = np.array(toks[0], dtype=np.float64)
            for v in toks[1:]:
                best = np.array([max(a, b) for a, b in zip(best, v)])
            rows.append(best)
        elif policy == "flatten":
            rows.append(np.array([x[i, t, k] for t in range(T) for k in range(d)]))
        elif policy == "tokens":
            rows.extend(toks)
    return np.array(rows, dtype=np.float64)


@pytest.mark.parametrize("policy", ["mean", "first", "last", "max", "flatten", "tokens"])
def test_3d_without_mask(policy):
    x = np.random.default_rng(1).standard_normal((5, 4, 3))
    got = cg.pool(x, policy)
    np.testing.assert_allclose(got, _ref3(x, policy, None), rtol=0, atol=1e-14)
    assert got.dtype == np.float64


@pytest.mark.parametrize("left", [False, True])
@pytest.mark.parametrize("policy", ["mean", "first", "last", "max", "tokens"])
def test_3d_with_mask(policy, left):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((7, 6, 3)) - 5.0  # negative values: max must not see padding zeros
    mask = _mask(rng, 7, 6, left=left)
    got = cg.pool(x, policy, mask)
    np.testing.assert_allclose(got, _ref3(x, policy, mask), rtol=0, atol=1e-14)
    # boolean masks and tensors as masks give the same
    np.testing.assert_array_equal(cg.pool(x, policy, mask.astype(bool)), got)
    np.testing.assert_array_equal(cg.pool(x, policy, torch.from_numpy(mask)), got)


def test_padded_positions_do_not_matter():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 5, 2))
    mask = _mask(rng, 4, 5)
    y = x.copy()
    y[mask == 0] = 1e6  # change the padding only
    for policy in ("mean", "first", "last", "max", "tokens"):
        np.testing.assert_array_equal(cg.pool(x, policy, mask), cg.pool(y, policy, mask))


def test_flatten_refuses_padding_but_accepts_a_full_mask():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 4, 2))
    np.testing.assert_array_equal(cg.pool(x, "flatten", np.ones((3, 4))), x.reshape(3, 8))
    mask = np.ones((3, 4))
    mask[2, 3] = 0
    with pytest.raises(ValueError, match="flatten.*padding.*1 row.*row 2"):
        cg.pool(x, "flatten", mask)


def test_4d_policies():
    x = np.random.default_rng(5).standard_normal((3, 4, 2, 5))
    n, c, h, w = x.shape
    flat = np.array(
        [[x[i, a, u, v] for a in range(c) for u in range(h) for v in range(w)] for i in range(n)]
    )
    np.testing.assert_array_equal(cg.pool(x, "flatten"), flat)
    gap = np.array(
        [
            [sum(x[i, a, u, v] for u in range(h) for v in range(w)) / (h * w) for a in range(c)]
            for i in range(n)
        ]
    )
    np.testing.assert_allclose(cg.pool(x, "mean"), gap, rtol=0, atol=1e-14)
    spatial = np.array(
        [[x[i, a, u, v] for a in range(c)] for i in range(n) for u in range(h) for v in range(w)]
    )
    np.testing.assert_array_equal(cg.pool(x, "spatial"), spatial)


def test_2d_is_returned_unchanged_for_every_policy():
    x = np.random.default_rng(6).standard_normal((4, 3)).astype(np.float32)
    for policy in ("mean", "tokens", "spatial", "flatten"):
        np.testing.assert_array_equal(cg.pool(x, policy), x)
    assert cg.pool(np.arange(6).reshape(3, 2), "mean").dtype == np.float64


def test_dtypes_and_tensors():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((4, 3, 2)).astype(np.float32)
    got = cg.pool(x, "mean")
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, x.astype(np.float64).mean(axis=1), rtol=0, atol=1e-6)
    t = torch.from_numpy(x)
    np.testing.assert_array_equal(cg.pool(t, "max"), cg.pool(x, "max"))
    half = cg.pool(t.half(), "first")
    assert half.dtype == np.float32
    np.testing.assert_array_equal(half, t.half().float().numpy()[:, 0])
    bf = cg.pool(t.bfloat16(), "last")
    assert bf.dtype == np.float32
    np.testing.assert_array_equal(bf, t.bfloat16().float().numpy()[:, -1])
    # integer activations are pooled as float64
    ints = np.arange(24).reshape(2, 3, 4)
    np.testing.assert_array_equal(cg.pool(ints, "mean"), ints.mean(axis=1))


def test_errors():
    x3 = np.zeros((2, 3, 4))
    x4 = np.zeros((2, 3, 4, 5))
    with pytest.raises(
        ValueError, match="'spatial'.*3-D.*'mean', 'first', 'last', 'max', 'flatten', 'tokens'"
    ):
        cg.pool(x3, "spatial")
    with pytest.raises(ValueError, match="'tokens'.*4-D.*'flatten', 'mean', 'spatial'"):
        cg.pool(x4, "tokens")
    with pytest.raises(ValueError, match="policy='avg'.*expected one of"):
        cg.pool(np.zeros((2, 3)), "avg")
    with pytest.raises(ValueError, match=r"acts has shape \(2, 3, 4, 5, 1\) \(5-D\)"):
        cg.pool(np.zeros((2, 3, 4, 5, 1)), "mean")
    with pytest.raises(ValueError, match=r"mask has shape \(2, 4\).*\(2, 3\)"):
        cg.pool(x3, "mean", np.ones((2, 4)))
    with pytest.raises(ValueError, match="mask holds 1 value.*other than 0 and 1"):
        cg.pool(x3, "mean", np.array([[1, 1, 2], [1, 0, 0]]))
    with pytest.raises(ValueError, match="row 1 .*no unmasked token"):
        cg.pool(x3, "last", np.array([[1, 1, 0], [0, 0, 0]]))
    with pytest.raises(ValueError, match="mask is for 3-D"):
        cg.pool(x4, "mean", np.ones((2, 3)))
    with pytest.raises(InputTypeError):
        cg.pool(np.zeros((2, 3, 4), dtype=complex), "mean")
    with pytest.raises(ValueError, match="layer 'h'"):
        cg.pool(x3, "spatial", name="layer 'h'")
