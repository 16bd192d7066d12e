"""Divergence handling: faults injected at a known step are caught there, raised or repaired."""

import math

import numpy as np
import pytest
import torch
from skorch.callbacks import Callback

import sk_mlcpc._engine.loop as engine_loop
import sk_mlcpc._engine.net as engine
from sk_mlcpc import ContrastiveEncoder, DivergenceError, MutualInformationEstimator
from sk_mlcpc.critics import make_critic
from sk_mlcpc.datasets import make_correlated_gaussians


class PoisonWeights(Callback):
    """Fault injection: set the first parameter to NaN before training batch ``at_step``."""

    def __init__(self, at_step: int):
        self.at_step = at_step

    def initialize(self):
        self.step_ = 0
        return self

    def on_batch_begin(self, net, batch=None, training=False, **kwargs):
        if not training:
            return
        if self.step_ == self.at_step:
            with torch.no_grad():
                next(net.module_.parameters()).fill_(math.nan)
        self.step_ += 1


class PoisonGradients(Callback):
    """Fault injection in ``on_grad_computed``: bad gradients at training step ``at_step``.

    By default every gradient is NaN. With ``values``, only the last parameter's gradient
    (the critic's last bias) is touched: its first elements are set to ``values``, the
    rest left finite. The step applies them. The guard reads the gradients after the
    optimiser's step, so it sees them at that very step.
    """

    def __init__(self, at_step: int, values: tuple[float, ...] | None = None):
        self.at_step = at_step
        self.values = values

    def initialize(self):
        self.step_ = 0
        return self

    def on_grad_computed(self, net, named_parameters, batch=None, training=False, **kwargs):
        if self.step_ == self.at_step:
            gradients = [p.grad for _, p in named_parameters if p.grad is not None]
            if self.values is None:
                for gradient in gradients:
                    gradient.fill_(math.nan)
            else:
                flat = gradients[-1].view(-1)
                flat[: len(self.values)] = torch.tensor(self.values, dtype=flat.dtype)
        self.step_ += 1


@pytest.fixture(scope="module")
def gaussians():
    X, Y, _ = make_correlated_gaussians(1200, 2, mi=1.0, random_state=0)
    return X, Y


def _mi(**params):
    # 1200 rows: 960 for training (15 batches of 64), 120 for validation, 120 for mi_.
    defaults = dict(
        hidden_layer_sizes=(16,), max_epochs=4, batch_size=64, random_state=0,
        validation_fraction=0.1, test_fraction=0.1,
    )  # fmt: skip
    return MutualInformationEstimator(**{**defaults, **params})


def test_raise_at_the_step_where_the_fault_appears(gaussians):
    X, Y = gaussians
    # 960 training rows / 64 = 15 batches per epoch: step 20 is batch 6 of epoch 2.
    expected = "a non-finite gradient and a train loss of nan at training batch 6 of epoch 2"
    with pytest.raises(DivergenceError, match=expected):
        _mi(callbacks=[PoisonWeights(20)]).fit(X, Y)


def test_restore_rolls_back_halves_the_learning_rate_and_records_it(gaussians):
    X, Y = gaussians
    estimator = _mi(callbacks=[PoisonWeights(20)], on_divergence="restore").fit(X, Y)
    events = [row.get("divergence") for row in estimator.history_]
    assert events[0] is None and events[2] is None and events[3] is None
    (event,) = events[1]
    assert event["batch"] == 5 and "non-finite gradient" in event["reason"]
    assert event["discarded_batches"] == 1
    assert event["learning_rate"] == pytest.approx(5e-4 / 2)
    assert estimator.net_.optimizer_.param_groups[0]["lr"] == pytest.approx(5e-4 / 2)
    # The skipped step is not averaged into the epoch: every recorded loss is finite.
    assert np.isfinite(estimator.history_[:, "train_loss"]).all()
    train_batches = [b for b in estimator.history_[1]["batches"] if "train_loss" in b]
    assert len(train_batches) == 14
    # Training went on improving after the restore.
    valid_mi = estimator.history_[:, "valid_mi"]
    assert math.isfinite(estimator.mi_) and valid_mi[-1] > valid_mi[1] > valid_mi[0]
    for parameter in estimator.critic_.parameters():
        assert torch.isfinite(parameter).all()


