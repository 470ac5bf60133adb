"""Example answers for the gradable exercises of chapter "How many samples?"."""

import math

import torch

import lib
import lib.statistical


def _c_t_without_signal(v, d, t):
    """A typical mistake: C_t = d / s_t^2, the label variance with no information in x_t."""
    return d / -math.expm1(-2.0 * t)


def _c_t_via_reference(v, d, t):
    gauss = lib.GaussianMixture([1.0], torch.zeros(1, d, dtype=torch.float64), v)
    return lib.statistical.label_variance(gauss, torch.zeros(1, d, dtype=torch.float64), t).item()


def _empirical_score_unscaled_means(x, t, train):
    """A typical mistake: the noised law centred at x_i instead of a_t x_i."""
    s2 = -math.expm1(-2.0 * t)
    logits = -((x[:, None, :] - train[None]) ** 2).sum(-1) / (2 * s2)
    r = torch.softmax(logits, dim=-1)
    return (r @ train - x) / s2


def _empirical_score_via_reference(x, t, train):
    return lib.statistical.EmpiricalScore(train)(x, t)


WRONG = {"ex-sc-5": _c_t_without_signal, "ex-sc-6": _empirical_score_unscaled_means}
CALLS_REFERENCE = {"ex-sc-5": _c_t_via_reference, "ex-sc-6": _empirical_score_via_reference}
