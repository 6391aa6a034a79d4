"""Type-checked by ``tests/test_typing.py`` (mypy, strict about the calls): the public API as a
user writes it. Not collected by pytest (no ``test_`` prefix); mypy reports a call whose
arguments or result the annotations reject."""

from __future__ import annotations

import numpy as np

import congruence as cg

X = np.zeros((10, 3))
Y = [[0.0, 1.0, 2.0]] * 10  # nested lists are ArrayLike too

value: float = cg.cka(X, Y, kernel="rbf", sigma_frac=0.5)
value = cg.hsic(X, X, unbiased=True)
value = cg.compare(X, Y, "cca", statistic="r2")
value = cg.rsa(X, Y, rsm="euclidean", compare="kendall_tau_a")
value = cg.knn_jaccard(X, Y, k=3)
value = cg.disagreement([0, 1], [1, 1])
value = cg.prediction_difference(X, X, X, p=2)

res: cg.LayerComparison = cg.compare_layers({"h1": X}, [X, X], "cka", progress=False)
best: dict[str, str] = res.best_match()
sig: np.ndarray = res.significant(alpha=0.05, correction="holm")
text: str = res.to_csv()
res.save("out.json")
again: cg.LayerComparison = cg.load_result("out.json")

test: cg.PermutationTest = cg.permutation_test(X, Y, "cka", n_permutations=10, seed=0)
p: float = test.pvalue
boot: cg.BootstrapResult = cg.bootstrap(X, Y, "cca", n_boot=10, method="bca", seed=1)
low: float = boot.low
pooled: np.ndarray = cg.pool(np.zeros((4, 5, 6)), "mean")
version: str = cg.__version__
