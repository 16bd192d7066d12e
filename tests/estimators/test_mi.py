"""Behaviour of MutualInformationEstimator and estimate_mi (small data, tiny networks)."""

import math
import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from skorch.callbacks import Callback

from sk_mlcpc import (
    DivergenceError,
    MutualInformationEstimator,
    SaturationWarning,
    bounds,
    critics,
    estimate_mi,
    search_mi,
)
from sk_mlcpc._engine.evaluation import JACKKNIFE_GROUPS
from sk_mlcpc.datasets import make_correlated_gaussians

# Tiny and fast: the tests check behaviour, not accuracy (except the end-to-end test).
FAST = {
    "hidden_layer_sizes": (16,),
    "n_components": 8,
    # The critic and schedule these tests were written with (0.1.0): a network alone.
    "activation": "relu",
    "lr_schedule": None,
    "baseline": None,
    "batch_size": 32,
    "max_epochs": 3,
    "random_state": 0,
}


def _fast(**params):
    return MutualInformationEstimator(**{**FAST, **params})


@pytest.fixture(scope="module")
def data():
    X, Y, mi = make_correlated_gaussians(800, 2, mi=1.0, random_state=0)
    return X, Y, mi


@pytest.fixture(scope="module")
def fresh():
    X, Y, _ = make_correlated_gaussians(800, 2, mi=1.0, random_state=1)
    return X, Y


@pytest.fixture(scope="module")
def small():
    X, Y, _ = make_correlated_gaussians(300, 2, mi=1.0, random_state=2)
    return X, Y


@pytest.fixture(scope="module")
def fitted(data):
    """A trained default (ML-CPC, alpha="auto", separable_additive) estimator.

    800 rows: 560 for training, 80 for validation (early stopping), 160 for the
    estimate, scored in one batch of 160 (eval_batch_size="auto").
    """
    X, Y, _ = data
    return _fast(max_epochs=15, learning_rate=5e-3).fit(X, Y)


# ---------------------------------------------------------------------------------------
# Fitted attributes
# ---------------------------------------------------------------------------------------


def test_fitted_attributes(fitted):
    est = fitted
    assert est.n_features_in_ == 2
    assert est.n_features_y_ == 2
    assert est.batch_size_ == 32
    assert est.validation_batch_size_ == 80
    assert est.eval_batch_size_ == 160
    assert isinstance(est.mi_, float) and math.isfinite(est.mi_)
    assert isinstance(est.mi_std_, float) and math.isfinite(est.mi_std_) and est.mi_std_ >= 0
    low, high = est.mi_ci_
    assert low <= est.mi_ <= high
    assert high - low > 0
    assert est.mi_cap_ == pytest.approx(
        bounds.cap(est.objective, est.eval_batch_size_, alpha=est.eval_alpha_)
    )
    assert est.mi_ <= est.mi_cap_
    # alpha is resolved for the training batch in training, for the test batch in mi_.
    assert est.alpha_ == bounds.resolve_alpha("auto", "ml_cpc", 32)
    assert est.eval_alpha_ == bounds.resolve_alpha("auto", "ml_cpc", 160)
    assert est.net_.criterion_.eval_alpha == bounds.resolve_alpha("auto", "ml_cpc", 80)
    assert est.bound_validity_ == "claimed"
    assert isinstance(est.saturated_, bool) and isinstance(est.converged_, bool)
    assert math.isfinite(est.saturation_gain_)
    assert isinstance(est.critic_, torch.nn.Module)
    assert est.critic_ is est.net_.module_
    assert est.device_ == torch.device("cpu")
    assert est.reference_y_.shape == (560, 2)
    assert 1 <= est.n_epochs_ <= 15
    assert est.n_epochs_ == len(est.history_)


def test_history_records_mi_as_minus_the_loss(fitted):
    history = fitted.history_
    assert len(history) == fitted.n_epochs_
    train_mi = np.array(history[:, "train_mi"])
    valid_mi = np.array(history[:, "valid_mi"])
    assert train_mi.shape == valid_mi.shape == (fitted.n_epochs_,)
    np.testing.assert_allclose(train_mi, -np.array(history[:, "train_loss"]))
    np.testing.assert_allclose(valid_mi, -np.array(history[:, "valid_loss"]))
    assert np.all(np.isfinite(train_mi)) and np.all(np.isfinite(valid_mi))


def _rows(est, n_samples):
    split = est._split(n_samples)
    train_rows, valid_rows, test_rows = split.train, split.valid, split.test
    return train_rows, valid_rows, test_rows


