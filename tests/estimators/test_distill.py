"""Behaviour of ContrastiveDistillationClassifier (small data, tiny networks)."""

import math
import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits, load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from torch import nn

from sk_mlcpc import DivergenceError, bounds
from sk_mlcpc._engine.distill_net import (
    DistillationLoss,
    _DistillationBatches,
    _DistillationData,
    _DistillationModule,
    _draw_negatives,
    _negatives_of_draws,
    _sample_negatives,
)
from sk_mlcpc._estimators.distill import ContrastiveDistillationClassifier, _auto_batch_size

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

FAST = {
    "hidden_layer_sizes": (16,),
    "n_components": 16,
    "n_negatives": 32,
    "batch_size": 32,
    "max_epochs": 10,
    "learning_rate": 1e-2,
    "early_stopping": False,
    "random_state": 0,
}


def _fast(**params):
    return ContrastiveDistillationClassifier(**{**FAST, **params})


@pytest.fixture(scope="module")
def iris():
    return load_iris(return_X_y=True)


@pytest.fixture(scope="module")
def mlp_teacher(iris):
    X, y = iris
    return MLPClassifier(hidden_layer_sizes=(32,), max_iter=300, random_state=0).fit(X, y)


@pytest.fixture(scope="module")
def fitted(iris, mlp_teacher):
    X, y = iris
    return _fast(teacher=mlp_teacher, max_epochs=30).fit(X, y)


class TorchTeacher(nn.Module):
    """A torch teacher with a features/logits split."""

    def __init__(self, n_features: int, n_classes: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(n_features, 24), nn.ReLU(), nn.Dropout(0.5))
        self.head = nn.Linear(24, n_classes)

    def forward(self, x):
        features = self.body(x)
        return features, self.head(features)


