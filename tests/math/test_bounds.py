"""Tests for :mod:`sk_mlcpc.bounds`.

The vectorised bounds are compared with naive references written from the formulas of
DESIGN.md section 3 (explicit loops over rows and columns, float64), then checked for
gradients, invariants, caps, closed-form Gaussian behaviour, the exact discrete
counterexamples of the valid-alpha analysis, and input validation.
"""

import functools
import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from sk_mlcpc import bounds
from sk_mlcpc.bounds import (
    BOUNDS,
    alpha_cpc,
    bound_validity,
    cap,
    cpc,
    dv,
    get_bound,
    js,
    mine,
    ml_cpc,
    nwj,
    resolve_alpha,
    smile,
    tuba,
    valid_alpha_range,
)
from sk_mlcpc.datasets import gaussian_log_density_ratio, make_correlated_gaussians, mi_to_rho

# ---------------------------------------------------------------------------------------
# Parameter grids
# ---------------------------------------------------------------------------------------

#: (layout, n, m): square batches with positives on the diagonal, and n x m anchored
#: matrices with the positive in column 0.
SHAPES = [
    ("batch", 2, 2),
    ("batch", 3, 3),
    ("batch", 7, 7),
    ("batch", 16, 16),
    ("anchored", 1, 2),
    ("anchored", 3, 2),
    ("anchored", 5, 9),
    ("anchored", 16, 3),
]
SHAPE_IDS = [f"{layout}-{n}x{m}" for layout, n, m in SHAPES]

#: Small shapes for gradcheck and the invariance checks.
SMALL_SHAPES = [("batch", 4, 4), ("anchored", 3, 5)]
SMALL_SHAPE_IDS = [f"{layout}-{n}x{m}" for layout, n, m in SMALL_SHAPES]

#: Positive weights; "m" stands for alpha = m, where beta = 0.
ALPHAS = (0.01, 0.3, 1.0, 2.5, "m")


def _alpha_cases(shapes):
    cases, ids = [], []
    for layout, n, m in shapes:
        for alpha in ALPHAS:
            value = float(m) if alpha == "m" else alpha
            if value > m:
                continue
            cases.append((layout, n, m, value))
            ids.append(f"{layout}-{n}x{m}-alpha={alpha}")
    return cases, ids


ALPHA_CASES, ALPHA_CASE_IDS = _alpha_cases(SHAPES)
SMALL_ALPHA_CASES, SMALL_ALPHA_CASE_IDS = _alpha_cases(SMALL_SHAPES)

DTYPES = [torch.float32, torch.float64]
DTYPE_IDS = ["float32", "float64"]
TOLERANCE = {
    torch.float32: {"rel": 1e-5, "abs": 1e-5},
    torch.float64: {"rel": 1e-10, "abs": 1e-10},
}

ALPHA_BOUNDS = ("alpha_cpc", "ml_cpc")
CAPPED_BOUNDS = ("cpc", "alpha_cpc", "ml_cpc")


# ---------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------


def random_scores(n, m, *, dtype=torch.float64, scale=1.5, positive_shift=1.0, layout="batch"):
    """Gaussian scores with the positives raised a little, as a partly trained critic's."""
    scores = scale * torch.randn(n, m, dtype=torch.float64)
    positive_mask = _positive_mask(n, m, layout)
    scores = scores + positive_shift * positive_mask
    return scores.to(dtype)


def _positive_mask(n, m, layout):
    mask = torch.zeros(n, m, dtype=torch.float64)
    if layout == "batch":
        mask.fill_diagonal_(1.0)
    else:
        mask[:, 0] = 1.0
    return mask


def evaluate(name, scores, **kwargs):
    """Call a bound by name and return its estimate (MINE also returns its state)."""
    result = get_bound(name)(scores, **kwargs)
    return result[0] if name == "mine" else result


def _std_error(values):
    return float(np.std(values, ddof=1) / math.sqrt(len(values)))


# ---------------------------------------------------------------------------------------
# Naive references: explicit loops over the formulas of DESIGN.md section 3.
# They use scalar torch operations so that autograd can differentiate them too.
# ---------------------------------------------------------------------------------------


def _pairs(n, m, layout):
    """Index of each row's positive, and the indices of each row's negatives."""
    if layout == "batch":
        positives = [(i, i) for i in range(n)]
        negatives = [[(i, j) for j in range(m) if j != i] for i in range(n)]
    else:
        positives = [(i, 0) for i in range(n)]
        negatives = [[(i, j) for j in range(1, m)] for i in range(n)]
    return positives, negatives


def _positive_mean(S, layout):
    positives, _ = _pairs(*S.shape, layout)
    return sum(S[p] for p in positives) / len(positives)


def naive_cpc(S, layout):
    n, m = S.shape
    positives, _ = _pairs(n, m, layout)
    total = 0.0
    for i in range(n):
        row_sum = sum(torch.exp(S[i, j]) for j in range(m))
        total = total + S[positives[i]] - torch.log(row_sum)
    return total / n + math.log(m)


def naive_alpha_cpc(S, layout, alpha):
    n, m = S.shape
    positives, negatives = _pairs(n, m, layout)
    beta = (m - alpha) / (m - 1)
    total = 0.0
    for i in range(n):
        negative_sum = sum(torch.exp(S[p]) for p in negatives[i])
        normaliser = alpha * torch.exp(S[positives[i]]) + beta * negative_sum
        total = total + S[positives[i]] - torch.log(normaliser / m)
    return total / n


def naive_ml_cpc(S, layout, alpha):
    n, m = S.shape
    positives, negatives = _pairs(n, m, layout)
    beta = (m - alpha) / (m - 1)
    normaliser = 0.0
    for k in range(n):
        negative_sum = sum(torch.exp(S[p]) for p in negatives[k])
        normaliser = normaliser + alpha * torch.exp(S[positives[k]]) + beta * negative_sum
    return _positive_mean(S, layout) - torch.log(normaliser / (n * m))


def naive_tuba(S, layout, baseline=None):
    """``1 + mean(S_pos - a_pos) - mean_neg e^{S - a}`` with ``a`` an (n, m) matrix."""
    n, m = S.shape
    a = torch.zeros(n, m, dtype=S.dtype) if baseline is None else baseline
    positives, negatives = _pairs(n, m, layout)
    positive_mean = sum(S[p] - a[p] for p in positives) / n
    negative_terms = [torch.exp(S[p] - a[p]) for row in negatives for p in row]
    return 1.0 + positive_mean - sum(negative_terms) / len(negative_terms)


def naive_nwj(S, layout):
    return naive_tuba(S, layout)


