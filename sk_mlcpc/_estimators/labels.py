"""Labelled and unlabelled rows, classes and transfer rows of the distiller.

:class:`LabelsMixin` is the label handling of
:class:`~sk_mlcpc.ContrastiveDistillationClassifier`: which rows are unlabelled, the
class indices of the others, the classes (from ``y`` or the teacher), the check of extra
unlabelled rows (``X_transfer``) and the JSON record of ``classes_`` in a model file.
"""

from __future__ import annotations

from numbers import Real

import numpy as np
from sklearn.preprocessing import LabelEncoder
from torch import nn

from sk_mlcpc._engine.fitting import check_has_features
from sk_mlcpc._engine.inputs import INPUT_DTYPES, check_input

__all__ = ["LabelsMixin", "unlabelled_rows"]


def unlabelled_rows(y: np.ndarray, value) -> np.ndarray:
    """Boolean mask of the rows of ``y`` whose label is ``value`` (none when ``None``).

    A number matches numeric labels and numbers in an ``object`` array, a string matches
    string labels; a number never matches a string array or vice versa (the estimator
    refuses labels that are ``value`` written the other way, see
    :meth:`LabelsMixin._unlabelled_rows`).
    """
    if value is None:
        return np.zeros(len(y), dtype=bool)
    if y.dtype == object:
        return np.fromiter((label == value for label in y), dtype=bool, count=len(y))
    if y.dtype.kind in "biuf" and _is_number(value):
        return np.asarray(y == value, dtype=bool)
    if y.dtype.kind in "US" and isinstance(value, str):
        return np.asarray(y == value, dtype=bool)
    return np.zeros(len(y), dtype=bool)


def _is_number(value) -> bool:
    return isinstance(value, Real) and not isinstance(value, str | bool | np.bool_)


def _check_no_lookalike(labels: np.ndarray, value) -> None:
    """Refuse labels that are ``value`` written as the other type (a string for a number)."""
    numeric_labels = labels.dtype.kind in "biuf"
    string_labels = labels.dtype.kind in "US"
    if (numeric_labels and _is_number(value)) or (string_labels and isinstance(value, str)):
        return  # one type on both sides: only the labels equal to value are value
    for label in set(labels.tolist()):
        if _same_number(label, value):
            kind = "a number" if _is_number(value) else "a string"
            raise ValueError(
                f"unlabeled_value={value!r} is {kind}, but y holds the label {label!r}: "
                f"the rows labelled {label!r} would be taken for a class of their own, not "
                f"for unlabelled rows. Pass unlabeled_value={label!r} (unlabeled_value and "
                "the labels must have the same type)."
            )


def _same_number(label, value) -> bool:
    """Whether ``label`` and ``value`` are one number, one written as a string."""
    if isinstance(label, str) == isinstance(value, str):
        return False
    text, number = (label, value) if isinstance(label, str) else (value, label)
    if not _is_number(number):
        return False
    try:
        return float(text) == float(number)
    except ValueError:
        return False


# ---------------------------------------------------------------------------------------
# The estimator
# ---------------------------------------------------------------------------------------


class LabelsMixin:
    """Label handling of the distiller (reads its ``unlabeled_value`` and ``classes_``)."""

    def _unlabelled_rows(self, y: np.ndarray) -> np.ndarray:
        """:func:`unlabelled_rows` for ``unlabeled_value``, refusing look-alike labels.

        A label that is ``unlabeled_value`` written as the other type (``"-1"`` for
        ``-1``: numpy reads ``["setosa", ..., -1]`` as strings) marks rows meant to be
        unlabelled; matched by type alone they would become a class, and the default
        teacher would learn it. That is a ``ValueError`` naming the value to pass.
        """
        mask = unlabelled_rows(y, self.unlabeled_value)
        if self.unlabeled_value is not None:
            _check_no_lookalike(y[~mask], self.unlabeled_value)
        return mask

    def _encode_labels(self, y: np.ndarray, *, warm: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """Class indices of the labelled rows ``y``, and their classes.

        The classes are the sorted labels of ``y`` for a new fit, ``None`` when no row is
        labelled (``fit`` then takes the teacher's) or when continuing a fit (whose
        ``classes_`` ``y`` must hold).
        """
        encoder = LabelEncoder()
        empty = np.empty(0, dtype=np.int64)
        if not warm:
            if not len(y):
                return empty, None
            classes = encoder.fit(y).classes_
            if len(classes) < 2:
                raise ValueError(
                    f"{type(self).__name__} needs at least 2 classes in y, got 1 class "
                    f"({classes[0]!r})."
                )
            return encoder.transform(y), classes
        if not len(y):
            return empty, None
        present = np.unique(y)
        if not np.array_equal(present, self.classes_):
            raise ValueError(
                f"warm_start continues with the fitted classes {self.classes_.tolist()!r}, "
                f"but y holds the classes {present.tolist()!r}."
            )
        encoder.classes_ = self.classes_
        return encoder.transform(y), None

    def _check_transfer(self, X_transfer) -> np.ndarray:
        """``X_transfer`` as float rows with the columns of ``X``, or a clear error."""
        check_has_features(X_transfer, "X_transfer")
        names = getattr(X_transfer, "columns", None)
        X_transfer = check_input(X_transfer, dtype=INPUT_DTYPES, input_name="X_transfer")
        if X_transfer.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X_transfer has {X_transfer.shape[1]} features, but X has "
                f"{self.n_features_in_}: transfer rows must have the columns of X."
            )
        fitted_names = getattr(self, "feature_names_in_", None)
        if fitted_names is not None and names is not None:
            if [str(name) for name in names] != fitted_names.tolist():
                raise ValueError(
                    "X_transfer's columns differ from X's: "
                    f"{[str(name) for name in names]!r} != {fitted_names.tolist()!r}."
                )
        return X_transfer

    def _labels_and_classes(self, data: dict, logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Class indices of every row (-1 where unlabelled) and the teacher's logits in the
        order of ``classes_`` (set here for a new fit)."""
        if not data["warm"]:
            new_classes = data["new_classes"]
            if new_classes is None:
                # No labelled row: the teacher's classes (a torch teacher's logit columns).
                new_classes = (
                    np.arange(logits.shape[1])
                    if isinstance(self.teacher_, nn.Module)
                    else np.unique(np.asarray(self.teacher_.classes_))
                )
            self.classes_ = new_classes
        labels = np.full(data["n_samples"], -1, dtype=np.int64)
        labels[~data["unlabelled"]] = data["codes"]
        order = self._teacher_column_order(self.teacher_)
        if order is not None:
            logits = logits[:, order]
        elif logits.shape[1] != len(self.classes_):
            raise ValueError(
                f"The torch teacher returns {logits.shape[1]} logits per row, but y has "
                f"{len(self.classes_)} classes."
            )
        return labels, logits

    @property
    def _classes_record(self) -> dict:
        # classes_ as JSON: its values and its dtype (labels may be numbers or strings).
        return {"dtype": self.classes_.dtype.str, "values": self.classes_.tolist()}

    @_classes_record.setter
    def _classes_record(self, record: dict) -> None:
        self.classes_ = np.asarray(record["values"], dtype=np.dtype(record["dtype"]))