def test_training_validation_and_test_rows_partition_the_data(fitted, data):
    X, _, _ = data
    train_rows, valid_rows, test_rows = _rows(fitted, len(X))
    assert (len(train_rows), len(valid_rows), len(test_rows)) == (560, 80, 160)
    everything = np.concatenate([train_rows, valid_rows, test_rows])
    np.testing.assert_array_equal(np.sort(everything), np.arange(len(X)))


def test_mi_is_the_bound_on_the_test_rows(fitted, data):
    X, Y, _ = data
    _, _, test_rows = _rows(fitted, len(X))
    result = fitted.evaluate(X[test_rows], Y[test_rows])
    assert result.batch_size == fitted.eval_batch_size_
    assert result.mi == fitted.mi_
    assert result.std_error == fitted.mi_std_ and result.ci == fitted.mi_ci_
    assert result.cap == fitted.mi_cap_ and result.validity == fitted.bound_validity_


def test_the_test_rows_influence_nothing_but_mi(data):
    """Early stopping and the epoch kept never see the rows that produce mi_."""
    X, Y, _ = data
    params = {"max_epochs": 12, "learning_rate": 5e-3, "n_iter_no_change": 2}
    reference = _fast(**params).fit(X, Y)
    _, _, test_rows = _rows(reference, len(X))
    X_other, Y_other = X.copy(), Y.copy()
    rng = np.random.default_rng(5)
    X_other[test_rows] = rng.normal(size=(len(test_rows), X.shape[1]))
    Y_other[test_rows] = rng.normal(size=(len(test_rows), Y.shape[1]))
    other = _fast(**params).fit(X_other, Y_other)
    assert other.n_epochs_ == reference.n_epochs_
    assert other.history_[:, "valid_loss"] == reference.history_[:, "valid_loss"]
    for a, b in zip(reference.critic_.parameters(), other.critic_.parameters(), strict=True):
        assert torch.equal(a, b)
    # Independent test rows carry no information: the bound (of I = 0) falls to or below
    # zero, while the real test rows give a clearly positive estimate.
    assert other.mi_ < 0.1 < 0.5 < reference.mi_


def test_last_valid_mi_is_the_bound_on_the_validation_rows_without_early_stopping(small):
    X, Y = small
    est = _fast(early_stopping=False).fit(X, Y)
    assert est.n_epochs_ == FAST["max_epochs"]
    _, valid_rows, _ = _rows(est, len(X))
    # valid_mi is the critic's own bound (training and early stopping do not clamp);
    # evaluate() clamps at score_ceiling_, fitted after training. Compare like with like.
    est.score_ceiling_ = None
    result = est.evaluate(X[valid_rows], Y[valid_rows])
    assert result.batch_size == est.validation_batch_size_ == len(valid_rows)
    assert result.mi == pytest.approx(est.history_[-1, "valid_mi"], abs=1e-5)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"objective": "ml_cpc", "alpha": "auto"}, "claimed"),
        ({"objective": "ml_cpc", "alpha": 1.0}, "proven"),
        ({"objective": "ml_cpc", "alpha": 1e-4}, "invalid"),
        ({"objective": "cpc"}, "proven"),
        ({"objective": "dv"}, "invalid"),
    ],
)
def test_bound_validity(small, params, expected):
    X, Y = small
    if expected == "invalid" and params["objective"] == "ml_cpc":
        with pytest.warns(UserWarning, match=r"alpha=0.0001 is below the range .* 'invalid'"):
            est = _fast(max_epochs=1, **params).fit(X, Y)
    else:
        est = _fast(max_epochs=1, **params).fit(X, Y)
    assert est.bound_validity_ == expected
    assert est.bound_validity_ == bounds.bound_validity(
        est.objective, est.eval_batch_size_, alpha=est.eval_alpha_
    )
    assert est.mi_cap_ == pytest.approx(
        bounds.cap(est.objective, est.eval_batch_size_, alpha=est.eval_alpha_)
    )


@pytest.mark.parametrize("objective", sorted(bounds.BOUNDS))
def test_every_objective_fits(small, objective):
    X, Y = small
    est = _fast(objective=objective, max_epochs=2).fit(X, Y)
    assert math.isfinite(est.mi_)
    assert math.isfinite(est.score(X, Y))


@pytest.mark.parametrize("critic", critics.CRITICS)
def test_every_critic_fits(small, critic):
    X, Y = small
    est = _fast(critic=critic, max_epochs=2).fit(X, Y)
    assert math.isfinite(est.mi_)
    assert np.all(np.isfinite(est.score_samples(X[:20], Y[:20])))


# ---------------------------------------------------------------------------------------
# score
# ---------------------------------------------------------------------------------------


