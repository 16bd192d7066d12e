"""Distillation benchmark: does a distilled student beat the student trained alone?

Two tasks, reported whatever the outcome.

``rules`` (the task distillation is for). A seeded synthetic generator,
:func:`sk_mlcpc.datasets.make_rules_classification`: 16 Gaussian features, 4 classes,
each class scored by 8 random interactions of two thresholded features (tree-shaped
structure) plus a smooth term, with Gumbel label noise. The user has **1,000 labelled
rows and 20,000 unlabelled rows**.
The teacher is a :class:`~sklearn.ensemble.HistGradientBoostingClassifier` fitted on the
1,000 labelled rows only: boosting is the better model on small tabular data, but it is a
few hundred trees to ship. The student (an MLP with one hidden layer of 16 or 64 units) is
distilled from the teacher's outputs on all 21,000 rows (``X_transfer``); the student
alone sees the 1,000 labelled rows. Every seed draws new rows (labelled, unlabelled and
5,000 test rows) from the same rules, refits the teacher and seeds the students.

``digits`` (the control: a teacher no better than the student). All rows labelled, no
transfer rows, a wide MLP teacher (``MLPClassifier((512, 512))``) fitted on the same
rows, student ``mlp64``; each seed draws a stratified 70/30 split.

Rows: the student alone (labels only), KD (``kd_weight=1``), the contrastive term alone
with ``contrastive_weight=0.2`` and CRD, CPC, ML-CPC ``alpha=1`` and ML-CPC
``alpha="auto"``, and KD + ML-CPC with the estimator's defaults (``kd_weight=1,
contrastive_weight=0.8, alpha="auto"``). Columns: test accuracy and log-loss (mean ± std
over paired seeds), the paired accuracy difference to the student alone (mean ± 2
standard errors), agreement with the teacher's predictions on the test rows, fit seconds,
and the prediction throughput (rows per second, ``predict_proba`` on the test rows, one
thread) and size (bytes pickled: the fitted teacher; the student's torch module,
preprocessing and classes) of teacher and student.

Run (one thread, about 10 minutes)::

    OMP_NUM_THREADS=1 python benchmarks/distillation.py | tee benchmarks/results/distillation.txt

``--seeds 1 --quick`` is a smoke test.
"""

from __future__ import annotations

import argparse
import pickle
import platform
import sys
import time
import warnings
from collections import defaultdict

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import log_loss
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sk_mlcpc._estimators.distill import ContrastiveDistillationClassifier
from sk_mlcpc.datasets import make_rules_classification

CONTRASTIVE_WEIGHT = 0.2
METHODS: dict[str, dict] = {
    "alone": {"kd_weight": 0.0, "contrastive_weight": 0.0},
    "KD": {"kd_weight": 1.0, "contrastive_weight": 0.0},
    "CRD": {"kd_weight": 0.0, "contrastive_weight": CONTRASTIVE_WEIGHT, "objective": "crd"},
    "CPC": {"kd_weight": 0.0, "contrastive_weight": CONTRASTIVE_WEIGHT, "objective": "cpc"},
    "ML-CPC a=1": {"kd_weight": 0.0, "contrastive_weight": CONTRASTIVE_WEIGHT, "alpha": 1.0},
    "ML-CPC auto": {"kd_weight": 0.0, "contrastive_weight": CONTRASTIVE_WEIGHT, "alpha": "auto"},
    # The estimator's defaults: kd_weight=1.0, contrastive_weight=0.8, alpha="auto".
    "KD+ML-CPC dflt": {},
}
# Shared by every row; the student alone (few rows) gets its own batch size and epochs so
# that it is trained to convergence rather than for a handful of steps.
COMMON = {
    "n_components": 16,
    "n_negatives": 64,
    "learning_rate": 3e-3,
    "temperature": 4.0,
    "contrastive_temperature": 0.07,
    "momentum": 0.5,
    "validation_fraction": 0.1,
    "device": "cpu",
}
TASKS = {
    "rules": {
        "students": {"mlp16": (16,), "mlp64": (64,)},
        "distil": {"batch_size": 256, "max_epochs": 12, "n_iter_no_change": 4},
        "alone": {"batch_size": 32, "max_epochs": 200, "n_iter_no_change": 10},
    },
    "digits": {
        "students": {"mlp64": (64,)},
        "distil": {"batch_size": 64, "max_epochs": 30, "n_iter_no_change": 5},
        "alone": {"batch_size": 64, "max_epochs": 30, "n_iter_no_change": 5},
    },
}


def load_task(task: str, seed: int, quick: bool):
    """``(X_train, y_train, X_transfer, X_test, y_test, teacher)`` of one seed."""
    if task == "rules":
        n_labelled, n_unlabelled, n_test = (300, 2_000, 1_000) if quick else (1_000, 20_000, 5_000)
        X, y = make_rules_classification(n_labelled + n_unlabelled + n_test, random_state=seed)
        X_train, y_train = X[:n_labelled], y[:n_labelled]
        X_transfer = X[n_labelled : n_labelled + n_unlabelled]
        X_test, y_test = X[n_labelled + n_unlabelled :], y[n_labelled + n_unlabelled :]
        teacher = HistGradientBoostingClassifier(random_state=seed).fit(X_train, y_train)
        return X_train, y_train, X_transfer, X_test, y_test, teacher
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.3, stratify=y, random_state=seed
    )
    teacher = make_pipeline(
        StandardScaler(),
        MLPClassifier(hidden_layer_sizes=(512, 512), early_stopping=True, random_state=seed),
    ).fit(X_train, y_train)
    return X_train, y_train, None, X_test, y_test, teacher


