"""Critics: torch modules that score every pair ``(x_i, y_j)`` of a batch.

A critic's ``forward(x, y)`` takes ``x`` of shape ``(n, p)`` and ``y`` of shape ``(m, q)``
and returns the ``n x m`` matrix of log-domain scores ``f(x_i, y_j)`` that every bound in
:mod:`sk_mlcpc.bounds` consumes; ``pointwise(x, y)`` scores only the aligned pairs
``f(x_i, y_i)``. Separable and bilinear critics also expose ``embed_x`` / ``embed_y``.

For mutual-information estimation the optimal critic is the log density ratio
``log p(y | x) - log p(y)`` (up to a constant, or a per-row function of ``x`` for CPC).
For correlated Gaussians it contains terms in ``x`` alone and ``y`` alone
(``|y|^2 / 2``, ``rho^2 |x|^2 / 2 (1 - rho^2)``) that a plain inner product ``g(x) . h(y)``
can only mimic by spending embedding dimensions on them. ``SeparableCritic(...,
marginal_terms=True)`` adds them explicitly: ``g(x) . h(y) + a(x) + b(y)``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass
from numbers import Real

import numpy as np
import torch
from scipy import special
from sklearn.covariance import ledoit_wolf_shrinkage, oas
from torch import nn

from sk_mlcpc._math.blockwise import separable_parts
from sk_mlcpc._nn.encoders import ACTIVATIONS, make_mlp

__all__ = [
    "BASELINES",
    "CRITICS",
    "BilinearCritic",
    "ConcatCritic",
    "GaussianBaselineCritic",
    "SeparableCritic",
    "make_critic",
]


class SeparableCritic(nn.Module):
    """Inner-product critic ``f(x, y) = g(x) . h(y)`` with optional marginal terms.

    Parameters
    ----------
    x_features, y_features : int
        Widths of ``x`` and ``y``.
    embedding_dim : int, default=32
        Width of ``g(x)`` and ``h(y)``.
    hidden_layer_sizes : sequence of int, default=(256, 256)
        Hidden widths of both encoder MLPs.
    activation : str, default="relu"
        Hidden activation, see :data:`sk_mlcpc.encoders.ACTIVATIONS`.
    marginal_terms : bool, default=False
        Add scalar per-side terms, ``f = g(x) . h(y) + a(x) + b(y)``; ``a`` and ``b`` are
        one extra output of each encoder. ``a(x)`` cancels out of CPC (a per-row
        constant) but not out of ML-CPC, NWJ or DV.

    Examples
    --------
    >>> import torch
    >>> from sk_mlcpc.critics import SeparableCritic
    >>> critic = SeparableCritic(3, 2, embedding_dim=4, hidden_layer_sizes=(8,))
    >>> critic(torch.randn(5, 3), torch.randn(7, 2)).shape
    torch.Size([5, 7])
    """

    separable = True

    def __init__(
        self,
        x_features: int,
        y_features: int,
        embedding_dim: int = 32,
        hidden_layer_sizes: Sequence[int] = (256, 256),
        activation: str = "relu",
        marginal_terms: bool = False,
    ) -> None:
        super().__init__()
        self.embedding_dim = int(embedding_dim)
        self.marginal_terms = bool(marginal_terms)
        width = self.embedding_dim + int(self.marginal_terms)
        self.x_encoder = make_mlp(x_features, width, hidden_layer_sizes, activation)
        self.y_encoder = make_mlp(y_features, width, hidden_layer_sizes, activation)

    def _encode(
        self, encoder: nn.Module, inputs: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        out = encoder(inputs)
        if self.marginal_terms:
            return out[:, : self.embedding_dim], out[:, self.embedding_dim]
        return out, None

    def embed_x(self, x: torch.Tensor) -> torch.Tensor:
        """The ``x``-side embedding ``g(x)``, shape ``(n, embedding_dim)``."""
        return self._encode(self.x_encoder, x)[0]

    def embed_y(self, y: torch.Tensor) -> torch.Tensor:
        """The ``y``-side embedding ``h(y)``, shape ``(m, embedding_dim)``."""
        return self._encode(self.y_encoder, y)[0]

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        gx, ax = self._encode(self.x_encoder, x)
        hy, by = self._encode(self.y_encoder, y)
        scores = gx @ hy.T  # (n, m)
        if self.marginal_terms:
            scores = scores + ax[:, None] + by[None, :]
        return scores

    def pointwise(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Scores of the aligned pairs ``f(x_i, y_i)``, shape ``(n,)``."""
        gx, ax = self._encode(self.x_encoder, x)
        hy, by = self._encode(self.y_encoder, y)
        scores = (gx * hy).sum(dim=1)
        if self.marginal_terms:
            scores = scores + ax + by
        return scores


