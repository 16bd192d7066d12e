"""Tests for :mod:`sk_mlcpc.blockwise`.

The blockwise bounds are compared with the dense functions of :mod:`sk_mlcpc.bounds` on
the materialised score matrix ``S = g h^T + a 1^T + 1 b^T`` (values and gradients with
respect to every input), over layouts, shapes (including ``n`` not divisible by the
block size), dtypes, alpha values and options. The custom backward pass is also checked
by finite differences on its own, the peak memory of a large batch is measured in a
subprocess, and invalid inputs must raise.
"""

import json
import math
import subprocess
import sys
import textwrap

import pytest
import torch

from sk_mlcpc._math.blockwise import (
    BLOCKWISE_OPTIONS,
    _NegativeReductions,
    blockwise_bound,
    blockwise_peak_bytes,
    chunked_scores,
    separable_parts,
)
from sk_mlcpc.bounds import BOUNDS, get_bound
from sk_mlcpc.critics import BilinearCritic, ConcatCritic, SeparableCritic

# ---------------------------------------------------------------------------------------
# Parameter grids
# ---------------------------------------------------------------------------------------

#: (layout, n, k, d, block_size): k is the bank size of the anchored layout (m = k + 1);
#: in the batch layout m = n. Covers one tile, ragged last tiles, tiles of one entry and
#: tiles larger than the matrix.
SHAPES = [
    ("batch", 2, None, 3, 1),
    ("batch", 7, None, 3, 3),
    ("batch", 16, None, 5, 16),
    ("batch", 33, None, 4, 8),
    ("batch", 10, None, 2, 64),
    ("anchored", 1, 1, 3, 1),
    ("anchored", 5, 9, 3, 4),
    ("anchored", 16, 3, 4, 5),
]
SHAPE_IDS = [
    f"{layout}-n{n}" + (f"-k{k}" if k else "") + f"-d{d}-block{block}"
    for layout, n, k, d, block in SHAPES
]

#: (bound, options). "M" stands for alpha = m (beta = 0); the MINE state is a tensor.
CASES = [
    ("cpc", {}),
    ("alpha_cpc", {"alpha": 0.3}),
    ("alpha_cpc", {"alpha": 1.0}),
    ("alpha_cpc", {"alpha": "M"}),
    ("ml_cpc", {"alpha": 0.01}),
    ("ml_cpc", {"alpha": 1.0}),
    ("ml_cpc", {"alpha": 1.7}),
    ("ml_cpc", {"alpha": "M"}),
    ("nwj", {}),
    ("tuba", {}),
    ("tuba", {"baseline": 0.7}),
    ("tuba", {"baseline": "per-column"}),
    ("dv", {}),
    ("mine", {}),
    ("mine", {"log_partition_ema": 0.4, "momentum": 0.5}),
    ("mine", {"log_partition_ema": -0.3, "momentum": 0.0}),
    ("js", {}),
    ("smile", {}),
    ("smile", {"clip": 0.5}),
]
CASE_IDS = [
    name + "".join(f"-{key}={value}" for key, value in options.items()) for name, options in CASES
]

TOLERANCE = {
    torch.float64: {"rtol": 1e-10, "atol": 1e-12},
    torch.float32: {"rtol": 2e-5, "atol": 2e-6},
}


# ---------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------


def make_inputs(layout, n, k, d, *, dtype=torch.float64, marginal=True, scale=1.0, seed=0):
    """Embeddings, marginal terms and (anchored) a bank, all leaves requiring grad."""
    gen = torch.Generator().manual_seed(seed)

    def draw(*shape, factor=1.0):
        value = factor * torch.randn(*shape, generator=gen, dtype=torch.float64)
        return value.to(dtype).requires_grad_()

    g = draw(n, d, factor=scale)
    # Tie h to g a little so that positives score higher, as a partly trained critic's.
    h = 0.5 * g.detach().double() + scale * torch.randn(n, d, generator=gen, dtype=torch.float64)
    h = h.to(dtype).requires_grad_()
    inputs = {"g": g, "h": h, "a": None, "b": None, "negatives": None, "b_negatives": None}
    if marginal:
        inputs["a"], inputs["b"] = draw(n, factor=0.5), draw(n, factor=0.5)
    if layout == "anchored":
        inputs["negatives"] = draw(k, d, factor=scale)
        if marginal:
            inputs["b_negatives"] = draw(k, factor=0.5)
    return inputs


