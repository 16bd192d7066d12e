"""ContrastiveEncoder with image_shape: scaling, views, encoder, errors and persistence."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits

from sk_mlcpc import ContrastiveEncoder
from sk_mlcpc._engine.persistence import ModelFileError
from sk_mlcpc.encoders import ConvEncoder
from sk_mlcpc.views import FeatureCorruption, RandomAffine


def _fast(**params):
    defaults = dict(
        image_shape=(8, 8), n_components=4, projection_dim=8, max_epochs=2, random_state=0
    )
    return ContrastiveEncoder(**{**defaults, **params})


@pytest.fixture(scope="module")
def digits():
    X, _ = load_digits(return_X_y=True)
    return X[:300]


def test_image_mode_builds_a_conv_encoder_and_image_views(digits):
    encoder = _fast().fit(digits)
    assert isinstance(encoder.encoder_, ConvEncoder)
    assert encoder.encoder_.image_shape == (8, 8, 1)
    view = encoder.net_.view
    assert isinstance(view, RandomAffine)
    assert (view.translation, view.rotation, view.zoom) == (
        encoder.translation,
        encoder.rotation,
        encoder.zoom,
    )
    Z = encoder.transform(digits)
    assert Z.shape == (len(digits), 4) and Z.dtype == np.float32
    assert encoder.preprocessor_ is None


def test_tabular_default_is_unchanged(digits):
    encoder = ContrastiveEncoder(n_components=4, max_epochs=1, random_state=0).fit(digits)
    assert isinstance(encoder.net_.view, FeatureCorruption)
    assert isinstance(encoder.encoder_, torch.nn.Sequential)
    assert type(encoder.preprocessor_).__name__ == "StandardScaler"


def test_scaling_is_one_mean_and_scale_for_all_pixels(digits):
    encoder = _fast(max_epochs=1).fit(digits)
    train_pixels = digits.astype(np.float64)  # every row trains or is held out: check bounds
    mean, scale = encoder._image_mean.item(), encoder._image_scale.item()
    assert train_pixels.min() <= mean <= train_pixels.max()
    x = encoder._preprocess(digits).cpu().numpy()
    # One affine map for every pixel: the order of the pixel values is kept across columns,
    # which a per-column standardisation would break.
    expected = ((digits - mean) / scale).astype(np.float32)
    np.testing.assert_allclose(x, expected, rtol=1e-6, atol=1e-6)
    # The fill of the views is the raw value 0 in these units.
    assert encoder.net_.view.fill.item() == pytest.approx(-mean / scale)


def test_scaling_statistics_come_from_the_training_rows_only(digits):
    encoder = _fast(max_epochs=1, preprocessing="standard").fit(digits)
    split = encoder._split(len(digits))  # same random_state: the same split
    train = digits[split.train].astype(np.float64)
    assert encoder._image_mean.item() == pytest.approx(train.mean())
    assert encoder._image_scale.item() == pytest.approx(train.std())


def test_per_channel_scaling_of_colour_images():
    rng = np.random.default_rng(0)
    images = rng.normal(size=(60, 4, 4, 3)) * [1.0, 10.0, 100.0] + [0.0, 5.0, -50.0]
    X = images.reshape(60, -1)
    encoder = _fast(image_shape=(4, 4, 3), max_epochs=1).fit(X)
    assert encoder._image_mean.shape == (3,)
    np.testing.assert_allclose(encoder._image_scale.numpy(), [1.0, 10.0, 100.0], rtol=0.15)
    x = encoder._preprocess(X).cpu().numpy().reshape(60, 4, 4, 3)
    np.testing.assert_allclose(x.std(axis=(0, 1, 2)), 1.0, rtol=0.15)


def test_preprocessing_none_leaves_the_pixels_alone(digits):
    encoder = _fast(max_epochs=1, preprocessing=None).fit(digits)
    np.testing.assert_array_equal(
        encoder._preprocess(digits).cpu().numpy(), digits.astype(np.float32)
    )
    assert encoder.net_.view.fill.item() == 0.0


def test_fit_does_not_modify_the_input(digits):
    X = digits.copy()
    _fast(max_epochs=1).fit(X).transform(X)
    np.testing.assert_array_equal(X, digits)


def test_seeded_fits_are_reproducible(digits):
    first = _fast(random_state=3).fit_transform(digits)
    second = _fast(random_state=3).fit_transform(digits)
    np.testing.assert_array_equal(first, second)
    other = _fast(random_state=4).fit_transform(digits)
    assert not np.array_equal(first, other)


@pytest.mark.parametrize("augmentation", ["corruption", "noise", "mask"])
def test_tabular_views_still_work_on_images(digits, augmentation):
    encoder = _fast(max_epochs=1, augmentation=augmentation).fit(digits)
    assert not isinstance(encoder.net_.view, RandomAffine)
    assert isinstance(encoder.encoder_, ConvEncoder)


def test_a_user_encoder_replaces_the_conv_encoder(digits):
    mine = torch.nn.Linear(64, 3)
    encoder = _fast(max_epochs=1, encoder=mine).fit(digits)
    assert encoder.n_components_ == 3 and not isinstance(encoder.encoder_, ConvEncoder)
    assert isinstance(encoder.net_.view, RandomAffine)


# ------------------------------------------------------------------ the embedding's width


def _linear_layers(module):
    return [m for m in module.modules() if isinstance(m, torch.nn.Linear)]


def test_auto_width_returns_the_pooled_conv_features(digits):
    # n_components="auto" with image_shape: transform returns the conv encoder's pooled
    # feature map (128 channels x 2 x 2 cells), with no linear layer after the convolutions;
    # the projection head maps those 512 numbers and is used for the loss only.
    encoder = _fast(n_components="auto", max_epochs=1).fit(digits)
    assert encoder.n_components_ == 512 == encoder.encoder_.out_features
    assert _linear_layers(encoder.encoder_) == []
    head = encoder.net_.module_.head
    assert _linear_layers(head)[0].in_features == 512
    assert _linear_layers(head)[-1].out_features == encoder.projection_dim
    Z = encoder.transform(digits)
    assert Z.shape == (len(digits), 512) and Z.dtype == np.float32
    assert encoder.get_feature_names_out().shape == (512,)
    # What transform returns is the encoder's output on the scaled rows.
    with torch.no_grad():
        expected = encoder.encoder_.eval()(encoder._preprocess(digits)).numpy()
    np.testing.assert_allclose(Z, expected, rtol=1e-6, atol=1e-6)


def test_auto_width_is_the_default_and_follows_the_channels():
    assert ContrastiveEncoder().n_components == "auto"
    X = np.random.default_rng(0).random((40, 6 * 5 * 3))
    encoder = _fast(image_shape=(6, 5, 3), n_components="auto", max_epochs=1).fit(X)
    # 6 x 5 is not pooled (shorter side under 8), then averaged to 2 x 2 cells.
    assert encoder.transform(X).shape == (40, 128 * 4)
    tiny = np.random.default_rng(0).random((40, 1 * 3))
    one_row = _fast(image_shape=(1, 3), n_components="auto", max_epochs=1).fit(tiny)
    assert one_row.n_components_ == 128 * 1 * 2  # a 1 x 3 grid averages to 1 x 2 cells


def test_an_integer_width_adds_a_linear_layer(digits):
    encoder = _fast(n_components=12, max_epochs=1).fit(digits)
    assert encoder.n_components_ == 12
    (linear,) = _linear_layers(encoder.encoder_)
    assert linear.out_features == 12
    assert encoder.transform(digits).shape == (len(digits), 12)


def test_auto_width_of_tabular_rows_and_user_encoders_is_32(digits):
    tabular = ContrastiveEncoder(max_epochs=1, random_state=0).fit(digits)
    assert tabular.n_components_ == 32
    assert _linear_layers(tabular.encoder_)[-1].out_features == 32

    class Mine(torch.nn.Module):
        def __init__(self, n_features, n_components):
            super().__init__()
            self.layer = torch.nn.Linear(n_features, n_components)

        def forward(self, x):
            return self.layer(x)

    mine = _fast(n_components="auto", encoder=Mine, max_epochs=1).fit(digits)
    assert mine.n_components_ == 32


@pytest.mark.parametrize("value", ["wide", 0, -3, 2.5])
def test_a_wrong_width_is_refused_by_name(digits, value):
    with pytest.raises((TypeError, ValueError), match="n_components"):
        _fast(n_components=value).fit(digits)


def test_auto_width_round_trips_through_save_and_load(digits, tmp_path):
    fitted = _fast(n_components="auto").fit(digits)
    fitted.save(tmp_path / "pooled.skmlcpc")
    loaded = ContrastiveEncoder.load(tmp_path / "pooled.skmlcpc", device="cpu")
    assert loaded.n_components == "auto" and loaded.n_components_ == 512
    np.testing.assert_array_equal(loaded.transform(digits), fitted.transform(digits))
    assert pickle.loads(pickle.dumps(fitted)).transform(digits[:5]).shape == (5, 512)


def test_auto_width_fits_are_reproducible(digits):
    first = _fast(n_components="auto", random_state=5).fit_transform(digits)
    second = _fast(n_components="auto", random_state=5).fit_transform(digits)
    np.testing.assert_array_equal(first, second)


def test_rgb_rows_round_trip_through_fit_and_transform():
    X = np.random.default_rng(1).random((40, 6 * 5 * 3))
    Z = _fast(image_shape=[6, 5, 3], max_epochs=1).fit_transform(X)
    assert Z.shape == (40, 4)


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("image_shape", "error", "message"),
    [
        ((8, 9), ValueError, "describes rows of 72 values"),
        ((4, 4), ValueError, r"pass image_shape=\(4, 4, 4\) for 4 channels"),
        ((8, 8, 2), ValueError, r"pass image_shape=\(8, 8, 1\) for 1 channel"),
        ((8, 0), ValueError, "positive sizes"),
        ((-8, -8), ValueError, "positive sizes"),
        ((64,), ValueError, "2 entries"),
        ((2, 2, 4, 4), ValueError, "2 entries"),
        ((8.0, 8.0), TypeError, "integers"),
    ],
)
def test_wrong_image_shape_is_refused_by_name(digits, image_shape, error, message):
    with pytest.raises(error, match=message):
        _fast(image_shape=image_shape).fit(digits)


def test_image_shape_of_the_wrong_type_is_refused(digits):
    with pytest.raises((TypeError, ValueError), match="image_shape"):
        _fast(image_shape=64).fit(digits)


def test_quantile_preprocessing_is_refused_for_images(digits):
    with pytest.raises(ValueError, match=r"preprocessing='quantile'.*neighbourhoods"):
        _fast(preprocessing="quantile").fit(digits)


def test_image_views_without_image_shape_are_refused(digits):
    with pytest.raises(ValueError, match=r"augmentation='image'.*image_shape"):
        _fast(image_shape=None, augmentation="image").fit(digits)


@pytest.mark.parametrize(
    ("name", "value"), [("translation", 1.5), ("rotation", 270.0), ("zoom", -0.5)]
)
def test_view_strengths_are_validated(digits, name, value):
    with pytest.raises(ValueError, match=name):
        _fast(**{name: value}).fit(digits)


def test_transform_refuses_rows_of_another_width(digits):
    encoder = _fast(max_epochs=1).fit(digits)
    with pytest.raises(ValueError, match="64 features"):
        encoder.transform(np.zeros((3, 63)))


# ------------------------------------------------------------------ persistence


def test_save_load_round_trip(digits, tmp_path):
    fitted = _fast(image_shape=(8, 8, 1)).fit(digits)
    fitted.save(tmp_path / "images.skmlcpc")
    loaded = ContrastiveEncoder.load(tmp_path / "images.skmlcpc", device="cpu")
    assert loaded.image_shape == (8, 8, 1)
    assert torch.equal(loaded._image_mean, fitted._image_mean)
    assert torch.equal(loaded._image_scale, fitted._image_scale)
    np.testing.assert_array_equal(loaded.transform(digits), fitted.transform(digits))
    assert loaded.score(digits[:100]) == pytest.approx(fitted.score(digits[:100]))
    # And it keeps training.
    loaded.set_params(warm_start=True, max_epochs=1).fit(digits)
    assert len(loaded.history_) == 3


def test_pickle_round_trip(digits):
    fitted = _fast(max_epochs=1).fit(digits)
    loaded = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(loaded.transform(digits), fitted.transform(digits))


def test_a_file_without_the_image_scaling_is_refused(digits, tmp_path):
    import io
    import zipfile

    path = tmp_path / "images.skmlcpc"
    _fast(max_epochs=1).fit(digits).save(path)
    with zipfile.ZipFile(path) as archive:
        manifest = archive.read("model.json")
        tensors = torch.load(io.BytesIO(archive.read("weights.pt")), weights_only=True)
    del tensors["fitted"]["image_scale"]
    buffer = io.BytesIO()
    torch.save(tensors, buffer)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("model.json", manifest)
        archive.writestr("weights.pt", buffer.getvalue())
    with pytest.raises(ModelFileError, match="image_scale"):
        ContrastiveEncoder.load(path)


def test_clone_keeps_the_image_parameters():
    encoder = _fast(image_shape=(8, 8), translation=0.2, rotation=5.0, zoom=0.0)
    params = clone(encoder).get_params()
    assert params["image_shape"] == (8, 8)
    assert (params["translation"], params["rotation"], params["zoom"]) == (0.2, 5.0, 0.0)


@pytest.mark.gpu
def test_image_mode_trains_on_cuda_and_loads_on_the_cpu(digits, tmp_path):
    fitted = _fast(device="cuda").fit(digits)
    assert next(fitted.encoder_.parameters()).device.type == "cuda"
    fitted.save(tmp_path / "images.skmlcpc")
    loaded = ContrastiveEncoder.load(tmp_path / "images.skmlcpc", device="cpu")
    np.testing.assert_allclose(
        loaded.transform(digits), fitted.transform(digits), rtol=1e-4, atol=1e-4
    )


def test_warm_start_cannot_switch_between_images_and_rows(digits):
    encoder = _fast(max_epochs=1, warm_start=True).fit(digits)
    with pytest.raises(ValueError, match="image_shape cannot be set or unset"):
        encoder.set_params(image_shape=None).fit(digits)
    tabular = _fast(image_shape=None, max_epochs=1, warm_start=True).fit(digits)
    with pytest.raises(ValueError, match="image_shape cannot be set or unset"):
        tabular.set_params(image_shape=(8, 8)).fit(digits)