class NaNStudent(nn.Module):
    """A student whose logits are always NaN: training must not go on quietly."""

    def __init__(self, n_features: int, n_classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(n_features, n_classes)

    def forward(self, x):
        logits = self.linear(x) * math.nan
        return x, logits


def _state(module: nn.Module) -> dict:
    return {name: value.detach().clone() for name, value in module.state_dict().items()}


# ---------------------------------------------------------------------------------------
# Fitted attributes, prediction, persistence
# ---------------------------------------------------------------------------------------


def test_fitted_attributes(fitted, iris):
    X, y = iris
    est = fitted
    np.testing.assert_array_equal(est.classes_, [0, 1, 2])
    assert est.n_features_in_ == 4
    assert est.n_teacher_features_ == 32  # the MLP teacher's hidden layer
    assert isinstance(est.student_, nn.Module) and not est.student_.training
    assert est.n_epochs_ == len(est.history_) == 30
    assert est.batch_size_ == 32
    proba = est.predict_proba(X)
    assert proba.shape == (150, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(est.predict(X), est.classes_[proba.argmax(axis=1)])
    assert est.score(X, y) > 0.9
    # The per-batch terms are recorded and the memory banks are released after fit.
    batch = est.history_[-1, "batches", -1]
    assert {"train_ce", "train_kd", "train_contrast"} <= set(batch)
    assert est.net_.module_.memory_student.shape[0] == 0


def test_alpha_auto_resolves_for_the_anchored_layout(fitted):
    # n = batch_size rows, m = n_negatives + 1 columns.
    expected = bounds.valid_alpha_range(32, 33).low
    assert fitted.alpha_ == pytest.approx(expected)
    assert fitted.bound_validity_ == "claimed"


@pytest.mark.parametrize(
    ("objective", "alpha", "alpha_", "validity"),
    [("cpc", 0.3, 1.0, "proven"), ("crd", 0.3, 1.0, None), ("ml_cpc", 2.0, 2.0, "proven")],
)
def test_alpha_per_objective(iris, mlp_teacher, objective, alpha, alpha_, validity):
    X, y = iris
    est = _fast(teacher=mlp_teacher, objective=objective, alpha=alpha, max_epochs=1).fit(X, y)
    assert est.alpha_ == alpha_
    assert est.bound_validity_ == validity


def test_pickle_round_trip(fitted, iris):
    X, _ = iris
    restored = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_allclose(restored.predict_proba(X), fitted.predict_proba(X))


def test_clone_shares_the_fitted_teacher(mlp_teacher):
    est = _fast(teacher=mlp_teacher, kd_weight=0.5)
    copy = clone(est)
    assert copy.teacher is mlp_teacher  # not an unfitted clone of it
    assert copy.kd_weight == 0.5
    assert not hasattr(copy, "classes_")
    # The teacher's own parameters are not exposed, so a search cannot re-configure it.
    assert not any(name.startswith("teacher__") for name in est.get_params(deep=True))
    with pytest.raises(ValueError, match="Invalid parameter"):
        est.set_params(teacher__alpha=1.0)
    assert mlp_teacher.alpha == 1e-4


def test_reproducible_and_leaves_global_rng_alone(iris, mlp_teacher):
    X, y = iris
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    first = _fast(teacher=mlp_teacher, max_epochs=3).fit(X, y).predict_proba(X)
    assert torch.equal(torch.random.get_rng_state(), before)
    second = _fast(teacher=mlp_teacher, max_epochs=3).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(first, second)
    other = _fast(teacher=mlp_teacher, max_epochs=3, random_state=1).fit(X, y).predict_proba(X)
    assert not np.allclose(first, other)


def test_grid_search_with_a_fitted_teacher(iris, mlp_teacher):
    X, y = iris
    before = [w.copy() for w in mlp_teacher.coefs_]
    grid = GridSearchCV(
        _fast(teacher=mlp_teacher, max_epochs=3),
        {"kd_weight": [0.0, 1.0], "alpha": [1.0, "auto"], "hidden_layer_sizes": [(8,), (16,)]},
        cv=2,
    ).fit(X, y)
    assert len(grid.cv_results_["mean_test_score"]) == 8
    assert grid.best_estimator_.teacher is mlp_teacher
    assert 0.0 <= grid.best_score_ <= 1.0
    for old, new in zip(before, mlp_teacher.coefs_):
        np.testing.assert_array_equal(old, new)


# ---------------------------------------------------------------------------------------
# The teacher
# ---------------------------------------------------------------------------------------


def test_sklearn_teacher_is_not_modified(iris, mlp_teacher):
    X, y = iris
    params = mlp_teacher.get_params()
    blob = pickle.dumps(mlp_teacher)
    _fast(teacher=mlp_teacher, max_epochs=2).fit(X, y)
    assert mlp_teacher.get_params() == params
    assert pickle.dumps(mlp_teacher) == blob


def test_torch_teacher_is_not_modified_and_is_distilled(iris):
    X, y = iris
    torch.manual_seed(0)
    teacher = TorchTeacher(4, 3)
    teacher.train()  # left in training mode: fit must use an evaluation-mode copy
    state = _state(teacher)
    est = _fast(teacher=teacher, max_epochs=3).fit(X, y)
    assert teacher.training
    for name, value in teacher.state_dict().items():
        assert torch.equal(value, state[name])
        assert value.device.type == "cpu"
    assert est.n_teacher_features_ == 24
    assert est.predict(X).shape == (150,)


def test_torch_teacher_with_wrong_number_of_logits(iris):
    X, y = iris
    with pytest.raises(ValueError, match="returns 5 logits per row, but y has 3 classes"):
        _fast(teacher=TorchTeacher(4, 5)).fit(X, y)


def test_torch_teacher_must_return_features_and_logits(iris):
    X, y = iris
    with pytest.raises(TypeError, match=r"\(features, logits\)"):
        _fast(teacher=nn.Linear(4, 3)).fit(X, y)


def test_teacher_none_fits_a_default_teacher(iris):
    X, y = iris
    est = _fast(teacher_params={"hidden_layer_sizes": (32,), "max_iter": 500}, max_epochs=3)
    est.fit(X, y)
    assert est.teacher is None
    mlp = est.teacher_[-1]
    assert isinstance(mlp, MLPClassifier) and mlp.hidden_layer_sizes == (32,)
    assert est.n_teacher_features_ == 32
    assert est.teacher_.score(X, y) > 0.9


def test_invalid_teacher_params(iris):
    X, y = iris
    with pytest.raises(TypeError, match="teacher_params"):
        _fast(teacher_params={"no_such_option": 1}).fit(X, y)


def test_unfitted_teacher(iris):
    X, y = iris
    with pytest.raises(NotFittedError, match=r"not fitted.*teacher=None"):
        _fast(teacher=LogisticRegression()).fit(X, y)


def test_teacher_with_wrong_number_of_classes(iris):
    X, y = iris
    teacher = LogisticRegression().fit(X[y < 2], y[y < 2])
    with pytest.raises(ValueError, match="fitted on 2 classes, but y has 3"):
        _fast(teacher=teacher).fit(X, y)


def test_teacher_with_other_classes(iris):
    X, y = iris
    teacher = LogisticRegression().fit(X, y + 1)
    with pytest.raises(ValueError, match="differ from the classes in y"):
        _fast(teacher=teacher).fit(X, y)


def test_teacher_without_probabilities(iris):
    X, y = iris
    with pytest.raises(TypeError, match=r"has no predict_proba.*probability=True"):
        _fast(teacher=SVC().fit(X, y)).fit(X, y)


def test_teacher_of_the_wrong_kind(iris):
    X, y = iris
    with pytest.raises(TypeError, match="teacher must be a fitted scikit-learn classifier"):
        _fast(teacher="a string").fit(X, y)


def test_teacher_features_method_missing(iris):
    X, y = iris
    forest = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y)
    with pytest.raises(TypeError, match="has no transform method"):
        _fast(teacher=forest, teacher_features="transform").fit(X, y)


def test_teacher_features_callable_gets_the_users_rows(iris):
    X, y = iris
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    forest = RandomForestClassifier(n_estimators=5, random_state=0).fit(frame, y)
    seen = []

    def leaves(rows):
        seen.append(type(rows))
        return forest.apply(rows)  # (n, n_trees) leaf ids

    est = _fast(teacher=forest, teacher_features=leaves, max_epochs=2).fit(frame, y)
    assert seen == [pd.DataFrame]
    assert est.n_teacher_features_ == 5
    np.testing.assert_array_equal(est.feature_names_in_, ["a", "b", "c", "d"])


def test_teacher_features_bad_shape(iris):
    X, y = iris
    forest = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y)
    with pytest.raises(ValueError, match="teacher_features must return an array of shape"):
        _fast(teacher=forest, teacher_features=lambda rows: np.zeros((3, 2))).fit(X, y)


