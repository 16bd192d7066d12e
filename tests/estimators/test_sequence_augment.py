"""Sequence augmentations of ContrastivePredictiveCoding (``augmentation=``, ``view_weight=``)
and the penalty against collapsed latents (``spread_weight=``).

:class:`sk_mlcpc._nn.sequence_views.SeriesAugmentation` makes random views of padded
``(B, C, T)`` batches; the estimator trains its predictive bound on one view and, weighted
by ``view_weight``, the same bound between two views of each sequence. Tiny data and few
epochs: behaviour, not accuracy.
"""

import pickle

import numpy as np
import pytest
import torch

from sk_mlcpc import ContrastivePredictiveCoding
from sk_mlcpc._nn.sequence_views import SeriesAugmentation, zero_padding
from sk_mlcpc._nn.temporal import COVARIANCE_SHARE, spread_penalty
from sk_mlcpc.datasets import make_frequency_sequences
from tests.estimators._sequence_helpers import fast_cpc, rewrite_manifest

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _three_d(n=60, n_timepoints=36, seed=0):
    X, _ = make_frequency_sequences(n, n_timepoints, random_state=seed)
    return np.ascontiguousarray(X[:, None, :])


def _unequal(n=48, seed=0):
    X, _ = make_frequency_sequences(n, 40, random_state=seed)
    return [np.ascontiguousarray(X[i, None, : 28 + (i * 5) % 13]) for i in range(n)]


def _batch(device="cpu", dtype=torch.float32):
    x = torch.randn(6, 3, 25, generator=torch.Generator().manual_seed(0), dtype=dtype)
    lengths = torch.tensor([25, 25, 20, 12, 7, 25])
    return zero_padding(x, lengths).to(device), lengths.to(device)


def _generator(device, seed=0):
    return torch.Generator(device=device).manual_seed(seed)


# ---------------------------------------------------------------------------------------
# SeriesAugmentation


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_view_keeps_shape_dtype_device_and_the_input(device, dtype):
    x, lengths = _batch(device, dtype)
    before = x.clone()
    out = SeriesAugmentation(scale=0.3, jitter=0.2, mask_rate=0.2)(x, lengths, _generator(device))
    assert out.shape == x.shape and out.dtype == dtype and out.device == x.device
    assert out.data_ptr() != x.data_ptr()
    torch.testing.assert_close(x, before, rtol=0, atol=0)
    assert not torch.equal(out, x)


def test_view_without_any_transformation_is_a_copy():
    x, lengths = _batch()
    out = SeriesAugmentation(scale=0, jitter=0, mask_rate=0)(x, lengths, _generator("cpu"))
    torch.testing.assert_close(out, x, rtol=0, atol=0)
    assert out.data_ptr() != x.data_ptr()


def test_view_is_reproducible_under_a_seed():
    x, lengths = _batch()
    view = SeriesAugmentation(scale=0.3, jitter=0.2, mask_rate=0.2)
    first = view(x, lengths, _generator("cpu", 3))
    torch.testing.assert_close(view(x, lengths, _generator("cpu", 3)), first, rtol=0, atol=0)
    assert not torch.equal(view(x, lengths, _generator("cpu", 4)), first)


def test_padding_stays_zero_and_never_reaches_the_real_steps():
    x, lengths = _batch()
    view = SeriesAugmentation(scale=0.3, jitter=0.5, mask_rate=0.3)
    out = view(x, lengths, _generator("cpu"))
    junk = x.clone()
    for row, length in enumerate(lengths.tolist()):
        assert (out[row, :, length:] == 0).all()
        junk[row, :, length:] = 1e6
    # The jitter's scale and the masked stretch come from the real steps only.
    torch.testing.assert_close(view(junk, lengths, _generator("cpu")), out, rtol=0, atol=0)


def test_scaling_multiplies_each_channel_of_each_sequence():
    x = torch.rand(5, 3, 20) + 1.0  # no zeros: ratios are defined
    out = SeriesAugmentation(scale=0.5, jitter=0, mask_rate=0)(x, None, _generator("cpu"))
    ratio = out / x
    torch.testing.assert_close(ratio, ratio[:, :, :1].expand_as(ratio))
    assert ratio[:, :, 0].std() > 0.05


def test_jitter_is_relative_to_each_series_scale():
    x, lengths = _batch()
    view = SeriesAugmentation(scale=0, jitter=0.2, mask_rate=0)
    small = view(x, lengths, _generator("cpu")) - x
    large = view(1000.0 * x, lengths, _generator("cpu")) - 1000.0 * x
    torch.testing.assert_close(large, 1000.0 * small, rtol=1e-4, atol=1e-3)
    # Noise std / series std is about the jitter on the long real stretches.
    real = small[[0, 1, 5]]
    ratio = real.std(dim=2) / x[[0, 1, 5]].std(dim=2)
    assert 0.1 < ratio.mean().item() < 0.3


