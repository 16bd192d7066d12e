"""Command line: ``sk-mlcpc staircase`` and ``sk-mlcpc estimate X.csv Y.csv``."""

from __future__ import annotations

import argparse
import csv
import json
import math
import re
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

import numpy as np
from skorch.callbacks import Callback

from sk_mlcpc._estimators.mi import MutualInformationEstimator
from sk_mlcpc._math.bounds import BOUNDS
from sk_mlcpc._nn.critics import CRITICS
from sk_mlcpc._nn.devices import resolve_device
from sk_mlcpc._tools.staircase import (
    StaircaseConfig,
    default_configs,
    format_table,
    plot_staircase,
    run_staircase,
)
from sk_mlcpc._version import __version__

__all__ = ["build_parser", "main", "read_table"]

QUICK_STEPS = {"separable": 300, "separable_additive": 300, "bilinear": 300, "concat": 40}


def _staircase(args: argparse.Namespace) -> int:
    transforms = [None if t == "gaussian" else t for t in args.tasks]
    if args.quick:
        configs = [
            StaircaseConfig("separable", "cpc"),
            StaircaseConfig("separable", "ml_cpc", "auto"),
            StaircaseConfig("separable_additive", "ml_cpc", "auto"),
            StaircaseConfig("concat", "cpc"),
            StaircaseConfig("concat", "ml_cpc", "auto"),
        ]
        transforms = transforms if args.tasks_given else [None]
    else:
        configs = default_configs(args.critics)
    results = []
    started = time.perf_counter()
    for transform in transforms:
        for config in configs:
            if args.quick:
                steps = QUICK_STEPS[config.critic]
            elif config.critic == "concat" and args.joint_steps is not None:
                steps = args.joint_steps
            else:
                steps = args.steps
            result = run_staircase(
                config,
                transform=transform,
                steps_per_level=steps,
                device=args.device,
                random_state=args.seed,
            )
            results.append(result)
            print(
                f"[{time.perf_counter() - started:7.1f}s] {transform or 'gaussian'} "
                f"{config.label}: " + " ".join(f"{m:.2f}" for m in result.level_means),
                flush=True,
            )
    print()
    print("Mean held-out estimate over the second half of each level (nats); columns are")
    print("the true MI of each level; cap = largest value the bound can take at batch 128.")
    print(format_table(results))
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    figure = output / "staircase.png"
    try:
        plot_staircase(results, str(figure))
    except ModuleNotFoundError as error:
        if error.name != "matplotlib":
            raise
        figure = "not drawn: matplotlib is not installed (pip install 'sk-mlcpc[plot]')"
    records = [
        {
            "task": r.transform or "gaussian",
            "critic": r.config.critic,
            "objective": r.config.objective,
            "alpha": r.alpha,
            "alpha_param": r.config.alpha,
            "true_mi": r.true_mi,
            "level_means": r.level_means,
            "cap": r.cap,
            "validity": r.validity,
            "steps_per_level": r.steps_per_level,
            "seconds_per_1000_steps": r.seconds_per_1000_steps,
        }
        for r in results
    ]
    (output / "staircase.json").write_text(json.dumps(records, indent=1))
    # Every per-step estimate, so the figure can be redrawn without training again.
    np.savez_compressed(
        output / "staircase_estimates.npz",
        **{
            f"{r['task']}|{r['critic']}|{r['objective']}|{r['alpha_param']}": res.estimates
            for r, res in zip(records, results)
        },
    )
    print(f"\nFigure: {figure}\nNumbers: {output / 'staircase.json'}")
    return 0


_DELIMITERS = (",", "\t", ";")
_MISSING = {"", "nan", "na", "n/a", "null", "none", "?"}


def _cells(line: str, delimiter: str | None) -> list[str]:
    """The cells of one line: CSV quoting honoured, surrounding quotes and spaces dropped."""
    if delimiter is None:
        cells = line.split()
    else:
        cells = next(csv.reader([line], delimiter=delimiter, skipinitialspace=True))
    return [cell.strip().strip("\"'").strip() for cell in cells]


