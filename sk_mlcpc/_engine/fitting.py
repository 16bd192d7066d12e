"""Running a fit: fresh, warm-started, or resumed from a checkpoint directory."""

from __future__ import annotations

import copy
import errno
import hashlib
import io
import json
import os
import pickle
import re
import shutil
import stat
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import torch
from sklearn.preprocessing import StandardScaler
from skorch.callbacks import Callback, Checkpoint, EarlyStopping, LRScheduler, ProgressBar
from skorch.helper import predefined_split
from skorch.history import History

from sk_mlcpc._engine.preprocessing import NormalQuantileTransformer
from sk_mlcpc._nn.devices import forked_cuda_devices

__all__ = [
    "BLOCKWISE_FROM",
    "check_has_features",
    "check_hidden_layer_sizes",
    "data_fingerprint",
    "make_preprocessor",
    "net_parameters",
    "run_training",
    "standard_callbacks",
]

_STATE_FILE = "sk_mlcpc_fit.json"
_BEST_WEIGHTS_FILE = "best_params.pt"
#: Rows per batch from which ``blockwise="auto"`` evaluates bounds blockwise (faster and
#: far smaller on a CPU from about 512 rows; see benchmarks/results/throughput.txt).
BLOCKWISE_FROM = 2048
#: Held-out batches up to this many rows are scored as one matrix (64 MiB in float32).
DENSE_HELD_OUT_MAX = 4096


def auto_blockwise(training_rows: int, held_out_rows: int) -> bool:
    """``blockwise="auto"`` for a separable critic: the training batch decides.

    From :data:`BLOCKWISE_FROM` rows per training batch the tiled path is faster and far
    smaller; below it the dense path is faster per step (1,069 against 809 steps/s at
    batch 128 for the small critic of ``benchmarks/results/throughput.txt``), so a large
    held-out set alone does not switch training to tiles. Held-out batches above
    :data:`DENSE_HELD_OUT_MAX` rows (an explicit ``eval_batch_size``) still do, so that
    the validation pass never stores their score matrix.
    """
    return training_rows >= BLOCKWISE_FROM or held_out_rows > DENSE_HELD_OUT_MAX


_IGNORED_PARAMS = (
    "verbose", "callbacks", "checkpoint_dir", "warm_start", "device", "accelerator",
)  # fmt: skip


