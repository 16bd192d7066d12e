"""The fit skeleton every estimator shares, tested once over all four estimators.

:class:`~sk_mlcpc._estimators.base.ContrastiveEstimator` owns the ``fit_params`` check, the
split and its seeds, warm starts, parameter validation and storage, the held-out bound
(``mi_`` and its diagnostics, ``evaluate`` and ``score``), persistence and feature names.
Each test here runs against every estimator that has the behaviour, with tiny networks
and a few dozen rows: the tests check the contract, not accuracy.
"""

from __future__ import annotations

import math
import pickle
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_iris
from sklearn.utils._param_validation import InvalidParameterError

from sk_mlcpc import (
    ContrastiveDistillationClassifier,
    ContrastiveEncoder,
    ContrastivePredictiveCoding,
    MIEstimate,
    MutualInformationEstimator,
)
from sk_mlcpc.datasets import make_correlated_gaussians, make_frequency_sequences


def _paired(n_rows: int, seed: int) -> tuple:
    X, Y, _ = make_correlated_gaussians(n_rows, 2, mi=1.0, random_state=seed)
    return X, Y


def _rows(n_rows: int, seed: int) -> tuple:
    return (_paired(n_rows, seed)[0],)


def _sequences(n_rows: int, seed: int) -> tuple:
    X, _ = make_frequency_sequences(n_rows, 24, random_state=seed)
    return (X,)


def _labelled(n_rows: int, seed: int) -> tuple:
    # Iris with the classes interleaved (0, 1, 2, 0, ...): every prefix of 3 rows or more
    # holds all the classes, so a warm start on a few rows fails for its size alone.
    X, y = load_iris(return_X_y=True)
    rng = np.random.default_rng(seed)
    by_class = [rng.permutation(np.flatnonzero(y == label)) for label in range(3)]
    order = np.stack(by_class, axis=1).ravel()[:n_rows]
    return X[order], y[order]


@dataclass(frozen=True)
class Case:
    """One estimator with tiny settings, its data, and what the skeleton gives it."""

    cls: type
    params: dict[str, Any]
    data: Callable[[int, int], tuple]  # (n_rows, seed) -> the arguments of fit
    n_rows: int  # rows of the fits below (their held-out splits give a finite mi_std_)
    min_rows: int  # the fewest rows a fit accepts (one fewer is "Too few")
    bound: bool = True  # reports mi_ and its diagnostics, evaluate and score
    transformer: bool = True

    @property
    def name(self) -> str:
        return self.cls.__name__

    def make(self, **overrides):
        return self.cls(**{**self.params, **overrides})

    def fit_data(self, n_rows: int | None = None, seed: int = 0) -> tuple:
        return self.data(self.n_rows if n_rows is None else n_rows, seed)

    def output(self, estimator, arguments: tuple) -> np.ndarray:
        """What the fitted model gives on new rows: embeddings, or class probabilities."""
        if self.transformer:
            return estimator.transform(arguments[0])
        return estimator.predict_proba(arguments[0])


_COMMON = {"max_epochs": 2, "random_state": 0, "device": "cpu"}
CASES = [
    # 120 rows: 84 for training, 12 for validation, 24 for the estimate.
    Case(
        MutualInformationEstimator,
        {"hidden_layer_sizes": (8,), "n_components": 4, "batch_size": 32, **_COMMON},
        _paired,
        n_rows=120,
        min_rows=6,  # 2 for training, 2 for validation, 2 for the estimate
    ),
    # 120 rows: 108 for training, 12 held out for the estimate.
    Case(
        ContrastiveEncoder,
        {
            "n_components": 4,
            "hidden_layer_sizes": (8,),
            "projection_dim": 4,
            "batch_size": 32,
            **_COMMON,
        },
        _rows,
        n_rows=120,
        min_rows=4,
    ),
    # 60 sequences of 24 steps: 48 for training, 12 held out (eval_batch_size_ = 12).
    Case(
        ContrastivePredictiveCoding,
        {
            "window": 8,
            "stride": 4,
            "prediction_steps": 2,
            "n_components": 4,
            "latent_dim": 4,
            "hidden_layer_sizes": (8,),
            "batch_size": 16,
            **_COMMON,
        },
        _sequences,
        n_rows=60,
        min_rows=6,  # 2 for training, 2 for validation, 2 for the estimate
    ),
    # Iris, early stopping on (the default): 135 rows for training, 15 held out.
    Case(
        ContrastiveDistillationClassifier,
        {
            "teacher_params": {"hidden_layer_sizes": (8,), "max_iter": 50},
            "hidden_layer_sizes": (8,),
            "n_components": 8,
            "n_negatives": 16,
            "batch_size": 32,
            **_COMMON,
        },
        _labelled,
        n_rows=150,
        min_rows=4,
        bound=False,
        transformer=False,
    ),
]
BOUND_CASES = [case for case in CASES if case.bound]
TRANSFORMER_CASES = [case for case in CASES if case.transformer]


