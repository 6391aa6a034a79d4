"""The one home of the small digits networks (congruence.digits): split, MLP, CNN."""

from __future__ import annotations

import numpy as np
import pytest

from congruence import digits


def test_split_is_fixed_stratified_and_scaled():
    X_train, X_test, y_train, y_test = digits.split()
    assert X_train.shape == (1257, 64) and X_test.shape == (540, 64)
    assert X_train.min() == 0.0 and X_train.max() == 1.0
    again = digits.split()
    assert np.array_equal(again[1], X_test) and np.array_equal(again[3], y_test)
    # stratified: each class's share of the test set within one example of 30%
    for c in range(10):
        total = np.count_nonzero(y_train == c) + np.count_nonzero(y_test == c)
        assert abs(np.count_nonzero(y_test == c) - 0.3 * total) <= 1


def test_mlp_activations_reproduce_the_classifiers_predictions():
    X_train, X_test, y_train, _ = digits.split()
    net = digits.train_mlp(0, (32, 16), 30, X_train, y_train)
    acts = digits.mlp_activations(net, X_test)
    assert list(acts) == ["input", "hidden1", "hidden2"]
    assert acts["hidden1"].shape == (540, 32) and (acts["hidden2"] >= 0).all()
    logits = acts["hidden2"] @ net.coefs_[-1] + net.intercepts_[-1]
    assert np.array_equal(net.classes_[logits.argmax(axis=1)], net.predict(X_test))


def test_cnn_trains_deterministically_and_returns_in_eval_mode():
    torch = pytest.importorskip("torch")
    X_train, X_test, y_train, y_test = digits.split()
    a = digits.train_cnn(3, X_train, y_train, epochs=3)
    b = digits.train_cnn(3, X_train, y_train, epochs=3)
    assert not a.training
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    names = dict(a.named_modules())
    assert set(digits.CNN_LAYERS) <= set(names)
    with torch.no_grad():
        acc = float((a(digits.as_images(X_test)).argmax(1).numpy() == y_test).mean())
    assert acc > 0.6  # three epochs: well above the 0.1 of chance


def test_tiny10_layers_have_the_documented_shapes():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    c1, c2, c3 = 3, 5, 7
    net = digits.tiny10_cnn((c1, c2, c3)).eval()
    assert [name for name, _ in net.named_children()] == [str(k) for k in range(10)]
    assert list(digits.TINY10_LAYERS) == [str(k) for k in range(9)]  # logits left out
    expected = [(c1, 8, 8)] * 2 + [(c2, 4, 4)] * 3 + [(c3, 2, 2)] * 3 + [(c3,)] + [(10,)]
    h = torch.rand(4, 1, 8, 8)
    with torch.no_grad():
        for k, shape in enumerate(expected):
            h = net[k](h)
            assert tuple(h.shape) == (4, *shape), k
    # each convolution is followed by batch normalisation and a ReLU, without a bias
    for k in range(8):
        conv, bn, relu = net[k]
        assert isinstance(conv, torch.nn.Conv2d) and conv.bias is None
        assert isinstance(bn, torch.nn.BatchNorm2d) and isinstance(relu, torch.nn.ReLU)
    assert [net[k][0].stride for k in range(8)] == [(1, 1)] * 2 + [(2, 2)] + [(1, 1)] * 2 + [
        (2, 2)
    ] + [(1, 1)] * 2
    assert net[7][0].kernel_size == (1, 1)
    # global average pooling is the mean of each channel of the last feature map
    x = torch.rand(4, 1, 8, 8)
    with torch.no_grad():
        fmap = net[:8](x)
        assert torch.allclose(net[8](fmap), fmap.mean(dim=(2, 3)))


@pytest.mark.parametrize("widths", [(8, 16), (8, 0, 4), (8, 2.5, 4)])
def test_tiny10_refuses_bad_widths(widths):
    pytest.importorskip("torch")
    with pytest.raises(ValueError, match="widths must be three positive integers"):
        digits.tiny10_cnn(widths)


def test_train_cnn_builds_the_network_it_is_given():
    torch = pytest.importorskip("torch")
    X_train, X_test, y_train, y_test = digits.split()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny convolutions: more threads only contend on a busy machine
    try:
        a = digits.train_cnn(1, X_train, y_train, epochs=2, build=digits.tiny10_cnn)
        b = digits.train_cnn(1, X_train, y_train, epochs=2, build=digits.tiny10_cnn)
    finally:
        torch.set_num_threads(threads)
    assert not a.training and isinstance(a[8][0], torch.nn.AdaptiveAvgPool2d)
    for pa, pb in zip(a.state_dict().values(), b.state_dict().values()):
        assert torch.equal(pa, pb)  # weights and batch-norm statistics
    with torch.no_grad():
        acc = float((a(digits.as_images(X_test)).argmax(1).numpy() == y_test).mean())
    assert acc > 0.5  # two epochs: well above the 0.1 of chance
