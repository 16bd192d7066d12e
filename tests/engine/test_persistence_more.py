"""save/load, warm starts, checkpoint resume and divergence repair for sequence CPC and the
distiller (the same features as tests/engine/test_persistence.py and
tests/engine/test_divergence.py)."""

import json
import math
import pickle

import numpy as np
import pytest
import torch
from sklearn.datasets import load_iris
from sklearn.neural_network import MLPClassifier
from skorch.callbacks import Callback

from sk_mlcpc import ContrastivePredictiveCoding, DivergenceError, ModelFileError
from sk_mlcpc._estimators.distill import ContrastiveDistillationClassifier
from sk_mlcpc.datasets import make_frequency_sequences

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

# ------------------------------------------------------------------ fault injection


class Interrupt(Callback):
    """Crash the fit at the end of epoch ``at_epoch`` (1-based)."""

    def __init__(self, at_epoch: int):
        self.at_epoch = at_epoch

    def on_epoch_end(self, net, **kwargs):
        if len(net.history) == self.at_epoch:
            raise RuntimeError("simulated crash")


class PoisonWeights(Callback):
    """Set the first parameter to NaN before training batch ``at_step`` (0-based, all epochs)."""

    def __init__(self, at_step: int):
        self.at_step = at_step

    def initialize(self):
        self.step_ = 0
        return self

    def on_batch_begin(self, net, batch=None, training=False, **kwargs):
        if not training:
            return
        if self.step_ == self.at_step:
            with torch.no_grad():
                next(net.module_.parameters()).fill_(math.nan)
        self.step_ += 1


# ------------------------------------------------------------------ data and estimators


@pytest.fixture(scope="module")
def sequences():
    # 200 sequences: 160 for training, 10 batches of 16 per epoch.
    X, _ = make_frequency_sequences(200, 48, random_state=0)
    return X.astype(np.float32)


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    return X, np.array(["setosa", "versicolor", "virginica"])[y]


def _cpc(**params):
    defaults = dict(
        window=8, stride=4, prediction_steps=2, n_components=8, latent_dim=8,
        hidden_layer_sizes=(16,), batch_size=16, max_epochs=4, early_stopping=False,
        random_state=0,
    )  # fmt: skip
    return ContrastivePredictiveCoding(**{**defaults, **params})


def _distiller(**params):
    # teacher=None: a tiny default teacher. 150 rows, 4 batches of 32 per epoch.
    defaults = dict(
        teacher_params={"hidden_layer_sizes": (16,), "max_iter": 50}, hidden_layer_sizes=(16,),
        n_components=8, n_negatives=16, batch_size=32, learning_rate=1e-2, max_epochs=4,
        early_stopping=False, random_state=0,
    )  # fmt: skip
    return ContrastiveDistillationClassifier(**{**defaults, **params})


def _same_cpc(a, b, X):
    np.testing.assert_array_equal(a.transform(X), b.transform(X))
    np.testing.assert_array_equal(a.score_per_step(X), b.score_per_step(X))
    assert a.score(X) == b.score(X)


def _same_distiller(a, b, X, y):
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
    assert a.score(X, y) == b.score(X, y)


# ------------------------------------------------------------------ save / load


@pytest.mark.parametrize("preprocessing", ["standard", None])
def test_cpc_round_trip(sequences, tmp_path, preprocessing):
    X = sequences
    fitted = _cpc(preprocessing=preprocessing, max_epochs=2, pooling="mean").fit(X)
    fitted.save(tmp_path / "cpc.skmlcpc")
    loaded = ContrastivePredictiveCoding.load(tmp_path / "cpc.skmlcpc", device="cpu")
    _same_cpc(fitted, loaded, X)
    assert loaded.get_params() == fitted.get_params()
    for name in ("mi_", "mi_cap_", "alpha_", "bound_validity_", "n_anchor_times_", "n_epochs_"):
        assert getattr(loaded, name) == getattr(fitted, name)
    for name in ("mi_per_step_", "channel_mean_", "channel_scale_"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(fitted, name))
        assert getattr(loaded, name).dtype == getattr(fitted, name).dtype
    assert loaded.history_[:, "train_loss"] == fitted.history_[:, "train_loss"]
    assert loaded.module_ is loaded.net_.module_


