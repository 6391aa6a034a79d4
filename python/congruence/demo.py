"""A worked example on built-in data: do two networks trained from different seeds learn the
same representations, layer by layer?

Two small ReLU multilayer perceptrons (scikit-learn's ``MLPClassifier``) are trained on the
handwritten digits bundled with scikit-learn (no download), differing only in their random
seed. Their hidden activations on the same held-out digits are compared layer by layer. With
CKA, layers at the same depth are more alike than layers at different depths (the diagonal
stands out, as in Kornblith et al. 2019, figure 2), while the deeper layers of such small
networks also resemble their neighbours.

Needs scikit-learn: ``pip install "congruence[demo]"``. Runs in a few seconds::

    congruence demo
    python -c "import congruence.demo as d; d.run()"
"""

from __future__ import annotations

import sys
from typing import Any, Sequence, TextIO

import numpy as np

from congruence import digits
from congruence.compare import compare_layers
from congruence.results import LayerComparison

__all__ = ["load_activations", "run"]

_HIDDEN = (128, 64, 32)
_MAX_ITER = 300


def load_activations(
    seed: int, hidden: Sequence[int] = _HIDDEN, max_iter: int = _MAX_ITER
) -> dict[str, np.ndarray]:
    """Train a ReLU MLP on the digits data with ``random_state=seed``; return its activations.

    Parameters
    ----------
    seed : int
        Random state of the network (initial weights and minibatch order). The data split
        is fixed, so networks with different seeds are evaluated on the same test inputs.
    hidden : sequence of int
        Widths of the hidden layers.
    max_iter : int
        Training epochs (Adam); a ``ConvergenceWarning`` when it is reached is silenced.

    Returns
    -------
    dict of str to ndarray of shape (n_test, width)
        ``{"input": X_test, "hidden1": ..., "hidden2": ..., ...}``: the test inputs and the
        post-ReLU activations of each hidden layer on them (``n_test = 540``).
    """
    X_train, X_test, y_train, _ = digits.split()
    net = digits.train_mlp(seed, hidden, max_iter, X_train, y_train)
    return digits.mlp_activations(net, X_test)


def _reading(result: LayerComparison) -> str:
    """One line: the best-matching layer of B for each layer of A, and diagonal vs off-diagonal."""
    best = result.best_match()
    on_diag = sum(best[r] == r for r in result.rows)
    word = "lowest" if result.kind == "distance" else "highest"
    pairs = ", ".join(f"{r} -> {c}" for r, c in best.items())
    # The input layer is the same data in both nets (trivially identical): leave it out.
    hidden = [i for i, r in enumerate(result.rows) if r != "input" and r in result.cols]
    idx = [result.cols.index(result.rows[i]) for i in hidden]
    sub = result.values[np.ix_(hidden, idx)]
    same = float(np.mean(np.diag(sub)))
    other = float(np.mean(sub[~np.eye(len(hidden), dtype=bool)])) if len(hidden) > 1 else np.nan
    return (
        f"Layer of B with the {word} {result.measure} for each layer of A: {pairs} "
        f"({on_diag} of {len(result.rows)} on the diagonal). Hidden layers at the same depth: "
        f"mean {same:.3f}; at different depths: mean {other:.3f}."
    )


def run(
    seed_a: int = 0,
    seed_b: int = 1,
    measure: str = "cka",
    file: TextIO = sys.stdout,
    **params: Any,
) -> LayerComparison:
    """Train two networks differing only in their seed and compare all their layers.

    Prints the test accuracy of each network, the matrix ``measure(A[row], B[col])`` and, for
    each layer of network A, the layer of network B most alike.

    Parameters
    ----------
    seed_a, seed_b : int
        Seeds of network A (rows) and network B (columns).
    measure : str
        A registered measure on representations.
    file : text stream
        Where to print (``sys.stdout``).
    **params
        The measure's parameters.

    Returns
    -------
    LayerComparison
    """
    X_train, X_test, y_train, y_test = digits.split()
    nets = [digits.train_mlp(s, _HIDDEN, _MAX_ITER, X_train, y_train) for s in (seed_a, seed_b)]
    widths = "-".join(map(str, _HIDDEN))
    print(
        f"Two ReLU MLPs ({widths}) trained on the scikit-learn digits ({len(X_train)} train, "
        f"{len(X_test)} test images), differing only in their seed:",
        file=file,
    )
    for label, seed, net in (("A", seed_a, nets[0]), ("B", seed_b, nets[1])):
        acc = net.score(X_test, y_test)
        print(f"  net {label} (seed {seed}): test accuracy {acc:.3f}", file=file)
    acts = [digits.mlp_activations(net, X_test) for net in nets]
    result = compare_layers(acts[0], acts[1], measure=measure, **params)
    print(f"\nRows: layers of net A; columns: layers of net B.\n{result}\n", file=file)
    print(_reading(result), file=file)
    return result