def test_score_on_fresh_data_is_close_to_mi(fitted, fresh):
    X_new, Y_new = fresh
    score = fitted.score(X_new, Y_new)
    assert isinstance(score, float)
    assert fitted.mi_ > 0.2  # it learnt something
    assert abs(score - fitted.mi_) < 0.3


def test_score_on_independent_pairs_is_near_or_below_zero(fitted, fresh):
    X_new, Y_new = fresh
    shuffled = Y_new[np.random.default_rng(0).permutation(len(Y_new))]
    assert fitted.score(X_new, shuffled) < 0.1


def test_score_is_deterministic(fitted, fresh):
    X_new, Y_new = fresh
    assert fitted.score(X_new, Y_new) == fitted.score(X_new, Y_new)


def test_score_on_fewer_rows_than_a_fixed_batch_warns(data, fresh):
    X, Y, _ = data
    est = _fast(eval_batch_size=64).fit(X, Y)
    assert est.eval_batch_size_ == 64
    X_new, Y_new = fresh
    with pytest.warns(UserWarning, match="rows given"):
        value = est.score(X_new[:10], Y_new[:10])
    assert isinstance(value, float) and math.isfinite(value)


def test_auto_score_takes_all_rows_in_one_batch_with_alpha_at_that_size(fitted, fresh):
    X_new, Y_new = fresh
    for n_rows in (10, 300, 800):
        result = fitted.evaluate(X_new[:n_rows], Y_new[:n_rows])
        assert result.batch_size == n_rows
        assert result.alpha == bounds.resolve_alpha("auto", "ml_cpc", n_rows)
        assert result.cap == pytest.approx(bounds.cap("ml_cpc", n_rows, alpha=result.alpha))
        assert fitted.score(X_new[:n_rows], Y_new[:n_rows]) == result.mi


def test_score_on_full_batches_does_not_warn(fitted, fresh):
    X_new, Y_new = fresh
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fitted.score(X_new[:100], Y_new[:100])


# ---------------------------------------------------------------------------------------
# score_samples
# ---------------------------------------------------------------------------------------


def test_score_samples_dependent_and_independent(fitted, fresh):
    X_new, Y_new = fresh
    pmi = fitted.score_samples(X_new, Y_new)
    assert pmi.shape == (len(X_new),)
    assert np.all(np.isfinite(pmi))
    assert abs(pmi.mean() - fitted.score(X_new, Y_new)) < 0.3
    shuffled = Y_new[np.random.default_rng(0).permutation(len(Y_new))]
    assert fitted.score_samples(X_new, shuffled).mean() < 0.1


def test_score_samples_subset_and_order_invariance(fitted, fresh):
    X_new, Y_new = fresh
    full = fitted.score_samples(X_new, Y_new)
    np.testing.assert_allclose(fitted.score_samples(X_new[:7], Y_new[:7]), full[:7], atol=1e-5)
    order = np.random.default_rng(1).permutation(len(X_new))
    np.testing.assert_allclose(
        fitted.score_samples(X_new[order], Y_new[order]), full[order], atol=1e-5
    )


# ---------------------------------------------------------------------------------------
# transform and feature names
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("critic", ["separable", "separable_additive", "bilinear"])
def test_transform(small, critic):
    X, Y = small
    est = _fast(critic=critic, max_epochs=1, n_components=5).fit(X, Y)
    Z = est.transform(X)
    assert Z.shape == (len(X), 5)
    assert Z.dtype == np.float32
    assert np.all(np.isfinite(Z))
    names = est.get_feature_names_out()
    assert list(names) == [f"mutualinformationestimator{i}" for i in range(5)]


def test_fit_transform_matches_fit_then_transform(small):
    X, Y = small
    Z = _fast(critic="separable", max_epochs=1).fit_transform(X, Y)
    np.testing.assert_array_equal(Z, _fast(critic="separable", max_epochs=1).fit(X, Y).transform(X))


def test_concat_critic_has_no_transform(small):
    X, Y = small
    est = _fast(critic="concat", max_epochs=1).fit(X, Y)
    with pytest.raises(AttributeError) as excinfo:
        est.transform(X)
    # available_if puts the explanation in the chained exception.
    messages = f"{excinfo.value} {excinfo.value.__cause__}"
    assert "concat" in messages
    assert "separable" in messages


def test_concat_critic_hasattr_transform_is_false():
    est = _fast(critic="concat")
    assert not hasattr(est, "transform")
    assert not hasattr(est, "fit_transform")


