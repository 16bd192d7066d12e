"""How close a correctly specified critic fitted on the same rows comes, per suite task.

For every task of :data:`sk_mlcpc.datasets.MI_SUITE` whose dependence is Gaussian after a
per-column monotone map (``gaussian`` and ``sparse`` families), split the 10,000 pairs as
:class:`~sk_mlcpc.MutualInformationEstimator` does by default (70% training, 10%
validation, 20% test), map each column to a normal through its training quantiles, fit
the Gaussian model (no shrinkage) on the training rows, and evaluate ML-CPC
(``alpha="auto"``) on the test rows with that model's log density ratio as the critic.
For these tasks that critic has the form of the optimal one; what it misses comes from
estimating its (p + q)^2 / 2 covariances from 7,000 rows. The estimator's own number is
not expected to beat this reference by much on the dense high-dimensional tasks.
Run::

    python benchmarks/gaussian_reference.py [--seed 0] [--shrinkage 0.0]
"""

import argparse

import numpy as np
import torch
from sklearn.preprocessing import QuantileTransformer

from sk_mlcpc.bounds import ml_cpc, resolve_alpha
from sk_mlcpc.critics import GaussianBaselineCritic, SeparableCritic
from sk_mlcpc.datasets import MI_SUITE, make_mi_task


def reference(task, seed: int, shrinkage: float) -> float:
    data = make_mi_task(task, 10_000, random_state=seed)
    order = np.random.default_rng(seed).permutation(len(data.X))
    train, test = order[:7_000], order[8_000:]
    sides = []
    for values in (data.X, data.Y):
        quantiles = QuantileTransformer(
            output_distribution="normal", n_quantiles=1_000, random_state=seed
        ).fit(values[train])
        sides.append(torch.as_tensor(quantiles.transform(values), dtype=torch.float64))
    x, y = sides
    # critic="separable" with its y side at zero: the network adds nothing.
    network = SeparableCritic(x.shape[1], y.shape[1], 4, (8,))
    critic = GaussianBaselineCritic(network, x.shape[1], y.shape[1], shrinkage).double()
    critic.fit_baseline(x[train], y[train])
    with torch.no_grad():
        scores = critic(x[test], y[test])
    alpha = resolve_alpha("auto", "ml_cpc", len(test))
    return float(ml_cpc(scores, alpha=alpha))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shrinkage", type=float, default=0.0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    print(f"{'task':<22}{'true MI':>8}{'reference':>11}{'error':>8}")
    errors = []
    for task in MI_SUITE:
        if task.family not in ("gaussian", "sparse") or task.x_transforms or task.y_transforms:
            if "cubic" not in task.name:  # a monotone map per column: quantiles undo it
                continue
        value = reference(task, args.seed, args.shrinkage)
        errors.append((task.true_mi, abs(value - task.true_mi)))
        print(f"{task.name:<22}{task.true_mi:>8.2f}{value:>11.3f}{value - task.true_mi:>+8.3f}")
    low = [error for true_mi, error in errors if true_mi <= 2]
    print(f"mean |error|, true MI <= 2: {np.mean(low):.3f} over {len(low)} task(s)")


if __name__ == "__main__":
    main()