def data_fingerprint(estimator, *arrays: np.ndarray) -> str:
    """A digest of the parameters and data of a fit, to recognise its checkpoints."""
    digest = hashlib.sha256()
    params = {
        name: _stable_repr(value)
        for name, value in sorted(estimator.get_params(deep=False).items())
        if name not in _IGNORED_PARAMS
    }
    digest.update(json.dumps(params, sort_keys=True).encode())
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(str(array.shape).encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _stable_repr(value) -> str:
    """``repr`` without memory addresses, so that a new process recognises the same fit."""
    if callable(value) and hasattr(value, "__qualname__"):
        return f"{getattr(value, '__module__', '')}.{value.__qualname__}"
    return re.sub(r" at 0x[0-9a-fA-F]+", "", repr(value))


def _noop(*args, **kwargs) -> None:
    return None


def check_hidden_layer_sizes(value) -> tuple[int, ...]:
    """``hidden_layer_sizes`` as a tuple of positive ints, or a ValueError naming it."""
    sizes = np.atleast_1d(np.asarray(value))
    if sizes.size == 0:  # np.asarray(()) is float64
        sizes = sizes.astype(np.int64)
    if sizes.ndim != 1 or not np.issubdtype(sizes.dtype, np.integer) or np.any(sizes < 1):
        raise ValueError(
            f"hidden_layer_sizes must be a sequence of positive integers, got {value!r}."
        )
    return tuple(int(size) for size in sizes)


def make_preprocessor(name: str | None, n_rows: int, seed: int):
    """The unfitted per-column preprocessor named by an estimator's ``preprocessing``."""
    if name == "quantile":
        return NormalQuantileTransformer(n_quantiles=min(1000, n_rows), random_state=seed)
    if name == "standard":
        return StandardScaler()
    return None


class _ProgressBar(ProgressBar):
    """skorch's progress bar, showing batch losses recorded as device tensors as numbers.

    Reading a device tensor for display waits for the device: with ``verbose=2`` that is
    once per step, the price of watching every batch's loss.
    """

    def _get_postfix_dict(self, net):
        return {
            key: float(value) if isinstance(value, torch.Tensor) else value
            for key, value in super()._get_postfix_dict(net).items()
        }


class ResumableEarlyStopping(EarlyStopping):
    """skorch's early stopping, which a resumed checkpoint continues instead of restarting.

    A checkpoint saves the best epoch's weights with each epoch's files. When
    :func:`run_training` resumes an interrupted fit it sets ``resuming``, and
    ``saved_best_weights`` to the weights the checkpoint holds: the next
    ``on_train_begin`` then replays the epochs in the history (patience count, threshold,
    best epoch) and takes those weights back, so that the resumed fit stops and restores
    where an uninterrupted one would. A warm start (``resuming`` unset) starts a new
    patience count, as skorch's does.
    """

    def __init__(
        self,
        monitor: str = "valid_loss",
        patience: int = 5,
        threshold: float = 1e-4,
        threshold_mode: str = "rel",
        lower_is_better: bool = True,
        sink: Callable = print,
        load_best: bool = False,
        resuming: bool = False,
    ) -> None:
        super().__init__(
            monitor=monitor,
            patience=patience,
            threshold=threshold,
            threshold_mode=threshold_mode,
            lower_is_better=lower_is_better,
            sink=sink,
            load_best=load_best,
        )
        self.resuming = resuming
        #: ``{"epoch": ..., "state": ...}`` from the checkpoint being resumed, or None.
        self.saved_best_weights: dict | None = None

    def on_train_begin(self, net, **kwargs):
        super().on_train_begin(net, **kwargs)
        saved, self.saved_best_weights = self.saved_best_weights, None
        if not self.resuming:
            return
        self.resuming = False
        for row in net.history:
            if self.monitor not in row:
                continue
            if self._is_score_improved(row[self.monitor]):
                self.misses_ = 0
                self.dynamic_threshold_ = self._calc_new_threshold(row[self.monitor])
                self.best_epoch_ = row["epoch"]
            else:
                self.misses_ += 1
        if self.load_best and saved is not None and saved["epoch"] == self.best_epoch_:
            device = next(net.module_.parameters()).device
            self.best_model_weights_ = {
                name: tensor.to(device) for name, tensor in saved["state"].items()
            }


class PlateauLearningRate(LRScheduler):
    """Multiply the learning rate by ``factor`` when the held-out loss has not improved
    for ``patience`` epochs (PyTorch's ``ReduceLROnPlateau`` through skorch), resumably.

    The learning rate itself travels with the optimiser's state; what a resumed
    checkpoint would lose is the scheduler's count of epochs without improvement and its
    best loss. When :func:`run_training` resumes a fit it sets ``resuming``: the next
    ``on_train_begin`` replays the history's losses through the new scheduler and puts
    the saved learning rates back, so that the resumed fit cuts the rate where an
    uninterrupted one would. A warm start starts a new count, as early stopping does.
    Each epoch's rate is in the history as ``event_lr``.

    Examples
    --------
    >>> from sk_mlcpc._engine.fitting import PlateauLearningRate
    >>> schedule = PlateauLearningRate(patience=2, factor=0.5)
    >>> schedule.kwargs
    {'patience': 2, 'factor': 0.5}
    """

    def __init__(self, monitor: str = "valid_loss", patience: int = 2, factor: float = 0.5) -> None:
        super().__init__(
            policy="ReduceLROnPlateau", monitor=monitor, patience=patience, factor=factor
        )
        self.resuming = False

    @property
    def kwargs(self) -> dict:
        return {name: value for name, value in super().kwargs.items() if name != "resuming"}

    def __getstate__(self) -> dict:
        # The scheduler holds the optimiser, whose state skorch pickles (and maps across
        # devices) itself; the next on_train_begin builds a new scheduler.
        state = dict(self.__dict__)
        state["lr_scheduler_"] = None
        return state

    def on_train_begin(self, net, **kwargs):
        super().on_train_begin(net, **kwargs)
        if not self.resuming:
            return
        self.resuming = False
        rates = [group["lr"] for group in net.optimizer_.param_groups]
        for row in net.history:
            if self.monitor in row:
                self.lr_scheduler_.step(row[self.monitor])
        for group, rate in zip(net.optimizer_.param_groups, rates, strict=True):
            group["lr"] = rate


def check_has_features(X, name: str = "X") -> None:
    """Refuse a 2-D input without columns with scikit-learn's wording.

    scikit-learn says "Found array with 0 feature(s)" for an array, but a pandas
    DataFrame without columns fails earlier inside numpy ("at least one array or dtype
    is required"), which does not name the problem.
    """
    shape = getattr(X, "shape", None)
    if shape is not None and len(shape) == 2 and shape[1] == 0:
        raise ValueError(
            f"Found {name} with 0 feature(s) (shape={tuple(shape)}) while a minimum of 1 is "
            "required."
        )


def net_parameters(
    estimator, *, shuffle_seed: int, eval_seed: int, valid_set, callbacks: list
) -> dict:
    """The skorch net arguments every estimator sets the same way.

    Adam with the estimator's ``learning_rate`` and ``weight_decay``, its ``max_epochs``,
    fitted ``batch_size_``, seeds, the held-out split (``valid_set`` or none), callbacks,
    ``device_`` and ``verbose``; nets are pickled whole, so loading them needs
    ``weights_only=False``.
    """
    return {
        "optimizer": torch.optim.Adam,
        "lr": estimator.learning_rate,
        "optimizer__weight_decay": estimator.weight_decay,
        "max_epochs": estimator.max_epochs,
        "batch_size": estimator.batch_size_,
        "shuffle_seed": shuffle_seed,
        "eval_seed": eval_seed,
        "train_split": None if valid_set is None else predefined_split(valid_set),
        "callbacks": callbacks,
        "device": estimator.device_,
        "verbose": estimator.verbose,
        "torch_load_kwargs": {"weights_only": False},
    }


def standard_callbacks(estimator, callbacks: list) -> list:
    """``callbacks`` followed by those every estimator shares, from its parameters.

    Early stopping on the held-out loss (``early_stopping``, ``n_iter_no_change``,
    ``tol``; the best epoch's weights restored), a progress bar at ``verbose >= 2``, and
    deep copies of the user's ``callbacks`` (so the parameter is never modified), each a
    skorch ``Callback`` or a ``(name, Callback)`` tuple.
    """
    callbacks = list(callbacks)
    if estimator.early_stopping:
        stopping = ResumableEarlyStopping(
            monitor="valid_loss",
            patience=estimator.n_iter_no_change,
            threshold=estimator.tol,
            threshold_mode="abs",
            load_best=True,
            sink=print if estimator.verbose else _noop,
        )
        callbacks.append(("early_stopping", stopping))
    if estimator.verbose >= 2:
        callbacks.append(("progress_bar", _ProgressBar()))
    for index, entry in enumerate(estimator.callbacks or []):
        name, callback = entry if isinstance(entry, tuple) else (None, entry)
        if not isinstance(callback, Callback):
            raise TypeError(
                "callbacks must hold skorch Callback instances or (name, Callback) "
                f"tuples, got {entry!r}."
            )
        name = name or f"user_{index}_{type(callback).__name__}"
        callbacks.append((name, copy.deepcopy(callback)))
    return callbacks


# ------------------------------------------------------------------ checkpoints
#
# A checkpoint is one unit: the files of one epoch and checkpoint.json, the manifest that
# gives each file's size and SHA-256, written last. A write stages the files in a folder
# made by mkdtemp (an unpredictable name, created exclusively: nothing planted in
# checkpoint_dir is ever written through), then renames that folder to _COMMIT_DIR, which
# is the commit point. The files then move to the top of checkpoint_dir, the manifest
# last, so that the files keep the names and places of earlier versions. A crash before
# the rename leaves the previous checkpoint as it was and a crash while the files move is
# finished by the next fit (_recover); either way a resume sees one epoch's files, and
# the manifest's hashes refuse any other mixture (an edit, a copy from elsewhere).

_CHECKPOINT_FILES = ("params.pt", "optimizer.pt", "criterion.pt", "history.json")
_MANIFEST_FILE = "checkpoint.json"
_MANIFEST_FORMAT = 1
_COMMIT_DIR = ".checkpoint-commit"
_STAGING_PREFIX = ".epoch-"
#: What a crashed write can leave behind, and only that: staging folders (mkdtemp adds 8
#: characters) and temporary files, ``.<file>.<pid>.tmp`` of earlier versions included.
_STAGING_NAME = re.compile(r"\.epoch-[a-z0-9_]{8}")
_TEMPORARY_NAME = re.compile(
    r"\.(?:params\.pt|optimizer\.pt|criterion\.pt|history\.json|best_params\.pt"
    r"|checkpoint\.json|sk_mlcpc_fit\.json)\.[A-Za-z0-9_]+\.tmp"
)
#: Bound on the small JSON files read before any manifest says how large a file is.
_SMALL_FILE_MAX = 1 << 20
#: How much larger than its manifest entry a file may be and still be read, so that a
#: file replaced by another (a planted pickle) is named for what it holds.
_SIZE_SLACK = 16 << 20
#: What torch's C++ writer says when a write fails, e.g. on a full disk.
_TORCH_WRITER_ERROR = re.compile(r"inline_container|PytorchStreamWriter|file write failed")


def _unreadable_checkpoint(directory: Path, name: str, reason: str) -> ValueError:
    return ValueError(
        f"checkpoint_dir={str(directory)!r}: {name} {reason}. Delete the directory (or "
        "choose another checkpoint_dir) to start the fit again."
    )


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _write_error(directory: Path, name: str, error: BaseException) -> OSError:
    """``error`` from writing ``name`` into ``directory``, as an OSError naming both.

    torch's writer reports a failed write (a full disk) as a RuntimeError from its C++
    code ("unexpected pos 704 vs 598"), which does not say that a write failed: the
    message says so, with the space left on the disk.
    """
    where = f"checkpoint_dir={str(directory)!r}: writing {name} failed"
    kept = "the previous checkpoint is kept"
    if isinstance(error, OSError):
        if error.errno is None:
            return OSError(f"{where} ({error}); {kept}.")
        return OSError(error.errno, f"{where} ({error.strerror or error}); {kept}.")
    try:
        free = f"{shutil.disk_usage(directory).free} bytes are free there"
    except OSError:
        free = "the free space there is unknown"
    message = (str(error).strip() or type(error).__name__).splitlines()[0]
    return OSError(
        errno.EIO,
        f"{where} inside torch.save ({message}), which is how torch reports a write the "
        f"disk refused (full, or over a file size limit): {free}; {kept}.",
    )


def _sync_directory(directory: Path) -> None:
    """Make the renames in ``directory`` durable (POSIX: Windows cannot open a folder)."""
    if os.name != "posix":
        return
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _read_regular(directory: Path, name: str, limit: int | None) -> bytes:
    """The bytes of the regular file ``directory / name``, never through a symbolic link.

    ``O_NOFOLLOW`` refuses a link and the check on the opened descriptor a device, a pipe
    or a folder (``O_NONBLOCK`` keeps the open of a pipe from waiting), so that a name
    planted in the directory can neither redirect the read nor make it endless.
    """
    path = directory / name
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        descriptor = os.open(path, flags | getattr(os, "O_BINARY", 0))
    except FileNotFoundError as error:
        raise _unreadable_checkpoint(directory, name, "is missing") from error
    except OSError as error:
        reason = (
            "is a symbolic link, which sk-mlcpc never writes; it was not followed"
            if path.is_symlink()
            else f"cannot be read ({type(error).__name__}: {error})"
        )
        raise _unreadable_checkpoint(directory, name, reason) from error
    with os.fdopen(descriptor, "rb") as handle:
        status = os.fstat(handle.fileno())
        size = status.st_size
        if not stat.S_ISREG(status.st_mode):
            raise _unreadable_checkpoint(directory, name, "is not a regular file")
        if limit is not None and size > limit:
            raise _unreadable_checkpoint(
                directory, name, f"is {size} bytes, more than the {limit} expected"
            )
        try:
            return handle.read(size)
        except OSError as error:
            raise _unreadable_checkpoint(
                directory, name, f"cannot be read ({type(error).__name__}: {error})"
            ) from error


def _replace_file(directory: Path, name: str, data: bytes) -> None:
    """Write ``directory / name`` whole or not at all, never through what is there.

    The data goes to a file that ``mkstemp`` creates exclusively under an unpredictable
    name, then one rename replaces the entry ``name`` (a symbolic link is replaced, not
    followed).
    """
    try:
        descriptor, temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
    except OSError as error:
        raise _write_error(directory, name, error) from error
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, directory / name)
    except BaseException as error:
        Path(temporary).unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise _write_error(directory, name, error) from error
        raise
    _sync_directory(directory)


