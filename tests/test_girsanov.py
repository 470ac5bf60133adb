"""lib.girsanov: the per-step KL weights and the injected-error score."""

import math

import pytest
import torch

import lib
from lib import girsanov


def test_step_weight_is_the_gaussian_kl_of_one_step():
    """Two exponential-integrator steps differing by a score error e: means 2(e^h - 1)e apart,
    variance e^{2h} - 1; KL = |diff|^2 / (2 var) = 2 tanh(h/2) e^2 (checked by hand)."""
    times = torch.tensor([3.0, 1.0, 0.25, 0.01], dtype=torch.float64)
    h = -times.diff()
    by_hand = (2 * torch.expm1(h)) ** 2 / (2 * torch.expm1(2 * h))
    assert torch.allclose(girsanov.step_weights(times), by_hand, rtol=1e-13)


def test_path_kl_of_an_error_c_over_s_costs_about_half_log_one_over_gamma():
    """Geometric steps: sum_k h_k c^2 / s_{t_k}^2 over t <= 1 is ~ c^2 (log(1/gamma)/2 + O(1)),
    and the O(1) part stays bounded as gamma -> 0 (the per-scale cost is constant)."""
    costs = []
    for gamma in (1e-3, 1e-5):
        times = lib.time_grid(1.0, gamma, 4000)
        err = girsanov.InjectedError(lambda x, t: x, 1.0, 1.0)
        costs.append(girsanov.path_kl(times, err.sq_size(times[:-1])).item() - 0.5 * math.log(1 / gamma))
    assert abs(costs[0] - costs[1]) < 1e-2  # the remainder does not depend on gamma
    assert 0 < costs[0] < 1.0


def test_injected_error_adds_c_over_s_t_power_below_t_max():
    base = lambda x, t: -x  # noqa: E731
    err = girsanov.InjectedError(base, torch.tensor([0.5, 2.0], dtype=torch.float64), 1.0, t_max=1.0)
    x = torch.tensor([[1.0], [3.0]], dtype=torch.float64)
    s = lib.sigma(0.3).item()
    assert torch.allclose(err(x, 0.3), torch.tensor([[-1 + 0.5 / s], [-3 + 2 / s]], dtype=torch.float64))
    assert torch.equal(err(x, 2.0), -x)  # above t_max the base score alone
    assert err.sq_size(torch.tensor([0.3]))[1, 0].item() == pytest.approx(4 / s**2)


def test_sampler_output_moves_by_the_integrated_drift_error():
    """A constant error e in the SDE's drift 2e: for the N(0, I) target (score -x) the output
    mean follows the recursion m <- e^h m + 2 (e^h - 1)(e - m) of the step's mean."""
    times = lib.time_grid(1.0, 1e-2, 50)
    err = girsanov.InjectedError(lambda x, t: -x, 0.1, 0.0)
    out = lib.sample(err, 20_000, 1, T=1.0, gamma=1e-2, n_steps=50, generator=torch.Generator().manual_seed(0))
    h = -times.diff()
    # exact law: y -> e^h y + 2(e^h - 1)(-y + e) + noise = (2 - e^h) y + ..., so track the mean
    mean = torch.zeros((), dtype=torch.float64)
    for hk in h:
        mean = torch.exp(hk) * mean + 2 * torch.expm1(hk) * (0.1 - mean)
    assert abs(out.mean().item() - mean.item()) < 4 * out.std().item() / math.sqrt(20_000)
    assert mean.item() > 10 * out.std().item() / math.sqrt(20_000)  # the shift is resolved


def test_bad_inputs():
    with pytest.raises(ValueError, match="times"):
        girsanov.step_weights(torch.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match="sq_error"):
        girsanov.path_kl(torch.tensor([2.0, 1.0, 0.5]), torch.ones(3))
    with pytest.raises(ValueError, match="power"):
        girsanov.InjectedError(lambda x, t: x, 1.0, -1.0)
    with pytest.raises(TypeError, match="base"):
        girsanov.InjectedError(3.0, 1.0, 1.0)
    err = girsanov.InjectedError(lambda x, t: x, torch.ones(3), 1.0)
    with pytest.raises(ValueError, match="rows"):
        err(torch.zeros(2, 1, dtype=torch.float64), 0.5)
