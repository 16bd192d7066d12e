"""The training engine: a skorch ``NeuralNet`` whose loss is a negated contrastive bound.

Public estimators build a :class:`ContrastiveNet` in ``fit`` and keep it as ``net_``; the
loop, callbacks, progress bar and history are skorch's. What this module adds:

* :class:`PairedTensorDataset` and :class:`TensorBatches`: the training data lives as
  tensors on the training device and a batch is a slice of a shuffled index, not a
  per-sample ``__getitem__`` plus collation;
* :class:`BoundLoss`: the criterion, ``-bound(scores)``, which also carries MINE's moving
  average between steps;
* callbacks: :class:`DivergenceGuard` (raise with advice on a non-finite loss, or roll
  back and report the restores) and
  :class:`MutualInformationLog` (held-out MI in nats in ``history``).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import math
import operator
from collections.abc import Callable, Iterator

import numpy as np
import torch
from skorch import NeuralNet
from skorch.callbacks import Callback, EarlyStopping, PrintLog
from skorch.dataset import get_len, unpack_data
from skorch.history import History
from skorch.utils import TeeGenerator
from torch import nn

from sk_mlcpc._math.blockwise import (
    DEFAULT_BLOCK_SIZE,
    blockwise_bound,
    chunked_scores,
    separable_parts,
)
from sk_mlcpc._math.bounds import get_bound, get_objective
from sk_mlcpc._nn.devices import to_device

__all__ = [
    "AlphaSchedule",
    "BoundLoss",
    "ContrastiveNet",
    "DivergenceError",
    "DivergenceGuard",
    "HostSyncFreeLoop",
    "MutualInformationLog",
    "PairedTensorDataset",
    "SeededBatches",
    "TensorBatches",
    "scheduled_alpha",
    "settle_batch_records",
]


#: Pairs a joint critic scores at once with ``chunk_pairs``: its activations are this many
#: rows of its hidden layers (1 GiB for hidden layers of 1,024 floats in all).
PAIRS_PER_CHUNK = 1 << 18

#: Optimisers whose ``step`` does not call a closure: :meth:`ContrastiveNet.train_step`
#: computes the gradients before calling it instead of passing skorch's closure.
_CLOSURE_FREE = (torch.optim.Adam, torch.optim.AdamW, torch.optim.SGD)

#: A module's ``training`` flag, for reading many with ``map`` (no Python frame each).
_TRAINING_MODE = operator.attrgetter("training")

#: ``precision`` names accepted by :class:`ContrastiveNet` and the estimators.
PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


class DivergenceError(FloatingPointError):
    """Raised when training produces a non-finite loss."""


class PairedTensorDataset(torch.utils.data.Dataset):
    """Paired samples ``(x_i, y_i)`` held as two tensors on one device."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        if len(x) != len(y):
            raise ValueError(f"x and y must have the same length, got {len(x)} and {len(y)}.")
        self.x = x
        self.y = y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        return {"x": self.x[index], "y": self.y[index]}, torch.zeros(())


class SeededBatches:
    """Base of the package's batch iterables: full batches, one generator per pass.

    Only full batches are produced: every bound depends on the batch size, so a smaller
    last batch would be a different estimator. skorch builds an iterator once per
    ``fit`` call and iterates it every epoch, so each pass asks :meth:`_pass_generator`
    for its randomness: with ``shuffle=True`` a fresh ``generator_factory()`` (seeded by
    the epoch index, see :meth:`ContrastiveNet.epoch_generator`) or else the running
    ``generator``; with ``shuffle=False`` a generator reseeded from ``seed``, so that
    evaluations are repeatable and not biased by the order of the rows. Subclasses
    implement ``__iter__``.
    """

    def __init__(
        self,
        dataset,
        batch_size: int,
        *,
        shuffle: bool,
        generator: torch.Generator | None = None,
        seed: int = 0,
        generator_factory: Callable[[], torch.Generator] | None = None,
    ) -> None:
        if batch_size < 2:
            raise ValueError(f"batch_size must be at least 2, got {batch_size}.")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.generator = generator
        self.seed = seed
        self.generator_factory = generator_factory

    def __len__(self) -> int:
        return len(self.dataset) // self.batch_size

    def _pass_generator(self) -> torch.Generator | None:
        if not self.shuffle:
            return torch.Generator().manual_seed(self.seed)
        if self.generator_factory is not None:
            return self.generator_factory()
        return self.generator

    def _batch_starts(self) -> range:
        return range(0, len(self) * self.batch_size, self.batch_size)


class TensorBatches(SeededBatches):
    """Batches ``{"x", "y"}`` sliced from a permuted index over a :class:`PairedTensorDataset`.

    See :class:`SeededBatches` for the batch sizes and the randomness of each pass.
    """

    def _order(self) -> torch.Tensor:
        """This pass's permutation of the rows, on the data's device."""
        order = torch.randperm(len(self.dataset), generator=self._pass_generator())
        return to_device(order, self.dataset.x.device)

    def __iter__(self) -> Iterator[tuple[dict[str, torch.Tensor], None]]:
        order = self._order()
        for start in self._batch_starts():
            index = order[start : start + self.batch_size]
            yield {"x": self.dataset.x[index], "y": self.dataset.y[index]}, None


