"""Mixed precision and torch.compile through the estimators (CPU here; the same code on GPU)."""

import math
import pickle

import numpy as np
import pytest
import torch

from sk_mlcpc import ContrastiveEncoder, MutualInformationEstimator
from sk_mlcpc.datasets import make_correlated_gaussians


@pytest.fixture(scope="module")
def gaussians():
    X, Y, _ = make_correlated_gaussians(3000, 4, mi=2.0, random_state=0)
    return X, Y


def _mi(**params):
    defaults = dict(hidden_layer_sizes=(64,), max_epochs=8, random_state=0)
    return MutualInformationEstimator(**{**defaults, **params})


@pytest.fixture(scope="module")
def full_precision(gaussians):
    return _mi().fit(*gaussians)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_half_precision_training_matches_float32(gaussians, full_precision, precision):
    X, Y = gaussians
    half = _mi(precision=precision).fit(X, Y)
    assert half.net_.grad_scaler_.is_enabled() is (precision == "fp16")
    assert abs(half.mi_ - full_precision.mi_) < 0.15
    # Estimates are reported in float32, not rounded to the half-precision grid (a bf16
    # number near 1.5 is a multiple of 2^-7).
    assert half.mi_ != float(torch.tensor(half.mi_, dtype=torch.bfloat16))
    assert np.isfinite(half.history_[:, "train_loss"]).all()
    assert half.transform(X).dtype == np.float32


def test_precision_applies_to_the_encoder(gaussians):
    X, _ = gaussians
    encoder = ContrastiveEncoder(
        n_components=4, hidden_layer_sizes=(16,), max_epochs=2, precision="bf16", random_state=0
    ).fit(X)
    assert math.isfinite(encoder.mi_)
    assert encoder.transform(X).dtype == np.float32


def test_unknown_precision_is_rejected(gaussians):
    with pytest.raises(ValueError, match="precision"):
        _mi(precision="fp8").fit(*gaussians)


@pytest.mark.slow
def test_compiled_network_trains_and_pickles(gaussians):
    X, Y = gaussians
    compiled = _mi(max_epochs=3, compile=True).fit(X, Y)
    eager = _mi(max_epochs=3).fit(X, Y)
    assert compiled.mi_ == pytest.approx(eager.mi_, abs=0.05)
    restored = pickle.loads(pickle.dumps(compiled))
    assert restored.score(X, Y) == pytest.approx(compiled.score(X, Y), abs=1e-5)


def test_compile_covers_the_blockwise_factors_and_leaves_the_criterion(gaussians, monkeypatch):
    X, Y = gaussians
    compiled = []
    real_compile = torch.compile

    def recording_compile(target, **options):
        compiled.append(target)
        return real_compile(target, backend="eager")  # what is compiled, not how

    monkeypatch.setattr(torch, "compile", recording_compile)
    estimator = _mi(max_epochs=2, compile=True, blockwise=True).fit(X[:600], Y[:600])
    kinds = [type(target).__name__ for target in compiled]
    # The critic (its forward, for dense scoring) and the factor function of the
    # blockwise path; not the criterion, whose alpha a schedule changes every epoch.
    assert "GaussianBaselineCritic" in kinds and "partial" in kinds  # the default critic
    assert "BoundLoss" not in kinds
    eager = _mi(max_epochs=2, blockwise=True).fit(X[:600], Y[:600])
    assert estimator.mi_ == pytest.approx(eager.mi_, abs=1e-4)
    restored = pickle.loads(pickle.dumps(estimator))
    assert restored.score(X[:600], Y[:600]) == pytest.approx(estimator.score(X[:600], Y[:600]))