def _number(cell: str) -> float | None:
    # Python's float() accepts digit separators ("1_000"); a data file's cell with one is
    # text, not the number a reader of the file would see.
    if "_" in cell:
        return None
    try:
        return float(cell)
    except ValueError:
        return None


def read_table(path: str | Path) -> np.ndarray:
    r"""The numbers of a CSV or whitespace-separated text file, one row per sample.

    Columns are separated by commas, tabs, semicolons or runs of spaces (the first line
    of data decides); CSV quoting is honoured, so ``"1.5"`` is the number 1.5. A first
    line with no number in it is a header and skipped; blank lines and lines starting
    with ``#`` are skipped. Every error names the file and the line as an editor counts
    them (from 1, header and blank lines included) and the column.

    A header whose first cell is empty, or which names one column fewer than the rows
    hold, marks the first column as row labels, not data: pandas' ``to_csv`` writes its
    index so by default, R's ``write.csv`` and ``write.table`` their row names. That
    column is left out (its cells need not be numbers) with a warning, since estimating
    with it would measure the row order.

    Parameters
    ----------
    path : str or path-like
        The file, UTF-8 text (a byte-order mark is allowed).

    Returns
    -------
    table : ndarray of shape (n_rows, n_columns), float64

    Raises
    ------
    ValueError
        The file is not UTF-8 text, holds no rows, has a cell that is not a finite
        number (missing, text, infinite), or lines with different numbers of columns.
    OSError
        The file cannot be read (its message names it).

    Warns
    -----
    UserWarning
        The first column is a row index (see above) and is left out.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from sk_mlcpc._tools.cli import read_table
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "x.csv").write_text('a,b\n"1.5",2\n3,4\n')
    >>> read_table(folder / "x.csv")
    array([[1.5, 2. ],
           [3. , 4. ]])
    """
    raw = Path(path).read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise ValueError(
            f"{path}, line {line}: not UTF-8 text (byte 0x{raw[error.start]:02x}); save it as "
            "UTF-8 CSV, or as plain text with columns separated by spaces."
        ) from None
    delimiter: str | None = None
    rows: list[list[float]] = []
    first_line = 0  # the first line of data, to name it when a later one differs
    header: tuple[int, list[str]] | None = None  # its line number and cells
    skip = 0  # 1 when the first column is a row index, left out
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if first_line == 0:  # the first line that is not blank decides
            delimiter = next((d for d in _DELIMITERS if d in line), None)
        cells = _cells(line, delimiter)
        values = [_number(cell) for cell in cells]
        if first_line == 0 and all(value is None for value in values):
            first_line = -1  # a header; only the first line may be one
            header = (number, cells)
            continue
        if first_line <= 0:
            first_line = number
            if header is not None and _names_a_row_index(header[1], len(cells)):
                skip = 1
                _warn_row_index(path, header[0], header[1])
        for column, (cell, value) in enumerate(zip(cells, values, strict=True), start=1):
            if column <= skip:
                continue  # a row label: any text
            where = f"{path}, line {number}, column {column}"
            if cell.lower() in _MISSING:
                raise ValueError(
                    f"{where}: missing value ({repr(cell) if cell else 'empty cell'}); every "
                    "cell must be a number: drop or fill in the rows with missing values first."
                )
            if value is None:
                raise ValueError(f"{where}: {cell!r} is not a number.")
            if not np.isfinite(value):
                raise ValueError(f"{where}: {cell!r} is not a finite number.")
        if rows and len(values) != len(rows[0]) + skip:
            raise ValueError(
                f"{path}, line {number}: {len(values)} column{'s' * (len(values) != 1)}, "
                f"but line {first_line} has {len(rows[0]) + skip}."
            )
        rows.append(values[skip:])  # type: ignore[arg-type]
    if not rows:
        raise ValueError(f"{path} holds no rows of numbers.")
    return np.asarray(rows, dtype=np.float64)


def _names_a_row_index(header: list[str], n_columns: int) -> bool:
    """Whether a header marks the first of ``n_columns`` columns as row labels.

    pandas' ``to_csv`` writes an unnamed index under an empty header cell (``,a,b``), R's
    ``write.csv`` its row names under ``""``, and R's ``write.table`` names one column
    fewer than the rows hold. A data column with no name is not written by either.
    """
    if n_columns < 2:
        return False
    return header[0] == "" or len(header) == n_columns - 1