def dense_scores(inputs, work_dtype=None):
    """The materialised score matrix of the dense path (in ``work_dtype`` if given)."""

    def cast(value):
        return value if value is None or work_dtype is None else value.to(work_dtype)

    g, h, a, b = (cast(inputs.get(key)) for key in ("g", "h", "a", "b"))
    bank, b_bank = cast(inputs.get("negatives")), cast(inputs.get("b_negatives"))
    n = g.shape[0]
    a = torch.zeros(n, dtype=g.dtype) if a is None else a
    b = torch.zeros(n, dtype=g.dtype) if b is None else b
    if bank is None:
        return g @ h.T + a[:, None] + b[None, :]
    b_bank = torch.zeros(bank.shape[0], dtype=g.dtype) if b_bank is None else b_bank
    positives = (g * h).sum(dim=1) + a + b
    negatives = g @ bank.T + a[:, None] + b_bank[None, :]
    return torch.cat([positives[:, None], negatives], dim=1)


def resolve_options(name, options, n, m, dtype, seed=1):
    """Turn the symbolic options of CASES into the values a call takes."""
    resolved = dict(options)
    if resolved.get("alpha") == "M":
        resolved["alpha"] = float(m)
    if resolved.get("baseline") == "per-column":
        gen = torch.Generator().manual_seed(seed)
        baseline = torch.randn(n, generator=gen, dtype=torch.float64).to(dtype)
        resolved["baseline"] = baseline.requires_grad_()
    if "log_partition_ema" in resolved:
        resolved["log_partition_ema"] = torch.tensor(resolved["log_partition_ema"], dtype=dtype)
    return resolved


def leaves(inputs, options):
    tensors = [value for value in inputs.values() if value is not None]
    baseline = options.get("baseline")
    if isinstance(baseline, torch.Tensor) and baseline.requires_grad:
        tensors.append(baseline)
    return tensors


def estimate(result):
    return result[0] if isinstance(result, tuple) else result


def call_both(name, inputs, options, block_size, layout):
    dense = get_bound(name)(dense_scores(inputs), layout=layout, **options)
    blockwise = blockwise_bound(name, **inputs, block_size=block_size, **options)
    return dense, blockwise


# ---------------------------------------------------------------------------------------
# 1. Equality with the dense bounds: values and gradients
# ---------------------------------------------------------------------------------------


def test_every_bound_has_a_blockwise_version():
    assert set(BLOCKWISE_OPTIONS) == set(BOUNDS)


def _equality_cases():
    cases, ids = [], []
    for (name, options), case_id in zip(CASES, CASE_IDS):
        for shape, shape_id in zip(SHAPES, SHAPE_IDS):
            if options.get("baseline") == "per-column" and shape[0] == "anchored":
                continue  # a per-column baseline exists in the batch layout only
            cases.append((name, options, *shape))
            ids.append(f"{case_id}-{shape_id}")
    return cases, ids


