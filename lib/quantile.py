"""The ``(1 - delta)``-quantile score error and the tools to study it.

Gupta et al. (2024) measure a score estimate ``f`` against the true score ``s`` under a law
``q`` by

    D^delta_q(f, s) = inf { e : Pr_{x ~ q}[ ||f(x) - s(x)|| > e ] <= delta },

the ``(1 - delta)``-quantile of the pointwise error, and show that
``D^delta_{q_t}(f_t, s_t) <= eps / s_t`` at every sampler time suffices for a sampler with
``eps`` TV error when ``delta = poly(eps)``. This module holds

* :func:`quantile_band` — the order-statistic estimate of ``D^delta`` with a
  distribution-free confidence interval, vectorised over many error samples and many
  ``delta``; :func:`quantile_error` and :func:`score_quantile_error` are its one-sample
  and one-time forms, :func:`weighted_quantile_error` the same quantile for weighted errors
  (a quadrature rule instead of a sample);
* :func:`quantile_profile` — ``t -> D^delta_{q_t}`` (and the RMS error) for a score
  function on a grid of times, one batched evaluation for all times;
* :class:`LocalizedCorruption` and :class:`DriftCorruption` — exact scores corrupted with
  the *same* L2 error ``size / s_t`` at every time, either all on a region of
  ``q_t``-mass ``mass`` or spread everywhere, with their exact L2 and quantile errors;
* :func:`tail_threshold` — where that region starts, and :func:`kolmogorov_distance_1d`,
  a sample-quality measure that, like TV, counts moved mass and not how far it moved.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ._checks import (
    ScoreFn,
    as_points,
    as_tensor,
    as_times,
    check_callable,
    check_choice,
    check_generator,
    check_int,
    check_real,
)
from .forward import perturb, sigma
from .metrics import score_errors
from .mixtures import GaussianMixture

__all__ = [
    "DriftCorruption", "LocalizedCorruption", "QuantileBand", "QuantileEstimate", "QuantileProfile",
    "ScoreCorruption", "kolmogorov_distance_1d", "quantile_band", "quantile_error", "quantile_profile",
    "score_quantile_error", "tail_threshold", "weighted_quantile_error",
]


# ----------------------------------------------------------------------- the estimator
@dataclass(frozen=True)
class QuantileBand:
    """Estimates of ``D^delta`` with confidence intervals; ``value``, ``lower`` and
    ``upper`` share one shape (the batch shape of the errors, then one entry per delta
    when several deltas were given)."""

    value: Tensor
    lower: Tensor
    upper: Tensor
    delta: Tensor
    confidence: float


def _order_indices(n: int, delta: Tensor, confidence: float) -> tuple[Tensor, Tensor, Tensor]:
    """1-based ranks of the point estimate and of the interval ends (``0`` and ``n + 1``
    mean minus and plus infinity)."""
    # k = n - floor(delta n): the smallest k with #(errors > err_(k)) <= delta n. The
    # relative 1e-12 guards against delta n landing just below an integer in floating point.
    k = (n - torch.floor(delta * n * (1 + 1e-12))).clamp(1, n).long()
    from scipy import stats  # here, not at the top: it costs every chapter ~0.5 s of import time

    tail = (1 - confidence) / 2
    p = (1 - delta).cpu().numpy()
    lo = torch.as_tensor(stats.binom.ppf(tail, n, p), dtype=torch.float64).long()
    hi = torch.as_tensor(stats.binom.ppf(1 - tail, n, p), dtype=torch.float64).long() + 1
    return k, lo, hi


def quantile_band(errors: Tensor, delta: float | Tensor, confidence: float = 0.95) -> QuantileBand:
    """``D^delta = inf{e : Pr[err > e] <= delta}`` from i.i.d. errors, with a confidence interval.

    ``errors`` has shape ``(..., n)``: every leading index is a separate sample (a time, a
    model). ``delta`` is one number in ``(0, 1)`` or a 1-D tensor of them, which appends an
    axis. The estimate is the order statistic ``err_(k)``, ``k = n - floor(delta n)``, the
    empirical version of the definition of Gupta et al. (2024). The number of errors at or
    below the true quantile ``xi`` is ``Binomial(n, 1 - delta)`` for continuous errors, so
    ``[err_(l), err_(u)]`` with ``l``, ``u`` the ``(1 -/+ confidence)/2`` binomial quantiles
    (``u`` shifted by one) covers ``xi`` with probability at least ``confidence``
    (distribution-free; conservative because the binomial is discrete). An end beyond the
    sample is ``-inf`` / ``+inf``.
    """
    e = as_tensor(errors, "errors")
    if e.ndim == 0 or e.shape[-1] < 2:
        raise ValueError(f"errors must have shape (..., n) with n >= 2, got {tuple(e.shape)}")
    d = as_tensor(delta, "delta", device=e.device)
    if d.ndim > 1 or d.numel() == 0:
        raise ValueError(f"delta must be a number or a 1-D tensor, got shape {tuple(d.shape)}")
    if ((d <= 0) | (d >= 1)).any():
        raise ValueError(f"delta must lie in (0, 1), got values in [{d.min().item():g}, {d.max().item():g}]")
    confidence = check_real(confidence, "confidence", low=0.0, high=1.0, low_open=True, high_open=True)
    n = e.shape[-1]
    scalar = d.ndim == 0
    d1 = d.reshape(-1)
    srt = torch.sort(e, dim=-1).values
    pad = torch.cat([torch.full_like(srt[..., :1], -math.inf), srt, torch.full_like(srt[..., :1], math.inf)], -1)
    k, lo, hi = (i.to(e.device) for i in _order_indices(n, d1, confidence))
    # with the padding, rank r (0..n+1) is column r
    pick = lambda r: pad.index_select(-1, r.clamp(0, n + 1))  # noqa: E731
    value, lower, upper = pick(k), pick(lo), pick(hi)
    if scalar:
        value, lower, upper = value[..., 0], lower[..., 0], upper[..., 0]
    return QuantileBand(value, lower, upper, d, confidence)


def weighted_quantile_error(errors: Tensor, weights: Tensor, delta: float | Tensor) -> Tensor:
    """``D^delta = inf{e : sum_i w_i 1{e_i > e} <= delta}`` for errors ``e_i`` with masses ``w_i``.

    The quantile of Gupta et al. (2024) for a discrete law: ``errors`` ``(..., n)``,
    ``weights`` broadcastable to it (normalised to sum 1 along the last axis), ``delta`` one
    number in ``(0, 1)`` (result of shape ``errors.shape[:-1]``) or a 1-D tensor (one more axis).
    Sorting the errors in decreasing order, the answer is the first error at which the
    cumulative mass exceeds ``delta``.
    """
    e = as_tensor(errors, "errors")
    if e.ndim == 0 or e.shape[-1] < 1:
        raise ValueError(f"errors must have shape (..., n) with n >= 1, got {tuple(e.shape)}")
    w = as_tensor(weights, "weights", device=e.device)
    try:
        w = torch.broadcast_to(w, e.shape)
    except RuntimeError as exc:
        raise ValueError(f"weights of shape {tuple(w.shape)} do not broadcast to errors {tuple(e.shape)}") from exc
    if (w < 0).any() or (w.sum(-1) <= 0).any():
        raise ValueError("weights must be >= 0 with a positive sum along the last axis")
    d = as_tensor(delta, "delta", device=e.device)
    if d.ndim > 1 or ((d <= 0) | (d >= 1)).any():
        raise ValueError("delta must be a number in (0, 1) or a 1-D tensor of them")
    w = w / w.sum(-1, keepdim=True)
    order = torch.argsort(e, dim=-1, descending=True)
    srt, mass = e.gather(-1, order), w.gather(-1, order).cumsum(-1)
    # first index whose cumulative mass exceeds delta; the relative slack keeps delta = a
    # cumulative sum that floating point rounded up from being read as "exceeds".
    idx = torch.searchsorted(mass.contiguous(), (d.reshape(-1) * (1 + 1e-12)).expand(*mass.shape[:-1], -1)
                             .contiguous(), right=True)
    out = srt.gather(-1, idx.clamp(max=e.shape[-1] - 1))
    return out[..., 0] if d.ndim == 0 else out


@dataclass(frozen=True)
class QuantileEstimate:
    """One empirical ``(1 - delta)``-quantile with its distribution-free confidence interval."""

    value: float
    lower: float
    upper: float
    delta: float
    confidence: float


def quantile_error(errors: Tensor, delta: float, confidence: float = 0.95) -> QuantileEstimate:
    """``D^delta = inf{e : Pr[err > e] <= delta}`` from one sample of i.i.d. errors.

    The single-sample form of :func:`quantile_band` (same order statistic, same interval;
    an interval end beyond the sample is ``-inf`` / ``+inf``). Gupta et al. (2024) define
    the measure.
    """
    e = as_tensor(errors, "errors").reshape(-1)
    delta = check_real(delta, "delta", low=0.0, high=1.0, low_open=True, high_open=True)
    band = quantile_band(e, delta, confidence)
    return QuantileEstimate(band.value.item(), band.lower.item(), band.upper.item(), delta, band.confidence)


def score_quantile_error(score_fn: ScoreFn, mixture: GaussianMixture, t: float, delta: float,
                         n: int = 20_000, *, confidence: float = 0.95,
                         generator: torch.Generator | None = None) -> QuantileEstimate:
    """``D^delta_{q_t}(f, grad log q_t)`` at one time ``t``, estimated from ``n`` draws of ``q_t``
    (:func:`quantile_profile` does many times in one batch)."""
    errs = score_errors(score_fn, mixture, t, n, generator=generator)
    return quantile_error(errs, delta, confidence)


# ----------------------------------------------------------------------- per-time profile
@dataclass(frozen=True)
class QuantileProfile:
    """``t -> D^delta_{q_t}(f, grad log q_t)`` and the RMS error on a grid of times.

    ``value``/``lower``/``upper`` have shape ``(T,)`` (or ``(T, k)`` for ``k`` deltas);
    ``rms`` is ``sqrt(E||f - s_t||^2)`` with ``rms_se`` its delta-method standard error;
    ``l2``/``l2_se`` the mean squared error and its standard error.
    """

    times: Tensor
    delta: Tensor
    value: Tensor
    lower: Tensor
    upper: Tensor
    l2: Tensor
    l2_se: Tensor
    n: int

    @property
    def sigma(self) -> Tensor:
        """``s_t`` at the profile's times."""
        return sigma(self.times)

    @property
    def rms(self) -> Tensor:
        return self.l2.sqrt()

    @property
    def rms_se(self) -> Tensor:
        return self.l2_se / (2 * self.rms.clamp_min(1e-300))


