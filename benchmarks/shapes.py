"""Run ``MutualInformationEstimator`` over a grid of data shapes and judge each fit by the contract.

Rows are tasks with a known (closed-form) MI, or none for real data: dense, sparse and low-rank
Gaussian dependence (:func:`sk_mlcpc.datasets.make_linear_gaussian`,
:func:`~sk_mlcpc.datasets.make_sparse_gaussians`), heavy tails
(:func:`~sk_mlcpc.datasets.make_student_t`), discrete-valued columns with 2 to 10 levels
(:func:`~sk_mlcpc.datasets.make_discrete_channel`,
:func:`~sk_mlcpc.datasets.make_quantized_gaussians`), mixed discrete and continuous columns,
and columns in units from 1e-12 to 1e12 (:func:`~sk_mlcpc.datasets.rescale_units`), from
200 to 50,000 rows and 1 to 2,000 columns a side, MI from 0 to above 20 nats; plus
scikit-learn's diabetes data (no truth). Each fit runs in a fresh child process
(single-threaded torch and BLAS, after a warm-up fit that is not timed), so that the
seconds and the peak resident memory (``ru_maxrss`` of the child) belong to that fit alone.
Estimator: ``MutualInformationEstimator(random_state=seed)`` with its defaults, except where a
row caps ``max_epochs`` (the ``notes`` column says so).

The contract, one pass/fail column per clause:

(a) ``mi_ >= -max(0.05, 2 * mi_std_)``: not significantly below 0 (the constant critic scores 0);
(b) the interval ``mi_ci_`` does not lie entirely above the truth (``-`` without a truth);
(c) with ``--vs-no-baseline`` the same fit with ``baseline=None`` also runs: the default must
    not be worse than it beyond the two intervals (fail when the default's upper end is below
    the other's lower end);
(d) for a subset pair (the same data, X restricted to some of its columns: the row named
    ``<full>/<subset>``), the full X must not read lower than the subset beyond the two
    intervals (fail when the full row's upper end is below the subset's lower end; shown on
    the subset row);
(e) the warnings the fit raised, by category name, so a reader sees whether the shape was flagged.

Examples::

    python benchmarks/shapes.py --list
    python benchmarks/shapes.py                      # --quick: 26 rows, ~5 min
    python benchmarks/shapes.py --rows dense-1000x200 diabetes --vs-no-baseline
    python benchmarks/shapes.py --full --out benchmarks/results/shapes_full.txt

``--rows`` keeps the rows whose name contains one of the words or that carry one of them as a
tag (``issue``, ``dense``, ``sparse``, ``low-rank``, ``independent``, ``heavy-tail``,
``discrete``, ``mixed``, ``rescaled``, ``real``, ``wide`` (columns a side >= rows / 2),
``subset``, ``grid``); a subset row brings its full row along.

``--full`` adds to the quick rows the grid ``grid-<family>-<n>x<p>``: n in {200, 1,000,
5,000, 50,000} x p columns a side in {1, 10, 100, 500, 2,000} x 8 families (dense
``Y = 0.5 X + noise``, 0.11 nats a column; independent; rank 2 at 4 nats; one informative
pair at 1 nat; Student-t df 4 with rho 0.5; 3-level quantised Gaussians; mixed, all of X and
half of Y 3-level; dense rescaled by 1e-9): 160 grid rows. Shapes too large for a 2-core
machine are sampled, and every shape keeps its row: above 40 million values in X and Y
together a row is fitted on fewer rows (notes "sampled: m of n rows": 50,000 x 500 and
50,000 x 2,000), and above 4 million values ``max_epochs`` is capped at 20 (notes
"max_epochs=20": 5,000 x 500, 5,000 x 2,000 and 50,000 rows from 100 columns up).

Columns: ``cap`` is ``mi_cap_``, ``sat``/``conv`` are ``saturated_``/``converged_``, ``ep``
the epochs run, ``sec`` the fit alone, ``peak MB`` the child's ``ru_maxrss``, ``fit +MB``
that less the resident size just before the fit. Under the table every warning's message
is listed by row. ``--out`` writes the table (rewritten after every row, so an interrupted
run keeps what finished).
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import resource
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# The revision line of the table, as the development suite's (this folder is sys.path[0]).
from suite import _revision

Data = tuple[np.ndarray, np.ndarray, float | None]
NAN = float("nan")
#: Above this many values in X and Y together, a --full row is fitted on a subsample of rows.
MAX_VALUES = 40_000_000
#: Above this many values, a --full row caps max_epochs at CAPPED_EPOCHS.
SLOW_VALUES = 4_000_000
CAPPED_EPOCHS = 20


# ---------------------------------------------------------------------------------------
# Rows
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One row of the table: how to draw its data and how to fit it."""

    name: str
    n: int
    make: Callable[[int, np.random.RandomState], Data]
    dims: tuple[int, int]
    tags: tuple[str, ...] = ()
    params: dict = field(default_factory=dict)
    note: str = ""
    #: For a subset row: (name of the full row, columns of X kept).
    subset_of: tuple[str, tuple[int, ...]] | None = None
    #: Rows actually fitted when fewer than n (sampled).
    n_fit: int | None = None


