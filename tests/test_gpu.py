"""The CUDA path of the estimators (skipped without a GPU; run by benchmarks/gpu_check.sh)."""

import math
import pickle

import numpy as np
import pytest
import torch

from sk_mlcpc import ContrastiveEncoder, MutualInformationEstimator
from sk_mlcpc.datasets import make_correlated_gaussians

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def gaussians():
    X, Y, _ = make_correlated_gaussians(4000, 4, mi=2.0, random_state=0)
    return X, Y


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_mi_estimator_trains_on_cuda(gaussians, precision):
    X, Y = gaussians
    estimator = MutualInformationEstimator(
        hidden_layer_sizes=(64,), max_epochs=10, precision=precision, random_state=0
    ).fit(X, Y)
    assert estimator.device_.type == "cuda"
    assert next(estimator.critic_.parameters()).is_cuda
    assert 1.0 < estimator.mi_ < 2.1
    assert estimator.transform(X).dtype == np.float32


def test_cuda_model_saves_and_loads_on_the_cpu(gaussians, tmp_path):
    X, Y = gaussians
    estimator = MutualInformationEstimator(
        hidden_layer_sizes=(32,), max_epochs=3, random_state=0
    ).fit(X, Y)
    estimator.save(tmp_path / "model.skmlcpc")
    on_cpu = MutualInformationEstimator.load(tmp_path / "model.skmlcpc", device="cpu")
    assert not next(on_cpu.critic_.parameters()).is_cuda
    assert on_cpu.score(X, Y) == pytest.approx(estimator.score(X, Y), abs=1e-3)
    # Pickle keeps the device; scoring still works with data moved to it.
    restored = pickle.loads(pickle.dumps(estimator))
    assert restored.score(X, Y) == pytest.approx(estimator.score(X, Y), abs=1e-5)


def test_blockwise_on_cuda_matches_dense(gaussians):
    X, Y = gaussians
    params = dict(hidden_layer_sizes=(32,), max_epochs=2, early_stopping=False, random_state=0)
    dense = MutualInformationEstimator(blockwise=False, **params).fit(X, Y)
    tiled = MutualInformationEstimator(blockwise=True, **params).fit(X, Y)
    assert tiled.mi_ == pytest.approx(dense.mi_, abs=1e-3)


def test_encoder_on_cuda(gaussians):
    X, _ = gaussians
    encoder = ContrastiveEncoder(n_components=8, max_epochs=3, random_state=0).fit(X)
    assert encoder.device_.type == "cuda" and math.isfinite(encoder.mi_)
    assert encoder.transform(X).shape == (len(X), 8)
    assert torch.cuda.max_memory_allocated() > 0