def test_decision_function_teacher_features(iris):
    X, y = iris
    teacher = LogisticRegression(max_iter=500).fit(X, y)
    est = _fast(teacher=teacher, teacher_features="decision_function", max_epochs=2).fit(X, y)
    assert est.n_teacher_features_ == 3


# ---------------------------------------------------------------------------------------
# Labels, inputs and errors
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "labels", [np.array(["setosa", "versicolor", "virginica"]), np.array([70, 10, 30])]
)
def test_labels_of_any_type(iris, labels):
    X, y = iris
    y_labels = labels[y]
    teacher = LogisticRegression(max_iter=500).fit(X, y_labels)
    est = _fast(teacher=teacher).fit(X, y_labels)
    np.testing.assert_array_equal(est.classes_, np.sort(labels))
    predicted = est.predict(X)
    assert set(predicted) <= set(labels)
    assert est.score(X, y_labels) > 0.85
    # Probability columns follow classes_, whatever order the teacher used.
    assert np.mean(est.classes_[est.predict_proba(X).argmax(1)] == y_labels) > 0.85


def test_fit_parameters_are_refused(iris, mlp_teacher):
    X, y = iris
    with pytest.raises(TypeError, match="sample_weight"):
        _fast(teacher=mlp_teacher).fit(X, y, sample_weight=np.ones(len(y)))


def test_divergence_raises_with_advice(iris, mlp_teacher):
    X, y = iris
    with pytest.raises(DivergenceError, match="learning_rate"):
        _fast(teacher=mlp_teacher, student=NaNStudent(4, 3)).fit(X, y)


def test_user_student_is_copied(iris, mlp_teacher):
    X, y = iris
    torch.manual_seed(0)
    student = TorchTeacher(4, 3)  # the same (features, logits) convention
    state = _state(student)
    est = _fast(teacher=mlp_teacher, student=student, max_epochs=3).fit(X, y)
    assert est.student_ is not student
    for name, value in student.state_dict().items():
        assert torch.equal(value, state[name])
    assert not torch.equal(est.student_.head.weight, state["head.weight"])


def test_student_with_wrong_logits(iris, mlp_teacher):
    X, y = iris
    with pytest.raises(ValueError, match=r"logits must have shape \(n_samples, 3\)"):
        _fast(teacher=mlp_teacher, student=TorchTeacher(4, 2)).fit(X, y)


def test_too_few_rows_for_early_stopping(iris):
    X, y = iris
    teacher = LogisticRegression().fit(X[y < 2], y[y < 2])
    with pytest.raises(ValueError, match="early_stopping=False"):
        _fast(teacher=teacher, early_stopping=True).fit(X[[0, 60]], y[[0, 60]])


