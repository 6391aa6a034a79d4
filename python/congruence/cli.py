"""The ``congruence`` command line.

::

    congruence compare A.npz [B.npz] --measure cka [--param kernel=rbf ...] [--out result.csv]
                       [--layers l1,l2] [--layers-b m1,m2] [--pooling mean]
                       [--on-error nan] [--no-progress]
    congruence report A.npz [B.npz] --measures cka,svcca,rsa [--permutations 200] [--seed 0]
                      --out report.html
    congruence list
    congruence demo [--seed-a 0 --seed-b 1] [--measure cka]
    congruence --version

Each ``.npz`` archive (``np.savez(path, layer1=..., layer2=...)``) maps layer names to
``(n, p)`` arrays of activations on the same ``n`` inputs; every format of
:func:`congruence.io.load_layers` is read the same way (a ``.safetensors`` or HDF5 file, a
``.npy`` file or a folder of them, a zarr group). Pickle-based files are refused. Layers of
3-D ``(n, tokens, d)`` or 4-D ``(n, c, h, w)`` activations need ``--pooling`` (the policies of
:func:`congruence.pool`).

A progress bar (tqdm when installed, else a one-line counter) is shown on stderr once the
comparison lasts over a second (``--no-progress`` hides it). A cell that cannot be computed
(e.g. CCA of a layer with collinear columns) is an error naming the layer; with
``--on-error nan`` it is printed as ``nan`` with a warning on stderr instead.

``compare --out`` writes the result in the format its suffix names (``.csv``: a metadata line
then the table; ``.json``; ``.npz``), readable by :func:`congruence.load_result`. ``report``
writes one self-contained HTML page (:func:`congruence.report`). The output path (its suffix,
and that its folder exists and is writable) is checked before anything is computed.

Exit codes and errors: ``0`` on success; ``2`` for bad input (a usage error, a missing or
unreadable file, an unknown measure, parameter or layer name), reported as one line
``congruence: error: ...`` on stderr, never a traceback; ``1`` when the computation does not fit
in memory (one line, ``congruence: error: out of memory: ...``); ``130`` on Ctrl-C (one line,
``congruence: interrupted``).
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import sys
import warnings
from typing import Any, Optional, Sequence

import numpy as np

import congruence
from congruence._files import check_output
from congruence._registry import get_measure, list_measures
from congruence.io import load_layers
from congruence.pooling import policies_text
from congruence.results import FORMATS

__all__ = ["main"]

PROG = "congruence"

#: more decimals than this print only noise (and a huge count would exhaust memory)
_MAX_DIGITS = 20


class CLIError(Exception):
    """An error in the user's input, reported as one line with exit code 2."""


def parse_params(items: Sequence[str]) -> dict[str, Any]:
    """``["kernel=rbf", "sigma_frac=0.5"]`` -> ``{"kernel": "rbf", "sigma_frac": 0.5}``.

    Values are Python literals (``0.5``, ``True``, ``'rbf'``); anything else is kept as the
    raw string.
    """
    params: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise CLIError(f"--param expects NAME=VALUE (e.g. --param kernel=rbf), got {item!r}")
        if key in params:
            raise CLIError(f"--param {key} given twice")
        try:
            value = ast.literal_eval(raw.strip())
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            value = raw.strip()
        params[key] = value
    return params


def _layer_names(text: Optional[str], option: str) -> Optional[list[str]]:
    """``"l1,l2"`` -> ``["l1", "l2"]`` (None when the option is not given)."""
    if text is None:
        return None
    names = [t.strip() for t in text.split(",")]
    if not all(names):
        raise CLIError(f"{option} expects comma-separated layer names (e.g. l1,l2), got {text!r}")
    return names


def read_layers(
    path: str, keys: Optional[Sequence[str]] = None, pooling: Optional[str] = None
) -> dict[str, np.ndarray]:
    """The layers of a file, by name, in the file's order (:func:`congruence.io.load_layers`)."""
    return load_layers(path, keys, pooling=pooling)


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    return " ".join(str(exc).split()) or type(exc).__name__


def _print_warnings(caught: Sequence[warnings.WarningMessage]) -> None:
    """Each distinct warning as one line on stderr (not Python's file:line format)."""
    seen = set()
    for w in caught:
        text = _one_line(w.message) if isinstance(w.message, BaseException) else str(w.message)
        if text not in seen:
            seen.add(text)
            print(f"{PROG}: warning: {text}", file=sys.stderr)


def _formatted(result: Any, digits: int) -> str:
    header = str(result).split("\n", 1)[0]
    return f"{header}\n{result.format(digits)}"