def _stage(directory: Path, staged: Path, name: str, write: Callable[[str], None]) -> dict:
    """Write ``name`` into the staging folder, flush it to disk, and describe it."""
    path = staged / name
    try:
        # Created here, exclusively: ``write`` opens the path itself (torch.save does),
        # and then opens a file of ours.
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        os.close(os.open(path, flags, 0o666))
        write(str(path))
        digest, size = hashlib.sha256(), 0
        descriptor = os.open(path, os.O_RDWR | getattr(os, "O_NOFOLLOW", 0))
        try:
            while chunk := os.read(descriptor, 1 << 20):
                digest.update(chunk)
                size += len(chunk)
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
    except OSError as error:
        raise _write_error(directory, name, error) from error
    except RuntimeError as error:
        if not _TORCH_WRITER_ERROR.search(str(error)):
            raise
        raise _write_error(directory, name, error) from error
    return {"size": size, "sha256": digest.hexdigest()}


def _commit_checkpoint(
    directory: Path,
    epoch: int,
    writes: dict[str, Callable[[str], None]],
    kept: dict[str, dict],
    finished: bool,
) -> dict[str, dict]:
    """Write one checkpoint as a unit; return the files its manifest describes.

    ``writes`` maps file names to functions writing them to a path; ``kept`` gives the
    manifest entries of files of the current checkpoint that stay as they are;
    ``finished`` marks the last checkpoint of a fit.
    """
    _recover(directory)
    try:
        staged = Path(tempfile.mkdtemp(prefix=_STAGING_PREFIX, dir=directory))
    except OSError as error:
        raise _write_error(directory, "a checkpoint", error) from error
    try:
        files = dict(kept)
        for name, write in writes.items():
            files[name] = _stage(directory, staged, name, write)
        manifest = {
            "format": _MANIFEST_FORMAT,
            "epoch": epoch,
            "finished": finished,
            "files": files,
        }
        text = json.dumps(manifest, indent=1, sort_keys=True)
        _stage(directory, staged, _MANIFEST_FILE, lambda path: Path(path).write_text(text))
        _sync_directory(staged)
        try:
            os.rename(staged, directory / _COMMIT_DIR)
        except OSError as error:
            raise _write_error(directory, _COMMIT_DIR, error) from error
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    _sync_directory(directory)
    _apply_commit(directory)
    return files


