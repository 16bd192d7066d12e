"""sk-mlcpc: Multi-label Contrastive Predictive Coding for scikit-learn.

Contrastive mutual-information bounds (:mod:`sk_mlcpc.bounds`), critics
(:mod:`sk_mlcpc.critics`), samplers with known MI (:mod:`sk_mlcpc.datasets`) and
scikit-learn estimators trained with skorch.
"""

from sk_mlcpc import blockwise, bounds, critics, datasets, encoders, views
from sk_mlcpc._distill import ContrastiveDistillationClassifier
from sk_mlcpc._encoder import ContrastiveEncoder
from sk_mlcpc._engine import DivergenceError
from sk_mlcpc._evaluation import SaturationWarning
from sk_mlcpc._mi import MIEstimate, MutualInformationEstimator, estimate_mi
from sk_mlcpc._persistence import ModelFileError
from sk_mlcpc._search import MISearchResult, search_mi
from sk_mlcpc._sequence import ContrastivePredictiveCoding
from sk_mlcpc._version import __version__

__all__ = [
    "ContrastiveDistillationClassifier",
    "ContrastiveEncoder",
    "ContrastivePredictiveCoding",
    "DivergenceError",
    "MIEstimate",
    "MISearchResult",
    "ModelFileError",
    "MutualInformationEstimator",
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
