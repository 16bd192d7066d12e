"""Exact worst-case excess of alpha-CPC / alpha-ML-CPC over the true MI.

For each batch size and alpha, searches the discrete collision family of
``sk_mlcpc.utils._collision`` (X uniform on K symbols, each pair a copy Y = X with
probability q, critic s 1[x = y]) and prints the largest exact ``E[estimate] - I(X; Y)``
with its (K, s, q), next to ``bound_validity``. Expectations are exact (no sampling).

Run ``python benchmarks/validity.py`` (about a few minutes on 2 cores; ``--quick`` skips
q < 1 at n = 64).
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from sk_mlcpc.bounds import bound_validity, valid_alpha_range
from sk_mlcpc.utils._collision import excess_table, expected_alpha_cpc, expected_ml_cpc

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--max-symbols", type=int, default=4096)
    parser.add_argument("--n-grid", type=int, default=40, help="K values (geometric grid)")
    parser.add_argument("--quick", action="store_true", help="q = 1 only for n > 32")
    args = parser.parse_args()

    header = (
        f"{'n':>3} {'alpha':>9} {'objective':>9} {'excess':>11} {'K':>5} {'s':>5} {'q':>5}"
        f"  validity"
    )
    print(header)
    print("-" * len(header))
    for n in args.sizes:
        limit = valid_alpha_range(n).low
        alphas = sorted({0.005, 0.01, 0.0156, limit, 1.0 / n, 0.1, 1.0})
        ks = np.unique(np.geomspace(2, args.max_symbols, args.n_grid).round().astype(int))
        qs = [1.0] if (args.quick and n > 32) else COPY_PROBS
        for objective in ("ml_cpc", "alpha_cpc"):
            results = excess_table(n, alphas, objective, ks, STRENGTHS, qs)
            for alpha, (excess, where) in zip(alphas, results):
                if math.isfinite(where["strength"]) is False and where["copy_prob"] == 1.0:
                    excess, where = refine_k(n, alpha, objective, where)
                tag = " (limit)" if alpha == limit else (" (1/n)" if alpha == 1.0 / n else "")
                print(
                    f"{n:>3} {alpha:>9.6f} {objective:>9} {excess:>+11.3e} "
                    f"{where['n_symbols']:>5} {where['strength']:>5g} {where['copy_prob']:>5g}"
                    f"  {bound_validity(objective, n, alpha=alpha)}{tag}"
                )


if __name__ == "__main__":
    start = time.perf_counter()
    main()
    print(f"\nelapsed {time.perf_counter() - start:.1f} s")
