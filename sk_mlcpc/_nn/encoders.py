"""Encoder builders shared by the critics and estimators."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

__all__ = ["ACTIVATIONS", "make_mlp"]

#: Activation names accepted by :func:`make_mlp` and the estimators' ``activation``.
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "elu": nn.ELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "leaky_relu": nn.LeakyReLU,
}


def make_mlp(
    in_features: int,
    out_features: int,
    hidden_layer_sizes: Sequence[int] = (256, 256),
    activation: str = "relu",
) -> nn.Sequential:
    """Build a multi-layer perceptron ``in_features -> hidden... -> out_features``.

    Parameters
    ----------
    in_features : int
        Input width.
    out_features : int
        Output width (no activation on the output layer).
    hidden_layer_sizes : sequence of int, default=(256, 256)
        Widths of the hidden layers; empty gives a single linear map.
    activation : str, default="relu"
        One of :data:`ACTIVATIONS`.

    Returns
    -------
    mlp : torch.nn.Sequential

    Examples
    --------
    >>> import torch
    >>> from sk_mlcpc.encoders import make_mlp
    >>> mlp = make_mlp(5, 3, hidden_layer_sizes=(16,))
    >>> mlp(torch.zeros(4, 5)).shape
    torch.Size([4, 3])
    """
    if activation not in ACTIVATIONS:
        choices = ", ".join(repr(name) for name in ACTIVATIONS)
        raise ValueError(f"Unknown activation {activation!r}. Choose one of: {choices}.")
    for label, width in (("in_features", in_features), ("out_features", out_features)):
        if int(width) != width or width < 1:
            raise ValueError(f"{label} must be a positive integer, got {width!r}.")
    layers: list[nn.Module] = []
    width = int(in_features)
    for hidden in hidden_layer_sizes:
        if int(hidden) != hidden or hidden < 1:
            raise ValueError(f"hidden_layer_sizes must hold positive integers, got {hidden!r}.")
        layers += [nn.Linear(width, int(hidden)), ACTIVATIONS[activation]()]
        width = int(hidden)
    layers.append(nn.Linear(width, int(out_features)))
    return nn.Sequential(*layers)