def quantile_profile(score_fn: ScoreFn, mixture: GaussianMixture, times: Tensor, delta: float | Tensor,
                     n: int = 20_000, *, confidence: float = 0.95,
                     generator: torch.Generator | None = None) -> QuantileProfile:
    """The quantile error ``D^delta_{q_t}(f, grad log q_t)`` at every time of ``times``.

    Draws ``n`` independent points of ``q_t`` per time as ``x_t = a_t x_0 + s_t z`` (all
    times in one batch), evaluates ``score_fn`` once with one time per row, and applies
    :func:`quantile_band` to each time's errors. Gupta et al. (2024) require
    ``D^delta_{q_t} <= eps / s_t``: compare ``profile.value`` with ``eps / profile.sigma``.
    """
    check_callable(score_fn, "score_fn")
    if not isinstance(mixture, GaussianMixture):
        raise TypeError(f"mixture must be a GaussianMixture, got {type(mixture).__name__}")
    tt = as_times(times, "times", allow_zero=False, dtype=mixture.dtype, device=mixture.device).reshape(-1)
    n = check_int(n, "n", low=2)
    check_generator(generator)
    T = tt.numel()
    t_rows = tt.repeat_interleave(n)
    x, _ = perturb(mixture.sample(T * n, generator=generator), t_rows, generator=generator)
    with torch.no_grad():
        f = score_fn(x, t_rows).to(x.dtype)
    err = (f - mixture.score(x, t_rows)).norm(dim=-1).reshape(T, n)
    band = quantile_band(err, delta, confidence)
    sq = err**2
    return QuantileProfile(tt, band.delta, band.value, band.lower, band.upper, sq.mean(1),
                           sq.std(1, unbiased=True) / math.sqrt(n), n)


