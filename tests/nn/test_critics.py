"""Critics (score matrices) and the MLP builder."""

import pytest
import torch
from torch import nn

from sk_mlcpc.critics import (
    CRITICS,
    BilinearCritic,
    ConcatCritic,
    SeparableCritic,
    make_critic,
)
from sk_mlcpc.encoders import ACTIVATIONS, make_mlp

X_FEATURES, Y_FEATURES = 3, 2


def _critic(name, **params):
    params = {"embedding_dim": 4, "hidden_layer_sizes": (8, 6), **params}
    return make_critic(name, X_FEATURES, Y_FEATURES, **params).double()


def _inputs(n, m):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(n, X_FEATURES, generator=generator, dtype=torch.float64)
    y = torch.randn(m, Y_FEATURES, generator=generator, dtype=torch.float64)
    return x, y


@pytest.mark.parametrize("name", CRITICS)
@pytest.mark.parametrize(("n", "m"), [(5, 7), (6, 6), (1, 4), (4, 1)])
def test_forward_shape(name, n, m):
    x, y = _inputs(n, m)
    scores = _critic(name)(x, y)
    assert scores.shape == (n, m)
    assert scores.dtype == torch.float64
    assert torch.isfinite(scores).all()


@pytest.mark.parametrize("name", CRITICS)
def test_pointwise_is_the_diagonal_of_forward(name):
    critic = _critic(name)
    x, y = _inputs(6, 6)
    pointwise = critic.pointwise(x, y)
    assert pointwise.shape == (6,)
    torch.testing.assert_close(pointwise, torch.diagonal(critic(x, y)))


@pytest.mark.parametrize("name", CRITICS)
def test_gradients_reach_every_parameter(name):
    critic = _critic(name)
    x, y = _inputs(4, 4)
    critic(x, y).sum().backward()
    for parameter_name, parameter in critic.named_parameters():
        assert parameter.grad is not None, parameter_name


@pytest.mark.parametrize("name", CRITICS)
def test_forward_does_not_mix_rows(name):
    # Row i of the score matrix depends on x_i only, column j on y_j only.
    critic = _critic(name)
    x, y = _inputs(5, 7)
    full = critic(x, y)
    torch.testing.assert_close(critic(x[2:4], y[1:6]), full[2:4, 1:6])


def test_make_critic_types():
    assert type(_critic("separable")) is SeparableCritic
    assert not _critic("separable").marginal_terms
    assert _critic("separable_additive").marginal_terms
    assert type(_critic("bilinear")) is BilinearCritic
    assert type(_critic("concat")) is ConcatCritic
    assert _critic("separable").separable and _critic("bilinear").separable
    assert not _critic("concat").separable


def test_unknown_critic_lists_choices():
    with pytest.raises(ValueError, match="Unknown critic 'dot'") as excinfo:
        make_critic("dot", 2, 2)
    for choice in CRITICS:
        assert repr(choice) in str(excinfo.value)


# ---------------------------------------------------------------------------------------
# Embeddings
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["separable", "separable_additive", "bilinear"])
def test_embedding_shapes(name):
    critic = _critic(name, embedding_dim=5)
    x, y = _inputs(3, 4)
    assert critic.embed_x(x).shape == (3, 5)
    assert critic.embed_y(y).shape == (4, 5)


def test_separable_forward_is_the_inner_product_of_embeddings():
    critic = _critic("separable")
    x, y = _inputs(5, 7)
    torch.testing.assert_close(critic(x, y), critic.embed_x(x) @ critic.embed_y(y).T)


def test_separable_additive_adds_marginal_terms():
    critic = _critic("separable_additive")
    x, y = _inputs(5, 7)
    a = critic.x_encoder(x)[:, -1]
    b = critic.y_encoder(y)[:, -1]
    expected = critic.embed_x(x) @ critic.embed_y(y).T + a[:, None] + b[None, :]
    torch.testing.assert_close(critic(x, y), expected)
    # The marginal outputs are not part of the embedding.
    torch.testing.assert_close(critic.embed_x(x), critic.x_encoder(x)[:, :4])


def test_bilinear_forward_uses_its_weight():
    critic = _critic("bilinear")
    x, y = _inputs(5, 7)
    torch.testing.assert_close(critic.weight, torch.eye(4, dtype=torch.float64))
    with torch.no_grad():
        critic.weight.copy_(torch.randn(4, 4, dtype=torch.float64))
    gx, hy = critic.x_encoder(x), critic.y_encoder(y)
    torch.testing.assert_close(critic.embed_x(x), gx @ critic.weight)
    torch.testing.assert_close(critic(x, y), gx @ critic.weight @ hy.T)
    torch.testing.assert_close(critic(x, y), critic.embed_x(x) @ critic.embed_y(y).T)


