"""Gradient descent on the DDPM objective for Gaussian mixtures, next to EM and the power method.

Shah, Chen and Klivans (2023) study a student score with the form of the true one. For the
symmetric mixture ``q = 0.5 N(mu*, I) + 0.5 N(-mu*, I)`` it is

    s_mu(x, t) = tanh(mu_t . x) mu_t - x,          mu_t = exp(-t) mu,

and for ``q = (1/K) sum_k N(mu_k*, I)``

    s_mu(x, t) = sum_k softmax_k(mu_{k,t} . x - |mu_{k,t}|^2 / 2) mu_{k,t} - x.

Both are the exact score ``grad log q_t`` of the mixture with centres ``mu`` (every noised
component has covariance ``a_t^2 I + s_t^2 I = I``), so :func:`student_score` is
:meth:`lib.mixtures.GaussianMixture.score`. Gradient descent runs on the empirical DDPM
objective at one time ``t`` (the objective of :func:`lib.dsm.dsm_loss`),

    L_t(mu) = (1/n) sum_i || s_mu(a_t x_i + s_t z_i, t) + z_i / s_t ||^2,

with the noise ``z_i`` (:func:`lib.forward.noise_like`) redrawn every step (``noise="fresh"``)
or drawn once (``"fixed"``).

**Gradient descent is EM on the noised mixture.** With ``theta = mu_t`` and ``M_t`` the EM map
of the noised mixture ``q_t`` (centres ``+-mu*_t``, unit covariance),
``M_t(theta) = E_{x ~ q_t}[tanh(theta . x) x]``, the population gradient is exactly

    -grad_theta L_t(theta) = 2 (M_t(theta) - theta) + R_t(theta),
    R_t(theta) = -2 E_{x ~ q_t}[(1 - tanh^2(theta . x)) (theta . Delta(x)) x],

where ``Delta = s_theta - grad log q_t`` (Stein's lemma; :func:`population_terms`). ``R_t``
vanishes at ``theta = mu*_t``. So a step ``1/2`` on ``theta`` is one EM step on ``q_t`` up to
``R_t``; at large ``t``, where ``theta`` is small, ``R_t ~ 2 (M_t - theta)`` and the
linearised map ``M_t(theta) ~ (I + mu*_t mu*_t^T) theta`` makes GD the power method
(:func:`power_iteration`).

Everything is vectorised over samples; only the GD and EM iterations are Python loops.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from ._checks import as_points, as_tensor, check_bool, check_choice, check_generator, check_int, check_real
from .dsm import dsm_loss
from .forward import alpha, noise_like, sigma
from .mixtures import GaussianMixture, _normalise, equal_weights, symmetric_two

PARAMETERS = ("mu_t", "mu")
NOISES = ("fresh", "fixed", "projected")
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


def _scales(t: float) -> tuple[float, float]:
    """``(a_t, s_t)`` from :mod:`lib.forward`, as Python floats for the scalar arithmetic below."""
    return float(alpha(t)), float(sigma(t))


def _data(x0: object, centres: Tensor) -> tuple[Tensor, Tensor]:
    """The samples as ``(n, d)`` points in their own floating dtype (float32 data stay float32),
    and the centres in that dtype."""
    x0 = as_points(x0, "x0", centres.shape[-1], dtype=None, device=centres.device)
    return x0, centres.to(x0.dtype)


def _noise(z: object, x0: Tensor) -> Tensor:
    z = as_points(z, "z", x0.shape[1], dtype=x0.dtype, device=x0.device)
    if z.shape != x0.shape:
        raise ValueError(f"z must have the shape of x0 {tuple(x0.shape)}, got {tuple(z.shape)}")
    return z


def _softmax(logits: Tensor) -> Tensor:
    """The mixture's normaliser (one ``exp``; ``torch.softmax`` over K = 2..4 columns is about
    three times slower on a CPU, and this runs once per GD step); weights below double
    precision underflow to 0, so a centre no point claims keeps its place in EM."""
    return _normalise(logits, floor=None)[2]


def _model(mu: Tensor) -> GaussianMixture:
    """The mixture whose centres are ``mu``: ``symmetric_two`` for ``(d,)``, ``equal_weights`` for ``(K, d)``."""
    return symmetric_two(mu, dtype=mu.dtype) if mu.ndim == 1 else equal_weights(mu)


# --------------------------------------------------------------------- the student score
def student_score(mu: Tensor, x: Tensor, t: float) -> Tensor:
    """The student score of Shah et al. (2023) at parameter ``mu`` (not ``mu_t``).

    ``mu`` of shape ``(d,)``: ``tanh(mu_t . x) mu_t - x`` (symmetric two-component model);
    shape ``(K, d)``: ``sum_k softmax_k(mu_{k,t} . x - |mu_{k,t}|^2/2) mu_{k,t} - x``;
    ``mu_t = exp(-t) mu``, ``t >= 0`` one time. Both are the exact noised score of the mixture
    with centres ``mu`` (:meth:`lib.mixtures.GaussianMixture.score`), which computes them.
    Differentiable in ``mu``; a ``(d,)`` vector keeps its floating dtype, ``(K, d)`` centres
    are float64. Used in: chap-gmm-learning.
    """
    mu = _as_centres(mu, "mu", keep_dtype=True)
    x = as_points(x, "x", mu.shape[-1], dtype=mu.dtype if mu.ndim == 1 else torch.float64, device=mu.device)
    t = check_real(t, "t", low=0.0, high=T_MAX)
    return _model(mu).score(x, t)


def ddpm_loss(mu: Tensor, x0: Tensor, t: float, z: Tensor | None = None, *,
              generator: torch.Generator | None = None) -> Tensor:
    """The empirical DDPM objective ``(1/n) sum_i ||s_mu(a_t x_i + s_t z_i, t) + z_i/s_t||^2``.

    :func:`lib.dsm.dsm_loss` of :func:`student_score`; differentiable in ``mu`` (``mu`` of shape
    ``(d,)`` or ``(K, d)``). ``z`` defaults to fresh draws of :func:`lib.forward.noise_like`, the
    same draws :func:`ddpm_gradient` makes from the same generator state.
    """
    mu = _as_centres(mu, "mu", keep_dtype=True)
    x0 = as_points(x0, "x0", mu.shape[-1], dtype=mu.dtype if mu.ndim == 1 else torch.float64, device=mu.device)
    t = _time(t)
    check_generator(generator)
    if z is not None:
        z = _noise(z, x0)
    return dsm_loss(lambda x, _t: student_score(mu, x, t), x0, t, z, generator=generator)


def ddpm_gradient(mu: Tensor, x0: Tensor, t: float, z: Tensor | None = None, *, parameter: str = "mu_t",
                  generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """``(L_t, grad L_t)`` in closed form, with respect to ``mu_t`` (default) or ``mu``.

    With ``x = a_t x_0 + s_t z``, ``theta = mu_t`` and the residual ``r = s(x) + z/s_t``:
    symmetric model, ``grad_theta L = (2/n) sum_i [tanh(u_i) r_i + (1 - tanh^2 u_i)(theta . r_i) x_i]``
    with ``u_i = theta . x_i``; K-component model, with weights ``w_ik = softmax_k(...)`` and
    ``m_i = sum_k w_ik theta_k``,
    ``grad_{theta_k} L = (2/n) sum_i w_ik [r_i + ((theta_k - m_i) . r_i)(x_i - theta_k)]``.
    ``grad_mu L = exp(-t) grad_theta L``. ``z`` defaults to fresh draws of
    :func:`lib.forward.noise_like`. Computed in the dtype of ``x0``.
    """
    mu = _as_centres(mu, "mu")
    x0, mu = _data(x0, mu)
    t = _time(t)
    check_choice(parameter, "parameter", PARAMETERS)
    check_generator(generator)
    z = noise_like(x0, generator) if z is None else _noise(z, x0)
    a, s = _scales(t)
    loss, grad = _loss_and_grad(a * mu, x0, z, a, s)
    return loss, grad if parameter == "mu_t" else a * grad


def _loss_and_grad(theta: Tensor, x0: Tensor, z: Tensor | _ProjectedNoise, a: float, s: float,
                   sum_sq_x0: Tensor | None = None, x0_t: Tensor | None = None) -> tuple[Tensor | None, Tensor]:
    """Loss and gradient in ``theta = mu_t`` at ``x = a x0 + s z``, residual ``r = s(x) + z/s``.

    Written out rather than through :func:`student_score` and autograd for speed: ``r = f(x) -
    a x0 + c z`` with ``c = 1/s - s = a^2/s``, so every term reduces to products of ``x0`` and
    ``z`` with ``theta`` (shape ``(n,)``, or ``(K, n)`` with one row per centre, so that the
    softmax and the sums over centres run along contiguous rows of length ``n``: on a CPU several
    times faster than over the short last axis of an ``(n, K)`` array) and two ``(d, n)``
    products for the gradient, with no ``(n, d)`` or ``(n, K, d)`` temporaries. Tested equal to
    autograd. With a :class:`_ProjectedNoise` for ``z`` only the gradient is computed (the loss is None).
    ``x0_t``, ``x0.T`` stored contiguously, makes the product with the centres a quarter faster
    (callers that step many times pass it).
    """
    n = x0.shape[0]
    c = a * a / s
    if isinstance(z, _ProjectedNoise):
        base, zq, zt = None, z.products(theta), z.transpose_times
    else:
        zq = z @ theta if theta.ndim == 1 else theta @ z.T
        zt = (lambda w: z.T @ w) if theta.ndim == 1 else (lambda w: z.T @ w.T)  # noqa: E731
        flat_x0, flat_z = x0.reshape(-1), z.reshape(-1)
        if sum_sq_x0 is None:
            sum_sq_x0 = torch.vdot(flat_x0, flat_x0)
        # sum_i |-a x0_i + c z_i|^2, the part of the loss that does not depend on theta
        base = a * a * sum_sq_x0 + c * c * torch.vdot(flat_z, flat_z) - 2 * a * c * torch.vdot(flat_x0, flat_z)
    if theta.ndim == 1:
        p, q = x0 @ theta, zq
        tu = torch.tanh(a * p + s * q)
        sq = (theta * theta).sum()
        rt = tu * sq - a * p + c * q  # r . theta
        v = (1.0 - tu * tu) * rt
        grad = x0.T @ (a * (v - tu)) + zt(c * tu + s * v) + (tu * tu).sum() * theta
        loss = None if base is None else (base + (tu * (tu * sq - 2 * a * p + 2 * c * q)).sum()) / n
        return loss, (2.0 / n) * grad
    # (K, n) arrays, updated in place where a value is not needed again: each pass over them
    # costs as much as the products with x0 do
    aP, Q = (a * theta) @ (x0.T if x0_t is None else x0_t), zq  # a theta_j . x0_i, theta_j . z_i
    w = _softmax_rows(torch.add(aP, Q, alpha=s).sub_(0.5 * (theta * theta).sum(-1, keepdim=True)))
    M = (theta @ theta.T) @ w  # row j, column i: (sum_k w_ki theta_k) . theta_j
    loss = None if base is None else (base + (w * (M - 2 * aP + 2 * c * Q)).sum()) / n
    R = M.sub_(aP).add_(Q, alpha=c)  # r_i . theta_j
    g = R.sub_((w * R).sum(0)).mul_(w)  # w_ji (theta_j - m_i) . r_i
    # zt is positively homogeneous (linear in its argument but for the root of its Gram matrix)
    grad = (w @ w.T) @ theta + a * ((g - w) @ x0) + c * zt(torch.add(w, g, alpha=s / c)).T \
        - g.sum(1, keepdim=True) * theta
    return loss, (2.0 / n) * grad


def _softmax_rows(logits: Tensor) -> Tensor:
    """:func:`_softmax` of ``(K, n)`` logits down each column (weights below double precision
    underflow to 0), laid out so that the max and the sum combine K contiguous rows; overwrites
    ``logits``."""
    e = logits.sub_(logits.amax(0)).exp_()
    return e.div_(e.sum(0))


class _ProjectedNoise:
    """One fresh draw of the noise ``z`` (``n`` rows in ``R^d``), made only as far as the gradient sees it.

    The gradient depends on ``z`` through ``theta Z^T`` (``K x n``) and ``Z^T W^T`` (``d x K``) for
    weights ``W`` (``K x n``) that depend on ``x0`` and ``theta Z^T`` only. With an orthonormal
    basis ``B`` of a space holding the centres' span, ``Z = (Z B) B^T + Z P_perp``, the two parts
    independent: ``Z B`` is an ``n x r`` standard normal ``G``, and given ``W`` the part
    ``P_perp Z^T W^T`` is Gaussian with column covariance ``W W^T`` on the complement, that is
    ``P_perp Xi (W W^T)^{1/2}`` with a ``d x K`` standard normal ``Xi``. So ``n r + d K`` normal
    draws give the gradient exactly in distribution (up to the float32 draws below), where ``z``
    itself takes ``n d``.

    On a CPU the normals are drawn in float32 and widened to float64: torch draws float32
    normals about five times as fast, the draw was most of a GD step's time, and their rounding
    (relative 6e-8; torch's float32 Box-Muller also caps ``|z|`` near 5.8, where float64's cap is
    near 8.6, a tail of probability 1e-8) is far below the Monte-Carlo error of anything they enter.
    On CUDA, and for float32 parameters, the normals are drawn in the parameters' dtype.
    """

    def __init__(self, theta: Tensor, n: int, generator: torch.Generator | None) -> None:
        rows = theta if theta.ndim == 2 else theta[None]
        self.basis = torch.linalg.qr(rows.T).Q  # (d, r): its span holds every centre
        self.generator = generator
        self.g = _normals((self.basis.shape[1], n), generator, theta)  # G^T, (r, n)

    def products(self, theta: Tensor) -> Tensor:
        """``Z theta`` (``(n,)``) or ``theta Z^T`` (``(K, n)``)."""
        return (theta @ self.basis) @ self.g

    def transpose_times(self, w: Tensor) -> Tensor:
        """A draw of ``Z^T w`` (``(d,)`` for ``(n,)`` weights) or ``Z^T w^T`` (``(d, K)`` for
        ``(K, n)``), jointly with ``products``."""
        rows = w if w.ndim == 2 else w[None]
        xi = _normals((self.basis.shape[0], rows.shape[0]), self.generator, w)
        xi = xi - self.basis @ (self.basis.T @ xi)  # the complement of the centres' span
        evals, evecs = torch.linalg.eigh(rows @ rows.T)
        root = (evecs * evals.clamp(min=0).sqrt()) @ evecs.T
        out = self.basis @ (self.g @ rows.T) + xi @ root
        return out[:, 0] if w.ndim == 1 else out


def _normals(shape: tuple[int, int], generator: torch.Generator | None, like: Tensor) -> Tensor:
    """Standard normals in ``like``'s dtype and on its device; float64 ones on a CPU drawn in float32."""
    draw = torch.float32 if like.dtype == torch.float64 and like.device.type == "cpu" else like.dtype
    return torch.randn(shape, generator=generator, dtype=draw, device=like.device).to(like.dtype)