# ----------------------------------------------------------------------- regions of given mass
def _direction(mixture: GaussianMixture, direction: object) -> Tensor:
    if direction is None:
        v = torch.zeros(mixture.d, dtype=mixture.dtype, device=mixture.device)
        v[0] = 1.0
        return v
    v = as_tensor(direction, "direction", dtype=mixture.dtype, device=mixture.device).reshape(-1)
    if v.numel() != mixture.d or v.norm() == 0:
        raise ValueError(f"direction must be a nonzero vector of length d = {mixture.d}")
    return v / v.norm()


def tail_threshold(mixture: GaussianMixture, t: float | Tensor, mass: float, *,
                   direction: Tensor | None = None, iterations: int = 64) -> Tensor:
    """``u_t`` with ``Pr_{x ~ q_t}[v . x > u_t] = mass``: the start of the upper tail of ``q_t``
    along ``v`` (default the first axis) that holds exactly ``mass``.

    The projection of ``q_t`` on ``v`` is the 1-D mixture ``sum_k w_k N(a_t v.m_k,
    a_t^2 v^T S_k v + s_t^2)``; ``u_t`` solves its survival equation by bisection, for all
    times of ``t`` (a scalar or a 1-D tensor) at once.
    """
    if not isinstance(mixture, GaussianMixture):
        raise TypeError(f"mixture must be a GaussianMixture, got {type(mixture).__name__}")
    tt = as_times(t, "t", dtype=mixture.dtype, device=mixture.device)
    mass = check_real(mass, "mass", low=0.0, high=1.0, low_open=True, high_open=True)
    iterations = check_int(iterations, "iterations")
    v = _direction(mixture, direction)
    flat = tt.reshape(-1, 1)
    a, s2 = torch.exp(-flat), -torch.expm1(-2.0 * flat)
    mu = a * (mixture.means @ v)  # (T, K)
    var_k = torch.einsum("d,kde,e->k", v, mixture.covariances, v)
    sd = torch.sqrt(a * a * var_k + s2)
    lo = (mu - 40 * sd).amin(1)
    hi = (mu + 40 * sd).amax(1)
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        surv = (torch.special.ndtr((mu - mid[:, None]) / sd) * mixture.weights).sum(1)
        above = surv > mass  # threshold is further right
        lo, hi = torch.where(above, mid, lo), torch.where(above, hi, mid)
    return (0.5 * (lo + hi)).reshape(tt.shape)