def _ids(case: Case) -> str:
    return case.name


over_all = pytest.mark.parametrize("case", CASES, ids=_ids)
over_bound = pytest.mark.parametrize("case", BOUND_CASES, ids=_ids)
over_transformers = pytest.mark.parametrize("case", TRANSFORMER_CASES, ids=_ids)


@pytest.fixture(scope="module")
def fitted():
    """``fitted(case)``: the case's estimator fitted on its data, once per module."""
    cache: dict[str, Any] = {}

    def get(case: Case):
        if case.name not in cache:
            cache[case.name] = case.make().fit(*case.fit_data())
        return cache[case.name]

    return get


def _losses(history) -> list:
    """Every loss and bound of every epoch and batch (not the durations)."""
    return [
        (
            {key: value for key, value in row.items() if key.endswith(("_loss", "_mi"))},
            [
                {key: value for key, value in b.items() if key.endswith("_loss")}
                for b in row["batches"]
            ],
        )
        for row in history
    ]


# ---------------------------------------------------------------------------------------
# fit_params and the number of rows


@over_all
def test_fit_params_are_refused_by_name(case):
    arguments = case.fit_data()
    weights = np.ones(len(arguments[0]))
    with pytest.raises(
        TypeError, match=r"unsupported fit parameters \['groups', 'sample_weight'\]"
    ):
        case.make().fit(*arguments, sample_weight=weights, groups=weights)


@over_all
def test_too_few_rows_are_refused_and_the_fewest_accepted_fit(case):
    arguments = case.fit_data(case.min_rows)
    with pytest.raises(ValueError, match="Too few"):
        case.make().fit(*(array[:-1] for array in arguments))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NaN mi_std_, too many negatives: tested elsewhere
        estimator = case.make().fit(*arguments)
    assert estimator.n_epochs_ == case.params["max_epochs"]


# ---------------------------------------------------------------------------------------
# The split, its seeds and reproducibility


@over_all
@pytest.mark.parametrize("n_samples", [7, 50, 151])
def test_split_is_a_partition_with_named_seeds(case, n_samples):
    estimator = case.make()
    split = estimator._split(n_samples)
    rows = np.concatenate([split.train, split.valid, split.test])
    np.testing.assert_array_equal(np.sort(rows), np.arange(n_samples))
    assert split.n_samples == n_samples
    assert (len(split.valid), len(split.test)) == estimator._held_out_sizes(n_samples)
    assert list(split.seeds) == list(type(estimator)._seed_names)
    assert all(type(seed) is int for seed in split.seeds.values())

    again = case.make()._split(n_samples)
    for part in ("train", "valid", "test"):
        np.testing.assert_array_equal(getattr(again, part), getattr(split, part))
    assert again.seeds == split.seeds

    other = case.make(random_state=1)._split(n_samples)
    assert other.seeds != split.seeds
    assert not np.array_equal(other.train, split.train)


@over_all
def test_same_random_state_same_fit_other_random_state_other_fit(case, fitted):
    arguments = case.fit_data()
    reference = fitted(case)
    same = case.make().fit(*arguments)
    assert _losses(same.history_) == _losses(reference.history_)
    np.testing.assert_array_equal(
        case.output(same, arguments), case.output(reference, arguments), strict=True
    )
    if case.bound:
        assert same.mi_ == reference.mi_

    other = case.make(random_state=1).fit(*arguments)
    assert _losses(other.history_) != _losses(reference.history_)
    assert not np.array_equal(case.output(other, arguments), case.output(reference, arguments))


