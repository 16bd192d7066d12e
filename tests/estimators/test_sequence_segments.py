"""Positional features of ContrastivePredictiveCoding: latents averaged over time segments.

``pooling="multiscale"`` ends with the window latents averaged over ``n_segments_`` equal
stretches of each series' windows (:func:`sk_mlcpc._nn.temporal.segment_means`), so that
a probe sees *when* a pattern occurs. Tiny data and few epochs: behaviour, not accuracy.
"""

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from sk_mlcpc import ContrastivePredictiveCoding, ModelFileError
from sk_mlcpc._nn.temporal import masked_mean, segment_means
from sk_mlcpc.datasets import make_frequency_sequences
from tests.estimators._sequence_helpers import fast_cpc, rewrite_manifest


def _three_d(n=60, n_timepoints=36, seed=0):
    X, _ = make_frequency_sequences(n, n_timepoints, random_state=seed)
    return np.ascontiguousarray(X[:, None, :])


# ---------------------------------------------------------------------------------------
# segment_means


@pytest.mark.parametrize("length", [1, 2, 5, 9, 12, 17])
@pytest.mark.parametrize("n_segments", [1, 3, 4, 9, 12])
def test_segment_means_are_adaptive_average_pooling_of_the_real_times(length, n_segments):
    torch.manual_seed(length * 100 + n_segments)
    x = torch.randn(2, 3, 20)
    lengths = torch.tensor([length, 20])
    out = segment_means(x, lengths, n_segments)
    assert out.shape == (2, 3 * n_segments)
    for row, real in enumerate((length, 20)):
        expected = F.adaptive_avg_pool1d(x[row : row + 1, :, :real], n_segments).reshape(-1)
        torch.testing.assert_close(out[row], expected)


def test_segment_means_never_read_the_padding():
    torch.manual_seed(0)
    x = torch.randn(4, 2, 15)
    lengths = torch.tensor([15, 7, 3, 10])
    changed = x.clone()
    for row, length in enumerate(lengths.tolist()):
        changed[row, :, length:] = 1e6
    torch.testing.assert_close(segment_means(changed, lengths, 5), segment_means(x, lengths, 5))


def test_segment_means_limits():
    torch.manual_seed(1)
    x = torch.randn(3, 4, 12)
    full = torch.full((3,), 12)
    # One segment per time step is the series itself; one segment is the mean.
    torch.testing.assert_close(segment_means(x, full, 12), x.reshape(3, -1))
    torch.testing.assert_close(segment_means(x, full, 1), masked_mean(x, full))
    # Equal segments (S divides L) average to the global mean.
    torch.testing.assert_close(
        segment_means(x, full, 4).reshape(3, 4, 4).mean(-1), masked_mean(x, full)
    )
    # A constant series gives the constant in every segment.
    constant = torch.full((1, 2, 9), 2.5)
    torch.testing.assert_close(
        segment_means(constant, torch.tensor([9]), 4), torch.full((1, 8), 2.5)
    )


def test_segment_means_keep_where_a_pattern_occurs():
    # The same bump early or late: equal global means, different segment means.
    early, late = torch.zeros(1, 1, 12), torch.zeros(1, 1, 12)
    early[..., 1], late[..., 10] = 1.0, 1.0
    full = torch.tensor([12])
    torch.testing.assert_close(masked_mean(early, full), masked_mean(late, full))
    assert segment_means(early, full, 3).tolist() == [[0.25, 0.0, 0.0]]
    assert segment_means(late, full, 3).tolist() == [[0.0, 0.0, 0.25]]


def test_segment_means_refuse_no_segments():
    with pytest.raises(ValueError, match="n_segments must be a positive integer, got 0"):
        segment_means(torch.zeros(1, 1, 4), torch.tensor([4]), 0)


# ---------------------------------------------------------------------------------------
# The estimator


