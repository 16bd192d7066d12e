"""Worker of ``tests/engine/test_distributed.py``: run on every process by ``torchrun``.

``python -m torch.distributed.run --nproc_per_node 2 tests/engine/_distributed_worker.py OUT``
computes, on a 2-process CPU (gloo) world, the one-step losses and critic gradients of
:class:`~sk_mlcpc.distributed.AcceleratedContrastiveNet` for every bound and critic kind,
and a short training run; process 0 saves them to ``OUT`` (``torch.save``). The test
computes the same quantities on one process (with the helpers below) and compares.
"""

from __future__ import annotations

import sys

import numpy as np
import torch
from skorch.helper import predefined_split

from sk_mlcpc._engine.net import BoundLoss, MutualInformationLog, PairedTensorDataset
from sk_mlcpc.bounds import BOUNDS, resolve_alpha
from sk_mlcpc.critics import make_critic
from sk_mlcpc.datasets import make_correlated_gaussians

#: Rows of the global batch in the gradient check (split over the processes).
GRADIENT_BATCH = 12
#: (critic, blockwise) pairs of the gradient check: the factor path and the row path.
GRADIENT_CRITICS = (("separable_additive", True), ("bilinear", True), ("concat", False))
GRADIENT_OBJECTIVES = tuple(BOUNDS)
#: Global batch of the training runs, and their data.
TRAIN_BATCH = 32
TRAIN_ROWS, VALID_ROWS = 1024, 256
TRAIN_EPOCHS = 6


def gradient_data() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(7)
    x = torch.randn(GRADIENT_BATCH, 3, generator=generator)
    y = x[:, :2] + 0.5 * torch.randn(GRADIENT_BATCH, 2, generator=generator)
    return x, y


def gradient_critic(name: str) -> torch.nn.Module:
    torch.manual_seed(11)
    return make_critic(name, 3, 2, embedding_dim=4, hidden_layer_sizes=(8,))


def gradient_alpha(objective: str) -> float:
    return 0.2 if objective in ("ml_cpc", "alpha_cpc") else 1.0


def training_data() -> tuple[PairedTensorDataset, PairedTensorDataset]:
    X, Y, _ = make_correlated_gaussians(TRAIN_ROWS + VALID_ROWS, 2, mi=8.0, random_state=0)
    x, y = torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(Y, dtype=torch.float32)
    return (
        PairedTensorDataset(x[:TRAIN_ROWS], y[:TRAIN_ROWS]),
        PairedTensorDataset(x[TRAIN_ROWS:], y[TRAIN_ROWS:]),
    )


def training_net_params(objective: str, valid_set: PairedTensorDataset) -> dict:
    """Everything but the critic, the accelerator and the device."""
    return {
        "criterion": BoundLoss,
        "criterion__objective": objective,
        "criterion__alpha": resolve_alpha("auto", objective, TRAIN_BATCH),
        "optimizer": torch.optim.Adam,
        "lr": 1e-2,
        "batch_size": TRAIN_BATCH,
        "eval_batch_size": TRAIN_BATCH,
        "max_epochs": TRAIN_EPOCHS,
        "shuffle_seed": 3,
        "eval_seed": 4,
        "blockwise": True,
        "train_split": predefined_split(valid_set),
        "callbacks": [("mutual_information", MutualInformationLog())],
        "verbose": 0,
    }


def training_critic() -> torch.nn.Module:
    torch.manual_seed(5)
    return make_critic("separable_additive", 2, 2, embedding_dim=8, hidden_layer_sizes=(32,))


def summarise_training(net, valid_set: PairedTensorDataset) -> dict:
    return {
        "train_loss": np.asarray(net.history[:, "train_loss"]),
        "valid_loss": np.asarray(net.history[:, "valid_loss"]),
        "estimates": net.batch_estimates(valid_set, TRAIN_BATCH),
        "params": {k: v.detach().clone() for k, v in net.module_.state_dict().items()},
    }


def estimator_wired() -> bool:
    """Whether MutualInformationEstimator takes ``accelerator=`` (docs/distributed_wiring.patch)."""
    from sk_mlcpc import MutualInformationEstimator

    return "accelerator" in MutualInformationEstimator().get_params()


def estimator_fit(accelerator=None) -> dict:
    """A small estimator fit (global batch 64, early stopping on) and what it reports."""
    from sk_mlcpc import MutualInformationEstimator

    X, Y, _ = make_correlated_gaussians(1500, 2, mi=2.0, random_state=1)
    params = {"accelerator": accelerator} if accelerator is not None else {}
    est = MutualInformationEstimator(
        critic="separable_additive", hidden_layer_sizes=(16,), batch_size=64, max_epochs=4,
        device="cpu", random_state=0, **params,
    ).fit(X, Y)  # fmt: skip
    return {
        "mi": est.mi_,
        "mi_cap": est.mi_cap_,
        "alpha": est.alpha_,
        "eval_alpha": est.eval_alpha_,
        "eval_batch_size": est.eval_batch_size_,
        "valid_loss": np.asarray(est.history_[:, "valid_loss"]),
        "score": est.score(X, Y),
    }


def main(out: str) -> None:
    from accelerate import Accelerator

    from sk_mlcpc.distributed import AcceleratedContrastiveNet

    torch.set_num_threads(1)
    accelerator = Accelerator(cpu=True)
    rank, world_size = accelerator.process_index, accelerator.num_processes
    share = slice(rank * GRADIENT_BATCH // world_size, (rank + 1) * GRADIENT_BATCH // world_size)
    x, y = gradient_data()
    results: dict = {"world_size": world_size, "gradients": {}, "training": {}}
    for critic_name, blockwise in GRADIENT_CRITICS:
        for objective in GRADIENT_OBJECTIVES:
            net = AcceleratedContrastiveNet(
                gradient_critic(critic_name),
                criterion=BoundLoss,
                criterion__objective=objective,
                criterion__alpha=gradient_alpha(objective),
                batch_size=GRADIENT_BATCH,
                blockwise=blockwise,
                train_split=None,
                accelerator=accelerator,
                verbose=0,
            ).initialize()
            net._set_training(True)
            net.optimizer_.zero_grad()
            step = net.train_step_single(({"x": x[share], "y": y[share]}, None))
            critic = accelerator.unwrap_model(net.module_).critic
            results["gradients"][critic_name, objective] = {
                "loss": step["loss"].detach().clone(),
                "grads": {name: p.grad.clone() for name, p in critic.named_parameters()},
                "module_type": type(net.module_).__name__,
            }
    train_set, valid_set = training_data()
    for objective in ("ml_cpc", "cpc"):
        net = AcceleratedContrastiveNet(
            training_critic(),
            accelerator=accelerator,
            **training_net_params(objective, valid_set),
        ).fit(train_set, None)
        results["training"][objective] = summarise_training(net, valid_set)
        results["training"][objective]["local_batch_size"] = net.local_batch_size
    if estimator_wired():
        results["estimator"] = estimator_fit(accelerator)
    if rank == 0:
        torch.save(results, out)
    accelerator.end_training()


if __name__ == "__main__":
    main(sys.argv[1])