EQUALITY_CASES, EQUALITY_IDS = _equality_cases()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize(
    ("name", "options", "layout", "n", "k", "d", "block_size"), EQUALITY_CASES, ids=EQUALITY_IDS
)
def test_matches_dense_values_and_gradients(name, options, layout, n, k, d, block_size, dtype):
    m = n if layout == "batch" else k + 1
    inputs = make_inputs(layout, n, k, d, dtype=dtype)
    options = resolve_options(name, options, n, m, dtype)
    dense, blockwise = call_both(name, inputs, options, block_size, layout)
    tolerance = TOLERANCE[dtype]
    if name == "mine":  # the returned state too
        torch.testing.assert_close(blockwise[1], dense[1], **tolerance)
        assert not blockwise[1].requires_grad
    dense, blockwise = estimate(dense), estimate(blockwise)
    assert blockwise.shape == ()
    assert blockwise.dtype == dtype
    torch.testing.assert_close(blockwise, dense, **tolerance)

    tensors = leaves(inputs, options)
    dense_grads = torch.autograd.grad(dense, tensors)
    blockwise_grads = torch.autograd.grad(blockwise, tensors)
    for dense_grad, blockwise_grad in zip(dense_grads, blockwise_grads):
        assert blockwise_grad.dtype == dtype
        torch.testing.assert_close(blockwise_grad, dense_grad, **tolerance)


@pytest.mark.parametrize("layout", ["batch", "anchored"])
@pytest.mark.parametrize("name", sorted(BOUNDS))
def test_matches_dense_without_marginal_terms(name, layout):
    n, k = 13, 6
    m = n if layout == "batch" else k + 1
    inputs = make_inputs(layout, n, k, 4, marginal=False)
    options = {"alpha": 0.2} if name in ("alpha_cpc", "ml_cpc") else {}
    dense, blockwise = call_both(
        name, inputs, resolve_options(name, options, n, m, torch.float64), 4, layout
    )
    torch.testing.assert_close(estimate(blockwise), estimate(dense), **TOLERANCE[torch.float64])
    tensors = leaves(inputs, options)
    for expected, actual in zip(
        torch.autograd.grad(estimate(dense), tensors),
        torch.autograd.grad(estimate(blockwise), tensors),
    ):
        torch.testing.assert_close(actual, expected, **TOLERANCE[torch.float64])