def test_set_output_pandas(small):
    X, Y = small
    est = _fast(critic="separable", max_epochs=1, n_components=3).fit(X, Y)
    est.set_output(transform="pandas")
    Z = est.transform(X)
    assert isinstance(Z, pd.DataFrame)
    assert list(Z.columns) == list(est.get_feature_names_out())
    assert Z.shape == (len(X), 3)


# ---------------------------------------------------------------------------------------
# Reproducibility and randomness
# ---------------------------------------------------------------------------------------


def test_same_seed_same_result_and_global_rng_untouched(small):
    X, Y = small
    torch_state = torch.get_rng_state()
    numpy_state = np.random.get_state()  # noqa: NPY002 - the global state must be untouched
    first = _fast(critic="separable", random_state=3).fit(X, Y)
    assert torch.equal(torch_state, torch.get_rng_state())
    after = np.random.get_state()  # noqa: NPY002
    assert np.array_equal(numpy_state[1], after[1]) and numpy_state[2] == after[2]
    second = _fast(critic="separable", random_state=3).fit(X, Y)
    assert first.mi_ == second.mi_
    np.testing.assert_array_equal(first.transform(X), second.transform(X))
    np.testing.assert_array_equal(
        np.array(first.history_[:, "train_loss"]), np.array(second.history_[:, "train_loss"])
    )


def test_different_seeds_differ(small):
    X, Y = small
    # The trained critic's own validation bound: after one epoch mi_ itself may be the
    # constant critic's 0 for more than one seed.
    values = {_fast(random_state=seed, max_epochs=1).fit(X, Y).valid_mi_ for seed in range(3)}
    assert len(values) == 3


# ---------------------------------------------------------------------------------------
# clone, pickle
# ---------------------------------------------------------------------------------------


def test_clone_gives_an_unfitted_copy(fitted):
    cloned = clone(fitted)
    assert not hasattr(cloned, "mi_")
    assert cloned.get_params() == fitted.get_params()


def test_pickle_round_trip(small, fresh):
    X, Y = small
    X_new, Y_new = fresh
    est = _fast(critic="separable", max_epochs=2).fit(X, Y)
    loaded = pickle.loads(pickle.dumps(est))
    assert loaded.device_ == torch.device("cpu")
    assert loaded.mi_ == est.mi_
    assert loaded.score(X_new, Y_new) == est.score(X_new, Y_new)
    np.testing.assert_array_equal(loaded.transform(X_new), est.transform(X_new))
    np.testing.assert_array_equal(
        loaded.score_samples(X_new[:50], Y_new[:50]), est.score_samples(X_new[:50], Y_new[:50])
    )
    assert next(loaded.critic_.parameters()).device == torch.device("cpu")


# ---------------------------------------------------------------------------------------
# Meta-estimators
# ---------------------------------------------------------------------------------------


def test_grid_search(small):
    X, Y = small
    search = GridSearchCV(
        _fast(max_epochs=2),
        {"alpha": [1.0, "auto"], "critic": ["separable", "bilinear"]},
        cv=2,
    ).fit(X, Y)
    assert math.isfinite(search.best_score_)
    assert search.best_params_["critic"] in ("separable", "bilinear")
    assert math.isfinite(search.best_estimator_.mi_)


def test_pipeline_and_cross_val_score(small):
    X, Y = small
    pipe = make_pipeline(StandardScaler(), _fast(max_epochs=2)).fit(X, Y)
    assert math.isfinite(pipe.score(X, Y))
    scores = cross_val_score(_fast(max_epochs=2), X, Y, cv=2)
    assert scores.shape == (2,) and np.all(np.isfinite(scores))


# ---------------------------------------------------------------------------------------
# Accepted inputs
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int64])
def test_input_dtypes(small, dtype):
    X, Y = small
    X_typed = (X * 10).astype(dtype)
    est = _fast(max_epochs=1).fit(X_typed, Y)
    assert math.isfinite(est.mi_)
    assert math.isfinite(est.score(X_typed, Y))


def test_one_dimensional_y(small):
    X, Y = small
    est = _fast(max_epochs=1).fit(X, Y[:, 0])
    assert est.n_features_y_ == 1
    assert math.isfinite(est.score(X, Y[:, 0]))
    assert math.isfinite(est.score(X, Y[:, :1]))
    assert est.score_samples(X, Y[:, 0]).shape == (len(X),)
    assert est.reference_y_.shape[1] == 1


