"""Checks of the gradable exercises of chap-gmm-learning (book/gmm_learning.md).

* ``ex-gm-5``: the closed-form gradient of the empirical DDPM objective ``L_t`` of the
  symmetric two-component student with respect to ``theta = mu_t``, on given data and noise
  (reference: :func:`lib.gmm_learning.ddpm_gradient`).
* ``ex-gm-6``: one EM step on the noised mixture ``q_t``, from given data and noise
  (reference: :func:`lib.gmm_learning.em_step` on the noised points).

Both answers are deterministic functions of their inputs (the noise ``z`` is an argument), so
the tolerance is float64 rounding: sums of ``m <= 60`` terms of size O(1-100).
"""

from __future__ import annotations

import math

import torch

from .. import gmm_learning as gmm
from ..forward import alpha, sigma
from .core import Check, allclose, log_uniform, register_check

CHAPTER = "gmm_learning"


def _problem(generator: torch.Generator) -> dict:
    """Data from ``0.5 N(mu*, I) + 0.5 N(-mu*, I)``, noise, a time and a student parameter ``theta``."""
    d = int(torch.randint(1, 7, (), generator=generator))
    m = int(torch.randint(3, 61, (), generator=generator))
    f64 = dict(dtype=torch.float64, generator=generator)
    mu_star = log_uniform(generator, 0.2, 4.0) * torch.randn(d, **f64)
    signs = torch.randint(0, 2, (m, 1), generator=generator).to(torch.float64) * 2 - 1
    x0 = signs * mu_star + torch.randn(m, d, **f64)
    z = torch.randn(m, d, **f64)
    t = log_uniform(generator, 0.02, 5.0)  # small t: z / s_t is large, a tail of the chapter's range
    theta = log_uniform(generator, 0.01, 3.0) * torch.randn(d, **f64)
    return {"theta": theta, "x0": x0, "z": z, "t": t}


AUTODIFF = tuple(f"torch.func.{name}" for name in ("grad", "grad_and_value", "vjp", "jvp", "jacrev", "jacfwd",
                                                  "hessian", "linearize")) + tuple(
    f"torch.autograd.functional.{name}" for name in ("jacobian", "vjp", "jvp", "vhp", "hvp", "hessian")) + (
    "torch.autograd.forward_ad.make_dual", "torch.autograd.forward_ad.unpack_dual", "torch.autograd.backward")


def _gradient_reference(theta: torch.Tensor, x0: torch.Tensor, z: torch.Tensor, t: float) -> torch.Tensor:
    mu = theta / math.exp(-t)  # ddpm_gradient takes mu, with theta = mu_t = exp(-t) mu
    return gmm.ddpm_gradient(mu, x0, t, z, parameter="mu_t")[1]


def _em_reference(theta: torch.Tensor, x0: torch.Tensor, z: torch.Tensor, t: float) -> torch.Tensor:
    return gmm.em_step(theta, float(alpha(t)) * x0 + float(sigma(t)) * z)


register_check(Check(
    "ex-gm-5", _gradient_reference, _problem, allclose(1e-8, 1e-9),
    # the exercise asks for the gradient without automatic differentiation: refuse autograd in
    # every form, reverse and forward mode, torch.autograd and torch.func alike
    forbidden=("lib.gmm_learning.ddpm_gradient", "lib.gmm_learning._loss_and_grad",
               "lib.gmm_learning.ddpm_loss", "lib.dsm.dsm_loss", "torch.autograd.grad",
               "torch.Tensor.backward", *AUTODIFF),
    chapter=CHAPTER))

register_check(Check(
    "ex-gm-6", _em_reference, _problem, allclose(1e-9, 1e-11),
    forbidden=("lib.gmm_learning.em_step", "lib.gmm_learning._em_step", "lib.gmm_learning.em"),
    chapter=CHAPTER))
