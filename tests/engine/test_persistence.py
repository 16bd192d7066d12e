"""save/load without pickle, warm starts, and resuming an interrupted fit from a checkpoint."""

import json
import pickle
import zipfile

import numpy as np
import pytest
import torch
from skorch.callbacks import Callback

from sk_mlcpc import ContrastiveEncoder, ModelFileError, MutualInformationEstimator
from sk_mlcpc.datasets import make_correlated_gaussians


@pytest.fixture(scope="module")
def gaussians():
    X, Y, _ = make_correlated_gaussians(1500, 3, mi=1.0, random_state=0)
    return X.astype(np.float32), Y.astype(np.float32)


def _mi(**params):
    defaults = dict(hidden_layer_sizes=(16,), max_epochs=4, batch_size=64, random_state=0)
    return MutualInformationEstimator(**{**defaults, **params})


def _encoder(**params):
    defaults = dict(
        n_components=4, hidden_layer_sizes=(16,), projection_dim=8, max_epochs=4,
        batch_size=64, random_state=0,
    )  # fmt: skip
    return ContrastiveEncoder(**{**defaults, **params})


def _same_model(a, b, X, Y=None):
    if Y is None:
        np.testing.assert_array_equal(a.transform(X), b.transform(X))
        assert a.score(X) == b.score(X)
    else:
        np.testing.assert_array_equal(a.score_samples(X, Y), b.score_samples(X, Y))
        np.testing.assert_array_equal(a.transform(X), b.transform(X))
        assert a.score(X, Y) == b.score(X, Y)


# ------------------------------------------------------------------ save / load


@pytest.mark.parametrize("preprocessing", ["quantile", "standard", None])
def test_mi_estimator_round_trip(gaussians, tmp_path, preprocessing):
    X, Y = gaussians
    fitted = _mi(preprocessing=preprocessing, objective="mine").fit(X, Y)
    fitted.save(tmp_path / "model.skmlcpc")
    loaded = MutualInformationEstimator.load(tmp_path / "model.skmlcpc")
    _same_model(fitted, loaded, X, Y)
    assert loaded.get_params() == fitted.get_params()
    for name in ("mi_", "mi_cap_", "alpha_", "bound_validity_", "n_features_y_", "n_epochs_"):
        assert getattr(loaded, name) == getattr(fitted, name)
    assert loaded.history_[:, "valid_mi"] == fitted.history_[:, "valid_mi"]
    # MINE's moving average is part of the criterion's state.
    assert torch.equal(
        loaded.net_.criterion_.log_partition_ema, fitted.net_.criterion_.log_partition_ema
    )


def test_encoder_round_trip_with_feature_names(gaussians, tmp_path):
    pd = pytest.importorskip("pandas")
    X, _ = gaussians
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    fitted = _encoder(alpha=4.0, alpha_final=0.5, alpha_schedule="cosine").fit(frame)
    fitted.save(tmp_path / "encoder.skmlcpc")
    loaded = ContrastiveEncoder.load(tmp_path / "encoder.skmlcpc", device="cpu")
    _same_model(fitted, loaded, frame)
    assert list(loaded.feature_names_in_) == ["a", "b", "c"]
    assert loaded.alpha_ == 0.5 and loaded.alpha_initial_ == 4.0


def test_loaded_model_keeps_training_with_warm_start(gaussians, tmp_path):
    X, Y = gaussians
    fitted = _mi(max_epochs=2, early_stopping=False).fit(X, Y)
    fitted.save(tmp_path / "model.skmlcpc")
    loaded = MutualInformationEstimator.load(tmp_path / "model.skmlcpc")
    loaded.set_params(warm_start=True).fit(X, Y)
    fitted.set_params(warm_start=True).fit(X, Y)
    assert len(loaded.history_) == len(fitted.history_) == 4
    _same_model(fitted, loaded, X, Y)


def test_load_uses_weights_only_and_no_pickle(gaussians, tmp_path):
    X, Y = gaussians
    _mi(max_epochs=1).fit(X, Y).save(tmp_path / "model.skmlcpc")
    with zipfile.ZipFile(tmp_path / "model.skmlcpc") as archive:
        assert sorted(archive.namelist()) == ["model.json", "weights.pt"]
        manifest = json.loads(archive.read("model.json"))
        weights = archive.read("weights.pt")
    assert manifest["class"] == "MutualInformationEstimator"
    assert manifest["format_version"] == 1
    # The tensor file loads under torch's safe unpickler.
    torch.load(__import__("io").BytesIO(weights), weights_only=True)


