"""cg.extract on real PyTorch and transformers models built in the test (nothing downloaded)."""

import io
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn
from torch_models import bert, cnn, digits, hand_hook, hooks_left, mlp, token_batches

import congruence as cg
import congruence._memory
from congruence._progress import Progress
from congruence.errors import LayerNotFoundError


def _gap(t):
    return t.double().mean(dim=(2, 3)).numpy()


def test_import_congruence_does_not_import_torch():
    code = "import sys, congruence; print('torch' in sys.modules)"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.stdout.strip() == "False", out.stderr


def test_cnn_equals_hand_written_hooks():
    net, (x, _) = cnn(), digits(90)
    acts = cg.extract(net, x, ["0", "3", "7", "9"], pooling="mean", batch_size=32)
    assert list(acts) == ["0", "3", "7", "9"]
    for name in ("0", "3"):  # 4-D: global average pool, computed here in float64
        ref = _gap(hand_hook(net, name, x)[0])
        assert acts[name].dtype == np.float32 and acts[name].shape == ref.shape
        np.testing.assert_allclose(acts[name], ref, rtol=0, atol=2e-6)
    for name in ("7", "9"):  # 2-D: kept as they are
        np.testing.assert_array_equal(acts[name], hand_hook(net, name, x)[0].numpy())
    flat = cg.extract(net, x, "3", pooling="flatten", batch_size=50)["3"]
    np.testing.assert_array_equal(flat, hand_hook(net, "3", x)[0].reshape(90, -1).numpy())
    spatial = cg.extract(net, x, "3", pooling="spatial")["3"]
    ref = hand_hook(net, "3", x)[0].permute(0, 2, 3, 1).reshape(-1, 8).numpy()
    np.testing.assert_array_equal(spatial, ref)


def test_inplace_relu_after_a_hooked_layer():
    # Conv -> ReLU(inplace=True): the hooked conv output is overwritten later in the forward
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(inplace=True), nn.Flatten())
    x = torch.randn(20, 1, 6, 6)
    got = cg.extract(net, x, "0", pooling="flatten")["0"]
    with torch.no_grad():
        want = net[0](x).reshape(20, -1).numpy()
    assert (want < 0).any()
    np.testing.assert_array_equal(got, want)


def test_data_forms_give_the_same_arrays():
    net, (x, y) = mlp(), (torch.randn(70, 12), torch.arange(70))
    want = cg.extract(net, x, ["1", "4"], batch_size=16)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16)
    forms = {
        "loader": loader,
        "list of tensors": [x[s : s + 9] for s in range(0, 70, 9)],
        "tuples": [(x[s : s + 9], y[s : s + 9]) for s in range(0, 70, 9)],
        "generator": (x[s : s + 20] for s in range(0, 70, 20)),
        "numpy": x.numpy().astype(np.float64),  # cast to the model's float32
        "input_fn": [{"features": x[s : s + 30]} for s in range(0, 70, 30)],
    }
    for label, data in forms.items():
        kw = {"input_fn": lambda b: b["features"]} if label == "input_fn" else {}
        got = cg.extract(net, data, ["1", "4"], batch_size=16, **kw)
        for k in want:
            # other batch sizes round differently inside BLAS (float32 products)
            np.testing.assert_allclose(got[k], want[k], rtol=0, atol=1e-6, err_msg=label)
    for k in want:  # the same batches as a hand-written hook: equal
        hooked = np.concatenate([hand_hook(net, k, b[0])[0].numpy() for b in loader])
        np.testing.assert_array_equal(cg.extract(net, loader, k)[k], hooked)


def test_single_samples_without_a_batch_dimension_are_refused():
    # A DataLoader with batch_size=None yields one (16,) sample at a time: its first dimension
    # (16) would count as 16 inputs and a (32,) output as 32 rows of one feature.
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 32))
    x = torch.randn(20, 16)
    samples = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x), batch_size=None)
    with pytest.raises(
        ValueError, match=r"layer '2' of the model gives 32 rows for a batch of 16 "
    ):
        cg.extract(net, samples, ["2"])
    with pytest.raises(ValueError, match="without a batch dimension"):
        cg.compare_models(net, None, samples, ["0", "2"])
    # the same samples in batches: one row per input
    batched = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x), batch_size=8)
    assert cg.extract(net, batched, ["2"])["2"].shape == (20, 32)


