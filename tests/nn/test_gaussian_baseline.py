"""GaussianBaselineCritic: the closed-form Gaussian log density ratio plus a network."""

import math

import numpy as np
import pytest
import torch

from sk_mlcpc import MutualInformationEstimator
from sk_mlcpc._estimators.mi import _TAIL_DFS
from sk_mlcpc._nn.critics import CROSS_STRUCTURES, GaussianBaselineCritic
from sk_mlcpc.blockwise import blockwise_bound, separable_parts
from sk_mlcpc.bounds import ml_cpc
from sk_mlcpc.critics import make_critic
from sk_mlcpc.datasets import make_correlated_gaussians

WRAPPED = ["separable", "separable_additive", "bilinear", "concat"]


def _wrapped(name: str, p: int = 3, q: int = 2, **options) -> GaussianBaselineCritic:
    torch.manual_seed(0)
    critic = make_critic(name, p, q, embedding_dim=4, hidden_layer_sizes=(8,))
    return GaussianBaselineCritic(critic, p, q, **options)


def _log_ratio(x: torch.Tensor, y: torch.Tensor, covariance: np.ndarray) -> torch.Tensor:
    """Exact ``log p(y | x) - log p(y)`` of a zero-mean Gaussian, every pair ``(x_i, y_j)``."""
    p = x.shape[1]
    c = torch.as_tensor(covariance, dtype=torch.float64)
    c_xx, c_xy, c_yy = c[:p, :p], c[:p, p:], c[p:, p:]
    regression = torch.linalg.solve(c_xx, c_xy)
    residual = c_yy - c_xy.T @ regression
    mean = x.double() @ regression  # (n, q): E[y | x_i]
    diff = y.double()[None, :, :] - mean[:, None, :]  # (n, m, q)
    conditional = -0.5 * torch.einsum("nmq,qr,nmr->nm", diff, torch.linalg.inv(residual), diff)
    marginal = -0.5 * torch.einsum("mq,qr,mr->m", y.double(), torch.linalg.inv(c_yy), y.double())
    log_det = torch.linalg.slogdet(c_yy)[1] - torch.linalg.slogdet(residual)[1]
    return conditional - marginal[None, :] + 0.5 * log_det


def test_fitted_without_shrinkage_it_is_the_gaussian_log_density_ratio():
    rng = np.random.default_rng(0)
    p, q = 3, 2
    factor = rng.normal(size=(p + q, p + q))
    covariance = factor @ factor.T / (p + q) + 0.5 * np.eye(p + q)
    rows = torch.as_tensor(rng.multivariate_normal(np.zeros(p + q), covariance, 400_000))
    critic = _wrapped("separable_additive", p, q, shrinkage=0.0).double()
    critic.fit_baseline(rows[:, :p], rows[:, p:])
    x, y = rows[:50, :p], rows[50:90, p:]
    with torch.no_grad():  # the network's y side starts at zero: only a(x) is left
        network = critic.critic(x, y)
        expected = _log_ratio(x, y, covariance)
        assert torch.allclose(critic(x, y) - network, expected, atol=0.03)


@pytest.mark.parametrize("name", WRAPPED)
def test_untrained_it_scores_the_baseline_plus_the_network_x_terms(name):
    critic = _wrapped(name)
    x, y = torch.randn(40, 3), torch.randn(40, 2)
    critic.fit_baseline(x, y)
    with torch.no_grad():
        scores = critic(x, y[:7])
        network = critic.critic(x, y[:7])
    # The y side (or the joint head) ends in zeros: the network is constant in y.
    assert torch.allclose(network, network[:, :1].expand_as(network))
    if name in ("separable", "bilinear", "concat"):
        assert torch.equal(network, torch.zeros_like(network))
    assert torch.isfinite(scores).all()


@pytest.mark.parametrize("name", WRAPPED)
def test_pointwise_is_the_diagonal_and_the_factors_give_the_scores(name):
    critic = _wrapped(name)
    x, y = torch.randn(30, 3), torch.randn(30, 2)
    critic.fit_baseline(x, y)
    with torch.no_grad():  # move the network off its zero start
        for parameter in critic.critic.parameters():
            parameter.add_(0.3 * torch.randn_like(parameter))
        critic.log_scale.fill_(0.4)
        scores = critic(x, y)
        assert torch.allclose(critic.pointwise(x, y), scores.diagonal(), atol=1e-5)
        if name == "concat":
            assert not critic.separable
            with pytest.raises(TypeError):
                separable_parts(critic, x, y)
            return
        assert critic.separable
        g, h, a, b = separable_parts(critic, x, y)
        assert torch.allclose(g @ h.T + a[:, None] + b[None, :], scores, atol=1e-5)
        blockwise = blockwise_bound("ml_cpc", g, h, a=a, b=b, block_size=7, alpha=0.3)
        assert torch.allclose(blockwise, ml_cpc(scores, alpha=0.3), atol=1e-5)


