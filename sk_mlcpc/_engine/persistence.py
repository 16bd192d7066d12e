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
import os
import re
import stat
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from sklearn.preprocessing import QuantileTransformer, StandardScaler
from skorch.history import History

from sk_mlcpc._engine.preprocessing import NormalQuantileTransformer
from sk_mlcpc._nn.devices import resolve_device
from sk_mlcpc._version import __version__

__all__ = ["FITTED_ATTRIBUTE_TYPES", "ModelFileError", "PersistenceMixin"]

FORMAT = "sk-mlcpc-model"
FORMAT_VERSION = 1
_PREPROCESSORS = {
    "NormalQuantileTransformer": NormalQuantileTransformer,
    "QuantileTransformer": QuantileTransformer,  # files written before NormalQuantileTransformer
    "StandardScaler": StandardScaler,
}
_JSON_SCALARS = (bool, int, float, str, type(None))
# model.json is read before anything tells how large the model is, so its cap is fixed:
# parsing a hostile manifest of this size peaks near 150 MB, and a real one is far smaller
# (a default fit writes ~60 bytes a training batch; save() drops the per-batch records of
# histories that would pass it).
MANIFEST_LIMIT = 32 * 2**20
# The fitted tensors beside the networks' state are reference rows (at most 8,192 of a
# side) and preprocessors' quantiles; bytes per column of the data, float64 at most.
_FITTED_BYTES_PER_COLUMN = 8 * 8192
_READ_CHUNK = 2**20


class ModelFileError(ValueError):
    """A model file is corrupted, not an sk-mlcpc model, or incompatible with this version."""


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


class _Malformed(Exception):
    """A value in ``model.json`` of the wrong shape; ``load`` turns it into a ModelFileError."""


_FLOAT_WORDS = frozenset({"nan", "inf", "-inf"})


def _from_json(value: Any) -> Any:
    """Decode what :func:`_to_json` wrote; a marker of the wrong shape is ``_Malformed``."""
    if isinstance(value, dict):
        if "__float__" in value:
            word = value["__float__"]
            if len(value) != 1 or word not in _FLOAT_WORDS:
                raise _Malformed(f"{value!r} is not a number")
            return float(word)
        for marker in ("__tuple__", "__object_array__"):
            if marker in value and (len(value) != 1 or not isinstance(value[marker], list)):
                raise _Malformed(f"{value!r} is not a list under {marker!r}")
        if "__tuple__" in value:
            return tuple(_from_json(v) for v in value["__tuple__"])
        if "__object_array__" in value:
            items = value["__object_array__"]
            array = np.empty(len(items), dtype=object)
            for index, item in enumerate(items):
                array[index] = _from_json(item)
            return array
        return {k: _from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_json(v) for v in value]
    return value


# ------------------------------------------------------------------ what load() accepts
#
# A model file is data, not a program: load() sets only the attributes a class declares
# (annotated fitted attributes, ``_saved_preprocessors``, the constructor's parameters), and
# each with a value of the declared kind. A crafted file cannot shadow a method, add an
# attribute or smuggle in a value that fails later in an unrelated place.


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return _is_int(value) or isinstance(value, float | np.floating)


def _is_names(value: Any) -> bool:
    return (
        isinstance(value, np.ndarray)
        and value.dtype == object
        and value.ndim == 1
        and all(isinstance(v, str) for v in value)
    )


def _is_classes_record(value: Any) -> bool:
    # ContrastiveDistillationClassifier.classes_ as {"dtype": ..., "values": [...]}.
    if not isinstance(value, dict) or set(value) != {"dtype", "values"}:
        return False
    if not isinstance(value["dtype"], str) or not isinstance(value["values"], list):
        return False
    if not all(isinstance(v, bool | int | float | str) for v in value["values"]):
        return False
    try:
        dtype = np.dtype(value["dtype"])
        if dtype.kind not in "biufUO":
            return False
        np.asarray(value["values"], dtype=dtype)
    except (TypeError, ValueError, OverflowError):
        return False
    return True


_Check = tuple[Callable[[Any], bool], str]
_COUNT: _Check = (lambda v: _is_int(v) and v >= 0, "a non-negative integer")
_NUMBER: _Check = (_is_number, "a number")
_FLAG: _Check = (lambda v: isinstance(v, bool), "true or false")

