"""ConditionalMutualInformationEstimator: shared split, paired interval, ground truth, errors.

scikit-learn's estimator checks run with ``conditioning_columns=[0]`` (the first column of
``X`` is ``Z``), since without it ``fit`` requires the extra argument ``Z``, which the
checks do not pass. The API pieces that the checks do not reach with ``Z`` passed
separately are tested one by one: ``clone``, nested ``get_params``/``set_params``,
pickling and ``GridSearchCV``.
"""

import pickle

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.utils.estimator_checks import parametrize_with_checks

from sk_mlcpc import ConditionalMutualInformationEstimator, MutualInformationEstimator
from sk_mlcpc.datasets import make_common_cause, make_conditional_gaussians, make_xor_given_z

CMI = ConditionalMutualInformationEstimator
FAST = {"hidden_layer_sizes": (16,), "n_components": 8, "max_epochs": 4, "random_state": 0}


def _template(**params):
    return MutualInformationEstimator(**{**FAST, **params})


@pytest.fixture(scope="module")
def gaussian():
    return make_conditional_gaussians(1000, 1, n_features_z=2, cmi=0.5, random_state=0)


@pytest.fixture(scope="module")
def fitted(gaussian):
    X, Y, Z, _ = gaussian
    return CMI(_template()).fit(X, Y, Z=Z)


def test_both_terms_are_read_on_the_same_test_rows(gaussian, fitted):
    X, Y, Z, _ = gaussian
    rows = fitted.test_indices_
    assert len(rows) == 200  # test_fraction=0.2 of 1,000 rows
    # Each term's mi_ is exactly its bound on these rows, so both are on the same rows.
    assert fitted.joint_.score(np.hstack([X, Z])[rows], Y[rows]) == fitted.joint_.mi_
    assert fitted.conditioning_.score(Z[rows], Y[rows]) == fitted.conditioning_.mi_
    assert fitted.mi_ == pytest.approx(fitted.joint_.mi_ - fitted.conditioning_.mi_, abs=1e-12)
    # The conditioning term is a plain fit of (Z, y) with the shared seed: same split.
    plain = _template(random_state=fitted.random_state_).fit(Z, Y)
    assert plain.mi_ == fitted.conditioning_.mi_
    assert fitted.joint_.random_state == fitted.conditioning_.random_state == 0
    assert fitted.converged_ == (fitted.joint_.converged_ and fitted.conditioning_.converged_)
    assert fitted.n_features_in_ == 1 and fitted.n_features_z_ == 2
    assert fitted.joint_.n_features_in_ == 3


def test_interval_is_the_paired_jackknife_of_the_difference(gaussian, fitted):
    X, Y, Z, _ = gaussian
    rows = fitted.test_indices_
    XZ, Zt, Yt = np.hstack([X, Z])[rows], Z[rows], Y[rows]
    groups = np.arange(len(rows)) % 20
    replicates = np.array(
        [
            fitted.joint_.score(XZ[groups != g], Yt[groups != g])
            - fitted.conditioning_.score(Zt[groups != g], Yt[groups != g])
            for g in range(20)
        ]
    )
    std = np.sqrt(19 / 20 * np.sum((replicates - replicates.mean()) ** 2))
    assert fitted.mi_std_ == pytest.approx(std, rel=1e-9)
    half = stats.t.ppf(0.975, 19) * std
    assert fitted.mi_ci_ == pytest.approx((fitted.mi_ - half, fitted.mi_ + half), rel=1e-9)
    assert 0 < fitted.mi_std_ < 0.2


def test_random_state_none_draws_one_seed_for_both(gaussian):
    X, Y, Z, _ = gaussian
    est = CMI(_template(random_state=None, max_epochs=1)).fit(X[:300], Y[:300], Z=Z[:300])
    assert isinstance(est.random_state_, int)
    assert est.joint_.random_state == est.conditioning_.random_state == est.random_state_
    assert est.estimator.random_state is None  # the template is not modified


def test_gaussian_close_to_closed_form(gaussian, fitted):
    true_cmi = gaussian[3]
    assert abs(fitted.mi_ - true_cmi) < 0.15
    # Z carries information about Y here, so the conditioning term matters.
    assert fitted.conditioning_.mi_ > 0.15