# --------------------------------------------------------------------- the gradient-EM identity
@dataclass
class PopulationTerms:
    """The population gradient of ``L_t`` in ``theta = mu_t`` and its EM decomposition:
    ``-gradient = 2 (em_map - theta) + remainder`` (:func:`population_terms`)."""

    gradient: Tensor
    em_map: Tensor
    remainder: Tensor

    def em_step(self, theta: Tensor) -> Tensor:
        """``M_t(theta) - theta``."""
        return self.em_map - theta


def population_terms(theta: Tensor, mu_star_t: Tensor, *, nodes: int = 160) -> PopulationTerms:
    """``grad_theta L_t``, ``M_t(theta)`` and ``R_t(theta)`` for ``q_t = 0.5 N(mu*_t, I) + 0.5 N(-mu*_t, I)``.

    Population quantities (``n -> infinity``, averaged over the noise), each computed on its
    own from its definition:

    * ``grad_theta L_t = 2 E[tanh(u) Delta + (1 - tanh^2 u)(theta . Delta) x]`` with
      ``u = theta . x``, ``Delta(x) = tanh(u) theta - tanh(mu*_t . x) mu*_t`` (Tweedie:
      ``E[z/s_t | x_t] = -grad log q_t``);
    * ``M_t(theta) = E[tanh(u) x]``, the EM map of ``q_t`` (Xu, Hsu and Maleki 2016);
    * ``R_t(theta) = -2 E[(1 - tanh^2 u)(theta . Delta) x]``;

    expectations over ``x ~ q_t``. Stein's lemma gives ``-grad = 2 (M_t - theta) + R_t``
    exactly; here it holds to the quadrature's accuracy, which tests that step. The integrands
    depend on ``x`` only through its coordinates in ``span(theta, mu*_t)``, and are even in
    ``x``, so each expectation is a two-dimensional Gauss-Hermite sum (``nodes^2`` points) over
    the component at ``+mu*_t``. ``t`` enters only through ``mu*_t = exp(-t) mu*``.
    Used in: chap-gmm-learning (the gradient-EM identity).
    """
    theta, mu_star_t = as_tensor(theta, "theta"), as_tensor(mu_star_t, "mu_star_t")
    if theta.ndim != 1 or theta.shape != mu_star_t.shape:
        raise ValueError(f"theta and mu_star_t must be vectors of one shape (d,), got {tuple(theta.shape)} "
                         f"and {tuple(mu_star_t.shape)}")
    nodes = check_int(nodes, "nodes", low=8, high=400)
    x, weights = _plane_points(theta, mu_star_t, nodes)
    u, u_star = x @ theta, x @ mu_star_t
    T, sech2 = torch.tanh(u), 1.0 - torch.tanh(u) ** 2
    delta = T[:, None] * theta - torch.tanh(u_star)[:, None] * mu_star_t
    side = (sech2 * (delta @ theta))[:, None] * x  # the term the theta x^T part of the Jacobian adds
    mean = lambda f: weights @ f  # noqa: E731
    return PopulationTerms(gradient=2 * mean(T[:, None] * delta + side), em_map=mean(T[:, None] * x),
                           remainder=-2 * mean(side))


