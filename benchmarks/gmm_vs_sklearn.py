"""Gradient descent on the DDPM objective against scikit-learn's EM, on the same data.

What a user would otherwise write: ``sklearn.mixture.GaussianMixture(covariance_type="spherical")``
(EM with k-means initialisation, stopping when the likelihood gain falls below ``tol``). lib's
ways: two-phase gradient descent on the DDPM objective (``lib.gmm_learning.gd_ddpm``, the
chapter's settings, fixed step counts) and lib's EM with unit covariances
(``lib.gmm_learning.em``, fixed step count). Two problems, as in the chapter:

* two components ``0.5 N(mu*, I) + 0.5 N(-mu*, I)``, d = 20, |mu*| = 2: GD from a random start,
  100 steps at t1 = log d then 100 at t2 = 0.2; EM from the same random start;
* K = 4 components in d = 10, separation 3.9: GD (200 steps at t = 0.1) and EM from a warm
  start at 0.25 of the separation; scikit-learn from its own k-means start.

Everything runs on one thread (torch and the BLAS behind NumPy), float64, best of three
runs. The script prints each method's fit time and worst centre error side by side, and
the time ratios to scikit-learn measured in this run.

    python benchmarks/gmm_vs_sklearn.py            # n = 20000
    python benchmarks/gmm_vs_sklearn.py --quick    # n = 4000
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable

import torch
from sklearn.mixture import GaussianMixture as SkGaussianMixture
from threadpoolctl import threadpool_limits

import lib
from lib import gmm_learning as gmm

REPEATS = 3


def unit(d: int, g: torch.Generator) -> torch.Tensor:
    v = torch.randn(d, generator=g, dtype=torch.float64)
    return v / v.norm()


def best_time(fn: Callable[[], torch.Tensor]) -> tuple[torch.Tensor, float]:
    best, out = math.inf, None
    for _ in range(REPEATS):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return out, best


def sklearn_fit(x: torch.Tensor, k: int) -> torch.Tensor:
    fit = SkGaussianMixture(n_components=k, covariance_type="spherical", random_state=0).fit(x.numpy())
    return torch.as_tensor(fit.means_, dtype=torch.float64)


def two_components(n: int) -> dict[str, tuple[float, float]]:
    d = 20
    g = torch.Generator().manual_seed(0)
    mu_star = 2.0 * unit(d, g)
    x = lib.symmetric_two(mu_star).sample(n, generator=g)
    init = unit(d, g)

    def gd() -> torch.Tensor:
        first = gmm.gd_ddpm(x, init, math.log(d), steps=100, lr=2.0, generator=torch.Generator().manual_seed(1))
        return gmm.gd_ddpm(x, first.final, 0.2, steps=100, lr=0.05, generator=torch.Generator().manual_seed(2)).final

    pair = torch.stack([mu_star, -mu_star])
    out = {}
    for name, fn, error in [
        ("lib GD on L_t (100 + 100 steps)", gd, lambda e: gmm.centre_errors(e, mu_star)),
        ("lib EM (100 steps)", lambda: gmm.em(x, init, steps=100)[-1], lambda e: gmm.centre_errors(e, mu_star)),
        ("sklearn GaussianMixture", lambda: sklearn_fit(x, 2), lambda e: gmm.centre_errors(e, pair).max()),
    ]:
        est, seconds = best_time(fn)
        out[name] = (seconds, float(error(est)))
    return out


def k_components(n: int) -> dict[str, tuple[float, float]]:
    K, d, sep = 4, 10, 3.9
    g = torch.Generator().manual_seed(0)
    frame, _ = torch.linalg.qr(torch.randn(d, K, generator=g, dtype=torch.float64))
    means = sep / math.sqrt(2) * frame.T
    x = lib.equal_weights(means).sample(n, generator=g)
    warm = means + 0.25 * sep * torch.stack([unit(d, g) for _ in range(K)])

    def gd() -> torch.Tensor:
        return gmm.gd_ddpm(x, warm, 0.1, steps=200, lr=0.1, generator=torch.Generator().manual_seed(1)).final

    out = {}
    for name, fn in [("lib GD on L_t (200 steps, warm)", gd),
                     ("lib EM (100 steps, warm)", lambda: gmm.em(x, warm, steps=100)[-1]),
                     ("sklearn GaussianMixture", lambda: sklearn_fit(x, K))]:
        est, seconds = best_time(fn)
        out[name] = (seconds, float(gmm.centre_errors(est, means).max()))
    return out


def report(title: str, rows: dict[str, tuple[float, float]]) -> None:
    print(f"\n{title}")
    print(f"{'method':>34s} {'fit time (s)':>13s} {'worst centre error':>19s} {'time / sklearn':>15s}")
    base = rows["sklearn GaussianMixture"][0]
    for name, (seconds, error) in rows.items():
        print(f"{name:>34s} {seconds:13.4f} {error:19.4f} {seconds / base:14.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="n = 4000 instead of 20000")
    args = parser.parse_args()
    n = 4000 if args.quick else 20_000
    torch.set_num_threads(1)
    with threadpool_limits(limits=1):
        two = two_components(n)
        many = k_components(n)
    scale = math.sqrt(20 / n)
    report(f"two components, d = 20, |mu*| = 2, n = {n} (sqrt(d/n) = {scale:.4f})", two)
    report(f"K = 4, d = 10, separation 3.9, n = {n} (sqrt(Kd/n) = {math.sqrt(40 / n):.4f})", many)


if __name__ == "__main__":
    main()
