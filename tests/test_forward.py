import math

import pytest
import torch

import lib


def test_schedule_values():
    t = torch.tensor([1e-8, 0.5, 3.0], dtype=torch.float64)
    assert torch.allclose(lib.alpha(t), torch.exp(-t))
    # s_t^2 keeps relative precision at tiny t, where 1 - exp(-2t) would cancel.
    assert abs(lib.sigma2(1e-12).item() / 2e-12 - 1) < 1e-10
    assert torch.allclose(lib.sigma(t) ** 2 + lib.alpha(t) ** 2, torch.ones(3, dtype=torch.float64))


def test_time_for_sigma_inverts_sigma():
    for s in (1e-3, 0.1, 0.9):
        assert abs(lib.sigma(lib.time_for_sigma(s)).item() - s) < 1e-12


def test_perturb_moments_and_given_noise():
    x0 = torch.full((200_000, 1), 2.0, dtype=torch.float64)
    xt, z = lib.perturb(x0, 0.5, generator=torch.Generator().manual_seed(0))
    a, s = math.exp(-0.5), math.sqrt(1 - math.exp(-1))
    assert abs(xt.mean().item() - 2 * a) < 4 * s / math.sqrt(2e5)
    assert abs(xt.std().item() - s) < 0.01
    xt2, z2 = lib.perturb(x0[:5], torch.full((5,), 0.5, dtype=torch.float64), z=z[:5])
    assert torch.equal(z2, z[:5]) and torch.allclose(xt2, xt[:5])


def test_time_grid():
    g = lib.time_grid(10.0, 1e-3, 100)
    assert g.shape == (101,) and g[0] == pytest.approx(10.0) and g[-1] == pytest.approx(1e-3)
    assert (g.diff() < 0).all()
    ratios = g[1:] / g[:-1]
    assert torch.allclose(ratios, ratios[0].expand_as(ratios))
    u = lib.time_grid(2.0, 0.5, 3, kind="uniform")
    assert torch.allclose(u, torch.tensor([2.0, 1.5, 1.0, 0.5], dtype=torch.float64))


def test_bad_inputs():
    with pytest.raises(ValueError, match="t must be >= 0"):
        lib.alpha(-1.0)
    with pytest.raises(ValueError, match="t must be finite"):
        lib.sigma2(float("nan"))
    with pytest.raises(TypeError, match="t must be"):
        lib.sigma("0.5")
    with pytest.raises(ValueError, match="s must lie in"):
        lib.time_for_sigma(1.0)
    with pytest.raises(ValueError, match="x0 must have shape"):
        lib.perturb(torch.zeros(3), 0.1)
    with pytest.raises(ValueError, match="z must have"):
        lib.perturb(torch.zeros(3, 2), 0.1, z=torch.zeros(4, 2))
    with pytest.raises(ValueError, match="gamma must lie in"):
        lib.time_grid(1.0, 2.0, 10)
    with pytest.raises(ValueError, match="n_steps must be >= 1"):
        lib.time_grid(1.0, 0.1, 0)
    with pytest.raises(ValueError, match="kind must be one of"):
        lib.time_grid(1.0, 0.1, 10, kind="cosine")