def _apply_commit(directory: Path) -> None:
    """Move a committed checkpoint's files to the top of ``directory``, the manifest last.

    Safe to run again after a crash part-way: what has moved is no longer in the commit
    folder, and the manifest leaves it only once every file has.
    """
    commit = directory / _COMMIT_DIR
    if not os.path.lexists(commit):
        return
    if commit.is_symlink() or not commit.is_dir():
        commit.unlink()  # not ours: only the entry goes, never what it points to
        return
    if os.path.lexists(commit / _MANIFEST_FILE):
        for name in _read_manifest(commit)["files"]:
            if os.path.lexists(commit / name):
                os.replace(commit / name, directory / name)
        os.replace(commit / _MANIFEST_FILE, directory / _MANIFEST_FILE)
        _sync_directory(directory)
    shutil.rmtree(commit)


def _recover(directory: Path) -> None:
    """Finish a checkpoint a crash left half moved; remove what crashed writes left."""
    _apply_commit(directory)
    with os.scandir(directory) as entries:
        strays = [
            entry
            for entry in entries
            if _STAGING_NAME.fullmatch(entry.name) or _TEMPORARY_NAME.fullmatch(entry.name)
        ]
    for entry in strays:
        if not entry.is_dir(follow_symlinks=False):
            os.unlink(entry.path)
        elif _STAGING_NAME.fullmatch(entry.name):
            shutil.rmtree(entry.path)


