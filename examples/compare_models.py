#!/usr/bin/env python
"""From two models to a layer matrix with congruence: ``python examples/compare_models.py``.

1. Two small CNNs are trained on scikit-learn's bundled handwritten digits (no download),
   differing only in their random seed, and compared layer by layer with linear CKA on the
   held-out digits: ``cg.compare_models`` hooks the layers, pools the convolutional feature
   maps (global average pool) and streams every batch into an exact accumulator.
2. Two tiny transformers built from a ``transformers`` config (random weights from two
   seeds, nothing downloaded) are compared through their hidden states, mean-pooled over the
   real tokens of padded sequences (the ``attention_mask`` of each batch is the pooling
   mask), then token by token.

Needs ``pip install "congruence[torch]" scikit-learn transformers``. Runs in well under a
minute on 2 CPU cores.
"""

from __future__ import annotations

import time

import torch
from torch import nn

import congruence as cg
import congruence.digits as cgd


def digits_tensors():
    """The digits split of :mod:`congruence.digits` as ``(n, 1, 8, 8)`` image tensors."""
    X_train, X_test, y_train, y_test = cgd.split()
    return (
        cgd.as_images(X_train),
        torch.from_numpy(y_train),
        cgd.as_images(X_test),
        torch.from_numpy(y_test),
    )


#: readable names for the modules compared (Sequential names them by position)
LAYERS = cgd.CNN_LAYERS


def accuracy(net: nn.Module, X: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((net(X).argmax(1) == y).float().mean())


def renamed(res: cg.LayerComparison) -> str:
    rows = [LAYERS.get(r, r) for r in res.rows]
    cols = [LAYERS.get(c, c) for c in res.cols]
    width = max(map(len, rows))
    lines = [" " * width + "  " + "  ".join(f"{c:>7}" for c in cols)]
    for r, vals in zip(rows, res.values):
        lines.append(f"{r:<{width}}  " + "  ".join(f"{v:7.3f}" for v in vals))
    return "\n".join(lines)


def two_cnns() -> None:
    X_train, y_train, X_test, y_test = digits_tensors()
    t0 = time.perf_counter()
    nets = [cgd.train_cnn(seed, X_train, y_train) for seed in (0, 1)]
    print(
        f"Two CNNs trained on the digits in {time.perf_counter() - t0:.1f} s "
        f"({len(X_train)} training images), seeds 0 and 1:"
    )
    for seed, net in zip((0, 1), nets):
        print(f"  seed {seed}: test accuracy {accuracy(net, X_test, y_test):.3f}")

    test = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(X_test, y_test), batch_size=128
    )
    # exact linear CKA, streamed batch by batch; feature maps pooled by global average pooling
    res = cg.compare_models(nets[0], nets[1], test, list(LAYERS), pooling="mean", progress=False)
    print(
        "\nLinear CKA, rows: layers of the seed-0 net, columns: the seed-1 net "
        f"({len(X_test)} test images):"
    )
    print(renamed(res))
    best = res.best_match()
    print(
        "Most similar layer of the other net: "
        + ", ".join(f"{LAYERS[r]} -> {LAYERS[c]}" for r, c in best.items())
    )

    # the same with flattened feature maps (every position a feature), and another measure
    flat = cg.compare_models(
        nets[0],
        nets[1],
        test,
        ["1", "3"],
        pooling="flatten",
        measure="cka",
        debiased=True,
        progress=False,
    )
    print("\nDebiased linear CKA of the flattened feature maps:")
    print(renamed(flat))


def tiny_transformer() -> None:
    from transformers import BertConfig, BertModel

    config = BertConfig(
        vocab_size=100,
        hidden_size=64,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=128,
        max_position_embeddings=64,
    )
    models = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        models.append(BertModel(config).eval())

    # tokenizer-like batches: padded sequences of 4 to 24 tokens with their attention masks
    g = torch.Generator().manual_seed(2)
    batches = []
    for _ in range(8):
        lengths = torch.randint(4, 25, (32,), generator=g)
        T = int(lengths.max())
        mask = (torch.arange(T)[None, :] < lengths[:, None]).long()
        ids = torch.randint(1, 100, (32, T), generator=g) * mask  # 0 is the padding id
        batches.append({"input_ids": ids, "attention_mask": mask})

    res = cg.compare_models(
        models[0], models[1], batches, "hidden_states", pooling="mean", progress=False
    )
    print(
        "\nTwo tiny BERTs (4 layers, random weights, seeds 0 and 1): hidden states "
        "mean-pooled over the real tokens of 256 padded sequences; linear CKA:"
    )
    print(res.format())
    # per token: every real token a row (padding left out), both models on the same tokens
    tokens = cg.compare_models(
        models[0], models[1], batches, "hidden_states", pooling="tokens", progress=False
    )
    n_tokens = sum(int(b["attention_mask"].sum()) for b in batches)
    print(f"\nThe same per token ({n_tokens} real tokens):")
    print(tokens.format())


if __name__ == "__main__":
    torch.set_num_threads(min(2, torch.get_num_threads()))
    two_cnns()
    tiny_transformer()
