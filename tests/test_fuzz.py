"""Property-based fuzzing (hypothesis) of every public bound, estimator, generator and view.

Each generated input must either work or raise a clear, documented error: a ``ValueError``
or ``TypeError`` whose message names the problem (or sklearn's ``NotFittedError``). It must
never hang, crash with another exception type, return a silent NaN, or modify its input.

Inputs: random shapes (1, 2, 3, 5, 7 ... rows, 0 ... 4 columns), dtypes (float16/32/64,
int64, bool, object arrays of numbers with an occasional string cell), NaN/inf at random
cells, constant and duplicated columns, magnitudes from 1e-30 to 1e30, and numpy, list and
pandas containers. The examples are derandomised, so CI runs the same ones every time; the
``slow`` variants (``--runslow``) run several times more. The number of examples run per
target, by outcome, is printed at the end of the module (see ``_report_example_counts``).
"""

from __future__ import annotations

import inspect
import math
import re
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression

from sk_mlcpc import (
    ContrastiveDistillationClassifier,
    ContrastiveEncoder,
    ContrastivePredictiveCoding,
    DivergenceError,
    MutualInformationEstimator,
    datasets,
    views,
)
from sk_mlcpc._math import bounds
from sk_mlcpc.critics import CRITICS

# ---------------------------------------------------------------------------------------
# Budget and bookkeeping
# ---------------------------------------------------------------------------------------

_COMMON = {
    "deadline": None,
    "derandomize": True,
    "database": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
    "print_blob": True,
}

#: Examples run per (target, outcome), over the whole module.
EXAMPLES: Counter[tuple[str, str]] = Counter()


def _record(target: str, outcome: str) -> None:
    EXAMPLES[target, outcome] += 1


class _ExampleReport:
    """A pytest plugin printing :data:`EXAMPLES` in the terminal summary."""

    name = "sk_mlcpc_fuzz_example_report"

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if not EXAMPLES:
            return
        totals: Counter[str] = Counter()
        for (target, _), count in EXAMPLES.items():
            totals[target] += count
        failed = bool(terminalreporter.stats.get("failed"))
        verdict = "see the failures above" if failed else "every example passed"
        terminalreporter.section(f"fuzzing: examples per target ({verdict})")
        terminalreporter.write_line(
            "'refused (ValueError)' counts bad input rejected with a message naming the "
            "problem (checked); 'ok'/'fitted' counts input that worked."
        )
        for target in sorted(totals):
            outcomes = ", ".join(
                f"{_describe(outcome)}: {count}"
                for (name, outcome), count in sorted(EXAMPLES.items())
                if name == target
            )
            terminalreporter.write_line(f"{target:<44} {totals[target]:>5}  ({outcomes})")


def _describe(outcome: str) -> str:
    """An outcome as the summary prints it: exceptions are refusals, the rest successes."""
    if outcome.endswith("Error") or outcome.endswith("Exception"):
        return f"refused ({outcome})"
    return outcome


@pytest.fixture(scope="module", autouse=True)
def _report_example_counts(request):
    """Register the report of example counts, printed at the end of the session."""
    manager = request.config.pluginmanager
    if not manager.has_plugin(_ExampleReport.name):
        manager.register(_ExampleReport(), _ExampleReport.name)
    return


def _fuzz(fast: int, slow: int, *marks: pytest.MarkDecorator, **strategies) -> Callable:
    """Turn ``body(**drawn)`` into a CI test of ``fast`` examples and a slow one of ``slow``.

    ``marks`` decorate both tests. Arguments of ``body`` without a strategy are left to a
    ``pytest.mark.parametrize`` among them; each parameter set gets its own examples.
    """

    def decorate(body: Callable) -> tuple[Callable, Callable]:
        def make(budget: int) -> Callable:
            def test(*args: Any, **kwargs: Any) -> None:
                body(*args, **kwargs)

            test.__name__ = body.__name__
            test.__doc__ = body.__doc__
            test.__signature__ = inspect.signature(body)  # type: ignore[attr-defined]
            test = settings(max_examples=budget, **_COMMON)(given(**strategies)(test))
            for mark in marks:
                test = mark(test)
            return test

        return make(fast), pytest.mark.slow(make(slow))

    return decorate


def _raises_clearly(error: BaseException, reasons: dict[str, str]) -> None:
    """``error`` must be a ValueError/TypeError whose message names one of ``reasons``."""
    assert isinstance(error, ValueError | TypeError), (
        f"unexpected exception type {type(error).__name__}: {error}"
    )
    assert reasons, f"valid input was refused: {type(error).__name__}: {error}"
    pattern = "|".join(f"(?:{regex})" for regex in reasons.values())
    assert re.search(pattern, str(error), flags=re.IGNORECASE), (
        f"the message does not name any of the input's problems {sorted(reasons)}: {error}"
    )


def _same(before: Any, after: Any) -> bool:
    """Whether a container still holds exactly what it held (NaN equal to NaN)."""
    if isinstance(before, pd.DataFrame | pd.Series):
        return before.equals(after)
    if isinstance(before, np.ndarray):
        if before.dtype != after.dtype or before.shape != after.shape:
            return False
        if before.dtype == object:
            return all(
                a == b or (a != a and b != b)  # NaN equals NaN
                for a, b in zip(before.ravel().tolist(), after.ravel().tolist())
            )
        return np.array_equal(before, after, equal_nan=before.dtype.kind in "fc")
    return repr(before) == repr(after)


def _snapshot(data: Any) -> Any:
    if isinstance(data, pd.DataFrame | pd.Series | np.ndarray):
        return data.copy()
    return repr(data)


def _unchanged(snapshot: Any, data: Any) -> bool:
    if isinstance(snapshot, str):
        return snapshot == repr(data)
    return _same(snapshot, data)


# ---------------------------------------------------------------------------------------
# Tabular inputs
# ---------------------------------------------------------------------------------------

