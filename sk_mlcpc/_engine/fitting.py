"""Running a fit: fresh, warm-started, or resumed from a checkpoint directory."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import pickle
import re
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from sklearn.preprocessing import QuantileTransformer, StandardScaler
from skorch.callbacks import Callback, Checkpoint, EarlyStopping, LRScheduler, ProgressBar
from skorch.helper import predefined_split

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
        return QuantileTransformer(
            n_quantiles=min(1000, n_rows), output_distribution="normal", random_state=seed
        )
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

    With ``best_weights_file`` set (a file in the checkpoint directory) the best epoch's
    weights are also written there whenever the monitored score improves. When
    :func:`run_training` resumes an interrupted fit it sets ``resuming``: the next
    ``on_train_begin`` then replays the epochs in the history (patience count, threshold,
    best epoch) and reloads the best weights from the file, so that the resumed fit stops
    and restores where an uninterrupted one would. A warm start (``resuming`` unset)
    starts a new patience count, as skorch's does.
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
        best_weights_file: str | None = None,
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
        self.best_weights_file = best_weights_file
        self.resuming = resuming

    def on_train_begin(self, net, **kwargs):
        super().on_train_begin(net, **kwargs)
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
        path = None if self.best_weights_file is None else Path(self.best_weights_file)
        if self.load_best and path is not None and path.exists():
            device = next(net.module_.parameters()).device
            try:
                saved = torch.load(path, map_location=device, weights_only=True)
            except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile) as error:
                raise _unreadable_checkpoint(
                    path.parent, path.name, f"cannot be read safely ({error})"
                ) from error
            if saved["epoch"] == self.best_epoch_:
                self.best_model_weights_ = saved["state"]

    def on_epoch_end(self, net, **kwargs):
        super().on_epoch_end(net, **kwargs)
        improved = self.best_epoch_ == net.history[-1, "epoch"]
        if improved and self.load_best and self.best_weights_file is not None:
            state = {"epoch": self.best_epoch_, "state": self.best_model_weights_}
            _write_atomically(
                Path(self.best_weights_file), lambda temporary: torch.save(state, temporary)
            )


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


def _write_atomically(path: Path, write: Callable[[str], None]) -> None:
    """Call ``write`` on a temporary file beside ``path``, then rename it to ``path``.

    A crash or a full disk mid-write leaves the previous file whole instead of a
    truncated one that no later fit could read.
    """
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(str(temporary))
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


class _AtomicCheckpoint(Checkpoint):
    """skorch's checkpoint writing each file atomically, and failing loudly.

    skorch's own ``_save_params`` reports a failed write to the sink and carries on; with
    a silent sink a full disk would then leave a checkpoint that cannot resume.
    """

    def _save_params(self, f, net, f_name, log_name):
        if not isinstance(f, (str, os.PathLike)):
            net.save_params(**{f_name: f})
            return
        _write_atomically(Path(f), lambda temporary: net.save_params(**{f_name: temporary}))


#: Checkpoint files read with ``torch.load``: tensors and plain containers only.
_TENSOR_FILES = ("params.pt", "optimizer.pt", "criterion.pt")


def _unreadable_checkpoint(directory: Path, name: str, reason: str) -> ValueError:
    return ValueError(
        f"checkpoint_dir={str(directory)!r}: {name} {reason}. Delete the directory (or "
        "choose another checkpoint_dir) to start the fit again."
    )


def _load_checkpoint(net, checkpoint: Checkpoint, directory: Path) -> None:
    """Load a checkpoint into ``net`` without unpickling anything but tensors.

    Every ``.pt`` file is read with ``torch.load(weights_only=True)``: a file planted in
    the directory that holds other objects is refused before anything in it runs, and a
    truncated or foreign file is named in the error.
    """
    for name in _TENSOR_FILES:
        path = directory / name
        if not path.exists():
            raise _unreadable_checkpoint(directory, name, "is missing")
        try:
            torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as error:
            raise _unreadable_checkpoint(
                directory,
                name,
                "holds objects other than tensors and plain containers, which sk-mlcpc "
                f"never writes; it was not loaded ({str(error).splitlines()[0]})",
            ) from error
        except (RuntimeError, EOFError, OSError, zipfile.BadZipFile) as error:
            raise _unreadable_checkpoint(
                directory, name, f"cannot be read ({type(error).__name__}: {error})"
            ) from error
    try:
        json.loads((directory / "history.json").read_text())
    except (ValueError, OSError) as error:
        raise _unreadable_checkpoint(
            directory, "history.json", f"cannot be read ({type(error).__name__}: {error})"
        ) from error
    load_kwargs = net.torch_load_kwargs
    net.torch_load_kwargs = {"weights_only": True}
    try:
        net.load_params(checkpoint=checkpoint)
    finally:
        net.torch_load_kwargs = load_kwargs


def _read_state(directory: Path) -> dict | None:
    """The fit state file of ``directory``, None when absent, a ValueError when unreadable."""
    path = directory / _STATE_FILE
    if not path.exists():
        return None
    try:
        state = json.loads(path.read_text())
    except (ValueError, OSError) as error:
        raise _unreadable_checkpoint(
            directory, _STATE_FILE, f"cannot be read ({type(error).__name__}: {error})"
        ) from error
    if not isinstance(state, dict):
        raise _unreadable_checkpoint(directory, _STATE_FILE, "is not a JSON object")
    return state


def _write_state(directory: Path, fingerprint: str, completed: bool) -> None:
    state = json.dumps({"fingerprint": fingerprint, "completed": completed})
    _write_atomically(directory / _STATE_FILE, lambda temporary: Path(temporary).write_text(state))


def _checkpoint(directory: Path) -> Checkpoint:
    return _AtomicCheckpoint(
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
      there after every epoch; if the directory holds an unfinished checkpoint of the
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
        checkpoint = _checkpoint(directory)
        net.callbacks = [*(net.callbacks or []), ("checkpoint", checkpoint)]
        stopping = dict(net.callbacks).get("early_stopping")
        if stopping is not None:
            stopping.best_weights_file = str(directory / _BEST_WEIGHTS_FILE)
        state = _read_state(directory)
        if state is None or not (directory / "history.json").exists():
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
            _load_checkpoint(net, checkpoint, directory)
            for _, callback in net.callbacks_:
                if hasattr(callback, "resuming"):
                    # Continue the patience counts from the history, see the classes.
                    callback.resuming = True
            remaining = estimator.max_epochs - len(net.history)
            if not state.get("completed") and remaining > 0:
                net.partial_fit(train_set, None, epochs=remaining)
                _raise_if_interrupted(net, estimator, directory)
        # The final weights (early stopping may have restored the best epoch's).
        checkpoint.save_model(net)
        _write_state(directory, fingerprint, completed=True)
    return net
