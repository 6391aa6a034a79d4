"""The layer-identification study (examples/layer_identification.py): its bookkeeping on
synthetic networks with a known answer, and a smoke run of the script."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

import congruence as cg

SCRIPT = Path(__file__).parents[1] / "examples" / "layer_identification.py"


@pytest.fixture(scope="module")
def study():
    spec = importlib.util.spec_from_file_location("layer_identification", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def fake_networks(n_networks=3, widths=(6, 5, 4, 3), n=60, noise=0.05, same=None, seed=0):
    """Networks whose layer ``l`` is a random rotation of a shared signal ``Z_l`` plus a
    little noise (the signals are independent, so every measure should find layer ``l``).
    ``same=(a, b)`` makes layer ``b`` an exact copy of layer ``a`` in every network."""
    rng = np.random.default_rng(seed)
    signals = [rng.standard_normal((n, p)) for p in widths]
    nets = []
    for _ in range(n_networks):
        layers = {}
        for l, Z in enumerate(signals):
            Q, _ = np.linalg.qr(rng.standard_normal((Z.shape[1], Z.shape[1])))
            layers[f"h{l}"] = Z @ Q + noise * rng.standard_normal(Z.shape)
        if same is not None:
            a, b = same
            layers[f"h{b}"] = layers[f"h{a}"].copy()
        nets.append(layers)
    return nets


@pytest.mark.parametrize(
    "spec_args",
    [
        ("CKA", "cka", {}),
        ("RBF CKA", "cka", {"kernel": "rbf", "sigma_frac": 0.8}),
        ("CCA", "cca", {"statistic": "r2"}),
        ("Procrustes", "orthogonal_procrustes", {}),  # a distance: the smallest is best
    ],
)
def test_noisy_copies_of_shared_layers_are_all_identified(study, spec_args):
    label, measure, params = spec_args
    nets = fake_networks()
    matrices, nan_cells = study.all_layer_matrices(nets, study.Spec(label, measure, params))
    assert sorted(matrices) == [(i, j) for i in range(3) for j in range(3) if i != j]
    assert nan_cells == 0 and all(S.shape == (4, 4) for S in matrices.values())
    distance = cg.get_measure(measure).kind == "distance"
    assert study.identification_accuracy(matrices, distance=distance) == 1.0
    # the measure read the wrong way round finds the corresponding layer never
    assert study.identification_accuracy(matrices, distance=not distance) == 0.0


def test_blocks_are_the_measure_between_the_two_networks(study):
    nets = fake_networks(n_networks=3)
    matrices, _ = study.all_layer_matrices(nets, study.Spec("CKA", "cka"))
    for (i, j), S in matrices.items():
        for l in range(4):
            for m in range(4):
                assert S[l, m] == pytest.approx(
                    cg.cka(nets[i][f"h{l}"], nets[j][f"h{m}"]), abs=1e-12
                )


def test_asymmetric_measures_are_symmetrised_as_the_sum_of_both_directions(study):
    nets = fake_networks(n_networks=2, widths=(5, 3, 4))
    spec = study.Spec("LR", "linear_regression", symmetrise=True)
    matrices, _ = study.all_layer_matrices(nets, spec)
    A, B = nets
    for l in range(3):
        for m in range(3):
            X, Y = A[f"h{l}"], B[f"h{m}"]
            both = cg.linear_regression(X, Y) + cg.linear_regression(Y, X)
            assert matrices[0, 1][l, m] == pytest.approx(both, abs=1e-12)
            assert matrices[1, 0][m, l] == pytest.approx(both, abs=1e-12)
    assert study.identification_accuracy(matrices) == 1.0


def test_identical_layers_cap_the_accuracy(study):
    # Layers 1 and 2 are the same array in every network: the rows of layer 1 and layer 2
    # each tie between layers 1 and 2 (credit 1/2), the other L - 2 rows are found, so the
    # accuracy is (L - 2 + 2 / 2) / L = (L - 1) / L, whichever way a tie is broken on average.
    L = 5
    nets = fake_networks(widths=(6, 5, 5, 4, 3), same=(1, 2))
    for spec in (study.Spec("CKA", "cka"), study.Spec("kNN", "knn_jaccard", {"k": 5})):
        matrices, _ = study.all_layer_matrices(nets, spec)
        S = matrices[0, 1]
        assert S[1, 1] == S[1, 2] and S[2, 1] == S[2, 2]
        assert study.identification_accuracy(matrices) == pytest.approx((L - 1) / L, abs=1e-15)


def test_accuracy_by_hand(study):
    nan = np.nan
    S01 = np.array([[0.9, 0.1, 0.2], [0.3, 0.2, 0.8], [0.0, 0.0, 0.0]])
    # row 0: found; row 1: layer 2 wins; row 2: three-way tie, credit 1/3
    S10 = np.array([[nan, 0.5, 0.1], [nan, nan, nan], [0.1, 0.2, 0.7]])
    # row 0: its own cell is nan, a miss; row 1: all nan, a miss; row 2: found
    acc = study.identification_accuracy({(0, 1): S01, (1, 0): S10})
    assert acc == pytest.approx((1 + 0 + 1 / 3 + 0 + 0 + 1) / 6, abs=1e-15)
    # as distances the smallest wins: S01 row 0 misses, row 1 (0.2 at layer 1) is found,
    # row 2 ties three ways; S10 row 0 misses (own cell nan), row 2 (0.1 at 0) misses
    acc = study.identification_accuracy({(0, 1): S01, (1, 0): S10}, distance=True)
    assert acc == pytest.approx((0 + 1 + 1 / 3 + 0 + 0 + 0) / 6, abs=1e-15)
    with pytest.raises(ValueError, match="square"):
        study.identification_accuracy({(0, 1): np.ones((2, 3))})
    with pytest.raises(ValueError, match="square"):
        study.identification_accuracy({(0, 1): np.ones((2, 2)), (1, 0): np.ones((3, 3))})
    # per layer: layer 0 earns 1 + 0, layer 1 earns 0 + 0, layer 2 earns 1/3 + 1 (over 2)
    by_layer = study.identification_by_layer({(0, 1): S01, (1, 0): S10})
    assert by_layer == pytest.approx([0.5, 0.0, 2 / 3], abs=1e-15)
    with pytest.raises(ValueError, match="at least two networks"):
        study.identification_accuracy({})


def test_networks_must_share_their_layers(study):
    nets = fake_networks(n_networks=2)
    del nets[1]["h3"]
    with pytest.raises(ValueError, match="network 1 has layers"):
        study.all_layer_matrices(nets, study.Spec("CKA", "cka"))


def test_smoke_run_of_the_script(study, tmp_path, capsys):
    pytest.importorskip("torch")
    out = tmp_path / "generated" / "table.md"
    result = study.main(["--networks", "2", "--epochs", "1", "--out", str(out)])
    text = out.read_text(encoding="utf-8")
    assert capsys.readouterr().out == text
    lines = text.splitlines()
    assert lines[0] == "| Measure | This study (%) | Kornblith et al. Table 2 (%) |"
    assert len(result["rows"]) == len(study.SPECS) and len(lines) >= 2 + len(study.SPECS)
    for row, line in zip(result["rows"], lines[2:]):
        assert line.startswith(f"| {row['spec'].label} | ")
        assert 0.0 <= row["accuracy"] <= 100.0
        assert row["cells"] == 2 * 8 * 8  # two ordered pairs of eight layers
        assert row["by_layer"].mean() == pytest.approx(row["accuracy"], abs=1e-12)
    assert "| CKA (linear) |" in text and "| 99.3 |" in text
    assert "2 networks" in text and "n = 540 held-out" in text
    # globally average-pooled convolutions: one column per channel, Tiny-10's widths
    assert result["widths"] == (16, 32, 64)
    assert list(result["layer_widths"].values()) == [16, 16, 32, 32, 32, 64, 64, 64]