def test_a_misspelled_pooling_key_is_named_in_the_error():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 36, 3))
    x = torch.randn(10, 1, 8, 8)
    with pytest.raises(ValueError, match=r"pooling= has no key '0'; its keys are \['conv0'\]"):
        cg.extract(net, x, ["0", "3"], pooling={"conv0": "mean"})


def test_close_matches_are_listed_once():
    # two models with the same layer names once gave "did you mean 'h.2' or 'h.2' or ..."
    from congruence.results import layer_not_found

    msg = str(layer_not_found("h.3", ["h.2", "h.1", "h.2", "h.1"], "the requested layers"))
    assert msg.count("'h.2'") == 1 and msg.count("'h.1'") == 1


def test_max_rows_cuts_the_last_batch():
    net, x = mlp(), torch.randn(70, 12)
    got = cg.extract(net, x, "4", max_rows=37, batch_size=16)["4"]
    want = [hand_hook(net, "4", x[s:e])[0].numpy() for s, e in ((0, 16), (16, 32), (32, 37))]
    np.testing.assert_array_equal(got, np.concatenate(want))


def test_glob_patterns_module_objects_and_unknown_names():
    model = bert()
    acts = cg.extract(model, token_batches(1), "encoder.layer.*", pooling="first")
    assert list(acts) == ["encoder.layer.0", "encoder.layer.1"]
    deep = cg.extract(model, token_batches(1), "encoder.**.output.dense", pooling="first")
    assert list(deep) == [
        "encoder.layer.0.attention.output.dense",
        "encoder.layer.0.output.dense",
        "encoder.layer.1.attention.output.dense",
        "encoder.layer.1.output.dense",
    ]
    objs = cg.extract(
        model, token_batches(1), [model.encoder.layer[1], model.pooler], pooling="last"
    )
    assert list(objs) == ["encoder.layer.1", "pooler"] and objs["pooler"].shape == (5, 32)
    with pytest.raises(
        LayerNotFoundError, match="'encoder.layr.0'.*did you mean 'encoder.layer.0'"
    ):
        cg.extract(model, token_batches(1), ["encoder.layr.0"], pooling="mean")
    with pytest.raises(KeyError):
        cg.extract(model, token_batches(1), "decoder.*", pooling="mean")
    with pytest.raises(ValueError, match="not one of its submodules"):
        cg.extract(model, token_batches(1), nn.Linear(2, 2))
    assert hooks_left(model) == 0


def test_hidden_states_with_attention_mask():
    model, batches = bert(), token_batches(3)
    acts = cg.extract(model, batches, "hidden_states", pooling="mean")
    assert list(acts) == ["hidden_states.0", "hidden_states.1", "hidden_states.2"]
    rows = {k: [] for k in acts}
    for b in batches:
        with torch.no_grad():
            hs = model(**b, output_hidden_states=True).hidden_states
        mask = b["attention_mask"].numpy()
        for i, h in enumerate(hs):
            h = h.double().numpy()
            for r in range(h.shape[0]):  # mean over the real tokens only
                real = [h[r, t] for t in range(h.shape[1]) if mask[r, t]]
                rows[f"hidden_states.{i}"].append(sum(real) / len(real))
    for k in acts:
        np.testing.assert_allclose(acts[k], np.array(rows[k]), rtol=0, atol=1e-6)
    tokens = cg.extract(model, batches, ["hidden_states"], pooling="tokens")
    n_real = sum(int(b["attention_mask"].sum()) for b in batches)
    assert all(v.shape == (n_real, 32) for v in tokens.values())
    with pytest.raises(ValueError, match="hidden_states"):
        cg.extract(mlp(), torch.randn(5, 12), "hidden_states")


def test_3d_without_pooling_fails_in_the_first_batch():
    model = bert()
    served = []

    def data():
        for b in token_batches(3):
            served.append(1)
            yield b

    with pytest.raises(
        ValueError, match=r"'encoder.layer.0'.*\(5, 9, 32\).*'mean', 'first'.*'spatial'"
    ):
        cg.extract(model, data(), "encoder.layer.0")
    assert len(served) == 1 and hooks_left(model) == 0


