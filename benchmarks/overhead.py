"""Overhead of the skorch engine over a bare PyTorch loop doing the same work.

Two pairs, each a reference and what is compared with it, one torch thread by default:

* ``bare PyTorch loop``: the critic trained with Adam on tensors, batch 128 sliced from a
  shuffled index, reading the loss once per step (skorch records it in the history);
  against ``skorch engine (ContrastiveNet)``: the same critic (same initial weights),
  batches and steps through :class:`~sk_mlcpc._engine.net.ContrastiveNet` with the
  callbacks every estimator installs (the divergence guard, checking every step's
  gradients and loss, and the MI log).
* ``bare whole fit``: what ``MutualInformationEstimator.fit`` does, written by hand in
  PyTorch: the same three-way split of 1 / 0.7 times the rows (so that it trains on as
  many), quantile preprocessing fitted on the training rows, the Gaussian baseline fitted
  on them, the same training steps, a held-out pass over the validation rows after every
  epoch (one batch of all of them, at the alpha of that size), the score ceiling (99.9th
  percentile of the training positives) and the final evaluation on the test rows, scores
  clamped at the ceiling (the bound on one batch of all of them, on its two halves, and
  on the 20 leave-a-group-out subsets of the jackknife); against
  ``MutualInformationEstimator.fit``: the estimator itself (``early_stopping=False``, so
  that both run the same epochs, and ``lr_schedule=None``, the bare loop's constant
  rate). The extra work of the estimator is done by both, so the ratio is the cost of
  the engine, plus the estimator's input checks.

Every row trains the estimator's default critic: ``critic`` with 64 components and GELU,
and (unless ``--baseline none``) the Gaussian baseline, fitted in closed form on the
training rows of each row's data before the first step.

Timing: the two workloads of a pair run in lock-step, in two processes (forked, each
with its own memory allocator), one at a time, handing the turn over every 8 training
steps and at the start and end of training (so that set-up and final evaluation run
next to each other too); each workload's time is the sum of its own turns. Both are
pinned to one core: the
shared machine's speed drifts by tens of percent within seconds, and its two cores
differ by a few percent, which timing each workload as a whole (``--sequential``, the
method before) turned into run-to-run ratios from 0.93 to 1.11. ``--control`` also times
the bare loop against itself, whose ratio shows the method's own noise (it should be 1).
Each workload first runs once untimed in the parent process (the forked ones inherit
its warmed-up state); who starts alternates.

``--pairs guard`` times what the divergence guard costs instead: the engine against the
engine without the guard, and against the engine with the guard less its per-step
gradient check.

The columns give the median milliseconds per training step (the workload's time divided
by the training steps, so the fits include their other work) and the median over
repeats of the ratio to the pair's reference, with its range. Run::

    python benchmarks/overhead.py [--critic separable_additive] [--baseline gaussian]
        [--epochs 20] [--repeats 6] [--pairs both|engine|fit|guard] [--control] [--raw]
"""

import argparse
import copy
import math
import multiprocessing
import os
import statistics
import time
import warnings

import numpy as np
import torch
from sklearn.preprocessing import QuantileTransformer
from skorch.callbacks import Callback

from sk_mlcpc import MutualInformationEstimator
from sk_mlcpc._engine.evaluation import JACKKNIFE_GROUPS, auto_eval_batch_size
from sk_mlcpc._engine.net import (
    BoundLoss,
    ContrastiveNet,
    DivergenceGuard,
    MutualInformationLog,
    PairedTensorDataset,
)
from sk_mlcpc._estimators.mi import _CEILING_QUANTILE
from sk_mlcpc.bounds import ml_cpc, resolve_alpha
from sk_mlcpc.critics import GaussianBaselineCritic, make_critic
from sk_mlcpc.datasets import make_correlated_gaussians

BATCH_SIZE = 128
LEARNING_RATE = 5e-4
CEILING_QUANTILE = _CEILING_QUANTILE  # the estimator's score_ceiling_ percentile