def naive_partition(S, layout, clip=None):
    """``mean_neg e^{S}`` (on ``clamp(S, -clip, clip)`` when ``clip`` is given)."""
    _, negatives = _pairs(*S.shape, layout)
    terms = []
    for row in negatives:
        for p in row:
            score = S[p] if clip is None else torch.clamp(S[p], -clip, clip)
            terms.append(torch.exp(score))
    return sum(terms) / len(terms)


def naive_dv(S, layout):
    return _positive_mean(S, layout) - torch.log(naive_partition(S, layout))


def naive_smile(S, layout, clip):
    return _positive_mean(S, layout) - torch.log(naive_partition(S, layout, clip))


def naive_js_objective(S, layout):
    positives, negatives = _pairs(*S.shape, layout)
    positive_term = sum(-F.softplus(-S[p]) for p in positives) / len(positives)
    negative_terms = [F.softplus(S[p]) for row in negatives for p in row]
    return positive_term - sum(negative_terms) / len(negative_terms)


# ---------------------------------------------------------------------------------------
# 1. Values against the naive references
# ---------------------------------------------------------------------------------------

PARAMETER_FREE_REFERENCES = {"cpc": naive_cpc, "nwj": naive_nwj, "dv": naive_dv}


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize(("layout", "n", "m"), SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("name", sorted(PARAMETER_FREE_REFERENCES))
def test_parameter_free_bound_matches_naive_reference(name, layout, n, m, dtype):
    scores = random_scores(n, m, dtype=dtype, layout=layout)
    expected = PARAMETER_FREE_REFERENCES[name](scores.double(), layout).item()
    actual = evaluate(name, scores, layout=layout)
    assert actual.item() == pytest.approx(expected, **TOLERANCE[dtype])


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize(("layout", "n", "m", "alpha"), ALPHA_CASES, ids=ALPHA_CASE_IDS)
@pytest.mark.parametrize(
    ("bound", "reference"),
    [(alpha_cpc, naive_alpha_cpc), (ml_cpc, naive_ml_cpc)],
    ids=["alpha_cpc", "ml_cpc"],
)
def test_alpha_bound_matches_naive_reference(bound, reference, layout, n, m, alpha, dtype):
    scores = random_scores(n, m, dtype=dtype, layout=layout)
    expected = reference(scores.double(), layout, alpha).item()
    actual = bound(scores, alpha=alpha, layout=layout)
    assert actual.item() == pytest.approx(expected, **TOLERANCE[dtype])


def _make_baseline(kind, n, m, dtype):
    """A baseline argument for :func:`tuba` and the (n, m) matrix ``a`` it stands for."""
    if kind == "none":
        return None, torch.zeros(n, m, dtype=torch.float64)
    if kind == "scalar":
        return 0.7, torch.full((n, m), 0.7, dtype=torch.float64)
    if kind == "per_column":
        per_column = torch.randn(m, dtype=torch.float64).to(dtype)
        return per_column, per_column.double().expand(n, m)
    per_pair = torch.randn(n, m, dtype=torch.float64).to(dtype)
    return per_pair, per_pair.double()


TUBA_CASES = [
    (layout, n, m, kind)
    for layout, n, m in SHAPES
    for kind in ("none", "scalar", "per_column", "per_pair")
    if not (kind == "per_column" and layout == "anchored")
]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize(
    ("layout", "n", "m", "baseline_kind"),
    TUBA_CASES,
    ids=[f"{layout}-{n}x{m}-{kind}" for layout, n, m, kind in TUBA_CASES],
)
def test_tuba_matches_naive_reference(layout, n, m, baseline_kind, dtype):
    scores = random_scores(n, m, dtype=dtype, layout=layout)
    baseline, baseline_matrix = _make_baseline(baseline_kind, n, m, dtype)
    expected = naive_tuba(scores.double(), layout, baseline_matrix).item()
    actual = tuba(scores, baseline=baseline, layout=layout)
    assert actual.item() == pytest.approx(expected, **TOLERANCE[dtype])


@pytest.mark.parametrize("layout", ["batch", "anchored"])
def test_tuba_without_baseline_is_nwj(layout):
    scores = random_scores(5, 5, layout=layout)
    assert tuba(scores, layout=layout).item() == pytest.approx(nwj(scores, layout=layout).item())


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize(("layout", "n", "m"), SHAPES, ids=SHAPE_IDS)
def test_mine_and_js_values_are_dv_and_nwj(layout, n, m, dtype):
    scores = random_scores(n, m, dtype=dtype, layout=layout)
    reference_scores = scores.double()
    estimate, _ = mine(scores, layout=layout)
    assert estimate.item() == pytest.approx(
        naive_dv(reference_scores, layout).item(), **TOLERANCE[dtype]
    )
    assert js(scores, layout=layout).item() == pytest.approx(
        naive_nwj(reference_scores, layout).item(), **TOLERANCE[dtype]
    )


@pytest.mark.parametrize("clip", [0.5, 2.0, 100.0])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize(("layout", "n", "m"), SHAPES, ids=SHAPE_IDS)
def test_smile_value_is_dv_with_clipped_partition(layout, n, m, dtype, clip):
    # Scale 3 with shifted positives: many scores lie beyond +-clip, positives included,
    # so clipping the positives as well would change the value.
    scores = random_scores(n, m, dtype=dtype, scale=3.0, positive_shift=3.0, layout=layout)
    expected = naive_smile(scores.double(), layout, clip).item()
    actual = smile(scores, clip=clip, layout=layout)
    assert actual.item() == pytest.approx(expected, **TOLERANCE[dtype])


def test_smile_with_a_wide_clip_is_dv():
    scores = random_scores(8, 8)
    assert smile(scores, clip=1e3).item() == pytest.approx(dv(scores).item(), rel=1e-12)


def test_smile_clipping_changes_the_value():
    # Guards the reference test above against scores that never reach the clip.
    scores = random_scores(8, 8, scale=3.0)
    assert abs(smile(scores, clip=0.5).item() - dv(scores).item()) > 0.1


# ---------------------------------------------------------------------------------------
# 2. Gradients
# ---------------------------------------------------------------------------------------


def _gradcheck_cases():
    cases = []
    for layout, n, m in SMALL_SHAPES:
        for name in ("cpc", "nwj", "dv"):
            cases.append(pytest.param(name, layout, n, m, {}, id=f"{name}-{layout}"))
    for layout, n, m, alpha in SMALL_ALPHA_CASES:
        for name in ALPHA_BOUNDS:
            cases.append(
                pytest.param(name, layout, n, m, {"alpha": alpha}, id=f"{name}-{layout}-{alpha}")
            )
    return cases


@pytest.mark.parametrize(("name", "layout", "n", "m", "kwargs"), _gradcheck_cases())
def test_gradcheck(name, layout, n, m, kwargs):
    scores = random_scores(n, m, layout=layout).requires_grad_()
    bound = get_bound(name)
    assert torch.autograd.gradcheck(lambda s: bound(s, layout=layout, **kwargs), (scores,))


@pytest.mark.parametrize(("layout", "n", "m"), SMALL_SHAPES, ids=SMALL_SHAPE_IDS)
def test_gradcheck_tuba_with_baseline(layout, n, m):
    scores = random_scores(n, m, layout=layout).requires_grad_()
    baseline = torch.randn(n, m, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda s, a: tuba(s, baseline=a, layout=layout), (scores, baseline)
    )


@pytest.mark.parametrize(("layout", "n", "m"), SMALL_SHAPES, ids=SMALL_SHAPE_IDS)
def test_gradcheck_mine_without_state_is_dv(layout, n, m):
    # Without a moving average the partition term's gradient is grad Z / Z: MINE's
    # gradient is then DV's, which is also the derivative of the value it reports.
    scores = random_scores(n, m, layout=layout).requires_grad_()
    assert torch.autograd.gradcheck(lambda s: mine(s, layout=layout)[0], (scores,))


def _gradient(function, scores):
    scores = scores.detach().clone().requires_grad_()
    function(scores).backward()
    return scores.grad


@pytest.mark.parametrize(("layout", "n", "m"), SMALL_SHAPES, ids=SMALL_SHAPE_IDS)
@pytest.mark.parametrize(
    "name_and_kwargs",
    [("js", {}), ("smile", {"clip": 1.0}), ("smile", {"clip": 5.0})],
    ids=["js", "smile-clip1", "smile-clip5"],
)
def test_js_and_smile_train_with_the_js_gradient(name_and_kwargs, layout, n, m):
    name, kwargs = name_and_kwargs
    scores = random_scores(n, m, scale=2.0, layout=layout)
    actual = _gradient(lambda s: evaluate(name, s, layout=layout, **kwargs), scores)
    expected = _gradient(lambda s: naive_js_objective(s, layout), scores)
    torch.testing.assert_close(actual, expected, rtol=1e-10, atol=1e-12)
    # The JS gradient is not the gradient of the reported value.
    reported = naive_nwj if name == "js" else functools.partial(naive_smile, **kwargs)
    value_gradient = _gradient(lambda s: reported(s, layout), scores)
    assert not torch.allclose(actual, value_gradient, atol=1e-3)


@pytest.mark.parametrize(("layout", "n", "m"), SMALL_SHAPES, ids=SMALL_SHAPE_IDS)
@pytest.mark.parametrize("momentum", [0.0, 0.5, 0.9])
@pytest.mark.parametrize("state", [None, -1.0, 2.0], ids=["no-state", "state=-1", "state=2"])
def test_mine_gradient_uses_the_moving_average(state, momentum, layout, n, m):
    scores = random_scores(n, m, layout=layout)
    log_state = None if state is None else torch.tensor(state, dtype=torch.float64)
    batch_partition = naive_partition(scores, layout).item()
    if state is None:
        partition_ema = batch_partition
    else:
        partition_ema = momentum * math.exp(state) + (1.0 - momentum) * batch_partition

    def surrogate(s):
        return _positive_mean(s, layout) - naive_partition(s, layout) / partition_ema

    actual = _gradient(
        lambda s: mine(s, log_partition_ema=log_state, momentum=momentum, layout=layout)[0],
        scores,
    )
    torch.testing.assert_close(actual, _gradient(surrogate, scores), rtol=1e-10, atol=1e-12)
    if state is not None and momentum > 0:
        # The moving average really changes the gradient (it is not DV's).
        assert not torch.allclose(actual, _gradient(lambda s: naive_dv(s, layout), scores))


@pytest.mark.parametrize(("layout", "n", "m"), SMALL_SHAPES, ids=SMALL_SHAPE_IDS)
@pytest.mark.parametrize("momentum", [0.5, 0.9])
def test_mine_returns_the_moving_average_over_consecutive_calls(momentum, layout, n, m):
    state, expected_log_ema = None, None
    for scale in (0.5, 1.5, 2.5):  # different partitions from step to step
        scores = random_scores(n, m, scale=scale, layout=layout)
        batch_log_partition = math.log(naive_partition(scores, layout).item())
        if expected_log_ema is None:
            expected_log_ema = batch_log_partition
        else:
            expected_log_ema = math.log(
                momentum * math.exp(expected_log_ema)
                + (1.0 - momentum) * math.exp(batch_log_partition)
            )
        estimate, state = mine(scores, log_partition_ema=state, momentum=momentum, layout=layout)
        assert state.ndim == 0
        assert not state.requires_grad
        assert state.item() == pytest.approx(expected_log_ema, rel=1e-12, abs=1e-12)
        assert estimate.item() == pytest.approx(naive_dv(scores, layout).item(), rel=1e-12)
    # After three calls the average differs from the last batch's value (the official code
    # returned the batch value).
    assert abs(state.item() - batch_log_partition) > 0.05


def test_mine_state_does_not_carry_a_graph():
    scores = random_scores(4, 4).requires_grad_()
    _, state = mine(scores)
    assert state.grad_fn is None


# ---------------------------------------------------------------------------------------
# 3. Invariants
# ---------------------------------------------------------------------------------------


def _kwargs_for(name, n, m, layout):
    """Non-default arguments that exercise each bound's optional inputs."""
    if name in ALPHA_BOUNDS:
        return {"alpha": 0.3}
    if name == "tuba":
        shape = (m,) if layout == "batch" else (n, m)
        return {"baseline": torch.randn(*shape, dtype=torch.float64)}
    if name == "mine":
        return {"log_partition_ema": torch.tensor(0.4, dtype=torch.float64)}
    if name == "smile":
        return {"clip": 1.0}
    return {}


@pytest.mark.parametrize(("layout", "n", "m"), SMALL_SHAPES, ids=SMALL_SHAPE_IDS)
@pytest.mark.parametrize("name", sorted(BOUNDS))
def test_bounds_do_not_mutate_their_inputs(name, layout, n, m):
    scores = random_scores(n, m, layout=layout)
    kwargs = _kwargs_for(name, n, m, layout)
    originals = {key: value.clone() for key, value in kwargs.items() if torch.is_tensor(value)}
    scores_before = scores.clone()
    evaluate(name, scores, layout=layout, **kwargs)
    assert torch.equal(scores, scores_before)
    for key, before in originals.items():
        assert torch.equal(kwargs[key], before), key


@pytest.mark.parametrize(("layout", "n", "m"), SMALL_SHAPES, ids=SMALL_SHAPE_IDS)
@pytest.mark.parametrize("name", sorted(BOUNDS))
def test_bounds_backpropagate_finite_gradients(name, layout, n, m):
    scores = random_scores(n, m, layout=layout).requires_grad_()
    evaluate(name, scores, layout=layout, **_kwargs_for(name, n, m, layout)).backward()
    assert scores.grad is not None
    assert torch.isfinite(scores.grad).all()


@pytest.mark.parametrize(
    "dtype",
    [torch.float16, torch.bfloat16, torch.float32, torch.float64],
    ids=["float16", "bfloat16", "float32", "float64"],
)
@pytest.mark.parametrize("layout", ["batch", "anchored"])
@pytest.mark.parametrize("name", sorted(BOUNDS))
def test_output_is_a_scalar_on_the_input_device_and_dtype(name, layout, dtype):
    scores = random_scores(6, 6, scale=1.0, layout=layout).to(dtype)
    kwargs = _kwargs_for(name, 6, 6, layout)
    if name == "tuba":
        kwargs["baseline"] = kwargs["baseline"].to(dtype)
    value = evaluate(name, scores, layout=layout, **kwargs)
    assert isinstance(value, torch.Tensor)
    assert value.shape == ()
    assert value.dtype == dtype
    assert value.device == scores.device
    assert torch.isfinite(value)


@pytest.mark.parametrize(
    ("dtype", "tolerance"),
    [(torch.float16, {"rel": 2e-3, "abs": 2e-3}), (torch.bfloat16, {"rel": 1e-2, "abs": 1e-2})],
    ids=["float16", "bfloat16"],
)
@pytest.mark.parametrize("layout", ["batch", "anchored"])
@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("cpc", {}),
        ("alpha_cpc", {"alpha": 0.3}),
        ("ml_cpc", {}),
        ("ml_cpc", {"alpha": 0.05}),
        ("dv", {}),
        ("smile", {}),
    ],
    ids=["cpc", "alpha_cpc", "ml_cpc", "ml_cpc-alpha0.05", "dv", "smile"],
)
def test_half_precision_is_accumulated_in_float32(name, kwargs, layout, dtype, tolerance):
    # Entries up to +-30: e^30 overflows float16 (max 65504), so raw exponentials in the
    # input dtype would give inf or NaN.
    scores = (30.0 * (2.0 * torch.rand(32, 32, dtype=torch.float64) - 1.0)).to(dtype)
    value = evaluate(name, scores, layout=layout, **kwargs)
    expected = evaluate(name, scores.double(), layout=layout, **kwargs).item()
    assert value.dtype == dtype
    assert torch.isfinite(value)
    assert value.item() == pytest.approx(expected, **tolerance)


