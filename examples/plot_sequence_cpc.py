"""
Contrastive predictive coding on sequences
==========================================

:class:`~sk_mlcpc.ContrastivePredictiveCoding` is CPC in its original form: a
convolutional encoder turns each window of a sequence into a latent, a GRU summarises the
past into a context, and one linear predictor per step ahead is trained, with the ML-CPC
bound, to pick the true future latent out of latents from other sequences and times.
The context vector is a feature of the whole sequence. Here the sequences are noisy
sinusoids whose frequency class is the label: invisible to a linear model of the raw
samples (random phases), easy to read from how the signal evolves.
"""

# %%
# Data and model
# --------------

import os
import sys

import matplotlib

if sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
    matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sk_mlcpc import ContrastivePredictiveCoding
from sk_mlcpc.datasets import make_frequency_sequences

X, y = make_frequency_sequences(1200, 96, n_classes=4, random_state=0)
X_test, y_test = make_frequency_sequences(600, 96, n_classes=4, random_state=1)

cpc = ContrastivePredictiveCoding(
    window=12, stride=6, prediction_steps=3, max_epochs=25, pooling="last", random_state=0
).fit(X)
print("held-out predictive bound per step ahead (nats):", np.round(cpc.mi_per_step_, 2))
print("cap at the evaluation batch:", round(cpc.mi_cap_, 2), "validity:", cpc.bound_validity_)

# %%
# A linear probe on the context vectors
# -------------------------------------
# The encoder never saw the labels; a logistic regression on its context vectors is
# compared with one on the raw samples reduced by PCA to the same width.

probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
cpc_accuracy = probe.fit(cpc.transform(X), y).score(cpc.transform(X_test), y_test)
pca = PCA(n_components=cpc.transform(X[:2]).shape[1], random_state=0).fit(X)
raw_accuracy = probe.fit(pca.transform(X), y).score(pca.transform(X_test), y_test)
print(f"probe accuracy: CPC contexts {cpc_accuracy:.3f}, raw + PCA {raw_accuracy:.3f}")

# %%
# Plot
# ----

fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
for label in range(4):
    axes[0].plot(X[np.flatnonzero(y == label)[0]] + 3 * label, lw=0.8)
axes[0].set(title="one sequence per class", xlabel="time", yticks=[])
steps = np.arange(1, len(cpc.mi_per_step_) + 1)
axes[1].bar(steps, cpc.mi_per_step_)
axes[1].set(title="held-out bound per step ahead", xlabel="k", ylabel="nats", xticks=steps)
axes[2].bar(["CPC contexts", "raw + PCA"], [cpc_accuracy, raw_accuracy])
axes[2].axhline(0.25, color="k", ls=":", lw=1, label="chance")
axes[2].set(title="linear probe accuracy", ylim=(0, 1))
axes[2].legend()
fig.tight_layout()
plt.show()
