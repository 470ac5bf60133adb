"""Wrong and reference-calling answers to the transfer chapter's gradable exercises."""

from __future__ import annotations

import math

import torch

import lib
from lib.transfer import LinearInverseTask


def _posterior(y, weights, means, variances, G, noise_sd, marginal_noise=True):
    """Posterior weights, means and variances; ``marginal_noise=False`` is the typical slip."""
    w, v = y @ G, noise_sd**2
    post_var = 1.0 / (1.0 / variances + 1.0 / v)
    post_means = post_var * (means / variances + w[:, None, :] / v)
    marg = variances + v if marginal_noise else variances
    logits = torch.log(weights) - 0.5 * (((w[:, None, :] - means) ** 2) / marg + torch.log(marg)).sum(-1)
    return torch.softmax(logits, -1), post_means, post_var


def posterior_mean_without_observation_noise(y, weights, means, variances, G, noise_sd):
    """Weights the components by N(w; mu_l, S_l), forgetting that w carries the observation noise."""
    pi, mu, _ = _posterior(y, weights, means, variances, G, noise_sd, marginal_noise=False)
    return (pi[..., None] * mu).sum(1)


def score_with_frozen_weights(x, y, t, weights, means, variances, G, noise_sd):
    """Mixes the noised components' scores with the posterior weights pi'_l, not with the
    responsibilities at x_t (right for one component only)."""
    pi, mu, var = _posterior(y, weights, means, variances, G, noise_sd)
    a, s2 = math.exp(-t), -math.expm1(-2 * t)
    return (pi[..., None] * -(x[:, None, :] - a * mu) / (a * a * var + s2)).sum(1)


def _task(weights, means, variances, G, noise_sd):
    return LinearInverseTask(lib.GaussianMixture(weights, means, variances), G, noise_sd)


WRONG = {
    "ex-tr-4": posterior_mean_without_observation_noise,
    "ex-tr-5": score_with_frozen_weights,
}
CALLS_REFERENCE = {
    "ex-tr-4": lambda y, weights, means, variances, G, noise_sd:
        _task(weights, means, variances, G, noise_sd).posterior_mean(y),
    "ex-tr-5": lambda x, y, t, weights, means, variances, G, noise_sd:
        _task(weights, means, variances, G, noise_sd).score(x, y, t),
}
