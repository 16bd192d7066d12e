"""The CUDA path of the estimators (skipped without a GPU; run by benchmarks/gpu_check.sh)."""

import math
import pickle

import numpy as np
import pytest
import torch

from sk_mlcpc import ContrastiveEncoder, MutualInformationEstimator
from sk_mlcpc.datasets import make_correlated_gaussians

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def gaussians():
    X, Y, _ = make_correlated_gaussians(4000, 4, mi=2.0, random_state=0)
    return X, Y


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_mi_estimator_trains_on_cuda(gaussians, precision):
    X, Y = gaussians
    estimator = MutualInformationEstimator(
        hidden_layer_sizes=(64,), max_epochs=10, precision=precision, random_state=0
    ).fit(X, Y)
    assert estimator.device_.type == "cuda"
    assert next(estimator.critic_.parameters()).is_cuda
    assert 1.0 < estimator.mi_ < 2.1
    assert estimator.transform(X).dtype == np.float32


def test_cuda_model_saves_and_loads_on_the_cpu(gaussians, tmp_path):
    X, Y = gaussians
    estimator = MutualInformationEstimator(
        hidden_layer_sizes=(32,), max_epochs=3, random_state=0
    ).fit(X, Y)
    estimator.save(tmp_path / "model.skmlcpc")
    on_cpu = MutualInformationEstimator.load(tmp_path / "model.skmlcpc", device="cpu")
    assert not next(on_cpu.critic_.parameters()).is_cuda
    assert on_cpu.score(X, Y) == pytest.approx(estimator.score(X, Y), abs=1e-3)
    # Pickle keeps the device; scoring still works with data moved to it.
    restored = pickle.loads(pickle.dumps(estimator))
    assert restored.score(X, Y) == pytest.approx(estimator.score(X, Y), abs=1e-5)


def test_blockwise_on_cuda_matches_dense(gaussians):
    X, Y = gaussians
    params = dict(hidden_layer_sizes=(32,), max_epochs=2, early_stopping=False, random_state=0)
    dense = MutualInformationEstimator(blockwise=False, **params).fit(X, Y)
    tiled = MutualInformationEstimator(blockwise=True, **params).fit(X, Y)
    assert tiled.mi_ == pytest.approx(dense.mi_, abs=1e-3)


def test_encoder_on_cuda(gaussians):
    X, _ = gaussians
    encoder = ContrastiveEncoder(n_components=8, max_epochs=3, random_state=0).fit(X)
    assert encoder.device_.type == "cuda" and math.isfinite(encoder.mi_)
    assert encoder.transform(X).shape == (len(X), 8)
    assert torch.cuda.max_memory_allocated() > 0


def _sync_warnings_during(fit) -> int:
    """Synchronising CUDA calls made by ``fit()`` (torch's sync debug mode)."""
    import warnings

    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fit()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    return sum("synchronizing CUDA operation" in str(w.message) for w in caught)


def _estimators():
    from sklearn.linear_model import LogisticRegression

    from sk_mlcpc import ContrastiveDistillationClassifier, ContrastivePredictiveCoding
    from sk_mlcpc.datasets import make_frequency_sequences

    def pairs(n):
        X, Y, _ = make_correlated_gaussians(n, 4, mi=2.0, random_state=0)
        return X, Y

    def labelled(n):
        X, Y = pairs(n)
        return X, (Y[:, 0] > 0).astype(int)

    teacher = LogisticRegression().fit(*labelled(500))
    small = dict(max_epochs=2, early_stopping=False, random_state=0)
    return {
        "mi": (lambda: MutualInformationEstimator(batch_size=64, **small), pairs),
        "mi_blockwise": (
            lambda: MutualInformationEstimator(batch_size=64, blockwise=True, **small),
            pairs,
        ),
        "mi_mine": (
            lambda: MutualInformationEstimator(batch_size=64, objective="mine", **small),
            pairs,
        ),
        "encoder": (lambda: ContrastiveEncoder(batch_size=64, **small), lambda n: pairs(n)[:1]),
        "sequence": (
            lambda: ContrastivePredictiveCoding(window=8, stride=8, batch_size=16, **small),
            lambda n: make_frequency_sequences(n // 8, 64, random_state=0)[:1],
        ),
        "distiller": (
            lambda: ContrastiveDistillationClassifier(teacher=teacher, batch_size=64, **small),
            labelled,
        ),
    }


@pytest.mark.parametrize(
    "name", ["mi", "mi_blockwise", "mi_mine", "encoder", "sequence", "distiller"]
)
def test_no_synchronisation_per_training_step(name):
    make, data = _estimators()[name]
    make().fit(*data(800))  # warm-up: lazy CUDA initialisation syncs once
    # 10 vs 40 training steps per epoch (under the guard's 64-step check interval).
    few = _sync_warnings_during(lambda: make().fit(*data(800)))
    many = _sync_warnings_during(lambda: make().fit(*data(3200)))
    assert many == few, f"{name}: {few} syncs with 4x fewer steps, {many} with 4x more"


def test_a_cuda_pickle_loads_and_trains_in_a_process_without_cuda(gaussians, tmp_path):
    import os
    import subprocess
    import sys

    X, Y = gaussians
    estimator = MutualInformationEstimator(
        hidden_layer_sizes=(32,), max_epochs=2, random_state=0
    ).fit(X, Y)
    (tmp_path / "model.pkl").write_bytes(pickle.dumps(estimator))
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "Y.npy", Y)
    script = (
        "import pickle, sys, numpy as np, torch\n"
        "assert not torch.cuda.is_available()\n"
        "d = sys.argv[1]\n"
        "m = pickle.load(open(d + '/model.pkl', 'rb'))\n"
        "X, Y = np.load(d + '/X.npy'), np.load(d + '/Y.npy')\n"
        "print(repr(m.score(X, Y)))\n"
        "m.set_params(warm_start=True, max_epochs=1).fit(X, Y)\n"
        "assert len(m.history_) == 3 and m.device_.type == 'cpu'\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    score_on_cpu = float(result.stdout.strip().splitlines()[-1])
    assert score_on_cpu == pytest.approx(estimator.score(X, Y), abs=1e-4)