def test_distiller_round_trip_keeps_the_student_not_the_teacher(iris, tmp_path):
    pd = pytest.importorskip("pandas")
    X, y = iris
    frame = pd.DataFrame(X, columns=["sl", "sw", "pl", "pw"])
    fitted = _distiller(max_epochs=2).fit(frame, y)
    fitted.save(tmp_path / "student.skmlcpc")
    loaded = ContrastiveDistillationClassifier.load(tmp_path / "student.skmlcpc", device="cpu")
    _same_distiller(fitted, loaded, frame, y)
    assert loaded.get_params() == fitted.get_params()
    np.testing.assert_array_equal(loaded.classes_, fitted.classes_)
    assert loaded.classes_.dtype == fitted.classes_.dtype
    assert list(loaded.feature_names_in_) == ["sl", "sw", "pl", "pw"]
    for name in ("alpha_", "bound_validity_", "batch_size_", "n_teacher_features_", "n_epochs_"):
        assert getattr(loaded, name) == getattr(fitted, name)
    assert loaded.history_[:, "train_loss"] == fitted.history_[:, "train_loss"]
    assert not loaded.student_.training
    # Prediction does not need the teacher, so it is not in the file.
    assert hasattr(fitted, "teacher_") and not hasattr(loaded, "teacher_")


def test_distiller_with_a_supplied_teacher_is_refused_by_save(iris, tmp_path):
    X, y = iris
    teacher = MLPClassifier(hidden_layer_sizes=(8,), max_iter=50, random_state=0).fit(X, y)
    distiller = _distiller(teacher=teacher, max_epochs=1).fit(X, y)
    with pytest.raises(TypeError, match=r"teacher=MLPClassifier\(\.\.\.\) cannot be written"):
        distiller.save(tmp_path / "student.skmlcpc")
    assert not (tmp_path / "student.skmlcpc").exists()
    # Pickle still works for such a model.
    restored = pickle.loads(pickle.dumps(distiller))
    np.testing.assert_array_equal(restored.predict_proba(X), distiller.predict_proba(X))


