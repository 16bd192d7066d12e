"""The distillation engine: student wrapper, CRD memory bank, loss and skorch net.

:class:`~sk_mlcpc._estimators.distill.ContrastiveDistillationClassifier` builds a
:class:`DistillationNet` in ``fit``. What this module holds:

* :class:`_DistillationModule`: the student plus CRD's training-time parts (linear
  embeddings of both sides and two memory banks updated with momentum);
* :func:`_draw_negatives` and :func:`_sample_negatives`: bank rows drawn uniformly, never
  the anchor's own row (shared by a batch's anchors, or per anchor);
* :class:`DistillationLoss`: cross-entropy + Hinton KD + the contrastive term on anchored
  score matrices (ML-CPC, CPC or CRD's NCE);
* :class:`DistillationNet` with device-side batches (the training order and the negatives
  drawn from a generator seeded by the epoch's index) and two callbacks (held-out accuracy
  and a divergence guard).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch
from skorch import NeuralNet
from skorch.callbacks import Callback
from torch import nn
from torch.nn import functional as F

from sk_mlcpc._engine.net import DivergenceGuard, HostSyncFreeLoop
from sk_mlcpc._math.bounds import cpc, ml_cpc
from sk_mlcpc._nn.devices import device_generator, to_device
from sk_mlcpc._nn.encoders import ACTIVATIONS, make_mlp

__all__ = ["DISTILLATION_OBJECTIVES", "DistillationLoss", "DistillationNet"]

#: Contrastive objectives of the distillation term.
DISTILLATION_OBJECTIVES = ("ml_cpc", "cpc", "crd")

# ---------------------------------------------------------------------------------------
# Torch pieces: student, memory bank, loss
# ---------------------------------------------------------------------------------------


class _MLPStudent(nn.Module):
    """MLP whose ``forward`` returns ``(features, logits)``: last hidden layer, then output."""

    def __init__(
        self,
        in_features: int,
        n_classes: int,
        hidden_layer_sizes: tuple[int, ...],
        activation: str,
    ) -> None:
        super().__init__()
        if hidden_layer_sizes:
            body = make_mlp(
                in_features, hidden_layer_sizes[-1], hidden_layer_sizes[:-1], activation
            )
            self.body = nn.Sequential(*body, ACTIVATIONS[activation]())
            width = hidden_layer_sizes[-1]
        else:
            self.body = nn.Identity()
            width = in_features
        self.head = nn.Linear(width, n_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.body(x)
        return features, self.head(features)


def _sample_negatives(
    index: torch.Tensor,
    n_samples: int,
    n_negatives: int,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Draw memory-bank rows uniformly, with replacement, never the anchor's own row.

    Row ``i`` of the result holds ``n_negatives`` indices from ``{0, ..., n_samples - 1}``
    without ``index[i]``: an integer ``r`` uniform on ``{0, ..., n_samples - 2}`` is shifted
    to ``r + 1`` when ``r >= index[i]``, which is uniform on the other rows.

    Parameters
    ----------
    index : torch.Tensor of shape (n,), int64
        The anchors' own rows in the memory bank.
    n_samples : int
        Rows in the memory bank (at least 2).
    n_negatives : int
        Negatives per anchor.
    generator : torch.Generator or None, default=None
        Source of randomness; ``None`` uses torch's global generator.

    Returns
    -------
    negatives : torch.Tensor of shape (n, n_negatives), int64

    Examples
    --------
    >>> import torch
    >>> from sk_mlcpc._engine.distill_net import _sample_negatives
    >>> index = torch.tensor([0, 1, 2])
    >>> negatives = _sample_negatives(index, 3, 5, torch.Generator().manual_seed(0))
    >>> negatives.shape
    torch.Size([3, 5])
    >>> bool((negatives != index[:, None]).all())
    True
    """
    if n_samples < 2:
        raise ValueError(f"The memory bank needs at least 2 rows, got {n_samples}.")
    device = index.device if generator is None else generator.device
    draws = torch.randint(
        0, n_samples - 1, (len(index), n_negatives), generator=generator, device=device
    )
    draws = to_device(draws, index.device)
    return draws + (draws >= index[:, None]).long()


