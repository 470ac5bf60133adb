"""Checks of the gradable exercises of the chapter "The hardness of L2 score estimation".

* ``ex-hd-5``: the exact score ``g_1`` of the noised hardness pair member
  ``p_1 = (1 - eta) N(0, 1) + eta N(-R, 1)`` at time ``t`` (Gupta et al., 2024);
  reference :meth:`lib.mixtures.GaussianMixture.score` of :func:`lib.hardness_pair`, exact in
  float64, so the tolerance is rounding (``1e-9`` relative, ``1e-9`` absolute where the score
  crosses zero; values reach a few hundred at the crossing point ``x*`` when ``b`` is small).
* ``ex-hd-6``: the squared L2 distance ``E_{q_{1,t}}(g_1 - g_2)^2`` of the pair's two scores by
  quadrature; reference :func:`lib.hardness.score_l2_distance_1d`, whose trapezoid rule on twelve
  standard deviations (8001 nodes) is exact to ~1e-12 relative; an answer on a coarser grid of its own is
  within ``1e-6`` relative (the tolerance), while the approximation ``eta b^2`` is off by up to
  order one when ``b = a_t R`` is small (the inputs cover ``b`` from ~0.03 to 30).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..hardness import score_l2_distance_1d
from ..mixtures import hardness_pair
from .core import Check, allclose, log_uniform, register_check

_CHAPTER = "hardness_l2"


def _pair_params(gen: torch.Generator) -> dict[str, float]:
    eta = log_uniform(gen, 1e-4, 0.5)
    R = 0.5 + 29.5 * torch.rand((), generator=gen, dtype=torch.float64).item()
    return {"eta": eta, "R": R, "t": log_uniform(gen, 1e-3, 3.0)}


def _score_inputs(gen: torch.Generator) -> dict[str, Any]:
    kw = _pair_params(gen)
    b = kw["R"] * math.exp(-kw["t"])
    n = int(torch.randint(1, 40, (), generator=gen))
    bulk = 3 * torch.randn(n, generator=gen, dtype=torch.float64)
    near = -b + torch.randn(n, generator=gen, dtype=torch.float64)  # around the minority
    tails = torch.tensor([-b - 10.0, -b / 2 - math.log((1 - kw["eta"]) / kw["eta"]) / max(b, 1e-3), 12.0],
                         dtype=torch.float64)  # far left, the crossing point x*, far right
    kw["x"] = torch.cat([bulk, near, tails])
    return kw


def _score_reference(x: torch.Tensor, t: float, eta: float, R: float) -> torch.Tensor:
    p1, _ = hardness_pair(eta, R)
    return p1.score(x[:, None], t)[:, 0]


def _l2_reference(eta: float, R: float, t: float) -> torch.Tensor:
    p1, p2 = hardness_pair(eta, R)
    return score_l2_distance_1d(p1, p2, t)


register_check(Check(
    "ex-hd-5", _score_reference, _score_inputs, allclose(1e-9, 1e-9),
    forbidden=("lib.mixtures.GaussianMixture.score", "lib.mixtures.GaussianMixture.responsibilities",
               "lib.mixtures.GaussianMixture.posterior_mean"),
    chapter=_CHAPTER))

register_check(Check(
    "ex-hd-6", _l2_reference, _pair_params, allclose(1e-6, 0.0),
    forbidden=("lib.hardness.score_l2_distance_1d", "lib.hardness.hardness_theory",
               "lib.mixtures.GaussianMixture.score", "lib.mixtures.GaussianMixture.responsibilities",
               "lib.mixtures.GaussianMixture.posterior_mean"),
    chapter=_CHAPTER))