def test_early_stopping_records_held_out_accuracy(iris, mlp_teacher):
    X, y = iris
    est = _fast(teacher=mlp_teacher, early_stopping=True, validation_fraction=0.2).fit(X, y)
    accuracies = est.history_[:, "valid_acc"]
    assert len(accuracies) == est.n_epochs_
    assert all(0.0 <= value <= 1.0 for value in accuracies)


# ---------------------------------------------------------------------------------------
# Memory bank and loss
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("n_samples", [2, 3, 17])
def test_negatives_never_include_the_positive(n_samples):
    generator = torch.Generator().manual_seed(0)
    index = torch.arange(n_samples).repeat(50)
    negatives = _sample_negatives(index, n_samples, 200, generator)
    assert negatives.shape == (len(index), 200)
    assert bool((negatives != index[:, None]).all())
    assert negatives.min() >= 0 and negatives.max() < n_samples
    # Uniform over the other rows: each appears about 1 / (n_samples - 1) of the time.
    for row in range(n_samples):
        drawn = negatives[index == row]
        counts = torch.bincount(drawn.reshape(-1), minlength=n_samples).double()
        assert counts[row] == 0
        others = counts[torch.arange(n_samples) != row] / drawn.numel()
        np.testing.assert_allclose(others.numpy(), 1.0 / (n_samples - 1), atol=0.03)


def test_negatives_need_two_rows():
    with pytest.raises(ValueError, match="at least 2 rows"):
        _sample_negatives(torch.tensor([0]), 1, 4)


def _module(n_samples=10, n_negatives=6, momentum=0.5):
    torch.manual_seed(0)
    student = nn.Sequential(nn.Linear(3, 4))

    class Split(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = student

        def forward(self, x):
            features = self.net(x)
            return features, features[:, :2]

    return _DistillationModule(
        Split(),
        student_dim=4,
        teacher_dim=5,
        n_components=8,
        n_samples=n_samples,
        n_negatives=n_negatives,
        momentum=momentum,
        contrastive_temperature=0.1,
        contrastive=True,
    )


def test_module_scores_anchored_layout_and_updates_the_bank():
    module = _module().train()
    x, teacher = torch.randn(4, 3), torch.randn(4, 5)
    index = torch.tensor([1, 3, 5, 7])
    old_teacher_bank = module.memory_teacher.clone()
    logits, student_scores, teacher_scores = module(x, index, teacher)
    assert logits.shape == (4, 2)
    assert student_scores.shape == teacher_scores.shape == (4, 7)
    # Column 0 is the anchor's own (old) teacher bank entry.
    embedding = nn.functional.normalize(module.embed_student(module.student(x)[0]), dim=1)
    expected = (embedding * old_teacher_bank[index]).sum(1) / 0.1
    torch.testing.assert_close(student_scores[:, 0], expected)
    # Only the visited rows move, and the bank stays on the unit sphere.
    changed = (module.memory_teacher != old_teacher_bank).any(dim=1)
    np.testing.assert_array_equal(changed.nonzero().flatten().numpy(), index.numpy())
    torch.testing.assert_close(module.memory_teacher.norm(dim=1), torch.ones(10))
    # Evaluation mode scores nothing and leaves the bank alone.
    bank = module.memory_student.clone()
    _, none_student, none_teacher = module.eval()(x, index, teacher)
    assert none_student is None and none_teacher is None
    assert torch.equal(bank, module.memory_student)


def _labels(n=4, k=2):
    return {"label": torch.zeros(n, dtype=torch.long), "teacher_logits": torch.randn(n, k)}


@pytest.mark.parametrize("objective", ["ml_cpc", "cpc"])
def test_contrastive_loss_is_the_negated_anchored_bound(objective):
    scores = torch.randn(6, 9, dtype=torch.float64)
    loss = DistillationLoss(objective=objective, alpha=0.3)
    value = loss.contrastive_loss(scores, 0)
    bound = bounds.get_bound(objective)
    kwargs = {"alpha": 0.3} if objective == "ml_cpc" else {}
    torch.testing.assert_close(value, -bound(scores, layout="anchored", **kwargs))


def test_crd_loss_matches_the_nce_formula():
    n_samples = 50
    torch.manual_seed(0)
    first, second = torch.randn(4, 9, dtype=torch.float64), torch.randn(4, 9, dtype=torch.float64)
    loss = DistillationLoss(objective="crd", n_samples=n_samples)
    loss.contrastive_loss(first, 0)  # fixes Z on the first batch
    value = loss.contrastive_loss(second, 0)
    # CRD: P = exp(s) / Z with Z = mean(exp(s_first)) * N, noise K / N.
    z = first.exp().mean() * n_samples
    noise = 8 / n_samples
    expected = 0.0
    for row in range(4):
        p = second[row].exp() / z
        expected -= math.log(p[0] / (p[0] + noise))
        expected -= sum(math.log(noise / (p[k] + noise)) for k in range(1, 9))
    assert value.item() == pytest.approx(expected / 4, rel=1e-9)


def test_kd_term_is_hinton_kd():
    torch.manual_seed(0)
    logits, teacher = torch.randn(5, 3), torch.randn(5, 3)
    y = {"label": torch.tensor([0, 1, 2, 0, 1]), "teacher_logits": teacher}
    temperature = 3.0
    total = DistillationLoss(kd_weight=2.0, contrastive_weight=0.0, temperature=temperature)
    value = total((logits, None, None), y)
    p_teacher = torch.softmax(teacher / temperature, dim=1)
    log_p_student = torch.log_softmax(logits / temperature, dim=1)
    kd = (p_teacher * (p_teacher.log() - log_p_student)).sum(1).mean() * temperature**2
    ce = nn.functional.cross_entropy(logits, y["label"])
    torch.testing.assert_close(value, ce + 2.0 * kd)
    # Validation: cross-entropy alone.
    torch.testing.assert_close(total((logits, None, None), y, training=False), ce)


# ---------------------------------------------------------------------------------------
# End to end
# ---------------------------------------------------------------------------------------


def test_distillation_end_to_end_on_digits():
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0)
    teacher = make_pipeline(
        StandardScaler(), MLPClassifier(hidden_layer_sizes=(128,), max_iter=200, random_state=0)
    ).fit(X_train, y_train)
    est = ContrastiveDistillationClassifier(
        teacher=teacher,
        hidden_layer_sizes=(32,),
        n_negatives=64,
        max_epochs=30,
        early_stopping=False,
        random_state=0,
    ).fit(X_train, y_train)
    assert est.n_teacher_features_ == 128  # the pipeline's MLP hidden layer
    assert est.score(X_test, y_test) > 0.94
    contrast = [np.mean([b["train_contrast"] for b in epoch["batches"]]) for epoch in est.history_]
    assert contrast[-1] < contrast[0]


