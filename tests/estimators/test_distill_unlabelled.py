"""ContrastiveDistillationClassifier with unlabelled transfer rows (small data, tiny networks)."""

import numpy as np
import pytest
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn

from sk_mlcpc._engine.distill_net import DistillationLoss
from sk_mlcpc._estimators import teachers as _teachers
from sk_mlcpc._estimators.distill import ContrastiveDistillationClassifier
from sk_mlcpc._estimators.labels import unlabelled_rows as _unlabelled_rows

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

FAST = {
    "hidden_layer_sizes": (16,),
    "n_components": 16,
    "n_negatives": 32,
    "batch_size": 32,
    "max_epochs": 5,
    "learning_rate": 1e-2,
    "early_stopping": False,
    "random_state": 0,
}


def _fast(**params):
    return ContrastiveDistillationClassifier(**{**FAST, **params})


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(y))
    return X[order], y[order]


@pytest.fixture(scope="module")
def teacher(iris):
    X, y = iris
    return LogisticRegression(max_iter=1000).fit(X, y)


def _partly_labelled(y, n_labelled=30, value=-1):
    """``y`` with all but the first ``n_labelled`` labels replaced by ``value``."""
    marked = np.asarray(y, dtype=object if isinstance(value, str) else None).copy()
    if isinstance(value, str):
        marked = marked.astype(str)
    marked[n_labelled:] = value
    return marked


class CountingTeacher(ClassifierMixin, BaseEstimator):
    """A fitted classifier that records how many rows each call receives."""

    def __init__(self, teacher):
        self.teacher = teacher
        self.classes_ = teacher.classes_
        self.calls: list[int] = []

    def fit(self, X, y):  # present so that it reads as an estimator
        return self

    def predict_proba(self, X):
        self.calls.append(len(X))
        return self.teacher.predict_proba(X)

    def __sklearn_is_fitted__(self):
        return True


class TorchTeacher(nn.Module):
    def __init__(self, n_features: int, n_classes: int) -> None:
        super().__init__()
        self.body = nn.Linear(n_features, 6)
        self.head = nn.Linear(6, n_classes)

    def forward(self, x):
        features = torch.relu(self.body(x))
        return features, self.head(features)


# ---------------------------------------------------------------------------------------
# Marking rows
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("y", "value", "expected"),
    [
        (np.array([0, -1, 2, -1]), -1, [False, True, False, True]),
        (np.array([0.0, -1.0, 2.0]), -1, [False, True, False]),
        (np.array(["a", "", "b"]), "", [False, True, False]),
        (np.array(["a", -1, "b"], dtype=object), -1, [False, True, False]),
        (np.array(["a", "-1"]), -1, [False, False]),  # a number never matches a string
        (np.array([0, 1]), "", [False, False]),
        (np.array([0, -1]), None, [False, False]),
    ],
)
def test_unlabelled_rows(y, value, expected):
    np.testing.assert_array_equal(_unlabelled_rows(y, value), expected)


def test_minus_one_is_a_class_by_default(iris, teacher):
    # Labels {-1, 1} are common: without unlabeled_value, -1 is an ordinary class.
    X, y = iris
    binary = np.where(y == 0, -1, 1)
    two_class = LogisticRegression().fit(X, binary)
    est = _fast(teacher=two_class).fit(X, binary)
    np.testing.assert_array_equal(est.classes_, [-1, 1])


# ---------------------------------------------------------------------------------------
# What unlabelled rows do
# ---------------------------------------------------------------------------------------


def test_classes_come_from_the_labelled_rows(iris, teacher):
    X, y = iris
    est = _fast(teacher=teacher, unlabeled_value=-1).fit(X, _partly_labelled(y))
    np.testing.assert_array_equal(est.classes_, [0, 1, 2])
    assert est.predict_proba(X).shape == (150, 3)
    # The KD and contrastive terms were trained on every row.
    batch = est.history_[-1, "batches", -1]
    assert {"train_ce", "train_kd", "train_contrast"} <= set(batch)


def test_x_transfer_equals_marked_rows(iris, teacher):
    X, y = iris
    marked = _fast(teacher=teacher, unlabeled_value=-1).fit(X, _partly_labelled(y))
    transfer = _fast(teacher=teacher).fit(X[:30], y[:30], X_transfer=X[30:])
    np.testing.assert_array_equal(marked.predict_proba(X), transfer.predict_proba(X))