@pytest.mark.parametrize("rate", [0.1, 0.3, 0.5])
def test_mask_zeroes_one_stretch_of_real_steps(rate):
    x = torch.rand(6, 2, 25) + 1.0
    lengths = torch.tensor([25, 25, 20, 12, 7, 25])
    x = zero_padding(x, lengths)
    out = SeriesAugmentation(scale=0, jitter=0, mask_rate=rate)(x, lengths, _generator("cpu"))
    for row, length in enumerate(lengths.tolist()):
        zero = (out[row, :, :length] == 0).all(dim=0)
        assert (out[row, :, :length] == 0).any(dim=0).equal(zero)  # every channel at once
        steps = torch.nonzero(zero).flatten()
        assert len(steps) == round(rate * length)
        if len(steps):
            assert steps[-1] - steps[0] + 1 == len(steps)  # one stretch
        kept = ~zero
        torch.testing.assert_close(out[row, :, :length][:, kept], x[row, :, :length][:, kept])


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"scale": -0.1}, "scale"),
        ({"jitter": float("nan")}, "jitter"),
        ({"mask_rate": 1.0}, "mask_rate"),
        ({"mask_rate": -1}, "mask_rate"),
    ],
)
def test_bad_view_settings_raise(params, match):
    with pytest.raises(ValueError, match=match):
        SeriesAugmentation(**params)


def test_view_refuses_a_flat_batch():
    with pytest.raises(ValueError, match="3-D batch"):
        SeriesAugmentation()(torch.zeros(4, 10), None, _generator("cpu"))


# ---------------------------------------------------------------------------------------
# spread_penalty


def test_spread_penalty_limits():
    # Collapsed latents: every standard deviation 0, no covariance.
    assert spread_penalty(torch.zeros(3, 4, 5)).item() == pytest.approx(1 - 1e-2)
    # Centred, uncorrelated, variance 4/3 > 1: no penalty at all.
    signs = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])
    assert spread_penalty(signs.reshape(2, 2, 2)).item() == 0.0
    # Two identical coordinates of variance 4/3: the covariance part only.
    same = torch.tensor([1.0, 1.0, -1.0, -1.0])[:, None].repeat(1, 2)
    expected = COVARIANCE_SHARE * 2 * (4 / 3) ** 2 / 2
    assert spread_penalty(same.reshape(1, 4, 2)).item() == pytest.approx(expected)


