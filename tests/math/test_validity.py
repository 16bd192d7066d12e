"""Exact counterexamples and validity checks for alpha-CPC and alpha-ML-CPC.

The expectations on the discrete collision family (``sk_mlcpc._math.collision``) are
exact up to float64 rounding (about 1e-13 here), so the tolerances below only absorb
rounding, never sampling noise. See ``docs/alpha_validity.rst``.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from sk_mlcpc._math import bounds
from sk_mlcpc._math.alpha_search import (
    alpha_star,
    copies_excess,
    critical_ratio,
    noise_excess_bound,
    poisson_limit_excess,
    poisson_limit_ratio,
    search_ratio,
)
from sk_mlcpc._math.collision import (
    collision_law,
    excess_table,
    expected_alpha_cpc,
    expected_ml_cpc,
    folded_pair_law,
    ml_cpc_given_counts,
    true_mi,
    worst_excess,
)
from sk_mlcpc.bounds import (
    alpha_cpc,
    bound_validity,
    ml_cpc,
    resolve_alpha,
    valid_alpha_range,
)
from sk_mlcpc.datasets import gaussian_log_density_ratio, make_correlated_gaussians, mi_to_rho

INF = math.inf
STRENGTHS = [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, INF]
COPY_PROBS = [0.25, 0.5, 0.75, 0.9, 1.0]
# Far above the rounding error of the exact expectations (~1e-13), far below any excess
# that matters.
ROUNDING = 1e-10


# ---------------------------------------------------------------------------------------
# The exact law and expectations agree with brute-force enumeration of the shipped bounds
# ---------------------------------------------------------------------------------------


def _enumerate(n, n_symbols, copy_prob, strengths, alphas):
    """Probability-weighted mean of the shipped bounds over every outcome of the family."""
    law = {}
    ml = np.zeros((len(strengths), len(alphas)))
    per_row = np.zeros_like(ml)
    for x in itertools.product(range(n_symbols), repeat=n):
        for flags in itertools.product((0, 1), repeat=n):
            d = sum(flags)
            prob = n_symbols**-n * copy_prob**d * (1.0 - copy_prob) ** (n - d)
            if prob == 0.0:
                continue
            x_arr = np.array(x)
            # Noise pairs get distinct symbols that no x ever takes.
            y_arr = np.where(np.array(flags, dtype=bool), x_arr, -1 - np.arange(n))
            match = (x_arr[:, None] == y_arr[None, :]).astype(np.float64)
            collisions = int(match.sum() - np.trace(match))
            law[d, collisions] = law.get((d, collisions), 0.0) + prob
            for i, s in enumerate(strengths):
                scores = torch.tensor(s * match, dtype=torch.float64)
                for j, a in enumerate(alphas):
                    ml[i, j] += prob * ml_cpc(scores, alpha=a).item()
                    per_row[i, j] += prob * alpha_cpc(scores, alpha=a).item()
    return law, ml, per_row


@pytest.mark.parametrize(
    ("n", "n_symbols", "copy_prob"),
    [(3, 2, 1.0), (3, 3, 0.5), (4, 2, 0.3), (4, 3, 1.0), (4, 3, 0.5), (3, 1, 0.7)],
)
def test_exact_expectations_match_enumeration(n, n_symbols, copy_prob):
    strengths = [0.7, 5.0, 30.0]
    alphas = [0.1, 1.0, 2.5]
    law, ml, per_row = _enumerate(n, n_symbols, copy_prob, strengths, alphas)

    exact_law = collision_law(n, n_symbols, copy_prob)
    enumerated = np.zeros_like(exact_law)
    for (d, c), p in law.items():
        enumerated[d, c] = p
    np.testing.assert_allclose(exact_law, enumerated, rtol=0, atol=1e-13)

    s_col = np.array(strengths)[:, None]
    a_row = np.array(alphas)[None, :]
    np.testing.assert_allclose(
        expected_ml_cpc(n, n_symbols, copy_prob, s_col, a_row), ml, rtol=0, atol=1e-10
    )
    np.testing.assert_allclose(
        expected_alpha_cpc(n, n_symbols, copy_prob, s_col, a_row), per_row, rtol=0, atol=1e-10
    )


@pytest.mark.parametrize(("n", "n_symbols"), [(4, 3), (16, 7), (64, 500)])
def test_infinite_strength_is_the_limit(n, n_symbols):
    for expect in (expected_ml_cpc, expected_alpha_cpc):
        limit = expect(n, n_symbols, 1.0, INF, 0.3)
        assert limit == pytest.approx(expect(n, n_symbols, 1.0, 60.0, 0.3), abs=1e-12)
        # With noise pairs a perfect detector sends some rows to -inf.
        assert expect(n, n_symbols, 0.5, INF, 0.3) == -INF
    # At alpha* the q = 1, s = inf estimate is log(c / (1 + C)).
    alpha = valid_alpha_range(n).alpha_star
    c = n * (n - 1) + 1
    collisions = np.arange(n * (n - 1) + 1)
    np.testing.assert_allclose(
        ml_cpc_given_counts(n, collisions, n, INF, alpha),
        np.log(c / (1.0 + collisions)),
        rtol=0,
        atol=1e-13,
    )


@pytest.mark.parametrize(("n", "n_symbols", "copy_prob"), [(64, 1000, 1.0), (64, 37, 0.6)])
def test_law_moments(n, n_symbols, copy_prob):
    law = collision_law(n, n_symbols, copy_prob)
    assert law.min() >= 0.0
    assert law.sum() == pytest.approx(1.0, abs=1e-12)
    d = np.arange(n + 1)[:, None]
    c = np.arange(law.shape[1])[None, :]
    assert (law * d).sum() == pytest.approx(n * copy_prob, rel=1e-10)
    # Rounding leaves ~1e-13 of total mass scattered over C up to n (n - 1) ~ 4000.
    assert (law * c).sum() == pytest.approx(n * (n - 1) * copy_prob / n_symbols, rel=1e-9)


def test_true_mi():
    assert true_mi(1000, 1.0) == pytest.approx(math.log(1000))
    assert true_mi(7, 0.25) == pytest.approx(0.25 * math.log(7))


# ---------------------------------------------------------------------------------------
# DESIGN.md 3.1: counterexamples below the working limit (q = 1, s = inf)
# ---------------------------------------------------------------------------------------


def _best_over_k(n, alpha, ks, objective="ml_cpc"):
    return worst_excess(n, alpha, objective, ks, [INF], [1.0])


def test_ml_cpc_n64_alpha_001_exceeds_by_a_tenth():
    # Exact: the worst K is 1197 with +0.10655 nats.
    excess, where = _best_over_k(64, 0.01, [700, 1000, 1197, 1400, 2000])
    assert where["n_symbols"] == 1197
    assert excess == pytest.approx(0.10655, abs=5e-5)


def test_ml_cpc_n16_alpha_005_exceeds():
    # Exact: the worst K is 59 with +0.041107 nats.
    excess, where = _best_over_k(16, 0.05, range(40, 81))
    assert where["n_symbols"] == 59
    assert excess == pytest.approx(0.041107, abs=1e-6)


def test_ml_cpc_alpha_one_over_n_fails_at_n64():
    # Exact: +2.362e-4 nats at K = 454.
    excess, where = _best_over_k(64, 1 / 64, [400, 430, 454, 480, 520])
    assert where["n_symbols"] == 454
    assert excess == pytest.approx(2.362e-4, abs=2e-7)


@pytest.mark.parametrize(("n", "alpha", "k"), [(16, 0.0604, 37), (64, 0.01565, 444)])
def test_ml_cpc_thresholds_of_design(n, alpha, k):
    # DESIGN.md: counterexamples exist below 0.0604 (n = 16) and 0.01565 (n = 64).
    excess, _ = _best_over_k(n, alpha, [k])
    assert excess > 1e-7
    # ... but not a little higher, nor at alpha = 1/16 (which is below the working limit).
    excess_above, _ = _best_over_k(n, alpha * 1.002, range(max(2, k - 20), k + 21))
    assert excess_above < -ROUNDING
    if n == 16:
        assert _best_over_k(16, 1 / 16, range(2, 200))[0] < -1e-4


def test_alpha_cpc_small_alpha_exceeds():
    excess, where = worst_excess(16, 0.1, "alpha_cpc", range(2, 40), STRENGTHS, [0.5, 1.0])
    assert excess > 0.4
    assert where["copy_prob"] == 1.0


# ---------------------------------------------------------------------------------------
# No counterexample at or above the working limit; bound_validity agrees with the search
# ---------------------------------------------------------------------------------------


def _alphas_from_limit(n):
    low = valid_alpha_range(n).low
    return [low, math.sqrt(low), 0.5, 1.0, 2.0]


def _check_search(n, ks, qs, strengths=STRENGTHS):
    alphas = _alphas_from_limit(n)
    for objective in ("ml_cpc", "alpha_cpc"):
        keep = [a for a in alphas if bound_validity(objective, n, alpha=a) != "invalid"]
        for alpha, (excess, where) in zip(
            keep, excess_table(n, keep, objective, ks, strengths, qs)
        ):
            assert excess < -ROUNDING, (objective, alpha, excess, where)


def test_no_excess_from_working_limit_n16():
    ks = np.unique(np.geomspace(2, 4096, 30).round().astype(int))
    _check_search(16, ks, COPY_PROBS)


def test_no_excess_from_working_limit_n64_copies():
    ks = np.unique(np.geomspace(2, 4096, 30).round().astype(int))
    _check_search(64, ks, [1.0])


def test_no_excess_from_working_limit_n64_noise_quick():
    _check_search(64, [2, 24], [0.9])


@pytest.mark.slow
def test_no_excess_from_working_limit_n64_noise_full():
    ks = np.unique(np.geomspace(2, 4096, 16).round().astype(int))
    _check_search(64, ks, [0.25, 0.5, 0.75, 0.9])


def test_margin_at_working_limit_is_small_but_negative():
    # The closest call is K = 2 with a perfect detector: -9.52e-6 nats at n = 64.
    alpha = valid_alpha_range(64).low
    excess, where = _best_over_k(64, alpha, [2, 3, 4, 8, 64, 444, 1000])
    assert where["n_symbols"] == 2
    assert -1.0e-5 < excess < -9.0e-6


@pytest.mark.parametrize("n", [16, 64])
def test_bound_validity_matches_search(n):
    worst_ks = [37, 59, 444, 454, 1197]
    ks = np.union1d(np.geomspace(2, 4096, 30).round().astype(int), worst_ks)
    limit = valid_alpha_range(n).low
    found_below = {16: 0.0604, 64: 0.01565}[n]
    alphas = [0.005, 0.01, found_below, limit, 1.0]
    results = excess_table(n, alphas, "ml_cpc", ks, [INF], [1.0])
    for alpha, (excess, _) in zip(alphas, results):
        invalid = bound_validity("ml_cpc", n, alpha=alpha) == "invalid"
        # Every alpha with a counterexample is flagged, and none that is not flagged has one.
        assert invalid == (excess > 0), (n, alpha, excess)
    # bound_validity is conservative: between the largest failing alpha found and the
    # working limit it says "invalid" although no counterexample is known.
    gap_alpha = 0.5 * (found_below + limit)
    assert bound_validity("ml_cpc", n, alpha=gap_alpha) == "invalid"
    assert excess_table(n, [gap_alpha], "ml_cpc", ks, [INF], [1.0])[0][0] < 0
    # Same for alpha-CPC: flagged invalid below 1, counterexamples only below about 0.53.
    assert bound_validity("alpha_cpc", n, alpha=0.4) == "invalid"
    assert worst_excess(n, 0.4, "alpha_cpc", range(2, 60), [INF], [1.0])[0] > 0
    assert worst_excess(n, 0.8, "alpha_cpc", range(2, 60), STRENGTHS, COPY_PROBS)[0] < 0


# ---------------------------------------------------------------------------------------
# Gaussians at the working limit
# ---------------------------------------------------------------------------------------


def _gaussian_batches(n, n_batches, n_features, mi, seed):
    X, Y, true_mi_ = make_correlated_gaussians(n * n_batches, n_features, mi=mi, random_state=seed)
    rho = mi_to_rho(mi, n_features)
    X = X.reshape(n_batches, n, n_features)
    Y = Y.reshape(n_batches, n, n_features)
    scores = np.stack([gaussian_log_density_ratio(x, y, rho) for x, y in zip(X, Y)])
    return torch.from_numpy(scores), true_mi_, rho


@pytest.mark.parametrize(("n_features", "mi"), [(2, 0.1), (1, 0.5)])
def test_gaussian_optimal_critic_below_truth(n_features, mi):
    n, n_batches = 32, 6000
    alpha = valid_alpha_range(n).low
    scores, truth, rho = _gaussian_batches(n, n_batches, n_features, mi, seed=0)
    diag = scores.diagonal(dim1=1, dim2=2).mean(dim=1)
    estimates = torch.stack([ml_cpc(s, alpha=alpha) for s in scores])
    log_z = (diag - estimates).numpy()
    # E[mean S_ii] = I exactly for the optimal critic, so E[estimate] - I = -E[log Z]. With
    # E[Z] = 1 + alpha chi^2 / n (chi^2 + 1 = (1 - rho^2)^-d for these Gaussians),
    # -E[log Z] = E[Z - 1 - log Z] - alpha chi^2 / n: a low-variance, unbiased estimate.
    chi2 = (1.0 - rho**2) ** -n_features - 1.0
    per_batch = np.expm1(log_z) - log_z - alpha * chi2 / n
    excess = per_batch.mean()
    stderr = per_batch.std(ddof=1) / math.sqrt(n_batches)
    assert excess + 3 * stderr < 0, (excess, stderr)
    # Second-order perturbation theory predicts about -I / n^2.
    assert excess == pytest.approx(-truth / n**2, rel=0.5)


@pytest.mark.parametrize(("n_features", "mi"), [(2, 0.1), (5, 1.0)])
def test_gaussian_adversarial_critics_below_truth(n_features, mi):
    n, n_batches = 32, 3000
    alpha = valid_alpha_range(n).low
    scores, truth, _ = _gaussian_batches(n, n_batches, n_features, mi, seed=1)
    gen = torch.Generator().manual_seed(2)
    offsets = torch.randn(n_batches, n, 1, generator=gen, dtype=torch.float64)
    variants = {
        "scaled 0.5": (0.5, 0.0, 0.0),
        "scaled 2": (2.0, 0.0, 0.0),
        "scaled 1.5, shifted -2": (1.5, -2.0, 0.0),
        "row offsets 0.5": (1.0, 0.0, 0.5),
        "scaled 0.8, row offsets 0.2": (0.8, 1.0, 0.2),
    }
    for name, (scale, shift, spread) in variants.items():
        critic = scale * scores + shift + spread * offsets
        estimates = torch.stack([ml_cpc(s, alpha=alpha) for s in critic]).numpy()
        # Control variate: replace mean_i T_ii by its conditional expectation
        # scale * I + shift + mean_i offset_i (exactly, as E[S_ii] = I).
        diag = critic.diagonal(dim1=1, dim2=2).mean(dim=1).numpy()
        expected_diag = scale * truth + shift + spread * offsets.mean(dim=(1, 2)).numpy()
        per_batch = estimates - diag + expected_diag - truth
        excess = per_batch.mean()
        stderr = per_batch.std(ddof=1) / math.sqrt(n_batches)
        assert excess + 3 * stderr < 0, (name, excess, stderr)


# ---------------------------------------------------------------------------------------
# Issue 14.6: alpha* fails from n = 128 on; alpha="auto" is alpha* times a searched ratio
# ---------------------------------------------------------------------------------------


def test_alpha_star_fails_at_n128_exactly():
    # The full exact law (no folding): the expected estimate at alpha* is above log K,
    # by most near K = 1700.
    n = 128
    star = n / (n * (n - 1) + 1)
    excess = {k: expected_ml_cpc(n, k, 1.0, INF, star) - math.log(k) for k in (1679, 1700, 1750)}
    assert excess[1700] == pytest.approx(2.3068e-4, abs=1e-8)
    assert excess[1700] > max(excess[1679], excess[1750]) > 2.2e-4
    # ... and not at the auto alpha (1.007 alpha*), nor at 1.02 alpha*.
    auto = resolve_alpha("auto", "ml_cpc", n)
    assert auto == pytest.approx(1.007 * star, rel=1e-14)
    assert expected_ml_cpc(n, 1700, 1.0, INF, auto) - math.log(1700) < -6e-4
    assert expected_ml_cpc(n, 1700, 1.0, INF, 1.02 * star) - math.log(1700) < -2e-3
    assert bound_validity("ml_cpc", n, alpha=star) == "invalid"
    assert bound_validity("ml_cpc", n, alpha=auto) == "claimed"


@pytest.mark.parametrize(("n", "k", "length"), [(16, 100, 32), (64, 500, 128), (128, 50, 4096)])
def test_folded_pair_law_matches_the_full_law(n, k, length):
    full = collision_law(n, k, 1.0)[n, ::2]  # C = 2 P is even
    folded = folded_pair_law(n, k, length)
    expected = [full[p::length].sum() for p in range(length)]
    np.testing.assert_allclose(folded, expected, rtol=0, atol=2e-13)


@pytest.mark.parametrize(("n", "k"), [(1024, 10**6), (8192, 6_710_886), (8192, 134_201_344)])
def test_folded_pair_law_at_large_n_matches_closed_forms(n, k):
    # P(no pair) = K_(n) / K^n and P(exactly one pair) = C(n, 2) K_(n-1) / K^n.
    log_falling = np.cumsum(np.log1p(-np.arange(n) / k))
    p0 = math.exp(log_falling[n - 1])
    p1 = n * (n - 1) / 2 / k * math.exp(log_falling[n - 2])
    law = folded_pair_law(n, k, 256)
    assert law[0] == pytest.approx(p0, rel=1e-11)
    assert law[1] == pytest.approx(p1, rel=1e-11)
    assert law.sum() == pytest.approx(1.0, abs=1e-12)


def test_folding_only_raises_the_expected_estimate():
    # Mass above the folding length moves down to fewer collisions, where the estimate
    # is larger: a short folding length can only make the search more pessimistic.
    n, k = 128, 300
    star = alpha_star(n)
    exact = expected_ml_cpc(n, k, 1.0, INF, star) - math.log(k)
    for length in (8, 16, 32):
        law = folded_pair_law(n, k, length)
        pairs = np.arange(length)
        folded = law @ (2 * math.log(n) - np.log(star * n + 2 * (n - star) / (n - 1) * pairs))
        assert folded - math.log(k) >= exact - ROUNDING
    assert copies_excess(n, k, [1.0])[0] == pytest.approx(exact, abs=1e-12)


def test_copies_excess_matches_the_full_law_at_n128():
    n = 128
    for k in (2, 300, 1679, 6000):
        full = expected_ml_cpc(n, k, 1.0, INF, np.array([1.0, 1.007]) * alpha_star(n))
        np.testing.assert_allclose(
            # The full law squares K times over (relative rounding ~K eps: 3e-11 at K = 6000).
            copies_excess(n, k, [1.0, 1.007]),
            full - math.log(k),
            rtol=0,
            atol=1e-9,
        )


def test_the_auto_ratio_table_is_monotone_and_at_least_one():
    sizes = [size for size, _ in bounds._AUTO_RATIOS]
    ratios = [ratio for _, ratio in bounds._AUTO_RATIOS]
    assert sizes == [16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192]
    assert all(r >= 1.0 for r in ratios)
    assert all(a <= b for a, b in itertools.pairwise(ratios))
    assert bounds._AUTO_RATIO_BEYOND >= ratios[-1]
    # Beyond the table: the n -> inf limit of the search (1.01845), with the 0.5% margin.
    limit, mu = poisson_limit_ratio(np.linspace(9, 12, 31))
    assert limit == pytest.approx(1.01845, abs=1e-5)
    assert 10 < mu < 11
    assert bounds._AUTO_RATIO_BEYOND >= 1.005 * limit


@pytest.mark.parametrize("n", [2, 3, 5, 16, 17, 100, 128, 129, 1000, 5000, 8192, 8193, 10**5])
def test_auto_alpha_agrees_everywhere(n):
    limits = valid_alpha_range(n)
    auto = resolve_alpha("auto", "ml_cpc", n)
    assert auto == limits.low
    assert limits.alpha_star == pytest.approx(n / (n * (n - 1) + 1), rel=1e-15)
    ratio = limits.low / limits.alpha_star
    expected = next((r for size, r in bounds._AUTO_RATIOS if n <= size), 1.024)
    assert ratio == pytest.approx(expected, rel=1e-14)
    assert limits.invalid_below < limits.alpha_star <= limits.low < limits.proven_low
    assert bound_validity("ml_cpc", n, alpha=auto) == "claimed"
    assert bound_validity("ml_cpc", n, alpha=auto * (1 - 1e-9)) == "invalid"
    assert bound_validity("ml_cpc", n, alpha=0.999) == "claimed"
    assert bound_validity("ml_cpc", n, alpha=1.0) == "proven"
    if ratio > 1:
        assert bound_validity("ml_cpc", n, alpha=limits.alpha_star) == "invalid"
    # alpha-CPC is unchanged: proven from 1, nothing below.
    assert resolve_alpha("auto", "alpha_cpc", n) == 1.0


def test_auto_alpha_outside_the_batch_layout():
    # One row: ML-CPC is alpha-CPC, limit 1. Anchored (m != n): the ratio beyond the table.
    assert valid_alpha_range(1, 9).low == 1.0
    limits = valid_alpha_range(32, 33)
    assert limits.low == pytest.approx(1.024 * limits.alpha_star, rel=1e-14)


def test_search_reproduces_the_table_at_n128():
    # The tabulated ratio is the searched limit times 1.005, rounded up to 0.001.
    ratio, k, _ = search_ratio(128, np.linspace(5, 20, 16))
    assert ratio == pytest.approx(1.001918, abs=2e-6)
    assert 1600 <= k <= 1760
    assert math.ceil(1000 * 1.005 * ratio) / 1000 == dict(bounds._AUTO_RATIOS)[128]
    assert critical_ratio(128, k) == ratio


@pytest.mark.parametrize(("n", "qs"), [(16, COPY_PROBS), (64, [1.0])])
def test_no_excess_at_auto_alpha_small_n_full_grid(n, qs):
    # Exact full law, every (K, s, q) of the grid, plus the neighbourhood of the worst K.
    ks = np.union1d(np.geomspace(2, 4096, 30).round().astype(int), [37, 59, 444, 454])
    auto = resolve_alpha("auto", "ml_cpc", n)
    excess, where = excess_table(n, [auto], "ml_cpc", ks, STRENGTHS, qs)[0]
    assert excess < -ROUNDING, where


@pytest.mark.slow
def test_no_excess_at_auto_alpha_n64_noise_full_grid():
    ks = np.union1d(np.geomspace(2, 4096, 30).round().astype(int), [444, 454])
    auto = resolve_alpha("auto", "ml_cpc", 64)
    excess, where = excess_table(64, [auto], "ml_cpc", ks, STRENGTHS, [0.25, 0.5, 0.9])[0]
    assert excess < -ROUNDING, where


def test_no_excess_at_auto_alpha_n128_copies():
    # q = 1: the estimate of every batch increases with s, so s = inf is the worst case.
    # The closest call is K = 2 (-1.7e-6 nats); near mu = n^2 / K = 10 the margin is 6e-4.
    n = 128
    auto = resolve_alpha("auto", "ml_cpc", n)
    ks = [2, 3, 20, 200, 542, 1000, 1500, 1626, 1679, 1700, 1800, 2500, 5419, 16000]
    excess = {k: expected_ml_cpc(n, k, 1.0, INF, auto) - math.log(k) for k in ks}
    assert max(excess.values()) < -ROUNDING, excess
    assert excess[2] == pytest.approx(-1.6587e-6, abs=1e-9)
    assert max(excess[k] for k in (1626, 1679, 1700, 1800)) < -5e-4


def test_no_excess_at_auto_alpha_n128_noise_bound():
    # q < 1 at n = 128: the full law does not fit, but dropping the noise-copy collisions
    # gives an upper bound on the estimate (maximised over 400 strengths).
    n = 128
    ratio = resolve_alpha("auto", "ml_cpc", n) / alpha_star(n)
    for k, q in [(1626, 0.5), (1626, 0.9), (5419, 0.9), (1626, 0.99)]:
        excess, _ = noise_excess_bound(n, k, q, [ratio])
        assert excess[0] < -0.01, (k, q)


@pytest.mark.parametrize("n", [256, 512, 1024])
def test_no_excess_at_auto_alpha_larger_n_quick(n):
    auto_ratio = resolve_alpha("auto", "ml_cpc", n) / alpha_star(n)
    for mu in [5, 8, 9, 10, 10.5, 11, 12, 15, 30]:
        k = round(n * (n - 1) / mu)
        assert copies_excess(n, k, [auto_ratio])[0] < -1e-4, (n, k)
        # ... while alpha* itself fails near mu = 10 at these sizes.
    k = round(n * (n - 1) / 10)
    assert copies_excess(n, k, [1.0])[0] > 5e-4


@pytest.mark.slow
@pytest.mark.parametrize("n", [256, 512, 2048, 8192])
def test_search_stays_below_the_table(n):
    ratio, _, _ = search_ratio(n, np.linspace(7, 14, 15))
    assert 1.005 * ratio <= resolve_alpha("auto", "ml_cpc", n) / alpha_star(n)
    assert ratio <= poisson_limit_ratio(np.linspace(9, 12, 31))[0]


def test_poisson_limit_is_the_large_n_limit():
    # At mu = n^2 / K = 10 the exact excess approaches the Poisson limit as n grows.
    limit = poisson_limit_excess(10.0, [1.0])[0]
    gaps = [limit - copies_excess(n, round(n * n / 10), [1.0])[0] for n in (256, 1024, 4096)]
    assert all(g > 0 for g in gaps)
    assert gaps[0] > gaps[1] > gaps[2]
    assert gaps[2] < 0.1 * limit