def _read_small_json(directory: Path, name: str) -> object:
    """The JSON value of ``directory / name`` (a regular file of bounded size), or a
    ValueError naming the folder and the file."""
    data = _read_regular(directory, name, _SMALL_FILE_MAX)
    try:
        return json.loads(data)
    except ValueError as error:
        raise _unreadable_checkpoint(
            directory, name, f"cannot be read ({type(error).__name__}: {error})"
        ) from error


def _read_manifest(directory: Path) -> dict:
    """``directory``'s checkpoint.json, checked: the epoch, and a size and hash per file."""
    manifest = _read_small_json(directory, _MANIFEST_FILE)

    def malformed(reason: str) -> ValueError:
        return _unreadable_checkpoint(directory, _MANIFEST_FILE, reason)

    if not isinstance(manifest, dict) or manifest.get("format") != _MANIFEST_FORMAT:
        raise malformed(f"is not a checkpoint manifest of format {_MANIFEST_FORMAT}")
    epoch = manifest.get("epoch")
    if not _is_int(epoch) or epoch < 1:
        raise malformed(f"entry 'epoch' is {epoch!r}, not an epoch number")
    if not isinstance(manifest.get("finished"), bool):
        raise malformed(f"entry 'finished' is {manifest.get('finished')!r}, not true or false")
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise malformed("entry 'files' is not a JSON object")
    for name in _CHECKPOINT_FILES:
        if name not in files:
            raise malformed(f"entry 'files' lacks {name!r}")
    for name, entry in files.items():
        if name not in (*_CHECKPOINT_FILES, _BEST_WEIGHTS_FILE):
            raise malformed(f"entry 'files' names {name!r}, which sk-mlcpc never writes")
        if not (
            isinstance(entry, dict)
            and _is_int(entry.get("size"))
            and entry["size"] >= 0
            and isinstance(entry.get("sha256"), str)
            and re.fullmatch(r"[0-9a-f]{64}", entry["sha256"])
        ):
            raise malformed(f"entry 'files' gives {name!r} no size and SHA-256")
    return manifest


def _parse_checkpoint_file(directory: Path, name: str, data: bytes):
    """The content of a checkpoint file: JSON, or tensors in plain containers only.

    ``torch.load(weights_only=True)`` refuses any other object before it is built, so a
    file planted in the directory runs no code.
    """
    if name.endswith(".json"):
        try:
            return json.loads(data)
        except ValueError as error:
            raise _unreadable_checkpoint(
                directory, name, f"cannot be read ({type(error).__name__}: {error})"
            ) from error
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise _unreadable_checkpoint(
            directory,
            name,
            "holds objects other than tensors and plain containers, which sk-mlcpc "
            f"never writes; it was not loaded ({str(error).splitlines()[0]})",
        ) from error
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as error:
        # A truncated file fails in torch's zip reader, as a ValueError from a seek
        # when read from memory.
        raise _unreadable_checkpoint(
            directory, name, f"cannot be read ({type(error).__name__}: {error})"
        ) from error


def _check_tensors(
    directory: Path, name: str, state, expected: Mapping, owner: str, entry: str = ""
) -> None:
    """``state`` has exactly ``expected``'s names, each a tensor of the same shape."""

    def malformed(reason: str) -> ValueError:
        return _unreadable_checkpoint(directory, name, f"{entry}{reason}")

    if not isinstance(state, Mapping) or not all(
        isinstance(key, str) and isinstance(value, torch.Tensor) for key, value in state.items()
    ):
        raise malformed("is not a mapping of names to tensors")
    missing = [key for key in expected if key not in state]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise malformed(f"lacks entry {missing[0]!r} of {owner}{more}")
    extra = [key for key in state if key not in expected]
    if extra:
        raise malformed(f"has entry {extra[0]!r}, which {owner} does not have")
    for key, tensor in expected.items():
        if state[key].shape != tensor.shape:
            raise malformed(
                f"entry {key!r} has shape {tuple(state[key].shape)} where {owner}'s has "
                f"{tuple(tensor.shape)}"
            )


