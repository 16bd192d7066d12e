"""Write the model files of this folder and the outputs they must reproduce.

Run from a checkout of the version under test (here commit 306e35e, package 0.1.0):
``python make_models.py OUT_DIR``. tests/engine/test_persistence_load.py loads the files
with the current code and compares the outputs with expected.json.
"""

import json
import sys
import warnings

from sklearn.datasets import load_iris

from sk_mlcpc import (
    ContrastiveDistillationClassifier,
    ContrastiveEncoder,
    ContrastivePredictiveCoding,
    MutualInformationEstimator,
)
from sk_mlcpc.datasets import make_correlated_gaussians, make_switching_ar


def main(out: str) -> None:
    warnings.simplefilter("ignore")
    X, Y, _ = make_correlated_gaussians(400, 2, mi=1.0, random_state=0)
    S = make_switching_ar(60, random_state=0)[0]
    Xi, yi = load_iris(return_X_y=True)
    tiny = {"hidden_layer_sizes": (4,), "n_components": 2, "random_state": 0}
    models = {
        "mi": MutualInformationEstimator(max_epochs=2, **tiny).fit(X, Y),
        "encoder": ContrastiveEncoder(projection_dim=2, max_epochs=2, **tiny).fit(X),
        "cpc": ContrastivePredictiveCoding(latent_dim=2, max_epochs=1, **tiny).fit(S),
        "distiller": ContrastiveDistillationClassifier(n_negatives=8, max_epochs=1, **tiny).fit(
            Xi, yi
        ),
    }
    expected = {
        "mi": [float(models["mi"].mi_), models["mi"].transform(X[:3]).tolist()],
        "encoder": [float(models["encoder"].mi_), models["encoder"].transform(X[:3]).tolist()],
        "cpc": [float(models["cpc"].mi_), models["cpc"].transform(S[:3]).tolist()],
        "distiller": [None, models["distiller"].predict_proba(Xi[:3]).tolist()],
    }
    for name, model in models.items():
        model.save(f"{out}/{name}.skmlcpc")
    with open(f"{out}/expected.json", "w") as file:
        json.dump(expected, file, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
