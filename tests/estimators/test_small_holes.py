"""Small holes of issue 27, item 7: each a clear error where a wrong result or a misleading
message came before.

- distillation with a numeric ``unlabeled_value`` and string labels turned the rows
  marked ``"-1"`` into a class (``teacher=None``);
- ``search_mi`` with a fixed ``checkpoint_dir`` failed on its second fit with a message
  about "a checkpoint of a different fit", naming neither the search nor the way out;
- a ``model.json`` without its class said "load it with None.load".
"""

import numpy as np
import pytest
from sklearn.datasets import load_iris

from sk_mlcpc import ModelFileError, MutualInformationEstimator, estimate_mi, search_mi
from sk_mlcpc._estimators.distill import ContrastiveDistillationClassifier
from sk_mlcpc.datasets import make_correlated_gaussians
from tests.engine.test_persistence_load import _edited

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

FAST = dict(
    teacher_params={"hidden_layer_sizes": (8,), "max_iter": 20}, hidden_layer_sizes=(8,),
    n_components=4, n_negatives=16, batch_size=32, max_epochs=1, early_stopping=False,
    random_state=0,
)  # fmt: skip


@pytest.fixture(scope="module")
def named_iris():
    X, y = load_iris(return_X_y=True)
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    order = np.random.default_rng(0).permutation(len(y))
    return X[order], names[order]


# ------------------------------------------------------------------ distillation


@pytest.mark.parametrize(
    "marker, value",
    [(-1, -1), ("-1", -1), ("-1.0", -1), (-1, "-1")],
    ids=["-1 in a list of strings", "'-1' for -1", "'-1.0' for -1", "-1 for '-1'"],
)
def test_unlabelled_rows_written_as_the_other_type_are_refused(named_iris, marker, value):
    X, y = named_iris
    if isinstance(value, str):  # numeric labels, a string unlabeled_value
        y = np.unique(y, return_inverse=True)[1]
    marked = list(y)
    marked[30:] = [marker] * (len(marked) - 30)  # numpy reads ["setosa", ..., -1] as strings
    distiller = ContrastiveDistillationClassifier(unlabeled_value=value, **FAST)
    with pytest.raises(ValueError, match=r"would be taken for a class of their own") as caught:
        distiller.fit(X, np.asarray(marked))
    assert "unlabeled_value=" in str(caught.value)
    assert not hasattr(distiller, "classes_")


def test_unlabelled_rows_of_the_labels_type_still_work(named_iris):
    X, y = named_iris
    marked = y.copy()
    marked[30:] = ""
    distiller = ContrastiveDistillationClassifier(unlabeled_value="", **FAST).fit(X, marked)
    assert distiller.classes_.tolist() == sorted(set(y[:30]))


# ------------------------------------------------------------------ search_mi


@pytest.fixture(scope="module")
def gaussians():
    X, Y, _ = make_correlated_gaussians(240, 2, mi=1.0, random_state=0)
    return X, Y


@pytest.mark.parametrize("where", ["fixed", "grid"])
def test_search_mi_refuses_a_checkpoint_dir_naming_the_search(gaussians, tmp_path, where):
    X, Y = gaussians
    folder = tmp_path / "checkpoints"
    grid = {"hidden_layer_sizes": [(8,), (16,)]}
    fixed = dict(max_epochs=1, batch_size=32)
    if where == "fixed":
        fixed["checkpoint_dir"] = str(folder)
    else:
        grid["checkpoint_dir"] = [str(folder)]
    with pytest.raises(ValueError, match=r"search_mi cannot use checkpoint_dir=") as caught:
        search_mi(X, Y, grid, cv=2, random_state=0, **fixed)
    assert "best_params" in str(caught.value)
    assert not folder.exists()  # refused before any fit


def test_estimate_mi_with_a_search_says_the_same(gaussians, tmp_path):
    X, Y = gaussians
    with pytest.raises(ValueError, match=r"search_mi cannot use checkpoint_dir="):
        estimate_mi(
            X, Y, search={"batch_size": [32]}, search_cv=2, max_epochs=1,
            checkpoint_dir=str(tmp_path), random_state=0,
        )  # fmt: skip


def test_search_mi_without_checkpoints_is_unchanged(gaussians):
    X, Y = gaussians
    result = search_mi(
        X, Y, {"batch_size": [32]}, cv=2, random_state=0, max_epochs=1, checkpoint_dir=None
    )
    assert result.best_params == {"batch_size": 32}


# ------------------------------------------------------------------ model.json's class


@pytest.fixture(scope="module")
def saved(tmp_path_factory, gaussians):
    X, Y = gaussians
    path = tmp_path_factory.mktemp("model") / "mi.skmlcpc"
    MutualInformationEstimator(
        hidden_layer_sizes=(8,), max_epochs=1, batch_size=32, random_state=0
    ).fit(X, Y).save(path)
    return path.read_bytes()


@pytest.mark.parametrize(
    "edit, says",
    [
        (lambda m: m.pop("class"), "has no 'class' entry"),
        (lambda m: m.update({"class": None}), "has no 'class' entry"),
        (lambda m: m.update({"class": 3}), "has the class 3"),
        (lambda m: m.update({"class": "os.system('x')"}), "has the class \"os.system('x')\""),
    ],
    ids=["missing", "null", "a number", "not a name"],
)
def test_a_model_file_without_its_class_says_so(saved, tmp_path, edit, says):
    path = tmp_path / "edited.skmlcpc"
    _edited(saved, path, edit)
    with pytest.raises(ModelFileError) as caught:
        MutualInformationEstimator.load(path)
    message = str(caught.value)
    assert str(path) in message and says in message
    assert ".load" not in message  # no class to load it with


def test_a_model_file_of_another_class_still_names_it(saved, tmp_path):
    path = tmp_path / "edited.skmlcpc"
    _edited(saved, path, lambda m: m.update({"class": "ContrastiveEncoder"}))
    with pytest.raises(ModelFileError, match=r"load it with ContrastiveEncoder\.load"):
        MutualInformationEstimator.load(path)
