"""Multi-process training with negatives from every process (Hugging Face ``accelerate``).

A contrastive bound gets better with the batch: CPC's cap is ``log n``, ML-CPC's grows
with ``n (n - 1)``. With ``W`` processes (GPUs, or CPU processes), each holding ``n / W``
rows of a global batch of ``n`` pairs, this module makes the bound see the *global*
batch: every process scores its rows against the rows of all processes, and the
gradient is the one a single process would compute on the whole batch.

* :func:`gather_with_grad` all-gathers a tensor along its first dimension, with a
  backward pass that sums the incoming gradient over the processes and returns this
  process's slice (gloo, NCCL, any backend with ``all_gather`` and ``all_reduce``).
* :class:`DistributedTensorBatches` shards every global batch: all processes draw the
  same permutation, and process ``r`` takes the ``r``-th of ``W`` equal parts of each
  global batch of ``batch_size`` rows. The global batches are those one process with
  ``batch_size`` rows per step draws.
* :class:`AcceleratedContrastiveNet` is :class:`~sk_mlcpc._engine.net.ContrastiveNet` with
  skorch's :class:`~skorch.hf.AccelerateMixin`: the critic is wrapped by ``accelerate``
  (``DistributedDataParallel`` across processes), batches are sharded, and the criterion
  receives the global scores (or, with ``blockwise=True``, the global separable factors).

Why the gradient is right
-------------------------
Every process computes the *same* scalar: the bound ``L`` of the global batch, from the
gathered tensors (factors ``g, h, a, b`` of a separable critic; or the score rows of a
joint critic, each process scoring its own rows against all columns). Let ``t_r`` be the
tensor that process ``r`` contributes and ``T = [t_0, ..., t_{W-1}]`` the gathered one.
The backward pass of the gather on process ``r`` receives ``dL/dT`` (the same on every
process, since they all hold the same ``L``), sums it over the ``W`` processes and keeps
rows ``r``: ``W dL/dt_r``. Back-propagating through the local network gives
``W (dL/dt_r)(dt_r/dtheta)``, the contribution of process ``r``'s rows, times ``W``.
``DistributedDataParallel`` then *averages* the parameter gradients over the processes::

    1/W sum_r W (dL/dt_r)(dt_r/dtheta) = sum_r (dL/dt_r)(dt_r/dtheta) = dL/dtheta,

the single-process gradient of the bound of the concatenated batch. (The same
sum-then-slice rule is also right when each process computes only its own share
``L_r`` of a loss with ``L = mean_r L_r``.) Because ``L`` is computed identically
everywhere, criterion state such as MINE's moving average and decisions such as early
stopping or divergence checks agree on all processes.

The bound's own work (the ``n x n`` tiles) is repeated on every process; the networks'
work is split. With ``W = 1`` (no distributed launch) everything reduces to
:class:`~sk_mlcpc._engine.net.ContrastiveNet`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from skorch.hf import AccelerateMixin
from torch import nn
from torch.nn.modules.utils import consume_prefix_in_state_dict_if_present

from sk_mlcpc._engine.net import ContrastiveNet, PairedTensorDataset, TensorBatches
from sk_mlcpc._math.blockwise import separable_parts

__all__ = [
    "AcceleratedContrastiveNet",
    "DistributedTensorBatches",
    "gather_with_grad",
    "world_info",
]


def world_info() -> tuple[int, int]:
    """``(rank, world_size)`` of the default process group; ``(0, 1)`` without one.

    Returns
    -------
    rank : int
    world_size : int

    Examples
    --------
    >>> from sk_mlcpc.distributed import world_info
    >>> world_info()  # a plain (not distributed) Python process
    (0, 1)
    """
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class _GatherWithGradient(torch.autograd.Function):
    """All-gather along dim 0; backward: all-reduce (sum) the gradient, keep own rows."""

    @staticmethod
    def forward(ctx: Any, tensor: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        rank, world_size = world_info()
        tensor = tensor.contiguous()
        parts = [torch.empty_like(tensor) for _ in range(world_size)]
        dist.all_gather(parts, tensor)
        ctx.rank = rank
        ctx.rows = tensor.shape[0]
        return torch.cat(parts)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        grad = grad.contiguous().clone()  # all_reduce works in place
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        start = ctx.rank * ctx.rows
        return grad[start : start + ctx.rows]


def gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate ``tensor`` from every process along dim 0, differentiably.

    The forward pass is an ``all_gather`` (process ``r``'s rows come ``r``-th). The
    backward pass sums the gradient of the gathered tensor over the processes and
    returns this process's rows of it, so that when every process computes the same
    loss ``L`` from the gathered tensor and the parameter gradients are then averaged
    over the ``W`` processes (``DistributedDataParallel``), the result is ``dL/dtheta``
    of one process holding all rows (see the module docstring). Without an initialised
    process group, or with one process, the tensor is returned as is.

    Every process must call it, in the same order, with tensors of the same shape,
    dtype and device type, and must run the backward pass through it too (it is a
    collective operation in both directions).

    Parameters
    ----------
    tensor : torch.Tensor of shape (n, ...)
        This process's rows.

    Returns
    -------
    gathered : torch.Tensor of shape (W * n, ...)

    Examples
    --------
    With one process the gather is the identity, gradient included:

    >>> import torch
    >>> from sk_mlcpc.distributed import gather_with_grad
    >>> x = torch.ones(3, 2, requires_grad=True)
    >>> gathered = gather_with_grad(x)
    >>> gathered.shape
    torch.Size([3, 2])
    >>> (2 * gathered).sum().backward()
    >>> x.grad
    tensor([[2., 2.],
            [2., 2.],
            [2., 2.]])
    """
    if world_info()[1] == 1:
        return tensor
    return _GatherWithGradient.apply(tensor)


