"""MutualInformationEstimator.score_ceiling_: estimates clamp scores at the 99.9th
percentile of the scores the critic gives aligned training pairs."""

import numpy as np
import pytest
import torch

from sk_mlcpc import MutualInformationEstimator
from sk_mlcpc.bounds import ml_cpc, resolve_alpha
from sk_mlcpc.datasets import make_correlated_gaussians


@pytest.fixture(scope="module")
def spiky():
    # 2-d Gaussian, MI 1, 5,000 rows, seed 1: with scikit-learn's QuantileTransformer
    # (the default preprocessing until NormalQuantileTransformer), held-out values beyond
    # the training range went to 5.2 standard deviations and two negative pairs scored 15
    # and 16 nats, above every training positive (10.3); unclamped, ML-CPC on the 1,000
    # test rows gave 0.04. The package's transformer sends them to 3.3 and the spikes
    # are gone (unclamped 1.03); the ceiling must still be what the estimate applies.
    X, Y, mi = make_correlated_gaussians(5000, 2, mi=1.0, random_state=1)
    estimator = MutualInformationEstimator(random_state=1).fit(X, Y)
    return X, Y, mi, estimator


def _scores(estimator, X, Y, rows):
    x, y = estimator._preprocess(np.asarray(X)[rows], np.asarray(Y)[rows])
    with torch.no_grad():
        return estimator.critic_.eval()(x, y)


def test_the_ceiling_is_a_high_quantile_of_the_training_positives(spiky):
    X, Y, _, estimator = spiky
    train = estimator._split(len(X)).train
    x, y = estimator._preprocess(np.asarray(X)[train], np.asarray(Y)[train])
    with torch.no_grad():
        positives = estimator.critic_.eval().pointwise(x, y)
    positives = positives.double().numpy()
    assert estimator.score_ceiling_ == pytest.approx(np.quantile(positives, 0.999), abs=1e-6)
    # 0.1% of the 3,500 training positives (rounded up) lie above it.
    assert (positives > estimator.score_ceiling_).sum() == 4


def test_mi_is_the_bound_of_the_clamped_scores_and_survives_the_spikes(spiky):
    X, Y, mi, estimator = spiky
    test = estimator._split(len(X)).test
    scores = _scores(estimator, X, Y, test)
    alpha = resolve_alpha("auto", "ml_cpc", len(test))
    clamped = float(ml_cpc(scores.clamp(max=estimator.score_ceiling_), alpha=alpha))
    unclamped = float(ml_cpc(scores, alpha=alpha))
    assert estimator.eval_batch_size_ == len(test) == 1000
    assert estimator.mi_ == pytest.approx(clamped, abs=1e-4)
    assert unclamped > 0.9  # no spikes since NormalQuantileTransformer (see the fixture)
    assert abs(estimator.mi_ - mi) < 0.1


def test_score_on_new_rows_uses_the_same_ceiling(spiky):
    estimator = spiky[3]
    X_new, Y_new, _ = make_correlated_gaussians(600, 2, mi=1.0, random_state=7)
    scores = _scores(estimator, X_new, Y_new, np.arange(600))
    alpha = resolve_alpha("auto", "ml_cpc", 600)
    expected = float(ml_cpc(scores.clamp(max=estimator.score_ceiling_), alpha=alpha))
    assert estimator.score(X_new, Y_new) == pytest.approx(expected, abs=1e-4)


def test_a_blockwise_evaluation_clamps_like_a_dense_one(spiky):
    X, Y, _, estimator = spiky
    test = estimator._split(len(X)).test
    dataset_rows = (np.asarray(X)[test], np.asarray(Y)[test])
    dense = estimator.evaluate(*dataset_rows)
    estimator.net_.blockwise = True  # factors instead of the score matrix
    try:
        tiled = estimator.evaluate(*dataset_rows)
    finally:
        estimator.net_.blockwise = False
    assert tiled.mi == pytest.approx(dense.mi, abs=1e-4)
    assert tiled.std_error == pytest.approx(dense.std_error, abs=1e-4)


def test_the_ceiling_is_saved(spiky, tmp_path):
    X, Y, _, estimator = spiky
    estimator.save(tmp_path / "model")
    loaded = MutualInformationEstimator.load(tmp_path / "model")
    assert loaded.score_ceiling_ == estimator.score_ceiling_
    assert loaded.score(X[:500], Y[:500]) == estimator.score(X[:500], Y[:500])
