"""Contrastive mutual-information bounds as pure functions of a critic score matrix.

Every function takes a matrix of critic scores ``S[i, j] = f(x_i, y_j)`` (log-domain)
and returns a 0-d tensor in nats, on the device of the input. Two layouts are
supported:

``layout="batch"``
    A square ``n x n`` matrix whose diagonal holds the positive pairs; every
    off-diagonal entry is a negative (``m = n`` samples per row).
``layout="anchored"``
    An ``n x m`` matrix whose column 0 holds each anchor's positive and columns
    ``1..m-1`` its negatives (memory banks, queues).

All computations are in log space (``logsumexp``); half-precision inputs are
accumulated in float32 and the result is cast back to the input dtype. Inputs are
never modified. The functions are differentiable, so ``-bound`` is a training loss.

Where the training signal of an estimator differs from the number it reports (MINE,
JS, SMILE), the function returns a tensor whose *value* is the reported estimate and
whose *gradient* is the training gradient.

References
----------
.. [1] A. van den Oord, Y. Li, O. Vinyals. "Representation Learning with Contrastive
   Predictive Coding." arXiv:1807.03748, 2018.
.. [2] J. Song, S. Ermon. "Multi-label Contrastive Predictive Coding." NeurIPS 2020.
.. [3] B. Poole, S. Ozair, A. van den Oord, A. Alemi, G. Tucker. "On Variational Bounds
   of Mutual Information." ICML 2019.
.. [4] X. Nguyen, M. Wainwright, M. Jordan. "Estimating divergence functionals and the
   likelihood ratio by convex risk minimization." IEEE Trans. Inf. Theory, 2010.
.. [5] M. Belghazi et al. "Mutual Information Neural Estimation." ICML 2018.
.. [6] J. Song, S. Ermon. "Understanding the Limitations of Variational Mutual
   Information Estimators." ICLR 2020.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from numbers import Integral
from typing import Any, Literal, NamedTuple

import torch

from sk_mlcpc._math.objectives import (
    Objective,
    RegistryView,
    Validity,
    alpha_cpc_formula,
    cpc_formula,
    dv_formula,
    js_formula,
    log_m_cap,
    log_m_over_alpha_cap,
    mine_formula,
    ml_cpc_formula,
    nwj_formula,
    smile_formula,
    tuba_formula,
)
from sk_mlcpc._math.score_math import DenseScores, _alpha_weights, _check_scores

__all__ = [
    "BOUNDS",
    "AlphaRange",
    "alpha_cpc",
    "bound_validity",
    "cap",
    "cpc",
    "dv",
    "get_bound",
    "js",
    "mine",
    "ml_cpc",
    "nwj",
    "resolve_alpha",
    "smile",
    "tuba",
    "valid_alpha_range",
]

Layout = Literal["batch", "anchored"]

# ---------------------------------------------------------------------------------------
# Bounds
# ---------------------------------------------------------------------------------------


def _evaluate_dense(
    formula: Callable[..., Any], scores: torch.Tensor, layout: Layout, **options: Any
) -> Any:
    """``formula`` on a checked score matrix, cast back to the input dtype."""
    work, _, _ = _check_scores(scores, layout)
    result = formula(DenseScores(work, layout), **options)
    if isinstance(result, tuple):
        return result[0].to(scores.dtype), result[1]
    return result.to(scores.dtype)


def cpc(scores: torch.Tensor, *, layout: Layout = "batch") -> torch.Tensor:
    """CPC / InfoNCE lower bound on mutual information.

    ``mean_i [S_ii - logsumexp_j S_ij] + log m``: each positive is classified against the
    other ``m - 1`` samples of its row.

    Parameters
    ----------
    scores : torch.Tensor of shape (n, m)
        Critic scores, positives on the diagonal (``layout="batch"``) or in column 0
        (``layout="anchored"``).
    layout : {"batch", "anchored"}, default="batch"
        Where the positives are, see the module docstring.

    Returns
    -------
    bound : torch.Tensor
        0-d tensor, nats. A valid lower bound on ``I(X; Y)`` for every critic; it never
        exceeds its cap ``log m``.

    See Also
    --------
    alpha_cpc, ml_cpc, cap

    References
    ----------
    .. [1] A. van den Oord, Y. Li, O. Vinyals. "Representation Learning with Contrastive
       Predictive Coding." arXiv:1807.03748, 2018.

    Examples
    --------
    >>> import math, torch
    >>> from sk_mlcpc.bounds import cpc
    >>> scores = 20.0 * torch.eye(8)   # a critic that always spots the positive
    >>> round(cpc(scores).item(), 4), round(math.log(8), 4)
    (2.0794, 2.0794)
    """
    return _evaluate_dense(cpc_formula, scores, layout)


def alpha_cpc(
    scores: torch.Tensor, *, alpha: float = 1.0, layout: Layout = "batch"
) -> torch.Tensor:
    """Re-weighted CPC (alpha-CPC): weight ``alpha`` on the positive, ``beta`` on negatives.

    ``mean_i [S_ii - log((alpha e^{S_ii} + beta sum_{j != i} e^{S_ij}) / m)]`` with
    ``beta = (m - alpha) / (m - 1)``, so that the weights sum to ``m``. ``alpha = 1``
    recovers :func:`cpc`.

    Parameters
    ----------
    scores : torch.Tensor of shape (n, m)
        Critic scores.
    alpha : float, default=1.0
        Weight of the positive, in ``(0, m]``.
    layout : {"batch", "anchored"}, default="batch"
        Where the positives are.

    Returns
    -------
    bound : torch.Tensor
        0-d tensor, nats. Cap ``log(m / alpha)``. A proven lower bound for
        ``1 <= alpha <= m``; for ``alpha < 1`` treat it as *not* a lower bound (it provably
        fails below about 0.5), see :func:`bound_validity`.

    See Also
    --------
    ml_cpc, valid_alpha_range

    References
    ----------
    .. [1] J. Song, S. Ermon. "Multi-label Contrastive Predictive Coding." NeurIPS 2020.

    Examples
    --------
    >>> import torch
    >>> from sk_mlcpc.bounds import alpha_cpc, cpc
    >>> scores = torch.randn(16, 16)
    >>> torch.allclose(alpha_cpc(scores, alpha=1.0), cpc(scores))
    True
    """
    return _evaluate_dense(alpha_cpc_formula, scores, layout, alpha=alpha)


def ml_cpc(scores: torch.Tensor, *, alpha: float = 1.0, layout: Layout = "batch") -> torch.Tensor:
    """Multi-label CPC (alpha-ML-CPC): one normaliser shared by all ``n * m`` pairs.

    ``mean_i S_ii - log((1 / (n m)) sum_k [alpha e^{S_kk} + beta sum_{j != k} e^{S_kj}])``
    with ``beta = (m - alpha) / (m - 1)``. With ``alpha = 1`` it is
    ``mean_i S_ii - log mean_{k, j} e^{S_kj}``.

    Parameters
    ----------
    scores : torch.Tensor of shape (n, m)
        Critic scores.
    alpha : float, default=1.0
        Weight of the positives, in ``(0, m]``. Smaller alpha raises the cap
        ``log(m / alpha)``; below the limit of :func:`valid_alpha_range` the estimate can
        exceed the true MI.
    layout : {"batch", "anchored"}, default="batch"
        Where the positives are.

    Returns
    -------
    bound : torch.Tensor
        0-d tensor, nats. Never larger than :func:`alpha_cpc` on the same scores (its
        normaliser is the average of alpha-CPC's row normalisers and ``log`` is concave),
        hence a proven lower bound for ``1 <= alpha <= m``; between the working limit
        ``m / (n (m - 1) + 1)`` and 1 it is valid by the paper's claim and exact grid
        searches, not by proof.

    See Also
    --------
    alpha_cpc, valid_alpha_range, bound_validity

    References
    ----------
    .. [1] J. Song, S. Ermon. "Multi-label Contrastive Predictive Coding." NeurIPS 2020.

    Examples
    --------
    >>> import math, torch
    >>> from sk_mlcpc.bounds import ml_cpc, valid_alpha_range
    >>> n = 128
    >>> alpha = valid_alpha_range(n).low            # the working limit for n x n batches
    >>> scores = 30.0 * torch.eye(n, dtype=torch.float64)
    >>> round(ml_cpc(scores, alpha=alpha).item(), 2)   # far above CPC's log(128) = 4.85
    9.7
    """
    return _evaluate_dense(ml_cpc_formula, scores, layout, alpha=alpha)


def tuba(
    scores: torch.Tensor,
    *,
    baseline: torch.Tensor | float | None = None,
    layout: Layout = "batch",
) -> torch.Tensor:
    """Tractable unnormalised Barber-Agakov (TUBA) lower bound with a log-baseline ``a(y)``.

    ``1 + mean_i (S_ii - a_i) - mean_{i != j} e^{S_ij - a_j}``.

    Parameters
    ----------
    scores : torch.Tensor of shape (n, m)
        Critic scores.
    baseline : torch.Tensor, float or None, default=None
        Log-baseline ``a(y)``. ``None`` or a float applies the same value everywhere; in
        the batch layout a tensor of shape ``(m,)`` gives one value per column ``y_j``; a
        tensor of the scores' shape gives one value per pair.
    layout : {"batch", "anchored"}, default="batch"
        Where the positives are.

    Returns
    -------
    bound : torch.Tensor
        0-d tensor, nats. A valid lower bound for every critic and baseline; unbounded
        above (no cap). Tight at ``S = log p(y|x) / p(y)`` with ``a = 0``.

    See Also
    --------
    nwj

    References
    ----------
    .. [1] B. Poole et al. "On Variational Bounds of Mutual Information." ICML 2019.

    Examples
    --------
    >>> import torch
    >>> from sk_mlcpc.bounds import nwj, tuba
    >>> scores = torch.randn(6, 6)
    >>> torch.allclose(tuba(scores), nwj(scores))
    True
    >>> torch.allclose(tuba(scores, baseline=torch.zeros(6)), nwj(scores))
    True
    """
    return _evaluate_dense(tuba_formula, scores, layout, baseline=baseline)


def nwj(scores: torch.Tensor, *, layout: Layout = "batch") -> torch.Tensor:
    """NWJ (f-divergence / MINE-f) lower bound.

    ``1 + mean_i S_ii - mean_{i != j} e^{S_ij}``, i.e. :func:`tuba` with a zero baseline.
    The critic that makes it tight is the log density ratio ``log p(y|x) / p(y)`` itself.
    (The paper authors' code evaluates ``tuba(S - 1)``, the same bound for the critic
    ``S - 1``; we keep the convention under which every bound here shares one optimal
    critic.)

    Parameters
    ----------
    scores : torch.Tensor of shape (n, m)
        Critic scores.
    layout : {"batch", "anchored"}, default="batch"
        Where the positives are.

    Returns
    -------
    bound : torch.Tensor
        0-d tensor, nats. A valid lower bound for every critic; no cap; high variance
        when the MI is large. ``-inf`` (still a valid bound) when ``e^{S_ij}`` of a
        negative overflows the accumulation dtype (scores above about 88 in float32,
        float16 and bfloat16, 709 in float64); the estimators treat that as divergence.

    See Also
    --------
    tuba, js

    References
    ----------
    .. [1] X. Nguyen, M. Wainwright, M. Jordan. IEEE Trans. Inf. Theory, 2010.

    Examples
    --------
    >>> import torch
    >>> from sk_mlcpc.bounds import nwj
    >>> round(nwj(torch.zeros(4, 4)).item(), 6)   # an independent critic scores 0 nats
    0.0
    """
    return _evaluate_dense(nwj_formula, scores, layout)


def dv(scores: torch.Tensor, *, layout: Layout = "batch") -> torch.Tensor:
    """Donsker-Varadhan estimate ``mean_i S_ii - log mean_{i != j} e^{S_ij}``.

    Parameters
    ----------
    scores : torch.Tensor of shape (n, m)
        Critic scores.
    layout : {"batch", "anchored"}, default="batch"
        Where the positives are.

    Returns
    -------
    estimate : torch.Tensor
        0-d tensor, nats. The DV *representation* is a bound in expectation, but its
        batch estimate is biased upwards (log of a sample mean): a biased estimator, not
        a lower bound on a finite batch. No cap.

    See Also
    --------
    mine, smile

    References
    ----------
    .. [1] M. Donsker, S. Varadhan, 1983; M. Belghazi et al., ICML 2018.

    Examples
    --------
    >>> import torch
    >>> from sk_mlcpc.bounds import dv
    >>> round(dv(torch.zeros(4, 4)).item(), 6)
    0.0
    """
    return _evaluate_dense(dv_formula, scores, layout)


def mine(
    scores: torch.Tensor,
    *,
    log_partition_ema: torch.Tensor | None = None,
    momentum: float = 0.9,
    layout: Layout = "batch",
) -> tuple[torch.Tensor, torch.Tensor]:
    """MINE: the DV estimate with a bias-corrected gradient from a moving average.

    The value is the batch DV estimate. The gradient of the log-partition term,
    ``grad Z / Z``, is replaced by ``grad Z / Z_ema`` where ``Z_ema`` is an exponential
    moving average of the partition ``Z = mean_{i != j} e^{S_ij}`` over training steps,
    which reduces the bias of the stochastic gradient. The moving average is state that
    the caller carries from step to step: pass the returned value back in.

    Parameters
    ----------
    scores : torch.Tensor of shape (n, m)
        Critic scores.
    log_partition_ema : torch.Tensor or None, default=None
        ``log Z_ema`` returned by the previous call; ``None`` (or a NaN tensor, which
        lets a caller keep the state in a buffer without a branch) starts the average at
        this batch's partition.
    momentum : float, default=0.9
        Weight of the past in the moving average, in ``[0, 1)``.
    layout : {"batch", "anchored"}, default="batch"
        Where the positives are.

    Returns
    -------
    estimate : torch.Tensor
        0-d tensor whose value is the DV estimate (nats; a biased estimator, not a
        bound) and whose gradient is MINE's corrected gradient.
    log_partition_ema : torch.Tensor
        The updated ``log Z_ema`` (detached), to pass to the next call.

    See Also
    --------
    dv

    References
    ----------
    .. [1] M. Belghazi et al. "Mutual Information Neural Estimation." ICML 2018.

    Examples
    --------
    >>> import torch
    >>> from sk_mlcpc.bounds import dv, mine
    >>> scores = torch.randn(8, 8)
    >>> estimate, state = mine(scores)
    >>> torch.allclose(estimate, dv(scores))
    True
    >>> estimate, state = mine(scores + 1.0, log_partition_ema=state)
    """
    return _evaluate_dense(
        mine_formula, scores, layout, log_partition_ema=log_partition_ema, momentum=momentum
    )


def js(scores: torch.Tensor, *, layout: Layout = "batch") -> torch.Tensor:
    """Jensen-Shannon (f-GAN) training with the NWJ value reported.

    Trains the critic as a classifier of positives against negatives,
    ``mean_i -softplus(-S_ii) - mean_{i != j} softplus(S_ij)``, whose optimum is the log
    density ratio; reports :func:`nwj` of the same critic, which is a valid lower bound.

    Parameters
    ----------
    scores : torch.Tensor of shape (n, m)
        Critic scores.
    layout : {"batch", "anchored"}, default="batch"
        Where the positives are.

    Returns
    -------
    bound : torch.Tensor
        0-d tensor with the NWJ value (nats, a valid lower bound) and the JS gradient.

    See Also
    --------
    nwj, smile

    References
    ----------
    .. [1] S. Nowozin, B. Cseke, R. Tomioka. "f-GAN." NeurIPS 2016; Poole et al., ICML 2019.

    Examples
    --------
    >>> import torch
    >>> from sk_mlcpc.bounds import js, nwj
    >>> scores = torch.randn(8, 8)
    >>> torch.allclose(js(scores), nwj(scores))
    True
    """
    return _evaluate_dense(js_formula, scores, layout)


def smile(scores: torch.Tensor, *, clip: float = 5.0, layout: Layout = "batch") -> torch.Tensor:
    """SMILE: DV with the partition computed on clipped scores, trained with JS.

    Reports ``mean_i S_ii - log mean_{i != j} e^{clamp(S_ij, -clip, clip)}``; the gradient
    is that of the JS objective (see :func:`js`). Clipping trades bias for a large cut in
    variance.

    Parameters
    ----------
    scores : torch.Tensor of shape (n, m)
        Critic scores.
    clip : float, default=5.0
        Clipping threshold ``tau`` (> 0).
    layout : {"batch", "anchored"}, default="batch"
        Where the positives are.

    Returns
    -------
    estimate : torch.Tensor
        0-d tensor, nats. A biased estimator, not a lower bound. No cap.

    See Also
    --------
    dv, js

    References
    ----------
    .. [1] J. Song, S. Ermon. "Understanding the Limitations of Variational Mutual
       Information Estimators." ICLR 2020.

    Examples
    --------
    >>> import torch
    >>> from sk_mlcpc.bounds import dv, smile
    >>> scores = torch.randn(8, 8)
    >>> torch.allclose(smile(scores, clip=100.0), dv(scores))
    True
    """
    return _evaluate_dense(smile_formula, scores, layout, clip=clip)


# ---------------------------------------------------------------------------------------
# Valid alpha ranges
# ---------------------------------------------------------------------------------------


def _check_sizes(n: int, m: int | None) -> tuple[int, int]:
    m = n if m is None else m
    for label, value in (("n", n), ("m", m)):
        if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
            raise ValueError(f"{label} must be a positive integer, got {value!r}.")
    n, m = int(n), int(m)
    if m < 2:
        raise ValueError(f"m must be at least 2 (one positive and one negative), got {m}.")
    return n, m


# alpha="auto" for ML-CPC in the batch layout: alpha = ratio * alpha*(n), per batch size.
# Produced by ``python benchmarks/validity.py --table`` (output in
# benchmarks/results/validity.txt): for each n the smallest ratio r at which the exact
# search over the collision family (q = 1, s = inf, which dominates finite s; K from 2
# or n (n - 1) / 60000 up to n (n - 1) / 0.5) finds no expected estimate above log K,
# times 1.005, rounded up to 0.001 and never below 1 (alpha* itself).
_AUTO_RATIOS: tuple[tuple[int, float], ...] = (
    (16, 1.000),
    (32, 1.000),
    (64, 1.000),
    (128, 1.007),
    (256, 1.016),
    (512, 1.020),
    (1024, 1.022),
    (2048, 1.023),
    (4096, 1.024),
    (8192, 1.024),
)
# Beyond the table (and for the anchored layout, m != n, which was not searched): the
# n -> inf (Poisson) limit of the same search, 1.01845, times 1.005, rounded up. The
# searched limits increase with n towards it (checked up to n = 32768).
_AUTO_RATIO_BEYOND = 1.024


def _auto_ratio(n: int, m: int) -> float:
    """Ratio alpha_auto / alpha* for ``n`` positives and ``m`` samples per row."""
    if m != n:
        return _AUTO_RATIO_BEYOND
    # In-between sizes take the next larger tabulated size: the searched limit increases
    # with n, so that entry's ratio is at least as large as the one n would need.
    for size, ratio in _AUTO_RATIOS:
        if n <= size:
            return ratio
    return _AUTO_RATIO_BEYOND


class AlphaRange(NamedTuple):
    """Where alpha-CPC / alpha-ML-CPC are lower bounds, for given ``n`` and ``m``.

    Attributes
    ----------
    low : float
        The working limit: the smallest alpha treated as valid (``alpha="auto"``).
    high : float
        The largest admissible alpha, ``m`` (the cap is then 0).
    proven_low : float
        The smallest alpha with a proof of validity (1).
    invalid_below : float
        Below this, the bound provably exceeds the MI for some distribution and critic.
    alpha_star : float
        ``m / (n (m - 1) + 1)`` for ML-CPC (1 for alpha-CPC): the alpha at which the cap
        is ``log(n (m - 1) + 1)``. ``low`` is ``alpha_star`` times a tabulated ratio.
    """

    low: float
    high: float
    proven_low: float
    invalid_below: float
    alpha_star: float


def _alpha_range(rows: int, m: int, ratio: float) -> AlphaRange:
    """The alpha range of a bound whose normaliser pools ``rows`` rows of ``m`` samples."""
    c = rows * (m - 1) + 1
    # c - sqrt(c^2 - m) written as m / (c + sqrt(c^2 - m)) to avoid cancellation.
    invalid_below = m / (c + math.sqrt(c * c - m))
    alpha_star = m / c
    low = min(1.0, ratio * alpha_star)
    return AlphaRange(
        low=low,
        high=float(m),
        proven_low=1.0,
        invalid_below=invalid_below,
        alpha_star=alpha_star,
    )


def _ml_cpc_alpha_range(n: int, m: int) -> AlphaRange:
    """ML-CPC pools all ``n`` rows; its working limit is the searched ratio times alpha*."""
    return _alpha_range(n, m, _auto_ratio(n, m))


def _alpha_cpc_alpha_range(n: int, m: int) -> AlphaRange:
    """alpha-CPC normalises each row on its own: ML-CPC with one row, limit 1."""
    return _alpha_range(1, m, 1.0)


# ---------------------------------------------------------------------------------------
# The registry
# ---------------------------------------------------------------------------------------

#: One :class:`~sk_mlcpc._math.objectives.Objective` record per bound, by the name used
#: for ``objective=`` in the estimators. Everything below, the blockwise path and the
#: training loss read it; a new bound is one record (and its formula and function).
OBJECTIVES: dict[str, Objective] = {
    record.name: record
    for record in (
        Objective("cpc", cpc, cpc_formula, cap=log_m_cap),
        Objective(
            "alpha_cpc",
            alpha_cpc,
            alpha_cpc_formula,
            options=("alpha",),
            cap=log_m_over_alpha_cap,
            alpha_range=_alpha_cpc_alpha_range,
        ),
        Objective(
            "ml_cpc",
            ml_cpc,
            ml_cpc_formula,
            options=("alpha",),
            cap=log_m_over_alpha_cap,
            alpha_range=_ml_cpc_alpha_range,
        ),
        Objective("nwj", nwj, nwj_formula),
        Objective("tuba", tuba, tuba_formula, options=("baseline",)),
        Objective("dv", dv, dv_formula, validity="invalid"),
        Objective(
            "mine",
            mine,
            mine_formula,
            options=("log_partition_ema", "momentum"),
            state="log_partition_ema",
            validity="invalid",
        ),
        Objective("js", js, js_formula),
        Objective("smile", smile, smile_formula, options=("clip",), validity="invalid"),
    )
}

#: Every bound's public function, by name: a live view of :data:`OBJECTIVES`.
BOUNDS: Mapping[str, Callable[..., object]] = RegistryView(OBJECTIVES, "dense")

#: Objectives that take an ``alpha`` argument (read ``OBJECTIVES[name].takes_alpha``
#: where an entry added later must count too).
ALPHA_OBJECTIVES = tuple(name for name, record in OBJECTIVES.items() if record.takes_alpha)


def get_objective(name: str) -> Objective:
    """Look up a bound's registry record by name.

    Parameters
    ----------
    name : str
        One of the keys of :data:`OBJECTIVES`.

    Returns
    -------
    record : Objective

    Raises
    ------
    ValueError
        For an unknown name; the message lists the choices.

    Examples
    --------
    >>> from sk_mlcpc._math.bounds import get_objective
    >>> get_objective("ml_cpc").takes_alpha
    True
    """
    try:
        return OBJECTIVES[name]
    except (KeyError, TypeError):
        choices = ", ".join(repr(key) for key in OBJECTIVES)
        raise ValueError(f"Unknown bound {name!r}. Choose one of: {choices}.") from None


def get_bound(name: str) -> Callable[..., object]:
    """Look up a bound by name.

    Parameters
    ----------
    name : str
        One of the keys of :data:`BOUNDS`.

    Returns
    -------
    bound : callable

    Raises
    ------
    ValueError
        For an unknown name; the message lists the choices.

    Examples
    --------
    >>> from sk_mlcpc.bounds import get_bound
    >>> get_bound("ml_cpc").__name__
    'ml_cpc'
    >>> get_bound("infonce")
    Traceback (most recent call last):
    ...
    ValueError: Unknown bound 'infonce'. Choose one of: ...
    """
    return get_objective(name).dense


# ---------------------------------------------------------------------------------------
# Caps and validity
# ---------------------------------------------------------------------------------------


def cap(name: str, n: int, m: int | None = None, alpha: float = 1.0) -> float:
    """The largest value a bound can take on an ``n x m`` score matrix.

    Parameters
    ----------
    name : str
        A bound from :data:`BOUNDS`.
    n : int
        Rows (positives) per evaluation.
    m : int or None, default=None
        Samples per row; ``None`` means ``m = n`` (batch layout).
    alpha : float, default=1.0
        Positive weight for ``"alpha_cpc"`` and ``"ml_cpc"``.

    Returns
    -------
    cap : float
        ``log m`` for CPC, ``log(m / alpha)`` for alpha-CPC and ML-CPC, ``inf`` for the
        uncapped bounds and estimators.

    Examples
    --------
    >>> from sk_mlcpc.bounds import cap
    >>> round(cap("cpc", 128), 3), round(cap("ml_cpc", 128, alpha=0.01), 3)
    (4.852, 9.457)
    >>> cap("nwj", 128)
    inf
    """
    objective = get_objective(name)
    n, m = _check_sizes(n, m)
    return objective.cap(n, m, alpha)


def valid_alpha_range(n: int, m: int | None = None, *, objective: str = "ml_cpc") -> AlphaRange:
    """Range of ``alpha`` in which alpha-(ML-)CPC is a lower bound on MI.

    Validity is *proven* for ``1 <= alpha <= m``. Below 1 ML-CPC is claimed valid (by
    the paper, and by our exact counterexample searches) down to the working limit
    ``low``, which is ``alpha* = m / (n (m - 1) + 1)`` times a tabulated ratio ``r(n)``:
    1 up to ``n = 64``, rising to 1.024 from ``n = 4096`` (``low = min(1, r alpha*)``).
    ``alpha*`` alone fails from ``n = 128`` on: the exact collision counterexample
    (X uniform on K symbols, Y = X, critic ``s 1[x = y]``, ``s -> inf``) puts the
    expected estimate above ``log K`` (by 2.2e-4 nats at ``n = 128``, ``K = 1679``).
    ``r(n)`` is the smallest ratio with no such excess, times 1.005, rounded up to
    0.001; sizes between table entries take the next larger entry, sizes beyond 8192
    and the anchored layout (``m != n``, not searched) take the ``n -> inf`` limit,
    1.024. Below ``c - sqrt(c^2 - m)`` with ``c = n (m - 1) + 1`` a distribution and
    critic exist for which the expected estimate exceeds the MI. alpha-CPC normalises
    each row on its own and behaves as ML-CPC with ``n = 1``: its limit is 1 and it
    fails below about 0.5. See ``docs/alpha_validity.rst``.

    Parameters
    ----------
    n : int
        Positives per evaluation (rows of the score matrix).
    m : int or None, default=None
        Samples per row; ``None`` means ``m = n`` (batch layout).
    objective : {"ml_cpc", "alpha_cpc"}, default="ml_cpc"
        Which bound.

    Returns
    -------
    AlphaRange
        ``(low, high, proven_low, invalid_below, alpha_star)``.

    See Also
    --------
    bound_validity, resolve_alpha

    Examples
    --------
    >>> from sk_mlcpc.bounds import valid_alpha_range
    >>> r = valid_alpha_range(128)
    >>> round(r.low, 6), round(r.alpha_star, 6), r.high, r.proven_low
    (0.007929, 0.007874, 128.0, 1.0)
    >>> round(valid_alpha_range(64).low / valid_alpha_range(64).alpha_star, 3)
    1.0
    >>> round(valid_alpha_range(100_000).low * 100_000, 4)   # beyond the table
    1.024
    >>> round(valid_alpha_range(128, objective="alpha_cpc").invalid_below, 3)
    0.501
    """
    record = OBJECTIVES.get(objective) if isinstance(objective, str) else None
    if record is None or record.alpha_range is None:
        choices = tuple(name for name, entry in OBJECTIVES.items() if entry.takes_alpha)
        raise ValueError(f"objective must be one of {choices}, got {objective!r}.")
    n, m = _check_sizes(n, m)
    return record.alpha_range(n, m)


def bound_validity(name: str, n: int, m: int | None = None, alpha: float = 1.0) -> Validity:
    """Whether a configured bound is a lower bound on MI.

    Parameters
    ----------
    name : str
        A bound from :data:`BOUNDS`.
    n : int
        Positives per evaluation.
    m : int or None, default=None
        Samples per row; ``None`` means ``m = n``.
    alpha : float, default=1.0
        Positive weight, for ``"alpha_cpc"`` and ``"ml_cpc"``.

    Returns
    -------
    validity : {"proven", "claimed", "invalid"}
        ``"proven"``: a lower bound for every critic and distribution (CPC, NWJ, TUBA,
        JS, and the alpha bounds for ``1 <= alpha <= m``). ``"claimed"``: ML-CPC with
        ``valid_alpha_range(n, m).low <= alpha < 1``. ``"invalid"``: not a lower bound
        (alpha below the limit, which lies above ``alpha*`` from ``n = 128`` on; DV,
        MINE and SMILE, which are biased estimators).

    Examples
    --------
    >>> from sk_mlcpc.bounds import bound_validity
    >>> bound_validity("ml_cpc", 128, alpha=1.0)
    'proven'
    >>> bound_validity("ml_cpc", 128, alpha=0.01)
    'claimed'
    >>> bound_validity("ml_cpc", 128, alpha=128 / (128 * 127 + 1))   # alpha* itself fails
    'invalid'
    >>> bound_validity("ml_cpc", 128, alpha=0.001)
    'invalid'
    >>> bound_validity("alpha_cpc", 128, alpha=0.5)
    'invalid'
    >>> bound_validity("dv", 128)
    'invalid'
    """
    objective = get_objective(name)
    n, m = _check_sizes(n, m)
    if objective.alpha_range is None or objective.validity == "invalid":
        return objective.validity
    _alpha_weights(alpha, m)
    limits = objective.alpha_range(n, m)
    if alpha >= limits.proven_low:
        return "proven"
    # A relative tolerance keeps alpha="auto" (exactly the limit, up to rounding) claimed.
    if alpha >= limits.low * (1.0 - 1e-12):
        return "claimed"
    return "invalid"


def resolve_alpha(alpha: float | str, objective: str, n: int, m: int | None = None) -> float:
    """Turn an ``alpha`` parameter (a number or ``"auto"``) into the number a bound uses.

    Parameters
    ----------
    alpha : float or "auto"
        ``"auto"`` is the smallest valid alpha, ``valid_alpha_range(n, m).low``, for the
        alpha bounds, and 1 for the others (which ignore it).
    objective : str
        A bound from :data:`BOUNDS`.
    n, m : int
        Score-matrix shape; ``m=None`` means ``m = n``.

    Returns
    -------
    alpha : float

    Examples
    --------
    >>> from sk_mlcpc.bounds import resolve_alpha
    >>> round(resolve_alpha("auto", "ml_cpc", 128), 6)   # 1.007 alpha*
    0.007929
    >>> resolve_alpha("auto", "alpha_cpc", 128)
    1.0
    """
    record = get_objective(objective)
    n, m = _check_sizes(n, m)
    if isinstance(alpha, str):
        if alpha != "auto":
            raise ValueError(f"alpha must be a positive number or 'auto', got {alpha!r}.")
        if record.alpha_range is not None:
            return record.alpha_range(n, m).low
        return 1.0
    _alpha_weights(alpha, m)
    return float(alpha)