def _draw_negatives(
    n_samples: int,
    n_negatives: int,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Draw ``n_negatives`` integers uniformly from ``{0, ..., n_samples - 2}``, for a batch.

    Every anchor of the batch shares these draws. Anchor ``i`` (bank row ``index[i]``) reads
    draw ``r`` as bank row ``r``, except that the draw equal to its own row stands for the
    last row, ``n_samples - 1``: a one-to-one map from the draws onto the other rows, so each
    anchor's negatives are uniform on its other rows, as with :func:`_sample_negatives`,
    while a batch reads ``n_negatives + 1`` bank rows instead of
    ``batch_size * n_negatives``.

    Parameters
    ----------
    n_samples : int
        Rows in the memory bank (at least 2).
    n_negatives : int
        Draws per batch.
    generator : torch.Generator or None, default=None
        Source of randomness; ``None`` uses torch's global generator.
    device : torch.device, str or None, default=None
        Where the draws are made; ``None``: the generator's device (or the CPU).

    Returns
    -------
    draws : torch.Tensor of shape (n_negatives,), int64

    Examples
    --------
    >>> import torch
    >>> from sk_mlcpc._engine.distill_net import _draw_negatives, _negatives_of_draws
    >>> draws = _draw_negatives(5, 8, torch.Generator().manual_seed(0))
    >>> draws.shape, bool(draws.max() <= 3)
    (torch.Size([8]), True)
    >>> index = torch.tensor([0, 4])
    >>> negatives = _negatives_of_draws(draws, index, 5)
    >>> bool((negatives != index[:, None]).all())
    True
    """
    if n_samples < 2:
        raise ValueError(f"The memory bank needs at least 2 rows, got {n_samples}.")
    if device is None:
        device = "cpu" if generator is None else generator.device
    return torch.randint(0, n_samples - 1, (n_negatives,), generator=generator, device=device)


def _negatives_of_draws(draws: torch.Tensor, index: torch.Tensor, n_samples: int) -> torch.Tensor:
    """The bank rows ``(n, k)`` that shared ``draws`` stand for, anchor by anchor.

    Row ``i`` is ``draws`` with the anchor's own row replaced by the last row
    (see :func:`_draw_negatives`); used to check the shared scores, not to train.
    """
    own = draws[None, :] == index[:, None]
    return torch.where(own, torch.full_like(own, n_samples - 1, dtype=draws.dtype), draws)


class _DistillationModule(nn.Module):
    """The student plus CRD's training-time parts: two linear embeddings and two memory banks.

    ``forward(x, index, teacher_features, negatives, negative_draws)`` returns ``(logits,
    student_scores, teacher_scores)``. In training mode and with a contrastive term it also
    scores each student embedding against teacher embeddings from the bank (column 0: the
    same row, columns 1..: ``n_negatives`` other rows) and vice versa, then updates both
    banks with momentum. In evaluation mode, or without a contrastive term, the scores are
    ``None``.

    The other rows are ``negatives`` when given (``(n, n_negatives)`` bank rows, one set
    per anchor); otherwise the batch's shared draws ``negative_draws`` (from
    :func:`_draw_negatives`; shape ``(n_negatives,)``, or ``(n, n_negatives)`` with equal
    rows, as the batches pass them so that every input has one row per anchor), else draws
    from torch's global generator. Shared draws give each anchor the same distribution of
    negatives as per-anchor rows do, and are what training uses: the scores are then two
    ``(n, d) x (d, n_negatives + 1)`` products over ``n_negatives + 1`` bank rows, where
    per-anchor rows gather ``n x n_negatives`` bank rows (that ``(n, m, d)`` gather, its
    products and their backward pass were most of the time of a training step).
    """

    def __init__(
        self,
        student: nn.Module,
        *,
        student_dim: int,
        teacher_dim: int,
        n_components: int,
        n_samples: int,
        n_negatives: int,
        momentum: float,
        contrastive_temperature: float,
        contrastive: bool,
    ) -> None:
        super().__init__()
        self.student = student
        self.n_negatives = n_negatives
        self.momentum = momentum
        self.contrastive_temperature = contrastive_temperature
        self.contrastive = contrastive
        self.n_samples = n_samples
        self.embed_student = nn.Linear(student_dim, n_components)
        self.embed_teacher = nn.Linear(teacher_dim, n_components)
        # CRD starts its banks at random unit vectors; they become real embeddings as the
        # rows are visited.
        rows = n_samples if contrastive else 0
        self.register_buffer("memory_student", F.normalize(torch.randn(rows, n_components), dim=1))
        self.register_buffer("memory_teacher", F.normalize(torch.randn(rows, n_components), dim=1))

    def release_memory(self) -> None:
        """Drop the banks (training state only) so a fitted model pickles small."""
        self.memory_student = self.memory_student.new_empty((0, self.memory_student.shape[1]))
        self.memory_teacher = self.memory_teacher.new_empty((0, self.memory_teacher.shape[1]))

    def reset_memory(self, n_samples: int, generator: torch.Generator | None = None) -> None:
        """Start both banks again at random unit vectors, one per row of ``n_samples``.

        Used when training continues after the banks were released, or on another number
        of training rows.
        """
        self.n_samples = int(n_samples)
        rows = self.n_samples if self.contrastive else 0
        for name in ("memory_student", "memory_teacher"):
            memory = getattr(self, name)
            fresh = torch.randn(rows, memory.shape[1], generator=generator, dtype=memory.dtype)
            setattr(self, name, F.normalize(fresh, dim=1).to(memory.device))

    def _update(self, memory: torch.Tensor, index: torch.Tensor, value: torch.Tensor) -> None:
        mixed = self.momentum * memory.index_select(0, index) + (1.0 - self.momentum) * value
        memory.index_copy_(0, index, F.normalize(mixed, dim=1))

    def forward(
        self,
        x: torch.Tensor,
        index: torch.Tensor | None = None,
        teacher_features: torch.Tensor | None = None,
        negatives: torch.Tensor | None = None,
        negative_draws: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        features, logits = self.student(x)
        if not (self.training and self.contrastive and teacher_features is not None):
            return logits, None, None
        student_embedding = F.normalize(self.embed_student(features), dim=1)  # (n, d)
        teacher_embedding = F.normalize(self.embed_teacher(teacher_features), dim=1)  # (n, d)
        if negatives is not None:
            student_scores, teacher_scores = self._anchored_scores(
                student_embedding, teacher_embedding, index, negatives
            )
        else:
            if negative_draws is None:
                negative_draws = _draw_negatives(
                    self.n_samples, self.n_negatives, device=index.device
                )
            elif negative_draws.dim() == 2:
                negative_draws = negative_draws[0]
            student_scores, teacher_scores = self._shared_scores(
                student_embedding, teacher_embedding, index, negative_draws
            )
        with torch.no_grad():
            self._update(self.memory_student, index, student_embedding.detach())
            self._update(self.memory_teacher, index, teacher_embedding.detach())
        return logits, student_scores, teacher_scores

    def _anchored_scores(
        self,
        student_embedding: torch.Tensor,
        teacher_embedding: torch.Tensor,
        index: torch.Tensor,
        negatives: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores against per-anchor bank rows ``negatives`` (n, k): an (n, m, d) gather."""
        columns = torch.cat([index[:, None], negatives], dim=1)  # (n, m), column 0 positive
        # Anchored layout: anchor i against bank rows columns[i]; the bank carries no gradient.
        flat = columns.reshape(-1)
        shape = (*columns.shape, -1)
        teacher_bank = self.memory_teacher.index_select(0, flat).view(shape)  # (n, m, d)
        student_bank = self.memory_student.index_select(0, flat).view(shape)  # (n, m, d)
        tau = self.contrastive_temperature
        student_scores = torch.einsum("nd,nmd->nm", student_embedding, teacher_bank) / tau
        teacher_scores = torch.einsum("nd,nmd->nm", teacher_embedding, student_bank) / tau
        return student_scores, teacher_scores

    def _shared_scores(
        self,
        student_embedding: torch.Tensor,
        teacher_embedding: torch.Tensor,
        index: torch.Tensor,
        draws: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores against the batch's shared ``draws`` (k,), see :func:`_draw_negatives`.

        The same anchored ``(n, 1 + k)`` matrices as :meth:`_anchored_scores` with
        ``negatives = _negatives_of_draws(draws, index, n_samples)``, from ``k + 1`` bank
        rows: the draws and the last row, which replaces a draw equal to the anchor's own.
        """
        n = index.shape[0]
        last = torch.full((1,), self.memory_student.shape[0] - 1, device=index.device)
        rows = torch.cat([index, draws, last])  # positives, the draws, the last row
        own = draws[None, :] == index[:, None]  # (n, k): the draw is the anchor's own row
        scale = 1.0 / self.contrastive_temperature
        scores = []
        for embedding, memory in (
            (student_embedding, self.memory_teacher),
            (teacher_embedding, self.memory_student),
        ):
            # The temperature scales the (n, d) embedding rather than the (n, k) scores: fewer
            # elementwise operations, forward and backward.
            embedding = embedding * scale
            bank = memory.index_select(0, rows)  # (n + k + 1, d); the bank carries no gradient
            positive = (embedding * bank[:n]).sum(dim=1, keepdim=True)  # (n, 1)
            candidates = embedding @ bank[n:].T  # (n, k + 1): the draws, then the last row
            negative = torch.where(own, candidates[:, -1:], candidates[:, :-1])
            scores.append(torch.cat([positive, negative], dim=1))
        return scores[0], scores[1]


class DistillationLoss(nn.Module):
    """Cross-entropy + Hinton KD + a contrastive term on anchored score matrices.

    Parameters
    ----------
    objective : {"ml_cpc", "cpc", "crd"}, default="ml_cpc"
        Contrastive objective: the negated ML-CPC or CPC bound (anchored layout, column 0
        positive) or CRD's NCE loss. Both directions (student anchors against teacher
        bank, teacher anchors against student bank) are summed, as in CRD.
    alpha : float, default=1.0
        Positive weight of ML-CPC (ignored otherwise).
    kd_weight : float, default=1.0
        Weight of ``T^2 KL(softmax(t / T) || softmax(s / T))``.
    contrastive_weight : float, default=0.8
        Weight of the contrastive term.
    temperature : float, default=4.0
        KD temperature ``T``.
    n_samples : int, default=1
        Memory-bank rows, the ``N`` of CRD's noise distribution ``1 / N``.

    Notes
    -----
    A row whose ``label`` is -1 is unlabelled: in training it has no cross-entropy term
    (the cross-entropy is summed over the labelled rows and divided by all rows, so that
    each row adds its own terms to a mean), and in evaluation its loss is the
    cross-entropy against the teacher's probabilities instead of a label.

    Examples
    --------
    >>> import torch
    >>> from sk_mlcpc._engine.distill_net import DistillationLoss
    >>> loss = DistillationLoss(kd_weight=0.0, contrastive_weight=0.0)
    >>> logits = torch.tensor([[10.0, -10.0]])
    >>> y = {"label": torch.tensor([0]), "teacher_logits": torch.zeros(1, 2)}
    >>> round(loss((logits, None, None), y).item(), 6)   # cross-entropy alone
    0.0
    """

    def __init__(
        self,
        objective: str = "ml_cpc",
        alpha: float = 1.0,
        kd_weight: float = 1.0,
        contrastive_weight: float = 0.8,
        temperature: float = 4.0,
        n_samples: int = 1,
    ) -> None:
        super().__init__()
        if objective not in DISTILLATION_OBJECTIVES:
            raise ValueError(
                f"objective must be one of {DISTILLATION_OBJECTIVES}, got {objective!r}."
            )
        self.objective = objective
        self.alpha = float(alpha)
        self.kd_weight = float(kd_weight)
        self.contrastive_weight = float(contrastive_weight)
        self.temperature = float(temperature)
        self.n_samples = int(n_samples)
        # CRD's NCE fixes its normalising constant Z on the first training batch.
        self.register_buffer("log_z", torch.full((2,), math.nan, dtype=torch.float64))
        self.last_terms: dict[str, torch.Tensor] = {}

    def _crd(self, scores: torch.Tensor, direction: int) -> torch.Tensor:
        """CRD's NCE loss in log space: positive vs ``K`` noise samples of density ``1/N``."""
        n_negatives = scores.shape[1] - 1
        # Set on the first batch: a ``where`` on the device, not a Python ``if`` (which
        # would wait for the device at every step).
        first = torch.logsumexp(scores.detach().reshape(-1), 0) - math.log(scores.numel())
        current = self.log_z[direction]
        first = (first + math.log(self.n_samples)).to(current.dtype)
        self.log_z[direction] = torch.where(torch.isnan(current), first, current)
        log_p = scores - self.log_z[direction].to(scores.dtype)  # log model density, (n, m)
        log_noise = math.log(n_negatives / self.n_samples)  # log(K * P_n)
        log_denominator = torch.logaddexp(log_p, torch.full_like(log_p, log_noise))
        log_positive = (log_p[:, 0] - log_denominator[:, 0]).sum()
        log_negative = (log_noise - log_denominator[:, 1:]).sum()
        return -(log_positive + log_negative) / scores.shape[0]

    def contrastive_loss(self, scores: torch.Tensor, direction: int) -> torch.Tensor:
        """The loss of one direction on an anchored ``n x m`` score matrix."""
        if self.objective == "crd":
            return self._crd(scores, direction)
        if self.objective == "cpc":
            return -cpc(scores, layout="anchored")
        return -ml_cpc(scores, alpha=self.alpha, layout="anchored")

    def forward(
        self,
        y_pred: tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None],
        y_true: dict[str, torch.Tensor],
        training: bool = True,
    ) -> torch.Tensor:
        logits, student_scores, teacher_scores = y_pred
        label = y_true["label"]
        # Unlabelled rows carry the label -1: no cross-entropy term of their own.
        log_proba = F.log_softmax(logits, dim=1)
        ce_rows = F.nll_loss(log_proba, label, ignore_index=-1, reduction="none")  # (n,)
        if not training:
            # Held-out loss: cross-entropy against the label, or against the teacher's
            # probabilities for an unlabelled row (a ``where``: no wait for the device).
            soft_rows = -(F.softmax(y_true["teacher_logits"], dim=1) * log_proba).sum(dim=1)
            loss = torch.where(label >= 0, ce_rows, soft_rows).mean()
            self.last_terms = {"ce": loss.detach()}
            return loss
        # Sum over the labelled rows, divided by all rows: every row's loss is its
        # cross-entropy (when labelled) plus its KD and contrastive terms, averaged.
        loss = ce_rows.sum() / len(label)
        terms = {"ce": loss.detach()}
        if self.kd_weight > 0:
            temperature = self.temperature
            kd = F.kl_div(
                F.log_softmax(logits / temperature, dim=1),
                F.log_softmax(y_true["teacher_logits"] / temperature, dim=1),
                reduction="batchmean",
                log_target=True,
            ) * (temperature**2)
            terms["kd"] = kd.detach()
            loss = loss + self.kd_weight * kd
        if self.contrastive_weight > 0 and student_scores is not None:
            contrast = self.contrastive_loss(student_scores, 0) + self.contrastive_loss(
                teacher_scores, 1
            )
            terms["contrast"] = contrast.detach()
            loss = loss + self.contrastive_weight * contrast
        self.last_terms = terms
        return loss


