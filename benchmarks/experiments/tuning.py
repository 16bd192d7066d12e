"""Issue 14 experiments: training changes for ``MutualInformationEstimator``, run on the suite.

Each idea is a subclass of the estimator built by :func:`make_estimator` from a JSON
object of idea settings (``--idea``); the plain estimator parameters still go through
suite.py's ``--params``. The subclass only adds skorch callbacks or edits the critic
module / net before training, so the estimator's code is untouched. Examples::

    nice -n 15 python benchmarks/experiments/tuning.py --idea '{"noise": 0.1}' \\
        --tasks gauss-20d-mi2 gauss-20d-mi10 --out benchmarks/results/suite_tuning/x.txt

Ideas (keys of ``--idea``):

* ``noise``: std of Gaussian noise added to the preprocessed training inputs (x and y),
  training batches only (validation, test and ``mi_`` see clean rows).
* ``dropout``: dropout probability after every hidden activation of the critic MLPs.
* ``ema``: decay of an exponential moving average of the critic's weights, updated
  after every optimiser step, with the usual warm-up ``min(ema, (1 + t) / (10 + t))`` at
  step ``t`` (so for the first ~900 steps, about 16 epochs of 7,000 rows, any ``ema`` >=
  0.99 acts the same: an average over the last ~t/9 steps); the averaged weights are
  evaluated on the validation rows (early stopping, best epoch kept) and give ``mi_``.
* ``plateau``: ``[patience, factor]`` of ReduceLROnPlateau on the validation loss.
* ``grow_batch``: margin in nats: when the training bound of an epoch comes within this
  margin of the training batch's cap ``log(n (n - 1) + 1)``, the training batch doubles
  (alpha re-resolved for the new size), up to ``grow_max`` rows (default 1024).
* ``train_alpha``: alpha of the training objective only (validation and ``mi_`` keep
  the estimator's ``alpha``, "auto" by default, so the reported bound is unchanged).
* ``skip``: add a linear map of the input to each encoder's output (``g(x) = MLP(x) + Wx``).

Run from the repository root; set ``MLCPC_SNAPSHOT`` to a directory holding an exported
copy of ``sk_mlcpc`` to run against it (the working tree may change during a run).
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

SNAPSHOT = os.environ.get("MLCPC_SNAPSHOT")
if SNAPSHOT:
    sys.path.insert(0, SNAPSHOT)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import suite  # noqa: E402  (benchmarks/suite.py)
import torch  # noqa: E402
from skorch.callbacks import Callback, LRScheduler  # noqa: E402
from torch import nn  # noqa: E402

from sk_mlcpc import MutualInformationEstimator  # noqa: E402
from sk_mlcpc._math.bounds import resolve_alpha  # noqa: E402

# ------------------------------------------------------------------------------ callbacks


class InputNoise(Callback):
    """Gaussian noise on the training batches' x and y (in preprocessed units)."""

    def __init__(self, sigma: float, seed: int = 0) -> None:
        self.sigma = sigma
        self.seed = seed

    def initialize(self):
        self.generator_ = torch.Generator().manual_seed(self.seed)
        return self

    def on_batch_begin(self, net, batch=None, training=False, **kwargs):
        if not training:
            return
        inputs = batch[0]
        for key in ("x", "y"):
            value = inputs[key]
            noise = torch.randn(value.shape, generator=self.generator_, dtype=value.dtype)
            inputs[key] = value + self.sigma * noise.to(value.device)


class WeightAverage(Callback):
    """EMA of the critic's parameters; the average is what validation and mi_ see.

    After each training pass the averaged weights are copied into the module (so the
    validation pass, early stopping's saved best weights and, at the end, the restored
    module are the average); the raw weights go back in at the next epoch's start.
    """

    def __init__(self, decay: float) -> None:
        self.decay = decay

    def initialize(self):
        self.shadow_ = None
        self.raw_ = None
        self.steps_ = 0
        return self

    def _params(self, net):
        return [p for p in net.module_.parameters()]

    def on_train_begin(self, net, **kwargs):
        self.shadow_ = [p.detach().clone() for p in self._params(net)]
        self.steps_ = 0

    def on_batch_end(self, net, training=False, **kwargs):
        if not training:
            return
        self.steps_ += 1
        decay = min(self.decay, (1 + self.steps_) / (10 + self.steps_))
        with torch.no_grad():
            for avg, p in zip(self.shadow_, self._params(net), strict=True):
                avg.lerp_(p.detach(), 1 - decay)

    def on_pass_end(self, net, training=False, **kwargs):
        if not training:
            return
        with torch.no_grad():
            params = self._params(net)
            self.raw_ = [p.detach().clone() for p in params]
            for p, avg in zip(params, self.shadow_, strict=True):
                p.copy_(avg)

    def on_epoch_begin(self, net, **kwargs):
        if self.raw_ is None:
            return
        with torch.no_grad():
            for p, raw in zip(self._params(net), self.raw_, strict=True):
                p.copy_(raw)
        self.raw_ = None


class GrowBatch(Callback):
    """Double the training batch when the training bound nears its cap."""

    def __init__(self, margin: float, max_rows: int, objective: str, alpha) -> None:
        self.margin = margin
        self.max_rows = max_rows
        self.objective = objective
        self.alpha = alpha

    def on_epoch_end(self, net, **kwargs):
        iterator = getattr(net, "train_iterator_", None)
        if iterator is None:
            return
        n = iterator.batch_size
        train_mi = -net.history[-1, "train_loss"]
        limit = math.log(n * (n - 1) + 1)
        new = 2 * n
        if train_mi > limit - self.margin and new <= min(self.max_rows, len(iterator.dataset)):
            iterator.batch_size = new
            net.batch_size = new
            net.criterion_.alpha = resolve_alpha(self.alpha, self.objective, new)
            net.history.record("grown_to", new)


