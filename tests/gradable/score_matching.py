"""Wrong and reference-calling answers to the gradable exercises of book/score_matching.md."""

import math

import torch

import lib
from lib import statistical


def _dsm_minimum_with_data_variance(mu, v, t):
    """The typical slip: the score of q_0 instead of q_t, E|score|^2 = 1/v."""
    return 1 / (1 - torch.exp(-2 * t)) - 1 / v


def _dsm_minimum_by_quadrature(mu, v, t):
    q0 = lib.GaussianMixture([1.0], [mu], v)
    return torch.tensor([statistical.dsm_noise_variance_1d(q0, float(s)) for s in t], dtype=torch.float64)


def _denoiser_with_unshrunk_mean(x, mu, t):
    """Forgets that the noised components sit at +-a_t mu: tanh(mu . x) instead of tanh(a_t mu . x)."""
    a, s2 = math.exp(-t), -math.expm1(-2 * t)
    return a * x + s2 * torch.tanh(x @ mu)[:, None] * mu


def _denoiser_by_tweedie_on_lib_score(x, mu, t):
    return lib.symmetric_two(mu).posterior_mean(x, t)


WRONG = {"ex-sm-1": _dsm_minimum_with_data_variance, "ex-sm-2": _denoiser_with_unshrunk_mean}
CALLS_REFERENCE = {"ex-sm-1": _dsm_minimum_by_quadrature, "ex-sm-2": _denoiser_by_tweedie_on_lib_score}