_ROWS = st.one_of(st.integers(4, 16), st.sampled_from([1, 2, 3, 5, 7]))
_DTYPES = ("float64", "float32", "float16", "int64", "bool", "object")
_CONTAINERS = ("numpy", "list", "pandas")
_DEFECTS = ("none", "none", "none", "none", "nonfinite", "string")

#: Message patterns for each problem an input may have.
_MESSAGES = {
    "rows": r"minimum of 2 is required|\b1 sample",
    # sklearn's check_array reports a DataFrame without columns through numpy's
    # np.result_type: "at least one array or dtype is required" (upstream message).
    "columns": r"0 feature\(s\)|at least one array or dtype is required",
    "string": r"could not convert|string",
    "nonfinite": r"contains (NaN|infinity)",
    "mismatch": r"same number of rows|inconsistent numbers of samples",
}


@dataclass(frozen=True)
class Table:
    """A generated 2-D input and what is known about it."""

    data: Any  # what the estimator receives
    values: np.ndarray  # float64 content after casting to the dtype (NaN in string cells)
    has_string: bool
    description: str

    @property
    def n_rows(self) -> int:
        return self.values.shape[0]

    @property
    def n_cols(self) -> int:
        return self.values.shape[1]

    @property
    def nonfinite(self) -> bool:
        numeric = self.values if not self.has_string else self.values[~self.string_cells]
        return not np.all(np.isfinite(numeric))

    @property
    def string_cells(self) -> np.ndarray:
        raw = np.asarray(self.data, dtype=object).reshape(self.values.shape)
        return np.vectorize(lambda cell: isinstance(cell, str), otypes=[bool])(raw)

    def reasons(self, *, min_rows: int = 2) -> dict[str, str]:
        """The problems of this table, as ``{name: message pattern}``."""
        found = {}
        if self.n_rows < min_rows:
            found["rows"] = _MESSAGES["rows"]
        if self.n_cols == 0:
            found["columns"] = _MESSAGES["columns"]
        if self.has_string:
            found["string"] = _MESSAGES["string"]
        if self.nonfinite:
            found["nonfinite"] = _MESSAGES["nonfinite"]
        return found


@st.composite
def tables(
    draw: st.DrawFn,
    *,
    n_rows: int | None = None,
    min_cols: int = 0,
    max_cols: int = 4,
    dtypes: tuple[str, ...] = _DTYPES,
    containers: tuple[str, ...] = _CONTAINERS,
    defects: tuple[str, ...] = _DEFECTS,
) -> Table:
    n = draw(_ROWS) if n_rows is None else n_rows
    d = draw(st.integers(min_cols, max_cols))
    dtype = draw(st.sampled_from(dtypes))
    container = draw(st.sampled_from(containers))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    exponent = draw(st.one_of(st.just(0), st.integers(-30, 30)))

    if dtype == "bool":
        values: np.ndarray = rng.random((n, d)) < 0.5
    elif dtype == "int64":
        values = rng.integers(-9, 10, size=(n, d)) * 10 ** min(abs(exponent), 15)
    else:
        values = rng.normal(size=(n, d)) * 10.0**exponent
    if d:
        for column in draw(st.sets(st.integers(0, d - 1), max_size=d)):
            values[:, column] = values[0, column]  # a constant column
        if d >= 2 and draw(st.booleans()):
            source, target = draw(st.permutations(range(d)))[:2]
            values[:, target] = values[:, source]  # a duplicated column
    with np.errstate(over="ignore"):  # 1e30 overflows float16 to inf: a non-finite input
        values = values.astype(dtype)

    defect = draw(st.sampled_from(defects)) if n * d else "none"
    has_string = False
    if defect != "none" and dtype in ("float64", "float32", "float16", "object"):
        cells = draw(
            st.lists(
                st.tuples(st.integers(0, n - 1), st.integers(0, d - 1)),
                min_size=1,
                max_size=2,
            )
        )
        if defect == "string":
            values = values.astype(object)
            for row, column in cells:
                values[row, column] = draw(st.text(alphabet="abcxyz", min_size=1, max_size=3))
            has_string = True
        else:
            for row, column in cells:
                values[row, column] = draw(st.sampled_from([math.nan, math.inf, -math.inf]))

    numeric = np.array(
        [[math.nan if isinstance(cell, str) else float(cell) for cell in row] for row in values]
    ).reshape(n, d)
    if container == "list":
        data: Any = values.tolist()
    elif container == "pandas":
        data = pd.DataFrame(values, columns=[f"f{column}" for column in range(d)])
    else:
        data = values
    description = f"{n}x{d} {dtype} {container}, 1e{exponent}, defect={defect}"
    return Table(data, numeric, has_string, description)