@pytest.mark.parametrize("name", sorted(BOUNDS))
def test_matches_dense_on_a_larger_batch_with_large_scores(name):
    # n = 300 in tiles of 64 (a ragged last tile); scores of size ~30, where raw
    # exponentials would overflow float32 if the log-sum-exp were not streamed.
    inputs = make_inputs("batch", 300, None, 8, scale=2.0)
    options = {"alpha": 0.05} if name in ("alpha_cpc", "ml_cpc") else {}
    dense, blockwise = call_both(name, inputs, options, 64, "batch")
    assert torch.isfinite(estimate(blockwise))
    torch.testing.assert_close(estimate(blockwise), estimate(dense), rtol=1e-9, atol=1e-9)
    tensors = leaves(inputs, options)
    for expected, actual in zip(
        torch.autograd.grad(estimate(dense), tensors),
        torch.autograd.grad(estimate(blockwise), tensors),
    ):
        torch.testing.assert_close(actual, expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("block_size", [1, 2, 5, 1000])
def test_value_does_not_depend_on_the_block_size(block_size):
    inputs = make_inputs("batch", 11, None, 3)
    reference = blockwise_bound("ml_cpc", **inputs, alpha=0.1, block_size=11)
    value = blockwise_bound("ml_cpc", **inputs, alpha=0.1, block_size=block_size)
    torch.testing.assert_close(value, reference, rtol=1e-12, atol=1e-12)


def test_mine_state_chains_like_the_dense_state():
    first = make_inputs("batch", 9, None, 3, seed=1)
    second = make_inputs("batch", 9, None, 3, seed=2)
    _, dense_state = get_bound("mine")(dense_scores(first))
    _, block_state = blockwise_bound("mine", **first, block_size=4)
    dense, dense_state = get_bound("mine")(dense_scores(second), log_partition_ema=dense_state)
    block, block_state = blockwise_bound(
        "mine", **second, log_partition_ema=block_state, block_size=4
    )
    torch.testing.assert_close(block_state, dense_state)
    torch.testing.assert_close(block, dense)
    tensors = leaves(second, {})
    for expected, actual in zip(
        torch.autograd.grad(dense, tensors), torch.autograd.grad(block, tensors)
    ):
        torch.testing.assert_close(actual, expected)


# ---------------------------------------------------------------------------------------
# 2. The custom backward pass, on its own
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("diagonal", [True, False], ids=["batch", "bank"])
def test_reduction_backward_passes_gradcheck(diagonal):
    gen = torch.Generator().manual_seed(0)
    n, m, d = 5, 5 if diagonal else 4, 3

    def leaf(*shape):
        return torch.randn(*shape, generator=gen, dtype=torch.float64).requires_grad_()

    g, c, a, b = leaf(n, d), leaf(m, d), leaf(n), leaf(m)

    def reductions(g, c, a, b):
        lse, softplus, _ = _NegativeReductions.apply(g, c, a, b, diagonal, 2, True, None)
        return lse, softplus

    assert torch.autograd.gradcheck(reductions, (g, c, a, b))


def test_backward_skips_inputs_that_need_no_gradient():
    inputs = make_inputs("batch", 8, None, 3)
    inputs["h"] = inputs["h"].detach()
    inputs["b"] = inputs["b"].detach()
    value = blockwise_bound("ml_cpc", **inputs, alpha=0.5, block_size=3)
    value.backward()
    assert inputs["h"].grad is None
    assert inputs["g"].grad is not None
    assert inputs["a"].grad is not None


def test_no_graph_without_gradients():
    inputs = {
        key: value for key, value in make_inputs("batch", 6, None, 2).items() if value is not None
    }
    with torch.no_grad():
        value = blockwise_bound("cpc", **inputs, block_size=4)
    assert not value.requires_grad
    torch.testing.assert_close(value, get_bound("cpc")(dense_scores(inputs)).detach())


# ---------------------------------------------------------------------------------------
# 3. Half precision: accumulated in float32, returned in the input dtype
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dtype", "tolerance"),
    [(torch.float16, {"rel": 2e-3, "abs": 2e-3}), (torch.bfloat16, {"rel": 1e-2, "abs": 1e-2})],
    ids=["float16", "bfloat16"],
)
@pytest.mark.parametrize("layout", ["batch", "anchored"])
@pytest.mark.parametrize(
    ("name", "options"),
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
def test_half_precision_is_accumulated_in_float32(name, options, layout, dtype, tolerance):
    # Scores of size ~30 (e^30 overflows float16): raw exponentials in the input dtype
    # would give inf or NaN. The reference is the float64 dense bound of the same
    # (rounded) embeddings.
    inputs = make_inputs(layout, 32, 31, 4, dtype=dtype, scale=3.0)
    value = blockwise_bound(name, **inputs, block_size=8, **options)
    reference = get_bound(name)(dense_scores(inputs, torch.float64), layout=layout, **options)
    assert value.dtype == dtype
    assert torch.isfinite(value)
    assert value.item() == pytest.approx(reference.item(), **tolerance)
    tensors = leaves(inputs, options)
    grads = torch.autograd.grad(value, tensors)
    expected = torch.autograd.grad(reference, tensors)
    # One scale for all gradients: some vanish exactly (a(x) cancels out of CPC), and
    # float32 rounding leaves ~1e-7 there.
    scale = max(wanted.abs().max().item() for wanted in expected)
    for actual, wanted in zip(grads, expected):
        assert actual.dtype == dtype
        assert torch.isfinite(actual).all()
        torch.testing.assert_close(
            actual.double(), wanted.double(), rtol=0.0, atol=2 * tolerance["rel"] * scale
        )


def test_autocast_does_not_lower_the_accumulation_precision():
    # Under autocast the tile products would run in bfloat16; the kernel switches it off.
    inputs = make_inputs("batch", 300, None, 8, dtype=torch.float32, scale=2.0)
    reference = blockwise_bound("ml_cpc", **inputs, alpha=0.05, block_size=64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = blockwise_bound("ml_cpc", **inputs, alpha=0.05, block_size=64)
        # backward inside the region too
        grads = torch.autograd.grad(value, [inputs["g"], inputs["h"]])
    assert value.dtype == torch.float32
    torch.testing.assert_close(value, reference)
    expected = torch.autograd.grad(reference, [inputs["g"], inputs["h"]])
    for actual, wanted in zip(grads, expected):
        torch.testing.assert_close(actual, wanted)


# ---------------------------------------------------------------------------------------
# 4. Inputs, NaN, critics
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["batch", "anchored"])
def test_inputs_are_not_modified(layout):
    inputs = make_inputs(layout, 9, 4, 3)
    before = {key: value.detach().clone() for key, value in inputs.items() if value is not None}
    baseline = torch.randn(9, dtype=torch.float64)
    baseline_before = baseline.clone()
    for name in sorted(BOUNDS):
        options = {"baseline": baseline} if name == "tuba" and layout == "batch" else {}
        estimate(blockwise_bound(name, **inputs, block_size=2, **options)).backward()
    for key, value in before.items():
        assert torch.equal(inputs[key].detach(), value), key
    assert torch.equal(baseline, baseline_before)


@pytest.mark.parametrize("name", sorted(BOUNDS))
def test_nan_propagates_as_in_the_dense_bounds(name):
    inputs = make_inputs("batch", 6, None, 2)
    g = inputs["g"].detach().clone()
    g[3, 1] = math.nan
    inputs["g"] = g
    dense = estimate(get_bound(name)(dense_scores(inputs)))
    blockwise = estimate(blockwise_bound(name, **inputs, block_size=4))
    assert torch.isnan(dense)
    assert torch.isnan(blockwise)


@pytest.mark.parametrize(
    "critic",
    [
        SeparableCritic(3, 2, embedding_dim=4, hidden_layer_sizes=(8,)),
        SeparableCritic(3, 2, embedding_dim=4, hidden_layer_sizes=(8,), marginal_terms=True),
        BilinearCritic(3, 2, embedding_dim=4, hidden_layer_sizes=(8,)),
    ],
    ids=["separable", "separable-marginal", "bilinear"],
)
@pytest.mark.parametrize("name", ["cpc", "ml_cpc", "nwj", "smile"])
def test_separable_parts_reproduce_the_critic(critic, name):
    critic = critic.double()
    x = torch.randn(12, 3, dtype=torch.float64)
    y = torch.randn(12, 2, dtype=torch.float64)
    g, h, a, b = separable_parts(critic, x, y)
    torch.testing.assert_close(
        g @ h.T + (0 if a is None else a[:, None]) + (0 if b is None else b[None, :]),
        critic(x, y),
    )
    options = {"alpha": 0.1} if name == "ml_cpc" else {}
    blockwise = blockwise_bound(name, g, h, a=a, b=b, block_size=5, **options)
    dense = get_bound(name)(critic(x, y), **options)
    torch.testing.assert_close(blockwise, dense)
    parameters = list(critic.parameters())
    for expected, actual in zip(
        torch.autograd.grad(dense, parameters), torch.autograd.grad(blockwise, parameters)
    ):
        torch.testing.assert_close(actual, expected)


def test_separable_parts_rejects_a_joint_critic():
    critic = ConcatCritic(3, 2, hidden_layer_sizes=(8,))
    with pytest.raises(TypeError, match="chunked_scores"):
        separable_parts(critic, torch.randn(4, 3), torch.randn(4, 2))


@pytest.mark.parametrize("chunk_size", [1, 3, 8, 100])
def test_chunked_scores_match_the_joint_critic(chunk_size):
    critic = ConcatCritic(3, 2, hidden_layer_sizes=(8, 4)).double()
    x = torch.randn(8, 3, dtype=torch.float64)
    y = torch.randn(9, 2, dtype=torch.float64)
    scores = chunked_scores(critic, x, y, chunk_size=chunk_size)
    expected = critic(x, y)
    torch.testing.assert_close(scores, expected)
    parameters = list(critic.parameters())
    weights = torch.randn(8, 9, dtype=torch.float64)
    for want, got in zip(
        torch.autograd.grad((expected * weights).sum(), parameters),
        torch.autograd.grad((scores * weights).sum(), parameters),
    ):
        torch.testing.assert_close(got, want)
    with torch.no_grad():
        torch.testing.assert_close(chunked_scores(critic, x, y, chunk_size=chunk_size), expected)


# ---------------------------------------------------------------------------------------
# 5. Validation
# ---------------------------------------------------------------------------------------


def _valid():
    return {"g": torch.randn(5, 3), "h": torch.randn(5, 3)}


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        ({"g": torch.randn(5, 3).numpy()}, TypeError, "g must be a torch.Tensor"),
        ({"g": torch.ones(5, 3, dtype=torch.int64)}, TypeError, "floating dtype"),
        ({"g": torch.randn(5)}, ValueError, "2-D"),
        ({"h": torch.randn(4, 3)}, ValueError, "same shape"),
        ({"h": torch.randn(5, 3, dtype=torch.float64)}, TypeError, "share dtype"),
        ({"a": torch.randn(4)}, ValueError, r"a must have shape \(5,\)"),
        ({"b": torch.randn(5, 1)}, ValueError, r"b must have shape \(5,\)"),
        ({"a": [0.0] * 5}, TypeError, "a must be a torch.Tensor"),
        ({"b_negatives": torch.randn(3)}, ValueError, "negatives is None"),
        ({"negatives": torch.randn(4, 2)}, ValueError, "d = 3 columns"),
        ({"negatives": torch.randn(4, 3, dtype=torch.float64)}, TypeError, "dtype and device"),
        ({"negatives": torch.randn(4, 3), "b_negatives": torch.randn(3)}, ValueError, r"\(4,\)"),
        ({"g": torch.randn(1, 3), "h": torch.randn(1, 3)}, ValueError, "no negatives"),
        ({"block_size": 0}, ValueError, "block_size"),
        ({"block_size": 2.5}, ValueError, "block_size"),
        ({"block_size": True}, ValueError, "block_size"),
    ],
)
def test_invalid_inputs_raise(change, error, match):
    kwargs = {**_valid(), **change}
    with pytest.raises(error, match=match):
        blockwise_bound("ml_cpc", **kwargs)


