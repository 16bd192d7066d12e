"""Contrastive bounds for separable critics without the ``n x n`` score matrix.

A separable (or bilinear) critic scores a pair as ``S_ij = g_i . h_j + a_i + b_j``, with
embeddings ``g`` of shape ``(n, d)``, ``h`` of shape ``(m, d)`` and optional scalar
marginal terms ``a`` (per row) and ``b`` (per column). Every bound of
:mod:`sk_mlcpc.bounds` needs the scores only through a few per-row reductions over the
negatives: the log-sum-exp ``R_i = log sum_{j in N(i)} e^{S_ij}`` (CPC, alpha-CPC, ML-CPC,
NWJ, TUBA, DV, MINE), the sum of ``softplus(S_ij)`` (the JS gradient of JS and SMILE) and
the log-sum-exp of ``clamp(S_ij, -tau, tau)`` (SMILE's reported value). The positives
``S_ii`` cost ``O(n d)``.

:func:`blockwise_bound` computes these reductions in ``block_size x block_size`` tiles of
the score matrix with a streaming log-sum-exp, and differentiates them with a custom
:class:`torch.autograd.Function` whose backward pass recomputes each tile instead of
storing it. Peak memory is ``O((n + m) d + block_size^2)`` instead of ``O(n m)``, for the
forward *and* the backward pass; values and gradients equal those of the dense functions
up to float rounding (the sums run in a different order).

Conventions follow :mod:`sk_mlcpc.bounds` exactly: each bound's formula is the one its
registry record holds (:mod:`sk_mlcpc._math.objectives`), evaluated here on tiled
reductions instead of a score matrix, so the ``alpha`` / ``beta`` weighting, MINE's moving
average and the value-versus-gradient split of JS and SMILE are the dense ones;
half-precision inputs are accumulated in float32 and the result cast back to the input
dtype, inputs are never modified, NaN is propagated (not checked), as in the dense
functions.

Joint (concat) critics are not separable; :func:`chunked_scores` evaluates them over row
chunks under activation checkpointing, which bounds their memory to the ``n x m`` scores
plus one chunk's activations.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from numbers import Integral, Real
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.checkpoint import checkpoint

from sk_mlcpc._math.bounds import OBJECTIVES, get_objective
from sk_mlcpc._math.objectives import RegistryView

__all__ = [
    "BLOCKWISE_OPTIONS",
    "DEFAULT_BLOCK_SIZE",
    "blockwise_bound",
    "blockwise_peak_bytes",
    "chunked_scores",
    "separable_parts",
]

#: Tile edge used when ``block_size`` is not given: a float32 tile is 4 MiB.
DEFAULT_BLOCK_SIZE = 1024

#: The keyword options each bound accepts (those of the dense function, less ``layout``):
#: a live view of the registry's ``options``.
BLOCKWISE_OPTIONS: Mapping[str, tuple[str, ...]] = RegistryView(OBJECTIVES, "options")


# ---------------------------------------------------------------------------------------
# The streaming kernel
# ---------------------------------------------------------------------------------------


def _tile(
    g: torch.Tensor, c: torch.Tensor, a: torch.Tensor, b: torch.Tensor, rows: slice, cols: slice
) -> torch.Tensor:
    """Scores ``g[rows] . c[cols] + a[rows] + b[cols]`` of one tile (a fresh tensor)."""
    scores = g[rows] @ c[cols].T
    scores += a[rows, None]
    scores += b[None, cols]
    return scores


def _mask_diagonal(
    scores: torch.Tensor, start_row: int, start_col: int, *, copy: bool
) -> torch.Tensor:
    """The tile with the entries of the global diagonal that fall in it set to ``-inf``.

    A tile that the diagonal misses is returned as is. Otherwise the fill is in place on
    ``scores`` (a temporary of the kernel, never an input) or, with ``copy``, on a copy.
    """
    n_rows, n_cols = scores.shape
    first = max(start_row, start_col)
    last = min(start_row + n_rows, start_col + n_cols)
    if first >= last:
        return scores
    if copy:
        scores = scores.clone()
    index = torch.arange(first, last, device=scores.device)
    scores[index - start_row, index - start_col] = -math.inf
    return scores


class _NegativeReductions(torch.autograd.Function):
    """Per-row reductions of the negative scores, with tile recomputation in backward.

    Outputs, for each row ``i`` and its negatives ``N(i)`` (every column but ``i`` when
    ``diagonal`` is true, every column otherwise):

    * ``lse_i = log sum_{j in N(i)} e^{S_ij}`` (differentiable);
    * ``softplus_i = sum_{j in N(i)} softplus(S_ij)`` (differentiable; zeros unless
      ``with_softplus``);
    * ``clipped_lse_i = log sum_{j in N(i)} e^{clamp(S_ij, -clip, clip)}``
      (not differentiable; zeros unless ``clip`` is given).
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        g: torch.Tensor,
        c: torch.Tensor,
        a: torch.Tensor,
        b: torch.Tensor,
        diagonal: bool,
        block_size: int,
        with_softplus: bool,
        clip: float | None,
        max_score: float | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        work_dtype = a.dtype
        n, m = g.shape[0], c.shape[0]
        lse = torch.full((n,), -math.inf, dtype=work_dtype, device=g.device)
        softplus = torch.zeros(n, dtype=work_dtype, device=g.device)
        clipped = torch.full((n,), -math.inf, dtype=work_dtype, device=g.device)
        for r0 in range(0, n, block_size):
            rows = slice(r0, min(r0 + block_size, n))
            row_lse = lse[rows]
            for c0 in range(0, m, block_size):
                cols = slice(c0, min(c0 + block_size, m))
                raw = _tile(g, c, a, b, rows, cols)
                if max_score is not None:  # evaluation only: blockwise_bound refuses grads
                    raw = raw.clamp_(max=max_score)
                scores = _mask_diagonal(raw, r0, c0, copy=True) if diagonal else raw
                row_lse = torch.logaddexp(row_lse, torch.logsumexp(scores, dim=1))
                if with_softplus:
                    # softplus(-inf) = 0: the masked diagonal adds nothing.
                    softplus[rows] += F.softplus(scores).sum(dim=1)
                if clip is not None:
                    # Clip first, then mask, as bounds.smile does.
                    clamped = raw.clamp(-clip, clip)
                    if diagonal:
                        clamped = _mask_diagonal(clamped, r0, c0, copy=False)
                    clipped[rows] = torch.logaddexp(clipped[rows], torch.logsumexp(clamped, 1))
            lse[rows] = row_lse
        ctx.save_for_backward(g, c, a, b, lse)
        ctx.diagonal = diagonal
        ctx.block_size = block_size
        ctx.with_softplus = with_softplus
        ctx.set_materialize_grads(False)
        if not with_softplus:
            softplus.zero_()
        if clip is None:
            clipped.zero_()
        ctx.mark_non_differentiable(clipped)
        return lse, softplus, clipped

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(  # type: ignore[override]
        ctx: Any,
        grad_lse: torch.Tensor | None,
        grad_softplus: torch.Tensor | None,
        grad_clipped: torch.Tensor | None,
    ) -> tuple[torch.Tensor | None, ...]:
        g, c, a, b, lse = ctx.saved_tensors
        need_g, need_c, need_a, need_b = ctx.needs_input_grad[:4]
        nothing = (None,) * 9
        if not ctx.with_softplus:
            grad_softplus = None  # the output was a placeholder of zeros
        if grad_lse is None and grad_softplus is None:
            return nothing
        work_dtype = a.dtype
        n, m = g.shape[0], c.shape[0]
        block_size = ctx.block_size
        grad_g = torch.zeros(g.shape, dtype=work_dtype, device=g.device) if need_g else None
        grad_c = torch.zeros(c.shape, dtype=work_dtype, device=c.device) if need_c else None
        grad_a = torch.zeros(n, dtype=work_dtype, device=a.device) if need_a else None
        grad_b = torch.zeros(m, dtype=work_dtype, device=b.device) if need_b else None
        with torch.autocast(device_type=g.device.type, enabled=False):
            _accumulate_gradients(
                g,
                c,
                a,
                b,
                lse,
                ctx.diagonal,
                block_size,
                grad_lse,
                grad_softplus,
                grad_g,
                grad_c,
                grad_a,
                grad_b,
            )
        return grad_g, grad_c, grad_a, grad_b, None, None, None, None, None


