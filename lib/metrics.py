"""Score-error and distribution metrics.

Score errors are Monte-Carlo averages under ``q_t`` and come with their standard error.
Distribution distances are exact where that is cheap (1-D TV by quadrature, 1-D W1 from
distribution functions) and the usual sample-based ones otherwise (sliced Wasserstein,
MMD with a Gaussian kernel).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ._checks import (
    ScoreFn,
    as_points,
    call_score,
    check_callable,
    check_generator,
    check_int,
    check_mixture,
    check_real,
)
from .mixtures import GaussianMixture


@dataclass(frozen=True)
class Estimate:
    """A Monte-Carlo estimate and its standard error."""

    value: float
    stderr: float

    def interval(self, z: float = 1.96) -> tuple[float, float]:
        """``value -/+ z * stderr`` (95% for the default ``z``)."""
        return self.value - z * self.stderr, self.value + z * self.stderr


def _mean_se(v: Tensor) -> Estimate:
    v = v.detach().to(torch.float64)
    se = v.std(unbiased=True).item() / math.sqrt(v.numel()) if v.numel() > 1 else float("inf")
    return Estimate(v.mean().item(), se)


def _draw(mixture: GaussianMixture, t: float, n: int, generator) -> Tensor:
    check_mixture(mixture, "mixture")
    check_generator(generator)
    return mixture.sample(check_int(n, "n"), t=t, generator=generator)


def _eval_score(score_fn: ScoreFn, x: Tensor, t: float) -> Tensor:
    """``score_fn(x, t)`` in ``x``'s dtype; a wrong shape or a NaN is an error, not a result."""
    with torch.no_grad():
        return call_score(score_fn, x, t).to(x.dtype)


# ----------------------------------------------------------------------- score errors
def score_errors(score_fn: ScoreFn, mixture: GaussianMixture, t: float, n: int = 20_000,
                 *, generator: torch.Generator | None = None) -> Tensor:
    """The pointwise errors ``||f(x) - grad log q_t(x)||`` at ``n`` draws ``x ~ q_t``."""
    check_callable(score_fn, "score_fn")
    t = check_real(t, "t", low=0.0)
    x = _draw(mixture, t, n, generator)
    return (_eval_score(score_fn, x, t) - mixture.score(x, t)).norm(dim=-1)


def score_l2_error(score_fn: ScoreFn, mixture: GaussianMixture, t: float, n: int = 20_000,
                   *, generator: torch.Generator | None = None) -> Estimate:
    """``E_{x ~ q_t} ||f(x) - grad log q_t(x)||^2`` by Monte Carlo, with its standard error."""
    return _mean_se(score_errors(score_fn, mixture, t, n, generator=generator) ** 2)


def dsm_minimum(mixture: GaussianMixture, t: float, n: int = 20_000,
                *, generator: torch.Generator | None = None) -> Estimate:
    """The minimum of the DSM objective, ``d / s_t^2 - E_{q_t} ||grad log q_t||^2``.

    Since ``E[z | x_t] = -s_t grad log q_t(x_t)``, expanding ``L_t`` at its minimiser gives
    this value (Vincent 2011; Gupta et al. 2024); the expectation is estimated by Monte Carlo.
    """
    t = check_real(t, "t", low=0.0, low_open=True)
    x = _draw(mixture, t, n, generator)
    s2 = -math.expm1(-2 * t)
    return _mean_se(mixture.d / s2 - (mixture.score(x, t) ** 2).sum(-1))


def dsm_objective(score_fn: ScoreFn, mixture: GaussianMixture, t: float, n: int = 20_000,
                  *, generator: torch.Generator | None = None) -> Estimate:
    """The population DSM objective ``L_t(f) = E||f(a_t x_0 + s_t z) + z/s_t||^2`` under the
    mixture, by Monte Carlo over fresh ``(x_0, z)``."""
    check_callable(score_fn, "score_fn")
    t = check_real(t, "t", low=0.0, low_open=True)
    x0 = _draw(mixture, 0.0, n, generator)
    z = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
    a, s = math.exp(-t), math.sqrt(-math.expm1(-2 * t))
    res = _eval_score(score_fn, a * x0 + s * z, t) + z / s
    return _mean_se((res**2).sum(-1))


