"""ContrastivePredictiveCoding on aeon's collection layouts, with the convolutional encoder.

3-D arrays ``(n_cases, n_channels, n_timepoints)`` and lists of 2-D arrays of different
lengths, against the flattened 2-D rows; the dilated causal encoder, multiscale pooling
and ``window="auto"``. Tiny data and few epochs: behaviour, not accuracy.
"""

import math

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from sk_mlcpc import ContrastivePredictiveCoding
from sk_mlcpc._estimators.sequence import auto_geometry
from sk_mlcpc._nn.temporal import CausalConvEncoder, causal_dilations
from sk_mlcpc.datasets import make_frequency_sequences
from tests.estimators._sequence_helpers import fast_cpc


def _three_d(n=80, n_timepoints=36, n_channels=2, seed=0):
    """``(n, C, T)`` series and their time-major 2-D rows ``(n, T * C)``."""
    X, y = make_frequency_sequences(
        n, n_timepoints, n_channels=n_channels, random_state=seed
    )  # (n, T * C), time-major
    X3 = np.ascontiguousarray(X.reshape(n, n_timepoints, n_channels).transpose(0, 2, 1))
    return X3, X, y


def _unequal(n=80, n_channels=2, seed=0):
    """A list of ``(C, T_i)`` series, T_i from 24 to 40."""
    X3, _, y = _three_d(n, 40, n_channels, seed)
    lengths = 24 + np.arange(n) % 17
    return [X3[i, :, : lengths[i]].copy() for i in range(n)], y


@pytest.fixture(scope="module")
def fitted_unequal():
    cases, _ = _unequal()
    return fast_cpc().fit(cases), cases


# ---------------------------------------------------------------------------------------
# Defaults: geometry from the length, the convolutional encoder, multiscale pooling


@pytest.mark.parametrize("n_timesteps", [5, 12, 24, 25, 100, 150, 1460])
def test_auto_geometry_fits_the_prediction_horizon(n_timesteps):
    window, stride = auto_geometry(n_timesteps, 4)
    assert window >= 1 and stride >= 1
    assert window + 4 * stride <= n_timesteps  # at least one anchor time


def test_auto_geometry_is_recorded_and_used():
    X3, _, _ = _three_d(n_timepoints=36)
    est = fast_cpc().fit(X3)
    assert (est.window_, est.stride_) == auto_geometry(36, est.prediction_steps)
    assert est.n_windows_ == (36 - est.window_) // est.stride_ + 1
    assert est.n_anchor_times_ == est.n_windows_ - est.prediction_steps
    assert est.module_.encoder.receptive_field == est.window_
    explicit = fast_cpc(window=6, stride="auto").fit(X3)
    assert (explicit.window_, explicit.stride_) == (6, 3)


def test_default_output_width_matches_feature_names():
    X3, _, _ = _three_d()
    est = fast_cpc().fit(X3)
    Z = est.transform(X3)
    hidden = len(causal_dilations(est.window_)) * 16
    # mean and max of every hidden layer and of the latents, mean and last context, the
    # latents on n_segments_ time segments (every window, for the 9 windows of auto).
    assert est.n_segments_ == est.n_windows_ == 9
    assert Z.shape == (80, 2 * (hidden + 8) + 2 * 8 + 9 * 8)
    assert len(est.get_feature_names_out()) == Z.shape[1]
    assert Z.dtype == np.float32 and np.isfinite(Z).all()


def test_causal_encoder_receptive_field_is_the_window():
    torch.manual_seed(0)
    for window in (1, 2, 5, 8, 13):
        encoder = CausalConvEncoder(3, window, 8, 4)
        x = torch.randn(2, 3, 30)
        out = encoder(x)
        t = 20
        changed = x.clone()
        changed[..., t - window] += 10.0  # just outside the field of time t
        torch.testing.assert_close(encoder(changed)[..., t], out[..., t], rtol=0, atol=0)
        changed = x.clone()
        changed[..., t - window + 1] += 10.0  # its first sample
        assert not torch.allclose(encoder(changed)[..., t], out[..., t])
        changed = x.clone()
        changed[..., t + 1 :] += 10.0  # the future
        torch.testing.assert_close(encoder(changed)[..., : t + 1], out[..., : t + 1])


