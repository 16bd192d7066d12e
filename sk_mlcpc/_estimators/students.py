"""The student side of ContrastiveDistillationClassifier.

:class:`~sk_mlcpc._estimators.distill.ContrastiveDistillationClassifier` inherits
:class:`StudentMixin`, which builds the student network (the default
:class:`~sk_mlcpc._engine.distill_net._MLPStudent` or a copy of a user module, checked on a
probe batch) and the :class:`~sk_mlcpc._engine.distill_net.DistillationNet` that trains it,
and turns rows into the student's input tensor on the training device.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from sk_mlcpc._engine.distill_net import (
    DistillationLoss,
    DistillationNet,
    _DistillationData,
    _DistillationModule,
    _MLPStudent,
)
from sk_mlcpc._engine.inputs import as_float32

__all__ = ["StudentMixin"]


class StudentMixin:
    """Student construction of :class:`~sk_mlcpc.ContrastiveDistillationClassifier`.

    The methods read the estimator's parameters and fitted attributes (``student``,
    ``activation``, ``preprocessor_``, ``device_``, ``net_``, ...) and its ``_callbacks``.
    """

    @property
    def _data_device(self) -> torch.device:
        return torch.device(self.net_.device) if hasattr(self, "net_") else self.device_

    def _student_input(self, X: np.ndarray, device=None) -> torch.Tensor:
        if self.preprocessor_ is not None:
            X = self.preprocessor_.transform(X)
        device = self._data_device if device is None else device
        return torch.as_tensor(as_float32(X, "X"), device=device)

    def _build_student(self, n_features: int, n_classes: int, hidden: tuple[int, ...]):
        if self.student is None:
            student = _MLPStudent(n_features, n_classes, hidden, self.activation)
        else:
            student = copy.deepcopy(self.student)
        student = student.to(self.device_)
        probe = torch.zeros(2, n_features, device=self.device_)
        was_training = student.training
        student.eval()
        with torch.no_grad():
            output = student(probe)
        student.train(was_training)
        if not (isinstance(output, tuple | list) and len(output) == 2):
            raise TypeError(
                "student.forward(x) must return a (features, logits) tuple, got "
                f"{type(output).__name__}."
            )
        features, logits = output
        if logits.ndim != 2 or logits.shape[1] != n_classes:
            raise ValueError(
                f"The student's logits must have shape (n_samples, {n_classes}), got "
                f"{tuple(logits.shape)}."
            )
        return student, int(features.flatten(1).shape[1])

    def _make_net(
        self,
        *,
        shuffle_seed: int,
        eval_seed: int = 0,
        valid_set: _DistillationData | None = None,
    ) -> DistillationNet:
        """The (untrained) skorch net of the fitted student, embeddings, banks and batch size."""
        student, student_dim = self._build_student(
            self.n_features_in_, len(self.classes_), self._check_hidden_layer_sizes()
        )
        module = _DistillationModule(
            student,
            student_dim=student_dim,
            teacher_dim=self.n_teacher_features_,
            n_components=self.n_components,
            n_samples=self._n_train,
            # Fitted (capped by the training rows); files saved before the cap lack it.
            n_negatives=getattr(self, "n_negatives_", self.n_negatives),
            momentum=self.momentum,
            contrastive_temperature=self.contrastive_temperature,
            contrastive=self.contrastive_weight > 0,
        )
        return DistillationNet(
            module,
            criterion=DistillationLoss,
            criterion__objective=self.objective,
            criterion__alpha=self.alpha_,
            criterion__kd_weight=self.kd_weight,
            criterion__contrastive_weight=self.contrastive_weight,
            criterion__temperature=self.temperature,
            criterion__n_samples=self._n_train,
            **self._net_arguments(
                shuffle_seed=shuffle_seed,
                eval_seed=eval_seed,
                valid_set=valid_set,
                eval_batch_size=None,
            ),
        )
