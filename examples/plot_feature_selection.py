"""
Selecting features by mutual information
========================================

:class:`~sk_mlcpc.MutualInformationSelector` chooses columns by their held-out
*conditional* mutual information with the target: each column's gain is what it adds to
the columns already chosen. This example builds a task with the two patterns that the
univariate scores of :func:`~sklearn.feature_selection.mutual_info_classif` get wrong: a
pair of columns that matters only jointly (an XOR), and three noisy copies of one
informative column.
"""

# %%
# A task with a known answer
# --------------------------
# ``y`` depends on the XOR of the signs of ``xor_a`` and ``xor_b`` and on a latent
# ``z`` that the data show three times, with a little noise (``copy_1`` to
# ``copy_3``); seven more columns are noise. Either XOR column alone says nothing
# about ``y``: given ``xor_a``, the sign of ``xor_a * xor_b`` is still a fair coin.

import os
import sys
import warnings

import matplotlib

if sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
    matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.feature_selection import SelectKBest, mutual_info_classif
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline

from sk_mlcpc import MutualInformationSelector

rng = np.random.default_rng(0)
n = 2000
xor_a, xor_b, z = rng.standard_normal((3, n))
copies = z[:, None] + 0.2 * rng.standard_normal((n, 3))
noise = rng.standard_normal((n, 7))
y = (2.0 * np.sign(xor_a * xor_b) + 1.5 * z + 0.5 * rng.standard_normal(n) > 0).astype(int)
X = pd.DataFrame(
    np.column_stack([xor_a, xor_b, copies, noise]),
    columns=["xor_a", "xor_b", "copy_1", "copy_2", "copy_3"] + [f"noise_{i}" for i in range(7)],
)

# %%
# The univariate scores
# ---------------------
# :func:`~sklearn.feature_selection.mutual_info_classif` scores each column alone. The
# three copies come first; the XOR pair scores like the noise columns. Asked for three
# columns, :class:`~sklearn.feature_selection.SelectKBest` returns the three copies of
# the same information.

univariate = pd.Series(mutual_info_classif(X, y, random_state=0), index=X.columns)
print(univariate.sort_values(ascending=False).round(3).to_string())
kbest = SelectKBest(lambda X, y: mutual_info_classif(X, y, random_state=0), k=3).fit(X, y)
print("SelectKBest(k=3):", list(kbest.get_feature_names_out()))

# %%
# Selection by conditional mutual information
# -------------------------------------------
# With ``n_features_to_select="auto"`` the selector adds columns while the next gain's
# 95% interval lies above zero. The look-ahead weighs pairs of columns at each step,
# which is how it sees the XOR pair although neither member gains anything alone; once
# one copy of ``z`` is chosen, the others add little.

with warnings.catch_warnings():
    # Notes about the training (e.g. the number of epochs) are not the point here.
    warnings.simplefilter("ignore")
    selector = MutualInformationSelector(random_state=0).fit(X, y)

chosen = selector.get_feature_names_out()
print("chosen, in order:", list(X.columns[selector.selected_order_]))
print(f"I(chosen; y) on the test rows: {selector.mi_:.3f} nats (H(y) = log 2 = {np.log(2):.3f})")
for name, gain, (low, high) in zip(
    X.columns[selector.selected_order_], selector.gains_, selector.gains_ci_
):
    print(f"  {name:8s} gain {gain:.3f} nats  95% interval [{low:.3f}, {high:.3f}]")

# %%
# The gains with their intervals, in the order chosen. The gains add up to ``mi_``. When
# the look-ahead takes a pair, its two columns come in together, and the pair's gain is
# split between them in the order listed: the first member's share is about zero and
# the second carries the pair's information.

fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
order = univariate.sort_values(ascending=False)
colors = ["tab:red" if c.startswith("xor") else "tab:blue" for c in order.index]
left.bar(order.index, order.values, color=colors)
left.set_title("mutual_info_classif, each column alone")
left.set_ylabel("nats")
left.tick_params(axis="x", rotation=90)

names = X.columns[selector.selected_order_]
errors = np.abs(selector.gains_ci_.T - selector.gains_)
colors = ["tab:red" if c.startswith("xor") else "tab:blue" for c in names]
right.bar(names, selector.gains_, yerr=errors, capsize=4, color=colors)
right.axhline(0, color="black", linewidth=0.8)
right.set_title("MutualInformationSelector: gains, 95% intervals")
right.set_ylabel("nats")
right.tick_params(axis="x", rotation=90)
fig.tight_layout()
plt.show()

# %%
# In a Pipeline
# -------------
# The selector is a scikit-learn transformer: in a Pipeline it is refitted on the
# training rows of every fold, so the score below never sees a test row at selection
# time. The downstream model is a gradient-boosted tree model, which can use an XOR. Both
# selectors get three columns.

folds = StratifiedKFold(3, shuffle=True, random_state=0)
model = HistGradientBoostingClassifier(random_state=0)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    ours = cross_val_score(
        make_pipeline(MutualInformationSelector(3, random_state=0), model),
        X,
        y,
        cv=folds,
    )
    theirs = cross_val_score(make_pipeline(kbest, model), X, y, cv=folds)
everything = cross_val_score(model, X, y, cv=folds)
print(f"accuracy, 3 columns by MutualInformationSelector: {ours.mean():.3f}")
print(f"accuracy, 3 columns by SelectKBest(mutual_info_classif): {theirs.mean():.3f}")
print(f"accuracy, all 12 columns: {everything.mean():.3f}")

# %%
# ``n_features_to_select`` is a parameter like any other, so
# :class:`~sklearn.model_selection.GridSearchCV` can choose it
# (``param_grid={"mutualinformationselector__n_features_to_select": [1, 2, 3, 4]}``
# on the Pipeline above). See :doc:`/user_guide/feature_selection` for what the
# selector computes and for when the univariate scores are enough.
