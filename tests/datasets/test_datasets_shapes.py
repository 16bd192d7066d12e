"""Samplers of the shape benchmark: general Gaussians, low rank, discrete, mixed, units."""

import math

import numpy as np
import pytest
from scipy import special, stats

from sk_mlcpc.datasets import (
    _orthonormal_columns,
    gaussian_mi,
    make_discrete_channel,
    make_linear_gaussian,
    make_quantized_gaussians,
    quantized_gaussian_mi,
    rescale_units,
    rho_to_mi,
    symmetric_channel_mi,
)


def _assert_monte_carlo(pointwise: np.ndarray, truth: float, sigmas: float = 4.0) -> None:
    """The mean of the pointwise log density ratio is within ``sigmas`` standard errors."""
    error = abs(pointwise.mean() - truth)
    standard_error = pointwise.std(ddof=1) / math.sqrt(pointwise.size)
    assert error < sigmas * standard_error + 1e-12, (pointwise.mean(), truth, standard_error)


def _random_spd(p: int, rng: np.random.RandomState) -> np.ndarray:
    A = rng.standard_normal((p, p))
    return A @ A.T + p * np.eye(p) * 0.1


# ---------------------------------------------------------------------------------------
# gaussian_mi
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("rho", [0.0, 0.3, -0.8, 0.999])
def test_gaussian_mi_of_independent_pairs_is_the_sum(rho):
    d = 3
    cov = np.block([[np.eye(d), rho * np.eye(d)], [rho * np.eye(d), np.eye(d)]])
    assert gaussian_mi(cov, d) == pytest.approx(rho_to_mi(rho, d), rel=1e-10, abs=1e-14)


def test_gaussian_mi_is_invariant_under_invertible_linear_maps_of_each_side():
    rng = np.random.RandomState(0)
    cov = _random_spd(7, rng)
    B = np.zeros((7, 7))
    B[:3, :3] = rng.standard_normal((3, 3)) + 3 * np.eye(3)
    B[3:, 3:] = np.diag(np.logspace(-12, 12, 4))  # units from 1e-12 to 1e12
    mapped = B @ cov @ B.T
    assert gaussian_mi(mapped, 3) == pytest.approx(gaussian_mi(cov, 3), rel=1e-8)
    # Symmetric in the two sides: swap the blocks.
    order = [3, 4, 5, 6, 0, 1, 2]
    assert gaussian_mi(cov[np.ix_(order, order)], 4) == pytest.approx(gaussian_mi(cov, 3))


def test_gaussian_mi_equals_entropy_difference_by_monte_carlo():
    rng = np.random.RandomState(1)
    cov = _random_spd(5, rng)
    sample = rng.multivariate_normal(np.zeros(5), cov, size=20_000)
    joint = stats.multivariate_normal(np.zeros(5), cov)
    px = stats.multivariate_normal(np.zeros(2), cov[:2, :2])
    py = stats.multivariate_normal(np.zeros(3), cov[2:, 2:])
    pointwise = joint.logpdf(sample) - px.logpdf(sample[:, :2]) - py.logpdf(sample[:, 2:])
    _assert_monte_carlo(pointwise, gaussian_mi(cov, 2))


def test_gaussian_mi_block_diagonal_is_zero():
    assert gaussian_mi(np.diag([1.0, 2.0, 3.0]), 1) == 0.0


@pytest.mark.parametrize(
    ("cov", "k", "match"),
    [
        (np.ones((2, 3)), 1, "square"),
        (np.array([[1.0, 0.5], [0.2, 1.0]]), 1, "symmetric"),
        (np.array([[1.0, 1.0], [1.0, 1.0]]), 1, "positive definite"),
        (np.eye(3), 3, "leaves no coordinate"),
        (np.array([[1.0, np.nan], [np.nan, 1.0]]), 1, "finite"),
    ],
)
def test_gaussian_mi_rejects_bad_input(cov, k, match):
    with pytest.raises(ValueError, match=match):
        gaussian_mi(cov, k)


# ---------------------------------------------------------------------------------------
# make_linear_gaussian
# ---------------------------------------------------------------------------------------


def _linear_cov(A: np.ndarray) -> np.ndarray:
    dy, dx = A.shape
    return np.block([[np.eye(dx), A.T], [A, A @ A.T + np.eye(dy)]])


def test_dense_issue_case_has_the_closed_form():
    X, Y, truth = make_linear_gaussian(50, 200, coef=0.5, random_state=0)
    assert X.shape == Y.shape == (50, 200)
    assert truth == pytest.approx(100 * math.log(1.25))  # 22.31 nats
    assert truth == pytest.approx(gaussian_mi(_linear_cov(0.5 * np.eye(200)), 200))


