"""The bounds registry: one record per objective, read by every path that uses a bound.

Checks that each record's dense function is the public one and agrees with its formula,
that the dense and blockwise paths agree for every record (value and gradient, with the
options each record takes), that the derived tables follow the registry, that a record
added at run time reaches ``BOUNDS``, the blockwise path, caps, validity and the
training losses without other edits, and that the docs' bound table lists exactly the
registry's bounds.
"""

from __future__ import annotations

import inspect
import math
import re
from pathlib import Path

import pytest
import torch

import sk_mlcpc.bounds
from sk_mlcpc._engine.net import BoundLoss
from sk_mlcpc._engine.sequence_net import PredictiveBoundLoss
from sk_mlcpc._math import bounds as bounds_module
from sk_mlcpc._math.blockwise import BLOCKWISE_OPTIONS, blockwise_bound
from sk_mlcpc._math.bounds import (
    ALPHA_OBJECTIVES,
    BOUNDS,
    OBJECTIVES,
    bound_validity,
    cap,
    get_bound,
    get_objective,
    resolve_alpha,
    valid_alpha_range,
)
from sk_mlcpc._math.objectives import (
    Objective,
    alpha_cpc_formula,
    cpc_formula,
    log_m_over_alpha_cap,
)
from sk_mlcpc._math.score_math import DenseScores

ROOT = Path(__file__).resolve().parents[2]
NAMES = list(OBJECTIVES)

#: Values to try for each option a record may take: keyed by option, not by bound, so a
#: new record is covered as soon as its options are.
OPTION_VALUES = {
    "alpha": [0.3, 1.0, 2.5],
    "baseline": [0.4],
    "log_partition_ema": [0.2],
    "momentum": [0.5],
    "clip": [0.8],
}


def option_sets(record):
    """The record's defaults, then each option alone at each of its test values."""
    sets = [{}]
    for option in record.options:
        sets += [{option: value} for value in OPTION_VALUES[option]]
    return sets


def cases():
    return [
        pytest.param(name, options, id=name + "".join(f"-{k}={v}" for k, v in options.items()))
        for name in NAMES
        for options in option_sets(OBJECTIVES[name])
    ]


def estimate(result):
    return result[0] if isinstance(result, tuple) else result


# ---------------------------------------------------------------------------------------
# The records
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_record_dense_function_is_the_public_one(name):
    record = OBJECTIVES[name]
    assert record.name == name
    assert record.dense is getattr(sk_mlcpc.bounds, name)
    assert name in sk_mlcpc.bounds.__all__
    assert BOUNDS[name] is record.dense
    assert get_bound(name) is record.dense
    assert get_objective(name) is record


@pytest.mark.parametrize("name", NAMES)
def test_record_options_are_the_dense_functions_keywords(name):
    record = OBJECTIVES[name]
    parameters = inspect.signature(record.dense).parameters
    keywords = [p for p, spec in parameters.items() if spec.kind is spec.KEYWORD_ONLY]
    assert set(keywords) - {"layout"} == set(record.options)
    assert set(inspect.signature(record.formula).parameters) - {"scores"} == set(record.options)


@pytest.mark.parametrize(("name", "options"), cases())
@pytest.mark.parametrize("layout", ["batch", "anchored"])
def test_record_formula_on_dense_scores_is_the_dense_function(name, options, layout):
    record = OBJECTIVES[name]
    scores = torch.randn(6, 6 if layout == "batch" else 4, dtype=torch.float64)
    expected = record.dense(scores, layout=layout, **options)
    got = record.formula(DenseScores(scores, layout), **options)
    assert torch.equal(estimate(got), estimate(expected))


def test_derived_tables_follow_the_registry():
    assert list(BOUNDS) == NAMES
    assert dict(BLOCKWISE_OPTIONS) == {name: r.options for name, r in OBJECTIVES.items()}
    assert ALPHA_OBJECTIVES == tuple(name for name, r in OBJECTIVES.items() if r.takes_alpha)
    assert ALPHA_OBJECTIVES == ("alpha_cpc", "ml_cpc")  # the values the estimators knew
    assert [name for name, r in OBJECTIVES.items() if r.stateful] == ["mine"]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(("n", "m"), [(16, None), (8, 5)])
def test_caps_and_validity_come_from_the_record(name, n, m):
    record = OBJECTIVES[name]
    alpha = 0.5 if record.takes_alpha else 1.0
    assert cap(name, n, m, alpha=alpha) == record.cap(n, m or n, alpha)
    if record.takes_alpha:
        assert valid_alpha_range(n, m, objective=name) == record.alpha_range(n, m or n)
        assert resolve_alpha("auto", name, n, m) == record.alpha_range(n, m or n).low
        assert bound_validity(name, n, m, alpha=1.0) == record.validity
    else:
        assert bound_validity(name, n, m) == record.validity
        assert resolve_alpha("auto", name, n, m) == 1.0
        with pytest.raises(ValueError, match="objective must be one of"):
            valid_alpha_range(n, m, objective=name)


