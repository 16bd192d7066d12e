"""Sequence CPC benchmark: linear-probe accuracy of a hidden label, and MI per step ahead.

Run (one CPU thread; about 10 minutes on a 2-core machine)::

    OMP_NUM_THREADS=1 python benchmarks/sequence.py
    OMP_NUM_THREADS=1 python benchmarks/sequence.py --seeds 1 --max-epochs 5   # smoke run

On two synthetic generators of :mod:`sk_mlcpc.datasets` (the label is never shown to the
feature learners):

* ``frequency``: :func:`~sk_mlcpc.datasets.make_frequency_sequences`, 4 frequency classes,
  random phase and amplitude, noise 0.5;
* ``switching_ar``: :func:`~sk_mlcpc.datasets.make_switching_ar`, 3 AR(2) regimes with
  equal power and different resonances, hidden Markov switching (label: last regime),

it compares the accuracy of a logistic-regression probe trained on

* ``ml_cpc``: :class:`ContrastivePredictiveCoding` contexts, ML-CPC objective, alpha="auto";
* ``cpc``: the same model trained with plain InfoNCE (``objective="cpc"``);
* ``raw+pca``: the raw samples reduced by PCA to the same width;
* ``spectrum`` (reference, hand-made): the magnitude spectrum of each sequence, the
  feature an expert would pick for these two tasks;

over 5 seeds (each seed draws new data and new initialisations), with fit times, and the
held-out predictive MI bound per step ahead of the two CPC variants on test sequences.
Writes ``benchmarks/results/sequence.txt``, ``benchmarks/results/sequence.json`` and the
figure ``docs/_static/sequence_mi_per_step.png``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sk_mlcpc import ContrastivePredictiveCoding
from sk_mlcpc.datasets import make_frequency_sequences, make_switching_ar

ROOT = Path(__file__).resolve().parents[1]
N_TIMESTEPS = 128
N_COMPONENTS = 32
DATASETS = {
    "frequency": lambda n, seed: make_frequency_sequences(
        n, N_TIMESTEPS, n_classes=4, noise=0.5, random_state=seed
    ),
    "switching_ar": lambda n, seed: make_switching_ar(
        n, N_TIMESTEPS, n_regimes=3, switch_prob=0.01, random_state=seed
    ),
}
CPC_METHODS = ("ml_cpc", "cpc")
METHODS = (*CPC_METHODS, "raw+pca", "spectrum")


def _probe() -> object:
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000))


def _spectrum(X: np.ndarray) -> np.ndarray:
    return np.log1p(np.abs(np.fft.rfft(X, axis=1)))


def run_seed(name: str, seed: int, args) -> dict:
    X_train, y_train = DATASETS[name](args.n_train, 1000 + seed)
    X_test, y_test = DATASETS[name](args.n_test, 2000 + seed)
    results: dict = {}
    for method in CPC_METHODS:
        start = time.perf_counter()
        est = ContrastivePredictiveCoding(
            encoder="mlp",  # the encoder and pooling these results were measured with
            pooling="last",
            window=16,
            stride=8,
            prediction_steps=4,
            n_components=N_COMPONENTS,
            objective=method,
            max_epochs=args.max_epochs,
            random_state=seed,
        ).fit(X_train)
        fit_time = time.perf_counter() - start
        probe = _probe().fit(est.transform(X_train), y_train)
        results[method] = {
            "accuracy": float(probe.score(est.transform(X_test), y_test)),
            "fit_time": fit_time,
            "n_epochs": est.n_epochs_,
            "mi_per_step": est.score_per_step(X_test).tolist(),
            "mi_cap": est.mi_cap_,
            "alpha": est.alpha_,
            "bound_validity": est.bound_validity_,
        }
    start = time.perf_counter()
    pca = PCA(N_COMPONENTS, random_state=seed).fit(X_train)
    fit_time = time.perf_counter() - start
    probe = _probe().fit(pca.transform(X_train), y_train)
    results["raw+pca"] = {
        "accuracy": float(probe.score(pca.transform(X_test), y_test)),
        "fit_time": fit_time,
    }
    probe = _probe().fit(_spectrum(X_train), y_train)
    results["spectrum"] = {
        "accuracy": float(probe.score(_spectrum(X_test), y_test)),
        "fit_time": 0.0,
    }
    return results


def _mean_std(values) -> str:
    values = np.asarray(values, dtype=float)
    std = values.std(ddof=1) if len(values) > 1 else math.nan
    return f"{values.mean():.3f} +- {std:.3f}"


def summarise(all_results: dict, args) -> str:
    lines = [
        "Sequence CPC benchmark (benchmarks/sequence.py)",
        f"command: OMP_NUM_THREADS=1 python benchmarks/sequence.py --seeds {args.seeds} "
        f"--max-epochs {args.max_epochs} --n-train {args.n_train} --n-test {args.n_test}",
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch threads "
        f"{torch.get_num_threads()}, torch {torch.__version__}",
        f"sequences: {N_TIMESTEPS} steps; CPC window=16 stride=8 prediction_steps=4, "
        f"{N_COMPONENTS}-d contexts, batch 64, early stopping on held-out bound",
        "accuracy: logistic-regression probe on held-out sequences, mean +- std over seeds",
        "",
        f"{'dataset':<14}{'method':<10}{'accuracy':>18}{'fit time (s)':>18}{'epochs':>9}",
    ]
    for name, seeds in all_results.items():
        for method in METHODS:
            accuracy = [seed[method]["accuracy"] for seed in seeds]
            fit_time = [seed[method]["fit_time"] for seed in seeds]
            epochs = (
                f"{np.mean([seed[method]['n_epochs'] for seed in seeds]):.1f}"
                if method in CPC_METHODS
                else "-"
            )
            label = method if method != "spectrum" else "spectrum*"
            lines.append(
                f"{name:<14}{label:<10}{_mean_std(accuracy):>18}"
                f"{_mean_std(fit_time):>18}{epochs:>9}"
            )
    lines += ["", "* hand-made reference feature (log magnitude spectrum), not learnt", ""]
    lines.append("Held-out predictive MI bound per step ahead (nats, mean +- std over seeds)")
    lines.append(f"{'dataset':<14}{'method':<10}{'cap':>7}  k=1 .. k=4")
    for name, seeds in all_results.items():
        for method in CPC_METHODS:
            per_step = np.array([seed[method]["mi_per_step"] for seed in seeds])
            std = per_step.std(axis=0, ddof=1) if len(seeds) > 1 else np.full(4, math.nan)
            cells = "  ".join(
                f"{m:.2f}+-{s:.2f}" for m, s in zip(per_step.mean(axis=0), std, strict=True)
            )
            lines.append(f"{name:<14}{method:<10}{seeds[0][method]['mi_cap']:>7.2f}  {cells}")
    return "\n".join(lines)


def plot(all_results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(all_results), figsize=(9, 3.4), sharey=True)
    colours = {"ml_cpc": "tab:red", "cpc": "tab:blue"}
    for ax, (name, seeds) in zip(np.atleast_1d(axes), all_results.items(), strict=True):
        for method in CPC_METHODS:
            per_step = np.array([seed[method]["mi_per_step"] for seed in seeds])
            steps = np.arange(1, per_step.shape[1] + 1)
            std = per_step.std(axis=0, ddof=1) if len(seeds) > 1 else 0.0
            ax.errorbar(
                steps,
                per_step.mean(axis=0),
                yerr=std,
                marker="o",
                capsize=3,
                color=colours[method],
                label=f"{method} (cap {seeds[0][method]['mi_cap']:.2f})",
            )
            ax.axhline(seeds[0][method]["mi_cap"], ls=":", color=colours[method], lw=1)
        ax.set_title(name)
        ax.set_xlabel("steps ahead k (windows)")
        ax.set_xticks(steps)
        ax.grid(alpha=0.3)
    np.atleast_1d(axes)[0].set_ylabel("held-out bound on I(c_t; z_t+k), nats")
    np.atleast_1d(axes)[0].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--max-epochs", type=int, default=60)
    parser.add_argument("--n-train", type=int, default=2000)
    parser.add_argument("--n-test", type=int, default=1000)
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument(
        "--figure", type=Path, default=ROOT / "docs" / "_static" / "sequence_mi_per_step.png"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    # Warm-up fit, so that one-off start-up costs are not counted in the first fit time.
    X_warm, _ = make_frequency_sequences(200, N_TIMESTEPS, random_state=0)
    ContrastivePredictiveCoding(max_epochs=1, random_state=0).fit(X_warm)

    all_results: dict = {}
    for name in DATASETS:
        all_results[name] = []
        for seed in range(args.seeds):
            start = time.perf_counter()
            all_results[name].append(run_seed(name, seed, args))
            print(f"{name} seed {seed}: {time.perf_counter() - start:.1f}s", flush=True)

    report = summarise(all_results, args)
    print(report)
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "sequence.txt").write_text(report + "\n")
    (args.output / "sequence.json").write_text(json.dumps(all_results, indent=1) + "\n")
    plot(all_results, args.figure)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
