"""Views: shapes, shares, where replacement values come from, and reproducibility."""

import math

import numpy as np
import pytest
import torch

from sk_mlcpc.views import VIEWS, FeatureCorruption, FeatureMask, GaussianNoise, make_view


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture
def reference():
    # Distinct values per column (column j holds j * 1000 + i), so a replaced entry can be
    # traced back to the column it came from and never equals the value it replaced
    # by accident.
    n, d = 500, 10
    return torch.arange(d).float() * 1000 + torch.arange(n).float()[:, None]


@pytest.mark.parametrize("rate", [0.0, 0.1, 0.3, 0.55, 1.0])
def test_corruption_replaces_the_requested_share(reference, rate):
    x = reference[:400] + 0.5  # values that occur nowhere in the reference
    view = FeatureCorruption(reference, rate)(x, _generator())
    assert view.shape == x.shape and view.dtype == x.dtype
    changed = view != x
    share = changed.float().mean().item()
    # Per row the count is floor or ceil of rate * d, and exactly rate * d on average.
    counts = changed.sum(dim=1)
    d = x.shape[1]
    assert set(counts.tolist()) <= {math.floor(rate * d), math.ceil(rate * d)}
    assert share == pytest.approx(rate, abs=0.03)


def test_corruption_draws_from_the_columns_own_values(reference):
    x = torch.full((300, reference.shape[1]), -1.0)
    view = FeatureCorruption(reference, 0.5)(x, _generator())
    for j in range(x.shape[1]):
        replaced = view[:, j][view[:, j] != -1.0]
        assert len(replaced) > 0
        assert torch.isin(replaced, reference[:, j]).all(), f"column {j} took a foreign value"


def test_corruption_spreads_over_rows_of_the_reference(reference):
    x = torch.full((2000, reference.shape[1]), -1.0)
    view = FeatureCorruption(reference, 1.0)(x, _generator())
    rows_used = (view[:, 0] - reference[0, 0]).long().unique()
    # 2,000 uniform draws from 500 rows cover about 500 * (1 - e^-4) = 491 of them.
    assert len(rows_used) > 450


def test_fractional_share_is_unbiased_when_below_one_feature():
    x = torch.zeros(4000, 2)
    reference = torch.ones(10, 2)
    view = FeatureCorruption(reference, 0.2)(x, _generator())
    # 0.2 * 2 = 0.4 features per row: 0 or 1 per row, 40% of rows on average.
    per_row = (view != 0).sum(dim=1)
    assert set(per_row.tolist()) <= {0, 1}
    assert per_row.float().mean().item() == pytest.approx(0.4, abs=0.03)


def test_views_do_not_modify_their_input(reference):
    x = reference[:50].clone()
    before = x.clone()
    for view in (
        FeatureCorruption(reference, 0.5),
        FeatureMask(0.5),
        GaussianNoise(1.0),
    ):
        view(x, _generator())
        assert torch.equal(x, before)


@pytest.mark.parametrize("name", VIEWS)
def test_same_generator_seed_gives_the_same_view(reference, name):
    view = make_view(name, reference, corruption_rate=0.4, noise_scale=0.3)
    x = reference[:64]
    assert torch.equal(view(x, _generator(3)), view(x, _generator(3)))
    assert not torch.equal(view(x, _generator(3)), view(x, _generator(4)))


def test_mask_zeroes_the_requested_share():
    x = torch.ones(1000, 8)
    view = FeatureMask(0.25)(x, _generator())
    assert torch.equal((view == 0).sum(dim=1), torch.full((1000,), 2))
    assert set(view.unique().tolist()) == {0.0, 1.0}


def test_noise_is_scaled_per_feature():
    x = torch.zeros(20000, 3)
    std = torch.tensor([0.1, 1.0, 10.0])
    view = GaussianNoise(0.5, std)(x, _generator())
    np.testing.assert_allclose(view.std(dim=0).numpy(), (0.5 * std).numpy(), rtol=0.03)
    assert np.all(np.abs(view.mean(dim=0).numpy()) < 0.05 * std.numpy())


def test_make_view_noise_uses_the_reference_spread():
    generator = torch.Generator().manual_seed(0)
    reference = torch.randn(5000, 2, generator=generator) * torch.tensor([1.0, 4.0])
    view = make_view("noise", reference, noise_scale=1.0)
    out = view(torch.zeros(20000, 2), _generator())
    np.testing.assert_allclose(out.std(dim=0).numpy(), [1.0, 4.0], rtol=0.05)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="rate must lie in"):
        FeatureCorruption(torch.zeros(3, 2), 1.5)
    with pytest.raises(ValueError, match="rate must lie in"):
        FeatureMask(-0.1)
    with pytest.raises(ValueError, match="scale must be non-negative"):
        GaussianNoise(-1.0)
    with pytest.raises(ValueError, match="Unknown view 'blur'"):
        make_view("blur", torch.zeros(3, 2))
    with pytest.raises(ValueError, match="2 features"):
        FeatureCorruption(torch.zeros(3, 5))(torch.zeros(4, 2), _generator())
    with pytest.raises(ValueError, match="2-D batch"):
        FeatureMask()(torch.zeros(4), _generator())
