"""Checks of the gradable exercises of chapter "How many samples?" (book/sample_complexity.md).

* ``ex-sc-5``: the DSM minimum ``C_t`` (the regression's label-noise variance) for Gaussian
  data ``N(mu, v I_d)``, a closed form; compared in float64 with the mean of
  :func:`lib.statistical.label_variance` (second-order Tweedie, exact for one Gaussian).
* ``ex-sc-6``: the empirical optimal score, the score of ``(1/m) sum_i N(a_t x_i, s_t^2 I)``;
  compared with :class:`lib.statistical.EmpiricalScore` at points near the training set and in
  the tails, where a naive (non log-sum-exp) softmax underflows.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..mixtures import GaussianMixture
from ..statistical import EmpiricalScore, label_variance
from .core import Check, allclose, log_uniform, register_check

CHAPTER = "sample_complexity"
T_RANGE = (1e-3, 5.0)  # the book's times, from the early-stopping time to the prior


def _randint(gen: torch.Generator, lo: int, hi: int) -> int:
    return int(torch.randint(lo, hi + 1, (), generator=gen).item())


# ---------------------------------------------------------------- ex-sc-5: C_t of a Gaussian
def _gaussian_c_t(v: float, d: int, t: float) -> torch.Tensor:
    """Mean label variance under ``q_t`` (constant in ``x`` for one Gaussian, so 4 points
    suffice), as a float64 scalar tensor (``allclose`` would read a Python float as float32)."""
    gauss = GaussianMixture([1.0], torch.zeros(1, d, dtype=torch.float64), v)
    x = gauss.sample(4, t=t, generator=torch.Generator().manual_seed(0))
    return label_variance(gauss, x, t).mean()


def _gaussian_inputs(gen: torch.Generator) -> dict[str, Any]:
    return {"v": log_uniform(gen, 0.01, 10.0), "d": _randint(gen, 1, 6), "t": log_uniform(gen, *T_RANGE)}


register_check(Check(
    "ex-sc-5", _gaussian_c_t, _gaussian_inputs, allclose(1e-9),
    forbidden=("lib.statistical.label_variance", "lib.statistical.dsm_noise_variance_1d",
               "lib.statistical.score_second_moment_1d", "lib.statistical.dsm_excess_paired"),
    chapter=CHAPTER))


# ---------------------------------------------------------------- ex-sc-6: empirical optimal score
def _empirical_reference(x: torch.Tensor, t: float, train: torch.Tensor) -> torch.Tensor:
    return EmpiricalScore(train)(x, t)


def _empirical_inputs(gen: torch.Generator) -> dict[str, Any]:
    d, m, t = _randint(gen, 1, 3), _randint(gen, 1, 40), log_uniform(gen, *T_RANGE)
    kw = dict(generator=gen, dtype=torch.float64)
    train = 2.0 * torch.randn(m, d, **kw)
    a, s = math.exp(-t), math.sqrt(-math.expm1(-2.0 * t))
    near = a * train[torch.randint(0, m, (40,), generator=gen)] + s * torch.randn(40, d, **kw)
    tails = torch.randn(10, d, **kw) * 20.0  # far from every training point: log-sum-exp needed
    return {"x": torch.cat([near, tails]), "t": t, "train": train}


def _empirical_close(expected: Any, returned: Any, kw: dict[str, Any]) -> bool:
    # float64 rounding of softmax weights and of a_t x_i - x, divided by s_t^2
    s2 = -math.expm1(-2.0 * kw["t"])
    scale = 1.0 + kw["x"].abs().max().item() + kw["train"].abs().max().item()
    return allclose(1e-8, 1e-10 * scale / s2)(expected, returned, kw)


register_check(Check(
    "ex-sc-6", _empirical_reference, _empirical_inputs, _empirical_close,
    # a mixture with near-point components at the training points would give the answer
    # through its posterior mean or responsibilities: those are the reference too
    forbidden=("lib.statistical.EmpiricalScore.__call__", "lib.statistical.EmpiricalScore._chunk",
               "lib.mixtures.GaussianMixture.score", "lib.mixtures.GaussianMixture.posterior_mean",
               "lib.mixtures.GaussianMixture.responsibilities", "lib.mixtures.GaussianMixture.log_prob"),
    chapter=CHAPTER))
