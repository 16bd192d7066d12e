"""Class targets of MutualInformationEstimator: the Barber-Agakov bound over classes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.base import clone

from sk_mlcpc import MutualInformationEstimator
from sk_mlcpc.datasets import gaussian_classes_mi, make_gaussian_classes

SMALL = {"hidden_layer_sizes": (16,), "max_epochs": 15, "random_state": 0}


def _entropy(labels) -> float:
    _, counts = np.unique(labels, return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log(p)).sum())


@pytest.mark.parametrize(("n_classes", "separation"), [(2, 2.0), (3, 2.5)])
def test_estimate_is_below_and_near_the_closed_form(n_classes, separation):
    X, y, true_mi = make_gaussian_classes(
        3000, 5, n_classes, separation=separation, n_draws=200_000, random_state=1
    )
    est = MutualInformationEstimator(**SMALL).fit(X, y)
    assert est.target_type_ == "classes"
    np.testing.assert_array_equal(est.classes_, np.arange(n_classes))
    # A lower bound: the interval does not lie above the truth (MC error of the truth
    # is ~2e-3 at 200,000 draws), and the Gaussian classes are a linear problem that
    # the baseline solves, so the estimate is close.
    assert est.mi_ci_[0] <= true_mi + 0.01
    assert est.mi_ >= true_mi - 0.1
    assert est.bound_validity_ == "proven"
    assert est.mi_ <= est.mi_cap_ <= math.log(n_classes) + 1e-12


def test_closed_form_of_two_gaussian_classes_matches_a_quadrature():
    # Two classes at separation s on orthogonal axes: the log odds is s (x_0 - x_1),
    # a N(s^2, 2 s^2) variable given class 0, so I = log 2 - E[log(1 + exp(-L))].
    s = 1.5
    nodes, weights = np.polynomial.hermite_e.hermegauss(200)
    log_odds = s**2 + math.sqrt(2) * s * nodes
    expected = math.log(2) - float(
        np.sum(weights * np.logaddexp(0, -log_odds)) / np.sqrt(2 * np.pi)
    )
    assert gaussian_classes_mi(2, s) == pytest.approx(expected, abs=3e-3)


def test_labels_independent_of_x_read_no_information():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((600, 4))
    y = rng.integers(0, 3, 600)
    with pytest.warns(UserWarning):
        est = MutualInformationEstimator(**SMALL).fit(X, y)
    assert est.mi_ <= max(0.05, 2 * est.mi_std_)
    assert est.mi_ >= -max(0.05, 2 * est.mi_std_)


@pytest.mark.parametrize(
    "labels",
    [
        np.array(["setosa", "versicolor", "virginica"]),
        np.array([True, False]),
        np.array([3, 7]),
    ],
)
def test_string_bool_and_int_labels_are_classes(labels):
    X, y_index, _ = make_gaussian_classes(
        600, len(labels), len(labels), separation=3.0, n_draws=20_000, random_state=0
    )
    y = labels[y_index]
    est = MutualInformationEstimator(**SMALL).fit(X, y)
    assert est.target_type_ == "classes"
    np.testing.assert_array_equal(est.classes_, np.sort(labels))
    assert est.mi_ > 0.3
    assert est.transform(X).shape == (600, est.n_components)
    pmi = est.score_samples(X[:10], y[:10])
    assert pmi.shape == (10,) and np.all(np.isfinite(pmi))


def test_target_type_overrides_the_detection():
    X, y, _ = make_gaussian_classes(400, 3, 3, n_draws=20_000, random_state=0)
    assert MutualInformationEstimator(**SMALL).fit(X, y).target_type_ == "classes"
    est = MutualInformationEstimator(target_type="continuous", **SMALL).fit(X, y)
    assert est.target_type_ == "continuous" and est.classes_ is None
    forced = MutualInformationEstimator(target_type="classes", **SMALL).fit(X, y.astype(float))
    assert forced.target_type_ == "classes"
    np.testing.assert_array_equal(forced.classes_, [0.0, 1.0, 2.0])


def test_many_integer_values_stay_continuous():
    # Like the diabetes target: floats with integral values, far more than 50 of them.
    rng = np.random.default_rng(0)
    X = rng.standard_normal((500, 2))
    y = np.round(100 * X[:, 0] + rng.standard_normal(500) * 10)
    est = MutualInformationEstimator(**SMALL).fit(X, y)
    assert est.target_type_ == "continuous"


def test_cap_is_the_entropy_of_the_test_labels_and_score_matches_evaluate():
    X, y, _ = make_gaussian_classes(800, 3, 3, separation=2.0, n_draws=20_000, random_state=2)
    est = MutualInformationEstimator(**SMALL).fit(X, y)
    result = est.evaluate(X[:300], y[:300])
    assert result.cap == pytest.approx(_entropy(y[:300]))
    assert result.mi <= result.cap
    assert result.ci[0] < result.mi < result.ci[1]
    assert est.score(X[:300], y[:300]) == result.mi
    assert result.validity == "proven" and not result.saturated


def test_bad_labels_get_clear_errors():
    X = np.random.default_rng(0).standard_normal((40, 2))
    with pytest.raises(ValueError, match="single class"):
        MutualInformationEstimator(**SMALL).fit(X, np.array(["a"] * 40))
    y = np.array(["a", "b"] * 19 + ["a", "c"])
    with pytest.raises(ValueError, match="Class 'c' of y has a single row"):
        MutualInformationEstimator(**SMALL).fit(X, y)
    with pytest.raises(ValueError, match="one column of labels"):
        MutualInformationEstimator(target_type="classes", **SMALL).fit(X, np.ones((40, 2)))
    y = np.array(["a", "b"] * 20)
    est = MutualInformationEstimator(**SMALL).fit(X, y)
    with pytest.raises(ValueError, match=r"not fitted with, e\.g\. 'z'"):
        est.score(X[:4], np.array(["a", "z", "b", "a"]))
    with pytest.raises(ValueError, match="same number of rows"):
        est.score(X[:4], y[:5])


def test_labels_are_not_modified_and_clone_refits_alike():
    X, y, _ = make_gaussian_classes(500, 3, 3, n_draws=20_000, random_state=3)
    labels = np.array(["u", "v", "w"], dtype=object)[y]
    kept = labels.copy()
    first = MutualInformationEstimator(**SMALL).fit(X, labels)
    np.testing.assert_array_equal(labels, kept)
    second = clone(first).fit(X, labels)
    assert first.mi_ == second.mi_


def test_save_and_load_keep_classes_and_estimates(tmp_path):
    X, y, _ = make_gaussian_classes(500, 3, 3, separation=2.5, n_draws=20_000, random_state=4)
    labels = np.array(["low", "mid", "high"])[y]
    est = MutualInformationEstimator(**SMALL).fit(X, labels)
    est.save(tmp_path / "model.skmlcpc")
    loaded = MutualInformationEstimator.load(tmp_path / "model.skmlcpc")
    assert loaded.target_type_ == "classes"
    np.testing.assert_array_equal(loaded.classes_, est.classes_)
    assert loaded.classes_.dtype == est.classes_.dtype
    assert loaded.score(X[:200], labels[:200]) == est.score(X[:200], labels[:200])
    np.testing.assert_array_equal(
        loaded.score_samples(X[:20], labels[:20]), est.score_samples(X[:20], labels[:20])
    )


@pytest.mark.parametrize("target", ["continuous", "classes"])
def test_the_unused_baseline_warning_points_at_the_callers_fit(target):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 3))
    y = rng.standard_normal((300, 2)) if target == "continuous" else rng.integers(0, 3, 300)
    with pytest.warns(UserWarning, match="baseline='auto' was not used") as record:
        MutualInformationEstimator(max_epochs=2, hidden_layer_sizes=(8,), random_state=0).fit(X, y)
    baseline = [w for w in record if "was not used" in str(w.message)]
    assert baseline and all(w.filename == __file__ for w in baseline)