def test_spread_penalty_matches_the_formula_and_ignores_padding():
    z = torch.randn(5, 7, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    lengths = torch.tensor([7, 3, 5, 1, 7])
    rows = np.concatenate([z[b, :length].numpy() for b, length in enumerate(lengths.tolist())])
    covariance = np.cov(rows, rowvar=False)
    std = np.sqrt(np.diag(covariance) + 1e-4)
    off = (covariance**2).sum() - (np.diag(covariance) ** 2).sum()
    expected = np.maximum(1 - std, 0).mean() + COVARIANCE_SHARE * off / 3
    assert spread_penalty(z, lengths).item() == pytest.approx(expected, rel=1e-10)
    junk = z.clone()
    for b, length in enumerate(lengths.tolist()):
        junk[b, length:] = 1e6
    assert spread_penalty(junk, lengths).item() == pytest.approx(expected, rel=1e-10)


# ---------------------------------------------------------------------------------------
# The estimator


@pytest.fixture(scope="module")
def fitted_augmented():
    X3 = _three_d()
    return X3, fast_cpc(augmentation="auto", view_weight=0.5).fit(X3)


def test_fit_transform_save_load_round_trip(fitted_augmented, tmp_path):
    X3, est = fitted_augmented
    features = est.transform(X3)
    assert features.shape == (len(X3), est.get_feature_names_out().size)
    assert np.isfinite(features).all() and np.isfinite(est.mi_)
    # transform never augments: it is deterministic.
    np.testing.assert_array_equal(est.transform(X3), features)
    est.save(tmp_path / "cpc.skmlcpc")
    loaded = ContrastivePredictiveCoding.load(tmp_path / "cpc.skmlcpc", device="cpu")
    assert (loaded.augmentation, loaded.view_weight) == ("auto", 0.5)
    np.testing.assert_array_equal(loaded.transform(X3), features)
    assert loaded.score(X3) == est.score(X3)


def test_augmented_fit_is_reproducible_and_differs_from_plain(fitted_augmented):
    X3, est = fitted_augmented
    again = fast_cpc(augmentation="auto", view_weight=0.5).fit(X3)
    np.testing.assert_array_equal(again.transform(X3), est.transform(X3))
    plain = fast_cpc().fit(X3)
    assert not np.allclose(plain.transform(X3), est.transform(X3))


@pytest.mark.parametrize("data", ["three_d", "unequal"])
def test_spread_weight_fits_reproducibly_and_round_trips(data, tmp_path):
    X = _three_d() if data == "three_d" else _unequal()
    est = fast_cpc(spread_weight=1.0).fit(X)
    again = fast_cpc(spread_weight=1.0).fit(X)
    np.testing.assert_array_equal(again.transform(X), est.transform(X))
    assert not np.allclose(fast_cpc().fit(X).transform(X), est.transform(X))
    # valid_mi is the predictive bound alone; train_mi includes the penalty.
    assert np.isfinite(est.history_[:, "valid_mi"]).all()
    est.save(tmp_path / "cpc.skmlcpc")
    loaded = ContrastivePredictiveCoding.load(tmp_path / "cpc.skmlcpc", device="cpu")
    assert loaded.spread_weight == 1.0
    np.testing.assert_array_equal(loaded.transform(X), est.transform(X))


def test_identity_view_without_view_term_trains_as_without_augmentation():
    X3 = _three_d()
    plain = fast_cpc().fit(X3)
    same = fast_cpc(augmentation=lambda x, lengths, generator: x.clone(), view_weight=0.0).fit(X3)
    np.testing.assert_allclose(same.transform(X3), plain.transform(X3), rtol=1e-4, atol=1e-5)


def test_padding_written_by_a_view_never_reaches_the_model():
    series = _unequal()

    def clean(x, lengths, generator):
        return x * 1.5

    def junk_in_padding(x, lengths, generator):
        padding = torch.arange(x.shape[2], device=x.device) >= lengths[:, None]
        return (x * 1.5).masked_fill(padding[:, None, :], 1e6)

    reference = fast_cpc(augmentation=clean).fit(series)
    junk = fast_cpc(augmentation=junk_in_padding).fit(series)
    np.testing.assert_array_equal(junk.transform(series), reference.transform(series))


def test_views_receive_the_real_lengths_and_inputs_are_not_modified():
    series = _unequal()
    copies = [s.copy() for s in series]
    seen = []

    def view(x, lengths, generator):
        seen.append(lengths.clone())
        for row, length in enumerate(lengths.tolist()):
            assert (x[row, :, length:] == 0).all()  # the batch arrives zero-padded
        return x.clone()

    fast_cpc(augmentation=view, max_epochs=1).fit(series)
    assert seen and set(torch.cat(seen).tolist()) <= {s.shape[1] for s in series}
    for before, after in zip(copies, series, strict=True):
        np.testing.assert_array_equal(before, after)


def test_a_view_of_the_wrong_shape_raises():
    with pytest.raises(ValueError, match="augmentation must return"):
        fast_cpc(augmentation=lambda x, lengths, generator: x[:, :, :-1]).fit(_three_d())
    with pytest.raises(ValueError, match="augmentation must return"):
        fast_cpc(augmentation=lambda x, lengths, generator: x.double()).fit(_three_d())


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"augmentation": "jitter"}, "augmentation"),
        ({"augmentation": 3}, "augmentation"),
        ({"view_weight": -1.0}, "view_weight"),
        ({"view_weight": "auto"}, "view_weight"),
        ({"spread_weight": -0.5}, "spread_weight"),
    ],
)
def test_bad_parameters_raise(params, match):
    with pytest.raises(ValueError, match=match):
        fast_cpc(**params).fit(_three_d())


def test_files_from_before_augmentation_load_without_it(tmp_path):
    X3 = _three_d()
    est = fast_cpc().fit(X3)
    est.save(tmp_path / "new.skmlcpc")

    def before_the_parameters(manifest):
        del manifest["params"]["augmentation"]
        del manifest["params"]["view_weight"]
        del manifest["params"]["spread_weight"]

    rewrite_manifest(tmp_path / "new.skmlcpc", tmp_path / "old.skmlcpc", before_the_parameters)
    old = ContrastivePredictiveCoding.load(tmp_path / "old.skmlcpc", device="cpu")
    assert (old.augmentation, old.spread_weight) == (None, 0.0)
    np.testing.assert_array_equal(old.transform(X3), est.transform(X3))


def test_a_callable_augmentation_pickles_but_is_not_written_to_a_model_file(tmp_path):
    X3 = _three_d()
    est = fast_cpc(augmentation=SeriesAugmentation(scale=0.2)).fit(X3)
    with pytest.raises(TypeError, match="augmentation=SeriesAugmentation"):
        est.save(tmp_path / "cpc.skmlcpc")
    restored = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(restored.transform(X3), est.transform(X3))