# ---------------------------------------------------------------------------------------
# Warm start


@over_all
def test_warm_start_needs_rows_for_the_fitted_batch_sizes_and_continues(case):
    arguments = case.fit_data()
    estimator = case.make(warm_start=True).fit(*arguments)
    first = _losses(estimator.history_)
    n_epochs = estimator.n_epochs_

    few = case.fit_data(case.min_rows)
    with pytest.raises(ValueError, match="warm_start continues with the fitted batch sizes"):
        estimator.fit(*few)

    estimator.fit(*arguments)
    assert estimator.n_epochs_ == n_epochs + case.params["max_epochs"]
    assert len(estimator.history_) == estimator.n_epochs_
    assert _losses(estimator.history_)[:n_epochs] == first


# ---------------------------------------------------------------------------------------
# Parameters


@over_all
def test_parameter_constraints_are_the_constructor_parameters(case):
    estimator = case.make()
    assert set(type(estimator)._parameter_constraints) == set(estimator._get_param_names())


@over_all
@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("max_epochs", 0),
        ("learning_rate", -1.0),
        ("validation_fraction", 1.5),
        ("n_iter_no_change", 0),
        ("on_divergence", "ignore"),
    ],
)
def test_invalid_shared_parameter_is_refused_by_name(case, name, value):
    with pytest.raises(InvalidParameterError, match=f"The '{name}' parameter of {case.name}"):
        case.make(**{name: value}).fit(*case.fit_data(case.min_rows))


@over_all
def test_constructor_stores_arguments_unchanged_and_clone_works(case, fitted):
    arguments = {**case.params, "callbacks": [], "hidden_layer_sizes": [8]}
    estimator = case.cls(**arguments)
    params = estimator.get_params(deep=False)
    assert set(params) == set(estimator._get_param_names())
    for name, value in arguments.items():
        assert params[name] is value, name

    copy = clone(estimator)  # sklearn's clone checks that every parameter is kept as given
    assert type(copy) is case.cls
    assert copy.get_params(deep=False) == params

    unfitted = clone(fitted(case))
    assert not hasattr(unfitted, "net_")
    assert unfitted.get_params(deep=False) == fitted(case).get_params(deep=False)


# ---------------------------------------------------------------------------------------
# The held-out bound


_BOUND_ATTRIBUTES = (
    "mi_",
    "mi_std_",
    "mi_ci_",
    "mi_cap_",
    "eval_alpha_",
    "saturated_",
    "saturation_gain_",
    "bound_validity_",
)


def _expected_batch_size(estimator, n_rows: int) -> int:
    # "auto" scores every row in one batch (below the ceiling of 1,024 rows); a fixed
    # size is kept, capped by the rows given.
    if estimator.eval_batch_size == "auto":
        return n_rows
    return min(estimator.eval_batch_size_, n_rows)


@over_bound
def test_fitted_bound_attributes_are_finite_and_consistent(case, fitted):
    estimator = fitted(case)
    for name in _BOUND_ATTRIBUTES:
        assert hasattr(estimator, name), name
    for name in ("mi_", "mi_std_", "mi_cap_", "eval_alpha_", "saturation_gain_"):
        assert math.isfinite(getattr(estimator, name)), name
    assert all(math.isfinite(end) for end in estimator.mi_ci_)
    assert estimator.mi_ci_[0] <= estimator.mi_ <= estimator.mi_ci_[1]
    assert estimator.mi_ <= estimator.mi_cap_
    assert estimator.mi_std_ >= 0
    assert isinstance(estimator.saturated_, bool)
    assert estimator.bound_validity_ in ("proven", "claimed", "invalid")


@over_bound
@pytest.mark.parametrize("n_rows", [40, 8])
def test_evaluate_is_score_with_the_batch_size_of_the_rules(case, fitted, n_rows):
    estimator = fitted(case)
    held_out = case.fit_data(n_rows, seed=1)
    expected = _expected_batch_size(estimator, n_rows)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = estimator.evaluate(*held_out)
        score = estimator.score(*held_out)
    fewer = [w for w in caught if "scoring one batch of" in str(w.message)]
    if expected < estimator.eval_batch_size_ and estimator.eval_batch_size != "auto":
        assert fewer and all(issubclass(w.category, UserWarning) for w in fewer)
    else:
        assert not fewer
    assert isinstance(result, MIEstimate)
    assert result.mi == score
    assert result.batch_size == expected
    assert result.ci[0] <= result.mi <= result.ci[1]
    assert result.mi <= result.cap
    assert result.validity in ("proven", "claimed", "invalid")


