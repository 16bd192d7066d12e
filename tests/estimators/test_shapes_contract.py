"""The estimate's contract at shapes beyond the development suite (small instances).

At defaults (a smaller network and fewer epochs, for speed): ``mi_`` is never materially
below 0, any units give the same ``mi_``, more columns do not read lower than a subset of
them beyond the two intervals, and loose shapes are flagged. Each case read far below 0,
0, or below its subset before the data-driven baseline, the constant-critic choice and
the scale-free quantile map.
"""

import warnings

import numpy as np
import pytest

from sk_mlcpc import MutualInformationEstimator
from sk_mlcpc.datasets import (
    make_correlated_gaussians,
    make_linear_gaussian,
    make_quantized_gaussians,
    make_sparse_gaussians,
)

pytestmark = pytest.mark.filterwarnings(
    "ignore::sklearn.exceptions.ConvergenceWarning", "ignore::UserWarning"
)

SMALL = {"hidden_layer_sizes": (32,), "n_components": 16, "max_epochs": 6, "random_state": 0}


def _not_materially_negative(estimator) -> bool:
    return estimator.mi_ >= -max(0.05, 2 * estimator.mi_std_)


def test_wide_data_reads_positive_and_is_flagged_as_loose():
    """600 rows x 150 columns a side, Y = 0.5 X + noise (MI 16.7): with the fixed 10%
    shrinkage the Gaussian baseline was worth tens of nats below 0 on held-out rows."""
    X, Y, truth = make_linear_gaussian(600, 150, coef=0.5, random_state=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        estimator = MutualInformationEstimator(**SMALL).fit(X, Y)
    assert _not_materially_negative(estimator)
    assert estimator.mi_ > 1.0
    assert any("training rows for 300 columns" in str(w.message) for w in caught)
    assert estimator.mi_ci_[0] < truth
    assert estimator.baseline_ == "gaussian" and estimator.baseline_valid_mi_ > 0


def test_a_critic_no_better_than_a_constant_on_validation_is_replaced_by_it(tmp_path):
    """Independent X and Y, 300 rows x 40 columns a side: the trained critic's validation
    bound is below 0, so the constant critic is kept and every bound is exactly 0."""
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(300, 40)), rng.normal(size=(300, 40))
    with pytest.warns(UserWarning, match="no better than a constant critic"):
        estimator = MutualInformationEstimator(**SMALL).fit(X, Y)
    assert estimator.critic_choice_ == "constant" and estimator.valid_mi_ <= 0
    assert estimator.mi_ == 0.0 and estimator.mi_ci_ == (0.0, 0.0)
    assert estimator.score(X, Y) == 0.0
    assert np.array_equal(estimator.score_samples(X[:5], Y[:5]), np.zeros(5))
    estimator.save(tmp_path / "constant.skmlcpc")
    loaded = MutualInformationEstimator.load(tmp_path / "constant.skmlcpc")
    assert loaded.critic_choice_ == "constant" and loaded.score(X, Y) == 0.0


def test_a_dependence_is_still_reported_when_there_is_one():
    X, Y, _ = make_correlated_gaussians(1000, 2, mi=1.0, random_state=0)
    estimator = MutualInformationEstimator(**SMALL).fit(X, Y)
    assert estimator.critic_choice_ == "trained" and estimator.valid_mi_ > 0.5
    assert estimator.mi_ > 0.5


@pytest.mark.parametrize("unit", [1e-12, 1e-9, 1e12])
def test_any_units_give_the_same_estimate(unit):
    """A 2-d Gaussian of MI 0.8 read 0.38 at 1e-7 and 0.00 at 1e-9 with scikit-learn's
    quantile map (its absolute tolerance of 1e-7)."""
    X, Y, _ = make_correlated_gaussians(1000, 2, mi=0.8, random_state=0)
    X, Y = X.astype(np.float64), Y.astype(np.float64)
    reference = MutualInformationEstimator(**SMALL).fit(X, Y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scaled = MutualInformationEstimator(**SMALL).fit(X * unit, Y * unit)
    assert reference.mi_ > 0.4
    assert scaled.mi_ == pytest.approx(reference.mi_, abs=1e-6)


def test_three_level_columns_read_at_least_what_standard_scaling_gives():
    """Integer columns of 3 levels: the quantile map used to send the lowest and highest
    levels to about 5.2 standard deviations and read less than plain standardisation."""
    X, Y, truth = make_quantized_gaussians(2000, 4, rho=0.8, n_levels=3, random_state=0)
    readings = {
        name: MutualInformationEstimator(**SMALL, preprocessing=name).fit(X, Y)
        for name in ("quantile", "standard")
    }
    quantile, standard = readings["quantile"], readings["standard"]
    assert quantile.mi_ <= truth + 0.1
    assert quantile.mi_ci_[1] >= standard.mi_ci_[0]  # not below it beyond the intervals
    assert quantile.mi_ > 0.8 * standard.mi_


def test_more_columns_do_not_read_lower_than_their_informative_subset():
    """2 informative pairs among 60 columns a side, 1,000 rows: the densely shrunk
    Gaussian model spreads its weight over every noisy pair; the sparse one keeps the
    pairs, and the full X reads at least what its 2 informative columns read."""
    X, Y, _ = make_sparse_gaussians(1000, 60, n_informative=2, mi=1.0, random_state=0)
    full = MutualInformationEstimator(**SMALL).fit(X, Y)
    subset = MutualInformationEstimator(**SMALL).fit(X[:, :2], Y)
    assert full.mi_ci_[1] >= subset.mi_ci_[0]
    assert full.mi_ > 0.5
    assert full.baseline_structure_ == "sparse"


def test_a_baseline_that_does_not_help_is_dropped_with_a_warning(monkeypatch):
    """Whatever made both Gaussian models no better than a constant on the validation rows
    (here: their bound forced to -1), the network alone is trained, and the user told."""
    monkeypatch.setattr(MutualInformationEstimator, "_baseline_bound", lambda *args: -1.0)
    X, Y, _ = make_correlated_gaussians(600, 2, mi=1.0, random_state=0)
    with pytest.warns(UserWarning, match="baseline='gaussian' was not used"):
        estimator = MutualInformationEstimator(**SMALL).fit(X, Y)
    assert estimator.baseline_ is None and estimator.baseline_valid_mi_ == -1.0
    assert estimator.baseline_structure_ is None
    assert not hasattr(estimator.critic_, "baseline_scores")


def test_heavy_joint_tails_are_flagged_when_cpc_reads_more_than_ml_cpc():
    """The development suite's 20-d Student-t (df 4, MI 4): the trained critic's CPC bound
    on the validation rows is above its ML-CPC bound (2.81 against 2.61), so mi_ is
    flagged loose; a Gaussian task of the same width is not flagged."""
    from sk_mlcpc.datasets import make_mi_task

    heavy = make_mi_task("t4-20d-mi4", random_state=0)
    with pytest.warns(UserWarning, match=r"CPC bound \(\d\.\d+ nats\) is above its ML-CPC"):
        MutualInformationEstimator(random_state=0).fit(heavy.X, heavy.Y)
    gaussian = make_mi_task("gauss-20d-mi2", random_state=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        MutualInformationEstimator(random_state=0).fit(gaussian.X, gaussian.Y)
    assert not any("is above its ML-CPC" in str(w.message) for w in caught)
