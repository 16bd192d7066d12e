"""The Student-t copula form of the closed-form baseline (``tail_df``)."""

import numpy as np
import pytest
import torch
from scipy import stats

from sk_mlcpc._nn.critics import _interpolate, _normal_to_t_table
from sk_mlcpc.bounds import cpc, ml_cpc
from sk_mlcpc.critics import GaussianBaselineCritic, SeparableCritic
from sk_mlcpc.datasets import make_student_t


def _critic(p: int, q: int, **options) -> GaussianBaselineCritic:
    return GaussianBaselineCritic(SeparableCritic(p, q, 4, (8,)), p, q, **options)


def _normal_scores(rows: np.ndarray, n_fit: int) -> torch.Tensor:
    """Each column mapped to the normal score of its rank among the first ``n_fit`` rows
    (the default quantile preprocessing, written out)."""
    scores = np.empty_like(rows)
    for column in range(rows.shape[1]):
        reference = np.sort(rows[:n_fit, column])
        ranks = np.searchsorted(reference, rows[:, column], side="right")
        scores[:, column] = stats.norm.ppf(np.clip(ranks / (n_fit + 1), 1e-6, 1 - 1e-6))
    return torch.as_tensor(scores, dtype=torch.float32)


@pytest.mark.parametrize("df", [1.0, 2.0, 4.0, 30.0])
def test_the_table_maps_a_normal_score_to_the_t_score_of_the_same_rank(df):
    table = _normal_to_t_table(df)
    z = torch.linspace(-5.0, 5.0, 41, dtype=torch.float64)
    expected = stats.t.ppf(stats.norm.cdf(z.numpy()), df)
    mapped = _interpolate(z, table.double()).numpy()
    np.testing.assert_allclose(mapped, expected, rtol=2e-3, atol=1e-5)
    assert bool((table[1:] > table[:-1]).all())  # strictly increasing
    np.testing.assert_allclose(table.numpy(), -table.flip(0).numpy(), atol=1e-6)  # odd


def test_the_t_copula_at_the_true_df_reaches_the_mi_of_a_multivariate_t():
    """Fitted on 15,000 rows of a 3-d Student-t pair (df 4, MI 1.5) in normal scores, the
    untrained critic is the t copula's log density ratio: its held-out bounds reach the
    MI, which the Gaussian copula's fall short of."""
    X, Y, truth = make_student_t(20_000, 3, mi=1.5, df=4.0, random_state=0)
    scores = _normal_scores(np.hstack([X, Y]), 15_000)
    x, y = scores[:, :3], scores[:, 3:]
    held_out = slice(15_000, 17_000)
    values = {}
    for df in (None, 4.0):
        critic = _critic(3, 3, tail_df=df)
        critic.fit_baseline(x[:15_000], y[:15_000])
        with torch.no_grad():
            matrix = critic(x[held_out], y[held_out])
        values[df] = (float(ml_cpc(matrix, alpha=1 / 2000)), float(cpc(matrix)))
    assert abs(values[4.0][0] - truth) < 0.06 and abs(values[4.0][1] - truth) < 0.06
    assert values[None][0] < truth - 0.15


def test_a_very_large_df_gives_the_gaussian_critic():
    """As df grows the t law tends to the Gaussian one, the t scores to the normal scores
    and the EM weights to 1: the scores of the two forms agree."""
    rng = np.random.default_rng(0)
    x = torch.as_tensor(rng.standard_normal((3000, 2)), dtype=torch.float32)
    y = 0.7 * x + 0.5 * torch.as_tensor(rng.standard_normal((3000, 2)), dtype=torch.float32)
    gaussian, heavy = _critic(2, 2, shrinkage=0.0), _critic(2, 2, shrinkage=0.0, tail_df=1e7)
    gaussian.fit_baseline(x, y)
    heavy.fit_baseline(x, y)
    with torch.no_grad():
        difference = heavy.baseline_scores(x[:300], y[:300]) - gaussian.baseline_scores(
            x[:300], y[:300]
        )
    assert float(difference.abs().max()) < 1e-2


def test_pointwise_scores_are_the_diagonal_and_the_critic_is_not_separable():
    x, y = torch.randn(200, 3), torch.randn(200, 2)
    critic = _critic(3, 2, tail_df=4.0)
    critic.fit_baseline(x, x[:, :2] + y)
    with torch.no_grad():
        matrix, aligned = critic(x[:50], y[:50]), critic.pointwise(x[:50], y[:50])
    torch.testing.assert_close(matrix.diagonal(), aligned, rtol=1e-5, atol=1e-5)
    assert not critic.separable and _critic(3, 2).separable
    with pytest.raises(TypeError, match=r"Student-t baseline \(tail_df set\) is not separable"):
        critic.separable_parts(x, y)


def test_the_fitted_t_model_travels_in_the_state_dict():
    x, y = torch.randn(300, 2), torch.randn(300, 2)
    critic = _critic(2, 2, tail_df=2.0)
    critic.fit_baseline(x, x + y)
    assert {"t_table", "t_precision", "t_x_precision", "t_y_precision"} <= set(critic.state_dict())
    restored = _critic(2, 2, tail_df=2.0)
    restored.load_state_dict(critic.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(restored(x[:20], y[:20]), critic(x[:20], y[:20]))


@pytest.mark.parametrize("tail_df", [0, -1.0, True, "4", float("nan")])
def test_a_bad_tail_df_is_refused(tail_df):
    with pytest.raises(ValueError, match="tail_df must be a positive number or None"):
        _critic(2, 2, tail_df=tail_df)


def test_tail_df_needs_the_dense_cross_structure():
    with pytest.raises(ValueError, match="tail_df needs cross_structure='dense'"):
        _critic(2, 2, tail_df=4.0, cross_structure="sparse")


def test_fitting_leaves_the_rows_unchanged():
    x, y = torch.randn(100, 2), torch.randn(100, 2)
    before = (x.clone(), y.clone())
    _critic(2, 2, tail_df=4.0).fit_baseline(x, y)
    assert torch.equal(x, before[0]) and torch.equal(y, before[1])
