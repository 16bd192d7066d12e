"""Exact expectations of alpha-CPC and alpha-ML-CPC on a discrete "collision" family.

The family (batch layout, ``n`` pairs per batch): ``X`` is uniform on ``K`` symbols. Each
pair is independently a *copy* with probability ``q`` (then ``Y = X``) or *noise* with
probability ``1 - q`` (then ``Y`` is drawn from a separate alphabet that never meets the
values of ``X``). The mutual information is ``I(X; Y) = q log K``: ``H(Y | X) = h(q)``
(only the copy/noise flag is uncertain) and ``H(Y) = h(q) + q log K``.

The critic is ``S[i, j] = s 1[x_i = y_j]`` with strength ``s >= 0`` (``s = inf`` is the
limit of a perfect detector). The diagonal holds ``s`` for copies and 0 for noise pairs;
an off-diagonal entry is ``s`` iff pair ``j`` is a copy and ``x_i = x_j``. With ``d`` the
number of copies and ``C = #{(i, j), i != j : j copy, x_i = x_j}`` the ML-CPC estimate is a
function of ``(d, C)`` only. Their joint law is computed exactly (up to floating-point
rounding, see :func:`collision_law`), so the *expected* estimate can be compared with the
true MI without sampling noise.

This module is numerical support for the tests and documentation of
:func:`sk_mlcpc.bounds.valid_alpha_range`; it is private.
"""

from __future__ import annotations

import math
from functools import lru_cache
from itertools import product
from typing import Literal

import numpy as np
from scipy import fft as sp_fft
from scipy.special import gammaln

__all__ = [
    "collision_law",
    "excess_table",
    "expected_alpha_cpc",
    "expected_ml_cpc",
    "ml_cpc_given_counts",
    "true_mi",
    "worst_excess",
]

# The coefficient extraction along the total-degree axis aliases degree ``n + L`` onto
# degree ``n``; ``L`` is chosen so that the aliased mass is below exp(-_ALIAS_LOG_TOL)
# relative to the mass at degree ``n`` (far below float64 rounding).
_ALIAS_LOG_TOL = 60.0
# Complex entries per chunk in :func:`folded_pair_law` (64 MiB).
_CHUNK_ELEMENTS = 1 << 22


def _check_common(n: int, n_symbols: int, copy_prob: float) -> tuple[int, int, float]:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise ValueError(f"n must be an integer >= 2, got {n!r}.")
    if isinstance(n_symbols, bool) or not isinstance(n_symbols, (int, np.integer)) or n_symbols < 1:
        raise ValueError(f"n_symbols must be a positive integer, got {n_symbols!r}.")
    copy_prob = float(copy_prob)
    if not 0.0 <= copy_prob <= 1.0:
        raise ValueError(f"copy_prob must lie in [0, 1], got {copy_prob}.")
    return int(n), int(n_symbols), copy_prob