def test_a_constant_column_drops_out_and_leaves_finite_scores():
    critic = _wrapped("separable_additive", shrinkage=0.0)
    x, y = torch.randn(200, 3), torch.randn(200, 2)
    x[:, 1] = 7.0
    critic.fit_baseline(x, y)
    assert torch.isfinite(critic.cross).all() and torch.isfinite(critic.x_quadratic).all()
    assert torch.equal(critic.cross[1], torch.zeros(2))
    with torch.no_grad():
        assert torch.isfinite(critic(x, y)).all()


def test_the_scale_and_offset_are_trained_and_the_fitted_form_is_not():
    critic = _wrapped("separable_additive")
    x, y = torch.randn(64, 3), torch.randn(64, 2)
    critic.fit_baseline(x, y)
    trained = {name for name, _ in critic.named_parameters()}
    assert {"log_scale", "offset"} <= trained
    assert not trained & {"cross", "x_quadratic", "y_quadratic", "x_mean", "x_inv_std"}
    assert {"cross", "x_quadratic", "y_quadratic"} <= set(critic.state_dict())


# --------------------------------------------------------------------------- estimator


@pytest.fixture(scope="module")
def weak_gaussians():
    X, Y, mi = make_correlated_gaussians(2000, 10, mi=1.0, random_state=0)
    return X, Y, mi


def test_the_estimator_fits_the_baseline_on_the_training_rows_only(weak_gaussians, monkeypatch):
    X, Y, _ = weak_gaussians
    seen = []
    real_fit = GaussianBaselineCritic.fit_baselines

    def spy(critics, x, y):
        seen.extend([len(x)] * len(critics))
        return real_fit(critics, x, y)

    monkeypatch.setattr(GaussianBaselineCritic, "fit_baselines", staticmethod(spy))
    estimator = MutualInformationEstimator(max_epochs=1, random_state=0).fit(X, Y)
    n_valid = math.ceil(0.1 * 2000)
    n_test = math.ceil(0.2 * 2000)
    # The Gaussian models (dense, sparse and low-rank cross-correlations) and a Student-t
    # copula per degrees of freedom, all on the training rows; the validation rows only
    # choose.
    assert seen == [2000 - n_valid - n_test] * (len(CROSS_STRUCTURES) + len(_TAIL_DFS))
    assert isinstance(estimator.critic_, GaussianBaselineCritic)
    assert estimator.baseline_structure_ in CROSS_STRUCTURES
    # None trains the network alone.
    seen.clear()
    alone = MutualInformationEstimator(baseline=None, max_epochs=1, random_state=0).fit(X, Y)
    assert seen == [] and not isinstance(alone.critic_, GaussianBaselineCritic)


def test_with_the_baseline_a_weak_10d_dependence_is_found_in_one_epoch(weak_gaussians):
    X, Y, mi = weak_gaussians
    # A network alone has learnt little of a dependence spread over 10 dimensions after
    # one epoch; the fitted Gaussian critic is close to the optimal one from the start.
    params = dict(max_epochs=1, early_stopping=False, random_state=0)
    alone = MutualInformationEstimator(baseline=None, **params).fit(X, Y)
    with_baseline = MutualInformationEstimator(**params).fit(X, Y)
    assert alone.mi_ < 0.5 * mi
    assert 0.75 * mi < with_baseline.mi_ < mi + 2 * with_baseline.mi_std_


def test_a_saved_model_with_the_baseline_loads_identically(weak_gaussians, tmp_path):
    X, Y, _ = weak_gaussians
    estimator = MutualInformationEstimator(max_epochs=2, random_state=0).fit(X, Y)
    estimator.save(tmp_path / "model")
    loaded = MutualInformationEstimator.load(tmp_path / "model")
    assert loaded.baseline == "auto"
    assert loaded.baseline_ == estimator.baseline_ == "gaussian"
    assert torch.equal(loaded.critic_.cross, estimator.critic_.cross)
    assert loaded.score(X[:300], Y[:300]) == estimator.score(X[:300], Y[:300])


@pytest.mark.parametrize("baseline", ["gaussian", None])
def test_a_fitted_estimator_keeps_no_reference_to_the_training_rows(weak_gaussians, baseline):
    X, Y, _ = weak_gaussians
    estimator = MutualInformationEstimator(baseline=baseline, max_epochs=1, random_state=0)
    estimator.fit(X, Y)
    assert "_baseline_rows" not in vars(estimator)


