"""sk-mlcpc: Multi-label Contrastive Predictive Coding for scikit-learn."""

from sk_mlcpc import bounds, datasets
from sk_mlcpc._version import __version__

__all__ = ["__version__", "bounds", "datasets"]
