"""Samplers with a known conditional MI I(X; Y | Z): closed forms checked by Monte Carlo."""

import math

import numpy as np
import pytest
from scipy import special

from sk_mlcpc.datasets import (
    binary_entropy,
    gaussian_mi,
    make_common_cause,
    make_conditional_gaussians,
    make_xor_given_z,
)


def _gaussian_cmi(X, Y, Z):
    """I(X; Y | Z) of the Gaussian with the sample covariance, by the chain rule."""
    joint = np.cov(np.hstack([X, Z, Y]), rowvar=False)
    d, k = X.shape[1], Z.shape[1]
    with_z = gaussian_mi(joint, d + k)
    z_only = gaussian_mi(joint[d:, d:], k)
    return with_z - z_only


@pytest.mark.parametrize(("d", "k", "cmi"), [(1, 1, 0.5), (2, 5, 1.0), (1, 20, 0.3), (3, 2, 0.0)])
def test_conditional_gaussians_closed_form(d, k, cmi):
    X, Y, Z, true_cmi = make_conditional_gaussians(200_000, d, k, cmi=cmi, random_state=0)
    assert (X.shape, Y.shape, Z.shape, true_cmi) == ((200_000, d), (200_000, d), (200_000, k), cmi)
    # Sample-covariance CMI: its error is about (d + k + d) / n nats here.
    assert _gaussian_cmi(X, Y, Z) == pytest.approx(cmi, abs=0.01)
    # Z adds shared variation: the plain MI is larger, and Z informs Y.
    cov = np.cov(np.hstack([X, Y]), rowvar=False)
    assert gaussian_mi(cov, d) > cmi + 0.1
    assert gaussian_mi(np.cov(np.hstack([Z, Y]), rowvar=False), k) > 0.1


def test_conditional_gaussians_without_z_strength_is_plain_mi():
    X, Y, Z, _ = make_conditional_gaussians(200_000, 2, 3, cmi=0.7, z_strength=0.0, random_state=1)
    assert gaussian_mi(np.cov(np.hstack([X, Y]), rowvar=False), 2) == pytest.approx(0.7, abs=0.01)
    assert gaussian_mi(np.cov(np.hstack([Z, Y]), rowvar=False), 3) < 0.001


def test_conditional_gaussians_reproducible_and_validated():
    first = make_conditional_gaussians(100, 2, 3, random_state=5)
    second = make_conditional_gaussians(100, 2, 3, random_state=5)
    for a, b in zip(first[:3], second[:3]):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="cmi"):
        make_conditional_gaussians(100, cmi=-1.0)
    with pytest.raises(ValueError, match="n_features_z"):
        make_conditional_gaussians(100, n_features_z=0)


@pytest.mark.parametrize(("d", "k"), [(1, 1), (2, 5), (1, 20)])
def test_common_cause_is_conditionally_independent(d, k):
    n = 100_000
    X, Y, Z, true_cmi = make_common_cause(n, d, k, random_state=0)
    assert true_cmi == 0.0 and Z.shape == (n, k)
    # X is linear in Z: its residual on Z is the noise, independent of (Z, Y).
    design = np.hstack([Z, np.ones((n, 1))])
    residual = X - design @ np.linalg.lstsq(design, X, rcond=None)[0]
    assert residual.std() == pytest.approx(0.5, rel=0.02)
    for j in range(d):
        for feature in (Y[:, j], Y[:, j] ** 2, np.tanh(Y[:, j])):
            assert abs(np.corrcoef(residual[:, j], feature)[0, 1]) < 0.02
        # ... while X and Y are clearly dependent without Z.
        assert np.corrcoef(X[:, j], Y[:, j])[0, 1] > 0.5


def test_binary_entropy():
    assert binary_entropy(0.5) == pytest.approx(math.log(2))
    assert binary_entropy(0.0) == binary_entropy(1.0) == 0.0
    assert binary_entropy(0.1) == pytest.approx(-(0.1 * math.log(0.1) + 0.9 * math.log(0.9)))
    with pytest.raises(ValueError, match="probability"):
        binary_entropy(1.5)


def _plug_in_cmi(a, b, c):
    """Plug-in I(A; B | C) of discrete samples, nats."""
    value = 0.0
    for c_value in np.unique(c):
        in_c = c == c_value
        p_c = in_c.mean()
        joint = np.array(
            [[np.mean((a[in_c] == i) & (b[in_c] == j)) for j in (-1, 1)] for i in (-1, 1)]
        )
        outer = joint.sum(1, keepdims=True) * joint.sum(0, keepdims=True)
        value += p_c * np.sum(special.xlogy(joint, joint) - special.xlogy(joint, outer))
    return value


@pytest.mark.parametrize(("k", "flip"), [(1, 0.1), (5, 0.0), (20, 0.25)])
def test_xor_given_z_closed_form(k, flip):
    n = 200_000
    X, Y, Z, true_cmi = make_xor_given_z(n, k, flip=flip, random_state=0)
    assert true_cmi == pytest.approx(math.log(2) - binary_entropy(flip))
    assert X.shape == Y.shape == (n, 1) and Z.shape == (n, k)
    sx, sy, sz = np.sign(X[:, 0]), np.sign(Y[:, 0]), np.sign(Z[:, 0])
    # The information is in the signs; the magnitudes are independent half-normals.
    assert _plug_in_cmi(sx, sy, sz) == pytest.approx(true_cmi, abs=0.005)
    # Pairwise independent: Y's sign is a fair coin given X's sign alone or Z's alone.
    assert np.mean(sx == sy) == pytest.approx(0.5, abs=0.005)
    assert np.mean(sz == sy) == pytest.approx(0.5, abs=0.005)
    assert np.mean(sy == sx * sz) == pytest.approx(1 - flip, abs=0.005)
    assert abs(np.corrcoef(np.abs(X[:, 0]), np.abs(Y[:, 0]))[0, 1]) < 0.01
    if k > 1:  # nuisance columns: standard normal, unrelated to Y
        assert np.abs(Z[:, 1:].std(0) - 1).max() < 0.02
        assert np.abs(np.corrcoef(np.hstack([Z[:, 1:], Y]), rowvar=False)[-1, :-1]).max() < 0.02


def test_xor_given_z_without_dependence():
    *_, true_cmi = make_xor_given_z(1000, flip=0.5, random_state=0)
    assert true_cmi == pytest.approx(0.0, abs=1e-15)
    with pytest.raises(ValueError, match="flip"):
        make_xor_given_z(100, flip=0.7)