def bare_loop(critic, x, y, *, epochs, alpha, validate=None, after_step=None, boundary=None):
    """Adam on shuffled slices of ``x``, ``y``; ``after_step()`` after every step,
    ``validate()`` after every epoch, ``boundary()`` before the first and after the last."""
    if boundary is not None:
        boundary()
    optimizer = torch.optim.Adam(critic.parameters(), lr=LEARNING_RATE)
    generator = torch.Generator().manual_seed(0)
    n_batches = len(x) // BATCH_SIZE
    losses = []
    for _ in range(epochs):
        critic.train()
        order = torch.randperm(len(x), generator=generator)
        for b in range(n_batches):
            index = order[b * BATCH_SIZE : (b + 1) * BATCH_SIZE]
            loss = -ml_cpc(critic(x[index], y[index]), alpha=alpha)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            if after_step is not None:
                after_step()
        if validate is not None:
            validate()
    if boundary is not None:
        boundary()
    return losses


class Turns:
    """Where a workload hands the turn over in lock-step timing: after every ``every``
    training steps, or (``every=0``) at each epoch's end."""

    def __init__(self, switch=lambda: None, every=0):
        self.switch = switch
        self.every = every
        self.steps = 0

    def after_step(self):
        if self.every:
            self.steps += 1
            if self.steps % self.every == 0:
                self.switch()

    def after_epoch(self):
        if not self.every:
            self.switch()

    def boundary(self):
        """Training starts or ends: hand over, so that the set-up (preprocessing) and the
        final evaluation of the two workloads run next to each other in time."""
        self.switch()


class HandOver(Callback):
    """Tells ``turns`` about each epoch's end (an engine's side of :class:`Turns`).

    Deep copies are the instance itself: the estimators copy the callbacks they are given,
    and the copy must reach the same turns.
    """

    def __init__(self, turns=None):
        self.turns = turns

    def __deepcopy__(self, memo):
        return self

    def on_train_begin(self, net, **kwargs):
        self.turns.boundary()

    def on_epoch_end(self, net, **kwargs):
        self.turns.after_epoch()

    def on_train_end(self, net, **kwargs):
        self.turns.boundary()


class HandOverBySteps(HandOver):
    """:class:`HandOver` that also counts training steps (one more call a step)."""

    def on_batch_end(self, net, batch=None, training=False, **kwargs):
        if training:
            self.turns.after_step()


def hand_over(turns):
    """The callback for ``turns``: per-step hooks only when the turns need them."""
    return HandOverBySteps(turns) if turns.every else HandOver(turns)


class GuardWithoutGradientCheck(DivergenceGuard):
    """The divergence guard less its per-step gradient check (losses still checked)."""

    def _flag_gradients(self, net):
        pass


def engine_loop(critic, x, y, *, epochs, alpha, turns=None, guard=DivergenceGuard):
    """The same steps through the engine, with the estimators' training callbacks.

    ``guard``: the divergence guard's class, or None for none (``--pairs guard``).
    """
    guards = [] if guard is None else [("divergence_guard", guard())]
    net = ContrastiveNet(
        critic,
        criterion=BoundLoss,
        criterion__objective="ml_cpc",
        criterion__alpha=alpha,
        optimizer=torch.optim.Adam,
        lr=LEARNING_RATE,
        max_epochs=epochs,
        batch_size=BATCH_SIZE,
        train_split=None,
        callbacks=[
            *guards,
            ("mutual_information", MutualInformationLog()),
            ("hand_over", hand_over(turns or Turns())),
        ],
        verbose=0,
    )
    net.fit(PairedTensorDataset(x, y), None)
    return net


def _held_out_bound(critic, x, y, batch_size, alpha):
    """The bound on one batch of ``batch_size`` rows in a fixed shuffled order."""
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[:batch_size]
    return ml_cpc(critic(x[order], y[order]), alpha=alpha)


def _score_ceiling(critic, x, y):
    """The 99.9th percentile of the training positives' scores (``score_ceiling_``)."""
    positives = torch.cat(
        [
            critic.pointwise(x[start : start + 8192], y[start : start + 8192])
            for start in range(0, len(x), 8192)
        ]
    )
    return float(np.quantile(positives.double().numpy(), CEILING_QUANTILE))


