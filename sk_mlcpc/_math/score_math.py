"""Score-matrix arithmetic shared by :mod:`sk_mlcpc.bounds` and :mod:`sk_mlcpc.blockwise`.

Input checks and the pieces every bound is assembled from: positives and negatives of a
score matrix in either layout, log-mean-exp over the negatives, alpha's two weights,
the straight-through value/gradient split, and MINE's moving log-partition. Also the
dense provider of the formulas' parts (:class:`DenseScores`), see
:mod:`sk_mlcpc._math.objectives`.
"""

from __future__ import annotations

import math
from numbers import Real

import torch
from torch.nn import functional as F

_LAYOUTS = ("batch", "anchored")


def _check_scores(scores: torch.Tensor, layout: str) -> tuple[torch.Tensor, int, int]:
    """Validate a score matrix and return it in a dtype safe for accumulation."""
    if not isinstance(scores, torch.Tensor):
        raise TypeError(f"scores must be a torch.Tensor, got {type(scores).__name__}.")
    if not torch.is_floating_point(scores):
        raise TypeError(f"scores must have a floating dtype, got {scores.dtype}.")
    if scores.ndim != 2:
        raise ValueError(f"scores must be a 2-D matrix, got shape {tuple(scores.shape)}.")
    if layout not in _LAYOUTS:
        raise ValueError(f"layout must be one of {_LAYOUTS}, got {layout!r}.")
    n, m = scores.shape
    if layout == "batch" and n != m:
        raise ValueError(
            f"layout='batch' needs a square score matrix (positives on the diagonal), got "
            f"shape {(n, m)}; use layout='anchored' for an n x m matrix with positives in "
            "column 0."
        )
    if m < 2 or n < 1:
        raise ValueError(
            f"scores of shape {(n, m)} hold no negatives: at least 2 samples per row are needed."
        )
    if scores.dtype in (torch.float16, torch.bfloat16):
        scores = scores.float()
    return scores, n, m


def _positives(scores: torch.Tensor, layout: str) -> torch.Tensor:
    return scores.diagonal() if layout == "batch" else scores[:, 0]


def _negatives(scores: torch.Tensor, layout: str) -> tuple[torch.Tensor, int]:
    """Negative scores with positives replaced by -inf (batch) or sliced off (anchored).

    Returns the matrix and the number of genuine negatives it holds.
    """
    n, m = scores.shape
    if layout == "batch":
        eye = torch.eye(n, dtype=torch.bool, device=scores.device)
        return scores.masked_fill(eye, -math.inf), n * (n - 1)
    return scores[:, 1:], n * (m - 1)


def _log_mean_exp_negatives(scores: torch.Tensor, layout: str) -> torch.Tensor:
    negatives, count = _negatives(scores, layout)
    return torch.logsumexp(negatives.reshape(-1), dim=0) - math.log(count)


def _alpha_weights(alpha: float, m: int) -> tuple[float, float]:
    """Return ``(log alpha, log beta)`` with ``beta = (m - alpha) / (m - 1)``."""
    if isinstance(alpha, bool) or not isinstance(alpha, Real):
        raise TypeError(f"alpha must be a real number, got {type(alpha).__name__}.")
    alpha = float(alpha)
    if not (0.0 < alpha <= m) or math.isnan(alpha):
        raise ValueError(
            f"alpha must lie in (0, m] = (0, {m}] for m={m} samples per row, got {alpha}; "
            "above m the weight beta = (m - alpha) / (m - 1) of the negatives would be negative."
        )
    beta = (m - alpha) / (m - 1)
    return math.log(alpha), (math.log(beta) if beta > 0 else -math.inf)


def _value_with_gradient_of(value: torch.Tensor, objective: torch.Tensor) -> torch.Tensor:
    """A tensor equal to ``value`` whose gradient is the gradient of ``objective``.

    An infinite ``objective`` would make ``objective - objective.detach()`` NaN; the
    reported value then stays ``value``, with a zero gradient. The ``where`` masks the
    value only: the backward pass still runs through the objective's graph with a zero
    gradient, and a node there whose local derivative is infinite or NaN (``exp`` of an
    infinite or NaN exponent) turns it into ``0 * inf = NaN``. Objectives passed here
    keep such inputs finite whenever ``value`` is: JS and SMILE are sums of softplus
    terms (derivatives in ``[0, 1]``), and MINE's moving log-partition is finite whenever
    the batch's is (:func:`_moving_log_partition`).
    """
    straight_through = objective - objective.detach()
    straight_through = torch.where(
        torch.isfinite(objective), straight_through, torch.zeros_like(straight_through)
    )
    return value.detach() + straight_through


