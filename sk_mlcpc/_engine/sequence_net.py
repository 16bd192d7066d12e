"""The torch side of ContrastivePredictiveCoding: model, batches, loss and skorch net.

:class:`~sk_mlcpc._estimators.sequence.ContrastivePredictiveCoding` builds a
:class:`PredictiveCodingNet` in ``fit``. What this module holds:

* :class:`PredictiveCodingModule`: window encoder, causal GRU context network and one
  linear predictor per step ahead, giving ``(K, P, B, B)`` stacks of score matrices;
* :class:`SequenceDataset` and :class:`SequenceBatches`: sequences held on the training
  device, batched with a random permutation of anchor times per sequence;
* :class:`PredictiveBoundLoss`: minus a bound averaged over the stack of matrices;
* :class:`PredictiveCodingNet`: the :class:`~sk_mlcpc._engine.net.ContrastiveNet` that trains
  the module and evaluates the bound per step ahead.

The layout of the score matrices (one anchor per sequence, negatives from the other
sequences of the batch) is described in :mod:`sk_mlcpc._estimators.sequence`.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from sk_mlcpc._engine.net import BoundLoss, ContrastiveNet, SeededBatches, _at_least_fp32
from sk_mlcpc._math.bounds import get_objective
from sk_mlcpc._nn.devices import device_generator, to_device
from sk_mlcpc._nn.encoders import ACTIVATIONS
from sk_mlcpc._nn.sequence_views import zero_padding
from sk_mlcpc._nn.temporal import (
    CausalConvEncoder,
    last_valid,
    masked_max,
    masked_mean,
    segment_means,
    spread_penalty,
)

__all__ = [
    "PredictiveBoundLoss",
    "PredictiveCodingModule",
    "PredictiveCodingNet",
    "SequenceBatches",
    "SequenceDataset",
    "TrainingScores",
    "draw_anchor_times",
]


# ---------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------

#: Temperature of the cosine scores between two views of the same sequences.
VIEW_TEMPERATURE = 0.2


class TrainingScores(NamedTuple):
    """What a training forward of :class:`PredictiveCodingModule` returns besides the
    predictive scores: the ``(B, B)`` view scores and the spread penalty (None when
    not computed)."""

    scores: torch.Tensor
    view_scores: torch.Tensor | None
    penalty: torch.Tensor | None


class PredictiveCodingModule(nn.Module):
    """Window encoder + causal GRU context network + one linear predictor per step ahead.

    Two window encoders, both giving a latent ``z_t`` that depends on window ``t`` (the
    samples ``t * stride .. t * stride + window - 1``) only, so that context ``c_t``
    depends on windows ``0..t`` only:

    * ``encoder="conv"``: a :class:`~sk_mlcpc._nn.temporal.CausalConvEncoder`, dilated
      causal convolutions of receptive field ``window`` run at every time step; ``z_t``
      is its output at the last sample of window ``t``;
    * ``encoder="mlp"``: an MLP applied to each window (all channels), implemented as a
      strided ``Conv1d`` with kernel ``window`` followed by pointwise convolutions.

    Parameters
    ----------
    n_channels : int
        Input channels.
    window, stride : int
        Window length and hop, in samples.
    prediction_steps : int
        Predictors ``W_1 .. W_K``.
    latent_dim : int
        Width of the window latents ``z_t``.
    context_dim : int
        Width of the contexts ``c_t`` (GRU hidden size).
    hidden_layer_sizes : sequence of int
        Hidden widths of the MLP window encoder; for the convolutional encoder its first
        entry is the width of every dilated layer (empty: one linear convolution).
    activation : str
        One of :data:`sk_mlcpc.encoders.ACTIVATIONS`.
    encoder : {"mlp", "conv"}, default="mlp"
        The window encoder.
    """

    def __init__(
        self,
        n_channels: int,
        window: int,
        stride: int,
        prediction_steps: int,
        latent_dim: int,
        context_dim: int,
        hidden_layer_sizes: Sequence[int] = (64,),
        activation: str = "relu",
        encoder: str = "mlp",
        view_head: bool = False,
        spread: bool = False,
    ) -> None:
        super().__init__()
        self.kind = encoder
        # Training forwards also return the spread penalty of the batch's latents.
        self.spread = bool(spread)
        self.window, self.stride = int(window), int(stride)
        if encoder == "conv":
            width = hidden_layer_sizes[0] if len(hidden_layer_sizes) else None
            self.encoder = CausalConvEncoder(n_channels, window, width, latent_dim, activation)
        else:
            layers: list[nn.Module] = []
            width, kernel, hop = n_channels, window, stride
            for hidden in hidden_layer_sizes:
                layers += [
                    nn.Conv1d(width, hidden, kernel, stride=hop),
                    ACTIVATIONS[activation](),
                ]
                width, kernel, hop = hidden, 1, 1
            layers.append(nn.Conv1d(width, latent_dim, kernel, stride=hop))
            self.encoder = nn.Sequential(*layers)
        self.context = nn.GRU(latent_dim, context_dim, batch_first=True)
        self.predictors = nn.ModuleList(
            nn.Linear(context_dim, latent_dim, bias=False) for _ in range(prediction_steps)
        )
        if view_head:
            # Projection of a sequence's summary (mean latent and mean context) for the
            # contrast between two views of the same sequence.
            summary = latent_dim + context_dim
            self.view_head = nn.Sequential(
                nn.Linear(summary, summary),
                ACTIVATIONS[activation](),
                nn.Linear(summary, latent_dim),
            )

    def _encoded(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor, bool]:
        """Hidden layers' outputs, the latents ``(B, latent_dim, L)`` and whether the
        hidden outputs run at every time step (conv) or on the window grid (mlp)."""
        if getattr(self, "kind", "mlp") == "conv":
            hidden, out = self.encoder.hidden(x)
            # z_t: the output at the last sample of window t.
            return [*hidden, out], out[:, :, self.window - 1 :: self.stride], True
        hidden = []
        h = x
        for layer in self.encoder:
            h = layer(h)
            if not isinstance(layer, nn.Conv1d):
                hidden.append(h)
        return [*hidden, h], h, False

    def latents(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, T)`` sequences -> ``(B, L, latent_dim)`` window latents."""
        return self._encoded(x)[1].transpose(1, 2)

    def contexts(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, C, T)`` -> latents ``(B, L, latent_dim)`` and contexts ``(B, L, context_dim)``."""
        z = self.latents(x)
        c, _ = self.context(z)
        return z, c

    def forward(
        self,
        x: torch.Tensor,
        order: torch.Tensor,
        x_view: torch.Tensor | None = None,
        lengths: torch.Tensor | None = None,
    ) -> torch.Tensor | TrainingScores:
        """Score matrices for every step ahead and anchor draw.

        Parameters
        ----------
        x : torch.Tensor of shape (B, C, T)
        order : torch.Tensor of shape (B, P), int64
            ``order[b, r]`` is the anchor time of sequence ``b`` in draw ``r``, a time in
            ``0 .. P_b - 1`` with ``P_b = L_b - prediction_steps`` (``L_b`` the windows
            of sequence ``b``; padding after them is never read).
        x_view : torch.Tensor of shape (B, C, T) or None, default=None
            A second view of the same sequences (training with ``augmentation``). With
            it and a ``view_head``, the view scores are returned too.
        lengths : torch.Tensor of shape (B,) or None, default=None
            Real time steps of each sequence, for the view summaries and the spread
            penalty; None: all ``T``.

        Returns
        -------
        scores : torch.Tensor of shape (K, P, B, B)
            ``scores[k - 1, r, i, j] = (W_k c_{i, t_ir}) . z_{j, t_jr + k}``, positives on
            the diagonal of each ``B x B`` matrix. In training mode with view scores or
            ``spread``, a :class:`TrainingScores` holding it and the following.
        view_scores : torch.Tensor of shape (B, B), only with ``x_view`` and ``view_head``
            ``view_scores[i, j] = cos(h(x_i), h(x_view_j)) / VIEW_TEMPERATURE``, ``h`` the
            ``view_head`` projection of the sequence's mean latent and mean context over
            its windows: positives (two views of one sequence) on the diagonal.
        """
        # Without a view head (view_weight=0) the second view is not scored.
        views = x_view is not None and hasattr(self, "view_head")
        spread = self.training and getattr(self, "spread", False)
        if not (views or spread):
            return self._predictive_scores(*self.contexts(x), order)
        n = len(x)
        z, c = self.contexts(torch.cat([x, x_view]) if views else x)
        scores = self._predictive_scores(z[:n], c[:n], order)
        if lengths is None:
            lengths = torch.full((n,), x.shape[2], dtype=torch.int64, device=x.device)
        if views:
            lengths = torch.cat([lengths, lengths])
        windows = torch.div(lengths - self.window, self.stride, rounding_mode="floor") + 1
        view_scores = penalty = None
        if views:
            summary = torch.cat(
                [masked_mean(z.transpose(1, 2), windows), masked_mean(c.transpose(1, 2), windows)],
                dim=1,
            )
            h = nn.functional.normalize(self.view_head(summary), dim=1)
            view_scores = h[:n] @ h[n:].T / VIEW_TEMPERATURE
        if spread:
            penalty = spread_penalty(z, windows)
        return TrainingScores(scores, view_scores, penalty)

    def _predictive_scores(
        self, z: torch.Tensor, c: torch.Tensor, order: torch.Tensor
    ) -> torch.Tensor:
        """The ``(K, P, B, B)`` stack of :meth:`forward` from latents and contexts."""
        index_c = order.unsqueeze(-1).expand(-1, -1, c.shape[-1])
        anchors = torch.gather(c, 1, index_c)  # (B, P, context_dim)
        scores = []
        for step, predictor in enumerate(self.predictors, start=1):
            index_z = (order + step).unsqueeze(-1).expand(-1, -1, z.shape[-1])
            targets = torch.gather(z, 1, index_z)  # (B, P, latent_dim)
            predictions = predictor(anchors)  # (B, P, latent_dim)
            scores.append(torch.einsum("ird,jrd->rij", predictions, targets))
        return torch.stack(scores)

    def feature_width(self, pooling: str, n_segments: int = 0) -> int:
        """Columns of :meth:`features` for ``pooling`` and ``n_segments``."""
        context_dim = self.context.hidden_size
        if pooling in ("last", "mean"):
            return context_dim
        latent_dim = self.predictors[0].out_features
        if getattr(self, "kind", "mlp") == "conv":
            hidden = sum(self.encoder.hidden_widths)
        else:
            hidden = sum(
                layer.out_channels for layer in self.encoder[:-1] if isinstance(layer, nn.Conv1d)
            )
        return 2 * (hidden + latent_dim) + 2 * context_dim + n_segments * latent_dim

    def features(
        self,
        x: torch.Tensor,
        lengths: torch.Tensor,
        pooling: str = "multiscale",
        n_segments: int = 0,
    ) -> torch.Tensor:
        """One feature vector per sequence, pooled over its real time steps.

        Parameters
        ----------
        x : torch.Tensor of shape (B, C, T)
            Sequences, right-padded to ``T``.
        lengths : torch.Tensor of shape (B,), int64
            Real time steps of each sequence (at least ``window``).
        pooling : {"last", "mean", "multiscale"}
            ``"last"``: the context after the last complete window; ``"mean"``: the mean
            context over the windows; ``"multiscale"``: the mean and the maximum over
            time of every encoder layer's output (receptive fields from 2 samples up to
            ``window``; the latents too), then the mean and the last context, then (for
            ``n_segments > 0``) the latents averaged over ``n_segments`` equal stretches
            of each sequence's windows (:func:`~sk_mlcpc._nn.temporal.segment_means`).
        n_segments : int, default=0
            Segments of the positional part of ``"multiscale"``; 0 for none. Ignored by
            ``"last"`` and ``"mean"``.

        Returns
        -------
        features : torch.Tensor of shape (B, feature_width(pooling, n_segments))
        """
        layers, z, full_rate = self._encoded(x)
        c, _ = self.context(z.transpose(1, 2))
        c = c.transpose(1, 2)  # (B, context_dim, L)
        windows = torch.div(lengths - self.window, self.stride, rounding_mode="floor") + 1
        if pooling == "last":
            return last_valid(c, windows)
        if pooling == "mean":
            return masked_mean(c, windows)
        rates = lengths if full_rate else windows
        parts = []
        for h in layers:
            parts += [masked_mean(h, rates), masked_max(h, rates)]
        parts += [masked_mean(c, windows), last_valid(c, windows)]
        if n_segments:
            # Where things happen: the latents on a grid of equal stretches of windows.
            parts.append(segment_means(z, windows, n_segments))
        return torch.cat(parts, dim=1)


# ---------------------------------------------------------------------------------------
# Engine
# ---------------------------------------------------------------------------------------


class SequenceDataset(torch.utils.data.Dataset):
    """Sequences ``(n, C, T)`` held as one tensor on the training device.

    Parameters
    ----------
    x : torch.Tensor of shape (n, C, T)
        Sequences, right-padded to ``T`` when their lengths differ.
    n_anchor_times : int
        Anchor times drawn per sequence and pass, ``P``.
    anchor_counts : torch.Tensor of shape (n,) or None, default=None
        Anchor times each sequence has, ``P_b = L_b - prediction_steps`` (on the host);
        None when every sequence has ``P``.
    lengths : torch.Tensor of shape (n,) or None, default=None
        Real time steps of each sequence, on ``x``'s device (the views of training
        batches need them); None when every sequence has ``T``.
    """

    def __init__(
        self,
        x: torch.Tensor,
        n_anchor_times: int,
        anchor_counts: torch.Tensor | None = None,
        lengths: torch.Tensor | None = None,
    ) -> None:
        self.x = x
        self.n_anchor_times = int(n_anchor_times)
        self.anchor_counts = anchor_counts
        self.lengths = lengths

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[index], torch.zeros(())


def draw_anchor_times(
    n_times: int, anchor_counts: torch.Tensor | None, n: int, generator: torch.Generator
) -> torch.Tensor:
    """``(n, n_times)`` anchor times: for each sequence, ``n_times`` of its ``P_b`` times.

    Without ``anchor_counts`` (every sequence has ``n_times``) each row is a random
    permutation of ``0 .. n_times - 1``. A sequence with more times gets a random subset
    of its own, drawn without replacement; one with fewer repeats its random permutation.
    """
    if anchor_counts is None:
        return torch.argsort(torch.rand(n, n_times, generator=generator), dim=1)
    most = max(int(anchor_counts.max()), n_times)
    keys = torch.rand(n, most, generator=generator)
    # Times a sequence does not have sort last.
    keys = keys.masked_fill(torch.arange(most) >= anchor_counts.unsqueeze(1), 2.0)
    times = torch.argsort(keys, dim=1)
    wrap = torch.arange(n_times) % anchor_counts.unsqueeze(1)
    return torch.gather(times, 1, wrap)


class SequenceBatches(SeededBatches):
    """Full batches of sequences with a random permutation of anchor times per sequence.

    Training passes (``shuffle=True``) draw the row order and the anchor times from
    ``generator``, or from a fresh ``generator_factory()`` called at the start of each
    pass; evaluation passes reuse one order and one set of anchor times drawn from
    ``seed``, so that held-out values are repeatable. A last partial batch is dropped: the
    bound depends on the batch size. Sequences of different lengths draw their anchor
    times among their own (:func:`draw_anchor_times`).

    With a ``view`` (a sequence view of :mod:`sk_mlcpc._nn.sequence_views`), every batch
    holds two random views of its sequences, ``{"x": view_a, "order", "x_view": view_b,
    "lengths"}``, drawn on the data's device from a generator seeded by the pass's; the
    padding of shorter sequences is set back to zero in both.
    """

    def __init__(self, dataset, batch_size: int, *, view=None, **kwargs) -> None:
        super().__init__(dataset, batch_size, **kwargs)
        self.view = view

    def __iter__(self) -> Iterator[tuple[dict[str, torch.Tensor], None]]:
        n, n_times = len(self.dataset), self.dataset.n_anchor_times
        generator = self._pass_generator()
        device = self.dataset.x.device
        # Drawn on the host for the whole pass (device-independent, so the same seed gives
        # the same batches on any device) and copied once, not once per batch.
        rows = torch.randperm(n, generator=generator)
        counts = self.dataset.anchor_counts
        # An independent random permutation of the anchor times for every sequence;
        # times[i] belongs to the sequence rows[i].
        times = draw_anchor_times(n_times, None if counts is None else counts[rows], n, generator)
        rows, times = to_device(rows, device), to_device(times, device)
        if self.view is not None:
            view_generator = device_generator(generator, device)
            all_lengths = self.dataset.lengths
            if all_lengths is None:
                all_lengths = torch.full((n,), self.dataset.x.shape[2], device=device)
        for start in self._batch_starts():
            index = rows[start : start + self.batch_size]
            order = times[start : start + self.batch_size]
            x = self.dataset.x[index]
            if self.view is None:
                batch = {"x": x, "order": order}
                if self.dataset.lengths is not None:
                    batch["lengths"] = self.dataset.lengths[index]
                yield batch, None
                continue
            lengths = all_lengths[index]
            padded = None if self.dataset.lengths is None else lengths
            view_a = _checked_view(self.view(x, lengths, view_generator), x, padded)
            view_b = _checked_view(self.view(x, lengths, view_generator), x, padded)
            yield {"x": view_a, "order": order, "x_view": view_b, "lengths": lengths}, None


def _checked_view(view: torch.Tensor, x: torch.Tensor, lengths: torch.Tensor | None):
    """A view's output with zero padding, or a ValueError when it does not fit ``x``."""
    if (
        not isinstance(view, torch.Tensor)
        or view.shape != x.shape
        or view.dtype != x.dtype
        or view.device != x.device
    ):
        got = (
            f"shape {tuple(view.shape)}, {view.dtype} on {view.device}"
            if isinstance(view, torch.Tensor)
            else type(view).__name__
        )
        raise ValueError(
            "augmentation must return a tensor of the batch's shape, dtype and device, "
            f"{tuple(x.shape)}, {x.dtype} on {x.device}; got {got}."
        )
    return zero_padding(view, lengths)


