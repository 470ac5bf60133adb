"""Checks of the NTK chapter's gradable exercises (book/ntk.md).

* ``ex-ntk-4``: the infinite-width NTK of the two-layer ReLU network with both layers trained,
  ``(u . u') (pi - theta) / (2 pi) + |u| |u'| (sin theta + (pi - theta) cos theta) / (2 pi)``
  (Du et al. 2019's ``H^infinity`` plus the output layer's share; half the arc-cosine kernels
  of degrees 0 and 1 of Cho and Saul 2009); reference ``lib.ntk.relu_ntk(u, u2, trained="both")``.
* ``ex-ntk-5``: kernel gradient descent from ``f_0 = 0`` after ``k`` steps at the training
  points, ``f_k(X) = (I - (I - eta K / m)^k) y``; reference :class:`lib.ntk.KernelGD`.

Both are float64 closed forms, so the tolerances are round-off. The angle ``theta`` is an
arccos, whose derivative is unbounded at ``cos theta = +-1``: a cosine off by a few ulps
(~5e-16, and how it is rounded depends on how an answer forms it: ``dot / (|u| |u'|)``,
normalised rows, ``sqrt`` of a product of squared norms) moves ``theta`` by up to
``sqrt(2 * 5e-16) ~ 3e-8``. The first term changes by ``|u . u'| / (2 pi)`` times that, about
``5e-9 |u| |u'|``; the second term's derivative ``-(pi - theta) sin theta`` vanishes at both
ends. At ``theta = pi`` the kernel is 0, so that error is absolute (the reference itself
returns about ``-5e-9 |u| |u'|`` there): the tolerance is ``1e-7 |expected| + 1e-7 |u| |u'|``,
20 times that round-off, while forgetting the output layer's share is off by
``|u| |u'| (sin theta + (pi - theta) cos theta) / (2 pi)``, of order ``|u| |u'|`` away from
``theta = pi``. Kernel GD by explicit iteration and by an eigendecomposition agree to
~1e-13 after a thousand steps (each step is a contraction); ``rtol = 1e-8``.
"""

from __future__ import annotations

from typing import Any

import torch

from .. import ntk
from .core import Check, allclose, log_uniform, register_check

DT = torch.float64


def _int(gen: torch.Generator, low: int, high: int) -> int:
    """One integer uniform on ``[low, high]``."""
    return int(torch.randint(low, high + 1, (), generator=gen))


# --------------------------------------------------------------------- ex-ntk-4: the analytic NTK
def _ntk_inputs(gen: torch.Generator) -> dict[str, Any]:
    """Inputs ``u = (x, t, 1)`` as in the chapter (``d`` from 1 to 3, ``t`` in [0.01, 5]);
    ``u2`` repeats a row of ``u`` (theta = 0) and holds ``-u_0`` (theta = pi), where an
    arccos of a cosine rounded past +-1 gives NaN unless it is clamped."""
    d, n, n2 = _int(gen, 1, 3), _int(gen, 1, 8), _int(gen, 1, 6)
    scale = log_uniform(gen, 0.1, 10.0)

    def rows(k: int) -> torch.Tensor:
        x = scale * torch.randn(k, d, generator=gen, dtype=DT)
        t = torch.tensor([log_uniform(gen, 0.01, 5.0) for _ in range(k)], dtype=DT)
        return ntk.ntk_inputs(x, t)

    u = rows(n)
    u2 = torch.cat([rows(n2), u[:1], -u[:1], 3.0 * u[-1:]])
    return {"u": u, "u2": u2}


def _ntk_reference(u: torch.Tensor, u2: torch.Tensor) -> torch.Tensor:
    return ntk.relu_ntk(u, u2, trained="both")


def _ntk_close(expected: Any, returned: Any, kw: dict[str, Any]) -> bool:
    """Finite, same shape, ``|returned - expected| <= 1e-7 |expected| + 1e-7 |u| |u'|``
    (the absolute floor: near ``theta = pi`` the arccos's round-off, ~5e-9 |u| |u'| in the
    reference itself, is not relative to the kernel's value, which is 0 there)."""
    if not isinstance(returned, torch.Tensor) or returned.shape != expected.shape:
        return False
    returned = returned.to(DT)
    floor = 1e-7 * kw["u"].norm(dim=1)[:, None] * kw["u2"].norm(dim=1)[None, :]
    diff = (returned - expected).abs()
    return bool(torch.isfinite(returned).all() and (diff <= floor + 1e-7 * expected.abs()).all())


register_check(Check("ex-ntk-4", _ntk_reference, _ntk_inputs, _ntk_close,
                     forbidden=("lib.ntk.relu_ntk", "lib.ntk.relu_ntk_variance"), chapter="ntk"))


# --------------------------------------------------------------------- ex-ntk-5: kernel GD after k steps
def _gd_inputs(gen: torch.Generator) -> dict[str, Any]:
    """The chapter's kernel on ``m`` noisy pairs (``m`` from 2 to 40, ``d`` from 1 to 3), a
    step ``eta = c / lambda_max(K / m)`` with ``c`` in [0.1, 1] (``c = 1`` is the chapter's),
    and ``k`` from 0 to 2000 (0 and 1 among the tail points)."""
    m, d = _int(gen, 2, 40), _int(gen, 1, 3)
    x = 2 * torch.randn(m, 1, generator=gen, dtype=DT)
    t = log_uniform(gen, 0.05, 2.0)
    K = ntk.relu_ntk(ntk.ntk_inputs(x, t))
    y = torch.randn(m, d, generator=gen, dtype=DT) + x
    top = float(torch.linalg.eigvalsh(K / m)[-1])
    c = 1.0 if torch.rand((), generator=gen) < 0.3 else 0.1 + 0.9 * float(torch.rand((), generator=gen, dtype=DT))
    tail = float(torch.rand((), generator=gen))
    k = 0 if tail < 0.1 else 1 if tail < 0.2 else int(round(log_uniform(gen, 1.0, 2000.0)))
    return {"K": K, "y": y, "lr": c / top * (1 - 1e-12), "k": k}


def _gd_reference(K: torch.Tensor, y: torch.Tensor, lr: float, k: int) -> torch.Tensor:
    return ntk.KernelGD(K, y, lr).predict([k])[0]


def _gd_close(expected: Any, returned: Any, kw: dict[str, Any]) -> bool:
    scale = float(kw["y"].abs().max())
    return allclose(1e-8, 1e-10 * scale)(expected, returned, kw)


register_check(Check("ex-ntk-5", _gd_reference, _gd_inputs, _gd_close,
                     # the methods first: once the class itself is guarded they cannot be resolved
                     forbidden=("lib.ntk.KernelGD.predict", "lib.ntk.KernelGD.shrinkage", "lib.ntk.KernelGD",
                                "lib.ntk.interpolant"),
                     chapter="ntk"))
