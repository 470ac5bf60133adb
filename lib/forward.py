"""The forward (Ornstein–Uhlenbeck) process used throughout the book.

``x_t = a_t x_0 + s_t z`` with ``a_t = exp(-t)``, ``s_t^2 = 1 - exp(-2t)`` and
``z ~ N(0, I_d)``: the diffusion ``dx = -x dt + sqrt(2) dW`` of Gupta et al. (2024) and
Chen et al. (2023). As ``t`` grows ``q_t`` tends to ``N(0, I_d)``; samplers run the
reverse process from a large ``T`` down to an early-stopping time ``gamma``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ._checks import (
    as_points,
    as_times,
    check_choice,
    check_float_dtype,
    check_generator,
    check_int,
    check_real,
)


def alpha(t: Tensor | float) -> Tensor:
    """Signal scale ``a_t = exp(-t)``."""
    return torch.exp(-as_times(t, dtype=_dtype_of(t)))


def sigma2(t: Tensor | float) -> Tensor:
    """Noise variance ``s_t^2 = 1 - exp(-2t)``, computed as ``-expm1(-2t)`` so that it
    keeps full relative precision for small ``t`` (where ``s_t^2 ~ 2t``)."""
    return -torch.expm1(-2.0 * as_times(t, dtype=_dtype_of(t)))


def sigma(t: Tensor | float) -> Tensor:
    """Noise scale ``s_t = sqrt(1 - exp(-2t))``."""
    return torch.sqrt(sigma2(t))


def time_for_sigma(s: float) -> float:
    """The time ``t`` at which ``s_t = s``: ``t = -log(1 - s^2) / 2``, for ``0 < s < 1``.

    Early stopping is usually specified this way: stop where the noise scale is ``gamma``.
    """
    s = check_real(s, "s", low=0.0, high=1.0, low_open=True, high_open=True)
    t = -0.5 * math.log1p(-s * s)
    if t < _TINY:  # t ~ s^2 / 2 underflows: no float64 time has this noise scale
        raise ValueError(f"s must be >= {math.sqrt(2 * _TINY):.3g} (smaller s give t = s^2/2 below "
                         f"float64's normal range), got {s:g}")
    return t


_TINY = 2.2250738585072014e-308  # the smallest normal float64


def noise_like(x0: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Standard normal draws ``z ~ N(0, I)`` with the shape, dtype and device of ``x0``.

    The one place the DDPM/DSM objectives draw their noise (:func:`perturb`,
    :func:`lib.dsm.dsm_loss`, :mod:`lib.gmm_learning`), so that one generator state gives
    the same ``z`` everywhere.
    """
    if not isinstance(x0, Tensor) or not x0.is_floating_point():
        raise TypeError(f"x0 must be a floating-point tensor, got {type(x0).__name__}"
                        f"{' of dtype ' + str(x0.dtype) if isinstance(x0, Tensor) else ''}")
    check_generator(generator)
    return torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)


def noising_inputs(x0: object, t: object, z: object, generator: torch.Generator | None, *,
                   allow_zero: bool = True) -> tuple[Tensor, Tensor, Tensor]:
    """Checked ``(x0, t, z)`` for one noising step: points ``(n, d)``, one time or one per row,
    and the noise (drawn by :func:`noise_like` when ``z`` is None) in ``x0``'s dtype and device."""
    x0 = as_points(x0, "x0", dtype=None)
    t = as_times(t, n=x0.shape[0], allow_zero=allow_zero, dtype=x0.dtype, device=x0.device)
    check_generator(generator)
    if z is None:
        return x0, t, noise_like(x0, generator)
    z = as_points(z, "z", x0.shape[1], dtype=x0.dtype, device=x0.device)
    if z.shape != x0.shape:
        raise ValueError(f"z must have the shape of x0 {tuple(x0.shape)}, got {tuple(z.shape)}")
    return x0, t, z


def perturb(
    x0: Tensor,
    t: Tensor | float,
    *,
    generator: torch.Generator | None = None,
    z: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Run the forward process: return ``(x_t, z)`` with ``x_t = a_t x_0 + s_t z``.

    ``t`` is one time or one time per row of ``x0`` (shape ``(n,)``). ``z`` is drawn from
    ``N(0, I)`` unless given (the empirical objective of Gupta et al. fixes the draws).
    """
    x0, t, z = noising_inputs(x0, t, z, generator)
    a, s = torch.exp(-t), torch.sqrt(-torch.expm1(-2.0 * t))
    if t.ndim == 1:
        a, s = a[:, None], s[:, None]
    return a * x0 + s * z, z


def time_grid(
    T: float, gamma: float, n_steps: int, *, kind: str = "log", dtype: torch.dtype = torch.float64
) -> Tensor:
    """Decreasing sampler times ``T = t_0 > t_1 > ... > t_N = gamma``.

    ``kind="log"`` spaces the times uniformly in ``log t`` (small steps near ``gamma``,
    where the score changes fastest, as in the step schedules of Chen et al. 2023);
    ``kind="uniform"`` spaces them uniformly in ``t``.
    """
    T = check_real(T, "T", low=0.0, low_open=True)
    gamma = check_real(gamma, "gamma", low=0.0, high=T, low_open=True, high_open=True)
    n_steps = check_int(n_steps, "n_steps")
    check_choice(kind, "kind", ("log", "uniform"))
    check_float_dtype(dtype)
    if kind == "log":
        grid = torch.logspace(math.log10(T), math.log10(gamma), n_steps + 1, dtype=dtype)
    else:
        grid = torch.linspace(T, gamma, n_steps + 1, dtype=dtype)
    if not torch.isfinite(grid).all() or grid[-1] <= 0 or not (grid[:-1] > grid[1:]).all():
        raise ValueError(f"T = {T:g} and gamma = {gamma:g} give no strictly decreasing positive grid of "
                         f"{n_steps} steps in {dtype}")
    return grid


def _dtype_of(t: object) -> torch.dtype:
    return t.dtype if isinstance(t, Tensor) and t.is_floating_point() else torch.float64
