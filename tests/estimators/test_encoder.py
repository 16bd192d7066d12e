"""ContrastiveEncoder: API contract, schedules, views, pipelines and errors."""

import math
import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_wine
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from torch import nn

from sk_mlcpc import ContrastiveEncoder, DivergenceError
from sk_mlcpc._engine.net import AlphaSchedule, scheduled_alpha


def _fast(**params):
    defaults = dict(
        n_components=4, hidden_layer_sizes=(16,), projection_dim=8, max_epochs=3, random_state=0
    )
    return ContrastiveEncoder(**{**defaults, **params})


@pytest.fixture(scope="module")
def wine():
    X, y = load_wine(return_X_y=True)
    return X, y


def test_fit_transform_shapes_dtype_and_names(wine):
    X, _ = wine
    encoder = _fast()
    Z = encoder.fit_transform(X)
    assert Z.shape == (len(X), 4) and Z.dtype == np.float32
    assert encoder.n_components_ == 4 and encoder.n_features_in_ == X.shape[1]
    assert list(encoder.get_feature_names_out()) == [f"contrastiveencoder{i}" for i in range(4)]
    np.testing.assert_array_equal(Z, encoder.transform(X))


def test_set_output_pandas(wine):
    X, _ = wine
    frame = pd.DataFrame(X, columns=[f"c{i}" for i in range(X.shape[1])])
    out = _fast().set_output(transform="pandas").fit(frame).transform(frame)
    assert isinstance(out, pd.DataFrame)
    assert list(out.columns) == [f"contrastiveencoder{i}" for i in range(4)]
    assert list(out.index) == list(frame.index)


def test_reproducible_with_random_state_and_global_rng_untouched(wine):
    X, _ = wine
    state = torch.random.get_rng_state()
    first = _fast(random_state=7).fit_transform(X)
    assert torch.equal(state, torch.random.get_rng_state())
    second = _fast(random_state=7).fit_transform(X)
    third = _fast(random_state=8).fit_transform(X)
    np.testing.assert_array_equal(first, second)
    assert not np.allclose(first, third)


def test_labels_passed_by_a_pipeline_do_not_change_the_encoder(wine):
    X, y = wine
    without = _fast().fit(X).transform(X)
    with_labels = _fast().fit(X, y).transform(X)
    np.testing.assert_array_equal(without, with_labels)


def test_input_is_not_modified(wine):
    X, _ = wine
    X = X.copy()
    before = X.copy()
    _fast().fit(X).transform(X)
    np.testing.assert_array_equal(X, before)


def test_clone_and_pickle_round_trip(wine):
    X, _ = wine
    encoder = _fast().fit(X)
    assert clone(encoder).get_params() == encoder.get_params()
    restored = pickle.loads(pickle.dumps(encoder))
    np.testing.assert_array_equal(restored.transform(X), encoder.transform(X))
    assert restored.score(X) == encoder.score(X)


def test_score_is_repeatable_held_out_and_below_its_cap(wine):
    X, _ = wine
    encoder = _fast(max_epochs=10, batch_size=64).fit(X)
    assert encoder.score(X) == encoder.score(X)
    assert math.isfinite(encoder.mi_)
    assert encoder.score(X[:128]) <= encoder.mi_cap_ + 1e-6
    assert encoder.bound_validity_ == "claimed"  # alpha="auto" lies below 1


def test_training_raises_the_held_out_bound(wine):
    X, _ = wine
    encoder = _fast(max_epochs=25, batch_size=64, learning_rate=3e-3).fit(X)
    valid_mi = encoder.history_[:, "valid_mi"]
    assert valid_mi[-1] > valid_mi[0] + 0.2


def test_embeddings_are_useful_features(wine):
    # A sanity check of the whole method, not a benchmark: contrastive features of the
    # unlabelled rows separate the wine cultivars about as well as the raw features do.
    X, y = wine
    pipe = make_pipeline(
        ContrastiveEncoder(n_components=16, max_epochs=40, batch_size=64, random_state=0),
        LogisticRegression(max_iter=2000),
    )
    accuracy = cross_val_score(pipe, X, y, cv=3).mean()
    assert accuracy > 0.85


def test_pipeline_and_grid_search_end_to_end(wine):
    X, y = wine
    pipe = make_pipeline(_fast(max_epochs=2), LogisticRegression(max_iter=500))
    grid = GridSearchCV(
        pipe,
        {
            "contrastiveencoder__n_components": [2, 4],
            "contrastiveencoder__alpha": [1.0, "auto"],
            "contrastiveencoder__corruption_rate": [0.2, 0.5],
        },
        cv=2,
    ).fit(X, y)
    assert len(grid.cv_results_["params"]) == 8
    assert grid.predict(X).shape == (len(X),)
    assert (
        grid.best_estimator_[0].n_components_
        == grid.best_params_["contrastiveencoder__n_components"]
    )


