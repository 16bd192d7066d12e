"""A critic for a class-valued ``Y``: every class is scored for every row.

For ``Y`` taking ``K`` values, the marginal ``p(y)`` is a vector of ``K`` numbers, so the
partition of a contrastive bound needs no negatives drawn from other rows: every class
is a negative of every row, weighted by its frequency. With scores ``f(x, c)`` and class
weights ``pi`` the variational conditional

    ``q(c | x) = pi_c exp f(x, c) / sum_k pi_k exp f(x, k)``

gives the Barber-Agakov bound ``I(X; Y) >= H(Y) - E[-log q(Y | X)]``, which holds for
every ``q`` because a cross-entropy is never below the conditional entropy ``H(Y | X)``.
Its pointwise term is ``log q(y_i | x_i) - log p(y_i)``; the estimator evaluates it on
held-out rows with the plug-in entropy of those rows (see the user guide for why that
keeps the estimate a lower bound in expectation).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from sk_mlcpc._nn.encoders import make_mlp

__all__ = ["ClassCritic"]


class ClassCritic(nn.Module):
    """Scores ``f(x, c)`` of every class ``c`` for each row: an encoder of ``x`` and a
    linear head, plus an optional closed-form linear model (the class baseline).

    ``logits(x)`` is ``head(g(x)) + W x + b + log pi``: the network's scores, the
    baseline's (buffers ``baseline_weight``, ``baseline_bias``; zero when unused) and the
    log class weights ``log_prior`` (the training rows' frequencies). The head starts at
    zero, so an untrained critic is the baseline (or the constant critic without one).

    Parameters
    ----------
    x_features : int
        Columns of ``x``.
    n_classes : int
        Number of classes ``K`` (at least 2).
    embedding_dim : int, default=32
        Width of the ``x`` embedding ``g(x)`` (:meth:`embed_x`).
    hidden_layer_sizes : sequence of int, default=(256, 256)
        Hidden widths of the encoder.
    activation : str, default="relu"
        Activation of the encoder's hidden layers.
    log_prior : array-like of shape (n_classes,) or None, default=None
        Log class weights; ``None`` is uniform.

    Examples
    --------
    >>> import torch
    >>> from sk_mlcpc.critics import ClassCritic
    >>> critic = ClassCritic(4, 3, embedding_dim=8, hidden_layer_sizes=(16,))
    >>> critic.logits(torch.randn(5, 4)).shape
    torch.Size([5, 3])
    >>> labels = torch.tensor([[0.0], [2.0], [1.0], [0.0], [1.0]])
    >>> critic(torch.randn(5, 4), labels).shape  # log q(y|x) - log pi(y), one per row
    torch.Size([5])
    """

    separable = True

    def __init__(
        self,
        x_features: int,
        n_classes: int,
        embedding_dim: int = 32,
        hidden_layer_sizes: Sequence[int] = (256, 256),
        activation: str = "relu",
        log_prior: np.ndarray | torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        if int(n_classes) != n_classes or n_classes < 2:
            raise ValueError(f"n_classes must be an integer of at least 2, got {n_classes!r}.")
        self.n_classes = int(n_classes)
        self.embedding_dim = int(embedding_dim)
        self.x_encoder = make_mlp(x_features, self.embedding_dim, hidden_layer_sizes, activation)
        self.head = nn.Linear(self.embedding_dim, self.n_classes)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        if log_prior is None:
            log_prior = np.full(self.n_classes, -np.log(self.n_classes))
        if isinstance(log_prior, torch.Tensor):
            log_prior = log_prior.detach().cpu().numpy()
        log_prior = np.asarray(log_prior, dtype=np.float32)
        if log_prior.shape != (self.n_classes,) or not np.isfinite(log_prior).all():
            raise ValueError(
                f"log_prior must hold {self.n_classes} finite values, got shape "
                f"{tuple(log_prior.shape)}."
            )
        self.register_buffer("log_prior", torch.tensor(log_prior))
        self.register_buffer("baseline_weight", torch.zeros(self.n_classes, int(x_features)))
        self.register_buffer("baseline_bias", torch.zeros(self.n_classes))

    def set_baseline(self, weight: np.ndarray, bias: np.ndarray) -> ClassCritic:
        """Set the closed-form linear scores ``W x + b`` added to the network's.

        Parameters
        ----------
        weight : array-like of shape (n_classes, x_features)
        bias : array-like of shape (n_classes,)

        Returns
        -------
        self : ClassCritic
        """
        weight = torch.as_tensor(np.asarray(weight, dtype=np.float32))
        bias = torch.as_tensor(np.asarray(bias, dtype=np.float32))
        if weight.shape != self.baseline_weight.shape or bias.shape != self.baseline_bias.shape:
            raise ValueError(
                f"The baseline needs a weight of shape {tuple(self.baseline_weight.shape)} and "
                f"a bias of shape {tuple(self.baseline_bias.shape)}, got "
                f"{tuple(weight.shape)} and {tuple(bias.shape)}."
            )
        if not (torch.isfinite(weight).all() and torch.isfinite(bias).all()):
            raise ValueError("The baseline's weight and bias must be finite.")
        with torch.no_grad():
            self.baseline_weight.copy_(weight)
            self.baseline_bias.copy_(bias)
        return self

    def embed_x(self, x: torch.Tensor) -> torch.Tensor:
        """The ``x``-side embedding ``g(x)``, shape ``(n, embedding_dim)``."""
        return self.x_encoder(x)

    def baseline_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The baseline's scores plus the log class weights, shape ``(n, n_classes)``."""
        return x @ self.baseline_weight.T + self.baseline_bias + self.log_prior

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Unnormalised ``log q(c | x)`` for every class, shape ``(n, n_classes)``."""
        return self.head(self.x_encoder(x)) + self.baseline_logits(x)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``log q(y_i | x_i) - log pi(y_i)`` for each row (``y``: class indices)."""
        return pointwise_log_ratio(self.logits(x), y, self.log_prior)


def class_indices(y: torch.Tensor) -> torch.Tensor:
    """Class indices stored as a float column ``(n, 1)`` (the paired datasets' layout)."""
    return y.reshape(len(y), -1)[:, 0].round().long()


def pointwise_log_ratio(
    logits: torch.Tensor, y: torch.Tensor, log_marginal: torch.Tensor
) -> torch.Tensor:
    """``log_softmax(logits)[i, y_i] - log_marginal[y_i]`` for each row, in float32 or wider."""
    index = class_indices(y)
    log_q = torch.log_softmax(logits.float(), dim=1).gather(1, index[:, None])[:, 0]
    return log_q - log_marginal.to(log_q.dtype)[index]
