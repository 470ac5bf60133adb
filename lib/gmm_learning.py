"""Gradient descent on the DDPM objective for Gaussian mixtures, next to EM and the power method.

Shah, Chen and Klivans (2023) study a student score with the form of the true one. For the
symmetric mixture ``q = 0.5 N(mu*, I) + 0.5 N(-mu*, I)`` it is

    s_mu(x, t) = tanh(mu_t . x) mu_t - x,          mu_t = exp(-t) mu,

and for ``q = (1/K) sum_k N(mu_k*, I)``

    s_mu(x, t) = sum_k softmax_k(mu_{k,t} . x - |mu_{k,t}|^2 / 2) mu_{k,t} - x.

Both equal the exact score ``grad log q_t`` at ``mu = mu*`` (every noised component has
covariance ``a_t^2 I + s_t^2 I = I``). Gradient descent runs on the empirical DDPM
objective at one time ``t`` (the objective of :mod:`lib.dsm`),

    L_t(mu) = (1/n) sum_i || s_mu(a_t x_i + s_t z_i, t) + z_i / s_t ||^2,

with the noise ``z_i`` redrawn every step (``noise="fresh"``) or drawn once (``"fixed"``).

**Which parameter moves.** By default GD updates ``theta = mu_t`` (``parameter="mu_t"``),
the vector the student's score actually contains, as in the paper's analysis: one step is
``theta <- theta - lr * grad_theta L_t`` and the estimate of ``mu*`` is ``exp(t) theta``.
``parameter="mu"`` updates ``mu`` itself instead; since ``grad_mu L_t = exp(-t) grad_theta L_t``,
that equals a step ``lr * exp(-2t)`` on ``theta``. Averaged over the noise, the part of the
gradient linear in ``theta`` is exactly ``-4 exp(-2t) (S - I) theta`` with
``S = (1/n) sum_i x_i x_i^T`` (population: ``S - I = mu* mu*^T``), so at large ``t``, where
``theta`` is small, GD is the power method on ``I + 4 lr exp(-2t) (S - I)``
(:func:`power_iteration`) and a small step barely moves; at small ``t`` the negative gradient
points along the EM step (:func:`em_step`).

Everything is vectorised over samples; only the GD and EM iterations are Python loops.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor
from tqdm.auto import tqdm

from ._checks import as_points, as_tensor, check_bool, check_choice, check_generator, check_int, check_real
from .dsm import dsm_loss

PARAMETERS = ("mu_t", "mu")
NOISES = ("fresh", "fixed")
T_MAX = 50.0  # beyond it a_t = exp(-t) < 2e-22: the data's signal is gone from x_t


# --------------------------------------------------------------------- checks
def _as_centres(mu: object, name: str = "mu", *, d: int | None = None, keep_dtype: bool = False) -> Tensor:
    """A ``(d,)`` vector (symmetric two-component model) or ``(K, d)`` centres (K-component model)."""
    out = as_tensor(mu, name, dtype=None if keep_dtype else torch.float64)
    if out.ndim not in (1, 2) or out.numel() == 0:
        raise ValueError(f"{name} must have shape (d,) (symmetric mixture) or (K, d) (K centres), "
                         f"got {tuple(out.shape)}")
    if d is not None and out.shape[-1] != d:
        raise ValueError(f"{name} must have d = {d} coordinates (the data's dimension), got {out.shape[-1]}")
    return out


def _time(t: object) -> float:
    """A training time in ``(0, T_MAX]``: ``L_t`` divides by ``s_t``, which vanishes at 0."""
    return check_real(t, "t", low=0.0, low_open=True, high=T_MAX)


def _coefficients(t: float) -> tuple[float, float]:
    """``a_t = exp(-t)`` and ``s_t = sqrt(1 - exp(-2t))`` (``expm1`` keeps small ``t`` exact)."""
    return math.exp(-t), math.sqrt(-math.expm1(-2 * t))


def _noise(z: object, x0: Tensor) -> Tensor:
    z = as_points(z, "z", x0.shape[1], dtype=x0.dtype, device=x0.device)
    if z.shape != x0.shape:
        raise ValueError(f"z must have the shape of x0 {tuple(x0.shape)}, got {tuple(z.shape)}")
    return z


def _normal_(out: Tensor, generator: torch.Generator | None) -> Tensor:
    """Fill ``out`` with ``N(0, 1)`` draws. Float64 draws are made in float32 and widened:
    about four times faster on a CPU, where drawing the noise would otherwise cost more than
    the gradient; the objective averages over the draws, so rounding each to 24 bits changes
    nothing it measures."""
    if out.dtype == torch.float64:
        out.copy_(torch.randn(out.shape, generator=generator, dtype=torch.float32, device=out.device))
    else:
        torch.randn(out.shape, generator=generator, dtype=out.dtype, device=out.device, out=out)
    return out


def _softmax(logits: Tensor) -> Tensor:
    """Softmax over the last axis. Written out because ``torch.softmax`` over a short last
    axis (K centres) is several times slower on a CPU; subtracting the row maximum keeps it
    exact for any logits."""
    e = (logits - logits.amax(-1, keepdim=True)).exp()
    return e / e.sum(-1, keepdim=True)


# --------------------------------------------------------------------- the student score
def student_score(mu: Tensor, x: Tensor, t: float) -> Tensor:
    """The student score of Shah et al. (2023) at parameter ``mu`` (not ``mu_t``).

    ``mu`` of shape ``(d,)``: ``tanh(mu_t . x) mu_t - x`` (symmetric two-component model);
    shape ``(K, d)``: ``sum_k softmax_k(mu_{k,t} . x - |mu_{k,t}|^2/2) mu_{k,t} - x``;
    ``mu_t = exp(-t) mu``, ``t >= 0`` one time. Keeps ``mu``'s floating dtype and is
    differentiable in ``mu``.
    """
    mu = _as_centres(mu, "mu", keep_dtype=True)
    x = as_points(x, "x", mu.shape[-1], dtype=mu.dtype, device=mu.device)
    t = check_real(t, "t", low=0.0, high=T_MAX)
    return _score_theta(math.exp(-t) * mu, x)


def _score_theta(theta: Tensor, x: Tensor) -> Tensor:
    if theta.ndim == 1:
        return torch.tanh(x @ theta)[:, None] * theta - x
    logits = x @ theta.T - 0.5 * (theta * theta).sum(-1)
    return _softmax(logits) @ theta - x


def ddpm_loss(mu: Tensor, x0: Tensor, t: float, z: Tensor | None = None, *,
              generator: torch.Generator | None = None) -> Tensor:
    """The empirical DDPM objective ``(1/n) sum_i ||s_mu(a_t x_i + s_t z_i, t) + z_i/s_t||^2``.

    Computed by :func:`lib.dsm.dsm_loss` with :func:`student_score`; differentiable in ``mu``
    (``mu`` of shape ``(d,)`` or ``(K, d)``). ``z`` defaults to fresh ``N(0, I)`` draws.
    """
    mu = _as_centres(mu, "mu", keep_dtype=True)
    x0 = as_points(x0, "x0", mu.shape[-1], dtype=mu.dtype, device=mu.device)
    t = _time(t)
    check_generator(generator)
    if z is not None:
        z = _noise(z, x0)
    return dsm_loss(lambda x, _t: _score_theta(math.exp(-t) * mu, x), x0, t, z, generator=generator)


def ddpm_gradient(mu: Tensor, x0: Tensor, t: float, z: Tensor | None = None, *, parameter: str = "mu_t",
                  generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """``(L_t, grad L_t)`` in closed form, with respect to ``mu_t`` (default) or ``mu``.

    With ``x = a_t x_0 + s_t z``, ``theta = mu_t`` and the residual ``r = s(x) + z/s_t``:
    symmetric model, ``grad_theta L = (2/n) sum_i [tanh(u_i) r_i + (1 - tanh^2 u_i)(theta . r_i) x_i]``
    with ``u_i = theta . x_i``; K-component model, with weights ``w_ik = softmax_k(...)`` and
    ``m_i = sum_k w_ik theta_k``,
    ``grad_{theta_k} L = (2/n) sum_i w_ik [r_i + ((theta_k - m_i) . r_i)(x_i - theta_k)]``.
    ``grad_mu L = exp(-t) grad_theta L``. ``z`` defaults to fresh ``N(0, I)`` draws.
    Vectorised over samples; float64.
    """
    mu = _as_centres(mu, "mu")
    x0 = as_points(x0, "x0", mu.shape[-1], dtype=mu.dtype, device=mu.device)
    t = _time(t)
    check_choice(parameter, "parameter", PARAMETERS)
    check_generator(generator)
    z = _normal_(torch.empty_like(x0), generator) if z is None else _noise(z, x0)
    a, s = _coefficients(t)
    loss, grad = _loss_and_grad(a * mu, x0, z, a, s)
    return loss, grad if parameter == "mu_t" else a * grad


def _loss_and_grad(theta: Tensor, x0: Tensor, z: Tensor, a: float, s: float,
                   sum_sq_x0: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Loss and gradient in ``theta = mu_t`` at ``x = a x0 + s z``, residual ``r = s(x) + z/s``.

    ``r = f(x) - a x0 + c z`` with ``c = 1/s - s = a^2/s``, so every term reduces to products of
    ``x0`` and ``z`` with ``theta`` (shape ``(n,)`` or ``(n, K)``) and two ``(d, n)`` products for
    the gradient: no ``(n, d)`` temporaries besides ``z`` itself.
    """
    n = x0.shape[0]
    c = a * a / s
    flat_x0, flat_z = x0.reshape(-1), z.reshape(-1)
    if sum_sq_x0 is None:
        sum_sq_x0 = torch.vdot(flat_x0, flat_x0)
    # sum_i |-a x0_i + c z_i|^2, the part of the loss that does not depend on theta
    base = a * a * sum_sq_x0 + c * c * torch.vdot(flat_z, flat_z) - 2 * a * c * torch.vdot(flat_x0, flat_z)
    if theta.ndim == 1:
        p, q = x0 @ theta, z @ theta
        tu = torch.tanh(a * p + s * q)
        sq = (theta * theta).sum()
        rt = tu * sq - a * p + c * q  # r . theta
        v = (1.0 - tu * tu) * rt
        grad = x0.T @ (a * (v - tu)) + z.T @ (c * tu + s * v) + (tu * tu).sum() * theta
        loss = base + (tu * (tu * sq - 2 * a * p + 2 * c * q)).sum()
        return loss / n, (2.0 / n) * grad
    P, Q = x0 @ theta.T, z @ theta.T  # (n, K)
    w = _softmax(a * P + s * Q - 0.5 * (theta * theta).sum(-1))
    M = w @ (theta @ theta.T)  # rows: (sum_k w_k theta_k) . theta_j
    R = M - a * P + c * Q  # r . theta_j
    g = w * (R - (w * R).sum(-1, keepdim=True))  # w_ij (theta_j - m_i) . r_i
    grad = (w.T @ w) @ theta + (a * (g - w)).T @ x0 + (c * w + s * g).T @ z - g.sum(0)[:, None] * theta
    loss = base + (w * (M - 2 * a * P + 2 * c * Q)).sum()
    return loss / n, (2.0 / n) * grad


