"""Score networks and the denoising score-matching objective and trainer."""

import math

import pytest
import torch

import lib
from lib.networks import ScoreMLP


def test_sizes_and_seeded_init():
    net = ScoreMLP(3, width=16, hidden_layers=2, seed=1)
    # (3 + 3 time features) * 16 + 16, 16 * 16 + 16, 16 * 3 + 3
    assert net.n_params == 6 * 16 + 16 + 16 * 16 + 16 + 16 * 3 + 3
    assert net.depth == 3
    same = ScoreMLP(3, width=16, hidden_layers=2, seed=1)
    assert all(torch.equal(p, q) for p, q in zip(net.parameters(), same.parameters()))


class Constant(torch.nn.Module):
    def __init__(self, value):
        super().__init__()
        self.value = value
        self.anchor = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))  # fixes dtype and device

    def forward(self, inputs):
        return self.value


def test_parameterizations_read_the_raw_output_correctly():
    """Force the raw output g to be the exact target of each parameterization: the
    network must then return the exact score."""
    mix = lib.demo_1d()
    x = torch.randn(7, 1, dtype=torch.float64)
    t = 0.3
    s = math.sqrt(1 - math.exp(-2 * t))
    score = mix.score(x, t)
    targets = {"score": score, "noise": -s * score, "mean": mix.posterior_mean(x, t)}
    for name, target in targets.items():
        net = ScoreMLP(1, parameterization=name, dtype=torch.float64)
        net.net = Constant(target)
        assert torch.allclose(net(x, t), score, atol=1e-12), name


def test_scalar_and_per_row_times_agree():
    net = ScoreMLP(2, seed=0)
    x = torch.randn(5, 2)
    assert torch.allclose(net(x, 0.3), net(x, torch.full((5,), 0.3)))


def test_network_bad_inputs():
    with pytest.raises(ValueError, match="parameterization must be one of"):
        ScoreMLP(2, parameterization="velocity")
    with pytest.raises(ValueError, match="width must be >= 1"):
        ScoreMLP(2, width=0)
    with pytest.raises(TypeError, match="d must be an integer"):
        ScoreMLP(2.5)
    net = ScoreMLP(2)
    with pytest.raises(ValueError, match="t must be > 0"):
        net(torch.zeros(3, 2), 0.0)
    with pytest.raises(ValueError, match="x must have d = 2"):
        net(torch.zeros(3, 1), 0.1)


def test_dsm_loss_at_the_score_is_the_minimum():
    """E||s(x_t) + z/s_t||^2 = d/s_t^2 - E||s||^2 (the DSM minimum), within 4 standard errors."""
    mix = lib.demo_2d()
    gen = torch.Generator().manual_seed(0)
    for t in (0.05, 0.5):
        obj = lib.dsm_objective(mix.score, mix, t, 400_000, generator=gen)
        low = lib.dsm_minimum(mix, t, 400_000, generator=gen)
        assert abs(obj.value - low.value) < 4 * math.hypot(obj.stderr, low.stderr)


def test_dsm_objective_excess_is_l2_error():
    """L_t(f) - L_t(s) = E||f - s||^2: a constant shift c adds exactly |c|^2."""
    mix = lib.demo_1d()
    gen = torch.Generator().manual_seed(1)
    shifted = lambda x, t: mix.score(x, t) + 0.5  # noqa: E731
    obj = lib.dsm_objective(shifted, mix, 0.2, 400_000, generator=gen)
    low = lib.dsm_minimum(mix, 0.2, 400_000, generator=gen)
    assert abs(obj.value - low.value - 0.25) < 4 * math.hypot(obj.stderr, low.stderr)


def test_dsm_minimum_single_gaussian_closed_form():
    """q_0 = N(1, 0.5): q_t = N(a, a^2/2 + s^2), minimum 1/s^2 - 1/(a^2/2 + s^2)."""
    g = lib.GaussianMixture([1.0], [1.0], 0.5)
    t = 0.3
    a2, s2 = math.exp(-2 * t), -math.expm1(-2 * t)
    est = lib.dsm_minimum(g, t, 200_000, generator=torch.Generator().manual_seed(2))
    assert abs(est.value - (1 / s2 - 1 / (a2 / 2 + s2))) < 4 * est.stderr


def test_dsm_loss_weighting_and_fixed_noise():
    mix = lib.demo_1d()
    x0 = mix.sample(100, generator=torch.Generator().manual_seed(0))
    z = torch.randn_like(x0)
    plain = lib.dsm_loss(mix.score, x0, 0.4, z)
    weighted = lib.dsm_loss(mix.score, x0, 0.4, z, weighting="sigma2")
    assert torch.allclose(weighted, plain * (1 - math.exp(-0.8)))


def test_training_learns_the_score_and_is_reproducible():
    mix = lib.demo_1d()
    x0 = mix.sample(2000, generator=torch.Generator().manual_seed(0)).float()
    gen = torch.Generator().manual_seed(9)
    before = lib.score_l2_error(ScoreMLP(1, 32, seed=0), mix, 0.5, 20_000, generator=gen).value
    results, errors = [], []
    for _ in range(2):
        net = ScoreMLP(1, 32, seed=0)
        results.append(lib.train_dsm(net, x0, t_range=(0.1, 2.0), steps=400, lr=3e-3, batch_size=256,
                                     noise="fixed", seed=3, progress=False))
        errors.append(lib.score_l2_error(net, mix, 0.5, 20_000, generator=torch.Generator().manual_seed(1)))
    assert torch.equal(results[0].losses, results[1].losses)
    assert errors[0].value < before / 10
    assert results[0].losses[-50:].mean() < results[0].losses[:50].mean()


def test_train_bad_inputs():
    net = ScoreMLP(1)
    x0 = torch.zeros(10, 1)
    with pytest.raises(ValueError, match="exactly one of t"):
        lib.train_dsm(net, x0, steps=1)
    with pytest.raises(ValueError, match="exactly one of t"):
        lib.train_dsm(net, x0, t=0.1, t_range=(0.1, 1.0), steps=1)
    with pytest.raises(ValueError, match="t must lie in"):
        lib.train_dsm(net, x0, t=0.0, steps=1)
    with pytest.raises(ValueError, match="batch_size must be >= 1 and <= 10"):
        lib.train_dsm(net, x0, t=0.1, steps=1, batch_size=11)
    with pytest.raises(ValueError, match="optimizer must be one of"):
        lib.train_dsm(net, x0, t=0.1, steps=1, optimizer="lbfgs")
    with pytest.raises(ValueError, match="noise must be one of"):
        lib.train_dsm(net, x0, t=0.1, steps=1, noise="none")
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        lib.train_dsm(lambda x, t: x, x0, t=0.1)
    with pytest.raises(ValueError, match="smaller lr"):
        lib.train_dsm(ScoreMLP(1, seed=0), torch.randn(10, 1), t=0.1, steps=50, lr=1e6, optimizer="sgd", progress=False)
    with pytest.raises(ValueError, match="t must be > 0"):
        lib.dsm_loss(net, x0, 0.0)
    with pytest.raises(ValueError, match="weighting must be one of"):
        lib.dsm_loss(net, x0, 0.1, weighting="snr")
    with pytest.raises(TypeError, match="score_fn must be callable"):
        lib.dsm_loss(None, x0, 0.1)
