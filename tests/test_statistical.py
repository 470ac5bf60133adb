"""lib.statistical: DSM as regression (label noise, sandwich theory) and the empirical score."""

import math

import numpy as np
import pytest
import torch

import lib
from lib import statistical as st


def _numpy_score_sq(t):
    """E|grad log q_t|^2 for demo_1d by an independent numpy quadrature."""
    w, m, v = np.array([0.25, 0.5, 0.25]), np.array([-2.5, 0.5, 3.0]), np.array([0.3, 0.5, 0.2])
    a, s2 = math.exp(-t), -math.expm1(-2 * t)
    var = a * a * v + s2
    x = np.linspace(-15, 15, 600_001)[:, None]
    comp = w * np.exp(-(x - a * m) ** 2 / (2 * var)) / np.sqrt(2 * np.pi * var)
    p = comp.sum(1)
    score = (comp * (a * m - x) / var).sum(1) / p
    return np.trapezoid(p * score**2, x[:, 0])


def test_score_second_moment_and_noise_variance_against_numpy():
    """At t = 1e-3: E|score|^2 = 2.30 while 1/s^2 = 500.5, C_t = 1/s^2 - E|score|^2."""
    mix = lib.demo_1d()
    for t in (1e-3, 0.2):
        e2 = st.score_second_moment_1d(mix, t)
        assert e2 == pytest.approx(_numpy_score_sq(t), rel=1e-6)
        assert st.dsm_noise_variance_1d(mix, t) == pytest.approx(1 / -math.expm1(-2 * t) - e2, rel=1e-12)
    assert st.score_second_moment_1d(mix, 1e-3) == pytest.approx(2.30, abs=0.005)


def test_label_variance_averages_to_the_dsm_minimum():
    """Second-order Tweedie: E v(x) = C_t (integration by parts); for a Gaussian N(0, v0) the
    label variance is the constant 1/s^2 - 1/(a^2 v0 + s^2)."""
    gauss = lib.GaussianMixture([1.0], [0.0], [0.3])
    x = torch.linspace(-3, 3, 7, dtype=torch.float64)[:, None]
    t = 0.05
    a2, s2 = math.exp(-2 * t), -math.expm1(-2 * t)
    assert torch.allclose(st.label_variance(gauss, x, t), torch.full((7,), 1 / s2 - 1 / (a2 * 0.3 + s2),
                                                                      dtype=torch.float64), rtol=1e-10)
    th = st.linear_theory_1d(lib.demo_1d(), 0.2, st.quantile_knots_1d(lib.demo_1d(), 0.2, 4))
    assert th.noise_variance == pytest.approx(st.dsm_noise_variance_1d(lib.demo_1d(), 0.2), rel=1e-8)


def test_sandwich_predicts_the_least_squares_error():
    """Over 400 training sets of m = 2000 pairs the mean G-norm error matches tr(G^-1 Omega)/m
    within 4 standard errors plus the O(k/m) finite-sample term."""
    mix = lib.demo_1d()
    th = st.linear_theory_1d(mix, 0.2, st.quantile_knots_1d(mix, 0.2, 6))
    e = st.least_squares_fits(mix, th, 2000, 400, generator=torch.Generator().manual_seed(3))
    pred = th.predicted_stat_error(2000).item()
    se = e.std().item() / math.sqrt(e.numel())
    assert abs(e.mean().item() - pred) < 4 * se + 2 * th.k / 2000 * pred
    # homoscedastic reading: close to k C_t / m but not equal (the label noise varies with x)
    assert 0.5 < th.sandwich / (th.k * th.noise_variance) < 1.5


def test_quantile_knots_split_the_mass_evenly():
    mix = lib.demo_1d()
    kn = st.quantile_knots_1d(mix, 0.1, 3)
    assert torch.allclose(mix.cdf(kn, 0.1), torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64), atol=1e-6)


def test_paired_excess_agrees_with_l2_and_pairs_the_noise():
    """For a score off by 0.1 in each coordinate the excess is 2 x 0.01; pairing removes the
    label noise, so its standard error is several times the unpaired one's smaller."""
    mix = lib.demo_2d()
    f = lambda x, t: mix.score(x, t) + 0.1  # noqa: E731
    r = st.dsm_excess_paired(f, mix, 0.1, 50_000, generator=torch.Generator().manual_seed(0))
    assert abs(r.gap.value) < 4 * r.gap.stderr
    assert r.l2.value == pytest.approx(0.02, rel=1e-9)
    unpaired = lib.dsm_objective(f, mix, 0.1, 50_000, generator=torch.Generator().manual_seed(1))
    assert unpaired.stderr > 5 * r.excess.stderr


