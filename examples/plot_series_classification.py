"""
Series classification with CPC features in a Pipeline
=====================================================

:class:`~sk_mlcpc.ContrastivePredictiveCoding` learns features of time series without
labels and returns one row per series, so it sits in a scikit-learn
:class:`~sklearn.pipeline.Pipeline` in front of any classifier. It takes series in
aeon's layouts: a 3-D array ``(n_cases, n_channels, n_timepoints)`` or a list of 2-D
arrays of different lengths. Its defaults fit the series: a dilated causal convolution
encoder whose receptive field (``window="auto"``) follows the series length, and features
pooled over time from every layer, plus the latents averaged over a few equal time
segments, which keep *when* things happen (``pooling="multiscale"``, ``n_segments``).

The series here are two-channel noisy sinusoids made by
:func:`~sk_mlcpc.datasets.make_frequency_sequences`, whose frequency class is the label.
Their phase is random, so every class has mean zero at every time point: a linear
model of the raw samples cannot see the class. The same linear probe is fitted on the
raw series and on the CPC features. The UCR/UEA version of this comparison, with
MiniRocket, is ``benchmarks/series.py`` (see the benchmarks page).
"""

# %%
# Series in aeon's 3-D layout
# ---------------------------

import os
import sys

import matplotlib

if sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
    matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
from sklearn.linear_model import RidgeClassifierCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sk_mlcpc import ContrastivePredictiveCoding
from sk_mlcpc.datasets import make_frequency_sequences


def series(n_cases, seed):
    """``(n_cases, 2, 64)`` series (aeon's layout) and their labels."""
    X, y = make_frequency_sequences(n_cases, 64, n_classes=4, n_channels=2, random_state=seed)
    # make_frequency_sequences returns flattened, time-major rows (n, T * C).
    return X.reshape(n_cases, 64, 2).transpose(0, 2, 1), y


X_train, y_train = series(400, 0)
X_test, y_test = series(400, 1)
print("train:", X_train.shape, "test:", X_test.shape)

# %%
# The raw series and the CPC features, with the same probe
# --------------------------------------------------------
#
# ``ContrastivePredictiveCoding`` ignores the labels a Pipeline passes to its ``fit``:
# they reach the probe only.


def probe():
    return make_pipeline(StandardScaler(), RidgeClassifierCV(alphas=np.logspace(-3, 3, 10)))


raw = probe().fit(X_train.reshape(len(X_train), -1), y_train)
raw_accuracy = raw.score(X_test.reshape(len(X_test), -1), y_test)

pipe = make_pipeline(ContrastivePredictiveCoding(max_epochs=15, random_state=0), probe())
pipe.fit(X_train, y_train)
cpc_accuracy = pipe.score(X_test, y_test)
cpc = pipe[0]
print(
    f"window_={cpc.window_}, stride_={cpc.stride_}, {cpc.transform(X_test[:1]).shape[1]} features"
)
print(f"probe accuracy: raw series {raw_accuracy:.3f}, CPC features {cpc_accuracy:.3f}")

# %%
# What ``score`` reports
# ----------------------
#
# ``mi_`` is the held-out predictive bound in nats: a lower bound (for ML-CPC at
# ``alpha="auto"``, valid by the paper's claim and our search) on the average over
# anchor windows ``t`` and steps ahead ``k`` of the information between the context
# ``c_t`` and the latent of window ``t + k``, measured on series that chose nothing
# during training. The pooled features do not enter it.
print(f"mi_ = {cpc.mi_:.2f} nats (cap {cpc.mi_cap_:.2f}), validity: {cpc.bound_validity_}")
print("per step ahead:", np.round(cpc.mi_per_step_, 2))

# %%
# Series of different lengths
# ---------------------------
#
# A list of ``(n_channels, n_timepoints_i)`` arrays is padded after each series' end;
# the encoder is causal and the pooling reads the real time points only, so a series'
# features do not depend on the series it is batched with.
rng = np.random.default_rng(0)
cut_train = [x[:, : rng.integers(40, 65)] for x in X_train]
cut_test = [x[:, : rng.integers(40, 65)] for x in X_test]
unequal = make_pipeline(ContrastivePredictiveCoding(max_epochs=15, random_state=0), probe())
unequal_accuracy = unequal.fit(cut_train, y_train).score(cut_test, y_test)
alone = unequal[0].transform(cut_test[:1])
together = unequal[0].transform(cut_test)[:1]
print(f"unequal lengths (40 to 64 time points): accuracy {unequal_accuracy:.3f}")
print("same features alone and in a batch:", np.allclose(alone, together, atol=1e-5))

# %%
# The phase of these sinusoids is random, so *when* a pattern occurs says nothing about
# the class, and the positional features (``n_segments_`` time segments of the latents)
# only add noise for the probe. ``n_segments=0`` keeps the position-free pooling.
position_free = make_pipeline(
    ContrastivePredictiveCoding(n_segments=0, max_epochs=15, random_state=0), probe()
)
position_free_accuracy = position_free.fit(cut_train, y_train).score(cut_test, y_test)
print(
    f"{unequal[0].n_segments_} segments: {unequal_accuracy:.3f}, "
    f"no segments: {position_free_accuracy:.3f}"
)

# %%
# Summary
# -------

fig, ax = plt.subplots(figsize=(5.5, 3.2))
names = ["raw series", "CPC features", "CPC features,\nunequal lengths"]
values = [raw_accuracy, cpc_accuracy, unequal_accuracy]
ax.bar(names, values, color=["tab:gray", "tab:red", "tab:orange"])
for index, value in enumerate(values):
    ax.text(index, value + 0.01, f"{value:.2f}", ha="center")
ax.axhline(0.25, ls=":", color="k", lw=1, label="chance")
ax.set_ylim(0, 1.1)
ax.set_ylabel("test accuracy (same linear probe)")
ax.legend(loc="upper left")
fig.tight_layout()
plt.show()
