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
