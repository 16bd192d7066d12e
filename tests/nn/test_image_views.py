"""Image views and the convolutional encoder: geometry in closed form, contracts, errors."""

import math

import pytest
import torch

from sk_mlcpc.encoders import ConvEncoder
from sk_mlcpc.views import (
    RandomAffine,
    RandomTranslation,
    check_image_shape,
    flat_to_images,
    images_to_flat,
    make_image_view,
)


def _generator(seed: int = 0, device: str = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]
VIEWS = {
    "translation": lambda shape: RandomTranslation(shape, max_shift=2, fill=-0.5),
    "affine": lambda shape: RandomAffine(shape, translation=0.2, rotation=20, zoom=0.2, fill=0.3),
}


# ------------------------------------------------------------------ layout


def test_rows_are_flattened_channels_last():
    # A (n, h, w, c) array flattened row by row is what image_shape=(h, w, c) describes.
    images = torch.arange(2 * 3 * 4 * 2, dtype=torch.float32).reshape(2, 3, 4, 2)
    x = images.reshape(2, -1)
    grid = flat_to_images(x, (3, 4, 2))
    assert grid.shape == (2, 2, 3, 4)
    assert torch.equal(grid, images.permute(0, 3, 1, 2))
    assert torch.equal(images_to_flat(grid), x)


# ------------------------------------------------------------------ translations


def test_a_translation_is_a_real_shift_of_the_grid():
    h, w = 4, 5
    image = torch.arange(1.0, h * w + 1).reshape(h, w)  # distinct, non-zero pixels
    view = RandomTranslation((h, w), max_shift=2, fill=0.0)
    for dy in range(-2, 3):
        for dx in range(-2, 3):
            out = view.shift(image.reshape(1, -1), torch.tensor([[dy, dx]])).reshape(h, w)
            expected = torch.zeros(h, w)
            for i in range(h):
                for j in range(w):
                    if 0 <= i - dy < h and 0 <= j - dx < w:
                        expected[i, j] = image[i - dy, j - dx]
            assert torch.equal(out, expected), (dy, dx)


def test_a_translation_moves_every_channel_and_fills_each_with_its_own_value():
    h, w, c = 3, 3, 2
    images = torch.randn(1, h, w, c)
    view = RandomTranslation((h, w, c), max_shift=1, fill=[7.0, -7.0])
    out = view.shift(images.reshape(1, -1), torch.tensor([[0, 1]])).reshape(h, w, c)
    assert torch.equal(out[:, 1:], images[0, :, :-1])  # one column to the right
    assert torch.equal(out[:, 0, 0], torch.full((h,), 7.0))
    assert torch.equal(out[:, 0, 1], torch.full((h,), -7.0))


def test_drawn_translations_are_whole_pixels_within_the_bound():
    view = RandomTranslation((6, 6), max_shift=2)
    shifts = view.draw_shifts(4000, _generator())
    assert shifts.dtype == torch.int64
    assert set(shifts.flatten().tolist()) == {-2, -1, 0, 1, 2}


def test_each_image_gets_its_own_shift():
    image = torch.zeros(8, 8)
    image[3:5, 3:5] = 1.0
    x = image.reshape(1, -1).repeat(200, 1)
    out = RandomTranslation((8, 8), max_shift=2)(x, _generator())
    assert len(torch.unique(out, dim=0)) > 10
    assert torch.equal(out.sum(dim=1), x.sum(dim=1))  # a 2 x 2 block 3 from the edge stays in


# ------------------------------------------------------------------ affine views


def test_affine_with_zero_strength_is_the_identity():
    x = torch.randn(6, 5 * 7 * 3)
    out = RandomAffine((5, 7, 3), translation=0, rotation=0, zoom=0)(x, _generator())
    torch.testing.assert_close(out, x, atol=1e-5, rtol=0)


@pytest.mark.parametrize("shape", [(4, 5), (6, 6, 2)])
def test_affine_integer_shift_equals_the_translation(shape):
    x = torch.randn(3, math.prod(shape))
    shifts = torch.tensor([[1, 0], [-1, 2], [2, -2]])
    parameters = torch.zeros(3, 4)
    parameters[:, 2:] = shifts.float()
    affine = RandomAffine(shape, fill=0.25).transform(x, parameters)
    exact = RandomTranslation(shape, max_shift=2, fill=0.25).shift(x, shifts)
    torch.testing.assert_close(affine, exact, atol=1e-5, rtol=0)


