"""Gradient descent on the DDPM objective against scikit-learn's EM: like for like, on the same data.

What a user would otherwise write: ``sklearn.mixture.GaussianMixture(covariance_type="spherical")``.
Every method gets

* the same data and the same start: scikit-learn through ``means_init`` (with ``weights_init = 1/K``
  and ``precisions_init = 1``, so its own k-means start is not run), lib's EM and GD through ``init``;
* one stopping rule: stop at the first iteration where the centres' relative change
  ``|new - old| / |new|`` is at most ``TOL`` (:func:`lib.gmm_learning.relative_change`). scikit-learn
  stops on its log-likelihood gain instead, so an untimed run of it, one EM iteration at a time
  (``warm_start``), counts the iterations the shared rule needs, and the timed fit runs exactly
  that many (``max_iter`` = that count, ``tol = 0``);
* a warm-up call before timing, one thread for torch and for the BLAS behind NumPy, and the same
  float dtype (float32 for all; ``--float64`` for all in float64).

lib's EM here is *untied*: K free centres, as scikit-learn fits. lib's GD on ``L_t`` uses the
softmax student with K free centres, step ``K/2`` on ``mu_t`` (``1/2`` per unit weight: by the
identity ``-grad L_t = 2 pi_k (M_t - theta_k) + R_k`` of the chapter, one EM step on the noised
mixture ``q_t`` up to ``R_t``), fresh noise every step, and iterate averaging from step ``BURN_IN``
on, so that the noise draws average out; its estimate is the running average, and the stopping
rule is applied to it. Each step's noise is drawn only as far as the gradient depends on it
(``noise="projected"``: the ``n x K`` products with the centres and a ``d x K`` remainder, the
same gradient in distribution as a full ``n x d`` draw, which would cost more than the rest of
the step). A GD step still costs more than an EM step (a separate CPU timing of single steps
at n = 20000, under load: 1.7-2.3x in float32, 2.1-3.8x in float64, for K = 2 and 4: the
gradient makes more passes over the data than the E- and M-steps), and GD needs more steps
than EM, because the average of its noisy iterates must settle before the shared rule fires.
The rule then reads differently for GD: a running average's relative change is about
``|theta_k - average| / (count |average|)``, which falls like ``1/count`` whether or not the iterates
have settled, so GD's stop is set by its noise level and ``TOL``: read its time together with its
error, which the table prints next to it.

Two settings, as in the chapter: two components ``0.5 N(mu*, I) + 0.5 N(-mu*, I)`` (d = 20,
|mu*| = 2) from a random start ``+-v``, ``|v| = 1``; K = 4 components in d = 10 at separation 3.9
from a warm start at 0.25 of the separation. Errors are worst centre errors, matched up to
permutation, averaged over ``SEEDS`` data sets. Times are CPU times of this (single-threaded)
process, ``time.process_time``, which other processes' load inflates far less than wall time;
they are medians over ``ROUNDS`` rounds in which the methods run interleaved, and the GD /
scikit-learn ratio is the median of the per-round ratios, so that what load remains affects
both alike.

    python benchmarks/gmm_vs_sklearn.py            # n = 20000
    python benchmarks/gmm_vs_sklearn.py --quick    # n = 4000, fewer rounds
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SkGaussianMixture
from threadpoolctl import threadpool_limits

import lib
from lib import gmm_learning as gmm

TOL = 3e-3  # the shared stopping rule: relative change of the centres
T_GD = 0.5  # the time of the DDPM objective
BURN_IN = 6  # GD steps before the iterate averaging starts (EM needs about 5 from these starts)
MAX_STEPS = 500
NOISE = "projected"  # fresh noise, drawn only where the gradient sees it (same gradient in distribution)
SEEDS = 3
ROUNDS = 7


@dataclass
class Problem:
    name: str
    x: torch.Tensor  # (n, d) samples
    truth: torch.Tensor  # (K, d) true centres
    start: torch.Tensor  # (K, d) the start every method gets


def unit(d: int, g: torch.Generator) -> torch.Tensor:
    v = torch.randn(d, generator=g, dtype=torch.float64)
    return v / v.norm()


def two_components(n: int, seed: int) -> Problem:
    g = torch.Generator().manual_seed(seed)
    mu_star = 2.0 * unit(20, g)
    x = lib.symmetric_two(mu_star).sample(n, generator=g)
    v = unit(20, g)
    return Problem("two components, d = 20, |mu*| = 2, random start", x, torch.stack([mu_star, -mu_star]),
                   torch.stack([v, -v]))


def k_components(n: int, seed: int) -> Problem:
    K, d, sep = 4, 10, 3.9
    g = torch.Generator().manual_seed(seed)
    frame, _ = torch.linalg.qr(torch.randn(d, K, generator=g, dtype=torch.float64))
    means = sep / math.sqrt(2) * frame.T
    x = lib.equal_weights(means).sample(n, generator=g)
    warm = means + 0.25 * sep * torch.stack([unit(d, g) for _ in range(K)])
    return Problem("K = 4, d = 10, separation 3.9, warm start", x, means, warm)


def sklearn_model(start: np.ndarray, max_iter: int, tol: float, warm_start: bool = False) -> SkGaussianMixture:
    K = start.shape[0]
    return SkGaussianMixture(K, covariance_type="spherical", means_init=start, weights_init=np.full(K, 1 / K),
                             precisions_init=np.ones(K), init_params="random_from_data", max_iter=max_iter,
                             tol=tol, warm_start=warm_start, random_state=0)


def sklearn_iterations(x: np.ndarray, start: np.ndarray) -> int:
    """Iterations scikit-learn's EM needs under the shared rule: one iteration per ``fit`` call."""
    model, old = sklearn_model(start, 1, 0.0, warm_start=True), torch.as_tensor(start)
    for k in range(1, MAX_STEPS + 1):
        new = torch.as_tensor(model.fit(x).means_)
        if gmm.relative_change(new, old) <= TOL:
            return k
        old = new
    return MAX_STEPS