# ----------------------------------------------------------------------- distances in 1-D
def _check_1d(g: object, name: str) -> GaussianMixture:
    return check_mixture(g, name, d=1).to("cpu")  # quadrature is cheap; one device keeps it simple


def _quadrature_grid(mixtures: tuple[GaussianMixture, ...], t: float, points: int) -> Tensor:
    """Quadrature nodes for 1-D mixtures at time ``t``: a uniform grid over each cluster of
    overlapping windows ``a_t m_k -/+ 12 sd_k``, with points shared out in proportion to
    the cluster's length in units of its narrowest component. Far-apart components each get
    their own fine grid (one uniform grid over all of them would step over a narrow one);
    between clusters every density is below ``exp(-72)``."""
    windows = []
    for g in mixtures:
        noised = g.noised(t)
        centre, sd = noised.means[:, 0], noised.covariances[:, 0, 0].sqrt()
        windows += [(c - 12 * v, c + 12 * v, v) for c, v in zip(centre.tolist(), sd.tolist())]
    windows.sort()
    clusters = [list(windows[0])]
    for lo, hi, v in windows[1:]:
        last = clusters[-1]
        if lo <= last[1]:
            last[1], last[2] = max(last[1], hi), min(last[2], v)
        else:
            clusters.append([lo, hi, v])
    units = [(hi - lo) / v for lo, hi, v in clusters]
    total = sum(units)
    grids = [torch.linspace(lo, hi, max(3, round(points * u / total)), dtype=torch.float64)
             for (lo, hi, _), u in zip(clusters, units)]
    return torch.unique(torch.cat(grids))  # sorted


def tv_1d(p: GaussianMixture, q: GaussianMixture, *, t: float = 0.0, points: int = 200_001) -> float:
    """Total variation ``(1/2) int |p_t - q_t|`` of two 1-D mixtures, by the trapezoid rule
    on about ``points`` nodes covering 12 standard deviations around every component (each
    group of overlapping components gets its own uniform grid, so far-apart narrow
    components are resolved)."""
    p, q = _check_1d(p, "p"), _check_1d(q, "q")
    t = check_real(t, "t", low=0.0)
    x = _quadrature_grid((p, q), t, check_int(points, "points", low=3))
    diff = (p.log_prob(x[:, None], t).exp() - q.log_prob(x[:, None], t).exp()).abs()
    return 0.5 * torch.trapezoid(diff, x).item()


def w1_to_mixture_1d(samples: Tensor, mixture: GaussianMixture, *, t: float = 0.0,
                     points: int = 200_001) -> float:
    """``W1(empirical, q_t) = int |F_n(x) - F(x)| dx`` in 1-D, by the trapezoid rule.

    The nodes are those of :func:`tv_1d` plus every sample point taken twice, with the left
    and right limits of the step function ``F_n``: the rule is then exact wherever ``F`` is
    flat (between far-apart components and beyond them), however far the samples lie.
    """
    mixture = _check_1d(mixture, "mixture")
    x = torch.sort(as_points(samples, "samples", 1, device="cpu").reshape(-1)).values
    t = check_real(t, "t", low=0.0)
    nodes = torch.unique(torch.cat([_quadrature_grid((mixture,), t, check_int(points, "points", low=3)), x]))
    left = torch.searchsorted(x, nodes, right=False).to(torch.float64) / x.numel()
    right = torch.searchsorted(x, nodes, right=True).to(torch.float64) / x.numel()
    cdf = mixture.cdf(nodes, t)
    grid = nodes.repeat_interleave(2)
    gap = torch.stack([(left - cdf).abs(), (right - cdf).abs()], dim=1).reshape(-1)
    return torch.trapezoid(gap, grid).item()