def test_a_half_turn_of_a_non_square_image_reverses_it():
    # A rotation by 180 degrees about the centre maps pixel (i, j) to (h-1-i, w-1-j),
    # also when h != w (the geometry is in pixels, not in normalised coordinates).
    h, w = 3, 5
    image = torch.randn(h, w)
    parameters = torch.tensor([[math.pi, 0.0, 0.0, 0.0]])
    out = RandomAffine((h, w)).transform(image.reshape(1, -1), parameters).reshape(h, w)
    torch.testing.assert_close(out, image.flip(0).flip(1), atol=1e-5, rtol=0)


def test_a_quarter_turn_of_a_square_image_is_a_transposition_and_a_flip():
    n = 4
    image = torch.randn(n, n)
    parameters = torch.tensor([[math.pi / 2, 0.0, 0.0, 0.0]])
    out = RandomAffine((n, n)).transform(image.reshape(1, -1), parameters).reshape(n, n)
    turned = torch.rot90(image, k=-1)  # the content turns clockwise as displayed (y down)
    torch.testing.assert_close(out, turned, atol=1e-5, rtol=0)


def test_zooming_out_fills_the_border():
    h = w = 8
    x = torch.ones(1, h * w)
    parameters = torch.tensor([[0.0, math.log(0.5), 0.0, 0.0]])  # half size, centred
    out = RandomAffine((h, w), fill=-1.0).transform(x, parameters).reshape(h, w)
    assert torch.equal(out[0], torch.full((w,), -1.0))  # the border comes from outside
    torch.testing.assert_close(out[3:5, 3:5], torch.ones(2, 2))  # the centre is the image


def test_drawn_affine_parameters_stay_within_their_bounds():
    view = RandomAffine((8, 16), translation=0.25, rotation=30.0, zoom=0.5)
    angle, log_zoom, dy, dx = view.draw_parameters(5000, _generator()).unbind(dim=1)
    assert angle.abs().max() <= math.radians(30.0) and angle.abs().max() > math.radians(29)
    assert log_zoom.abs().max() <= math.log(1.5)
    assert dy.abs().max() <= 2.0 and dy.abs().max() > 1.9  # 0.25 of 8 rows
    assert dx.abs().max() <= 4.0 and dx.abs().max() > 3.8  # 0.25 of 16 columns


# ------------------------------------------------------------------ the view contract


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", list(VIEWS))
def test_views_keep_shape_dtype_and_device_and_leave_the_input_alone(name, dtype, device):
    shape = (6, 5, 3)
    x = torch.randn(10, math.prod(shape), dtype=dtype, device=device)
    before = x.clone()
    out = VIEWS[name](shape)(x, _generator(device=device))
    assert out.shape == x.shape and out.dtype == dtype and out.device == x.device
    assert torch.equal(x, before)
    assert not torch.equal(out, x)  # it did something
    assert out.data_ptr() != x.data_ptr()


@pytest.mark.parametrize("name", list(VIEWS))
def test_seeded_views_are_reproducible(name):
    view = VIEWS[name]((8, 8))
    x = torch.randn(32, 64)
    first = view(x, _generator(5))
    assert torch.equal(first, view(x, _generator(5)))
    assert not torch.equal(first, view(x, _generator(6)))


def test_views_refuse_rows_of_another_width():
    with pytest.raises(ValueError, match="63 features"):
        RandomAffine((8, 8))(torch.zeros(2, 63), _generator())
    with pytest.raises(ValueError, match="2-D batch"):
        RandomTranslation((8, 8))(torch.zeros(2, 8, 8), _generator())


def test_make_image_view_builds_the_affine_view():
    view = make_image_view((8, 8), translation=0.25, rotation=5.0, zoom=0.0, fill=1.0)
    assert isinstance(view, RandomAffine)
    assert (view.translation, view.rotation, view.zoom) == (0.25, 5.0, 0.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"translation": 1.5}, "translation must lie in"),
        ({"rotation": -1.0}, "rotation must lie in"),
        ({"rotation": 200.0}, "rotation must lie in"),
        ({"zoom": -0.1}, "zoom must lie in"),
        ({"fill": [1.0, 2.0]}, "one per channel"),
        ({"fill": float("nan")}, "finite"),
    ],
)
def test_affine_parameter_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RandomAffine((8, 8), **kwargs)


def test_translation_parameter_errors():
    with pytest.raises(ValueError, match="max_shift"):
        RandomTranslation((8, 8), max_shift=-1)
    with pytest.raises(ValueError, match="max_shift"):
        RandomTranslation((8, 8), max_shift=1.5)


# ------------------------------------------------------------------ image_shape


