"""Per-column preprocessing that does not depend on the data's units or on ties."""

from __future__ import annotations

from numbers import Integral

import numpy as np
from scipy.special import ndtri
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted, validate_data

__all__ = ["NormalQuantileTransformer"]


class NormalQuantileTransformer(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Map each column to a standard normal through its empirical quantiles, in any units.

    Like :class:`sklearn.preprocessing.QuantileTransformer` with
    ``output_distribution="normal"``, with two differences that matter for estimating
    mutual information (which no per-column monotone map changes):

    - **No absolute tolerance.** scikit-learn maps every value within ``1e-7`` of the
      training minimum or maximum to the extreme quantile, so a column measured in units
      where its spread is ``1e-7`` collapses (a 2-d Gaussian with MI 0.8, scaled by
      ``1e-9``, read 0 nats). Here only the order of the values matters: the same data in
      any units (``1e-12`` to ``1e12``) gives the same output.
    - **Ties at the extremes get their mid-rank.** scikit-learn sends all the rows at the
      lowest or highest level of a discrete column to about -5.2 and +5.2 standard
      deviations; here every level, the extreme ones included, maps to the normal
      quantile of its mid-rank (three equally likely levels: -0.97, 0, 0.97).

    Values outside the training range map to the outermost quantile,
    ``ndtri(0.5 / n_quantiles_)`` (-3.29 at 1,000 quantiles) and its mirror.

    Parameters
    ----------
    n_quantiles : int, default=1000
        Quantiles kept per column (at most the number of rows fitted).
    subsample : int, default=10_000
        Rows used to compute the quantiles (a random subset above this many).
    random_state : int, RandomState instance or None, default=None
        Seed of the subset.

    Attributes
    ----------
    n_quantiles_ : int
        Quantiles kept.
    quantiles_ : ndarray of shape (n_quantiles_, n_features_in_)
        The columns' values at the ``references_`` levels.
    references_ : ndarray of shape (n_quantiles_,)
        The levels, evenly spaced from 0 to 1.
    n_features_in_ : int
        Columns seen in :meth:`fit`.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_mlcpc._engine.preprocessing import NormalQuantileTransformer
    >>> X = np.random.default_rng(0).lognormal(size=(1000, 2))
    >>> a = NormalQuantileTransformer().fit_transform(X)
    >>> b = NormalQuantileTransformer().fit_transform(X * 1e-12)
    >>> bool(np.allclose(a, b)), bool(abs(a.mean()) < 0.01)
    (True, True)
    >>> levels = np.repeat([[0.0], [1.0], [2.0]], 100, axis=0)
    >>> np.round(np.unique(NormalQuantileTransformer().fit_transform(levels)), 2)
    array([-0.97,  0.  ,  0.97])
    """

    _parameter_constraints: dict = {  # noqa: RUF012 (scikit-learn's convention)
        "n_quantiles": [Interval(Integral, 2, None, closed="left")],
        "subsample": [Interval(Integral, 2, None, closed="left")],
        "random_state": ["random_state"],
    }

    def __init__(self, *, n_quantiles=1000, subsample=10_000, random_state=None):
        self.n_quantiles = n_quantiles
        self.subsample = subsample
        self.random_state = random_state

    def fit(self, X, y=None):
        """Compute each column's quantiles.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : None
            Ignored.

        Returns
        -------
        self : NormalQuantileTransformer
        """
        self._validate_params()
        X = validate_data(self, X, dtype=np.float64, ensure_min_samples=2)
        if len(X) > self.subsample:
            rows = check_random_state(self.random_state).choice(
                len(X), size=self.subsample, replace=False
            )
            X = X[np.sort(rows)]
        self.n_quantiles_ = int(max(2, min(self.n_quantiles, len(X))))
        self.references_ = np.linspace(0.0, 1.0, self.n_quantiles_)
        self.quantiles_ = np.percentile(X, 100 * self.references_, axis=0)
        # Percentiles are interpolated in floating point: keep them non-decreasing.
        self.quantiles_ = np.maximum.accumulate(self.quantiles_, axis=0)
        return self

    def transform(self, X):
        """Map each column to a standard normal.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        X_new : ndarray of shape (n_samples, n_features)
        """
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False, copy=True)
        references = self.references_
        edge = 0.5 / self.n_quantiles_
        for column in range(X.shape[1]):
            values, quantiles = X[:, column], self.quantiles_[:, column]
            # Interpolating forwards lands on the last of tied quantiles, backwards on the
            # first: their mean is the mid-rank of a tied level, the extreme ones included.
            forwards = np.interp(values, quantiles, references)
            backwards = -np.interp(-values, -quantiles[::-1], -references[::-1])
            levels = np.clip(0.5 * (forwards + backwards), edge, 1.0 - edge)
            X[:, column] = ndtri(levels)
        return X
