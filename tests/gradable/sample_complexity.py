"""Example answers for the gradable exercises of chapter "How many samples?"."""

import math

import torch

import lib
import lib.statistical


def _sandwich_constant_noise(phi, y, m):
    """A typical mistake: the classical least-squares variance k sigma^2 / m, which assumes the
    residuals have the same variance at every input (true only for constant noise and no misfit)."""
    n, k = phi.shape
    theta = torch.linalg.lstsq(phi, y[:, None]).solution[:, 0]
    return k * ((y - phi @ theta) ** 2).mean().item() / m


def _sandwich_via_reference(phi, y, m):
    return lib.statistical.sandwich_estimate(phi, y) / m


def _empirical_score_unscaled_means(x, t, train):
    """A typical mistake: the noised law centred at x_i instead of a_t x_i."""
    s2 = -math.expm1(-2.0 * t)
    logits = -((x[:, None, :] - train[None]) ** 2).sum(-1) / (2 * s2)
    r = torch.softmax(logits, dim=-1)
    return (r @ train - x) / s2


def _empirical_score_via_reference(x, t, train):
    return lib.statistical.EmpiricalScore(train)(x, t)


WRONG = {"ex-sc-5": _sandwich_constant_noise, "ex-sc-6": _empirical_score_unscaled_means}
CALLS_REFERENCE = {"ex-sc-5": _sandwich_via_reference, "ex-sc-6": _empirical_score_via_reference}
