"""cg.compare_models against cg.compare_layers / cg.MinibatchCKA fed by hand."""

import numpy as np
import pytest
import torch
from torch_models import bert, cnn, digits, hooks_left, mlp, token_batches

import congruence as cg
import congruence._memory
from congruence.streaming import batch_bounds

LAYERS = ["0", "3", "7", "9"]


def _f64(acts):
    return {k: v.astype(np.float64) for k, v in acts.items()}


@pytest.fixture(scope="module")
def two_cnns():
    x, y = digits(160)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=48)
    a, b = cnn(0), cnn(1)
    acts_a = cg.extract(a, loader, LAYERS, pooling="mean")
    acts_b = cg.extract(b, loader, LAYERS, pooling="mean")
    return a, b, loader, acts_a, acts_b


@pytest.mark.parametrize(
    "measure, params",
    [
        ("cka", {}),
        ("cka", {"debiased": True}),
        ("hsic", {}),
        ("hsic", {"unbiased": True}),
        ("cka", {"kernel": "rbf"}),
        ("rsa", {}),
        ("orthogonal_procrustes", {}),
        ("cca", {}),
    ],
)
def test_equals_compare_layers_on_float64_copies(two_cnns, measure, params):
    a, b, loader, acts_a, acts_b = two_cnns
    got = cg.compare_models(a, b, loader, LAYERS, measure=measure, pooling="mean", **params)
    want = cg.compare_layers(_f64(acts_a), _f64(acts_b), measure, **params)
    assert got.rows == got.cols == tuple(LAYERS)
    assert got.measure == want.measure and dict(got.params) == dict(want.params)
    np.testing.assert_allclose(got.values, want.values, rtol=0, atol=1e-10)
    assert hooks_left(a) == hooks_left(b) == 0


def test_one_model_with_itself(two_cnns):
    a, _, loader, acts_a, _ = two_cnns
    got = cg.compare_models(a, None, loader, LAYERS, pooling="mean")
    want = cg.compare_layers(_f64(acts_a))
    np.testing.assert_allclose(got.values, want.values, rtol=0, atol=1e-10)
    np.testing.assert_allclose(np.diag(got.values), 1.0, rtol=0, atol=1e-12)
    # other layers as columns, the same model passed twice, and a gathering measure
    sub = cg.compare_models(a, a, loader, ["3", "7"], ["0", "9", "3"], pooling="mean")
    want = cg.compare_layers(
        _f64({k: acts_a[k] for k in ("3", "7")}), _f64({k: acts_a[k] for k in ("0", "9", "3")})
    )
    assert sub.rows == ("3", "7") and sub.cols == ("0", "9", "3")
    np.testing.assert_allclose(sub.values, want.values, rtol=0, atol=1e-10)
    rsa = cg.compare_models(a, None, loader, ["3", "7"], ["9"], "rsa", pooling="mean")
    want = cg.compare_layers(
        _f64({k: acts_a[k] for k in ("3", "7")}), _f64({"9": acts_a["9"]}), "rsa"
    )
    np.testing.assert_allclose(rsa.values, want.values, rtol=0, atol=1e-10)


@pytest.mark.parametrize("debiased", [False, True])
def test_exact_blocks_of_forward_batches_and_threads(two_cnns, monkeypatch, debiased):
    # the forward batches (48 rows) are added in blocks of at least MODEL_BLOCK rows,
    # their products shared by torch's thread count (the bits do not depend on it: see
    # test_streaming); the value is that of compare_layers
    a, b, loader, acts_a, acts_b = two_cnns
    monkeypatch.setattr("congruence.models.MODEL_BLOCK", 100)
    monkeypatch.setattr("congruence.streaming.moments._THREADED_WORK", 0)
    blocks = []
    real = cg.LayerAccumulator._absorb

    def spy(self, prepared):  # each update of the accumulator: its rows, its threads
        blocks.append((prepared[3][0].shape[0], self._workers))
        return real(self, prepared)

    monkeypatch.setattr(cg.LayerAccumulator, "_absorb", spy)
    want = cg.compare_layers(_f64(acts_a), _f64(acts_b), "cka", debiased=debiased)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        got = cg.compare_models(a, b, loader, LAYERS, pooling="mean", debiased=debiased)
    finally:
        torch.set_num_threads(threads)
    assert blocks == [(144, 2), (16, 2)]  # 3 forward batches of 48, then the last 16 rows
    np.testing.assert_allclose(got.values, want.values, rtol=0, atol=1e-10)


