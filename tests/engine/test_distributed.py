"""Multi-process training (sk_mlcpc.distributed): 2 CPU processes (gloo) vs one process.

The 2-process checks run ``tests/engine/_distributed_worker.py`` once under ``torchrun`` (about
15 s on 2 cores) and compare its results with the same computations on one process:

* the loss and the critic gradients (after DDP's all-reduce) of one step on a global
  batch split over the processes equal the dense bound of the concatenated batch and its
  gradients, for every bound and for the factor (separable, blockwise) and row (joint
  critic) paths -- to 1e-6 (float32 rounding: sums run in another order);
* a short training run at the same global batch gives the same per-epoch losses and
  held-out estimates as a single-process run -- to 1e-5 nats (observed: below 1e-6);
* CPC trained on 2 x 16 rows exceeds ``log 16``, the cap of a 16-row batch: the bound
  really uses the 32-row global batch (cap ``log 32``).
"""

from __future__ import annotations

import json
import math
import os
import pickle
import signal
import socket
import subprocess
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from sk_mlcpc._engine.net import BoundLoss, ContrastiveNet, PairedTensorDataset, TensorBatches
from sk_mlcpc.bounds import cap
from sk_mlcpc.critics import make_critic
from tests.engine import _distributed_worker as worker

pytest.importorskip("accelerate", reason="multi-process training needs accelerate")

from accelerate import Accelerator

from sk_mlcpc.distributed import (
    AcceleratedContrastiveNet,
    DistributedTensorBatches,
    gather_with_grad,
    world_info,
)

REPO = Path(__file__).resolve().parents[2]
LAUNCH_TIMEOUT = 240  # seconds; the launch takes about 15 s on 2 busy cores


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_torchrun(script: Path, *args: str, nproc: int = 2) -> subprocess.CompletedProcess:
    """Run ``script`` on ``nproc`` CPU processes; kill the whole process group on timeout."""
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nnodes", "1",
        "--nproc_per_node", str(nproc), "--master_addr", "127.0.0.1",
        "--master_port", str(_free_port()), str(script), *args,
    ]  # fmt: skip
    # The processes import sk_mlcpc from this source tree, as the test process does.
    python_path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": python_path}
    process = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, start_new_session=True,
    )  # fmt: skip
    try:
        output, _ = process.communicate(timeout=LAUNCH_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"torchrun {script.name} timed out after {LAUNCH_TIMEOUT} s:\n{output[-4000:]}")
    if process.returncode != 0:
        pytest.fail(f"torchrun {script.name} failed ({process.returncode}):\n{output[-4000:]}")
    return subprocess.CompletedProcess(command, process.returncode, output, None)


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("distributed") / "results.pt"
    run_torchrun(Path(worker.__file__), str(out))
    return torch.load(out, weights_only=False)


# ---------------------------------------------------------------------- one process


def test_gather_with_grad_is_the_identity_on_one_process():
    assert world_info() == (0, 1)
    x = torch.randn(4, 3, requires_grad=True)
    gathered = gather_with_grad(x)
    assert gathered is x