SHIFT_INVARIANT = [
    ("cpc", {}),
    ("alpha_cpc", {"alpha": 0.3}),
    ("alpha_cpc", {"alpha": 2.5}),
    ("ml_cpc", {"alpha": 1.0}),
    ("ml_cpc", {"alpha": 0.01}),
    ("ml_cpc", {"alpha": 2.5}),
    ("dv", {}),
]
SHIFT_INVARIANT_IDS = [
    "cpc",
    "alpha_cpc-0.3",
    "alpha_cpc-2.5",
    "ml_cpc-1",
    "ml_cpc-0.01",
    "ml_cpc-2.5",
    "dv",
]


@pytest.mark.parametrize("shift", [-7.5, 12.0])
@pytest.mark.parametrize(("layout", "n", "m"), SMALL_SHAPES, ids=SMALL_SHAPE_IDS)
@pytest.mark.parametrize(("name", "kwargs"), SHIFT_INVARIANT, ids=SHIFT_INVARIANT_IDS)
def test_invariant_to_a_constant_added_to_all_scores(name, kwargs, layout, n, m, shift):
    scores = random_scores(n, m, layout=layout)
    before = evaluate(name, scores, layout=layout, **kwargs).item()
    after = evaluate(name, scores + shift, layout=layout, **kwargs).item()
    assert after == pytest.approx(before, rel=1e-10, abs=1e-10)