class _Twice(torch.nn.Module):
    """A block whose Linear runs twice per forward pass (a reused module), then a ReLU."""

    def __init__(self, seed):
        super().__init__()
        torch.manual_seed(seed)
        self.conv = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.lin = torch.nn.Linear(4, 4)
        self.act = torch.nn.ReLU()

    def forward(self, x):
        h = self.conv(x).mean(dim=(2, 3))
        return self.act(self.lin(self.lin(h)))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_exact_path_reuses_its_buffers(dtype):
    # the exact estimator writes each batch's pooled activations into buffers kept from
    # batch to batch: batches that grow and shrink, a module that runs twice (each call its
    # own buffer) and half-precision models (converted on copy) give compare_layers' value
    # on what extract returns (which keeps every batch in its own memory)
    x = digits(120)[0].to(dtype)
    sizes = [5, 40, 17, 58]
    batches = [x[sum(sizes[:i]) : sum(sizes[: i + 1])] for i in range(len(sizes))]
    a, b = cnn(0).to(dtype), _Twice(1).to(dtype)
    la, lb = ["0", "4", "7"], ["conv", "lin", "act"]
    for model in (a, b):
        model.eval()
    kw = dict(pooling="mean", reuse="stack")
    got = cg.compare_models(a, b, batches, la, lb, **kw)
    want = cg.compare_layers(
        _f64(cg.extract(a, batches, la, **kw)), _f64(cg.extract(b, batches, lb, **kw))
    )
    assert got.rows == tuple(la) and got.cols == tuple(lb)
    np.testing.assert_allclose(got.values, want.values, rtol=0, atol=1e-10)
    assert hooks_left(a) == hooks_left(b) == 0


def test_minibatch_estimator_regroups_forward_batches(two_cnns):
    a, b, loader, acts_a, acts_b = two_cnns  # forward batches of 48 rows, n = 160
    for size in (32, 50, 200, None):
        got = cg.compare_models(
            a, b, loader, LAYERS, pooling="mean", estimator="minibatch", batch_size=size
        )
        by_hand = cg.MinibatchCKA()
        for s, e in batch_bounds(160, 48 if size is None else size, "merge"):
            by_hand.update(
                {k: v[s:e] for k, v in acts_a.items()}, {k: v[s:e] for k, v in acts_b.items()}
            )
        want = by_hand.result()
        assert got.measure == "minibatch_cka" and got.params == want.params
        np.testing.assert_allclose(got.values, want.values, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="minibatch.*measure='cka' without parameters"):
        cg.compare_models(a, b, loader, LAYERS, measure="rsa", estimator="minibatch")
    with pytest.raises(ValueError, match="batch_size"):
        cg.compare_models(a, b, loader, LAYERS, estimator="minibatch", batch_size=3)


def test_one_tensor_and_batch_size(two_cnns):
    a, b, _, _, _ = two_cnns
    x, _ = digits(160)
    got = cg.compare_models(a, b, x, ["3", "9"], pooling="mean", batch_size=40, max_rows=100)
    want = cg.compare_layers(
        _f64(cg.extract(a, x[:100], ["3", "9"], pooling="mean", batch_size=40)),
        _f64(cg.extract(b, x[:100], ["3", "9"], pooling="mean", batch_size=40)),
    )
    np.testing.assert_allclose(got.values, want.values, rtol=0, atol=1e-10)


def test_gathered_on_disk(two_cnns, tmp_path):
    a, b, loader, acts_a, acts_b = two_cnns
    got = cg.compare_models(a, b, loader, LAYERS, measure="rsa", pooling="mean", out=tmp_path)
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == sorted(f"{k}.npy" for k in LAYERS)
    np.testing.assert_array_equal(np.load(tmp_path / "b" / "7.npy"), acts_b["7"])
    want = cg.compare_layers(acts_a, acts_b, "rsa")  # the float32 route, as from the files
    np.testing.assert_allclose(got.values, want.values, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="out= is for measures that gather"):
        cg.compare_models(a, b, loader, LAYERS, pooling="mean", out=tmp_path)


