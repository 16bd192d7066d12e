"""Repeated restores halve the learning rate once each; the numerical limits stay finite.

Limits: MINE's moving log-partition with ``momentum=0`` or an infinite carried state, a
non-finite training objective masked by the value/gradient split, and the blockwise
backward pass for rows whose negatives all score ``-inf``.
"""

import math

import numpy as np
import pytest
import torch
from skorch.callbacks import Callback

from sk_mlcpc import ContrastiveEncoder, MutualInformationEstimator
from sk_mlcpc.blockwise import blockwise_bound
from sk_mlcpc.bounds import dv, get_bound, mine, smile
from sk_mlcpc.datasets import make_correlated_gaussians

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


class PoisonAt(Callback):
    """Set the first parameter to NaN before the given training batches.

    ``faults`` holds ``(epoch, batch)`` pairs, both 1-based, counted as the batches start
    (a restored batch is not started again).
    """

    def __init__(self, faults):
        self.faults = faults

    def initialize(self):
        self.batch_ = 0
        return self

    def on_epoch_begin(self, net, **kwargs):
        self.batch_ = 0

    def on_batch_begin(self, net, batch=None, training=False, **kwargs):
        if not training:
            return
        self.batch_ += 1
        if (len(net.history), self.batch_) in self.faults:
            with torch.no_grad():
                next(net.module_.parameters()).fill_(math.nan)


@pytest.fixture(scope="module")
def gaussians():
    X, Y, _ = make_correlated_gaussians(800, 2, mi=1.0, random_state=0)
    return X, Y


def _mi(**params):
    # No learning-rate schedule: the rates these tests check are the guard's alone.
    defaults = dict(
        hidden_layer_sizes=(8,), batch_size=64, early_stopping=False, random_state=0,
        on_divergence="restore", lr_schedule=None,
    )  # fmt: skip
    return MutualInformationEstimator(**{**defaults, **params})


def _encoder(**params):
    defaults = dict(
        n_components=4, hidden_layer_sizes=(8,), batch_size=64, early_stopping=False,
        random_state=0, on_divergence="restore",
    )  # fmt: skip
    return ContrastiveEncoder(**{**defaults, **params})


def _events(estimator):
    """(epoch, learning rate) of every restore, in order."""
    return [
        (epoch, event["learning_rate"])
        for epoch, row in enumerate(estimator.history_, start=1)
        for event in row.get("divergence") or []
    ]


def _lr(estimator):
    return estimator.net_.optimizer_.param_groups[0]["lr"]


@pytest.mark.parametrize("make", [_mi, _encoder], ids=["mi", "encoder"])
def test_restores_in_separate_epochs_halve_the_rate_once_each(gaussians, make):
    X, Y = gaussians
    estimator = make(max_epochs=5, callbacks=[PoisonAt({(2, 1), (4, 1)})])
    estimator.fit(X, Y) if make is _mi else estimator.fit(X)
    lr0 = estimator.learning_rate
    # Epoch 3 is clean and snapshots lr0 / 2: the second restore must not halve that
    # twice (lr0 / 8 before the fix).
    assert _events(estimator) == [(2, lr0 / 2), (4, lr0 / 4)]
    assert _lr(estimator) == lr0 / 4


def test_the_nth_restore_leaves_lr0_over_2_to_the_n(gaussians):
    X, Y = gaussians
    faults = {(epoch, 1) for epoch in range(2, 7)}
    estimator = _mi(max_epochs=7, callbacks=[PoisonAt(faults)]).fit(X, Y)
    lr0 = estimator.learning_rate
    # Five restores in five epochs: lr0 / 2^5, not lr0 / 2^15.
    assert _events(estimator) == [(epoch, lr0 / 2 ** (epoch - 1)) for epoch in range(2, 7)]
    assert _lr(estimator) == lr0 / 32
    assert math.isfinite(estimator.mi_)


def test_restores_in_one_epoch_and_then_in_another(gaussians):
    X, Y = gaussians
    # Two restores in epoch 2 (no clean epoch between them), then one in epoch 4.
    estimator = _mi(max_epochs=5, callbacks=[PoisonAt({(2, 2), (2, 5), (4, 3)})]).fit(X, Y)
    lr0 = estimator.learning_rate
    assert _events(estimator) == [(2, lr0 / 2), (2, lr0 / 4), (4, lr0 / 8)]
    assert _lr(estimator) == lr0 / 8


# ------------------------------------------------------------------ MINE's moving average


def _gradient(function, scores):
    scores = scores.clone().requires_grad_(True)
    out = function(scores)
    estimate, state = out if isinstance(out, tuple) else (out, None)
    estimate.backward()
    return estimate.detach(), scores.grad, state


def _blockwise_mine(g, h, **options):
    def function(_):
        return blockwise_bound("mine", g, h, **options)

    return function


@pytest.fixture
def scores():
    generator = torch.Generator().manual_seed(0)
    return torch.randn(6, 6, generator=generator, dtype=torch.float64)