def _check_alpha_strength(
    n: int, alpha: float | np.ndarray, strength: float | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    alpha = np.asarray(alpha, dtype=np.float64)
    strength = np.asarray(strength, dtype=np.float64)
    if np.any(~(alpha > 0)) or np.any(alpha > n):
        raise ValueError(f"alpha must lie in (0, n] = (0, {n}], got {alpha}.")
    if np.any(~(strength >= 0)):
        raise ValueError(f"strength must be >= 0 (inf allowed), got {strength}.")
    return alpha, strength


def true_mi(n_symbols: int, copy_prob: float) -> float:
    """Mutual information of the collision family, ``q log K`` nats.

    Parameters
    ----------
    n_symbols : int
        Alphabet size ``K`` of ``X``.
    copy_prob : float
        Probability ``q`` that a pair is a copy (``Y = X``).

    Returns
    -------
    mi : float
        ``q log K``.

    Examples
    --------
    >>> round(true_mi(8, 0.5), 6)
    1.039721
    """
    return float(copy_prob) * math.log(n_symbols)


def _alias_length(n: int, lam: float) -> int:
    """Smallest FFT length ``L > n`` whose aliased Poisson mass is negligible."""
    length = n + 1
    log_pois_n = n * math.log(lam) - math.lgamma(n + 1)
    while True:
        top = n + length
        log_ratio = top * math.log(lam) - math.lgamma(top + 1) - log_pois_n
        if log_ratio < -_ALIAS_LOG_TOL:
            return sp_fft.next_fast_len(length)
        length += 1


def collision_law(n: int, n_symbols: int, copy_prob: float) -> np.ndarray:
    """Exact joint law of ``(d, C)``: copies and copy collisions in a batch of ``n`` pairs.

    Parameters
    ----------
    n : int
        Pairs per batch, at least 2.
    n_symbols : int
        Alphabet size ``K``.
    copy_prob : float
        Probability ``q`` that a pair is a copy.

    Returns
    -------
    law : ndarray of shape (n + 1, n * (n - 1) + 1)
        ``law[d, C] = P(d copies, C collisions)``, where
        ``C = #{(i, j), i != j : j copy, x_i = x_j} = sum_k c_k (c_k + u_k - 1)`` with
        ``c_k`` copies and ``u_k`` noise pairs on symbol ``k``. Read-only.

    Notes
    -----
    The counts ``(c_k, u_k)`` are multinomial, so with ``lam > 0``

    .. math:: P(d, C) = \\frac{n!}{\\lambda^n} [t^n w^d v^C] \\Big(\\sum_{c, u}
       \\frac{(\\lambda q / K)^c (\\lambda (1 - q) / K)^u}{c!\\, u!}
       t^{c + u} w^c v^{c (c + u - 1)}\\Big)^K .

    The per-symbol polynomial (truncated at total degree ``n``, which leaves the degree-``n``
    coefficient unchanged) is divided by ``e^{lam / K}`` so that it is at most 1 in modulus
    on the unit torus, evaluated on a grid of roots of unity by FFT, raised to the power
    ``K`` pointwise by repeated squaring, and transformed back. Along ``v`` the length
    exceeds ``n (n - 1)`` and along ``w`` it is ``n + 1``, so no coefficient of total degree
    ``n`` aliases. Along ``t`` degree ``n + L`` aliases onto ``n``; after normalisation the
    total mass at degree ``N`` is at most ``Poisson(N; lam)``, and ``L`` is chosen so that
    ``Poisson(n + L; lam) / Poisson(n; lam) < e^{-60}``. With ``lam = n`` the rounding error
    of the result is of order ``sqrt(2 pi n) log2(K)`` machine epsilons. Tiny negative
    values left by rounding are clipped to 0; the pmf is checked to sum to 1 within 1e-9.

    Examples
    --------
    >>> law = collision_law(4, 3, 1.0)
    >>> law.shape
    (5, 13)
    >>> round(float(law[4, 0]), 6)   # 4 copies on 3 symbols can never all differ
    0.0
    >>> round(float(law.sum()), 12)
    1.0
    """
    n, n_symbols, copy_prob = _check_common(n, n_symbols, copy_prob)
    return _collision_law_cached(n, n_symbols, copy_prob)


@lru_cache(maxsize=64)
def _collision_law_cached(n: int, n_symbols: int, copy_prob: float) -> np.ndarray:
    n_c = n * (n - 1) + 1
    law = np.zeros((n + 1, n_c))
    if copy_prob == 0.0:
        law[0, 0] = 1.0
        law.flags.writeable = False
        return law

    lam = float(n)
    length_v = sp_fft.next_fast_len(n_c, real=True)
    length_t = _alias_length(n, lam)
    only_copies = copy_prob == 1.0
    # Per-symbol terms (c copies, u noise pairs) with c + u <= n.
    if only_copies:
        cs = np.arange(n + 1)
        us = np.zeros_like(cs)
    else:
        cs, us = (a.ravel() for a in np.meshgrid(np.arange(n + 1), np.arange(n + 1)))
        keep = cs + us <= n
        cs, us = cs[keep], us[keep]
    with np.errstate(divide="ignore"):
        log_weight = (
            cs * math.log(lam * copy_prob / n_symbols)
            + (us * math.log(lam * (1.0 - copy_prob) / n_symbols) if not only_copies else 0.0)
            - gammaln(cs + 1)
            - gammaln(us + 1)
            - lam / n_symbols
        )
    weight = np.exp(log_weight)
    collisions = cs * (cs + us - 1)
    collisions[cs == 0] = 0

    # rfft along v: each (t, w) cell holds a single monomial v^C, so its transform is a
    # phase. Integer arithmetic keeps the phase exact before scaling by 2 pi / L_v.
    freqs = np.arange(length_v // 2 + 1, dtype=np.int64)
    phase = (collisions[:, None].astype(np.int64) * freqs[None, :]) % length_v
    terms = weight[:, None] * np.exp(-2j * np.pi * phase / length_v)
    length_w = 1 if only_copies else n + 1
    grid = np.zeros((n + 1, length_w, freqs.size), dtype=np.complex128)
    grid[cs + us, 0 if only_copies else cs, :] = terms
    spectrum = sp_fft.fft(grid, n=length_t, axis=0, workers=-1)
    del grid
    if length_w > 1:
        spectrum = sp_fft.fft(spectrum, axis=1, workers=-1, overwrite_x=True)

    # Pointwise K-th power by repeated squaring (a few eps of relative error per step).
    power = np.ones_like(spectrum)
    exponent = n_symbols
    while exponent:
        if exponent & 1:
            power *= spectrum
        exponent >>= 1
        if exponent:
            spectrum *= spectrum
    del spectrum
    # Coefficient of t^n: inverse DFT along t evaluated at a single index.
    back = np.exp(2j * np.pi * (np.arange(length_t) * n % length_t) / length_t) / length_t
    coef = np.tensordot(back, power, axes=(0, 0))
    del power
    if length_w > 1:
        coef = sp_fft.ifft(coef, axis=0)
    values = sp_fft.irfft(coef, n=length_v, axis=1)[:, :n_c]
    log_pois = n * math.log(lam) - lam - math.lgamma(n + 1)
    values = values * math.exp(-log_pois)
    if only_copies:
        law[n] = values[0]
    else:
        law[:] = values
    law = np.clip(law, 0.0, None)
    total = law.sum()
    if not abs(total - 1.0) < 1e-9:
        raise RuntimeError(f"collision law sums to {total!r}, not 1 (n={n}, K={n_symbols}).")
    law /= total
    law.flags.writeable = False
    return law


def ml_cpc_given_counts(
    copies: np.ndarray,
    collisions: np.ndarray,
    n: int,
    strength: float | np.ndarray,
    alpha: float | np.ndarray,
) -> np.ndarray:
    """alpha-ML-CPC of a collision-family batch as a function of ``(d, C)``.

    Parameters
    ----------
    copies, collisions : array-like of int
        Number of copies ``d`` and of collisions ``C`` (broadcastable).
    n : int
        Pairs per batch.
    strength, alpha : float or array-like
        Critic strength ``s`` (``inf`` allowed) and positive weight ``alpha``
        (broadcastable with the counts).

    Returns
    -------
    estimate : ndarray
        ``s d / n - log([alpha (d e^s + n - d) + beta (C e^s + n (n - 1) - C)] / n^2)``
        with ``beta = (n - alpha) / (n - 1)``, evaluated in log space. At ``s = inf`` it is
        ``2 log n - log(alpha n + beta C)`` for ``d = n``, 0 for ``d = 0`` and ``-inf``
        otherwise.

    Examples
    --------
    >>> float(ml_cpc_given_counts(4, 0, 4, np.inf, 1.0)) == math.log(4)
    True
    """
    d = np.asarray(copies, dtype=np.float64)
    c = np.asarray(collisions, dtype=np.float64)
    s = np.asarray(strength, dtype=np.float64)
    alpha = np.asarray(alpha, dtype=np.float64)
    beta = (n - alpha) / (n - 1)
    pairs = n * (n - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        hit = np.log(alpha * d + beta * c)
        miss = np.log(alpha * (n - d) + beta * (pairs - c))
        finite_s = np.where(np.isinf(s), 0.0, s)
        finite = finite_s * d / n - np.logaddexp(finite_s + hit, miss) + 2 * math.log(n)
        limit = np.where(
            d == n,
            2 * math.log(n) - np.log(alpha * n + beta * c),
            np.where(d == 0, 0.0, -np.inf),
        )
    return np.where(np.isinf(s), limit, finite)


def expected_ml_cpc(
    n: int,
    n_symbols: int,
    copy_prob: float,
    strength: float | np.ndarray,
    alpha: float | np.ndarray,
) -> float | np.ndarray:
    """Exact expectation of alpha-ML-CPC on an ``n x n`` batch of the collision family.

    Parameters
    ----------
    n : int
        Pairs per batch.
    n_symbols : int
        Alphabet size ``K``.
    copy_prob : float
        Copy probability ``q``.
    strength : float or array-like
        Critic strength ``s >= 0``; ``inf`` allowed.
    alpha : float or array-like
        Positive weight in ``(0, n]``; broadcast against ``strength``.

    Returns
    -------
    expectation : float or ndarray
        ``E[ml_cpc(S, alpha=alpha)]`` in nats, one value per broadcast ``(strength, alpha)``
        (a float when both are scalars). ``-inf`` when ``s = inf`` and ``0 < q < 1``.

    Examples
    --------
    >>> round(float(expected_ml_cpc(16, 60, 1.0, np.inf, 0.05)) - math.log(60), 4)
    0.0411
    """
    n, n_symbols, copy_prob = _check_common(n, n_symbols, copy_prob)
    alpha, strength = _check_alpha_strength(n, alpha, strength)
    law = collision_law(n, n_symbols, copy_prob)
    d_idx, c_idx = np.nonzero(law > 0)
    prob = law[d_idx, c_idx]
    shape = np.broadcast_shapes(alpha.shape, strength.shape)
    a = np.broadcast_to(alpha, shape).reshape(-1, 1)
    s = np.broadcast_to(strength, shape).reshape(-1, 1)
    values = ml_cpc_given_counts(d_idx[None, :], c_idx[None, :], n, s, a)
    with np.errstate(invalid="ignore"):
        out = np.where(np.isneginf(values).any(axis=1), -np.inf, values @ prob)
    out = out.reshape(shape)
    return float(out) if out.ndim == 0 else out


def _trinomial_pmf(n: int, n_symbols: int, copy_prob: float) -> tuple[np.ndarray, ...]:
    """Law of ``(c, u)``, the copies and noise pairs on one given symbol."""
    cs, us = (a.ravel() for a in np.meshgrid(np.arange(n + 1), np.arange(n + 1)))
    keep = cs + us <= n
    cs, us = cs[keep], us[keep]
    p_copy = copy_prob / n_symbols
    p_noise = (1.0 - copy_prob) / n_symbols
    p_rest = 1.0 - 1.0 / n_symbols
    with np.errstate(divide="ignore", invalid="ignore"):
        log_p = (
            gammaln(n + 1)
            - gammaln(cs + 1)
            - gammaln(us + 1)
            - gammaln(n - cs - us + 1)
            + np.where(cs > 0, cs * np.log(p_copy), 0.0)
            + np.where(us > 0, us * np.log(p_noise), 0.0)
            + np.where(n - cs - us > 0, (n - cs - us) * np.log(p_rest), 0.0)
        )
    prob = np.exp(log_p)
    keep = prob > 0
    return cs[keep], us[keep], prob[keep]


def expected_alpha_cpc(
    n: int,
    n_symbols: int,
    copy_prob: float,
    strength: float | np.ndarray,
    alpha: float | np.ndarray,
) -> float | np.ndarray:
    """Exact expectation of alpha-CPC (per-row normaliser) on the collision family.

    Parameters
    ----------
    n : int
        Pairs per batch.
    n_symbols : int
        Alphabet size ``K``.
    copy_prob : float
        Copy probability ``q``.
    strength : float or array-like
        Critic strength ``s >= 0``; ``inf`` allowed.
    alpha : float or array-like
        Positive weight in ``(0, n]``.

    Returns
    -------
    expectation : float or ndarray
        ``E[alpha_cpc(S, alpha=alpha)]`` in nats.

    Notes
    -----
    By linearity only the law of ``(c, u)`` on a single symbol is needed: a copy row on a
    symbol with ``c`` copies scores ``s - log((alpha e^s + beta ((c - 1) e^s + n - c)) / n)``,
    a noise row ``-log((alpha + beta (c e^s + n - 1 - c)) / n)``, and
    ``E[estimate] = (K / n) E[c g_copy(c) + u g_noise(c)]``.

    Examples
    --------
    >>> round(float(expected_alpha_cpc(8, 4, 1.0, np.inf, 1.0)), 6) < math.log(4)
    True
    """
    n, n_symbols, copy_prob = _check_common(n, n_symbols, copy_prob)
    alpha, strength = _check_alpha_strength(n, alpha, strength)
    cs, us, prob = _trinomial_pmf(n, n_symbols, copy_prob)
    shape = np.broadcast_shapes(alpha.shape, strength.shape)
    a = np.broadcast_to(alpha, shape).reshape(-1, 1)
    s = np.broadcast_to(strength, shape).reshape(-1, 1)
    b = (n - a) / (n - 1)
    c = cs[None, :].astype(np.float64)
    log_n = math.log(n)
    inf_s = np.isinf(s)
    s0 = np.where(inf_s, 0.0, s)
    with np.errstate(divide="ignore", invalid="ignore"):
        copy_finite = s0 + log_n - np.logaddexp(s0 + np.log(a + b * (c - 1)), np.log(b * (n - c)))
        copy_limit = log_n - np.log(a + b * (c - 1))
        noise_finite = log_n - np.logaddexp(s0 + np.log(b * c), np.log(a + b * (n - 1 - c)))
        noise_limit = np.where(c == 0, 0.0, -np.inf)
        g_copy = np.where(inf_s, copy_limit, copy_finite)
        g_noise = np.where(inf_s, noise_limit, noise_finite)
        # Terms with zero multiplicity contribute 0 even where the row value is infinite.
        row_sum = np.where(cs > 0, cs * g_copy, 0.0) + np.where(us > 0, us * g_noise, 0.0)
        out = np.where(np.isneginf(row_sum).any(axis=1), -np.inf, row_sum @ prob)
    out = (n_symbols / n * out).reshape(shape)
    return float(out) if out.ndim == 0 else out


#: The exact expectation of each alpha bound under the collision family.
_EXPECTATIONS = {"ml_cpc": expected_ml_cpc, "alpha_cpc": expected_alpha_cpc}


def _default_grids(
    n_symbols_grid: np.ndarray | list[int] | None,
    strength_grid: np.ndarray | list[float] | None,
    copy_prob_grid: np.ndarray | list[float] | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if n_symbols_grid is None:
        n_symbols_grid = np.unique(np.geomspace(2, 4096, 40).round().astype(int))
    if strength_grid is None:
        strength_grid = [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, math.inf]
    if copy_prob_grid is None:
        copy_prob_grid = [0.25, 0.5, 0.75, 0.9, 1.0]
    return (
        np.asarray(n_symbols_grid, dtype=np.int64).ravel(),
        np.asarray(strength_grid, dtype=np.float64).ravel(),
        np.asarray(copy_prob_grid, dtype=np.float64).ravel(),
    )


def excess_table(
    n: int,
    alphas: np.ndarray | list[float],
    objective: Literal["ml_cpc", "alpha_cpc"] = "ml_cpc",
    n_symbols_grid: np.ndarray | list[int] | None = None,
    strength_grid: np.ndarray | list[float] | None = None,
    copy_prob_grid: np.ndarray | list[float] | None = None,
) -> list[tuple[float, dict[str, float]]]:
    """:func:`worst_excess` for several alphas at once, computing each law only once.

    Parameters
    ----------
    n : int
        Pairs per batch.
    alphas : array-like of float
        Positive weights.
    objective, n_symbols_grid, strength_grid, copy_prob_grid
        As in :func:`worst_excess`.

    Returns
    -------
    results : list of (float, dict)
        One ``(excess, argmax)`` per alpha, in order.

    Examples
    --------
    >>> [round(e, 4) for e, _ in excess_table(16, [0.05, 1.0], n_symbols_grid=[2, 60],
    ...                                       strength_grid=[np.inf], copy_prob_grid=[1.0])]
    [0.0411, -0.0577]
    """
    expect = _EXPECTATIONS.get(objective) if isinstance(objective, str) else None
    if expect is None:
        raise ValueError(f"objective must be 'ml_cpc' or 'alpha_cpc', got {objective!r}.")
    symbols, strengths, copy_probs = _default_grids(n_symbols_grid, strength_grid, copy_prob_grid)
    alphas = np.asarray(alphas, dtype=np.float64).ravel()
    best: list[tuple[float, dict[str, float]]] = [(-math.inf, {}) for _ in alphas]
    for n_symbols, copy_prob in product(symbols, copy_probs):
        values = expect(n, int(n_symbols), copy_prob, strengths[:, None], alphas[None, :])
        truth = true_mi(int(n_symbols), copy_prob)
        for k in range(alphas.size):
            index = int(np.argmax(values[:, k]))
            if values[index, k] - truth > best[k][0]:
                best[k] = (
                    float(values[index, k] - truth),
                    {
                        "n_symbols": int(n_symbols),
                        "strength": float(strengths[index]),
                        "copy_prob": float(copy_prob),
                        "estimate": float(values[index, k]),
                        "true_mi": truth,
                    },
                )
    return best


def worst_excess(
    n: int,
    alpha: float,
    objective: Literal["ml_cpc", "alpha_cpc"] = "ml_cpc",
    n_symbols_grid: np.ndarray | list[int] | None = None,
    strength_grid: np.ndarray | list[float] | None = None,
    copy_prob_grid: np.ndarray | list[float] | None = None,
) -> tuple[float, dict[str, float]]:
    """Largest exact ``E[estimate] - I(X; Y)`` over a grid of collision distributions.

    Parameters
    ----------
    n : int
        Pairs per batch.
    alpha : float
        Positive weight.
    objective : {"ml_cpc", "alpha_cpc"}, default="ml_cpc"
        Which bound.
    n_symbols_grid : array-like of int or None
        Alphabet sizes ``K``; default about 40 geometrically spaced values in ``[2, 4096]``.
    strength_grid : array-like of float or None
        Critic strengths; default ``0.5, 1, 2, 4, 8, 16, inf``.
    copy_prob_grid : array-like of float or None
        Copy probabilities; default ``0.25, 0.5, 0.75, 0.9, 1``.

    Returns
    -------
    excess : float
        ``max E[estimate] - q log K`` over the grid (positive: the bound fails there).
    argmax : dict
        ``{"n_symbols": K, "strength": s, "copy_prob": q, "estimate": ..., "true_mi": ...}``.

    Examples
    --------
    >>> excess, where = worst_excess(16, 0.05, n_symbols_grid=[40, 58, 80],
    ...                              strength_grid=[np.inf], copy_prob_grid=[1.0])
    >>> excess > 0, where["n_symbols"]
    (True, 58)
    """
    return excess_table(n, [alpha], objective, n_symbols_grid, strength_grid, copy_prob_grid)[0]


# ---------------------------------------------------------------------------------------
# Copies only (q = 1), large batches: the law of the colliding pairs, folded
# ---------------------------------------------------------------------------------------


def folded_pair_law(n: int, n_symbols: int, length: int) -> np.ndarray:
    """Law of ``P mod length``, ``P`` the colliding pairs of ``n`` copies on ``K`` symbols.

    Parameters
    ----------
    n : int
        Pairs per batch, at least 2 (all copies, ``q = 1``).
    n_symbols : int
        Alphabet size ``K``.
    length : int
        Folding length ``L``, at least 2.

    Returns
    -------
    law : ndarray of shape (length,)
        ``law[p] = sum_k P(P = p + k L)`` where ``P = sum_k c_k (c_k - 1) / 2`` is the
        number of unordered pairs ``i < j`` with ``x_i = x_j`` (``c_k`` draws on symbol
        ``k``), so that ``C = 2 P``. Read-only.

    Notes
    -----
    The generating function of :func:`collision_law` with ``q = 1`` and ``v`` counting
    pairs, evaluated on ``L`` roots of unity along ``v`` instead of
    ``n (n - 1) / 2 + 1``: the product is then cyclic along ``v``, which folds the law
    of ``P`` modulo ``L`` and changes nothing else (the ``t`` axis is handled as in
    :func:`collision_law`; rounding is of the same order). Reading ``law[p]`` as
    ``P(P = p)`` moves the mass of ``P >= L`` *down* to ``P mod L``: for any
    non-decreasing ``f``, such as ``p -> log(alpha n + 2 beta p)``,
    ``sum_p law[p] f(p) <= E f(P)``. An expected alpha-ML-CPC computed from the folded
    law is therefore never below the exact one (the error is on the side of finding
    an excess), and equals it when ``P < L`` almost surely. Memory is
    ``O((n + sqrt(n)) L)``: batches of several thousand fit where :func:`collision_law`
    needs ``O(n^3)``.

    Examples
    --------
    >>> exact = collision_law(16, 100, 1.0)[16, ::2]   # C = 2 P is even
    >>> folded = folded_pair_law(16, 100, 32)
    >>> bool(np.allclose(folded, [exact[p::32].sum() for p in range(32)], atol=1e-13))
    True
    """
    n, n_symbols, _ = _check_common(n, n_symbols, 1.0)
    if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 2:
        raise ValueError(f"length must be an integer >= 2, got {length!r}.")
    return _folded_law_cached(n, n_symbols, int(length))


def _complex_log1p(z: np.ndarray) -> np.ndarray:
    """``log(1 + z)`` for complex ``z``, accurate in relative terms for small ``|z|``."""
    x, y = z.real, z.imag
    # |1 + z|^2 = 1 + (2 x + x^2 + y^2); the bracket is computed without adding 1 first.
    with np.errstate(divide="ignore"):
        real = 0.5 * np.log1p(2.0 * x + x * x + y * y)
    return real + 1j * np.arctan2(y, 1.0 + x)


@lru_cache(maxsize=256)
def _folded_law_cached(n: int, n_symbols: int, length: int) -> np.ndarray:
    lam = float(n)
    length_t = _alias_length(n, lam)
    # Per-symbol polynomial e^{-lam/K} (1 + z), z = sum_{c >= 1} (lam/K)^c / c! t^c v^{c(c-1)/2}.
    # Raising it to the power K as exp(-lam + K log1p(z)), with z transformed without the
    # constant 1, keeps the relative error near n eps; repeated squaring would let the
    # rounding of 1 + z grow by a factor K (1e-8 at K = 1e8).
    cs = np.arange(1, n + 1)
    log_weight = cs * math.log(lam / n_symbols) - gammaln(cs + 1)
    keep = log_weight > -745.0  # below this exp() is 0 in float64 anyway
    cs, log_weight = cs[keep], log_weight[keep]
    pairs = (cs * (cs - 1) // 2).astype(np.int64) % length
    weight = np.exp(log_weight)
    back = np.exp(2j * np.pi * (np.arange(length_t) * n % length_t) / length_t) / length_t
    n_freqs = length // 2 + 1
    coef = np.empty(n_freqs, dtype=np.complex128)
    # The v-frequencies are independent: process them in chunks of bounded memory.
    chunk = max(1, _CHUNK_ELEMENTS // length_t)
    for start in range(0, n_freqs, chunk):
        freqs = np.arange(start, min(start + chunk, n_freqs), dtype=np.int64)
        phase = pairs[:, None] * freqs[None, :] % length
        grid = np.zeros((length_t, freqs.size), dtype=np.complex128)
        grid[cs] = weight[:, None] * np.exp(-2j * np.pi * phase / length)
        z = sp_fft.fft(grid, axis=0, workers=-1, overwrite_x=True)
        del grid
        log_base = _complex_log1p(z)
        del z
        # Real and imaginary parts apart: a base of exactly 0 gives 0, not nan.
        with np.errstate(divide="ignore"):
            power = np.exp(n_symbols * log_base.real - lam) * np.exp(
                1j * ((n_symbols * log_base.imag) % (2 * np.pi))
            )
        del log_base
        coef[start : start + freqs.size] = back @ power
        del power
    values = sp_fft.irfft(coef, n=length)
    log_pois = n * math.log(lam) - lam - math.lgamma(n + 1)
    law = np.clip(values * math.exp(-log_pois), 0.0, None)
    total = law.sum()
    if not abs(total - 1.0) < 1e-9:
        raise RuntimeError(f"folded law sums to {total!r}, not 1 (n={n}, K={n_symbols}).")
    law /= total
    law.flags.writeable = False
    return law
