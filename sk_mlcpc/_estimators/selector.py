"""MutualInformationSelector: forward feature selection by held-out conditional MI.

One amortised critic (:class:`~sk_mlcpc._nn.masked.MaskedCritic`) is trained on random
subsets of the columns of ``X``; it then scores any subset ``S`` without a new fit, so
the search can weigh every candidate, and every pair of candidates, at each step. A
candidate's worth is its conditional mutual information with the target given the
columns chosen so far, ``I(X_j; y | X_S) = I(X_{S+j}; y) - I(X_S; y)``, estimated as
the paired per-row difference of the two bounds: on the validation rows to choose, on
the test rows (which choose nothing) for the reported ``gains_`` and their intervals.
"""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import ClassVar

import numpy as np
import torch
from sklearn.feature_selection import SelectorMixin
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from sk_mlcpc._engine.batches import PairedTensorDataset
from sk_mlcpc._engine.fitting import check_has_features
from sk_mlcpc._engine.inputs import INPUT_DTYPES, as_float32, check_input, validate_input
from sk_mlcpc._engine.loss import BoundLoss, PointwiseBoundLoss
from sk_mlcpc._engine.net import ContrastiveNet
from sk_mlcpc._estimators.base import ContrastiveEstimator, FitSplit
from sk_mlcpc._estimators.class_targets import (
    ClassLabelsRecord,
    check_labels,
    class_log_prior,
    encode_labels,
    is_class_target,
)
from sk_mlcpc._estimators.docs import shared_parameter_docs
from sk_mlcpc._nn.class_critic import ClassCritic, class_indices
from sk_mlcpc._nn.critics import SeparableCritic
from sk_mlcpc._nn.masked import MaskedCritic, masked_input

__all__ = ["MutualInformationSelector"]

_Z_95 = 1.959963984540054
# Validation rows on which candidate subsets are compared (the reported gains use all
# test rows); pairs of candidates on fewer, as there are p (p - 1) / 2 of them.
_SCREEN_ROWS = 1024
_PAIR_ROWS = 256
# Subsets scored per forward pass: rows x subsets at most this many input rows.
_ROWS_PER_PASS = 1 << 17
# Shadow columns: as many as X has columns, within these limits.
_MIN_SHADOWS, _MAX_SHADOWS = 5, 20


