"""Samplers with known mutual information."""

import math

import numpy as np
import pytest
from scipy import stats
from sklearn.feature_selection import mutual_info_regression

from sk_mlcpc import datasets
from sk_mlcpc.datasets import (
    INVERTIBLE_TRANSFORMS,
    MI_SUITE,
    MITask,
    MITaskSpec,
    gaussian_log_density_ratio,
    invertible_transform,
    make_correlated_gaussians,
    make_mi_suite,
    make_mi_task,
    make_sparse_gaussians,
    make_student_t,
    mi_staircase,
    mi_to_rho,
    rho_to_mi,
    student_t_mi,
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


# ---------------------------------------------------------------------------------------
# make_sparse_gaussians
# ---------------------------------------------------------------------------------------


def test_sparse_shapes_and_informative_columns():
    X, Y, true_mi = make_sparse_gaussians(
        20_000, 8, n_informative=3, mi=1.2, n_features_y=4, random_state=0
    )
    assert X.shape == (20_000, 8) and Y.shape == (20_000, 4)
    assert isinstance(true_mi, float) and true_mi == 1.2
    correlations = np.corrcoef(X, Y, rowvar=False)[:8, 8:]
    expected = np.zeros((8, 4))
    expected[[0, 1, 2], [0, 1, 2]] = mi_to_rho(1.2, 3)
    np.testing.assert_allclose(correlations, expected, atol=0.03)
    np.testing.assert_allclose(Y.std(axis=0), 1, atol=0.03)


def test_sparse_with_every_pair_informative_is_the_dense_draw():
    dense = make_correlated_gaussians(100, 3, mi=2.0, random_state=5)
    sparse = make_sparse_gaussians(100, 3, n_informative=3, mi=2.0, random_state=5)
    for a, b in zip(dense, sparse):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_sparse_reproducible():
    first = make_sparse_gaussians(50, 6, n_informative=2, random_state=3)
    second = make_sparse_gaussians(50, 6, n_informative=2, random_state=3)
    other = make_sparse_gaussians(50, 6, n_informative=2, random_state=4)
    np.testing.assert_array_equal(first[1], second[1])
    assert not np.allclose(first[1], other[1])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_informative": 7}, "n_informative=7 exceeds"),
        ({"n_informative": 3, "n_features_y": 2}, "n_informative=3 exceeds"),
        ({"n_informative": 0}, "n_informative"),
        ({"mi": -0.5}, "mi"),
        ({"n_features_y": 0}, "n_features_y"),
    ],
)
def test_sparse_invalid(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_sparse_gaussians(**{"n_samples": 10, "n_features": 6, **kwargs})


# ---------------------------------------------------------------------------------------
# student_t_mi / make_student_t
# ---------------------------------------------------------------------------------------


def _t_pair_laws(n_features, rho, df):
    identity = np.eye(n_features)
    scale = np.block([[identity, rho * identity], [rho * identity, identity]])
    joint = stats.multivariate_t(np.zeros(2 * n_features), scale, df=df)
    marginal = stats.multivariate_t(np.zeros(n_features), identity, df=df)
    return joint, marginal


@pytest.mark.parametrize(
    ("df", "n_features", "rho"), [(3, 1, 0.5), (3, 2, 0.0), (5, 3, 0.6), (4, 5, -0.3)]
)
def test_student_t_mi_is_the_entropy_difference(df, n_features, rho):
    # I(X; Y) = H(X) + H(Y) - H(X, Y), with scipy's closed-form multivariate t entropies.
    joint, marginal = _t_pair_laws(n_features, rho, df)
    expected = 2 * marginal.entropy() - joint.entropy()
    assert student_t_mi(rho, n_features, df=df) == pytest.approx(expected, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize(
    ("df", "n_features", "kwargs"),
    [(3, 1, {"rho": 0.5}), (3, 2, {"rho": 0.0}), (5, 3, {"mi": 2.0}), (4, 5, {"mi": 1.0})],
)
def test_student_t_mi_matches_monte_carlo_on_the_sampler(df, n_features, kwargs):
    # The mean of log p(x, y) - log p(x) - log p(y) over the sampler's own draws, with the
    # exact densities of scipy.stats.multivariate_t: checks the formula and the sampler.
    n = 100_000
    X, Y, true_mi = make_student_t(n, n_features, df=df, random_state=0, **kwargs)
    rho = kwargs.get("rho")
    if rho is None:
        rho = mi_to_rho(true_mi - student_t_mi(0.0, n_features, df=df), n_features)
    joint, marginal = _t_pair_laws(n_features, rho, df)
    pmi = joint.logpdf(np.hstack([X, Y])) - marginal.logpdf(X) - marginal.logpdf(Y)
    standard_error = pmi.std() / math.sqrt(n)
    assert abs(pmi.mean() - true_mi) < 4 * standard_error + 1e-3
    # And the Gaussian MI alone is off by more than that: the correction term matters.
    assert abs(pmi.mean() - rho_to_mi(rho, n_features)) > 6 * standard_error


def test_student_t_mi_limits():
    rho = np.array([0.0, 0.3, 0.9])
    values = student_t_mi(rho, 4, df=3)
    assert isinstance(values, np.ndarray) and values.shape == (3,)
    np.testing.assert_allclose(values - rho_to_mi(rho, 4), values[0])
    # The shared-scale term is positive, shrinks as df grows and grows with the dimension.
    excess = [student_t_mi(0.0, 4, df=df) for df in (1, 3, 5, 30, 1e4)]
    assert all(e > 0 for e in excess) and np.all(np.diff(excess) < 0)
    assert excess[-1] < 1e-4
    assert student_t_mi(0.0, 1, df=3) < student_t_mi(0.0, 20, df=3)
    assert student_t_mi(0.0, 1, df=3) == pytest.approx(0.042411, abs=1e-6)


def test_make_student_t_shapes_and_seeding():
    X, Y, true_mi = make_student_t(300, 4, mi=1.5, df=3, random_state=1)
    assert X.shape == Y.shape == (300, 4) and X.dtype == np.float64
    assert true_mi == 1.5
    again = make_student_t(300, 4, mi=1.5, df=3, random_state=1)
    other = make_student_t(300, 4, mi=1.5, df=3, random_state=2)
    np.testing.assert_array_equal(X, again[0])
    np.testing.assert_array_equal(Y, again[1])
    assert not np.allclose(X, other[0])
    # Asking by rho gives the same draw and reports the closed form.
    rho = mi_to_rho(1.5 - student_t_mi(0.0, 4, df=3), 4)
    X_rho, Y_rho, mi_rho = make_student_t(300, 4, rho=rho, df=3, random_state=1)
    np.testing.assert_allclose(X_rho, X)
    np.testing.assert_allclose(Y_rho, Y)
    assert mi_rho == pytest.approx(1.5, rel=1e-12)


def test_make_student_t_has_heavy_tails():
    X, _, _ = make_student_t(50_000, 1, rho=0.0, df=3, random_state=0)
    # P(|T_3| > 5) = 0.0154; a standard normal would give 6e-7.
    assert np.mean(np.abs(X) > 5) == pytest.approx(2 * stats.t(3).sf(5), rel=0.15)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, "exactly one of mi and rho"),
        ({"mi": 1.0, "rho": 0.5}, "exactly one of mi and rho"),
        ({"mi": 0.01, "df": 3}, "below the smallest MI"),
        ({"mi": 1.0, "df": 0}, "df"),
        ({"rho": 1.0}, "rho"),
        ({"mi": -1.0}, "mi"),
    ],
)
def test_make_student_t_invalid(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_student_t(10, 2, **kwargs)


# ---------------------------------------------------------------------------------------
# invertible_transform
# ---------------------------------------------------------------------------------------


def _invert_wiggle(values):
    # Bisection on the strictly increasing z + 0.3 sin(3 z): |z - value| <= 0.3.
    low, high = values - 0.31, values + 0.31
    for _ in range(60):
        mid = 0.5 * (low + high)
        below = mid + 0.3 * np.sin(3 * mid) < values
        low, high = np.where(below, mid, low), np.where(below, high, mid)
    return 0.5 * (low + high)


def _invert_couple(values):
    Z = values.copy()
    for k in range(1, values.shape[1]):
        Z[:, k] = values[:, k] - 0.5 * Z[:, k - 1] ** 2
    return Z


_INVERSES = {
    "cubic": np.cbrt,
    "sinh": np.arcsinh,
    "exp": np.log,
    "wiggle": _invert_wiggle,
    "couple": _invert_couple,
}


@pytest.mark.parametrize("kind", INVERTIBLE_TRANSFORMS)
def test_transforms_are_invertible(kind):
    Z = np.random.RandomState(0).standard_normal((500, 4)) * 1.5
    out = invertible_transform(Z, kind, random_state=3)
    assert out.shape == Z.shape and out.dtype == np.float64
    assert not np.allclose(out, Z)
    if kind == "rotate":
        Q = invertible_transform(np.eye(4), kind, random_state=3)
        np.testing.assert_allclose(Q.T @ Q, np.eye(4), atol=1e-12)
        recovered = out @ Q.T
    else:
        recovered = _INVERSES[kind](out)
    np.testing.assert_allclose(recovered, Z, atol=1e-9)


@pytest.mark.parametrize("kind", ["cubic", "sinh", "exp", "wiggle"])
def test_coordinatewise_transforms_are_strictly_increasing(kind):
    grid = np.linspace(-6, 6, 100_001)[:, None]
    out = invertible_transform(grid, kind)[:, 0]
    assert np.all(np.diff(out) > 0)
    # So ranks, and with them every rank statistic of the pairs, are unchanged.
    _, Y, _ = make_correlated_gaussians(300, 2, mi=1.0, random_state=0)
    np.testing.assert_array_equal(
        np.argsort(invertible_transform(Y, kind), axis=0), np.argsort(Y, axis=0)
    )


def test_wiggle_looks_non_monotone_but_is_not():
    grid = np.linspace(-3, 3, 10_001)[:, None]
    slope = np.diff(invertible_transform(grid, "wiggle")[:, 0]) / np.diff(grid[:, 0])
    assert slope.min() == pytest.approx(0.1, abs=1e-3)
    assert slope.max() == pytest.approx(1.9, abs=1e-3)


def test_rotate_is_seeded_and_couple_leaves_one_column_alone():
    Z = np.random.RandomState(0).standard_normal((20, 3))
    a = invertible_transform(Z, "rotate", random_state=1)
    np.testing.assert_array_equal(a, invertible_transform(Z, "rotate", random_state=1))
    assert not np.allclose(a, invertible_transform(Z, "rotate", random_state=2))
    np.testing.assert_array_equal(invertible_transform(Z[:, :1], "couple"), Z[:, :1])


@pytest.mark.parametrize(
    ("Z", "kind", "match"),
    [
        (np.zeros(5), "cubic", "2-D"),
        (np.array([[0.0, np.nan]]), "cubic", "finite"),
        (np.array([[1000.0]]), "exp", "overflows"),
        (np.zeros((2, 2)), "square", "kind"),
    ],
)
def test_transform_errors(Z, kind, match):
    with pytest.raises(ValueError, match=match):
        invertible_transform(Z, kind)


# ---------------------------------------------------------------------------------------
# The development suite
# ---------------------------------------------------------------------------------------


def test_suite_covers_what_it_claims():
    names = [spec.name for spec in MI_SUITE]
    assert len(names) == len(set(names)) and 15 <= len(names) <= 25
    true_mis = [spec.true_mi for spec in MI_SUITE]
    assert min(true_mis) == 0.3 and max(true_mis) == 10.0
    dims = [d for spec in MI_SUITE for d in spec.dims]
    assert min(dims) == 1 and max(dims) == 50
    for mi in (2, 4, 6, 8, 10):
        assert f"gauss-20d-mi{mi}" in names and f"cubic-20d-mi{mi}" in names
    assert {"gauss-25d-mi1.3", "gauss-50d-mi1.6"} <= set(names)
    tags = {tag for spec in MI_SUITE for tag in spec.tags}
    assert {"gaussian", "sparse", "student_t", "nonlinear", "reference", "1d", "weak"} <= tags
    assert {spec.df for spec in MI_SUITE if spec.family == "student_t"} <= {3.0, 4.0, 5.0}
    assert any(spec.x_transforms and spec.y_transforms for spec in MI_SUITE)
    assert any("1d" in spec.tags and spec.x_transforms for spec in MI_SUITE)
    # The tags say what the recipes are.
    for spec in MI_SUITE:
        assert ("1d" in spec.tags) == (spec.dims == (1, 1))
        assert ("nonlinear" in spec.tags) == bool(spec.x_transforms or spec.y_transforms)
        assert ("student_t" in spec.tags) == (spec.family == "student_t")
        assert ("sparse" in spec.tags) == (spec.family == "sparse")


@pytest.mark.parametrize("spec", MI_SUITE, ids=[spec.name for spec in MI_SUITE])
def test_every_task_builds(spec):
    task = make_mi_task(spec, 64, random_state=0)
    assert isinstance(task, MITask)
    assert task.name == spec.name and task.true_mi == spec.true_mi and task.tags == spec.tags
    assert task.X.shape == (64, spec.dims[0]) and task.Y.shape == (64, spec.dims[1])
    assert task.dims == spec.dims
    assert np.all(np.isfinite(task.X)) and np.all(np.isfinite(task.Y))


def _untransformed(spec):
    return MITaskSpec(
        spec.name,
        spec.family,
        spec.true_mi,
        spec.n_features,
        n_features_y=spec.n_features_y,
        n_informative=spec.n_informative,
        df=spec.df,
    )


def _undo(values, kinds, rotations):
    for kind in reversed(kinds):
        values = values @ rotations.pop().T if kind == "rotate" else _INVERSES[kind](values)
    return values


@pytest.mark.parametrize(
    "spec",
    [spec for spec in MI_SUITE if spec.x_transforms or spec.y_transforms],
    ids=lambda spec: spec.name,
)
def test_transformed_tasks_are_invertible_maps_of_the_base_draw(spec, monkeypatch):
    # I(f(X); g(Y)) = I(X; Y) for invertible f, g: undoing the maps gives back the draw of
    # the untransformed recipe (same name, so same generator), whose MI is the truth.
    rotations = []
    draw_rotation = datasets._random_orthogonal

    def recording(n, rng):
        rotations.append(draw_rotation(n, rng))
        return rotations[-1]

    monkeypatch.setattr(datasets, "_random_orthogonal", recording)
    task = make_mi_task(spec, 200, random_state=4)
    base = make_mi_task(_untransformed(spec), 200, random_state=4)
    n_x = spec.x_transforms.count("rotate")
    x_rotations, y_rotations = rotations[:n_x], rotations[n_x:]
    np.testing.assert_allclose(_undo(task.X, spec.x_transforms, x_rotations), base.X, atol=1e-8)
    np.testing.assert_allclose(_undo(task.Y, spec.y_transforms, y_rotations), base.Y, atol=1e-8)
    assert not x_rotations and not y_rotations  # every recorded rotation was undone


@pytest.mark.parametrize("name", ["gauss-1d-mi0.3", "t3-1d-mi0.5", "wiggle-sinh-1d-mi1"])
def test_one_dimensional_tasks_agree_with_ksg(name):
    # Kraskov's k-nearest-neighbour estimator is accurate in 1-d at this size.
    task = make_mi_task(name, 5000, random_state=0)
    estimate = mutual_info_regression(task.X, task.Y[:, 0], random_state=0)[0]
    assert abs(estimate - task.true_mi) < 0.08


@pytest.mark.parametrize("name", ["gauss-20d-mi10", "gauss-50d-mi1.6", "sparse-50d-k2-mi1"])
def test_gaussian_tasks_have_the_stated_correlation(name):
    task = make_mi_task(name, 20_000, random_state=0)
    spec = next(spec for spec in MI_SUITE if spec.name == name)
    k = spec.n_informative or spec.n_features
    correlations = _coordinate_correlations(task.X, task.Y)
    np.testing.assert_allclose(correlations[:k], mi_to_rho(task.true_mi, k), atol=0.02)
    np.testing.assert_allclose(correlations[k:], 0, atol=0.03)
    assert rho_to_mi(mi_to_rho(task.true_mi, k), k) == pytest.approx(task.true_mi)


def test_suite_seeding():
    names = ["gauss-1d-mi0.3", "t5-5d-mi2", "mixed-10d-mi2"]
    suite = make_mi_suite(100, tasks=names, random_state=7)
    assert [task.name for task in suite] == names
    # A task's data do not depend on which other tasks are built, nor on their order.
    alone = make_mi_task("t5-5d-mi2", 100, random_state=7)
    np.testing.assert_array_equal(suite[1].X, alone.X)
    np.testing.assert_array_equal(suite[1].Y, alone.Y)
    again = make_mi_suite(100, tasks=names[::-1], random_state=7)
    np.testing.assert_array_equal(again[0].Y, suite[2].Y)
    other = make_mi_suite(100, tasks=names, random_state=8)
    assert not np.allclose(other[0].X, suite[0].X)
    # A RandomState seeds the whole suite once, reproducibly.
    first = make_mi_suite(20, tasks=names[:2], random_state=np.random.RandomState(1))
    second = make_mi_suite(20, tasks=names[:2], random_state=np.random.RandomState(1))
    np.testing.assert_array_equal(first[1].X, second[1].X)


def test_full_suite_default_size_is_cheap():
    suite = make_mi_suite(1000)
    assert [task.name for task in suite] == [spec.name for spec in MI_SUITE]
    assert all(task.X.shape[0] == 1000 for task in suite)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: make_mi_task("no-such-task", 10), "Unknown task 'no-such-task'"),
        (lambda: make_mi_suite(10, tasks=["gauss-1d-mi0.3", "nope"]), "Unknown task 'nope'"),
        (lambda: make_mi_suite(10, tasks="gauss-1d-mi0.3"), "tasks"),
        (lambda: make_mi_task("gauss-1d-mi0.3", 0), "n_samples"),
        (lambda: MITaskSpec("a", "cauchy", 1.0, 2), "family"),
        (lambda: MITaskSpec("a", "gaussian", 1.0, 2, x_transforms=("square",)), "x_transforms"),
        (lambda: MITaskSpec("a", "gaussian", 1.0, 2, x_transforms="cubic"), "x_transforms"),
        (lambda: MITaskSpec("a", "sparse", 1.0, 2), "n_informative"),
        (lambda: MITaskSpec("a", "student_t", 1.0, 2), "df"),
        (lambda: MITaskSpec("a", "gaussian", 1.0, 2, n_features_y=3), "n_features_y"),
    ],
)
def test_suite_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_rules_classification_task_is_fixed_by_task_seed_and_rows_by_random_state():
    from sk_mlcpc.datasets import make_rules_classification

    X, y = make_rules_classification(2000, random_state=0)
    again_X, again_y = make_rules_classification(2000, random_state=0)
    np.testing.assert_array_equal(X, again_X)
    np.testing.assert_array_equal(y, again_y)
    assert X.shape == (2000, 16) and set(np.unique(y)) == {0, 1, 2, 3}
    # Other rows, the same rules: without noise, equal rows get equal labels either way.
    X_other, _ = make_rules_classification(50, random_state=1, noise=0.0)
    _, y_same_rules = make_rules_classification(50, random_state=1, noise=0.0)
    _, y_other_rules = make_rules_classification(50, random_state=1, noise=0.0, task_seed=7)
    assert np.array_equal(y_same_rules, make_rules_classification(50, random_state=1, noise=0.0)[1])
    assert not np.array_equal(y_same_rules, y_other_rules)
    assert X_other.shape == (50, 16)
    with pytest.raises(ValueError, match="n_classes"):
        make_rules_classification(10, n_classes=1)