def w1_1d(x: Tensor, y: Tensor) -> float:
    """Exact ``W1`` between two 1-D samples: ``int |F_x - F_y|``, both step functions."""
    x = as_points(x, "x", 1).reshape(-1)
    y = as_points(y, "y", 1).reshape(-1)
    allp = torch.sort(torch.cat([x, y])).values
    fx = torch.searchsorted(torch.sort(x).values, allp[:-1], right=True) / x.numel()
    fy = torch.searchsorted(torch.sort(y).values, allp[:-1], right=True) / y.numel()
    return ((fx - fy).abs() * allp.diff()).sum().item()


# ----------------------------------------------------------------------- distances in R^d
def sliced_wasserstein(x: Tensor, y: Tensor, n_projections: int = 256, *, p: int = 2,
                       generator: torch.Generator | None = None) -> float:
    """Sliced ``W_p``: ``(E_theta W_p^p(theta.x, theta.y))^{1/p}`` over uniform directions.

    Exact 1-D ``W_p`` per direction from the empirical quantile functions on the union of
    their breakpoints, so the two samples may differ in size.
    """
    x = as_points(x, "x")
    y = as_points(y, "y", x.shape[1])
    n_projections = check_int(n_projections, "n_projections")
    p = check_int(p, "p", low=1, high=2)
    check_generator(generator)
    theta = torch.randn(x.shape[1], n_projections, generator=generator, dtype=x.dtype, device=x.device)
    theta = theta / theta.norm(dim=0, keepdim=True)
    px, py = torch.sort(x @ theta, dim=0).values, torch.sort(y @ theta, dim=0).values
    n, m = px.shape[0], py.shape[0]
    levels = torch.unique(torch.cat([torch.arange(1, n + 1, dtype=x.dtype, device=x.device) / n,
                                     torch.arange(1, m + 1, dtype=x.dtype, device=x.device) / m]))
    widths = torch.diff(levels, prepend=levels.new_zeros(1))
    mid = levels - widths / 2
    qx = px[(mid * n).long().clamp_max(n - 1)]
    qy = py[(mid * m).long().clamp_max(m - 1)]
    per_dir = (widths[:, None] * (qx - qy).abs() ** p).sum(0)
    return per_dir.mean().pow(1.0 / p).item()


def mmd(x: Tensor, y: Tensor, bandwidth: float | None = None) -> float:
    """Unbiased squared MMD with the Gaussian kernel ``exp(-|u - v|^2 / (2 h^2))``.

    ``h`` defaults to the median distance between distinct points of the pooled sample
    (its first 2000 points).
    """
    x = as_points(x, "x")
    y = as_points(y, "y", x.shape[1])
    if x.shape[0] < 2 or y.shape[0] < 2:
        raise ValueError("x and y must each hold at least two points")
    if bandwidth is None:
        h = _median_distance(torch.cat([x, y])[:2000])
    else:
        h = check_real(bandwidth, "bandwidth", low=0.0, low_open=True)
    n, m = x.shape[0], y.shape[0]
    kxx = _gaussian_kernel(x, x, h)
    kyy = _gaussian_kernel(y, y, h)
    # the unbiased form drops the diagonal terms k(x_i, x_i) (1 up to rounding of the distances)
    kxx = (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
    kyy = (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    return (kxx + kyy - 2 * _gaussian_kernel(x, y, h).mean()).item()


def _gaussian_kernel(a: Tensor, b: Tensor, h: float) -> Tensor:
    """``exp(-|u - v|^2 / (2 h^2))``, scaling the distances first so that a tiny ``h`` gives
    0 (not 0/0) off the diagonal; exact distances, so the diagonal is exactly 1."""
    dist = torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist") / h
    return torch.exp(-0.5 * dist * dist)


def _median_distance(pooled: Tensor) -> float:
    """The median distance over distinct pairs (the zero self-distances left out); if most
    pairs coincide, the median of the nonzero distances; 1 if all points are equal (then
    every bandwidth gives MMD 0)."""
    i, j = torch.triu_indices(pooled.shape[0], pooled.shape[0], offset=1)
    dist = torch.cdist(pooled, pooled, compute_mode="donot_use_mm_for_euclid_dist")[i, j]
    h = dist.median().item()
    if h == 0.0:
        positive = dist[dist > 0]
        h = positive.median().item() if positive.numel() else 1.0
    return h
