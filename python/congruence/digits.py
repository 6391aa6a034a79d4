"""Small networks trained on scikit-learn's bundled handwritten digits (nothing downloaded):
the one home of the data split and the training used by the demo, the examples and studies.

* :func:`split` - the fixed, stratified 70/30 train/test split of the 1,797 8 x 8 digits, pixel
  intensities scaled to ``[0, 1]`` (the same for every seed, so networks trained from
  different seeds are evaluated on the same test inputs).
* :func:`train_mlp` / :func:`mlp_activations` - a ReLU multilayer perceptron
  (scikit-learn's ``MLPClassifier``) and its hidden activations; needs ``congruence[demo]``.
* :func:`small_cnn` / :func:`train_cnn` - a small convolutional network in PyTorch
  (conv 8, conv 16, max-pool, fc 64, logits), trained with Adam; needs ``congruence[torch]``
  and scikit-learn.
* :func:`tiny10_cnn` - a ten-layer network for 8 x 8 digits shaped after the Tiny-10 network
  of Kornblith et al. (2019, Appendix E): eight convolutions with batch normalisation, global
  average pooling, logits (the layer-identification study); trained by
  ``train_cnn(..., build=tiny10_cnn)``.

>>> from congruence.digits import split
>>> X_train, X_test, y_train, y_test = split()
>>> X_train.shape, X_test.shape, float(X_train.max())
((1257, 64), (540, 64), 1.0)
"""

from __future__ import annotations

import warnings
from typing import Any, Callable, Optional, Sequence

import numpy as np

__all__ = [
    "split",
    "train_mlp",
    "mlp_activations",
    "small_cnn",
    "as_images",
    "train_cnn",
    "CNN_LAYERS",
    "tiny10_cnn",
    "TINY10_LAYERS",
]

#: The fixed train/test split.
SPLIT_SEED = 0
TEST_SIZE = 0.3

#: Readable names of the compared modules of :func:`small_cnn` (``nn.Sequential`` numbers them).
CNN_LAYERS = {"1": "conv1", "3": "conv2", "7": "fc", "8": "logits"}

#: Readable names of the nine hidden layers of :func:`tiny10_cnn` (the module names of its
#: blocks; the logits, module ``"9"``, are left out as in Kornblith et al.'s Table 2).
TINY10_LAYERS = {
    "0": "conv1",
    "1": "conv2",
    "2": "conv3",
    "3": "conv4",
    "4": "conv5",
    "5": "conv6",
    "6": "conv7",
    "7": "conv8",
    "8": "pool",
}


def _sklearn():
    try:
        from sklearn.datasets import load_digits
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.model_selection import train_test_split
        from sklearn.neural_network import MLPClassifier
    except ImportError as exc:
        raise ImportError(
            "training the small digits networks needs scikit-learn, which is not installed: "
            'pip install "congruence[demo]"'
        ) from exc
    return load_digits, ConvergenceWarning, train_test_split, MLPClassifier


def split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``X_train, X_test, y_train, y_test``: float64 ``(n, 64)`` images in ``[0, 1]``."""
    load_digits, _, train_test_split, _ = _sklearn()
    X, y = load_digits(return_X_y=True)
    X = X / 16.0  # pixel intensities 0..16 -> [0, 1]
    return train_test_split(X, y, test_size=TEST_SIZE, random_state=SPLIT_SEED, stratify=y)


def train_mlp(seed: int, hidden: Sequence[int], max_iter: int, X_train, y_train) -> Any:
    """A ReLU ``MLPClassifier`` with ``random_state=seed`` fitted with Adam for ``max_iter``
    epochs (a ``ConvergenceWarning`` when it is reached is silenced)."""
    _, ConvergenceWarning, _, MLPClassifier = _sklearn()
    net = MLPClassifier(
        hidden_layer_sizes=tuple(hidden), activation="relu", max_iter=max_iter, random_state=seed
    )
    # The products are tiny (minibatches of 200 x 64): BLAS threads only add overhead, and
    # on a busy machine oversubscription makes training several times slower.
    from threadpoolctl import threadpool_limits

    with warnings.catch_warnings(), threadpool_limits(limits=1, user_api="blas"):
        warnings.simplefilter("ignore", ConvergenceWarning)
        net.fit(X_train, y_train)
    return net


def mlp_activations(net: Any, X: np.ndarray) -> dict[str, np.ndarray]:
    """``{"input": X, "hidden1": ..., ...}``: the post-ReLU activations of each hidden layer
    of a fitted ReLU ``MLPClassifier`` on ``X``."""
    out = {"input": X}
    h = X
    # coefs_[-1] maps the last hidden layer to the output layer: stop before it.
    for i, (W, b) in enumerate(zip(net.coefs_[:-1], net.intercepts_[:-1]), start=1):
        h = np.maximum(h @ W + b, 0.0)
        out[f"hidden{i}"] = h
    return out


def small_cnn() -> Any:
    """The small CNN for 1 x 8 x 8 digits (random weights from torch's current seed)."""
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.ReLU(),  # conv1: 8 x 8 x 8
        nn.Conv2d(8, 16, 3, padding=1),
        nn.ReLU(),  # conv2: 16 x 8 x 8
        nn.MaxPool2d(2),  # 16 x 4 x 4
        nn.Flatten(),
        nn.Linear(16 * 4 * 4, 64),
        nn.ReLU(),  # fc: 64
        nn.Linear(64, 10),  # logits
    )