@pytest.mark.parametrize(
    ("shrinkage", "error"),
    [(-0.1, ValueError), (1.5, ValueError), ("0.1", ValueError), (None, TypeError)],
)
def test_an_impossible_shrinkage_is_refused(shrinkage, error):
    with pytest.raises(error, match="shrinkage"):
        _wrapped("separable", shrinkage=shrinkage)


def test_a_critic_it_cannot_wrap_is_refused():
    with pytest.raises(TypeError, match="GaussianBaselineCritic wraps"):
        GaussianBaselineCritic(torch.nn.Linear(3, 2), 3, 2)


def test_rows_of_the_wrong_shape_are_refused():
    critic = _wrapped("separable")
    with pytest.raises(ValueError, match="3 and 2 columns"):
        critic.fit_baseline(torch.randn(10, 4), torch.randn(10, 2))
    with pytest.raises(ValueError, match="at least 2 paired rows"):
        critic.fit_baseline(torch.randn(10, 3), torch.randn(9, 2))


def test_shrinkage_is_estimated_from_the_rows_and_grows_with_columns_per_row():
    """Ledoit-Wolf's weight: near 0 for many rows of few columns, large for few rows of
    many; the fitted weight is recorded."""
    rng = np.random.default_rng(0)
    weights = {}
    for rows, columns in ((20_000, 2), (300, 200)):
        x = rng.normal(size=(rows, columns))
        y = 0.5 * x + rng.normal(size=(rows, columns))
        critic = _wrapped("separable", columns, columns)
        assert math.isnan(critic.shrinkage_)
        critic.fit_baseline(x, y)  # numpy arrays are accepted
        weights[columns] = critic.shrinkage_
    assert weights[2] < 0.01
    assert weights[200] > 0.3


def test_a_data_driven_shrinkage_keeps_the_wide_gaussian_critic_informative():
    """1,000 rows x 200 columns a side, MI 22.3: fitted on 700 rows and scored on 200
    held-out rows with ML-CPC's all-pairs normaliser, a fixed 10% gives a critic far below
    the constant critic's 0 (the issue measured -23 nats), Ledoit-Wolf a positive bound."""
    X, Y, _ = make_correlated_gaussians(900, 200, mi=22.3, random_state=0)
    x, y = torch.as_tensor(X), torch.as_tensor(Y)
    bounds = {}
    for shrinkage in (0.1, "ledoit_wolf"):
        critic = _wrapped("separable", 200, 200, shrinkage=shrinkage).double()
        critic.fit_baseline(x[:700], y[:700])
        with torch.no_grad():
            bounds[shrinkage] = float(ml_cpc(critic.baseline_scores(x[700:], y[700:])))
    assert bounds[0.1] < -5
    assert bounds["ledoit_wolf"] > 2


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_fit_baseline_refuses_non_finite_rows_naming_the_row(bad):
    critic = _wrapped("separable")
    x, y = torch.randn(20, 3), torch.randn(20, 2)
    y[13, 1] = bad
    before = {name: buffer.clone() for name, buffer in critic.named_buffers()}
    with pytest.raises(ValueError, match="row 13 holds NaN or infinity"):
        critic.fit_baseline(x, y)
    for name, buffer in critic.named_buffers():  # nothing half-written
        assert torch.equal(buffer, before[name])


def test_widths_that_do_not_match_the_wrapped_critic_are_refused():
    critic = make_critic("separable", 3, 2, embedding_dim=4, hidden_layer_sizes=(8,))
    with pytest.raises(ValueError, match="takes x and y of 3 and 2 columns"):
        GaussianBaselineCritic(critic, 4, 2)
    concat = make_critic("concat", 3, 2, hidden_layer_sizes=(8,))
    with pytest.raises(ValueError, match="takes x and y of 3 and 2 columns"):
        GaussianBaselineCritic(concat, 3, 5)


@pytest.mark.parametrize("name", WRAPPED)
def test_the_users_critic_is_left_unchanged(name):
    torch.manual_seed(0)
    critic = make_critic(name, 3, 2, embedding_dim=4, hidden_layer_sizes=(8,))
    before = {key: value.clone() for key, value in critic.state_dict().items()}
    wrapped = GaussianBaselineCritic(critic, 3, 2)
    for key, value in critic.state_dict().items():
        assert torch.equal(value, before[key])
    assert wrapped.critic is not critic