def _fit(estimator: Any, *args: Any) -> BaseException | None:
    """Fit, returning the exception raised (if any); warnings are expected and ignored."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            estimator.fit(*args)
        except Exception as error:
            return error
    return None


def _quiet(method: Callable, *args: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return method(*args)


def _check_outcome(
    target: str,
    error: BaseException | None,
    reasons: dict[str, str],
    *,
    divergence_allowed: bool = False,
) -> bool:
    """Judge a fit's outcome; return whether it succeeded.

    ``divergence_allowed`` is set for ``preprocessing=None``: a tiny network trained on
    unscaled values (up to 1e30) may diverge, and must then raise the documented
    :class:`~sk_mlcpc.DivergenceError` with advice. With preprocessing on it is a failure.
    """
    if error is None:
        assert not reasons, f"{target}: input with problems {sorted(reasons)} was accepted"
        _record(target, "fitted")
        return True
    if divergence_allowed and isinstance(error, DivergenceError):
        assert "learning_rate" in str(error), f"DivergenceError without advice: {error}"
        _record(target, "DivergenceError")
        return False
    _raises_clearly(error, reasons)
    _record(target, type(error).__name__)
    return False


def _assert_finite(values: Any, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    assert np.all(np.isfinite(array)), f"{name} holds NaN or inf: {array}"
    return array


# Tiny networks: each fit takes a few milliseconds.
_TINY = {"hidden_layer_sizes": (8,), "max_epochs": 1, "random_state": 0}


# ---------------------------------------------------------------------------------------
# MutualInformationEstimator
# ---------------------------------------------------------------------------------------


@st.composite
def paired_tables(draw: st.DrawFn) -> tuple[Table, Table, bool]:
    x = draw(tables())
    mismatch = draw(st.sampled_from([False] * 7 + [True]))
    n_rows = x.n_rows + 1 if mismatch else x.n_rows
    y = draw(tables(n_rows=n_rows, min_cols=1, max_cols=3))
    as_vector = y.n_cols == 1 and draw(st.booleans())
    return x, y, as_vector


def _read_as_labels(y_data) -> bool:
    """Whether a one-column ``y`` holds text or booleans only (class labels)."""
    values = y_data.to_numpy() if hasattr(y_data, "to_numpy") else y_data
    if not isinstance(values, np.ndarray):
        values = np.asarray(values, dtype=object)
    values = values.ravel()
    if values.dtype.kind in "USb":
        return True
    return values.dtype.kind == "O" and all(
        isinstance(value, str | bool | np.str_ | np.bool_) for value in values
    )


def _mi_fuzz(case: tuple[Table, Table, bool], params: dict[str, Any]) -> None:
    """fit(X, y) works or names the problem; a fitted estimate is finite and below its cap."""
    x, y, as_vector = case
    y_data = y.data
    if as_vector:
        y_data = y_data.iloc[:, 0] if isinstance(y_data, pd.DataFrame) else np.asarray(y_data)[:, 0]
    estimator = MutualInformationEstimator(n_components=4, **_TINY, **params)
    x_before, y_before = _snapshot(x.data), _snapshot(y_data)
    reasons = x.reasons(min_rows=2)
    reasons.update({f"y_{name}": regex for name, regex in y.reasons().items()})
    reasons.pop("y_columns", None)
    if x.n_rows != y.n_rows:
        reasons["mismatch"] = _MESSAGES["mismatch"]
    # At least 2 rows each for training, validation (early stopping) and the estimate.
    if x.n_rows < 6:
        reasons["few"] = r"Too few samples"
    if y.n_cols == 1 and _read_as_labels(y_data):
        # Text and booleans are class labels (target_type="auto"), which need two classes
        # of two rows each; the labels' own error names the class.
        _, counts = np.unique(np.asarray(y_data, dtype=str).ravel(), return_counts=True)
        if len(counts) < 2 or np.any(counts < 2):
            reasons["labels"] = r"single row|single class"
    error = _fit(estimator, x.data, y_data)
    unscaled = params["preprocessing"] is None
    fitted = _check_outcome(
        "MutualInformationEstimator.fit", error, reasons, divergence_allowed=unscaled
    )
    assert _unchanged(x_before, x.data) and _unchanged(y_before, y_data), "fit modified its input"
    if not fitted:
        return
    assert math.isfinite(estimator.mi_), f"mi_ = {estimator.mi_}"
    assert estimator.mi_ <= estimator.mi_cap_ + 1e-4, (estimator.mi_, estimator.mi_cap_)
    _assert_finite(_quiet(estimator.score, x.data, y_data), "score")
    pmi = _assert_finite(_quiet(estimator.score_samples, x.data, y_data), "score_samples")
    assert pmi.shape == (x.n_rows,)
    if estimator.critic in ("separable", "separable_additive", "bilinear"):
        embedding = _assert_finite(estimator.transform(x.data), "transform")
        assert embedding.shape == (x.n_rows, 4)
    assert _unchanged(x_before, x.data) and _unchanged(y_before, y_data), "scoring modified input"


_MI_PARAMS = st.fixed_dictionaries(
    {
        "objective": st.sampled_from(sorted(bounds.BOUNDS)),
        "critic": st.sampled_from(sorted(CRITICS)),
        "batch_size": st.integers(2, 8),
        "preprocessing": st.sampled_from(["quantile", "standard", None]),
    }
)

test_mutual_information_estimator_fuzz, test_mutual_information_estimator_fuzz_slow = _fuzz(
    250, 1500, case=paired_tables(), params=_MI_PARAMS
)(_mi_fuzz)


# ---------------------------------------------------------------------------------------
# ContrastiveEncoder
# ---------------------------------------------------------------------------------------


def _encoder_fuzz(x: Table, params: dict[str, Any]) -> None:
    """fit(X) works or names the problem; embeddings and the held-out bound are finite."""
    estimator = ContrastiveEncoder(n_components=4, projection_dim=4, **_TINY, **params)
    before = _snapshot(x.data)
    reasons = x.reasons()
    if x.n_rows < 4:
        reasons["few"] = r"Too few samples"
    error = _fit(estimator, x.data)
    unscaled = params["preprocessing"] is None
    fitted = _check_outcome("ContrastiveEncoder.fit", error, reasons, divergence_allowed=unscaled)
    assert _unchanged(before, x.data), "fit modified its input"
    if not fitted:
        return
    assert math.isfinite(estimator.mi_) and estimator.mi_ <= estimator.mi_cap_ + 1e-4
    embedding = _assert_finite(estimator.transform(x.data), "transform")
    assert embedding.shape == (x.n_rows, estimator.n_components_)
    _assert_finite(_quiet(estimator.score, x.data), "score")
    assert _unchanged(before, x.data), "transform or score modified its input"


_ENCODER_PARAMS = st.fixed_dictionaries(
    {
        "objective": st.sampled_from(sorted(bounds.BOUNDS)),
        "augmentation": st.sampled_from(["corruption", "noise", "mask"]),
        "batch_size": st.integers(2, 8),
        "preprocessing": st.sampled_from(["standard", "quantile", None]),
    }
)

test_contrastive_encoder_fuzz, test_contrastive_encoder_fuzz_slow = _fuzz(
    250, 1500, x=tables(), params=_ENCODER_PARAMS
)(_encoder_fuzz)


# ---------------------------------------------------------------------------------------
# ContrastivePredictiveCoding
# ---------------------------------------------------------------------------------------

_WINDOW, _STRIDE = 4, 2


def _sequence_fuzz(x: Table, params: dict[str, Any]) -> None:
    """Sequences of any length work or get a clear geometry error; features are finite."""
    estimator = ContrastivePredictiveCoding(
        window=_WINDOW, stride=_STRIDE, latent_dim=4, n_components=4, **_TINY, **params
    )
    before = _snapshot(x.data)
    reasons = x.reasons()
    channels, steps = params["n_channels"], params["prediction_steps"]
    if x.n_cols % channels:
        reasons["channels"] = r"not a multiple of n_channels"
    else:
        n_timesteps = x.n_cols // channels
        n_windows = 0 if n_timesteps < _WINDOW else (n_timesteps - _WINDOW) // _STRIDE + 1
        if n_windows < steps + 1:
            reasons["short"] = r"Sequences are too short"
    if x.n_rows < 6:  # 2 to train, 2 to validate, 2 for the estimate
        reasons["few"] = r"Too few sequences"
    error = _fit(estimator, x.data)
    unscaled = params["preprocessing"] is None
    fitted = _check_outcome(
        "ContrastivePredictiveCoding.fit", error, reasons, divergence_allowed=unscaled
    )
    assert _unchanged(before, x.data), "fit modified its input"
    if not fitted:
        return
    assert math.isfinite(estimator.mi_) and estimator.mi_ <= estimator.mi_cap_ + 1e-4
    context = _assert_finite(estimator.transform(x.data), "transform")
    assert context.shape == (x.n_rows, len(estimator.get_feature_names_out()))
    per_step = _assert_finite(_quiet(estimator.score_per_step, x.data), "score_per_step")
    assert per_step.shape == (steps,)
    assert _unchanged(before, x.data), "transform or score modified its input"


_SEQUENCE_PARAMS = st.fixed_dictionaries(
    {
        "n_channels": st.integers(1, 3),
        "prediction_steps": st.integers(1, 2),
        "objective": st.sampled_from(sorted(bounds.BOUNDS)),
        "batch_size": st.integers(2, 8),
        "preprocessing": st.sampled_from(["standard", None]),
    }
)

test_contrastive_predictive_coding_fuzz, test_contrastive_predictive_coding_fuzz_slow = _fuzz(
    250, 1500, x=tables(max_cols=24), params=_SEQUENCE_PARAMS
)(_sequence_fuzz)


# ---------------------------------------------------------------------------------------
# ContrastiveDistillationClassifier
# ---------------------------------------------------------------------------------------

_LABELS = {"int": [0, 1, 2], "str": ["cat", "dog", "eel"], "float": [0.0, 1.0, 2.0]}


@lru_cache(maxsize=64)
def _teacher(n_features: int, label_kind: str, n_classes: int) -> LogisticRegression:
    """A small fitted teacher on clean data with the given classes."""
    rng = np.random.default_rng(n_features)
    labels = np.array(_LABELS[label_kind][:n_classes] * 10, dtype=object)
    if label_kind != "str":
        labels = labels.astype(type(_LABELS[label_kind][0]))
    features = rng.normal(size=(len(labels), max(n_features, 1)))
    return LogisticRegression(max_iter=200).fit(features, labels)


@st.composite
def labelled_tables(draw: st.DrawFn) -> tuple[Table, Any, str, int]:
    x = draw(tables())
    kind = draw(st.sampled_from(sorted(_LABELS)))
    n_classes = draw(st.integers(2, 3))
    choices = _LABELS[kind][:n_classes]
    labels: list[Any] = draw(
        st.lists(st.sampled_from(choices), min_size=x.n_rows, max_size=x.n_rows)
    )
    label_defect = draw(st.sampled_from(["none"] * 6 + ["nan", "continuous"]))
    if kind == "float" and label_defect != "none":
        row = draw(st.integers(0, x.n_rows - 1))
        labels[row] = math.nan if label_defect == "nan" else 0.5
    container = draw(st.sampled_from(["numpy", "list", "pandas"]))
    y: Any = labels
    if container == "numpy":
        y = np.asarray(labels)
    elif container == "pandas":
        y = pd.Series(labels)
    return x, y, kind, n_classes


def _distillation_fuzz(case: tuple[Table, Any, str, int], params: dict[str, Any]) -> None:
    """fit(X, y) works or names the problem; the student's probabilities are finite."""
    x, y, kind, n_classes = case
    teacher = _teacher(x.n_cols, kind, n_classes)
    estimator = ContrastiveDistillationClassifier(
        teacher=teacher, n_components=4, n_negatives=4, **_TINY, **params
    )
    x_before, y_before = _snapshot(x.data), _snapshot(y)
    reasons = x.reasons()
    present = set(np.asarray(y, dtype=object).tolist())
    if any(isinstance(label, float) and math.isnan(label) for label in present):
        reasons["y_nan"] = r"Input y contains NaN"
    elif 0.5 in present:
        reasons["y_continuous"] = r"Unknown label type: continuous"
    elif len(present) < 2:
        reasons["one_class"] = r"at least 2 classes"
    elif len(present) < n_classes:
        reasons["classes"] = r"fitted on \d+ classes"
    # Early stopping holds out at least 2 rows (the rule every estimator shares), and
    # training needs 2.
    min_rows = 4 if params["early_stopping"] else 2
    if x.n_rows < min_rows:
        reasons["few"] = r"Too few samples"
    error = _fit(estimator, x.data, y)
    unscaled = params["preprocessing"] is None
    fitted = _check_outcome(
        "ContrastiveDistillationClassifier.fit", error, reasons, divergence_allowed=unscaled
    )
    assert _unchanged(x_before, x.data) and _unchanged(y_before, y), "fit modified its input"
    if not fitted:
        return
    proba = _assert_finite(_quiet(estimator.predict_proba, x.data), "predict_proba")
    assert proba.shape == (x.n_rows, n_classes)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    predicted = _quiet(estimator.predict, x.data)
    assert set(np.asarray(predicted).tolist()) <= present
    assert _unchanged(x_before, x.data), "predict modified its input"


