"""Behaviour of ContrastivePredictiveCoding (small sequences, tiny networks)."""

import math
import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from sk_mlcpc import DivergenceError
from sk_mlcpc._engine.sequence_net import PredictiveBoundLoss
from sk_mlcpc._estimators.sequence import ContrastivePredictiveCoding
from sk_mlcpc._math import bounds
from sk_mlcpc.datasets import make_frequency_sequences, make_switching_ar

# Tiny and fast: the tests check behaviour, not accuracy (except the end-to-end test).
# 48 time steps, windows of 8 with hop 4: 11 windows, 2 steps ahead, 9 anchor times.
# The MLP window encoder with the last context (the defaults before the convolutional
# encoder and multiscale pooling); tests/estimators/test_sequence_collections.py tests
# the new defaults.
FAST = {
    "encoder": "mlp",
    "pooling": "last",
    "window": 8,
    "stride": 4,
    "prediction_steps": 2,
    "n_components": 16,
    "latent_dim": 16,
    "hidden_layer_sizes": (32,),
    "batch_size": 16,
    "max_epochs": 3,
    "random_state": 0,
}


def _fast(**params):
    return ContrastivePredictiveCoding(**{**FAST, **params})


@pytest.fixture(scope="module")
def data():
    X, y = make_frequency_sequences(300, 48, random_state=0)
    return X, y


@pytest.fixture(scope="module")
def fresh():
    X, y = make_frequency_sequences(300, 48, random_state=1)
    return X, y


@pytest.fixture(scope="module")
def fitted(data):
    """Default objective (ML-CPC, alpha="auto"); 300 sequences, 30 for validation and 30
    for the estimate."""
    X, _ = data
    return _fast(max_epochs=10, learning_rate=1e-2).fit(X)


def _contexts(est, X):
    """Latents and contexts at every window, ``(n, L, d)``, from the fitted module."""
    x = est._to_sequences(np.asarray(X, dtype=np.float32), torch.device("cpu"))
    with torch.no_grad():
        return est.module_.eval().contexts(x)


# ---------------------------------------------------------------------------------------
# Fitted attributes and shapes
# ---------------------------------------------------------------------------------------


def test_fitted_attributes(fitted):
    est = fitted
    assert est.n_features_in_ == 48
    assert est.n_timesteps_ == 48
    assert est.n_windows_ == 11
    assert est.n_anchor_times_ == 9
    assert est.batch_size_ == 16
    assert est.eval_batch_size_ == 16
    assert est.mi_per_step_.shape == (2,)
    assert np.all(np.isfinite(est.mi_per_step_))
    assert est.mi_ == pytest.approx(est.mi_per_step_.mean())
    assert est.alpha_ == pytest.approx(bounds.valid_alpha_range(16).low)
    assert est.alpha_ == pytest.approx(16 / (16 * 15 + 1))
    assert est.bound_validity_ == "claimed"
    assert est.mi_cap_ == pytest.approx(math.log(16 * 15 + 1))
    assert est.mi_ <= est.mi_cap_
    assert est.module_ is est.net_.module_
    assert len(est.module_.predictors) == 2
    assert est.device_ == torch.device("cpu")
    assert 1 <= est.n_epochs_ <= 10
    assert est.n_epochs_ == len(est.history_)


def test_history_records_held_out_mi(fitted, data):
    history = fitted.history_
    valid_mi = np.array(history[:, "valid_mi"])
    np.testing.assert_allclose(valid_mi, -np.array(history[:, "valid_loss"]))
    np.testing.assert_allclose(
        np.array(history[:, "train_mi"]), -np.array(history[:, "train_loss"])
    )
    # Early stopping chooses the epoch on the validation sequences; mi_ is read on the
    # test sequences, which chose nothing: it is evaluate() on them.
    X, _ = data
    split = fitted._split(len(X))
    assert len(split.test) == 30 and not set(split.test) & set(split.valid)
    assert fitted.mi_ == pytest.approx(fitted.evaluate(X[split.test]).mi, abs=1e-6)


def test_training_increases_the_bound(data):
    X, _ = data
    est = _fast(max_epochs=10, learning_rate=1e-2, early_stopping=False).fit(X)
    valid_mi = np.array(est.history_[:, "valid_mi"])
    assert valid_mi[-1] > valid_mi[0] + 0.5
    # Without early stopping the last epoch is kept; mi_ is its bound on the test rows.
    split = est._split(len(X))
    assert est.mi_ == pytest.approx(est.evaluate(X[split.test]).mi, abs=1e-6)
    assert est.mi_ > valid_mi[0] + 0.5


