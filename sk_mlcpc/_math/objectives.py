"""One record per contrastive objective, and each objective's formula.

Every bound of :mod:`sk_mlcpc.bounds` is a function of the positive scores ``S_ii`` and
of a few reductions over each row's negatives ``N(i)``: their per-row log-sum-exp
``R_i = log sum_{j in N(i)} e^{S_ij}``, the log-mean-exp over all negatives, the mean of
``softplus(S_ij)`` and the log-mean-exp of ``clamp(S_ij, -tau, tau)``. A *formula* here
is written once against that interface (:class:`ScoreParts` and :class:`NegativeParts`),
and two providers evaluate it: the dense one on a materialised score matrix
(:class:`sk_mlcpc._math.score_math.DenseScores`, behind the functions of
:mod:`sk_mlcpc.bounds`) and the tiled one on the factors of a separable critic
(:mod:`sk_mlcpc.blockwise`), which never builds the matrix.

An :class:`Objective` record holds everything else that is said about a bound: its
public dense function, the options it takes (``alpha`` or not), the option that carries
state between steps (MINE), its cap, its validity and, for the alpha bounds, the alpha
range. The registry :data:`sk_mlcpc._math.bounds.OBJECTIVES` is a dict of these records;
``BOUNDS``, ``ALPHA_OBJECTIVES``, :func:`~sk_mlcpc.bounds.cap`,
:func:`~sk_mlcpc.bounds.bound_validity`, the blockwise path and the training loss all
read it, so a new bound is one formula here, one public function and one record.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar

import torch
from torch.nn import functional as F

from sk_mlcpc._math.score_math import _alpha_weights, _moving_log_partition, _value_with_gradient_of

Validity = Literal["proven", "claimed", "invalid"]
T = TypeVar("T")


# ---------------------------------------------------------------------------------------
# What a formula may ask of the scores
# ---------------------------------------------------------------------------------------


class NegativeParts(Protocol):
    """Reductions over the negatives of a score matrix (one pass in the tiled provider).

    Which reductions exist is fixed when they are requested
    (:meth:`ScoreParts.negatives`): ``mean_softplus`` needs ``softplus=True`` and
    ``clipped_log_mean_exp`` a ``clip``.
    """

    def row_log_sum_exp(self) -> torch.Tensor:
        """``R_i = log sum_{j in N(i)} e^{S_ij}``, shape ``(n,)``."""

    def row_log_sum_exp_with_positive(self) -> torch.Tensor:
        """``log sum_j e^{S_ij}`` over the whole row, the positive included, ``(n,)``."""

    def log_mean_exp(self) -> torch.Tensor:
        """``log mean_{i, j in N(i)} e^{S_ij}`` over every negative, 0-d."""

    def mean_softplus(self) -> torch.Tensor:
        """``mean_{i, j in N(i)} softplus(S_ij)``, 0-d."""

    def clipped_log_mean_exp(self) -> torch.Tensor:
        """``log mean_{i, j in N(i)} e^{clamp(S_ij, -clip, clip)}``, 0-d."""


class ScoreParts(Protocol):
    """A score matrix as the formulas see it: positives, sizes and negative reductions.

    Attributes
    ----------
    positives : torch.Tensor of shape (n,)
        ``S_ii`` in the working dtype (float32 for half-precision inputs).
    n, m : int
        Rows, and samples per row (one positive and ``m - 1`` negatives).
    """

    positives: torch.Tensor
    n: int
    m: int

    def negatives(self, *, softplus: bool = False, clip: float | None = None) -> NegativeParts:
        """The reductions over the negatives (with the optional ones requested)."""

    def minus_baseline(self, baseline: Any) -> ScoreParts:
        """The scores ``S_ij - a_j`` for a log-baseline ``a`` (TUBA)."""


# ---------------------------------------------------------------------------------------
# The formulas
# ---------------------------------------------------------------------------------------


def row_log_normalisers(scores: ScoreParts, alpha: float) -> torch.Tensor:
    """``log(alpha e^{S_ii} + beta sum_{j != i} e^{S_ij})`` for every row, ``(n,)``.

    ``alpha`` is checked before any reduction is computed.
    """
    log_alpha, log_beta = _alpha_weights(alpha, scores.m)
    lse = scores.negatives().row_log_sum_exp()
    return torch.logaddexp(scores.positives + log_alpha, lse + log_beta)


def js_objective(positives: torch.Tensor, mean_negative_softplus: torch.Tensor) -> torch.Tensor:
    """JS (f-GAN) training objective ``mean -softplus(-S_ii) - mean softplus(S_ij)``."""
    return -F.softplus(-positives).mean() - mean_negative_softplus


def _tuba_value(scores: ScoreParts, negatives: NegativeParts) -> torch.Tensor:
    return 1.0 + scores.positives.mean() - negatives.log_mean_exp().exp()


def cpc_formula(scores: ScoreParts) -> torch.Tensor:
    """CPC: ``mean_i [S_ii - log sum_j e^{S_ij}] + log m``."""
    normalisers = scores.negatives().row_log_sum_exp_with_positive()
    return (scores.positives - normalisers).mean() + math.log(scores.m)


def alpha_cpc_formula(scores: ScoreParts, *, alpha: float = 1.0) -> torch.Tensor:
    """alpha-CPC: each row normalised on its own by its alpha-weighted normaliser."""
    log_norm = row_log_normalisers(scores, alpha) - math.log(scores.m)
    return (scores.positives - log_norm).mean()


def ml_cpc_formula(scores: ScoreParts, *, alpha: float = 1.0) -> torch.Tensor:
    """alpha-ML-CPC: one normaliser, the row normalisers' mean, shared by all pairs."""
    row_log_norm = row_log_normalisers(scores, alpha)
    log_norm = torch.logsumexp(row_log_norm, dim=0) - math.log(scores.n * scores.m)
    return scores.positives.mean() - log_norm


