"""The host-sync-free training pass: :class:`HostSyncFreeLoop` and what it looks up.

skorch reads every batch's loss on the host, which stalls an accelerator once a step.
This module holds the mixin that records losses as device tensors and settles them in
one transfer (:func:`settle_batch_records`), the per-pass cache of what stays fixed
during a pass (:class:`_PassCache`), and the small helpers that the divergence guard
(:mod:`sk_mlcpc._engine.divergence`) shares with the loop: the batch records of the
epoch under way, reading many device values at once, and how often a device is read
(:func:`_default_check_every`, one value for the loop and the guard).
"""

from __future__ import annotations

import operator

import torch
from skorch import NeuralNet
from skorch.callbacks import Callback, EarlyStopping
from skorch.dataset import get_len
from skorch.history import History
from torch import nn

__all__ = ["HostSyncFreeLoop", "settle_batch_records"]


#: A module's ``training`` flag, for reading many with ``map`` (no Python frame each).
_TRAINING_MODE = operator.attrgetter("training")


def settle_batch_records(batches: list[dict]) -> None:
    """Turn the tensors in the newest batch records into Python floats, with one host sync.

    The training loop records each batch's loss as a 0-d tensor on the training device
    (see :class:`HostSyncFreeLoop`), so that no step waits for the device. This reads all
    records not yet settled (the trailing ones holding a tensor) in one transfer per
    device, in place.
    """
    start = len(batches)
    while start > 0 and any(isinstance(v, torch.Tensor) for v in batches[start - 1].values()):
        start -= 1
    slots: dict[torch.device, list[tuple[dict, str]]] = {}
    for record in batches[start:]:
        for key, value in record.items():
            if isinstance(value, torch.Tensor):
                slots.setdefault(value.device, []).append((record, key))
    for entries in slots.values():
        stacked = torch.stack([record[key].detach().reshape(()).float() for record, key in entries])
        for (record, key), value in zip(entries, stacked.tolist(), strict=True):
            record[key] = value


