"""ContrastiveEncoder's blockwise path: the dense fit without the score matrix."""

import json
import pickle
import zipfile

import numpy as np
import pytest
import torch
from sklearn.base import clone

from sk_mlcpc import ContrastiveEncoder
from sk_mlcpc._engine.encoder_net import RowDataset, ViewBatches, ViewPairModule
from sk_mlcpc._engine.fitting import auto_blockwise
from sk_mlcpc.blockwise import blockwise_bound, separable_parts
from sk_mlcpc.bounds import BOUNDS, get_bound
from sk_mlcpc.datasets import make_correlated_gaussians


def _fast(**params):
    defaults = dict(
        n_components=4, hidden_layer_sizes=(16,), projection_dim=8, max_epochs=3,
        batch_size=64, random_state=0,
    )  # fmt: skip
    return ContrastiveEncoder(**{**defaults, **params})


@pytest.fixture(scope="module")
def rows():
    X, _, _ = make_correlated_gaussians(400, 3, mi=1.0, random_state=0)
    return X


@pytest.fixture
def no_score_matrix(monkeypatch):
    """Make any use of the dense score matrix fail: the blockwise path must not need it."""

    def dense(self, x, y):
        raise AssertionError("the n x n score matrix was computed")

    monkeypatch.setattr(ViewPairModule, "forward", dense)


def test_pair_module_factors_reproduce_its_scores():
    torch.manual_seed(0)
    module = ViewPairModule(torch.nn.Linear(3, 5), torch.nn.Linear(5, 4), temperature=0.3)
    with torch.no_grad():
        module.offset.fill_(0.7)
    x, y = torch.randn(9, 3), torch.randn(9, 3)
    g, h, a, b = separable_parts(module, x, y)
    assert g.shape == h.shape == (9, 4) and a.shape == (9,) and b is None
    torch.testing.assert_close(g @ h.T + a[:, None], module(x, y))
    for name in ("ml_cpc", "nwj"):
        torch.testing.assert_close(
            blockwise_bound(name, g, h, a=a, b=b, block_size=4), get_bound(name)(module(x, y))
        )


@pytest.mark.parametrize(
    "params",
    [
        dict(objective="ml_cpc", alpha=0.5),
        dict(objective="ml_cpc", alpha="auto"),
        dict(objective="ml_cpc", alpha=4.0, alpha_final=0.5, alpha_schedule="geometric"),
        dict(objective="cpc"),
        dict(objective="nwj"),
    ],
    ids=["ml_cpc-0.5", "ml_cpc-auto", "ml_cpc-schedule", "cpc", "nwj"],
)
def test_blockwise_fit_matches_the_dense_fit(rows, params):
    dense = _fast(blockwise=False, **params).fit(rows)
    tiled = _fast(blockwise=True, **params).fit(rows)
    assert tiled.blockwise_ is True and tiled.net_.blockwise is True
    assert dense.blockwise_ is False and dense.net_.blockwise is False
    # Summation order differs, so the trajectories agree to float rounding, not bits.
    for column in ("train_loss", "valid_loss"):
        np.testing.assert_allclose(
            tiled.history_[:, column], dense.history_[:, column], rtol=1e-4, atol=1e-5
        )
    if "alpha_schedule" in params:
        np.testing.assert_allclose(tiled.history_[:, "alpha"], dense.history_[:, "alpha"])
        assert tiled.net_.criterion_.eval_alpha == dense.alpha_ == 0.5
    np.testing.assert_allclose(tiled.transform(rows), dense.transform(rows), rtol=1e-4, atol=1e-5)
    assert tiled.mi_ == pytest.approx(dense.mi_, abs=1e-4)
    assert tiled.score(rows) == pytest.approx(dense.score(rows), abs=1e-4)


def test_blockwise_fit_never_builds_the_score_matrix(rows, no_score_matrix):
    encoder = _fast(blockwise=True, objective="nwj", max_epochs=2).fit(rows)
    assert np.isfinite(encoder.mi_) and np.isfinite(encoder.score(rows))
    with pytest.raises(AssertionError, match="score matrix"):
        _fast(blockwise=False, max_epochs=1).fit(rows)