_DISTILLATION_PARAMS = st.fixed_dictionaries(
    {
        "objective": st.sampled_from(["ml_cpc", "cpc", "crd"]),
        "batch_size": st.integers(1, 8),
        "early_stopping": st.booleans(),
        "preprocessing": st.sampled_from(["standard", None]),
    }
)

test_contrastive_distillation_fuzz, test_contrastive_distillation_fuzz_slow = _fuzz(
    250, 1500, case=labelled_tables(), params=_DISTILLATION_PARAMS
)(_distillation_fuzz)


# ---------------------------------------------------------------------------------------
# Fitted-state checks shared by the estimators
# ---------------------------------------------------------------------------------------


_UNFITTED_CALLS = [
    (MutualInformationEstimator, "score", 2),
    (MutualInformationEstimator, "score_samples", 2),
    (MutualInformationEstimator, "transform", 1),
    (ContrastiveEncoder, "transform", 1),
    (ContrastiveEncoder, "score", 1),
    (ContrastivePredictiveCoding, "transform", 1),
    (ContrastivePredictiveCoding, "score", 1),
    (ContrastivePredictiveCoding, "score_per_step", 1),
    (ContrastiveDistillationClassifier, "predict", 1),
    (ContrastiveDistillationClassifier, "predict_proba", 1),
]