# ---------------------------------------------------------------------------------------
# skorch engine
# ---------------------------------------------------------------------------------------


class _DistillationData(torch.utils.data.Dataset):
    """Rows of the student's input, labels and the teacher's (fixed) outputs, as tensors."""

    def __init__(
        self,
        x: torch.Tensor,
        label: torch.Tensor,
        teacher_logits: torch.Tensor,
        teacher_features: torch.Tensor,
    ) -> None:
        self.x = x
        self.label = label
        self.teacher_logits = teacher_logits
        self.teacher_features = teacher_features
        # Each row's slot in the memory bank.
        self.index = torch.arange(len(x), device=x.device)

    def __len__(self) -> int:
        return len(self.x)

    def batch(self, rows: torch.Tensor) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        inputs = {
            "x": self.x[rows],
            "index": self.index[rows],
            "teacher_features": self.teacher_features[rows],
        }
        return inputs, {"label": self.label[rows], "teacher_logits": self.teacher_logits[rows]}

    def __getitem__(self, index: int):
        return self.batch(torch.as_tensor([index], device=self.x.device))


class _DistillationBatches:
    """Batches sliced on the device from a shuffled (training) or fixed (evaluation) order.

    A training pass draws its order from ``generator``, or from a fresh
    ``generator_factory()`` called at the start of the pass, and then, when
    ``n_negatives`` is positive, each batch's memory-bank negative draws from the same
    generator (``inputs["negative_draws"]``, shared by the batch's anchors, see
    :func:`_draw_negatives`): the pass is a function of the generator's seed alone.
    """

    def __init__(
        self,
        dataset: _DistillationData,
        batch_size: int,
        *,
        shuffle: bool,
        generator: torch.Generator | None = None,
        generator_factory: Callable[[], torch.Generator] | None = None,
        n_negatives: int = 0,
    ) -> None:
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.generator = generator
        self.generator_factory = generator_factory
        self.n_negatives = int(n_negatives)

    def __len__(self) -> int:
        if self.shuffle:  # training drops the last partial batch
            return len(self.dataset) // self.batch_size
        return math.ceil(len(self.dataset) / self.batch_size)

    def __iter__(self) -> Iterator:
        n_rows = len(self.dataset)
        device = self.dataset.x.device
        generator = None
        if self.shuffle:
            generator = self.generator_factory() if self.generator_factory else self.generator
            order = to_device(torch.randperm(n_rows, generator=generator), device)
            # Negatives are drawn every batch: on the data's device, so no step waits.
            generator = device_generator(generator, device)
        else:
            order = torch.arange(n_rows, device=device)
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            inputs, targets = self.dataset.batch(order[start : start + self.batch_size])
            if self.shuffle and self.n_negatives:
                draws = _draw_negatives(n_rows, self.n_negatives, generator, device)
                # A view with one row per anchor: every input of a batch has its length.
                inputs["negative_draws"] = draws.expand(len(inputs["index"]), -1)
            yield inputs, targets


