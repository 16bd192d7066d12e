"""The alpha curriculum: :func:`scheduled_alpha` and the :class:`AlphaSchedule` callback.

The paper's training lowers the ``alpha`` of ``alpha_cpc`` / ``ml_cpc`` over the epochs;
the schedule is a pure function of the epoch, and the callback sets it on the criterion
(:class:`~sk_mlcpc._engine.loss.BoundLoss`) at each epoch's start and records it in the
history. Apart from the loss, because the loss knows nothing of epochs.
"""

from __future__ import annotations

import math

from skorch.callbacks import Callback

__all__ = ["AlphaSchedule", "scheduled_alpha"]


def scheduled_alpha(kind: str, start: float, end: float, epoch: int, n_epochs: int) -> float:
    """Alpha at ``epoch`` (0-based) of a curriculum from ``start`` to ``end``.

    ``"geometric"``: ``start * (end / start) ** t``; ``"cosine"``:
    ``end + (start - end) * (1 + cos(pi t)) / 2``; ``"constant"``: ``start``; with
    ``t = epoch / (n_epochs - 1)`` clipped to ``[0, 1]`` (``t = 1`` when ``n_epochs == 1``).
    The first epoch uses ``start`` and the last ``end``.
    """
    if start <= 0 or end <= 0:
        raise ValueError(f"alpha values must be positive, got start={start}, end={end}.")
    t = 1.0 if n_epochs <= 1 else min(max(epoch / (n_epochs - 1), 0.0), 1.0)
    if kind == "geometric":
        return float(start * (end / start) ** t)
    if kind == "cosine":
        return float(end + (start - end) * (1.0 + math.cos(math.pi * t)) / 2.0)
    if kind == "constant":
        return float(start)
    raise ValueError(
        f"Unknown alpha schedule {kind!r}; choose 'geometric', 'cosine' or 'constant'."
    )


class AlphaSchedule(Callback):
    """Set the criterion's ``alpha`` at the start of each epoch (the paper's curriculum).

    The ML-CPC paper's CIFAR runs lower alpha geometrically from 10 to 0.1 over 200
    epochs: a large alpha early weights the positives heavily (a low-variance, CPC-like
    signal); a small alpha late lifts the cap. The value used is recorded as ``alpha`` in
    the history.

    Parameters
    ----------
    kind : {"geometric", "cosine", "constant"}
        Shape of the curriculum, see :func:`scheduled_alpha`.
    start, end : float
        Alpha in the first and in the last epoch.
    n_epochs : int
        Length of the curriculum; later epochs keep ``end``.
    """

    def __init__(self, kind: str, start: float, end: float, n_epochs: int) -> None:
        self.kind = kind
        self.start = start
        self.end = end
        self.n_epochs = n_epochs

    def initialize(self):
        # Fail at construction of the net, not at the first epoch.
        scheduled_alpha(self.kind, self.start, self.end, 0, self.n_epochs)
        return self

    def on_epoch_begin(self, net, **kwargs):
        epoch = len(net.history) - 1  # skorch has appended this epoch's row already
        alpha = scheduled_alpha(self.kind, self.start, self.end, epoch, self.n_epochs)
        net.criterion_.alpha = alpha
        net.history.record("alpha", alpha)
