"""Distillation benchmark: student alone, KD, CRD, CPC and ML-CPC on two tabular tasks.

For each task (``digits``, and a harder 5-class ``make_classification`` problem), each
teacher (a wide MLP, and a random forest whose representation is the concatenation of its
trees' class probabilities, passed through ``teacher_features``) and each student size (MLPs
with one hidden layer of 16 or 64 units), it trains :class:`ContrastiveDistillationClassifier`
with the rows

* ``alone``: cross-entropy only (``kd_weight=0, contrastive_weight=0``; the teacher is not
  used, so these numbers are shared by both teachers);
* ``KD``: cross-entropy + Hinton KD (``kd_weight=1``);
* ``CRD``, ``CPC``, ``ML-CPC a=1``, ``ML-CPC auto``: cross-entropy + the contrastive term
  with ``objective="crd"``, ``"cpc"``, ``"ml_cpc"`` (``alpha=1.0`` and ``alpha="auto"``), no KD,
  as in the comparisons of CRD and of the ML-CPC paper.

Every seed draws a new stratified 70/30 train/test split, refits the teachers on its training
rows and seeds the students; all rows of a seed share that split (paired by seed). The
hyperparameters are fixed (below); early stopping uses 10% of the training rows, never the
test rows. The contrastive weight (0.2) was chosen once on a validation split carved from
the synthetic task's training rows, and the learning rate raised to 3e-3 because students
were still improving at the last epoch at 1e-3; nothing was selected by test accuracy.

Run (one CPU thread, about 15 minutes on a 2-core machine)::

    OMP_NUM_THREADS=1 python benchmarks/distillation.py | tee benchmarks/results/distillation.txt

``--seeds 2 --tasks digits`` gives a quick look.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
import warnings
from collections import defaultdict

import numpy as np
import torch
from sklearn.datasets import load_digits, make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sk_mlcpc._distill import ContrastiveDistillationClassifier

COMMON = {
    "n_components": 32,
    "n_negatives": 128,
    "batch_size": 64,
    "learning_rate": 3e-3,
    "max_epochs": 60,
    "n_iter_no_change": 10,
    "validation_fraction": 0.1,
    "temperature": 4.0,
    "contrastive_temperature": 0.07,
    "momentum": 0.5,
    "device": "cpu",
}
CONTRASTIVE_WEIGHT = 0.2
METHODS: dict[str, dict] = {
    "alone": {"kd_weight": 0.0, "contrastive_weight": 0.0},
    "KD": {"kd_weight": 1.0, "contrastive_weight": 0.0},
    "CRD": {"kd_weight": 0.0, "contrastive_weight": CONTRASTIVE_WEIGHT, "objective": "crd"},
    "CPC": {"kd_weight": 0.0, "contrastive_weight": CONTRASTIVE_WEIGHT, "objective": "cpc"},
    "ML-CPC a=1": {
        "kd_weight": 0.0,
        "contrastive_weight": CONTRASTIVE_WEIGHT,
        "objective": "ml_cpc",
        "alpha": 1.0,
    },
    "ML-CPC auto": {
        "kd_weight": 0.0,
        "contrastive_weight": CONTRASTIVE_WEIGHT,
        "objective": "ml_cpc",
        "alpha": "auto",
    },
}
STUDENTS = {"mlp16": (16,), "mlp64": (64,)}


def load_task(name: str) -> tuple[np.ndarray, np.ndarray]:
    if name == "digits":
        return load_digits(return_X_y=True)
    if name == "synthetic":
        return make_classification(
            n_samples=2500,
            n_features=40,
            n_informative=20,
            n_redundant=10,
            n_classes=5,
            n_clusters_per_class=3,
            class_sep=0.8,
            flip_y=0.02,
            random_state=0,
        )
    raise ValueError(f"Unknown task {name!r}.")


def forest_features(forest: RandomForestClassifier):
    """The forest's representation: every tree's class probabilities, side by side."""

    def features(X) -> np.ndarray:
        return np.hstack([tree.predict_proba(np.asarray(X)) for tree in forest.estimators_])

    return features


def make_teachers(X_train, y_train, seed: int) -> dict[str, tuple[object, object]]:
    """``{name: (fitted teacher, teacher_features)}``."""
    mlp = make_pipeline(
        StandardScaler(),
        MLPClassifier(hidden_layer_sizes=(512, 512), early_stopping=True, random_state=seed),
    ).fit(X_train, y_train)
    forest = RandomForestClassifier(n_estimators=100, min_samples_leaf=2, random_state=seed)
    forest.fit(X_train, y_train)
    # The MLP's representation is its last hidden layer (teacher_features=None).
    return {"MLP-512x2": (mlp, None), "forest-100": (forest, forest_features(forest))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--tasks", nargs="+", default=["digits", "synthetic"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", category=ConvergenceWarning)

    accuracy: dict[tuple, list[float]] = defaultdict(list)
    seconds: dict[tuple, list[float]] = defaultdict(list)
    teacher_accuracy: dict[tuple, list[float]] = defaultdict(list)
    started = time.perf_counter()
    for task in args.tasks:
        X, y = load_task(task)
        for seed in range(args.seeds):
            X_train, X_test, y_train, y_test = train_test_split(
                X, y, test_size=0.3, stratify=y, random_state=seed
            )
            teachers = make_teachers(X_train, y_train, seed)
            for teacher_name, (teacher, _) in teachers.items():
                teacher_accuracy[task, teacher_name].append(teacher.score(X_test, y_test))
            for student_name, hidden in STUDENTS.items():
                for method, params in METHODS.items():
                    # The student alone ignores the teacher: fit it once per seed.
                    names = list(teachers) if method != "alone" else [next(iter(teachers))]
                    for teacher_name in names:
                        teacher, features = teachers[teacher_name]
                        estimator = ContrastiveDistillationClassifier(
                            teacher=teacher,
                            teacher_features=features,
                            hidden_layer_sizes=hidden,
                            random_state=seed,
                            **COMMON,
                            **params,
                        )
                        start = time.perf_counter()
                        estimator.fit(X_train, y_train)
                        elapsed = time.perf_counter() - start
                        score = estimator.score(X_test, y_test)
                        targets = list(teachers) if method == "alone" else [teacher_name]
                        for target in targets:
                            key = (task, target, student_name, method)
                            accuracy[key].append(score)
                            seconds[key].append(elapsed)
                        print(
                            f"{task} seed={seed} {teacher_name} {student_name} {method}: "
                            f"acc={score:.4f} epochs={estimator.n_epochs_} {elapsed:.1f}s "
                            f"[{time.perf_counter() - started:.0f}s]",
                            file=sys.stderr,
                            flush=True,
                        )
    report(args, accuracy, seconds, teacher_accuracy, time.perf_counter() - started)


def report(args, accuracy, seconds, teacher_accuracy, total: float) -> None:
    print("Distillation benchmark (benchmarks/distillation.py)")
    print(
        f"seeds={args.seeds} (paired: split, teachers and student init per seed), "
        f"torch threads=1, python {platform.python_version()}, torch {torch.__version__}"
    )
    print(f"fixed hyperparameters: {COMMON}, contrastive_weight={CONTRASTIVE_WEIGHT}")
    print("test accuracy: mean ± std over seeds; fit: mean seconds per student fit\n")
    pairs = []
    for task in args.tasks:
        for teacher_name in ("MLP-512x2", "forest-100"):
            teacher_scores = teacher_accuracy[task, teacher_name]
            for student_name in STUDENTS:
                pairs.append((task, teacher_name, student_name))
                print(
                    f"== {task} | teacher {teacher_name} (test acc {np.mean(teacher_scores):.4f}"
                    f" ± {np.std(teacher_scores):.4f}) | student {student_name}"
                )
                print(f"   {'method':<13}{'test accuracy':>20}{'fit s':>8}")
                for method in METHODS:
                    key = (task, teacher_name, student_name, method)
                    values = np.asarray(accuracy[key])
                    print(
                        f"   {method:<13}{values.mean():>11.4f} ± {values.std():.4f}"
                        f"{np.mean(seconds[key]):>8.1f}"
                    )
                print()
    print("ML-CPC vs CRD over teacher/student pairs (mean test accuracy over seeds):")
    for variant in ("ML-CPC a=1", "ML-CPC auto"):
        wins = 0
        seed_wins, seed_total = 0, 0
        for task, teacher_name, student_name in pairs:
            ours = np.asarray(accuracy[task, teacher_name, student_name, variant])
            crd = np.asarray(accuracy[task, teacher_name, student_name, "CRD"])
            wins += int(ours.mean() > crd.mean())
            seed_wins += int(np.sum(ours > crd))
            seed_total += len(ours)
        print(
            f"   {variant:<12} beats CRD on {wins} of {len(pairs)} pairs "
            f"(paired seeds: {seed_wins} of {seed_total} strictly better)"
        )
    print(f"\ntotal wall time: {total / 60:.1f} min")


if __name__ == "__main__":
    main()