class DistillationNet(HostSyncFreeLoop, NeuralNet):
    """skorch net for :class:`ContrastiveDistillationClassifier`.

    ``module`` is the student wrapped with CRD's embeddings and memory banks; ``criterion``
    a :class:`DistillationLoss`. Batches are dicts sliced on the device; the training order
    and the negatives of each epoch are drawn from ``shuffle_seed`` plus the epoch's index
    (see :meth:`epoch_generator`). The validation loss is the held-out cross-entropy, on
    batches in row order; ``eval_seed`` is not used by them and is kept so that every net
    of the package carries the same seeds (:mod:`sk_mlcpc._engine.persistence` saves both).

    Examples
    --------
    >>> import torch
    >>> from sk_mlcpc._engine.distill_net import DistillationLoss, DistillationNet
    >>> net = DistillationNet(torch.nn.Linear(2, 2), criterion=DistillationLoss)
    >>> net.shuffle_seed
    0
    """

    def __init__(self, module, *args, shuffle_seed: int = 0, eval_seed: int = 0, **kwargs) -> None:
        super().__init__(module, *args, **kwargs)
        # ``module`` is the trained instance itself (see ContrastiveNet): map it too.
        self.cuda_dependent_attributes_ = [*self.cuda_dependent_attributes_, "module"]
        self.shuffle_seed = shuffle_seed
        self.eval_seed = eval_seed

    def epoch_generator(self) -> torch.Generator:
        """A generator seeded by ``shuffle_seed`` and the number of epochs begun.

        As :meth:`sk_mlcpc._engine.net.ContrastiveNet.epoch_generator`: skorch builds the
        training iterator once per ``fit``/``partial_fit`` call, so each pass seeds its own
        generator (the net holds none and stays picklable), and an epoch's batches and
        negatives depend on its index only. A warm-started or resumed fit thus draws what an
        uninterrupted one does.
        """
        return torch.Generator().manual_seed(int(self.shuffle_seed) + len(self.history))

    def get_iterator(self, dataset, training=False):
        if training:
            module = self.module_
            return _DistillationBatches(
                dataset,
                self.batch_size,
                shuffle=True,
                generator_factory=self.epoch_generator,
                n_negatives=module.n_negatives if module.contrastive else 0,
            )
        return _DistillationBatches(dataset, self.batch_size, shuffle=False)

    def get_loss(self, y_pred, y_true, X=None, training=False):
        loss = self.criterion_(y_pred, y_true, training=training)
        if training:
            for name, value in self.criterion_.last_terms.items():
                self.history.record_batch(f"train_{name}", value)
        return loss


