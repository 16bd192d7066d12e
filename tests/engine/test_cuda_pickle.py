"""A model fitted on a GPU unpickles, predicts and trains on in a CPU-only process.

There is no GPU here, so the GPU side is simulated at the only place it shows in a pickle:
every tensor storage is written with the location tag ``"cuda:0"``, as torch writes it
for a CUDA tensor, and the fitted estimator and its net say ``device="cuda"``. Loading
then goes through the code a CPU-only machine runs: a storage tagged ``cuda:0`` that is
not mapped to the CPU raises ``Attempting to deserialize object on a CUDA device``.
Tensors that stay on the CPU in a real CUDA fit (Adam's step counters, data kept on the
host on purpose) keep the ``"cpu"`` tag.
"""

from __future__ import annotations

import contextlib
import pickle

import numpy as np
import pytest
import torch
import torch.serialization
from sklearn.linear_model import LogisticRegression

from sk_mlcpc import (
    ContrastiveDistillationClassifier,
    ContrastiveEncoder,
    ContrastivePredictiveCoding,
    MutualInformationEstimator,
)
from sk_mlcpc.datasets import make_correlated_gaussians, make_frequency_sequences


@contextlib.contextmanager
def storages_tagged_cuda(host_tensors):
    host = {t.untyped_storage().data_ptr() for t in host_tensors}
    original = torch.serialization.location_tag

    def tag(storage):
        return "cpu" if storage.data_ptr() in host else "cuda:0"

    torch.serialization.location_tag = tag
    try:
        yield
    finally:
        torch.serialization.location_tag = original


def _host_tensors(estimator) -> list[torch.Tensor]:
    tensors = [
        state["step"]
        for state in estimator.net_.optimizer_.state.values()
        if torch.is_tensor(state.get("step"))
    ]
    for value in vars(estimator).values():
        if torch.is_tensor(value) and value.device.type == "cpu" and value.numel():
            tensors.append(value)  # kept on the host by the estimator itself
    return tensors


def _as_if_fitted_on_cuda(estimator) -> bytes:
    host = _host_tensors(estimator)
    estimator.device_ = torch.device("cuda")
    estimator.net_.device = "cuda"
    with storages_tagged_cuda(host):
        return pickle.dumps(estimator)


def test_the_simulation_catches_a_cuda_tensor_pickled_plainly():
    payload = {"weights": torch.ones(3)}
    with storages_tagged_cuda([]):
        data = pickle.dumps(payload)
    with pytest.raises(RuntimeError, match="CUDA"):
        pickle.loads(data)


def _gaussians():
    X, Y, _ = make_correlated_gaussians(320, 2, mi=1.0, random_state=0)
    return X, Y


def _fitted(name):
    small = dict(max_epochs=2, random_state=0)
    if name == "mi":
        X, Y = _gaussians()
        estimator = MutualInformationEstimator(hidden_layer_sizes=(8,), batch_size=32, **small)
        return estimator.fit(X, Y), (X, Y)
    if name == "encoder":
        X, _ = _gaussians()
        estimator = ContrastiveEncoder(
            n_components=3, hidden_layer_sizes=(8,), batch_size=32, **small
        )
        return estimator.fit(X), (X,)
    if name == "sequence":
        X, _ = make_frequency_sequences(64, 64, random_state=0)
        estimator = ContrastivePredictiveCoding(
            window=8,
            stride=8,
            prediction_steps=2,
            n_components=4,
            latent_dim=4,
            hidden_layer_sizes=(4,),
            batch_size=16,
            **small,
        )
        return estimator.fit(X), (X,)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(320, 4))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    teacher = LogisticRegression().fit(X, y)
    estimator = ContrastiveDistillationClassifier(
        teacher=teacher, hidden_layer_sizes=(8,), batch_size=32, n_negatives=16, **small
    )
    return estimator.fit(X, y), (X, y)


def _outputs(name, estimator, data):
    if name == "mi":
        return estimator.score(*data)
    if name == "distiller":
        return estimator.predict_proba(data[0])
    return estimator.transform(data[0])


@pytest.mark.parametrize("name", ["mi", "encoder", "sequence", "distiller"])
def test_a_cuda_fitted_estimator_loads_and_works_on_the_cpu(name):
    estimator, data = _fitted(name)
    expected = _outputs(name, estimator, data)
    loaded = pickle.loads(_as_if_fitted_on_cuda(estimator))
    assert torch.device(loaded.net_.device).type == "cpu"
    assert loaded.device_ == torch.device("cpu")
    for parameter in loaded.net_.module_.parameters():
        assert parameter.device.type == "cpu"
    np.testing.assert_allclose(_outputs(name, loaded, data), expected, rtol=1e-6, atol=1e-7)
    # The loaded model trains on, on the CPU.
    loaded.set_params(warm_start=True, max_epochs=1)
    loaded.fit(*data)
    assert len(loaded.history_) == 3
