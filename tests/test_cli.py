"""The ``congruence`` command line: in process (``main([...])``) and as installed console script."""

from __future__ import annotations

import csv
import json
import shutil
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import CHILD_SIGINT

import congruence as cg
from congruence.cli import main, parse_params

N = 40


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run the installed console script (or ``python -m congruence.cli`` without it)."""
    exe = shutil.which("congruence")
    cmd = [exe] if exe else [sys.executable, "-m", "congruence.cli"]
    return subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def layers():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, 6))
    a = {"l1": x, "l2": np.tanh(x @ rng.standard_normal((6, 4))), "l3": x**2}
    b = {"m1": x + 0.1 * rng.standard_normal((N, 6)), "m2": np.abs(x)}
    return a, b


@pytest.fixture()
def files(tmp_path, layers):
    a, b = layers
    pa, pb = tmp_path / "a.npz", tmp_path / "b.npz"
    np.savez(pa, **a)
    np.savez(pb, **b)
    return pa, pb


def parse_matrix(text: str, rows) -> dict:
    """``{(row, col): value}`` from the printed labelled matrix."""
    lines = text.strip().splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith(rows[0] + " "))
    cols = lines[start - 1].split()
    out = {}
    for ln in lines[start : start + len(rows)]:
        name, *vals = ln.split()
        out.update({(name, c): float(v) for c, v in zip(cols, vals)})
    return out


def assert_one_line_error(err: str, *fragments: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("congruence: error: "), err
    assert "Traceback" not in err
    for f in fragments:
        assert f in lines[0], (f, err)


# ---------------------------------------------------------------- list, --version


def test_list_in_process(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    names = [ln.split()[0] for ln in out.splitlines()[2:] if ln.strip()]
    assert {"cka", "hsic"} <= set(names)
    assert set(names) == set(cg.list_measures())
    header = out.splitlines()[0].split()
    assert header == [
        "measure",
        "family",
        "kind",
        "range",
        "symmetric",
        "invariances",
        "parameters",
    ]
    cka_line = next(ln for ln in out.splitlines() if ln.startswith("cka "))
    assert "[0, 1]" in cka_line and "kernel='linear'" in cka_line and "debiased=False" in cka_line


def test_console_script_on_path_list_and_version():
    assert shutil.which("congruence"), "console script `congruence` not on PATH after install"
    res = run_cli("list")
    assert res.returncode == 0, res.stderr
    names = {ln.split()[0] for ln in res.stdout.splitlines()[2:] if ln.strip()}
    assert {"cka", "hsic"} <= names
    res = run_cli("--version")
    assert res.returncode == 0
    assert res.stdout.strip() == f"congruence {cg.__version__}"


def test_version_in_process(capsys):
    assert main(["--version"]) == 0
    assert cg.__version__ in capsys.readouterr().out


def test_no_command_is_usage_error(capsys):
    assert main([]) == 2
    assert "usage" in capsys.readouterr().err


# ---------------------------------------------------------------- compare


def test_compare_self(files, layers, capsys):
    pa, _ = files
    assert main(["compare", str(pa)]) == 0
    out = capsys.readouterr().out
    expected = cg.compare_layers(layers[0])
    assert out.strip() == str(expected).strip()
    got = parse_matrix(out, expected.rows)
    for r in expected.rows:
        for c in expected.cols:
            assert got[r, c] == pytest.approx(expected[r, c], abs=5e-4)


def test_compare_two_files_params_and_csv(files, layers, tmp_path, capsys):
    pa, pb = files
    out_csv = tmp_path / "result.csv"
    argv = [
        "compare",
        str(pa),
        str(pb),
        "--measure",
        "cka",
        "--param",
        "kernel=rbf",
        "--param",
        "sigma_frac=0.5",
        "--param",
        "debiased=True",
        "--out",
        str(out_csv),
        "--digits",
        "5",
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    expected = cg.compare_layers(
        layers[0], layers[1], "cka", kernel="rbf", sigma_frac=0.5, debiased=True
    )
    assert out.splitlines()[0] == "cka(kernel='rbf', sigma_frac=0.5, debiased=True) [similarity]"
    assert out.strip().endswith(expected.format(5))
    with open(out_csv, newline="") as f:
        header = f.readline()
        table = list(csv.reader(f))
    # the CSV of save(): a metadata line, then the table of to_csv()
    meta = json.loads(header[len("# congruence ") :])
    assert header.startswith("# congruence ") and meta["measure"] == "cka"
    assert meta["params"] == {"kernel": "rbf", "sigma_frac": 0.5, "debiased": True}
    assert table[0] == [""] + list(expected.cols)
    assert [row[0] for row in table[1:]] == list(expected.rows)
    values = np.array([[float(v) for v in row[1:]] for row in table[1:]])
    np.testing.assert_allclose(values, expected.values, rtol=0, atol=1e-12)


def test_compare_subprocess_hsic(files, layers):
    pa, pb = files
    res = run_cli("compare", str(pa), str(pb), "-m", "hsic", "-p", "unbiased=True")
    assert res.returncode == 0, res.stderr
    expected = cg.compare_layers(layers[0], layers[1], "hsic", unbiased=True)
    assert res.stdout.strip() == str(expected).strip()


def test_parse_params():
    assert parse_params(["kernel=rbf", "sigma_frac=0.5", "debiased=True", "name='x y'"]) == {
        "kernel": "rbf",
        "sigma_frac": 0.5,
        "debiased": True,
        "name": "x y",
    }
    assert parse_params(["k=a=b"]) == {"k": "a=b"}


# ---------------------------------------------------------------- errors: exit 2, one line


@pytest.mark.parametrize(
    "extra, fragments",
    [
        (["--measure", "ckaa"], ["unknown measure 'ckaa'", "cka"]),
        (["--param", "bogus=1"], ["bogus"]),
        (["--param", "kernel=poly"], ["kernel"]),
        (["--param", "sigma_frac=-1"], ["sigma_frac"]),
        (["--param", "sigma_frac"], ["NAME=VALUE"]),
    ],
)
def test_bad_measure_or_param(files, capsys, extra, fragments):
    pa, _ = files
    assert main(["compare", str(pa)] + extra) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert_one_line_error(captured.err, *fragments)


def test_missing_file(tmp_path, capsys):
    missing = tmp_path / "nope.npz"
    assert main(["compare", str(missing)]) == 2
    assert_one_line_error(capsys.readouterr().err, "nope.npz", "no such file")


def test_not_an_npz(tmp_path, capsys):
    p = tmp_path / "x.npz"
    p.write_text("not an archive")
    assert main(["compare", str(p)]) == 2
    assert_one_line_error(capsys.readouterr().err, "x.npz", "not an .npz")


def test_pickled_npz_is_refused(tmp_path, capsys):
    p = tmp_path / "obj.npz"
    np.savez(p, layer=np.array([{"a": 1}, None], dtype=object))
    assert main(["compare", str(p)]) == 2
    assert_one_line_error(capsys.readouterr().err, "obj.npz", "pickle")


def test_shape_errors(tmp_path, files, capsys):
    pa, _ = files
    short = tmp_path / "short.npz"
    np.savez(short, h=np.zeros((N - 5, 3)))
    assert main(["compare", str(pa), str(short)]) == 2
    assert_one_line_error(capsys.readouterr().err, "rows")
    flat = tmp_path / "flat.npz"
    np.savez(flat, h=np.arange(10.0))
    assert main(["compare", str(flat)]) == 2
    assert_one_line_error(capsys.readouterr().err, "2-D")


def test_error_subprocess_has_no_traceback(tmp_path):
    res = run_cli("compare", str(tmp_path / "missing.npz"))
    assert res.returncode == 2
    assert res.stdout == ""
    assert_one_line_error(res.stderr, "missing.npz")


def test_unknown_layer_lists_close_names(files, capsys):
    pa, pb = files
    assert main(["compare", str(pa), "--layers", "l1,l_2"]) == 2
    assert_one_line_error(
        capsys.readouterr().err, "no layer named 'l_2'", "a.npz", "did you mean 'l2'"
    )
    assert main(["compare", str(pa), str(pb), "--layers-b", "m3"]) == 2
    assert_one_line_error(capsys.readouterr().err, "no layer named 'm3'", "b.npz")
    assert main(["compare", str(pa), "--layers-b", "m1"]) == 2
    assert_one_line_error(capsys.readouterr().err, "--layers-b needs a second file B")
    assert main(["compare", str(pa), "--layers", "l1,,l2"]) == 2
    assert_one_line_error(capsys.readouterr().err, "comma-separated layer names")


def test_layer_selection(files, layers, capsys):
    pa, pb = files
    assert main(["compare", str(pa), str(pb), "--layers", "l3,l1", "--layers-b", "m2"]) == 0
    out = capsys.readouterr().out
    want = cg.compare_layers({k: layers[0][k] for k in ("l3", "l1")}, {"m2": layers[1]["m2"]})
    assert out.strip() == str(want).strip()


def test_other_formats_are_read_through_io(tmp_path, layers, capsys):
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    path = tmp_path / "a.safetensors"
    safetensors_numpy.save_file(dict(layers[0]), str(path))
    assert main(["compare", str(path)]) == 0
    got = capsys.readouterr().out
    assert got.strip() == str(cg.compare_layers(dict(sorted(layers[0].items())))).strip()


@pytest.mark.parametrize(
    "option",
    [
        ["--nope"],
        ["--digits", "x"],
        ["--digits", "-1"],
        ["--digits", "1000000000"],
        ["compare"],
        ["frobnicate"],
    ],
)
def test_bad_options(files, capsys, option):
    pa, _ = files
    argv = option if option[0] in ("compare", "frobnicate") else ["compare", str(pa)] + option
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("congruence: error: ")


def test_truncated_file_is_one_line(tmp_path, files, capsys):
    pa, _ = files
    cut = tmp_path / "cut.npz"
    cut.write_bytes(pa.read_bytes()[:-200])
    assert main(["compare", str(cut)]) == 2
    assert_one_line_error(capsys.readouterr().err, "cut.npz")
    pt = tmp_path / "model.pt"
    pt.write_bytes(b"\x80\x04K\x01.")
    assert main(["compare", str(pt)]) == 2
    assert_one_line_error(capsys.readouterr().err, "model.pt", "pickle-based")


def test_keyboard_interrupt_is_exit_130(files, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cg, "compare_layers", interrupted)
    assert main(["compare", str(files[0])]) == 130
    captured = capsys.readouterr()
    assert captured.err == "congruence: interrupted\n" and captured.out == ""


def test_memory_error_is_one_line(files, capsys, monkeypatch):
    def too_big(*args, **kwargs):
        raise MemoryError("the 40 x 40 Gram matrix of cka needs about 9.00 GB; use minibatches")

    monkeypatch.setattr(cg, "compare_layers", too_big)
    assert main(["compare", str(files[0])]) == 1
    assert_one_line_error(capsys.readouterr().err, "out of memory: the 40 x 40 Gram matrix")


_SLOW_CHILD = CHILD_SIGINT + textwrap.dedent(
    """
    import sys, time
    import congruence
    from congruence.cli import main

    def slow(*args, **kwargs):
        print("started", flush=True)
        time.sleep(60)

    congruence.compare_layers = slow
    sys.exit(main(["compare", sys.argv[1]]))
    """
)


def test_ctrl_c_in_a_real_process(files):
    proc = subprocess.Popen(
        [sys.executable, "-c", _SLOW_CHILD, str(files[0])],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "started"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    assert err == "congruence: interrupted\n"


# ---------------------------------------------------------------- demo (trains two networks)


def test_demo_smoke():
    pytest.importorskip("sklearn")
    res = run_cli("demo", timeout=120)
    assert res.returncode == 0, res.stderr
    rows = ("input", "hidden1", "hidden2", "hidden3")
    assert "test accuracy" in res.stdout
    m = parse_matrix(res.stdout, rows)
    assert m["input", "input"] == pytest.approx(1.0, abs=1e-3)  # the same test inputs
    hidden = rows[1:]
    diag = [m[h, h] for h in hidden]
    off = [m[r, c] for r in hidden for c in hidden if r != c]
    assert min(diag) > np.mean(off), res.stdout
    for h in hidden:  # each hidden layer is closer to its counterpart than to others, on average
        assert m[h, h] > np.mean([m[h, c] for c in rows if c != h]), res.stdout
    assert "on the diagonal" in res.stdout.strip().splitlines()[-1]


# --------------------------------------------------------------------------- cells, pooling, progress


@pytest.fixture()
def collinear(tmp_path, layers):
    a, _ = layers
    dup = np.repeat(a["l1"][:, :1], 3, axis=1) * np.array([1.0, 2.0, -1.0])
    path = tmp_path / "dup.npz"
    np.savez(path, l1=a["l1"], dup=dup, l2=a["l2"])
    return path, {"l1": a["l1"], "dup": dup, "l2": a["l2"]}


def test_failing_cell_names_the_layer(collinear, capsys):
    path, _ = collinear
    assert main(["compare", str(path), "--measure", "cca"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert_one_line_error(captured.err, "cca(a['l1'], a['dup']): a['dup'] of shape (40, 3)", "rank")


def test_on_error_nan_prints_nan_and_one_warning_line(collinear, capsys):
    path, arrays = collinear
    assert (
        main(["compare", str(path), "--measure", "cca", "--on-error", "nan", "--digits", "6"]) == 0
    )
    captured = capsys.readouterr()
    got = parse_matrix(captured.out, ["l1", "dup", "l2"])
    assert all(np.isnan(v) == ("dup" in key) for key, v in got.items())
    assert got["l1", "l2"] == pytest.approx(cg.cca(arrays["l1"], arrays["l2"]), abs=1e-6)
    lines = captured.err.strip().splitlines()
    assert (
        len(lines) == 1
        and lines[0].startswith("congruence: warning: cca(")
        and "a['dup']" in lines[0]
    )
    assert main(["compare", str(path), "--on-error", "skip"]) == 2
    assert "invalid choice: 'skip'" in capsys.readouterr().err


def test_pooling_option(tmp_path, capsys):
    rng = np.random.default_rng(9)
    tok = rng.standard_normal((N, 5, 4))
    conv = rng.standard_normal((N, 3, 2, 2))
    path = tmp_path / "acts.npz"
    np.savez(path, tok=tok, conv=conv)
    assert main(["compare", str(path)]) == 2  # 3-D layers need a policy
    assert_one_line_error(capsys.readouterr().err, "tok", "3-D")
    assert main(["compare", str(path), "--pooling", "mean", "--digits", "10"]) == 0
    got = parse_matrix(capsys.readouterr().out, ["tok", "conv"])
    want = cg.compare_layers({"tok": tok.mean(axis=1), "conv": conv.mean(axis=(2, 3))})
    for (r, c), v in got.items():
        assert v == pytest.approx(want[r, c], abs=1e-9)
    assert main(["compare", str(path), "--pooling", "tokens"]) == 2  # no tokens for 4-D
    assert_one_line_error(capsys.readouterr().err, "pooling='tokens' is invalid for the 4-D")


def test_progress_on_stderr_unless_no_progress(files, capsys, monkeypatch):
    import functools
    import importlib

    from congruence._progress import Progress

    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    pa, _ = files
    assert main(["compare", str(pa), "--measure", "normalized_bures"]) == 0
    assert capsys.readouterr().err == ""  # under a second: nothing shown
    compare_mod = importlib.import_module("congruence.compare")
    monkeypatch.setattr(compare_mod, "Progress", functools.partial(Progress, delay=0.0))
    assert main(["compare", str(pa), "--measure", "normalized_bures"]) == 0
    captured = capsys.readouterr()
    assert "congruence: 6/6 cells" in captured.err and "l1" in captured.out
    assert main(["compare", str(pa), "--measure", "normalized_bures", "--no-progress"]) == 0
    assert capsys.readouterr().err == ""


# ---------------------------------------------------------------- --out formats


@pytest.mark.parametrize("suffix", [".json", ".npz", ".csv"])
def test_out_writes_the_format_its_suffix_names(files, layers, tmp_path, capsys, suffix):
    pa, pb = files
    out = tmp_path / f"result{suffix}"
    assert main(["compare", str(pa), str(pb), "-m", "rsa", "--out", str(out)]) == 0
    capsys.readouterr()
    expected = cg.compare_layers(layers[0], layers[1], "rsa")
    back = cg.load_result(out)
    np.testing.assert_array_equal(back.values, expected.values)
    assert back.rows == expected.rows and back.cols == expected.cols
    assert back.measure == "rsa" and dict(back.params) == dict(expected.params)
    head = out.read_bytes()[:16]
    if suffix == ".json":
        assert json.loads(out.read_text())["measure"] == "rsa"
    elif suffix == ".npz":
        assert head.startswith(b"PK")  # a zip archive
    else:
        assert head.startswith(b"# congruence {")


def test_out_is_checked_before_computing(files, tmp_path, capsys, monkeypatch):
    import importlib

    pa, pb = files

    def boom(*args, **kwargs):
        raise AssertionError("computed before the output was checked")

    monkeypatch.setattr(importlib.import_module("congruence.compare"), "compare_layers", boom)
    monkeypatch.setattr(cg, "compare_layers", boom)
    cases = [
        (tmp_path / "result.txt", "the formats are .json, .npz, .csv"),
        (tmp_path / "result", "suffix '(none)'"),
        (tmp_path / "missing" / "result.csv", "does not exist"),
        (tmp_path, "the formats are"),
    ]
    (tmp_path / "folder.csv").mkdir()
    cases.append((tmp_path / "folder.csv", "is a folder"))
    for out, fragment in cases:
        assert main(["compare", str(pa), str(pb), "--out", str(out)]) == 2
        captured = capsys.readouterr()
        assert_one_line_error(captured.err, fragment)
        assert captured.out == ""
