"""Samplers and the metrics they are judged by."""

import math

import pytest
import torch

import lib


def reference_w1(mix, t, n, reps, seed):
    gen = torch.Generator().manual_seed(seed)
    return torch.tensor([lib.w1_to_mixture_1d(mix.sample(n, t=t, generator=gen), mix, t=t) for _ in range(reps)])


@pytest.mark.parametrize("process", ["sde", "ode"])
def test_exact_score_sampler_reproduces_1d_mixture(process):
    """With the exact score, the sampler's law at gamma is q_gamma up to discretisation:
    its W1 to q_gamma must lie within the spread of W1 between q_gamma and true samples."""
    mix, n, gamma = lib.demo_1d(), 20_000, 1e-3
    x = lib.sample(mix.score, n, 1, T=10.0, gamma=gamma, n_steps=400, process=process,
                   generator=torch.Generator().manual_seed(0))
    ref = reference_w1(mix, gamma, n, 30, seed=1)
    assert lib.w1_to_mixture_1d(x, mix, t=gamma) < ref.mean() + 4 * ref.std()


def test_wrong_score_is_detected():
    """A score for the wrong mixture gives samples far outside that spread (the test above can fail)."""
    mix = lib.demo_1d()
    wrong = lib.GaussianMixture([0.5, 0.5], [-2.0, 2.0], 0.5)
    x = lib.sample(wrong.score, 20_000, 1, n_steps=200, generator=torch.Generator().manual_seed(0))
    ref = reference_w1(mix, 1e-3, 20_000, 30, seed=1)
    assert lib.w1_to_mixture_1d(x, mix, t=1e-3) > ref.mean() + 10 * ref.std()


def test_both_integrators_reproduce_a_2d_mixture():
    """Sliced W2 between sampler output and fresh draws of q_gamma lies within the spread
    of sliced W2 between two independent draws of q_gamma."""
    mix, n = lib.demo_2d(), 4000
    gen = torch.Generator().manual_seed(3)
    truth = mix.sample(n, t=1e-3, generator=gen)
    null = torch.tensor([lib.sliced_wasserstein(mix.sample(n, t=1e-3, generator=gen), truth, generator=gen)
                         for _ in range(20)])
    for method in ("euler", "exponential"):
        x = lib.sample(mix.score, n, 2, n_steps=600, method=method, generator=gen)
        assert lib.sliced_wasserstein(x, truth, generator=gen) < null.mean() + 4 * null.std(), method


def test_sampler_with_a_network_builds_no_graph():
    net = lib.ScoreMLP(1, 8, seed=0)
    x = lib.sample(net, 50, 1, n_steps=60)
    assert not x.requires_grad and x.dtype == torch.float64
    assert all(p.grad is None for p in net.parameters())


def test_sampler_bad_inputs():
    mix = lib.demo_1d()
    with pytest.raises(TypeError, match="score_fn must be callable"):
        lib.sample(3, 10, 1)
    with pytest.raises(ValueError, match="process must be one of"):
        lib.sample(mix.score, 10, 1, process="langevin")
    with pytest.raises(ValueError, match="x_T must have n = 10 rows"):
        lib.sample(mix.score, 10, 1, x_T=torch.zeros(5, 1))
    with pytest.raises(ValueError, match="gamma must lie in"):
        lib.sample(mix.score, 10, 1, T=1.0, gamma=1.0)
    with pytest.raises(ValueError, match="score_fn returned non-finite values"):
        lib.sample(lambda x, t: x * float("inf"), 10, 1, n_steps=60)


def test_l2_error_of_a_shift_is_exact():
    mix = lib.demo_2d()
    c = torch.tensor([0.3, -0.4], dtype=torch.float64)
    est = lib.score_l2_error(lambda x, t: mix.score(x, t) + c, mix, 0.1, 1000)
    assert est.value == pytest.approx(0.25, rel=1e-12) and est.stderr < 1e-12


