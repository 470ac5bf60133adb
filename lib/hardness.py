"""Exact 1-D score metrics by quadrature, the hardness pair's formulas, and ERM over a finite class.

Gupta et al. (2024) show that an L2-accurate score is too much to ask: the pair

    p1 = (1 - eta) N(0, 1) + eta N(-R, 1),    p2 = (1 - eta) N(0, 1) + eta N(R, 1)

cannot be told apart from ``o(1/eta)`` samples, yet ``E_{p1,t}|s1 - s2|^2 ~ eta R^2 e^{-2t}``
while ``TV(p1, p2) ~ eta``. This module computes the quantities of that argument:

* :func:`quadrature_1d` — nodes and weights for ``E_{p_t}[g]`` of a 1-D mixture (the
  trapezoid rule on a fine grid, times the density), for one or many times at once;
* :func:`score_l2_distance_1d` — ``E_{p_t}|grad log p_t - g_t|^2`` for another mixture's
  score or any score function ``g``, and :func:`score_quantile_error_1d` — the exact
  ``D^delta_{p_t}`` of Gupta et al. (2024), both by that quadrature; the weighted quantile
  itself is :func:`lib.quantile.weighted_quantile_error`;
* :func:`hardness_theory` — the closed forms: ``eta (a_t R)^2``, a rigorous bound on its
  error, and the exact ``TV(p1_t, p2_t) = eta (1 - 2 Phi(-a_t R))``;
* :func:`finite_class_erm` — the minimiser of the empirical DSM objective over a finite set
  of score functions, for many independent training sets and many sample sizes at once.

Total variation in 1-D is :func:`lib.metrics.tv_1d`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ._checks import (
    ScoreFn,
    as_tensor,
    as_times,
    check_callable,
    check_generator,
    check_int,
    check_real,
)
from .forward import time_grid
from .mixtures import GaussianMixture
from .quantile import weighted_quantile_error

__all__ = [
    "FiniteERM", "HardnessTheory", "finite_class_erm", "hardness_theory", "linear_sampler_variance", "quadrature_1d",
    "score_l2_distance_1d", "score_quantile_error_1d",
]


# ----------------------------------------------------------------------- quadrature
def _check_1d(p: object, name: str) -> GaussianMixture:
    if not isinstance(p, GaussianMixture):
        raise TypeError(f"{name} must be a GaussianMixture, got {type(p).__name__}")
    if p.d != 1:
        raise ValueError(f"{name} must be one-dimensional, it has d = {p.d}")
    return p.to("cpu")


def quadrature_1d(p: GaussianMixture, t: Tensor | float = 0.0, *, points: int = 8001,
                  width: float = 12.0) -> tuple[Tensor, Tensor]:
    """Nodes ``x`` and weights ``w`` with ``sum_i w_i g(x_i) ~ E_{x ~ p_t}[g(x)]`` for a 1-D mixture.

    The grid is uniform on ``[min_k (a_t m_k - width sd_k), max_k (a_t m_k + width sd_k)]``,
    ``sd_k^2 = a_t^2 v_k + s_t^2``, and ``w`` is the trapezoid weight times the density
    ``p_t``. For the smooth integrands here the trapezoid rule converges faster than any power
    of the spacing, so the error is set by the mass beyond ``width`` standard deviations
    (``~ 1e-32`` for 12). ``t`` is one time (nodes and weights of shape ``(points,)``) or a
    1-D tensor of ``T`` times (shape ``(T, points)``, one grid per time).
    """
    p = _check_1d(p, "p")
    tt = as_times(t, "t")
    points = check_int(points, "points", low=3)
    width = check_real(width, "width", low=0.0, low_open=True)
    flat = tt.reshape(-1, 1)
    a, s2 = torch.exp(-flat), -torch.expm1(-2.0 * flat)
    centre = a * p.means[:, 0]  # (T, K)
    sd = torch.sqrt(a * a * p.covariances[:, 0, 0] + s2)
    lo, hi = (centre - width * sd).amin(1), (centre + width * sd).amax(1)
    u = torch.linspace(0.0, 1.0, points, dtype=torch.float64)
    x = lo[:, None] + (hi - lo)[:, None] * u  # (T, points)
    h = (hi - lo) / (points - 1)
    trap = torch.ones(points, dtype=torch.float64)
    trap[0] = trap[-1] = 0.5
    dens = p.log_prob(x.reshape(-1, 1), flat.expand(-1, points).reshape(-1)).exp().reshape(x.shape)
    w = dens * trap * h[:, None]
    if tt.ndim == 0:
        return x[0], w[0]
    return x, w


def _score_of(q: GaussianMixture | ScoreFn, name: str) -> Callable[[Tensor, Tensor], Tensor]:
    if isinstance(q, GaussianMixture):
        _check_1d(q, name)
        return q.to("cpu").score
    return check_callable(q, name)


def _pointwise_errors(p: GaussianMixture, q: GaussianMixture | ScoreFn, t: Tensor | float,
                      points: int) -> tuple[Tensor, Tensor, Tensor]:
    """``|grad log p_t(x) - g(x, t)|`` and the quadrature weights on the grid, and the times."""
    p = _check_1d(p, "p")
    g = _score_of(q, "q")
    tt = as_times(t, "t")
    x, w = quadrature_1d(p, tt, points=points)
    x2, w2 = x.reshape(-1, x.shape[-1]), w.reshape(-1, w.shape[-1])
    rows = tt.reshape(-1, 1).expand_as(x2).reshape(-1)
    flat = x2.reshape(-1, 1)
    with torch.no_grad():
        other = torch.as_tensor(g(flat, rows)).to(torch.float64).reshape(flat.shape)
    err = (p.score(flat, rows) - other).abs().reshape(x2.shape)
    if not torch.isfinite(err).all():
        raise ValueError("the score q returned a non-finite value on the quadrature grid")
    return err, w2, tt


def score_l2_distance_1d(p: GaussianMixture, q: GaussianMixture | ScoreFn, t: Tensor | float = 0.0, *,
                         points: int = 8001) -> Tensor:
    """``E_{x ~ p_t} |grad log p_t(x) - g_t(x)|^2`` by quadrature (:func:`quadrature_1d`).

    ``q`` is another 1-D mixture (``g_t = grad log q_t``; the result is the Fisher divergence
    of ``q_t`` from ``p_t``) or any score function ``g(x, t)`` taking points ``(n, 1)`` and one
    time per row. ``t`` is one time or a 1-D tensor of times; the result, float64, has the
    shape of ``t``. For the hardness pair of Gupta et al. (2024) this is ``~ eta R^2 e^{-2t}``
    (:func:`hardness_theory`).
    """
    err, w, tt = _pointwise_errors(p, q, t, points)
    return ((err**2) * w).sum(-1).reshape(tt.shape)


def score_quantile_error_1d(p: GaussianMixture, q: GaussianMixture | ScoreFn, t: Tensor | float,
                            delta: float | Tensor, *, points: int = 8001) -> Tensor:
    """The exact quantile error ``D^delta_{p_t}(g_t, grad log p_t)`` by quadrature.

    The pointwise errors on the grid of :func:`quadrature_1d` with their masses go to
    :func:`lib.quantile.weighted_quantile_error`. ``q`` and ``t`` as in :func:`score_l2_distance_1d`;
    the result has shape ``t.shape`` (one more axis for a 1-D ``delta``). Exact up to the
    grid spacing ``~ 30 / points`` in ``x``, times the slope of the error.
    """
    err, w, tt = _pointwise_errors(p, q, t, points)
    out = weighted_quantile_error(err, w, delta)
    return out.reshape(tuple(tt.shape) + tuple(out.shape[1:]))


# ----------------------------------------------------------------------- the hardness pair
@dataclass(frozen=True)
class HardnessTheory:
    """Closed forms for the hardness pair at times ``t`` (every field has the shape of ``t``).

    ``l2_approx = eta b^2`` with ``b = a_t R``; ``l2_error_bound`` bounds
    ``|E_{p1,t}|s1 - s2|^2 - eta b^2|``; ``overlap`` is the Bayes error of telling the two
    components of ``p1_t`` apart; ``tv = TV(p1_t, p2_t)`` exactly.
    """

    eta: float
    R: float
    t: Tensor
    l2_approx: Tensor
    l2_error_bound: Tensor
    overlap: Tensor
    tv: Tensor

    @property
    def relative_bound(self) -> Tensor:
        """``l2_error_bound / l2_approx``: the guaranteed relative accuracy of ``eta b^2``."""
        return self.l2_error_bound / self.l2_approx


def hardness_theory(eta: float, R: float, t: Tensor | float = 0.0) -> HardnessTheory:
    """The formulas of the hardness argument of Gupta et al. (2024), with ``b = a_t R``:

    * ``|E_{p1,t}|s1 - s2|^2 - eta b^2| <= b^2 (eps + eta^2 e^{-b^2} / (1 - eta))`` for
      ``eta <= 1/2``, where ``eps = (1-eta) Phi(-(b/2 + L/b)) + eta Phi(-(b/2 - L/b))``,
      ``L = log((1-eta)/eta)``, is the Bayes error of classifying a draw of ``p1_t`` by its
      component (the book's chapter on the hardness of L2 proves it);
    * ``TV(p1_t, p2_t) = eta (1 - 2 Phi(-b))`` exactly (the main components cancel).
    """
    eta = check_real(eta, "eta", low=0.0, high=0.5, low_open=True)
    R = check_real(R, "R", low=0.0, low_open=True)
    tt = as_times(t, "t")
    b = R * torch.exp(-tt)
    L = math.log((1 - eta) / eta)
    sf = torch.special.ndtr
    overlap = (1 - eta) * sf(-(b / 2 + L / b)) + eta * sf(-(b / 2 - L / b))
    bound = b * b * (overlap + eta * eta * torch.exp(-b * b) / (1 - eta))
    return HardnessTheory(eta, R, tt, eta * b * b, bound, overlap, eta * (1 - 2 * sf(-b)))


# ----------------------------------------------------------------------- ERM over a finite class
@dataclass(frozen=True)
class FiniteERM:
    """The empirical DSM risk of every hypothesis and the minimiser, per training set and size.

    ``losses`` ``(H, trials, S)``: hypothesis ``h``'s empirical objective on the first
    ``sizes[j]`` samples of trial ``i``; ``choice`` ``(trials, S)``: the index of the minimiser
    (uniformly at random among exact ties).
    """

    losses: Tensor
    choice: Tensor
    sizes: Tensor

    def frequency(self, hypothesis: int) -> Tensor:
        """How often ``hypothesis`` is the minimiser, per sample size ``(S,)``."""
        hypothesis = check_int(hypothesis, "hypothesis", low=0, high=self.losses.shape[0] - 1)
        return (self.choice == hypothesis).to(torch.float64).mean(0)


def finite_class_erm(hypotheses: Sequence[GaussianMixture | ScoreFn], x0: Tensor, t: float, *,
                     z: Tensor | None = None, sizes: Sequence[int] | Tensor | None = None,
                     generator: torch.Generator | None = None) -> FiniteERM:
    """Minimise the empirical DSM objective over a finite class, for many training sets at once.

    For trial ``i`` with samples ``x_{i,1..m}`` and fixed noise ``z_{i,1..m}``, hypothesis ``f``
    has empirical risk (Gupta et al. 2024; Vincent 2011)

        L_{i,n}(f) = (1/n) sum_{j <= n} | f(a_t x_{ij} + s_t z_{ij}) + z_{ij} / s_t |^2

    for every prefix size ``n`` in ``sizes`` (default: ``m`` only), so one draw of ``(trials, m)``
    samples gives nested training sets for all sizes. ``hypotheses`` are score functions
    ``f(x, t)`` (one time) or mixtures (their ``score``). ``x0`` is ``(trials, m)`` (1-D data) or
    ``(trials, m, d)``; ``z`` (same shape) defaults to fresh ``N(0, 1)`` draws from ``generator``.
    Each hypothesis is evaluated once on all ``trials * m`` points; prefix sums give every size.
    Exact ties (scores that agree to the last bit on every sample) are broken uniformly at
    random with ``generator``, so that a symmetric class stays symmetric.
    """
    if not isinstance(hypotheses, (list, tuple)) or len(hypotheses) == 0:
        raise TypeError("hypotheses must be a non-empty list of score functions or mixtures")
    fns = [h.score if isinstance(h, GaussianMixture) else check_callable(h, f"hypotheses[{k}]")
           for k, h in enumerate(hypotheses)]
    x = as_tensor(x0, "x0")
    if x.ndim == 2:
        x = x[..., None]
    if x.ndim != 3 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"x0 must have shape (trials, m) or (trials, m, d) with trials, m >= 1, got {tuple(x.shape)}")
    trials, m, d = x.shape
    t = check_real(t, "t", low=0.0, low_open=True)
    check_generator(generator)
    if z is None:
        z = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    else:
        z = as_tensor(z, "z", device=x.device)
        z = z[..., None] if z.ndim == 2 else z
        if z.shape != x.shape:
            raise ValueError(f"z must have the shape of x0 {tuple(x.shape)}, got {tuple(z.shape)}")
    if sizes is None:
        n = torch.tensor([m])
    else:
        n = torch.as_tensor(sizes).reshape(-1)
        if n.numel() == 0 or n.is_floating_point() or (n < 1).any() or (n > m).any():
            raise ValueError(f"sizes must hold integers in [1, {m}] (the number of samples per trial)")
    a, s = math.exp(-t), math.sqrt(-math.expm1(-2.0 * t))
    xt = (a * x + s * z).reshape(-1, d)
    target = (z / s).reshape(-1, d)
    per_sample = []
    with torch.no_grad():
        for k, f in enumerate(fns):
            out = torch.as_tensor(f(xt, t)).to(x.dtype).reshape(xt.shape)
            if not torch.isfinite(out).all():
                raise ValueError(f"hypotheses[{k}] returned a non-finite score")
            per_sample.append(((out + target) ** 2).sum(-1).reshape(trials, m))
    sq = torch.stack(per_sample)  # (H, trials, m)
    prefix = sq.cumsum(-1).index_select(-1, (n - 1).to(sq.device))  # (H, trials, S)
    losses = prefix / n.to(sq)
    # Exact ties happen: far from a rare component two mixture scores agree to the last bit.
    # A fixed tie-break would favour the first hypothesis; a uniform one keeps symmetries.
    keys = torch.rand(losses.shape, generator=generator, dtype=losses.dtype, device=losses.device)
    keys = torch.where(losses == losses.amin(0, keepdim=True), keys, -1.0)
    return FiniteERM(losses, keys.argmax(0), n)


# ----------------------------------------------------------------------- the sampler with the score -x
def linear_sampler_variance(T: float, gamma: float, n_steps: int, *, v_start: float = 1.0) -> float:
    """Output variance of :func:`lib.sample` (SDE, exponential integrator, log grid) driven by ``-x``.

    With the score ``-x`` of ``N(0, 1)`` one step of length ``h`` maps ``y`` to
    ``(2 - e^h) y + sqrt(e^{2h} - 1) xi``, so a start of variance ``v`` leaves variance
    ``(2 - e^h)^2 v + e^{2h} - 1``: the output law is exactly ``N(0, v_out)``. The loop runs
    over the ``n_steps`` steps, not over samples.

    Used in: chap-hardness-l2 (what sampling needs), chap-quantile-error (a dropped mode).
    """
    times = time_grid(T, gamma, check_int(n_steps, "n_steps"))
    v = check_real(v_start, "v_start", low=0.0)
    for h in (times[:-1] - times[1:]).tolist():
        v = (1 - math.expm1(h)) ** 2 * v + math.expm1(2 * h)
    return v
