"""scikit-learn's own estimator checks on every public estimator."""

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from sk_mlcpc import ContrastiveEncoder, MutualInformationEstimator


def _fast(estimator):
    # Small networks and few epochs: the checks test the API contract, not accuracy.
    return estimator.set_params(hidden_layer_sizes=(16,), max_epochs=3, random_state=0)


ESTIMATORS = [
    _fast(MutualInformationEstimator()),
    _fast(MutualInformationEstimator(critic="bilinear", objective="cpc")),
    _fast(ContrastiveEncoder(n_components=4)),
    _fast(ContrastiveEncoder(n_components=3, objective="cpc", augmentation="noise")),
]

_NEEDS_PAIRED_Y = (
    "score_samples(X, y) returns the pointwise MI of (x, y) pairs and needs the paired "
    "variable; this check calls score_samples(X) alone. Subset and order invariance of "
    "score_samples(X, y) are tested in tests/estimators/test_mi.py."
)
EXPECTED_FAILED_CHECKS = {
    "check_methods_sample_order_invariance": _NEEDS_PAIRED_Y,
    "check_methods_subset_invariance": _NEEDS_PAIRED_Y,
}


@parametrize_with_checks(
    ESTIMATORS,
    expected_failed_checks=lambda estimator: (
        EXPECTED_FAILED_CHECKS if isinstance(estimator, MutualInformationEstimator) else {}
    ),
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


def _featureless_fits():
    import numpy as np
    import pandas as pd

    from sk_mlcpc import ContrastiveDistillationClassifier, ContrastivePredictiveCoding

    empty = pd.DataFrame(index=range(12))
    labels = np.arange(12) % 2
    return {
        "mi_x": (MutualInformationEstimator(max_epochs=1), (empty, np.zeros((12, 1))), "X"),
        "mi_y": (MutualInformationEstimator(max_epochs=1), (np.zeros((12, 2)), empty), "Y"),
        "encoder": (ContrastiveEncoder(max_epochs=1), (empty,), "X"),
        "sequence": (ContrastivePredictiveCoding(max_epochs=1), (empty,), "X"),
        "distiller": (ContrastiveDistillationClassifier(max_epochs=1), (empty, labels), "X"),
    }


@pytest.mark.parametrize("case", ["mi_x", "mi_y", "encoder", "sequence", "distiller"])
def test_a_dataframe_without_columns_is_refused_by_name(case):
    # pandas input without columns fails inside numpy before scikit-learn's own check.
    estimator, data, name = _featureless_fits()[case]
    with pytest.raises(ValueError, match=rf"Found {name} with 0 feature\(s\) \(shape=\(12, 0\)\)"):
        estimator.fit(*data)
