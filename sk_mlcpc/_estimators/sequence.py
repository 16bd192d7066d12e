"""ContrastivePredictiveCoding: sequence CPC trained with any contrastive bound.

The model of van den Oord et al. (2018): a window encoder maps each time window of a
sequence to a latent ``z_t``, a causal GRU summarises ``z_0, ..., z_t`` into a context
``c_t``, and one linear predictor per step ahead scores the true future latent
``z_{t+k}`` against negatives with the bilinear critic ``f_k(c_t, z) = (W_k c_t) . z``.

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

__all__ = ["ContrastivePredictiveCoding"]

_TRANSFORM_CHUNK = 4096


def _n_windows(n_timesteps: int, window: int, stride: int) -> int:
    """Number of complete windows of a strided convolution without padding."""
    if n_timesteps < window:
        return 0
    return (n_timesteps - window) // stride + 1


# ---------------------------------------------------------------------------------------
# Estimator
# ---------------------------------------------------------------------------------------


@shared_parameter_docs
class ContrastivePredictiveCoding(
    ClassNamePrefixFeaturesOutMixin, TransformerMixin, ReportsHeldOutBound, ContrastiveEstimator
):
    """Contrastive Predictive Coding of sequences, trained with ML-CPC (or any bound).

    Each row of ``X`` is a sequence. A window encoder maps every window of ``window``
    samples (hop ``stride``) to a latent ``z_t``; a GRU summarises ``z_0 .. z_t`` into a
    context ``c_t``; for each step ahead ``k = 1 .. prediction_steps`` a linear map
    ``W_k`` predicts the future latent, scored by ``f_k(c_t, z) = (W_k c_t) . z``. The
    networks are trained to maximise a contrastive bound on ``I(c_t; z_{t+k})``, whose
    negatives are the future latents of the other sequences of the batch, at other times.
    :meth:`transform` returns one context vector per sequence.

    Parameters
    ----------
    n_channels : int, default=1
        Channels per time step. ``X`` has ``n_timesteps * n_channels`` columns, in
        time-major order: column ``t * n_channels + c`` is channel ``c`` at time ``t``
        (what ``X3d.reshape(n_samples, -1)`` gives for ``X3d`` of shape
        ``(n_samples, n_timesteps, n_channels)``).
    window : int, default=16
        Samples per window (the encoder's receptive field).
    stride : int, default=8
        Hop between consecutive windows, in samples.
    prediction_steps : int, default=4
        How many windows ahead to predict, ``K``. Sequences must hold at least
        ``window + prediction_steps * stride`` time steps (``K + 1`` windows).
    n_components : int, default=32
        Width of the context vectors ``c_t``: the output of :meth:`transform`.
    latent_dim : int, default=32
        Width of the window latents ``z_t``.
    hidden_layer_sizes : tuple of int, default=(64,)
        Hidden widths of the window encoder (an MLP on each window, run as a strided
        convolution); empty for a linear encoder.
    .. shared-parameter:: activation
    pooling : {"last", "mean"}, default="last"
        Context returned by :meth:`transform`: the one after the last window, or the mean
        over all windows.
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
    n_timesteps_ : int
        Time steps per sequence.
    n_windows_ : int
        Windows per sequence, ``L = (n_timesteps_ - window) // stride + 1``.
    n_anchor_times_ : int
        Anchor times per sequence, ``L - prediction_steps``.
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
        Columns of ``X``, ``n_timesteps * n_channels``.
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
    window ``t + k``.

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
    >>> cpc.transform(X).shape
    (300, 32)
    >>> cpc.mi_per_step_.shape
    (2,)
    """

    _own_parameter_constraints: ClassVar[dict] = {
        "test_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_channels": [Interval(Integral, 1, None, closed="left")],
        "window": [Interval(Integral, 1, None, closed="left")],
        "stride": [Interval(Integral, 1, None, closed="left")],
        "prediction_steps": [Interval(Integral, 1, None, closed="left")],
        "latent_dim": [Interval(Integral, 1, None, closed="left")],
        "pooling": [StrOptions({"last", "mean"})],
        "eval_batch_size": [Interval(Integral, 2, None, closed="left"), None],
        "preprocessing": [StrOptions({"standard"}), None],
    }

    def __init__(
        self,
        *,
        n_channels: int = 1,
        window: int = 16,
        stride: int = 8,
        prediction_steps: int = 4,
        n_components: int = 32,
        latent_dim: int = 32,
        hidden_layer_sizes: tuple[int, ...] = (64,),
        activation: str = "relu",
        pooling: str = "last",
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

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags

    # ------------------------------------------------------------------ input handling

    def _check_geometry(self, n_features: int) -> tuple[int, int]:
        """``(n_timesteps, n_windows)`` for ``n_features`` columns, or a clear ValueError."""
        if n_features % self.n_channels:
            raise ValueError(
                f"X has n_features = {n_features} columns, which is not a multiple of "
                f"n_channels={self.n_channels}: each row must hold n_timesteps * n_channels "
                "values (time-major: column t * n_channels + c is channel c at time t)."
            )
        n_timesteps = n_features // self.n_channels
        n_windows = _n_windows(n_timesteps, self.window, self.stride)
        needed = self.window + self.prediction_steps * self.stride
        if n_windows < self.prediction_steps + 1:
            raise ValueError(
                f"Sequences are too short: X has n_features = {n_features} columns, i.e. "
                f"n_timesteps={n_timesteps} with n_channels={self.n_channels}, but one window "
                f"plus the prediction horizon needs at least window + prediction_steps * stride "
                f"= {self.window} + {self.prediction_steps} * {self.stride} = {needed} time "
                "steps. Use longer sequences, or a smaller window, stride or prediction_steps."
            )
        return n_timesteps, n_windows

    def _to_sequences(self, X: np.ndarray, device) -> torch.Tensor:
        """``(n, T * C)`` float32 rows -> standardised ``(n, C, T)`` tensor (a copy)."""
        n = len(X)
        x = X.reshape(n, self.n_timesteps_, self.n_channels)
        x = (x - self.channel_mean_) / self.channel_scale_
        x = torch.as_tensor(np.ascontiguousarray(x, dtype=np.float32), device=device)
        return x.transpose(1, 2).contiguous()

    # ------------------------------------------------------------------ fitting

    def fit(self, X, y=None, **fit_params):
        """Train the encoder, context network and predictors on unlabelled sequences.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_timesteps * n_channels)
            One sequence per row, time-major when ``n_channels > 1``.
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
        check_has_features(X)
        X = validate_input(self, X, dtype=np.float32, ensure_min_samples=2, reset=not warm)
        self._check_hidden_layer_sizes()
        n_timesteps, n_windows = self._check_geometry(X.shape[1])
        return {"arrays": (X,), "n_samples": len(X), "geometry": (n_timesteps, n_windows)}

    def _prepare_data(self, data: dict, split: FitSplit, *, warm: bool):
        (X,) = data["arrays"]
        n_train, n_valid = len(split.train), len(split.valid)
        if warm:
            self._check_warm_sizes(
                {"batch_size_": n_train, "eval_batch_size_": min(n_valid, len(split.test))},
                split.n_samples,
            )
        else:
            self._set_fitted_sizes(X[split.train], *data["geometry"], n_valid, len(split.test))
        x_all = self._to_sequences(X, self._data_device if warm else self.device_)
        train_set = SequenceDataset(x_all[split.train], self.n_anchor_times_)
        data["test_set"] = SequenceDataset(x_all[split.test], self.n_anchor_times_)
        return train_set, SequenceDataset(x_all[split.valid], self.n_anchor_times_)

    def _set_fitted_sizes(
        self, X_train: np.ndarray, n_timesteps: int, n_windows: int, n_valid: int, n_test: int
    ) -> None:
        """Geometry, channel scaling, batch sizes and alpha of a new fit."""
        self.n_timesteps_ = n_timesteps
        self.n_windows_ = n_windows
        self.n_anchor_times_ = n_windows - self.prediction_steps
        if self.preprocessing == "standard":
            train = X_train.reshape(-1, self.n_channels).astype(np.float64)
            scale = train.std(axis=0)
            self.channel_mean_ = train.mean(axis=0).astype(np.float32)
            self.channel_scale_ = np.where(scale > 0, scale, 1.0).astype(np.float32)
        else:
            self.channel_mean_ = np.zeros(self.n_channels, dtype=np.float32)
            self.channel_scale_ = np.ones(self.n_channels, dtype=np.float32)
        self.batch_size_ = min(self.batch_size, len(X_train))
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
            n_channels=self.n_channels,
            window=self.window,
            stride=self.stride,
            prediction_steps=self.prediction_steps,
            latent_dim=self.latent_dim,
            context_dim=self.n_components,
            hidden_layer_sizes=self._check_hidden_layer_sizes(),
            activation=self.activation,
        )
        return PredictiveCodingNet(
            module,
            criterion=PredictiveBoundLoss,
            criterion__objective=self.objective,
            criterion__alpha=self.alpha_,
            **self._net_arguments(
                shuffle_seed=shuffle_seed,
                eval_seed=eval_seed,
                valid_set=valid_set,
                eval_batch_size=self.eval_batch_size_,
            ),
        )

    # Fitted attributes of its own that save() writes (see ContrastiveEstimator).
    n_timesteps_: int
    n_windows_: int
    n_anchor_times_: int
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

    # ------------------------------------------------------------------ evaluation

    def _validated_sequences(self, X, *, min_samples: int = 1) -> torch.Tensor:
        check_is_fitted(self)
        check_has_features(X)
        X = validate_input(self, X, dtype=np.float32, ensure_min_samples=min_samples, reset=False)
        return self._to_sequences(X, self._data_device)

    def score_per_step(self, X) -> np.ndarray:
        """The held-out predictive bound for each step ahead, in nats.

        Sequences are shuffled with a fixed seed, each gets a fixed random permutation of
        anchor times, and full batches of ``eval_batch_size_`` sequences are scored (fewer
        if fewer sequences are given; a last partial batch is dropped).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_timesteps * n_channels)
            At least 2 sequences.

        Returns
        -------
        mi_per_step : ndarray of shape (prediction_steps,)
            Bound for ``k = 1 .. prediction_steps``, averaged over anchor times and
            evaluation batches.
        """
        x = self._validated_sequences(X, min_samples=2)
        batch_size = min(self.eval_batch_size_, len(x))
        if batch_size < self.eval_batch_size_:
            validity = bound_validity(self.objective, batch_size, alpha=self.alpha_)
            warnings.warn(
                f"Only {len(x)} sequences given: scoring one batch of {batch_size} instead of "
                f"{self.eval_batch_size_}; the bound's cap and bias change with the batch "
                f"size (validity at this size: {validity}).",
                UserWarning,
                stacklevel=3,
            )
        dataset = SequenceDataset(x, self.n_anchor_times_)
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
        X : array-like of shape (n_samples, n_timesteps * n_channels)
            At least 2 sequences.
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
        X : array-like of shape (n_samples, n_timesteps * n_channels)
            At least 2 sequences.
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
        x = self._validated_sequences(X, min_samples=2)
        return self._evaluate_rows(SequenceDataset(x, self.n_anchor_times_), len(x))

    def transform(self, X) -> np.ndarray:
        """One context vector per sequence.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_timesteps * n_channels)

        Returns
        -------
        X_context : ndarray of shape (n_samples, n_components), float32
            The GRU context after the last window (``pooling="last"``) or its mean over
            all windows (``pooling="mean"``).
        """
        x = self._validated_sequences(X)
        module = self.module_.eval()
        parts = []
        with torch.no_grad():
            for start in range(0, len(x), _TRANSFORM_CHUNK):
                _, context = module.contexts(x[start : start + _TRANSFORM_CHUNK])
                parts.append(context[:, -1] if self.pooling == "last" else context.mean(dim=1))
        return torch.cat(parts).float().cpu().numpy()
