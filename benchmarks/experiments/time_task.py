"""Fit ``MutualInformationEstimator`` at its defaults on one development-suite task.

For paired timings of two revisions (``benchmarks/results/baseline_overhead.txt``): run
it as a whole process, alternating between two checkouts (``PYTHONPATH=<checkout>``)::

    OMP_NUM_THREADS=1 python benchmarks/experiments/time_task.py gauss-20d-mi10
"""

import sys
import warnings

import torch

import sk_mlcpc
from sk_mlcpc import MutualInformationEstimator
from sk_mlcpc.datasets import make_mi_task

if __name__ == "__main__":
    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    task = make_mi_task(sys.argv[1], random_state=0)
    estimator = MutualInformationEstimator(random_state=0).fit(task.X, task.Y)
    print(sk_mlcpc.__file__, estimator.mi_, estimator.n_epochs_)
