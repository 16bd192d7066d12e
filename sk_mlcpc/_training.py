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
    "check_hidden_layer_sizes",
    "data_fingerprint",
    "make_preprocessor",
    "run_training",
    "standard_callbacks",
]

_STATE_FILE = "sk_mlcpc_fit.json"
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


def standard_callbacks(estimator, callbacks: list) -> list:
    """``callbacks`` followed by those every estimator shares, from its parameters.

    Early stopping on the held-out loss (``early_stopping``, ``n_iter_no_change``,
    ``tol``; the best epoch's weights restored), a progress bar at ``verbose >= 2``, and
    deep copies of the user's ``callbacks`` (so the parameter is never modified), each a
    skorch ``Callback`` or a ``(name, Callback)`` tuple.
    """
    callbacks = list(callbacks)
    if estimator.early_stopping:
        stopping = EarlyStopping(
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
            remaining = estimator.max_epochs - len(net.history)
            if not state.get("completed") and remaining > 0:
                net.partial_fit(train_set, None, epochs=remaining)
        # The final weights (early stopping may have restored the best epoch's).
        checkpoint.save_model(net)
        state_path.write_text(json.dumps({"fingerprint": fingerprint, "completed": True}))
    return net