def _plane_points(theta: Tensor, mu: Tensor, nodes: int) -> tuple[Tensor, Tensor]:
    """Gauss-Hermite points ``x = mu + g1 e1 + g2 e2`` and weights for ``g ~ N(0, I)`` projected on
    an orthonormal basis ``(e1, e2)`` of ``span(mu, theta)`` (zero vectors where the span is smaller)."""
    basis = []
    for v in (mu, theta):
        r = v - sum(((v @ e) * e for e in basis), torch.zeros_like(v))
        if r.norm() > 1e-12 * max(float(v.norm()), 1e-300):
            basis.append(r / r.norm())
    while len(basis) < 2:
        basis.append(torch.zeros_like(mu))
    g, w = np.polynomial.hermite_e.hermegauss(nodes)
    g = torch.as_tensor(g, dtype=mu.dtype)
    w = torch.as_tensor(w / math.sqrt(2 * math.pi), dtype=mu.dtype)
    g1, g2 = torch.meshgrid(g, g, indexing="ij")
    x = mu + g1.reshape(-1, 1) * basis[0] + g2.reshape(-1, 1) * basis[1]
    return x, torch.outer(w, w).reshape(-1)


# --------------------------------------------------------------------- gradient descent
@dataclass
class GDResult:
    """A gradient-descent run: ``trajectory[k]`` is the iterate (an estimate of ``mu*``, not
    ``mu_t``) after ``k`` steps, ``losses[k]`` the objective there (not computed at the last iterate of a run
    stopped by ``tol``, nor at all with ``noise="projected"``: then ``losses`` is empty); ``estimate`` is what the run
    reports (the last iterate, or the average of the iterates from ``average_from`` on), and
    ``converged`` says whether the stopping rule fired before the step budget ran out."""

    trajectory: Tensor
    losses: Tensor
    estimate: Tensor
    t: float
    lr: float
    parameter: str
    noise: str
    converged: bool

    @property
    def final(self) -> Tensor:
        return self.estimate

    @property
    def steps(self) -> int:
        return self.trajectory.shape[0] - 1