def _check_optimizer(directory: Path, state, optimizer: torch.optim.Optimizer) -> None:
    """``state`` is a state dict of ``optimizer``: its groups, parameters and shapes."""
    name = "optimizer.pt"

    def malformed(reason: str) -> ValueError:
        return _unreadable_checkpoint(directory, name, reason)

    if not isinstance(state, Mapping):
        raise malformed("is not a mapping")
    for key in ("state", "param_groups"):
        if key not in state:
            raise malformed(f"lacks entry {key!r}")
    groups, saved = state["param_groups"], state["state"]
    if not isinstance(groups, list) or len(groups) != len(optimizer.param_groups):
        count = len(groups) if isinstance(groups, list) else "no list of"
        raise malformed(
            f"entry 'param_groups' holds {count} groups where the optimiser has "
            f"{len(optimizer.param_groups)}"
        )
    parameters = {}
    for index, (group, current) in enumerate(zip(groups, optimizer.param_groups, strict=True)):
        where = f"entry 'param_groups'[{index}]"
        if not isinstance(group, Mapping):
            raise malformed(f"{where} is not a mapping")
        missing = [key for key in current if key not in group]
        if missing:
            raise malformed(f"{where} lacks {missing[0]!r}")
        ids = group["params"]
        if (
            not isinstance(ids, list)
            or len(ids) != len(current["params"])
            or not all(_is_int(identifier) for identifier in ids)
        ):
            raise malformed(
                f"{where}['params'] does not list the group's {len(current['params'])} parameters"
            )
        parameters.update(zip(ids, current["params"], strict=True))
    if not isinstance(saved, Mapping):
        raise malformed("entry 'state' is not a mapping")
    for identifier, values in saved.items():
        where = f"entry 'state'[{identifier!r}]"
        if identifier not in parameters:
            raise malformed(f"{where} names no parameter of the optimiser")
        if not isinstance(values, Mapping):
            raise malformed(f"{where} is not a mapping")
        shape = parameters[identifier].shape
        for field, value in values.items():
            # Every tensor of a parameter's state but its step count has its shape.
            if isinstance(value, torch.Tensor) and field != "step" and value.shape != shape:
                raise malformed(
                    f"{where}[{field!r}] has shape {tuple(value.shape)} where its "
                    f"parameter's has {tuple(shape)}"
                )


def _check_history(directory: Path, rows, epoch: int | None, validating: bool) -> list:
    """``rows`` are the history of ``epoch`` epochs, with what a resume reads of them."""
    name = "history.json"

    def malformed(reason: str) -> ValueError:
        return _unreadable_checkpoint(directory, name, reason)

    if not isinstance(rows, list) or not rows:
        raise malformed("is not a list of epoch rows")
    if epoch is not None and len(rows) != epoch:
        raise malformed(f"has {len(rows)} rows where {_MANIFEST_FILE} says epoch {epoch}")
    required = ("train_loss", "valid_loss") if validating else ("train_loss",)
    for index, row in enumerate(rows, start=1):
        where = f"row {index}"
        if not isinstance(row, dict):
            raise malformed(f"{where} is not a JSON object")
        if not _is_int(row.get("epoch")) or row["epoch"] != index:
            raise malformed(f"{where} has entry 'epoch' {row.get('epoch')!r}, not {index}")
        batches = row.get("batches")
        if not isinstance(batches, list) or not all(isinstance(b, dict) for b in batches):
            raise malformed(f"{where} lacks entry 'batches' (a list of batch records)")
        for key in required:
            if not _is_number(row.get(key)):
                raise malformed(f"{where} lacks entry {key!r} (a number)")
    return rows