def tiny10_cnn(widths: Sequence[int] = (8, 16, 32)) -> Any:
    """A ten-layer CNN for 1 x 8 x 8 digits after Kornblith et al.'s Tiny-10 (2019, Table E.1).

    With ``widths = (c1, c2, c3)`` (Tiny-10 has 16, 32, 64 for 32 x 32 images), the blocks are
    ``nn.Sequential`` modules named ``"0"`` to ``"9"``; each convolution (no bias) is followed
    by batch normalisation and a ReLU, and the block's output is the layer's activation:

    ====  ========================  ===============  =======================
    name  block                     output           flattened width
    ====  ========================  ===============  =======================
    0-1   3 x 3 conv c1, twice      c1 x 8 x 8       64 c1
    2     3 x 3 conv c2, stride 2   c2 x 4 x 4       16 c2
    3-4   3 x 3 conv c2, twice      c2 x 4 x 4       16 c2
    5     3 x 3 conv c3, stride 2   c3 x 2 x 2       4 c3
    6     3 x 3 conv c3             c3 x 2 x 2       4 c3
    7     1 x 1 conv c3             c3 x 2 x 2       4 c3
    8     global average pooling    c3               c3
    9     linear, 10 logits         10               10
    ====  ========================  ===============  =======================

    Tiny-10's seventh layer is a 3 x 3 convolution without padding; an 8 x 8 image is 2 x 2
    after two stride-2 layers, so here it is padded like the others. Random weights come from
    torch's current seed.

    >>> import torch
    >>> from congruence.digits import tiny10_cnn
    >>> _ = torch.manual_seed(0)
    >>> net = tiny10_cnn().eval()
    >>> net[:8](torch.zeros(5, 1, 8, 8)).shape, net(torch.zeros(5, 1, 8, 8)).shape
    (torch.Size([5, 32, 2, 2]), torch.Size([5, 10]))
    """
    from torch import nn

    if len(widths) != 3 or any(int(w) != w or w < 1 for w in widths):
        raise ValueError(f"widths must be three positive integers (c1, c2, c3), got {widths!r}")
    c1, c2, c3 = (int(w) for w in widths)

    def block(cin: int, cout: int, stride: int = 1, kernel: int = 3) -> Any:
        return nn.Sequential(
            nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(),
        )

    return nn.Sequential(
        block(1, c1),
        block(c1, c1),
        block(c1, c2, stride=2),
        block(c2, c2),
        block(c2, c2),
        block(c2, c3, stride=2),
        block(c3, c3),
        block(c3, c3, kernel=1),
        nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()),
        nn.Linear(c3, 10),
    )


def as_images(X: np.ndarray) -> Any:
    """float32 ``(n, 1, 8, 8)`` torch tensor of the ``(n, 64)`` images of :func:`split`."""
    import torch

    return torch.from_numpy(np.asarray(X, dtype=np.float32).reshape(-1, 1, 8, 8))


def train_cnn(
    seed: int, X_train, y_train, epochs: int = 10, *, build: Optional[Callable[[], Any]] = None
) -> Any:
    """:func:`small_cnn` (or the network ``build()`` returns, e.g. :func:`tiny10_cnn`) trained
    from ``seed`` (weights and minibatch order) with Adam (learning rate 2e-3, minibatches of
    64) for ``epochs`` epochs; returned in eval mode."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    net = small_cnn() if build is None else build()
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    X = X_train if isinstance(X_train, torch.Tensor) else as_images(X_train)
    y = torch.as_tensor(np.asarray(y_train), dtype=torch.long)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(X, y),
        batch_size=64,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
    )
    net.train()
    for _ in range(epochs):
        for xb, yb in loader:
            opt.zero_grad()
            nn.functional.cross_entropy(net(xb), yb).backward()
            opt.step()
    return net.eval()
