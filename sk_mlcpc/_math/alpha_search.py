"""Search for the smallest alpha at which alpha-ML-CPC shows no excess (batch layout).

Numerical support for the table behind ``alpha="auto"`` in :mod:`sk_mlcpc.bounds`
(``benchmarks/validity.py`` regenerates it). Private.

Everything here is about the collision family of :mod:`sk_mlcpc._math.collision` in the
batch layout (``m = n``), written with ``alpha = r alpha*``, ``alpha* = n / (n (n - 1) + 1)``:

- :func:`copies_excess`: ``E[estimate] - log K`` for ``q = 1``, ``s = inf``, from the folded
  law of the colliding pairs (:func:`~sk_mlcpc._math.collision.folded_pair_law`). Exact up
  to float64 rounding when the folding length exceeds the support that matters, and never
  below the exact value in any case (folding moves mass to fewer collisions). For ``q = 1``
  the estimate of every batch increases with ``s``, so ``s = inf`` is the worst strength.
- :func:`noise_excess_bound`: an *upper bound* on ``max_s E[estimate] - q log K`` for
  ``q < 1``, obtained by dropping the collisions between noise rows and copies (the estimate
  decreases in the collision count) and computing the rest exactly.
- :func:`critical_ratio` / :func:`search_ratio`: the smallest ``r`` with no excess at one
  ``K`` / over all ``K`` (the estimate of every batch decreases in alpha, so the excess is
  monotone in ``r`` and bisection is valid).
- :func:`poisson_limit_excess` / :func:`poisson_limit_ratio`: the ``n -> inf`` limit at fixed
  ``mu = n^2 / K``, where ``P`` is Poisson(``mu / 2``).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import gammaln
from scipy.stats import binom

from sk_mlcpc._math.collision import folded_pair_law, ml_cpc_given_counts

__all__ = [
    "alpha_star",
    "copies_excess",
    "critical_ratio",
    "noise_excess_bound",
    "pair_length",
    "poisson_limit_excess",
    "poisson_limit_ratio",
    "search_ratio",
]


def alpha_star(n: int) -> float:
    """``alpha* = n / (n (n - 1) + 1)``, the batch-layout reference point.

    Parameters
    ----------
    n : int
        Batch size.

    Returns
    -------
    alpha_star : float

    Examples
    --------
    >>> round(alpha_star(128), 6)
    0.007874
    """
    return n / (n * (n - 1) + 1)


def pair_length(n: int, n_symbols: int) -> int:
    """Folding length for the pair law: a power of 2 far above the bulk of ``P``.

    Parameters
    ----------
    n, n_symbols : int
        Batch size and alphabet size.

    Returns
    -------
    length : int
        At least ``E P + 20 sqrt(E P + 1) + 64`` with ``E P = n (n - 1) / (2 K)``.

    Examples
    --------
    >>> pair_length(128, 1700)
    128
    """
    mean = n * (n - 1) / (2 * n_symbols)
    return 1 << math.ceil(math.log2(mean + 20 * math.sqrt(mean + 1) + 64))


def copies_excess(n: int, n_symbols: int, ratios: np.ndarray | list[float]) -> np.ndarray:
    """``E[ml_cpc] - log K`` for ``q = 1``, ``s = inf``, at ``alpha = r alpha*``.

    Parameters
    ----------
    n : int
        Batch size (``m = n``).
    n_symbols : int
        Alphabet size ``K``.
    ratios : array-like of float
        Values of ``r``; ``r alpha*`` must lie in ``(0, n]``.

    Returns
    -------
    excess : ndarray
        One value per ratio. Exact up to rounding when the pair count stays below
        :func:`pair_length` (about 1e-12 relative); never below the exact value.

    Examples
    --------
    >>> float(copies_excess(128, 1700, [1.0])[0]) > 2e-4   # alpha* fails at n = 128
    True
    """
    length = pair_length(n, n_symbols)
    law = folded_pair_law(n, n_symbols, length)
    pairs = np.arange(length, dtype=np.float64)
    alpha = np.asarray(ratios, dtype=np.float64).reshape(-1, 1) * alpha_star(n)
    beta = (n - alpha) / (n - 1)
    estimate = 2 * math.log(n) - np.log(alpha * n + 2 * beta * pairs[None, :])
    return estimate @ law - math.log(n_symbols)


def critical_ratio(n: int, n_symbols: int, low: float = 0.5, high: float = 1.5) -> float:
    """Smallest ``r`` in ``[low, high]`` with ``copies_excess <= 0`` at this ``K``.

    Parameters
    ----------
    n, n_symbols : int
        Batch and alphabet sizes.
    low, high : float
        Bracket; ``low`` is returned if there is no excess there.

    Returns
    -------
    ratio : float
        The upper end of the final bisection bracket (width below 1e-7), so there is no
        excess at the returned value.

    Examples
    --------
    >>> round(critical_ratio(128, 1700), 4)
    1.0019
    """
    if copies_excess(n, n_symbols, [low])[0] <= 0:
        return low
    if copies_excess(n, n_symbols, [high])[0] > 0:
        raise ValueError(f"excess at r = {high} (n={n}, K={n_symbols}); widen the bracket.")
    while high - low > 1e-7:
        mid = 0.5 * (low + high)
        if copies_excess(n, n_symbols, [mid])[0] > 0:
            low = mid
        else:
            high = mid
    return high


def _k_of_mu(n: int, mu: float) -> int:
    return max(2, round(n * (n - 1) / mu))


def search_ratio(
    n: int, mus: np.ndarray | list[float], max_length: int = 1 << 15
) -> tuple[float, int, list[tuple[int, float]]]:
    """Largest critical ratio over ``K = n (n - 1) / mu`` for ``mu`` in a grid, refined.

    Parameters
    ----------
    n : int
        Batch size.
    mus : array-like of float
        Grid of ``mu = n (n - 1) / K`` (mean number of ordered colliding pairs).
    max_length : int, default=32768
        ``K`` whose :func:`pair_length` exceeds this are skipped (memory and time).

    Returns
    -------
    ratio : float
        The largest critical ratio found.
    n_symbols : int
        The ``K`` where it occurs, after an integer hill-climb around the best grid point.
    scanned : list of (int, float)
        ``(K, critical ratio)`` for every ``K`` evaluated, grid and refinement.

    Examples
    --------
    >>> ratio, k, _ = search_ratio(64, [5, 10, 20])
    >>> round(ratio, 4), k
    (0.9864, 446)
    """
    cache: dict[int, float] = {}

    def value(k: int) -> float:
        if k not in cache:
            cache[k] = critical_ratio(n, k)
        return cache[k]

    ks = sorted({_k_of_mu(n, mu) for mu in mus if pair_length(n, _k_of_mu(n, mu)) <= max_length})
    best_k = max(ks, key=value)
    step = max(1, best_k // 16)
    while step >= 1:
        moved = True
        while moved:
            moved = False
            for k in (best_k - step, best_k + step):
                if k >= 2 and value(k) > value(best_k):
                    best_k, moved = k, True
        step //= 2
    return value(best_k), best_k, sorted(cache.items())


def noise_excess_bound(
    n: int,
    n_symbols: int,
    copy_prob: float,
    ratios: np.ndarray | list[float],
    strengths: np.ndarray | list[float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Upper bound on ``E[ml_cpc] - q log K`` with noise pairs, maximised over ``s``.

    Parameters
    ----------
    n, n_symbols : int
        Batch and alphabet sizes.
    copy_prob : float
        ``q`` in ``(0, 1)``.
    ratios : array-like of float
        Values of ``r`` (``alpha = r alpha*``).
    strengths : array-like of float or None
        Finite critic strengths; default 400 values in ``[0, log K + 2 log n + 10]``.

    Returns
    -------
    excess : ndarray
        Per ratio, ``max_s`` of the bound.
    worst_strength : ndarray
        The maximising ``s`` per ratio.

    Notes
    -----
    With ``d`` copies, ``C = C_cc + C_nc`` (copy-copy and noise-copy collisions), and the
    estimate decreases in ``C`` for ``s >= 0``; dropping ``C_nc`` can only raise it. Given
    ``d``, ``C_cc = 2 P_d`` with ``P_d`` the colliding pairs of ``d`` copies, whose law is
    :func:`~sk_mlcpc._math.collision.folded_pair_law` (exact; folding again only raises the
    estimate). ``d`` is Binomial(``n, q``); the ``d`` outside the computed range (mass below
    1e-30) are bounded by the cap ``log(n / alpha)``.

    Examples
    --------
    >>> excess, _ = noise_excess_bound(64, 400, 0.9, [1.0])
    >>> bool(excess[0] < 0)
    True
    """
    ratios = np.asarray(ratios, dtype=np.float64).ravel()
    alphas = ratios * alpha_star(n)
    if strengths is None:
        strengths = np.linspace(0.0, math.log(n_symbols) + 2 * math.log(n) + 10.0, 400)
    s = np.asarray(strengths, dtype=np.float64).ravel()
    if not np.all(np.isfinite(s)) or np.any(s < 0):
        raise ValueError("strengths must be finite and >= 0.")
    d_all = np.arange(n + 1)
    pmf = binom.pmf(d_all, n, copy_prob)
    keep = pmf > 1e-30
    total = np.zeros((s.size, alphas.size))
    for d in d_all[keep]:
        if d < 2:
            pairs, law = np.zeros(1), np.ones(1)
        else:
            length = pair_length(int(d), n_symbols)
            law = np.asarray(folded_pair_law(int(d), n_symbols, length))
            pairs = np.arange(length, dtype=np.float64)
            nz = law > 0
            pairs, law = pairs[nz], law[nz]
        values = ml_cpc_given_counts(
            d, 2 * pairs[None, None, :], n, s[:, None, None], alphas[None, :, None]
        )
        total += pmf[d] * (values @ law)
    rest = pmf[~keep].sum()
    total += rest * (math.log(n) - np.log(alphas))[None, :]
    excess = total - copy_prob * math.log(n_symbols)
    index = np.argmax(excess, axis=0)
    return excess[index, np.arange(alphas.size)], s[index]


