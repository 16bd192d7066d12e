"""Samplers with known ground-truth mutual information.

Every sampler here returns data together with the exact mutual information (in nats)
of the distribution it draws from, so that estimators can be tested, documented and
benchmarked against the truth.

The correlated Gaussian task is the one of Poole et al. (2019) and Song & Ermon
(2020): ``X ~ N(0, I_d)`` and ``Y = rho X + sqrt(1 - rho^2) E`` with independent
standard normal noise ``E``, so that each of the ``d`` coordinate pairs is a
bivariate normal with correlation ``rho`` and

.. math:: I(X; Y) = -\\frac{d}{2} \\log(1 - \\rho^2).

The ``"cubic"`` variant returns ``Y ** 3`` instead of ``Y``. The cube is a bijection of
each coordinate, so the mutual information is unchanged while the marginal of ``Y``
becomes heavy tailed.

Harder tasks with the same kind of ground truth: :func:`make_sparse_gaussians` (a few
informative coordinate pairs among independent noise), :func:`make_student_t` (a
multivariate Student-t pair, whose MI is the Gaussian one plus a closed-form term for the
shared scale, :func:`student_t_mi`) and :func:`invertible_transform` (maps of one side
that leave the MI unchanged). :data:`MI_SUITE` names 21 such tasks, from 0.3 to 10 nats
and 1 to 50 dimensions a side, drawn by :func:`make_mi_task` and :func:`make_mi_suite`;
``benchmarks/suite.py`` runs an estimator over them.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np
from scipy import special
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions, validate_params

__all__ = [
    "INVERTIBLE_TRANSFORMS",
    "MI_SUITE",
    "MITask",
    "MITaskSpec",
    "binary_entropy",
    "gaussian_classes_mi",
    "gaussian_log_density_ratio",
    "gaussian_mi",
    "invertible_transform",
    "make_common_cause",
    "make_conditional_gaussians",
    "make_correlated_gaussians",
    "make_discrete_channel",
    "make_frequency_sequences",
    "make_gaussian_classes",
    "make_linear_gaussian",
    "make_mi_suite",
    "make_mi_task",
    "make_quantized_gaussians",
    "make_rules_classification",
    "make_sparse_gaussians",
    "make_student_t",
    "make_switching_ar",
    "make_xor_given_z",
    "mi_staircase",
    "mi_to_rho",
    "quantized_gaussian_mi",
    "rescale_units",
    "rho_to_mi",
    "student_t_mi",
    "symmetric_channel_mi",
]


@validate_params(
    {
        "mi": [Interval(Real, 0, None, closed="left"), "array-like"],
        "n_features": [Interval(Integral, 1, None, closed="left")],
    },
    prefer_skip_nested_validation=True,
)
def mi_to_rho(mi: float | np.ndarray, n_features: int) -> float | np.ndarray:
    """Per-coordinate correlation that gives a correlated Gaussian the requested MI.

    Parameters
    ----------
    mi : float or array-like of float
        Total mutual information in nats, non-negative.
    n_features : int
        Number of independent coordinate pairs ``d``.

    Returns
    -------
    rho : float or ndarray
        ``sqrt(1 - exp(-2 mi / d))``, in ``[0, 1)``.

    See Also
    --------
    rho_to_mi : The inverse map.

    Examples
    --------
    >>> from sk_mlcpc.datasets import mi_to_rho, rho_to_mi
    >>> rho = mi_to_rho(2.0, n_features=20)
    >>> round(float(rho), 4)
    0.4258
    >>> round(float(rho_to_mi(rho, n_features=20)), 6)
    2.0
    """
    mi_array = np.asarray(mi, dtype=np.float64)
    if np.any(mi_array < 0) or not np.all(np.isfinite(mi_array)):
        raise ValueError(f"mi must be finite and non-negative, got {mi!r}.")
    rho = np.sqrt(-np.expm1(-2.0 * mi_array / n_features))
    if np.any(rho >= 1.0):
        raise ValueError(
            f"mi={mi!r} is too large for {n_features} feature(s): the correlation rounds to 1 "
            "in float64. Use more features or a smaller MI."
        )
    return float(rho) if rho.ndim == 0 else rho


@validate_params(
    {
        "rho": [Interval(Real, -1, 1, closed="neither"), "array-like"],
        "n_features": [Interval(Integral, 1, None, closed="left")],
    },
    prefer_skip_nested_validation=True,
)
def rho_to_mi(rho: float | np.ndarray, n_features: int) -> float | np.ndarray:
    """Mutual information of ``n_features`` independent bivariate normals with correlation ``rho``.

    Parameters
    ----------
    rho : float or array-like of float
        Correlation of each coordinate pair, in ``(-1, 1)``.
    n_features : int
        Number of coordinate pairs ``d``.

    Returns
    -------
    mi : float or ndarray
        ``-d/2 * log(1 - rho^2)`` in nats.

    See Also
    --------
    mi_to_rho : The inverse map.

    Examples
    --------
    >>> from sk_mlcpc.datasets import rho_to_mi
    >>> round(float(rho_to_mi(0.5, n_features=1)), 6)
    0.143841
    """
    rho_array = np.asarray(rho, dtype=np.float64)
    if np.any(np.abs(rho_array) >= 1) or not np.all(np.isfinite(rho_array)):
        raise ValueError(f"rho must lie strictly between -1 and 1, got {rho!r}.")
    mi = -0.5 * n_features * np.log1p(-(rho_array**2))
    return float(mi) if mi.ndim == 0 else mi


@validate_params(
    {
        "n_samples": [Interval(Integral, 1, None, closed="left")],
        "n_features": [Interval(Integral, 1, None, closed="left")],
        "mi": [Interval(Real, 0, None, closed="left")],
        "transform": [StrOptions({"cubic"}), None],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def make_correlated_gaussians(
    n_samples: int = 10_000,
    n_features: int = 20,
    *,
    mi: float = 2.0,
    transform: str | None = None,
    random_state: int | np.random.RandomState | None = None,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Draw paired samples of correlated Gaussians with a chosen mutual information.

    Parameters
    ----------
    n_samples : int, default=10_000
        Number of ``(x, y)`` pairs.
    n_features : int, default=20
        Dimension ``d`` of both ``X`` and ``Y``.
    mi : float, default=2.0
        Mutual information ``I(X; Y)`` in nats.
    transform : {None, "cubic"}, default=None
        ``"cubic"`` returns ``Y ** 3`` (same MI, heavy-tailed marginal).
    random_state : int, RandomState instance or None, default=None
        Seed or generator for reproducible draws.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
    Y : ndarray of shape (n_samples, n_features)
    true_mi : float
        The exact mutual information in nats (equal to ``mi``).

    See Also
    --------
    mi_staircase : The stepwise schedule of the ML-CPC paper's MI experiment.
    gaussian_log_density_ratio : The optimal critic for this distribution.

    Examples
    --------
    >>> from sk_mlcpc.datasets import make_correlated_gaussians
    >>> X, Y, true_mi = make_correlated_gaussians(1000, 5, mi=1.5, random_state=0)
    >>> X.shape, Y.shape, true_mi
    ((1000, 5), (1000, 5), 1.5)
    """
    rng = check_random_state(random_state)
    rho = mi_to_rho(float(mi), n_features)
    X = rng.standard_normal((n_samples, n_features))
    noise = rng.standard_normal((n_samples, n_features))
    Y = rho * X + np.sqrt(1.0 - rho**2) * noise
    if transform == "cubic":
        Y = Y**3
    return X, Y, float(mi)


def gaussian_log_density_ratio(
    X: np.ndarray, Y: np.ndarray, rho: float, *, transform: str | None = None
) -> np.ndarray:
    """Optimal critic ``log p(y | x) - log p(y)`` of the correlated Gaussian task, for all pairs.

    Parameters
    ----------
    X : ndarray of shape (n, d)
    Y : ndarray of shape (m, d)
        Samples of ``Y`` as returned by :func:`make_correlated_gaussians` (cubed when
        ``transform="cubic"``).
    rho : float
        Per-coordinate correlation, see :func:`mi_to_rho`.
    transform : {None, "cubic"}, default=None
        Undo the cube before evaluating (the density ratio is invariant under the
        bijection, so the cubic task has the same optimal critic in the original
        coordinates).

    Returns
    -------
    scores : ndarray of shape (n, m)
        ``scores[i, j] = log p(y_j | x_i) - log p(y_j)``. Its expectation under the joint
        distribution (the diagonal when rows are paired) is the true MI.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_mlcpc.datasets import (
    ...     gaussian_log_density_ratio, make_correlated_gaussians, mi_to_rho)
    >>> X, Y, mi = make_correlated_gaussians(20_000, 2, mi=1.0, random_state=0)
    >>> S = gaussian_log_density_ratio(X[:5], Y[:5], mi_to_rho(mi, 2))
    >>> S.shape
    (5, 5)
    >>> pointwise = np.diag(gaussian_log_density_ratio(X[:2000], Y[:2000], mi_to_rho(mi, 2)))
    >>> bool(abs(pointwise.mean() - mi) < 0.1)
    True
    """
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    if transform == "cubic":
        Y = np.cbrt(Y)
    elif transform is not None:
        raise ValueError(f"transform must be None or 'cubic', got {transform!r}.")
    if X.ndim != 2 or Y.ndim != 2 or X.shape[1] != Y.shape[1]:
        raise ValueError(
            f"X and Y must be 2-D with the same number of columns, got {X.shape} and {Y.shape}."
        )
    if not 0 <= abs(rho) < 1:
        raise ValueError(f"rho must lie in (-1, 1), got {rho}.")
    var = 1.0 - rho**2
    # Sum over coordinates of log N(y; rho x, 1 - rho^2) - log N(y; 0, 1), expanded so that
    # the (n, m) matrix needs only inner products.
    d = X.shape[1]
    sq_y = (Y**2).sum(axis=1)
    sq_x = (X**2).sum(axis=1)
    cross = X @ Y.T
    quad = (sq_y[None, :] - 2.0 * rho * cross + rho**2 * sq_x[:, None]) / var
    return -0.5 * d * np.log(var) - 0.5 * quad + 0.5 * sq_y[None, :]


@validate_params(
    {
        "mi_levels": ["array-like"],
        "steps_per_level": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 2, None, closed="left")],
        "n_features": [Interval(Integral, 1, None, closed="left")],
        "transform": [StrOptions({"cubic"}), None],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def mi_staircase(
    mi_levels: Sequence[float] = (2.0, 4.0, 6.0, 8.0, 10.0),
    *,
    steps_per_level: int = 4000,
    batch_size: int = 128,
    n_features: int = 20,
    transform: str | None = None,
    random_state: int | np.random.RandomState | None = None,
):
    """Generate the MI staircase of the ML-CPC paper, one fresh batch per training step.

    The true MI is held at each level for ``steps_per_level`` consecutive batches, then
    steps up. Every batch is a new draw, so a bound evaluated on a batch before the
    gradient step that uses it is a held-out estimate.

    Parameters
    ----------
    mi_levels : sequence of float, default=(2, 4, 6, 8, 10)
        True MI of each level, nats.
    steps_per_level : int, default=4000
        Batches per level (the paper uses 4,000).
    batch_size : int, default=128
        Pairs per batch.
    n_features : int, default=20
        Dimension of ``X`` and ``Y``.
    transform : {None, "cubic"}, default=None
        As in :func:`make_correlated_gaussians`.
    random_state : int, RandomState instance or None, default=None
        Seed for reproducible draws.

    Yields
    ------
    level : int
        Index of the level.
    true_mi : float
        The level's MI in nats.
    X : ndarray of shape (steps_per_level * batch_size, n_features), float32
    Y : ndarray of shape (steps_per_level * batch_size, n_features), float32
        All the level's batches, stacked in order: batch ``k`` is rows
        ``k * batch_size`` to ``(k + 1) * batch_size``.

    Examples
    --------
    >>> from sk_mlcpc.datasets import mi_staircase
    >>> levels = list(mi_staircase((2, 4), steps_per_level=3, batch_size=8, random_state=0))
    >>> [(level, mi, X.shape) for level, mi, X, Y in levels]
    [(0, 2.0, (24, 20)), (1, 4.0, (24, 20))]
    """
    levels = np.asarray(mi_levels, dtype=np.float64)
    if levels.ndim != 1 or levels.size == 0 or np.any(levels < 0):
        raise ValueError(f"mi_levels must be a non-empty 1-D sequence of MI >= 0, got {mi_levels}.")
    mi_to_rho(levels, n_features)  # fail now, not at the first level drawn
    return _staircase_levels(
        levels, steps_per_level, batch_size, n_features, transform, check_random_state(random_state)
    )