# --------------------------------------------------------------------- gradient descent
@dataclass
class GDResult:
    """A gradient-descent run: ``trajectory[k]`` is the estimate of ``mu*`` (not ``mu_t``) after
    ``k`` steps (``steps + 1`` rows), ``losses[k]`` the objective at the ``k``-th iterate."""

    trajectory: Tensor
    losses: Tensor
    t: float
    lr: float
    parameter: str
    noise: str

    @property
    def final(self) -> Tensor:
        return self.trajectory[-1]


def gd_ddpm(x0: Tensor, init: Tensor, t: float, *, steps: int = 100, lr: float = 1.0, parameter: str = "mu_t",
            noise: str = "fresh", generator: torch.Generator | None = None, progress: bool = False) -> GDResult:
    """Gradient descent on the empirical DDPM objective ``L_t`` of Shah et al. (2023).

    ``init`` is a starting ``mu`` (``(d,)`` symmetric model, ``(K, d)`` K centres). Each step is
    ``theta <- theta - lr * grad_theta L_t`` on ``theta = mu_t = exp(-t) mu`` (``parameter="mu_t"``,
    the default) or ``mu <- mu - lr * grad_mu L_t`` (``"mu"``, the same as step ``lr exp(-2t)`` on
    ``mu_t``). ``noise="fresh"`` redraws ``z`` each step; ``"fixed"`` draws it once (float64 noise is
    drawn in float32 and widened). ``generator`` fixes the draws. Raises if the loss stops being
    finite (the step is too large).
    """
    init = _as_centres(init, "init").detach()
    x0 = as_points(x0, "x0", init.shape[-1], dtype=init.dtype, device=init.device).detach()
    t = _time(t)
    steps = check_int(steps, "steps")
    lr = check_real(lr, "lr", low=0.0, low_open=True)
    check_choice(parameter, "parameter", PARAMETERS)
    check_choice(noise, "noise", NOISES)
    check_generator(generator)
    a, s = _coefficients(t)
    step = lr if parameter == "mu_t" else lr * a * a  # the step on theta = mu_t
    theta = a * init
    traj = torch.empty((steps + 1, *init.shape), dtype=init.dtype, device=init.device)
    traj[0] = init
    losses = torch.empty(steps + 1, dtype=torch.float64)
    z = torch.empty_like(x0)
    sum_sq_x0 = torch.vdot(x0.reshape(-1), x0.reshape(-1))
    for k in tqdm(range(steps + 1), desc="GD on L_t", disable=not check_bool(progress, "progress"), leave=False):
        if k == 0 or noise == "fresh":
            _normal_(z, generator)
        loss, grad = _loss_and_grad(theta, x0, z, a, s, sum_sq_x0)
        if not (torch.isfinite(loss) and torch.isfinite(grad).all()):
            raise ValueError(f"the DDPM objective became {loss.item()} at step {k}; lower lr (now {lr:g})")
        losses[k] = loss
        if k == steps:
            break
        theta = theta - step * grad
        traj[k + 1] = theta / a
    return GDResult(traj, losses, t, lr, parameter, noise)


