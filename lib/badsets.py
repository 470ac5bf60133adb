"""Scores that are quantile-accurate but arbitrarily wrong on small bad sets, for 1-D samplers.

The sufficiency theorem of Gupta et al. (2024) asks, at every sampler step ``k``, for
``D^delta_{q_{t_k}}(f, grad log q_{t_k}) <= eps / s_{t_k}``: outside a *bad set* ``B_k`` of
``q_{t_k}``-mass at most ``delta`` the error is at most ``eps / s_t``, and on ``B_k`` it may
be anything. Its proof couples the sampler driven by ``f`` with a *repaired* one that uses
the true score on ``B_k``; the two agree until a path first enters a bad set, which happens
with probability at most ``N delta + TV(repaired, ideal)``. This module builds ensembles of
such scores for a 1-D mixture and a given list of sampler times:

* :func:`mixture_icdf_1d` — the quantile function ``F_t^{-1}(u)`` of ``q_t`` (bisection);
* :class:`BadSetScores` — ``J`` corrupted scores evaluated side by side on an ``(n, J)``
  state (column ``j`` is an independent 1-D sampler), recording which paths visited a bad set;
* :func:`random_bad_set_scores` — a randomised ensemble: bad-set geometry (upper tail,
  lower tail, a fixed interior quantile band, or one redrawn at every step), push direction
  on the bad set (outward, inward, random sign per step) and size, and the error off the
  bad sets (a drift of either sign or a spreading one, of size ``c / s_t`` with ``c <= eps``);
* :func:`drift_path_kl` — the exact KL divergence between the path laws of the exponential
  integrator driven by the repaired score and by the exact score.

Used in: chap-quantile-error (the theorem in its own regime).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ._checks import as_tensor, check_generator, check_int, check_real
from .forward import sigma
from .mixtures import GaussianMixture

__all__ = ["GEOMETRIES", "PUSHES", "BadSetScores", "drift_path_kl", "mixture_icdf_1d", "random_bad_set_scores"]

GEOMETRIES = ("upper tail", "lower tail", "fixed band", "moving band")
PUSHES = ("outward", "inward", "random")


def _check_1d(mixture: object) -> GaussianMixture:
    if not isinstance(mixture, GaussianMixture) or mixture.d != 1:
        raise ValueError("mixture must be a one-dimensional GaussianMixture")
    return mixture.to("cpu")


def mixture_icdf_1d(mixture: GaussianMixture, t: Tensor, u: Tensor, *, iterations: int = 80) -> Tensor:
    """``x`` with ``F_t(x) = u`` for the 1-D mixture ``q_t = sum_k w_k N(a_t m_k, a_t^2 v_k + s_t^2)``.

    ``t`` (positive times) and ``u`` (levels in ``(0, 1)``) broadcast against each other;
    bisection on the exact distribution function, all entries at once.
    """
    p = _check_1d(mixture)
    tt, uu = torch.broadcast_tensors(as_tensor(t, "t"), as_tensor(u, "u"))
    if (tt < 0).any():
        raise ValueError("t must be >= 0")
    if ((uu <= 0) | (uu >= 1)).any():
        raise ValueError("u must lie in (0, 1)")
    iterations = check_int(iterations, "iterations")
    a, s2 = torch.exp(-tt)[..., None], -torch.expm1(-2.0 * tt)[..., None]
    mu = a * p.means[:, 0]
    sd = torch.sqrt(a * a * p.covariances[:, 0, 0] + s2)
    lo, hi = (mu - 40 * sd).amin(-1), (mu + 40 * sd).amax(-1)
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        below = (torch.special.ndtr((mid[..., None] - mu) / sd) * p.weights).sum(-1) < uu
        lo, hi = torch.where(below, mid, lo), torch.where(below, hi, mid)
    return 0.5 * (lo + hi)


def _score_1d(p: GaussianMixture, y: Tensor, t: Tensor) -> Tensor:
    """``grad log q_t`` of a 1-D mixture at every entry of ``y`` (any shape), for one time ``t``.

    ``GaussianMixture.score`` serves any dimension and takes ``(n, d)`` points; the samplers
    here call the 1-D score on ``(n, J)`` states hundreds of times, and the closed form
    ``-sum_k r_k(x) (x - a_t m_k) / (a_t^2 v_k + s_t^2)`` on the whole array is about twice
    as fast (tests check the two agree).
    """
    a = torch.exp(-t)
    var = a * a * p.covariances[:, 0, 0] - torch.expm1(-2.0 * t)
    diff = y[..., None] - a * p.means[:, 0]
    r = torch.softmax(torch.log(p.weights) - 0.5 * torch.log(var) - diff * diff / (2 * var), dim=-1)
    return -(r * diff / var).sum(-1)


@dataclass
class BadSetScores:
    """``J`` scores for a 1-D mixture: the exact score plus an error that is large on bad sets.

    At sampler step ``k`` (time ``times[k]``) and column ``j`` the error is
    ``push_{jk}(x) * big_j / s_t`` on ``B_{jk} = [lo_{jk}, hi_{jk}]`` and
    ``drift_{j}(x) * c_j / s_t`` elsewhere, where ``push`` and ``drift`` are signs: a fixed
    sign, or ``+-sign(x - a_t E[x_0])`` (away from / towards the data's mean). With
    ``repaired=True`` the bad sets carry the off-set error instead (the repaired score of the
    proof). Calling it on an ``(n, J)`` state at a time of ``times`` records in ``visited``
    which paths are in their bad set at that step.
    """

    mixture: GaussianMixture
    times: Tensor      # (N,) the sampler's step-start times
    lo: Tensor         # (J, N) bad-set ends
    hi: Tensor
    big: Tensor        # (J,) size on the bad set, in units of 1 / s_t
    push: Tensor       # (J, N) +1 outward, -1 inward, or a fixed sign (then spread_push is False)
    spread_push: Tensor  # (J,) bool: push is relative to the mean (outward / inward)
    c: Tensor          # (J,) size off the bad set, in units of 1 / s_t
    drift: Tensor      # (J,) sign
    spread_drift: Tensor  # (J,) bool
    repaired: bool = False
    visited: Tensor | None = None

    def reset(self, n: int) -> None:
        self.visited = torch.zeros(n, self.lo.shape[0], dtype=torch.bool)

    def _step(self, t: Tensor | float) -> int:
        k = int(torch.argmin((self.times - float(t)).abs()))
        if abs(self.times[k].item() - float(t)) > 1e-9 * max(1.0, float(t)):
            raise ValueError(f"t = {float(t):g} is not one of the sampler times this ensemble was built for")
        return k

    def __call__(self, y: Tensor, t: Tensor | float) -> Tensor:
        k = self._step(t)
        n, J = y.shape
        if J != self.lo.shape[0]:
            raise ValueError(f"y must have J = {self.lo.shape[0]} columns, got {J}")
        tk = self.times[k]
        base = _score_1d(self.mixture, y, tk)
        away = torch.sign(y - torch.exp(-tk) * self.mixture.mean()[0])
        inside = (y >= self.lo[:, k]) & (y <= self.hi[:, k])
        if self.visited is not None and not self.repaired:
            self.visited |= inside
        drift = torch.where(self.spread_drift, away * self.drift, self.drift.expand(n, J))
        err = self.c * drift
        if not self.repaired:
            push = torch.where(self.spread_push, away * self.push[:, k], self.push[:, k].expand(n, J))
            err = torch.where(inside, self.big * push, err)
        return base + err / sigma(tk)


def random_bad_set_scores(mixture: GaussianMixture, times: Tensor, delta: Tensor, eps: float, *,
                          big_range: tuple[float, float] = (1.0, 100.0), p_clean: float = 1 / 3,
                          geometries: tuple[str, ...] = GEOMETRIES, pushes: tuple[str, ...] = PUSHES,
                          generator: torch.Generator | None = None) -> tuple[BadSetScores, dict[str, Tensor]]:
    """A randomised ensemble of ``J = len(delta)`` scores with ``D^{delta_j}_{q_t} <= c_j / s_t <= eps / s_t``.

    For each ``j``: the geometry (uniform over :data:`GEOMETRIES`) places ``B_{jk}`` as the
    ``q_{t_k}``-quantile band ``[F^{-1}(u), F^{-1}(u + delta_j)]`` with ``u = 1 - delta_j``,
    ``0``, one ``u`` for all steps, or a fresh ``u`` at every step; the push on ``B`` is
    outward, inward or a random sign per step (uniform over :data:`PUSHES`) with size
    ``big_j / s_t``, ``big_j`` log-uniform in ``big_range``; off ``B`` the error is ``0`` with
    probability ``p_clean``, else ``c_j / s_t`` with ``c_j ~ U(0, eps)``, as a drift of random
    sign or a spreading one. ``geometries`` and ``pushes`` restrict the draws to some kinds.
    Returns the scores and the labels drawn (indices into :data:`GEOMETRIES`, :data:`PUSHES`).
    """
    p = _check_1d(mixture)
    tt = as_tensor(times, "times").reshape(-1)
    d = as_tensor(delta, "delta").reshape(-1)
    if ((d <= 0) | (d >= 0.5)).any():
        raise ValueError("delta must lie in (0, 0.5)")
    eps = check_real(eps, "eps", low=0.0)
    check_real(p_clean, "p_clean", low=0.0, high=1.0)
    if not 0 < big_range[0] <= big_range[1]:
        raise ValueError(f"big_range must be (low, high) with 0 < low <= high, got {big_range}")
    check_generator(generator)
    J, N = d.numel(), tt.numel()
    kw = dict(generator=generator, dtype=torch.float64)
    allowed_g = _indices(geometries, GEOMETRIES, "geometries")
    allowed_p = _indices(pushes, PUSHES, "pushes")
    geom = allowed_g[torch.randint(len(allowed_g), (J,), generator=generator)]
    push_kind = allowed_p[torch.randint(len(allowed_p), (J,), generator=generator)]
    u_fixed = torch.rand(J, 1, **kw) * (1 - d[:, None])
    u_moving = torch.rand(J, N, **kw) * (1 - d[:, None])
    u = torch.where(geom[:, None] == 3, u_moving, u_fixed.expand(J, N))
    u = torch.where(geom[:, None] == 0, 1 - d[:, None], torch.where(geom[:, None] == 1, 0.0, u))
    lo = mixture_icdf_1d(p, tt, u.clamp_min(1e-300))
    hi = mixture_icdf_1d(p, tt, (u + d[:, None]).clamp_max(1 - 1e-16))
    # the tails are half-lines: their far ends are infinite, not the bisection's bracket
    lo = torch.where(geom[:, None] == 1, -math.inf, lo)
    hi = torch.where(geom[:, None] == 0, math.inf, hi)
    log_lo, log_hi = math.log(big_range[0]), math.log(big_range[1])
    big = torch.exp(log_lo + (log_hi - log_lo) * torch.rand(J, **kw))
    rand_sign = torch.where(torch.rand(J, N, **kw) < 0.5, -1.0, 1.0).to(torch.float64)
    push = torch.where(push_kind[:, None] == 2, rand_sign, torch.where(push_kind[:, None] == 0, 1.0, -1.0))
    clean = torch.rand(J, **kw) < p_clean
    c = torch.where(clean, 0.0, eps * torch.rand(J, **kw))
    drift_kind = torch.randint(3, (J,), generator=generator)  # 0: +drift, 1: -drift, 2: spreading
    drift = torch.where(drift_kind == 1, -1.0, 1.0).to(torch.float64)
    scores = BadSetScores(p, tt, lo, hi, big, push.to(torch.float64), push_kind != 2, c, drift, drift_kind == 2)
    labels = dict(geometry=geom, push=push_kind, clean=clean, drift=drift_kind)
    return scores, labels


def _indices(chosen: tuple[str, ...], names: tuple[str, ...], label: str) -> Tensor:
    if not chosen or any(c not in names for c in chosen):
        raise ValueError(f"{label} must be a non-empty tuple drawn from {names}, got {chosen}")
    return torch.tensor([names.index(c) for c in chosen])


def drift_path_kl(times: Tensor, c: Tensor) -> Tensor:
    """``KL`` between the path laws of the exponential-integrator SDE sampler driven by
    ``grad log q_t + e`` and by ``grad log q_t``, when ``|e| = c / s_t`` at every point.

    One step of length ``h`` moves the mean by ``2 (e^h - 1) e`` under noise variance
    ``e^{2h} - 1``, so each step adds ``(2 (e^h - 1))^2 |e|^2 / (2 (e^{2h} - 1)) =
    2 tanh(h/2) c^2 / s_t^2`` (chain rule for KL of Markov chains; the continuous-time limit
    is the Girsanov bound ``int c^2 / s_t^2 dt``). ``times`` are the ``N + 1`` sampler times.
    """
    tt = as_tensor(times, "times").reshape(-1)
    h = tt[:-1] - tt[1:]
    if (h <= 0).any():
        raise ValueError("times must decrease")
    per = 2 * torch.tanh(h / 2) / sigma(tt[:-1]) ** 2
    return as_tensor(c, "c", dtype=tt.dtype) ** 2 * per.sum()