def _final_evaluation(critic, x, y, batch_size, ceiling):
    """The bound on the test rows (scores clamped at ``ceiling``), its two halves and the
    20 jackknife subsets."""
    alpha = resolve_alpha("auto", "ml_cpc", batch_size)
    half = batch_size // 2
    half_alpha = resolve_alpha("auto", "ml_cpc", half)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[:batch_size]
    scores = critic(x[order], y[order]).clamp_(max=ceiling)
    value = float(ml_cpc(scores, alpha=alpha))
    rows = torch.arange(batch_size)
    halves = [rows[:half], rows[half : 2 * half]]
    half_value = np.mean(
        [
            float(ml_cpc(scores.index_select(0, part).index_select(1, part), alpha=half_alpha))
            for part in halves
        ]
    )
    replicates = np.array(
        [
            float(ml_cpc(scores.index_select(0, keep).index_select(1, keep), alpha=alpha))
            for keep in (rows[rows % JACKKNIFE_GROUPS != g] for g in range(JACKKNIFE_GROUPS))
        ]
    )
    variance = (
        (JACKKNIFE_GROUPS - 1) / JACKKNIFE_GROUPS * np.sum((replicates - replicates.mean()) ** 2)
    )
    return value, half_value, math.sqrt(variance)


def bare_fit(critic, X, Y, *, epochs, validation_fraction=0.1, test_fraction=0.2, turns=None):
    """The estimator's work by hand: split, preprocess, train, validate, evaluate.

    ``turns`` (:class:`Turns`) is told of each training step and of each epoch's end
    (after its held-out pass).
    """
    turns = turns or Turns()
    n = len(X)
    n_valid = math.ceil(validation_fraction * n)
    n_test = math.ceil(test_fraction * n)
    order = np.random.default_rng(0).permutation(n)
    train, valid, test = np.split(order, [n - n_valid - n_test, n - n_test])
    columns = []
    for data in (X, Y):
        quantiles = QuantileTransformer(
            n_quantiles=min(1000, len(train)), output_distribution="normal", random_state=0
        ).fit(data[train])
        columns.append(torch.as_tensor(quantiles.transform(data), dtype=torch.float32))
    x, y = columns
    valid_batch = auto_eval_batch_size(n_valid, joint=False)
    valid_alpha = resolve_alpha("auto", "ml_cpc", valid_batch)
    valid_mi = []

    def validate():
        critic.eval()
        with torch.no_grad():
            valid_mi.append(
                float(_held_out_bound(critic, x[valid], y[valid], valid_batch, valid_alpha))
            )
        turns.after_epoch()

    if isinstance(critic, GaussianBaselineCritic):
        critic.fit_baseline(x[train], y[train])
    bare_loop(
        critic,
        x[train],
        y[train],
        epochs=epochs,
        alpha=resolve_alpha("auto", "ml_cpc", BATCH_SIZE),
        validate=validate,
        after_step=turns.after_step,
        boundary=turns.boundary,
    )
    critic.eval()
    with torch.no_grad():
        ceiling = _score_ceiling(critic, x[train], y[train])
        return _final_evaluation(
            critic, x[test], y[test], auto_eval_batch_size(n_test, joint=False), ceiling
        )


def estimator_fit(critic_name, baseline, X, Y, *, epochs, turns=None):
    """The whole estimator: preprocessing, split, training, validation, evaluation."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "still improving": expected after few epochs
        MutualInformationEstimator(
            critic=critic_name,
            baseline=baseline,
            lr_schedule=None,
            max_epochs=epochs,
            early_stopping=False,
            random_state=0,
            callbacks=None if turns is None else [("hand_over", hand_over(turns))],
        ).fit(X, Y)


def default_critic(critic_name, baseline, x=None, y=None):
    """The estimator's default critic for 20 + 20 columns (baseline fitted on x, y if given)."""
    critic = make_critic(critic_name, 20, 20, embedding_dim=64, activation="gelu")
    if baseline == "gaussian":
        critic = GaussianBaselineCritic(critic, 20, 20)
        if x is not None:
            critic.fit_baseline(x, y)
    return critic