# --------------------------------------------------------------------- the algorithms GD is compared with
def em_step(mu: Tensor, x0: Tensor) -> Tensor:
    """One EM update of the means (unit covariances, equal weights) on clean data ``x0``.

    Symmetric model (``mu`` of shape ``(d,)``): ``mu' = (1/n) sum_i tanh(mu . x_i) x_i``.
    K components (``(K, d)``): ``mu_k' = sum_i r_ik x_i / sum_i r_ik`` with responsibilities
    ``r_ik = softmax_k(mu_k . x_i - |mu_k|^2/2)`` (Kwon and Caramanis 2020; Segol and Nadler
    2021). A centre whose responsibilities all underflow to zero keeps its place.
    """
    mu = _as_centres(mu, "mu")
    x0 = as_points(x0, "x0", mu.shape[-1], dtype=mu.dtype, device=mu.device)
    return _em_step(mu, x0)


def _em_step(mu: Tensor, x0: Tensor) -> Tensor:
    if mu.ndim == 1:
        return x0.T @ torch.tanh(x0 @ mu) / x0.shape[0]
    r = _softmax(x0 @ mu.T - 0.5 * (mu * mu).sum(-1))
    mass = r.sum(0)
    empty = mass <= 0
    new = (r.T @ x0) / torch.where(empty, 1.0, mass)[:, None]
    return torch.where(empty[:, None], mu, new)