def test_float64_offsets_survive_the_students_preprocessing(iris):
    """Issue 17.3: a float32 cast before standardising left the student at chance."""
    X, y = iris
    X = X.astype(np.float64) + 1e8
    teacher = make_pipeline(
        StandardScaler(), MLPClassifier(hidden_layer_sizes=(32,), max_iter=300, random_state=0)
    ).fit(X, y)
    assert teacher.score(X, y) > 0.9
    student = _fast(teacher=teacher, max_epochs=30).fit(X, y)
    assert student.score(X, y) > 0.8


def test_a_teacher_that_rejects_the_input_is_named_in_the_error(iris):
    """Issue 17.9: numeric strings pass the distiller's validation but not every teacher."""

    class StrictTeacher(LogisticRegression):
        def predict_proba(self, X):
            if np.asarray(X).dtype.kind in "OUS":
                raise ValueError("could not convert string to float: '5.1'")
            return super().predict_proba(X)

    X, y = iris
    teacher = StrictTeacher(max_iter=500).fit(X, y)
    with pytest.raises(ValueError, match=r"The teacher \(StrictTeacher\) rejected the input"):
        _fast(teacher=teacher, max_epochs=1).fit(X.astype(str), y)


def test_more_negatives_than_training_rows_are_capped_with_a_warning(iris, mlp_teacher):
    """Issue 17.9: 256 negatives from 149 other rows only repeated rows."""
    X, y = iris
    with pytest.warns(UserWarning, match=r"n_negatives=256 exceeds the 149 other training rows"):
        est = _fast(teacher=mlp_teacher, n_negatives=256, max_epochs=1).fit(X, y)
    assert est.n_negatives_ == 149
    assert est.alpha_ == pytest.approx(bounds.valid_alpha_range(32, 150).low)
    assert _fast(teacher=mlp_teacher, max_epochs=1).fit(X, y).n_negatives_ == 32


# ---------------------------------------------------------------------------------------
# Issue 27.9: negatives shared by a batch's anchors
# ---------------------------------------------------------------------------------------


