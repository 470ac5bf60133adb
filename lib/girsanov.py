"""What a score error costs the sampler: the Girsanov / KL chain-rule accounting.

The exponential-integrator step of :func:`lib.sampling.sample` (SDE form) from time ``t_k``
to ``t_{k+1} = t_k - h_k`` maps ``y`` to a Gaussian with mean ``e^h y + 2 (e^h - 1) s(y)``
and variance ``e^{2h} - 1``. Two such chains that differ only in the score, ``s`` against
``s + e``, have transition laws whose KL divergence is, by the Gaussian formula,

    ||2 (e^h - 1) e||^2 / (2 (e^{2h} - 1)) = 2 tanh(h / 2) ||e||^2  ~  h ||e||^2 ,

and the chain rule for KL sums these over the steps (Chen et al. 2023, Lemma on
Girsanov; Benton et al. 2024). By data processing the output laws obey

    KL(out(s + e) || out(s)) <= sum_k 2 tanh(h_k / 2) E ||e_{t_k}(y_k)||^2 ,

the expectation under the perturbed chain. :func:`step_weights` returns the weights
``2 tanh(h_k / 2)``; :func:`path_kl` the sum; :class:`InjectedError` an exact score plus an
error of size ``c / s_t^p`` (``p = 1`` is the allowance ``eps / s_t`` of Gupta et al. 2024).
With geometric steps ``h_k ~ kappa t_k`` and ``s_t^2 ~ 2 t`` at small ``t``, an error
``c / s_t`` costs ``~ c^2 kappa / 2`` per step, the same at every scale: over the
``~ log(1/gamma) / kappa`` steps below ``t = 1`` the total is ``~ c^2 log(1/gamma) / 2``.

Used in: chap-score-matching (why the allowance is eps / s_t).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ._checks import ScoreFn, as_tensor, check_callable, check_real


def step_weights(times: Tensor) -> Tensor:
    """``2 tanh(h_k / 2)`` for the steps of a decreasing time grid ``t_0 > ... > t_N``.

    The KL divergence of one exponential-integrator step per unit squared score error (module
    docstring); ``~ h_k`` for small steps. Shape ``(N,)``.
    """
    t = as_tensor(times, "times", dtype=torch.float64)
    if t.ndim != 1 or t.numel() < 2:
        raise ValueError(f"times must be a 1-D grid of at least 2 times, got shape {tuple(t.shape)}")
    h = t[:-1] - t[1:]
    if (h <= 0).any() or (t[-1] <= 0):
        raise ValueError("times must decrease strictly and stay > 0")
    return 2.0 * torch.tanh(h / 2.0)


def path_kl(times: Tensor, sq_error: Tensor) -> Tensor:
    """``sum_k 2 tanh(h_k / 2) e_k^2``: the KL chain-rule bound for errors with mean square
    ``e_k^2`` at the step times ``t_0, ..., t_{N-1}`` (last axis of ``sq_error``, length N)."""
    w = step_weights(times)
    e2 = as_tensor(sq_error, "sq_error", dtype=torch.float64)
    if e2.shape[-1] != w.numel():
        raise ValueError(f"sq_error must have {w.numel()} entries on its last axis (one per step), "
                         f"got {e2.shape[-1]}")
    if (e2 < 0).any():
        raise ValueError("sq_error must be >= 0")
    return (e2 * w).sum(-1)


class InjectedError:
    """The score ``base(x, t) + c * s_t^{-p}`` (a constant error in every coordinate) for
    ``t <= t_max`` (every ``t`` if ``t_max`` is None), and ``base`` alone above ``t_max``.

    ``c`` may be a tensor with one value per row of ``x`` (shape ``(n,)``), so that several
    error sizes run through one sampler call. :meth:`sq_size` gives ``||e_t||^2 = d c^2 / s_t^{2p}``.
    """

    def __init__(self, base: ScoreFn, c: float | Tensor, power: float, *, t_max: float | None = None) -> None:
        self.base = check_callable(base, "base")
        self.c = as_tensor(c, "c", dtype=torch.float64)
        if self.c.ndim > 1:
            raise ValueError(f"c must be a number or a 1-D tensor (one per row), got shape {tuple(self.c.shape)}")
        self.power = check_real(power, "power", low=0.0)
        self.t_max = math.inf if t_max is None else check_real(t_max, "t_max", low=0.0, low_open=True)

    def size(self, t: Tensor | float) -> Tensor:
        """``s_t^{-p}`` on ``t <= t_max``, 0 above (times as a tensor)."""
        tt = as_tensor(t, "t", dtype=torch.float64)
        s = torch.sqrt(-torch.expm1(-2.0 * tt))
        return torch.where(tt <= self.t_max, s.pow(-self.power), torch.zeros_like(s))

    def sq_size(self, t: Tensor | float, d: int = 1) -> Tensor:
        """``||e_t||^2 = d c^2 s_t^{-2p}``, shape ``c.shape + t.shape``."""
        return d * self.c.reshape(self.c.shape + (1,) * torch.as_tensor(t).ndim) ** 2 * self.size(t) ** 2

    def __call__(self, x: Tensor, t: Tensor | float) -> Tensor:
        out = self.base(x, t)
        c = self.c.to(out.dtype)
        size = self.size(t).to(out.dtype)
        if c.ndim == 1:
            if c.numel() != x.shape[0]:
                raise ValueError(f"c holds {c.numel()} sizes but x has {x.shape[0]} rows")
            c = c[:, None]
        if size.ndim == 1:
            size = size[:, None]
        return out + c * size
