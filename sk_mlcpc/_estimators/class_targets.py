"""Class-valued targets of :class:`~sk_mlcpc.MutualInformationEstimator`.

When ``y`` holds class labels, ``I(X; y)`` is estimated with a critic that scores every
class for each row (:class:`~sk_mlcpc._nn.class_critic.ClassCritic`) and the
Barber-Agakov bound ``H(y) - E[-log q(y | X)]``, evaluated on held-out rows with the
plug-in entropy of those rows. This module holds what that needs apart from the
estimator: deciding whether ``y`` is a class label, encoding the labels, the closed-form
class baselines and the held-out estimate with its interval.
"""

from __future__ import annotations

import math
from numbers import Number

import numpy as np
import torch
from sklearn.covariance import ledoit_wolf
from sklearn.linear_model import LogisticRegression
from sklearn.utils.multiclass import type_of_target

from sk_mlcpc._engine.evaluation import HeldOutEstimate
from sk_mlcpc._engine.inputs import check_input
from sk_mlcpc._nn.class_critic import class_indices, pointwise_log_ratio

__all__ = [
    "MAX_AUTO_CLASSES",
    "ClassLabelsRecord",
    "check_labels",
    "class_baselines",
    "class_entropy",
    "class_log_prior",
    "class_log_q",
    "encode_labels",
    "held_out_class_estimate",
    "is_class_target",
]

#: ``target_type="auto"`` reads numeric labels (integers, or floats with integral values)
#: as classes up to this many distinct values, each seen at least twice; others are read
#: as a continuous ``y`` (a count or a measurement with integral values, such as the
#: diabetes target).
MAX_AUTO_CLASSES = 50

_Z_95 = 1.959963984540054


class ClassLabelsRecord:
    """``classes_`` written to a model file as ``_target_classes_record``: the labels and
    their dtype (labels may be numbers or strings), or None for a continuous ``y``."""

    @property
    def _target_classes_record(self) -> dict | None:
        classes = getattr(self, "classes_", None)
        if classes is None:
            return None
        return {"dtype": classes.dtype.str, "values": classes.tolist()}

    @_target_classes_record.setter
    def _target_classes_record(self, record: dict | None) -> None:
        self.classes_ = (
            None if record is None else np.asarray(record["values"], dtype=record["dtype"])
        )


def _plain(label):
    """A label as a Python value (``'c'``, not ``np.str_('c')``) for messages."""
    return label.item() if isinstance(label, np.generic) else label


def is_class_target(y, target_type: str) -> bool:
    """Whether ``y`` is treated as class labels under ``target_type``."""
    if target_type == "continuous":
        return False
    if hasattr(y, "to_numpy"):  # pandas
        y = y.to_numpy()
    elif not isinstance(y, np.ndarray):
        # As objects: numpy would turn a list mixing text and numbers into text.
        y = np.asarray(y, dtype=object)
    shape = y.shape
    single_column = len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)
    if target_type == "classes":
        if not single_column:
            raise ValueError(
                f"target_type='classes' needs one column of labels, but y has shape {shape}."
            )
        return True
    if not single_column:
        return False
    labels = y.ravel()
    if labels.dtype.kind in "USb":
        return True
    if labels.dtype.kind == "O":
        if all(isinstance(value, str | bool | np.str_ | np.bool_) for value in labels):
            return True
        if not all(isinstance(value, Number) for value in labels):
            return False  # text among numbers: the continuous path's checks name the cell
        labels = labels.astype(np.float64)
    try:
        kind = type_of_target(labels, input_name="y")
    except ValueError:
        return False  # NaN, infinities: the continuous path's checks name the cell
    if kind not in ("binary", "multiclass"):
        return False
    # Numbers read as labels: 2 to 50 distinct values, each seen at least twice (a value
    # seen once is more likely a measurement with integral values than a class).
    _, counts = np.unique(labels, return_counts=True)
    return 2 <= len(counts) <= MAX_AUTO_CLASSES and bool(np.all(counts >= 2))


def check_labels(y, n_samples: int, *, min_samples: int = 2) -> np.ndarray:
    """``y`` as one column of class labels of ``n_samples`` rows (any dtype), or a clear
    ValueError."""
    labels = check_input(
        y,
        dtype=None,
        ensure_2d=False,
        ensure_all_finite=False,
        input_name="y",
        ensure_min_samples=min_samples,
    )
    if labels.ndim == 2 and labels.shape[1] != 1:
        raise ValueError(
            f"Class labels must be one column, but y has shape {labels.shape}; pass "
            "target_type='continuous' for a multi-column y."
        )
    if len(labels) != n_samples:
        raise ValueError(
            f"X and y must have the same number of rows, got {n_samples} and {len(labels)}."
        )
    return labels


