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
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral, Real

import numpy as np
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions, validate_params

__all__ = [
    "gaussian_log_density_ratio",
    "make_correlated_gaussians",
    "make_frequency_sequences",
    "make_switching_ar",
    "mi_staircase",
    "mi_to_rho",
    "rho_to_mi",
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
