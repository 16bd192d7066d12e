"""The training engine: a skorch ``NeuralNet`` whose loss is a negated contrastive bound.

Public estimators build a :class:`ContrastiveNet` in ``fit`` and keep it as ``net_``; the
loop, callbacks, progress bar and history are skorch's. The engine is split by concern,
one module each, and this module assembles the net from them:

* :mod:`sk_mlcpc._engine.batches`: :class:`PairedTensorDataset` and
  :class:`TensorBatches`: the training data lives as tensors on the training device and
  a batch is a slice of a shuffled index, not a per-sample ``__getitem__`` plus
  collation;
* :mod:`sk_mlcpc._engine.loss`: :class:`BoundLoss`, the criterion, ``-bound(scores)``,
  which also carries MINE's moving average between steps;
* :mod:`sk_mlcpc._engine.alpha_schedule`: :class:`AlphaSchedule`, the alpha curriculum;
* :mod:`sk_mlcpc._engine.loop`: :class:`HostSyncFreeLoop`, a training pass with no host
  read per step;
* :mod:`sk_mlcpc._engine.divergence`: :class:`DivergenceGuard` (raise with advice on a
  non-finite loss, or roll back and report the restores) and :class:`DivergenceError`.

Here: :class:`ContrastiveNet` (precision, compilation, blockwise and chunked scoring,
the closure-free step) and its logging callbacks, :class:`MutualInformationLog`
(held-out MI in nats in ``history``) and :class:`QuietPrintLog`. Every name above is
importable from this module too, as it was before the split, so that importers and
pickled models keep working.
"""

from __future__ import annotations

import contextlib
import functools

import numpy as np
import torch
from skorch import NeuralNet
from skorch.callbacks import Callback, PrintLog
from skorch.dataset import unpack_data
from skorch.utils import TeeGenerator

# ``name as name``: a private helper that lived here before the split, re-exported under
# its old path (tests and the other nets import some of them from this module).
from sk_mlcpc._engine.alpha_schedule import AlphaSchedule, scheduled_alpha
from sk_mlcpc._engine.batches import PairedTensorDataset, SeededBatches, TensorBatches
from sk_mlcpc._engine.divergence import DivergenceError, DivergenceGuard
from sk_mlcpc._engine.loop import _BATCH_HOOKS as _BATCH_HOOKS
from sk_mlcpc._engine.loop import _TRAINING_MODE as _TRAINING_MODE
from sk_mlcpc._engine.loop import HostSyncFreeLoop, _as_device, settle_batch_records
from sk_mlcpc._engine.loop import _batch_len as _batch_len
from sk_mlcpc._engine.loop import _current_batches as _current_batches
from sk_mlcpc._engine.loop import _default_check_every as _default_check_every
from sk_mlcpc._engine.loop import _early_stopping_decided as _early_stopping_decided
from sk_mlcpc._engine.loop import _implements as _implements
from sk_mlcpc._engine.loop import _PassCache as _PassCache
from sk_mlcpc._engine.loop import _read_values as _read_values
from sk_mlcpc._engine.loop import _training_device as _training_device
from sk_mlcpc._engine.loss import BoundLoss
from sk_mlcpc._engine.loss import _at_least_fp32 as _at_least_fp32
from sk_mlcpc._math.blockwise import chunked_scores, separable_parts

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

#: ``precision`` names accepted by :class:`ContrastiveNet` and the estimators.
PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


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
    :class:`~sk_mlcpc._engine.loss.BoundLoss`. Batches are dicts ``{"x": ..., "y": ...}``
    sliced on the device by :class:`~sk_mlcpc._engine.batches.TensorBatches`. Extra
    parameters: ``eval_batch_size`` (validation batches), ``shuffle_seed`` (training
    order) and ``eval_seed`` (fixed validation order).
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
