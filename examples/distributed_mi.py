"""
Estimating mutual information on several processes
==================================================

Estimate mutual information on several processes, with negatives from all of them.

Every process runs this script on the same data and seeds; each trains on its share of
every global batch, and the bound is that of the whole global batch (its cap,
``alpha="auto"`` and its value are those of one process with ``--batch-size`` rows).

Run it with any of::

    python examples/distributed_mi.py                          # one process
    torchrun --nproc_per_node 2 examples/distributed_mi.py     # 2 CPU processes (gloo)
    accelerate launch --multi_gpu --num_processes 4 examples/distributed_mi.py  # 4 GPUs

The documentation shows this script but does not run it (its name does not start with
``plot_``): it needs to be launched on several processes.
"""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import torch
from accelerate import Accelerator
from skorch.helper import predefined_split

from sk_mlcpc._engine.net import BoundLoss, MutualInformationLog, PairedTensorDataset
from sk_mlcpc.bounds import bound_validity, cap, resolve_alpha
from sk_mlcpc.critics import make_critic
from sk_mlcpc.datasets import make_correlated_gaussians
from sk_mlcpc.distributed import AcceleratedContrastiveNet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=20_000)
    parser.add_argument("--n-features", type=int, default=5)
    parser.add_argument("--mi", type=float, default=6.0, help="true MI of the data, nats")
    parser.add_argument("--batch-size", type=int, default=256, help="global batch size")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--out", default=None, help="write the result as JSON (main process)")
    args = parser.parse_args()

    # On a machine without GPUs, cpu=True is what makes accelerate set up gloo processes.
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    torch.set_num_threads(1)

    # The same data on every process (same seed); standardised with training statistics.
    X, Y, true_mi = make_correlated_gaussians(
        args.n_samples, args.n_features, mi=args.mi, random_state=0
    )
    n_train = int(0.8 * len(X))
    mean_x, std_x = X[:n_train].mean(0), X[:n_train].std(0)
    mean_y, std_y = Y[:n_train].mean(0), Y[:n_train].std(0)
    x = torch.as_tensor((X - mean_x) / std_x, dtype=torch.float32, device=accelerator.device)
    y = torch.as_tensor((Y - mean_y) / std_y, dtype=torch.float32, device=accelerator.device)
    train_set = PairedTensorDataset(x[:n_train], y[:n_train])
    valid_set = PairedTensorDataset(x[n_train:], y[n_train:])

    alpha = resolve_alpha("auto", "ml_cpc", args.batch_size)  # from the *global* batch
    torch.manual_seed(0)  # the same initial critic everywhere (DDP also syncs it)
    critic = make_critic(
        "separable_additive", args.n_features, args.n_features, hidden_layer_sizes=(128, 128)
    )
    net = AcceleratedContrastiveNet(
        critic,
        criterion=BoundLoss,
        criterion__objective="ml_cpc",
        criterion__alpha=alpha,
        optimizer=torch.optim.Adam,
        lr=5e-4,
        batch_size=args.batch_size,
        max_epochs=args.epochs,
        blockwise=True,  # gather the critic's factors, not the score matrix
        train_split=predefined_split(valid_set),
        callbacks=[("mutual_information", MutualInformationLog())],
        accelerator=accelerator,
        verbose=1,
    )
    net.fit(train_set, None)

    # Collective: every process evaluates its share of each held-out global batch.
    estimates = net.batch_estimates(valid_set, args.batch_size)
    result = {
        "world_size": net.world_size,
        "local_batch_size": net.local_batch_size,
        "global_batch_size": args.batch_size,
        "alpha": alpha,
        "mi": float(estimates.mean()),
        "mi_std": float(estimates.std(ddof=1)) if len(estimates) > 1 else math.nan,
        "cap": cap("ml_cpc", args.batch_size, alpha=alpha),
        "validity": bound_validity("ml_cpc", args.batch_size, alpha=alpha),
        "true_mi": true_mi,
    }
    accelerator.print(
        f"{result['world_size']} process(es) x {result['local_batch_size']} rows: held-out "
        f"ML-CPC {result['mi']:.3f} +- {result['mi_std']:.3f} nats (true {true_mi:.2f}, "
        f"cap {result['cap']:.2f} at the global batch of {args.batch_size}, "
        f"alpha {alpha:.4g}: {result['validity']})"
    )
    if args.out and accelerator.is_main_process:
        with open(args.out, "w") as handle:
            json.dump({k: (None if v != v else v) for k, v in result.items()}, handle)
    np.testing.assert_array_less(estimates, result["cap"] + 1e-6)  # a bound never exceeds it
    accelerator.end_training()  # waits for every process and shuts the process group down


if __name__ == "__main__":
    main()