class DistributedTensorBatches(TensorBatches):
    """This process's share of each global batch of a :class:`TensorBatches` pass.

    All processes build the same permutation (same seed, or generators seeded alike),
    cut it into global batches of ``batch_size`` rows (full batches only), and process
    ``rank`` takes rows ``[rank * k, (rank + 1) * k)`` of each, ``k = batch_size /
    world_size``. Concatenating the shares of processes ``0..W-1`` gives exactly the
    batch :class:`TensorBatches` yields with the same arguments.

    Parameters
    ----------
    dataset : PairedTensorDataset
        The full data, the same on every process.
    batch_size : int
        The *global* batch size, a multiple of ``world_size``.
    rank, world_size : int
        This process's index and the number of processes.
    **kwargs
        ``shuffle``, ``generator``, ``seed``, ``generator_factory`` as in
        :class:`TensorBatches`.

    Raises
    ------
    ValueError
        If ``batch_size`` is not a multiple of ``world_size``, or ``rank`` is outside
        ``[0, world_size)``.

    Examples
    --------
    >>> import torch
    >>> from sk_mlcpc._engine.net import PairedTensorDataset
    >>> from sk_mlcpc.distributed import DistributedTensorBatches
    >>> data = PairedTensorDataset(torch.arange(8.0)[:, None], torch.arange(8.0)[:, None])
    >>> shares = [
    ...     DistributedTensorBatches(data, 4, rank=r, world_size=2, shuffle=False, seed=0)
    ...     for r in (0, 1)
    ... ]
    >>> first = [next(iter(share))[0]["x"].ravel().tolist() for share in shares]
    >>> len(first[0]), len(first[1]), len(shares[0])
    (2, 2, 2)
    """

    def __init__(
        self,
        dataset: PairedTensorDataset,
        batch_size: int,
        *,
        rank: int,
        world_size: int,
        **kwargs: Any,
    ) -> None:
        super().__init__(dataset, batch_size, **kwargs)
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(
                f"Need 0 <= rank < world_size, got rank={rank}, world_size={world_size}."
            )
        if self.batch_size % world_size:
            raise ValueError(
                f"The global batch size ({self.batch_size}) must be a multiple of the number of "
                f"processes ({world_size}), so that every process holds the same number of rows."
            )
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.local_batch_size = self.batch_size // self.world_size

    def __iter__(self):
        order = self._order()
        offset = self.rank * self.local_batch_size
        for start in self._batch_starts():
            index = order[start + offset : start + offset + self.local_batch_size]
            yield {"x": self.dataset.x[index], "y": self.dataset.y[index]}, None


