"""The MI staircase experiment of the ML-CPC paper (Song & Ermon, 2020, Figure 2).

A critic is trained on correlated Gaussians (or their cubic variant) whose true MI steps
through 2, 4, 6, 8, 10 nats, with a fresh batch of 128 pairs at every step. The bound on
each batch is recorded *before* the gradient step that uses it, so with fresh data every
recorded value is a held-out estimate. Training runs through the package's skorch engine
(:class:`sk_mlcpc._engine.net.ContrastiveNet`), one ``partial_fit`` per level.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from sk_mlcpc._engine.net import BoundLoss, ContrastiveNet, PairedTensorDataset
from sk_mlcpc._math.bounds import bound_validity, cap, get_objective, resolve_alpha
from sk_mlcpc._nn.critics import make_critic
from sk_mlcpc._nn.devices import forked_cuda_devices, resolve_device
from sk_mlcpc.datasets import mi_staircase

__all__ = ["StaircaseConfig", "StaircaseResult", "default_configs", "run_staircase"]


@dataclass(frozen=True)
class StaircaseConfig:
    """One line of the staircase: a critic and a bound."""

    critic: str
    objective: str
    alpha: float | str = 1.0

    @property
    def label(self) -> str:
        if get_objective(self.objective).takes_alpha:
            alpha = self.alpha if isinstance(self.alpha, str) else f"{self.alpha:g}"
            return f"{self.critic} {self.objective} a={alpha}"
        return f"{self.critic} {self.objective}"


@dataclass
class StaircaseResult:
    """Per-step held-out estimates of one configuration on one task."""

    config: StaircaseConfig
    transform: str | None
    true_mi: list[float]
    estimates: np.ndarray  # (n_levels, steps_per_level)
    alpha: float
    cap: float
    validity: str
    seconds: float
    steps_per_level: int
    level_means: list[float] = field(default_factory=list)

    @property
    def seconds_per_1000_steps(self) -> float:
        return 1000.0 * self.seconds / self.estimates.size


def default_configs(critics: Sequence[str]) -> list[StaircaseConfig]:
    """CPC and ML-CPC at alpha 1, 0.1 and "auto" for every critic given."""
    configs = []
    for critic in critics:
        configs.append(StaircaseConfig(critic, "cpc"))
        for alpha in (1.0, 0.1, "auto"):
            configs.append(StaircaseConfig(critic, "ml_cpc", alpha))
    return configs


def run_staircase(
    config: StaircaseConfig,
    *,
    transform: str | None = None,
    mi_levels: Sequence[float] = (2.0, 4.0, 6.0, 8.0, 10.0),
    steps_per_level: int = 4000,
    batch_size: int = 128,
    n_features: int = 20,
    hidden_layer_sizes: Sequence[int] = (256, 256),
    embedding_dim: int = 32,
    learning_rate: float = 5e-4,
    device: str = "auto",
    random_state: int = 0,
) -> StaircaseResult:
    """Train one configuration through the staircase and return its per-step estimates.

    The summary ``level_means`` averages the second half of each level's steps (the
    first half is the critic catching up with the step in MI).
    """
    device_ = resolve_device(device)
    alpha = resolve_alpha(config.alpha, config.objective, batch_size)
    with torch.random.fork_rng(devices=forked_cuda_devices(device_)):
        torch.manual_seed(random_state)
        critic = make_critic(
            config.critic,
            n_features,
            n_features,
            embedding_dim=embedding_dim,
            hidden_layer_sizes=tuple(hidden_layer_sizes),
        )
        net = ContrastiveNet(
            critic,
            criterion=BoundLoss,
            criterion__objective=config.objective,
            criterion__alpha=alpha,
            optimizer=torch.optim.Adam,
            lr=learning_rate,
            max_epochs=1,
            batch_size=batch_size,
            train_split=None,
            device=device_,
            shuffle_seed=random_state,
            verbose=0,
        )
        estimates, true_mi = [], []
        start = time.perf_counter()
        for _, level_mi, X, Y in mi_staircase(
            mi_levels,
            steps_per_level=steps_per_level,
            batch_size=batch_size,
            n_features=n_features,
            transform=transform,
            random_state=random_state,
        ):
            data = PairedTensorDataset(
                torch.as_tensor(X, device=device_), torch.as_tensor(Y, device=device_)
            )
            net.partial_fit(data, None)
            losses = net.history[-1, "batches", :, "train_loss"]
            estimates.append(-np.asarray(losses, dtype=np.float64))
            true_mi.append(level_mi)
        seconds = time.perf_counter() - start
    estimates_array = np.stack(estimates)
    half = steps_per_level // 2
    return StaircaseResult(
        config=config,
        transform=transform,
        true_mi=true_mi,
        estimates=estimates_array,
        alpha=alpha,
        cap=cap(config.objective, batch_size, alpha=alpha),
        validity=bound_validity(config.objective, batch_size, alpha=alpha),
        seconds=seconds,
        steps_per_level=steps_per_level,
        level_means=[float(row[half:].mean()) for row in estimates_array],
    )


def format_table(results: Sequence[StaircaseResult]) -> str:
    """A plain-text table: mean estimate per level against the truth, cap and timing."""
    if not results:
        return "(no results)"
    levels = results[0].true_mi
    head = f"{'task':<8} {'configuration':<34}" + "".join(f"{mi:>7g}" for mi in levels)
    head += f"{'cap':>8} {'validity':>9} {'steps/lvl':>9} {'s/1k':>7}"
    lines = [head, "-" * len(head)]
    for result in results:
        task = result.transform or "gauss"
        row = f"{task:<8} {result.config.label:<34}"
        row += "".join(f"{value:>7.2f}" for value in result.level_means)
        row += f"{result.cap:>8.2f} {result.validity:>9} {result.steps_per_level:>9d}"
        row += f"{result.seconds_per_1000_steps:>7.1f}"
        lines.append(row)
    return "\n".join(lines)


#: Training steps per MI level in the paper's experiment: fewer is a quick run.
PAPER_STEPS_PER_LEVEL = 4000


def plot_staircase(results: Sequence[StaircaseResult], path: str) -> None:
    """Save the staircase figure: one panel per (task, critic), smoothed estimates vs step.

    Each curve's cap (``log 128`` for CPC, ``log(m / alpha)`` for ML-CPC) is drawn as a
    dotted line of its colour; a run with fewer steps per level than the paper's 4,000
    says so in its title.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    panels: dict[tuple[str, str], list[StaircaseResult]] = {}
    for result in results:
        panels.setdefault((result.transform or "gaussian", result.config.critic), []).append(result)
    n_cols = min(3, len(panels))
    n_rows = math.ceil(len(panels) / n_cols)
    fig, axes = plt.subplots(
        n_rows, n_cols, figsize=(4.5 * n_cols, 3.4 * n_rows), squeeze=False, sharey=True
    )
    # One colour per objective (and alpha) across all panels, so a curve is recognisable.
    objectives = list(dict.fromkeys(r.config.label.split(" ", 1)[1] for r in results))
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    colours = {name: palette[i % len(palette)] for i, name in enumerate(objectives)}
    for axis, ((task, critic), members) in zip(axes.flat, sorted(panels.items())):
        for result in members:
            series = result.estimates.reshape(-1)
            smoothed = _ema(series, span=max(10, result.steps_per_level // 20))
            steps = np.arange(len(series))
            objective = result.config.label.split(" ", 1)[1]
            axis.plot(steps, series, alpha=0.15, linewidth=0.5, color=colours[objective])
            axis.plot(steps, smoothed, label=objective, color=colours[objective])
        truth = np.repeat(members[0].true_mi, members[0].steps_per_level)
        axis.plot(np.arange(len(truth)), truth, "k--", linewidth=1, label="true MI")
        caps: dict[float, str] = {}
        for result in members:  # one dotted line per distinct cap, in its curve's colour
            objective = result.config.label.split(" ", 1)[1]
            caps.setdefault(round(result.cap, 2), colours[objective])
        for value, colour in caps.items():
            axis.axhline(value, color=colour, linestyle=":", linewidth=1, label=f"cap {value:.2f}")
        steps = members[0].steps_per_level
        quick = (
            f" (quick run: {steps:,} steps a level; the paper: {PAPER_STEPS_PER_LEVEL:,})"
            if steps < PAPER_STEPS_PER_LEVEL
            else ""
        )
        axis.set_title(f"{task}, {critic} critic{quick}", fontsize=9 if quick else None)
        axis.set_xlabel("training step")
        axis.xaxis.set_major_locator(MaxNLocator(5))
        axis.set_ylim(-1, 12)
        axis.legend(fontsize=7, loc="upper left")
    for axis in axes.flat[len(panels) :]:
        axis.set_visible(False)
    axes[0, 0].set_ylabel("held-out estimate (nats)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _ema(values: np.ndarray, span: int) -> np.ndarray:
    weight = 2.0 / (span + 1.0)
    out = np.empty_like(values)
    running = values[0]
    for index, value in enumerate(values):
        running = weight * value + (1 - weight) * running
        out[index] = running
    return out
