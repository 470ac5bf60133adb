"""Unit tests of lib.ntk: kernels, the two-layer model, torch.func NTK, kernel GD, the regression view.

Tolerances: float64 round-off (1e-10 and below) for identities; Monte-Carlo standard errors
(computed in the test) for random quantities.
"""

import math

import pytest
import torch

import lib
from lib import ntk


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _inputs(n: int, d: int = 1, seed: int = 0) -> torch.Tensor:
    g = _gen(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64) * 2
    t = 0.05 + torch.rand(n, generator=g, dtype=torch.float64)
    return ntk.ntk_inputs(x, t)


# ----------------------------------------------------------------------- analytic kernel
@pytest.mark.parametrize("trained", ["first", "both"])
def test_analytic_kernel_matches_monte_carlo_over_units(trained):
    """K = E_w[(u.u') 1 1] (+ E_w[relu relu]); 4e5 independent units: error ~ 5 standard errors."""
    u = _inputs(12)
    W = torch.randn(400_000, u.shape[1], generator=_gen(1), dtype=torch.float64)
    pre = u @ W.T
    first = (u @ u.T)[None] * ((pre > 0).double().T[:, :, None] * (pre > 0).double().T[:, None, :])
    per_unit = first
    if trained == "both":
        relu = torch.relu(pre).T
        per_unit = per_unit + relu[:, :, None] * relu[:, None, :]
    mc, se = per_unit.mean(0), per_unit.std(0) / math.sqrt(W.shape[0])
    K = ntk.relu_ntk(u, trained=trained)
    assert ((mc - K).abs() <= 5 * se + 1e-12).all()