def methods(p: Problem, dtype: torch.dtype) -> dict[str, Callable[[], torch.Tensor]]:
    x, start = p.x.to(dtype), p.start.to(dtype)
    x_np, start_np = x.numpy(), start.numpy()
    iters = sklearn_iterations(x_np, start_np)
    K = start.shape[0]

    def sklearn() -> torch.Tensor:
        return torch.as_tensor(sklearn_model(start_np, iters, 0.0).fit(x_np).means_)

    def gd() -> torch.Tensor:
        g = torch.Generator().manual_seed(1)
        return gmm.gd_ddpm(x, start, T_GD, steps=MAX_STEPS, lr=K / 2, tol=TOL, average_from=BURN_IN,
                           noise=NOISE, generator=g).final

    return {"sklearn GaussianMixture (EM)": sklearn,
            "lib EM, untied": lambda: gmm.em(x, start, steps=MAX_STEPS, tol=TOL)[-1],
            f"lib GD on L_t, t = {T_GD}, step K/2": gd}


def measure(problems: list[Problem], dtype: torch.dtype, rounds: int) -> tuple[dict, list[float]]:
    """Per method: mean worst centre error and median time; and the per-round GD / sklearn ratios."""
    fns = [methods(p, dtype) for p in problems]
    names = list(fns[0])
    errors = {m: statistics.mean(float(gmm.centre_errors(f[m]().double(), p.truth).max())
                                 for f, p in zip(fns, problems)) for m in names}  # also the warm-up
    times = {m: [] for m in names}
    for _ in range(rounds):
        for m in names:  # interleaved: every round times every method once on every data set
            start = time.process_time()
            for f in fns:
                f[m]()
            times[m].append((time.process_time() - start) / len(fns))
    ratios = [g / s for g, s in zip(times[names[2]], times[names[0]])]
    return {m: (errors[m], statistics.median(times[m])) for m in names}, ratios


def report(title: str, rows: dict, ratios: list[float]) -> None:
    print(f"\n{title}")
    print(f"{'method':>36s} {'CPU time (s)':>13s} {'worst centre error':>19s}")
    for name, (error, seconds) in rows.items():
        print(f"{name:>36s} {seconds:13.4f} {error:19.4f}")
    names = list(rows)
    print(f"GD / sklearn time ratio: median {statistics.median(ratios):.2f} "
          f"(rounds: {', '.join(f'{r:.2f}' for r in ratios)}); "
          f"error ratio {rows[names[2]][0] / rows[names[0]][0]:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="n = 4000 instead of 20000, 3 rounds")
    parser.add_argument("--float64", action="store_true", help="run every method in float64")
    args = parser.parse_args()
    n, rounds = (4000, 3) if args.quick else (20_000, ROUNDS)
    dtype = torch.float64 if args.float64 else torch.float32
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    print(f"{dtype}, one thread, stopping rule: relative change <= {TOL}; load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} cores (timings by others' load are shared by all methods)")
    with threadpool_limits(limits=1):
        for make in (two_components, k_components):
            problems = [make(n, seed) for seed in range(SEEDS)]
            rows, ratios = measure(problems, dtype, rounds)
            report(f"{problems[0].name}, n = {n}", rows, ratios)


if __name__ == "__main__":
    main()
