"""ContrastiveEncoder: unsupervised embeddings of unlabelled rows, trained with ML-CPC.

This module holds the estimator; the torch side it trains (the rows, the batches of pairs
of views, the pair module and the skorch net) is in :mod:`sk_mlcpc._engine.encoder_net`.
"""

from __future__ import annotations

import copy
import os
from numbers import Integral, Real
from typing import ClassVar

import numpy as np
import torch
from sklearn.base import ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted
from torch import nn

from sk_mlcpc._engine.encoder_net import (
    RowDataset,
    ViewContrastiveNet,
    ViewFunction,
    ViewPairModule,
)
from sk_mlcpc._engine.evaluation import warn_if_alpha_is_invalid
from sk_mlcpc._engine.fitting import (
    auto_blockwise,
    check_has_features,
)
from sk_mlcpc._engine.inputs import INPUT_DTYPES, as_float32, validate_input
from sk_mlcpc._engine.net import (
    AlphaSchedule,
    BoundLoss,
)
from sk_mlcpc._estimators.base import (
    ContrastiveEstimator,
    FitSplit,
    MIEstimate,
    ReportsHeldOutBound,
)
from sk_mlcpc._estimators.docs import shared_parameter_docs
from sk_mlcpc._math.bounds import bound_validity, cap, resolve_alpha
from sk_mlcpc._nn.encoders import make_mlp
from sk_mlcpc._nn.images import ConvEncoder, check_image_shape, make_image_view
from sk_mlcpc._nn.views import VIEWS, make_view

__all__ = ["ContrastiveEncoder"]

# Rows kept to define the marginals that feature corruption draws from; they are pickled
# with the model, so their number is bounded.
_MAX_REFERENCE_ROWS = 8192
_TRANSFORM_CHUNK = 8192
# n_components="auto" for tabular rows and a user's encoder class.
_DEFAULT_WIDTH = 32