_COUNTS = (
    "batch_size_", "validation_batch_size_", "eval_batch_size_", "n_epochs_", "n_restores_",
    "n_features_in_",
    "n_features_y_", "n_components_", "n_timesteps_", "n_windows_", "n_anchor_times_",
    "window_", "stride_", "n_channels_", "n_segments_",
    "n_teacher_features_", "n_negatives_", "_n_train",
    "n_features_to_select_", "_net_columns", "_n_copies", "_mask_seed", "_validation_batch_size",
)  # fmt: skip
#: The kind of every fitted attribute any estimator saves, by name. A name a class
#: declares (annotates) without an entry here must be a plain JSON scalar.
FITTED_ATTRIBUTE_TYPES: dict[str, _Check] = {
    **dict.fromkeys(
        ("mi_", "mi_std_", "mi_cap_", "alpha_", "eval_alpha_", "score_ceiling_"), _NUMBER
    ),
    **dict.fromkeys(("baseline_valid_mi_", "valid_mi_"), _NUMBER),
    "baseline_": (
        lambda v: v in (None, "gaussian", "student_t"),
        "'gaussian', 'student_t' or null",
    ),
    "baseline_df_": (lambda v: v is None or (_is_number(v) and v > 0), "a positive number or null"),
    "baseline_structure_": (
        lambda v: v in (None, "dense", "sparse", "low_rank", "shared_covariance", "logistic"),
        "'dense', 'sparse', 'low_rank', 'shared_covariance', 'logistic' or null",
    ),
    "target_type_": (lambda v: v in ("continuous", "classes"), "'continuous' or 'classes'"),
    "_target_classes_record": (
        lambda v: v is None or _is_classes_record(v),
        "a record of class labels and their dtype, or null",
    ),
    "critic_choice_": (lambda v: v in ("trained", "constant"), "'trained' or 'constant'"),
    "alpha_initial_": _NUMBER,
    "saturation_gain_": (lambda v: v is None or _is_number(v), "a number or null"),
    "mi_ci_": (
        lambda v: isinstance(v, tuple) and len(v) == 2 and all(map(_is_number, v)),
        "a pair of numbers",
    ),
    "bound_validity_": (
        lambda v: v in ("proven", "claimed", "invalid"),
        "one of 'proven', 'claimed', 'invalid'",
    ),
    **dict.fromkeys(("blockwise_", "saturated_", "converged_", "_memory_released"), _FLAG),
    **dict.fromkeys(_COUNTS, _COUNT),
    "feature_names_in_": (_is_names, "a list of feature names (strings)"),
    "_classes_record": (_is_classes_record, "a record of class labels and their dtype"),
}
_PLAIN_SCALAR: _Check = (
    lambda v: isinstance(v, _JSON_SCALARS),
    "a number, string, boolean or null",
)

_ARRAY: _Check = (lambda v: isinstance(v, np.ndarray) and v.dtype.kind in "iuf", "an array")
_ARRAY_OR_NONE: _Check = (lambda v: v is None or _ARRAY[0](v), "an array or null")
#: The fitted attributes of each preprocessor a model file may hold.
_PREPROCESSOR_ATTRIBUTES: dict[str, dict[str, _Check]] = {
    "StandardScaler": {
        "mean_": _ARRAY_OR_NONE,
        "var_": _ARRAY_OR_NONE,
        "scale_": _ARRAY_OR_NONE,
        "n_samples_seen_": (lambda v: _is_number(v) or _ARRAY[0](v), "a count or an array"),
        "n_features_in_": _COUNT,
        "feature_names_in_": FITTED_ATTRIBUTE_TYPES["feature_names_in_"],
    },
    "NormalQuantileTransformer": {
        "n_quantiles_": _COUNT,
        "quantiles_": _ARRAY,
        "references_": _ARRAY,
        "n_features_in_": _COUNT,
        "feature_names_in_": FITTED_ATTRIBUTE_TYPES["feature_names_in_"],
    },
    "QuantileTransformer": {
        "n_quantiles_": _COUNT,
        "quantiles_": _ARRAY,
        "references_": _ARRAY,
        "n_features_in_": _COUNT,
        "feature_names_in_": FITTED_ATTRIBUTE_TYPES["feature_names_in_"],
    },
}


