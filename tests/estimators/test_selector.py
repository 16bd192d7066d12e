"""MutualInformationSelector: forward selection by held-out conditional MI."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from sk_mlcpc import MutualInformationSelector

FAST = {"hidden_layer_sizes": (32,), "max_epochs": 40, "random_state": 0}


def _xor_data(n=1500, p=6, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p))
    y = ((X[:, 1] > 0) ^ (X[:, 4] > 0)).astype(int)
    return X, y


@parametrize_with_checks(
    [
        MutualInformationSelector(
            n_features_to_select=1, hidden_layer_sizes=(8,), max_epochs=2, random_state=0
        )
    ]
)
def test_sklearn_compatible_selector(estimator, check):
    check(estimator)


def test_lookahead_finds_an_xor_pair_that_no_single_column_reveals():
    X, y = _xor_data()
    selector = MutualInformationSelector(n_features_to_select=2, **FAST).fit(X, y)
    assert selector.get_support(indices=True).tolist() == [1, 4]
    assert selector.target_type_ == "classes"
    # The pair's first member carries nothing alone; the second carries all of it.
    first = selector.gains_[0]
    assert abs(first) < 0.05
    assert selector.gains_ci_[1, 0] > 0.1  # log 2 = 0.69 at the optimal critic
    np.testing.assert_allclose(selector.gains_.sum(), selector.mi_, atol=1e-9)
    assert np.all(selector.gains_ci_[:, 0] <= selector.gains_)
    assert np.all(selector.gains_ <= selector.gains_ci_[:, 1])
    assert sorted(selector.ranking_.tolist()) == list(range(1, 7))
    assert set(np.flatnonzero(selector.ranking_ <= 2)) == {1, 4}


def test_without_lookahead_the_xor_pair_has_no_single_gain():
    X, y = _xor_data()
    selector = MutualInformationSelector(n_features_to_select=1, lookahead=False, **FAST)
    selector.fit(X, y)
    assert abs(selector.gains_[0]) < 0.05  # every single column reads ~0


def test_auto_keeps_one_of_identical_copies_and_drops_noise():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((2000, 7))
    X[:, 3] = X[:, 0]  # an exact copy
    X[:, 5] = X[:, 0]
    y = X[:, 0] + 0.3 * rng.standard_normal(2000)
    selector = MutualInformationSelector(**FAST).fit(X, y)
    chosen = set(selector.get_support(indices=True).tolist())
    assert selector.target_type_ == "continuous"
    assert len(chosen & {0, 3, 5}) == 1
    assert chosen <= {0, 3, 5}


def test_pipeline_grid_search_and_feature_names():
    pd = pytest.importorskip("pandas")
    X, y = _xor_data(n=600, p=5)
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d", "e"])
    selector = MutualInformationSelector(n_features_to_select=2, **FAST).fit(frame, y)
    assert (
        selector.get_feature_names_out().tolist() == ["b", "d"]
        or len(selector.get_feature_names_out()) == 2
    )
    assert selector.transform(frame).shape == (600, 2)
    pipe = make_pipeline(
        MutualInformationSelector(hidden_layer_sizes=(16,), max_epochs=5, random_state=0),
        LogisticRegression(),
    )
    search = GridSearchCV(
        pipe, {"mutualinformationselector__n_features_to_select": [1, 2]}, cv=2
    ).fit(X, y)
    assert search.best_params_["mutualinformationselector__n_features_to_select"] in (1, 2)


def test_fitted_selector_pickles_and_clones():
    X, y = _xor_data(n=400, p=5)
    selector = MutualInformationSelector(n_features_to_select=2, **FAST).fit(X, y)
    restored = pickle.loads(pickle.dumps(selector))
    np.testing.assert_array_equal(restored.get_support(), selector.get_support())
    assert clone(selector).get_params() == selector.get_params()


def test_bad_input_gets_clear_errors():
    X, y = _xor_data(n=60, p=5)
    X = X[:, :3]
    with pytest.raises(ValueError, match="n_features_to_select=5 is larger than the 3 columns"):
        MutualInformationSelector(n_features_to_select=5, **FAST).fit(X, y)
    with pytest.raises(ValueError, match="single class"):
        MutualInformationSelector(**FAST).fit(X, np.array(["a"] * 60))
    labels = np.array(["a", "b"] * 29 + ["a", "c"])
    with pytest.raises(ValueError, match="Class 'c' of y has a single row"):
        MutualInformationSelector(**FAST).fit(X, labels)
    with pytest.raises(ValueError, match="requires y"):
        MutualInformationSelector(**FAST).fit(X, None)
    with pytest.raises(ValueError, match="same number of rows"):
        MutualInformationSelector(**FAST).fit(X, y[:50])
    X_nan = X.copy()
    X_nan[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        MutualInformationSelector(**FAST).fit(X_nan, y)


@pytest.mark.parametrize("target", ["classes", "continuous"])
def test_save_and_load_keep_the_selection(tmp_path, target):
    X, y = _xor_data(n=400, p=5)
    labels = np.array(["even", "odd"])[y] if target == "classes" else X[:, 0] + y
    selector = MutualInformationSelector(n_features_to_select=2, **FAST).fit(X, labels)
    selector.save(tmp_path / "selector.skmlcpc")
    loaded = MutualInformationSelector.load(tmp_path / "selector.skmlcpc")
    for name in ("support_", "selected_order_", "ranking_", "gains_", "gains_ci_"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(selector, name))
    assert loaded.mi_ == selector.mi_ and loaded.target_type_ == target
    np.testing.assert_array_equal(loaded.transform(X), selector.transform(X))
    if target == "classes":
        np.testing.assert_array_equal(loaded.classes_, ["even", "odd"])