# ----------------------------------------------------------------------- corruptions
@functools.lru_cache(maxsize=8192)
def _cached_threshold(mixture: GaussianMixture, mass: float, direction: tuple[float, ...], t: float) -> Tensor:
    v = torch.tensor(direction, dtype=mixture.dtype, device=mixture.device)
    return tail_threshold(mixture, t, mass, direction=v)


class ScoreCorruption:
    """A score ``f_t = base_t + err_t`` whose error ``err_t`` is known exactly.

    ``base`` defaults to the mixture's exact score, so that ``err_t`` is the error against
    the truth. Subclasses set ``error(x, t)``, ``l2(t) = E_{q_t}||err_t||^2`` and
    ``quantile(t, delta) = D^delta_{q_t}``, all with the time-dependent size
    ``size / s_t``: the accuracy ``eps / s_t`` of Gupta et al. (2024) with ``eps = size``.
    """

    def __init__(self, mixture: GaussianMixture, size: float, *, base: ScoreFn | None = None,
                 direction: Tensor | None = None) -> None:
        if not isinstance(mixture, GaussianMixture):
            raise TypeError(f"mixture must be a GaussianMixture, got {type(mixture).__name__}")
        self.mixture = mixture
        self.size = check_real(size, "size", low=0.0)
        self.base = mixture.score if base is None else check_callable(base, "base")
        self.direction = _direction(mixture, direction)

    def _times(self, x: Tensor, t: object) -> tuple[Tensor, Tensor]:
        x = as_points(x, "x", self.mixture.d, dtype=self.mixture.dtype, device=self.mixture.device)
        t = as_times(t, n=x.shape[0], allow_zero=False, dtype=x.dtype, device=x.device)
        return x, t

    def error(self, x: Tensor, t: Tensor | float) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, x: Tensor, t: Tensor | float) -> Tensor:
        """``f(x, t) = base(x, t) + err_t(x)``, shape of ``x``; ``t`` one time or one per row."""
        xx, _ = self._times(x, t)
        return self.base(x, t).to(xx.dtype) + self.error(xx, t)

    def l2(self, t: Tensor | float) -> Tensor:
        """The exact ``E_{q_t}||err_t||^2 = size^2 / s_t^2``, the same for every subclass."""
        tt = as_times(t, allow_zero=False, dtype=self.mixture.dtype)
        return (self.size / sigma(tt)) ** 2