def test_pandas_input_sets_feature_names(small):
    X, Y = small
    X_df = pd.DataFrame(X, columns=["first", "second"])
    Y_df = pd.DataFrame(Y, columns=["u", "v"])
    est = _fast(max_epochs=1).fit(X_df, Y_df)
    assert list(est.feature_names_in_) == ["first", "second"]
    assert math.isfinite(est.score(X_df, Y_df))
    est_series = _fast(max_epochs=1).fit(X_df, Y_df["u"])
    assert est_series.n_features_y_ == 1


def test_inputs_not_modified(small):
    X, Y = small
    X32, Y32 = X.astype(np.float32), Y.astype(np.float32)  # no cast: no implicit copy
    X_copy, Y_copy = X32.copy(), Y32.copy()
    est = _fast(max_epochs=1).fit(X32, Y32)
    est.score(X32, Y32)
    est.score_samples(X32, Y32)
    est.transform(X32)
    np.testing.assert_array_equal(X32, X_copy)
    np.testing.assert_array_equal(Y32, Y_copy)


# ---------------------------------------------------------------------------------------
# Invalid inputs
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("side", ["X", "Y"])
def test_non_finite_input_raises(small, bad, side):
    X, Y = small
    X, Y = X.copy(), Y.copy()
    (X if side == "X" else Y)[3, 1] = bad
    with pytest.raises(ValueError, match=side):
        _fast().fit(X, Y)


def test_non_finite_input_at_score_raises(fitted, fresh):
    X_new, Y_new = fresh
    Y_bad = Y_new.copy()
    Y_bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fitted.score(X_new, Y_bad)
    with pytest.raises(ValueError, match="NaN"):
        fitted.score_samples(X_new, Y_bad)


def test_mismatched_rows_raise(small):
    X, Y = small
    with pytest.raises(ValueError, match="rows"):
        _fast().fit(X, Y[:-1])


@pytest.mark.parametrize("n_samples", [1, 3])
def test_too_few_samples_raise(small, n_samples):
    X, Y = small
    with pytest.raises(ValueError, match="sample"):
        _fast().fit(X[:n_samples], Y[:n_samples])


def test_three_dimensional_input_raises(small):
    X, Y = small
    with pytest.raises(ValueError, match="dim 3"):
        _fast().fit(X[:, :, None], Y)
    with pytest.raises(ValueError, match="dim 3"):
        _fast().fit(X, Y[:, :, None])


def test_wrong_widths_after_fit_raise(fitted, fresh):
    X_new, Y_new = fresh
    with pytest.raises(ValueError, match="features"):
        fitted.score(X_new[:, :1], Y_new)
    with pytest.raises(ValueError, match="features"):
        fitted.transform(np.c_[X_new, X_new])
    with pytest.raises(ValueError, match="features"):
        fitted.score_samples(X_new[:, :1], Y_new)
    with pytest.raises(ValueError, match="columns of Y"):
        fitted.score(X_new, Y_new[:, :1])
    with pytest.raises(ValueError, match="columns of Y"):
        fitted.score_samples(X_new, np.c_[Y_new, Y_new])


def test_y_none_raises(small):
    X, _ = small
    with pytest.raises(ValueError, match="requires y"):
        _fast().fit(X, None)


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("objective", "infonce"),
        ("critic", "dot"),
        ("activation", "sigmoid"),
        ("alpha", 0.0),
        ("alpha", -1.0),
        ("alpha", "max"),
        ("batch_size", 1),
        ("validation_fraction", 1.0),
        ("preprocessing", "minmax"),
    ],
)
def test_invalid_parameters_raise(small, param, value):
    X, Y = small
    with pytest.raises(ValueError, match=param):
        _fast(**{param: value}).fit(X, Y)


@pytest.mark.parametrize("sizes", [(0,), (16, -1), (1.5,), ((4, 4),)])
def test_invalid_hidden_layer_sizes_raise(small, sizes):
    X, Y = small
    with pytest.raises(ValueError, match="hidden_layer_sizes"):
        _fast(hidden_layer_sizes=sizes).fit(X, Y)


def test_empty_hidden_layer_sizes(small):
    X, Y = small
    est = _fast(critic="separable", hidden_layer_sizes=(), max_epochs=1).fit(X, Y)
    assert math.isfinite(est.mi_)
    with pytest.raises(ValueError, match="at least one hidden layer"):
        _fast(critic="concat", hidden_layer_sizes=()).fit(X, Y)


def test_alpha_larger_than_the_batch_raises(small):
    X, Y = small
    with pytest.raises(ValueError, match="alpha"):
        _fast(alpha=100.0).fit(X, Y)


def test_alpha_is_ignored_by_objectives_without_alpha(small):
    X, Y = small
    est = _fast(objective="cpc", alpha=100.0, max_epochs=1).fit(X, Y)
    assert math.isfinite(est.mi_)