@pytest.mark.parametrize(("layout", "n", "m"), SMALL_SHAPES, ids=SMALL_SHAPE_IDS)
@pytest.mark.parametrize(
    ("name", "kwargs"),
    [("cpc", {}), ("alpha_cpc", {"alpha": 0.3}), ("alpha_cpc", {"alpha": 2.5})],
    ids=["cpc", "alpha_cpc-0.3", "alpha_cpc-2.5"],
)
def test_row_normalised_bounds_ignore_per_row_constants(name, kwargs, layout, n, m):
    scores = random_scores(n, m, layout=layout)
    row_shift = 10.0 * torch.randn(n, 1, dtype=torch.float64)
    before = evaluate(name, scores, layout=layout, **kwargs).item()
    after = evaluate(name, scores + row_shift, layout=layout, **kwargs).item()
    assert after == pytest.approx(before, rel=1e-10, abs=1e-10)


def test_ml_cpc_depends_on_per_row_constants():
    # ML-CPC shares one normaliser across rows, unlike CPC (the test above).
    scores = random_scores(6, 6)
    row_shift = 3.0 * torch.arange(6, dtype=torch.float64).unsqueeze(1)
    assert abs(ml_cpc(scores + row_shift).item() - ml_cpc(scores).item()) > 0.1


@pytest.mark.parametrize(("layout", "n", "m"), SHAPES, ids=SHAPE_IDS)
def test_alpha_cpc_with_alpha_one_is_cpc(layout, n, m):
    scores = random_scores(n, m, layout=layout)
    assert alpha_cpc(scores, alpha=1.0, layout=layout).item() == pytest.approx(
        cpc(scores, layout=layout).item(), rel=1e-12, abs=1e-12
    )


@pytest.mark.parametrize(("layout", "n", "m"), SHAPES, ids=SHAPE_IDS)
def test_ml_cpc_with_alpha_one_is_mean_positive_minus_log_mean_exp(layout, n, m):
    scores = random_scores(n, m, layout=layout)
    mask = _positive_mask(n, m, layout).bool()
    expected = scores[mask].mean() - (torch.logsumexp(scores.flatten(), 0) - math.log(n * m))
    assert ml_cpc(scores, layout=layout).item() == pytest.approx(expected.item(), rel=1e-12)


@pytest.mark.parametrize("scale", [0.5, 3.0, 10.0])
@pytest.mark.parametrize(("layout", "n", "m", "alpha"), ALPHA_CASES, ids=ALPHA_CASE_IDS)
def test_ml_cpc_never_exceeds_alpha_cpc(layout, n, m, alpha, scale):
    for _ in range(5):
        scores = random_scores(n, m, scale=scale, positive_shift=scale, layout=layout)
        ml = ml_cpc(scores, alpha=alpha, layout=layout).item()
        assert ml <= alpha_cpc(scores, alpha=alpha, layout=layout).item() + 1e-12