def _rewrite(path, **changes):
    with zipfile.ZipFile(path) as archive:
        manifest = json.loads(archive.read("model.json"))
        weights = archive.read("weights.pt")
    manifest.update(changes)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("model.json", json.dumps(manifest))
        archive.writestr("weights.pt", weights)


def test_corrupted_and_incompatible_files_are_reported(gaussians, tmp_path):
    X, Y = gaussians
    path = tmp_path / "model.skmlcpc"
    _mi(max_epochs=1).fit(X, Y).save(path)
    data = path.read_bytes()

    truncated = tmp_path / "truncated.skmlcpc"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="not a readable sk-mlcpc model file"):
        MutualInformationEstimator.load(truncated)

    flipped = tmp_path / "flipped.skmlcpc"
    middle = len(data) // 2
    flipped.write_bytes(data[:middle] + bytes(b ^ 0xFF for b in data[middle : middle + 64]))
    with pytest.raises(ModelFileError):
        MutualInformationEstimator.load(flipped)

    not_a_model = tmp_path / "notes.txt"
    not_a_model.write_text("hello")
    with pytest.raises(ModelFileError, match="not a readable"):
        MutualInformationEstimator.load(not_a_model)

    with pytest.raises(ModelFileError, match="holds a MutualInformationEstimator"):
        ContrastiveEncoder.load(path)

    future = tmp_path / "future.skmlcpc"
    future.write_bytes(data)
    _rewrite(future, package_version="1.0.0")
    with pytest.raises(ModelFileError, match="same major version"):
        MutualInformationEstimator.load(future)

    edited = tmp_path / "edited.skmlcpc"
    edited.write_bytes(data)
    _rewrite(edited, params={"hidden_layer_sizes": {"__tuple__": [99]}})
    with pytest.raises(ModelFileError, match="could not be restored"):
        MutualInformationEstimator.load(edited)

    with pytest.raises(FileNotFoundError):
        MutualInformationEstimator.load(tmp_path / "missing.skmlcpc")


def _module_level_view(x, generator):
    return x + torch.randn(x.shape, generator=generator)


def test_parameters_that_need_pickle_are_refused_by_save(gaussians, tmp_path):
    X, _ = gaussians
    encoder = _encoder(augmentation=_module_level_view, max_epochs=1).fit(X)
    with pytest.raises(TypeError, match=r"augmentation=.*cannot be written"):
        encoder.save(tmp_path / "encoder.skmlcpc")
    # Pickle still works for such an estimator.
    restored = pickle.loads(pickle.dumps(encoder))
    np.testing.assert_array_equal(restored.transform(X), encoder.transform(X))


def test_save_before_fit_raises(tmp_path):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        _mi().save(tmp_path / "model.skmlcpc")


# ------------------------------------------------------------------ warm start


def test_warm_start_continues_where_the_fit_stopped(gaussians):
    X, Y = gaussians
    # Same data, seed and epochs: two warm halves end where one fit does. (Early stopping
    # would restore the best epoch at the end of the first half, so it is off here.)
    once = _mi(max_epochs=4, early_stopping=False).fit(X, Y)
    twice = _mi(max_epochs=2, warm_start=True, early_stopping=False).fit(X, Y).fit(X, Y)
    assert len(twice.history_) == 4
    _same_model(once, twice, X, Y)


def test_warm_start_keeps_the_fitted_width(gaussians):
    X, Y = gaussians
    estimator = _mi(max_epochs=1, warm_start=True).fit(X, Y)
    with pytest.raises(ValueError, match="3 features"):
        estimator.fit(X[:, :2], Y)


def test_encoder_warm_start(gaussians):
    X, _ = gaussians
    once = _encoder(max_epochs=4).fit(X)
    twice = _encoder(max_epochs=2, warm_start=True).fit(X).fit(X)
    _same_model(once, twice, X)


# ------------------------------------------------------------------ resumable training


