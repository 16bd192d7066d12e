"""A checkpoint is one consistent unit: symlink-safe writes, crashes, full disks, bad files."""

import errno
import hashlib
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from skorch.callbacks import Callback

from sk_mlcpc import MutualInformationEstimator
from sk_mlcpc.datasets import make_correlated_gaussians

NAMES = ("params.pt", "optimizer.pt", "criterion.pt", "best_params.pt", "history.json")


@pytest.fixture(scope="module")
def gaussians():
    X, Y, _ = make_correlated_gaussians(1500, 3, mi=1.0, random_state=0)
    return X.astype(np.float32), Y.astype(np.float32)


@pytest.fixture(scope="module")
def uninterrupted(gaussians):
    return _mi(max_epochs=5).fit(*gaussians)


def _mi(**params):
    defaults = dict(hidden_layer_sizes=(16,), max_epochs=4, batch_size=64, random_state=0)
    return MutualInformationEstimator(**{**defaults, **params})


def _same_fit(expected, actual, X, Y):
    assert actual.history_[:, "train_loss"] == expected.history_[:, "train_loss"]
    assert actual.mi_ == expected.mi_
    np.testing.assert_array_equal(actual.score_samples(X, Y), expected.score_samples(X, Y))
    for name, tensor in expected.net_.module_.state_dict().items():
        assert torch.equal(actual.net_.module_.state_dict()[name], tensor), name


class Interrupt(Callback):
    """Fault injection: crash the fit at the end of epoch ``at_epoch`` (1-based)."""

    def __init__(self, at_epoch):
        self.at_epoch = at_epoch

    def on_epoch_end(self, net, **kwargs):
        if len(net.history) == self.at_epoch:
            raise RuntimeError("simulated crash")


class PowerCut(Exception):
    """A crash inside a checkpoint write (neither an OSError nor a RuntimeError)."""


def _interrupted(directory, gaussians, at_epoch, max_epochs=5):
    """A checkpoint holding epoch ``at_epoch - 1`` of an unfinished fit."""
    with pytest.raises(RuntimeError, match="simulated crash"):
        _mi(max_epochs=max_epochs, checkpoint_dir=directory, callbacks=[Interrupt(at_epoch)]).fit(
            *gaussians
        )


def _leftovers(directory):
    return sorted(
        entry.name
        for entry in directory.iterdir()
        if entry.name.startswith((".epoch-", ".checkpoint-commit")) or entry.name.endswith(".tmp")
    )


# ------------------------------------------------------------------ planted names


def test_symlinks_planted_at_every_name_a_write_uses_are_never_followed(gaussians, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"an unrelated file")
    directory = tmp_path / "checkpoints"
    directory.mkdir()
    written = (*NAMES, "checkpoint.json")
    planted = [
        *written,
        ".checkpoint-commit",
        # The temporary names of earlier versions were predictable: .<file>.<pid>.tmp.
        *(f".{name}.{os.getpid()}.tmp" for name in (*written, "sk_mlcpc_fit.json")),
    ]

    def plant():
        for name in planted:
            path = directory / name
            if path.is_symlink() or not path.exists():
                path.unlink(missing_ok=True)
                path.symlink_to(victim)

    plant()
    _interrupted(directory, gaussians, at_epoch=3)
    assert victim.read_bytes() == b"an unrelated file"
    for name in written:
        assert (directory / name).is_file() and not (directory / name).is_symlink(), name

    plant()  # again, at the names the resume writes through
    resumed = _mi(max_epochs=5, checkpoint_dir=directory).fit(*gaussians)
    assert victim.read_bytes() == b"an unrelated file"
    assert len(resumed.history_) == 5
    assert not _leftovers(directory)


@pytest.mark.parametrize("name", ["sk_mlcpc_fit.json", "params.pt", "checkpoint.json"])
def test_a_checkpoint_file_replaced_by_a_symlink_is_refused_unread(gaussians, tmp_path, name):
    directory = tmp_path / "checkpoints"
    _interrupted(directory, gaussians, at_epoch=3)
    # A link to the genuine content: refused for being a link, not for what it points to.
    copy = tmp_path / f"elsewhere-{name}"
    copy.write_bytes((directory / name).read_bytes())
    (directory / name).unlink()
    (directory / name).symlink_to(copy)
    with pytest.raises(ValueError, match=rf"{name} is a symbolic link") as info:
        _mi(max_epochs=5, checkpoint_dir=directory).fit(*gaussians)
    assert str(directory) in str(info.value)


