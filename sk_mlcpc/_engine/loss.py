"""The training criterion: a negated contrastive bound, :class:`BoundLoss`.

One module for what the loss computes, apart from the loop that calls it: the bound
named by the estimator's ``objective``, read from the registry of
:mod:`sk_mlcpc._math.bounds`, on a score matrix or, for a separable critic, blockwise on
its factors; the alpha used in training and in evaluation; the score ceiling of a
fitted estimator's evaluation; and the state a stateful bound (MINE's moving average)
carries between steps.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from sk_mlcpc._math.blockwise import DEFAULT_BLOCK_SIZE, blockwise_bound
from sk_mlcpc._math.bounds import get_bound, get_objective

__all__ = ["BoundLoss", "PointwiseBoundLoss"]


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


class PointwiseBoundLoss(nn.Module):
    """Criterion ``-mean(values)`` for a critic that returns one bound term per row.

    A class-target critic (:class:`~sk_mlcpc._nn.class_critic.ClassCritic`) scores every
    class for each row itself, so its output is already the Barber-Agakov term
    ``log q(y_i | x_i) - log pi(y_i)`` of each row, and the bound is their mean. The
    attributes that :class:`BoundLoss` carries for the loop (``alpha``, ``eval_alpha``,
    ``score_ceiling``) exist and are unused: the bound takes no alpha and no ceiling.
    """

    def __init__(self) -> None:
        super().__init__()
        self.objective = "barber_agakov"
        self.alpha = 1.0
        self.eval_alpha: float | None = None
        self.score_ceiling: float | None = None

    def estimate(
        self, values: torch.Tensor, *, update_state: bool = False, training: bool = False
    ) -> torch.Tensor:
        """The bound in nats: the mean of the per-row terms."""
        return _at_least_fp32(values).mean()

    def forward(self, values: torch.Tensor, training: bool = True) -> torch.Tensor:
        return -self.estimate(values, training=training)
