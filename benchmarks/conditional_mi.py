"""Conditional MI I(X; Y | Z) on ground truth: ours against a k-nearest-neighbour reference.

Cases (``sk_mlcpc.datasets``), each with conditioning sets of 1, 5 and 20 columns:

``gauss``
    :func:`~sk_mlcpc.datasets.make_conditional_gaussians`, one column each of ``X`` and
    ``Y``, ``I(X; Y | Z) = 0.5`` nats; every column of ``Z`` drives both sides.
``common``
    :func:`~sk_mlcpc.datasets.make_common_cause`: ``X`` linear and ``Y`` non-linear in
    ``Z`` (all columns), conditional MI 0 while ``I(X; Y)`` is about 0.5.
``xor``
    :func:`~sk_mlcpc.datasets.make_xor_given_z`, ``flip=0.1``: ``I(X; Y) = 0`` but
    ``I(X; Y | Z) = log 2 - H_b(0.1) = 0.368``; ``Z_1`` is the partner, the other
    columns nuisance.

Rows: ``ours`` (:class:`~sk_mlcpc.ConditionalMutualInformationEstimator` with the default
:class:`~sk_mlcpc.MutualInformationEstimator`, ``random_state=seed``), ``ours-cpc`` (the
same with ``objective="cpc"``), and ``knn``: a Frenzel-Pompe / KSG-type conditional MI
estimator written here with :mod:`sklearn.neighbors` (max-norm, ``k=5`` neighbours in the
joint space, counts strictly inside that radius in the ``(X, Z)``, ``(Y, Z)`` and ``Z``
subspaces, columns standardised), on all the rows (it has no held-out split and no
interval). Each cell is over ``--seeds`` data draws (the data and the fit seeded alike):
``mean`` and ``sd`` of the estimate over seeds, the first seed's interval ``ci``,
``cover`` how many seeds' intervals hold the truth (the interval is for the held-out
estimate of the fitted critics, not for the truth: see the coverage section), and ``sec``
the mean wall-clock seconds of one CMI estimate (two fits for ours), ``cpu s`` its CPU
seconds (one thread: the wall-clock time on an idle core; the two differ when the machine
is shared, whose load average is printed at the end).

The coverage section checks what the interval claims: for the critics fitted on seed 0,
``--draws`` fresh test sets of the fit's test size are drawn from the same distribution;
each gives an estimate and a 95% interval (``evaluate``); the target is the mean estimate
over the draws (the expectation over test rows for these critics). Reported: how many
intervals hold it, the mean jackknife standard error and the standard deviation of the
estimates over draws (they should agree).

Run (3,000 rows, 3 seeds, 100 draws at the defaults: 544 CPU seconds on one thread, 19
minutes of wall-clock time on a shared 2-core machine at load average 5)::

    python benchmarks/conditional_mi.py --out benchmarks/results/conditional_mi.txt
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np
import torch
from scipy import special
from sklearn.neighbors import KDTree, NearestNeighbors

from sk_mlcpc import ConditionalMutualInformationEstimator, MutualInformationEstimator
from sk_mlcpc.datasets import make_common_cause, make_conditional_gaussians, make_xor_given_z

CASES = {
    "gauss": lambda n, k, seed: make_conditional_gaussians(n, 1, k, cmi=0.5, random_state=seed),
    "common": lambda n, k, seed: make_common_cause(n, 1, k, random_state=seed),
    "xor": lambda n, k, seed: make_xor_given_z(n, k, flip=0.1, random_state=seed),
}
Z_SIZES = (1, 5, 20)


def knn_cmi(X: np.ndarray, Y: np.ndarray, Z: np.ndarray, k: int = 5, seed: int = 0) -> float:
    """Frenzel-Pompe conditional MI estimate (nats), max-norm, ``k`` neighbours.

    ``psi(k) - mean[psi(n_xz + 1) + psi(n_yz + 1) - psi(n_z + 1)]``, where ``n_s`` counts
    the other points strictly closer than the ``k``-th neighbour's distance in the joint
    space, in subspace ``s``.
    """
    rng = np.random.default_rng(seed)
    parts = []
    for block in (X, Y, Z):
        block = (block - block.mean(0)) / block.std(0)
        parts.append(block + 1e-10 * rng.standard_normal(block.shape))  # break ties
    x, y, z = parts
    joint = np.hstack([x, y, z])
    distances, _ = (
        NearestNeighbors(n_neighbors=k + 1, metric="chebyshev").fit(joint).kneighbors(joint)
    )
    radius = np.nextafter(distances[:, k], 0)  # strictly inside

    def counts(points: np.ndarray) -> np.ndarray:
        tree = KDTree(points, metric="chebyshev")
        return tree.query_radius(points, radius, count_only=True) - 1  # less the point itself

    n_xz, n_yz, n_z = counts(np.hstack([x, z])), counts(np.hstack([y, z])), counts(z)
    return float(
        special.digamma(k)
        - np.mean(special.digamma(n_xz + 1) + special.digamma(n_yz + 1) - special.digamma(n_z + 1))
    )


def ours(objective: str, seed: int) -> ConditionalMutualInformationEstimator:
    return ConditionalMutualInformationEstimator(
        MutualInformationEstimator(objective=objective, random_state=seed)
    )


def draw(case: str, k: int, seed: int, n: int, n_extra: int):
    """``n`` rows for the fit and ``n_extra`` more of the same distribution (one draw:
    the Gaussian cases' loadings come from the seed), disjoint, for the coverage check."""
    X, Y, Z, truth = CASES[case](n + n_extra, k, seed)
    return (X[:n], Y[:n], Z[:n]), (X[n:], Y[n:], Z[n:]), truth


def run_table(n: int, seeds: int, n_extra: int, lines: list[str], write) -> dict:
    fitted = {}
    header = (
        f"{'case':7} {'|Z|':>3} {'method':9} {'truth':>6} {'mean':>7} {'sd':>6} "
        f"{'ci (seed 0)':>17} {'cover':>5} {'sec':>6} {'cpu s':>6}"
    )
    lines += [header, "-" * len(header)]
    for case in CASES:
        for k in Z_SIZES:
            results = {"ours": [], "ours-cpc": [], "knn": []}
            for seed in range(seeds):
                (X, Y, Z), extra, truth = draw(case, k, seed, n, n_extra if seed == 0 else 0)
                for method in ("ours", "ours-cpc"):
                    start, cpu = time.perf_counter(), time.process_time()
                    est = ours("ml_cpc" if method == "ours" else "cpc", seed).fit(X, Y, Z=Z)
                    seconds = (time.perf_counter() - start, time.process_time() - cpu)
                    results[method].append((est.mi_, est.mi_ci_, seconds))
                    if seed == 0:
                        fitted[(case, k, method)] = (est, extra)
                start, cpu = time.perf_counter(), time.process_time()
                value = knn_cmi(X, Y, Z, seed=seed)
                seconds = (time.perf_counter() - start, time.process_time() - cpu)
                results["knn"].append((value, None, seconds))
            for method, rows in results.items():
                values = np.array([row[0] for row in rows])
                interval = rows[0][1]
                ci = "-" if interval is None else f"[{interval[0]:.3f}, {interval[1]:.3f}]"
                cover = (
                    "-"
                    if interval is None
                    else f"{sum(low <= truth <= high for _, (low, high), _ in rows)}/{len(rows)}"
                )
                lines.append(
                    f"{case:7} {k:>3} {method:9} {truth:6.3f} {values.mean():7.3f} "
                    f"{values.std(ddof=1) if len(values) > 1 else float('nan'):6.3f} "
                    f"{ci:>17} {cover:>5} {np.mean([row[2][0] for row in rows]):6.1f} "
                    f"{np.mean([row[2][1] for row in rows]):6.1f}"
                )
                write()
    return fitted


def run_coverage(fitted: dict, draws: int, lines: list[str], write) -> None:
    lines += [
        "",
        f"Coverage of the interval for fixed fitted critics (seed 0, |Z| = 5), {draws} fresh "
        "test sets of the fit's test size each; target: the mean estimate over the sets.",
    ]
    header = (
        f"{'case':7} {'|Z|':>3} {'method':9} {'rows':>5} {'target':>7} {'covered':>8} "
        f"{'mean se':>8} {'sd est':>7}"
    )
    lines += [header, "-" * len(header)]
    for case, k, method in (("gauss", 5, "ours"), ("common", 5, "ours"), ("xor", 5, "ours")):
        est, (X, Y, Z) = fitted[(case, k, method)]
        n_test = len(est.test_indices_)
        estimates, errors, intervals = [], [], []
        for index in range(draws):
            rows = slice(index * n_test, (index + 1) * n_test)
            value, error, interval = est.evaluate(X[rows], Y[rows], Z=Z[rows])
            estimates.append(value)
            errors.append(error)
            intervals.append(interval)
        target = float(np.mean(estimates))
        covered = sum(low <= target <= high for low, high in intervals)
        lines.append(
            f"{case:7} {k:>3} {method:9} {n_test:>5} {target:7.3f} {covered:>4}/{draws:<3} "
            f"{np.mean(errors):8.4f} {np.std(estimates, ddof=1):7.4f}"
        )
        write()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000, help="rows per data set")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--draws", type=int, default=100, help="test sets for the coverage")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    lines = [
        f"Conditional MI benchmark: {args.n} rows, seeds 0..{args.seeds - 1}, one thread "
        f"(torch {torch.__version__}).",
        "",
    ]

    def write() -> None:
        text = "\n".join(lines) + "\n"
        if args.out:
            with open(args.out, "w") as handle:
                handle.write(text)
        print(lines[-1], flush=True)

    start, cpu = time.perf_counter(), time.process_time()
    n_test = int(np.ceil(0.2 * args.n))  # the default test_fraction
    fitted = run_table(args.n, args.seeds, args.draws * n_test, lines, write)
    run_coverage(fitted, args.draws, lines, write)
    lines += [
        "",
        f"Total {time.perf_counter() - start:.0f} s wall, {time.process_time() - cpu:.0f} s "
        f"CPU; load average at the end {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores.",
    ]
    write()


if __name__ == "__main__":
    main()