@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_transform_shape_dtype_and_pooling(data, pooling):
    X, _ = data
    est = _fast(pooling=pooling, max_epochs=1).fit(X)
    Z = est.transform(X)
    assert Z.shape == (300, 16)
    assert Z.dtype == np.float32
    _, contexts = _contexts(est, X)
    expected = contexts[:, -1] if pooling == "last" else contexts.mean(dim=1)
    np.testing.assert_allclose(Z, expected.numpy(), rtol=1e-5, atol=1e-6)


def test_pooling_last_and_mean_differ(data):
    X, _ = data
    last = _fast(max_epochs=1).fit(X)
    mean = clone(last).set_params(pooling="mean").fit(X)
    assert not np.allclose(last.transform(X), mean.transform(X))


def test_fit_transform_matches_fit_then_transform(data):
    X, _ = data
    np.testing.assert_array_equal(
        _fast(max_epochs=1).fit_transform(X), _fast(max_epochs=1).fit(X).transform(X)
    )


def test_transform_accepts_a_single_sequence(fitted, data):
    X, _ = data
    np.testing.assert_allclose(fitted.transform(X[:1]), fitted.transform(X)[:1], atol=1e-6)


# ---------------------------------------------------------------------------------------
# Channels
# ---------------------------------------------------------------------------------------


def test_channels_are_read_time_major():
    X, _ = make_frequency_sequences(64, 48, n_channels=3, random_state=0)
    X = X + np.array([0.0, 10.0, -10.0])[np.arange(X.shape[1]) % 3]  # channel offsets
    est = _fast(n_channels=3, max_epochs=1, validation_fraction=0.5).fit(X)
    assert est.n_features_in_ == 144
    assert est.n_timesteps_ == 48
    assert est.channel_mean_.shape == est.channel_scale_.shape == (3,)
    np.testing.assert_allclose(est.channel_mean_, [0.0, 10.0, -10.0], atol=0.2)
    # Columns 0 .. window * n_channels - 1 are the first window (time steps 0..7),
    # time-major: changing the first column after it (time step 8, channel 0) leaves the
    # first latent unchanged and changes the next two (time steps 4..11 and 8..15).
    X_changed = X.copy()
    X_changed[:, 8 * 3] += 5.0
    z, _ = _contexts(est, X)
    z_changed, _ = _contexts(est, X_changed)
    torch.testing.assert_close(z[:, 0], z_changed[:, 0], rtol=0, atol=0)
    assert not torch.allclose(z[:, 1], z_changed[:, 1])
    assert not torch.allclose(z[:, 2], z_changed[:, 2])
    torch.testing.assert_close(z[:, 3:], z_changed[:, 3:], rtol=0, atol=0)


def test_each_channel_is_used():
    X, _ = make_frequency_sequences(64, 48, n_channels=2, random_state=0)
    est = _fast(n_channels=2, max_epochs=1).fit(X)
    base = est.transform(X)
    for channel in range(2):
        X_changed = X.copy()
        X_changed[:, channel::2] += 3.0
        assert not np.allclose(base, est.transform(X_changed))


def test_width_not_a_multiple_of_channels_raises(data):
    X, _ = data
    with pytest.raises(ValueError, match="not a multiple of n_channels=5"):
        _fast(n_channels=5).fit(X)


# ---------------------------------------------------------------------------------------
# No leak of the future into the context
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("window", "stride"), [(4, 4), (8, 4)])
def test_future_changes_positive_scores_but_not_the_context(data, window, stride):
    X, _ = data
    est = _fast(window=window, stride=stride, max_epochs=2).fit(X)
    module = est.module_.eval()
    anchor = 2
    # Every sample after the anchor window's last one: t >= anchor * stride + window.
    first_future = anchor * stride + window
    X_future = X.copy()
    X_future[:, first_future:] = np.random.default_rng(0).normal(size=X[:, first_future:].shape)
    z, c = _contexts(est, X)
    z_future, c_future = _contexts(est, X_future)
    # The context and the latents up to the anchor time are bit-for-bit identical.
    torch.testing.assert_close(c[:, : anchor + 1], c_future[:, : anchor + 1], rtol=0, atol=0)
    torch.testing.assert_close(z[:, : anchor + 1], z_future[:, : anchor + 1], rtol=0, atol=0)
    # Scores with every sequence anchored at `anchor`: the positives (diagonal) change
    # for every step ahead, because their targets are future windows.
    order = torch.full((len(X), est.n_anchor_times_), anchor)
    x, x_future = (
        est._to_sequences(np.asarray(A, dtype=np.float32), torch.device("cpu"))
        for A in (X, X_future)
    )
    with torch.no_grad():
        scores, scores_future = module(x, order), module(x_future, order)
    for step in range(est.prediction_steps):
        positives = scores[step, 0].diagonal()
        positives_future = scores_future[step, 0].diagonal()
        assert not torch.allclose(positives, positives_future)
    # And the anchor's context does depend on its own (past) window.
    X_past = X.copy()
    X_past[:, first_future - 1] += 5.0
    _, c_past = _contexts(est, X_past)
    assert not torch.allclose(c[:, anchor], c_past[:, anchor])