class _GrowingNet:
    """Mixin: remember the training iterator so that a callback can resize its batches."""

    def get_iterator(self, dataset, training=False):
        iterator = super().get_iterator(dataset, training=training)
        if training:
            self.train_iterator_ = iterator
        return iterator


class SkipEncoder(nn.Module):
    def __init__(self, mlp: nn.Sequential) -> None:
        super().__init__()
        self.mlp = mlp
        first, last = mlp[0], mlp[-1]
        self.linear = nn.Linear(first.in_features, last.out_features, bias=False)
        nn.init.zeros_(self.linear.weight)

    def forward(self, x):
        return self.mlp(x) + self.linear(x)


def _with_dropout(mlp: nn.Sequential, p: float) -> nn.Sequential:
    layers = []
    for layer in mlp:
        layers.append(layer)
        if not isinstance(layer, nn.Linear):
            layers.append(nn.Dropout(p))
    return nn.Sequential(*layers)


# ------------------------------------------------------------------------------ estimator


def make_estimator(idea: dict) -> type:
    """A subclass of MutualInformationEstimator applying ``idea`` (see the module doc)."""
    idea = dict(idea)
    known = {"noise", "dropout", "ema", "plateau", "grow_batch", "grow_max", "skip", "train_alpha"}
    unknown = set(idea) - known
    if unknown:
        raise SystemExit(f"unknown idea keys: {sorted(unknown)}")

    class Tuned(MutualInformationEstimator):
        def fit(self, X, y, **fit_params):
            # The hooks below are private methods of the estimator: fail loudly if a
            # version of the estimator no longer calls them (the idea would be ignored).
            self._hooks_called = set()
            super().fit(X, y, **fit_params)
            if idea and self._hooks_called != {"callbacks", "net"}:
                raise RuntimeError(f"hooks not called: {self._hooks_called}")
            return self

        def _callbacks(self):
            getattr(self, "_hooks_called", set()).add("callbacks")
            callbacks = super()._callbacks()
            extra = []
            seed = 0 if not isinstance(self.random_state, int) else self.random_state
            if idea.get("noise"):
                extra.append(("input_noise", InputNoise(idea["noise"], seed=seed + 12345)))
            if idea.get("ema"):
                extra.append(("weight_average", WeightAverage(idea["ema"])))
            if idea.get("plateau"):
                patience, factor = idea["plateau"]
                extra.append(
                    (
                        "lr_plateau",
                        LRScheduler(
                            policy="ReduceLROnPlateau",
                            monitor="valid_loss",
                            patience=patience,
                            factor=factor,
                        ),
                    )
                )
            if idea.get("grow_batch"):
                extra.append(
                    (
                        "grow_batch",
                        GrowBatch(
                            idea["grow_batch"],
                            idea.get("grow_max", 1024),
                            self.objective,
                            self.alpha if self.objective in ("ml_cpc", "alpha_cpc") else "auto",
                        ),
                    )
                )
            # Before early stopping, so that its on_epoch_end sees what they did; the
            # weight average swaps weights in on_pass_end, which precedes on_epoch_end.
            names = [name for name, _ in callbacks]
            at = names.index("early_stopping") if "early_stopping" in names else len(callbacks)
            return callbacks[:at] + extra + callbacks[at:]

        def _make_net(self, **kwargs):
            getattr(self, "_hooks_called", set()).add("net")
            net = super()._make_net(**kwargs)
            critic = net.module
            if idea.get("skip"):
                critic.x_encoder = SkipEncoder(critic.x_encoder)
                critic.y_encoder = SkipEncoder(critic.y_encoder)
            if idea.get("dropout"):
                for name in ("x_encoder", "y_encoder"):
                    encoder = getattr(critic, name)
                    if isinstance(encoder, SkipEncoder):
                        encoder.mlp = _with_dropout(encoder.mlp, idea["dropout"])
                    else:
                        setattr(critic, name, _with_dropout(encoder, idea["dropout"]))
            if idea.get("train_alpha"):
                # Training objective only: validation and mi_ keep the estimator's alpha.
                net.set_params(criterion__alpha=float(idea["train_alpha"]))
            if idea.get("grow_batch"):
                net.__class__ = type("GrowingNet", (_GrowingNet, type(net)), {})
            return net

    Tuned.__name__ = Tuned.__qualname__ = "TunedMutualInformationEstimator"
    return Tuned


def main() -> None:
    argv = sys.argv[1:]
    idea = {}
    if "--idea" in argv:
        at = argv.index("--idea")
        idea = json.loads(argv[at + 1])
        del argv[at : at + 2]
    suite.MutualInformationEstimator = make_estimator(idea)
    revision = suite._revision()
    snapshot = f", sk_mlcpc from snapshot {SNAPSHOT}" if SNAPSHOT else ""
    suite._revision = lambda: revision + snapshot
    write = suite._write

    def _write(path, rows, table_lines, summary, meta):
        write(path, rows, table_lines, summary, {"idea": json.dumps(idea), **meta})

    suite._write = _write
    print(f"idea={json.dumps(idea)}", flush=True)
    sys.argv = [sys.argv[0], *argv]
    suite.main()


if __name__ == "__main__":
    main()
