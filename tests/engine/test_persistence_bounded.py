"""load() reads a bounded amount: no devices or pipes, no inflating past what the model needs.

Each hostile file is loaded in a child process whose peak resident memory is measured
around the call: before these checks, ``/dev/zero`` grew without limit and a zip bomb
inflated in full.
"""

import io
import json
import os
import subprocess
import sys
import textwrap
import zipfile

import pytest

from sk_mlcpc import ModelFileError, MutualInformationEstimator
from sk_mlcpc.datasets import make_correlated_gaussians

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

_MEMORY_LIMIT_MB = 200

_CHILD = textwrap.dedent(
    """
    import json, resource, sys
    from sk_mlcpc import ModelFileError, MutualInformationEstimator
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        MutualInformationEstimator.load(sys.argv[1])
        outcome = "loaded"
    except ModelFileError as error:
        outcome = "ModelFileError: " + str(error)
    except BaseException as error:
        outcome = type(error).__name__ + ": " + str(error)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"outcome": outcome, "grown_mb": (after - before) / 1024}))
    """
)


def _load_in_child(path, timeout=60) -> dict:
    """The outcome of loading ``path`` in a fresh process, and how much its peak memory grew."""
    completed = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def model_bytes(tmp_path_factory):
    X, Y, _ = make_correlated_gaussians(300, 2, mi=0.5, random_state=0)
    path = tmp_path_factory.mktemp("model") / "mi.skmlcpc"
    MutualInformationEstimator(
        hidden_layer_sizes=(8,), max_epochs=1, batch_size=64, random_state=0
    ).fit(X, Y).save(path)
    return path.read_bytes()


def _zeros_member(archive: zipfile.ZipFile, name: str, n_bytes: int) -> None:
    """A member of ``n_bytes`` zeros, streamed (about a thousandth of that on disk)."""
    chunk = bytes(2**22)
    info = zipfile.ZipInfo(name)
    info.compress_type = zipfile.ZIP_DEFLATED
    with archive.open(info, "w", force_zip64=True) as member:
        for start in range(0, n_bytes, len(chunk)):
            member.write(chunk[: min(len(chunk), n_bytes - start)])


def _members(data: bytes) -> dict[str, bytes]:
    archive = zipfile.ZipFile(io.BytesIO(data))
    return {name: archive.read(name) for name in archive.namelist()}


def _write(path, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
@pytest.mark.parametrize("through_link", [False, True], ids=["device", "symlink-to-device"])
def test_a_device_is_refused_before_any_read(tmp_path, through_link):
    path = "/dev/zero"
    if through_link:
        path = tmp_path / "model.skmlcpc"
        path.symlink_to("/dev/zero")
    with pytest.raises(ModelFileError, match="is a device, not a model file"):
        MutualInformationEstimator.load(path)
    result = _load_in_child(path)
    assert result["outcome"].startswith("ModelFileError"), result
    assert result["grown_mb"] < _MEMORY_LIMIT_MB, result


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_a_pipe_is_refused_without_waiting_for_a_writer(tmp_path):
    path = tmp_path / "model.skmlcpc"
    os.mkfifo(path)
    # A blocking open of a pipe with no writer would hang here; the child's timeout fails it.
    result = _load_in_child(path, timeout=30)
    assert "is a pipe, not a model file" in result["outcome"], result


def test_a_directory_is_refused(tmp_path):
    with pytest.raises(ModelFileError, match="is a directory, not a model file"):
        MutualInformationEstimator.load(tmp_path)


def test_a_missing_file_is_still_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        MutualInformationEstimator.load(tmp_path / "absent.skmlcpc")


@pytest.mark.parametrize("member", ["model.json", "weights.pt"])
def test_a_zip_bomb_is_refused_by_its_declared_size(tmp_path, model_bytes, member):
    """512 MiB of zeros in about half a megabyte: refused before inflating, in little memory."""
    members = _members(model_bytes)
    path = tmp_path / "bomb.skmlcpc"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            if name == member:
                _zeros_member(archive, name, 512 * 2**20)
            else:
                archive.writestr(name, content)
    assert path.stat().st_size < 4 * 2**20
    with pytest.raises(ModelFileError, match=rf"{member} declares 536,870,912 bytes, more than"):
        MutualInformationEstimator.load(path)
    result = _load_in_child(path)
    assert "refusing to inflate it" in result["outcome"], result
    assert result["grown_mb"] < _MEMORY_LIMIT_MB, result


def test_weights_past_what_the_manifest_describes_are_refused(tmp_path, model_bytes):
    """The cap on weights.pt comes from the network model.json describes: a few MB here."""
    members = _members(model_bytes)
    members["weights.pt"] = members["weights.pt"] + bytes(32 * 2**20)
    path = tmp_path / "padded.skmlcpc"
    _write(path, members)
    with pytest.raises(ModelFileError, match=r"weights.pt declares .* bytes a model file of this"):
        MutualInformationEstimator.load(path)


def test_a_member_that_inflates_past_its_declared_size_is_refused(tmp_path, model_bytes):
    """A central directory that understates the size is caught: inflating stops there."""
    data = bytearray(model_bytes)
    rewritten = 0
    for offset in range(len(data) - 46):
        if data[offset : offset + 4] == b"PK\x01\x02":  # a central directory entry
            name_length = int.from_bytes(data[offset + 28 : offset + 30], "little")
            if data[offset + 46 : offset + 46 + name_length] == b"model.json":
                data[offset + 24 : offset + 28] = (100).to_bytes(4, "little")
                rewritten += 1
    assert rewritten == 1
    path = tmp_path / "lying.skmlcpc"
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="not a readable sk-mlcpc model file"):
        MutualInformationEstimator.load(path)


def test_a_manifest_describing_a_huge_network_is_refused_before_building_it(tmp_path, model_bytes):
    """hidden_layer_sizes of 10**6 units describe ~4 TB of weights: sized on the meta
    device, refused because weights.pt is smaller, and nothing of that size allocated."""
    members = _members(model_bytes)
    manifest = json.loads(members["model.json"])
    manifest["params"]["hidden_layer_sizes"] = [1_000_000, 1_000_000]
    members["model.json"] = json.dumps(manifest).encode()
    path = tmp_path / "huge.skmlcpc"
    _write(path, members)
    result = _load_in_child(path)
    assert "fewer than the" in result["outcome"], result
    assert result["grown_mb"] < _MEMORY_LIMIT_MB, result


def test_a_long_history_is_saved_without_its_batches(tmp_path, model_bytes, monkeypatch):
    """save() never writes a file that load() refuses: past the manifest cap the per-batch
    records go (with a warning) and the epochs' rows stay."""
    from sk_mlcpc._engine import persistence

    X, Y, _ = make_correlated_gaussians(300, 2, mi=0.5, random_state=0)
    estimator = MutualInformationEstimator(
        hidden_layer_sizes=(8,), max_epochs=2, batch_size=16, random_state=0
    ).fit(X, Y)
    estimator.save(tmp_path / "full.skmlcpc")
    with zipfile.ZipFile(tmp_path / "full.skmlcpc") as archive:
        full = archive.getinfo("model.json").file_size
    monkeypatch.setattr(persistence, "MANIFEST_LIMIT", full - 1)
    with pytest.warns(UserWarning, match="without its per-batch records"):
        estimator.save(tmp_path / "long.skmlcpc")
    loaded = MutualInformationEstimator.load(tmp_path / "long.skmlcpc")
    assert len(loaded.history_) == 2
    assert "batches" not in loaded.history_[-1]
    assert loaded.history_[-1, "valid_mi"] == estimator.history_[-1, "valid_mi"]