def _cmd_compare(args: argparse.Namespace) -> int:
    measure = get_measure(args.measure)  # unknown name -> ValueError with suggestions
    params = parse_params(args.param)
    measure.check_params(params)
    keys_a = _layer_names(args.layers, "--layers")
    keys_b = _layer_names(args.layers_b, "--layers-b")
    if args.b is None and keys_b is not None:
        raise CLIError("--layers-b needs a second file B (without it, use --layers)")
    if args.out is not None:
        _check_out(args.out, FORMATS, "--out")
    a = read_layers(args.a, keys_a, args.pooling)
    b = read_layers(args.b, keys_b, args.pooling) if args.b is not None else None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        result = congruence.compare_layers(
            a,
            b,
            measure=measure.name,
            progress=not args.no_progress,
            on_error=args.on_error,
            permutations=args.permutations,
            seed=args.seed,
            **params,
        )
    _print_warnings(caught)
    if args.out is not None:
        try:
            result.save(args.out)
        except OSError as exc:
            raise CLIError(f"{args.out}: could not write ({exc.strerror or exc})") from None
    print(_formatted(result, args.digits))
    if result.pvalues is not None:
        pvals = dataclasses.replace(result, values=result.pvalues)
        print(
            f"\np-values ({result.n_permutations} permutations, seed {result.seed}, "
            f"alternative {result.alternative!r})\n{pvals.format(args.digits)}"
        )
    return 0


def _check_out(path: str, suffixes: Sequence[str], option: str) -> None:
    """The output path's checks (suffix, folder exists and is writable), before computing."""
    try:
        check_output(path, suffixes, f"{option} file")
    except OSError as exc:
        raise CLIError(str(exc)) from None


