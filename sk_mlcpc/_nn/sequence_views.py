"""Views of series: random augmentations of a batch of ``(B, C, T)`` sequences.

:class:`~sk_mlcpc.ContrastivePredictiveCoding` (``augmentation=``) trains on random views
of its sequences. A sequence view is a callable ``view(x, lengths, generator) -> x_view``
taking a batch ``x`` of shape ``(B, C, T)`` (right-padded with zeros after each
sequence's ``lengths[b]`` time steps), the lengths ``(B,)`` (int64, on ``x``'s device) and
a :class:`torch.Generator` on ``x``'s device; it returns a new tensor of the same shape,
dtype and device and never modifies ``x``. Views keep the time axis in place (no crop or
shift), so that the windows, and the CPC targets ``z_{t+k}`` read from them, stay aligned
with the anchor times drawn for the batch. Whatever a view writes into the padding is set
back to zero by the estimator (:func:`zero_padding`).

:class:`SeriesAugmentation` is the view of ``augmentation="auto"``: per-channel amplitude
scaling, jitter relative to each series' scale and a masked stretch of time, the
transformations of TS-TCC's weak view and of TS2Vec's masking [1]_ [2]_.

References
----------
.. [1] E. Eldele et al. "Time-Series Representation Learning via Temporal and Contextual
   Contrasting." IJCAI 2021.
.. [2] Z. Yue et al. "TS2Vec: Towards Universal Representation of Time Series." AAAI 2022.
"""

from __future__ import annotations

import torch

from sk_mlcpc._nn.devices import to_device

__all__ = ["SeriesAugmentation", "zero_padding"]


def _valid_steps(lengths: torch.Tensor, n_times: int, device: torch.device) -> torch.Tensor:
    """``(B, 1, T)`` boolean mask of the real time steps."""
    steps = torch.arange(n_times, device=device)
    return (steps < to_device(lengths, device).unsqueeze(1)).unsqueeze(1)


def zero_padding(x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    """``x`` with every time step at or after ``lengths[b]`` set to 0 (a new tensor).

    ``lengths=None`` (every sequence fills ``T``) returns ``x`` itself.

    Examples
    --------
    >>> import torch
    >>> from sk_mlcpc._nn.sequence_views import zero_padding
    >>> zero_padding(torch.ones(2, 1, 3), torch.tensor([3, 1])).tolist()
    [[[1.0, 1.0, 1.0]], [[1.0, 0.0, 0.0]]]
    """
    if lengths is None:
        return x
    return x.masked_fill(~_valid_steps(lengths, x.shape[2], x.device), 0.0)


def _check_non_negative(value: float, name: str) -> float:
    value = float(value)
    if not value >= 0.0:
        raise ValueError(f"{name} must be a non-negative number, got {value}.")
    return value


class SeriesAugmentation:
    """Amplitude scaling per channel, jitter and a masked stretch of time.

    For each sequence ``b`` and channel ``c`` of a batch, in this order:

    1. scaling: multiply by ``exp(scale * N(0, 1))`` (one draw per sequence and channel);
    2. jitter: add Gaussian noise of standard deviation ``jitter`` times the standard
       deviation of the (scaled) channel over the sequence's real time steps, so the noise
       is relative to each series' own scale;
    3. masking: set ``round(mask_rate * lengths[b])`` consecutive real time steps, at a
       uniformly random start, to 0 in every channel (the channel mean after the
       estimator's standardisation).

    The padding after ``lengths[b]`` is left at 0 and never enters the jitter's scale.

    Parameters
    ----------
    scale : float, default=0.1
        Standard deviation of the log of the amplitude factors; 0 for none.
    jitter : float, default=0.1
        Noise level relative to each series' standard deviation per channel; 0 for none.
    mask_rate : float, default=0.1
        Share of each sequence's time steps masked, in ``[0, 1)``; 0 for none.

    Examples
    --------
    >>> import torch
    >>> from sk_mlcpc._nn.sequence_views import SeriesAugmentation
    >>> x = torch.randn(4, 2, 30)
    >>> view = SeriesAugmentation(scale=0.2, jitter=0.1, mask_rate=0.2)
    >>> out = view(x, torch.tensor([30, 30, 20, 10]), torch.Generator().manual_seed(0))
    >>> out.shape, bool((out[3, :, 10:] == 0).all())
    (torch.Size([4, 2, 30]), True)
    """

    def __init__(self, scale: float = 0.1, jitter: float = 0.1, mask_rate: float = 0.1) -> None:
        self.scale = _check_non_negative(scale, "scale")
        self.jitter = _check_non_negative(jitter, "jitter")
        self.mask_rate = _check_non_negative(mask_rate, "mask_rate")
        if self.mask_rate >= 1.0:
            raise ValueError(f"mask_rate must lie in [0, 1), got {self.mask_rate}.")

    def __repr__(self) -> str:
        return (
            f"SeriesAugmentation(scale={self.scale}, jitter={self.jitter}, "
            f"mask_rate={self.mask_rate})"
        )

    def __call__(
        self, x: torch.Tensor, lengths: torch.Tensor | None, generator: torch.Generator
    ) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.ndim != 3:
            raise ValueError(
                "A sequence view takes a 3-D batch tensor (n_sequences, n_channels, "
                f"n_timesteps), got {getattr(x, 'shape', type(x).__name__)}."
            )
        n, n_channels, n_times = x.shape
        if lengths is None:
            lengths = torch.full((n,), n_times, dtype=torch.int64, device=x.device)
        lengths = to_device(lengths, x.device)
        valid = _valid_steps(lengths, n_times, x.device)  # (B, 1, T)
        draw_device = generator.device
        out = x
        if self.scale > 0:
            factors = torch.randn(n, n_channels, 1, generator=generator, device=draw_device)
            factors = to_device(torch.exp(self.scale * factors), x.device).to(x.dtype)
            out = out * factors
        if self.jitter > 0:
            count = lengths.clamp(min=1).to(x.dtype).view(n, 1, 1)
            real = out.masked_fill(~valid, 0.0)
            mean = real.sum(dim=2, keepdim=True) / count
            spread = (real - mean).masked_fill(~valid, 0.0).square().sum(2, keepdim=True) / count
            noise = torch.randn(tuple(x.shape), generator=generator, device=draw_device)
            out = out + to_device(noise, x.device).to(x.dtype) * (self.jitter * spread.sqrt())
        if self.mask_rate > 0:
            span = torch.round(self.mask_rate * lengths.to(torch.float64)).to(torch.int64)
            room = (lengths - span + 1).clamp(min=1)
            start = (
                (torch.rand(n, generator=generator, device=draw_device).to(x.device) * room)
                .floor()
                .to(torch.int64)
            )
            steps = torch.arange(n_times, device=x.device)
            masked = (steps >= start.unsqueeze(1)) & (steps < (start + span).unsqueeze(1))
            out = out.masked_fill(masked.unsqueeze(1), 0.0)
        if out is x:
            out = x.clone()
        return out.masked_fill(~valid, 0.0)