def test_samples_after_the_last_window_are_ignored():
    # 34 time steps, windows of 8 with hop 4: 7 windows, the last one covers samples
    # 24..31, and samples 32 and 33 lie in no window.
    X, _ = make_frequency_sequences(64, 34, random_state=0)
    est = _fast(max_epochs=1).fit(X)
    assert est.n_windows_ == 7
    X_tail = X.copy()
    X_tail[:, 32:] += 100.0
    np.testing.assert_array_equal(est.transform(X), est.transform(X_tail))
    X_last = X.copy()
    X_last[:, 31] += 1.0
    assert not np.array_equal(est.transform(X), est.transform(X_last))


# ---------------------------------------------------------------------------------------
# score
# ---------------------------------------------------------------------------------------


def test_score_is_deterministic_and_close_to_mi(fitted, fresh):
    X_new, _ = fresh
    first = fitted.score(X_new)
    assert first == fitted.score(X_new)
    assert isinstance(first, float)
    assert first == pytest.approx(fitted.mi_, abs=0.5)
    per_step = fitted.score_per_step(X_new)
    assert per_step.shape == (2,)
    assert first == pytest.approx(per_step.mean())


def test_score_is_lower_without_temporal_structure(fitted, fresh):
    X_new, _ = fresh
    # White noise with the data's per-time variance: nothing about the future is
    # predictable, so the bound should be near zero (it can be negative).
    noise = np.random.default_rng(0).normal(size=X_new.shape) * X_new.std()
    assert fitted.score(noise) < min(0.2, fitted.score(X_new) - 0.5)


def test_score_ignores_y(fitted, fresh):
    X_new, y_new = fresh
    assert fitted.score(X_new, y_new) == fitted.score(X_new)


def test_score_on_fewer_sequences_than_a_batch_warns(fitted, fresh):
    X_new, _ = fresh
    with pytest.warns(UserWarning, match="Only 5 sequences"):
        value = fitted.score(X_new[:5])
    assert math.isfinite(value)


def test_score_needs_two_sequences(fitted, fresh):
    X_new, _ = fresh
    with pytest.raises(ValueError, match="minimum of 2"):
        fitted.score(X_new[:1])


@pytest.mark.parametrize("objective", sorted(bounds.BOUNDS))
def test_every_objective_fits(data, objective):
    X, _ = data
    est = _fast(objective=objective, max_epochs=2).fit(X)
    assert math.isfinite(est.mi_)
    expected_alpha = (
        bounds.valid_alpha_range(16, objective=objective).low
        if objective in bounds.ALPHA_OBJECTIVES
        else 1.0
    )
    assert est.alpha_ == pytest.approx(expected_alpha)
    assert est.bound_validity_ == bounds.bound_validity(objective, 16, alpha=est.alpha_)


def test_alpha_auto_uses_the_smaller_batch(data):
    X, _ = data
    est = _fast(batch_size=32, eval_batch_size=8, max_epochs=1).fit(X)
    assert (est.batch_size_, est.eval_batch_size_) == (32, 8)
    assert est.alpha_ == pytest.approx(bounds.valid_alpha_range(8).low)
    assert est.mi_cap_ == pytest.approx(bounds.cap("ml_cpc", 8, alpha=est.alpha_))


def test_explicit_alpha_and_cpc_cap(data):
    X, _ = data
    est = _fast(alpha=1.0, max_epochs=1).fit(X)
    assert est.alpha_ == 1.0
    assert est.bound_validity_ == "proven"
    cpc = _fast(objective="cpc", max_epochs=1).fit(X)
    assert cpc.mi_cap_ == pytest.approx(math.log(16))
    assert cpc.mi_ <= cpc.mi_cap_ + 1e-6


