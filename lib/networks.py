"""Time-conditioned ReLU networks for the score, with the sizes the bounds use.

The sample-complexity bounds of Gupta et al. (2024) are stated for a class of ReLU
networks with ``P`` parameters and depth ``D``; :class:`ScoreMLP` reports both. Its raw
output ``g(x, t)`` can be read three ways, all giving a score estimate ``f(x, t)``:

* ``"score"``: ``f = g``;
* ``"noise"``: ``g`` predicts the noise ``z`` (Ho et al. 2020), ``f = -g / s_t``, since
  ``E[z | x_t] = -s_t grad log q_t(x_t)``;
* ``"mean"``: ``g`` predicts ``E[x_0 | x_t]`` (the regression view of Han et al. 2024),
  ``f = (a_t g - x) / s_t^2`` by Tweedie's formula.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ._checks import (
    as_points,
    as_times,
    check_bool,
    check_choice,
    check_device,
    check_float_dtype,
    check_int,
    check_seed,
)

PARAMETERIZATIONS = ("score", "noise", "mean")


class ScoreMLP(nn.Module):
    """A ReLU MLP ``(x, t) -> f(x, t)`` in ``R^d``.

    Parameters
    ----------
    d : data dimension.
    width : units per hidden layer.
    hidden_layers : number of hidden layers; the depth is ``D = hidden_layers + 1``.
    parameterization : ``"score"``, ``"noise"`` or ``"mean"`` (module docstring).
    time_features : feed ``(a_t, s_t, log s_t^2)`` beside ``x``; switch off for a network
        trained at a single time.
    seed : seeds the initialisation, so equal seeds give equal networks.
    """

    def __init__(
        self,
        d: int,
        width: int = 64,
        hidden_layers: int = 2,
        parameterization: str = "noise",
        *,
        time_features: bool = True,
        seed: int | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        self.d = check_int(d, "d")
        width = check_int(width, "width")
        hidden_layers = check_int(hidden_layers, "hidden_layers")
        self.parameterization = check_choice(parameterization, "parameterization", PARAMETERIZATIONS)
        self.time_features = check_bool(time_features, "time_features")
        check_float_dtype(dtype)
        device = check_device(device)
        if seed is not None:
            seed = check_seed(seed)
        sizes = [self.d + (3 if self.time_features else 0)] + [width] * hidden_layers + [self.d]
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)
            layers: list[nn.Module] = []
            for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
                layers.append(nn.Linear(n_in, n_out, dtype=dtype, device=device))
                if i < len(sizes) - 2:
                    layers.append(nn.ReLU())
            self.net = nn.Sequential(*layers)

    @property
    def n_params(self) -> int:
        """``P``: the number of trainable parameters."""
        return sum(p.numel() for p in self.parameters())

    @property
    def depth(self) -> int:
        """``D``: the number of linear layers."""
        return sum(isinstance(m, nn.Linear) for m in self.net)

    def forward(self, x: Tensor, t: Tensor | float) -> Tensor:
        """The score estimate ``f(x, t)``; ``t`` is one time or one per row of ``x``."""
        ref = next(self.parameters())
        x = as_points(x, "x", self.d, dtype=ref.dtype, device=ref.device)
        t = as_times(t, n=x.shape[0], allow_zero=self.parameterization == "score",
                     dtype=ref.dtype, device=ref.device)
        t = t.expand(x.shape[0]) if t.ndim == 0 else t
        a = torch.exp(-t)[:, None]
        s2 = -torch.expm1(-2.0 * t)[:, None]
        inputs = torch.cat([x, time_features(a, s2)], dim=-1) if self.time_features else x
        return read_out(self.net(inputs), x, a, s2, self.parameterization)


def time_features(a: Tensor, s2: Tensor) -> Tensor:
    """The time inputs ``(a_t, s_t, log(s_t^2) / 4)`` stacked on the last axis: ``log s_t^2``
    resolves small times, ``a_t`` and ``s_t`` cover the rest of ``[0, inf)``."""
    for name, v in (("a", a), ("s2", s2)):
        if not isinstance(v, Tensor) or not v.is_floating_point():
            raise TypeError(f"{name} must be a floating tensor, got {type(v).__name__}")
    return torch.cat([a, torch.sqrt(s2), 0.25 * torch.log(s2.clamp_min(1e-12))], dim=-1)


# The "mean" read-out divides ``a_t g - x`` (a difference of O(1) numbers, each rounded to
# the dtype's eps) by ``s_t^2``: its relative error is about eps / s_t^2 for unit-scale data,
# so times with ``s_t^2 < MEAN_MIN_S2 eps`` (error above ~0.1%) are refused.
MEAN_MIN_S2 = 1e3


def mean_min_time(dtype: torch.dtype) -> float:
    """The smallest ``t`` the ``"mean"`` read-out accepts in ``dtype`` (6e-5 in float32)."""
    check_float_dtype(dtype)
    return -0.5 * math.log1p(-MEAN_MIN_S2 * torch.finfo(dtype).eps)


def read_out(g: Tensor, x: Tensor, a: Tensor, s2: Tensor, parameterization: str, *,
             check: bool = True) -> Tensor:
    """The score estimate from a raw output ``g``: ``g`` (``"score"``), ``-g / s_t``
    (``"noise"``) or ``(a_t g - x) / s_t^2`` (``"mean"``), as in the module docstring.

    The ``"mean"`` read-out refuses ``t`` below :func:`mean_min_time` of ``g``'s dtype, where
    rounding ``g`` alone would make the score wrong by more than ~0.1%. ``check=False`` skips
    that test (a data-dependent branch, which ``torch.func.vmap`` cannot trace)."""
    check_choice(parameterization, "parameterization", PARAMETERIZATIONS)
    if parameterization == "noise":
        return -g / torch.sqrt(s2)
    if parameterization == "mean":
        if check and (s2 < MEAN_MIN_S2 * torch.finfo(g.dtype).eps).any():
            raise ValueError(
                f"t must be >= {mean_min_time(g.dtype):.2g} for the 'mean' parameterization in {g.dtype} "
                "(below it the read-out (a_t g - x) / s_t^2 loses its digits to rounding); use "
                "float64 or the 'noise' parameterization"
            )
        return (a * g - x) / s2
    return g