class PoisonWeightsAfterStep(PoisonWeights):
    """Fault injection after the guard's check: NaN weights at the end of ``at_step``.

    No gradient of that step is bad; only the next batch's loss shows it.
    """

    def on_batch_begin(self, net, batch=None, training=False, **kwargs):
        pass

    def on_batch_end(self, net, batch=None, training=False, **kwargs):
        if training:
            super().on_batch_begin(net, batch=batch, training=training, **kwargs)


def test_restore_catches_nan_weights_through_the_next_loss(gaussians):
    X, Y = gaussians
    estimator = _mi(callbacks=[PoisonWeightsAfterStep(3)], on_divergence="restore").fit(X, Y)
    (event,) = estimator.history_[0]["divergence"]
    assert event["batch"] == 4 and "a train loss of nan" in event["reason"]
    assert math.isfinite(estimator.mi_)


def test_restore_catches_nan_gradients_at_their_own_step(gaussians):
    X, Y = gaussians
    estimator = _mi(callbacks=[PoisonGradients(3)], on_divergence="restore").fit(X, Y)
    (event,) = estimator.history_[0]["divergence"]
    assert event["batch"] == 3 and event["reason"] == "a non-finite gradient"
    assert math.isfinite(estimator.mi_)


BAD_GRADIENT_VALUES = {
    "nan": (math.nan,),
    "+inf": (math.inf,),
    "-inf": (-math.inf,),
    "+inf and -inf": (math.inf, -math.inf),  # cancel in a plain sum of the elements
}


@pytest.mark.parametrize("check", ["every step", "every 8 steps"])
@pytest.mark.parametrize(
    "values", list(BAD_GRADIENT_VALUES.values()), ids=list(BAD_GRADIENT_VALUES)
)
def test_any_non_finite_gradient_element_is_caught_at_its_own_step(
    gaussians, monkeypatch, values, check
):
    # One bad element or two among the last bias's 16 is enough, on both of the guard's
    # paths: every step on the CPU (each tensor's sum read at once), and the deferred one
    # of accelerators (fused norms kept on the device, read every 8 steps here).
    if check == "every 8 steps":
        monkeypatch.setattr(engine_loop, "_default_check_every", lambda device: 8)
    X, Y = gaussians
    estimator = _mi(callbacks=[PoisonGradients(3, values)], on_divergence="restore").fit(X, Y)
    (event,) = estimator.history_[0]["divergence"]
    assert event["batch"] == 3 and event["reason"].startswith("a non-finite gradient")
    assert math.isfinite(estimator.mi_)


def test_restore_gives_up_after_repeated_faults(gaussians):
    X, Y = gaussians

    class AlwaysPoison(PoisonWeights):
        def on_batch_begin(self, net, batch=None, training=False, **kwargs):
            if training:
                with torch.no_grad():
                    next(net.module_.parameters()).fill_(math.nan)

    with pytest.raises(DivergenceError, match="after 5 restores"):
        _mi(callbacks=[AlwaysPoison(0)], on_divergence="restore").fit(X, Y)


def test_encoder_restores_too(gaussians):
    X, _ = gaussians
    encoder = ContrastiveEncoder(
        n_components=4,
        hidden_layer_sizes=(16,),
        max_epochs=3,
        batch_size=64,
        random_state=0,
        on_divergence="restore",
        callbacks=[PoisonWeights(7)],
    ).fit(X)
    (event,) = encoder.history_[0]["divergence"]
    assert event["batch"] == 7
    assert np.isfinite(encoder.transform(X)).all()


def test_bad_on_divergence_is_rejected(gaussians):
    X, Y = gaussians
    with pytest.raises(ValueError, match="on_divergence"):
        _mi(on_divergence="ignore").fit(X, Y)


# On an accelerator the guard reads its flags every 64 steps, not after each step (a host
# read drains the device's queue). Checking every 8 steps on the CPU runs the same path.
@pytest.fixture
def check_every_8_steps(monkeypatch):
    monkeypatch.setattr(engine_loop, "_default_check_every", lambda device: 8)