def test_memory_preflight_before_gathering(two_cnns, monkeypatch):
    a, b, loader, _, _ = two_cnns
    monkeypatch.setattr(congruence._memory, "memory_budget", lambda: 10_000)
    with pytest.raises(MemoryError, match="out=<directory>"):
        cg.compare_models(a, b, loader, LAYERS, measure="rsa", pooling="mean")
    # streaming linear CKA keeps nothing and needs no such room
    res = cg.compare_models(a, b, loader, ["7"], pooling="mean")
    assert res.values.shape == (1, 1)
    assert hooks_left(a) == hooks_left(b) == 0


def test_transformers_tokens_and_masks():
    ma, mb, batches = bert(0), bert(1), token_batches(3)
    for pooling in ("mean", "tokens", "last"):
        got = cg.compare_models(ma, mb, batches, "hidden_states", pooling=pooling)
        want = cg.compare_layers(
            _f64(cg.extract(ma, batches, "hidden_states", pooling=pooling)),
            _f64(cg.extract(mb, batches, "hidden_states", pooling=pooling)),
        )
        assert got.rows == ("hidden_states.0", "hidden_states.1", "hidden_states.2")
        np.testing.assert_allclose(got.values, want.values, rtol=0, atol=1e-10)
    # the pooler gives one row per input, the tokens one per real token: refused, with why
    with pytest.raises(ValueError, match="'pooler' of model_b gives 5 rows.*'tokens'"):
        cg.compare_models(ma, mb, batches, "encoder.layer.1", "pooler", pooling="tokens")
    assert hooks_left(ma) == hooks_left(mb) == 0


def test_checks_before_any_forward_pass():
    served = []

    def data():
        served.append(1)
        yield torch.randn(8, 12)

    a, b = mlp(0), mlp(1)
    with pytest.raises((TypeError, ValueError), match="debiasd"):
        cg.compare_models(a, b, data(), ["0"], debiasd=True)
    with pytest.raises(ValueError, match="estimator='fast'"):
        cg.compare_models(a, b, data(), ["0"], estimator="fast")
    with pytest.raises(ValueError, match="on_error='skip'"):
        cg.compare_models(a, b, data(), ["0"], on_error="skip")
    with pytest.raises(ValueError, match="model outputs"):
        cg.compare_models(a, b, data(), ["0"], measure="cohens_kappa")
    with pytest.raises(KeyError, match="did you mean '0'"):
        cg.compare_models(a, b, data(), ["0"], ["0x"])
    assert served == [] and hooks_left(a) == hooks_left(b) == 0


def test_cleanup_when_the_second_model_fails():
    a, b = mlp(0), mlp(1)
    a.train()
    b.eval()

    def data():
        yield torch.randn(8, 12)
        yield torch.randn(8, 12)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cg.compare_models(a, b, data(), ["0", "3"])
    assert all(m.training for m in a.modules()) and not any(m.training for m in b.modules())
    assert hooks_left(a) == hooks_left(b) == 0
    with pytest.raises(ValueError, match="3-D|4-D"):
        cg.compare_models(cnn(0), cnn(1), digits(10)[0], ["0"])


def test_on_error_on_the_gathering_path():
    """CCA needs p <= n - 1: the 20-wide first layer cannot be compared on 16 inputs."""
    import warnings

    a, b = mlp(3), mlp(4)
    x = torch.randn(16, 12)
    with pytest.raises(
        ValueError, match=r"cca\(a\['0'\], b\['3'\]\): a\['0'\] has shape \(16, 20\)"
    ):
        cg.compare_models(a, b, x, ["0", "5"], ["3", "5"], measure="cca", batch_size=8)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = cg.compare_models(
            a, b, x, ["0", "5"], ["3", "5"], measure="cca", batch_size=8, on_error="nan"
        )
    ours = [w for w in caught if "on_error='nan'" in str(w.message)]
    assert len(ours) == 1 and "a['0']" in str(ours[0].message)
    assert np.isnan(got.values[0]).all() and np.isfinite(got.values[1]).all()
    acts_a, acts_b = cg.extract(a, x, ["5"]), cg.extract(b, x, ["3", "5"])
    want = [
        cg.cca(acts_a["5"].astype(np.float64), acts_b[k].astype(np.float64)) for k in ("3", "5")
    ]
    np.testing.assert_allclose(got.values[1], want, rtol=0, atol=1e-10)
    assert hooks_left(a) == hooks_left(b) == 0
