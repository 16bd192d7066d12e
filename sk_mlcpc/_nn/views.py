"""Views: positive pairs made from single-view data.

A contrastive encoder needs pairs of inputs that share what matters and differ in what
does not. For tabular rows without a second view, two random *views* of the same row
make the pair. Every view here is a callable ``view(x, generator) -> x_view`` taking a
batch tensor of shape ``(n, d)`` and a :class:`torch.Generator`, returning a new tensor
of the same shape, dtype and device; the input is never modified. Any callable with this
signature can be passed to :class:`sk_mlcpc.ContrastiveEncoder` as ``augmentation``.

Rows that are images (``ContrastiveEncoder(image_shape=...)``) get views that move pixels
on the grid instead: :class:`RandomTranslation` (whole-pixel pad-and-crop shifts) and
:class:`RandomAffine` (small rotations, zooms and shifts), with the helpers
:func:`check_image_shape`, :func:`flat_to_images` and :func:`images_to_flat` for the
flattened channels-last layout (the code lives in :mod:`sk_mlcpc._nn.images`).

The estimator passes a generator on the batch's device (a CUDA generator when training on
a GPU), so that no step waits for a copy from the host: draw with
``device=generator.device`` (``torch.rand(shape, generator=generator,
device=generator.device)``); a draw without ``device=`` would be made on the CPU and
fails with a CUDA generator.
"""

from __future__ import annotations

import torch

from sk_mlcpc._nn.devices import to_device
from sk_mlcpc._nn.images import (
    RandomAffine,
    RandomTranslation,
    check_image_shape,
    flat_to_images,
    images_to_flat,
    make_image_view,
)

__all__ = [
    "VIEWS",
    "FeatureCorruption",
    "FeatureMask",
    "GaussianNoise",
    "RandomAffine",
    "RandomTranslation",
    "check_image_shape",
    "flat_to_images",
    "images_to_flat",
    "make_image_view",
    "make_view",
]


def _check_rate(rate: float, name: str = "rate") -> float:
    rate = float(rate)
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1], got {rate}.")
    return rate


def _check_batch(x: torch.Tensor, n_features: int | None = None) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 2:
        raise ValueError(f"A view takes a 2-D batch tensor (n, d), got {type(x).__name__}.")
    if n_features is not None and x.shape[1] != n_features:
        raise ValueError(
            f"The batch has {x.shape[1]} features, the view was built for {n_features}."
        )


def _chosen_features(
    shape: tuple[int, int], rate: float, generator: torch.Generator, device: torch.device
) -> torch.Tensor:
    """Boolean mask choosing about ``rate * d`` features of each row, uniformly.

    Each row gets ``floor(rate * d)`` features, plus one more with probability
    ``frac(rate * d)``: exactly ``rate`` on average, even when ``rate * d < 1``.
    """
    n, d = shape
    whole, fraction = divmod(rate * d, 1.0)
    extra = torch.rand(n, 1, generator=generator, device=generator.device) < fraction
    counts = int(whole) + extra.to(torch.int64)
    # Ranks of i.i.d. uniforms are a uniform random permutation of each row.
    keys = torch.rand(n, d, generator=generator, device=generator.device)
    ranks = keys.argsort(dim=1).argsort(dim=1)
    return to_device(ranks < counts, device)


class FeatureCorruption:
    """Replace a share of each row's features with draws from the features' marginals.

    For each row, ``rate * d`` features (rounded up or down at random, so that the share
    is exactly ``rate`` on average) chosen uniformly at random are replaced by
    the value the same feature takes in a random row of ``reference`` (the empirical
    marginal of that feature), as in SCARF [1]_. The corrupted row stays on the data's
    support column by column, unlike additive noise.

    Parameters
    ----------
    reference : torch.Tensor of shape (n_reference, d)
        Rows whose columns define the marginals (typically the training rows).
    rate : float, default=0.3
        Share of the features replaced in each row, in ``[0, 1]``.

    References
    ----------
    .. [1] D. Bahri, H. Jiang, Y. Tay, D. Metzler. "SCARF: Self-Supervised Contrastive
       Learning using Random Feature Corruption." ICLR 2022.

    Examples
    --------
    >>> import torch
    >>> from sk_mlcpc.views import FeatureCorruption
    >>> reference = torch.arange(20.0).reshape(10, 2)
    >>> view = FeatureCorruption(reference, rate=0.5)
    >>> out = view(reference[:4], torch.Generator().manual_seed(0))
    >>> out.shape
    torch.Size([4, 2])
    """

    def __init__(self, reference: torch.Tensor, rate: float = 0.3) -> None:
        _check_batch(reference)
        if len(reference) < 1:
            raise ValueError("reference must hold at least one row.")
        self.reference = reference
        self.rate = _check_rate(rate)

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        _check_batch(x, self.reference.shape[1])
        chosen = _chosen_features(tuple(x.shape), self.rate, generator, x.device)
        rows = torch.randint(
            len(self.reference), tuple(x.shape), generator=generator, device=generator.device
        )
        reference = self.reference
        if reference.device != x.device or reference.dtype != x.dtype:
            reference = reference.to(device=x.device, dtype=x.dtype)
        # gather along rows: replacement[i, j] = reference[rows[i, j], j].
        replacement = reference.gather(0, to_device(rows, x.device))
        return torch.where(chosen, replacement, x)


