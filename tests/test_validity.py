"""Exact counterexamples and validity checks for alpha-CPC and alpha-ML-CPC.

The expectations on the discrete collision family (``sk_mlcpc.utils._collision``) are
exact up to float64 rounding (about 1e-13 here), so the tolerances below only absorb
rounding, never sampling noise. See ``docs/alpha_validity.rst``.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from sk_mlcpc.bounds import alpha_cpc, bound_validity, ml_cpc, valid_alpha_range
from sk_mlcpc.datasets import gaussian_log_density_ratio, make_correlated_gaussians, mi_to_rho
from sk_mlcpc.utils._collision import (
    collision_law,
    excess_table,
    expected_alpha_cpc,
    expected_ml_cpc,
    ml_cpc_given_counts,
    true_mi,
    worst_excess,
)

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
    # At the working limit the q = 1, s = inf estimate is log(c / (1 + C)).
    alpha = valid_alpha_range(n).low
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