@shared_parameter_docs
class ContrastiveEncoder(
    ClassNamePrefixFeaturesOutMixin, TransformerMixin, ReportsHeldOutBound, ContrastiveEstimator
):
    """Learn embeddings of unlabelled rows with a contrastive bound between two views.

    Each training batch of ``n`` rows is turned into two random views (by default: a share
    of each row's features replaced by values drawn from those features' marginals); an
    encoder followed by a projection head maps both views, and the network is trained to
    maximise a contrastive lower bound (ML-CPC by default) on the mutual information
    between the views, with the ``n - 1`` other rows as negatives. :meth:`transform`
    returns the encoder's output (the projection head is only used for training).

    Parameters
    ----------
    n_components : int or "auto", default="auto"
        Width of the embedding returned by :meth:`transform` (``n_components_``).
        ``"auto"`` is 32 for tabular rows and for a user's ``encoder`` class; with
        ``image_shape`` and ``encoder=None`` it is the width of the convolutional
        encoder's pooled feature map (128 channels x 2 x 2 cells, 512 numbers), which
        :meth:`transform` then returns without any linear layer after the
        convolutions: the layers after them (the projection head) serve the
        contrastive loss only, as in SimCLR [3]_. An integer with ``image_shape`` adds a
        linear layer from the feature map (pooled to at most 4 x 4 cells) to
        ``n_components`` numbers.
    objective : str, default="ml_cpc"
        Bound from :data:`sk_mlcpc.bounds.BOUNDS`.
    alpha : float or "auto", default="auto"
        Positive weight of ``"ml_cpc"`` / ``"alpha_cpc"``; at most ``batch_size``.
        ``"auto"`` is the smallest alpha treated as valid for the batch size, see
        :func:`sk_mlcpc.bounds.valid_alpha_range`. With ``alpha_schedule`` it is the
        first epoch's alpha.
    alpha_schedule : {"geometric", "cosine"} or None, default=None
        Curriculum from ``alpha`` (first epoch) to ``alpha_final`` (epoch
        ``max_epochs``), see :class:`sk_mlcpc._engine.alpha_schedule.AlphaSchedule`. The
        paper's CIFAR runs use ``alpha=10, alpha_final=0.1, alpha_schedule="geometric"``.
    alpha_final : float or "auto", default="auto"
        Last alpha of the schedule; also the alpha of every held-out evaluation
        (``valid_mi`` in ``history_``, :meth:`score`). Ignored without a schedule.
    temperature : float, default=0.1
        Scores are cosine similarities of the projections divided by ``temperature``;
        the bound is then at most about ``2 / temperature`` nats.
    image_shape : tuple of int or None, default=None
        ``(h, w)`` or ``(h, w, c)`` when each row of ``X`` is an image of ``h x w``
        pixels and ``c`` channels, flattened channels-last (``images.reshape(n, -1)``
        of an array shaped ``(n, h, w, c)``, or ``(n, h, w)`` for one channel);
        ``h * w * c`` must be the number of columns. It turns on the image mode:
        ``augmentation="auto"`` moves pixels (``translation``, ``rotation``, ``zoom``),
        ``encoder=None`` builds a small convolutional network
        (:class:`sk_mlcpc.encoders.ConvEncoder`) whose pooled features
        :meth:`transform` returns (see ``n_components``), and ``preprocessing="standard"``
        standardises with one mean and one standard deviation per channel over all
        pixels, so that neighbouring pixels keep their relation (a per-column scaling
        would give each pixel its own). ``None``: rows are tabular. The image
        defaults (views and encoder) were chosen on scikit-learn's ``8 x 8`` digits
        (``benchmarks/images.py``); larger images were only checked to run.
    augmentation : {"auto", "image", "corruption", "noise", "mask"} or callable, \
default="auto"
        How a view is made from a batch (after ``preprocessing``): see
        :mod:`sk_mlcpc.views`. ``"auto"`` is ``"corruption"`` for tabular rows and
        ``"image"`` with ``image_shape``: random shifts by up to ``translation`` of the
        image's sides, rotations by up to ``rotation`` degrees and zooms by up to
        ``zoom``, on the pixel grid (:class:`sk_mlcpc.views.RandomAffine`), pixels from
        outside the image taking the value 0 of the raw data. A callable
        ``view(x_batch, generator) -> x_view`` gets a
        float32 tensor ``(n, n_features)`` and a :class:`torch.Generator` on the batch's
        device to draw from (pass ``device=generator.device`` to random functions), and
        must return a tensor of the same shape (a module-level function, so that the
        estimator pickles).
    corruption_rate : float, default=0.3
        Share of each row's features replaced (``"corruption"``) or zeroed (``"mask"``).
    noise_scale : float, default=0.5
        Noise standard deviation for ``"noise"``, relative to each feature's.
    translation : float, default=0.25
        ``"image"`` views: largest shift along each axis, as a share of the image's
        height and width (0.25: two pixels of an ``8 x 8`` image, eight of a ``32 x 32``).
    rotation : float, default=15.0
        ``"image"`` views: largest rotation, in degrees.
    zoom : float, default=0.2
        ``"image"`` views: largest relative zoom in or out.
    encoder : torch.nn.Module instance or class, or None, default=None
        ``None`` builds an MLP ``n_features -> hidden_layer_sizes -> n_components``, or
        with ``image_shape`` a :class:`~sk_mlcpc.encoders.ConvEncoder` (two blocks of
        convolutions, 64 and 128 channels, ending at the pooled feature map with
        ``n_components="auto"``; ``hidden_layer_sizes`` is then unused). A
        class is called as ``encoder(n_features_in, n_components)`` (32 for
        ``"auto"``); an instance is
        copied (the original is left untouched) and ``n_components_`` is read from its
        output width. Either maps a float32 batch ``(n, n_features)`` to ``(n, width)``;
        reshape inside the module for images given as flattened rows.
    hidden_layer_sizes : tuple of int, default=(256,)
        Hidden widths of the default MLP encoder.
    projection_dim : int or None, default=64
        Output width of the projection head (one hidden layer of the same width).
        ``None`` scores the embeddings themselves.
    .. shared-parameter:: activation
    batch_size : int, default=256
        Rows per training batch; each positive pair has ``batch_size - 1`` negatives.
    eval_batch_size : int, "auto" or None, default="auto"
        Rows per held-out evaluation batch (``mi_``, ``valid_mi``, :meth:`score`).
        ``"auto"`` scores all the held-out rows in one batch, up to 4,096 (above that,
        the fewest equal batches), with alpha resolved for that size, as
        :class:`~sk_mlcpc.MutualInformationEstimator` does; ``None`` uses
        ``batch_size``.
    max_epochs : int, default=50
        Passes over the training rows.
    .. shared-parameter:: learning_rate
    .. shared-parameter:: weight_decay
    validation_fraction : float, default=0.1
        Share of the rows held out to report ``valid_mi`` per epoch and, without early
        stopping, ``mi_``. 0 trains on every row (then ``early_stopping`` must be off and
        ``mi_`` is not set).
    test_fraction : float, default=0.1
        With ``early_stopping=True`` only: share of the rows held out for ``mi_`` alone,
        since the validation rows then choose the epoch. Without early stopping nothing
        is chosen on the validation rows, ``mi_`` is read on them and no rows are held
        out for it.
    early_stopping : bool, default=False
        Stop when the held-out bound has not improved by ``tol`` for
        ``n_iter_no_change`` epochs, and restore the best weights.
    .. shared-parameter:: n_iter_no_change
    tol : float, default=1e-3
        Minimum improvement (nats) that resets the patience.
    preprocessing : {"standard", "quantile"} or None, default="standard"
        Per-column transformation learnt on the training rows, applied before the views
        and at :meth:`transform`. With ``image_shape``, ``"standard"`` uses one mean and
        one standard deviation per channel, over all the pixels of the training rows
        (``"quantile"`` is refused: it maps each pixel by its own quantiles), and
        ``None`` leaves the pixels as they are.
    .. shared-parameter:: device
    .. shared-parameter:: n_threads
    random_state : int, RandomState instance or None, default=None
        Controls the split, the initialisation, the batch order and the views. The
        global torch random state is left untouched.
    verbose : int, default=0
        0 is silent; 1 prints skorch's per-epoch table; 2 adds a progress bar.
    blockwise : "auto" or bool, default="auto"
        Evaluate the bound in tiles from the factors of the scores (the projections of
        both views, the temperature and the learnt offset) without storing the
        ``n x n`` score matrix (:mod:`sk_mlcpc.blockwise`): memory linear in the batch
        size, same values and gradients up to float rounding. ``"auto"`` turns it on
        from 2,048 rows per training batch, or when an evaluation batch holds more than
        4,096 rows (smaller ones are scored as one matrix, which is faster). Every
        objective is supported.
    .. shared-parameter:: precision
    .. shared-parameter:: compile
    warm_start : bool, default=False
        When true and the encoder is fitted, ``fit`` continues training it for
        ``max_epochs`` more epochs (optimiser state, preprocessing, views, batch sizes and
        alpha kept) instead of starting again.
    checkpoint_dir : str, path-like or None, default=None
        Directory where the network, optimiser, criterion and history are saved after
        every epoch; ``fit`` resumes an unfinished checkpoint of the same fit (same
        parameters and data) and runs only the remaining epochs, so an interrupted fit
        ends as an uninterrupted one would (early stopping included).
    .. shared-parameter:: on_divergence
    callbacks : list of skorch callbacks or (name, callback) tuples, or None, default=None
        Extra skorch callbacks; copies are used.

    Attributes
    ----------
    n_components_ : int
        Width of the embedding.
    alpha_ : float
        Alpha of the held-out evaluations (``alpha_final`` with a schedule, else
        ``alpha``, with ``"auto"`` resolved).
    alpha_initial_ : float
        Alpha of the first epoch.
    mi_ : float
        Held-out bound between two views, nats (only when ``validation_fraction > 0``).
    .. shared-parameter:: mi_std_
    .. shared-parameter:: mi_ci_
    eval_alpha_ : float
        Alpha of the held-out bound (``alpha_final``, or ``alpha`` without a schedule,
        with ``"auto"`` resolved at ``eval_batch_size_``).
    .. shared-parameter:: saturated_
    .. shared-parameter:: saturation_gain_
    .. shared-parameter:: mi_cap_
    bound_validity_ : {"proven", "claimed", "invalid"}
        Whether the evaluated bound is a lower bound on the views' MI, see
        :func:`sk_mlcpc.bounds.bound_validity`.
    batch_size_, eval_batch_size_ : int
        Batch sizes used (capped by the rows available).
    blockwise_ : bool
        Whether the bound was evaluated blockwise (``blockwise`` with ``"auto"``
        resolved from ``batch_size_`` and ``eval_batch_size_``).
    encoder_ : torch.nn.Module
        The trained encoder (what :meth:`transform` applies).
    net_ : skorch.NeuralNet
        The fitted skorch net (its module is encoder + projection head).
    history_ : skorch.History
        Per epoch: ``train_loss``, ``train_mi``, ``valid_loss``, ``valid_mi`` (nats),
        ``alpha`` (alpha objectives); and per-batch losses.
    .. shared-parameter:: n_epochs_
    .. shared-parameter:: device_
    n_features_in_ : int
        Columns of ``X``.
    .. shared-parameter:: feature_names_in_

    See Also
    --------
    MutualInformationEstimator : MI between two given variables.
    sklearn.decomposition.PCA : The linear baseline with the same interface.

    Notes
    -----
    ``y`` is ignored, so the encoder can sit in a Pipeline in front of a classifier:
    it never sees the labels. The held-out bound measures how well the two views
    identify each other among ``eval_batch_size - 1`` others; it is a lower bound on the
    mutual information between the *views* (``bound_validity_``), not a measure of the
    embedding's quality for a downstream task. With a schedule, validation uses the
    final alpha throughout so that early stopping compares like with like.

    References
    ----------
    .. [1] J. Song, S. Ermon. "Multi-label Contrastive Predictive Coding." NeurIPS 2020.
    .. [2] D. Bahri et al. "SCARF: Self-Supervised Contrastive Learning using Random
       Feature Corruption." ICLR 2022.
    .. [3] T. Chen et al. "A Simple Framework for Contrastive Learning of Visual
       Representations." ICML 2020.

    Examples
    --------
    >>> from sklearn.datasets import load_wine
    >>> from sk_mlcpc import ContrastiveEncoder
    >>> X, y = load_wine(return_X_y=True)
    >>> encoder = ContrastiveEncoder(n_components=8, max_epochs=5, random_state=0)
    >>> encoder.fit_transform(X).shape
    (178, 8)
    >>> encoder.get_feature_names_out()[:2].tolist()
    ['contrastiveencoder0', 'contrastiveencoder1']

    Rows that are images (here ``8 x 8`` digits, flattened):

    >>> from sklearn.datasets import load_digits
    >>> X_digits, _ = load_digits(return_X_y=True)
    >>> images = ContrastiveEncoder(image_shape=(8, 8), max_epochs=2, random_state=0)
    >>> images.fit_transform(X_digits[:200]).shape  # the pooled features: 128 x 2 x 2
    (200, 512)
    >>> type(images.encoder_).__name__
    'ConvEncoder'
    """

    _own_parameter_constraints: ClassVar[dict] = {
        "test_fraction": [Interval(Real, 0, 1, closed="neither")],
        "alpha_schedule": [StrOptions({"geometric", "cosine"}), None],
        "alpha_final": [Interval(Real, 0, None, closed="neither"), StrOptions({"auto"})],
        "temperature": [Interval(Real, 0, None, closed="neither")],
        "n_components": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "image_shape": [tuple, list, None],
        "augmentation": [StrOptions({"auto", "image", *VIEWS}), callable],
        "corruption_rate": [Interval(Real, 0, 1, closed="both")],
        "noise_scale": [Interval(Real, 0, None, closed="left")],
        "translation": [Interval(Real, 0, 1, closed="both")],
        "rotation": [Interval(Real, 0, 180, closed="both")],
        "zoom": [Interval(Real, 0, None, closed="left")],
        "encoder": [nn.Module, type, None],
        "projection_dim": [Interval(Integral, 1, None, closed="left"), None],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
    }

    def __init__(
        self,
        *,
        n_components: int | str = "auto",
        objective: str = "ml_cpc",
        alpha: float | str = "auto",
        alpha_schedule: str | None = None,
        alpha_final: float | str = "auto",
        temperature: float = 0.1,
        image_shape: tuple[int, ...] | None = None,
        augmentation: str | ViewFunction = "auto",
        corruption_rate: float = 0.3,
        noise_scale: float = 0.5,
        translation: float = 0.25,
        rotation: float = 15.0,
        zoom: float = 0.2,
        encoder: nn.Module | type[nn.Module] | None = None,
        hidden_layer_sizes: tuple[int, ...] = (256,),
        projection_dim: int | None = 64,
        activation: str = "relu",
        batch_size: int = 256,
        eval_batch_size: int | str | None = "auto",
        max_epochs: int = 50,
        learning_rate: float = 1e-3,
        weight_decay: float = 0.0,
        validation_fraction: float = 0.1,
        test_fraction: float = 0.1,
        early_stopping: bool = False,
        n_iter_no_change: int = 10,
        tol: float = 1e-3,
        preprocessing: str | None = "standard",
        device: str | torch.device = "auto",
        n_threads: int | None = None,
        random_state: int | np.random.RandomState | None = None,
        verbose: int = 0,
        blockwise: bool | str = "auto",
        precision: str = "fp32",
        compile: bool = False,
        warm_start: bool = False,
        checkpoint_dir: str | os.PathLike | None = None,
        on_divergence: str = "raise",
        callbacks: list | None = None,
    ) -> None:
        self._store_init_arguments(locals())

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float32"]
        tags.non_deterministic = False
        return tags

    # ------------------------------------------------------------------ building blocks

    @property
    def _image_shape(self) -> tuple[int, int, int] | None:
        """``image_shape`` as ``(h, w, c)`` (checked against the fitted width), or None."""
        if self.image_shape is None:
            return None
        return check_image_shape(self.image_shape, getattr(self, "n_features_in_", None))

    def _build_encoder(self, n_features: int) -> tuple[nn.Module, int]:
        # "auto": 32, except the image encoder's pooled features (no linear layer after them).
        width = _DEFAULT_WIDTH if self.n_components == "auto" else self.n_components
        if self.encoder is None and self.image_shape is not None:
            conv_width = None if self.n_components == "auto" else width
            module = ConvEncoder(self._image_shape, conv_width, activation=self.activation)
        elif self.encoder is None:
            module = make_mlp(n_features, width, self._check_hidden_layer_sizes(), self.activation)
        elif isinstance(self.encoder, nn.Module):
            module = copy.deepcopy(self.encoder)
        elif isinstance(self.encoder, type) and issubclass(self.encoder, nn.Module):
            module = self.encoder(n_features, width)
        else:
            raise TypeError(
                "encoder must be None, a torch.nn.Module instance or a torch.nn.Module "
                f"subclass, got {self.encoder!r}."
            )
        # On the training device before the probe: a user's module may come from a GPU.
        module = module.float().to(self.device_)
        # The probe runs in eval mode: a batch-norm layer must not see it as a batch.
        was_training = module.training
        module.eval()
        try:
            with torch.no_grad():
                probe = module(torch.zeros(2, n_features, device=self.device_))
        except Exception as error:
            raise ValueError(
                f"The encoder failed on a batch of shape (2, {n_features}): {error}"
            ) from error
        finally:
            module.train(was_training)
        if not isinstance(probe, torch.Tensor) or probe.ndim != 2 or probe.shape[0] != 2:
            shape = tuple(probe.shape) if isinstance(probe, torch.Tensor) else type(probe)
            raise ValueError(
                f"The encoder must map (n, {n_features}) to (n, width); got {shape} for n=2."
            )
        return module, int(probe.shape[1])

    def _make_view(self, reference: torch.Tensor) -> ViewFunction:
        if callable(self.augmentation):
            return self.augmentation
        augmentation = self.augmentation
        if augmentation == "auto":
            augmentation = "corruption" if self.image_shape is None else "image"
        if augmentation == "image":
            # Raw 0 (the border of a pad-and-crop) in the scaled units the view sees.
            fill = -self._image_mean / self._image_scale
            return make_image_view(
                self._image_shape,
                translation=self.translation,
                rotation=self.rotation,
                zoom=self.zoom,
                fill=fill,
            )
        return make_view(
            augmentation,
            reference,
            corruption_rate=self.corruption_rate,
            noise_scale=self.noise_scale,
        )

    def _preprocess(self, X: np.ndarray, device=None) -> torch.Tensor:
        device = self._data_device if device is None else device
        if self.image_shape is not None:
            # One offset and scale per channel, shared by every pixel (float64, then cast).
            pixels = self._image_shape[0] * self._image_shape[1]
            mean = np.tile(self._image_mean.numpy(), pixels)
            scale = np.tile(self._image_scale.numpy(), pixels)
            X = (np.asarray(X, dtype=np.float64) - mean) / scale
        elif self.preprocessor_ is not None:
            X = self.preprocessor_.transform(X)
        return torch.as_tensor(as_float32(X, "X"), device=device)

    def _fit_image_scaling(self, X: np.ndarray) -> None:
        """Per-channel mean and scale over every pixel of the training rows ``X``."""
        c = self._image_shape[2]
        if self.preprocessing == "standard":
            pixels = np.asarray(X, dtype=np.float64).reshape(-1, c)
            mean, scale = pixels.mean(axis=0), pixels.std(axis=0)
            scale[~(scale > 0)] = 1.0  # a constant channel is only centred
        else:
            mean, scale = np.zeros(c), np.ones(c)
        self._image_mean = torch.as_tensor(mean, dtype=torch.float64)
        self._image_scale = torch.as_tensor(scale, dtype=torch.float64)

    def _own_callbacks(self) -> list:
        callbacks = super()._own_callbacks()
        if self._takes_alpha:
            kind = self.alpha_schedule or "constant"
            schedule = AlphaSchedule(kind, self.alpha_initial_, self.alpha_, self.max_epochs)
            callbacks.append(("alpha_schedule", schedule))
        return callbacks

    # ------------------------------------------------------------------ fitting

    def fit(self, X, y=None, **fit_params):
        """Learn the encoder from the rows of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Unlabelled training rows.
        y : None
            Ignored; present so that the encoder works in a Pipeline before a classifier
            (the labels never reach it).
        **fit_params : dict
            Must be empty: fit parameters are refused rather than silently ignored.

        Returns
        -------
        self : ContrastiveEncoder
            The fitted encoder.
        """
        return self._fit(X, y, fit_params)

    def _validate_fit_data(self, X, y, *, warm: bool) -> dict:
        check_has_features(X)
        X = validate_input(self, X, dtype=INPUT_DTYPES, ensure_min_samples=2, reset=not warm)
        self._check_image_parameters(X.shape[1])
        if self.early_stopping and self.validation_fraction == 0:
            raise ValueError(
                "early_stopping=True needs held-out rows: set validation_fraction > 0."
            )
        return {"arrays": (X,), "n_samples": len(X)}

    def _check_image_parameters(self, n_features: int) -> None:
        if self.image_shape is None:
            if self.augmentation == "image":
                raise ValueError(
                    "augmentation='image' moves pixels: it needs image_shape=(h, w) or "
                    "(h, w, c), the shape of the images the rows hold."
                )
            return
        check_image_shape(self.image_shape, n_features)
        if self.preprocessing == "quantile":
            raise ValueError(
                "preprocessing='quantile' maps each column by its own quantiles, which "
                "scrambles the neighbourhoods of an image; with image_shape use 'standard' "
                "(one mean and standard deviation per channel over all pixels) or None."
            )

    def _test_fraction_in_use(self) -> float:
        return self.test_fraction if self.early_stopping else 0.0

    def _prepare_data(self, data: dict, split: FitSplit, *, warm: bool):
        (X,) = data["arrays"]
        n_train, n_valid = len(split.train), len(split.valid)
        # The rows of mi_: the test rows when early stopping chooses on the validation ones.
        n_held = min(n_valid, len(split.test)) if len(split.test) else n_valid
        if warm and getattr(self, "_fitted_image_mode", False) != (self.image_shape is not None):
            raise ValueError(
                "warm_start continues the fitted model: image_shape cannot be set or unset "
                "between fits; set warm_start=False to fit again."
            )
        if not warm:
            self._fitted_image_mode = self.image_shape is not None
        if not warm and self.image_shape is not None:
            self.preprocessor_ = None
            self._fit_image_scaling(X[split.train])
        elif not warm:
            self.preprocessor_ = self._make_preprocessor(n_train, split.seeds["prep"])
            if self.preprocessor_ is not None:
                self.preprocessor_.fit(X[split.train])
        device = self._data_device if warm else self.device_
        x_all = self._preprocess(X, device=device)
        if not torch.isfinite(x_all).all():
            raise ValueError("X holds values that overflow float32 after preprocessing; rescale X.")
        x_train = x_all[torch.as_tensor(split.train, device=device)]
        valid_set = None
        if n_valid:
            valid_set = RowDataset(x_all[torch.as_tensor(split.valid, device=device)])
        data["estimate_set"] = valid_set
        if len(split.test):
            data["estimate_set"] = RowDataset(x_all[torch.as_tensor(split.test, device=device)])
        if warm:
            self._check_warm_sizes(
                {"batch_size_": n_train, "eval_batch_size_": n_held}, split.n_samples
            )
        else:
            self._set_fitted_sizes(x_train, n_train, n_held, split.seeds["prep"])
        return RowDataset(x_train), valid_set

    def _set_fitted_sizes(self, x_train, n_train: int, n_held: int, seed: int) -> None:
        """Batch sizes, alphas, blockwise and the views' reference rows of a new fit.

        ``n_held`` is the number of rows each evaluation batch can draw from (0: none).
        """
        reference_rows = np.sort(
            np.random.default_rng(seed).permutation(n_train)[:_MAX_REFERENCE_ROWS]
        )
        # Kept on the host (pickled plainly); the view gets a copy on the device.
        self._view_reference = x_train[torch.as_tensor(reference_rows, device=x_train.device)].cpu()
        self.batch_size_ = min(self.batch_size, n_train)
        if n_held:
            self.eval_batch_size_ = self._evaluation_batch_size(n_held)
        elif self.eval_batch_size == "auto":
            self.eval_batch_size_ = self.batch_size_
        else:
            self.eval_batch_size_ = self.eval_batch_size or self.batch_size_
        n_negatives_per_row = min(self.batch_size_, self.eval_batch_size_)
        if self._takes_alpha:
            self.alpha_initial_ = self._resolve_alpha(self.alpha, "alpha", n_negatives_per_row)
            self.alpha_ = self._resolve_alpha(self._final_alpha, "alpha_final", n_negatives_per_row)
        else:
            self.alpha_initial_ = self.alpha_ = 1.0
        self.eval_alpha_ = self._alpha_at(self.eval_batch_size_)
        self.blockwise_ = self._resolve_blockwise()

    def _finish_fit(self, data: dict, split: FitSplit) -> None:
        if data["estimate_set"] is None:
            self.mi_cap_ = cap(self.objective, self.eval_batch_size_, alpha=self.eval_alpha_)
            self.bound_validity_ = bound_validity(
                self.objective, self.eval_batch_size_, alpha=self.eval_alpha_
            )
            warn_if_alpha_is_invalid(
                self.objective, self.eval_alpha_, self.bound_validity_, self.eval_batch_size_
            )
            return
        estimate = self._evaluate(data["estimate_set"], self.eval_batch_size_)
        self._record_held_out(
            estimate,
            advice="Lower learning_rate, raise temperature or keep preprocessing on.",
        )

    def _make_net(self, *, shuffle_seed: int, eval_seed: int, valid_set=None):
        """The (untrained) skorch net of the fitted architecture, views and batch sizes."""
        encoder, self.n_components_ = self._build_encoder(self.n_features_in_)
        if self.projection_dim is None:
            head: nn.Module = nn.Identity()
        else:
            head = make_mlp(
                self.n_components_, self.projection_dim, (self.projection_dim,), self.activation
            )
        net = ViewContrastiveNet(
            ViewPairModule(encoder, head, self.temperature),
            criterion=BoundLoss,
            criterion__objective=self.objective,
            criterion__alpha=self.alpha_initial_,
            criterion__eval_alpha=self.eval_alpha_,
            blockwise=self.blockwise_,
            **self._net_arguments(
                shuffle_seed=shuffle_seed,
                eval_seed=eval_seed,
                valid_set=valid_set,
                eval_batch_size=self.eval_batch_size_,
            ),
        )
        net.view = self._make_view(self._view_reference.to(self.device_))
        return net

    # Fitted attributes of its own that save() writes (see ContrastiveEstimator).
    n_components_: int
    alpha_initial_: float
    blockwise_: bool
    _saved_preprocessors = ("preprocessor_",)

    def _saved_tensors(self) -> dict[str, torch.Tensor]:
        tensors = {"view_reference": self._view_reference}
        if self.image_shape is not None:
            tensors.update(image_mean=self._image_mean, image_scale=self._image_scale)
        return tensors

    def _restore_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        self._view_reference = tensors["view_reference"].cpu()
        self._fitted_image_mode = self.image_shape is not None
        if self.image_shape is None:
            return
        channels = self._image_shape[2]
        for name in ("image_mean", "image_scale"):
            value = tensors[name]
            if value.shape != (channels,) or value.dtype != torch.float64:
                raise ValueError(
                    f"{name} is a {value.dtype} tensor of shape {tuple(value.shape)}, not "
                    f"float64 of shape ({channels},)"
                )
            if not torch.isfinite(value).all():
                raise ValueError(f"{name} holds non-finite values")
        if not (tensors["image_scale"] > 0).all():
            raise ValueError("image_scale holds values that are not positive")
        self._image_mean = tensors["image_mean"].clone()
        self._image_scale = tensors["image_scale"].clone()

    def _stand_in_tensors(self) -> None:
        self._view_reference = torch.zeros(1, self.n_features_in_)
        if self.image_shape is not None:
            channels = self._image_shape[2]
            self._image_mean = torch.zeros(channels, dtype=torch.float64)
            self._image_scale = torch.ones(channels, dtype=torch.float64)

    def _preprocessor_classes(self, name: str) -> tuple[frozenset[str], str]:
        if self.image_shape is not None:  # scaled by _image_mean / _image_scale instead
            return frozenset(), f"image_shape={self.image_shape!r}"
        return super()._preprocessor_classes(name)

    def _rebuild_net(self, *, shuffle_seed: int, eval_seed: int):
        if not hasattr(self, "blockwise_"):
            self.blockwise_ = False  # a file saved before the option: trained densely
        if not hasattr(self, "eval_alpha_"):
            self.eval_alpha_ = self.alpha_  # a file saved before eval_alpha_ existed
        return self._make_net(shuffle_seed=shuffle_seed, eval_seed=eval_seed)

    @property
    def encoder_(self) -> nn.Module:
        """The trained encoder (the projection head is not part of it)."""
        return self.net_.module_.encoder

    def _resolve_blockwise(self) -> bool:
        if self.blockwise == "auto":  # the pair module is always separable
            return auto_blockwise(self.batch_size_, self.eval_batch_size_)
        return bool(self.blockwise)

    @property
    def _final_alpha(self):
        return self.alpha_final if self.alpha_schedule else self.alpha

    def _alpha_at(self, n_rows: int) -> float:
        if not self._takes_alpha:
            return 1.0
        name = "alpha_final" if self.alpha_schedule else "alpha"
        return self._resolve_alpha(self._final_alpha, name, n_rows)

    def _resolve_alpha(self, alpha, name: str, n: int) -> float:
        if not isinstance(alpha, str) and alpha > n:
            raise ValueError(
                f"{name}={alpha} exceeds the {n} samples each positive is contrasted with "
                f"(the batch size used); choose {name} <= {n}, or a larger batch_size."
            )
        return resolve_alpha(alpha, self.objective, n)

    # ------------------------------------------------------------------ using the model

    def transform(self, X) -> np.ndarray:
        """Embed ``X`` with the trained encoder.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        X_embedded : ndarray of shape (n_samples, width), float32
            ``width`` is ``n_components_``.
        """
        check_is_fitted(self)
        check_has_features(X)
        X = validate_input(self, X, dtype=INPUT_DTYPES, reset=False)
        x = self._preprocess(X)
        encoder = self.encoder_.eval()
        with torch.no_grad():
            parts = [
                encoder(x[start : start + _TRANSFORM_CHUNK])
                for start in range(0, len(x), _TRANSFORM_CHUNK)
            ]
        return torch.cat(parts).float().cpu().numpy()

    def fit_transform(self, X, y=None, **fit_params) -> np.ndarray:
        """Fit on ``X`` and return its embedding.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : None
            Ignored.
        **fit_params : dict
            Must be empty (refused, as by :meth:`fit`).

        Returns
        -------
        X_embedded : ndarray of shape (n_samples, width), float32
            ``width`` is ``n_components_``.
        """
        return self.fit(X, y, **fit_params).transform(X)

    def score(self, X, y=None) -> float:
        """Held-out lower bound (nats) on the mutual information between two views of ``X``.

        The same rules as ``mi_``: with ``eval_batch_size="auto"`` all the rows given are
        scored in one batch (up to 4,096; above that in the fewest equal batches),
        otherwise in batches of ``eval_batch_size_`` rows (fewer if fewer rows are
        given); alpha is resolved for the batch size; rows are shuffled and viewed with
        a fixed seed and a last partial batch is dropped, so repeated calls give the
        same number. :meth:`evaluate` gives the uncertainty and diagnostics too.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : None
            Ignored.

        Returns
        -------
        score : float
            Mean of the bound over evaluation batches (higher is better).
        """
        return self.evaluate(X).mi

    def evaluate(self, X, y=None) -> MIEstimate:
        """The bound between two views of new rows, with its uncertainty and diagnostics.

        Batches and alpha as in :meth:`score`.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : None
            Ignored.

        Returns
        -------
        MIEstimate
            ``(mi, std_error, ci, cap, validity, batch_size, alpha, saturated)``, as
            :meth:`MutualInformationEstimator.evaluate
            <sk_mlcpc.MutualInformationEstimator.evaluate>` returns.

        Examples
        --------
        >>> from sklearn.datasets import load_wine
        >>> from sk_mlcpc import ContrastiveEncoder
        >>> X, _ = load_wine(return_X_y=True)
        >>> encoder = ContrastiveEncoder(max_epochs=5, random_state=0).fit(X[:140])
        >>> result = encoder.evaluate(X[140:])
        >>> result.batch_size
        38
        >>> bool(result.mi < result.cap)
        True
        """
        check_is_fitted(self)
        check_has_features(X)
        X = validate_input(self, X, dtype=INPUT_DTYPES, ensure_min_samples=2, reset=False)
        x = self._preprocess(X)
        return self._evaluate_rows(RowDataset(x), len(x))

    @property
    def _n_features_out(self) -> int:
        return self.n_components_