def test_corrupted_and_mismatched_files_are_reported(sequences, iris, tmp_path):
    paths = {
        ContrastivePredictiveCoding: tmp_path / "cpc.skmlcpc",
        ContrastiveDistillationClassifier: tmp_path / "student.skmlcpc",
    }
    _cpc(max_epochs=1).fit(sequences).save(paths[ContrastivePredictiveCoding])
    _distiller(max_epochs=1).fit(*iris).save(paths[ContrastiveDistillationClassifier])
    for cls, path in paths.items():
        data = path.read_bytes()
        truncated = tmp_path / f"truncated_{cls.__name__}"
        truncated.write_bytes(data[: len(data) // 2])
        with pytest.raises(ModelFileError, match="not a readable sk-mlcpc model file"):
            cls.load(truncated)
        flipped = tmp_path / f"flipped_{cls.__name__}"
        middle = len(data) // 2
        flipped.write_bytes(data[:middle] + bytes(b ^ 0xFF for b in data[middle : middle + 64]))
        with pytest.raises(ModelFileError):
            cls.load(flipped)
    with pytest.raises(ModelFileError, match="holds a ContrastivePredictiveCoding"):
        ContrastiveDistillationClassifier.load(paths[ContrastivePredictiveCoding])
    with pytest.raises(ModelFileError, match="holds a ContrastiveDistillationClassifier"):
        ContrastivePredictiveCoding.load(paths[ContrastiveDistillationClassifier])


# ------------------------------------------------------------------ warm start


def test_cpc_warm_start_continues_where_the_fit_stopped(sequences, tmp_path):
    X = sequences
    once = _cpc(max_epochs=4).fit(X)
    half = _cpc(max_epochs=2, warm_start=True).fit(X)
    half.save(tmp_path / "half.skmlcpc")
    twice = half.fit(X)
    assert len(twice.history_) == 4
    assert twice.history_[:, "train_loss"] == once.history_[:, "train_loss"]
    _same_cpc(once, twice, X)
    # ... and so does a model loaded from the file written after 2 epochs.
    loaded = ContrastivePredictiveCoding.load(tmp_path / "half.skmlcpc").fit(X)
    _same_cpc(once, loaded, X)


def test_distiller_warm_start_continues_where_the_fit_stopped(iris, tmp_path):
    X, y = iris
    once = _distiller(max_epochs=4).fit(X, y)
    half = _distiller(max_epochs=2, warm_start=True).fit(X, y)
    # warm_start=True keeps the memory banks (one row per training row) for the next fit.
    assert half.net_.module_.memory_student.shape[0] == len(X)
    half.save(tmp_path / "half.skmlcpc")
    twice = half.fit(X, y)
    assert len(twice.history_) == 4
    assert twice.history_[:, "train_loss"] == once.history_[:, "train_loss"]
    _same_distiller(once, twice, X, y)
    # A loaded model refits the default teacher (same data and seed) and continues alike.
    loaded = ContrastiveDistillationClassifier.load(tmp_path / "half.skmlcpc").fit(X, y)
    _same_distiller(once, loaded, X, y)


def test_distiller_warm_start_after_released_banks_and_its_checks(iris):
    X, y = iris
    distiller = _distiller(max_epochs=1).fit(X, y)
    assert distiller.net_.module_.memory_student.shape[0] == 0
    distiller.set_params(warm_start=True).fit(X, y)  # fresh banks
    assert len(distiller.history_) == 2
    assert np.isfinite(distiller.history_[:, "train_loss"]).all()
    assert distiller.net_.module_.memory_student.shape[0] == len(X)
    with pytest.raises(ValueError, match="fitted classes"):
        distiller.fit(X[:100], y[:100])
    with pytest.raises(ValueError, match="4 features"):
        distiller.fit(X[:, :3], y)


# ------------------------------------------------------------------ resumable training


@pytest.mark.parametrize("kind", ["cpc", "distiller"])
def test_interrupted_fit_resumes_to_the_uninterrupted_result(sequences, iris, tmp_path, kind):
    make, data, same = (
        (_cpc, (sequences,), _same_cpc) if kind == "cpc" else (_distiller, iris, _same_distiller)
    )
    uninterrupted = make(max_epochs=5).fit(*data)

    directory = tmp_path / "checkpoints"
    with pytest.raises(RuntimeError, match="simulated crash"):
        make(max_epochs=5, checkpoint_dir=directory, callbacks=[Interrupt(3)]).fit(*data)
    assert json.loads((directory / "sk_mlcpc_fit.json").read_text())["completed"] is False

    resumed = make(max_epochs=5, checkpoint_dir=directory).fit(*data)
    assert len(resumed.history_) == 5
    assert resumed.history_[:, "train_loss"] == uninterrupted.history_[:, "train_loss"]
    same(uninterrupted, resumed, *data)

    # A finished checkpoint is loaded, not retrained.
    again = make(max_epochs=5, checkpoint_dir=directory).fit(*data)
    assert len(again.history_) == 5
    same(uninterrupted, again, *data)

    # A checkpoint of another fit is refused.
    with pytest.raises(ValueError, match="checkpoint of a different fit"):
        make(max_epochs=5, checkpoint_dir=directory, learning_rate=0.5).fit(*data)


# ------------------------------------------------------------------ divergence


def test_cpc_restores_after_a_fault_at_a_known_step(sequences):
    X = sequences
    # 10 batches per epoch: step 13 is batch 4 (index 3) of epoch 2.
    estimator = _cpc(callbacks=[PoisonWeights(13)], on_divergence="restore").fit(X)
    events = [row.get("divergence") for row in estimator.history_]
    assert events[0] is None and events[2] is None and events[3] is None
    (event,) = events[1]
    assert event["batch"] == 3 and "non-finite gradient" in event["reason"]
    assert event["learning_rate"] == pytest.approx(1e-3 / 2)
    assert estimator.net_.optimizer_.param_groups[0]["lr"] == pytest.approx(1e-3 / 2)
    train_batches = [b for b in estimator.history_[1]["batches"] if "train_loss" in b]
    assert len(train_batches) == 9
    assert np.isfinite(estimator.history_[:, "train_loss"]).all()
    assert math.isfinite(estimator.mi_) and np.isfinite(estimator.transform(X)).all()
    with pytest.raises(
        DivergenceError,
        match="a non-finite gradient and a train loss of nan at training batch 4 of epoch 2",
    ):
        _cpc(callbacks=[PoisonWeights(13)]).fit(X)


def test_distiller_restores_after_a_fault_at_a_known_step(iris):
    X, y = iris
    # 4 batches per epoch: step 6 is batch 3 (index 2) of epoch 2.
    estimator = _distiller(callbacks=[PoisonWeights(6)], on_divergence="restore").fit(X, y)
    events = [row.get("divergence") for row in estimator.history_]
    assert events[0] is None and events[2] is None and events[3] is None
    (event,) = events[1]
    assert event["batch"] == 2 and "non-finite gradient" in event["reason"]
    assert event["learning_rate"] == pytest.approx(1e-2 / 2)
    assert estimator.net_.optimizer_.param_groups[0]["lr"] == pytest.approx(1e-2 / 2)
    train_batches = [b for b in estimator.history_[1]["batches"] if "train_loss" in b]
    assert len(train_batches) == 3
    assert np.isfinite(estimator.history_[:, "train_loss"]).all()
    assert np.isfinite(estimator.predict_proba(X)).all() and estimator.score(X, y) > 0.5
    with pytest.raises(
        DivergenceError,
        match="Distillation diverged: a non-finite gradient and a train loss of nan "
        "at training batch 3 of epoch 2",
    ):
        _distiller(callbacks=[PoisonWeights(6)]).fit(X, y)


@pytest.mark.parametrize("make", [_cpc, _distiller], ids=["cpc", "distiller"])
def test_bad_on_divergence_is_rejected(make):
    with pytest.raises(ValueError, match="on_divergence"):
        make(on_divergence="ignore").fit(np.zeros((4, 48)), [0, 1, 0, 1])