@pytest.mark.parametrize("entry", [object(), "print_log", ("name", object())])
def test_non_callback_raises_type_error(small, entry):
    X, Y = small
    with pytest.raises(TypeError, match="Callback"):
        _fast(callbacks=[entry]).fit(X, Y)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_without_cuda_raises(small):
    X, Y = small
    with pytest.raises(ValueError, match="CUDA"):
        _fast(device="cuda").fit(X, Y)


def test_unfitted_raises(small):
    from sklearn.exceptions import NotFittedError

    X, Y = small
    est = _fast()
    with pytest.raises(NotFittedError):
        est.score(X, Y)
    with pytest.raises(NotFittedError):
        est.score_samples(X, Y)
    with pytest.raises(NotFittedError):
        est.transform(X)


# ---------------------------------------------------------------------------------------
# Divergence
# ---------------------------------------------------------------------------------------


def test_divergence_raises_with_advice(small):
    X, Y = small
    with pytest.raises(DivergenceError, match="learning_rate") as excinfo:
        _fast(objective="nwj", learning_rate=1e6, max_epochs=5).fit(X, Y)
    assert isinstance(excinfo.value, FloatingPointError)


@pytest.mark.parametrize("objective", ["ml_cpc", "dv", "smile"])
def test_huge_learning_rate_never_returns_nan(small, objective):
    X, Y = small
    try:
        est = _fast(objective=objective, learning_rate=1e6, max_epochs=3).fit(X, Y)
    except DivergenceError:
        return
    assert not math.isnan(est.mi_)
    assert not math.isnan(est.score(X, Y))


# ---------------------------------------------------------------------------------------
# Callbacks, early stopping, verbosity
# ---------------------------------------------------------------------------------------


class EpochCounter(Callback):
    def __init__(self, log=None):
        self.log = log

    def initialize(self):
        self.n_calls_ = 0
        return self

    def on_epoch_end(self, net, **kwargs):
        self.n_calls_ += 1
        if self.log is not None:
            self.log.append(len(net.history))


def test_user_callbacks_are_called_on_copies(small):
    X, Y = small
    log = []
    unnamed = EpochCounter(log)
    named = EpochCounter()
    est = _fast(callbacks=[unnamed, ("counter", named)], max_epochs=3).fit(X, Y)
    callbacks = dict(est.net_.callbacks_)
    assert callbacks["counter"].n_calls_ == est.n_epochs_
    assert callbacks["user_0_EpochCounter"].n_calls_ == est.n_epochs_
    assert callbacks["user_0_EpochCounter"].log == list(range(1, est.n_epochs_ + 1))
    # The user's own objects are left alone (documented: copies are used).
    assert not hasattr(named, "n_calls_")
    assert not hasattr(unnamed, "n_calls_")
    assert log == []
    assert est.callbacks[0] is unnamed


def test_early_stopping_stops_before_max_epochs(small):
    X, Y = small
    est = _fast(max_epochs=200, n_iter_no_change=2, learning_rate=1e-2).fit(X, Y)
    assert est.n_epochs_ < 200
    assert math.isfinite(est.mi_)


def test_verbose_prints_epoch_table(small, capsys):
    X, Y = small
    _fast(verbose=1, max_epochs=2).fit(X, Y)
    out = capsys.readouterr().out
    assert "epoch" in out
    assert "valid_mi" in out
    assert "train_loss" in out


def test_progress_bar_shows_batch_losses_as_numbers(small, capsys):
    from sk_mlcpc._engine.fitting import _ProgressBar

    X, Y = small
    estimator = _fast(verbose=2, max_epochs=1).fit(X, Y)
    assert "it/s" in capsys.readouterr().err
    # During a pass the batch losses are device tensors; the bar shows numbers.
    (bar,) = [cb for _, cb in estimator.net_.callbacks_ if isinstance(cb, _ProgressBar)]
    estimator.net_.history.new_batch()
    estimator.net_.history.record_batch("train_loss", torch.tensor(0.5))
    shown = bar._get_postfix_dict(estimator.net_)["train_loss"]
    assert type(shown) is float and shown == 0.5


def test_quiet_by_default(small, capsys):
    X, Y = small
    est = _fast(max_epochs=2).fit(X, Y)
    est.score(X, Y)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == ""


# ---------------------------------------------------------------------------------------
# End to end
# ---------------------------------------------------------------------------------------