def throughput(predict, X, repeats: int = 3) -> float:
    """Rows per second of ``predict(X)``, the best of ``repeats`` calls."""
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        predict(X)
        best = min(best, time.perf_counter() - start)
    return len(X) / best


def student_bytes(estimator: ContrastiveDistillationClassifier) -> int:
    """Bytes of what prediction needs: the torch module, preprocessing and classes."""
    return len(pickle.dumps((estimator.student_, estimator.preprocessor_, estimator.classes_)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--tasks", nargs="+", default=list(TASKS))
    parser.add_argument("--quick", action="store_true", help="small data, a smoke test")
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", category=ConvergenceWarning)

    results: dict[tuple, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    teachers: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    started = time.perf_counter()
    for task in args.tasks:
        setting = TASKS[task]
        for seed in range(args.seeds):
            X_train, y_train, X_transfer, X_test, y_test, teacher = load_task(
                task, seed, args.quick
            )
            teacher_pred = teacher.predict(X_test)
            record = teachers[task]
            record["acc"].append(np.mean(teacher_pred == y_test))
            record["logloss"].append(log_loss(y_test, teacher.predict_proba(X_test)))
            record["rows_s"].append(throughput(teacher.predict_proba, X_test))
            record["bytes"].append(len(pickle.dumps(teacher)))
            for student_name, hidden in setting["students"].items():
                for method, params in METHODS.items():
                    alone = method == "alone"
                    estimator = ContrastiveDistillationClassifier(
                        teacher=teacher,
                        teacher_features="predict_proba" if task == "rules" else None,
                        hidden_layer_sizes=hidden,
                        random_state=seed,
                        **COMMON,
                        **setting["alone" if alone else "distil"],
                        **params,
                    )
                    start = time.perf_counter()
                    # The student alone learns from the labelled rows only.
                    estimator.fit(X_train, y_train, X_transfer=None if alone else X_transfer)
                    elapsed = time.perf_counter() - start
                    proba = estimator.predict_proba(X_test)
                    pred = estimator.classes_[proba.argmax(axis=1)]
                    row = results[task, student_name, method]
                    row["acc"].append(np.mean(pred == y_test))
                    row["logloss"].append(log_loss(y_test, proba, labels=estimator.classes_))
                    row["agree"].append(np.mean(pred == teacher_pred))
                    row["fit_s"].append(elapsed)
                    row["epochs"].append(estimator.n_epochs_)
                    row["rows_s"].append(throughput(estimator.predict_proba, X_test))
                    row["bytes"].append(student_bytes(estimator))
                    print(
                        f"{task} seed={seed} {student_name} {method}: acc={row['acc'][-1]:.4f} "
                        f"epochs={estimator.n_epochs_} {elapsed:.1f}s "
                        f"[{time.perf_counter() - started:.0f}s]",
                        file=sys.stderr,
                        flush=True,
                    )
    report(args, results, teachers, time.perf_counter() - started)


def _mean_std(values, digits: int = 4) -> str:
    values = np.asarray(values, dtype=float)
    return f"{values.mean():.{digits}f} ± {values.std():.{digits}f}"


def report(args, results, teachers, total: float) -> None:
    print("Distillation benchmark (benchmarks/distillation.py)")
    print(
        f"seeds={args.seeds} (paired: data, teacher and student init per seed), torch threads=1, "
        f"python {platform.python_version()}, torch {torch.__version__}"
        + (" [--quick]" if args.quick else "")
    )
    print(f"shared hyperparameters: {COMMON}; contrastive rows: weight {CONTRASTIVE_WEIGHT}")
    for task in args.tasks:
        print(f"{task}: distilled {TASKS[task]['distil']}, alone {TASKS[task]['alone']}")
    print(
        "acc, log-loss: test rows, mean ± std over seeds; d-acc: paired difference to 'alone', "
        "mean ± 2 SE;\nagree: agreement with the teacher's test predictions; fit s: mean; "
        "rows/s: predict_proba on the test rows, one thread; bytes: pickled model\n"
    )
    for task in args.tasks:
        teacher = teachers[task]
        print(
            f"== {task} | teacher: acc {_mean_std(teacher['acc'])}, log-loss "
            f"{_mean_std(teacher['logloss'], 3)}, {np.mean(teacher['rows_s']):,.0f} rows/s, "
            f"{np.mean(teacher['bytes']):,.0f} bytes"
        )
        for student_name in TASKS[task]["students"]:
            print(f"   student {student_name}")
            print(
                f"   {'method':<15}{'acc':>17}{'d-acc':>17}{'log-loss':>15}{'agree':>8}"
                f"{'fit s':>7}{'epochs':>7}{'rows/s':>11}{'bytes':>8}"
            )
            alone = np.asarray(results[task, student_name, "alone"]["acc"])
            for method in METHODS:
                row = results[task, student_name, method]
                diff = np.asarray(row["acc"]) - alone
                se = diff.std(ddof=1) / np.sqrt(len(diff)) if len(diff) > 1 else np.nan
                print(
                    f"   {method:<15}{_mean_std(row['acc']):>17}"
                    f"{diff.mean():>+9.4f} ± {2 * se:.4f}"
                    f"{_mean_std(row['logloss'], 3):>15}{np.mean(row['agree']):>8.3f}"
                    f"{np.mean(row['fit_s']):>7.1f}{np.mean(row['epochs']):>7.1f}"
                    f"{np.mean(row['rows_s']):>11,.0f}{np.mean(row['bytes']):>8,.0f}"
                )
            print()
    print(f"total wall time: {total / 60:.1f} min")


if __name__ == "__main__":
    main()
