"""Images given as flattened rows: views on the pixel grid and a small convolutional encoder.

A row of ``h * w * c`` numbers is an image of ``h`` rows, ``w`` columns and ``c``
channels, flattened channels-last (``images.reshape(n, -1)`` of an array shaped
``(n, h, w, c)``; for one channel, ``(n, h, w)``), as :func:`sklearn.datasets.load_digits`
and most image arrays are stored. ``image_shape`` is ``(h, w)`` or ``(h, w, c)``.

The views here follow the contract of :mod:`sk_mlcpc.views`: ``view(x, generator)``
takes a batch ``(n, h * w * c)`` and a :class:`torch.Generator` on the batch's device and
returns a new tensor of the same shape, dtype and device, without modifying ``x``. They
move pixels, so they must see the pixel grid before any per-column scaling (which gives
each pixel its own offset and scale and scrambles neighbourhoods); a scaling shared by
every pixel of a channel commutes with them, the constant ``fill`` of the pixels that
enter from outside the image included, once ``fill`` is scaled the same way.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Integral

import torch
from torch import nn
from torch.nn import functional

from sk_mlcpc._nn.encoders import ACTIVATIONS

__all__ = [
    "ConvEncoder",
    "RandomAffine",
    "RandomTranslation",
    "check_image_shape",
    "flat_to_images",
    "images_to_flat",
    "make_image_view",
]


def check_image_shape(image_shape, n_features: int | None = None) -> tuple[int, int, int]:
    """``image_shape`` as ``(h, w, c)``, checked against the width of the rows.

    Parameters
    ----------
    image_shape : tuple of int
        ``(h, w)`` (one channel) or ``(h, w, c)``, every size a positive integer.
    n_features : int or None, default=None
        Width of the rows: must equal ``h * w * c``.

    Returns
    -------
    image_shape : tuple of (int, int, int)
        ``(h, w, c)``.

    Raises
    ------
    TypeError
        When ``image_shape`` is not a tuple or list of integers.
    ValueError
        When it has not 2 or 3 entries, an entry is not positive, or ``h * w * c`` differs
        from ``n_features`` (the message says when the width fits another channel count).

    Examples
    --------
    >>> from sk_mlcpc._nn.images import check_image_shape
    >>> check_image_shape((8, 8), n_features=64)
    (8, 8, 1)
    >>> check_image_shape((8, 8), n_features=192)
    Traceback (most recent call last):
    ...
    ValueError: image_shape=(8, 8) describes rows of 64 values (8 x 8 pixels, 1 channel), \