def _at_least_fp32(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.float() if tensor.dtype in (torch.float16, torch.bfloat16) else tensor


class BoundLoss(nn.Module):
    """Criterion ``-bound(scores)`` for a named bound from :data:`sk_mlcpc.bounds.BOUNDS`.

    Parameters
    ----------
    objective : str
        Bound name.
    alpha : float
        Positive weight for ``"alpha_cpc"`` / ``"ml_cpc"`` (ignored otherwise). A plain
        attribute, so a callback may change it between steps (alpha schedules).
    layout : {"batch", "anchored"}
        Score-matrix layout.
    block_size : int, default=1024
        Tile size when the net passes separable factors instead of a score matrix
        (``ContrastiveNet(blockwise=True)``).
    eval_alpha : float or None, default=None
        Alpha used when not training (validation, scoring). ``None`` uses ``alpha``. A
        schedule changes ``alpha`` every epoch; evaluating at a fixed ``eval_alpha`` keeps
        the held-out bound comparable across epochs (early stopping).
    """

    def __init__(
        self,
        objective: str,
        alpha: float = 1.0,
        layout: str = "batch",
        eval_alpha: float | None = None,
        block_size: int = DEFAULT_BLOCK_SIZE,
    ) -> None:
        super().__init__()
        self.block_size = int(block_size)
        self.bound = get_bound(objective)
        self.objective = objective
        self.alpha = float(alpha)
        self.eval_alpha = None if eval_alpha is None else float(eval_alpha)
        # Set by the evaluation of a fitted estimator (its score_ceiling_), never in training.
        self.score_ceiling: float | None = None
        self.layout = layout
        # The state of a stateful objective (MINE's moving average of the log partition,
        # see the registry's ``Objective.state``); NaN marks "not started yet".
        self.register_buffer("log_partition_ema", torch.tensor(math.nan))

    def estimate(
        self, scores: torch.Tensor, *, update_state: bool = False, training: bool = False
    ) -> torch.Tensor:
        """The bound (or estimate) in nats, with the training gradient.

        ``training=False`` evaluates at ``eval_alpha`` when it is set. ``scores`` is a
        score matrix, or the factors ``(g, h, a, b)`` of a separable critic's scores, which
        are evaluated blockwise (:func:`sk_mlcpc.blockwise.blockwise_bound`).
        """
        objective = get_objective(self.objective)
        options = {}
        if objective.takes_alpha:
            options["alpha"] = (
                self.alpha if training or self.eval_alpha is None else self.eval_alpha
            )
        ceiling = None if training else self.score_ceiling
        # Half-precision scores (autocast) are evaluated and reported in float32: a bf16
        # estimate of 10 nats would otherwise be rounded to a multiple of 1/16.
        if isinstance(scores, tuple):
            g, h, a, b = (None if part is None else _at_least_fp32(part) for part in scores)

            def bound(**options):
                return blockwise_bound(
                    self.objective,
                    g,
                    h,
                    a=a,
                    b=b,
                    block_size=self.block_size,
                    max_score=ceiling,
                    **options,
                )

        else:
            scores = _at_least_fp32(scores)
            if ceiling is not None:
                scores = scores.clamp(max=ceiling)
            if not objective.stateful:  # a training step's usual case, kept short
                return self.bound(scores, layout=self.layout, **options)

            def bound(**options):
                return self.bound(scores, layout=self.layout, **options)

        if not objective.stateful:
            return bound(**options)
        # The carried state (MINE's moving log-partition) lives in one buffer; NaN until
        # the first step, which starts the average.
        previous = self.log_partition_ema
        value, new_state = bound(**options, **{objective.state: previous})
        if update_state:
            self.log_partition_ema = new_state.to(previous.dtype)
        return value

    def forward(self, scores: torch.Tensor, training: bool = True) -> torch.Tensor:
        return -self.estimate(scores, update_state=training, training=training)


def scheduled_alpha(kind: str, start: float, end: float, epoch: int, n_epochs: int) -> float:
    """Alpha at ``epoch`` (0-based) of a curriculum from ``start`` to ``end``.

    ``"geometric"``: ``start * (end / start) ** t``; ``"cosine"``:
    ``end + (start - end) * (1 + cos(pi t)) / 2``; ``"constant"``: ``start``; with
    ``t = epoch / (n_epochs - 1)`` clipped to ``[0, 1]`` (``t = 1`` when ``n_epochs == 1``).
    The first epoch uses ``start`` and the last ``end``.
    """
    if start <= 0 or end <= 0:
        raise ValueError(f"alpha values must be positive, got start={start}, end={end}.")
    t = 1.0 if n_epochs <= 1 else min(max(epoch / (n_epochs - 1), 0.0), 1.0)
    if kind == "geometric":
        return float(start * (end / start) ** t)
    if kind == "cosine":
        return float(end + (start - end) * (1.0 + math.cos(math.pi * t)) / 2.0)
    if kind == "constant":
        return float(start)
    raise ValueError(
        f"Unknown alpha schedule {kind!r}; choose 'geometric', 'cosine' or 'constant'."
    )


class AlphaSchedule(Callback):
    """Set the criterion's ``alpha`` at the start of each epoch (the paper's curriculum).

    The ML-CPC paper's CIFAR runs lower alpha geometrically from 10 to 0.1 over 200
    epochs: a large alpha early weights the positives heavily (a low-variance, CPC-like
    signal); a small alpha late lifts the cap. The value used is recorded as ``alpha`` in
    the history.

    Parameters
    ----------
    kind : {"geometric", "cosine", "constant"}
        Shape of the curriculum, see :func:`scheduled_alpha`.
    start, end : float
        Alpha in the first and in the last epoch.
    n_epochs : int
        Length of the curriculum; later epochs keep ``end``.
    """

    def __init__(self, kind: str, start: float, end: float, n_epochs: int) -> None:
        self.kind = kind
        self.start = start
        self.end = end
        self.n_epochs = n_epochs

    def initialize(self):
        # Fail at construction of the net, not at the first epoch.
        scheduled_alpha(self.kind, self.start, self.end, 0, self.n_epochs)
        return self

    def on_epoch_begin(self, net, **kwargs):
        epoch = len(net.history) - 1  # skorch has appended this epoch's row already
        alpha = scheduled_alpha(self.kind, self.start, self.end, epoch, self.n_epochs)
        net.criterion_.alpha = alpha
        net.history.record("alpha", alpha)


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
    transfer) when a callback asks for them (:class:`DivergenceGuard` checks every
    ``check_every`` steps) and at the end of the pass, before ``on_epoch_end``: epoch-level
    callbacks (scoring, early stopping, logging) see floats as before. Where a read costs
    nothing (the CPU, where the guard checks every step) the loss is recorded as a float
    at once. Callbacks with an ``on_pass_end(net, training)`` method are called at the end
    of each pass.

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