#: The preprocessor classes a fit keeps for each value of ``preprocessing`` (see
#: ``fitting.make_preprocessor``; QuantileTransformer in files written before
#: NormalQuantileTransformer). ``None``: the fit keeps none, and the entry is null.
_PREPROCESSING_CLASSES: dict[str | None, frozenset[str]] = {
    "quantile": frozenset({"NormalQuantileTransformer", "QuantileTransformer"}),
    "standard": frozenset({"StandardScaler"}),
    None: frozenset(),
}
#: The fitted width each saved preprocessor transforms, by its attribute name: a
#: preprocessor of another width would load and fail at the first transform.
_PREPROCESSOR_WIDTHS = {
    "preprocessor_": "n_features_in_",
    "preprocessor_x_": "n_features_in_",
    "preprocessor_y_": "n_features_y_",
    "_teacher_scaler": "n_teacher_features_",
}

#: Fitted attributes a model file may lack, whatever the class: set by some fits only
#: (``feature_names_in_``: data with string column names).
_SET_BY_SOME_FITS = frozenset({"feature_names_in_"})
#: Fitted attributes added to a class (and its subclasses) after the first files of
#: format 1 were written: a file from before has none, and loads without them, as the
#: version that wrote it did. Every other attribute a class declares is required; an
#: attribute added later belongs here, or in _DERIVED_ATTRIBUTES (the model files kept
#: in tests/engine/data fail to load otherwise).
_ADDED_SINCE_FORMAT_1: dict[str, frozenset[str]] = {
    "MutualInformationEstimator": frozenset(
        {
            "baseline_",
            "baseline_df_",
            "baseline_structure_",
            "baseline_valid_mi_",
            "critic_choice_",
            "score_ceiling_",
            "target_type_",
            "_target_classes_record",
            "valid_mi_",
        }
    ),
    "ContrastiveEncoder": frozenset(
        {"blockwise_", "eval_alpha_", "mi_ci_", "saturated_", "saturation_gain_"}
    ),
    "ContrastivePredictiveCoding": frozenset(
        {"eval_alpha_", "mi_ci_", "mi_std_", "saturated_", "saturation_gain_"}
    ),
}


def _restores_in_history(history: list) -> int:
    """The restores a saved history records (``divergence`` events, see DivergenceGuard)."""
    return sum(len(row["divergence"]) for row in history if isinstance(row.get("divergence"), list))


#: Fitted attributes added since format 1 that the rest of an older file determines:
#: filled in from the checked manifest when absent.
_DERIVED_ATTRIBUTES: dict[str, Callable[[dict], Any]] = {
    "n_restores_": lambda manifest: _restores_in_history(manifest["history"]),
    # ContrastivePredictiveCoding before window="auto" and 3-D input: the parameters.
    "window_": lambda manifest: manifest["params"]["window"],
    "stride_": lambda manifest: manifest["params"]["stride"],
    "n_channels_": lambda manifest: manifest["params"]["n_channels"],
    # ContrastivePredictiveCoding before n_segments: no positional features.
    "n_segments_": lambda manifest: _segments_before_parameter(manifest),
}


def _segments_before_parameter(manifest: dict) -> int:
    """``n_segments_`` of a file without it: 0 when written before ``n_segments`` existed
    (position-free pooling); a file with the parameter must hold the fitted value."""
    if "n_segments" in manifest["params"]:
        raise _Malformed(
            "fitted has no 'n_segments_', which every ContrastivePredictiveCoding model "
            "file with the parameter n_segments holds"
        )
    return 0


def _decode(value: Any, what: str) -> Any:
    """:func:`_from_json`, with ``what`` (the key) named when the value is malformed."""
    try:
        return _from_json(value)
    except _Malformed as error:
        raise _Malformed(f"{what}: {error}") from None


def _check(value: Any, check: _Check, what: str) -> Any:
    test, kind = check
    if not test(value):
        raise _Malformed(f"{what} is {_short(value)}, not {kind}")
    return value


def _short(value: Any, *, quote: bool = True) -> str:
    text = repr(value) if quote or not isinstance(value, str) else value
    return text if len(text) <= 80 else text[:77] + "..."


def _mapping(value: Any, what: str) -> dict:
    if not isinstance(value, dict):
        raise _Malformed(f"{what} is {_short(value)}, not a JSON object")
    return value


