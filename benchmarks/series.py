"""UCR/UEA series classification: CPC embeddings against the raw series and MiniRocket.

Run (one CPU thread; a few minutes on a 2-core machine)::

    OMP_NUM_THREADS=1 python benchmarks/series.py                 # the final defaults
    OMP_NUM_THREADS=1 python benchmarks/series.py --config before # the issue's settings
    OMP_NUM_THREADS=1 python benchmarks/series.py --seeds 1 --datasets GunPoint  # smoke

Needs ``aeon`` (the ``bench`` extra): the four data sets are the UCR/UEA files that aeon
1.6 bundles inside its wheel (``aeon/datasets/data``), loaded with
:func:`aeon.datasets.load_classification`; nothing is downloaded. JapaneseVowels is
aeon's equal-length version (``JapaneseVowels_eq``, 25 time steps) for the main table;
the original unequal-length one (7 to 29 time steps) is scored too, as a list of 2-D
arrays, by the rows that accept it (raw and MiniRocket do not).

Rows, every one with the same probe, ``make_pipeline(StandardScaler(),
RidgeClassifierCV(alphas=np.logspace(-3, 3, 10)))``, fitted on the train split and scored
(accuracy) on the test split:

* ``raw``: the series themselves, flattened to ``n_channels * n_timepoints`` columns;
* ``cpc`` / ``ml_cpc``: :class:`~sk_mlcpc.ContrastivePredictiveCoding` with
  ``objective="cpc"`` / ``"ml_cpc"``, fitted without labels on the train split, its
  :meth:`transform` fed to the probe. ``--config final`` is the estimator's defaults
  (``random_state`` aside); ``--config before`` the settings of the issue: the MLP window
  encoder with ``window = T // 16``, ``stride = window // 2`` (at least 1),
  ``pooling="mean"``;
* ``minirocket``: aeon's :class:`~aeon.transformations.collection.convolution_based.MiniRocket`
  (no training, 10,000 kernels).

Three seeds, 0 to 2 (each seed changes the estimators' ``random_state``; the splits are
the archive's). ``n_segments="auto"`` (the positional features) was chosen on seeds 10
to 18 (``--first-seed 10``, which writes no results file unless ``--output`` is given),
not on the reported ones. Tuning runs set estimator parameters with ``--param
name=value`` (e.g. ``--param augmentation='auto' --param spread_weight=1.0``) and the
strengths of :class:`~sk_mlcpc._nn.sequence_views.SeriesAugmentation` with ``--view
scale,jitter,mask_rate``; they write no results file either. The augmentations and the
spread penalty were tried on seeds 10 to 15 and left off (docs/user_guide/sequences.rst).
Seconds are per ``fit`` of the representation on one thread. Writes
``benchmarks/results/series.txt`` (``--output`` to change).
"""

from __future__ import annotations

import argparse
import ast
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import RidgeClassifierCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sk_mlcpc import ContrastivePredictiveCoding
from sk_mlcpc._nn.sequence_views import SeriesAugmentation

ROOT = Path(__file__).resolve().parents[1]
# benchmarks/coverage.py would shadow the coverage package that numba (under aeon)
# imports: this script's folder is not an import root.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
DATASETS = ("GunPoint", "BasicMotions", "ItalyPowerDemand", "JapaneseVowels")
#: The file aeon bundles for each data set of the main table.
FILES = {"JapaneseVowels": "JapaneseVowels_eq"}
#: An extra row: the unequal-length original, scored by the rows that take lists.
UNEQUAL = "JapaneseVowels"
METHODS = ("raw", "cpc", "ml_cpc", "minirocket")


def probe():
    return make_pipeline(StandardScaler(), RidgeClassifierCV(alphas=np.logspace(-3, 3, 10)))


def load(name: str):
    from aeon.datasets import load_classification

    X_train, y_train = load_classification(name, split="train")
    X_test, y_test = load_classification(name, split="test")
    return X_train, y_train, X_test, y_test


def _flat(X: np.ndarray) -> np.ndarray:
    """``(n, C, T)`` -> ``(n, T * C)`` time-major rows (the estimator's 2-D layout)."""
    return np.ascontiguousarray(np.transpose(X, (0, 2, 1))).reshape(len(X), -1)


#: Parameters set with ``--param name=value`` (tuning runs); empty for the defaults.
OVERRIDES: dict = {}


def _parameter(text: str) -> tuple[str, object]:
    name, _, value = text.partition("=")
    try:
        return name, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return name, value


