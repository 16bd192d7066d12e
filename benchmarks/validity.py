"""Exact worst-case excess of alpha-CPC / alpha-ML-CPC over the true MI.

For each batch size and alpha, searches the discrete collision family of
``sk_mlcpc._math.collision`` (X uniform on K symbols, each pair a copy Y = X with
probability q, critic s 1[x = y]) and prints the largest exact ``E[estimate] - I(X; Y)``
with its (K, s, q), next to ``bound_validity``. Expectations are exact (no sampling).

Run ``python benchmarks/validity.py`` (about a few minutes on 2 cores; ``--quick`` skips
q < 1 at n = 64).

``python benchmarks/validity.py --table`` regenerates the table of ``alpha="auto"`` in
``sk_mlcpc/bounds.py`` (``_AUTO_RATIOS``; about 12 minutes on 2 cores, output in
``benchmarks/results/validity.txt``): for each batch size n the smallest ratio
r = alpha / alpha* at which the exact search over K (q = 1, s = inf, the worst strength
for q = 1) finds no expected estimate above log K, from the folded law of the colliding
pairs; the tabulated ratio (r times 1.005, rounded up to 0.001, at least 1) and the excess
left there; monotonicity at sizes between the table entries; sizes beyond the table and
the n -> inf (Poisson) limit; and, for q < 1, a conservative bound (noise-copy collisions
dropped, s maximised over 400 values).
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from sk_mlcpc._math.alpha_search import (
    alpha_star,
    copies_excess,
    noise_excess_bound,
    poisson_limit_ratio,
    search_ratio,
)
from sk_mlcpc._math.bounds import (
    _AUTO_RATIO_BEYOND,
    _AUTO_RATIOS,
    bound_validity,
    valid_alpha_range,
)
from sk_mlcpc._math.collision import excess_table, expected_alpha_cpc, expected_ml_cpc

STRENGTHS = [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, math.inf]
COPY_PROBS = [0.25, 0.5, 0.75, 0.9, 1.0]


def refine_k(n: int, alpha: float, objective: str, where: dict) -> tuple[float, dict]:
    """Scan the integers around the best grid K (same s and q) for a larger excess."""
    expect = expected_ml_cpc if objective == "ml_cpc" else expected_alpha_cpc
    s, q = where["strength"], where["copy_prob"]

    def excess(k: int) -> float:
        return float(expect(n, k, q, s, alpha)) - q * math.log(k)

    k_best = where["n_symbols"]
    best = excess(k_best)
    step = max(1, k_best // 8)
    while step >= 1:
        moved = True
        while moved:
            moved = False
            for k in (k_best - step, k_best + step):
                if k >= 2:
                    value = excess(k)
                    if value > best:
                        best, k_best, moved = value, k, True
        step //= 2
    return best, {**where, "n_symbols": k_best}


TABLE_SIZES = [16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192]
MARGIN = 1.005


def tabulated(ratio: float) -> float:
    """The table's rule: found limit times 1.005, rounded up to 0.001, at least 1."""
    return max(1.0, math.ceil(round(1000 * MARGIN * ratio, 9)) / 1000)