def test_column_transformer_on_numeric_columns(wine):
    X, y = wine
    frame = pd.DataFrame(X[:, :5], columns=list("abcde"))
    frame["colour"] = np.where(y == 0, "red", "white")
    transformer = ColumnTransformer(
        [("contrastive", _fast(), ["a", "b", "c", "d", "e"])], remainder="drop"
    )
    out = transformer.fit_transform(frame)
    assert out.shape == (len(frame), 4)
    assert list(transformer.get_feature_names_out()) == [
        f"contrastive__contrastiveencoder{i}" for i in range(4)
    ]


# ------------------------------------------------------------------ the alpha curriculum


@pytest.mark.parametrize("kind", ["geometric", "cosine"])
def test_schedule_sets_the_documented_alpha_each_epoch(wine, kind):
    X, _ = wine
    epochs = 6
    encoder = _fast(
        alpha=10.0, alpha_final=0.1, alpha_schedule=kind, max_epochs=epochs, batch_size=64
    ).fit(X)
    recorded = encoder.history_[:, "alpha"]
    t = np.arange(epochs) / (epochs - 1)
    if kind == "geometric":
        expected = 10.0 * (0.1 / 10.0) ** t
    else:
        expected = 0.1 + (10.0 - 0.1) * (1 + np.cos(np.pi * t)) / 2
    np.testing.assert_allclose(recorded, expected, rtol=1e-12)
    assert encoder.alpha_initial_ == 10.0 and encoder.alpha_ == 0.1
    assert encoder.net_.criterion_.alpha == pytest.approx(0.1)


def test_without_schedule_alpha_is_constant_and_auto_is_resolved(wine):
    X, _ = wine
    encoder = _fast(batch_size=64, eval_batch_size=16).fit(X)
    # "auto" is the working limit for the smaller of the two batch sizes.
    assert encoder.alpha_ == pytest.approx(16 / (16 * 15 + 1))
    assert set(encoder.history_[:, "alpha"]) == {encoder.alpha_}


def test_validation_uses_the_final_alpha_throughout(wine):
    X, _ = wine
    scheduled = _fast(alpha=10.0, alpha_final=1.0, alpha_schedule="geometric", batch_size=32)
    scheduled.fit(X)
    # The held-out loss of the last epoch is the bound at alpha_final: recompute it.
    assert scheduled.net_.criterion_.eval_alpha == 1.0
    valid_loss = scheduled.history_[-1, "valid_loss"]
    assert valid_loss == pytest.approx(-scheduled.mi_, abs=1e-5)


def test_scheduled_alpha_edges():
    assert scheduled_alpha("geometric", 10.0, 0.1, 0, 5) == 10.0
    assert scheduled_alpha("geometric", 10.0, 0.1, 4, 5) == pytest.approx(0.1)
    assert scheduled_alpha("geometric", 10.0, 0.1, 9, 5) == pytest.approx(0.1)
    assert scheduled_alpha("cosine", 2.0, 1.0, 0, 1) == 1.0
    assert scheduled_alpha("constant", 3.0, 1.0, 2, 5) == 3.0
    with pytest.raises(ValueError, match="Unknown alpha schedule"):
        scheduled_alpha("linear", 1.0, 0.1, 0, 5)
    with pytest.raises(ValueError, match="positive"):
        AlphaSchedule("geometric", 0.0, 1.0, 5).initialize()


# ------------------------------------------------------------------ views and encoders


class _RecordingView:
    """A user view that records what it was given and shifts every feature by one."""

    def __init__(self):
        self.shapes = []

    def __call__(self, x, generator):
        assert isinstance(generator, torch.Generator)
        self.shapes.append(tuple(x.shape))
        return x + torch.rand(x.shape, generator=generator)


def test_user_callable_view_is_used_as_given(wine):
    X, _ = wine
    view = _RecordingView()
    encoder = _fast(augmentation=view, batch_size=40, max_epochs=2, validation_fraction=0.1)
    encoder.fit(X)
    n_train = len(X) - math.ceil(0.1 * len(X))
    train_calls = 2 * 2 * (n_train // 40)  # two views per batch, two epochs
    assert view.shapes[: train_calls // 2] == [(40, X.shape[1])] * (train_calls // 2)
    assert len(view.shapes) >= train_calls
    assert encoder.net_.view is view and encoder.augmentation is view


def _bad_view(x, generator):
    return x[:, :1]


def _nan_view(x, generator):
    return x * float("nan")


def test_a_view_of_the_wrong_shape_is_reported(wine):
    X, _ = wine
    with pytest.raises(ValueError, match="augmentation must return a tensor shaped like"):
        _fast(augmentation=_bad_view).fit(X)


def test_non_finite_training_raises_divergence_error(wine):
    X, _ = wine
    with pytest.raises(DivergenceError, match="Lower learning_rate"):
        _fast(augmentation=_nan_view).fit(X)


class _TwoLayer(nn.Module):
    def __init__(self, in_features, out_features):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_features, 8), nn.Tanh(), nn.Linear(8, out_features))

    def forward(self, x):
        return self.net(x)


