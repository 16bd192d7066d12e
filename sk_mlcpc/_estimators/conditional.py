"""ConditionalMutualInformationEstimator: I(X; Y | Z) by the chain rule of two held-out fits."""

from __future__ import annotations

import math
import warnings
from numbers import Integral
from typing import ClassVar

import numpy as np
from scipy import stats
from sklearn.base import BaseEstimator, clone
from sklearn.utils import _safe_indexing, check_random_state
from sklearn.utils._param_validation import HasMethods
from sklearn.utils.validation import check_is_fitted

from sk_mlcpc._engine.fitting import check_has_features
from sk_mlcpc._engine.inputs import INPUT_DTYPES, check_input, validate_input
from sk_mlcpc._estimators.mi import MutualInformationEstimator

__all__ = ["ConditionalMutualInformationEstimator"]

#: Groups of test rows in the paired delete-a-group jackknife of ``mi_std_``.
JACKKNIFE_GROUPS = 20


def _fit_term(estimator: MutualInformationEstimator, X, y, name: str) -> None:
    """Fit one term, its warnings re-issued at the user's call naming the term."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        estimator.fit(X, y)
    for warning in caught:
        warnings.warn(
            f"In the fit of {name}: {warning.message}",
            warning.category,
            stacklevel=3,  # the user's call of fit
        )


class ConditionalMutualInformationEstimator(BaseEstimator):
    """Estimate the conditional mutual information ``I(X; Y | Z)`` from held-out rows.

    By the chain rule, ``I(X; Y | Z) = I((X, Z); Y) - I(Z; Y)``. ``fit`` trains two
    :class:`MutualInformationEstimator` (clones of ``estimator``) on the same rows and the
    same training / validation / test split: ``joint_`` estimates ``I((X, Z); Y)`` and
    ``conditioning_`` estimates ``I(Z; Y)``, each on the same held-out test rows, and
    ``mi_`` is the difference, in nats. ``y`` is passed to both fits unchanged, so whatever
    targets :class:`MutualInformationEstimator` accepts, this estimator accepts.

    Parameters
    ----------
    estimator : MutualInformationEstimator or None, default=None
        The template of both fits, cloned twice (its ``random_state`` included, see
        below); None uses ``MutualInformationEstimator()`` with its defaults. Tune it
        with nested parameters (``estimator__max_epochs``), e.g. in
        :class:`~sklearn.model_selection.GridSearchCV`.
    conditioning_columns : array-like of int, of str, or of bool, or None, default=None
        Columns of ``X`` that form ``Z`` (positions, names of a DataFrame's columns, or a
        boolean mask); the other columns form ``X``. This lets ``Z`` travel inside ``X``
        through a Pipeline, a cross-validation or :meth:`score`. None: ``Z`` is passed
        to :meth:`fit` and :meth:`score` as a keyword argument instead.

    Attributes
    ----------
    mi_ : float
        ``joint_.mi_ - conditioning_.mi_``: the estimate of ``I(X; Y | Z)`` in nats, both
        terms evaluated on the same test rows (``test_indices_``). Negative values are
        legitimate (the difference of two estimates) and are not clipped.
    mi_std_ : float
        Standard error of ``mi_`` over draws of the test rows, for the fitted critics: a
        paired delete-a-group jackknife (20 groups of test rows; both fitted estimators
        scored on the same rows with each group left out, and the differences
        combined), so the correlation of the two terms is used, not ignored.
    mi_ci_ : tuple of float
        95% interval ``mi_ +/- t_{0.975, G-1} mi_std_`` for the expectation of the
        difference over test rows (not for the conditional MI: see Notes).
    joint_ : MutualInformationEstimator
        The fitted estimator of ``I((X, Z); Y)`` (its ``X`` is ``[X, Z]``, ``X``'s
        columns first).
    conditioning_ : MutualInformationEstimator
        The fitted estimator of ``I(Z; Y)``.
    converged_ : bool
        Whether both fits converged (``joint_.converged_`` and
        ``conditioning_.converged_``).
    random_state_ : int
        The seed both fits used (``estimator.random_state`` when it is an int, else one
        drawn from it at ``fit``).
    test_indices_ : ndarray of int
        The rows (positions in the data given to ``fit``) that produced both terms.
    n_features_in_ : int
        Columns of the ``X`` given to ``fit`` (with ``conditioning_columns``, ``Z``'s
        columns included).
    n_features_z_ : int
        Columns of ``Z``.
    feature_names_in_ : ndarray of str
        Names of ``X``'s columns, when ``X`` is a DataFrame with string column names.

    See Also
    --------
    MutualInformationEstimator : The plain ``I(X; Y)``, and each term here.
    sk_mlcpc.datasets.make_conditional_gaussians : Ground truth in closed form.

    Notes
    -----
    **Same split, paired difference.** Both fits get the same ``random_state`` and the
    same number of rows, so :class:`MutualInformationEstimator` draws the same
    training, validation and test rows for both; the two terms are read on the same test
    rows, and their errors from the draw of those rows partly cancel in the difference.

    **An estimate, not a bound.** Each term is a held-out lower bound (with a valid
    objective, see ``bound_validity_`` of each), biased downward by what its critic
    misses. Their difference is neither a lower nor an upper bound: the joint term,
    with more input columns, is usually the looser one, which biases ``mi_`` downward;
    but when the conditioning term is the looser (``Z`` alone is hard to read, e.g. a
    non-linear dependence of ``Y`` on ``Z``), ``mi_`` reads above the truth, and it can
    be above 0 when the conditional MI is 0. The interval describes the variation over
    test rows for the fitted critics only, not this bias, and not the randomness of
    training.

    **Jackknife details.** The replicates score each fitted estimator on the test rows
    less one group, with the batch rules of :meth:`MutualInformationEstimator.score`
    (with ``eval_batch_size="auto"``, one batch of up to 4,096 rows, 1,024 for
    ``critic="concat"``). With more test rows than that, or a fixed
    ``eval_batch_size``, the remaining rows are re-batched for each replicate, which
    adds the re-batching noise to ``mi_std_`` (a wider interval). The coverage of the
    interval was checked by simulation in ``benchmarks/conditional_mi.py`` (fresh test
    sets scored by fixed fitted critics).

    An empty ``Z`` is refused: ``I(X; Y | nothing)`` is the plain ``I(X; Y)`` of
    :class:`MutualInformationEstimator`.

    The estimator has no ``save``: it is two fitted estimators, which pickle (and each
    has its own ``save``).

    Examples
    --------
    >>> from sk_mlcpc import ConditionalMutualInformationEstimator, MutualInformationEstimator
    >>> from sk_mlcpc.datasets import make_conditional_gaussians
    >>> X, Y, Z, true_cmi = make_conditional_gaussians(
    ...     2000, 1, n_features_z=2, cmi=0.5, random_state=0
    ... )
    >>> template = MutualInformationEstimator(
    ...     hidden_layer_sizes=(32,), max_epochs=10, random_state=0
    ... )
    >>> est = ConditionalMutualInformationEstimator(template).fit(X, Y, Z=Z)
    >>> bool(abs(est.mi_ - true_cmi) < 0.15)
    True
    >>> low, high = est.mi_ci_
    >>> bool(low < est.mi_ < high)
    True
    >>> bool((est.joint_.test_fraction, len(est.test_indices_)) == (0.2, 400))
    True
    """

    _parameter_constraints: ClassVar[dict] = {
        "estimator": [HasMethods(["fit", "score"]), None],
        "conditioning_columns": ["array-like", None],
    }

    def __init__(
        self,
        estimator: MutualInformationEstimator | None = None,
        *,
        conditioning_columns=None,
    ) -> None:
        self.estimator = estimator
        self.conditioning_columns = conditioning_columns

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.target_tags.single_output = True
        tags.target_tags.multi_output = True
        return tags

    # ------------------------------------------------------------------ inputs

    def _template(self) -> MutualInformationEstimator:
        if self.estimator is None:
            return MutualInformationEstimator()
        if not isinstance(self.estimator, MutualInformationEstimator):
            raise TypeError(
                "estimator must be a MutualInformationEstimator (the template of both "
                f"fits) or None, got {type(self.estimator).__name__}."
            )
        return self.estimator

    def _column_mask(self, n_columns: int) -> np.ndarray:
        """The boolean mask of ``X``'s columns that form ``Z`` (``conditioning_columns``)."""
        columns = np.asarray(self.conditioning_columns)
        if columns.ndim != 1:
            raise ValueError(
                "conditioning_columns must be a 1-D list of column positions, names or a "
                f"boolean mask, got an array of shape {columns.shape}."
            )
        if columns.dtype == bool:
            if len(columns) != n_columns:
                raise ValueError(
                    f"conditioning_columns is a boolean mask of {len(columns)} values, but X "
                    f"has {n_columns} columns."
                )
            mask = columns.copy()
        elif columns.dtype.kind in "OUS":
            names = getattr(self, "feature_names_in_", None)
            if names is None:
                raise ValueError(
                    "conditioning_columns names columns, but X has no column names (pass a "
                    "pandas DataFrame, or give column positions)."
                )
            missing = [str(name) for name in columns if name not in set(names)]
            if missing:
                raise ValueError(f"conditioning_columns names columns not in X: {missing}.")
            mask = np.isin(names, columns)
        elif len(columns) and all(isinstance(c, Integral | np.integer) for c in columns.tolist()):
            if np.any(columns < -n_columns) or np.any(columns >= n_columns):
                raise ValueError(
                    f"conditioning_columns holds positions outside X's {n_columns} columns: "
                    f"{columns.tolist()}."
                )
            mask = np.zeros(n_columns, dtype=bool)
            mask[columns] = True
        elif len(columns) == 0:
            mask = np.zeros(n_columns, dtype=bool)
        else:
            raise TypeError(
                "conditioning_columns must hold column positions (int), names (str) or a "
                f"boolean mask, got dtype {columns.dtype}."
            )
        if not mask.any():
            raise ValueError(
                "conditioning_columns selects no column: Z would be empty, and I(X; Y | Z) "
                "with nothing to condition on is the plain I(X; Y). Use "
                "MutualInformationEstimator for it."
            )
        if mask.all():
            raise ValueError(
                f"conditioning_columns selects every column of X ({n_columns} feature(s)), "
                "which leaves X empty: X needs a column besides the conditioning set."
            )
        return mask

    def _split_columns(self, X, Z, *, reset: bool) -> tuple[np.ndarray, np.ndarray]:
        """Validated ``X`` and ``Z`` (float arrays with the same rows)."""
        check_has_features(X)
        X = validate_input(self, X, dtype=INPUT_DTYPES, ensure_min_samples=2, reset=reset)
        if self.conditioning_columns is not None:
            if Z is not None:
                raise ValueError(
                    "Z was passed although conditioning_columns is set: give the "
                    "conditioning set one way, as columns of X or as Z, not both."
                )
            mask = self._column_mask(X.shape[1])
            X, Z = X[:, ~mask], X[:, mask]
        else:
            if Z is None:
                raise ValueError(
                    f"{type(self).__name__} needs the conditioning set: pass Z (fit(X, y, "
                    "Z=Z), score(X, y, Z=Z)), or name columns of X with "
                    "conditioning_columns (which Pipelines and GridSearchCV can carry)."
                )
            shape = np.shape(Z)
            if len(shape) not in (1, 2):
                raise ValueError(
                    f"Z must be 1-D or 2-D (n_samples, n_features_z), got shape {shape}."
                )
            if len(shape) == 2 and shape[1] == 0:
                raise ValueError(
                    f"Z has 0 columns (shape={tuple(shape)}): with nothing to condition on, "
                    "I(X; Y | Z) is the plain I(X; Y). Use MutualInformationEstimator for it."
                )
            Z = check_input(
                Z, input_name="Z", dtype=INPUT_DTYPES, ensure_2d=False, ensure_min_samples=1
            )
            if Z.ndim == 1:
                Z = Z.reshape(-1, 1)
            if len(Z) != len(X):
                raise ValueError(
                    f"X and Z must have the same rows (Z is paired with X row by row), got "
                    f"{len(X)} rows of X and {len(Z)} of Z."
                )
        if reset:
            self.n_features_z_ = Z.shape[1]
        elif Z.shape[1] != self.n_features_z_:
            raise ValueError(
                f"Z has {Z.shape[1]} columns, but {type(self).__name__} was fitted with "
                f"{self.n_features_z_}."
            )
        return X, Z

    # ------------------------------------------------------------------ fit and score

    def fit(self, X, y, *, Z=None):
        """Fit both terms on the same split and estimate ``I(X; Y | Z)`` on the test rows.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The variable ``X`` (with ``conditioning_columns``: ``X`` and ``Z`` together).
        y : array-like of shape (n_samples,) or (n_samples, n_features_y)
            The variable ``Y``, passed unchanged to both fits.
        Z : array-like of shape (n_samples, n_features_z) or (n_samples,), default=None
            The conditioning set, paired with ``X`` row by row; required unless
            ``conditioning_columns`` is set.

        Returns
        -------
        self : ConditionalMutualInformationEstimator
            The fitted estimator.
        """
        self._validate_params()
        template = self._template()
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None: "
                "fit(X, y, Z=Z) estimates I(X; y | Z)."
            )
        X, Z = self._split_columns(X, Z, reset=True)
        seed = template.random_state
        if not isinstance(seed, Integral):
            seed = int(check_random_state(seed).randint(0, 2**31 - 1))
        self.random_state_ = int(seed)
        joint = clone(template).set_params(random_state=self.random_state_)
        conditioning = clone(template).set_params(random_state=self.random_state_)
        XZ = np.hstack([X, Z])
        _fit_term(joint, XZ, y, "joint_ (I((X, Z); y))")
        _fit_term(conditioning, Z, y, "conditioning_ (I(Z; y))")
        self.joint_, self.conditioning_ = joint, conditioning
        # The split both fits drew (same seed, same row count: the same rows).
        self.test_indices_ = joint._split(len(X)).test.copy()
        self.mi_ = float(joint.mi_ - conditioning.mi_)
        self.converged_ = bool(joint.converged_ and conditioning.converged_)
        rows = self.test_indices_
        self.mi_std_, self.mi_ci_ = self._paired_jackknife(
            XZ[rows], Z[rows], _safe_indexing(y, rows), self.mi_
        )
        return self

    def _paired_jackknife(self, XZ, Z, y, value: float) -> tuple[float, tuple[float, float]]:
        """Delete-a-group jackknife of the difference, both terms on the same rows."""
        n_rows = len(Z)
        n_groups = min(JACKKNIFE_GROUPS, n_rows // 2)
        if n_groups < 2:
            return math.nan, (math.nan, math.nan)
        group_of_row = np.arange(n_rows) % n_groups
        replicates = []
        with warnings.catch_warnings():
            # A fixed eval_batch_size above the rows left warns on every replicate; the
            # replicates only feed the spread, so their warnings are not the user's.
            warnings.simplefilter("ignore")
            for group in range(n_groups):
                kept = np.flatnonzero(group_of_row != group)
                y_kept = _safe_indexing(y, kept)
                replicates.append(
                    self.joint_.score(XZ[kept], y_kept) - self.conditioning_.score(Z[kept], y_kept)
                )
        replicates = np.asarray(replicates, dtype=float)
        variance = (n_groups - 1) / n_groups * np.sum((replicates - replicates.mean()) ** 2)
        std_error = math.sqrt(float(variance))
        quantile = float(stats.t.ppf(0.975, n_groups - 1))
        return std_error, (value - quantile * std_error, value + quantile * std_error)

    def evaluate(self, X, y, Z=None) -> tuple[float, float, tuple[float, float]]:
        """The estimate on new rows with its paired jackknife error and 95% interval.

        The same computation as ``mi_``, ``mi_std_`` and ``mi_ci_``, on the rows given
        (the estimate is :meth:`score`'s).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_features_y)
        Z : array-like of shape (n_samples, n_features_z), default=None
            Required unless ``conditioning_columns`` is set.

        Returns
        -------
        mi : float
            The estimate of ``I(X; Y | Z)``, nats.
        std_error : float
            Its paired delete-a-group jackknife standard error (NaN below 4 rows).
        ci : tuple of float
            The 95% interval, as ``mi_ci_``.

        Examples
        --------
        >>> from sk_mlcpc import ConditionalMutualInformationEstimator, MutualInformationEstimator
        >>> from sk_mlcpc.datasets import make_conditional_gaussians
        >>> X, Y, Z, _ = make_conditional_gaussians(1500, 1, n_features_z=2, random_state=0)
        >>> template = MutualInformationEstimator(
        ...     hidden_layer_sizes=(16,), max_epochs=3, random_state=0
        ... )
        >>> est = ConditionalMutualInformationEstimator(template)
        >>> est = est.fit(X[:1000], Y[:1000], Z=Z[:1000])
        >>> mi, std_error, (low, high) = est.evaluate(X[1000:], Y[1000:], Z=Z[1000:])
        >>> bool(low < mi < high), mi == est.score(X[1000:], Y[1000:], Z=Z[1000:])
        (True, True)
        """
        XZ, Z, value = self._difference(X, y, Z)
        std_error, interval = self._paired_jackknife(XZ, Z, y, value)
        return value, std_error, interval

    def _difference(self, X, y, Z) -> tuple[np.ndarray, np.ndarray, float]:
        """``[X, Z]``, ``Z`` and ``joint_.score([X, Z], y) - conditioning_.score(Z, y)``."""
        check_is_fitted(self)
        X, Z = self._split_columns(X, Z, reset=False)
        XZ = np.hstack([X, Z])
        return XZ, Z, float(self.joint_.score(XZ, y) - self.conditioning_.score(Z, y))

    def score(self, X, y, Z=None) -> float:
        """The estimate of ``I(X; Y | Z)`` on new rows, in nats (higher is more dependence).

        ``joint_.score([X, Z], y) - conditioning_.score(Z, y)``, each with the batch rules
        of :meth:`MutualInformationEstimator.score`, on the same rows.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_features_y)
        Z : array-like of shape (n_samples, n_features_z), default=None
            Required unless ``conditioning_columns`` is set.

        Returns
        -------
        score : float
        """
        return self._difference(X, y, Z)[2]