def test_conv_latents_see_their_window_only():
    # The latent of window s is a function of samples s * stride .. s * stride + window - 1.
    X3, _, _ = _three_d()
    est = fast_cpc(window=8, stride=4).fit(X3)
    x, _, _ = est._validated_series(X3, min_samples=1, scoring=False)
    module = est.module_.eval()
    with torch.no_grad():
        z = module.latents(x)
        changed = x.clone()
        changed[..., 12] += 5.0  # in windows 2 (samples 8..15) and 3 (12..19) only
        z_changed = module.latents(changed)
    moved = (z - z_changed).abs().amax(dim=(0, 2)) > 0
    assert moved.tolist()[:5] == [False, False, True, True, False]


# ---------------------------------------------------------------------------------------
# Layouts: flattened rows, 3-D arrays, lists of unequal length


def test_flat_and_three_d_inputs_give_the_same_model():
    X3, X2, _ = _three_d()
    from_3d = fast_cpc().fit(X3)
    from_2d = fast_cpc(n_channels=2).fit(X2)
    assert from_3d.mi_ == from_2d.mi_
    np.testing.assert_array_equal(from_3d.transform(X3), from_2d.transform(X2))
    # A fitted model takes either layout.
    np.testing.assert_array_equal(from_3d.transform(X2), from_3d.transform(X3))
    assert from_3d.score(X2) == from_3d.score(X3)
    assert from_3d.n_features_in_ == from_2d.n_features_in_ == 72
    assert from_3d.n_channels_ == 2


def test_list_of_equal_series_is_a_three_d_array():
    X3, _, _ = _three_d()
    est = fast_cpc().fit(X3)
    np.testing.assert_array_equal(est.transform(list(X3)), est.transform(X3))


def test_padding_does_not_change_an_embedding(fitted_unequal):
    est, cases = fitted_unequal
    together = est.transform(cases)
    for index in (0, 5, 16):  # lengths 24, 29 and 40 (the longest: no padding)
        alone = est.transform([cases[index]])
        np.testing.assert_allclose(alone[0], together[index], rtol=1e-5, atol=1e-5)
    # And the pooling reads every real time point: the last one changes the features.
    changed = [case.copy() for case in cases]
    changed[0][:, -1] += 3.0
    assert not np.allclose(est.transform(changed)[0], together[0])


@pytest.mark.parametrize("pooling", ["last", "mean", "multiscale"])
def test_every_pooling_ignores_padding(pooling):
    cases, _ = _unequal()
    est = fast_cpc(pooling=pooling).fit(cases)
    together = est.transform(cases)
    np.testing.assert_allclose(est.transform([cases[3]])[0], together[3], rtol=1e-5, atol=1e-5)


def test_mlp_encoder_takes_collections_too():
    cases, _ = _unequal()
    est = fast_cpc(encoder="mlp", window=8, stride=4).fit(cases)
    together = est.transform(cases)
    np.testing.assert_allclose(est.transform([cases[2]])[0], together[2], rtol=1e-5, atol=1e-5)


def test_unequal_lengths_fit_score_and_anchor_only_real_windows(fitted_unequal):
    est, cases = fitted_unequal
    assert est.n_timesteps_ == 24  # the shortest series
    assert est.n_features_in_ == 2 * 24
    assert math.isfinite(est.mi_) and est.mi_ <= est.mi_cap_
    assert est.score_per_step(cases).shape == (est.prediction_steps,)
    # A series of other lengths than the training ones is transformed too.
    longer = [np.tile(case, 2) for case in cases[:3]]
    assert est.transform(longer).shape == (3, est.transform(cases[:1]).shape[1])


def test_anchor_times_stay_inside_each_sequence():
    from sk_mlcpc._engine.sequence_net import draw_anchor_times

    counts = torch.tensor([1, 3, 5, 8])
    generator = torch.Generator().manual_seed(0)
    times = draw_anchor_times(3, counts, 4, generator)
    assert times.shape == (4, 3)
    for row, count in zip(times, counts, strict=True):
        assert int(row.max()) < int(count)
        if count >= 3:
            assert len(set(row.tolist())) == 3  # without replacement
    generator = torch.Generator().manual_seed(0)
    equal = draw_anchor_times(3, None, 4, generator)
    assert sorted(equal[0].tolist()) == [0, 1, 2]


def test_pipeline_with_collections():
    cases, y = _unequal()
    pipe = make_pipeline(fast_cpc(), LogisticRegression(max_iter=500)).fit(cases, y)
    assert pipe.predict(cases).shape == (80,)


