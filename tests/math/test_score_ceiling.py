"""``max_score``: bounds of scores clamped from above, blockwise as densely."""

import pytest
import torch

from sk_mlcpc.blockwise import blockwise_bound
from sk_mlcpc.bounds import get_bound

CLAMPABLE = [
    ("cpc", {}),
    ("alpha_cpc", {"alpha": 0.3}),
    ("ml_cpc", {"alpha": 0.05}),
    ("nwj", {}),
    ("dv", {}),
    ("js", {}),
    ("smile", {"clip": 2.0}),
    ("tuba", {}),
]


def _factors(n=23, d=4, seed=0):
    generator = torch.Generator().manual_seed(seed)
    g = 2 * torch.randn(n, d, generator=generator, dtype=torch.float64)
    h = 2 * torch.randn(n, d, generator=generator, dtype=torch.float64)
    a = torch.randn(n, generator=generator, dtype=torch.float64)
    b = torch.randn(n, generator=generator, dtype=torch.float64)
    return g, h, a, b


@pytest.mark.parametrize(("name", "options"), CLAMPABLE)
def test_blockwise_with_a_ceiling_is_the_dense_bound_of_the_clamped_scores(name, options):
    g, h, a, b = _factors()
    scores = g @ h.T + a[:, None] + b[None, :]
    ceiling = float(scores.quantile(0.9))  # clamps a tenth of the pairs, positives too
    expected = get_bound(name)(scores.clamp(max=ceiling), **options)
    with torch.no_grad():
        value = blockwise_bound(name, g, h, a=a, b=b, block_size=5, max_score=ceiling, **options)
    torch.testing.assert_close(value, expected)
    # The ceiling matters here: the unclamped bound differs.
    assert not torch.isclose(value, get_bound(name)(scores, **options))


def test_a_ceiling_above_every_score_changes_nothing():
    g, h, a, b = _factors()
    scores = g @ h.T + a[:, None] + b[None, :]
    with torch.no_grad():
        value = blockwise_bound("ml_cpc", g, h, a=a, b=b, alpha=0.1, max_score=1e6)
    torch.testing.assert_close(value, get_bound("ml_cpc")(scores, alpha=0.1))


def test_a_ceiling_is_for_evaluation_only():
    g, h, a, b = _factors()
    g.requires_grad_(True)
    with pytest.raises(ValueError, match="for evaluation"):
        blockwise_bound("ml_cpc", g, h, a=a, b=b, max_score=1.0)
    with torch.no_grad():  # the same inputs without gradients are fine
        blockwise_bound("ml_cpc", g, h, a=a, b=b, max_score=1.0)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "3", True])
def test_a_bad_ceiling_is_refused(bad):
    g, h, a, b = _factors()
    with pytest.raises((TypeError, ValueError), match="max_score"):
        blockwise_bound("ml_cpc", g, h, a=a, b=b, max_score=bad)


def test_a_ceiling_and_a_tuba_baseline_are_refused_together():
    g, h, a, b = _factors()
    with pytest.raises(ValueError, match="TUBA baseline"):
        blockwise_bound("tuba", g, h, a=a, b=b, max_score=1.0, baseline=0.5)
