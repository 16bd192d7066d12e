"""MutualInformationEstimator: neural MI lower bounds with a scikit-learn face."""

from __future__ import annotations

import math
import os
import warnings
from numbers import Real
from typing import ClassVar

import numpy as np
import torch
from sklearn.base import ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted
from torch import nn

from sk_mlcpc._engine.evaluation import (
    AUTO_EVAL_MAX_SEPARABLE,
    JACKKNIFE_GROUPS,
    HeldOutEstimate,
)
from sk_mlcpc._engine.fitting import (
    PlateauLearningRate,
    auto_blockwise,
    check_has_features,
)
from sk_mlcpc._engine.inputs import INPUT_DTYPES, as_float32, check_input, validate_input
from sk_mlcpc._engine.loss import PointwiseBoundLoss
from sk_mlcpc._engine.net import (
    BoundLoss,
    ContrastiveNet,
    DivergenceError,
    PairedTensorDataset,
)
from sk_mlcpc._estimators.base import (
    ContrastiveEstimator,
    FitSplit,
    MIEstimate,
    ReportsHeldOutBound,
)
from sk_mlcpc._estimators.class_targets import (
    ClassLabelsRecord,
    check_labels,
    class_baselines,
    class_entropy,
    class_log_prior,
    class_log_q,
    encode_labels,
    held_out_class_estimate,
    is_class_target,
)
from sk_mlcpc._estimators.docs import shared_parameter_docs
from sk_mlcpc._math.bounds import BOUNDS
from sk_mlcpc._nn.class_critic import ClassCritic, class_indices
from sk_mlcpc._nn.critics import (
    BASELINES,
    CRITICS,
    CROSS_STRUCTURES,
    GaussianBaselineCritic,
    make_critic,
)
from sk_mlcpc._nn.devices import resolve_device

__all__ = ["MIEstimate", "MutualInformationEstimator"]

_SEPARABLE_CRITICS = ("separable", "separable_additive", "bilinear")
_MAX_REFERENCE = 2048
# Estimates clamp scores at this quantile of the critic's scores on training positives.
_CEILING_QUANTILE = 0.999
_MAX_PAIRS_PER_CHUNK = 1 << 20
# Rows per batch from which blockwise="auto" chunks a joint critic's pairs: the first size
# with more than one chunk (PAIRS_PER_CHUNK = 512^2); below it chunking only costs time
# (see benchmarks/results/throughput_concat.txt).
_CHUNK_PAIRS_FROM = 1024
# Columns of X and Y together above which the Gaussian baseline's dense model is skipped:
# its float64 correlation, solve and inverses take about six (p + q)^2 matrices (0.8 GB
# at 4,096 columns) and its cubic-cost factorisations tens of seconds on 2 cores beyond.
_BASELINE_MAX_COLUMNS = 4096
# Degrees of freedom of the Student-t copula models that baseline="auto" / "student_t" fit
# and choose among on the validation rows (the Gaussian model is the limit nu -> inf).
_TAIL_DFS = (2.0, 4.0, 8.0, 16.0)
# Columns of X and Y together above which no Student-t model is fitted: its EM
# iterations cost O(rows * columns^2) each, and its scatter matrix needs the rows that
# _LOOSE_ROWS_PER_COLUMN asks for in any case.
_TAIL_MAX_COLUMNS = 256
# Training rows per column (of X and Y together) below which the estimate is flagged loose.
_LOOSE_ROWS_PER_COLUMN = 10
# Validation rows on which the trained critic's CPC and ML-CPC bounds are compared (dense
# scores of a separable critic: 4M pairs at most).
_CPC_CHECK_ROWS = 2048


def _has_embedding(estimator: MutualInformationEstimator) -> bool:
    if getattr(estimator, "target_type_", None) == "classes":
        return True  # a class critic embeds x on its own, whatever ``critic`` says
    if estimator.critic not in _SEPARABLE_CRITICS:
        raise AttributeError(
            f"transform is only available for separable or bilinear critics, which embed x "
            f"on its own; critic={estimator.critic!r} scores (x, y) pairs jointly. Use "
            f"critic='separable' (or one of {_SEPARABLE_CRITICS}) to get embeddings."
        )
    return True


def _at_most(scores: torch.Tensor, ceiling: float | None) -> torch.Tensor:
    return scores if ceiling is None else scores.clamp(max=ceiling)