def test_a_sparse_cross_structure_finds_few_pairs_among_many_columns():
    """2 informative pairs among 100 columns a side, 700 training rows (MI 1): the dense
    model, shrunk as a whole, is worth almost nothing on held-out rows; thresholding the
    cross-correlations keeps the two pairs and most of the information."""
    from sk_mlcpc.datasets import make_sparse_gaussians

    X, Y, _ = make_sparse_gaussians(
        1000, 100, n_informative=2, mi=1.0, n_features_y=100, random_state=0
    )
    x, y = torch.as_tensor(X), torch.as_tensor(Y)
    bounds = {}
    for structure in ("dense", "sparse"):
        critic = _wrapped("separable", 100, 100, cross_structure=structure).double()
        critic.fit_baseline(x[:700], y[:700])
        with torch.no_grad():
            bounds[structure] = float(ml_cpc(critic.baseline_scores(x[700:], y[700:])))
    assert bounds["dense"] < 0.2
    assert bounds["sparse"] > 0.6


def test_a_low_rank_cross_structure_finds_a_few_directions_spread_over_every_column():
    """Y = A X + noise with A of rank 2 over 100 columns a side (MI 4), 700 training rows:
    every column carries a little of two directions, so neither the dense model (its
    noise in every direction) nor thresholding single pairs finds them; keeping the
    canonical pairs above Wachter's noise edge does (1.5 to 1.8 nats when written)."""
    from sk_mlcpc.datasets import make_linear_gaussian

    X, Y, _ = make_linear_gaussian(1000, 100, rank=2, mi=4.0, random_state=0)
    x, y = torch.as_tensor(X), torch.as_tensor(Y)
    bounds = {}
    for structure in ("dense", "sparse", "low_rank"):
        critic = _wrapped("separable", 100, 100, cross_structure=structure).double()
        critic.fit_baseline(x[:700], y[:700])
        with torch.no_grad():
            scores = critic.baseline_scores(x[800:], y[800:])
            bounds[structure] = float(ml_cpc(scores, alpha=1 / 200))
    assert bounds["dense"] < 0 and bounds["sparse"] < 0
    assert bounds["low_rank"] > 1.2


def test_the_low_rank_cross_block_drops_noise_and_keeps_the_correlation_valid():
    """Independent columns: no canonical pair stands above the noise edge, so the cross
    block is exactly 0 (the independence model); a near-perfect pair keeps a finite,
    positive definite model (its correlation held below 0.999)."""
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(400, 20)), rng.normal(size=(400, 20))
    critic = _wrapped("separable", 20, 20, cross_structure="low_rank").double()
    critic.fit_baseline(x, y)
    assert float(critic.cross.abs().max()) == 0.0
    x = rng.normal(size=(60, 3))
    critic = _wrapped("separable", 3, 3, cross_structure="low_rank").double()
    critic.fit_baseline(x, x + 1e-4 * rng.normal(size=(60, 3)))
    with torch.no_grad():
        scores = critic.baseline_scores(torch.as_tensor(x), torch.as_tensor(x))
    assert torch.isfinite(scores).all()


def test_the_sparse_cross_block_keeps_the_correlation_positive_definite():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, 3))
    y = x + 0.01 * rng.normal(size=(50, 3))  # near-perfect correlation, few rows
    critic = _wrapped("separable", 3, 3, cross_structure="sparse").double()
    critic.fit_baseline(x, y)
    with torch.no_grad():
        scores = critic.baseline_scores(torch.as_tensor(x), torch.as_tensor(y))
    assert torch.isfinite(scores).all()
    with pytest.raises(ValueError, match="cross_structure must be"):
        _wrapped("separable", cross_structure="banded")


def test_fitted_together_or_alone_the_models_are_the_same():
    """fit_baselines computes the rows' moments once; each critic ends as fit_baseline
    alone leaves it."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 4))
    y = x[:, :3] + rng.normal(size=(300, 3))
    together = [_wrapped("separable", 4, 3, cross_structure=s) for s in ("dense", "sparse")]
    GaussianBaselineCritic.fit_baselines(together, x, y)
    for critic in together:
        alone = _wrapped("separable", 4, 3, cross_structure=critic.cross_structure)
        alone.fit_baseline(x, y)
        for (name, a), b in zip(critic.named_buffers(), alone.buffers(), strict=True):
            assert torch.equal(a, b), name
        assert critic.shrinkage_ == alone.shrinkage_
    with pytest.raises(ValueError, match="same widths and shrinkage"):
        GaussianBaselineCritic.fit_baselines(
            [_wrapped("separable", 4, 3), _wrapped("separable", 4, 3, shrinkage=0.2)], x, y
        )