def _tensor_mapping(value: Any, what: str) -> dict[str, torch.Tensor]:
    _mapping(value, what)
    for key, tensor in value.items():
        if not isinstance(key, str) or not isinstance(tensor, torch.Tensor):
            raise _Malformed(f"{what}[{key!r}] is not a tensor")
    return value


def _manifest_version(manifest: dict) -> tuple[Any, int | None]:
    """The file's format version and package major version (None when malformed)."""
    version = manifest.get("package_version")
    match = re.fullmatch(r"(\d+)\.\d+.*", version) if isinstance(version, str) else None
    return manifest.get("format_version"), None if match is None else int(match.group(1))


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


def _restore_preprocessor(state: Any, prefix: str, tensors: dict):
    if state is None:
        return None
    state = _mapping(state, f"preprocessors[{prefix!r}]")
    if set(state) != {"class", "params", "scalars", "arrays"}:
        raise _Malformed(f"preprocessors[{prefix!r}] has keys {sorted(state)}")
    name = state["class"]
    if name not in _PREPROCESSORS:
        raise _Malformed(
            f"preprocessors[{prefix!r}] is a {_short(name)}; a model file may hold "
            f"{', '.join(sorted(_PREPROCESSORS))}"
        )
    allowed = _PREPROCESSOR_ATTRIBUTES[name]
    try:
        params = _decode(_mapping(state["params"], prefix), f"preprocessors[{prefix!r}]")
        preprocessor = _PREPROCESSORS[name](**params)
        preprocessor._validate_params()
    except (TypeError, ValueError) as error:
        raise _Malformed(f"preprocessors[{prefix!r}] has invalid parameters ({error})") from error
    scalars = _mapping(state["scalars"], f"preprocessors[{prefix!r}]['scalars']")
    arrays = state["arrays"]
    if not isinstance(arrays, list):
        raise _Malformed(f"preprocessors[{prefix!r}]['arrays'] is not a list")
    values = {
        attribute: _decode(value, f"preprocessors[{prefix!r}].{attribute}")
        for attribute, value in scalars.items()
    }
    for attribute in arrays:
        key = f"{prefix}.{attribute}"
        if not isinstance(attribute, str) or not isinstance(tensors.get(key), torch.Tensor):
            raise _Malformed(f"preprocessors[{prefix!r}] lists {attribute!r} without its tensor")
        values[attribute] = tensors[key].numpy()
    for attribute, value in values.items():
        if attribute not in allowed:
            raise _Malformed(
                f"preprocessors[{prefix!r}] sets {attribute!r}, which a {name} model file "
                f"does not hold (it may hold {', '.join(allowed)})"
            )
        _check(value, allowed[attribute], f"preprocessors[{prefix!r}].{attribute}")
        setattr(preprocessor, attribute, value)
    # A preprocessor short of a fitted array would load and fail at the first transform.
    for attribute in allowed:
        if attribute not in values and attribute not in _SET_BY_SOME_FITS:
            raise _Malformed(
                f"preprocessors[{prefix!r}] has no {attribute!r}, which a fitted {name} holds"
            )
    _check_preprocessor_shapes(preprocessor, prefix)
    return preprocessor


def _check_preprocessor_shapes(preprocessor, prefix: str) -> None:
    """Refuse fitted arrays whose shapes disagree with the preprocessor's width."""
    width = preprocessor.n_features_in_
    expected = {name: (width,) for name in ("mean_", "var_", "scale_")}
    if hasattr(preprocessor, "quantiles_"):
        levels = preprocessor.n_quantiles_
        expected.update(quantiles_=(levels, width), references_=(levels,))
    for name, shape in expected.items():
        value = getattr(preprocessor, name, None)
        if value is not None and value.shape != shape:
            raise _Malformed(
                f"preprocessors[{prefix!r}].{name} has shape {value.shape}, not {shape} "
                f"(n_features_in_={width})"
            )


_FITTED_WIDTHS = ("n_features_in_", "n_features_y_", "n_teacher_features_")


