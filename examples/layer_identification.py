#!/usr/bin/env python
"""Which measures find the corresponding layer? Kornblith et al.'s sanity check, on digits.

Kornblith, Norouzi, Lee and Hinton (2019, "Similarity of Neural Network Representations
Revisited", Section 6.1 and Table 2) train ten architecturally identical networks from
different random seeds and ask, for each layer ``l`` of each network ``i`` and each other
network ``j``, whether the layer of ``j`` most similar to layer ``l`` of ``i`` is layer ``l``.
The accuracy of a measure is the fraction of the ``N (N - 1) L`` triples ``(i, j != i, l)`` for
which it is (for a distance, the *least distant* layer).

This script runs that protocol on scikit-learn's bundled handwritten digits (nothing is
downloaded) with :func:`congruence.digits.tiny10_cnn`, a ten-layer network shaped after the
paper's Tiny-10, with its channel widths 16, 32, 64. Each of the eight convolutional layers is
globally average-pooled (one value per channel) and compared on the 540 held-out digits with
:func:`congruence.compare_layers`; the network's own global-average-pooling layer is then the
pooled last convolution, so it is not compared twice. The study page (``docs/study.md``)
explains these choices::

    python examples/layer_identification.py                  # prints the table
    python examples/layer_identification.py --out docs/_generated/study_table.md
    python examples/layer_identification.py --networks 2 --epochs 1    # a quick check

Needs ``pip install "congruence[torch]" scikit-learn``. The full run (ten networks) takes a
few minutes on 2 CPU cores; every seed is fixed, so the table is reproducible.
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional, Sequence

import numpy as np
from threadpoolctl import threadpool_limits

import congruence as cg
import congruence.digits as cgd
from congruence._files import atomic_write

#: Relative tolerance under which two values of one row count as tied for the best.
TIE_RTOL = 1e-12


@dataclass(frozen=True)
class Spec:
    """One row of the table: a measure of :func:`congruence.compare_layers` with its
    parameters, and the paper's Table 2 accuracy in % (``None``: not in the paper)."""

    label: str
    measure: str
    params: Mapping[str, Any] = field(default_factory=dict)
    paper: Optional[float] = None
    #: asymmetric measures are symmetrised as s(X, Y) + s(Y, X) (the paper's "S + S^T")
    symmetrise: bool = False


#: The measures compared, in the order of the paper's Table 2, then the others.
SPECS: tuple[Spec, ...] = (
    Spec("CCA (mean rho)", "cca", {"statistic": "mean"}, 1.4),
    Spec("CCA (R2)", "cca", {"statistic": "r2"}, 10.6),
    Spec("SVCCA (mean rho), 0.99 variance", "svcca", {"variance": 0.99, "statistic": "mean"}, 9.9),
    Spec("SVCCA (R2), 0.99 variance", "svcca", {"variance": 0.99, "statistic": "r2"}, 15.1),
    Spec("PWCCA, s(X,Y) + s(Y,X)", "pwcca", {}, 11.1, symmetrise=True),
    Spec("Linear regression, s(X,Y) + s(Y,X)", "linear_regression", {}, 45.4, symmetrise=True),
    Spec("Linear HSIC", "hsic", {"kernel": "linear"}, 22.2),
    Spec("CKA (linear)", "cka", {"kernel": "linear"}, 99.3),
    Spec("CKA (RBF 0.2)", "cka", {"kernel": "rbf", "sigma_frac": 0.2}, 80.6),
    Spec("CKA (RBF 0.4)", "cka", {"kernel": "rbf", "sigma_frac": 0.4}, 99.1),
    Spec("CKA (RBF 0.8)", "cka", {"kernel": "rbf", "sigma_frac": 0.8}, 99.3),
    Spec("CKA (linear, debiased)", "cka", {"kernel": "linear", "debiased": True}),
    Spec("Orthogonal Procrustes (distance)", "orthogonal_procrustes"),
    Spec("RSA (correlation RDM, Spearman)", "rsa", {"rsm": "correlation", "compare": "spearman"}),
    Spec("kNN Jaccard (k = 10)", "knn_jaccard", {"k": 10}),
    Spec("Mutual kNN (k = 10)", "mutual_knn", {"k": 10}),
)


