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
    "gaussian_log_density_ratio",
    "invertible_transform",
    "make_correlated_gaussians",
    "make_frequency_sequences",
    "make_mi_suite",
    "make_mi_task",
    "make_rules_classification",
    "make_sparse_gaussians",
    "make_student_t",
    "make_switching_ar",
    "mi_staircase",
    "mi_to_rho",
    "rho_to_mi",
    "student_t_mi",
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
