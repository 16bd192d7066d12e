"""Input validation: errors that point at the cell, and precision kept until the cast.

**Where a value is wrong.** scikit-learn's ``validate_data`` and ``check_array`` say
"Input X contains NaN." or "could not convert string to float: 'abc'", naming neither the
row nor, for text, the argument and column. :func:`validate_input` and
:func:`check_input` are drop-in replacements that, when such an error is raised, find the
offending cells and say which argument, row and column (and a DataFrame's labels); they
cost nothing on valid input, since the search runs only after the error.

**Precision.** The networks run in float32, but a float32 cast *before* preprocessing
erases columns with a large offset (timestamps, coordinates: ``X + 1e8``) or a tiny scale
(``X * 1e-40``): float32 keeps about 7 significant digits and no value below about
1e-45. So the estimators validate input as float64 or float32 (whichever it is),
preprocess it in that precision, and only then cast.
"""

from __future__ import annotations

import math
import re
import warnings
from typing import Any

import numpy as np
from sklearn.utils.validation import check_array, validate_data

__all__ = [
    "INPUT_DTYPES",
    "as_float32",
    "check_input",
    "locate_invalid_values",
    "validate_input",
]

#: ``dtype`` for ``validate_data``/``check_array``: float64 and float32 kept as they are,
#: anything else converted to float64.
INPUT_DTYPES = [np.float64, np.float32]

# float32 resolution merges a few near-equal values of any large sample; losing a tenth
# of a column's distinct values means its scale or offset defeats float32.
_MERGED_SHARE = 0.9


def as_float32(values, name: str, *, stacklevel: int = 4) -> np.ndarray:
    """``values`` as float32 for the network, warning when the cast merges many values.

    Parameters
    ----------
    values : array-like of shape (n_samples, n_features)
        Preprocessed rows, in any float precision.
    name : str
        What to call them in the warning ("X", "Y").
    stacklevel : int, default=4
        Passed to :func:`warnings.warn`, so that the warning points at the user's call.

    Returns
    -------
    ndarray of float32

    Examples
    --------
    >>> import numpy as np
    >>> from sk_mlcpc._engine.inputs import as_float32
    >>> as_float32(np.array([[1.0], [2.0]]), "X").dtype
    dtype('float32')
    """
    values = np.asarray(values)
    cast = values.astype(np.float32)
    if values.dtype == np.float64 and values.ndim == 2 and len(values) > 1:
        merged = [
            column
            for column in range(values.shape[1])
            if len(np.unique(cast[:, column])) < _MERGED_SHARE * len(np.unique(values[:, column]))
        ]
        if merged:
            warnings.warn(
                f"Casting {name} to float32 for the network merges distinct values in "
                f"column(s) {merged[:10]}: information is lost. Keep preprocessing on (it "
                "runs in float64 before the cast), or centre and scale those columns "
                "yourself.",
                UserWarning,
                stacklevel=stacklevel,
            )
    return cast


# ------------------------------------------------------------------ where a value is wrong

_MISSING, _INFINITE, _TEXT = 1, 2, 3
_KIND_WORDS = {_MISSING: "NaN", _INFINITE: "infinite", _TEXT: "text"}
_SHOWN = 5  # rows or columns listed at most


def _kind_of_error(message: str) -> tuple[int, float] | None:
    """The kind of cell a scikit-learn or numpy conversion error is about, and the
    largest magnitude the target dtype holds (float32 overflows below infinity)."""
    if "contains NaN" in message:
        return _MISSING, math.inf
    if "contains infinity" in message:
        limit = float(np.finfo(np.float32).max) if "float32" in message else math.inf
        return _INFINITE, limit
    if "could not convert" in message or "Unable to convert" in message:
        return _TEXT, math.inf
    return None