class _ValidAccuracy(Callback):
    """Record ``valid_acc``, the student's accuracy on the labelled held-out rows."""

    def on_epoch_begin(self, net, **kwargs):
        self.counts_ = None  # (correct, labelled) held-out rows

    def on_batch_end(self, net, batch=None, training=False, y_pred=None, **kwargs):
        if training or y_pred is None:
            return
        labels = batch[1]["label"]
        labelled = labels >= 0  # unlabelled rows (label -1) have no accuracy
        correct = ((y_pred[0].argmax(dim=1) == labels) & labelled).sum()
        counts = torch.stack([correct, labelled.sum()])
        # Counted on the device: read once, at the end of the epoch.
        self.counts_ = counts if self.counts_ is None else self.counts_ + counts

    def on_epoch_end(self, net, **kwargs):
        if self.counts_ is None:
            return
        correct, total = self.counts_.tolist()
        self.counts_ = None
        # NaN when no held-out row is labelled.
        net.history.record("valid_acc", correct / total if total else math.nan)


class _DivergenceGuard(DivergenceGuard):
    """:class:`~sk_mlcpc._engine.net.DivergenceGuard` with distillation's loss ceiling and advice.

    Non-finite gradients and losses, or a loss above ``max_loss``, raise or are repaired
    (``on_divergence="restore"``: the memory banks are restored with the weights, being
    buffers of the module).
    """

    def __init__(
        self,
        max_loss: float = 1e6,
        on_divergence: str = "raise",
        max_restores: int = 5,
        check_every: int | None = None,
    ) -> None:
        super().__init__(
            max_loss=max_loss,
            on_divergence=on_divergence,
            max_restores=max_restores,
            check_every=check_every,
        )

    _diverged = "Distillation"

    def _advice(self, net) -> str:
        return (
            f"Lower learning_rate (currently {net.lr}), keep preprocessing='standard', raise "
            "contrastive_temperature, lower kd_weight / contrastive_weight, or pass "
            "on_divergence='restore' to roll back and halve the learning rate."
        )