class GaussianNoise:
    """Add Gaussian noise scaled per feature: ``x + scale * std_j * eps``.

    Parameters
    ----------
    scale : float, default=0.5
        Noise standard deviation as a multiple of each feature's standard deviation.
    feature_std : torch.Tensor of shape (d,) or None, default=None
        Per-feature standard deviations; ``None`` means 1 (standardised inputs).

    Examples
    --------
    >>> import torch
    >>> from sk_mlcpc.views import GaussianNoise
    >>> view = GaussianNoise(scale=0.1)
    >>> view(torch.zeros(3, 2), torch.Generator().manual_seed(0)).shape
    torch.Size([3, 2])
    """

    def __init__(self, scale: float = 0.5, feature_std: torch.Tensor | None = None) -> None:
        if not float(scale) >= 0:
            raise ValueError(f"scale must be non-negative, got {scale}.")
        self.scale = float(scale)
        self.feature_std = feature_std

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        _check_batch(x, None if self.feature_std is None else len(self.feature_std))
        noise = torch.randn(tuple(x.shape), generator=generator, device=generator.device)
        noise = to_device(noise, x.device).to(dtype=x.dtype) * self.scale
        if self.feature_std is not None:
            noise = noise * to_device(self.feature_std, x.device).to(dtype=x.dtype)
        return x + noise


class FeatureMask:
    """Set a share of each row's features to ``fill`` (0: the mean of standardised data).

    Parameters
    ----------
    rate : float, default=0.3
        Share of the features masked in each row, in ``[0, 1]`` (rounded at random per
        row, as in :class:`FeatureCorruption`).
    fill : float, default=0.0
        Value written into masked features.

    Examples
    --------
    >>> import torch
    >>> from sk_mlcpc.views import FeatureMask
    >>> out = FeatureMask(rate=0.5)(torch.ones(2, 4), torch.Generator().manual_seed(0))
    >>> out.sum(dim=1).tolist()
    [2.0, 2.0]
    """

    def __init__(self, rate: float = 0.3, fill: float = 0.0) -> None:
        self.rate = _check_rate(rate)
        self.fill = float(fill)

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        _check_batch(x)
        chosen = _chosen_features(tuple(x.shape), self.rate, generator, x.device)
        return x.masked_fill(chosen, self.fill)


#: Names accepted by :func:`make_view` and ``ContrastiveEncoder(augmentation=...)``.
VIEWS = ("corruption", "noise", "mask")


def make_view(
    name: str,
    reference: torch.Tensor,
    *,
    corruption_rate: float = 0.3,
    noise_scale: float = 0.5,
):
    """Build a named view from the rows that define the data's marginals.

    Parameters
    ----------
    name : {"corruption", "noise", "mask"}
        :class:`FeatureCorruption` (rate ``corruption_rate``), :class:`GaussianNoise`
        (``noise_scale`` times each column's standard deviation in ``reference``) or
        :class:`FeatureMask` (rate ``corruption_rate``).
    reference : torch.Tensor of shape (n_reference, d)
        Typically the training rows.
    corruption_rate : float, default=0.3
        Share of features corrupted or masked.
    noise_scale : float, default=0.5
        Noise level for ``"noise"``.

    Returns
    -------
    view : callable ``(x, generator) -> x_view``

    Examples
    --------
    >>> import torch
    >>> from sk_mlcpc.views import make_view
    >>> view = make_view("mask", torch.zeros(5, 3), corruption_rate=1.0)
    >>> view(torch.ones(2, 3), torch.Generator()).sum().item()
    0.0
    """
    if name == "corruption":
        return FeatureCorruption(reference, corruption_rate)
    if name == "noise":
        std = reference.std(dim=0) if len(reference) > 1 else torch.ones(reference.shape[1])
        return GaussianNoise(noise_scale, std.nan_to_num(1.0))
    if name == "mask":
        return FeatureMask(corruption_rate)
    raise ValueError(f"Unknown view {name!r}; choose one of {VIEWS} or pass a callable.")