def relative_change(new: Tensor, old: Tensor) -> float:
    """``|new - old| / |new|`` (Frobenius norms): the stopping rule shared by :func:`gd_ddpm` and
    :func:`em` (and, in the benchmark, scikit-learn's EM): stop once it is at most ``tol``."""
    new, old = as_tensor(new, "new"), as_tensor(old, "old")
    if new.shape != old.shape:
        raise ValueError(f"new and old must have one shape, got {tuple(new.shape)} and {tuple(old.shape)}")
    norm = float(new.norm())
    return float((new - old).norm()) / norm if norm > 0 else math.inf


def gd_ddpm(x0: Tensor, init: Tensor, t: float, *, steps: int = 100, lr: float = 1.0, parameter: str = "mu_t",
            noise: str = "fresh", tol: float | None = None, average_from: int | None = None,
            generator: torch.Generator | None = None, progress: bool = False) -> GDResult:
    """Gradient descent on the empirical DDPM objective ``L_t`` of Shah et al. (2023).

    ``init`` is a starting ``mu`` (``(d,)`` symmetric model, ``(K, d)`` K centres). Each step is
    ``theta <- theta - lr * grad_theta L_t`` on ``theta = mu_t = exp(-t) mu`` (``parameter="mu_t"``,
    the default) or ``mu <- mu - lr * grad_mu L_t`` (``"mu"``, the same as step ``lr exp(-2t)`` on
    ``mu_t``). ``lr = 1/2`` (symmetric model) or ``K/2`` (K equal weights) on ``mu_t`` makes a step
    one EM step on ``q_t`` up to ``R_t`` (:func:`population_terms`). ``noise="fresh"`` redraws ``z``
    each step, ``"fixed"`` draws it once (:func:`lib.forward.noise_like`, in the dtype of ``x0``);
    ``"projected"`` redraws it each step only as far as the gradient depends on it (``n K + d K``
    normal draws instead of ``n d``; :class:`_ProjectedNoise`): the same gradient in
    distribution as ``"fresh"``, several times cheaper when ``K`` is small next to ``d``, but
    the loss is not computed (its constant part needs the whole draw)
    ``average_from=k`` reports the mean of the iterates from step ``k`` on (Polyak-Ruppert
    averaging, which averages fresh noise away). ``tol`` stops at the first step where the
    reported estimate's :func:`relative_change` is at most ``tol`` (``steps`` is then a budget).
    Raises if the loss or the gradient stops being finite (the step is too large).
    Used in: chap-gmm-learning (every experiment); benchmarks/gmm_vs_sklearn.py.
    """
    init = _as_centres(init, "init").detach()
    x0, init = _data(x0, init)
    x0 = x0.detach()
    t = _time(t)
    steps = check_int(steps, "steps")
    lr = check_real(lr, "lr", low=0.0, low_open=True)
    check_choice(parameter, "parameter", PARAMETERS)
    check_choice(noise, "noise", NOISES)
    tol = None if tol is None else check_real(tol, "tol", low=0.0, low_open=True)
    average_from = None if average_from is None else check_int(average_from, "average_from", low=0)
    check_generator(generator)
    a, s = _scales(t)
    step = lr if parameter == "mu_t" else lr * a * a  # the step on theta = mu_t
    theta = a * init
    traj = torch.empty((steps + 1, *init.shape), dtype=init.dtype, device=init.device)
    traj[0] = init
    losses = torch.empty(0 if noise == "projected" else steps + 1, dtype=torch.float64)
    sum_sq_x0 = torch.vdot(x0.reshape(-1), x0.reshape(-1))
    x0_t = x0.T.contiguous() if init.ndim == 2 else None
    estimate, mean, converged, k = init, None, False, 0
    for k in tqdm(range(steps + 1), desc="GD on L_t", disable=not check_bool(progress, "progress"), leave=False):
        if k == steps and noise == "projected":  # no loss to record: the last gradient would go unused
            break
        if noise == "projected":
            z = _ProjectedNoise(theta, x0.shape[0], generator)
        elif k == 0 or noise == "fresh":
            z = noise_like(x0, generator)
        loss, grad = _loss_and_grad(theta, x0, z, a, s, sum_sq_x0, x0_t)
        if not ((loss is None or torch.isfinite(loss)) and torch.isfinite(grad).all()):
            raise ValueError(f"the DDPM objective or its gradient stopped being finite at step {k}; "
                             f"lower lr (now {lr:g})")
        if loss is not None:
            losses[k] = loss
        if k == steps:
            break
        theta = theta - step * grad
        traj[k + 1] = theta / a
        if average_from is not None and k + 1 >= average_from:
            count = k + 2 - average_from
            mean = traj[k + 1].clone() if mean is None else mean + (traj[k + 1] - mean) / count
        new = traj[k + 1] if mean is None else mean
        converged = tol is not None and relative_change(new, estimate) <= tol and (mean is None or count > 1)
        estimate = new
        if converged:  # the last iterate's loss is not computed: losses has one row fewer
            return GDResult(traj[: k + 2], losses[: k + 1], estimate, t, lr, parameter, noise, True)
    return GDResult(traj, losses, estimate, t, lr, parameter, noise, False)