class PredictiveBoundLoss(BoundLoss):
    """Minus a bound averaged over a stack of ``(K, P, B, B)`` batch-layout score matrices.

    Parameters
    ----------
    objective : str
        Bound name from :data:`sk_mlcpc.bounds.BOUNDS`.
    alpha : float, default=1.0
        Positive weight of ``"alpha_cpc"`` / ``"ml_cpc"``.
    view_weight : float, default=0.0
        Weight of the bound between two views of the same sequences, added to the
        training objective when the module returns view scores (training with an
        augmentation); evaluation batches have no views and score the predictive bound
        alone.
    spread_weight : float, default=0.0
        Weight of the spread penalty (:func:`~sk_mlcpc._nn.temporal.spread_penalty`)
        subtracted from the training objective when the module returns it.
    """

    def __init__(
        self,
        objective: str,
        alpha: float = 1.0,
        view_weight: float = 0.0,
        spread_weight: float = 0.0,
    ) -> None:
        super().__init__(objective, alpha=alpha, layout="batch")
        self.view_weight = float(view_weight)
        self.spread_weight = float(spread_weight)

    def per_step(
        self, scores: torch.Tensor, *, update_state: bool = False, alpha: float | None = None
    ) -> torch.Tensor:
        """The bound of every matrix averaged over draws: a ``(K,)`` tensor in nats.

        ``alpha`` overrides the criterion's (training) alpha for alpha objectives.
        """
        # Half-precision scores (autocast) are evaluated and reported in float32.
        scores = _at_least_fp32(scores)
        n_steps, n_draws = scores.shape[:2]
        flat = scores.reshape(n_steps * n_draws, *scores.shape[2:])
        objective = get_objective(self.objective)
        if objective.stateful:
            # A stateful objective (MINE's moving average) carries its state from one
            # matrix to the next: evaluate them in order.
            values = torch.stack([self.estimate(s, update_state=update_state) for s in flat])
        else:
            alpha = self.alpha if alpha is None else alpha
            kwargs = {"alpha": alpha} if objective.takes_alpha else {}
            bound = functools.partial(self.bound, layout="batch", **kwargs)
            values = torch.func.vmap(bound)(flat)
        return values.reshape(n_steps, n_draws).mean(dim=1)

    def estimate(
        self, scores: torch.Tensor, *, update_state: bool = False, training: bool = False
    ) -> torch.Tensor:
        """The bound averaged over steps ahead and draws for a ``(K, P, B, B)`` stack (one
        matrix is evaluated as :meth:`BoundLoss.estimate` does); ``training=False`` uses
        ``eval_alpha`` when it is set."""
        if scores.ndim != 4:
            return super().estimate(scores, update_state=update_state, training=training)
        alpha = self.alpha if training or self.eval_alpha is None else self.eval_alpha
        return self.per_step(scores, update_state=update_state, alpha=alpha).mean()

    def forward(self, scores: torch.Tensor | TrainingScores, training: bool = True) -> torch.Tensor:
        if not isinstance(scores, TrainingScores):
            return -self.per_step(scores, update_state=training).mean()
        # A training forward with views or the spread penalty.
        loss = -self.per_step(scores.scores, update_state=training).mean()
        if scores.view_scores is not None and self.view_weight:
            view_bound = self.per_step(scores.view_scores[None, None], update_state=False)
            loss = loss - self.view_weight * view_bound.mean()
        if scores.penalty is not None and self.spread_weight:
            loss = loss + self.spread_weight * _at_least_fp32(scores.penalty)
        return loss