class BilinearCritic(nn.Module):
    """Bilinear critic ``f(x, y) = g(x)^T W h(y)`` with a learned square matrix ``W``.

    Parameters
    ----------
    x_features, y_features : int
        Widths of ``x`` and ``y``.
    embedding_dim : int, default=32
        Width of ``g(x)`` and ``h(y)``.
    hidden_layer_sizes : sequence of int, default=(256, 256)
        Hidden widths of both encoder MLPs.
    activation : str, default="relu"
        Hidden activation.

    Examples
    --------
    >>> import torch
    >>> from sk_mlcpc.critics import BilinearCritic
    >>> critic = BilinearCritic(3, 2, embedding_dim=4, hidden_layer_sizes=(8,))
    >>> critic(torch.randn(5, 3), torch.randn(7, 2)).shape
    torch.Size([5, 7])
    """

    separable = True

    def __init__(
        self,
        x_features: int,
        y_features: int,
        embedding_dim: int = 32,
        hidden_layer_sizes: Sequence[int] = (256, 256),
        activation: str = "relu",
    ) -> None:
        super().__init__()
        self.x_encoder = make_mlp(x_features, embedding_dim, hidden_layer_sizes, activation)
        self.y_encoder = make_mlp(y_features, embedding_dim, hidden_layer_sizes, activation)
        self.weight = nn.Parameter(torch.eye(int(embedding_dim)))

    def embed_x(self, x: torch.Tensor) -> torch.Tensor:
        """The ``x``-side embedding ``g(x) W``, shape ``(n, embedding_dim)``."""
        return self.x_encoder(x) @ self.weight

    def embed_y(self, y: torch.Tensor) -> torch.Tensor:
        """The ``y``-side embedding ``h(y)``, shape ``(m, embedding_dim)``."""
        return self.y_encoder(y)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.embed_x(x) @ self.embed_y(y).T

    def pointwise(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Scores of the aligned pairs ``f(x_i, y_i)``, shape ``(n,)``."""
        return (self.embed_x(x) * self.embed_y(y)).sum(dim=1)


class ConcatCritic(nn.Module):
    """Joint critic: one MLP applied to the concatenation ``[x_i, y_j]`` of every pair.

    The first layer is split as ``W [x; y] = W_x x + W_y y`` so that it costs
    ``O((n + m) p h)`` instead of ``O(n m p h)``; the remaining layers run on all
    ``n * m`` pairs.

    Parameters
    ----------
    x_features, y_features : int
        Widths of ``x`` and ``y``.
    hidden_layer_sizes : sequence of int, default=(256, 256)
        Hidden widths, at least one layer.
    activation : str, default="relu"
        Hidden activation.

    Examples
    --------
    >>> import torch
    >>> from sk_mlcpc.critics import ConcatCritic
    >>> critic = ConcatCritic(3, 2, hidden_layer_sizes=(8, 8))
    >>> critic(torch.randn(5, 3), torch.randn(7, 2)).shape
    torch.Size([5, 7])
    """

    separable = False

    def __init__(
        self,
        x_features: int,
        y_features: int,
        hidden_layer_sizes: Sequence[int] = (256, 256),
        activation: str = "relu",
    ) -> None:
        super().__init__()
        hidden_layer_sizes = tuple(hidden_layer_sizes)
        if not hidden_layer_sizes:
            raise ValueError("ConcatCritic needs at least one hidden layer.")
        if activation not in ACTIVATIONS:
            make_mlp(1, 1, (), activation)  # raises the listing error
        first = int(hidden_layer_sizes[0])
        self.x_input = nn.Linear(x_features, first)
        self.y_input = nn.Linear(y_features, first, bias=False)
        self.activation = ACTIVATIONS[activation]()
        self.head = make_mlp(first, 1, hidden_layer_sizes[1:], activation)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        hidden = self.x_input(x)[:, None, :] + self.y_input(y)[None, :, :]  # (n, m, h)
        return self.head(self.activation(hidden)).squeeze(-1)

    def pointwise(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Scores of the aligned pairs ``f(x_i, y_i)``, shape ``(n,)``."""
        hidden = self.x_input(x) + self.y_input(y)
        return self.head(self.activation(hidden)).squeeze(-1)


class GaussianBaselineCritic(nn.Module):
    """A critic plus the log density ratio of a Gaussian (or Student-t) model fitted in closed form.

    ``f(x, y) = network(x, y) + s * q(x, y) + c``, where ``q`` is the log density ratio
    ``log p(y | x) - log p(y)`` of the jointly Gaussian model whose covariance is that of
    the rows passed to :meth:`fit_baseline`: a quadratic form ``x^T W y + x^T P x +
    y^T Q y`` of the centred, standardised inputs. ``W``, ``P`` and ``Q`` are fixed
    buffers (fitted, not trained); the scale ``s`` (1 at first), the offset ``c`` and the
    wrapped network are trained. The wrapped network's last layer starts at zero on the
    ``y`` side, so the untrained critic is the Gaussian one and the network learns what
    the Gaussian model misses.

    For data whose dependence is close to Gaussian after a per-column transform (the
    estimators' default ``preprocessing="quantile"`` maps every column to a normal), ``q``
    is close to the optimal critic, which a network trained on a few thousand rows in
    many dimensions finds only roughly. Every critic gives a valid bound, so the baseline
    changes how tight the estimate is, never whether it is a bound.

    Parameters
    ----------
    critic : torch.nn.Module
        The trained part: a :class:`SeparableCritic`, :class:`BilinearCritic` or
        :class:`ConcatCritic` (any module with ``forward`` and ``pointwise``).
        A copy is wrapped (its last ``y``-side layer zeroed, see above); the module
        passed in is left unchanged.
    x_features, y_features : int
        Widths of ``x`` and ``y``.
    cross_structure : {"dense", "sparse", "low_rank"}, default="dense"
        How the correlations between ``x`` and ``y`` columns are regularised.
        ``"dense"`` shrinks them with the rest (``shrinkage``). ``"sparse"``
        soft-thresholds each sample cross-correlation at the universal threshold
        ``sqrt(2 log(p q) / n)`` (a few informative pairs among many columns: the
        dense model spreads its weight over every noisy pair), then scales the cross
        block down if needed to keep the correlation matrix positive definite.
        ``"low_rank"`` keeps the canonical pairs (singular values of the whitened cross
        block) above the noise edge of Wachter's law, ``sqrt(c_x (1 - c_y)) +
        sqrt(c_y (1 - c_x))`` with ``c = columns / rows``, each pulled down to
        ``sqrt(s^2 - edge^2)`` and held below 0.999 (a dependence through a few
        directions spread over every column).
    shrinkage : {"ledoit_wolf", "oas"} or float, default="ledoit_wolf"
        Weight of the identity in the correlation matrix the Gaussian model uses,
        ``(1 - shrinkage) R + shrinkage I``. The sample correlations of many columns
        from few rows are noisy, and the quadratic form's coefficients involve inverse
        covariances, which amplify the noise: with 200 columns a side and 700 rows a
        fixed 10% gives a Gaussian critic worth -23 nats on held-out rows.
        ``"ledoit_wolf"`` and ``"oas"`` estimate the weight from the rows passed to
        :meth:`fit_baseline` (Ledoit-Wolf's and the oracle approximating shrinkage
        estimators of :mod:`sklearn.covariance`, applied to the standardised rows); it
        grows with the ratio of columns to rows (at least 0.001, so that repeated columns
        keep the matrix invertible). A number in [0, 1] fixes it.
    tail_df : float or None, default=None
        None: the Gaussian model above. A number ``nu > 0``: a Student-t copula with
        ``nu`` degrees of freedom instead, for dependence with heavy joint tails (a
        shared scale, such as volatility, that makes every column of a row large at
        once, which no Gaussian copula has). Each standardised column ``z`` is mapped to
        the t score of the same rank, ``F_nu^{-1}(Phi(z))`` (the inputs are taken to be
        normal scores, as the default quantile preprocessing makes them), the scatter
        matrix of the t scores is fitted by the EM iterations of the multivariate t
        likelihood and shrunk like the correlations above, and ``q`` is the log density
        ratio of that multivariate t law: ``-(nu + p + q)/2 log(1 + Q_xy / nu)
        + (nu + p)/2 log(1 + Q_x / nu) + (nu + q)/2 log(1 + Q_y / nu)`` plus its
        constant, with ``Q`` the quadratic forms of the joint and marginal scatter
        matrices. It is not separable (:meth:`separable_parts` refuses it); its scores
        cost ``O(n m)`` beyond the ``O(n m d)`` matrix product. Needs
        ``cross_structure="dense"``.

    Attributes
    ----------
    shrinkage_ : float
        The weight used by the last :meth:`fit_baseline` (NaN before).

    separable : bool
        Whether the wrapped critic is separable and the model Gaussian; then the
        quadratic form is folded into its factors (:meth:`separable_parts`), so
        blockwise evaluation still applies.

    Examples
    --------
    >>> import torch
    >>> from sk_mlcpc.bounds import cpc
    >>> from sk_mlcpc.critics import GaussianBaselineCritic, SeparableCritic
    >>> _ = torch.manual_seed(0)
    >>> x = torch.randn(4000, 2)
    >>> y = 0.9 * x + (1 - 0.9**2) ** 0.5 * torch.randn(4000, 2)  # I(X; Y) = 1.66
    >>> critic = GaussianBaselineCritic(SeparableCritic(2, 2, 8, (16,)), 2, 2, shrinkage=0.0)
    >>> critic.fit_baseline(x[:2000], y[:2000])  # untrained network: the Gaussian critic
    >>> with torch.no_grad():
    ...     print(round(float(cpc(critic(x[2000:], y[2000:]))), 2))
    1.64
    >>> heavy = GaussianBaselineCritic(SeparableCritic(2, 2, 8, (16,)), 2, 2, tail_df=4.0)
    >>> heavy.fit_baseline(x[:2000], y[:2000])  # a Student-t copula with 4 degrees of freedom
    >>> heavy.separable, heavy.baseline_scores(x[:5], y[:3]).shape
    (False, torch.Size([5, 3]))
    """

    def __init__(
        self,
        critic: nn.Module,
        x_features: int,
        y_features: int,
        shrinkage: float | str = "ledoit_wolf",
        cross_structure: str = "dense",
        tail_df: float | None = None,
    ) -> None:
        super().__init__()
        if tail_df is not None and (
            isinstance(tail_df, bool) or not isinstance(tail_df, Real) or not tail_df > 0
        ):
            raise ValueError(f"tail_df must be a positive number or None, got {tail_df!r}.")
        if tail_df is not None and cross_structure != "dense":
            raise ValueError(
                "tail_df needs cross_structure='dense': the Student-t model has no sparse form."
            )
        self.tail_df = None if tail_df is None else float(tail_df)
        if cross_structure not in CROSS_STRUCTURES:
            raise ValueError(
                f"cross_structure must be one of {CROSS_STRUCTURES}, got {cross_structure!r}."
            )
        self.cross_structure = cross_structure
        if isinstance(shrinkage, str):
            if shrinkage not in _SHRINKAGE_ESTIMATORS:
                raise ValueError(
                    f"shrinkage must be a number in [0, 1] or one of "
                    f"{sorted(_SHRINKAGE_ESTIMATORS)}, got {shrinkage!r}."
                )
        elif isinstance(shrinkage, bool) or not isinstance(shrinkage, Real):
            raise TypeError(
                f"shrinkage must be a real number or 'ledoit_wolf' / 'oas', got {shrinkage!r}."
            )
        elif not 0.0 <= shrinkage <= 1.0:
            raise ValueError(f"shrinkage must lie in [0, 1], got {shrinkage}.")
        for name, width in (("x_features", x_features), ("y_features", y_features)):
            if isinstance(width, bool) or not isinstance(width, int | np.integer) or width < 1:
                raise ValueError(f"{name} must be a positive integer, got {width!r}.")
        if not isinstance(critic, nn.Module):
            raise TypeError(f"critic must be a torch.nn.Module, got {type(critic).__name__}.")
        widths = _input_widths(critic)
        if widths is not None and widths != (x_features, y_features):
            raise ValueError(
                f"The wrapped {type(critic).__name__} takes x and y of {widths[0]} and "
                f"{widths[1]} columns, but x_features={x_features} and "
                f"y_features={y_features} were given; they must match."
            )
        # The user's module stays as it was: its last y-side layer is zeroed on a copy.
        critic = copy.deepcopy(critic)
        self.critic = critic
        self.shrinkage = shrinkage if isinstance(shrinkage, str) else float(shrinkage)
        self.shrinkage_ = float("nan")
        self.register_buffer("x_mean", torch.zeros(x_features))
        self.register_buffer("y_mean", torch.zeros(y_features))
        self.register_buffer("x_inv_std", torch.ones(x_features))
        self.register_buffer("y_inv_std", torch.ones(y_features))
        self.register_buffer("cross", torch.zeros(x_features, y_features))
        self.register_buffer("x_quadratic", torch.zeros(x_features, x_features))
        self.register_buffer("y_quadratic", torch.zeros(y_features, y_features))
        if self.tail_df is not None:
            width = x_features + y_features
            self.register_buffer("t_table", _normal_to_t_table(self.tail_df))
            self.register_buffer("t_precision", torch.eye(width))
            self.register_buffer("t_x_precision", torch.eye(x_features))
            self.register_buffer("t_y_precision", torch.eye(y_features))
        self.log_scale = nn.Parameter(torch.zeros(()))
        self.offset = nn.Parameter(torch.zeros(()))
        y_side = getattr(critic, "y_encoder", getattr(critic, "head", None))
        if not isinstance(y_side, nn.Module) or not callable(getattr(critic, "pointwise", None)):
            raise TypeError(
                "GaussianBaselineCritic wraps a critic with pointwise() and a y_encoder (or a "
                "joint head), such as SeparableCritic or ConcatCritic; got "
                f"{type(critic).__name__}."
            )
        last_layer = _last_linear(y_side)
        with torch.no_grad():
            last_layer.weight.zero_()
            if last_layer.bias is not None:
                last_layer.bias.zero_()

    @property
    def separable(self) -> bool:  # type: ignore[override]
        return self.tail_df is None and bool(getattr(self.critic, "separable", False))

    @torch.no_grad()
    def fit_baseline(self, x: torch.Tensor | np.ndarray, y: torch.Tensor | np.ndarray) -> None:
        """Fit the Gaussian model's mean, scale and quadratic form to rows ``(x, y)``.

        Computed in float64 on the CPU (not every accelerator has float64) from the
        rows' means and (shrunk) correlation matrix; a constant column gets unit scale
        and no correlation, so it drops out.

        Parameters
        ----------
        x : torch.Tensor or ndarray of shape (n, p)
        y : torch.Tensor or ndarray of shape (n, q)

        Raises
        ------
        ValueError
            When the widths or row counts do not match, or a value is NaN or infinite
            (naming the first such row).
        """
        self._fit_from(_moments(*self._checked_rows(x, y), self.shrinkage))

    @staticmethod
    @torch.no_grad()
    def fit_baselines(
        critics: Sequence[GaussianBaselineCritic],
        x: torch.Tensor | np.ndarray,
        y: torch.Tensor | np.ndarray,
    ) -> None:
        """:meth:`fit_baseline` of several critics on the same rows, the rows' moments
        (means, correlations, estimated shrinkage) computed once for all of them.

        The critics must share their widths and ``shrinkage``; they may differ in
        ``cross_structure``.

        Parameters
        ----------
        critics : sequence of GaussianBaselineCritic
        x : torch.Tensor or ndarray of shape (n, p)
        y : torch.Tensor or ndarray of shape (n, q)

        Examples
        --------
        >>> import torch
        >>> from sk_mlcpc.critics import GaussianBaselineCritic, SeparableCritic
        >>> network = SeparableCritic(3, 3, 4, (8,))
        >>> critics = [
        ...     GaussianBaselineCritic(network, 3, 3, cross_structure=structure)
        ...     for structure in ("dense", "sparse")
        ... ]
        >>> x = torch.randn(500, 3)
        >>> GaussianBaselineCritic.fit_baselines(critics, x, x + torch.randn(500, 3))
        >>> [round(critic.shrinkage_, 3) == round(critics[0].shrinkage_, 3) for critic in critics]
        [True, True]
        """
        if not critics:
            return
        first = critics[0]
        for critic in critics[1:]:
            same = (len(critic.x_mean), len(critic.y_mean), critic.shrinkage) == (
                len(first.x_mean),
                len(first.y_mean),
                first.shrinkage,
            )
            if not same:
                raise ValueError(
                    "fit_baselines needs critics of the same widths and shrinkage; fit the "
                    "others with fit_baseline."
                )
        moments = _moments(*first._checked_rows(x, y), first.shrinkage)
        for critic in critics:
            critic._fit_from(moments)

    def _checked_rows(self, x, y) -> tuple[torch.Tensor, int]:
        """``x`` and ``y`` side by side in float64 on the CPU, and the width of ``x``."""
        x = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
        y = y if isinstance(y, torch.Tensor) else torch.as_tensor(np.asarray(y))
        expected = (len(self.x_mean), len(self.y_mean))
        if x.ndim != 2 or y.ndim != 2 or (x.shape[1], y.shape[1]) != expected:
            raise ValueError(
                f"fit_baseline needs x and y with {expected[0]} and {expected[1]} columns, "
                f"got shapes {tuple(x.shape)} and {tuple(y.shape)}."
            )
        if len(x) != len(y) or len(x) < 2:
            raise ValueError(
                f"fit_baseline needs at least 2 paired rows, got {len(x)} and {len(y)}."
            )
        rows = torch.cat([x, y], dim=1).to("cpu", torch.float64)
        finite = torch.isfinite(rows).all(dim=1)
        if not bool(finite.all()):
            first = int(torch.nonzero(~finite)[0, 0])
            raise ValueError(f"fit_baseline needs finite rows; row {first} holds NaN or infinity.")
        return rows, x.shape[1]

    def _fit_from(self, moments: _Moments) -> None:
        """Set the buffers from the rows' moments, with this critic's cross structure."""
        n_x, shrinkage = moments.n_x, moments.shrinkage
        self.shrinkage_ = float(shrinkage)
        correlation = moments.correlation
        eye = torch.eye(len(correlation), dtype=correlation.dtype)
        shrunk = (1 - shrinkage) * correlation + shrinkage * eye
        # A zero-variance column has zero correlations; its diagonal must stay 1.
        shrunk = shrunk * (1 - eye) + eye
        r_xx, r_xy, r_yy = shrunk[:n_x, :n_x], shrunk[:n_x, n_x:], shrunk[n_x:, n_x:]
        if self.cross_structure == "sparse":
            r_xy = _thresholded_cross(correlation[:n_x, n_x:], r_xx, r_yy, moments.n_rows)
        elif self.cross_structure == "low_rank":
            r_xy = _low_rank_cross(correlation[:n_x, n_x:], r_xx, r_yy, moments.n_rows)
        regression = torch.linalg.solve(r_xx, r_xy)  # E[y | x] = x @ regression
        residual = r_yy - r_xy.T @ regression
        residual_inv = torch.linalg.inv(residual)
        cross = regression @ residual_inv
        mean, std = moments.mean, moments.std
        self.x_mean.copy_(mean[:n_x])
        self.y_mean.copy_(mean[n_x:])
        self.x_inv_std.copy_(1 / std[:n_x])
        self.y_inv_std.copy_(1 / std[n_x:])
        self.cross.copy_(cross)
        self.x_quadratic.copy_(-0.5 * cross @ regression.T)
        self.y_quadratic.copy_(-0.5 * (residual_inv - torch.linalg.inv(r_yy)))
        log_det = torch.linalg.slogdet(r_yy)[1] - torch.linalg.slogdet(residual)[1]
        self.offset.copy_(0.5 * log_det)
        if self.tail_df is not None:
            self._fit_student_t(moments)

    def _fit_student_t(self, moments: _Moments) -> None:
        """The Student-t copula: the scatter matrix of the rows mapped to t scores, by
        the EM iterations of the multivariate t likelihood at ``tail_df`` (each row
        weighted by ``(nu + d) / (nu + Q_i)``, which tames the rows the heavy tails make
        extreme), shrunk towards the identity with the Gaussian model's weight."""
        nu, n_x = self.tail_df, moments.n_x
        # In NumPy: float64 on the CPU, and no tensor reads while the EM iterates.
        scores = _interpolate(moments.standard, self.t_table.to(torch.float64)).numpy()
        width = scores.shape[1]
        eye = np.eye(width)
        shrinkage = moments.shrinkage
        scatter = (1 - shrinkage) * _correlation_of(scores.T @ scores / len(scores))
        scatter = scatter + shrinkage * eye
        for _ in range(_T_EM_ITERATIONS):
            quadratic = ((scores @ np.linalg.inv(scatter)) * scores).sum(axis=1)
            weights = (nu + width) / (nu + quadratic)
            weighted = _correlation_of((scores * weights[:, None]).T @ scores / len(scores))
            updated = (1 - shrinkage) * weighted + shrinkage * eye
            change = np.abs(updated - scatter).max()
            scatter = updated
            if change < _T_EM_TOLERANCE:
                break
        scatter = torch.as_tensor(scatter)
        r_xx, r_yy = scatter[:n_x, :n_x], scatter[n_x:, n_x:]
        self.t_precision.copy_(torch.linalg.inv(scatter))
        self.t_x_precision.copy_(torch.linalg.inv(r_xx))
        self.t_y_precision.copy_(torch.linalg.inv(r_yy))
        n_y = width - n_x
        log_det = (
            torch.linalg.slogdet(scatter)[1]
            - torch.linalg.slogdet(r_xx)[1]
            - torch.linalg.slogdet(r_yy)[1]
        )
        constant = (
            math.lgamma((nu + width) / 2)
            + math.lgamma(nu / 2)
            - math.lgamma((nu + n_x) / 2)
            - math.lgamma((nu + n_y) / 2)
        )
        self.offset.copy_(constant - 0.5 * log_det)

    def baseline_scores(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The closed-form part alone, ``s * q(x_i, y_j) + c`` for every pair, ``(n, m)``.

        Its bound on held-out rows says whether the Gaussian model helps at all: a
        critic whose bound is below 0 is worse than a constant one.

        Examples
        --------
        >>> import torch
        >>> from sk_mlcpc.critics import GaussianBaselineCritic, SeparableCritic
        >>> critic = GaussianBaselineCritic(SeparableCritic(2, 2, 4, (8,)), 2, 2)
        >>> x = torch.randn(100, 2)
        >>> critic.fit_baseline(x, x + torch.randn(100, 2))
        >>> critic.baseline_scores(x[:5], x[:3]).shape
        torch.Size([5, 3])
        """
        if self.tail_df is not None:
            return self._student_t_scores(x, y, pairs=True)
        xs, ys = self._standard(x, y)
        scale = self.log_scale.exp()
        a, b = self._marginals(xs, ys, scale)
        return scale * (xs @ self.cross) @ ys.T + a[:, None] + b[None, :]

    def _student_t_scores(self, x: torch.Tensor, y: torch.Tensor, *, pairs: bool) -> torch.Tensor:
        """``s * q(x, y) + c`` of the Student-t copula, for every pair or aligned pairs.

        ``q`` is the log density ratio of the multivariate t law with ``nu = tail_df``
        and the fitted scatter matrix, at the t scores of the standardised inputs:
        ``-(nu + p + q)/2 log(1 + Q_xy / nu) + (nu + p)/2 log(1 + Q_x / nu)
        + (nu + q)/2 log(1 + Q_y / nu)``, with ``Q`` the quadratic forms of the joint
        and marginal scatter matrices (the log-determinants and gamma terms are the
        starting offset).
        """
        nu, n_x = float(self.tail_df), len(self.x_mean)
        width = self.t_precision.shape[0]
        xs, ys = self._standard(x, y)
        tx, ty = _interpolate(xs, self.t_table), _interpolate(ys, self.t_table)
        precision = self.t_precision
        joint_x = ((tx @ precision[:n_x, :n_x]) * tx).sum(dim=1)
        joint_y = ((ty @ precision[n_x:, n_x:]) * ty).sum(dim=1)
        left = tx @ precision[:n_x, n_x:]
        if pairs:
            joint = joint_x[:, None] + joint_y[None, :] + 2 * left @ ty.T
        else:
            joint = joint_x + joint_y + 2 * (left * ty).sum(dim=1)
        own_x = ((tx @ self.t_x_precision) * tx).sum(dim=1)
        own_y = ((ty @ self.t_y_precision) * ty).sum(dim=1)
        side_x = 0.5 * (nu + n_x) * torch.log1p(own_x / nu)
        side_y = 0.5 * (nu + width - n_x) * torch.log1p(own_y / nu)
        if pairs:
            side_x, side_y = side_x[:, None], side_y[None, :]
        # A joint form is never below 0; rounding can take it a hair under.
        log_ratio = -0.5 * (nu + width) * torch.log1p(joint.clamp(min=0) / nu) + side_x + side_y
        return self.log_scale.exp() * log_ratio + self.offset

    def _standard(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return (x - self.x_mean) * self.x_inv_std, (y - self.y_mean) * self.y_inv_std

    def _marginals(
        self, x: torch.Tensor, y: torch.Tensor, scale: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        a = scale * ((x @ self.x_quadratic) * x).sum(dim=1) + self.offset
        b = scale * ((y @ self.y_quadratic) * y).sum(dim=1)
        return a, b

    def separable_parts(self, x: torch.Tensor, y: torch.Tensor):
        """Factors ``(g, h, a, b)`` with the quadratic form folded in (separable critics).

        Parameters
        ----------
        x : torch.Tensor of shape (n, p)
        y : torch.Tensor of shape (m, q)

        Returns
        -------
        g, h, a, b : torch.Tensor
            ``critic(x, y) == g @ h.T + a[:, None] + b[None, :]``.
        """
        if self.tail_df is not None:
            raise TypeError(
                "A Student-t baseline (tail_df set) is not separable: its log density ratio "
                "is a non-linear function of a pair's quadratic form. Compute its scores "
                "with forward()."
            )
        g, h, a, b = separable_parts(self.critic, x, y)
        xs, ys = self._standard(x, y)
        scale = self.log_scale.exp()
        base_a, base_b = self._marginals(xs, ys, scale)
        g = torch.cat([g, scale * (xs @ self.cross)], dim=1)
        h = torch.cat([h, ys], dim=1)
        a = base_a if a is None else a + base_a
        b = base_b if b is None else b + base_b
        return g, h, a, b

    def embed_x(self, x: torch.Tensor) -> torch.Tensor:
        """The wrapped critic's ``x`` embedding (the network's part only)."""
        return self.critic.embed_x(x)

    def embed_y(self, y: torch.Tensor) -> torch.Tensor:
        """The wrapped critic's ``y`` embedding (the network's part only)."""
        return self.critic.embed_y(y)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.critic(x, y) + self.baseline_scores(x, y)

    def pointwise(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Scores of the aligned pairs ``f(x_i, y_i)``, shape ``(n,)``."""
        if self.tail_df is not None:
            return self.critic.pointwise(x, y) + self._student_t_scores(x, y, pairs=False)
        xs, ys = self._standard(x, y)
        scale = self.log_scale.exp()
        a, b = self._marginals(xs, ys, scale)
        quadratic = scale * ((xs @ self.cross) * ys).sum(dim=1) + a + b
        return self.critic.pointwise(x, y) + quadratic


