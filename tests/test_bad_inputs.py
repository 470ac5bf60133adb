"""Every bad input is a clear error, and nothing returns NaN or a wrong value silently.

``CASES`` is a table of bad calls across the public API of :mod:`lib`: each must raise
``ValueError`` or ``TypeError`` (as listed) with a message that names the bad argument
(the regex). A call that returns, or raises anything else, fails. The coverage test checks
that every public function and class of every module of ``lib`` has at least one case,
except those that take no arguments and the plain result records.

The tests after the table are the value checks: cases that used to return NaN, a wrong
number or no warning, each checked against a value known in closed form.
"""

from __future__ import annotations

import importlib
import inspect
import math
import warnings

import numpy as np
import pytest
import torch

import lib
from lib import batched, bounds, forward, gmm_learning, hardness, networks, optim, quantile, sampling, sweeps

NAN = float("nan")
G = torch.Generator().manual_seed(0)
M1, M2 = lib.demo_1d(), lib.demo_2d()
X1 = torch.randn(5, 1, dtype=torch.float64, generator=G)
X2 = torch.randn(4, 2, dtype=torch.float64, generator=G)
NET = lib.ScoreMLP(2, 8, seed=0)
BNET = batched.BatchedScoreMLP(2, 2, 8, seeds=[0, 1])
BX = torch.randn(2, 5, 2, generator=G)
MU = torch.tensor([[1.0, 0.0], [-1.0, 0.5]], dtype=torch.float64)


def exact(x, t):
    return M2.score(x, t)


def wrong_shape(x, t):
    return x[:, :1]


def nan_score(x, t):
    return x * NAN


def not_a_tensor(x, t):
    return 3.0


def draw(**kw):
    return None


