"""Examples for the checks of the chapter "The hardness of L2 score estimation"."""

import math

import torch

import lib
from lib.hardness import score_l2_distance_1d


def _score_undamped(x, t, eta, R):
    """Typical mistake: the minority stays at -R instead of moving in to -a_t R."""
    lam = math.log((1 - eta) / eta)
    return -x - R * torch.sigmoid(-(R * x + R * R / 2) - lam)


def _l2_approx(eta, R, t):
    """Typical mistake: the leading term eta b^2 instead of the integral."""
    return torch.tensor(eta * (R * math.exp(-t)) ** 2, dtype=torch.float64)


def _score_calls(x, t, eta, R):
    p1, _ = lib.hardness_pair(eta, R)
    return p1.score(x[:, None], t)[:, 0]


def _l2_calls(eta, R, t):
    p1, p2 = lib.hardness_pair(eta, R)
    return score_l2_distance_1d(p1, p2, t)


WRONG = {"ex-hd-5": _score_undamped, "ex-hd-6": _l2_approx}
CALLS_REFERENCE = {"ex-hd-5": _score_calls, "ex-hd-6": _l2_calls}
