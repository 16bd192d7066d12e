"""Training data as tensors on the device, and batches sliced from a shuffled index.

The engine's fast batches (``docs/architecture.rst``, the engine): the rows live as
tensors on the training device and a batch is a slice of a permuted index, not a
per-sample ``__getitem__`` plus collation. :class:`PairedTensorDataset` holds paired
rows; :class:`SeededBatches` is the base of every batch iterable of the package (its
randomness per pass is what makes resumed fits draw the batches of an uninterrupted one);
:class:`TensorBatches` slices paired rows. The sequence, view and distillation nets
subclass :class:`SeededBatches` for their own examples.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch

from sk_mlcpc._nn.devices import to_device

__all__ = ["PairedTensorDataset", "SeededBatches", "TensorBatches"]


class PairedTensorDataset(torch.utils.data.Dataset):
    """Paired samples ``(x_i, y_i)`` held as two tensors on one device."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        if len(x) != len(y):
            raise ValueError(f"x and y must have the same length, got {len(x)} and {len(y)}.")
        self.x = x
        self.y = y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        return {"x": self.x[index], "y": self.y[index]}, torch.zeros(())


class SeededBatches:
    """Base of the package's batch iterables: full batches, one generator per pass.

    Only full batches are produced: every bound depends on the batch size, so a smaller
    last batch would be a different estimator. skorch builds an iterator once per
    ``fit`` call and iterates it every epoch, so each pass asks :meth:`_pass_generator`
    for its randomness: with ``shuffle=True`` a fresh ``generator_factory()`` (seeded by
    the epoch index, see
    :meth:`~sk_mlcpc._engine.net.ContrastiveNet.epoch_generator`) or else the running
    ``generator``; with ``shuffle=False`` a generator reseeded from ``seed``, so that
    evaluations are repeatable and not biased by the order of the rows. Subclasses
    implement ``__iter__``.
    """

    def __init__(
        self,
        dataset,
        batch_size: int,
        *,
        shuffle: bool,
        generator: torch.Generator | None = None,
        seed: int = 0,
        generator_factory: Callable[[], torch.Generator] | None = None,
    ) -> None:
        if batch_size < 2:
            raise ValueError(f"batch_size must be at least 2, got {batch_size}.")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.generator = generator
        self.seed = seed
        self.generator_factory = generator_factory

    def __len__(self) -> int:
        return len(self.dataset) // self.batch_size

    def _pass_generator(self) -> torch.Generator | None:
        if not self.shuffle:
            return torch.Generator().manual_seed(self.seed)
        if self.generator_factory is not None:
            return self.generator_factory()
        return self.generator

    def _batch_starts(self) -> range:
        return range(0, len(self) * self.batch_size, self.batch_size)


class TensorBatches(SeededBatches):
    """Batches ``{"x", "y"}`` sliced from a permuted index over a :class:`PairedTensorDataset`.

    See :class:`SeededBatches` for the batch sizes and the randomness of each pass.
    """

    def _order(self) -> torch.Tensor:
        """This pass's permutation of the rows, on the data's device."""
        order = torch.randperm(len(self.dataset), generator=self._pass_generator())
        return to_device(order, self.dataset.x.device)

    def __iter__(self) -> Iterator[tuple[dict[str, torch.Tensor], None]]:
        order = self._order()
        for start in self._batch_starts():
            index = order[start : start + self.batch_size]
            yield {"x": self.dataset.x[index], "y": self.dataset.y[index]}, None