def test_user_encoder_class_and_instance(wine):
    X, _ = wine
    by_class = _fast(encoder=_TwoLayer, n_components=3).fit(X)
    assert by_class.transform(X).shape == (len(X), 3)
    assert isinstance(by_class.encoder_, _TwoLayer)

    instance = _TwoLayer(X.shape[1], 5)
    before = {k: v.clone() for k, v in instance.state_dict().items()}
    by_instance = _fast(encoder=instance, n_components=2).fit(X)
    # The width comes from the module, and the user's module is not trained in place.
    assert by_instance.n_components_ == 5
    assert by_instance.transform(X).shape == (len(X), 5)
    for key, value in instance.state_dict().items():
        assert torch.equal(value, before[key])
    assert by_instance.encoder_ is not instance


def test_bad_encoders_are_reported(wine):
    X, _ = wine
    with pytest.raises(ValueError, match=r"must map \(n, 13\) to \(n, width\)"):
        _fast(encoder=nn.Flatten(0)).fit(X)
    with pytest.raises(ValueError, match="encoder failed on a batch of shape"):
        _fast(encoder=nn.Linear(3, 2)).fit(X)
    with pytest.raises((TypeError, ValueError), match="encoder"):
        _fast(encoder=int).fit(X)


@pytest.mark.parametrize("objective", ["cpc", "nwj", "js", "alpha_cpc"])
def test_other_objectives_train(wine, objective):
    X, _ = wine
    encoder = _fast(objective=objective, batch_size=64).fit(X)
    assert math.isfinite(encoder.mi_)
    assert encoder.transform(X).shape == (len(X), 4)


def test_training_on_every_row_without_validation(wine):
    X, _ = wine
    encoder = _fast(validation_fraction=0.0, batch_size=64).fit(X)
    assert not hasattr(encoder, "mi_")
    assert "valid_loss" not in encoder.history_[-1]
    assert math.isfinite(encoder.score(X))


# ------------------------------------------------------------------ errors


def test_errors_name_the_problem(wine):
    X, _ = wine
    bad = X.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        _fast().fit(bad)
    fitted = _fast().fit(X)
    with pytest.raises(ValueError, match="13 features"):
        fitted.transform(X[:, :5])
    with pytest.raises(ValueError, match="NaN"):
        fitted.transform(bad)
    with pytest.raises(ValueError, match="Too few samples"):
        _fast().fit(X[:3])
    with pytest.raises(ValueError, match=r"alpha=200\.0 exceeds"):
        _fast(alpha=200.0, batch_size=64).fit(X)
    with pytest.raises(ValueError, match="validation_fraction > 0"):
        _fast(early_stopping=True, validation_fraction=0.0).fit(X)
    with pytest.raises(ValueError, match="augmentation"):
        _fast(augmentation="blur").fit(X)
    with pytest.raises(NotFittedError):
        _fast().transform(X)


def test_score_warns_on_fewer_rows_than_a_batch(wine):
    X, _ = wine
    # An explicit evaluation size that the rows cannot fill warns...
    fitted = _fast(batch_size=32, eval_batch_size=32).fit(X)
    with pytest.warns(UserWarning, match="scoring one batch of 10"):
        fitted.score(X[:10])
    # ...while eval_batch_size="auto" (the default) scores all the rows given, silently.
    auto = _fast(batch_size=32).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        assert auto.evaluate(X[:10]).batch_size == 10


def test_early_stopping_restores_the_best_epoch(wine):
    X, _ = wine
    encoder = _fast(
        early_stopping=True, n_iter_no_change=2, tol=10.0, max_epochs=30, batch_size=32
    ).fit(X)
    # A tolerance no improvement can meet stops after the patience runs out.
    assert encoder.n_epochs_ == 3
    # The first epoch's weights are restored: the validation rows give its valid_loss
    # again. mi_ is read on the test rows, which chose nothing.
    split = encoder._split(len(X))
    assert len(split.valid) == len(split.test) == 18
    valid = encoder.evaluate(X[split.valid])
    assert valid.mi == pytest.approx(-encoder.history_[0, "valid_loss"], abs=1e-5)
    assert encoder.mi_ == pytest.approx(encoder.evaluate(X[split.test]).mi, abs=1e-6)


def test_float64_offsets_survive_preprocessing(wine):
    """Issue 17.3: a float32 cast before standardising made every output row identical."""
    X, _ = wine
    X = X.astype(np.float64)
    reference = _fast(preprocessing="standard").fit(X).transform(X)
    shifted = _fast(preprocessing="standard").fit(X + 1e8).transform(X + 1e8)
    assert len(np.unique(shifted.round(4), axis=0)) > len(X) // 2
    np.testing.assert_allclose(shifted, reference, atol=1e-3)