# --------------------------------------------------------------------------------------------
# The bookkeeping: from layer matrices to an identification accuracy
# --------------------------------------------------------------------------------------------


def all_layer_matrices(
    nets: Sequence[Mapping[str, np.ndarray]], spec: Spec
) -> tuple[dict[tuple[int, int], np.ndarray], int]:
    """``S[i, j]``, the ``L x L`` matrix ``s(layer l of net i, layer m of net j)`` for every
    ordered pair ``i != j``, and the number of their cells that could not be computed (nan).

    All layers of all networks go to one :func:`congruence.compare_layers` call, so each
    layer is prepared once (its Gram matrix, basis or neighbour lists) however many networks
    there are. With ``spec.symmetrise`` the matrix is ``s(X, Y) + s(Y, X)``: ``S[i, j]`` plus
    the transpose of ``S[j, i]``.
    """
    names = list(nets[0])
    for k, acts in enumerate(nets):
        if list(acts) != names:
            raise ValueError(f"network {k} has layers {list(acts)}, network 0 has {names}")
    L = len(names)
    stacked = {f"{k}:{name}": acts[name] for k, acts in enumerate(nets) for name in names}
    with warnings.catch_warnings():
        # dead units, p1 + p2 near n and cells that cannot be computed are reported by the
        # nan count and the study page rather than once per layer
        warnings.simplefilter("ignore", cg.DegenerateDataWarning)
        res = cg.compare_layers(
            stacked, measure=spec.measure, progress=False, on_error="nan", **spec.params
        )
    V = res.values
    out: dict[tuple[int, int], np.ndarray] = {}
    nan_cells = 0
    for i in range(len(nets)):
        for j in range(len(nets)):
            if i == j:
                continue
            S = V[i * L : (i + 1) * L, j * L : (j + 1) * L].copy()
            if spec.symmetrise:
                S = S + V[j * L : (j + 1) * L, i * L : (i + 1) * L].T
            out[i, j] = S
            nan_cells += int(np.isnan(S).sum())
    return out, nan_cells


def identification_by_layer(
    matrices: Mapping[tuple[int, int], np.ndarray], distance: bool = False
) -> np.ndarray:
    """The accuracy of each layer ``l``: the mean credit of row ``l`` over the matrices.

    For each ordered pair, row ``l`` of ``S[i, j]`` holds the similarity of layer ``l`` of
    network ``i`` with every layer of network ``j``; the best is the largest (the smallest for
    a ``distance``). A row whose best value is shared by ``k`` layers (within a relative
    ``TIE_RTOL``), ``l`` among them, earns ``1/k``: the expected score of breaking the tie at
    random, so that identical layers are not credited to whichever comes first. nan cells are
    never best; a row whose own cell is nan earns 0.

    >>> S = np.array([[0.9, 0.2], [0.9, 0.9]])   # row 1: layers 0 and 1 tie
    >>> identification_by_layer({(0, 1): S}).tolist()
    [1.0, 0.5]
    >>> identification_by_layer({(0, 1): S}, distance=True).tolist()   # smallest is best
    [0.0, 0.5]
    """
    if not matrices:
        raise ValueError("no layer matrices: need at least two networks")
    shapes = {np.shape(S) for S in matrices.values()}
    first = next(iter(shapes))
    if len(shapes) != 1 or len(first) != 2 or first[0] != first[1] or first[0] < 1:
        raise ValueError(f"the layer matrices must all be square L x L, got shapes {shapes}")
    L = first[0]
    score = np.zeros(L)
    for S in matrices.values():
        V = np.asarray(S, dtype=np.float64)
        if distance:
            V = -V
        for l, row in enumerate(V):
            ok = ~np.isnan(row)
            if not ok[l]:
                continue
            best = row[ok].max()
            tied = ok & (row >= best - TIE_RTOL * max(abs(best), 1e-300))
            if tied[l]:
                score[l] += 1.0 / int(tied.sum())
    return score / len(matrices)