but X has 192 features; 192 = 8 x 8 x 3: pass image_shape=(8, 8, 3) for 3 channels.
    """
    if not isinstance(image_shape, tuple | list):
        raise TypeError(
            f"image_shape must be a tuple (h, w) or (h, w, c) of positive integers, got "
            f"{image_shape!r}."
        )
    if len(image_shape) not in (2, 3):
        raise ValueError(
            f"image_shape must have 2 entries (h, w) or 3 (h, w, c), got {len(image_shape)}: "
            f"{tuple(image_shape)!r}."
        )
    for size in image_shape:
        if not isinstance(size, Integral) or isinstance(size, bool):
            raise TypeError(
                f"image_shape must hold integers, got {tuple(image_shape)!r} "
                f"({type(size).__name__} {size!r})."
            )
        if size < 1:
            raise ValueError(f"image_shape must hold positive sizes, got {tuple(image_shape)!r}.")
    h, w = int(image_shape[0]), int(image_shape[1])
    c = int(image_shape[2]) if len(image_shape) == 3 else 1
    if n_features is not None and h * w * c != n_features:
        channels = "1 channel" if c == 1 else f"{c} channels"
        message = (
            f"image_shape={tuple(image_shape)!r} describes rows of {h * w * c} values "
            f"({h} x {w} pixels, {channels}), but X has {n_features} features"
        )
        if n_features % (h * w) == 0:
            fitting = n_features // (h * w)
            message += (
                f"; {n_features} = {h} x {w} x {fitting}: pass image_shape=({h}, {w}, "
                f"{fitting}) for {fitting} channel{'s' if fitting > 1 else ''}"
            )
        raise ValueError(message + ".")
    return h, w, c


def flat_to_images(x: torch.Tensor, image_shape: tuple[int, int, int]) -> torch.Tensor:
    """Rows ``(n, h * w * c)``, flattened channels-last, as images ``(n, c, h, w)``.

    Parameters
    ----------
    x : torch.Tensor of shape (n, h * w * c)
        Rows, each an image flattened channels-last.
    image_shape : tuple of (int, int, int)
        ``(h, w, c)``, as :func:`check_image_shape` returns it.

    Returns
    -------
    images : torch.Tensor of shape (n, c, h, w)
        A view of ``x`` where possible (no copy).

    Examples
    --------
    >>> import torch
    >>> from sk_mlcpc._nn.images import flat_to_images
    >>> flat_to_images(torch.arange(12.0).reshape(1, 12), (2, 3, 2))[0, 1]
    tensor([[ 1.,  3.,  5.],
            [ 7.,  9., 11.]])
    """
    h, w, c = image_shape
    return x.reshape(len(x), h, w, c).permute(0, 3, 1, 2)


def images_to_flat(images: torch.Tensor) -> torch.Tensor:
    """Images ``(n, c, h, w)`` as rows ``(n, h * w * c)``, the inverse of :func:`flat_to_images`.

    Parameters
    ----------
    images : torch.Tensor of shape (n, c, h, w)

    Returns
    -------
    x : torch.Tensor of shape (n, h * w * c)
        Rows flattened channels-last.

    Examples
    --------
    >>> import torch
    >>> from sk_mlcpc._nn.images import flat_to_images, images_to_flat
    >>> x = torch.randn(3, 24)
    >>> bool(torch.equal(images_to_flat(flat_to_images(x, (2, 4, 3))), x))
    True
    """
    return images.permute(0, 2, 3, 1).reshape(len(images), -1)


def _channel_fill(fill, channels: int) -> torch.Tensor:
    """``fill`` (a number or one per channel) as a float64 tensor of shape ``(c,)``."""
    # On the host whatever the default device (a model is sized under torch.device("meta")).
    values = torch.as_tensor(fill, dtype=torch.float64, device="cpu").flatten()
    if len(values) == 1:
        values = values.expand(channels)
    if len(values) != channels:
        raise ValueError(
            f"fill must be one number or one per channel ({channels}), got {len(values)}."
        )
    if not torch.isfinite(values).all():
        raise ValueError(f"fill must be finite, got {values.tolist()}.")
    return values.clone()


def _check_rows(x: torch.Tensor, image_shape: tuple[int, int, int]) -> None:
    h, w, c = image_shape
    if not isinstance(x, torch.Tensor) or x.ndim != 2:
        raise ValueError(
            f"An image view takes a 2-D batch tensor (n, h * w * c), got "
            f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}."
        )
    if x.shape[1] != h * w * c:
        raise ValueError(
            f"The batch has {x.shape[1]} features; the view was built for images of shape "
            f"{image_shape} ({h * w * c} values)."
        )


class RandomTranslation:
    """Shift each image by a whole number of pixels, filling what enters with ``fill``.

    Each image of the batch gets its own shift ``(dy, dx)``, both uniform on the integers
    from ``-max_shift`` to ``max_shift``: ``out[i, j] = image[i - dy, j - dx]`` where that
    pixel exists and ``fill`` elsewhere (pad-and-crop). No pixel value is interpolated.

    Parameters
    ----------
    image_shape : tuple of int
        ``(h, w)`` or ``(h, w, c)``, see :func:`check_image_shape`.
    max_shift : int, default=1
        Largest shift, in pixels, along each axis.
    fill : float or sequence of float, default=0.0
        Value of the pixels that enter the image (one, or one per channel).

    Examples
    --------
    >>> import torch
    >>> from sk_mlcpc._nn.images import RandomTranslation
    >>> view = RandomTranslation((8, 8), max_shift=2)
    >>> x = torch.rand(5, 64)
    >>> view(x, torch.Generator().manual_seed(0)).shape
    torch.Size([5, 64])
    """

    def __init__(self, image_shape, max_shift: int = 1, fill=0.0) -> None:
        self.image_shape = check_image_shape(image_shape)
        if not isinstance(max_shift, Integral) or isinstance(max_shift, bool) or max_shift < 0:
            raise ValueError(f"max_shift must be a non-negative integer, got {max_shift!r}.")
        self.max_shift = int(max_shift)
        self.fill = _channel_fill(fill, self.image_shape[2])

    def draw_shifts(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """The shifts ``(n, 2)`` (``dy, dx``) of a batch of ``n`` images."""
        m = self.max_shift
        return torch.randint(-m, m + 1, (n, 2), generator=generator, device=generator.device)

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        _check_rows(x, self.image_shape)
        shifts = self.draw_shifts(len(x), generator).to(x.device)
        return self.shift(x, shifts)

    def shift(self, x: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
        """``x`` with image ``k`` shifted by ``shifts[k] = (dy, dx)`` (at most ``max_shift``)."""
        _check_rows(x, self.image_shape)
        h, w, c = self.image_shape
        m, n = self.max_shift, len(x)
        images = flat_to_images(x, self.image_shape)
        fill = self.fill.to(device=x.device, dtype=x.dtype).view(1, c, 1, 1)
        padded = fill.expand(n, c, h + 2 * m, w + 2 * m).clone()
        padded[:, :, m : m + h, m : m + w] = images
        # out[k, :, i, j] = padded[k, :, i - dy + m, j - dx + m]
        rows = torch.arange(h, device=x.device) - shifts[:, :1] + m  # (n, h)
        cols = torch.arange(w, device=x.device) - shifts[:, 1:] + m  # (n, w)
        batch = torch.arange(n, device=x.device).view(n, 1, 1, 1)
        channel = torch.arange(c, device=x.device).view(1, c, 1, 1)
        shifted = padded[batch, channel, rows.view(n, 1, h, 1), cols.view(n, 1, 1, w)]
        return images_to_flat(shifted)


class RandomAffine:
    """Random small rotations, zooms and translations of each image, on the pixel grid.

    Each image of the batch gets its own angle (uniform within ``±rotation`` degrees),
    zoom factor (log-uniform in ``[1 / (1 + zoom), 1 + zoom]``: above 1 is a crop
    enlarged to the image's size, below 1 a shrunk image with a border) and shift
    (uniform within ``±translation`` times the height and the width), applied about the image's
    centre by bilinear resampling (:func:`torch.nn.functional.grid_sample`); pixels that
    come from outside the image take ``fill``. Geometry is in pixels, so a rotation of a
    non-square image is a true rotation.

    Parameters
    ----------
    image_shape : tuple of int
        ``(h, w)`` or ``(h, w, c)``, see :func:`check_image_shape`.
    translation : float, default=0.25
        Largest shift along each axis, as a share of the image's height and width
        (0.25: two pixels of an ``8 x 8`` image).
    rotation : float, default=15.0
        Largest rotation, in degrees.
    zoom : float, default=0.2
        Largest relative zoom in and out (0: none).
    fill : float or sequence of float, default=0.0
        Value of the pixels from outside the image (one, or one per channel).

    Examples
    --------
    >>> import torch
    >>> from sk_mlcpc._nn.images import RandomAffine
    >>> view = RandomAffine((8, 8), translation=0.2, rotation=15.0)
    >>> x = torch.rand(5, 64)
    >>> out = view(x, torch.Generator().manual_seed(0))
    >>> out.shape, out.dtype
    (torch.Size([5, 64]), torch.float32)
    """

    def __init__(
        self,
        image_shape,
        translation: float = 0.25,
        rotation: float = 15.0,
        zoom: float = 0.2,
        fill=0.0,
    ) -> None:
        self.image_shape = check_image_shape(image_shape)
        for name, value, most in (
            ("translation", translation, 1.0),
            ("rotation", rotation, 180.0),
            ("zoom", zoom, math.inf),
        ):
            if not 0 <= float(value) <= most:
                raise ValueError(f"{name} must lie in [0, {most}], got {value!r}.")
        self.translation = float(translation)
        self.rotation = float(rotation)
        self.zoom = float(zoom)
        self.fill = _channel_fill(fill, self.image_shape[2])

    def draw_parameters(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``(n, 4)`` draws per image: angle (radians), log zoom, ``dy`` and ``dx`` (pixels)."""
        u = torch.rand(n, 4, generator=generator, device=generator.device) * 2 - 1
        h, w, _ = self.image_shape
        bounds = torch.tensor(
            [
                math.radians(self.rotation),
                math.log1p(self.zoom),
                self.translation * h,
                self.translation * w,
            ],
            device=u.device,
        )
        return u * bounds

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        _check_rows(x, self.image_shape)
        parameters = self.draw_parameters(len(x), generator).to(x.device)
        return self.transform(x, parameters)

    def transform(self, x: torch.Tensor, parameters: torch.Tensor) -> torch.Tensor:
        """``x`` with image ``k`` moved by ``parameters[k] = (angle, log zoom, dy, dx)``."""
        _check_rows(x, self.image_shape)
        h, w, c = self.image_shape
        work = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
        images = flat_to_images(x, self.image_shape).to(work)
        fill = self.fill.to(device=x.device, dtype=work).view(1, c, 1, 1)
        parameters = parameters.to(device=x.device, dtype=work)
        angle, log_zoom, dy, dx = parameters.unbind(dim=1)
        # Output pixel p (in pixels from the centre, x right and y down) samples the input
        # at A p - t, with A = R(-angle) / zoom: the content turns by angle, grows by zoom
        # and moves by t = (dx, dy). In grid_sample's normalised coordinates
        # (u = 2 x / w, v = 2 y / h) this is D^-1 A D u - D^-1 t, with D = diag(w/2, h/2).
        cos, sin = torch.cos(angle) / torch.exp(log_zoom), torch.sin(angle) / torch.exp(log_zoom)
        theta = torch.stack(
            [
                torch.stack([cos, sin * h / w, -2 * dx / w], dim=1),
                torch.stack([-sin * w / h, cos, -2 * dy / h], dim=1),
            ],
            dim=1,
        )  # (n, 2, 3)
        grid = functional.affine_grid(theta, [len(x), c, h, w], align_corners=False)
        # Zeros padding on (image - fill), then + fill: exactly a constant fill outside.
        moved = functional.grid_sample(
            images - fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False
        )
        return images_to_flat(moved + fill).to(x.dtype)


class ConvEncoder(nn.Module):
    """A small convolutional encoder of flattened image rows.

    Blocks of ``3 x 3`` convolution (padding 1), batch normalisation and ``activation``,
    one block per entry of ``channels``; after a block, a ``2 x 2`` max-pooling halves the
    grid while its shorter side is at least 8 (an ``8 x 8`` image is pooled once, a
    ``32 x 32`` one three times). Then:

    - ``n_components=None``: the last block's feature map, average-pooled to at most
      ``2 x 2`` cells and flattened, is the output: ``channels[-1]`` numbers per cell
      (512 for an image of at least ``8 x 8`` pixels with the default channels), with no
      linear layer after the convolutions;
    - ``n_components`` an integer: an average pooling to at most ``4 x 4`` cells and a
      linear layer map the feature map to ``n_components`` numbers.

    Parameters
    ----------
    image_shape : tuple of int
        ``(h, w)`` or ``(h, w, c)``; rows are flattened channels-last.
    n_components : int or None, default=None
        Output width, through a final linear layer; ``None`` returns the pooled feature
        map itself (width :attr:`out_features`).
    channels : sequence of int, default=(64, 128)
        Channels of each convolution block.
    activation : str, default="relu"
        One of :data:`sk_mlcpc.encoders.ACTIVATIONS`.

    Attributes
    ----------
    out_features : int
        Width of the output.

    Examples
    --------
    >>> import torch
    >>> from sk_mlcpc.encoders import ConvEncoder
    >>> encoder = ConvEncoder((8, 8), n_components=16)
    >>> encoder(torch.zeros(4, 64)).shape
    torch.Size([4, 16])
    >>> pooled = ConvEncoder((8, 8))  # 128 channels x 2 x 2 cells
    >>> pooled(torch.zeros(4, 64)).shape, pooled.out_features
    (torch.Size([4, 512]), 512)
    """

    def __init__(
        self,
        image_shape,
        n_components: int | None = None,
        channels: Sequence[int] = (64, 128),
        activation: str = "relu",
    ) -> None:
        super().__init__()
        self.image_shape = check_image_shape(image_shape)
        if activation not in ACTIVATIONS:
            choices = ", ".join(repr(name) for name in ACTIVATIONS)
            raise ValueError(f"Unknown activation {activation!r}. Choose one of: {choices}.")
        if n_components is not None and (
            not isinstance(n_components, Integral)
            or isinstance(n_components, bool)
            or n_components < 1
        ):
            raise ValueError(
                f"n_components must be a positive integer or None, got {n_components!r}."
            )
        channels = tuple(channels)
        if not channels or any(not isinstance(width, Integral) or width < 1 for width in channels):
            raise ValueError(f"channels must hold positive integers, got {channels!r}.")
        h, w, c = self.image_shape
        layers: list[nn.Module] = []
        width_in = c
        for width in channels:
            layers += [
                nn.Conv2d(width_in, int(width), 3, padding=1),
                nn.BatchNorm2d(int(width)),
                ACTIVATIONS[activation](),
            ]
            if min(h, w) >= 8:
                layers.append(nn.MaxPool2d(2))
                h, w = h // 2, w // 2
            width_in = int(width)
        cells = 2 if n_components is None else 4
        grid = (min(h, cells), min(w, cells))
        layers += [nn.AdaptiveAvgPool2d(grid), nn.Flatten()]
        self.body = nn.Sequential(*layers)
        pooled = width_in * grid[0] * grid[1]
        if n_components is None:
            self.head: nn.Module = nn.Identity()
            self.out_features = pooled
        else:
            self.head = nn.Linear(pooled, int(n_components))
            self.out_features = int(n_components)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(flat_to_images(x, self.image_shape)))


def make_image_view(
    image_shape,
    *,
    translation: float = 0.25,
    rotation: float = 15.0,
    zoom: float = 0.2,
    fill=0.0,
):
    """The default view of image rows: a :class:`RandomAffine` of the given strengths.

    Parameters
    ----------
    image_shape : tuple of int
        ``(h, w)`` or ``(h, w, c)``.
    translation, rotation, zoom : float
        See :class:`RandomAffine`.
    fill : float or sequence of float, default=0.0
        Value of the pixels from outside the image.

    Returns
    -------
    view : callable ``(x, generator) -> x_view``

    Examples
    --------
    >>> import torch
    >>> from sk_mlcpc._nn.images import make_image_view
    >>> view = make_image_view((8, 8), translation=0.0, rotation=0.0, zoom=0.0)
    >>> x = torch.rand(2, 64)
    >>> bool(torch.allclose(view(x, torch.Generator()), x, atol=1e-6))
    True
    """
    return RandomAffine(
        image_shape, translation=translation, rotation=rotation, zoom=zoom, fill=fill
    )