def _warn_row_index(path: str | Path, line: int, header: list[str]) -> None:
    why = (
        "its header cell is empty"
        if header[0] == ""
        else f"the header names {len(header)} columns and the rows hold {len(header) + 1}"
    )
    warnings.warn(
        f"{path}: column 1 is left out: {why} (line {line}), the mark of a row index, "
        "as pandas' to_csv writes one by default (and R its row names), not data. Write "
        "the file with to_csv(path, index=False) to leave it out yourself.",
        UserWarning,
        stacklevel=3,
    )


def _row_numbers(table: np.ndarray) -> int | None:
    """The first number (0 or 1) when the table's first column counts the rows, else None."""
    if len(table) < 3:
        return None
    for start in (0, 1):
        if np.array_equal(table[:, 0], np.arange(start, start + len(table))):
            return start
    return None


def _refuse_a_shared_row_index(x: str, y: str, X: np.ndarray, Y: np.ndarray) -> None:
    """Refuse two files whose first column is the same count of the rows.

    Such a column is a row index written as data (pandas' ``to_csv(header=False)``, or an
    index named in the header): in both files it makes the estimate measure the row order
    they share, far above the MI between the data columns, with no sign in the result.
    Unlike an unnamed header cell it could be a column the user meant, so it is refused
    with the remedy rather than dropped.
    """
    start = _row_numbers(X)
    if start is None or _row_numbers(Y) != start:
        return
    raise ValueError(
        f"{x} and {y} both begin with the column {start}, {start + 1}, {start + 2}, ... "
        "(the row number): a row index, as pandas' to_csv writes one unless index=False, "
        "not a measurement; with it in both files the estimate would measure the row order "
        "the files share, not the dependence between their data. Remove column 1 from both "
        "files, or write them with to_csv(path, index=False)."
    )


# The estimator's parameters and the options that set them, to name the option in an
# error raised by the estimator.
_OPTIONS = {
    "objective": "--objective",
    "alpha": "--alpha",
    "critic": "--critic",
    "batch_size": "--batch-size",
    "eval_batch_size": "--eval-batch-size",
    "max_epochs": "--max-epochs",
    "device": "--device",
    "random_state": "--seed",
    "verbose": "--verbose",
    "preprocessing": "--preprocessing",
    "baseline": "--baseline",
    "target_type": "--target-type",
}


def _name_the_option(message: str) -> str:
    for parameter, option in _OPTIONS.items():
        if f"'{parameter}' parameter" in message or message.startswith(
            (f"{parameter}=", f"{parameter} ")
        ):
            return f"argument {option}: {message}"
    return message


# Warnings come from the Python estimator and advise its parameters; on the command line
# they name the options instead, and say which parameters have none.
_ASSIGNMENT = re.compile(
    r"(?<![\w.-])(?P<name>[a-z][a-z_]*)=(?P<quote>['\"]?)(?P<value>[^\s'\",;:()]+)(?P=quote)"
)
_NAME = re.compile(r"(?<![\w.'-])(?P<name>[a-z]+(?:_[a-z]+)+)(?![\w=])")


def _for_the_command_line(message: str, command: str) -> str:
    """A warning's advice in options: ``max_epochs`` as ``--max-epochs``,
    ``baseline=None`` as ``--baseline none``, and a note naming the parameters it advises
    that the command has no option for (``learning_rate``, ``warm_start``)."""
    parameters = set(MutualInformationEstimator().get_params())
    python_only: list[str] = []

    def note(name: str) -> None:
        if name in parameters and name not in _OPTIONS and name not in python_only:
            python_only.append(name)

    def assignment(match: re.Match) -> str:
        name, value = match["name"], match["value"]
        if name not in _OPTIONS:
            note(name)
            return match[0]
        value = value.lower() if value in ("None", "True", "False") else value
        return f"{_OPTIONS[name]} {value}"

    def bare(match: re.Match) -> str:
        name = match["name"]
        if name in _OPTIONS:
            return _OPTIONS[name]
        note(name)
        return name

    message = _NAME.sub(bare, _ASSIGNMENT.sub(assignment, message))
    if python_only:
        python_only.sort(key=message.find)  # as they appear
        names = ", ".join(python_only[:-1]) + " and " if len(python_only) > 1 else ""
        names += python_only[-1]
        what = "they are parameters" if len(python_only) > 1 else "it is a parameter"
        message = (
            f"{message.rstrip()} ({names}: no option of {command}; {what} of the Python "
            "class sk_mlcpc.MutualInformationEstimator)"
        )
    return message


