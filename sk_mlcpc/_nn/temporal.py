"""Torch building blocks for series: a dilated causal convolution encoder and masked pooling.

:class:`CausalConvEncoder` maps ``(B, C, T)`` series to per-time-step features whose
receptive field is exactly ``window`` samples ending at each time step (causal, dilated
convolutions in the line of WaveNet, CPC and TS2Vec); :func:`masked_mean`,
:func:`masked_max`, :func:`last_valid` and :func:`segment_means` pool features over time
while ignoring the padding of shorter series in a batch (right padding: causal features
at the real time steps never see it).

Examples
--------
>>> import torch
>>> from sk_mlcpc._nn.temporal import CausalConvEncoder
>>> encoder = CausalConvEncoder(n_channels=2, window=9, width=16, out_dim=4)
>>> encoder.receptive_field, encoder.dilations
(9, (1, 2, 4, 1))
>>> encoder(torch.zeros(3, 2, 20)).shape
torch.Size([3, 4, 20])
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from sk_mlcpc._nn.encoders import ACTIVATIONS

__all__ = [
    "CausalConvEncoder",
    "causal_dilations",
    "last_valid",
    "masked_max",
    "masked_mean",
    "segment_means",
    "spread_penalty",
    "time_mask",
]


def causal_dilations(window: int) -> tuple[int, ...]:
    """Dilations of kernel-2 causal convolutions whose receptive field is ``window``.

    Doubling dilations ``1, 2, 4, ...`` while they fit, then one layer that fills the rest:
    the receptive field of kernel-2 layers is ``1 + sum(dilations)``. ``window=1`` gives
    no dilated layer.

    Examples
    --------
    >>> from sk_mlcpc._nn.temporal import causal_dilations
    >>> causal_dilations(1), causal_dilations(2), causal_dilations(16), causal_dilations(6)
    ((), (1,), (1, 2, 4, 8), (1, 2, 2))
    """
    if window < 1:
        raise ValueError(f"window must be a positive integer, got {window}.")
    dilations: list[int] = []
    field, dilation = 1, 1
    while field + dilation <= window:
        dilations.append(dilation)
        field += dilation
        dilation *= 2
    if field < window:
        dilations.append(window - field)
    return tuple(dilations)


class _CausalConv(nn.Module):
    """``Conv1d`` padded on the left only: output ``t`` sees inputs ``<= t``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int):
        super().__init__()
        self.padding = (kernel_size - 1) * dilation
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, dilation=dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (self.padding, 0)))