class HostSyncFreeLoop:
    """skorch ``NeuralNet`` mixin: a training pass that never waits for the device per step.

    skorch's ``run_single_epoch`` records ``loss.item()`` after every batch, a host-device
    synchronisation that stalls an accelerator's queue once per step. Here a batch's loss
    is recorded as a detached tensor and the pass's records are settled to floats (one
    transfer) when a callback asks for them
    (:class:`~sk_mlcpc._engine.divergence.DivergenceGuard` checks every ``check_every``
    steps) and at the end of the pass, before ``on_epoch_end``: epoch-level callbacks
    (scoring, early stopping, logging) see floats as before. Where a read costs nothing
    (the CPU, where the guard checks every step) the loss is recorded as a float at once.
    Callbacks with an ``on_pass_end(net, training)`` method are called at the end of each
    pass.

    The per-step bookkeeping is skorch's, with what stays fixed during a pass looked up
    once (:class:`_PassCache`): the callbacks implementing each per-batch hook, the
    modules' training modes, and the epoch's list of batch records (skorch's ``History``
    finds its last epoch by copying the list of all epochs, several times a step).

    It also tells an interrupted fit from a stopped one: skorch's ``partial_fit`` catches
    every ``KeyboardInterrupt`` and returns, because its ``EarlyStopping`` raises one to
    stop; a Ctrl-C would then pass for a finished fit. ``interrupted_`` is set to true
    when the loop ends with a ``KeyboardInterrupt`` that no early-stopping callback
    raised (:func:`sk_mlcpc._engine.fitting.run_training` then raises it again).
    """

    interrupted_ = False

    def fit_loop(self, X, y=None, epochs=None, **fit_params):
        self.interrupted_ = False
        try:
            return super().fit_loop(X, y, epochs=epochs, **fit_params)
        except KeyboardInterrupt:
            self.interrupted_ = not _early_stopping_decided(self)
            raise

    def run_single_epoch(self, iterator, training, prefix, step_fn, **fit_params):
        if iterator is None:
            return
        batch_count = 0
        batches = self.history[-1]["batches"]
        # What stays fixed for a pass is looked up once, not once per batch: the callbacks
        # that implement each per-batch hook, and the modules' training modes.
        self._pass_cache = cache = _PassCache(self, batches)
        notify = self.notify
        record_batch = self.history.record_batch if cache.batches is None else None
        loss_key, size_key = prefix + "_loss", prefix + "_batch_size"
        try:
            for batch in iterator:
                notify("on_batch_begin", batch=batch, training=training)
                step = step_fn(batch, **fit_params)
                loss = step["loss"].detach()
                if cache.host_losses:
                    loss = loss.item()  # on the CPU a read costs nothing: no settling later
                inputs = batch[0] if isinstance(batch, tuple | list) else batch
                if record_batch is None:
                    # History.record_batch copies the list of epochs to find the last one.
                    record = batches[-1]
                    record[loss_key] = loss
                    record[size_key] = _batch_len(inputs)
                else:
                    record_batch(loss_key, loss)
                    record_batch(size_key, _batch_len(inputs))
                notify("on_batch_end", batch=batch, training=training, **step)
                batch_count += 1
            for _, callback in self.callbacks_:
                on_pass_end = getattr(callback, "on_pass_end", None)
                if on_pass_end is not None:
                    on_pass_end(self, training=training)
        finally:
            self.__dict__.pop("_pass_cache", None)
            settle_batch_records(batches)
        self.history.record(prefix + "_batch_count", batch_count)

    def on_batch_begin(self, net, batch=None, training=False, **kwargs):
        """skorch's: a new batch record, appended to the pass's list when it is cached."""
        cache = self.__dict__.get("_pass_cache")
        if cache is None or cache.batches is None:
            return super().on_batch_begin(net, batch=batch, training=training, **kwargs)
        cache.batches.append({})
        return None

    def notify(self, method_name, **cb_kwargs):
        """skorch's ``notify``; during a pass, per-batch hooks skip the callbacks without one.

        skorch calls every callback's hook, nearly all of them the base class's no-op,
        three times a step; :class:`_PassCache` lists the callbacks that implement each.
        """
        cache = self.__dict__.get("_pass_cache")
        hooks = None if cache is None else cache.hooks.get(method_name)
        if hooks is None:
            return super().notify(method_name, **cb_kwargs)
        getattr(self, method_name)(self, **cb_kwargs)
        for hook in hooks:
            hook(self, **cb_kwargs)
        return None

    def _set_training(self, training=True):
        """skorch's ``_set_training``, which during a pass leaves modules already in the mode.

        skorch calls ``module.train(training)`` before every step, a walk over every
        submodule; within a pass the mode is nearly always set already.
        """
        cache = self.__dict__.get("_pass_cache")
        if cache is None:
            return super()._set_training(training)
        for module, submodules in cache.modes:
            if submodules is None:  # overrides train: always called, as skorch does
                module.train(training)
                continue
            modes = map(_TRAINING_MODE, submodules)
            if not (all(modes) if training else not any(modes)):
                module.train(training)
        return None


def _batch_len(inputs) -> int:
    """skorch's ``get_len``, with a fast path for the package's dicts of equal-length tensors.

    ``get_len`` walks any nesting of containers through several generic helpers (~20 us
    a batch); a flat dict of tensors of one length needs one look at each.
    """
    if type(inputs) is dict:
        length = None
        for value in inputs.values():
            if type(value) is not torch.Tensor or value.dim() == 0:
                return get_len(inputs)
            if length is None:
                length = value.shape[0]
            elif value.shape[0] != length:
                return get_len(inputs)
        if length is not None:
            return length
    return get_len(inputs)


#: skorch's hooks called once or more per batch.
_BATCH_HOOKS = ("on_batch_begin", "on_batch_end", "on_grad_computed")