def _linear(dx: int, dy: int | None = None, **kwargs) -> Callable:
    def make(n: int, rng: np.random.RandomState) -> Data:
        from sk_mlcpc.datasets import make_linear_gaussian

        return make_linear_gaussian(n, dx, n_features_y=dy, random_state=rng, **kwargs)

    return make


def _sparse(dx: int, dy: int, k: int, mi: float) -> Callable:
    def make(n: int, rng: np.random.RandomState) -> Data:
        from sk_mlcpc.datasets import make_sparse_gaussians

        return make_sparse_gaussians(
            n, dx, n_informative=k, mi=mi, n_features_y=dy, random_state=rng
        )

    return make


def _student_t(d: int, df: float, mi: float | None = None, rho: float | None = None) -> Callable:
    def make(n: int, rng: np.random.RandomState) -> Data:
        from sk_mlcpc.datasets import make_student_t

        return make_student_t(n, d, mi=mi, rho=rho, df=df, random_state=rng)

    return make


def _channel(d: int, levels: int, q: float) -> Callable:
    def make(n: int, rng: np.random.RandomState) -> Data:
        from sk_mlcpc.datasets import make_discrete_channel

        return make_discrete_channel(n, d, n_levels=levels, q=q, random_state=rng)

    return make


def _quantized(d: int, levels: int, rho: float, dx: int | None = None, dy: int | None = None):
    def make(n: int, rng: np.random.RandomState) -> Data:
        from sk_mlcpc.datasets import make_quantized_gaussians

        return make_quantized_gaussians(
            n,
            d,
            rho=rho,
            n_levels=levels,
            n_discrete_x=dx,
            n_discrete_y=dy,
            random_state=rng,
        )

    return make


def _rescaled(inner: Callable, factor: float | str) -> Callable:
    """``inner``'s data with both sides in other units: one factor, or "spread" per column."""

    def make(n: int, rng: np.random.RandomState) -> Data:
        from sk_mlcpc.datasets import rescale_units

        X, Y, truth = inner(n, rng)
        if factor == "spread":  # columns from 1e-12 to 1e12, in opposite orders on each side
            fx = np.logspace(-12, 12, X.shape[1])
            fy = np.logspace(12, -12, Y.shape[1])
            return rescale_units(X, fx), rescale_units(Y, fy), truth
        return rescale_units(X, factor), rescale_units(Y, factor), truth

    return make


def _diabetes(n: int, rng: np.random.RandomState) -> Data:
    from sklearn.datasets import load_diabetes

    X, y = load_diabetes(return_X_y=True)  # shipped with scikit-learn: nothing is downloaded
    return X, y.reshape(-1, 1), None