def _last_linear(module: nn.Module) -> nn.Linear:
    return [layer for layer in module.modules() if isinstance(layer, nn.Linear)][-1]


def _first_linear(module: nn.Module) -> nn.Linear | None:
    return next((layer for layer in module.modules() if isinstance(layer, nn.Linear)), None)


def _input_widths(critic: nn.Module) -> tuple[int, int] | None:
    """The widths of ``x`` and ``y`` a package critic takes (None for other modules)."""
    pairs = (("x_encoder", "y_encoder"), ("x_input", "y_input"))
    for x_name, y_name in pairs:
        x_side, y_side = getattr(critic, x_name, None), getattr(critic, y_name, None)
        if isinstance(x_side, nn.Module) and isinstance(y_side, nn.Module):
            x_layer, y_layer = _first_linear(x_side), _first_linear(y_side)
            if x_layer is not None and y_layer is not None:
                return x_layer.in_features, y_layer.in_features
    return None


@dataclass(frozen=True)
class _Moments:
    """What the Gaussian model takes from its rows: means, scales, the (unshrunk)
    correlation matrix, the shrinkage weight, the rows and the width of ``x``."""

    mean: torch.Tensor
    std: torch.Tensor
    correlation: torch.Tensor
    shrinkage: float
    n_rows: int
    n_x: int
    standard: torch.Tensor