def test_string_labels_with_an_empty_string(iris):
    X, y = iris
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    teacher = LogisticRegression(max_iter=1000).fit(X, names)
    marked = _partly_labelled(names, value="")
    est = _fast(teacher=teacher, unlabeled_value="").fit(X, marked)
    np.testing.assert_array_equal(est.classes_, ["setosa", "versicolor", "virginica"])
    # scikit-learn's own spelling: -1 in an object array of strings.
    mixed = names.astype(object)
    mixed[30:] = -1
    est = _fast(teacher=teacher, unlabeled_value=-1).fit(X, mixed)
    np.testing.assert_array_equal(est.classes_, ["setosa", "versicolor", "virginica"])


def test_unlabelled_rows_teach_the_student(iris, teacher):
    # 9 labels and 141 rows the teacher labels: the KD student follows the teacher.
    X, y = iris
    y_few = np.full(len(y), -1)
    for label in range(3):
        y_few[np.flatnonzero(y == label)[:3]] = label
    params = {"teacher": teacher, "unlabeled_value": -1, "max_epochs": 40}
    distilled = _fast(contrastive_weight=0.0, **params).fit(X, y_few)
    agreement = np.mean(distilled.predict(X) == teacher.predict(X))
    assert agreement > 0.9
    assert distilled.score(X, y) > 0.85


def test_only_unlabelled_rows_with_a_fitted_teacher(iris, teacher):
    X, _ = iris
    est = _fast(teacher=teacher, unlabeled_value=-1, max_epochs=20).fit(X, np.full(150, -1))
    np.testing.assert_array_equal(est.classes_, teacher.classes_)
    assert np.mean(est.predict(X) == teacher.predict(X)) > 0.8


def test_only_unlabelled_rows_with_a_torch_teacher(iris):
    X, _ = iris
    torch.manual_seed(0)
    est = _fast(teacher=TorchTeacher(4, 3), unlabeled_value=-1).fit(X, np.full(150, -1))
    np.testing.assert_array_equal(est.classes_, [0, 1, 2])  # the logit columns


def test_only_unlabelled_rows_without_a_teacher(iris):
    X, _ = iris
    with pytest.raises(ValueError, match="teacher=None fits a default MLP teacher on the labelled"):
        _fast(unlabeled_value=-1).fit(X, np.full(150, -1))


def test_default_teacher_is_fitted_on_the_labelled_rows(iris):
    X, y = iris
    est = _fast(
        unlabeled_value=-1, teacher_params={"hidden_layer_sizes": (8,), "max_iter": 50}
    ).fit(X, _partly_labelled(y, n_labelled=40))
    assert est.teacher_[0].n_samples_seen_ == 40


def test_early_stopping_with_few_labels(iris, teacher):
    X, y = iris
    est = _fast(teacher=teacher, unlabeled_value=-1, early_stopping=True, max_epochs=8).fit(
        X, np.full(150, -1)
    )
    # No held-out row is labelled: the held-out loss is the cross-entropy against the
    # teacher, and the accuracy is NaN.
    assert np.all(np.isfinite(est.history_[:, "valid_loss"]))
    assert np.all(np.isnan(est.history_[:, "valid_acc"]))
    est = _fast(teacher=teacher, unlabeled_value=-1, early_stopping=True, max_epochs=3)
    est.fit(X, _partly_labelled(y, n_labelled=100))
    assert all(0.0 <= value <= 1.0 for value in est.history_[:, "valid_acc"])


def test_score_leaves_unlabelled_rows_out(iris, teacher):
    X, y = iris
    est = _fast(teacher=teacher, unlabeled_value=-1).fit(X, _partly_labelled(y))
    marked = _partly_labelled(y, n_labelled=60)
    assert est.score(X, marked) == pytest.approx(np.mean(est.predict(X[:60]) == y[:60]))
    with pytest.raises(ValueError, match="score needs labelled rows"):
        est.score(X, np.full(150, -1))


def test_cross_validation_over_partly_labelled_rows(iris, teacher):
    X, y = iris
    pipe = make_pipeline(StandardScaler(), _fast(teacher=teacher, unlabeled_value=-1))
    scores = cross_val_score(pipe, X, _partly_labelled(y, n_labelled=90), cv=3)
    assert np.all((scores >= 0) & (scores <= 1))


# ---------------------------------------------------------------------------------------
# Bad input, the user's arrays, bounded memory
# ---------------------------------------------------------------------------------------


def test_transfer_rows_with_the_wrong_number_of_features(iris, teacher):
    X, y = iris
    with pytest.raises(ValueError, match="X_transfer has 3 features, but X has 4"):
        _fast(teacher=teacher).fit(X, y, X_transfer=X[:, :3])
    with pytest.raises(ValueError, match="X_transfer with 0 feature"):
        _fast(teacher=teacher).fit(X, y, X_transfer=np.empty((5, 0)))