class DivergenceGuard(Callback):
    """Catch a diverging step, without a host sync per step: raise, or restore and slow down.

    After every training step the finiteness of its gradients is computed (on an
    accelerator one fused norm per tensor, kept on the device; on the CPU one sum per
    tensor, read at once); every ``check_every`` steps and at the end of each pass the
    flags and the recorded losses are read in one transfer (see
    :class:`HostSyncFreeLoop`). A non-finite gradient or loss, or a loss above
    ``max_loss``, is a divergence. With ``on_divergence="raise"`` a
    :class:`DivergenceError` naming the first bad batch, with advice, is raised. With
    ``"restore"`` the module, criterion and optimiser are restored to the last good state
    (the end of the last epoch without trouble, or the start of training), the learning
    rate is halved (the n-th restore leaves ``lr0 / 2^n``, whether the faults come in one
    epoch or in several), the batch records from the first bad batch on are dropped (so
    the epoch's loss averages good steps only) and training goes on; after
    ``max_restores`` restores it raises. Each event is recorded in the history as
    ``divergence`` (a list of dicts per epoch). Steps taken between the bad one and the
    check are discarded by the restore; on the CPU the check runs after every step.

    A loss that ignores the scale of what the module outputs (cosine similarities of
    normalised projections, as in :class:`~sk_mlcpc.ContrastiveEncoder`) never becomes
    non-finite when training diverges: the weights, and the representation with them,
    grow without bound instead (outputs of 1e11 and more). A module that sets an
    ``output_scale`` tensor during a training forward pass (the root mean square of the
    representation it returns, see
    :class:`~sk_mlcpc._engine.encoder_net.ViewPairModule`) has it checked with the
    gradients, and, if it has a ``measure_output_scale(**inputs)`` method, once more on
    the last batch at the end of each training pass (the last step's update is seen by
    no training forward pass): above ``max_output_growth`` times its value at the first
    step of the fit (or times 1, when that is smaller), it is a divergence too. Such a
    scale only grows (the loss gives it no reason to shrink), so a restore must go back
    to a state well below the limit: an epoch's end is kept as the state to restore only
    while the scale is under a tenth of the limit.

    Restores never pass unnoticed: after training, :meth:`check_fit` lists them (the
    estimators count them in ``n_restores_`` and warn) and raises when every epoch was
    rolled back. A divergence in a validation pass is raised even with ``"restore"``
    (there is no step to roll back), and advice never suggests ``"restore"`` to a guard
    that has it on.

    Parameters
    ----------
    max_loss : float, default=1e4
        A loss above this (a bound below ``-max_loss`` nats) counts as divergence too: a
        lower bound that far below zero only arises from a critic whose scores exploded.
    on_divergence : {"raise", "restore"}, default="raise"
        What to do on a divergence.
    max_restores : int, default=5
        Restores allowed in one fit before giving up with a :class:`DivergenceError`.
    check_every : int or None, default=None
        Steps between host reads of the flags. ``None``: every step on the CPU (where a
        read costs nothing), every 64 steps on an accelerator.
    max_output_growth : float, default=1e3
        Growth of the module's ``output_scale`` that counts as divergence (modules that
        set none are not checked). Healthy fits stay far below: a factor of about 3 after
        150 epochs of :class:`~sk_mlcpc.ContrastiveEncoder` on the digits at its default
        learning rate, about 80 after 10 epochs at 30 times that rate.

    Examples
    --------
    >>> from sk_mlcpc._engine.net import DivergenceGuard
    >>> DivergenceGuard(on_divergence="restore", check_every=16).initialize().n_restores_
    0
    """

    def __init__(
        self,
        max_loss: float = 1e4,
        on_divergence: str = "raise",
        max_restores: int = 5,
        check_every: int | None = None,
        max_output_growth: float = 1e3,
    ) -> None:
        self.max_loss = max_loss
        self.on_divergence = on_divergence
        self.max_restores = max_restores
        self.check_every = check_every
        self.max_output_growth = max_output_growth

    def initialize(self):
        if self.on_divergence not in ("raise", "restore"):
            raise ValueError(
                f"on_divergence must be 'raise' or 'restore', got {self.on_divergence!r}."
            )
        if self.check_every is not None and (
            not isinstance(self.check_every, int) or self.check_every < 1
        ):
            raise ValueError(
                f"check_every must be a positive integer or None, got {self.check_every!r}."
            )
        self._snapshot = None
        self._restores_since_snapshot = 0
        self._reset_pending()
        self._parameters: list[nn.Parameter] | None = None  # set at each epoch's start
        self._interval: int | None = None
        self.n_restores_ = 0
        return self

    def _reset_pending(self) -> None:
        self._gradient_flags: list[tuple[int, torch.Tensor]] = []
        self._output_scales: list[tuple[int, torch.Tensor]] = []
        self._first_unchecked = 0
        self._steps_since_check = 0

    # The snapshot and the pending flags hold tensors: not part of a pickled model.
    def __getstate__(self):
        state = self.__dict__.copy()
        state["_snapshot"] = None
        state["_gradient_flags"] = []
        state["_output_scales"] = []
        state["_reference_scale"] = None
        state["_last_batch"] = None
        state["_parameters"] = None
        state["_interval"] = None
        return state

    def _take_snapshot(self, net) -> None:
        # The snapshot's optimiser state holds the learning rate of its time, halvings
        # already applied; restores count from it (see _restore).
        self._restores_since_snapshot = 0
        if self.on_divergence != "restore":
            # Only a restore reads it: copying the module and the optimiser's moments
            # every epoch would cost ~1% of a default fit for nothing.
            self._snapshot = None
            return
        self._snapshot = {
            "module": copy.deepcopy(net.module_.state_dict()),
            "criterion": copy.deepcopy(net.criterion_.state_dict()),
            "optimizer": copy.deepcopy(net.optimizer_.state_dict()),
        }

    def on_train_begin(self, net, **kwargs):
        self._reset_pending()
        self._reference_scale: torch.Tensor | None = None
        self._last_scale: tuple[float, float] | None = None  # (scale, limit), read last
        self._take_snapshot(net)

    def on_epoch_begin(self, net, **kwargs):
        self._reset_pending()
        # Fixed during an epoch, and costly to look up every step (a walk over the
        # modules' parameters: ~40 us a step on the default critic).
        self._parameters = [parameter for _, parameter in net.get_all_learnable_params()]
        self._interval = self.check_every or _default_check_every(_training_device(net))

    def _flag_gradients(self, net) -> None:
        """Keep the finiteness of the step's gradients (after the optimiser's step).

        The optimiser does not change ``.grad`` and the next step's ``zero_grad`` has not
        run yet, so these are the gradients the step used. Read right after the optimiser
        read them, they are still in the cache: on the default critic on the CPU, reducing
        them cost half what it cost before the step (measured in the training loop).
        """
        if getattr(net, "precision", "fp32") == "fp16":
            # The gradient scaler skips steps whose gradients overflow and lowers the
            # scale: an infinite gradient there is routine, not divergence.
            return
        parameters = self.__dict__.get("_parameters")
        if parameters is None:  # a step outside an epoch
            parameters = [parameter for _, parameter in net.get_all_learnable_params()]
        gradients = [p.grad for p in parameters if p.grad is not None]
        if not gradients:
            return
        # A sum is non-finite when any of its terms is (NaN and infinities carry through;
        # one that overflows counts as non-finite too), so one reduction per tensor tells
        # whether any gradient element is non-finite (a finiteness test per tensor costs
        # ~0.8 ms a step on the default critic).
        cache = net.__dict__.get("_pass_cache")
        if cache is not None and cache.host_losses:
            # On the CPU each tensor's sum, read at once (a read costs nothing there):
            # half the cost of the fused norms below, in the training loop (they square
            # every element and stack their results), and no flags to stack later.
            total = sum([gradient.sum().item() for gradient in gradients])
        else:
            # On an accelerator one fused kernel for all the tensors, left on the queue.
            total = torch.stack(torch._foreach_norm(gradients)).sum()
        self._gradient_flags.append((len(_current_batches(net)) - 1, total))

    def _record_scale(self, net, index: int) -> None:
        scale = getattr(net.module_, "output_scale", None)
        if isinstance(scale, torch.Tensor):
            net.module_.output_scale = None  # read once: the next forward sets it again
            if self._reference_scale is None:
                self._reference_scale = scale
            self._output_scales.append((index, scale))

    def on_batch_end(self, net, batch=None, training=False, **kwargs):
        # Everything per step happens here, in one hook: the module's output scale is
        # the one its training forward pass left (no forward pass runs between the
        # gradients and the end of the batch), and the batch is kept for the scale's
        # measurement at the end of the pass.
        if training:
            self._last_batch = batch
            self._record_scale(net, len(_current_batches(net)) - 1)
            self._flag_gradients(net)
        self._steps_since_check += 1
        interval = self.__dict__.get("_interval")
        if interval is None:
            interval = self.check_every or _default_check_every(_training_device(net))
        if self._steps_since_check >= interval:
            self._check(net, training)

    def on_pass_end(self, net, training=False, **kwargs):
        batch, self._last_batch = getattr(self, "_last_batch", None), None
        measure = getattr(net.module_, "measure_output_scale", None)
        if training and measure is not None and batch is not None:
            # The last step's update is seen by no training forward pass: measure the
            # scale it left on the last batch, before the held-out pass runs on it.
            inputs = batch[0] if isinstance(batch, tuple | list) else batch
            measure(**inputs) if isinstance(inputs, dict) else measure(inputs)
            self._record_scale(net, len(_current_batches(net)) - 1)
        self._check(net, training)

    def on_epoch_end(self, net, **kwargs):
        if net.history[-1].get("divergence"):
            return
        scale = getattr(self, "_last_scale", None)
        if scale is None or scale[0] <= scale[1] / 10:
            self._take_snapshot(net)

    def _check(self, net, training: bool) -> None:
        self._steps_since_check = 0
        batches = _current_batches(net)
        if self._one_good_step(batches, training):
            return
        settle_batch_records(batches)
        bad_gradients, bad_scales = self._read_flags()
        key = "train_loss" if training else "valid_loss"
        # A flag may concern a batch already checked (the scale measured at the end of
        # the pass belongs to the last batch).
        first = min([self._first_unchecked, *bad_gradients, *bad_scales])
        for index in range(first, len(batches)):
            loss = batches[index].get(key)
            if loss is None:
                continue
            reasons = ["a non-finite gradient"] if index in bad_gradients else []
            if self._bad_loss(loss):
                reasons.append(f"a {key.replace('_', ' ')} of {loss}")
            if index in bad_scales:
                reasons.append(bad_scales[index])
            if reasons:
                position = sum(key in record for record in batches[:index])
                reason = " and ".join(reasons)
                if self.on_divergence == "raise" or not training:
                    self._raise(net, reason, training=training, batch=position + 1)
                self._restore(net, reason, first_bad=index, position=position)
                break
        self._first_unchecked = len(batches)

    def _bad_loss(self, loss: float) -> bool:
        return not math.isfinite(loss) or loss > self.max_loss

    def _one_good_step(self, batches: list[dict], training: bool) -> bool:
        """Whether the only unchecked step is fine, read without any tensor (the CPU).

        The common case of a check after every step: one new record, its loss and its
        gradient flag already floats, no output scale pending. Then it is checked here
        and marked checked; anything else (a problem included) takes the full path.
        """
        flags = self._gradient_flags
        if self._output_scales or len(batches) != self._first_unchecked + 1 or len(flags) > 1:
            return False
        loss = batches[-1].get("train_loss" if training else "valid_loss")
        if loss is not None and (type(loss) is not float or self._bad_loss(loss)):
            return False  # a tensor to settle, or a bad loss
        if flags:
            index, flag = flags[0]
            if index != len(batches) - 1 or not (type(flag) is float and math.isfinite(flag)):
                return False
        self._gradient_flags = []
        self._first_unchecked = len(batches)
        return True

    def _read_flags(self) -> tuple[set[int], dict[int, str]]:
        """The batches with non-finite gradients, and those whose output grew too much.

        Every pending flag and scale is read in one transfer from the device.
        """
        flags, scales = self._gradient_flags, self._output_scales
        self._gradient_flags, self._output_scales = [], []
        pending = [flag for _, flag in flags] + [scale for _, scale in scales]
        if not pending:
            return set(), {}
        if scales:
            pending.append(self._reference_scale)
        values = _read_values(pending)
        norms, measured = values[: len(flags)], values[len(flags) :]
        bad_gradients = {
            index for (index, _), norm in zip(flags, norms, strict=True) if not math.isfinite(norm)
        }
        bad_scales: dict[int, str] = {}
        if scales:
            reference = measured.pop()
            limit = self.max_output_growth * max(reference, 1.0)
            self._last_scale = (measured[-1], limit)
            for (index, _), value in zip(scales, measured, strict=True):
                if not value <= limit:  # NaN too
                    bad_scales[index] = (
                        f"outputs grown to a root mean square of {value:.3g}, over "
                        f"{self.max_output_growth:g} times their {reference:.3g} at the start "
                        "of training"
                    )
        return bad_gradients, bad_scales

    def _restore(self, net, reason: str, *, first_bad: int, position: int) -> None:
        self.n_restores_ += 1
        if self.n_restores_ > self.max_restores:
            self._raise(
                net,
                f"{reason} after {self.max_restores} restores",
                training=True,
                batch=position + 1,
            )
        net.module_.load_state_dict(self._snapshot["module"])
        net.criterion_.load_state_dict(self._snapshot["criterion"])
        # A copy: Optimizer.load_state_dict keeps the given state tensors (they are on the
        # right device already) and the next steps update them in place, so loading the
        # snapshot itself would let a later bad step poison it (NaN moments), and every
        # later restore would bring the NaN back.
        net.optimizer_.load_state_dict(copy.deepcopy(self._snapshot["optimizer"]))
        # The snapshot's rate already carries the halvings of earlier restores (a clean
        # epoch after a restore snapshots the halved rate): halve it once for each
        # restore since the snapshot, so the n-th restore of a fit leaves lr0 / 2^n.
        self._restores_since_snapshot += 1
        new_lrs = []
        for group in net.optimizer_.param_groups:
            group["lr"] = group["lr"] / 2.0**self._restores_since_snapshot
            new_lrs.append(group["lr"])
        batches = net.history[-1]["batches"]
        discarded = len(batches) - first_bad
        del batches[first_bad:]
        events = net.history[-1].get("divergence", [])
        events.append(
            {
                "batch": position,
                "reason": reason,
                "learning_rate": min(new_lrs),
                "discarded_batches": discarded,
            }
        )
        net.history.record("divergence", events)

    _diverged = "Training"

    def _restore_hint(self) -> str:
        """The end of an advice: suggest restores only to a fit that does not make them."""
        if self.on_divergence == "restore":
            return "."
        return ", or pass on_divergence='restore' to roll back and halve the learning rate."

    def _advice(self, net) -> str:
        return (
            f"Lower learning_rate (currently {net.lr}), standardise the inputs "
            "(keep the estimator's preprocessing on), use a smaller network, or choose a "
            "lower-variance objective ('ml_cpc' or 'cpc' rather than 'nwj'/'dv')"
            + self._restore_hint()
        )

    def _raise(self, net, reason: str, *, training: bool, batch: int) -> None:
        phase = "training" if training else "validation"
        advice = self._scale_advice(net) if "outputs grown" in reason else self._advice(net)
        if not training and self.on_divergence == "restore":
            # Restores repair training steps; a held-out pass has nothing to roll back,
            # and advising the option already on would send the user in a circle.
            advice = (
                "on_divergence='restore' is on, but it repairs training steps only: the "
                "weights of a training pass without a fault give a non-finite or "
                f"exploding held-out loss. {advice}"
            )
        raise DivergenceError(
            f"{self._diverged} diverged: {reason} at {phase} batch {batch} of epoch "
            f"{len(net.history)}. {advice}"
        )

    def _scale_advice(self, net) -> str:
        return (
            "The loss compares normalised projections and does not see the scale of the "
            "outputs, so a learning rate too large for the network inflates them without "
            f"any loss going wrong. Lower learning_rate (currently {net.lr}) or set "
            "weight_decay (1e-3 to 1e-2) to keep the weights' scale in check" + self._restore_hint()
        )

    def check_fit(self, net, *, first_epoch: int = 0) -> list[tuple[int, dict]]:
        """The restores of the epochs from ``first_epoch`` on; raise if all were rolled back.

        An epoch with a restore ends on weights the guard rolled back to; when every
        epoch of a fit had one, no epoch finished cleanly and what the fit returns may be
        the state it started from (an untrained network, bit for bit), so that is a
        :class:`DivergenceError`, with the advice of the last restore.

        Parameters
        ----------
        net : ContrastiveNet
            The net this guard watched, after training.
        first_epoch : int, default=0
            Index in ``net.history`` of the fit's first epoch (a warm start continues a
            history).

        Returns
        -------
        restores : list of (int, dict)
            Each restore, in order, as its epoch (1-based) and its ``divergence`` record.
        """
        rows = list(net.history)[first_epoch:]
        restores = [
            (epoch, event)
            for epoch, row in enumerate(rows, start=first_epoch + 1)
            for event in row.get("divergence") or []
        ]
        if rows and all(row.get("divergence") for row in rows):
            reason = restores[-1][1]["reason"]
            advice = self._scale_advice(net) if "outputs grown" in reason else self._advice(net)
            raise DivergenceError(
                f"{self._diverged} diverged in every epoch of the fit: {len(restores)} "
                f"restore(s) in {len(rows)} epoch(s), the last for {reason}. No epoch "
                "finished cleanly: each rollback went back to the weights this fit started "
                f"from, so the model would be returned barely trained or untrained. {advice}"
            )
        return restores


