"""Run ``MutualInformationEstimator`` over the development suite of ground-truth MI tasks.

The tasks are :data:`sk_mlcpc.datasets.MI_SUITE` (21 of them: Gaussians dense and sparse,
Student-t, invertible non-linear maps; true MI 0.3 to 10 nats, 1 to 50 dimensions a
side, 10,000 pairs each by default). For each task the script fits
``MutualInformationEstimator(**params, random_state=seed)`` single-threaded and prints the
true MI, the estimate ``mi_``, its 95% interval ``mi_ci_``, the error, whether the
interval lies entirely above the truth (a lower bound that claims more than the truth),
seconds per fit, epochs, and the diagnostics the estimator has (``mi_cap_``,
``saturated_``, ``converged_``, ``bound_validity_``: attributes it lacks are left out).
A summary per method follows. Examples::

    python benchmarks/suite.py --list
    python benchmarks/suite.py --params '{"batch_size": 256}' --jobs 2 --out run.json
    python benchmarks/suite.py --tasks 1d sparse --baselines --n-samples 2000 \\
        --params '{"max_epochs": 5}'

``--tasks`` keeps the tasks whose name contains one of the words or that carry one of
them as a tag (``reference``, ``gaussian``, ``sparse``, ``student_t``, ``nonlinear``,
``weak``, ``1d``, ...). ``--baselines`` adds, per task, the same estimator with
``objective="cpc"`` and scikit-learn's ``mutual_info_regression`` (Kraskov's k-nearest-
neighbour estimator; only where X and Y are both 1-d, "n/a" elsewhere). ``--out`` writes
the table (``.json`` and ``.csv`` keep every field; any other name gets the text table).
"""

import argparse
import csv
import json
import math
import multiprocessing
import os
import subprocess
import sys
import time
import traceback
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import torch
from sklearn.feature_selection import mutual_info_regression
from threadpoolctl import threadpool_limits

from sk_mlcpc import MutualInformationEstimator
from sk_mlcpc.datasets import MI_SUITE, make_mi_task

NAN = float("nan")
#: Fitted attributes shown when the estimator has them (read with getattr: they may not
#: exist in every version of the estimator).
DIAGNOSTICS = ("mi_cap_", "saturated_", "converged_", "bound_validity_")
#: Mean |error| is also reported over the tasks with at most this true MI.
LOW_MI = 2.0


# ---------------------------------------------------------------------------------------
# One task (runs in the main process or in a worker)
# ---------------------------------------------------------------------------------------


