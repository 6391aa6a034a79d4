"""Small models built in the tests (random weights, nothing downloaded)."""

import numpy as np
import torch
from torch import nn


def digits(n=200):
    """scikit-learn's bundled digits as (n, 1, 8, 8) float32 images in [0, 1], and labels."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = (X[:n] / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    return torch.from_numpy(X), torch.from_numpy(y[:n])


def cnn(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 6, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(6, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(8 * 4 * 4, 16),
        nn.ReLU(),
        nn.Linear(16, 10),
    )


def mlp(seed=0, d_in=12):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(d_in, 20),
        nn.Tanh(),
        nn.Dropout(0.5),
        nn.Linear(20, 9),
        nn.ReLU(),
        nn.Linear(9, 3),
    )


def bert(seed=0, layers=2):
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    cfg = BertConfig(
        vocab_size=60,
        hidden_size=32,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=48,
        max_position_embeddings=32,
    )
    return BertModel(cfg).eval()


def token_batches(n_batches=3, m=5, T=9, seed=0):
    """Tokenizer-like dict batches with right padding (every row has >= 2 real tokens)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n_batches):
        ids = torch.randint(1, 60, (m, T), generator=g)
        lengths = torch.randint(2, T + 1, (m,), generator=g)
        lengths[0] = T
        mask = (torch.arange(T)[None, :] < lengths[:, None]).long()
        out.append({"input_ids": ids * mask, "attention_mask": mask})
    return out


def hooks_left(model):
    """Number of congruence's forward hooks still registered on any module of ``model``
    (transformers installs hooks of its own on the first forward pass: those are not ours)."""
    return sum(
        "_Tap" in getattr(h, "__qualname__", "")
        for m in model.modules()
        for h in list(m._forward_hooks.values()) + list(m._forward_pre_hooks.values())
    )


def hand_hook(model, name, inputs, call=None):
    """The output of module ``name`` on ``inputs``, captured by a hand-written hook."""
    module = dict(model.named_modules())[name]
    seen = []
    h = module.register_forward_hook(lambda mod, i, o: seen.append(o.detach().clone()))
    try:
        with torch.no_grad():
            was = model.training
            model.eval()
            model(*inputs) if isinstance(inputs, tuple) else model(**inputs) if isinstance(
                inputs, dict
            ) else model(inputs)
            model.train(was)
    finally:
        h.remove()
    return seen if call is None else seen[call]