def encode_labels(y, classes: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(classes, indices)``: the sorted labels and each row's index among them.

    With ``classes`` given (a fitted estimator), every label must be one of them.
    """
    labels = np.asarray(y)
    if labels.ndim == 2:
        labels = labels[:, 0]
    if labels.dtype.kind == "O":
        missing = [value for value in labels if value is None or value != value]
        if missing:
            raise ValueError("y holds missing labels (None or NaN); every row needs a class.")
    elif labels.dtype.kind == "f" and not np.all(np.isfinite(labels)):
        raise ValueError("y holds NaN or infinite labels; every row needs a finite class.")
    if classes is None:
        try:
            classes, counts = np.unique(labels, return_counts=True)
        except TypeError:
            raise ValueError(
                "y mixes labels that cannot be ordered, such as strings and numbers; make "
                "every label the same type (e.g. y.astype(str))."
            ) from None
        if len(classes) < 2:
            raise ValueError(
                f"y holds a single class ({_plain(classes[0])!r}): the mutual information with a "
                "constant is 0, and there is nothing to estimate. Pass rows of at least two "
                "classes, or target_type='continuous' for a numeric y."
            )
        lonely = classes[counts < 2]
        if len(lonely):
            raise ValueError(
                f"Class {_plain(lonely[0])!r} of y has a single row ({len(lonely)} such "
                "classes): each class needs at least 2 rows, so that held-out rows can be "
                "scored against what the training rows saw. Merge or drop rare classes, or pass "
                "target_type='continuous' for a numeric y."
            )
        return classes, np.searchsorted(classes, labels)
    index = np.searchsorted(classes, labels)
    index = np.clip(index, 0, len(classes) - 1)
    unknown = classes[index] != labels
    if np.any(unknown):
        raise ValueError(
            f"y holds labels the estimator was not fitted with, e.g. "
            f"{_plain(labels[np.argmax(unknown)])!r}; fitted classes: {classes.tolist()!r}."
        )
    return classes, index


def class_log_prior(indices: np.ndarray, n_classes: int) -> np.ndarray:
    """Log class frequencies of the training rows, add-one smoothed (every class > 0)."""
    counts = np.bincount(indices, minlength=n_classes).astype(np.float64)
    return np.log((counts + 1.0) / (counts.sum() + n_classes))


def class_entropy(indices: np.ndarray, n_classes: int) -> float:
    """Plug-in entropy (nats) of the class frequencies of ``indices``."""
    counts = np.bincount(indices, minlength=n_classes).astype(np.float64)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def class_baselines(
    x_train: torch.Tensor, y_train: torch.Tensor, n_classes: int, random_state: int
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Closed-form linear class scores ``(W, b)`` fitted on the training rows.

    ``"shared_covariance"``: the Gaussian model of each class with one covariance for
    all (linear discriminant analysis), its covariance shrunk by Ledoit-Wolf's
    data-driven weight; ``"logistic"``: multinomial logistic regression with
    scikit-learn's default regularisation. The class weights are not included (the
    critic adds ``log pi``); a class absent from the training rows scores 0.
    """
    x = x_train.detach().double().cpu().numpy()
    y = class_indices(y_train).cpu().numpy()
    present = np.unique(y)
    overall = x.mean(axis=0)
    means = np.stack(
        [x[y == c].mean(axis=0) if np.any(y == c) else overall for c in range(n_classes)]
    )
    covariance, _ = ledoit_wolf(x - means[y], assume_centered=True)
    # A floor on the variances, as the Gaussian baseline's: a class of one training row
    # has no spread, and a column constant within classes none either.
    floor = 1e-3 * max(float(np.trace(covariance)) / len(covariance), 1e-3)
    covariance[np.diag_indices_from(covariance)] += floor
    weight = np.linalg.solve(covariance, means.T).T
    bias = -0.5 * np.einsum("kp,kp->k", weight, means)
    models = {"shared_covariance": (weight, bias)}
    if len(present) >= 2:
        model = LogisticRegression(max_iter=1000, random_state=random_state).fit(x, y)
        weight = np.zeros((n_classes, x.shape[1]))
        bias = np.zeros(n_classes)
        if len(present) == 2:  # one column: the log odds of present[1] over present[0]
            weight[present[1]], bias[present[1]] = model.coef_[0], model.intercept_[0]
        else:
            weight[present], bias[present] = model.coef_, model.intercept_
        # The critic adds log pi to these scores; logistic regression's intercepts hold
        # the classes' frequencies already, so take log pi out once.
        log_prior = class_log_prior(y, n_classes)
        if len(present) == 2:
            bias[present[1]] -= log_prior[present[1]] - log_prior[present[0]]
        else:
            bias[present] -= log_prior[present]
        models["logistic"] = (weight, bias)
    return models


def held_out_class_estimate(log_q: torch.Tensor, indices: np.ndarray) -> HeldOutEstimate:
    """The held-out estimate from rows' ``log q(y_i | x_i)``.

    Each row's term is ``log q(y_i | x_i) - log p_hat(y_i)``, with ``p_hat`` the plug-in
    class frequencies of these rows, so the mean is ``H_hat(y) - cross-entropy``. The
    standard error is that of the per-row terms' mean (the plug-in entropy's own
    first-order term is the same per-row quantity, so it is included).
    """
    n_rows = len(indices)
    terms = log_q.double().cpu().numpy()
    counts = np.bincount(indices)
    terms = terms - np.log(counts[indices] / n_rows)
    value = float(terms.mean())
    if n_rows >= 4:
        std_error = float(terms.std(ddof=1) / math.sqrt(n_rows))
        interval = (value - _Z_95 * std_error, value + _Z_95 * std_error)
    else:
        std_error, interval = math.nan, (math.nan, math.nan)
    return HeldOutEstimate(
        value=value,
        std_error=std_error,
        interval=interval,
        batch_size=n_rows,
        n_batches=1,
        alpha=1.0,  # the bound takes no alpha
        half_batch_value=value,
    )


def class_log_q(
    critic, x: torch.Tensor, y: torch.Tensor, *, minus_prior: bool = False, chunk: int = 8192
) -> torch.Tensor:
    """The critic's per-row ``log q(y_i | x_i)`` (minus ``log pi(y_i)`` with
    ``minus_prior``), in chunks, without gradients."""
    zero = torch.zeros_like(critic.log_prior)
    marginal = critic.log_prior if minus_prior else zero
    was_training = critic.training
    critic.eval()
    try:
        with torch.no_grad():
            parts = [
                pointwise_log_ratio(
                    critic.logits(x[start : start + chunk]),
                    y[start : start + chunk],
                    marginal,
                )
                for start in range(0, len(x), chunk)
            ]
    finally:
        critic.train(was_training)
    return torch.cat(parts) if parts else torch.empty(0)