@pytest.mark.parametrize(("cls", "method", "n_args"), _UNFITTED_CALLS)
@settings(max_examples=10, **_COMMON)
@given(x=tables(min_cols=1))
def test_unfitted_estimators_raise_not_fitted(
    cls: type, method: str, n_args: int, x: Table
) -> None:
    """Any input given to an unfitted estimator raises NotFittedError, before validation."""
    args = (x.data,) * n_args
    with pytest.raises(NotFittedError):
        getattr(cls(), method)(*args)
    _record(f"{cls.__name__}.<unfitted>", "NotFittedError")


_TABULAR_WIDTH, _SEQUENCE_WIDTH = 3, 9  # 9 time steps: 3 windows of 4 with stride 2


@cache
def _fitted(name: str) -> Any:
    """One small estimator of each class, fitted on clean data (once per session)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, _SEQUENCE_WIDTH if name == "sequence" else _TABULAR_WIDTH))
    y = x[:, 0] + rng.normal(size=16)
    if name == "mi":
        estimator = MutualInformationEstimator(n_components=4, batch_size=4, **_TINY)
        return _quiet(estimator.fit, x, y)
    if name == "encoder":
        estimator = ContrastiveEncoder(n_components=4, projection_dim=4, batch_size=4, **_TINY)
        return _quiet(estimator.fit, x)
    if name == "sequence":
        estimator = ContrastivePredictiveCoding(
            window=_WINDOW, stride=_STRIDE, prediction_steps=2, latent_dim=4, n_components=4,
            batch_size=4, **_TINY,
        )  # fmt: skip
        return _quiet(estimator.fit, x)
    labels = (y > 0).astype(int)
    teacher = LogisticRegression().fit(x, labels)
    estimator = ContrastiveDistillationClassifier(
        teacher=teacher, n_components=4, n_negatives=4, batch_size=4, **_TINY
    )
    return _quiet(estimator.fit, x, labels)


# (fitted estimator, method, least rows accepted, shape of the output for n rows)
_METHODS = [
    ("mi", "score", 2, lambda n: ()),
    ("mi", "score_samples", 1, lambda n: (n,)),
    ("mi", "transform", 1, lambda n: (n, 4)),
    ("encoder", "transform", 1, lambda n: (n, 4)),
    ("encoder", "score", 2, lambda n: ()),
    ("sequence", "transform", 1, lambda n: (n, len(_fitted("sequence").get_feature_names_out()))),
    ("sequence", "score_per_step", 2, lambda n: (2,)),
    ("distillation", "predict_proba", 1, lambda n: (n, 2)),
    ("distillation", "predict", 1, lambda n: (n,)),
]


def _fitted_method_fuzz(
    data: st.DataObject, estimator_name: str, method: str, min_rows: int, shape: Callable
) -> None:
    """A fitted estimator's methods work on any valid input or name the input's problem."""
    estimator = _fitted(estimator_name)
    width = _SEQUENCE_WIDTH if estimator_name == "sequence" else _TABULAR_WIDTH
    # Mostly the fitted width, sometimes one more or fewer column, or none.
    x = data.draw(
        st.one_of(
            tables(min_cols=width, max_cols=width),
            tables(min_cols=width, max_cols=width),
            tables(min_cols=width - 1, max_cols=width + 1),
            tables(max_cols=0),
        )
    )
    reasons = x.reasons(min_rows=min_rows)
    if x.n_cols not in (0, width):
        reasons["width"] = rf"X has {x.n_cols} features, but \w+ is expecting {width}"
    args = [x.data]
    if estimator_name == "mi" and method != "transform":
        args.append(np.linspace(-1.0, 1.0, x.n_rows))  # a clean y of the same length
    before = _snapshot(x.data)
    target = f"{type(estimator).__name__}.{method}"
    try:
        output = _quiet(getattr(estimator, method), *args)
    except Exception as error:
        _raises_clearly(error, reasons)
        _record(target, type(error).__name__)
        return
    finally:
        assert _unchanged(before, x.data), f"{method} modified its input"
    assert not reasons, f"{method} accepted an input with problems {sorted(reasons)}"
    if method != "predict":
        output = _assert_finite(output, method)
    assert np.shape(output) == shape(x.n_rows)
    _record(target, "ok")


test_fitted_methods, test_fitted_methods_slow = _fuzz(
    60,
    600,
    pytest.mark.parametrize(("estimator_name", "method", "min_rows", "shape"), _METHODS),
    data=st.data(),
)(_fitted_method_fuzz)


# ---------------------------------------------------------------------------------------
# Bounds
# ---------------------------------------------------------------------------------------

_TORCH_DTYPES = (torch.float64, torch.float32, torch.float16, torch.bfloat16)
_CAPPED = ("cpc", "alpha_cpc", "ml_cpc")


@st.composite
def score_matrices(draw: st.DrawFn, *, finite: bool) -> tuple[torch.Tensor, str]:
    layout = draw(st.sampled_from(["batch", "anchored"]))
    n = draw(st.integers(1, 7))
    m = n if layout == "batch" else draw(st.integers(1, 7))
    dtype = draw(st.sampled_from(_TORCH_DTYPES))
    magnitude = draw(st.sampled_from([1e4, 1e2, 10.0, 1.0, 1e-3]))
    cells = st.floats(-magnitude, magnitude, allow_nan=False, allow_infinity=False)
    values = draw(st.lists(cells, min_size=n * m, max_size=n * m))
    scores = torch.tensor(values, dtype=torch.float64).reshape(n, m)
    if not finite and n * m:
        for _ in range(draw(st.integers(1, 3))):
            row, column = draw(st.integers(0, n - 1)), draw(st.integers(0, m - 1))
            scores[row, column] = draw(st.sampled_from([math.nan, math.inf, -math.inf]))
    return scores.to(dtype), layout


def _call_bound(
    name: str, scores: torch.Tensor, layout: str, alpha: float, ema: torch.Tensor | None
) -> torch.Tensor:
    function = bounds.BOUNDS[name]
    if name in bounds.ALPHA_OBJECTIVES:
        return function(scores, alpha=alpha, layout=layout)
    if name == "mine":
        value, new_ema = function(scores, log_partition_ema=ema, layout=layout)
        assert new_ema.ndim == 0 and not new_ema.requires_grad
        return value
    return function(scores, layout=layout)


def _bound_fuzz(
    case: tuple[torch.Tensor, str], name: str, alpha_share: float, ema: float | None
) -> None:
    """Finite scores give a 0-d value of the input dtype, never NaN, never above the cap."""
    scores, layout = case
    n, m = scores.shape
    alpha = max(alpha_share * m, 1e-3)
    before = scores.clone()
    leaf = scores.clone().requires_grad_(True)
    ema_tensor = None if ema is None else torch.tensor(ema)
    try:
        value = _call_bound(name, leaf, layout, alpha, ema_tensor)
    except ValueError as error:
        assert m < 2, f"{name} refused a {n}x{m} matrix: {error}"
        assert "no negatives" in str(error)
        _record(f"bounds.{name}", "ValueError")
        return
    assert m >= 2, f"{name} accepted a {n}x{m} matrix without negatives"
    assert torch.equal(scores, before), f"{name} modified its input"
    assert value.ndim == 0 and value.dtype == scores.dtype
    result = value.item()
    assert not math.isnan(result), f"{name} is NaN on finite scores"
    bound_cap = bounds.cap(name, n, m, alpha=alpha)
    assert result <= bound_cap + _cap_tolerance(scores, bound_cap), (name, result, bound_cap)
    if not math.isfinite(result):
        # Only the exponential of NWJ/TUBA's partition can overflow (to a valid -inf).
        assert name in ("nwj", "tuba", "js") and result == -math.inf, (name, result)
        reference = bounds.tuba(scores.double(), layout=layout).item()
        assert reference < -0.5 * torch.finfo(scores.dtype).max, (name, result, reference)
        _record(f"bounds.{name}", "-inf (overflow)")
        return
    value.backward()
    assert torch.isfinite(leaf.grad).all(), f"{name}: non-finite gradient {leaf.grad}"
    _record(f"bounds.{name}", "finite")


_BOUND_NAMES = pytest.mark.parametrize("name", sorted(bounds.BOUNDS))

test_bounds_on_finite_scores, test_bounds_on_finite_scores_slow = _fuzz(
    100,
    1000,
    _BOUND_NAMES,
    case=score_matrices(finite=True),
    alpha_share=st.floats(0.0, 1.0),
    ema=st.one_of(st.none(), st.floats(-50.0, 50.0)),
)(_bound_fuzz)


def _outcome(result: float) -> str:
    if math.isnan(result):
        return "nan"
    return "finite" if math.isfinite(result) else ("+inf" if result > 0 else "-inf")


def _cap_tolerance(scores: torch.Tensor, bound_cap: float) -> float:
    """Rounding allowed above the cap: the work dtype's epsilon times the scores' size,
    plus the rounding of the result to the input dtype."""
    finite = scores[torch.isfinite(scores)]
    size = float(finite.abs().max()) if finite.numel() else 0.0
    work_eps = torch.finfo(torch.float32 if scores.dtype.itemsize < 4 else scores.dtype).eps
    tolerance = 8 * work_eps * (size + math.log(scores.shape[1]) + 1)
    return tolerance + 2 * torch.finfo(scores.dtype).eps * max(1.0, abs(bound_cap))


def _partition_overflows(scores: torch.Tensor, negatives: torch.Tensor) -> bool:
    """Whether NWJ's ``mean exp(negatives)`` overflows the dtype the bounds compute in."""
    work = negatives.float() if scores.dtype.itemsize < 4 else negatives
    log_mean = torch.logsumexp(work, dim=0) - math.log(len(work))
    return bool(torch.isinf(log_mean.exp()))