class QuietPrintLog(PrintLog):
    """skorch's ``PrintLog``, which builds no table when it would print nothing.

    skorch formats the epoch's row (``tabulate``) at every epoch's end and only then
    decides, from ``verbose``, not to print it: about 0.7 ms an epoch for nothing at
    ``verbose=0``. A sink other than ``print`` gets every row, as in skorch.
    """

    def on_epoch_end(self, net, **kwargs):
        if self.sink is print and not net.verbose:
            return None
        return super().on_epoch_end(net, **kwargs)


class MutualInformationLog(Callback):
    """Record ``train_mi`` and ``valid_mi`` (nats, = minus the loss) in the history."""

    def on_epoch_end(self, net, **kwargs):
        row = net.history[-1]
        if "train_loss" in row:
            net.history.record("train_mi", -row["train_loss"])
        if "valid_loss" in row:
            net.history.record("valid_mi", -row["valid_loss"])


class ContrastiveNet(HostSyncFreeLoop, NeuralNet):
    """skorch net training a critic to maximise a contrastive bound.

    ``module`` is a critic (``forward(x, y) -> scores``); ``criterion`` a
    :class:`BoundLoss`. Batches are dicts ``{"x": ..., "y": ...}`` sliced on the device by
    :class:`TensorBatches`. Extra parameters: ``eval_batch_size`` (validation batches),
    ``shuffle_seed`` (training order) and ``eval_seed`` (fixed validation order).
    """

    def __init__(
        self,
        module,
        *args,
        eval_batch_size: int | None = None,
        shuffle_seed: int = 0,
        eval_seed: int = 0,
        blockwise: bool = False,
        chunk_pairs: bool = False,
        precision: str = "fp32",
        **kwargs,
    ) -> None:
        super().__init__(module, *args, **kwargs)
        # The estimators pass a module instance: ``module`` is ``module_``, on the training
        # device. skorch maps only the attributes named here to the CPU when unpickling
        # without CUDA; everything else is plain pickle, which refuses CUDA tensors.
        self.cuda_dependent_attributes_ = [*self.cuda_dependent_attributes_, "module"]
        self.eval_batch_size = eval_batch_size
        self.shuffle_seed = shuffle_seed
        self.eval_seed = eval_seed
        self.blockwise = blockwise
        self.chunk_pairs = chunk_pairs
        self.precision = precision

    @property
    def _default_callbacks(self):
        return [
            (name, QuietPrintLog() if name == "print_log" else callback)
            for name, callback in super()._default_callbacks
        ]

    def _autocast(self):
        if self.precision == "fp32":
            return contextlib.nullcontext()
        if self.precision not in PRECISIONS:
            raise ValueError(
                f"precision must be one of {tuple(PRECISIONS)}, got {self.precision!r}."
            )
        device_type = torch.device(self.device).type
        return torch.autocast(device_type=device_type, dtype=PRECISIONS[self.precision])

    def get_params_for_optimizer(self, prefix, named_parameters):
        args, kwargs = super().get_params_for_optimizer(prefix, named_parameters)
        if (
            self.precision == "fp16"
            and prefix == "optimizer"
            and self.optimizer in (torch.optim.Adam, torch.optim.AdamW)
            and "fused" not in kwargs
        ):
            # The gradient scaler reads its overflow flag on the host before every step,
            # unless the optimiser takes the flag itself and skips on the device: the
            # fused Adam kernels do.
            kwargs["fused"] = True
        return args, kwargs

    def initialize(self):
        super().initialize()
        # fp16 gradients underflow without loss scaling; bf16 has fp32's exponent range.
        self.grad_scaler_ = torch.amp.GradScaler(
            torch.device(self.device).type, enabled=self.precision == "fp16"
        )
        return self

    def torch_compile(self, module, name):
        """Compile the network (``compile=True``), never the criterion.

        The criterion's ``alpha`` is a Python float that an alpha schedule changes every
        epoch, and the compiler specialises on it: compiling the bound would recompile it
        every epoch, and then give up and run eagerly.
        """
        if name == "criterion":
            return module
        return super().torch_compile(module, name)

    def initialize_module(self):
        self.__dict__.pop("_separable_factors", None)  # built for the previous module
        return super().initialize_module()

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_separable_factors", None)  # a cache (possibly compiled): rebuilt
        return state

    def separable_factors(self, x: torch.Tensor, y: torch.Tensor):
        """The critic's factors ``(g, h, a, b)`` (see :func:`~sk_mlcpc.blockwise.separable_parts`).

        With ``compile=True`` their computation is compiled too: it does not go through
        the critic's ``forward``, which is all that compiling ``module_`` covers.
        """
        factors = self.__dict__.get("_separable_factors")
        if factors is None:
            critic = getattr(self.module_, "_orig_mod", self.module_)
            factors = functools.partial(separable_parts, critic)
            if self.compile:
                factors = torch.compile(factors, **self.get_params_for("compile"))
            self._separable_factors = factors
        return factors(x, y)

    def infer(self, x, **fit_params):
        """Scores of a batch; with ``blockwise``, the separable factors ``(g, h, a, b)``.

        The network runs under autocast for ``precision="bf16"``/``"fp16"``; the bounds
        accumulate half-precision scores in float32. With ``blockwise`` the criterion
        evaluates the bound in tiles (:mod:`sk_mlcpc.blockwise`) and the ``n x n`` score
        matrix is never stored. With ``chunk_pairs`` (joint critics) the score matrix is
        computed :data:`PAIRS_PER_CHUNK` pairs at a time with activation checkpointing
        (:func:`~sk_mlcpc.blockwise.chunked_scores`): the critic's activations are kept for
        one chunk, not for all ``n x n`` pairs.
        """
        if self.precision == "fp32":
            return self._infer(x, **fit_params)
        with self._autocast():
            return self._infer(x, **fit_params)

    def _infer(self, x, **fit_params):
        if self.blockwise and isinstance(x, dict) and not fit_params:
            return self.separable_factors(x["x"], x["y"])
        if self.chunk_pairs and isinstance(x, dict) and not fit_params:
            rows = max(1, PAIRS_PER_CHUNK // len(x["y"]))
            return chunked_scores(self.module_, x["x"], x["y"], chunk_size=rows)
        if type(x) is dict and not fit_params and self._on_device(x):
            # skorch's infer would convert and move each tensor (to_tensor), a no-op
            # for the package's batches, which are sliced on the training device.
            return self.module_(**x)
        return super().infer(x, **fit_params)

    def _on_device(self, inputs: dict) -> bool:
        """Whether ``inputs`` are tensors on ``self.device`` (where skorch would move them)."""
        cache = self.__dict__.get("_pass_cache")
        device = cache.device if cache is not None else _as_device(self.device)
        return all(
            isinstance(value, torch.Tensor) and (device is None or value.device == device)
            for value in inputs.values()
        )

    def train_step_single(self, batch, **fit_params):
        if self.precision != "fp16":
            return super().train_step_single(batch, **fit_params)
        self._set_training(True)
        Xi, yi = unpack_data(batch)
        y_pred = self.infer(Xi, **fit_params)
        loss = self.get_loss(y_pred, yi, X=Xi, training=True)
        self.grad_scaler_.scale(loss).backward()
        return {"loss": loss, "y_pred": y_pred}

    def train_step(self, batch, **fit_params):
        """One optimisation step; with ``precision="fp16"`` through a gradient scaler.

        The scaler multiplies the loss before ``backward``, unscales the gradients before
        the callbacks see them (so gradient checks and clipping see true values), and
        skips a step whose scaled gradients overflowed, lowering the scale.

        With one optimiser whose ``step`` needs no closure (Adam, AdamW, SGD), the step is
        skorch's without the closure: zero the gradients, compute the loss and its
        gradients (with gradients enabled, as the optimiser's closure call would),
        notify ``on_grad_computed``, step. Others (LBFGS re-evaluates the loss) take
        skorch's path.
        """
        if self.precision != "fp16":
            optimizer = self.__dict__.get("optimizer_")
            if self._optimizers != ["optimizer"] or type(optimizer) not in _CLOSURE_FREE:
                return super().train_step(batch, **fit_params)
            optimizer.zero_grad()
            with torch.enable_grad():
                step = self.train_step_single(batch, **fit_params)
            cache = self.__dict__.get("_pass_cache")
            if cache is None or cache.grad_computed_heard:
                self.notify(
                    "on_grad_computed",
                    named_parameters=TeeGenerator(self.get_all_learnable_params()),
                    batch=batch,
                    training=True,
                )
            optimizer.step()
            return step
        self._zero_grad_optimizer()
        step = self.train_step_single(batch, **fit_params)
        self.grad_scaler_.unscale_(self.optimizer_)
        self.notify(
            "on_grad_computed",
            named_parameters=TeeGenerator(self.get_all_learnable_params()),
            batch=batch,
            training=True,
        )
        self.grad_scaler_.step(self.optimizer_)
        self.grad_scaler_.update()
        return step

    def epoch_generator(self) -> torch.Generator:
        """A generator seeded by ``shuffle_seed`` and the number of epochs begun.

        skorch builds the training iterator once per ``fit``/``partial_fit`` call and
        iterates it every epoch; seeding each pass from the epoch count makes an epoch's
        batches depend on its index only, so that a warm-started or resumed fit draws the
        same batches as an uninterrupted one. The net holds no generator object, and
        stays picklable.
        """
        return torch.Generator().manual_seed(int(self.shuffle_seed) + len(self.history))

    def get_iterator(self, dataset, training=False):
        if training:
            return TensorBatches(
                dataset, self.batch_size, shuffle=True, generator_factory=self.epoch_generator
            )
        batch_size = self.eval_batch_size or self.batch_size
        return TensorBatches(dataset, batch_size, shuffle=False, seed=self.eval_seed)

    def get_loss(self, y_pred, y_true, X=None, training=False):
        return self.criterion_(y_pred, training=training)

    def batch_estimates(self, dataset: PairedTensorDataset, batch_size: int) -> np.ndarray:
        """The bound on each full evaluation batch of ``dataset`` (fixed order), in nats."""
        self.check_is_fitted()
        self._set_training(False)
        values = []
        with torch.no_grad():
            for batch, _ in TensorBatches(dataset, batch_size, shuffle=False, seed=self.eval_seed):
                scores = self.infer(batch)
                values.append(self.criterion_.estimate(scores))
        if not values:
            return np.empty(0)
        return torch.stack(values).double().cpu().numpy()