def test_ml_cpc_is_strictly_below_alpha_cpc_when_rows_differ():
    # Jensen's inequality is strict when the row normalisers differ.
    scores = random_scores(6, 6, scale=3.0)
    assert ml_cpc(scores, alpha=0.3).item() < alpha_cpc(scores, alpha=0.3).item() - 1e-3


# ---------------------------------------------------------------------------------------
# 4. Caps
# ---------------------------------------------------------------------------------------


def _dominant_positives(n, m, layout, dtype=torch.float64, height=50.0):
    return (height * _positive_mask(n, m, layout)).to(dtype)


@pytest.mark.parametrize(("layout", "n", "m"), SHAPES, ids=SHAPE_IDS)
def test_cpc_reaches_log_m_for_a_dominant_positive(layout, n, m):
    value = cpc(_dominant_positives(n, m, layout), layout=layout).item()
    assert value == pytest.approx(math.log(m), rel=1e-12, abs=1e-12)
    assert value == pytest.approx(cap("cpc", n, m), rel=1e-12, abs=1e-12)


@pytest.mark.parametrize(("layout", "n", "m", "alpha"), ALPHA_CASES, ids=ALPHA_CASE_IDS)
@pytest.mark.parametrize("name", ALPHA_BOUNDS)
def test_alpha_bounds_reach_log_m_over_alpha_for_a_dominant_positive(name, layout, n, m, alpha):
    value = evaluate(name, _dominant_positives(n, m, layout), alpha=alpha, layout=layout).item()
    assert value == pytest.approx(math.log(m / alpha), rel=1e-12, abs=1e-12)
    assert value == pytest.approx(cap(name, n, m, alpha=alpha), rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("scale", [0.5, 3.0, 20.0])
@pytest.mark.parametrize(("layout", "n", "m", "alpha"), ALPHA_CASES, ids=ALPHA_CASE_IDS)
@pytest.mark.parametrize("name", CAPPED_BOUNDS)
def test_no_bound_exceeds_its_cap(name, layout, n, m, alpha, scale):
    kwargs = {} if name == "cpc" else {"alpha": alpha}
    limit = cap(name, n, m, alpha=alpha)
    for _ in range(5):
        scores = random_scores(n, m, scale=scale, positive_shift=scale, layout=layout)
        value = evaluate(name, scores, layout=layout, **kwargs).item()
        assert value <= limit + 1e-9


@pytest.mark.parametrize(("layout", "n", "m"), SHAPES, ids=SHAPE_IDS)
def test_alpha_equal_to_m_gives_zero_cap_without_nan(layout, n, m):
    scores = random_scores(n, m, layout=layout).requires_grad_()
    alpha = float(m)  # beta = 0: the negatives drop out
    assert cap("ml_cpc", n, m, alpha=alpha) == 0.0
    value = alpha_cpc(scores, alpha=alpha, layout=layout)
    assert value.item() == pytest.approx(0.0, abs=1e-12)
    ml = ml_cpc(scores, alpha=alpha, layout=layout)
    positives = scores[_positive_mask(n, m, layout).bool()]
    expected = positives.mean() - (torch.logsumexp(positives, 0) - math.log(n))
    assert ml.item() == pytest.approx(expected.item(), rel=1e-12, abs=1e-12)
    assert ml.item() <= 1e-12
    (value + ml).backward()
    assert torch.isfinite(scores.grad).all()
    # With equal positives ML-CPC reaches its cap of 0 as well.
    constant = ml_cpc(_dominant_positives(n, m, layout), alpha=alpha, layout=layout)
    assert constant.item() == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("layout", ["batch", "anchored"])
@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("cpc", {}),
        ("alpha_cpc", {"alpha": 0.5}),
        ("ml_cpc", {}),
        ("ml_cpc", {"alpha": 0.01}),
        ("dv", {}),
    ],
    ids=["cpc", "alpha_cpc", "ml_cpc", "ml_cpc-alpha0.01", "dv"],
)
def test_large_scores_stay_finite_in_float32(name, kwargs, layout):
    scores64 = 1e4 * torch.randn(8, 8, dtype=torch.float64) + 1e4 * _positive_mask(8, 8, layout)
    scores = scores64.float()
    value = evaluate(name, scores, layout=layout, **kwargs)
    expected = evaluate(name, scores.double(), layout=layout, **kwargs).item()
    assert torch.isfinite(value)
    assert value.item() == pytest.approx(expected, rel=1e-5, abs=1e-2)


# ---------------------------------------------------------------------------------------
# 5. Closed-form Gaussian checks with the optimal critic log p(y|x) - log p(y)
# ---------------------------------------------------------------------------------------


@functools.cache
def gaussian_score_batches(mi, n_features, batch_size, n_batches):
    """Optimal-critic score matrices of ``n_batches`` independent batches, and the MI."""
    X, Y, true_mi = make_correlated_gaussians(
        batch_size * n_batches, n_features, mi=mi, random_state=0
    )
    rho = mi_to_rho(mi, n_features)
    batches = [
        gaussian_log_density_ratio(X[k : k + batch_size], Y[k : k + batch_size], rho)
        for k in range(0, batch_size * n_batches, batch_size)
    ]
    return torch.from_numpy(np.stack(batches)), true_mi


def _batch_values(name, score_batches, **kwargs):
    return np.array([evaluate(name, scores, **kwargs).item() for scores in score_batches])


def _estimate_gaps(name, score_batches, **kwargs):
    """Per-batch value minus the mean positive score.

    The mean positive score of the optimal critic is an unbiased estimate of the MI, so
    the gap has expectation E[bound] - I(X; Y) with a much smaller spread than the value.
    """
    values = _batch_values(name, score_batches, **kwargs)
    positive_means = score_batches.diagonal(dim1=1, dim2=2).mean(dim=1).numpy()
    return values, values - positive_means


@pytest.mark.parametrize("n_features", [2, 5])
@pytest.mark.parametrize("name", ["cpc", "ml_cpc"])
def test_cpc_and_ml_cpc_lie_just_below_a_low_mi(name, n_features):
    score_batches, true_mi = gaussian_score_batches(0.5, n_features, 64, 200)
    values, gaps = _estimate_gaps(name, score_batches)
    assert abs(values.mean() - true_mi) < 0.1
    assert gaps.mean() + 3 * _std_error(gaps) < 0.0  # significantly below the truth


