"""Samplers with known mutual information."""

import math

import numpy as np
import pytest
from scipy import stats

from sk_mlcpc.datasets import (
    gaussian_log_density_ratio,
    make_correlated_gaussians,
    mi_staircase,
    mi_to_rho,
    rho_to_mi,
)


def _coordinate_correlations(X, Y):
    return np.array([np.corrcoef(X[:, k], Y[:, k])[0, 1] for k in range(X.shape[1])])


# ---------------------------------------------------------------------------------------
# make_correlated_gaussians
# ---------------------------------------------------------------------------------------


def test_shapes_and_true_mi():
    X, Y, true_mi = make_correlated_gaussians(50, 3, mi=1.5, random_state=0)
    assert X.shape == Y.shape == (50, 3)
    assert X.dtype == Y.dtype == np.float64
    assert isinstance(true_mi, float) and true_mi == 1.5


def test_reproducible_and_seed_dependent():
    first = make_correlated_gaussians(100, 2, mi=1.0, random_state=7)
    second = make_correlated_gaussians(100, 2, mi=1.0, random_state=7)
    other = make_correlated_gaussians(100, 2, mi=1.0, random_state=8)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    assert not np.allclose(first[0], other[0])
    rng = np.random.RandomState(7)
    np.testing.assert_array_equal(make_correlated_gaussians(100, 2, random_state=rng)[0], first[0])


@pytest.mark.parametrize(("mi", "n_features"), [(0.5, 1), (2.0, 4), (3.0, 2)])
def test_empirical_correlation_matches_mi_to_rho(mi, n_features):
    X, Y, _ = make_correlated_gaussians(20_000, n_features, mi=mi, random_state=0)
    rho = mi_to_rho(mi, n_features)
    np.testing.assert_allclose(_coordinate_correlations(X, Y), rho, atol=0.02)
    # Standard normal marginals on both sides, independent coordinates.
    np.testing.assert_allclose(X.mean(axis=0), 0, atol=0.05)
    np.testing.assert_allclose(Y.std(axis=0), 1, atol=0.05)
    if n_features > 1:
        assert abs(np.corrcoef(X[:, 0], Y[:, 1])[0, 1]) < 0.03


def test_zero_mi_gives_independent_pairs():
    X, Y, true_mi = make_correlated_gaussians(20_000, 2, mi=0.0, random_state=0)
    assert true_mi == 0.0
    np.testing.assert_allclose(_coordinate_correlations(X, Y), 0, atol=0.03)


def test_cubic_is_the_cube_of_the_gaussian_draw():
    X, Y, mi = make_correlated_gaussians(200, 3, mi=1.0, random_state=4)
    X_cubic, Y_cubic, mi_cubic = make_correlated_gaussians(
        200, 3, mi=1.0, transform="cubic", random_state=4
    )
    assert mi_cubic == mi
    np.testing.assert_array_equal(X_cubic, X)
    np.testing.assert_allclose(Y_cubic, Y**3, rtol=1e-12)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_samples": 0},
        {"n_features": 0},
        {"mi": -1.0},
        {"transform": "square"},
    ],
)
def test_make_correlated_gaussians_invalid(kwargs):
    with pytest.raises(ValueError):
        make_correlated_gaussians(**{"n_samples": 10, "n_features": 2, **kwargs})


# ---------------------------------------------------------------------------------------
# mi_to_rho / rho_to_mi
# ---------------------------------------------------------------------------------------


def test_known_values():
    assert rho_to_mi(0.5, n_features=1) == pytest.approx(-0.5 * math.log(0.75))
    assert rho_to_mi(0.5, n_features=4) == pytest.approx(-2.0 * math.log(0.75))
    assert rho_to_mi(-0.5, n_features=1) == pytest.approx(rho_to_mi(0.5, n_features=1))
    assert mi_to_rho(0.0, n_features=3) == 0.0
    assert rho_to_mi(0.0, n_features=3) == 0.0
    assert mi_to_rho(2.0, n_features=20) == pytest.approx(0.4258, abs=1e-4)


@pytest.mark.parametrize("n_features", [1, 5, 20])
def test_round_trip(n_features):
    levels = np.array([0.0, 1e-8, 0.3, 2.0, 10.0])
    rho = mi_to_rho(levels, n_features)
    assert isinstance(rho, np.ndarray) and rho.shape == levels.shape
    assert np.all((rho >= 0) & (rho < 1))
    assert np.all(np.diff(rho) > 0)
    np.testing.assert_allclose(rho_to_mi(rho, n_features), levels, rtol=1e-6, atol=1e-15)
    for value in levels[1:4]:
        scalar = mi_to_rho(float(value), n_features)
        assert isinstance(scalar, float)
        assert rho_to_mi(scalar, n_features) == pytest.approx(value, rel=1e-9)


@pytest.mark.parametrize(
    ("func", "value"),
    [
        (mi_to_rho, -0.1),
        (mi_to_rho, math.nan),
        (mi_to_rho, math.inf),
        (mi_to_rho, [0.5, -0.5]),
        (rho_to_mi, 1.0),
        (rho_to_mi, -1.0),
        (rho_to_mi, 1.5),
        (rho_to_mi, math.nan),
        (rho_to_mi, [0.2, 1.0]),
    ],
)
def test_conversion_errors(func, value):
    with pytest.raises(ValueError):
        func(value, n_features=2)


@pytest.mark.parametrize("func", [mi_to_rho, rho_to_mi])
def test_conversion_needs_positive_n_features(func):
    with pytest.raises(ValueError, match="n_features"):
        func(0.5, n_features=0)


