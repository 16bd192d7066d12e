"""Distillation speed benchmark (issue 27, item 9): seconds and accuracy of one default fit.

The user's setting: 400 labelled rows and 15,000 unlabelled transfer rows of 20 features
(``make_classification(n_informative=3, n_classes=3)``, seeded), a
:class:`~sklearn.ensemble.HistGradientBoostingClassifier` teacher with its defaults fitted
on the 400 labelled rows, one torch thread, and 5,000 test rows. Each fit is
``ContrastiveDistillationClassifier(teacher=teacher, random_state=seed, **setting)`` on
``X_labelled, y_labelled, X_transfer=X_unlabelled``; "alone" is the same student with
``kd_weight=0, contrastive_weight=0`` on the 400 labelled rows only.

Rows: a named setting (parameter overrides, ``{}`` being the estimator's defaults), fit
seconds (wall, and CPU seconds of the process: ``fit`` only, the teacher's outputs
included), epochs run, wall seconds per epoch, and test accuracy. ``old-defaults`` is
``batch_size=64``, the default before issue 27 item 9, with the current engine; the
"before" figures in ``results/distillation_speed.txt`` are this script's ``defaults`` with
the engine (``sk_mlcpc/_engine/distill_net.py``) and defaults of commit 7002ec4. Run (one
thread, about 2 minutes)::

    OMP_NUM_THREADS=1 python benchmarks/distillation_speed.py --settings alone defaults \\
        --seeds 0 1 2 | tee benchmarks/results/distillation_speed.txt

``--seeds`` lists the seeds: each draws new data and refits the teacher, and seeds the
student. CPU seconds grow too when the machine is shared; compare figures of one run.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch
from sklearn.datasets import make_classification
from sklearn.ensemble import HistGradientBoostingClassifier

from sk_mlcpc._estimators.distill import ContrastiveDistillationClassifier

N_LABELLED, N_TRANSFER, N_TEST = 400, 15_000, 5_000
# Each value overrides the estimator's defaults; "alone" also drops the transfer rows.
SETTINGS: dict[str, dict] = {
    "alone": {"kd_weight": 0.0, "contrastive_weight": 0.0},
    "defaults": {},
    # The default batch size before issue 27 item 9, with the current engine.
    "old-defaults": {"batch_size": 64},
    "kd-only": {"contrastive_weight": 0.0},
    "no-early-stopping": {"early_stopping": False},
    "batch256": {"batch_size": 256},
    "batch512": {"batch_size": 512},
    "batch256-p5": {"batch_size": 256, "n_iter_no_change": 5},
    "batch512-p5": {"batch_size": 512, "n_iter_no_change": 5},
}


def load(seed: int):
    """``(X_labelled, y_labelled, X_transfer, X_test, y_test, teacher)`` of one seed."""
    X, y = make_classification(
        n_samples=N_LABELLED + N_TRANSFER + N_TEST,
        n_features=20,
        n_informative=3,
        n_classes=3,
        random_state=seed,
    )
    X_lab, y_lab = X[:N_LABELLED], y[:N_LABELLED]
    X_transfer = X[N_LABELLED : N_LABELLED + N_TRANSFER]
    X_test, y_test = X[N_LABELLED + N_TRANSFER :], y[N_LABELLED + N_TRANSFER :]
    teacher = HistGradientBoostingClassifier(random_state=seed).fit(X_lab, y_lab)
    return X_lab, y_lab, X_transfer, X_test, y_test, teacher


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--settings", nargs="+", default=["alone", "old-defaults", "defaults"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = parser.parse_args()
    torch.set_num_threads(1)
    print("Distillation speed benchmark (benchmarks/distillation_speed.py)")
    print(
        f"{N_LABELLED} labelled + {N_TRANSFER:,} transfer rows x 20 features, {N_TEST:,} test "
        f"rows; HistGradientBoosting teacher; torch threads=1; python "
        f"{platform.python_version()}, torch {torch.__version__}"
    )
    columns = ("fit s", "cpu s", "epochs", "s/epoch", "acc")
    print(f"{'setting':<20}{'seed':>5}" + "".join(f"{column:>9}" for column in columns))
    for seed in args.seeds:
        X_lab, y_lab, X_transfer, X_test, y_test, teacher = load(seed)
        print(f"{'teacher':<20}{seed:>5}{'':>36}{teacher.score(X_test, y_test):>9.4f}")
        for name in args.settings:
            alone = name == "alone"
            estimator = ContrastiveDistillationClassifier(
                teacher=teacher, device="cpu", random_state=seed, **SETTINGS[name]
            )
            start, cpu_start = time.perf_counter(), time.process_time()
            estimator.fit(X_lab, y_lab, X_transfer=None if alone else X_transfer)
            elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
            accuracy = estimator.score(X_test, y_test)
            epochs = estimator.n_epochs_
            print(
                f"{name:<20}{seed:>5}{elapsed:>9.1f}{cpu:>9.1f}{epochs:>9}{elapsed / epochs:>9.2f}"
                f"{accuracy:>9.4f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