def test_alpha_larger_than_the_batch_raises(data):
    X, _ = data
    with pytest.raises(ValueError, match="alpha"):
        _fast(alpha=100.0).fit(X)


# ---------------------------------------------------------------------------------------
# Reproducibility, clone, pickle, meta-estimators
# ---------------------------------------------------------------------------------------


def test_same_seed_same_result_and_global_rng_untouched(data):
    X, _ = data
    torch_state = torch.get_rng_state()
    numpy_state = np.random.get_state()  # noqa: NPY002 - the global state must be untouched
    first = _fast(random_state=3).fit(X)
    assert torch.equal(torch_state, torch.get_rng_state())
    after = np.random.get_state()  # noqa: NPY002
    assert np.array_equal(numpy_state[1], after[1]) and numpy_state[2] == after[2]
    second = _fast(random_state=3).fit(X)
    assert first.mi_ == second.mi_
    np.testing.assert_array_equal(first.transform(X), second.transform(X))
    np.testing.assert_array_equal(
        np.array(first.history_[:, "train_loss"]), np.array(second.history_[:, "train_loss"])
    )


def test_different_seeds_differ(data):
    X, _ = data
    values = {_fast(random_state=seed, max_epochs=1).fit(X).mi_ for seed in range(3)}
    assert len(values) == 3


def test_clone_gives_an_unfitted_copy(fitted):
    cloned = clone(fitted)
    assert not hasattr(cloned, "mi_")
    assert cloned.get_params() == fitted.get_params()


def test_pickle_round_trip(fitted, fresh):
    X_new, _ = fresh
    loaded = pickle.loads(pickle.dumps(fitted))
    assert loaded.mi_ == fitted.mi_
    assert loaded.score(X_new) == fitted.score(X_new)
    np.testing.assert_array_equal(loaded.transform(X_new), fitted.transform(X_new))
    assert next(loaded.module_.parameters()).device == torch.device("cpu")


def test_pipeline_ignores_labels_and_probes_well():
    # End to end: the frequency class is invisible to a linear model of the raw samples
    # (random phase) but readable from CPC contexts.
    X, y = make_frequency_sequences(600, 64, n_classes=3, random_state=0)
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    raw = cross_val_score(probe, X, y, cv=3).mean()
    pipe = make_pipeline(
        _fast(batch_size=32, max_epochs=10, learning_rate=1e-2),
        StandardScaler(),
        LogisticRegression(max_iter=1000),
    )
    cpc = cross_val_score(pipe, X, y, cv=3).mean()
    assert raw < 0.5
    assert cpc > 0.8


def test_grid_search_on_the_held_out_bound(data):
    X, _ = data
    search = GridSearchCV(_fast(max_epochs=1), {"n_components": [4, 8]}, cv=2).fit(X)
    assert search.best_params_["n_components"] in (4, 8)
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))


def test_set_output_pandas(fitted, data):
    X, _ = data
    est = clone(fitted).set_params(max_epochs=1).fit(X).set_output(transform="pandas")
    Z = est.transform(X)
    assert isinstance(Z, pd.DataFrame)
    assert list(Z.columns) == [f"contrastivepredictivecoding{i}" for i in range(16)]
    assert list(Z.columns) == list(est.get_feature_names_out())


def test_pandas_input_and_inputs_not_modified(data):
    X, _ = data
    frame = pd.DataFrame(X, columns=[f"t{i}" for i in range(48)])
    before = frame.copy()
    X_copy = X.copy()
    est = _fast(max_epochs=1).fit(frame)
    est.transform(frame)
    est.score(frame)
    pd.testing.assert_frame_equal(frame, before)
    _fast(max_epochs=1).fit(X).transform(X)
    np.testing.assert_array_equal(X, X_copy)
    assert list(est.feature_names_in_) == list(frame.columns)


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int64])
def test_input_dtypes(data, dtype):
    X, _ = data
    est = _fast(max_epochs=1).fit((X * 10).astype(dtype))
    assert est.transform((X * 10).astype(dtype)).dtype == np.float32


def test_multichannel_switching_ar_fits():
    X, y = make_switching_ar(64, 40, n_channels=2, random_state=0)
    est = _fast(n_channels=2, max_epochs=1).fit(X, y)
    assert est.transform(X).shape == (64, 16)