def test_deferred_check_still_names_the_first_bad_batch(gaussians, check_every_8_steps):
    X, Y = gaussians
    # Step 20 is batch 6 of epoch 2; the check after it runs at batch 8.
    expected = "a non-finite gradient and a train loss of nan at training batch 6 of epoch 2"
    with pytest.raises(DivergenceError, match=expected):
        _mi(callbacks=[PoisonWeights(20)]).fit(X, Y)


def test_deferred_restore_drops_the_batches_after_the_fault(gaussians, check_every_8_steps):
    X, Y = gaussians
    estimator = _mi(callbacks=[PoisonWeights(20)], on_divergence="restore").fit(X, Y)
    events = [row.get("divergence") for row in estimator.history_]
    assert events[0] is None and events[2] is None and events[3] is None
    (event,) = events[1]
    # Batches 6, 7 and 8 (0-based 5..7) ran on NaN weights before the check at batch 8.
    assert event["batch"] == 5 and event["discarded_batches"] == 3
    assert event["learning_rate"] == pytest.approx(5e-4 / 2)
    train_batches = [b for b in estimator.history_[1]["batches"] if "train_loss" in b]
    assert len(train_batches) == 15 - 3
    assert np.isfinite(estimator.history_[:, "train_loss"]).all()
    valid_mi = estimator.history_[:, "valid_mi"]
    # Training went on from the restored weights: every held-out bound is finite and the
    # model ends as good as one trained without the fault.
    clean = _mi().fit(X, Y).history_[:, "valid_mi"]
    assert math.isfinite(estimator.mi_) and np.isfinite(valid_mi).all()
    assert len(valid_mi) == len(clean) and abs(valid_mi[-1] - clean[-1]) < 0.05


def test_a_fault_in_the_last_steps_is_caught_at_the_end_of_the_pass(gaussians):
    X, Y = gaussians
    # 15 batches per epoch, checks every 64 steps: only the end-of-pass check can see
    # a fault at step 13 (batch 14 of epoch 1).
    with pytest.raises(DivergenceError, match="training batch 14 of epoch 1"):
        _mi(
            callbacks=[PoisonWeights(13), ("guard_interval", _Interval(64))],
        ).fit(X, Y)


class _Interval(Callback):
    """Set the divergence guard's ``check_every`` before training starts."""

    def __init__(self, steps: int):
        self.steps = steps

    def on_train_begin(self, net, **kwargs):
        dict(net.callbacks_)["divergence_guard"].check_every = self.steps


def test_check_every_is_validated():
    with pytest.raises(ValueError, match="check_every must be a positive integer"):
        engine.DivergenceGuard(check_every=0).initialize()


class LossAtStep(engine.BoundLoss):
    """The bound's loss, replaced by ``value`` (with zero, finite gradients) at training
    step ``at_step``."""

    value = math.nan
    at_step = 3

    def forward(self, scores, training=True):
        loss = super().forward(scores, training=training)
        if training:
            self.steps_ = getattr(self, "steps_", 0) + 1
            if self.steps_ == self.at_step + 1:
                return loss * 0.0 + self.value
        return loss


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 2e4])
def test_every_bad_loss_is_caught_at_its_step_when_checking_every_step(value):
    # On the CPU the guard reads each step's loss and gradient flag as floats and checks
    # them at once (its fast path); a bad value must take the full path and raise there.
    LossAtStep.value = value
    x = torch.randn(256, 2)
    net = engine.ContrastiveNet(
        make_critic("separable", 2, 2, hidden_layer_sizes=(8,)),
        criterion=LossAtStep,
        criterion__objective="ml_cpc",
        optimizer=torch.optim.Adam,
        max_epochs=2,
        batch_size=32,
        train_split=None,
        callbacks=[("guard", engine.DivergenceGuard())],
        verbose=0,
    )
    with pytest.raises(DivergenceError, match=f"a train loss of {value} at training batch 4 "):
        net.fit(engine.PairedTensorDataset(x, x + torch.randn(256, 2)), None)