def _accumulate_gradients(
    g: torch.Tensor,
    c: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    lse: torch.Tensor,
    diagonal: bool,
    block_size: int,
    grad_lse: torch.Tensor | None,
    grad_softplus: torch.Tensor | None,
    grad_g: torch.Tensor | None,
    grad_c: torch.Tensor | None,
    grad_a: torch.Tensor | None,
    grad_b: torch.Tensor | None,
) -> None:
    """Add each recomputed tile's contribution to the gradient buffers (in place)."""
    n, m = g.shape[0], c.shape[0]
    # A row whose negatives all score -inf has lse_i = -inf, and e^{S_ij - lse_i} would
    # be e^{-inf + inf} = NaN. Its negatives carry no weight (e^{-inf} = 0 of a sum of
    # zeros; the row's lse cannot move any bound that is finite), so shift by 0 there:
    # e^{-inf - 0} = 0.
    lse = torch.where(torch.isneginf(lse), torch.zeros_like(lse), lse)
    for r0 in range(0, n, block_size):
        rows = slice(r0, min(r0 + block_size, n))
        for c0 in range(0, m, block_size):
            cols = slice(c0, min(c0 + block_size, m))
            scores = _tile(g, c, a, b, rows, cols)
            if diagonal:
                scores = _mask_diagonal(scores, r0, c0, copy=False)
            # weight_ij = dL/dS_ij = dL/dlse_i e^{S_ij - lse_i} + dL/dsp_i sigmoid(S_ij);
            # both vanish on the masked diagonal (S = -inf). In-place updates of the
            # tile keep at most two tiles alive.
            weight = None
            if grad_softplus is not None:
                weight = torch.sigmoid(scores).mul_(grad_softplus[rows, None])
            if grad_lse is not None:
                scores = scores.sub_(lse[rows, None]).exp_().mul_(grad_lse[rows, None])
                weight = scores if weight is None else weight.add_(scores)
            if grad_g is not None:
                grad_g[rows] += weight @ c[cols]
            if grad_c is not None:
                grad_c[cols] += weight.T @ g[rows]
            if grad_a is not None:
                grad_a[rows] += weight.sum(dim=1)
            if grad_b is not None:
                grad_b[cols] += weight.sum(dim=0)