def test_quantile_error_of_known_distribution():
    """|N(0,1)| has (1 - delta)-quantile Phi^{-1}(1 - delta/2)."""
    from scipy.stats import norm

    gen = torch.Generator().manual_seed(0)
    e = torch.randn(100_000, generator=gen, dtype=torch.float64).abs()
    for delta in (0.01, 0.1, 0.5):
        q = lib.quantile_error(e, delta)
        truth = norm.ppf(1 - delta / 2)
        assert q.lower <= truth <= q.upper
        assert q.lower <= q.value <= q.upper


def test_score_quantile_error_of_a_shift():
    mix = lib.demo_1d()
    q = lib.score_quantile_error(lambda x, t: mix.score(x, t) + 0.7, mix, 0.2, 0.05, 2000)
    assert q.value == pytest.approx(0.7, rel=1e-12)


def test_w1_1d_exact_cases():
    x = torch.randn(500, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert lib.w1_1d(x, x + 0.3) == pytest.approx(0.3, rel=1e-10)
    assert lib.w1_1d(torch.tensor([[0.0], [1.0]]), torch.tensor([[0.0], [0.0], [1.0], [1.0]])) == pytest.approx(0.0)


def test_sliced_wasserstein_of_a_shift():
    """SW_2(x, x + c e_1)^2 = c^2 E[theta_1^2] = c^2 / d."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1000, 4, dtype=torch.float64, generator=gen)
    y = x + torch.tensor([1.0, 0, 0, 0], dtype=torch.float64)
    sw = lib.sliced_wasserstein(x, y, n_projections=20_000, generator=gen)
    # the Monte-Carlo error over 2e4 directions of E[theta_1^2] (variance ~ 2/d^2 / 20000) is < 1%
    assert sw == pytest.approx(0.5, rel=0.02)
    assert lib.sliced_wasserstein(x, x[:700], n_projections=64, generator=gen) < 0.15


def test_mmd_separates_and_vanishes():
    gen = torch.Generator().manual_seed(0)
    reps = torch.tensor([lib.mmd(torch.randn(300, 2, generator=gen), torch.randn(300, 2, generator=gen))
                         for _ in range(20)])
    # unbiased: zero mean under the null
    assert abs(reps.mean()) < 4 * reps.std() / math.sqrt(20)
    shifted = lib.mmd(torch.randn(300, 2, generator=gen), torch.randn(300, 2, generator=gen) + 1)
    assert shifted > reps.mean() + 10 * reps.std()


def test_metric_bad_inputs():
    mix = lib.demo_1d()
    with pytest.raises(TypeError, match="mixture must be a GaussianMixture"):
        lib.score_l2_error(mix.score, "mix", 0.1)
    with pytest.raises(ValueError, match="t must lie in"):
        lib.dsm_minimum(mix, 0.0)
    with pytest.raises(ValueError, match="delta must lie in"):
        lib.quantile_error(torch.ones(10), 1.0)
    with pytest.raises(ValueError, match="errors must have shape"):
        lib.quantile_error(torch.ones(1), 0.1)
    with pytest.raises(ValueError, match="d = 1"):
        lib.tv_1d(mix, lib.demo_2d())
    with pytest.raises(ValueError, match="y must have d = 2"):
        lib.sliced_wasserstein(torch.zeros(5, 2), torch.zeros(5, 3))
    with pytest.raises(ValueError, match="p must be >= 1 and <= 2"):
        lib.sliced_wasserstein(torch.zeros(5, 2), torch.zeros(5, 2), p=3)
    with pytest.raises(ValueError, match="bandwidth must lie in"):
        lib.mmd(torch.zeros(5, 2), torch.ones(5, 2), bandwidth=-1.0)
    with pytest.raises(ValueError, match="x must be finite"):
        lib.w1_1d(torch.tensor([[float("nan")]]), torch.zeros(3, 1))
    with pytest.raises(ValueError, match=r"mixture must be a GaussianMixture in d = 1"):
        lib.w1_to_mixture_1d(torch.zeros(3, 1), lib.demo_2d())
