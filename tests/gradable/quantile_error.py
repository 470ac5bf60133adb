"""Examples for the checks of the chapter "Quantile score error"."""

import torch

import lib
from lib.quantile import weighted_quantile_error


def _interpolated(errors, delta):
    """Typical mistake: torch.quantile interpolates between order statistics."""
    return torch.quantile(errors, 1 - delta)


def _unweighted(errors, weights, delta):
    """Typical mistake: every grid point counted with the same mass."""
    srt = torch.sort(errors).values
    n = errors.numel()
    return srt[max(n - int(delta * n), 1) - 1]


def _empirical_calls(errors, delta):
    return torch.tensor(lib.quantile_error(errors, delta).value, dtype=torch.float64)


def _weighted_calls(errors, weights, delta):
    return weighted_quantile_error(errors, weights, delta)


WRONG = {"ex-qe-5": _interpolated, "ex-qe-6": _unweighted}
CALLS_REFERENCE = {"ex-qe-5": _empirical_calls, "ex-qe-6": _weighted_calls}