@pytest.mark.parametrize("world_size", [2, 3, 4])
@pytest.mark.parametrize("shuffle", [True, False])
def test_shares_concatenate_to_the_single_process_batches(world_size, shuffle):
    data = PairedTensorDataset(torch.arange(50.0)[:, None], -torch.arange(50.0)[:, None])
    batch_size = 4 * world_size

    def batches(cls, **kwargs):
        generator_factory = lambda: torch.Generator().manual_seed(9)  # noqa: E731
        return cls(data, batch_size, shuffle=shuffle, seed=5, **kwargs,
                   generator_factory=generator_factory)  # fmt: skip

    expected = list(batches(TensorBatches))
    shares = [
        list(batches(DistributedTensorBatches, rank=rank, world_size=world_size))
        for rank in range(world_size)
    ]
    assert all(len(share) == len(expected) == 50 // batch_size for share in shares)
    for step, (batch, _) in enumerate(expected):
        for key in ("x", "y"):
            parts = [share[step][0][key] for share in shares]
            assert all(len(part) == 4 for part in parts)
            torch.testing.assert_close(torch.cat(parts), batch[key], rtol=0, atol=0)


def test_shares_need_a_batch_size_divisible_by_the_world_size():
    data = PairedTensorDataset(torch.zeros(20, 1), torch.zeros(20, 1))
    with pytest.raises(ValueError, match="multiple of the number of processes"):
        DistributedTensorBatches(data, 10, rank=0, world_size=3, shuffle=False)
    with pytest.raises(ValueError, match="rank"):
        DistributedTensorBatches(data, 10, rank=2, world_size=2, shuffle=False)


@pytest.mark.parametrize("objective", ["ml_cpc", "cpc"])
def test_one_process_run_equals_the_plain_net(objective):
    train_set, valid_set = worker.training_data()
    params = worker.training_net_params(objective, valid_set) | {"max_epochs": 2}
    plain = ContrastiveNet(worker.training_critic(), device="cpu", **params).fit(train_set, None)
    accelerated = AcceleratedContrastiveNet(
        worker.training_critic(), accelerator=Accelerator(cpu=True), **params
    ).fit(train_set, None)
    assert accelerated.world_size == 1 and accelerated.local_batch_size == worker.TRAIN_BATCH
    assert type(accelerated.module_) is type(plain.module_)  # unwrapped after training
    np.testing.assert_allclose(
        accelerated.history[:, "valid_loss"], plain.history[:, "valid_loss"], rtol=0, atol=1e-6
    )
    np.testing.assert_allclose(
        accelerated.batch_estimates(valid_set, worker.TRAIN_BATCH),
        plain.batch_estimates(valid_set, worker.TRAIN_BATCH),
        rtol=0,
        atol=1e-6,
    )


def test_a_fitted_net_pickles_without_its_accelerator():
    train_set, valid_set = worker.training_data()
    params = worker.training_net_params("ml_cpc", valid_set) | {"max_epochs": 1}
    net = AcceleratedContrastiveNet(
        worker.training_critic(), accelerator=Accelerator(cpu=True), **params
    ).fit(train_set, None)
    net.train_split = None
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. skorch's DeviceWarning for device=None
        loaded = pickle.loads(pickle.dumps(net))
    assert loaded.accelerator is None and loaded.world_size == 1 and loaded.device == "cpu"
    np.testing.assert_array_equal(
        loaded.batch_estimates(valid_set, 32), net.batch_estimates(valid_set, 32)
    )


def test_a_world_the_accelerator_does_not_see_is_an_error():
    # What accelerate 1.x gives under torchrun on a CPU-only machine without cpu=True.
    fake = SimpleNamespace(num_processes=2, process_index=0, print=print, device_placement=True)
    net = AcceleratedContrastiveNet(
        make_critic("separable", 2, 2, hidden_layer_sizes=(4,)),
        criterion=BoundLoss, criterion__objective="cpc", batch_size=8, accelerator=fake,
    )  # fmt: skip
    with pytest.raises(RuntimeError, match=r"Accelerator\(cpu=True\)"):
        net.initialize()


# ---------------------------------------------------------------------- two processes


@pytest.mark.parametrize("objective", worker.GRADIENT_OBJECTIVES)
@pytest.mark.parametrize(("critic_name", "blockwise"), worker.GRADIENT_CRITICS)
def test_gathered_bound_and_gradients_equal_the_dense_bound_of_the_concatenated_batch(
    two_processes, critic_name, blockwise, objective
):
    assert two_processes["world_size"] == 2
    result = two_processes["gradients"][critic_name, objective]
    assert result["module_type"] == "DistributedDataParallel"  # gradients all-reduced by DDP
    x, y = worker.gradient_data()
    critic = worker.gradient_critic(critic_name)
    loss = BoundLoss(objective, worker.gradient_alpha(objective))(critic(x, y))
    loss.backward()
    torch.testing.assert_close(result["loss"], loss.detach(), rtol=0, atol=1e-6)
    for name, parameter in critic.named_parameters():
        torch.testing.assert_close(result["grads"][name], parameter.grad, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("objective", ["ml_cpc", "cpc"])
def test_two_process_training_matches_one_process_at_the_same_global_batch(
    two_processes, objective
):
    result = two_processes["training"][objective]
    assert result["local_batch_size"] == worker.TRAIN_BATCH // 2
    train_set, valid_set = worker.training_data()
    params = worker.training_net_params(objective, valid_set)
    net = ContrastiveNet(worker.training_critic(), device="cpu", **params).fit(train_set, None)
    single = worker.summarise_training(net, valid_set)
    for key in ("train_loss", "valid_loss", "estimates"):
        np.testing.assert_allclose(result[key], single[key], rtol=0, atol=1e-5, err_msg=key)


def test_two_process_cpc_exceeds_the_cap_of_the_local_batch(two_processes):
    estimate = two_processes["training"]["cpc"]["estimates"].mean()
    local, global_ = worker.TRAIN_BATCH // 2, worker.TRAIN_BATCH
    assert cap("cpc", local) == pytest.approx(math.log(local))
    # Impossible for a bound of 16-row batches; the gathered bound has 32 rows, cap log 32.
    assert cap("cpc", local) + 0.1 < estimate <= cap("cpc", global_)


@pytest.mark.skipif(
    not worker.estimator_wired(),
    reason="MutualInformationEstimator takes no accelerator yet (docs/distributed_wiring.patch)",
)
def test_two_process_estimator_matches_one_process(two_processes):
    result = two_processes["estimator"]
    single = worker.estimator_fit()
    assert result["alpha"] == single["alpha"] and result["mi_cap"] == single["mi_cap"]
    # The estimate's batch: all 300 test rows (a multiple of the 2 processes).
    assert result["eval_batch_size"] == single["eval_batch_size"] == 300
    assert result["eval_alpha"] == single["eval_alpha"]
    assert result["mi_cap"] == pytest.approx(cap("ml_cpc", 300, alpha=result["eval_alpha"]))
    np.testing.assert_allclose(result["valid_loss"], single["valid_loss"], rtol=0, atol=1e-5)
    assert result["mi"] == pytest.approx(single["mi"], abs=1e-5)
    assert result["score"] == pytest.approx(single["score"], abs=1e-5)


# ---------------------------------------------------------------------- slow


@pytest.mark.slow
def test_example_script_runs_on_two_processes(tmp_path):
    out = tmp_path / "result.json"
    run_torchrun(
        REPO / "examples" / "distributed_mi.py",
        "--n-samples", "3000", "--epochs", "3", "--batch-size", "128", "--out", str(out),
    )  # fmt: skip
    result = json.loads(out.read_text())
    assert result["world_size"] == 2 and result["local_batch_size"] == 64
    assert result["cap"] == pytest.approx(cap("ml_cpc", 128, alpha=result["alpha"]))
    assert 0.5 < result["mi"] < result["true_mi"]


def test_grid_search_on_a_dask_cluster_matches_the_local_search():
    """GridSearchCV through joblib's dask backend on a real two-worker LocalCluster."""
    distributed = pytest.importorskip("dask.distributed", reason="needs dask[distributed]")
    import joblib
    from sklearn.model_selection import GridSearchCV

    from sk_mlcpc import MutualInformationEstimator
    from sk_mlcpc.datasets import make_correlated_gaussians

    X, Y, _ = make_correlated_gaussians(800, 2, mi=1.0, random_state=0)
    search = GridSearchCV(
        MutualInformationEstimator(
            critic="separable", hidden_layer_sizes=(16,), max_epochs=3, batch_size=32,
            early_stopping=False, device="cpu", random_state=0,
        ),
        {"objective": ["ml_cpc", "cpc"]},
        cv=2,
    )  # fmt: skip
    local = search.fit(X, Y)
    local_scores, local_best = local.cv_results_["mean_test_score"], local.best_params_
    search.set_params(n_jobs=2)
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
        joblib.parallel_backend("dask"),
    ):
        on_dask = search.fit(X, Y)
        # The candidates ran on the cluster's two worker processes, not in this one.
        assert len(client.scheduler_info()["workers"]) == 2
        assert sum(client.run(lambda: 1).values()) == 2
    np.testing.assert_allclose(on_dask.cv_results_["mean_test_score"], local_scores, atol=1e-6)
    assert on_dask.best_params_ == local_best


def test_precision_with_an_accelerator_points_to_the_accelerators_own():
    from sk_mlcpc import MutualInformationEstimator
    from sk_mlcpc.datasets import make_correlated_gaussians

    X, Y, _ = make_correlated_gaussians(200, 2, mi=1.0, random_state=0)
    estimator = MutualInformationEstimator(
        accelerator=Accelerator(cpu=True), precision="bf16", max_epochs=1, random_state=0
    )
    with pytest.raises(ValueError, match=r"Accelerator\(mixed_precision='bf16'\)"):
        estimator.fit(X, Y)


def test_an_estimator_fitted_with_an_accelerator_saves_and_loads(tmp_path):
    from sk_mlcpc import MutualInformationEstimator
    from sk_mlcpc.datasets import make_correlated_gaussians

    X, Y, _ = make_correlated_gaussians(400, 2, mi=1.0, random_state=0)
    estimator = MutualInformationEstimator(
        accelerator=Accelerator(cpu=True),
        hidden_layer_sizes=(8,),
        batch_size=32,
        max_epochs=1,
        random_state=0,
    ).fit(X, Y)
    estimator.save(tmp_path / "model.skmlcpc")
    loaded = MutualInformationEstimator.load(tmp_path / "model.skmlcpc")
    assert loaded.accelerator is None
    assert loaded.score(X, Y) == pytest.approx(estimator.score(X, Y), abs=1e-6)