def _nwj_overflow(scores: torch.Tensor, layout: str) -> bool | None:
    """Whether NWJ's value overflows the input dtype: True, False, or None when too close."""
    reference = abs(bounds.tuba(scores.double(), layout=layout).item())
    largest = torch.finfo(scores.dtype).max
    if reference > 1.01 * largest:
        return True
    return False if reference < 0.99 * largest else None


def _bound_nonfinite_fuzz(case: tuple[torch.Tensor, str], name: str) -> None:
    """Non-finite scores: the propagation read from the code, and never a value above the cap.

    NaN anywhere gives NaN: every cell is read (the diagonal or column 0 as positives, the
    rest as negatives). With one kind of infinity among finite scores: a negative scored
    +inf or a positive scored -inf gives -inf (SMILE: finite for a +inf negative, which its
    reported partition clips); the straight-through estimators (mine, js, smile) report
    their value even when their training objective is infinite. A positive scored +inf
    gives NaN for the normalised bounds (``inf - inf``) and +inf for the others (NaN for
    NWJ if its partition overflows too); negatives scored -inf drop out of the sums.
    Mixtures of infinities are only checked against the cap.
    """
    scores, layout = case
    n, m = scores.shape
    if m < 2:
        _record(f"bounds.{name}[non-finite]", "m < 2, not called")
        return  # refused as in test_bounds_on_finite_scores
    before = scores.clone()
    value = _call_bound(name, scores, layout, 1.0, None)
    torch.testing.assert_close(scores, before, rtol=0, atol=0, equal_nan=True)
    assert value.ndim == 0 and value.dtype == scores.dtype
    result = value.item()
    bound_cap = bounds.cap(name, n, m)
    assert not result > bound_cap + _cap_tolerance(scores, bound_cap), (name, result)
    outcome = _outcome(result)
    _record(f"bounds.{name}[non-finite]", outcome)

    positive_mask = torch.zeros_like(scores, dtype=torch.bool)
    if layout == "batch":
        positive_mask.fill_diagonal_(True)
    else:
        positive_mask[:, 0] = True
    positives, negatives = scores[positive_mask], scores[~positive_mask]
    kinds = {
        kind
        for kind, present in (
            ("positive +inf", (positives == math.inf).any()),
            ("positive -inf", (positives == -math.inf).any()),
            ("negative +inf", (negatives == math.inf).any()),
            ("negative -inf", (negatives == -math.inf).any()),
        )
        if present
    }
    if torch.isnan(scores).any():
        assert outcome == "nan", f"{name} hides a NaN score: {result}"
        return
    if len(kinds) != 1:
        return
    (kind,) = kinds
    if kind in ("negative +inf", "positive -inf"):
        # SMILE's reported partition clips the negatives, so +inf ones stay finite.
        expected = "finite" if (name, kind) == ("smile", "negative +inf") else "-inf"
    elif kind == "positive +inf":
        expected = "nan" if name in _CAPPED else "+inf"
        if name in ("nwj", "tuba", "js") and _partition_overflows(scores, negatives):
            expected = "nan"  # inf - exp(partition) = inf - inf
    elif torch.isfinite(negatives).any() or name in ("smile", *_CAPPED, "nwj", "tuba", "js"):
        expected = "finite"  # smile clips the -inf negatives to -clip
        if name in ("nwj", "tuba", "js"):
            overflow = _nwj_overflow(scores, layout)
            if overflow is None:
                return
            expected = "-inf" if overflow else "finite"
    else:  # no finite negative: DV's log-partition is -inf
        expected = "+inf" if name == "dv" else "nan"
    assert outcome == expected, (name, kind, result)