def test_common_cause_reads_near_zero():
    X, Y, Z, true_cmi = make_common_cause(1000, 1, n_features_z=2, random_state=0)
    assert true_cmi == 0.0
    est = CMI(_template()).fit(X, Y, Z=Z)
    assert est.joint_.mi_ > 0.3  # the dependence is there, and all of it through Z
    assert abs(est.mi_) < 0.05
    low, high = est.mi_ci_
    assert low < 0.05 and high > -0.05
    # Pairing: both terms move together over the test rows, so the difference's
    # jackknife error is well below each term's own.
    assert est.mi_std_ < 0.5 * min(est.joint_.mi_std_, est.conditioning_.mi_std_)


def test_xor_visible_only_given_z():
    X, Y, Z, true_cmi = make_xor_given_z(2000, n_features_z=2, random_state=0)
    # XOR needs a wider network and more epochs than the other tests' critic.
    template = _template(max_epochs=30, hidden_layer_sizes=(64,))
    est = CMI(template).fit(X, Y, Z=Z)
    assert est.mi_ci_[0] > 0.05
    assert est.mi_ < true_cmi + 0.05
    plain = clone(template).fit(X, Y)
    assert plain.mi_ < 0.03


def test_conditioning_columns_equal_passing_z(gaussian, fitted):
    X, Y, Z, _ = gaussian
    together = np.hstack([X, Z])
    by_position = CMI(_template(), conditioning_columns=[1, 2]).fit(together, Y)
    assert by_position.mi_ == fitted.mi_
    assert by_position.n_features_in_ == 3 and by_position.n_features_z_ == 2
    frame = pd.DataFrame(together, columns=["x", "z1", "z2"])
    by_name = CMI(_template(), conditioning_columns=["z1", "z2"]).fit(frame, Y)
    assert by_name.mi_ == fitted.mi_
    assert list(by_name.feature_names_in_) == ["x", "z1", "z2"]
    by_mask = CMI(_template(), conditioning_columns=[False, True, True]).fit(together, Y)
    assert by_mask.mi_ == fitted.mi_
    # score reads Z from X's columns too, and agrees with passing Z.
    new = make_conditional_gaussians(500, 1, n_features_z=2, cmi=0.5, random_state=1)
    assert by_position.score(np.hstack([new[0], new[2]]), new[1]) == pytest.approx(
        fitted.score(new[0], new[1], Z=new[2])
    )
    assert by_name.score(frame.iloc[:300], Y[:300]) == pytest.approx(
        fitted.score(X[:300], Y[:300], Z=Z[:300])
    )


def test_one_dimensional_z_is_a_column(gaussian):
    X, Y, Z, _ = gaussian
    est = CMI(_template(max_epochs=1)).fit(X[:300], Y[:300], Z=Z[:300, 0])
    assert est.n_features_z_ == 1 and est.joint_.n_features_in_ == 2


@pytest.mark.parametrize(
    ("z", "match"),
    [
        (lambda Z: Z[:-1], "same rows"),
        (lambda Z: np.where(np.arange(len(Z))[:, None] == 3, np.nan, Z), "Z contains NaN"),
        (lambda Z: Z[:, :0], "Z has 0 columns.*plain I\\(X; Y\\)"),
        (lambda Z: None, "needs the conditioning set"),
        (lambda Z: Z[:, :, None], "Z must be 1-D or 2-D"),
    ],
    ids=["other-rows", "nan", "no-columns", "missing", "3-d"],
)
def test_bad_z_is_refused(gaussian, z, match):
    X, Y, Z, _ = gaussian
    with pytest.raises(ValueError, match=match):
        CMI(_template(max_epochs=1)).fit(X[:200], Y[:200], Z=z(Z[:200]))


@pytest.mark.parametrize(
    ("columns", "error", "match"),
    [
        ([], ValueError, "selects no column.*plain I\\(X; Y\\)"),
        ([0, 1, 2], ValueError, r"every column of X \(3 feature\(s\)\)"),
        ([5], ValueError, "outside X's 3 columns"),
        (["a"], ValueError, "no column names"),
        ([True, False], ValueError, "boolean mask of 2 values"),
        ([0.5], TypeError, "positions"),
    ],
)
def test_bad_conditioning_columns_are_refused(gaussian, columns, error, match):
    X, Y, Z, _ = gaussian
    together = np.hstack([X, Z])[:200]
    with pytest.raises(error, match=match):
        CMI(_template(max_epochs=1), conditioning_columns=columns).fit(together, Y[:200])


