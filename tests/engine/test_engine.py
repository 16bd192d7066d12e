"""The training loop's per-pass caches keep skorch's behaviour (hooks, training modes)."""

import copy

import torch
from skorch import NeuralNet
from skorch.callbacks import Callback
from torch import nn

from sk_mlcpc._engine.net import (
    BoundLoss,
    ContrastiveNet,
    DivergenceGuard,
    PairedTensorDataset,
    _PassCache,
)
from sk_mlcpc.critics import make_critic

N_ROWS, BATCH, EPOCHS = 96, 32, 2
STEPS = EPOCHS * (N_ROWS // BATCH)


class CountHooks(Callback):
    """Counts the per-batch hooks it receives, training and validation apart."""

    def initialize(self):
        self.counts_ = {}
        return self

    def _count(self, name, training):
        key = (name, training)
        self.counts_[key] = self.counts_.get(key, 0) + 1

    def on_batch_begin(self, net, batch=None, training=False, **kwargs):
        self._count("on_batch_begin", training)

    def on_batch_end(self, net, batch=None, training=False, **kwargs):
        self._count("on_batch_end", training)

    def on_grad_computed(self, net, named_parameters, batch=None, training=False, **kwargs):
        assert len(list(named_parameters)) > 0  # the parameters still reach the hook
        self._count("on_grad_computed", training)


class EvalFirstLayer(Callback):
    """Puts a submodule in eval mode before each training step (skorch resets it)."""

    def on_batch_begin(self, net, batch=None, training=False, **kwargs):
        if training:
            net.module_.critic.x_encoder.eval()


class ModeRecordingCritic(nn.Module):
    """A critic recording, at every forward, whether all its submodules train."""

    def __init__(self):
        super().__init__()
        self.critic = make_critic("separable_additive", 2, 2, hidden_layer_sizes=(8,))
        self.modes = []

    def forward(self, x, y):
        self.modes.append(all(module.training for module in self.modules()))
        return self.critic(x, y)


class CustomTrain(ModeRecordingCritic):
    """Overrides ``train``: it must be called before every step, as skorch does."""

    def train(self, mode=True):
        self.calls = getattr(self, "calls", 0) + 1
        return super().train(mode)


def _net(module, callbacks, valid=True, net_class=ContrastiveNet):
    torch.manual_seed(0)
    x, y = torch.randn(N_ROWS, 2), torch.randn(N_ROWS, 2)
    valid_set = PairedTensorDataset(x[:64].clone(), y[:64].clone())
    return net_class(
        module,
        criterion=BoundLoss,
        criterion__objective="ml_cpc",
        max_epochs=EPOCHS,
        batch_size=BATCH,
        eval_batch_size=32,
        train_split=(lambda dataset, y=None: (dataset, valid_set)) if valid else None,
        callbacks=callbacks,
        verbose=0,
    ).fit(PairedTensorDataset(x, y), None)


def test_every_per_batch_hook_reaches_the_callbacks_that_implement_it():
    net = _net(ModeRecordingCritic(), [("count", CountHooks()), ("guard", DivergenceGuard())])
    counts = dict(net.callbacks_)["count"].counts_
    assert counts == {
        ("on_batch_begin", True): STEPS,
        ("on_grad_computed", True): STEPS,
        ("on_batch_end", True): STEPS,
        ("on_batch_begin", False): EPOCHS * 2,
        ("on_batch_end", False): EPOCHS * 2,
    }
    assert len(net.history[-1]["batches"]) == N_ROWS // BATCH + 2
    assert "_pass_cache" not in net.__dict__  # dropped at the end of each pass


def test_the_pass_cache_lists_only_hooks_that_do_something():
    net = _net(ModeRecordingCritic(), [("count", CountHooks())])
    cache = _PassCache(net)
    owners = {name: [hook.__self__ for hook in hooks] for name, hooks in cache.hooks.items()}
    counter = dict(net.callbacks_)["count"]
    # skorch's default callbacks (timer, scoring, log) have no per-batch hooks.
    assert owners == {name: [counter] for name in owners}


def test_modes_are_reset_before_each_step_as_skorch_does():
    module = ModeRecordingCritic()
    _net(module, [("eval_first", EvalFirstLayer())], valid=False)
    assert module.modes == [True] * STEPS
    custom = CustomTrain()
    _net(custom, [], valid=True)
    # Called before every training and every validation batch, as skorch does.
    assert custom.calls >= STEPS + EPOCHS * 2
    assert custom.modes == ([True] * 3 + [False] * 2) * EPOCHS


class UncachedNet(ContrastiveNet):
    """The loop with skorch's own ``notify`` and ``_set_training``, for comparison."""

    def notify(self, method_name, **cb_kwargs):
        return NeuralNet.notify(self, method_name, **cb_kwargs)

    def _set_training(self, training=True):
        return NeuralNet._set_training(self, training)


def test_same_losses_as_with_skorchs_own_hooks():
    module = ModeRecordingCritic()
    fast = _net(copy.deepcopy(module), [("guard", DivergenceGuard())])
    plain = _net(copy.deepcopy(module), [("guard", DivergenceGuard())], net_class=UncachedNet)

    def losses(net):
        return [
            batch.get("train_loss", batch.get("valid_loss"))
            for row in net.history
            for batch in row["batches"]
        ]

    assert losses(fast) == losses(plain)
    assert all(isinstance(loss, float) for loss in losses(fast))