class Interrupt(Callback):
    """Fault injection: crash the fit at the end of epoch ``at_epoch`` (1-based)."""

    def __init__(self, at_epoch):
        self.at_epoch = at_epoch

    def on_epoch_end(self, net, **kwargs):
        if len(net.history) == self.at_epoch:
            raise RuntimeError("simulated crash")


@pytest.mark.parametrize("make", [_mi, _encoder], ids=["mi", "encoder"])
def test_interrupted_fit_resumes_to_the_uninterrupted_result(gaussians, tmp_path, make):
    X, Y = gaussians
    data = (X, Y) if make is _mi else (X,)
    uninterrupted = make(max_epochs=5).fit(*data)

    directory = tmp_path / "checkpoints"
    with pytest.raises(RuntimeError, match="simulated crash"):
        make(max_epochs=5, checkpoint_dir=directory, callbacks=[Interrupt(3)]).fit(*data)
    assert json.loads((directory / "sk_mlcpc_fit.json").read_text())["completed"] is False

    resumed = make(max_epochs=5, checkpoint_dir=directory).fit(*data)
    assert len(resumed.history_) == 5
    assert resumed.history_[:, "train_loss"] == uninterrupted.history_[:, "train_loss"]
    _same_model(uninterrupted, resumed, *data)

    # A finished checkpoint is loaded, not retrained.
    again = make(max_epochs=5, checkpoint_dir=directory).fit(*data)
    assert len(again.history_) == 5
    _same_model(uninterrupted, again, *data)


def test_a_resumed_fit_stops_early_where_the_uninterrupted_one_does(gaussians, tmp_path):
    X, Y = gaussians
    # The epochs are read from the uninterrupted trajectory (they move with any change of
    # preprocessing or critic): it must stop early, 3 misses after its best epoch.
    params = dict(
        max_epochs=40, learning_rate=1e-2, n_iter_no_change=3,
        activation="relu", n_components=32, lr_schedule=None, baseline=None,
    )  # fmt: skip
    uninterrupted = _mi(**params).fit(X, Y)
    valid = uninterrupted.history_[:, "valid_loss"]
    best = int(np.argmin(valid)) + 1
    assert uninterrupted.n_epochs_ == best + 3 < 40

    # Crash one epoch after the best: one miss counted, the best weights only on disk.
    directory = tmp_path / "checkpoints"
    with pytest.raises(RuntimeError, match="simulated crash"):
        _mi(**params, checkpoint_dir=directory, callbacks=[Interrupt(best + 1)]).fit(X, Y)
    resumed = _mi(**params, checkpoint_dir=directory).fit(X, Y)
    # Patience continues (a restarted count would run at least one epoch longer) and the
    # best epoch's weights are restored from the checkpoint directory.
    assert resumed.n_epochs_ == best + 3
    assert resumed.history_[:, "valid_loss"] == uninterrupted.history_[:, "valid_loss"]
    _same_model(uninterrupted, resumed, X, Y)


def test_a_resumed_fit_cuts_the_learning_rate_where_the_uninterrupted_one_does(gaussians, tmp_path):
    X, Y = gaussians
    # lr_schedule="plateau" (the default) halves the rate after three epochs without a
    # better held-out loss; the epoch of the first cut is read from the uninterrupted fit.
    params = dict(max_epochs=12, learning_rate=1e-2, n_iter_no_change=20, baseline=None)
    uninterrupted = _mi(**params).fit(X, Y)
    rates = uninterrupted.history_[:, "event_lr"]
    first_cut = next(index for index, rate in enumerate(rates) if rate < 1e-2)  # 0-based
    assert 4 <= first_cut and rates[first_cut] == 5e-3

    # Crash two misses into the count (after epoch first_cut - 1, 1-based): a restarted
    # count would not cut where the uninterrupted fit does.
    directory = tmp_path / "checkpoints"
    with pytest.raises(RuntimeError, match="simulated crash"):
        crash = Interrupt(first_cut - 1)
        _mi(**params, checkpoint_dir=directory, callbacks=[crash]).fit(X, Y)
    resumed = _mi(**params, checkpoint_dir=directory).fit(X, Y)
    assert resumed.history_[:, "event_lr"] == rates
    assert resumed.history_[:, "valid_loss"] == uninterrupted.history_[:, "valid_loss"]
    _same_model(uninterrupted, resumed, X, Y)