def test_estimate_on_low_mi_gaussian_is_accurate_and_not_above_truth():
    X, Y, true_mi = make_correlated_gaussians(4000, 2, mi=0.5, random_state=0)
    est = MutualInformationEstimator(
        hidden_layer_sizes=(32,), n_components=8, max_epochs=15, learning_rate=1e-3, random_state=0
    ).fit(X, Y)
    assert abs(est.mi_ - true_mi) < 0.15
    assert est.mi_ <= true_mi + 2 * est.mi_std_


def test_estimate_mi_equals_the_estimators_mi(small):
    X, Y = small
    params = {**FAST, "max_epochs": 2}
    mi = estimate_mi(X, Y, **params)
    assert isinstance(mi, float)
    assert mi == MutualInformationEstimator(**params).fit(X, Y).mi_


def test_too_few_test_rows_for_an_interval_warn_that_it_is_undefined():
    X, Y, _ = make_correlated_gaussians(40, 2, mi=0.5, random_state=0)
    with pytest.warns(UserWarning, match="mi_std_ and mi_ci_ are undefined"):
        est = _fast(max_epochs=1, test_fraction=0.075).fit(X, Y)
    assert est.eval_batch_size_ == 3
    assert math.isnan(est.mi_std_) and all(math.isnan(end) for end in est.mi_ci_)
    assert math.isfinite(est.mi_)


def test_concat_critic_has_no_feature_names_out():
    assert not hasattr(_fast(critic="concat"), "get_feature_names_out")


@pytest.mark.parametrize("objective", ["ml_cpc", "dv"])
def test_exploding_critic_raises_instead_of_an_absurd_estimate(objective):
    X, Y, _ = make_correlated_gaussians(600, 2, mi=0.5, random_state=0)
    with pytest.raises(DivergenceError, match="learning_rate"):
        _fast(objective=objective, learning_rate=1e6, max_epochs=5).fit(X, Y)


def test_score_samples_of_a_single_pair(small):
    X, Y = small
    estimator = _fast(max_epochs=2).fit(X, Y)
    # The normaliser is the fixed reference sample, so one pair is enough.
    single = estimator.score_samples(X[:1], Y[:1])
    assert single.shape == (1,)
    assert single[0] == pytest.approx(estimator.score_samples(X[:5], Y[:5])[0], abs=1e-5)


# ---------------------------------------------------------------------------------------
# Diagnostics of the estimate: saturation, convergence, the jackknife interval
# ---------------------------------------------------------------------------------------


def test_a_batch_limited_estimate_is_flagged_saturated():
    # CPC cannot exceed log n: at MI 6 with 200 test rows (cap 5.3) it is held by the batch.
    X, Y, _ = make_correlated_gaussians(1000, 4, mi=6.0, random_state=0)
    with pytest.warns(SaturationWarning, match="limited by the evaluation batch of 200 rows"):
        est = _fast(objective="cpc", max_epochs=10, learning_rate=5e-3).fit(X, Y)
    assert est.saturated_ is True and est.saturation_gain_ > 0.1
    assert est.evaluate(X[:200], Y[:200]).saturated is True


@pytest.mark.parametrize("objective", ["ml_cpc", "cpc", "nwj"])
def test_a_converged_estimate_far_below_its_cap_raises_no_flag(objective):
    X, Y, _ = make_correlated_gaussians(4000, 2, mi=0.3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SaturationWarning)
        warnings.simplefilter("error", ConvergenceWarning)
        est = _fast(objective=objective, max_epochs=30, learning_rate=5e-3).fit(X, Y)
    assert est.saturated_ is False and abs(est.saturation_gain_) < 0.01
    assert est.converged_ is True and est.n_epochs_ < 30


def test_training_stopped_while_still_improving_warns_and_is_recorded(small):
    X, Y = small
    with pytest.warns(ConvergenceWarning, match=r"still improving .* Raise max_epochs"):
        est = _fast(max_epochs=2, learning_rate=5e-3).fit(X, Y)
    assert est.converged_ is False


def test_jackknife_error_shrinks_with_the_rows_and_its_interval_is_symmetric(fitted, fresh):
    X_new, Y_new = fresh
    small_rows = fitted.evaluate(X_new[:200], Y_new[:200])
    all_rows = fitted.evaluate(X_new, Y_new)
    assert 0 < all_rows.std_error < small_rows.std_error
    # Four times the rows: about half the standard error.
    assert 0.3 < all_rows.std_error / small_rows.std_error < 0.8
    low, high = all_rows.ci
    assert high - all_rows.mi == pytest.approx(all_rows.mi - low)
    t = stats.t.ppf(0.975, JACKKNIFE_GROUPS - 1)
    assert high - low == pytest.approx(2 * t * all_rows.std_error)