def table(sizes: list[int]) -> None:
    """Search the ratio per batch size and print the table of ``alpha="auto"``."""
    print("alpha=auto table: q = 1, s = inf; r = smallest alpha/alpha* with no excess")
    print("(exact folded law of the colliding pairs; bisection to 1e-7; K hill-climbed)")
    header = (
        f"{'n':>5} {'r found':>9} {'worst K':>8} {'mu':>6} {'K range':>17} {'r table':>8}"
        f" {'alpha*':>10} {'alpha auto':>10} {'excess@auto':>11} {'max@auto':>10} {'shipped':>7}"
    )
    print(header)
    print("-" * len(header))
    shipped = dict(_AUTO_RATIOS)
    found = {}
    for n in sizes:
        start = time.perf_counter()
        mus = np.unique(
            np.concatenate([np.geomspace(0.5, n * (n - 1) / 2, 60), np.linspace(5, 20, 31)])
        )
        max_length = 1 << 17 if n <= 1024 else 1 << 15
        ratio, k, scanned = search_ratio(n, mus, max_length=max_length)
        found[n] = ratio
        r_tab = tabulated(ratio)
        ks = [key for key, _ in scanned]
        worst_at_auto = max(float(copies_excess(n, key, [r_tab])[0]) for key in ks)
        at_k = float(copies_excess(n, k, [r_tab])[0])
        print(
            f"{n:>5} {ratio:>9.6f} {k:>8} {n * (n - 1) / k:>6.2f} {min(ks):>8}-{max(ks):<8}"
            f" {r_tab:>8.3f} {alpha_star(n):>10.4e} {r_tab * alpha_star(n):>10.4e}"
            f" {at_k:>+11.2e} {worst_at_auto:>+10.2e} {shipped.get(n, float('nan')):>7.3f}"
            f"   ({time.perf_counter() - start:.0f} s)",
            flush=True,
        )

    print("\nBetween table sizes (mu in [7, 14]): the found limit stays below the next entry's")
    for n in [24, 48, 96, 192, 384, 768, 1536, 3072, 6144]:
        ratio, k, _ = search_ratio(n, np.linspace(7, 14, 15))
        upper = min(size for size in TABLE_SIZES if size >= n)
        ok = ratio <= found.get(upper, math.inf)
        print(
            f"{n:>5} r = {ratio:.6f} (K = {k}); next entry n = {upper}: {found.get(upper)}"
            f"  {'ok' if ok else 'NOT MONOTONE'}",
            flush=True,
        )

    limit, mu = poisson_limit_ratio()
    print(f"\nPoisson limit (n -> inf, mu = n^2/K in [0.5, 1e5]): r = {limit:.6f} at mu = {mu:.2f}")
    print(f"beyond the table: {tabulated(limit):.3f} (shipped {_AUTO_RATIO_BEYOND:.3f})")
    for n in [16384, 32768]:
        ratio, k, _ = search_ratio(n, np.linspace(7, 14, 15))
        print(
            f"{n:>5} r = {ratio:.6f} (K = {k}, mu = {n * (n - 1) / k:.2f}) <= limit: "
            f"{ratio <= limit}",
            flush=True,
        )

    print("\nq < 1 (upper bound: noise-copy collisions dropped; max over 400 s), at r table")
    for n in [128, 256, 512]:
        r_tab = tabulated(found[n]) if n in found else shipped[n]
        for mu in [3.0, 10.0, 30.0]:
            k = round(n * (n - 1) / mu)
            cells = []
            for q in [0.5, 0.9, 0.99]:
                excess, strength = noise_excess_bound(n, k, q, [r_tab])
                cells.append(f"q={q:g}: {excess[0]:+.2e} (s={strength[0]:.1f})")
            print(f"{n:>5} K={k:>6} " + "  ".join(cells), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", action="store_true", help="regenerate the alpha=auto table")
    parser.add_argument("--table-sizes", type=int, nargs="+", default=TABLE_SIZES)
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--max-symbols", type=int, default=4096)
    parser.add_argument("--n-grid", type=int, default=40, help="K values (geometric grid)")
    parser.add_argument("--quick", action="store_true", help="q = 1 only for n > 32")
    args = parser.parse_args()
    if args.table:
        table(args.table_sizes)
        return

    header = (
        f"{'n':>3} {'alpha':>9} {'objective':>9} {'excess':>11} {'K':>5} {'s':>5} {'q':>5}"
        f"  validity"
    )
    print(header)
    print("-" * len(header))
    for n in args.sizes:
        limit = valid_alpha_range(n).low
        alphas = sorted({0.005, 0.01, 0.0156, limit, alpha_star(n), 1.0 / n, 0.1, 1.0})
        ks = np.unique(np.geomspace(2, args.max_symbols, args.n_grid).round().astype(int))
        qs = [1.0] if (args.quick and n > 32) else COPY_PROBS
        for objective in ("ml_cpc", "alpha_cpc"):
            results = excess_table(n, alphas, objective, ks, STRENGTHS, qs)
            for alpha, (excess, where) in zip(alphas, results):
                if math.isfinite(where["strength"]) is False and where["copy_prob"] == 1.0:
                    excess, where = refine_k(n, alpha, objective, where)
                tag = " (limit)" if alpha == limit else (" (1/n)" if alpha == 1.0 / n else "")
                tag += " (alpha*)" if alpha == alpha_star(n) else ""
                print(
                    f"{n:>3} {alpha:>9.6f} {objective:>9} {excess:>+11.3e} "
                    f"{where['n_symbols']:>5} {where['strength']:>5g} {where['copy_prob']:>5g}"
                    f"  {bound_validity(objective, n, alpha=alpha)}{tag}"
                )


if __name__ == "__main__":
    start = time.perf_counter()
    main()
    print(f"\nelapsed {time.perf_counter() - start:.1f} s")