class _EpochLines(Callback):
    """One line per epoch on stderr (the command's progress on a terminal): the epoch,
    the bounds on the training and validation rows, and the time so far."""

    def __init__(self, max_epochs: int) -> None:
        self.max_epochs = max_epochs

    def on_train_begin(self, net, **kwargs) -> None:
        self.started_ = time.perf_counter()

    def on_epoch_end(self, net, **kwargs) -> None:
        row = net.history[-1]
        parts = [f"epoch {row['epoch']}/{self.max_epochs}"]
        for key, what in (("train_mi", "training"), ("valid_mi", "validation")):
            if key in row:
                parts.append(f"{what} bound {float(row[key]):.3f} nats")
        parts.append(f"{time.perf_counter() - self.started_:.1f} s")
        print(f"sk-mlcpc estimate: {', '.join(parts)}", file=sys.stderr, flush=True)


def _estimate(args: argparse.Namespace) -> int:
    # 'auto': the estimator is quiet, and a terminal gets one line per epoch on stderr.
    progress = args.verbose == "auto" and sys.stderr.isatty()
    estimator = MutualInformationEstimator(
        objective=args.objective,
        alpha=args.alpha,
        critic=args.critic,
        batch_size=args.batch_size,
        eval_batch_size=args.eval_batch_size,
        max_epochs=args.max_epochs,
        preprocessing=None if args.preprocessing == "none" else args.preprocessing,
        baseline=None if args.baseline == "none" else args.baseline,
        target_type=args.target_type,
        device=args.device,
        random_state=args.seed,
        verbose=0 if args.verbose == "auto" else args.verbose,
        callbacks=[("progress", _EpochLines(args.max_epochs))] if progress else None,
    )
    try:
        estimator._validate_params()
    except ValueError as error:
        raise ValueError(_name_the_option(str(error))) from None
    X = read_table(args.x)
    Y = read_table(args.y)
    if len(X) != len(Y):
        raise ValueError(
            f"{args.x} and {args.y} must have the same number of rows (the paired samples, "
            f"row by row): {args.x} has {len(X)}, {args.y} has {len(Y)}."
        )
    _refuse_a_shared_row_index(args.x, args.y, X, Y)
    started = time.perf_counter()
    try:
        estimator.fit(X, Y)
    except ValueError as error:
        raise ValueError(_name_the_option(str(error))) from None
    low, high = estimator.mi_ci_
    interval = (
        f"95% interval of the bound [{low:.4f}, {high:.4f}]"
        if np.isfinite(low) and np.isfinite(high)
        else "no interval: too few test rows; give more rows"
    )
    print(
        f"I(X; Y) estimate: {estimator.mi_:.4f} nats "
        f"(standard error {estimator.mi_std_:.4f}, {interval})"
    )
    if estimator.target_type_ == "classes":
        print(
            f"bound: Barber-Agakov over the {len(estimator.classes_)} classes of Y (Y read "
            f"as class labels), cap H(Y) {estimator.mi_cap_:.3f} nats on the "
            f"{estimator.eval_batch_size_} test rows, validity: {estimator.bound_validity_}; "
            f"{len(X)} rows, {estimator.n_epochs_} epochs, {time.perf_counter() - started:.1f} s"
        )
    else:
        print(
            f"bound: {args.objective}, alpha={estimator.eval_alpha_:.5g}, cap "
            f"{estimator.mi_cap_:.3f} nats at batch {estimator.eval_batch_size_} (training: "
            f"batch {estimator.batch_size_}, alpha={estimator.alpha_:.5g}), validity: "
            f"{estimator.bound_validity_}; "
            f"{len(X)} rows, {estimator.n_epochs_} epochs, {time.perf_counter() - started:.1f} s"
        )
    if estimator.critic_choice_ == "constant":
        print(
            "critic: constant (the trained critic was not above 0 on the validation rows, "
            f"{estimator.valid_mi_:.4f} nats)"
        )
    return 0


