"""The 20-d Gaussian task of ``benchmarks/defaults.py`` over several seeds, old and new defaults.

Compares ``MutualInformationEstimator()`` with the critic settings of 0.1.0
(``n_components=32, activation="relu", lr_schedule=None, baseline=None``) on the same
data and seeds, so a change of defaults is judged on more than one draw. Run::

    python benchmarks/defaults_seeds.py [--levels 2 10] [--seeds 0 1 2]
"""

import argparse
import time
import warnings

import numpy as np
import torch

from sk_mlcpc import MutualInformationEstimator
from sk_mlcpc.datasets import make_correlated_gaussians

OLD = {"n_components": 32, "activation": "relu", "lr_schedule": None, "baseline": None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n-samples", type=int, default=10_000)
    parser.add_argument("--levels", type=float, nargs="+", default=[2.0, 10.0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    torch.set_num_threads(1)
    header = ("true MI", "seed", "0.1.0 critic", "new defaults", "s old", "s new")
    print("{:>7} {:>4} {:>13} {:>13} {:>6} {:>6}".format(*header))
    for mi in args.levels:
        rows = []
        for seed in args.seeds:
            X, Y, _ = make_correlated_gaussians(args.n_samples, 20, mi=mi, random_state=seed)
            values, seconds = [], []
            for params in (OLD, {}):
                start = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    est = MutualInformationEstimator(random_state=seed, **params).fit(X, Y)
                seconds.append(time.perf_counter() - start)
                values.append(est.mi_)
            rows.append(values)
            print(
                f"{mi:7.1f} {seed:4d} {values[0]:13.3f} {values[1]:13.3f} "
                f"{seconds[0]:6.1f} {seconds[1]:6.1f}"
            )
        mean = np.mean(rows, axis=0)
        print(f"{mi:7.1f} mean {mean[0]:13.3f} {mean[1]:13.3f}")


if __name__ == "__main__":
    main()