@pytest.mark.parametrize(
    ("image_shape", "error", "message"),
    [
        ((8,), ValueError, "2 entries"),
        ((2, 2, 2, 2), ValueError, "2 entries"),
        ((8, 0), ValueError, "positive sizes"),
        ((8, -8), ValueError, "positive sizes"),
        ((8.0, 8), TypeError, "integers"),
        (64, TypeError, "tuple"),
        ("8x8", TypeError, "tuple"),
    ],
)
def test_check_image_shape_errors(image_shape, error, message):
    with pytest.raises(error, match=message):
        check_image_shape(image_shape)


def test_check_image_shape_against_the_width():
    assert check_image_shape([4, 6], n_features=24) == (4, 6, 1)
    assert check_image_shape((4, 6, 3), n_features=72) == (4, 6, 3)
    with pytest.raises(ValueError, match=r"rows of 24 values .* X has 30 features\.$"):
        check_image_shape((4, 6), n_features=30)
    # A width that fits another channel count says so.
    with pytest.raises(ValueError, match=r"pass image_shape=\(4, 6, 3\) for 3 channels"):
        check_image_shape((4, 6, 2), n_features=72)
    with pytest.raises(ValueError, match=r"pass image_shape=\(4, 6, 1\) for 1 channel\."):
        check_image_shape((4, 6, 3), n_features=24)


# ------------------------------------------------------------------ the encoder


@pytest.mark.parametrize("shape", [(8, 8), (3, 5), (28, 28), (32, 32, 3), (16, 9, 2)])
def test_conv_encoder_maps_rows_to_the_requested_width(shape):
    encoder = ConvEncoder(shape, n_components=7).eval()
    out = encoder(torch.randn(3, math.prod(shape)))
    assert out.shape == (3, 7) and out.dtype == torch.float32


@pytest.mark.parametrize(
    ("shape", "channels", "width"),
    [
        ((8, 8), (64, 128), 128 * 2 * 2),
        ((28, 28), (32, 64), 64 * 2 * 2),
        ((32, 32, 3), (8, 16, 24), 24 * 2 * 2),
        ((3, 5), (32, 64), 64 * 2 * 2),
        ((1, 7), (4,), 4 * 1 * 2),
        ((1, 1, 2), (5,), 5),
    ],
)
def test_conv_encoder_without_width_returns_the_pooled_feature_map(shape, channels, width):
    encoder = ConvEncoder(shape, channels=channels).eval()
    if channels == (64, 128):  # the default
        assert ConvEncoder(shape).out_features == width
    assert encoder.out_features == width
    assert not any(isinstance(m, torch.nn.Linear) for m in encoder.modules())
    x = torch.randn(3, math.prod(shape))
    out = encoder(x)
    assert out.shape == (3, width) and out.dtype == torch.float32
    # The output is the last block's feature map, average-pooled: what the body returns.
    torch.testing.assert_close(out, encoder.body(flat_to_images(x, encoder.image_shape)))


def test_conv_encoder_pooled_features_are_non_negative_after_relu():
    # Pooled ReLU feature maps: averages of non-negative numbers, not a linear projection.
    encoder = ConvEncoder((8, 8)).eval()
    assert bool((encoder(torch.randn(16, 64)) >= 0).all())
    assert ConvEncoder((8, 8), 16).out_features == 16


def test_conv_encoder_pools_larger_images_more():
    def pools(shape):
        encoder = ConvEncoder(shape, 4, channels=(8, 8, 8))
        return sum(isinstance(m, torch.nn.MaxPool2d) for m in encoder.modules())

    assert (pools((4, 4)), pools((8, 8)), pools((16, 16)), pools((32, 32))) == (0, 1, 2, 3)


def test_conv_encoder_sees_the_grid_not_the_column_order():
    # A convolutional encoder is translation-equivariant before its last layers: a
    # whole-pixel shift of the input inside the image shifts the first feature maps.
    torch.manual_seed(0)
    encoder = ConvEncoder((8, 8), 4, channels=(3,)).eval()
    image = torch.zeros(1, 64)
    image[0, 2 * 8 + 2] = 1.0
    shifted = RandomTranslation((8, 8), max_shift=2).shift(image, torch.tensor([[2, 2]]))
    conv = encoder.body[0]
    a = conv(flat_to_images(image, (8, 8, 1)))
    b = conv(flat_to_images(shifted, (8, 8, 1)))
    torch.testing.assert_close(b[..., 2:, 2:], a[..., :-2, :-2])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_components": 0}, "n_components"),
        ({"n_components": True}, "n_components"),
        ({"n_components": 2.0}, "n_components"),
        ({"channels": ()}, "channels"),
        ({"channels": (8, 0)}, "channels"),
        ({"activation": "nope"}, "Unknown activation"),
    ],
)
def test_conv_encoder_errors(kwargs, message):
    params = {"n_components": 4, **kwargs}
    with pytest.raises(ValueError, match=message):
        ConvEncoder((8, 8), **params)