@shared_parameter_docs
class MutualInformationSelector(SelectorMixin, ClassLabelsRecord, ContrastiveEstimator):
    """Select features by their held-out conditional mutual information with ``y``.

    A forward search with a look-ahead of two: at each step every remaining column
    ``j`` is scored by its gain ``I(X_j; y | X_S)`` given the chosen set ``S``, and every
    pair ``(j, k)`` by ``I(X_j, X_k; y | X_S)``; the best pair is taken (both columns)
    when it beats the best single column followed by its best partner, so that columns
    that matter only jointly (an XOR, a parity) are found although neither has a gain on
    its own. Gains come from one critic trained on random subsets of the columns
    (:class:`~sk_mlcpc._nn.masked.MaskedCritic`), evaluated on held-out rows: the
    validation rows choose, the test rows report ``gains_`` with 95% intervals.

    ``y`` of class labels gets the class critic and Barber-Agakov bound of
    :class:`~sk_mlcpc.MutualInformationEstimator` (``target_type``); a continuous ``y``
    a separable critic and the CPC bound (per row, with the other evaluated rows as
    negatives, so each subset's bound is capped at ``log`` of the rows evaluated).

    Parameters
    ----------
    n_features_to_select : "auto", int or float, default="auto"
        ``"auto"`` adds columns while the gain's 95% interval on the validation rows
        lies above 0 (at least one column is chosen). An int selects that many; a float
        in (0, 1) that fraction of the columns (at least one).
    target_type : {"auto", "continuous", "classes"}, default="auto"
        How ``y`` is read, as in :class:`~sk_mlcpc.MutualInformationEstimator`.
    lookahead : bool, default=True
        Weigh pairs of candidates at each step (``p (p - 1) / 2`` subsets, on up to 256
        validation rows); False is plain forward selection, which cannot see a pair
        whose members carry nothing alone.
    hidden_layer_sizes : tuple of int, default=(128, 128)
        Hidden widths of the critic's MLP.
    n_components : int, default=64
        Width of the critic's embedding.
    .. shared-parameter:: activation
    batch_size : int, default=64
        Rows per training batch (small: many steps per epoch help the critic learn
        interactions through the random subsets).
    max_epochs : int, default=200
        Maximum passes over the training rows (each row with a fresh random subset).
    learning_rate : float, default=3e-3
        Adam learning rate.
    .. shared-parameter:: weight_decay
    validation_fraction : float, default=0.2
        Share of the rows that choose the epoch and the columns.
    test_fraction : float, default=0.2
        Share of the rows that only report ``gains_`` and ``mi_``.
    .. shared-parameter:: early_stopping
    n_iter_no_change : int, default=50
        Epochs without improvement of the validation loss before training stops.
    .. shared-parameter:: tol
    preprocessing : {"quantile", "standard"} or None, default="quantile"
        Per-column transformation of ``X`` (and of a continuous ``y``) learnt on the
        training rows; a column outside a subset is its transformed mean, 0.
    .. shared-parameter:: device
    .. shared-parameter:: n_threads
    random_state : int, RandomState instance or None, default=None
        Controls the split, the initialisation, the batches and the random subsets.
    verbose : int, default=0
        Training progress (skorch's, as in the other estimators) and one line per
        selection step.
    .. shared-parameter:: on_divergence
    .. shared-parameter:: callbacks

    Attributes
    ----------
    support_ : ndarray of shape (n_features,), bool
        The selected columns.
    selected_order_ : ndarray of int
        The selected columns in the order they were chosen.
    ranking_ : ndarray of shape (n_features,), int
        1 for the first column chosen, 2 for the second, ...; the others follow by
        their gain at the last step (best first).
    gains_ : ndarray of shape (n_selected,)
        Each chosen column's gain ``I(X_j; y | X_S)`` on the test rows (nats), in the
        order chosen; the gains add up to ``mi_``.
    gains_ci_ : ndarray of shape (n_selected, 2)
        95% intervals of ``gains_`` (paired differences over the test rows).
    mi_ : float
        The bound on ``I(X_selected; y)`` on the test rows, nats.
    mi_ci_ : tuple of float
        Its 95% interval.
    n_features_to_select_ : int
        The number of columns selected.
    target_type_ : {"continuous", "classes"}
        How ``y`` was read.
    classes_ : ndarray or None
        Class labels of ``y`` (None for a continuous ``y``).
    net_ : ContrastiveNet
        The fitted skorch net of the amortised critic.
    history_ : skorch.History
        Its training history.
    .. shared-parameter:: n_epochs_
    .. shared-parameter:: device_
    n_features_in_ : int
        Columns of ``X``.
    .. shared-parameter:: feature_names_in_

    See Also
    --------
    MutualInformationEstimator : The held-out MI of one set of columns.
    sklearn.feature_selection.SequentialFeatureSelector : Forward selection by a model's
        cross-validated score, one fit per candidate.

    Notes
    -----
    Each reported gain is a difference of two bounds of the same critic on the same
    rows: an estimate of the conditional MI, not a bound on it. ``mi_`` itself is a
    bound (for class labels the Barber-Agakov bound with the test rows' plug-in
    entropy; for a continuous ``y`` the CPC bound). The validation rows both stop the
    training and choose the columns; the test rows choose nothing.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_mlcpc import MutualInformationSelector
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((1500, 6))
    >>> y = (X[:, 1] > 0) ^ (X[:, 4] > 0)  # an XOR: no column carries anything alone
    >>> selector = MutualInformationSelector(
    ...     n_features_to_select=2, max_epochs=60, random_state=0
    ... ).fit(X, y)
    >>> selector.get_support(indices=True).tolist()
    [1, 4]
    """

    _own_parameter_constraints: ClassVar[dict] = {
        "n_features_to_select": [
            StrOptions({"auto"}),
            Interval(Integral, 1, None, closed="left"),
            Interval(Real, 0, 1, closed="neither"),
        ],
        "target_type": [StrOptions({"auto", "continuous", "classes"})],
        "lookahead": ["boolean"],
        "test_fraction": [Interval(Real, 0, 1, closed="neither")],
    }
    # Fitted attributes save() writes (the arrays as tensors, see _saved_tensors).
    mi_: float
    mi_ci_: tuple[float, float]
    n_features_to_select_: int
    target_type_: str
    _target_classes_record: dict | None
    _net_columns: int
    _n_copies: int
    _mask_seed: int
    _validation_batch_size: int
    _fitted_arrays: ClassVar[tuple[str, ...]] = (
        "support_",
        "selected_order_",
        "ranking_",
        "gains_",
        "gains_ci_",
    )
    # Read by the shared training steps; not parameters of a selector.
    warm_start = False
    checkpoint_dir = None
    _seed_names: ClassVar[tuple[str, ...]] = ("split", "init", "shuffle", "eval", "prep", "masks")

    def __init__(
        self,
        n_features_to_select: str | int | float = "auto",
        *,
        target_type: str = "auto",
        lookahead: bool = True,
        hidden_layer_sizes: tuple[int, ...] = (128, 128),
        n_components: int = 64,
        activation: str = "gelu",
        batch_size: int = 64,
        max_epochs: int = 200,
        learning_rate: float = 3e-3,
        weight_decay: float = 0.0,
        validation_fraction: float = 0.2,
        test_fraction: float = 0.2,
        early_stopping: bool = True,
        n_iter_no_change: int = 50,
        tol: float = 1e-3,
        preprocessing: str | None = "quantile",
        device: str | torch.device = "auto",
        n_threads: int | None = None,
        random_state: int | np.random.RandomState | None = None,
        verbose: int = 0,
        on_divergence: str = "raise",
        callbacks: list | None = None,
    ) -> None:
        self._store_init_arguments(locals())

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        return tags

    # ------------------------------------------------------------------ fitting

    def fit(self, X, y, **fit_params):
        """Train the amortised critic and select columns by their conditional MI with ``y``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Candidate columns.
        y : array-like of shape (n_samples,)
            Class labels or a continuous target.
        **fit_params : dict
            Must be empty (refused rather than ignored).

        Returns
        -------
        self : MutualInformationSelector
        """
        return self._fit(X, y, fit_params)

    def _validate_fit_data(self, X, y, *, warm: bool) -> dict:
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None: "
                "columns are chosen by their mutual information with y."
            )
        check_has_features(X)
        X = validate_input(self, X, dtype=INPUT_DTYPES, ensure_min_samples=2, reset=True)
        n_features = X.shape[1]
        wanted = self.n_features_to_select
        if isinstance(wanted, Integral) and wanted > n_features:
            raise ValueError(
                f"n_features_to_select={wanted} is larger than the {n_features} columns of X."
            )
        if is_class_target(y, self.target_type):
            self.classes_, indices = encode_labels(check_labels(y, len(X)))
            self.target_type_ = "classes"
            Y = indices.astype(np.float32).reshape(-1, 1)
        else:
            self.classes_, self.target_type_ = None, "continuous"
            Y = check_input(y, dtype=INPUT_DTYPES, ensure_2d=False, input_name="y")
            if Y.ndim == 2 and Y.shape[1] != 1:
                raise ValueError(f"y must be one column, got shape {Y.shape}.")
            Y = Y.reshape(-1, 1)
        if len(Y) != len(X):
            raise ValueError(
                f"X and y must have the same number of rows, got {len(X)} and {len(Y)}."
            )
        return {"arrays": (X, Y), "n_samples": len(X)}

    def _prepare_data(self, data: dict, split: FitSplit, *, warm: bool):
        X, Y = data["arrays"]
        preprocessor_x = self._make_preprocessor(len(split.train), split.seeds["prep"])
        if preprocessor_x is not None:
            X = preprocessor_x.fit(X[split.train]).transform(X)
        if self.target_type_ == "continuous":
            preprocessor_y = self._make_preprocessor(len(split.train), split.seeds["prep"])
            if preprocessor_y is not None:
                Y = preprocessor_y.fit(Y[split.train]).transform(Y)
        # Shadow columns (as in Boruta): copies of random columns with their rows
        # shuffled, so independent of y and of X. The search never chooses one; the
        # best shadow's gain is the gain a useless column gets from this critic.
        rng = np.random.default_rng(split.seeds["masks"])
        n_shadows = min(max(X.shape[1], _MIN_SHADOWS), _MAX_SHADOWS)
        sources = rng.choice(X.shape[1], n_shadows, replace=n_shadows > X.shape[1])
        shadows = np.stack([X[rng.permutation(len(X)), column] for column in sources], axis=1)
        # With n_features_to_select="auto", exact copies of every column too: a copy
        # of a chosen column carries nothing more, yet a critic trained on random
        # subsets scores a subset holding a column twice a little higher. Its gain is
        # the null the next column must beat, so that near-copies are not kept.
        copies = X if self.n_features_to_select == "auto" else X[:, :0]
        X = np.concatenate([X, copies, shadows], axis=1)
        self._n_copies = copies.shape[1]
        x = torch.as_tensor(as_float32(X, "X"), device=self.device_)
        y = torch.as_tensor(as_float32(Y, "y"), device=self.device_)
        data["x"], data["y"] = x, y
        self.batch_size_ = min(self.batch_size, len(split.train))
        self._net_columns = X.shape[1]
        # Validation batches as large as the rows allow (a CPC bound's cap grows with
        # them), within what an n x n score matrix holds comfortably.
        self._validation_batch_size = max(2, min(len(split.valid), 2048))
        self._mask_seed = split.seeds["masks"]
        self._train_labels = y[torch.as_tensor(split.train, device=y.device)]
        train_set = PairedTensorDataset(x[split.train], y[split.train])
        valid_set = PairedTensorDataset(x[split.valid], y[split.valid])
        return train_set, valid_set

    def _largest_selection(self) -> int:
        p = self.n_features_in_
        wanted = self.n_features_to_select
        if wanted == "auto":
            return p
        if isinstance(wanted, Integral):
            return int(wanted)
        return max(1, round(wanted * p))

    def _make_net(self, *, shuffle_seed: int, eval_seed: int, valid_set=None):
        p = self._net_columns
        hidden = self._check_hidden_layer_sizes()
        if self.target_type_ == "classes":
            train_labels = self.__dict__.pop("_train_labels", None)
            log_prior = (  # a loaded model gets the fitted prior with its saved state
                None
                if train_labels is None
                else class_log_prior(class_indices(train_labels).cpu().numpy(), len(self.classes_))
            )
            inner = ClassCritic(
                2 * p,
                len(self.classes_),
                embedding_dim=self.n_components,
                hidden_layer_sizes=hidden,
                activation=self.activation,
                log_prior=log_prior,
            )
            criterion, criterion_arguments = PointwiseBoundLoss, {}
        else:
            inner = SeparableCritic(
                2 * p,
                1,
                embedding_dim=self.n_components,
                hidden_layer_sizes=hidden,
                activation=self.activation,
                marginal_terms=True,
            )
            criterion, criterion_arguments = BoundLoss, {"criterion__objective": "cpc"}
        small = (
            min(p, self._largest_selection() + 2)
            if self.n_features_to_select != "auto"
            else min(p, 20)
        )
        module = MaskedCritic(inner, p, small_subsets=small, seed=self._mask_seed)
        shared = self._net_arguments(
            shuffle_seed=shuffle_seed,
            eval_seed=eval_seed,
            valid_set=valid_set,
            eval_batch_size=self._validation_batch_size,
        )
        return ContrastiveNet(module, criterion=criterion, **criterion_arguments, **shared)

    # ------------------------------------------------------------------ the search

    def _row_values(self, x: torch.Tensor, y: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """Per-row bound terms of each subset: ``(n_subsets, n_rows)``, float64.

        Class labels: ``log q_S(y_i | x_i) - log p_hat(y_i)`` (``p_hat``: these rows'
        class frequencies); continuous: ``f_S(x_i, y_i) - logmeanexp_j f_S(x_i, y_j)``.
        The empty subset's terms are exactly 0 (the constant critic).
        """
        module = self.net_.module_
        module.eval()
        n_rows = len(x)
        per_pass = max(1, _ROWS_PER_PASS // n_rows)
        out = torch.empty(len(masks), n_rows, dtype=torch.float64)
        if self.target_type_ == "classes":
            indices = class_indices(y)
            counts = torch.bincount(indices, minlength=len(self.classes_)).double()
            log_marginal = torch.log(counts / n_rows)[indices].cpu()
        with torch.no_grad():
            if self.target_type_ == "continuous":
                # f(x, y) = g(x) . h(y) + a(x) + b(y): a(x) is the same for a row's
                # every pair and cancels from its CPC term.
                h, b = module.critic._encode(module.critic.y_encoder, y)
                h, b = h.double(), b.double()
            for start in range(0, len(masks), per_pass):
                chunk = masks[start : start + per_pass]
                inputs = masked_input(
                    x.repeat(len(chunk), 1), chunk.repeat_interleave(n_rows, dim=0)
                )
                if self.target_type_ == "classes":
                    logits = module.critic.logits(inputs).double()
                    log_q = torch.log_softmax(logits, dim=1)
                    log_q = log_q.gather(1, indices.repeat(len(chunk))[:, None])[:, 0]
                    values = log_q.view(len(chunk), n_rows).cpu() - log_marginal
                else:
                    g = module.critic.embed_x(inputs).view(len(chunk), n_rows, -1).double()
                    scores = g @ h.T + b[None, None, :]  # (subsets, n, n)
                    diagonal = scores.diagonal(dim1=1, dim2=2)
                    values = diagonal - torch.logsumexp(scores, dim=2) + math.log(n_rows)
                    values = values.cpu()
                out[start : start + len(chunk)] = values
        empty = masks.sum(dim=1) == 0
        out[empty.cpu()] = 0.0
        return out

    def _finish_fit(self, data: dict, split: FitSplit) -> None:
        x, y = data["x"], data["y"]
        device = x.device
        valid_rows = split.valid[:_SCREEN_ROWS]
        x_valid = x[torch.as_tensor(valid_rows, device=device)]
        y_valid = y[torch.as_tensor(valid_rows, device=device)]
        pair_rows = slice(0, min(_PAIR_ROWS, len(valid_rows)))
        p = self.n_features_in_
        copies_from = p
        shadows = list(range(p + self._n_copies, self._net_columns))
        budget = self._largest_selection()
        auto = self.n_features_to_select == "auto"
        chosen: list[int] = []
        current = torch.zeros(len(valid_rows), dtype=torch.float64)
        last_single = np.zeros(p)
        while len(chosen) < budget:
            remaining = [j for j in range(p) if j not in chosen]
            base = torch.zeros(self._net_columns, device=device)
            base[chosen] = 1.0
            null = shadows + [copies_from + j for j in chosen if self._n_copies]
            candidates = remaining + null
            singles = base.repeat(len(candidates), 1)
            singles[torch.arange(len(candidates)), candidates] = 1.0
            all_values = self._row_values(x_valid, y_valid, singles) - current
            single_values, shadow_values = (
                all_values[: len(remaining)],
                all_values[len(remaining) :],
            )
            null_values = shadow_values[int(torch.argmax(shadow_values.mean(dim=1)))]
            single_gains = single_values.mean(dim=1).numpy()
            last_single = np.full(p, -np.inf)
            last_single[remaining] = single_gains
            best = int(np.argmax(single_gains))
            step = [remaining[best]]
            step_values = single_values[best]
            if self.lookahead and len(remaining) >= 2 and budget - len(chosen) >= 2:
                pair = self._best_pair(
                    x_valid[pair_rows],
                    y_valid[pair_rows],
                    base,
                    remaining,
                    remaining[best],
                    current[pair_rows],
                )
                if pair is not None:
                    step = pair
                    both = base.clone()
                    both[pair] = 1.0
                    step_values = self._row_values(x_valid, y_valid, both[None])[0] - current
            gain, low = _mean_and_low(step_values)
            # Beyond the best shadow column's gain on the same rows, or stop.
            _, low_over_null = _mean_and_low(step_values - null_values)
            if auto and chosen and min(low, low_over_null) <= 0:
                break
            if self.verbose:
                names = ", ".join(str(j) for j in step)
                print(
                    f"step {len(chosen) + 1}: column(s) {names}, gain {gain:.4f} nats "
                    f"(95% interval from {low:.4f})"
                )
            chosen.extend(step)
            current = current + step_values
        self._record_selection(chosen, last_single, x, y, split)

    def _best_pair(self, x_rows, y_rows, base, remaining, greedy, current):
        """The pair whose joint gain beats the greedy column's best continuation by more
        than its uncertainty, or None."""
        index = torch.tensor(remaining)
        first, second = torch.triu_indices(len(remaining), len(remaining), offset=1)
        pairs = torch.stack([index[first], index[second]], dim=1)
        masks = base.repeat(len(pairs), 1)
        rows = torch.arange(len(pairs))
        masks[rows, pairs[:, 0].to(base.device)] = 1.0
        masks[rows, pairs[:, 1].to(base.device)] = 1.0
        values = self._row_values(x_rows, y_rows, masks) - current
        gains = values.mean(dim=1)
        best = int(torch.argmax(gains))
        with_greedy = (pairs == greedy).any(dim=1)
        greedy_best = int(torch.nonzero(with_greedy)[torch.argmax(gains[with_greedy])])
        if best == greedy_best or greedy in pairs[best].tolist():
            return None
        difference = values[best] - values[greedy_best]
        _, low = _mean_and_low(difference)
        if low <= 0:
            return None
        return sorted(pairs[best].tolist())

    def _record_selection(self, chosen, last_single, x, y, split: FitSplit) -> None:
        device = x.device
        test = torch.as_tensor(split.test, device=device)
        x_test, y_test = x[test], y[test]
        masks = torch.zeros(len(chosen) + 1, self._net_columns, device=device)
        for k, column in enumerate(chosen):
            masks[k + 1 :, column] = 1.0
        values = self._row_values(x_test, y_test, masks)
        steps = values[1:] - values[:-1]
        self.gains_ = steps.mean(dim=1).numpy()
        se = steps.std(dim=1, unbiased=True).numpy() / math.sqrt(max(1, len(split.test)))
        self.gains_ci_ = np.stack([self.gains_ - _Z_95 * se, self.gains_ + _Z_95 * se], axis=1)
        total = values[-1]
        self.mi_ = float(total.mean())
        total_se = float(total.std(unbiased=True)) / math.sqrt(max(1, len(split.test)))
        self.mi_ci_ = (self.mi_ - _Z_95 * total_se, self.mi_ + _Z_95 * total_se)
        self.selected_order_ = np.asarray(chosen, dtype=np.intp)
        self.support_ = np.zeros(self.n_features_in_, dtype=bool)
        self.support_[chosen] = True
        self.n_features_to_select_ = len(chosen)
        ranking = np.empty(self.n_features_in_, dtype=np.intp)
        ranking[chosen] = np.arange(1, len(chosen) + 1)
        rest = [j for j in np.argsort(-last_single, kind="stable") if j not in set(chosen)]
        ranking[rest] = np.arange(len(chosen) + 1, self.n_features_in_ + 1)
        self.ranking_ = ranking

    def _saved_tensors(self) -> dict[str, torch.Tensor]:
        return {name: torch.as_tensor(getattr(self, name)) for name in self._fitted_arrays}

    def _restore_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        for name in self._fitted_arrays:
            setattr(self, name, tensors[name].numpy())
        if self.support_.shape != (self.n_features_in_,) or self.support_.dtype != bool:
            raise ValueError(f"support_ must be {self.n_features_in_} booleans")

    def _get_support_mask(self) -> np.ndarray:
        check_is_fitted(self)
        return self.support_


def _mean_and_low(values: torch.Tensor) -> tuple[float, float]:
    """Mean of per-row values and the low end of its 95% interval."""
    mean = float(values.mean())
    if len(values) < 2:
        return mean, -math.inf
    se = float(values.std(unbiased=True)) / math.sqrt(len(values))
    return mean, mean - _Z_95 * se