class _CriticForward(nn.Module):
    """The module ``accelerate`` wraps: the critic's scores, or its separable factors.

    ``DistributedDataParallel`` synchronises gradients only for computations that go
    through its ``forward``; the factors ``(g, h, a, b)`` are not the critic's
    ``forward``, so this wrapper exposes them as ``forward(x, y, parts=True)``.
    """

    def __init__(self, critic: nn.Module) -> None:
        super().__init__()
        self.critic = critic

    def forward(self, x: torch.Tensor, y: torch.Tensor, parts: bool = False):
        if parts:
            return separable_parts(self.critic, x, y)
        return self.critic(x, y)


def _silent(*args: Any, **kwargs: Any) -> None:
    return None


def _has_trainable_parameters(module: nn.Module) -> bool:
    return any(parameter.requires_grad for parameter in module.parameters())


class AcceleratedContrastiveNet(AccelerateMixin, ContrastiveNet):
    """:class:`~sk_mlcpc._engine.net.ContrastiveNet` trained on several processes.

    Launch the training script on ``W`` processes (``accelerate launch`` or ``torchrun
    --nproc_per_node W``); each process builds the same net, data and seeds and calls
    ``fit``. ``batch_size`` and ``eval_batch_size`` are *global*: each process holds
    ``batch_size / W`` rows of a step (a different share on each process), and the
    criterion sees the bound of all ``batch_size`` rows, so its cap, ``alpha="auto"``
    and its value are those of a single process with ``batch_size`` rows. Gradients
    equal that process's gradient (see :mod:`sk_mlcpc.distributed`).

    Parameters
    ----------
    module : torch.nn.Module
        A critic from :mod:`sk_mlcpc.critics` (``forward(x, y) -> scores``).
    *args, **kwargs
        As for :class:`~sk_mlcpc._engine.net.ContrastiveNet` (``criterion``,
        ``batch_size``, ``eval_batch_size``, ``blockwise``, ...).
    accelerator : accelerate.Accelerator
        The process's accelerator. On a CPU-only machine pass ``Accelerator(cpu=True)``:
        otherwise accelerate 1.x does not set up multi-process CPU training.
    device : None, default=None
        Device placement is left to the accelerator.
    unwrap_after_train : bool, default=True
        Unwrap the critic after training (so that ``module_`` is the plain critic and
        the net pickles).

    Notes
    -----
    * ``blockwise=True`` (separable critics): every process gathers the factors
      ``g(x), h(y), a(x), b(y)`` of the global batch (``O(n d)`` numbers) and evaluates
      the bound tile by tile. Otherwise each process scores its rows against the
      gathered ``y`` of all processes (any critic, joint ones included) and the score
      rows are gathered into the global ``n x n`` matrix.
    * ``fit``, ``batch_estimates`` and validation are collective: call them on every
      process. The values (losses, history, estimates) are the same on all processes.
    * A pickled net drops its accelerator and records the critic's device instead; it
      evaluates on one process afterwards. To train it again, set ``net.accelerator``
      and ``net.device = None`` first.

    Examples
    --------
    One process (a plain ``python`` run) is a world of size 1:

    >>> import torch
    >>> from accelerate import Accelerator
    >>> from sk_mlcpc._engine.net import BoundLoss, PairedTensorDataset
    >>> from sk_mlcpc.critics import SeparableCritic
    >>> from sk_mlcpc.distributed import AcceleratedContrastiveNet
    >>> _ = torch.manual_seed(0)
    >>> x = torch.randn(256, 2)
    >>> data = PairedTensorDataset(x, x + 0.1 * torch.randn(256, 2))
    >>> net = AcceleratedContrastiveNet(
    ...     SeparableCritic(2, 2, embedding_dim=8, hidden_layer_sizes=(16,)),
    ...     criterion=BoundLoss, criterion__objective="ml_cpc", criterion__alpha=1.0,
    ...     batch_size=64, max_epochs=2, train_split=None, blockwise=True,
    ...     accelerator=Accelerator(cpu=True), verbose=0,
    ... ).fit(data, None)
    >>> net.world_size, net.local_batch_size
    (1, 64)
    >>> net.batch_estimates(data, 64).shape
    (4,)
    """

    # ------------------------------------------------------------------ processes

    @property
    def world_size(self) -> int:
        """Number of processes training together (1 without an accelerator)."""
        accelerator = getattr(self, "accelerator", None)
        return 1 if accelerator is None else int(accelerator.num_processes)

    @property
    def rank(self) -> int:
        """This process's index."""
        accelerator = getattr(self, "accelerator", None)
        return 0 if accelerator is None else int(accelerator.process_index)

    @property
    def local_batch_size(self) -> int:
        """Training rows per process and step, ``batch_size / world_size``."""
        return int(self.batch_size) // self.world_size

    def _check_world(self) -> None:
        _, group_size = world_info()
        if group_size != self.world_size:
            raise RuntimeError(
                f"torch.distributed runs {group_size} processes but the accelerator reports "
                f"{self.world_size}. On a machine without GPUs, create the accelerator with "
                "Accelerator(cpu=True) so that accelerate sets up multi-process CPU training."
            )
        for name in ("batch_size", "eval_batch_size"):
            size = getattr(self, name)
            if size is not None and int(size) % self.world_size:
                raise ValueError(
                    f"{name}={size} is a global batch size and must be a multiple of the "
                    f"number of processes ({self.world_size})."
                )

    # ------------------------------------------------------------------ accelerate

    def _initialize_accelerator(self):
        """Wrap the critic so that its factors go through DDP; prepare what needs it.

        Differences from :class:`~skorch.hf.AccelerateMixin`: the critic is prepared as
        :class:`_CriticForward` (so separable factors are synchronised by DDP too), and
        a criterion without trainable parameters is left as it is (accelerate 1.x wraps
        every module in DDP on multi-process CPU runs, which DDP refuses for a module
        without parameters).
        """
        if self._wrapped_with_accelerator:
            return self
        self._check_world()
        if not isinstance(self.module_, _CriticForward):
            self.module_ = _CriticForward(self.module_)
        with self._current_init_context("criterion"):
            for name in self._criteria:
                criterion = getattr(self, name + "_")
                if isinstance(criterion, nn.Module) and _has_trainable_parameters(criterion):
                    setattr(self, name + "_", self.accelerator.prepare(criterion))
        with self._current_init_context("module"):
            for name in self._modules:
                module = getattr(self, name + "_")
                if isinstance(module, nn.Module):
                    setattr(self, name + "_", self.accelerator.prepare(module))
        with self._current_init_context("optimizer"):
            for name in self._optimizers:
                optimizer = getattr(self, name + "_")
                if isinstance(optimizer, torch.optim.Optimizer):
                    setattr(self, name + "_", self.accelerator.prepare(optimizer))
        for _, callback in self.callbacks_:
            policy = getattr(callback, "policy_", None)
            if isinstance(policy, torch.optim.lr_scheduler.LRScheduler):
                callback.policy_ = self.accelerator.prepare(policy)
        self._wrapped_with_accelerator = True
        return self

    def _initialize_callbacks(self):
        # AccelerateMixin prints the epoch table through accelerator.print, which skorch's
        # PrintLog does not silence with verbose=0; do not print at all in that case.
        if self.callbacks__print_log__sink == "auto" and not self.verbose:
            self.callbacks__print_log__sink = _silent
        return super()._initialize_callbacks()

    def _unwrap_accelerator(self):
        super()._unwrap_accelerator()
        if isinstance(self.module_, _CriticForward):
            self.module_ = self.module_.critic
            # Early stopping copied its best weights from the wrapped module, whose keys
            # carry the wrappers' prefixes; it restores them into the critic itself.
            for _, callback in self.callbacks_:
                weights = getattr(callback, "best_model_weights_", None)
                if isinstance(weights, dict):
                    for prefix in ("module.", "critic."):
                        consume_prefix_in_state_dict_if_present(weights, prefix)

    def __getstate__(self):
        state = super().__getstate__()
        state["accelerator"] = None  # process-local: not part of a saved model
        if state.get("device") is None and getattr(self, "initialized_", False):
            # Record where the accelerator put the critic, so that skorch maps it back
            # (or to the CPU on a machine without that device) when loading.
            parameter = next(self.module_.parameters(), None)
            if parameter is not None:
                # The device type, not rank r's "cuda:r": a machine with fewer GPUs
                # than the writer's rank loads the model on its current GPU.
                state["device"] = parameter.device.type
        return state

    # ------------------------------------------------------------------ batches

    def _batches(self, dataset, batch_size: int, *, training: bool) -> DistributedTensorBatches:
        if training:
            return DistributedTensorBatches(
                dataset,
                batch_size,
                rank=self.rank,
                world_size=self.world_size,
                shuffle=True,
                generator_factory=self.epoch_generator,
            )
        return DistributedTensorBatches(
            dataset,
            batch_size,
            rank=self.rank,
            world_size=self.world_size,
            shuffle=False,
            seed=self.eval_seed,
        )

    def get_iterator(self, dataset, training=False):
        """This process's shares of the global batches (see :class:`DistributedTensorBatches`)."""
        batch_size = self.batch_size if training else (self.eval_batch_size or self.batch_size)
        return self._batches(dataset, batch_size, training=training)

    def _forward(self, x: torch.Tensor, y: torch.Tensor, *, parts: bool):
        if isinstance(self.module_, _CriticForward) or self._wrapped_with_accelerator:
            return self.module_(x, y, parts=parts)
        return separable_parts(self.module_, x, y) if parts else self.module_(x, y)

    def infer(self, x, **fit_params):
        """The global batch's scores (or separable factors), from this process's share.

        With ``blockwise``, the factors ``(g, h, a, b)`` of the local rows are gathered
        from all processes; otherwise the local rows are scored against the gathered
        ``y`` of all processes and the score rows are gathered into the ``n x n``
        matrix. Both are differentiable (:func:`gather_with_grad`).
        """
        if not isinstance(x, dict) or fit_params:
            return super().infer(x, **fit_params)
        x_local = x["x"]
        y_local = x["y"]
        if self.blockwise:
            g, h, a, b = self._forward(x_local, y_local, parts=True)
            # One collective for all factors: pack [g | h | a | b] column-wise.
            columns = [g, h] + [part[:, None] for part in (a, b) if part is not None]
            packed = gather_with_grad(torch.cat(columns, dim=1))
            d_g, d_h = g.shape[1], h.shape[1]
            g_all, h_all = packed[:, :d_g], packed[:, d_g : d_g + d_h]
            if a is None:
                return g_all, h_all, None, None
            return g_all, h_all, packed[:, d_g + d_h], packed[:, d_g + d_h + 1]
        y_all = gather_with_grad(y_local)
        return gather_with_grad(self._forward(x_local, y_all, parts=False))

    def evaluation_step(self, batch, training=False):
        # The predictions are already global (gathered in infer); AccelerateMixin's
        # gather_for_metrics would concatenate W copies of them.
        return super(AccelerateMixin, self).evaluation_step(batch, training=training)

    def batch_estimates(self, dataset: PairedTensorDataset, batch_size: int):
        """The bound on each full global evaluation batch of ``dataset``, in nats.

        Collective: every process must call it with the same data. Batches are those of
        :meth:`~sk_mlcpc._engine.net.ContrastiveNet.batch_estimates`.
        """
        self.check_is_fitted()
        self._set_training(False)
        values = []
        with torch.no_grad():
            for batch, _ in self._batches(dataset, batch_size, training=False):
                values.append(self.criterion_.estimate(self.infer(batch)))
        if not values:
            return np.empty(0)
        return torch.stack(values).double().cpu().numpy()
