"""One-call MI estimates: one fit (:func:`estimate_mi`), or critic settings chosen by the
held-out bound and reported on rows the search never saw (:func:`search_mi`)."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.utils import _safe_indexing, check_random_state

from sk_mlcpc._estimators.mi import MIEstimate, MutualInformationEstimator

__all__ = ["MISearchResult", "estimate_mi", "search_mi"]


class MISearchResult(NamedTuple):
    """What :func:`search_mi` found: the estimate on untouched rows, and how it was chosen.

    Examples
    --------
    >>> from sk_mlcpc import search_mi
    >>> from sk_mlcpc.datasets import make_correlated_gaussians
    >>> X, Y, _ = make_correlated_gaussians(600, 2, mi=1.0, random_state=0)
    >>> result = search_mi(X, Y, {"batch_size": [32, 64]}, cv=2, max_epochs=2, random_state=0)
    >>> type(result).__name__, result.best_params["batch_size"] in (32, 64)
    ('MISearchResult', True)
    """

    estimate: MIEstimate
    best_params: dict[str, Any]
    search: GridSearchCV


def search_mi(
    X,
    Y,
    param_grid: dict | list[dict],
    *,
    cv: int = 3,
    test_fraction: float = 0.2,
    random_state: int | np.random.RandomState | None = None,
    n_jobs: int | None = None,
    **params,
) -> MISearchResult:
    """Pick estimator settings by the held-out bound, then estimate on rows kept out.

    Every valid lower bound lies below the MI, so among settings the one with the higher
    held-out bound gives the better estimate; but the bound of the winner, read on the rows
    that chose it, is optimistically selected. This function first sets aside
    ``test_fraction`` of the rows, runs scikit-learn's
    :class:`~sklearn.model_selection.GridSearchCV` over ``param_grid`` on the rest (each
    candidate scored by
    :meth:`MutualInformationEstimator.score` on ``cv`` validation folds), refits the best
    candidate on all the searched rows, and evaluates it on the rows set aside, which
    neither training nor the search ever saw.

    The cost is one fit per candidate and fold plus the refit: ``len(grid) * cv + 1`` fits.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    Y : array-like of shape (n_samples,) or (n_samples, n_features_y)
    param_grid : dict or list of dict
        :class:`MutualInformationEstimator` parameters to try, as for ``GridSearchCV``.
    cv : int, default=3
        Folds of the search (shuffled with ``random_state``).
    test_fraction : float, default=0.2
        Share of the rows set aside for the reported estimate (at least 4 rows).
    random_state : int, RandomState instance or None, default=None
        Seeds the split, the folds and every candidate.
    n_jobs : int or None, default=None
        Candidates fitted in parallel, as in ``GridSearchCV``.
    **params : dict
        Fixed :class:`MutualInformationEstimator` parameters.

    Returns
    -------
    MISearchResult
        ``estimate`` (an :class:`MIEstimate` on the rows set aside), ``best_params`` and
        the fitted ``search``.

    Raises
    ------
    ValueError
        When ``checkpoint_dir`` is given (fixed or in the grid): a checkpoint directory
        holds one fit, and the search makes many; checkpoint the final fit instead.

    See Also
    --------
    estimate_mi : One fit, no search (``estimate_mi(..., search=grid)`` calls this).

    Examples
    --------
    >>> from sk_mlcpc import search_mi
    >>> from sk_mlcpc.datasets import make_correlated_gaussians
    >>> X, Y, true_mi = make_correlated_gaussians(1500, 2, mi=1.0, random_state=0)
    >>> result = search_mi(
    ...     X, Y, {"hidden_layer_sizes": [(16,), (64,)]}, cv=2, max_epochs=10, random_state=0
    ... )
    >>> sorted(result.best_params)
    ['hidden_layer_sizes']
    >>> result.estimate.batch_size  # the 300 rows set aside, in one batch
    300
    >>> bool(0.5 < result.estimate.mi < true_mi + 0.2)
    True
    """
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}.")
    _refuse_checkpoints(param_grid, params, cv)
    n_samples = len(X)
    if len(Y) != n_samples:
        raise ValueError(
            f"X and Y must have the same number of rows, got {n_samples} and {len(Y)}."
        )
    n_test = max(4, math.ceil(test_fraction * n_samples))
    rng = check_random_state(random_state)
    split_seed, fold_seed, model_seed = (int(seed) for seed in rng.randint(0, 2**31 - 1, size=3))
    order = np.random.default_rng(split_seed).permutation(n_samples)
    test_rows, searched_rows = np.sort(order[:n_test]), np.sort(order[n_test:])
    if len(searched_rows) < 6 * cv:
        raise ValueError(
            f"Too few samples: {n_samples} rows leave {len(searched_rows)} to search over "
            f"{cv} folds after setting aside {n_test} (test_fraction={test_fraction}); each "
            "fit needs at least 6."
        )
    search = GridSearchCV(
        MutualInformationEstimator(random_state=model_seed, **params),
        param_grid,
        cv=KFold(cv, shuffle=True, random_state=fold_seed),
        n_jobs=n_jobs,
        refit=True,
        error_score="raise",
    )
    search.fit(_safe_indexing(X, searched_rows), _safe_indexing(Y, searched_rows))
    estimate = search.best_estimator_.evaluate(
        _safe_indexing(X, test_rows), _safe_indexing(Y, test_rows)
    )
    return MISearchResult(estimate=estimate, best_params=search.best_params_, search=search)


def _refuse_checkpoints(param_grid: dict | list[dict], params: dict, cv: int) -> None:
    """Refuse a ``checkpoint_dir``: one directory holds the checkpoint of one fit.

    Every candidate and fold would share it, so the second fit would find the first's
    checkpoint and stop with an error about a different fit, naming neither the search
    nor the way out.
    """
    grids = [param_grid] if isinstance(param_grid, dict) else list(param_grid)
    values = [params.get("checkpoint_dir")]
    for grid in grids:
        # A malformed grid is GridSearchCV's to report.
        if isinstance(grid, dict):
            values += list(grid.get("checkpoint_dir", ()))
    directories = [value for value in values if value is not None]
    if directories:
        raise ValueError(
            f"search_mi cannot use checkpoint_dir={str(directories[0])!r}: the search fits "
            f"one model per candidate and fold ({cv} folds) and refits the best, and a "
            "checkpoint directory holds the checkpoint of one fit, so the second fit would "
            "find the first's. Leave checkpoint_dir out of search_mi; to checkpoint a long "
            "fit, fit MutualInformationEstimator(**result.best_params, "
            "checkpoint_dir=...) after the search."
        )


def estimate_mi(
    X,
    Y,
    *,
    random_state=None,
    search: dict | list[dict] | None = None,
    search_cv: int = 3,
    **params,
) -> float:
    """Estimate the mutual information between ``X`` and ``Y`` in nats, in one call.

    Fits a :class:`MutualInformationEstimator` with the given parameters and returns its
    held-out estimate ``mi_``. Use the estimator directly for the uncertainty
    (``mi_std_``, ``mi_ci_``), the training history or scoring new data.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    Y : array-like of shape (n_samples,) or (n_samples, n_features_y)
    random_state : int, RandomState instance or None, default=None
        Seed for a reproducible estimate.
    search : dict, list of dict or None, default=None
        A parameter grid: choose the settings with the highest held-out bound by
        cross-validation and report the bound on rows the search never saw
        (:func:`search_mi`, ``len(grid) * search_cv + 1`` fits). ``None`` fits once.
    search_cv : int, default=3
        Folds of the search.
    **params : dict
        Any :class:`MutualInformationEstimator` parameter.

    Returns
    -------
    mi : float
        Held-out lower-bound estimate, nats.

    Examples
    --------
    >>> from sk_mlcpc import estimate_mi
    >>> from sk_mlcpc.datasets import make_correlated_gaussians
    >>> X, Y, true_mi = make_correlated_gaussians(2000, 2, mi=1.0, random_state=0)
    >>> mi = estimate_mi(X, Y, critic="separable", hidden_layer_sizes=(64,), max_epochs=20,
    ...                  random_state=0)
    >>> bool(0.6 < mi < true_mi + 0.1)
    True
    """
    if search is not None:
        result = search_mi(X, Y, search, cv=search_cv, random_state=random_state, **params)
        return result.estimate.mi
    estimator = MutualInformationEstimator(random_state=random_state, **params)
    return estimator.fit(X, Y).mi_