def test_unknown_bound_lists_the_choices():
    with pytest.raises(ValueError, match="Choose one of"):
        blockwise_bound("infonce", **_valid())


@pytest.mark.parametrize(
    ("name", "options", "match"),
    [
        ("cpc", {"alpha": 0.5}, "'cpc' accepts no options"),
        ("ml_cpc", {"layout": "anchored"}, "layout follows from `negatives`"),
        ("smile", {"alpha": 1.0}, "accepts clip"),
    ],
)
def test_options_a_bound_does_not_take_raise(name, options, match):
    with pytest.raises(TypeError, match=match):
        blockwise_bound(name, **_valid(), **options)


@pytest.mark.parametrize(
    ("name", "options", "error"),
    [
        ("ml_cpc", {"alpha": 0.0}, ValueError),
        ("ml_cpc", {"alpha": 5.5}, ValueError),
        ("alpha_cpc", {"alpha": math.nan}, ValueError),
        ("alpha_cpc", {"alpha": "auto"}, TypeError),
        ("mine", {"momentum": 1.0}, ValueError),
        ("mine", {"momentum": math.nan}, ValueError),
        ("smile", {"clip": 0.0}, ValueError),
        ("smile", {"clip": math.nan}, ValueError),
        ("tuba", {"baseline": torch.zeros(5, 5)}, ValueError),
        ("tuba", {"baseline": torch.zeros(4)}, ValueError),
    ],
)
def test_invalid_option_values_raise_like_the_dense_bounds(name, options, error):
    with pytest.raises(error):
        blockwise_bound(name, **_valid(), **options)
    if not isinstance(options.get("baseline"), torch.Tensor):  # the dense tuba takes (n, m)
        with pytest.raises(error):
            get_bound(name)(torch.randn(5, 5), **options)