def identification_accuracy(
    matrices: Mapping[tuple[int, int], np.ndarray], distance: bool = False
) -> float:
    """The fraction of triples ``(i, j, l)`` whose best layer of ``j`` is ``l`` (ties and nan
    as in :func:`identification_by_layer`).

    >>> S = np.array([[0.9, 0.2], [0.9, 0.9]])
    >>> identification_accuracy({(0, 1): S}), identification_accuracy({(0, 1): S}, True)
    (0.75, 0.25)
    """
    return float(identification_by_layer(matrices, distance).mean())


# --------------------------------------------------------------------------------------------
# The study
# --------------------------------------------------------------------------------------------

#: The compared layers: the eight convolutions of ``tiny10_cnn``. Its ninth hidden layer, the
#: global average pooling, equals the pooled eighth convolution, so it is left out.
LAYERS = [k for k, name in cgd.TINY10_LAYERS.items() if name.startswith("conv")]


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    """torch's intra-op threads set to ``n`` for the block (the networks are so small that
    more threads only add synchronisation, and on a busy machine oversubscription)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def train_networks(n_networks: int, epochs: int, widths: Sequence[int]) -> list:
    """``n_networks`` :func:`~congruence.digits.tiny10_cnn` trained from seeds 0, 1, ..."""
    X_train, _, y_train, _ = cgd.split()
    with _torch_threads(1):
        return [
            cgd.train_cnn(
                seed, X_train, y_train, epochs=epochs, build=lambda: cgd.tiny10_cnn(widths)
            )
            for seed in range(n_networks)
        ]


def accuracy(net: Any, X: np.ndarray, y: np.ndarray) -> float:
    """Classification accuracy of ``net`` on the images ``X`` with labels ``y``."""
    import torch

    with torch.no_grad(), _torch_threads(1):
        return float((net(cgd.as_images(X)).argmax(1).numpy() == y).mean())


def activations(net: Any, X: np.ndarray) -> dict[str, np.ndarray]:
    """The eight convolutional layers of ``net`` on the images ``X``, each channel averaged
    over its feature map (global average pooling), as float64 ``(n, channels)``."""
    with _torch_threads(1):
        acts = cg.extract(net, cgd.as_images(X), LAYERS, pooling="mean", progress=False)
    return {cgd.TINY10_LAYERS[k]: np.asarray(v, dtype=np.float64) for k, v in acts.items()}


def _log(what: str, t: float, c: float) -> None:
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    print(f"  {what} ({wall:.1f} s, CPU {cpu:.1f} s)", file=sys.stderr, flush=True)


def run(
    n_networks: int = 10,
    epochs: int = 20,
    widths: Sequence[int] = (16, 32, 64),
    specs: Sequence[Spec] = SPECS,
    log: bool = False,
) -> dict[str, Any]:
    """Train the networks and compute each measure's identification accuracy (in %); with
    ``log``, report each step's wall and CPU time on stderr."""
    if n_networks < 2:
        raise ValueError(f"n_networks must be at least 2, got {n_networks}")
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    t0, c0 = time.perf_counter(), time.process_time()
    X_train, X_test, y_train, y_test = cgd.split()
    nets = train_networks(n_networks, epochs, widths)
    t_train = time.perf_counter() - t0
    if log:
        _log(f"trained {n_networks} networks", t0, c0)
    train_acc = [accuracy(net, X_train, y_train) for net in nets]
    test_acc = [accuracy(net, X_test, y_test) for net in nets]
    acts = [activations(net, X_test) for net in nets]
    rows = []
    for spec in specs:
        t, c = time.perf_counter(), time.process_time()
        # BLAS single-threaded: the matrices are small (at most 540 x 540), so threads gain
        # little, and on a busy machine oversubscribed BLAS threads are many times slower
        with threadpool_limits(limits=1, user_api="blas"):
            matrices, nan_cells = all_layer_matrices(acts, spec)
        kind = cg.get_measure(spec.measure).kind
        by_layer = 100.0 * identification_by_layer(matrices, distance=(kind == "distance"))
        acc = float(by_layer.mean())
        rows.append(
            {
                "spec": spec,
                "accuracy": acc,
                "by_layer": by_layer,
                "nan_cells": nan_cells,
                "cells": sum(S.size for S in matrices.values()),
                "seconds": time.perf_counter() - t,
            }
        )
        if log:
            _log(f"{spec.label}: {acc:.1f}%", t, c)
    return {
        "rows": rows,
        "n_networks": n_networks,
        "epochs": epochs,
        "widths": tuple(widths),
        "layer_widths": {name: x.shape[1] for name, x in acts[0].items()},
        "n": len(X_test),
        "n_train": len(X_train),
        "train_accuracy": train_acc,
        "test_accuracy": test_acc,
        "train_seconds": t_train,
        "seconds": time.perf_counter() - t0,
    }


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------