test_bounds_on_non_finite_scores, test_bounds_on_non_finite_scores_slow = _fuzz(
    100, 1000, _BOUND_NAMES, case=score_matrices(finite=False)
)(_bound_nonfinite_fuzz)


# Sizes and alphas as a user might pass them, valid or not.
_SIZES = st.one_of(
    st.integers(-2, 10),
    st.integers(10, 2**62),
    st.sampled_from([True, 2.0, 2.5, "8", None, np.int64(16)]),
)
_ALPHAS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-3, 300),
    st.sampled_from([True, "auto", "1", None, np.float32(0.5)]),
)


def _size_ok(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool) and value >= 1


def _cap_fuzz(name: str, n: Any, m: Any, alpha: Any) -> None:
    """cap, valid_alpha_range, bound_validity and resolve_alpha agree or refuse clearly."""
    m_eff = n if m is None else m
    sizes_ok = _size_ok(n) and _size_ok(m_eff) and m_eff >= 2
    real_alpha = isinstance(alpha, int | float | np.floating) and not isinstance(alpha, bool)
    alpha_ok = real_alpha and 0 < alpha <= (m_eff if sizes_ok else math.inf)
    needs_alpha = name in bounds.ALPHA_OBJECTIVES
    try:
        bound_cap = bounds.cap(name, n, m, alpha)
    except (ValueError, TypeError) as error:
        assert not (sizes_ok and (alpha_ok or not needs_alpha)), f"cap refused: {error}"
        assert re.search(r"\b(n|m|alpha)\b", str(error)), str(error)
        _record("bounds.cap", type(error).__name__)
        return
    assert sizes_ok and (alpha_ok or not needs_alpha)
    _record("bounds.cap", "ok")
    assert bound_cap >= 0
    if name == "cpc":
        assert bound_cap == pytest.approx(math.log(m_eff))
    elif needs_alpha:
        assert bound_cap == pytest.approx(math.log(m_eff) - math.log(alpha))
        limits = bounds.valid_alpha_range(n, m, objective=name)
        assert 0 < limits.invalid_below <= limits.low <= limits.proven_low <= limits.high
        assert limits.high == m_eff
        auto = bounds.resolve_alpha("auto", name, n, m)
        assert auto == limits.low
        assert bounds.bound_validity(name, n, m, alpha=auto) != "invalid"
        validity = bounds.bound_validity(name, n, m, alpha=alpha)
        assert (validity == "proven") == (alpha >= 1)
        if alpha < limits.low * (1 - 1e-9):
            assert validity == "invalid"
    else:
        assert bound_cap == math.inf
        assert bounds.resolve_alpha("auto", name, n, m) == 1.0


def _unknown_or_known_bound(name: str, n: Any, m: Any, alpha: Any) -> None:
    """cap, valid_alpha_range, bound_validity and resolve_alpha agree or refuse clearly."""
    if name in bounds.BOUNDS:
        _cap_fuzz(name, n, m, alpha)
        return
    with pytest.raises(ValueError, match="Unknown bound"):
        bounds.cap(name, n, m, alpha)
    _record("bounds.cap", "ValueError")


