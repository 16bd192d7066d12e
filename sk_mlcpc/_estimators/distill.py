"""ContrastiveDistillationClassifier: compress a fitted teacher into a small student network.

The student is trained with skorch on

``cross-entropy(labels) + kd_weight * T^2 * KL(teacher_T || student_T)
+ contrastive_weight * contrastive(student, teacher)``

where the contrastive term follows CRD (Tian et al., 2020): linear embeddings of the
student's and the teacher's representations, L2-normalised, a memory bank of past
embeddings of every training row updated with momentum, ``n_negatives`` rows drawn from the
bank per anchor, and the resulting anchored score matrix (column 0 the positive) scored with
ML-CPC (default), CPC or CRD's own NCE objective.

This module holds the estimator. It inherits the teacher handling (validation, the default
teacher, the teacher's outputs) from :mod:`sk_mlcpc._estimators.teachers` and the
construction of the student and its skorch net from :mod:`sk_mlcpc._estimators.students`;
the torch side (memory bank, loss, skorch net) is in :mod:`sk_mlcpc._engine.distill_net`.
"""

from __future__ import annotations

import copy
import math
import os
import warnings
from collections.abc import Callable
from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np
import torch
from sklearn.base import ClassifierMixin, clone
from sklearn.preprocessing import StandardScaler
from sklearn.utils import _safe_indexing
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data
from torch import nn

from sk_mlcpc._engine.distill_net import (
    DISTILLATION_OBJECTIVES,
    DistillationNet,
    _DistillationData,
    _DivergenceGuard,
    _ValidAccuracy,
)
from sk_mlcpc._engine.evaluation import warn_if_alpha_is_invalid
from sk_mlcpc._engine.fitting import (
    check_has_features,
    check_hidden_layer_sizes,
)
from sk_mlcpc._engine.inputs import INPUT_DTYPES
from sk_mlcpc._engine.net import DivergenceError
from sk_mlcpc._estimators.base import ContrastiveEstimator, FitSplit
from sk_mlcpc._estimators.docs import shared_parameter_docs
from sk_mlcpc._estimators.labels import LabelsMixin
from sk_mlcpc._estimators.students import StudentMixin
from sk_mlcpc._estimators.teachers import TeacherMixin
from sk_mlcpc._math.bounds import bound_validity, resolve_alpha

__all__ = ["ContrastiveDistillationClassifier"]

_TEACHER_METHODS = ("transform", "decision_function", "predict_proba")
# Floor of the teacher's log-probabilities: a probability of exactly 0 would give -inf.
_MIN_LOG_PROBA = math.log(1e-12)
# batch_size="auto": 64 rows, raised on large data while an epoch keeps ~50 steps. Past
# 64 rows a step costs little more, so larger batches fit an epoch faster; on small data
# they would leave too few steps (digits, 1,257 rows, underfits at 256).
_AUTO_BATCH_SIZE = (64, 256)
_AUTO_STEPS_PER_EPOCH = 50