class LockStep:
    """Runs two workloads in two processes, one at a time, handing over between them.

    Each workload runs in a process of its own (forked, on the same pinned core), so that
    neither inherits the other's memory-allocator state: in one process, glibc's
    trimming of freed memory made one workload re-fault ~4,000 pages (16 MB) every
    epoch and not the other, depending on their interleaving. Each workload's time is the sum of
    its own turns (from being handed the turn to handing it back). Once one workload has
    finished, the other runs on alone.
    """

    def __init__(self, names):
        self.names = list(names)

    def run(self, workloads, every=0):
        """Run ``{name: function(turns)}``, handing over every ``every`` training steps
        (``0``: at each epoch's end); the first name in ``names`` starts. Returns each
        workload's time in seconds."""
        context = multiprocessing.get_context("fork")
        turns = {name: context.Semaphore(0) for name in self.names}
        finished = {name: context.Value("b", 0) for name in self.names}
        results = context.Queue()

        def worker(name, other):
            clock = {"elapsed": 0.0, "since": 0.0}

            def switch():
                clock["elapsed"] += time.perf_counter() - clock["since"]
                if not finished[other].value:
                    turns[other].release()
                    turns[name].acquire()
                clock["since"] = time.perf_counter()

            turns[name].acquire()
            clock["since"] = time.perf_counter()
            try:
                workloads[name](Turns(switch, every))
                error = None
            except BaseException as caught:  # reported by the parent
                error = repr(caught)
            clock["elapsed"] += time.perf_counter() - clock["since"]
            finished[name].value = 1
            turns[other].release()
            results.put((name, clock["elapsed"], error))

        first, second = self.names
        processes = [
            context.Process(target=worker, args=(first, second)),
            context.Process(target=worker, args=(second, first)),
        ]
        for process in processes:
            process.start()
        turns[first].release()
        elapsed = {}
        for _ in processes:
            name, seconds, error = results.get()
            if error is not None:
                raise RuntimeError(f"{name} failed: {error}")
            elapsed[name] = seconds
        for process in processes:
            process.join()
        return elapsed