def test_checkpoint_of_another_fit_is_refused(gaussians, tmp_path):
    X, Y = gaussians
    _mi(max_epochs=1, checkpoint_dir=tmp_path).fit(X, Y)
    with pytest.raises(ValueError, match="checkpoint of a different fit"):
        _mi(max_epochs=1, checkpoint_dir=tmp_path, learning_rate=1e-2).fit(X, Y)
    with pytest.raises(ValueError, match="checkpoint of a different fit"):
        _mi(max_epochs=1, checkpoint_dir=tmp_path).fit(X[:1000], Y[:1000])


class _ViewWithDefaultRepr:
    def __call__(self, x, generator):
        return x


def test_fingerprint_ignores_memory_addresses(gaussians):
    from sk_mlcpc._engine.fitting import data_fingerprint

    X, _ = gaussians
    first = data_fingerprint(_encoder(augmentation=_ViewWithDefaultRepr()), X)
    second = data_fingerprint(_encoder(augmentation=_ViewWithDefaultRepr()), X)
    assert first == second
    assert first != data_fingerprint(_encoder(augmentation=_module_level_view), X)
    assert first != data_fingerprint(_encoder(augmentation=_ViewWithDefaultRepr()), X[:-1])


# ------------------------------------------------------------------ checkpoint safety


class _PlantedPayload:
    """Unpickling this object creates ``marker``: stands in for arbitrary code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("completed", [False, True], ids=["unfinished", "finished"])
@pytest.mark.parametrize("name", ["params.pt", "optimizer.pt", "criterion.pt"])
def test_a_pickle_planted_in_a_checkpoint_never_runs(gaussians, tmp_path, name, completed):
    X, Y = gaussians
    directory = tmp_path / "checkpoints"
    if completed:
        _mi(max_epochs=2, checkpoint_dir=directory).fit(X, Y)
    else:
        with pytest.raises(RuntimeError, match="simulated crash"):
            _mi(max_epochs=3, checkpoint_dir=directory, callbacks=[Interrupt(2)]).fit(X, Y)
    marker = tmp_path / "planted_code_ran"
    # What an attacker would write: a torch file whose pickle builds a foreign object.
    torch.save({"state": _PlantedPayload(marker)}, directory / name)

    with pytest.raises(ValueError, match=rf"{name} holds objects other than tensors") as info:
        _mi(max_epochs=2 if completed else 3, checkpoint_dir=directory).fit(X, Y)
    assert not marker.exists()
    assert str(directory) in str(info.value) and "Delete the directory" in str(info.value)


@pytest.mark.parametrize("name", ["params.pt", "optimizer.pt", "history.json", "sk_mlcpc_fit.json"])
def test_a_truncated_checkpoint_file_is_named_with_the_way_out(gaussians, tmp_path, name):
    X, Y = gaussians
    directory = tmp_path / "checkpoints"
    with pytest.raises(RuntimeError, match="simulated crash"):
        _mi(max_epochs=3, checkpoint_dir=directory, callbacks=[Interrupt(2)]).fit(X, Y)
    path = directory / name
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(ValueError, match=rf"{name} cannot be read") as info:
        _mi(max_epochs=3, checkpoint_dir=directory).fit(X, Y)
    assert str(directory) in str(info.value) and "Delete the directory" in str(info.value)


def test_checkpoint_files_are_replaced_atomically(gaussians, tmp_path, monkeypatch):
    """A write that fails half-way leaves the previous file whole, and is not swallowed."""
    X, Y = gaussians
    directory = tmp_path / "checkpoints"
    with pytest.raises(RuntimeError, match="simulated crash"):
        _mi(max_epochs=3, checkpoint_dir=directory, callbacks=[Interrupt(2)]).fit(X, Y)
    before = (directory / "params.pt").read_bytes()

    real_save = torch.save

    def failing_save(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        with open(f, "r+b") as handle:  # a half-written file, then the disk fills up
            handle.truncate(10)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError, match="No space left"):
        _mi(max_epochs=3, checkpoint_dir=directory).fit(X, Y)
    monkeypatch.undo()
    assert (directory / "params.pt").read_bytes() == before
    assert not list(directory.glob(".*.tmp"))
    resumed = _mi(max_epochs=3, checkpoint_dir=directory).fit(X, Y)
    assert len(resumed.history_) == 3