# --------------------------------------------------------------------- the algorithms GD is compared with
def em_step(mu: Tensor, x0: Tensor) -> Tensor:
    """One EM update of the means (unit covariances, equal weights) on the points ``x0``.

    Symmetric model (``mu`` of shape ``(d,)``, centres ``+-mu`` tied):
    ``mu' = (1/n) sum_i tanh(mu . x_i) x_i``, ``tanh = r_+ - r_-``. K components (``(K, d)``,
    untied): ``mu_k' = sum_i r_ik x_i / sum_i r_ik``, with the responsibilities ``r`` of the
    mixture with centres ``mu`` (:func:`responsibilities`; Kwon and Caramanis 2020; Segol and
    Nadler 2021). On clean data this is EM for ``q_0``; on noised
    points ``a_t x_0 + s_t z`` it estimates the EM map ``M_t`` of ``q_t``. A centre whose
    responsibilities all underflow to zero keeps its place.
    """
    mu = _as_centres(mu, "mu")
    x0, mu = _data(x0, mu)
    return _em_step(mu, x0)


def _em_step(mu: Tensor, x: Tensor) -> Tensor:
    if mu.ndim == 1:
        return x.T @ torch.tanh(x @ mu) / x.shape[0]  # tanh(mu . x) = r_+ - r_-
    r = responsibilities(mu, x)
    mass = r.sum(0)
    empty = mass <= 0
    new = (r.T @ x) / torch.where(empty, 1.0, mass)[:, None]
    return torch.where(empty[:, None], mu, new)