def test_leftovers_of_crashed_writes_are_removed_and_only_those(gaussians, tmp_path):
    directory = tmp_path / "checkpoints"
    _interrupted(directory, gaussians, at_epoch=3)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    (directory / ".epoch-abcdefgh").mkdir()
    (directory / ".epoch-abcdefgh" / "params.pt").write_bytes(b"half written")
    (directory / ".epoch-zzzzzzzz").symlink_to(outside)  # removed as a link, not followed
    (directory / ".params.pt.4242.tmp").write_bytes(b"half written")
    (directory / ".history.json.abc_123.tmp").symlink_to(outside / "keep.txt")
    (directory / "notes.txt").write_text("the user's")
    (directory / ".epoch-mine").mkdir()  # not a name sk-mlcpc makes

    _mi(max_epochs=5, checkpoint_dir=directory).fit(*gaussians)
    assert _leftovers(directory) == [".epoch-mine"]
    assert (outside / "keep.txt").read_text() == "keep"
    assert (directory / "notes.txt").read_text() == "the user's"


# ------------------------------------------------------------------ crashes mid-write


def test_a_crash_between_file_writes_keeps_the_previous_checkpoint(
    gaussians, uninterrupted, tmp_path, monkeypatch
):
    directory = tmp_path / "checkpoints"
    real_save = torch.save
    saves = []

    def save(obj, f, *args, **kwargs):
        name = os.path.basename(str(f))
        if "best_params" not in name and any(
            part in name for part in ("params.pt", "optimizer.pt", "criterion.pt")
        ):
            saves.append(name)
            if len(saves) == 9:  # the third file of epoch 3, two of its files written
                raise PowerCut
        real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)
    with pytest.raises(PowerCut):
        _mi(max_epochs=5, checkpoint_dir=directory).fit(*gaussians)
    monkeypatch.undo()
    assert len(json.loads((directory / "history.json").read_text())) == 2

    resumed = _mi(max_epochs=5, checkpoint_dir=directory).fit(*gaussians)
    _same_fit(uninterrupted, resumed, *gaussians)
    assert not _leftovers(directory)