def test_mine_with_momentum_0_is_dv_whatever_the_state(scores):
    # momentum=0: the moving average is the batch's partition, so MINE's gradient is
    # DV's. An infinite carried state used to give log(e^{inf - inf} + ...) = NaN: a NaN
    # state and, through the masked NaN objective, a NaN gradient.
    _, dv_gradient, _ = _gradient(dv, scores)
    batch_log_partition = mine(scores)[1]
    for state in (torch.tensor(math.inf), torch.tensor(-math.inf), torch.tensor(3.0)):
        value, gradient, new_state = _gradient(
            lambda s, state=state: mine(s, log_partition_ema=state, momentum=0.0), scores
        )
        assert torch.equal(new_state, batch_log_partition)
        torch.testing.assert_close(gradient, dv_gradient)
        assert value == dv(scores)


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_mine_restarts_its_average_after_an_infinite_state(scores, momentum):
    # +inf stayed +inf under the average for good, silencing the partition's gradient.
    _, fresh_gradient, fresh_state = _gradient(mine, scores)
    for state in (math.inf, -math.inf, math.nan):
        _, gradient, new_state = _gradient(
            lambda s, state=state: mine(
                s, log_partition_ema=torch.tensor(state, dtype=s.dtype), momentum=momentum
            ),
            scores,
        )
        assert torch.equal(new_state, fresh_state), state
        torch.testing.assert_close(gradient, fresh_gradient)


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_blockwise_mine_matches_the_dense_limits(momentum):
    generator = torch.Generator().manual_seed(1)
    g, h = torch.randn(2, 6, 3, generator=generator, dtype=torch.float64)
    for state in (math.inf, 2.0):
        state = torch.tensor(state, dtype=torch.float64)
        g_, h_ = g.clone().requires_grad_(True), h.clone().requires_grad_(True)
        estimate, new_state = blockwise_bound(
            "mine", g_, h_, log_partition_ema=state, momentum=momentum, block_size=4
        )
        estimate.backward()
        g2, h2 = g.clone().requires_grad_(True), h.clone().requires_grad_(True)
        dense, dense_state = mine(g2 @ h2.T, log_partition_ema=state, momentum=momentum)
        dense.backward()
        assert torch.isfinite(g_.grad).all() and torch.isfinite(new_state)
        torch.testing.assert_close(new_state, dense_state)
        torch.testing.assert_close(g_.grad, g2.grad)
        torch.testing.assert_close(h_.grad, h2.grad)


def test_a_masked_infinite_objective_gives_a_zero_not_a_nan_gradient(scores):
    # SMILE reports the clipped DV value (finite) and trains with JS, whose objective is
    # -inf with a +inf negative: the gradient of that objective is masked, and must be
    # zero, not NaN, for every score.
    scores = scores.clone()
    scores[0, 1] = math.inf
    value, gradient, _ = _gradient(smile, scores)
    assert math.isfinite(value)
    assert torch.equal(gradient, torch.zeros_like(gradient))


# ------------------------------------------------------------------ blockwise, -inf negatives


@pytest.mark.parametrize("name", ["cpc", "alpha_cpc", "ml_cpc", "js", "smile"])
def test_blockwise_backward_of_rows_whose_negatives_are_all_minus_inf(name):
    # A bank of negatives masked out with b = -inf (an empty queue) leaves every row with
    # no negative: lse_i = -inf. The backward pass computed e^{S_ij - lse_i} =
    # e^{-inf + inf} = NaN; the gradient is that of the same bound with negatives that
    # underflow to zero (b = -1e4 in float64).
    generator = torch.Generator().manual_seed(2)
    g, h = torch.randn(2, 5, 3, generator=generator, dtype=torch.float64)
    bank = torch.randn(7, 3, generator=generator, dtype=torch.float64)
    options = {"alpha": 0.5} if name in ("alpha_cpc", "ml_cpc") else {}
    gradients, values = [], []
    for masked in (-math.inf, -1e4):
        leaves = [t.clone().requires_grad_(True) for t in (g, h, bank)]
        value = blockwise_bound(
            name, *leaves[:2], negatives=leaves[2], b_negatives=torch.full((7,), masked,
            dtype=torch.float64), block_size=4, **options,
        )  # fmt: skip
        value.backward()
        values.append(value.detach())
        gradients.append([leaf.grad for leaf in leaves])
    assert torch.equal(values[0], values[1])
    for exact, underflowed in zip(*gradients, strict=True):
        assert torch.isfinite(exact).all()
        torch.testing.assert_close(exact, underflowed)
    # And the dense function on the same scores agrees where it is finite.
    scores = torch.cat([(g * h).sum(1, keepdim=True), g @ bank.T - 1e4], dim=1)
    np.testing.assert_allclose(
        values[0].item(), get_bound(name)(scores, layout="anchored", **options).item()
    )