def _cell_kind(cell: Any, limit: float) -> int:
    """0 for a number that converts, else _MISSING, _INFINITE or _TEXT."""
    if cell is None:
        return _MISSING
    try:
        number = float(cell)
    except (TypeError, ValueError):
        # pandas' NA and NaT refuse float(); scikit-learn reads them as NaN.
        return _MISSING if type(cell).__name__ in ("NAType", "NaTType") else _TEXT
    if math.isnan(number):
        return _MISSING
    if math.isinf(number) or abs(number) > limit:
        return _INFINITE
    return 0


def _kinds(values: np.ndarray, limit: float) -> np.ndarray:
    """The kind of every cell (an int array of the same shape)."""
    if values.dtype.kind in "biu":
        return np.zeros(values.shape, dtype=np.int8)
    if values.dtype.kind in "fc":
        with np.errstate(over="ignore", invalid="ignore"):
            magnitude = np.abs(values)
            kinds = np.where(np.isnan(magnitude), _MISSING, 0)
            too_large = np.isinf(magnitude) | (magnitude > limit)
            return np.where(too_large, _INFINITE, kinds)
    cells = values.astype(object, copy=False)
    return np.frompyfunc(lambda cell: _cell_kind(cell, limit), 1, 1)(cells).astype(np.int8)


def _table(values: Any) -> tuple[np.ndarray, Any, Any] | None:
    """``values`` as an array, with a DataFrame's or Series' row and column labels."""
    pandas = hasattr(values, "iloc")  # a DataFrame or a Series
    columns = getattr(values, "columns", None) if pandas else None
    index = values.index if pandas else None
    if columns is not None:  # a DataFrame: column by column
        kinds_of = [values.iloc[:, j].to_numpy(dtype=object) for j in range(values.shape[1])]
        if not kinds_of:
            return None
        return np.stack(kinds_of, axis=1), index, columns
    try:
        array = np.asarray(values.to_numpy() if hasattr(values, "to_numpy") else values)
    except (ValueError, TypeError):  # ragged rows: nothing to point at
        return None
    return array, index, None


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value, so that its repr reads 'inf', not np.float64."""
    return value.item() if isinstance(value, np.generic) else value


def _label(labels: Any, position: int, what: str) -> str:
    """`` (index 'r7')`` when a pandas label differs from the position, else ''."""
    if labels is None:
        return ""
    label = _plain(labels[position])
    return "" if label == position else f" ({what}{label!r})"


def _listed(numbers: np.ndarray) -> str:
    numbers = np.unique(numbers)
    shown = ", ".join(str(int(n)) for n in numbers[:_SHOWN])
    return shown + (f" and {len(numbers) - _SHOWN} more" if len(numbers) > _SHOWN else "")


def locate_invalid_values(
    values: Any, name: str, error: Exception, *, estimator: Any = None
) -> str | None:
    """The message for a conversion ``error`` of ``values``, naming the argument, the
    row and the column of the first offending cell, or None when none is found.

    Parameters
    ----------
    values : array-like, DataFrame or Series
        The input as the caller passed it (before validation).
    name : str
        The argument's name ("X", "Y", "y", "X_transfer").
    error : Exception
        The error scikit-learn or numpy raised on ``values``: "contains NaN", "contains
        infinity ...", "could not convert ..."; any other error gives None.
    estimator : estimator or None, default=None
        Named in the advice.

    Returns
    -------
    message : str or None
        Rows and columns count from 0, as ``values[row, column]`` indexes them; a
        DataFrame's index and column labels are added where they differ.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_mlcpc._engine.inputs import locate_invalid_values
    >>> X = np.ones((200, 3))
    >>> X[137, 2] = np.nan
    >>> print(locate_invalid_values(X, "X", ValueError("Input X contains NaN.")))
    Input X contains NaN at row 137, column 2 (1 cell). Every cell must be a number: \
