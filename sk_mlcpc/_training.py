"""Running a fit: fresh, warm-started, or resumed from a checkpoint directory."""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from sklearn.preprocessing import QuantileTransformer, StandardScaler
from skorch.callbacks import Callback, Checkpoint, EarlyStopping, ProgressBar
from skorch.helper import predefined_split

from sk_mlcpc._devices import forked_cuda_devices

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
            saved = torch.load(path, map_location=device, weights_only=True)
            if saved["epoch"] == self.best_epoch_:
                self.best_model_weights_ = saved["state"]

    def on_epoch_end(self, net, **kwargs):
        super().on_epoch_end(net, **kwargs)
        improved = self.best_epoch_ == net.history[-1, "epoch"]
        if improved and self.load_best and self.best_weights_file is not None:
            state = {"epoch": self.best_epoch_, "state": self.best_model_weights_}
            torch.save(state, self.best_weights_file)


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


def _checkpoint(directory: Path) -> Checkpoint:
    return Checkpoint(
        monitor=None,
        f_params="params.pt",
        f_optimizer="optimizer.pt",
        f_criterion="criterion.pt",
        f_history="history.json",
        f_pickle=None,
        dirname=str(directory),
        sink=_noop,
    )


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
        return net

    with torch.random.fork_rng(devices=cuda_devices):
        torch.manual_seed(init_seed)
        net = make_net(valid_set=valid_set)
        if estimator.checkpoint_dir is None:
            net.fit(train_set, None)
            return net
        directory = Path(estimator.checkpoint_dir)
        directory.mkdir(parents=True, exist_ok=True)
        checkpoint = _checkpoint(directory)
        net.callbacks = [*(net.callbacks or []), ("checkpoint", checkpoint)]
        stopping = dict(net.callbacks).get("early_stopping")
        if stopping is not None:
            stopping.best_weights_file = str(directory / _BEST_WEIGHTS_FILE)
        state_path = directory / _STATE_FILE
        state = json.loads(state_path.read_text()) if state_path.exists() else None
        if state is None or not (directory / "history.json").exists():
            state_path.write_text(json.dumps({"fingerprint": fingerprint, "completed": False}))
            net.fit(train_set, None)
        else:
            if state.get("fingerprint") != fingerprint:
                raise ValueError(
                    f"checkpoint_dir={str(directory)!r} holds a checkpoint of a different fit "
                    "(other parameters or data). Use an empty directory, or delete it to "
                    "start again."
                )
            net.initialize()
            net.load_params(checkpoint=checkpoint)
            stopping = dict(net.callbacks_).get("early_stopping")
            if stopping is not None:
                stopping.resuming = True  # continue the patience count, see the class
            remaining = estimator.max_epochs - len(net.history)
            if not state.get("completed") and remaining > 0:
                net.partial_fit(train_set, None, epochs=remaining)
        # The final weights (early stopping may have restored the best epoch's).
        checkpoint.save_model(net)
        state_path.write_text(json.dumps({"fingerprint": fingerprint, "completed": True}))
    return net