def poisson_limit_excess(mu: float, ratios: np.ndarray | list[float]) -> np.ndarray:
    """``lim_{n -> inf} E[ml_cpc] - log K`` at fixed ``mu = n^2 / K`` (``q = 1``, ``s = inf``).

    Parameters
    ----------
    mu : float
        ``n^2 / K``.
    ratios : array-like of float
        Values of ``r``.

    Returns
    -------
    excess : ndarray
        ``log mu - E log(r + 2 P)`` with ``P ~ Poisson(mu / 2)``: the number of colliding
        pairs tends to Poisson(``mu / 2``), ``alpha n -> r`` and ``beta -> 1``. The Poisson
        sum is truncated where the remaining mass is below 1e-300.

    Examples
    --------
    >>> float(poisson_limit_excess(10.0, [1.0])[0]) > 0
    True
    """
    half = mu / 2
    top = int(half + 40 * math.sqrt(half + 1) + 100)
    pairs = np.arange(top + 1, dtype=np.float64)
    weights = np.exp(pairs * math.log(half) - half - gammaln(pairs + 1))
    r = np.asarray(ratios, dtype=np.float64).reshape(-1, 1)
    return math.log(mu) - np.log(r + 2 * pairs[None, :]) @ weights


def poisson_limit_ratio(mus: np.ndarray | list[float] | None = None) -> tuple[float, float]:
    """Smallest ``r`` with no excess in the Poisson limit, over a grid of ``mu``.

    Parameters
    ----------
    mus : array-like of float or None
        Default: 2,000 geometric values in ``[0.5, 1e5]``.

    Returns
    -------
    ratio : float
        Largest critical ratio over the grid (bisection to 1e-9).
    mu : float
        Where it occurs.

    Examples
    --------
    >>> ratio, mu = poisson_limit_ratio(np.linspace(8, 14, 61))
    >>> round(ratio, 4), round(mu, 1)
    (1.0185, 10.5)
    """
    if mus is None:
        mus = np.geomspace(0.5, 1e5, 2000)
    best = (0.0, math.nan)
    for mu in np.asarray(mus, dtype=np.float64).ravel():
        low, high = 0.0, 2.0
        if poisson_limit_excess(mu, [1e-9])[0] <= 0:
            continue
        while high - low > 1e-9:
            mid = 0.5 * (low + high)
            if poisson_limit_excess(mu, [mid])[0] > 0:
                low = mid
            else:
                high = mid
        if high > best[0]:
            best = (high, float(mu))
    return best
