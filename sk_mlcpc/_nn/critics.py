"""Critics: torch modules that score every pair ``(x_i, y_j)`` of a batch.

A critic's ``forward(x, y)`` takes ``x`` of shape ``(n, p)`` and ``y`` of shape ``(m, q)``
and returns the ``n x m`` matrix of log-domain scores ``f(x_i, y_j)`` that every bound in
:mod:`sk_mlcpc.bounds` consumes; ``pointwise(x, y)`` scores only the aligned pairs
``f(x_i, y_i)``. Separable and bilinear critics also expose ``embed_x`` / ``embed_y``.

For mutual-information estimation the optimal critic is the log density ratio
``log p(y | x) - log p(y)`` (up to a constant, or a per-row function of ``x`` for CPC).
For correlated Gaussians it contains terms in ``x`` alone and ``y`` alone
(``|y|^2 / 2``, ``rho^2 |x|^2 / 2 (1 - rho^2)``) that a plain inner product ``g(x) . h(y)``
can only mimic by spending embedding dimensions on them. ``SeparableCritic(...,
marginal_terms=True)`` adds them explicitly: ``g(x) . h(y) + a(x) + b(y)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from sk_mlcpc._nn.encoders import ACTIVATIONS, make_mlp

__all__ = ["CRITICS", "BilinearCritic", "ConcatCritic", "SeparableCritic", "make_critic"]


class SeparableCritic(nn.Module):
    """Inner-product critic ``f(x, y) = g(x) . h(y)`` with optional marginal terms.

    Parameters
    ----------
    x_features, y_features : int
        Widths of ``x`` and ``y``.
    embedding_dim : int, default=32
        Width of ``g(x)`` and ``h(y)``.
    hidden_layer_sizes : sequence of int, default=(256, 256)
        Hidden widths of both encoder MLPs.
    activation : str, default="relu"
        Hidden activation, see :data:`sk_mlcpc.encoders.ACTIVATIONS`.
    marginal_terms : bool, default=False
        Add scalar per-side terms, ``f = g(x) . h(y) + a(x) + b(y)``; ``a`` and ``b`` are
        one extra output of each encoder. ``a(x)`` cancels out of CPC (a per-row
        constant) but not out of ML-CPC, NWJ or DV.

    Examples
    --------
    >>> import torch
    >>> from sk_mlcpc.critics import SeparableCritic
    >>> critic = SeparableCritic(3, 2, embedding_dim=4, hidden_layer_sizes=(8,))
    >>> critic(torch.randn(5, 3), torch.randn(7, 2)).shape
    torch.Size([5, 7])
    """

    separable = True

    def __init__(
        self,
        x_features: int,
        y_features: int,
        embedding_dim: int = 32,
        hidden_layer_sizes: Sequence[int] = (256, 256),
        activation: str = "relu",
        marginal_terms: bool = False,
    ) -> None:
        super().__init__()
        self.embedding_dim = int(embedding_dim)
        self.marginal_terms = bool(marginal_terms)
        width = self.embedding_dim + int(self.marginal_terms)
        self.x_encoder = make_mlp(x_features, width, hidden_layer_sizes, activation)
        self.y_encoder = make_mlp(y_features, width, hidden_layer_sizes, activation)

    def _encode(
        self, encoder: nn.Module, inputs: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        out = encoder(inputs)
        if self.marginal_terms:
            return out[:, : self.embedding_dim], out[:, self.embedding_dim]
        return out, None

    def embed_x(self, x: torch.Tensor) -> torch.Tensor:
        """The ``x``-side embedding ``g(x)``, shape ``(n, embedding_dim)``."""
        return self._encode(self.x_encoder, x)[0]

    def embed_y(self, y: torch.Tensor) -> torch.Tensor:
        """The ``y``-side embedding ``h(y)``, shape ``(m, embedding_dim)``."""
        return self._encode(self.y_encoder, y)[0]

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        gx, ax = self._encode(self.x_encoder, x)
        hy, by = self._encode(self.y_encoder, y)
        scores = gx @ hy.T  # (n, m)
        if self.marginal_terms:
            scores = scores + ax[:, None] + by[None, :]
        return scores

    def pointwise(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Scores of the aligned pairs ``f(x_i, y_i)``, shape ``(n,)``."""
        gx, ax = self._encode(self.x_encoder, x)
        hy, by = self._encode(self.y_encoder, y)
        scores = (gx * hy).sum(dim=1)
        if self.marginal_terms:
            scores = scores + ax + by
        return scores