def _load_checkpoint(net, directory: Path, *, completed: bool) -> tuple[dict | None, bool]:
    """Load ``directory``'s checkpoint into the initialised ``net``, every file checked.

    Each file must be the one ``checkpoint.json`` describes (size and SHA-256), hold
    only tensors and plain containers (nothing else is unpickled), and fit ``net``:
    the parameters' names and shapes, the optimiser's groups, one history row per
    epoch. Returns the best epoch's weights saved with it (or None), and whether it is
    the last checkpoint of a finished fit.

    A checkpoint of an earlier version has no manifest: a finished one is read (its files
    were all written by the same last save), an unfinished one may mix epochs and is
    refused.
    """
    if os.path.lexists(directory / _MANIFEST_FILE):
        manifest = _read_manifest(directory)
        files, epoch, finished = manifest["files"], manifest["epoch"], manifest["finished"]
    elif completed:
        files, epoch, finished = dict.fromkeys(_CHECKPOINT_FILES), None, True
    else:
        raise _unreadable_checkpoint(
            directory,
            _MANIFEST_FILE,
            "is missing: this unfinished checkpoint was written by an earlier sk-mlcpc, "
            "whose files may come from different epochs, so it is not resumed",
        )
    content = {}
    for name, entry in files.items():
        limit = None if entry is None else entry["size"] + _SIZE_SLACK
        data = _read_regular(directory, name, limit)
        content[name] = _parse_checkpoint_file(directory, name, data)
        if entry is not None and (
            len(data) != entry["size"] or hashlib.sha256(data).hexdigest() != entry["sha256"]
        ):
            raise _unreadable_checkpoint(
                directory,
                name,
                f"does not match {_MANIFEST_FILE} (its size or SHA-256 differs): the "
                "checkpoint mixes files of different writes, or was edited, so it is not "
                "resumed",
            )
    rows = _check_history(directory, content["history.json"], epoch, net.train_split is not None)
    module = net.module_.state_dict()
    _check_tensors(directory, "params.pt", content["params.pt"], module, "the network")
    criterion = net.criterion_.state_dict()
    _check_tensors(directory, "criterion.pt", content["criterion.pt"], criterion, "the criterion")
    _check_optimizer(directory, content["optimizer.pt"], net.optimizer_)
    best = content.get(_BEST_WEIGHTS_FILE)
    if best is not None:
        if not isinstance(best, Mapping) or not {"epoch", "state"} <= set(best):
            raise _unreadable_checkpoint(
                directory, _BEST_WEIGHTS_FILE, "lacks entry 'epoch' or 'state'"
            )
        if not _is_int(best["epoch"]) or not 1 <= best["epoch"] <= len(rows):
            raise _unreadable_checkpoint(
                directory,
                _BEST_WEIGHTS_FILE,
                f"has entry 'epoch' {best['epoch']!r}, not one of the {len(rows)} epochs",
            )
        _check_tensors(
            directory, _BEST_WEIGHTS_FILE, best["state"], module, "the network", "entry 'state' "
        )
    net.module_.load_state_dict(content["params.pt"])
    net.criterion_.load_state_dict(content["criterion.pt"])
    net.optimizer_.load_state_dict(content["optimizer.pt"])
    net.history = History(rows)
    return best, finished


def _best_weights(net) -> dict | None:
    """The best epoch's weights that early stopping holds, to save with a checkpoint."""
    stopping = dict(getattr(net, "callbacks_", [])).get("early_stopping")
    if not isinstance(stopping, ResumableEarlyStopping) or not stopping.load_best:
        return None
    state = getattr(stopping, "best_model_weights_", None)
    return None if state is None else {"epoch": stopping.best_epoch_, "state": state}


class _UnitCheckpoint(Checkpoint):
    """skorch's per-epoch checkpoint, written as one unit that fails loudly.

    The parameters, optimiser, criterion and history, and the best epoch's weights when
    early stopping restores them, are committed together (see the comment above
    ``_CHECKPOINT_FILES``). skorch's own writer replaces each file on its own and reports
    a failed write to the sink and carries on; with a silent sink a full disk would then
    leave a checkpoint that cannot resume.
    """

    #: Set for the last checkpoint of a fit: its manifest then says so, in the same
    #: commit as the final weights (a crash before the state file records it too must
    #: not train on from weights early stopping restored).
    finished = False

    def initialize(self):
        self.best_written_: tuple[int, dict] | None = None
        return super().initialize()

    def save_model(self, net) -> None:
        writes: dict[str, Callable[[str], None]] = {
            "params.pt": lambda path: torch.save(net.module_.state_dict(), path),
            "optimizer.pt": lambda path: torch.save(net.optimizer_.state_dict(), path),
            "criterion.pt": lambda path: torch.save(net.criterion_.state_dict(), path),
        }
        kept = {}
        best = _best_weights(net)
        written = getattr(self, "best_written_", None)
        if best is not None and written is not None and written[0] == best["epoch"]:
            # The best epoch has not changed since the last checkpoint: keep its file.
            kept[_BEST_WEIGHTS_FILE] = written[1]
        elif best is not None:
            writes[_BEST_WEIGHTS_FILE] = lambda path: torch.save(best, path)
        writes["history.json"] = lambda path: net.history.to_file(path)
        files = _commit_checkpoint(
            Path(self.dirname), len(net.history), writes, kept, self.finished
        )
        if best is not None:
            self.best_written_ = (best["epoch"], files[_BEST_WEIGHTS_FILE])


def _read_state(directory: Path) -> dict | None:
    """The fit state file of ``directory``, None when absent, a ValueError when unreadable."""
    if not os.path.lexists(directory / _STATE_FILE):
        return None
    state = _read_small_json(directory, _STATE_FILE)
    if not isinstance(state, dict):
        raise _unreadable_checkpoint(directory, _STATE_FILE, "is not a JSON object")
    return state


def _write_state(directory: Path, fingerprint: str, completed: bool) -> None:
    state = json.dumps({"fingerprint": fingerprint, "completed": completed})
    _replace_file(directory, _STATE_FILE, state.encode())


