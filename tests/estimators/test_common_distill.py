"""scikit-learn's estimator checks on ContrastiveDistillationClassifier (tiny, fast settings)."""

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from sk_mlcpc._estimators.distill import ContrastiveDistillationClassifier

# teacher=None: every check fits its own small default teacher on its own data, which is
# the only teacher that fits every dataset the checks construct. Small networks and few
# epochs: the checks test the API contract, not accuracy.
_TINY_TEACHER = {"hidden_layer_sizes": (16,), "max_iter": 30}


def _fast(**params):
    return ContrastiveDistillationClassifier(
        teacher_params=_TINY_TEACHER,
        hidden_layer_sizes=(8,),
        n_components=8,
        n_negatives=16,
        batch_size=32,
        max_epochs=20,
        learning_rate=0.01,
        random_state=0,
        **params,
    )


ESTIMATORS = [_fast(), _fast(objective="crd", kd_weight=0.0, early_stopping=False)]

EXPECTED_FAILED_CHECKS: dict[str, str] = {}


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@parametrize_with_checks(ESTIMATORS, expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