def _staircase_levels(levels, steps_per_level, batch_size, n_features, transform, rng):
    for index, mi in enumerate(levels):
        X, Y, true_mi = make_correlated_gaussians(
            steps_per_level * batch_size,
            n_features,
            mi=float(mi),
            transform=transform,
            random_state=rng,
        )
        yield index, true_mi, X.astype(np.float32), Y.astype(np.float32)


# ---------------------------------------------------------------------------------------
# Sparse dependence, heavy tails and invertible transforms
# ---------------------------------------------------------------------------------------


@validate_params(
    {
        "n_samples": [Interval(Integral, 1, None, closed="left")],
        "n_features": [Interval(Integral, 1, None, closed="left")],
        "n_informative": [Interval(Integral, 1, None, closed="left")],
        "mi": [Interval(Real, 0, None, closed="left")],
        "n_features_y": [Interval(Integral, 1, None, closed="left"), None],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def make_sparse_gaussians(
    n_samples: int = 10_000,
    n_features: int = 50,
    *,
    n_informative: int = 2,
    mi: float = 1.0,
    n_features_y: int | None = None,
    random_state: int | np.random.RandomState | None = None,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Gaussian pairs where only a few coordinates depend on each other.

    ``X`` and ``Y`` are standard normal. The first ``n_informative`` columns form
    bivariate normal pairs ``(X_k, Y_k)`` with a common correlation ``rho``; every other
    column of either side is independent noise. The mutual information is that of the
    informative pairs alone, ``-n_informative / 2 * log(1 - rho^2)``.

    Parameters
    ----------
    n_samples : int, default=10_000
        Number of ``(x, y)`` pairs.
    n_features : int, default=50
        Dimension of ``X``.
    n_informative : int, default=2
        Number of correlated coordinate pairs, at most ``min(n_features, n_features_y)``.
    mi : float, default=1.0
        Mutual information ``I(X; Y)`` in nats, shared equally by the informative pairs.
    n_features_y : int or None, default=None
        Dimension of ``Y``; ``None`` means ``n_features``.
    random_state : int, RandomState instance or None, default=None
        Seed or generator for reproducible draws.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
    Y : ndarray of shape (n_samples, n_features_y)
    true_mi : float
        The exact mutual information in nats (equal to ``mi``).

    See Also
    --------
    make_correlated_gaussians : Every coordinate informative (the same draw when
        ``n_informative == n_features == n_features_y``).

    Examples
    --------
    >>> import numpy as np
    >>> from sk_mlcpc.datasets import make_sparse_gaussians
    >>> X, Y, true_mi = make_sparse_gaussians(
    ...     5000, 30, n_informative=2, mi=1.0, n_features_y=5, random_state=0)
    >>> X.shape, Y.shape, true_mi
    ((5000, 30), (5000, 5), 1.0)
    >>> [round(abs(float(np.corrcoef(X[:, k], Y[:, k])[0, 1])), 1) for k in range(3)]
    [0.8, 0.8, 0.0]
    """
    n_features_y = n_features if n_features_y is None else n_features_y
    if n_informative > min(n_features, n_features_y):
        raise ValueError(
            f"n_informative={n_informative} exceeds the dimension of X ({n_features}) or of "
            f"Y ({n_features_y}): at most {min(n_features, n_features_y)} pairs can be correlated."
        )
    rho = mi_to_rho(float(mi), n_informative)
    rng = check_random_state(random_state)
    X = rng.standard_normal((n_samples, n_features))
    Y = rng.standard_normal((n_samples, n_features_y))
    k = n_informative
    Y[:, :k] = rho * X[:, :k] + np.sqrt(1.0 - rho**2) * Y[:, :k]
    return X, Y, float(mi)


def _student_t_excess(df: float, n_features_x: int, n_features_y: int) -> float:
    """MI that the shared chi-square scale adds to a multivariate t pair, in nats.

    ``H(X) + H(Y) - H(X, Y)`` of multivariate t laws with the same ``df`` once the
    log-determinant (Gaussian) part is taken out: the ``log(nu pi)`` terms cancel and
    what remains are the gamma and digamma terms below. Non-negative; it vanishes as
    ``df`` grows.
    """
    half = 0.5 * df
    a = half + 0.5 * n_features_x
    b = half + 0.5 * n_features_y
    p = half + 0.5 * (n_features_x + n_features_y)
    value = (
        special.gammaln(half)
        + special.gammaln(p)
        - special.gammaln(a)
        - special.gammaln(b)
        + a * special.digamma(a)
        + b * special.digamma(b)
        - p * special.digamma(p)
        - half * special.digamma(half)
    )
    # The terms are of order df * log(df) and cancel; for very large df the float64
    # rounding can leave a tiny negative number where the exact value is a tiny positive one.
    return max(float(value), 0.0)


@validate_params(
    {
        "rho": [Interval(Real, -1, 1, closed="neither"), "array-like"],
        "n_features": [Interval(Integral, 1, None, closed="left")],
        "df": [Interval(Real, 0, None, closed="neither")],
    },
    prefer_skip_nested_validation=True,
)
def student_t_mi(rho: float | np.ndarray, n_features: int, *, df: float) -> float | np.ndarray:
    """Mutual information of the multivariate Student-t pair of :func:`make_student_t`.

    ``(X, Y) = (G_X, G_Y) / sqrt(W / df)`` with ``(G_X, G_Y)`` the correlated Gaussian pair
    (``d = n_features`` coordinate pairs of correlation ``rho``) and ``W ~ chi2(df)``
    shared by both sides. Then ``(X, Y)`` is multivariate t with scale matrix
    ``Sigma = [[I, rho I], [rho I, I]]``, its marginals are ``d``-variate t with the same
    ``df``, and ``I(X; Y) = H(X) + H(Y) - H(X, Y)`` with the entropy of a ``p``-variate
    t, ``1/2 log|Sigma| + log Gamma(nu/2) - log Gamma((nu+p)/2) + p/2 log(nu pi)
    + (nu+p)/2 [psi((nu+p)/2) - psi(nu/2)]``, gives

    .. math::

        I(X; Y) = -\\frac{d}{2} \\log(1 - \\rho^2)
        + \\log\\Gamma(\\tfrac{\\nu}{2}) + \\log\\Gamma(\\tfrac{\\nu}{2} + d)
        - 2 \\log\\Gamma(\\tfrac{\\nu + d}{2})
        + (\\nu + d) \\psi(\\tfrac{\\nu + d}{2})
        - (\\tfrac{\\nu}{2} + d) \\psi(\\tfrac{\\nu}{2} + d)
        - \\tfrac{\\nu}{2} \\psi(\\tfrac{\\nu}{2})

    with ``nu = df`` and ``psi`` the digamma function. The first term is the Gaussian MI
    of :func:`rho_to_mi`; the rest, which does not depend on ``rho``, is the information
    the shared scale ``W`` carries (``X`` and ``Y`` are dependent even when ``rho = 0``).

    Parameters
    ----------
    rho : float or array-like of float
        Correlation of each Gaussian coordinate pair, in ``(-1, 1)``.
    n_features : int
        Dimension ``d`` of ``X`` and of ``Y``.
    df : float
        Degrees of freedom ``nu > 0``. The correction term falls off like ``1/df``.

    Returns
    -------
    mi : float or ndarray
        Mutual information in nats.

    See Also
    --------
    make_student_t : Draws from this distribution.
    rho_to_mi : The Gaussian limit ``df -> inf``.

    References
    ----------
    .. [1] R. B. Arellano-Valle, J. E. Contreras-Reyes and M. G. Genton, "Shannon entropy
       and mutual information for multivariate skew-elliptical distributions",
       Scandinavian Journal of Statistics 40(1), 2013.

    Examples
    --------
    >>> from sk_mlcpc.datasets import rho_to_mi, student_t_mi
    >>> round(student_t_mi(0.0, n_features=1, df=3), 4)  # the shared scale alone
    0.0424
    >>> round(student_t_mi(0.5, n_features=1, df=3) - rho_to_mi(0.5, n_features=1), 4)
    0.0424
    >>> abs(student_t_mi(0.5, n_features=20, df=1e6) - rho_to_mi(0.5, n_features=20)) < 1e-3
    True
    """
    return rho_to_mi(rho, n_features) + _student_t_excess(float(df), n_features, n_features)


@validate_params(
    {
        "n_samples": [Interval(Integral, 1, None, closed="left")],
        "n_features": [Interval(Integral, 1, None, closed="left")],
        "mi": [Interval(Real, 0, None, closed="left"), None],
        "rho": [Interval(Real, -1, 1, closed="neither"), None],
        "df": [Interval(Real, 0, None, closed="neither")],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def make_student_t(
    n_samples: int = 10_000,
    n_features: int = 5,
    *,
    mi: float | None = None,
    rho: float | None = None,
    df: float = 3.0,
    random_state: int | np.random.RandomState | None = None,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Draw heavy-tailed pairs from a multivariate Student-t with known MI.

    A correlated Gaussian pair (as in :func:`make_correlated_gaussians`, ``d`` coordinate
    pairs of correlation ``rho``) is divided, row by row, by one shared
    ``sqrt(W / df)`` with ``W ~ chi2(df)``: ``(X, Y)`` is jointly multivariate t with
    ``df`` degrees of freedom. The shared scale makes the two sides dependent beyond
    their correlation, so the MI is the Gaussian MI plus a term that depends only on
    ``df`` and ``d`` (see :func:`student_t_mi`); for ``df`` of 3 to 5 the tails are heavy
    (the fourth moment is infinite for ``df <= 4``).

    Parameters
    ----------
    n_samples : int, default=10_000
        Number of ``(x, y)`` pairs.
    n_features : int, default=5
        Dimension ``d`` of both ``X`` and ``Y``.
    mi : float or None, default=None
        Total mutual information in nats. It cannot be smaller than the shared-scale term,
        ``student_t_mi(0, n_features, df=df)``. Give exactly one of ``mi`` and ``rho``.
    rho : float or None, default=None
        Correlation of each Gaussian coordinate pair, in ``(-1, 1)``.
    df : float, default=3.0
        Degrees of freedom, ``> 0``.
    random_state : int, RandomState instance or None, default=None
        Seed or generator for reproducible draws.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
    Y : ndarray of shape (n_samples, n_features)
    true_mi : float
        The exact mutual information in nats (equal to ``mi`` when it is given).

    Raises
    ------
    ValueError
        If both or neither of ``mi`` and ``rho`` are given, or if ``mi`` is below the
        shared-scale term.

    See Also
    --------
    student_t_mi : The closed form of the MI.
    make_correlated_gaussians : The Gaussian limit ``df -> inf``.

    Examples
    --------
    >>> from sk_mlcpc.datasets import make_student_t
    >>> X, Y, true_mi = make_student_t(1000, 5, mi=2.0, df=4, random_state=0)
    >>> X.shape, Y.shape, true_mi
    ((1000, 5), (1000, 5), 2.0)
    >>> X, Y, true_mi = make_student_t(1000, 1, rho=0.5, df=3, random_state=0)
    >>> round(true_mi, 4)
    0.1863
    """
    if (mi is None) == (rho is None):
        raise ValueError(f"Give exactly one of mi and rho, got mi={mi!r} and rho={rho!r}.")
    excess = _student_t_excess(float(df), n_features, n_features)
    if mi is not None:
        if mi < excess:
            raise ValueError(
                f"mi={mi!r} is below the smallest MI of a {n_features}-d Student-t pair with "
                f"df={df!r}: the shared scale alone gives {excess:.6g} nats (rho=0). Ask for "
                "more MI, fewer features or a larger df."
            )
        rho = mi_to_rho(float(mi) - excess, n_features)
        true_mi = float(mi)
    else:
        true_mi = float(rho_to_mi(rho, n_features)) + excess
    rng = check_random_state(random_state)
    X = rng.standard_normal((n_samples, n_features))
    noise = rng.standard_normal((n_samples, n_features))
    Y = rho * X + np.sqrt(1.0 - rho**2) * noise
    scale = np.sqrt(rng.chisquare(df, n_samples) / df)[:, None]
    return X / scale, Y / scale, true_mi


#: Names accepted by :func:`invertible_transform`.
INVERTIBLE_TRANSFORMS = ("cubic", "sinh", "exp", "wiggle", "couple", "rotate")

# Amplitude and frequency of "wiggle": z + a sin(w z) is strictly increasing when
# a * w < 1 (its slope 1 + a w cos(w z) stays >= 1 - a w = 0.1).
_WIGGLE_AMPLITUDE = 0.3
_WIGGLE_FREQUENCY = 3.0


@validate_params(
    {
        "Z": ["array-like"],
        "kind": [StrOptions(set(INVERTIBLE_TRANSFORMS))],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def invertible_transform(
    Z: np.ndarray, kind: str, *, random_state: int | np.random.RandomState | None = None
) -> np.ndarray:
    """Apply an invertible map to the rows of one side, which leaves the MI unchanged.

    Mutual information is invariant under an invertible (measurable, with measurable
    inverse) map of each side: ``I(f(X); g(Y)) = I(X; Y)``. Transforming the output of a
    sampler therefore gives a harder task with the same ground truth.

    - ``"cubic"``: ``z ** 3``, coordinate-wise (heavy-tailed marginals).
    - ``"sinh"``: ``sinh(z)``, coordinate-wise (exponential tails).
    - ``"exp"``: ``exp(z)``, coordinate-wise (skewed, positive; log-normal for a normal).
    - ``"wiggle"``: ``z + 0.3 sin(3 z)``, coordinate-wise: strictly increasing (slope at
      least 0.1) but with near-flat steps, so that it looks non-monotone at a glance.
    - ``"couple"``: ``z_k + z_{k-1}^2 / 2`` for ``k >= 1``, first column unchanged: a
      triangular (autoregressive) map, inverted column by column; it mixes coordinates
      nonlinearly, which no per-column preprocessing can undo. The identity on one column.
    - ``"rotate"``: ``Z @ Q`` with a random orthogonal ``Q`` drawn from ``random_state``
      (uniform on the orthogonal group): spreads sparse dependence over every column.

    The coordinate-wise maps are strictly increasing, so rank-based preprocessing (such
    as a quantile transform) undoes them exactly; ``"couple"`` and ``"rotate"`` are the
    ones that change what an estimator sees after such preprocessing.

    Parameters
    ----------
    Z : array-like of shape (n_samples, n_features)
        Samples of one side.
    kind : {"cubic", "sinh", "exp", "wiggle", "couple", "rotate"}
        The map, see above and :data:`INVERTIBLE_TRANSFORMS`.
    random_state : int, RandomState instance or None, default=None
        Seed or generator of the rotation (``kind="rotate"`` only).

    Returns
    -------
    Z_new : ndarray of shape (n_samples, n_features)
        A new float64 array.

    Raises
    ------
    ValueError
        If ``Z`` is not 2-D and finite, or the map overflows float64 (``"exp"``,
        ``"sinh"`` and ``"cubic"`` on values of very large magnitude).

    Examples
    --------
    >>> import numpy as np
    >>> from sk_mlcpc.datasets import invertible_transform
    >>> Z = np.array([[-1.0, 0.0], [0.5, 2.0]])
    >>> invertible_transform(Z, "cubic")
    array([[-1.   ,  0.   ],
           [ 0.125,  8.   ]])
    >>> invertible_transform(Z, "couple")
    array([[-1.   ,  0.5  ],
           [ 0.5  ,  2.125]])
    >>> Q = invertible_transform(np.eye(2), "rotate", random_state=0)
    >>> np.allclose(Q @ Q.T, np.eye(2))
    True
    """
    Z = np.asarray(Z, dtype=np.float64)
    if Z.ndim != 2:
        raise ValueError(f"Z must be 2-D (n_samples, n_features), got shape {Z.shape}.")
    if not np.all(np.isfinite(Z)):
        raise ValueError("Z must be finite: it contains NaN or infinity.")
    with np.errstate(over="ignore"):
        if kind == "cubic":
            out = Z**3
        elif kind == "sinh":
            out = np.sinh(Z)
        elif kind == "exp":
            out = np.exp(Z)
        elif kind == "wiggle":
            out = Z + _WIGGLE_AMPLITUDE * np.sin(_WIGGLE_FREQUENCY * Z)
        elif kind == "couple":
            out = Z.copy()
            out[:, 1:] += 0.5 * Z[:, :-1] ** 2
        else:  # "rotate": validate_params has already rejected any other name
            out = Z @ _random_orthogonal(Z.shape[1], check_random_state(random_state))
    if not np.all(np.isfinite(out)):
        raise ValueError(
            f"invertible_transform(kind={kind!r}) overflows float64 on this data (largest "
            f"|value| {np.abs(Z).max():.3g}); apply it to data of moderate scale."
        )
    return out


def _random_orthogonal(n: int, rng: np.random.RandomState) -> np.ndarray:
    """A Haar-distributed ``n x n`` orthogonal matrix (QR of a Gaussian, signs fixed)."""
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return q * np.where(np.diag(r) < 0, -1.0, 1.0)


# ---------------------------------------------------------------------------------------
# The development suite
# ---------------------------------------------------------------------------------------

_FAMILIES = ("gaussian", "sparse", "student_t")


@dataclass(frozen=True)
class MITaskSpec:
    """Recipe for one ground-truth MI task: a sampler, its parameters and transforms.

    Cheap to hold and to list (nothing is drawn); :func:`make_mi_task` draws the data.

    Parameters
    ----------
    name : str
        Unique name, such as ``"gauss-20d-mi2"``.
    family : {"gaussian", "sparse", "student_t"}
        Sampler: :func:`make_correlated_gaussians`, :func:`make_sparse_gaussians` or
        :func:`make_student_t`.
    true_mi : float
        Mutual information in nats, passed to the sampler as ``mi``.
    n_features : int
        Dimension of ``X`` (and of ``Y`` unless ``n_features_y`` is set).
    n_features_y : int or None, default=None
        Dimension of ``Y`` (``"sparse"`` only).
    n_informative : int or None, default=None
        Correlated pairs (``"sparse"`` only, required there).
    df : float or None, default=None
        Degrees of freedom (``"student_t"`` only, required there).
    x_transforms, y_transforms : tuple of str, default=()
        Names from :data:`INVERTIBLE_TRANSFORMS`, applied in order to ``X`` and to ``Y``
        after sampling (they leave the MI unchanged).
    tags : tuple of str, default=()
        Labels to select tasks by, such as ``"gaussian"``, ``"sparse"``, ``"student_t"``,
        ``"nonlinear"``, ``"reference"``.

    Attributes
    ----------
    dims : tuple of (int, int)
        ``(n_features, n_features_y)``, the dimensions of ``X`` and ``Y``.

    Examples
    --------
    >>> from sk_mlcpc.datasets import MITaskSpec, make_mi_task
    >>> spec = MITaskSpec("t-2d", "student_t", 1.0, 2, df=4, y_transforms=("sinh",))
    >>> spec.dims
    (2, 2)
    >>> task = make_mi_task(spec, 100, random_state=0)
    >>> task.name, task.X.shape, task.true_mi
    ('t-2d', (100, 2), 1.0)
    """

    name: str
    family: str
    true_mi: float
    n_features: int
    n_features_y: int | None = None
    n_informative: int | None = None
    df: float | None = None
    x_transforms: tuple[str, ...] = ()
    y_transforms: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.family not in _FAMILIES:
            raise ValueError(
                f"family must be one of {_FAMILIES}, got {self.family!r} (task {self.name!r})."
            )
        unknown = [
            t for t in (*self.x_transforms, *self.y_transforms) if t not in INVERTIBLE_TRANSFORMS
        ]
        if isinstance(self.x_transforms, str) or isinstance(self.y_transforms, str) or unknown:
            raise ValueError(
                f"x_transforms and y_transforms must be tuples of names from "
                f"{INVERTIBLE_TRANSFORMS}, got {self.x_transforms!r} and {self.y_transforms!r} "
                f"(task {self.name!r})."
            )
        if self.family == "sparse" and self.n_informative is None:
            raise ValueError(f"A 'sparse' task needs n_informative (task {self.name!r}).")
        if self.family == "student_t" and self.df is None:
            raise ValueError(f"A 'student_t' task needs df (task {self.name!r}).")
        if self.family != "sparse" and self.n_features_y not in (None, self.n_features):
            raise ValueError(
                f"Only 'sparse' tasks may have n_features_y != n_features (task {self.name!r})."
            )

    @property
    def dims(self) -> tuple[int, int]:
        """Dimensions ``(d_x, d_y)`` of ``X`` and ``Y``."""
        d_y = self.n_features if self.n_features_y is None else self.n_features_y
        return (self.n_features, d_y)


@dataclass(frozen=True, eq=False)
class MITask:
    """One drawn task of the suite: paired samples and their exact MI.

    Parameters
    ----------
    name : str
        Name of the task's :class:`MITaskSpec`.
    X : ndarray of shape (n_samples, d_x)
    Y : ndarray of shape (n_samples, d_y)
    true_mi : float
        Exact mutual information of the distribution, nats.
    tags : tuple of str
        The spec's tags.
    dims : tuple of (int, int)
        ``(d_x, d_y)``.

    Examples
    --------
    >>> from sk_mlcpc.datasets import make_mi_task
    >>> task = make_mi_task("gauss-1d-mi0.3", 50, random_state=0)
    >>> task.dims, task.tags
    ((1, 1), ('gaussian', '1d', 'weak'))
    """

    name: str
    X: np.ndarray
    Y: np.ndarray
    true_mi: float
    tags: tuple[str, ...]
    dims: tuple[int, int]


def _reference_tasks() -> list[MITaskSpec]:
    specs = []
    for mi in (2, 4, 6, 8, 10):
        specs.append(
            MITaskSpec(
                f"gauss-20d-mi{mi}",
                "gaussian",
                float(mi),
                20,
                tags=("gaussian", "dense", "reference"),
            )
        )
    for mi in (2, 4, 6, 8, 10):
        specs.append(
            MITaskSpec(
                f"cubic-20d-mi{mi}",
                "gaussian",
                float(mi),
                20,
                y_transforms=("cubic",),
                tags=("gaussian", "dense", "nonlinear", "reference"),
            )
        )
    return specs


#: The development suite: 21 task recipes, true MI from 0.3 to 10 nats, 1 to 50
#: dimensions a side. Build them with :func:`make_mi_suite` or one at a time with
#: :func:`make_mi_task`.
MI_SUITE: tuple[MITaskSpec, ...] = (
    # The reference cases: the ML-CPC paper's 20-d task and its cubic variant.
    *_reference_tasks(),
    # Weak dependence spread over many coordinates (per-pair correlation 0.31 and 0.25).
    MITaskSpec("gauss-25d-mi1.3", "gaussian", 1.3, 25, tags=("gaussian", "dense", "weak")),
    MITaskSpec("gauss-50d-mi1.6", "gaussian", 1.6, 50, tags=("gaussian", "dense", "weak")),
    MITaskSpec("gauss-1d-mi0.3", "gaussian", 0.3, 1, tags=("gaussian", "1d", "weak")),
    # Sparse dependence: a few informative pairs among noise, square and rectangular.
    MITaskSpec(
        "sparse-50d-k2-mi1", "sparse", 1.0, 50, n_informative=2, tags=("gaussian", "sparse")
    ),
    MITaskSpec(
        "sparse-30x5-k1-mi0.5",
        "sparse",
        0.5,
        30,
        n_features_y=5,
        n_informative=1,
        tags=("gaussian", "sparse"),
    ),
    # Heavy tails with a known MI.
    MITaskSpec("t3-1d-mi0.5", "student_t", 0.5, 1, df=3.0, tags=("student_t", "heavy_tail", "1d")),
    MITaskSpec("t5-5d-mi2", "student_t", 2.0, 5, df=5.0, tags=("student_t", "heavy_tail")),
    MITaskSpec("t4-20d-mi4", "student_t", 4.0, 20, df=4.0, tags=("student_t", "heavy_tail")),
    # Invertible non-linear maps of both sides: coordinate-wise monotone ones, and ones that
    # mix coordinates (no per-column preprocessing can undo those).
    MITaskSpec(
        "wiggle-sinh-1d-mi1",
        "gaussian",
        1.0,
        1,
        x_transforms=("wiggle",),
        y_transforms=("sinh",),
        tags=("gaussian", "nonlinear", "1d"),
    ),
    MITaskSpec(
        "exp-wiggle-5d-mi3",
        "gaussian",
        3.0,
        5,
        x_transforms=("exp",),
        y_transforms=("wiggle",),
        tags=("gaussian", "nonlinear"),
    ),
    MITaskSpec(
        "mixed-10d-mi2",
        "gaussian",
        2.0,
        10,
        x_transforms=("sinh", "rotate"),
        y_transforms=("couple", "rotate"),
        tags=("gaussian", "nonlinear", "mixing"),
    ),
)

_SUITE_BY_NAME = {spec.name: spec for spec in MI_SUITE}


def _task_rng(name: str, random_state) -> np.random.RandomState:
    """A generator of its own for each task: same seed, same data, whatever subset is built."""
    if isinstance(random_state, Integral):
        base = int(random_state)
    else:
        base = int(check_random_state(random_state).randint(np.iinfo(np.int32).max))
    seeds = np.random.SeedSequence([base, zlib.crc32(name.encode())]).generate_state(4)
    return np.random.RandomState(seeds)


@validate_params(
    {
        "task": [MITaskSpec, str],
        "n_samples": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def make_mi_task(
    task: MITaskSpec | str,
    n_samples: int = 10_000,
    *,
    random_state: int | np.random.RandomState | None = 0,
) -> MITask:
    """Draw one task of the suite (or of any :class:`MITaskSpec`).

    Each task draws from a generator of its own, seeded by ``random_state`` and the task
    name, so a task's data do not depend on which other tasks are built.

    Parameters
    ----------
    task : MITaskSpec or str
        A recipe, or the name of one in :data:`MI_SUITE`.
    n_samples : int, default=10_000
        Number of ``(x, y)`` pairs.
    random_state : int, RandomState instance or None, default=0
        Seed of the draw.

    Returns
    -------
    task : MITask
        ``name``, ``X``, ``Y``, ``true_mi``, ``tags`` and ``dims``.

    Raises
    ------
    ValueError
        If ``task`` names no task of :data:`MI_SUITE`.

    See Also
    --------
    make_mi_suite : Every task (or a chosen subset) at once.

    Examples
    --------
    >>> from sk_mlcpc.datasets import make_mi_task
    >>> task = make_mi_task("sparse-30x5-k1-mi0.5", 1000, random_state=0)
    >>> task.X.shape, task.Y.shape, task.true_mi
    ((1000, 30), (1000, 5), 0.5)
    """
    if isinstance(task, str):
        if task not in _SUITE_BY_NAME:
            raise ValueError(
                f"Unknown task {task!r}; the tasks of MI_SUITE are {sorted(_SUITE_BY_NAME)}."
            )
        task = _SUITE_BY_NAME[task]
    rng = _task_rng(task.name, random_state)
    if task.family == "gaussian":
        X, Y, true_mi = make_correlated_gaussians(
            n_samples, task.n_features, mi=task.true_mi, random_state=rng
        )
    elif task.family == "sparse":
        X, Y, true_mi = make_sparse_gaussians(
            n_samples,
            task.n_features,
            n_informative=task.n_informative,
            mi=task.true_mi,
            n_features_y=task.n_features_y,
            random_state=rng,
        )
    else:  # "student_t": MITaskSpec has checked the family
        X, Y, true_mi = make_student_t(
            n_samples, task.n_features, mi=task.true_mi, df=task.df, random_state=rng
        )
    for kind in task.x_transforms:
        X = invertible_transform(X, kind, random_state=rng)
    for kind in task.y_transforms:
        Y = invertible_transform(Y, kind, random_state=rng)
    return MITask(task.name, X, Y, float(true_mi), tuple(task.tags), task.dims)


@validate_params(
    {
        "n_samples": [Interval(Integral, 1, None, closed="left")],
        "tasks": ["array-like", None],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def make_mi_suite(
    n_samples: int = 10_000,
    *,
    tasks: Sequence[str | MITaskSpec] | None = None,
    random_state: int | np.random.RandomState | None = 0,
) -> list[MITask]:
    """Draw the development suite of ground-truth MI tasks.

    :data:`MI_SUITE` holds 21 recipes (:class:`MITaskSpec`), cheap to list; this draws
    them. They cover:

    - the ML-CPC paper's 20-d correlated Gaussian at 2, 4, 6, 8 and 10 nats and its
      cubic variant (``"gauss-20d-mi*"``, ``"cubic-20d-mi*"``, tag ``"reference"``);
    - weak dependence spread over 25 and 50 coordinates (1.3 and 1.6 nats) and a 1-d
      Gaussian at 0.3 nats (tag ``"weak"``);
    - sparse dependence: 2 informative pairs among 50 coordinates, and 1 among a 30-d
      ``X`` and a 5-d ``Y`` (tag ``"sparse"``);
    - multivariate Student-t with 3 to 5 degrees of freedom in 1, 5 and 20 dimensions
      (tag ``"student_t"``);
    - invertible non-linear maps of both sides, coordinate-wise and mixing
      (tag ``"nonlinear"``).

    Tasks tagged ``"1d"`` have one column on each side (where k-nearest-neighbour
    estimators are a fair baseline).

    Parameters
    ----------
    n_samples : int, default=10_000
        Pairs per task.
    tasks : sequence of str or MITaskSpec, or None, default=None
        The tasks to draw, by name or recipe; ``None`` draws all of :data:`MI_SUITE`.
    random_state : int, RandomState instance or None, default=0
        Seed; each task draws from its own generator (see :func:`make_mi_task`).

    Returns
    -------
    suite : list of MITask
        In the order of ``tasks`` (of :data:`MI_SUITE` by default).

    See Also
    --------
    make_mi_task : Draw one task.

    Examples
    --------
    >>> from sk_mlcpc.datasets import MI_SUITE, make_mi_suite
    >>> len(MI_SUITE), min(s.true_mi for s in MI_SUITE), max(s.true_mi for s in MI_SUITE)
    (21, 0.3, 10.0)
    >>> [spec.name for spec in MI_SUITE if "student_t" in spec.tags]
    ['t3-1d-mi0.5', 't5-5d-mi2', 't4-20d-mi4']
    >>> suite = make_mi_suite(200, tasks=["gauss-1d-mi0.3", "t5-5d-mi2"], random_state=0)
    >>> [(task.name, task.X.shape, task.true_mi) for task in suite]
    [('gauss-1d-mi0.3', (200, 1), 0.3), ('t5-5d-mi2', (200, 5), 2.0)]
    """
    specs = MI_SUITE if tasks is None else list(tasks)
    if not isinstance(random_state, Integral):
        # One base seed for the whole suite, so that every task still has its own stream.
        random_state = int(check_random_state(random_state).randint(np.iinfo(np.int32).max))
    return [make_mi_task(spec, n_samples, random_state=random_state) for spec in specs]


# ---------------------------------------------------------------------------------------
# Sequences with a hidden label (for ContrastivePredictiveCoding)
# ---------------------------------------------------------------------------------------


@validate_params(
    {
        "n_samples": [Interval(Integral, 1, None, closed="left")],
        "n_timesteps": [Interval(Integral, 2, None, closed="left")],
        "n_classes": [Interval(Integral, 1, None, closed="left")],
        "n_channels": [Interval(Integral, 1, None, closed="left")],
        "frequencies": ["array-like", None],
        "noise": [Interval(Real, 0, None, closed="left")],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def make_frequency_sequences(
    n_samples: int = 1000,
    n_timesteps: int = 128,
    *,
    n_classes: int = 4,
    n_channels: int = 1,
    frequencies: Sequence[float] | None = None,
    noise: float = 0.5,
    random_state: int | np.random.RandomState | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Noisy sinusoids whose frequency class is the label.

    Sequence ``i`` of class ``y_i`` is
    ``a_i sin(2 pi f_i t + phi_ic) + noise * e_ict`` for each channel ``c``, with
    ``f_i = frequencies[y_i] * (1 + u_i)``, ``u_i`` uniform in ``[-0.05, 0.05]``, a random
    amplitude ``a_i`` uniform in ``[0.5, 1.5]``, an independent uniform phase ``phi_ic``
    per channel and standard normal noise. The random phase makes the class invisible to
    any linear function of the raw samples (each class has mean zero at every time), while
    the frequency is easy to read from how the signal evolves: what a predictive
    representation should capture.

    Parameters
    ----------
    n_samples : int, default=1000
        Number of sequences.
    n_timesteps : int, default=128
        Time steps per sequence.
    n_classes : int, default=4
        Number of frequency classes (ignored when ``frequencies`` is given).
    n_channels : int, default=1
        Channels per time step (same frequency, independent phases and noise).
    frequencies : array-like of float or None, default=None
        Frequency of each class in cycles per time step, in ``(0, 0.5)``. ``None`` spaces
        ``n_classes`` frequencies geometrically between 1/32 and 1/6.
    noise : float, default=0.5
        Standard deviation of the additive noise.
    random_state : int, RandomState instance or None, default=None
        Seed or generator for reproducible draws.

    Returns
    -------
    X : ndarray of shape (n_samples, n_timesteps * n_channels)
        Sequences, time-major: column ``t * n_channels + c`` is channel ``c`` at time ``t``.
    y : ndarray of shape (n_samples,), int64
        Frequency class of each sequence, balanced up to rounding.

    See Also
    --------
    make_switching_ar : Sequences with a hidden Markov regime.
    sk_mlcpc.ContrastivePredictiveCoding : Learns features of such sequences.

    Examples
    --------
    >>> from sk_mlcpc.datasets import make_frequency_sequences
    >>> X, y = make_frequency_sequences(100, 64, n_classes=3, n_channels=2, random_state=0)
    >>> X.shape, y.shape, sorted(set(y.tolist()))
    ((100, 128), (100,), [0, 1, 2])
    """
    rng = check_random_state(random_state)
    if frequencies is None:
        freqs = np.geomspace(1 / 32, 1 / 6, n_classes) if n_classes > 1 else np.array([1 / 16])
    else:
        freqs = np.asarray(frequencies, dtype=np.float64)
        if freqs.ndim != 1 or freqs.size == 0 or np.any(freqs <= 0) or np.any(freqs >= 0.5):
            raise ValueError(
                "frequencies must be a non-empty 1-D sequence of values in (0, 0.5) cycles "
                f"per time step (below the Nyquist frequency), got {frequencies!r}."
            )
    y = rng.permutation(np.arange(n_samples) % len(freqs)).astype(np.int64)
    freq = freqs[y] * (1.0 + rng.uniform(-0.05, 0.05, n_samples))
    amplitude = rng.uniform(0.5, 1.5, n_samples)
    phase = rng.uniform(0.0, 2.0 * np.pi, (n_samples, 1, n_channels))
    t = np.arange(n_timesteps, dtype=np.float64)[None, :, None]
    X = amplitude[:, None, None] * np.sin(2.0 * np.pi * freq[:, None, None] * t + phase)
    X = X + noise * rng.standard_normal((n_samples, n_timesteps, n_channels))
    return X.reshape(n_samples, n_timesteps * n_channels), y


@validate_params(
    {
        "n_samples": [Interval(Integral, 1, None, closed="left")],
        "n_timesteps": [Interval(Integral, 2, None, closed="left")],
        "n_regimes": [Interval(Integral, 1, None, closed="left")],
        "switch_prob": [Interval(Real, 0, 1, closed="both")],
        "n_channels": [Interval(Integral, 1, None, closed="left")],
        "pole_radius": [Interval(Real, 0, 1, closed="neither")],
        "return_states": ["boolean"],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def make_switching_ar(
    n_samples: int = 1000,
    n_timesteps: int = 128,
    *,
    n_regimes: int = 3,
    switch_prob: float = 0.01,
    n_channels: int = 1,
    pole_radius: float = 0.95,
    return_states: bool = False,
    random_state: int | np.random.RandomState | None = None,
):
    """A switching autoregressive process: a hidden Markov regime sets the resonance.

    Each sequence follows a hidden Markov chain over ``n_regimes`` regimes: it starts in
    a uniformly drawn regime and, at every step, jumps with probability ``switch_prob``
    to one of the other regimes, uniformly. In regime ``k`` each channel is a stationary
    AR(2) process ``x_t = 2 r cos(w_k) x_{t-1} - r^2 x_{t-2} + e_t`` (complex poles
    ``r e^{+-i w_k}``, Gaussian innovations ``e_t`` independent across channels, scaled
    so that every regime has unit stationary variance), which oscillates around the
    frequency ``w_k / (2 pi)``; the ``w_k`` are spaced
    geometrically between ``2 pi / 32`` and ``2 pi / 6``. The label of a sequence is its
    regime at the last time step. The chain starts 64 steps before the first returned
    sample (burn-in), so sequences start near stationarity.

    Parameters
    ----------
    n_samples : int, default=1000
        Number of sequences.
    n_timesteps : int, default=128
        Time steps per sequence.
    n_regimes : int, default=3
        Number of hidden regimes (classes).
    switch_prob : float, default=0.01
        Probability of leaving the current regime at each step; 0 keeps one regime per
        sequence. With the default, about ``1 - 0.99 ** 128 = 72%`` of 128-step
        sequences never switch.
    n_channels : int, default=1
        Channels per time step (same regime path, independent innovations).
    pole_radius : float, default=0.95
        Modulus ``r`` of the AR(2) poles, in ``(0, 1)``; closer to 1 gives sharper,
        longer-lived oscillations.
    return_states : bool, default=False
        Also return the regime at every time step.
    random_state : int, RandomState instance or None, default=None
        Seed or generator for reproducible draws.

    Returns
    -------
    X : ndarray of shape (n_samples, n_timesteps * n_channels)
        Sequences, time-major: column ``t * n_channels + c`` is channel ``c`` at time ``t``.
    y : ndarray of shape (n_samples,), int64
        Regime at the last time step.
    states : ndarray of shape (n_samples, n_timesteps), int64
        Regime at every time step; only when ``return_states=True``.

    See Also
    --------
    make_frequency_sequences : Sinusoids with a frequency class.
    sk_mlcpc.ContrastivePredictiveCoding : Learns features of such sequences.

    Examples
    --------
    >>> from sk_mlcpc.datasets import make_switching_ar
    >>> X, y, states = make_switching_ar(50, 100, n_regimes=2, return_states=True,
    ...                                  random_state=0)
    >>> X.shape, y.shape, states.shape
    ((50, 100), (50,), (50, 100))
    >>> bool((states[:, -1] == y).all())
    True
    """
    rng = check_random_state(random_state)
    burn_in = 64
    omegas = (
        2.0 * np.pi * np.geomspace(1 / 32, 1 / 6, n_regimes)
        if n_regimes > 1
        else np.array([2.0 * np.pi / 16])
    )
    a1 = 2.0 * pole_radius * np.cos(omegas)
    a2 = -(pole_radius**2)
    total = burn_in + n_timesteps
    states = np.empty((n_samples, total), dtype=np.int64)
    states[:, 0] = rng.randint(n_regimes, size=n_samples)
    for t in range(1, total):
        switch = rng.uniform(size=n_samples) < switch_prob if n_regimes > 1 else 0
        # A uniform draw among the other regimes: shift by 1 .. n_regimes - 1.
        shift = rng.randint(1, max(n_regimes, 2), size=n_samples)
        states[:, t] = np.where(switch, (states[:, t - 1] + shift) % n_regimes, states[:, t - 1])
    # Innovations scaled so that every regime has unit stationary variance: the regimes
    # differ in their spectrum only, not in their power.
    variance = (1.0 - a2) / ((1.0 + a2) * ((1.0 - a2) ** 2 - a1**2))
    innovation_scale = 1.0 / np.sqrt(variance)
    innovations = rng.standard_normal((n_samples, total, n_channels))
    innovations *= innovation_scale[states][:, :, None]
    X = np.zeros((n_samples, total, n_channels))
    for t in range(total):
        previous = X[:, t - 1] if t >= 1 else 0.0
        before = X[:, t - 2] if t >= 2 else 0.0
        X[:, t] = a1[states[:, t]][:, None] * previous + a2 * before + innovations[:, t]
    X = X[:, burn_in:].reshape(n_samples, n_timesteps * n_channels)
    states = states[:, burn_in:]
    y = states[:, -1].copy()
    if return_states:
        return X, y, states
    return X, y


@validate_params(
    {
        "n_samples": [Interval(Integral, 1, None, closed="left")],
        "n_features": [Interval(Integral, 2, None, closed="left")],
        "n_classes": [Interval(Integral, 2, None, closed="left")],
        "n_rules": [Interval(Integral, 1, None, closed="left")],
        "noise": [Interval(Real, 0, None, closed="left")],
        "task_seed": [Interval(Integral, 0, None, closed="left")],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def make_rules_classification(
    n_samples: int = 10_000,
    *,
    n_features: int = 16,
    n_classes: int = 4,
    n_rules: int = 8,
    noise: float = 0.3,
    task_seed: int = 0,
    random_state: int | np.random.RandomState | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Tabular classification whose classes follow random rules on thresholded features.

    A task on which tree ensembles beat small networks trained on few labels, so that a
    boosted teacher is worth distilling (the distillation benchmark and gallery use it).
    For each class, ``n_rules`` terms ``w 1[s_a (x_a - t_a) > 0] 1[s_b (x_b - t_b) > 0]``
    on random feature pairs, plus ``0.7 sin(2 x . v)`` for a random direction ``v``, plus
    Gumbel noise of scale ``noise``; the label is the class of the largest score.

    Parameters
    ----------
    n_samples : int, default=10_000
        Rows.
    n_features : int, default=16
        Standard normal features.
    n_classes : int, default=4
        Classes.
    n_rules : int, default=8
        Threshold rules per class.
    noise : float, default=0.3
        Scale of the Gumbel noise on the class scores (label noise).
    task_seed : int, default=0
        Seed of the rules: the same task for every ``random_state``.
    random_state : int, RandomState instance or None, default=None
        Seed of the rows and the label noise.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,), int

    Examples
    --------
    >>> from sk_mlcpc.datasets import make_rules_classification
    >>> X, y = make_rules_classification(500, random_state=0)
    >>> X.shape, sorted(set(y.tolist()))
    ((500, 16), [0, 1, 2, 3])
    """
    task = np.random.default_rng(task_seed)
    if not isinstance(random_state, Integral):  # None or a RandomState: draw a seed from it
        random_state = int(check_random_state(random_state).randint(0, 2**31 - 1))
    rng = np.random.default_rng(random_state)
    X = rng.normal(size=(n_samples, n_features))
    scores = np.zeros((n_samples, n_classes))
    for k in range(n_classes):
        for _ in range(n_rules):
            a, b = task.choice(n_features, 2, replace=False)
            t_a, t_b = task.normal(0.0, 0.7, 2)
            s_a, s_b = task.choice([-1, 1], 2)
            rule = (s_a * (X[:, a] - t_a) > 0) & (s_b * (X[:, b] - t_b) > 0)
            scores[:, k] += task.uniform(0.5, 1.5) * rule
        direction = task.normal(size=n_features) / np.sqrt(n_features)
        scores[:, k] += 0.7 * np.sin(2.0 * X @ direction)
    scores += rng.gumbel(scale=noise, size=scores.shape)
    return X, scores.argmax(axis=1)


# ---------------------------------------------------------------------------------------
# Shapes: general Gaussian dependence, low rank, discrete and mixed columns, units
# ---------------------------------------------------------------------------------------
# Used by ``benchmarks/shapes.py``. Not yet in ``__all__`` (nor in docs/api.rst); import
# them by name.


def _log_det_spd(matrix: np.ndarray, what: str) -> float:
    """``log det`` of a symmetric positive definite matrix, through its Cholesky factor."""
    try:
        factor = np.linalg.cholesky(matrix)
    except np.linalg.LinAlgError:
        raise ValueError(
            f"{what} must be symmetric positive definite: its Cholesky factorisation fails "
            "(a singular covariance means deterministic dependence, infinite MI)."
        ) from None
    return 2.0 * float(np.sum(np.log(np.diag(factor))))


@validate_params(
    {
        "cov": ["array-like"],
        "n_features_x": [Interval(Integral, 1, None, closed="left")],
    },
    prefer_skip_nested_validation=True,
)
def gaussian_mi(cov: np.ndarray, n_features_x: int) -> float:
    """Mutual information of a jointly Gaussian pair with a general covariance.

    For ``(X, Y)`` jointly normal with covariance
    ``S = [[S_xx, S_xy], [S_yx, S_yy]]`` (``X`` the first ``n_features_x`` coordinates),

    .. math:: I(X; Y) = \\frac{1}{2} \\left(\\log\\det S_{xx} + \\log\\det S_{yy}
              - \\log\\det S\\right).

    The means do not matter, and neither does any invertible linear map of either side.

    Parameters
    ----------
    cov : array-like of shape (p, p)
        Joint covariance, symmetric positive definite.
    n_features_x : int
        Number of leading coordinates that form ``X``, ``1 <= n_features_x < p``.

    Returns
    -------
    mi : float
        Mutual information in nats, non-negative.

    Raises
    ------
    ValueError
        If ``cov`` is not square, symmetric and positive definite, or ``n_features_x``
        leaves no coordinate for ``Y``.

    See Also
    --------
    make_linear_gaussian : Samples with such a covariance, dense or low rank.
    rho_to_mi : The special case of independent coordinate pairs.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_mlcpc.datasets import gaussian_mi, rho_to_mi
    >>> cov = np.array([[1.0, 0.5], [0.5, 1.0]])
    >>> round(gaussian_mi(cov, 1), 6), round(rho_to_mi(0.5, 1), 6)
    (0.143841, 0.143841)
    >>> gaussian_mi(np.eye(4), 2)
    0.0
    """
    cov = np.asarray(cov, dtype=np.float64)
    if cov.ndim != 2 or cov.shape[0] != cov.shape[1]:
        raise ValueError(f"cov must be a square matrix, got shape {cov.shape}.")
    if not np.all(np.isfinite(cov)):
        raise ValueError("cov must be finite: it contains NaN or infinity.")
    p = cov.shape[0]
    if n_features_x >= p:
        raise ValueError(
            f"n_features_x={n_features_x} leaves no coordinate for Y in a {p} x {p} covariance; "
            f"it must lie in [1, {p - 1}]."
        )
    if not np.allclose(cov, cov.T, rtol=1e-10, atol=1e-12 * np.abs(cov).max()):
        raise ValueError("cov must be symmetric.")
    k = n_features_x
    value = 0.5 * (
        _log_det_spd(cov[:k, :k], "cov[:n_features_x, :n_features_x]")
        + _log_det_spd(cov[k:, k:], "cov[n_features_x:, n_features_x:]")
        - _log_det_spd(cov, "cov")
    )
    # Exactly 0 for block-diagonal covariances; rounding can leave -1e-16.
    return max(value, 0.0)


def _orthonormal_columns(n: int, k: int, rng: np.random.RandomState) -> np.ndarray:
    """``n x k`` matrix with orthonormal columns, uniform on the Stiefel manifold."""
    q, r = np.linalg.qr(rng.standard_normal((n, k)))
    return q * np.where(np.diag(r) < 0, -1.0, 1.0)


@validate_params(
    {
        "n_samples": [Interval(Integral, 1, None, closed="left")],
        "n_features": [Interval(Integral, 1, None, closed="left")],
        "n_features_y": [Interval(Integral, 1, None, closed="left"), None],
        "coef": [Interval(Real, 0, None, closed="left"), None],
        "mi": [Interval(Real, 0, None, closed="left"), None],
        "rank": [Interval(Integral, 1, None, closed="left"), None],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def make_linear_gaussian(
    n_samples: int = 1000,
    n_features: int = 10,
    *,
    n_features_y: int | None = None,
    coef: float | None = None,
    mi: float | None = None,
    rank: int | None = None,
    random_state: int | np.random.RandomState | None = None,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Draw ``Y = A X + E`` with Gaussian ``X`` and noise, dense or low-rank ``A``.

    ``X ~ N(0, I_dx)``, ``E ~ N(0, I_dy)`` independent, and ``A`` a ``dy x dx`` matrix
    whose ``r`` non-zero singular values all equal ``s``:

    - ``rank=None``: ``A = s [I 0]`` (rectangular identity), so
      ``Y_k = s X_k + E_k`` for ``k < r = min(dx, dy)`` and the remaining columns of the
      wider side are independent. With ``dx == dy`` this is the dense task
      ``Y = s X + noise`` in which every column depends on its partner.
    - ``rank=r``: ``A = s U V^T`` with ``U`` (``dy x r``) and ``V`` (``dx x r``) random
      orthonormal columns: every column of ``Y`` depends on every column of ``X``
      through an ``r``-dimensional channel (low-rank dependence).

    The covariance of ``(X, Y)`` is ``[[I, A^T], [A, A A^T + I]]`` and
    :func:`gaussian_mi` reduces to

    .. math:: I(X; Y) = \\frac{1}{2} \\log\\det(I + A A^T) = \\frac{r}{2} \\log(1 + s^2).

    Parameters
    ----------
    n_samples : int, default=1000
        Number of ``(x, y)`` pairs.
    n_features : int, default=10
        Dimension ``dx`` of ``X``.
    n_features_y : int or None, default=None
        Dimension ``dy`` of ``Y``; ``None`` means ``n_features``.
    coef : float or None, default=None
        The singular value ``s >= 0``. ``coef=0.5`` with ``dx = dy = d`` gives
        ``d/2 log(1.25)`` nats (22.3 at ``d = 200``). Give exactly one of ``coef`` and
        ``mi``.
    mi : float or None, default=None
        Total mutual information in nats; sets ``s = sqrt(exp(2 mi / r) - 1)``.
    rank : int or None, default=None
        Rank ``r`` of ``A``, at most ``min(dx, dy)``; ``None`` for the coordinate-wise
        map described above.
    random_state : int, RandomState instance or None, default=None
        Seed or generator for reproducible draws (of the data and of ``U``, ``V``).

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
    Y : ndarray of shape (n_samples, n_features_y)
    true_mi : float
        The exact mutual information in nats.

    Raises
    ------
    ValueError
        If both or neither of ``coef`` and ``mi`` are given, ``rank`` exceeds
        ``min(dx, dy)``, or ``mi`` is too large for ``r`` in float64.

    See Also
    --------
    gaussian_mi : MI of a general Gaussian covariance.
    make_sparse_gaussians : A few informative coordinate pairs among noise.

    Examples
    --------
    >>> from sk_mlcpc.datasets import make_linear_gaussian
    >>> X, Y, true_mi = make_linear_gaussian(1000, 200, coef=0.5, random_state=0)
    >>> X.shape, Y.shape, round(true_mi, 2)
    ((1000, 200), (1000, 200), 22.31)
    >>> X, Y, true_mi = make_linear_gaussian(
    ...     500, 50, n_features_y=30, mi=4.0, rank=2, random_state=0)
    >>> X.shape, Y.shape, true_mi
    ((500, 50), (500, 30), 4.0)
    """
    if (coef is None) == (mi is None):
        raise ValueError(f"Give exactly one of coef and mi, got coef={coef!r} and mi={mi!r}.")
    n_features_y = n_features if n_features_y is None else n_features_y
    widest_rank = min(n_features, n_features_y)
    if rank is not None and rank > widest_rank:
        raise ValueError(
            f"rank={rank} exceeds min(n_features, n_features_y) = {widest_rank}: A is "
            f"{n_features_y} x {n_features}."
        )
    r = widest_rank if rank is None else rank
    if mi is not None:
        with np.errstate(over="ignore"):
            s = float(np.sqrt(np.expm1(2.0 * float(mi) / r)))
        if not np.isfinite(s):
            raise ValueError(
                f"mi={mi!r} is too large for a rank-{r} channel: the singular value overflows "
                "float64. Use a higher rank or a smaller MI."
            )
        true_mi = float(mi)
    else:
        s = float(coef)
        true_mi = 0.5 * r * float(np.log1p(s * s))
    rng = check_random_state(random_state)
    X = rng.standard_normal((n_samples, n_features))
    Y = rng.standard_normal((n_samples, n_features_y))
    if rank is None:
        Y[:, :r] += s * X[:, :r]
    else:
        U = _orthonormal_columns(n_features_y, r, rng)
        V = _orthonormal_columns(n_features, r, rng)
        Y += s * (X @ V) @ U.T
    return X, Y, true_mi


@validate_params(
    {
        "q": [Interval(Real, 0, 1, closed="both")],
        "n_levels": [Interval(Integral, 2, None, closed="left")],
    },
    prefer_skip_nested_validation=True,
)
def symmetric_channel_mi(q: float, n_levels: int) -> float:
    """Mutual information of one column of :func:`make_discrete_channel`, in nats.

    ``X`` is uniform on ``k = n_levels`` symbols and ``Y = X`` with probability ``q``,
    else an independent uniform symbol (which may equal ``X``). Then ``Y`` is uniform,
    ``P(Y = x | X = x) = a = q + (1 - q)/k``, every other symbol has
    ``b = (1 - q)/k``, and

    .. math:: I(X; Y) = \\log k + a \\log a + (k - 1)\\, b \\log b.

    Parameters
    ----------
    q : float
        Probability of copying, in ``[0, 1]``.
    n_levels : int
        Number of symbols ``k >= 2``.

    Returns
    -------
    mi : float
        In ``[0, log k]``: 0 at ``q = 0``, ``log k`` at ``q = 1``.

    See Also
    --------
    make_discrete_channel : Draws from this distribution.

    Examples
    --------
    >>> import math
    >>> from sk_mlcpc.datasets import symmetric_channel_mi
    >>> symmetric_channel_mi(0.0, 3), math.isclose(symmetric_channel_mi(1.0, 3), math.log(3))
    (0.0, True)
    >>> round(symmetric_channel_mi(0.5, 2), 6)  # binary symmetric channel, flip prob. 1/4
    0.130812
    """
    k = int(n_levels)
    a = float(q) + (1.0 - float(q)) / k
    b = (1.0 - float(q)) / k
    value = np.log(k) + special.xlogy(a, a) + (k - 1) * special.xlogy(b, b)
    return max(float(value), 0.0)


@validate_params(
    {
        "n_samples": [Interval(Integral, 1, None, closed="left")],
        "n_features": [Interval(Integral, 1, None, closed="left")],
        "n_levels": [Interval(Integral, 2, None, closed="left")],
        "q": [Interval(Real, 0, 1, closed="both")],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def make_discrete_channel(
    n_samples: int = 1000,
    n_features: int = 1,
    *,
    n_levels: int = 3,
    q: float = 0.5,
    random_state: int | np.random.RandomState | None = None,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Integer-valued pairs through a symmetric channel, with exact MI.

    Each of the ``n_features`` columns is an independent copy of: ``X`` uniform on
    ``{0, ..., n_levels - 1}``, and ``Y = X`` with probability ``q``, else a fresh
    uniform symbol. The MI is ``n_features * symmetric_channel_mi(q, n_levels)``
    (at most ``n_features * log(n_levels)``).

    Parameters
    ----------
    n_samples : int, default=1000
        Number of ``(x, y)`` pairs.
    n_features : int, default=1
        Columns of ``X`` and of ``Y``.
    n_levels : int, default=3
        Number of symbols, at least 2.
    q : float, default=0.5
        Probability that ``Y`` copies ``X``, in ``[0, 1]``.
    random_state : int, RandomState instance or None, default=None
        Seed or generator for reproducible draws.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features), float64
    Y : ndarray of shape (n_samples, n_features), float64
        Integer values ``0 .. n_levels - 1`` stored as floats.
    true_mi : float
        The exact mutual information in nats.

    See Also
    --------
    symmetric_channel_mi : The MI of one column.
    make_quantized_gaussians : Discrete columns cut from correlated Gaussians.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_mlcpc.datasets import make_discrete_channel
    >>> X, Y, true_mi = make_discrete_channel(1000, 4, n_levels=3, q=0.8, random_state=0)
    >>> X.shape, sorted(np.unique(X).tolist()), round(true_mi, 4)
    ((1000, 4), [0.0, 1.0, 2.0], 2.4541)
    """
    rng = check_random_state(random_state)
    shape = (n_samples, n_features)
    X = rng.randint(n_levels, size=shape)
    fresh = rng.randint(n_levels, size=shape)
    keep = rng.random_sample(shape) < q
    Y = np.where(keep, X, fresh)
    true_mi = n_features * symmetric_channel_mi(float(q), n_levels)
    return X.astype(np.float64), Y.astype(np.float64), float(true_mi)


def _equiprobable_cuts(n_levels: int) -> np.ndarray:
    """Standard normal quantiles ``j / k``, ``j = 0..k``: edges of ``k`` equiprobable cells."""
    return special.ndtri(np.arange(n_levels + 1) / n_levels)


# Integration range of a standard normal variable: the mass beyond 12 sd is below 1e-32.
_NORMAL_RANGE = 12.0


def _conditional_cells(x: float, rho: float, cuts: np.ndarray) -> np.ndarray:
    """``P(V in cell j | U = x)`` for all cells ``j``, ``(U, V)`` bivariate normal (rho)."""
    return np.diff(special.ndtr((cuts - rho * x) / np.sqrt(1.0 - rho * rho)))


def _quad(function, low: float, high: float, breaks: np.ndarray) -> float:
    from scipy import integrate  # scipy's integrate is only needed here

    inside = breaks[(breaks > low) & (breaks < high)]
    value, _ = integrate.quad(
        function, low, high, points=inside if inside.size else None, limit=500, epsabs=1e-13
    )
    return float(value)


@validate_params(
    {
        "rho": [Interval(Real, -1, 1, closed="neither")],
        "n_levels_x": [Interval(Integral, 2, None, closed="left"), None],
        "n_levels_y": [Interval(Integral, 2, None, closed="left"), None],
    },
    prefer_skip_nested_validation=True,
)
def quantized_gaussian_mi(
    rho: float, *, n_levels_x: int | None = None, n_levels_y: int | None = None
) -> float:
    """MI of a bivariate normal pair after cutting either side into equiprobable levels.

    ``(U, V)`` standard bivariate normal with correlation ``rho``; ``X`` is ``U`` cut
    into ``n_levels_x`` equiprobable cells at the standard normal quantiles ``j / k``
    (``None`` keeps ``U`` continuous), ``Y`` likewise from ``V``. Computed exactly up
    to quadrature error (about 1e-10):

    - both continuous: ``-1/2 log(1 - rho^2)``;
    - one side cut into ``k`` levels: ``I = log k - E_U[H(Y | U)]`` with
      ``P(Y = j | U = u) = Phi((c_{j+1} - rho u)/s) - Phi((c_j - rho u)/s)``,
      ``s = sqrt(1 - rho^2)``, integrated over ``u`` by adaptive quadrature;
    - both cut: the cell probabilities ``P_ij`` by quadrature of the same conditional
      over each cell of ``U``, then the exact sum
      ``sum_ij P_ij log(P_ij k_x k_y)``.

    By the data processing inequality the result never exceeds the continuous MI and
    grows with the number of levels.

    Parameters
    ----------
    rho : float
        Correlation, in ``(-1, 1)``.
    n_levels_x, n_levels_y : int or None, default=None
        Levels of each side (at least 2), ``None`` for a continuous side.

    Returns
    -------
    mi : float
        Mutual information of one pair in nats.

    See Also
    --------
    make_quantized_gaussians : Draws such pairs, all or some columns discrete.

    Examples
    --------
    >>> from sk_mlcpc.datasets import quantized_gaussian_mi, rho_to_mi
    >>> round(quantized_gaussian_mi(0.9), 6) == round(rho_to_mi(0.9, 1), 6)
    True
    >>> round(quantized_gaussian_mi(0.9, n_levels_x=3, n_levels_y=3), 4)
    0.4423
    >>> round(quantized_gaussian_mi(0.9, n_levels_y=3), 4)
    0.5418
    """
    rho = float(rho)
    if n_levels_x is None and n_levels_y is None:
        return float(-0.5 * np.log1p(-rho * rho))
    if rho == 0.0:
        return 0.0
    if n_levels_x is None or n_levels_y is None:
        k = n_levels_x if n_levels_y is None else n_levels_y
        cuts = _equiprobable_cuts(k)

        def weighted_entropy(u: float) -> float:
            p = _conditional_cells(u, rho, cuts)
            return float(-np.sum(special.xlogy(p, p))) * float(np.exp(-0.5 * u * u))

        # Breakpoints where the conditional law of the cut side changes fastest.
        breaks = _equiprobable_cuts(k)[1:-1] / rho
        expected = _quad(weighted_entropy, -_NORMAL_RANGE, _NORMAL_RANGE, breaks)
        expected /= np.sqrt(2.0 * np.pi)
        return max(float(np.log(k) - expected), 0.0)
    cuts_x = _equiprobable_cuts(n_levels_x)
    cuts_y = _equiprobable_cuts(n_levels_y)
    breaks = cuts_y[1:-1] / rho
    joint = np.empty((n_levels_x, n_levels_y))
    for i in range(n_levels_x):
        low = max(cuts_x[i], -_NORMAL_RANGE)
        high = min(cuts_x[i + 1], _NORMAL_RANGE)
        for j in range(n_levels_y):
            joint[i, j] = _quad(
                lambda u, j=j: _conditional_cells(u, rho, cuts_y)[j] * np.exp(-0.5 * u * u),
                low,
                high,
                breaks,
            )
    joint /= np.sqrt(2.0 * np.pi)
    joint = np.clip(joint, 0.0, None)
    joint /= joint.sum()  # quadrature leaves the total within 1e-12 of 1
    value = np.sum(special.xlogy(joint, joint * n_levels_x * n_levels_y))
    return max(float(value), 0.0)


@validate_params(
    {
        "n_samples": [Interval(Integral, 1, None, closed="left")],
        "n_features": [Interval(Integral, 1, None, closed="left")],
        "rho": [Interval(Real, -1, 1, closed="neither")],
        "n_levels": [Interval(Integral, 2, None, closed="left")],
        "n_discrete_x": [Interval(Integral, 0, None, closed="left"), None],
        "n_discrete_y": [Interval(Integral, 0, None, closed="left"), None],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def make_quantized_gaussians(
    n_samples: int = 1000,
    n_features: int = 10,
    *,
    rho: float = 0.8,
    n_levels: int = 3,
    n_discrete_x: int | None = None,
    n_discrete_y: int | None = None,
    random_state: int | np.random.RandomState | None = None,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Correlated Gaussian pairs with some or all columns cut into integer levels.

    The correlated Gaussian task (``n_features`` independent coordinate pairs of
    correlation ``rho``) with the first ``n_discrete_x`` columns of ``X`` and the first
    ``n_discrete_y`` columns of ``Y`` replaced by their level ``0 .. n_levels - 1`` among
    ``n_levels`` equiprobable cells of the standard normal. All columns discrete gives a
    discrete-valued task; some gives a mixed one (pairs discrete on both sides, on one
    side, or on neither). The pairs are independent of each other, so the MI is the sum
    of :func:`quantized_gaussian_mi` over the pairs.

    Parameters
    ----------
    n_samples : int, default=1000
        Number of ``(x, y)`` pairs.
    n_features : int, default=10
        Columns of ``X`` and of ``Y``.
    rho : float, default=0.8
        Correlation of each underlying Gaussian pair, in ``(-1, 1)``.
    n_levels : int, default=3
        Levels of every discrete column, at least 2.
    n_discrete_x, n_discrete_y : int or None, default=None
        How many leading columns of ``X`` (of ``Y``) are discrete, at most
        ``n_features``; ``None`` means all of them.
    random_state : int, RandomState instance or None, default=None
        Seed or generator for reproducible draws.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features), float64
    Y : ndarray of shape (n_samples, n_features), float64
        Discrete columns hold the integers ``0 .. n_levels - 1`` as floats.
    true_mi : float
        The mutual information in nats (exact up to quadrature error, about 1e-10 per
        pair).

    Raises
    ------
    ValueError
        If ``n_discrete_x`` or ``n_discrete_y`` exceeds ``n_features``.

    See Also
    --------
    quantized_gaussian_mi : The MI of one pair.
    make_discrete_channel : Discrete pairs through a symmetric channel.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_mlcpc.datasets import make_quantized_gaussians
    >>> X, Y, true_mi = make_quantized_gaussians(1000, 4, rho=0.9, n_levels=3, random_state=0)
    >>> sorted(np.unique(X).tolist()), round(true_mi, 4)
    ([0.0, 1.0, 2.0], 1.7694)
    >>> X, Y, true_mi = make_quantized_gaussians(
    ...     1000, 4, rho=0.9, n_discrete_x=2, n_discrete_y=1, random_state=0)
    >>> len(np.unique(X[:, 1])), len(np.unique(X[:, 2])) == 1000, round(true_mi, 4)
    (3, True, 2.6448)
    """
    n_dx = n_features if n_discrete_x is None else n_discrete_x
    n_dy = n_features if n_discrete_y is None else n_discrete_y
    if n_dx > n_features or n_dy > n_features:
        raise ValueError(
            f"n_discrete_x={n_discrete_x} and n_discrete_y={n_discrete_y} must be at most "
            f"n_features={n_features}."
        )
    rng = check_random_state(random_state)
    X = rng.standard_normal((n_samples, n_features))
    noise = rng.standard_normal((n_samples, n_features))
    Y = rho * X + np.sqrt(1.0 - rho * rho) * noise
    inner = _equiprobable_cuts(n_levels)[1:-1]
    X[:, :n_dx] = np.searchsorted(inner, X[:, :n_dx])
    Y[:, :n_dy] = np.searchsorted(inner, Y[:, :n_dy])
    both = min(n_dx, n_dy)
    one = max(n_dx, n_dy) - both
    neither = n_features - both - one
    true_mi = 0.0
    if both:
        true_mi += both * quantized_gaussian_mi(rho, n_levels_x=n_levels, n_levels_y=n_levels)
    if one:
        true_mi += one * quantized_gaussian_mi(rho, n_levels_y=n_levels)
    if neither:
        true_mi += neither * quantized_gaussian_mi(rho)
    return X, Y, float(true_mi)


@validate_params(
    {
        "Z": ["array-like"],
        "factor": [Real, "array-like"],
        "offset": [Real, "array-like"],
    },
    prefer_skip_nested_validation=True,
)
def gaussian_classes_mi(n_classes: int, separation: float, *, n_draws: int = 1_000_000) -> float:
    """I(X; y) in nats for :func:`make_gaussian_classes`, by Monte Carlo on the exact
    posterior.

    With equal class weights and class means ``separation * e_k`` (identity covariance),
    the posterior is ``p(k | x) = softmax_k(separation * x_k)``, so
    ``I(X; y) = log K + E[log p(y | X)]``; by symmetry the expectation is taken over
    class 0 alone, with ``n_draws`` draws from a fixed seed (standard error about
    ``1e-3`` nats at the default, shrinking as ``1 / sqrt(n_draws)``). Columns beyond the
    first ``K`` carry no information and do not enter.

    Parameters
    ----------
    n_classes : int
        Number of classes ``K`` (at least 2).
    separation : float
        Distance of each class mean from the origin along its own axis (>= 0).
    n_draws : int, default=1_000_000
        Monte Carlo draws.

    Returns
    -------
    mi : float
        The mutual information in nats, between 0 and ``log K``.

    Examples
    --------
    >>> from sk_mlcpc.datasets import gaussian_classes_mi
    >>> round(gaussian_classes_mi(2, 0.0), 6)
    0.0
    >>> 0.6 < gaussian_classes_mi(2, 4.0) <= float(np.log(2))
    True
    """
    if int(n_classes) != n_classes or n_classes < 2:
        raise ValueError(f"n_classes must be an integer of at least 2, got {n_classes!r}.")
    if not np.isfinite(separation) or separation < 0:
        raise ValueError(f"separation must be finite and non-negative, got {separation!r}.")
    rng = np.random.RandomState(20261207)
    total, done = 0.0, 0
    while done < n_draws:
        size = min(100_000, n_draws - done)
        logits = separation * rng.standard_normal((size, int(n_classes)))
        logits[:, 0] += separation**2  # class 0's own axis: x_0 ~ N(separation, 1)
        top = logits.max(axis=1, keepdims=True)
        log_normaliser = top[:, 0] + np.log(np.exp(logits - top).sum(axis=1))
        total += float((logits[:, 0] - log_normaliser).sum())
        done += size
    return max(0.0, float(np.log(n_classes) + total / n_draws))


def make_gaussian_classes(
    n_samples: int,
    n_features: int,
    n_classes: int = 3,
    *,
    separation: float = 2.0,
    n_draws: int = 1_000_000,
    random_state=None,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Gaussian classes with known posteriors: ``X | y = k ~ N(separation * e_k, I)``.

    Classes are equally likely; class ``k``'s mean lies on axis ``k``, so the first
    ``n_classes`` columns carry the information and the rest are noise. The true
    ``I(X; y)`` comes from :func:`gaussian_classes_mi` (Monte Carlo on the exact
    posterior).

    Parameters
    ----------
    n_samples : int
        Rows.
    n_features : int
        Columns of ``X`` (at least ``n_classes``).
    n_classes : int, default=3
        Number of classes.
    separation : float, default=2.0
        Distance of each class mean from the origin.
    n_draws : int, default=1_000_000
        Monte Carlo draws for the true MI.
    random_state : int, RandomState instance or None, default=None
        Seed of the rows.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,), int
        Class labels ``0 .. n_classes - 1``.
    mi : float
        ``I(X; y)`` in nats.

    Examples
    --------
    >>> from sk_mlcpc.datasets import make_gaussian_classes
    >>> X, y, mi = make_gaussian_classes(500, 4, 3, separation=2.0, random_state=0)
    >>> X.shape, sorted(set(y.tolist())), bool(0 < mi < np.log(3))
    ((500, 4), [0, 1, 2], True)
    """
    if int(n_features) != n_features or n_features < n_classes:
        raise ValueError(
            f"n_features must be an integer of at least n_classes={n_classes}, got {n_features!r}."
        )
    mi = gaussian_classes_mi(n_classes, separation, n_draws=n_draws)
    rng = check_random_state(random_state)
    y = rng.randint(0, int(n_classes), size=int(n_samples))
    X = rng.standard_normal((int(n_samples), int(n_features)))
    X[np.arange(len(y)), y] += separation
    return X, y, mi


def rescale_units(
    Z: np.ndarray, factor: float | np.ndarray, *, offset: float | np.ndarray = 0.0
) -> np.ndarray:
    """Change the units of one side: ``Z * factor + offset``, which leaves the MI unchanged.

    An affine map with non-zero factors is invertible column by column, so
    ``I(X; Y)`` is the same in any units; the task is to see whether an estimator is.
    ``factor`` may differ per column (columns measured in unrelated units, say from
    ``1e-12`` to ``1e12``).

    Parameters
    ----------
    Z : array-like of shape (n_samples, n_features)
        Samples of one side.
    factor : float or array-like of shape (n_features,)
        Non-zero, finite unit factor(s).
    offset : float or array-like of shape (n_features,), default=0.0
        Finite offset(s), added after scaling.

    Returns
    -------
    Z_new : ndarray of shape (n_samples, n_features), float64

    Raises
    ------
    ValueError
        If ``Z`` is not 2-D and finite, a factor is zero or not finite, the shapes do
        not match, or the result overflows float64.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_mlcpc.datasets import rescale_units
    >>> rescale_units(np.array([[1.0, 2.0]]), 1e-12)
    array([[1.e-12, 2.e-12]])
    >>> rescale_units(np.array([[1.0, 2.0]]), [1e-12, 1e12], offset=[0.0, 5.0])
    array([[1.e-12, 2.e+12]])
    """
    Z = np.asarray(Z, dtype=np.float64)
    if Z.ndim != 2:
        raise ValueError(f"Z must be 2-D (n_samples, n_features), got shape {Z.shape}.")
    if not np.all(np.isfinite(Z)):
        raise ValueError("Z must be finite: it contains NaN or infinity.")
    scale = np.asarray(factor, dtype=np.float64)
    shift = np.asarray(offset, dtype=np.float64)
    for name, value in (("factor", scale), ("offset", shift)):
        if value.ndim > 1 or (value.ndim == 1 and value.shape[0] != Z.shape[1]):
            raise ValueError(
                f"{name} must be a number or a 1-D array of {Z.shape[1]} values (one per "
                f"column), got shape {value.shape}."
            )
        if not np.all(np.isfinite(value)):
            raise ValueError(f"{name} must be finite, got {value!r}.")
    if np.any(scale == 0):
        raise ValueError("factor must be non-zero: a zero factor destroys the column (MI 0).")
    with np.errstate(over="ignore"):
        out = Z * scale + shift
    if not np.all(np.isfinite(out)):
        raise ValueError("rescale_units overflows float64 on this data; use smaller factors.")
    return out


# ---------------------------------------------------------------------------------------
# Conditional mutual information I(X; Y | Z) with known truth


def _unit_columns(n_rows: int, n_columns: int, rng: np.random.RandomState) -> np.ndarray:
    """An ``n_rows x n_columns`` Gaussian matrix with unit-norm columns, so that ``Z @ W``
    has unit-variance columns for standard normal ``Z``."""
    weights = rng.standard_normal((n_rows, n_columns))
    return weights / np.linalg.norm(weights, axis=0, keepdims=True)


@validate_params(
    {
        "n_samples": [Interval(Integral, 1, None, closed="left")],
        "n_features": [Interval(Integral, 1, None, closed="left")],
        "n_features_z": [Interval(Integral, 1, None, closed="left")],
        "cmi": [Interval(Real, 0, None, closed="left")],
        "z_strength": [Interval(Real, 0, None, closed="left")],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def make_conditional_gaussians(
    n_samples: int = 2000,
    n_features: int = 1,
    n_features_z: int = 1,
    *,
    cmi: float = 0.5,
    z_strength: float = 1.0,
    random_state: int | np.random.RandomState | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Jointly Gaussian ``X``, ``Y``, ``Z`` with a chosen conditional MI ``I(X; Y | Z)``.

    ``Z ~ N(0, I_k)`` drives both sides through the same loadings ``W`` (a ``k x d``
    Gaussian matrix with unit-norm columns, drawn from ``random_state``, so every column
    of ``Z`` shares the dependence), and ``(U, V)`` are ``d`` coordinate pairs of
    correlation ``rho``, independent of ``Z``:

    .. math:: X = s\\, Z W + U, \\qquad Y = s\\, Z W + V.

    Given ``Z``, ``X`` and ``Y`` are ``U`` and ``V`` shifted by the same known amount, so
    ``I(X; Y | Z) = I(U; V) = -d/2 log(1 - rho^2)``, which ``rho`` is chosen to make
    ``cmi``. The plain ``I(X; Y)`` is larger (``Z`` adds common variation), and
    ``I(Z; Y) > 0``: conditioning matters.

    Parameters
    ----------
    n_samples : int, default=2000
        Number of rows.
    n_features : int, default=1
        Dimension ``d`` of both ``X`` and ``Y``.
    n_features_z : int, default=1
        Dimension ``k`` of the conditioning set ``Z``.
    cmi : float, default=0.5
        ``I(X; Y | Z)`` in nats.
    z_strength : float, default=1.0
        The scale ``s`` of ``Z``'s part of each column of ``X`` and ``Y`` (0: ``Z`` is
        independent of both, and the conditional MI equals the plain MI).
    random_state : int, RandomState instance or None, default=None
        Seed or generator for the loadings and the draws.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
    Y : ndarray of shape (n_samples, n_features)
    Z : ndarray of shape (n_samples, n_features_z)
    true_cmi : float
        The exact conditional mutual information in nats (equal to ``cmi``).

    See Also
    --------
    make_common_cause : ``Z`` explains all the dependence (conditional MI 0).
    make_xor_given_z : Dependence visible only given ``Z``.
    gaussian_mi : The MI of any jointly Gaussian pair (``I((X, Z); Y) - I(Z; Y)`` gives
        the conditional MI by the chain rule).

    Examples
    --------
    >>> from sk_mlcpc.datasets import make_conditional_gaussians
    >>> X, Y, Z, true_cmi = make_conditional_gaussians(
    ...     1000, 2, n_features_z=5, cmi=0.8, random_state=0
    ... )
    >>> X.shape, Y.shape, Z.shape, true_cmi
    ((1000, 2), (1000, 2), (1000, 5), 0.8)
    """
    rng = check_random_state(random_state)
    rho = mi_to_rho(float(cmi), n_features)
    weights = _unit_columns(n_features_z, n_features, rng)
    Z = rng.standard_normal((n_samples, n_features_z))
    U = rng.standard_normal((n_samples, n_features))
    V = rho * U + np.sqrt(1.0 - rho**2) * rng.standard_normal((n_samples, n_features))
    shared = z_strength * (Z @ weights)
    return shared + U, shared + V, Z, float(cmi)


@validate_params(
    {
        "n_samples": [Interval(Integral, 1, None, closed="left")],
        "n_features": [Interval(Integral, 1, None, closed="left")],
        "n_features_z": [Interval(Integral, 1, None, closed="left")],
        "noise": [Interval(Real, 0, None, closed="neither")],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def make_common_cause(
    n_samples: int = 2000,
    n_features: int = 1,
    n_features_z: int = 1,
    *,
    noise: float = 0.5,
    random_state: int | np.random.RandomState | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """``X`` and ``Y`` both noisy functions of ``Z``: ``I(X; Y | Z) = 0`` while ``I(X; Y) > 0``.

    With ``Z ~ N(0, I_k)``, ``S = Z W`` (``W`` a ``k x d`` Gaussian matrix with unit-norm
    columns, so every column of ``Z`` takes part) and independent standard normal noise
    ``E``, ``E'``:

    .. math:: X = S + \\sigma E, \\qquad Y = 2 \\tanh(S) + \\sigma E'.

    ``X`` and ``Y`` are functions of ``Z`` and of independent noises, so they are
    independent given ``Z``: the conditional MI is exactly 0, whatever the dimensions.
    Unconditionally they share ``S``, so ``I(X; Y)`` is well above 0 (not in closed form,
    ``Y`` being a non-linear function of ``S``): an estimator that does not condition
    properly reads a positive value.

    Parameters
    ----------
    n_samples : int, default=2000
        Number of rows.
    n_features : int, default=1
        Dimension ``d`` of both ``X`` and ``Y``.
    n_features_z : int, default=1
        Dimension ``k`` of ``Z``.
    noise : float, default=0.5
        The noise scale ``sigma``.
    random_state : int, RandomState instance or None, default=None
        Seed or generator for the loadings and the draws.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
    Y : ndarray of shape (n_samples, n_features)
    Z : ndarray of shape (n_samples, n_features_z)
    true_cmi : float
        The exact conditional mutual information, 0.0.

    See Also
    --------
    make_conditional_gaussians : A chosen conditional MI, in closed form.
    make_xor_given_z : The opposite case: dependence visible only given ``Z``.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_mlcpc.datasets import make_common_cause
    >>> X, Y, Z, true_cmi = make_common_cause(5000, random_state=0)
    >>> true_cmi, bool(np.corrcoef(X[:, 0], Y[:, 0])[0, 1] > 0.5)
    (0.0, True)
    """
    rng = check_random_state(random_state)
    weights = _unit_columns(n_features_z, n_features, rng)
    Z = rng.standard_normal((n_samples, n_features_z))
    shared = Z @ weights
    X = shared + noise * rng.standard_normal((n_samples, n_features))
    Y = 2.0 * np.tanh(shared) + noise * rng.standard_normal((n_samples, n_features))
    return X, Y, Z, 0.0


def binary_entropy(p: float) -> float:
    """Entropy of a Bernoulli(``p``) variable in nats (0 at ``p`` in {0, 1}).

    Parameters
    ----------
    p : float
        Probability, in ``[0, 1]``.

    Returns
    -------
    entropy : float
        ``-p log p - (1 - p) log(1 - p)``, nats.

    Examples
    --------
    >>> import math
    >>> from sk_mlcpc.datasets import binary_entropy
    >>> binary_entropy(0.5) == math.log(2), binary_entropy(0.0)
    (True, 0.0)
    """
    p = float(p)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be a probability in [0, 1], got {p!r}.")
    return float(special.entr(p) + special.entr(1.0 - p))


@validate_params(
    {
        "n_samples": [Interval(Integral, 1, None, closed="left")],
        "n_features_z": [Interval(Integral, 1, None, closed="left")],
        "flip": [Interval(Real, 0, 0.5, closed="both")],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def make_xor_given_z(
    n_samples: int = 2000,
    n_features_z: int = 1,
    *,
    flip: float = 0.1,
    random_state: int | np.random.RandomState | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """XOR-type dependence: ``I(X; Y) = 0`` and ``I(Z; Y) = 0``, but ``I(X; Y | Z) > 0``.

    Signs ``s_x``, ``s_z`` are independent and uniform on ``{-1, +1}``, and
    ``s_y = s_x s_z``, flipped with probability ``flip``. Each variable is its sign times
    the absolute value of its own independent standard normal (continuous columns, no
    ties):

    .. math:: X = s_x |G_1|, \\quad Z_1 = s_z |G_2|, \\quad Y = s_y |G_3|.

    The extra columns ``Z_2 .. Z_k`` are independent standard normal nuisance. ``s_y`` is
    uniform and independent of ``s_x`` alone and of ``Z`` alone, so ``I(X; Y) = 0`` and
    ``I(Z; Y) = 0`` exactly; given ``Z`` it is ``s_x`` times a known sign up to the flip,
    and the magnitudes carry nothing, so

    .. math:: I(X; Y \\mid Z) = \\log 2 - H_b(\\text{flip}).

    Parameters
    ----------
    n_samples : int, default=2000
        Number of rows.
    n_features_z : int, default=1
        Columns of ``Z``: the partner ``Z_1`` and ``n_features_z - 1`` nuisance columns.
    flip : float, default=0.1
        Probability in ``[0, 0.5]`` that the sign of ``Y`` is flipped (0.5: no dependence).
    random_state : int, RandomState instance or None, default=None
        Seed or generator for the draws.

    Returns
    -------
    X : ndarray of shape (n_samples, 1)
    Y : ndarray of shape (n_samples, 1)
    Z : ndarray of shape (n_samples, n_features_z)
    true_cmi : float
        ``log 2 - H_b(flip)`` nats (0.368 at ``flip=0.1``).

    See Also
    --------
    binary_entropy : ``H_b``.
    make_common_cause : The opposite case: ``Z`` explains all the dependence.

    Examples
    --------
    >>> from sk_mlcpc.datasets import make_xor_given_z
    >>> X, Y, Z, true_cmi = make_xor_given_z(1000, n_features_z=3, random_state=0)
    >>> X.shape, Y.shape, Z.shape, round(true_cmi, 4)
    ((1000, 1), (1000, 1), (1000, 3), 0.3681)
    """
    rng = check_random_state(random_state)
    sign_x = rng.choice([-1.0, 1.0], size=n_samples)
    sign_z = rng.choice([-1.0, 1.0], size=n_samples)
    flipped = rng.random_sample(n_samples) < flip
    sign_y = sign_x * sign_z * np.where(flipped, -1.0, 1.0)
    magnitudes = np.abs(rng.standard_normal((n_samples, 3)))
    X = (sign_x * magnitudes[:, 0]).reshape(-1, 1)
    Y = (sign_y * magnitudes[:, 2]).reshape(-1, 1)
    Z = np.empty((n_samples, n_features_z))
    Z[:, 0] = sign_z * magnitudes[:, 1]
    Z[:, 1:] = rng.standard_normal((n_samples, n_features_z - 1))
    return X, Y, Z, float(np.log(2.0) - binary_entropy(flip))