# ---------------------------------------------------------------------------------------
# Persistence and copies


@pytest.mark.parametrize("layout", ["three_d", "unequal"])
def test_save_load_round_trip(tmp_path, layout):
    data = _three_d()[0] if layout == "three_d" else _unequal()[0]
    est = fast_cpc().fit(data)
    path = tmp_path / "cpc.skmlcpc"
    est.save(path)
    loaded = ContrastivePredictiveCoding.load(path, device="cpu")
    assert (loaded.window_, loaded.stride_, loaded.n_channels_) == (
        est.window_,
        est.stride_,
        est.n_channels_,
    )
    np.testing.assert_array_equal(loaded.transform(data), est.transform(data))
    assert loaded.score(data) == est.score(data)
    assert loaded.mi_ == est.mi_


def test_inputs_are_not_modified():
    X3, _, _ = _three_d()
    cases, _ = _unequal()
    X3_before = X3.copy()
    cases_before = [case.copy() for case in cases]
    est = fast_cpc().fit(X3)
    est.transform(X3)
    est.score(X3)
    fast_cpc().fit(cases).transform(cases)
    np.testing.assert_array_equal(X3, X3_before)
    for case, before in zip(cases, cases_before, strict=True):
        np.testing.assert_array_equal(case, before)


def test_clone_keeps_the_new_parameters():
    est = fast_cpc(encoder="mlp", window="auto", pooling="mean")
    assert clone(est).get_params() == est.get_params()


# ---------------------------------------------------------------------------------------
# Errors


def test_shorter_than_the_receptive_field_raises(fitted_unequal):
    est, cases = fitted_unequal
    short = [case[:, : est.window_ - 1] for case in cases[:3]]
    with pytest.raises(ValueError, match=rf"too short.*receptive field, window_ = {est.window_}"):
        est.transform(short)
    # A score needs the prediction horizon too.
    needed = est.window_ + est.prediction_steps * est.stride_
    with pytest.raises(ValueError, match=rf"prediction horizon.*= {needed} time points"):
        est.score([case[:, : needed - 1] for case in cases[:4]])


def test_too_short_to_fit_raises():
    X3, _, _ = _three_d(n_timepoints=36)
    with pytest.raises(ValueError, match="too short"):
        fast_cpc(prediction_steps=4).fit(X3[:, :, :4])
    with pytest.raises(ValueError, match=r"too short: case 1 of X has n_timesteps=3"):
        fast_cpc(window=2, stride=1, prediction_steps=2).fit([X3[0], X3[1, :, :3], *list(X3[2:10])])


def test_wrong_channel_count_raises():
    X3, _, _ = _three_d()
    est = fast_cpc().fit(X3)
    with pytest.raises(ValueError, match=r"X has 3 channels, but .* fitted with 2 channels"):
        est.transform(np.concatenate([X3, X3[:, :1]], axis=1))
    with pytest.raises(ValueError, match="X has 1 channels"):
        est.score([x[:1] for x in X3])
    with pytest.raises(ValueError, match="n_channels=3"):
        fast_cpc(n_channels=3).fit(X3)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_values_are_located(bad):
    X3, _, _ = _three_d()
    X3[4, 1, 7] = bad
    with pytest.raises(ValueError, match=r"at case 4, channel 1, time point 7"):
        fast_cpc().fit(X3)
    cases, _ = _unequal()
    cases[6][0, 2] = bad
    with pytest.raises(ValueError, match=r"at case 6, channel 0, time point 2"):
        fast_cpc().fit(cases)


def test_empty_and_ragged_collections_raise():
    cases, _ = _unequal()
    with pytest.raises(ValueError, match="empty list"):
        fast_cpc().fit([])
    ragged = [*cases[:5], cases[5][:1], *cases[6:]]
    with pytest.raises(ValueError, match="different channel counts: case 0 has 2, case 5 has 1"):
        fast_cpc().fit(ragged)
    with pytest.raises(ValueError, match="Case 2 of X has 1 dimension"):
        fast_cpc().fit([cases[0], cases[1], cases[2][0], *cases[3:]])
    with pytest.raises(ValueError, match="minimum of 2"):
        fast_cpc().fit(cases[:1])
    with pytest.raises(ValueError, match="not numbers"):
        fast_cpc().fit([np.array([["a", "b"]] * 2, dtype=object)] * 10)