def test_a_record_takes_alpha_exactly_when_it_has_an_alpha_range():
    with pytest.raises(ValueError, match="alpha_range"):
        Objective("x", cpc_formula, cpc_formula, options=("alpha",))
    with pytest.raises(ValueError, match="alpha_range"):
        Objective("x", cpc_formula, cpc_formula, alpha_range=lambda n, m: None)
    with pytest.raises(ValueError, match="not an option"):
        Objective("x", cpc_formula, cpc_formula, state="carry")


# ---------------------------------------------------------------------------------------
# Dense and blockwise agree, for every record
# ---------------------------------------------------------------------------------------


def _factors(layout, n=7, k=5, d=3, seed=0):
    gen = torch.Generator().manual_seed(seed)

    def leaf(*shape):
        return torch.randn(*shape, generator=gen, dtype=torch.float64).requires_grad_()

    parts = {"g": leaf(n, d), "h": leaf(n, d), "a": leaf(n), "b": leaf(n)}
    if layout == "anchored":
        parts.update(negatives=leaf(k, d), b_negatives=leaf(k))
    return parts


def _scores(parts):
    g, h, a, b = parts["g"], parts["h"], parts["a"], parts["b"]
    if "negatives" not in parts:
        return g @ h.T + a[:, None] + b[None, :]
    positives = (g * h).sum(dim=1) + a + b
    negatives = g @ parts["negatives"].T + a[:, None] + parts["b_negatives"][None, :]
    return torch.cat([positives[:, None], negatives], dim=1)


@pytest.mark.parametrize(("name", "options"), cases())
@pytest.mark.parametrize("layout", ["batch", "anchored"])
def test_dense_and_blockwise_agree_in_value_and_gradient(name, options, layout):
    parts = _factors(layout)
    dense = OBJECTIVES[name].dense(_scores(parts), layout=layout, **options)
    dense_grads = torch.autograd.grad(estimate(dense), list(parts.values()))
    tiled = blockwise_bound(name, **parts, block_size=3, **options)
    tiled_grads = torch.autograd.grad(estimate(tiled), list(parts.values()))
    torch.testing.assert_close(estimate(tiled), estimate(dense), rtol=1e-10, atol=1e-12)
    if isinstance(dense, tuple):  # the carried state too
        torch.testing.assert_close(tiled[1], dense[1], rtol=1e-10, atol=1e-12)
    for got, expected in zip(tiled_grads, dense_grads):
        torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-11)


# ---------------------------------------------------------------------------------------
# A record added at run time reaches every path
# ---------------------------------------------------------------------------------------


def _half_cpc_formula(scores):
    return 0.5 * cpc_formula(scores)


def _half_cpc(scores, *, layout="batch"):
    return bounds_module._evaluate_dense(_half_cpc_formula, scores, layout)


def _counting_formula(scores, *, alpha=1.0, carry=None):
    """alpha-CPC that counts its calls in its carried state."""
    previous = torch.zeros(()) if carry is None else torch.nan_to_num(torch.as_tensor(carry))
    return alpha_cpc_formula(scores, alpha=alpha), previous + 1.0


def _counting(scores, *, alpha=1.0, carry=None, layout="batch"):
    return bounds_module._evaluate_dense(
        _counting_formula, scores, layout, alpha=alpha, carry=carry
    )


@pytest.fixture
def extra_records(monkeypatch):
    records = {
        "half_cpc": Objective("half_cpc", _half_cpc, _half_cpc_formula, cap=lambda n, m, a: 0.5),
        "counting": Objective(
            "counting",
            _counting,
            _counting_formula,
            options=("alpha", "carry"),
            state="carry",
            cap=log_m_over_alpha_cap,
            validity="invalid",
            alpha_range=OBJECTIVES["alpha_cpc"].alpha_range,
        ),
    }
    for name, record in records.items():
        monkeypatch.setitem(OBJECTIVES, name, record)
    return records


def test_an_added_record_reaches_the_tables_caps_and_validity(extra_records):
    assert BOUNDS["half_cpc"] is _half_cpc and get_bound("counting") is _counting
    assert BLOCKWISE_OPTIONS["counting"] == ("alpha", "carry")
    assert cap("half_cpc", 8) == 0.5
    assert cap("counting", 8, alpha=0.5) == pytest.approx(math.log(16))
    assert bound_validity("half_cpc", 8) == "proven"
    assert bound_validity("counting", 8, alpha=2.0) == "invalid"
    assert resolve_alpha("auto", "counting", 8) == 1.0
    assert valid_alpha_range(8, objective="counting").proven_low == 1.0