def responsibilities(mu: Tensor, x: Tensor) -> Tensor:
    """``r_ik = softmax_k(mu_k . x_i - |mu_k|^2 / 2)``: the posterior weights of
    :meth:`lib.mixtures.GaussianMixture.responsibilities` for equal weights and unit covariances
    (the terms common to every component cancel; tested equal). Written from the logits with the
    mixture's normaliser because the general path, which handles any covariances, is about ten
    times slower for this model, and EM and the sweeps call it at every step."""
    mu = as_tensor(mu, "mu", dtype=None)
    if mu.ndim != 2 or mu.numel() == 0:
        raise ValueError(f"mu must have shape (K, d), got {tuple(mu.shape)}")
    x = as_points(x, "x", mu.shape[1], dtype=mu.dtype, device=mu.device)
    return _softmax(x @ mu.T - 0.5 * (mu * mu).sum(-1))


def em(x0: Tensor, init: Tensor, *, steps: int = 50, tol: float | None = None, progress: bool = False) -> Tensor:
    """EM updates (:func:`em_step`) from ``init``: at most ``steps``, fewer if ``tol`` is given and
    an update's :func:`relative_change` falls to ``tol`` or below. Returns the iterates, stacked
    (``steps + 1`` rows without ``tol``). Used in: chap-gmm-learning; benchmarks/gmm_vs_sklearn.py."""
    init = _as_centres(init, "init").detach()
    x0, init = _data(x0, init)
    steps = check_int(steps, "steps")
    tol = None if tol is None else check_real(tol, "tol", low=0.0, low_open=True)
    traj = torch.empty((steps + 1, *init.shape), dtype=init.dtype, device=init.device)
    traj[0] = init
    k = 0
    for k in tqdm(range(steps), desc="EM", disable=not check_bool(progress, "progress"), leave=False):
        traj[k + 1] = _em_step(traj[k], x0)
        if tol is not None and relative_change(traj[k + 1], traj[k]) <= tol:
            return traj[: k + 2]
    return traj[: k + 2] if steps else traj


def power_iteration(x0: Tensor, init: Tensor, *, steps: int = 100, rate: float = 1.0) -> Tensor:
    """The power method ``v <- (I + rate (S - I)) v / |.|`` with ``S = (1/n) sum_i x_i x_i^T``.

    ``rate = 1`` is the plain power method on ``S`` (population ``I + mu* mu*^T``). Linearised
    at ``theta = 0`` the EM map of ``q_t`` is ``M_t(theta) ~ E_{q_t}[x x^T] theta =
    (I + exp(-2t) mu* mu*^T) theta``, and ``-grad L_t ~ 4 (M_t(theta) - theta)``; so GD with step
    ``lr`` on ``mu_t``, averaged over the noise, is this iteration with ``rate = 4 lr exp(-2t)``
    on the same data, up to the normalisation (Shah et al. 2023). Returns the ``steps + 1``
    unit-norm iterates, shape ``(steps + 1, d)``.
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