def test_transfer_rows_with_other_columns(iris, teacher):
    pd = pytest.importorskip("pandas")
    X, y = iris
    frame = pd.DataFrame(X, columns=list("abcd"))
    named = LogisticRegression(max_iter=1000).fit(frame, y)
    other = pd.DataFrame(X, columns=list("abce"))
    with pytest.raises(ValueError, match="X_transfer's columns differ"):
        _fast(teacher=named).fit(frame, y, X_transfer=other)
    est = _fast(teacher=named).fit(frame[:30], y[:30], X_transfer=frame[30:])
    assert est.predict(frame).shape == (150,)


def test_the_users_arrays_are_not_modified(iris, teacher):
    X, y = iris
    X32 = np.ascontiguousarray(X, dtype=np.float32)  # validate_data may keep it as is
    X_transfer = X32[30:].copy()
    marked = _partly_labelled(y)
    copies = [X32.copy(), marked.copy(), X_transfer.copy()]
    _fast(teacher=teacher, unlabeled_value=-1, preprocessing=None).fit(
        X32, marked, X_transfer=X_transfer
    )
    for array, copy in zip([X32, marked, X_transfer], copies):
        np.testing.assert_array_equal(array, copy)


def test_teacher_outputs_are_computed_once_in_bounded_batches(iris, teacher, monkeypatch):
    monkeypatch.setattr(_teachers, "_CHUNK", 1000)
    X, y = iris[0][:40], iris[1][:40]
    rng = np.random.default_rng(0)
    X_transfer = iris[0][rng.integers(0, 150, 5_500)] + rng.normal(0, 0.1, (5_500, 4))
    counting = CountingTeacher(teacher)
    est = _fast(teacher=counting, teacher_features="predict_proba", max_epochs=1)
    est.fit(X, y, X_transfer=X_transfer)
    # predict_proba twice per batch (probabilities and representation), each row once.
    assert max(counting.calls) <= 1000
    assert sum(counting.calls) == 2 * (40 + 5_500)


def test_warm_start_with_unlabelled_rows(iris, teacher):
    X, y = iris
    marked = _partly_labelled(y)
    est = _fast(teacher=teacher, unlabeled_value=-1, warm_start=True, max_epochs=2)
    est.fit(X, marked)
    est.fit(X, marked)
    assert est.n_epochs_ == 4
    # Continuing on unlabelled rows alone keeps the classes.
    est.fit(X[30:], np.full(120, -1))
    np.testing.assert_array_equal(est.classes_, [0, 1, 2])


def test_save_and_load_keep_unlabeled_value(iris, tmp_path):
    X, y = iris
    est = _fast(
        unlabeled_value=-1, teacher_params={"hidden_layer_sizes": (8,), "max_iter": 50}
    ).fit(X, _partly_labelled(y, n_labelled=60))
    path = tmp_path / "model.skmlcpc"
    est.save(path)
    loaded = ContrastiveDistillationClassifier.load(path)
    assert loaded.unlabeled_value == -1
    np.testing.assert_allclose(loaded.predict_proba(X), est.predict_proba(X))


# ---------------------------------------------------------------------------------------
# The loss with unlabelled rows
# ---------------------------------------------------------------------------------------


def test_loss_of_unlabelled_rows():
    torch.manual_seed(0)
    logits, teacher_logits = torch.randn(4, 3), torch.randn(4, 3).log_softmax(1)
    label = torch.tensor([2, -1, 0, -1])
    y = {"label": label, "teacher_logits": teacher_logits}
    loss = DistillationLoss(kd_weight=0.0, contrastive_weight=0.0)
    log_p = logits.log_softmax(1)
    # Training: the labelled rows' cross-entropy, summed, over all rows.
    expected = -(log_p[0, 2] + log_p[2, 0]) / 4
    torch.testing.assert_close(loss((logits, None, None), y), expected)
    # No labelled row: zero, not NaN.
    none = {"label": torch.full((4,), -1), "teacher_logits": teacher_logits}
    assert loss((logits, None, None), none).item() == 0.0
    # Held out: the teacher's probabilities stand in for a missing label.
    soft = -(teacher_logits.exp() * log_p).sum(1)
    expected = (-log_p[0, 2] + soft[1] - log_p[2, 0] + soft[3]) / 4
    torch.testing.assert_close(loss((logits, None, None), y, training=False), expected)