class DriftCorruption(ScoreCorruption):
    """A small error everywhere: ``err_t(x) = (size / s_t) w`` for a unit vector ``w``
    (default the first axis).

    A constant drift added to the reverse SDE pushes all the mass; its error has
    ``D^delta_{q_t} = size / s_t`` for every ``delta`` and RMS ``size / s_t``.
    """

    def error(self, x: Tensor, t: Tensor | float) -> Tensor:
        x, t = self._times(x, t)
        mag = self.size / sigma(t)
        mag = mag[:, None] if mag.ndim == 1 else mag
        return mag * self.direction.expand_as(x)

    def quantile(self, t: Tensor | float, delta: float) -> Tensor:
        """Exact ``D^delta_{q_t} = size / s_t`` (every point has this error)."""
        check_real(delta, "delta", low=0.0, high=1.0, low_open=True, high_open=True)
        return self.l2(t).sqrt()


class LocalizedCorruption(ScoreCorruption):
    """A large error on a region of small mass: ``err_t(x) = (size / (s_t sqrt(mass))) w 1{v.x > u_t}``.

    The region ``{v.x > u_t}`` is the upper tail of ``q_t`` along ``v`` with
    ``q_t``-mass exactly ``mass`` (:func:`tail_threshold`), so the L2 error is
    ``mass * size^2 / (s_t^2 mass) = size^2 / s_t^2``, the same as :class:`DriftCorruption`
    of equal ``size``, while ``D^delta_{q_t} = 0`` for ``delta >= mass``. ``push="inward"``
    (default) points the error along ``-v``, back into the bulk; ``"outward"`` along ``+v``.
    """

    def __init__(self, mixture: GaussianMixture, size: float, mass: float, *, base: ScoreFn | None = None,
                 direction: Tensor | None = None, push: str = "inward") -> None:
        super().__init__(mixture, size, base=base, direction=direction)
        self.mass = check_real(mass, "mass", low=0.0, high=1.0, low_open=True, high_open=True)
        self.push = check_choice(push, "push", ("inward", "outward"))

    def threshold(self, t: Tensor | float) -> Tensor:
        """``u_t``, the start of the corrupted region at time(s) ``t``. Single times are
        cached across corruptions of the same mixture, mass and direction: a sweep over
        sizes asks for the same few hundred sampler times again and again."""
        if isinstance(t, Tensor) and t.ndim > 0:
            return tail_threshold(self.mixture, t, self.mass, direction=self.direction)
        return _cached_threshold(self.mixture, self.mass, tuple(self.direction.tolist()), float(t))

    def error(self, x: Tensor, t: Tensor | float) -> Tensor:
        x, t = self._times(x, t)
        if t.ndim == 0:
            u = self.threshold(t)
        else:
            uniq, inv = torch.unique(t, return_inverse=True)
            u = self.threshold(uniq)[inv]
        inside = (x @ self.direction > u).to(x.dtype)
        mag = self.size / (sigma(t) * math.sqrt(self.mass)) * inside
        sign = -1.0 if self.push == "inward" else 1.0
        return sign * mag[:, None] * self.direction

    def quantile(self, t: Tensor | float, delta: float) -> Tensor:
        """Exact ``D^delta_{q_t}``: ``0`` for ``delta >= mass``, ``size / (s_t sqrt(mass))`` below."""
        delta = check_real(delta, "delta", low=0.0, high=1.0, low_open=True, high_open=True)
        big = self.l2(t).sqrt() / math.sqrt(self.mass)
        return big if delta < self.mass else torch.zeros_like(big)


# ----------------------------------------------------------------------- sample quality
def kolmogorov_distance_1d(samples: Tensor, mixture: GaussianMixture, *, t: float = 0.0) -> float:
    """``sup_x |F_n(x) - F_t(x)|`` between the empirical law of 1-D ``samples`` and ``q_t``.

    Exact: the supremum is attained at a sample point,
    ``max_i max(i/n - F(x_(i)), F(x_(i)) - (i-1)/n)``. It is a lower bound on
    ``TV(empirical smoothing, q_t)``-type distances and, like TV, it is at most the mass that
    was moved, however far: the right yardstick for the theorem of Gupta et al. (2024),
    whose guarantee is in TV. For ``n`` exact samples it is about ``0.87 / sqrt(n)``.
    """
    if not isinstance(mixture, GaussianMixture) or mixture.d != 1:
        raise ValueError("mixture must be a one-dimensional GaussianMixture")
    x = as_points(samples, "samples", 1, dtype=mixture.dtype).reshape(-1)
    t = check_real(t, "t", low=0.0)
    n = x.numel()
    F = mixture.to("cpu").cdf(torch.sort(x.cpu()).values, t)
    i = torch.arange(1, n + 1, dtype=F.dtype)
    return torch.maximum(i / n - F, F - (i - 1) / n).max().item()