def test_anchored_tuba_takes_only_a_scalar_baseline():
    inputs = {**_valid(), "negatives": torch.randn(4, 3)}
    with pytest.raises(ValueError, match="a scalar"):
        blockwise_bound("tuba", **inputs, baseline=torch.zeros(5))


# ---------------------------------------------------------------------------------------
# 6. Memory
# ---------------------------------------------------------------------------------------

# Peak memory is measured in a fresh interpreter: torch's CPU tensors are invisible to
# tracemalloc, and the profiler's per-operator memory events do not give a peak over a
# backward pass. Linux keeps a high-water mark of each process's resident set (VmHWM in
# /proc/self/status), which counts every page torch touches; writing "5" to
# /proc/self/clear_refs resets it to the current resident set, so its rise over the
# resident set just before the call is the call's peak. (``ru_maxrss`` is unusable: it
# inherits the parent's -- pytest's -- peak across fork and exec.) glibc may keep freed
# pages and so overstate the live tensors; that can only make a test fail, not pass.
# A dense control shows that the measurement does see an n x n allocation.
_PEAK_HELPERS = textwrap.dedent(
    """
    import json, sys
    import torch
    torch.set_num_threads(1)

    def status(field):
        with open("/proc/self/status") as f:
            line = next(line for line in f if line.startswith(field + ":"))
        return int(line.split()[1]) * 1024

    def reset_peak():
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        except OSError:  # VmHWM then counts from the start of the process: conservative
            pass
        return status("VmRSS")

    def peak_rise(before):
        return status("VmHWM") - before
    """
)

