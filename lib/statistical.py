"""Denoising score matching as regression: label noise, the statistical error, memorisation.

At a fixed time ``t`` the DSM objective is least squares with inputs ``x = a_t x_0 + s_t z``
and labels ``y = -z / s_t``. By Tweedie, ``E[y | x] = grad log q_t(x)``, so the score is the
regression function and the labels carry noise of conditional covariance
``Cov(z | x) / s_t^2 = (I + s_t^2 grad^2 log q_t(x)) / s_t^2``, whose mean trace is the DSM
minimum ``C_t = d / s_t^2 - E ||grad log q_t||^2`` (Vincent 2011; the second-order Tweedie
formula, Efron 2011). Small ``t`` is hard for a learner because ``C_t ~ d / s_t^2``: the
labels are noisy, whatever the size of the score itself.

For a model linear in its parameters, ``f_theta(x) = theta . phi(x)``, the least-squares
fit on ``m`` pairs has, to first order in ``1/m``, the sandwich error (White 1980)

    E_stat = E ||f_hat - f_star||^2_{q_t} ~ tr(G^{-1} Omega) / m,
    G = E[phi phi^T],   Omega = E[phi phi^T (v(x) + r(x)^2)],

with ``v(x)`` the label variance and ``r = f_star - grad log q_t`` the misfit of the best
model ``f_star``; with constant noise ``v = C_t`` and no misfit it is ``k C_t / m`` for
``k`` parameters: the parametric shape ``P C_t / m``. :func:`linear_theory_1d` computes
these by quadrature for a linear-spline model on the line (a ReLU layer with frozen first
layer), :func:`least_squares_fits` fits it on many training sets at once, and
:func:`sandwich_estimate` estimates the coefficient from pairs alone (features and labels).

Without a model class the empirical objective (averaged over the noise) is minimised by the
score of the *noised empirical distribution* ``(1/m) sum_i N(a_t x_i, s_t^2 I)``
(:class:`EmpiricalScore`): the sampler then reproduces the training points.

The best network of a class, the reference of the approximation and statistical errors, is
fitted by :func:`fit_best_in_class`: full-batch regression on the exact score of a 1-D mixture
at quadrature nodes, Adam then L-BFGS until the objective stops falling.

Used in: chap-sample-complexity (the statistical error, the best network of a class),
chap-score-matching (DSM identity).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor
from tqdm.auto import tqdm

from ._checks import ScoreFn, as_points, as_tensor, as_times, check_callable, check_generator, check_int, check_real
from ._lbfgs import FlatLBFGS
from .batched import BatchedScoreMLP
from .hardness import quadrature_1d
from .metrics import Estimate
from .mixtures import GaussianMixture
from .optim import adam

_CHUNK = 1 << 22  # elements of the (rows, m) work array of EmpiricalScore


# ----------------------------------------------------------------------- label noise
def label_variance(mixture: GaussianMixture, x: Tensor, t: float) -> Tensor:
    """``tr Cov(-z / s_t | x_t = x) = (d + s_t^2 tr grad^2 log q_t(x)) / s_t^2`` at points ``x``.

    Second-order Tweedie: ``Cov(z | x_t = x) = I + s_t^2 grad^2 log q_t(x)``. The Hessian's
    trace comes from automatic differentiation of the exact score (one pass per coordinate).
    Its mean under ``q_t`` is the DSM minimum ``C_t``.
    """
    if not isinstance(mixture, GaussianMixture):
        raise TypeError(f"mixture must be a GaussianMixture, got {type(mixture).__name__}")
    t = check_real(t, "t", low=0.0, low_open=True)
    x = as_points(x, "x", mixture.d, dtype=mixture.dtype).detach().requires_grad_(True)
    score = mixture.score(x, t)
    trace = torch.zeros(x.shape[0], dtype=x.dtype)
    for j in range(mixture.d):  # d is small; each pass differentiates one coordinate of the score
        (grad,) = torch.autograd.grad(score[:, j].sum(), x, retain_graph=j + 1 < mixture.d)
        trace = trace + grad[:, j]
    s2 = -math.expm1(-2.0 * t)
    return ((mixture.d + s2 * trace) / s2).detach()


def dsm_noise_variance_1d(mixture: GaussianMixture, t: float, *, points: int = 8001) -> float:
    """``C_t = 1 / s_t^2 - E_{q_t} |grad log q_t|^2`` for a 1-D mixture, by quadrature."""
    t = check_real(t, "t", low=0.0, low_open=True)
    x, w = quadrature_1d(mixture, t, points=points)
    e2 = (w * mixture.score(x[:, None], t)[:, 0] ** 2).sum().item()
    return 1.0 / -math.expm1(-2.0 * t) - e2


def score_second_moment_1d(mixture: GaussianMixture, t: float, *, points: int = 8001) -> float:
    """``E_{q_t} |grad log q_t|^2`` for a 1-D mixture, by quadrature."""
    return 1.0 / -math.expm1(-2.0 * check_real(t, "t", low=0.0, low_open=True)) - dsm_noise_variance_1d(
        mixture, t, points=points)


# ----------------------------------------------------------------------- paired DSM check
@dataclass(frozen=True)
class PairedExcess:
    """``L_t(f) - L_t(score)``, the L2 error, and their difference, all on the same draws."""

    excess: Estimate
    l2: Estimate
    gap: Estimate  # excess - l2 = mean of 2 <f - score, score + z / s_t>: zero in expectation


def dsm_excess_paired(score_fn: ScoreFn, mixture: GaussianMixture, t: float, n: int = 100_000, *,
                      generator: torch.Generator | None = None) -> PairedExcess:
    """The excess objective ``L_t(f) - C_t`` estimated with common random numbers.

    ``L_t(f)`` and ``L_t(grad log q_t)`` are averaged over the *same* ``(x_0, z)``, so the
    large label noise ``||z / s_t||^2`` cancels draw by draw; the L2 error
    ``||f - grad log q_t||^2`` uses the same ``x_t``. By the DSM theorem the two agree in
    expectation; ``gap`` is their paired difference with its own standard error.
    """
    check_callable(score_fn, "score_fn")
    if not isinstance(mixture, GaussianMixture):
        raise TypeError(f"mixture must be a GaussianMixture, got {type(mixture).__name__}")
    t = check_real(t, "t", low=0.0, low_open=True)
    n = check_int(n, "n", low=2)
    check_generator(generator)
    x0 = mixture.sample(n, generator=generator)
    z = torch.randn(x0.shape, generator=generator, dtype=x0.dtype)
    a, s = math.exp(-t), math.sqrt(-math.expm1(-2.0 * t))
    xt = a * x0 + s * z
    with torch.no_grad():
        f = score_fn(xt, t).to(x0.dtype)
    u = mixture.score(xt, t)
    excess = ((f + z / s) ** 2).sum(-1) - ((u + z / s) ** 2).sum(-1)
    l2 = ((f - u) ** 2).sum(-1)
    return PairedExcess(_estimate(excess), _estimate(l2), _estimate(excess - l2))


def _estimate(v: Tensor) -> Estimate:
    return Estimate(v.mean().item(), v.std().item() / math.sqrt(v.numel()))


# ----------------------------------------------------------------------- a linear model
def spline_features(x: Tensor, knots: Tensor) -> Tensor:
    """``phi(x) = (1, x, relu(x - kappa_1), ..., relu(x - kappa_K))`` for 1-D points ``x``
    ``(n, 1)`` or ``(..., n, 1)``: a one-hidden-layer ReLU network with its first layer
    frozen, linear in the remaining ``K + 2`` parameters."""
    kn = as_tensor(knots, "knots", dtype=torch.float64).reshape(-1)
    x = as_tensor(x, "x", dtype=torch.float64)
    if x.ndim < 2 or x.shape[-1] != 1:
        raise ValueError(f"x must have shape (..., n, 1), got {tuple(x.shape)}")
    return torch.cat([torch.ones_like(x), x, torch.relu(x - kn)], dim=-1)


def quantile_knots_1d(mixture: GaussianMixture, t: float, n_knots: int) -> Tensor:
    """Knots at the quantiles ``j / (n_knots + 1)``, ``j = 1..n_knots``, of the 1-D ``q_t``: every
    feature then has mass on both sides of its knot, which keeps least squares well posed."""
    if not isinstance(mixture, GaussianMixture) or mixture.d != 1:
        raise ValueError("mixture must be a one-dimensional GaussianMixture")
    t = check_real(t, "t", low=0.0)
    n_knots = check_int(n_knots, "n_knots")
    x, _ = quadrature_1d(mixture, t, points=20_001)
    F = mixture.cdf(x, t)
    levels = torch.arange(1, n_knots + 1, dtype=torch.float64) / (n_knots + 1)
    idx = torch.searchsorted(F, levels).clamp(1, x.numel() - 1)
    lo, hi = F[idx - 1], F[idx]  # linear interpolation of the inverse distribution function
    return x[idx - 1] + (levels - lo) / (hi - lo) * (x[idx] - x[idx - 1])


@dataclass(frozen=True)
class LinearTheory:
    """The best linear-spline model at one time and the sandwich terms of its fit."""

    t: float
    knots: Tensor
    G: Tensor           # E[phi phi^T], (k, k)
    theta_star: Tensor  # the population least-squares coefficients, (k,)
    approx: float       # E_app = E (f_star - score)^2
    noise_variance: float  # C_t = E v(x)
    sandwich: float     # tr(G^{-1} Omega): E_stat ~ sandwich / m
    noise_part: float   # tr(G^{-1} E[phi phi^T v]): the label-noise share of it

    @property
    def k(self) -> int:
        """The number of parameters."""
        return self.theta_star.numel()

    def predicted_stat_error(self, m: object) -> Tensor:
        """``tr(G^{-1} Omega) / m``."""
        return self.sandwich / as_tensor(m, "m", dtype=torch.float64)


def linear_theory_1d(mixture: GaussianMixture, t: float, knots: object, *, points: int = 8001) -> LinearTheory:
    """Quadrature for the linear-spline model under ``q_t`` (1-D): ``G``, ``theta_star``,
    the approximation error and the sandwich coefficient ``tr(G^{-1} Omega)`` (module docstring)."""
    if not isinstance(mixture, GaussianMixture) or mixture.d != 1:
        raise ValueError("mixture must be a one-dimensional GaussianMixture")
    t = check_real(t, "t", low=0.0, low_open=True)
    kn = as_tensor(knots, "knots", dtype=torch.float64).reshape(-1)
    x, w = quadrature_1d(mixture, t, points=points)
    x = x[:, None]
    phi = spline_features(x, kn)
    score = mixture.score(x, t)[:, 0]
    G = phi.T @ (w[:, None] * phi)
    theta = torch.linalg.solve(G, phi.T @ (w * score))
    r = phi @ theta - score
    v = label_variance(mixture, x, t)
    G_inv = torch.linalg.inv(G)
    omega_noise = phi.T @ ((w * v)[:, None] * phi)
    omega = omega_noise + phi.T @ ((w * r * r)[:, None] * phi)
    return LinearTheory(t, kn, G, theta, (w * r * r).sum().item(), (w * v).sum().item(),
                        torch.trace(G_inv @ omega).item(), torch.trace(G_inv @ omega_noise).item())


def sandwich_estimate(phi: Tensor, y: Tensor) -> float:
    """The plug-in sandwich coefficient ``tr(G_hat^{-1} Omega_hat)`` from ``n`` pairs (White 1980).

    ``phi`` ``(n, k)`` are the features, ``y`` ``(n,)`` the labels; ``G_hat = phi^T phi / n``,
    ``theta_hat`` the least-squares fit on the pairs, ``e = y - phi theta_hat`` its residuals
    and ``Omega_hat = sum_i phi_i phi_i^T e_i^2 / n``. Divided by a training-set size ``m`` it
    estimates the statistical error ``tr(G^{-1} Omega) / m`` of least squares on ``m`` fresh
    pairs (module docstring), with noise and misfit both in the residuals.
    """
    phi = as_tensor(phi, "phi", dtype=torch.float64)
    y = as_tensor(y, "y", dtype=torch.float64)
    if phi.ndim != 2 or y.shape != phi.shape[:1] or phi.shape[0] <= phi.shape[1]:
        raise ValueError(f"phi must have shape (n, k) with n > k and y shape (n,), got {tuple(phi.shape)} "
                         f"and {tuple(y.shape)}")
    if not (torch.isfinite(phi).all() and torch.isfinite(y).all()):
        raise ValueError("phi and y must be finite")
    n = phi.shape[0]
    G = phi.T @ phi / n
    e = y - phi @ torch.linalg.solve(G, phi.T @ y / n)
    return torch.trace(torch.linalg.solve(G, (phi * (e * e)[:, None]).T @ phi / n)).item()


def least_squares_fits(mixture: GaussianMixture, theory: LinearTheory, m: int, replicates: int, *,
                       generator: torch.Generator | None = None) -> Tensor:
    """Fit the linear-spline model by least squares on ``replicates`` independent training
    sets of ``m`` DSM pairs ``(a_t x_i + s_t z_i, -z_i / s_t)`` at ``theory.t``; return the
    statistical errors ``(theta_hat - theta_star)^T G (theta_hat - theta_star)``, shape ``(replicates,)``.

    Least squares is solved exactly (no optimisation error): this is the empirical minimiser.
    """
    if not isinstance(mixture, GaussianMixture) or mixture.d != 1:
        raise ValueError("mixture must be a one-dimensional GaussianMixture")
    if not isinstance(theory, LinearTheory):
        raise TypeError(f"theory must be a LinearTheory (from linear_theory_1d), got {type(theory).__name__}")
    m = check_int(m, "m", low=theory.k + 1)
    replicates = check_int(replicates, "replicates")
    check_generator(generator)
    t = theory.t
    a, s = math.exp(-t), math.sqrt(-math.expm1(-2.0 * t))
    x0 = mixture.sample(replicates * m, generator=generator).reshape(replicates, m, 1)
    z = torch.randn(x0.shape, generator=generator, dtype=x0.dtype)
    phi = spline_features(a * x0 + s * z, theory.knots)
    theta_hat = torch.linalg.lstsq(phi, -z / s).solution[..., 0]  # (replicates, k)
    diff = theta_hat - theory.theta_star
    return torch.einsum("ri,ij,rj->r", diff, theory.G, diff)


# ----------------------------------------------------------------------- memorisation
class EmpiricalScore:
    """``grad log q_hat_t`` for ``q_hat_t = (1/m) sum_i N(a_t x_i, s_t^2 I)``: the function that
    minimises the empirical DSM objective over *all* functions (noise averaged out).

    ``grad log q_hat_t(x) = (sum_i r_i(x) a_t x_i - x) / s_t^2`` with
    ``r_i = softmax_i(-||x - a_t x_i||^2 / (2 s_t^2))``: Tweedie's formula with the empirical
    law in place of ``q_0``, whose denoiser returns a weighted average of training points.
    """

    def __init__(self, samples: Tensor) -> None:
        self.samples = as_points(samples, "samples", dtype=torch.float64)
        self.m, self.d = self.samples.shape

    def __call__(self, x: Tensor, t: Tensor | float) -> Tensor:
        x = as_points(x, "x", self.d, dtype=torch.float64)
        tt = as_times(t, n=x.shape[0], allow_zero=False, dtype=torch.float64)
        a, s2 = torch.exp(-tt), -torch.expm1(-2.0 * tt)
        if tt.ndim == 0:
            a, s2 = a.expand(x.shape[0]), s2.expand(x.shape[0])
        rows = max(1, _CHUNK // self.m)
        out = [self._chunk(x[i:i + rows], a[i:i + rows, None], s2[i:i + rows, None])
               for i in range(0, x.shape[0], rows)]
        return torch.cat(out)

    def _chunk(self, x: Tensor, a: Tensor, s2: Tensor) -> Tensor:
        # ||x - a_t x_i||^2 for all rows and training points, (rows, m)
        sq = (x * x).sum(-1, keepdim=True) - 2 * a * (x @ self.samples.T) + a * a * (self.samples**2).sum(-1)
        r = torch.softmax(-sq.clamp_min(0.0) / (2 * s2), dim=-1)
        return (a * (r @ self.samples) - x) / s2


def nearest_distance(x: Tensor, reference: Tensor) -> Tensor:
    """For every row of ``x``, the Euclidean distance to the closest row of ``reference``."""
    x = as_points(x, "x", dtype=torch.float64)
    ref = as_points(reference, "reference", x.shape[1], dtype=torch.float64)
    rows = max(1, _CHUNK // ref.shape[0])
    return torch.cat([torch.cdist(x[i:i + rows], ref).min(-1).values for i in range(0, x.shape[0], rows)])


# ----------------------------------------------------------------------- best network of a class
@dataclass(frozen=True)
class ClassFit:
    """What :func:`fit_best_in_class` reached, per network: the objective (the squared L2 error
    ``||f_b - grad log q_t||^2`` by quadrature), its relative fall over the last ``tail``
    L-BFGS iterations, and the gradient norm at the end."""

    loss: Tensor
    recent_fall: Tensor
    grad_norm: Tensor


def fit_best_in_class(net: BatchedScoreMLP, mixture: GaussianMixture, t: object, *, points: int = 301,
                      adam_steps: int = 300, lbfgs_iters: int = 300, lr: float = 1e-2, tail: int = 50,
                      progress: bool = True) -> ClassFit:
    """Fit each network of ``net`` to the exact score of a 1-D mixture at its time, in place.

    The objective of network ``b`` is ``sum_i w_i ||f_b(x_i, t_b) - grad log q_t(x_i)||^2``
    on the quadrature nodes of :func:`lib.hardness.quadrature_1d` (uniform over 7 standard
    deviations of every component, weights the trapezoid rule times ``q_t``): the population
    L2 error itself, with no sampling noise and no pool to overfit. Full-batch Adam (``lr``,
    cosine decay, ``adam_steps``) leaves the initialisation's region, then L-BFGS with a
    strong-Wolfe line search (Nocedal and Wright 2006, alg. 7.5; ``torch.optim.LBFGS``'s
    algorithm over one flat parameter vector, :class:`lib._lbfgs.FlatLBFGS`, 1.2-1.5 times
    as fast for these small networks, ``benchmarks/best_in_class_lbfgs.py``) converges in it; the
    networks' objectives are summed, so each gets its own gradient, computed by the written-out
    backward pass of ``BatchedScoreMLP._flat_squared_error`` (equal to autograd's, tested; 10-20 %
    less time per fit than autograd, whose graph costs as much as these small networks'
    arithmetic). Runs in float64 and
    copies the result back to ``net``'s dtype. ``t`` is one time or one per network.
    """
    if not isinstance(net, BatchedScoreMLP):
        raise TypeError(f"net must be a BatchedScoreMLP, got {type(net).__name__}")
    if not isinstance(mixture, GaussianMixture) or mixture.d != 1 or net.d != 1:
        raise ValueError("mixture must be a 1-D GaussianMixture and net must have d = 1")
    tt = as_tensor(t, "t", dtype=torch.float64).reshape(-1).expand(net.B).clone()
    if (tt <= 0).any():
        raise ValueError(f"t must be > 0, got min {tt.min().item():.3g}")
    points, tail = check_int(points, "points", low=3), check_int(tail, "tail")
    adam_steps = check_int(adam_steps, "adam_steps", low=0)
    lbfgs_iters = check_int(lbfgs_iters, "lbfgs_iters", low=tail)
    lr = check_real(lr, "lr", low=0.0, low_open=True)
    x, w = quadrature_1d(mixture, tt, points=points, width=7.0)          # (B, points)
    target = mixture.score(x.reshape(-1, 1), tt[:, None].expand_as(x).reshape(-1)).reshape(*x.shape, 1)
    x, t2 = x[..., None], tt[:, None].expand(x.shape).contiguous()
    work = BatchedScoreMLP(net.B, 1, net.width, net.hidden_layers, net.parameterization,
                           time_features=net.time_features, dtype=torch.float64).load_states(net.states())

    value_and_grad = work._flat_squared_error(x, t2, w, target)  # theta -> (the B objectives, flat gradient)

    def total_and_grad(theta: Tensor) -> tuple[float, Tensor]:  # what L-BFGS minimises: their sum
        losses, grad = value_and_grad(theta)
        return losses.sum().item(), grad

    theta = torch.nn.utils.parameters_to_vector(work.parameters()).detach()
    theta.grad = torch.zeros_like(theta)
    opt = adam([theta], lr)
    for k in tqdm(range(adam_steps), desc="best-in-class fit", disable=not progress, leave=False):
        opt.param_groups[0]["lr"] = 0.5 * lr * (1.0 + math.cos(math.pi * k / adam_steps))
        theta.grad.copy_(value_and_grad(theta)[1])
        opt.step()
    # L-BFGS with torch's settings (strong Wolfe, history 50); the last `tail` iterations measure the fall
    lbfgs = FlatLBFGS(total_and_grad, theta.clone(), history=50, tolerance_grad=1e-12, tolerance_change=1e-15)
    max_eval = max(lbfgs_iters - tail, tail) * 5 // 4  # torch.optim.LBFGS's default, kept for the tail
    lbfgs.run(lbfgs_iters - tail, max_eval)
    before = value_and_grad(lbfgs.x)[0]
    lbfgs.run(tail, max_eval)
    after, grad = value_and_grad(lbfgs.x)
    grad_norm = torch.sqrt(sum((g.reshape(net.B, -1) ** 2).sum(1) for g in work._unflatten(grad)))
    torch.nn.utils.vector_to_parameters(lbfgs.x, work.parameters())
    net.load_states(work.states())
    if not torch.isfinite(after).all():
        raise ValueError(f"the fit became non-finite; lower lr (now {lr:g})")
    return ClassFit(after, (before - after) / after, grad_norm.detach())

