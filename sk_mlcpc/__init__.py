"""sk-mlcpc: Multi-label Contrastive Predictive Coding for scikit-learn.

Contrastive mutual-information bounds (:mod:`sk_mlcpc.bounds`), critics
(:mod:`sk_mlcpc.critics`), samplers with known MI (:mod:`sk_mlcpc.datasets`) and
scikit-learn estimators trained with skorch.
"""

from sk_mlcpc import blockwise, bounds, critics, datasets, encoders, views
from sk_mlcpc._engine.evaluation import SaturationWarning
from sk_mlcpc._engine.net import DivergenceError
from sk_mlcpc._engine.persistence import ModelFileError
from sk_mlcpc._estimators.conditional import ConditionalMutualInformationEstimator
from sk_mlcpc._estimators.distill import ContrastiveDistillationClassifier
from sk_mlcpc._estimators.encoder import ContrastiveEncoder
from sk_mlcpc._estimators.mi import MIEstimate, MutualInformationEstimator
from sk_mlcpc._estimators.search import MISearchResult, estimate_mi, search_mi
from sk_mlcpc._estimators.selector import MutualInformationSelector
from sk_mlcpc._estimators.sequence import ContrastivePredictiveCoding
from sk_mlcpc._version import __version__

__all__ = [
    "ConditionalMutualInformationEstimator",
    "ContrastiveDistillationClassifier",
    "ContrastiveEncoder",
    "ContrastivePredictiveCoding",
    "DivergenceError",
    "MIEstimate",
    "MISearchResult",
    "ModelFileError",
    "MutualInformationEstimator",
    "MutualInformationSelector",
    "SaturationWarning",
    "__version__",
    "blockwise",
    "bounds",
    "critics",
    "datasets",
    "encoders",
    "estimate_mi",
    "search_mi",
    "views",
]