def _moments(rows: torch.Tensor, n_x: int, shrinkage: float | str) -> _Moments:
    mean = rows.mean(dim=0)
    std = rows.std(dim=0)
    std = torch.where(std > 1e-12 * (1 + mean.abs()), std, torch.ones_like(std))
    standard = (rows - mean) / std
    correlation = standard.T @ standard / max(len(rows) - 1, 1)
    if isinstance(shrinkage, str):
        # The floor keeps the matrix invertible when columns repeat one another (an
        # estimated weight can be 0 there).
        shrinkage = max(_SHRINKAGE_ESTIMATORS[shrinkage](standard.numpy()), 1e-3)
    return _Moments(mean, std, correlation, float(shrinkage), len(rows), n_x, standard)


def _correlation_of(scatter: np.ndarray) -> np.ndarray:
    """``scatter`` rescaled to a unit diagonal (a zero-variance column keeps 1 there)."""
    diagonal = np.diagonal(scatter)
    scale = 1 / np.sqrt(np.where(diagonal > 0, diagonal, 1.0))
    correlation = scatter * scale[:, None] * scale[None, :]
    np.fill_diagonal(correlation, 1.0)
    return correlation


#: Normal scores are mapped to t scores through a table on [-8, 8] (a normal score of
#: the default quantile preprocessing stays within +-5.2), linear between its points.
_T_TABLE_RANGE = 8.0
_T_TABLE_POINTS = 3201
_T_EM_ITERATIONS = 50
_T_EM_TOLERANCE = 1e-4