def test_auto_segments_are_the_windows_at_most_12():
    X3 = _three_d(n_timepoints=36)
    est = fast_cpc().fit(X3)  # window="auto": 9 windows
    assert est.n_segments_ == est.n_windows_ == 9
    many = fast_cpc(window=4, stride=2).fit(X3)  # 17 windows: capped
    assert many.n_windows_ == 17 and many.n_segments_ == 12
    assert fast_cpc(n_segments=5).fit(X3).n_segments_ == 5


@pytest.mark.parametrize("n_segments", [0, 3, "auto"])
def test_output_width_follows_n_segments(n_segments):
    X3 = _three_d()
    est = fast_cpc(n_segments=n_segments).fit(X3)
    module = est.module_
    without = module.feature_width("multiscale", 0)
    Z = est.transform(X3)
    assert Z.shape == (60, without + est.n_segments_ * est.latent_dim)
    assert len(est.get_feature_names_out()) == Z.shape[1]
    # The positional part comes last: the position-free columns are unchanged.
    x, lengths, _ = est._validated_series(X3, min_samples=1, scoring=False)
    with torch.no_grad():
        position_free = module.features(x, lengths, "multiscale", 0).numpy()
        latents = module.latents(x).transpose(1, 2)  # (n, latent_dim, windows)
    np.testing.assert_array_equal(Z[:, :without], position_free)
    if est.n_segments_:
        windows = torch.full((60,), est.n_windows_)
        np.testing.assert_allclose(
            Z[:, without:], segment_means(latents, windows, est.n_segments_).numpy(), atol=1e-6
        )


@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_context_poolings_ignore_n_segments(pooling):
    X3 = _three_d()
    assert fast_cpc(pooling=pooling, n_segments=4).fit(X3).transform(X3).shape == (60, 8)


def test_segments_of_unequal_series_come_from_their_own_windows():
    X3 = _three_d(n_timepoints=48)
    cases = [X3[i, :, : 36 + i % 13].copy() for i in range(60)]
    est = fast_cpc().fit(cases)
    together = est.transform(cases)
    for index in (0, 7, 12):  # 36, 43 and 48 time points
        alone = est.transform([cases[index]])
        np.testing.assert_allclose(alone[0], together[index], rtol=1e-5, atol=1e-5)
    # Longer and shorter series than the training ones get the same width.
    assert est.transform([X3[0], X3[1, :, : est.window_]]).shape == (2, together.shape[1])


@pytest.mark.parametrize("bad", [-1, 1.5, "all"])
def test_invalid_n_segments_raises(bad):
    with pytest.raises(ValueError, match="n_segments"):
        fast_cpc(n_segments=bad).fit(_three_d())


def test_save_load_keeps_the_segments(tmp_path):
    X3 = _three_d()
    est = fast_cpc(n_segments=4).fit(X3)
    est.save(tmp_path / "cpc.skmlcpc")
    loaded = ContrastivePredictiveCoding.load(tmp_path / "cpc.skmlcpc", device="cpu")
    assert loaded.n_segments_ == 4
    np.testing.assert_array_equal(loaded.transform(X3), est.transform(X3))


def test_files_from_before_n_segments_load_without_positional_features(tmp_path):
    X3 = _three_d()
    est = fast_cpc(n_segments=0).fit(X3)
    est.save(tmp_path / "new.skmlcpc")

    def before_the_parameter(manifest):
        del manifest["params"]["n_segments"]
        del manifest["fitted"]["n_segments_"]

    rewrite_manifest(tmp_path / "new.skmlcpc", tmp_path / "old.skmlcpc", before_the_parameter)
    old = ContrastivePredictiveCoding.load(tmp_path / "old.skmlcpc", device="cpu")
    assert (old.n_segments, old.n_segments_) == (0, 0)
    np.testing.assert_array_equal(old.transform(X3), est.transform(X3))

    def value_lost(manifest):
        del manifest["fitted"]["n_segments_"]

    rewrite_manifest(tmp_path / "new.skmlcpc", tmp_path / "lost.skmlcpc", value_lost)
    with pytest.raises(ModelFileError, match="no 'n_segments_'"):
        ContrastivePredictiveCoding.load(tmp_path / "lost.skmlcpc")
