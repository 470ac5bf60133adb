"""lib.gmm_learning: the student scores, the closed-form gradient, GD, EM and the power method,
each against an independent reference (autograd, lib's exact mixture scores, closed forms)."""

import itertools
import math

import numpy as np
import pytest
import torch

import lib
from lib import gmm_learning as gl

TIMES = [1e-3, 0.05, 0.2, 1.0, math.log(20), 8.0]


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def unit(d: int, seed: int) -> torch.Tensor:
    v = torch.randn(d, generator=gen(seed), dtype=torch.float64)
    return v / v.norm()


def centres(K: int, d: int, seed: int, scale: float = 2.0) -> torch.Tensor:
    return scale * torch.randn(K, d, generator=gen(seed), dtype=torch.float64)


# --------------------------------------------------------------------- the student is the true score
@pytest.mark.parametrize("t", [0.0, *TIMES])
def test_symmetric_student_at_truth_is_the_exact_score(t):
    mu = 1.7 * unit(6, 0)
    mix = lib.symmetric_two(mu)
    x = torch.cat([mix.sample(200, t=t, generator=gen(1)), 8 * torch.randn(20, 6, generator=gen(2),
                                                                             dtype=torch.float64)])
    exact = mix.score(x, t)
    assert torch.allclose(gl.student_score(mu, x, t), exact, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("t", [0.0, *TIMES])
def test_softmax_student_at_truth_is_the_exact_score(t):
    means = centres(4, 3, 3)
    mix = lib.equal_weights(means)
    x = torch.cat([mix.sample(200, t=t, generator=gen(4)), 8 * torch.randn(20, 3, generator=gen(5),
                                                                             dtype=torch.float64)])
    assert torch.allclose(gl.student_score(means, x, t), mix.score(x, t), rtol=1e-11, atol=1e-11)


def test_softmax_student_with_opposite_centres_is_the_tanh_student():
    """softmax(u - c, -u - c) = ((1 + tanh u)/2, (1 - tanh u)/2): the two models coincide."""
    mu = centres(1, 5, 6)[0]
    x = torch.randn(100, 5, generator=gen(7), dtype=torch.float64)
    for t in [0.1, 1.5]:
        assert torch.allclose(gl.student_score(torch.stack([mu, -mu]), x, t), gl.student_score(mu, x, t),
                              rtol=1e-13, atol=1e-13)


def test_student_keeps_float32_and_is_differentiable():
    mu = torch.tensor([1.0, -0.5], dtype=torch.float32, requires_grad=True)
    out = gl.student_score(mu, torch.ones(3, 2, dtype=torch.float32), 0.3)
    assert out.dtype == torch.float32
    out.sum().backward()
    assert mu.grad is not None and torch.isfinite(mu.grad).all()


# --------------------------------------------------------------------- the closed-form gradient
@pytest.mark.parametrize("shape", [(7,), (1, 4), (3, 4)])
@pytest.mark.parametrize("t", [0.01, 0.3, 3.0])
@pytest.mark.parametrize("parameter", ["mu_t", "mu"])
def test_closed_form_gradient_matches_autograd(shape, t, parameter):
    d = shape[-1]
    mu = 1.5 * torch.randn(shape, generator=gen(8), dtype=torch.float64)
    x0 = 2 * torch.randn(300, d, generator=gen(9), dtype=torch.float64)
    z = torch.randn(300, d, generator=gen(10), dtype=torch.float64)
    loss, grad = gl.ddpm_gradient(mu, x0, t, z, parameter=parameter)
    a = math.exp(-t)
    var = (a * mu if parameter == "mu_t" else mu).clone().requires_grad_(True)
    ref_loss = gl.ddpm_loss(var / a if parameter == "mu_t" else var, x0, t, z)
    (ref_grad,) = torch.autograd.grad(ref_loss, var)
    assert math.isclose(loss.item(), ref_loss.item(), rel_tol=1e-12)
    assert torch.allclose(grad, ref_grad, rtol=1e-10, atol=1e-12 * ref_grad.abs().max().item())


def test_loss_is_the_dsm_objective_of_the_student():
    mu, t = centres(2, 3, 11), 0.4
    x0 = torch.randn(50, 3, generator=gen(12), dtype=torch.float64)
    z = torch.randn(50, 3, generator=gen(13), dtype=torch.float64)
    a, s = math.exp(-t), math.sqrt(-math.expm1(-2 * t))
    direct = ((gl.student_score(mu, a * x0 + s * z, t) + z / s) ** 2).sum(-1).mean()
    assert math.isclose(gl.ddpm_loss(mu, x0, t, z).item(), direct.item(), rel_tol=1e-13)
    assert math.isclose(gl.ddpm_gradient(mu, x0, t, z)[0].item(), direct.item(), rel_tol=1e-12)


def test_linear_part_of_the_gradient_is_the_power_method():
    """At theta = 0 the Jacobian of grad_theta L is 2(X^T W + W^T X)/n with rows x_i = a x0_i + s z_i,
    w_i = -a x0_i + c z_i (c = a^2/s); its mean over the noise is -4 a^2 (S - I), S = X0^T X0 / n."""
    t, n, d, draws = 1.0, 40, 3, 400
    a, s = math.exp(-t), math.sqrt(-math.expm1(-2 * t))
    c = a * a / s
    x0 = lib.symmetric_two(torch.tensor([1.5, 0.0, -1.0], dtype=torch.float64)).sample(n, generator=gen(14))
    g = gen(15)
    jacobians = []
    for _ in range(draws):
        z = torch.randn(n, d, generator=g, dtype=torch.float64)
        jac = torch.autograd.functional.jacobian(
            lambda th, z=z: gl.ddpm_gradient(th / a, x0, t, z)[1], torch.zeros(d, dtype=torch.float64))
        X, W = a * x0 + s * z, -a * x0 + c * z
        assert torch.allclose(jac, 2 * (X.T @ W + W.T @ X) / n, rtol=1e-10, atol=1e-12)
        jacobians.append(jac)
    jac = torch.stack(jacobians)
    target = -4 * a * a * (x0.T @ x0 / n - torch.eye(d, dtype=torch.float64))
    se = jac.std(0) / math.sqrt(draws)
    assert ((jac.mean(0) - target).abs() / se).max() < 5


def test_population_gradient_vanishes_at_the_truth():
    """mu_t* minimises the population objective: the gradient at mu*, averaged over independent
    batches of (x0, z), is zero within 4 standard errors in every coordinate."""
    mu = 1.5 * unit(4, 16)
    mix = lib.symmetric_two(mu)
    g = gen(17)
    grads = torch.stack([gl.ddpm_gradient(mu, mix.sample(5000, generator=g), 0.3, generator=g)[1]
                         for _ in range(30)])
    z = grads.mean(0) / (grads.std(0) / math.sqrt(30))
    assert z.abs().max() < 4.5


# --------------------------------------------------------------------- gradient descent
def test_one_gd_step_is_a_gradient_step():
    mu0, t, lr = centres(1, 5, 18)[0], 0.7, 0.3
    x0 = torch.randn(100, 5, generator=gen(19), dtype=torch.float64)
    run = gl.gd_ddpm(x0, mu0, t, steps=1, lr=lr, generator=gen(20))
    loss, grad = gl.ddpm_gradient(mu0, x0, t, generator=gen(20))  # the same noise draw
    a = math.exp(-t)
    assert torch.allclose(run.trajectory[1], (a * mu0 - lr * grad) / a, rtol=1e-13, atol=1e-13)
    assert math.isclose(run.losses[0].item(), loss.item(), rel_tol=1e-13)
    assert run.trajectory.shape == (2, 5) and torch.equal(run.final, run.trajectory[-1])


def test_descent_on_mu_is_descent_on_mu_t_with_step_scaled_by_exp_minus_2t():
    x0 = torch.randn(200, 3, generator=gen(21), dtype=torch.float64)
    init, t, lr = centres(2, 3, 22), 1.3, 2.0
    on_mu = gl.gd_ddpm(x0, init, t, steps=20, lr=lr, parameter="mu", generator=gen(23))
    on_mu_t = gl.gd_ddpm(x0, init, t, steps=20, lr=lr * math.exp(-2 * t), generator=gen(23))
    assert torch.allclose(on_mu.trajectory, on_mu_t.trajectory, rtol=1e-12, atol=1e-12)


def test_fixed_noise_is_a_fixed_objective_that_small_steps_decrease():
    """With the noise drawn once, GD descends one smooth function: a small step never raises it."""
    mix = lib.equal_weights(centres(3, 2, 24))
    x0 = mix.sample(500, generator=gen(25))
    run = gl.gd_ddpm(x0, centres(3, 2, 26), 0.2, steps=50, lr=0.01, noise="fixed", generator=gen(27))
    assert (run.losses.diff() <= 1e-12).all()
    fresh = gl.gd_ddpm(x0, centres(3, 2, 26), 0.2, steps=50, lr=0.01, generator=gen(27))
    assert not (fresh.losses.diff() <= 0).all()  # fresh noise: the objective itself changes each step


def test_gd_from_the_truth_stays_within_the_statistical_scale():
    d, n = 10, 20_000
    mu = 2 * unit(d, 28)
    x0 = lib.symmetric_two(mu).sample(n, generator=gen(29))
    run = gl.gd_ddpm(x0, mu, 0.2, steps=100, lr=0.05, generator=gen(30))
    assert gl.centre_errors(run.trajectory, mu).max() < 3 * math.sqrt(d / n)


def test_gd_raises_instead_of_returning_nan():
    x0 = torch.randn(20, 2, generator=gen(31), dtype=torch.float64)
    with pytest.raises(ValueError, match="lower lr"):
        gl.gd_ddpm(x0, torch.ones(2, dtype=torch.float64), 0.5, steps=5, lr=1e200)


# --------------------------------------------------------------------- EM and the power method
def test_em_of_symmetric_model_is_the_tied_two_component_em():
    """On data closed under x -> -x, K = 2 EM started at (mu, -mu) stays tied and equals
    mu' = (1/n) sum_i tanh(mu . x_i) x_i."""
    half = torch.randn(100, 4, generator=gen(32), dtype=torch.float64) + 1.0
    x0 = torch.cat([half, -half])
    mu = centres(1, 4, 33, 0.7)[0]
    sym = gl.em_step(mu, x0)
    assert torch.allclose(sym, (torch.tanh(x0 @ mu)[:, None] * x0).mean(0), rtol=1e-14, atol=1e-14)
    pair = gl.em_step(torch.stack([mu, -mu]), x0)
    assert torch.allclose(pair, torch.stack([sym, -sym]), rtol=1e-12, atol=1e-12)


def test_em_with_far_clusters_returns_the_cluster_means():
    means = torch.tensor([[0.0, 0.0], [100.0, 0.0], [0.0, 100.0]], dtype=torch.float64)
    x0, labels = lib.equal_weights(means).sample(300, generator=gen(34), return_labels=True)
    new = gl.em_step(means + 3.0, x0)
    for k in range(3):
        assert torch.allclose(new[k], x0[labels == k].mean(0), rtol=0, atol=1e-12)


def test_population_em_update_in_closed_form():
    """E[tanh(mu . x) x] for x ~ q_0 equals mu* E[tanh v] + mu E[1 - tanh^2 v], v ~ N(mu . mu*, |mu|^2)
    (Stein's lemma); em_step on many samples agrees within 4 standard errors."""
    d = 3
    mu_star = torch.tensor([1.2, -0.4, 0.3], dtype=torch.float64)
    mu = torch.tensor([0.5, 0.6, -0.2], dtype=torch.float64)
    nodes, weights = np.polynomial.hermite_e.hermegauss(80)
    v = float(mu @ mu_star) + float(mu.norm()) * torch.as_tensor(nodes)
    w = torch.as_tensor(weights) / math.sqrt(2 * math.pi)
    closed = mu_star * (w * torch.tanh(v)).sum() + mu * (w * (1 - torch.tanh(v) ** 2)).sum()
    g, batches = gen(35), 20
    est = torch.stack([gl.em_step(mu, lib.symmetric_two(mu_star).sample(20_000, generator=g))
                       for _ in range(batches)])
    z = (est.mean(0) - closed) / (est.std(0) / math.sqrt(batches))
    assert z.abs().max() < 4.5 and est.shape == (batches, d)


def test_em_keeps_a_centre_that_no_point_claims():
    x0 = torch.zeros(5, 2, dtype=torch.float64)
    mu = torch.tensor([[0.0, 0.0], [1e3, 1e3]], dtype=torch.float64)  # r_i2 = exp(-1e6) = 0
    new = gl.em_step(mu, x0)
    assert torch.equal(new[1], mu[1]) and torch.isfinite(new).all()


def test_em_trajectory_iterates_em_step():
    x0 = lib.equal_weights(centres(2, 3, 36)).sample(200, generator=gen(37))
    traj = gl.em(x0, centres(2, 3, 38), steps=4)
    assert traj.shape == (5, 2, 3)
    for k in range(4):
        assert torch.allclose(traj[k + 1], gl.em_step(traj[k], x0), rtol=1e-14, atol=1e-14)


def test_power_iteration_is_a_normalised_matrix_power():
    x0 = lib.symmetric_two(torch.tensor([2.0, 0.5, 0.0, -1.0], dtype=torch.float64)).sample(500, generator=gen(39))
    init = unit(4, 40) * 3
    rate, steps = 0.3, 12
    traj = gl.power_iteration(x0, init, steps=steps, rate=rate)
    S = x0.T @ x0 / 500
    A = torch.eye(4, dtype=torch.float64) + rate * (S - torch.eye(4, dtype=torch.float64))
    for k in [0, 1, 5, steps]:
        v = torch.linalg.matrix_power(A, k) @ init
        assert torch.allclose(traj[k], v / v.norm(), rtol=1e-12, atol=1e-12)
    long = gl.power_iteration(x0, init, steps=400)
    top = torch.linalg.eigh(S).eigenvectors[:, -1]
    assert abs(float(gl.cosine(long[-1], top))) > 1 - 1e-10


# --------------------------------------------------------------------- measuring
def test_cosine_values():
    u = torch.tensor([[1.0, 0.0], [1.0, 1.0], [-2.0, 0.0]], dtype=torch.float64)
    assert torch.allclose(gl.cosine(u, torch.tensor([3.0, 0.0])), torch.tensor([1.0, 2**-0.5, -1.0],
                                                                                dtype=torch.float64))


def test_centre_errors_symmetric_model_ignores_the_sign():
    mu = torch.tensor([1.0, 2.0], dtype=torch.float64)
    est = torch.tensor([[-1.1, -2.0], [1.0, 2.3]], dtype=torch.float64)
    assert torch.allclose(gl.centre_errors(est, mu), torch.tensor([0.1, 0.3], dtype=torch.float64))


def test_centre_errors_match_brute_force_over_permutations():
    truth = centres(4, 3, 41)
    est = truth[[2, 0, 3, 1]] + 0.8 * torch.randn(6, 4, 3, generator=gen(42), dtype=torch.float64)
    errs = gl.centre_errors(est, truth)
    assert errs.shape == (6, 4)
    for b in range(6):
        best = min(itertools.permutations(range(4)),
                   key=lambda p, b=b: float(((est[b, list(p)] - truth) ** 2).sum()))
        assert torch.allclose(errs[b], (est[b, list(best)] - truth).norm(dim=-1), rtol=1e-12, atol=1e-12)
    assert torch.allclose(gl.centre_errors(truth[[1, 0, 3, 2]], truth), torch.zeros(4, dtype=torch.float64))


# --------------------------------------------------------------------- bad inputs
X = torch.zeros(10, 2, dtype=torch.float64)
MU = torch.ones(2, dtype=torch.float64)


@pytest.mark.parametrize("call,error,match", [
    (lambda: gl.student_score(torch.ones(2, 2, 2), X, 0.1), ValueError, "mu must have shape"),
    (lambda: gl.student_score(MU, torch.zeros(10, 3), 0.1), ValueError, "x must have d = 2"),
    (lambda: gl.student_score(MU, X, -1.0), ValueError, "t must lie in"),
    (lambda: gl.student_score("mu", X, 0.1), TypeError, "mu must be a tensor"),
    (lambda: gl.ddpm_loss(MU, X, 0.0), ValueError, "t must lie in"),
    (lambda: gl.ddpm_loss(MU, X, 0.1, torch.zeros(9, 2)), ValueError, "z must have the shape of x0"),
    (lambda: gl.ddpm_loss(MU, X, 0.1, generator=1), TypeError, "generator must be"),
    (lambda: gl.ddpm_loss(torch.tensor([1.0, float("nan")]), X, 0.1), ValueError, "mu must be finite"),
    (lambda: gl.ddpm_gradient(MU, X, 0.1, parameter="theta"), ValueError, "parameter must be one of"),
    (lambda: gl.ddpm_gradient(MU, X, 100.0), ValueError, "t must lie in"),
    (lambda: gl.ddpm_gradient(MU, torch.zeros(0, 2), 0.1), ValueError, "x0 must hold at least one point"),
    (lambda: gl.ddpm_gradient(MU, X, 0.1, torch.full((10, 2), float("inf"))), ValueError, "z must be finite"),
    (lambda: gl.gd_ddpm(X, MU, 0.1, steps=0), ValueError, "steps must be >= 1"),
    (lambda: gl.gd_ddpm(X, MU, 0.1, lr=0.0), ValueError, "lr must lie in"),
    (lambda: gl.gd_ddpm(X, MU, 0.1, noise="none"), ValueError, "noise must be one of"),
    (lambda: gl.gd_ddpm(X, MU, 0.1, parameter="x"), ValueError, "parameter must be one of"),
    (lambda: gl.gd_ddpm(X, torch.ones(3), 0.1), ValueError, "x0 must have d = 3"),
    (lambda: gl.gd_ddpm(X, MU, 0.1, steps=2.5), TypeError, "steps must be an integer"),
    (lambda: gl.em_step(torch.ones(2, 3), X), ValueError, "x0 must have d = 3"),
    (lambda: gl.em_step(torch.ones(0), X), ValueError, "mu must have shape"),
    (lambda: gl.em(X, MU, steps=-1), ValueError, "steps must be >= 1"),
    (lambda: gl.em(X, None), TypeError, "init must be a tensor"),
    (lambda: gl.power_iteration(X, torch.zeros(2)), ValueError, "nonzero vector"),
    (lambda: gl.power_iteration(X, torch.ones(2, 2)), ValueError, "nonzero vector"),
    (lambda: gl.power_iteration(X, MU, rate=-1.0), ValueError, "rate must lie in"),
    (lambda: gl.power_iteration(X, MU, steps=3), ValueError, "iterate vanished"),
    (lambda: gl.cosine(torch.ones(3), torch.ones(2)), ValueError, "same last dimension"),
    (lambda: gl.cosine(torch.zeros(2), torch.ones(2)), ValueError, "zero vector"),
    (lambda: gl.centre_errors(torch.ones(3, 2), torch.ones(2, 2)), ValueError, "estimate must have shape"),
    (lambda: gl.centre_errors(torch.ones(2, 2, 2, 2), torch.ones(2, 2)), ValueError, "estimate must have shape"),
    (lambda: gl.centre_errors(torch.ones(2), torch.ones(2, 2, 2)), ValueError, "truth must have shape"),
    (lambda: gl.gd_ddpm(X, MU, 0.1, tol=0.0), ValueError, "tol must lie in"),
    (lambda: gl.gd_ddpm(X, MU, 0.1, average_from=-1), ValueError, "average_from must be >= 0"),
    (lambda: gl.em(X, MU, tol=-1.0), ValueError, "tol must lie in"),
    (lambda: gl.population_terms(MU, torch.ones(3)), ValueError, "one shape"),
    (lambda: gl.population_terms(MU, MU, nodes=2), ValueError, "nodes must be >= 8"),
    (lambda: gl.population_terms(torch.ones(2, 2), torch.ones(2, 2)), ValueError, "one shape"),
])
def test_bad_inputs_raise(call, error, match):
    with pytest.raises(error, match=match):
        call()


# --------------------------------------------------------------------- the gradient-EM identity
def _population(theta_scale: float, t: float, d: int = 6, norm: float = 1.5, seed: int = 50):
    mu_star = norm * unit(d, seed)
    mu = mu_star + theta_scale * unit(d, seed + 1)
    a = math.exp(-t)
    return mu_star, mu, a * mu, gl.population_terms(a * mu, a * mu_star)


@pytest.mark.parametrize("t", [0.05, 0.3, 1.0, 4.0])
@pytest.mark.parametrize("offset", [0.3, 1.5])
def test_minus_gradient_is_twice_the_em_step_of_q_t_plus_the_remainder(t, offset):
    """The three terms are computed from their own definitions; Stein's lemma ties them together
    exactly, so they agree to the quadrature's accuracy."""
    _, _, theta, P = _population(offset, t)
    gap = -P.gradient - 2 * P.em_step(theta) - P.remainder
    assert gap.norm() < 1e-7 * P.gradient.norm()


def test_population_gradient_is_the_mean_of_the_sample_gradient():
    """The quadrature gradient against ddpm_gradient (closed form, sampled x0 and z) averaged over
    independent batches: within 4.5 standard errors in every coordinate."""
    mu_star, mu, _, P = _population(0.8, 0.4)
    mix, g, batches = lib.symmetric_two(mu_star), gen(51), 40
    grads = torch.stack([gl.ddpm_gradient(mu, mix.sample(5000, generator=g), 0.4, generator=g)[1]
                         for _ in range(batches)])
    z = (grads.mean(0) - P.gradient) / (grads.std(0) / math.sqrt(batches))
    assert z.abs().max() < 4.5


def test_em_map_is_em_on_noised_samples():
    """M_t is EM for q_t: em_step on samples of q_t (noised data) agrees within 4.5 standard errors."""
    mu_star, _, theta, P = _population(0.8, 0.4)
    noised, g, batches = lib.symmetric_two(mu_star).noised(0.4), gen(52), 20
    est = torch.stack([gl.em_step(theta, noised.sample(20_000, generator=g)) for _ in range(batches)])
    z = (est.mean(0) - P.em_map) / (est.std(0) / math.sqrt(batches))
    assert z.abs().max() < 4.5


def test_at_the_truth_every_term_vanishes():
    mu_star, _, _, _ = _population(0.0, 0.2)
    theta = math.exp(-0.2) * mu_star
    P = gl.population_terms(theta, theta)
    assert P.gradient.norm() < 1e-12 and P.remainder.norm() < 1e-12
    assert (P.em_map - theta).norm() < 1e-8 * theta.norm()


def test_at_large_noise_the_remainder_is_another_em_step():
    """Near theta = 0, R_t = 2 (M_t - theta) (1 + O(|mu*_t|^2 + |theta|^2)): the relative gap
    shrinks by about e^{-2} per unit of t."""
    gaps = []
    for t in [3.0, 4.0, 5.0]:
        _, _, theta, P = _population(0.5, t)
        gaps.append(float((P.remainder - 2 * P.em_step(theta)).norm() / P.em_step(theta).norm()))
    assert gaps[0] < 0.05
    for a, b in zip(gaps, gaps[1:]):
        assert 0.7 * math.exp(-2) < b / a < 1.3 * math.exp(-2)


# --------------------------------------------------------------------- stopping rule and averaging
def test_em_stops_at_the_first_small_relative_change():
    x0 = lib.equal_weights(centres(3, 4, 53)).sample(2000, generator=gen(54))
    full = gl.em(x0, centres(3, 4, 55), steps=200)
    stopped = gl.em(x0, centres(3, 4, 55), steps=200, tol=1e-4)
    changes = [gl.relative_change(full[k + 1], full[k]) for k in range(200)]
    first = next(k for k, c in enumerate(changes) if c <= 1e-4)
    assert stopped.shape[0] == first + 2
    assert torch.allclose(stopped, full[: first + 2], rtol=0, atol=0)


def test_gd_averaging_reports_the_mean_of_the_iterates_and_stops_on_it():
    mu = 2 * unit(5, 56)
    x0 = lib.symmetric_two(mu).sample(3000, generator=gen(57))
    run = gl.gd_ddpm(x0, unit(5, 58), 0.5, steps=400, lr=0.5, tol=2e-3, average_from=6, generator=gen(59))
    assert run.converged and run.steps < 400
    assert torch.allclose(run.final, run.trajectory[6:].mean(0), rtol=1e-12, atol=1e-12)
    before = run.trajectory[6:-1].mean(0)
    assert gl.relative_change(run.final, before) <= 2e-3
    # averaging removes the fresh-noise scatter: the average is closer to mu* than the iterates are
    errors = gl.centre_errors(run.trajectory[6:], mu)
    assert float(gl.centre_errors(run.final, mu)) < float(errors.mean())


def test_gradient_and_loss_draw_the_same_noise_as_dsm_loss():
    mu, t = 1.3 * unit(4, 60), 0.5
    x0 = lib.symmetric_two(mu).sample(100, generator=gen(61))
    loss = gl.ddpm_loss(mu, x0, t, generator=gen(62))
    assert math.isclose(gl.ddpm_gradient(mu, x0, t, generator=gen(62))[0].item(), loss.item(), rel_tol=1e-12)
    z = lib.forward.noise_like(x0, gen(62))
    assert z.dtype == x0.dtype
    assert math.isclose(lib.dsm_loss(lambda x, _t: gl.student_score(mu, x, t), x0, t, z).item(), loss.item(),
                        rel_tol=1e-12)


def test_gd_runs_in_the_dtype_of_the_data():
    mu = 2 * unit(5, 63)
    x0 = lib.symmetric_two(mu).sample(4000, generator=gen(64))
    run = gl.gd_ddpm(x0.float(), unit(5, 65), 0.5, steps=60, lr=0.5, average_from=10, generator=gen(66))
    assert run.trajectory.dtype == torch.float32
    assert float(gl.centre_errors(run.final.double(), mu)) < 3 * math.sqrt(5 / 4000)


def test_e_step_is_the_mixtures_responsibilities():
    means = centres(4, 3, 67)
    x = lib.equal_weights(means).sample(300, generator=gen(68))
    assert torch.allclose(gl.responsibilities(means, x), lib.equal_weights(means).responsibilities(x),
                          rtol=1e-10, atol=1e-13)
    mu = means[0]
    r = lib.symmetric_two(mu).responsibilities(x)
    assert torch.allclose(gl.em_step(mu, x), x.T @ (r[:, 0] - r[:, 1]) / 300, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("shape", [(5,), (3, 5), (6, 4)])
def test_projected_noise_gives_the_fresh_noise_gradient_in_distribution(shape):
    """The gradient with noise drawn only in the centres' span (plus the d x K projected part)
    has the mean and covariance of the gradient with a whole fresh draw: over R = 3000 draws
    each, mean differences within 4.5 standard errors, variances within 6 standard errors of a
    variance ratio (sd about 2/sqrt(R) = 0.037), covariance matrices within sampling error."""
    g = gen(70)
    theta = torch.randn(shape, generator=g, dtype=torch.float64)
    n, d, R = 40, shape[-1], 3000
    x0 = 1.5 * torch.randn(n, d, generator=g, dtype=torch.float64)
    a, s = math.exp(-0.4), math.sqrt(1 - math.exp(-0.8))
    full = torch.stack([gl._loss_and_grad(theta, x0, torch.randn(n, d, generator=g, dtype=torch.float64), a, s)[1]
                        for _ in range(R)]).reshape(R, -1)
    proj = torch.stack([gl._loss_and_grad(theta, x0, gl._ProjectedNoise(theta, n, g), a, s)[1]
                        for _ in range(R)]).reshape(R, -1)
    z = (full.mean(0) - proj.mean(0)) / torch.sqrt((full.var(0) + proj.var(0)) / R)
    assert z.abs().max() < 4.5
    assert (proj.var(0) / full.var(0) - 1).abs().max() < 6 * 2 / math.sqrt(R)
    cf, cp = torch.cov(full.T), torch.cov(proj.T)
    assert (cf - cp).norm() / cf.norm() < 0.2  # a wrong cross-covariance (e.g. Xi W without the root) is O(1)


def test_projected_noise_descends_like_fresh_noise_and_records_no_loss():
    mu_star = torch.tensor([2.0, 0.0, 0.0, 0.0])
    x0 = lib.symmetric_two(mu_star).sample(8000, generator=gen(71))
    start = torch.tensor([0.5, 0.5, 0.5, 0.5], dtype=torch.float64)
    runs = {noise: gl.gd_ddpm(x0, start, 0.5, steps=60, lr=0.5, average_from=10, noise=noise, generator=gen(72))
            for noise in ("fresh", "projected")}
    scale = math.sqrt(4 / 8000)
    for run in runs.values():
        assert float(gl.centre_errors(run.final, mu_star)) < 3 * scale
    assert runs["projected"].losses.numel() == 0 and runs["fresh"].losses.numel() == 61


# ex-gm-5 asks for the gradient in closed form: every automatic-differentiation route must be
# refused, torch.func (reverse and forward mode) as well as torch.autograd.
def _ex5_loss(theta, x0, z, t):
    a = math.exp(-t)
    s = math.sqrt(1 - a * a)
    x = a * x0 + s * z
    return ((torch.tanh(x @ theta)[:, None] * theta - x + z / s) ** 2).sum(1).mean()


def _ex5_forward_ad(theta, x0, z, t):
    import torch.autograd.forward_ad as fwad

    with fwad.dual_level():
        return torch.stack([fwad.unpack_dual(_ex5_loss(fwad.make_dual(theta, e), x0, z, t)).tangent
                            for e in torch.eye(theta.shape[0], dtype=theta.dtype)])


def _ex5_backward(theta, x0, z, t):
    th = theta.clone().requires_grad_(True)
    torch.autograd.backward(_ex5_loss(th, x0, z, t))
    return th.grad


_EX5_AUTODIFF = {
    "torch.func.grad": lambda theta, x0, z, t: torch.func.grad(_ex5_loss)(theta, x0, z, t),
    "torch.func.jacrev": lambda theta, x0, z, t: torch.func.jacrev(_ex5_loss)(theta, x0, z, t),
    "torch.func.jacfwd": lambda theta, x0, z, t: torch.func.jacfwd(_ex5_loss)(theta, x0, z, t),
    "torch.func.vjp": lambda theta, x0, z, t: torch.func.vjp(lambda th: _ex5_loss(th, x0, z, t), theta)[1](
        torch.ones((), dtype=theta.dtype))[0],
    "torch.func.jvp": lambda theta, x0, z, t: torch.stack(
        [torch.func.jvp(lambda th: _ex5_loss(th, x0, z, t), (theta,), (e,))[1]
         for e in torch.eye(theta.shape[0], dtype=theta.dtype)]),
    "torch.autograd.functional.jacobian": lambda theta, x0, z, t: torch.autograd.functional.jacobian(
        lambda th: _ex5_loss(th, x0, z, t), theta),
    "torch.autograd.forward_ad.make_dual": _ex5_forward_ad,
    "torch.autograd.grad": lambda theta, x0, z, t: torch.autograd.grad(
        _ex5_loss(th := theta.clone().requires_grad_(True), x0, z, t), th)[0],
    "torch.autograd.backward": _ex5_backward,
}


@pytest.mark.parametrize("route", sorted(_EX5_AUTODIFF))
def test_ex5_refuses_every_autodiff_route(route):
    """Each route computes the right gradient when allowed (so refusal, not error, is what fails it)."""
    from lib.assignments import check

    gen = torch.Generator().manual_seed(0)
    kw = lib.assignments.registered_checks()["ex-gm-5"].inputs(gen)
    expected = lib.assignments.registered_checks()["ex-gm-5"].reference(**kw)
    assert torch.allclose(_EX5_AUTODIFF[route](**kw), expected, rtol=1e-8, atol=1e-9)
    result = check("ex-gm-5", answers={"ex-gm-5": _EX5_AUTODIFF[route]})
    assert result.status == "WRONG" and "refused" in result.message and route in result.message, result
