"""Batched training of many small score networks against a Python loop over them.

What a user would otherwise write: a loop that trains each of 16 ``lib.ScoreMLP`` with
``lib.train_dsm``. lib's way: one ``lib.batched.BatchedScoreMLP`` holding the 16 models,
trained by ``lib.batched.train_batched`` as one batched computation. Same architecture
(width 32, two hidden layers), same data sizes, steps, minibatch size and learning rate,
float32 on CPU. The script first checks, in float64 on a short run with
``rng="per_model"``, that the batched run reproduces the looped one to rounding error,
then times both and prints the ratio. It also times the optimiser step alone on the 16 models'
stacked parameters: ``lib.optim.adam`` (torch's fused Adam step, what lib uses) against Adam written out
with tensor operations (what lib used before), to show the library optimiser is not slower.

    python benchmarks/batched_training.py            # 16 models, 1000 steps each
    python benchmarks/batched_training.py --quick    # 16 models, 200 steps each
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch

import lib
from lib.batched import BatchedScoreMLP, pad_samples, train_batched
from lib.optim import adam

B, WIDTH, M, BATCH, LR = 16, 32, 2000, 256, 3e-3
T_RANGE = (1e-3, 3.0)


def data(dtype: torch.dtype) -> list[torch.Tensor]:
    mix = lib.demo_1d()
    g = torch.Generator().manual_seed(0)
    return [mix.sample(M, generator=g).to(dtype) for _ in range(B)]


def looped(xs: list[torch.Tensor], steps: int, dtype: torch.dtype) -> list[lib.ScoreMLP]:
    nets = [lib.ScoreMLP(1, WIDTH, 2, seed=b, dtype=dtype) for b in range(B)]
    for b, net in enumerate(nets):
        lib.train_dsm(net, xs[b], t_range=T_RANGE, steps=steps, lr=LR, batch_size=BATCH, seed=100 + b, progress=False)
    return nets


def batched(xs: list[torch.Tensor], steps: int, dtype: torch.dtype, rng: str) -> BatchedScoreMLP:
    model = BatchedScoreMLP(B, 1, WIDTH, 2, seeds=range(B), dtype=dtype)
    x0, counts = pad_samples(xs, dtype=dtype)
    seeds = [100 + b for b in range(B)] if rng == "per_model" else 100
    train_batched(model, x0, counts=counts, t_range=T_RANGE, steps=steps, lr=LR, batch_size=BATCH,
                  seeds=seeds, rng=rng, progress=False)
    return model


class WrittenOutAdam:
    """Adam with torch's defaults written out with tensor operations (lib's former optimiser)."""

    def __init__(self, params: list[torch.Tensor], lr: float) -> None:
        self.params, self.lr, self.t = params, lr, 0
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]

    @torch.no_grad()
    def step(self) -> None:
        self.t += 1
        bc1, bc2 = 1 - 0.9**self.t, 1 - 0.999**self.t
        for p, m, v in zip(self.params, self.m, self.v):
            m.lerp_(p.grad, 0.1)
            v.mul_(0.999).addcmul_(p.grad, p.grad, value=0.001)
            p.addcdiv_(m, (v.sqrt() / math.sqrt(bc2)).add_(1e-8), value=-self.lr / bc1)


def optimiser_steps(steps: int) -> tuple[float, float]:
    """Median seconds per step of the written-out Adam and of lib's (torch's fused step), alternated."""
    model = BatchedScoreMLP(B, 1, WIDTH, 2, seeds=range(B))
    params = list(model.parameters())
    for p in params:
        p.grad = torch.randn_like(p)
    opts = [WrittenOutAdam(params, LR), adam(params, LR)]
    times: list[list[float]] = [[], []]
    for _ in range(5):
        for i, opt in enumerate(opts):
            start = time.perf_counter()
            for _ in range(steps):
                opt.step()
            times[i].append((time.perf_counter() - start) / steps)
    return statistics.median(times[0]), statistics.median(times[1])


def results(quick: bool) -> list[tuple[str, float, str, bool]]:
    """``(what, ratio, target, met)`` rows; prints the timings on the way."""
    steps = 200 if quick else 1000

    # correctness: float64, per-model generators, the two ways agree to rounding
    xs64 = data(torch.float64)
    nets = looped(xs64, 20, torch.float64)
    model = batched(xs64, 20, torch.float64, "per_model")
    grid = torch.linspace(-4, 4, 101, dtype=torch.float64)[:, None]
    gap = max((nets[b](grid, 0.1) - model.model(b)(grid, 0.1)).abs().max().item() for b in range(B))
    print(f"float64 check, 20 steps: max |looped - batched| = {gap:.2e}")
    if gap > 1e-8:
        raise SystemExit("batched training does not reproduce the looped runs")

    written, fused = optimiser_steps(steps)
    print(f"Adam step on {B} stacked models: written out {written * 1e6:.0f} us, lib {fused * 1e6:.0f} us")

    xs = data(torch.float32)
    timings = {}
    for name, fn in [("looped train_dsm", lambda: looped(xs, steps, torch.float32)),
                     ("batched, per-model RNG", lambda: batched(xs, steps, torch.float32, "per_model")),
                     ("batched, shared RNG", lambda: batched(xs, steps, torch.float32, "shared"))]:
        best = float("inf")
        for _ in range(2):
            start = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - start)
        timings[name] = best
        print(f"{name:>24s}: {best:6.2f} s for {B} models x {steps} steps")
    base = timings["looped train_dsm"]
    print(f"speed-up, per-model RNG: {base / timings['batched, per-model RNG']:.1f}x")
    print(f"speed-up, shared RNG (lib default): {base / timings['batched, shared RNG']:.1f}x")
    return [("batched training vs looped train_dsm (per-model RNG)", base / timings["batched, per-model RNG"],
             "(none)", True),
            ("batched training vs looped train_dsm (shared RNG)", base / timings["batched, shared RNG"],
             "(none)", True),
            ("Adam step: lib (torch fused) vs written out", written / fused, ">= 1", written >= fused)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 steps instead of 1000")
    args = parser.parse_args()
    for what, ratio, target, met in results(args.quick):
        print(f"result: {what} = {ratio:.1f}x (target {target}){'' if met else '  NOT MET'}")


if __name__ == "__main__":
    main()