# ------------------------------------------------------------------ option types
# Each raises argparse.ArgumentTypeError, which argparse reports as
# "argument --option: <message>": every option error names its option.


def _integer(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(
                f"expected an integer of at least {minimum}, got {text!r}"
            )
        return value

    parse.__name__ = "integer"
    return parse


def _alpha(text: str) -> float | str:
    if text == "auto":
        return text
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected 'auto' or a positive number, got {text!r}")
    return value


def _batch_or_auto(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return _integer(2)(text)
    except argparse.ArgumentTypeError as error:
        message = str(error).removeprefix("expected ")
        raise argparse.ArgumentTypeError(f"expected 'auto' or {message}") from None


def _verbosity(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return _integer(0)(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected 'auto', 0, 1 or 2, got {text!r}") from None


def _device(text: str) -> str:
    try:
        resolve_device(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, with the command and the option."""

    def error(self, message: str) -> NoReturn:
        message = message.rstrip(".")
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``sk-mlcpc`` argument parser."""
    parser = _Parser(
        prog="sk-mlcpc", description="Multi-label contrastive predictive coding tools."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    stair = commands.add_parser(
        "staircase",
        help="reproduce the paper's MI-estimation staircase (table + figure)",
        description=(
            "Train critics on 20-d correlated Gaussians whose true MI steps through "
            "2, 4, 6, 8, 10 nats (batch 128, a fresh batch per step) and report held-out "
            "estimates for CPC and ML-CPC (alpha 1, 0.1, auto)."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    stair.add_argument(
        "--quick", action="store_true", help="a short run (under 3 minutes on 2 CPU cores)"
    )
    stair.add_argument(
        "--steps", type=_integer(1), default=4000, help="training steps per MI level (paper: 4000)"
    )
    stair.add_argument(
        "--joint-steps",
        type=_integer(1),
        default=None,
        help="steps per level for the joint (concat) critic; default --steps",
    )
    stair.add_argument(
        "--critics",
        nargs="+",
        default=["separable", "separable_additive", "concat"],
        choices=["separable", "separable_additive", "bilinear", "concat"],
        help="critics to train",
    )
    stair.add_argument(
        "--tasks",
        nargs="+",
        default=None,
        choices=["gaussian", "cubic"],
        help="Gaussian pairs, and/or a cubic transform of Y; default both (--quick: gaussian)",
    )
    stair.add_argument(
        "--device", type=_device, default="auto", help="'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"
    )
    stair.add_argument("--seed", type=int, default=0, help="random seed")
    stair.add_argument(
        "--output", default="staircase_results", help="folder for staircase.png and staircase.json"
    )
    stair.set_defaults(handler=_staircase)

    estimate = commands.add_parser(
        "estimate",
        help="estimate I(X; Y) between two files of columns (CSV or whitespace)",
        description=(
            "Estimate the mutual information between the rows of two files, in nats: a "
            "held-out lower bound from a trained critic (MutualInformationEstimator), with "
            "its spread over held-out batches. Row i of X and row i of Y are one sample. "
            "Files: CSV (commas, tabs or semicolons; quoted numbers allowed) or columns "
            "separated by spaces; an optional header line; UTF-8."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    estimate.add_argument("x", help="file with one row per sample, columns = features of X")
    estimate.add_argument("y", help="file with the paired rows of Y (same number of rows)")
    estimate.add_argument(
        "--objective",
        default="ml_cpc",
        choices=sorted(BOUNDS),
        help="the bound trained and reported",
    )
    estimate.add_argument(
        "--alpha",
        type=_alpha,
        default="auto",
        help="weight of the positive pair in (ML-)CPC: a positive number, or 'auto' (the "
        "smallest weight at which the bound is a lower bound at the evaluation batch size)",
    )
    estimate.add_argument(
        "--critic", default="separable_additive", choices=CRITICS, help="critic architecture"
    )
    estimate.add_argument(
        "--batch-size",
        type=_integer(2),
        default=128,
        help="training batch size (rows contrasted with each other per step)",
    )
    estimate.add_argument(
        "--eval-batch-size",
        type=_batch_or_auto,
        default="auto",
        help="rows per held-out evaluation batch: an integer (at least 2), or 'auto' (as "
        "large as the held-out rows allow, up to a limit); the bound and its cap grow "
        "with it",
    )
    estimate.add_argument(
        "--max-epochs", type=_integer(1), default=100, help="training epochs at most"
    )
    estimate.add_argument(
        "--preprocessing",
        default="quantile",
        choices=["quantile", "standard", "none"],
        help="per-column map fitted on the training rows: 'quantile' (to a normal through "
        "the ranks; any units), 'standard' (mean 0, variance 1) or 'none'",
    )
    estimate.add_argument(
        "--baseline",
        default="auto",
        choices=["auto", "gaussian", "student_t", "none"],
        help="closed-form part of the critic: a Gaussian or Student-t copula model, or "
        "the better of them on the validation rows ('auto'); kept only if it clearly "
        "beats a constant critic there; or 'none'",
    )
    estimate.add_argument(
        "--target-type",
        default="auto",
        choices=["auto", "continuous", "classes"],
        help="how Y is read: 'auto' (one column of 2 to 50 integer values, each seen "
        "twice, is read as class labels), 'continuous' or 'classes'",
    )
    estimate.add_argument(
        "--device", type=_device, default="auto", help="'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"
    )
    estimate.add_argument(
        "--seed", type=int, default=0, help="random seed (same seed, same result)"
    )
    estimate.add_argument(
        "--verbose",
        type=_verbosity,
        default="auto",
        help="'auto': one progress line per epoch on stderr when it is a terminal, else "
        "quiet; 0: quiet; 1: a table of every epoch (losses, bounds, time) on stdout; 2: "
        "that table and a progress bar of the batches",
    )
    estimate.set_defaults(handler=_estimate)
    return parser


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sk-mlcpc`` console script.

    Every error of the package (a bad option or file, an invalid parameter, a failed
    fit: ``ValueError``, ``TypeError``, ``OSError``, ``RuntimeError`` and
    :class:`~sk_mlcpc.DivergenceError`) is one line on stderr, ``sk-mlcpc <command>:
    error: ...``, with exit status 2; warnings are one line each too. An interrupted run
    (Ctrl-C) exits with status 130.

    Parameters
    ----------
    argv : sequence of str or None, default=None
        The arguments; ``None`` reads ``sys.argv``.

    Returns
    -------
    status : int
        0 on success, 2 on an error, 130 when interrupted.

    Examples
    --------
    >>> from sk_mlcpc._tools.cli import main
    >>> main(["estimate", "x.csv", "y.csv", "--device", "nonsense"])
    2
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help, or an option error already printed
        return int(stop.code or 0)
    if args.command == "staircase":
        args.tasks_given = args.tasks is not None
        args.tasks = args.tasks or ["gaussian", "cubic"]
    prefix = f"sk-mlcpc {args.command}"

    def show(message, category, *_, **__) -> None:
        text = _one_line(message)
        if args.command == "estimate":
            text = _for_the_command_line(text, prefix)
        print(f"{prefix}: warning: {text}", file=sys.stderr)

    try:
        with warnings.catch_warnings():
            warnings.showwarning = show
            return args.handler(args)
    except KeyboardInterrupt as interrupt:
        detail = f": {_one_line(interrupt)}" if str(interrupt) else ""
        print(f"{prefix}: interrupted{detail}", file=sys.stderr)
        return 130
    except (ValueError, TypeError, OSError, RuntimeError, ArithmeticError) as error:
        print(f"{prefix}: error: {_one_line(error)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