def _summary(name, times, reference, steps):
    ratios = [value / base for value, base in zip(times, reference, strict=True)]
    return (
        f"{name:<32} {1000 * statistics.median(times) / steps:7.3f} ms/step   "
        f"ratio {statistics.median(ratios):5.3f}   "
        f"[{min(ratios):5.3f}, {max(ratios):5.3f}]"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--critic", default="separable_additive")
    parser.add_argument("--baseline", default="gaussian", choices=["gaussian", "none"])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--n-samples", type=int, default=8000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--pairs",
        choices=["both", "engine", "fit", "guard"],
        default="both",
        help="the engine against the bare loop, the whole fit against the bare fit, or both; "
        "'guard': the engine without the divergence guard, and with the guard less its "
        "gradient check, each against the engine (what the guard costs)",
    )
    parser.add_argument(
        "--switch-every",
        type=int,
        default=8,
        help="training steps between hand-overs in lock-step timing (0: each epoch's end)",
    )
    parser.add_argument(
        "--control",
        action="store_true",
        help="also time the bare loop against itself (the method's own noise: ratio 1)",
    )
    parser.add_argument(
        "--raw", action="store_true", help="print every repeat's ratio, not only the summary"
    )
    parser.add_argument(
        "--sequential",
        action="store_true",
        help="time each row as a whole, one after the other (the method before lock-step)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.threads == 1 and hasattr(os, "sched_setaffinity"):
        # Both processes of a lock-step on one core: the OS otherwise tends to keep each
        # on its own, and two cores of a shared machine differ in speed by a few percent.
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

    X, Y, _ = make_correlated_gaussians(args.n_samples, 20, mi=6.0, random_state=0)
    x = torch.as_tensor(X, dtype=torch.float32)
    y = torch.as_tensor(Y, dtype=torch.float32)
    baseline = None if args.baseline == "none" else args.baseline
    torch.manual_seed(0)
    template = default_critic(args.critic, baseline, x, y)  # for the two loops on x, y
    torch.manual_seed(0)
    fit_template = default_critic(args.critic, baseline)  # bare_fit fits it on its rows
    alpha = resolve_alpha("auto", "ml_cpc", BATCH_SIZE)
    steps = args.epochs * (args.n_samples // BATCH_SIZE)
    # The fits hold out 10% + 20%: give them 1 / 0.7 times the rows to train on as many.
    X_full, Y_full, _ = make_correlated_gaussians(
        round(args.n_samples / 0.7), 20, mi=6.0, random_state=0
    )

    def bare_row(turns):
        return bare_loop(
            copy.deepcopy(template),
            x,
            y,
            epochs=args.epochs,
            alpha=alpha,
            validate=turns.after_epoch,
            after_step=turns.after_step,
            boundary=turns.boundary,
        )

    # Each pair: the reference first, then what is compared with it. A workload takes
    # the Turns to tell of its steps and epochs.
    pairs = [
        {
            "bare PyTorch loop": bare_row,
            "skorch engine (ContrastiveNet)": lambda turns: engine_loop(
                copy.deepcopy(template), x, y, epochs=args.epochs, alpha=alpha, turns=turns
            ),
        },
        {
            "bare whole fit": lambda turns: bare_fit(
                copy.deepcopy(fit_template), X_full, Y_full, epochs=args.epochs, turns=turns
            ),
            "MutualInformationEstimator.fit": lambda turns: estimator_fit(
                args.critic, baseline, X_full, Y_full, epochs=args.epochs, turns=turns
            ),
        },
    ]

    def engine_row(guard):
        return lambda turns: engine_loop(
            copy.deepcopy(template), x, y, epochs=args.epochs, alpha=alpha, turns=turns, guard=guard
        )

    guard_pairs = [
        {
            "engine, no divergence guard": engine_row(None),
            "skorch engine": engine_row(DivergenceGuard),
        },
        {
            "engine, guard less gradient check": engine_row(GuardWithoutGradientCheck),
            "skorch engine": engine_row(DivergenceGuard),
        },
    ]
    pairs = {"both": pairs, "engine": pairs[:1], "fit": pairs[1:], "guard": guard_pairs}[args.pairs]
    if args.control:
        pairs.insert(
            0,
            {"bare PyTorch loop": bare_row, "bare PyTorch loop, again": bare_row},
        )
    method = (
        "sequential"
        if args.sequential
        else f"lock-step every {args.switch_every} steps"
        if args.switch_every
        else "lock-step by epoch"
    )
    print(
        f"critic={args.critic}, baseline={args.baseline}, {steps} steps of batch {BATCH_SIZE}, "
        f"{torch.get_num_threads()} threads, {method}, median of {args.repeats} "
        "[range of the ratio over repeats]"
    )
    for workloads in pairs:
        names = list(workloads)
        timings: dict[str, list[float]] = {name: [] for name in names}
        # Warm up in this process (lazy imports, first-call caches): the lock-step's
        # forked processes inherit it.
        for name in names:
            workloads[name](Turns())
        for repeat in range(args.repeats):
            order = names if repeat % 2 == 0 else names[::-1]  # who starts alternates
            if args.sequential:
                for name in order:
                    start = time.perf_counter()
                    workloads[name](Turns())
                    timings[name].append(time.perf_counter() - start)
            else:
                elapsed = LockStep(order).run(workloads, every=args.switch_every)
                for name in names:
                    timings[name].append(elapsed[name])
        reference = timings[names[0]]
        for name in names:
            print(_summary(name, timings[name], reference, steps))
        if args.raw:
            compared = timings[names[1]]
            ratios = [value / base for value, base in zip(compared, reference, strict=True)]
            print("  each repeat:", " ".join(f"{ratio:.3f}" for ratio in ratios))
    # ratio: the median over repeats of (time of the row) / (time of the pair's first row)


if __name__ == "__main__":
    main()