@pytest.mark.parametrize("n_features", [2, 5])
def test_nwj_is_unbiased_for_the_optimal_critic(n_features):
    score_batches, true_mi = gaussian_score_batches(0.5, n_features, 64, 200)
    values, gaps = _estimate_gaps("nwj", score_batches)
    assert abs(values.mean() - true_mi) < 3 * _std_error(values)
    assert abs(gaps.mean()) < 3 * _std_error(gaps)


@pytest.mark.parametrize("n_features", [2, 5])
def test_ml_cpc_at_the_working_alpha_limit_is_not_above_a_low_mi(n_features):
    score_batches, true_mi = gaussian_score_batches(0.5, n_features, 64, 200)
    alpha = valid_alpha_range(64).low
    values, gaps = _estimate_gaps("ml_cpc", score_batches, alpha=alpha)
    assert abs(values.mean() - true_mi) < 0.1
    assert gaps.mean() < 3 * _std_error(gaps)


def test_cpc_saturates_at_log_n_for_a_high_mi():
    n = 64
    score_batches, true_mi = gaussian_score_batches(8.0, 5, n, 200)
    values = _batch_values("cpc", score_batches)
    assert true_mi > math.log(n) + 3
    assert values.max() <= math.log(n) + 1e-12
    assert values.mean() > math.log(n) - 0.1


def test_ml_cpc_with_small_alpha_exceeds_log_n_but_not_a_high_mi():
    n = 64
    score_batches, true_mi = gaussian_score_batches(8.0, 5, n, 200)
    alpha = valid_alpha_range(n).low
    values = _batch_values("ml_cpc", score_batches, alpha=alpha)
    assert values.max() <= cap("ml_cpc", n, alpha=alpha) + 1e-12
    assert values.mean() > math.log(n) + 1.0
    assert values.mean() + 3 * _std_error(values) < true_mi


# ---------------------------------------------------------------------------------------
# Exact discrete counterexamples of DESIGN.md section 3.1: X uniform on K symbols, Y = X,
# critic s * 1[x = y]. With C = #{i != j : x_i = x_j}, ML-CPC tends to
# 2 log n - log(alpha n + beta C) as s grows; C's law is exact by dynamic programming.
# ---------------------------------------------------------------------------------------


def collision_count_law(n, K):
    """P(C = c), c = 0..n(n-1), for n uniform draws from K symbols."""
    max_count = n * (n - 1)
    inverse_factorial = [1.0 / math.factorial(c) for c in range(n + 1)]
    # weights[t, c]: sum over count vectors of the symbols so far, t draws, C = c, of
    # prod 1 / c_k! (the multinomial coefficient without n!).
    weights = np.zeros((n + 1, max_count + 1))
    weights[0, 0] = 1.0
    for _ in range(K):
        updated = np.zeros_like(weights)
        for count in range(n + 1):
            pairs = count * (count - 1)
            updated[count:, pairs:] += (
                inverse_factorial[count] * weights[: n + 1 - count, : max_count + 1 - pairs]
            )
        weights = updated
    return weights[n] * math.exp(math.lgamma(n + 1) - n * math.log(K))


def limiting_expected_ml_cpc(n, K, alpha):
    law = collision_count_law(n, K)
    counts = np.arange(law.size)
    assert law.sum() == pytest.approx(1.0, rel=1e-10)
    assert (law * counts).sum() == pytest.approx(n * (n - 1) / K, rel=1e-10)
    beta = (n - alpha) / (n - 1)
    support = law > 0
    log_normalisers = np.log(alpha * n + beta * counts[support])
    return 2 * math.log(n) - float((law[support] * log_normalisers).sum())


@pytest.mark.parametrize("n_symbols", [2, 10, 60])
def test_direct_collision_law_agrees_with_the_generating_function_law(n_symbols):
    # Two independent exact computations: the symbol-by-symbol recursion above and the
    # roots-of-unity generating function of sk_mlcpc._math.collision (all pairs copied).
    from sk_mlcpc._math.collision import collision_law

    n = 16
    direct = collision_count_law(n, n_symbols)
    generating = collision_law(n, n_symbols, 1.0)[n]
    np.testing.assert_allclose(generating, direct, rtol=0, atol=1e-12)


@pytest.mark.parametrize("alpha", [0.01, 0.05, 1.0])
@pytest.mark.parametrize("n_symbols", [3, 10, 60])
def test_ml_cpc_on_the_discrete_counterexample_matches_the_collision_formula(n_symbols, alpha):
    n, s = 16, 60.0
    for _ in range(3):
        x = torch.randint(n_symbols, (n,))
        same = (x[:, None] == x[None, :]).double()
        collisions = int(same.sum().item()) - n
        beta = (n - alpha) / (n - 1)
        expected = 2 * math.log(n) - math.log(alpha * n + beta * collisions)
        assert ml_cpc(s * same, alpha=alpha).item() == pytest.approx(expected, rel=1e-10)


def test_ml_cpc_below_the_alpha_limit_exceeds_the_mi_of_a_discrete_pair():
    n, K, alpha = 16, 59, 0.05
    assert bound_validity("ml_cpc", n, alpha=alpha) == "invalid"
    assert limiting_expected_ml_cpc(n, K, alpha) > math.log(K) + 0.03


@pytest.mark.parametrize("n_symbols", [2, 3, 5, 10, 37, 59, 150])
def test_ml_cpc_at_the_alpha_limit_stays_below_the_mi_of_a_discrete_pair(n_symbols):
    n = 16
    alpha = resolve_alpha("auto", "ml_cpc", n)
    assert bound_validity("ml_cpc", n, alpha=alpha) == "claimed"
    assert limiting_expected_ml_cpc(n, n_symbols, alpha) <= math.log(n_symbols)


@pytest.mark.slow
def test_ml_cpc_counterexamples_at_n_64():
    n = 64
    # alpha = 0.01 overshoots by about 0.1 nats near K = 1000 (DESIGN.md section 3.1).
    assert limiting_expected_ml_cpc(n, 1000, 0.01) > math.log(1000) + 0.05
    assert bound_validity("ml_cpc", n, alpha=0.01) == "invalid"
    alpha = resolve_alpha("auto", "ml_cpc", n)
    for n_symbols in (2, 10, 100, 1000):
        assert limiting_expected_ml_cpc(n, n_symbols, alpha) <= math.log(n_symbols)


# ---------------------------------------------------------------------------------------
# 6. Errors and the helper functions
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(BOUNDS))
def test_non_tensor_scores_raise_type_error(name):
    with pytest.raises(TypeError, match=r"torch\.Tensor"):
        evaluate(name, np.zeros((4, 4)))


