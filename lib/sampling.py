"""Samplers: the reverse-time SDE and the probability-flow ODE of the OU process.

The forward process ``dx = -x dt + sqrt(2) dW`` is reversed by
``dy = (y + 2 grad log q_{T-tau}(y)) dtau + sqrt(2) dW`` (Song et al. 2021); its
probability-flow ODE is ``dy = (y + grad log q_{T-tau}(y)) dtau``. Both start from
``N(0, I) ~ q_T`` and stop at ``t = gamma`` (early stopping; Chen et al. 2023).
On a step of length ``h`` with the score frozen at the step's start,

* ``euler``:        ``y + h (y + c s) + sqrt(2h) xi``;
* ``exponential``:  ``e^h y + c (e^h - 1) s + sqrt(e^{2h} - 1) xi`` (the linear part
  integrated exactly, as in the exponential integrator of Chen et al. 2023),

with ``c = 2`` and noise for the SDE, ``c = 1`` and no noise for the ODE.


How many steps are enough: a score's Jacobian has no eigenvalue below ``-1/s_t^2`` (for any
data, ``grad^2 log q_t = -I/s_t^2 + a_t^2 Cov[x_0 | x_t] / s_t^4``), so in that direction one
step multiplies an error by ``|1 + (e^h - 1)(1 - c/s_t^2)|`` (``h`` for ``(e^h - 1)`` with Euler).
:func:`sample` warns when the product of these factors above 1 along the grid exceeds
:data:`MAX_AMPLIFICATION` and names the smallest ``n_steps`` that keeps it below: with the
defaults (``T = 10``, ``gamma = 1e-3``, log grid, SDE, exponential) that is 49 steps
(5 steps blow up by ~1e4, e.g. the first step ``e^h y - 2(e^h - 1) y`` at ``h = 8.4``).
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor
from tqdm.auto import tqdm

from ._checks import (
    ScoreFn,
    as_points,
    call_score,
    check_bool,
    check_callable,
    check_choice,
    check_device,
    check_float_dtype,
    check_generator,
    check_int,
)
from .forward import time_grid
from .threads import small_work

MAX_AMPLIFICATION = 10.0
MAX_SEARCH = 2**20  # the largest step count the warning's advice considers


@small_work
@torch.no_grad()
def sample(
    score_fn: ScoreFn,
    n: int,
    d: int,
    *,
    T: float = 10.0,
    gamma: float = 1e-3,
    n_steps: int = 500,
    process: str = "sde",
    method: str = "exponential",
    grid: str = "log",
    x_T: Tensor | None = None,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
    progress: bool = False,
) -> Tensor:
    """Draw ``n`` points in ``R^d`` by running the reverse process from ``T`` to ``gamma``.

    ``score_fn(x, t)`` is any score: a mixture's exact ``score`` or a trained network.
    ``x_T`` replaces the ``N(0, I)`` start (for paired comparisons of two scores).
    Runs without autograd: a network's parameters get no graph and no gradients.
    Warns (``RuntimeWarning``) when ``n_steps`` is too few for the grid to be stable and
    names a count that is enough (module docstring: 49 with the defaults); a score that
    returns the wrong shape or a non-finite value is an error naming ``score_fn``.
    """
    check_callable(score_fn, "score_fn")
    n, d = check_int(n, "n"), check_int(d, "d")
    process = check_choice(process, "process", ("sde", "ode"))
    method = check_choice(method, "method", ("euler", "exponential"))
    grid = check_choice(grid, "grid", ("log", "uniform"))
    check_float_dtype(dtype)
    device = check_device(device)
    check_bool(progress, "progress")
    check_generator(generator)
    times = time_grid(T, gamma, n_steps, kind=grid, dtype=dtype)
    _warn_if_unstable(T, gamma, n_steps, grid, method, process)
    if x_T is None:
        y = torch.randn(n, d, generator=generator, dtype=dtype, device=device)
    else:
        y = as_points(x_T, "x_T", d, dtype=dtype, device=device).clone()
        if y.shape[0] != n:
            raise ValueError(f"x_T must have n = {n} rows, got {y.shape[0]}")
    c = 2.0 if process == "sde" else 1.0
    for k in tqdm(range(n_steps), desc="sampling", disable=not progress, leave=False):
        t, h = times[k], times[k] - times[k + 1]
        s = call_score(score_fn, y, t).to(dtype)
        if method == "euler":
            y = y + h * (y + c * s)
            noise_sd = torch.sqrt(2.0 * h)
        else:
            grow = torch.expm1(h)
            y = y + grow * (y + c * s)
            noise_sd = torch.sqrt(torch.expm1(2.0 * h))
        if process == "sde":
            y = y + noise_sd * torch.randn(y.shape, generator=generator, dtype=dtype, device=y.device)
        if not torch.isfinite(y).all():  # say so here, not as a bad x inside score_fn
            raise ValueError(f"the sampler diverged between t = {float(t):.3g} and {float(times[k + 1]):.3g}: "
                             "increase n_steps or lower T (see the RuntimeWarning on step counts)")
    return y


def amplification(T: float, gamma: float, n_steps: int, *, grid: str = "log", method: str = "exponential",
                  process: str = "sde") -> float:
    """The worst-case growth of an error along the sampler's grid: the product over steps of
    ``max(1, |1 + (e^h - 1)(1 - c / s_t^2)|)`` (module docstring), ``h`` for Euler."""
    ts = time_grid(T, gamma, n_steps, kind=grid)
    h, s2 = ts[:-1] - ts[1:], -torch.expm1(-2.0 * ts[:-1])
    c = 2.0 if check_choice(process, "process", ("sde", "ode")) == "sde" else 1.0
    grow = torch.expm1(h) if check_choice(method, "method", ("euler", "exponential")) == "exponential" else h
    return (1.0 + grow * (1.0 - c / s2)).abs().clamp_min(1.0).log().sum().exp().item()


def _warn_if_unstable(T: float, gamma: float, n_steps: int, grid: str, method: str, process: str) -> None:
    grow = amplification(T, gamma, n_steps, grid=grid, method=method, process=process)
    if grow <= MAX_AMPLIFICATION:
        return
    def ok(n: int) -> bool:
        return amplification(T, gamma, n, grid=grid, method=method, process=process) <= MAX_AMPLIFICATION

    low, enough = n_steps, 2 * n_steps
    while enough <= MAX_SEARCH and not ok(enough):
        low, enough = enough, 2 * enough
    if enough > MAX_SEARCH:
        advice = f"no n_steps up to {MAX_SEARCH} is enough: lower T (the prior is reached by T ~ 10)"
    else:
        while enough - low > 1:  # bisect for the smallest sufficient count
            mid = (low + enough) // 2
            low, enough = (low, mid) if ok(mid) else (mid, enough)
        advice = f"use n_steps >= {enough}"
    warnings.warn(
        f"n_steps = {n_steps} is too few for this grid: the sampler can amplify errors by up to "
        f"{grow:.3g} (the stiff part of the score at small t, or steps of length h > log 3 at large t); "
        f"{advice}", RuntimeWarning, stacklevel=4,  # the caller of sample (past torch.no_grad's wrapper)
    )