def _pct(x: Optional[float]) -> str:
    return "-" if x is None else f"{x:.1f}"


def markdown(result: Mapping[str, Any]) -> str:
    """The MyST Markdown fragment: the table and the facts of the run."""
    N, L = result["n_networks"], len(result["layer_widths"])
    lines = [
        "| Measure | This study (%) | Kornblith et al. Table 2 (%) |",
        "| :-- | --: | --: |",
    ]
    for row in result["rows"]:
        spec = row["spec"]
        note = f" ({row['nan_cells']} of {row['cells']} cells nan)" if row["nan_cells"] else ""
        lines.append(f"| {spec.label} | {_pct(row['accuracy'])}{note} | {_pct(spec.paper)} |")
    widths = ", ".join(f"{k} {v}" for k, v in result["layer_widths"].items())
    tr, te = np.asarray(result["train_accuracy"]), np.asarray(result["test_accuracy"])
    lines += [
        "",
        f"Accuracy over {N * (N - 1) * L} triples: {N} networks "
        f"(`tiny10_cnn(widths={tuple(result['widths'])})`, seeds 0 to {N - 1}, "
        f"{result['epochs']} epochs of Adam on the {result['n_train']} training digits), "
        f"each of the {N * (N - 1)} ordered pairs, {L} layers. Similarity on the "
        f"n = {result['n']} held-out digits, each convolutional layer globally "
        f"average-pooled (widths: {widths}). Classification accuracy of the networks: "
        f"training {tr.min():.3f} to {tr.max():.3f}, held-out {te.min():.3f} to "
        f"{te.max():.3f}.",
    ]
    for label in ("CKA (linear)", "CKA (RBF 0.2)"):
        row = next((r for r in result["rows"] if r["spec"].label == label), None)
        if row is not None:
            per = ", ".join(f"{k} {v:.0f}" for k, v in zip(result["layer_widths"], row["by_layer"]))
            lines += ["", f"{label}, accuracy per layer (%): {per}."]
    lines += [
        "",
        f"Wall time {result['seconds']:.0f} s ({result['train_seconds']:.0f} s of "
        f"training) on {platform.machine()}, congruence {cg.__version__}.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: Optional[Sequence[str]] = None) -> dict[str, Any]:
    """Command line: run the study, print the table, and write it with ``--out``."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--networks", type=int, default=10, help="networks (default 10)")
    parser.add_argument("--epochs", type=int, default=20, help="training epochs (default 20)")
    parser.add_argument("--out", type=Path, help="also write the MyST Markdown table here")
    parser.add_argument(
        "--log", action="store_true", help="report each step's time on stderr as it ends"
    )
    args = parser.parse_args(argv)
    result = run(n_networks=args.networks, epochs=args.epochs, log=args.log)
    text = markdown(result)
    print(text, end="")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(args.out, text)
    return result


if __name__ == "__main__":
    main()
