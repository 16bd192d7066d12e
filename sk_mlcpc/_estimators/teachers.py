"""The teacher side of ContrastiveDistillationClassifier.

:class:`~sk_mlcpc._estimators.distill.ContrastiveDistillationClassifier` inherits
:class:`TeacherMixin`, which validates the teacher it is given (a fitted scikit-learn
classifier or a torch module), fits the default teacher (``StandardScaler`` +
``MLPClassifier``) when it is given none, and computes the teacher's log-probabilities and
representation on every row, in batches. The module-level helpers read the representation
of a fitted scikit-learn classifier and check the shape of what a teacher returns.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import _safe_indexing
from sklearn.utils.validation import check_is_fitted
from torch import nn

__all__ = ["TeacherMixin"]

_CHUNK = 4096
_DEFAULT_TEACHER = {"hidden_layer_sizes": (256, 256), "max_iter": 200}


def _mlp_hidden(mlp: MLPClassifier, X) -> np.ndarray:
    """Activations of a fitted MLPClassifier's last hidden layer (its representation)."""
    activations = {
        "identity": lambda z: z,
        "logistic": lambda z: 1.0 / (1.0 + np.exp(-z)),
        "tanh": np.tanh,
        "relu": lambda z: np.maximum(z, 0.0),
    }
    hidden = np.asarray(X, dtype=np.float64)
    for weights, bias in zip(mlp.coefs_[:-1], mlp.intercepts_[:-1]):
        hidden = activations[mlp.activation](hidden @ weights + bias)
    return hidden


def _auto_features(teacher, X) -> np.ndarray:
    """A fitted sklearn classifier's representation when ``teacher_features=None``."""
    if isinstance(teacher, Pipeline):
        return _auto_features(teacher[-1], teacher[:-1].transform(X))
    if isinstance(teacher, MLPClassifier):
        return _mlp_hidden(teacher, X)
    for method in ("transform", "decision_function"):
        if hasattr(teacher, method):
            return getattr(teacher, method)(X)
    return np.log(np.clip(teacher.predict_proba(X), 1e-12, None))


def _as_2d(values, name: str, n_rows: int) -> np.ndarray:
    if hasattr(values, "toarray"):  # sparse output, e.g. a one-hot leaf encoding
        values = values.toarray()
    values = np.asarray(values, dtype=np.float32)
    if values.ndim == 1:
        values = values.reshape(-1, 1)
    if values.ndim != 2 or len(values) != n_rows:
        raise ValueError(
            f"{name} must return an array of shape (n_samples, n_features) with "
            f"n_samples={n_rows}, got shape {values.shape}."
        )
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{name} returned non-finite values (NaN or inf).")
    return values


def _num_rows(part) -> int:
    return part.shape[0] if hasattr(part, "shape") else len(part)


