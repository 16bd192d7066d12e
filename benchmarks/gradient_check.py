"""Cost of the divergence guard's gradient check, per way of computing it, in a training step.

The guard (:class:`~sk_mlcpc._engine.net.DivergenceGuard`) needs, after every training
step on the CPU, to know whether any gradient element is non-finite. This times one
training step of the estimator's default critic (Adam, batch 128, one thread) followed by
each candidate check, against the same step with no check:

* ``fused norms``: ``torch._foreach_norm`` over the gradients, stacked, summed and read
  (the guard's check before 2026-12-04; it is still its check on accelerators, where it is
  one kernel left on the device's queue);
* ``sums, read each``: each tensor's sum, read as a float at once, added in Python (the
  guard's check on the CPU since);
* ``sums, stacked``: each tensor's sum, stacked, summed and read once;
* ``flat buffer``: the gradients kept as views of one buffer that is zeroed before the
  backward pass (which then adds into it instead of handing over fresh tensors), and one
  sum over the buffer (the views are attached again each round, one assignment per tensor, since the
  other variants need fresh gradients).

A sum is non-finite when any of its terms is (NaN and infinities carry through), so each
of these answers the same question. The variants run interleaved, one step each in a
shuffled order per round, in one process pinned to one core (this shared machine's speed
drifts within seconds); the cost is the median over rounds of the step's time with the
check divided by the same round's step without it, minus one. Run::

    python benchmarks/gradient_check.py [--rounds 1000]
"""

import argparse
import os
import random
import statistics
import time

import torch

# overhead.py sits next to this script (its folder is on the path when run as one).
from overhead import default_critic

from sk_mlcpc.bounds import ml_cpc, resolve_alpha
from sk_mlcpc.datasets import make_correlated_gaussians

BATCH_SIZE = 128


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=1000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    X, Y, _ = make_correlated_gaussians(4000, 20, mi=6.0, random_state=0)
    x = torch.as_tensor(X, dtype=torch.float32)
    y = torch.as_tensor(Y, dtype=torch.float32)
    alpha = resolve_alpha("auto", "ml_cpc", BATCH_SIZE)
    torch.manual_seed(0)
    critic = default_critic("separable_additive", "gaussian", x, y)
    parameters = list(critic.parameters())
    # A tiny learning rate: the steps must not change the work (the weights barely move).
    optimizer = torch.optim.Adam(parameters, lr=1e-9)
    index = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[:BATCH_SIZE]
    xb, yb = x[index], y[index]

    def step(zero_grad=optimizer.zero_grad):
        zero_grad()
        loss = -ml_cpc(critic(xb, yb), alpha=alpha)
        loss.backward()
        optimizer.step()

    def gradients():
        return [p.grad for p in parameters if p.grad is not None]

    flat = torch.zeros(sum(p.numel() for p in parameters))
    views, offset = [], 0
    for p in parameters:
        views.append(flat[offset : offset + p.numel()].view_as(p))
        offset += p.numel()

    def zero_flat():
        for p, view in zip(parameters, views, strict=True):
            if p.grad is not view:
                p.grad = view
        flat.zero_()

    def no_check():
        step()

    def fused_norms():
        step()
        return torch.stack(torch._foreach_norm(gradients())).sum().item()

    def sums_read_each():
        step()
        return sum([gradient.sum().item() for gradient in gradients()])

    def sums_stacked():
        step()
        return torch.stack([gradient.sum() for gradient in gradients()]).sum().item()

    def flat_buffer():
        step(zero_grad=zero_flat)
        return flat.sum().item()

    variants = {
        "no check": no_check,
        "fused norms": fused_norms,
        "sums, read each": sums_read_each,
        "sums, stacked": sums_stacked,
        "flat buffer": flat_buffer,
    }
    for variant in variants.values():  # warm-up (Adam's state, first-call caches)
        for _ in range(5):
            variant()
    for p in parameters:  # the flat-buffer warm-up left views: start from fresh tensors
        p.grad = None
    times: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    order = random.Random(0)
    for _ in range(args.rounds):
        order.shuffle(names)
        for name in names:
            start = time.perf_counter()
            variants[name]()
            times[name].append(time.perf_counter() - start)
            if name == "flat buffer":
                for p in parameters:  # the others hand fresh gradients to the optimiser
                    p.grad = None
    n_tensors = len(parameters)
    print(
        f"default critic ({n_tensors} parameter tensors, {flat.numel():,} elements), "
        f"batch {BATCH_SIZE}, 1 thread, {args.rounds} interleaved rounds"
    )
    reference = times["no check"]
    for name in variants:
        ratios = [value / base for value, base in zip(times[name], reference, strict=True)]
        print(
            f"{name:<18} {1e6 * statistics.median(times[name]):8.1f} us/step   "
            f"cost {100 * (statistics.median(ratios) - 1):5.2f}% of a step"
        )


if __name__ == "__main__":
    main()