def test_other_bad_input_is_refused(gaussian, fitted):
    X, Y, Z, _ = gaussian
    together = np.hstack([X, Z])[:200]
    with pytest.raises(ValueError, match="not both"):
        CMI(_template(), conditioning_columns=[1]).fit(together, Y[:200], Z=Z[:200])
    with pytest.raises(ValueError, match="requires y to be passed"):
        CMI(_template()).fit(X, None, Z=Z)
    with pytest.raises(TypeError, match="must be a MutualInformationEstimator"):
        CMI(GridSearchCV(_template(), {})).fit(X, Y, Z=Z)
    frame = pd.DataFrame(together, columns=["x", "z1", "z2"])
    with pytest.raises(ValueError, match="not in X: \\['w'\\]"):
        CMI(_template(), conditioning_columns=["z1", "w"]).fit(frame, Y[:200])
    with pytest.raises(ValueError, match=r"Z has 1 columns.*fitted with 2"):
        fitted.score(X[:100], Y[:100], Z=Z[:100, :1])
    with pytest.raises(ValueError, match="needs the conditioning set"):
        fitted.score(X[:100], Y[:100])
    with pytest.raises(ValueError, match="same number of rows"):
        CMI(_template(max_epochs=1)).fit(X[:200], Y[:100], Z=Z[:200])


def test_clone_params_and_pickle(gaussian, fitted):
    X, Y, Z, _ = gaussian
    params = fitted.get_params()
    assert params["estimator__max_epochs"] == 4 and params["conditioning_columns"] is None
    copy = clone(fitted).set_params(estimator__max_epochs=2)
    assert copy.estimator.max_epochs == 2 and fitted.estimator.max_epochs == 4
    assert not hasattr(copy, "mi_")
    loaded = pickle.loads(pickle.dumps(fitted))
    assert loaded.mi_ == fitted.mi_ and loaded.mi_ci_ == fitted.mi_ci_
    assert loaded.score(X[:300], Y[:300], Z=Z[:300]) == pytest.approx(
        fitted.score(X[:300], Y[:300], Z=Z[:300])
    )


def test_the_data_is_not_modified(gaussian):
    X, Y, Z, _ = gaussian
    copies = [X[:300].copy(), Y[:300].copy(), Z[:300].copy()]
    est = CMI(_template(max_epochs=1))
    X_, Y_, Z_ = X[:300].copy(), Y[:300].copy(), Z[:300].copy()
    est.fit(X_, Y_, Z=Z_)
    est.score(X_, Y_, Z=Z_)
    for before, after in zip(copies, (X_, Y_, Z_)):
        np.testing.assert_array_equal(before, after)


def test_grid_search_with_conditioning_columns(gaussian):
    X, Y, Z, _ = gaussian
    together = np.hstack([X, Z])[:600]
    search = GridSearchCV(
        CMI(_template(max_epochs=1), conditioning_columns=[1, 2]),
        {"estimator__max_epochs": [1, 3]},
        cv=2,
    ).fit(together, Y[:600])
    assert search.best_params_["estimator__max_epochs"] in (1, 3)
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))


def test_class_labels_pass_through_to_both_terms():
    X, Y, Z, true_cmi = make_xor_given_z(2000, n_features_z=2, random_state=0)
    # All of Y's information about X given Z is in its sign: the same conditional MI.
    labels = np.where(Y[:, 0] > 0, "up", "down")
    template = _template(max_epochs=30, hidden_layer_sizes=(64,))
    est = CMI(template).fit(X, labels, Z=Z)
    for term in (est.joint_, est.conditioning_):
        assert term.target_type_ == "classes"
        assert list(term.classes_) == ["down", "up"]
    assert est.mi_ci_[0] > 0.05
    assert est.mi_ < true_cmi + 0.05
    rows = est.test_indices_
    assert est.joint_.score(np.hstack([X, Z])[rows], labels[rows]) == est.joint_.mi_
    assert np.isfinite(est.score(X[:500], labels[:500], Z=Z[:500]))


@parametrize_with_checks(
    [CMI(_template(max_epochs=2), conditioning_columns=[0])],
)
def test_sklearn_compatible_with_conditioning_columns(estimator, check):
    check(estimator)