@over_bound
def test_tiny_held_out_split_warns_that_mi_std_is_nan(case):
    # The fewest rows hold out 2 for the estimate: too few for a jackknife.
    with pytest.warns(UserWarning, match="too few for an uncertainty"):
        estimator = case.make().fit(*case.fit_data(case.min_rows))
    assert estimator.eval_batch_size_ == 2
    assert math.isnan(estimator.mi_std_)
    assert all(math.isnan(end) for end in estimator.mi_ci_)
    assert math.isfinite(estimator.mi_)


# ---------------------------------------------------------------------------------------
# Persistence

_PLAIN = (int, float, bool, str, tuple, np.ndarray, np.generic)


def _plain_fitted_attributes(estimator) -> dict[str, Any]:
    return {
        name: value
        for name, value in vars(estimator).items()
        if name.endswith("_") and isinstance(value, _PLAIN)
    }


def _save_and_load(estimator, tmp_path):
    path = tmp_path / "model.skmlcpc"
    estimator.save(path)
    return type(estimator).load(path, device="cpu")


def _pickle_round_trip(estimator, tmp_path):
    return pickle.loads(pickle.dumps(estimator))


@over_all
@pytest.mark.parametrize(
    "round_trip", [_save_and_load, _pickle_round_trip], ids=["save_load", "pickle"]
)
def test_round_trip_keeps_outputs_and_fitted_attributes(case, fitted, tmp_path, round_trip):
    estimator = fitted(case)
    new_rows = case.fit_data(40, seed=1)
    restored = round_trip(estimator, tmp_path)

    np.testing.assert_array_equal(
        case.output(restored, new_rows), case.output(estimator, new_rows), strict=True
    )
    assert restored.score(*new_rows) == estimator.score(*new_rows)
    assert _losses(restored.history_) == _losses(estimator.history_)

    expected = _plain_fitted_attributes(estimator)
    assert "n_epochs_" in expected and "batch_size_" in expected
    missing = sorted(set(expected) - set(vars(restored)))
    assert not missing, f"not restored: {missing}"
    for name, value in expected.items():
        again = getattr(restored, name)
        assert type(again) is type(value), name
        np.testing.assert_equal(again, value, err_msg=name)
        if isinstance(value, np.ndarray):
            assert (again.dtype, again.shape) == (value.dtype, value.shape), name


# ---------------------------------------------------------------------------------------
# Feature names


@over_transformers
def test_feature_names_out_are_the_class_name_and_an_index(case, fitted):
    estimator = fitted(case)
    width = case.output(estimator, case.fit_data(5, seed=1)).shape[1]
    names = estimator.get_feature_names_out()
    prefix = case.name.lower()
    np.testing.assert_array_equal(names, [f"{prefix}{i}" for i in range(width)])


@over_bound
def test_the_estimate_rows_choose_nothing(case):
    # With early stopping on, the rows that produce mi_ are disjoint from those that
    # choose the epoch: replacing them with noise changes mi_ and nothing else.
    estimator = case.make(early_stopping=True, n_iter_no_change=1, tol=0.0)
    arguments = case.fit_data()
    real = clone(estimator).fit(*arguments)
    split = estimator._split(len(arguments[0]))
    assert len(split.test) >= 2 and not set(split.test) & set(split.valid)
    rng = np.random.default_rng(1)
    noisy = tuple(np.array(argument, dtype=np.float64, copy=True) for argument in arguments)
    for argument in noisy:
        argument[split.test] = rng.standard_normal(argument[split.test].shape)
    other = clone(estimator).fit(*noisy)
    assert other.n_epochs_ == real.n_epochs_
    assert other.history_[:, "valid_loss"] == real.history_[:, "valid_loss"]
    np.testing.assert_array_equal(case.output(other, arguments), case.output(real, arguments))
    assert other.mi_ != real.mi_
