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
"""

from __future__ import annotations

import torch
from torch import Tensor
from tqdm.auto import tqdm

from ._checks import ScoreFn, as_points, check_callable, check_choice, check_finite_output, check_generator, check_int
from .forward import time_grid
from .threads import small_work


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
    """
    check_callable(score_fn, "score_fn")
    n, d = check_int(n, "n"), check_int(d, "d")
    process = check_choice(process, "process", ("sde", "ode"))
    method = check_choice(method, "method", ("euler", "exponential"))
    check_generator(generator)
    times = time_grid(T, gamma, n_steps, kind=grid, dtype=dtype)
    if x_T is None:
        y = torch.randn(n, d, generator=generator, dtype=dtype, device=device)
    else:
        y = as_points(x_T, "x_T", d, dtype=dtype, device=device).clone()
        if y.shape[0] != n:
            raise ValueError(f"x_T must have n = {n} rows, got {y.shape[0]}")
    c = 2.0 if process == "sde" else 1.0
    for k in tqdm(range(n_steps), desc="sampling", disable=not progress, leave=False):
        t, h = times[k], times[k] - times[k + 1]
        s = score_fn(y, t).to(dtype)
        if method == "euler":
            y = y + h * (y + c * s)
            noise_sd = torch.sqrt(2.0 * h)
        else:
            grow = torch.expm1(h)
            y = y + grow * (y + c * s)
            noise_sd = torch.sqrt(torch.expm1(2.0 * h))
        if process == "sde":
            y = y + noise_sd * torch.randn(y.shape, generator=generator, dtype=dtype, device=y.device)
    return check_finite_output(y, "the sampler's output")
