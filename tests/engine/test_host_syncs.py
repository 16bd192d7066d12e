"""No host read per training step.

On an accelerator, reading a tensor's value on the host (``.item()``, ``float(t)``,
``if t:``, ``.tolist()``, ``.cpu()``, a copy to or from the host) waits for every queued
kernel. The training loop must do that a fixed number of times per pass, not once per
batch. On the CPU there is no queue to drain, so these tests count the reads made by
code outside torch itself while fitting on a small and on a four times larger data set
(same epochs, four times the steps): every call site must read equally often in both.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from contextlib import contextmanager

import numpy as np
import pytest
import torch

import sk_mlcpc._engine.loop as engine_loop
from sk_mlcpc import (
    ContrastiveDistillationClassifier,
    ContrastiveEncoder,
    ContrastivePredictiveCoding,
    MutualInformationEstimator,
)
from sk_mlcpc.datasets import make_correlated_gaussians, make_frequency_sequences

_TORCH_DIR = os.path.dirname(torch.__file__)
# Inside torch only the gradient scaler is counted: its read of the overflow flag is a
# per-step sync that the package can avoid (a fused optimiser takes the flag).
_COUNTED_IN_TORCH = (os.path.join("amp", "grad_scaler.py"),)
_READS = ("item", "tolist", "numpy", "cpu", "__bool__", "__float__", "__int__", "__format__")


def _moves_device(args, kwargs) -> bool:
    values = [*args, *kwargs.values()]
    return any(isinstance(v, str | torch.device | torch.Tensor) for v in values) or (
        "device" in kwargs
    )


@contextmanager
def counted_host_reads(monkeypatch):
    """Count host reads and device moves of tensors, per calling line outside torch."""
    counts: Counter = Counter()

    def wrap(name, original, only_device_moves=False):
        def counting(self, *args, **kwargs):
            frame = sys._getframe(1)
            caller = frame.f_code.co_filename
            # skorch moves every batch to the net's device; ours are built there, so
            # that call is a no-op and not counted.
            skorch_no_op = frame.f_code.co_name == "to_device" and "skorch" in caller
            # (Its same-device, non-blocking ``.to`` calls are not syncs.)
            counted_in_torch = name != "to" and caller.endswith(_COUNTED_IN_TORCH)
            if (
                (not caller.startswith(_TORCH_DIR) or counted_in_torch)
                and not skorch_no_op
                and (not only_device_moves or _moves_device(args, kwargs))
            ):
                counts[(name, os.path.basename(caller), frame.f_lineno)] += 1
            return original(self, *args, **kwargs)

        return counting

    for name in _READS:
        monkeypatch.setattr(torch.Tensor, name, wrap(name, getattr(torch.Tensor, name)))
    monkeypatch.setattr(torch.Tensor, "to", wrap("to", torch.Tensor.to, only_device_moves=True))
    # Check the guard the way it runs on an accelerator (every 64 steps), not per step.
    monkeypatch.setattr(engine_loop, "_default_check_every", lambda device: 64)
    yield counts


def _reads_during_fit(monkeypatch, make_estimator, make_data, n_small: int):
    per_size = []
    for n in (n_small, 4 * n_small):
        args = make_data(n)
        estimator = make_estimator()
        with counted_host_reads(monkeypatch) as counts:
            estimator.fit(*args)
        monkeypatch.undo()
        per_size.append(counts)
    return per_size


def _assert_reads_do_not_grow_with_steps(small: Counter, large: Counter) -> None:
    grown = {site: (small[site], large[site]) for site in large if large[site] > small[site]}
    assert not grown, f"host reads that grow with the number of steps: {grown}"


def _gaussians(n):
    X, Y, _ = make_correlated_gaussians(n, 2, mi=1.0, random_state=0)
    return X, Y


@pytest.mark.parametrize(
    ("objective", "blockwise", "precision"),
    [
        ("ml_cpc", False, "fp32"),
        ("ml_cpc", True, "fp32"),
        ("mine", False, "fp32"),
        ("mine", True, "fp32"),
        ("ml_cpc", False, "fp16"),
    ],
)
def test_mi_estimator_reads_once_per_pass(monkeypatch, objective, blockwise, precision):
    small, large = _reads_during_fit(
        monkeypatch,
        lambda: MutualInformationEstimator(
            hidden_layer_sizes=(16,),
            max_epochs=2,
            batch_size=32,
            objective=objective,
            blockwise=blockwise,
            precision=precision,
            random_state=0,
        ),
        _gaussians,
        n_small=320,
    )
    _assert_reads_do_not_grow_with_steps(small, large)


@pytest.mark.parametrize("blockwise", [False, True])
def test_encoder_reads_once_per_pass(monkeypatch, blockwise):
    small, large = _reads_during_fit(
        monkeypatch,
        lambda: ContrastiveEncoder(
            n_components=3,
            hidden_layer_sizes=(16,),
            max_epochs=2,
            batch_size=32,
            blockwise=blockwise,
            random_state=0,
        ),
        lambda n: (_gaussians(n)[0],),
        n_small=320,
    )
    _assert_reads_do_not_grow_with_steps(small, large)


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_sequence_cpc_reads_once_per_pass(monkeypatch, precision):
    def data(n):
        X, _ = make_frequency_sequences(n, 64, random_state=0)
        return (X,)

    small, large = _reads_during_fit(
        monkeypatch,
        lambda: ContrastivePredictiveCoding(
            window=8,
            stride=8,
            prediction_steps=2,
            n_components=8,
            latent_dim=8,
            hidden_layer_sizes=(8,),
            max_epochs=2,
            batch_size=16,
            precision=precision,
            random_state=0,
        ),
        data,
        n_small=64,
    )
    _assert_reads_do_not_grow_with_steps(small, large)


@pytest.mark.parametrize("objective", ["ml_cpc", "crd"])
def test_distiller_reads_once_per_pass(monkeypatch, objective):
    from sklearn.linear_model import LogisticRegression

    def data(n):
        rng = np.random.default_rng(0)
        X = rng.normal(size=(n, 4))
        y = (X[:, 0] + X[:, 1] > 0).astype(int)
        return X, y

    X_teacher, y_teacher = data(200)
    teacher = LogisticRegression().fit(X_teacher, y_teacher)
    small, large = _reads_during_fit(
        monkeypatch,
        lambda: ContrastiveDistillationClassifier(
            teacher=teacher,
            hidden_layer_sizes=(8,),
            max_epochs=2,
            batch_size=32,
            n_negatives=16,
            objective=objective,
            random_state=0,
        ),
        data,
        n_small=320,
    )
    _assert_reads_do_not_grow_with_steps(small, large)
