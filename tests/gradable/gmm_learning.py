"""Examples for the gmm_learning checks: a typical mistake, and an answer that calls the reference."""

import math

import torch

import lib.gmm_learning as gmm


def _noised(x0, z, t):
    a = math.exp(-t)
    return a * x0 + math.sqrt(1 - a * a) * z


def gradient_without_the_jacobian_term(theta, x0, z, t):
    """Forgets that s_theta depends on theta through tanh(theta . x) too: keeps only tanh(u) e."""
    s = math.sqrt(1 - math.exp(-2 * t))
    x = _noised(x0, z, t)
    tu = torch.tanh(x @ theta)
    e = tu[:, None] * theta - x + z / s
    return 2 * (tu[:, None] * e).mean(0)


def em_step_on_clean_data(theta, x0, z, t):
    """EM for q_0 instead of q_t: the noise is never added."""
    return (torch.tanh(x0 @ theta)[:, None] * x0).mean(0)


WRONG = {"ex-gm-5": gradient_without_the_jacobian_term, "ex-gm-6": em_step_on_clean_data}
CALLS_REFERENCE = {
    "ex-gm-5": lambda theta, x0, z, t: gmm.ddpm_gradient(theta / math.exp(-t), x0, t, z)[1],
    "ex-gm-6": lambda theta, x0, z, t: gmm.em_step(theta, _noised(x0, z, t)),
}