_BLOCKWISE_PEAK = textwrap.dedent(
    """
    from sk_mlcpc.blockwise import blockwise_bound
    from sk_mlcpc.bounds import ml_cpc

    n, d, block, n_dense = (int(v) for v in sys.argv[1:5])
    gen = torch.Generator().manual_seed(0)
    g, h = (torch.randn(n, d, generator=gen).requires_grad_() for _ in range(2))
    a, b = (torch.randn(n, generator=gen).requires_grad_() for _ in range(2))
    # Warm up both paths on a small batch (kernels, allocator pools).
    small = [t[:64].detach().requires_grad_() for t in (g, h, a, b)]
    blockwise_bound("ml_cpc", small[0], small[1], a=small[2], b=small[3], alpha=0.1,
                    block_size=16).backward()
    ml_cpc(small[0] @ small[1].T, alpha=0.1).backward()

    before = reset_peak()
    value = blockwise_bound("ml_cpc", g, h, a=a, b=b, alpha=0.1, block_size=block)
    value.backward()
    blockwise_rise = peak_rise(before)
    finite = bool(torch.isfinite(value) and torch.isfinite(g.grad).all())

    gd, hd = (t[:n_dense].detach().requires_grad_() for t in (g, h))
    before = reset_peak()
    ml_cpc(gd @ hd.T, alpha=0.1).backward()
    dense_rise = peak_rise(before)
    print(json.dumps({"blockwise": blockwise_rise, "dense": dense_rise, "finite": finite}))
    """
)

_CHUNKED_PEAK = textwrap.dedent(
    """
    from sk_mlcpc.blockwise import chunked_scores
    from sk_mlcpc.bounds import ml_cpc
    from sk_mlcpc.critics import ConcatCritic

    n, hidden, chunk = (int(v) for v in sys.argv[1:4])
    torch.manual_seed(0)
    critic = ConcatCritic(4, 4, hidden_layer_sizes=(hidden,))
    x, y = torch.randn(n, 4), torch.randn(n, 4)
    ml_cpc(chunked_scores(critic, x[:64], y[:64], chunk_size=16)).backward()
    before = reset_peak()
    ml_cpc(chunked_scores(critic, x, y, chunk_size=chunk), alpha=0.1).backward()
    chunked_rise = peak_rise(before)
    before = reset_peak()
    small = n // 4
    ml_cpc(critic(x[:small], y[:small]), alpha=0.1).backward()
    print(json.dumps({"chunked": chunked_rise, "dense": peak_rise(before)}))
    """
)


