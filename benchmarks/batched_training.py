"""Batched training of many small score networks against a Python loop over them.

What a user would otherwise write: a loop that trains each of 16 ``lib.ScoreMLP`` with
``lib.train_dsm``. lib's way: one ``lib.batched.BatchedScoreMLP`` holding the 16 models,
trained by ``lib.batched.train_batched`` as one batched computation. Same architecture
(width 32, two hidden layers), same data sizes, steps, minibatch size and learning rate,
float32 on CPU. The script first checks, in float64 on a short run with
``rng="per_model"``, that the batched run reproduces the looped one to rounding error,
then times both and prints the ratio.

    python benchmarks/batched_training.py            # 16 models, 1000 steps each
    python benchmarks/batched_training.py --quick    # 16 models, 200 steps each
"""

from __future__ import annotations

import argparse
import time

import torch

import lib
from lib.batched import BatchedScoreMLP, pad_samples, train_batched

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 steps instead of 1000")
    args = parser.parse_args()
    steps = 200 if args.quick else 1000

    # correctness: float64, per-model generators, the two ways agree to rounding
    xs64 = data(torch.float64)
    nets = looped(xs64, 20, torch.float64)
    model = batched(xs64, 20, torch.float64, "per_model")
    grid = torch.linspace(-4, 4, 101, dtype=torch.float64)[:, None]
    gap = max((nets[b](grid, 0.1) - model.model(b)(grid, 0.1)).abs().max().item() for b in range(B))
    print(f"float64 check, 20 steps: max |looped - batched| = {gap:.2e}")
    if gap > 1e-8:
        raise SystemExit("batched training does not reproduce the looped runs")

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


if __name__ == "__main__":
    main()
