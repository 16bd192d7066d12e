"""
Pointwise mutual information with ``score_samples``
===================================================

The mutual information is the average of the *pointwise* MI
``log p(y | x) / p(y)`` over the joint distribution.
:meth:`~sk_mlcpc.MutualInformationEstimator.score_samples` returns a trained critic's
estimate of it for each pair, normalised over a fixed sample of ``Y`` kept from the
training rows, so a pair's value does not depend on the other rows passed. On correlated
Gaussians the exact value is known, so we can compare pair by pair.
"""

# %%
# Fit on pairs with a known MI
# ----------------------------

import os
import sys

import matplotlib

if sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
    matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np

from sk_mlcpc import MutualInformationEstimator
from sk_mlcpc.datasets import gaussian_log_density_ratio, make_correlated_gaussians, mi_to_rho

true_mi, dim = 2.0, 2
X, Y, _ = make_correlated_gaussians(6000, dim, mi=true_mi, random_state=0)
X_new, Y_new, _ = make_correlated_gaussians(1000, dim, mi=true_mi, random_state=1)
estimator = MutualInformationEstimator(
    hidden_layer_sizes=(64, 64), max_epochs=40, random_state=0
).fit(X, Y)
print(f"held-out estimate {estimator.mi_:.2f} nats (truth {true_mi})")

# %%
# Pair by pair, against the truth
# -------------------------------
# The exact pointwise MI of pair ``i`` is the diagonal of the optimal critic's score
# matrix. The estimate is an InfoNCE-type quantity with 2,048 reference rows as negatives,
# so it cannot exceed ``log 2048`` (7.6 nats) for any pair; here the pairs stay far below.

pointwise = estimator.score_samples(X_new, Y_new)
exact = np.diag(gaussian_log_density_ratio(X_new, Y_new, mi_to_rho(true_mi, dim)))
correlation = np.corrcoef(pointwise, exact)[0, 1]

fig, ax = plt.subplots(figsize=(5, 4.5))
ax.scatter(exact, pointwise, s=6, alpha=0.4)
low, high = np.percentile(np.r_[exact, pointwise], [0.5, 99.5])
ax.plot([low, high], [low, high], "k--", lw=1, label="y = x")
ax.set(
    xlabel="exact pointwise MI (nats)",
    ylabel="score_samples (nats)",
    title=f"correlation {correlation:.3f}; means {exact.mean():.2f} vs {pointwise.mean():.2f}",
)
ax.legend()
fig.tight_layout()
plt.show()

# %%
# Invariance to the rows passed along
# -----------------------------------
# A pair's value is the same whether it is scored alone, in a subset or shuffled.

subset = estimator.score_samples(X_new[:10], Y_new[:10])
print("same values on a subset:", np.allclose(subset, pointwise[:10], atol=1e-5))
