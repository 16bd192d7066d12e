"""Default ``MutualInformationEstimator`` on few rows: correlated Gaussians with MI 1.

For 2 and 10 dimensions a side and 500 to 5,000 rows, seeds 0, 1 and 2, print
``mi_`` and its jackknife standard error (one torch thread). Run::

    python benchmarks/small_data.py
"""

import warnings

import torch

from sk_mlcpc import MutualInformationEstimator
from sk_mlcpc.datasets import make_correlated_gaussians


def main() -> None:
    warnings.filterwarnings("ignore")  # convergence and saturation warnings of small fits
    torch.set_num_threads(1)
    for d in (2, 10):
        for n in (500, 1000, 2000, 5000):
            row = []
            for seed in (0, 1, 2):
                X, Y, _ = make_correlated_gaussians(n, d, mi=1.0, random_state=seed)
                estimator = MutualInformationEstimator(random_state=seed).fit(X, Y)
                row.append(f"{estimator.mi_:5.2f} +- {estimator.mi_std_:.2f}")
            print(f"d={d:<3} n={n:<5} " + "   ".join(row), flush=True)


if __name__ == "__main__":
    main()