# ---------------------------------------------------------------------------------------
# Invalid inputs and parameters
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n_timesteps", "params"),
    [(15, {}), (3, {}), (40, {"window": 16, "stride": 8, "prediction_steps": 4})],
)
def test_too_short_sequences_raise(n_timesteps, params):
    X = np.random.default_rng(0).normal(size=(50, n_timesteps))
    est = _fast(**params)
    needed = est.window + est.prediction_steps * est.stride
    with pytest.raises(ValueError, match=rf"too short.*at least .* = {needed} time steps"):
        est.fit(X)


def test_exactly_long_enough_sequences_fit():
    # window + prediction_steps * stride = 8 + 2 * 4 = 16: one anchor time.
    X = np.random.default_rng(0).normal(size=(50, 16))
    est = _fast(max_epochs=1).fit(X)
    assert est.n_anchor_times_ == 1
    assert math.isfinite(est.mi_)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_input_raises(data, fitted, bad):
    X, _ = data
    X_bad = X.copy()
    X_bad[3, 5] = bad
    with pytest.raises(ValueError, match=r"NaN|infinity"):
        _fast().fit(X_bad)
    with pytest.raises(ValueError, match=r"NaN|infinity"):
        fitted.transform(X_bad)
    with pytest.raises(ValueError, match=r"NaN|infinity"):
        fitted.score(X_bad)


def test_wrong_width_after_fit_raises(fitted, data):
    X, _ = data
    with pytest.raises(ValueError, match="48 features"):
        fitted.transform(X[:, :44])
    with pytest.raises(ValueError, match="48 features"):
        fitted.score(np.hstack([X, X]))


def test_three_dimensional_input_is_read_as_cases_channels_timepoints(data):
    # aeon's layout (n_cases, n_channels, n_timepoints): 24 channels of 2 time points
    # are too short for windows of 8.
    X, _ = data
    with pytest.raises(ValueError, match="too short"):
        _fast().fit(X.reshape(300, 24, 2))
    est = _fast(max_epochs=1).fit(X.reshape(300, 2, 24))
    assert (est.n_channels_, est.n_timesteps_) == (2, 24)


def test_too_few_sequences_raise(data):
    X, _ = data
    with pytest.raises(ValueError, match="Too few sequences"):
        _fast().fit(X[:3])


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("window", 0),
        ("stride", 0),
        ("prediction_steps", 0),
        ("n_channels", 0),
        ("pooling", "max"),
        ("objective", "infonce"),
        ("alpha", -1.0),
        ("alpha", "small"),
        ("batch_size", 1),
        ("preprocessing", "quantile"),
        ("validation_fraction", 1.0),
    ],
)
def test_invalid_parameters_raise(data, param, value):
    X, _ = data
    with pytest.raises(ValueError, match=param):
        _fast(**{param: value}).fit(X)


@pytest.mark.parametrize("sizes", [(0,), (-3,), (2.5,), ((4, 4),)])
def test_invalid_hidden_layer_sizes_raise(data, sizes):
    X, _ = data
    with pytest.raises(ValueError, match="hidden_layer_sizes"):
        _fast(hidden_layer_sizes=sizes).fit(X)


def test_linear_window_encoder(data):
    X, _ = data
    est = _fast(hidden_layer_sizes=(), max_epochs=1).fit(X)
    assert len(est.module_.encoder) == 1
    assert est.transform(X).shape == (300, 16)


def test_non_callback_raises_type_error(data):
    X, _ = data
    with pytest.raises(TypeError, match="Callback"):
        _fast(callbacks=["not a callback"]).fit(X)


def test_unfitted_raises(data):
    X, _ = data
    est = _fast()
    for method in (est.transform, est.score, est.score_per_step):
        with pytest.raises(NotFittedError):
            method(X)


def test_divergence_raises_with_advice(data):
    X, _ = data
    with pytest.raises(DivergenceError, match="learning_rate"):
        _fast(objective="nwj", learning_rate=1e6, max_epochs=5).fit(X)


@pytest.mark.parametrize("objective", ["ml_cpc", "dv"])
def test_huge_learning_rate_never_returns_nan(data, objective):
    X, _ = data
    try:
        est = _fast(objective=objective, learning_rate=1e6, max_epochs=3).fit(X)
    except DivergenceError:
        return
    assert not math.isnan(est.mi_)
    assert not math.isnan(est.score(X))


def test_verbose_prints_and_quiet_by_default(data, capsys):
    X, _ = data
    _fast(max_epochs=1).fit(X)
    assert capsys.readouterr().out == ""
    _fast(max_epochs=1, verbose=1).fit(X)
    assert "valid_mi" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------
# scikit-learn's estimator checks on the 2-D form
# ---------------------------------------------------------------------------------------

