"""Overhead of the skorch engine over a bare PyTorch loop, with the same critic and batches.

Both loops train the same critic (same initial weights) with Adam on the same tensors,
batch 128 sliced from a shuffled index, for the same number of steps, and read the loss
once per step (skorch records it in the history, so the bare loop calls ``.item()`` too).
The third row is the whole estimator (quantile preprocessing, the held-out split scored
after every epoch, the final evaluation on the test rows) on 1 / 0.7 times the rows, so
that it trains on as many (it holds out 10% for validation and 20% for the estimate).
Run::

    python benchmarks/overhead.py [--critic separable_additive] [--epochs 20] [--repeats 3]
"""

import argparse
import copy
import statistics
import time

import torch

from sk_mlcpc import MutualInformationEstimator
from sk_mlcpc._engine import BoundLoss, ContrastiveNet, PairedTensorDataset
from sk_mlcpc.bounds import ml_cpc, resolve_alpha
from sk_mlcpc.critics import make_critic
from sk_mlcpc.datasets import make_correlated_gaussians


def bare_loop(critic, x, y, *, epochs, batch_size, alpha, lr):
    optimizer = torch.optim.Adam(critic.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(0)
    n_batches = len(x) // batch_size
    losses = []
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        for b in range(n_batches):
            index = order[b * batch_size : (b + 1) * batch_size]
            loss = -ml_cpc(critic(x[index], y[index]), alpha=alpha)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    return losses


def engine_loop(critic, x, y, *, epochs, batch_size, alpha, lr):
    net = ContrastiveNet(
        critic,
        criterion=BoundLoss,
        criterion__objective="ml_cpc",
        criterion__alpha=alpha,
        optimizer=torch.optim.Adam,
        lr=lr,
        max_epochs=epochs,
        batch_size=batch_size,
        train_split=None,
        verbose=0,
    )
    net.fit(PairedTensorDataset(x, y), None)
    return net


def estimator_fit(critic_name, X, Y, *, epochs):
    """The whole estimator: preprocessing, split, training and per-epoch validation."""
    MutualInformationEstimator(
        critic=critic_name, max_epochs=epochs, early_stopping=False, random_state=0
    ).fit(X, Y)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--critic", default="separable_additive")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--n-samples", type=int, default=8000)
    args = parser.parse_args()

    X, Y, _ = make_correlated_gaussians(args.n_samples, 20, mi=6.0, random_state=0)
    x = torch.as_tensor(X, dtype=torch.float32)
    y = torch.as_tensor(Y, dtype=torch.float32)
    torch.manual_seed(0)
    template = make_critic(args.critic, 20, 20)
    alpha = resolve_alpha("auto", "ml_cpc", 128)
    steps = args.epochs * (args.n_samples // 128)
    # The estimator holds out 10% + 20%: give it 1 / 0.7 times the rows to train on as many.
    X_full, Y_full, _ = make_correlated_gaussians(
        round(args.n_samples / 0.7), 20, mi=6.0, random_state=0
    )
    estimator_row = "MutualInformationEstimator.fit"
    timings = {"bare PyTorch loop": [], "skorch engine (ContrastiveNet)": [], estimator_row: []}
    loops = [("bare PyTorch loop", bare_loop), ("skorch engine (ContrastiveNet)", engine_loop)]
    for repeat in range(args.repeats):
        # Alternate the order: whichever loop runs first in a pair pays for cache warm-up.
        for name, loop in loops if repeat % 2 == 0 else loops[::-1]:
            critic = copy.deepcopy(template)
            start = time.perf_counter()
            loop(critic, x, y, epochs=args.epochs, batch_size=128, alpha=alpha, lr=5e-4)
            timings[name].append(time.perf_counter() - start)
        start = time.perf_counter()
        estimator_fit(args.critic, X_full, Y_full, epochs=args.epochs)
        timings[estimator_row].append(time.perf_counter() - start)
    print(
        f"critic={args.critic}, {steps} steps of batch 128, {torch.get_num_threads()} threads, "
        f"median of {args.repeats}"
    )
    base = statistics.median(timings["bare PyTorch loop"])
    for name, values in timings.items():
        median = statistics.median(values)
        print(f"{name:<32} {1000 * median / steps:7.3f} ms/step   ratio {median / base:5.3f}")


if __name__ == "__main__":
    main()
