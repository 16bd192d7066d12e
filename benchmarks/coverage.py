"""How often ``mi_ci_`` covers what it claims to: the bound's expectation for the critic.

``mi_ci_`` (and ``evaluate(X, Y).ci``) is a 95% interval from the grouped jackknife over
the evaluation rows. It is about the sampling of those rows for a *fixed* fitted critic:
another draw of the same number of rows would give another estimate, and the interval
should cover the mean of such estimates (the bound's expectation at that batch size) 95%
of the time. It says nothing about the gap between the bound and the MI.

This script fits one critic per task, then scores ``--draws`` fresh, independent sets of
``n`` rows from the same distribution. The expectation is estimated by the mean over all
draws; the script prints the spread of the estimates across draws, the mean jackknife
standard error, and the share of intervals that cover the expectation. Run::

    python benchmarks/coverage.py [--draws 200] [--sizes 250 1000 4000]
"""

import argparse
import time
import warnings

import numpy as np
import torch

from sk_mlcpc import MutualInformationEstimator
from sk_mlcpc.datasets import make_correlated_gaussians

TASKS = (
    # name, dimensions a side, true MI, estimator parameters
    ("gaussian-2d-mi0.5", 2, 0.5, {}),
    ("gaussian-10d-mi4", 10, 4.0, {}),
    ("gaussian-20d-mi8", 20, 8.0, {}),
    ("gaussian-5d-mi2-cpc", 5, 2.0, {"objective": "cpc"}),
    ("gaussian-5d-mi2-nwj", 5, 2.0, {"objective": "nwj"}),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--draws", type=int, default=200)
    parser.add_argument("--sizes", type=int, nargs="+", default=[250, 1000, 4000])
    parser.add_argument("--n-train", type=int, default=10_000)
    parser.add_argument("--tasks", nargs="*", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(
        f"{'task':<22}{'rows':>6}{'batch':>8}{'mean est':>10}{'sd draws':>10}"
        f"{'mean se':>9}{'se/sd':>7}{'coverage':>10}{'s/eval':>8}"
    )
    for name, dims, mi, params in TASKS:
        if args.tasks and not any(word in name for word in args.tasks):
            continue
        X, Y, _ = make_correlated_gaussians(args.n_train, dims, mi=mi, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est = MutualInformationEstimator(random_state=0, **params).fit(X, Y)
        for n_rows in args.sizes:
            values, errors, lows, highs = [], [], [], []
            start = time.perf_counter()
            for draw in range(args.draws):
                X_new, Y_new, _ = make_correlated_gaussians(
                    n_rows, dims, mi=mi, random_state=1000 + draw
                )
                result = est.evaluate(X_new, Y_new)
                values.append(result.mi)
                errors.append(result.std_error)
                lows.append(result.ci[0])
                highs.append(result.ci[1])
            seconds = (time.perf_counter() - start) / args.draws
            values, lows, highs = np.array(values), np.array(lows), np.array(highs)
            expectation = values.mean()
            coverage = np.mean((lows <= expectation) & (expectation <= highs))
            spread = values.std(ddof=1)
            mean_se = float(np.mean(errors))
            print(
                f"{name:<22}{n_rows:>6}{result.batch_size:>8}{expectation:>10.3f}"
                f"{spread:>10.4f}{mean_se:>9.4f}{mean_se / spread:>7.2f}{coverage:>10.3f}"
                f"{seconds:>8.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
