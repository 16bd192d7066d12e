"""The sequence generators of sk_mlcpc.datasets: shapes, labels and the structure they claim."""

import numpy as np
import pytest

from sk_mlcpc.datasets import make_frequency_sequences, make_switching_ar


def _peak_frequency(X3d: np.ndarray) -> np.ndarray:
    """Dominant frequency (cycles per step) of each sequence and channel, ``(n, C)``."""
    spectrum = np.abs(np.fft.rfft(X3d, axis=1))
    spectrum[:, 0] = 0.0
    return np.fft.rfftfreq(X3d.shape[1])[spectrum.argmax(axis=1)]


# ---------------------------------------------------------------------------------------
# make_frequency_sequences
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("n_channels", [1, 3])
def test_frequency_shapes_and_balanced_labels(n_channels):
    X, y = make_frequency_sequences(101, 50, n_classes=4, n_channels=n_channels, random_state=0)
    assert X.shape == (101, 50 * n_channels)
    assert X.dtype == np.float64
    assert y.shape == (101,) and y.dtype == np.int64
    counts = np.bincount(y)
    assert counts.tolist() == [26, 25, 25, 25]


def test_frequency_is_reproducible_and_seeds_differ():
    first = make_frequency_sequences(20, 30, random_state=4)
    second = make_frequency_sequences(20, 30, random_state=4)
    other = make_frequency_sequences(20, 30, random_state=5)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    assert not np.allclose(first[0], other[0])


def test_frequency_of_each_class_is_in_the_signal():
    frequencies = [1 / 32, 1 / 16, 1 / 8]
    X, y = make_frequency_sequences(
        90, 256, frequencies=frequencies, n_channels=2, noise=0.0, random_state=0
    )
    peaks = _peak_frequency(X.reshape(90, 256, 2))  # time-major layout
    expected = np.asarray(frequencies)[y]
    resolution = 1 / 256
    # The +-5% jitter plus one frequency bin.
    assert np.all(np.abs(peaks - expected[:, None]) <= 0.05 * expected[:, None] + resolution)


def test_frequency_class_is_invisible_to_linear_functions_of_the_samples():
    # Random phases: each class has mean ~0 at every time step.
    X, y = make_frequency_sequences(4000, 40, n_classes=2, noise=0.0, random_state=0)
    for label in (0, 1):
        assert np.abs(X[y == label].mean(axis=0)).max() < 0.1


def test_frequency_noise_level():
    X, _ = make_frequency_sequences(2000, 64, noise=2.0, random_state=0)
    X_clean, _ = make_frequency_sequences(2000, 64, noise=0.0, random_state=0)
    np.testing.assert_allclose((X - X_clean).std(), 2.0, rtol=0.02)


@pytest.mark.parametrize("frequencies", [[0.0, 0.1], [0.1, 0.5], [], [[0.1]]])
def test_frequency_invalid_frequencies_raise(frequencies):
    with pytest.raises(ValueError, match="frequencies"):
        make_frequency_sequences(10, 20, frequencies=frequencies)


def test_frequency_single_class():
    X, y = make_frequency_sequences(10, 20, n_classes=1, random_state=0)
    assert X.shape == (10, 20) and set(y.tolist()) == {0}


@pytest.mark.parametrize(("param", "value"), [("n_timesteps", 1), ("noise", -1.0)])
def test_frequency_invalid_parameters_raise(param, value):
    with pytest.raises(ValueError, match=param):
        make_frequency_sequences(10, **{"n_timesteps": 20, param: value})


# ---------------------------------------------------------------------------------------
# make_switching_ar
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("n_channels", [1, 2])
def test_switching_ar_shapes(n_channels):
    X, y, states = make_switching_ar(
        30, 70, n_channels=n_channels, return_states=True, random_state=0
    )
    assert X.shape == (30, 70 * n_channels)
    assert y.shape == (30,) and y.dtype == np.int64
    assert states.shape == (30, 70) and states.dtype == np.int64
    np.testing.assert_array_equal(states[:, -1], y)
    assert set(states.ravel().tolist()) <= {0, 1, 2}
    X_only, y_only = make_switching_ar(30, 70, n_channels=n_channels, random_state=0)
    np.testing.assert_array_equal(X_only, X)
    np.testing.assert_array_equal(y_only, y)


def test_switching_ar_seeds_differ():
    first, _ = make_switching_ar(20, 40, random_state=0)
    second, _ = make_switching_ar(20, 40, random_state=1)
    assert not np.allclose(first, second)


def test_switching_ar_switch_rate():
    _, _, states = make_switching_ar(
        400, 200, switch_prob=0.05, n_regimes=4, return_states=True, random_state=0
    )
    switches = states[:, 1:] != states[:, :-1]
    assert switches.mean() == pytest.approx(0.05, abs=0.005)
    # Regimes are visited evenly.
    np.testing.assert_allclose(np.bincount(states.ravel()) / states.size, 0.25, atol=0.03)


def test_switching_ar_extreme_switch_probabilities():
    _, _, constant = make_switching_ar(50, 60, switch_prob=0.0, return_states=True, random_state=0)
    assert np.all(constant == constant[:, :1])
    _, _, always = make_switching_ar(50, 60, switch_prob=1.0, return_states=True, random_state=0)
    assert np.all(always[:, 1:] != always[:, :-1])


def test_switching_ar_regimes_differ_in_spectrum_not_power():
    X, y = make_switching_ar(600, 256, n_regimes=3, switch_prob=0.0, random_state=0)
    # Unit stationary variance in every regime.
    for regime in range(3):
        assert X[y == regime].std() == pytest.approx(1.0, abs=0.08)
    # Resonances at 1/32, 1/sqrt(32 * 6) and 1/6 cycles per step, in increasing order.
    expected = np.geomspace(1 / 32, 1 / 6, 3)
    peaks = _peak_frequency(X.reshape(600, 256, 1))[:, 0]
    medians = [np.median(peaks[y == regime]) for regime in range(3)]
    np.testing.assert_allclose(medians, expected, rtol=0.15)


def test_switching_ar_recovers_the_autoregression():
    # Least squares on one-regime sequences recovers x_t = a1 x_{t-1} + a2 x_{t-2} + e_t.
    X, y = make_switching_ar(300, 200, n_regimes=2, switch_prob=0.0, random_state=0)
    radius = 0.95
    for regime, omega in enumerate(2 * np.pi * np.geomspace(1 / 32, 1 / 6, 2)):
        rows = X[y == regime]
        design = np.stack([rows[:, 1:-1].ravel(), rows[:, :-2].ravel()], axis=1)
        coef, *_ = np.linalg.lstsq(design, rows[:, 2:].ravel(), rcond=None)
        np.testing.assert_allclose(coef, [2 * radius * np.cos(omega), -(radius**2)], atol=0.02)


def test_switching_ar_single_regime():
    X, y = make_switching_ar(10, 30, n_regimes=1, switch_prob=0.5, random_state=0)
    assert X.shape == (10, 30) and set(y.tolist()) == {0}


@pytest.mark.parametrize(
    ("param", "value"), [("switch_prob", 1.5), ("pole_radius", 1.0), ("n_regimes", 0)]
)
def test_switching_ar_invalid_parameters_raise(param, value):
    with pytest.raises(ValueError, match=param):
        make_switching_ar(10, 20, **{param: value})