def _moving_log_partition(
    previous: torch.Tensor, batch_log_partition: torch.Tensor, momentum: float
) -> torch.Tensor:
    """``log(momentum e^previous + (1 - momentum) e^batch)``; a non-finite ``previous`` starts.

    A NaN ``previous`` is the "no history yet" state; an infinite one (an overflowed
    step) carries no information either and would otherwise stick: ``+inf`` stays
    ``+inf`` under the average, silencing the partition's gradient for good. Both start
    the average again at this batch. With ``momentum = 0`` the average is the batch's
    partition itself (not ``logaddexp(previous - inf, batch)``, which is NaN for an
    infinite ``previous``). The finiteness test is a ``where`` on the device rather than
    a Python ``if``, which would wait for the device at every training step.
    """
    if momentum == 0.0:
        return batch_log_partition
    blended = torch.logaddexp(
        previous + math.log(momentum), batch_log_partition + math.log1p(-momentum)
    )
    return torch.where(torch.isfinite(previous), blended, batch_log_partition)


# ---------------------------------------------------------------------------------------
# The dense provider of the formulas' parts
# ---------------------------------------------------------------------------------------


class DenseNegatives:
    """The negative reductions of a materialised score matrix, computed when asked.

    Each reduction is computed as the dense bounds always have (a global log-sum-exp
    over the flattened negatives for the partition, a sum over the masked matrix for the
    softplus mean), so the dense values do not depend on how the blockwise path splits
    its sums.

    Parameters
    ----------
    scores : torch.Tensor of shape (n, m)
        Checked scores in the working dtype.
    layout : {"batch", "anchored"}
    clip : float or None, default=None
        Threshold of :meth:`clipped_log_mean_exp`.

    Examples
    --------
    >>> import torch
    >>> negatives = DenseNegatives(torch.zeros(3, 3), "batch")
    >>> round(negatives.log_mean_exp().item(), 6), round(negatives.mean_softplus().item(), 4)
    (0.0, 0.6931)
    """

    def __init__(self, scores: torch.Tensor, layout: str, clip: float | None = None) -> None:
        self._scores = scores
        self._layout = layout
        self._clip = clip

    def row_log_sum_exp(self) -> torch.Tensor:
        """``R_i = log sum_{j in N(i)} e^{S_ij}``, shape ``(n,)``."""
        negatives, _ = _negatives(self._scores, self._layout)
        return torch.logsumexp(negatives, dim=1)

    def row_log_sum_exp_with_positive(self) -> torch.Tensor:
        """``log sum_j e^{S_ij}`` over the whole row, shape ``(n,)``."""
        return torch.logsumexp(self._scores, dim=1)

    def log_mean_exp(self) -> torch.Tensor:
        """``log mean e^{S_ij}`` over every negative, 0-d."""
        return _log_mean_exp_negatives(self._scores, self._layout)

    def mean_softplus(self) -> torch.Tensor:
        """``mean softplus(S_ij)`` over every negative, 0-d."""
        negatives, count = _negatives(self._scores, self._layout)
        # softplus(-inf) = 0, so the masked diagonal contributes nothing to the sum.
        return F.softplus(negatives).sum() / count

    def clipped_log_mean_exp(self) -> torch.Tensor:
        """``log mean e^{clamp(S_ij, -clip, clip)}`` over every negative, 0-d."""
        # Clip first, then mask: the masked diagonal stays -inf.
        clipped = self._scores.clamp(-self._clip, self._clip)
        return _log_mean_exp_negatives(clipped, self._layout)


class DenseScores:
    """A materialised score matrix as the formulas of :mod:`sk_mlcpc._math.objectives` see it.

    Parameters
    ----------
    scores : torch.Tensor of shape (n, m)
        Scores checked by :func:`_check_scores` (in the working dtype).
    layout : {"batch", "anchored"}
        Where the positives are.

    Examples
    --------
    >>> import torch
    >>> parts = DenseScores(torch.eye(3), "batch")
    >>> parts.positives.tolist(), parts.n, parts.m
    ([1.0, 1.0, 1.0], 3, 3)
    """

    def __init__(self, scores: torch.Tensor, layout: str) -> None:
        self._scores = scores
        self._layout = layout
        self.n, self.m = scores.shape
        self.positives = _positives(scores, layout)

    def negatives(self, *, softplus: bool = False, clip: float | None = None) -> DenseNegatives:
        """The reductions over the negatives (each computed when it is read)."""
        return DenseNegatives(self._scores, self._layout, clip)

    def minus_baseline(self, baseline: torch.Tensor | float) -> DenseScores:
        """``S - a``: a scalar, one value per column ``(m,)`` (batch layout) or per pair."""
        n, m = self.n, self.m
        work = self._scores
        base = torch.as_tensor(baseline, dtype=work.dtype, device=work.device)
        if base.ndim == 1 and self._layout == "batch" and base.shape[0] == m:
            base = base.unsqueeze(0)
        elif base.ndim not in (0,) and tuple(base.shape) != (n, m):
            raise ValueError(
                f"baseline must be a scalar, shape ({m},) (batch layout) or the scores' shape "
                f"{(n, m)}, got shape {tuple(base.shape)}."
            )
        return DenseScores(work - base, self._layout)