def _quick_rows() -> list[Row]:
    issue = ("issue", "dense", "gaussian")
    rows = [
        # The issue's cases: Y = 0.5 X + noise, MI = d/2 log(1.25) (22.3 nats at d = 200).
        Row("dense-1000x200", 1000, _linear(200, coef=0.5), (200, 200), issue),
        Row(
            "dense-300x500",
            300,
            _linear(500, coef=0.5),
            (500, 500),
            (*issue, "wide"),
            {"max_epochs": 30},
            "max_epochs=30 (as in the issue)",
        ),
        Row("dense-2000x400", 2000, _linear(400, coef=0.5), (400, 400), issue),
        Row("dense-500x50", 500, _linear(50, coef=0.5), (50, 50), issue),
        Row("dense-5000x200", 5000, _linear(200, coef=0.5), (200, 200), issue),
        Row(
            "dense-1000x2000",
            1000,
            _linear(2000, coef=0.5),
            (2000, 2000),
            (*issue, "wide"),
            {"max_epochs": 2},
            "max_epochs=2 (as in the issue)",
        ),
        Row("dense-200x100", 200, _linear(100, coef=0.5), (100, 100), ("dense", "wide")),
        Row("dense-50000x1", 50_000, _linear(1, mi=0.5), (1, 1), ("dense",)),
        # No dependence at all: the estimate should sit at 0, not below it.
        Row("indep-200x500", 200, _linear(500, coef=0.0), (500, 500), ("independent", "wide")),
        Row("indep-1000x1", 1000, _linear(1, coef=0.0), (1, 1), ("independent",)),
        # Low-rank dependence: every column involved, through a 2-d channel.
        Row("lowrank-1000x100-r2", 1000, _linear(100, rank=2, mi=4.0), (100, 100), ("low-rank",)),
        # Sparse dependence, and the same data with X cut to its informative columns (clause d).
        Row("sparse-1000x100-k2", 1000, _sparse(100, 100, 2, 1.0), (100, 100), ("sparse",)),
        Row(
            "sparse-1000x100-k2/x[:2]",
            1000,
            _sparse(100, 100, 2, 1.0),
            (2, 100),
            ("sparse", "subset"),
            subset_of=("sparse-1000x100-k2", (0, 1)),
        ),
        # Heavy tails: the development suite's 20-d Student-t at 4 nats (df 4).
        Row("t4-5000x20-mi4", 5000, _student_t(20, 4.0, mi=4.0), (20, 20), ("heavy-tail",)),
        # Discrete-valued columns: 3-level quantised Gaussians (issue), channels of 2 and 10.
        Row(
            "discrete3-1000x10",
            1000,
            _quantized(10, 3, 0.9),
            (10, 10),
            ("discrete", "issue"),
        ),
        Row("channel2-1000x5", 1000, _channel(5, 2, 0.8), (5, 5), ("discrete",)),
        Row("channel10-1000x1", 1000, _channel(1, 10, 0.9), (1, 1), ("discrete",)),
        # Mixed: X all 3-level, Y half discrete and half continuous.
        Row(
            "mixed3-1000x10",
            1000,
            _quantized(10, 3, 0.8, dx=10, dy=5),
            (10, 10),
            ("mixed",),
        ),
    ]
    # Units: a 2-d Gaussian at 0.8 nats in the issue's units, and columns spread over 24 decades.
    gauss2 = _linear(2, mi=0.8)
    for factor in (1.0, 1e-7, 1e-9, 1e-12, 1e12):
        tags = ("rescaled", "issue") if factor != 1.0 else ("rescaled",)
        rows.append(Row(f"gauss2-x{factor:g}", 1000, _rescaled(gauss2, factor), (2, 2), tags))
    rows.append(
        Row(
            "units-spread-1000x10",
            1000,
            _rescaled(_linear(10, mi=2.0), "spread"),
            (10, 10),
            ("rescaled",),
            note="columns 1e-12..1e12",
        )
    )
    # Real data without a truth: the diabetes target against all 10 columns and against bmi.
    rows.append(Row("diabetes", 442, _diabetes, (10, 1), ("real", "issue")))
    rows.append(
        Row(
            "diabetes/bmi",
            442,
            _diabetes,
            (1, 1),
            ("real", "subset", "issue"),
            subset_of=("diabetes", (2,)),
        )
    )
    return rows


GRID_N = (200, 1000, 5000, 50_000)
GRID_P = (1, 10, 100, 500, 2000)
FAMILIES = ("dense", "indep", "lowrank", "sparse", "t4", "discrete3", "mixed3", "rescaled")