def _auto_batch_size(n_train: int) -> int:
    """The training batch size of ``batch_size="auto"`` for ``n_train`` training rows.

    Parameters
    ----------
    n_train : int
        Training rows (held-out rows excluded).

    Returns
    -------
    batch_size : int
        ``min(256, max(64, n_train // 50))``.

    Examples
    --------
    >>> from sk_mlcpc._estimators.distill import _auto_batch_size
    >>> _auto_batch_size(1_000), _auto_batch_size(5_000), _auto_batch_size(100_000)
    (64, 100, 256)
    """
    low, high = _AUTO_BATCH_SIZE
    return int(min(high, max(low, n_train // _AUTO_STEPS_PER_EPOCH)))


@shared_parameter_docs
class ContrastiveDistillationClassifier(
    LabelsMixin, TeacherMixin, StudentMixin, ClassifierMixin, ContrastiveEstimator
):
    """Distil a fitted teacher classifier into a small student network.

    ``fit(X, y)`` computes the teacher's class probabilities and representation once (in
    batches), then trains a student MLP (or a user torch module) on

    ``CE(y, student) + kd_weight * T^2 KL(teacher_T || student_T)
    + contrastive_weight * L_contrast``

    where ``L_contrast`` follows CRD [2]_: linear embeddings of the student's and the
    teacher's representations, L2-normalised and divided by ``contrastive_temperature``;
    a memory bank holding a momentum average of both embeddings of every training row;
    ``n_negatives`` other rows drawn from the bank per anchor (never the anchor's own row).
    Each batch gives two anchored score matrices (student anchors against the teacher bank,
    teacher anchors against the student bank; column 0 is the positive), scored with
    ``objective``: the negated ML-CPC bound [1]_ (default), CPC, or CRD's NCE loss.

    Parameters
    ----------
    teacher : fitted classifier, torch.nn.Module or None, default=None
        The model to distil. A fitted scikit-learn classifier with ``predict_proba`` whose
        ``classes_`` are the labels of ``y``; or a torch module whose ``forward(x)``
        returns ``(features, logits)`` on a float32 tensor of ``X``, logits column ``k``
        being class ``classes_[k]`` (sorted labels). The teacher is never modified (a torch
        teacher is evaluated on a copy) and :func:`~sklearn.base.clone` shares it rather
        than refitting it, so GridSearchCV works with a fitted teacher. ``None`` first fits
        a wide MLP teacher (``StandardScaler`` + ``MLPClassifier``, see
        ``teacher_params``) on ``X, y``: "train big, ship small" in one call.
    teacher_features : {"transform", "decision_function", "predict_proba"}, callable or \
None, default=None
        The teacher's representation for the contrastive term. A method name of the
        teacher, or a callable ``teacher_features(X) -> array (n_samples, n_features)``
        (e.g. a tree ensemble's one-hot leaf encoding). ``None``: the last hidden layer of
        an ``MLPClassifier`` (also at the end of a Pipeline), else ``transform``, else
        ``decision_function``, else the log-probabilities; for a torch teacher, the
        ``features`` it returns. The representation is standardised per column.
    teacher_params : dict or None, default=None
        Parameters of the ``MLPClassifier`` fitted when ``teacher=None``; the defaults are
        ``hidden_layer_sizes=(256, 256), max_iter=200``.
    unlabeled_value : int, float, str or None, default=None
        The label that marks a row of ``y`` as unlabelled: ``-1`` for scikit-learn's
        semi-supervised convention (:class:`~sklearn.semi_supervised.SelfTrainingClassifier`),
        e.g. ``""`` for string labels. Unlabelled rows feed the KD and contrastive terms
        (the teacher's outputs on them), labelled rows also the cross-entropy. ``None``:
        every row is labelled. See Notes for why it is not ``-1`` by default.
    student : torch.nn.Module or None, default=None
        A student network whose ``forward(x)`` returns ``(features, logits)``; a copy is
        trained. ``None`` builds an MLP with ``hidden_layer_sizes`` whose features are its
        last hidden layer.
    hidden_layer_sizes : tuple of int, default=(64,)
        Hidden widths of the default MLP student.
    activation : str, default="relu"
        Hidden activation of the MLP student, one of :data:`sk_mlcpc.encoders.ACTIVATIONS`.
    objective : {"ml_cpc", "cpc", "crd"}, default="ml_cpc"
        Contrastive objective on the anchored ``batch_size x (n_negatives + 1)`` scores.
    alpha : float or "auto", default="auto"
        Positive weight of ``"ml_cpc"`` (ignored otherwise). ``"auto"`` is the smallest
        valid alpha, :func:`sk_mlcpc.bounds.valid_alpha_range` ``(n, m).low`` with
        ``n = batch_size_`` (the batch size used) and ``m = n_negatives + 1``.
    kd_weight : float, default=1.0
        Weight of Hinton's knowledge-distillation term (0 turns it off).
    contrastive_weight : float, default=0.8
        Weight of the contrastive term (0 turns it off; CRD's default is 0.8).
    temperature : float, default=4.0
        Softening temperature of the KD term.
    contrastive_temperature : float, default=0.07
        Temperature dividing the cosine similarities of the embeddings.
    n_components : int, default=128
        Width of the contrastive embeddings.
    n_negatives : int, default=256
        Memory-bank rows drawn per anchor, uniformly with replacement among the other
        training rows. The anchors of a batch share their draws (see Notes).
    momentum : float, default=0.5
        Weight of a bank entry's old value when it is updated with the new embedding.
    batch_size : int or "auto", default="auto"
        Rows per training batch (a last partial batch is dropped). ``"auto"``: 64 rows, or
        more with many training rows, so that an epoch still takes about 50 steps:
        ``min(256, max(64, n_train // 50))`` (64 up to 3,249 training rows, 256 from
        12,800). The default was 64 before issue 27; ``"auto"`` keeps it on small data and
        fits large data about 2.5 times faster per epoch, at the same test accuracy in
        ``benchmarks/distillation_speed.py`` (see Notes). ``batch_size_`` holds the size
        used, and ``alpha="auto"`` resolves for it.
    max_epochs : int, default=100
        Maximum passes over the training rows.
    .. shared-parameter:: learning_rate
    .. shared-parameter:: weight_decay
    validation_fraction : float, default=0.1
        Share of the rows held out for early stopping (only with ``early_stopping``).
    early_stopping : bool, default=True
        Stop when the held-out cross-entropy has not improved by ``tol`` for
        ``n_iter_no_change`` epochs, and restore the best weights.
    .. shared-parameter:: n_iter_no_change
    tol : float, default=1e-4
        Minimum improvement of the held-out cross-entropy that resets the patience.
    preprocessing : {"standard"} or None, default="standard"
        Standardise the student's input (learnt on the training rows). The teacher always
        sees ``X`` as given.
    .. shared-parameter:: device
    .. shared-parameter:: n_threads
    random_state : int, RandomState instance or None, default=None
        Controls the default teacher, the split, the initialisation, the batch order and
        the negatives. The global torch random state is left untouched.
    .. shared-parameter:: verbose
    warm_start : bool, default=False
        When true and the estimator is fitted, ``fit`` continues training the fitted
        student, embeddings and memory banks for ``max_epochs`` more epochs (optimiser
        state, preprocessing, classes, batch size and alpha kept) instead of starting
        again. The teacher is ``teacher`` when given; with ``teacher=None`` the fitted
        default teacher ``teacher_`` is reused (a model restored by :meth:`load` has none
        and fits it again, with the same seed). A fit with ``warm_start=True`` keeps the
        memory banks, so that continuing is exactly training longer; otherwise they are
        released after fit, and a warm start (or one on another number of training rows)
        begins with fresh banks.
    checkpoint_dir : str, path-like or None, default=None
        Directory where the network, optimiser, criterion and history are saved after
        every epoch. If it already holds an unfinished checkpoint of the same fit (same
        parameters, data and teacher outputs), ``fit`` resumes from it and runs only the
        remaining epochs: with the same ``random_state`` the result is the one an
        uninterrupted fit gives (early stopping included: its patience count and best
        weights carry over). A finished checkpoint is loaded without training.
    on_divergence : {"raise", "restore"}, default="raise"
        What to do when a step produces a non-finite gradient or loss (or a loss above
        1e6): raise a :class:`~sk_mlcpc.DivergenceError` naming the first bad batch, with
        advice, or restore the weights, memory banks and optimiser state of the last good
        epoch, drop the steps from the bad one on, halve the learning rate and go on (at
        most 5 times). Each event is recorded in ``history_`` as ``divergence`` and
        counted in ``n_restores_``; ``fit`` warns when any happened, and raises a
        :class:`~sk_mlcpc.DivergenceError` when every epoch was rolled back (no epoch
        finished cleanly: the student would be returned barely trained). The checks are
        read after every step on the CPU, every 64 steps on an accelerator.
    callbacks : list of skorch callbacks or (name, callback) tuples, or None, default=None
        Extra skorch callbacks; copies are used.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels.
    student_ : torch.nn.Module
        The trained student (evaluation mode); ``student_(x)`` returns
        ``(features, logits)``.
    teacher_ : object
        The teacher used: ``teacher`` itself, or the fitted default teacher. Not written
        by :meth:`save` (prediction does not need it), so a loaded model has none.
    alpha_ : float
        The alpha used (``"auto"`` resolved; 1.0 for objectives without alpha).
    bound_validity_ : {"proven", "claimed", "invalid"} or None
        Whether the ML-CPC/CPC term is a lower bound on the mutual information of the two
        embeddings at this ``(n, m)`` (:func:`sk_mlcpc.bounds.bound_validity`); ``None``
        for ``"crd"``, whose NCE loss is not a bound of this family.
    batch_size_ : int
        Batch size used (capped by the training rows).
    n_negatives_ : int
        Negatives per anchor used: ``n_negatives``, capped (with a warning) by the other
        training rows.
    n_teacher_features_ : int
        Width of the teacher's representation.
    net_ : DistillationNet
        The fitted skorch net (its memory banks are released after fit, unless
        ``warm_start=True``).
    history_ : skorch.History
        Per-epoch ``train_loss``, ``valid_loss`` (held-out cross-entropy), ``valid_acc``,
        ``divergence`` (repaired steps, with ``on_divergence="restore"``), and per-batch
        ``train_ce``, ``train_kd``, ``train_contrast``.
    .. shared-parameter:: n_epochs_
    n_restores_ : int
        Restores of ``on_divergence="restore"`` recorded in ``history_`` (0 when training
        never diverged).
    .. shared-parameter:: device_
    n_features_in_ : int
        Columns of ``X``.
    .. shared-parameter:: feature_names_in_

    See Also
    --------
    sk_mlcpc.bounds.ml_cpc : The default contrastive objective.
    sklearn.neural_network.MLPClassifier : The default teacher.

    Notes
    -----
    **Unlabelled rows.** Distillation pays when labels are few and unlabelled rows many:
    the student learns the teacher's outputs on every row. Two ways in, for two uses:

    - ``unlabeled_value`` marks rows of ``X`` as unlabelled by their label, as
      scikit-learn's semi-supervised estimators do with ``-1``. The rows then travel with
      ``X`` through a Pipeline's earlier steps, through cross-validation splits and through
      :func:`~sklearn.base.clone`, being a parameter, and :meth:`score` leaves them out.
      It is ``None`` by default, not ``-1``, because ``-1`` is an ordinary class in labels
      such as ``{-1, 1}``: a default of ``-1`` would silently turn half of such data into
      unlabelled rows. For string labels pick a value that is not a class (``""``), or
      keep ``-1`` in an ``object`` array, as ``SelfTrainingClassifier`` asks.
    - ``fit(X, y, X_transfer=X_unlabelled)`` takes a separate array of unlabelled rows
      without building a marked ``y``; it reads best outside a Pipeline (whose earlier
      steps would not transform ``X_transfer``).

    Each training batch mixes labelled and unlabelled rows; the loss is the mean over its
    rows of each row's terms (the cross-entropy only for labelled rows). The held-out loss
    used for early stopping is the cross-entropy against the label of a labelled row and
    against the teacher's probabilities for an unlabelled one; ``valid_acc`` counts the
    labelled held-out rows only. With no labelled row at all, a fitted teacher is still
    distilled (``classes_`` are then its classes, or a torch teacher's logit columns
    ``0..k-1``); ``teacher=None`` needs labels to fit its teacher and raises a
    ``ValueError``. The teacher's outputs are computed once, 4,096 rows at a time.

    **Speed.** Each anchor's negatives are uniform on its other training rows, but the
    anchors of a batch share them: one set of ``n_negatives`` bank rows is drawn per batch,
    and an anchor that drew its own row reads the bank's last row instead (a one-to-one map
    onto its other rows). A batch then reads ``n_negatives + 1`` bank rows, not
    ``batch_size * n_negatives``, and the scores are two matrix products. Earlier versions
    drew separate rows per anchor (so the same seed now gives another, equally
    distributed, fit); that gather took most of the time of a step. With
    ``batch_size="auto"`` on large data, a fit on 400 labelled and 15,000 transfer rows
    took 176 s before and 17 s now on one thread, at the same accuracy
    (``benchmarks/distillation_speed.py``).

    **The contrastive term** maximises a bound on the mutual information between the student's
    and the teacher's representations, so the student is pushed to keep what the teacher
    knows about each input, beyond its output probabilities. ML-CPC normalises all
    ``n (n_negatives + 1)`` scores of a batch together; with ``alpha < 1`` it weighs the
    negatives more than CPC can, which is what the paper credits for beating CRD on 10 of
    13 CIFAR-100 teacher/student pairs [1]_. ``get_params`` does not expose the teacher's
    own parameters (``teacher__*``), so that a search can never re-configure a shared,
    fitted teacher.

    :meth:`save` writes the student and what prediction needs (preprocessing, classes,
    weights) without pickle; the teacher is only needed to train. With ``teacher=None``
    the fitted default teacher is therefore not saved: :meth:`load` gives a model that
    predicts and scores exactly as the saved one, and that refits the default teacher (same
    data and seed, same teacher) if asked to continue training. A user-supplied teacher
    (a fitted model or a torch module) or student is not plain data: ``save`` refuses it
    with a ``TypeError``, and pickle remains available for such a model.

    References
    ----------
    .. [1] J. Song, S. Ermon. "Multi-label Contrastive Predictive Coding." NeurIPS 2020.
    .. [2] Y. Tian, D. Krishnan, P. Isola. "Contrastive Representation Distillation."
       ICLR 2020.
    .. [3] G. Hinton, O. Vinyals, J. Dean. "Distilling the Knowledge in a Neural Network."
       NIPS Deep Learning Workshop, 2015.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.ensemble import RandomForestClassifier
    >>> from sk_mlcpc import ContrastiveDistillationClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> teacher = RandomForestClassifier(n_estimators=20, random_state=0).fit(X, y)
    >>> student = ContrastiveDistillationClassifier(
    ...     teacher=teacher, hidden_layer_sizes=(16,), n_negatives=32, batch_size=32,
    ...     learning_rate=0.01, max_epochs=30, early_stopping=False, random_state=0,
    ... ).fit(X, y)
    >>> student.predict(X[:3])
    array([0, 0, 0])
    >>> bool(student.score(X, y) > 0.9)
    True
    """

    _own_parameter_constraints: ClassVar[dict] = {
        "teacher": "no_validation",  # checked in fit, with a specific message
        "teacher_features": [StrOptions(set(_TEACHER_METHODS)), callable, None],
        "teacher_params": [dict, None],
        "unlabeled_value": [Real, str, None],
        "student": [nn.Module, None],
        "objective": [StrOptions(set(DISTILLATION_OBJECTIVES))],
        "kd_weight": [Interval(Real, 0, None, closed="left")],
        "contrastive_weight": [Interval(Real, 0, None, closed="left")],
        "temperature": [Interval(Real, 0, None, closed="neither")],
        "contrastive_temperature": [Interval(Real, 0, None, closed="neither")],
        "n_negatives": [Interval(Integral, 1, None, closed="left")],
        "momentum": [Interval(Real, 0, 1, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "preprocessing": [StrOptions({"standard"}), None],
    }

    def __init__(
        self,
        *,
        teacher: Any = None,
        teacher_features: str | Callable | None = None,
        teacher_params: dict | None = None,
        unlabeled_value: float | str | None = None,
        student: nn.Module | None = None,
        hidden_layer_sizes: tuple[int, ...] = (64,),
        activation: str = "relu",
        objective: str = "ml_cpc",
        alpha: float | str = "auto",
        kd_weight: float = 1.0,
        contrastive_weight: float = 0.8,
        temperature: float = 4.0,
        contrastive_temperature: float = 0.07,
        n_components: int = 128,
        n_negatives: int = 256,
        momentum: float = 0.5,
        batch_size: int | str = "auto",
        max_epochs: int = 100,
        learning_rate: float = 1e-3,
        weight_decay: float = 0.0,
        validation_fraction: float = 0.1,
        early_stopping: bool = True,
        n_iter_no_change: int = 10,
        tol: float = 1e-4,
        preprocessing: str | None = "standard",
        device: str | torch.device = "auto",
        n_threads: int | None = None,
        random_state: int | np.random.RandomState | None = None,
        verbose: int = 0,
        warm_start: bool = False,
        checkpoint_dir: str | os.PathLike | None = None,
        on_divergence: str = "raise",
        callbacks: list | None = None,
    ) -> None:
        self._store_init_arguments(locals())

    # ------------------------------------------------------------------ sklearn protocol

    def get_params(self, deep: bool = True) -> dict:
        """Parameters of this estimator (never the teacher's own ``teacher__*`` ones).

        Parameters
        ----------
        deep : bool, default=True
            Accepted for compatibility; the only nested estimator would be the teacher,
            which is shared, not tuned, so deep and shallow parameters coincide.

        Returns
        -------
        params : dict
        """
        return super().get_params(deep=False)

    def set_params(self, **params):
        """Set parameters of this estimator; the teacher's own parameters are refused.

        Parameters
        ----------
        **params : dict
            Estimator parameters.

        Returns
        -------
        self : ContrastiveDistillationClassifier
        """
        nested = sorted(name for name in params if "__" in name)
        if nested:
            raise ValueError(
                f"Invalid parameter(s) {nested} for {type(self).__name__}: the teacher is a "
                "fitted model shared between clones, and its own parameters cannot be set "
                "through the distiller. Pass another fitted teacher instead."
            )
        return super().set_params(**params)

    def __sklearn_clone__(self):
        """Clone every parameter except the teacher, which is shared (it is never modified).

        sklearn's default clone would replace a fitted teacher with an unfitted copy.
        """
        params = self.get_params()
        new_params = {
            name: value if name == "teacher" else clone(value, safe=False)
            for name, value in params.items()
        }
        new = type(self)(**new_params)
        if hasattr(self, "_metadata_request"):
            new._metadata_request = copy.deepcopy(self._metadata_request)
        return new

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        return tags

    # ------------------------------------------------------------------ helpers

    def _check_hidden_layer_sizes(self) -> tuple[int, ...]:
        sizes = check_hidden_layer_sizes(self.hidden_layer_sizes)
        return sizes

    def _own_callbacks(self) -> list:
        callbacks: list = [("divergence_guard", _DivergenceGuard(on_divergence=self.on_divergence))]
        # Rows are held out exactly when early stopping is on.
        if self.early_stopping:
            callbacks.append(("valid_acc", _ValidAccuracy()))
        return callbacks

    # ------------------------------------------------------------------ fitting

    def fit(self, X, y, X_transfer=None, **fit_params):
        """Distil the teacher into a student trained on ``X, y`` (and unlabelled rows).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training inputs (float32 for the student; the teacher sees them as given).
        y : array-like of shape (n_samples,)
            Class labels of any type; with ``unlabeled_value`` set, the rows whose label
            equals it are unlabelled. ``classes_`` are the labels of the labelled rows.
        X_transfer : array-like of shape (n_transfer, n_features) or None, default=None
            More unlabelled rows, used as rows of ``X`` whose label is missing. In a
            Pipeline, prefer ``unlabeled_value``: the pipeline's earlier steps transform
            ``X`` but not ``X_transfer``.
        **fit_params : dict
            Must be empty: ``sample_weight`` and other fit parameters are not supported,
            and are refused rather than silently ignored.

        Returns
        -------
        self : ContrastiveDistillationClassifier
            The fitted estimator.
        """
        return self._fit(X, y, fit_params, X_transfer=X_transfer)

    _seed_names = ("teacher", "split", "init", "shuffle")
    _too_few_advice = " Pass more rows or early_stopping=False."

    def _held_out_sizes(self, n_samples: int) -> tuple[int, int]:
        # Rows are held out exactly when early stopping is on.
        return (super()._held_out_sizes(n_samples)[0] if self.early_stopping else 0), 0

    def _validate_fit_data(self, X, y, *, warm: bool, X_transfer=None) -> dict:
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None."
            )
        X_raw, transfer_raw = X, X_transfer
        check_has_features(X)
        X, y = validate_data(self, X, y, dtype=INPUT_DTYPES, ensure_min_samples=2, reset=not warm)
        if X_transfer is not None:
            X_transfer = self._check_transfer(X_transfer)
        unlabelled = self._unlabelled_rows(y)
        labelled_y = y[~unlabelled]
        if len(labelled_y):
            check_classification_targets(labelled_y)
        codes, new_classes = self._encode_labels(labelled_y, warm=warm)
        self._check_hidden_layer_sizes()
        n_samples = len(X) + (0 if X_transfer is None else len(X_transfer))
        return {
            "raw": (X_raw, transfer_raw),
            "X": X,
            "transfer": X_transfer,
            "unlabelled": unlabelled,
            "labelled_y": labelled_y,
            "codes": codes,
            "new_classes": new_classes,
            "n_samples": n_samples,
            "warm": warm,
        }

    def _prepare_data(self, data: dict, split: FitSplit, *, warm: bool):
        logits, features = self._teacher_targets(data, split.seeds["teacher"])
        labels, logits = self._labels_and_classes(data, logits)
        if warm and features.shape[1] != self.n_teacher_features_:
            raise ValueError(
                f"warm_start continues with the fitted embedding of {self.n_teacher_features_} "
                f"teacher features, but the teacher now gives {features.shape[1]}."
            )
        self.n_teacher_features_ = features.shape[1]
        X, n_train = data["X"], len(split.train)
        # The teacher's outputs identify the teacher better than its repr does (the
        # checkpoint fingerprint; the features are standardised in place below).
        data["arrays"] = (X, labels, logits, features)
        if not warm:
            self.preprocessor_ = StandardScaler() if self.preprocessing == "standard" else None
            if self.preprocessor_ is not None:
                self.preprocessor_.fit(X[split.train])
            # Kept (and saved) so that a warm start embeds the teacher's features alike.
            self._teacher_scaler = StandardScaler().fit(features[split.train])
        # Standardised in place, in float32 (the array is ours): no float64 copy of it.
        features -= self._teacher_scaler.mean_.astype(np.float32)
        features /= self._teacher_scaler.scale_.astype(np.float32)
        device = self._data_device if warm else self.device_
        tensors = (
            self._student_input(X, device=device),
            torch.as_tensor(labels, dtype=torch.long, device=device),
            torch.as_tensor(np.maximum(logits, _MIN_LOG_PROBA), dtype=torch.float32, device=device),
            torch.as_tensor(features, device=device),
        )

        def subset(rows: np.ndarray) -> _DistillationData:
            index = torch.as_tensor(rows, device=device)
            return _DistillationData(*(tensor[index] for tensor in tensors))

        if warm:
            self._check_warm_sizes({"batch_size_": n_train}, split.n_samples)
            self._prepare_warm_start(n_train, split.seeds["init"])
        else:
            self._set_fitted_sizes(n_train)
        return subset(split.train), subset(split.valid) if len(split.valid) else None

    def _set_fitted_sizes(self, n_train: int) -> None:
        """Batch size, negatives, alpha and validity of a new fit."""
        self._n_train = n_train
        requested = _auto_batch_size(n_train) if self.batch_size == "auto" else self.batch_size
        self.batch_size_ = min(requested, n_train)
        # Each anchor draws its negatives from the other training rows: more than there
        # are would only repeat rows, and inflate m (and the cap) for nothing.
        self.n_negatives_ = min(self.n_negatives, n_train - 1)
        if self.contrastive_weight > 0 and self.n_negatives_ < self.n_negatives:
            warnings.warn(
                f"n_negatives={self.n_negatives} exceeds the {n_train - 1} other training "
                f"rows; using {self.n_negatives_} negatives per anchor. Pass "
                f"n_negatives <= {n_train - 1}, or more rows.",
                UserWarning,
                stacklevel=5,
            )
        m = self.n_negatives_ + 1
        alpha = self.alpha if self.objective == "ml_cpc" else "auto"
        self.alpha_ = resolve_alpha(
            alpha, self.objective if self.objective != "crd" else "cpc", self.batch_size_, m
        )
        self.bound_validity_ = (
            None
            if self.objective == "crd"
            else bound_validity(self.objective, self.batch_size_, m, alpha=self.alpha_)
        )
        warn_if_alpha_is_invalid(
            self.objective, self.alpha_, self.bound_validity_, self.batch_size_, m
        )

    def _finish_fit(self, data: dict, split: FitSplit) -> None:
        # Training-only state: unless training is to continue, the memory banks.
        self._memory_released = not self.warm_start
        if self._memory_released:
            self.net_.module_.release_memory()
        self.net_.module_.student.eval()

    def _prepare_warm_start(self, n_train: int, seed: int) -> None:
        """Fit the memory banks and the NCE constant to continuing on ``n_train`` rows."""
        net = self.net_
        if n_train != self._n_train:
            # Another noise distribution 1 / N: CRD's constant Z is estimated again.
            net.criterion_.n_samples = n_train
            net.criterion_.log_z.fill_(math.nan)
            self._n_train = n_train
        module = net.module_
        if module.contrastive and module.memory_student.shape[0] != n_train:
            generator = torch.Generator().manual_seed(seed + len(net.history))
            module.reset_memory(n_train, generator)

    # ------------------------------------------------------------------ persistence

    # sk_mlcpc._engine.persistence.PersistenceMixin: what prediction needs, and what lets a
    # loaded model continue training (the teacher excepted, see Notes).
    # (the fitted attributes every estimator saves are declared on ContrastiveEstimator).
    _classes_record: dict
    alpha_: float
    bound_validity_: str | None
    n_teacher_features_: int
    n_negatives_: int
    _n_train: int
    _memory_released: bool
    _saved_preprocessors = ("preprocessor_", "_teacher_scaler")

    def _preprocessor_classes(self, name: str) -> tuple[frozenset[str], str]:
        if name == "_teacher_scaler":
            # The teacher's features are standardised whatever ``preprocessing`` says.
            return frozenset({"StandardScaler"}), "distillation"
        return super()._preprocessor_classes(name)

    def _rebuild_net(self, *, shuffle_seed: int, eval_seed: int) -> DistillationNet:
        net = self._make_net(shuffle_seed=shuffle_seed, eval_seed=eval_seed)
        if self._memory_released:
            # The module instance becomes module_: give it the saved (empty) banks' shape.
            net.module.release_memory()
        return net

    def _after_load(self) -> None:
        self.net_.module_.student.eval()

    def save(self, path) -> None:
        """Write the fitted model to ``path``: parameters as JSON, weights as tensors.

        Unlike pickle, loading the file runs no code from it: tensors are read with
        ``torch.load(weights_only=True)``. The file holds the constructor parameters, the
        classes and preprocessing, the student's, embeddings', criterion's and optimiser's
        state (and the memory banks when ``warm_start=True`` kept them) and ``history_``.
        It does not hold the fitted default teacher ``teacher_``, which prediction does
        not need; a loaded model refits it (same data and seed, same teacher) only if it
        is asked to continue training.

        Parameters
        ----------
        path : str or path-like
            File to write (conventionally ``*.skmlcpc``); overwritten if it exists.

        Raises
        ------
        TypeError
            When the teacher was supplied (a fitted model or a torch module), or another
            parameter cannot be written without pickle (a torch ``student``, a callable
            ``teacher_features``, skorch callbacks, a ``RandomState``).
        """
        check_is_fitted(self)
        if self.teacher is not None:
            raise TypeError(
                f"teacher={type(self.teacher).__name__}(...) cannot be written to a model "
                "file: save() stores plain data and weights, and a user-supplied teacher is "
                "neither. Pickle this model instead (the teacher is pickled with it), or "
                "distil with teacher=None, whose fitted default teacher is not needed for "
                "prediction and is left out of the file."
            )
        super().save(path)

    # ------------------------------------------------------------------ prediction

    @property
    def student_(self) -> nn.Module:
        """The trained student, held by ``net_`` (so it follows the net across devices)."""
        check_is_fitted(self, "net_")
        return self.net_.module_.student

    def score(self, X, y, sample_weight=None) -> float:
        """Accuracy of the student on the labelled rows of ``X, y``.

        Rows whose label is ``unlabeled_value`` are left out, so that cross-validation
        over partly labelled data scores what it can.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        sample_weight : array-like of shape (n_samples,) or None, default=None

        Returns
        -------
        score : float
            Mean accuracy on the labelled rows.
        """
        if self.unlabeled_value is not None:
            labels = np.asarray(y)
            keep = ~self._unlabelled_rows(labels.ravel())
            if not keep.any():
                raise ValueError(
                    "score needs labelled rows, but every label of y is unlabeled_value="
                    f"{self.unlabeled_value!r}."
                )
            X = _safe_indexing(X, np.flatnonzero(keep))
            y = labels.ravel()[keep]
            if sample_weight is not None:
                sample_weight = np.asarray(sample_weight)[keep]
        return super().score(X, y, sample_weight=sample_weight)

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities of the student.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Columns ordered as ``classes_``.
        """
        check_is_fitted(self)
        check_has_features(X)
        X = validate_data(self, X, dtype=INPUT_DTYPES, reset=False)
        x = self._student_input(X)
        student = self.student_.eval()
        parts = []
        with torch.no_grad():
            for start in range(0, len(x), 8192):
                _, logits = student(x[start : start + 8192])
                parts.append(torch.softmax(logits.double(), dim=1))
        proba = torch.cat(parts).cpu().numpy()
        if not np.all(np.isfinite(proba)):
            raise DivergenceError(
                "The student gives non-finite probabilities; refit with a lower learning_rate."
            )
        return proba

    def predict(self, X) -> np.ndarray:
        """Predicted class labels.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
        """
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]
