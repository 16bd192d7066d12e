"""The torch side of ContrastiveEncoder: rows, pairs of views, the pair module and net.

:class:`~sk_mlcpc._estimators.encoder.ContrastiveEncoder` builds a :class:`ViewContrastiveNet` in
``fit``. What this module holds:

* ``ViewFunction``: the type of a view, ``view(x_batch, generator) -> x_view``;
* :class:`RowDataset`: unlabelled rows held on the training device;
* :class:`ViewBatches`: batches of two random views of the same rows;
* :class:`ViewPairModule`: encoder + projection head scoring every pair of views by
  scaled cosine similarity (a separable critic);
* :class:`ViewContrastiveNet`: the :class:`~sk_mlcpc._engine.net.ContrastiveNet` that trains
  the module on pairs of views and evaluates the bound per held-out batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import nn

from sk_mlcpc._engine.net import ContrastiveNet, SeededBatches
from sk_mlcpc._nn.devices import device_generator, to_device

__all__ = ["RowDataset", "ViewBatches", "ViewContrastiveNet", "ViewFunction", "ViewPairModule"]

ViewFunction = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


class RowDataset(torch.utils.data.Dataset):
    """Rows of one tensor held on the training device."""

    def __init__(self, x: torch.Tensor) -> None:
        self.x = x

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.x[index]


class ViewBatches(SeededBatches):
    """Batches of two random views of the same rows, ``{"x": view_a, "y": view_b}``.

    Rows are sliced from a shuffled index (full batches only, as in
    :class:`sk_mlcpc._engine.batches.TensorBatches`). Training passes a fresh ``generator`` per
    epoch (``generator_factory`` is called at the start of each pass); evaluation
    (``shuffle=False``) reseeds from ``seed`` at every pass, so the
    order *and* the views are the same each time and a held-out score is repeatable.
    """

    def __init__(self, dataset: RowDataset, batch_size: int, view: ViewFunction, **kwargs) -> None:
        super().__init__(dataset, batch_size, **kwargs)
        self.view = view

    def __iter__(self) -> Iterator[tuple[dict[str, torch.Tensor], None]]:
        generator = self._pass_generator() or torch.Generator()
        x = self.dataset.x
        order = to_device(torch.randperm(len(x), generator=generator), x.device)
        # The views draw every batch: on the data's device, so no step waits for a copy.
        view_generator = device_generator(generator, x.device)
        for start in self._batch_starts():
            rows = x[order[start : start + self.batch_size]]
            view_a = self.view(rows, view_generator)
            view_b = self.view(rows, view_generator)
            _check_view(view_a, rows)
            _check_view(view_b, rows)
            yield {"x": view_a, "y": view_b}, None


def _check_view(view: torch.Tensor, rows: torch.Tensor) -> None:
    if not isinstance(view, torch.Tensor) or view.shape != rows.shape:
        shape = tuple(view.shape) if isinstance(view, torch.Tensor) else type(view).__name__
        raise ValueError(
            f"augmentation must return a tensor shaped like its input {tuple(rows.shape)}, "
            f"got {shape}."
        )


class ViewPairModule(nn.Module):
    """Encoder + projection head; scores every pair of views by scaled cosine similarity.

    ``forward(x, y)`` returns ``S[i, j] = <z(x_i), z(y_j)> / temperature + b`` with ``z``
    the L2-normalised projection of the encoder's output: the batch layout of
    :mod:`sk_mlcpc.bounds`, positives on the diagonal. The learnt constant ``b`` (started
    at ``-1 / temperature``, so that no score starts above 0) cancels out of CPC and
    ML-CPC, but NWJ-type bounds, which exponentiate raw scores, need it.

    The critic is separable: :meth:`separable_parts` gives the factors with which
    :mod:`sk_mlcpc.blockwise` evaluates a bound without the ``n x n`` score matrix.

    The scores do not depend on the scale of the encoder's output, so a diverging fit
    shows only there (the weights and outputs grow without bound, the loss stays finite).
    In training, every forward pass leaves ``output_scale``: the root mean square of the
    encoder's outputs (the larger of the two views'), a device tensor that
    :class:`~sk_mlcpc._engine.divergence.DivergenceGuard` reads and checks after each step.
    """

    output_scale: torch.Tensor | None = None

    def __init__(self, encoder: nn.Module, head: nn.Module, temperature: float) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = head
        self.temperature = float(temperature)
        self.offset = nn.Parameter(torch.tensor(-1.0 / self.temperature))

    def project(self, x: torch.Tensor) -> torch.Tensor:
        features = self.encoder(x)
        if self.training:
            scale = features.detach().float().square().mean().sqrt()
            previous = self.output_scale
            self.output_scale = scale if previous is None else torch.maximum(previous, scale)
        return nn.functional.normalize(self.head(features), dim=1)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.project(x) @ self.project(y).T / self.temperature + self.offset

    def measure_output_scale(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Set ``output_scale`` for the views ``x`` and ``y`` with the current weights.

        Without gradients and in evaluation mode (batch-norm statistics untouched).
        """
        training = self.training
        self.eval()
        try:
            with torch.no_grad():
                scales = [self.encoder(v).float().square().mean().sqrt() for v in (x, y)]
            self.output_scale = torch.maximum(*scales)
        finally:
            self.train(training)

    def separable_parts(
        self, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, None]:
        """Factors ``(g, h, a, b)`` of the scores, for :func:`sk_mlcpc.blockwise.separable_parts`.

        ``forward(x, y)`` equals ``g @ h.T + a[:, None]``: ``g`` (n, d) is the projection
        of ``x`` divided by ``temperature``, ``h`` (m, d) the projection of ``y``, ``a``
        (n,) the offset repeated on every row, and there is no column term (``b=None``).
        """
        g = self.project(x) / self.temperature  # (n, d)
        h = self.project(y)  # (m, d)
        a = self.offset.expand(g.shape[0])  # (n,), gradients flow back to the scalar
        return g, h, a, None


class ViewContrastiveNet(ContrastiveNet):
    """:class:`ContrastiveNet` whose batches are pairs of views of single-view rows.

    ``view`` (set as an attribute, not a skorch parameter) makes the views.
    """

    view: ViewFunction

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # The view holds device tensors (reference rows, feature scales).
        self.cuda_dependent_attributes_ = [*self.cuda_dependent_attributes_, "view"]

    def get_iterator(self, dataset, training=False):
        if training:
            return ViewBatches(
                dataset,
                self.batch_size,
                self.view,
                shuffle=True,
                generator_factory=self.epoch_generator,
            )
        batch_size = self.eval_batch_size or self.batch_size
        return ViewBatches(dataset, batch_size, self.view, shuffle=False, seed=self.eval_seed)

    def evaluation_batches(self, dataset: RowDataset, batch_size: int) -> ViewBatches:
        """Full batches of fixed views of ``dataset``'s rows, in a fixed order.

        :func:`~sk_mlcpc._engine.evaluation.evaluate_held_out` scores these.
        """
        return ViewBatches(dataset, batch_size, self.view, shuffle=False, seed=self.eval_seed)