class TeacherMixin:
    """Teacher handling of :class:`~sk_mlcpc._estimators.distill.ContrastiveDistillationClassifier`.

    The methods read the estimator's ``teacher_features``, ``teacher_params``,
    ``classes_`` and ``device_``.
    """

    def _fit_default_teacher(self, X: np.ndarray, y: np.ndarray, seed: int):
        params = {**_DEFAULT_TEACHER, **(self.teacher_params or {})}
        params.setdefault("random_state", seed)
        try:
            mlp = MLPClassifier(**params)
        except TypeError as error:
            raise TypeError(
                f"teacher_params holds an invalid MLPClassifier argument: {error}"
            ) from error
        return make_pipeline(StandardScaler(), mlp).fit(X, y)

    def _teacher_outputs(self, teacher, X_raw, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(logits, features)`` of the teacher on every row, computed in batches."""
        n_rows = len(X)
        if isinstance(teacher, nn.Module):
            return self._torch_teacher_outputs(teacher, X_raw, X)
        logits, features = [], []
        for start in range(0, n_rows, _CHUNK):
            part = _safe_indexing(X_raw, slice(start, min(start + _CHUNK, n_rows)))
            try:
                proba = teacher.predict_proba(part)
            except (ValueError, TypeError) as error:
                # Otherwise the message reads as if the distiller had refused the input.
                raise type(error)(
                    f"The teacher ({type(teacher).__name__}) rejected the input in "
                    f"predict_proba: {error}"
                ) from error
            proba = _as_2d(proba, "The teacher's predict_proba", len(part))
            logits.append(np.log(np.clip(proba, 1e-12, None)))
            features.append(self._sklearn_features(teacher, part))
        return np.concatenate(logits), np.concatenate(features)

    def _sklearn_features(self, teacher, part) -> np.ndarray:
        choice = self.teacher_features
        if callable(choice):
            return _as_2d(choice(part), "teacher_features", _num_rows(part))
        if choice is None:
            return _as_2d(
                _auto_features(teacher, part), "The teacher's representation", _num_rows(part)
            )
        if not hasattr(teacher, choice):
            raise TypeError(
                f"teacher_features={choice!r}, but the teacher {type(teacher).__name__} has no "
                f"{choice} method. Pass another method name, a callable, or None."
            )
        return _as_2d(getattr(teacher, choice)(part), f"The teacher's {choice}", _num_rows(part))

    def _torch_teacher_outputs(self, teacher, X_raw, X: np.ndarray):
        if isinstance(self.teacher_features, str):
            raise TypeError(
                f"teacher_features={self.teacher_features!r} names a scikit-learn method; a "
                "torch teacher returns (features, logits) from forward, or takes a callable."
            )
        # A copy, so that neither the teacher's training flag nor its device changes.
        module = copy.deepcopy(teacher).to(self.device_).eval()
        logits, features = [], []
        with torch.no_grad():
            for start in range(0, len(X), _CHUNK):
                stop = min(start + _CHUNK, len(X))
                # The network runs in float32 whatever the input's precision.
                rows = torch.as_tensor(X[start:stop], dtype=torch.float32, device=self.device_)
                output = module(rows)
                if not (isinstance(output, tuple | list) and len(output) == 2):
                    raise TypeError(
                        "A torch teacher's forward(x) must return a (features, logits) "
                        f"tuple, got {type(output).__name__}."
                    )
                feats, out = output
                logits.append(
                    _as_2d(out.float().cpu().numpy(), "The teacher's logits", stop - start)
                )
                if callable(self.teacher_features):
                    part = _safe_indexing(X_raw, slice(start, stop))
                    feats = self.teacher_features(part)
                elif isinstance(feats, torch.Tensor):
                    feats = feats.float().flatten(1).cpu().numpy()
                features.append(_as_2d(feats, "The teacher's features", stop - start))
        logits_all = np.concatenate(logits)
        log_proba = torch.log_softmax(torch.as_tensor(logits_all, dtype=torch.float64), dim=1)
        return log_proba.numpy(), np.concatenate(features)

    def _check_teacher(self, teacher, classes: np.ndarray | None) -> None:
        """Raise a clear error for a teacher that cannot be distilled from ``y``.

        ``classes`` are the labels of the labelled rows; ``None`` when no row is labelled,
        and the teacher's own classes are then the classes.
        """
        if isinstance(teacher, nn.Module):
            return  # checked on its outputs
        if not hasattr(teacher, "fit") and not hasattr(teacher, "predict_proba"):
            raise TypeError(
                "teacher must be a fitted scikit-learn classifier, a torch.nn.Module or None, "
                f"got {type(teacher).__name__}."
            )
        check_is_fitted(
            teacher,
            msg=(
                f"The teacher {type(teacher).__name__} is not fitted: fit it first, or pass "
                "teacher=None to fit a default MLP teacher on the same data."
            ),
        )
        if not hasattr(teacher, "predict_proba"):
            raise TypeError(
                f"The teacher {type(teacher).__name__} has no predict_proba: distillation needs "
                "class probabilities (for an SVC, set probability=True; otherwise wrap it in "
                "sklearn.calibration.CalibratedClassifierCV)."
            )
        teacher_classes = getattr(teacher, "classes_", None)
        if teacher_classes is None:
            raise TypeError(
                f"The teacher {type(teacher).__name__} has no classes_ attribute; it must be a "
                "fitted classifier."
            )
        teacher_classes = np.asarray(teacher_classes)
        if classes is None:
            if teacher_classes.ndim != 1 or len(np.unique(teacher_classes)) < 2:
                raise ValueError(
                    f"The teacher's classes_ {teacher_classes.tolist()!r} are not 2 or more "
                    "class labels."
                )
            return
        n_classes = len(classes)
        if teacher_classes.ndim != 1 or len(teacher_classes) != n_classes:
            raise ValueError(
                f"The teacher was fitted on {len(teacher_classes)} classes, but y has "
                f"{n_classes}: teacher.classes_={teacher_classes.tolist()!r}, classes in y="
                f"{classes.tolist()!r}. Fit the teacher on the same classes."
            )
        if set(teacher_classes.tolist()) != set(classes.tolist()):
            raise ValueError(
                f"The teacher's classes {teacher_classes.tolist()!r} differ from the classes "
                f"in y {classes.tolist()!r}."
            )

    def _teacher_column_order(self, teacher) -> np.ndarray | None:
        if isinstance(teacher, nn.Module):
            return None
        positions = {label: column for column, label in enumerate(np.asarray(teacher.classes_))}
        return np.array([positions[label] for label in self.classes_.tolist()])

    def _teacher_targets(self, data: dict, teacher_seed: int) -> tuple[np.ndarray, np.ndarray]:
        """The teacher (validated, used read-only) and its outputs on every row, once."""
        X, X_transfer, warm = data["X"], data["transfer"], data["warm"]
        X_raw, transfer_raw = data["raw"]
        unlabelled, labelled_y = data["unlabelled"], data["labelled_y"]
        if self.teacher is not None:
            classes = self.classes_ if warm else data["new_classes"]
            self._check_teacher(self.teacher, classes)
            self.teacher_ = self.teacher
            torch_teacher = isinstance(self.teacher, nn.Module)
            X_teacher = X if torch_teacher else X_raw
            transfer_teacher = X_transfer if torch_teacher else transfer_raw
        else:
            if not (warm and hasattr(self, "teacher_")):
                if not len(labelled_y):
                    raise ValueError(
                        "teacher=None fits a default MLP teacher on the labelled rows, but no "
                        f"row of y is labelled (every value is unlabeled_value="
                        f"{self.unlabeled_value!r}). Pass a fitted teacher to distil from "
                        "unlabelled rows alone, or label some rows."
                    )
                # A loaded model has no teacher_: the same data and seed refit the same one.
                self.teacher_ = self._fit_default_teacher(X[~unlabelled], labelled_y, teacher_seed)
            X_teacher, transfer_teacher = X, X_transfer
        logits, features = self._teacher_outputs(self.teacher_, X_teacher, X)
        if X_transfer is not None:
            # The transfer rows follow X: unlabelled rows like any other.
            more_logits, more_features = self._teacher_outputs(
                self.teacher_, transfer_teacher, X_transfer
            )
            logits = np.concatenate([logits, more_logits])
            features = np.concatenate([features, more_features])
            data["X"] = np.concatenate([X, X_transfer])
            data["unlabelled"] = np.concatenate([unlabelled, np.ones(len(X_transfer), dtype=bool)])
        return logits, features