# ---------------------------------------------------------------------------------------
# Input validation
# ---------------------------------------------------------------------------------------


def _check_matrix(label: str, value: object) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{label} must be a torch.Tensor, got {type(value).__name__}.")
    if not torch.is_floating_point(value):
        raise TypeError(f"{label} must have a floating dtype, got {value.dtype}.")
    if value.ndim != 2:
        raise ValueError(
            f"{label} must be a 2-D (samples, features) matrix, got shape {tuple(value.shape)}."
        )
    return value


def _check_terms(
    label: str, value: object, length: int, like: torch.Tensor, work_dtype: torch.dtype
) -> torch.Tensor:
    """A per-row / per-column marginal term as a ``(length,)`` tensor in ``work_dtype``."""
    if value is None:
        return torch.zeros(length, dtype=work_dtype, device=like.device)
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{label} must be a torch.Tensor or None, got {type(value).__name__}.")
    if not torch.is_floating_point(value):
        raise TypeError(f"{label} must have a floating dtype, got {value.dtype}.")
    if tuple(value.shape) != (length,):
        raise ValueError(f"{label} must have shape ({length},), got {tuple(value.shape)}.")
    if value.device != like.device:
        raise ValueError(f"{label} is on {value.device} but the embeddings are on {like.device}.")
    return value.to(work_dtype)


def _check_block_size(block_size: object) -> int:
    if isinstance(block_size, bool) or not isinstance(block_size, Integral) or block_size < 1:
        raise ValueError(f"block_size must be a positive integer, got {block_size!r}.")
    return int(block_size)


def _check_options(name: str, options: dict[str, Any]) -> None:
    allowed = get_objective(name).options
    unexpected = sorted(set(options) - set(allowed))
    if unexpected:
        hint = (
            " The layout follows from `negatives` (None: batch layout, a bank: anchored)."
            if "layout" in unexpected
            else ""
        )
        accepts = ", ".join(allowed) if allowed else "no options"
        raise TypeError(
            f"blockwise_bound({name!r}) got unexpected option(s) {', '.join(unexpected)}; "
            f"{name!r} accepts {accepts}.{hint}"
        )


# ---------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------


