"""Exact mixture score: lib's closed form against autograd through torch.distributions.

What a user would otherwise write: build ``MixtureSameFamily(Categorical, MultivariateNormal)``
for ``q_t`` and differentiate its ``log_prob``. Both run in float64 on the same points and
the same mixtures (full covariances); the script checks they agree, then prints
the time ratio for each (d, K).

    python benchmarks/mixture_score.py            # n = 100000 points
    python benchmarks/mixture_score.py --quick    # n = 10000
"""

from __future__ import annotations

import argparse
import math
import time

import torch

import lib

CHUNK = 8192  # rows per autograd pass, to bound the reference's memory


def random_mixture(K: int, d: int, seed: int) -> lib.GaussianMixture:
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(K, d, d, generator=g, dtype=torch.float64)
    cov = A @ A.transpose(-1, -2) / d + 0.3 * torch.eye(d, dtype=torch.float64)
    w = torch.rand(K, generator=g, dtype=torch.float64) + 0.1
    return lib.GaussianMixture(w / w.sum(), 3 * torch.randn(K, d, generator=g, dtype=torch.float64), cov)


def autograd_score(mix: lib.GaussianMixture, x: torch.Tensor, t: float) -> torch.Tensor:
    a, s2 = math.exp(-t), -math.expm1(-2 * t)
    cov = a * a * mix.covariances + s2 * torch.eye(mix.d, dtype=torch.float64)
    dist = torch.distributions.MixtureSameFamily(
        torch.distributions.Categorical(probs=mix.weights),
        torch.distributions.MultivariateNormal(a * mix.means, covariance_matrix=cov),
    )
    out = []
    for chunk in x.split(CHUNK):
        c = chunk.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(dist.log_prob(c).sum(), c)
        out.append(grad)
    return torch.cat(out)


def best_time(fn, repeats: int) -> tuple[float, torch.Tensor]:
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10x fewer points")
    args = parser.parse_args()
    n = 10_000 if args.quick else 100_000
    t = 0.1
    print(f"n = {n} points, t = {t}, float64, full covariances, {torch.get_num_threads()} threads")
    print(f"{'d':>4} {'K':>4} {'lib (s)':>9} {'autograd (s)':>13} {'speed-up':>9} {'max rel. diff':>14}")
    ratios = []
    for d in (2, 8, 32, 64):
        for K in (2, 8, 32):
            mix = random_mixture(K, d, seed=d * 100 + K)
            x = mix.sample(n, t=t, generator=torch.Generator().manual_seed(0))
            t_lib, s_lib = best_time(lambda mix=mix, x=x: mix.score(x, t), 3)
            t_ref, s_ref = best_time(lambda mix=mix, x=x: autograd_score(mix, x, t), 2)
            rel = ((s_lib - s_ref).norm(dim=1) / s_ref.norm(dim=1)).max().item()
            if rel > 1e-8:
                raise SystemExit(f"scores disagree at d={d}, K={K}: max relative difference {rel:.2e}")
            ratios.append(t_ref / t_lib)
            print(f"{d:>4} {K:>4} {t_lib:>9.3f} {t_ref:>13.3f} {t_ref / t_lib:>8.1f}x {rel:>14.1e}")
    geo = math.exp(sum(map(math.log, ratios)) / len(ratios))
    print(f"speed-up: min {min(ratios):.1f}x, geometric mean {geo:.1f}x, max {max(ratios):.1f}x")


if __name__ == "__main__":
    main()