def test_a_crash_while_a_committed_checkpoint_moves_is_finished_by_the_resume(
    gaussians, uninterrupted, tmp_path, monkeypatch
):
    directory = tmp_path / "checkpoints"
    real_replace = os.replace
    moved = []

    def replace(source, target, *args, **kwargs):
        folder = os.path.dirname(os.fspath(source))
        if os.path.basename(folder) == ".checkpoint-commit":
            manifest = json.loads(open(os.path.join(folder, "checkpoint.json")).read())
            if manifest["epoch"] == 3:
                if len(moved) == 2:
                    raise PowerCut
                moved.append(source)
        real_replace(source, target, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(PowerCut):
        _mi(max_epochs=5, checkpoint_dir=directory).fit(*gaussians)
    monkeypatch.undo()
    # Two files of epoch 3 are in place, the others still those of epoch 2.
    assert (directory / ".checkpoint-commit").is_dir()
    assert json.loads((directory / "checkpoint.json").read_text())["epoch"] == 2

    resumed = _mi(max_epochs=5, checkpoint_dir=directory).fit(*gaussians)
    _same_fit(uninterrupted, resumed, *gaussians)
    assert not _leftovers(directory)


def test_files_of_different_epochs_are_refused(gaussians, tmp_path):
    directory = tmp_path / "checkpoints"
    _interrupted(directory, gaussians, at_epoch=2)
    older = (directory / "optimizer.pt").read_bytes()
    with pytest.raises(RuntimeError, match="simulated crash"):
        _mi(max_epochs=5, checkpoint_dir=directory, callbacks=[Interrupt(3)]).fit(*gaussians)
    (directory / "optimizer.pt").write_bytes(older)  # epoch 1's beside epoch 2's
    with pytest.raises(ValueError, match=r"optimizer\.pt does not match checkpoint\.json") as info:
        _mi(max_epochs=5, checkpoint_dir=directory).fit(*gaussians)
    assert str(directory) in str(info.value) and "Delete the directory" in str(info.value)


# ------------------------------------------------------------------ write failures


def test_a_full_disk_is_reported_naming_the_folder_and_file(
    gaussians, uninterrupted, tmp_path, monkeypatch
):
    directory = tmp_path / "checkpoints"
    _interrupted(directory, gaussians, at_epoch=3)
    before = {path.name: path.read_bytes() for path in directory.iterdir()}

    def full_disk(obj, f, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(OSError, match="No space left on device") as info:
        _mi(max_epochs=5, checkpoint_dir=directory).fit(*gaussians)
    monkeypatch.undo()
    assert info.value.errno == errno.ENOSPC
    assert str(directory) in str(info.value) and "params.pt" in str(info.value)
    assert {name: (directory / name).read_bytes() for name in before} == before
    assert not _leftovers(directory)
    _same_fit(
        uninterrupted, _mi(max_epochs=5, checkpoint_dir=directory).fit(*gaussians), *gaussians
    )


@pytest.mark.skipif(os.name != "posix", reason="file size limits are POSIX")
def test_a_write_refused_inside_torchs_writer_is_reported_as_one(tmp_path):
    # torch's C++ writer turns a refused write into "unexpected pos ..."; a file size
    # limit refuses it for real, in a child process so that nothing else is limited.
    directory = tmp_path / "checkpoints"
    script = textwrap.dedent(
        f"""
        import resource, signal
        from sk_mlcpc import MutualInformationEstimator
        from sk_mlcpc.datasets import make_correlated_gaussians
        X, Y, _ = make_correlated_gaussians(300, 3, mi=1.0, random_state=0)
        estimator = MutualInformationEstimator(
            hidden_layer_sizes=(16,), max_epochs=2, random_state=0,
            checkpoint_dir={str(directory)!r},
        )
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (3000, resource.RLIM_INFINITY))
        try:
            estimator.fit(X, Y)
        except BaseException as error:
            print(type(error).__name__, error)
        """
    )
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=environment
    )
    assert result.stdout.startswith("OSError "), result.stdout + result.stderr
    assert f"checkpoint_dir={str(directory)!r}: writing params.pt failed inside torch.save" in (
        result.stdout
    )
    assert not _leftovers(directory)


# ------------------------------------------------------------------ files that unpickle safely


def _load(directory, name):
    path = directory / name
    return json.loads(path.read_text()) if name.endswith(".json") else torch.load(path)


def _rewrite(directory, name, content):
    """Write ``content`` as ``name`` and give the manifest its size and hash, as a
    consistent checkpoint with that content would have."""
    path = directory / name
    if name.endswith(".json"):
        path.write_text(json.dumps(content))
    else:
        torch.save(content, path)
    manifest_path = directory / "checkpoint.json"
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        data = path.read_bytes()
        manifest["files"][name] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        manifest_path.write_text(json.dumps(manifest))


def _first(state, ndim=1):
    return next(key for key, value in state.items() if value.ndim >= ndim)


def _params_missing(state):
    key = _first(state, 0)
    return {k: v for k, v in state.items() if k != key}, rf"lacks entry '{key}' of the network"


def _params_extra(state):
    return {**state, "stowaway": torch.zeros(2)}, "has entry 'stowaway', which the network"


def _params_shape(state):
    key = _first(state)
    return {**state, key: torch.zeros(7, 5)}, rf"entry '{key}' has shape \(7, 5\) where"


def _optimizer_groups(state):
    return {"state": state["state"]}, "lacks entry 'param_groups'"


def _optimizer_lr(state):
    groups = [{k: v for k, v in group.items() if k != "lr"} for group in state["param_groups"]]
    return {**state, "param_groups": groups}, r"entry 'param_groups'\[0\] lacks 'lr'"


def _optimizer_shape(state):
    ids = [i for i, values in state["state"].items() if values["exp_avg"].ndim >= 1]
    values = {**state["state"][ids[0]], "exp_avg": torch.zeros(7, 5)}
    broken = {**state, "state": {**state["state"], ids[0]: values}}
    return broken, rf"entry 'state'\[{ids[0]}\]\['exp_avg'\] has shape \(7, 5\)"


def _criterion_extra(state):
    return {**state, "stowaway": torch.zeros(2)}, "has entry 'stowaway', which the criterion"


def _history_short(rows):
    return rows[:-1], r"has 1 rows where checkpoint\.json says epoch 2"


def _history_row_loss(rows):
    last = {k: v for k, v in rows[-1].items() if k != "valid_loss"}
    return [*rows[:-1], last], "row 2 lacks entry 'valid_loss'"


def _history_row_epoch(rows):
    return [*rows[:-1], {**rows[-1], "epoch": 7}], "row 2 has entry 'epoch' 7, not 2"


def _history_batches(rows):
    first = {k: v for k, v in rows[0].items() if k != "batches"}
    return [first, *rows[1:]], "row 1 lacks entry 'batches'"


def _best_state(best):
    state = dict(best["state"])
    key = next(iter(state))
    del state[key]
    return {**best, "state": state}, rf"entry 'state' lacks entry '{key}' of the network"


def _best_epoch(best):
    return {**best, "epoch": 99}, "has entry 'epoch' 99, not one of the 2 epochs"


BROKEN = {
    "params.pt": [_params_missing, _params_extra, _params_shape],
    "optimizer.pt": [_optimizer_groups, _optimizer_lr, _optimizer_shape],
    "criterion.pt": [_criterion_extra],
    "history.json": [_history_short, _history_row_loss, _history_row_epoch, _history_batches],
    "best_params.pt": [_best_state, _best_epoch],
}
CASES = [(name, breaking) for name, functions in BROKEN.items() for breaking in functions]


@pytest.mark.parametrize(
    ("name", "breaking"), CASES, ids=[breaking.__name__.lstrip("_") for _, breaking in CASES]
)
def test_a_safe_checkpoint_of_the_wrong_content_is_named_entry_by_entry(
    gaussians, tmp_path, name, breaking
):
    directory = tmp_path / "checkpoints"
    _interrupted(directory, gaussians, at_epoch=3, max_epochs=3)  # holds epoch 2
    broken, message = breaking(_load(directory, name))
    _rewrite(directory, name, broken)
    with pytest.raises(ValueError, match=rf"{name} {message}") as info:
        _mi(max_epochs=3, checkpoint_dir=directory).fit(*gaussians)
    assert f"checkpoint_dir={str(directory)!r}" in str(info.value)


# ------------------------------------------------------------------ layouts and early stopping


def test_checkpoints_without_a_manifest_load_when_finished_and_refuse_to_resume(
    gaussians, uninterrupted, tmp_path
):
    # The layout of earlier versions: the same files, without checkpoint.json.
    finished = tmp_path / "finished"
    _mi(max_epochs=5, checkpoint_dir=finished).fit(*gaussians)
    (finished / "checkpoint.json").unlink(missing_ok=True)
    _same_fit(uninterrupted, _mi(max_epochs=5, checkpoint_dir=finished).fit(*gaussians), *gaussians)
    assert (finished / "checkpoint.json").exists()  # written again in the current layout

    unfinished = tmp_path / "unfinished"
    _interrupted(unfinished, gaussians, at_epoch=3)
    (unfinished / "checkpoint.json").unlink(missing_ok=True)
    with pytest.raises(ValueError, match=r"checkpoint\.json is missing: this unfinished") as info:
        _mi(max_epochs=5, checkpoint_dir=unfinished).fit(*gaussians)
    assert str(unfinished) in str(info.value)


EARLY = dict(
    max_epochs=40, learning_rate=1e-2, n_iter_no_change=3,
    activation="relu", n_components=32, lr_schedule=None, baseline=None,
)  # fmt: skip


@pytest.fixture(scope="module")
def stopped_early(gaussians):
    uninterrupted = _mi(**EARLY).fit(*gaussians)
    best = int(np.argmin(uninterrupted.history_[:, "valid_loss"])) + 1
    assert uninterrupted.n_epochs_ == best + 3 < 40  # stopped three epochs after the best
    return uninterrupted, best


def test_the_best_weights_resume_with_the_checkpoint_they_belong_to(
    gaussians, stopped_early, tmp_path
):
    uninterrupted, best = stopped_early
    stop = uninterrupted.n_epochs_
    # The checkpoint holds epoch stop - 2: the best weights are then only in best_params.pt.
    directory = tmp_path / "checkpoints"
    with pytest.raises(RuntimeError, match="simulated crash"):
        _mi(**EARLY, checkpoint_dir=directory, callbacks=[Interrupt(stop - 1)]).fit(*gaussians)
    manifest = json.loads((directory / "checkpoint.json").read_text())
    assert manifest["epoch"] == stop - 2 and "best_params.pt" in manifest["files"]
    assert torch.load(directory / "best_params.pt")["epoch"] == best

    resumed = _mi(**EARLY, checkpoint_dir=directory).fit(*gaussians)
    assert resumed.n_epochs_ == stop
    assert resumed.history_[:, "valid_loss"] == uninterrupted.history_[:, "valid_loss"]
    _same_fit(uninterrupted, resumed, *gaussians)


def test_a_crash_after_the_last_checkpoint_does_not_train_on(
    gaussians, stopped_early, tmp_path, monkeypatch
):
    from sk_mlcpc._engine import fitting

    uninterrupted, _ = stopped_early
    real_write_state = fitting._write_state

    def write_state(directory, fingerprint, completed):
        if completed:  # the final weights are saved, the fit not yet marked finished
            raise PowerCut
        real_write_state(directory, fingerprint, completed)

    directory = tmp_path / "checkpoints"
    monkeypatch.setattr(fitting, "_write_state", write_state)
    with pytest.raises(PowerCut):
        _mi(**EARLY, checkpoint_dir=directory).fit(*gaussians)
    monkeypatch.undo()
    # The saved weights are the best epoch's, restored: training on from them would
    # start a fit no uninterrupted one runs.
    resumed = _mi(**EARLY, checkpoint_dir=directory).fit(*gaussians)
    assert resumed.n_epochs_ == uninterrupted.n_epochs_
    _same_fit(uninterrupted, resumed, *gaussians)
