"""Exact mixture score: lib's closed forms against autograd through torch.distributions.

What a user would otherwise write: build ``q_t`` as a ``MixtureSameFamily`` and differentiate
its ``log_prob``, with the matching component family for each covariance kind:
``Independent(Normal)`` for isotropic (``S_k = v_k I``) and diagonal covariances,
``MultivariateNormal`` for full ones. Both run in float64 on the same points and mixtures; the
script checks that they agree (relative difference at most 1e-10), then prints the time ratio
for each kind and (d, K), with the targets. Both are timed the same way (see ``interleaved``):
warmed up, per-time constants built once (the peer's distribution object, lib's remembered
form), fast calls in blocks of consecutive calls, medians of interleaved rounds.

    python benchmarks/mixture_score.py            # n = 100000 points
    python benchmarks/mixture_score.py --quick    # n = 10000 on a smaller grid (~12 s of CPU, for make bench)
    python benchmarks/mixture_score.py --cpu-time # time by process CPU time (steadier on a shared machine)
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch

import lib

CHUNK = 8192  # rows per autograd pass, to bound the reference's memory
T = 0.1
GRID = {"isotropic": (2, 16, 64, 256), "diagonal": (2, 16, 64, 256), "full": (2, 8, 32, 64)}
# The quick form keeps both ends of each target (d = 2 and d >= 16 for isotropic components,
# small and large d for full ones) but drops the largest sizes, where the peer alone takes minutes.
QUICK_GRID = {"isotropic": (2, 16, 64), "diagonal": (2, 16), "full": (2, 8, 32)}
KS = (2, 8, 32)
TOLERANCE = 1e-10
CLOCK = {"fn": time.perf_counter}  # or time.process_time (--cpu-time)
BLOCK = 0.01  # seconds: fast functions are timed over blocks of calls at least this long
SLOW = 0.1  # seconds per call beyond which three timings suffice


def random_mixture(kind: str, K: int, d: int, seed: int) -> lib.GaussianMixture:
    g = torch.Generator().manual_seed(seed)
    kw = dict(generator=g, dtype=torch.float64)
    if kind == "isotropic":
        cov = 0.3 + torch.rand(K, **kw)
    elif kind == "diagonal":
        cov = 0.3 + torch.rand(K, d, **kw)
    else:
        A = torch.randn(K, d, d, **kw)
        cov = A @ A.transpose(-1, -2) / d + 0.3 * torch.eye(d, dtype=torch.float64)
    w = torch.rand(K, **kw) + 0.1
    return lib.GaussianMixture(w / w.sum(), 3 * torch.randn(K, d, **kw), cov)


def peer(kind: str, mix: lib.GaussianMixture, t: float) -> torch.distributions.Distribution:
    """``q_t`` as torch.distributions builds it, with the matching component family."""
    a, s2 = math.exp(-t), -math.expm1(-2 * t)
    cov = a * a * mix.covariances + s2 * torch.eye(mix.d, dtype=torch.float64)
    if kind == "full":
        comp = torch.distributions.MultivariateNormal(a * mix.means, covariance_matrix=cov)
    else:
        sd = torch.sqrt(torch.diagonal(cov, dim1=-2, dim2=-1))
        comp = torch.distributions.Independent(torch.distributions.Normal(a * mix.means, sd), 1)
    return torch.distributions.MixtureSameFamily(torch.distributions.Categorical(probs=mix.weights), comp)


def autograd_score(dist: torch.distributions.Distribution, x: torch.Tensor) -> torch.Tensor:
    out = []
    for chunk in x.split(CHUNK):
        c = chunk.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(dist.log_prob(c).sum(), c)
        out.append(grad)
    return torch.cat(out)


def interleaved(fns: list, repeats: int, single: list[float] | None = None) -> list[float]:
    """Median time per call of each function, the functions timed in turn ``repeats`` times, so
    a change in the machine's load hits all of them alike.

    Each function first runs once (the warm-up, which sizes the blocks below;
    ``single`` gives those times when the caller already made the runs). A fast function is
    then timed over blocks of consecutive calls lasting about ``BLOCK`` seconds, the way a
    sampler or a plot calls it, so that the clock's resolution and one descheduling do not
    dominate. When a function is slow (over ``SLOW`` seconds a call) there are two rounds and
    the slow one's warm-up counts as a third timing: its time is steady to a few per cent, and
    it is what sets the benchmark's duration.
    """
    if single is None:
        single = []
        for fn in fns:
            start = CLOCK["fn"]()
            fn()
            single.append(CLOCK["fn"]() - start)
    single = [max(s, 1e-6) for s in single]
    calls = [max(1, math.ceil(BLOCK / s)) for s in single]
    slow = max(single) > SLOW
    rounds = 2 if slow else repeats
    # a slow function's warm-up is one of its three timings (its first-call costs are small next to it)
    times: list[list[float]] = [[s] if s > SLOW else [] for s in single]
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            start = CLOCK["fn"]()
            for _ in range(calls[i]):
                fn()
            times[i].append((CLOCK["fn"]() - start) / calls[i])
    return [statistics.median(ts) for ts in times]


def run_kind(kind: str, dims: tuple[int, ...], n: int, repeats: int) -> list[float]:
    print(f"\n{kind} covariances: n = {n} points, t = {T}, float64, {torch.get_num_threads()} threads")
    print(f"{'d':>4} {'K':>4} {'lib (ms)':>9} {'autograd (ms)':>14} {'speed-up':>9} {'max rel. diff':>14}")
    ratios = []
    for d in dims:
        for K in KS:
            mix = random_mixture(kind, K, d, seed=d * 100 + K)
            x = mix.sample(n, t=T, generator=torch.Generator().manual_seed(0))
            dist = peer(kind, mix, T)
            fns = [lambda mix=mix, x=x: mix.score(x, T), lambda dist=dist, x=x: autograd_score(dist, x)]
            single, outs = [], []
            for fn in fns:  # the warm-up runs, timed, give the scores to compare
                start = CLOCK["fn"]()
                outs.append(fn())
                single.append(CLOCK["fn"]() - start)
            s_lib, s_ref = outs
            rel = ((s_lib - s_ref).norm(dim=1) / s_ref.norm(dim=1)).max().item()
            if rel > TOLERANCE:
                raise SystemExit(f"{kind}: scores disagree at d={d}, K={K}: max relative difference {rel:.2e}")
            t_lib, t_ref = interleaved(fns, repeats, single)
            ratios.append(t_ref / t_lib)
            print(f"{d:>4} {K:>4} {1e3 * t_lib:>9.3f} {1e3 * t_ref:>14.3f} {t_ref / t_lib:>8.1f}x {rel:>14.1e}")
    return ratios


def geomean(values: list[float]) -> float:
    return math.exp(sum(map(math.log, values)) / len(values))


def results(quick: bool) -> list[tuple[str, float, str, bool]]:
    """``(what, measured ratio, target, met)`` rows; prints the per-(d, K) tables on the way."""
    n, repeats, grid = (10_000, 5, QUICK_GRID) if quick else (100_000, 5, GRID)
    rows = []
    for kind, dims in grid.items():
        ratios = run_kind(kind, dims, n, repeats)
        cells = [(d, K) for d in dims for K in KS]
        by_d = {d: min(r for (dd, _), r in zip(cells, ratios) if dd == d) for d in dims}
        if kind == "isotropic":
            rows.append(("mixture score, isotropic, d = 2 (min over K)", by_d[2], ">= 5", by_d[2] >= 5))
            low = min(r for d, r in by_d.items() if d >= 16)
            rows.append(("mixture score, isotropic, d >= 16 (min)", low, ">= 20", low >= 20))
        elif kind == "diagonal":
            rows.append(("mixture score, diagonal (min)", min(ratios), "(none)", True))
            rows.append(("mixture score, diagonal (geometric mean)", geomean(ratios), "(none)", True))
        else:
            rows.append(("mixture score, full (min)", min(ratios), ">= 3", min(ratios) >= 3))
            rows.append(("mixture score, full (geometric mean)", geomean(ratios), ">= 6", geomean(ratios) >= 6))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="n = 10000 points, a smaller grid")
    parser.add_argument("--cpu-time", action="store_true", help="time by this process's CPU time, not wall time")
    args = parser.parse_args()
    if args.cpu_time:
        CLOCK["fn"] = time.process_time
    print(f"timed by {'CPU' if args.cpu_time else 'wall'} time")
    for what, ratio, target, met in results(args.quick):
        print(f"result: {what} = {ratio:.1f}x (target {target}){'' if met else '  NOT MET'}")


if __name__ == "__main__":
    main()