def test_shared_draws_score_as_the_per_anchor_rows_they_stand_for():
    """Shared draws score as the per-anchor rows they stand for: same gradients and banks."""
    draws = _draw_negatives(10, 6, torch.Generator().manual_seed(1))
    index = torch.tensor([0, 3, 5, 9])
    x, teacher = torch.randn(4, 3), torch.randn(4, 5)
    shared, per_anchor = _module().train(), _module().train()
    draws[:2] = torch.tensor([3, 0])  # the own rows of two anchors: read as the last row
    negatives = _negatives_of_draws(draws, index, 10)
    assert bool((negatives != index[:, None]).all())
    assert negatives[1, 0] == negatives[0, 1] == 9
    results = [
        shared(x, index, teacher, negative_draws=draws),
        per_anchor(x, index, teacher, negatives=negatives),
    ]
    torch.testing.assert_close(results[0][1], results[1][1])
    torch.testing.assert_close(results[0][2], results[1][2])
    for _, student_scores, teacher_scores in results:
        (student_scores.logsumexp(1).sum() + teacher_scores.logsumexp(1).sum()).backward()
    for a, b in zip(shared.parameters(), per_anchor.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad)
    torch.testing.assert_close(shared.memory_student, per_anchor.memory_student)
    torch.testing.assert_close(shared.memory_teacher, per_anchor.memory_teacher)


def test_shared_draws_may_come_as_one_row_per_anchor():
    draws = _draw_negatives(10, 6, torch.Generator().manual_seed(2))
    index = torch.tensor([1, 2, 8])
    x, teacher = torch.randn(3, 3), torch.randn(3, 5)
    flat = _module().train()(x, index, teacher, negative_draws=draws)
    expanded = _module().train()(x, index, teacher, negative_draws=draws.expand(3, -1))
    torch.testing.assert_close(flat[1], expanded[1])
    torch.testing.assert_close(flat[2], expanded[2])


@pytest.mark.parametrize("n_samples", [2, 3, 40])
def test_shared_draws_are_uniform_on_each_anchors_other_rows(n_samples):
    draws = _draw_negatives(n_samples, 20_000, torch.Generator().manual_seed(0))
    assert draws.shape == (20_000,) and draws.dtype == torch.int64
    assert set(draws.tolist()) == set(range(n_samples - 1))
    index = torch.arange(n_samples)
    negatives = _negatives_of_draws(draws, index, n_samples)
    for row in range(n_samples):
        counts = torch.bincount(negatives[row], minlength=n_samples).double()
        assert counts[row] == 0
        others = counts[torch.arange(n_samples) != row] / len(draws)
        np.testing.assert_allclose(others.numpy(), 1.0 / (n_samples - 1), atol=0.02)
    with pytest.raises(ValueError, match="at least 2 rows"):
        _draw_negatives(1, 4)


def test_training_batches_share_their_draws_between_anchors():
    n = 50
    data = _DistillationData(
        torch.randn(n, 3), torch.zeros(n, dtype=torch.long), torch.randn(n, 2), torch.randn(n, 5)
    )
    batches = _DistillationBatches(
        data, 8, shuffle=True, generator=torch.Generator().manual_seed(0), n_negatives=7
    )
    seen = []
    for inputs, _ in batches:
        draws = inputs["negative_draws"]
        assert draws.shape == (8, 7)
        assert bool((draws == draws[0]).all())
        assert draws.min() >= 0 and draws.max() <= n - 2
        seen.append(draws[0])
    assert len(seen) == n // 8
    # Each batch draws afresh.
    assert not all(torch.equal(seen[0], other) for other in seen[1:])


def test_auto_batch_size_keeps_64_on_small_data_and_grows_to_256():
    """Issue 27.9: larger batches only where an epoch keeps about 50 steps."""
    assert [_auto_batch_size(n) for n in (10, 3_249, 3_250, 12_799, 12_800, 10**6)] == [
        64,
        64,
        65,
        255,
        256,
        256,
    ]
    assert ContrastiveDistillationClassifier().batch_size == "auto"


def test_auto_batch_size_is_capped_by_the_training_rows(iris, mlp_teacher):
    X, y = iris
    est = _fast(teacher=mlp_teacher, batch_size="auto", max_epochs=1).fit(X, y)
    assert est.batch_size_ == 64
    assert est.alpha_ == pytest.approx(bounds.valid_alpha_range(64, 33).low)
    small = _fast(teacher=mlp_teacher, batch_size="auto", max_epochs=1).fit(X[::4], y[::4])
    assert small.batch_size_ == 38