@pytest.mark.parametrize(("dx", "dy"), [(4, 4), (3, 6), (6, 2)])
def test_coordinatewise_map_matches_covariance_and_monte_carlo(dx, dy):
    X, Y, truth = make_linear_gaussian(20_000, dx, n_features_y=dy, mi=1.5, random_state=0)
    r = min(dx, dy)
    s = math.sqrt(math.expm1(2 * 1.5 / r))
    A = np.zeros((dy, dx))
    A[:r, :r] = s * np.eye(r)
    assert truth == 1.5
    assert gaussian_mi(_linear_cov(A), dx) == pytest.approx(truth, rel=1e-10)
    # The columns beyond the channel are pure noise: their residual is the data itself.
    np.testing.assert_allclose(np.cov((Y - X @ A.T).T), np.eye(dy), atol=0.05)
    pointwise = stats.multivariate_normal(np.zeros(dy), np.eye(dy)).logpdf(
        Y - X @ A.T
    ) - stats.multivariate_normal(np.zeros(dy), A @ A.T + np.eye(dy)).logpdf(Y)
    _assert_monte_carlo(pointwise, truth)


def test_low_rank_map_is_the_documented_draw_and_has_the_closed_form():
    n, dx, dy, r = 20_000, 6, 5, 2
    X, Y, truth = make_linear_gaussian(n, dx, n_features_y=dy, coef=1.3, rank=r, random_state=3)
    # Replay the generator: X, the noise, then U (dy x r) and V (dx x r).
    rng = np.random.RandomState(3)
    np.testing.assert_array_equal(X, rng.standard_normal((n, dx)))
    noise = rng.standard_normal((n, dy))
    U = _orthonormal_columns(dy, r, rng)
    V = _orthonormal_columns(dx, r, rng)
    A = 1.3 * U @ V.T
    np.testing.assert_allclose(Y, noise + X @ A.T, atol=1e-12)
    assert np.linalg.matrix_rank(A) == r
    np.testing.assert_allclose(np.linalg.svd(A, compute_uv=False)[:r], 1.3)
    assert truth == pytest.approx(0.5 * r * math.log1p(1.3**2), rel=1e-12)
    assert truth == pytest.approx(gaussian_mi(_linear_cov(A), dx), rel=1e-10)
    pointwise = stats.multivariate_normal(np.zeros(dy), np.eye(dy)).logpdf(
        Y - X @ A.T
    ) - stats.multivariate_normal(np.zeros(dy), A @ A.T + np.eye(dy)).logpdf(Y)
    _assert_monte_carlo(pointwise, truth)


def test_low_rank_dependence_spreads_over_every_column():
    X, Y, _ = make_linear_gaussian(20_000, 8, mi=1.0, rank=1, random_state=0)
    # Cov(Y, X) = A: one singular value s = sqrt(e^2 - 1), the others sampling noise.
    u, sv, vt = np.linalg.svd(Y.T @ X / X.shape[0])
    assert sv[0] == pytest.approx(math.sqrt(math.expm1(2.0)), abs=0.1)
    assert sv[1] < 0.15
    # The channel is a random direction, not one coordinate pair.
    assert np.abs(u[:, 0]).max() < 0.95 and np.abs(vt[0]).max() < 0.95


def test_zero_coefficient_gives_independent_sides():
    X, Y, truth = make_linear_gaussian(5000, 3, coef=0.0, random_state=0)
    assert truth == 0.0
    assert np.abs(np.corrcoef(X.T, Y.T)[:3, 3:]).max() < 0.06


def test_linear_gaussian_reproducible():
    first = make_linear_gaussian(100, 5, mi=2.0, rank=2, random_state=7)
    second = make_linear_gaussian(100, 5, mi=2.0, rank=2, random_state=7)
    other = make_linear_gaussian(100, 5, mi=2.0, rank=2, random_state=8)
    np.testing.assert_array_equal(first[1], second[1])
    assert not np.allclose(first[1], other[1])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, "exactly one of coef and mi"),
        ({"coef": 0.5, "mi": 1.0}, "exactly one of coef and mi"),
        ({"coef": 0.5, "rank": 4}, "rank=4 exceeds"),
        ({"mi": 1e6, "rank": 1}, "too large"),
        ({"coef": -1.0}, "coef"),
    ],
)
def test_linear_gaussian_rejects_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_linear_gaussian(10, 3, **kwargs)


# ---------------------------------------------------------------------------------------
# Discrete: symmetric channel
# ---------------------------------------------------------------------------------------


def _channel_joint(q: float, k: int) -> np.ndarray:
    return (q * np.eye(k) + (1 - q) / k) / k


@pytest.mark.parametrize("k", [2, 3, 5, 10])
@pytest.mark.parametrize("q", [0.0, 0.1, 0.5, 0.9, 1.0])
def test_symmetric_channel_mi_by_exact_enumeration(q, k):
    joint = _channel_joint(q, k)
    assert joint.sum() == pytest.approx(1.0)
    px, py = joint.sum(axis=1), joint.sum(axis=0)
    exact = np.sum(special.xlogy(joint, joint / np.outer(px, py)))
    assert symmetric_channel_mi(q, k) == pytest.approx(exact, abs=1e-12)


