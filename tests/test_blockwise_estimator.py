"""The estimator's blockwise path: same fit as the dense path, chosen by batch size."""

import numpy as np
import pytest

from sk_mlcpc import MutualInformationEstimator
from sk_mlcpc.datasets import make_correlated_gaussians


@pytest.fixture(scope="module")
def gaussians():
    X, Y, _ = make_correlated_gaussians(1000, 2, mi=1.0, random_state=0)
    return X, Y


@pytest.mark.parametrize(
    ("critic", "objective"),
    [("separable_additive", "ml_cpc"), ("separable", "cpc"), ("bilinear", "mine")],
)
def test_blockwise_fit_matches_the_dense_fit(gaussians, critic, objective):
    X, Y = gaussians
    params = dict(
        critic=critic, objective=objective, hidden_layer_sizes=(16,), max_epochs=3,
        batch_size=100, early_stopping=False, random_state=0,
    )  # fmt: skip
    dense = MutualInformationEstimator(blockwise=False, **params).fit(X, Y)
    tiled = MutualInformationEstimator(blockwise=True, **params).fit(X, Y)
    assert tiled.blockwise_ and not dense.blockwise_
    # Summation order differs, so the trajectories agree to float rounding, not bits.
    np.testing.assert_allclose(
        tiled.history_[:, "train_loss"], dense.history_[:, "train_loss"], rtol=1e-4, atol=1e-5
    )
    assert tiled.mi_ == pytest.approx(dense.mi_, abs=1e-4)
    assert tiled.score(X, Y) == pytest.approx(dense.score(X, Y), abs=1e-4)


def test_auto_turns_on_from_2048_rows_per_batch():
    X, Y, _ = make_correlated_gaussians(2600, 2, mi=1.0, random_state=0)
    small = MutualInformationEstimator(hidden_layer_sizes=(8,), max_epochs=1, random_state=0)
    assert small.fit(X, Y).blockwise_ is False
    large = MutualInformationEstimator(
        hidden_layer_sizes=(8,), max_epochs=1, batch_size=2048, validation_fraction=0.2,
        random_state=0,
    )  # fmt: skip
    with pytest.warns(UserWarning, match="1 evaluation batch"):
        assert large.fit(X, Y).blockwise_ is True
    joint = MutualInformationEstimator(critic="concat", batch_size=2048, max_epochs=1)
    assert joint.set_params(hidden_layer_sizes=(4,)).fit(X[:300], Y[:300]).blockwise_ is False


def test_blockwise_true_needs_a_separable_critic(gaussians):
    X, Y = gaussians
    with pytest.raises(ValueError, match="blockwise=True needs a separable"):
        MutualInformationEstimator(critic="concat", blockwise=True, max_epochs=1).fit(X, Y)
