"""Issue 17.9: an explicit alpha below the valid range warns at fit, in every estimator."""

import warnings

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from sk_mlcpc import (
    ContrastiveDistillationClassifier,
    ContrastiveEncoder,
    ContrastivePredictiveCoding,
    MutualInformationEstimator,
)
from sk_mlcpc.datasets import make_correlated_gaussians, make_frequency_sequences

_TINY = {"hidden_layer_sizes": (8,), "max_epochs": 1, "random_state": 0}


def _fit(name: str, alpha):
    if name == "mi":
        X, Y, _ = make_correlated_gaussians(300, 2, mi=0.5, random_state=0)
        return MutualInformationEstimator(alpha=alpha, **_TINY).fit(X, Y)
    if name == "encoder":
        X, _, _ = make_correlated_gaussians(300, 4, mi=0.5, random_state=0)
        return ContrastiveEncoder(alpha=alpha, n_components=2, batch_size=32, **_TINY).fit(X)
    if name == "sequence":
        X, _ = make_frequency_sequences(60, 32, random_state=0)
        return ContrastivePredictiveCoding(
            alpha=alpha, batch_size=16, window=8, stride=4, prediction_steps=2, **_TINY
        ).fit(X)
    X, y = load_iris(return_X_y=True)
    teacher = LogisticRegression(max_iter=500).fit(X, y)
    return ContrastiveDistillationClassifier(
        teacher=teacher, objective="ml_cpc", alpha=alpha, n_negatives=16, batch_size=16, **_TINY
    ).fit(X, y)


@pytest.mark.parametrize("name", ["mi", "encoder", "sequence", "distiller"])
def test_an_alpha_below_the_valid_range_warns(name):
    with pytest.warns(UserWarning, match=r"alpha=1e-06 is below the range .* 'invalid'"):
        estimator = _fit(name, 1e-6)
    assert estimator.bound_validity_ == "invalid"


@pytest.mark.parametrize("name", ["mi", "encoder", "sequence", "distiller"])
def test_auto_alpha_does_not_warn(name):
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="alpha=.* is below the range")
        estimator = _fit(name, "auto")
    assert estimator.bound_validity_ == "claimed"
    assert np.isfinite(estimator.alpha_)