def _normal_to_t_table(df: float) -> torch.Tensor:
    """``F_df^{-1}(Phi(z))`` at the table's points: the monotone map that turns a
    normal score into the Student-t score of the same rank."""
    grid = np.linspace(-_T_TABLE_RANGE, _T_TABLE_RANGE, _T_TABLE_POINTS)
    # Through the lower tail on both sides (the map is odd): no 1 - tiny rounding.
    lower = special.stdtrit(df, special.ndtr(-np.abs(grid)))
    return torch.as_tensor(np.where(grid < 0, lower, -lower), dtype=torch.float32)


def _interpolate(z: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """The table's map at ``z`` (clamped to the table's range), linear between points."""
    step = 2 * _T_TABLE_RANGE / (_T_TABLE_POINTS - 1)
    table = table.to(z.device, z.dtype)
    position = (z.clamp(-_T_TABLE_RANGE, _T_TABLE_RANGE) + _T_TABLE_RANGE) / step
    index = position.floor().clamp(max=_T_TABLE_POINTS - 2)
    fraction = position - index
    index = index.long()
    return table[index] * (1 - fraction) + table[index + 1] * fraction


def _thresholded_cross(
    sample_cross: torch.Tensor, r_xx: torch.Tensor, r_yy: torch.Tensor, n_rows: int
) -> torch.Tensor:
    """The sample cross-correlations soft-thresholded at the universal threshold, scaled
    so that ``[[r_xx, c], [c.T, r_yy]]`` stays positive definite (its whitened cross
    block's largest singular value at most 0.95)."""
    p, q = sample_cross.shape
    threshold = math.sqrt(2 * math.log(max(p * q, 2)) / n_rows)
    cross = torch.sign(sample_cross) * (sample_cross.abs() - threshold).clamp(min=0)
    if not bool(cross.any()):
        return cross
    left = torch.linalg.cholesky(r_xx)
    right = torch.linalg.cholesky(r_yy)
    whitened = torch.linalg.solve_triangular(left, cross, upper=False)
    whitened = torch.linalg.solve_triangular(right, whitened.T, upper=False).T
    largest = float(torch.linalg.matrix_norm(whitened, ord=2))
    return cross * min(1.0, 0.95 / largest)


def _low_rank_cross(
    sample_cross: torch.Tensor, r_xx: torch.Tensor, r_yy: torch.Tensor, n_rows: int
) -> torch.Tensor:
    """The cross-correlations through the canonical pairs that stand out of noise.

    The whitened cross block ``L_x^{-1} C L_y^{-T}`` (Cholesky factors of the shrunk
    blocks) is decomposed into its singular values, the sample canonical correlations.
    Under independence the largest of them sits near the upper edge of Wachter's law,
    ``sqrt(c_x (1 - c_y)) + sqrt(c_y (1 - c_x))`` with ``c = columns / rows``; the pairs
    above the edge are kept, each correlation pulled down to ``sqrt(s^2 - edge^2)`` (the
    noise adds to the squares) and held below 0.999, the rest are dropped. A dependence
    through a few directions spread over every column is then carried by those
    directions only, where the dense model spreads its weight over all the noisy ones.
    """
    p, q = sample_cross.shape
    c_x, c_y = min(p / n_rows, 1.0), min(q / n_rows, 1.0)
    edge = math.sqrt(c_x * (1 - c_y)) + math.sqrt(c_y * (1 - c_x))
    left = torch.linalg.cholesky(r_xx)
    right = torch.linalg.cholesky(r_yy)
    whitened = torch.linalg.solve_triangular(left, sample_cross, upper=False)
    whitened = torch.linalg.solve_triangular(right, whitened.T, upper=False).T
    u, singular, v_t = torch.linalg.svd(whitened, full_matrices=False)
    kept = (singular.square() - edge**2).clamp(min=0).sqrt().clamp(max=0.999)
    return left @ (u * kept) @ v_t @ right.T


def _ledoit_wolf(standard: np.ndarray) -> float:
    return float(ledoit_wolf_shrinkage(standard, assume_centered=True))


def _oas(standard: np.ndarray) -> float:
    return float(oas(standard, assume_centered=True)[1])


#: Shrinkage estimated from the standardised rows, by name.
_SHRINKAGE_ESTIMATORS = {"ledoit_wolf": _ledoit_wolf, "oas": _oas}


#: How a Gaussian baseline regularises the cross-correlations (``cross_structure``).
CROSS_STRUCTURES = ("dense", "sparse", "low_rank")

#: Closed-form critic parts accepted by ``baseline=`` (``None`` for none).
BASELINES = ("auto", "gaussian", "student_t")

#: Critic names accepted by ``critic=`` in the estimators.
CRITICS = ("separable", "separable_additive", "bilinear", "concat")


def make_critic(
    name: str,
    x_features: int,
    y_features: int,
    *,
    embedding_dim: int = 32,
    hidden_layer_sizes: Sequence[int] = (256, 256),
    activation: str = "relu",
) -> nn.Module:
    """Build a critic by name.

    Parameters
    ----------
    name : {"separable", "separable_additive", "bilinear", "concat"}
        ``"separable_additive"`` is :class:`SeparableCritic` with ``marginal_terms=True``.
    x_features, y_features : int
        Widths of ``x`` and ``y``.
    embedding_dim : int, default=32
        Embedding width of separable and bilinear critics (ignored by ``"concat"``).
    hidden_layer_sizes : sequence of int, default=(256, 256)
        Hidden widths.
    activation : str, default="relu"
        Hidden activation.

    Returns
    -------
    critic : torch.nn.Module

    Examples
    --------
    >>> from sk_mlcpc.critics import make_critic
    >>> type(make_critic("concat", 4, 4, hidden_layer_sizes=(8,))).__name__
    'ConcatCritic'
    """
    common = {"hidden_layer_sizes": hidden_layer_sizes, "activation": activation}
    if name == "separable":
        return SeparableCritic(x_features, y_features, embedding_dim, **common)
    if name == "separable_additive":
        return SeparableCritic(x_features, y_features, embedding_dim, marginal_terms=True, **common)
    if name == "bilinear":
        return BilinearCritic(x_features, y_features, embedding_dim, **common)
    if name == "concat":
        return ConcatCritic(x_features, y_features, **common)
    choices = ", ".join(repr(choice) for choice in CRITICS)
    raise ValueError(f"Unknown critic {name!r}. Choose one of: {choices}.")
