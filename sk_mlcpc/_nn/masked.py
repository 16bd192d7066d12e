"""A critic that sees any subset of the columns of ``x``: the amortised critic of
feature selection.

One network scores ``(x_S, y)`` for every subset ``S`` of the columns at once: its input
is ``x`` with the columns outside ``S`` zeroed, next to the 0/1 mask of ``S`` (so a
zeroed column and a column whose value is 0 differ). Trained on random subsets, it gives
a critic for each subset without one fit per subset, which is what makes a forward
search over hundreds of candidate subsets affordable. For any fixed subset the critic
restricted to it is a fixed function of ``x_S`` and ``y``, so a bound it gives on
held-out rows is a bound on ``I(X_S; Y)`` like any other critic's.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["MaskedCritic", "masked_input"]


def masked_input(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``[x * mask, mask]``: the columns outside the subset zeroed, and the subset itself.

    Parameters
    ----------
    x : torch.Tensor of shape (n, p)
    mask : torch.Tensor of shape (n, p) or (p,)
        1 for the columns in the subset, 0 for the others.

    Returns
    -------
    inputs : torch.Tensor of shape (n, 2 p)

    Examples
    --------
    >>> import torch
    >>> from sk_mlcpc._nn.masked import masked_input
    >>> masked_input(torch.tensor([[2.0, 3.0]]), torch.tensor([1.0, 0.0]))
    tensor([[2., 0., 1., 0.]])
    """
    mask = mask.to(x.dtype).expand_as(x)
    return torch.cat([x * mask, mask], dim=1)


class MaskedCritic(nn.Module):
    """Wrap a critic of ``2 p`` input columns so that it scores any subset of ``p``.

    ``forward(x, y, mask=None)`` calls ``critic(masked_input(x, mask), y)``. Without a
    mask, each row gets a random subset: its size is uniform on ``0 .. p`` for half of
    the rows and uniform on ``1 .. small_subsets`` for the other half (the sizes a
    forward search visits), its columns uniform given the size. In training the draws
    continue from one seeded generator; in evaluation they restart from the seed on
    every call, so that the validation loss is computed on the same subsets each epoch.

    Parameters
    ----------
    critic : torch.nn.Module
        A critic whose ``x`` has ``2 * n_features`` columns.
    n_features : int
        Columns ``p`` of ``x``.
    small_subsets : int
        Largest size of the "small" half of the random subsets (at least 1).
    seed : int, default=0
        Seed of the random subsets.

    Examples
    --------
    >>> import torch
    >>> from sk_mlcpc.critics import ClassCritic
    >>> from sk_mlcpc._nn.masked import MaskedCritic
    >>> critic = MaskedCritic(ClassCritic(6, 2, hidden_layer_sizes=(8,)), 3, small_subsets=2)
    >>> x, y = torch.randn(5, 3), torch.tensor([[0.0], [1.0], [1.0], [0.0], [1.0]])
    >>> critic(x, y).shape
    torch.Size([5])
    >>> critic(x, y, mask=torch.tensor([1.0, 0.0, 1.0])).shape
    torch.Size([5])
    """

    def __init__(
        self, critic: nn.Module, n_features: int, *, small_subsets: int, seed: int = 0
    ) -> None:
        super().__init__()
        self.critic = critic
        self.n_features = int(n_features)
        self.small_subsets = max(1, min(int(small_subsets), self.n_features))
        self.seed = int(seed)
        self._generator: torch.Generator | None = None

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_generator"] = None  # a generator does not pickle; it restarts from seed
        return state

    def _draws(self, device: torch.device) -> torch.Generator:
        if not self.training or self._generator is None or self._generator.device != device:
            self._generator = torch.Generator(device=device).manual_seed(self.seed)
        return self._generator

    def random_masks(self, n_rows: int, device: torch.device) -> torch.Tensor:
        """Random subsets of the columns, one row each, shape ``(n_rows, p)``."""
        generator = self._draws(torch.device(device))
        p = self.n_features
        uniform = torch.randint(0, p + 1, (n_rows,), generator=generator, device=device)
        small = torch.randint(
            1, self.small_subsets + 1, (n_rows,), generator=generator, device=device
        )
        coin = torch.rand(n_rows, generator=generator, device=device) < 0.5
        sizes = torch.where(coin, uniform, small)
        # The columns of a row's subset: the `size` smallest of p uniform keys.
        keys = torch.rand(n_rows, p, generator=generator, device=device)
        ranks = keys.argsort(dim=1).argsort(dim=1)
        return (ranks < sizes[:, None]).float()

    def forward(
        self, x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        if mask is None:
            mask = self.random_masks(len(x), x.device)
        return self.critic(masked_input(x, mask), y)