@pytest.mark.parametrize("dtype", [torch.int64, torch.bool], ids=["int64", "bool"])
@pytest.mark.parametrize("name", sorted(BOUNDS))
def test_non_floating_scores_raise_type_error(name, dtype):
    with pytest.raises(TypeError, match="floating"):
        evaluate(name, torch.ones(4, 4, dtype=dtype))


@pytest.mark.parametrize("shape", [(), (4,), (2, 4, 4)], ids=["0-d", "1-d", "3-d"])
@pytest.mark.parametrize("name", sorted(BOUNDS))
def test_scores_must_be_a_matrix(name, shape):
    with pytest.raises(ValueError, match="2-D"):
        evaluate(name, torch.zeros(shape))


@pytest.mark.parametrize("name", sorted(BOUNDS))
def test_non_square_batch_layout_points_to_anchored(name):
    with pytest.raises(ValueError, match="anchored"):
        evaluate(name, torch.zeros(3, 5))


@pytest.mark.parametrize("name", sorted(BOUNDS))
def test_unknown_layout_raises(name):
    with pytest.raises(ValueError, match="layout"):
        evaluate(name, torch.zeros(4, 4), layout="rows")


@pytest.mark.parametrize(
    ("shape", "layout"),
    [((1, 1), "batch"), ((1, 1), "anchored"), ((4, 1), "anchored"), ((0, 4), "anchored")],
    ids=["1x1-batch", "1x1-anchored", "4x1-anchored", "0x4-anchored"],
)
@pytest.mark.parametrize("name", sorted(BOUNDS))
def test_scores_without_negatives_raise(name, shape, layout):
    with pytest.raises(ValueError, match="negatives"):
        evaluate(name, torch.zeros(shape), layout=layout)


@pytest.mark.parametrize("alpha", [0.0, -1.0, 4.5, math.inf, math.nan])
@pytest.mark.parametrize("name", ALPHA_BOUNDS)
def test_alpha_outside_zero_to_m_raises(name, alpha):
    with pytest.raises(ValueError, match="alpha"):
        evaluate(name, torch.zeros(4, 4), alpha=alpha)


@pytest.mark.parametrize("alpha", [True, "auto", None])
@pytest.mark.parametrize("name", ALPHA_BOUNDS)
def test_non_numeric_alpha_raises_type_error(name, alpha):
    with pytest.raises(TypeError, match="alpha"):
        evaluate(name, torch.zeros(4, 4), alpha=alpha)


@pytest.mark.parametrize(
    ("layout", "shape", "baseline_shape"),
    [
        ("batch", (4, 4), (3,)),
        ("batch", (4, 4), (4, 1)),
        ("batch", (4, 4), (2, 4, 4)),
        ("anchored", (3, 5), (5,)),
        ("anchored", (3, 5), (5, 3)),
    ],
    ids=["batch-3", "batch-4x1", "batch-2x4x4", "anchored-per-column", "anchored-transposed"],
)
def test_tuba_rejects_a_baseline_of_the_wrong_shape(layout, shape, baseline_shape):
    with pytest.raises(ValueError, match="baseline"):
        tuba(torch.zeros(shape), baseline=torch.zeros(baseline_shape), layout=layout)


@pytest.mark.parametrize("momentum", [-0.1, 1.0, 1.5, math.nan])
def test_mine_rejects_momentum_outside_unit_interval(momentum):
    with pytest.raises(ValueError, match="momentum"):
        mine(torch.zeros(4, 4), momentum=momentum)


@pytest.mark.parametrize("clip", [0.0, -1.0, math.nan])
def test_smile_rejects_a_non_positive_clip(clip):
    with pytest.raises(ValueError, match="clip"):
        smile(torch.zeros(4, 4), clip=clip)


def test_get_bound_returns_the_registered_functions():
    assert set(BOUNDS) == {"cpc", "alpha_cpc", "ml_cpc", "nwj", "tuba", "dv", "mine", "js", "smile"}
    for name, function in BOUNDS.items():
        assert get_bound(name) is function
        assert function.__name__ == name
        assert name in bounds.__all__


@pytest.mark.parametrize("name", ["nope", "infonce", None, ["cpc"]])
def test_get_bound_lists_the_choices_for_an_unknown_name(name):
    with pytest.raises(ValueError, match="Choose one of") as info:
        get_bound(name)
    for choice in BOUNDS:
        assert repr(choice) in str(info.value)


@pytest.mark.parametrize(
    ("name", "n", "m", "alpha", "expected"),
    [
        ("cpc", 128, None, 1.0, math.log(128)),
        ("cpc", 4, 9, 1.0, math.log(9)),
        ("alpha_cpc", 128, None, 0.5, math.log(256)),
        ("ml_cpc", 128, None, 0.01, math.log(12800)),
        ("ml_cpc", 5, 9, 9.0, 0.0),
        ("nwj", 128, None, 1.0, math.inf),
        ("tuba", 128, None, 1.0, math.inf),
        ("dv", 128, None, 1.0, math.inf),
        ("mine", 128, None, 1.0, math.inf),
        ("js", 128, None, 1.0, math.inf),
        ("smile", 128, None, 1.0, math.inf),
    ],
)
def test_cap_values(name, n, m, alpha, expected):
    assert cap(name, n, m, alpha=alpha) == pytest.approx(expected, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        (("nope", 8), {}, "Unknown bound"),
        (("cpc", 0), {}, "n must"),
        (("cpc", 8, 1), {}, "m must"),
        (("cpc", 8.0), {}, "n must"),
        (("cpc", True), {}, "n must"),
        (("ml_cpc", 8), {"alpha": 0.0}, "alpha"),
        (("ml_cpc", 8), {"alpha": 9.0}, "alpha"),
    ],
)
def test_cap_rejects_bad_arguments(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cap(*args, **kwargs)


def test_valid_alpha_range_for_ml_cpc():
    n = 128
    limits = valid_alpha_range(n)
    c = n * (n - 1) + 1
    # alpha="auto" is 1.007 alpha* at n = 128 (alpha* itself fails there, see
    # tests/math/test_validity.py).
    assert limits.alpha_star == pytest.approx(n / c, rel=1e-14)
    assert limits.low == pytest.approx(1.007 * n / c, rel=1e-14)
    assert limits.low == pytest.approx(0.007929, abs=5e-7)
    assert limits.high == 128.0
    assert limits.proven_low == 1.0
    assert limits.invalid_below == pytest.approx(c - math.sqrt(c * c - n), rel=1e-6)
    assert limits.invalid_below < limits.low
    assert cap("ml_cpc", n, alpha=limits.alpha_star) == pytest.approx(math.log(c), rel=1e-12)
    assert cap("ml_cpc", n, alpha=limits.low) == pytest.approx(math.log(c / 1.007), rel=1e-12)


def test_valid_alpha_range_anchored_and_alpha_cpc():
    n, m = 5, 9
    c = n * (m - 1) + 1
    # The anchored layout was not searched: it takes the ratio beyond the table, 1.024.
    assert valid_alpha_range(n, m).low == pytest.approx(1.024 * m / c, rel=1e-14)
    assert valid_alpha_range(n, m).alpha_star == pytest.approx(m / c, rel=1e-14)
    limits = valid_alpha_range(128, objective="alpha_cpc")
    assert limits.low == 1.0  # alpha-CPC behaves as ML-CPC with n = 1
    assert limits.invalid_below == pytest.approx(0.501, abs=1e-3)


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [((128,), {"objective": "cpc"}), ((0,), {}), ((1,), {}), ((8, 1), {})],
    ids=["objective-cpc", "n=0", "n=1", "m=1"],
)
def test_valid_alpha_range_rejects_bad_arguments(args, kwargs):
    with pytest.raises(ValueError):
        valid_alpha_range(*args, **kwargs)