def test_symmetric_channel_mi_range_and_monotone():
    qs = np.linspace(0, 1, 21)
    values = [symmetric_channel_mi(q, 4) for q in qs]
    assert values[0] == 0.0
    assert values[-1] == pytest.approx(math.log(4))
    assert np.all(np.diff(values) > 0)


def test_discrete_channel_samples_follow_the_law():
    q, k, d = 0.7, 4, 3
    X, Y, truth = make_discrete_channel(30_000, d, n_levels=k, q=q, random_state=0)
    assert X.shape == Y.shape == (30_000, d) and X.dtype == np.float64
    assert set(np.unique(X)) == set(np.unique(Y)) == set(range(k))
    assert truth == pytest.approx(d * symmetric_channel_mi(q, k))
    assert np.mean(X == Y) == pytest.approx(q + (1 - q) / k, abs=0.01)
    joint = _channel_joint(q, k)
    xi, yi = X.astype(int), Y.astype(int)
    pointwise = np.log(joint[xi, yi] * k * k).sum(axis=1)  # uniform marginals
    _assert_monte_carlo(pointwise, truth)


def test_discrete_channel_reproducible():
    first = make_discrete_channel(200, 2, random_state=1)
    np.testing.assert_array_equal(first[1], make_discrete_channel(200, 2, random_state=1)[1])


@pytest.mark.parametrize(("kwargs", "match"), [({"n_levels": 1}, "n_levels"), ({"q": 1.5}, "q")])
def test_discrete_channel_rejects_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_discrete_channel(10, **kwargs)


# ---------------------------------------------------------------------------------------
# Quantised Gaussians (discrete and mixed)
# ---------------------------------------------------------------------------------------


def _cells_by_scipy(rho: float, k: int) -> np.ndarray:
    """Cell probabilities from scipy's bivariate normal CDF, an independent algorithm."""
    cuts = special.ndtri(np.arange(k + 1) / k)
    cuts[0], cuts[-1] = -40.0, 40.0
    law = stats.multivariate_normal([0, 0], [[1, rho], [rho, 1]], abseps=1e-12, releps=1e-12)
    F = np.array([[law.cdf([a, b]) for b in cuts] for a in cuts])
    return np.clip(np.diff(np.diff(F, axis=0), axis=1), 0, None)


@pytest.mark.parametrize("rho", [0.2, 0.9, 0.999, -0.6])
def test_binary_quantisation_matches_sheppard(rho):
    # Signs of a bivariate normal agree with probability 1/2 + arcsin(rho)/pi.
    agree = 0.5 + math.asin(rho) / math.pi
    exact = math.log(2) + agree * math.log(agree) + (1 - agree) * math.log(1 - agree)
    assert quantized_gaussian_mi(rho, n_levels_x=2, n_levels_y=2) == pytest.approx(exact, abs=1e-9)


@pytest.mark.parametrize(("rho", "k"), [(0.5, 3), (0.95, 3), (0.8, 7)])
def test_both_sides_quantised_matches_exact_cell_sum(rho, k):
    P = _cells_by_scipy(rho, k)
    exact = np.sum(special.xlogy(P, P * k * k))
    assert quantized_gaussian_mi(rho, n_levels_x=k, n_levels_y=k) == pytest.approx(exact, abs=1e-8)


def test_quantised_mi_obeys_data_processing_and_symmetry():
    rho = 0.85
    continuous = rho_to_mi(rho, 1)
    assert quantized_gaussian_mi(rho) == pytest.approx(continuous)
    both = [quantized_gaussian_mi(rho, n_levels_x=k, n_levels_y=k) for k in (2, 3, 5, 10)]
    one = [quantized_gaussian_mi(rho, n_levels_y=k) for k in (2, 3, 5, 10)]
    assert np.all(np.diff(both) > 0) and np.all(np.diff(one) > 0)  # finer cells, more MI
    assert np.all(np.array(both) < np.array(one)) and max(one) < continuous
    assert np.all(np.array(one) <= np.log([2, 3, 5, 10]))
    assert quantized_gaussian_mi(rho, n_levels_x=3) == pytest.approx(
        quantized_gaussian_mi(rho, n_levels_y=3), abs=1e-12
    )
    assert quantized_gaussian_mi(-rho, n_levels_x=4, n_levels_y=4) == pytest.approx(
        quantized_gaussian_mi(rho, n_levels_x=4, n_levels_y=4), abs=1e-10
    )
    assert quantized_gaussian_mi(0.0, n_levels_x=3, n_levels_y=3) == 0.0