def em(x0: Tensor, init: Tensor, *, steps: int = 50, progress: bool = False) -> Tensor:
    """``steps`` EM updates (:func:`em_step`) from ``init``; the ``steps + 1`` iterates, stacked."""
    init = _as_centres(init, "init").detach()
    x0 = as_points(x0, "x0", init.shape[-1], dtype=init.dtype, device=init.device).detach()
    steps = check_int(steps, "steps")
    traj = torch.empty((steps + 1, *init.shape), dtype=init.dtype, device=init.device)
    traj[0] = init
    for k in tqdm(range(steps), desc="EM", disable=not check_bool(progress, "progress"), leave=False):
        traj[k + 1] = _em_step(traj[k], x0)
    return traj


def power_iteration(x0: Tensor, init: Tensor, *, steps: int = 100, rate: float = 1.0) -> Tensor:
    """The power method ``v <- (I + rate (S - I)) v / |.|`` with ``S = (1/n) sum_i x_i x_i^T``.

    ``rate = 1`` is the plain power method on ``S`` (population ``I + mu* mu*^T``). GD on
    ``L_t`` with step ``lr`` on ``mu_t``, linearised at ``mu_t = 0`` and averaged over the
    noise, is this iteration with ``rate = 4 lr exp(-2t)`` on the same data, up to the
    normalisation (Shah et al. 2023). Returns the ``steps + 1`` unit-norm iterates,
    shape ``(steps + 1, d)``.
    """
    init = as_tensor(init, "init")
    if init.ndim != 1 or init.numel() == 0 or init.norm() == 0:
        raise ValueError(f"init must be a nonzero vector of shape (d,), got shape {tuple(init.shape)}")
    x0 = as_points(x0, "x0", init.shape[0], dtype=init.dtype, device=init.device)
    steps = check_int(steps, "steps")
    rate = check_real(rate, "rate", low=0.0, low_open=True)
    n = x0.shape[0]
    traj = torch.empty((steps + 1, init.shape[0]), dtype=init.dtype, device=init.device)
    traj[0] = init / init.norm()
    for k in range(steps):
        v = traj[k]
        v = v + rate * (x0.T @ (x0 @ v) / n - v)
        norm = v.norm()
        if norm == 0:
            raise ValueError(f"the iterate vanished at step {k + 1}: init is orthogonal to the range of "
                             f"I + rate (S - I); choose another init or rate")
        traj[k + 1] = v / norm
    return traj