class OneColumn(torch.nn.Module):
    """A model whose output has one column whatever d is."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(2, 1, dtype=torch.float64)

    def forward(self, x, t):
        return self.lin(x)


CASES: list[tuple[str, object, type, str]] = []


def bad(target: object, call, exc: type, match: str) -> None:
    """One row: ``call()`` must raise ``exc`` with a message matching ``match``."""
    CASES.append((target if isinstance(target, str) else target.__qualname__, call, exc, match))


# ---------------------------------------------------------------- lib.forward
F = lib
bad(F.alpha, lambda: F.alpha(-1.0), ValueError, "t must be >= 0")
bad(F.alpha, lambda: F.alpha("a"), TypeError, "t must be a tensor")
bad(F.alpha, lambda: F.alpha(NAN), ValueError, "t must be finite")
bad(F.sigma2, lambda: F.sigma2(torch.ones(2, 2)), ValueError, "t must be a scalar")
bad(F.sigma2, lambda: F.sigma2([["a"]]), TypeError, "t must hold real numbers")
bad(F.sigma, lambda: F.sigma(-0.5), ValueError, "t must be >= 0")
bad(F.sigma, lambda: F.sigma(torch.tensor([1 + 1j])), TypeError, "t must hold real numbers")
bad(F.time_for_sigma, lambda: F.time_for_sigma(0.0), ValueError, "s must lie in")
bad(F.time_for_sigma, lambda: F.time_for_sigma(1.0), ValueError, "s must lie in")
bad(F.time_for_sigma, lambda: F.time_for_sigma(1e-200), ValueError, "s must be >= ")
bad(F.time_for_sigma, lambda: F.time_for_sigma("0.5"), TypeError, "s must be a real number")
bad(F.time_for_sigma, lambda: F.time_for_sigma(NAN), ValueError, "s must be finite")
bad(F.perturb, lambda: F.perturb(X2, -1.0), ValueError, "t must be >= 0")
bad(F.perturb, lambda: F.perturb(X2, 0.5, z=torch.zeros(3, 2)), ValueError, "z must have the shape of x0")
bad(F.perturb, lambda: F.perturb(X2, 0.5, z=torch.zeros(4, 3)), ValueError, "z must have d = 2")
bad(F.perturb, lambda: F.perturb(X2, 0.5, z=X2 * NAN), ValueError, "z must be finite")
bad(F.perturb, lambda: F.perturb(X2, 0.5, generator="g"), TypeError, "generator must be a torch.Generator")
bad(F.perturb, lambda: F.perturb(torch.zeros(0, 2), 0.5), ValueError, "x0 must hold at least one point")
bad(F.perturb, lambda: F.perturb(torch.zeros(2), 0.5), ValueError, r"x0 must have shape \(n, d\)")
bad(F.perturb, lambda: F.perturb(X2, torch.ones(3)), ValueError, r"t must be a scalar or shape \(4,\)")
bad(F.perturb, lambda: F.perturb([["a", "b"]], 0.5), TypeError, "x0 must hold real numbers")
bad(forward.noising_inputs, lambda: forward.noising_inputs(X2, 0.0, None, None, allow_zero=False), ValueError,
    "t must be > 0")
bad(forward.noising_inputs, lambda: forward.noising_inputs(X2, 0.5, torch.zeros(3, 2), None), ValueError,
    "z must have the shape of x0")
bad(F.time_grid, lambda: F.time_grid(10.0, 1e-3, 5, dtype=torch.int64), TypeError, "dtype must be a floating")
bad(F.time_grid, lambda: F.time_grid(-1.0, 1e-3, 5), ValueError, "T must lie in")
bad(F.time_grid, lambda: F.time_grid(1.0, 2.0, 5), ValueError, "gamma must lie in")
bad(F.time_grid, lambda: F.time_grid(10.0, 1e-3, 0), ValueError, "n_steps must be >= 1")
bad(F.time_grid, lambda: F.time_grid(10.0, 1e-3, 2.5), TypeError, "n_steps must be an integer")
bad(F.time_grid, lambda: F.time_grid(10.0, 1e-3, 5, kind="cosine"), ValueError, "kind must be one of")
bad(F.time_grid, lambda: F.time_grid(math.inf, 1e-3, 5), ValueError, "T must be finite")
bad(F.time_grid, lambda: F.time_grid(1.0, 1.0 - 1e-12, 10, dtype=torch.float32), ValueError, "T = 1 and gamma")

# ---------------------------------------------------------------- lib.mixtures
GM = lib.GaussianMixture
bad(GM, lambda: GM(["a", "b"], [0.0, 1.0]), TypeError, "weights must hold real numbers")
bad(GM, lambda: GM(np.array(["a", "b"]), [0.0, 1.0]), TypeError, "weights must hold real numbers")
bad(GM, lambda: GM([0.5, 0.5], np.array([None, 1.0], dtype=object)), TypeError, "means must hold real numbers")
bad(GM, lambda: GM([True, False], [0.0, 1.0]), ValueError, "weights must all be > 0")
bad(GM, lambda: GM([0.5, 0.5], [0.0, 1.0], dtype=torch.int64), TypeError, "dtype must be a floating")
bad(GM, lambda: GM([0.5, 0.6], [0.0, 1.0]), ValueError, "weights must sum to 1")
bad(GM, lambda: GM([1.2, -0.2], [0.0, 1.0]), ValueError, "weights must all be > 0")
bad(GM, lambda: GM([], []), ValueError, r"weights must have shape \(K,\)")
bad(GM, lambda: GM([[0.5, 0.5]], [0.0, 1.0]), ValueError, r"weights must have shape \(K,\)")
bad(GM, lambda: GM([0.5, 0.5], [0.0, 1.0, 2.0]), ValueError, r"means must have shape \(K, d\)")
bad(GM, lambda: GM([0.5, 0.5], [["a"], ["b"]]), TypeError, "means must hold real numbers")
bad(GM, lambda: GM([0.5, 0.5], [0.0, 1.0], [1.0, -1.0]), ValueError, "covariances must be positive definite")
bad(GM, lambda: GM([0.5, 0.5], [0.0, 1.0], [1.0, 1.0, 1.0]), ValueError, "covariances of shape")
bad(GM, lambda: GM([0.5, 0.5], [[0.0, 0.0], [1.0, 1.0]], [[[1.0, 0.5], [0.0, 1.0]]] * 2), ValueError,
    "covariances must be symmetric")
bad(GM, lambda: GM([0.5, 0.5], [[0.0, 0.0], [1.0, 1.0]], torch.ones(2, 3)), ValueError,
    "diagonal covariances must have shape")
bad(GM, lambda: GM([0.5, 0.5], [0.0, 1.0], "big"), TypeError, "covariances must be a tensor")
bad(GM, lambda: GM([1.0], [1e200]), ValueError, "means and covariances are out of range")
bad(GM, lambda: GM([1.0], [1e10], 1e-300), ValueError, "means and covariances are out of range")
bad(GM, lambda: GM([0.5, 0.5], [NAN, 0.0]), ValueError, "means must be finite")
bad(GM, lambda: GM([1.0], torch.zeros(1, 0)), ValueError, r"means must have shape \(K, d\).*d >= 1")
bad(GM.score, lambda: M1.score(X2, 0.1), ValueError, "x must have d = 1 columns")
bad(GM.score, lambda: M1.score(X1, -1.0), ValueError, "t must be >= 0")
# finite but far: the squared distances over the variances would overflow to a NaN score
FAR = torch.full((5, 1), 1e200, dtype=torch.float64)
bad(GM.score, lambda: M1.score(FAR, 0.1), ValueError, "x is out of range")
bad(GM.score, lambda: M1.score(FAR, torch.full((5,), 0.1)), ValueError, "x is out of range")
bad(GM.posterior_mean, lambda: M2.posterior_mean(torch.tensor([[1e308, 0.0]], dtype=torch.float64), 0.5),
    ValueError, "x is out of range")
bad(GM.score, lambda: M1.score(X1, torch.ones(3)), ValueError, r"t must be a scalar or shape \(5,\)")
bad(GM.log_prob, lambda: M1.log_prob("x"), TypeError, "x must be a tensor")
bad(GM.log_prob, lambda: M1.log_prob(X1 * NAN), ValueError, "x must be finite")
bad(GM.sample, lambda: M1.sample(0), ValueError, "n must be >= 1")
bad(GM.sample, lambda: M1.sample(10, t=-1.0), ValueError, "t must lie in")
bad(GM.sample, lambda: M1.sample(10, generator=3), TypeError, "generator must be a torch.Generator")
bad(GM.sample, lambda: M1.sample(2.5), TypeError, "n must be an integer")
bad(GM.cdf, lambda: M2.cdf(X1), ValueError, "one-dimensional mixture")
bad(GM.cdf, lambda: M1.cdf(X1, t=-1.0), ValueError, "t must lie in")
bad(GM.noised, lambda: M1.noised(-1.0), ValueError, "t must lie in")
bad(GM.posterior_mean, lambda: M1.posterior_mean(X1, NAN), ValueError, "t must be finite")
bad(GM.responsibilities, lambda: M1.responsibilities(torch.zeros(0, 1)), ValueError, "x must hold at least one")
bad(GM.to, lambda: M1.to(dtype=torch.int64), TypeError, "dtype must be a floating")
bad(GM.to, lambda: M1.to(dtype=[]), TypeError, "dtype must be a floating")
bad(GM.to, lambda: M1.to(device="nope"), ValueError, "device must name a torch device")
bad(GM.sample, lambda: M1.sample(3, return_labels="yes"), TypeError, "return_labels must be True or False")
bad(lib.symmetric_two, lambda: lib.symmetric_two([]), ValueError, r"mu must be a vector of shape \(d,\)")
bad(lib.symmetric_two, lambda: lib.symmetric_two(torch.zeros(2, 2)), ValueError, "mu must be a vector")
bad(lib.symmetric_two, lambda: lib.symmetric_two([1.0], dtype=torch.int32), TypeError, "dtype must be a floating")
bad(lib.symmetric_two, lambda: lib.symmetric_two("ab"), TypeError, "mu must be a tensor")
bad(lib.equal_weights, lambda: lib.equal_weights([]), ValueError, "means must have shape")
bad(lib.equal_weights, lambda: lib.equal_weights([0.0, 1.0], variance=0.0), ValueError, "variance must lie in")
bad(lib.equal_weights, lambda: lib.equal_weights([0.0, 1.0], variance="1"), TypeError, "variance must be a real")
bad(lib.hardness_pair, lambda: lib.hardness_pair(0.1, 1e160), ValueError, "R must lie in")
bad(lib.hardness_pair, lambda: lib.hardness_pair(0.0, 1.0), ValueError, "eta must lie in")
bad(lib.hardness_pair, lambda: lib.hardness_pair(1.5, 10.0), ValueError, "eta must lie in")
bad(lib.hardness_pair, lambda: lib.hardness_pair(0.1, -1.0), ValueError, "R must lie in")
bad(lib.hardness_pair, lambda: lib.hardness_pair(0.1, NAN), ValueError, "R must be finite")

# ---------------------------------------------------------------- lib.networks
SM = lib.ScoreMLP
bad(SM, lambda: SM(2, dtype=torch.int64), TypeError, "dtype must be a floating")
bad(SM, lambda: SM(2, seed=1.5), TypeError, "seed must be an integer")
bad(SM, lambda: SM(2, seed="a"), TypeError, "seed must be an integer")
bad(SM, lambda: SM(2, seed=-1), ValueError, "seed must be >= 0")
bad(SM, lambda: SM(2, seed=2**40), ValueError, "seed must be >= 0 and <= 4294967295")
bad(SM, lambda: SM(0), ValueError, "d must be >= 1")
bad(SM, lambda: SM(2.5), TypeError, "d must be an integer")
bad(SM, lambda: SM(2, width=0), ValueError, "width must be >= 1")
bad(SM, lambda: SM(2, hidden_layers=-1), ValueError, "hidden_layers must be >= 1")
bad(SM, lambda: SM(2, parameterization="velocity"), ValueError, "parameterization must be one of")
bad(SM, lambda: SM(2, time_features="no"), TypeError, "time_features must be True or False")
bad(SM.forward, lambda: NET(X1, 0.1), ValueError, "x must have d = 2 columns")
bad(SM.forward, lambda: NET(X2, 0.0), ValueError, "t must be > 0")
bad(SM.forward, lambda: NET(X2, torch.ones(3)), ValueError, r"t must be a scalar or shape \(4,\)")
bad(SM.forward, lambda: NET("x", 0.1), TypeError, "x must be a tensor")
bad(SM.forward, lambda: SM(2, 8, parameterization="mean", seed=0)(X2.float(), 1e-8), ValueError,
    "t must be >= .* for the 'mean' parameterization")
bad("mean_min_time", lambda: networks.mean_min_time(torch.int64), TypeError, "dtype must be a floating")
bad(networks.read_out, lambda: networks.read_out(X2, X2, torch.ones(4, 1), torch.ones(4, 1), "velocity"),
    ValueError, "parameterization must be one of")
bad(networks.time_features, lambda: networks.time_features("a", torch.ones(4, 1)), TypeError, "a must be a floating")
bad(networks.time_features, lambda: networks.time_features(torch.ones(4, 1), 2), TypeError, "s2 must be a floating")

# ---------------------------------------------------------------- lib.dsm
bad(lib.dsm_loss, lambda: lib.dsm_loss(exact, X2, 1.0, z=torch.full((4, 2), NAN)), ValueError, "z must be finite")
bad(lib.dsm_loss, lambda: lib.dsm_loss(exact, X2, 1.0, z=[[1.0, 2.0]]), ValueError, "z must have the shape of x0")
bad(lib.dsm_loss, lambda: lib.dsm_loss(exact, X2, 1.0, z=torch.zeros(4, 3)), ValueError, "z must have d = 2")
bad(lib.dsm_loss, lambda: lib.dsm_loss(exact, X2, 1.0, z="z"), TypeError, "z must be a tensor")
bad(lib.dsm_loss, lambda: lib.dsm_loss(exact, X2, 1.0, generator="g"), TypeError, "generator must be")
bad(lib.dsm_loss, lambda: lib.dsm_loss(wrong_shape, X2, 1.0), ValueError, "score_fn must return the shape of x")
bad(lib.dsm_loss, lambda: lib.dsm_loss(nan_score, X2, 1.0), ValueError, "score_fn returned non-finite")
bad(lib.dsm_loss, lambda: lib.dsm_loss(lambda x, t: x * 1e200, X2, 1.0), ValueError, "too large to square")
bad(lib.dsm_loss, lambda: lib.dsm_loss(not_a_tensor, X2, 1.0), TypeError, "score_fn must return a tensor")
bad(lib.dsm_loss, lambda: lib.dsm_loss(exact, X2, 0.0), ValueError, "t must be > 0")
bad(lib.dsm_loss, lambda: lib.dsm_loss(exact, X2, 1.0, weighting="snr"), ValueError, "weighting must be one of")
bad(lib.dsm_loss, lambda: lib.dsm_loss(None, X2, 1.0), TypeError, "score_fn must be callable")
bad(lib.dsm_loss, lambda: lib.dsm_loss(exact, "x", 1.0), TypeError, "x0 must be a tensor")
bad(lib.dsm_loss, lambda: lib.dsm_loss(exact, X2, torch.ones(3)), ValueError, "t must be a scalar or shape")
TD = lib.train_dsm
bad(TD, lambda: TD(NET, X2[:, :1], t=1.0), ValueError, "x0 must have d = 2 columns")
bad(TD, lambda: TD(NET, X2, t=1.0, seed=1.7), TypeError, "seed must be an integer")
bad(TD, lambda: TD(NET, X2, t=1.0, seed="a"), TypeError, "seed must be an integer")
bad(TD, lambda: TD(NET, X2, t=1.0, seed=-3), ValueError, "seed must be >= 0")
bad(TD, lambda: TD(NET, X2, t=1.0, progress="no"), TypeError, "progress must be True or False")
bad(TD, lambda: TD(NET, X2), ValueError, "exactly one of t")
bad(TD, lambda: TD(NET, X2, t=1.0, t_range=(0.1, 1.0)), ValueError, "exactly one of t")
bad(TD, lambda: TD(NET, X2, t_range=(1.0, 0.1)), ValueError, r"t_range\[1\] must lie in")
bad(TD, lambda: TD(NET, X2, t_range=0.1), TypeError, "t_range must be a pair")
bad(TD, lambda: TD(NET, X2, t=1.0, steps=0), ValueError, "steps must be >= 1")
bad(TD, lambda: TD(NET, X2, t=1.0, lr=0.0), ValueError, "lr must lie in")
bad(TD, lambda: TD(NET, X2, t=1.0, lr=NAN), ValueError, "lr must be finite")
bad(TD, lambda: TD(NET, X2, t=1.0, batch_size=5), ValueError, "batch_size must be >= 1 and <= 4")
bad(TD, lambda: TD(NET, X2, t=1.0, optimizer="lbfgs"), ValueError, "optimizer must be one of")
bad(TD, lambda: TD(NET, X2, t=1.0, noise="none"), ValueError, "noise must be one of")
bad(TD, lambda: TD(NET, X2, t=1.0, weighting="x"), ValueError, "weighting must be one of")
bad(TD, lambda: TD(exact, X2, t=1.0), TypeError, "model must be a torch.nn.Module")
bad(TD, lambda: TD(torch.nn.Identity(), X2, t=1.0), ValueError, "model has no trainable parameters")
bad(TD, lambda: TD(OneColumn(), X2, t=1.0, steps=1, progress=False), ValueError, "model must return the shape of x")

# ---------------------------------------------------------------- lib.sampling
S = lib.sample
bad(S, lambda: S(exact, 3, 2, grid="cosine"), ValueError, "grid must be one of")
bad(S, lambda: S(exact, 3, 2, dtype=torch.int64), TypeError, "dtype must be a floating")
bad(S, lambda: S(wrong_shape, 3, 2, n_steps=60), ValueError, "score_fn must return the shape of x")
bad(S, lambda: S(nan_score, 3, 2, n_steps=60), ValueError, "score_fn returned non-finite")
bad(S, lambda: S(exact, 0, 2), ValueError, "n must be >= 1")
bad(S, lambda: S(exact, 3, 0), ValueError, "d must be >= 1")
bad(S, lambda: S(exact, 3, 2, process="langevin"), ValueError, "process must be one of")
bad(S, lambda: S(exact, 3, 2, method="rk4"), ValueError, "method must be one of")
bad(S, lambda: S(exact, 3, 2, T=-1.0), ValueError, "T must lie in")
bad(S, lambda: S(exact, 3, 2, gamma=20.0), ValueError, "gamma must lie in")
bad(S, lambda: S(exact, 3, 2, n_steps=0), ValueError, "n_steps must be >= 1")
bad(S, lambda: S(exact, 3, 2, x_T=torch.zeros(5, 2)), ValueError, "x_T must have n = 3 rows")
bad(S, lambda: S(exact, 3, 2, x_T=torch.zeros(3, 1)), ValueError, "x_T must have d = 2")
bad(S, lambda: S(exact, 3, 2, generator=1), TypeError, "generator must be a torch.Generator")
bad(S, lambda: S(exact, 3, 2, progress="no"), TypeError, "progress must be True or False")
bad(S, lambda: S("f", 3, 2), TypeError, "score_fn must be callable")
bad(S, lambda: S(exact, 3, 2, T=1e300, n_steps=60), ValueError, "sampler diverged .* increase n_steps or lower T")
bad(S, lambda: S(exact, 3, 2, device="nope"), ValueError, "device must name a torch device")
bad(S, lambda: S(exact, 3, 2, device=2.5), TypeError, "device must be None, a string")
if not torch.cuda.is_available():
    bad(S, lambda: S(exact, 3, 2, device="cuda"), ValueError, "device 'cuda' is not available")
    bad(GM, lambda: GM([1.0], [0.0], device=torch.device("cuda")), ValueError, "device 'cuda' is not available")
bad(SM, lambda: SM(2, device="nope"), ValueError, "device must name a torch device")
bad(GM, lambda: GM([0.5, 0.5], [0.0, 1.0], device="nope"), ValueError, "device must name a torch device")
bad("amplification", lambda: sampling.amplification(10.0, 1e-3, 0), ValueError, "n_steps must be >= 1")
bad("amplification", lambda: sampling.amplification(10.0, 1e-3, 5, method="rk4"), ValueError,
    "method must be one of")

# ---------------------------------------------------------------- lib.metrics
bad(lib.mmd, lambda: lib.mmd(X2, torch.zeros(4, 3)), ValueError, "y must have d = 2")
bad(lib.mmd, lambda: lib.mmd(X2[:1], X2), ValueError, "x and y must each hold at least two")
bad(lib.mmd, lambda: lib.mmd(X2, X2, bandwidth=0.0), ValueError, "bandwidth must lie in")
bad(lib.mmd, lambda: lib.mmd(X2, X2, bandwidth="a"), TypeError, "bandwidth must be a real")
bad(lib.mmd, lambda: lib.mmd(X2, X2 * NAN), ValueError, "y must be finite")
SW = lib.sliced_wasserstein
bad(SW, lambda: SW(X2, X2, p=3), ValueError, "p must be >= 1 and <= 2")
bad(SW, lambda: SW(X2, X2, p=True), TypeError, "p must be an integer")
bad(SW, lambda: SW(X2, X2, n_projections=0), ValueError, "n_projections must be >= 1")
bad(SW, lambda: SW(X2, X2, generator="g"), TypeError, "generator must be")
bad(SW, lambda: SW(X2, torch.zeros(4, 3)), ValueError, "y must have d = 2")
bad(lib.w1_1d, lambda: lib.w1_1d(X2, X1), ValueError, "x must have d = 1")
bad(lib.w1_1d, lambda: lib.w1_1d(X1, "y"), TypeError, "y must be a tensor")
bad(lib.w1_1d, lambda: lib.w1_1d(torch.zeros(0, 1), X1), ValueError, "x must hold at least one")
bad(lib.tv_1d, lambda: lib.tv_1d(M1, M2), ValueError, "q must be a GaussianMixture in d = 1")
bad(lib.tv_1d, lambda: lib.tv_1d("p", M1), TypeError, "p must be a GaussianMixture")
bad(lib.tv_1d, lambda: lib.tv_1d(M1, M1, t=-1.0), ValueError, "t must lie in")
bad(lib.tv_1d, lambda: lib.tv_1d(M1, M1, points=2), ValueError, "points must be >= 3")
W1M = lib.w1_to_mixture_1d
bad(W1M, lambda: W1M(X2, M1), ValueError, "samples must have d = 1")
bad(W1M, lambda: W1M(X1, M2), ValueError, "mixture must be a GaussianMixture in d = 1")
bad(W1M, lambda: W1M(X1, M1, t="0"), TypeError, "t must be a real number")
bad(W1M, lambda: W1M(X1 * NAN, M1), ValueError, "samples must be finite")
bad(lib.score_errors, lambda: lib.score_errors(wrong_shape, M2, 0.1, 10), ValueError, "score_fn must return the shape")
bad(lib.score_errors, lambda: lib.score_errors(exact, "mix", 0.1), TypeError, "mixture must be a GaussianMixture")
bad(lib.score_errors, lambda: lib.score_errors(exact, M2, -0.1), ValueError, "t must lie in")
bad(lib.score_errors, lambda: lib.score_errors(exact, M2, 0.1, n=0), ValueError, "n must be >= 1")
bad(lib.score_errors, lambda: lib.score_errors(3, M2, 0.1), TypeError, "score_fn must be callable")
bad(lib.score_l2_error, lambda: lib.score_l2_error(nan_score, M2, 1.0, 10), ValueError, "score_fn returned non-finite")
bad(lib.score_l2_error, lambda: lib.score_l2_error(exact, M2, 0.1, generator="g"), TypeError, "generator must be")
bad(lib.dsm_minimum, lambda: lib.dsm_minimum(M2, 0.0), ValueError, "t must lie in")
bad(lib.dsm_minimum, lambda: lib.dsm_minimum("m", 0.1), TypeError, "mixture must be a GaussianMixture")
bad(lib.dsm_minimum, lambda: lib.dsm_minimum(M2, 0.1, n=-1), ValueError, "n must be >= 1")
bad(lib.dsm_objective, lambda: lib.dsm_objective(nan_score, M2, 0.1, 10), ValueError, "score_fn returned non-finite")
bad(lib.dsm_objective, lambda: lib.dsm_objective(exact, M2, 0.0), ValueError, "t must lie in")
bad(lib.dsm_objective, lambda: lib.dsm_objective(None, M2, 0.1), TypeError, "score_fn must be callable")

# ---------------------------------------------------------------- lib.quantile
Q = quantile
bad(Q.score_quantile_error, lambda: Q.score_quantile_error(nan_score, M2, 1.0, 0.1, 10), ValueError,
    "score_fn returned non-finite")
bad(Q.score_quantile_error, lambda: Q.score_quantile_error(exact, M2, 0.1, 1.5), ValueError, "delta must lie in")
bad(Q.quantile_error, lambda: Q.quantile_error(torch.ones(10), 1.0), ValueError, "delta must lie in")
bad(Q.quantile_error, lambda: Q.quantile_error(torch.ones(10), 0.1, confidence=1.0), ValueError,
    "confidence must lie in")
bad(Q.quantile_error, lambda: Q.quantile_error("e", 0.1), TypeError, "errors must be a tensor")
bad(Q.quantile_band, lambda: Q.quantile_band(torch.ones(1), 0.1), ValueError, "errors must have shape")
bad(Q.quantile_band, lambda: Q.quantile_band(torch.ones(10), torch.full((2, 2), 0.1)), ValueError,
    "delta must be a number or a 1-D")
bad(Q.weighted_quantile_error, lambda: Q.weighted_quantile_error(torch.ones(5), -torch.ones(5), 0.1), ValueError,
    "weights must be >= 0")
bad(Q.weighted_quantile_error, lambda: Q.weighted_quantile_error(torch.ones(5), torch.ones(3), 0.1), ValueError,
    "weights of shape")
bad(Q.weighted_quantile_error, lambda: Q.weighted_quantile_error(torch.ones(5), torch.ones(5), 2.0), ValueError,
    "delta must be a number in")
bad(Q.quantile_profile, lambda: Q.quantile_profile(exact, "m", [0.1], 0.1), TypeError, "mixture must be")
bad(Q.quantile_profile, lambda: Q.quantile_profile(exact, M2, [0.1], 0.1, n=1), ValueError, "n must be >= 2")
bad(Q.tail_threshold, lambda: Q.tail_threshold(M2, 0.1, 1.5), ValueError, "mass must lie in")
bad(Q.tail_threshold, lambda: Q.tail_threshold("m", 0.1, 0.1), TypeError, "mixture must be")
bad(Q.tail_threshold, lambda: Q.tail_threshold(M2, 0.1, 0.1, iterations=0), ValueError, "iterations must be >= 1")
bad(Q.DriftCorruption, lambda: Q.DriftCorruption(M2, -1.0), ValueError, "size must lie in")
bad(Q.DriftCorruption, lambda: Q.DriftCorruption("m", 1.0), TypeError, "mixture must be")
bad(Q.DriftCorruption, lambda: Q.DriftCorruption(M2, 1.0, direction=[0.0, 0.0]), ValueError,
    "direction must be a nonzero")
bad(Q.LocalizedCorruption, lambda: Q.LocalizedCorruption(M2, 1.0, 1.5), ValueError, "mass must lie in")
bad(Q.LocalizedCorruption, lambda: Q.LocalizedCorruption(M2, 1.0, 0.1, push="sideways"), ValueError,
    "push must be one of")
bad(Q.ScoreCorruption, lambda: Q.ScoreCorruption(M2, -1.0), ValueError, "size must lie in")
bad(Q.kolmogorov_distance_1d, lambda: Q.kolmogorov_distance_1d(X1, M2), ValueError, "mixture must be a one-dim")
bad(Q.kolmogorov_distance_1d, lambda: Q.kolmogorov_distance_1d(X1, M1, t=-1.0), ValueError, "t must lie in")

# ---------------------------------------------------------------- lib.hardness
H = hardness
bad(H.quadrature_1d, lambda: H.quadrature_1d("p", 0.1), TypeError, "p must be a GaussianMixture")
bad(H.quadrature_1d, lambda: H.quadrature_1d(M2, 0.1), ValueError, "p must be one-dimensional")
bad(H.quadrature_1d, lambda: H.quadrature_1d(M1, -0.1), ValueError, "t must be >= 0")
bad(H.quadrature_1d, lambda: H.quadrature_1d(M1, 0.1, points=2), ValueError, "points must be >= 3")
bad(H.quadrature_1d, lambda: H.quadrature_1d(M1, 0.1, width=0.0), ValueError, "width must lie in")
bad(H.score_l2_distance_1d, lambda: H.score_l2_distance_1d(M1, 3.0, 0.1), TypeError, "q must be callable")
bad(H.score_l2_distance_1d, lambda: H.score_l2_distance_1d(M1, M2, 0.1), ValueError, "q must be one-dimensional")
bad(H.score_l2_distance_1d, lambda: H.score_l2_distance_1d(M1, lambda x, t: x / 0.0, 0.1), ValueError,
    "score q returned a non-finite")
bad(H.score_quantile_error_1d, lambda: H.score_quantile_error_1d(M1, M1, 0.1, 1.5), ValueError, "delta")
bad(H.hardness_theory, lambda: H.hardness_theory(0.7, 1.0), ValueError, "eta must lie in")
bad(H.hardness_theory, lambda: H.hardness_theory(0.1, -1.0), ValueError, "R must lie in")
bad(H.finite_class_erm, lambda: H.finite_class_erm([], torch.zeros(2, 3), 0.1), TypeError,
    "hypotheses must be a non-empty list")
bad(H.finite_class_erm, lambda: H.finite_class_erm([M1], torch.zeros(3), 0.1), ValueError, "x0 must have shape")
bad(H.finite_class_erm, lambda: H.finite_class_erm([M1], torch.zeros(2, 3), 0.0), ValueError, "t must lie in")
bad(H.finite_class_erm, lambda: H.finite_class_erm([M1, 3], torch.zeros(2, 3), 0.1), TypeError,
    r"hypotheses\[1\] must be callable")
bad(H.finite_class_erm, lambda: H.finite_class_erm([M1], torch.zeros(2, 3), 0.1, sizes=[5]), ValueError,
    "sizes must hold integers")

# ---------------------------------------------------------------- lib.gmm_learning
GL = gmm_learning
X0 = torch.randn(20, 2, dtype=torch.float64, generator=G)
bad(GL.student_score, lambda: GL.student_score(MU, X2, -1.0), ValueError, "t must lie in")
bad(GL.student_score, lambda: GL.student_score(MU, X1, 0.1), ValueError, "x must have")
bad(GL.ddpm_loss, lambda: GL.ddpm_loss(MU, X0[:, :1], 0.1), ValueError, "x0 must have d = 2")
bad(GL.ddpm_gradient, lambda: GL.ddpm_gradient(MU, X0, 0.1, parameter="x"), ValueError, "parameter must be one of")
bad(GL.em, lambda: GL.em(X0, MU, steps=0), ValueError, "steps must be >= 1")
bad(GL.em_step, lambda: GL.em_step(MU, X0[:, :1]), ValueError, "x0 must have d = 2")
bad(GL.gd_ddpm, lambda: GL.gd_ddpm(X0, MU, 0.1, noise="x"), ValueError, "noise must be one of")
bad(GL.gd_ddpm, lambda: GL.gd_ddpm(X0, MU, 0.1, lr=-1.0), ValueError, "lr must lie in")
bad(GL.em, lambda: GL.em(X0, MU, progress="no"), TypeError, "progress must be True or False")
bad(GL.gd_ddpm, lambda: GL.gd_ddpm(X0, MU, 0.1, progress="no"), TypeError, "progress must be True or False")
bad(GL.power_iteration, lambda: GL.power_iteration(X0, MU[0], steps=0), ValueError, "steps must be >= 1")
bad(H.linear_sampler_variance, lambda: H.linear_sampler_variance(3.0, 1e-3, 0), ValueError, "n_steps")
bad(H.linear_sampler_variance, lambda: H.linear_sampler_variance(3.0, 1e-3, 10, v_start=-1.0), ValueError, "v_start")
bad(lib.forward.noise_like, lambda: lib.forward.noise_like([1.0, 2.0]), TypeError, "x0")
bad(lib.forward.noise_like, lambda: lib.forward.noise_like(torch.zeros(2), generator="g"), TypeError, "generator")
bad(lib.plotting.make_readable, lambda: lib.plotting.make_readable("fig"), TypeError, "fig")
bad(lib.plotting.shown_px_per_pt, lambda: lib.plotting.shown_px_per_pt(0.0, 100), ValueError, "width_in")
bad(lib.plotting.shown_px_per_pt, lambda: lib.plotting.shown_px_per_pt(5.0, 0.0), ValueError, "dpi")
bad(lib.widgets.LiveView, lambda: lib.widgets.LiveView("draw"), TypeError, "draw")
bad(GL.population_terms, lambda: GL.population_terms(MU[0], MU[0][:1]), ValueError, "theta and mu_star_t must be")
bad(GL.population_terms, lambda: GL.population_terms(MU[0], MU[0], nodes=2), ValueError, "nodes must be")
bad(GL.relative_change, lambda: GL.relative_change("a", MU), TypeError, "new")
bad(GL.responsibilities, lambda: GL.responsibilities(MU, X0[:, :1]), ValueError, "x")
bad(GL.centre_errors, lambda: GL.centre_errors(MU, torch.zeros(3, 2)), ValueError, "estimate must have shape")
bad(GL.cosine, lambda: GL.cosine(torch.ones(2), "v"), TypeError, "v must be a tensor")

# ---------------------------------------------------------------- lib.bounds
B = bounds
bad(B.chen2023, lambda: B.chen2023(-1.0, 0.1, 2), ValueError, "eps")
bad(B.gupta2024, lambda: B.gupta2024(0.1, 0.1, 2, 0, 1), ValueError, "P")
bad(B.block2020, lambda: B.block2020(0.1, -0.1, 2, 10, 2), ValueError, "sigma_min")
bad(B.sample_counts, lambda: B.sample_counts(0.1, 0.1, 0, 10, 2), ValueError, "d")
bad(B.oko2023, lambda: B.oko2023(0.1, "d"), TypeError, "d")
bad(B.gaur2025, lambda: B.gaur2025(0.1, version="v9"), ValueError, "version must be one of")

# ---------------------------------------------------------------- lib.batched
BM = batched.BatchedScoreMLP
TB = batched.train_batched
bad(optim.adam, lambda: optim.adam([], 0.1), TypeError, "params must be a non-empty list of tensors")
bad(optim.adam, lambda: optim.adam([torch.zeros(2)], 0.0), ValueError, r"lr must lie in \(0, inf\)")
bad(BM, lambda: BM(0, 2), ValueError, "B must be >= 1")
bad(BM, lambda: BM(2, 2, seeds=[1]), ValueError, "seeds must hold B = 2")
bad(BM, lambda: BM(2, 2, seeds=[1, -1]), ValueError, r"seeds\[b\] must be >= 0")
bad(BM, lambda: BM(2, 2, parameterization="v"), ValueError, "parameterization must be one of")
bad(BM.forward, lambda: BNET(torch.zeros(5, 3), 0.1), ValueError, "x must have shape")
bad(TB, lambda: TB(BNET, BX, t=0.1, counts=[1.5, 3.9]), ValueError, "counts must hold B = 2 integer")
bad(TB, lambda: TB(BNET, BX, t=0.1, counts=[1, 9]), ValueError, "counts must hold B = 2 integer")
bad(TB, lambda: TB(BNET, BX, t=0.1, seeds=1.5), TypeError, "seeds must be an int")
bad(TB, lambda: TB(BNET, BX, t=0.1, seeds=-1), ValueError, "seeds must be >= 0")
bad(TB, lambda: TB(BNET, BX, t=0.1, progress="no"), TypeError, "progress must be True or False")
bad(TB, lambda: TB(BNET, BX, t=0.1, steps=1, target_score=nan_score, progress=False), ValueError,
    "target_score returned non-finite")
bad(TB, lambda: TB(BNET, BX, t=0.1, steps=1, target_score=wrong_shape, progress=False), ValueError,
    "target_score must return the shape")
bad(TB, lambda: TB("m", BX, t=0.1), TypeError, "model must be a BatchedScoreMLP")
bad(TB, lambda: TB(BNET, BX[..., :1], t=0.1), ValueError, "x0 must have shape")
bad(TB, lambda: TB(BNET, BX, t=0.1, rng="x"), ValueError, "rng must be one of")
bad(TB, lambda: TB(BNET, BX, t=0.1, lr_schedule="x"), ValueError, "lr_schedule must be one of")
bad(TB, lambda: TB(BNET, BX, t=0.1, snapshots=[0]), ValueError, r"snapshots\[i\] must be >= 1")
bad(TB, lambda: TB(BNET, BX, t=0.1, rng="per_model", seeds=[1]), ValueError, "seeds must be an int or hold B")
bad(TB, lambda: TB(BNET, BX, t=0.1, rng="per_model", seeds=[1, 2.5]), TypeError, r"seeds\[b\] must be an integer")
bad(batched.pad_samples, lambda: batched.pad_samples([]), TypeError, "samples must be a non-empty list")
bad(batched.pad_samples, lambda: batched.pad_samples([torch.zeros(0, 2)]), ValueError, r"samples\[0\] must have")
bad(batched.mean_and_stderr, lambda: batched.mean_and_stderr(torch.ones(3)), ValueError, "values must have shape")
bad(batched.batched_score_errors, lambda: batched.batched_score_errors(BNET, M1, 0.1), ValueError,
    "mixture has d = 1 but model has d = 2")
bad(batched.batched_score_errors, lambda: batched.batched_score_errors(BNET, "m", 0.1), TypeError,
    "mixture must be a GaussianMixture")
bad(batched.batched_score_errors, lambda: batched.batched_score_errors(BNET, M2, 0.1, n=0), ValueError,
    "n must be >= 1")


# ---------------------------------------------------------------- lib.sweeps (need a folder: built per test)
def sweep_cases(root) -> list[tuple[str, object, type, str]]:
    cache = sweeps.SweepCache(root)
    rows = [
        (sweeps.config_key, lambda: sweeps.config_key([1]), TypeError, "config must be a dict"),
        (sweeps.config_key, lambda: sweeps.config_key({"x": NAN}), ValueError, "config must be JSON-able"),
        (sweeps.config_key, lambda: sweeps.config_key({"x": object()}), ValueError, "config must be JSON-able"),
        (sweeps.SweepCache, lambda: sweeps.SweepCache(3), TypeError, "root must be a path"),
        (sweeps.run_sweep, lambda: sweeps.run_sweep({"a": 1}, list, cache), TypeError, "configs must be a list"),
        (sweeps.run_sweep, lambda: sweeps.run_sweep([1], list, cache), TypeError, r"configs\[0\] must be a dict"),
        (sweeps.run_sweep, lambda: sweeps.run_sweep([{}], "f", cache), TypeError, "compute must be callable"),
        (sweeps.run_sweep, lambda: sweeps.run_sweep([{}], list, "dir"), TypeError, "cache must be a SweepCache"),
        (sweeps.run_sweep, lambda: sweeps.run_sweep([{}], list, cache, max_group=0), ValueError,
         "max_group must be >= 1"),
        (sweeps.run_sweep, lambda: sweeps.run_sweep([{}], list, cache, group_by=3), TypeError,
         "group_by must be callable"),
        (sweeps.run_sweep, lambda: sweeps.run_sweep([{}], list, cache, progress="no"), TypeError,
         "progress must be True or False"),
        (sweeps.run_sweep, lambda: sweeps.run_sweep([{"a": 1}, {"a": 2}], lambda g: [1], cache, progress=False),
         ValueError, "compute returned 1 results for 2 configs"),
        (sweeps.run_sweep, lambda: sweeps.run_sweep([{"a": 3}], lambda g: 5, cache, progress=False), TypeError,
         "compute must return a list"),
        (sweeps.SweepCache.save, lambda: cache.save({"a": 4}, object()), TypeError, "result must hold only tensors"),
        (sweeps.SweepCache.load, lambda: cache.load([1]), TypeError, "config must be a dict"),
        (sweeps.SweepCache.get, lambda: cache.get("a"), TypeError, "config must be a dict"),
    ]
    return [(getattr(f, "__qualname__", str(f)), c, e, m) for f, c, e, m in rows]


# ---------------------------------------------------------------- lib.book, lib.plotting, lib.widgets
bad(lib.quick_mode, lambda: lib.quick_mode("no"), TypeError, "default must be True or False")
bad(lib.quick_mode, lambda: lib.quick_mode(None), TypeError, "default must be True or False")
bad(lib.seed_everything, lambda: lib.seed_everything(-1), ValueError, "seed must be >= 0")
bad(lib.seed_everything, lambda: lib.seed_everything("a"), TypeError, "seed must be an integer")
bad(lib.seed_everything, lambda: lib.seed_everything(1.5), TypeError, "seed must be an integer")
bad(lib.seed_everything, lambda: lib.seed_everything(None), TypeError, "seed must be an integer")
bad(lib.seed_everything, lambda: lib.seed_everything(2**40), ValueError, "seed must be >= 0 and <= 4294967295")
bad(lib.answer, lambda: lib.answer("sm-2"), ValueError, "label must be an exercise label")
bad(lib.answer, lambda: lib.answer(2), ValueError, "label must be an exercise label")
bad(lib.record, lambda: lib.record(None, 1.0), TypeError, "name must be a string")
bad(lib.record, lambda: lib.record("", 1.0), ValueError, "name must be a non-empty")
bad(lib.record, lambda: lib.record("x", NAN), ValueError, r"value of record\('x'\) must be finite")
bad(lib.record, lambda: lib.record("x", torch.ones(2)), ValueError, r"value of record\('x'\) must be a single")
bad(lib.record, lambda: lib.record("x", [1]), TypeError, r"value of record\('x'\) must be a number")
P1 = lib.plot_density_and_score_1d
bad(P1, lambda: P1(M1, 5), TypeError, "times must be a non-empty list")
bad(P1, lambda: P1(M1, []), TypeError, "times must be a non-empty list")
bad(P1, lambda: P1(M1, [-1.0]), ValueError, "times must lie in")
bad(P1, lambda: P1(M2, [0.1]), ValueError, "mixture must be a GaussianMixture in d = 1")
bad(P1, lambda: P1(M1, [0.1], xlim=(1.0, -1.0)), ValueError, r"xlim\[1\] must lie in")
bad(P1, lambda: P1(M1, [0.1], xlim=5), TypeError, "xlim must be a pair")
bad(P1, lambda: P1(M1, [0.1], axes="a"), TypeError, "axes must be None or two matplotlib Axes")
bad(P1, lambda: P1(M1, [0.1], axes=[]), TypeError, "axes must be None or two matplotlib Axes")
P2 = lib.plot_score_field_2d
bad(P2, lambda: P2(M2, 0.0, ax=3), TypeError, "ax must be None or a matplotlib Axes")
bad(P2, lambda: P2(M2, 0.0, lim="a"), TypeError, "lim must be a real number")
bad(P2, lambda: P2(M2, 0.0, lim=-1.0), ValueError, "lim must lie in")
bad(P2, lambda: P2(M1, 0.0), ValueError, "mixture must be a GaussianMixture in d = 2")
bad(P2, lambda: P2(M2, -1.0), ValueError, "t must lie in")
bad(P2, lambda: P2(M2, 0.0, arrows=1), ValueError, "arrows must be >= 2")
E = lib.explore
bad(E, lambda: E("f", {"a": (0, 1, 0.1, 0.5)}), TypeError, "draw must be callable")
bad(E, lambda: E(draw, {}), ValueError, "controls must be a non-empty dict")
bad(E, lambda: E(draw, {"a": (0, 1, 0.1)}), ValueError, r"controls\['a'\] must be \(low, high, step, default\)")
bad(E, lambda: E(draw, {"a": ("0", "1", "0.1", "0.5")}), TypeError, r"controls\['a'\] low must be a real")
bad(E, lambda: E(draw, {"a": (0, 1, -0.1, 0.5)}), ValueError, r"controls\['a'\] step must lie in")
bad(E, lambda: E(draw, {"a": (1, 0, 0.1, 0.5)}), ValueError, r"controls\['a'\] high must lie in")
bad(E, lambda: E(draw, {"a": (0, 1, 0.1, 5)}), ValueError, r"controls\['a'\] default must lie in")
bad(E, lambda: E(draw, {3: (0, 1, 0.1, 0.5)}), TypeError, "controls keys must be argument names")


@pytest.mark.parametrize("call, exc, match", [pytest.param(c, e, m, id=f"{i:03d}-{n}")
                                              for i, (n, c, e, m) in enumerate(CASES)])
def test_bad_call_raises_a_clear_error(call, exc, match):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a sampler step warning is not the point here
        with pytest.raises(exc, match=match):
            call()


def test_bad_sweep_calls_raise_clear_errors(tmp_path):
    for _name, call, exc, match in sweep_cases(tmp_path):
        with pytest.raises(exc, match=match):
            call()
    assert not list(tmp_path.glob("*.tmp"))


def test_bad_book_quick_environment_is_an_error(monkeypatch):
    monkeypatch.setenv("BOOK_QUICK", "maybe")
    with pytest.raises(ValueError, match="BOOK_QUICK must be one of"):
        lib.quick_mode(False)


EXEMPT = {  # take no arguments, or are plain result records
    "demo_1d", "demo_2d", "use_style", "widgets_enabled", "code_version",
    "Estimate", "TrainResult", "QuantileBand", "QuantileEstimate", "QuantileProfile", "HardnessTheory",
    "FiniteERM", "GDResult", "Bound", "BatchedTrainResult", "PopulationTerms",
    "check",  # never raises by design: a bad label comes back as an ERROR result (test_assignments_core)
}
MODULES = ["forward", "mixtures", "networks", "dsm", "sampling", "metrics", "sweeps", "book", "plotting",
           "widgets", "quantile", "hardness", "gmm_learning", "bounds", "batched"]


def test_the_table_covers_every_public_function(tmp_path):
    covered = {name.split(".")[0] for name, *_ in CASES + sweep_cases(tmp_path)}
    public = set(lib.__all__) - {"PALETTE"}
    for m in MODULES:
        mod = importlib.import_module(f"lib.{m}")
        public |= {n for n, o in vars(mod).items() if (inspect.isfunction(o) or inspect.isclass(o))
                   and o.__module__ == mod.__name__ and not n.startswith("_")}
    assert public - EXEMPT - covered == set()
    assert len(CASES) + len(sweep_cases(tmp_path)) >= 150


# ================================================================ values that used to be silent
def test_mmd_median_bandwidth_ignores_self_distances():
    """x = three copies of 0, y = three of (1, 1): distinct pairs have median distance sqrt 2,
    so h = sqrt 2 and MMD^2 = 1 + 1 - 2 exp(-2 / (2 h^2)) = 2 - 2 e^{-1/2} (was NaN)."""
    assert lib.mmd(torch.zeros(3, 2), torch.ones(3, 2)) == pytest.approx(2 - 2 * math.exp(-0.5), rel=1e-12)


def test_mmd_with_a_tiny_bandwidth_is_its_limit_not_nan():
    """For h -> 0 the kernel of distinct points tends to 0: MMD^2 -> 0; for y = x only the n
    pairs (x_i, y_i) keep kernel 1, so the unbiased MMD^2 -> -2 n / n^2 = -2/n (was NaN)."""
    x, y = torch.randn(50, 2, generator=G), torch.randn(40, 2, generator=G) + 1
    assert lib.mmd(x, y, bandwidth=1e-200) == 0.0
    assert lib.mmd(x, x.clone(), bandwidth=1e-200) == pytest.approx(-2 / 50, rel=1e-12)


def test_wrong_shape_scores_are_not_broadcast():
    with pytest.raises(ValueError, match="score_fn must return the shape"):
        lib.dsm_loss(wrong_shape, X2, 1.0)
    with pytest.raises(ValueError, match="score_fn must return the shape"):
        lib.sample(wrong_shape, 3, 2, n_steps=60)


def test_l2_and_quantile_errors_treat_a_nan_score_alike():
    for fn in (lambda: lib.score_l2_error(nan_score, M2, 1.0, 100),
               lambda: lib.score_quantile_error(nan_score, M2, 1.0, 0.1, 100)):
        with pytest.raises(ValueError, match="score_fn returned non-finite values"):
            fn()


def test_sampler_warns_when_too_few_steps():
    """Five log-spaced steps from T = 10 blow up (|y| ~ 1e4); the warning names a count
    that does not."""
    with pytest.warns(RuntimeWarning, match=r"n_steps = 5 is too few.*use n_steps >= (\d+)") as rec:
        lib.sample(M2.score, 200, 2, n_steps=5, generator=torch.Generator().manual_seed(0))
    enough = int(str(rec[0].message).rsplit(">= ", 1)[1])
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        y = lib.sample(M2.score, 200, 2, n_steps=enough, generator=torch.Generator().manual_seed(0))
    assert y.abs().max() < 10  # demo_2d lies within |x| < 6


def test_time_grid_refuses_integer_dtypes():
    with pytest.raises(TypeError, match="dtype must be a floating"):
        lib.time_grid(10.0, 1e-3, 5, dtype=torch.int64)


@pytest.mark.parametrize("R", [3.0, 2e5, 1e6])
def test_tv_of_the_hardness_pair_is_exact_for_far_components(R):
    """TV(p1, p2) = eta (1 - 2 Phi(-R)) (the pair differs only in the eta-component's sign);
    one uniform grid over [-R, R] used to give 0.054 instead of 0.1 at R = 1e6."""
    eta = 0.1
    exact_tv = eta * (1 - math.erfc(R / math.sqrt(2)))
    assert lib.tv_1d(*lib.hardness_pair(eta, R)) == pytest.approx(exact_tv, rel=1e-8)


@pytest.mark.parametrize("R", [5.0, 1e6])
def test_w1_to_a_mixture_is_exact_for_point_masses_at_far_means(R):
    """Half the samples at -R, half at +R against (N(-R,1) + N(R,1)) / 2: each half is
    W1(delta_0, N(0,1)) = E|Z| = sqrt(2/pi), weighted 1/2 each, for any R."""
    samples = torch.tensor([-R] * 50 + [R] * 50, dtype=torch.float64)
    assert lib.w1_to_mixture_1d(samples, lib.equal_weights([-R, R])) == pytest.approx(math.sqrt(2 / math.pi),
                                                                                      rel=1e-6)


def test_w1_to_a_mixture_is_exact_for_samples_far_outside():
    """All samples at c far right of N(0,1): W1 = c exactly (E[c - Z] = c)."""
    c = 1e5
    assert lib.w1_to_mixture_1d(torch.full((10,), c, dtype=torch.float64), lib.GaussianMixture([1.0], [0.0])) \
        == pytest.approx(c, rel=1e-9)


def test_hardness_pair_score_is_finite_in_its_range():
    p1, _ = lib.hardness_pair(0.1, 1e6)
    # at the main component's centre the far component has no weight: score = -x = 0, at x = 1 it is -1
    assert torch.allclose(p1.score(torch.tensor([[0.0], [1.0]], dtype=torch.float64), 0.0),
                          torch.tensor([[0.0], [-1.0]], dtype=torch.float64), atol=1e-9)


@pytest.mark.parametrize("dtype, rtol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_log_prob_with_a_float_time_is_accurate_for_narrow_far_components(dtype, rtol):
    """0.5 N(-m, v) + 0.5 N(m, v) at x = a_t m: the far component adds exp(-2 a^2 m^2 / var) = 0, so
    log q_t = log 0.5 - log(2 pi var) / 2 with var = a_t^2 v + s_t^2, whether t is a float or per row."""
    m, v, t = (1e4, 1e-6, 1e-8) if dtype == torch.float64 else (1e2, 1e-4, 1e-3)
    mix = lib.GaussianMixture([0.5, 0.5], [-m, m], v, dtype=dtype)
    a, s2 = math.exp(-t), -math.expm1(-2 * t)
    var = a * a * v + s2
    x = torch.tensor([[a * m]], dtype=dtype)
    truth = math.log(0.5) - 0.5 * math.log(2 * math.pi * var)
    assert mix.log_prob(x, t).item() == pytest.approx(truth, rel=rtol)
    assert mix.log_prob(x, torch.full((1,), t, dtype=dtype)).item() == pytest.approx(truth, rel=rtol)


def test_mean_read_out_is_accurate_where_accepted():
    """A float32 'mean' network whose raw output is the exact posterior mean: at the smallest
    accepted time its score is within 0.1% (RMS) of the exact score; below it, refused."""
    t = networks.mean_min_time(torch.float32)
    x = M2.sample(500, t=t, generator=torch.Generator().manual_seed(1))
    g = M2.posterior_mean(x, t).float()
    s2 = torch.tensor([[-math.expm1(-2 * t)]])
    f = networks.read_out(g, x.float(), torch.tensor([[math.exp(-t)]]), s2, "mean").double()
    exact_score = M2.score(x, t)
    assert ((f - exact_score).norm() / exact_score.norm()).item() < 1e-3
    with pytest.raises(ValueError, match="for the 'mean' parameterization"):
        networks.read_out(g, x.float(), torch.ones(1, 1), s2 / 2, "mean")


def test_diverged_training_restores_the_initial_weights():
    net = lib.ScoreMLP(1, 16, seed=0)
    x0 = torch.randn(64, 1, generator=torch.Generator().manual_seed(2))
    before = [p.detach().clone() for p in net.parameters()]
    with pytest.raises(ValueError, match="training diverged: step [1-9].*weights were restored"):
        lib.train_dsm(net, x0, t=0.1, steps=50, lr=1e6, optimizer="sgd", progress=False)
    assert all(torch.equal(p, q) for p, q in zip(net.parameters(), before))
    res = lib.train_dsm(net, x0, t=0.1, steps=20, lr=1e-3, optimizer="sgd", progress=False)
    assert torch.isfinite(res.losses).all()


def test_a_nan_model_leaves_the_weights_untouched():
    class NanNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(1))

        def forward(self, x, t):
            return x * self.w * NAN

    net = NanNet()
    with pytest.raises(ValueError, match="initial weights give nan"):
        lib.train_dsm(net, torch.zeros(4, 1), t=0.1, steps=3, progress=False)
    assert net.w.item() == 1.0


def test_float32_weights_and_mixtures_are_accepted():
    third = lib.GaussianMixture(torch.full((3,), 1 / 3), [0.0, 1.0, 2.0])
    assert float(third.weights.sum()) == pytest.approx(1.0, abs=1e-15)
    gen = torch.Generator().manual_seed(5)
    for _ in range(100):
        lib.GaussianMixture(torch.softmax(torch.randn(8, generator=gen), 0), torch.randn(8, generator=gen))
    mix64 = lib.demo_2d()
    mix32 = mix64.to(dtype=torch.float32)
    x = mix64.sample(100, t=0.1, generator=gen)
    err = (mix32.score(x.float(), 0.1).double() - mix64.score(x, 0.1)).abs().max()
    assert err < 1e-4 * mix64.score(x, 0.1).abs().max()
    with pytest.raises(ValueError, match="weights must sum to 1"):  # still refused when really off
        lib.GaussianMixture(torch.tensor([0.5, 0.5001]), [0.0, 1.0])


def test_time_for_sigma_refuses_what_underflows():
    with pytest.raises(ValueError, match="s must be >="):
        lib.time_for_sigma(1e-200)
    assert lib.time_for_sigma(1e-100) == pytest.approx(0.5e-200, rel=1e-12)


def test_record_prints_without_myst_nb(monkeypatch, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "myst_nb", None)  # import myst_nb now raises ImportError
    lib.record("answer", np.float64(0.25))
    assert capsys.readouterr().out.strip() == "answer = 0.25"