def tuba_formula(scores: ScoreParts, *, baseline: Any = None) -> torch.Tensor:
    """TUBA: ``1 + mean(S_ii - a_i) - mean_{i != j} e^{S_ij - a_j}`` (NWJ for ``a = 0``)."""
    if baseline is not None:
        scores = scores.minus_baseline(baseline)
    return _tuba_value(scores, scores.negatives())


def nwj_formula(scores: ScoreParts) -> torch.Tensor:
    """NWJ: TUBA with a zero baseline."""
    return _tuba_value(scores, scores.negatives())


def dv_formula(scores: ScoreParts) -> torch.Tensor:
    """Donsker-Varadhan: ``mean_i S_ii - log mean_{i != j} e^{S_ij}``."""
    return scores.positives.mean() - scores.negatives().log_mean_exp()


def mine_formula(
    scores: ScoreParts,
    *,
    log_partition_ema: torch.Tensor | float | None = None,
    momentum: float = 0.9,
) -> tuple[torch.Tensor, torch.Tensor]:
    """MINE: the DV value, with the partition's gradient divided by its moving average.

    Returns ``(estimate, new_log_partition_ema)``, the state detached.
    """
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"momentum must lie in [0, 1), got {momentum}.")
    positives = scores.positives
    positive_term = positives.mean()
    log_partition = scores.negatives().log_mean_exp()
    batch_log_partition = log_partition.detach()
    if log_partition_ema is None:
        new_ema = batch_log_partition
    else:
        previous = torch.as_tensor(
            log_partition_ema, dtype=positives.dtype, device=positives.device
        )
        new_ema = _moving_log_partition(previous, batch_log_partition, momentum)
    surrogate = positive_term - torch.exp(log_partition - new_ema)
    value = positive_term - log_partition
    return _value_with_gradient_of(value, surrogate), new_ema.detach()


def js_formula(scores: ScoreParts) -> torch.Tensor:
    """JS: the NWJ value, with the gradient of the JS classification objective."""
    negatives = scores.negatives(softplus=True)
    value = _tuba_value(scores, negatives)
    return _value_with_gradient_of(value, js_objective(scores.positives, negatives.mean_softplus()))


def smile_formula(scores: ScoreParts, *, clip: float = 5.0) -> torch.Tensor:
    """SMILE: DV with a clipped partition, with the gradient of the JS objective."""
    if not clip > 0:
        raise ValueError(f"clip must be positive, got {clip}.")
    negatives = scores.negatives(softplus=True, clip=clip)
    value = scores.positives.mean() - negatives.clipped_log_mean_exp()
    return _value_with_gradient_of(value, js_objective(scores.positives, negatives.mean_softplus()))


# ---------------------------------------------------------------------------------------
# Caps, as functions of the score-matrix shape and alpha
# ---------------------------------------------------------------------------------------


