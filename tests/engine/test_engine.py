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


class ListeningNet(ContrastiveNet):
    """Listens to ``on_grad_computed`` itself (no callback does)."""

    def on_grad_computed(self, net, named_parameters, batch=None, training=False, **kwargs):
        assert len(list(named_parameters)) > 0
        self.heard_ = getattr(self, "heard_", 0) + 1


def test_on_grad_computed_is_skipped_only_when_nothing_listens():
    # The guard works in on_batch_end only: a step then notifies no one of its gradients.
    quiet = _net(ModeRecordingCritic(), [("guard", DivergenceGuard())])
    assert not _PassCache(quiet).grad_computed_heard
    # A callback implementing the hook, or the net's own override, is notified every step.
    counted = _net(ModeRecordingCritic(), [("count", CountHooks())])
    assert _PassCache(counted).grad_computed_heard
    listening = _net(ModeRecordingCritic(), [("guard", DivergenceGuard())], net_class=ListeningNet)
    assert _PassCache(listening).grad_computed_heard and listening.heard_ == STEPS


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
    """The loop with skorch's own per-step methods, for comparison: ``notify``,
    ``_set_training``, ``on_batch_begin`` (History's records), ``infer`` (``to_tensor``)
    and ``train_step`` (the optimiser's closure)."""

    def notify(self, method_name, **cb_kwargs):
        return NeuralNet.notify(self, method_name, **cb_kwargs)

    def _set_training(self, training=True):
        return NeuralNet._set_training(self, training)

    def on_batch_begin(self, net, batch=None, training=False, **kwargs):
        return NeuralNet.on_batch_begin(self, net, batch=batch, training=training, **kwargs)

    def infer(self, x, **fit_params):
        return NeuralNet.infer(self, x, **fit_params)

    def train_step(self, batch, **fit_params):
        return NeuralNet.train_step(self, batch, **fit_params)


def _losses(net):
    return [
        batch.get("train_loss", batch.get("valid_loss"))
        for row in net.history
        for batch in row["batches"]
    ]


def test_same_losses_and_weights_as_with_skorchs_own_step():
    module = ModeRecordingCritic()
    fast = _net(copy.deepcopy(module), [("guard", DivergenceGuard())])
    plain = _net(copy.deepcopy(module), [("guard", DivergenceGuard())], net_class=UncachedNet)
    assert _losses(fast) == _losses(plain)
    assert all(isinstance(loss, float) for loss in _losses(fast))
    assert [row["batches"] for row in fast.history] == [row["batches"] for row in plain.history]
    for (name, mine), (_, theirs) in zip(
        fast.module_.state_dict().items(), plain.module_.state_dict().items(), strict=True
    ):
        assert torch.equal(mine, theirs), name
    assert (
        fast.optimizer_.state_dict()["state"].keys()
        == plain.optimizer_.state_dict()["state"].keys()
    )


class ClosureCountingAdam(torch.optim.Adam):
    """Adam counting the closures it is given (a subclass: skorch's path, as for LBFGS)."""

    closures = 0

    def step(self, closure=None):
        if closure is not None:
            type(self).closures += 1
        return super().step(closure)


def test_optimisers_that_may_need_the_closure_still_get_it():
    module = ModeRecordingCritic()
    torch.manual_seed(0)
    x, y = torch.randn(N_ROWS, 2), torch.randn(N_ROWS, 2)

    def fit(optimizer):
        return ContrastiveNet(
            copy.deepcopy(module),
            criterion=BoundLoss,
            criterion__objective="ml_cpc",
            optimizer=optimizer,
            max_epochs=EPOCHS,
            batch_size=BATCH,
            train_split=None,
            verbose=0,
        ).fit(PairedTensorDataset(x, y), None)

    ClosureCountingAdam.closures = 0
    through_closure = fit(ClosureCountingAdam)
    assert ClosureCountingAdam.closures == STEPS
    assert _losses(through_closure) == _losses(fit(torch.optim.Adam))


def test_lbfgs_trains_through_skorchs_closure():
    torch.manual_seed(0)
    x = torch.randn(N_ROWS, 2)
    y = x + 0.1 * torch.randn(N_ROWS, 2)
    net = ContrastiveNet(
        make_critic("separable_additive", 2, 2, hidden_layer_sizes=(8,)),
        criterion=BoundLoss,
        criterion__objective="ml_cpc",
        optimizer=torch.optim.LBFGS,
        optimizer__max_iter=4,
        lr=0.1,
        max_epochs=3,
        batch_size=N_ROWS,
        train_split=None,
        verbose=0,
    ).fit(PairedTensorDataset(x, y), None)
    losses = [row["train_loss"] for row in net.history]
    assert losses[-1] < losses[0]  # LBFGS re-evaluates the loss: only the closure allows it


def test_only_batches_on_the_nets_device_skip_skorchs_conversion(monkeypatch):
    import skorch.net

    net = _net(ModeRecordingCritic(), [], valid=False)
    converted = []
    original = skorch.net.to_tensor
    monkeypatch.setattr(
        skorch.net,
        "to_tensor",
        lambda x, device, **kw: converted.append(device) or original(x, device, **kw),
    )
    batch = {"x": torch.randn(4, 2), "y": torch.randn(4, 2)}
    net.infer(batch)
    assert converted == []  # on the net's device already: used as they are
    net.infer({"x": batch["x"].numpy(), "y": batch["y"]})
    assert converted == ["cpu"]  # an array: skorch converts it
    net.device = "meta"  # a device the tensors are not on: skorch moves them
    assert not net._on_device(batch)
    net.device = None  # None: skorch leaves tensors where they are
    assert net._on_device(batch)


def test_the_epoch_table_is_built_only_when_it_is_shown(monkeypatch, capsys):
    from skorch.callbacks import PrintLog

    from sk_mlcpc._engine.net import QuietPrintLog

    tables = []
    original = PrintLog.table
    monkeypatch.setattr(
        PrintLog, "table", lambda self, row: tables.append(1) or original(self, row)
    )
    net = _net(ModeRecordingCritic(), [], valid=False)
    assert isinstance(dict(net.callbacks_)["print_log"], QuietPrintLog)
    assert tables == [] and capsys.readouterr().out == ""  # verbose=0: nothing built

    net.set_params(verbose=1)
    net.partial_fit(PairedTensorDataset(torch.randn(N_ROWS, 2), torch.randn(N_ROWS, 2)), None)
    assert len(tables) == EPOCHS and "train_loss" in capsys.readouterr().out

    rows = []
    net.set_params(verbose=0, callbacks__print_log__sink=rows.append)
    net.partial_fit(PairedTensorDataset(torch.randn(N_ROWS, 2), torch.randn(N_ROWS, 2)), None)
    assert len(tables) == 2 * EPOCHS and rows  # a sink of one's own gets every row