def _cmd_report(args: argparse.Namespace) -> int:
    from congruence.report import REPORT_SUFFIXES, report

    measures = [t.strip() for t in args.measures.split(",")]
    if not all(measures):
        raise CLIError(
            f"--measures expects comma-separated measure names (e.g. cka,rsa), got {args.measures!r}"
        )
    for name in measures:
        get_measure(name)  # unknown name -> ValueError with suggestions, before any work
    keys_a = _layer_names(args.layers, "--layers")
    keys_b = _layer_names(args.layers_b, "--layers-b")
    if args.b is None and keys_b is not None:
        raise CLIError("--layers-b needs a second file B (without it, use --layers)")
    if args.permutations < 0:
        raise CLIError(f"--permutations must be 0 or more, got {args.permutations}")
    _check_out(args.out, REPORT_SUFFIXES, "--out")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        report(
            args.a,
            args.b,
            measures,
            permutations=args.permutations,
            seed=args.seed,
            out=args.out,
            layers=keys_a,
            layers_b=keys_b,
            pooling=args.pooling,
            alpha=args.alpha,
            correction=None if args.correction == "none" else args.correction,
            progress=not args.no_progress,
        )
    _print_warnings(caught)
    print(f"wrote {args.out} ({', '.join(measures)})")
    return 0


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[j]) for r in rows) for j in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _cmd_list(args: argparse.Namespace) -> int:
    from congruence.docs import COLUMNS, measure_rows

    rows = measure_rows()
    print(_table([list(COLUMNS)] + [[r[c] for c in COLUMNS] for r in rows]))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from congruence import demo

    params = parse_params(args.param)
    get_measure(args.measure).check_params(params)
    demo.run(seed_a=args.seed_a, seed_b=args.seed_b, measure=args.measure, **params)
    return 0


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit code 2 (argparse's own code)
        self.print_usage(sys.stderr)
        self.exit(2, f"{PROG}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Similarity of neural-network representations, layer by layer.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {congruence.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    rep = ", ".join(list_measures(inputs="representations"))
    c = sub.add_parser(
        "compare",
        help="compare every layer of A.npz with every layer of B.npz (or of A itself)",
        description="Compare every layer of A with every layer of B (or of A itself). "
        "Each .npz maps layer names to (n, p) arrays on the same n inputs.",
    )
    c.add_argument("a", metavar="A.npz", help="layers of the first model")
    c.add_argument("b", metavar="B.npz", nargs="?", help="layers of the second model (default: A)")
    c.add_argument("--measure", "-m", default="cka", help=f"measure name ({rep}; default cka)")
    c.add_argument(
        "--param",
        "-p",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a measure parameter, value as a Python literal (repeatable), e.g. "
        "--param kernel=rbf --param sigma_frac=0.5 --param debiased=True",
    )
    c.add_argument(
        "--layers",
        "-l",
        metavar="NAMES",
        help="comma-separated layers of A to compare (default: all, in the file's order)",
    )
    c.add_argument(
        "--layers-b",
        metavar="NAMES",
        help="comma-separated layers of B to compare (default: all)",
    )
    c.add_argument(
        "--pooling",
        metavar="POLICY",
        help="pooling of 3-D (n, tokens, d) and 4-D (n, c, h, w) layers: " + policies_text(),
    )
    c.add_argument(
        "--on-error",
        choices=("raise", "nan"),
        default="raise",
        help="a cell that cannot be computed is an error (raise, the default) or nan with a "
        "warning (nan)",
    )
    c.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar (it is shown on stderr once the comparison lasts over a second)",
    )
    c.add_argument(
        "--permutations",
        type=int,
        metavar="N",
        help="also test every cell with N row permutations and print the p-values",
    )
    c.add_argument(
        "--seed",
        type=int,
        metavar="S",
        help="seed of the permutations (with --permutations; default: fresh randomness)",
    )
    c.add_argument(
        "--out",
        "-o",
        metavar="PATH",
        help="also save the result, in the format its suffix names: .csv (a metadata line, "
        "then the table), .json or .npz (read back with congruence.load_result)",
    )
    c.add_argument(
        "--digits", type=int, default=3, help=f"decimals printed, 0 to {_MAX_DIGITS} (default 3)"
    )
    c.set_defaults(func=_cmd_compare)

    r = sub.add_parser(
        "report",
        help="write a self-contained HTML report: a heatmap and table per measure, "
        "p-values, definitions, inputs and their SHA-256",
        description="Compare every layer of A with every layer of B (or of A itself) with "
        "each measure and write one self-contained HTML page.",
    )
    r.add_argument("a", metavar="A.npz", help="layers of the first model")
    r.add_argument("b", metavar="B.npz", nargs="?", help="layers of the second model (default: A)")
    r.add_argument(
        "--measures",
        "-m",
        default="cka",
        help=f"comma-separated measure names ({rep}; default cka)",
    )
    r.add_argument(
        "--permutations",
        type=int,
        default=0,
        metavar="N",
        help="permutations for the p-values of every cell (default 0: no p-values)",
    )
    r.add_argument("--seed", type=int, default=None, help="seed of the permutations")
    r.add_argument(
        "--alpha", type=float, default=0.05, help="significance level of the marks (default 0.05)"
    )
    r.add_argument(
        "--correction",
        choices=("holm", "fdr_bh", "none"),
        default="holm",
        help="multiple-comparison correction of the marks (default holm)",
    )
    r.add_argument("--layers", "-l", metavar="NAMES", help="comma-separated layers of A")
    r.add_argument("--layers-b", metavar="NAMES", help="comma-separated layers of B")
    r.add_argument(
        "--pooling",
        metavar="POLICY",
        help="pooling of 3-D (n, tokens, d) and 4-D (n, c, h, w) layers: " + policies_text(),
    )
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    r.add_argument(
        "--out", "-o", required=True, metavar="PATH", help="the report file (.html or .htm)"
    )
    r.set_defaults(func=_cmd_report)

    ls = sub.add_parser("list", help="list the registered measures and their properties")
    ls.set_defaults(func=_cmd_list)

    d = sub.add_parser(
        "demo",
        help="train two small networks on the digits data and compare their layers "
        '(needs pip install "congruence[demo]")',
    )
    d.add_argument("--seed-a", type=int, default=0, help="seed of network A (default 0)")
    d.add_argument("--seed-b", type=int, default=1, help="seed of network B (default 1)")
    d.add_argument("--measure", "-m", default="cka", help="measure name (default cka)")
    d.add_argument(
        "--param",
        "-p",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a measure parameter (repeatable)",
    )
    d.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit code.

    Never raises for bad input: errors are printed as one line on stderr and give a
    nonzero exit code (2 bad input, 1 out of memory, 130 Ctrl-C; see the module docstring).
    """
    try:
        return _main(argv)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


def _main(argv: Optional[Sequence[str]]) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors: argparse's exit code
        return int(exc.code) if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    if not 0 <= getattr(args, "digits", 0) <= _MAX_DIGITS:
        print(
            f"{PROG}: error: --digits must be between 0 and {_MAX_DIGITS} (a float64 holds "
            f"17 significant digits), got {args.digits}",
            file=sys.stderr,
        )
        return 2
    try:
        return args.func(args)
    except BrokenPipeError:  # e.g. piped into `head`
        return 0
    except (CLIError, ValueError, TypeError, ImportError, OSError) as exc:
        # ValueError covers UnreadableFileError and LayerNotFoundError; OSError covers
        # FileNotFoundError and unwritable outputs
        print(f"{PROG}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except MemoryError as exc:
        print(f"{PROG}: error: out of memory: {_one_line(exc)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