def _implements(callback, name: str) -> bool:
    """Whether ``callback``'s hook ``name`` does something (is not ``Callback``'s no-op)."""
    hook = getattr(callback, name, None)
    return getattr(hook, "__func__", hook) is not getattr(Callback, name)


class _PassCache:
    """What :class:`HostSyncFreeLoop` looks up once per pass instead of once per batch.

    ``hooks``: for each per-batch hook, the bound hooks of the callbacks implementing it.
    ``modes``: each module and criterion of the net with its submodules, or with None when
    one of them overrides ``train`` (then ``train`` is always called, as skorch does).
    """

    def __init__(self, net, batches: list[dict] | None = None) -> None:
        # This pass's batch records, written directly when the history is skorch's plain
        # History (a distributed history keeps them elsewhere: None).
        self.batches = batches if type(net.history) is History else None
        # Losses are read as they come where a host read costs nothing (the guard then
        # checks every step: the CPU), and left on an accelerator's queue.
        self.host_losses = _default_check_every(_training_device(net)) == 1
        self.device = _as_device(net.device)
        callbacks = [callback for _, callback in net.callbacks_]
        self.hooks = {
            name: [getattr(callback, name) for callback in callbacks if _implements(callback, name)]
            for name in _BATCH_HOOKS
        }
        # Whether anything (a callback, or the net's own hook) listens to
        # ``on_grad_computed``: if not, the step skips the notification and its generator
        # of parameters.
        net_hook = getattr(type(net), "on_grad_computed", None)
        self.grad_computed_heard = bool(self.hooks["on_grad_computed"]) or (
            net_hook is not NeuralNet.on_grad_computed
        )
        self.modes: list[tuple[nn.Module, list[nn.Module] | None]] = []
        for name in net._modules + net._criteria:
            module = getattr(net, name + "_", None)
            if isinstance(module, nn.Module):
                submodules = list(module.modules())
                plain = all(type(sub).train is nn.Module.train for sub in submodules)
                self.modes.append((module, submodules if plain else None))


def _as_device(device) -> torch.device | None:
    """``device`` as skorch's ``to_device`` reads it: None leaves tensors where they are.

    An index-free accelerator name (``"cuda"``) means the current device of that type.
    """
    if device is None:
        return None
    device = torch.device(device)
    if device.type != "cpu" and device.index is None:
        module = getattr(torch, device.type, None)
        if module is not None and hasattr(module, "current_device"):
            device = torch.device(device.type, module.current_device())
    return device


def _current_batches(net) -> list[dict]:
    """The batch records of the epoch under way (``net.history[-1]["batches"]``).

    During a pass, the list is the pass cache's: skorch's ``History`` finds its last
    epoch by copying the list of all epochs, several times a step otherwise.
    """
    cache = net.__dict__.get("_pass_cache")
    if cache is not None and cache.batches is not None:
        return cache.batches
    return net.history[-1]["batches"]


def _read_values(values: list) -> list[float]:
    """Floats for a list of floats and 0-d tensors, the tensors read in one transfer."""
    tensors = [value for value in values if isinstance(value, torch.Tensor)]
    if not tensors:
        return [float(value) for value in values]
    read = iter(torch.stack([tensor.detach().reshape(()).float() for tensor in tensors]).tolist())
    return [next(read) if isinstance(value, torch.Tensor) else float(value) for value in values]


def _early_stopping_decided(net) -> bool:
    """Whether an early-stopping callback of ``net`` has just decided to stop training."""
    return any(
        isinstance(callback, EarlyStopping) and getattr(callback, "misses_", 0) >= callback.patience
        for _, callback in getattr(net, "callbacks_", [])
    )


def _default_check_every(device: torch.device) -> int:
    # A host read is free on the CPU; on an accelerator it drains the queue.
    return 1 if device.type == "cpu" else 64


def _training_device(net) -> torch.device:
    # Where the parameters live: with accelerate, ``net.device`` is None and the
    # accelerator places the module.
    parameter = next(net.module_.parameters(), None)
    if parameter is not None:
        return parameter.device
    return torch.device(net.device or "cpu")