def _family(family: str, p: int) -> tuple[Callable, tuple[str, ...]]:
    if family == "dense":  # 0.11 nats a column: 0.11 to 223 nats
        return _linear(p, coef=0.5), ("dense",)
    if family == "indep":
        return _linear(p, coef=0.0), ("independent",)
    if family == "lowrank":
        return _linear(p, rank=min(2, p), mi=4.0), ("low-rank",)
    if family == "sparse":
        return _sparse(p, p, 1, 1.0), ("sparse",)
    if family == "t4":
        return _student_t(p, 4.0, rho=0.5), ("heavy-tail",)
    if family == "discrete3":
        return _quantized(p, 3, 0.9), ("discrete",)
    if family == "mixed3":
        return _quantized(p, 3, 0.8, dx=p, dy=p // 2), ("mixed",)
    return _rescaled(_linear(p, coef=0.5), 1e-9), ("rescaled",)


def _full_rows() -> list[Row]:
    rows = []
    for n in GRID_N:
        for p in GRID_P:
            for family in FAMILIES:
                make, tags = _family(family, p)
                values = n * 2 * p
                params, notes, n_fit = {}, [], None
                if values > MAX_VALUES:
                    n_fit = MAX_VALUES // (2 * p)
                    notes.append(f"sampled: {n_fit} of {n} rows")
                if min(values, MAX_VALUES) > SLOW_VALUES:
                    params["max_epochs"] = CAPPED_EPOCHS
                    notes.append(f"max_epochs={CAPPED_EPOCHS}")
                tags = (*tags, "grid", *(("wide",) if 2 * p >= n else ()))
                rows.append(
                    Row(
                        f"grid-{family}-{n}x{p}",
                        n,
                        make,
                        (p, p),
                        tags,
                        params,
                        "; ".join(notes),
                        n_fit=n_fit,
                    )
                )
    # And every quick row: the issue's shapes and settings, rescalings, real data.
    return [*rows, *_quick_rows()]


def all_rows(full: bool) -> list[Row]:
    return _full_rows() if full else _quick_rows()


# ---------------------------------------------------------------------------------------
# One fit, in a child process
# ---------------------------------------------------------------------------------------


def _single_thread() -> None:
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    threadpool_limits(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass


def _rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _as_float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return NAN


def _draw(row: Row, rows_by_name: dict, seed: int) -> Data:
    source = rows_by_name[row.subset_of[0]] if row.subset_of else row
    rng = np.random.RandomState(seed)
    # Rows are i.i.d., so a sampled row draws its n_fit rows directly (not all n, then some).
    X, Y, truth = source.make(row.n_fit or source.n, rng)
    if row.subset_of:
        X = X[:, list(row.subset_of[1])]
    return X, Y, truth


def fit_row(name: str, full: bool, seed: int, variant: str) -> dict:
    """Draw one row's data and fit it; every failure becomes a field of the result."""
    _single_thread()
    from sk_mlcpc import MutualInformationEstimator

    rows_by_name = {row.name: row for row in all_rows(full)}
    row = rows_by_name[name]
    result: dict = {"name": name, "variant": variant}
    try:
        X, Y, truth = _draw(row, rows_by_name, seed)
        result.update(truth=truth, shape=(X.shape[0], X.shape[1], Y.shape[1]))
        # A warm-up fit, not timed: torch's first-call costs belong to no row.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            warm = np.random.RandomState(0).standard_normal((256, 2))
            MutualInformationEstimator(max_epochs=1, random_state=0).fit(warm[:, :1], warm[:, 1:])
        params = {**row.params, **({"baseline": None} if variant == "no_baseline" else {})}
        result["rss_before_mb"] = _rss_mb()
        start = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            est = MutualInformationEstimator(**params, random_state=seed).fit(X, Y)
        result["seconds"] = time.perf_counter() - start
    except Exception as exc:  # a benchmark reports failures and carries on
        result["failure"] = f"{type(exc).__name__}: {exc}"
        result["traceback"] = traceback.format_exc(limit=-3)
        result["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return result
    result["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    ci = getattr(est, "mi_ci_", (NAN, NAN))
    try:
        low, high = (_as_float(value) for value in ci)
    except (TypeError, ValueError):
        low, high = NAN, NAN
    result.update(
        estimate=_as_float(getattr(est, "mi_", NAN)),
        std=_as_float(getattr(est, "mi_std_", NAN)),
        ci_low=low,
        ci_high=high,
        cap=_as_float(getattr(est, "mi_cap_", NAN)),
        saturated=getattr(est, "saturated_", None),
        converged=getattr(est, "converged_", None),
        epochs=getattr(est, "n_epochs_", None),
        critic_choice=getattr(est, "critic_choice_", None),
    )
    shown = [
        w
        for w in caught
        if not issubclass(w.category, DeprecationWarning | PendingDeprecationWarning)
    ]
    result["warnings"] = sorted({w.category.__name__ for w in shown})
    # One line per distinct message, printed under the table: a category name alone (a
    # UserWarning) does not say which of the estimator's warnings it was.
    result["messages"] = list(
        dict.fromkeys(f"{w.category.__name__}: {' '.join(str(w.message).split())}" for w in shown)
    )
    for key in ("saturated", "converged"):
        if result[key] is not None:
            result[key] = bool(result[key])
    return result


def _child(conn, name: str, full: bool, seed: int, variant: str) -> None:
    try:
        conn.send(fit_row(name, full, seed, variant))
    except BaseException as exc:  # even an unexpected error reaches the parent as a row
        conn.send({"name": name, "variant": variant, "failure": f"{type(exc).__name__}: {exc}"})
    finally:
        conn.close()


def run_all(jobs_list, full: bool, seed: int, jobs: int, timeout: float, on_result) -> None:
    """Fit every (row name, variant) in a fresh spawned process, ``jobs`` at a time."""
    context = multiprocessing.get_context("spawn")
    pending = list(jobs_list)
    running: list = []
    while pending or running:
        while pending and len(running) < jobs:
            name, variant = pending.pop(0)
            parent, child = context.Pipe(duplex=False)
            process = context.Process(
                target=_child, args=(child, name, full, seed, variant), daemon=True
            )
            process.start()
            child.close()
            running.append((name, variant, process, parent, time.monotonic()))
        time.sleep(0.2)
        still = []
        for name, variant, process, parent, started in running:
            result = None
            if parent.poll():
                try:
                    result = parent.recv()
                except EOFError:
                    result = None
            if result is not None:
                process.join()
            elif not process.is_alive():
                process.join()
                result = {
                    "name": name,
                    "variant": variant,
                    "failure": f"child exited with code {process.exitcode} (killed for memory?)",
                }
            elif time.monotonic() - started > timeout:
                process.kill()
                process.join()
                result = {
                    "name": name,
                    "variant": variant,
                    "failure": f"timed out after {timeout:.0f} s",
                    "seconds": timeout,
                }
            if result is None:
                still.append((name, variant, process, parent, started))
            else:
                parent.close()
                on_result(result)
        running = still


# ---------------------------------------------------------------------------------------
# The contract and the table
# ---------------------------------------------------------------------------------------


def _mark(flag: bool | None) -> str:
    return "-" if flag is None else ("pass" if flag else "FAIL")


def clause_a(result: dict) -> bool | None:
    estimate, std = result.get("estimate", NAN), result.get("std", NAN)
    if math.isnan(estimate):
        return None
    return estimate >= -max(0.05, 2 * (0.0 if math.isnan(std) else std))


def clause_b(result: dict) -> bool | None:
    truth, low = result.get("truth"), result.get("ci_low", NAN)
    if truth is None or math.isnan(low):
        return None
    return not low > truth


def _not_below(upper: dict | None, lower: dict | None) -> bool | None:
    """False when ``upper``'s interval lies entirely below ``lower``'s."""
    if not upper or not lower:
        return None
    high, low = upper.get("ci_high", NAN), lower.get("ci_low", NAN)
    if math.isnan(high) or math.isnan(low):
        return None
    return not high < low


def _fmt(value, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


COLUMNS = (
    ("row", "<"),
    ("n", ">"),
    ("d_x", ">"),
    ("d_y", ">"),
    ("truth", ">"),
    ("estimate", ">"),
    ("95% CI", ">"),
    ("cap", ">"),
    ("sat", ">"),
    ("conv", ">"),
    ("ep", ">"),
    ("sec", ">"),
    ("peak MB", ">"),
    ("fit +MB", ">"),
    ("a", ">"),
    ("b", ">"),
    ("c", ">"),
    ("d", ">"),
    ("warnings (e)", "<"),
    ("notes", "<"),
)


class Table:
    def __init__(self, rows: list[Row], vs_no_baseline: bool) -> None:
        self.rows = rows
        self.by_name = {row.name: row for row in rows}
        self.vs = vs_no_baseline
        self.results: dict[tuple[str, str], dict] = {}
        self.width = max(len(row.name) for row in rows) + 1

    def add(self, result: dict) -> None:
        self.results[(result["name"], result["variant"])] = result

    def cells(self, row: Row) -> list[str] | None:
        result = self.results.get((row.name, "default"))
        if result is None:
            return None
        n, d_x, d_y = result.get("shape", (row.n_fit or row.n, *row.dims))
        notes = [row.note] if row.note else []
        if "failure" in result:
            notes.append(f"FAILED {result['failure']}")
        if result.get("critic_choice") not in (None, "trained"):
            notes.append(f"critic_choice_={result['critic_choice']}")
        ci = (
            "-"
            if math.isnan(result.get("ci_low", NAN))
            else f"[{result['ci_low']:.2f}, {result['ci_high']:.2f}]"
        )
        c = None
        if self.vs:
            other = self.results.get((row.name, "no_baseline"))
            c = _not_below(result, other)
            if other is not None:
                notes.append(
                    "no baseline: "
                    + (
                        f"FAILED {other['failure']}"
                        if "failure" in other
                        else f"{other['estimate']:.2f} [{other['ci_low']:.2f}, "
                        f"{other['ci_high']:.2f}]"
                    )
                )
        d = None
        if row.subset_of:
            full = self.results.get((row.subset_of[0], "default"))
            d = _not_below(full, result)
        return [
            row.name,
            str(n),
            str(d_x),
            str(d_y),
            _fmt(result.get("truth")),
            _fmt(result.get("estimate", NAN)),
            ci,
            _fmt(result.get("cap", NAN)),
            _fmt(result.get("saturated")),
            _fmt(result.get("converged")),
            _fmt(result.get("epochs")),
            _fmt(result.get("seconds", NAN), 1),
            _fmt(result.get("peak_mb", NAN), 0),
            _fmt(max(result["peak_mb"] - result["rss_before_mb"], 0.0), 0)
            if "rss_before_mb" in result and "peak_mb" in result
            else "-",
            _mark(clause_a(result)),
            _mark(clause_b(result)),
            _mark(c),
            _mark(d),
            ",".join(result.get("warnings", [])) or "-",
            "; ".join(notes),
        ]

    def lines(self) -> list[str]:
        body = [cells for row in self.rows if (cells := self.cells(row)) is not None]
        header = [name for name, _ in COLUMNS]
        widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header) - 1)]
        out = []
        for cells in [header, *body]:
            parts = [
                f"{text:{align}{width}}"
                for text, (_, align), width in zip(cells, COLUMNS, widths, strict=False)
            ]
            out.append("  ".join([*parts, cells[-1]]).rstrip())
        return out

    def messages(self, width: int = 160) -> list[str]:
        """The warnings' messages, one line each (cut at ``width`` characters)."""
        lines = []
        for row in self.rows:
            result = self.results.get((row.name, "default"), {})
            for message in result.get("messages", []):
                text = f"  {row.name}: {message}"
                lines.append(text if len(text) <= width else text[: width - 3] + "...")
        return ["warnings raised (e), by row:", *lines] if lines else []

    def summary(self) -> list[str]:
        lines = []
        done = [r for r in self.rows if (r.name, "default") in self.results]
        failed = [r.name for r in done if "failure" in self.results[(r.name, "default")]]
        for label, clause in (("a", clause_a), ("b", clause_b)):
            verdicts = [(r.name, clause(self.results[(r.name, "default")])) for r in done]
            judged = [name for name, v in verdicts if v is not None]
            bad = [name for name, v in verdicts if v is False]
            lines.append(
                f"clause ({label}): {len(judged) - len(bad)} of {len(judged)} pass"
                + (f"; fail: {', '.join(bad)}" if bad else "")
            )
        for label, pick in (
            ("c", lambda r: self.vs),
            ("d", lambda r: r.subset_of is not None),
        ):
            cells = [(r.name, self.cells(r)) for r in done if pick(r)]
            column = 16 if label == "c" else 17
            judged = [(name, c[column]) for name, c in cells if c and c[column] != "-"]
            bad = [name for name, mark in judged if mark == "FAIL"]
            lines.append(
                f"clause ({label}): {len(judged) - len(bad)} of {len(judged)} pass"
                + (f"; fail: {', '.join(bad)}" if bad else "")
                + ("" if label != "c" or self.vs else " (run with --vs-no-baseline)")
            )
        flagged = [r.name for r in done if self.results[(r.name, "default")].get("warnings")]
        lines.append(f"(e) rows with warnings: {len(flagged)} of {len(done)}")
        if failed:
            lines.append(f"failed rows: {', '.join(failed)}")
        return lines


def _select(rows: list[Row], words) -> list[Row]:
    if not words:
        return rows
    chosen = {
        row.name for row in rows if any(word in row.name or word in row.tags for word in words)
    }
    chosen |= {row.subset_of[0] for row in rows if row.name in chosen and row.subset_of}
    if not chosen:
        raise SystemExit(f"--rows {' '.join(words)} matches no row; see --list.")
    return [row for row in rows if row.name in chosen]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="26 rows, about 5 minutes (the default)")
    size.add_argument("--full", action="store_true", help="the whole grid (sampled; slow)")
    parser.add_argument("--rows", nargs="+", default=None, help="keep rows by name or tag")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data and the fits")
    parser.add_argument("--jobs", type=int, default=1, help="fits at once (default 1)")
    parser.add_argument(
        "--timeout",
        type=float,
        default=900.0,
        help="seconds before a child (import, data, warm-up, fit) is killed",
    )
    parser.add_argument(
        "--vs-no-baseline", action="store_true", help="also fit baseline=None (clause c)"
    )
    parser.add_argument("--out", type=Path, default=None, help="also write the table here")
    parser.add_argument("--list", action="store_true", help="list the selected rows and exit")
    args = parser.parse_args()

    rows = _select(all_rows(args.full), args.rows)
    if args.list:
        for row in rows:
            note = f"  [{row.note}]" if row.note else ""
            shape = f"{row.n:>7}{row.dims[0]:>6}{row.dims[1]:>6}"
            print(f"{row.name:<30}{shape}  {','.join(row.tags)}{note}")
        return
    import sklearn
    import torch

    meta = {
        "mode": "full" if args.full else "quick",
        "rows": len(rows),
        "seed": args.seed,
        "jobs": args.jobs,
        "vs_no_baseline": args.vs_no_baseline,
        "estimator": "MutualInformationEstimator(random_state=seed) defaults unless noted",
        "revision": _revision(),
        "torch": torch.__version__,
        "sklearn": sklearn.__version__,
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
    }
    meta_lines = [f"# {key}: {value}" for key, value in meta.items()]
    meta_lines.append(
        "# contract: (a) mi_ >= -max(0.05, 2 mi_std_); (b) CI not entirely above truth; "
        "(c) default not below baseline=None beyond the intervals; (d) full X not below its "
        "subset beyond the intervals (on the subset row); (e) warnings raised"
    )
    meta_lines.append(
        "# sec: the fit alone (data drawn, warm-up fit done); peak MB: ru_maxrss of the "
        "child process (interpreter, torch and data included); fit +MB: peak less the "
        "resident size just before the fit (0 when the warm-up peaked higher)"
    )
    print("\n".join(meta_lines), flush=True)
    table = Table(rows, args.vs_no_baseline)
    start = time.perf_counter()

    def write() -> None:
        if args.out is not None:
            lines = [*meta_lines, *table.lines(), "", *table.messages(), "", *table.summary()]
            lines.append(f"wall time: {time.perf_counter() - start:.0f} s")
            args.out.write_text("\n".join(lines) + "\n")

    def on_result(result: dict) -> None:
        table.add(result)
        row = table.by_name[result["name"]]
        if result["variant"] == "default":
            print("  ".join(table.cells(row)), flush=True)
        else:
            text = result.get("failure") or f"{result.get('estimate', NAN):.3f}"
            print(f"{row.name} [baseline=None]: {text}", flush=True)
        if "traceback" in result:
            print(result["traceback"], flush=True)
        write()

    # A subset row's partner first, so that clause (d) can be read as soon as both are in.
    work = [(row.name, "default") for row in rows]
    if args.vs_no_baseline:
        work += [(row.name, "no_baseline") for row in rows]
    try:
        run_all(work, args.full, args.seed, max(1, args.jobs), args.timeout, on_result)
    except KeyboardInterrupt:
        print("interrupted: the table holds the rows that finished", flush=True)
    print()
    print("\n".join([*table.lines(), "", *table.messages(), "", *table.summary()]), flush=True)
    print(f"wall time: {time.perf_counter() - start:.0f} s", flush=True)
    write()
    if args.out is not None:
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
