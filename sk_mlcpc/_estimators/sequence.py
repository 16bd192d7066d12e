"""ContrastivePredictiveCoding: sequence CPC trained with any contrastive bound.

The model of van den Oord et al. (2018): a window encoder maps each time window of a
sequence to a latent ``z_t``, a causal GRU summarises ``z_0, ..., z_t`` into a context
``c_t``, and one linear predictor per step ahead scores the true future latent
``z_{t+k}`` against negatives with the bilinear critic ``f_k(c_t, z) = (W_k c_t) . z``.

The window encoder is, by default, a stack of dilated causal convolutions
(:mod:`sk_mlcpc._nn.temporal`) whose receptive field is the window; ``encoder="mlp"``
keeps the MLP per window of earlier versions. Inputs come as flattened 2-D rows or in
aeon's collection layouts (3-D arrays, lists of series of different lengths, padded and
masked; see :class:`_Series`).

This module holds the estimator; the torch side it trains (the model, the batches of
sequences, the loss and the skorch net) is in :mod:`sk_mlcpc._engine.sequence_net`.

Score matrices
--------------
Every score matrix is in the *batch layout* of :mod:`sk_mlcpc.bounds`: ``n = m = B``,
one anchor per sequence of the batch. For step ``k`` and draw ``r``, sequence ``b``
contributes the anchor ``(c_{b, t_br}, z_{b, t_br + k})`` at a time ``t_br`` drawn at
random for each sequence (a random permutation of the anchor times per sequence, so
every time is an anchor exactly once per pass); the negatives of row ``b`` are the
future latents of the other ``B - 1`` sequences, at their own times. A batch of ``B``
sequences with ``P`` anchor times therefore gives ``prediction_steps * P`` square
``B x B`` matrices, and the loss is minus the bound averaged over them.

Negatives from the *same* sequence at other times are deliberately not pooled into the
matrix: they are not independent of the anchor's context, so neither the proof that
the bounds are lower bounds nor the valid ``alpha`` range (derived for exchangeable
pairs) would apply. With one independent sequence per row the pairs are i.i.d. draws of
``(c_t, z_{t+k})`` with ``t`` uniform, and ``alpha="auto"`` is exactly
:func:`sk_mlcpc.bounds.valid_alpha_range` ``(B).low`` for the ``B`` positives and
``B - 1`` negatives each matrix holds.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from numbers import Integral, Real
from typing import ClassVar

import numpy as np
import torch
from sklearn.base import ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted
from torch import nn

from sk_mlcpc._engine.fitting import (
    check_has_features,
)
from sk_mlcpc._engine.inputs import validate_input
from sk_mlcpc._engine.sequence_net import (
    PredictiveBoundLoss,
    PredictiveCodingModule,
    PredictiveCodingNet,
    SequenceDataset,
)
from sk_mlcpc._estimators.base import (
    ContrastiveEstimator,
    FitSplit,
    MIEstimate,
    ReportsHeldOutBound,
)
from sk_mlcpc._estimators.docs import shared_parameter_docs
from sk_mlcpc._math.bounds import bound_validity
from sk_mlcpc._nn.sequence_views import SeriesAugmentation

__all__ = ["ContrastivePredictiveCoding", "auto_geometry"]

_TRANSFORM_CHUNK = 4096
#: Most segments of ``n_segments="auto"``: the auto geometry's hop is ``T // 12``.
_MAX_AUTO_SEGMENTS = 12


def _n_windows(n_timesteps, window: int, stride: int):
    """Number of complete windows of a strided convolution without padding (elementwise
    for an array of lengths)."""
    return np.maximum(np.asarray(n_timesteps) - window, -1) // stride + 1


def auto_geometry(n_timesteps: int, prediction_steps: int) -> tuple[int, int]:
    """``(window, stride)`` of ``window="auto"``, ``stride="auto"`` for series of
    ``n_timesteps`` time steps (the shortest training series).

    The hop is ``max(1, n_timesteps // 12)`` (about 10 windows), the window (the
    encoder's receptive field) a third of the series, at least the hop; the window
    shrinks, down to 1, when ``window + prediction_steps * stride`` would not fit. Chosen
    on the UCR/UEA sets of ``benchmarks/series.py`` (24 to 150 time steps; a quarter of
    the series with a hop of ``T // 32`` did worse on the shortest).

    Examples
    --------
    >>> from sk_mlcpc._estimators.sequence import auto_geometry
    >>> auto_geometry(24, 4), auto_geometry(150, 4), auto_geometry(1460, 4)
    ((8, 2), (50, 12), (486, 121))
    """
    stride = max(1, n_timesteps // 12)
    window = max(stride, n_timesteps // 3)
    window = max(1, min(window, n_timesteps - prediction_steps * stride))
    return window, stride


@dataclass
class _Series:
    """Validated sequences: ``values`` ``(n, C, T)`` float32 padded with zeros after each
    sequence's ``lengths[i]`` time steps; ``table`` when they came as 2-D rows."""

    values: np.ndarray
    lengths: np.ndarray
    table: bool

    @property
    def equal(self) -> bool:
        return bool(np.all(self.lengths == self.values.shape[2]))


def _finite_or_raise(values: np.ndarray, where: str) -> None:
    """A ValueError naming the first NaN or infinite value of one case's ``(C, T)``."""
    bad = ~np.isfinite(values)
    if bad.any():
        channel, time = (int(i) for i in np.argwhere(bad)[0])
        kind = "NaN" if np.isnan(values[channel, time]) else "infinity"
        raise ValueError(
            f"Input X contains {kind} at {where}, channel {channel}, time point {time} "
            f"({int(bad.sum())} value(s) in this case). ContrastivePredictiveCoding needs a "
            "number at every time point: fill in or drop missing values first (cases, "
            "channels and time points count from 0)."
        )


def _as_float32(values, where: str) -> np.ndarray:
    array = np.asarray(values)
    if array.dtype.kind not in "biuf":
        try:
            array = array.astype(np.float64)
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"Input X holds values that are not numbers in {where} ({error})."
            ) from None
    with np.errstate(over="ignore"):
        cast = array.astype(np.float32)
    return cast


def is_collection(X) -> bool:
    """Whether ``X`` is in aeon's collection layout: a 3-D array ``(n_cases, n_channels,
    n_timepoints)`` or a list of 2-D arrays ``(n_channels, n_timepoints_i)``."""
    if getattr(X, "ndim", None) == 3:
        return True
    if isinstance(X, list | tuple):
        return any(getattr(item, "ndim", None) == 2 for item in X)
    return False


def _collection(X) -> list[np.ndarray] | np.ndarray:
    """aeon's layouts as float32 ``(C, T_i)`` arrays (a 3-D array for a 3-D input), every
    value finite and the channel counts equal; a clear ValueError otherwise."""
    if getattr(X, "ndim", None) == 3:
        values = _as_float32(X, "the 3-D array")
        if 0 in values.shape:
            raise ValueError(
                f"Found a 3-D X of shape {values.shape} (n_cases, n_channels, n_timepoints): "
                "every axis needs at least 1 entry."
            )
        if not np.isfinite(values).all():
            case = int(np.argwhere(~np.isfinite(values).reshape(len(values), -1).all(1))[0, 0])
            _finite_or_raise(values[case], f"case {case}")
        return values
    cases = []
    for index, item in enumerate(X):
        case = _as_float32(item, f"case {index}")
        if case.ndim != 2:
            raise ValueError(
                f"Case {index} of X has {case.ndim} dimension(s): a list of series must hold "
                "2-D arrays of shape (n_channels, n_timepoints_i), aeon's unequal-length "
                "layout."
            )
        if case.shape[0] == 0 or case.shape[1] == 0:
            raise ValueError(
                f"Case {index} of X has shape {case.shape} (n_channels, n_timepoints): "
                "every series needs at least 1 channel and 1 time point."
            )
        if case.shape[0] != cases[0].shape[0] if cases else False:
            raise ValueError(
                f"The series of X have different channel counts: case 0 has "
                f"{cases[0].shape[0]}, case {index} has {case.shape[0]}. Every case of an "
                "unequal-length collection is a 2-D array (n_channels, n_timepoints_i) "
                "with the same n_channels."
            )
        _finite_or_raise(case, f"case {index}")
        cases.append(case)
    return cases


# ---------------------------------------------------------------------------------------
# Estimator
# ---------------------------------------------------------------------------------------


@shared_parameter_docs
class ContrastivePredictiveCoding(
    ClassNamePrefixFeaturesOutMixin, TransformerMixin, ReportsHeldOutBound, ContrastiveEstimator
):
    """Contrastive Predictive Coding of sequences, trained with ML-CPC (or any bound).

    ``X`` holds one sequence per case, in aeon's collection layouts (a 3-D array
    ``(n_cases, n_channels, n_timepoints)``, or a list of 2-D arrays
    ``(n_channels, n_timepoints_i)`` of different lengths) or as flattened 2-D rows. A
    window encoder maps every window of ``window`` samples (hop ``stride``) to a latent
    ``z_t``; a GRU summarises ``z_0 .. z_t`` into a context ``c_t``; for each step ahead
    ``k = 1 .. prediction_steps`` a linear map ``W_k`` predicts the future latent, scored
    by ``f_k(c_t, z) = (W_k c_t) . z``. The networks are trained to maximise a
    contrastive bound on ``I(c_t; z_{t+k})``, whose negatives are the future latents of
    the other sequences of the batch, at other times. :meth:`transform` returns one row
    of features per sequence (by default pooled over time from every encoder layer and
    the contexts, plus the latents on a coarse grid of time segments), so that the
    estimator drops into a Pipeline before any classifier.

    Parameters
    ----------
    n_channels : int, default=1
        Channels per time step of 2-D input: ``X`` then has ``n_timesteps * n_channels``
        columns, in time-major order: column ``t * n_channels + c`` is channel ``c`` at
        time ``t`` (what ``X3d.transpose(0, 2, 1).reshape(n_cases, -1)`` gives for an
        aeon array ``X3d`` of shape ``(n_cases, n_channels, n_timepoints)``). 3-D arrays
        and lists carry their channel count; ``n_channels`` must then be 1 or equal it.
    window : int or "auto", default="auto"
        Samples per window: the encoder's receptive field. ``"auto"`` derives it from the
        shortest training series (``T`` time steps), with ``stride``: see
        :func:`auto_geometry` (for ``stride="auto"``: hop ``max(1, T // 12)``, window
        ``T // 3``, shrunk to fit ``prediction_steps``; 24 steps give 8 and 2, 150 give
        50 and 12). With an int ``stride``, ``T // 3`` shrunk to fit.
    stride : int or "auto", default="auto"
        Hop between consecutive windows, in samples; ``"auto"`` with an int ``window`` is
        ``max(1, window // 2)``.
    prediction_steps : int, default=4
        How many windows ahead to predict, ``K``. Sequences must hold at least
        ``window + prediction_steps * stride`` time steps (``K + 1`` windows).
    encoder : {"conv", "mlp"}, default="conv"
        The window encoder. ``"conv"``: dilated causal convolutions (kernel 2,
        dilations 1, 2, 4, ... and one that completes the field, residual connections,
        :class:`~sk_mlcpc._nn.temporal.CausalConvEncoder`) run at every time step, whose
        receptive field is exactly ``window``; ``z_t`` is its output at the last sample
        of window ``t``. ``"mlp"``: an MLP on each window, run as a strided convolution
        (the encoder before version 0.2; model files written then load with it).
    n_components : int, default=32
        Width of the context vectors ``c_t``: the output of :meth:`transform` for
        ``pooling="last"`` or ``"mean"``.
    latent_dim : int, default=32
        Width of the window latents ``z_t``.
    hidden_layer_sizes : tuple of int, default=(64,)
        ``encoder="mlp"``: hidden widths of the window MLP. ``encoder="conv"``: the first
        entry is the width of every dilated layer (their number follows from
        ``window``). Empty for a linear encoder (one convolution over the window).
    .. shared-parameter:: activation
    pooling : {"multiscale", "last", "mean"}, default="multiscale"
        Features returned by :meth:`transform`. ``"multiscale"``: the mean and the
        maximum over time of every encoder layer's output (receptive fields from 2
        samples to ``window`` for ``"conv"``) and of the latents, then the mean and the
        last context, then the latents averaged over ``n_segments_`` equal stretches of
        the windows (where in the series things happen):
        ``2 * (sum of hidden widths + latent_dim) + 2 * n_components
        + n_segments_ * latent_dim`` columns. ``"last"``: the context after the last
        window; ``"mean"``: the mean context over the windows (``n_components``
        columns). Padding of shorter series is never pooled.
    n_segments : int or "auto", default="auto"
        Segments of the positional part of ``pooling="multiscale"``: each sequence's
        windows are cut into this many equal stretches and the latents ``z_t`` averaged
        over each (:func:`~sk_mlcpc._nn.temporal.segment_means`), so that a probe sees
        *when* a pattern occurs, which means and maxima over time discard. ``"auto"``:
        the windows of the shortest training series, at most 12 (then every window is
        its own segment: about 9 with ``window="auto"``). 0 gives the position-free
        pooling of earlier versions (model files written before this parameter load with
        0). Ignored by ``"last"`` and ``"mean"``.
    augmentation : {"auto"}, callable or None, default=None
        Random views of the training sequences (never of the evaluation ones). ``None``:
        the sequences themselves. ``"auto"``:
        :class:`~sk_mlcpc._nn.sequence_views.SeriesAugmentation` (amplitude scaling per
        channel, jitter relative to each series' scale, a masked tenth of the time steps).
        A callable ``view(x, lengths, generator) -> x_view`` takes a standardised batch
        ``(B, n_channels, T)``, the real time steps ``(B,)`` of each sequence and a
        :class:`torch.Generator` on the batch's device, and returns a new tensor of the
        same shape, dtype and device without modifying ``x``; it must keep the time axis
        in place (the CPC targets are read at the anchor times). Whatever it writes into
        the padding of shorter series is set back to zero. Each training batch gets two
        views: the predictive bound is trained on the first, and ``view_weight`` weighs a
        second term, the same bound between the two views of each sequence.
    view_weight : float, default=1.0
        Weight, with an ``augmentation``, of the instance-level term: the ``objective``'s
        bound on the ``n x n`` matrix of cosine similarities (temperature 0.2) between
        the projected summaries (mean latent and mean context) of the two views of the
        batch's sequences, positives on the diagonal. 0 uses the views as augmented
        inputs of the predictive bound only. Ignored without ``augmentation``. The
        ``train_mi`` of ``history_`` is then minus the training loss, this term included;
        ``valid_mi``, ``mi_`` and :meth:`score` are the predictive bound alone, on
        sequences that are never augmented.
    spread_weight : float, default=0.0
        Weight of a penalty against collapsed latents, subtracted from the training
        objective: VICReg's variance-covariance regulariser on the window latents ``z_t``
        of each training batch (every real window of every sequence pooled),
        ``mean_d relu(1 - std_d) + 0.04 * sum_{d != e} cov_de^2 / latent_dim``
        (:func:`~sk_mlcpc._nn.temporal.spread_penalty`). 0 for none. It enters
        ``train_mi`` (minus the training loss), never ``valid_mi``, ``mi_`` or
        :meth:`score`.
    objective : str, default="ml_cpc"
        The bound to train and report, a name from :data:`sk_mlcpc.bounds.BOUNDS`.
    alpha : float or "auto", default="auto"
        Positive weight of ``"ml_cpc"`` / ``"alpha_cpc"`` (ignored by the others).
        ``"auto"`` is :func:`sk_mlcpc.bounds.valid_alpha_range` ``(n).low`` for the
        ``n x n`` score matrices used (``n`` sequences per batch; see Notes).
    batch_size : int, default=64
        Sequences per training batch; each positive has ``batch_size - 1`` negatives.
    eval_batch_size : int or None, default=None
        Sequences per evaluation batch for ``mi_`` and :meth:`score`. ``None`` uses
        ``batch_size``.
    max_epochs : int, default=50
        Maximum passes over the training sequences.
    .. shared-parameter:: learning_rate
    .. shared-parameter:: weight_decay
    validation_fraction : float, default=0.1
        Share of the sequences held out for early stopping (the epoch kept) and the
        ``valid_mi`` trace. These sequences never produce ``mi_``.
    test_fraction : float, default=0.1
        Share of the sequences held out for ``mi_`` alone: they choose nothing, so the
        estimate is not selected on them.
    .. shared-parameter:: early_stopping
    .. shared-parameter:: n_iter_no_change
    .. shared-parameter:: tol
    preprocessing : {"standard"} or None, default="standard"
        ``"standard"`` centres and scales each channel with its mean and standard
        deviation over the training sequences and times (the same affine map at every
        time step, so the temporal structure is kept). ``None`` leaves the data.
    .. shared-parameter:: device
    .. shared-parameter:: n_threads
    random_state : int, RandomState instance or None, default=None
        Controls the split, the initialisation, the batch order and the anchor times.
        The global torch random state is left untouched.
    .. shared-parameter:: verbose
    .. shared-parameter:: precision
    .. shared-parameter:: compile
    warm_start : bool, default=False
        When true and the estimator is fitted, ``fit`` continues training the fitted
        networks for ``max_epochs`` more epochs (optimiser state, standardisation, batch
        sizes and alpha kept) instead of starting again.
    .. shared-parameter:: checkpoint_dir
    .. shared-parameter:: on_divergence
    .. shared-parameter:: callbacks

    Attributes
    ----------
    mi_ : float
        Held-out predictive bound in nats: the bound averaged over steps ahead, anchor
        times and evaluation batches.
    mi_per_step_ : ndarray of shape (prediction_steps,)
        Held-out bound for each step ahead ``k = 1 .. K``, nats.
    .. shared-parameter:: mi_std_
    .. shared-parameter:: mi_ci_
    .. shared-parameter:: mi_cap_
    .. shared-parameter:: saturated_
    .. shared-parameter:: saturation_gain_
    eval_alpha_ : float
        The alpha of ``mi_`` (``"auto"`` resolved at ``eval_batch_size_``).
    bound_validity_ : {"proven", "claimed", "invalid"}
        Whether the configured bound is a lower bound, see
        :func:`sk_mlcpc.bounds.bound_validity`.
    alpha_ : float
        The alpha used (``"auto"`` resolved).
    batch_size_, eval_batch_size_ : int
        Batch sizes used, in sequences (capped by the sequences available).
    window_, stride_ : int
        The window and hop used (``"auto"`` resolved).
    n_segments_ : int
        Segments of the positional features (``n_segments="auto"`` resolved).
    n_channels_ : int
        Channels of the training series.
    n_timesteps_ : int
        Time steps per sequence (of the shortest training series).
    n_windows_ : int
        Windows per sequence, ``L = (n_timesteps_ - window_) // stride_ + 1``.
    n_anchor_times_ : int
        Anchor times drawn per sequence and pass, ``L - prediction_steps``. A longer
        series draws this many of its own anchor times at random.
    channel_mean_, channel_scale_ : ndarray of shape (n_channels,)
        Per-channel standardisation learnt on the training sequences (0 and 1 when
        ``preprocessing=None``).
    net_ : PredictiveCodingNet
        The fitted skorch net.
    module_ : PredictiveCodingModule
        The trained encoder, context network and predictors.
    history_ : skorch.History
        Per-epoch ``train_loss``, ``valid_loss``, ``train_mi``, ``valid_mi`` (nats).
    .. shared-parameter:: n_epochs_
    .. shared-parameter:: device_
    n_features_in_ : int
        Columns of 2-D ``X``, ``n_timesteps_ * n_channels_`` (for 3-D or list input, what
        the shortest training series flattens to; 2-D input at ``transform`` must have
        this width).
    .. shared-parameter:: feature_names_in_

    See Also
    --------
    MutualInformationEstimator : MI between two paired variables.
    sk_mlcpc.bounds.ml_cpc : The default objective.

    Notes
    -----
    Every score matrix is square, ``n x n`` with ``n`` the batch size in sequences: one
    anchor time per sequence (drawn at random, every time once per pass), the positive
    on the diagonal, and the ``n - 1`` other sequences' future latents as negatives.
    Same-sequence negatives are not used because they are not independent of the
    anchor, which the bounds' guarantees need. ``alpha="auto"`` is therefore the limit
    for ``n`` positives and ``n - 1`` negatives per row, ``valid_alpha_range(n).low``
    (``alpha* = n / (n (n - 1) + 1)`` times a searched ratio of 1 to 1.024, see
    :func:`~sk_mlcpc.bounds.valid_alpha_range`), taken at the smaller of the training and
    evaluation batch sizes.

    :meth:`score` is a held-out lower bound (for valid objectives) on the average over
    anchor times ``t`` and steps ``k`` of ``I(c_t; z_{t+k})``, hence, by data processing,
    on the mutual information between a sequence's past up to window ``t`` and its
    window ``t + k``. With the convolutional encoder this is unchanged: ``z_{t+k}`` is a
    function of window ``t + k`` only and ``c_t`` of windows ``0 .. t`` only. Windows
    overlap when ``window > stride`` (the default), so the past and the future window
    share samples for small ``k``: the bound is then on the information between two
    overlapping stretches of the series, not only on what the past predicts of new
    samples. The pooled features :meth:`transform` returns do not enter the bound.

    Series of different lengths are right-padded with zeros to the longest of a batch.
    The encoder and the GRU are causal, so the padding never reaches an output at a real
    time step; pooling reads the real time steps only, and anchor times are drawn among
    each sequence's own windows, so every row of a score matrix remains an independent
    ``(c_t, z_{t+k})`` pair.

    References
    ----------
    .. [1] A. van den Oord, Y. Li, O. Vinyals. "Representation Learning with Contrastive
       Predictive Coding." arXiv:1807.03748, 2018.
    .. [2] J. Song, S. Ermon. "Multi-label Contrastive Predictive Coding." NeurIPS 2020.

    Examples
    --------
    >>> from sk_mlcpc import ContrastivePredictiveCoding
    >>> from sk_mlcpc.datasets import make_frequency_sequences
    >>> X, y = make_frequency_sequences(300, 64, random_state=0)
    >>> cpc = ContrastivePredictiveCoding(
    ...     window=8, stride=4, prediction_steps=2, max_epochs=3, random_state=0
    ... ).fit(X)
    >>> cpc.n_windows_, cpc.n_segments_
    (15, 12)
    >>> cpc.transform(X).shape  # multiscale: 2 * (3 * 64 + 32) + 2 * 32 + 12 * 32
    (300, 896)
    >>> cpc.mi_per_step_.shape
    (2,)

    aeon's layouts: a 3-D array ``(n_cases, n_channels, n_timepoints)`` or a list of
    2-D arrays of different lengths; ``window`` and ``stride`` follow the length.

    >>> X3 = X[:60, None, :]  # one channel
    >>> cpc = ContrastivePredictiveCoding(max_epochs=2, random_state=0).fit(X3)
    >>> cpc.window_, cpc.stride_
    (21, 5)
    >>> series = [X[i, None, : 40 + i % 24] for i in range(60)]
    >>> ContrastivePredictiveCoding(max_epochs=2, random_state=0).fit(series).transform(
    ...     series
    ... ).shape
    (60, 960)
    """

    _own_parameter_constraints: ClassVar[dict] = {
        "test_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_channels": [Interval(Integral, 1, None, closed="left")],
        "window": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "stride": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "prediction_steps": [Interval(Integral, 1, None, closed="left")],
        "latent_dim": [Interval(Integral, 1, None, closed="left")],
        "encoder": [StrOptions({"conv", "mlp"})],
        "pooling": [StrOptions({"last", "mean", "multiscale"})],
        "n_segments": [Interval(Integral, 0, None, closed="left"), StrOptions({"auto"})],
        "augmentation": [StrOptions({"auto"}), callable, None],
        "view_weight": [Interval(Real, 0, None, closed="left")],
        "spread_weight": [Interval(Real, 0, None, closed="left")],
        "eval_batch_size": [Interval(Integral, 2, None, closed="left"), None],
        "preprocessing": [StrOptions({"standard"}), None],
    }

    def __init__(
        self,
        *,
        n_channels: int = 1,
        window: int | str = "auto",
        stride: int | str = "auto",
        prediction_steps: int = 4,
        encoder: str = "conv",
        n_components: int = 32,
        latent_dim: int = 32,
        hidden_layer_sizes: tuple[int, ...] = (64,),
        activation: str = "relu",
        pooling: str = "multiscale",
        n_segments: int | str = "auto",
        augmentation: str | Callable | None = None,
        view_weight: float = 1.0,
        spread_weight: float = 0.0,
        objective: str = "ml_cpc",
        alpha: float | str = "auto",
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        max_epochs: int = 50,
        learning_rate: float = 1e-3,
        weight_decay: float = 0.0,
        validation_fraction: float = 0.1,
        test_fraction: float = 0.1,
        early_stopping: bool = True,
        n_iter_no_change: int = 10,
        tol: float = 1e-3,
        preprocessing: str | None = "standard",
        device: str | torch.device = "auto",
        n_threads: int | None = None,
        random_state: int | np.random.RandomState | None = None,
        verbose: int = 0,
        precision: str = "fp32",
        compile: bool = False,
        warm_start: bool = False,
        checkpoint_dir: str | os.PathLike | None = None,
        on_divergence: str = "raise",
        callbacks: list | None = None,
    ) -> None:
        self._store_init_arguments(locals())

    _seed_names = ("split", "init", "shuffle", "eval")
    _separable_scores = False  # a stack of score matrices per batch, never blockwise
    _sample_noun = _row_noun = "sequences"
    # Model files written before these parameters existed load with the behaviour of
    # the version that wrote them (the MLP window encoder, no positional features).
    _parameters_added: ClassVar[dict] = {
        "encoder": "mlp",
        "n_segments": 0,
        "augmentation": None,
        "view_weight": 1.0,
        "spread_weight": 0.0,
    }

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags

    # ------------------------------------------------------------------ input handling

    def _resolve_geometry(self, n_timesteps: int) -> tuple[int, int]:
        """``(window, stride)`` for series of at least ``n_timesteps`` time steps."""
        window, stride = self.window, self.stride
        if window == "auto":
            auto_window, auto_stride = auto_geometry(
                n_timesteps, self.prediction_steps if stride == "auto" else 0
            )
            if stride == "auto":
                window, stride = auto_window, auto_stride
            else:
                window = max(1, min(auto_window, n_timesteps - self.prediction_steps * stride))
        elif stride == "auto":
            stride = max(1, window // 2)
        return int(window), int(stride)

    def _too_short(self, n_timesteps: int, window: int, stride: int, what: str) -> ValueError:
        needed = window + self.prediction_steps * stride
        return ValueError(
            f"Sequences are too short: {what} n_timesteps={n_timesteps}, but one window "
            f"plus the prediction horizon needs at least window + prediction_steps * stride "
            f"= {window} + {self.prediction_steps} * {stride} = {needed} time steps "
            f"(window={self.window!r}, stride={self.stride!r}). Use longer sequences, or a "
            "smaller window, stride or prediction_steps."
        )

    def _check_geometry(self, n_features: int) -> tuple[int, int]:
        """``(n_timesteps, n_windows)`` for ``n_features`` columns, or a clear ValueError."""
        if n_features % self.n_channels:
            raise ValueError(
                f"X has n_features = {n_features} columns, which is not a multiple of "
                f"n_channels={self.n_channels}: each row must hold n_timesteps * n_channels "
                "values (time-major: column t * n_channels + c is channel c at time t)."
            )
        n_timesteps = n_features // self.n_channels
        return n_timesteps, self._windows_for(
            n_timesteps,
            f"X has n_features = {n_features} columns, i.e. (with n_channels={self.n_channels})",
        )

    def _windows_for(self, n_timesteps: int, what: str) -> int:
        if n_timesteps < 1:
            raise self._too_short(n_timesteps, 1, 1, what)
        window, stride = self._resolve_geometry(n_timesteps)
        n_windows = int(_n_windows(n_timesteps, window, stride))
        if n_windows < self.prediction_steps + 1:
            raise self._too_short(n_timesteps, window, stride, what)
        return n_windows

    def _read_series(self, X, *, reset: bool, min_samples: int) -> _Series:
        """Any accepted layout as a :class:`_Series` (not yet standardised)."""
        if isinstance(X, list | tuple) and len(X) == 0:
            raise ValueError(
                "X is an empty list: pass at least one series (a 2-D array of shape "
                "(n_channels, n_timepoints) per case)."
            )
        if not is_collection(X):
            check_has_features(X)
            X = validate_input(
                self, X, dtype=np.float32, ensure_min_samples=min_samples, reset=reset
            )
            n_channels = self.n_channels if reset else self.n_channels_
            if reset:
                n_timesteps, _ = self._check_geometry(X.shape[1])
                self.n_channels_ = n_channels
            else:
                n_timesteps = X.shape[1] // n_channels
            values = X.reshape(len(X), n_timesteps, n_channels).transpose(0, 2, 1)
            return _Series(values, np.full(len(X), n_timesteps, dtype=np.int64), table=True)
        cases = _collection(X)
        n_cases = len(cases)
        if n_cases < min_samples:
            raise ValueError(
                f"Found {n_cases} series while a minimum of {min_samples} is required."
            )
        channels = cases[0].shape[0]
        lengths = np.array([case.shape[1] for case in cases], dtype=np.int64)
        if reset:
            if self.n_channels not in (1, channels):
                raise ValueError(
                    f"X has {channels} channels, but n_channels={self.n_channels}: for "
                    "3-D arrays and lists of series the channel axis gives the channels; "
                    "leave n_channels at 1 or set it to the data's."
                )
            self.n_channels_ = channels
            self.n_features_in_ = int(channels * lengths.min())
            if hasattr(self, "feature_names_in_"):
                del self.feature_names_in_
        elif channels != self.n_channels_:
            raise ValueError(
                f"X has {channels} channels, but ContrastivePredictiveCoding was fitted "
                f"with {self.n_channels_} channels."
            )
        if isinstance(cases, np.ndarray):
            return _Series(cases, lengths, table=False)
        values = np.zeros((n_cases, channels, int(lengths.max())), dtype=np.float32)
        for index, case in enumerate(cases):
            values[index, :, : case.shape[1]] = case
        return _Series(values, lengths, table=False)

    def _standardised(self, series: _Series, device) -> tuple[torch.Tensor, torch.Tensor]:
        """Standardised ``(n, C, T)`` tensor (a copy; zeros stay in the padding) and the
        lengths on ``device``."""
        mean, scale = self.channel_mean_[:, None], self.channel_scale_[:, None]
        if series.table:
            # The same arithmetic, in the same layout, as models fitted before collections.
            x = series.values.transpose(0, 2, 1)
            x = (x - self.channel_mean_) / self.channel_scale_
            x = torch.as_tensor(np.ascontiguousarray(x, dtype=np.float32), device=device)
            x = x.transpose(1, 2).contiguous()
        else:
            x = (series.values - mean) / scale
            if not series.equal:
                padding = np.arange(x.shape[2]) >= series.lengths[:, None]  # (n, T)
                x = np.where(padding[:, None, :], np.float32(0.0), x)
            x = torch.as_tensor(np.ascontiguousarray(x, dtype=np.float32), device=device)
        return x, torch.as_tensor(series.lengths, device=device)

    def _to_sequences(self, X: np.ndarray, device) -> torch.Tensor:
        """``(n, T * C)`` float32 rows -> standardised ``(n, C, T)`` tensor (a copy)."""
        n = len(X)
        x = X.reshape(n, -1, self.n_channels_)
        x = (x - self.channel_mean_) / self.channel_scale_
        x = torch.as_tensor(np.ascontiguousarray(x, dtype=np.float32), device=device)
        return x.transpose(1, 2).contiguous()

    def _anchor_counts(self, lengths: np.ndarray) -> torch.Tensor | None:
        """Anchor times of each sequence, or None when all have ``n_anchor_times_``."""
        counts = _n_windows(lengths, self.window_, self.stride_) - self.prediction_steps
        if np.all(counts == self.n_anchor_times_):
            return None
        return torch.as_tensor(counts, dtype=torch.int64)

    # ------------------------------------------------------------------ fitting

    def fit(self, X, y=None, **fit_params):
        """Train the encoder, context network and predictors on unlabelled sequences.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_timesteps * n_channels), \
                ndarray of shape (n_cases, n_channels, n_timepoints) or list of ndarray
            One sequence per row (time-major when ``n_channels > 1``); aeon's 3-D
            collection; or a list of 2-D arrays ``(n_channels, n_timepoints_i)`` of
            different lengths.
        y : None
            Ignored (labels passed by a Pipeline are not used).
        **fit_params : dict
            Must be empty: fit parameters are refused rather than silently ignored.

        Returns
        -------
        self : ContrastivePredictiveCoding
            The fitted estimator.
        """
        return self._fit(X, y, fit_params)

    def _validate_fit_data(self, X, y, *, warm: bool) -> dict:
        self._check_hidden_layer_sizes()
        series = self._read_series(X, reset=not warm, min_samples=2)
        shortest = int(series.lengths.min())
        where = int(np.argmin(series.lengths))
        what = (
            f"X has n_features = {series.values.shape[1] * shortest} columns, i.e. "
            f"(with n_channels={self.n_channels})"
            if series.table
            else f"case {where} of X has"
        )
        n_windows = self._windows_for(shortest, what)
        if warm:
            self._check_warm_geometry(series)
        return {
            "arrays": (series.values, series.lengths),
            "series": series,
            "n_samples": len(series.lengths),
            "geometry": (shortest, n_windows),
        }

    def _check_warm_geometry(self, series: _Series) -> None:
        windows = _n_windows(series.lengths, self.window_, self.stride_)
        if windows.min() < self.prediction_steps + 1:
            raise self._too_short(int(series.lengths.min()), self.window_, self.stride_, "X has")

    def _prepare_data(self, data: dict, split: FitSplit, *, warm: bool):
        series: _Series = data["series"]
        n_train, n_valid = len(split.train), len(split.valid)
        if warm:
            self._check_warm_sizes(
                {"batch_size_": n_train, "eval_batch_size_": min(n_valid, len(split.test))},
                split.n_samples,
            )
        else:
            self._set_fitted_sizes(series, split, *data["geometry"], n_valid, len(split.test))
        x_all, lengths = self._standardised(series, self._data_device if warm else self.device_)
        counts = self._anchor_counts(series.lengths)

        def subset(rows):
            return SequenceDataset(
                x_all[rows],
                self.n_anchor_times_,
                None if counts is None else counts[rows],
                None if series.equal else lengths[torch.as_tensor(rows, device=lengths.device)],
            )

        data["test_set"] = subset(split.test)
        return subset(split.train), subset(split.valid)

    def _set_fitted_sizes(
        self,
        series: _Series,
        split: FitSplit,
        n_timesteps: int,
        n_windows: int,
        n_valid: int,
        n_test: int,
    ) -> None:
        """Geometry, channel scaling, batch sizes and alpha of a new fit."""
        self.window_, self.stride_ = self._resolve_geometry(n_timesteps)
        self.n_timesteps_ = n_timesteps
        self.n_windows_ = n_windows
        self.n_anchor_times_ = n_windows - self.prediction_steps
        self.n_segments_ = (
            min(n_windows, _MAX_AUTO_SEGMENTS)
            if self.n_segments == "auto"
            else int(self.n_segments)
        )
        n_channels = self.n_channels_
        if self.preprocessing == "standard":
            train = series.values[split.train]
            if series.equal:
                flat = train.transpose(0, 2, 1).reshape(-1, n_channels).astype(np.float64)
            else:
                lengths = series.lengths[split.train]
                flat = np.concatenate(
                    [case[:, :length].T for case, length in zip(train, lengths, strict=True)]
                ).astype(np.float64)
            scale = flat.std(axis=0)
            self.channel_mean_ = flat.mean(axis=0).astype(np.float32)
            self.channel_scale_ = np.where(scale > 0, scale, 1.0).astype(np.float32)
        else:
            self.channel_mean_ = np.zeros(n_channels, dtype=np.float32)
            self.channel_scale_ = np.ones(n_channels, dtype=np.float32)
        n_train = len(split.train)
        self.batch_size_ = min(self.batch_size, n_train)
        # One size for the validation batches and the test batches of mi_.
        self.eval_batch_size_ = min(self.eval_batch_size or self.batch_size, n_valid, n_test)
        # Square n x n matrices: n positives, n - 1 negatives each (module docstring).
        self.alpha_ = self._alpha_at(min(self.batch_size_, self.eval_batch_size_))

    def _finish_fit(self, data: dict, split: FitSplit) -> None:
        test_set = data["test_set"]
        estimate = self._evaluate(test_set, self.eval_batch_size_)
        self._record_held_out(
            estimate,
            advice="Lower learning_rate, keep preprocessing='standard', or use a "
            "lower-variance objective such as 'ml_cpc'.",
        )
        self.mi_per_step_ = self.net_.step_estimates(test_set, self.eval_batch_size_).mean(axis=0)

    def _make_net(
        self, *, shuffle_seed: int, eval_seed: int, valid_set: SequenceDataset | None = None
    ) -> PredictiveCodingNet:
        """The (untrained) skorch net of the fitted geometry, batch sizes and alpha."""
        module = PredictiveCodingModule(
            n_channels=self.n_channels_,
            window=self.window_,
            stride=self.stride_,
            prediction_steps=self.prediction_steps,
            latent_dim=self.latent_dim,
            context_dim=self.n_components,
            hidden_layer_sizes=self._check_hidden_layer_sizes(),
            activation=self.activation,
            encoder=self.encoder,
            view_head=self._view_weight_used > 0,
            spread=self.spread_weight > 0,
        )
        net = PredictiveCodingNet(
            module,
            criterion=PredictiveBoundLoss,
            criterion__objective=self.objective,
            criterion__alpha=self.alpha_,
            criterion__view_weight=self._view_weight_used,
            criterion__spread_weight=self.spread_weight,
            **self._net_arguments(
                shuffle_seed=shuffle_seed,
                eval_seed=eval_seed,
                valid_set=valid_set,
                eval_batch_size=self.eval_batch_size_,
            ),
        )
        net.view = self._sequence_view()
        return net

    @property
    def _view_weight_used(self) -> float:
        """``view_weight``, or 0 without an augmentation."""
        return 0.0 if self.augmentation is None else float(self.view_weight)

    def _sequence_view(self):
        """The view of ``augmentation`` (None for none)."""
        if self.augmentation is None or callable(self.augmentation):
            return self.augmentation
        if self.augmentation == "auto":
            return SeriesAugmentation()
        raise ValueError(
            f"augmentation must be 'auto', None or a callable view(x, lengths, generator), "
            f"got {self.augmentation!r}."
        )

    # Fitted attributes of its own that save() writes (see ContrastiveEstimator).
    n_timesteps_: int
    n_windows_: int
    n_anchor_times_: int
    window_: int
    stride_: int
    n_channels_: int
    n_segments_: int
    _saved_arrays: ClassVar[tuple[str, ...]] = ("mi_per_step_", "channel_mean_", "channel_scale_")

    def _saved_tensors(self) -> dict[str, torch.Tensor]:
        return {
            name: torch.from_numpy(np.ascontiguousarray(getattr(self, name)))
            for name in self._saved_arrays
        }

    def _restore_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        for name in self._saved_arrays:
            setattr(self, name, tensors[name].numpy())

    @property
    def module_(self) -> nn.Module:
        """The trained :class:`~sk_mlcpc._engine.sequence_net.PredictiveCodingModule`.

        The same object as ``net_.module_``.
        """
        return self.net_.module_

    @property
    def _n_features_out(self) -> int:
        return self.module_.feature_width(self.pooling, self.n_segments_)

    # ------------------------------------------------------------------ evaluation

    def _validated_series(self, X, *, min_samples: int, scoring: bool):
        """Standardised tensor, lengths and the series of new input, checked against the
        fit: channels, and lengths long enough for the receptive field (for a score, for
        the prediction horizon too)."""
        check_is_fitted(self)
        series = self._read_series(X, reset=False, min_samples=min_samples)
        shortest = int(series.lengths.min())
        needed = self.window_ + (self.prediction_steps * self.stride_ if scoring else 0)
        if shortest < needed:
            where = int(np.argmin(series.lengths))
            purpose = (
                "the encoder's receptive field plus the prediction horizon, window_ + "
                f"prediction_steps * stride_ = {self.window_} + {self.prediction_steps} * "
                f"{self.stride_}"
                if scoring
                else f"the encoder's receptive field, window_ = {self.window_}"
            )
            raise ValueError(
                f"Sequences are too short: case {where} of X has {shortest} time points, "
                f"fewer than {purpose} = {needed} time points."
            )
        x, lengths = self._standardised(series, self._data_device)
        return x, lengths, series

    def _scored_dataset(self, X) -> SequenceDataset:
        x, _, series = self._validated_series(X, min_samples=2, scoring=True)
        return SequenceDataset(x, self.n_anchor_times_, self._anchor_counts(series.lengths))

    def score_per_step(self, X) -> np.ndarray:
        """The held-out predictive bound for each step ahead, in nats.

        Sequences are shuffled with a fixed seed, each gets a fixed random permutation of
        anchor times, and full batches of ``eval_batch_size_`` sequences are scored (fewer
        if fewer sequences are given; a last partial batch is dropped).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_timesteps * n_channels), 3-D array or list
            At least 2 sequences, in any layout :meth:`fit` accepts.

        Returns
        -------
        mi_per_step : ndarray of shape (prediction_steps,)
            Bound for ``k = 1 .. prediction_steps``, averaged over anchor times and
            evaluation batches.
        """
        dataset = self._scored_dataset(X)
        batch_size = min(self.eval_batch_size_, len(dataset))
        if batch_size < self.eval_batch_size_:
            validity = bound_validity(self.objective, batch_size, alpha=self.alpha_)
            warnings.warn(
                f"Only {len(dataset)} sequences given: scoring one batch of {batch_size} "
                f"instead of {self.eval_batch_size_}; the bound's cap and bias change with "
                f"the batch size (validity at this size: {validity}).",
                UserWarning,
                stacklevel=3,
            )
        return self.net_.step_estimates(dataset, batch_size).mean(axis=0)

    def score(self, X, y=None) -> float:
        """The held-out predictive bound in nats, averaged over steps ahead (higher is better).

        Sequences are shuffled with a fixed seed, each gets a fixed random permutation of
        anchor times, and full batches of ``eval_batch_size_`` sequences are scored (fewer
        if fewer sequences are given; a last partial batch is dropped), with alpha
        resolved for the batch size. :meth:`evaluate` gives the uncertainty and
        diagnostics too.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_timesteps * n_channels), 3-D array or list
            At least 2 sequences, in any layout :meth:`fit` accepts.
        y : None
            Ignored.

        Returns
        -------
        score : float
            The bound averaged over steps ahead, anchor times and batches.
        """
        return self.evaluate(X).mi

    def evaluate(self, X, y=None) -> MIEstimate:
        """The held-out predictive bound with its uncertainty and diagnostics.

        Batches and alpha as in :meth:`score`; the interval is the grouped jackknife over
        the sequences of each batch, as for
        :meth:`MutualInformationEstimator.evaluate <sk_mlcpc.MutualInformationEstimator.evaluate>`.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_timesteps * n_channels), 3-D array or list
            At least 2 sequences, in any layout :meth:`fit` accepts.
        y : None
            Ignored.

        Returns
        -------
        MIEstimate
            ``(mi, std_error, ci, cap, validity, batch_size, alpha, saturated)``.

        Examples
        --------
        >>> from sk_mlcpc import ContrastivePredictiveCoding
        >>> from sk_mlcpc.datasets import make_switching_ar
        >>> X = make_switching_ar(300, random_state=0)[0]
        >>> cpc = ContrastivePredictiveCoding(max_epochs=2, random_state=0).fit(X[:200])
        >>> result = cpc.evaluate(X[200:])
        >>> result.batch_size == cpc.eval_batch_size_  # the held-out size of the fit
        True
        >>> bool(result.ci[0] <= result.mi <= result.ci[1])
        True
        """
        dataset = self._scored_dataset(X)
        return self._evaluate_rows(dataset, len(dataset))

    def transform(self, X) -> np.ndarray:
        """One feature vector per sequence.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_timesteps * n_channels), \
                ndarray of shape (n_cases, n_channels, n_timepoints) or list of ndarray
            Sequences in any layout :meth:`fit` accepts, with the fitted channels. 3-D
            arrays and lists may have other lengths than the training series, each at
            least ``window_`` time points (the encoder's receptive field).

        Returns
        -------
        X_features : ndarray of shape (n_samples, n_features_out), float32
            ``pooling="multiscale"``: the mean and maximum over time of every encoder
            layer's output, then the mean and last context, then the latents averaged
            over ``n_segments_`` equal stretches of the windows; ``"last"`` / ``"mean"``:
            the context after the last window or its mean over the windows
            (``n_components`` columns). Padding of shorter series is never pooled.
        """
        x, lengths, _ = self._validated_series(X, min_samples=1, scoring=False)
        module = self.module_.eval()
        parts = []
        with torch.no_grad():
            for start in range(0, len(x), _TRANSFORM_CHUNK):
                chunk = slice(start, start + _TRANSFORM_CHUNK)
                parts.append(
                    module.features(x[chunk], lengths[chunk], self.pooling, self.n_segments_)
                )
        return torch.cat(parts).float().cpu().numpy()