def _single_thread() -> None:
    """One thread for torch and for numpy's BLAS in this process."""
    torch.set_num_threads(1)
    threadpool_limits(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set, or inter-op work has started: harmless
        pass


def _as_float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return NAN


def _fit_row(task, method: str, params: dict, seed: int, attrs) -> dict:
    """Fit the estimator with ``params`` on one task; a failure becomes a row, not a crash."""
    row = {"task": task.name, "method": method, "true_mi": task.true_mi}
    start = time.perf_counter()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            est = MutualInformationEstimator(**params, random_state=seed).fit(task.X, task.Y)
    except Exception as exc:  # a benchmark reports failures and carries on
        row.update(seconds=time.perf_counter() - start, failure=f"{type(exc).__name__}: {exc}")
        row["traceback"] = traceback.format_exc(limit=-4)
        return row
    row["seconds"] = time.perf_counter() - start
    ci = getattr(est, "mi_ci_", (NAN, NAN))
    try:
        low, high = (_as_float(value) for value in ci)
    except (TypeError, ValueError):
        low, high = NAN, NAN
    row.update(
        estimate=_as_float(getattr(est, "mi_", NAN)),
        ci_low=low,
        ci_high=high,
        epochs=getattr(est, "n_epochs_", None),
        warnings=sorted(
            {
                type(w.message).__name__
                for w in caught
                if not issubclass(w.category, DeprecationWarning | PendingDeprecationWarning)
            }
        ),
    )
    for name in attrs:
        if hasattr(est, name):
            value = getattr(est, name)
            if isinstance(value, bool | np.bool_):
                value = bool(value)
            elif not isinstance(value, str | type(None)):
                value = _as_float(value)
            row[name] = value
    return row


def _ksg_row(task, seed: int) -> dict:
    row = {"task": task.name, "method": "ksg", "true_mi": task.true_mi}
    if task.dims != (1, 1):
        row["na"] = True
        return row
    start = time.perf_counter()
    estimate = mutual_info_regression(task.X, task.Y[:, 0], random_state=seed)[0]
    row.update(seconds=time.perf_counter() - start, estimate=float(estimate))
    return row


_WARMED_UP = False


def _warm_up(params: dict) -> None:
    """One tiny fit per process, so that no task's time includes torch's first-call costs."""
    global _WARMED_UP
    if _WARMED_UP:
        return
    _WARMED_UP = True
    task = make_mi_task("gauss-1d-mi0.3", 512, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            MutualInformationEstimator(**{**params, "max_epochs": 1}, random_state=0).fit(
                task.X, task.Y
            )
        except Exception:  # the timed fit will report it
            pass


def run_task(name: str, n_samples: int, seed: int, params: dict, baselines: bool, attrs):
    """Every row of one task: the estimator, then the baselines when asked."""
    _single_thread()
    _warm_up(params)
    task = make_mi_task(name, n_samples, random_state=seed)
    rows = [_fit_row(task, "mi", params, seed, attrs)]
    if baselines:
        rows.append(_fit_row(task, "cpc", {**params, "objective": "cpc"}, seed, attrs))
        rows.append(_ksg_row(task, seed))
    return rows


# ---------------------------------------------------------------------------------------
# Table
# ---------------------------------------------------------------------------------------


def _complete(row: dict) -> dict:
    """Derived fields: the error and whether the interval lies entirely above the truth."""
    estimate = row.get("estimate", NAN)
    row["error"] = estimate - row["true_mi"]
    low = row.get("ci_low", NAN)
    row["above"] = None if math.isnan(low) else bool(low > row["true_mi"])
    return row


def _cell(value, width: int, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        text = "-"
    elif isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, float):
        text = f"{value:.{digits}f}"
    else:
        text = str(value)
    return f"{text:>{width}}"


class Table:
    """Rows printed as they arrive; diagnostic columns fixed by the first fitted estimator."""

    def __init__(self, attrs, width: int) -> None:
        self.attrs = attrs
        self.width = width
        self.extras = None
        self.pending = []
        self.lines = []

    def header(self) -> str:
        extras = "".join(f"{name.rstrip('_'):>{max(len(name), 9)}}" for name in self.extras)
        return (
            f"{'task':<{self.width}}{'method':>7}{'true MI':>8}{'estimate':>9}"
            f"{'95% CI':>16}{'error':>8}{'above':>6}{'seconds':>8}{'epochs':>7}{extras}  notes"
        )

    def format(self, row: dict) -> str:
        start = f"{row['task']:<{self.width}}{row['method']:>7}{row['true_mi']:>8.2f}"
        if row.get("na"):
            return start + f"{'n/a':>9}"
        if "failure" in row:
            return start + f"{'FAILED':>9}  {row['seconds']:.1f} s  {row['failure']}"
        low, high = row.get("ci_low", NAN), row.get("ci_high", NAN)
        ci = "-" if math.isnan(low) and math.isnan(high) else f"[{low:.2f}, {high:.2f}]"
        notes = ", ".join(row.get("warnings", []))
        extras = "".join(_cell(row.get(name), max(len(name), 9), digits=2) for name in self.extras)
        return (
            start
            + _cell(row["estimate"], 9)
            + f"{ci:>16}"
            + _cell(row["error"], 8)
            + _cell(row["above"], 6)
            + _cell(row["seconds"], 8, digits=1)
            + _cell(row.get("epochs"), 7)
            + extras
            + (f"  {notes}" if notes else "")
        )

    def _emit(self, line: str) -> None:
        self.lines.append(line)
        print(line, flush=True)

    def add(self, row: dict) -> None:
        if self.extras is None:
            if row["method"] == "ksg" or "failure" in row:
                self.pending.append(row)
                return
            self.fix_columns([name for name in self.attrs if name in row])
            self.pending.append(row)
            for waiting in self.pending:
                self._emit(self.format(waiting))
            self.pending = []
            return
        self._emit(self.format(row))

    def fix_columns(self, extras) -> None:
        self.extras = list(extras)
        self._emit(self.header())

    def close(self) -> None:
        if self.extras is None:
            self.fix_columns([])
            for waiting in self.pending:
                self._emit(self.format(waiting))


def summarise(rows: list[dict]) -> list[str]:
    lines = []
    for method in dict.fromkeys(row["method"] for row in rows):
        ran = [row for row in rows if row["method"] == method and not row.get("na")]
        fitted = [row for row in ran if not math.isnan(row.get("estimate", NAN))]
        failed = [row["task"] for row in ran if "failure" in row]
        if not ran:
            continue
        low = [abs(row["error"]) for row in fitted if row["true_mi"] <= LOW_MI]
        every = [abs(row["error"]) for row in fitted]
        with_ci = [row for row in fitted if row["above"] is not None]
        above = [row["task"] for row in with_ci if row["above"]]
        worst = max(fitted, key=lambda row: abs(row["error"]), default=None)
        total = sum(row.get("seconds", 0.0) for row in ran)
        lines.append(f"[{method}] {len(fitted)} of {len(ran)} task(s) estimated")
        lines.append(
            f"  mean |error|, true MI <= {LOW_MI:g}: "
            + (f"{np.mean(low):.3f} nats over {len(low)} task(s)" if low else "-")
        )
        lines.append(
            "  mean |error|, all: "
            + (f"{np.mean(every):.3f} nats over {len(every)} task(s)" if every else "-")
        )
        if worst is not None:
            lines.append(
                f"  worst: {worst['task']} (true {worst['true_mi']:g}, estimate "
                f"{worst['estimate']:.3f}, error {worst['error']:+.3f})"
            )
        if with_ci:
            lines.append(
                f"  intervals entirely above the truth: {len(above)} of {len(with_ci)}"
                + (f" ({', '.join(above)})" if above else "")
            )
        else:
            lines.append("  intervals entirely above the truth: - (no interval)")
        if failed:
            lines.append(f"  failed: {', '.join(failed)}")
        lines.append(f"  total fit time: {total:.1f} s")
    return lines


def _write(path: Path, rows: list[dict], table_lines: list[str], summary, meta: dict) -> None:
    clean = [{key: value for key, value in row.items() if key != "traceback"} for row in rows]
    if path.suffix == ".json":
        payload = {"meta": meta, "rows": clean, "summary": summary}
        path.write_text(json.dumps(payload, indent=1, default=str, allow_nan=True) + "\n")
    elif path.suffix == ".csv":
        fields = list(dict.fromkeys(key for row in clean for key in row))
        with path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields)
            writer.writeheader()
            writer.writerows(clean)
    else:
        meta_lines = [f"# {key}: {value}" for key, value in meta.items()]
        path.write_text("\n".join([*meta_lines, *table_lines, "", *summary]) + "\n")


# ---------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------


def _select(words) -> list:
    if not words:
        return list(MI_SUITE)
    chosen = [
        spec for spec in MI_SUITE if any(word in spec.name or word in spec.tags for word in words)
    ]
    if not chosen:
        names = ", ".join(spec.name for spec in MI_SUITE)
        raise SystemExit(f"--tasks {' '.join(words)} matches no task. The tasks: {names}")
    return chosen


def _params(text: str) -> dict:
    if text.startswith("@"):
        text = Path(text[1:]).read_text()
    try:
        params = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SystemExit(f"--params is not valid JSON ({exc}): {text!r}") from None
    if not isinstance(params, dict):
        raise SystemExit(f"--params must be a JSON object, got {text!r}")
    if "random_state" in params:
        raise SystemExit("--params must not set random_state: use --seed")
    # JSON has no tuples; the estimator's validation wants one for the layer sizes.
    if isinstance(params.get("hidden_layer_sizes"), list):
        params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
    return params


def _revision() -> str:
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "unknown"
    return f"{commit}{' (uncommitted changes)' if dirty else ''}" if commit else "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--params",
        default="{}",
        help="estimator parameters as a JSON object, e.g. '{\"batch_size\": 256}' (or @file.json)",
    )
    parser.add_argument(
        "--tasks", nargs="+", default=None, help="keep tasks whose name contains a word or tag"
    )
    parser.add_argument("--n-samples", type=int, default=10_000, help="pairs per task")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data and the fits")
    parser.add_argument(
        "--jobs", type=int, default=1, help="worker processes, one thread each (default 1)"
    )
    parser.add_argument(
        "--baselines", action="store_true", help='also objective="cpc" and KSG (1-d tasks)'
    )
    parser.add_argument(
        "--attrs",
        nargs="*",
        default=list(DIAGNOSTICS),
        help="fitted attributes to show when present (default: %(default)s)",
    )
    parser.add_argument("--out", type=Path, default=None, help="also write the results here")
    parser.add_argument("--list", action="store_true", help="list the selected tasks and exit")
    args = parser.parse_args()

    specs = _select(args.tasks)
    if args.list:
        width = max(len(spec.name) for spec in specs) + 2
        print(f"{'task':<{width}}{'true MI':>8}{'d_x':>5}{'d_y':>5}  tags")
        for spec in specs:
            d_x, d_y = spec.dims
            print(
                f"{spec.name:<{width}}{spec.true_mi:>8.2f}{d_x:>5}{d_y:>5}  {', '.join(spec.tags)}"
            )
        return
    params = _params(args.params)
    _single_thread()
    meta = {
        "params": json.dumps(params, default=str),
        "n_samples": args.n_samples,
        "seed": args.seed,
        "jobs": args.jobs,
        "baselines": args.baselines,
        "tasks": len(specs),
        "revision": _revision(),
        "torch": torch.__version__,
        "python": sys.version.split()[0],
    }
    print("  ".join(f"{key}={value}" for key, value in meta.items()), flush=True)

    order = {spec.name: index for index, spec in enumerate(specs)}
    table = Table(args.attrs, width=max(len(name) for name in order) + 1)
    rows: list[dict] = []
    job = (args.n_samples, args.seed, params, args.baselines, tuple(args.attrs))
    start = time.perf_counter()
    try:
        if args.jobs <= 1:
            for spec in specs:
                for row in run_task(spec.name, *job):
                    rows.append(_complete(row))
                    table.add(row)
        else:
            # Fresh interpreters (no forked torch state), one thread each from the start.
            os.environ["OMP_NUM_THREADS"] = "1"
            os.environ["MKL_NUM_THREADS"] = "1"
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(args.jobs, mp_context=context) as pool:
                futures = [pool.submit(run_task, spec.name, *job) for spec in specs]
                for future in as_completed(futures):
                    for row in future.result():
                        rows.append(_complete(row))
                        table.add(row)
    except KeyboardInterrupt:
        print("interrupted: the summary covers the tasks that finished", flush=True)
    table.close()
    wall = time.perf_counter() - start

    rows.sort(key=lambda row: (order[row["task"]], ["mi", "cpc", "ksg"].index(row["method"])))
    for row in rows:
        if "traceback" in row:
            print(f"\n{row['task']} [{row['method']}] failed:\n{row['traceback']}", flush=True)
    summary = [*summarise(rows), f"wall time: {wall:.1f} s with {args.jobs} job(s)"]
    print()
    print("\n".join(summary), flush=True)
    if args.out is not None:
        table_lines = [table.header(), *(table.format(row) for row in rows)]
        _write(args.out, rows, table_lines, summary, meta)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