def _measure(script, *args):
    result = subprocess.run(
        [sys.executable, "-c", _PEAK_HELPERS + script, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        env={"OMP_NUM_THREADS": "1", "PATH": "", "PYTHONPATH": ":".join(sys.path)},
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_peak_memory_of_a_large_batch_is_linear_in_n():
    n, d, block, n_dense = 16384, 32, 1024, 4096
    measured = _measure(_BLOCKWISE_PEAK, n, d, block, n_dense)
    assert measured["finite"]
    limit = blockwise_peak_bytes(n, d, block)
    # The estimate is linear in n: 59 MiB here, against 1 GiB for one dense score matrix.
    assert limit < n * n * 4 / 16
    assert measured["blockwise"] < limit, (measured, limit)
    # Control: the same measurement sees the dense path's n x n float32 matrices.
    assert measured["dense"] > n_dense * n_dense * 4, measured


@pytest.mark.slow
def test_chunked_scores_bound_the_memory_of_a_joint_critic():
    n, hidden, chunk = 2048, 64, 64
    measured = _measure(_CHUNKED_PEAK, n, hidden, chunk)
    # The scores and their gradient chain (a few n x n) plus a few chunk x n x hidden
    # activations at a time; the unchunked critic keeps n x n x hidden = 1 GiB.
    limit = 4 * (8 * n * n + 6 * chunk * n * hidden)
    assert limit < n * n * hidden * 4 / 2
    assert measured["chunked"] < limit, (measured, limit)
    # Control, on a quarter of the batch: the unchunked critic's activations are seen.
    small = n // 4
    assert measured["dense"] > small * small * hidden * 4, measured


# ---------------------------------------------------------------------------------------
# 7. CUDA
# ---------------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.parametrize("name", sorted(BOUNDS))
def test_cuda_matches_dense(name):
    inputs = make_inputs("batch", 300, None, 8)
    cuda_inputs = {
        key: None if value is None else value.detach().cuda().requires_grad_()
        for key, value in inputs.items()
    }
    options = {"alpha": 0.05} if name in ("alpha_cpc", "ml_cpc") else {}
    dense = estimate(get_bound(name)(dense_scores(inputs), **options))
    blockwise = estimate(blockwise_bound(name, **cuda_inputs, block_size=64, **options))
    assert blockwise.device.type == "cuda"
    torch.testing.assert_close(blockwise.cpu(), dense, rtol=1e-9, atol=1e-9)
    tensors = leaves(inputs, options)
    cuda_tensors = leaves(cuda_inputs, options)
    for expected, actual in zip(
        torch.autograd.grad(dense, tensors), torch.autograd.grad(blockwise, cuda_tensors)
    ):
        torch.testing.assert_close(actual.cpu(), expected, rtol=1e-9, atol=1e-12)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bfloat16", "float16"])
def test_cuda_half_precision_is_finite(dtype):
    inputs = make_inputs("batch", 512, None, 16, dtype=dtype, scale=2.0)
    cuda_inputs = {
        key: None if value is None else value.detach().cuda() for key, value in inputs.items()
    }
    value = blockwise_bound("ml_cpc", **cuda_inputs, alpha=0.05, block_size=128)
    reference = get_bound("ml_cpc")(dense_scores(inputs, torch.float64), alpha=0.05)
    assert value.dtype == dtype
    assert value.item() == pytest.approx(reference.item(), rel=1e-2, abs=1e-2)