def log_m_cap(n: int, m: int, alpha: float) -> float:
    """``log m``: CPC's cap (``alpha`` is ignored)."""
    return math.log(m)


def log_m_over_alpha_cap(n: int, m: int, alpha: float) -> float:
    """``log(m / alpha)``: the cap of alpha-CPC and alpha-ML-CPC (``alpha`` is checked)."""
    log_alpha, _ = _alpha_weights(alpha, m)
    return math.log(m) - log_alpha


def no_cap(n: int, m: int, alpha: float) -> float:
    """``inf``: the uncapped bounds and estimators."""
    return math.inf


# ---------------------------------------------------------------------------------------
# The record
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Objective:
    """Everything the package knows about one bound, read by every path that uses it.

    Parameters
    ----------
    name : str
        The ``objective=`` name, a key of ``BOUNDS``.
    dense : callable
        The public function of a score matrix, ``dense(scores, *, layout, **options)``.
    formula : callable
        ``formula(parts, **options)`` of a :class:`ScoreParts`; the dense function and
        the blockwise path both evaluate it. Returns a 0-d tensor, or
        ``(estimate, state)`` for a stateful objective.
    options : tuple of str, default=()
        Keyword options of ``dense`` and ``formula`` (besides ``layout``).
    state : str or None, default=None
        The option through which the objective carries state from one step to the next
        (``"log_partition_ema"`` for MINE); the formula then returns the new state.
    cap : callable, default=no_cap
        ``cap(n, m, alpha)``: the largest value on an ``n x m`` matrix, in nats.
    validity : {"proven", "invalid"}, default="proven"
        Whether it is a lower bound on MI for every critic and distribution; for the
        alpha bounds, whether it is at ``alpha >= alpha_range(n, m).proven_low``.
    alpha_range : callable or None, default=None
        ``alpha_range(n, m) -> AlphaRange`` for the objectives that take ``alpha``.

    Attributes
    ----------
    takes_alpha : bool
        ``"alpha"`` is one of the options.
    stateful : bool
        ``state`` is not None.

    Examples
    --------
    >>> from sk_mlcpc._math.bounds import OBJECTIVES
    >>> record = OBJECTIVES["mine"]
    >>> record.takes_alpha, record.stateful, record.state, record.validity
    (False, True, 'log_partition_ema', 'invalid')
    >>> OBJECTIVES["ml_cpc"].options, OBJECTIVES["ml_cpc"].cap(128, 128, 1.0) > 4.85
    (('alpha',), True)
    """

    name: str
    dense: Callable[..., Any]
    formula: Callable[..., Any]
    options: tuple[str, ...] = ()
    state: str | None = None
    cap: Callable[[int, int, float], float] = no_cap
    validity: Literal["proven", "invalid"] = "proven"
    alpha_range: Callable[[int, int], Any] | None = None

    def __post_init__(self) -> None:
        if (self.alpha_range is not None) != self.takes_alpha:
            raise ValueError(
                f"objective {self.name!r}: an alpha_range is given exactly when 'alpha' is "
                f"one of the options, got options={self.options}."
            )
        if self.state is not None and self.state not in self.options:
            raise ValueError(f"objective {self.name!r}: state {self.state!r} is not an option.")

    @property
    def takes_alpha(self) -> bool:
        """Whether the objective has an ``alpha`` option."""
        return "alpha" in self.options

    @property
    def stateful(self) -> bool:
        """Whether the objective carries state between steps (:attr:`state`)."""
        return self.state is not None


class RegistryView(Mapping[str, T]):
    """A read-only, live view of one field of every record of a registry.

    Entries added to (or removed from) the registry show up at once, so the tables
    derived from it never go stale.

    Parameters
    ----------
    registry : dict of str to Objective
    field : str
        The attribute of each record to show.

    Examples
    --------
    >>> from sk_mlcpc._math.bounds import OBJECTIVES
    >>> view = RegistryView(OBJECTIVES, "options")
    >>> view["smile"], "cpc" in view, len(view) == len(OBJECTIVES)
    (('clip',), True, True)
    """

    def __init__(self, registry: Mapping[str, Objective], field: str) -> None:
        self._registry = registry
        self._field = field

    def __getitem__(self, name: str) -> T:
        return getattr(self._registry[name], self._field)

    def __iter__(self) -> Iterator[str]:
        return iter(self._registry)

    def __len__(self) -> int:
        return len(self._registry)

    def __repr__(self) -> str:
        return repr(dict(self))
