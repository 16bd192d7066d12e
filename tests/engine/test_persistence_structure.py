"""load() refuses a model file short of an entry the model needs, or at odds with its
parameters, naming the file and the entry (issue 27, item 5).

Before: a file missing a fitted attribute or a preprocessor loaded and failed later with
an ``AttributeError`` (or let one escape ``load``), and a nulled preprocessor loaded and
silently changed every score.
"""

import numpy as np
import pytest
from sklearn.datasets import load_iris

from sk_mlcpc import (
    ContrastiveEncoder,
    ContrastivePredictiveCoding,
    ModelFileError,
    MutualInformationEstimator,
)
from sk_mlcpc._estimators.distill import ContrastiveDistillationClassifier
from sk_mlcpc.datasets import make_correlated_gaussians, make_switching_ar
from tests.engine.test_persistence_load import _edited

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

MI = MutualInformationEstimator
ENCODER = ContrastiveEncoder
CPC = ContrastivePredictiveCoding
DISTILLER = ContrastiveDistillationClassifier


@pytest.fixture(scope="module")
def data():
    X, Y, _ = make_correlated_gaussians(400, 3, mi=1.0, random_state=0)
    return {"X": X, "Y": Y[:, :2], "S": make_switching_ar(60, random_state=0)[0]}


@pytest.fixture(scope="module")
def saved(tmp_path_factory, data):
    """The bytes of a saved model of each class (and of an MI model without preprocessing)."""
    folder = tmp_path_factory.mktemp("models")
    X, Y, S = data["X"], data["Y"], data["S"]
    small = dict(max_epochs=1, random_state=0)
    fits = {
        MI: lambda: MI(hidden_layer_sizes=(8,), batch_size=64, **small).fit(X, Y),
        "mi without preprocessing": lambda: MI(
            hidden_layer_sizes=(8,), batch_size=64, preprocessing=None, **small
        ).fit(X, Y),
        ENCODER: lambda: ENCODER(
            n_components=2, hidden_layer_sizes=(8,), batch_size=64, **small
        ).fit(X),
        CPC: lambda: CPC(**small).fit(S),
        DISTILLER: lambda: DISTILLER(
            teacher_params={"hidden_layer_sizes": (8,), "max_iter": 20},
            hidden_layer_sizes=(8,),
            n_components=4,
            n_negatives=16,
            batch_size=32,
            **small,
        ).fit(*load_iris(return_X_y=True)),
    }
    files = {}
    for key, fit in fits.items():
        path = folder / "model.skmlcpc"
        fit().save(path)
        files[key] = path.read_bytes()
    return files


def _without(section, key, *inner):
    def edit(manifest):
        entry = manifest[section]
        for name in inner:
            entry = entry[name]
        del entry[key]

    return edit


def _setting(section, key, value):
    def edit(manifest):
        manifest[section][key] = value

    return edit


def _without_array(preprocessor, attribute):
    def edit(manifest):
        manifest["preprocessors"][preprocessor]["arrays"].remove(attribute)

    return edit


EDITS = {
    # Required fitted attributes: each read by scoring, transforming or rebuilding the net.
    "mi without mi_": (MI, _without("fitted", "mi_"), r"fitted has no 'mi_'"),
    "mi without its y width": (MI, _without("fitted", "n_features_y_"), r"'n_features_y_'"),
    "mi without its test batch": (MI, _without("fitted", "eval_batch_size_"), r"eval_batch_size_"),
    "encoder without its width": (ENCODER, _without("fitted", "n_components_"), r"'n_components_'"),
    "cpc without its windows": (CPC, _without("fitted", "n_windows_"), r"has no 'n_windows_'"),
    "distiller without classes": (
        DISTILLER, _without("fitted", "_classes_record"), r"fitted has no '_classes_record'"
    ),
    # Preprocessors: present, and as the parameters say.
    "mi without a preprocessor": (
        MI, _without("preprocessors", "preprocessor_y_"), r"preprocessors has no 'preprocessor_y_'"
    ),
    "mi with a nulled preprocessor": (
        MI,
        _setting("preprocessors", "preprocessor_x_", None),
        r"preprocessors\['preprocessor_x_'\] is null, but preprocessing='quantile' fits",
    ),
    "mi whose parameters say another preprocessing": (
        MI,
        _setting("params", "preprocessing", "standard"),
        r"'preprocessor_x_'\] is a \w*QuantileTransformer, but preprocessing='standard' fits a "
        r"StandardScaler",
    ),
    "mi whose parameters say none": (
        MI, _setting("params", "preprocessing", None), r"preprocessing=None fits none \(null\)"
    ),
    "encoder with a nulled preprocessor": (
        ENCODER, _setting("preprocessors", "preprocessor_", None), r"'preprocessor_'\] is null"
    ),
    "distiller with a nulled teacher scaler": (
        DISTILLER,
        _setting("preprocessors", "_teacher_scaler", None),
        r"'_teacher_scaler'\] is null, but distillation fits a StandardScaler",
    ),
    "distiller whose parameters say no preprocessing": (
        DISTILLER,
        _setting("params", "preprocessing", None),
        r"'preprocessor_'\] is a StandardScaler",
    ),
    # A preprocessor short of a fitted array, or of another width.
    "a scaler without its scale": (
        ENCODER, _without_array("preprocessor_", "scale_"), r"'preprocessor_'\] has no 'scale_'"
    ),
    "quantiles without their levels": (
        MI, _without_array("preprocessor_x_", "references_"), r"has no 'references_'"
    ),
    "a scaler of another width": (
        ENCODER,
        lambda m: m["preprocessors"]["preprocessor_"]["scalars"].update(n_features_in_=5),
        r"'preprocessor_'\]\.mean_ has shape \(3,\), not \(5,\)",
    ),
    "a y preprocessor of another width than the model's": (
        MI,
        _setting("fitted", "n_features_y_", 1),
        r"'preprocessor_y_'\] transforms 2 columns, but fitted\['n_features_y_'\] is 1",
    ),
}  # fmt: skip


@pytest.mark.parametrize("cls, edit, match", EDITS.values(), ids=EDITS.keys())
def test_an_incomplete_or_inconsistent_file_is_refused_naming_file_and_entry(
    saved, tmp_path, cls, edit, match
):
    path = tmp_path / "edited.skmlcpc"
    _edited(saved[cls], path, edit)
    with pytest.raises(ModelFileError, match=match) as caught:
        cls.load(path)
    assert str(path) in str(caught.value)


def test_a_model_fitted_without_preprocessing_loads_and_scores_alike(saved, data, tmp_path):
    path = tmp_path / "model.skmlcpc"
    path.write_bytes(saved["mi without preprocessing"])
    loaded = MI.load(path)
    assert loaded.preprocessor_x_ is None and loaded.preprocessor_y_ is None
    again = tmp_path / "again.skmlcpc"
    loaded.save(again)
    np.testing.assert_array_equal(
        MI.load(again).score_samples(data["X"], data["Y"]),
        loaded.score_samples(data["X"], data["Y"]),
    )


@pytest.mark.parametrize("cls", [MI, ENCODER, CPC, DISTILLER], ids=lambda c: c.__name__)
def test_every_class_loads_its_own_files_unedited(saved, tmp_path, cls):
    path = tmp_path / "model.skmlcpc"
    path.write_bytes(saved[cls])
    assert cls.load(path).n_restores_ == 0