# One-sample windows, one step ahead: any X with at least 2 columns is long enough, so the
# checks exercise the API contract on their own small tabular data.
CHECKED = [
    ContrastivePredictiveCoding(
        window=1,
        stride=1,
        prediction_steps=1,
        n_components=4,
        latent_dim=4,
        hidden_layer_sizes=(8,),
        max_epochs=2,
        random_state=0,
    ),
]

EXPECTED_FAILED_CHECKS: dict[str, str] = {}


@parametrize_with_checks(CHECKED, expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


# ---------------------------------------------------------------------------------------
# Score matrices and loss against a direct computation
# ---------------------------------------------------------------------------------------


def test_score_matrices_match_a_direct_computation(fitted, data):
    X, _ = data
    est = fitted
    z, c = _contexts(est, X[:5])
    order = torch.stack([torch.randperm(est.n_anchor_times_) for _ in range(5)])
    x = est._to_sequences(np.asarray(X[:5], dtype=np.float32), torch.device("cpu"))
    with torch.no_grad():
        scores = est.module_.eval()(x, order)
    assert scores.shape == (2, est.n_anchor_times_, 5, 5)
    for step in (1, 2):
        weight = est.module_.predictors[step - 1].weight
        for draw in (0, est.n_anchor_times_ - 1):
            for i in range(5):
                for j in range(5):
                    # Row i: anchor sequence i at its time; column j: sequence j's future
                    # latent `step` windows after sequence j's own anchor time.
                    t_i, t_j = int(order[i, draw]), int(order[j, draw])
                    expected = (weight @ c[i, t_i]) @ z[j, t_j + step]
                    assert scores[step - 1, draw, i, j].item() == pytest.approx(
                        expected.item(), rel=1e-4, abs=1e-5
                    )


@pytest.mark.parametrize("objective", ["ml_cpc", "cpc", "nwj", "mine"])
def test_loss_is_minus_the_mean_bound_over_matrices(objective):
    from sk_mlcpc._engine.sequence_net import PredictiveBoundLoss

    scores = torch.randn(3, 4, 8, 8, dtype=torch.float64)
    alpha = bounds.valid_alpha_range(8).low
    loss = PredictiveBoundLoss(objective, alpha=alpha)
    per_step = loss.per_step(scores)
    reference = PredictiveBoundLoss(objective, alpha=alpha)  # fresh MINE state
    expected = torch.stack(
        [torch.stack([reference.estimate(scores[k, r]) for r in range(4)]).mean() for k in range(3)]
    )
    torch.testing.assert_close(per_step, expected)
    torch.testing.assert_close(loss(scores, training=False), -expected.mean())
    if objective == "ml_cpc":
        # Independently of BoundLoss: the functions of sk_mlcpc.bounds, matrix by matrix.
        direct = torch.stack([bounds.ml_cpc(scores[1, r], alpha=alpha) for r in range(4)])
        torch.testing.assert_close(per_step[1], direct.mean())


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_half_precision_training(data, precision):
    X, _ = data
    full = _fast().fit(X)
    half = _fast(precision=precision).fit(X)
    assert half.net_.precision == precision
    assert half.net_.grad_scaler_.is_enabled() is (precision == "fp16")
    assert np.isfinite(half.history_[:, "train_loss"]).all()
    assert abs(half.mi_ - full.mi_) < 0.3
    assert half.transform(X).dtype == np.float32


def test_half_precision_scores_are_bounded_in_float32():
    scores = torch.randn(2, 3, 8, 8).to(torch.bfloat16)
    per_step = PredictiveBoundLoss("ml_cpc", alpha=1.0).per_step(scores)
    assert per_step.dtype == torch.float32
    expected = PredictiveBoundLoss("ml_cpc", alpha=1.0).per_step(scores.float())
    torch.testing.assert_close(per_step, expected)


def test_compile_compiles_the_network(data, monkeypatch):
    X, _ = data
    real_compile = torch.compile
    compiled = []

    def eager_compile(target, **options):
        compiled.append(type(target).__name__)
        return real_compile(target, backend="eager")  # what is compiled, not how

    monkeypatch.setattr(torch, "compile", eager_compile)
    estimator = _fast(compile=True, max_epochs=2).fit(X)
    assert compiled == ["PredictiveCodingModule"]  # not the criterion
    eager = _fast(max_epochs=2).fit(X)
    assert estimator.mi_ == pytest.approx(eager.mi_, abs=1e-4)