# --------------------------------------------------------------------- measuring
def cosine(u: Tensor, v: Tensor) -> Tensor:
    """``u . v / (|u| |v|)`` along the last axis (rows of ``u`` against ``v``, broadcast).

    Raises if a vector is zero (its direction is undefined)."""
    u, v = as_tensor(u, "u"), as_tensor(v, "v")
    if u.ndim == 0 or v.ndim == 0 or u.shape[-1] != v.shape[-1]:
        raise ValueError(f"u and v must be vectors with the same last dimension, got shapes "
                         f"{tuple(u.shape)} and {tuple(v.shape)}")
    nu, nv = u.norm(dim=-1), v.norm(dim=-1)
    if (nu == 0).any() or (nv == 0).any():
        raise ValueError("cosine of a zero vector is undefined")
    return (u * v).sum(-1) / (nu * nv)


def centre_errors(estimate: Tensor, truth: Tensor) -> Tensor:
    """Distances of estimated centres to the true ones, matched up to the model's symmetry.

    Shape ``(d,)`` (symmetric model; ``mu`` and ``-mu`` give the same mixture):
    ``min(|est - truth|, |est + truth|)``. Shape ``(K, d)``: the per-centre distances
    ``|est_pi(k) - truth_k|`` under the permutation ``pi`` minimising the sum of squared
    distances (Hungarian algorithm), in the order of ``truth``; the worst centre error is
    their maximum. A leading batch axis (e.g. a trajectory) is allowed.
    """
    truth = _as_centres(truth, "truth")
    est = as_tensor(estimate, "estimate", dtype=truth.dtype, device=truth.device)
    if est.ndim not in (truth.ndim, truth.ndim + 1) or est.shape[-truth.ndim:] != truth.shape:
        raise ValueError(f"estimate must have shape {tuple(truth.shape)} or (steps, *{tuple(truth.shape)}), "
                         f"got {tuple(est.shape)}")
    if truth.ndim == 1:
        return torch.minimum((est - truth).norm(dim=-1), (est + truth).norm(dim=-1))
    from scipy.optimize import linear_sum_assignment

    batch = est.reshape(-1, *truth.shape)
    dist = torch.cdist(truth.expand(batch.shape[0], -1, -1), batch).cpu()  # (B, K truth, K est)
    out = torch.empty(batch.shape[:2], dtype=truth.dtype)
    for b in range(batch.shape[0]):  # one small assignment per trajectory row, not per sample
        rows, cols = linear_sum_assignment((dist[b] ** 2).numpy())
        out[b, rows] = dist[b, rows, cols]
    return out.reshape(est.shape[:-1]).to(truth.device)


def gradient_em_cosine(mu: Tensor, x0: Tensor, t: float, *, noise_draws: int = 1,
                       generator: torch.Generator | None = None) -> float:
    """Cosine between ``-grad L_t(mu)`` (averaged over ``noise_draws`` noise draws) and the EM
    step ``em_step(mu, x0) - mu`` on the same data; near 1 at small ``t`` (Shah et al. 2023)."""
    mu = _as_centres(mu, "mu")
    x0 = as_points(x0, "x0", mu.shape[-1], dtype=mu.dtype, device=mu.device)
    t = _time(t)
    noise_draws = check_int(noise_draws, "noise_draws")
    check_generator(generator)
    a, s = _coefficients(t)
    grad = torch.zeros_like(mu)
    z = torch.empty_like(x0)
    for _ in range(noise_draws):
        grad += _loss_and_grad(a * mu, x0, _normal_(z, generator), a, s)[1]
    step = _em_step(mu, x0) - mu
    return float(cosine(-grad.reshape(-1), step.reshape(-1)))
