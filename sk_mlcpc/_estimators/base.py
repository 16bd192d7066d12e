"""The fit skeleton every estimator shares, written once.

:class:`ContrastiveEstimator` is a template in the spirit of skorch's ``NeuralNet`` and
scikit-learn's ``BaseSearchCV``: :meth:`~ContrastiveEstimator._fit` runs the steps every
estimator takes (parameter and ``fit_params`` checks, the thread count ``n_threads``
(:mod:`sk_mlcpc._engine.threads`; the public methods that compute on a fitted model are
wrapped in it when a subclass is created), warm-start detection, the
training / validation / test split and the fit's seeds, the device, training fresh,
warm-started or resumed through :func:`~sk_mlcpc._engine.fitting.run_training`, and the
fitted net, history and epoch count), and calls small named hooks for what each estimator
owns:

``_validate_fit_data(X, y, warm, **extra)``
    The checked arrays of the fit and the row count.
``_prepare_data(data, split, warm)``
    Preprocessing (fitted on the training rows of a new fit), the fitted sizes, and the
    training and held-out datasets.
``_make_net(shuffle_seed=..., eval_seed=..., valid_set=...)``
    The untrained skorch net.
``_finish_fit(data, split)``
    What follows training: the held-out estimate and its diagnostics.

The held-out evaluation (:meth:`~ContrastiveEstimator._record_held_out`,
:meth:`~ContrastiveEstimator._evaluate_rows`) is shared too, so that every estimator that
reports a bound reports it the same way: batches as large as the held-out rows allow,
alpha resolved for that size, a jackknife interval, ``mi_cap_``, ``bound_validity_`` and
the saturation warning.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any, ClassVar, NamedTuple

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions

from sk_mlcpc._engine.evaluation import (
    HeldOutEstimate,
    SaturationWarning,
    auto_eval_batch_size,
    evaluate_held_out,
    warn_if_alpha_is_invalid,
)
from sk_mlcpc._engine.fitting import (
    check_hidden_layer_sizes,
    data_fingerprint,
    make_preprocessor,
    net_parameters,
    run_training,
    standard_callbacks,
)
from sk_mlcpc._engine.net import DivergenceError, DivergenceGuard, MutualInformationLog
from sk_mlcpc._engine.persistence import PersistenceMixin
from sk_mlcpc._engine.threads import limits_threads, resolve_n_threads, thread_limit
from sk_mlcpc._math.bounds import BOUNDS, bound_validity, cap, get_objective, resolve_alpha
from sk_mlcpc._nn.devices import resolve_device
from sk_mlcpc._nn.encoders import ACTIVATIONS

__all__ = [
    "SHARED_CONSTRAINTS",
    "ContrastiveEstimator",
    "FitSplit",
    "MIEstimate",
    "ReportsHeldOutBound",
]

_POSITIVE = Interval(Real, 0, None, closed="neither")
_NON_NEGATIVE = Interval(Real, 0, None, closed="left")
#: The constraints of the parameters several estimators share, spelled once. A subclass
#: lists only its own parameters and the shared ones it constrains differently, in
#: ``_own_parameter_constraints``; ``_parameter_constraints`` is assembled from both.
SHARED_CONSTRAINTS: dict[str, list] = {
    # The registry's live key view: a bound registered later is accepted too.
    "objective": [StrOptions(BOUNDS.keys())],
    "alpha": [_POSITIVE, StrOptions({"auto"})],
    "hidden_layer_sizes": ["array-like"],
    "n_components": [Interval(Integral, 1, None, closed="left")],
    "activation": [StrOptions(set(ACTIVATIONS))],
    "batch_size": [Interval(Integral, 2, None, closed="left")],
    "eval_batch_size": [Interval(Integral, 2, None, closed="left"), StrOptions({"auto"}), None],
    "max_epochs": [Interval(Integral, 1, None, closed="left")],
    "learning_rate": [_POSITIVE],
    "weight_decay": [_NON_NEGATIVE],
    "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
    "early_stopping": ["boolean"],
    "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
    "tol": [_NON_NEGATIVE],
    "preprocessing": [StrOptions({"quantile", "standard"}), None],
    "device": [str, torch.device],
    "n_threads": [
        Interval(Integral, None, -1, closed="right"),
        Interval(Integral, 1, None, closed="left"),
        None,
    ],
    "random_state": ["random_state"],
    "verbose": ["verbose"],
    "blockwise": ["boolean", StrOptions({"auto"})],
    "precision": [StrOptions({"fp32", "bf16", "fp16"})],
    "compile": ["boolean"],
    "warm_start": ["boolean"],
    "checkpoint_dir": [str, os.PathLike, None],
    "on_divergence": [StrOptions({"raise", "restore"})],
    "callbacks": [list, None],
}

#: The public methods that compute on a fitted model, each run under the estimator's
#: ``n_threads`` (``fit`` applies it in ``_fit``).
_THREAD_LIMITED_METHODS = (
    "transform",
    "inverse_transform",
    "score",
    "score_samples",
    "score_per_step",
    "evaluate",
    "predict",
    "predict_proba",
    "predict_log_proba",
    "decision_function",
)


class MIEstimate(NamedTuple):
    """A bound evaluated on held-out rows, from an estimator's ``evaluate``.

    Fields: ``mi`` (nats), ``std_error`` (grouped jackknife over the rows), ``ci`` (95%
    interval for the bound's expectation at this batch size, not for the MI), ``cap`` and
    ``validity`` at ``batch_size`` and ``alpha``, and ``saturated`` (the batch limits the
    estimate).

    Examples
    --------
    >>> from sk_mlcpc import MIEstimate
    >>> result = MIEstimate(1.2, 0.05, (1.1, 1.3), 15.2, "claimed", 2000, 5e-4, False)
    >>> result.mi, result.ci
    (1.2, (1.1, 1.3))
    """

    mi: float
    std_error: float
    ci: tuple[float, float]
    cap: float
    validity: str
    batch_size: int
    alpha: float
    saturated: bool


@dataclass(frozen=True)
class FitSplit:
    """The rows of one fit and its seeds.

    ``train``, ``valid`` and ``test`` are disjoint row indices (``valid`` and ``test``
    may be empty); ``seeds`` maps each name of the estimator's ``_seed_names`` to an int.
    """

    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray
    seeds: dict[str, int]
    n_samples: int


class ReportsHeldOutBound:
    """The fitted attributes of an estimator that reports a held-out bound
    (:meth:`ContrastiveEstimator._record_held_out` sets them; ``save`` writes them)."""

    mi_: float
    mi_std_: float
    mi_ci_: tuple[float, float]
    mi_cap_: float
    bound_validity_: str
    alpha_: float
    eval_alpha_: float
    eval_batch_size_: int
    saturated_: bool
    saturation_gain_: float


class ContrastiveEstimator(PersistenceMixin, BaseEstimator):
    """Private base of the estimators: the fit skeleton and the held-out evaluation.

    Not public API; subclasses are :class:`~sk_mlcpc.MutualInformationEstimator`,
    :class:`~sk_mlcpc.ContrastiveEncoder`, :class:`~sk_mlcpc.ContrastivePredictiveCoding`
    and :class:`~sk_mlcpc.ContrastiveDistillationClassifier`.
    """

    # Fitted attributes every estimator saves: save() writes each annotated name and
    # load() accepts only these, each of its kind (persistence.FITTED_ATTRIBUTE_TYPES).
    batch_size_: int
    n_epochs_: int
    n_restores_: int
    n_features_in_: int
    feature_names_in_: np.ndarray

    _own_parameter_constraints: ClassVar[dict[str, list]] = {}

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        own = cls._own_parameter_constraints
        cls._parameter_constraints = {
            name: own[name] if name in own else SHARED_CONSTRAINTS[name]
            for name in cls._get_param_names()
        }
        # Wrapped here, once, so that no entry point of a subclass can forget the limit;
        # scikit-learn's set_output wraps transform after this, outside the limit.
        for name in _THREAD_LIMITED_METHODS:
            if name in cls.__dict__:
                setattr(cls, name, limits_threads(cls.__dict__[name]))

    def _store_init_arguments(self, arguments: dict[str, Any]) -> None:
        """Keep the constructor's arguments unchanged, as scikit-learn requires."""
        for name in self._get_param_names():
            setattr(self, name, arguments[name])

    #: Names of the seeds drawn from ``random_state`` at each fit, in drawing order
    #: (the order is part of the reproducibility contract: changing it changes fits).
    _seed_names: ClassVar[tuple[str, ...]] = ("split", "init", "shuffle", "eval", "prep")
    #: What the rows are called in error messages ("Too few samples: 5 rows leave ...").
    _sample_noun: ClassVar[str] = "samples"
    _row_noun: ClassVar[str] = "rows"
    _too_few_advice: ClassVar[str] = ""
    #: Whether ``evaluate`` scores a separable critic (large batches then go blockwise).
    _separable_scores: ClassVar[bool] = True

    @property
    def _factored_scores(self) -> bool:
        """Whether the scores can be computed blockwise from separable factors."""
        return self._separable_scores

    # ------------------------------------------------------------------ the template

    def _fit(self, X, y, fit_params: dict, **extra) -> ContrastiveEstimator:
        """Validate, split, prepare, train and evaluate: the steps of every ``fit``."""
        self._validate_params()
        if fit_params:
            raise TypeError(
                f"{type(self).__name__}.fit() got the unsupported fit parameters "
                f"{sorted(fit_params)}; they are refused rather than silently ignored."
            )
        # Inside the block, not around fit: a wrapper would add a frame between the
        # user's call and the warnings below, whose stacklevel counts frames.
        with thread_limit(resolve_n_threads(self.n_threads)):
            warm = bool(self.warm_start) and hasattr(self, "net_")
            # A warm start continues the fitted history: this fit's epochs follow its rows.
            first_epoch = len(self.net_.history) if warm else 0
            data = self._validate_fit_data(X, y, warm=warm, **extra)
            split = self._split(data["n_samples"])
            if not warm:
                self.device_ = self._resolve_device()
            train_set, valid_set = self._prepare_data(data, split, warm=warm)

            def make_net(valid_set):
                return self._make_net(
                    shuffle_seed=split.seeds["shuffle"],
                    eval_seed=split.seeds.get("eval", 0),
                    valid_set=valid_set,
                )

            net = run_training(
                self,
                make_net,
                train_set,
                valid_set,
                init_seed=split.seeds["init"],
                device=self.device_,
                fingerprint=self._fingerprint(data) if self.checkpoint_dir else "",
            )
            # The held-out tensors are not part of the model: do not pickle them with it.
            net.train_split = None
            self.net_ = net
            self.history_ = net.history
            self.n_epochs_ = len(net.history)
            self._check_restores(net, first_epoch)
            self._finish_fit(data, split)
            return self

    def _check_restores(self, net, first_epoch: int) -> None:
        """Count the divergence guard's restores (``n_restores_``) and report this fit's.

        A restore rolls training back silently inside the loop: a fit whose epochs were
        all rolled back is refused (see ``DivergenceGuard.check_fit``), and one with any
        restore warns, so that ``on_divergence="restore"`` never hides a fault.
        """
        self.n_restores_ = sum(len(row.get("divergence") or []) for row in net.history)
        guard = dict(getattr(net, "callbacks_", [])).get("divergence_guard")
        if not isinstance(guard, DivergenceGuard):
            return
        restores = guard.check_fit(net, first_epoch=first_epoch)
        if restores:
            epochs = sorted({epoch for epoch, _ in restores})
            warnings.warn(
                f"{type(self).__name__}.fit diverged and was rolled back {len(restores)} "
                f"time(s) (on_divergence='restore'), in epoch(s) "
                f"{', '.join(map(str, epochs))}; each restore halved the learning rate, to "
                f"{restores[-1][1]['learning_rate']:g} at the last. Training went on from "
                "the last good state, without the steps rolled back: lower learning_rate to "
                "train without faults. history_ records each restore under 'divergence'; "
                "n_restores_ counts them.",
                UserWarning,
                stacklevel=4,  # the user's call of fit
            )

    # ------------------------------------------------------------------ hooks

    def _validate_fit_data(self, X, y, *, warm: bool, **extra) -> dict[str, Any]:
        raise NotImplementedError

    def _prepare_data(self, data: dict[str, Any], split: FitSplit, *, warm: bool):
        raise NotImplementedError

    def _make_net(self, *, shuffle_seed: int, eval_seed: int, valid_set=None):
        raise NotImplementedError

    def _finish_fit(self, data: dict[str, Any], split: FitSplit) -> None:
        return None

    def _fingerprint(self, data: dict[str, Any]) -> str:
        return data_fingerprint(self, *data["arrays"])

    def _resolve_device(self) -> torch.device:
        return resolve_device(self.device)

    def _held_out_sizes(self, n_samples: int) -> tuple[int, int]:
        """Rows held out for validation and for the test estimate (at least 2 each, or 0)."""
        fraction = self.validation_fraction
        n_valid = 0 if fraction == 0 else max(2, math.ceil(fraction * n_samples))
        fraction = self._test_fraction_in_use()
        n_test = 0 if fraction == 0 else max(2, math.ceil(fraction * n_samples))
        return n_valid, n_test

    def _test_fraction_in_use(self) -> float:
        """Share of the rows held out for the reported estimate alone (0: none)."""
        return getattr(self, "test_fraction", 0)

    # ------------------------------------------------------------------ shared steps

    def _split(self, n_samples: int) -> FitSplit:
        """Training, validation and test rows, and the seeds of the fit.

        The three sets are disjoint: the validation rows choose the epoch, the test rows
        only produce the estimate.
        """
        n_valid, n_test = self._held_out_sizes(n_samples)
        n_train = n_samples - n_valid - n_test
        if n_train < 2:
            held = f"{n_valid} (validation_fraction={self.validation_fraction})"
            if n_test:
                held = (
                    f"{n_valid} for validation (validation_fraction={self.validation_fraction})"
                    f" and {n_test} for the estimate (test_fraction={self.test_fraction})"
                )
            raise ValueError(
                f"Too few {self._sample_noun}: {n_samples} {self._row_noun} leave {n_train} "
                f"for training after holding out {held}; at least {n_valid + n_test + 2} "
                f"are needed, and hundreds for a useful model.{self._too_few_advice}"
            )
        rng = check_random_state(self.random_state)
        drawn = rng.randint(0, 2**31 - 1, size=len(self._seed_names))
        seeds = {name: int(seed) for name, seed in zip(self._seed_names, drawn, strict=True)}
        order = np.random.default_rng(seeds["split"]).permutation(n_samples)
        return FitSplit(
            train=order[:n_train],
            valid=order[n_train : n_train + n_valid],
            test=order[n_train + n_valid :],
            seeds=seeds,
            n_samples=n_samples,
        )

    def _check_warm_sizes(self, available: dict[str, int], n_samples: int) -> None:
        """Refuse a warm start whose rows cannot fill the fitted batch sizes."""
        if any(0 < rows < getattr(self, name) for name, rows in available.items()):
            fitted = ", ".join(f"{name}={getattr(self, name)}" for name in available)
            raise ValueError(
                f"warm_start continues with the fitted batch sizes ({fitted}); {n_samples} "
                f"{self._row_noun} are too few for them."
            )

    def _check_hidden_layer_sizes(self) -> tuple[int, ...]:
        return check_hidden_layer_sizes(self.hidden_layer_sizes)

    def _own_callbacks(self) -> list:
        """The estimator's callbacks before the shared ones (early stopping, progress bar
        and the user's): a divergence guard and the per-epoch ``valid_mi``."""
        return [
            ("divergence_guard", DivergenceGuard(on_divergence=self.on_divergence)),
            ("mutual_information", MutualInformationLog()),
        ]

    def _net_arguments(
        self, *, shuffle_seed: int, eval_seed: int, valid_set, eval_batch_size: int | None
    ) -> dict[str, Any]:
        """The skorch net arguments every estimator's net takes from the estimator."""
        arguments = net_parameters(
            self,
            shuffle_seed=shuffle_seed,
            eval_seed=eval_seed,
            valid_set=valid_set,
            callbacks=standard_callbacks(self, self._own_callbacks()),
        )
        if eval_batch_size is not None:
            arguments["eval_batch_size"] = eval_batch_size
        if hasattr(self, "precision"):
            arguments.update(precision=self.precision, compile=self.compile)
        return arguments

    def _make_preprocessor(self, n_rows: int, seed: int):
        return make_preprocessor(self.preprocessing, n_rows, seed)

    @property
    def _data_device(self) -> torch.device:
        # The net's device, not device_: a model trained on CUDA and unpickled on a
        # CPU-only machine has been moved to the CPU by skorch.
        if not hasattr(self, "net_"):
            return self.device_
        if self.net_.device is None:  # placed by an accelerator
            return next(self.net_.module_.parameters()).device
        return torch.device(self.net_.device)

    def _rebuild_net(self, *, shuffle_seed: int, eval_seed: int):
        return self._make_net(shuffle_seed=shuffle_seed, eval_seed=eval_seed)

    @property
    def _n_features_out(self) -> int:
        return self.n_components

    # ------------------------------------------------------------------ held-out bound

    @property
    def _takes_alpha(self) -> bool:
        return get_objective(self.objective).takes_alpha

    def _alpha_at(self, n_rows: int) -> float:
        """The alpha of the bound on batches of ``n_rows`` (``"auto"`` resolved there)."""
        # Objectives without alpha ignore it, as documented: do not validate it for them.
        alpha = self.alpha if self._takes_alpha else "auto"
        return resolve_alpha(alpha, self.objective, n_rows)

    def _evaluation_batch_size(self, n_rows: int) -> int:
        """Rows per evaluation batch when ``n_rows`` rows are at hand."""
        if self.eval_batch_size == "auto":
            accelerator = getattr(self, "accelerator", None)
            processes = 1 if accelerator is None else int(accelerator.num_processes)
            return auto_eval_batch_size(
                n_rows, joint=not self._separable_scores, multiple_of=processes
            )
        return min(self.eval_batch_size or self.batch_size, n_rows)

    def _evaluate(self, dataset, batch_size: int) -> HeldOutEstimate:
        return evaluate_held_out(
            self.net_,
            dataset,
            batch_size=batch_size,
            alpha_at=self._alpha_at,
            separable=self._factored_scores,
            score_ceiling=self._score_ceiling(),
        )

    def _score_ceiling(self) -> float | None:
        """Largest score an estimate uses (see ``evaluate_held_out``); None: no ceiling."""
        return None

    def _record_held_out(self, estimate: HeldOutEstimate, *, advice: str) -> None:
        """Store the held-out estimate and its diagnostics as fitted attributes, and warn."""
        if not math.isfinite(estimate.value) or estimate.value < -1e4:
            raise DivergenceError(
                f"The fitted model gives a non-finite held-out estimate. {advice}"
            )
        self.mi_ = estimate.value
        self.mi_std_ = estimate.std_error
        self.mi_ci_ = estimate.interval
        self.eval_alpha_ = estimate.alpha
        self.mi_cap_ = cap(self.objective, self.eval_batch_size_, alpha=self.eval_alpha_)
        self.bound_validity_ = bound_validity(
            self.objective, self.eval_batch_size_, alpha=self.eval_alpha_
        )
        self.saturation_gain_ = estimate.saturation_gain
        self.saturated_ = estimate.saturated(self.mi_cap_)
        warn_if_alpha_is_invalid(
            self.objective, self.eval_alpha_, self.bound_validity_, self.eval_batch_size_
        )
        if math.isnan(self.mi_std_):
            warnings.warn(
                f"The held-out split holds {self.eval_batch_size_} {self._row_noun}, too few "
                "for an uncertainty: mi_std_ and mi_ci_ are undefined (NaN). Use more rows "
                "or a larger held-out fraction.",
                UserWarning,
                stacklevel=5,  # the user's call of fit
            )
        if self.saturated_:
            warnings.warn(
                f"mi_ = {self.mi_:.3f} nats is limited by the evaluation batch of "
                f"{self.eval_batch_size_} {self._row_noun} (cap {self.mi_cap_:.2f}): it rose "
                f"by {self.saturation_gain_:.3f} nats from batches of half that size, so "
                "more rows per evaluation batch would raise it, and the MI may be well "
                "above it. Use more rows or a larger held-out fraction "
                "(eval_batch_size='auto' takes them all, up to 4,096 per batch).",
                SaturationWarning,
                stacklevel=5,  # the user's call of fit
            )

    def _evaluate_rows(self, dataset, n_rows: int) -> MIEstimate:
        """The bound on ``n_rows`` new rows, with the rules of the held-out estimate."""
        if self.eval_batch_size == "auto":
            batch_size = self._evaluation_batch_size(n_rows)
        else:
            batch_size = min(self.eval_batch_size_, n_rows)
            if batch_size < self.eval_batch_size_:
                validity = bound_validity(
                    self.objective, batch_size, alpha=self._alpha_at(batch_size)
                )
                warnings.warn(
                    f"Only {n_rows} {self._row_noun} given: scoring one batch of {batch_size} "
                    f"instead of {self.eval_batch_size_}; the bound's cap and bias change "
                    f"with the batch size (validity at this size: {validity}).",
                    UserWarning,
                    stacklevel=4,  # the user's call of evaluate, past the thread limit
                )
        estimate = self._evaluate(dataset, batch_size)
        bound_cap = cap(self.objective, batch_size, alpha=estimate.alpha)
        return MIEstimate(
            mi=estimate.value,
            std_error=estimate.std_error,
            ci=estimate.interval,
            cap=bound_cap,
            validity=bound_validity(self.objective, batch_size, alpha=estimate.alpha),
            batch_size=batch_size,
            alpha=estimate.alpha,
            saturated=estimate.saturated(bound_cap),
        )
