"""The NTK chapter's gradable exercises: a typical mistake, and an answer that calls lib's reference."""

from __future__ import annotations

import math

import torch

from lib import ntk


def _first_layer_only(u, u2):
    """Forgets the output layer's share: only (u . u') (pi - theta) / (2 pi)."""
    dot = u @ u2.T
    cos = (dot / (u.norm(dim=1)[:, None] * u2.norm(dim=1)[None, :])).clamp(-1, 1)
    return dot * (math.pi - torch.arccos(cos)) / (2 * math.pi)


def _gd_one_step_short(K, y, lr, k):
    """k - 1 steps instead of k (the loop started counting at 1)."""
    m = K.shape[0]
    f = torch.zeros_like(y)
    for _ in range(max(k - 1, 0)):
        f = f - lr / m * K @ (f - y)
    return f


WRONG = {
    "ex-ntk-4": _first_layer_only,
    "ex-ntk-5": _gd_one_step_short,
}

CALLS_REFERENCE = {
    "ex-ntk-4": lambda u, u2: ntk.relu_ntk(u, u2, trained="both"),
    "ex-ntk-5": lambda K, y, lr, k: ntk.KernelGD(K, y, lr).predict([k])[0],
}