def _open_regular_file(path: Path):
    """``path`` opened for reading if it is a regular file (after following links).

    The check is made on the opened descriptor, so the file cannot be swapped for a
    device between the check and the read; a FIFO opens without waiting for a writer.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    descriptor = os.open(path, flags)
    try:
        mode = os.fstat(descriptor).st_mode
        if not stat.S_ISREG(mode):
            kind = (
                "a directory" if stat.S_ISDIR(mode)
                else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
                else "a pipe" if stat.S_ISFIFO(mode)
                else "a socket" if stat.S_ISSOCK(mode)
                else "not a regular file"
            )  # fmt: skip
            raise ModelFileError(
                f"{path} is {kind}, not a model file; load() reads only regular files "
                "written by save()."
            )
        if hasattr(os, "set_blocking"):
            os.set_blocking(descriptor, True)
        return os.fdopen(descriptor, "rb")
    except BaseException:
        os.close(descriptor)
        raise


def _read_member(
    archive: zipfile.ZipFile, name: str, limit: int, path: Path, *, least: int = 0
) -> bytes:
    """The inflated bytes of ``name``, refused if its declared or actual size passes
    ``limit`` (checked before inflating, then while streaming in chunks) or its declared
    size is below ``least``."""
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise ModelFileError(f"{path} is not an sk-mlcpc model file: it has no {name}.") from None
    too_large = (
        f"{path}: {name} {{}} more than the {limit:,} bytes a model file of this kind may "
        "hold; refusing to inflate it (the file is corrupted or crafted)."
    )
    if info.file_size > limit:
        raise ModelFileError(too_large.format(f"declares {info.file_size:,} bytes,"))
    if info.file_size < least:
        raise ModelFileError(
            f"{path}: {name} holds {info.file_size:,} bytes, fewer than the {least:,} "
            "of the network model.json describes (the file is corrupted or crafted)."
        )
    chunks, total = [], 0
    with archive.open(info) as stream:
        while chunk := stream.read(_READ_CHUNK):
            total += len(chunk)
            if total > limit:
                raise ModelFileError(too_large.format("inflates to"))
            chunks.append(chunk)
    return b"".join(chunks)


def _check_header(manifest: Any, cls: type, path: Path) -> None:
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ModelFileError(f"{path} is not an sk-mlcpc model file.")
    format_version, major = _manifest_version(manifest)
    if format_version != FORMAT_VERSION or major != int(__version__.split(".")[0]):
        written = _short(manifest.get("package_version"), quote=False)
        raise ModelFileError(
            f"{path} was written by sk-mlcpc {written} (file format "
            f"{_short(format_version, quote=False)}); this is sk-mlcpc {__version__} "
            f"(format {FORMAT_VERSION}), which reads files of the same major version."
        )
    held = manifest.get("class")
    if not isinstance(held, str) or not held.isidentifier():
        # No class to name: advising "load it with None.load" would be no help.
        what = "has no 'class' entry" if held is None else f"has the class {_short(held)}"
        raise ModelFileError(
            f"{path} does not say which estimator it holds: its model.json {what}. It is "
            f"corrupted or was edited; save the {cls.__name__} again."
        )
    if held != cls.__name__:
        raise ModelFileError(
            f"{path} holds a {_short(held, quote=False)}, not a {cls.__name__}; load it with "
            f"{_short(held, quote=False)}.load."
        )


def _unreadable(path: Path, error: BaseException) -> ModelFileError:
    return ModelFileError(
        f"{path} is not a readable sk-mlcpc model file ({type(error).__name__}: "
        f"{error}). It may be truncated or corrupted; save the model again."
    )


def _malformed(path: Path, error: BaseException) -> ModelFileError:
    return ModelFileError(
        f"{path} could not be restored: {error}. The file is corrupted or was "
        "edited; save the model again."
    )


def _corrupted(path: Path, error: BaseException) -> ModelFileError:
    return ModelFileError(
        f"{path} could not be restored ({type(error).__name__}: {error}); it is "
        "corrupted or was edited."
    )


class _AnnotatedFittedAttributes:
    """The fitted attributes a class saves: every name annotated (not as a ``ClassVar``)
    in its class body and its bases' (the package's and subclasses'), bases first.

    Declaring a fitted attribute (``mi_: float`` in the class body) is what makes
    :meth:`PersistenceMixin.save` write it and :meth:`PersistenceMixin.load` accept it, so
    the list cannot fall behind the class.
    """

    def __get__(self, instance, owner) -> tuple[str, ...]:
        names: list[str] = []
        for klass in reversed(owner.__mro__):
            # The estimators, their mixins here, and a user's subclass; not scikit-learn's.
            if not (
                issubclass(klass, PersistenceMixin) or klass.__module__.startswith("sk_mlcpc.")
            ):
                continue
            for name, annotation in vars(klass).get("__annotations__", {}).items():
                if "ClassVar" not in str(annotation) and name not in names:
                    names.append(name)
        return tuple(names)


class PersistenceMixin:
    """``save(path)`` / ``load(path)`` for estimators that hold a skorch net as ``net_``.

    Subclasses declare their JSON-able fitted attributes as annotations in the class
    body (``_saved_attributes`` is derived from them), list their preprocessors in
    ``_saved_preprocessors``, and implement ``_rebuild_net()`` (an
    initialised net of the fitted architecture, from the fitted attributes) and, where
    needed, ``_saved_tensors()`` / ``_restore_tensors(tensors)`` and ``_after_load()``.
    A parameter added after files were written lists, in ``_parameters_added``, the
    value that reproduces the older behaviour: a file without it is loaded with that
    value, not with today's default.
    """

    _saved_attributes = _AnnotatedFittedAttributes()
    _saved_preprocessors: ClassVar[tuple[str, ...]] = ()
    _parameters_added: ClassVar[dict[str, Any]] = {}

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
        text = json.dumps(manifest)
        if len(text) > MANIFEST_LIMIT:
            # Per-batch records dominate a long history; the epochs' rows are what
            # history_ is read for. Never write a file that load() would refuse.
            manifest["history"] = [
                {key: value for key, value in row.items() if key != "batches"}
                for row in manifest["history"]
            ]
            text = json.dumps(manifest)
            if len(text) > MANIFEST_LIMIT:
                raise ValueError(
                    f"The model's description takes {len(text):,} bytes, more than the "
                    f"{MANIFEST_LIMIT:,} a model file may hold; pickle this model instead."
                )
            warnings.warn(
                "history_ has too many batches to save in full: the file keeps each "
                "epoch's row without its per-batch records.",
                UserWarning,
                stacklevel=2,
            )
        buffer = io.BytesIO()
        torch.save(tensors, buffer)
        with zipfile.ZipFile(Path(path), "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("model.json", text)
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
            another class, or was written by an incompatible version; and when it sets
            anything the class does not declare (a parameter, fitted attribute or
            preprocessor it does not save) or a value of the wrong kind, naming the key.
        """
        path = Path(path)
        with _open_regular_file(path) as handle:
            try:
                archive = zipfile.ZipFile(handle)
                manifest = json.loads(_read_member(archive, "model.json", MANIFEST_LIMIT, path))
            except ModelFileError:
                raise
            except Exception as error:
                raise _unreadable(path, error) from error
            _check_header(manifest, cls, path)
            device = resolve_device(device)
            try:
                estimator = cls._restore_estimator(manifest)
                least, limit = estimator._weights_size_range(manifest)
            except _Malformed as error:
                raise _malformed(path, error) from None
            except (KeyError, TypeError, ValueError, RuntimeError) as error:
                raise _corrupted(path, error) from error
            try:
                weights = _read_member(archive, "weights.pt", limit, path, least=least)
                tensors = torch.load(io.BytesIO(weights), map_location="cpu", weights_only=True)
            except ModelFileError:
                raise
            except Exception as error:
                raise _unreadable(path, error) from error
            del weights
        try:
            net = estimator._restore_net(manifest, tensors, device)
        except _Malformed as error:
            raise _malformed(path, error) from None
        except (KeyError, TypeError, ValueError, RuntimeError) as error:
            raise _corrupted(path, error) from error
        net.train_split = None
        estimator.net_ = net
        estimator.history_ = net.history
        estimator._after_load()
        return estimator

    _MANIFEST_KEYS: ClassVar[frozenset[str]] = frozenset(
        {
            "format", "format_version", "package_version", "torch_version", "class",
            "params", "fitted", "net", "preprocessors", "history",
        }
    )  # fmt: skip

    @classmethod
    def _restore_estimator(cls, manifest: dict):
        """The unfitted-net estimator from a manifest whose header ``load`` has checked:
        its parameters and fitted attributes, the rest of the manifest checked.

        Every key must be one the class declares and every value of the declared kind;
        otherwise ``_Malformed`` names the key.
        """
        unknown = sorted(set(manifest) - cls._MANIFEST_KEYS)
        if unknown:
            raise _Malformed(f"model.json has the unknown entry {unknown[0]!r}")

        # Constructor parameters: only the class's own, each passing its constraints.
        params = _mapping(manifest.get("params"), "params")
        allowed = set(cls._get_param_names()) - {"accelerator"}
        for name in params:
            if name not in allowed:
                raise _Malformed(f"params has {name!r}, which is not a parameter of {cls.__name__}")
        missing = {k: v for k, v in cls._parameters_added.items() if k not in params}
        estimator = cls(
            **missing,
            **{name: _decode(value, f"params[{name!r}]") for name, value in params.items()},
        )
        try:
            estimator._validate_params()
        except ValueError as error:  # sklearn's InvalidParameterError names the parameter
            raise _Malformed(f"params: {str(error).rstrip('.')}") from None

        # Fitted attributes: only those the class saves, each of its kind.
        fitted = _mapping(manifest.get("fitted"), "fitted")
        for name, value in fitted.items():
            if name not in cls._saved_attributes:
                raise _Malformed(
                    f"fitted has {name!r}, which is not a fitted attribute {cls.__name__} saves"
                )
            check = FITTED_ATTRIBUTE_TYPES.get(name, _PLAIN_SCALAR)
            what = f"fitted[{name!r}]"
            setattr(estimator, name, _check(_decode(value, what), check, what))
        preprocessors = _mapping(manifest.get("preprocessors"), "preprocessors")
        for name in preprocessors:
            if name not in cls._saved_preprocessors:
                raise _Malformed(
                    f"preprocessors has {name!r}, which is not a preprocessor {cls.__name__} saves"
                )
        for name in cls._saved_preprocessors:
            estimator._check_preprocessor_entry(name, preprocessors)

        seeds = _mapping(manifest.get("net"), "net")
        if not set(seeds) <= {"shuffle_seed", "eval_seed", "lr"}:
            raise _Malformed(f"net has the unknown entries {sorted(set(seeds) - {'lr'})}")
        for name in ("shuffle_seed", "eval_seed"):
            _check(seeds.get(name), _COUNT, f"net[{name!r}]")
        history = manifest.get("history")
        if not isinstance(history, list) or not all(isinstance(row, dict) for row in history):
            raise _Malformed(f"history is {_short(history)}, not a list of epochs")

        # A required attribute missing would load, and fail later with an AttributeError.
        optional = cls._optional_fitted_attributes()
        for name in cls._saved_attributes:
            if name in fitted:
                continue
            if name in _DERIVED_ATTRIBUTES:
                setattr(estimator, name, _DERIVED_ATTRIBUTES[name](manifest))
            elif name not in optional:
                raise _Malformed(
                    f"fitted has no {name!r}, which every {cls.__name__} model file holds"
                )
        return estimator

    @classmethod
    def _optional_fitted_attributes(cls) -> frozenset[str]:
        """The declared fitted attributes a valid file of this class may lack."""
        optional = set(_SET_BY_SOME_FITS)
        for klass in cls.__mro__:
            optional |= _ADDED_SINCE_FORMAT_1.get(klass.__name__, frozenset())
        return frozenset(optional)

    def _preprocessor_classes(self, name: str) -> tuple[frozenset[str], str]:
        """The classes the preprocessor ``name`` may have for these parameters (none:
        the entry must be null), and the setting that decides it, for messages."""
        preprocessing = getattr(self, "preprocessing", None)
        return _PREPROCESSING_CLASSES.get(preprocessing, frozenset()), (
            f"preprocessing={preprocessing!r}"
        )

    def _check_preprocessor_entry(self, name: str, preprocessors: dict) -> None:
        """Refuse a preprocessor entry that is missing or disagrees with the parameters.

        A null preprocessor where the parameters fit one would score raw inputs with a
        network trained on preprocessed ones: the scores would change without a word.
        """
        if name not in preprocessors:
            raise _Malformed(
                f"preprocessors has no {name!r}, which every {type(self).__name__} model "
                "file holds (null when the fit kept none)"
            )
        state = preprocessors[name]
        held = None if state is None else _mapping(state, f"preprocessors[{name!r}]").get("class")
        if state is not None and not isinstance(held, str):
            return  # a malformed entry: _restore_preprocessor names what is wrong with it
        accepted, setting = self._preprocessor_classes(name)
        if held is None and accepted:
            raise _Malformed(
                f"preprocessors[{name!r}] is null, but {setting} fits a "
                f"{' or '.join(sorted(accepted))}: without it the network would see inputs "
                "it was not trained on"
            )
        if held is not None and held not in accepted:
            wanted = f"a {' or '.join(sorted(accepted))}" if accepted else "none (null)"
            raise _Malformed(
                f"preprocessors[{name!r}] is a {_short(held, quote=False)}, but {setting} "
                f"fits {wanted}"
            )

    def _weights_size_range(self, manifest: dict) -> tuple[int, int]:
        """The fewest and most bytes ``weights.pt`` may hold for the model ``manifest``
        describes.

        The networks are built on the meta device (shapes without memory), so a manifest
        that describes a huge network costs nothing to size, and is refused unless the
        file holds that network's weights (torch stores them uncompressed). The most is
        the networks' state four times (the weights, an optimiser's two moments, slack),
        the fitted tensors' bound per data column and a megabyte of container overhead.
        """
        self._stand_in_tensors()
        self.device_ = torch.device("meta")
        try:
            with torch.random.fork_rng(devices=[]), torch.device("meta"):
                net = self._net_from_manifest(manifest)
                state = [*net.module_.state_dict().values(), *net.criterion_.state_dict().values()]
        finally:
            del self.device_
        network_bytes = sum(t.numel() * t.element_size() for t in state if torch.is_tensor(t))
        columns = sum(int(getattr(self, name, 0)) for name in _FITTED_WIDTHS)
        most = 4 * network_bytes + _FITTED_BYTES_PER_COLUMN * (columns + 1) + 2**20
        return network_bytes, most

    def _stand_in_tensors(self) -> None:
        """Set what building the net needs of the saved tensors, in shape only (for
        sizing); ``_restore_tensors`` replaces it with the file's."""

    def _net_from_manifest(self, manifest: dict):
        seeds = manifest["net"]
        net = self._rebuild_net(shuffle_seed=seeds["shuffle_seed"], eval_seed=seeds["eval_seed"])
        net.initialize()
        return net

    def _restore_net(self, manifest: dict, tensors: Any, device: torch.device):
        """The trained net from the checked manifest and the weights it describes."""
        tensors = _mapping(tensors, "weights.pt")
        if set(tensors) != {"module", "criterion", "optimizer", "fitted"}:
            raise _Malformed(f"weights.pt holds {sorted(map(str, tensors))}")
        _tensor_mapping(tensors["module"], "weights.pt['module']")
        _tensor_mapping(tensors["criterion"], "weights.pt['criterion']")
        _mapping(tensors["optimizer"], "weights.pt['optimizer']")
        flat = _tensor_mapping(tensors["fitted"], "weights.pt['fitted']")
        for name, state in manifest["preprocessors"].items():
            preprocessor = _restore_preprocessor(state, name, flat)
            width = _PREPROCESSOR_WIDTHS.get(name)
            if preprocessor is not None and width is not None and hasattr(self, width):
                if preprocessor.n_features_in_ != getattr(self, width):
                    raise _Malformed(
                        f"preprocessors[{name!r}] transforms {preprocessor.n_features_in_} "
                        f"columns, but fitted[{width!r}] is {getattr(self, width)}"
                    )
            setattr(self, name, preprocessor)

        self.device_ = device
        self._restore_tensors(flat)
        with torch.random.fork_rng(devices=[]):
            net = self._net_from_manifest(manifest)
        net.module_.load_state_dict(tensors["module"])
        net.criterion_.load_state_dict(tensors["criterion"])
        net.optimizer_.load_state_dict(tensors["optimizer"])
        net.history = History(_decode(manifest["history"], "history"))
        return net


def _cpu_state(state: Any) -> Any:
    if isinstance(state, torch.Tensor):
        return state.detach().cpu()
    if isinstance(state, dict):
        return {k: _cpu_state(v) for k, v in state.items()}
    if isinstance(state, list | tuple):
        return type(state)(_cpu_state(v) for v in state)
    return state
