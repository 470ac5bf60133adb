"""Checks of the gradable exercises of the chapter "Quantile score error".

* ``ex-qe-5``: the empirical quantile error, the order statistic ``e_(k)`` with
  ``k = n - floor(delta n)`` of ``n`` errors (the empirical ``D^delta`` of Gupta et al., 2024);
  reference :func:`lib.quantile_error`. An order statistic is one of the inputs, so the answer
  must match exactly (no tolerance); ``delta n`` is kept away from integers so that the
  floor is not a matter of rounding.
* ``ex-qe-6``: ``D^delta = inf{e : sum_i w_i 1{e_i > e} <= delta}`` for errors ``e_i`` with
  quadrature masses ``w_i`` (the exact quantile error of a score on a grid); reference
  :func:`lib.quantile.weighted_quantile_error`, again one of the inputs, matched exactly;
  cumulative masses are kept away from ``delta`` by more than rounding.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..quantile import quantile_error, weighted_quantile_error
from .core import Check, allclose, log_uniform, register_check

_CHAPTER = "quantile_error"
_FORBIDDEN = ("lib.quantile.quantile_error", "lib.quantile.quantile_band",
              "lib.quantile.weighted_quantile_error", "lib.quantile.score_quantile_error",
              "lib.hardness.score_quantile_error_1d")


def _errors(gen: torch.Generator, n: int) -> torch.Tensor:
    """Continuous errors: a bulk of small ones and a few huge ones (an error on a bad set)."""
    e = torch.rand(n, generator=gen, dtype=torch.float64).pow(2)
    big = torch.rand(n, generator=gen, dtype=torch.float64) < 0.05
    return torch.where(big, 1e3 * (1 + torch.rand(n, generator=gen, dtype=torch.float64)), e)


def _empirical_inputs(gen: torch.Generator) -> dict[str, Any]:
    n = int(torch.randint(2, 3000, (), generator=gen))
    while True:
        delta = log_uniform(gen, 1e-3, 0.6)
        frac = delta * n - math.floor(delta * n)
        if 1e-6 < frac < 1 - 1e-6:
            return {"errors": _errors(gen, n), "delta": delta}


def _weighted_inputs(gen: torch.Generator) -> dict[str, Any]:
    n = int(torch.randint(1, 2000, (), generator=gen))
    e = _errors(gen, n)
    w = torch.rand(n, generator=gen, dtype=torch.float64) ** 3  # uneven masses, like a density on a grid
    w = w / w.sum()
    tail = w[torch.argsort(e, descending=True)].cumsum(0)
    while True:
        delta = log_uniform(gen, 1e-3, 0.6)
        if (tail - delta).abs().min() > 1e-9:
            return {"errors": e, "weights": w, "delta": delta}


def _empirical_reference(errors: torch.Tensor, delta: float) -> torch.Tensor:
    return torch.tensor(quantile_error(errors, delta).value, dtype=torch.float64)


def _weighted_reference(errors: torch.Tensor, weights: torch.Tensor, delta: float) -> torch.Tensor:
    return weighted_quantile_error(errors, weights, delta)


register_check(Check("ex-qe-5", _empirical_reference, _empirical_inputs, allclose(0.0, 0.0),
                     forbidden=_FORBIDDEN, chapter=_CHAPTER))
register_check(Check("ex-qe-6", _weighted_reference, _weighted_inputs, allclose(0.0, 0.0),
                     forbidden=_FORBIDDEN, chapter=_CHAPTER))