def test_analytic_kernel_special_angles():
    """theta = 0: (u.u)/2 for the first layer; theta = pi: 0; both layers at theta = 0: |u|^2 (each layer |u|^2 / 2)."""
    u = torch.tensor([[1.0, 2.0, 1.0], [-1.0, -2.0, -1.0]], dtype=torch.float64)
    K = ntk.relu_ntk(u)
    assert K[0, 0] == pytest.approx(3.0) and abs(K[0, 1]) < 1e-12
    assert ntk.relu_ntk(u, trained="both")[0, 0] == pytest.approx(6.0)
    # the diagonal of K(u, u) to round-off, not to arccos's sqrt(eps) (its derivative is infinite at 1)
    v = torch.randn(200, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for trained, factor in (("first", 0.5), ("both", 1.0)):
        torch.testing.assert_close(ntk.relu_ntk(v, trained=trained).diagonal(), factor * (v * v).sum(1),
                                   rtol=1e-14, atol=0)


def test_finite_width_ntk_error_has_the_predicted_size():
    """E||K_h - K||_F^2 = (2 / h) sum Var(one unit); 400 networks: the mean's SE from the sample."""
    u = _inputs(16)
    K, var = ntk.relu_ntk(u), ntk.relu_ntk_variance(u)
    model = ntk.two_layer(400, 128, u.shape[1], generator=_gen(2))
    sq = (ntk.two_layer_ntk(model, u) - K).pow(2).sum((1, 2))
    predicted = 2 / 128 * var.sum()
    assert abs(sq.mean() - predicted) < 4 * sq.std() / math.sqrt(400)


def test_finite_width_ntk_is_the_kernel_of_the_features():
    """The closed form equals J J^T of the hand-written Jacobian, and the full vector NTK's
    diagonal blocks equal the scalar one."""
    u = _inputs(7, d=2)
    model = ntk.two_layer(3, 10, u.shape[1], 2, generator=_gen(3))
    full = ntk.two_layer_ntk(model, u, full=True)
    diag = ntk.two_layer_ntk(model, u)
    assert torch.allclose(full[:, 0::2, 0::2], diag, atol=1e-12)
    assert torch.allclose(full[:, 1::2, 1::2], diag, atol=1e-12)
    s = 1
    D = (u @ model.W[s].T > 0).double()
    J = torch.einsum("ir,rj,ip->ijrp", D, model.V[s], u).reshape(7 * 2, -1) / math.sqrt(10)
    assert torch.allclose(full[s], J @ J.T, atol=1e-12)


def test_antisymmetric_initialisation_starts_at_zero():
    """Zero up to the round-off of summing h terms of size |u| / sqrt(h)."""
    u = _inputs(9, d=3)
    model = ntk.two_layer(2, 64, u.shape[1], 3, generator=_gen(4))
    assert ntk.two_layer_forward(model, u).abs().max() < 1e-13


# ----------------------------------------------------------------------- torch.func NTK
def test_torch_func_ntk_of_two_layer_model_equals_closed_form_and_loop():
    g = _gen(5)
    x = torch.randn(11, 2, generator=g, dtype=torch.float64)
    t = torch.rand(11, generator=g, dtype=torch.float64) + 0.1
    model = ntk.two_layer(2, 64, 4, 2, generator=g)
    fn, params = ntk.two_layer_function(model, seed=1)
    closed = ntk.two_layer_ntk(model, ntk.ntk_inputs(x, t), full=True)[1]
    assert (ntk.empirical_ntk(fn, params, x, t) - closed).abs().max() <= 1e-10
    assert (ntk.autograd_ntk(fn, params, x, t) - closed).abs().max() <= 1e-10


@pytest.mark.parametrize("parameterization", ["mean", "noise"])
def test_torch_func_ntk_of_score_mlp_equals_autograd_loop(parameterization):
    g = _gen(6)
    net = lib.ScoreMLP(2, 16, 2, parameterization, seed=0, dtype=torch.float64)
    fn, params = ntk.score_mlp_function(net)
    x = torch.randn(9, 2, generator=g, dtype=torch.float64)
    t = torch.rand(9, generator=g, dtype=torch.float64) + 0.05
    assert (fn(params, x, t) - net(x, t)).abs().max() <= 1e-12
    E, A = ntk.empirical_ntk(fn, params, x, t), ntk.autograd_ntk(fn, params, x, t)
    assert E.shape == (18, 18) and (E - A).abs().max() <= 1e-10
    x2 = torch.randn(4, 2, generator=g, dtype=torch.float64)
    cross = ntk.empirical_ntk(fn, params, x, t, x2, 0.3)
    both = ntk.empirical_ntk(fn, params, torch.cat([x, x2]), torch.cat([t, torch.full((4,), 0.3, dtype=torch.float64)]))
    assert (cross - both[:18, 18:]).abs().max() <= 1e-10


# ----------------------------------------------------------------------- gradient descent
def test_hand_gradient_matches_autograd():
    u = _inputs(13, d=2)
    y = torch.randn(13, 2, generator=_gen(7), dtype=torch.float64)
    model = ntk.two_layer(2, 32, u.shape[1], 2, generator=_gen(8))
    model.W += 0.3 * torch.randn(model.W.shape, generator=_gen(9), dtype=torch.float64)  # f != 0
    run = ntk.train_two_layer(model, u, y, steps=1, lr=0.7)
    W = model.W.clone().requires_grad_(True)
    # the sum over the S networks of each one's loss (1/2n) sum_i ||f(u_i) - y_i||^2
    loss = (ntk.two_layer_forward(ntk.TwoLayer(W, model.V), u) - y).pow(2).sum() / (2 * 13)
    (grad,) = torch.autograd.grad(loss, W)
    assert torch.allclose(run.model.W, model.W - 0.7 * grad, atol=1e-12)
    assert run.train_error.shape == (2, 2)


def test_wide_network_follows_kernel_gd():
    """At width 2^15 the network's predictions after 20 steps are within a few per cent of kernel GD."""
    u = _inputs(20)
    y = torch.randn(20, 1, generator=_gen(10), dtype=torch.float64)
    kgd = ntk.KernelGD(ntk.relu_ntk(u), y)
    run = ntk.train_two_layer(ntk.two_layer(1, 2**15, u.shape[1], generator=_gen(11)), u, y,
                              steps=20, lr=kgd.lr, record=[20])
    ker = kgd.predict([20])
    assert (run.predictions[0, 0] - ker[0]).norm() < 0.05 * ker.norm()


# ----------------------------------------------------------------------- kernel GD
def _kernel_problem(n=15, seed=12):
    u = _inputs(n, seed=seed)
    K = ntk.relu_ntk(u)
    y = torch.randn(n, 2, generator=_gen(seed), dtype=torch.float64)
    Ke = ntk.relu_ntk(_inputs(5, seed=seed + 1), u)
    return K, y, Ke


def test_eigenbasis_gd_equals_explicit_iteration():
    K, y, Ke = _kernel_problem()
    kgd = ntk.KernelGD(K, y, lr=0.8 / torch.linalg.eigvalsh(K / 15)[-1].item())
    f_train, f_eval, seen = torch.zeros_like(y), torch.zeros(5, 2, dtype=torch.float64), {}
    for k in range(31):
        seen[k] = (f_train.clone(), f_eval.clone())
        resid = f_train - y
        f_train, f_eval = f_train - kgd.lr / 15 * K @ resid, f_eval - kgd.lr / 15 * Ke @ resid
    ks = [0, 1, 2, 7, 30]
    train, test = kgd.predict(ks), kgd.predict(ks, Ke)
    for i, k in enumerate(ks):
        assert torch.allclose(train[i], seen[k][0], atol=1e-10)
        assert torch.allclose(test[i], seen[k][1], atol=1e-10)
        assert kgd.train_error(k).item() == pytest.approx((seen[k][0] - y).pow(2).sum(-1).mean().item(), rel=1e-10)


def test_infinite_steps_give_the_interpolant():
    K, y, Ke = _kernel_problem()
    kgd = ntk.KernelGD(K, y)
    limit, exact = kgd.predict([math.inf], Ke)[0], ntk.interpolant(K, y, Ke)
    assert (limit - exact).norm() <= 1e-8 * exact.norm()
    assert kgd.train_error(math.inf).item() < 1e-12 * y.pow(2).sum().item()
    assert kgd.train_error(torch.tensor([0.0])).item() == pytest.approx(y.pow(2).sum(-1).mean().item())


def test_shrinkage_small_eigenvalue_limit_and_zero_eigenvalues():
    """phi_k(l) -> eta k as l -> 0; an exactly singular K gives finite predictions."""
    u = _inputs(6)
    K = ntk.relu_ntk(torch.cat([u, u]))  # rank <= 6 of 12
    kgd = ntk.KernelGD(K, torch.ones(12, dtype=torch.float64))
    phi = kgd.shrinkage([3.0, 1e12, math.inf])
    assert torch.isfinite(phi).all()
    small = kgd.evals < 1e-14
    assert small.any() and torch.allclose(phi[0, small], torch.full_like(phi[0, small], 3 * kgd.lr))
    assert torch.isfinite(kgd.predict([math.inf])).all()


def test_risk_estimate_is_unbiased_for_the_in_sample_error():
    """Mallows' C_p: averaged over 1500 draws of homoscedastic label noise, the estimate matches
    the in-sample error at every step count (within 4 standard errors)."""
    u = _inputs(30, seed=20)
    K = ntk.relu_ntk(u)
    f_star = torch.sin(u[:, :1])
    noise = torch.randn(1500, 30, 1, generator=_gen(21), dtype=torch.float64) * 0.5
    steps = torch.tensor([0.0, 3.0, 30.0, 300.0, 3e4])
    est, err = [], []
    for xi in noise:
        kgd = ntk.KernelGD(K, f_star + xi)
        est.append(kgd.risk_estimate(steps, 0.25))
        err.append((kgd.predict(steps) - f_star).pow(2).sum(-1).mean(-1))
    diff = torch.stack(est) - torch.stack(err)
    assert (diff.mean(0).abs() < 4 * diff.std(0) / math.sqrt(1500)).all()
    kgd = ntk.KernelGD(K, f_star)
    assert ntk.risk_stop(kgd, steps, 0.25) == int(kgd.risk_estimate(steps, 0.25).argmin())
    assert kgd.dof([0.0]).item() == 0.0 and kgd.dof([math.inf]).item() == pytest.approx(
        int((kgd.evals > 0).sum()))


def test_discrepancy_stop():
    err = torch.tensor([5.0, 3.0, 2.0, 1.0, 0.5])
    assert ntk.discrepancy_stop(err, 2.0) == 2
    assert ntk.discrepancy_stop(err, 0.1) == 4


# ----------------------------------------------------------------------- the regression view
def test_mmse_agrees_with_the_dsm_minimum_and_with_plain_monte_carlo():
    """MMSE(t) = (s_t^4 / a_t^2) min L_t and = E||x_0 - E[x_0|x_t]||^2: three estimates agree
    within 4 combined standard errors (1-D and 2-D demo mixtures)."""
    for mix, t in [(lib.demo_1d(), 0.1), (lib.demo_2d(), 0.5)]:
        g = _gen(13)
        rb = ntk.posterior_mmse(mix, t, 20_000, generator=g)
        a2, s2 = math.exp(-2 * t), -math.expm1(-2 * t)
        dm = lib.dsm_minimum(mix, t, 100_000, generator=g)
        x_t, _, x0 = ntk.regression_data(mix, 100_000, t, generator=g)
        plain = (x0 - mix.posterior_mean(x_t, t)).pow(2).sum(-1)
        plain_se = plain.std().item() / math.sqrt(plain.numel())
        assert abs(rb.value - dm.value * s2**2 / a2) < 4 * math.hypot(rb.stderr, dm.stderr * s2**2 / a2)
        assert abs(rb.value - plain.mean().item()) < 4 * math.hypot(rb.stderr, plain_se)


@pytest.mark.parametrize("t", [0.1, 0.5, 1.0])
def test_mmse_against_quadrature_in_one_dimension(t):
    """int q_t(x) Var(x_0 | x_t = x) dx on a fine grid (the posterior of each component in
    closed form), against the Monte-Carlo estimate: within 4 standard errors."""
    mix = lib.demo_1d()
    w, m, v = mix.weights, mix.means[:, 0], mix.covariances[:, 0, 0]
    a, s2 = math.exp(-t), -math.expm1(-2 * t)
    x = torch.linspace(-15, 15, 200_001, dtype=torch.float64)[:, None]
    C = a * a * v + s2
    dens = w * torch.exp(-(x - a * m) ** 2 / (2 * C)) / torch.sqrt(2 * math.pi * C)
    q = dens.sum(1)
    r = dens / q[:, None]
    mu = m + a * v / C * (x - a * m)
    var = (r * (v - a * a * v * v / C + mu**2)).sum(1) - (r * mu).sum(1) ** 2
    exact = torch.trapezoid(q * var, x[:, 0]).item()
    est = ntk.posterior_mmse(mix, t, 20_000, generator=_gen(15))
    assert abs(est.value - exact) < 4 * est.stderr


def test_dsm_of_the_mean_read_out_is_scaled_regression_loss():
    """||s + z/s_t||^2 = (a_t^2/s_t^4) ||f - x_0||^2 pointwise, for any f (here a random network)."""
    mix, t = lib.demo_2d(), 0.3
    net = lib.ScoreMLP(2, 16, 2, "mean", seed=1, dtype=torch.float64)
    g = _gen(14)
    x0 = mix.sample(50, generator=g)
    x_t, z = lib.perturb(x0, t, generator=g)
    fn, params = ntk.score_mlp_function(net)
    f = net.net(torch.cat([x_t, lib.networks.time_features(
        torch.full((50, 1), math.exp(-t), dtype=torch.float64),
        torch.full((50, 1), -math.expm1(-2 * t), dtype=torch.float64))], -1))
    a, s2 = math.exp(-t), -math.expm1(-2 * t)
    dsm = (net(x_t, t) + z / math.sqrt(s2)).pow(2).sum(-1)
    assert torch.allclose(dsm, a * a / s2**2 * (f - x0).pow(2).sum(-1), rtol=1e-10)
    assert torch.allclose(fn(params, x_t, torch.full((50,), t, dtype=torch.float64)), net(x_t, t), atol=1e-12)


# ----------------------------------------------------------------------- validation
def test_inputs_are_checked():
    with pytest.raises(ValueError, match="width"):
        ntk.two_layer(1, 7, 3)
    with pytest.raises(ValueError, match="trained"):
        ntk.relu_ntk(_inputs(3), trained="last")
    with pytest.raises(ValueError, match="zero rows"):
        ntk.relu_ntk(torch.zeros(2, 3, dtype=torch.float64))
    K, y, _ = _kernel_problem()
    with pytest.raises(ValueError, match="lr"):
        ntk.KernelGD(K, y, lr=10.0)
    with pytest.raises(ValueError, match="symmetric"):
        ntk.KernelGD(K + torch.triu(torch.ones_like(K)), y)
    with pytest.raises(ValueError, match="steps"):
        ntk.KernelGD(K, y).predict([-1.0])
    with pytest.raises(TypeError, match="model"):
        ntk.two_layer_forward("net", _inputs(3))
    with pytest.raises(ValueError, match="record"):
        ntk.train_two_layer(ntk.two_layer(1, 4, 3), _inputs(3), torch.zeros(3, 1), steps=2, lr=0.1, record=[5])
    with pytest.raises(ValueError, match="t"):
        ntk.posterior_mmse(lib.demo_1d(), 0.0)
    with pytest.raises(TypeError, match="net"):
        ntk.score_mlp_function(torch.nn.Linear(2, 2))