class _TupleNet(nn.Module):
    """A block returning (hidden, aux) and one returning a dict; a ReLU used twice."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.lin = nn.Linear(6, 5)
        self.act = nn.ReLU()
        self.lin2 = nn.Linear(5, 5)

    def forward(self, x):
        h = self.act(self.lin(x))
        return self.act(self.lin2(h) - 0.1)


class _Pair(nn.Module):
    def forward(self, x):
        return x * 2, x.sum(dim=1, keepdim=True)


class _Dict(nn.Module):
    def forward(self, x):
        return {"double": x * 2, "neg": -x}


def test_tuple_dict_and_model_outputs():
    net = nn.Sequential(nn.Linear(4, 3), _Pair())
    x = torch.randn(8, 4)
    with torch.no_grad():
        h = net[0](x)
    np.testing.assert_array_equal(cg.extract(net, x, "1")["1"], (h * 2).numpy())
    np.testing.assert_array_equal(
        cg.extract(net, x, "1", output=1)["1"], h.sum(1, keepdim=True).numpy()
    )
    np.testing.assert_array_equal(
        cg.extract(net, x, "1", output=lambda o: o[0] + o[1])["1"],
        (h * 2 + h.sum(1, keepdim=True)).numpy(),
    )
    with pytest.raises(ValueError, match="output=5.*tuple.*2 item"):
        cg.extract(net, x, "1", output=5)
    dnet = nn.Sequential(nn.Linear(4, 3), _Dict())
    with pytest.raises(ValueError, match="dict with keys \\['double', 'neg'\\].*output="):
        cg.extract(dnet, x, "1")
    np.testing.assert_array_equal(
        cg.extract(dnet, x, "1", output="neg")["1"], -dnet[0](x).detach().numpy()
    )
    with pytest.raises(ValueError, match="output='pos'.*keys \\['double', 'neg'\\]"):
        cg.extract(dnet, x, "1", output="pos")
    # a transformers ModelOutput: the encoder returns BaseModelOutput...
    model, batches = bert(), token_batches(1)
    with torch.no_grad():
        want = model(**batches[0]).last_hidden_state[:, 0].numpy()
    for out in (None, 0, "last_hidden_state"):
        got = cg.extract(model, batches, "encoder", pooling="first", output=out)["encoder"]
        np.testing.assert_array_equal(got, want)


def test_reused_module():
    net, x = _TupleNet(), torch.randn(10, 6)
    with pytest.raises(ValueError, match="module 'act' of the model ran 2 times.*reuse="):
        cg.extract(net, x, "act")
    assert hooks_left(net) == 0
    calls = hand_hook(net, "act", x)
    assert len(calls) == 2
    first = cg.extract(net, x, "act", reuse="first")["act"]
    last = cg.extract(net, x, ["act", "lin"], reuse="last")["act"]
    stack = cg.extract(net, x, "act", reuse="stack", batch_size=3)["act"]
    np.testing.assert_array_equal(first, calls[0].numpy())
    np.testing.assert_array_equal(last, calls[1].numpy())
    np.testing.assert_array_equal(stack, torch.cat(calls, dim=1).numpy())
    with pytest.raises(ValueError, match="reuse='again'"):
        cg.extract(net, x, "act", reuse="again")


def _flags(model):
    return [m.training for m in model.modules()]


def _mixed_flags_model():
    net = mlp()
    net.train()
    net[2].eval()  # one submodule in eval mode: must come back as it was
    return net, _flags(net)


def test_training_flag_restored_and_hooks_removed_after_success():
    net, flags = _mixed_flags_model()
    x = torch.randn(30, 12)
    seen = []
    spy = net[3].register_forward_hook(
        lambda m, i, o: seen.append((torch.is_inference_mode_enabled(), m.training))
    )
    acts = cg.extract(net, x, ["2", "3"])
    spy.remove()
    assert seen == [(True, False)]
    assert _flags(net) == flags and hooks_left(net) == 0
    # eval mode during extraction: dropout (layer 2) was the identity
    np.testing.assert_array_equal(acts["2"], torch.tanh(net[0](x)).detach().numpy())


class _Boom(Exception):
    pass


@pytest.mark.parametrize("exc", [_Boom, KeyboardInterrupt])
def test_cleanup_after_exception_in_the_data_iterator(exc):
    net, flags = _mixed_flags_model()

    def data():
        yield torch.randn(4, 12)
        raise exc()

    with pytest.raises(exc):
        cg.extract(net, data(), ["0", "4"])
    assert _flags(net) == flags and hooks_left(net) == 0


@pytest.mark.parametrize("exc", [_Boom, KeyboardInterrupt])
def test_cleanup_after_exception_in_the_forward_pass(exc):
    net, flags = _mixed_flags_model()
    calls = []

    def explode(module, inputs, output):
        calls.append(1)
        if len(calls) == 2:
            raise exc()

    handle = net[3].register_forward_hook(explode)
    try:
        with pytest.raises(exc):
            cg.extract(net, torch.randn(20, 12), ["0", "4"], batch_size=5)
    finally:
        handle.remove()
    assert _flags(net) == flags and hooks_left(net) == 0


def test_half_precision_models():
    x = torch.randn(16, 12)
    for dtype in (torch.bfloat16, torch.float16):
        net = mlp().to(dtype)
        got = cg.extract(net, x.to(dtype), ["0", "5"])
        assert all(v.dtype == np.float32 for v in got.values())
        np.testing.assert_array_equal(got["0"], hand_hook(net, "0", x.to(dtype))[0].float().numpy())
        # float NumPy input takes the model's dtype
        np.testing.assert_array_equal(cg.extract(net, x.numpy(), "0")["0"], got["0"])


def test_meta_device_is_refused():
    with torch.device("meta"):
        net = mlp()
    with pytest.raises(ValueError, match="'meta' device.*to_empty"):
        cg.extract(net, torch.randn(4, 12), "0")
    with pytest.raises(ValueError, match="device='meta'"):
        cg.extract(mlp(), torch.randn(4, 12), "0", device="meta")
    net = mlp()
    with pytest.raises(ValueError, match="'meta' device"):
        cg.extract(net, [torch.empty(4, 12, device="meta")], "0")
    assert hooks_left(net) == 0


def test_out_directory_writes_growing_npy_files(tmp_path):
    net, (x, _) = cnn(), digits(75)
    want = cg.extract(net, x, ["3", "7"], pooling={"3": "flatten"}, batch_size=20)
    got = cg.extract(net, x, ["3", "7"], pooling={"3": "flatten"}, batch_size=20, out=tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["3.npy", "7.npy"]
    for k in want:
        assert isinstance(got[k], np.memmap) and got[k].dtype == np.float32
        np.testing.assert_array_equal(np.asarray(got[k]), want[k])
        np.testing.assert_array_equal(np.load(tmp_path / f"{k}.npy"), want[k])

    # interrupted after two batches: each file is a valid .npy of the rows written so far
    def data():
        yield x[:20]
        yield x[20:40]
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cg.extract(net, data(), ["7"], out=tmp_path / "part")
    np.testing.assert_array_equal(np.load(tmp_path / "part" / "7.npy"), want["7"][:40])
    assert hooks_left(net) == 0


def test_pooling_dict_and_layers_that_do_not_run():
    net, (x, _) = cnn(), digits(20)
    got = cg.extract(net, x, ["0", "3"], pooling={"0": "mean", "3": "flatten"})
    assert got["0"].shape == (20, 6) and got["3"].shape == (20, 8 * 64)
    with pytest.raises(LayerNotFoundError, match="pooling"):
        cg.extract(net, x, ["0"], pooling={"0": "mean", "9x": "mean"})
    with pytest.raises(ValueError, match="pooling='avg'"):
        cg.extract(net, x, ["0"], pooling="avg")

    class Skip(nn.Module):
        def __init__(self):
            super().__init__()
            self.used, self.unused = nn.Linear(3, 3), nn.Linear(3, 3)

        def forward(self, x):
            return self.used(x)

    with pytest.raises(ValueError, match="'unused'.*did not run"):
        cg.extract(Skip(), torch.randn(4, 3), ["used", "unused"])


def test_memory_preflight_suggests_out(monkeypatch):
    monkeypatch.setattr(congruence._memory, "memory_budget", lambda: 1000)
    with pytest.raises(MemoryError, match="out="):
        cg.extract(mlp(), torch.randn(64, 12), "0", batch_size=8)


def test_progress_plain_counter_without_tqdm(monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    buf = io.StringIO()
    with Progress(True, total=10, unit="input", delay=0.0, file=buf) as bar:
        for _ in range(5):
            bar.update(2)
    text = buf.getvalue()
    assert "congruence: 10/10 inputs" in text and text.endswith("\n")
    quiet = io.StringIO()
    with Progress(True, total=10, file=quiet) as bar:  # ends within the 1 s delay
        bar.update(10)
    assert quiet.getvalue() == ""
    # progress=True never needs tqdm
    got = cg.extract(mlp(), torch.randn(8, 12), "0", progress=True)
    assert got["0"].shape == (8, 20)


def test_invalid_options():
    net, x = mlp(), torch.randn(8, 12)
    with pytest.raises(ValueError, match="batch_size"):
        cg.extract(net, x, "0", batch_size=0)
    with pytest.raises(ValueError, match="max_rows"):
        cg.extract(net, x, "0", max_rows=0)
    with pytest.raises(ValueError, match="data must be"):
        cg.extract(net, {"x": x}, "0")
    with pytest.raises(ValueError, match="torch.nn.Module"):
        cg.extract(lambda t: t, x, "0")
    with pytest.raises(ValueError, match="no batch"):
        cg.extract(net, [], "0")


def _ulps32(got, want):
    """Distance in float32 units in the last place, entry by entry."""
    g = np.asarray(got, dtype=np.float32).view(np.int32).astype(np.int64)
    w = np.asarray(want, dtype=np.float32).view(np.int32).astype(np.int64)
    return np.abs(g - w)


def test_torch_side_pooling_equals_cg_pool():
    # the hooks pool 'mean' (3-D and 4-D) and 'max' (3-D) in torch: the float32 of the same
    # float64 mean as cg.pool, so at most one float32 unit apart (max: exactly equal)
    from congruence.torch import _pool_tensor

    g = torch.Generator().manual_seed(5)
    mask = np.ones((6, 7), dtype=np.int64)
    mask[1, 4:] = 0
    mask[3, 1:] = 0
    mask[5, :6] = 0  # left padding
    cases = [
        (torch.randn(6, 5, 7, 3, generator=g) * 3 + 1, "mean", None),
        (torch.randn(6, 5, 4, 4, generator=g).to(memory_format=torch.channels_last), "mean", None),
        (torch.randn(6, 7, 5, generator=g), "mean", None),
        (torch.randn(6, 7, 5, generator=g), "mean", mask),
        (torch.randn(6, 7, 5, generator=g), "max", None),
        (torch.randn(6, 7, 5, generator=g), "max", mask),
        (torch.randn(6, 7, 5, generator=g), "mean", np.ones((6, 7))),  # a full mask
        (torch.randn(6, 7, 5, generator=g).half(), "mean", mask),
        (torch.randn(6, 5, 3, 3, generator=g).bfloat16(), "mean", None),
        (torch.randn(6, 7, 5, generator=g, dtype=torch.float64) * 1e3, "mean", mask),
    ]
    for t, policy, m in cases:
        got = _pool_tensor(t, policy, m, "acts", torch)
        assert got.dtype == torch.float32 and got.is_contiguous()
        ref = cg.pool(t if t.dtype != torch.bfloat16 else t.float(), policy, m)
        assert got.shape == ref.shape
        if policy == "max":
            np.testing.assert_array_equal(got.numpy(), ref.astype(np.float32))
        else:
            assert _ulps32(got.numpy(), ref).max() <= 1, (t.shape, t.dtype, policy)
        if t.dim() == 4:  # and against a loop over the positions, in float64
            x = t.double().numpy()
            want = sum(x[:, :, u, v] for u in range(x.shape[2]) for v in range(x.shape[3]))
            np.testing.assert_allclose(got.numpy(), want / (x.shape[2] * x.shape[3]), rtol=1e-6)
    # 2-D: a float32 copy of its own; other cases go through cg.pool (None here)
    t = torch.randn(4, 3, generator=g)
    got = _pool_tensor(t, None, None, "acts", torch)
    np.testing.assert_array_equal(got.numpy(), t.numpy())
    assert got.data_ptr() != t.data_ptr()
    tt = torch.randn(3, 4, generator=g).T  # a transposed view: a C-ordered copy
    got = _pool_tensor(tt, "mean", None, "acts", torch)
    assert got.is_contiguous() and got.numpy().flags.c_contiguous
    np.testing.assert_array_equal(got.numpy(), tt.numpy())
    assert _pool_tensor(torch.randn(5, generator=g), "mean", None, "a", torch).shape == (5, 1)
    for t, policy in [
        (torch.randn(2, 3, 4, 4), "spatial"),
        (torch.randn(2, 3, 4, 4), "flatten"),
        (torch.randn(2, 3, 4), "first"),
        (torch.randn(2, 3, 4), None),
        (torch.arange(24).reshape(2, 3, 4), "mean"),
        (torch.randn(0, 3, 4), "mean"),
    ]:
        assert _pool_tensor(t, policy, None, "acts", torch) is None
    # the mask is checked as cg.pool checks it
    with pytest.raises(ValueError, match="row 1.*no unmasked token"):
        _pool_tensor(torch.randn(2, 3, 4), "mean", np.array([[1, 1, 0], [0, 0, 0]]), "a", torch)


def test_global_average_pool_sums_in_float64():
    # the 4-D mean of a float32 CPU tensor is one pass of the core (congruence._core.
    # row_means_f32): float64 sums, so a channel holding 2^24 and ones keeps the ones that a
    # float32 sum would lose, and the mean is rounded to float32 once
    from congruence import _core
    from congruence.torch import _pool_tensor

    t = torch.ones(2, 3, 4, 4)
    t[0, 1, 0, 0] = 2.0**24
    t[1, 2] = torch.arange(16.0).reshape(4, 4) * 0.1
    got = _pool_tensor(t, "mean", None, "acts", torch)
    x = t.double().numpy()
    want = (x.sum(axis=(2, 3)) / 16).astype(np.float32)  # float64 sums, one rounding
    np.testing.assert_array_equal(got.numpy(), want)
    assert got[0, 1].item() == np.float32((2.0**24 + 15) / 16)
    assert torch.sum(t[0, 1], dtype=torch.float32).item() != 2.0**24 + 15  # float32 loses them
    # the kernel itself: one value per row, float32; wrong layouts are refused
    rows = np.random.default_rng(3).standard_normal((50, 37)).astype(np.float32)
    means = _core.row_means_f32(rows)
    assert means.dtype == np.float32 and means.shape == (50,)
    np.testing.assert_allclose(means, rows.astype(np.float64).mean(axis=1), rtol=1e-6)
    with pytest.raises(ValueError, match="C-contiguous"):
        _core.row_means_f32(rows[:, ::2])
    with pytest.raises(ValueError, match="no columns"):
        _core.row_means_f32(np.zeros((3, 0), dtype=np.float32))


def test_inplace_relu_after_a_hooked_2d_layer():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 8), nn.ReLU(inplace=True), nn.Linear(8, 2))
    x = torch.randn(30, 5)
    got = cg.extract(net, x, ["0", "1"], batch_size=7)
    with torch.no_grad():
        want = net[0](x).numpy()
    assert (want < 0).any()
    np.testing.assert_array_equal(got["0"], want)
    np.testing.assert_array_equal(got["1"], np.maximum(want, 0))


def test_pooled_in_torch_equals_pooled_by_cg_pool_in_extract():
    # extract's 4-D and masked 3-D means (pooled in torch) against cg.pool of the hooked
    # activations, within one float32 unit
    net, (x, _) = cnn(), digits(64)
    acts = cg.extract(net, x, ["0", "4"], pooling="mean", batch_size=20)
    for name in ("0", "4"):
        ref = np.concatenate(
            [cg.pool(hand_hook(net, name, x[s : s + 20])[0], "mean") for s in range(0, 64, 20)]
        )
        assert _ulps32(acts[name], ref).max() <= 1
    model, batches = bert(), token_batches(2)
    acts = cg.extract(model, batches, "hidden_states", pooling="mean")
    for i in range(3):
        ref = []
        for b in batches:
            with torch.no_grad():
                h = model(**b, output_hidden_states=True).hidden_states[i]
            ref.append(cg.pool(h, "mean", b["attention_mask"]))
        assert _ulps32(acts[f"hidden_states.{i}"], np.concatenate(ref)).max() <= 1