@pytest.mark.parametrize(
    ("name", "alpha", "expected"),
    [
        ("cpc", 1.0, "proven"),
        ("nwj", 1.0, "proven"),
        ("tuba", 1.0, "proven"),
        ("js", 1.0, "proven"),
        ("dv", 1.0, "invalid"),
        ("mine", 1.0, "invalid"),
        ("smile", 1.0, "invalid"),
        ("ml_cpc", 1.0, "proven"),
        ("ml_cpc", 128.0, "proven"),
        ("ml_cpc", 0.01, "claimed"),
        ("ml_cpc", 128 / (128 * 127 + 1), "invalid"),
        ("ml_cpc", 1.007 * 128 / (128 * 127 + 1), "claimed"),
        ("ml_cpc", 0.007, "invalid"),
        ("ml_cpc", 0.001, "invalid"),
        ("alpha_cpc", 1.0, "proven"),
        ("alpha_cpc", 2.5, "proven"),
        ("alpha_cpc", 0.9, "invalid"),
        ("alpha_cpc", 0.5, "invalid"),
    ],
)
def test_bound_validity(name, alpha, expected):
    assert bound_validity(name, 128, alpha=alpha) == expected


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        (("nope", 128), {}, "Unknown bound"),
        (("ml_cpc", 128), {"alpha": 0.0}, "alpha"),
        (("ml_cpc", 128), {"alpha": 200.0}, "alpha"),
        (("cpc", 1), {}, "m must"),
    ],
)
def test_bound_validity_rejects_bad_arguments(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        bound_validity(*args, **kwargs)


def test_resolve_alpha():
    assert resolve_alpha("auto", "ml_cpc", 128) == pytest.approx(
        1.007 * 128 / (128 * 127 + 1), rel=1e-14
    )
    assert resolve_alpha("auto", "ml_cpc", 64) == pytest.approx(64 / (64 * 63 + 1), rel=1e-14)
    assert resolve_alpha("auto", "ml_cpc", 5, 9) == pytest.approx(
        1.024 * 9 / (5 * 8 + 1), rel=1e-14
    )
    assert resolve_alpha("auto", "alpha_cpc", 128) == 1.0
    assert resolve_alpha("auto", "cpc", 128) == 1.0
    assert resolve_alpha(0.25, "ml_cpc", 128) == 0.25
    assert isinstance(resolve_alpha(2, "ml_cpc", 128), float)


@pytest.mark.parametrize(
    ("alpha", "objective", "match"),
    [
        ("fast", "ml_cpc", "auto"),
        (0.0, "ml_cpc", "alpha"),
        (129.0, "ml_cpc", "alpha"),
        ("auto", "nope", "Unknown bound"),
    ],
)
def test_resolve_alpha_rejects_bad_arguments(alpha, objective, match):
    with pytest.raises(ValueError, match=match):
        resolve_alpha(alpha, objective, 128)


@pytest.mark.parametrize(
    "helper",
    [
        lambda n: cap("ml_cpc", n),
        lambda n: valid_alpha_range(n),
        lambda n: bound_validity("ml_cpc", n),
        lambda n: resolve_alpha("auto", "ml_cpc", n),
    ],
    ids=["cap", "valid_alpha_range", "bound_validity", "resolve_alpha"],
)
def test_size_helpers_accept_numpy_integers(helper):
    assert helper(np.int64(128)) == helper(128)


# ---------------------------------------------------------------------------------------
# 7. CUDA
# ---------------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.parametrize("layout", ["batch", "anchored"])
@pytest.mark.parametrize("name", sorted(BOUNDS))
def test_cuda_matches_cpu(name, layout):
    scores = random_scores(6, 6, layout=layout)
    kwargs = _kwargs_for(name, 6, 6, layout)
    cuda_kwargs = {k: v.cuda() if torch.is_tensor(v) else v for k, v in kwargs.items()}
    expected = evaluate(name, scores, layout=layout, **kwargs)
    actual = evaluate(name, scores.cuda(), layout=layout, **cuda_kwargs)
    assert actual.device.type == "cuda"
    assert actual.dtype == torch.float64
    assert actual.item() == pytest.approx(expected.item(), rel=1e-10, abs=1e-10)


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["cpc", "ml_cpc", "alpha_cpc", "dv"])
def test_cuda_half_precision_is_finite(name):
    scores = (30.0 * (2.0 * torch.rand(32, 32, dtype=torch.float64) - 1.0)).half()
    value = evaluate(name, scores.cuda())
    expected = evaluate(name, scores.double()).item()
    assert value.device.type == "cuda"
    assert value.dtype == torch.float16
    assert value.item() == pytest.approx(expected, rel=2e-3, abs=2e-3)


@pytest.mark.gpu
def test_cuda_mine_state_stays_on_the_device():
    scores = random_scores(6, 6).cuda().requires_grad_()
    _, state = mine(scores)
    estimate, state = mine(scores, log_partition_ema=state)
    estimate.backward()
    assert state.device.type == "cuda"
    assert scores.grad.device.type == "cuda"


@pytest.mark.parametrize("name", ["js", "mine", "smile"])
def test_straight_through_bounds_report_their_value_for_infinite_scores(name):
    # A +inf negative makes the JS training objective infinite; the reported value must
    # still be the documented one (NWJ's -inf for js, DV's -inf for mine, SMILE's clipped
    # partition keeps it finite), not inf - inf = NaN.
    scores = torch.tensor([[0.0, math.inf], [0.0, 0.0]])
    value = get_bound(name)(scores)
    value = value[0] if isinstance(value, tuple) else value
    if name == "smile":
        assert torch.isfinite(value)
    else:
        assert value.item() == -math.inf
    assert get_bound("nwj")(scores).item() == -math.inf