def cpc_estimator(config: str, objective: str, seed: int, n_timepoints: int, n_channels: int):
    if config == "final":
        return ContrastivePredictiveCoding(objective=objective, random_state=seed, **OVERRIDES)
    window = max(1, n_timepoints // 16)
    return ContrastivePredictiveCoding(
        encoder="mlp",
        window=window,
        stride=max(1, window // 2),
        pooling="mean",
        n_channels=n_channels,
        objective=objective,
        random_state=seed,
    )


def run_method(method: str, data, seed: int, config: str) -> tuple[float, float]:
    """(accuracy, seconds per fit) of one row on one data set and seed."""
    X_train, y_train, X_test, y_test = data
    if method == "raw":
        start = time.perf_counter()
        model = probe().fit(_flat(X_train), y_train)
        return float(model.score(_flat(X_test), y_test)), time.perf_counter() - start
    if method == "minirocket":
        from aeon.transformations.collection.convolution_based import MiniRocket

        start = time.perf_counter()
        transformer = MiniRocket(random_state=seed).fit(X_train)
        seconds = time.perf_counter() - start
        features = transformer.transform(X_train), transformer.transform(X_test)
    else:
        equal = isinstance(X_train, np.ndarray)
        n_channels = X_train.shape[1] if equal else X_train[0].shape[0]
        n_timepoints = X_train.shape[2] if equal else max(x.shape[1] for x in X_train)
        est = cpc_estimator(config, method, seed, n_timepoints, n_channels)
        # The run flattened the series; the final defaults take aeon's layout.
        train, test = (X_train, X_test) if config == "final" else (_flat(X_train), _flat(X_test))
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # few held-out series: mi_std_ NaN warnings
            est.fit(train)
        seconds = time.perf_counter() - start
        features = est.transform(train), est.transform(test)
    model = probe().fit(features[0], y_train)
    return float(model.score(features[1], y_test)), seconds


def _cell(values) -> str:
    values = np.asarray(values, dtype=float)
    spread = values.std(ddof=1) if len(values) > 1 else float("nan")
    return f"{values.mean():.3f} +- {spread:.3f}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--first-seed",
        type=int,
        default=0,
        help="seeds first_seed .. first_seed + seeds - 1 (the defaults were chosen on 10-12)",
    )
    parser.add_argument("--config", choices=("final", "before"), default="final")
    parser.add_argument("--datasets", nargs="*", default=list(DATASETS))
    parser.add_argument("--methods", nargs="*", default=list(METHODS))
    parser.add_argument("--no-unequal", action="store_true", help="skip the unequal-length row")
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        type=_parameter,
        help="name=value: an estimator parameter for tuning runs (--config final only)",
    )
    parser.add_argument(
        "--view",
        type=lambda text: tuple(float(v) for v in text.split(",")),
        default=None,
        help="scale,jitter,mask_rate: augmentation=SeriesAugmentation(...) (tuning runs)",
    )
    args = parser.parse_args(argv)
    OVERRIDES.update(args.param)
    if args.view is not None:
        OVERRIDES["augmentation"] = SeriesAugmentation(*args.view)
    torch.set_num_threads(1)
    if "minirocket" in args.methods:
        # numba compiles MiniRocket on first use: not counted in the first fit's time.
        from aeon.transformations.collection.convolution_based import MiniRocket

        MiniRocket(n_kernels=84, random_state=0).fit(np.zeros((4, 1, 32)))

    results: dict[tuple[str, str], list[tuple[float, float]]] = {}
    names = list(args.datasets)
    if not args.no_unequal and UNEQUAL in names and args.config == "final":
        names.append(UNEQUAL + " (unequal)")
    for name in names:
        unequal = name.endswith("(unequal)")
        data = load(UNEQUAL if unequal else FILES.get(name, name))
        shape = (
            f"{len(data[0])} x {data[0][0].shape[0]} x 7..29"
            if unequal
            else f"{len(data[0])} x {data[0].shape[1]} x {data[0].shape[2]}"
        )
        for method in args.methods:
            if unequal and method in ("raw", "minirocket"):
                continue  # neither takes a list of unequal-length series
            seeds = [0] if method == "raw" else range(args.first_seed, args.first_seed + args.seeds)
            for seed in seeds:
                accuracy, seconds = run_method(method, data, seed, args.config)
                results.setdefault((name, method), []).append((accuracy, seconds))
                print(f"{name:<28}{method:<12}seed {seed}: {accuracy:.3f} ({seconds:.1f}s)")
        print(f"  {name}: {shape} (train cases x channels x time points)", flush=True)

    lines = [
        "UCR/UEA series classification (benchmarks/series.py)",
        f"command: OMP_NUM_THREADS=1 python benchmarks/series.py --config {args.config} "
        f"--seeds {args.seeds}"
        + (f" --first-seed {args.first_seed}" if args.first_seed else "")
        + "".join(f" --param {name}={value!r}" for name, value in args.param)
        + (f" --view {','.join(map(str, args.view))}" if args.view else ""),
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, one thread per fit "
        f"(n_threads=None, MiniRocket n_jobs=1), torch {torch.__version__}",
        "probe: StandardScaler + RidgeClassifierCV(alphas=logspace(-3, 3, 10)), fitted on the "
        "train split, accuracy on the test split",
        "cells: mean +- std over seeds (raw: deterministic, one run); seconds per fit of the "
        "representation",
        "",
        f"{'data set':<28}"
        + "".join(f"{m:>18}" for m in args.methods)
        + "".join(f"{m + ' s':>14}" for m in args.methods if m != "raw"),
    ]
    means: dict[str, list[float]] = {m: [] for m in args.methods}
    for name in names:
        row = f"{name:<28}"
        for method in args.methods:
            runs = results.get((name, method))
            row += f"{_cell([r[0] for r in runs]) if runs else '-':>18}"
            if runs and not name.endswith("(unequal)"):
                means[method].append(float(np.mean([r[0] for r in runs])))
        for method in args.methods:
            if method == "raw":
                continue
            runs = results.get((name, method))
            row += f"{np.mean([r[1] for r in runs]) if runs else float('nan'):>14.2f}"
        lines.append(row)
    lines.append(
        f"{'mean over the main sets':<28}"
        + "".join(f"{np.mean(v) if v else float('nan'):>18.3f}" for v in means.values())
    )
    report = "\n".join(lines)
    print(report)
    output = args.output
    tuning = args.first_seed or args.param or args.view
    if output is None and args.config == "final" and not tuning:
        output = ROOT / "benchmarks" / "results" / "series.txt"
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(report + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