@shared_parameter_docs
class MutualInformationEstimator(
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    ClassLabelsRecord,
    ReportsHeldOutBound,
    ContrastiveEstimator,
):
    """Estimate the mutual information ``I(X; Y)`` with a trained contrastive critic.

    ``fit(X, Y)`` trains a critic network (with skorch) to maximise a contrastive bound on
    a training split, then evaluates the bound on the held-out split: ``mi_`` is that
    held-out estimate in nats, ``mi_std_`` its spread over evaluation batches.

    Parameters
    ----------
    objective : str, default="ml_cpc"
        The bound to train and report, a name from :data:`sk_mlcpc.bounds.BOUNDS`:
        ``"ml_cpc"``, ``"cpc"``, ``"alpha_cpc"``, ``"nwj"``, ``"tuba"``, ``"dv"``,
        ``"mine"``, ``"js"``, ``"smile"``.
    alpha : float or "auto", default="auto"
        Positive weight of ``"ml_cpc"`` / ``"alpha_cpc"`` (ignored by the others).
        ``"auto"`` is the smallest alpha treated as valid for the batch size,
        :func:`sk_mlcpc.bounds.valid_alpha_range` ``(n).low``; it lifts ML-CPC's cap
        from ``log n`` to ``log(n (n - 1) + 1)``. See ``bound_validity_``.
    critic : {"separable", "separable_additive", "bilinear", "concat"}, default="separable_additive"
        ``"concat"`` scores each pair with one MLP (most accurate, ``O(n^2)`` network
        evaluations per batch); the separable critics score ``g(x) . h(y)`` (with
        ``+ a(x) + b(y)`` for ``"separable_additive"``) and give embeddings via
        :meth:`transform`.
    baseline : {"auto", "gaussian", "student_t"} or None, default="auto"
        A closed-form part of the critic that the network builds on: the log density
        ratio ``log p(y | x) - log p(y)`` of a model fitted to the preprocessed training
        rows, with a trained scale and offset; the network starts from zero and learns
        what the model misses. ``"gaussian"``: a Gaussian model (means and a
        correlation matrix shrunk by Ledoit-Wolf's data-driven weight; see
        :class:`sk_mlcpc.critics.GaussianBaselineCritic`), with dense, thresholded or
        low-rank cross-correlations. ``"student_t"``: a Student-t copula with 2, 4, 8 or 16
        degrees of freedom (``tail_df`` of the same class), for dependence with heavy
        joint tails, a shared scale that makes every column of a row large at once,
        which no Gaussian copula has; it is fitted only with at least 10 training rows
        a column, at most 256 columns of X and Y together, and batches that need no
        separable factors (a warning says when it is skipped). ``"auto"``: all of
        these. The model with the highest bound on the validation rows is kept if the
        lower end of that bound's 95% jackknife interval is above 0, else the next
        one, and so on (``baseline_``, ``baseline_structure_``, ``baseline_df_``).
        With the default quantile preprocessing the models are copulas, close to the
        optimal critic whenever the dependence is near-Gaussian, or near-elliptical,
        after per-column monotone maps, which a network trained on a few thousand rows
        in many dimensions finds only roughly. Any critic gives a valid bound, so this
        changes how tight ``mi_`` is, never whether it is a bound.
        ``None`` trains the network alone. For class targets, ``"auto"`` and
        ``"gaussian"`` are the Gaussian model of each class with one covariance for all
        (linear discriminant analysis, covariance shrunk by Ledoit-Wolf), or
        multinomial logistic regression, whichever has the higher bound on the
        validation rows (``baseline_structure_``); ``"student_t"`` has no class form.
    target_type : {"auto", "continuous", "classes"}, default="auto"
        Whether ``y`` is a continuous variable or class labels. ``"auto"`` reads a
        single column of strings, booleans or objects as classes, and numeric labels
        too when scikit-learn's :func:`~sklearn.utils.multiclass.type_of_target` calls
        them ``"binary"`` or ``"multiclass"`` with at most 50 distinct values, each seen
        at least twice (others are read as a continuous ``y``, such as a count). For
        class labels the critic scores every class for each row
        (:class:`~sk_mlcpc.critics.ClassCritic`): every class is a negative, weighted by
        its frequency in the training rows, and ``mi_`` is the Barber-Agakov bound
        ``H(y) - cross-entropy`` on the test rows, capped by ``H(y)``; ``objective`` and
        ``alpha`` do not apply. See :ref:`class-targets`.
    hidden_layer_sizes : tuple of int, default=(256, 256)
        Hidden widths of the critic's MLP(s).
    n_components : int, default=64
        Embedding width of separable and bilinear critics (ignored by ``"concat"``).
    activation : str, default="gelu"
        Hidden activation, one of :data:`sk_mlcpc.encoders.ACTIVATIONS`.
    batch_size : int, default=128
        Pairs per training batch; each batch yields ``batch_size - 1`` negatives per
        positive.
    eval_batch_size : int, "auto" or None, default="auto"
        Pairs per evaluation batch for ``mi_``, :meth:`score` and the early-stopping
        signal. The bound and its cap grow with the batch (ML-CPC's cap at
        ``alpha="auto"`` is ``log(n (n - 1) + 1)``: 15.2 nats at 2,000 rows), so
        ``"auto"`` evaluates all the rows at hand in one batch, up to 4,096 rows (1,024
        for ``critic="concat"``, which runs its network on every pair), and above that in
        the fewest equal batches under that size. An int fixes the size (capped by the
        rows available); ``None`` uses ``batch_size``.
    max_epochs : int, default=100
        Maximum passes over the training split.
    learning_rate : float, default=5e-4
        Adam learning rate.
    .. shared-parameter:: weight_decay
    lr_schedule : {"plateau"} or None, default="plateau"
        ``"plateau"`` halves the learning rate when the validation bound has not
        improved for 2 epochs (PyTorch's ``ReduceLROnPlateau``; each epoch's rate is in
        ``history_`` as ``event_lr``); ``None`` keeps ``learning_rate`` throughout.
    validation_fraction : float, default=0.1
        Share of the rows held out to choose the epoch: early stopping and the restored
        weights, and the ``valid_mi`` trace in ``history_``. These rows never produce
        ``mi_``.
    test_fraction : float, default=0.2
        Share of the rows held out to produce ``mi_`` and nothing else: they choose no
        epoch and no setting, so the estimate is not optimistically selected. Rows used
        for training: ``1 - validation_fraction - test_fraction``.
    .. shared-parameter:: early_stopping
    .. shared-parameter:: n_iter_no_change
    .. shared-parameter:: tol
    preprocessing : {"quantile", "standard"} or None, default="quantile"
        Per-column transformation learnt on the training split and applied everywhere.
        ``"quantile"`` maps each column to a standard normal through its empirical
        quantiles (:class:`~sk_mlcpc._engine.preprocessing.NormalQuantileTransformer`:
        the same output in any units, tied levels at their mid-rank): mutual information
        is unchanged by such monotone maps, and heavy tails stop mattering.
        ``"standard"`` centres and scales; ``None`` leaves the data.
    .. shared-parameter:: device
    .. shared-parameter:: n_threads
    random_state : int, RandomState instance or None, default=None
        Controls the split, the initialisation and the batch order. The global torch
        random state is left untouched.
    .. shared-parameter:: verbose
    blockwise : "auto" or bool, default="auto"
        Bound the memory of large batches, with the same values and gradients. For
        separable and bilinear critics, evaluate the bound in tiles from the critic's
        factors ``g(x)``, ``h(y)`` (and ``a(x)``, ``b(y)``) without storing the
        ``n x n`` score matrix (:mod:`sk_mlcpc.blockwise`): memory linear in the batch
        size. For the joint ``"concat"`` critic, score the pairs in chunks with
        activation checkpointing (:func:`~sk_mlcpc.blockwise.chunked_scores`): the
        ``n x n`` scores are stored, but the critic's hidden activations only for one
        chunk of pairs at a time, at the cost of a second forward pass. ``"auto"`` turns
        it on for separable critics from 2,048 rows per training batch, or when a
        validation batch holds more than 4,096 rows (smaller ones are scored as one
        matrix, which is faster); for the joint critic, whose activations are ``n^2``
        rows of its hidden layers, from 1,024 rows per training or validation batch.
    .. shared-parameter:: precision
    .. shared-parameter:: compile
    warm_start : bool, default=False
        When true and the estimator is fitted, ``fit`` continues training the fitted
        critic for ``max_epochs`` more epochs (optimiser state, preprocessing, batch sizes
        and alpha kept) instead of starting again.
    .. shared-parameter:: checkpoint_dir
    .. shared-parameter:: on_divergence
    .. shared-parameter:: callbacks
    accelerator : accelerate.Accelerator or None, default=None
        Train on every process of a distributed launch (``torchrun`` / ``accelerate
        launch``) with :class:`~sk_mlcpc.distributed.AcceleratedContrastiveNet`: each
        process holds ``batch_size / W`` rows of every step and the bound is that of the
        global batch of ``batch_size`` rows (negatives gathered from all processes with
        gradients), so ``alpha="auto"``, ``mi_cap_`` and the estimate are those of one
        process with ``batch_size`` rows. ``batch_size`` and ``eval_batch_size`` must
        be multiples of the number of processes; ``device`` is ignored (the
        accelerator's device is used); ``fit`` and ``score`` must be called on every
        process. See :ref:`distributed`. The accelerator is not saved with the model.

    Attributes
    ----------
    mi_ : float
        The bound evaluated on the test rows (``test_fraction``), nats: the mean over
        evaluation batches of ``eval_batch_size_`` rows.
    .. shared-parameter:: mi_std_
    .. shared-parameter:: mi_ci_
    .. shared-parameter:: mi_cap_
    bound_validity_ : {"proven", "claimed", "invalid"}
        Whether the configured bound is a lower bound on the MI at ``eval_batch_size_``
        and ``eval_alpha_``, see :func:`sk_mlcpc.bounds.bound_validity`.
    alpha_ : float
        The alpha used in training (``"auto"`` resolved at ``batch_size_``).
    eval_alpha_ : float
        The alpha of ``mi_`` (``"auto"`` resolved at ``eval_batch_size_``).
    batch_size_, eval_batch_size_ : int
        Batch sizes used for training and for ``mi_`` (capped by the rows available).
    .. shared-parameter:: saturated_
    .. shared-parameter:: saturation_gain_
    converged_ : bool
        False when the held-out bound (``valid_mi``) still improved by more than ``tol``
        within the last ``n_iter_no_change`` epochs (training stopped at ``max_epochs``
        while still rising). A :class:`~sklearn.exceptions.ConvergenceWarning` says so.
    score_ceiling_ : float
        The 99.9th percentile of the scores the trained critic gives aligned training
        pairs. ``mi_``, :meth:`score`, :meth:`evaluate` and :meth:`score_samples` lower
        every score above it to it: a held-out pair scored above (nearly) every positive
        the critic was trained on is the critic extrapolating, and one such pair among
        the ``n^2`` of an ML-CPC batch can pull the estimate down by nats. The clamped
        critic is still a fixed critic (chosen without the evaluation rows), so the bound
        stays valid; dense and blockwise evaluations clamp alike. Training and early
        stopping use the critic's own scores.
    critic_choice_ : {"trained", "constant"}
        ``"constant"`` when the trained critic's bound on the validation rows
        (``valid_mi_``) was not above 0, the bound of any constant critic: that critic is
        then the one kept, so ``mi_``, :meth:`score` and :meth:`score_samples` are
        exactly 0 (its bound on any rows), and a ``UserWarning`` says so. The choice is
        made on the validation rows, like the epoch, never on the test rows.
    valid_mi_ : float
        The trained critic's bound on the validation rows (NaN without them).
    baseline_ : {"gaussian", "student_t"} or None
        The kind of baseline the critic uses, the one chosen on the validation rows;
        None where no closed-form model was clearly above 0 there (the lower end of its
        95% jackknife interval; ``baseline_valid_mi_`` is the best one's bound), or X
        and Y have more than 4,096 columns together (its dense model would take
        gigabytes; a warning says so).
    baseline_df_ : float or None
        The degrees of freedom of a Student-t baseline (None for a Gaussian one or
        none).
    baseline_structure_ : {"dense", "sparse", "low_rank"} or None
        How the kept baseline regularises the correlations between X and Y columns
        (``cross_structure`` of :class:`~sk_mlcpc.critics.GaussianBaselineCritic`;
        always "dense" for a Student-t one; for class targets "shared_covariance" or
        "logistic"): every form is fitted on the training rows and the one with the
        higher bound on the validation rows is kept. None without a baseline.
    baseline_valid_mi_ : float
        The kept Gaussian model's own bound on the validation rows, before training
        (NaN when it was not fitted).
    net_ : ContrastiveNet
        The fitted skorch net.
    critic_ : torch.nn.Module
        The trained critic.
    history_ : skorch.History
        Per-epoch ``train_loss``, ``valid_loss``, ``train_mi``, ``valid_mi`` (nats), and
        per-batch losses.
    .. shared-parameter:: n_epochs_
    .. shared-parameter:: device_
    blockwise_ : bool
        Whether the bound was evaluated blockwise.
    reference_y_ : torch.Tensor
        CPU tensor of preprocessed training rows of ``Y`` (up to 2048), the marginal
        sample that :meth:`score_samples` normalises over.
    n_features_in_ : int
        Columns of ``X``.
    n_features_y_ : int
        Columns of ``Y`` (1 for class labels).
    target_type_ : {"continuous", "classes"}
        How ``y`` was read (``target_type`` resolved).
    classes_ : ndarray of shape (n_classes,) or None
        The sorted class labels of ``y`` (None for a continuous ``y``).
    .. shared-parameter:: feature_names_in_

    See Also
    --------
    estimate_mi : One-call convenience wrapper.
    sk_mlcpc.bounds.ml_cpc : The default objective.

    Notes
    -----
    The rows are split three ways: training, validation (early stopping, the epoch
    kept) and test (``mi_`` only). A bound on the training rows is optimistic, and so is
    one read on the rows that chose the epoch; ``mi_`` is neither. The test rows are
    scored in batches of ``eval_batch_size_`` (a last partial batch is dropped), with
    alpha resolved for that size. Negative values are legitimate for a lower bound and
    are not clipped.

    References
    ----------
    .. [1] J. Song, S. Ermon. "Multi-label Contrastive Predictive Coding." NeurIPS 2020.
    .. [2] B. Poole et al. "On Variational Bounds of Mutual Information." ICML 2019.

    Examples
    --------
    >>> from sk_mlcpc import MutualInformationEstimator
    >>> from sk_mlcpc.datasets import make_correlated_gaussians
    >>> X, Y, true_mi = make_correlated_gaussians(2000, 2, mi=1.0, random_state=0)
    >>> est = MutualInformationEstimator(
    ...     critic="separable", hidden_layer_sizes=(64,), max_epochs=20, random_state=0
    ... ).fit(X, Y)
    >>> bool(0.6 < est.mi_ < true_mi + 0.1)
    True
    >>> est.bound_validity_
    'claimed'
    """

    _own_parameter_constraints: ClassVar[dict] = {
        "lr_schedule": [StrOptions({"plateau"}), None],
        "critic": [StrOptions(set(CRITICS))],
        "baseline": [StrOptions(set(BASELINES)), None],
        "test_fraction": [Interval(Real, 0, 1, closed="neither")],
        "target_type": [StrOptions({"auto", "continuous", "classes"})],
        "accelerator": [HasMethods(["prepare", "backward"]), None],
    }

    def __init__(
        self,
        *,
        objective: str = "ml_cpc",
        alpha: float | str = "auto",
        critic: str = "separable_additive",
        baseline: str | None = "auto",
        target_type: str = "auto",
        hidden_layer_sizes: tuple[int, ...] = (256, 256),
        n_components: int = 64,
        activation: str = "gelu",
        batch_size: int = 128,
        eval_batch_size: int | str | None = "auto",
        max_epochs: int = 100,
        learning_rate: float = 5e-4,
        weight_decay: float = 0.0,
        lr_schedule: str | None = "plateau",
        validation_fraction: float = 0.1,
        test_fraction: float = 0.2,
        early_stopping: bool = True,
        n_iter_no_change: int = 10,
        tol: float = 1e-3,
        preprocessing: str | None = "quantile",
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
        accelerator=None,
    ) -> None:
        self._store_init_arguments(locals())

    def __getstate__(self):
        state = super().__getstate__()
        state["accelerator"] = None  # process-local: not part of a saved model
        return state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags

    @property
    def _separable_scores(self) -> bool:
        return self.critic in _SEPARABLE_CRITICS

    @property
    def _factored_scores(self) -> bool:
        # A Student-t baseline's scores are no sum of separable factors, though they cost
        # O(n m) like a separable critic's: batch sizes follow the network, evaluation
        # follows this.
        return self._separable_scores and getattr(self, "baseline_df_", None) is None

    # ------------------------------------------------------------------ input handling

    @property
    def _class_target(self) -> bool:
        return getattr(self, "target_type_", "continuous") == "classes"

    def _validate_y(self, Y, n_samples: int, *, reset: bool, min_samples: int = 2) -> np.ndarray:
        check_has_features(Y, "Y")
        if reset:
            if Y is not None and is_class_target(Y, self.target_type):
                return self._validate_labels(Y, n_samples, reset=True, min_samples=min_samples)
            self.target_type_ = "continuous"
            self.classes_ = None
        elif self._class_target:
            return self._validate_labels(Y, n_samples, reset=False, min_samples=min_samples)
        Y = check_input(
            Y, dtype=INPUT_DTYPES, ensure_2d=False, input_name="Y", ensure_min_samples=min_samples
        )
        if Y.ndim == 1:
            Y = Y.reshape(-1, 1)
        if len(Y) != n_samples:
            raise ValueError(
                f"X and Y must have the same number of rows, got {n_samples} and {len(Y)}."
            )
        if reset:
            self.n_features_y_ = Y.shape[1]
        elif Y.shape[1] != self.n_features_y_:
            raise ValueError(
                f"Y has {Y.shape[1]} columns, but {type(self).__name__} was fitted with "
                f"{self.n_features_y_} columns of Y."
            )
        return Y

    def _validate_labels(self, y, n_samples: int, *, reset: bool, min_samples: int) -> np.ndarray:
        """Class labels -> their indices among ``classes_``, as a float column."""
        labels = check_labels(y, n_samples, min_samples=min_samples)
        if reset:
            self.classes_, indices = encode_labels(labels)
            self.target_type_, self.n_features_y_ = "classes", 1
        else:
            indices = encode_labels(labels, self.classes_)[1]
        return indices.astype(np.float32).reshape(-1, 1)

    def _check_hidden_layer_sizes(self) -> tuple[int, ...]:
        sizes = super()._check_hidden_layer_sizes()
        if self.critic == "concat" and not sizes:
            raise ValueError("critic='concat' needs at least one hidden layer.")
        return sizes

    def _preprocess(self, X: np.ndarray, Y: np.ndarray | None = None, device=None):
        device = self._data_device if device is None else device
        X = X if self.preprocessor_x_ is None else self.preprocessor_x_.transform(X)
        X = torch.as_tensor(as_float32(X, "X"), device=device)
        if Y is None:
            return X
        Y = Y if self.preprocessor_y_ is None else self.preprocessor_y_.transform(Y)
        return X, torch.as_tensor(as_float32(Y, "Y"), device=device)

    def _make_net(self, *, shuffle_seed: int, eval_seed: int, valid_set=None) -> ContrastiveNet:
        """The (untrained) skorch net of the fitted architecture and batch sizes."""
        if self._class_target:
            return self._make_class_net(
                shuffle_seed=shuffle_seed, eval_seed=eval_seed, valid_set=valid_set
            )
        critic = make_critic(
            self.critic,
            self.n_features_in_,
            self.n_features_y_,
            embedding_dim=self.n_components,
            hidden_layer_sizes=self._check_hidden_layer_sizes(),
            activation=self.activation,
        )
        # Set on a fresh fit only; a resumed or loaded net gets the fitted buffers from
        # its saved state instead (files from before baseline_ follow the parameter).
        rows = self.__dict__.pop("_baseline_rows", None)
        if rows is not None:
            critic = self._fitted_baseline_or_not(critic, *rows)
        elif getattr(self, "baseline_", self.baseline) is not None:
            critic = GaussianBaselineCritic(
                critic,
                self.n_features_in_,
                self.n_features_y_,
                cross_structure=getattr(self, "baseline_structure_", None) or "dense",
                tail_df=getattr(self, "baseline_df_", None),
            )
        return self._net_around(
            critic,
            shuffle_seed=shuffle_seed,
            eval_seed=eval_seed,
            valid_set=valid_set,
            criterion=BoundLoss,
            criterion__objective=self.objective,
            criterion__alpha=self.alpha_,
            criterion__eval_alpha=self._alpha_at(self.validation_batch_size_),
            blockwise=self.blockwise_ and self._separable_scores,
            chunk_pairs=self.blockwise_ and not self._separable_scores,
        )

    def _net_around(self, critic, *, shuffle_seed: int, eval_seed: int, valid_set, **options):
        """The skorch net training ``critic``: on ``device_``, or on every process of the
        accelerator; ``options`` name the criterion and how scores are computed."""
        net_class, placement = ContrastiveNet, {"device": self.device_}
        if self.accelerator is not None:
            from sk_mlcpc._engine.distributed import AcceleratedContrastiveNet

            net_class = AcceleratedContrastiveNet
            placement = {"accelerator": self.accelerator, "device": None}
        shared = self._net_arguments(
            shuffle_seed=shuffle_seed,
            eval_seed=eval_seed,
            valid_set=valid_set,
            eval_batch_size=self.validation_batch_size_,
        )
        return net_class(critic, **options, **{**shared, **placement})

    def _make_class_net(self, *, shuffle_seed: int, eval_seed: int, valid_set=None):
        """The net of a class target: a :class:`ClassCritic` and the pointwise bound."""
        rows = self.__dict__.pop("_baseline_rows", None)
        log_prior = (
            class_log_prior(class_indices(rows[1]).cpu().numpy(), len(self.classes_))
            if rows is not None
            else None  # loaded or resumed: the fitted prior comes with the saved state
        )
        critic = ClassCritic(
            self.n_features_in_,
            len(self.classes_),
            embedding_dim=self.n_components,
            hidden_layer_sizes=self._check_hidden_layer_sizes(),
            activation=self.activation,
            log_prior=log_prior,
        )
        if rows is not None and self.baseline is not None:
            self._fit_class_baseline(critic, *rows)
        return self._net_around(
            critic,
            shuffle_seed=shuffle_seed,
            eval_seed=eval_seed,
            valid_set=valid_set,
            criterion=PointwiseBoundLoss,
            blockwise=False,
            chunk_pairs=False,
        )

    def _fit_class_baseline(self, critic: ClassCritic, x_train, y_train, x_valid, y_valid):
        """Fit the closed-form class models on the training rows and set the one with the
        higher bound on the validation rows as ``critic``'s baseline, if above 0."""
        models = class_baselines(
            x_train, y_train, len(self.classes_), random_state=int(self._seed_for_baseline())
        )
        if len(x_valid) < 2:
            structure = "shared_covariance"
        else:
            values = {}
            for name, (weight, bias) in models.items():
                critic.set_baseline(weight, bias)
                log_q = class_log_q(critic.to(x_valid.device), x_valid, y_valid)
                values[name] = float(
                    held_out_class_estimate(log_q, class_indices(y_valid).cpu().numpy()).value
                )
            structure = max(values, key=values.get)
            self.baseline_valid_mi_ = values[structure]
            if not (math.isfinite(values[structure]) and values[structure] > 1e-6):
                critic.set_baseline(
                    np.zeros_like(models[structure][0]), np.zeros(len(self.classes_))
                )
                self.baseline_ = None
                warnings.warn(
                    f"baseline={self.baseline!r} was not used: the best closed-form class "
                    f"model's bound on the validation rows is {values[structure]:.3f} nats, "
                    "no better "
                    "than a constant critic's 0, so the critic is the network alone "
                    "(baseline_ is None); pass baseline=None to skip fitting it.",
                    UserWarning,
                    stacklevel=8,  # the user's call of fit
                )
                return
        critic.set_baseline(*models[structure])
        self.baseline_, self.baseline_structure_ = "gaussian", structure

    def _seed_for_baseline(self) -> int:
        random_state = self.random_state
        return random_state if isinstance(random_state, int | np.integer) else 0

    def _fitted_baseline_or_not(self, critic, x_train, y_train, x_valid, y_valid):
        """``critic`` with the Gaussian baseline fitted on the training rows, if it beats
        the constant critic (bound 0) on the validation rows; else ``critic`` alone.

        Sets ``baseline_`` and ``baseline_valid_mi_``. A baseline cannot help where its
        correlations are noise (far more columns than rows): its held-out bound is then
        far below 0, and the network would start from a critic worse than a constant.
        """
        columns = self.n_features_in_ + self.n_features_y_
        if columns > _BASELINE_MAX_COLUMNS:
            gigabytes = 6 * 8 * columns**2 / 1e9
            warnings.warn(
                f"baseline={self.baseline!r} was skipped: X and Y have {columns:,} columns "
                f"together, and its dense Gaussian model would need about {gigabytes:.1f} GB (more "
                f"than {_BASELINE_MAX_COLUMNS:,} columns are not fitted). The critic is the "
                "network alone (baseline_ is None); pass baseline=None to silence this.",
                UserWarning,
                stacklevel=7,  # the user's call of fit
            )
            self.baseline_ = None
            return critic
        n_valid = min(len(x_valid), self.validation_batch_size_)
        models = {
            ("gaussian", structure, None): GaussianBaselineCritic(
                critic, self.n_features_in_, self.n_features_y_, cross_structure=structure
            )
            for structure in (("dense",) if n_valid < 2 else CROSS_STRUCTURES)
            if self.baseline in ("auto", "gaussian")
        }
        if self.baseline in ("auto", "student_t") and self._student_t_fits(columns, x_train):
            for df in _TAIL_DFS if n_valid >= 2 else _TAIL_DFS[1:2]:
                models["student_t", "dense", df] = GaussianBaselineCritic(
                    critic, self.n_features_in_, self.n_features_y_, tail_df=df
                )
        if not models:  # baseline="student_t" where it cannot be fitted: warned above
            self.baseline_ = None
            return critic
        # Every model comes from the same moments of the training rows, computed once.
        GaussianBaselineCritic.fit_baselines(list(models.values()), x_train, y_train)
        if n_valid < 2:  # nothing to choose on: keep the first model
            (kind, structure, df), wrapped = next(iter(models.items()))
            self.baseline_, self.baseline_structure_, self.baseline_df_ = kind, structure, df
            return wrapped
        candidates = {
            key: (self._baseline_bound(model, x_valid, y_valid), model)
            for key, model in models.items()
        }
        ranked = sorted(candidates, key=lambda name: candidates[name][0], reverse=True)
        best_value, wrapped = candidates[ranked[0]]
        self.baseline_valid_mi_ = best_value
        # Above 0 beyond the noise of the validation rows (the lower end of a 95%
        # jackknife interval), not only above rounding: with heavy tails and few rows, a
        # model can read above 0 on the validation rows by luck and far below on others.
        for key in ranked:
            value, model = candidates[key]
            if not (math.isfinite(value) and value > 1e-6):
                break
            if value - 2 * self._baseline_bound_error(model, x_valid, y_valid) > 0:
                self.baseline_valid_mi_ = value
                self.baseline_, self.baseline_structure_, self.baseline_df_ = key
                return model
        self.baseline_ = None
        warnings.warn(
            f"baseline={self.baseline!r} was not used: the best closed-form model's bound on "
            f"the validation rows is {best_value:.3f} nats, not clearly above a constant "
            "critic's 0 (no model's 95% jackknife interval there lies above 0), so the "
            "critic is the network alone (baseline_ is None). Its correlations carry no "
            "dependence that holds on new rows; pass baseline=None to skip fitting it.",
            UserWarning,
            stacklevel=7,  # the user's call of fit
        )
        return wrapped.critic

    def _student_t_fits(self, columns: int, x_train) -> bool:
        """Whether Student-t models are fitted: few enough columns for their EM
        iterations, enough training rows per column for their scatter matrix, and scores
        that are never needed in separable factors (no blockwise training, evaluation
        batches small enough for dense score matrices)."""
        reasons = []
        if columns > _TAIL_MAX_COLUMNS:
            reasons.append(f"X and Y have {columns} columns together (at most {_TAIL_MAX_COLUMNS})")
        if len(x_train) < _LOOSE_ROWS_PER_COLUMN * columns:
            reasons.append(
                f"{len(x_train)} training rows are fewer than {_LOOSE_ROWS_PER_COLUMN} a column"
            )
        if self.blockwise_ or max(self.validation_batch_size_, self.eval_batch_size_) > (
            AUTO_EVAL_MAX_SEPARABLE
        ):
            reasons.append(
                "its scores are not separable, and these batch sizes need separable factors"
            )
        if reasons and self.baseline == "student_t":
            warnings.warn(
                f"baseline='student_t' was skipped: {'; '.join(reasons)}. The critic is the "
                "network alone (baseline_ is None); use baseline='auto' or 'gaussian'.",
                UserWarning,
                stacklevel=8,  # the user's call of fit
            )
        return not reasons

    def _baseline_bound(self, wrapped, x_valid, y_valid) -> float:
        """The closed-form critic's bound on (the first batch of) the validation rows."""
        n_valid = min(len(x_valid), self.validation_batch_size_)
        wrapped = wrapped.to(x_valid.device)
        with torch.no_grad():
            scores = wrapped.baseline_scores(x_valid[:n_valid], y_valid[:n_valid])
            options = {"alpha": self._alpha_at(n_valid)} if self._takes_alpha else {}
            value = BOUNDS[self.objective](scores, **options)
        value = float(value[0] if isinstance(value, tuple) else value)
        return value if math.isfinite(value) else -math.inf

    def _baseline_bound_error(self, wrapped, x_valid, y_valid) -> float:
        """The delete-a-group jackknife standard error of :meth:`_baseline_bound`, over
        the groups of the evaluation's jackknife (a row's group: its index modulo their
        number)."""
        n_valid = min(len(x_valid), self.validation_batch_size_)
        n_groups = min(JACKKNIFE_GROUPS, n_valid // 2)
        if n_groups < 2:
            return math.inf
        options = {"alpha": self._alpha_at(n_valid)} if self._takes_alpha else {}
        rows = torch.arange(n_valid, device=x_valid.device)
        with torch.no_grad():
            scores = wrapped.to(x_valid.device).baseline_scores(
                x_valid[:n_valid], y_valid[:n_valid]
            )
            replicates = []
            for group in range(n_groups):
                kept = rows[rows % n_groups != group]
                value = BOUNDS[self.objective](scores[kept][:, kept], **options)
                replicates.append(value[0] if isinstance(value, tuple) else value)
        values = torch.stack(replicates).double().cpu().numpy()
        spread = (n_groups - 1) / n_groups * float(((values - values.mean()) ** 2).sum())
        return math.sqrt(spread) if math.isfinite(spread) else math.inf

    def _own_callbacks(self) -> list:
        callbacks = super()._own_callbacks()
        if self.lr_schedule == "plateau":
            callbacks.append(("lr_schedule", PlateauLearningRate(patience=2, factor=0.5)))
        return callbacks

    def _resolve_blockwise(self) -> bool:
        if self.blockwise == "auto":
            if self._separable_scores:
                return auto_blockwise(self.batch_size_, self.validation_batch_size_)
            # A joint critic runs its network on every pair, validation included.
            return max(self.batch_size_, self.validation_batch_size_) >= _CHUNK_PAIRS_FROM
        return bool(self.blockwise)

    # Fitted attributes of its own that save() writes (see ContrastiveEstimator).
    validation_batch_size_: int
    blockwise_: bool
    converged_: bool
    score_ceiling_: float
    n_features_y_: int
    baseline_: str | None
    baseline_structure_: str | None
    baseline_df_: float | None
    baseline_valid_mi_: float
    critic_choice_: str
    valid_mi_: float
    target_type_: str
    _target_classes_record: dict | None
    _saved_preprocessors = ("preprocessor_x_", "preprocessor_y_")
    # Files written before baseline existed hold critics that are the network alone.
    _parameters_added: ClassVar[dict] = {"baseline": None, "target_type": "continuous"}

    def _saved_tensors(self) -> dict[str, torch.Tensor]:
        return {"reference_y_": self.reference_y_}

    def _restore_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        self.reference_y_ = tensors["reference_y_"]

    def _preprocessor_classes(self, name: str) -> tuple[frozenset[str], str]:
        # Class labels are indices, never preprocessed: the saved entry must be null.
        if name == "preprocessor_y_" and self._class_target:
            return frozenset(), "target_type_='classes'"
        return super()._preprocessor_classes(name)

    @property
    def critic_(self) -> nn.Module:
        """The trained critic (``net_.module_``)."""
        return self.net_.module_

    # ------------------------------------------------------------------ fitting

    def fit(self, X, y, **fit_params):
        """Train the critic on a training split and estimate the MI on the held-out rows.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            First variable.
        y : array-like of shape (n_samples,) or (n_samples, n_features_y)
            The second variable ``Y``, paired row by row with ``X`` (continuous). It is
            named ``y`` as in every scikit-learn ``fit``, so that Pipelines, scorers and
            GridSearchCV pass it along.
        **fit_params : dict
            Must be empty: fit parameters such as ``sample_weight`` are not supported,
            and are refused rather than silently ignored.

        Returns
        -------
        self : MutualInformationEstimator
            The fitted estimator.
        """
        return self._fit(X, y, fit_params)

    def _validate_fit_data(self, X, y, *, warm: bool) -> dict:
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None: "
                "fit(X, y) estimates the mutual information between X and the paired variable y."
            )
        if self.accelerator is not None and self.precision != "fp32":
            raise ValueError(
                f"precision={self.precision!r} does not apply with an accelerator: mixed "
                "precision comes from the accelerator itself, e.g. "
                "Accelerator(mixed_precision='bf16'). Leave precision='fp32'."
            )
        check_has_features(X)
        X = validate_input(self, X, dtype=INPUT_DTYPES, ensure_min_samples=2, reset=not warm)
        Y = self._validate_y(y, len(X), reset=not warm)
        if self._class_target and self.baseline == "student_t":
            raise ValueError(
                "baseline='student_t' has no form for class labels (y is read as classes): "
                "use baseline='auto' or 'gaussian' (the class models), or None."
            )
        self._check_hidden_layer_sizes()
        return {"arrays": (X, Y), "n_samples": len(X)}

    def _resolve_device(self) -> torch.device:
        if self.accelerator is None:
            return resolve_device(self.device)
        return torch.device(self.accelerator.device)

    def _prepare_data(self, data: dict, split: FitSplit, *, warm: bool):
        X, Y = data["arrays"]
        if not warm:
            self.preprocessor_x_ = self._make_preprocessor(len(split.train), split.seeds["prep"])
            self.preprocessor_y_ = (
                None
                if self._class_target
                else self._make_preprocessor(len(split.train), split.seeds["prep"])
            )
            if self.preprocessor_x_ is not None:
                self.preprocessor_x_.fit(X[split.train])
            if self.preprocessor_y_ is not None:
                self.preprocessor_y_.fit(Y[split.train])
        x_all, y_all = self._preprocess(X, Y, device=self._data_device if warm else self.device_)
        data["x"], data["y"] = x_all, y_all
        sizes = {
            "batch_size_": len(split.train),
            "validation_batch_size_": len(split.valid),
            "eval_batch_size_": len(split.test),
        }
        if warm:
            self._check_warm_sizes(sizes, split.n_samples)
        else:
            # A fixed sample of the marginal of Y for score_samples' normaliser.
            reference_rows = np.sort(split.train[:_MAX_REFERENCE])
            self.reference_y_ = y_all[torch.as_tensor(reference_rows, device=x_all.device)].cpu()
            self.batch_size_ = min(self.batch_size, len(split.train))
            self.validation_batch_size_ = self._evaluation_batch_size(len(split.valid))
            self.eval_batch_size_ = self._evaluation_batch_size(len(split.test))
            self.alpha_ = self._alpha_at(self.batch_size_)
            self.blockwise_ = self._resolve_blockwise()
            if self.accelerator is not None:
                self._check_process_multiples()
        train_set = PairedTensorDataset(x_all[split.train], y_all[split.train])
        valid_set = PairedTensorDataset(x_all[split.valid], y_all[split.valid])
        if not warm:
            self.baseline_ = self.baseline
            self.baseline_valid_mi_ = math.nan
            self.baseline_structure_ = None
            self.baseline_df_ = None
            if self.baseline is not None:
                # Popped by the next _make_net of this fit, which fits the baseline on the
                # training rows and keeps it only if it beats a constant on validation.
                self._baseline_rows = (train_set.x, train_set.y, valid_set.x, valid_set.y)
            if not self._class_target:  # a linear class model needs no 10 rows a column
                self._warn_if_loose(len(split.train))
        return train_set, valid_set

    def _warn_if_loose(self, n_train: int) -> None:
        columns = self.n_features_in_ + self.n_features_y_
        if n_train < _LOOSE_ROWS_PER_COLUMN * columns:
            warnings.warn(
                f"{n_train} training rows for {columns} columns of X and Y together "
                f"(fewer than {_LOOSE_ROWS_PER_COLUMN} a column): a critic fitted on so few "
                "rows per column gives a loose bound, so mi_ is likely far below the MI. "
                "Use more rows, or fewer columns (feature selection, PCA) if you can.",
                UserWarning,
                stacklevel=5,  # the user's call of fit
            )

    def _score_ceiling(self) -> float | None:
        return getattr(self, "score_ceiling_", None)

    def _fit_score_ceiling(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """The 99.9th percentile of the scores the critic gives aligned training pairs.

        A held-out negative pair scored above (nearly) every positive the critic was
        trained on is the critic extrapolating; one such pair among the ``n^2`` of an
        ML-CPC batch can pull the whole estimate down by nats (2-d Gaussian, MI 1, 5,000
        rows, seed 1: 0.04 instead of 1.00). Estimates clamp scores at this ceiling: a
        fixed function of the critic and the training rows, so the bound stays valid.
        The percentile rather than the maximum keeps one outlying training positive from
        lifting the ceiling (2-d, 1,000 rows, seed 2: 0.79 with it, 0.18 with the maximum).
        """
        critic = self.critic_
        was_training = critic.training
        critic.eval()
        try:
            with torch.no_grad():
                positives = torch.cat(
                    [
                        critic.pointwise(x[start : start + 8192], y[start : start + 8192])
                        for start in range(0, len(x), 8192)
                    ]
                )
        finally:
            critic.train(was_training)
        values = positives.double().cpu().numpy()
        self.score_ceiling_ = float(np.quantile(values, _CEILING_QUANTILE))

    def _finish_fit(self, data: dict, split: FitSplit) -> None:
        train_rows = torch.as_tensor(split.train, device=data["x"].device)
        if self._class_target:
            self.score_ceiling_ = math.inf  # every class is scored: no pair extrapolates
        else:
            self._fit_score_ceiling(data["x"][train_rows], data["y"][train_rows])
        self._choose_critic(data, split)
        rows = torch.as_tensor(split.test, device=data["x"].device)
        estimate = self._evaluate(
            PairedTensorDataset(data["x"][rows], data["y"][rows]), self.eval_batch_size_
        )
        best_epoch = _still_improving(self.history_, self.n_iter_no_change, self.tol)
        self.converged_ = best_epoch is None
        self._record_held_out(
            estimate,
            advice="Lower learning_rate, keep preprocessing on, or use a lower-variance "
            "objective such as 'ml_cpc'.",
        )
        if not self.converged_:
            warnings.warn(
                f"The held-out bound was still improving at the end of training (best "
                f"valid_mi at epoch {best_epoch} of {self.n_epochs_}), so mi_ is likely below "
                "what this critic can reach. Raise max_epochs or learning_rate, or continue "
                "with warm_start=True.",
                ConvergenceWarning,
                stacklevel=4,
            )

    def _choose_critic(self, data: dict, split: FitSplit) -> None:
        """The trained critic, or the constant one where the trained critic's bound on the
        validation rows is not above the constant's (0): ``critic_choice_``."""
        self.critic_choice_ = "trained"
        self.valid_mi_ = math.nan
        if len(split.valid) < 2:
            return
        rows = torch.as_tensor(split.valid, device=data["x"].device)
        estimate = self._evaluate(
            PairedTensorDataset(data["x"][rows], data["y"][rows]), self.validation_batch_size_
        )
        self.valid_mi_ = estimate.value
        if math.isfinite(estimate.value) and estimate.value <= 0:
            self.critic_choice_ = "constant"
            warnings.warn(
                f"The trained critic's bound on the validation rows is {estimate.value:.3f} "
                "nats, no better than a constant critic's 0: the constant critic is kept "
                "(critic_choice_ = 'constant'), so mi_ and score() are 0. The critic found "
                "no dependence it can carry to new rows; with few rows per column, use more "
                "rows or fewer columns, or lower learning_rate.",
                UserWarning,
                stacklevel=5,  # the user's call of fit
            )
        elif (
            self.objective == "ml_cpc"
            and self.critic in _SEPARABLE_CRITICS
            and not self._class_target
        ):
            self._warn_if_cpc_reads_more(data["x"][rows], data["y"][rows])

    def _warn_if_cpc_reads_more(self, x_valid: torch.Tensor, y_valid: torch.Tensor) -> None:
        """Warn when the trained critic's CPC bound on the validation rows is clearly above
        its ML-CPC bound: ML-CPC's one normaliser over every pair is then held down by
        scores whose level varies from row to row, as heavy joint tails make them; CPC
        normalises each row on its own. Both are bounds of the same fixed critic."""
        n_rows = min(len(x_valid), _CPC_CHECK_ROWS)
        critic = self.critic_
        was_training = critic.training
        critic.eval()
        try:
            with torch.no_grad():
                scores = _at_most(critic(x_valid[:n_rows], y_valid[:n_rows]), self.score_ceiling_)
                multi_label = float(BOUNDS["ml_cpc"](scores, alpha=self._alpha_at(n_rows)))
                per_row = float(BOUNDS["cpc"](scores))
        finally:
            critic.train(was_training)
        if per_row - multi_label > max(0.1, 0.05 * abs(multi_label)):
            warnings.warn(
                f"On the validation rows the trained critic's CPC bound ({per_row:.3f} nats) "
                f"is above its ML-CPC bound ({multi_label:.3f}): ML-CPC's single normaliser "
                "over all pairs is held down by scores whose level varies between rows, as "
                "heavy joint tails make them, so mi_ is likely loose. objective='cpc' "
                "reports the per-row bound (capped at log of the evaluation batch).",
                UserWarning,
                stacklevel=6,  # the user's call of fit
            )

    def _evaluate(self, dataset, batch_size: int) -> HeldOutEstimate:
        if self._class_target:
            # Called by fit only (evaluate() takes its own path): the entropy of the rows
            # evaluated last is the cap that _record_held_out reports.
            estimate, self._last_class_entropy = self._evaluate_classes(dataset)
            return estimate
        if getattr(self, "critic_choice_", "trained") != "constant":
            return super()._evaluate(dataset, batch_size)
        # Every bound of a constant critic is exactly 0 (its normalisers equal its
        # positives), on any rows: no evaluation is needed, nor any interval.
        usable = (len(dataset) // batch_size) * batch_size
        return HeldOutEstimate(
            value=0.0,
            std_error=0.0 if usable >= 4 else math.nan,
            interval=(0.0, 0.0) if usable >= 4 else (math.nan, math.nan),
            batch_size=batch_size,
            n_batches=max(1, len(dataset) // batch_size),
            alpha=self._alpha_at(batch_size),
            half_batch_value=0.0,
        )

    def _evaluate_classes(self, dataset) -> tuple[HeldOutEstimate, float]:
        """The Barber-Agakov estimate on all of ``dataset``'s rows (one batch: every
        class is a negative of every row, so no other rows are needed), and the plug-in
        entropy of their labels (the estimate's cap)."""
        indices = class_indices(dataset.y).cpu().numpy()
        if getattr(self, "critic_choice_", "trained") == "constant":
            # The constant critic's q is the rows' own marginal: every term is 0.
            estimate = held_out_class_estimate(
                torch.zeros(len(indices)), np.zeros(len(indices), dtype=np.int64)
            )
        else:
            estimate = held_out_class_estimate(
                class_log_q(self.critic_, dataset.x, dataset.y), indices
            )
        return estimate, class_entropy(indices, len(self.classes_))

    def _record_held_out(self, estimate: HeldOutEstimate, *, advice: str) -> None:
        if not self._class_target:
            return super()._record_held_out(estimate, advice=advice)
        if not math.isfinite(estimate.value):
            raise DivergenceError(
                f"The fitted model gives a non-finite held-out estimate. {advice}"
            )
        # The cap is the entropy of the test rows' labels (I(X; y) <= H(y)), and the
        # Barber-Agakov bound takes no alpha and is proven; reaching the cap is a
        # perfect classifier, not a batch that limits the bound.
        self.mi_, self.mi_std_, self.mi_ci_ = estimate.value, estimate.std_error, estimate.interval
        self.eval_alpha_ = 1.0
        self.eval_batch_size_ = estimate.batch_size
        self.mi_cap_ = self.__dict__.pop("_last_class_entropy")
        self.bound_validity_ = "proven"
        self.saturated_, self.saturation_gain_ = False, 0.0
        if math.isnan(self.mi_std_):
            warnings.warn(
                f"The held-out split holds {self.eval_batch_size_} rows, too few for an "
                "uncertainty: mi_std_ and mi_ci_ are undefined (NaN). Use more rows or a "
                "larger held-out fraction.",
                UserWarning,
                stacklevel=5,  # the user's call of fit
            )
        return None

    def _check_process_multiples(self) -> None:
        n_processes = int(self.accelerator.num_processes)
        for name in ("batch_size_", "validation_batch_size_", "eval_batch_size_"):
            if getattr(self, name) % n_processes:
                raise ValueError(
                    f"With an accelerator, batch sizes are global and must be "
                    f"multiples of the number of processes ({n_processes}); "
                    f"{name} is {getattr(self, name)}. Change batch_size / "
                    "eval_batch_size (they are capped by the rows available)."
                )

    # ------------------------------------------------------------------ evaluation

    def _validated_pair(self, X, Y, *, min_samples: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
        check_is_fitted(self)
        check_has_features(X)
        X = validate_input(self, X, dtype=INPUT_DTYPES, ensure_min_samples=min_samples, reset=False)
        Y = self._validate_y(Y, len(X), reset=False, min_samples=min_samples)
        return self._preprocess(X, Y)

    def score(self, X, y) -> float:
        """The bound on new paired data, in nats (higher is better).

        The same rules as ``mi_``: with ``eval_batch_size="auto"`` all the rows given are
        scored in one batch (up to 4,096 rows; above that in the fewest equal batches),
        otherwise in batches of ``eval_batch_size_`` rows (fewer if fewer rows are
        given); alpha is resolved for the batch size; rows are shuffled with a fixed seed
        and a last partial batch is dropped. :meth:`evaluate` gives the uncertainty and
        diagnostics too.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_features_y)
            The paired variable ``Y``.

        Returns
        -------
        score : float
            Mean of the bound over evaluation batches.
        """
        return self.evaluate(X, y).mi

    def evaluate(self, X, y) -> MIEstimate:
        """The bound on new paired data with its uncertainty and diagnostics.

        Batches and alpha as in :meth:`score`.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_features_y)
            The paired variable ``Y``.

        Returns
        -------
        MIEstimate
            ``(mi, std_error, ci, cap, validity, batch_size, alpha, saturated)``: the
            bound in nats, its jackknife standard error and 95% interval (for the bound,
            not the MI), the cap and validity at the batch size used, and whether the
            bound rose by more than 0.05 nats from half-size batches (saturated).

        Examples
        --------
        >>> from sk_mlcpc import MutualInformationEstimator
        >>> from sk_mlcpc.datasets import make_correlated_gaussians
        >>> X, Y, true_mi = make_correlated_gaussians(2000, 2, mi=0.5, random_state=0)
        >>> est = MutualInformationEstimator(
        ...     hidden_layer_sizes=(32,), max_epochs=10, random_state=0
        ... ).fit(X[:1500], Y[:1500])
        >>> result = est.evaluate(X[1500:], Y[1500:])
        >>> result.batch_size, result.validity
        (500, 'claimed')
        >>> bool(result.ci[0] < result.mi < result.ci[1] < result.cap)
        True
        """
        x, y = self._validated_pair(X, y)
        if self._class_target:
            estimate, entropy = self._evaluate_classes(PairedTensorDataset(x, y))
            return MIEstimate(
                mi=estimate.value,
                std_error=estimate.std_error,
                ci=estimate.interval,
                cap=entropy,
                validity="proven",
                batch_size=estimate.batch_size,
                alpha=1.0,
                saturated=False,
            )
        return self._evaluate_rows(PairedTensorDataset(x, y), len(x))

    def score_samples(self, X, y) -> np.ndarray:
        """Pointwise mutual information of each pair, in nats.

        ``f(x_i, y_i) - log mean_j exp f(x_i, y_j)``, where the ``y_j`` are a fixed
        reference sample of the marginal of ``Y`` kept from the training rows (up to
        2048, ``reference_y_``), so each pair's value does not depend on the other rows
        passed. At the optimal critic this estimates ``log p(y_i | x_i) / p(y_i)``; its
        mean is an InfoNCE-type estimate with the reference rows as negatives, capped at
        ``log(n_reference)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_features_y)
            The paired variable ``Y``.

        Returns
        -------
        pmi : ndarray of shape (n_samples,)
        """
        x, y = self._validated_pair(X, y, min_samples=1)
        if getattr(self, "critic_choice_", "trained") == "constant":
            return np.zeros(len(x))  # a constant critic's pointwise MI
        if self._class_target:
            return class_log_q(self.critic_, x, y, minus_prior=True).double().cpu().numpy()
        reference = self.reference_y_.to(x.device)
        chunk = max(1, _MAX_PAIRS_PER_CHUNK // len(reference))
        critic = self.critic_.eval()
        ceiling = self._score_ceiling()  # None (files from before it existed): no clamp
        values = []
        with torch.no_grad():
            for start in range(0, len(x), chunk):
                xs, ys = x[start : start + chunk], y[start : start + chunk]
                normaliser = torch.logsumexp(_at_most(critic(xs, reference), ceiling), dim=1)
                values.append(_at_most(critic.pointwise(xs, ys), ceiling) - normaliser)
        pmi = torch.cat(values).double().cpu().numpy() + math.log(len(reference))
        return pmi

    def transform(self, X) -> np.ndarray:
        """Embed ``X`` with the critic's ``x``-side encoder (separable/bilinear critics).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        X_embedded : ndarray of shape (n_samples, n_components), float32
        """
        check_is_fitted(self)
        check_has_features(X)
        X = validate_input(self, X, dtype=INPUT_DTYPES, reset=False)
        x = self._preprocess(X)
        critic = self.critic_.eval()
        with torch.no_grad():
            parts = [critic.embed_x(x[start : start + 8192]) for start in range(0, len(x), 8192)]
        return torch.cat(parts).float().cpu().numpy()

    def fit_transform(self, X, y, **fit_params) -> np.ndarray:
        """Fit on ``(X, Y)`` and return the embedding of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_features_y)
            The paired variable ``Y``.
        **fit_params : dict
            Must be empty (refused, as by :meth:`fit`).

        Returns
        -------
        X_embedded : ndarray of shape (n_samples, n_components), float32
        """
        return self.fit(X, y, **fit_params).transform(X)


# set_output wraps transform and fit_transform in plain functions when the class is created,
# which would make an @available_if written in the class body always available: wrap the
# final methods instead, so that hasattr(est, "transform") is False for a joint critic.
for _method in ("transform", "fit_transform", "get_feature_names_out"):
    setattr(
        MutualInformationEstimator,
        _method,
        available_if(_has_embedding)(getattr(MutualInformationEstimator, _method)),
    )
del _method


def _still_improving(history, patience: int, tol: float) -> int | None:
    """The best epoch (1-based) when ``valid_mi`` improved by more than ``tol`` within the
    last ``patience`` epochs, else None (converged)."""
    valid_mi = np.array([row.get("valid_mi", np.nan) for row in history], dtype=float)
    if len(valid_mi) == 0 or not np.any(np.isfinite(valid_mi)):
        return None
    best = int(np.nanargmax(valid_mi))
    if len(valid_mi) <= patience:
        return best + 1
    earlier_best = (
        np.nanmax(valid_mi[:-patience]) if np.any(np.isfinite(valid_mi[:-patience])) else -np.inf
    )
    if np.nanmax(valid_mi[-patience:]) > earlier_best + tol:
        return best + 1
    return None