# ---------------------------------------------------------------------------------------
# gaussian_log_density_ratio
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("mi", "n_features"), [(0.5, 1), (1.0, 2), (4.0, 3)])
def test_log_density_ratio_matches_scipy(mi, n_features):
    X, Y, _ = make_correlated_gaussians(4, n_features, mi=mi, random_state=1)
    Y = Y[::-1] + 0.3  # some unpaired, off-distribution points too
    rho = mi_to_rho(mi, n_features)
    scores = gaussian_log_density_ratio(X, Y, rho)
    assert scores.shape == (4, 4)
    identity = np.eye(n_features)
    marginal = stats.multivariate_normal(np.zeros(n_features), identity)
    expected = np.array(
        [
            [
                stats.multivariate_normal(rho * x, (1 - rho**2) * identity).logpdf(y)
                - marginal.logpdf(y)
                for y in Y
            ]
            for x in X
        ]
    )
    np.testing.assert_allclose(scores, expected, rtol=1e-10, atol=1e-10)
    # Same thing from the joint density: log p(x, y) - log p(x) - log p(y).
    joint = stats.multivariate_normal(
        np.zeros(2 * n_features), np.block([[identity, rho * identity], [rho * identity, identity]])
    )
    pmi = np.array(
        [
            [
                joint.logpdf(np.concatenate([x, y])) - marginal.logpdf(x) - marginal.logpdf(y)
                for y in Y
            ]
            for x in X
        ]
    )
    np.testing.assert_allclose(scores, pmi, rtol=1e-9, atol=1e-9)


def test_log_density_ratio_shapes_and_cubic():
    X, Y, mi = make_correlated_gaussians(6, 2, mi=1.0, random_state=0)
    rho = mi_to_rho(mi, 2)
    scores = gaussian_log_density_ratio(X[:3], Y, rho)
    assert scores.shape == (3, 6)
    np.testing.assert_allclose(
        gaussian_log_density_ratio(X[:3], Y**3, rho, transform="cubic"), scores, rtol=1e-9
    )


def test_log_density_ratio_mean_on_pairs_is_the_mi():
    X, Y, mi = make_correlated_gaussians(20_000, 2, mi=1.0, random_state=0)
    rho = mi_to_rho(mi, 2)
    pointwise = np.array(
        [gaussian_log_density_ratio(X[i : i + 1], Y[i : i + 1], rho)[0, 0] for i in range(2000)]
    )
    assert abs(pointwise.mean() - mi) < 0.1


@pytest.mark.parametrize(
    ("X", "Y", "rho", "kwargs"),
    [
        (np.zeros((2, 2)), np.zeros((2, 3)), 0.5, {}),
        (np.zeros(2), np.zeros((2, 2)), 0.5, {}),
        (np.zeros((2, 2)), np.zeros((2, 2)), 1.0, {}),
        (np.zeros((2, 2)), np.zeros((2, 2)), -1.2, {}),
        (np.zeros((2, 2)), np.zeros((2, 2)), 0.5, {"transform": "square"}),
    ],
)
def test_log_density_ratio_errors(X, Y, rho, kwargs):
    with pytest.raises(ValueError):
        gaussian_log_density_ratio(X, Y, rho, **kwargs)


# ---------------------------------------------------------------------------------------
# mi_staircase
# ---------------------------------------------------------------------------------------


def test_staircase_levels_and_shapes():
    levels = list(
        mi_staircase((1.0, 2.5, 4.0), steps_per_level=3, batch_size=8, n_features=5, random_state=0)
    )
    assert [(index, mi) for index, mi, _, _ in levels] == [(0, 1.0), (1, 2.5), (2, 4.0)]
    for _, mi, X, Y in levels:
        assert isinstance(mi, float)
        assert X.shape == Y.shape == (24, 5)
        assert X.dtype == Y.dtype == np.float32
    assert not np.allclose(levels[0][2], levels[1][2])  # a fresh draw per level


def test_staircase_reproducible():
    first = list(mi_staircase((1.0, 2.0), steps_per_level=2, batch_size=4, random_state=3))
    second = list(mi_staircase((1.0, 2.0), steps_per_level=2, batch_size=4, random_state=3))
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a[2], b[2])
        np.testing.assert_array_equal(a[3], b[3])


@pytest.mark.parametrize("transform", [None, "cubic"])
def test_staircase_levels_have_the_stated_correlation(transform):
    n_features = 2
    for _, mi, X, Y in mi_staircase(
        (0.5, 2.0),
        steps_per_level=100,
        batch_size=100,
        n_features=n_features,
        transform=transform,
        random_state=0,
    ):
        if transform == "cubic":
            Y = np.cbrt(Y)
        correlations = _coordinate_correlations(X.astype(np.float64), Y.astype(np.float64))
        np.testing.assert_allclose(correlations, mi_to_rho(mi, n_features), atol=0.02)


@pytest.mark.parametrize("levels", [(), (1.0, -1.0), [[1.0, 2.0]]])
def test_staircase_invalid_levels(levels):
    with pytest.raises(ValueError, match="mi_levels"):
        list(mi_staircase(levels, steps_per_level=1, batch_size=2))


@pytest.mark.parametrize(
    "kwargs", [{"steps_per_level": 0}, {"batch_size": 1}, {"n_features": 0}, {"transform": "x"}]
)
def test_staircase_invalid_parameters(kwargs):
    with pytest.raises(ValueError):
        list(mi_staircase((1.0,), **kwargs))