class BilinearCritic(nn.Module):
    """Bilinear critic ``f(x, y) = g(x)^T W h(y)`` with a learned square matrix ``W``.

    Parameters
    ----------
    x_features, y_features : int
        Widths of ``x`` and ``y``.
    embedding_dim : int, default=32
        Width of ``g(x)`` and ``h(y)``.
    hidden_layer_sizes : sequence of int, default=(256, 256)
        Hidden widths of both encoder MLPs.
    activation : str, default="relu"
        Hidden activation.

    Examples
    --------
    >>> import torch
    >>> from sk_mlcpc.critics import BilinearCritic
    >>> critic = BilinearCritic(3, 2, embedding_dim=4, hidden_layer_sizes=(8,))
    >>> critic(torch.randn(5, 3), torch.randn(7, 2)).shape
    torch.Size([5, 7])
    """

    separable = True

    def __init__(
        self,
        x_features: int,
        y_features: int,
        embedding_dim: int = 32,
        hidden_layer_sizes: Sequence[int] = (256, 256),
        activation: str = "relu",
    ) -> None:
        super().__init__()
        self.x_encoder = make_mlp(x_features, embedding_dim, hidden_layer_sizes, activation)
        self.y_encoder = make_mlp(y_features, embedding_dim, hidden_layer_sizes, activation)
        self.weight = nn.Parameter(torch.eye(int(embedding_dim)))

    def embed_x(self, x: torch.Tensor) -> torch.Tensor:
        """The ``x``-side embedding ``g(x) W``, shape ``(n, embedding_dim)``."""
        return self.x_encoder(x) @ self.weight

    def embed_y(self, y: torch.Tensor) -> torch.Tensor:
        """The ``y``-side embedding ``h(y)``, shape ``(m, embedding_dim)``."""
        return self.y_encoder(y)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.embed_x(x) @ self.embed_y(y).T

    def pointwise(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Scores of the aligned pairs ``f(x_i, y_i)``, shape ``(n,)``."""
        return (self.embed_x(x) * self.embed_y(y)).sum(dim=1)


class ConcatCritic(nn.Module):
    """Joint critic: one MLP applied to the concatenation ``[x_i, y_j]`` of every pair.

    The first layer is split as ``W [x; y] = W_x x + W_y y`` so that it costs
    ``O((n + m) p h)`` instead of ``O(n m p h)``; the remaining layers run on all
    ``n * m`` pairs.

    Parameters
    ----------
    x_features, y_features : int
        Widths of ``x`` and ``y``.
    hidden_layer_sizes : sequence of int, default=(256, 256)
        Hidden widths, at least one layer.
    activation : str, default="relu"
        Hidden activation.

    Examples
    --------
    >>> import torch
    >>> from sk_mlcpc.critics import ConcatCritic
    >>> critic = ConcatCritic(3, 2, hidden_layer_sizes=(8, 8))
    >>> critic(torch.randn(5, 3), torch.randn(7, 2)).shape
    torch.Size([5, 7])
    """

    separable = False

    def __init__(
        self,
        x_features: int,
        y_features: int,
        hidden_layer_sizes: Sequence[int] = (256, 256),
        activation: str = "relu",
    ) -> None:
        super().__init__()
        hidden_layer_sizes = tuple(hidden_layer_sizes)
        if not hidden_layer_sizes:
            raise ValueError("ConcatCritic needs at least one hidden layer.")
        if activation not in ACTIVATIONS:
            make_mlp(1, 1, (), activation)  # raises the listing error
        first = int(hidden_layer_sizes[0])
        self.x_input = nn.Linear(x_features, first)
        self.y_input = nn.Linear(y_features, first, bias=False)
        self.activation = ACTIVATIONS[activation]()
        self.head = make_mlp(first, 1, hidden_layer_sizes[1:], activation)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        hidden = self.x_input(x)[:, None, :] + self.y_input(y)[None, :, :]  # (n, m, h)
        return self.head(self.activation(hidden)).squeeze(-1)

    def pointwise(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Scores of the aligned pairs ``f(x_i, y_i)``, shape ``(n,)``."""
        hidden = self.x_input(x) + self.y_input(y)
        return self.head(self.activation(hidden)).squeeze(-1)


#: Critic names accepted by ``critic=`` in the estimators.
CRITICS = ("separable", "separable_additive", "bilinear", "concat")


def make_critic(
    name: str,
    x_features: int,
    y_features: int,
    *,
    embedding_dim: int = 32,
    hidden_layer_sizes: Sequence[int] = (256, 256),
    activation: str = "relu",
) -> nn.Module:
    """Build a critic by name.

    Parameters
    ----------
    name : {"separable", "separable_additive", "bilinear", "concat"}
        ``"separable_additive"`` is :class:`SeparableCritic` with ``marginal_terms=True``.
    x_features, y_features : int
        Widths of ``x`` and ``y``.
    embedding_dim : int, default=32
        Embedding width of separable and bilinear critics (ignored by ``"concat"``).
    hidden_layer_sizes : sequence of int, default=(256, 256)
        Hidden widths.
    activation : str, default="relu"
        Hidden activation.

    Returns
    -------
    critic : torch.nn.Module

    Examples
    --------
    >>> from sk_mlcpc.critics import make_critic
    >>> type(make_critic("concat", 4, 4, hidden_layer_sizes=(8,))).__name__
    'ConcatCritic'
    """
    common = {"hidden_layer_sizes": hidden_layer_sizes, "activation": activation}
    if name == "separable":
        return SeparableCritic(x_features, y_features, embedding_dim, **common)
    if name == "separable_additive":
        return SeparableCritic(x_features, y_features, embedding_dim, marginal_terms=True, **common)
    if name == "bilinear":
        return BilinearCritic(x_features, y_features, embedding_dim, **common)
    if name == "concat":
        return ConcatCritic(x_features, y_features, **common)
    choices = ", ".join(repr(choice) for choice in CRITICS)
    raise ValueError(f"Unknown critic {name!r}. Choose one of: {choices}.")