class CausalConvEncoder(nn.Module):
    """Dilated causal convolutions with residual connections, receptive field ``window``.

    Layers: kernel-2 causal convolutions of ``width`` channels with the dilations of
    :func:`causal_dilations` (``window=1``: one pointwise layer), each followed by the
    activation and, from the second on, added to its input (residual); then a pointwise
    projection to ``out_dim``. The output at time ``t`` depends on the inputs at times
    ``t - window + 1 .. t`` only (zeros before the start of the series), so right padding
    never changes the outputs at the real time steps, and the output at
    ``t = s * stride + window - 1`` is a function of the window ``s`` of a strided
    window encoder. ``width=None`` gives one linear causal convolution of kernel
    ``window`` (no hidden layer).

    Parameters
    ----------
    n_channels : int
        Input channels.
    window : int
        Receptive field in samples.
    width : int or None
        Channels of the hidden layers; None for a linear encoder.
    out_dim : int
        Output channels.
    activation : str, default="relu"
        One of :data:`sk_mlcpc.encoders.ACTIVATIONS`.

    Examples
    --------
    >>> import torch
    >>> from sk_mlcpc._nn.temporal import CausalConvEncoder
    >>> encoder = CausalConvEncoder(1, window=4, width=8, out_dim=2)
    >>> x = torch.randn(1, 1, 10)
    >>> y = encoder(x)
    >>> x2 = x.clone()
    >>> x2[..., 6:] = 0.0  # the future of t = 5 changes
    >>> torch.equal(encoder(x2)[..., :6], y[..., :6])
    True
    """

    def __init__(
        self,
        n_channels: int,
        window: int,
        width: int | None,
        out_dim: int,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        self.receptive_field = int(window)
        self.dilations = causal_dilations(window) if width is not None else ()
        self.layers = nn.ModuleList()
        self.activation = ACTIVATIONS[activation]()
        if width is None:
            self.output = _CausalConv(n_channels, out_dim, window, 1)
            return
        widths = n_channels
        for dilation in self.dilations or (None,):
            if dilation is None:  # window == 1: one pointwise hidden layer
                self.layers.append(_CausalConv(widths, width, 1, 1))
            else:
                self.layers.append(_CausalConv(widths, width, 2, dilation))
            widths = width
        self.output = nn.Conv1d(width, out_dim, 1)

    @property
    def hidden_widths(self) -> tuple[int, ...]:
        """Channels of each hidden layer's output (what :meth:`hidden` returns)."""
        return tuple(layer.conv.out_channels for layer in self.layers)

    def hidden(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """``(B, C, T)`` -> every hidden layer's output ``(B, width, T)`` and the output
        ``(B, out_dim, T)``."""
        outputs = []
        h = x
        for index, layer in enumerate(self.layers):
            step = self.activation(layer(h))
            h = step if index == 0 else h + step
            outputs.append(h)
        return outputs, self.output(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.hidden(x)[1]


def time_mask(lengths: torch.Tensor, n_times: int) -> torch.Tensor:
    """``(B, n_times)`` boolean mask, true at the times ``t < lengths[b]``."""
    return torch.arange(n_times, device=lengths.device) < lengths.unsqueeze(1)


def masked_mean(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Mean over the last (time) axis of ``(B, D, T)`` at times ``t < lengths[b]``.

    Examples
    --------
    >>> import torch
    >>> from sk_mlcpc._nn.temporal import masked_mean
    >>> masked_mean(torch.tensor([[[1.0, 3.0, 100.0]]]), torch.tensor([2]))
    tensor([[2.]])
    """
    mask = time_mask(lengths, x.shape[-1]).unsqueeze(1).to(x.dtype)
    return (x * mask).sum(dim=-1) / lengths.to(x.dtype).unsqueeze(1)


def masked_max(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Maximum over the last (time) axis of ``(B, D, T)`` at times ``t < lengths[b]``.

    Examples
    --------
    >>> import torch
    >>> from sk_mlcpc._nn.temporal import masked_max
    >>> masked_max(torch.tensor([[[1.0, 3.0, 100.0]]]), torch.tensor([2]))
    tensor([[3.]])
    """
    mask = time_mask(lengths, x.shape[-1]).unsqueeze(1)
    return x.masked_fill(~mask, float("-inf")).amax(dim=-1)


def last_valid(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """The value at time ``lengths[b] - 1`` of ``(B, D, T)``: ``(B, D)``.

    Examples
    --------
    >>> import torch
    >>> from sk_mlcpc._nn.temporal import last_valid
    >>> last_valid(torch.tensor([[[1.0, 3.0, 100.0]]]), torch.tensor([2]))
    tensor([[3.]])
    """
    index = (lengths - 1).view(-1, 1, 1).expand(-1, x.shape[1], 1)
    return torch.gather(x, 2, index).squeeze(-1)


def segment_means(x: torch.Tensor, lengths: torch.Tensor, n_segments: int) -> torch.Tensor:
    """Means of ``(B, D, T)`` over ``n_segments`` equal stretches of each series' real times.

    Series ``b`` (``L = lengths[b]`` real times) is cut as
    :func:`torch.nn.functional.adaptive_avg_pool1d` cuts a series of length ``L``:
    segment ``s`` covers the times ``floor(s L / S) .. ceil((s + 1) L / S) - 1``, so every
    segment holds at least one time (neighbouring segments share one when ``S`` does not
    divide ``L``; each time is its own segment when ``L == S``; times repeat when
    ``L < S``). The padding after ``L`` is never read. Unlike a global mean, the result
    keeps *where* in the series a feature occurs, at a resolution of ``L / S`` times.

    Parameters
    ----------
    x : torch.Tensor of shape (B, D, T)
        Features over time, right-padded after each series' length.
    lengths : torch.Tensor of shape (B,), int64
        Real times of each series, between 1 and ``T``.
    n_segments : int
        Segments ``S``, at least 1.

    Returns
    -------
    means : torch.Tensor of shape (B, D * S)
        Column ``d * S + s`` is the mean of feature ``d`` over segment ``s``.

    Examples
    --------
    >>> import torch
    >>> from sk_mlcpc._nn.temporal import segment_means
    >>> x = torch.tensor([[[1.0, 3.0, 5.0, 7.0, 100.0]]])
    >>> segment_means(x, torch.tensor([4]), 2)  # times 0-1 and 2-3; the padding unread
    tensor([[2., 6.]])
    >>> segment_means(x, torch.tensor([4]), 4)  # one time per segment
    tensor([[1., 3., 5., 7.]])
    """
    if n_segments < 1:
        raise ValueError(f"n_segments must be a positive integer, got {n_segments}.")
    segment = torch.arange(n_segments, device=x.device).unsqueeze(0)  # (1, S)
    length = lengths.to(x.device).unsqueeze(1)  # (B, 1)
    start = torch.div(segment * length, n_segments, rounding_mode="floor")  # (B, S)
    end = torch.div((segment + 1) * length + n_segments - 1, n_segments, rounding_mode="floor")
    times = torch.arange(x.shape[-1], device=x.device).view(1, 1, -1)  # (1, 1, T)
    inside = (times >= start.unsqueeze(-1)) & (times < end.unsqueeze(-1))  # (B, S, T)
    weights = inside.to(x.dtype) / (end - start).unsqueeze(-1).to(x.dtype)
    return torch.einsum("bdt,bst->bds", x, weights).reshape(len(x), -1)


#: Weight of the covariance part of :func:`spread_penalty` relative to its variance part
#: (VICReg's 1 to 25).
COVARIANCE_SHARE = 0.04


def spread_penalty(z: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
    """Variance-covariance penalty on latents, VICReg's regulariser [1]_: a 0-d tensor.

    With ``N`` latent vectors of width ``D`` (every real time step of every series, pooled)
    and their covariance ``S``: ``mean_d relu(1 - sqrt(S_dd + 1e-4)) +
    COVARIANCE_SHARE * sum_{d != e} S_de^2 / D``. It is 0 for whitened latents and grows
    as they collapse onto fewer dimensions (constant or correlated coordinates).

    Parameters
    ----------
    z : torch.Tensor of shape (B, L, D)
        Latents over time, right-padded after each series' ``lengths[b]`` steps.
    lengths : torch.Tensor of shape (B,) or None, default=None
        Real steps of each series; None: all ``L``. Padding never enters.

    References
    ----------
    .. [1] A. Bardes, J. Ponce, Y. LeCun. "VICReg: Variance-Invariance-Covariance
       Regularization for Self-Supervised Learning." ICLR 2022.

    Examples
    --------
    >>> import torch
    >>> from sk_mlcpc._nn.temporal import spread_penalty
    >>> float(spread_penalty(torch.zeros(4, 5, 3)))  # collapsed: every std is 0
    0.99
    """
    if lengths is None:
        flat = z.reshape(-1, z.shape[-1])
    else:
        flat = z[time_mask(lengths.to(z.device), z.shape[1])]
    flat = flat - flat.mean(dim=0)
    covariance = flat.T @ flat / max(len(flat) - 1, 1)
    variance = torch.diagonal(covariance)
    spread = torch.relu(1.0 - torch.sqrt(variance + 1e-4)).mean()
    off_diagonal = covariance.square().sum() - variance.square().sum()
    return spread + COVARIANCE_SHARE * off_diagonal / z.shape[-1]