def _checkpoint(directory: Path) -> Checkpoint:
    return _UnitCheckpoint(
        monitor=None,
        f_params="params.pt",
        f_optimizer="optimizer.pt",
        f_criterion="criterion.pt",
        f_history="history.json",
        f_pickle=None,
        dirname=str(directory),
        sink=_noop,
    )


def _raise_if_interrupted(net, estimator, directory: Path | None) -> None:
    """Raise ``KeyboardInterrupt`` again when the fit was interrupted (Ctrl-C).

    skorch returns from an interrupted fit as from a finished one; a partly trained model
    must not pass for a fitted one, so the interruption goes on to the caller. A
    checkpoint stays marked unfinished: the next ``fit`` resumes it.
    """
    if not getattr(net, "interrupted_", False):
        return
    where = f"during epoch {len(net.history)} of {net.max_epochs}"
    if directory is not None:
        advice = (
            f"checkpoint_dir={str(directory)!r} holds the last finished epoch: fit again "
            "with the same parameters and data to resume."
        )
    elif estimator.warm_start:
        advice = "the net holds the epochs trained so far (warm_start=True continues them)."
    else:
        advice = "pass checkpoint_dir to make a fit resumable after an interruption."
    raise KeyboardInterrupt(f"{type(estimator).__name__}.fit was interrupted {where}; {advice}")


def run_training(
    estimator,
    make_net: Callable[..., object],
    train_set,
    valid_set,
    *,
    init_seed: int,
    device: torch.device,
    fingerprint: str,
):
    """Train ``estimator``'s net and return it.

    * ``warm_start=True`` on a fitted estimator: continue the fitted net for
      ``max_epochs`` more epochs (optimiser state kept).
    * ``checkpoint_dir`` set: save the net's parameters, optimiser, criterion and history
      there after every epoch, as one unit (a crash mid-write leaves the previous one, see
      ``_CHECKPOINT_FILES``); if the directory holds an unfinished checkpoint of the
      same fit (same parameters and data), load it and run only the remaining epochs, so
      that an interrupted fit ends where an uninterrupted one would. A finished
      checkpoint is loaded without training.
    * otherwise a fresh fit.

    An interrupted fit (``KeyboardInterrupt``, e.g. Ctrl-C) raises ``KeyboardInterrupt``
    again, with what was kept: skorch would return the partly trained net as if the fit
    had finished, and mark a checkpoint finished so that it never resumed. The checkpoint
    is left unfinished and holds the last epoch it saved; the next ``fit`` resumes it.
    Early stopping (which skorch signals with a ``KeyboardInterrupt`` too) is not an
    interruption.
    """
    cuda_devices = forked_cuda_devices(device)
    split = None if valid_set is None else predefined_split(valid_set)
    if estimator.warm_start and hasattr(estimator, "net_"):
        net = estimator.net_
        net.train_split = split
        net.max_epochs = estimator.max_epochs
        with torch.random.fork_rng(devices=cuda_devices):
            torch.manual_seed(init_seed + len(net.history))
            net.partial_fit(train_set, None)
        _raise_if_interrupted(net, estimator, None)
        return net

    with torch.random.fork_rng(devices=cuda_devices):
        torch.manual_seed(init_seed)
        net = make_net(valid_set=valid_set)
        if estimator.checkpoint_dir is None:
            net.fit(train_set, None)
            _raise_if_interrupted(net, estimator, None)
            return net
        directory = Path(estimator.checkpoint_dir)
        directory.mkdir(parents=True, exist_ok=True)
        _recover(directory)
        checkpoint = _checkpoint(directory)
        net.callbacks = [*(net.callbacks or []), ("checkpoint", checkpoint)]
        state = _read_state(directory)
        saved = (directory / name for name in (_MANIFEST_FILE, "history.json"))
        if state is None or not any(os.path.lexists(path) for path in saved):
            _write_state(directory, fingerprint, completed=False)
            net.fit(train_set, None)
            _raise_if_interrupted(net, estimator, directory)
        else:
            if state.get("fingerprint") != fingerprint:
                raise ValueError(
                    f"checkpoint_dir={str(directory)!r} holds a checkpoint of a different fit "
                    "(other parameters or data). Use an empty directory, or delete it to "
                    "start again."
                )
            net.initialize()
            completed = bool(state.get("completed"))
            best, finished = _load_checkpoint(net, directory, completed=completed)
            remaining = estimator.max_epochs - len(net.history)
            resume = not (completed or finished) and remaining > 0
            for _, callback in net.callbacks_:
                if hasattr(callback, "resuming"):
                    # Continue the patience counts from the history, see the classes.
                    callback.resuming = True
                if resume and isinstance(callback, ResumableEarlyStopping):
                    callback.saved_best_weights = best
            if resume:
                net.partial_fit(train_set, None, epochs=remaining)
                _raise_if_interrupted(net, estimator, directory)
        # The final weights (early stopping may have restored the best epoch's).
        checkpoint.finished = True
        checkpoint.save_model(net)
        _write_state(directory, fingerprint, completed=True)
    return net