def test_empirical_score_is_the_score_of_the_noised_empirical_law():
    """Against a GaussianMixture with (nearly) zero component variance, and its denoiser
    returns a convex combination of the training points."""
    x0 = lib.demo_2d().sample(6, generator=torch.Generator().manual_seed(0))
    es = st.EmpiricalScore(x0)
    gm = lib.GaussianMixture(torch.full((6,), 1 / 6, dtype=torch.float64), x0, 1e-14)
    x = torch.randn(9, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    for t in (0.01, 0.5):
        assert torch.allclose(es(x, t), gm.score(x, t), rtol=1e-8, atol=1e-8)
    per_row = torch.full((9,), 0.3, dtype=torch.float64)
    assert torch.allclose(es(x, per_row), es(x, 0.3), atol=1e-12)


def test_empirical_score_sampler_returns_training_points():
    x0 = lib.demo_2d().sample(20, generator=torch.Generator().manual_seed(0))
    out = lib.sample(st.EmpiricalScore(x0), 500, 2, T=5.0, gamma=1e-4, n_steps=300,
                     generator=torch.Generator().manual_seed(1))
    assert st.nearest_distance(out, x0).max().item() < 0.1  # s_gamma ~ 0.014


def test_bad_inputs():
    mix = lib.demo_1d()
    with pytest.raises(ValueError, match="t"):
        st.dsm_noise_variance_1d(mix, 0.0)
    with pytest.raises(TypeError, match="mixture"):
        st.label_variance("mix", torch.zeros(2, 1), 0.1)
    with pytest.raises(ValueError, match="one-dimensional"):
        st.linear_theory_1d(lib.demo_2d(), 0.1, [0.0])
    th = st.linear_theory_1d(mix, 0.1, [0.0])
    with pytest.raises(ValueError, match="m"):
        st.least_squares_fits(mix, th, 2, 5)
    with pytest.raises(ValueError, match="x"):
        st.spline_features(torch.zeros(3), [0.0])
    with pytest.raises(TypeError, match="theory"):
        st.least_squares_fits(mix, "theory", 50, 5)
    with pytest.raises(TypeError, match="mixture"):
        st.dsm_excess_paired(lambda x, t: x, "mix", 0.1, 10)
    with pytest.raises(ValueError, match="t"):
        st.EmpiricalScore(torch.zeros(3, 1))(torch.zeros(2, 1), 0.0)


def test_best_in_class_fit_reaches_a_linear_score_and_reports_its_objective():
    """The score of a Gaussian is linear, which a ReLU network represents exactly: the fit's
    objective must fall far below the initial error, and the reported objective is the
    squared L2 error the network has afterwards (Monte Carlo, 20000 points, within 5 s.e.)."""
    from lib.batched import BatchedScoreMLP, batched_score_errors

    gauss = lib.GaussianMixture([1.0], [0.5], 0.4)
    net = BatchedScoreMLP(2, 1, 8, 2, time_features=False, seeds=[0, 1])
    t = torch.tensor([0.1, 1.0], dtype=torch.float64)
    before = (batched_score_errors(net, gauss, t, 20_000, generator=torch.Generator().manual_seed(0)) ** 2).mean(1)
    fit = st.fit_best_in_class(net, gauss, t, points=201, adam_steps=100, lbfgs_iters=200, progress=False)
    after = batched_score_errors(net, gauss, t, 20_000, generator=torch.Generator().manual_seed(0)) ** 2
    assert (fit.loss < 1e-3 * before).all()
    se = after.std(1) / math.sqrt(after.shape[1])
    assert ((after.mean(1) - fit.loss).abs() < 5 * se + 1e-6).all()
    assert fit.grad_norm.shape == (2,) and torch.isfinite(fit.recent_fall).all()


def test_best_in_class_fit_rejects_bad_inputs():
    from lib.batched import BatchedScoreMLP

    net = BatchedScoreMLP(1, 1, 4, 2, time_features=False)
    with pytest.raises(TypeError, match="net"):
        st.fit_best_in_class("net", lib.demo_1d(), 0.1)
    with pytest.raises(ValueError, match="1-D"):
        st.fit_best_in_class(net, lib.demo_2d(), 0.1)
    with pytest.raises(ValueError, match="t must be > 0"):
        st.fit_best_in_class(net, lib.demo_1d(), 0.0)
    with pytest.raises(ValueError, match="lbfgs_iters"):
        st.fit_best_in_class(net, lib.demo_1d(), 0.1, lbfgs_iters=10, tail=50)


@pytest.mark.parametrize("history,iters", [(5, (7, 6)), (8, (15, 4)), (50, (12, 3))])
def test_flat_lbfgs_follows_torch_lbfgs(history, iters):
    """lib._lbfgs.FlatLBFGS (two-loop recursion in matrix form) takes torch.optim.LBFGS's
    iterates (strong Wolfe, two step calls sharing state, the history wrapping around) to
    rounding, on a smooth non-convex function of 30 variables."""
    from lib._lbfgs import FlatLBFGS

    g = torch.Generator().manual_seed(0)
    A = torch.randn(30, 30, generator=g, dtype=torch.float64)
    Q, b = A @ A.T / 30 + 0.1 * torch.eye(30, dtype=torch.float64), torch.randn(30, generator=g, dtype=torch.float64)
    x0 = torch.randn(30, generator=g, dtype=torch.float64)

    def f(x):
        return 0.5 * x @ Q @ x - b @ x + 0.25 * (x**4).sum() + torch.cos(x).sum()

    def value_and_grad(x):
        x = x.detach().requires_grad_(True)
        v = f(x)
        return v.item(), torch.autograd.grad(v, x)[0]

    p = x0.clone().requires_grad_(True)
    opt = torch.optim.LBFGS([p], lr=1, max_iter=iters[0], history_size=history, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-12, tolerance_change=1e-15)

    def closure():
        opt.zero_grad()
        v = f(p)
        v.backward()
        return v

    opt.step(closure)
    opt.param_groups[0]["max_iter"] = iters[1]
    opt.step(closure)
    ours = FlatLBFGS(value_and_grad, x0, history=history, tolerance_grad=1e-12, tolerance_change=1e-15)
    ours.run(iters[0])
    ours.run(iters[1], iters[0] * 5 // 4)
    assert ours.k == opt.state[p]["n_iter"] == sum(iters)
    assert torch.allclose(ours.x, p.detach(), rtol=0, atol=1e-12)
    assert f(ours.x) < f(x0) - 1


def test_flat_lbfgs_stops_like_torch_without_curvature():
    """On a linear function no curvature pair is ever accepted (y.s = 0) and the line search
    only extrapolates: both stop at the same point after the same evaluations (max_eval)."""
    from lib._lbfgs import FlatLBFGS

    ours = FlatLBFGS(lambda x: (x.sum().item(), torch.ones_like(x)), torch.zeros(3, dtype=torch.float64))
    ours.run(5)
    p = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([p], lr=1, max_iter=5, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        v = p.sum()
        v.backward()
        return v

    opt.step(closure)
    assert ours.count == 0 and torch.equal(ours.x, p.detach())


def test_sandwich_estimate_from_pairs_matches_the_quadrature_theory():
    """The plug-in tr(G^-1 Omega) from 1e5 DSM pairs of demo_1d agrees with linear_theory_1d's
    quadrature value: over six seeds its relative spread is 0.6-0.8 % at this n, so 4 % is five
    standard deviations."""
    mix, t = lib.demo_1d(), 0.05
    theory = st.linear_theory_1d(mix, t, st.quantile_knots_1d(mix, t, 8))
    g = torch.Generator().manual_seed(11)
    x0 = mix.sample(100_000, generator=g)
    z = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    a, s = math.exp(-t), math.sqrt(-math.expm1(-2 * t))
    phi, y = st.spline_features(a * x0 + s * z, theory.knots), (-z / s)[:, 0]
    assert st.sandwich_estimate(phi, y) == pytest.approx(theory.sandwich, rel=0.04)
    with pytest.raises(ValueError, match="phi"):
        st.sandwich_estimate(phi[:5], y)
