"""
Contrastive features in a classification pipeline
=================================================

:class:`~sk_mlcpc.ContrastiveEncoder` learns an embedding from unlabelled rows: two
randomly corrupted views of each row are pulled together, other rows pushed apart, with
the ML-CPC bound as the objective. It is a transformer, so it goes in a
:class:`~sklearn.pipeline.Pipeline` in front of a classifier, and the labels the Pipeline
passes to ``fit`` never reach it. Here we compare it with PCA of the same width on the
handwritten digits, with few and with all labels.
"""

# %%
# Pipelines
# ---------

import os
import sys
import warnings

import matplotlib

if sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
    matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sk_mlcpc import ContrastiveEncoder, SaturationWarning

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0)
width = 16


def probe(representation):
    return make_pipeline(representation, StandardScaler(), LogisticRegression(max_iter=3000))


# %%
# The encoder is fitted once on all training rows, without labels (as in a
# semi-supervised setting), and reused for the probes; ``history_`` holds the held-out
# bound between views per epoch.

# The bound between two views of a digit is near its cap (the views share most of their
# pixels), which the encoder flags with ``saturated_`` and a SaturationWarning; here the
# features are what matters, so the flag is printed instead of the warning.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", SaturationWarning)
    encoder = ContrastiveEncoder(n_components=width, max_epochs=60, random_state=0).fit(X_train)
pca = make_pipeline(StandardScaler(), PCA(n_components=width, random_state=0)).fit(X_train)
print(
    f"held-out bound between views: {encoder.mi_:.2f} nats (cap {encoder.mi_cap_:.2f}, "
    f"saturated: {encoder.saturated_})"
)


class Fitted:
    """Wrap an already fitted transformer so that the Pipeline does not refit it."""

    def __init__(self, transformer):
        self.transformer = transformer

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return self.transformer.transform(X)


rng = np.random.default_rng(0)
accuracies = {"raw": [], "pca": [], "contrastive": []}
label_counts = [30, 100, 300, len(X_train)]
for n_labels in label_counts:
    rows = rng.choice(len(X_train), size=n_labels, replace=False)
    for name, representation in (
        ("raw", "passthrough"),
        ("pca", Fitted(pca)),
        ("contrastive", Fitted(encoder)),
    ):
        model = probe(representation).fit(X_train[rows], y_train[rows])
        accuracies[name].append(model.score(X_test, y_test))

for name, values in accuracies.items():
    print(f"{name:12s}", " ".join(f"{v:.3f}" for v in values))

# %%
# Accuracy against the number of labels, and the training trace
# --------------------------------------------------------------
# The fair comparison is with PCA at the same width: both compress 64 pixels into 16
# numbers without labels. The raw pixels are four times wider; the benchmark page
# (``benchmarks/representation.py``) repeats this over datasets and seeds.

fig, axes = plt.subplots(1, 2, figsize=(10, 4))
for name, values in accuracies.items():
    axes[0].plot(label_counts, values, marker="o", label=name)
axes[0].set(
    xscale="log",
    xlabel="labelled training rows",
    ylabel="test accuracy",
    title=f"linear probe, width {width}",
)
axes[0].legend()
axes[1].plot(encoder.history_[:, "train_mi"], label="train")
axes[1].plot(encoder.history_[:, "valid_mi"], label="held out")
axes[1].set(xlabel="epoch", ylabel="bound between views (nats)", title="ContrastiveEncoder")
axes[1].legend()
fig.tight_layout()
plt.show()

# %%
# In a grid search
# ----------------
# The whole pipeline can be tuned by the downstream score; a small grid keeps this fast.

from sklearn.model_selection import GridSearchCV

with warnings.catch_warnings():  # the view bound's saturation, as above
    warnings.simplefilter("ignore", SaturationWarning)
    search = GridSearchCV(
        make_pipeline(
            ContrastiveEncoder(n_components=width, max_epochs=15, random_state=0),
            LogisticRegression(max_iter=3000),
        ),
        {"contrastiveencoder__corruption_rate": [0.2, 0.5]},
        cv=2,
    ).fit(X_train, y_train)
print(search.best_params_, f"cv accuracy {search.best_score_:.3f}")