def blockwise_bound(
    name: str,
    g: torch.Tensor,
    h: torch.Tensor,
    *,
    a: torch.Tensor | None = None,
    b: torch.Tensor | None = None,
    negatives: torch.Tensor | None = None,
    b_negatives: torch.Tensor | None = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
    max_score: float | None = None,
    **options: Any,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """A bound of :mod:`sk_mlcpc.bounds` for a separable critic, in memory-bounded tiles.

    Equal in value and gradient (with respect to ``g``, ``h``, ``a``, ``b`` and the bank)
    to ``get_bound(name)(scores, **options)`` on the score matrix
    ``S_ij = g_i . h_j + a_i + b_j``, without materialising it: the score matrix is
    visited in ``block_size x block_size`` tiles with a streaming log-sum-exp, forward and
    backward (the backward pass recomputes each tile).

    Parameters
    ----------
    name : str
        A bound from :data:`sk_mlcpc.bounds.BOUNDS`: ``"cpc"``, ``"alpha_cpc"``,
        ``"ml_cpc"``, ``"nwj"``, ``"tuba"``, ``"dv"``, ``"mine"``, ``"js"`` or ``"smile"``.
    g : torch.Tensor of shape (n, d)
        Row (``x``-side) embeddings: ``critic.embed_x(x)``.
    h : torch.Tensor of shape (n, d)
        Column (``y``-side) embeddings of the positives, aligned with ``g``:
        ``critic.embed_y(y)``. Same dtype and device as ``g``.
    a : torch.Tensor of shape (n,) or None, default=None
        Per-row marginal term ``a(x_i)``; ``None`` means 0.
    b : torch.Tensor of shape (n,) or None, default=None
        Per-column marginal term ``b(y_j)`` of the positives; ``None`` means 0.
    negatives : torch.Tensor of shape (k, d) or None, default=None
        ``None``: **batch layout**, the ``n x n`` matrix with positives on the diagonal
        and every other pair of the batch a negative (``m = n``). A tensor: **anchored
        layout**, a bank of ``k`` negative embeddings shared by every row (a memory bank
        or MoCo queue): row ``i`` holds the positive ``g_i . h_i + a_i + b_i`` in column 0
        and ``g_i . q_j + a_i + b^q_j`` in columns ``1..k`` (``m = k + 1``).
    b_negatives : torch.Tensor of shape (k,) or None, default=None
        Marginal term of the bank (anchored layout only); ``None`` means 0.
    block_size : int, default=1024
        Edge of a tile. Peak memory is about ``(n + m) d`` embedding-sized buffers plus a
        few ``block_size^2`` tiles, see :func:`blockwise_peak_bytes`.
    max_score : float or None, default=None
        Evaluate the bound of the scores clamped from above,
        ``min(S_ij, max_score)`` (the dense equivalent is ``scores.clamp(max=max_score)``),
        as the estimators do with their ``score_ceiling_``. For evaluation only: with
        inputs that require gradients it raises a ``ValueError``.
    **options
        The dense bound's options, less ``layout``: ``alpha`` (``"alpha_cpc"``,
        ``"ml_cpc"``), ``baseline`` (``"tuba"``: a float, or in the batch layout a
        tensor of shape ``(n,)``, one value per column), ``log_partition_ema`` and
        ``momentum`` (``"mine"``), ``clip`` (``"smile"``). Any other option raises a
        ``TypeError``.

    Returns
    -------
    bound : torch.Tensor or tuple of torch.Tensor
        0-d tensor in nats in the dtype of ``g``, as the dense function returns it;
        ``"mine"`` returns ``(estimate, log_partition_ema)`` like
        :func:`sk_mlcpc.bounds.mine`.

    Raises
    ------
    ValueError
        Unknown bound, mismatched shapes or devices, too few samples, invalid option
        values (the same checks as the dense functions).
    TypeError
        Non-tensor or non-floating inputs, mixed dtypes, options the bound does not take.

    See Also
    --------
    sk_mlcpc.bounds.get_bound : the dense functions, on a materialised score matrix.
    separable_parts : ``(g, h, a, b)`` of a separable or bilinear critic.
    chunked_scores : memory-bounded score matrix of a joint (concat) critic.

    Notes
    -----
    Each bound is a function of the positives ``S_ii`` and of per-row reductions over
    the negatives ``N(i)``: ``R_i = log sum_{N(i)} e^{S_ij}`` gives CPC (row normaliser
    ``logaddexp(S_ii, R_i)``), alpha-CPC and ML-CPC (``logaddexp(S_ii + log alpha,
    R_i + log beta)``, summed over rows by one more log-sum-exp for ML-CPC), and
    ``logsumexp_i R_i - log(count)`` is the log-mean-exp partition of NWJ, TUBA, DV and
    MINE; ``sum_{N(i)} softplus(S_ij)`` gives the JS training objective of JS and SMILE,
    and the log-sum-exp of the clipped scores SMILE's value. The gradient of a
    reduction with respect to ``S_ij`` is ``e^{S_ij - R_i}`` (resp. ``sigmoid(S_ij)``),
    so the backward pass rebuilds each tile, weights it, and accumulates
    ``W h``, ``W^T g`` and the row and column sums of ``W``.

    Examples
    --------
    >>> import torch
    >>> from sk_mlcpc.blockwise import blockwise_bound
    >>> from sk_mlcpc.bounds import ml_cpc
    >>> g, h = torch.randn(10, 3, dtype=torch.float64), torch.randn(10, 3, dtype=torch.float64)
    >>> value = blockwise_bound("ml_cpc", g, h, alpha=0.1, block_size=4)
    >>> torch.allclose(value, ml_cpc(g @ h.T, alpha=0.1))
    True

    The anchored layout with a shared bank of negatives (a queue):

    >>> from sk_mlcpc.bounds import cpc
    >>> queue = torch.randn(7, 3, dtype=torch.float64)
    >>> scores = torch.cat([(g * h).sum(1, keepdim=True), g @ queue.T], dim=1)
    >>> torch.allclose(
    ...     blockwise_bound("cpc", g, h, negatives=queue, block_size=4),
    ...     cpc(scores, layout="anchored"),
    ... )
    True
    """
    objective = get_objective(name)  # unknown names raise the registry's ValueError
    _check_options(name, options)
    block_size = _check_block_size(block_size)
    max_score = _check_max_score(max_score, g, h, a, b, negatives, b_negatives)
    _check_embeddings(g, h)
    work_dtype = torch.float32 if g.dtype in (torch.float16, torch.bfloat16) else g.dtype
    a_work = _check_terms("a", a, g.shape[0], g, work_dtype)
    b_work = _check_terms("b", b, g.shape[0], g, work_dtype)
    b_bank = _check_bank(g, negatives, b_negatives, work_dtype)
    # Half-precision embeddings are upcast once (O((n + m) d) memory): every product, sum
    # and exponential then runs in float32, as the dense bounds accumulate. Autocast is
    # switched off, or it would run the tile products in half precision again.
    with torch.autocast(device_type=g.device.type, enabled=False):
        bank = None if negatives is None else negatives.to(work_dtype)
        parts = _TiledScores(
            g.to(work_dtype), h.to(work_dtype), bank, a_work, b_work, b_bank, block_size, max_score
        )
        result = objective.formula(parts, **options)
    if isinstance(result, tuple):
        return result[0].to(g.dtype), result[1]
    return result.to(g.dtype)


def _check_max_score(max_score: object, *inputs: torch.Tensor | None) -> float | None:
    if max_score is None:
        return None
    if isinstance(max_score, bool) or not isinstance(max_score, Real):
        raise TypeError(f"max_score must be a real number or None, got {max_score!r}.")
    if not math.isfinite(max_score):
        raise ValueError(f"max_score must be finite, got {max_score}.")
    if torch.is_grad_enabled() and any(
        isinstance(t, torch.Tensor) and t.requires_grad for t in inputs
    ):
        raise ValueError(
            "max_score is for evaluation: the clamped scores have no gradient above it. "
            "Call blockwise_bound under torch.no_grad() or with detached inputs."
        )
    return float(max_score)


def _check_embeddings(g: object, h: object) -> None:
    """``g`` and ``h``: floating ``(n, d)`` matrices of one shape, dtype and device."""
    g = _check_matrix("g", g)
    h = _check_matrix("h", h)
    if h.shape != g.shape:
        raise ValueError(
            f"g and h must have the same shape (n, d): row i of h is the positive of row i "
            f"of g; got {tuple(g.shape)} and {tuple(h.shape)}."
        )
    if h.dtype != g.dtype or h.device != g.device:
        raise TypeError(
            f"g and h must share dtype and device, got {g.dtype} on {g.device} and "
            f"{h.dtype} on {h.device}."
        )


def _check_bank(
    g: torch.Tensor,
    negatives: object,
    b_negatives: object,
    work_dtype: torch.dtype,
) -> torch.Tensor | None:
    """Check the bank of negatives (anchored layout); return its column terms.

    ``None`` in the batch layout (``negatives is None``), whose negatives are the other
    rows' positives. Raises when the score matrix would hold no negatives.
    """
    n, d = g.shape
    if negatives is None:
        if b_negatives is not None:
            raise ValueError("b_negatives is given but negatives is None (batch layout).")
        b_bank, m = None, n
    else:
        bank = _check_matrix("negatives", negatives)
        if bank.shape[1] != d:
            raise ValueError(
                f"negatives must have d = {d} columns like g, got shape {tuple(bank.shape)}."
            )
        if bank.dtype != g.dtype or bank.device != g.device:
            raise TypeError(
                f"negatives must share the dtype and device of g ({g.dtype} on {g.device}), "
                f"got {bank.dtype} on {bank.device}."
            )
        b_bank = _check_terms("b_negatives", b_negatives, bank.shape[0], g, work_dtype)
        m = bank.shape[0] + 1
    if n < 1 or m < 2:
        raise ValueError(
            f"A score matrix of shape {(n, m)} holds no negatives: at least 2 samples per row "
            "are needed."
        )
    return b_bank


# ---------------------------------------------------------------------------------------
# The tiled provider of the formulas' parts
# ---------------------------------------------------------------------------------------


class _TiledNegatives:
    """The negative reductions of one tiled pass, as the formulas of the objectives read them."""

    def __init__(
        self,
        positives: torch.Tensor,
        lse: torch.Tensor,
        softplus: torch.Tensor,
        clipped: torch.Tensor,
        count: int,
    ) -> None:
        self._positives = positives
        self._lse = lse
        self._softplus = softplus
        self._clipped = clipped
        self._count = count

    def row_log_sum_exp(self) -> torch.Tensor:
        return self._lse

    def row_log_sum_exp_with_positive(self) -> torch.Tensor:
        return torch.logaddexp(self._positives, self._lse)

    def log_mean_exp(self) -> torch.Tensor:
        return torch.logsumexp(self._lse, dim=0) - math.log(self._count)

    def mean_softplus(self) -> torch.Tensor:
        return self._softplus.sum() / self._count

    def clipped_log_mean_exp(self) -> torch.Tensor:
        return torch.logsumexp(self._clipped, dim=0) - math.log(self._count)


class _TiledScores:
    """``S_ij = g_i . c_j + a_i + b_j`` as the formulas see it, never materialised.

    The columns ``c`` are the positives ``h`` (batch layout, ``bank=None``, diagonal
    masked) or a bank of negatives (anchored layout, positive ``g_i . h_i + a_i + b_i``
    in column 0). Every input is in the working dtype. Each call of :meth:`negatives` is
    one tiled pass (:class:`_NegativeReductions`) computing the reductions asked for.
    """

    def __init__(
        self,
        g: torch.Tensor,
        h: torch.Tensor,
        bank: torch.Tensor | None,
        a: torch.Tensor,
        b: torch.Tensor,
        b_bank: torch.Tensor | None,
        block_size: int,
        max_score: float | None = None,
    ) -> None:
        self._g, self._h, self._a, self._b = g, h, a, b
        self._max_score = max_score
        self._bank = bank
        self._b_bank = b_bank
        self._block_size = block_size
        self.n = g.shape[0]
        self.m = self.n if bank is None else bank.shape[0] + 1

    @functools.cached_property
    def positives(self) -> torch.Tensor:
        positives = (self._g * self._h).sum(dim=1) + self._a + self._b
        return positives if self._max_score is None else positives.clamp(max=self._max_score)

    def negatives(self, *, softplus: bool = False, clip: float | None = None) -> _TiledNegatives:
        if clip is not None:
            if isinstance(clip, bool) or not isinstance(clip, Real) or not clip > 0:
                raise ValueError(f"clip must be positive, got {clip}.")
            clip = float(clip)
        batch = self._bank is None
        lse, softplus_sums, clipped = _NegativeReductions.apply(
            self._g,
            self._h if batch else self._bank,
            self._a,
            self._b if batch else self._b_bank,
            batch,
            self._block_size,
            softplus,
            clip,
            self._max_score,
        )
        count = self.n * (self.m - 1)
        return _TiledNegatives(self.positives, lse, softplus_sums, clipped, count)

    def minus_baseline(self, baseline: object) -> _TiledScores:
        layout = "batch" if self._bank is None else "anchored"
        b_bank = self._b if self._bank is None else self._b_bank
        if baseline is not None and self._max_score is not None:
            # The ceiling bounds the critic's scores, not the scores less TUBA's baseline.
            raise ValueError("max_score cannot be combined with a TUBA baseline.")
        b, b_bank = _apply_baseline(baseline, layout, self.n, self._b, b_bank)
        return _TiledScores(
            self._g, self._h, self._bank, self._a, b, b_bank, self._block_size, self._max_score
        )


def _apply_baseline(
    baseline: object, layout: str, n: int, b_work: torch.Tensor, b_bank: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """TUBA's log-baseline ``a(y_j)``, folded into the column terms: ``S - a = ... + (b - a)``."""
    if baseline is None:
        return b_work, b_bank
    base = torch.as_tensor(baseline, dtype=b_work.dtype, device=b_work.device)
    if base.ndim == 0:
        shifted = b_work - base
        return shifted, (shifted if layout == "batch" else b_bank - base)
    if layout == "batch" and tuple(base.shape) == (n,):
        shifted = b_work - base
        return shifted, shifted
    shapes = f"a scalar or shape ({n},)" if layout == "batch" else "a scalar"
    raise ValueError(
        f"baseline must be {shapes} for blockwise TUBA ({layout} layout), got shape "
        f"{tuple(base.shape)}; a per-pair baseline would be the n x m matrix this module "
        "avoids."
    )


# ---------------------------------------------------------------------------------------
# Critics
# ---------------------------------------------------------------------------------------


def separable_parts(
    critic: nn.Module, x: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """The factors ``(g, h, a, b)`` of a separable critic's scores on a batch.

    ``critic(x, y)`` equals ``g @ h.T + a[:, None] + b[None, :]`` (``a``, ``b`` are
    ``None`` without marginal terms), so ``blockwise_bound(name, *parts)`` -- with
    ``a=`` and ``b=`` passed by keyword -- equals the dense bound of ``critic(x, y)``.

    Parameters
    ----------
    critic : torch.nn.Module
        A :class:`~sk_mlcpc.critics.SeparableCritic` (with or without marginal terms),
        a :class:`~sk_mlcpc.critics.BilinearCritic`, any module with
        ``separable = True`` and ``embed_x`` / ``embed_y`` methods, or any module with
        its own ``separable_parts(x, y)`` method returning ``(g, h, a, b)`` in this
        convention (which is then called; the encoder's pair module, for instance, folds
        a temperature and a learnt offset into the factors).
    x : torch.Tensor of shape (n, p)
    y : torch.Tensor of shape (m, q)

    Returns
    -------
    g : torch.Tensor of shape (n, d)
    h : torch.Tensor of shape (m, d)
    a : torch.Tensor of shape (n,) or None
    b : torch.Tensor of shape (m,) or None

    Raises
    ------
    TypeError
        For a critic that is not separable (use :func:`chunked_scores`).

    Examples
    --------
    >>> import torch
    >>> from sk_mlcpc.blockwise import blockwise_bound, separable_parts
    >>> from sk_mlcpc.bounds import ml_cpc
    >>> from sk_mlcpc.critics import SeparableCritic
    >>> critic = SeparableCritic(3, 2, embedding_dim=4, hidden_layer_sizes=(8,),
    ...                          marginal_terms=True)
    >>> x, y = torch.randn(9, 3), torch.randn(9, 2)
    >>> g, h, a, b = separable_parts(critic, x, y)
    >>> value = blockwise_bound("ml_cpc", g, h, a=a, b=b, block_size=4)
    >>> torch.allclose(value, ml_cpc(critic(x, y)), atol=1e-5)
    True
    """
    own_parts = getattr(critic, "separable_parts", None)
    if callable(own_parts):
        return own_parts(x, y)
    if not getattr(critic, "separable", False) or not (
        hasattr(critic, "embed_x") and hasattr(critic, "embed_y")
    ):
        raise TypeError(
            f"{type(critic).__name__} is not a separable critic (separable = True with "
            "embed_x / embed_y, or a separable_parts method); evaluate joint critics with "
            "chunked_scores instead."
        )
    if getattr(critic, "marginal_terms", False) and hasattr(critic, "_encode"):
        g, a = critic._encode(critic.x_encoder, x)
        h, b = critic._encode(critic.y_encoder, y)
        return g, h, a, b
    return critic.embed_x(x), critic.embed_y(y), None, None


def chunked_scores(
    critic: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    chunk_size: int = 256,
    use_checkpoint: bool = True,
) -> torch.Tensor:
    """``critic(x, y)`` evaluated over row chunks, with activation checkpointing.

    A joint critic such as :class:`~sk_mlcpc.critics.ConcatCritic` runs its MLP on all
    ``n * m`` pairs, so the activations it keeps for the backward pass are
    ``n * m * hidden`` numbers -- far more than the ``n * m`` scores. Evaluating
    ``chunk_size`` rows at a time under :func:`torch.utils.checkpoint.checkpoint` keeps
    only the scores and the chunk inputs; the backward pass recomputes one chunk's
    activations at a time. Peak memory is about ``n * m`` scores plus
    ``chunk_size * m * sum(hidden_layer_sizes)`` activations.

    Parameters
    ----------
    critic : torch.nn.Module
        Any critic with ``forward(x, y) -> (n, m)`` scores whose rows depend only on the
        matching rows of ``x`` (true of every critic in :mod:`sk_mlcpc.critics`).
    x : torch.Tensor of shape (n, p)
    y : torch.Tensor of shape (m, q)
    chunk_size : int, default=256
        Rows per chunk.
    use_checkpoint : bool, default=True
        Checkpoint each chunk when gradients are recorded. ``False`` only splits the
        forward computation (saves time, not backward memory).

    Returns
    -------
    scores : torch.Tensor of shape (n, m)
        Equal to ``critic(x, y)``, with the same gradients.

    Examples
    --------
    >>> import torch
    >>> from sk_mlcpc.blockwise import chunked_scores
    >>> from sk_mlcpc.critics import ConcatCritic
    >>> critic = ConcatCritic(3, 2, hidden_layer_sizes=(8,))
    >>> x, y = torch.randn(10, 3), torch.randn(10, 2)
    >>> torch.allclose(chunked_scores(critic, x, y, chunk_size=4), critic(x, y), atol=1e-6)
    True
    """
    chunk_size = _check_block_size(chunk_size)
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise TypeError("x and y must be torch.Tensor objects.")
    if x.ndim < 1 or x.shape[0] < 1:
        raise ValueError(f"x must hold at least one row, got shape {tuple(x.shape)}.")
    record = use_checkpoint and torch.is_grad_enabled()
    pieces = []
    for start in range(0, x.shape[0], chunk_size):
        rows = x[start : start + chunk_size]
        if record:
            pieces.append(checkpoint(critic, rows, y, use_reentrant=False))
        else:
            pieces.append(critic(rows, y))
    return torch.cat(pieces, dim=0)


# ---------------------------------------------------------------------------------------
# Memory model
# ---------------------------------------------------------------------------------------


def blockwise_peak_bytes(
    n: int,
    d: int,
    block_size: int = DEFAULT_BLOCK_SIZE,
    *,
    m: int | None = None,
    itemsize: int = 4,
) -> int:
    """An upper estimate of the extra memory of one blockwise forward + backward pass.

    Counts ``6 (n + m) (d + 1)`` numbers for the embeddings' gradients, their float32
    copies (half-precision inputs) and the gradients' partial sums, at most 8 live
    ``block_size x block_size`` tiles (scores, a masked or clipped copy, exponentials,
    weights and the temporaries of ``logsumexp``), and ``16 (n + m)`` numbers of per-row
    state. It is linear in ``n``; the dense path needs ``n * m`` numbers for each of
    several score-sized tensors (scores, mask, softmax weights, gradient).
    Measured peaks on CPU stay at about half of this estimate.

    Parameters
    ----------
    n : int
        Rows (positives).
    d : int
        Embedding width.
    block_size : int, default=1024
        Tile edge.
    m : int or None, default=None
        Columns; ``None`` means ``m = n`` (batch layout).
    itemsize : int, default=4
        Bytes per number of the working dtype (4 for float32, also for bf16/fp16 inputs,
        which are accumulated in float32; 8 for float64).

    Returns
    -------
    bytes : int

    Examples
    --------
    >>> from sk_mlcpc.blockwise import blockwise_peak_bytes
    >>> round(blockwise_peak_bytes(65536, 32) / 2**20)   # MiB
    139
    >>> 65536**2 * 4 / 2**20   # MiB for one dense float32 score matrix
    16384.0
    """
    m = n if m is None else m
    tile = min(block_size, n) * min(block_size, m)
    return int(itemsize * (6 * (n + m) * (d + 1) + 8 * tile + 16 * (n + m)))