@pytest.mark.parametrize("objective", sorted(BOUNDS))
def test_one_training_step_has_the_dense_gradients(rows, objective):
    encoder = _fast(objective=objective, max_epochs=1, blockwise=False).fit(rows)
    net = encoder.net_
    dataset = RowDataset(encoder._preprocess(rows))
    views = ViewBatches(dataset, net.batch_size, net.view, shuffle=False, seed=0)
    batch = next(iter(views))  # ({"x": view_a, "y": view_b}, None), as in training
    assert batch[0]["x"].shape == (64, 3)
    net.criterion_.block_size = 7  # several tiles per side, the last one partial
    criterion_state = {k: v.clone() for k, v in net.criterion_.state_dict().items()}
    grads, losses = {}, {}
    for blockwise in (False, True):
        net.blockwise = blockwise
        net.criterion_.load_state_dict(criterion_state)  # MINE's moving average
        net.optimizer_.zero_grad()
        losses[blockwise] = net.train_step_single(batch)["loss"].detach()
        grads[blockwise] = {
            name: param.grad.clone() for name, param in net.module_.named_parameters()
        }
    torch.testing.assert_close(losses[True], losses[False], rtol=1e-5, atol=1e-6)
    assert grads[True].keys() == grads[False].keys() and "offset" in grads[True]
    for name, dense_grad in grads[False].items():
        torch.testing.assert_close(grads[True][name], dense_grad, rtol=1e-4, atol=1e-6)


def test_bf16_autocast_blockwise_fit(rows):
    dense = _fast(blockwise=False, precision="bf16").fit(rows)
    tiled = _fast(blockwise=True, precision="bf16").fit(rows)
    assert tiled.net_.blockwise is True
    losses = np.asarray(tiled.history_[:, "train_loss"])
    assert np.all(np.isfinite(losses)) and np.isfinite(tiled.mi_)
    # The dense path multiplies in bf16, the blockwise one upcasts the factors first.
    np.testing.assert_allclose(losses, dense.history_[:, "train_loss"], atol=2e-2)


def test_auto_turns_on_from_2048_rows_per_batch():
    X, _, _ = make_correlated_gaussians(2200, 3, mi=1.0, random_state=0)
    tiny = dict(
        n_components=2, hidden_layer_sizes=(4,), projection_dim=4, max_epochs=1,
        validation_fraction=0.05, random_state=0,
    )  # fmt: skip
    assert ContrastiveEncoder(batch_size=2047, **tiny).fit(X).blockwise_ is False
    large = ContrastiveEncoder(batch_size=2048, **tiny).fit(X)
    assert large.batch_size_ == 2048 and large.blockwise_ is True and large.net_.blockwise
    # An evaluation batch of up to 4,096 rows is scored as one matrix and does not switch
    # training to tiles (only a larger one does); an explicit bool overrides the sizes.
    no_holdout = {**tiny, "validation_fraction": 0.0, "batch_size": 512}
    assert ContrastiveEncoder(eval_batch_size=2048, **no_holdout).fit(X).blockwise_ is False
    assert auto_blockwise(512, 4097) and not auto_blockwise(512, 4096)
    assert auto_blockwise(2048, 0) and not auto_blockwise(2047, 0)
    assert ContrastiveEncoder(batch_size=2048, blockwise=False, **tiny).fit(X).blockwise_ is False
    assert ContrastiveEncoder(blockwise=True, **no_holdout).fit(X).blockwise_ is True


def test_clone_pickle_and_save_load_keep_blockwise(rows, tmp_path):
    encoder = _fast(blockwise=True, max_epochs=2).fit(rows)
    assert clone(encoder).blockwise is True
    assert clone(_fast(blockwise="auto")).get_params()["blockwise"] == "auto"

    copy = pickle.loads(pickle.dumps(encoder))
    assert copy.blockwise is True and copy.blockwise_ is True and copy.net_.blockwise is True
    np.testing.assert_array_equal(copy.transform(rows), encoder.transform(rows))

    path = tmp_path / "encoder.skmlcpc"
    encoder.save(path)
    loaded = ContrastiveEncoder.load(path, device="cpu")
    assert loaded.blockwise is True and loaded.blockwise_ is True and loaded.net_.blockwise
    np.testing.assert_array_equal(loaded.transform(rows), encoder.transform(rows))
    assert loaded.score(rows) == pytest.approx(encoder.score(rows), abs=1e-6)


def test_a_file_saved_before_the_option_loads_as_dense(rows, tmp_path):
    path = tmp_path / "old.skmlcpc"
    _fast(max_epochs=1).fit(rows).save(path)
    with zipfile.ZipFile(path) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    manifest = json.loads(files["model.json"])
    del manifest["params"]["blockwise"], manifest["fitted"]["blockwise_"]
    files["model.json"] = json.dumps(manifest).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    loaded = ContrastiveEncoder.load(path, device="cpu")
    assert loaded.blockwise == "auto" and loaded.blockwise_ is False
    assert loaded.net_.blockwise is False


@pytest.mark.parametrize("value", ["yes", "Auto", 1, None, 2.0])
def test_invalid_blockwise_is_rejected(rows, value):
    with pytest.raises((ValueError, TypeError), match="blockwise"):
        _fast(blockwise=value).fit(rows)