def test_an_added_record_reaches_the_blockwise_path(extra_records):
    parts = _factors("batch")
    expected = 0.5 * sk_mlcpc.bounds.cpc(_scores(parts))
    torch.testing.assert_close(blockwise_bound("half_cpc", **parts, block_size=3), expected)
    value, state = blockwise_bound("counting", **parts, alpha=2.0, carry=torch.tensor(4.0))
    torch.testing.assert_close(value, sk_mlcpc.bounds.alpha_cpc(_scores(parts), alpha=2.0))
    assert state.item() == 5.0
    with pytest.raises(TypeError, match="accepts no options"):
        blockwise_bound("half_cpc", **parts, alpha=1.0)


def test_an_added_record_reaches_the_training_losses(extra_records):
    scores = torch.randn(6, 6, dtype=torch.float64)
    loss = BoundLoss("half_cpc")
    torch.testing.assert_close(loss(scores), -_half_cpc(scores))
    # Alpha is passed and the state carried (in the loss's state buffer) by the record.
    loss = BoundLoss("counting", alpha=2.0)
    for step in range(1, 4):
        value = loss(scores, training=True)
        assert loss.log_partition_ema.item() == step
    torch.testing.assert_close(value, -sk_mlcpc.bounds.alpha_cpc(scores, alpha=2.0))
    loss(scores, training=False)
    assert loss.log_partition_ema.item() == 3  # evaluation leaves the state alone
    stack = torch.randn(2, 3, 5, 5)
    predictive = PredictiveBoundLoss("half_cpc")
    expected = torch.stack([_half_cpc(m) for m in stack.reshape(6, 5, 5)]).reshape(2, 3)
    torch.testing.assert_close(predictive.per_step(stack), expected.mean(dim=1))


def test_an_added_record_reaches_the_estimators(extra_records):
    from sk_mlcpc import ContrastiveEncoder, MutualInformationEstimator
    from sk_mlcpc.datasets import make_correlated_gaussians

    X, Y, _ = make_correlated_gaussians(300, 2, mi=0.5, random_state=0)
    small = {"hidden_layer_sizes": (8,), "max_epochs": 2, "random_state": 0}
    # Accepted by the parameter checks (read from the registry when fit runs), trained
    # with the record's formula and capped by the record's cap.
    estimator = MutualInformationEstimator(objective="half_cpc", **small).fit(X, Y)
    assert estimator.mi_cap_ == 0.5 and estimator.mi_ <= 0.5
    # The record's alpha option is resolved like ML-CPC's ("auto": the record's range).
    encoder = ContrastiveEncoder(objective="counting", **small).fit(X)
    assert encoder.eval_alpha_ == resolve_alpha("auto", "counting", encoder.eval_batch_size_)
    assert encoder.bound_validity_ == "invalid"


# ---------------------------------------------------------------------------------------
# The docs read the registry
# ---------------------------------------------------------------------------------------


def _bound_table():
    """Rows ``[objective, value, lower bound?, cap]`` of the user guide's bound table."""
    text = (ROOT / "docs" / "user_guide" / "estimating_mi.rst").read_text()
    section = text.split("Which bound\n-----------", 1)[1]
    table = section.split(".. list-table::", 1)[1].split("\n\n", 2)[1]
    rows = []
    for row in re.split(r"^   \* - ", table, flags=re.M)[1:]:
        cells = re.split(r"^     - ", row, flags=re.M)
        rows.append([" ".join(cell.split()) for cell in cells])
    return rows[1:]  # less the header


def test_docs_bound_table_lists_exactly_the_registry():
    rows = _bound_table()
    names = [re.match(r'``"(\w+)"``', row[0]).group(1) for row in rows]
    assert names == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_docs_bound_table_states_each_records_validity_and_cap(name):
    row = next(r for r in _bound_table() if r[0].startswith(f'``"{name}"``'))
    _, _, lower_bound, bound_cap = row
    record = OBJECTIVES[name]
    assert lower_bound.startswith("biased estimator") == (record.validity == "invalid")
    assert (bound_cap == "none") == math.isinf(record.cap(8, 8, 1.0))


def test_api_reference_lists_every_records_function():
    api = (ROOT / "docs" / "api.rst").read_text()
    section = api.split(".. module:: sk_mlcpc.bounds", 1)[1].split(".. module::", 1)[0]
    listed = set(re.findall(r"^   ([a-z_]+)$", section, flags=re.M))
    assert {record.dense.__name__ for record in OBJECTIVES.values()} <= listed
