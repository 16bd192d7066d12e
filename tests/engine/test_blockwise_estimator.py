"""The estimator's blockwise path: same fit as the dense path, chosen by batch size."""

import numpy as np
import pytest
import torch

import sk_mlcpc._engine.net as engine
from sk_mlcpc import MutualInformationEstimator
from sk_mlcpc.blockwise import chunked_scores
from sk_mlcpc.bounds import ml_cpc
from sk_mlcpc.critics import make_critic
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
    # 3200 rows: 2240 for training, 320 for validation, 640 for the estimate.
    X, Y, _ = make_correlated_gaussians(3200, 2, mi=1.0, random_state=0)
    small = MutualInformationEstimator(hidden_layer_sizes=(8,), max_epochs=1, random_state=0)
    assert small.fit(X, Y).blockwise_ is False
    large = MutualInformationEstimator(
        hidden_layer_sizes=(8,), max_epochs=1, batch_size=2048, random_state=0
    )
    assert large.fit(X, Y).blockwise_ is True
    # Many held-out rows alone do not: 22,000 rows hold out a validation batch of 2,200.
    X_many, Y_many, _ = make_correlated_gaussians(22_000, 2, mi=1.0, random_state=0)
    many = MutualInformationEstimator(hidden_layer_sizes=(8,), max_epochs=1, random_state=0)
    assert many.fit(X_many, Y_many).validation_batch_size_ == 2200
    assert many.blockwise_ is False
    joint = MutualInformationEstimator(critic="concat", batch_size=2048, max_epochs=1)
    assert joint.set_params(hidden_layer_sizes=(4,)).fit(X[:300], Y[:300]).blockwise_ is False


def test_a_joint_critic_is_scored_in_chunks_with_the_same_fit(gaussians, monkeypatch):
    X, Y = gaussians
    # 100-row batches in chunks of 10 rows (1,000 pairs): ten chunks per batch.
    monkeypatch.setattr(engine, "PAIRS_PER_CHUNK", 1000)
    calls = []
    real_chunked = engine.chunked_scores

    def counting(*args, **kwargs):
        calls.append(kwargs["chunk_size"])
        return real_chunked(*args, **kwargs)

    monkeypatch.setattr(engine, "chunked_scores", counting)
    params = dict(
        critic="concat", hidden_layer_sizes=(16,), max_epochs=3, batch_size=100,
        early_stopping=False, random_state=0,
    )  # fmt: skip
    dense = MutualInformationEstimator(blockwise=False, **params).fit(X, Y)
    assert not calls
    chunked = MutualInformationEstimator(blockwise=True, **params).fit(X, Y)
    assert chunked.blockwise_ and chunked.net_.chunk_pairs and not chunked.net_.blockwise
    # Training and validation batches of 100 rows in chunks of 10 rows; the estimate's
    # one batch of all 200 test rows in chunks of 5 rows (1,000 pairs each).
    assert calls and set(calls) == {10, 5}
    np.testing.assert_allclose(
        chunked.history_[:, "train_loss"], dense.history_[:, "train_loss"], rtol=1e-5, atol=1e-6
    )
    assert chunked.mi_ == pytest.approx(dense.mi_, abs=1e-5)
    assert chunked.score(X, Y) == pytest.approx(dense.score(X, Y), abs=1e-5)


def _bytes_saved_for_backward(compute) -> int:
    saved = 0

    def pack(tensor):
        nonlocal saved
        saved += tensor.numel() * tensor.element_size()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        compute()
    return saved


def test_chunking_keeps_a_joint_critics_activations_for_one_chunk_only():
    n, hidden = 256, (64, 64)
    critic = make_critic("concat", 2, 2, hidden_layer_sizes=hidden)
    x, y = torch.randn(n, 2), torch.randn(n, 2)
    dense = _bytes_saved_for_backward(lambda: ml_cpc(critic(x, y), alpha=1.0))
    chunked = _bytes_saved_for_backward(
        lambda: ml_cpc(chunked_scores(critic, x, y, chunk_size=16), alpha=1.0)
    )
    # Dense: every one of the n^2 pairs keeps its hidden activations (>= n^2 * 128 floats).
    assert dense >= n * n * sum(hidden) * 4
    # Chunked: the chunk inputs and the n x n scores (a few n^2 floats for the bound).
    assert chunked <= 8 * n * n * 4
    assert chunked * 10 < dense


def test_auto_chunks_a_joint_critic_from_1024_rows_per_batch():
    X, Y, _ = make_correlated_gaussians(1400, 2, mi=1.0, random_state=0)
    # 1,120 rows for training, 140 for validation, 140 for the estimate.
    params = dict(
        critic="concat", hidden_layer_sizes=(4,), max_epochs=1, random_state=0,
        validation_fraction=0.1, test_fraction=0.1,
    )  # fmt: skip
    small = MutualInformationEstimator(batch_size=1023, **params)
    large = MutualInformationEstimator(batch_size=1024, **params)
    assert small.fit(X, Y).blockwise_ is False
    assert large.fit(X, Y).blockwise_ is True