class PredictiveCodingNet(ContrastiveNet):
    """:class:`~sk_mlcpc._engine.net.ContrastiveNet` training a :class:`PredictiveCodingModule`.

    The criterion is a :class:`PredictiveBoundLoss`; batches are whole sequences
    (:class:`SequenceBatches`), whose anchor times are drawn from the same per-epoch
    generator as the order, so an epoch's draws depend on its index only. ``view`` (set
    as an attribute, not a skorch parameter; None for none) makes two views of every
    training batch (:class:`SequenceBatches`); evaluation batches are never augmented.
    """

    view = None

    def get_iterator(self, dataset, training=False):
        if training:
            return SequenceBatches(
                dataset,
                self.batch_size,
                view=self.view,
                shuffle=True,
                generator_factory=self.epoch_generator,
            )
        batch_size = self.eval_batch_size or self.batch_size
        return SequenceBatches(dataset, batch_size, shuffle=False, seed=self.eval_seed)

    def evaluation_batches(self, dataset: SequenceDataset, batch_size: int) -> SequenceBatches:
        """Full batches of ``dataset``'s sequences and anchor times, in a fixed order.

        :func:`~sk_mlcpc._engine.evaluation.evaluate_held_out` scores these.
        """
        return SequenceBatches(dataset, batch_size, shuffle=False, seed=self.eval_seed)

    def step_estimates(self, dataset: SequenceDataset, batch_size: int) -> np.ndarray:
        """The bound per evaluation batch and step ahead, ``(n_batches, K)``, in nats."""
        self.check_is_fitted()
        self._set_training(False)
        values = []
        with torch.no_grad():
            for batch, _ in SequenceBatches(
                dataset, batch_size, shuffle=False, seed=self.eval_seed
            ):
                values.append(self.criterion_.per_step(self.infer(batch), update_state=False))
        if not values:
            return np.empty((0, len(self.module_.predictors)))
        return torch.stack(values).double().cpu().numpy()