# ---------------------------------------------------------------------------------------
# ConcatCritic
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("hidden_layer_sizes", [(8,), (8, 6)])
@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_concat_critic_equals_an_mlp_on_concatenated_pairs(hidden_layer_sizes, activation):
    critic = _critic("concat", hidden_layer_sizes=hidden_layer_sizes, activation=activation)
    reference = make_mlp(
        X_FEATURES + Y_FEATURES, 1, hidden_layer_sizes, activation=activation
    ).double()
    with torch.no_grad():
        first = reference[0]
        first.weight.copy_(torch.cat([critic.x_input.weight, critic.y_input.weight], dim=1))
        first.bias.copy_(critic.x_input.bias)
        # The remaining layers are the critic's head, after the first activation.
        rest = [module for module in reference[2:] if isinstance(module, nn.Linear)]
        head = [module for module in critic.head if isinstance(module, nn.Linear)]
        assert len(rest) == len(head)
        for mine, theirs in zip(rest, head):
            mine.weight.copy_(theirs.weight)
            mine.bias.copy_(theirs.bias)
    x, y = _inputs(5, 7)
    pairs = torch.cat(
        [x[:, None, :].expand(5, 7, X_FEATURES), y[None, :, :].expand(5, 7, Y_FEATURES)], dim=2
    )
    expected = reference(pairs.reshape(35, -1)).reshape(5, 7)
    torch.testing.assert_close(critic(x, y), expected)
    torch.testing.assert_close(critic.pointwise(x, y[:5]), torch.diagonal(expected[:, :5]))


def test_concat_critic_ignores_embedding_dim():
    one = _critic("concat", embedding_dim=2)
    other = _critic("concat", embedding_dim=50)
    assert [p.shape for p in one.parameters()] == [p.shape for p in other.parameters()]


def test_concat_critic_validation():
    with pytest.raises(ValueError, match="at least one hidden layer"):
        ConcatCritic(2, 2, hidden_layer_sizes=())
    with pytest.raises(ValueError, match="Unknown activation"):
        ConcatCritic(2, 2, hidden_layer_sizes=(4,), activation="sigmoid")


# ---------------------------------------------------------------------------------------
# make_mlp
# ---------------------------------------------------------------------------------------


def test_make_mlp_structure():
    mlp = make_mlp(5, 3, hidden_layer_sizes=(16, 8), activation="gelu")
    linears = [module for module in mlp if isinstance(module, nn.Linear)]
    assert [(layer.in_features, layer.out_features) for layer in linears] == [
        (5, 16),
        (16, 8),
        (8, 3),
    ]
    assert sum(isinstance(module, nn.GELU) for module in mlp) == 2
    assert isinstance(mlp[-1], nn.Linear)  # no activation on the output
    assert mlp(torch.zeros(4, 5)).shape == (4, 3)


def test_make_mlp_without_hidden_layers_is_linear():
    mlp = make_mlp(5, 3, hidden_layer_sizes=())
    assert len(mlp) == 1 and isinstance(mlp[0], nn.Linear)


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_make_mlp_every_activation(activation):
    mlp = make_mlp(2, 1, hidden_layer_sizes=(3,), activation=activation)
    assert isinstance(mlp[1], ACTIVATIONS[activation])


def test_make_mlp_unknown_activation_lists_choices():
    with pytest.raises(ValueError, match="Unknown activation 'sigmoid'") as excinfo:
        make_mlp(2, 2, activation="sigmoid")
    for name in ACTIVATIONS:
        assert repr(name) in str(excinfo.value)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"in_features": 0, "out_features": 2}, "in_features"),
        ({"in_features": 2, "out_features": 0}, "out_features"),
        ({"in_features": 2.5, "out_features": 2}, "in_features"),
        ({"in_features": 2, "out_features": 1.5}, "out_features"),
        ({"in_features": 2, "out_features": 2, "hidden_layer_sizes": (0,)}, "hidden"),
        ({"in_features": 2, "out_features": 2, "hidden_layer_sizes": (4, -3)}, "hidden"),
        ({"in_features": 2, "out_features": 2, "hidden_layer_sizes": (2.5,)}, "hidden"),
    ],
)
def test_make_mlp_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_mlp(**kwargs)