def test_quantised_gaussians_monte_carlo_of_the_log_density_ratio():
    # Pair 0 discrete on both sides, pair 1 discrete in X only, pair 2 continuous.
    rho, k, n = 0.8, 3, 40_000
    X, Y, truth = make_quantized_gaussians(
        n, 3, rho=rho, n_levels=k, n_discrete_x=2, n_discrete_y=1, random_state=0
    )
    cells = _cells_by_scipy(rho, k)
    xi, yi = X[:, 0].astype(int), Y[:, 0].astype(int)
    both = np.log(cells[xi, yi] * k * k)
    cuts = special.ndtri(np.arange(k + 1) / k)
    level = X[:, 1].astype(int)
    sd = math.sqrt(1 - rho**2)
    given = special.ndtr((cuts[level + 1] - rho * Y[:, 1]) / sd) - special.ndtr(
        (cuts[level] - rho * Y[:, 1]) / sd
    )
    one = np.log(k * given)
    normal = stats.norm(0, sd)
    neither = normal.logpdf(Y[:, 2] - rho * X[:, 2]) - stats.norm.logpdf(Y[:, 2])
    _assert_monte_carlo(both + one + neither, truth)
    expected = (
        quantized_gaussian_mi(rho, n_levels_x=k, n_levels_y=k)
        + quantized_gaussian_mi(rho, n_levels_x=k)
        + rho_to_mi(rho, 1)
    )
    assert truth == pytest.approx(expected)


def test_quantised_levels_are_equiprobable_integers():
    X, Y, truth = make_quantized_gaussians(30_000, 2, rho=0.5, n_levels=5, random_state=0)
    for column in (X[:, 0], Y[:, 1]):
        values, counts = np.unique(column, return_counts=True)
        np.testing.assert_array_equal(values, np.arange(5.0))
        np.testing.assert_allclose(counts / column.size, 0.2, atol=0.01)
    assert truth == pytest.approx(2 * quantized_gaussian_mi(0.5, n_levels_x=5, n_levels_y=5))


def test_quantised_gaussians_reproducible_and_validated():
    first = make_quantized_gaussians(100, 3, n_discrete_x=1, random_state=4)
    np.testing.assert_array_equal(
        first[1], make_quantized_gaussians(100, 3, n_discrete_x=1, random_state=4)[1]
    )
    with pytest.raises(ValueError, match="at most n_features=3"):
        make_quantized_gaussians(10, 3, n_discrete_y=4)
    with pytest.raises(ValueError, match="n_levels"):
        make_quantized_gaussians(10, 3, n_levels=1)
    with pytest.raises(ValueError, match="rho"):
        quantized_gaussian_mi(1.0, n_levels_x=3)


# ---------------------------------------------------------------------------------------
# Units
# ---------------------------------------------------------------------------------------


def test_rescale_units_is_exact_and_per_column():
    Z = np.array([[1.0, -2.0, 3.0], [0.5, 0.0, -1.0]])
    factors = np.array([1e-12, 1.0, 1e12])
    np.testing.assert_array_equal(rescale_units(Z, factors), Z * factors)
    np.testing.assert_array_equal(rescale_units(Z, 2.0, offset=1.0), 2.0 * Z + 1.0)


@pytest.mark.parametrize("factor", [1e-12, 1e-7, 1e12])
def test_rescaling_leaves_the_gaussian_mi_unchanged(factor):
    # The Gaussian MI of the sample covariance is scale-free: log det cancels the units.
    X, Y, _ = make_linear_gaussian(2000, 3, mi=2.0, random_state=0)
    before = gaussian_mi(np.cov(np.hstack([X, Y]).T), 3)
    spread = np.logspace(-12, 12, 3)
    after = gaussian_mi(
        np.cov(np.hstack([rescale_units(X, factor), rescale_units(Y, spread)]).T), 3
    )
    assert after == pytest.approx(before, rel=1e-6)
    assert before == pytest.approx(2.0, abs=0.1)


@pytest.mark.parametrize(
    ("factor", "offset", "match"),
    [
        (0.0, 0.0, "non-zero"),
        ([1.0, 0.0], 0.0, "non-zero"),
        ([1.0, 2.0, 3.0], 0.0, "one per"),
        (np.inf, 0.0, "finite"),
        (1.0, [1.0], "one per"),
        (1e300, 0.0, "overflows"),
    ],
)
def test_rescale_units_rejects_bad_input(factor, offset, match):
    with pytest.raises(ValueError, match=match):
        rescale_units(np.array([[1e10, 1.0]]), factor, offset=offset)


def test_rescale_units_rejects_non_2d_or_non_finite():
    with pytest.raises(ValueError, match="2-D"):
        rescale_units(np.ones(3), 2.0)
    with pytest.raises(ValueError, match="finite"):
        rescale_units(np.array([[np.nan]]), 2.0)