test_caps_and_alpha_ranges, test_caps_and_alpha_ranges_slow = _fuzz(
    200,
    2000,
    name=st.one_of(st.sampled_from(sorted(bounds.BOUNDS)), st.sampled_from(["infonce", ""])),
    n=_SIZES,
    m=st.one_of(st.none(), _SIZES),
    alpha=_ALPHAS,
)(_unknown_or_known_bound)


# ---------------------------------------------------------------------------------------
# Data generators and views
# ---------------------------------------------------------------------------------------


def _generator_fuzz(n_samples: int, n_features: int, mi: float, transform: str | None) -> None:
    """Correlated Gaussians: right shapes, finite values, the requested MI, or a clear error."""
    try:
        X, Y, true_mi = datasets.make_correlated_gaussians(
            n_samples, n_features, mi=mi, transform=transform, random_state=0
        )
    except ValueError as error:
        assert re.search(r"too large|n_samples|n_features|mi", str(error)), str(error)
        assert n_samples < 1 or n_features < 1 or mi < 0 or mi / n_features > 15
        _record("datasets.make_correlated_gaussians", "ValueError")
        return
    assert X.shape == Y.shape == (n_samples, n_features)
    _assert_finite(X, "X")
    _assert_finite(Y, "Y")
    assert true_mi == pytest.approx(mi, rel=1e-9, abs=1e-12)
    rho = datasets.mi_to_rho(mi, n_features)
    # The round trip loses float64 precision as rho -> 1: 1 - rho^2 = exp(-2 mi / d) is
    # known to eps absolutely, so the MI to (d / 2) * eps / (1 - rho^2).
    round_trip_error = n_features * np.finfo(np.float64).eps * math.exp(2 * mi / n_features)
    assert datasets.rho_to_mi(rho, n_features) == pytest.approx(mi, abs=round_trip_error + 1e-12)
    ratio = datasets.gaussian_log_density_ratio(X, Y, rho, transform=transform)
    assert ratio.shape == (n_samples, n_samples)
    _assert_finite(ratio, "gaussian_log_density_ratio")
    _record("datasets.make_correlated_gaussians", "ok")


test_correlated_gaussians, test_correlated_gaussians_slow = _fuzz(
    60,
    600,
    n_samples=st.integers(-1, 40),
    n_features=st.integers(0, 6),
    mi=st.one_of(st.floats(-1.0, 40.0), st.sampled_from([0.0, 1e-12])),
    transform=st.sampled_from([None, "cubic"]),
)(_generator_fuzz)


def _sequences_fuzz(kind: str, n_samples: int, n_timesteps: int, n_channels: int) -> None:
    """Sequence generators: shapes, finite values and labels in range, or a clear error."""
    make = datasets.make_frequency_sequences if kind == "frequency" else datasets.make_switching_ar
    try:
        X, y = make(n_samples, n_timesteps, n_channels=n_channels, random_state=0)
    except ValueError as error:
        assert min(n_samples, n_timesteps - 1, n_channels) < 1, str(error)
        assert re.search(r"n_samples|n_timesteps|n_channels", str(error)), str(error)
        _record(f"datasets.{make.__name__}", "ValueError")
        return
    assert X.shape == (n_samples, n_timesteps * n_channels) and y.shape == (n_samples,)
    _assert_finite(X, "X")
    assert y.dtype == np.int64 and (y >= 0).all()
    _record(f"datasets.{make.__name__}", "ok")


test_sequence_generators, test_sequence_generators_slow = _fuzz(
    60,
    600,
    kind=st.sampled_from(["frequency", "switching"]),
    n_samples=st.integers(-1, 12),
    n_timesteps=st.integers(-1, 40),
    n_channels=st.integers(0, 3),
)(_sequences_fuzz)


@st.composite
def view_batches(draw: st.DrawFn) -> tuple[torch.Tensor, torch.Tensor]:
    n, d = draw(st.integers(1, 6)), draw(st.integers(1, 5))
    dtype = draw(st.sampled_from([torch.float32, torch.float64, torch.float16]))
    # float16 stays below 1e2, so that 1e2 + 6 standard deviations of noise is representable.
    magnitude = draw(st.sampled_from([1e-30, 1.0, 1e2 if dtype == torch.float16 else 1e4]))
    cells = st.floats(-magnitude, magnitude, allow_nan=False)
    x = torch.tensor(draw(st.lists(cells, min_size=n * d, max_size=n * d)), dtype=dtype)
    reference_rows = draw(st.integers(1, 6))
    reference = torch.tensor(
        draw(st.lists(cells, min_size=reference_rows * d, max_size=reference_rows * d)),
        dtype=dtype,
    )
    return x.reshape(n, d), reference.reshape(reference_rows, d)


def _view_fuzz(batch: tuple[torch.Tensor, torch.Tensor], name: str, rate: float) -> None:
    """Views keep shape and dtype, leave their input alone, stay finite and on the support."""
    x, reference = batch
    x_before, reference_before = x.clone(), reference.clone()
    view = views.make_view(name, reference, corruption_rate=rate, noise_scale=rate)
    out = view(x, torch.Generator().manual_seed(0))
    assert torch.equal(x, x_before) and torch.equal(reference, reference_before)
    assert out.shape == x.shape and out.dtype == x.dtype
    if name == "noise":
        assert torch.isfinite(out).all(), out
    else:
        changed = out != x
        limit = math.ceil(rate * x.shape[1])
        assert (changed.sum(dim=1) <= limit).all(), (changed, rate)
        if name == "corruption":
            # Every cell is the row's own value or a reference value of the same column.
            for column in range(x.shape[1]):
                allowed = torch.cat([reference[:, column], x[:, column]])
                assert torch.isin(out[:, column], allowed).all()
        else:
            assert (out[changed] == 0).all()
    _record(f"views.{name}", "ok")


test_views, test_views_slow = _fuzz(
    100,
    1000,
    pytest.mark.parametrize("name", views.VIEWS),
    batch=view_batches(),
    rate=st.floats(0.0, 1.0),
)(_view_fuzz)
