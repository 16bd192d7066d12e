"""Saving and loading fitted estimators without pickle.

A saved model is one zip file holding ``model.json`` (format version, package version,
class, constructor parameters, fitted scalars, preprocessors' fitted arrays by name,
training history) and ``weights.pt`` (state dicts of the module, criterion and optimiser
and the fitted tensors, read back with ``torch.load(weights_only=True)``, so loading runs
no pickled code). Files are portable between CPU and GPU and across package versions
with the same major version.
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from sklearn.preprocessing import QuantileTransformer, StandardScaler
from skorch.history import History

from sk_mlcpc._devices import resolve_device
from sk_mlcpc._version import __version__

__all__ = ["ModelFileError", "PersistenceMixin"]

FORMAT = "sk-mlcpc-model"
FORMAT_VERSION = 1
_PREPROCESSORS = {"QuantileTransformer": QuantileTransformer, "StandardScaler": StandardScaler}
_JSON_SCALARS = (bool, int, float, str, type(None))


class ModelFileError(ValueError):
    """A model file is corrupted, not an sk-mlcpc model, or incompatible with this version."""


def _major(version: str) -> int:
    return int(version.split(".")[0])


def _to_json(value: Any, name: str) -> Any:
    """Plain JSON for parameters and fitted scalars; a TypeError names what cannot be saved."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return {"__float__": repr(value)}
    if isinstance(value, _JSON_SCALARS):
        return value
    if isinstance(value, torch.device):
        return str(value)
    if isinstance(value, tuple | list):
        return (
            {"__tuple__": [_to_json(v, name) for v in value]}
            if isinstance(value, tuple)
            else [_to_json(v, name) for v in value]
        )
    if isinstance(value, np.ndarray) and value.dtype == object:
        return {"__object_array__": [_to_json(v, name) for v in value.tolist()]}
    if isinstance(value, dict):
        return {str(k): _to_json(v, name) for k, v in value.items()}
    raise TypeError(
        f"{name}={value!r} cannot be written to a model file (only numbers, strings, "
        "booleans, None and sequences of them can). Use pickle for estimators with custom "
        "modules, callables, callbacks or RandomState instances."
    )


def _from_json(value: Any) -> Any:
    if isinstance(value, dict):
        if "__float__" in value:
            return float(value["__float__"])
        if "__tuple__" in value:
            return tuple(_from_json(v) for v in value["__tuple__"])
        if "__object_array__" in value:
            return np.asarray(value["__object_array__"], dtype=object)
        return {k: _from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_json(v) for v in value]
    return value


