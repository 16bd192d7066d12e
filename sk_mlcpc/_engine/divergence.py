"""The divergence guard: :class:`DivergenceGuard` and :class:`DivergenceError`.

Every estimator installs the guard. It watches each training step's gradients, losses
and (for the encoder) the scale of the outputs, without a host read per step on an
accelerator; on a divergence it raises with advice, or restores the last good state and
halves the learning rate, and after training :meth:`DivergenceGuard.check_fit` lists the
restores. Its own module because it is the largest concern of the engine, with state of
its own (snapshots, pending flags); it reads the batch records through the loop's
helpers in :mod:`sk_mlcpc._engine.loop`.
"""

from __future__ import annotations

import copy
import math

import torch
from skorch.callbacks import Callback
from torch import nn

from sk_mlcpc._engine import loop
from sk_mlcpc._engine.loop import (
    _current_batches,
    _read_values,
    _training_device,
    settle_batch_records,
)

__all__ = ["DivergenceError", "DivergenceGuard"]


class DivergenceError(FloatingPointError):
    """Raised when training produces a non-finite loss."""


class DivergenceGuard(Callback):
    """Catch a diverging step, without a host sync per step: raise, or restore and slow down.

    After every training step the finiteness of its gradients is computed (on an
    accelerator one fused norm per tensor, kept on the device; on the CPU one sum per
    tensor, read at once); every ``check_every`` steps and at the end of each pass the
    flags and the recorded losses are read in one transfer (see
    :class:`~sk_mlcpc._engine.loop.HostSyncFreeLoop`). A non-finite gradient or loss,
    or a loss above ``max_loss``, is a divergence. With ``on_divergence="raise"`` a
    :class:`DivergenceError` naming the first bad batch, with advice, is raised. With
    ``"restore"`` the module, criterion and optimiser are restored to the last good state
    (the end of the last epoch without trouble, or the start of training), the learning
    rate is halved (the n-th restore leaves ``lr0 / 2^n``, whether the faults come in one
    epoch or in several), the batch records from the first bad batch on are dropped (so
    the epoch's loss averages good steps only) and training goes on; after
    ``max_restores`` restores it raises. Each event is recorded in the history as
    ``divergence`` (a list of dicts per epoch). Steps taken between the bad one and the
    check are discarded by the restore; on the CPU the check runs after every step.

    A loss that ignores the scale of what the module outputs (cosine similarities of
    normalised projections, as in :class:`~sk_mlcpc.ContrastiveEncoder`) never becomes
    non-finite when training diverges: the weights, and the representation with them,
    grow without bound instead (outputs of 1e11 and more). A module that sets an
    ``output_scale`` tensor during a training forward pass (the root mean square of the
    representation it returns, see
    :class:`~sk_mlcpc._engine.encoder_net.ViewPairModule`) has it checked with the
    gradients, and, if it has a ``measure_output_scale(**inputs)`` method, once more on
    the last batch at the end of each training pass (the last step's update is seen by
    no training forward pass): above ``max_output_growth`` times its value at the first
    step of the fit (or times 1, when that is smaller), it is a divergence too. Such a
    scale only grows (the loss gives it no reason to shrink), so a restore must go back
    to a state well below the limit: an epoch's end is kept as the state to restore only
    while the scale is under a tenth of the limit.

    Restores never pass unnoticed: after training, :meth:`check_fit` lists them (the
    estimators count them in ``n_restores_`` and warn) and raises when every epoch was
    rolled back. A divergence in a validation pass is raised even with ``"restore"``
    (there is no step to roll back), and advice never suggests ``"restore"`` to a guard
    that has it on.

    Parameters
    ----------
    max_loss : float, default=1e4
        A loss above this (a bound below ``-max_loss`` nats) counts as divergence too: a
        lower bound that far below zero only arises from a critic whose scores exploded.
    on_divergence : {"raise", "restore"}, default="raise"
        What to do on a divergence.
    max_restores : int, default=5
        Restores allowed in one fit before giving up with a :class:`DivergenceError`.
    check_every : int or None, default=None
        Steps between host reads of the flags. ``None``: every step on the CPU (where a
        read costs nothing), every 64 steps on an accelerator.
    max_output_growth : float, default=1e3
        Growth of the module's ``output_scale`` that counts as divergence (modules that
        set none are not checked). Healthy fits stay far below: a factor of about 3 after
        150 epochs of :class:`~sk_mlcpc.ContrastiveEncoder` on the digits at its default
        learning rate, about 80 after 10 epochs at 30 times that rate.

    Examples
    --------
    >>> from sk_mlcpc._engine.divergence import DivergenceGuard
    >>> DivergenceGuard(on_divergence="restore", check_every=16).initialize().n_restores_
    0
    """

    def __init__(
        self,
        max_loss: float = 1e4,
        on_divergence: str = "raise",
        max_restores: int = 5,
        check_every: int | None = None,
        max_output_growth: float = 1e3,
    ) -> None:
        self.max_loss = max_loss
        self.on_divergence = on_divergence
        self.max_restores = max_restores
        self.check_every = check_every
        self.max_output_growth = max_output_growth

    def initialize(self):
        if self.on_divergence not in ("raise", "restore"):
            raise ValueError(
                f"on_divergence must be 'raise' or 'restore', got {self.on_divergence!r}."
            )
        if self.check_every is not None and (
            not isinstance(self.check_every, int) or self.check_every < 1
        ):
            raise ValueError(
                f"check_every must be a positive integer or None, got {self.check_every!r}."
            )
        self._snapshot = None
        self._restores_since_snapshot = 0
        self._reset_pending()
        self._parameters: list[nn.Parameter] | None = None  # set at each epoch's start
        self._interval: int | None = None
        self.n_restores_ = 0
        return self

    def _reset_pending(self) -> None:
        self._gradient_flags: list[tuple[int, torch.Tensor]] = []
        self._output_scales: list[tuple[int, torch.Tensor]] = []
        self._first_unchecked = 0
        self._steps_since_check = 0

    # The snapshot and the pending flags hold tensors: not part of a pickled model.
    def __getstate__(self):
        state = self.__dict__.copy()
        state["_snapshot"] = None
        state["_gradient_flags"] = []
        state["_output_scales"] = []
        state["_reference_scale"] = None
        state["_last_batch"] = None
        state["_parameters"] = None
        state["_interval"] = None
        return state

    def _take_snapshot(self, net) -> None:
        # The snapshot's optimiser state holds the learning rate of its time, halvings
        # already applied; restores count from it (see _restore).
        self._restores_since_snapshot = 0
        if self.on_divergence != "restore":
            # Only a restore reads it: copying the module and the optimiser's moments
            # every epoch would cost ~1% of a default fit for nothing.
            self._snapshot = None
            return
        self._snapshot = {
            "module": copy.deepcopy(net.module_.state_dict()),
            "criterion": copy.deepcopy(net.criterion_.state_dict()),
            "optimizer": copy.deepcopy(net.optimizer_.state_dict()),
        }

    def on_train_begin(self, net, **kwargs):
        self._reset_pending()
        self._reference_scale: torch.Tensor | None = None
        self._last_scale: tuple[float, float] | None = None  # (scale, limit), read last
        self._take_snapshot(net)

    def on_epoch_begin(self, net, **kwargs):
        self._reset_pending()
        # Fixed during an epoch, and costly to look up every step (a walk over the
        # modules' parameters: ~40 us a step on the default critic).
        self._parameters = [parameter for _, parameter in net.get_all_learnable_params()]
        # Looked up on the loop's module at each call, not imported: the loop and the guard
        # then read one policy, which a test can change in one place (an accelerator's
        # deferred checks, run on the CPU).
        self._interval = self.check_every or loop._default_check_every(_training_device(net))

    def _flag_gradients(self, net) -> None:
        """Keep the finiteness of the step's gradients (after the optimiser's step).

        The optimiser does not change ``.grad`` and the next step's ``zero_grad`` has not
        run yet, so these are the gradients the step used. Read right after the optimiser
        read them, they are still in the cache: on the default critic on the CPU, reducing
        them cost half what it cost before the step (measured in the training loop).
        """
        if getattr(net, "precision", "fp32") == "fp16":
            # The gradient scaler skips steps whose gradients overflow and lowers the
            # scale: an infinite gradient there is routine, not divergence.
            return
        parameters = self.__dict__.get("_parameters")
        if parameters is None:  # a step outside an epoch
            parameters = [parameter for _, parameter in net.get_all_learnable_params()]
        gradients = [p.grad for p in parameters if p.grad is not None]
        if not gradients:
            return
        # A sum is non-finite when any of its terms is (NaN and infinities carry through;
        # one that overflows counts as non-finite too), so one reduction per tensor tells
        # whether any gradient element is non-finite (a finiteness test per tensor costs
        # ~0.8 ms a step on the default critic).
        cache = net.__dict__.get("_pass_cache")
        if cache is not None and cache.host_losses:
            # On the CPU each tensor's sum, read at once (a read costs nothing there):
            # half the cost of the fused norms below, in the training loop (they square
            # every element and stack their results), and no flags to stack later.
            total = sum([gradient.sum().item() for gradient in gradients])
        else:
            # On an accelerator one fused kernel for all the tensors, left on the queue.
            total = torch.stack(torch._foreach_norm(gradients)).sum()
        self._gradient_flags.append((len(_current_batches(net)) - 1, total))

    def _record_scale(self, net, index: int) -> None:
        scale = getattr(net.module_, "output_scale", None)
        if isinstance(scale, torch.Tensor):
            net.module_.output_scale = None  # read once: the next forward sets it again
            if self._reference_scale is None:
                self._reference_scale = scale
            self._output_scales.append((index, scale))

    def on_batch_end(self, net, batch=None, training=False, **kwargs):
        # Everything per step happens here, in one hook: the module's output scale is
        # the one its training forward pass left (no forward pass runs between the
        # gradients and the end of the batch), and the batch is kept for the scale's
        # measurement at the end of the pass.
        if training:
            self._last_batch = batch
            self._record_scale(net, len(_current_batches(net)) - 1)
            self._flag_gradients(net)
        self._steps_since_check += 1
        interval = self.__dict__.get("_interval")
        if interval is None:
            interval = self.check_every or loop._default_check_every(_training_device(net))
        if self._steps_since_check >= interval:
            self._check(net, training)

    def on_pass_end(self, net, training=False, **kwargs):
        batch, self._last_batch = getattr(self, "_last_batch", None), None
        measure = getattr(net.module_, "measure_output_scale", None)
        if training and measure is not None and batch is not None:
            # The last step's update is seen by no training forward pass: measure the
            # scale it left on the last batch, before the held-out pass runs on it.
            inputs = batch[0] if isinstance(batch, tuple | list) else batch
            measure(**inputs) if isinstance(inputs, dict) else measure(inputs)
            self._record_scale(net, len(_current_batches(net)) - 1)
        self._check(net, training)

    def on_epoch_end(self, net, **kwargs):
        if net.history[-1].get("divergence"):
            return
        scale = getattr(self, "_last_scale", None)
        if scale is None or scale[0] <= scale[1] / 10:
            self._take_snapshot(net)

    def _check(self, net, training: bool) -> None:
        self._steps_since_check = 0
        batches = _current_batches(net)
        if self._one_good_step(batches, training):
            return
        settle_batch_records(batches)
        bad_gradients, bad_scales = self._read_flags()
        key = "train_loss" if training else "valid_loss"
        # A flag may concern a batch already checked (the scale measured at the end of
        # the pass belongs to the last batch).
        first = min([self._first_unchecked, *bad_gradients, *bad_scales])
        for index in range(first, len(batches)):
            loss = batches[index].get(key)
            if loss is None:
                continue
            reasons = ["a non-finite gradient"] if index in bad_gradients else []
            if self._bad_loss(loss):
                reasons.append(f"a {key.replace('_', ' ')} of {loss}")
            if index in bad_scales:
                reasons.append(bad_scales[index])
            if reasons:
                position = sum(key in record for record in batches[:index])
                reason = " and ".join(reasons)
                if self.on_divergence == "raise" or not training:
                    self._raise(net, reason, training=training, batch=position + 1)
                self._restore(net, reason, first_bad=index, position=position)
                break
        self._first_unchecked = len(batches)

    def _bad_loss(self, loss: float) -> bool:
        return not math.isfinite(loss) or loss > self.max_loss

    def _one_good_step(self, batches: list[dict], training: bool) -> bool:
        """Whether the only unchecked step is fine, read without any tensor (the CPU).

        The common case of a check after every step: one new record, its loss and its
        gradient flag already floats, no output scale pending. Then it is checked here
        and marked checked; anything else (a problem included) takes the full path.
        """
        flags = self._gradient_flags
        if self._output_scales or len(batches) != self._first_unchecked + 1 or len(flags) > 1:
            return False
        loss = batches[-1].get("train_loss" if training else "valid_loss")
        if loss is not None and (type(loss) is not float or self._bad_loss(loss)):
            return False  # a tensor to settle, or a bad loss
        if flags:
            index, flag = flags[0]
            if index != len(batches) - 1 or not (type(flag) is float and math.isfinite(flag)):
                return False
        self._gradient_flags = []
        self._first_unchecked = len(batches)
        return True

    def _read_flags(self) -> tuple[set[int], dict[int, str]]:
        """The batches with non-finite gradients, and those whose output grew too much.

        Every pending flag and scale is read in one transfer from the device.
        """
        flags, scales = self._gradient_flags, self._output_scales
        self._gradient_flags, self._output_scales = [], []
        pending = [flag for _, flag in flags] + [scale for _, scale in scales]
        if not pending:
            return set(), {}
        if scales:
            pending.append(self._reference_scale)
        values = _read_values(pending)
        norms, measured = values[: len(flags)], values[len(flags) :]
        bad_gradients = {
            index for (index, _), norm in zip(flags, norms, strict=True) if not math.isfinite(norm)
        }
        bad_scales: dict[int, str] = {}
        if scales:
            reference = measured.pop()
            limit = self.max_output_growth * max(reference, 1.0)
            self._last_scale = (measured[-1], limit)
            for (index, _), value in zip(scales, measured, strict=True):
                if not value <= limit:  # NaN too
                    bad_scales[index] = (
                        f"outputs grown to a root mean square of {value:.3g}, over "
                        f"{self.max_output_growth:g} times their {reference:.3g} at the start "
                        "of training"
                    )
        return bad_gradients, bad_scales

    def _restore(self, net, reason: str, *, first_bad: int, position: int) -> None:
        self.n_restores_ += 1
        if self.n_restores_ > self.max_restores:
            self._raise(
                net,
                f"{reason} after {self.max_restores} restores",
                training=True,
                batch=position + 1,
            )
        net.module_.load_state_dict(self._snapshot["module"])
        net.criterion_.load_state_dict(self._snapshot["criterion"])
        # A copy: Optimizer.load_state_dict keeps the given state tensors (they are on the
        # right device already) and the next steps update them in place, so loading the
        # snapshot itself would let a later bad step poison it (NaN moments), and every
        # later restore would bring the NaN back.
        net.optimizer_.load_state_dict(copy.deepcopy(self._snapshot["optimizer"]))
        # The snapshot's rate already carries the halvings of earlier restores (a clean
        # epoch after a restore snapshots the halved rate): halve it once for each
        # restore since the snapshot, so the n-th restore of a fit leaves lr0 / 2^n.
        self._restores_since_snapshot += 1
        new_lrs = []
        for group in net.optimizer_.param_groups:
            group["lr"] = group["lr"] / 2.0**self._restores_since_snapshot
            new_lrs.append(group["lr"])
        batches = net.history[-1]["batches"]
        discarded = len(batches) - first_bad
        del batches[first_bad:]
        events = net.history[-1].get("divergence", [])
        events.append(
            {
                "batch": position,
                "reason": reason,
                "learning_rate": min(new_lrs),
                "discarded_batches": discarded,
            }
        )
        net.history.record("divergence", events)

    _diverged = "Training"

    def _restore_hint(self) -> str:
        """The end of an advice: suggest restores only to a fit that does not make them."""
        if self.on_divergence == "restore":
            return "."
        return ", or pass on_divergence='restore' to roll back and halve the learning rate."

    def _advice(self, net) -> str:
        return (
            f"Lower learning_rate (currently {net.lr}), standardise the inputs "
            "(keep the estimator's preprocessing on), use a smaller network, or choose a "
            "lower-variance objective ('ml_cpc' or 'cpc' rather than 'nwj'/'dv')"
            + self._restore_hint()
        )

    def _raise(self, net, reason: str, *, training: bool, batch: int) -> None:
        phase = "training" if training else "validation"
        advice = self._scale_advice(net) if "outputs grown" in reason else self._advice(net)
        if not training and self.on_divergence == "restore":
            # Restores repair training steps; a held-out pass has nothing to roll back,
            # and advising the option already on would send the user in a circle.
            advice = (
                "on_divergence='restore' is on, but it repairs training steps only: the "
                "weights of a training pass without a fault give a non-finite or "
                f"exploding held-out loss. {advice}"
            )
        raise DivergenceError(
            f"{self._diverged} diverged: {reason} at {phase} batch {batch} of epoch "
            f"{len(net.history)}. {advice}"
        )

    def _scale_advice(self, net) -> str:
        return (
            "The loss compares normalised projections and does not see the scale of the "
            "outputs, so a learning rate too large for the network inflates them without "
            f"any loss going wrong. Lower learning_rate (currently {net.lr}) or set "
            "weight_decay (1e-3 to 1e-2) to keep the weights' scale in check" + self._restore_hint()
        )

    def check_fit(self, net, *, first_epoch: int = 0) -> list[tuple[int, dict]]:
        """The restores of the epochs from ``first_epoch`` on; raise if all were rolled back.

        An epoch with a restore ends on weights the guard rolled back to; when every
        epoch of a fit had one, no epoch finished cleanly and what the fit returns may be
        the state it started from (an untrained network, bit for bit), so that is a
        :class:`DivergenceError`, with the advice of the last restore.

        Parameters
        ----------
        net : ContrastiveNet
            The net this guard watched, after training.
        first_epoch : int, default=0
            Index in ``net.history`` of the fit's first epoch (a warm start continues a
            history).

        Returns
        -------
        restores : list of (int, dict)
            Each restore, in order, as its epoch (1-based) and its ``divergence`` record.
        """
        rows = list(net.history)[first_epoch:]
        restores = [
            (epoch, event)
            for epoch, row in enumerate(rows, start=first_epoch + 1)
            for event in row.get("divergence") or []
        ]
        if rows and all(row.get("divergence") for row in rows):
            reason = restores[-1][1]["reason"]
            advice = self._scale_advice(net) if "outputs grown" in reason else self._advice(net)
            raise DivergenceError(
                f"{self._diverged} diverged in every epoch of the fit: {len(restores)} "
                f"restore(s) in {len(rows)} epoch(s), the last for {reason}. No epoch "
                "finished cleanly: each rollback went back to the weights this fit started "
                f"from, so the model would be returned barely trained or untrained. {advice}"
            )
        return restores
