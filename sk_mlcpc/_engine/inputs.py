"""Input precision: validate in the caller's float precision, cast to float32 last.

The networks run in float32, but a float32 cast *before* preprocessing erases columns with
a large offset (timestamps, coordinates: ``X + 1e8``) or a tiny scale (``X * 1e-40``):
float32 keeps about 7 significant digits and no value below about 1e-45. So the
estimators validate input as float64 or float32 (whichever it is), preprocess it in that
precision, and only then cast.
"""

from __future__ import annotations

import warnings

import numpy as np

__all__ = ["INPUT_DTYPES", "as_float32"]

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