drop or fill in those rows first, e.g. with sklearn.impute.SimpleImputer in a Pipeline. \
Rows and columns count from 0.
    """
    found = _kind_of_error(str(error))
    if found is None:
        return None
    kind, limit = found
    table = _table(values)
    if table is None:
        return None
    array, index, columns = table
    if array.ndim not in (1, 2):
        return None
    where = np.argwhere(_kinds(array, limit) == kind)
    if len(where) == 0:
        return None
    row = int(where[0, 0])
    at = f"row {row}{_label(index, row, 'index ')}"
    if array.ndim == 2:
        column = int(where[0, 1])
        at += f", column {column}{_label(columns, column, '')}"
    cell = _plain(array[tuple(where[0])])
    count = f"{len(where)} cell{'s' * (len(where) != 1)}"
    if len(where) > 1:
        count += f" in all, in rows {_listed(where[:, 0])}"
        if array.ndim == 2:
            count += f", columns {_listed(where[:, 1])}"
    who = f"{type(estimator).__name__} needs" if estimator is not None else "Every cell must be"
    who = f"{who} a number" if estimator is None else f"{who} a number in every cell"
    if kind == _TEXT:
        return (
            f"Input {name} holds text at {at}: {cell!r} is not a number ({count}; {error}). "
            f"{who}: encode text columns as numbers first (e.g. "
            "sklearn.preprocessing.OrdinalEncoder or OneHotEncoder in a Pipeline) or drop "
            "them. Rows and columns count from 0."
        )
    if kind == _INFINITE:
        dtype = "float32" if math.isfinite(limit) else "float64"
        return (
            f"Input {name} contains infinity or a value too large for {dtype} at {at}: "
            f"{cell!r} ({count}). {who}: drop those rows or clip the values first. Rows "
            "and columns count from 0."
        )
    return (
        f"Input {name} contains NaN at {at} ({count}). {who}: drop or fill in those rows "
        "first, e.g. with sklearn.impute.SimpleImputer in a Pipeline. Rows and columns "
        "count from 0."
    )


def _input_name(message: str, default: str) -> str:
    match = re.match(r"Input (\w+) contains", message)
    return match[1] if match else default


def validate_input(estimator: Any, X: Any = "no_validation", y: Any = "no_validation", **kwargs):
    """scikit-learn's ``validate_data``, whose errors on a bad cell name the argument,
    row and column.

    Takes and returns what :func:`sklearn.utils.validation.validate_data` does. When it
    raises a ``ValueError`` about a missing, infinite or text cell of ``X`` or ``y``, the
    error raised instead is :func:`locate_invalid_values`'s message; any other error is
    raised as it is.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.base import BaseEstimator
    >>> from sk_mlcpc._engine.inputs import validate_input
    >>> X = np.array([[1.0, 2.0], [3.0, "a"]], dtype=object)
    >>> validate_input(BaseEstimator(), X, dtype=np.float64)
    Traceback (most recent call last):
    ...
    ValueError: Input X holds text at row 1, column 1: 'a' is not a number (1 cell; ...
    """
    try:
        return validate_data(estimator, X, y, **kwargs)
    except ValueError as error:
        message = str(error)
        named = _input_name(message, "")
        candidates = [("X", X), ("y", y)] if named != "y" else [("y", y)]
        for name, values in candidates:
            if isinstance(values, str) and values == "no_validation":
                continue
            located = locate_invalid_values(values, name, error, estimator=estimator)
            if located is not None:
                raise ValueError(located) from None
        raise


def check_input(array: Any, *, input_name: str, **kwargs):
    """scikit-learn's ``check_array``, whose errors on a bad cell name ``input_name``,
    the row and the column.

    Takes and returns what :func:`sklearn.utils.validation.check_array` does
    (``input_name`` is required here: it is what the error names).

    Examples
    --------
    >>> import numpy as np
    >>> from sk_mlcpc._engine.inputs import check_input
    >>> check_input([1.0, 2.0, float("inf")], input_name="Y", ensure_2d=False)
    Traceback (most recent call last):
    ...
    ValueError: Input Y contains infinity or a value too large for float64 at row 2: inf ...
    """
    try:
        return check_array(array, input_name=input_name, **kwargs)
    except ValueError as error:
        located = locate_invalid_values(array, input_name, error, estimator=kwargs.get("estimator"))
        if located is None:
            raise
        raise ValueError(located) from None