def _history_to_json(history: History) -> list:
    def convert(value):
        if isinstance(value, dict):
            return {str(k): convert(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [convert(v) for v in value]
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, float) and not math.isfinite(value):
            return {"__float__": repr(value)}
        if isinstance(value, _JSON_SCALARS):
            return value
        return repr(value)

    return [convert(row) for row in history]


def _preprocessor_state(preprocessor, prefix: str, tensors: dict) -> dict | None:
    if preprocessor is None:
        return None
    name = type(preprocessor).__name__
    if name not in _PREPROCESSORS:
        raise TypeError(f"Cannot save a {name} preprocessor.")
    scalars, arrays = {}, []
    for attribute, value in vars(preprocessor).items():
        if not attribute.endswith("_") or attribute.startswith("_"):
            continue
        if isinstance(value, np.ndarray) and value.dtype != object:
            tensors[f"{prefix}.{attribute}"] = torch.from_numpy(np.ascontiguousarray(value))
            arrays.append(attribute)
        else:
            scalars[attribute] = _to_json(value, f"{prefix}.{attribute}")
    return {
        "class": name,
        "params": _to_json(preprocessor.get_params(), prefix),
        "scalars": scalars,
        "arrays": arrays,
    }


def _restore_preprocessor(state: dict | None, prefix: str, tensors: dict):
    if state is None:
        return None
    preprocessor = _PREPROCESSORS[state["class"]](**_from_json(state["params"]))
    for attribute, value in state["scalars"].items():
        setattr(preprocessor, attribute, _from_json(value))
    for attribute in state["arrays"]:
        setattr(preprocessor, attribute, tensors[f"{prefix}.{attribute}"].numpy())
    return preprocessor


class PersistenceMixin:
    """``save(path)`` / ``load(path)`` for estimators that hold a skorch net as ``net_``.

    Subclasses list their JSON-able fitted attributes in ``_saved_attributes``, their
    preprocessors in ``_saved_preprocessors``, and implement ``_rebuild_net()`` (an
    initialised net of the fitted architecture, from the fitted attributes) and, where
    needed, ``_saved_tensors()`` / ``_restore_tensors(tensors)`` and ``_after_load()``.
    """

    _saved_attributes: ClassVar[tuple[str, ...]] = ()
    _saved_preprocessors: ClassVar[tuple[str, ...]] = ()

    def _saved_tensors(self) -> dict[str, torch.Tensor]:
        return {}

    def _restore_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        return None

    def _after_load(self) -> None:
        return None

    def __setstate__(self, state) -> None:
        super().__setstate__(state)
        # A model pickled on a GPU and unpickled without one: skorch has mapped the
        # weights to the CPU; the estimator's own device must follow, or continuing
        # training (warm_start) would put the data where the model is not.
        net = state.get("net_")
        parameter = None if net is None else next(net.module_.parameters(), None)
        if parameter is not None and "device_" in state:
            self.device_ = parameter.device

    def save(self, path) -> None:
        """Write the fitted estimator to ``path``: parameters as JSON, weights as tensors.

        Unlike pickle, loading the file runs no code from it: tensors are read with
        ``torch.load(weights_only=True)``. The file holds the constructor parameters, the
        fitted attributes and preprocessing, the network's, criterion's and optimiser's
        state (so ``warm_start`` can continue after :meth:`load`) and ``history_``.

        Parameters
        ----------
        path : str or path-like
            File to write (conventionally ``*.skmlcpc``); overwritten if it exists.

        Raises
        ------
        TypeError
            When a parameter cannot be written without pickle (a custom torch module,
            a callable ``augmentation``, skorch callbacks, a ``RandomState``).
        """
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self)
        net = self.net_
        params = {
            name: _to_json(value, name)
            for name, value in self.get_params(deep=False).items()
            # Process-local, like a device handle: not part of the model (pickle drops
            # it too); a loaded model has accelerator=None.
            if name != "accelerator"
        }
        tensors: dict[str, Any] = {
            "module": {k: v.detach().cpu() for k, v in net.module_.state_dict().items()},
            "criterion": {k: v.detach().cpu() for k, v in net.criterion_.state_dict().items()},
            "optimizer": _cpu_state(net.optimizer_.state_dict()),
        }
        flat: dict[str, torch.Tensor] = {}
        preprocessors = {
            name: _preprocessor_state(getattr(self, name), name, flat)
            for name in self._saved_preprocessors
        }
        for key, value in self._saved_tensors().items():
            flat[key] = value.detach().cpu()
        tensors["fitted"] = flat
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "package_version": __version__,
            "torch_version": torch.__version__,
            "class": type(self).__name__,
            "params": params,
            "fitted": {
                name: _to_json(getattr(self, name), name)
                for name in self._saved_attributes
                if hasattr(self, name)
            },
            "net": {
                "shuffle_seed": int(net.shuffle_seed),
                "eval_seed": int(net.eval_seed),
                "lr": [group["lr"] for group in net.optimizer_.param_groups],
            },
            "preprocessors": preprocessors,
            "history": _history_to_json(net.history),
        }
        buffer = io.BytesIO()
        torch.save(tensors, buffer)
        with zipfile.ZipFile(Path(path), "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("model.json", json.dumps(manifest))
            archive.writestr("weights.pt", buffer.getvalue())

    @classmethod
    def load(cls, path, *, device="auto"):
        """Read an estimator written by :meth:`save`.

        Parameters
        ----------
        path : str or path-like
            The file.
        device : str or torch.device, default="auto"
            Where to place the network: ``"auto"`` is CUDA when available, else the CPU,
            whatever device it was trained on.

        Returns
        -------
        estimator
            A fitted estimator of this class.

        Raises
        ------
        ModelFileError
            (a ``ValueError``) when the file is corrupted, is not an sk-mlcpc model, holds
            another class, or was written by an incompatible version.
        """
        path = Path(path)
        try:
            with zipfile.ZipFile(path) as archive:
                manifest = json.loads(archive.read("model.json"))
                weights = archive.read("weights.pt")
            tensors = torch.load(io.BytesIO(weights), map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise
        except Exception as error:
            raise ModelFileError(
                f"{path} is not a readable sk-mlcpc model file ({type(error).__name__}: "
                f"{error}). It may be truncated or corrupted; save the model again."
            ) from error
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise ModelFileError(f"{path} is not an sk-mlcpc model file.")
        if manifest.get("format_version") != FORMAT_VERSION or _major(
            str(manifest.get("package_version", "0"))
        ) != _major(__version__):
            raise ModelFileError(
                f"{path} was written by sk-mlcpc {manifest.get('package_version')} (file "
                f"format {manifest.get('format_version')}); this is sk-mlcpc {__version__} "
                f"(format {FORMAT_VERSION}), which reads files of the same major version."
            )
        if manifest.get("class") != cls.__name__:
            raise ModelFileError(
                f"{path} holds a {manifest.get('class')}, not a {cls.__name__}; load it "
                f"with {manifest.get('class')}.load."
            )
        try:
            estimator = cls(**{k: _from_json(v) for k, v in manifest["params"].items()})
            for name, value in manifest["fitted"].items():
                setattr(estimator, name, _from_json(value))
            flat = tensors["fitted"]
            for name, state in manifest["preprocessors"].items():
                setattr(estimator, name, _restore_preprocessor(state, name, flat))
            estimator.device_ = resolve_device(device)
            estimator._restore_tensors(flat)
            with torch.random.fork_rng(devices=[]):
                net = estimator._rebuild_net(
                    shuffle_seed=manifest["net"]["shuffle_seed"],
                    eval_seed=manifest["net"]["eval_seed"],
                )
                net.initialize()
            net.module_.load_state_dict(tensors["module"])
            net.criterion_.load_state_dict(tensors["criterion"])
            net.optimizer_.load_state_dict(tensors["optimizer"])
            net.history = History(_from_json(manifest["history"]))
        except (KeyError, TypeError, RuntimeError) as error:
            raise ModelFileError(
                f"{path} could not be restored ({type(error).__name__}: {error}); it is "
                "corrupted or was edited."
            ) from error
        net.train_split = None
        estimator.net_ = net
        estimator.history_ = net.history
        estimator._after_load()
        return estimator


def _cpu_state(state: Any) -> Any:
    if isinstance(state, torch.Tensor):
        return state.detach().cpu()
    if isinstance(state, dict):
        return {k: _cpu_state(v) for k, v in state.items()}
    if isinstance(state, list | tuple):
        return type(state)(_cpu_state(v) for v in state)
    return state