def test_jackknife_matches_a_direct_computation(fitted, fresh):
    """The interval is the grouped jackknife of the bound on sub-matrices of one score matrix."""
    X_new, Y_new = fresh
    n = 100
    result = fitted.evaluate(X_new[:n], Y_new[:n])
    x, y = fitted._preprocess(
        np.asarray(X_new[:n], dtype=np.float32), np.asarray(Y_new[:n], dtype=np.float32)
    )
    order = torch.randperm(n, generator=torch.Generator().manual_seed(fitted.net_.eval_seed))
    with torch.no_grad():
        scores = fitted.critic_(x[order], y[order]).double()
    alpha = bounds.resolve_alpha("auto", "ml_cpc", n)
    assert float(bounds.ml_cpc(scores, alpha=alpha)) == pytest.approx(result.mi, abs=1e-5)
    groups = np.arange(n) % JACKKNIFE_GROUPS
    replicates = np.array(
        [
            float(bounds.ml_cpc(scores[groups != g][:, groups != g], alpha=alpha))
            for g in range(JACKKNIFE_GROUPS)
        ]
    )
    variance = (
        (JACKKNIFE_GROUPS - 1) / JACKKNIFE_GROUPS * np.sum((replicates - replicates.mean()) ** 2)
    )
    assert result.std_error == pytest.approx(math.sqrt(variance), rel=1e-4)


# ---------------------------------------------------------------------------------------
# Precision: float64 input is preprocessed before the cast to float32 (issue 17.3)
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("preprocessing", "change"),
    [
        ("standard", lambda a: a + 1e8),
        ("quantile", lambda a: a + 1e8),
        ("standard", lambda a: a * 1e-40),
        ("quantile", lambda a: a * 1e-40),
    ],
    ids=["offset-standard", "offset-quantile", "tiny-scale-standard", "tiny-scale-quantile"],
)
def test_float64_offsets_and_tiny_scales_survive_preprocessing(data, preprocessing, change):
    X, Y, _ = data
    X, Y = X.astype(np.float64), Y.astype(np.float64)
    params = {"max_epochs": 8, "learning_rate": 5e-3, "preprocessing": preprocessing}
    reference = _fast(**params).fit(X, Y)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="Casting")
        changed = _fast(**params).fit(change(X), change(Y))
    assert changed.mi_ == pytest.approx(reference.mi_, abs=0.05)
    assert changed.mi_ > 0.5


def test_a_cast_that_merges_values_warns_with_the_fix(data):
    X, Y, _ = data
    X = X.astype(np.float64) * 1e-44  # float32 subnormals: a handful of values remain
    with pytest.warns(UserWarning, match=r"Casting X to float32 .* merges distinct values"):
        _fast(max_epochs=1, preprocessing=None).fit(X, Y)


# ---------------------------------------------------------------------------------------
# Model selection by the held-out bound, reported on rows the search never saw (14.5)
# ---------------------------------------------------------------------------------------


def test_search_reports_on_rows_that_neither_training_nor_the_search_saw(data, monkeypatch):
    X, Y, _ = data
    seen_rows: list[int] = []
    real_fit = MutualInformationEstimator.fit

    def recording_fit(self, X_fit, y, **fit_params):
        seen_rows.append(len(X_fit))
        return real_fit(self, X_fit, y, **fit_params)

    monkeypatch.setattr(MutualInformationEstimator, "fit", recording_fit)
    grid = {"hidden_layer_sizes": [(8,), (32,)]}
    fixed = {"n_components": 8, "batch_size": 32, "max_epochs": 4}
    result = search_mi(X, Y, grid, cv=2, random_state=0, **fixed)
    # 160 rows set aside; 2 candidates x 2 folds of the other 640, then a refit on them.
    assert seen_rows == [320, 320, 320, 320, 640]
    assert result.estimate.batch_size == 160
    assert result.best_params == result.search.best_params_
    assert result.best_params["hidden_layer_sizes"] in grid["hidden_layer_sizes"]
    # The winner has the highest mean validation bound.
    means = result.search.cv_results_["mean_test_score"]
    assert means[result.search.best_index_] == max(means)
    monkeypatch.undo()
    again = estimate_mi(X, Y, search=grid, search_cv=2, random_state=0, **fixed)
    assert again == result.estimate.mi


def test_search_refuses_too_few_rows():
    X, Y, _ = make_correlated_gaussians(20, 2, mi=1.0, random_state=0)
    with pytest.raises(ValueError, match="Too few samples"):
        search_mi(X, Y, {"hidden_layer_sizes": [(8,)]}, cv=3)
